//! `?`: the help, generated from the keymap (each binding's keys and
//! `desc`, grouped by context), then the console pane's keys, the text
//! inputs, the `:` commands and the node ranges they take.

use ratatui::Frame;
use ratatui::layout::Rect;
use ratatui::text::{Line, Span};
use ratatui::widgets::Paragraph;

use super::{block, popup_base, style};
use crate::tui::app::App;
use crate::tui::theme::Role;

/// The console pane handles its own keys (console_pane.rs); listed here.
const CONSOLE_KEYS: &[(&str, &str)] = &[
    (
        "i Enter",
        "type into the node's console (keys go to the node)",
    ),
    ("ctrl-]", "stop typing"),
    ("z", "zoom to full screen"),
    ("/ n N", "search screen and scrollback; older, newer match"),
    ("PgUp PgDn k j", "scroll back and forth"),
    ("g Home / G End", "oldest line / live"),
    ("b", "send a serial break"),
    ("q Esc", "leave the console"),
];

const INPUT_KEYS: &[(&str, &str)] = &[
    ("Enter", "apply"),
    ("Esc", "cancel"),
    (
        "Bksp ctrl-w ctrl-u",
        "delete a character, a word, everything",
    ),
];

/// Node ranges, in `:` commands' RANGE and in the `/` filter.
const RANGES: &[(&str, &str)] = &[
    (
        "p9-r1-[01-20]",
        "names; [1-3,7] lists, [01-20] pads to 2 digits",
    ),
    ("group:NAME", "a lab.toml group (exact)"),
    ("state:NAME", "a state: active, deploy-failed, error…"),
    (
        "all,-p8-r2-01",
        "every node but one: -TERM narrows the terms before",
    ),
    ("a,b c", "several terms or words: every node they name"),
    (
        "/ a filter word",
        "with [ ] or , it is a range, else text to look for",
    ),
];

const KEY_COLUMN: usize = 20;

fn entry(app: &App, keys: &str, desc: &str) -> Line<'static> {
    Line::from(vec![
        Span::styled(format!("  {keys:<KEY_COLUMN$} "), style(app, Role::Key)),
        Span::styled(desc.to_string(), style(app, Role::Text)),
    ])
}

/// Every line of the help, in order.
pub fn help_lines(app: &App) -> Vec<Line<'static>> {
    let mut out = Vec::new();
    let heading = |text: &str| Line::styled(text.to_string(), style(app, Role::Title));
    for (context, bindings) in app.keymap.help_sections() {
        if bindings.is_empty() {
            continue;
        }
        out.push(heading(context.title()));
        for b in bindings {
            let keys: Vec<String> = b.keys.iter().map(ToString::to_string).collect();
            let keys = if keys.is_empty() {
                "(unbound)".to_string()
            } else {
                keys.join(" ")
            };
            out.push(entry(app, &keys, b.desc));
        }
        out.push(Line::default());
    }
    out.push(heading("Console pane"));
    out.extend(CONSOLE_KEYS.iter().map(|(k, d)| entry(app, k, d)));
    out.push(Line::default());
    out.push(heading("Filter (/) and command line (:)"));
    out.extend(INPUT_KEYS.iter().map(|(k, d)| entry(app, k, d)));
    out.push(Line::default());
    out.push(heading("Commands"));
    out.extend(
        crate::tui::command::USAGE
            .iter()
            .map(|(k, d)| entry(app, k, d)),
    );
    out.push(Line::default());
    out.push(heading("Node ranges (RANGE)"));
    out.extend(RANGES.iter().map(|(k, d)| entry(app, k, d)));
    out.push(Line::default());
    out.push(Line::styled(
        "Bindings can be changed in keymap.toml: [bindings] deploy = \"D\"",
        style(app, Role::Muted),
    ));
    out
}

pub fn draw(frame: &mut Frame, app: &App, area: Rect) {
    popup_base(frame, app, area);
    let outer = block(app, " Help ", true);
    let inner = outer.inner(area);
    frame.render_widget(outer, area);
    let lines = help_lines(app);
    let max = lines.len().saturating_sub(usize::from(inner.height));
    let scroll = usize::from(app.help_scroll).min(max);
    frame.render_widget(
        Paragraph::new(lines).scroll((u16::try_from(scroll).unwrap_or(0), 0)),
        inner,
    );
}
