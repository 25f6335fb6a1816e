//! The dashboard's state and its one entry point, `update(msg) -> effects`.
//! The App holds plain data and never does I/O: the loop (`run.rs`) feeds
//! it messages and carries out the effects it returns. Key and mouse
//! handling is in `app_input.rs`, drawing in `views/`.

use std::collections::{HashMap, HashSet, VecDeque};

use ratatui::layout::Rect;

use crate::console::ConsoleScreen;
use crate::engine::lab::{Command, EngineEvent};
use crate::engine::store::{EventRecord, NodeRecord, Reservation};
use crate::inventory::{Lab, Node};
use crate::tui::bmc_info::{BmcInfo, Fetched, Info};
use crate::tui::console_pane::ConsolePane;
use crate::tui::keymap::Keymap;
use crate::tui::model::{self, Column, Filter, NodeRow};
use crate::tui::theme::{Role, Theme};
use crate::tui::timeline::{StagesView, Timelines};

// A Preview is large and rare; boxing it would change the loop's contract.
#[allow(clippy::large_enum_variant)]
pub enum Msg {
    Key(crossterm::event::KeyEvent),
    Mouse(crossterm::event::MouseEvent),
    Resize(u16, u16),
    /// Unix ms; the loop sends one a second (ages, stale readings, flash expiry).
    Tick(i64),
    Engine(EngineEvent),
    /// Initial and refreshed store contents.
    Snapshot {
        records: Vec<NodeRecord>,
        reservations: Vec<Reservation>,
        history: Vec<EventRecord>,
    },
    /// The answer to Effect::Preview.
    Preview(Preview),
    /// The answer to Effect::FetchBmc.
    BmcInfo(Fetched),
    /// The answer to Effect::FetchTimeline, for the node it was asked for.
    Timeline {
        node: String,
        answer: crate::tui::timeline::Answer,
    },
    /// The answer to Effect::FetchStages.
    Stages(Result<Vec<crate::timeline::phases::StageStats>, String>),
}

#[derive(Debug, Clone)]
pub struct Preview {
    pub node: String,
    /// Deploy or Instance.
    pub stage: crate::boot::Stage,
    /// What the engine would write now: Ok(None) = no config (local boot), Err = problems (template errors).
    pub rendered: Result<Option<crate::boot::petitboot::Rendered>, Vec<crate::inventory::Problem>>,
    /// What is on disk at the config path now (None: no file).
    pub on_disk: Option<String>,
}

#[derive(Debug, Clone)]
pub enum Effect {
    Engine(Command),
    Preview {
        node: String,
        stage: crate::boot::Stage,
    },
    /// Start/stop receiving EngineEvent::ConsoleData for a node.
    WatchConsole {
        node: String,
        on: bool,
    },
    /// Bytes typed into a node's console (from the console pane).
    ConsoleInput {
        node: String,
        bytes: Vec<u8>,
    },
    ConsoleBreak {
        node: String,
    },
    /// Read a node's event log or inventory (never clears anything); the
    /// answer comes back as Msg::BmcInfo.
    FetchBmc {
        node: String,
        what: Info,
    },
    /// Read a node's last boot and its diagnosis; the answer comes back as
    /// Msg::Timeline.
    FetchTimeline {
        node: String,
    },
    /// Read the lab-wide stage durations; the answer comes back as
    /// Msg::Stages.
    FetchStages,
    Quit,
}

/// What has the keyboard.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Normal,
    /// Editing the `/` filter.
    Filter,
    /// Editing a `:` command.
    Command,
    Confirm,
    Help,
    Console,
    Wall,
    /// The lab-wide stage durations chart.
    Stages,
}

/// What the detail pane shows besides the node's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DetailView {
    /// The config it would get, the BMC's event log, history, inventory.
    Bmc,
    /// Its last boot: the diagnosis, the stage bar, the events.
    Boot,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Focus {
    Table,
    Detail,
}

/// A destructive action waiting for a yes; "No" has the focus until moved.
#[derive(Debug, Clone, PartialEq)]
pub struct Confirm {
    pub action: crate::engine::lab::Action,
    pub nodes: Vec<String>,
    pub yes_focused: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Flash {
    pub text: String,
    pub error: bool,
    /// Ticks left before it goes.
    pub ticks: u8,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogLine {
    pub at: i64,
    pub node: String,
    pub text: String,
    pub role: Role,
    /// Progress lines of one node and step replace each other.
    pub progress: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WallState {
    pub nodes: Vec<String>,
    pub selected: usize,
}

/// Where things were drawn last, for mouse hits and paging.
#[derive(Debug, Clone, Default)]
pub struct Hits {
    pub table_body: Rect,
    pub detail: Rect,
    pub log: Rect,
    pub help: Rect,
    pub tiles: Vec<Rect>,
}

pub const FLASH_TICKS: u8 = 4;
pub const LOG_KEPT: usize = 500;
/// Lines of scrollback per watched console (a full one costs ~1.5 MB of
/// vt100 cells at 100 columns; the console log keeps everything).
pub const CONSOLE_SCROLLBACK: usize = 1000;

pub struct App {
    pub(crate) theme: Theme,
    pub(crate) keymap: Keymap,
    pub(crate) read_only: bool,
    /// The lab file's name, for the title.
    pub(crate) lab_name: String,
    /// Inventory, in the same order as `rows`.
    pub(crate) nodes: Vec<Node>,
    pub(crate) rows: Vec<NodeRow>,
    index: HashMap<String, usize>,
    /// The rows shown: indices into `rows`, filtered and sorted.
    pub(crate) view: Vec<usize>,
    view_dirty: bool,
    /// Selected position in `view`.
    pub(crate) cursor: usize,
    /// First row of `view` drawn.
    pub(crate) offset: usize,
    pub(crate) filter_text: String,
    filter: Filter,
    /// What is wrong with the filter's node ranges (shown while typing it).
    pub(crate) filter_problem: Option<String>,
    /// The filter before `/` started editing, restored by Esc.
    pub(crate) filter_before: String,
    pub(crate) sort: Column,
    pub(crate) descending: bool,
    pub(crate) mode: Mode,
    /// The line being edited in Filter and Command modes.
    pub(crate) input: String,
    pub(crate) detail_open: bool,
    pub(crate) focus: Focus,
    pub(crate) detail_scroll: u16,
    pub(crate) stage: crate::boot::Stage,
    pub(crate) preview: Option<Preview>,
    /// Each node's BMC event log and inventory, as last fetched.
    pub(crate) bmc_info: BmcInfo,
    pub(crate) detail_view: DetailView,
    /// Each node's last boot and diagnosis, as last fetched.
    pub(crate) timelines: Timelines,
    /// The lab-wide stage durations (Mode::Stages).
    pub(crate) stages: StagesView,
    pub(crate) log: VecDeque<LogLine>,
    pub(crate) log_open: bool,
    /// Lines scrolled back from the newest (0 = follow).
    pub(crate) log_scroll: usize,
    pub(crate) flash: Option<Flash>,
    pub(crate) confirm: Option<Confirm>,
    pub(crate) help_scroll: u16,
    pub(crate) consoles: HashMap<String, ConsoleScreen>,
    pub(crate) console_status: HashMap<String, String>,
    pub(crate) pane: Option<ConsolePane>,
    pub(crate) wall: Option<WallState>,
    /// Nodes the loop was told to watch.
    pub(crate) watched: HashSet<String>,
    pub(crate) now: i64,
    /// The selected node when `update` last looked (previews follow it).
    last_selected: Option<String>,
    pub(crate) dirty: bool,
    /// [`App::clock_texts`] when last drawn.
    clock_shown: u64,
    pub(crate) size: (u16, u16),
    pub(crate) hits: Hits,
}

impl App {
    pub fn new(lab: &Lab, theme: Theme, keymap: Keymap, read_only: bool) -> App {
        let rows: Vec<NodeRow> = lab
            .nodes
            .iter()
            .map(|n| NodeRow::new(&n.name, n.group.as_deref()))
            .collect();
        let index = rows
            .iter()
            .enumerate()
            .map(|(i, r)| (r.name.clone(), i))
            .collect();
        let lab_name = lab.path.file_name().map_or_else(
            || lab.path.display().to_string(),
            |n| n.to_string_lossy().into_owned(),
        );
        let mut app = App {
            theme,
            keymap,
            read_only,
            lab_name,
            nodes: lab.nodes.clone(),
            rows,
            index,
            view: Vec::new(),
            view_dirty: true,
            cursor: 0,
            offset: 0,
            filter_text: String::new(),
            filter: Filter::default(),
            filter_problem: None,
            filter_before: String::new(),
            sort: Column::Name,
            descending: false,
            mode: Mode::Normal,
            input: String::new(),
            detail_open: false,
            focus: Focus::Table,
            detail_scroll: 0,
            stage: crate::boot::Stage::Deploy,
            preview: None,
            bmc_info: BmcInfo::default(),
            detail_view: DetailView::Bmc,
            timelines: Timelines::default(),
            stages: StagesView::default(),
            log: VecDeque::new(),
            log_open: true,
            log_scroll: 0,
            flash: None,
            confirm: None,
            help_scroll: 0,
            consoles: HashMap::new(),
            console_status: HashMap::new(),
            pane: None,
            wall: None,
            watched: HashSet::new(),
            now: 0,
            last_selected: None,
            dirty: true,
            clock_shown: 0,
            size: (80, 24),
            hits: Hits::default(),
        };
        app.refresh_view();
        app.last_selected = app.selected_name().map(str::to_string);
        app
    }

    /// Returns effects for the loop to carry out; never does I/O itself.
    pub fn update(&mut self, msg: Msg) -> Vec<Effect> {
        // Engine events and ticks come in bursts (a reading per node per
        // poll): the view they disturb is recomputed once, when drawn.
        let deferred = matches!(msg, Msg::Engine(_) | Msg::Tick(_));
        if !deferred {
            self.refresh_view();
        }
        let mut effects = match msg {
            Msg::Key(key) => self.on_key(key),
            Msg::Mouse(mouse) => self.on_mouse(mouse),
            Msg::Resize(w, h) => {
                self.size = (w, h);
                self.dirty = true;
                Vec::new()
            }
            Msg::Tick(now) => {
                self.on_tick(now);
                Vec::new()
            }
            Msg::Engine(event) => self.on_engine(event),
            Msg::Snapshot {
                records,
                reservations,
                history,
            } => {
                self.on_snapshot(&records, &reservations, &history);
                Vec::new()
            }
            Msg::Preview(p) => {
                if self.selected_name() == Some(p.node.as_str()) && p.stage == self.stage {
                    self.preview = Some(p);
                    self.dirty = true;
                }
                Vec::new()
            }
            Msg::BmcInfo(fetched) => {
                if self.detail_shown() && self.selected_name() == Some(fetched.node()) {
                    self.dirty = true;
                }
                self.bmc_info.deliver(fetched, self.now);
                Vec::new()
            }
            Msg::Timeline { node, answer } => {
                if self.detail_shown() && self.selected_name() == Some(node.as_str()) {
                    self.dirty = true;
                }
                self.timelines.deliver(&node, answer, self.now);
                Vec::new()
            }
            Msg::Stages(answer) => {
                self.stages.value = Some(answer);
                self.stages.loading = false;
                self.stages.at = self.now;
                self.dirty = true;
                Vec::new()
            }
        };
        if !deferred {
            self.refresh_view();
        }
        // A selection changed by a redraw's refresh is caught here by the next message.
        let after = self.selected_name().map(str::to_string);
        if after != self.last_selected {
            self.last_selected = after;
            self.dirty = true;
            self.detail_scroll = 0;
            if self.detail_open && !effects.iter().any(|e| matches!(e, Effect::Preview { .. })) {
                effects.extend(self.request_preview());
            }
        }
        effects.extend(self.fetch_bmc_info());
        effects.extend(self.fetch_timeline());
        effects
    }

    /// Whether the detail pane is on screen (the console pane and the wall
    /// take its place).
    pub(crate) fn detail_shown(&self) -> bool {
        self.detail_open && !matches!(self.mode, Mode::Console | Mode::Wall)
    }

    /// The selected node's event log and inventory, when shown and due.
    fn fetch_bmc_info(&mut self) -> Vec<Effect> {
        if !self.detail_shown() || self.detail_view != DetailView::Bmc {
            return Vec::new();
        }
        let Some(node) = self.selected_name().map(str::to_string) else {
            return Vec::new();
        };
        let due = self.bmc_info.due(&node, self.now);
        if !due.is_empty() {
            self.dirty = true;
        }
        due.into_iter()
            .map(|what| Effect::FetchBmc {
                node: node.clone(),
                what,
            })
            .collect()
    }

    /// The selected node's boot timeline, when the boot view is shown and
    /// it is due (never fetched, or out of date and not read for a while).
    fn fetch_timeline(&mut self) -> Vec<Effect> {
        if !self.detail_shown() || self.detail_view != DetailView::Boot {
            return Vec::new();
        }
        let Some(node) = self.selected_name().map(str::to_string) else {
            return Vec::new();
        };
        if !self.timelines.due(&node, self.now) {
            return Vec::new();
        }
        self.dirty = true;
        vec![Effect::FetchTimeline { node }]
    }

    /// How many console screens the App holds (one per watched console).
    pub fn console_screens(&self) -> usize {
        self.consoles.len()
    }

    /// True when something visible changed since the last draw (the loop redraws only then).
    pub fn needs_redraw(&self) -> bool {
        self.dirty
    }

    pub fn draw(&mut self, frame: &mut ratatui::Frame) {
        self.refresh_view();
        let area = frame.area();
        self.size = (area.width, area.height);
        let areas = crate::tui::views::layout(self, area);
        self.prepare_draw(&areas);
        crate::tui::views::render(frame, self, &areas);
        self.clock_shown = self.clock_texts();
        self.dirty = false;
    }

    pub fn mode(&self) -> Mode {
        self.mode
    }

    pub fn read_only(&self) -> bool {
        self.read_only
    }

    /// The selected node's name (none when the filter hides every node).
    pub fn selected_name(&self) -> Option<&str> {
        self.selected_row().map(|r| r.name.as_str())
    }

    pub(crate) fn selected_row(&self) -> Option<&NodeRow> {
        self.view.get(self.cursor).map(|&i| &self.rows[i])
    }

    pub(crate) fn selected_node(&self) -> Option<&Node> {
        self.view.get(self.cursor).and_then(|&i| self.nodes.get(i))
    }

    pub(crate) fn row(&self, name: &str) -> Option<&NodeRow> {
        self.index.get(name).map(|&i| &self.rows[i])
    }

    pub(crate) fn row_mut(&mut self, name: &str) -> Option<&mut NodeRow> {
        self.index.get(name).map(|&i| &mut self.rows[i])
    }

    pub(crate) fn knows(&self, name: &str) -> bool {
        self.index.contains_key(name)
    }

    /// Marked nodes among those shown, in table order.
    pub fn marked(&self) -> Vec<String> {
        self.view
            .iter()
            .map(|&i| &self.rows[i])
            .filter(|r| r.marked)
            .map(|r| r.name.clone())
            .collect()
    }

    pub(crate) fn set_filter(&mut self, text: &str) {
        if self.filter_text != text {
            self.filter_text = text.to_string();
            self.filter = Filter::parse(text);
            self.filter_problem = self.filter.problem(&self.rows);
            self.view_dirty = true;
            self.dirty = true;
        }
    }

    pub(crate) fn set_sort(&mut self, column: Column, descending: bool) {
        self.sort = column;
        self.descending = descending;
        self.view_dirty = true;
        self.dirty = true;
    }

    pub(crate) fn touch_view(&mut self) {
        self.view_dirty = true;
        self.dirty = true;
    }

    /// Recomputes the shown rows when anything they depend on changed,
    /// keeping the selected node selected when it is still shown.
    pub(crate) fn refresh_view(&mut self) {
        if !self.view_dirty {
            return;
        }
        let selected = self.view.get(self.cursor).copied();
        let rows = &self.rows;
        self.view = self.filter.select(rows);
        model::sort_view(rows, &mut self.view, self.sort, self.descending);
        self.cursor = selected
            .and_then(|s| self.view.iter().position(|&i| i == s))
            .unwrap_or_else(|| self.cursor.min(self.view.len().saturating_sub(1)));
        self.view_dirty = false;
    }

    /// Asks the loop for the selected node's config, unless the shown one is current.
    pub(crate) fn request_preview(&mut self) -> Vec<Effect> {
        let Some(node) = self.selected_name().map(str::to_string) else {
            self.preview = None;
            return Vec::new();
        };
        let current = self
            .preview
            .as_ref()
            .is_some_and(|p| p.node == node && p.stage == self.stage);
        if !current {
            self.preview = None;
        }
        self.dirty = true;
        vec![Effect::Preview {
            node,
            stage: self.stage,
        }]
    }

    pub(crate) fn flash(&mut self, text: impl Into<String>, error: bool) {
        self.flash = Some(Flash {
            text: text.into(),
            error,
            ticks: FLASH_TICKS,
        });
        self.dirty = true;
    }

    pub(crate) fn log_line(
        &mut self,
        node: &str,
        text: String,
        role: Role,
        progress: Option<String>,
    ) {
        if let Some(key) = &progress
            && let Some(last) = self.log.back_mut()
            && last.progress.as_ref() == Some(key)
        {
            last.text = text;
            last.at = self.now;
            self.dirty = true;
            return;
        }
        self.log.push_back(LogLine {
            at: self.now,
            node: node.to_string(),
            text,
            role,
            progress,
        });
        while self.log.len() > LOG_KEPT {
            self.log.pop_front();
        }
        if self.log_scroll > 0 {
            self.log_scroll += 1;
        }
        self.dirty = true;
    }

    pub(crate) fn on_tick(&mut self, now: i64) {
        self.now = now;
        if let Some(f) = &mut self.flash {
            f.ticks = f.ticks.saturating_sub(1);
            if f.ticks == 0 {
                self.flash = None;
            }
            self.dirty = true;
        }
        // Ages and staleness move with the clock: a frame only when a text
        // on screen changed (a lab at rest, its readings fresh, draws none).
        let clock = self.clock_texts();
        if clock != self.clock_shown {
            self.clock_shown = clock;
            self.dirty = true;
        }
    }

    /// A digest of every clock-dependent text on screen: the ages and
    /// staleness of the table rows shown, and the detail pane's ages.
    fn clock_texts(&self) -> u64 {
        use std::hash::{Hash, Hasher};
        let mut h = std::collections::hash_map::DefaultHasher::new();
        let now = self.now;
        let shown = usize::from(self.hits.table_body.height).max(1);
        for &i in self.view.iter().skip(self.offset).take(shown) {
            let row = &self.rows[i];
            row.power_label(now).hash(&mut h);
            row.stale(now).hash(&mut h);
            row.last
                .as_ref()
                .map(|l| model::age(now - l.at))
                .hash(&mut h);
        }
        if self.detail_open
            && let Some(row) = self.selected_row()
        {
            row.reading_at.map(|at| model::age(now - at)).hash(&mut h);
            self.bmc_info
                .get(&row.name)
                .filter(|i| i.events.value.is_some())
                .map(|i| model::age(now - i.events.at))
                .hash(&mut h);
            (row.state_since > 0)
                .then(|| model::age(now - row.state_since))
                .hash(&mut h);
            // A stalled boot's bar says how long it has waited.
            if self.detail_view == DetailView::Boot
                && let Some(Some(Ok(Some(why)))) =
                    self.timelines.get(&row.name).map(|e| e.value.as_ref())
            {
                crate::tui::timeline::waiting_ms(why, now)
                    .map(crate::tui::timeline::seconds)
                    .hash(&mut h);
            }
        }
        h.finish()
    }

    /// Keeps the selection on screen and sizes consoles to their panes.
    fn prepare_draw(&mut self, areas: &crate::tui::views::Areas) {
        let body = areas.table_body.height as usize;
        if self.cursor < self.offset {
            self.offset = self.cursor;
        } else if body > 0 && self.cursor >= self.offset + body {
            self.offset = self.cursor + 1 - body;
        }
        self.offset = self.offset.min(self.view.len().saturating_sub(body.max(1)));
        if let (Some(pane), Some(area)) = (&self.pane, areas.console)
            && let Some(screen) = self.consoles.get_mut(pane.node())
        {
            let (rows, cols) = crate::tui::console_pane::inner_size(area);
            screen.resize(rows, cols);
        }
        if let Some(detail) = areas.detail {
            let inner = detail.height.saturating_sub(2);
            let rows = crate::tui::views::detail_rows(self, detail.width.saturating_sub(2));
            let max = rows.saturating_sub(usize::from(inner));
            self.detail_scroll = self
                .detail_scroll
                .min(u16::try_from(max).unwrap_or(u16::MAX));
        }
        if let Some(help) = areas.help {
            let rows = crate::tui::views::help_lines(self).len();
            let max = rows.saturating_sub(usize::from(help.height.saturating_sub(2)));
            self.help_scroll = self.help_scroll.min(u16::try_from(max).unwrap_or(u16::MAX));
        }
        // Wall tiles are not resized: a tile shows the newest rows of its
        // screen, and shrinking a screen would drop what it holds.
        self.hits = Hits {
            table_body: areas.table_body,
            detail: areas.detail.unwrap_or_default(),
            log: areas.log,
            help: areas.help.unwrap_or_default(),
            tiles: areas.tiles.clone(),
        };
    }
}

#[cfg(test)]
#[path = "app_tests.rs"]
mod tests;

#[cfg(test)]
#[path = "app_redraw_tests.rs"]
mod redraw_tests;
