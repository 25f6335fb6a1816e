//! The confirm dialog for destructive actions: it names the action and
//! every node, and the focus starts on "No".

use ratatui::Frame;
use ratatui::layout::Rect;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Paragraph, Wrap};

use super::{block, popup_base, style};
use crate::engine::lab::Action;
use crate::ipmi::chassis::PowerAction;
use crate::tui::app::{App, Confirm};
use crate::tui::model::action_label;
use crate::tui::theme::Role;

/// Nodes named in full; the rest are counted.
const NAMED: usize = 12;

/// What the action does, in a line.
fn consequence(action: Action) -> &'static str {
    match action {
        Action::Deploy => "Writes the instance image over the node's disk.",
        Action::Undeploy => "Powers the node off and removes its boot files; it becomes available.",
        Action::Abort => "Stops the running deploy at its next check.",
        Action::Power(PowerAction::Off) => "Cuts the power: the OS is not shut down.",
        Action::Power(PowerAction::Cycle) => "Power off, then on: the OS is not shut down.",
        Action::Power(PowerAction::Reset) => "Hard reset: the OS is not shut down.",
        Action::Power(PowerAction::Soft) => "Asks the OS to shut down (ACPI).",
        _ => "",
    }
}

fn nodes_text(c: &Confirm) -> String {
    let mut text = c
        .nodes
        .iter()
        .take(NAMED)
        .cloned()
        .collect::<Vec<_>>()
        .join(", ");
    if c.nodes.len() > NAMED {
        text.push_str(&format!(" and {} more", c.nodes.len() - NAMED));
    }
    text
}

/// Rows the dialog needs at a terminal `width` wide.
pub fn height(c: &Confirm, width: u16) -> u16 {
    let inner = usize::from(width.min(64).saturating_sub(4)).max(1);
    let names = nodes_text(c).chars().count().div_ceil(inner).max(1);
    let consequence = consequence(c.action).chars().count().div_ceil(inner).max(1);
    // Border 2, question 1, names, blank, consequence, blank, buttons.
    u16::try_from(2 + 1 + names + 1 + consequence + 1 + 1).unwrap_or(u16::MAX)
}

pub fn draw(frame: &mut Frame, app: &App, c: &Confirm, area: Rect) {
    popup_base(frame, app, area);
    let outer = block(app, " Confirm ", true);
    let inner = outer.inner(area).inner(ratatui::layout::Margin::new(1, 0));
    frame.render_widget(outer, area);
    let count = c.nodes.len();
    let what = if count == 1 {
        "node".to_string()
    } else {
        format!("{count} nodes")
    };
    let question = format!("{} {what}?", capitalise(&action_label(c.action)));
    let button = |label: &str, focused: bool| {
        let role = if focused {
            Role::ButtonFocus
        } else {
            Role::Button
        };
        Span::styled(format!("[ {label} ]"), style(app, role))
    };
    let lines = vec![
        Line::styled(question, style(app, Role::Title)),
        Line::styled(nodes_text(c), style(app, Role::Marked)),
        Line::default(),
        Line::styled(consequence(c.action), style(app, Role::Warning)),
        Line::default(),
        Line::from(vec![
            button("No", !c.yes_focused),
            Span::raw("   "),
            button("Yes", c.yes_focused),
        ]),
    ];
    frame.render_widget(Paragraph::new(lines).wrap(Wrap { trim: true }), inner);
}

fn capitalise(s: &str) -> String {
    let mut chars = s.chars();
    match chars.next() {
        Some(c) => c.to_uppercase().chain(chars).collect(),
        None => String::new(),
    }
}
