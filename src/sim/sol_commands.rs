//! The IPMI commands around the SOL payload (IPMI 2.0 §24 and §26): Activate,
//! Deactivate, Get Payload Activation Status and Instance Info, and Get SOL
//! Configuration Parameters. They need the calling session, so the session
//! layer routes them here rather than to the `Controller`.

use super::commands::privilege;
use super::sol::{Effect, PAYLOAD_SIZE, Sol};
use crate::ipmi::message::{Request, Response, netfn};

const NETFN_TRANSPORT: u8 = 0x0C;
const ACTIVATE_PAYLOAD: u8 = 0x48;
const DEACTIVATE_PAYLOAD: u8 = 0x49;
const GET_PAYLOAD_ACTIVATION_STATUS: u8 = 0x4A;
const GET_PAYLOAD_INSTANCE_INFO: u8 = 0x4B;
const GET_SOL_CONFIG: u8 = 0x22;

const PAYLOAD_SOL: u8 = 0x01;
const INSTANCE: u8 = 1;
/// Activate Payload aux byte 1, bit 7: the console asks for encryption.
const ENCRYPT: u8 = 0x80;
/// SOL configuration parameter revision.
const PARAMETER_REVISION: u8 = 0x11;
/// The LAN channel SOL runs on (as `commands` reports).
const LAN_CHANNEL: u8 = 0x01;
/// 115.2 kbit/s in the SOL bit-rate encoding.
const BIT_RATE_115200: u8 = 0x0A;
/// Retries after the first send, as parameter 4 counts them.
const MAX_RETRIES: u8 = super::sol::MAX_SENDS as u8 - 1;

type Outcome = Result<Vec<u8>, u8>;

/// Whether `req` is one of the commands answered here.
pub fn handles(req: &Request) -> bool {
    matches!(
        (req.netfn, req.cmd),
        (
            netfn::APP,
            ACTIVATE_PAYLOAD
                | DEACTIVATE_PAYLOAD
                | GET_PAYLOAD_ACTIVATION_STATUS
                | GET_PAYLOAD_INSTANCE_INFO
        ) | (NETFN_TRANSPORT, GET_SOL_CONFIG)
    )
}

/// Runs `req` for `session` at `level`; `port` is the BMC's UDP port.
pub fn execute(
    sol: &mut Sol,
    req: &Request,
    session: u32,
    level: u8,
    port: u16,
) -> (Response, Vec<Effect>) {
    let mut effects = Vec::new();
    let outcome = if level < privilege::USER {
        Err(0xD4)
    } else {
        match (req.netfn, req.cmd) {
            (netfn::APP, ACTIVATE_PAYLOAD) => activate(sol, &req.data, session, port),
            (netfn::APP, DEACTIVATE_PAYLOAD) => sol_instance(&req.data).and_then(|()| {
                effects = sol.deactivate(session)?;
                Ok(vec![])
            }),
            (netfn::APP, GET_PAYLOAD_ACTIVATION_STATUS) => match req.data.first() {
                Some(&t) if t & 0x3F == PAYLOAD_SOL => {
                    Ok(vec![INSTANCE, u8::from(sol.owner().is_some()), 0])
                }
                Some(_) => Err(0xCC),
                None => Err(0xC7),
            },
            (netfn::APP, GET_PAYLOAD_INSTANCE_INFO) => sol_instance(&req.data).map(|()| {
                let owner = sol.owner().unwrap_or(0).to_le_bytes();
                // Session ID, then payload-specific: serial port number 1.
                [&owner[..], &[1, 0, 0, 0, 0, 0, 0, 0]].concat()
            }),
            _ => config_parameter(&req.data, port),
        }
    };
    let response = match outcome {
        Ok(data) => req.respond(0, &data),
        Err(code) => req.respond(code, &[]),
    };
    (response, effects)
}

/// Payload type and instance must name SOL instance 1.
fn sol_instance(data: &[u8]) -> Result<(), u8> {
    match data {
        [t, i, ..] if t & 0x3F == PAYLOAD_SOL && i & 0x0F == INSTANCE => Ok(()),
        [_, _, ..] => Err(0xCC),
        _ => Err(0xC7),
    }
}

/// Activate Payload: ipmitool sends `01 01 c6 00 00 00` and needs exactly 12
/// bytes back, with the port equal to the one it talks to.
fn activate(sol: &mut Sol, data: &[u8], session: u32, port: u16) -> Outcome {
    sol_instance(data)?;
    let aux = *data.get(2).ok_or(0xC7)?;
    if aux & ENCRYPT == 0 {
        // Sessions here are always encrypted; so is SOL (as on OpenBMC).
        return Err(0x84);
    }
    sol.activate(session)?;
    let size = PAYLOAD_SIZE.to_le_bytes();
    let port = port.to_le_bytes();
    Ok([&[0, 0, 0, 0][..], &size, &size, &port, &[0xFF, 0xFF]].concat())
}

/// Get SOL Configuration Parameters: channel (bit 7: revision only),
/// selector, set, block. `ipmitool sol info` reads selectors 0–8.
fn config_parameter(data: &[u8], port: u16) -> Outcome {
    let [channel, selector, ..] = *data else {
        return Err(0xC7);
    };
    let value: Vec<u8> = match selector {
        0 => vec![0],                      // set complete
        1 => vec![1],                      // SOL enabled
        2 => vec![0xC0 | privilege::USER], // forced encryption and auth, USER
        3 => vec![1, 1],                   // accumulate 5 ms, send threshold 1 char
        4 => vec![MAX_RETRIES, 50],        // retries, 500 ms interval (10 ms units)
        5 | 6 => vec![BIT_RATE_115200],
        7 => vec![LAN_CHANNEL],
        8 => port.to_le_bytes().to_vec(),
        _ => return Err(0x80),
    };
    if channel & 0x80 != 0 {
        return Ok(vec![PARAMETER_REVISION]);
    }
    Ok([&[PARAMETER_REVISION][..], &value].concat())
}
