//! Where the dashboard's lab lives: an engine in this process, or a lab
//! service it attaches to over its socket. The App never knows which; the
//! loop in run.rs carries its effects out through this.

use std::sync::Arc;

use serde_json::{Value, json};
use tokio::sync::mpsc;

use super::app::Msg;
use super::bmc_info::{Fetched, Info};
use crate::boot::PetitbootBoot;
use crate::engine::bmc_ops::Toolbox;
use crate::engine::lab::{Command, Engine, EngineEvent, LabHandle};
use crate::engine::store::{EventRecord, NodeRecord, Reservation};
use crate::inventory::Lab;
use crate::service::Client;
use crate::service::protocol::{decode_bytes, encode_bytes};
use crate::timeline::diagnose::Why;
use crate::timeline::phases::StageStats;

/// What the console pane says of the write lock.
fn writer_note(params: &Value) -> String {
    match (params["you"].as_bool(), params["writer"].as_str()) {
        (Some(true), _) => "you have the write lock".into(),
        (_, Some(who)) => format!("read-only: {who} has the write lock"),
        _ => "nobody has the write lock; reopen the console to take it".into(),
    }
}

/// A BMC fetch for the detail pane gives up after this: its slot is freed
/// whatever the BMC does.
const BMC_FETCH_LIMIT: std::time::Duration = std::time::Duration::from_secs(60);

/// A timeline or stage-stats read gives up after this (the store answers
/// in milliseconds; a lab service may be far or busy).
const TIMELINE_LIMIT: std::time::Duration = std::time::Duration::from_secs(20);

/// Always an answer: the App holds a fetch slot until it comes.
async fn bounded<T>(
    read: impl std::future::Future<Output = Result<T, String>>,
) -> Result<T, String> {
    use futures::FutureExt;
    let read = tokio::time::timeout(TIMELINE_LIMIT, read);
    match std::panic::AssertUnwindSafe(read).catch_unwind().await {
        Ok(Ok(answer)) => answer,
        Ok(Err(_)) => Err(format!("no answer within {} s", TIMELINE_LIMIT.as_secs())),
        Err(_) => Err("reading the timeline failed (a bug in petitlab: see the log)".into()),
    }
}

fn parse<T: serde::de::DeserializeOwned>(value: &Value) -> Option<T> {
    serde_json::from_value(value.clone()).ok()
}

#[derive(Clone)]
pub enum Backend {
    Local {
        engine: Arc<Engine>,
        handle: LabHandle,
    },
    Service {
        client: Arc<Client>,
        lab: Arc<Lab>,
        /// Previews are rendered here, from the same lab.toml.
        boot: Arc<Option<PetitbootBoot>>,
        /// Where failures of fire-and-forget calls are reported.
        events: mpsc::UnboundedSender<EngineEvent>,
    },
}

impl Backend {
    pub fn local(engine: Arc<Engine>) -> Backend {
        let handle = LabHandle::new(engine.clone());
        Backend::Local { engine, handle }
    }

    /// Attaches to the service: its events (every node's, and the consoles
    /// the dashboard opens) arrive on the returned receiver.
    pub async fn service(
        client: Client,
        lab: Arc<Lab>,
    ) -> Result<(Backend, mpsc::UnboundedReceiver<EngineEvent>), crate::service::ClientError> {
        let mut notes = client
            .notifications()
            .expect("a new client's notifications");
        client.call("subscribe", json!({})).await?;
        let (tx, rx) = mpsc::unbounded_channel();
        let events = tx.clone();
        tokio::spawn(async move {
            while let Some((method, params)) = notes.recv().await {
                let event = match method.as_str() {
                    "event" => serde_json::from_value::<EngineEvent>(params).ok(),
                    "console" => Some(EngineEvent::ConsoleData {
                        node: params["node"].as_str().unwrap_or_default().to_string(),
                        bytes: decode_bytes(params["data"].as_str().unwrap_or_default())
                            .unwrap_or_default(),
                    }),
                    "console.writer" => Some(EngineEvent::ConsoleStatus {
                        node: params["node"].as_str().unwrap_or_default().to_string(),
                        connected: true,
                        message: Some(writer_note(&params)),
                    }),
                    _ => None,
                };
                if let Some(event) = event
                    && events.send(event).is_err()
                {
                    break;
                }
            }
        });
        let boot = Arc::new(PetitbootBoot::new(&lab).ok());
        let backend = Backend::Service {
            client: Arc::new(client),
            lab,
            boot,
            events: tx,
        };
        Ok((backend, rx))
    }

    pub fn lab(&self) -> &Lab {
        match self {
            Backend::Local { engine, .. } => &engine.lab,
            Backend::Service { lab, .. } => lab,
        }
    }

    pub fn is_service(&self) -> bool {
        matches!(self, Backend::Service { .. })
    }

    /// Starts an action; its progress and end arrive as events.
    pub fn send(&self, command: Command) {
        match self {
            Backend::Local { handle, .. } => handle.send(command),
            Backend::Service { client, events, .. } => {
                let (client, events) = (client.clone(), events.clone());
                tokio::spawn(async move {
                    let Command { action, node } = command;
                    let params = json!({"action": action, "nodes": [node]});
                    if let Err(e) = client.call("act", params).await {
                        let _ = events.send(EngineEvent::Finished {
                            node,
                            action,
                            ok: false,
                            state: None,
                            message: e.to_string(),
                        });
                    }
                });
            }
        }
    }

    /// Reads the store (off the loop) and sends it back as a Snapshot.
    pub fn snapshot(&self, msgs: &mpsc::UnboundedSender<Msg>) {
        let msgs = msgs.clone();
        match self {
            Backend::Local { engine, .. } => {
                let engine = engine.clone();
                tokio::task::spawn_blocking(move || {
                    let store = engine.store();
                    let (Ok(records), Ok(reservations), Ok(history)) = (
                        store.nodes(),
                        store.reservations(),
                        store.last_events(None, 500),
                    ) else {
                        return;
                    };
                    let _ = msgs.send(Msg::Snapshot {
                        records,
                        reservations,
                        history,
                    });
                });
            }
            Backend::Service { client, .. } => {
                let client = client.clone();
                tokio::spawn(async move {
                    let Ok(snapshot) = client.call("snapshot", json!({})).await else {
                        return;
                    };
                    let records: Option<Vec<NodeRecord>> = parse(&snapshot["records"]);
                    let reservations: Option<Vec<Reservation>> = parse(&snapshot["reservations"]);
                    let history: Option<Vec<EventRecord>> = parse(&snapshot["history"]);
                    if let (Some(records), Some(reservations), Some(history)) =
                        (records, reservations, history)
                    {
                        let _ = msgs.send(Msg::Snapshot {
                            records,
                            reservations,
                            history,
                        });
                    }
                });
            }
        }
    }

    /// What would be written for the node, and what is on disk now.
    pub fn preview(
        &self,
        node: String,
        stage: crate::boot::Stage,
        msgs: &mpsc::UnboundedSender<Msg>,
    ) {
        let msgs = msgs.clone();
        let this = self.clone();
        tokio::task::spawn_blocking(move || {
            let lab = this.lab();
            let Some(n) = lab.node(&node) else { return };
            let rendered = match &this {
                Backend::Local { engine, .. } => engine.boot.render(n, stage),
                Backend::Service { boot, .. } => match boot.as_ref() {
                    Some(boot) => boot.render(n, stage),
                    None => return,
                },
            };
            let on_disk = match &rendered {
                Ok(Some(r)) => std::fs::read_to_string(&r.config_path).ok(),
                _ => None,
            };
            let _ = msgs.send(Msg::Preview(super::app::Preview {
                node,
                stage,
                rendered,
                on_disk,
            }));
        });
    }

    /// Reads a node's event log or inventory off the loop; the answer (or
    /// why there is none) comes back as Msg::BmcInfo. Only reads: allowed
    /// to read-only dashboards.
    pub fn bmc_info(&self, node: String, what: Info, msgs: &mpsc::UnboundedSender<Msg>) {
        let msgs = msgs.clone();
        let this = self.clone();
        tokio::spawn(async move {
            use futures::FutureExt;
            // Always an answer: the App holds a fetch slot until it comes.
            let fetch = tokio::time::timeout(BMC_FETCH_LIMIT, this.toolbox(&node, what.op()));
            let answer = match std::panic::AssertUnwindSafe(fetch).catch_unwind().await {
                Ok(Ok(answer)) => answer,
                Ok(Err(_)) => Err(format!("no answer within {} s", BMC_FETCH_LIMIT.as_secs())),
                Err(_) => Err("reading the BMC failed (a bug in petitlab: see the log)".into()),
            };
            let _ = msgs.send(Msg::BmcInfo(Fetched::parse(node, what, answer)));
        });
    }

    /// Reads a node's last boot and its diagnosis off the loop; the answer
    /// (or why there is none) comes back as Msg::Timeline, filed under
    /// `node`. Only reads.
    pub fn timeline(&self, node: String, msgs: &mpsc::UnboundedSender<Msg>) {
        let msgs = msgs.clone();
        let this = self.clone();
        tokio::spawn(async move {
            let answer = bounded(this.why(&node)).await;
            let _ = msgs.send(Msg::Timeline { node, answer });
        });
    }

    /// Reads the lab-wide stage durations off the loop: Msg::Stages.
    pub fn stage_stats(&self, msgs: &mpsc::UnboundedSender<Msg>) {
        let msgs = msgs.clone();
        let this = self.clone();
        tokio::spawn(async move {
            let answer = bounded(this.stages()).await;
            let _ = msgs.send(Msg::Stages(answer));
        });
    }

    async fn why(&self, node: &str) -> Result<Option<Why>, String> {
        match self {
            Backend::Local { engine, .. } => {
                let (engine, node) = (engine.clone(), node.to_string());
                tokio::task::spawn_blocking(move || engine.why(&node))
                    .await
                    .map_err(|e| format!("reading the boot timeline failed: {e}"))?
            }
            Backend::Service { client, .. } => {
                let answer = client
                    .call("why", json!({"node": node}))
                    .await
                    .map_err(|e| e.to_string())?;
                serde_json::from_value(answer)
                    .map_err(|e| format!("the lab service's timeline of {node} is malformed: {e}"))
            }
        }
    }

    async fn stages(&self) -> Result<Vec<StageStats>, String> {
        match self {
            Backend::Local { engine, .. } => {
                let engine = engine.clone();
                tokio::task::spawn_blocking(move || engine.stage_stats())
                    .await
                    .map_err(|e| format!("reading the stage durations failed: {e}"))?
            }
            Backend::Service { client, .. } => {
                let answer = client
                    .call("stage-stats", json!({}))
                    .await
                    .map_err(|e| e.to_string())?;
                serde_json::from_value(answer)
                    .map_err(|e| format!("the lab service's stage durations are malformed: {e}"))
            }
        }
    }

    /// One toolbox operation on one node: in process over the node's
    /// console session when it has one (as the service does), else through
    /// the service.
    async fn toolbox(&self, node: &str, op: Toolbox) -> Result<Value, String> {
        match self {
            Backend::Local { engine, .. } => {
                let n = engine
                    .node(node)
                    .cloned()
                    .ok_or_else(|| format!("{node} is not in the lab"))?;
                let target = crate::engine::targets::management_target(&n)
                    .await
                    .map_err(|e| e.to_string())?;
                let mut bmc = engine.consoles.bmc(node, target);
                let result = op.run(&mut bmc).await;
                bmc.close().await;
                result.map_err(|e| e.to_string())
            }
            Backend::Service { client, .. } => {
                let rows = client
                    .call("toolbox", json!({"nodes": [node], "op": op}))
                    .await
                    .map_err(|e| e.to_string())?;
                let row = &rows[0];
                match row["ok"].as_bool() {
                    Some(true) => Ok(row["result"].clone()),
                    _ => Err(row["error"]
                        .as_str()
                        .unwrap_or("the lab service gave no answer for the node")
                        .to_string()),
                }
            }
        }
    }

    /// Starts or stops showing a node's console (with its scrollback, from
    /// a service).
    pub fn watch_console(&self, node: String, on: bool) {
        match self {
            Backend::Local { engine, .. } => {
                let engine = engine.clone();
                tokio::spawn(async move {
                    if let Some(n) = engine.node(&node).cloned()
                        && let Err(why) = engine.consoles.watch_ui(&n, on).await
                    {
                        engine.emit(EngineEvent::ConsoleStatus {
                            node,
                            connected: false,
                            message: Some(why),
                        });
                    }
                });
            }
            Backend::Service { client, events, .. } => {
                let (client, events) = (client.clone(), events.clone());
                tokio::spawn(async move {
                    let (method, params) = match on {
                        true => ("console.attach", json!({"node": node, "mode": "auto"})),
                        false => ("console.detach", json!({"node": node})),
                    };
                    let status = match client.call(method, params).await {
                        Ok(attached) if on => EngineEvent::ConsoleStatus {
                            node,
                            connected: true,
                            message: Some(writer_note(&attached)),
                        },
                        Ok(_) => return,
                        Err(e) => EngineEvent::ConsoleStatus {
                            node,
                            connected: false,
                            message: Some(e.to_string()),
                        },
                    };
                    let _ = events.send(status);
                });
            }
        }
    }

    pub fn console_input(&self, node: String, bytes: Vec<u8>) {
        match self {
            Backend::Local { engine, .. } => engine.consoles.send(&node, bytes),
            Backend::Service { .. } => self.console_call(
                "console.input",
                json!({"node": node, "data": encode_bytes(&bytes)}),
            ),
        }
    }

    pub fn console_break(&self, node: String) {
        match self {
            Backend::Local { engine, .. } => engine.consoles.send_break(&node),
            Backend::Service { .. } => self.console_call("console.break", json!({"node": node})),
        }
    }

    /// Console input to a service: refused while another client holds the
    /// write lock, which the pane then says.
    fn console_call(&self, method: &'static str, params: Value) {
        let Backend::Service { client, events, .. } = self else {
            return;
        };
        let (client, events) = (client.clone(), events.clone());
        tokio::spawn(async move {
            let node = params["node"].as_str().unwrap_or_default().to_string();
            if let Err(e) = client.call(method, params).await {
                let _ = events.send(EngineEvent::ConsoleStatus {
                    node,
                    connected: true,
                    message: Some(e.to_string()),
                });
            }
        });
    }
}
