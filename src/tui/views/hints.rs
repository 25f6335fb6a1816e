//! The key-hint bar: always visible, the most useful keys for the current
//! mode, with the keys the keymap really has (overrides included).

use ratatui::Frame;
use ratatui::layout::Rect;
use ratatui::text::{Line, Span};

use super::style;
use crate::tui::app::{App, Focus, Mode};
use crate::tui::keymap::UiAction as A;
use crate::tui::theme::Role;

/// (actions whose first keys are shown joined by "/", label); an action
/// listed twice shows its first two keys.
type Hint = (&'static [A], &'static str);

const TABLE: &[Hint] = &[
    (&[A::Up, A::Down], "move"),
    (&[A::Mark], "mark"),
    (&[A::Filter], "filter"),
    (&[A::Detail], "detail"),
    (&[A::Deploy], "deploy"),
    (&[A::PowerOn, A::PowerOff], "power on/off"),
    (&[A::Console], "console"),
    (&[A::BootView], "boot"),
    (&[A::Help], "help"),
    (&[A::Wall], "wall"),
    (&[A::Command], "command"),
    (&[A::Quit], "quit"),
    (&[A::BootPxe], "pxe"),
    (&[A::Sort], "sort"),
];

const DETAIL: &[Hint] = &[
    (&[A::DetailUp, A::DetailDown], "scroll"),
    (&[A::Stage], "deploy/instance"),
    (&[A::Refresh], "refresh"),
    (&[A::Focus], "table"),
    (&[A::Detail], "close"),
    (&[A::Deploy], "deploy"),
    (&[A::Console], "console"),
    (&[A::BootView], "boot/BMC"),
    (&[A::Help], "help"),
    (&[A::BmcRefresh], "read again"),
];

const CONFIRM: &[Hint] = &[
    (&[A::ConfirmSwitch, A::ConfirmSwitch], "choose"),
    (&[A::ConfirmChoose], "confirm"),
    (&[A::ConfirmYes], "yes"),
    (&[A::ConfirmNo], "no"),
];

const HELP: &[Hint] = &[
    (&[A::HelpUp, A::HelpDown], "scroll"),
    (&[A::HelpClose], "close"),
];

const STAGES: &[Hint] = &[
    (&[A::StagesRefresh], "read again"),
    (&[A::StagesClose], "close"),
];

const WALL: &[Hint] = &[
    (&[A::TileLeft, A::TileRight], "previous/next"),
    (&[A::TileUp, A::TileDown], "up/down"),
    (&[A::TileOpen], "open"),
    (&[A::WallLeave], "leave"),
];

/// The hint pairs (keys, label) for the current mode.
pub fn hints(app: &App) -> Vec<(String, String)> {
    let fixed = |pairs: &[(&str, &str)]| {
        pairs
            .iter()
            .map(|(k, l)| (k.to_string(), l.to_string()))
            .collect()
    };
    let table = match app.mode {
        Mode::Normal if app.detail_open && app.focus == Focus::Detail => DETAIL,
        Mode::Normal => TABLE,
        Mode::Confirm => CONFIRM,
        Mode::Help => HELP,
        Mode::Wall => WALL,
        Mode::Stages => STAGES,
        Mode::Filter => {
            return fixed(&[
                ("Enter", "keep"),
                ("Esc", "cancel"),
                ("group:", "by group"),
                ("state:", "by state"),
                ("power:", "on/off"),
            ]);
        }
        Mode::Command => {
            return fixed(&[
                ("Enter", "run"),
                ("Esc", "cancel"),
                (":deploy", ""),
                (":power cycle", ""),
                (":bootdev pxe", ""),
                (":q", ""),
            ]);
        }
        Mode::Console => {
            return if app.pane.as_ref().is_some_and(|p| p.typing()) {
                fixed(&[
                    ("ctrl-]", "stop typing"),
                    ("", "every other key goes to the node"),
                ])
            } else {
                fixed(&[
                    ("i", "type"),
                    ("z", "zoom"),
                    ("/", "search"),
                    ("n/N", "next/prev"),
                    ("PgUp/PgDn", "scroll"),
                    ("b", "break"),
                    ("q", "leave"),
                ])
            };
        }
    };
    table
        .iter()
        .filter_map(|(actions, label)| {
            let mut keys: Vec<String> = Vec::new();
            for (i, a) in actions.iter().enumerate() {
                let nth = actions[..i].iter().filter(|b| *b == a).count();
                if let Some(k) = app.keymap.binding(*a).and_then(|b| b.keys.get(nth)) {
                    keys.push(k.to_string());
                }
            }
            (!keys.is_empty()).then(|| (keys.join("/"), label.to_string()))
        })
        .collect()
}

pub fn draw(frame: &mut Frame, app: &App, area: Rect) {
    let mut spans = Vec::new();
    let mut used = 0usize;
    let width = usize::from(area.width);
    for (keys, label) in hints(app) {
        let len = keys.chars().count() + usize::from(!label.is_empty()) + label.chars().count() + 2;
        if used + len > width {
            break;
        }
        used += len;
        spans.push(Span::styled(keys, style(app, Role::Key)));
        if !label.is_empty() {
            spans.push(Span::styled(format!(" {label}"), style(app, Role::Hint)));
        }
        spans.push(Span::raw("  "));
    }
    frame.render_widget(Line::from(spans), area);
}
