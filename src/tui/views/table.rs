//! The node table. Only the rows on screen are built, so a thousand nodes
//! cost what thirty do. Columns that do not fit are dropped, least useful
//! first; colour carries meaning through theme roles.

use ratatui::Frame;
use ratatui::layout::{Constraint, Rect};
use ratatui::style::Style;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Cell, Paragraph, Row, Table};

use super::{block, fit, style};
use crate::tui::app::{App, Focus, Mode};
use crate::tui::model::{Column, NodeRow, age};
use crate::tui::theme::Role;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Col {
    Mark,
    Name,
    Power,
    Boot,
    State,
    Console,
    Holder,
    Last,
    Watts,
}

impl Col {
    fn title(self) -> &'static str {
        match self {
            Col::Mark => "",
            Col::Name => "NAME",
            Col::Power => "POWER",
            Col::Boot => "BOOT",
            Col::State => "STATE",
            Col::Console => "CONSOLE",
            Col::Holder => "HELD BY",
            Col::Last => "LAST EVENT",
            Col::Watts => "WATTS",
        }
    }

    /// Which sort column it is.
    fn sort(self) -> Option<Column> {
        Some(match self {
            Col::Name => Column::Name,
            Col::Power => Column::Power,
            Col::Boot => Column::Boot,
            Col::State => Column::State,
            Col::Console => Column::Console,
            Col::Holder => Column::Holder,
            Col::Last => Column::Last,
            Col::Mark | Col::Watts => return None,
        })
    }

    /// Higher stays longer when the table is narrow.
    fn keep(self) -> u8 {
        match self {
            Col::Name => 9,
            Col::State => 8,
            Col::Power => 7,
            Col::Mark => 6,
            Col::Console => 5,
            Col::Boot => 4,
            Col::Last => 3,
            Col::Watts => 2,
            Col::Holder => 1,
        }
    }
}

const LAST_MIN: u16 = 12;
const SPACING: u16 = 1;

/// The rows area inside the table's border, below its header.
pub fn body(table: Rect) -> Rect {
    let inner = Rect::new(
        table.x.saturating_add(1),
        table.y.saturating_add(2),
        table.width.saturating_sub(2),
        table.height.saturating_sub(3),
    );
    if table.width < 3 || table.height < 4 {
        Rect::default()
    } else {
        inner
    }
}

/// The columns that fit `width`, with their widths.
fn columns(app: &App, width: u16) -> Vec<(Col, u16)> {
    let name_w = app
        .view
        .iter()
        .map(|&i| app.rows[i].name.chars().count())
        .max()
        .unwrap_or(4)
        .clamp(4, 24) as u16;
    let any_watts = app.rows.iter().any(|r| !r.watts.is_empty());
    let any_holder = app.rows.iter().any(|r| r.holder.is_some());
    let mut cols: Vec<(Col, u16)> = vec![
        (Col::Mark, 1),
        (Col::Name, name_w),
        (Col::Power, 8),
        (Col::Boot, 5),
        (Col::State, 26),
        (Col::Console, 15),
    ];
    if any_holder {
        cols.push((Col::Holder, 14));
    }
    cols.push((Col::Last, LAST_MIN));
    if any_watts {
        cols.push((Col::Watts, 12));
    }
    let total = |cols: &[(Col, u16)]| -> u16 {
        let widths: u16 = cols.iter().map(|c| c.1).sum();
        widths + SPACING * cols.len().saturating_sub(1) as u16
    };
    while total(&cols) > width && cols.len() > 1 {
        let Some(drop) = cols
            .iter()
            .enumerate()
            .min_by_key(|(_, c)| c.0.keep())
            .map(|(i, _)| i)
        else {
            break;
        };
        cols.remove(drop);
    }
    let spare = width.saturating_sub(total(&cols));
    if let Some(last) = cols.iter_mut().find(|c| c.0 == Col::Last) {
        last.1 += spare;
    } else if let Some(state) = cols.iter_mut().find(|c| c.0 == Col::State) {
        state.1 += spare;
    }
    cols
}

pub fn draw(frame: &mut Frame, app: &App, area: Rect) {
    let focused = app.mode == Mode::Normal && (!app.detail_open || app.focus == Focus::Table);
    let title = format!(" Nodes {}/{} ", app.view.len(), app.rows.len());
    let outer = block(app, title, focused);
    let inner = outer.inner(area);
    frame.render_widget(outer, area);
    if inner.height == 0 || inner.width == 0 {
        return;
    }
    if app.view.is_empty() {
        let text = if app.rows.is_empty() {
            "no nodes in the lab: add [[node]] tables to the lab file".to_string()
        } else {
            format!(
                "no node matches the filter {:?} (Esc clears it)",
                app.filter_text
            )
        };
        frame.render_widget(Paragraph::new(text).style(style(app, Role::Muted)), inner);
        return;
    }
    let cols = columns(app, inner.width);
    let header = Row::new(cols.iter().map(|(c, _)| {
        let mut t = c.title().to_string();
        if c.sort() == Some(app.sort) {
            t.push_str(if app.descending { "▼" } else { "▲" });
        }
        Cell::from(t)
    }))
    .style(style(app, Role::Title));
    let body_h = usize::from(inner.height.saturating_sub(1));
    let end = (app.offset + body_h).min(app.view.len());
    let start = app.offset.min(end);
    let rows = app.view[start..end].iter().enumerate().map(|(k, &i)| {
        let row = &app.rows[i];
        let cells = cols.iter().map(|&(c, w)| cell(app, row, c, w));
        let mut r = Row::new(cells.collect::<Vec<_>>());
        if start + k == app.cursor {
            r = r.style(style(app, Role::Selected));
        }
        r
    });
    let widths: Vec<Constraint> = cols.iter().map(|c| Constraint::Length(c.1)).collect();
    let table = Table::new(rows, widths)
        .header(header)
        .column_spacing(SPACING);
    frame.render_widget(table, inner);
}

fn cell<'a>(app: &App, row: &NodeRow, col: Col, width: u16) -> Cell<'a> {
    let w = usize::from(width);
    let now = app.now;
    let stale = row.stale(now);
    let s = |role: Role| style(app, role);
    match col {
        Col::Mark => {
            if row.marked {
                Cell::from(Span::styled("●", s(Role::Marked)))
            } else {
                Cell::from(" ")
            }
        }
        Col::Name => {
            let role = if row.marked { Role::Marked } else { Role::Text };
            Cell::from(Span::styled(fit(&row.name, w), s(role)))
        }
        Col::Power => {
            let text = row.power_label(now);
            let role = if stale { Role::Stale } else { row.power_role() };
            Cell::from(Span::styled(fit(&text, w), s(role)))
        }
        Col::Boot => {
            let label = row.boot_device.as_deref().unwrap_or("");
            let persistent = label.ends_with("(persistent)");
            let short = label.trim_end_matches("(persistent)").trim_end();
            let short = if short.starts_with("other") {
                "other"
            } else {
                short
            };
            let text = if persistent {
                format!("{short}*")
            } else {
                short.to_string()
            };
            let role = match () {
                _ if stale => Role::Stale,
                _ if persistent => Role::Warning,
                _ => Role::Text,
            };
            Cell::from(Span::styled(fit(&text, w), s(role)))
        }
        Col::State => Cell::from(Span::styled(fit(&row.state_text(), w), s(row.state_role()))),
        Col::Console => Cell::from(Span::styled(fit(&row.stage_text(), w), s(row.stage_role()))),
        Col::Holder => {
            // "user@host"; the detail pane names the process too.
            let text = row.holder.as_deref().unwrap_or("");
            let text = text.split(" pid ").next().unwrap_or(text);
            Cell::from(Span::styled(fit(text, w), s(Role::Text)))
        }
        Col::Last => match &row.last {
            Some(last) => {
                let role = if last.ok == Some(false) {
                    Role::Error
                } else {
                    Role::Muted
                };
                let text = format!("{} {}", age(now - last.at), last.text.replace('\n', " "));
                Cell::from(Span::styled(fit(&text, w), s(role)))
            }
            None => Cell::from(""),
        },
        Col::Watts => watts(row, w, s(Role::Sparkline), s(Role::Text)),
    }
}

/// "▂▃▅▇█ 412W": the last samples that fit, then the newest value.
fn watts<'a>(row: &NodeRow, width: usize, spark_style: Style, text_style: Style) -> Cell<'a> {
    let Some(&current) = row.watts.back() else {
        return Cell::from("");
    };
    let value = format!(" {current}W");
    let room = width.saturating_sub(value.chars().count());
    let bars = sparkline(row.watts.iter().copied(), room);
    Cell::from(Line::from(vec![
        Span::styled(bars, spark_style),
        Span::styled(value, text_style),
    ]))
}

/// The last `n` samples as block characters scaled between their min and max.
pub fn sparkline(
    samples: impl DoubleEndedIterator<Item = u16> + ExactSizeIterator,
    n: usize,
) -> String {
    const BARS: [char; 8] = ['▁', '▂', '▃', '▄', '▅', '▆', '▇', '█'];
    let skip = samples.len().saturating_sub(n);
    let shown: Vec<u16> = samples.skip(skip).collect();
    let (Some(&lo), Some(&hi)) = (shown.iter().min(), shown.iter().max()) else {
        return String::new();
    };
    let span = u32::from(hi - lo);
    shown
        .iter()
        .map(|&v| match (u32::from(v - lo) * 7).checked_div(span) {
            Some(level) => BARS[level as usize],
            None => BARS[3],
        })
        .collect()
}
