//! What a prepare step wrote, so its clean-up removes exactly that.
//!
//! A manifest is written *before* the files it lists (so a crash mid-prepare
//! still leaves a clean-up able to find them), and removed last by clean-up.
//! Configs are recorded with their content: a config that another step (or
//! an admin) has since replaced is not ours to remove.

use std::io;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::fsutil;

#[derive(Debug, Default, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    pub files: Vec<Entry>,
    /// Whether this step set the node's DHCP options.
    pub dhcp: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    pub path: PathBuf,
    /// For configs: the exact content written. `None` for staged artifacts.
    pub content: Option<String>,
}

pub enum Removal {
    Removed,
    Absent,
    Kept(String),
}

impl Entry {
    /// Remove the file (under `root`) if it is still what we wrote. Nothing
    /// is read or removed through a symlinked directory under `root`; a
    /// symlink where a config was is not what we wrote.
    pub fn remove(&self, root: &Path) -> io::Result<Removal> {
        if let Some(expected) = &self.content {
            match fsutil::open_beneath(root, &self.path)? {
                fsutil::Found::Absent => return Ok(Removal::Absent),
                fsutil::Found::Symlink => {
                    return Ok(Removal::Kept(
                        "a symlink now, not the file this step wrote".into(),
                    ));
                }
                fsutil::Found::Other => {
                    return Ok(Removal::Kept("not a regular file any more".into()));
                }
                fsutil::Found::File(mut file) => {
                    let mut actual = Vec::new();
                    io::Read::read_to_end(&mut file, &mut actual)?;
                    if actual != expected.as_bytes() {
                        return Ok(Removal::Kept("replaced since this step wrote it".into()));
                    }
                }
            }
        }
        Ok(match fsutil::remove_if_present(root, &self.path)? {
            true => Removal::Removed,
            false => Removal::Absent,
        })
    }
}

impl Manifest {
    /// Entries of `self` that `newer` no longer lists (e.g. a MAC that changed).
    pub fn minus(&self, newer: &Manifest) -> Vec<Entry> {
        self.files
            .iter()
            .filter(|e| !newer.files.iter().any(|n| n.path == e.path))
            .cloned()
            .collect()
    }

    /// Everything in either manifest: what may exist while a prepare runs.
    pub fn union(&self, newer: &Manifest) -> Manifest {
        let mut files = newer.files.clone();
        files.extend(self.minus(newer));
        Manifest {
            files,
            dhcp: self.dhcp || newer.dhcp,
        }
    }
}

pub fn read(path: &Path) -> io::Result<Option<Manifest>> {
    match std::fs::read(path) {
        Ok(bytes) => serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

/// Writes the manifest at `path`, under `root` (the state dir).
pub fn write(root: &Path, path: &Path, manifest: &Manifest) -> io::Result<()> {
    let json = serde_json::to_vec_pretty(manifest).map_err(io::Error::other)?;
    fsutil::write_atomic(root, path, &json, 0o600)
}
