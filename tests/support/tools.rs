//! Finding the peers' command-line tools.

use std::path::PathBuf;

/// The tool's path (sbin included: ipmipower lives there, and a user's
/// PATH may lack it), or a failure that says what to install.
pub fn tool(name: &str, install: &str) -> PathBuf {
    let path = std::env::var("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin", "/sbin", "/usr/bin"].map(PathBuf::from))
        .map(|dir| dir.join(name))
        .find(|p| p.is_file())
        .unwrap_or_else(|| panic!("`{name}` is not installed; these tests need it: {install}"))
}
