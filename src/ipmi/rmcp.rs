//! The async RMCP+ client session: one UDP socket per BMC, the RAKP
//! handshake (handshake.rs), then signed and encrypted requests with
//! retries, sequence checks and reconnection when the BMC forgets us.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use super::crypto::{CipherSuite, SessionKeys};
use super::error::{IpmiError, Result};
use super::handshake::{check_rmcp_plus, handshake, negotiate};
use super::link::{Link, completion};
use super::message::{Request, Response, netfn};
use super::packet::{self, Frame, payload};
use super::rakp::ADMINISTRATOR;
use super::seq_window::SeqWindow;
use super::sol_driver::CallHandle;

/// User name and password. Debug never shows the password.
#[derive(Clone)]
pub struct Credentials {
    pub username: String,
    pub password: String,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Credentials({:?}, <redacted>)", self.username)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CipherChoice {
    /// Ask the BMC and prefer 17 over 3.
    Auto,
    Fixed(CipherSuite),
}

#[derive(Debug, Clone, Copy)]
pub struct Timing {
    /// How long to wait for each reply before resending.
    pub timeout: Duration,
    /// Resends after the first try.
    pub retries: u32,
    /// Idle time after which `keepalive` pings the BMC (BMCs drop idle
    /// sessions after about a minute).
    pub keepalive: Duration,
}

impl Default for Timing {
    fn default() -> Self {
        Timing {
            timeout: Duration::from_millis(1000),
            retries: 2,
            keepalive: Duration::from_secs(20),
        }
    }
}

#[derive(Debug, Clone)]
pub struct Target {
    pub addr: SocketAddr,
    pub credentials: Credentials,
    pub cipher: CipherChoice,
    pub timing: Timing,
}

/// Counters a caller can show or assert on.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Stats {
    pub retransmits: u64,
    /// Inbound datagrams that failed parsing, integrity, decryption or the
    /// sequence window.
    pub dropped: u64,
    pub reconnects: u64,
}

/// Crypto and sequence state of an established session.
pub(super) struct Secured {
    keys: SessionKeys,
    pub(super) bmc_session_id: u32,
    console_session_id: u32,
    out_seq: u32,
    inbound: SeqWindow,
    dropped: u64,
}

impl Secured {
    pub(super) fn new(keys: SessionKeys, bmc_session_id: u32, console_session_id: u32) -> Secured {
        Secured {
            keys,
            bmc_session_id,
            console_session_id,
            out_seq: 0,
            inbound: SeqWindow::default(),
            dropped: 0,
        }
    }

    fn seal(&mut self, payload_type: u8, payload: &[u8]) -> Vec<u8> {
        self.out_seq = self.out_seq.wrapping_add(1).max(1);
        packet::encode_v20(
            payload_type,
            self.bmc_session_id,
            self.out_seq,
            payload,
            Some(&self.keys),
        )
    }

    /// Verifies, decrypts and sequence-checks one inbound datagram:
    /// (payload type, session sequence number, payload).
    fn unseal(&mut self, datagram: &[u8]) -> Option<(u8, u32, Vec<u8>)> {
        let opened = match packet::parse(datagram, self.keys.suite.integrity_len()) {
            Ok(Frame::V20 {
                header,
                payload,
                signed,
                auth_code,
            }) if header.session_id == self.console_session_id => {
                packet::open(&header, payload, signed, auth_code, &self.keys)
                    .ok()
                    .filter(|_| self.inbound.accept(header.session_seq))
                    .map(|plain| (header.payload_type, header.session_seq, plain))
            }
            _ => None,
        };
        if opened.is_none() {
            self.dropped += 1;
        }
        opened
    }
}

/// One established RMCP+ session.
pub struct Session {
    link: Link,
    secured: Secured,
    suite: CipherSuite,
    rq_seq: u8,
    /// When this session last sent an IPMI request: what a BMC's idle timer
    /// counts (ipmi_sim and others ignore SOL packets, ACKs included).
    last_request: Instant,
}

impl Session {
    /// Handshake: channel capabilities, cipher negotiation, Open Session,
    /// RAKP 1–4, then Set Session Privilege Level (ADMINISTRATOR).
    pub async fn open(target: &Target) -> Result<Session> {
        let creds = &target.credentials;
        if creds.username.len() > 16 || creds.password.len() > 20 {
            return Err(IpmiError::Protocol {
                command: "session setup",
                why: "IPMI user names are at most 16 bytes and passwords at most 20".into(),
            });
        }
        let mut link = Link::connect(target.addr, target.timing).await?;
        check_rmcp_plus(&mut link).await?;
        let suite = match target.cipher {
            CipherChoice::Fixed(suite) => suite,
            CipherChoice::Auto => negotiate(&mut link).await?,
        };
        let secured = handshake(&mut link, suite, creds).await?;
        let mut session = Session {
            link,
            secured,
            suite,
            rq_seq: 0,
            last_request: Instant::now(),
        };
        session
            .call(
                netfn::APP,
                0x3B,
                &[ADMINISTRATOR],
                "Set Session Privilege Level",
            )
            .await?;
        Ok(session)
    }

    pub fn suite(&self) -> CipherSuite {
        self.suite
    }

    /// Time since the last IPMI request (SOL traffic does not count).
    pub fn idle(&self) -> Duration {
        self.last_request.elapsed()
    }

    pub fn stats(&self) -> Stats {
        Stats {
            dropped: self.secured.dropped,
            ..self.link.stats
        }
    }

    pub(super) fn timing(&self) -> Timing {
        self.link.timing
    }

    pub(super) fn addr(&self) -> SocketAddr {
        self.link.addr
    }

    /// When this session last sent an IPMI request (what a BMC's idle
    /// timer sees; SOL packets do not reset it).
    pub(super) fn last_request(&self) -> Instant {
        self.last_request
    }

    /// A request with the next requester sequence number.
    pub(super) fn next_request(&mut self, netfn: u8, cmd: u8, data: &[u8]) -> Request {
        self.rq_seq = (self.rq_seq + 1) & 0x3F;
        Request::new(netfn, cmd, self.rq_seq, data)
    }

    /// Payload drivers (SOL) share the session's socket: they send sealed
    /// payloads and sort every inbound datagram themselves.
    pub(super) async fn send_payload(&mut self, payload_type: u8, payload: &[u8]) -> Result<()> {
        let packet = self.secured.seal(payload_type, payload);
        if payload_type == payload::IPMI {
            self.last_request = Instant::now();
        }
        self.link
            .socket
            .send(&packet)
            .await
            .map(drop)
            .map_err(|source| IpmiError::Io {
                addr: self.link.addr,
                source,
            })
    }

    /// One inbound datagram, verified and decrypted: (payload type, session
    /// sequence number, payload), or `None` if it was dropped (and counted).
    pub(super) async fn recv_payload(
        &mut self,
        buf: &mut [u8],
    ) -> Result<Option<(u8, u32, Vec<u8>)>> {
        let n = self
            .link
            .socket
            .recv(buf)
            .await
            .map_err(|source| match source.kind() {
                std::io::ErrorKind::ConnectionRefused => IpmiError::PortUnreachable {
                    addr: self.link.addr,
                },
                _ => IpmiError::Io {
                    addr: self.link.addr,
                    source,
                },
            })?;
        Ok(self.secured.unseal(&buf[..n]))
    }

    /// Sends one request and returns the response data; a non-zero
    /// completion code becomes [`IpmiError::Completion`].
    pub async fn call(
        &mut self,
        netfn: u8,
        cmd: u8,
        data: &[u8],
        command: &'static str,
    ) -> Result<Vec<u8>> {
        let req = self.next_request(netfn, cmd, data);
        let message = req.encode();
        let tries = self.link.tries();
        let resp = self
            .link
            .exchange(
                &mut self.secured,
                command,
                tries,
                |s| s.seal(payload::IPMI, &message),
                |s, d| {
                    let (kind, _, plain) = s.unseal(d)?;
                    // Other payloads (SOL) belong to the SOL layer.
                    if kind != payload::IPMI {
                        return None;
                    }
                    let resp = Response::decode(&plain).ok()?;
                    (resp.rq_seq == req.rq_seq && resp.cmd == req.cmd).then_some(resp)
                },
            )
            .await?;
        self.last_request = Instant::now();
        completion(resp, command)
    }

    /// Close Session, one try: the BMC frees the slot now instead of at its
    /// idle timeout. Errors are ignored; the session is gone either way.
    pub async fn close(mut self) {
        let id = self.secured.bmc_session_id.to_le_bytes();
        self.link.timing.timeout = self.link.timing.timeout.min(Duration::from_millis(300));
        self.link.timing.retries = 0;
        let _ = self.call(netfn::APP, 0x3C, &id, "Close Session").await;
    }
}

/// A BMC with a lazily opened, persistent session that is reopened once when
/// a request times out (the BMC rebooted or dropped the idle session).
///
/// With a console route ([`Bmc::with_console`]) requests go through the SOL
/// console's session first, and the BMC's own session is opened only while
/// the console is not connected (and closed once the console answers
/// again), so the BMC sees one session, not two.
pub struct Bmc {
    target: Target,
    session: Option<Session>,
    stats: Stats,
    console: Option<CallHandle>,
}

impl Bmc {
    pub fn new(target: Target) -> Bmc {
        Bmc {
            target,
            session: None,
            stats: Stats::default(),
            console: None,
        }
    }

    /// A BMC whose requests ride in the session of the console that serves
    /// `console` ([`super::sol_driver::spawn_with_calls`]) while it is
    /// connected, and fall back on a session of its own when it is not.
    pub fn with_console(target: Target, console: CallHandle) -> Bmc {
        Bmc {
            console: Some(console),
            ..Bmc::new(target)
        }
    }

    /// Whether this BMC has a session of its own open (besides any console).
    pub fn has_own_session(&self) -> bool {
        self.session.is_some()
    }

    pub fn addr(&self) -> SocketAddr {
        self.target.addr
    }

    pub fn stats(&self) -> Stats {
        let live = self
            .session
            .as_ref()
            .map(Session::stats)
            .unwrap_or_default();
        Stats {
            retransmits: self.stats.retransmits + live.retransmits,
            dropped: self.stats.dropped + live.dropped,
            reconnects: self.stats.reconnects,
        }
    }

    /// The suite of the open session, if any.
    pub fn suite(&self) -> Option<CipherSuite> {
        self.session.as_ref().map(Session::suite)
    }

    async fn connect(&mut self) -> Result<&mut Session> {
        if self.session.is_none() {
            let session = Session::open(&self.target).await?;
            // A negotiated suite is kept so reconnects skip the query.
            self.target.cipher = CipherChoice::Fixed(session.suite());
            self.session = Some(session);
        }
        Ok(self.session.as_mut().expect("just opened"))
    }

    fn retire(&mut self) {
        if let Some(old) = self.session.take() {
            let s = old.stats();
            self.stats.retransmits += s.retransmits;
            self.stats.dropped += s.dropped;
        }
    }

    /// [`Session::call`] through the console's session when there is a
    /// connected one; otherwise on the persistent session, opening it first
    /// if needed; a timeout on a reused session reopens it and retries once.
    pub async fn call(
        &mut self,
        netfn: u8,
        cmd: u8,
        data: &[u8],
        command: &'static str,
    ) -> Result<Vec<u8>> {
        if let Some(console) = &self.console {
            match console.call(netfn, cmd, data, command).await {
                Err(IpmiError::ConsoleNotConnected) => {
                    tracing::debug!(bmc = %self.target.addr, command, "console not connected: own session");
                }
                // No answer in the console's session (a BMC that forgot it
                // after a reboot): one more try in a session of our own, as
                // a timeout on a reused session of ours gets.
                Err(IpmiError::Timeout { .. }) => {
                    tracing::debug!(bmc = %self.target.addr, command, "no answer in the console session: own session");
                    self.stats.reconnects += 1;
                }
                answered => {
                    // The BMC answered in the console's session (a completion
                    // code is an answer too): ours is no longer needed.
                    let reached = matches!(answered, Ok(_) | Err(IpmiError::Completion { .. }));
                    if reached && self.session.is_some() {
                        self.close().await;
                    }
                    return answered;
                }
            }
        }
        self.call_own(netfn, cmd, data, command).await
    }

    /// [`Bmc::call`] for a request that must not reach the BMC twice (a
    /// BMC reset): no second session after a timeout, since the BMC may
    /// have acted and gone silent, and come back in time for a repeat.
    pub async fn call_at_most_once(
        &mut self,
        netfn: u8,
        cmd: u8,
        data: &[u8],
        command: &'static str,
    ) -> Result<Vec<u8>> {
        if let Some(console) = &self.console {
            match console.call(netfn, cmd, data, command).await {
                Err(IpmiError::ConsoleNotConnected) => {}
                answered => return answered,
            }
        }
        let result = self.connect().await?.call(netfn, cmd, data, command).await;
        if matches!(&result, Err(e) if e.is_transient()) {
            self.retire();
        }
        result
    }

    async fn call_own(
        &mut self,
        netfn: u8,
        cmd: u8,
        data: &[u8],
        command: &'static str,
    ) -> Result<Vec<u8>> {
        let reused = self.session.is_some();
        let first = self.connect().await?.call(netfn, cmd, data, command).await;
        match first {
            Err(e) if e.is_transient() => {
                self.retire();
                if !reused {
                    return Err(e);
                }
                self.stats.reconnects += 1;
                self.connect().await?.call(netfn, cmd, data, command).await
            }
            other => other,
        }
    }

    /// Pings the BMC (Get Device ID) if the session has been idle longer
    /// than the keepalive interval, so the BMC does not time it out. Without
    /// a session of its own (the console route works) there is nothing to do:
    /// the console keeps its session alive.
    pub async fn keepalive(&mut self) -> Result<()> {
        let idle = self.session.as_ref().map(Session::idle);
        if idle.is_some_and(|idle| idle >= self.target.timing.keepalive) {
            self.call(netfn::APP, 0x01, &[], "Get Device ID").await?;
        }
        Ok(())
    }

    /// Closes the BMC's own session, if open (a console route stays).
    pub async fn close(&mut self) {
        if let Some(session) = self.session.take() {
            let s = session.stats();
            self.stats.retransmits += s.retransmits;
            self.stats.dropped += s.dropped;
            session.close().await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ipmi::crypto::CipherSuite;

    fn secured() -> Secured {
        Secured::new(
            SessionKeys::derive(CipherSuite::Suite17, &[3; 32]),
            0x22,
            0x11,
        )
    }

    /// What the BMC would send us: our console session ID, its own keys.
    fn from_bmc(s: &Secured, seq: u32, body: &[u8]) -> Vec<u8> {
        packet::encode_v20(payload::IPMI, 0x11, seq, body, Some(&s.keys))
    }

    #[test]
    fn inbound_packets_are_verified_sequenced_and_bad_ones_counted() {
        let mut s = secured();
        assert_eq!(
            s.unseal(&from_bmc(&s, 1, b"hi")),
            Some((payload::IPMI, 1, b"hi".to_vec()))
        );
        assert_eq!(s.unseal(&from_bmc(&s, 1, b"hi")), None, "replay");
        let mut forged = from_bmc(&s, 2, b"hi");
        let last = forged.len() - 1;
        forged[last] ^= 0x80;
        assert_eq!(s.unseal(&forged), None, "bad AuthCode");
        assert_eq!(s.unseal(b"\x06\x00\xff\x07garbage"), None);
        let other_session = packet::encode_v20(payload::IPMI, 0x99, 3, b"x", Some(&s.keys));
        assert_eq!(s.unseal(&other_session), None, "another session's packet");
        assert_eq!(s.dropped, 4);
        assert!(s.unseal(&from_bmc(&s, 2, b"ok")).is_some());
    }

    #[test]
    fn outbound_sequence_numbers_start_at_one_and_grow() {
        let mut s = secured();
        let seqs: Vec<u32> = (0..3)
            .map(|_| {
                let pkt = s.seal(payload::IPMI, b"x");
                u32::from_le_bytes(pkt[10..14].try_into().unwrap())
            })
            .collect();
        assert_eq!(seqs, [1, 2, 3]);
    }
}
