//! The deploy agent's API under `/v1/` (docs/agent-api.md): checks the
//! deploy token and records what the agent reports in the store. The
//! deploy driver, which holds the node's reservation, reads those records
//! and moves the state machine; this handler never changes a node's state.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};

use super::rejections::{self, Coalescer, Verdict};
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
    refusals: Mutex<Coalescer>,
    /// The calls that matter to a boot go into its timeline.
    recorder: Option<Arc<super::boot_record::Recorder>>,
}

/// A refused or failed call: status and the `error=` text.
struct Refusal(u16, String);

type Reply = Result<String, Refusal>;

/// The same answer for every call without a valid token, whatever its body:
/// nothing in it tells whether a node or MAC exists.
fn no_token() -> Refusal {
    Refusal(401, format!("{TOKEN_HEADER} header required"))
}

fn bad_token() -> Refusal {
    Refusal(403, "the token is not that of a deploy in progress".into())
}

/// An authenticated call: the deploy its token belongs to, that deploy's
/// node, and the parsed body.
struct Admitted<'a> {
    deploy: Deploy,
    node: &'a Node,
    body: Vec<(String, String)>,
}

impl AgentApi {
    pub fn new(lab: Arc<Lab>, store: Arc<Mutex<Store>>) -> AgentApi {
        Self::with_refusal_interval(lab, store, rejections::INTERVAL)
    }

    /// `new`, with refused calls coalesced per peer over `interval`.
    pub fn with_refusal_interval(
        lab: Arc<Lab>,
        store: Arc<Mutex<Store>>,
        interval: Duration,
    ) -> AgentApi {
        let refusals = Mutex::new(Coalescer::new(interval, rejections::MAX_PEERS));
        AgentApi {
            lab,
            store,
            refusals,
            recorder: None,
        }
    }

    /// Records lookups, results and iSCSI targets in the boots' timelines.
    pub fn with_recorder(mut self, recorder: Arc<super::boot_record::Recorder>) -> AgentApi {
        self.recorder = Some(recorder);
        self
    }

    fn store(&self) -> std::sync::MutexGuard<'_, Store> {
        self.store.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn refusals(&self) -> std::sync::MutexGuard<'_, Coalescer> {
        self.refusals.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn call(&self, request: &ApiRequest, call: &str) -> Reply {
        let (node, reply) = self.answer(request, call)?;
        if let Some(recorder) = &self.recorder
            && matches!(call, "lookup" | "iscsi" | "done" | "failed")
        {
            let detail = match &reply {
                Ok(_) => "ok".to_string(),
                Err(Refusal(status, why)) => format!("refused ({status}): {}", one_line(why)),
            };
            let call = call.to_string();
            recorder.record(&node, crate::timeline::What::Agent { call, detail });
        }
        reply
    }

    /// The call's answer, with the node it came from once the token named
    /// it (refusals before that are nobody's boot).
    fn answer(&self, request: &ApiRequest, call: &str) -> Result<(String, Reply), Refusal> {
        let Admitted { deploy, node, body } = self.admit(request, call)?;
        let name = node.name.clone();
        Ok((name, self.act(request, call, deploy, node, body)))
    }

    fn act(
        &self,
        request: &ApiRequest,
        call: &str,
        deploy: Deploy,
        node: &Node,
        body: Vec<(String, String)>,
    ) -> Reply {
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
                audit(&mut store, Some(name), &who, "agent-lookup", "ok", "")?;
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
                audit(&mut store, Some(name), &who, "agent-iscsi", "ok", &detail)?;
                Ok("ok=1\n".into())
            }
            "progress" => {
                let written = number(&body, "written")?;
                let total = number(&body, "total")?;
                if written > total {
                    let msg = format!("written={written} is more than total={total}");
                    return Err(Refusal(400, msg));
                }
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
                    audit(
                        &mut store,
                        Some(name),
                        &who,
                        "agent-done",
                        "refused",
                        &reason,
                    )?;
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
                    Some(name),
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
                audit(&mut store, Some(name), &who, "agent-failed", "ok", &reason)?;
                Ok("ok=1\n".into())
            }
            _ => Err(Refusal(404, format!("no such call: {call}"))),
        }
    }

    /// The token first: until it is checked nothing else about the call
    /// decides the answer, so an unauthenticated peer learns nothing about
    /// nodes or MACs. Then the body, which must name the token's own node.
    /// Refusals (401, 403) are audited.
    fn admit(&self, request: &ApiRequest, call: &str) -> Result<Admitted<'_>, Refusal> {
        // Nothing of ours (the store's path included) in an answer to a
        // caller not yet authenticated.
        let deploys = self
            .store()
            .deploys()
            .map_err(|_| Refusal(500, "the state store cannot be read".into()))?;
        let deploy = match authenticate(request, &deploys) {
            Ok(deploy) => deploy,
            Err(refusal) => {
                // The audit row, unlike the answer, says which node the call
                // claims to be for, so `history NODE` shows it.
                let claimed = claimed_node(&self.lab, call, &request.body);
                let why = match (&refusal, claimed) {
                    (Refusal(403, _), Some(n)) if deploys.iter().any(|d| d.node == n.name) => {
                        format!("node {}: wrong deploy token", n.name)
                    }
                    (Refusal(403, _), Some(n)) => format!("node {}: no deploy in progress", n.name),
                    (Refusal(_, why), _) => why.clone(),
                };
                let name = claimed.map(|n| n.name.as_str());
                return Err(self.refused(request, call, name, &why, refusal, false));
            }
        };
        let Some(node) = self.lab.node(&deploy.node) else {
            let msg = format!("node {}: no longer in the inventory", deploy.node);
            return Err(Refusal(409, msg));
        };
        let body = parse_body(&request.body)?;
        let claim = match call {
            "lookup" => claims_by_mac(node, &body),
            _ => claims_by_name(node, &body),
        };
        match claim {
            Ok(()) => Ok(Admitted { deploy, node, body }),
            Err(refusal) if refusal.0 == 403 => {
                let why = refusal.1.clone();
                Err(self.refused(request, call, Some(&node.name), &why, refusal, true))
            }
            Err(refusal) => Err(refusal),
        }
    }

    /// Audits a refusal (`why`, coalesced per peer) and hands it back.
    fn refused(
        &self,
        request: &ApiRequest,
        call: &str,
        node: Option<&str>,
        why: &str,
        refusal: Refusal,
        authenticated: bool,
    ) -> Refusal {
        let now = Instant::now();
        let verdict = self
            .refusals()
            .refuse(request.peer.ip(), now, &format!("{call}: {why}"));
        if verdict == Verdict::Counted {
            return refusal;
        }
        let detail = format!("{call} from {}: {why}", request.peer);
        let mut store = self.store();
        match audit(
            &mut store,
            node,
            &who(request),
            "agent-rejected",
            "refused",
            &detail,
        ) {
            Ok(()) => refusal,
            Err(e) if authenticated => e,
            Err(_) => Refusal(500, "the audit log cannot be written".into()),
        }
    }

    /// Writes the counts of the coalescing windows that have closed.
    fn flush_refusals(&self, now: Instant, all: bool) {
        let summaries = {
            let mut refusals = self.refusals();
            if all {
                refusals.drain(now)
            } else {
                refusals.expire(now)
            }
        };
        if summaries.is_empty() {
            return;
        }
        let mut store = self.store();
        for s in summaries {
            let detail = format!(
                "{} more refused calls from {} in {} s, counted but not recorded one by one; \
                 the last: {}",
                s.more,
                s.peer,
                s.interval.as_secs().max(1),
                s.last
            );
            let who = format!("agent {}", s.peer);
            // Best effort: a store that cannot take this row already failed
            // (and said so) on the refusal that opened the window.
            let _ = audit(&mut store, None, &who, "agent-rejected", "refused", &detail);
        }
    }
}

impl Drop for AgentApi {
    fn drop(&mut self) {
        self.flush_refusals(Instant::now(), true);
    }
}

/// The deploy whose token `request` carries. Every deploy in progress is
/// compared, each without an early exit, so timing tells nothing.
fn authenticate(request: &ApiRequest, deploys: &[Deploy]) -> Result<Deploy, Refusal> {
    let token = request
        .header(TOKEN_HEADER)
        .map(|t| String::from_utf8_lossy(t).trim().to_string())
        .filter(|t| !t.is_empty())
        .ok_or_else(no_token)?;
    let hash = token_hash(&token);
    // Every record is compared, even after a match.
    let mut found = None;
    for d in deploys {
        if same(&hash, &d.token_sha256) {
            found = Some(d);
        }
    }
    found.cloned().ok_or_else(bad_token)
}

/// The node a refused call says it is for (its `node=`, or the first known
/// `mac=`), for the audit log only: it never changes the answer.
fn claimed_node<'a>(lab: &'a Lab, call: &str, body: &[u8]) -> Option<&'a Node> {
    let body = parse_body(body).ok()?;
    if call == "lookup" {
        values(&body, "mac")
            .filter_map(|m| m.parse::<MacAddr>().ok())
            .find_map(|mac| lab.nodes.iter().find(|n| n.macs.contains(&mac)))
    } else {
        lab.node(required(&body, "node").ok()?)
    }
}

/// A `lookup` body: one `mac=` line per NIC, at least one of them the node's.
fn claims_by_mac(node: &Node, body: &[(String, String)]) -> Result<(), Refusal> {
    let macs: Vec<&str> = values(body, "mac").collect();
    if macs.is_empty() {
        return Err(Refusal(400, "missing mac=".into()));
    }
    let mut mine = false;
    for raw in &macs {
        let mac: MacAddr = raw
            .parse()
            .map_err(|_| Refusal(400, format!("mac={raw} is not a MAC address")))?;
        mine |= node.macs.contains(&mac);
    }
    if mine {
        return Ok(());
    }
    let msg = format!(
        "the token is node {}'s, and none of mac={} is one of its MACs",
        node.name,
        macs.join(", ")
    );
    Err(Refusal(403, msg))
}

/// Other calls: `node=`, which must be the token's node.
fn claims_by_name(node: &Node, body: &[(String, String)]) -> Result<(), Refusal> {
    let name = required(body, "node")?;
    if name == node.name {
        return Ok(());
    }
    // The same words for a node that exists and one that does not.
    let msg = format!("the token is not node {name:?}'s");
    Err(Refusal(403, msg))
}

impl ApiHandler for AgentApi {
    fn handle(&self, request: &ApiRequest) -> ApiResponse {
        self.flush_refusals(Instant::now(), false);
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
    node: Option<&str>,
    who: &str,
    action: &str,
    result: &str,
    detail: &str,
) -> Result<(), Refusal> {
    let event = Event {
        node: node.map(str::to_string),
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

/// Compares token hashes without an early exit.
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
