//! Node ranges: many nodes named at once, in the syntax admins know from
//! xCAT noderange, confluent noderange(5) and freeipmi hostranges. Pure:
//! [`parse`] checks the text, [`NodeRange::resolve`] picks from the nodes
//! the caller passes in; nothing here reads the lab or the store.
//!
//! # Syntax
//!
//! A range is comma-separated terms, read left to right:
//!
//! - `p9-rack1-01`: a node name.
//! - `p9-rack1-[01-20]`, `p9-rack1-[1-3,7,10-12]`: a bracket expansion: a
//!   list of numbers and `LOW-HIGH` ranges. Several brackets multiply out:
//!   `r[1-2]n[01-04]` is r1n01 … r1n04, r2n01 … r2n04. A bound written with
//!   a leading zero pads every number of its range to that bound's width
//!   (`[01-20]` is 01 … 20, `[08-10]` is 08, 09, 10, `[001-100]` is
//!   001 … 100); `[1-20]` is not padded. A bracket term may name nodes the
//!   lab does not have: those are left out.
//! - `group:NAME`: the nodes whose lab.toml `group` is NAME.
//! - `state:NAME`: the nodes in provisioning state NAME (`enroll`,
//!   `manageable`, `available`, `deploying`, `wait-callback`,
//!   `deploy-failed`, `active`, `undeploying`, `cleaning`, `error`).
//! - `all`: every node.
//! - `-TERM`: an exclusion: removes what TERM matches from what the terms
//!   before it matched: `all,-p8-rack2-01`, `group:rack1,-p9-rack1-[03-04]`,
//!   `state:active,-group:lab2`. A range cannot start with one.
//!
//! Several words (CLI arguments) are one range each, and their nodes are
//! added together: `petitlab power off p9-rack1-01 group:rack2`. An
//! exclusion narrows only its own word.
//!
//! The result is each matched node once, in the lab's order. A term that
//! matches no node at all is an error naming it (every such term is named
//! at once), and so is a range whose exclusions leave no node. A range
//! longer than [`MAX_LEN`] bytes, or expanding to more than [`MAX_NAMES`]
//! names, is refused before anything is allocated for it.

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::str::FromStr;

use crate::engine::lifecycle::{ALL_STATES, State};

/// The most names the bracket expansions of one range may produce.
pub const MAX_NAMES: usize = 10_000;
/// The longest range text accepted (all words, with a space between them).
pub const MAX_LEN: usize = 4096;
/// The longest node name (as lab.toml allows).
const MAX_NAME_LEN: usize = 63;
/// Digits in one bracket number: enough for any lab, far from u64 overflow.
const MAX_DIGITS: usize = 9;

/// A parsed range, not yet resolved against a lab.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeRange {
    /// The words as given, joined by spaces: for messages.
    text: String,
    /// One expression per word; the range is their union.
    exprs: Vec<Vec<Term>>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Term {
    exclude: bool,
    /// As written, without the leading `-`: what messages name.
    text: String,
    kind: Kind,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Kind {
    /// A name, or a bracket expansion's names.
    Names(Vec<String>),
    Group(String),
    State(State),
    All,
}

/// One node a range can pick, as the caller knows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Candidate<'a> {
    pub name: &'a str,
    pub group: Option<&'a str>,
    /// `None` when the caller did not load states: `state:` matches nothing.
    pub state: Option<State>,
}

/// What a range picks from the candidates, without judging it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Selection {
    /// Indices into the candidates, ascending (the lab's order), each once.
    pub indices: Vec<usize>,
    /// Terms that matched no candidate, as written (exclusions without `-`).
    pub unmatched: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RangeError {
    /// The text is not a range; `column` counts characters from 1 in `word`.
    #[error("{word:?} column {column}: {problem}")]
    Syntax {
        word: String,
        column: usize,
        problem: String,
    },
    #[error("unknown state {name:?} in state:{name}; states are {}", state_names())]
    UnknownState { name: String },
    /// `count`: the names expanded so far, this word's included.
    #[error("{word:?} expands to {count} names; a range may name at most {MAX_NAMES}")]
    TooLarge { word: String, count: u64 },
    #[error("the range is {len} bytes long; at most {MAX_LEN}")]
    TooLong { len: usize },
    #[error("{} no node", no_match(.terms))]
    NoMatch { terms: Vec<String> },
    #[error("{range} leaves no node")]
    Empty { range: String },
}

fn state_names() -> String {
    ALL_STATES.map(State::name).join(", ")
}

fn no_match(terms: &[String]) -> String {
    let verb = if terms.len() == 1 { "matches" } else { "match" };
    format!("{} {verb}", terms.join(", "))
}

/// Parse one range (one CLI word).
pub fn parse(expr: &str) -> Result<NodeRange, RangeError> {
    parse_words(&[expr])
}

/// Parse several words, each a range; the result is their union.
pub fn parse_words<S: AsRef<str>>(words: &[S]) -> Result<NodeRange, RangeError> {
    let len = words.iter().map(|w| w.as_ref().len() + 1).sum::<usize>();
    let len = len.saturating_sub(1);
    if len > MAX_LEN {
        return Err(RangeError::TooLong { len });
    }
    if words.is_empty() {
        return Err(syntax("", 0, "no node named"));
    }
    let mut budget = MAX_NAMES;
    let exprs = words
        .iter()
        .map(|w| parse_expr(w.as_ref(), &mut budget))
        .collect::<Result<_, _>>()?;
    let text = words
        .iter()
        .map(AsRef::as_ref)
        .collect::<Vec<_>>()
        .join(" ");
    Ok(NodeRange { text, exprs })
}

/// A syntax error at byte `at` of `word`.
fn syntax(word: &str, at: usize, problem: impl Into<String>) -> RangeError {
    RangeError::Syntax {
        word: word.to_string(),
        column: word.get(..at).map_or(at, |s| s.chars().count()) + 1,
        problem: problem.into(),
    }
}

/// One word: terms split at the commas outside brackets.
fn parse_expr(word: &str, budget: &mut usize) -> Result<Vec<Term>, RangeError> {
    let mut spans = Vec::new();
    let mut start = 0;
    let mut open: Option<usize> = None;
    for (i, c) in word.char_indices() {
        match c {
            '[' if open.is_some() => return Err(syntax(word, i, "brackets cannot nest")),
            '[' => open = Some(i),
            ']' if open.is_none() => return Err(syntax(word, i, "']' without a '[' before it")),
            ']' => open = None,
            ',' if open.is_none() => {
                spans.push((start, i));
                start = i + 1;
            }
            _ => {}
        }
    }
    if let Some(at) = open {
        return Err(syntax(word, at, "'[' is never closed"));
    }
    spans.push((start, word.len()));
    let mut terms = Vec::with_capacity(spans.len());
    for (from, to) in spans {
        terms.push(parse_term(word, from, to, terms.is_empty(), budget)?);
    }
    Ok(terms)
}

fn parse_term(
    word: &str,
    from: usize,
    to: usize,
    first: bool,
    budget: &mut usize,
) -> Result<Term, RangeError> {
    let raw = &word[from..to];
    if raw.is_empty() {
        return Err(syntax(word, from, "empty term (a comma too many?)"));
    }
    let (exclude, body, at) = match raw.strip_prefix('-') {
        Some(rest) => (true, rest, from + 1),
        None => (false, raw, from),
    };
    if exclude && body.is_empty() {
        return Err(syntax(word, from, "'-' needs a term to exclude"));
    }
    if exclude && first {
        return Err(syntax(
            word,
            from,
            format!(
                "-{body} excludes from nothing: put it after the terms it narrows (all,-{body})"
            ),
        ));
    }
    let kind = if body == "all" {
        Kind::All
    } else if let Some((prefix, value)) = body.split_once(':') {
        let value_at = at + prefix.len() + 1;
        if value.is_empty() {
            return Err(syntax(word, value_at, format!("{prefix}: needs a name")));
        }
        match prefix {
            "group" => {
                if let Some((i, c)) = value.char_indices().find(|&(_, c)| {
                    c.is_control()
                        || c.is_whitespace()
                        || crate::text::needs_escape(c)
                        || "[]:".contains(c)
                }) {
                    return Err(syntax(
                        word,
                        value_at + i,
                        format!("{c:?} cannot be in a group name here"),
                    ));
                }
                Kind::Group(value.to_string())
            }
            "state" => match State::from_str(value) {
                Ok(state) => Kind::State(state),
                Err(_) => {
                    return Err(RangeError::UnknownState {
                        name: crate::text::display_safe(value).into_owned(),
                    });
                }
            },
            _ => {
                return Err(syntax(
                    word,
                    at,
                    format!("unknown prefix {prefix:?}: use group:NAME or state:NAME"),
                ));
            }
        }
    } else {
        Kind::Names(expand(word, at, body, budget)?)
    };
    Ok(Term {
        exclude,
        text: body.to_string(),
        kind,
    })
}

/// A node name with brackets (at byte `at` of `word`) into its names.
fn expand(
    word: &str,
    at: usize,
    body: &str,
    budget: &mut usize,
) -> Result<Vec<String>, RangeError> {
    // Literal text and bracket lists, alternating as written.
    let mut parts: Vec<Vec<String>> = Vec::new();
    let mut count: u64 = 1;
    let mut literal = String::new();
    let mut rest = body;
    let mut pos = at;
    while let Some(c) = rest.chars().next() {
        if c == '[' {
            let close = rest.find(']').expect("brackets were matched");
            let inner = &rest[1..close];
            let list = bracket(word, pos + 1, inner)?;
            parts.push(vec![std::mem::take(&mut literal)]);
            count = count.saturating_mul(list.iter().map(Item::len).sum());
            check_budget(word, count, *budget)?;
            parts.push(list.iter().flat_map(Item::numbers).collect());
            pos += close + 1;
            rest = &rest[close + 1..];
        } else if c.is_ascii_alphanumeric() || "-_.".contains(c) {
            literal.push(c);
            pos += 1;
            rest = &rest[1..];
        } else {
            return Err(syntax(
                word,
                pos,
                format!("{c:?} cannot be in a node name (letters, digits, '-', '_', '.')"),
            ));
        }
    }
    parts.push(vec![literal]);
    check_budget(word, count, *budget)?;
    // Node names are at most 63 bytes: longer ones (say `n[0][0][0]…`)
    // could name nothing, and would cost count × length to build.
    let longest: usize = parts
        .iter()
        .map(|p| p.iter().map(String::len).max().unwrap_or(0))
        .sum();
    if longest > MAX_NAME_LEN {
        return Err(syntax(
            word,
            at,
            format!("names {longest} characters long are not node names (at most {MAX_NAME_LEN})"),
        ));
    }
    *budget -= count as usize;
    // Every combination, the last part turning fastest (an odometer).
    let mut names = Vec::with_capacity(count as usize);
    let mut digits = vec![0usize; parts.len()];
    loop {
        names.push(
            parts
                .iter()
                .zip(&digits)
                .map(|(p, &d)| p[d].as_str())
                .collect(),
        );
        let Some(k) = (0..parts.len())
            .rev()
            .find(|&k| digits[k] + 1 < parts[k].len())
        else {
            return Ok(names);
        };
        digits[k] += 1;
        digits[k + 1..].fill(0);
    }
}

/// `count` more names must fit in the `budget` left.
fn check_budget(word: &str, count: u64, budget: usize) -> Result<(), RangeError> {
    if count > budget as u64 {
        return Err(RangeError::TooLarge {
            word: word.to_string(),
            count: count.saturating_add((MAX_NAMES - budget) as u64),
        });
    }
    Ok(())
}

/// One item of a bracket list.
enum Item<'a> {
    /// Written as is.
    One(&'a str),
    Span {
        low: u64,
        high: u64,
        width: usize,
    },
}

impl Item<'_> {
    fn len(&self) -> u64 {
        match self {
            Item::One(_) => 1,
            Item::Span { low, high, .. } => high - low + 1,
        }
    }

    fn numbers(&self) -> Vec<String> {
        match *self {
            Item::One(text) => vec![text.to_string()],
            Item::Span { low, high, width } => {
                (low..=high).map(|n| format!("{n:0width$}")).collect()
            }
        }
    }
}

/// The inside of `[…]`, at byte `at` of `word`.
fn bracket<'a>(word: &str, at: usize, inner: &'a str) -> Result<Vec<Item<'a>>, RangeError> {
    if inner.is_empty() {
        return Err(syntax(word, at, "empty brackets"));
    }
    let mut items = Vec::new();
    let mut pos = at;
    for text in inner.split(',') {
        let item = match text.split_once('-') {
            None => {
                number(word, pos, text)?;
                Item::One(text)
            }
            Some((low_text, high_text)) => {
                if low_text.is_empty() {
                    return Err(syntax(
                        word,
                        pos,
                        format!("range -{high_text} has no start"),
                    ));
                }
                let high_at = pos + low_text.len() + 1;
                if high_text.is_empty() {
                    return Err(syntax(
                        word,
                        high_at,
                        format!("range {low_text}- has no end"),
                    ));
                }
                let low = number(word, pos, low_text)?;
                let high = number(word, high_at, high_text)?;
                if low > high {
                    return Err(syntax(
                        word,
                        pos,
                        format!("range {text} runs backwards (write {high_text}-{low_text})"),
                    ));
                }
                let padded = |t: &str| {
                    if t.len() > 1 && t.starts_with('0') {
                        t.len()
                    } else {
                        0
                    }
                };
                Item::Span {
                    low,
                    high,
                    width: padded(low_text).max(padded(high_text)),
                }
            }
        };
        items.push(item);
        pos += text.len() + 1;
    }
    Ok(items)
}

fn number(word: &str, at: usize, text: &str) -> Result<u64, RangeError> {
    if text.is_empty() {
        return Err(syntax(
            word,
            at,
            "empty item in brackets (a comma too many?)",
        ));
    }
    if let Some((i, c)) = text.char_indices().find(|(_, c)| !c.is_ascii_digit()) {
        return Err(syntax(
            word,
            at + i,
            format!("{c:?} in brackets: they hold numbers and ranges, like [01-20,25]"),
        ));
    }
    if text.len() > MAX_DIGITS {
        return Err(syntax(
            word,
            at,
            format!("{text} has more than {MAX_DIGITS} digits"),
        ));
    }
    Ok(text.parse().expect("checked digits"))
}

impl NodeRange {
    /// What the range picks from `nodes`, and the terms that matched none.
    pub fn select(&self, nodes: &[Candidate<'_>]) -> Selection {
        let by_name: HashMap<&str, usize> =
            nodes.iter().enumerate().map(|(i, n)| (n.name, i)).collect();
        let mut picked = vec![false; nodes.len()];
        let mut unmatched = Vec::new();
        let mut matched = Vec::new();
        for expr in &self.exprs {
            let mut here = vec![false; nodes.len()];
            for term in expr {
                matched.clear();
                match &term.kind {
                    Kind::Names(names) => {
                        matched.extend(names.iter().filter_map(|n| by_name.get(n.as_str())));
                    }
                    Kind::Group(g) => matched
                        .extend((0..nodes.len()).filter(|&i| nodes[i].group == Some(g.as_str()))),
                    Kind::State(s) => {
                        matched.extend((0..nodes.len()).filter(|&i| nodes[i].state == Some(*s)));
                    }
                    Kind::All => matched.extend(0..nodes.len()),
                }
                if matched.is_empty() && !unmatched.contains(&term.text) {
                    unmatched.push(term.text.clone());
                }
                for &i in &matched {
                    here[i] = !term.exclude;
                }
            }
            for (p, h) in picked.iter_mut().zip(here) {
                *p |= h;
            }
        }
        Selection {
            indices: (0..nodes.len()).filter(|&i| picked[i]).collect(),
            unmatched,
        }
    }

    /// The names of the nodes the range picks, in `nodes`' order; an error
    /// when a term matches none of them or nothing is left.
    pub fn resolve(&self, nodes: &[Candidate<'_>]) -> Result<Vec<String>, RangeError> {
        let selection = self.select(nodes);
        if !selection.unmatched.is_empty() {
            return Err(RangeError::NoMatch {
                terms: selection.unmatched,
            });
        }
        if selection.indices.is_empty() {
            return Err(RangeError::Empty {
                range: self.text.clone(),
            });
        }
        Ok(selection
            .indices
            .iter()
            .map(|&i| nodes[i].name.to_string())
            .collect())
    }

    /// The names the range can name without the lab, in the order written,
    /// each once: `Some` only when it has nothing but names and brackets
    /// (no `group:`, `state:`, `all` or exclusion). Lets a command load only
    /// those nodes of a large lab.
    pub fn literal_names(&self) -> Option<Vec<String>> {
        let mut seen = HashSet::new();
        let mut out = Vec::new();
        for term in self.exprs.iter().flatten() {
            let Kind::Names(names) = &term.kind else {
                return None;
            };
            if term.exclude {
                return None;
            }
            for n in names {
                if seen.insert(n.as_str()) {
                    out.push(n.clone());
                }
            }
        }
        Some(out)
    }

    /// The one node the range names, when it is a plain name and nothing else.
    pub fn single_name(&self) -> Option<&str> {
        match self.exprs.as_slice() {
            [expr] => match expr.as_slice() {
                [term] if !term.text.contains('[') => match &term.kind {
                    Kind::Names(names) if names.len() == 1 && !term.exclude => Some(&names[0]),
                    _ => None,
                },
                _ => None,
            },
            _ => None,
        }
    }

    /// True when a `state:` term needs the nodes' states to resolve.
    pub fn needs_state(&self) -> bool {
        self.exprs
            .iter()
            .flatten()
            .any(|t| matches!(t.kind, Kind::State(_)))
    }
}

impl fmt::Display for NodeRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

#[cfg(test)]
#[path = "range_tests.rs"]
mod tests;
