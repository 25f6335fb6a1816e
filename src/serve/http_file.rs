//! Answering GET/HEAD for a file: validators, conditional requests, byte
//! ranges, and the body through `sendfile(2)`, file to socket in the kernel.

use std::fs::File;
use std::io;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::time::{Duration, UNIX_EPOCH};

use tokio::io::Interest;
use tokio::net::TcpStream;

use super::conn::{ResponseHead, Sent, write_all};
use super::proto::{self, ByteRange, Head};

/// Most bytes one `sendfile` call is asked for.
const CHUNK: u64 = 4 << 20;

/// A regular file under the root, open, with what its headers need.
pub(super) struct Opened {
    file: File,
    path: PathBuf,
    size: u64,
    mtime: Duration,
}

/// Why a request names no file to send.
#[derive(Debug)]
pub(super) enum Refusal {
    /// Outside the root, missing, a directory, a device or a FIFO: 404,
    /// whichever, so nothing is told about what exists outside.
    NotFound,
    /// A regular file under the root that could not be opened (permissions,
    /// out of descriptors, EIO): not a 404, which would send an admin
    /// looking for a file that is there.
    Unreadable { path: PathBuf, error: io::Error },
}

/// The regular file `requested` (decoded) names under `root`.
pub(super) fn open(root: &Path, requested: &[u8]) -> Result<Opened, Refusal> {
    let path = crate::serve::path::resolve(root, requested).ok_or(Refusal::NotFound)?;
    match std::fs::metadata(&path) {
        Ok(meta) if meta.is_file() => {}
        _ => return Err(Refusal::NotFound),
    }
    let (file, meta) = match crate::serve::path::open_resolved(&path) {
        Ok(opened) => opened,
        // Whatever vanished or was swapped for a link since resolving.
        Err(e)
            if matches!(
                e.kind(),
                io::ErrorKind::NotFound | io::ErrorKind::NotADirectory
            ) =>
        {
            return Err(Refusal::NotFound);
        }
        Err(e) if e.raw_os_error() == Some(libc::ELOOP) => return Err(Refusal::NotFound),
        Err(error) => return Err(Refusal::Unreadable { path, error }),
    };
    if !meta.is_file() {
        return Err(Refusal::NotFound);
    }
    let mtime = meta.modified().unwrap_or(UNIX_EPOCH);
    Ok(Opened {
        file,
        path,
        size: meta.len(),
        mtime: mtime.duration_since(UNIX_EPOCH).unwrap_or_default(),
    })
}

/// The status for a file that is there but could not be opened: 503 when
/// the process is out of descriptors (worth a retry), 403 when it may not
/// read it, else 500.
pub(super) fn unreadable_status(error: &io::Error) -> u16 {
    match error.raw_os_error() {
        Some(libc::EMFILE | libc::ENFILE) => 503,
        _ if error.kind() == io::ErrorKind::PermissionDenied => 403,
        _ => 500,
    }
}

/// Whether the request's validators say the client's copy is current:
/// If-None-Match when present, else If-Modified-Since.
fn not_modified(head: &Head, etag: &str, mtime: u64) -> bool {
    let mut listed = head.headers_named("if-none-match").peekable();
    if listed.peek().is_some() {
        return listed.any(|v| proto::etag_listed(v, etag));
    }
    head.header("if-modified-since")
        .and_then(proto::parse_http_date)
        .is_some_and(|since| mtime <= since)
}

/// Whether a Range applies: without If-Range always, with it only if it
/// names the current entity (strong ETag equality, or the exact date).
fn range_applies(head: &Head, etag: &str, mtime: u64) -> bool {
    match head.header("if-range").map(<[u8]>::trim_ascii) {
        None => true,
        Some(v) if v.starts_with(b"\"") => v == etag.as_bytes(),
        Some(v) => proto::parse_http_date(v) == Some(mtime),
    }
}

/// Sets or clears TCP_CORK: the head and the start of the body leave in
/// full segments, and clearing it pushes out the tail at once.
fn cork(stream: &TcpStream, on: bool) {
    let value: libc::c_int = on.into();
    // SAFETY: a valid socket fd and a pointer to a c_int of the given size.
    unsafe {
        libc::setsockopt(
            stream.as_raw_fd(),
            libc::IPPROTO_TCP,
            libc::TCP_CORK,
            (&raw const value).cast(),
            size_of::<libc::c_int>() as libc::socklen_t,
        );
    }
}

/// Answers GET or HEAD for `opened`.
pub(super) async fn respond(
    stream: &mut TcpStream,
    head: &Head,
    opened: &Opened,
    keep: bool,
    timeout: Duration,
) -> Sent {
    let size = opened.size;
    let mtime = opened.mtime.as_secs();
    let etag = format!("\"{size:x}-{:x}\"", opened.mtime.as_nanos());
    let validated = |status| {
        ResponseHead::new(status)
            .header("Last-Modified", proto::http_date(mtime))
            .header("ETag", &etag)
    };
    if not_modified(head, &etag, mtime) {
        let bytes = validated(304).finish(keep, Some(head));
        let written = write_all(stream, &bytes, timeout).await;
        return sent(304, 0, keep && written);
    }
    let range = match head.header("range") {
        Some(value) if range_applies(head, &etag, mtime) => proto::parse_range(value, size),
        _ => ByteRange::Full,
    };
    let (status, start, length) = match range {
        ByteRange::Full => (200, 0, size),
        ByteRange::Part { start, end } => (206, start, end - start + 1),
        ByteRange::Unsatisfiable => {
            let bytes = ResponseHead::new(416)
                .header("Content-Range", format_args!("bytes */{size}"))
                .header("Content-Length", 0)
                .finish(keep, Some(head));
            let written = write_all(stream, &bytes, timeout).await;
            return sent(416, 0, keep && written);
        }
    };
    let mut response = validated(status)
        .header("Content-Type", proto::content_type(&opened.path))
        .header("Content-Length", length)
        .header("Accept-Ranges", "bytes");
    if status == 206 {
        let last = start + length - 1;
        response = response.header("Content-Range", format_args!("bytes {start}-{last}/{size}"));
    }
    let bytes = response.finish(keep, Some(head));
    let body = head.method != "HEAD" && length > 0;
    if body {
        cork(stream, true);
    }
    if !write_all(stream, &bytes, timeout).await {
        return sent(status, 0, false);
    }
    if !body {
        return sent(status, 0, keep);
    }
    let (bytes, result) = sendfile(stream, &opened.file, start, length, timeout).await;
    cork(stream, false);
    sent(status, bytes, keep && result.is_ok())
}

fn sent(status: u16, bytes: u64, keep: bool) -> Sent {
    Sent {
        status,
        bytes,
        keep,
    }
}

/// Sends `length` bytes of `file` from `offset` with `sendfile(2)` on the
/// non-blocking socket: waits for writability, takes short writes, retries
/// on EAGAIN/EINTR, gives up when the peer reads nothing for `stall`.
/// Returns the bytes sent, and an error if not all of them were.
async fn sendfile(
    stream: &TcpStream,
    file: &File,
    mut offset: u64,
    length: u64,
    stall: Duration,
) -> (u64, io::Result<()>) {
    let (socket, fd) = (stream.as_raw_fd(), file.as_raw_fd());
    let mut sent = 0;
    while sent < length {
        let count = (length - sent).min(CHUNK) as usize;
        // `async_io` waits for writability, runs the call, and on EAGAIN
        // clears readiness and waits again; unlike a bare `writable()` loop
        // it also spends the task's cooperative budget, so one fast reader
        // cannot monopolise a runtime thread.
        let call = stream.async_io(Interest::WRITABLE, || {
            let mut off = offset as libc::off_t;
            // SAFETY: both fds stay open for the call; `off` is a valid off_t.
            let n = unsafe { libc::sendfile(socket, fd, &mut off, count) };
            if n < 0 {
                Err(io::Error::last_os_error())
            } else {
                Ok(n as u64)
            }
        });
        match tokio::time::timeout(stall, call).await {
            Err(_) => return (sent, Err(io::ErrorKind::TimedOut.into())),
            Ok(Ok(0)) => {
                let shrank = io::Error::new(io::ErrorKind::UnexpectedEof, "file shrank");
                return (sent, Err(shrank));
            }
            Ok(Ok(n)) => {
                sent += n;
                offset += n;
            }
            Ok(Err(e)) if e.kind() == io::ErrorKind::Interrupted => {}
            Ok(Err(e)) => return (sent, Err(e)),
        }
    }
    (sent, Ok(()))
}
