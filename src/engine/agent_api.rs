//! The deploy agent's API under `/v1/` (docs/agent-api.md): checks the
//! deploy token and records what the agent reports in the store. The
//! deploy driver, which holds the node's reservation, reads those records
//! and moves the state machine; this handler never changes a node's state.

use std::sync::{Arc, Mutex};

use sha2::{Digest, Sha256};

use super::store::{AgentResult, Deploy, Event, IscsiTarget, Store, StoreError};
use crate::inventory::{DeployInterface, Lab, MacAddr, Node, valid_iscsi_name};
use crate::serve::http::{ApiHandler, ApiRequest, ApiResponse};

pub const TOKEN_HEADER: &str = "X-Petitlab-Token";

/// A fresh deploy token: 128 random bits as 32 hex digits.
pub fn new_token() -> String {
    let bytes: [u8; 16] = rand::random();
    hex(&bytes)
}

/// What the store keeps of a token: its SHA-256, never the token itself.
pub fn token_hash(token: &str) -> String {
    hex(&Sha256::digest(token.as_bytes()))
}

pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The kernel arguments that tell the deploy ramdisk where to call back.
pub fn ramdisk_args(api_url: &str, token: &str) -> Vec<String> {
    vec![
        format!("petitlab.api={api_url}"),
        format!("petitlab.token={token}"),
    ]
}

pub struct AgentApi {
    lab: Arc<Lab>,
    store: Arc<Mutex<Store>>,
}

/// A refused or failed call: status and the `error=` text.
struct Refusal(u16, String);

type Reply = Result<String, Refusal>;

impl AgentApi {
    pub fn new(lab: Arc<Lab>, store: Arc<Mutex<Store>>) -> AgentApi {
        AgentApi { lab, store }
    }

    fn store(&self) -> std::sync::MutexGuard<'_, Store> {
        self.store.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn call(&self, request: &ApiRequest, call: &str) -> Reply {
        let body = parse_body(&request.body)?;
        let node = match call {
            "lookup" => self.node_by_macs(&body)?,
            _ => self.node_by_name(&body)?,
        };
        let deploy = self.authorize(request, call, node)?;
        if deploy.result.is_some() {
            let msg = format!("node {}: the agent already reported its result", node.name);
            return Err(Refusal(409, msg));
        }
        let mut store = self.store();
        let who = who(request);
        let name = node.name.as_str();
        let stored = |r: Result<bool, StoreError>| match r {
            Ok(true) => Ok(()),
            Ok(false) => Err(Refusal(409, format!("node {name}: no deploy in progress"))),
            Err(e) => Err(Refusal(500, e.to_string())),
        };
        match call {
            "lookup" => {
                stored(store.agent_lookup(name))?;
                audit(&mut store, name, &who, "agent-lookup", "ok", "")?;
                Ok(lookup_reply(
                    node,
                    &deploy,
                    self.lab.deploy.heartbeat.as_secs(),
                ))
            }
            "heartbeat" => {
                stored(store.agent_heartbeat(name))?;
                Ok(format!("ok=1\n{}", iscsi_state(node, &deploy)))
            }
            "iscsi" => {
                if node.deploy_interface != DeployInterface::Iscsi {
                    let msg = format!(
                        "node {name}: deploy_interface is {}, not iscsi",
                        node.deploy_interface.name()
                    );
                    return Err(Refusal(409, msg));
                }
                let target = iscsi_target(&body)?;
                stored(store.iscsi_target(name, &target))?;
                let detail = format!(
                    "target {} portal {} lun {}",
                    target.target, target.portal, target.lun
                );
                audit(&mut store, name, &who, "agent-iscsi", "ok", &detail)?;
                Ok("ok=1\n".into())
            }
            "progress" => {
                let written = number(&body, "written")?;
                let total = number(&body, "total")?;
                stored(store.agent_progress(name, written, total))?;
                Ok("ok=1\n".into())
            }
            "done" => {
                let sha = required(&body, "sha256")?.to_ascii_lowercase();
                if sha != deploy.image_sha256 {
                    let reason = format!(
                        "image checksum mismatch: the agent read back {sha}, the image is {}",
                        deploy.image_sha256
                    );
                    stored(store.agent_result(
                        name,
                        &AgentResult::Failed {
                            reason: reason.clone(),
                        },
                    ))?;
                    audit(&mut store, name, &who, "agent-done", "refused", &reason)?;
                    return Err(Refusal(409, reason));
                }
                stored(store.agent_result(
                    name,
                    &AgentResult::Done {
                        sha256: sha.clone(),
                    },
                ))?;
                audit(
                    &mut store,
                    name,
                    &who,
                    "agent-done",
                    "ok",
                    &format!("sha256 {sha}"),
                )?;
                Ok("ok=1\n".into())
            }
            "failed" => {
                let reason = required(&body, "reason")?.to_string();
                stored(store.agent_result(
                    name,
                    &AgentResult::Failed {
                        reason: reason.clone(),
                    },
                ))?;
                audit(&mut store, name, &who, "agent-failed", "ok", &reason)?;
                Ok("ok=1\n".into())
            }
            _ => Err(Refusal(404, format!("no such call: {call}"))),
        }
    }

    fn node_by_macs(&self, body: &[(String, String)]) -> Result<&Node, Refusal> {
        let macs: Vec<&str> = values(body, "mac").collect();
        if macs.is_empty() {
            return Err(Refusal(400, "missing mac=".into()));
        }
        for raw in &macs {
            let mac: MacAddr = raw
                .parse()
                .map_err(|_| Refusal(400, format!("mac={raw} is not a MAC address")))?;
            if let Some(node) = self.lab.nodes.iter().find(|n| n.macs.contains(&mac)) {
                return Ok(node);
            }
        }
        Err(Refusal(404, format!("no node has MAC {}", macs.join(", "))))
    }

    fn node_by_name(&self, body: &[(String, String)]) -> Result<&Node, Refusal> {
        let name = required(body, "node")?;
        self.lab
            .node(name)
            .ok_or_else(|| Refusal(404, format!("no node named {name:?}")))
    }

    /// The node's deploy, if `request` carries its token. Refusals are audited.
    fn authorize(&self, request: &ApiRequest, call: &str, node: &Node) -> Result<Deploy, Refusal> {
        let token = request
            .header(TOKEN_HEADER)
            .map(|t| String::from_utf8_lossy(t).trim().to_string())
            .filter(|t| !t.is_empty());
        let mut store = self.store();
        let deploy = store
            .deploy(&node.name)
            .map_err(|e| Refusal(500, e.to_string()))?;
        let refusal = match (&token, &deploy) {
            (None, _) => Refusal(401, format!("{TOKEN_HEADER} header required")),
            (Some(_), None) => Refusal(403, format!("node {}: no deploy in progress", node.name)),
            (Some(t), Some(d)) if !same(&token_hash(t), &d.token_sha256) => {
                Refusal(403, format!("node {}: wrong deploy token", node.name))
            }
            (Some(_), Some(d)) => return Ok(d.clone()),
        };
        let detail = format!("{call} from {}: {}", request.peer, refusal.1);
        audit(
            &mut store,
            &node.name,
            &who(request),
            "agent-rejected",
            "refused",
            &detail,
        )?;
        Err(refusal)
    }
}

impl ApiHandler for AgentApi {
    fn handle(&self, request: &ApiRequest) -> ApiResponse {
        let reply = match (request.method.as_str(), request.path.as_str()) {
            ("GET" | "HEAD", "/v1/ping") => Ok("ok=petitlab\n".to_string()),
            ("POST", path) => match path.strip_prefix("/v1/") {
                Some(
                    call @ ("lookup" | "heartbeat" | "progress" | "iscsi" | "done" | "failed"),
                ) => self.call(request, call),
                _ => Err(Refusal(404, format!("no such call: {path}"))),
            },
            (method, path) => Err(Refusal(405, format!("{method} {path} is not an API call"))),
        };
        match reply {
            Ok(text) => ApiResponse::text(200, &text),
            Err(Refusal(status, error)) => {
                ApiResponse::text(status, &format!("error={}\n", one_line(&error)))
            }
        }
    }
}

/// An iSCSI deploy's image is written by petitlab, so it has no URL.
fn lookup_reply(node: &Node, deploy: &Deploy, heartbeat: u64) -> String {
    let url = match node.deploy_interface {
        DeployInterface::Agent => format!("image_url={}\n", deploy.image_url),
        DeployInterface::Iscsi => String::new(),
    };
    format!(
        "node={}\nuuid={}\ndeploy_interface={}\n{url}image_size={}\nimage_sha256={}\nimage_name={}\nheartbeat={heartbeat}\n",
        node.name,
        node.uuid,
        node.deploy_interface.name(),
        deploy.image_size,
        deploy.image_sha256,
        deploy.image_name
    )
}

/// For iSCSI deploys, the heartbeat answer tells the ramdisk how far
/// petitlab got: `waiting` for its target, `writing`, or `written` (then the
/// ramdisk removes its target, checks its disk and reports `done`).
fn iscsi_state(node: &Node, deploy: &Deploy) -> &'static str {
    match (
        node.deploy_interface,
        &deploy.iscsi,
        &deploy.iscsi_written_sha256,
    ) {
        (DeployInterface::Agent, _, _) => "",
        (DeployInterface::Iscsi, _, Some(_)) => "iscsi=written\n",
        (DeployInterface::Iscsi, Some(_), None) => "iscsi=writing\n",
        (DeployInterface::Iscsi, None, None) => "iscsi=waiting\n",
    }
}

/// `target=`, `portal=` (ip:port) and `lun=` of an `iscsi` call.
fn iscsi_target(body: &[(String, String)]) -> Result<IscsiTarget, Refusal> {
    let target = required(body, "target")?;
    if !valid_iscsi_name(target) {
        return Err(Refusal(
            400,
            format!("target={target} is not an iSCSI name"),
        ));
    }
    let portal = required(body, "portal")?;
    if portal.parse::<std::net::SocketAddr>().is_err() {
        return Err(Refusal(400, format!("portal={portal} is not ip:port")));
    }
    let raw = required(body, "lun")?;
    let lun = raw
        .parse::<u64>()
        .ok()
        .filter(|l| *l <= 16383)
        .ok_or_else(|| Refusal(400, format!("lun={raw} is not a LUN (0 to 16383)")))?;
    Ok(IscsiTarget {
        target: target.to_string(),
        portal: portal.to_string(),
        lun,
    })
}

fn who(request: &ApiRequest) -> String {
    format!("agent {}", request.peer.ip())
}

fn audit(
    store: &mut Store,
    node: &str,
    who: &str,
    action: &str,
    result: &str,
    detail: &str,
) -> Result<(), Refusal> {
    let event = Event {
        node: Some(node.to_string()),
        who: who.to_string(),
        action: action.to_string(),
        result: result.to_string(),
        detail: detail.to_string(),
    };
    store
        .append_event(&event)
        .map(drop)
        .map_err(|e| Refusal(500, e.to_string()))
}

/// Compares token hashes without an early exit, so timing tells nothing.
fn same(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

fn one_line(text: &str) -> String {
    text.replace(['\r', '\n'], " ")
}

/// `key=value` lines; blank lines ignored; CR LF tolerated.
fn parse_body(body: &[u8]) -> Result<Vec<(String, String)>, Refusal> {
    let text = std::str::from_utf8(body).map_err(|_| Refusal(400, "body is not UTF-8".into()))?;
    let mut pairs = Vec::new();
    for line in text.lines().map(|l| l.trim_end_matches('\r')) {
        if line.trim().is_empty() {
            continue;
        }
        let (key, value) = line
            .split_once('=')
            .ok_or_else(|| Refusal(400, format!("line {line:?} is not key=value")))?;
        pairs.push((key.trim().to_string(), value.trim().to_string()));
    }
    Ok(pairs)
}

fn values<'a>(body: &'a [(String, String)], key: &'a str) -> impl Iterator<Item = &'a str> {
    body.iter()
        .filter(move |(k, _)| k == key)
        .map(|(_, v)| v.as_str())
}

fn required<'a>(body: &'a [(String, String)], key: &'a str) -> Result<&'a str, Refusal> {
    values(body, key)
        .next()
        .filter(|v| !v.is_empty())
        .ok_or_else(|| Refusal(400, format!("missing {key}=")))
}

fn number(body: &[(String, String)], key: &str) -> Result<u64, Refusal> {
    let raw = required(body, key)?;
    raw.parse()
        .map_err(|_| Refusal(400, format!("{key}={raw} is not a number of bytes")))
}

#[cfg(test)]
#[path = "agent_api_tests.rs"]
mod tests;
