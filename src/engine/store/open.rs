//! Opening the store: read-write (creating it privately, WAL, migrations),
//! read-only for readers on a store they cannot write (a read-only mount),
//! and telling a full disk apart from other SQLite I/O errors.

use std::fs::{DirBuilder, OpenOptions};
use std::io::ErrorKind;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use rusqlite::{Connection, ErrorCode, OpenFlags};

use super::schema::{too_new, user_version};
use super::{BUSY_TIMEOUT, Fail, Inner, Res, SCHEMA_VERSION, Store, StoreError};

impl Store {
    /// Creates the parent directory (0700) and the file (0600) when missing; WAL journal,
    /// synchronous=NORMAL, busy_timeout 10 s, foreign keys on; runs migrations.
    pub fn open(path: &Path) -> Res<Store> {
        create_private(path)?;
        Store::open_file(path).map_err(|e| e.at(path))
    }

    fn open_file(path: &Path) -> Inner<Store> {
        // Read the version read-only first: a newer petitlab's store must not
        // even be switched to WAL or checkpointed by us.
        let flags = OpenFlags::SQLITE_OPEN_NO_MUTEX;
        let probe = Connection::open_with_flags(path, flags | OpenFlags::SQLITE_OPEN_READ_ONLY)?;
        probe.busy_timeout(BUSY_TIMEOUT)?;
        let found = user_version(&probe)?;
        drop(probe);
        if found > SCHEMA_VERSION {
            return Err(too_new(path, found).into());
        }
        let conn = Connection::open_with_flags(path, flags | OpenFlags::SQLITE_OPEN_READ_WRITE)?;
        Store::setup(conn, path.to_path_buf())
    }

    pub fn open_in_memory() -> Res<Store> {
        let path = PathBuf::from(":memory:");
        let conn = Connection::open_in_memory().map_err(|e| Fail::from(e).at(&path))?;
        Store::setup(conn, path.clone()).map_err(|e| e.at(&path))
    }

    /// For readers (`status`, `history`) of a store they cannot write, e.g.
    /// on a read-only mount: nothing is created, migrated or recovered. A
    /// WAL store whose shared-memory file cannot be made there is opened as
    /// immutable (no other process can be writing to a read-only mount).
    pub fn open_read_only(path: &Path) -> Res<Store> {
        Store::open_read_only_file(path).map_err(|e| e.at(path))
    }

    fn open_read_only_file(path: &Path) -> Inner<Store> {
        let flags = OpenFlags::SQLITE_OPEN_NO_MUTEX | OpenFlags::SQLITE_OPEN_READ_ONLY;
        let readable = |conn: Connection| -> Inner<Connection> {
            conn.busy_timeout(BUSY_TIMEOUT)?;
            user_version(&conn)?;
            Ok(conn)
        };
        let conn = match Connection::open_with_flags(path, flags).map_err(Fail::from) {
            Ok(conn) => readable(conn),
            Err(e) => Err(e),
        };
        let conn = match conn {
            Ok(conn) => conn,
            Err(_) => {
                let uri = immutable_uri(path);
                readable(Connection::open_with_flags(
                    uri,
                    flags | OpenFlags::SQLITE_OPEN_URI,
                )?)?
            }
        };
        let found = user_version(&conn)?;
        if found != SCHEMA_VERSION {
            let why = format!(
                "it has schema version {found} and this petitlab needs {SCHEMA_VERSION}, \
                 which it cannot migrate read-only"
            );
            return Err(StoreError::Io {
                path: path.to_path_buf(),
                source: std::io::Error::new(ErrorKind::ReadOnlyFilesystem, why),
            }
            .into());
        }
        Ok(Store {
            conn,
            path: path.to_path_buf(),
        })
    }

    pub(super) fn setup(conn: Connection, path: PathBuf) -> Inner<Store> {
        conn.busy_timeout(BUSY_TIMEOUT)?;
        set_wal(&conn)?;
        // NORMAL in WAL mode: a killed process loses nothing committed; a power
        // cut may lose the last commits but never corrupts the file.
        conn.pragma_update(None, "synchronous", "NORMAL")?;
        conn.pragma_update(None, "foreign_keys", true)?;
        let mut store = Store { conn, path };
        store.migrate()?;
        Ok(store)
    }
}

/// `file:PATH?immutable=1`, the path percent-encoded where a URI needs it.
fn immutable_uri(path: &Path) -> String {
    use std::os::unix::ffi::OsStrExt;
    let mut uri = String::from("file:");
    for &b in path.as_os_str().as_bytes() {
        if b.is_ascii_alphanumeric() || b"/-._~".contains(&b) {
            uri.push(char::from(b));
        } else {
            uri.push_str(&format!("%{b:02X}"));
        }
    }
    uri.push_str("?immutable=1");
    uri
}

/// Creates the directory (0700) and an empty store file (0600) if missing:
/// SQLite would otherwise create the file with the umask's permissions.
fn create_private(path: &Path) -> Res<()> {
    let io = |source| StoreError::Io {
        path: path.to_path_buf(),
        source,
    };
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(io)?;
    }
    let mut create = OpenOptions::new();
    match create.write(true).create_new(true).mode(0o600).open(path) {
        Err(e) if e.kind() != ErrorKind::AlreadyExists => Err(io(e)),
        _ => Ok(()),
    }
}

/// Switches the store to WAL. Several processes opening a fresh store at
/// once may find it locked: SQLite answers that pragma with SQLITE_BUSY
/// without waiting in the busy handler, so it is retried here for as long.
fn set_wal(conn: &Connection) -> Inner<()> {
    let deadline = std::time::Instant::now() + BUSY_TIMEOUT;
    loop {
        // Answers the resulting mode ("memory" for in-memory stores): nothing to check.
        match conn.pragma_update_and_check(None, "journal_mode", "WAL", |r| r.get::<_, String>(0)) {
            Err(rusqlite::Error::SqliteFailure(e, _))
                if e.code == ErrorCode::DatabaseBusy && std::time::Instant::now() < deadline =>
            {
                std::thread::sleep(std::time::Duration::from_millis(10));
            }
            other => return other.map(drop).map_err(Into::into),
        }
    }
}

/// Less than this free on the store's file system, after a failed write,
/// means the disk is full (SQLite reports it as one of several I/O errors,
/// e.g. 4874 when the WAL index cannot grow).
const NEARLY_FULL: u64 = 1 << 20;

/// What an SQLite I/O error means when the store's file system explains it:
/// a full disk or a read-only mount; the error as it was for anything else.
pub(super) fn file_system_trouble(
    path: &Path,
    error: rusqlite::Error,
) -> Result<StoreError, rusqlite::Error> {
    let rusqlite::Error::SqliteFailure(e, _) = &error else {
        return Err(error);
    };
    let io = matches!(
        e.code,
        ErrorCode::DiskFull
            | ErrorCode::SystemIoFailure
            | ErrorCode::CannotOpen
            | ErrorCode::ReadOnly
    );
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let Some(stat) = io.then(|| rustix::fs::statvfs(dir).ok()).flatten() else {
        return Err(error);
    };
    let path = path.to_path_buf();
    if stat.f_flag.contains(rustix::fs::StatVfsMountFlags::RDONLY) {
        return Ok(StoreError::ReadOnly {
            path,
            sqlite: error,
        });
    }
    let free = stat.f_bavail.saturating_mul(stat.f_frsize);
    if free < NEARLY_FULL {
        return Ok(StoreError::DiskFull {
            path,
            free,
            sqlite: error,
        });
    }
    Err(error)
}
