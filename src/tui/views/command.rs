//! The status line above the hints: the `/` filter (and what is wrong with
//! its node ranges) or `:` command being typed, else the flash message,
//! else the selected node's failure reason.

use ratatui::Frame;
use ratatui::layout::{Position, Rect};
use ratatui::text::{Line, Span};

use super::{fit, style};
use crate::tui::app::{App, Mode};
use crate::tui::theme::Role;

pub fn draw(frame: &mut Frame, app: &App, area: Rect) {
    if area.height == 0 || area.width == 0 {
        return;
    }
    let width = usize::from(area.width);
    let prompt = match app.mode {
        Mode::Filter => Some("/"),
        Mode::Command => Some(":"),
        _ => None,
    };
    if let Some(prompt) = prompt {
        // Keep the end of a long line (where the cursor is) visible.
        let room = width.saturating_sub(2);
        let skip = app.input.chars().count().saturating_sub(room);
        let shown: String = app.input.chars().skip(skip).collect();
        let mut spans = vec![
            Span::styled(prompt, style(app, Role::Key)),
            Span::styled(shown.clone(), style(app, Role::Text)),
        ];
        // A filter's bad range, after what is typed, while there is room.
        let room = room.saturating_sub(shown.chars().count() + 2);
        if let (Mode::Filter, Some(problem), true) = (app.mode, &app.filter_problem, room > 8) {
            spans.push(Span::styled(
                format!("  {}", fit(problem, room)),
                style(app, Role::Error),
            ));
        }
        frame.render_widget(Line::from(spans), area);
        let x = area.x + u16::try_from(1 + shown.chars().count()).unwrap_or(0);
        frame.set_cursor_position(Position::new(x.min(area.right().saturating_sub(1)), area.y));
        return;
    }
    if let Some(flash) = &app.flash {
        let role = if flash.error {
            Role::Error
        } else {
            Role::Flash
        };
        let text = fit(&format!(" {} ", flash.text), width);
        frame.render_widget(Line::from(Span::styled(text, style(app, role))), area);
        return;
    }
    if let Some(reason) = app.selected_row().and_then(|r| r.reason.as_deref())
        && app.mode == Mode::Normal
    {
        let text = fit(&format!(" {reason}"), width);
        frame.render_widget(
            Line::from(Span::styled(text, style(app, Role::Error))),
            area,
        );
    }
}
