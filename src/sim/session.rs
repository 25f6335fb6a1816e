//! One BMC's RMCP+ responder, I/O-free: a datagram, its sender and the time
//! in, the reply out (plus queued `Output`s for other consoles and the host).
//! Answers RMCP presence pings and the pre-session queries, runs the session
//! handshake, and for established sessions verifies, decrypts and
//! sequence-checks every packet before dispatching it by payload type.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use tokio::sync::watch;

use super::chassis::ChassisState;
use super::commands::{Controller, privilege};
use super::handshake::{self, Established, Handshake, Identity};
use super::serial::SerialInput;
use super::sol::Sol;
use super::sol_commands;
use crate::ipmi::crypto::{self, SessionKeys};
use crate::ipmi::message::{Request, Response, netfn};
use crate::ipmi::packet::{self, Frame, V20Header, payload};
use crate::ipmi::rakp::{Rakp1, RakpCode};
use crate::ipmi::seq_window::SeqWindow;

const SET_SESSION_PRIVILEGE: u8 = 0x3B;
const CLOSE_SESSION: u8 = 0x3C;
const GET_SESSION_INFO: u8 = 0x3D;
/// The simulator's one user: user ID 2 (1 is the anonymous user).
const USER_ID: u8 = 2;

#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Sessions (and handshakes) that sent no IPMI request for longer than
    /// this are forgotten. SOL packets do not count, as on ipmi_sim.
    pub idle_timeout: Duration,
    /// Opening one more session evicts the longest-idle one.
    pub max_sessions: usize,
    /// SOL: resend an unacknowledged packet after this long.
    pub sol_retry: Duration,
    /// A new challenge for every RAKP 1 (see `Fault::FreshChallenges`).
    pub fresh_challenges: bool,
    /// How long a BMC reset (cold or warm) leaves the BMC silent.
    pub bmc_reset_pause: Duration,
}

/// A BMC reboot's silence, by default: short enough for tests, long
/// enough for a client to notice.
pub const DEFAULT_BMC_RESET_PAUSE: Duration = Duration::from_secs(2);

impl Default for Limits {
    fn default() -> Self {
        Limits {
            // ipmi_sim's session timeout.
            idle_timeout: Duration::from_secs(30),
            max_sessions: 32,
            sol_retry: super::sol::RETRY_INTERVAL,
            fresh_challenges: false,
            bmc_reset_pause: DEFAULT_BMC_RESET_PAUSE,
        }
    }
}

/// One BMC's sessions, as a test or the demo sees them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SessionCount {
    /// The BMC's session IDs of the sessions active now (past RAKP 4 and
    /// not closed, evicted or timed out), ascending.
    pub active_ids: Vec<u32>,
    /// Sessions ever activated (RAKP 3 accepted) on this BMC.
    pub opened_total: u64,
}

struct Active {
    /// Get Session Info's handle: 1..=63, unique among active sessions.
    handle: u8,
    console_session_id: u32,
    keys: SessionKeys,
    max_privilege: u8,
    privilege: u8,
    inbound: SeqWindow,
    /// Last outbound sequence number; the first packet carries 1.
    outbound: u32,
    /// Where its last good packet came from: unsolicited SOL goes there.
    peer: Option<SocketAddr>,
}

impl Active {
    fn new(e: Established, handle: u8) -> Active {
        Active {
            handle,
            console_session_id: e.console_session_id,
            keys: e.keys,
            max_privilege: e.max_privilege,
            // Sessions start at USER (or lower), as on OpenBMC.
            privilege: e.max_privilege.min(privilege::USER),
            inbound: SeqWindow::default(),
            outbound: 0,
            peer: None,
        }
    }

    /// Encrypts and signs an outbound payload.
    fn seal(&mut self, payload_type: u8, body: &[u8]) -> Vec<u8> {
        self.outbound = self.outbound.wrapping_add(1).max(1);
        let (id, seq) = (self.console_session_id, self.outbound);
        packet::encode_v20(payload_type, id, seq, body, Some(&self.keys))
    }
}

enum State {
    Handshake(Handshake),
    Active(Box<Active>),
}

struct Slot {
    state: State,
    last_activity: Instant,
}

/// A datagram that is answered with silence and counted.
struct Dropped;

type Handled = Result<Option<Vec<u8>>, Dropped>;

/// Work besides the reply, for the I/O side to carry out in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Output {
    /// A datagram for a console (SOL data, ACKs, deactivation notices).
    Datagram(SocketAddr, Vec<u8>),
    /// Something for the host's serial port.
    Serial(SerialInput),
}

pub struct Responder {
    identity: Identity,
    limits: Limits,
    /// Keyed by the BMC's session ID.
    slots: HashMap<u32, Slot>,
    controller: Controller,
    sol: Sol,
    /// The BMC's own UDP port, announced for SOL.
    port: u16,
    outbox: Vec<Output>,
    dropped: u64,
    /// Sessions ever activated.
    opened_total: u64,
    /// Rebooting after a BMC reset: silent until then.
    down_until: Option<Instant>,
    /// BMC resets so far (the Redfish side drops its sessions on each).
    bmc_resets: u64,
}

/// The session ID of an RMCP+ datagram, read before parsing: the parser
/// needs that session's AuthCode length to find the trailer.
fn peek_session_id(datagram: &[u8]) -> Option<u32> {
    let d = datagram.get(..10)?;
    let rmcp_plus = d[3] & 0x1F == 0x07 && d[4] & 0x0F == 0x06;
    rmcp_plus.then(|| u32::from_le_bytes([d[6], d[7], d[8], d[9]]))
}

impl Responder {
    /// `port` is the BMC's own UDP port (SOL runs on it too).
    pub fn new(identity: Identity, controller: Controller, limits: Limits, port: u16) -> Responder {
        Responder {
            identity,
            limits,
            slots: HashMap::new(),
            controller,
            sol: Sol::new(limits.sol_retry),
            port,
            outbox: Vec::new(),
            dropped: 0,
            opened_total: 0,
            down_until: None,
            bmc_resets: 0,
        }
    }

    /// BMC resets so far.
    pub fn bmc_resets(&self) -> u64 {
        self.bmc_resets
    }

    /// Reboots the BMC as a cold reset does: every session (SOL too) and
    /// the SEL reservation are gone, and nothing is answered for
    /// `bmc_reset_pause`. The host keeps running: its chassis is untouched.
    pub fn reset_bmc(&mut self, now: Instant) {
        self.forget_sessions();
        self.controller.sel().lock().cancel_reservation();
        self.down_until = Some(now + self.limits.bmc_reset_pause);
        self.bmc_resets += 1;
        tracing::info!(port = self.port, pause = ?self.limits.bmc_reset_pause, "simulated BMC rebooting");
    }

    /// Whether the BMC is rebooting at `now`. Once the pause is over, it is
    /// back, and logs so.
    pub fn is_down(&mut self, now: Instant) -> bool {
        match self.down_until {
            Some(until) if now < until => true,
            Some(_) => {
                self.down_until = None;
                self.controller.sel().log(super::sel::Event::BmcStarted);
                false
            }
            None => false,
        }
    }

    /// The SEL this BMC logs to.
    pub fn sel(&self) -> super::sel::SelHandle {
        self.controller.sel().clone()
    }

    /// The chassis identify light at `now`.
    pub fn identify(&self, now: Instant) -> super::chassis::Identify {
        self.controller.chassis.identify_state(now)
    }

    /// Answers one datagram from `peer`, or returns `None` (never panics on
    /// any input). Anything else to send is left in [`take_output`](Self::take_output).
    pub fn handle_from(
        &mut self,
        datagram: &[u8],
        peer: SocketAddr,
        now: Instant,
    ) -> Option<Vec<u8>> {
        if self.is_down(now) {
            return None;
        }
        self.expire(now);
        match self.dispatch(datagram, peer, now) {
            Ok(reply) => reply,
            Err(Dropped) => {
                self.dropped += 1;
                None
            }
        }
    }

    /// Datagrams dropped: malformed, unknown session, failed integrity or
    /// decryption, outside the sequence window.
    pub fn dropped_packets(&self) -> u64 {
        self.dropped
    }

    /// [`handle_from`](Self::handle_from) a fixed test peer.
    #[cfg(test)]
    pub fn handle(&mut self, datagram: &[u8], now: Instant) -> Option<Vec<u8>> {
        self.handle_from(datagram, super::test_console::PEER, now)
    }

    /// Forgets every session, as a rebooting BMC does.
    pub fn forget_sessions(&mut self) {
        self.slots.clear();
        self.end_orphaned_sol();
    }

    #[cfg(test)]
    pub fn active_sessions(&self) -> usize {
        let active = |s: &&Slot| matches!(s.state, State::Active(_));
        self.slots.values().filter(active).count()
    }

    /// The active sessions at `now` (one idle past the timeout counts as
    /// gone, although it is removed only on the next datagram or tick) and
    /// how many were ever opened.
    pub fn sessions(&self, now: Instant) -> SessionCount {
        let idle = self.limits.idle_timeout;
        let mut active_ids: Vec<u32> = self
            .slots
            .iter()
            .filter(|(_, s)| matches!(s.state, State::Active(_)))
            .filter(|(_, s)| now.saturating_duration_since(s.last_activity) <= idle)
            .map(|(&id, _)| id)
            .collect();
        active_ids.sort_unstable();
        SessionCount {
            active_ids,
            opened_total: self.opened_total,
        }
    }

    /// The smallest Get Session Info handle no active session holds.
    fn free_handle(&self) -> u8 {
        let taken: Vec<u8> = self
            .slots
            .values()
            .filter_map(|s| match &s.state {
                State::Active(a) => Some(a.handle),
                State::Handshake(_) => None,
            })
            .collect();
        (1..=63).find(|h| !taken.contains(h)).unwrap_or(63)
    }

    pub fn subscribe(&self) -> watch::Receiver<ChassisState> {
        self.controller.chassis.subscribe()
    }

    /// A request from the host's system interface (a QEMU guest's BMC
    /// device): no session, so no privilege limit, and the same controller
    /// (chassis, boot flags) the LAN side uses.
    pub fn inband(&mut self, req: &Request, now: Instant) -> Response {
        let response = self.controller.execute(req, privilege::ADMINISTRATOR, now);
        if self.controller.take_reset() {
            self.reset_bmc(now);
        }
        response
    }

    /// A QEMU guest connected as the host ([`super::chassis::Chassis::attach_guest`]).
    pub fn attach_guest(&mut self, now: Instant) {
        self.controller.chassis.attach_guest(now);
        self.controller.log_chassis();
    }

    /// The guest's connection closed.
    pub fn detach_guest(&mut self) {
        self.controller.chassis.detach_guest();
        self.controller.log_chassis();
    }

    /// Applies timed chassis transitions (soft off) and SOL retransmissions
    /// that are due.
    pub fn tick(&mut self, now: Instant) {
        self.is_down(now);
        self.controller.tick(now);
        self.expire(now);
        let effects = self.sol.tick(now);
        self.apply(effects);
    }

    pub fn next_deadline(&self) -> Option<Instant> {
        let chassis = self.controller.chassis.next_deadline();
        let sol = self.sol.next_deadline();
        chassis.into_iter().chain(sol).chain(self.down_until).min()
    }

    fn expire(&mut self, now: Instant) {
        let idle = self.limits.idle_timeout;
        self.slots
            .retain(|_, s| now.duration_since(s.last_activity) <= idle);
        self.end_orphaned_sol();
    }

    fn dispatch(&mut self, datagram: &[u8], peer: SocketAddr, now: Instant) -> Handled {
        let auth_code_len = match peek_session_id(datagram) {
            None | Some(0) => 0,
            Some(id) => match self.slots.get(&id) {
                Some(Slot {
                    state: State::Active(a),
                    ..
                }) => a.keys.suite.integrity_len(),
                _ => return Err(Dropped),
            },
        };
        match packet::parse(datagram, auth_code_len).map_err(|_| Dropped)? {
            Frame::AsfPing { tag } => Ok(Some(packet::encode_asf_pong(tag))),
            Frame::AsfOther => Ok(None),
            // IPMI 1.5 only session-less, for Get Channel Auth Capabilities.
            Frame::V15 {
                session_id: 0,
                message,
            } => {
                let response = self.presession_command(message, now)?;
                Ok(Some(packet::encode_v15(&response.encode())))
            }
            Frame::V15 { .. } => Err(Dropped),
            Frame::V20 {
                header, payload, ..
            } if header.session_id == 0 => self.sessionless(&header, payload, now),
            Frame::V20 {
                header,
                payload,
                signed,
                auth_code,
            } => {
                let packet = (payload, signed, auth_code);
                self.in_session(&header, packet, peer, now)
            }
        }
    }

    fn presession_command(&mut self, message: &[u8], now: Instant) -> Result<Response, Dropped> {
        let req = Request::decode(message).map_err(|_| Dropped)?;
        Ok(self.controller.execute(&req, privilege::NONE, now))
    }

    /// Unauthenticated RMCP+ packets: pre-session commands and the handshake.
    fn sessionless(&mut self, header: &V20Header, body: &[u8], now: Instant) -> Handled {
        if header.authenticated || header.encrypted {
            return Err(Dropped);
        }
        let plain = |payload_type: u8, reply: Vec<u8>| {
            Some(packet::encode_v20(payload_type, 0, 0, &reply, None))
        };
        match header.payload_type {
            payload::IPMI => {
                let response = self.presession_command(body, now)?;
                Ok(plain(payload::IPMI, response.encode()))
            }
            payload::OPEN_SESSION_REQUEST => {
                let id = self.new_session_id();
                let (reply, handshake) =
                    handshake::open_session(&self.identity, body, id).ok_or(Dropped)?;
                if let Some(handshake) = handshake {
                    self.make_room();
                    let state = State::Handshake(handshake);
                    let slot = Slot {
                        state,
                        last_activity: now,
                    };
                    self.slots.insert(id, slot);
                }
                Ok(plain(payload::OPEN_SESSION_RESPONSE, reply))
            }
            payload::RAKP1 => {
                let r1 = Rakp1::decode(body).map_err(|_| Dropped)?;
                let Some(Slot {
                    state: State::Handshake(hs),
                    ..
                }) = self.slots.get(&r1.bmc_session_id)
                else {
                    return Ok(plain(payload::RAKP2, handshake::rakp2_unknown_session(&r1)));
                };
                let fresh = self.limits.fresh_challenges;
                let (reply, next) = handshake::rakp1(&self.identity, hs, &r1, fresh);
                self.advance(r1.bmc_session_id, next.map(State::Handshake), now);
                Ok(plain(payload::RAKP2, reply))
            }
            payload::RAKP3 => {
                let r3 = RakpCode::decode(body).map_err(|_| Dropped)?;
                let Some(Slot {
                    state: State::Handshake(Handshake::Challenged { exchange }),
                    ..
                }) = self.slots.get(&r3.session_id)
                else {
                    return Ok(plain(payload::RAKP4, handshake::rakp4_unknown_session(&r3)));
                };
                let (reply, established) = handshake::rakp3(&self.identity, exchange, &r3);
                let handle = self.free_handle();
                let next = established.map(|e| State::Active(Box::new(Active::new(e, handle))));
                if next.is_some() {
                    self.opened_total += 1;
                }
                self.advance(r3.session_id, next, now);
                Ok(reply.and_then(|r| plain(payload::RAKP4, r)))
            }
            _ => Err(Dropped),
        }
    }

    /// Moves a handshake on, or discards it.
    fn advance(&mut self, id: u32, next: Option<State>, now: Instant) {
        match next {
            Some(state) => {
                let slot = Slot {
                    state,
                    last_activity: now,
                };
                self.slots.insert(id, slot);
            }
            None => {
                self.slots.remove(&id);
            }
        }
    }

    fn new_session_id(&self) -> u32 {
        loop {
            let id = u32::from_le_bytes(crypto::random());
            if id != 0 && !self.slots.contains_key(&id) {
                return id;
            }
        }
    }

    /// Evicts the longest-idle sessions so one more fits under the cap.
    fn make_room(&mut self) {
        while self.slots.len() >= self.limits.max_sessions.max(1) {
            let oldest = self.slots.iter().min_by_key(|(_, s)| s.last_activity);
            let Some((&id, _)) = oldest else { return };
            self.slots.remove(&id);
        }
        self.end_orphaned_sol();
    }

    fn active(&mut self, id: u32) -> Result<&mut Active, Dropped> {
        match self.slots.get_mut(&id) {
            Some(Slot {
                state: State::Active(a),
                ..
            }) => Ok(a),
            _ => Err(Dropped),
        }
    }

    /// An established session's packet (payload, signed part, AuthCode):
    /// verified, decrypted, in sequence.
    fn in_session(
        &mut self,
        header: &V20Header,
        (body, signed, auth_code): (&[u8], &[u8], &[u8]),
        peer: SocketAddr,
        now: Instant,
    ) -> Handled {
        let id = header.session_id;
        let active = self.active(id)?;
        let plain =
            packet::open(header, body, signed, auth_code, &active.keys).map_err(|_| Dropped)?;
        if !active.inbound.accept(header.session_seq) {
            return Err(Dropped);
        }
        active.peer = Some(peer);
        // Only requests keep a session alive (ipmi_sim's rule): a console
        // that just ACKs SOL data must still ping.
        if header.payload_type == payload::IPMI
            && let Some(slot) = self.slots.get_mut(&id)
        {
            slot.last_activity = now;
        }
        match header.payload_type {
            payload::IPMI => self.ipmi_in_session(id, &plain, now),
            payload::SOL => {
                self.sol(id, header.session_seq, &plain, now);
                Ok(None)
            }
            _ => Err(Dropped),
        }
    }

    fn ipmi_in_session(&mut self, id: u32, message: &[u8], now: Instant) -> Handled {
        let req = Request::decode(message).map_err(|_| Dropped)?;
        let active = self.active(id)?;
        let response = match (req.netfn, req.cmd) {
            (netfn::APP, SET_SESSION_PRIVILEGE) => set_privilege(active, &req),
            (netfn::APP, CLOSE_SESSION) => return self.close_session(id, &req),
            (netfn::APP, GET_SESSION_INFO) => self.session_info(id, &req),
            _ if sol_commands::handles(&req) => {
                let (level, port) = (active.privilege, self.port);
                let (response, effects) =
                    sol_commands::execute(&mut self.sol, &req, id, level, port);
                self.apply(effects);
                response
            }
            _ => {
                let level = active.privilege;
                self.controller.execute(&req, level, now)
            }
        };
        let reply = self.active(id)?.seal(payload::IPMI, &response.encode());
        // The reset's reply goes out; then the BMC reboots.
        if self.controller.take_reset() {
            self.reset_bmc(now);
        }
        Ok(Some(reply))
    }

    /// Close Session: the caller's own session, or (as ADMINISTRATOR)
    /// another one. The reply still goes out under the closed session's keys.
    fn close_session(&mut self, id: u32, req: &Request) -> Handled {
        let target = req
            .data
            .get(..4)
            .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]));
        let admin = self.active(id)?.privilege >= privilege::ADMINISTRATOR;
        let closable = |t: u32| {
            (t == id || admin)
                && matches!(self.slots.get(&t), Some(s) if matches!(s.state, State::Active(_)))
        };
        let response = match target {
            None => req.respond(0xC7, &[]),
            Some(t) if closable(t) => req.respond(0, &[]),
            Some(_) => req.respond(0x87, &[]), // invalid session ID
        };
        let reply = self.active(id)?.seal(payload::IPMI, &response.encode());
        if response.completion == 0 {
            self.slots.remove(&target.unwrap_or(id));
            self.end_orphaned_sol();
        }
        Ok(Some(reply))
    }
}

impl Responder {
    /// Get Session Info (IPMI 2.0 section 22.20): index 0 is the caller's
    /// session, N the Nth active one (by handle), FEh by handle, FFh by
    /// session ID. Found: handle, slots, active count, user ID, privilege,
    /// RMCP+ and the channel, then the LAN console's IP (MS byte first),
    /// MAC (unknown: zeros) and port (LS byte first, as ipmitool reads it).
    /// Not found: only the first three bytes.
    fn session_info(&self, id: u32, req: &Request) -> Response {
        let mut active: Vec<(u32, &Active)> = self
            .slots
            .iter()
            .filter_map(|(&sid, s)| match &s.state {
                State::Active(a) => Some((sid, a.as_ref())),
                State::Handshake(_) => None,
            })
            .collect();
        active.sort_by_key(|(_, a)| a.handle);
        let data = &req.data[..];
        let found = match data.first() {
            None => return req.respond(0xC7, &[]),
            Some(0x00) => active.iter().find(|(sid, _)| *sid == id),
            Some(0xFE) => match data.get(1) {
                Some(&h) => active.iter().find(|(_, a)| a.handle == h),
                None => return req.respond(0xC7, &[]),
            },
            Some(0xFF) => match data.get(1..5) {
                Some(b) => {
                    let wanted = u32::from_le_bytes([b[0], b[1], b[2], b[3]]);
                    active.iter().find(|(sid, _)| *sid == wanted)
                }
                None => return req.respond(0xC7, &[]),
            },
            Some(&n) => active.get(usize::from(n) - 1),
        };
        let slots = self.limits.max_sessions.clamp(1, 63) as u8;
        let mut out = vec![0, slots, active.len().min(63) as u8];
        if let Some((_, a)) = found {
            out[0] = a.handle;
            let rmcp_plus = 1 << 4;
            let lan = super::commands::LAN_CHANNEL;
            out.extend_from_slice(&[USER_ID, a.privilege, rmcp_plus | lan]);
            let (ip, port) = match a.peer {
                Some(SocketAddr::V4(v4)) => (v4.ip().octets(), v4.port()),
                _ => ([0; 4], 0),
            };
            out.extend_from_slice(&ip);
            out.extend_from_slice(&[0; 6]);
            out.extend_from_slice(&port.to_le_bytes());
        }
        req.respond(0, &out)
    }
}

/// Set Session Privilege Level: 0 reads the present level; anything up to
/// the session's maximum is granted; above it, 0x81.
fn set_privilege(active: &mut Active, req: &Request) -> Response {
    let Some(&requested) = req.data.first() else {
        return req.respond(0xC7, &[]);
    };
    match requested & 0x0F {
        0 => {}
        level if level > privilege::ADMINISTRATOR => return req.respond(0xCC, &[]),
        level if level > active.max_privilege => return req.respond(0x81, &[]),
        level => active.privilege = level,
    }
    req.respond(0, &[active.privilege])
}

#[path = "session_sol.rs"]
mod sol_glue;

#[cfg(test)]
#[path = "session_tests.rs"]
mod tests;

#[cfg(test)]
#[path = "sol_session_tests.rs"]
mod sol_tests;
