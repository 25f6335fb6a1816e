//! Per-node console log file: an asciinema v2 cast ([`super::cast`]) of the
//! console output with its timing, secrets redacted ([`super::redact`]),
//! mode 0600, size-bounded by rotation.
//!
//! Each write is one `[seconds, "o", "text"]` event, its time counted from
//! the file's header timestamp. Console bytes are redacted first, then
//! decoded as UTF-8: a character split across writes waits for its end,
//! invalid bytes become U+FFFD.
//!
//! Rotation renames `node.cast.N-1` → `node.cast.N` … `node.cast` →
//! `node.cast.1` (the oldest is deleted first), then starts a new
//! `node.cast` with its own header. Every step is a single unlink or rename,
//! so a crash at any point leaves only whole files behind: at worst a
//! numbering gap or a missing `node.cast`, which the next open creates.
//! Every file is a complete cast: an event too long for the room left is
//! split, after a newline when that keeps the file at least half full. A
//! line torn by a crash is cut off when the file is next opened.

use std::fs::{self, File, OpenOptions, Permissions};
use std::io::{self, Read, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use super::cast;
use super::token::ConsoleRedactor;

/// Console logs may contain anything typed on the node.
const LOG_MODE: u32 = 0o600;

/// More rotated files than this is a configuration mistake, not a need.
const MAX_KEEP: usize = 999;

/// Room for an event line's frame: `[<time>,"o",""]` and the newline.
const EVENT_FRAME: u64 = 48;

/// Size bounds of one node's log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LogLimits {
    /// No file grows beyond this many bytes; raised to what a header and a
    /// few events need (a few hundred bytes).
    pub max_bytes: u64,
    /// Rotated files kept besides the live one (`node.cast.1` ..
    /// `node.cast.<keep>`); 0 discards the old log at rotation. At most 999.
    pub keep: usize,
}

/// Unix time in seconds, as a float.
type Clock = Box<dyn FnMut() -> f64 + Send>;

fn system_clock() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

/// An open console log; see the module doc. Dropping it flushes held-back
/// bytes like [`ConsoleLog::close`] but ignores errors.
pub struct ConsoleLog {
    path: PathBuf,
    limits: LogLimits,
    /// Headers' title: `<file stem> console`.
    title: String,
    /// `None` after an I/O error or during rotation; reopened on demand.
    file: Option<File>,
    size: u64,
    /// The live file's header timestamp (unix seconds).
    origin: i64,
    /// The last event time written: times never go back with the clock.
    last_time: f64,
    clock: Clock,
    /// Deploy tokens and the known secrets.
    redactor: ConsoleRedactor,
    /// Reused output buffer of the redactor.
    scratch: Vec<u8>,
    /// The start of a UTF-8 character whose end has not arrived yet.
    carry: Vec<u8>,
    closed: bool,
}

impl std::fmt::Debug for ConsoleLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConsoleLog")
            .field("path", &self.path)
            .field("limits", &self.limits)
            .field("size", &self.size)
            .field("origin", &self.origin)
            .finish_non_exhaustive()
    }
}

impl ConsoleLog {
    /// Open (or create) the cast `path` for appending, with mode 0600 —
    /// also fixing the mode of an existing file. Headers are titled after
    /// the file name (`n1.cast`: "n1 console"). Every occurrence of a
    /// non-empty secret is written as `<redacted>`.
    pub fn open<S: AsRef<[u8]>>(
        path: impl Into<PathBuf>,
        limits: LogLimits,
        secrets: &[S],
    ) -> io::Result<Self> {
        Self::open_with_clock(path.into(), limits, secrets, Box::new(system_clock))
    }

    fn open_with_clock<S: AsRef<[u8]>>(
        path: PathBuf,
        limits: LogLimits,
        secrets: &[S],
        clock: Clock,
    ) -> io::Result<Self> {
        let stem = path.file_stem().unwrap_or_default().to_string_lossy();
        let title = format!("{stem} console");
        let header = cast::header_line(i64::from(u32::MAX), &title).len() as u64;
        let limits = LogLimits {
            max_bytes: limits.max_bytes.max(2 * (header + EVENT_FRAME) + 256),
            keep: limits.keep.min(MAX_KEEP),
        };
        let mut log = Self {
            path,
            limits,
            title,
            file: None,
            size: 0,
            origin: 0,
            last_time: 0.0,
            clock,
            redactor: ConsoleRedactor::new(secrets),
            scratch: Vec::new(),
            carry: Vec::new(),
            closed: false,
        };
        log.file()?;
        Ok(log)
    }

    /// Append console output as received: one event.
    pub fn write(&mut self, bytes: &[u8]) -> io::Result<()> {
        let mut out = std::mem::take(&mut self.scratch);
        out.clear();
        self.redactor.push(bytes, &mut out);
        let text = self.decode(&out);
        self.scratch = out;
        self.append(&text)
    }

    /// The console went idle: write what is held back for redaction, as
    /// `<redacted>` since it could be the start of a secret (see
    /// [`crate::console::Redactor::flush_idle`]).
    pub fn flush(&mut self) -> io::Result<()> {
        let mut out = Vec::new();
        self.redactor.flush_idle(&mut out);
        let text = self.decode(&out);
        self.append(&text)
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
        let mut text = self.decode(&out);
        if !self.carry.is_empty() {
            // A character that never ended.
            self.carry.clear();
            text.push(char::REPLACEMENT_CHARACTER);
        }
        self.append(&text)
    }

    /// `bytes` after the carried start of a character as text, invalid
    /// sequences replaced (as [`String::from_utf8_lossy`] does), an
    /// incomplete last character carried to the next call.
    fn decode(&mut self, bytes: &[u8]) -> String {
        let mut buf = std::mem::take(&mut self.carry);
        buf.extend_from_slice(bytes);
        let mut text = String::with_capacity(buf.len());
        let mut rest = &buf[..];
        loop {
            match std::str::from_utf8(rest) {
                Ok(valid) => {
                    text.push_str(valid);
                    break;
                }
                Err(e) => {
                    let (valid, after) = rest.split_at(e.valid_up_to());
                    text.push_str(std::str::from_utf8(valid).expect("checked valid"));
                    match e.error_len() {
                        Some(bad) => {
                            text.push(char::REPLACEMENT_CHARACTER);
                            rest = &after[bad..];
                        }
                        None => {
                            self.carry = after.to_vec();
                            break;
                        }
                    }
                }
            }
        }
        text
    }

    /// Seconds since the live file's header, never less than the last.
    fn event_time(&mut self) -> f64 {
        let time = ((self.clock)() - self.origin as f64).max(self.last_time);
        self.last_time = time;
        time
    }

    fn append(&mut self, mut text: &str) -> io::Result<()> {
        while !text.is_empty() {
            self.file()?;
            let time = self.event_time();
            let frame = cast::event_line(time, "").len() as u64;
            let room = self
                .limits
                .max_bytes
                .saturating_sub(self.size)
                .saturating_sub(frame);
            let cut = cut_point(text, room, self.size, self.limits.max_bytes);
            if cut == text.len() {
                return self.write_raw(cast::event_line(time, text).as_bytes());
            }
            if cut > 0 {
                self.write_raw(cast::event_line(time, &text[..cut]).as_bytes())?;
            }
            self.rotate()?;
            text = &text[cut..];
        }
        Ok(())
    }

    fn write_raw(&mut self, data: &[u8]) -> io::Result<()> {
        let result = self.file()?.write_all(data);
        match result {
            Ok(()) => self.size += data.len() as u64,
            // Unknown how much was written: reopen, which cuts off a torn
            // line and re-reads the size.
            Err(_) => self.file = None,
        }
        result
    }

    fn file(&mut self) -> io::Result<&mut File> {
        if self.file.is_none() {
            self.open_live()?;
        }
        Ok(self.file.as_mut().expect("opened above"))
    }

    /// Open the live file: continue a cast there (cutting off a torn last
    /// line), or start one in a new or empty file. A file that is not a
    /// cast is rotated away first.
    fn open_live(&mut self) -> io::Result<()> {
        let mut file = open_log_file(&self.path)?;
        let existing = match inspect(&self.path)? {
            Existing::Cast(existing) => existing,
            Existing::Empty => {
                let now = (self.clock)();
                self.origin = now.floor() as i64;
                let header = cast::header_line(self.origin, &self.title);
                file.set_len(0)?;
                file.write_all(header.as_bytes())?;
                self.size = header.len() as u64;
                self.last_time = 0.0;
                self.file = Some(file);
                return Ok(());
            }
            Existing::NotCast => {
                drop(file);
                self.shift()?;
                return self.open_live();
            }
        };
        if existing.whole_len < file.metadata()?.len() {
            file.set_len(existing.whole_len)?;
        }
        self.size = existing.whole_len;
        self.origin = existing.origin;
        self.last_time = existing.last_time;
        self.file = Some(file);
        Ok(())
    }

    fn rotate(&mut self) -> io::Result<()> {
        self.file = None;
        self.shift()?;
        self.file().map(|_| ())
    }

    /// The rotation's renames: afterwards there is no live file.
    fn shift(&mut self) -> io::Result<()> {
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
        Ok(())
    }
}

impl Drop for ConsoleLog {
    fn drop(&mut self) {
        let _ = self.finish();
    }
}

/// What a live file already holds.
enum Existing {
    /// Nothing, or not even a whole header line: start afresh.
    Empty,
    Cast(ExistingCast),
    NotCast,
}

struct ExistingCast {
    /// Header timestamp.
    origin: i64,
    /// Time of the last event.
    last_time: f64,
    /// Length up to the end of the last whole line.
    whole_len: u64,
}

fn inspect(path: &Path) -> io::Result<Existing> {
    let mut bytes = Vec::new();
    File::open(path)?.read_to_end(&mut bytes)?;
    let Some(end) = bytes.iter().rposition(|&b| b == b'\n') else {
        return Ok(Existing::Empty);
    };
    let whole = &bytes[..=end];
    let Ok(parsed) = cast::parse(whole) else {
        return Ok(Existing::NotCast);
    };
    Ok(Existing::Cast(ExistingCast {
        origin: parsed.timestamp,
        last_time: parsed.events.last().map_or(0.0, |e| e.time.max(0.0)),
        whole_len: whole.len() as u64,
    }))
}

/// How much of `text` to write as an event in the `room` bytes left (for
/// its encoding) of a file holding `size` of `max` bytes: all of it if it
/// fits; else prefer a cut after a newline, but keep files at least half
/// full, so a file is never wasted on a short head: rotate first (0) if the
/// file is that full already, else fill it up. Cuts are on character
/// boundaries; at least one character goes into a file less than half full.
fn cut_point(text: &str, room: u64, size: u64, max: u64) -> usize {
    let half = max / 2;
    let mut used = 0u64;
    let mut fill = 0;
    let mut after_newline = None;
    for (i, c) in text.char_indices() {
        used += cast::escaped_len(c) as u64;
        if used > room {
            break;
        }
        fill = i + c.len_utf8();
        if c == '\n' {
            after_newline = Some((fill, used));
        }
    }
    if fill == text.len() {
        return fill;
    }
    if let Some((cut, encoded)) = after_newline
        && size + encoded >= half
    {
        return cut;
    }
    if size >= half.max(1) {
        return 0;
    }
    if fill == 0 {
        text.chars().next().map_or(0, char::len_utf8)
    } else {
        fill
    }
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
