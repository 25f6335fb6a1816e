//! Console logs as tests read them: a node's log is an asciinema cast, read
//! back as text by petitlab's own reader.

use std::path::{Path, PathBuf};

use petitlab::console::cast;

/// Where petitlab logs `node`'s console under the state dir `state`.
pub fn console_path(state: &Path, node: &str) -> PathBuf {
    state.join("console").join(format!("{node}.cast"))
}

/// The text of the console log at `path` (as `asciinema cat` prints it);
/// panics if it is missing or not a cast.
pub fn console_text(path: &Path) -> String {
    match cast::read(path) {
        Ok(log) => cast::render(&log, false),
        Err(e) => panic!("console log {}: {e}", path.display()),
    }
}

/// [`console_text`], or "" while there is no log yet.
pub fn console_text_or_empty(path: &Path) -> String {
    if path.exists() {
        console_text(path)
    } else {
        String::new()
    }
}
