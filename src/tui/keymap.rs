//! The keymap as data: every binding has a name (used in the user's
//! override file), a context, its keys and a description. The `?` help and
//! the key-hint bar are generated from it, so they never disagree with what
//! the keys do.
//!
//! A user override (`keymap.toml`) replaces the keys of the bindings it names:
//!
//! ```toml
//! [bindings]
//! deploy = "D"
//! power_off = ["P", "ctrl-o"]
//! ```

use std::fmt;
use std::path::Path;

use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};

/// Where a binding applies. Nav, View and Actions are all live in the main
/// view; Detail is consulted first while the detail pane has focus.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Context {
    Nav,
    View,
    Actions,
    Detail,
    Confirm,
    Help,
    Wall,
    Stages,
}

impl Context {
    pub const ALL: [Context; 8] = [
        Context::Nav,
        Context::View,
        Context::Actions,
        Context::Detail,
        Context::Confirm,
        Context::Help,
        Context::Wall,
        Context::Stages,
    ];

    /// The heading of its section in the help.
    pub fn title(self) -> &'static str {
        match self {
            Context::Nav => "Moving around the table",
            Context::View => "Views",
            Context::Actions => "Actions (on the marked nodes, else the selected one)",
            Context::Detail => "Detail pane (when focused)",
            Context::Confirm => "Confirm dialog",
            Context::Help => "Help",
            Context::Wall => "Console wall",
            Context::Stages => "Boot stage durations (T)",
        }
    }

    /// Contexts live at the same time, where one key cannot mean two things.
    fn overlaps(self, other: Context) -> bool {
        let main = |c: Context| matches!(c, Context::Nav | Context::View | Context::Actions);
        self == other || (main(self) && main(other))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum UiAction {
    Up,
    Down,
    Top,
    Bottom,
    PageUp,
    PageDown,
    Mark,
    MarkAll,
    Filter,
    Sort,
    SortReverse,
    Detail,
    Focus,
    Refresh,
    BmcRefresh,
    BootView,
    Stages,
    Stage,
    Log,
    Console,
    Wall,
    Command,
    Help,
    Back,
    Quit,
    PowerOn,
    PowerOff,
    PowerCycle,
    PowerReset,
    BootPxe,
    BootDisk,
    BootNone,
    Prepare,
    Deploy,
    Undeploy,
    Abort,
    DetailUp,
    DetailDown,
    DetailTop,
    DetailBottom,
    DetailPageUp,
    DetailPageDown,
    ConfirmYes,
    ConfirmNo,
    ConfirmSwitch,
    ConfirmChoose,
    HelpUp,
    HelpDown,
    HelpPageUp,
    HelpPageDown,
    HelpTop,
    HelpBottom,
    HelpClose,
    TileLeft,
    TileRight,
    TileUp,
    TileDown,
    TileOpen,
    WallLeave,
    StagesRefresh,
    StagesClose,
}

/// (action, name in keymap.toml, context, default keys, description)
type Default = (
    UiAction,
    &'static str,
    Context,
    &'static [&'static str],
    &'static str,
);

#[rustfmt::skip]
const DEFAULTS: &[Default] = {
    use Context::*;
    use UiAction as A;
    &[
        (A::Up, "up", Nav, &["k", "up"], "select the node above"),
        (A::Down, "down", Nav, &["j", "down"], "select the node below"),
        (A::Top, "top", Nav, &["g", "home"], "first node"),
        (A::Bottom, "bottom", Nav, &["G", "end"], "last node"),
        (A::PageUp, "page_up", Nav, &["pageup", "ctrl-b"], "one page up"),
        (A::PageDown, "page_down", Nav, &["pagedown", "ctrl-f"], "one page down"),
        (A::Mark, "mark", Nav, &["space"], "mark/unmark the node for bulk actions"),
        (A::MarkAll, "mark_all", Nav, &["ctrl-a"], "mark every shown node (again: unmark all)"),
        (A::Filter, "filter", Nav, &["/"], "filter: text, group:NAME, state:NAME, power:on, a range"),
        (A::Sort, "sort", Nav, &["o"], "sort by the next column"),
        (A::SortReverse, "sort_reverse", Nav, &["O"], "reverse the sort"),
        (A::Detail, "detail", View, &["enter"], "show/hide the detail pane (inventory, config, history)"),
        (A::Focus, "focus", View, &["tab"], "move focus between the table and the detail pane"),
        (A::Refresh, "refresh", View, &["r"], "render the node's config again"),
        (A::BmcRefresh, "bmc_refresh", View, &["E"], "read the BMC event log and inventory (or the timeline) again"),
        (A::BootView, "boot_view", View, &["t"], "detail pane: the last boot's timeline, or config and BMC"),
        (A::Stages, "stage_durations", View, &["T"], "boot stage durations across the lab: median, max, slowest"),
        (A::Stage, "stage", View, &["s"], "preview the deploy or the instance config"),
        (A::Log, "log", View, &["L"], "show/hide the log"),
        (A::Console, "console", View, &["c"], "open the node's serial console"),
        (A::Wall, "wall", View, &["w"], "console wall: the marked nodes (else the first shown)"),
        (A::Command, "command", View, &[":"], "command line (:deploy, :power cycle, :bootdev pxe, :q)"),
        (A::Help, "help", View, &["?", "f1"], "this help"),
        (A::Back, "back", View, &["esc"], "back: detail focus, then the filter, then the marks"),
        (A::Quit, "quit", View, &["q", "ctrl-c"], "quit petitlab"),
        (A::PowerOn, "power_on", Actions, &["p"], "power on"),
        (A::PowerOff, "power_off", Actions, &["P"], "power off (hard; asks first)"),
        (A::PowerCycle, "power_cycle", Actions, &["C"], "power cycle (asks first)"),
        (A::PowerReset, "power_reset", Actions, &["X"], "hard reset (asks first)"),
        (A::BootPxe, "boot_pxe", Actions, &["b"], "boot device: network (pxe), next boot only"),
        (A::BootDisk, "boot_disk", Actions, &["B"], "boot device: disk, next boot only"),
        (A::BootNone, "boot_none", Actions, &["N"], "boot device: clear the override"),
        (A::Prepare, "prepare", Actions, &["R"], "prepare the deploy ramdisk (config + DHCP options)"),
        (A::Deploy, "deploy", Actions, &["d"], "deploy the instance image (asks first)"),
        (A::Undeploy, "undeploy", Actions, &["U"], "undeploy: power off, remove boot files (asks first)"),
        (A::Abort, "abort", Actions, &["A"], "abort the running deploy (asks first)"),
        (A::DetailUp, "detail_up", Detail, &["k", "up"], "scroll up"),
        (A::DetailDown, "detail_down", Detail, &["j", "down"], "scroll down"),
        (A::DetailTop, "detail_top", Detail, &["g", "home"], "scroll to the top"),
        (A::DetailBottom, "detail_bottom", Detail, &["G", "end"], "scroll to the bottom"),
        (A::DetailPageUp, "detail_page_up", Detail, &["pageup", "ctrl-b"], "scroll a page up"),
        (A::DetailPageDown, "detail_page_down", Detail, &["pagedown", "ctrl-f"], "scroll a page down"),
        (A::ConfirmYes, "confirm_yes", Confirm, &["y"], "yes, do it"),
        (A::ConfirmNo, "confirm_no", Confirm, &["n", "esc", "q"], "no, cancel"),
        (A::ConfirmSwitch, "confirm_switch", Confirm, &["left", "right", "tab", "backtab", "h", "l"], "move between No and Yes"),
        (A::ConfirmChoose, "confirm_choose", Confirm, &["enter"], "choose the focused button"),
        (A::HelpUp, "help_up", Help, &["k", "up"], "scroll up"),
        (A::HelpDown, "help_down", Help, &["j", "down"], "scroll down"),
        (A::HelpPageUp, "help_page_up", Help, &["pageup", "ctrl-b"], "scroll a page up"),
        (A::HelpPageDown, "help_page_down", Help, &["pagedown", "ctrl-f", "space"], "scroll a page down"),
        (A::HelpTop, "help_top", Help, &["g", "home"], "scroll to the top"),
        (A::HelpBottom, "help_bottom", Help, &["G", "end"], "scroll to the bottom"),
        (A::HelpClose, "help_close", Help, &["?", "q", "esc", "f1"], "close the help"),
        (A::TileLeft, "tile_left", Wall, &["h", "left", "backtab"], "previous console"),
        (A::TileRight, "tile_right", Wall, &["l", "right", "tab"], "next console"),
        (A::TileUp, "tile_up", Wall, &["k", "up"], "console above"),
        (A::TileDown, "tile_down", Wall, &["j", "down"], "console below"),
        (A::TileOpen, "tile_open", Wall, &["enter", "c"], "open that console in the pane"),
        (A::WallLeave, "wall_leave", Wall, &["q", "esc", "w"], "leave the wall"),
        (A::StagesRefresh, "stages_refresh", Stages, &["r"], "read the durations again"),
        (A::StagesClose, "stages_close", Stages, &["q", "esc", "T"], "close the chart"),
    ]
};

/// A key with its modifiers, as bindings name it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Key {
    pub code: KeyCode,
    pub mods: KeyModifiers,
}

impl Key {
    /// Normalised so that an event and a parsed key compare equal: a
    /// character carries its own case (no SHIFT), a control character is
    /// lower case, shift-tab is BackTab.
    pub fn new(code: KeyCode, mods: KeyModifiers) -> Key {
        let mut mods = mods & (KeyModifiers::CONTROL | KeyModifiers::ALT | KeyModifiers::SHIFT);
        let code = match code {
            KeyCode::Char(c) => {
                mods.remove(KeyModifiers::SHIFT);
                if mods.contains(KeyModifiers::CONTROL) {
                    KeyCode::Char(c.to_ascii_lowercase())
                } else {
                    KeyCode::Char(c)
                }
            }
            KeyCode::BackTab => {
                mods.remove(KeyModifiers::SHIFT);
                KeyCode::BackTab
            }
            KeyCode::Tab if mods.contains(KeyModifiers::SHIFT) => {
                mods.remove(KeyModifiers::SHIFT);
                KeyCode::BackTab
            }
            other => other,
        };
        Key { code, mods }
    }

    pub fn from_event(key: &KeyEvent) -> Key {
        Key::new(key.code, key.modifiers)
    }

    /// "d", "D", "ctrl-a", "alt-x", "shift-tab", "enter", "pageup", "f1", "space".
    pub fn parse(text: &str) -> Result<Key, String> {
        let bad = || {
            format!(
                "{text:?} is not a key (e.g. \"d\", \"D\", \"ctrl-a\", \"enter\", \"pageup\", \"f2\")"
            )
        };
        let mut rest = text;
        let mut mods = KeyModifiers::NONE;
        loop {
            let lower = rest.to_ascii_lowercase();
            let prefix = [
                ("ctrl-", KeyModifiers::CONTROL),
                ("c-", KeyModifiers::CONTROL),
                ("alt-", KeyModifiers::ALT),
                ("m-", KeyModifiers::ALT),
                ("shift-", KeyModifiers::SHIFT),
                ("s-", KeyModifiers::SHIFT),
            ]
            .into_iter()
            .find(|(p, _)| lower.starts_with(p) && lower.len() > p.len());
            match prefix {
                Some((p, m)) => {
                    mods |= m;
                    rest = &rest[p.len()..];
                }
                None => break,
            }
        }
        let mut chars = rest.chars();
        let code = match (chars.next(), chars.next()) {
            (Some(c), None) if mods.contains(KeyModifiers::SHIFT) && c.is_ascii_alphabetic() => {
                KeyCode::Char(c.to_ascii_uppercase())
            }
            (Some(c), None) => KeyCode::Char(c),
            _ => match rest.to_ascii_lowercase().as_str() {
                "enter" | "return" => KeyCode::Enter,
                "esc" | "escape" => KeyCode::Esc,
                "tab" => KeyCode::Tab,
                "backtab" => KeyCode::BackTab,
                "space" => KeyCode::Char(' '),
                "backspace" | "bs" => KeyCode::Backspace,
                "delete" | "del" => KeyCode::Delete,
                "insert" | "ins" => KeyCode::Insert,
                "up" => KeyCode::Up,
                "down" => KeyCode::Down,
                "left" => KeyCode::Left,
                "right" => KeyCode::Right,
                "home" => KeyCode::Home,
                "end" => KeyCode::End,
                "pageup" | "pgup" => KeyCode::PageUp,
                "pagedown" | "pgdn" => KeyCode::PageDown,
                f if f.starts_with('f') => match f[1..].parse::<u8>() {
                    Ok(n @ 1..=12) => KeyCode::F(n),
                    _ => return Err(bad()),
                },
                _ => return Err(bad()),
            },
        };
        Ok(Key::new(code, mods))
    }
}

impl fmt::Display for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.mods.contains(KeyModifiers::CONTROL) {
            f.write_str("ctrl-")?;
        }
        if self.mods.contains(KeyModifiers::ALT) {
            f.write_str("alt-")?;
        }
        if self.mods.contains(KeyModifiers::SHIFT) {
            f.write_str("shift-")?;
        }
        match self.code {
            KeyCode::Char(' ') => f.write_str("space"),
            KeyCode::Char(c) => write!(f, "{c}"),
            KeyCode::Enter => f.write_str("Enter"),
            KeyCode::Esc => f.write_str("Esc"),
            KeyCode::Tab => f.write_str("Tab"),
            KeyCode::BackTab => f.write_str("S-Tab"),
            KeyCode::Backspace => f.write_str("Bksp"),
            KeyCode::Delete => f.write_str("Del"),
            KeyCode::Insert => f.write_str("Ins"),
            KeyCode::Up => f.write_str("↑"),
            KeyCode::Down => f.write_str("↓"),
            KeyCode::Left => f.write_str("←"),
            KeyCode::Right => f.write_str("→"),
            KeyCode::Home => f.write_str("Home"),
            KeyCode::End => f.write_str("End"),
            KeyCode::PageUp => f.write_str("PgUp"),
            KeyCode::PageDown => f.write_str("PgDn"),
            KeyCode::F(n) => write!(f, "F{n}"),
            other => write!(f, "{other:?}"),
        }
    }
}

#[derive(Debug, Clone)]
pub struct Binding {
    pub action: UiAction,
    /// The name in keymap.toml's `[bindings]`.
    pub name: &'static str,
    pub context: Context,
    pub keys: Vec<Key>,
    pub desc: &'static str,
}

#[derive(Debug, Clone)]
pub struct Keymap {
    bindings: Vec<Binding>,
}

#[derive(Debug, thiserror::Error)]
#[error("{source_name}: {message}")]
pub struct KeymapError {
    pub source_name: String,
    pub message: String,
}

impl std::default::Default for Keymap {
    fn default() -> Keymap {
        let bindings = DEFAULTS
            .iter()
            .map(|&(action, name, context, keys, desc)| Binding {
                action,
                name,
                context,
                // The defaults are tested to parse.
                keys: keys.iter().filter_map(|k| Key::parse(k).ok()).collect(),
                desc,
            })
            .collect();
        Keymap { bindings }
    }
}

impl Keymap {
    pub fn bindings(&self) -> &[Binding] {
        &self.bindings
    }

    /// The action `key` triggers in the first of `contexts` that binds it.
    pub fn lookup(&self, contexts: &[Context], key: &KeyEvent) -> Option<UiAction> {
        let key = Key::from_event(key);
        contexts.iter().find_map(|c| {
            self.bindings
                .iter()
                .find(|b| b.context == *c && b.keys.contains(&key))
                .map(|b| b.action)
        })
    }

    pub fn binding(&self, action: UiAction) -> Option<&Binding> {
        self.bindings.iter().find(|b| b.action == action)
    }

    /// The first key of `action` ("" when unbound), for hints.
    pub fn first_key(&self, action: UiAction) -> String {
        self.binding(action)
            .and_then(|b| b.keys.first())
            .map(Key::to_string)
            .unwrap_or_default()
    }

    /// All keys of `action`, space-separated, for the help.
    pub fn keys_label(&self, action: UiAction) -> String {
        self.binding(action)
            .map(|b| {
                b.keys
                    .iter()
                    .map(Key::to_string)
                    .collect::<Vec<_>>()
                    .join(" ")
            })
            .unwrap_or_default()
    }

    /// The bindings of each context, in help order.
    pub fn help_sections(&self) -> Vec<(Context, Vec<&Binding>)> {
        Context::ALL
            .iter()
            .map(|&c| (c, self.bindings.iter().filter(|b| b.context == c).collect()))
            .collect()
    }

    /// The defaults with `path`'s `[bindings]` applied; errors name the file and the key.
    pub fn load_override(path: &Path) -> Result<Keymap, KeymapError> {
        let source_name = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|e| KeymapError {
            source_name: source_name.clone(),
            message: e.to_string(),
        })?;
        Keymap::default().with_override(&source_name, &text)
    }

    /// Applies an override file's text (see the module doc).
    pub fn with_override(mut self, source_name: &str, text: &str) -> Result<Keymap, KeymapError> {
        let error = |message: String| KeymapError {
            source_name: source_name.to_string(),
            message,
        };
        let table: toml::Table =
            toml::from_str(text).map_err(|e| error(e.to_string().trim_end().to_string()))?;
        let mut changed = Vec::new();
        for (section, value) in &table {
            if section != "bindings" {
                return Err(error(format!(
                    "{section}: unknown section (the file has only [bindings])"
                )));
            }
            let toml::Value::Table(bindings) = value else {
                return Err(error("bindings: must be a table ([bindings])".into()));
            };
            for (name, value) in bindings {
                let field = format!("bindings.{name}");
                let Some(index) = self.bindings.iter().position(|b| b.name == name.as_str()) else {
                    return Err(error(format!(
                        "{field}: unknown binding; see `?` in the dashboard for the names, e.g. deploy, power_off, filter"
                    )));
                };
                let texts: Vec<&str> = match value {
                    toml::Value::String(s) => vec![s.as_str()],
                    toml::Value::Array(items) => items
                        .iter()
                        .map(|v| {
                            v.as_str()
                                .ok_or_else(|| error(format!("{field}: keys must be strings")))
                        })
                        .collect::<Result<_, _>>()?,
                    _ => {
                        return Err(error(format!(
                            "{field}: a key (\"D\") or a list of keys ([\"D\", \"ctrl-d\"])"
                        )));
                    }
                };
                let keys = texts
                    .iter()
                    .map(|t| Key::parse(t).map_err(|why| error(format!("{field}: {why}"))))
                    .collect::<Result<Vec<_>, _>>()?;
                self.bindings[index].keys = keys;
                changed.push(index);
            }
        }
        self.check_conflicts(&changed).map_err(error)?;
        Ok(self)
    }

    /// Two bindings live at the same time must not share a key. Conflicts
    /// involving a changed binding are reported first, naming its key.
    fn check_conflicts(&self, changed: &[usize]) -> Result<(), String> {
        let mut order: Vec<usize> = changed.to_vec();
        order.extend((0..self.bindings.len()).filter(|i| !changed.contains(i)));
        for &i in &order {
            let a = &self.bindings[i];
            for (j, b) in self.bindings.iter().enumerate() {
                if i == j || !a.context.overlaps(b.context) {
                    continue;
                }
                if let Some(key) = a.keys.iter().find(|k| b.keys.contains(k)) {
                    return Err(format!(
                        "bindings.{}: {key} is also bound to {} ({}); rebind that one too",
                        a.name, b.name, b.desc
                    ));
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
#[path = "keymap_tests.rs"]
mod tests;
