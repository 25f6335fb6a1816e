//! `T`: how long each stretch of a netboot takes across the lab's recent
//! boots — for each pair of consecutive milestones, the median and the
//! longest as bars (ratatui's BarChart), and the node of the longest boot
//! (the outlier to look at). Read from the lab each time it opens.

use ratatui::Frame;
use ratatui::layout::{Constraint, Direction, Layout, Rect};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Bar, BarChart, BarGroup, Paragraph};

use crate::timeline::phases::StageStats;
use crate::tui::app::App;
use crate::tui::keymap::UiAction;
use crate::tui::theme::Role;
use crate::tui::timeline::seconds;
use crate::tui::views::{block, fit, popup_base, style};

/// Rows of the popup: its border, three rows per stretch (median, max,
/// the slowest node), the legend.
pub fn height(app: &App) -> u16 {
    let stretches = match &app.stages.value {
        Some(Ok(stats)) if !stats.is_empty() => stats.len(),
        _ => 1,
    };
    u16::try_from(3 * stretches + 3).unwrap_or(u16::MAX)
}

/// "power-on→dhcp".
fn stretch(s: &StageStats) -> String {
    format!("{}→{}", s.from.as_str(), s.to.as_str())
}

pub fn draw(frame: &mut Frame, app: &App, area: Rect) {
    popup_base(frame, app, area);
    let mut title = " Boot stage durations, recent boots ".to_string();
    if app.stages.loading && app.stages.value.is_some() {
        title.push_str("(reading again…) ");
    }
    let outer = block(app, title, true);
    let inner = outer.inner(area);
    frame.render_widget(outer, area);
    if inner.height == 0 || inner.width == 0 {
        return;
    }
    let w = usize::from(inner.width);
    let message = |text: String, role: Role| Paragraph::new(fit(&text, w)).style(style(app, role));
    let stats = match &app.stages.value {
        None => {
            frame.render_widget(message("reading…".into(), Role::Muted), inner);
            return;
        }
        Some(Err(why)) => {
            frame.render_widget(
                message(format!("cannot read the durations: {why}"), Role::Error),
                inner,
            );
            return;
        }
        Some(Ok(stats)) if stats.is_empty() => {
            frame.render_widget(
                message(
                    "no boots recorded yet: durations come from boots the lab watched".into(),
                    Role::Muted,
                ),
                inner,
            );
            return;
        }
        Some(Ok(stats)) => stats,
    };
    let [chart, legend] =
        Layout::vertical([Constraint::Min(0), Constraint::Length(1)]).areas(inner);
    let label_w = stats
        .iter()
        .map(|s| stretch(s).chars().count())
        .max()
        .unwrap_or(0);
    let groups: Vec<BarGroup<'static>> = stats
        .iter()
        .map(|s| {
            let median = Bar::default()
                .value(u64::try_from(s.median_ms).unwrap_or(0))
                .label(Line::styled(
                    format!("{:<label_w$} median", stretch(s)),
                    style(app, Role::Text),
                ))
                .text_value(format!(" {} ", seconds(s.median_ms)))
                .style(style(app, Role::StateOk));
            let max = Bar::default()
                .value(u64::try_from(s.max_ms).unwrap_or(0))
                .label(Line::styled(
                    format!("{:<label_w$} max", ""),
                    style(app, Role::Text),
                ))
                .text_value(format!(" {} ", seconds(s.max_ms)))
                .style(style(app, Role::Warning));
            let note = format!("{} boots · slowest: {}", s.boots, s.slowest);
            BarGroup::default()
                .label(Line::styled(fit(&note, w), style(app, Role::Muted)))
                .bars(&[median, max])
        })
        .collect();
    let mut bars = BarChart::default()
        .direction(Direction::Horizontal)
        .bar_width(1)
        .bar_gap(0)
        .group_gap(1)
        .value_style(style(app, Role::Title))
        .label_style(style(app, Role::Muted));
    for g in groups {
        bars = bars.data(g);
    }
    frame.render_widget(bars, chart);
    let keys = |a: UiAction| app.keymap.first_key(a);
    frame.render_widget(
        Line::from(vec![
            Span::styled("█ median  ", style(app, Role::StateOk)),
            Span::styled("█ longest  ", style(app, Role::Warning)),
            Span::styled(
                format!(
                    "{}: read again  {}: close",
                    keys(UiAction::StagesRefresh),
                    keys(UiAction::StagesClose)
                ),
                style(app, Role::Hint),
            ),
        ]),
        legend,
    );
}

#[cfg(test)]
#[path = "stage_chart_tests.rs"]
mod tests;
