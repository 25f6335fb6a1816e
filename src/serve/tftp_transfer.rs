//! One read transfer of the TFTP server, from request to last ACK: refuse
//! or open the file, negotiate options, then send blocks (in windows) with
//! retransmission and block-number rollover.

use std::fs::File;
use std::io;
use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::os::fd::AsRawFd;
use std::os::unix::fs::FileExt;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::io::Interest;
use tokio::io::unix::AsyncFd;
use tokio::time::Sleep;

use super::{Ctx, Outcome, TransferRecord};
use crate::serve::limits::Slot;
use crate::serve::path;
use crate::serve::tftp_packet::{
    self as packet, DEFAULT_BLKSIZE, ERR_ACCESS_VIOLATION, ERR_FILE_NOT_FOUND, ERR_NOT_DEFINED,
    MAX_BLKSIZE, Mode, Packet, Request,
};

/// Whether the name tries to climb out (as opposed to naming nothing).
fn is_escape(name: &[u8]) -> bool {
    name.contains(&0)
        || name.contains(&b'\\')
        || name.split(|&b| b == b'/').any(|part| part == b"..")
}

/// What a transfer ended with, before it becomes a record.
struct Ended {
    outcome: Outcome,
    bytes: u64,
}

/// Serves one read; `_slot` counts it against the caps until it ends.
pub(super) async fn serve_read(ctx: Arc<Ctx>, peer: SocketAddr, request: Request, _slot: Slot) {
    let start = Instant::now();
    let mut options = Vec::new();
    let ended = match transfer(&ctx, peer, &request, &mut options).await {
        Ok(ended) => ended,
        Err(e) => Ended {
            outcome: Outcome::Failed(e.to_string()),
            bytes: 0,
        },
    };
    ctx.log(TransferRecord {
        peer,
        write: false,
        file: String::from_utf8_lossy(&request.filename).into_owned(),
        mode: request.mode,
        options,
        bytes: ended.bytes,
        duration: start.elapsed(),
        outcome: ended.outcome,
    });
}

/// The largest block that fits one unfragmented datagram to the peer of a
/// connected socket, from the kernel's path MTU (loopback 65536, Ethernet
/// 1500). `None` when the kernel does not say.
fn path_max_blksize(socket: &UdpSocket) -> Option<u16> {
    let v6 = socket.local_addr().ok()?.is_ipv6();
    let (level, name, overhead) = if v6 {
        (libc::IPPROTO_IPV6, libc::IPV6_MTU, 40 + 8 + 4)
    } else {
        (libc::IPPROTO_IP, libc::IP_MTU, 20 + 8 + 4)
    };
    let mut mtu: libc::c_int = 0;
    let mut len = size_of::<libc::c_int>() as libc::socklen_t;
    // SAFETY: a valid fd, and `mtu`/`len` are a c_int and its size.
    let rc = unsafe {
        libc::getsockopt(
            socket.as_raw_fd(),
            level,
            name,
            (&mut mtu as *mut libc::c_int).cast(),
            &mut len,
        )
    };
    if rc != 0 || mtu <= overhead {
        return None;
    }
    Some((mtu - overhead).min(i32::from(MAX_BLKSIZE)) as u16)
}

/// Grows a socket buffer (`SO_RCVBUF`/`SO_SNDBUF`) to hold `packets`
/// datagrams of `size` bytes, best effort: the kernel caps the request at
/// its own limit, and a buffer already larger is left alone.
pub(crate) fn grow_buffer(socket: &impl AsRawFd, name: libc::c_int, packets: usize, size: usize) {
    // The kernel charges each datagram its payload plus about a KiB of
    // bookkeeping, and reports (and enforces) twice what was set.
    let want = packets.saturating_mul(size + 1024).min(i32::MAX as usize) as libc::c_int;
    let mut current: libc::c_int = 0;
    let mut len = size_of::<libc::c_int>() as libc::socklen_t;
    let fd = socket.as_raw_fd();
    // SAFETY: a valid fd, and `current`/`len` are a c_int and its size.
    let rc = unsafe {
        libc::getsockopt(
            fd,
            libc::SOL_SOCKET,
            name,
            (&mut current as *mut libc::c_int).cast(),
            &mut len,
        )
    };
    if rc == 0 && current >= want.saturating_mul(2) {
        return;
    }
    // SAFETY: a valid fd, and `want` is a c_int of the size given.
    unsafe {
        libc::setsockopt(
            fd,
            libc::SOL_SOCKET,
            name,
            (&want as *const libc::c_int).cast(),
            size_of::<libc::c_int>() as libc::socklen_t,
        );
    }
}

/// The transfer parameters agreed on.
struct Negotiated {
    blksize: usize,
    windowsize: u64,
    timeout: Duration,
    /// The options granted, for the OACK (in the client's order).
    granted: Vec<(String, String)>,
}

fn negotiate(ctx: &Ctx, request: &Request, size: u64, path_max: u16) -> Negotiated {
    let opts = &ctx.options;
    let mut n = Negotiated {
        blksize: usize::from(DEFAULT_BLKSIZE),
        windowsize: 1,
        timeout: opts.timeout,
        granted: Vec::new(),
    };
    let mut seen = Vec::new();
    for (name, value) in &request.options {
        let name = name.to_ascii_lowercase();
        if seen.contains(&name) {
            continue; // the first of a repeated option counts
        }
        seen.push(name.clone());
        let Ok(v) = value.trim().parse::<u64>() else {
            continue; // bad values are ignored, as the option would be
        };
        let granted = match name.as_str() {
            "blksize" if v >= 8 => {
                let max = opts.max_blksize.clamp(8, MAX_BLKSIZE).min(path_max.max(8));
                let b = v.min(u64::from(max));
                n.blksize = b as usize;
                b
            }
            "tsize" if request.mode == Mode::Octet => size,
            // Longer timeouts are left out (RFC 2349): the client then
            // keeps to its default, and an abandoned transfer ends sooner.
            "timeout" if (1..=opts.max_timeout.as_secs().min(255)).contains(&v) => {
                n.timeout = Duration::from_secs(v);
                v
            }
            "windowsize" if (1..=65535).contains(&v) => {
                let w = v.min(u64::from(opts.max_windowsize.max(1)));
                n.windowsize = w;
                w
            }
            _ => continue,
        };
        n.granted.push((name, granted.to_string()));
    }
    n
}

/// The transfer's bytes as blocks, read ahead in large chunks off the
/// runtime's threads and kept from the oldest unacknowledged block on, so a
/// window can be sent again.
struct Source {
    file: Arc<File>,
    netascii: bool,
    /// Next offset to read in the file.
    read_at: u64,
    eof: bool,
    /// Wire bytes (converted for netascii) from stream offset `buf_start`.
    buf: Vec<u8>,
    buf_start: u64,
    /// Bytes before this stream offset are no longer needed.
    keep_from: u64,
    chunk: Vec<u8>,
}

const READ_CHUNK: usize = 256 * 1024;

impl Source {
    fn new(file: File, netascii: bool) -> Source {
        Source {
            file: Arc::new(file),
            netascii,
            read_at: 0,
            eof: false,
            buf: Vec::new(),
            buf_start: 0,
            keep_from: 0,
            chunk: Vec::new(),
        }
    }

    /// The wire bytes in `[start, end)`, fewer at the end of the file.
    async fn range(&mut self, start: u64, end: u64) -> io::Result<&[u8]> {
        while !self.eof && self.buf_start + (self.buf.len() as u64) < end {
            let unneeded = (self.keep_from - self.buf_start) as usize;
            if unneeded > 0 {
                self.buf.drain(..unneeded);
                self.buf_start = self.keep_from;
            }
            let missing = (end - self.buf_start) as usize - self.buf.len();
            let want = missing.max(READ_CHUNK);
            let file = self.file.clone();
            let offset = self.read_at;
            let mut chunk = std::mem::take(&mut self.chunk);
            chunk.resize(want, 0);
            let (read, chunk) = tokio::task::spawn_blocking(move || {
                let r = file.read_at(&mut chunk, offset);
                (r, chunk)
            })
            .await
            .map_err(io::Error::other)?;
            let n = read?;
            if n == 0 {
                self.eof = true;
            } else if self.netascii {
                packet::netascii_encode(&chunk[..n], &mut self.buf);
            } else {
                self.buf.extend_from_slice(&chunk[..n]);
            }
            self.read_at += n as u64;
            self.chunk = chunk;
        }
        let have = self.buf.len();
        let from = ((start - self.buf_start) as usize).min(have);
        let to = ((end - self.buf_start) as usize).min(have);
        Ok(&self.buf[from..to])
    }

    fn release_before(&mut self, offset: u64) {
        self.keep_from = self.keep_from.max(offset);
    }
}

/// A transfer's socket, connected to the client and registered for
/// readability only. A UDP socket is nearly always writable, and with
/// write interest every send (on loopback at once, elsewhere when the NIC
/// frees the datagram) wakes the runtime with an EPOLLOUT edge that nobody
/// waits for: one wasted poll per block.
struct Conn(AsyncFd<UdpSocket>);

impl Conn {
    fn connect(local: IpAddr, peer: SocketAddr) -> io::Result<Conn> {
        let socket = UdpSocket::bind(SocketAddr::new(local, 0))?;
        socket.connect(peer)?;
        socket.set_nonblocking(true)?;
        // SAFETY: the AsyncFd owns the std socket, whose fd stays open and
        // the same until the AsyncFd is dropped.
        let fd = unsafe { AsyncFd::register_with_interest(socket, Interest::READABLE) };
        Ok(Conn(fd.map_err(io::Error::from)?))
    }

    fn socket(&self) -> &UdpSocket {
        self.0.get_ref()
    }

    async fn send(&self, datagram: &[u8]) -> io::Result<()> {
        loop {
            match self.socket().send(datagram) {
                Ok(_) => return Ok(()),
                // A full send buffer (a window larger than it, on a slow
                // link) drains by itself; there is no write interest to
                // wait on, and this is rare enough to poll.
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    tokio::time::sleep(Duration::from_millis(1)).await;
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// Receives one datagram, trying the socket before waiting on it.
    /// Errors wake it too: an ICMP port unreachable comes as EPOLLERR
    /// alone, and `recv` then returns it.
    async fn recv(&self, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            let mut ready = self.0.ready(Interest::READABLE | Interest::ERROR).await?;
            if let Ok(received) = ready.try_io(|s| s.get_ref().recv(buf)) {
                return received;
            }
        }
    }
}

/// The retransmission deadline on one timer per transfer. An ACK pushes
/// the deadline, which only moves a number; the timer, when it fires
/// before the deadline, is re-armed to it. So the timer wheel is touched
/// about once per `timeout`, not once per block.
struct Deadline {
    at: tokio::time::Instant,
    timer: Pin<Box<Sleep>>,
}

impl Deadline {
    fn new(at: tokio::time::Instant) -> Deadline {
        Deadline {
            at,
            timer: Box::pin(tokio::time::sleep_until(at)),
        }
    }

    fn set(&mut self, at: tokio::time::Instant) {
        self.at = at;
        if at < self.timer.deadline() {
            self.timer.as_mut().reset(at);
        }
    }

    /// Completes once the deadline has passed.
    async fn passed(&mut self) {
        loop {
            self.timer.as_mut().await;
            if tokio::time::Instant::now() >= self.at {
                return;
            }
            self.timer.as_mut().reset(self.at);
        }
    }
}

/// `recv` until `deadline`; `None` when it passed first.
async fn recv_until(
    socket: &Conn,
    buf: &mut [u8],
    deadline: &mut Deadline,
) -> Option<io::Result<usize>> {
    tokio::select! {
        biased;
        received = socket.recv(buf) => Some(received),
        () = deadline.passed() => None,
    }
}

/// Refuses the request with an ERROR packet (sent once: errors are not
/// acknowledged).
async fn refuse(socket: &Conn, code: u16, message: &str) -> io::Result<Ended> {
    socket.send(&packet::error(code, message)).await?;
    Ok(Ended {
        outcome: Outcome::Refused {
            code,
            message: message.into(),
        },
        bytes: 0,
    })
}

/// Why a requested name gives no file.
#[derive(Debug)]
enum Refusal {
    NotFound,
    Denied,
    /// Opening it failed otherwise (out of descriptors, EIO, a socket's
    /// ENXIO): logged as such, while the client is told little.
    Failed(io::Error),
}

/// Resolves the name under the root and opens the file, off the runtime's
/// threads (both touch the file system).
async fn open(root: PathBuf, name: Vec<u8>) -> io::Result<Result<(File, u64), Refusal>> {
    tokio::task::spawn_blocking(move || {
        let Some(path) = path::resolve(&root, &name) else {
            return Ok(Err(Refusal::NotFound));
        };
        Ok(match path::open_resolved(&path) {
            Ok((file, meta)) if meta.is_file() => Ok((file, meta.len())),
            // Directories, FIFOs and devices are not files to send.
            Ok(_) => Err(Refusal::NotFound),
            Err(e) => match e.kind() {
                io::ErrorKind::PermissionDenied => Err(Refusal::Denied),
                // Whatever vanished since resolving.
                io::ErrorKind::NotFound | io::ErrorKind::NotADirectory => Err(Refusal::NotFound),
                _ => Err(Refusal::Failed(e)),
            },
        })
    })
    .await
    .map_err(io::Error::other)?
}

async fn transfer(
    ctx: &Ctx,
    peer: SocketAddr,
    request: &Request,
    granted: &mut Vec<(String, String)>,
) -> io::Result<Ended> {
    let socket = Conn::connect(ctx.local_ip, peer)?;

    if is_escape(&request.filename) {
        return refuse(&socket, ERR_ACCESS_VIOLATION, "access violation").await;
    }
    // Symlinks out of the root and absolute paths outside it look exactly
    // like missing files: nothing is told about what exists outside.
    let (file, size) = match open(ctx.root.clone(), request.filename.clone()).await? {
        Ok(f) => f,
        Err(Refusal::NotFound) => {
            return refuse(&socket, ERR_FILE_NOT_FOUND, "file not found").await;
        }
        Err(Refusal::Denied) => {
            return refuse(&socket, ERR_ACCESS_VIOLATION, "access violation").await;
        }
        Err(Refusal::Failed(e)) => {
            socket
                .send(&packet::error(ERR_NOT_DEFINED, "server error"))
                .await?;
            return Ok(Ended {
                outcome: Outcome::Failed(format!("opening the file: {e}")),
                bytes: 0,
            });
        }
    };

    let path_max = path_max_blksize(socket.socket()).unwrap_or(1468);
    let n = negotiate(ctx, request, size, path_max);
    *granted = n.granted.clone();
    if n.windowsize > 1 {
        // A window in flight must fit the socket's send buffer.
        grow_buffer(
            socket.socket(),
            libc::SO_SNDBUF,
            n.windowsize as usize,
            n.blksize + 4,
        );
    }
    let mut buf = vec![0u8; 65536];
    let retries = ctx.options.retries;

    if !n.granted.is_empty() {
        let oack = Packet::Oack {
            options: n.granted.clone(),
        }
        .to_bytes();
        let mut tries = 0;
        'oack: loop {
            socket.send(&oack).await?;
            let mut deadline = Deadline::new(tokio::time::Instant::now() + n.timeout);
            loop {
                let Some(received) = recv_until(&socket, &mut buf, &mut deadline).await else {
                    tries += 1;
                    if tries > retries {
                        return Ok(Ended {
                            outcome: Outcome::TimedOut,
                            bytes: 0,
                        });
                    }
                    continue 'oack;
                };
                match Packet::decode(&buf[..received?]) {
                    Ok(Packet::Ack { block: 0 }) => break 'oack,
                    Ok(Packet::Error { code, message }) => {
                        return Ok(Ended {
                            outcome: Outcome::ClientError { code, message },
                            bytes: 0,
                        });
                    }
                    _ => {}
                }
            }
        }
    }

    let mut source = Source::new(file, request.mode == Mode::NetAscii);
    let bs = n.blksize as u64;
    let mut pkt: Vec<u8> = Vec::with_capacity(n.blksize + 4);
    // Blocks are numbered from 1 here without wrapping; on the wire they
    // are taken modulo 2^16 (65535 is followed by 0, as tftp-hpa and
    // busybox expect).
    let mut base: u64 = 1;
    let mut last: Option<(u64, u64)> = None; // (block, its length)
    let mut tries = 0;
    let mut deadline = Deadline::new(tokio::time::Instant::now() + n.timeout);
    loop {
        // Send a window from `base`, ending early at the short last block.
        let mut hi = base - 1;
        for k in base..base + n.windowsize {
            let data = source.range((k - 1) * bs, k * bs).await?;
            pkt.clear();
            pkt.extend_from_slice(&packet::data_header(k as u16));
            pkt.extend_from_slice(data);
            let len = data.len() as u64;
            socket.send(&pkt).await?;
            hi = k;
            if len < bs {
                last = Some((k, len));
                break;
            }
        }
        // Wait for an ACK inside the window.
        deadline.set(tokio::time::Instant::now() + n.timeout);
        let acked = loop {
            let Some(received) = recv_until(&socket, &mut buf, &mut deadline).await else {
                break None;
            };
            let received = match received {
                Ok(r) => r,
                // ICMP port unreachable: the client is gone.
                Err(e) if e.kind() == io::ErrorKind::ConnectionRefused => {
                    return Ok(Ended {
                        outcome: Outcome::ClientError {
                            code: 0,
                            message: "client port closed".into(),
                        },
                        bytes: (base - 1) * bs,
                    });
                }
                Err(e) => return Err(e),
            };
            match Packet::decode(&buf[..received]) {
                Ok(Packet::Ack { block }) => {
                    // The block this ACK names among base-1..=hi, if any.
                    let offset = u64::from(block.wrapping_sub((base - 1) as u16));
                    // base-1 itself is a duplicate of an ACK already acted
                    // on: ignoring it is what avoids the sorcerer's
                    // apprentice doubling.
                    if offset >= 1 && offset <= hi - (base - 1) {
                        break Some(base - 1 + offset);
                    }
                }
                Ok(Packet::Error { code, message }) => {
                    return Ok(Ended {
                        outcome: Outcome::ClientError { code, message },
                        bytes: (base - 1) * bs,
                    });
                }
                _ => {}
            }
        };
        match acked {
            Some(k) => {
                tries = 0;
                if let Some((last_block, len)) = last
                    && k == last_block
                {
                    return Ok(Ended {
                        outcome: Outcome::Sent,
                        bytes: (k - 1) * bs + len,
                    });
                }
                // Acknowledged up to k: the next window starts after it
                // (sending again whatever of this window followed k).
                base = k + 1;
                source.release_before(k * bs);
            }
            None => {
                tries += 1;
                if tries > retries {
                    return Ok(Ended {
                        outcome: Outcome::TimedOut,
                        bytes: (base - 1) * bs,
                    });
                }
            }
        }
    }
}
