//! The engine's view of a node's serial console during an action: one SOL
//! session, logged to the node's console log (secrets redacted), fed to the
//! boot-stage detector, with the stage published on a `watch` channel.

use std::os::unix::fs::DirBuilderExt;

use tokio::sync::{mpsc, watch};

use crate::console::{self, ConsoleLog, Stage, StageDetector, StageEvent};
use crate::inventory::{Lab, Node};
use crate::ipmi::Target;
use crate::ipmi::sol_driver::{self, ConsoleEvent, ConsoleInput, SolOptions};

/// What the console has shown so far.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Seen {
    /// The latest stage since the last [`ConsoleWatch::restart_stages`].
    pub stage: Option<StageEvent>,
    /// Set when the console ended for good (e.g. SOL held by someone else).
    pub closed: Option<String>,
    pub connected: bool,
}

enum Control {
    RestartStages,
    Send(Vec<u8>),
}

pub struct ConsoleWatch {
    seen: watch::Receiver<Seen>,
    control: mpsc::UnboundedSender<Control>,
    input: mpsc::Sender<ConsoleInput>,
}

impl ConsoleWatch {
    /// Opens the node's console (never taking it from another session).
    /// `secrets` are redacted in the log.
    pub fn start(lab: &Lab, node: &Node, target: Target, secrets: Vec<String>) -> ConsoleWatch {
        let (seen_tx, seen) = watch::channel(Seen::default());
        let (control, controls) = mpsc::unbounded_channel();
        let options = SolOptions {
            force: false,
            ..SolOptions::default()
        };
        let sol = sol_driver::spawn(target, options);
        let input = sol.input.clone();
        let log = open_log(lab, node, &secrets);
        // The lab's patterns compiled when it was loaded; fall back to the built-ins.
        let detector = StageDetector::new(&lab.stage_patterns)
            .or_else(|_| StageDetector::new(&[]))
            .ok();
        tokio::spawn(pump(sol, controls, seen_tx, log, detector));
        ConsoleWatch {
            seen,
            control,
            input,
        }
    }

    pub fn seen(&self) -> watch::Receiver<Seen> {
        self.seen.clone()
    }

    /// Forget the stages seen so far: the next boot starts from scratch.
    pub fn restart_stages(&self) {
        let _ = self.control.send(Control::RestartStages);
    }

    /// Type on the console (e.g. a carriage return to redraw a prompt).
    pub fn send(&self, bytes: &[u8]) {
        let _ = self.control.send(Control::Send(bytes.to_vec()));
    }

    /// Deactivates SOL and closes its session.
    pub async fn close(self) {
        let _ = self.input.send(ConsoleInput::Close).await;
    }
}

fn open_log(lab: &Lab, node: &Node, secrets: &[String]) -> Option<ConsoleLog> {
    let path = console::log_path(lab, node);
    let dir = path.parent()?;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .ok()?;
    ConsoleLog::open(&path, console::LOG_LIMITS, secrets).ok()
}

async fn pump(
    mut sol: sol_driver::Console,
    mut controls: mpsc::UnboundedReceiver<Control>,
    seen: watch::Sender<Seen>,
    mut log: Option<ConsoleLog>,
    mut detector: Option<StageDetector>,
) {
    loop {
        tokio::select! {
            event = sol.events.recv() => match event {
                Some(ConsoleEvent::Data(bytes)) => {
                    if let Some(log) = log.as_mut() {
                        let _ = log.write(&bytes);
                    }
                    if let Some(latest) = detector.as_mut().and_then(|d| d.feed(&bytes).pop()) {
                        seen.send_modify(|s| s.stage = Some(latest));
                    }
                }
                Some(ConsoleEvent::Connected) => seen.send_modify(|s| s.connected = true),
                Some(ConsoleEvent::Reconnecting { .. }) => seen.send_modify(|s| s.connected = false),
                Some(ConsoleEvent::Closed { reason }) => {
                    seen.send_modify(|s| {
                        s.connected = false;
                        s.closed = Some(reason);
                    });
                    break;
                }
                None => break,
            },
            control = controls.recv() => match control {
                Some(Control::RestartStages) => {
                    if let Some(d) = detector.as_mut() {
                        d.reset();
                    }
                    seen.send_modify(|s| s.stage = None);
                }
                Some(Control::Send(bytes)) => {
                    let _ = sol.input.send(ConsoleInput::Data(bytes)).await;
                }
                // The watch was dropped without close(): close SOL anyway.
                None => {
                    let _ = sol.input.send(ConsoleInput::Close).await;
                    // Drain until the driver says it closed.
                    while let Some(event) = sol.events.recv().await {
                        if matches!(event, ConsoleEvent::Closed { .. }) {
                            break;
                        }
                    }
                    break;
                }
            },
        }
    }
    if let Some(log) = log {
        let _ = log.close();
    }
}

/// True when the stage means the instance is up.
pub fn is_up(stage: &Option<StageEvent>) -> bool {
    matches!(
        stage,
        Some(StageEvent {
            stage: Stage::LoginPrompt,
            ..
        })
    )
}
