//! The console pane and the console wall (opening, keys, leaving), and the
//! mouse.

use crossterm::event::{KeyEvent, MouseButton, MouseEvent, MouseEventKind};
use ratatui::layout::{Position, Rect};

use crate::tui::app::{App, Effect, Focus, Mode, WallState};
use crate::tui::console_pane::{self, ConsolePane, PaneOutcome};
use crate::tui::keymap::{Context, UiAction};

/// The most consoles the wall opens without marks.
const WALL_MAX: usize = 16;
/// Lines the mouse wheel moves.
const WHEEL: usize = 3;

impl App {
    pub(crate) fn open_console(&mut self, node: &str, from_wall: bool) -> Vec<Effect> {
        self.pane = Some(ConsolePane::new(node));
        self.mode = Mode::Console;
        self.dirty = true;
        if !from_wall {
            self.wall = None;
        }
        let mut effects = self.unwatch_unused();
        effects.extend(self.watch(node));
        effects
    }

    /// The wall: `nodes`, else the marked ones, else the first shown.
    pub(crate) fn open_wall(&mut self, nodes: Vec<String>) -> Vec<Effect> {
        let nodes = if !nodes.is_empty() {
            nodes
        } else {
            let marked = self.marked();
            if marked.is_empty() {
                let fit = self.wall_fit();
                self.view
                    .iter()
                    .take(fit)
                    .map(|&i| self.rows[i].name.clone())
                    .collect()
            } else {
                marked
            }
        };
        if nodes.is_empty() {
            self.flash("console wall: no nodes shown", true);
            return Vec::new();
        }
        let mut effects = Vec::new();
        for n in &nodes {
            effects.extend(self.watch(n));
        }
        self.wall = Some(WallState { nodes, selected: 0 });
        self.pane = None;
        self.mode = Mode::Wall;
        self.dirty = true;
        effects.extend(self.unwatch_unused());
        effects
    }

    /// How many tiles of a useful size (about 40×8) fit the screen.
    fn wall_fit(&self) -> usize {
        let (w, h) = self.size;
        let across = usize::from(w / 40).max(1);
        let down = usize::from(h.saturating_sub(3) / 8).max(1);
        (across * down).clamp(1, WALL_MAX)
    }

    pub(crate) fn key_console(&mut self, key: KeyEvent) -> Vec<Effect> {
        let Some(pane) = self.pane.as_mut() else {
            self.mode = Mode::Normal;
            return Vec::new();
        };
        let node = pane.node().to_string();
        let (rows, cols) = (self.size.1.max(2), self.size.0.max(2));
        let screen = self.consoles.entry(node.clone()).or_insert_with(|| {
            crate::console::ConsoleScreen::new(rows, cols, crate::tui::app::CONSOLE_SCROLLBACK)
        });
        match console_pane::handle_key(pane, screen, key) {
            PaneOutcome::Nothing => Vec::new(),
            PaneOutcome::Redraw => {
                self.dirty = true;
                Vec::new()
            }
            PaneOutcome::Send(bytes) => {
                if self.read_only {
                    self.flash("read-only: console input refused", true);
                    return Vec::new();
                }
                vec![Effect::ConsoleInput { node, bytes }]
            }
            PaneOutcome::Break => {
                if self.read_only {
                    self.flash("read-only: console break refused", true);
                    return Vec::new();
                }
                vec![Effect::ConsoleBreak { node }]
            }
            PaneOutcome::Leave => self.leave_console(),
        }
    }

    fn leave_console(&mut self) -> Vec<Effect> {
        self.pane = None;
        self.mode = if self.wall.is_some() {
            Mode::Wall
        } else {
            Mode::Normal
        };
        self.dirty = true;
        self.unwatch_unused()
    }

    pub(crate) fn key_wall(&mut self, key: KeyEvent) -> Vec<Effect> {
        let Some(action) = self.keymap.lookup(&[Context::Wall], &key) else {
            return Vec::new();
        };
        let Some(wall) = &mut self.wall else {
            self.mode = Mode::Normal;
            return Vec::new();
        };
        let count = wall.nodes.len().max(1);
        self.dirty = true;
        match action {
            UiAction::TileLeft => wall.selected = (wall.selected + count - 1) % count,
            UiAction::TileRight => wall.selected = (wall.selected + 1) % count,
            UiAction::TileUp | UiAction::TileDown => {
                let up = action == UiAction::TileUp;
                let first = page_first(wall.selected, self.hits.tiles.len());
                if let Some(to) = vertical_neighbour(&self.hits.tiles, wall.selected - first, up)
                    && first + to < wall.nodes.len()
                {
                    wall.selected = first + to;
                }
            }
            UiAction::TileOpen => {
                let node = wall.nodes.get(wall.selected).cloned();
                if let Some(node) = node {
                    return self.open_console(&node, true);
                }
            }
            UiAction::WallLeave => {
                self.wall = None;
                self.mode = Mode::Normal;
                return self.unwatch_unused();
            }
            _ => {}
        }
        Vec::new()
    }

    pub(crate) fn on_mouse(&mut self, mouse: MouseEvent) -> Vec<Effect> {
        let at = Position::new(mouse.column, mouse.row);
        let inside = |r: Rect| r.contains(at);
        match (self.mode, mouse.kind) {
            (Mode::Normal, MouseEventKind::Down(MouseButton::Left)) => {
                if inside(self.hits.table_body) {
                    let row = self.offset + usize::from(mouse.row - self.hits.table_body.y);
                    if row < self.view.len() {
                        self.cursor = row;
                        self.focus = Focus::Table;
                        self.dirty = true;
                    }
                } else if inside(self.hits.detail) {
                    self.focus = Focus::Detail;
                    self.dirty = true;
                }
            }
            (Mode::Normal, MouseEventKind::ScrollDown | MouseEventKind::ScrollUp) => {
                let down = mouse.kind == MouseEventKind::ScrollDown;
                if inside(self.hits.detail) {
                    self.scroll_detail(if down { WHEEL as i32 } else { -(WHEEL as i32) });
                } else if inside(self.hits.log) {
                    let max = self.log.len();
                    self.log_scroll = if down {
                        self.log_scroll.saturating_sub(WHEEL)
                    } else {
                        (self.log_scroll + WHEEL).min(max)
                    };
                    self.dirty = true;
                } else {
                    self.move_cursor(if down {
                        WHEEL as isize
                    } else {
                        -(WHEEL as isize)
                    });
                }
            }
            (Mode::Help, MouseEventKind::ScrollDown) => {
                self.help_scroll = self.help_scroll.saturating_add(WHEEL as u16);
                self.dirty = true;
            }
            (Mode::Help, MouseEventKind::ScrollUp) => {
                self.help_scroll = self.help_scroll.saturating_sub(WHEEL as u16);
                self.dirty = true;
            }
            (Mode::Wall, MouseEventKind::Down(MouseButton::Left)) => {
                let hit = self.hits.tiles.iter().position(|r| r.contains(at));
                if let (Some(i), Some(wall)) = (hit, &mut self.wall) {
                    // The wall shows the page holding the selected tile.
                    let i = page_first(wall.selected, self.hits.tiles.len()) + i;
                    self.dirty = true;
                    if wall.selected == i
                        && let Some(node) = wall.nodes.get(i).cloned()
                    {
                        return self.open_console(&node, true);
                    }
                    if i < wall.nodes.len() {
                        wall.selected = i;
                    }
                }
            }
            _ => {}
        }
        Vec::new()
    }
}

/// The first tile of the wall page holding `selected` (see wall::draw).
fn page_first(selected: usize, per_page: usize) -> usize {
    selected
        .checked_div(per_page)
        .map_or(0, |page| page * per_page)
}

/// The tile above (or below) `from`: the nearest row, then the nearest column.
fn vertical_neighbour(tiles: &[Rect], from: usize, up: bool) -> Option<usize> {
    let here = tiles.get(from)?;
    tiles
        .iter()
        .enumerate()
        .filter(|(_, r)| if up { r.y < here.y } else { r.y > here.y })
        .min_by_key(|(_, r)| (r.y.abs_diff(here.y), r.x.abs_diff(here.x)))
        .map(|(i, _)| i)
}

#[cfg(test)]
#[path = "app_panes_tests.rs"]
mod tests;
