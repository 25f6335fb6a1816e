//! The async RMCP+ client session: one UDP socket per BMC, the RAKP
//! handshake, then signed and encrypted requests with retries, sequence
//! checks and reconnection when the BMC forgets us.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use tokio::net::UdpSocket;

use super::crypto::{CipherSuite, Exchange, SessionKeys, random};
use super::error::{IpmiError, Result};
use super::message::{Request, Response, netfn};
use super::packet::{self, Frame, payload};
use super::rakp::{
    ADMINISTRATOR, NAME_ONLY_LOOKUP, OpenSessionRequest, OpenSessionResponse, Rakp1, Rakp2,
    RakpCode,
};

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

/// A connected UDP socket plus the send/wait/resend loop.
struct Link {
    socket: UdpSocket,
    addr: SocketAddr,
    timing: Timing,
    stats: Stats,
}

impl Link {
    async fn connect(addr: SocketAddr, timing: Timing) -> Result<Link> {
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
        })
    }

    /// Sends `build(state)`, waits for a datagram that `accept` takes, and
    /// resends (rebuilt: new sequence number) on timeout.
    async fn exchange<S, T>(
        &mut self,
        state: &mut S,
        step: &'static str,
        tries: u32,
        mut build: impl FnMut(&mut S) -> Vec<u8>,
        mut accept: impl FnMut(&mut S, &[u8]) -> Option<T>,
    ) -> Result<T> {
        let mut refused = false;
        let mut buf = [0u8; 2048];
        for attempt in 0..tries {
            if attempt > 0 {
                self.stats.retransmits += 1;
            }
            let packet = build(state);
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
                    }
                }
            }
        }
        Err(if refused {
            IpmiError::PortUnreachable { addr: self.addr }
        } else {
            IpmiError::Timeout {
                addr: self.addr,
                tries,
                step,
            }
        })
    }

    fn tries(&self) -> u32 {
        self.timing.retries + 1
    }
}

/// Session-less request/response (before or instead of a session).
fn sessionless_reply(datagram: &[u8], req: &Request) -> Option<Response> {
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
fn handshake_reply(datagram: &[u8], payload_type: u8) -> Option<Vec<u8>> {
    match packet::parse(datagram, 0).ok()? {
        Frame::V20 {
            header, payload, ..
        } if header.session_id == 0 && header.payload_type == payload_type => {
            Some(payload.to_vec())
        }
        _ => None,
    }
}

fn completion(resp: Response, command: &'static str) -> Result<Vec<u8>> {
    if resp.completion == 0 {
        Ok(resp.data)
    } else {
        Err(IpmiError::Completion {
            command,
            code: resp.completion,
        })
    }
}

/// Sliding window over inbound session sequence numbers: rejects replays
/// and packets older than 32 behind the newest.
#[derive(Debug, Default, Clone, Copy)]
pub struct SeqWindow {
    highest: u32,
    seen: u32,
}

impl SeqWindow {
    pub fn accept(&mut self, seq: u32) -> bool {
        if seq == 0 {
            return false;
        }
        if seq > self.highest {
            let shift = seq - self.highest;
            self.seen = if shift >= 32 { 0 } else { self.seen << shift };
            self.seen |= 1;
            self.highest = seq;
            return true;
        }
        let back = self.highest - seq;
        if back >= 32 || self.seen & (1 << back) != 0 {
            return false;
        }
        self.seen |= 1 << back;
        true
    }
}

/// Crypto and sequence state of an established session.
struct Secured {
    keys: SessionKeys,
    bmc_session_id: u32,
    console_session_id: u32,
    out_seq: u32,
    inbound: SeqWindow,
    dropped: u64,
}

impl Secured {
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

    /// Verifies, decrypts and sequence-checks one inbound datagram.
    fn unseal(&mut self, datagram: &[u8]) -> Option<(u8, Vec<u8>)> {
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
                    .map(|plain| (header.payload_type, plain))
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
    last_used: Instant,
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
            last_used: Instant::now(),
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

    pub fn idle(&self) -> Duration {
        self.last_used.elapsed()
    }

    pub fn stats(&self) -> Stats {
        Stats {
            dropped: self.secured.dropped + self.link.stats.dropped,
            ..self.link.stats
        }
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
        self.rq_seq = (self.rq_seq + 1) & 0x3F;
        let req = Request::new(netfn, cmd, self.rq_seq, data);
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
                    let (kind, plain) = s.unseal(d)?;
                    // Other payloads (SOL) belong to the SOL layer.
                    if kind != payload::IPMI {
                        return None;
                    }
                    let resp = Response::decode(&plain).ok()?;
                    (resp.rq_seq == req.rq_seq && resp.cmd == req.cmd).then_some(resp)
                },
            )
            .await?;
        self.last_used = Instant::now();
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

/// Get Channel Authentication Capabilities (IPMI 1.5 framing, as every BMC
/// answers it): the BMC must support IPMI 2.0.
async fn check_rmcp_plus(link: &mut Link) -> Result<()> {
    const COMMAND: &str = "Get Channel Authentication Capabilities";
    let req = Request::new(netfn::APP, 0x38, 0, &[0x8E, ADMINISTRATOR]);
    let packet = packet::encode_v15(&req.encode());
    let tries = link.tries();
    let resp = link
        .exchange(
            &mut (),
            COMMAND,
            tries,
            |_| packet.clone(),
            |_, d| sessionless_reply(d, &req),
        )
        .await?;
    let data = completion(resp, COMMAND)?;
    // Byte 2 bit 7: extended capabilities present; byte 4 bit 1: IPMI 2.0.
    if data.len() < 4 || data[1] & 0x80 == 0 || data[3] & 0x02 == 0 {
        return Err(IpmiError::NoRmcpPlus);
    }
    Ok(())
}

/// Cipher suite IDs the BMC offers (Get Channel Cipher Suites, session-less),
/// for diagnostics: `Session::open` asks by itself when the choice is auto.
pub async fn offered_suites(link_addr: SocketAddr, timing: Timing) -> Result<Vec<u8>> {
    let mut link = Link::connect(link_addr, timing).await?;
    list_suites(&mut link).await
}

async fn list_suites(link: &mut Link) -> Result<Vec<u8>> {
    // ipmi_sim answers this only in IPMI 1.5 framing; others may want
    // session-less RMCP+, so that is the fallback.
    match list_suites_framed(link, false).await {
        Err(IpmiError::Timeout { .. }) => list_suites_framed(link, true).await,
        other => other,
    }
}

async fn list_suites_framed(link: &mut Link, rmcp_plus: bool) -> Result<Vec<u8>> {
    const COMMAND: &str = "Get Channel Cipher Suites";
    let mut records = Vec::new();
    for index in 0..0x40u8 {
        let req = Request::new(netfn::APP, 0x54, index, &[0x0E, 0x00, 0x80 | index]);
        let packet = if rmcp_plus {
            packet::encode_v20(payload::IPMI, 0, 0, &req.encode(), None)
        } else {
            packet::encode_v15(&req.encode())
        };
        let tries = link.tries();
        let resp = link
            .exchange(
                &mut (),
                COMMAND,
                tries,
                |_| packet.clone(),
                |_, d| sessionless_reply(d, &req),
            )
            .await?;
        let data = completion(resp, COMMAND)?;
        records.extend_from_slice(data.get(1..).unwrap_or_default());
        if data.len() < 17 {
            break;
        }
    }
    // Records: 0xC0 id, then algorithm bytes; 0xC1 id + 3-byte IANA (OEM).
    let mut ids = Vec::new();
    let mut i = 0;
    while i < records.len() {
        match records[i] {
            0xC0 if i + 1 < records.len() => {
                ids.push(records[i + 1]);
                i += 2;
            }
            0xC1 if i + 1 < records.len() => {
                ids.push(records[i + 1]);
                i += 5;
            }
            _ => i += 1,
        }
    }
    Ok(ids)
}

/// Picks 17 if the BMC offers it, else 3.
async fn negotiate(link: &mut Link) -> Result<CipherSuite> {
    let offered = list_suites(link).await?;
    [CipherSuite::Suite17, CipherSuite::Suite3]
        .into_iter()
        .find(|s| offered.contains(&s.id()))
        .ok_or(IpmiError::CipherNotOffered {
            wanted: "17 or 3".into(),
            offered,
        })
}

async fn handshake(link: &mut Link, suite: CipherSuite, creds: &Credentials) -> Result<Secured> {
    let tries = link.tries();
    let console_session_id = u32::from_le_bytes(random()) | 1;
    let open = OpenSessionRequest::new(0, console_session_id, suite);
    let packet = packet::encode_v20(payload::OPEN_SESSION_REQUEST, 0, 0, &open.encode(), None);
    let reply = link
        .exchange(
            &mut (),
            "Open Session",
            tries,
            |_| packet.clone(),
            |_, d| {
                let p = handshake_reply(d, payload::OPEN_SESSION_RESPONSE)?;
                OpenSessionResponse::decode(&p).ok().filter(|r| r.tag == 0)
            },
        )
        .await?;
    match reply.status {
        0 => {}
        0x04 | 0x05 | 0x10 | 0x11 => {
            return Err(IpmiError::CipherNotOffered {
                wanted: suite.id().to_string(),
                offered: Vec::new(),
            });
        }
        code => return Err(IpmiError::SessionRefused { code }),
    }
    if reply.console_session_id != console_session_id || reply.algorithms != suite.algorithms() {
        return Err(IpmiError::Protocol {
            command: "Open Session",
            why: "the BMC answered with other session IDs or algorithms".into(),
        });
    }

    let rakp1 = Rakp1 {
        tag: 1,
        bmc_session_id: reply.bmc_session_id,
        console_random: random(),
        role: ADMINISTRATOR | NAME_ONLY_LOOKUP,
        username: creds.username.as_bytes().to_vec(),
    };
    let packet = packet::encode_v20(payload::RAKP1, 0, 0, &rakp1.encode(), None);
    let rakp2 = link
        .exchange(
            &mut (),
            "RAKP 1",
            tries,
            |_| packet.clone(),
            |_, d| {
                Rakp2::decode(&handshake_reply(d, payload::RAKP2)?)
                    .ok()
                    .filter(|r| r.tag == 1)
            },
        )
        .await?;
    match rakp2.status {
        0 => {}
        0x0D => {
            return Err(IpmiError::UnknownUser {
                user: creds.username.clone(),
            });
        }
        code => return Err(IpmiError::SessionRefused { code }),
    }
    let exchange = Exchange {
        suite,
        console_session_id,
        bmc_session_id: reply.bmc_session_id,
        console_random: rakp1.console_random,
        bmc_random: rakp2.bmc_random,
        bmc_guid: rakp2.bmc_guid,
        role: rakp1.role,
        username: rakp1.username.clone(),
    };
    let password = creds.password.as_bytes();
    if !super::crypto::equal(&exchange.rakp2_auth_code(password), &rakp2.auth_code) {
        return Err(IpmiError::WrongPassword {
            user: creds.username.clone(),
        });
    }

    let rakp3 = RakpCode {
        tag: 2,
        status: 0,
        session_id: reply.bmc_session_id,
        code: exchange.rakp3_auth_code(password),
    };
    let packet = packet::encode_v20(payload::RAKP3, 0, 0, &rakp3.encode(), None);
    let rakp4 = link
        .exchange(
            &mut (),
            "RAKP 3",
            tries,
            |_| packet.clone(),
            |_, d| {
                RakpCode::decode(&handshake_reply(d, payload::RAKP4)?)
                    .ok()
                    .filter(|r| r.tag == 2)
            },
        )
        .await?;
    match rakp4.status {
        0 => {}
        0x0F => {
            return Err(IpmiError::WrongPassword {
                user: creds.username.clone(),
            });
        }
        code => return Err(IpmiError::SessionRefused { code }),
    }
    let keys = exchange.keys(password);
    if !super::crypto::equal(&exchange.rakp4_icv(&keys.sik), &rakp4.code) {
        return Err(IpmiError::Protocol {
            command: "RAKP 4",
            why: "integrity check value does not match the session key".into(),
        });
    }
    Ok(Secured {
        keys,
        bmc_session_id: reply.bmc_session_id,
        console_session_id,
        out_seq: 0,
        inbound: SeqWindow::default(),
        dropped: 0,
    })
}

/// A BMC with a lazily opened, persistent session that is reopened once when
/// a request times out (the BMC rebooted or dropped the idle session).
pub struct Bmc {
    target: Target,
    session: Option<Session>,
    stats: Stats,
}

impl Bmc {
    pub fn new(target: Target) -> Bmc {
        Bmc {
            target,
            session: None,
            stats: Stats::default(),
        }
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

    pub async fn call(
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
    /// than the keepalive interval, so the BMC does not time it out.
    pub async fn keepalive(&mut self) -> Result<()> {
        let idle = self.session.as_ref().map(Session::idle);
        if idle.is_some_and(|idle| idle >= self.target.timing.keepalive) {
            self.call(netfn::APP, 0x01, &[], "Get Device ID").await?;
        }
        Ok(())
    }

    pub async fn close(&mut self) {
        if let Some(session) = self.session.take() {
            session.close().await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::SeqWindow;

    #[test]
    fn sequence_window_rejects_replays_and_ancient_packets() {
        let mut w = SeqWindow::default();
        assert!(!w.accept(0));
        assert!(w.accept(1));
        assert!(!w.accept(1));
        assert!(w.accept(3));
        assert!(w.accept(2), "late but unseen");
        assert!(!w.accept(2));
        assert!(w.accept(100));
        assert!(!w.accept(60), "more than 32 behind");
        assert!(w.accept(99));
    }
}
