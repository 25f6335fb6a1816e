//! The console engine for nodes' Serial-over-LAN consoles. I/O-free except
//! for the log file; the SOL transport and the TUI live elsewhere.
//!
//! - [`screen`]: a node's virtual terminal (vt100) with bounded scrollback,
//!   for tui-term's `PseudoTerminal`.
//! - [`log`]: the node's console log file, an asciinema cast with the
//!   output's timing: 0600, rotated, secrets redacted (by [`redact`]).
//! - [`cast`]: reads casts back as text, optionally with times.
//! - [`stages`]: boot-stage detection (firmware → petitboot → config fetched
//!   → kexec → kernel → login prompt, and failures), on text split into
//!   lines by [`lines`].
//! - [`escape`]: `~.` / `~B` / `~?` escapes typed in `petitlab console`.
//! - [`gap`]: stretches without a console, marked in the log and the pane.
//! - [`deactivate`]: frees a SOL payload a killed console left active (the
//!   one module here that talks to a BMC).

pub mod cast;
pub mod deactivate;
pub mod escape;
pub mod gap;
pub mod lines;
pub mod log;
pub mod redact;
pub mod screen;
pub mod stages;
pub mod token;

pub use escape::{Action, EscapeMachine};
pub use gap::{Gap, GapTracker};

/// One node's console log: large enough for many boots, small enough to keep.
pub const LOG_LIMITS: LogLimits = LogLimits {
    max_bytes: 8 << 20,
    keep: 3,
};

/// Where a node's console log (an asciinema v2 cast, see [`cast`]) lives
/// (`petitlab console --log` follows it).
pub fn log_path(lab: &crate::inventory::Lab, node: &crate::inventory::Node) -> std::path::PathBuf {
    lab.state_dir
        .join("console")
        .join(format!("{}.cast", node.name))
}
pub use log::{ConsoleLog, LogLimits};
pub use redact::Redactor;
pub use screen::ConsoleScreen;
pub use stages::{Stage, StageDetector, StageEvent, StagePattern, StagePatternError};

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Compiled once: regex compilation dominates in debug builds.
    static DETECTOR: std::sync::LazyLock<StageDetector> =
        std::sync::LazyLock::new(|| StageDetector::new(&[]).unwrap());

    #[test]
    fn engine_parts_can_move_between_tasks() {
        fn send<T: Send + 'static>() {}
        send::<ConsoleScreen>();
        send::<StageDetector>();
        send::<ConsoleLog>();
        send::<EscapeMachine>();
    }

    /// Bytes that drive the parsers' interesting paths: escape-sequence
    /// material, line ends, the escape key, backspace, lead bytes of wide
    /// (CJK) characters and box drawing.
    const SPECIAL: &[u8] = b"\x1b[?;\r\n~\x08\x079\xe4\xb8\xad\xe2\x94\x9b\xff\x80";

    /// Half the bytes random, half special (cheaper to generate than a
    /// per-byte union strategy).
    fn biased(raw: Vec<u8>) -> Vec<u8> {
        raw.iter()
            .map(|&b| {
                if b < 0x80 {
                    b
                } else {
                    SPECIAL[usize::from(b) % SPECIAL.len()]
                }
            })
            .collect()
    }

    proptest! {
        /// Arbitrary input never panics anywhere in the engine.
        #[test]
        fn random_bytes_never_panic(
            input in proptest::collection::vec(any::<u8>(), 0..1600).prop_map(biased),
            sizes in proptest::collection::vec(1usize..300, 1..8),
            rows in 0u16..80,
            cols in 0u16..200,
        ) {
            let mut screen = ConsoleScreen::new(rows, cols, 50);
            let mut detector = DETECTOR.clone();
            let mut escape = EscapeMachine::new();
            let mut redactor = Redactor::new(&["~~", "\x1b["]);
            let mut out = Vec::new();
            let mut rest = &input[..];
            for &n in sizes.iter().cycle() {
                if rest.is_empty() {
                    break;
                }
                let (chunk, tail) = rest.split_at(n.min(rest.len()));
                rest = tail;
                screen.feed(chunk);
                let _ = screen.contents();
                screen.set_scrollback(usize::from(rows));
                detector.feed(chunk);
                escape.feed(chunk);
                redactor.push(chunk, &mut out);
                screen.resize(cols, rows);
            }
            redactor.finish(&mut out);
        }
    }
}
