//! One node's console in a pane: the node's screen drawn by tui-term, a view
//! mode (scrollback, search, zoom, break) and a typing mode that forwards
//! keys to the node as xterm would send them.
//!
//! The pane holds no terminal state of its own: the scroll offset lives in
//! the node's [`ConsoleScreen`], so the pane can be dropped and reopened.

use crossterm::event::{KeyCode, KeyEvent, KeyEventKind, KeyModifiers};
use ratatui::Frame;
use ratatui::layout::Rect;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Paragraph};
use tui_term::vt100;
use tui_term::widget::{Cursor, PseudoTerminal};

use crate::console::ConsoleScreen;
use crate::tui::console_keys;
use crate::tui::theme::{Role, Theme};

/// One node's console pane: which node, how it is shown, and the search.
#[derive(Debug, Clone)]
pub struct ConsolePane {
    node: String,
    zoomed: bool,
    typing: bool,
    /// The search line while it is being typed.
    prompt: Option<String>,
    /// The last search run.
    search: Option<Search>,
    /// A one-line note shown instead of the hint until the next key.
    note: Option<(String, Role)>,
}

#[derive(Debug, Clone)]
struct Search {
    query: String,
    /// The match shown, if any was found.
    current: Option<Hit>,
    /// Absolute index (0 = oldest line kept) of the top row in view, as of
    /// the last move; vt100 keeps a scrolled-back view still as lines
    /// arrive, so this stays right while the view is not live.
    view_top: usize,
}

/// A match: the `nth` occurrence of the query on absolute line `line`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
struct Hit {
    line: usize,
    nth: usize,
}

impl ConsolePane {
    pub fn new(node: &str) -> ConsolePane {
        ConsolePane {
            node: node.to_string(),
            zoomed: false,
            typing: false,
            prompt: None,
            search: None,
            note: None,
        }
    }

    pub fn node(&self) -> &str {
        &self.node
    }

    /// Shown full screen (the caller picks the area).
    pub fn zoomed(&self) -> bool {
        self.zoomed
    }

    /// Keys go to the node.
    pub fn typing(&self) -> bool {
        self.typing
    }

    /// The search line being typed, if the prompt is open.
    pub fn prompt(&self) -> Option<&str> {
        self.prompt.as_deref()
    }

    /// The query of the last search run.
    pub fn query(&self) -> Option<&str> {
        self.search.as_ref().map(|s| s.query.as_str())
    }
}

/// What the caller should do after a key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PaneOutcome {
    /// The key changed nothing.
    Nothing,
    /// The pane changed: draw it again.
    Redraw,
    /// Write these bytes to the node's console.
    Send(Vec<u8>),
    /// Send a serial break (SOL break; Linux takes it as magic SysRq).
    Break,
    /// Close the pane.
    Leave,
}

/// View mode: `i` or Enter → typing; `z` toggle zoom; `/` opens the search
/// line (Enter runs it, Esc cancels), which scrolls to the newest match at or
/// above the bottom of the view, in screen and scrollback, and highlights it;
/// `n`/`N` older/newer match; PgUp/PgDn/Up/Down (k/j) scroll, Home/g oldest,
/// End/G live; `b` break; `q`/Esc leave.
///
/// Typing mode: every key is encoded as xterm would (see
/// [`console_keys::encode`]) and returned as `Send`, except Ctrl-] which stops
/// typing. Typing snaps the view back to live.
pub fn handle_key(
    pane: &mut ConsolePane,
    screen: &mut ConsoleScreen,
    key: KeyEvent,
) -> PaneOutcome {
    if key.kind == KeyEventKind::Release {
        return PaneOutcome::Nothing;
    }
    let had_note = pane.note.take().is_some();
    let outcome = if pane.typing {
        typing_key(pane, screen, key)
    } else if pane.prompt.is_some() {
        prompt_key(pane, screen, key)
    } else {
        view_key(pane, screen, key)
    };
    if had_note && outcome == PaneOutcome::Nothing {
        PaneOutcome::Redraw
    } else {
        outcome
    }
}

fn is_ctrl_close_bracket(key: &KeyEvent) -> bool {
    // Legacy terminals report Ctrl-] (0x1d) as Ctrl-5; crossterm follows.
    key.modifiers.contains(KeyModifiers::CONTROL)
        && matches!(key.code, KeyCode::Char(']') | KeyCode::Char('5'))
}

fn typing_key(pane: &mut ConsolePane, screen: &mut ConsoleScreen, key: KeyEvent) -> PaneOutcome {
    if is_ctrl_close_bracket(&key) {
        pane.typing = false;
        return PaneOutcome::Redraw;
    }
    match console_keys::encode(key, screen.application_cursor()) {
        Some(bytes) => {
            screen.set_scrollback(0);
            PaneOutcome::Send(bytes)
        }
        None => PaneOutcome::Nothing,
    }
}

fn prompt_key(pane: &mut ConsolePane, screen: &mut ConsoleScreen, key: KeyEvent) -> PaneOutcome {
    let ctrl = key.modifiers.contains(KeyModifiers::CONTROL);
    let Some(text) = pane.prompt.as_mut() else {
        return PaneOutcome::Nothing;
    };
    match key.code {
        KeyCode::Esc => pane.prompt = None,
        KeyCode::Enter => {
            let typed = std::mem::take(text);
            pane.prompt = None;
            // An empty search repeats the last one, as in less and vi.
            let query = match (typed.is_empty(), &pane.search) {
                (false, _) => typed,
                (true, Some(s)) => s.query.clone(),
                (true, None) => return PaneOutcome::Redraw,
            };
            run_search(pane, screen, query);
        }
        KeyCode::Backspace => {
            text.pop();
        }
        KeyCode::Char('u') if ctrl => text.clear(),
        KeyCode::Char(c) if !ctrl && !c.is_control() => text.push(c),
        _ => return PaneOutcome::Nothing,
    }
    PaneOutcome::Redraw
}

fn view_key(pane: &mut ConsolePane, screen: &mut ConsoleScreen, key: KeyEvent) -> PaneOutcome {
    if key
        .modifiers
        .intersects(KeyModifiers::CONTROL | KeyModifiers::ALT)
    {
        return PaneOutcome::Nothing;
    }
    let page = usize::from(screen.size().0.saturating_sub(1).max(1));
    let offset = screen.scrollback();
    match key.code {
        KeyCode::Char('i') | KeyCode::Enter => {
            pane.typing = true;
            screen.set_scrollback(0);
            PaneOutcome::Redraw
        }
        KeyCode::Char('z') => {
            pane.zoomed = !pane.zoomed;
            PaneOutcome::Redraw
        }
        KeyCode::Char('/') => {
            pane.prompt = Some(String::new());
            PaneOutcome::Redraw
        }
        KeyCode::Char('n') => step(pane, screen, Direction::Older),
        KeyCode::Char('N') => step(pane, screen, Direction::Newer),
        KeyCode::PageUp => scroll_to(pane, screen, offset.saturating_add(page)),
        KeyCode::PageDown => scroll_to(pane, screen, offset.saturating_sub(page)),
        KeyCode::Up | KeyCode::Char('k') => scroll_to(pane, screen, offset.saturating_add(1)),
        KeyCode::Down | KeyCode::Char('j') => scroll_to(pane, screen, offset.saturating_sub(1)),
        KeyCode::Home | KeyCode::Char('g') => scroll_to(pane, screen, usize::MAX),
        KeyCode::End | KeyCode::Char('G') => scroll_to(pane, screen, 0),
        KeyCode::Char('b') => PaneOutcome::Break,
        KeyCode::Char('q') | KeyCode::Esc => PaneOutcome::Leave,
        _ => PaneOutcome::Nothing,
    }
}

fn scroll_to(pane: &mut ConsolePane, screen: &mut ConsoleScreen, offset: usize) -> PaneOutcome {
    let before = screen.scrollback();
    let after = screen.set_scrollback(offset);
    if let Some(search) = pane.search.as_mut() {
        search.view_top = scrollback_len(screen) - after;
    }
    if after == before {
        PaneOutcome::Nothing
    } else {
        PaneOutcome::Redraw
    }
}

/// How many lines the scrollback holds (probes and restores the offset).
fn scrollback_len(screen: &mut ConsoleScreen) -> usize {
    let offset = screen.scrollback();
    let len = screen.set_scrollback(usize::MAX);
    screen.set_scrollback(offset);
    len
}

/// Every line, oldest scrollback line first, then the screen's rows, as
/// `vt100::Screen::rows` gives them; and the scrollback's length.
///
/// vt100 shows scrollback only through the view offset, so this steps the
/// offset a screenful at a time (at most len/rows + 2 steps) and restores it.
fn all_lines(screen: &mut ConsoleScreen) -> (Vec<String>, usize) {
    let saved = screen.scrollback();
    let cols = screen.size().1;
    let len = screen.set_scrollback(usize::MAX);
    let mut lines = Vec::with_capacity(len + usize::from(screen.size().0));
    loop {
        let next = lines.len();
        let offset = screen.set_scrollback(len - next.min(len));
        let top = len - offset;
        for (i, row) in screen.screen().rows(0, cols).enumerate() {
            if top + i == lines.len() {
                lines.push(row);
            }
        }
        if offset == 0 || lines.len() == next {
            break;
        }
    }
    screen.set_scrollback(saved);
    (lines, len)
}

/// Byte ranges of the non-overlapping occurrences of `query` in `text`;
/// case-insensitive (ASCII) unless the query has an uppercase letter.
fn find_all(text: &str, query: &str) -> Vec<(usize, usize)> {
    if query.is_empty() {
        return Vec::new();
    }
    let fold = !query.chars().any(char::is_uppercase);
    let (hay, needle) = if fold {
        (text.to_ascii_lowercase(), query.to_ascii_lowercase())
    } else {
        (text.to_string(), query.to_string())
    };
    hay.match_indices(&needle)
        .map(|(at, m)| (at, at + m.len()))
        .collect()
}

fn hits(lines: &[String], query: &str) -> Vec<Hit> {
    lines
        .iter()
        .enumerate()
        .flat_map(|(line, text)| (0..find_all(text, query).len()).map(move |nth| Hit { line, nth }))
        .collect()
}

fn run_search(pane: &mut ConsolePane, screen: &mut ConsoleScreen, query: String) {
    let (lines, len) = all_lines(screen);
    let found = hits(&lines, &query);
    let rows = usize::from(screen.size().0);
    let view_top = len - screen.scrollback();
    let bottom = view_top + rows - 1;
    // The newest match at or above the bottom of the view; else the nearest
    // below it.
    let pick = found
        .iter()
        .rev()
        .find(|h| h.line <= bottom)
        .or_else(|| found.first())
        .copied();
    pane.search = Some(Search {
        query,
        current: None,
        view_top,
    });
    match pick {
        Some(hit) => show(pane, screen, &found, hit, len),
        None => pane.note = Some(("not found".to_string(), Role::Warning)),
    }
}

#[derive(Clone, Copy)]
enum Direction {
    Older,
    Newer,
}

fn step(pane: &mut ConsolePane, screen: &mut ConsoleScreen, dir: Direction) -> PaneOutcome {
    let Some(search) = &pane.search else {
        return PaneOutcome::Nothing;
    };
    let Some(current) = search.current else {
        let query = search.query.clone();
        run_search(pane, screen, query);
        return PaneOutcome::Redraw;
    };
    let (lines, len) = all_lines(screen);
    let found = hits(&lines, &search.query);
    let next = match dir {
        Direction::Older => found.iter().rev().find(|h| **h < current),
        Direction::Newer => found.iter().find(|h| **h > current),
    };
    match next {
        Some(&hit) => show(pane, screen, &found, hit, len),
        None => {
            let which = match dir {
                Direction::Older => "no older match",
                Direction::Newer => "no newer match",
            };
            pane.note = Some((which.to_string(), Role::Warning));
        }
    }
    PaneOutcome::Redraw
}

/// Scroll so `hit` is in view (centred if it was not), and make it current.
fn show(pane: &mut ConsolePane, screen: &mut ConsoleScreen, found: &[Hit], hit: Hit, len: usize) {
    let rows = usize::from(screen.size().0);
    let top = len - screen.scrollback();
    let offset = if (top..top + rows).contains(&hit.line) {
        screen.scrollback()
    } else if hit.line >= len {
        0
    } else {
        (len - hit.line + rows / 2).min(len)
    };
    let offset = screen.set_scrollback(offset);
    let index = found.iter().position(|h| *h == hit).map_or(0, |i| i + 1);
    pane.note = Some((format!("match {index}/{}", found.len()), Role::Text));
    if let Some(search) = pane.search.as_mut() {
        search.current = Some(hit);
        search.view_top = len - offset;
    }
}

/// Rows and columns of the terminal inside a pane drawn in `area`: the
/// border takes two of each, the hint line one row.
pub fn inner_size(area: Rect) -> (u16, u16) {
    (area.height.saturating_sub(3), area.width.saturating_sub(2))
}

/// Draw the pane: a bordered block titled with the node, `status` and the
/// mode, the screen through tui-term, and a hint (or the search line, or a
/// note) on the bottom row. The caller resizes `screen` to
/// [`inner_size`]`(area)` first.
pub fn draw(
    frame: &mut Frame,
    area: Rect,
    pane: &ConsolePane,
    screen: &ConsoleScreen,
    status: &str,
    theme: &Theme,
) {
    let border = if pane.typing {
        Role::BorderFocus
    } else {
        Role::Border
    };
    let block = Block::bordered()
        .border_style(theme.style(border))
        .title(title(pane, screen, status, theme));
    let inner = block.inner(area);
    frame.render_widget(block, area);
    let (rows, _) = inner_size(area);
    let term = Rect {
        height: rows,
        ..inner
    };
    let hint = Rect {
        y: inner.y + rows,
        height: inner.height - rows,
        ..inner
    };
    let cursor = Cursor::default().visibility(pane.typing && screen.scrollback() == 0);
    frame.render_widget(PseudoTerminal::new(screen.screen()).cursor(cursor), term);
    if let Some(search) = &pane.search {
        highlight(frame, term, screen.screen(), search, theme);
    }
    frame.render_widget(
        Paragraph::new(hint_line(pane, screen, theme, hint.width)),
        hint,
    );
}

fn title<'a>(
    pane: &'a ConsolePane,
    screen: &ConsoleScreen,
    status: &'a str,
    theme: &Theme,
) -> Line<'a> {
    // Mode tags before the status: a long status is what gets cut.
    let mut spans = vec![Span::styled(
        format!(" {} ", pane.node),
        theme.style(Role::Title),
    )];
    let mut tag = |text: String, role: Role| spans.push(Span::styled(text, theme.style(role)));
    if pane.typing {
        tag("[typing] ".into(), Role::Key);
    }
    if pane.prompt.is_some() {
        tag("[search] ".into(), Role::Key);
    }
    let offset = screen.scrollback();
    if offset > 0 {
        tag(format!("[scrollback {offset}] "), Role::Warning);
    }
    spans.push(Span::styled(
        format!("· {status} "),
        theme.style(Role::Text),
    ));
    Line::from(spans)
}

/// The bottom row: what the keys do in this mode (the least needed dropped
/// first when `width` is short), the search line, or a note.
fn hint_line<'a>(
    pane: &'a ConsolePane,
    screen: &ConsoleScreen,
    theme: &Theme,
    width: u16,
) -> Line<'a> {
    let key = |k: &'a str| Span::styled(k, theme.style(Role::Key));
    let text = |t: &'a str| Span::styled(t, theme.style(Role::Hint));
    if pane.typing {
        return Line::from(vec![
            text("typing: "),
            key("Ctrl-]"),
            text(" stops · keys go to the node"),
        ]);
    }
    if let Some(prompt) = &pane.prompt {
        return Line::from(vec![
            Span::styled(format!("/{prompt}"), theme.style(Role::Text)),
            Span::styled("█", theme.style(Role::Key)),
            text("  Enter find · Esc cancel"),
        ]);
    }
    // (key, what, priority): higher stays longer.
    let mut items: Vec<(&str, &str, u8)> = vec![("i", "type", 8)];
    items.push(("z", if pane.zoomed { "unzoom" } else { "zoom" }, 3));
    items.push(("/", "search", 7));
    if pane.search.is_some() {
        items.push(("n/N", "older/newer", 6));
    }
    items.push(("PgUp/PgDn", "scroll", 5));
    if screen.scrollback() > 0 {
        items.push(("End", "live", 7));
    }
    items.extend([("b", "break", 4), ("q", "leave", 9)]);
    loop {
        let mut spans = Vec::new();
        if let Some((note, role)) = &pane.note {
            spans.push(Span::styled(note.as_str(), theme.style(*role)));
            spans.push(text("  "));
        }
        for (i, (k, what, _)) in items.iter().enumerate() {
            if i > 0 {
                spans.push(text(" · "));
            }
            spans.push(key(k));
            spans.push(Span::styled(format!(" {what}"), theme.style(Role::Hint)));
        }
        let line = Line::from(spans);
        let least = items
            .iter()
            .enumerate()
            .min_by_key(|(_, item)| item.2)
            .map(|(i, _)| i);
        match least {
            Some(i) if line.width() > usize::from(width) && items.len() > 1 => {
                items.remove(i);
            }
            _ => return line,
        }
    }
}

/// Mark every visible occurrence of the query (Role::Marked), the current
/// match brighter (Role::Flash).
fn highlight(
    frame: &mut Frame,
    term: Rect,
    screen: &vt100::Screen,
    search: &Search,
    theme: &Theme,
) {
    let cols = screen.size().1;
    let rows: Vec<String> = screen
        .rows(0, cols)
        .take(usize::from(term.height))
        .collect();
    let buf = frame.buffer_mut();
    for (r, text) in rows.iter().enumerate() {
        if find_all(text, &search.query).is_empty() {
            continue;
        }
        let Ok(row) = u16::try_from(r) else { break };
        let (built, cells) = row_cells(screen, row, cols);
        for (nth, (start, end)) in find_all(&built, &search.query).into_iter().enumerate() {
            let here = Hit {
                line: search.view_top + r,
                nth,
            };
            let role = if search.current == Some(here) {
                Role::Flash
            } else {
                Role::Marked
            };
            let style = theme.style(role);
            for &(at, col, width) in &cells {
                if at >= start && at < end {
                    for c in col..(col + width).min(term.width) {
                        let at = (term.x.saturating_add(c), term.y.saturating_add(row));
                        if let Some(cell) = buf.cell_mut(at) {
                            cell.set_style(style);
                        }
                    }
                }
            }
        }
    }
}

/// One visible row's text as `vt100::Screen::rows` builds it, with each
/// cell's (byte offset, column, width): wide characters take two columns.
fn row_cells(screen: &vt100::Screen, row: u16, cols: u16) -> (String, Vec<(usize, u16, u16)>) {
    let mut text = String::new();
    let mut cells = Vec::new();
    let mut end = 0; // text length up to the last cell with contents
    let mut kept = 0;
    for col in 0..cols {
        let Some(cell) = screen.cell(row, col) else {
            break;
        };
        if cell.is_wide_continuation() {
            continue;
        }
        cells.push((text.len(), col, if cell.is_wide() { 2 } else { 1 }));
        if cell.has_contents() {
            text.push_str(cell.contents());
            end = text.len();
            kept = cells.len();
        } else {
            text.push(' ');
        }
    }
    text.truncate(end);
    cells.truncate(kept);
    (text, cells)
}

#[cfg(test)]
#[path = "console_pane_tests.rs"]
mod tests;
