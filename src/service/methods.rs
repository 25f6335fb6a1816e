//! The service's methods: what each request does, on behalf of the peer
//! that asked (named in the audit log).

use std::collections::HashSet;
use std::sync::Arc;

use futures::StreamExt;
use serde::Deserialize;
use serde_json::{Value, json};

use super::fanout::Mode;
use super::protocol::{RpcError, code, decode_bytes, encode_bytes};
use super::server::{Conn, Service};
use crate::engine::bmc_ops::{self, PowerVerb, Toolbox};
use crate::engine::lab::{Action, Command, Engine, LabHandle};
use crate::engine::report;
use crate::engine::targets::management_target;
use crate::hardware::{Bmc, BmcError, BootDevice};
use crate::inventory::Node;

/// BMCs one request talks to at once.
const CONCURRENCY: usize = 64;
/// Most of a console log one `console.log` call returns.
const LOG_CHUNK: u64 = 1 << 20;

fn params<T: for<'de> Deserialize<'de>>(value: Value) -> Result<T, RpcError> {
    let value = if value.is_null() { json!({}) } else { value };
    serde_json::from_value(value).map_err(|e| RpcError::params(e.to_string()))
}

fn known<'a>(engine: &'a Engine, name: &str) -> Result<&'a Node, RpcError> {
    engine.node(name).ok_or_else(|| {
        RpcError::failed(format!(
            "no node named {name:?} in {}",
            engine.lab.path.display()
        ))
    })
}

/// Named nodes, each once, all of them known (or nothing happens).
fn nodes(engine: &Engine, names: &[String]) -> Result<Vec<Node>, RpcError> {
    let mut seen = HashSet::new();
    names
        .iter()
        .filter(|n| seen.insert(n.as_str()))
        .map(|n| known(engine, n).cloned())
        .collect()
}

#[derive(Deserialize)]
struct Nodes {
    #[serde(default)]
    nodes: Vec<String>,
}

#[derive(Deserialize)]
struct OneNode {
    node: String,
}

pub(super) async fn call(
    svc: &Service,
    conn: &Arc<Conn>,
    method: &str,
    p: Value,
) -> Result<Value, RpcError> {
    let engine = svc.engine();
    let who = conn.peer.who();
    match method {
        "hello" => Ok(json!({
            "service": "petitlab",
            "version": env!("CARGO_PKG_VERSION"),
            // Absolute: the client compares it with its own lab.toml.
            "lab": std::fs::canonicalize(&engine.lab.path).unwrap_or_else(|_| engine.lab.path.clone()),
            "pid": std::process::id(),
            "user": conn.peer.user,
            "client": conn.id,
            "nodes": engine.lab.nodes.iter().map(|n| &n.name).collect::<Vec<_>>(),
        })),
        "subscribe" => {
            #[derive(Deserialize)]
            struct P {
                nodes: Option<Vec<String>>,
            }
            let P { nodes: names } = params(p)?;
            if let Some(names) = &names {
                nodes(&engine, names)?;
            }
            conn.state().subscribed = Some(names.map(|n| n.into_iter().collect()));
            Ok(json!({}))
        }
        "status" => {
            let Nodes { nodes: names } = params(p)?;
            nodes(&engine, &names)?;
            blocking(move || report::status_rows(&engine, &names)).await
        }
        "history" => {
            #[derive(Deserialize)]
            struct P {
                node: Option<String>,
                limit: Option<usize>,
            }
            let P { node, limit } = params(p)?;
            if let Some(n) = &node {
                known(&engine, n)?;
            }
            let limit = limit.unwrap_or(50).min(10_000);
            blocking(move || {
                let events = engine.store().last_events(node.as_deref(), limit)?;
                Ok(serde_json::to_value(events).unwrap_or_default())
            })
            .await
        }
        "snapshot" => blocking(move || report::snapshot(&engine)).await,
        "act" => {
            #[derive(Deserialize)]
            struct P {
                action: Action,
                nodes: Vec<String>,
            }
            let P {
                action,
                nodes: names,
            } = params(p)?;
            let handle = LabHandle::new(engine.clone());
            let targets = nodes(&engine, &names)?;
            // The same action already running here (a client that stopped
            // watching and came back): watched, not started twice.
            let running: Vec<String> = {
                let e = engine.clone();
                let held = tokio::task::spawn_blocking(move || e.store().reservations())
                    .await
                    .map_err(|e| RpcError::failed(e.to_string()))?
                    .map_err(|e| RpcError::failed(e.to_string()))?;
                held.into_iter()
                    .filter(|r| r.holder == engine.holder && r.action == action.name())
                    .map(|r| r.node)
                    .collect()
            };
            let (mut started, mut watching) = (Vec::new(), Vec::new());
            for node in &targets {
                if running.contains(&node.name) {
                    watching.push(node.name.clone());
                    continue;
                }
                let command = Command {
                    action,
                    node: node.name.clone(),
                };
                // On the service's own task: the client may go away.
                handle.send_as(command, who.clone());
                started.push(node.name.clone());
            }
            Ok(json!({"started": started, "watching": watching}))
        }
        "power" => {
            #[derive(Deserialize)]
            struct P {
                nodes: Vec<String>,
                verb: PowerVerb,
            }
            let P { nodes: names, verb } = params(p)?;
            let targets = nodes(&engine, &names)?;
            let action = format!(
                "power {}",
                serde_json::to_value(verb)
                    .unwrap_or_default()
                    .as_str()
                    .unwrap_or_default()
            );
            let sent = crate::engine::store::now_ms();
            let results = each_bmc(
                &engine,
                targets,
                &who,
                &action,
                verb != PowerVerb::Status,
                |mut bmc| async move {
                    let result = bmc_ops::power(&mut bmc, verb).await;
                    (bmc, result)
                },
            )
            .await;
            super::boots::record_boots(&engine, &results, sent);
            Ok(results)
        }
        "bootdev" => {
            #[derive(Deserialize)]
            struct P {
                nodes: Vec<String>,
                device: BootDevice,
                #[serde(default)]
                persistent: bool,
            }
            let P {
                nodes: names,
                device,
                persistent,
            } = params(p)?;
            let targets = nodes(&engine, &names)?;
            let results = each_bmc(
                &engine,
                targets,
                &who,
                "boot-device",
                true,
                |mut bmc| async move {
                    let result = bmc_ops::bootdev(&mut bmc, device, persistent).await;
                    (bmc, result)
                },
            )
            .await;
            super::boots::note_boot_device(&engine, &results, device);
            Ok(results)
        }
        "toolbox" => {
            #[derive(Deserialize)]
            struct P {
                nodes: Vec<String>,
                op: Toolbox,
            }
            let P { nodes: names, op } = params(p)?;
            let targets = nodes(&engine, &names)?;
            let audited = op.audited_as();
            Ok(each_bmc(
                &engine,
                targets,
                &who,
                audited.unwrap_or_default(),
                audited.is_some(),
                |mut bmc| async move {
                    let result = op.run(&mut bmc).await;
                    (bmc, result)
                },
            )
            .await)
        }
        "why" | "stage-stats" => super::boots::call(engine, method, p).await,
        "resolve" => {
            #[derive(Deserialize)]
            struct P {
                range: Vec<String>,
            }
            let P { range } = params(p)?;
            let range = crate::inventory::range::parse_words(&range)
                .map_err(|e| RpcError::failed(e.to_string()))?;
            blocking(move || {
                let states = engine.store().nodes()?;
                let names = resolve(&engine, &range, &states)
                    .map_err(|e| format!("{e} (in {})", engine.lab.path.display()));
                Ok(match names {
                    Ok(names) => json!({"ok": true, "nodes": names}),
                    Err(e) => json!({"ok": false, "error": e}),
                })
            })
            .await
            .and_then(|v| match v["ok"].as_bool() {
                Some(true) => Ok(v["nodes"].clone()),
                _ => Err(RpcError::failed(v["error"].as_str().unwrap_or_default())),
            })
        }
        "console.attach" => {
            #[derive(Deserialize)]
            struct P {
                node: String,
                #[serde(default = "auto")]
                mode: Mode,
            }
            fn auto() -> Mode {
                Mode::Auto
            }
            let P { node, mode } = params(p)?;
            let node = known(&engine, &node)?.clone();
            if conn.state().consoles.contains_key(&node.name) {
                return Err(RpcError::failed(format!(
                    "already attached to the console of {}",
                    node.name
                )));
            }
            let first = svc.fanout.add_viewer(&node.name, conn.id);
            if first
                && !engine.consoles.is_kept(&node.name)
                && let Err(why) = engine.consoles.watch_ui(&node, true).await
            {
                svc.fanout.remove_viewer(&node.name, conn.id);
                return Err(RpcError::failed(format!("node {}: {why}", node.name)));
            }
            // The scrollback goes out first, then the console's output from
            // where it ends (see Conn::forward).
            conn.attach_console(&svc.fanout, &node.name).await;
            let writer = svc.fanout.claim(&node.name, conn.id, &conn.peer.user, mode);
            let you = writer.as_ref().is_some_and(|w| w.client == conn.id);
            Ok(json!({
                "node": node.name,
                "writer": writer.map(|w| w.user),
                "you": you,
                "log": crate::console::log_path(&engine.lab, &node),
            }))
        }
        "console.detach" => {
            let OneNode { node } = params(p)?;
            svc.detach_console(conn, &node).await;
            Ok(json!({}))
        }
        "console.input" | "console.break" => {
            #[derive(Deserialize)]
            struct P {
                node: String,
                #[serde(default)]
                data: String,
            }
            let P { node, data } = params(p)?;
            known(&engine, &node)?;
            let writer = svc.fanout.writer(&node);
            if writer.as_ref().is_none_or(|w| w.client != conn.id) {
                let held = match writer {
                    Some(w) => format!("{} holds it", w.user),
                    None => "nobody holds it; attach again to take it".into(),
                };
                return Err(RpcError::new(
                    code::READ_ONLY,
                    format!("read-only on the console of {node}: {held} (--force takes it)"),
                ));
            }
            if method == "console.break" {
                engine.consoles.send_break(&node);
            } else {
                engine.consoles.send(&node, decode_bytes(&data)?);
            }
            Ok(json!({}))
        }
        "console.deactivate" => console_deactivate(svc, &who, p).await,
        "console.log" => {
            #[derive(Deserialize)]
            struct P {
                node: String,
                #[serde(default)]
                offset: u64,
            }
            let P { node, offset } = params(p)?;
            let node = known(&engine, &node)?.clone();
            let path = crate::console::log_path(&engine.lab, &node);
            blocking(move || read_log(&path, offset)).await
        }
        "reload" => {
            let report = svc.reload().await.map_err(RpcError::failed)?;
            let detail = format!(
                "added {:?}, removed {:?}, changed {:?}",
                report.added, report.removed, report.changed
            );
            let event = crate::engine::store::Event {
                node: None,
                who: format!("{who} via {}", engine.holder),
                action: "reload".into(),
                result: "ok".into(),
                detail,
            };
            let _ = engine.store().append_event(&event);
            Ok(serde_json::to_value(report).unwrap_or_default())
        }
        "sessions" => match &svc.options.sessions {
            Some(sessions) => Ok(sessions()),
            None => Err(RpcError::new(
                code::METHOD_NOT_FOUND,
                "sessions: only a virtual lab (petitlab demo) counts its BMCs' sessions",
            )),
        },
        other => Err(RpcError::new(
            code::METHOD_NOT_FOUND,
            format!("no method {other:?}"),
        )),
    }
}

/// The nodes a range names in the service's lab, states from its store.
fn resolve(
    engine: &Engine,
    range: &crate::inventory::range::NodeRange,
    records: &[crate::engine::store::NodeRecord],
) -> Result<Vec<String>, crate::inventory::range::RangeError> {
    use crate::inventory::range::Candidate;
    let states: std::collections::HashMap<&str, &str> = records
        .iter()
        .map(|r| (r.name.as_str(), r.state.as_str()))
        .collect();
    let candidates: Vec<Candidate> = engine
        .lab
        .nodes
        .iter()
        .map(|n| Candidate {
            name: &n.name,
            group: n.group.as_deref(),
            state: states.get(n.name.as_str()).and_then(|s| s.parse().ok()),
        })
        .collect();
    range.resolve(&candidates)
}

async fn blocking(
    job: impl FnOnce() -> Result<Value, crate::engine::store::StoreError> + Send + 'static,
) -> Result<Value, RpcError> {
    match tokio::task::spawn_blocking(job).await {
        Ok(result) => result.map_err(|e| RpcError::failed(e.to_string())),
        Err(e) => Err(RpcError::failed(format!("the request failed: {e}"))),
    }
}

/// A BMC connection for a request: through the node's console session
/// when the service holds one.
async fn open_bmc(engine: &Engine, node: &Node) -> Result<Bmc, RpcError> {
    let target = management_target(node)
        .await
        .map_err(|e| RpcError::failed(e.to_string()))?;
    Ok(engine.consoles.bmc(&node.name, target))
}

/// Runs `job` on every node's BMC, at most CONCURRENCY at a time: one
/// `{node, ok, result|error}` per node, in the order named; changes go to
/// the audit log under the client's name.
async fn each_bmc<F, Fut>(
    engine: &Arc<Engine>,
    targets: Vec<Node>,
    who: &str,
    action: &str,
    audited: bool,
    job: F,
) -> Value
where
    F: Fn(Bmc) -> Fut,
    Fut: Future<Output = (Bmc, Result<Value, BmcError>)>,
{
    let job = &job;
    let mut results: Vec<(usize, Value)> = futures::stream::iter(targets.into_iter().enumerate())
        .map(|(i, node)| async move {
            let result = match open_bmc(engine, &node).await {
                Ok(bmc) => {
                    let (mut bmc, result) = job(bmc).await;
                    bmc.close().await;
                    result.map_err(|e| format!("node {}: {e}", node.name))
                }
                Err(e) => Err(e.message),
            };
            if audited {
                let (verdict, detail) = match &result {
                    Ok(v) => ("ok", v["summary"].as_str().unwrap_or_default().to_string()),
                    Err(e) => ("failed", e.clone()),
                };
                let mut event = engine.event(&node.name, action, verdict, &detail);
                event.who = format!("{who} via {}", engine.holder);
                let _ = engine.store().append_event(&event);
            }
            let row = match result {
                Ok(v) => json!({"node": node.name, "ok": true, "result": v}),
                Err(e) => json!({"node": node.name, "ok": false, "error": e}),
            };
            (i, row)
        })
        .buffer_unordered(CONCURRENCY)
        .collect()
        .await;
    results.sort_by_key(|(i, _)| *i);
    Value::Array(results.into_iter().map(|(_, v)| v).collect())
}

/// Up to LOG_CHUNK bytes of the log from `offset`; a file now shorter than
/// `offset` was rotated and is read from its start.
fn read_log(
    path: &std::path::Path,
    offset: u64,
) -> Result<Value, crate::engine::store::StoreError> {
    use std::io::{Read, Seek, SeekFrom};
    let read = || -> std::io::Result<(Vec<u8>, u64, bool)> {
        let mut file = std::fs::File::open(path)?;
        let len = file.metadata()?.len();
        let rotated = len < offset;
        let start = if rotated { 0 } else { offset };
        file.seek(SeekFrom::Start(start))?;
        let mut bytes = Vec::new();
        file.take(LOG_CHUNK).read_to_end(&mut bytes)?;
        let end = start + bytes.len() as u64;
        Ok((bytes, end, rotated))
    };
    Ok(match read() {
        Ok((bytes, end, rotated)) => json!({
            "path": path, "data": encode_bytes(&bytes), "offset": end, "rotated": rotated, "exists": true,
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            json!({"path": path, "data": "", "offset": 0, "rotated": false, "exists": false})
        }
        Err(e) => json!({"path": path, "error": e.to_string()}),
    })
}

/// `console.deactivate {node}`: frees the node's SOL payload (a killed
/// client elsewhere left it active) and reconnects the console the service
/// holds for it, kept open or watched by clients. The service's own hold
/// is let go first, so that its session deactivates cleanly and the fresh
/// one activates after the payload is free.
async fn console_deactivate(svc: &Service, who: &str, p: Value) -> Result<Value, RpcError> {
    use crate::console::deactivate::{check_sol, deactivate_sol, describe};
    use crate::ipmi::sol_driver::Deactivation;
    let OneNode { node } = params(p)?;
    let engine = svc.engine();
    let node = known(&engine, &node)?.clone();
    // Before anything is let go.
    check_sol(&node).map_err(|e| RpcError::failed(e.to_string()))?;
    let hub = &engine.consoles;
    let kept = hub.is_kept(&node.name);
    // Clients watch a kept console through the kept session, else
    // through the UI's hold (see `console.attach`).
    let watched = !kept && svc.fanout.has_viewers(&node.name);
    // Connected: the service's own console holds the payload, and letting
    // it go deactivates it before the fresh session asks.
    let held = (kept || watched)
        && hub
            .wait_connected(&node.name, std::time::Duration::ZERO)
            .await;
    if kept {
        hub.let_go(&node.name).await;
    }
    if watched {
        let _ = hub.watch_ui(&node, false).await;
    }
    let deactivated = deactivate_sol(&node).await;
    // Another holder (a deploy watching the console) keeps the session:
    // if the BMC ended it, the next attach must not reuse it half-dead.
    let ended = tokio::time::Instant::now() + std::time::Duration::from_secs(3);
    while hub
        .wait_connected(&node.name, std::time::Duration::ZERO)
        .await
        && deactivated.is_ok()
        && tokio::time::Instant::now() < ended
    {
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    // Reconnected whatever the outcome: the service's console was let go.
    let mut reopened = Ok(());
    if kept {
        reopened = hub.keep_open(&node).await;
    }
    if watched && reopened.is_ok() {
        reopened = hub.watch_ui(&node, true).await;
    }
    let outcome = deactivated.map_err(|e| RpcError::failed(e.to_string()))?;
    let mut message = match outcome {
        Deactivation::WasInactive if held => format!(
            "{}: SOL payload deactivated (the lab service's own console held it)",
            node.name
        ),
        outcome => describe(&node.name, outcome),
    };
    let reconnected = match reopened {
        Err(why) => {
            message.push_str(&format!(
                "; the lab service's console did not reopen: {why}"
            ));
            false
        }
        Ok(()) if kept || watched => {
            let up = hub
                .wait_connected(&node.name, std::time::Duration::from_secs(5))
                .await;
            message.push_str(if up {
                "; the lab service's console reconnected"
            } else {
                "; the lab service's console is reconnecting"
            });
            up
        }
        Ok(()) => false,
    };
    let event = crate::engine::store::Event {
        node: Some(node.name.clone()),
        who: format!("{who} via {}", engine.holder),
        action: "console-deactivate".into(),
        result: "ok".into(),
        detail: message.clone(),
    };
    let _ = engine.store().append_event(&event);
    Ok(json!({
        "node": node.name,
        "deactivated": held || outcome == Deactivation::Deactivated,
        "reconnected": reconnected,
        "message": message,
    }))
}
