//! pxelinux-style configs as petitboot reads them, and a lint that refuses
//! what petitboot would silently misread (see DESIGN.md, "Petitboot facts").
//!
//! The line splitting follows petitboot's `conf_get_pair_space`: tabs become
//! spaces, quotes and white space are stripped from both ends, the keyword
//! ends at the first space, and a line whose keyword or value starts with `#`
//! is skipped. Keywords are case-insensitive.

use std::fmt;

/// The keywords petitboot acts on; everything else it ignores silently.
const KNOWN: &[&str] = &[
    "DEFAULT", "LABEL", "KERNEL", "INITRD", "APPEND", "FDT", "DTB", "IPAPPEND",
];

/// One boot option as petitboot would build it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Label {
    pub name: String,
    pub kernel: Option<String>,
    pub initrd: Option<String>,
    pub append: Option<String>,
    pub fdt: Option<String>,
    pub ipappend: Option<String>,
}

/// A parsed config: what petitboot would see.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PxeConfig {
    pub default: Option<String>,
    /// True when DEFAULT appeared only after a LABEL (petitboot then marks
    /// no earlier label as default).
    pub default_after_label: bool,
    pub labels: Vec<Label>,
}

impl PxeConfig {
    /// The label petitboot would autoboot: the DEFAULT one, if any.
    pub fn default_label(&self) -> Option<&Label> {
        let name = self.default.as_deref()?;
        self.labels.iter().find(|l| l.name == name)
    }
}

/// A problem petitboot would not report: it would just do something else.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LintError {
    /// 1-based line number in the rendered config (0: the config as a whole).
    pub line: usize,
    pub message: String,
}

impl fmt::Display for LintError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.line == 0 {
            f.write_str(&self.message)
        } else {
            write!(f, "line {}: {}", self.line, self.message)
        }
    }
}

/// A non-comment line split the way petitboot splits it.
struct Pair<'a> {
    line: usize,
    /// Upper-cased keyword; `None` for a one-word line (petitboot ignores it).
    keyword: Option<String>,
    value: &'a str,
    /// The value before petitboot strips quotes and white space.
    raw_value: &'a str,
}

fn is_strip_char(c: char) -> bool {
    c == '"' || c == '\'' || c.is_whitespace()
}

fn pairs(text: &str) -> impl Iterator<Item = Pair<'_>> {
    text.lines().enumerate().filter_map(|(i, line)| {
        let stripped = line.trim_matches(is_strip_char);
        if stripped.is_empty() {
            return None;
        }
        let (keyword, raw_value) = match stripped.find([' ', '\t']) {
            Some(at) => (Some(&stripped[..at]), &stripped[at + 1..]),
            None => (None, stripped),
        };
        let value = raw_value.trim_matches(is_strip_char);
        let comment = keyword.is_some_and(|k| k.starts_with('#'))
            || (keyword.is_none() && value.starts_with('#'));
        (!comment).then(|| Pair {
            line: i + 1,
            keyword: keyword.map(|k| k.trim_matches(is_strip_char).to_ascii_uppercase()),
            value,
            raw_value: raw_value.trim_matches(char::is_whitespace),
        })
    })
}

/// Parse `text` with petitboot's semantics (unknown keywords dropped).
pub fn parse(text: &str) -> PxeConfig {
    let mut config = PxeConfig::default();
    for pair in pairs(text) {
        let Some(keyword) = pair.keyword else {
            continue;
        };
        if pair.value.starts_with('#') {
            continue;
        }
        let value = Some(pair.value.to_string());
        match keyword.as_str() {
            "DEFAULT" => {
                config.default = value;
                config.default_after_label = !config.labels.is_empty();
            }
            "LABEL" => config.labels.push(Label {
                name: pair.value.to_string(),
                ..Label::default()
            }),
            _ => {
                let Some(label) = config.labels.last_mut() else {
                    continue;
                };
                match keyword.as_str() {
                    "KERNEL" => label.kernel = value,
                    "INITRD" => label.initrd = value,
                    "APPEND" => label.append = value,
                    "FDT" | "DTB" => label.fdt = value,
                    "IPAPPEND" => label.ipappend = value,
                    _ => {}
                }
            }
        }
    }
    // Petitboot drops a label without a kernel.
    config.labels.retain(|l| l.kernel.is_some());
    config
}

/// Everything in `text` that petitboot would misread, ignore or drop.
pub fn lint(text: &str) -> Vec<LintError> {
    let mut errors = Vec::new();
    let mut err = |line: usize, message: String| errors.push(LintError { line, message });
    let mut default: Option<(usize, String)> = None;
    // (line, name, kernel lines seen)
    let mut labels: Vec<(usize, String, usize)> = Vec::new();

    for pair in pairs(text) {
        let line = pair.line;
        let Some(keyword) = pair.keyword.as_deref() else {
            err(
                line,
                format!("{:?} has no value: petitboot ignores the line", pair.value),
            );
            continue;
        };
        if !KNOWN.contains(&keyword) {
            let hint = match keyword {
                "LINUX" => ": write KERNEL (a label with LINUX has no kernel and is dropped)",
                "LOCALBOOT" => ": for local boot, serve no config at all",
                _ => "",
            };
            err(
                line,
                format!("petitboot ignores the keyword {keyword}{hint}"),
            );
            continue;
        }
        let raw = pair.raw_value;
        let value = pair.value;
        if raw.starts_with(['"', '\'']) || raw.ends_with(['"', '\'']) {
            err(
                line,
                format!(
                    "{keyword} value {raw} starts or ends with a quote, which petitboot strips"
                ),
            );
        }
        if value.starts_with('#') {
            err(
                line,
                format!("petitboot skips a {keyword} line whose value starts with '#'"),
            );
            continue;
        }
        if value.contains('#') {
            err(
                line,
                format!(
                    "'#' inside the {keyword} value is not a comment to petitboot: it becomes part of the value"
                ),
            );
        }
        if value.contains("${") {
            err(
                line,
                format!("petitboot does not expand variables such as ${{mac}} in {keyword}"),
            );
        }
        match keyword {
            "DEFAULT" => {
                if let Some((first, _)) = &default {
                    err(line, format!("second DEFAULT (first on line {first})"));
                }
                if !labels.is_empty() {
                    err(line, "DEFAULT after a LABEL: petitboot marks only the labels that follow DEFAULT; write it first".into());
                }
                default = Some((line, value.to_string()));
            }
            "LABEL" => labels.push((line, value.to_string(), 0)),
            _ if labels.is_empty() => {
                err(
                    line,
                    format!("{keyword} before any LABEL is ignored by petitboot"),
                );
            }
            "KERNEL" | "INITRD" | "FDT" | "DTB" => {
                if keyword == "KERNEL" {
                    labels.last_mut().expect("checked above").2 += 1;
                }
                if value.contains(char::is_whitespace) {
                    let why = if keyword == "KERNEL" {
                        "kernel arguments belong in APPEND: petitboot takes the whole rest of the KERNEL line as the URL"
                    } else {
                        "petitboot takes the whole rest of the line as one URL"
                    };
                    err(line, format!("{keyword} {value}: {why}"));
                } else if !value.contains("://") {
                    err(
                        line,
                        format!(
                            "{keyword} {value} is relative: petitboot resolves it against the config file's directory; use an absolute http:// or tftp:// URL"
                        ),
                    );
                }
            }
            "APPEND" if value.to_ascii_lowercase().contains("initrd=") => {
                err(line, "APPEND contains \"initrd=\": petitboot takes what follows it as the initrd, even inside a longer word; use INITRD".into());
            }
            "IPAPPEND" if value != "2" => {
                err(
                    line,
                    format!("IPAPPEND {value}: only IPAPPEND 2 (BOOTIF=01-<mac>) is supported"),
                );
            }
            _ => {}
        }
    }

    for (line, name, kernels) in &labels {
        match kernels {
            0 => err(
                *line,
                format!("LABEL {name} has no KERNEL: petitboot drops it"),
            ),
            1 => {}
            n => err(
                *line,
                format!("LABEL {name} has {n} KERNEL lines; petitboot keeps only the last"),
            ),
        }
    }
    match default {
        _ if labels.is_empty() => err(0, "no LABEL: nothing for petitboot to boot".into()),
        None => err(
            0,
            "no DEFAULT: petitboot would show the option but never autoboot it".into(),
        ),
        Some((line, name)) if !labels.iter().any(|(_, l, _)| *l == name) => {
            err(line, format!("DEFAULT {name} names no LABEL"));
        }
        Some(_) => {}
    }
    errors
}

#[cfg(test)]
#[path = "pxeconf_tests.rs"]
mod tests;
