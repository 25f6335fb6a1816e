//! RMCP+ Open Session and RAKP 1–4 payloads (IPMI 2.0 §13.17–13.23): encoding
//! and decoding for both sides. The auth codes themselves are in `crypto`.

use super::crypto::CipherSuite;
use super::packet::PacketError;

/// Privilege level ADMINISTRATOR, the level chassis control needs.
pub const ADMINISTRATOR: u8 = 0x04;
/// RAKP 1 role bit: look the user up by name only (what ipmitool sends).
pub const NAME_ONLY_LOOKUP: u8 = 0x10;

type Result<T> = std::result::Result<T, PacketError>;

fn u32_le(b: &[u8]) -> u32 {
    u32::from_le_bytes([b[0], b[1], b[2], b[3]])
}

fn need(bytes: &[u8], len: usize, what: &'static str) -> Result<()> {
    if bytes.len() < len {
        Err(PacketError::Malformed(what))
    } else {
        Ok(())
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpenSessionRequest {
    pub tag: u8,
    /// Requested maximum privilege; 0 asks for the highest the user has.
    pub max_privilege: u8,
    pub console_session_id: u32,
    /// (authentication, integrity, confidentiality) algorithm numbers.
    pub algorithms: (u8, u8, u8),
}

fn algorithm_record(kind: u8, alg: u8) -> [u8; 8] {
    [kind, 0, 0, 8, alg, 0, 0, 0]
}

impl OpenSessionRequest {
    pub fn new(tag: u8, console_session_id: u32, suite: CipherSuite) -> Self {
        OpenSessionRequest {
            tag,
            max_privilege: ADMINISTRATOR,
            console_session_id,
            algorithms: suite.algorithms(),
        }
    }

    pub fn encode(&self) -> Vec<u8> {
        let (a, i, c) = self.algorithms;
        let mut out = vec![self.tag, self.max_privilege, 0, 0];
        out.extend_from_slice(&self.console_session_id.to_le_bytes());
        out.extend_from_slice(&algorithm_record(0, a));
        out.extend_from_slice(&algorithm_record(1, i));
        out.extend_from_slice(&algorithm_record(2, c));
        out
    }

    pub fn decode(b: &[u8]) -> Result<Self> {
        need(b, 32, "short Open Session Request")?;
        Ok(OpenSessionRequest {
            tag: b[0],
            max_privilege: b[1] & 0x0F,
            console_session_id: u32_le(&b[4..8]),
            algorithms: (b[12] & 0x3F, b[20] & 0x3F, b[28] & 0x3F),
        })
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpenSessionResponse {
    pub tag: u8,
    pub status: u8,
    pub max_privilege: u8,
    pub console_session_id: u32,
    pub bmc_session_id: u32,
    pub algorithms: (u8, u8, u8),
}

impl OpenSessionResponse {
    pub fn encode(&self) -> Vec<u8> {
        let mut out = vec![self.tag, self.status, self.max_privilege, 0];
        out.extend_from_slice(&self.console_session_id.to_le_bytes());
        if self.status != 0 {
            return out;
        }
        let (a, i, c) = self.algorithms;
        out.extend_from_slice(&self.bmc_session_id.to_le_bytes());
        out.extend_from_slice(&algorithm_record(0, a));
        out.extend_from_slice(&algorithm_record(1, i));
        out.extend_from_slice(&algorithm_record(2, c));
        out
    }

    /// Error responses may stop after the console session ID.
    pub fn decode(b: &[u8]) -> Result<Self> {
        need(b, 2, "short Open Session Response")?;
        let mut r = OpenSessionResponse {
            tag: b[0],
            status: b[1],
            max_privilege: 0,
            console_session_id: 0,
            bmc_session_id: 0,
            algorithms: (0, 0, 0),
        };
        if r.status != 0 {
            return Ok(r);
        }
        need(b, 36, "short Open Session Response")?;
        r.max_privilege = b[2];
        r.console_session_id = u32_le(&b[4..8]);
        r.bmc_session_id = u32_le(&b[8..12]);
        r.algorithms = (b[16] & 0x3F, b[24] & 0x3F, b[32] & 0x3F);
        Ok(r)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rakp1 {
    pub tag: u8,
    pub bmc_session_id: u32,
    pub console_random: [u8; 16],
    pub role: u8,
    pub username: Vec<u8>,
}

impl Rakp1 {
    pub fn encode(&self) -> Vec<u8> {
        let mut out = vec![self.tag, 0, 0, 0];
        out.extend_from_slice(&self.bmc_session_id.to_le_bytes());
        out.extend_from_slice(&self.console_random);
        out.extend_from_slice(&[self.role, 0, 0, self.username.len() as u8]);
        out.extend_from_slice(&self.username);
        out
    }

    pub fn decode(b: &[u8]) -> Result<Self> {
        need(b, 28, "short RAKP 1")?;
        let len = b[27] as usize;
        if len > 16 {
            return Err(PacketError::Malformed("RAKP 1 user name longer than 16"));
        }
        need(b, 28 + len, "RAKP 1 user name beyond payload")?;
        Ok(Rakp1 {
            tag: b[0],
            bmc_session_id: u32_le(&b[4..8]),
            console_random: b[8..24].try_into().expect("16 bytes"),
            role: b[24],
            username: b[28..28 + len].to_vec(),
        })
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rakp2 {
    pub tag: u8,
    pub status: u8,
    pub console_session_id: u32,
    pub bmc_random: [u8; 16],
    pub bmc_guid: [u8; 16],
    pub auth_code: Vec<u8>,
}

impl Rakp2 {
    pub fn encode(&self) -> Vec<u8> {
        let mut out = vec![self.tag, self.status, 0, 0];
        out.extend_from_slice(&self.console_session_id.to_le_bytes());
        if self.status == 0 {
            out.extend_from_slice(&self.bmc_random);
            out.extend_from_slice(&self.bmc_guid);
            out.extend_from_slice(&self.auth_code);
        }
        out
    }

    pub fn decode(b: &[u8]) -> Result<Self> {
        need(b, 2, "short RAKP 2")?;
        let mut r = Rakp2 {
            tag: b[0],
            status: b[1],
            console_session_id: 0,
            bmc_random: [0; 16],
            bmc_guid: [0; 16],
            auth_code: Vec::new(),
        };
        if b.len() >= 8 {
            r.console_session_id = u32_le(&b[4..8]);
        }
        if r.status != 0 {
            return Ok(r);
        }
        need(b, 40, "short RAKP 2")?;
        r.bmc_random = b[8..24].try_into().expect("16 bytes");
        r.bmc_guid = b[24..40].try_into().expect("16 bytes");
        r.auth_code = b[40..].to_vec();
        Ok(r)
    }
}

/// RAKP 3 (console → BMC) and RAKP 4 (BMC → console) share one shape:
/// tag, status, two reserved bytes, a session ID and a code.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RakpCode {
    pub tag: u8,
    pub status: u8,
    pub session_id: u32,
    pub code: Vec<u8>,
}

impl RakpCode {
    pub fn encode(&self) -> Vec<u8> {
        let mut out = vec![self.tag, self.status, 0, 0];
        out.extend_from_slice(&self.session_id.to_le_bytes());
        out.extend_from_slice(&self.code);
        out
    }

    pub fn decode(b: &[u8]) -> Result<Self> {
        need(b, 2, "short RAKP 3/4")?;
        Ok(RakpCode {
            tag: b[0],
            status: b[1],
            session_id: if b.len() >= 8 { u32_le(&b[4..8]) } else { 0 },
            code: b.get(8..).unwrap_or_default().to_vec(),
        })
    }
}

/// RMCP+ status codes (IPMI 2.0 table 13-15).
pub fn status_meaning(code: u8) -> &'static str {
    match code {
        0x00 => "no errors",
        0x01 => "insufficient resources to create a session",
        0x02 => "invalid session ID",
        0x03 => "invalid payload type",
        0x04 => "invalid authentication algorithm",
        0x05 => "invalid integrity algorithm",
        0x06 => "no matching authentication payload",
        0x07 => "no matching integrity payload",
        0x08 => "inactive session ID",
        0x09 => "invalid role",
        0x0A => "unauthorized role or privilege level requested",
        0x0B => "insufficient resources to create a session at the requested role",
        0x0C => "invalid user name length",
        0x0D => "unauthorized name (unknown user)",
        0x0E => "unauthorized GUID",
        0x0F => "invalid integrity check value (wrong password?)",
        0x10 => "invalid confidentiality algorithm",
        0x11 => "no cipher suite match with proposed security algorithms",
        0x12 => "illegal or unrecognized parameter",
        _ => "reserved status code",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payloads_round_trip() {
        let req = OpenSessionRequest::new(3, 0xA0A1A2A3, CipherSuite::Suite17);
        assert_eq!(OpenSessionRequest::decode(&req.encode()).unwrap(), req);
        let resp = OpenSessionResponse {
            tag: 3,
            status: 0,
            max_privilege: 4,
            console_session_id: 1,
            bmc_session_id: 2,
            algorithms: (3, 4, 1),
        };
        assert_eq!(OpenSessionResponse::decode(&resp.encode()).unwrap(), resp);
        let r1 = Rakp1 {
            tag: 1,
            bmc_session_id: 9,
            console_random: [5; 16],
            role: 0x14,
            username: b"admin".to_vec(),
        };
        assert_eq!(Rakp1::decode(&r1.encode()).unwrap(), r1);
        let r2 = Rakp2 {
            tag: 1,
            status: 0,
            console_session_id: 9,
            bmc_random: [1; 16],
            bmc_guid: [2; 16],
            auth_code: vec![3; 32],
        };
        assert_eq!(Rakp2::decode(&r2.encode()).unwrap(), r2);
        let err = Rakp2 { status: 0x0D, ..r2 };
        assert_eq!(Rakp2::decode(&err.encode()).unwrap().status, 0x0D);
    }
}
