//! Store snapshots and engine events → rows, history, log, flash; the
//! consoles the App watches.

use std::collections::{HashMap, HashSet};

use crate::console::ConsoleScreen;
use crate::engine::lab::EngineEvent;
use crate::engine::store::{EventRecord, NodeRecord, Reservation};
use crate::tui::app::{App, CONSOLE_SCROLLBACK, Effect, Mode};
use crate::tui::model::{self, HistoryEntry, LastEvent, Progress};
use crate::tui::theme::Role;

impl App {
    /// Where a node's boot got to: the console column says when it
    /// stalls (until a later status says it no longer does), and its
    /// timeline is read again when shown.
    pub(crate) fn on_boot_status(&mut self, node: &str, stalled: Option<String>) {
        let Some(row) = self.row_mut(node) else {
            return;
        };
        let newly = stalled.is_some() && row.stalled != stalled;
        row.stalled.clone_from(&stalled);
        if let (true, Some(headline)) = (newly, stalled) {
            self.log_line(
                node,
                format!("boot stalled: {headline}"),
                Role::Warning,
                None,
            );
        }
        self.timelines.outdate(node);
        self.touch_view();
    }

    pub(crate) fn on_snapshot(
        &mut self,
        records: &[NodeRecord],
        reservations: &[Reservation],
        history: &[EventRecord],
    ) {
        for r in records {
            if let Some(row) = self.row_mut(&r.name) {
                row.apply_record(r);
            }
        }
        let held: HashMap<&str, &Reservation> =
            reservations.iter().map(|r| (r.node.as_str(), r)).collect();
        for row in &mut self.rows {
            let r = held.get(row.name.as_str());
            row.holder = r.map(|r| r.holder.to_string());
            row.holder_action = r.map(|r| r.action.clone());
        }
        let mut by_node: HashMap<&str, Vec<&EventRecord>> = HashMap::new();
        for e in history {
            if let Some(n) = &e.node {
                by_node.entry(n.as_str()).or_default().push(e);
            }
        }
        for (node, events) in by_node {
            if let Some(row) = self.row_mut(node) {
                row.set_history(&events);
            }
        }
        self.touch_view();
    }

    pub(crate) fn on_engine(&mut self, event: EngineEvent) -> Vec<Effect> {
        let now = self.now;
        match event {
            EngineEvent::State {
                node,
                state,
                step,
                reason,
            } => {
                let Some(row) = self.row_mut(&node) else {
                    return Vec::new();
                };
                row.state = state.name().to_string();
                row.step = step.map(|s| s.name().to_string());
                row.reason.clone_from(&reason);
                row.state_since = now;
                if row.step.as_deref() != row.progress.as_ref().map(|p| p.step.as_str()) {
                    row.progress = None;
                }
                let mut text = format!("→ {}", row.state_text());
                if let Some(r) = &reason {
                    text.push_str(&format!(" ({r})"));
                }
                let role = row.state_role();
                row.push_history(HistoryEntry {
                    at: now,
                    who: String::new(),
                    action: "state".into(),
                    result: row.state.clone(),
                    detail: reason.unwrap_or_default(),
                });
                row.last = Some(LastEvent {
                    at: now,
                    text: text.clone(),
                    ok: (role == Role::StateFailed).then_some(false),
                });
                self.log_line(&node, text, role, None);
                self.touch_view();
            }
            EngineEvent::Progress {
                node,
                step,
                message,
                fraction,
            } => {
                let Some(row) = self.row_mut(&node) else {
                    return Vec::new();
                };
                row.progress = Some(Progress {
                    step: step.name().to_string(),
                    message: message.clone(),
                    fraction,
                });
                row.last = Some(LastEvent {
                    at: now,
                    text: message.clone(),
                    ok: None,
                });
                let pct = fraction.map(|f| format!(" {:.0}%", (f * 100.0).clamp(0.0, 100.0)));
                let text = format!("{step}{}: {message}", pct.unwrap_or_default());
                self.log_line(&node, text, Role::Text, Some(format!("{node}\u{0}{step}")));
                self.touch_view();
            }
            EngineEvent::Reading {
                node,
                power_on,
                boot_device,
                error,
                at,
            } => {
                let now = self.now.max(at);
                let Some(row) = self.row_mut(&node) else {
                    return Vec::new();
                };
                let before = row.reading_view(now);
                let power_before = row.power_on;
                // A node powered off shows no boot stage any more.
                if power_on == Some(false) {
                    row.stage = None;
                    row.stage_line = None;
                }
                row.power_on = power_on;
                row.boot_device = boot_device;
                row.reading_error = error;
                row.reading_at = Some(at);
                // Most polls find what the last one found: no frame for those.
                let changed = row.reading_view(now) != before || row.power_on != power_before;
                if changed {
                    self.touch_view();
                } else if self.detail_open && self.selected_name() == Some(node.as_str()) {
                    // The detail pane says how old the reading is.
                    self.dirty = true;
                }
            }
            EngineEvent::PowerDraw { node, watts, .. } => {
                let Some(row) = self.row_mut(&node) else {
                    return Vec::new();
                };
                row.push_watts(watts);
                self.dirty = true;
            }
            EngineEvent::ConsoleStage { node, stage, line } => {
                let Some(row) = self.row_mut(&node) else {
                    return Vec::new();
                };
                row.stage = Some(stage);
                row.stage_line = Some(line.clone());
                let role = row.stage_role();
                let text = format!("console: {} — {}", model::stage_label(stage), line.trim());
                self.log_line(&node, text, role, None);
                self.touch_view();
            }
            // Late bytes of a console no longer watched have no screen to go to.
            EngineEvent::ConsoleData { node, bytes } if self.watched.contains(&node) => {
                let (rows, cols) = self.console_size_guess();
                self.consoles
                    .entry(node.clone())
                    .or_insert_with(|| ConsoleScreen::new(rows, cols, CONSOLE_SCROLLBACK))
                    .feed(&bytes);
                if self.console_shown(&node) {
                    self.dirty = true;
                }
            }
            EngineEvent::ConsoleData { .. } => {}
            EngineEvent::BootStatus { node, stalled, .. } => {
                self.on_boot_status(&node, stalled);
            }
            EngineEvent::ConsoleStatus {
                node,
                connected,
                message,
            } => {
                let text = match (connected, &message) {
                    // A lab service's word on the console (its write lock).
                    (true, Some(m)) => format!("connected; {m}"),
                    (true, None) => "connected".to_string(),
                    (false, Some(m)) => format!("disconnected: {m}"),
                    (false, None) => "disconnected".to_string(),
                };
                if !connected && message.is_some() {
                    self.log_line(&node, format!("console {text}"), Role::Warning, None);
                }
                self.console_status.insert(node, text);
                self.dirty = true;
            }
            EngineEvent::Finished {
                node,
                action,
                ok,
                state,
                message,
            } => return self.on_finished(node, action, ok, state, message),
        }
        Vec::new()
    }

    fn on_finished(
        &mut self,
        node: String,
        action: crate::engine::lab::Action,
        ok: bool,
        state: Option<crate::engine::lifecycle::State>,
        message: String,
    ) -> Vec<Effect> {
        let now = self.now;
        let label = model::action_label(action);
        let verdict = if ok { "done" } else { "failed" };
        let text = if message.is_empty() {
            format!("{label} {verdict}")
        } else {
            format!("{label} {verdict}: {message}")
        };
        if let Some(row) = self.row_mut(&node) {
            if let Some(s) = state {
                row.state = s.name().to_string();
            }
            row.progress = None;
            row.last = Some(LastEvent {
                at: now,
                text: text.clone(),
                ok: Some(ok),
            });
            row.push_history(HistoryEntry {
                at: now,
                who: String::new(),
                action: label.clone(),
                result: verdict.into(),
                detail: message.clone(),
            });
        }
        let role = if ok { Role::StateOk } else { Role::Error };
        self.log_line(&node, text.clone(), role, None);
        self.flash(format!("{node}: {text}"), !ok);
        self.touch_view();
        // What is on disk may have changed.
        if self.detail_open && self.selected_name() == Some(node.as_str()) {
            return self.request_preview();
        }
        Vec::new()
    }

    /// Whether `node`'s console is on screen (pane or wall).
    pub(crate) fn console_shown(&self, node: &str) -> bool {
        let in_pane =
            self.mode == Mode::Console && self.pane.as_ref().is_some_and(|p| p.node() == node);
        let in_wall = self.mode == Mode::Wall
            && self
                .wall
                .as_ref()
                .is_some_and(|w| w.nodes.iter().any(|n| n == node));
        in_pane || in_wall
    }

    /// A new console screen's size: a serial console's host assumes 80x24
    /// (petitboot draws its menu for that). The console pane resizes its own
    /// screen when drawn; wall tiles keep this size, which also bounds what a
    /// screen's scrollback costs.
    pub(crate) fn console_size_guess(&self) -> (u16, u16) {
        (24, 80)
    }

    pub(crate) fn ensure_console(&mut self, node: &str) {
        let (rows, cols) = self.console_size_guess();
        self.consoles
            .entry(node.to_string())
            .or_insert_with(|| ConsoleScreen::new(rows, cols, CONSOLE_SCROLLBACK));
    }

    /// Watch `node`'s console unless already watched.
    pub(crate) fn watch(&mut self, node: &str) -> Option<Effect> {
        self.ensure_console(node);
        self.watched
            .insert(node.to_string())
            .then(|| Effect::WatchConsole {
                node: node.to_string(),
                on: true,
            })
    }

    /// Stop watching every console no longer in the pane or on the wall.
    pub(crate) fn unwatch_unused(&mut self) -> Vec<Effect> {
        let keep: HashSet<&str> = self
            .pane
            .iter()
            .map(|p| p.node())
            .chain(
                self.wall
                    .iter()
                    .flat_map(|w| w.nodes.iter().map(String::as_str)),
            )
            .collect();
        let mut gone: Vec<String> = self
            .watched
            .iter()
            .filter(|n| !keep.contains(n.as_str()))
            .cloned()
            .collect();
        gone.sort();
        for n in &gone {
            self.watched.remove(n);
            // A screen costs its scrollback; the node's log keeps the history.
            self.consoles.remove(n);
        }
        gone.into_iter()
            .map(|node| Effect::WatchConsole { node, on: false })
            .collect()
    }
}
