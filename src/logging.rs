//! Where petitlab's `tracing` logs go: stderr for commands, a file while the
//! dashboard owns the terminal (never over it). The level comes from
//! `RUST_LOG` when set, else from `-v` (warn, info, debug, trace).

use std::fs::OpenOptions;
use std::io;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::Path;

use tracing_subscriber::EnvFilter;

/// A log file over this size is moved to `NAME.1` when the dashboard starts.
pub const MAX_LOG_BYTES: u64 = 8 << 20;

fn filter(verbosity: u8) -> EnvFilter {
    let level = match verbosity {
        0 => "warn",
        1 => "info",
        2 => "debug",
        _ => "trace",
    };
    EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(level))
}

/// Logs to stderr. Does nothing if a logger is already set. Under
/// systemd (stderr is the journal: `JOURNAL_STREAM`), each line carries
/// its syslog priority (`<4>`) and no time or colour: journald adds both.
pub fn to_stderr(verbosity: u8) {
    if std::env::var_os("JOURNAL_STREAM").is_some() {
        let _ = tracing_subscriber::fmt()
            .with_env_filter(filter(verbosity))
            .with_writer(io::stderr)
            .with_ansi(false)
            .event_format(Journald)
            .try_init();
        return;
    }
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter(verbosity))
        .with_writer(io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&io::stderr()))
        .try_init();
}

/// One journal line: `<priority>target: message fields`.
struct Journald;

impl<S, N> tracing_subscriber::fmt::FormatEvent<S, N> for Journald
where
    S: tracing::Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a>,
    N: for<'a> tracing_subscriber::fmt::FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        ctx: &tracing_subscriber::fmt::FmtContext<'_, S, N>,
        mut writer: tracing_subscriber::fmt::format::Writer<'_>,
        event: &tracing::Event<'_>,
    ) -> std::fmt::Result {
        write!(
            writer,
            "<{}>{}: ",
            priority(*event.metadata().level()),
            event.metadata().target()
        )?;
        ctx.field_format().format_fields(writer.by_ref(), event)?;
        writeln!(writer)
    }
}

/// The syslog priority journald files a level under.
fn priority(level: tracing::Level) -> u8 {
    match level {
        tracing::Level::ERROR => 3,
        tracing::Level::WARN => 4,
        tracing::Level::INFO => 6,
        _ => 7,
    }
}

/// Logs to `path` (0600, appended; rotated once past [`MAX_LOG_BYTES`]).
pub fn to_file(path: &Path, verbosity: u8) -> io::Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)?;
    }
    if std::fs::metadata(path).is_ok_and(|m| m.len() > MAX_LOG_BYTES) {
        let mut old = path.as_os_str().to_owned();
        old.push(".1");
        std::fs::rename(path, old)?;
    }
    let file = OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o600)
        .open(path)?;
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter(verbosity))
        .with_ansi(false)
        .with_writer(std::sync::Mutex::new(file))
        .try_init();
    Ok(())
}

/// `$XDG_STATE_HOME/petitlab` (default `~/.local/state/petitlab`), for
/// what belongs to no lab (the demo's dashboard log).
pub fn xdg_state_dir() -> std::path::PathBuf {
    let base = std::env::var_os("XDG_STATE_HOME")
        .filter(|v| !v.is_empty())
        .map(std::path::PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| Path::new(&h).join(".local/state")))
        .unwrap_or_else(std::env::temp_dir);
    base.join("petitlab")
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    #[derive(Clone, Default)]
    struct Buffer(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Buffer {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(bytes);
            Ok(bytes.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn journal_lines_carry_their_priority_and_no_time_or_colour() {
        let buffer = Buffer::default();
        let writer = buffer.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_ansi(false)
            .with_writer(move || writer.clone())
            .event_format(super::Journald)
            .finish();
        tracing::subscriber::with_default(subscriber, || {
            tracing::warn!(node = "n1", "console lost");
            tracing::info!("reloaded");
        });
        let text = String::from_utf8(buffer.0.lock().unwrap().clone()).unwrap();
        assert_eq!(
            text,
            "<4>petitlab::logging::tests: console lost node=\"n1\"\n\
             <6>petitlab::logging::tests: reloaded\n"
        );
    }
}
