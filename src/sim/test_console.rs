//! A minimal remote console for unit tests: builds datagrams with the `ipmi`
//! codecs, checks the simulator's replies as a client would, and drives a
//! `Responder` directly (no sockets).

use std::time::{Duration, Instant};

use super::chassis::Chassis;
use super::chassis::DEFAULT_SOFT_OFF_DELAY;
use super::commands::Controller;
use super::handshake::Identity;
use super::session::{Limits, Responder};
use super::sol::Packet;
use crate::ipmi::CipherSuite;
use crate::ipmi::crypto::{Exchange, SessionKeys, equal};
use crate::ipmi::message::{Request, Response};
use crate::ipmi::packet::{self, Frame, payload};
use crate::ipmi::rakp::{self, OpenSessionRequest, OpenSessionResponse, Rakp1, Rakp2, RakpCode};

pub const USER: &[u8] = b"admin";
/// Where `Responder::handle` pretends test datagrams come from.
pub const PEER: std::net::SocketAddr = std::net::SocketAddr::V4(std::net::SocketAddrV4::new(
    std::net::Ipv4Addr::LOCALHOST,
    40001,
));
pub const PASSWORD: &[u8] = b"password";

pub fn responder(suites: &[CipherSuite], limits: Limits) -> Responder {
    let identity = Identity {
        username: USER.to_vec(),
        password: PASSWORD.to_vec(),
        suites: suites.to_vec(),
        guid: [0x47; 16],
    };
    let chassis = Chassis::new(DEFAULT_SOFT_OFF_DELAY);
    let controller = Controller::new(chassis, suites.to_vec(), identity.guid);
    Responder::new(identity, controller, limits, 623)
}

/// The plain payload of a session-less RMCP+ reply.
pub fn plain_payload(reply: &[u8]) -> (u8, Vec<u8>) {
    match packet::parse(reply, 0) {
        Ok(Frame::V20 {
            header, payload, ..
        }) => (header.payload_type, payload.to_vec()),
        other => panic!("not a session-less RMCP+ reply: {other:?}"),
    }
}

/// One handshake step: what the console sends, and how it reads the reply.
type Send = fn(&Console) -> Vec<u8>;
type Receive = fn(&mut Console, &[u8]) -> u8;

pub struct Console {
    pub suite: CipherSuite,
    pub username: Vec<u8>,
    pub password: Vec<u8>,
    pub role: u8,
    pub console_session_id: u32,
    pub bmc_session_id: u32,
    exchange: Option<Exchange>,
    pub keys: Option<SessionKeys>,
    /// Last session sequence number sent.
    pub seq: u32,
    rq_seq: u8,
    /// The address its datagrams come from.
    pub peer: std::net::SocketAddr,
}

impl Console {
    pub fn new(suite: CipherSuite) -> Console {
        Console {
            suite,
            username: USER.to_vec(),
            password: PASSWORD.to_vec(),
            role: rakp::ADMINISTRATOR | rakp::NAME_ONLY_LOOKUP,
            console_session_id: 0xC0C0_0001,
            bmc_session_id: 0,
            exchange: None,
            keys: None,
            seq: 0,
            rq_seq: 0,
            peer: PEER,
        }
    }

    pub fn open_session(&self) -> Vec<u8> {
        let req = OpenSessionRequest::new(1, self.console_session_id, self.suite);
        packet::encode_v20(payload::OPEN_SESSION_REQUEST, 0, 0, &req.encode(), None)
    }

    /// The Open Session Response's status.
    pub fn on_open_session(&mut self, reply: &[u8]) -> u8 {
        let (kind, body) = plain_payload(reply);
        assert_eq!(kind, payload::OPEN_SESSION_RESPONSE);
        let resp = OpenSessionResponse::decode(&body).unwrap();
        assert_eq!(resp.tag, 1);
        self.bmc_session_id = resp.bmc_session_id;
        resp.status
    }

    pub fn rakp1(&self) -> Vec<u8> {
        let r1 = Rakp1 {
            tag: 2,
            bmc_session_id: self.bmc_session_id,
            console_random: [0x5A; 16],
            role: self.role,
            username: self.username.clone(),
        };
        packet::encode_v20(payload::RAKP1, 0, 0, &r1.encode(), None)
    }

    /// RAKP 2's status, or 0xFE when its auth code does not match our password.
    pub fn on_rakp2(&mut self, reply: &[u8]) -> u8 {
        let (kind, body) = plain_payload(reply);
        assert_eq!(kind, payload::RAKP2);
        let r2 = Rakp2::decode(&body).unwrap();
        if r2.status != 0 {
            return r2.status;
        }
        let exchange = Exchange {
            suite: self.suite,
            console_session_id: self.console_session_id,
            bmc_session_id: self.bmc_session_id,
            console_random: [0x5A; 16],
            bmc_random: r2.bmc_random,
            bmc_guid: r2.bmc_guid,
            role: self.role,
            username: self.username.clone(),
        };
        let good = equal(&exchange.rakp2_auth_code(&self.password), &r2.auth_code);
        self.exchange = Some(exchange);
        if good { 0 } else { 0xFE }
    }

    pub fn rakp3(&self) -> Vec<u8> {
        let exchange = self.exchange.as_ref().expect("RAKP 2 first");
        let r3 = RakpCode {
            tag: 3,
            status: 0,
            session_id: self.bmc_session_id,
            code: exchange.rakp3_auth_code(&self.password),
        };
        packet::encode_v20(payload::RAKP3, 0, 0, &r3.encode(), None)
    }

    /// RAKP 4's status; on success the ICV is checked and the keys kept.
    pub fn on_rakp4(&mut self, reply: &[u8]) -> u8 {
        let (kind, body) = plain_payload(reply);
        assert_eq!(kind, payload::RAKP4);
        let r4 = RakpCode::decode(&body).unwrap();
        if r4.status != 0 {
            return r4.status;
        }
        let exchange = self.exchange.as_ref().unwrap();
        assert_eq!(r4.session_id, self.console_session_id);
        let sik = exchange.sik(&self.password);
        assert_eq!(r4.code, exchange.rakp4_icv(&sik), "RAKP 4 ICV");
        self.keys = Some(SessionKeys::derive(self.suite, &sik));
        0
    }

    /// The whole handshake; the first non-zero status on failure.
    pub fn connect(&mut self, bmc: &mut Responder, now: Instant) -> Result<(), u8> {
        let steps: [(Send, Receive); 3] = [
            (Console::open_session, Console::on_open_session),
            (Console::rakp1, Console::on_rakp2),
            (Console::rakp3, Console::on_rakp4),
        ];
        for (send, receive) in steps {
            let reply = bmc.handle_from(&send(self), self.peer, now);
            let reply = reply.expect("handshake reply");
            match receive(self, &reply) {
                0 => {}
                status => return Err(status),
            }
        }
        Ok(())
    }

    /// A signed, encrypted IPMI request datagram.
    pub fn request(&mut self, netfn: u8, cmd: u8, data: &[u8]) -> Vec<u8> {
        self.rq_seq = (self.rq_seq + 1) & 0x3F;
        self.seq += 1;
        let body = Request::new(netfn, cmd, self.rq_seq, data).encode();
        packet::encode_v20(
            payload::IPMI,
            self.bmc_session_id,
            self.seq,
            &body,
            self.keys.as_ref(),
        )
    }

    /// Checks that a datagram from the BMC is of this session and of payload
    /// type `kind`, verifies and decrypts it: (its sequence number, payload).
    fn open(&self, datagram: &[u8], kind: u8) -> (u32, Vec<u8>) {
        let keys = self.keys.as_ref().unwrap();
        match packet::parse(datagram, keys.suite.integrity_len()) {
            Ok(Frame::V20 {
                header,
                payload,
                signed,
                auth_code,
            }) => {
                assert_eq!(header.session_id, self.console_session_id);
                assert_eq!(header.payload_type, kind);
                let plain = packet::open(&header, payload, signed, auth_code, keys).unwrap();
                (header.session_seq, plain)
            }
            other => panic!("bad session datagram: {other:?}"),
        }
    }

    /// Verifies and decodes a session reply: (its sequence number, response).
    pub fn response(&self, reply: &[u8]) -> (u32, Response) {
        let (seq, plain) = self.open(reply, payload::IPMI);
        (seq, Response::decode(&plain).unwrap())
    }

    /// Sends a request, returns (completion, data).
    pub fn call(
        &mut self,
        bmc: &mut Responder,
        now: Instant,
        netfn: u8,
        cmd: u8,
        data: &[u8],
    ) -> (u8, Vec<u8>) {
        let req = self.request(netfn, cmd, data);
        let reply = bmc.handle_from(&req, self.peer, now).expect("a reply");
        let (_, r) = self.response(&reply);
        (r.completion, r.data)
    }
}

/// Serial-over-LAN, as a console speaks it.
impl Console {
    /// A signed, encrypted SOL datagram.
    pub fn sol(&mut self, packet: &Packet) -> Vec<u8> {
        self.seq += 1;
        let (id, keys) = (self.bmc_session_id, self.keys.as_ref());
        packet::encode_v20(payload::SOL, id, self.seq, &packet.encode(), keys)
    }

    /// Verifies and decodes a SOL datagram from the BMC.
    pub fn open_sol(&self, datagram: &[u8]) -> Packet {
        Packet::decode(&self.open(datagram, payload::SOL).1).unwrap()
    }

    /// Activate Payload for SOL instance 1 as ipmitool sends it.
    pub fn activate_sol(&mut self, bmc: &mut Responder, now: Instant) -> (u8, Vec<u8>) {
        self.call(bmc, now, 0x06, 0x48, &[1, 1, 0xC6, 0, 0, 0])
    }
}

pub fn later(now: Instant, secs: u64) -> Instant {
    now + Duration::from_secs(secs)
}
