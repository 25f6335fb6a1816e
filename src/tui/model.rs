//! One row per node: what the table shows, kept up to date from store
//! snapshots and engine events; the filter and the sort over those rows.

use std::collections::VecDeque;

use crate::console::Stage as ConsoleStage;
use crate::engine::lab::Action;
use crate::engine::lifecycle::State;
use crate::engine::store::{EventRecord, NodeRecord};
use crate::inventory::range::{self, Candidate, NodeRange, RangeError};
use crate::ipmi::chassis::{BootDevice, PowerAction};
use crate::tui::theme::Role;

/// A power reading older than this is shown greyed (ms).
pub const STALE_MS: i64 = 30_000;
/// A reading younger than this shows no age in the table: polls come every
/// few seconds, and a "0s 1s 2s 0s" on every row is noise (and a redraw a
/// second for a lab where nothing happens).
pub const AGE_SHOWN_MS: i64 = 10_000;
/// DCMI samples kept per node for the sparkline.
pub const WATTS_KEPT: usize = 30;
/// History entries kept per node.
pub const HISTORY_KEPT: usize = 40;

#[derive(Debug, Clone, PartialEq)]
pub struct Progress {
    pub step: String,
    pub message: String,
    pub fraction: Option<f64>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LastEvent {
    pub at: i64,
    pub text: String,
    /// Some(false) for a failure: drawn as an error.
    pub ok: Option<bool>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HistoryEntry {
    pub at: i64,
    pub who: String,
    pub action: String,
    pub result: String,
    pub detail: String,
}

/// A row's texts that a reading can change.
#[derive(Debug, PartialEq, Eq)]
pub struct ReadingView {
    power: String,
    stale: bool,
    boot_device: Option<String>,
    error: Option<String>,
    staged: bool,
}

#[derive(Debug, Clone)]
pub struct NodeRow {
    pub name: String,
    pub group: Option<String>,
    pub power_on: Option<bool>,
    pub boot_device: Option<String>,
    /// ms of the last reading (successful or not).
    pub reading_at: Option<i64>,
    pub reading_error: Option<String>,
    pub state: String,
    pub step: Option<String>,
    pub reason: Option<String>,
    pub state_since: i64,
    pub progress: Option<Progress>,
    pub stage: Option<ConsoleStage>,
    pub stage_line: Option<String>,
    /// The diagnosis' headline of the node's current boot, while it stalls
    /// (the latest BootStatus says).
    pub stalled: Option<String>,
    pub holder: Option<String>,
    pub holder_action: Option<String>,
    pub last: Option<LastEvent>,
    pub watts: VecDeque<u16>,
    pub history: VecDeque<HistoryEntry>,
    pub marked: bool,
}

impl NodeRow {
    pub fn new(name: &str, group: Option<&str>) -> NodeRow {
        NodeRow {
            name: name.to_string(),
            group: group.map(str::to_string),
            power_on: None,
            boot_device: None,
            reading_at: None,
            reading_error: None,
            state: State::Enroll.name().to_string(),
            step: None,
            reason: None,
            state_since: 0,
            progress: None,
            stage: None,
            stage_line: None,
            stalled: None,
            holder: None,
            holder_action: None,
            last: None,
            watts: VecDeque::new(),
            history: VecDeque::new(),
            marked: false,
        }
    }

    /// The stored record (state and last reading); a newer live reading wins.
    pub fn apply_record(&mut self, r: &NodeRecord) {
        self.state.clone_from(&r.state);
        self.step.clone_from(&r.step);
        self.reason.clone_from(&r.reason);
        self.state_since = r.state_since;
        if r.reading_at.is_some() && r.reading_at >= self.reading_at {
            self.power_on = r.power_on;
            self.boot_device.clone_from(&r.boot_device);
            self.reading_at = r.reading_at;
            self.reading_error.clone_from(&r.reading_error);
        }
        if self.step.as_deref() != self.progress.as_ref().map(|p| p.step.as_str()) {
            self.progress = None;
        }
    }

    pub fn set_history(&mut self, events: &[&EventRecord]) {
        self.history = events.iter().map(|e| history_entry(e)).collect();
        while self.history.len() > HISTORY_KEPT {
            self.history.pop_front();
        }
        if let Some(e) = events.last()
            && self.last.as_ref().is_none_or(|l| l.at <= e.at)
        {
            self.last = Some(LastEvent {
                at: e.at,
                text: event_text(&e.action, &e.result, &e.detail),
                ok: result_ok(&e.result),
            });
        }
    }

    pub fn push_history(&mut self, entry: HistoryEntry) {
        self.history.push_back(entry);
        while self.history.len() > HISTORY_KEPT {
            self.history.pop_front();
        }
    }

    pub fn push_watts(&mut self, watts: u16) {
        self.watts.push_back(watts);
        while self.watts.len() > WATTS_KEPT {
            self.watts.pop_front();
        }
    }

    pub fn parsed_state(&self) -> Option<State> {
        self.state.parse().ok()
    }

    /// The role the state is drawn in.
    pub fn state_role(&self) -> Role {
        match self.parsed_state() {
            Some(State::Active | State::Available) => Role::StateOk,
            Some(State::DeployFailed | State::Error) => Role::StateFailed,
            Some(s) if s.is_busy() => Role::StateBusy,
            Some(_) => Role::Text,
            None => Role::Warning,
        }
    }

    /// "deploying: write-image 42%"; the step only when it says more than the state.
    pub fn state_text(&self) -> String {
        let mut text = self.state.clone();
        if let Some(step) = &self.step
            && *step != self.state
        {
            text.push_str(": ");
            text.push_str(step);
        }
        if let Some(f) = self.progress.as_ref().and_then(|p| p.fraction) {
            text.push_str(&format!(" {:.0}%", (f * 100.0).clamp(0.0, 100.0)));
        }
        text
    }

    pub fn power_word(&self) -> &'static str {
        match (self.power_on, &self.reading_error) {
            (Some(true), _) => "on",
            (Some(false), _) => "off",
            (None, Some(_)) => "error",
            (None, None) => "unknown",
        }
    }

    pub fn power_role(&self) -> Role {
        match self.power_on {
            Some(true) => Role::PowerOn,
            Some(false) => Role::PowerOff,
            None => Role::PowerUnknown,
        }
    }

    /// The table's power cell: the word, and the reading's age once it is
    /// older than [`AGE_SHOWN_MS`]. A fresh reading shows no age, so a poll
    /// that finds what the last one found changes nothing on screen.
    pub fn power_label(&self, now: i64) -> String {
        match self.reading_at {
            Some(at) if now - at >= AGE_SHOWN_MS => {
                format!("{} {}", self.power_word(), age(now - at))
            }
            _ => self.power_word().to_string(),
        }
    }

    /// What a reading changes on screen: compared before and after one.
    pub fn reading_view(&self, now: i64) -> ReadingView {
        ReadingView {
            power: self.power_label(now),
            stale: self.stale(now),
            boot_device: self.boot_device.clone(),
            error: self.reading_error.clone(),
            staged: self.stage.is_some(),
        }
    }

    /// A reading exists and is older than [`STALE_MS`] at `now`.
    pub fn stale(&self, now: i64) -> bool {
        self.reading_at.is_some_and(|at| now - at > STALE_MS)
    }

    pub fn stage_text(&self) -> String {
        match &self.stalled {
            Some(headline) => format!("stalled: {headline}"),
            None => self.stage.map(stage_label).unwrap_or_default(),
        }
    }

    pub fn stage_role(&self) -> Role {
        if self.stalled.is_some() {
            return Role::Warning;
        }
        match self.stage {
            Some(ConsoleStage::DownloadFailed | ConsoleStage::BootFailed | ConsoleStage::Panic) => {
                Role::StateFailed
            }
            Some(ConsoleStage::LoginPrompt) => Role::StateOk,
            Some(_) => Role::StateBusy,
            None => Role::Muted,
        }
    }
}

/// A console stage for people: "config fetched".
pub fn stage_label(stage: ConsoleStage) -> String {
    stage.as_str().replace('_', " ")
}

fn history_entry(e: &EventRecord) -> HistoryEntry {
    HistoryEntry {
        at: e.at,
        who: e.who.clone(),
        action: e.action.clone(),
        result: e.result.clone(),
        detail: e.detail.clone(),
    }
}

pub fn event_text(action: &str, result: &str, detail: &str) -> String {
    if detail.is_empty() {
        format!("{action} {result}")
    } else {
        format!("{action} {result}: {detail}")
    }
}

fn result_ok(result: &str) -> Option<bool> {
    match result {
        "ok" | "done" | "success" => Some(true),
        "failed" | "error" | "refused" => Some(false),
        _ => None,
    }
}

/// An action as the log and the confirm dialog name it: "power off".
pub fn action_label(action: Action) -> String {
    match action {
        Action::Power(p) => format!("power {}", power_word(p)),
        Action::BootDevice(d) => format!("bootdev {}", boot_word(d)),
        other => other.name().to_string(),
    }
}

pub fn power_word(p: PowerAction) -> &'static str {
    match p {
        PowerAction::On => "on",
        PowerAction::Off => "off",
        PowerAction::Cycle => "cycle",
        PowerAction::Reset => "reset",
        PowerAction::Soft => "soft",
    }
}

pub fn boot_word(d: BootDevice) -> &'static str {
    match d {
        BootDevice::Pxe => "pxe",
        BootDevice::Disk => "disk",
        BootDevice::None => "none",
    }
}

/// Destructive actions are confirmed (focus on "No") before they run.
pub fn destructive(action: Action) -> bool {
    match action {
        Action::Deploy | Action::Undeploy | Action::Abort => true,
        Action::Power(p) => p != PowerAction::On,
        Action::BootDevice(_) | Action::PrepareRamdisk => false,
    }
}

/// Age for a cell: "3s", "5m", "2h", "4d".
pub fn age(ms: i64) -> String {
    let s = ms.max(0) / 1000;
    match s {
        0..60 => format!("{s}s"),
        60..3600 => format!("{}m", s / 60),
        3600..86_400 => format!("{}h", s / 3600),
        _ => format!("{}d", s / 86_400),
    }
}

/// The table's columns; the sort key cycles through them in this order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Column {
    Name,
    Power,
    Boot,
    State,
    Console,
    Holder,
    Last,
}

impl Column {
    pub const ALL: [Column; 7] = [
        Column::Name,
        Column::Power,
        Column::Boot,
        Column::State,
        Column::Console,
        Column::Holder,
        Column::Last,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Column::Name => "name",
            Column::Power => "power",
            Column::Boot => "boot",
            Column::State => "state",
            Column::Console => "console",
            Column::Holder => "holder",
            Column::Last => "last",
        }
    }

    pub fn parse(s: &str) -> Option<Column> {
        Column::ALL.into_iter().find(|c| c.name() == s)
    }

    pub fn next(self) -> Column {
        let i = Column::ALL.iter().position(|c| *c == self).unwrap_or(0);
        Column::ALL[(i + 1) % Column::ALL.len()]
    }
}

/// Sorts `view` (indices into `rows`) by `column`, ties by name.
pub fn sort_view(rows: &[NodeRow], view: &mut [usize], column: Column, descending: bool) {
    view.sort_by(|&a, &b| {
        let (ra, rb) = (&rows[a], &rows[b]);
        let primary = match column {
            Column::Name => std::cmp::Ordering::Equal,
            Column::Power => power_rank(ra).cmp(&power_rank(rb)),
            Column::Boot => ra.boot_device.cmp(&rb.boot_device),
            Column::State => state_rank(ra).cmp(&state_rank(rb)),
            Column::Console => stage_rank(ra).cmp(&stage_rank(rb)),
            Column::Holder => ra
                .holder
                .is_none()
                .cmp(&rb.holder.is_none())
                .then(ra.holder.cmp(&rb.holder)),
            // Most recent first.
            Column::Last => last_at(rb).cmp(&last_at(ra)),
        };
        let ordering = primary.then_with(|| ra.name.cmp(&rb.name));
        if descending {
            ordering.reverse()
        } else {
            ordering
        }
    });
}

/// Trouble first: failed, then busy, then idle states.
fn state_rank(r: &NodeRow) -> u8 {
    match r.parsed_state() {
        Some(State::DeployFailed) => 0,
        Some(State::Error) => 1,
        Some(State::Deploying) => 2,
        Some(State::WaitCallback) => 3,
        Some(State::Undeploying) => 4,
        Some(State::Cleaning) => 5,
        Some(State::Enroll) => 6,
        Some(State::Manageable) => 7,
        Some(State::Available) => 8,
        Some(State::Active) => 9,
        None => 10,
    }
}

fn power_rank(r: &NodeRow) -> u8 {
    match r.power_on {
        Some(true) => 0,
        Some(false) => 1,
        None => 2,
    }
}

fn stage_rank(r: &NodeRow) -> usize {
    r.stage
        .and_then(|s| ConsoleStage::ALL.iter().position(|x| *x == s))
        .map_or(usize::MAX, |p| p)
}

fn last_at(r: &NodeRow) -> i64 {
    r.last.as_ref().map_or(i64::MIN, |l| l.at)
}

/// The `/` filter: whitespace-separated terms, all of which must match.
/// A plain term matches the name, state or group (substring, any case);
/// `name:`, `group:`, `state:`, `power:`, `stage:` and `holder:` look at
/// one field only. A term with `[`, `]` or `,` in it is a node range
/// ([`crate::inventory::range`]: `p9-rack1-[01-04]`, `group:rack1,-p9-rack1-02`):
/// it keeps the nodes the range picks. A range that does not parse filters
/// nothing out; [`Filter::problem`] says why.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Filter {
    terms: Vec<(Option<Field>, String)>,
    ranges: Vec<NodeRange>,
    /// The first range term that did not parse, and why.
    error: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Field {
    Name,
    Group,
    State,
    Power,
    Stage,
    Holder,
}

/// Whether a filter word is a node range rather than text to look for.
/// A word starting with `-` stays text: as a range it could only be an
/// error (an exclusion with nothing before it), and `/-01` finds names.
pub fn is_range_word(word: &str) -> bool {
    word.contains(['[', ']', ','])
}

/// The rows as a range sees them: name, group and state, in table order.
pub fn candidates(rows: &[NodeRow]) -> Vec<Candidate<'_>> {
    rows.iter()
        .map(|r| Candidate {
            name: &r.name,
            group: r.group.as_deref(),
            state: r.parsed_state(),
        })
        .collect()
}

impl Filter {
    pub fn parse(text: &str) -> Filter {
        let mut filter = Filter::default();
        for t in text.split_whitespace() {
            if is_range_word(t) {
                match range::parse(t) {
                    Ok(r) => filter.ranges.push(r),
                    Err(e) => {
                        filter.error.get_or_insert_with(|| e.to_string());
                    }
                }
                continue;
            }
            let lower = t.to_lowercase();
            if let Some((prefix, rest)) = lower.split_once(':') {
                let field = match prefix {
                    "name" => Some(Field::Name),
                    "group" => Some(Field::Group),
                    "state" => Some(Field::State),
                    "power" => Some(Field::Power),
                    "stage" => Some(Field::Stage),
                    "holder" => Some(Field::Holder),
                    _ => None,
                };
                if let Some(f) = field {
                    filter.terms.push((Some(f), rest.to_string()));
                    continue;
                }
            }
            filter.terms.push((None, lower));
        }
        filter
    }

    /// What is wrong with the filter's ranges over `rows`: a range that
    /// does not parse (left out), or terms that match no node.
    pub fn problem(&self, rows: &[NodeRow]) -> Option<String> {
        if let Some(e) = &self.error {
            return Some(e.clone());
        }
        if self.ranges.is_empty() {
            return None;
        }
        let candidates = candidates(rows);
        let mut terms = Vec::new();
        for r in &self.ranges {
            terms.extend(r.select(&candidates).unmatched);
        }
        (!terms.is_empty()).then(|| RangeError::NoMatch { terms }.to_string())
    }

    /// Indices of the rows the filter keeps, ascending.
    pub fn select(&self, rows: &[NodeRow]) -> Vec<usize> {
        let mut keep: Vec<bool> = rows.iter().map(|r| self.matches(r)).collect();
        if !self.ranges.is_empty() {
            let candidates = candidates(rows);
            for r in &self.ranges {
                let mut picked = vec![false; rows.len()];
                for i in r.select(&candidates).indices {
                    picked[i] = true;
                }
                for (k, p) in keep.iter_mut().zip(picked) {
                    *k &= p;
                }
            }
        }
        (0..rows.len()).filter(|&i| keep[i]).collect()
    }

    pub fn is_empty(&self) -> bool {
        self.terms.is_empty() && self.ranges.is_empty()
    }

    /// The text terms only: ranges need every row ([`Filter::select`]).
    fn matches(&self, row: &NodeRow) -> bool {
        self.terms.iter().all(|(field, term)| {
            let has = |s: &str| s.to_lowercase().contains(term.as_str());
            let group = row.group.as_deref().unwrap_or("");
            match field {
                None => has(&row.name) || has(&row.state) || has(group),
                Some(Field::Name) => has(&row.name),
                Some(Field::Group) => has(group),
                Some(Field::State) => has(&row.state),
                Some(Field::Power) => row.power_word().starts_with(term.as_str()),
                Some(Field::Stage) => {
                    has(&row.stage_text()) || has(row.stage.map_or("", |s| s.as_str()))
                }
                Some(Field::Holder) => has(row.holder.as_deref().unwrap_or("")),
            }
        })
    }
}
