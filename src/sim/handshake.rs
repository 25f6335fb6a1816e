//! The BMC side of RMCP+ session establishment (IPMI 2.0 §13.17–13.23):
//! Open Session, RAKP 1 → 2 and RAKP 3 → 4. Pure functions from a request
//! payload to a reply payload and the session's next stage.

use crate::ipmi::CipherSuite;
use crate::ipmi::crypto::{self, Exchange, SessionKeys};
use crate::ipmi::rakp::{OpenSessionRequest, OpenSessionResponse, Rakp1, Rakp2, RakpCode};

use super::commands::privilege;

/// RMCP+ status codes the BMC sends (IPMI 2.0 table 13-15).
pub mod status {
    pub const INVALID_SESSION_ID: u8 = 0x02;
    pub const INVALID_ROLE: u8 = 0x09;
    pub const UNAUTHORIZED_NAME: u8 = 0x0D;
    pub const INVALID_INTEGRITY_CHECK: u8 = 0x0F;
    pub const NO_CIPHER_SUITE_MATCH: u8 = 0x11;
}

/// Who may log in, and how.
#[derive(Clone)]
pub struct Identity {
    pub username: Vec<u8>,
    pub password: Vec<u8>,
    pub suites: Vec<CipherSuite>,
    pub guid: [u8; 16],
}

/// A session between Open Session and a good RAKP 3.
#[derive(Debug, Clone)]
pub enum Handshake {
    Opened {
        console_session_id: u32,
        suite: CipherSuite,
        /// Drawn once per session (as ipmi_sim does): a retransmitted
        /// RAKP 1 gets the same RAKP 2, so a console that goes on with the
        /// first answer is not refused at RAKP 3.
        bmc_random: [u8; 16],
    },
    /// RAKP 2 sent; waiting for the console's proof of the password.
    Challenged { exchange: Exchange },
}

/// What a good RAKP 3 yields.
pub struct Established {
    pub console_session_id: u32,
    pub keys: SessionKeys,
    /// The role requested in RAKP 1: the ceiling for Set Session Privilege.
    pub max_privilege: u8,
}

/// Open Session Request → (Open Session Response, the new session if any).
/// `None` if the payload is not an Open Session Request at all.
pub fn open_session(
    identity: &Identity,
    payload: &[u8],
    bmc_session_id: u32,
) -> Option<(Vec<u8>, Option<Handshake>)> {
    let req = OpenSessionRequest::decode(payload).ok()?;
    let (a, i, c) = req.algorithms;
    let suite = CipherSuite::from_algorithms(a, i, c).filter(|s| identity.suites.contains(s));
    let mut resp = OpenSessionResponse {
        tag: req.tag,
        status: 0,
        // 0 asks for the highest level the user may have: ADMINISTRATOR.
        max_privilege: match req.max_privilege {
            0 => privilege::ADMINISTRATOR,
            p => p,
        },
        console_session_id: req.console_session_id,
        bmc_session_id,
        algorithms: req.algorithms,
    };
    let handshake = match suite {
        _ if resp.max_privilege > privilege::ADMINISTRATOR => {
            resp.status = status::INVALID_ROLE;
            None
        }
        None => {
            resp.status = status::NO_CIPHER_SUITE_MATCH;
            None
        }
        Some(suite) => Some(Handshake::Opened {
            console_session_id: req.console_session_id,
            suite,
            bmc_random: crypto::random(),
        }),
    };
    Some((resp.encode(), handshake))
}

/// RAKP 1 → (RAKP 2, the session's next stage; `None` discards it). The
/// auth code uses the BMC's password: a console with a wrong one sees a
/// mismatch here, as with a real BMC. `fresh`: draw a new challenge even
/// for a retransmitted RAKP 1.
pub fn rakp1(
    identity: &Identity,
    handshake: &Handshake,
    r1: &Rakp1,
    fresh: bool,
) -> (Vec<u8>, Option<Handshake>) {
    let (console_session_id, suite, bmc_random) = match handshake {
        Handshake::Opened {
            console_session_id,
            suite,
            bmc_random,
        } => (*console_session_id, *suite, *bmc_random),
        // A retried RAKP 1 (our RAKP 2 was lost or slow): the same challenge.
        Handshake::Challenged { exchange } => (
            exchange.console_session_id,
            exchange.suite,
            exchange.bmc_random,
        ),
    };
    let mut reply = Rakp2 {
        tag: r1.tag,
        status: 0,
        console_session_id,
        bmc_random: [0; 16],
        bmc_guid: [0; 16],
        auth_code: Vec::new(),
    };
    let level = r1.role & 0x0F;
    if r1.username != identity.username {
        reply.status = status::UNAUTHORIZED_NAME;
    } else if !(privilege::CALLBACK..=privilege::ADMINISTRATOR).contains(&level) {
        reply.status = status::INVALID_ROLE;
    }
    if reply.status != 0 {
        return (reply.encode(), None);
    }
    let exchange = Exchange {
        suite,
        console_session_id,
        bmc_session_id: r1.bmc_session_id,
        console_random: r1.console_random,
        bmc_random: if fresh { crypto::random() } else { bmc_random },
        bmc_guid: identity.guid,
        role: r1.role,
        username: r1.username.clone(),
    };
    reply.bmc_random = exchange.bmc_random;
    reply.bmc_guid = exchange.bmc_guid;
    reply.auth_code = exchange.rakp2_auth_code(&identity.password);
    (reply.encode(), Some(Handshake::Challenged { exchange }))
}

/// RAKP 3 → (RAKP 4 if one is due, the established session if the console
/// proved the password). A console reporting an error gets no answer; a
/// wrong code gets status 0x0F. Either way the session is discarded.
pub fn rakp3(
    identity: &Identity,
    exchange: &Exchange,
    r3: &RakpCode,
) -> (Option<Vec<u8>>, Option<Established>) {
    if r3.status != 0 {
        return (None, None);
    }
    let mut reply = RakpCode {
        tag: r3.tag,
        status: 0,
        session_id: exchange.console_session_id,
        code: Vec::new(),
    };
    let expected = exchange.rakp3_auth_code(&identity.password);
    if !crypto::equal(&expected, &r3.code) {
        reply.status = status::INVALID_INTEGRITY_CHECK;
        return (Some(reply.encode()), None);
    }
    let sik = exchange.sik(&identity.password);
    reply.code = exchange.rakp4_icv(&sik);
    let established = Established {
        console_session_id: exchange.console_session_id,
        keys: SessionKeys::derive(exchange.suite, &sik),
        max_privilege: exchange.role & 0x0F,
    };
    (Some(reply.encode()), Some(established))
}

/// RAKP 2 for a RAKP 1 naming no session in handshake.
pub fn rakp2_unknown_session(r1: &Rakp1) -> Vec<u8> {
    Rakp2 {
        tag: r1.tag,
        status: status::INVALID_SESSION_ID,
        console_session_id: 0,
        bmc_random: [0; 16],
        bmc_guid: [0; 16],
        auth_code: Vec::new(),
    }
    .encode()
}

/// RAKP 4 for a RAKP 3 naming no session waiting for it.
pub fn rakp4_unknown_session(r3: &RakpCode) -> Vec<u8> {
    RakpCode {
        tag: r3.tag,
        status: status::INVALID_SESSION_ID,
        session_id: 0,
        code: Vec::new(),
    }
    .encode()
}
