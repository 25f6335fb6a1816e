//! The selected node's BMC event log and FRU inventory, as the detail pane
//! shows them: a cache per node (what came back, and when), which fetches
//! are due, and the answers parsed from the toolbox's JSON. Plain data: the
//! App asks for fetches as effects and the loop runs them off the UI.
//!
//! Every answer is filed under the node it was fetched for, so a late one
//! never shows under another node. At most [`MAX_IN_FLIGHT`] fetches run at
//! once; what is due beyond that is asked for when one comes back.

use std::collections::HashMap;

use serde::Deserialize;
use serde_json::Value;

use crate::engine::bmc_ops::Toolbox;

/// Fetches running at once, whatever the nodes: a slow BMC holds one slot.
pub const MAX_IN_FLIGHT: usize = 4;
/// The event log shown is read again when this old (ms).
pub const EVENTS_MAX_AGE: i64 = 30_000;
/// A failed fetch is tried again after this long (ms).
pub const RETRY_AFTER: i64 = 30_000;
/// Event-log entries kept per node: the newest, as many as are shown.
pub const EVENTS_KEPT: usize = 8;
/// Inventory fields kept per area, and their length: a BMC's FRU is
/// hostile and the pane shows a handful.
const FIELDS_KEPT: usize = 32;
const TEXT_KEPT: usize = 200;

/// What is fetched.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Info {
    Events,
    Inventory,
}

impl Info {
    /// The toolbox operation that reads it (events are never cleared from
    /// the dashboard).
    pub fn op(self) -> Toolbox {
        match self {
            Info::Events => Toolbox::Events { clear: false },
            Info::Inventory => Toolbox::Inventory,
        }
    }
}

/// One event-log entry, as the toolbox's JSON has it (see
/// `hardware::toolbox::Event`).
#[derive(Debug, Clone, PartialEq, Eq, Default, Deserialize)]
pub struct SelLine {
    #[serde(default)]
    pub id: String,
    /// RFC 3339, or none (pre-init, or no timestamp).
    #[serde(default)]
    pub time: Option<String>,
    #[serde(default)]
    pub pre_init_seconds: Option<u32>,
    #[serde(default)]
    pub sensor_type: Option<String>,
    /// "asserted" or "deasserted".
    #[serde(default)]
    pub direction: Option<String>,
    #[serde(default)]
    pub severity: Option<String>,
    #[serde(default)]
    pub message: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Default, Deserialize)]
pub struct FruField {
    pub name: String,
    pub value: String,
}

/// The toolbox's inventory: FRU areas in the BMC's order.
#[derive(Debug, Clone, PartialEq, Eq, Default, Deserialize)]
pub struct Fru {
    #[serde(default)]
    pub chassis: Vec<FruField>,
    #[serde(default)]
    pub board: Vec<FruField>,
    #[serde(default)]
    pub product: Vec<FruField>,
    #[serde(default)]
    pub problems: Vec<String>,
}

/// The fields the pane shows first, in this order, when the BMC gave them.
pub const KEY_FIELDS: [&str; 7] = [
    "Board Mfg",
    "Board Product",
    "Board Serial",
    "Board Part Number",
    "Product Manufacturer",
    "Product Name",
    "Product Serial",
];

impl Fru {
    /// The key fields the BMC gave, in [`KEY_FIELDS`] order; when it gave
    /// none of them, its first fields (board, product, chassis) instead.
    pub fn shown(&self, at_most: usize) -> Vec<&FruField> {
        let all = || self.board.iter().chain(&self.product).chain(&self.chassis);
        let keys: Vec<&FruField> = KEY_FIELDS
            .iter()
            .filter_map(|k| all().find(|f| f.name == *k))
            .collect();
        if keys.is_empty() {
            all().take(at_most).collect()
        } else {
            keys.into_iter().take(at_most).collect()
        }
    }
}

/// An answer, filed under the node it was fetched for.
#[derive(Debug, Clone, PartialEq)]
pub enum Fetched {
    Events {
        node: String,
        result: Result<Vec<SelLine>, String>,
    },
    Inventory {
        node: String,
        result: Result<Fru, String>,
    },
}

impl Fetched {
    /// The toolbox's answer (`op.run`'s JSON, or the error) for `node`.
    pub fn parse(node: String, what: Info, answer: Result<Value, String>) -> Fetched {
        match what {
            Info::Events => Fetched::Events {
                node,
                result: answer.and_then(|v| parse_events(&v)),
            },
            Info::Inventory => Fetched::Inventory {
                node,
                result: answer.and_then(|v| parse_inventory(&v)),
            },
        }
    }

    pub fn node(&self) -> &str {
        match self {
            Fetched::Events { node, .. } | Fetched::Inventory { node, .. } => node,
        }
    }
}

fn bound(s: &mut String) {
    if s.len() > TEXT_KEPT {
        let mut end = TEXT_KEPT;
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        s.truncate(end);
    }
}

/// `{"events": [...]}` → its newest [`EVENTS_KEPT`], oldest first.
pub fn parse_events(v: &Value) -> Result<Vec<SelLine>, String> {
    let Some(list) = v.get("events").and_then(Value::as_array) else {
        return Err("the BMC's answer has no event list".into());
    };
    let skip = list.len().saturating_sub(EVENTS_KEPT);
    list[skip..]
        .iter()
        .map(|e| {
            let mut line: SelLine = serde_json::from_value(e.clone())
                .map_err(|why| format!("an event-log entry is malformed: {why}"))?;
            for s in [
                Some(&mut line.id),
                line.time.as_mut(),
                line.sensor_type.as_mut(),
                line.direction.as_mut(),
                line.severity.as_mut(),
                Some(&mut line.message),
            ]
            .into_iter()
            .flatten()
            {
                bound(s);
            }
            Ok(line)
        })
        .collect()
}

/// `{"inventory": {...}}` → its fields, bounded.
pub fn parse_inventory(v: &Value) -> Result<Fru, String> {
    let Some(inv) = v.get("inventory") else {
        return Err("the BMC's answer has no inventory".into());
    };
    let mut fru: Fru = serde_json::from_value(inv.clone())
        .map_err(|why| format!("the inventory is malformed: {why}"))?;
    for area in [&mut fru.chassis, &mut fru.board, &mut fru.product] {
        area.truncate(FIELDS_KEPT);
        for f in area.iter_mut() {
            bound(&mut f.name);
            bound(&mut f.value);
        }
    }
    fru.problems.truncate(4);
    fru.problems.iter_mut().for_each(bound);
    Ok(fru)
}

/// One thing fetched for one node.
#[derive(Debug, Clone, PartialEq)]
pub struct Slot<T> {
    /// The last answer: the data, or why there is none.
    pub value: Option<Result<T, String>>,
    /// When it came (App::now, ms).
    pub at: i64,
    /// A fetch is running.
    pub loading: bool,
    /// Asked to read it again (the refresh key) when a slot frees up.
    pub again: bool,
}

impl<T> Default for Slot<T> {
    fn default() -> Self {
        Slot {
            value: None,
            at: 0,
            loading: false,
            again: false,
        }
    }
}

impl<T> Slot<T> {
    /// Whether to fetch it now; `max_age` None: once (until refreshed).
    fn due(&self, now: i64, max_age: Option<i64>) -> bool {
        if self.loading {
            return false;
        }
        match &self.value {
            None => true,
            _ if self.again => true,
            Some(Err(_)) => now - self.at >= RETRY_AFTER,
            Some(Ok(_)) => max_age.is_some_and(|m| now - self.at >= m),
        }
    }

    fn fill(&mut self, result: Result<T, String>, now: i64) {
        self.value = Some(result);
        self.at = now;
        self.loading = false;
    }
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct NodeInfo {
    pub events: Slot<Vec<SelLine>>,
    pub inventory: Slot<Fru>,
}

/// Every node's cache, and how many fetches run.
#[derive(Debug, Clone, Default)]
pub struct BmcInfo {
    nodes: HashMap<String, NodeInfo>,
    in_flight: usize,
}

impl BmcInfo {
    pub fn get(&self, node: &str) -> Option<&NodeInfo> {
        self.nodes.get(node)
    }

    pub fn in_flight(&self) -> usize {
        self.in_flight
    }

    /// What to fetch for `node` now (marked loading); none beyond
    /// [`MAX_IN_FLIGHT`]: those are due again at the next call.
    pub fn due(&mut self, node: &str, now: i64) -> Vec<Info> {
        let free = MAX_IN_FLIGHT.saturating_sub(self.in_flight);
        if free == 0 {
            return Vec::new();
        }
        let info = self.nodes.entry(node.to_string()).or_default();
        let mut out = Vec::new();
        if info.events.due(now, Some(EVENTS_MAX_AGE)) {
            info.events.loading = true;
            info.events.again = false;
            out.push(Info::Events);
        }
        if out.len() < free && info.inventory.due(now, None) {
            info.inventory.loading = true;
            info.inventory.again = false;
            out.push(Info::Inventory);
        }
        self.in_flight += out.len();
        out
    }

    /// The refresh key: read both again, as soon as a slot is free.
    pub fn refresh(&mut self, node: &str) {
        let info = self.nodes.entry(node.to_string()).or_default();
        info.events.again = true;
        info.inventory.again = true;
    }

    /// Files an answer under its node; frees its slot.
    pub fn deliver(&mut self, fetched: Fetched, now: i64) {
        let info = self.nodes.entry(fetched.node().to_string()).or_default();
        let was_loading = match fetched {
            Fetched::Events { result, .. } => {
                let was = info.events.loading;
                info.events.fill(result, now);
                was
            }
            Fetched::Inventory { result, .. } => {
                let was = info.inventory.loading;
                info.inventory.fill(result, now);
                was
            }
        };
        // Only an answer the cache asked for held a slot.
        if was_loading {
            self.in_flight = self.in_flight.saturating_sub(1);
        }
    }

    /// Puts a node's data in the cache as if fetched (tests, snapshots).
    #[cfg(test)]
    pub fn insert(&mut self, node: &str, info: NodeInfo) {
        self.nodes.insert(node.to_string(), info);
    }
}

#[cfg(test)]
#[path = "bmc_info_tests.rs"]
mod tests;
