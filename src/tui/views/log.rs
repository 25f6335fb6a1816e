//! The log pane: what was asked, progress, state changes and results,
//! newest at the bottom (the mouse wheel scrolls back).

use ratatui::Frame;
use ratatui::layout::Rect;
use ratatui::text::{Line, Span};
use ratatui::widgets::Paragraph;

use super::{block, clock, style};
use crate::text::display_safe;
use crate::tui::app::App;
use crate::tui::theme::Role;

pub fn draw(frame: &mut Frame, app: &App, area: Rect) {
    let title = if app.log_scroll > 0 {
        format!(" Log (back {}) ", app.log_scroll)
    } else {
        " Log ".to_string()
    };
    let outer = block(app, title, false);
    let inner = outer.inner(area);
    frame.render_widget(outer, area);
    let rows = usize::from(inner.height);
    if rows == 0 {
        return;
    }
    let end = app.log.len().saturating_sub(app.log_scroll);
    let start = end.saturating_sub(rows);
    let lines: Vec<Line<'_>> = app
        .log
        .range(start..end)
        .map(|l| {
            Line::from(vec![
                Span::styled(format!("{} ", clock(l.at)), style(app, Role::Muted)),
                Span::styled(format!("{} ", l.node), style(app, Role::Text)),
                // Progress and results quote agents, BMCs and consoles: escaped.
                Span::styled(
                    display_safe(&l.text.replace('\n', " ")).into_owned(),
                    style(app, l.role),
                ),
            ])
        })
        .collect();
    if lines.is_empty() {
        let text = "actions, progress and results appear here";
        frame.render_widget(Paragraph::new(text).style(style(app, Role::Muted)), inner);
        return;
    }
    frame.render_widget(Paragraph::new(lines), inner);
}
