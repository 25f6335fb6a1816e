//! Mapping a requested path to a file under a served root, refusing every
//! way out of it: `..`, encoded forms of it (the caller decodes first),
//! absolute paths, NUL bytes, and symlinks that point outside the root.

use std::fs::{File, Metadata, OpenOptions};
use std::io;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Component, Path, PathBuf};

/// The file `requested` names under `root`, or `None` if the request tries
/// to leave the root or names nothing that exists. `requested` is already
/// decoded (HTTP percent-decoding happens before this).
pub fn resolve(root: &Path, requested: &[u8]) -> Option<PathBuf> {
    if requested.contains(&0) {
        return None;
    }
    let text = std::str::from_utf8(requested).ok()?;
    // Both `/a/b` (HTTP, petitboot's TFTP) and `a/b` name the same file.
    let relative = Path::new(text.trim_start_matches('/'));
    let mut clean = PathBuf::new();
    for part in relative.components() {
        match part {
            Component::Normal(p) => clean.push(p),
            Component::CurDir => {}
            // `..`, a second root or a prefix: an attempt to leave.
            _ => return None,
        }
    }
    if text.contains('\\') {
        return None; // no Windows-style separators sneaking `..\` through
    }
    let root = root.canonicalize().ok()?;
    // Canonicalising follows symlinks, so one pointing out is caught here.
    let full = root.join(&clean).canonicalize().ok()?;
    full.starts_with(&root).then_some(full)
}

/// Opens a path [`resolve`] returned, for reading, with its metadata.
/// `resolve` returns a canonical path, so nothing here follows a link;
/// O_NOFOLLOW refuses one swapped in since, O_NONBLOCK keeps a FIFO from
/// holding the thread. The caller decides what each error means to its
/// client.
pub fn open_resolved(path: &Path) -> io::Result<(File, Metadata)> {
    let file = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
        .open(path)?;
    let meta = file.metadata()?;
    Ok((file, meta))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    #[test]
    fn only_files_inside_the_root_resolve() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("root");
        std::fs::create_dir_all(root.join("pxelinux.cfg")).unwrap();
        std::fs::write(root.join("pxelinux.cfg/01-aa"), b"x").unwrap();
        std::fs::write(dir.path().join("secret"), b"s").unwrap();
        symlink(dir.path().join("secret"), root.join("out")).unwrap();
        symlink(root.join("pxelinux.cfg/01-aa"), root.join("in")).unwrap();

        let ok = root.canonicalize().unwrap().join("pxelinux.cfg/01-aa");
        assert_eq!(resolve(&root, b"/pxelinux.cfg/01-aa"), Some(ok.clone()));
        assert_eq!(resolve(&root, b"pxelinux.cfg/./01-aa"), Some(ok.clone()));
        assert_eq!(resolve(&root, b"in"), Some(ok), "a symlink inside is fine");
        for bad in [
            &b"../secret"[..],
            b"/../secret",
            b"pxelinux.cfg/../../secret",
            b"out",
            b"..\\secret",
            b"pxelinux.cfg/01-aa\0",
            b"missing",
            b"\xff",
        ] {
            assert_eq!(
                resolve(&root, bad),
                None,
                "{}",
                String::from_utf8_lossy(bad)
            );
        }
    }
}
