//! Keys and mouse → state changes and effects, per mode. Keys go through
//! the keymap (data) except in the text inputs and the console pane.

use crossterm::event::{KeyCode, KeyEvent, KeyEventKind, KeyModifiers};

use crate::engine::lab::{Action, Command};
use crate::inventory::range::{NodeRange, RangeError};
use crate::ipmi::chassis::{BootDevice, PowerAction};
use crate::tui::app::{App, Confirm, DetailView, Effect, Focus, Mode};
use crate::tui::command::{self, CommandLine};
use crate::tui::keymap::{Context, UiAction};
use crate::tui::model;
use crate::tui::theme::{Role, Theme};

impl App {
    pub(crate) fn on_key(&mut self, key: KeyEvent) -> Vec<Effect> {
        if key.kind == KeyEventKind::Release {
            return Vec::new();
        }
        match self.mode {
            Mode::Normal => self.key_normal(key),
            Mode::Filter | Mode::Command => self.key_input(key),
            Mode::Confirm => self.key_confirm(key),
            Mode::Help => {
                self.key_help(key);
                Vec::new()
            }
            Mode::Console => self.key_console(key),
            Mode::Wall => self.key_wall(key),
            Mode::Stages => self.key_stages(key),
        }
    }

    fn key_normal(&mut self, key: KeyEvent) -> Vec<Effect> {
        let detail = self.detail_open && self.focus == Focus::Detail;
        let contexts: &[Context] = if detail {
            &[
                Context::Detail,
                Context::Nav,
                Context::View,
                Context::Actions,
            ]
        } else {
            &[Context::Nav, Context::View, Context::Actions]
        };
        match self.keymap.lookup(contexts, &key) {
            Some(action) => self.ui_action(action),
            None => Vec::new(),
        }
    }

    fn page(&self) -> usize {
        match self.hits.table_body.height {
            0 => 10,
            h => usize::from(h),
        }
    }

    pub(crate) fn move_cursor(&mut self, delta: isize) {
        let last = self.view.len().saturating_sub(1);
        let to = self.cursor.saturating_add_signed(delta).min(last);
        if to != self.cursor {
            self.cursor = to;
            self.dirty = true;
        }
    }

    fn ui_action(&mut self, action: UiAction) -> Vec<Effect> {
        use UiAction as A;
        let page = self.page() as isize;
        match action {
            A::Up => self.move_cursor(-1),
            A::Down => self.move_cursor(1),
            A::Top => self.move_cursor(isize::MIN / 2),
            A::Bottom => self.move_cursor(isize::MAX / 2),
            A::PageUp => self.move_cursor(-page),
            A::PageDown => self.move_cursor(page),
            A::Mark => {
                if let Some(&i) = self.view.get(self.cursor) {
                    self.rows[i].marked = !self.rows[i].marked;
                    self.move_cursor(1);
                    self.dirty = true;
                }
            }
            A::MarkAll => {
                let all = self.view.iter().all(|&i| self.rows[i].marked);
                self.mark_shown(!all);
            }
            A::Filter => {
                self.filter_before = self.filter_text.clone();
                self.input = self.filter_text.clone();
                self.mode = Mode::Filter;
                self.dirty = true;
            }
            A::Sort => self.set_sort(self.sort.next(), self.descending),
            A::SortReverse => self.set_sort(self.sort, !self.descending),
            A::Detail => {
                self.detail_open = !self.detail_open;
                self.focus = Focus::Table;
                self.dirty = true;
                if self.detail_open {
                    return self.request_preview();
                }
            }
            A::BmcRefresh => {
                let Some(node) = self.selected_name().map(str::to_string) else {
                    return Vec::new();
                };
                // Fetched by update() once the pane is shown (a slot free).
                match self.detail_view {
                    DetailView::Bmc => self.bmc_info.refresh(&node),
                    DetailView::Boot => self.timelines.outdate(&node),
                }
                self.dirty = true;
                if !self.detail_open {
                    self.detail_open = true;
                    self.focus = Focus::Table;
                    return self.request_preview();
                }
            }
            A::BootView => {
                self.dirty = true;
                self.detail_scroll = 0;
                if !self.detail_open {
                    self.detail_open = true;
                    self.focus = Focus::Table;
                    self.detail_view = DetailView::Boot;
                    return self.request_preview();
                }
                self.detail_view = match self.detail_view {
                    DetailView::Bmc => DetailView::Boot,
                    DetailView::Boot => DetailView::Bmc,
                };
            }
            A::Stages => return self.open_stages(),
            A::Focus => {
                self.dirty = true;
                if !self.detail_open {
                    self.detail_open = true;
                    self.focus = Focus::Detail;
                    return self.request_preview();
                }
                self.focus = match self.focus {
                    Focus::Table => Focus::Detail,
                    Focus::Detail => Focus::Table,
                };
            }
            A::Refresh => {
                self.detail_open = true;
                self.preview = None;
                return self.request_preview();
            }
            A::Stage => {
                self.stage = match self.stage {
                    crate::boot::Stage::Deploy => crate::boot::Stage::Instance,
                    crate::boot::Stage::Instance => crate::boot::Stage::Deploy,
                };
                self.detail_open = true;
                self.preview = None;
                return self.request_preview();
            }
            A::Log => {
                self.log_open = !self.log_open;
                self.dirty = true;
            }
            A::Console => {
                if let Some(node) = self.selected_name().map(str::to_string) {
                    return self.open_console(&node, false);
                }
                self.flash("no node selected", true);
            }
            A::Wall => return self.open_wall(Vec::new()),
            A::Command => {
                self.input.clear();
                self.mode = Mode::Command;
                self.dirty = true;
            }
            A::Help => {
                self.help_scroll = 0;
                self.mode = Mode::Help;
                self.dirty = true;
            }
            A::Back => self.back(),
            A::Quit => return vec![Effect::Quit],
            A::PowerOn => return self.request_action(Action::Power(PowerAction::On), Vec::new()),
            A::PowerOff => return self.request_action(Action::Power(PowerAction::Off), Vec::new()),
            A::PowerCycle => {
                return self.request_action(Action::Power(PowerAction::Cycle), Vec::new());
            }
            A::PowerReset => {
                return self.request_action(Action::Power(PowerAction::Reset), Vec::new());
            }
            A::BootPxe => {
                return self.request_action(Action::BootDevice(BootDevice::Pxe), Vec::new());
            }
            A::BootDisk => {
                return self.request_action(Action::BootDevice(BootDevice::Disk), Vec::new());
            }
            A::BootNone => {
                return self.request_action(Action::BootDevice(BootDevice::None), Vec::new());
            }
            A::Prepare => return self.request_action(Action::PrepareRamdisk, Vec::new()),
            A::Deploy => return self.request_action(Action::Deploy, Vec::new()),
            A::Undeploy => return self.request_action(Action::Undeploy, Vec::new()),
            A::Abort => return self.request_action(Action::Abort, Vec::new()),
            A::DetailUp => self.scroll_detail(-1),
            A::DetailTop => self.scroll_detail(-i32::from(u16::MAX)),
            A::DetailBottom => self.scroll_detail(i32::from(u16::MAX)),
            A::DetailDown => self.scroll_detail(1),
            A::DetailPageUp => self.scroll_detail(-(self.hits.detail.height.max(2) as i32 - 1)),
            A::DetailPageDown => self.scroll_detail(self.hits.detail.height.max(2) as i32 - 1),
            // Keys of other modes never reach here.
            _ => {}
        }
        Vec::new()
    }

    pub(crate) fn scroll_detail(&mut self, delta: i32) {
        let to = (i32::from(self.detail_scroll) + delta).clamp(0, i32::from(u16::MAX));
        self.detail_scroll = u16::try_from(to).unwrap_or(0);
        self.dirty = true;
    }

    fn mark_shown(&mut self, on: bool) {
        for &i in &self.view {
            self.rows[i].marked = on;
        }
        self.dirty = true;
    }

    /// Esc: detail focus, then the filter, then the marks, then the detail pane.
    fn back(&mut self) {
        self.dirty = true;
        if self.detail_open && self.focus == Focus::Detail {
            self.focus = Focus::Table;
        } else if !self.filter_text.is_empty() {
            self.set_filter("");
        } else if self.rows.iter().any(|r| r.marked) {
            for r in &mut self.rows {
                r.marked = false;
            }
        } else if self.detail_open {
            self.detail_open = false;
        }
    }

    /// An action on `nodes`, or the marked nodes, else the selected one:
    /// refused when read-only, confirmed first when destructive.
    pub(crate) fn request_action(&mut self, action: Action, nodes: Vec<String>) -> Vec<Effect> {
        let label = model::action_label(action);
        if self.read_only {
            self.flash(
                format!("read-only: {label} refused (petitlab was started with --read-only)"),
                true,
            );
            return Vec::new();
        }
        let nodes = if !nodes.is_empty() {
            if let Some(unknown) = nodes.iter().find(|n| !self.knows(n)) {
                self.flash(
                    format!("no node named {unknown:?} in {}", self.lab_name),
                    true,
                );
                return Vec::new();
            }
            nodes
        } else {
            let marked = self.marked();
            if !marked.is_empty() {
                marked
            } else if let Some(n) = self.selected_name() {
                vec![n.to_string()]
            } else {
                self.flash(format!("{label}: no node selected"), true);
                return Vec::new();
            }
        };
        if model::destructive(action) {
            self.confirm = Some(Confirm {
                action,
                nodes,
                yes_focused: false,
            });
            self.mode = Mode::Confirm;
            self.dirty = true;
            return Vec::new();
        }
        self.run_action(action, nodes)
    }

    fn run_action(&mut self, action: Action, nodes: Vec<String>) -> Vec<Effect> {
        if self.read_only {
            return Vec::new();
        }
        let label = model::action_label(action);
        for node in &nodes {
            self.log_line(node, format!("{label} requested"), Role::Muted, None);
        }
        let who = match nodes.as_slice() {
            [one] => one.clone(),
            many => format!("{} nodes", many.len()),
        };
        self.flash(format!("{label}: sent to {who}"), false);
        nodes
            .into_iter()
            .map(|node| Effect::Engine(Command { action, node }))
            .collect()
    }

    fn key_confirm(&mut self, key: KeyEvent) -> Vec<Effect> {
        let Some(action) = self.keymap.lookup(&[Context::Confirm], &key) else {
            return Vec::new();
        };
        let Some(confirm) = &mut self.confirm else {
            self.mode = Mode::Normal;
            return Vec::new();
        };
        self.dirty = true;
        let yes = match action {
            UiAction::ConfirmYes => true,
            UiAction::ConfirmNo => false,
            UiAction::ConfirmChoose => confirm.yes_focused,
            UiAction::ConfirmSwitch => {
                confirm.yes_focused = !confirm.yes_focused;
                return Vec::new();
            }
            _ => return Vec::new(),
        };
        let Some(confirm) = self.confirm.take() else {
            return Vec::new();
        };
        self.mode = Mode::Normal;
        if yes {
            self.run_action(confirm.action, confirm.nodes)
        } else {
            self.flash(
                format!("{}: cancelled", model::action_label(confirm.action)),
                false,
            );
            Vec::new()
        }
    }

    /// The stage durations chart: read (again) each time it opens.
    pub(crate) fn open_stages(&mut self) -> Vec<Effect> {
        self.mode = Mode::Stages;
        self.dirty = true;
        if self.stages.loading {
            return Vec::new();
        }
        self.stages.loading = true;
        vec![Effect::FetchStages]
    }

    fn key_stages(&mut self, key: KeyEvent) -> Vec<Effect> {
        match self.keymap.lookup(&[Context::Stages], &key) {
            Some(UiAction::StagesClose) => {
                self.mode = Mode::Normal;
                self.dirty = true;
                Vec::new()
            }
            Some(UiAction::StagesRefresh) => self.open_stages(),
            _ => Vec::new(),
        }
    }

    fn key_help(&mut self, key: KeyEvent) {
        let page = self.hits.help.height.saturating_sub(3).max(1);
        match self.keymap.lookup(&[Context::Help], &key) {
            Some(UiAction::HelpUp) => self.help_scroll = self.help_scroll.saturating_sub(1),
            Some(UiAction::HelpDown) => self.help_scroll = self.help_scroll.saturating_add(1),
            Some(UiAction::HelpPageUp) => self.help_scroll = self.help_scroll.saturating_sub(page),
            Some(UiAction::HelpPageDown) => {
                self.help_scroll = self.help_scroll.saturating_add(page)
            }
            Some(UiAction::HelpTop) => self.help_scroll = 0,
            Some(UiAction::HelpBottom) => self.help_scroll = u16::MAX,
            Some(UiAction::HelpClose) => self.mode = Mode::Normal,
            _ => return,
        }
        self.dirty = true;
    }

    /// Filter and command line editing: typed characters, Backspace,
    /// ctrl-u (clear), ctrl-w (word), Enter, Esc.
    fn key_input(&mut self, key: KeyEvent) -> Vec<Effect> {
        let ctrl = key.modifiers.contains(KeyModifiers::CONTROL);
        self.dirty = true;
        match key.code {
            KeyCode::Esc => {
                if self.mode == Mode::Filter {
                    let before = std::mem::take(&mut self.filter_before);
                    self.set_filter(&before);
                }
                self.mode = Mode::Normal;
                return Vec::new();
            }
            KeyCode::Char('c') if ctrl => {
                if self.mode == Mode::Filter {
                    let before = std::mem::take(&mut self.filter_before);
                    self.set_filter(&before);
                }
                self.mode = Mode::Normal;
                return Vec::new();
            }
            KeyCode::Enter => {
                let line = std::mem::take(&mut self.input);
                if self.mode == Mode::Command {
                    self.mode = Mode::Normal;
                    return self.run_command(&line);
                }
                self.mode = Mode::Normal;
                self.flash_filter_problem();
                return Vec::new();
            }
            KeyCode::Backspace => {
                self.input.pop();
            }
            KeyCode::Char('u') if ctrl => self.input.clear(),
            KeyCode::Char('w') if ctrl => {
                let trimmed = self.input.trim_end().len();
                self.input.truncate(trimmed);
                let cut = self.input.rfind(char::is_whitespace).map_or(0, |i| i + 1);
                self.input.truncate(cut);
            }
            KeyCode::Char(c) if !ctrl => self.input.push(c),
            _ => return Vec::new(),
        }
        if self.mode == Mode::Filter {
            let text = self.input.clone();
            self.set_filter(&text);
        }
        Vec::new()
    }

    pub(crate) fn run_command(&mut self, line: &str) -> Vec<Effect> {
        let parsed = match command::parse(line) {
            Ok(c) => c,
            Err(why) => {
                self.flash(why, true);
                return Vec::new();
            }
        };
        match parsed {
            CommandLine::Act { action, nodes } => {
                let Some(nodes) = self.range_names(nodes.as_ref()) else {
                    return Vec::new();
                };
                return self.request_action(action, nodes);
            }
            CommandLine::Quit => return vec![Effect::Quit],
            CommandLine::Filter(text) => {
                self.set_filter(&text);
                self.flash_filter_problem();
            }
            CommandLine::Sort { column, descending } => self.set_sort(column, descending),
            CommandLine::Theme(name) => match Theme::builtin(&name) {
                Some(theme) => {
                    self.theme = theme;
                    self.dirty = true;
                }
                None => self.flash(
                    format!("no theme {name:?}: dark, light or high-contrast"),
                    true,
                ),
            },
            CommandLine::Help => {
                self.help_scroll = 0;
                self.mode = Mode::Help;
            }
            CommandLine::Console(node) => {
                let node = node.or_else(|| self.selected_name().map(str::to_string));
                match node {
                    Some(n) if self.knows(&n) => return self.open_console(&n, false),
                    Some(n) => {
                        self.flash(format!("no node named {n:?} in {}", self.lab_name), true)
                    }
                    None => self.flash("no node selected", true),
                }
            }
            CommandLine::Wall(nodes) => {
                if let Some(nodes) = self.range_names(nodes.as_ref()) {
                    return self.open_wall(nodes);
                }
            }
            CommandLine::Mark(on) => self.mark_shown(on),
        }
        self.dirty = true;
        Vec::new()
    }

    /// The nodes a command's range names, in the lab's order (none given:
    /// empty, for the marked or selected ones); `None` after flashing why
    /// not, when a term matches no node.
    fn range_names(&mut self, range: Option<&NodeRange>) -> Option<Vec<String>> {
        let Some(range) = range else {
            return Some(Vec::new());
        };
        match range.resolve(&model::candidates(&self.rows)) {
            Ok(names) => Some(names),
            Err(e @ RangeError::NoMatch { .. }) => {
                self.flash(format!("{e} in {}", self.lab_name), true);
                None
            }
            Err(e) => {
                self.flash(e.to_string(), true);
                None
            }
        }
    }

    fn flash_filter_problem(&mut self) {
        if let Some(problem) = self.filter_problem.clone() {
            self.flash(format!("filter: {problem}"), true);
        }
    }
}
