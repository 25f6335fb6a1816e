//! Per-node console log file: bytes appended as received, secrets redacted
//! ([`super::redact`]), mode 0600, size-bounded by rotation.
//!
//! Rotation renames `node.log.N-1` → `node.log.N` … `node.log` → `node.log.1`
//! (the oldest is deleted first), then starts a new `node.log`. Every step is
//! a single unlink or rename, so a crash at any point leaves only whole log
//! files behind: at worst a numbering gap or a missing `node.log`, which the
//! next open creates. Files are cut after a newline when that keeps them at
//! least half full, so lines are rarely split across files. Logs hold raw
//! console bytes: read them with lossy UTF-8 decoding.

use std::fs::{self, File, OpenOptions, Permissions};
use std::io::{self, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use super::token::ConsoleRedactor;

/// Console logs may contain anything typed on the node.
const LOG_MODE: u32 = 0o600;

/// More rotated files than this is a configuration mistake, not a need.
const MAX_KEEP: usize = 999;

/// Size bounds of one node's log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LogLimits {
    /// No file grows beyond this many bytes (at least 1).
    pub max_bytes: u64,
    /// Rotated files kept besides the live one (`node.log.1` ..
    /// `node.log.<keep>`); 0 discards the old log at rotation. At most 999.
    pub keep: usize,
}

/// An open console log; see the module doc. Dropping it flushes held-back
/// bytes like [`ConsoleLog::close`] but ignores errors.
#[derive(Debug)]
pub struct ConsoleLog {
    path: PathBuf,
    limits: LogLimits,
    /// `None` after an I/O error or during rotation; reopened on demand.
    file: Option<File>,
    size: u64,
    /// Deploy tokens and the known secrets.
    redactor: ConsoleRedactor,
    /// Reused output buffer of the redactor.
    scratch: Vec<u8>,
    closed: bool,
}

impl ConsoleLog {
    /// Open (or create) `path` for appending, with mode 0600 — also fixing
    /// the mode of an existing file. Every occurrence of a non-empty secret
    /// is written as `<redacted>`.
    pub fn open<S: AsRef<[u8]>>(
        path: impl Into<PathBuf>,
        limits: LogLimits,
        secrets: &[S],
    ) -> io::Result<Self> {
        let limits = LogLimits {
            max_bytes: limits.max_bytes.max(1),
            keep: limits.keep.min(MAX_KEEP),
        };
        let mut log = Self {
            path: path.into(),
            limits,
            file: None,
            size: 0,
            redactor: ConsoleRedactor::new(secrets),
            scratch: Vec::new(),
            closed: false,
        };
        log.file()?;
        Ok(log)
    }

    /// Append console output as received.
    pub fn write(&mut self, bytes: &[u8]) -> io::Result<()> {
        let mut out = std::mem::take(&mut self.scratch);
        out.clear();
        self.redactor.push(bytes, &mut out);
        let result = self.append(&out);
        self.scratch = out;
        result
    }

    /// The console went idle: write what is held back for redaction, as
    /// `<redacted>` since it could be the start of a secret (see
    /// [`crate::console::Redactor::flush_idle`]).
    pub fn flush(&mut self) -> io::Result<()> {
        let mut out = Vec::new();
        self.redactor.flush_idle(&mut out);
        self.append(&out)
    }

    /// End of the session: write the held-back bytes and sync to disk.
    pub fn close(mut self) -> io::Result<()> {
        self.finish()?;
        match &self.file {
            Some(file) => file.sync_data(),
            None => Ok(()),
        }
    }

    /// The live log file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Where rotation number `n` (1 = newest) of `path` lives.
    pub fn rotated_path(path: &Path, n: usize) -> PathBuf {
        let mut name = path.as_os_str().to_owned();
        name.push(format!(".{n}"));
        PathBuf::from(name)
    }

    fn finish(&mut self) -> io::Result<()> {
        if self.closed {
            return Ok(());
        }
        self.closed = true;
        let mut out = Vec::new();
        self.redactor.finish(&mut out);
        self.append(&out)
    }

    fn append(&mut self, mut data: &[u8]) -> io::Result<()> {
        while !data.is_empty() {
            let room = self.limits.max_bytes.saturating_sub(self.size);
            if data.len() as u64 <= room {
                return self.write_raw(data);
            }
            // `room < data.len()`, so it fits in usize.
            let cut = cut_point(data, room as usize, self.size, self.limits.max_bytes);
            self.write_raw(&data[..cut])?;
            self.rotate()?;
            data = &data[cut..];
        }
        Ok(())
    }

    fn write_raw(&mut self, data: &[u8]) -> io::Result<()> {
        if data.is_empty() {
            return Ok(());
        }
        let result = self.file()?.write_all(data);
        match result {
            Ok(()) => self.size += data.len() as u64,
            // Unknown how much was written: reopen and re-read the size.
            Err(_) => self.file = None,
        }
        result
    }

    fn file(&mut self) -> io::Result<&mut File> {
        if self.file.is_none() {
            let file = open_log_file(&self.path)?;
            self.size = file.metadata()?.len();
            self.file = Some(file);
        }
        Ok(self.file.as_mut().expect("opened above"))
    }

    fn rotate(&mut self) -> io::Result<()> {
        self.file = None;
        let keep = self.limits.keep;
        if keep == 0 {
            remove_if_present(&self.path)?;
        } else {
            remove_if_present(&Self::rotated_path(&self.path, keep))?;
            for n in (1..keep).rev() {
                let from = Self::rotated_path(&self.path, n);
                rename_if_present(&from, &Self::rotated_path(&self.path, n + 1))?;
            }
            rename_if_present(&self.path, &Self::rotated_path(&self.path, 1))?;
        }
        self.file().map(|_| ())
    }
}

impl Drop for ConsoleLog {
    fn drop(&mut self) {
        let _ = self.finish();
    }
}

/// Where to cut `data` so its head fits in the `room` bytes left (`room <
/// data.len()`) of a file holding `size` of `max` bytes. Prefer a cut after a
/// newline; but keep files at least half full, so a file is never wasted on
/// a short head: rotate first (0) if the file is that full already, else
/// fill it up, backing off to a UTF-8 character boundary.
fn cut_point(data: &[u8], room: usize, size: u64, max: u64) -> usize {
    let half = max / 2;
    if let Some(nl) = data[..room].iter().rposition(|&b| b == b'\n')
        && size + nl as u64 + 1 >= half
    {
        return nl + 1;
    }
    if size >= half.max(1) {
        return 0;
    }
    let is_continuation = |b: u8| b & 0xc0 == 0x80;
    let mut cut = room;
    while cut > 0 && room - cut < 3 && is_continuation(data[cut]) {
        cut -= 1;
    }
    if cut == 0 { room } else { cut }
}

fn open_log_file(path: &Path) -> io::Result<File> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        fs::create_dir_all(dir)?;
    }
    let file = OpenOptions::new()
        .create(true)
        .append(true)
        .mode(LOG_MODE)
        .open(path)?;
    // An existing file keeps its mode at open, and umask may have narrowed
    // ours: set it on the open handle.
    if file.metadata()?.permissions().mode() & 0o777 != LOG_MODE {
        file.set_permissions(Permissions::from_mode(LOG_MODE))?;
    }
    Ok(file)
}

fn remove_if_present(path: &Path) -> io::Result<()> {
    match fs::remove_file(path) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        other => other,
    }
}

fn rename_if_present(from: &Path, to: &Path) -> io::Result<()> {
    match fs::rename(from, to) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        other => other,
    }
}

#[cfg(test)]
#[path = "log_tests.rs"]
mod tests;
