//! lab.toml cut down to the nodes a command names: the lab-wide settings
//! plus those nodes' `[[node]]` tables, so that `render n0001` on a lab of
//! 4000 nodes parses a few dozen lines instead of a megabyte.
//!
//! This is a line scan, not a TOML parser: it only cuts where it is sure.
//! Anything it cannot read with certainty (a multi-line string, a line that
//! starts with `[` but is not a plain table header, a node whose name is
//! not a plain string) makes it give up, and the caller parses the whole
//! file as before. A valid file cut here parses to the same settings and
//! the same named nodes as the whole file.

use std::collections::HashSet;

/// What one line of lab.toml is, as far as cutting goes.
#[derive(Debug, PartialEq, Eq)]
enum Line<'a> {
    /// `[[node]]`: a node starts.
    NodeStart,
    /// `[node.bmc]`, `[[node.x]]`: part of the current node.
    NodeTable,
    /// Any other table header: the lab-wide settings resume.
    OtherTable,
    /// `name = …`: the string when it is a plain one.
    Name(Option<&'a str>),
    Other,
    /// Starts with `[` but is not a header this scan can read.
    Unsure,
}

/// The document holding the lab-wide settings and the nodes in `names`,
/// or `None` when the file is not plain enough to cut with certainty or a
/// name matches no node (the caller then parses everything and says so).
pub(super) fn reduce(text: &str, names: &HashSet<String>) -> Option<String> {
    if text.contains("\"\"\"") || text.contains("'''") {
        return None;
    }
    let mut out = String::with_capacity(1024);
    let mut found = HashSet::new();
    // The node being read: its text so far, and whether it is kept.
    let mut node: Option<(usize, Option<bool>)> = None;
    let mut node_text = String::new();
    for line in text.split_inclusive('\n') {
        match classify(line) {
            Line::Unsure => return None,
            Line::NodeStart => {
                flush(&mut out, &mut node_text, node.take())?;
                node = Some((0, None));
                node_text.push_str(line);
            }
            Line::NodeTable if node.is_some() => {
                if let Some((tables, _)) = &mut node {
                    *tables += 1;
                }
                node_text.push_str(line);
            }
            // A node's table before any `[[node]]`: not plain.
            Line::NodeTable => return None,
            Line::OtherTable => {
                flush(&mut out, &mut node_text, node.take())?;
                out.push_str(line);
            }
            Line::Name(name) => match &mut node {
                // The node's own `name`, before its sub-tables.
                Some((0, kept @ None)) => {
                    let name = name?;
                    let keep = names.contains(name);
                    if keep {
                        found.insert(name.to_string());
                    }
                    *kept = Some(keep);
                    node_text.push_str(line);
                }
                Some((0, Some(_))) => return None,
                Some(_) => node_text.push_str(line),
                None => out.push_str(line),
            },
            Line::Other if node.is_some() => node_text.push_str(line),
            Line::Other => out.push_str(line),
        }
    }
    flush(&mut out, &mut node_text, node.take())?;
    (found.len() == names.len()).then_some(out)
}

/// Ends the node being read: kept nodes go out, others are dropped. A node
/// whose name was not read is a reason to give up.
fn flush(
    out: &mut String,
    node_text: &mut String,
    node: Option<(usize, Option<bool>)>,
) -> Option<()> {
    match node {
        None => {}
        Some((_, None)) => return None,
        Some((_, Some(true))) => out.push_str(node_text),
        Some((_, Some(false))) => {}
    }
    node_text.clear();
    Some(())
}

fn classify(line: &str) -> Line<'_> {
    let line = strip_comment(line.trim());
    if line.starts_with('[') {
        return header(line);
    }
    if let Some(rest) = line.strip_prefix("name") {
        let rest = rest.trim_start();
        if let Some(value) = rest.strip_prefix('=') {
            return Line::Name(plain_string(value.trim()));
        }
    }
    Line::Other
}

/// A comment after a header or a plain value (`#` never occurs inside the
/// values this scan reads: they are checked to hold no `#`).
fn strip_comment(line: &str) -> &str {
    if (line.starts_with('[') || line.starts_with("name"))
        && let Some((before, _)) = line.split_once('#')
    {
        return before.trim_end();
    }
    line
}

/// `[a.b]` or `[[a.b]]` with bare keys only.
fn header(line: &str) -> Line<'_> {
    let (inner, array) = match line.strip_prefix("[[").and_then(|l| l.strip_suffix("]]")) {
        Some(inner) => (inner, true),
        None => match line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            Some(inner) => (inner, false),
            None => return Line::Unsure,
        },
    };
    let keys: Vec<&str> = inner.split('.').map(str::trim).collect();
    let bare = |k: &&str| {
        !k.is_empty()
            && k.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
    };
    if !keys.iter().all(bare) {
        return Line::Unsure;
    }
    match (keys.as_slice(), array) {
        (["node"], true) => Line::NodeStart,
        (["node"], false) => Line::Unsure,
        (["node", ..], _) => Line::NodeTable,
        _ => Line::OtherTable,
    }
}

/// `"n0001"` or `'n0001'` without escapes, quotes or `#` inside.
fn plain_string(value: &str) -> Option<&str> {
    let inner = value
        .strip_prefix('"')
        .and_then(|v| v.strip_suffix('"'))
        .or_else(|| value.strip_prefix('\'').and_then(|v| v.strip_suffix('\'')))?;
    (!inner.contains(['"', '\'', '\\', '#'])).then_some(inner)
}

#[cfg(test)]
#[path = "reduce_tests.rs"]
mod tests;
