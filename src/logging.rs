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

/// Logs to stderr. Does nothing if a logger is already set.
pub fn to_stderr(verbosity: u8) {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter(verbosity))
        .with_writer(io::stderr)
        .try_init();
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
