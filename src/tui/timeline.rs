//! The selected node's boot timeline ("why didn't it boot?") as the detail
//! pane's boot view shows it, and the lab-wide stage durations: a cache per
//! node of the last answer (the lab's `why` for the node), which fetches are
//! due, and the text of each event. Plain data: the App asks for fetches as
//! effects and the loop runs them off the UI.
//!
//! Every answer is filed under the node it was fetched for, so a late one
//! never shows under another node. At most [`MAX_IN_FLIGHT`] fetches run at
//! once; a node's BootStatus marks its timeline out of date, and it is read
//! again at most every [`DEBOUNCE`] ms while it is shown.

use std::collections::HashMap;

use crate::timeline::diagnose::Why;
use crate::timeline::phases::{Milestone, Milestones, StageStats};
use crate::timeline::{BootEvent, DhcpMessage, Fetch, What};

/// Timeline fetches running at once, whatever the nodes.
pub const MAX_IN_FLIGHT: usize = 3;
/// A timeline marked out of date is read again at most this often (ms).
pub const DEBOUNCE: i64 = 2_000;
/// A failed fetch is tried again after this long (ms).
pub const RETRY_AFTER: i64 = 30_000;
/// Events kept per node: the newest (the pane shows fewer).
pub const EVENTS_KEPT: usize = 40;

/// A node's boot, as the lab answered: `None` when it holds no boot yet.
pub type Answer = Result<Option<Why>, String>;

/// One node's timeline, as last fetched.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Entry {
    /// The last answer, or why there is none.
    pub value: Option<Answer>,
    /// When it came (App::now, ms).
    pub at: i64,
    /// When the last fetch was asked for (ms).
    pub asked: i64,
    pub loading: bool,
    /// A BootStatus (or the refresh key) came since the last fetch began.
    pub outdated: bool,
}

impl Entry {
    fn due(&self, now: i64) -> bool {
        if self.loading {
            return false;
        }
        match &self.value {
            None => true,
            _ if self.outdated => now - self.asked >= DEBOUNCE,
            Some(Err(_)) => now - self.at >= RETRY_AFTER,
            Some(Ok(_)) => false,
        }
    }
}

/// Every node's timeline, and how many fetches run.
#[derive(Debug, Clone, Default)]
pub struct Timelines {
    nodes: HashMap<String, Entry>,
    in_flight: usize,
}

impl Timelines {
    pub fn get(&self, node: &str) -> Option<&Entry> {
        self.nodes.get(node)
    }

    pub fn in_flight(&self) -> usize {
        self.in_flight
    }

    /// Whether to fetch `node`'s timeline now (then marked loading).
    pub fn due(&mut self, node: &str, now: i64) -> bool {
        if self.in_flight >= MAX_IN_FLIGHT {
            return false;
        }
        let entry = self.nodes.entry(node.to_string()).or_default();
        if !entry.due(now) {
            return false;
        }
        entry.loading = true;
        entry.outdated = false;
        entry.asked = now;
        self.in_flight += 1;
        true
    }

    /// The node's boot moved on (a BootStatus) or the user asked: read it
    /// again when next shown, debounced. Nodes never fetched stay unfetched.
    pub fn outdate(&mut self, node: &str) {
        if let Some(entry) = self.nodes.get_mut(node) {
            entry.outdated = true;
        }
    }

    /// Files an answer under the node it was fetched for; frees its slot.
    pub fn deliver(&mut self, node: &str, answer: Answer, now: i64) {
        let entry = self.nodes.entry(node.to_string()).or_default();
        let was_loading = entry.loading;
        entry.value = Some(answer.map(|why| why.map(trim)));
        entry.at = now;
        entry.loading = false;
        if was_loading {
            self.in_flight = self.in_flight.saturating_sub(1);
        }
    }

    /// Puts a node's timeline in the cache as if fetched (tests, snapshots).
    #[cfg(test)]
    pub fn insert(&mut self, node: &str, why: Option<Why>, now: i64) {
        self.nodes.insert(
            node.to_string(),
            Entry {
                value: Some(Ok(why.map(trim))),
                at: now,
                asked: now,
                ..Entry::default()
            },
        );
    }
}

/// A boot keeps its newest [`EVENTS_KEPT`] events (the rest counted).
fn trim(mut why: Why) -> Why {
    let skip = why.boot.events.len().saturating_sub(EVENTS_KEPT);
    if skip > 0 {
        why.boot.events.drain(..skip);
        why.boot.dropped = why.boot.dropped.saturating_add(skip as u32);
    }
    why
}

/// The lab-wide stage durations, as last fetched (the `T` view).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct StagesView {
    pub value: Option<Result<Vec<StageStats>, String>>,
    pub loading: bool,
    /// When it came (ms).
    pub at: i64,
}

/// What the stage bar draws: one segment per stretch between milestones
/// reached, then (a stalled boot) the stretch waited on so far, then the
/// milestones not reached.
#[derive(Debug, Clone, PartialEq)]
pub struct Bar {
    pub segments: Vec<Segment>,
    pub unreached: Vec<Milestone>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Segment {
    /// "dhcp 4.2 s", "kexec? 47 s" for the stretch still waited on.
    pub label: String,
    pub millis: i64,
    /// The stretch waited on (not reached yet).
    pub waiting: bool,
}

/// The bar of a boot's milestones; `waiting_since_ms`: how long the next
/// milestone has been waited for (a stalled boot), shown as its own segment.
pub fn stage_bar(milestones: &Milestones, waiting_ms: Option<i64>) -> Bar {
    let mut segments: Vec<Segment> = milestones
        .phases()
        .iter()
        .map(|p| Segment {
            label: format!("{} {}", p.to.as_str(), seconds(p.millis)),
            millis: p.millis,
            waiting: false,
        })
        .collect();
    let last = milestones.last().map(|(m, _)| m);
    let mut unreached: Vec<Milestone> = Milestone::ALL
        .into_iter()
        .filter(|m| milestones.at(*m).is_none() && Some(*m) > last)
        .collect();
    if let Some(ms) = waiting_ms
        && !unreached.is_empty()
    {
        let next = unreached.remove(0);
        segments.push(Segment {
            label: format!("{}? {}", next.as_str(), seconds(ms.max(0))),
            millis: ms.max(0),
            waiting: true,
        });
    }
    Bar {
        segments,
        unreached,
    }
}

/// How long the next milestone has been waited for, when the boot stalled.
pub fn waiting_ms(why: &Why, now: i64) -> Option<i64> {
    why.diagnosis.as_ref()?;
    let (_, last_at) = why.milestones.last()?;
    let latest = why.boot.events.last().map_or(now, |e| e.at.max(now));
    Some((latest - last_at).max(0))
}

/// Each segment's width in `width` columns: its label and a gap at least,
/// the rest shared in proportion to the durations. `None` when even the
/// labels do not fit.
pub fn widths(segments: &[Segment], width: usize) -> Option<Vec<usize>> {
    let mins: Vec<usize> = segments
        .iter()
        .map(|s| s.label.chars().count() + 1)
        .collect();
    let needed: usize = mins.iter().sum();
    if needed > width {
        return None;
    }
    let spare = width - needed;
    let total: i64 = segments.iter().map(|s| s.millis.max(0)).sum();
    let mut out = mins.clone();
    if total > 0 {
        let mut given = 0;
        for (w, s) in out.iter_mut().zip(segments) {
            let share = (spare as i128 * i128::from(s.millis.max(0)) / i128::from(total)) as usize;
            *w += share;
            given += share;
        }
        // What rounding left goes to the longest stretch.
        if let Some(i) = (0..segments.len()).max_by_key(|&i| segments[i].millis) {
            out[i] += spare - given;
        }
    }
    Some(out)
}

/// "4 ms", "4.2 s", "47 s", "3 min 20 s".
pub fn seconds(ms: i64) -> String {
    let ms = ms.max(0);
    match ms {
        0..100 => format!("{ms} ms"),
        100..10_000 => format!("{:.1} s", ms as f64 / 1000.0),
        10_000..180_000 => format!("{} s", ms / 1000),
        _ => format!("{} min {} s", ms / 60_000, ms / 1000 % 60),
    }
}

/// "30 B", "1.5 KiB", "1.0 MiB", "2.3 GiB".
pub fn bytes(n: u64) -> String {
    const UNITS: [&str; 4] = ["KiB", "MiB", "GiB", "TiB"];
    if n < 1024 {
        return format!("{n} B");
    }
    let mut v = n as f64 / 1024.0;
    let mut unit = 0;
    while v >= 1024.0 && unit < UNITS.len() - 1 {
        v /= 1024.0;
        unit += 1;
    }
    format!("{v:.1} {}", UNITS[unit])
}

/// A path kept to its last part when long: "…/deploy_kernel".
fn short_path(path: &str) -> String {
    if path.chars().count() <= 24 {
        return path.to_string();
    }
    match path.rsplit_once('/') {
        Some((_, name)) if !name.is_empty() => format!("…/{name}"),
        _ => path.to_string(),
    }
}

/// The event's detail column, unescaped (the view escapes it): what a
/// reader needs to follow the boot.
pub fn detail(event: &BootEvent) -> String {
    match &event.what {
        What::PowerOn { how, by } => format!("power {how} by {by}"),
        What::BootOverride { device } => format!("boot override {device}"),
        What::Dhcp(d) => dhcp(d),
        What::Fetch(f) => fetch(f),
        // Quoted as it came: the view escapes what the console sent.
        What::Console { stage, line } => {
            format!(
                "{} \"{}\"",
                crate::tui::model::stage_label(*stage),
                line.trim()
            )
        }
        What::ConsoleGap { detail } => format!("not connected: {detail}"),
        What::Agent { call, detail } if detail.is_empty() => call.clone(),
        What::Agent { call, detail } => format!("{call}: {detail}"),
    }
}

fn dhcp(d: &DhcpMessage) -> String {
    let mut out = d.message.clone();
    if let Some(ip) = &d.ip {
        out.push(' ');
        out.push_str(ip);
    }
    for code in [209, 210] {
        if let Some(o) = d.option(code) {
            let cut = if o.truncated { "…" } else { "" };
            out.push_str(&format!(" {code}={}{cut} ({} B)", o.value, o.size));
        }
    }
    if let Some(note) = &d.note {
        out.push_str(&format!(" — {note}"));
    }
    out
}

fn fetch(f: &Fetch) -> String {
    let verb = if f.proto == "tftp" { "RRQ" } else { "GET" };
    let mut out = format!(
        "{verb} {} {} {}",
        short_path(&f.path),
        f.status,
        bytes(f.bytes)
    );
    if f.millis > 0 {
        out.push_str(&format!(" {}", seconds(f.millis as i64)));
    }
    if let Some(rate) = f.rate().filter(|_| f.ok() && f.bytes > 0) {
        out.push_str(&format!(" {}/s", bytes(rate as u64)));
    }
    out
}

/// Whether the event went wrong (drawn in the error colour).
pub fn failed(event: &BootEvent) -> bool {
    match &event.what {
        What::Fetch(f) => !f.ok(),
        What::Dhcp(d) => matches!(d.message.as_str(), "NAK" | "DECLINE"),
        What::Console { stage, .. } => matches!(
            stage,
            crate::console::Stage::DownloadFailed
                | crate::console::Stage::BootFailed
                | crate::console::Stage::Panic
        ),
        What::Agent { call, .. } => call == "failed",
        _ => false,
    }
}

#[cfg(test)]
#[path = "timeline_tests.rs"]
mod tests;
