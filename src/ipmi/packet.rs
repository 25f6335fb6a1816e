//! RMCP, IPMI 1.5 and IPMI 2.0 (RMCP+) session framing — I/O-free, so the
//! client, the simulator and the fuzz tests share one parser that never panics.

use super::crypto::SessionKeys;

/// RMCP header for IPMI class messages: version 6, no RMCP ACK, class 7.
const RMCP_IPMI: [u8; 4] = [0x06, 0x00, 0xFF, 0x07];
const RMCP_CLASS_ASF: u8 = 0x06;
const RMCP_CLASS_IPMI: u8 = 0x07;
const AUTH_TYPE_NONE: u8 = 0x00;
const AUTH_TYPE_RMCP_PLUS: u8 = 0x06;
const NEXT_HEADER: u8 = 0x07;
const ENCRYPTED: u8 = 0x80;
const AUTHENTICATED: u8 = 0x40;
/// ASF's IANA enterprise number, in RMCP presence ping/pong.
const ASF_IANA: [u8; 4] = [0x00, 0x00, 0x11, 0xBE];

/// RMCP+ payload types (IPMI 2.0 table 13-16).
pub mod payload {
    pub const IPMI: u8 = 0x00;
    pub const SOL: u8 = 0x01;
    pub const OPEN_SESSION_REQUEST: u8 = 0x10;
    pub const OPEN_SESSION_RESPONSE: u8 = 0x11;
    pub const RAKP1: u8 = 0x12;
    pub const RAKP2: u8 = 0x13;
    pub const RAKP3: u8 = 0x14;
    pub const RAKP4: u8 = 0x15;
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PacketError {
    #[error("malformed packet: {0}")]
    Malformed(&'static str),
    #[error("integrity check failed")]
    BadAuthCode,
    #[error("payload could not be decrypted")]
    BadCiphertext,
    #[error("packet for an unauthenticated session carries a trailer")]
    UnexpectedTrailer,
    #[error("packet is not authenticated and encrypted as the session requires")]
    NotProtected,
}

/// The session fields of an RMCP+ packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct V20Header {
    pub payload_type: u8,
    pub encrypted: bool,
    pub authenticated: bool,
    pub session_id: u32,
    pub session_seq: u32,
}

/// One datagram split into its parts, nothing verified yet.
#[derive(Debug, PartialEq, Eq)]
pub enum Frame<'a> {
    /// RMCP presence ping (ASF message type 0x80) with its tag.
    AsfPing {
        tag: u8,
    },
    AsfOther,
    /// IPMI 1.5 session wrapper; petitlab only meets it session-less (auth
    /// type none), for Get Channel Authentication Capabilities.
    V15 {
        session_id: u32,
        message: &'a [u8],
    },
    V20 {
        header: V20Header,
        payload: &'a [u8],
        /// AuthType byte through Next Header: what the AuthCode covers.
        signed: &'a [u8],
        auth_code: &'a [u8],
    },
}

fn u32_le(b: &[u8]) -> u32 {
    u32::from_le_bytes([b[0], b[1], b[2], b[3]])
}

/// Splits a datagram. `auth_code_len` is the session's AuthCode length (0 if
/// the receiver has no session keys); it decides where the trailer ends.
pub fn parse(datagram: &[u8], auth_code_len: usize) -> Result<Frame<'_>, PacketError> {
    use PacketError::Malformed;
    if datagram.len() < 4 || datagram[0] != 0x06 {
        return Err(Malformed("not RMCP version 1.0"));
    }
    match datagram[3] & 0x1F {
        RMCP_CLASS_ASF => {
            let asf = &datagram[4..];
            if asf.len() >= 8 && asf[..4] == ASF_IANA && asf[4] == 0x80 {
                Ok(Frame::AsfPing { tag: asf[5] })
            } else {
                Ok(Frame::AsfOther)
            }
        }
        RMCP_CLASS_IPMI => parse_ipmi(&datagram[4..], auth_code_len),
        _ => Err(Malformed("unknown RMCP class")),
    }
}

fn parse_ipmi(session: &[u8], auth_code_len: usize) -> Result<Frame<'_>, PacketError> {
    use PacketError::Malformed;
    let auth_type = *session.first().ok_or(Malformed("empty"))? & 0x0F;
    if auth_type != AUTH_TYPE_RMCP_PLUS {
        // IPMI 1.5: type, seq(4), id(4), [16-byte code unless type none], len, message.
        let header = if auth_type == AUTH_TYPE_NONE { 10 } else { 26 };
        if session.len() < header {
            return Err(Malformed("short IPMI 1.5 header"));
        }
        let len = session[header - 1] as usize;
        let message = session
            .get(header..header + len)
            .ok_or(Malformed("IPMI 1.5 length beyond datagram"))?;
        return Ok(Frame::V15 {
            session_id: u32_le(&session[5..9]),
            message,
        });
    }
    if session.len() < 12 {
        return Err(Malformed("short RMCP+ header"));
    }
    let type_byte = session[1];
    let payload_type = type_byte & 0x3F;
    if payload_type == 0x02 {
        return Err(Malformed("OEM payloads are not supported"));
    }
    let header = V20Header {
        payload_type,
        encrypted: type_byte & ENCRYPTED != 0,
        authenticated: type_byte & AUTHENTICATED != 0,
        session_id: u32_le(&session[2..6]),
        session_seq: u32_le(&session[6..10]),
    };
    let len = u16::from_le_bytes([session[10], session[11]]) as usize;
    let payload = session
        .get(12..12 + len)
        .ok_or(Malformed("RMCP+ payload length beyond datagram"))?;
    if !header.authenticated {
        return Ok(Frame::V20 {
            header,
            payload,
            signed: &[],
            auth_code: &[],
        });
    }
    if auth_code_len == 0 {
        return Err(PacketError::UnexpectedTrailer);
    }
    // Trailer: pad (0–3 × 0xFF), pad length, next header, AuthCode.
    let end = session
        .len()
        .checked_sub(auth_code_len)
        .filter(|&e| e >= 12 + len + 2)
        .ok_or(Malformed("trailer too short"))?;
    let pad_len = session[end - 2] as usize;
    if session[end - 1] != NEXT_HEADER || pad_len > 3 || end - 2 - pad_len != 12 + len {
        return Err(Malformed("bad session trailer"));
    }
    Ok(Frame::V20 {
        header,
        payload,
        signed: &session[..end],
        auth_code: &session[end..],
    })
}

/// Verifies and decrypts an RMCP+ payload with the session's keys. A session
/// with keys accepts only authenticated, encrypted packets.
pub fn open(
    header: &V20Header,
    payload: &[u8],
    signed: &[u8],
    auth_code: &[u8],
    keys: &SessionKeys,
) -> Result<Vec<u8>, PacketError> {
    if !(header.authenticated && header.encrypted) {
        return Err(PacketError::NotProtected);
    }
    if !super::crypto::equal(&keys.auth_code(signed), auth_code) {
        return Err(PacketError::BadAuthCode);
    }
    keys.decrypt(payload).ok_or(PacketError::BadCiphertext)
}

/// A session-less IPMI 1.5 packet (auth type none).
pub fn encode_v15(message: &[u8]) -> Vec<u8> {
    let mut out = RMCP_IPMI.to_vec();
    out.push(AUTH_TYPE_NONE);
    out.extend_from_slice(&[0; 8]); // sequence, session ID
    out.push(message.len() as u8);
    out.extend_from_slice(message);
    out
}

/// An RMCP+ packet; with keys, the payload is encrypted and the packet signed.
pub fn encode_v20(
    payload_type: u8,
    session_id: u32,
    session_seq: u32,
    payload: &[u8],
    keys: Option<&SessionKeys>,
) -> Vec<u8> {
    let mut out = RMCP_IPMI.to_vec();
    let body = match keys {
        Some(k) => k.encrypt(payload, super::crypto::random()),
        None => payload.to_vec(),
    };
    let flags = if keys.is_some() {
        ENCRYPTED | AUTHENTICATED
    } else {
        0
    };
    out.push(AUTH_TYPE_RMCP_PLUS);
    out.push(payload_type | flags);
    out.extend_from_slice(&session_id.to_le_bytes());
    out.extend_from_slice(&session_seq.to_le_bytes());
    out.extend_from_slice(&(body.len() as u16).to_le_bytes());
    out.extend_from_slice(&body);
    if let Some(k) = keys {
        // Pad so AuthType..NextHeader is a multiple of four bytes.
        let pad = (4 - (out.len() - 4 + 2) % 4) % 4;
        out.extend(std::iter::repeat_n(0xFF, pad));
        out.push(pad as u8);
        out.push(NEXT_HEADER);
        let code = k.auth_code(&out[4..]);
        out.extend_from_slice(&code);
    }
    out
}

/// RMCP presence pong answering a ping: IPMI supported.
pub fn encode_asf_pong(tag: u8) -> Vec<u8> {
    let mut out = vec![0x06, 0x00, 0xFF, RMCP_CLASS_ASF];
    out.extend_from_slice(&ASF_IANA);
    out.extend_from_slice(&[0x40, tag, 0x00, 0x10]);
    out.extend_from_slice(&ASF_IANA);
    out.extend_from_slice(&[0, 0, 0, 0, 0x81, 0x00, 0, 0, 0, 0, 0, 0]);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ipmi::crypto::CipherSuite;

    #[test]
    fn signed_encrypted_packets_round_trip_and_tampering_is_caught() {
        for suite in [CipherSuite::Suite3, CipherSuite::Suite17] {
            let keys = SessionKeys::derive(suite, &[1; 32]);
            for len in 0..20 {
                let body: Vec<u8> = (0..len).collect();
                let pkt = encode_v20(payload::IPMI, 0x1234, 7, &body, Some(&keys));
                assert_eq!((pkt.len() - 4 - suite.integrity_len()) % 4, 0);
                let Ok(Frame::V20 {
                    header,
                    payload,
                    signed,
                    auth_code,
                }) = parse(&pkt, suite.integrity_len())
                else {
                    panic!("did not parse");
                };
                assert_eq!(header.session_id, 0x1234);
                assert_eq!(header.session_seq, 7);
                let plain = open(&header, payload, signed, auth_code, &keys).unwrap();
                assert_eq!(plain, body);

                let mut bad = pkt.clone();
                bad[20] ^= 1;
                if let Ok(Frame::V20 {
                    header,
                    payload,
                    signed,
                    auth_code,
                }) = parse(&bad, suite.integrity_len())
                {
                    assert_eq!(
                        open(&header, payload, signed, auth_code, &keys),
                        Err(PacketError::BadAuthCode)
                    );
                }
            }
        }
    }

    #[test]
    fn v15_and_ping_parse() {
        let pkt = encode_v15(&[1, 2, 3]);
        assert_eq!(
            parse(&pkt, 0),
            Ok(Frame::V15 {
                session_id: 0,
                message: &[1, 2, 3]
            })
        );
        let ping = [6, 0, 0xFF, 6, 0, 0, 0x11, 0xBE, 0x80, 9, 0, 0];
        assert_eq!(parse(&ping, 0), Ok(Frame::AsfPing { tag: 9 }));
        assert!(parse(&[], 0).is_err());
    }
}
