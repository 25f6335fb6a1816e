//! Everything the CLI prints goes through here, for two reasons.
//!
//! A closed stdout: Rust ignores SIGPIPE, so writing to a pipe whose reader
//! has gone (`petitlab deploy n1 | head -1`) fails with EPIPE, and
//! `println!` turns that into a panic that would abandon a deploy halfway.
//! Here the first failed write marks stdout closed and later output is
//! dropped: an action runs to its end (the audit log has everything) and
//! its exit status still says how it went; a read-only command finishes
//! quietly with the status it would have had. Writes to stderr never fail.
//!
//! Text from outside: everything printed is passed through
//! [`petitlab::text::display_safe_lines`] (JSON through `json_safe`), so an
//! agent's or a BMC's words cannot drive the admin's terminal. That keeps
//! newlines (an inventory problem quoting TOML spans lines); a field from
//! outside that must stay on its line is escaped whole with
//! [`petitlab::text::display_safe`] (see [`safe`]) where it is formatted.

use std::fmt::Display;
use std::io::{ErrorKind, Write};
use std::sync::atomic::{AtomicBool, Ordering};

use petitlab::text::{display_safe, display_safe_lines, json_safe};

static STDOUT_CLOSED: AtomicBool = AtomicBool::new(false);

/// `println!` for the CLI: one line, escaped, dropped once stdout is closed.
macro_rules! outln {
    ($($arg:tt)*) => { $crate::cli::out::line(format_args!($($arg)*)) };
}

/// `eprintln!` for the CLI: one line to stderr, escaped, never failing.
macro_rules! errln {
    ($($arg:tt)*) => { $crate::cli::out::err_line(format_args!($($arg)*)) };
}

pub(crate) use errln;
pub(crate) use outln;

/// Whether a write to stdout has failed (its reader went away).
pub fn stdout_closed() -> bool {
    STDOUT_CLOSED.load(Ordering::Relaxed)
}

/// Writes `bytes` to stdout unless it is closed; a failure closes it.
/// Returns whether stdout is still open.
pub fn raw(bytes: &[u8]) -> bool {
    if stdout_closed() {
        return false;
    }
    let mut out = std::io::stdout().lock();
    match out.write_all(bytes).and_then(|()| out.flush()) {
        Ok(()) => true,
        Err(e) => {
            STDOUT_CLOSED.store(true, Ordering::Relaxed);
            // A reader going away is normal; anything else (a full disk
            // under a redirection) is worth a word.
            if e.kind() != ErrorKind::BrokenPipe {
                err_line(format_args!(
                    "petitlab: writing to stdout: {e}; output dropped"
                ));
            }
            false
        }
    }
}

/// A field from outside (a reason, a detail, a BMC's string), escaped whole:
/// it stays on its line.
pub fn safe(field: &str) -> std::borrow::Cow<'_, str> {
    display_safe(field)
}

/// A line of text on stdout, its control and bidi characters escaped.
pub fn line(text: impl Display) {
    if stdout_closed() {
        return;
    }
    let mut text = display_safe_lines(&text.to_string()).into_owned();
    text.push('\n');
    raw(text.as_bytes());
}

/// Multi-line text (a rendered config) as it is, but for its control and
/// bidi characters.
pub fn text(text: &str) {
    raw(display_safe_lines(text).as_bytes());
}

/// A value as indented JSON on stdout.
pub fn json_pretty(value: &impl serde::Serialize) -> anyhow::Result<()> {
    let mut text = serde_json::to_string_pretty(value)?;
    text.push('\n');
    raw(json_safe(&text).as_bytes());
    Ok(())
}

/// A value as one line of JSON on stdout (a stream of events).
pub fn json_line(value: &impl serde::Serialize) -> anyhow::Result<()> {
    let mut text = serde_json::to_string(value)?;
    text.push('\n');
    raw(json_safe(&text).as_bytes());
    Ok(())
}

/// One line on stderr, escaped; a failed write is ignored (there is
/// nowhere left to say so).
pub fn err_line(text: impl Display) {
    let mut text = display_safe_lines(&text.to_string()).into_owned();
    text.push('\n');
    let _ = std::io::stderr().lock().write_all(text.as_bytes());
}
