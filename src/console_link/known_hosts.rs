//! petitlab's own SSH known-hosts file (OpenSSH's format, one
//! `[host]:port keytype base64` line per BMC), kept apart from the user's
//! `~/.ssh/known_hosts` so a lab's keys never mix with personal ones.
//!
//! Trust on first use: an unknown host's key is recorded; a known host that
//! offers another key is refused until the user removes the old line. The
//! file is rewritten whole through a temporary file and a rename, so a crash
//! never leaves half a line; it is 0600 in a 0700 directory.
//!
//! Only what petitlab writes is accepted: plain host names, optionally
//! comma-separated. Hashed names (`|1|`), markers (`@revoked`,
//! `@cert-authority`) and malformed lines are errors naming the file and the
//! line, never silently skipped: a skipped `@revoked` or a misread line would
//! weaken the check.

use std::fs;
use std::io::{self, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD};
use sha2::{Digest, Sha256};

/// A known-hosts file larger than this is not one petitlab wrote.
pub const MAX_FILE_BYTES: u64 = 1024 * 1024;

/// Serializes read-modify-write of the file between this process's consoles
/// (several BMCs may be first seen at once).
static WRITE_LOCK: Mutex<()> = Mutex::new(());

#[derive(Debug, thiserror::Error)]
pub enum KnownHostsError {
    #[error("reading the SSH known-hosts file {path}: {source}")]
    Read { path: PathBuf, source: io::Error },
    #[error("writing the SSH known-hosts file {path}: {source}")]
    Write { path: PathBuf, source: io::Error },
    #[error(
        "the SSH known-hosts file {path} is {size} bytes, more than the {MAX_FILE_BYTES} petitlab allows; is it the right file?"
    )]
    TooLarge { path: PathBuf, size: u64 },
    #[error("the SSH known-hosts file {path} is not UTF-8 text")]
    NotText { path: PathBuf },
    #[error("the SSH known-hosts file {path}, line {line}: {problem}")]
    Malformed {
        path: PathBuf,
        line: usize,
        problem: String,
    },
    #[error("cannot record an SSH host key for host name {host:?}: {problem}")]
    BadHost { host: String, problem: &'static str },
}

/// One key line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// 1-based line number in the file.
    pub line: usize,
    /// Host patterns, lowercased (`[host]:port`, or a bare host for port 22).
    pub hosts: Vec<String>,
    pub key_type: String,
    /// The key in SSH wire encoding (what the base64 field holds).
    pub blob: Vec<u8>,
}

/// What checking a server's key found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// The key matches a recorded one.
    Known,
    /// The host had no key: this one was recorded.
    Recorded,
    /// The host has another key on record.
    Changed {
        line: usize,
        old_type: String,
        old_fingerprint: String,
    },
}

/// The name a host's lines carry: always `[host]:port` (OpenSSH's form for a
/// non-default port; a BMC's console is on 2200).
pub fn host_pattern(host: &str, port: u16) -> String {
    format!("[{}]:{port}", host.to_ascii_lowercase())
}

/// OpenSSH's fingerprint of a key blob: `SHA256:` and unpadded base64.
pub fn fingerprint(blob: &[u8]) -> String {
    format!("SHA256:{}", STANDARD_NO_PAD.encode(Sha256::digest(blob)))
}

/// Parses the text of a known-hosts file; `path` names it in errors.
pub fn parse(text: &str, path: &Path) -> Result<Vec<Entry>, KnownHostsError> {
    let mut entries = Vec::new();
    for (index, raw) in text.split('\n').enumerate() {
        let line = index + 1;
        let malformed = |problem: String| KnownHostsError::Malformed {
            path: path.to_path_buf(),
            line,
            problem,
        };
        let trimmed = raw.trim();
        if trimmed.is_empty() || trimmed.starts_with('#') {
            continue;
        }
        if let Some(bad) = trimmed
            .chars()
            .find(|c| c.is_control() && *c != '\t' && *c != '\r')
        {
            return Err(malformed(format!(
                "control character {bad:?} in a key line"
            )));
        }
        if trimmed.starts_with('@') {
            return Err(malformed(
                "markers (@revoked, @cert-authority) are not supported in petitlab's known-hosts file"
                    .into(),
            ));
        }
        let mut fields = trimmed.split_whitespace();
        let (Some(hosts), Some(key_type), Some(key)) =
            (fields.next(), fields.next(), fields.next())
        else {
            return Err(malformed(
                "expected `[host]:port key-type base64-key`".into(),
            ));
        };
        if hosts.starts_with('|') {
            return Err(malformed(
                "hashed host names are not supported in petitlab's known-hosts file".into(),
            ));
        }
        let blob = STANDARD
            .decode(key)
            .map_err(|e| malformed(format!("the key is not base64 ({e})")))?;
        match wire_key_type(&blob) {
            Some(inner) if inner == key_type => {}
            Some(inner) => {
                return Err(malformed(format!(
                    "the line says {} but the key inside is {}",
                    escape(key_type),
                    escape(inner)
                )));
            }
            None => return Err(malformed("the key is not an SSH public key".into())),
        }
        entries.push(Entry {
            line,
            hosts: hosts
                .split(',')
                .filter(|h| !h.is_empty())
                .map(str::to_ascii_lowercase)
                .collect(),
            key_type: key_type.to_string(),
            blob,
        });
    }
    Ok(entries)
}

/// Compares a server's key with the file and records it if the host is new.
/// Blocking file I/O: call it off the async runtime's threads.
pub fn check_and_record(
    path: &Path,
    host: &str,
    port: u16,
    key_type: &str,
    blob: &[u8],
) -> Result<Verdict, KnownHostsError> {
    check_host_name(host)?;
    let _guard = WRITE_LOCK
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    let text = read(path)?;
    let entries = parse(&text, path)?;
    let names = host_names(host, port);
    let mine: Vec<&Entry> = entries
        .iter()
        .filter(|e| e.hosts.iter().any(|h| names.contains(h)))
        .collect();
    if mine
        .iter()
        .any(|e| e.key_type == key_type && e.blob == blob)
    {
        return Ok(Verdict::Known);
    }
    // A host with a key on record that offers any other key, even of
    // another type, has changed: name the line of the same type if any.
    if let Some(old) = mine
        .iter()
        .find(|e| e.key_type == key_type)
        .or(mine.first())
    {
        return Ok(Verdict::Changed {
            line: old.line,
            old_type: old.key_type.clone(),
            old_fingerprint: fingerprint(&old.blob),
        });
    }
    let mut updated = text;
    if !updated.is_empty() && !updated.ends_with('\n') {
        updated.push('\n');
    }
    updated.push_str(&format!(
        "{} {key_type} {}\n",
        host_pattern(host, port),
        STANDARD.encode(blob)
    ));
    write_atomically(path, updated.as_bytes()).map_err(|source| KnownHostsError::Write {
        path: path.to_path_buf(),
        source,
    })?;
    Ok(Verdict::Recorded)
}

/// The names a host's lines may carry: ours, and OpenSSH's bare name for 22.
fn host_names(host: &str, port: u16) -> Vec<String> {
    let mut names = vec![host_pattern(host, port)];
    if port == 22 {
        names.push(host.to_ascii_lowercase());
    }
    names
}

/// A host name that would break the line format (or match the wrong line).
fn check_host_name(host: &str) -> Result<(), KnownHostsError> {
    let bad = |problem| {
        Err(KnownHostsError::BadHost {
            host: host.to_string(),
            problem,
        })
    };
    if host.is_empty() {
        return bad("it is empty");
    }
    if host.chars().any(|c| {
        c.is_whitespace()
            || c.is_control()
            || matches!(c, ',' | '#' | '[' | ']' | '|' | '@' | '*' | '?' | '!')
    }) {
        return bad("it holds a space, control character or one of , # [ ] | @ * ? !");
    }
    Ok(())
}

/// The key type a wire-encoded key names in its first field.
fn wire_key_type(blob: &[u8]) -> Option<&str> {
    let len = u32::from_be_bytes(blob.get(..4)?.try_into().ok()?) as usize;
    let name = blob.get(4..4usize.checked_add(len)?)?;
    let name = std::str::from_utf8(name).ok()?;
    (!name.is_empty() && name.bytes().all(|b| b.is_ascii_graphic())).then_some(name)
}

fn read(path: &Path) -> Result<String, KnownHostsError> {
    let read_error = |source| KnownHostsError::Read {
        path: path.to_path_buf(),
        source,
    };
    let bytes = match fs::File::open(path) {
        Ok(file) => {
            let size = file.metadata().map_err(read_error)?.len();
            if size > MAX_FILE_BYTES {
                return Err(KnownHostsError::TooLarge {
                    path: path.to_path_buf(),
                    size,
                });
            }
            let mut bytes = Vec::new();
            io::Read::read_to_end(&mut io::Read::take(file, MAX_FILE_BYTES + 1), &mut bytes)
                .map_err(read_error)?;
            bytes
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => Vec::new(),
        Err(e) => return Err(read_error(e)),
    };
    String::from_utf8(bytes).map_err(|_| KnownHostsError::NotText {
        path: path.to_path_buf(),
    })
}

/// Writes through a 0600 temporary file in the same directory and a rename;
/// the directory is created 0700 if missing.
fn write_atomically(path: &Path, contents: &[u8]) -> io::Result<()> {
    let dir = match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    };
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)?;
    let name = path
        .file_name()
        .ok_or_else(|| io::Error::other("the path names no file"))?;
    let mut temp_name = std::ffi::OsString::from(".");
    temp_name.push(name);
    temp_name.push(format!(".{}.tmp", std::process::id()));
    let temp = dir.join(temp_name);
    let result = (|| {
        let mut file = fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&temp)?;
        file.write_all(contents)?;
        file.sync_all()?;
        fs::rename(&temp, path)?;
        // Make the rename itself durable.
        fs::File::open(dir)?.sync_all()
    })();
    if result.is_err() {
        let _ = fs::remove_file(&temp);
    }
    result
}

/// A field from the file, safe to print.
fn escape(text: &str) -> String {
    let mut out: String = text
        .chars()
        .take(64)
        .collect::<String>()
        .escape_debug()
        .to_string();
    if text.chars().count() > 64 {
        out.push('…');
    }
    out
}

#[cfg(test)]
#[path = "known_hosts_tests.rs"]
mod tests;
