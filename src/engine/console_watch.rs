//! The engine's consoles: at most one console session per node (SOL, SSH
//! or websocket, as lab.toml says; a BMC allows one SOL session), shared by
//! whoever needs it — a deploy watching for the login prompt, the
//! dashboard showing it — opened on the first attach and closed after the
//! last. Each session is logged to the node's console log (secrets
//! redacted), fed to the boot-stage detector, and reported as engine events.

use std::collections::HashMap;
use std::os::unix::fs::DirBuilderExt;
use std::sync::{Arc, Mutex, MutexGuard};

use tokio::sync::{mpsc, watch};

use super::lab::EngineEvent;
use crate::console::gap::now_ms;
use crate::console::token::ConsoleRedactor;
use crate::console::{self, ConsoleLog, Gap, GapTracker, Stage, StageDetector, StageEvent};
use crate::console_link::{Console, ConsoleEvent, ConsoleInput};
use crate::hardware;
use crate::inventory::{Lab, Node};
use crate::ipmi::sol_driver;

/// What the console has shown so far.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Seen {
    /// The latest stage since the last [`ConsoleWatch::restart_stages`].
    pub stage: Option<StageEvent>,
    /// The latest failure line (a download or boot failure, a panic) since
    /// then, even when later stages followed (petitboot falling back to the
    /// disk after a failed netboot).
    pub failure: Option<StageEvent>,
    /// Set when the console ended for good (e.g. SOL held by someone else).
    pub closed: Option<String>,
    pub connected: bool,
    /// How many times the console was lost and came back: output from
    /// those stretches is missing.
    pub gaps: u32,
    pub last_gap: Option<Gap>,
}

enum Control {
    RestartStages,
    Send(Vec<u8>),
    Break,
    /// Reconnect now if waiting out a backoff.
    RetryNow,
    /// More text to redact (e.g. a deploy's token), from now on.
    Secrets(Vec<String>),
    /// Send the bytes to the UI as `EngineEvent::ConsoleData`.
    Forward(bool),
    Close,
}

struct Session {
    /// Tells this session from a later one for the same node.
    id: u64,
    users: usize,
    control: mpsc::UnboundedSender<Control>,
    seen: watch::Receiver<Seen>,
    /// The pump: it deactivates SOL and closes the log when it ends.
    task: tokio::task::JoinHandle<()>,
    /// IPMI requests inside the console's session (one session per BMC);
    /// none for a console that is not SOL.
    calls: Option<sol_driver::CallHandle>,
}

/// How long the last user's `close` waits for SOL to be deactivated: a
/// process that exits sooner leaves the payload active on the BMC, and the
/// next console is refused with "already active" until the BMC times out.
const CLOSE_WAIT: std::time::Duration = std::time::Duration::from_secs(3);

pub struct ConsoleHub {
    lab: Mutex<Arc<Lab>>,
    /// The lab's stage patterns, compiled once; each console gets a clone.
    detector: Mutex<Option<StageDetector>>,
    events: mpsc::UnboundedSender<EngineEvent>,
    sessions: Mutex<HashMap<String, Session>>,
    next_id: std::sync::atomic::AtomicU64,
    /// Nodes the UI watches, with the session each holds one attachment of.
    ui: Mutex<HashMap<String, u64>>,
    /// Consoles kept open and forwarded all the time (the lab service's).
    kept: Mutex<HashMap<String, ConsoleWatch>>,
    /// Where stages and gaps go into the nodes' boot timelines.
    recorder: std::sync::OnceLock<Arc<super::boot_record::Recorder>>,
}

/// One user's hold on a node's console; `close` lets it go.
pub struct ConsoleWatch {
    hub: Arc<ConsoleHub>,
    node: String,
    session: u64,
    seen: watch::Receiver<Seen>,
    control: mpsc::UnboundedSender<Control>,
}

impl ConsoleHub {
    pub fn new(lab: Arc<Lab>, events: mpsc::UnboundedSender<EngineEvent>) -> Arc<ConsoleHub> {
        Arc::new(ConsoleHub {
            detector: Mutex::new(compile_detector(&lab)),
            lab: Mutex::new(lab),
            events,
            sessions: Mutex::default(),
            next_id: Default::default(),
            ui: Mutex::default(),
            kept: Mutex::default(),
            recorder: std::sync::OnceLock::new(),
        })
    }

    /// Consoles opened from now on record their stages and gaps there.
    pub fn set_recorder(&self, recorder: Arc<super::boot_record::Recorder>) {
        let _ = self.recorder.set(recorder);
    }

    fn lab(&self) -> Arc<Lab> {
        self.lab.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// A re-read lab.toml: new consoles log and detect stages by it.
    pub fn set_lab(&self, lab: Arc<Lab>) {
        *self.detector.lock().unwrap_or_else(|p| p.into_inner()) = compile_detector(&lab);
        *self.lab.lock().unwrap_or_else(|p| p.into_inner()) = lab;
    }

    /// A fresh detector for one console: a clone of the lab's, sharing its
    /// compiled patterns (compiling them per console cost a thousand
    /// consoles tens of megabytes).
    fn detector(&self) -> Option<StageDetector> {
        self.detector
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    fn kept(&self) -> MutexGuard<'_, HashMap<String, ConsoleWatch>> {
        self.kept.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Opens the node's console and keeps it open, its bytes forwarded as
    /// `EngineEvent::ConsoleData`, until [`ConsoleHub::let_go`]. Idempotent.
    pub async fn keep_open(self: &Arc<Self>, node: &Node) -> Result<(), String> {
        if self.kept().contains_key(&node.name) {
            return Ok(());
        }
        let watch = self.attach(node, Vec::new()).await?;
        let _ = watch.control.send(Control::Forward(true));
        let previous = self.kept().insert(node.name.clone(), watch);
        if let Some(previous) = previous {
            previous.close().await;
        }
        Ok(())
    }

    /// Stops keeping the node's console open (it closes unless an action
    /// still watches it).
    pub async fn let_go(&self, node: &str) {
        let watch = self.kept().remove(node);
        if let Some(watch) = watch {
            watch.close().await;
        }
    }

    /// A way into the node's console session for IPMI requests, while a
    /// console is open: the poller and actions use it instead of opening a
    /// session of their own (see `ipmi::Bmc::with_console`).
    pub fn call_handle(&self, node: &str) -> Option<sol_driver::CallHandle> {
        self.sessions().get(node).and_then(|s| s.calls.clone())
    }

    /// A BMC connection for `node`: an IPMI one through its open SOL
    /// console's session when there is one (one RMCP+ session per BMC),
    /// else one of its own.
    pub fn bmc(&self, node: &str, target: hardware::Target) -> hardware::Bmc {
        let hardware::Target::Ipmi(target) = target else {
            return hardware::Bmc::new(target);
        };
        let calls = self.call_handle(node);
        tracing::debug!(node, console = calls.is_some(), "BMC connection");
        match calls {
            Some(calls) => hardware::Bmc::Ipmi(crate::ipmi::Bmc::with_console(target, calls)),
            None => hardware::Bmc::Ipmi(crate::ipmi::Bmc::new(target)),
        }
    }

    /// Waits (at most `limit`) until the node's console is connected or has
    /// ended; false if it is neither by then.
    pub async fn wait_connected(&self, node: &str, limit: std::time::Duration) -> bool {
        let Some(seen) = self.sessions().get(node).map(|s| s.seen.clone()) else {
            return false;
        };
        connected_within(seen, limit).await
    }

    /// Whether the node's console is kept open.
    pub fn is_kept(&self, node: &str) -> bool {
        self.kept().contains_key(node)
    }

    /// Every kept console's node.
    pub fn kept_nodes(&self) -> Vec<String> {
        self.kept().keys().cloned().collect()
    }

    /// Closes every kept console, waiting (bounded) for each to deactivate.
    pub async fn close_all(&self) {
        let all: Vec<ConsoleWatch> = self.kept().drain().map(|(_, w)| w).collect();
        futures::future::join_all(all.into_iter().map(ConsoleWatch::close)).await;
    }

    fn sessions(&self) -> MutexGuard<'_, HashMap<String, Session>> {
        self.sessions.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Attaches to the node's console, opening it (never taking SOL from
    /// another session) if nobody has. `secrets` are redacted in the log,
    /// besides the BMC password.
    pub async fn attach(
        self: &Arc<Self>,
        node: &Node,
        secrets: Vec<String>,
    ) -> Result<ConsoleWatch, String> {
        let prepared = hardware::console::prepare(&self.lab(), node)
            .await
            .map_err(|e| e.to_string())?;
        let mut sessions = self.sessions();
        // A console that ended for good (e.g. SOL was held by another tool)
        // is opened afresh for the next user; its old users keep a dead handle.
        if sessions
            .get(&node.name)
            .is_some_and(|s| s.seen.borrow().closed.is_some())
        {
            sessions.remove(&node.name);
        }
        let session = sessions.entry(node.name.clone()).or_insert_with(|| {
            let mut all = prepared.secrets();
            all.extend(secrets.iter().cloned());
            // Only SOL carries IPMI requests; SSH and websocket consoles
            // leave the BMC's other interface to a session of its own.
            let (calls, console) = if prepared.is_sol() {
                let (calls, call_rx) = sol_driver::call_channel();
                (Some(calls), prepared.spawn(false, Some(call_rx)))
            } else {
                (None, prepared.spawn(false, None))
            };
            let (seen_tx, seen) = watch::channel(Seen::default());
            let (control, controls) = mpsc::unbounded_channel();
            let lab = self.lab();
            let pump = Pump {
                node: node.name.clone(),
                lab: lab.clone(),
                secrets: all.clone(),
                log: open_log(&lab, node, &all),
                detector: self.detector(),
                forward: false,
                ui_redactor: ConsoleRedactor::new(&all),
                events: self.events.clone(),
                seen: seen_tx,
                gaps: GapTracker::default(),
                recorder: self.recorder.get().cloned(),
            };
            let task = tokio::spawn(pump.run(console, controls));
            Session {
                id: self
                    .next_id
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed),
                users: 0,
                control,
                seen,
                task,
                calls,
            }
        });
        session.users += 1;
        if session.users > 1 && !secrets.is_empty() {
            let _ = session.control.send(Control::Secrets(secrets));
        }
        Ok(ConsoleWatch {
            hub: self.clone(),
            node: node.name.clone(),
            session: session.id,
            seen: session.seen.clone(),
            control: session.control.clone(),
        })
    }

    /// Lets one user go; the last one closes the console and gets its pump
    /// to wait for.
    fn detach(&self, node: &str, id: u64) -> Option<tokio::task::JoinHandle<()>> {
        let mut sessions = self.sessions();
        let session = sessions.get_mut(node).filter(|s| s.id == id)?;
        session.users = session.users.saturating_sub(1);
        if session.users > 0 {
            return None;
        }
        let _ = session.control.send(Control::Close);
        sessions.remove(node).map(|s| s.task)
    }

    /// The UI starts or stops watching a node: its bytes arrive as
    /// `EngineEvent::ConsoleData` while it does. Idempotent.
    pub async fn watch_ui(self: &Arc<Self>, node: &Node, on: bool) -> Result<(), String> {
        let held = self.ui().get(&node.name).copied();
        match (on, held) {
            (true, None) => {
                let watch = self.attach(node, Vec::new()).await?;
                let _ = watch.control.send(Control::Forward(true));
                // The UI's hold is the session's user count, released by
                // `watch_ui(node, false)`; the handle itself is not needed.
                self.ui().insert(node.name.clone(), watch.session);
            }
            (false, Some(id)) => {
                if let Some(session) = self.sessions().get(&node.name).filter(|s| s.id == id) {
                    let _ = session.control.send(Control::Forward(false));
                }
                self.ui().remove(&node.name);
                // The UI goes on running: the pump finishes on its own.
                let _ = self.detach(&node.name, id);
            }
            _ => {}
        }
        Ok(())
    }

    fn ui(&self) -> MutexGuard<'_, HashMap<String, u64>> {
        self.ui.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Typed into a node's console (only when someone has it open).
    pub fn send(&self, node: &str, bytes: Vec<u8>) {
        if let Some(session) = self.sessions().get(node) {
            let _ = session.control.send(Control::Send(bytes));
        }
    }

    pub fn send_break(&self, node: &str) {
        if let Some(session) = self.sessions().get(node) {
            let _ = session.control.send(Control::Break);
        }
    }
}

impl ConsoleWatch {
    pub fn seen(&self) -> watch::Receiver<Seen> {
        self.seen.clone()
    }

    /// Forget the stages seen so far: the next boot starts from scratch.
    pub fn restart_stages(&self) {
        let _ = self.control.send(Control::RestartStages);
    }

    /// Before acting on the host: a console waiting out its reconnection
    /// backoff tries again now, and this waits (at most `limit`) until it is
    /// connected. False if it is not by then (or has ended): what the host
    /// prints next may go unseen.
    pub async fn ensure_connected(&self, limit: std::time::Duration) -> bool {
        if self.seen.borrow().connected {
            return true;
        }
        let _ = self.control.send(Control::RetryNow);
        connected_within(self.seen.clone(), limit).await
    }

    /// Type on the console (e.g. a carriage return to redraw a prompt).
    pub fn send(&self, bytes: &[u8]) {
        let _ = self.control.send(Control::Send(bytes.to_vec()));
    }

    /// Lets the console go; the last user waits (a bounded while) until SOL
    /// is deactivated and the log is closed.
    pub async fn close(self) {
        if let Some(pump) = self.hub.detach(&self.node, self.session) {
            let _ = tokio::time::timeout(CLOSE_WAIT, pump).await;
        }
    }
}

/// Whether the console is connected, or gets connected within `limit`
/// (false at once when it ended).
async fn connected_within(mut seen: watch::Receiver<Seen>, limit: std::time::Duration) -> bool {
    let settled = seen.wait_for(|s| s.connected || s.closed.is_some());
    matches!(tokio::time::timeout(limit, settled).await, Ok(Ok(s)) if s.connected)
}

/// The lab's stage detector (its own patterns, else the built-in table).
fn compile_detector(lab: &Lab) -> Option<StageDetector> {
    StageDetector::new(&lab.stage_patterns)
        .or_else(|_| StageDetector::new(&[]))
        .ok()
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

struct Pump {
    node: String,
    lab: Arc<Lab>,
    secrets: Vec<String>,
    log: Option<ConsoleLog>,
    detector: Option<StageDetector>,
    forward: bool,
    /// What the UI is sent goes through the same redaction as the log.
    ui_redactor: ConsoleRedactor,
    events: mpsc::UnboundedSender<EngineEvent>,
    seen: watch::Sender<Seen>,
    gaps: GapTracker,
    recorder: Option<Arc<super::boot_record::Recorder>>,
}

impl Pump {
    /// Each stage into the node's boot timeline, its line without secrets.
    fn record_stages(&self, stages: &[StageEvent]) {
        let Some(recorder) = &self.recorder else {
            return;
        };
        for event in stages {
            let mut line = event.line.clone();
            for secret in self.secrets.iter().filter(|s| !s.is_empty()) {
                line = line.replace(secret.as_str(), "<redacted>");
            }
            recorder.record(
                &self.node,
                crate::timeline::What::Console {
                    stage: event.stage,
                    line,
                },
            );
        }
    }

    async fn run(mut self, mut sol: Console, mut controls: mpsc::UnboundedReceiver<Control>) {
        loop {
            tokio::select! {
                // Controls first: one sent before the caller acts on the
                // host (a deploy's RestartStages before its power cycle)
                // applies before any output that action causes, however
                // far behind the console is.
                biased;
                control = controls.recv() => match control {
                    Some(Control::Close) | None => {
                        let _ = sol.input.send(ConsoleInput::Close).await;
                        // Drain until the driver says it closed.
                        while let Some(event) = sol.events.recv().await {
                            if matches!(event, ConsoleEvent::Closed { .. }) {
                                break;
                            }
                        }
                        break;
                    }
                    Some(control) => self.control(control, &sol).await,
                },
                event = sol.events.recv() => match event {
                    Some(event) => {
                        if !self.console_event(event) {
                            break;
                        }
                    }
                    None => break,
                },
            }
        }
        if let Some(log) = self.log {
            let _ = log.close();
        }
    }

    /// False when the console ended for good.
    fn console_event(&mut self, event: ConsoleEvent) -> bool {
        let node = self.node.clone();
        match event {
            ConsoleEvent::Data(bytes) => {
                if let Some(log) = self.log.as_mut() {
                    let _ = log.write(&bytes);
                }
                let mut stages = self
                    .detector
                    .as_mut()
                    .map(|d| d.feed(&bytes))
                    .unwrap_or_default();
                self.record_stages(&stages);
                let failure = stages.iter().rev().find(|s| s.stage.is_failure()).cloned();
                if let Some(latest) = stages.pop() {
                    let _ = self.events.send(EngineEvent::ConsoleStage {
                        node: node.clone(),
                        stage: latest.stage,
                        line: latest.line.clone(),
                    });
                    self.seen.send_modify(|s| {
                        s.stage = Some(latest);
                        if failure.is_some() {
                            s.failure = failure;
                        }
                    });
                }
                self.show(&bytes);
                true
            }
            ConsoleEvent::Connected => {
                self.seen.send_modify(|s| s.connected = true);
                if let Some(gap) = self.gaps.connected(now_ms()) {
                    self.mark(gap);
                }
                self.status(true, None);
                true
            }
            ConsoleEvent::Reconnecting { reason, after } => {
                self.gaps.lost(now_ms(), &reason);
                self.seen.send_modify(|s| s.connected = false);
                let message = format!("{reason}; reconnecting in {} s", after.as_secs().max(1));
                self.status(false, Some(message));
                true
            }
            ConsoleEvent::Closed { reason } => {
                if let Some(gap) = self.gaps.closed(now_ms(), &reason) {
                    self.mark(gap);
                }
                self.status(false, Some(reason.clone()));
                self.seen.send_modify(|s| {
                    s.connected = false;
                    s.closed = Some(reason);
                });
                false
            }
        }
    }

    /// Sends console bytes to the UI (redacted as the log is) while it watches.
    fn show(&mut self, bytes: &[u8]) {
        if !self.forward {
            return;
        }
        let mut shown = Vec::with_capacity(bytes.len());
        self.ui_redactor.push(bytes, &mut shown);
        if !shown.is_empty() {
            let node = self.node.clone();
            let _ = self
                .events
                .send(EngineEvent::ConsoleData { node, bytes: shown });
        }
    }

    /// A gap in the console: a marker line in the log and the pane, and
    /// counted for whoever waits on the console (a deploy says so).
    fn mark(&mut self, gap: Gap) {
        tracing::warn!(node = %self.node, "{}", gap.describe());
        if let Some(recorder) = &self.recorder {
            let detail = gap.describe();
            recorder.record(&self.node, crate::timeline::What::ConsoleGap { detail });
        }
        let marker = gap.marker();
        self.seen.send_modify(|s| {
            s.gaps += 1;
            s.last_gap = Some(gap);
        });
        if let Some(log) = self.log.as_mut() {
            let _ = log.write(marker.as_bytes());
        }
        self.show(marker.as_bytes());
    }

    fn status(&self, connected: bool, message: Option<String>) {
        let _ = self.events.send(EngineEvent::ConsoleStatus {
            node: self.node.clone(),
            connected,
            message,
        });
    }

    async fn control(&mut self, control: Control, sol: &sol_driver::Console) {
        match control {
            Control::RestartStages => {
                if let Some(d) = self.detector.as_mut() {
                    d.reset();
                }
                self.seen.send_modify(|s| {
                    s.stage = None;
                    s.failure = None;
                });
            }
            Control::Send(bytes) => {
                let _ = sol.input.send(ConsoleInput::Data(bytes)).await;
            }
            Control::Break => {
                let _ = sol.input.send(ConsoleInput::Break).await;
            }
            Control::RetryNow => {
                let _ = sol.input.send(ConsoleInput::RetryNow).await;
            }
            Control::Secrets(more) => {
                // The redactor's secrets are fixed: reopen the log with more.
                self.secrets.extend(more);
                self.ui_redactor = ConsoleRedactor::new(&self.secrets);
                if let Some(log) = self.log.take() {
                    let _ = log.close();
                }
                if let Some(node) = self.lab.node(&self.node) {
                    self.log = open_log(&self.lab, node, &self.secrets);
                }
            }
            Control::Forward(on) => self.forward = on,
            Control::Close => {}
        }
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
