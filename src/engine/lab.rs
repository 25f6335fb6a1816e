//! The `Lab` handle the CLI and the TUI share: commands in, events out.
//! It opens the store, enrolls lab.toml's nodes, recovers nodes whose
//! petitlab died mid-action, and runs each action on its own task.

use std::sync::{Arc, Mutex, MutexGuard};

use serde::Serialize;
use tokio::sync::mpsc;

use super::lifecycle::{self, Recovery, State, Step};
use super::store::{Event, Holder, NodeRecord, Store, StoreError};
use crate::boot::{BootError, PetitbootBoot};
use crate::inventory::{Lab, Node};

/// What an action reports while it runs.
#[derive(Debug, Clone, Serialize, serde::Deserialize)]
#[serde(tag = "event", rename_all = "kebab-case")]
pub enum EngineEvent {
    /// A state or step change (also stored, with an event).
    State {
        node: String,
        state: State,
        step: Option<Step>,
        reason: Option<String>,
    },
    /// Progress within a step: what is happening, and how far (0..=1) when known.
    Progress {
        node: String,
        step: Step,
        message: String,
        fraction: Option<f64>,
    },
    /// A power/boot-device reading from the poller (`error` when the BMC failed).
    Reading {
        node: String,
        power_on: Option<bool>,
        boot_device: Option<String>,
        error: Option<String>,
        /// Unix milliseconds.
        at: i64,
    },
    /// A DCMI power reading, for BMCs that offer it.
    PowerDraw { node: String, watts: u16, at: i64 },
    /// The boot stage a watched console shows.
    ConsoleStage {
        node: String,
        stage: crate::console::Stage,
        line: String,
    },
    /// Output of a console the UI watches (`Command::WatchConsole`).
    ConsoleData { node: String, bytes: Vec<u8> },
    /// A watched console's connection: up, or why not.
    ConsoleStatus {
        node: String,
        connected: bool,
        message: Option<String>,
    },
    /// Where the node's current boot got to (a milestone of
    /// [`crate::timeline::phases::Milestone`]), and the diagnosis' headline
    /// when it stalled there.
    BootStatus {
        node: String,
        reached: Option<String>,
        stalled: Option<String>,
    },
    /// An action ended: the state it left the node in, or why it failed.
    Finished {
        node: String,
        action: Action,
        ok: bool,
        state: Option<State>,
        message: String,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Action {
    Deploy,
    Undeploy,
    Abort,
    Power(crate::ipmi::chassis::PowerAction),
    /// One-shot boot device override.
    BootDevice(crate::ipmi::chassis::BootDevice),
    /// The boot interface's prepare_ramdisk (deploy config, no agent token).
    PrepareRamdisk,
}

impl Action {
    pub fn name(self) -> &'static str {
        match self {
            Action::Deploy => "deploy",
            Action::Undeploy => "undeploy",
            Action::Abort => "abort",
            Action::Power(_) => "power",
            Action::BootDevice(_) => "boot device",
            Action::PrepareRamdisk => "prepare-ramdisk",
        }
    }
}

#[derive(Debug, Clone)]
pub struct Command {
    pub action: Action,
    pub node: String,
}

tokio::task_local! {
    /// Who asked for the action this task runs, when not this process's
    /// user: a lab service's client.
    static ACTOR: String;
}

#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Boot(#[from] BootError),
}

/// Boots per node the lab-wide stage durations are taken over.
const STATS_BOOTS_PER_NODE: usize = 5;

/// Everything an action needs; shared by the action tasks.
pub struct Engine {
    pub lab: Arc<Lab>,
    pub boot: PetitbootBoot,
    store: Arc<Mutex<Store>>,
    pub holder: Holder,
    /// The nodes' consoles, shared by actions and the UI.
    pub consoles: Arc<super::console_watch::ConsoleHub>,
    /// The nodes' boot timelines.
    pub recorder: Arc<super::boot_record::Recorder>,
    events: mpsc::UnboundedSender<EngineEvent>,
}

impl Engine {
    /// The store's path for a lab.
    pub fn store_path(lab: &Lab) -> std::path::PathBuf {
        lab.state_dir.join("petitlab.db")
    }

    /// Opens the lab's store, enrolls new nodes and recovers interrupted ones.
    pub fn open(
        lab: Arc<Lab>,
    ) -> Result<(Arc<Engine>, mpsc::UnboundedReceiver<EngineEvent>), EngineError> {
        let store = Store::open(&Self::store_path(&lab))?;
        Self::with_store(lab, Arc::new(Mutex::new(store)))
    }

    pub fn with_store(
        lab: Arc<Lab>,
        store: Arc<Mutex<Store>>,
    ) -> Result<(Arc<Engine>, mpsc::UnboundedReceiver<EngineEvent>), EngineError> {
        let (events, rx) = mpsc::unbounded_channel();
        let consoles = super::console_watch::ConsoleHub::new(lab.clone(), events.clone());
        let recorder =
            super::boot_record::Recorder::new(lab.clone(), store.clone(), events.clone());
        consoles.set_recorder(recorder.clone());
        Ok((Self::assemble(lab, store, consoles, recorder, events)?, rx))
    }

    /// The engine for a re-read lab.toml: the same store, consoles and event
    /// stream, so open consoles and running actions carry on.
    pub fn reloaded(&self, lab: Arc<Lab>) -> Result<Arc<Engine>, EngineError> {
        let engine = Self::assemble(
            lab.clone(),
            self.store.clone(),
            self.consoles.clone(),
            self.recorder.clone(),
            self.events.clone(),
        )?;
        self.recorder.set_lab(lab.clone());
        self.consoles.set_lab(lab);
        Ok(engine)
    }

    fn assemble(
        lab: Arc<Lab>,
        store: Arc<Mutex<Store>>,
        consoles: Arc<super::console_watch::ConsoleHub>,
        recorder: Arc<super::boot_record::Recorder>,
        events: mpsc::UnboundedSender<EngineEvent>,
    ) -> Result<Arc<Engine>, EngineError> {
        let boot = PetitbootBoot::new(&lab)?;
        let engine = Engine {
            lab,
            boot,
            store,
            holder: Holder::current(),
            consoles,
            recorder,
            events,
        };
        let names: Vec<&str> = engine.lab.nodes.iter().map(|n| n.name.as_str()).collect();
        engine.store().ensure_nodes(&names, State::Enroll.name())?;
        engine.recover()?;
        Ok(Arc::new(engine))
    }

    pub fn store(&self) -> MutexGuard<'_, Store> {
        self.store.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn shared_store(&self) -> Arc<Mutex<Store>> {
        self.store.clone()
    }

    /// Who the audit log names: the service's client that asked, or this
    /// process.
    pub fn who(&self) -> String {
        ACTOR
            .try_with(|actor| format!("{actor} via {}", self.holder))
            .unwrap_or_else(|_| self.holder.to_string())
    }

    /// `node`'s last boot, diagnosed now (`petitlab why`).
    pub fn why(&self, node: &str) -> Result<Option<crate::timeline::diagnose::Why>, String> {
        let n = self
            .lab
            .node(node)
            .ok_or_else(|| format!("no node named {node} in {}", self.lab.path.display()))?;
        super::boot_record::why(&self.store, &self.lab, n)
    }

    /// Lab-wide stage durations over each node's last boots.
    pub fn stage_stats(&self) -> Result<Vec<crate::timeline::phases::StageStats>, String> {
        let boots = self
            .store()
            .recent_boots(STATS_BOOTS_PER_NODE)
            .map_err(|e| e.to_string())?;
        Ok(crate::timeline::phases::stage_stats(&boots))
    }

    /// petitlab is about to power `node` on (or cycle or reset it): a new
    /// boot in its timeline, with the boot override as last read.
    /// `at`: when the power command went out (unix ms).
    pub fn boot_begins(&self, node: &str, at: i64, how: &str, boot_override: Option<&str>) {
        let reading = boot_override
            .map(str::to_string)
            .or_else(|| self.record(node).ok().and_then(|r| r.boot_device));
        self.recorder.power_on(node, at, how, reading.as_deref());
    }

    pub fn emit(&self, event: EngineEvent) {
        let _ = self.events.send(event);
    }

    /// What petitlab itself just set on a BMC, as the node's last reading
    /// (stored, and sent to the UI without waiting for the next poll).
    pub fn note_reading(&self, node: &str, power_on: Option<bool>, boot_device: Option<&str>) {
        let _ = self
            .store()
            .record_reading(node, power_on, boot_device, None);
        self.emit(EngineEvent::Reading {
            node: node.to_string(),
            power_on,
            boot_device: boot_device.map(str::to_string),
            error: None,
            at: super::store::now_ms(),
        });
    }

    pub fn event(&self, node: &str, action: &str, result: &str, detail: &str) -> Event {
        Event {
            node: Some(node.to_string()),
            who: self.who(),
            action: action.to_string(),
            result: result.to_string(),
            detail: detail.to_string(),
        }
    }

    pub fn record(&self, node: &str) -> Result<NodeRecord, StoreError> {
        self.store()
            .node(node)?
            .ok_or_else(|| StoreError::UnknownNode {
                node: node.to_string(),
            })
    }

    /// Nodes whose action's process is gone (this host, pid dead): a wait on
    /// the node is left to resume, anything else fails as "interrupted".
    fn recover(&self) -> Result<(), EngineError> {
        let mut store = self.store();
        let held: Vec<_> = store.reservations()?;
        for r in held {
            if r.holder.is_alive() != Some(false) {
                continue;
            }
            let Some(record) = store.node(&r.node)? else {
                store.break_reservation(
                    &r.node,
                    &self.event(&r.node, "recover", "ok", "node no longer in the store"),
                )?;
                continue;
            };
            let state: Option<State> = record.state.parse().ok();
            let step: Option<Step> = record.step.as_deref().and_then(|s| s.parse().ok());
            let during = step.map_or_else(|| record.state.clone(), |s| s.name().to_string());
            let what = format!("petitlab ({}) stopped during {during}", r.holder);
            match state.map_or(Recovery::Nothing, |s| lifecycle::recovery(s, step)) {
                Recovery::Resume(step) => {
                    let detail = format!(
                        "interrupted: {what}; `petitlab deploy {}` resumes it at {step}",
                        r.node
                    );
                    store.break_reservation(
                        &r.node,
                        &self.event(&r.node, "recover", "resumable", &detail),
                    )?;
                }
                Recovery::Fail(to) => {
                    let reason = format!("interrupted: {what}");
                    let event = self.event(&r.node, "recover", "failed", &reason);
                    store.transition(
                        &r.node,
                        &[record.state.as_str()],
                        to.name(),
                        step.map(Step::name),
                        Some(&reason),
                        &event,
                    )?;
                    store.end_deploy(&r.node)?;
                    store.break_reservation(
                        &r.node,
                        &self.event(&r.node, "recover", "ok", "reservation released"),
                    )?;
                    if let Some(node) = self.lab.node(&r.node) {
                        let _ = super::image::unstage(&self.lab, node);
                    }
                }
                Recovery::Nothing => {
                    store
                        .break_reservation(&r.node, &self.event(&r.node, "recover", "ok", &what))?;
                }
            }
        }
        Ok(())
    }

    pub fn node(&self, name: &str) -> Option<&Node> {
        self.lab.node(name)
    }
}

/// The handle: send commands, read events from the receiver `open` gave.
#[derive(Clone)]
pub struct LabHandle {
    engine: Arc<Engine>,
}

impl LabHandle {
    pub fn new(engine: Arc<Engine>) -> LabHandle {
        LabHandle { engine }
    }

    pub fn engine(&self) -> &Arc<Engine> {
        &self.engine
    }

    /// Starts the action on its own task; its progress and end arrive as events.
    pub fn send(&self, command: Command) {
        let this = self.clone();
        tokio::spawn(async move { this.run(command).await });
    }

    /// [`LabHandle::send`] on behalf of `who` (a service client, named in
    /// the audit log).
    pub fn send_as(&self, command: Command, who: String) {
        let this = self.clone();
        tokio::spawn(ACTOR.scope(who, async move { this.run(command).await }));
    }

    /// Runs the action to its end; its progress and end arrive as events,
    /// and the end is returned as `(ok, message)` too.
    pub async fn run(&self, command: Command) -> (bool, String) {
        let engine = self.engine.clone();
        {
            let Command { action, node } = command;
            let result = match engine.node(&node) {
                None => Err(format!(
                    "no node named {node:?} in {}",
                    engine.lab.path.display()
                )),
                Some(n) => {
                    let n = n.clone();
                    match action {
                        Action::Deploy => super::deploy::deploy(&engine, &n).await,
                        Action::Undeploy => super::undeploy::undeploy(&engine, &n).await,
                        Action::Abort => super::undeploy::abort(&engine, &n).await,
                        Action::Power(a) => super::manual::power(&engine, &n, a).await,
                        Action::BootDevice(d) => super::manual::boot_device(&engine, &n, d).await,
                        Action::PrepareRamdisk => super::manual::prepare_ramdisk(&engine, &n).await,
                    }
                }
            };
            let state = engine.record(&node).ok().and_then(|r| r.state.parse().ok());
            let (ok, message) = match result {
                Ok(message) => (true, message),
                Err(message) => (false, message),
            };
            engine.emit(EngineEvent::Finished {
                node,
                action,
                ok,
                state,
                message: message.clone(),
            });
            (ok, message)
        }
    }

    /// [`LabHandle::run`] on behalf of `who`.
    pub async fn run_as(&self, command: Command, who: String) -> (bool, String) {
        ACTOR.scope(who, self.run(command)).await
    }
}
