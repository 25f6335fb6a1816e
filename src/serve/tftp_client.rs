//! A small TFTP client (read only) with `blksize`, `tsize` and RFC 7440
//! `windowsize`: what a virtual petitboot host fetches its config, kernel
//! and initrd with, and what the TFTP benchmark measures windows with.

use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

use tokio::net::UdpSocket;
use tokio::time::timeout;

use super::tftp::grow_buffer;
use super::tftp_packet::{
    self as packet, DEFAULT_BLKSIZE, ERR_OPTION_REFUSED, ERR_UNKNOWN_TID, MAX_BLKSIZE, Mode,
    NetasciiDecoder, Packet, Request,
};

/// What to ask the server for.
#[derive(Debug, Clone)]
pub struct ClientOptions {
    /// `blksize` to request (8–65464); `None` keeps 512.
    pub blksize: Option<u16>,
    /// `windowsize` to request (RFC 7440); `None` is one block per ACK.
    pub windowsize: Option<u16>,
    /// Whether to ask for `tsize` (used to size the buffer up front).
    pub tsize: bool,
    pub mode: Mode,
    /// How long to wait for a packet before sending the last one again.
    pub timeout: Duration,
    /// How many times in a row to send again before giving up.
    pub retries: u32,
}

impl Default for ClientOptions {
    fn default() -> Self {
        ClientOptions {
            blksize: None,
            windowsize: None,
            tsize: false,
            mode: Mode::Octet,
            timeout: Duration::from_secs(1),
            retries: 5,
        }
    }
}

/// Why a fetch failed.
#[derive(Debug, thiserror::Error)]
pub enum TftpError {
    #[error("TFTP I/O error: {0}")]
    Io(#[from] io::Error),
    /// The server answered with an ERROR packet.
    #[error("TFTP server error {code}: {message}")]
    Server { code: u16, message: String },
    #[error("TFTP server stopped answering")]
    Timeout,
    #[error("TFTP protocol error: {0}")]
    Protocol(String),
}

/// Largest buffer reserved up front from a server's `tsize`.
const MAX_RESERVE: u64 = 256 << 20;

/// Fetches `path` from the TFTP server at `server`.
pub async fn fetch(
    server: SocketAddr,
    path: &str,
    options: ClientOptions,
) -> Result<Vec<u8>, TftpError> {
    let any: IpAddr = if server.is_ipv4() {
        Ipv4Addr::UNSPECIFIED.into()
    } else {
        Ipv6Addr::UNSPECIFIED.into()
    };
    let socket = UdpSocket::bind(SocketAddr::new(any, 0)).await?;

    let mut requested = Vec::new();
    if let Some(b) = options.blksize {
        if !(8..=MAX_BLKSIZE).contains(&b) {
            return Err(TftpError::Protocol(format!("blksize {b} out of 8..=65464")));
        }
        requested.push(("blksize".to_string(), b.to_string()));
    }
    if options.tsize {
        requested.push(("tsize".to_string(), "0".to_string()));
    }
    if let Some(w) = options.windowsize {
        if w == 0 {
            return Err(TftpError::Protocol("windowsize 0".into()));
        }
        requested.push(("windowsize".to_string(), w.to_string()));
        // Leave room for a whole window in the receive buffer.
        let block = usize::from(options.blksize.unwrap_or(DEFAULT_BLKSIZE));
        grow_buffer(&socket, libc::SO_RCVBUF, usize::from(w), block + 4);
    }
    let rrq = Packet::Rrq(Request {
        filename: path.as_bytes().to_vec(),
        mode: options.mode,
        options: requested,
    })
    .to_bytes();

    let mut blksize = usize::from(DEFAULT_BLKSIZE);
    let mut window: u32 = 1;
    let mut peer: Option<SocketAddr> = None;
    let mut out = Vec::new();
    let mut decoder = NetasciiDecoder::default();
    // Next block expected, without wrapping (the wire number is its low 16
    // bits), and how many arrived in order since the last ACK.
    let mut expected: u64 = 1;
    let mut since_ack: u32 = 0;
    let mut gap_acked = false;
    let mut tries = 0;
    let mut buf = vec![0u8; 65536];

    socket.send_to(&rrq, server).await?;
    loop {
        let (n, from) = match timeout(options.timeout, socket.recv_from(&mut buf)).await {
            Ok(r) => r?,
            Err(_) => {
                tries += 1;
                if tries > options.retries {
                    return Err(TftpError::Timeout);
                }
                match peer {
                    // Nothing heard yet: ask again.
                    None => socket.send_to(&rrq, server).await?,
                    // RFC 7440: on timeout, ACK the last block in order.
                    Some(p) => {
                        let last = packet::ack((expected - 1) as u16);
                        socket.send_to(&last, p).await?
                    }
                };
                since_ack = 0;
                continue;
            }
        };
        if from.ip() != server.ip() {
            continue;
        }
        if let Some(p) = peer
            && p != from
        {
            let e = packet::error(ERR_UNKNOWN_TID, "unknown transfer id");
            socket.send_to(&e, from).await?;
            continue;
        }
        let Ok(received) = Packet::decode(&buf[..n]) else {
            continue;
        };
        match received {
            Packet::Oack { options: granted } if expected == 1 => {
                for (name, value) in &granted {
                    let v: Option<u64> = value.parse().ok();
                    let ok = match name.to_ascii_lowercase().as_str() {
                        "blksize" => match (v, options.blksize) {
                            (Some(v), Some(asked)) if (8..=u64::from(asked)).contains(&v) => {
                                blksize = v as usize;
                                true
                            }
                            _ => false,
                        },
                        "windowsize" => match (v, options.windowsize) {
                            (Some(v), Some(asked)) if (1..=u64::from(asked)).contains(&v) => {
                                window = v as u32;
                                true
                            }
                            _ => false,
                        },
                        "tsize" => match v {
                            Some(v) if options.tsize => {
                                out.reserve(v.min(MAX_RESERVE) as usize);
                                true
                            }
                            _ => false,
                        },
                        _ => false,
                    };
                    if !ok {
                        let e = packet::error(ERR_OPTION_REFUSED, "unexpected option");
                        socket.send_to(&e, from).await?;
                        return Err(TftpError::Protocol(format!(
                            "server granted an option not asked for: {name}={value}"
                        )));
                    }
                }
                peer = Some(from);
                tries = 0;
                socket.send_to(&packet::ack(0), from).await?;
            }
            Packet::Data { block, data } => {
                if peer.is_none() {
                    // No OACK: the server ignored every option.
                    peer = Some(from);
                }
                let wire_expected = expected as u16;
                if block == wire_expected {
                    if data.len() > blksize {
                        let e = packet::error(0, "block larger than blksize");
                        socket.send_to(&e, from).await?;
                        return Err(TftpError::Protocol(format!(
                            "block {block} of {} bytes exceeds blksize {blksize}",
                            data.len()
                        )));
                    }
                    match options.mode {
                        Mode::Octet => out.extend_from_slice(data),
                        Mode::NetAscii => decoder.push(data, &mut out),
                    }
                    let last = data.len() < blksize;
                    expected += 1;
                    since_ack += 1;
                    tries = 0;
                    gap_acked = false;
                    if last || since_ack >= window {
                        socket.send_to(&packet::ack(block), from).await?;
                        since_ack = 0;
                    }
                    if last {
                        decoder.finish(&mut out);
                        return Ok(out);
                    }
                } else if block == wire_expected.wrapping_sub(1) {
                    // The end of a window we already have: our ACK was lost.
                    socket.send_to(&packet::ack(block), from).await?;
                    since_ack = 0;
                } else if block.wrapping_sub(wire_expected) < 0x8000 && !gap_acked {
                    // A block was lost: ACK the last one in order, once, so
                    // the server sends again from there.
                    let last = packet::ack(wire_expected.wrapping_sub(1));
                    socket.send_to(&last, from).await?;
                    since_ack = 0;
                    gap_acked = true;
                }
            }
            Packet::Error { code, message } => return Err(TftpError::Server { code, message }),
            _ => {}
        }
    }
}
