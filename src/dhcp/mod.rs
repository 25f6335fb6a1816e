//! DHCP options for petitboot clients: option 209 (config file) and 210
//! (path prefix). Petitboot joins them by plain concatenation, so 210 ends
//! with `/` and 209 never starts with one. Option 67 is never sent: it would
//! add a second, non-default TFTP boot option.

mod dnsmasq;

use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::inventory::{Dhcp, Node};

pub use dnsmasq::Dnsmasq;

/// The options a node's DHCP offer must carry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DhcpOptions {
    /// Option 209 (pxeconffile), relative to 210.
    pub conf_file: String,
    /// Option 210 (pxepathprefix), an absolute URL ending in `/`.
    pub path_prefix: String,
}

impl DhcpOptions {
    /// The URL petitboot fetches: 210 and 209 concatenated, exactly as it does.
    pub fn config_url(&self) -> String {
        format!("{}{}", self.path_prefix, self.conf_file)
    }
}

/// A file a provider would write, for previews.
#[derive(Debug, Clone, Serialize)]
pub struct PlannedFile {
    pub path: PathBuf,
    pub content: String,
}

#[derive(Debug, thiserror::Error)]
pub enum DhcpError {
    #[error("cannot {action} {}: {source}", .path.display())]
    Io {
        action: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
}

/// Keeps a DHCP server's per-node options in step with the lab.
pub trait DhcpProvider: Send + Sync {
    /// The files (and contents) that make the server offer `options` to
    /// every MAC of `node`; [`write_planned`] writes them. Nothing is written here.
    fn plan(&self, node: &Node, options: &DhcpOptions) -> Vec<PlannedFile>;

    /// Stop offering the node's options.
    fn release(&self, node: &Node) -> Result<Released, DhcpError>;
}

/// What releasing a node's options did to the DHCP server's files.
#[derive(Debug, Default, Clone, Serialize)]
pub struct Released {
    /// Files rewritten so the server stops offering the options.
    pub rewritten: Vec<PathBuf>,
    pub removed: Vec<PathBuf>,
}

/// `[dhcp] backend = "none"`: the admin configures DHCP by hand.
pub struct NoDhcp;

impl DhcpProvider for NoDhcp {
    fn plan(&self, _: &Node, _: &DhcpOptions) -> Vec<PlannedFile> {
        Vec::new()
    }

    fn release(&self, _: &Node) -> Result<Released, DhcpError> {
        Ok(Released::default())
    }
}

/// Write planned files atomically, in order. Returns the files written.
pub fn write_planned(files: &[PlannedFile]) -> Result<Vec<PathBuf>, DhcpError> {
    for file in files {
        write_file(&file.path, &file.content)?;
    }
    Ok(files.iter().map(|f| f.path.clone()).collect())
}

/// Atomically (dot-named temp file, which dnsmasq ignores, then rename).
/// The file's directory (dnsmasq's hostsdir or optsdir) is its root: a
/// symlink planted where the file goes is replaced, never followed.
fn write_file(path: &Path, content: &str) -> Result<(), DhcpError> {
    let root = path.parent().unwrap_or(Path::new("/"));
    crate::fsutil::write_atomic(root, path, content.as_bytes(), 0o644).map_err(|source| {
        DhcpError::Io {
            action: "write",
            path: path.to_path_buf(),
            source,
        }
    })
}

pub fn provider_for(dhcp: &Dhcp) -> Box<dyn DhcpProvider> {
    match dhcp {
        Dhcp::None => Box::new(NoDhcp),
        Dhcp::Dnsmasq { hostsdir, optsdir } => Box::new(Dnsmasq::new(hostsdir, optsdir)),
    }
}
