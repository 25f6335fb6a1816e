//! Themes as data (themes/*.toml): a palette of named colours, then roles
//! that say how each kind of thing is drawn. Views ask for a role, never a
//! colour, so a theme can change everything and meaning never hides in code.

use std::collections::HashMap;
use std::path::Path;

use ratatui::style::{Color, Modifier, Style};
use serde::Deserialize;

/// What a style is for. Every theme defines every role.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Role {
    Text,
    Muted,
    Title,
    Border,
    BorderFocus,
    Selected,
    Marked,
    Stale,
    PowerOn,
    PowerOff,
    PowerUnknown,
    StateOk,
    StateBusy,
    StateFailed,
    Error,
    Warning,
    DiffAdd,
    DiffRemove,
    Key,
    Hint,
    Flash,
    Button,
    ButtonFocus,
    Sparkline,
}

pub const ROLES: [(Role, &str); 24] = [
    (Role::Text, "text"),
    (Role::Muted, "muted"),
    (Role::Title, "title"),
    (Role::Border, "border"),
    (Role::BorderFocus, "border_focus"),
    (Role::Selected, "selected"),
    (Role::Marked, "marked"),
    (Role::Stale, "stale"),
    (Role::PowerOn, "power_on"),
    (Role::PowerOff, "power_off"),
    (Role::PowerUnknown, "power_unknown"),
    (Role::StateOk, "state_ok"),
    (Role::StateBusy, "state_busy"),
    (Role::StateFailed, "state_failed"),
    (Role::Error, "error"),
    (Role::Warning, "warning"),
    (Role::DiffAdd, "diff_add"),
    (Role::DiffRemove, "diff_remove"),
    (Role::Key, "key"),
    (Role::Hint, "hint"),
    (Role::Flash, "flash"),
    (Role::Button, "button"),
    (Role::ButtonFocus, "button_focus"),
    (Role::Sparkline, "sparkline"),
];

/// The themes petitlab ships, embedded at build time.
pub const BUILTIN: [(&str, &str); 3] = [
    ("dark", include_str!("../../themes/dark.toml")),
    ("light", include_str!("../../themes/light.toml")),
    (
        "high-contrast",
        include_str!("../../themes/high-contrast.toml"),
    ),
];

#[derive(Debug, Clone)]
pub struct Theme {
    pub name: String,
    styles: HashMap<Role, Style>,
}

#[derive(Debug, thiserror::Error)]
#[error("theme {source_name}: {message}")]
pub struct ThemeError {
    pub source_name: String,
    pub message: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTheme {
    name: String,
    palette: HashMap<String, String>,
    roles: HashMap<String, RawStyle>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawStyle {
    fg: Option<String>,
    bg: Option<String>,
    #[serde(default)]
    modifiers: Vec<String>,
}

impl Theme {
    /// A shipped theme by name.
    pub fn builtin(name: &str) -> Option<Theme> {
        let (_, text) = BUILTIN.iter().find(|(n, _)| *n == name)?;
        Theme::parse(name, text).ok()
    }

    /// The default: dark.
    pub fn dark() -> Theme {
        Theme::builtin("dark").unwrap_or_else(|| Theme {
            name: "plain".into(),
            styles: HashMap::new(),
        })
    }

    /// A theme file; errors name the file and the key.
    pub fn load(path: &Path) -> Result<Theme, ThemeError> {
        let text = std::fs::read_to_string(path).map_err(|e| ThemeError {
            source_name: path.display().to_string(),
            message: e.to_string(),
        })?;
        Theme::parse(&path.display().to_string(), &text)
    }

    pub fn parse(source_name: &str, text: &str) -> Result<Theme, ThemeError> {
        let error = |message: String| ThemeError {
            source_name: source_name.to_string(),
            message,
        };
        let raw: RawTheme = toml::from_str(text).map_err(|e| error(e.to_string()))?;
        let colour = |value: &str, key: &str| -> Result<Color, ThemeError> {
            let resolved = raw.palette.get(value).map_or(value, String::as_str);
            parse_colour(resolved).ok_or_else(|| {
                error(format!(
                    "{key}: {value:?} is neither a palette name nor a colour (\"#rrggbb\" or a terminal colour name)"
                ))
            })
        };
        let mut names: Vec<&String> = raw.roles.keys().collect();
        names.sort();
        if let Some(unknown) = names
            .iter()
            .find(|n| !ROLES.iter().any(|(_, r)| *r == n.as_str()))
        {
            return Err(error(format!("roles.{unknown}: unknown role")));
        }
        let mut styles = HashMap::new();
        // In ROLES order, so the first error reported is always the same one.
        for (role, name) in ROLES {
            let Some(raw_style) = raw.roles.get(name) else {
                continue;
            };
            let mut style = Style::default();
            if let Some(fg) = &raw_style.fg {
                style = style.fg(colour(fg, &format!("roles.{name}.fg"))?);
            }
            if let Some(bg) = &raw_style.bg {
                style = style.bg(colour(bg, &format!("roles.{name}.bg"))?);
            }
            for m in &raw_style.modifiers {
                let modifier = parse_modifier(m).ok_or_else(|| {
                    error(format!("roles.{name}.modifiers: unknown modifier {m:?}"))
                })?;
                style = style.add_modifier(modifier);
            }
            styles.insert(role, style);
        }
        let missing: Vec<&str> = ROLES
            .iter()
            .filter(|(r, _)| !styles.contains_key(r))
            .map(|(_, n)| *n)
            .collect();
        if !missing.is_empty() {
            return Err(error(format!("roles missing: {}", missing.join(", "))));
        }
        Ok(Theme {
            name: raw.name,
            styles,
        })
    }

    pub fn style(&self, role: Role) -> Style {
        self.styles.get(&role).copied().unwrap_or_default()
    }
}

fn parse_colour(s: &str) -> Option<Color> {
    if let Some(hex) = s.strip_prefix('#') {
        if hex.len() != 6 {
            return None;
        }
        let n = u32::from_str_radix(hex, 16).ok()?;
        return Some(Color::Rgb((n >> 16) as u8, (n >> 8) as u8, n as u8));
    }
    Some(match s.to_ascii_lowercase().as_str() {
        "reset" => Color::Reset,
        "black" => Color::Black,
        "red" => Color::Red,
        "green" => Color::Green,
        "yellow" => Color::Yellow,
        "blue" => Color::Blue,
        "magenta" => Color::Magenta,
        "cyan" => Color::Cyan,
        "gray" => Color::Gray,
        "darkgray" => Color::DarkGray,
        "lightred" => Color::LightRed,
        "lightgreen" => Color::LightGreen,
        "lightyellow" => Color::LightYellow,
        "lightblue" => Color::LightBlue,
        "lightmagenta" => Color::LightMagenta,
        "lightcyan" => Color::LightCyan,
        "white" => Color::White,
        _ => return None,
    })
}

fn parse_modifier(s: &str) -> Option<Modifier> {
    Some(match s {
        "bold" => Modifier::BOLD,
        "dim" => Modifier::DIM,
        "italic" => Modifier::ITALIC,
        "underlined" => Modifier::UNDERLINED,
        "reversed" => Modifier::REVERSED,
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_shipped_theme_defines_every_role() {
        for (name, text) in BUILTIN {
            let theme = Theme::parse(name, text).unwrap_or_else(|e| panic!("{e}"));
            assert_eq!(theme.name, name);
        }
        let dark = Theme::dark();
        assert_eq!(
            dark.style(Role::PowerOn).fg,
            Some(Color::Rgb(0x5f, 0xd7, 0x5f))
        );
        let hc = Theme::builtin("high-contrast").unwrap();
        assert!(
            hc.style(Role::StateFailed)
                .add_modifier
                .contains(Modifier::REVERSED)
        );
    }

    #[test]
    fn errors_name_the_theme_and_the_key() {
        let text = BUILTIN[0].1.replace(
            "power_on = { fg = \"good\" }",
            "power_on = { fg = \"chartreuse\" }",
        );
        let e = Theme::parse("mine.toml", &text).unwrap_err().to_string();
        assert!(
            e.starts_with("theme mine.toml: roles.power_on.fg: \"chartreuse\""),
            "{e}"
        );
        let text = BUILTIN[0]
            .1
            .replace("sparkline = { fg = \"accent\" }\n", "");
        let e = Theme::parse("mine.toml", &text).unwrap_err().to_string();
        assert!(e.contains("roles missing: sparkline"), "{e}");
        let e = Theme::parse("x", "name = 1").unwrap_err().to_string();
        assert!(e.starts_with("theme x: "), "{e}");
    }
}
