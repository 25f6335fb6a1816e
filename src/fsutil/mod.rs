//! Crash-safe file operations: every file petitlab publishes appears whole or
//! not at all (temp file in the same directory, fsync, rename, fsync dir).
//!
//! Every operation takes the root it works under (a served root, a dnsmasq
//! directory, the state dir) and never follows a symlink below it: a linked
//! directory is refused naming the link ([`SymlinkRefused`]); a link where a
//! file goes is replaced by rename or removed as a link, never followed.

mod beneath;

use std::ffi::OsString;
use std::fs::File;
use std::io::{self, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use rustix::fs::{AtFlags, Mode, OFlags};

use beneath::Beneath;
pub use beneath::SymlinkRefused;

/// Marker in temp-file names, so a later run can recognise and sweep them.
const TEMP_MARKER: &str = ".petitlab-tmp.";

static TEMP_COUNTER: AtomicU64 = AtomicU64::new(0);

/// A temp name beside `name` (same directory, so rename is atomic).
fn temp_name_for(name: &OsString) -> OsString {
    let n = TEMP_COUNTER.fetch_add(1, Ordering::Relaxed);
    let name = name.to_string_lossy();
    OsString::from(format!(".{name}{TEMP_MARKER}{}.{n}", std::process::id()))
}

/// A new file `name` in `dir`: never an existing one, never through a link.
fn create_new(dir: &OwnedFd, name: &OsString, mode: u32) -> io::Result<File> {
    let flags = OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC;
    let fd = rustix::fs::openat(dir, name, flags, Mode::from_raw_mode(mode))?;
    Ok(File::from(fd))
}

/// fsync a directory so a rename or unlink in it survives a power cut.
fn sync_dir(dir: &OwnedFd) -> io::Result<()> {
    Ok(rustix::fs::fsync(dir)?)
}

/// Renames `temp` over `name` in `dir` (replacing a link, never following
/// it) and syncs the directory; the temp is removed if that fails.
fn publish(dir: &OwnedFd, temp: &OsString, name: &OsString) -> io::Result<()> {
    let result = rustix::fs::renameat(dir, temp, dir, name)
        .map_err(io::Error::from)
        .and_then(|()| sync_dir(dir));
    if result.is_err() {
        let _ = rustix::fs::unlinkat(dir, temp, AtFlags::empty());
    }
    result
}

/// The directory holding `target` under `root`, created if missing.
fn dir_for_writing(at: &Beneath<'_>) -> io::Result<OwnedFd> {
    at.open_dir(true)?
        .ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, "directory vanished"))
}

/// Replace `target` (under `root`) with `contents` atomically; creates
/// parent directories.
pub fn write_atomic(root: &Path, target: &Path, contents: &[u8], mode: u32) -> io::Result<()> {
    let at = Beneath::new(root, target)?;
    let dir = dir_for_writing(&at)?;
    let temp = temp_name_for(&at.name);
    let written = (|| {
        let mut file = create_new(&dir, &temp, mode)?;
        file.write_all(contents)?;
        file.sync_all()
    })();
    if let Err(e) = written {
        let _ = rustix::fs::unlinkat(&dir, &temp, AtFlags::empty());
        return Err(e);
    }
    publish(&dir, &temp, &at.name)
}

/// How an artifact reached the served tree.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum StageMethod {
    Link,
    Copy,
}

/// Publish `source` at `target` (under `root`) atomically: a hard link when
/// source and target share a filesystem, else a full copy. Symlinks in
/// `source` are resolved first so the served file is never a link out of
/// the tree.
pub fn stage_file(source: &Path, root: &Path, target: &Path) -> io::Result<StageMethod> {
    use std::os::unix::fs::MetadataExt;
    let source = std::fs::canonicalize(source)?;
    let at = Beneath::new(root, target)?;
    let dir = dir_for_writing(&at)?;
    // Already linked: done. (Renaming a second link to the same inode over
    // it would be a no-op that leaves the temp link behind.)
    let s = std::fs::metadata(&source)?;
    if let Ok(t) = rustix::fs::statat(&dir, &at.name, AtFlags::SYMLINK_NOFOLLOW)
        && (s.dev(), s.ino()) == (t.st_dev, t.st_ino)
    {
        return Ok(StageMethod::Link);
    }
    let temp = temp_name_for(&at.name);
    let method = match beneath::link_into(&source, &dir, &temp) {
        Ok(()) => StageMethod::Link,
        Err(_) => {
            if let Err(e) = copy_synced(&source, s.mode() & 0o777, &dir, &temp) {
                let _ = rustix::fs::unlinkat(&dir, &temp, AtFlags::empty());
                return Err(e);
            }
            StageMethod::Copy
        }
    };
    publish(&dir, &temp, &at.name)?;
    Ok(method)
}

fn copy_synced(source: &Path, mode: u32, dir: &OwnedFd, temp: &OsString) -> io::Result<()> {
    let mut from = File::open(source)?;
    let mut to = create_new(dir, temp, mode)?;
    io::copy(&mut from, &mut to)?;
    to.sync_all()
}

/// Remove a file (under `root`); a file that is already gone counts as
/// removed. A symlink there is removed as a link. Returns whether something
/// was actually removed.
pub fn remove_if_present(root: &Path, path: &Path) -> io::Result<bool> {
    let at = Beneath::new(root, path)?;
    let Some(dir) = at.open_dir(false)? else {
        return Ok(false);
    };
    match rustix::fs::unlinkat(&dir, &at.name, AtFlags::empty()) {
        Ok(()) => {
            sync_dir(&dir)?;
            Ok(true)
        }
        Err(rustix::io::Errno::NOENT) => Ok(false),
        Err(e) => Err(e.into()),
    }
}

/// Remove `dir` (under `root`, never `root` itself) if it exists and is
/// empty; anything else is left alone.
pub fn remove_dir_if_empty(root: &Path, dir: &Path) -> io::Result<()> {
    if dir == root {
        return Ok(());
    }
    let at = Beneath::new(root, dir)?;
    let Some(parent) = at.open_dir(false)? else {
        return Ok(());
    };
    match rustix::fs::unlinkat(&parent, &at.name, AtFlags::REMOVEDIR) {
        Ok(()) => Ok(()),
        Err(rustix::io::Errno::NOENT | rustix::io::Errno::NOTEMPTY | rustix::io::Errno::EXIST) => {
            Ok(())
        }
        Err(rustix::io::Errno::NOTDIR) if beneath::is_symlink(&parent, &at.name)? => {
            Err(io::Error::other(SymlinkRefused {
                path: at.path(),
                root: root.to_path_buf(),
            }))
        }
        Err(e) => Err(e.into()),
    }
}

/// What is at `path` (under `root`), not following a final symlink.
#[derive(Debug)]
pub enum Found {
    Absent,
    Symlink,
    /// A regular file, opened for reading.
    File(File),
    /// A directory, FIFO, device…: not something petitlab wrote.
    Other,
}

/// Opens `path` (under `root`) for reading without following any symlink.
pub fn open_beneath(root: &Path, path: &Path) -> io::Result<Found> {
    let at = Beneath::new(root, path)?;
    let Some(dir) = at.open_dir(false)? else {
        return Ok(Found::Absent);
    };
    // O_NONBLOCK: a FIFO planted there must not hang us.
    let flags = OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::CLOEXEC;
    match rustix::fs::openat(&dir, &at.name, flags, Mode::empty()) {
        Ok(fd) => {
            let st = rustix::fs::fstat(fd.as_fd())?;
            if rustix::fs::FileType::from_raw_mode(st.st_mode) != rustix::fs::FileType::RegularFile
            {
                return Ok(Found::Other);
            }
            // Back to blocking reads.
            rustix::fs::fcntl_setfl(&fd, OFlags::empty())?;
            Ok(Found::File(File::from(fd)))
        }
        Err(rustix::io::Errno::NOENT) => Ok(Found::Absent),
        // O_NOFOLLOW on a final symlink.
        Err(rustix::io::Errno::LOOP) => Ok(Found::Symlink),
        Err(e) => Err(e.into()),
    }
}

/// Delete temp files that a killed petitlab process left in `dir` (under
/// `root`): those whose writer pid is no longer running.
pub fn sweep_stale_temps(root: &Path, dir: &Path) -> io::Result<usize> {
    let Some(fd) = beneath::open_dir(root, dir, false)? else {
        return Ok(0);
    };
    let mut stale = Vec::new();
    for entry in rustix::fs::Dir::read_from(&fd)? {
        let entry = entry?;
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some(pid) = temp_writer_pid(&name) else {
            continue;
        };
        if pid != std::process::id() && !Path::new(&format!("/proc/{pid}")).exists() {
            stale.push(name);
        }
    }
    for name in &stale {
        match rustix::fs::unlinkat(&fd, name.as_str(), AtFlags::empty()) {
            Ok(()) | Err(rustix::io::Errno::NOENT) => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(stale.len())
}

/// Sweeps each directory at most once: a batch over many nodes writes
/// into the same few directories.
#[derive(Default)]
pub struct Sweeper {
    swept: std::sync::Mutex<std::collections::HashSet<PathBuf>>,
}

impl Sweeper {
    pub fn sweep(&self, root: &Path, dir: &Path) -> io::Result<()> {
        let mut swept = self.swept.lock().unwrap_or_else(|e| e.into_inner());
        if !swept.contains(dir) {
            sweep_stale_temps(root, dir)?;
            swept.insert(dir.to_path_buf());
        }
        Ok(())
    }
}

/// The writer pid encoded in a temp-file name, if `name` is one of ours.
fn temp_writer_pid(name: &str) -> Option<u32> {
    let rest = &name[name.find(TEMP_MARKER)? + TEMP_MARKER.len()..];
    rest.split('.').next()?.parse().ok()
}

#[cfg(test)]
mod tests;
