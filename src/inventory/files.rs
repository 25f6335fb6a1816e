//! The files and directories lab.toml names, and lab.toml itself, taken
//! for nothing: a file must be a regular file (a FIFO blocks whoever opens
//! it, and a device such as /dev/zero never ends), it is opened without
//! blocking and read with a cap; a directory petitlab writes into must not
//! be one of the system's own.

use std::fs::{File, FileType, OpenOptions};
use std::io::{self, Read};
use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

/// lab.toml is read whole; a lab of thousands of nodes stays far below this.
pub const LAB_TOML_CAP: u64 = 16 << 20;
/// A petitboot config template.
pub const TEMPLATE_CAP: u64 = 1 << 20;
/// A BMC password file (IPMI passwords are at most 20 bytes).
pub const PASSWORD_FILE_CAP: u64 = 4 << 10;

#[derive(Debug, thiserror::Error)]
pub enum FileError {
    #[error("does not exist")]
    NotFound,
    #[error("is a directory, not a file")]
    Directory,
    #[error("is {0}, not a regular file")]
    NotRegular(&'static str),
    #[error("is larger than {} (the limit)", human_size(*.0))]
    TooLarge(u64),
    #[error("is not UTF-8 text")]
    NotText,
    #[error("cannot be read: {0}")]
    Io(io::Error),
}

impl From<io::Error> for FileError {
    fn from(e: io::Error) -> Self {
        match e.kind() {
            io::ErrorKind::NotFound => FileError::NotFound,
            _ => FileError::Io(e),
        }
    }
}

/// For callers that speak `io::Error`; the message stays ours.
impl From<FileError> for io::Error {
    fn from(e: FileError) -> Self {
        match e {
            FileError::Io(e) => e,
            FileError::NotFound => io::Error::new(io::ErrorKind::NotFound, e.to_string()),
            other => io::Error::new(io::ErrorKind::InvalidInput, other.to_string()),
        }
    }
}

/// Opens `path` (following symlinks) for reading if it is a regular file.
/// Its type is looked at before opening, so a FIFO or a device is never
/// opened, and again on the open file, in case it was swapped in between:
/// `O_NONBLOCK` makes that open of a FIFO return at once instead of waiting.
pub fn open_regular(path: &Path) -> Result<File, FileError> {
    regular(std::fs::metadata(path)?.file_type())?;
    let file = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY)
        .open(path)?;
    regular(file.metadata()?.file_type())?;
    Ok(file)
}

/// A file a node's field names, checked again when it is about to be used
/// (it may have been replaced since lab.toml was loaded): the error names
/// the node, the field and the path.
pub fn file_problem(node: &str, field: &str, path: &Path) -> Option<super::Problem> {
    let why = open_regular(path).err()?;
    let msg = format!("{}: {why}", path.display());
    Some(super::Problem::error(Some(node), field, msg))
}

fn regular(kind: FileType) -> Result<(), FileError> {
    if kind.is_file() {
        return Ok(());
    }
    Err(if kind.is_dir() {
        FileError::Directory
    } else {
        FileError::NotRegular(kind_name(kind))
    })
}

fn kind_name(kind: FileType) -> &'static str {
    if kind.is_fifo() {
        "a FIFO (named pipe)"
    } else if kind.is_char_device() {
        "a character device"
    } else if kind.is_block_device() {
        "a block device"
    } else if kind.is_socket() {
        "a socket"
    } else {
        "not a file"
    }
}

/// The whole of a regular file as text, refusing one over `cap` bytes. The
/// read itself is bounded, so a file that grows while read cannot exceed it.
pub fn read_text(path: &Path, cap: u64) -> Result<String, FileError> {
    let file = open_regular(path)?;
    let mut bytes = Vec::new();
    file.take(cap + 1).read_to_end(&mut bytes)?;
    if bytes.len() as u64 > cap {
        return Err(FileError::TooLarge(cap));
    }
    String::from_utf8(bytes).map_err(|_| FileError::NotText)
}

fn human_size(bytes: u64) -> String {
    match bytes {
        b if b >= 1 << 20 && b % (1 << 20) == 0 => format!("{} MiB", b >> 20),
        b if b >= 1 << 10 && b % (1 << 10) == 0 => format!("{} KiB", b >> 10),
        b => format!("{b} bytes"),
    }
}

/// Directories petitlab must never serve, write configs into or clean up:
/// each is refused itself (after symlinks are resolved), not what is below it.
const SYSTEM_DIRS: &[&str] = &[
    "/", "/bin", "/boot", "/dev", "/etc", "/home", "/proc", "/root", "/sbin", "/sys", "/usr",
    "/var",
];

/// Why a directory petitlab writes into cannot be used, if it cannot: it
/// exists and is not a directory, or it is a system directory. One that does
/// not exist yet is fine (petitlab creates it).
pub fn check_own_dir(path: &Path) -> Result<(), String> {
    let meta = match std::fs::metadata(path) {
        Ok(meta) => meta,
        // Missing, or below a non-directory that is reported on its own field.
        Err(_) => return Ok(()),
    };
    if !meta.is_dir() {
        return Err(format!("{}: exists and is not a directory", path.display()));
    }
    let real = std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf());
    if !is_system_dir(&real) {
        return Ok(());
    }
    let given = path.display();
    Err(if real == path {
        format!("{given}: is a system directory; give petitlab a directory of its own")
    } else {
        format!(
            "{given}: is {}, a system directory; give petitlab a directory of its own",
            real.display()
        )
    })
}

fn is_system_dir(real: &Path) -> bool {
    let top_lib = real.parent() == Some(Path::new("/"))
        && real
            .file_name()
            .is_some_and(|n| n.to_string_lossy().starts_with("lib"));
    // On a merged-/usr system /bin is /usr/bin: refuse what each one really is, too.
    top_lib
        || SYSTEM_DIRS.iter().any(|dir| {
            let dir = Path::new(dir);
            real == dir || std::fs::canonicalize(dir).is_ok_and(|d| d == real)
        })
        || lib_dirs().iter().any(|d| d == real)
}

/// `/lib*` as it really is (on merged-/usr systems, `/usr/lib`, `/usr/lib64`…).
fn lib_dirs() -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir("/") else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with("lib"))
        .filter_map(|e| std::fs::canonicalize(e.path()).ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn read_text_caps_what_it_reads_and_refuses_what_is_not_a_file() {
        let dir = tempfile::tempdir().unwrap();
        let small = dir.path().join("small");
        std::fs::write(&small, "0123456789").unwrap();
        assert_eq!(read_text(&small, 10).unwrap(), "0123456789");
        let err = read_text(&small, 9).unwrap_err();
        assert_eq!(err.to_string(), "is larger than 9 bytes (the limit)");
        assert!(matches!(
            read_text(Path::new("/dev/zero"), LAB_TOML_CAP),
            Err(FileError::NotRegular("a character device"))
        ));
        assert!(matches!(
            read_text(dir.path(), 10),
            Err(FileError::Directory)
        ));
        assert!(matches!(
            read_text(&dir.path().join("missing"), 10),
            Err(FileError::NotFound)
        ));
        std::fs::write(&small, b"\xff\xfe").unwrap();
        assert!(matches!(read_text(&small, 10), Err(FileError::NotText)));
        assert_eq!(human_size(LAB_TOML_CAP), "16 MiB");
        assert_eq!(human_size(PASSWORD_FILE_CAP), "4 KiB");
    }

    #[test]
    fn open_regular_refuses_a_fifo_without_waiting_for_a_writer() {
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("fifo");
        let made = std::process::Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap();
        assert!(made.success());
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || tx.send(open_regular(&fifo).map(drop)));
        let result = rx
            .recv_timeout(std::time::Duration::from_secs(10))
            .expect("open_regular blocked on a FIFO");
        let err = result.unwrap_err();
        assert_eq!(
            err.to_string(),
            "is a FIFO (named pipe), not a regular file"
        );
        let io: io::Error = err.into();
        assert_eq!(io.to_string(), "is a FIFO (named pipe), not a regular file");
    }

    #[test]
    fn system_directories_are_refused_and_their_subdirectories_are_not() {
        let dir = tempfile::tempdir().unwrap();
        for sys in ["/", "/etc", "/usr", "/var", "/proc", "/etc/../etc/"] {
            let err = check_own_dir(Path::new(sys)).unwrap_err();
            assert!(err.contains("a system directory"), "{sys}: {err}");
        }
        let lib = std::fs::read_dir("/")
            .unwrap()
            .flatten()
            .find(|e| e.file_name().to_string_lossy().starts_with("lib"))
            .expect("a /lib* directory");
        assert!(check_own_dir(&lib.path()).is_err(), "{:?}", lib.path());
        std::os::unix::fs::symlink("/", dir.path().join("root-link")).unwrap();
        let err = check_own_dir(&dir.path().join("root-link")).unwrap_err();
        assert!(err.ends_with("is /, a system directory; give petitlab a directory of its own"));
        for fine in [
            dir.path(),
            Path::new("/var/lib"),
            &dir.path().join("not-yet"),
        ] {
            assert_eq!(check_own_dir(fine), Ok(()), "{}", fine.display());
        }
        let file = dir.path().join("file");
        std::fs::write(&file, "").unwrap();
        let err = check_own_dir(&file).unwrap_err();
        assert!(err.ends_with(": exists and is not a directory"), "{err}");
    }
}
