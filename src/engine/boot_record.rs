//! Records the nodes' boot timelines: petitlab's power-ons (written at
//! once), and what the servers, the consoles, the agent API and dnsmasq's
//! log report (queued, bounded, written in batches off the caller's task).
//! After each batch, and every few seconds while a boot is open, each
//! touched node's status (the milestone reached, a stall's headline) goes
//! out as `EngineEvent::BootStatus`.

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::mpsc;

use super::lab::EngineEvent;
use super::store::{Store, now_ms};
use crate::inventory::{Lab, Node};
use crate::timeline::diagnose::{self, Context, Why};
use crate::timeline::phases::{Milestone, Milestones};
use crate::timeline::{Boot, BootEvent, FileKind, What};

/// Events waiting to be written; more are dropped (and counted) rather
/// than slowing a server or a console down.
const QUEUE: usize = 4096;
/// Most events written in one store transaction.
const BATCH: usize = 256;
/// How often open boots are checked for a stall.
const STALL_CHECK: Duration = Duration::from_secs(2);
/// dnsmasq's log quiet this long closes the replies still open.
const DHCP_QUIET: Duration = Duration::from_millis(750);
/// Console lines a diagnosis quotes.
const CONSOLE_TAIL: usize = 8;

pub struct Recorder {
    queue: mpsc::Sender<(String, BootEvent)>,
    shared: Arc<Shared>,
}

struct Shared {
    lab: Mutex<Arc<Lab>>,
    store: Arc<Mutex<Store>>,
    events: mpsc::UnboundedSender<EngineEvent>,
    dropped: AtomicU64,
}

impl Shared {
    fn lab(&self) -> Arc<Lab> {
        self.lab.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    fn store(&self) -> std::sync::MutexGuard<'_, Store> {
        self.store.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl Recorder {
    /// The recorder and its writer task (none outside a tokio runtime:
    /// then only power-ons, written at once, are recorded).
    pub fn new(
        lab: Arc<Lab>,
        store: Arc<Mutex<Store>>,
        events: mpsc::UnboundedSender<EngineEvent>,
    ) -> Arc<Recorder> {
        let (queue, rx) = mpsc::channel(QUEUE);
        let shared = Arc::new(Shared {
            lab: Mutex::new(lab),
            store,
            events,
            dropped: AtomicU64::new(0),
        });
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(write_loop(shared.clone(), rx));
        }
        Arc::new(Recorder { queue, shared })
    }

    /// A re-read lab.toml: nodes, MACs and settings from now on.
    pub fn set_lab(&self, lab: Arc<Lab>) {
        *self.shared.lab.lock().unwrap_or_else(|p| p.into_inner()) = lab;
    }

    /// Queues one event of `node`'s boot; never waits.
    pub fn record(&self, node: &str, what: What) {
        self.record_at(node, now_ms(), what);
    }

    /// [`Recorder::record`] of an event seen at `at` (unix ms).
    pub fn record_at(&self, node: &str, at: i64, what: What) {
        let event = BootEvent { at, what };
        if self.queue.try_send((node.to_string(), event)).is_err() {
            let n = self.shared.dropped.fetch_add(1, Ordering::Relaxed);
            if (n + 1).is_power_of_two() {
                tracing::warn!(dropped = n + 1, "boot timeline queue full: events dropped");
            }
        }
    }

    /// petitlab powered `node` on: a new boot, with the boot override as
    /// last read. Written at once, so the events that follow join it.
    pub fn power_on(&self, node: &str, at: i64, how: &str, boot_override: Option<&str>) {
        start_boot(
            &self.shared.store,
            &self.shared.lab(),
            node,
            at,
            how,
            boot_override,
        );
    }

    /// A node's file was fetched over HTTP or TFTP. `node`: the server's
    /// guess from the client's address; the path names the node better
    /// (`<uuid>/…`, `pxelinux.cfg/01-<mac>`).
    pub fn fetch(
        &self,
        node: Option<&str>,
        proto: &str,
        path: &str,
        status: u16,
        bytes: u64,
        duration: Duration,
    ) {
        let path = path.trim_start_matches('/').to_string();
        let lab = self.shared.lab();
        let Some(node) = node_of_path(&lab, &path).or_else(|| node.map(str::to_string)) else {
            return;
        };
        let fetch = crate::timeline::Fetch {
            proto: proto.to_string(),
            file: FileKind::of(&path),
            path,
            status,
            bytes,
            millis: u64::try_from(duration.as_millis()).unwrap_or(u64::MAX),
        };
        self.record(&node, What::Fetch(fetch));
    }

    /// Follows dnsmasq's log at `path`: each DHCP message for a node's MAC
    /// joins its boot. Ends with the returned task (abort it to stop).
    pub fn follow_dhcp(self: &Arc<Self>, path: PathBuf) -> tokio::task::JoinHandle<()> {
        let (tx, mut lines) = mpsc::channel(1024);
        let follower = crate::timeline::follow::spawn(path, Duration::from_millis(250), tx);
        let this = self.clone();
        tokio::spawn(async move {
            let _follower = AbortOnDrop(follower);
            let mut log = DhcpLog::default();
            loop {
                let messages = match tokio::time::timeout(DHCP_QUIET, lines.recv()).await {
                    Ok(Some(line)) => log.line(&line, now_ms()),
                    Ok(None) => break,
                    Err(_) => log.quiet(),
                };
                let lab = this.shared.lab();
                for (at, message) in messages {
                    if let Some(node) = node_of_mac(&lab, &message.mac) {
                        this.record_at(&node, at, What::Dhcp(message));
                    }
                }
            }
        })
    }
}

/// The HTTP server's access log, into the timelines (GETs of nodes' files;
/// the agent API's calls are recorded by the API itself).
pub fn http_hook(recorder: Arc<Recorder>) -> crate::serve::http::AccessLog {
    Arc::new(move |r: &crate::serve::http::AccessRecord| {
        if matches!(r.method.as_str(), "GET" | "HEAD") && !r.path.starts_with("/v1/") {
            recorder.fetch(
                r.node.as_deref(),
                "http",
                &r.path,
                r.status,
                r.bytes,
                r.duration,
            );
        }
    })
}

/// The TFTP server's transfers, into the timelines: sent whole is 200, "file
/// not found" 404, anything else 500.
pub fn tftp_hook(recorder: Arc<Recorder>) -> crate::serve::tftp::TransferLog {
    use crate::serve::tftp::Outcome;
    Arc::new(move |r: &crate::serve::tftp::TransferRecord| {
        // A size query petitboot ends on purpose (error 8 after the OACK)
        // is no fetch: the real one follows.
        let probe = matches!(&r.outcome, Outcome::ClientError { code, .. } if *code == crate::serve::tftp_packet::ERR_OPTION_REFUSED);
        if r.write || probe {
            return;
        }
        let status = match &r.outcome {
            Outcome::Sent => 200,
            Outcome::Refused { code, .. }
                if *code == crate::serve::tftp_packet::ERR_FILE_NOT_FOUND =>
            {
                404
            }
            _ => 500,
        };
        recorder.fetch(None, "tftp", &r.file, status, r.bytes, r.duration);
    })
}

/// dnsmasq's log lines to timed messages. A reply (OFFER, ACK) stays open
/// for the option lines that follow it; it is complete when a line of
/// another transaction starts (dnsmasq logs one packet's lines together,
/// never interleaved) or when the log goes quiet.
#[derive(Default)]
struct DhcpLog {
    parser: crate::timeline::dnsmasq_log::Parser,
    /// The transaction of the last line, and when dnsmasq wrote it.
    last: Option<(String, i64)>,
}

type Timed = Vec<(i64, crate::timeline::DhcpMessage)>;

impl DhcpLog {
    fn line(&mut self, line: &str, now: i64) -> Timed {
        let written_at = line_time(line, now).unwrap_or(now);
        let xid = transaction(line).unwrap_or_default().to_string();
        let mut out = match &self.last {
            Some((last, _)) if *last != xid => self.quiet(),
            _ => Vec::new(),
        };
        out.extend(self.parser.line(line).into_iter().map(|m| (written_at, m)));
        self.last = Some((xid, written_at));
        out
    }

    /// Closes what is open, as of its last line's time.
    fn quiet(&mut self) -> Timed {
        let at = self.last.as_ref().map_or_else(now_ms, |(_, at)| *at);
        self.parser.flush().into_iter().map(|m| (at, m)).collect()
    }
}

/// The transaction id a `--log-dhcp` line starts with, after the
/// `dnsmasq-dhcp[PID]: ` prefix.
fn transaction(line: &str) -> Option<&str> {
    let (_, rest) = line.split_once("dnsmasq-dhcp")?;
    let rest = rest.split_once(": ")?.1;
    let word = rest.split_whitespace().next()?;
    word.bytes().all(|b| b.is_ascii_digit()).then_some(word)
}

/// When dnsmasq wrote a log line, from its `Mmm dd HH:MM:SS` prefix (local
/// time, no year), as unix ms: the zone's offset is what separates it from
/// `now` (the line was just read), rounded to a quarter hour. The second
/// is dnsmasq's floor, so a DHCP message never lands after the fetches it
/// led to (the follower reads the file a poll later than they happen).
fn line_time(line: &str, now: i64) -> Option<i64> {
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let mut words = line.split_whitespace();
    let name = words.next()?;
    let month = MONTHS.iter().position(|m| *m == name)? as u32 + 1;
    let day: u32 = words.next()?.parse().ok()?;
    let mut hms = words.next()?.split(':').map(|n| n.parse::<i64>().ok());
    let (h, m, s) = (hms.next()??, hms.next()??, hms.next()??);
    let (year, _, _, _, _, _) = crate::calendar::utc_fields(now.div_euclid(1000));
    let best = [year - 1, year, year + 1]
        .into_iter()
        .map(|y| crate::calendar::days_from_civil(y, month, day) * 86_400 + h * 3600 + m * 60 + s)
        .min_by_key(|t| (now / 1000 - t).abs())?;
    let quarter = 900;
    let offset = ((now / 1000 - best) as f64 / quarter as f64).round() as i64 * quarter;
    Some((best + offset) * 1000)
}

/// Stops a task when dropped (the follower with its reader, the demo's
/// follower with the demo).
pub(crate) struct AbortOnDrop(pub(crate) tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// A new boot of `node` in the store (for processes without a recorder
/// task: the CLI's own power actions).
pub fn start_boot(
    store: &Mutex<Store>,
    lab: &Lab,
    node: &str,
    at: i64,
    how: &str,
    boot_override: Option<&str>,
) {
    let by = super::store::Holder::current().to_string();
    let mut store = store.lock().unwrap_or_else(|p| p.into_inner());
    let keep = lab.timeline.keep_boots;
    if let Err(e) = store.start_boot(node, at, &format!("power {how} by {by}"), keep) {
        tracing::warn!(node, "boot timeline not recorded: {e}");
        return;
    }
    let mut events = vec![(
        node.to_string(),
        BootEvent {
            at,
            what: What::PowerOn {
                how: how.to_string(),
                by,
            },
        },
    )];
    if let Some(device) = boot_override {
        events.push((
            node.to_string(),
            BootEvent {
                at,
                what: What::BootOverride {
                    device: device.to_string(),
                },
            },
        ));
    }
    if let Err(e) = store.append_boot_events(&events, keep) {
        tracing::warn!(node, "boot timeline not recorded: {e}");
    }
}

/// The nodes a power action's results (`bmc_ops::power`'s JSON) started
/// booting: on, cycle or reset sent, and the power on after.
pub fn booted_by(results: &[(String, Result<serde_json::Value, String>)]) -> Vec<(&str, String)> {
    results
        .iter()
        .filter_map(|(node, result)| {
            let v = result.as_ref().ok()?;
            let how = v["action"].as_str()?;
            let began = v["changed"].as_bool() == Some(true)
                && v["power"].as_str() == Some("on")
                && matches!(how, "on" | "cycle" | "reset");
            began.then(|| (node.as_str(), how.to_string()))
        })
        .collect()
}

/// The node a served path belongs to: its UUID directory, or a discovery
/// copy named after one of its MACs.
fn node_of_path(lab: &Lab, path: &str) -> Option<String> {
    let first = path.split('/').next()?;
    if let Some(node) = lab.nodes.iter().find(|n| n.uuid.to_string() == first) {
        return Some(node.name.clone());
    }
    let name = path.strip_prefix("pxelinux.cfg/01-")?.replace('-', ":");
    node_of_mac(lab, &name)
}

fn node_of_mac(lab: &Lab, mac: &str) -> Option<String> {
    let mac = mac.to_ascii_lowercase();
    lab.nodes
        .iter()
        .find(|n| {
            n.macs
                .iter()
                .any(|m| m.to_string().eq_ignore_ascii_case(&mac))
        })
        .map(|n| n.name.clone())
}

/// What the rules need of `node` besides its events.
pub fn context(lab: &Lab, node: &Node, with_console: bool) -> Context {
    Context {
        settings: lab.timeline,
        now: now_ms(),
        macs: node
            .macs
            .iter()
            .map(|m| m.to_string().to_ascii_lowercase())
            .collect(),
        staged: staged_files(lab, node),
        follows_dhcp: lab.dhcp_log.is_some(),
        console_tail: if with_console {
            console_tail(lab, node)
        } else {
            Vec::new()
        },
    }
}

/// The files under the node's directory in each served root, as paths
/// relative to the root (what fetches name).
fn staged_files(lab: &Lab, node: &Node) -> Vec<String> {
    let dir = node.uuid.to_string();
    let mut files = Vec::new();
    for root in [&lab.http.root, &lab.tftp.root] {
        let Ok(entries) = std::fs::read_dir(root.join(&dir)) else {
            continue;
        };
        for entry in entries.flatten().take(64) {
            let name = entry.file_name().to_string_lossy().into_owned();
            let path = format!("{dir}/{name}");
            if !files.contains(&path) {
                files.push(path);
            }
        }
    }
    files.sort();
    files
}

/// The last lines of the node's console log, escaped for display.
fn console_tail(lab: &Lab, node: &Node) -> Vec<String> {
    let path = crate::console::log_path(lab, node);
    let Ok(bytes) = read_tail(&path, 16 * 1024) else {
        return Vec::new();
    };
    // The cast's events from the first whole line on, as text.
    let start = bytes.iter().position(|&b| b == b'\n').map_or(0, |i| i + 1);
    let mut text = String::new();
    let mut cast = crate::console::cast::Text::new(false);
    cast.feed(&bytes[start..], &mut text);
    let lines: Vec<String> = text
        .lines()
        .map(|l| crate::text::display_safe(l.trim_end()).into_owned())
        .filter(|l| !l.is_empty())
        .collect();
    lines[lines.len().saturating_sub(CONSOLE_TAIL)..].to_vec()
}

fn read_tail(path: &std::path::Path, max: u64) -> std::io::Result<Vec<u8>> {
    use std::io::{Read, Seek, SeekFrom};
    let mut file = std::fs::File::open(path)?;
    let len = file.metadata()?.len();
    file.seek(SeekFrom::Start(len.saturating_sub(max)))?;
    let mut bytes = Vec::new();
    file.take(max).read_to_end(&mut bytes)?;
    Ok(bytes)
}

/// The node's last boot, diagnosed now.
pub fn why(store: &Mutex<Store>, lab: &Lab, node: &Node) -> Result<Option<Why>, String> {
    let boot = store
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .last_boot(&node.name)
        .map_err(|e| e.to_string())?;
    Ok(boot.map(|boot| diagnose::why(boot, &context(lab, node, true))))
}

/// Writes queued events in batches; after each batch and on a timer, sends
/// the status of the boots that changed or may have stalled.
async fn write_loop(shared: Arc<Shared>, mut rx: mpsc::Receiver<(String, BootEvent)>) {
    let mut open: HashSet<String> = HashSet::new();
    // When each open boot was last diagnosed: a lab netbooting a thousand
    // nodes re-reads each a few times per stall allowance, not every tick.
    let mut checked: HashMap<String, tokio::time::Instant> = HashMap::new();
    let mut sent: HashMap<String, (Option<String>, Option<String>)> = HashMap::new();
    let mut tick = tokio::time::interval(STALL_CHECK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let touched: HashSet<String> = tokio::select! {
            first = rx.recv() => {
                let Some(first) = first else { break };
                let mut batch = vec![first];
                while batch.len() < BATCH {
                    match rx.try_recv() {
                        Ok(event) => batch.push(event),
                        Err(_) => break,
                    }
                }
                let touched = batch.iter().map(|(n, _)| n.clone()).collect();
                let writer = shared.clone();
                let keep = shared.lab().timeline.keep_boots;
                let written = tokio::task::spawn_blocking(move || {
                    writer.store().append_boot_events(&batch, keep)
                })
                .await;
                if let Ok(Err(e)) = written {
                    tracing::warn!("boot timeline not recorded: {e}");
                }
                touched
            }
            _ = tick.tick() => {
                let every = (shared.lab().timeline.stall_after / 4).max(STALL_CHECK);
                let now = tokio::time::Instant::now();
                open.iter()
                    .filter(|n| checked.get(*n).is_none_or(|at| now - *at >= every))
                    .cloned()
                    .collect()
            }
        };
        if touched.is_empty() {
            continue;
        }
        let now = tokio::time::Instant::now();
        for node in &touched {
            checked.insert(node.clone(), now);
        }
        let reader = shared.clone();
        let statuses = tokio::task::spawn_blocking(move || statuses(&reader, touched)).await;
        for (node, reached, stalled, is_open) in statuses.unwrap_or_default() {
            if is_open {
                open.insert(node.clone());
            } else {
                open.remove(&node);
                checked.remove(&node);
            }
            let now = (reached, stalled);
            if sent.get(&node) != Some(&now) {
                sent.insert(node.clone(), now.clone());
                let _ = shared.events.send(EngineEvent::BootStatus {
                    node,
                    reached: now.0,
                    stalled: now.1,
                });
            }
        }
    }
}

/// (node, milestone reached, stall headline, still worth watching).
fn statuses(
    shared: &Shared,
    nodes: HashSet<String>,
) -> Vec<(String, Option<String>, Option<String>, bool)> {
    let lab = shared.lab();
    let mut out = Vec::new();
    for name in nodes {
        let Some(node) = lab.node(&name) else {
            continue;
        };
        let boot: Option<Boot> = shared.store().last_boot(&name).ok().flatten();
        let Some(boot) = boot else { continue };
        let milestones = Milestones::of(&boot);
        let reached = milestones.last().map(|(m, _)| m.as_str().to_string());
        let up = milestones.at(Milestone::Up).is_some();
        let diagnosis = diagnose::diagnose(&boot, &context(&lab, node, false));
        let stalled = diagnosis.as_ref().map(|d| d.headline());
        // A boot is watched until it is up or diagnosed (a later event
        // reopens it), and for at most a day.
        let is_open = !up && stalled.is_none() && now_ms() - boot.started_at < 86_400_000;
        out.push((name, reached, stalled, is_open));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_reply_closes_when_another_transaction_starts_even_on_a_busy_log() {
        let now = crate::calendar::days_from_civil(2026, 12, 5) * 86_400_000 + 49_688_700;
        let sample = include_str!("../timeline/testdata/dnsmasq_2.90_log_dhcp.log");
        let mut log = DhcpLog::default();
        let mut got = Vec::new();
        for line in sample.lines() {
            got.extend(log.line(line, now));
        }
        // Another client's DISCOVER right after: the ACK before it is whole.
        let other = "Dec  5 13:48:09 dnsmasq-dhcp[6019]: 77 DHCPDISCOVER(dqs0) 52:54:00:aa:bb:02 ";
        got.extend(log.line(other, now + 300));
        let ack = got
            .iter()
            .find(|(_, m)| m.message == "ACK")
            .expect("the ACK closed without a quiet spell");
        assert!(ack.1.option(209).is_some(), "{ack:?}");
        assert_eq!(ack.0 % 1000, 0, "stamped with dnsmasq's second");
        assert_eq!(transaction(other), Some("77"));
        assert_eq!(
            transaction("Dec  5 13:48:03 dnsmasq-dhcp[1]: read /x"),
            None
        );
    }

    #[test]
    fn dnsmasq_times_are_read_in_any_zone_to_the_second_floor() {
        // 2026-12-05 13:48:08.700 UTC.
        let now = crate::calendar::days_from_civil(2026, 12, 5) * 86_400_000 + 49_688_700;
        let line =
            "Dec  5 13:48:08 dnsmasq-dhcp[6019]: 1 DHCPACK(dqs0) 10.9.0.98 52:54:00:aa:bb:01";
        assert_eq!(line_time(line, now), Some(now - 700));
        // The same moment logged at UTC+05:30, read 900 ms later.
        let india = "Dec  5 19:18:08 dnsmasq-dhcp[6019]: 1 DHCPACK(dqs0)";
        assert_eq!(line_time(india, now + 200), Some(now - 700));
        // New Year's Eve, read just after midnight UTC.
        let jan = crate::calendar::days_from_civil(2027, 1, 1) * 86_400_000 + 500;
        let dec = "Dec 31 23:59:59 dnsmasq-dhcp[1]: x";
        assert_eq!(line_time(dec, jan), Some(jan - 1_500));
        assert_eq!(line_time("dnsmasq-dhcp[1]: no date", now), None);
    }
}
