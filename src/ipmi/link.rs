//! A connected UDP socket to one BMC and the send / wait / resend loop that
//! every exchange (handshake or session request) goes through.

use std::net::SocketAddr;

use tokio::net::UdpSocket;

use super::error::{IpmiError, Result};
use super::message::{Request, Response};
use super::packet::{self, Frame, payload};
use super::rmcp::{Stats, Timing};

/// A connected UDP socket plus the send/wait/resend loop.
pub(super) struct Link {
    pub(super) socket: UdpSocket,
    pub(super) addr: SocketAddr,
    pub(super) timing: Timing,
    pub(super) stats: Stats,
    /// The tries of the last exchange, so that a caller can tell an answer
    /// to a retransmission may still be on its way.
    pub(super) sends: Sends,
}

/// When an exchange sent its tries.
#[derive(Debug, Clone, Copy)]
pub(super) struct Sends {
    pub count: u32,
    pub first: tokio::time::Instant,
    pub last: tokio::time::Instant,
}

impl Sends {
    fn new() -> Sends {
        let now = tokio::time::Instant::now();
        Sends {
            count: 0,
            first: now,
            last: now,
        }
    }

    fn sent(&mut self) {
        let now = tokio::time::Instant::now();
        if self.count == 0 {
            self.first = now;
        }
        self.last = now;
        self.count += 1;
    }
}

impl Link {
    pub(super) async fn connect(addr: SocketAddr, timing: Timing) -> Result<Link> {
        let io = |source| IpmiError::Io { addr, source };
        let local: SocketAddr = if addr.is_ipv4() {
            "0.0.0.0:0".parse().expect("literal")
        } else {
            "[::]:0".parse().expect("literal")
        };
        let socket = UdpSocket::bind(local).await.map_err(io)?;
        socket.connect(addr).await.map_err(io)?;
        Ok(Link {
            socket,
            addr,
            timing,
            stats: Stats::default(),
            sends: Sends::new(),
        })
    }

    /// Sends `build(state)`, waits for a datagram that `accept` takes, and
    /// resends (rebuilt: new sequence number) on timeout.
    pub(super) async fn exchange<S, T>(
        &mut self,
        state: &mut S,
        step: &'static str,
        tries: u32,
        mut build: impl FnMut(&mut S) -> Vec<u8>,
        mut accept: impl FnMut(&mut S, &[u8]) -> Option<T>,
    ) -> Result<T> {
        let mut refused = false;
        // Datagrams that are not even RMCP/IPMI: a BMC that answers with
        // garbage is told apart from one that does not answer.
        let mut malformed: Option<(u32, &'static str)> = None;
        let mut buf = [0u8; 2048];
        self.sends = Sends::new();
        for attempt in 0..tries {
            if attempt > 0 {
                self.stats.retransmits += 1;
            }
            let packet = build(state);
            self.sends.sent();
            if let Err(source) = self.socket.send(&packet).await {
                if source.kind() == std::io::ErrorKind::ConnectionRefused {
                    refused = true;
                    continue;
                }
                return Err(IpmiError::Io {
                    addr: self.addr,
                    source,
                });
            }
            let deadline = tokio::time::Instant::now() + self.timing.timeout;
            loop {
                match tokio::time::timeout_at(deadline, self.socket.recv(&mut buf)).await {
                    Err(_elapsed) => break,
                    Ok(Err(e)) if e.kind() == std::io::ErrorKind::ConnectionRefused => {
                        // ICMP port unreachable: wait out this try, then resend.
                        refused = true;
                        tokio::time::sleep_until(deadline).await;
                        break;
                    }
                    Ok(Err(source)) => {
                        return Err(IpmiError::Io {
                            addr: self.addr,
                            source,
                        });
                    }
                    Ok(Ok(n)) => {
                        if let Some(out) = accept(state, &buf[..n]) {
                            return Ok(out);
                        }
                        if let Err(packet::PacketError::Malformed(why)) =
                            packet::parse(&buf[..n], 0)
                        {
                            let count = malformed.map_or(0, |(c, _)| c);
                            malformed = Some((count + 1, why));
                        }
                    }
                }
            }
        }
        Err(if let Some((count, why)) = malformed {
            IpmiError::Malformed {
                addr: self.addr,
                step,
                count,
                why,
            }
        } else if refused {
            IpmiError::PortUnreachable { addr: self.addr }
        } else {
            IpmiError::Timeout {
                addr: self.addr,
                tries,
                step,
            }
        })
    }

    pub(super) fn tries(&self) -> u32 {
        self.timing.retries + 1
    }

    /// After an exchange that resent its request: the answers to the
    /// resends, which a slow BMC sends after the one already taken. Waits
    /// until the last resend's answer is due (its send time plus the round
    /// trip the first answer took, and a quarter more) and returns the last
    /// datagram `accept` takes, if any.
    pub(super) async fn answers_to_resends<T>(
        &mut self,
        answered_at: tokio::time::Instant,
        mut accept: impl FnMut(&[u8]) -> Option<T>,
    ) -> Option<T> {
        if self.sends.count < 2 {
            return None;
        }
        let round_trip = answered_at.saturating_duration_since(self.sends.first);
        let deadline = self.sends.last + round_trip + round_trip / 4;
        let mut buf = [0u8; 2048];
        let mut last = None;
        while let Ok(Ok(n)) = tokio::time::timeout_at(deadline, self.socket.recv(&mut buf)).await {
            if let Some(out) = accept(&buf[..n]) {
                last = Some(out);
            }
        }
        last
    }
}

/// Session-less request/response (before or instead of a session).
pub(super) fn sessionless_reply(datagram: &[u8], req: &Request) -> Option<Response> {
    let message = match packet::parse(datagram, 0).ok()? {
        Frame::V15 { message, .. } => message.to_vec(),
        Frame::V20 {
            header, payload, ..
        } if header.session_id == 0 && header.payload_type == payload::IPMI => payload.to_vec(),
        _ => return None,
    };
    let resp = Response::decode(&message).ok()?;
    (resp.rq_seq == req.rq_seq && resp.cmd == req.cmd).then_some(resp)
}

/// A session-less RMCP+ payload of the given type, for the handshake.
pub(super) fn handshake_reply(datagram: &[u8], payload_type: u8) -> Option<Vec<u8>> {
    match packet::parse(datagram, 0).ok()? {
        Frame::V20 {
            header, payload, ..
        } if header.session_id == 0 && header.payload_type == payload_type => {
            Some(payload.to_vec())
        }
        _ => None,
    }
}

pub(super) fn completion(resp: Response, command: &'static str) -> Result<Vec<u8>> {
    if resp.completion == 0 {
        Ok(resp.data)
    } else {
        Err(IpmiError::Completion {
            command,
            code: resp.completion,
        })
    }
}
