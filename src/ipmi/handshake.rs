//! Opening an RMCP+ session, client side: channel capabilities, cipher
//! suite negotiation, Open Session and RAKP 1–4 (IPMI 2.0 §13.17–13.23).

use super::crypto::{self, CipherSuite, Exchange, random};
use super::error::{IpmiError, Result};
use super::link::{Link, completion, handshake_reply, sessionless_reply};
use super::message::{Request, netfn};
use super::packet::{self, PacketError, payload};
use super::rakp::{
    ADMINISTRATOR, NAME_ONLY_LOOKUP, OpenSessionRequest, OpenSessionResponse, Rakp1, Rakp2,
    RakpCode,
};
use super::rmcp::{Credentials, Secured};

/// One request outside a session (IPMI 1.5 or session-less RMCP+ framing),
/// resent until answered; the response data.
async fn sessionless_call(
    link: &mut Link,
    req: &Request,
    rmcp_plus: bool,
    command: &'static str,
) -> Result<Vec<u8>> {
    let packet = if rmcp_plus {
        packet::encode_v20(payload::IPMI, 0, 0, &req.encode(), None)
    } else {
        packet::encode_v15(&req.encode())
    };
    let tries = link.tries();
    let resp = link
        .exchange(
            &mut (),
            command,
            tries,
            |_| packet.clone(),
            |_, d| sessionless_reply(d, req),
        )
        .await?;
    completion(resp, command)
}

/// Get Channel Authentication Capabilities (IPMI 1.5 framing, as every BMC
/// answers it): the BMC must support IPMI 2.0.
pub(super) async fn check_rmcp_plus(link: &mut Link) -> Result<()> {
    const COMMAND: &str = "Get Channel Authentication Capabilities";
    let req = Request::new(netfn::APP, 0x38, 0, &[0x8E, ADMINISTRATOR]);
    let data = sessionless_call(link, &req, false, COMMAND).await?;
    // Byte 2 bit 7: extended capabilities present; byte 4 bit 1: IPMI 2.0.
    if data.len() < 4 || data[1] & 0x80 == 0 || data[3] & 0x02 == 0 {
        return Err(IpmiError::NoRmcpPlus);
    }
    Ok(())
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
        let data = sessionless_call(link, &req, rmcp_plus, COMMAND).await?;
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
pub(super) async fn negotiate(link: &mut Link) -> Result<CipherSuite> {
    let offered = list_suites(link).await?;
    [CipherSuite::Suite17, CipherSuite::Suite3]
        .into_iter()
        .find(|s| offered.contains(&s.id()))
        .ok_or(IpmiError::CipherNotOffered {
            wanted: "17 or 3".into(),
            offered,
        })
}

/// Sends one handshake message (session-less RMCP+) and waits for a reply
/// of `reply_type` that decodes and carries the same message tag (byte 0 of
/// every handshake payload); anything else is ignored.
async fn step<T>(
    link: &mut Link,
    name: &'static str,
    (kind, body): (u8, Vec<u8>),
    reply_type: u8,
    decode: fn(&[u8]) -> std::result::Result<T, PacketError>,
) -> Result<T> {
    let tag = body[0];
    let packet = packet::encode_v20(kind, 0, 0, &body, None);
    let tries = link.tries();
    link.exchange(
        &mut (),
        name,
        tries,
        |_| packet.clone(),
        |_, d| reply_to(d, reply_type, tag, decode),
    )
    .await
}

/// A handshake reply of `reply_type` with message tag `tag`, decoded.
fn reply_to<T>(
    datagram: &[u8],
    reply_type: u8,
    tag: u8,
    decode: fn(&[u8]) -> std::result::Result<T, PacketError>,
) -> Option<T> {
    let reply = handshake_reply(datagram, reply_type).filter(|p| p.first() == Some(&tag))?;
    decode(&reply).ok()
}

/// An RMCP+ status code from Open Session or RAKP as the error an admin
/// can act on.
fn refused(status: u8, suite: CipherSuite, creds: &Credentials) -> Result<()> {
    let user = || creds.username.clone();
    Err(match status {
        0 => return Ok(()),
        0x0D => IpmiError::UnknownUser { user: user() },
        0x0F => IpmiError::WrongPassword { user: user() },
        0x04 | 0x05 | 0x10 | 0x11 => IpmiError::CipherNotOffered {
            wanted: suite.id().to_string(),
            offered: Vec::new(),
        },
        code => IpmiError::SessionRefused { code },
    })
}

pub(super) async fn handshake(
    link: &mut Link,
    suite: CipherSuite,
    creds: &Credentials,
) -> Result<Secured> {
    let console_session_id = u32::from_le_bytes(random()) | 1;
    let open = OpenSessionRequest::new(0, console_session_id, suite);
    let reply = step(
        link,
        "Open Session",
        (payload::OPEN_SESSION_REQUEST, open.encode()),
        payload::OPEN_SESSION_RESPONSE,
        OpenSessionResponse::decode,
    )
    .await?;
    refused(reply.status, suite, creds)?;
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
    let mut rakp2 = step(
        link,
        "RAKP 1",
        (payload::RAKP1, rakp1.encode()),
        payload::RAKP2,
        Rakp2::decode,
    )
    .await?;
    // A slow BMC: RAKP 1 was resent and the answer taken may be to the first
    // send. A BMC that draws a new challenge per RAKP 1 holds the one it
    // sent last, so the last answer is the one to go on with.
    let resent = link.sends.count > 1;
    let answered_at = tokio::time::Instant::now();
    let tag = rakp1.tag;
    if let Some(later) = link
        .answers_to_resends(answered_at, |d| {
            reply_to(d, payload::RAKP2, tag, Rakp2::decode)
        })
        .await
    {
        rakp2 = later;
    }
    refused(rakp2.status, suite, creds)?;
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
    if !crypto::equal(&exchange.rakp2_auth_code(password), &rakp2.auth_code) {
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
    let rakp4 = step(
        link,
        "RAKP 3",
        (payload::RAKP3, rakp3.encode()),
        payload::RAKP4,
        RakpCode::decode,
    )
    .await?;
    if rakp4.status != 0 {
        // Not a wrong password: RAKP 2 just proved the BMC has ours.
        return Err(IpmiError::Rakp3Refused {
            code: rakp4.status,
            rakp1_resent: resent,
        });
    }
    let keys = exchange.keys(password);
    if !crypto::equal(&exchange.rakp4_icv(&keys.sik), &rakp4.code) {
        return Err(IpmiError::Protocol {
            command: "RAKP 4",
            why: "integrity check value does not match the session key".into(),
        });
    }
    Ok(Secured::new(keys, reply.bmc_session_id, console_session_id))
}
