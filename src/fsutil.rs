//! Crash-safe file operations: every file petitlab publishes appears whole or
//! not at all (temp file in the same directory, fsync, rename, fsync dir).

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

/// Marker in temp-file names, so a later run can recognise and sweep them.
const TEMP_MARKER: &str = ".petitlab-tmp.";

static TEMP_COUNTER: AtomicU64 = AtomicU64::new(0);

/// A temp path beside `target` (same directory, so rename is atomic).
fn temp_path_for(target: &Path) -> PathBuf {
    let name = target
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let n = TEMP_COUNTER.fetch_add(1, Ordering::Relaxed);
    target.with_file_name(format!(".{name}{TEMP_MARKER}{}.{n}", std::process::id()))
}

fn parent_of(path: &Path) -> &Path {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    }
}

/// fsync a directory so a rename or unlink in it survives a power cut.
fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

/// Replace `target` with `contents` atomically; creates parent directories.
pub fn write_atomic(target: &Path, contents: &[u8], mode: u32) -> io::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    let dir = parent_of(target);
    fs::create_dir_all(dir)?;
    let temp = temp_path_for(target);
    let result = (|| {
        let mut file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(mode)
            .open(&temp)?;
        file.write_all(contents)?;
        file.sync_all()?;
        fs::rename(&temp, target)?;
        sync_dir(dir)
    })();
    if result.is_err() {
        let _ = fs::remove_file(&temp);
    }
    result
}

/// How an artifact reached the served tree.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum StageMethod {
    Link,
    Copy,
}

/// Publish `source` at `target` atomically: a hard link when source and
/// target share a filesystem, else a full copy. Symlinks in `source` are
/// resolved first so the served file is never a link out of the tree.
pub fn stage_file(source: &Path, target: &Path) -> io::Result<StageMethod> {
    use std::os::unix::fs::MetadataExt;
    let source = fs::canonicalize(source)?;
    // Already linked: done. (Renaming a second link to the same inode over
    // it would be a no-op that leaves the temp link behind.)
    if let (Ok(s), Ok(t)) = (fs::metadata(&source), fs::metadata(target))
        && (s.dev(), s.ino()) == (t.dev(), t.ino())
    {
        return Ok(StageMethod::Link);
    }
    let dir = parent_of(target);
    fs::create_dir_all(dir)?;
    let temp = temp_path_for(target);
    let method = match fs::hard_link(&source, &temp) {
        Ok(()) => StageMethod::Link,
        Err(_) => {
            let result = copy_synced(&source, &temp);
            if let Err(e) = result {
                let _ = fs::remove_file(&temp);
                return Err(e);
            }
            StageMethod::Copy
        }
    };
    if let Err(e) = fs::rename(&temp, target) {
        let _ = fs::remove_file(&temp);
        return Err(e);
    }
    sync_dir(dir)?;
    Ok(method)
}

fn copy_synced(source: &Path, temp: &Path) -> io::Result<()> {
    fs::copy(source, temp)?;
    File::open(temp)?.sync_all()
}

/// Remove a file; a file that is already gone counts as removed.
/// Returns whether something was actually removed.
pub fn remove_if_present(path: &Path) -> io::Result<bool> {
    match fs::remove_file(path) {
        Ok(()) => {
            sync_dir(parent_of(path))?;
            Ok(true)
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(e),
    }
}

/// Remove `dir` if it exists and is empty; anything else is left alone.
pub fn remove_dir_if_empty(dir: &Path) -> io::Result<()> {
    match fs::remove_dir(dir) {
        Ok(()) => Ok(()),
        Err(e)
            if matches!(
                e.kind(),
                io::ErrorKind::NotFound | io::ErrorKind::DirectoryNotEmpty
            ) =>
        {
            Ok(())
        }
        Err(e) => Err(e),
    }
}

/// Delete temp files that a killed petitlab process left in `dir`
/// (those whose writer pid is no longer running).
pub fn sweep_stale_temps(dir: &Path) -> io::Result<usize> {
    let entries = match fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(0),
        Err(e) => return Err(e),
    };
    let mut swept = 0;
    for entry in entries {
        let entry = entry?;
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some(pid) = temp_writer_pid(&name) else {
            continue;
        };
        if pid != std::process::id() && !Path::new(&format!("/proc/{pid}")).exists() {
            fs::remove_file(entry.path())?;
            swept += 1;
        }
    }
    Ok(swept)
}

/// Sweeps each directory at most once: a batch over many nodes writes
/// into the same few directories.
#[derive(Default)]
pub struct Sweeper {
    swept: std::sync::Mutex<std::collections::HashSet<PathBuf>>,
}

impl Sweeper {
    pub fn sweep(&self, dir: &Path) -> io::Result<()> {
        let mut swept = self.swept.lock().unwrap_or_else(|e| e.into_inner());
        if !swept.contains(dir) {
            sweep_stale_temps(dir)?;
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
mod tests {
    use super::*;

    #[test]
    fn write_atomic_replaces_whole_file_and_leaves_no_temp() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("sub/config");
        write_atomic(&target, b"first version, long", 0o644).unwrap();
        write_atomic(&target, b"second", 0o644).unwrap();
        assert_eq!(fs::read(&target).unwrap(), b"second");
        let names: Vec<_> = fs::read_dir(target.parent().unwrap())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, vec![std::ffi::OsString::from("config")]);
    }

    #[test]
    fn stage_file_links_on_same_filesystem_and_resolves_symlinks() {
        use std::os::unix::fs::MetadataExt;
        let dir = tempfile::tempdir().unwrap();
        let source = dir.path().join("vmlinux");
        fs::write(&source, b"kernel").unwrap();
        let link = dir.path().join("alias");
        std::os::unix::fs::symlink(&source, &link).unwrap();
        let target = dir.path().join("root/uuid/deploy_kernel");
        assert_eq!(stage_file(&link, &target).unwrap(), StageMethod::Link);
        let meta = fs::symlink_metadata(&target).unwrap();
        assert!(
            meta.file_type().is_file(),
            "staged file must not be a symlink"
        );
        assert_eq!(meta.ino(), fs::metadata(&source).unwrap().ino());
        // Staging again is idempotent and leaves no temp file behind.
        stage_file(&link, &target).unwrap();
        assert_eq!(fs::read(&target).unwrap(), b"kernel");
        let names: Vec<_> = fs::read_dir(target.parent().unwrap())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, vec![std::ffi::OsString::from("deploy_kernel")]);
    }

    #[test]
    fn sweep_removes_only_temps_of_dead_writers() {
        let dir = tempfile::tempdir().unwrap();
        // pid 0x7fffffff is never a live process.
        let dead = dir.path().join(format!(".config{TEMP_MARKER}2147483647.0"));
        let live = dir
            .path()
            .join(format!(".config{TEMP_MARKER}{}.0", std::process::id()));
        let other = dir.path().join("config");
        for p in [&dead, &live, &other] {
            fs::write(p, b"x").unwrap();
        }
        assert_eq!(sweep_stale_temps(dir.path()).unwrap(), 1);
        assert!(!dead.exists() && live.exists() && other.exists());
    }

    #[test]
    fn remove_if_present_is_idempotent() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("f");
        fs::write(&f, b"x").unwrap();
        assert!(remove_if_present(&f).unwrap());
        assert!(!remove_if_present(&f).unwrap());
    }
}
