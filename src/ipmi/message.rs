//! IPMI LAN messages (the body of payload type 0): requester/responder
//! addresses, NetFn/LUN, sequence, command, data and the two checksums.

use super::packet::PacketError;

pub const BMC_ADDR: u8 = 0x20;
pub const CONSOLE_ADDR: u8 = 0x81;

/// Network functions (requests; the response NetFn is one more).
pub mod netfn {
    pub const CHASSIS: u8 = 0x00;
    pub const SENSOR: u8 = 0x04;
    pub const APP: u8 = 0x06;
    pub const STORAGE: u8 = 0x0A;
    pub const GROUP_EXT: u8 = 0x2C;
}

fn checksum(bytes: &[u8]) -> u8 {
    bytes
        .iter()
        .fold(0u8, |a, b| a.wrapping_add(*b))
        .wrapping_neg()
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    pub netfn: u8,
    pub cmd: u8,
    /// 6-bit requester sequence used to pair a response with its request.
    pub rq_seq: u8,
    pub data: Vec<u8>,
    /// Requester's software ID (0x81 for a remote console).
    pub rq_addr: u8,
    /// Responder LUN (low two bits of the NetFn byte).
    pub rs_lun: u8,
}

impl Request {
    pub fn new(netfn: u8, cmd: u8, rq_seq: u8, data: &[u8]) -> Request {
        Request {
            netfn,
            cmd,
            rq_seq: rq_seq & 0x3F,
            data: data.to_vec(),
            rq_addr: CONSOLE_ADDR,
            rs_lun: 0,
        }
    }

    pub fn encode(&self) -> Vec<u8> {
        let head = [BMC_ADDR, self.netfn << 2 | (self.rs_lun & 3)];
        let mut out = head.to_vec();
        out.push(checksum(&head));
        let start = out.len();
        out.extend_from_slice(&[self.rq_addr, self.rq_seq << 2, self.cmd]);
        out.extend_from_slice(&self.data);
        out.push(checksum(&out[start..]));
        out
    }

    pub fn decode(bytes: &[u8]) -> Result<Request, PacketError> {
        check_frame(bytes)?;
        Ok(Request {
            netfn: bytes[1] >> 2,
            rs_lun: bytes[1] & 3,
            rq_addr: bytes[3],
            rq_seq: bytes[4] >> 2,
            cmd: bytes[5],
            data: bytes[6..bytes.len() - 1].to_vec(),
        })
    }

    /// The response to this request, completion code first.
    pub fn respond(&self, completion: u8, data: &[u8]) -> Response {
        Response {
            netfn: self.netfn | 1,
            cmd: self.cmd,
            rq_seq: self.rq_seq,
            completion,
            data: data.to_vec(),
            rq_addr: self.rq_addr,
            rs_lun: self.rs_lun,
        }
    }
}

/// Both checksums hold and there is room for a command byte.
fn check_frame(bytes: &[u8]) -> Result<(), PacketError> {
    if bytes.len() < 7 {
        return Err(PacketError::Malformed("IPMI message too short"));
    }
    if checksum(&bytes[..2]) != bytes[2]
        || checksum(&bytes[3..bytes.len() - 1]) != bytes[bytes.len() - 1]
    {
        return Err(PacketError::Malformed("IPMI message checksum"));
    }
    Ok(())
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    /// Response NetFn (odd).
    pub netfn: u8,
    pub cmd: u8,
    pub rq_seq: u8,
    pub completion: u8,
    pub data: Vec<u8>,
    pub rq_addr: u8,
    pub rs_lun: u8,
}

impl Response {
    pub fn encode(&self) -> Vec<u8> {
        let head = [self.rq_addr, self.netfn << 2 | (self.rs_lun & 3)];
        let mut out = head.to_vec();
        out.push(checksum(&head));
        let start = out.len();
        out.extend_from_slice(&[BMC_ADDR, self.rq_seq << 2, self.cmd, self.completion]);
        out.extend_from_slice(&self.data);
        out.push(checksum(&out[start..]));
        out
    }

    pub fn decode(bytes: &[u8]) -> Result<Response, PacketError> {
        check_frame(bytes)?;
        if bytes.len() < 8 {
            return Err(PacketError::Malformed(
                "IPMI response without completion code",
            ));
        }
        Ok(Response {
            rq_addr: bytes[0],
            netfn: bytes[1] >> 2,
            rs_lun: bytes[1] & 3,
            rq_seq: bytes[4] >> 2,
            cmd: bytes[5],
            completion: bytes[6],
            data: bytes[7..bytes.len() - 1].to_vec(),
        })
    }
}

/// What a completion code means (IPMI 2.0 table 5-2).
pub fn completion_meaning(code: u8) -> &'static str {
    match code {
        0x00 => "success",
        0xC0 => "node busy",
        0xC1 => "invalid or unsupported command",
        0xC2 => "command invalid for the given LUN",
        0xC3 => "timeout while processing the command",
        0xC4 => "out of space",
        0xC5 => "reservation cancelled or invalid",
        0xC6 => "request data truncated",
        0xC7 => "request data length invalid",
        0xC8 => "request data field length limit exceeded",
        0xC9 => "parameter out of range",
        0xCA => "cannot return the requested number of bytes",
        0xCB => "requested sensor, data or record not present",
        0xCC => "invalid data field in request",
        0xCD => "command illegal for the specified sensor or record type",
        0xCE => "command response could not be provided",
        0xCF => "cannot execute duplicated request",
        0xD0 => "SDR repository in update mode",
        0xD1 => "device in firmware update mode",
        0xD2 => "BMC initialization in progress",
        0xD3 => "destination unavailable",
        0xD4 => "insufficient privilege level",
        0xD5 => "command not supported in present state",
        0xD6 => "command sub-function disabled or unavailable",
        0xFF => "unspecified error",
        0x01..=0x7E => "OEM-specific error",
        _ => "command-specific error",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_and_response_round_trip() {
        let req = Request::new(netfn::CHASSIS, 0x02, 5, &[1]);
        let bytes = req.encode();
        assert_eq!(bytes, [0x20, 0x00, 0xE0, 0x81, 0x14, 0x02, 0x01, 0x68]);
        assert_eq!(Request::decode(&bytes).unwrap(), req);
        let resp = req.respond(0, &[0xAB]);
        assert_eq!(Response::decode(&resp.encode()).unwrap(), resp);
        let mut bad = resp.encode();
        bad[7] ^= 1;
        assert!(Response::decode(&bad).is_err());
    }
}
