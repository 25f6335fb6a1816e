//! Opening a directory beneath a root without following any symlink below
//! that root. The root itself is the admin's (lab.toml names it) and may be
//! reached through links; everything under it may have been planted by
//! whoever can write there, and petitlab (often root) must not write or
//! delete wherever such a link points.
//!
//! `openat2(RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS)` does it in one call;
//! where the kernel lacks it (ENOSYS), or to create missing directories and
//! to name the link in the error, the path is walked one component at a time
//! with `openat(O_NOFOLLOW)`, each step relative to the directory the last
//! one opened, so nothing can be swapped in between.

use std::ffi::OsString;
use std::fmt;
use std::io;
use std::os::fd::OwnedFd;
use std::path::{Component, Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};

use rustix::fs::{AtFlags, CWD, FileType, Mode, OFlags, ResolveFlags};

/// A symlink met beneath a root: the error petitlab refuses with.
#[derive(Debug)]
pub struct SymlinkRefused {
    pub path: PathBuf,
    pub root: PathBuf,
}

impl fmt::Display for SymlinkRefused {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} is a symlink: petitlab does not write or delete through symlinks under {}",
            self.path.display(),
            self.root.display()
        )
    }
}

impl std::error::Error for SymlinkRefused {}

fn refused(path: PathBuf, root: &Path) -> io::Error {
    io::Error::other(SymlinkRefused {
        path,
        root: root.to_path_buf(),
    })
}

const DIR_FLAGS: OFlags = OFlags::RDONLY
    .union(OFlags::DIRECTORY)
    .union(OFlags::CLOEXEC);

/// Set once openat2 answered ENOSYS: this kernel walks.
static NO_OPENAT2: AtomicBool = AtomicBool::new(false);

/// `target` split into the directory under `root` that holds it and its
/// file name.
pub struct Beneath<'a> {
    pub root: &'a Path,
    pub dir: PathBuf,
    pub name: OsString,
}

impl<'a> Beneath<'a> {
    pub fn new(root: &'a Path, target: &Path) -> io::Result<Beneath<'a>> {
        let rel = relative(root, target)?;
        let name = rel.file_name().ok_or_else(|| not_under(root, target))?;
        Ok(Beneath {
            root,
            dir: rel.parent().unwrap_or(Path::new("")).to_path_buf(),
            name: name.to_os_string(),
        })
    }

    /// The full path, for messages.
    pub fn path(&self) -> PathBuf {
        self.root.join(&self.dir).join(&self.name)
    }

    /// The holding directory; `None` if it (or the root) does not exist
    /// and `create` is false.
    pub fn open_dir(&self, create: bool) -> io::Result<Option<OwnedFd>> {
        open_rel(self.root, &self.dir, create)
    }
}

fn not_under(root: &Path, target: &Path) -> io::Error {
    let msg = format!("{} is not under {}", target.display(), root.display());
    io::Error::new(io::ErrorKind::InvalidInput, msg)
}

/// `target` relative to `root`: plain names only (no `..`).
fn relative<'p>(root: &Path, target: &'p Path) -> io::Result<&'p Path> {
    let rel = target
        .strip_prefix(root)
        .map_err(|_| not_under(root, target))?;
    if rel
        .components()
        .any(|c| !matches!(c, Component::Normal(_) | Component::CurDir))
    {
        return Err(not_under(root, target));
    }
    Ok(rel)
}

/// Opens `root` (following links: the admin's path), creating it if asked.
fn open_root(root: &Path, create: bool) -> io::Result<Option<OwnedFd>> {
    if create {
        std::fs::create_dir_all(root)?;
    }
    match rustix::fs::open(root, DIR_FLAGS, Mode::empty()) {
        Ok(fd) => Ok(Some(fd)),
        Err(e) if e == rustix::io::Errno::NOENT && !create => Ok(None),
        Err(e) => Err(e.into()),
    }
}

/// The directory `dir` (`root` or below it), opened without following a
/// symlink below `root`. `None` if something along it is missing and
/// `create` is false.
pub fn open_dir(root: &Path, dir: &Path, create: bool) -> io::Result<Option<OwnedFd>> {
    open_rel(root, relative(root, dir)?, create)
}

fn open_rel(root: &Path, rel: &Path, create: bool) -> io::Result<Option<OwnedFd>> {
    open_dir_with(root, rel, create, !NO_OPENAT2.load(Ordering::Relaxed))
}

fn open_dir_with(
    root: &Path,
    rel: &Path,
    create: bool,
    try_openat2: bool,
) -> io::Result<Option<OwnedFd>> {
    let Some(root_fd) = open_root(root, create)? else {
        return Ok(None);
    };
    if rel.as_os_str().is_empty() {
        return Ok(Some(root_fd));
    }
    if try_openat2 {
        let how = ResolveFlags::BENEATH | ResolveFlags::NO_SYMLINKS | ResolveFlags::NO_MAGICLINKS;
        match rustix::fs::openat2(&root_fd, rel, DIR_FLAGS, Mode::empty(), how) {
            Ok(fd) => return Ok(Some(fd)),
            Err(e) if e == rustix::io::Errno::NOSYS => NO_OPENAT2.store(true, Ordering::Relaxed),
            // Missing parts to create, a link to name, a retry (EAGAIN):
            // the walk gives the authoritative answer.
            Err(_) => {}
        }
    }
    walk(root_fd, root, rel, create)
}

/// One component at a time, each opened with O_NOFOLLOW relative to the
/// last.
fn walk(mut fd: OwnedFd, root: &Path, rel: &Path, create: bool) -> io::Result<Option<OwnedFd>> {
    let mut so_far = root.to_path_buf();
    for part in rel.components() {
        let Component::Normal(name) = part else {
            continue;
        };
        so_far.push(name);
        let flags = DIR_FLAGS | OFlags::NOFOLLOW;
        let mut opened = rustix::fs::openat(&fd, name, flags, Mode::empty());
        if create && matches!(opened, Err(rustix::io::Errno::NOENT)) {
            match rustix::fs::mkdirat(&fd, name, Mode::from_raw_mode(0o755)) {
                Ok(()) | Err(rustix::io::Errno::EXIST) => {}
                Err(e) => return Err(e.into()),
            }
            opened = rustix::fs::openat(&fd, name, flags, Mode::empty());
        }
        fd = match opened {
            Ok(next) => next,
            Err(rustix::io::Errno::NOENT) if !create => return Ok(None),
            Err(e) => {
                // O_NOFOLLOW on a link: ELOOP, or ENOTDIR with O_DIRECTORY.
                let is_link = rustix::fs::statat(&fd, name, AtFlags::SYMLINK_NOFOLLOW)
                    .is_ok_and(|st| FileType::from_raw_mode(st.st_mode) == FileType::Symlink);
                if is_link {
                    return Err(refused(so_far, root));
                }
                return Err(io::Error::new(
                    io::Error::from(e).kind(),
                    format!("{}: {e}", so_far.display()),
                ));
            }
        };
    }
    Ok(Some(fd))
}

/// Whether `name` in `dir` is a symlink (not following it).
pub fn is_symlink(dir: &OwnedFd, name: &OsString) -> io::Result<bool> {
    match rustix::fs::statat(dir, name, AtFlags::SYMLINK_NOFOLLOW) {
        Ok(st) => Ok(FileType::from_raw_mode(st.st_mode) == FileType::Symlink),
        Err(rustix::io::Errno::NOENT) => Ok(false),
        Err(e) => Err(e.into()),
    }
}

/// `linkat` from an absolute source path into `dir`.
pub fn link_into(source: &Path, dir: &OwnedFd, name: &OsString) -> io::Result<()> {
    Ok(rustix::fs::linkat(
        CWD,
        source,
        dir,
        name,
        AtFlags::empty(),
    )?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    fn refusal(e: &io::Error) -> Option<&SymlinkRefused> {
        e.get_ref()?.downcast_ref()
    }

    #[test]
    fn a_linked_directory_beneath_the_root_is_refused_by_both_ways() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("root");
        let outside = dir.path().join("outside");
        std::fs::create_dir_all(root.join("real/deeper")).unwrap();
        std::fs::create_dir(&outside).unwrap();
        symlink(&outside, root.join("out")).unwrap();
        symlink(root.join("real"), root.join("inside")).unwrap();
        for openat2 in [true, false] {
            assert!(
                open_dir_with(&root, Path::new("real/deeper"), false, openat2)
                    .unwrap()
                    .is_some()
            );
            for (rel, link) in [
                ("out", "out"),
                ("out/x", "out"),
                ("inside/deeper", "inside"),
            ] {
                for create in [false, true] {
                    let e = open_dir_with(&root, Path::new(rel), create, openat2).unwrap_err();
                    let r = refusal(&e).unwrap_or_else(|| panic!("{rel}: {e}"));
                    assert_eq!(r.path, root.join(link), "{rel}");
                    assert!(e.to_string().contains("is a symlink"), "{e}");
                }
            }
            assert!(
                open_dir_with(&root, Path::new("missing/x"), false, openat2)
                    .unwrap()
                    .is_none()
            );
        }
        assert_eq!(std::fs::read_dir(&outside).unwrap().count(), 0);
    }

    #[test]
    fn missing_directories_are_created_and_the_root_may_be_a_link() {
        let dir = tempfile::tempdir().unwrap();
        let real = dir.path().join("real-root");
        std::fs::create_dir(&real).unwrap();
        let root = dir.path().join("root");
        symlink(&real, &root).unwrap();
        for (openat2, rel) in [(true, "a/b"), (false, "c/d")] {
            assert!(
                open_dir_with(&root, Path::new(rel), true, openat2)
                    .unwrap()
                    .is_some()
            );
            assert!(real.join(rel).is_dir());
        }
    }

    #[test]
    fn targets_outside_the_root_or_with_dot_dot_are_refused() {
        let root = Path::new("/srv/root");
        for bad in ["/srv/other/x", "/srv/root/../x", "/srv/root"] {
            let e = Beneath::new(root, Path::new(bad)).err().unwrap();
            assert_eq!(e.kind(), io::ErrorKind::InvalidInput, "{bad}");
        }
        let b = Beneath::new(root, Path::new("/srv/root/u/config")).unwrap();
        assert_eq!(
            (b.dir.as_path(), b.name.as_os_str()),
            (Path::new("u"), "config".as_ref())
        );
        assert_eq!(b.path(), Path::new("/srv/root/u/config"));
    }
}
