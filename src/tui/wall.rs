//! The console wall: several nodes' consoles tiled at once, to watch a mass
//! boot. Each tile shows the newest rows of its node's screen under a
//! "node · stage" title.

use ratatui::Frame;
use ratatui::layout::Rect;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Paragraph};
use tui_term::vt100;
use tui_term::widget::{Cursor, PseudoTerminal};

use crate::console::{ConsoleScreen, Stage};
use crate::tui::theme::{Role, Theme};

/// One node's console on the wall.
pub struct Tile<'a> {
    pub node: &'a str,
    pub screen: &'a ConsoleScreen,
    pub stage: Option<Stage>,
    pub selected: bool,
}

/// Smallest terminal inside a tile, and the tile with its border.
const MIN_INNER: (u16, u16) = (20, 4);
const MIN_W: u16 = MIN_INNER.0 + 2;
const MIN_H: u16 = MIN_INNER.1 + 2;

/// Where the tiles go: a grid of roughly square cells (a cell is about
/// twice as tall as wide, so a w×h tile looks square when w ≈ 2h), each at
/// least 20×4 inside its border. If `count` tiles do not fit, the bottom row
/// is left for a "+N more" note and the grid holds as many as fit: fewer
/// rects than `count` means overflow. Row-major; a short last row is
/// stretched to the full width.
pub fn layout(area: Rect, count: usize) -> Vec<Rect> {
    if count == 0 {
        return Vec::new();
    }
    let fits = |w: u16, h: u16| w >= MIN_W && h >= MIN_H;
    let mut best: Option<(f64, usize, usize)> = None;
    for cols in 1..=count.min(usize::from(area.width / MIN_W)) {
        let rows = count.div_ceil(cols);
        let (Ok(c), Ok(r)) = (u16::try_from(cols), u16::try_from(rows)) else {
            continue;
        };
        let (w, h) = (area.width / c, area.height / r);
        if !fits(w, h) {
            continue;
        }
        let aspect = (f64::from(w) / (2.0 * f64::from(h))).ln().abs();
        let empty = (rows * cols - count) as f64 / (rows * cols) as f64;
        let score = aspect + 2.0 * empty;
        if best.is_none_or(|(s, _, _)| score < s) {
            best = Some((score, cols, rows));
        }
    }
    if let Some((_, cols, rows)) = best {
        return grid(area, count, cols, rows);
    }
    // Overflow: the largest grid of minimum-size tiles above the note row.
    let above = Rect {
        height: area.height.saturating_sub(1),
        ..area
    };
    let cols = usize::from(above.width / MIN_W);
    let rows = usize::from(above.height / MIN_H);
    grid(above, (cols * rows).min(count), cols, rows)
}

/// `count` tiles in a `cols`×`rows` grid over `area`, cell edges spread
/// evenly; the last row's tiles share the whole width.
fn grid(area: Rect, count: usize, cols: usize, rows: usize) -> Vec<Rect> {
    let span = |start: u16, len: u16, parts: usize, i: usize| -> (u16, u16) {
        let len = usize::from(len);
        let a = len * i / parts;
        let b = len * (i + 1) / parts;
        // a, b <= len, which came from a u16.
        let a = u16::try_from(a).unwrap_or(u16::MAX);
        let b = u16::try_from(b).unwrap_or(u16::MAX);
        (start.saturating_add(a), b - a.min(b))
    };
    let mut rects = Vec::with_capacity(count);
    for i in 0..count {
        let (row, col) = (i / cols, i % cols);
        let in_row = if row + 1 == rows {
            count - row * cols
        } else {
            cols
        };
        let (x, width) = span(area.x, area.width, in_row, col);
        let (y, height) = span(area.y, area.height, rows, row);
        rects.push(Rect::new(x, y, width, height));
    }
    rects
}

/// Draw the wall. When not every tile fits, the page holding the selected
/// tile is shown, with a "+N more" note on the bottom row.
pub fn draw(frame: &mut Frame, area: Rect, tiles: &[Tile<'_>], theme: &Theme) {
    let rects = layout(area, tiles.len());
    let per_page = rects.len();
    let selected = tiles.iter().position(|t| t.selected).unwrap_or(0);
    let first = selected
        .checked_div(per_page)
        .map_or(0, |page| page * per_page);
    let shown = &tiles[first..tiles.len().min(first + per_page)];
    for (tile, rect) in shown.iter().zip(&rects) {
        draw_tile(frame, *rect, tile, theme);
    }
    if per_page < tiles.len() && area.height > 0 {
        let more = tiles.len() - shown.len();
        let note = if shown.is_empty() {
            format!("+{more} more: too small to show a console")
        } else {
            format!(
                "+{more} more · showing {}–{} of {}",
                first + 1,
                first + shown.len(),
                tiles.len()
            )
        };
        let row = Rect {
            y: area.bottom() - 1,
            height: 1,
            ..area
        };
        frame.render_widget(
            Paragraph::new(Span::styled(note, theme.style(Role::Hint))),
            row,
        );
    }
}

fn stage_role(stage: Stage) -> Role {
    match stage {
        Stage::DownloadFailed | Stage::BootFailed | Stage::Panic => Role::StateFailed,
        Stage::LoginPrompt => Role::StateOk,
        _ => Role::StateBusy,
    }
}

fn draw_tile(frame: &mut Frame, rect: Rect, tile: &Tile<'_>, theme: &Theme) {
    let border = if tile.selected {
        Role::BorderFocus
    } else {
        Role::Border
    };
    let mut title = vec![Span::styled(
        format!(" {} ", tile.node),
        theme.style(Role::Title),
    )];
    if let Some(stage) = tile.stage {
        title.push(Span::styled("· ", theme.style(Role::Muted)));
        title.push(Span::styled(
            format!("{stage} "),
            theme.style(stage_role(stage)),
        ));
    }
    let block = Block::bordered()
        .border_style(theme.style(border))
        .title(Line::from(title));
    let inner = block.inner(rect);
    frame.render_widget(block, rect);
    let screen = tile.screen.screen();
    let view = Newest {
        screen,
        skip: newest_rows_skip(screen, inner.height),
    };
    let cursor = Cursor::default().visibility(tile.selected);
    frame.render_widget(PseudoTerminal::new(&view).cursor(cursor), inner);
}

/// How many top rows to skip so that `height` rows end at the newest
/// output: the cursor's row or the last row with text, whichever is lower.
fn newest_rows_skip(screen: &vt100::Screen, height: u16) -> u16 {
    let (rows, cols) = screen.size();
    let last_text = screen
        .rows(0, cols)
        .enumerate()
        .filter(|(_, text)| !text.trim().is_empty())
        .map(|(i, _)| i)
        .last()
        .and_then(|i| u16::try_from(i).ok())
        .unwrap_or(0);
    let cursor = if screen.scrollback() == 0 {
        screen.cursor_position().0
    } else {
        0
    };
    let newest = last_text.max(cursor).min(rows.saturating_sub(1));
    (newest + 1).saturating_sub(height)
}

/// A screen seen from row `skip` down, for tui-term.
struct Newest<'a> {
    screen: &'a vt100::Screen,
    skip: u16,
}

impl tui_term::widget::Screen for Newest<'_> {
    type C = vt100::Cell;

    fn cell(&self, row: u16, col: u16) -> Option<&vt100::Cell> {
        self.screen.cell(row.checked_add(self.skip)?, col)
    }

    fn hide_cursor(&self) -> bool {
        self.screen.hide_cursor()
    }

    fn cursor_position(&self) -> (u16, u16) {
        let (row, col) = tui_term::widget::Screen::cursor_position(self.screen);
        // Above the shown rows: off-screen, which tui-term does not draw.
        (row.checked_sub(self.skip).unwrap_or(u16::MAX), col)
    }
}

#[cfg(test)]
#[path = "wall_tests.rs"]
mod tests;
