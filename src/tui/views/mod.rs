//! Drawing: functions of `&App`. `layout` decides where everything goes
//! (the App keeps the result for mouse hits and console sizes), `render`
//! draws it. Every size works, down to a few cells: areas shrink to
//! nothing rather than underflow.

mod boot;
mod command;
mod confirm;
mod detail;
mod help;
mod hints;
mod log;
mod table;

use std::borrow::Cow;

use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::Style;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Clear};

use crate::text::display_safe;
use crate::tui::app::{App, Focus, Mode};
use crate::tui::theme::Role;

pub use detail::rows as detail_rows;
pub use help::help_lines;
pub use hints::hints as hint_pairs;

/// Where each part of the screen is this frame.
#[derive(Debug, Clone, Default)]
pub struct Areas {
    pub title: Rect,
    /// The table block (with its header row).
    pub table: Rect,
    /// The table's rows (below the header).
    pub table_body: Rect,
    pub detail: Option<Rect>,
    pub console: Option<Rect>,
    pub wall: Option<Rect>,
    pub tiles: Vec<Rect>,
    pub log: Rect,
    pub status: Rect,
    pub hints: Rect,
    pub help: Option<Rect>,
    pub confirm: Option<Rect>,
    /// The stage durations chart (a popup).
    pub stages: Option<Rect>,
}

/// Rows of the log pane at this terminal height (0: hidden).
/// On short screens a second pane (detail, console) gets the log's rows.
fn log_height(app: &App, height: u16) -> u16 {
    let second_pane = app.detail_open || app.mode == Mode::Console;
    match height {
        _ if !app.log_open => 0,
        0..16 => 0,
        16..40 if second_pane => 0,
        16..30 => 6,
        _ => 8,
    }
}

pub fn layout(app: &App, area: Rect) -> Areas {
    let [title, body, log, status, hints] = Layout::vertical([
        Constraint::Length(1),
        Constraint::Min(0),
        Constraint::Length(log_height(app, area.height)),
        Constraint::Length(1),
        Constraint::Length(1),
    ])
    .areas(area);
    let mut a = Areas {
        title,
        table: body,
        log,
        status,
        hints,
        ..Areas::default()
    };
    // Body and log together, for the wall and a zoomed console.
    let big = Rect::new(body.x, body.y, body.width, body.height + log.height);
    match app.mode {
        Mode::Wall => {
            a.table = Rect::default();
            a.log = Rect::default();
            a.wall = Some(big);
            let count = app.wall.as_ref().map_or(0, |w| w.nodes.len());
            a.tiles = crate::tui::wall::layout(big, count);
        }
        Mode::Console if app.pane.as_ref().is_some_and(|p| p.zoomed()) => {
            a.table = Rect::default();
            a.log = Rect::default();
            a.console = Some(Rect::new(
                area.x,
                area.y,
                area.width,
                area.height.saturating_sub(1),
            ));
        }
        Mode::Console => {
            let (table, pane) = split(body, 160, 40, 30);
            a.table = table;
            a.console = Some(pane);
        }
        _ if app.detail_open => {
            let (table, detail) = split(body, 160, 45, 35);
            a.table = table;
            a.detail = Some(detail);
        }
        _ => {}
    }
    a.table_body = table::body(a.table);
    if app.mode == Mode::Help {
        let r = centered(area, 86, area.height.saturating_sub(2));
        a.help = Some(r);
    }
    if app.mode == Mode::Stages {
        let rows = crate::tui::stage_chart::height(app);
        a.stages = Some(centered(area, 100, rows.min(area.height.saturating_sub(2))));
    }
    if app.mode == Mode::Confirm {
        let lines = app
            .confirm
            .as_ref()
            .map_or(0, |c| confirm::height(c, area.width));
        a.confirm = Some(centered(area, 64, lines));
    }
    a
}

/// Side by side when `area` is at least `wide` columns (the first part
/// `left_pct` %), else stacked (the first part `top_pct` %, at least 4 rows).
fn split(area: Rect, wide: u16, left_pct: u16, top_pct: u16) -> (Rect, Rect) {
    if area.width >= wide {
        let [a, b] =
            Layout::horizontal([Constraint::Percentage(left_pct), Constraint::Min(0)]).areas(area);
        (a, b)
    } else {
        let top = (area.height * top_pct / 100).max(4).min(area.height);
        let [a, b] = Layout::vertical([Constraint::Length(top), Constraint::Min(0)]).areas(area);
        (a, b)
    }
}

/// A `width` × `height` box in the middle of `area`, clamped to it.
pub fn centered(area: Rect, width: u16, height: u16) -> Rect {
    let w = width.min(area.width);
    let h = height.min(area.height);
    Rect::new(
        area.x + (area.width - w) / 2,
        area.y + (area.height - h) / 2,
        w,
        h,
    )
}

pub fn render(frame: &mut Frame, app: &App, areas: &Areas) {
    title(frame, app, areas.title);
    if areas.table.height > 0 {
        table::draw(frame, app, areas.table);
    }
    if let Some(r) = areas.detail {
        detail::draw(frame, app, r);
    }
    if let (Some(r), Some(pane)) = (areas.console, &app.pane) {
        // A BMC's or the network's words on why the console dropped.
        let status = app
            .console_status
            .get(pane.node())
            .map_or(Cow::Borrowed("not connected yet"), |s| display_safe(s));
        if let Some(screen) = app.consoles.get(pane.node()) {
            crate::tui::console_pane::draw(frame, r, pane, screen, &status, &app.theme);
        }
    }
    if let (Some(r), Some(wall)) = (areas.wall, &app.wall) {
        let tiles: Vec<crate::tui::wall::Tile<'_>> = wall
            .nodes
            .iter()
            .enumerate()
            .filter_map(|(i, n)| {
                Some(crate::tui::wall::Tile {
                    node: n.as_str(),
                    screen: app.consoles.get(n)?,
                    stage: app.row(n).and_then(|row| row.stage),
                    selected: i == wall.selected,
                })
            })
            .collect();
        crate::tui::wall::draw(frame, r, &tiles, &app.theme);
    }
    if areas.log.height > 0 {
        log::draw(frame, app, areas.log);
    }
    command::draw(frame, app, areas.status);
    hints::draw(frame, app, areas.hints);
    if let Some(r) = areas.help {
        help::draw(frame, app, r);
    }
    if let Some(r) = areas.stages {
        crate::tui::stage_chart::draw(frame, app, r);
    }
    if let (Some(r), Some(c)) = (areas.confirm, &app.confirm) {
        confirm::draw(frame, app, c, r);
    }
}

fn title(frame: &mut Frame, app: &App, area: Rect) {
    let t = &app.theme;
    let muted = t.style(Role::Muted);
    let mut spans = vec![
        Span::styled(" petitlab ", t.style(Role::Title)),
        Span::styled(app.lab_name.clone(), t.style(Role::Text)),
        Span::styled(
            format!("  {}/{} nodes", app.view.len(), app.rows.len()),
            muted,
        ),
    ];
    let marked = app.rows.iter().filter(|r| r.marked).count();
    if marked > 0 {
        spans.push(Span::styled(
            format!("  {marked} marked"),
            t.style(Role::Marked),
        ));
    }
    let arrow = if app.descending { "▼" } else { "▲" };
    spans.push(Span::styled(
        format!("  sort {} {arrow}", app.sort.name()),
        muted,
    ));
    if !app.filter_text.is_empty() {
        spans.push(Span::styled(
            format!("  filter {}", app.filter_text),
            t.style(Role::Warning),
        ));
    }
    if app.read_only {
        spans.push(Span::styled("  READ-ONLY", t.style(Role::Warning)));
    }
    frame.render_widget(Line::from(spans), area);
}

/// A bordered block, highlighted when it has the focus.
pub(crate) fn block<'a>(app: &App, title: impl Into<Line<'a>>, focused: bool) -> Block<'a> {
    let border = if focused {
        Role::BorderFocus
    } else {
        Role::Border
    };
    Block::default()
        .borders(Borders::ALL)
        .border_style(app.theme.style(border))
        .title(title)
        .title_style(app.theme.style(Role::Title))
}

pub(crate) fn detail_focused(app: &App) -> bool {
    app.detail_open && app.focus == Focus::Detail && app.mode == Mode::Normal
}

/// Clears `area` and fills it with the text style (popups).
pub(crate) fn popup_base(frame: &mut Frame, app: &App, area: Rect) {
    frame.render_widget(Clear, area);
    frame
        .buffer_mut()
        .set_style(area, app.theme.style(Role::Text));
}

/// `text` escaped (it may quote an agent, a BMC or a console: see
/// [`crate::text`]) and cut to `width` columns (by chars; petitlab's text is
/// ASCII-ish), with "…".
pub(crate) fn fit(text: &str, width: usize) -> String {
    let text = display_safe(text);
    let count = text.chars().count();
    if count <= width {
        return text.to_string();
    }
    if width == 0 {
        return String::new();
    }
    let mut s: String = text.chars().take(width - 1).collect();
    s.push('…');
    s
}

/// "12:03:04" of a Unix ms time ("--:--:--" before the first tick).
pub(crate) fn clock(ms: i64) -> String {
    if ms <= 0 {
        return "--:--:--".into();
    }
    crate::engine::store::format_utc(ms)
        .get(11..19)
        .unwrap_or("--:--:--")
        .to_string()
}

/// `line` with each span's text escaped, for panes that show text from
/// outside (reasons, BMC errors, console lines, the audit log).
pub(crate) fn safe_line(mut line: Line<'static>) -> Line<'static> {
    for span in &mut line.spans {
        if let Cow::Owned(escaped) = display_safe(&span.content) {
            span.content = Cow::Owned(escaped);
        }
    }
    line
}

pub(crate) fn style(app: &App, role: Role) -> Style {
    app.theme.style(role)
}

#[cfg(test)]
#[path = "../views_tests.rs"]
mod tests;

#[cfg(test)]
#[path = "../views_text_tests.rs"]
mod text_tests;

#[cfg(test)]
#[path = "../views_boot_tests.rs"]
mod boot_tests;
