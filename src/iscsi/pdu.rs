//! I/O-free codec for the iSCSI PDUs an initiator sends and receives
//! (RFC 7143 §11): the 48-byte Basic Header Segment, the data segment padded
//! to a 4-byte boundary, and the text `key=value` data of Login PDUs.
//! Decoding never panics: a short or malformed PDU is a [`PduError`].

pub const BHS_LEN: usize = 48;
/// The "no tag" value of Initiator and Target Transfer Tags.
pub const RESERVED_TAG: u32 = 0xffff_ffff;
/// DataSegmentLength is a 24-bit field.
pub const MAX_DATA_SEGMENT: usize = (1 << 24) - 1;

/// Initiator opcodes (RFC 7143 §11.1.1).
pub const OP_NOP_OUT: u8 = 0x00;
pub const OP_SCSI_COMMAND: u8 = 0x01;
pub const OP_LOGIN_REQUEST: u8 = 0x03;
pub const OP_DATA_OUT: u8 = 0x05;
pub const OP_LOGOUT_REQUEST: u8 = 0x06;
/// Target opcodes.
pub const OP_NOP_IN: u8 = 0x20;
pub const OP_SCSI_RESPONSE: u8 = 0x21;
pub const OP_LOGIN_RESPONSE: u8 = 0x23;
pub const OP_DATA_IN: u8 = 0x25;
pub const OP_LOGOUT_RESPONSE: u8 = 0x26;
pub const OP_R2T: u8 = 0x31;
pub const OP_ASYNC_MESSAGE: u8 = 0x32;
pub const OP_REJECT: u8 = 0x3f;

const FLAG_IMMEDIATE: u8 = 0x40;
const FLAG_FINAL: u8 = 0x80;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PduError {
    #[error("PDU truncated: {needed} bytes needed, {got} present")]
    Truncated { needed: usize, got: usize },
    #[error("PDU is {got} bytes but its header announces {expected}")]
    LengthMismatch { expected: usize, got: usize },
    #[error("data segment of {len} bytes exceeds the limit of {limit}")]
    DataTooLong { len: usize, limit: usize },
    #[error("unexpected opcode {0:#04x} from the target")]
    UnknownOpcode(u8),
    #[error("malformed text data: {0}")]
    Text(String),
}

fn be16(b: &[u8], at: usize) -> u16 {
    u16::from_be_bytes([b[at], b[at + 1]])
}

fn be32(b: &[u8], at: usize) -> u32 {
    u32::from_be_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

fn put16(b: &mut [u8], at: usize, v: u16) {
    b[at..at + 2].copy_from_slice(&v.to_be_bytes());
}

fn put32(b: &mut [u8], at: usize, v: u32) {
    b[at..at + 4].copy_from_slice(&v.to_be_bytes());
}

/// `len` rounded up to a multiple of 4 (data segments are padded).
pub fn pad4(len: usize) -> usize {
    len.div_ceil(4) * 4
}

/// What follows a BHS on the wire, read from its length fields.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Lengths {
    /// Additional Header Segments, in bytes.
    pub ahs: usize,
    /// DataSegmentLength, without padding.
    pub data: usize,
}

impl Lengths {
    /// Bytes to read after the BHS: AHS plus the padded data segment.
    pub fn after_bhs(&self) -> usize {
        self.ahs + pad4(self.data)
    }
}

/// Reads TotalAHSLength and DataSegmentLength from a BHS, refusing data
/// segments above `limit` (what this initiator declared it can receive).
pub fn lengths(bhs: &[u8], limit: usize) -> Result<Lengths, PduError> {
    if bhs.len() < BHS_LEN {
        return Err(PduError::Truncated {
            needed: BHS_LEN,
            got: bhs.len(),
        });
    }
    let data = (usize::from(bhs[5]) << 16) | (usize::from(bhs[6]) << 8) | usize::from(bhs[7]);
    if data > limit {
        return Err(PduError::DataTooLong { len: data, limit });
    }
    Ok(Lengths {
        ahs: usize::from(bhs[4]) * 4,
        data,
    })
}

/// Frames a BHS and its data segment: sets DataSegmentLength and pads.
fn frame(mut bhs: [u8; BHS_LEN], data: &[u8]) -> Result<Vec<u8>, PduError> {
    if data.len() > MAX_DATA_SEGMENT {
        return Err(PduError::DataTooLong {
            len: data.len(),
            limit: MAX_DATA_SEGMENT,
        });
    }
    let len = data.len().to_be_bytes();
    bhs[5..8].copy_from_slice(&len[len.len() - 3..]);
    let mut out = Vec::with_capacity(BHS_LEN + pad4(data.len()));
    out.extend_from_slice(&bhs);
    out.extend_from_slice(data);
    out.resize(BHS_LEN + pad4(data.len()), 0);
    Ok(out)
}

/// Login stages (CSG/NSG, RFC 7143 §11.12.3).
pub const STAGE_SECURITY: u8 = 0;
pub const STAGE_OPERATIONAL: u8 = 1;
pub const STAGE_FULL_FEATURE: u8 = 3;

/// Login Request (§11.12); always immediate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoginRequest {
    pub transit: bool,
    pub csg: u8,
    pub nsg: u8,
    pub isid: [u8; 6],
    pub tsih: u16,
    pub itt: u32,
    pub cid: u16,
    pub cmd_sn: u32,
    pub exp_stat_sn: u32,
}

impl LoginRequest {
    pub fn encode(&self, text: &[u8]) -> Result<Vec<u8>, PduError> {
        let mut b = [0u8; BHS_LEN];
        b[0] = FLAG_IMMEDIATE | OP_LOGIN_REQUEST;
        // NSG is reserved (zero) unless the T bit is set.
        b[1] = if self.transit {
            0x80 | (self.csg & 3) << 2 | (self.nsg & 3)
        } else {
            (self.csg & 3) << 2
        };
        b[8..14].copy_from_slice(&self.isid);
        put16(&mut b, 14, self.tsih);
        put32(&mut b, 16, self.itt);
        put16(&mut b, 20, self.cid);
        put32(&mut b, 24, self.cmd_sn);
        put32(&mut b, 28, self.exp_stat_sn);
        frame(b, text)
    }
}

/// SCSI Command (§11.3) with an optional immediate data segment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScsiCommand {
    pub read: bool,
    pub write: bool,
    /// F bit: no unsolicited Data-Out follows.
    pub final_pdu: bool,
    pub lun: [u8; 8],
    pub itt: u32,
    pub expected_len: u32,
    pub cmd_sn: u32,
    pub exp_stat_sn: u32,
    pub cdb: [u8; 16],
}

impl ScsiCommand {
    pub fn encode(&self, immediate: &[u8]) -> Result<Vec<u8>, PduError> {
        let mut b = [0u8; BHS_LEN];
        b[0] = OP_SCSI_COMMAND;
        // ATTR 1: simple task.
        b[1] = 0x01
            | if self.final_pdu { FLAG_FINAL } else { 0 }
            | if self.read { 0x40 } else { 0 }
            | if self.write { 0x20 } else { 0 };
        b[8..16].copy_from_slice(&self.lun);
        put32(&mut b, 16, self.itt);
        put32(&mut b, 20, self.expected_len);
        put32(&mut b, 24, self.cmd_sn);
        put32(&mut b, 28, self.exp_stat_sn);
        b[32..48].copy_from_slice(&self.cdb);
        frame(b, immediate)
    }
}

/// SCSI Data-Out (§11.8), solicited (TTT from an R2T) or unsolicited.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DataOut {
    pub final_pdu: bool,
    pub lun: [u8; 8],
    pub itt: u32,
    pub ttt: u32,
    pub exp_stat_sn: u32,
    pub data_sn: u32,
    pub offset: u32,
}

impl DataOut {
    pub fn encode(&self, data: &[u8]) -> Result<Vec<u8>, PduError> {
        let mut b = [0u8; BHS_LEN];
        b[0] = OP_DATA_OUT;
        b[1] = if self.final_pdu { FLAG_FINAL } else { 0 };
        b[8..16].copy_from_slice(&self.lun);
        put32(&mut b, 16, self.itt);
        put32(&mut b, 20, self.ttt);
        put32(&mut b, 28, self.exp_stat_sn);
        put32(&mut b, 36, self.data_sn);
        put32(&mut b, 40, self.offset);
        frame(b, data)
    }
}

/// Logout Request (§11.14), reason 0: close the session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogoutRequest {
    pub itt: u32,
    pub cid: u16,
    pub cmd_sn: u32,
    pub exp_stat_sn: u32,
}

impl LogoutRequest {
    pub fn encode(&self) -> Result<Vec<u8>, PduError> {
        let mut b = [0u8; BHS_LEN];
        b[0] = FLAG_IMMEDIATE | OP_LOGOUT_REQUEST;
        b[1] = FLAG_FINAL;
        put32(&mut b, 16, self.itt);
        put16(&mut b, 20, self.cid);
        put32(&mut b, 24, self.cmd_sn);
        put32(&mut b, 28, self.exp_stat_sn);
        frame(b, &[])
    }
}

/// NOP-Out (§11.18) answering a target's NOP-In ping.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NopOut {
    pub lun: [u8; 8],
    pub ttt: u32,
    pub cmd_sn: u32,
    pub exp_stat_sn: u32,
}

impl NopOut {
    pub fn encode(&self, ping_data: &[u8]) -> Result<Vec<u8>, PduError> {
        let mut b = [0u8; BHS_LEN];
        b[0] = FLAG_IMMEDIATE | OP_NOP_OUT;
        b[1] = FLAG_FINAL;
        b[8..16].copy_from_slice(&self.lun);
        put32(&mut b, 16, RESERVED_TAG);
        put32(&mut b, 20, self.ttt);
        put32(&mut b, 24, self.cmd_sn);
        put32(&mut b, 28, self.exp_stat_sn);
        frame(b, ping_data)
    }
}

/// The sequence numbers most target PDUs carry at bytes 24..36.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Numbering {
    pub stat_sn: u32,
    pub exp_cmd_sn: u32,
    pub max_cmd_sn: u32,
}

impl Numbering {
    fn read(b: &[u8]) -> Numbering {
        Numbering {
            stat_sn: be32(b, 24),
            exp_cmd_sn: be32(b, 28),
            max_cmd_sn: be32(b, 32),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoginResponse {
    pub transit: bool,
    pub cont: bool,
    pub csg: u8,
    pub nsg: u8,
    pub version_active: u8,
    pub tsih: u16,
    pub itt: u32,
    pub sn: Numbering,
    pub status_class: u8,
    pub status_detail: u8,
    pub text: Vec<u8>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScsiResponse {
    pub itt: u32,
    /// 0: command completed at target; anything else is a target failure.
    pub response: u8,
    pub status: u8,
    pub overflow: bool,
    pub underflow: bool,
    pub residual: u32,
    pub sn: Numbering,
    /// The data segment: SenseLength (2 bytes) then sense data.
    pub data: Vec<u8>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DataIn {
    pub final_pdu: bool,
    /// S bit: `status` is valid and ends the command.
    pub status: Option<u8>,
    pub overflow: bool,
    pub underflow: bool,
    pub itt: u32,
    pub ttt: u32,
    pub sn: Numbering,
    pub data_sn: u32,
    pub offset: u32,
    pub residual: u32,
    /// The data segment's length, even when `data` is empty because the
    /// reader placed the segment straight where it belongs.
    pub len: usize,
    pub data: Vec<u8>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct R2t {
    pub lun: [u8; 8],
    pub itt: u32,
    pub ttt: u32,
    pub sn: Numbering,
    pub r2t_sn: u32,
    pub offset: u32,
    pub desired_len: u32,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogoutResponse {
    pub itt: u32,
    pub response: u8,
    pub sn: Numbering,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NopIn {
    pub lun: [u8; 8],
    pub itt: u32,
    pub ttt: u32,
    pub sn: Numbering,
    pub data: Vec<u8>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reject {
    pub reason: u8,
    pub sn: Numbering,
    /// The BHS of the rejected PDU.
    pub header: Vec<u8>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AsyncMessage {
    pub event: u8,
    pub sn: Numbering,
}

/// A PDU a target sends to an initiator.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TargetPdu {
    Login(LoginResponse),
    Response(ScsiResponse),
    DataIn(DataIn),
    R2t(R2t),
    Logout(LogoutResponse),
    NopIn(NopIn),
    Reject(Reject),
    Async(AsyncMessage),
    /// Text or task management responses, which this initiator never asks for.
    Other {
        opcode: u8,
        sn: Numbering,
    },
}

impl TargetPdu {
    /// The StatSN/ExpCmdSN/MaxCmdSN it carries.
    pub fn numbering(&self) -> Numbering {
        match self {
            TargetPdu::Login(p) => p.sn,
            TargetPdu::Response(p) => p.sn,
            TargetPdu::DataIn(p) => p.sn,
            TargetPdu::R2t(p) => p.sn,
            TargetPdu::Logout(p) => p.sn,
            TargetPdu::NopIn(p) => p.sn,
            TargetPdu::Reject(p) => p.sn,
            TargetPdu::Async(p) => p.sn,
            TargetPdu::Other { sn, .. } => *sn,
        }
    }

    /// Its name in RFC 7143, for messages.
    pub fn name(&self) -> &'static str {
        match self {
            TargetPdu::Login(_) => "Login Response",
            TargetPdu::Response(_) => "SCSI Response",
            TargetPdu::DataIn(_) => "SCSI Data-In",
            TargetPdu::R2t(_) => "R2T",
            TargetPdu::Logout(_) => "Logout Response",
            TargetPdu::NopIn(_) => "NOP-In",
            TargetPdu::Reject(_) => "Reject",
            TargetPdu::Async(_) => "Asynchronous Message",
            TargetPdu::Other { .. } => "Text or Task Management Response",
        }
    }

    /// Whether its StatSN is a status number the initiator acknowledges
    /// (R2Ts and unsolicited NOP-Ins only report the next one).
    pub fn carries_status(&self) -> bool {
        match self {
            TargetPdu::DataIn(p) => p.status.is_some(),
            TargetPdu::R2t(_) => false,
            TargetPdu::NopIn(p) => p.itt != RESERVED_TAG,
            _ => true,
        }
    }
}

/// Decodes one complete target PDU (BHS, AHS, padded data segment).
pub fn decode(pdu: &[u8], limit: usize) -> Result<TargetPdu, PduError> {
    let len = lengths(pdu, limit)?;
    let expected = BHS_LEN + len.after_bhs();
    if pdu.len() != expected {
        return Err(PduError::LengthMismatch {
            expected,
            got: pdu.len(),
        });
    }
    let data_at = BHS_LEN + len.ahs;
    decode_parts(&pdu[..BHS_LEN], pdu[data_at..data_at + len.data].to_vec())
}

/// A PDU from its BHS and its data segment, read separately (the segment
/// may be empty when the reader placed it elsewhere: see [`DataIn::len`]).
/// `bhs` must be `BHS_LEN` bytes whose lengths [`lengths`] accepted.
pub fn decode_parts(b: &[u8], data: Vec<u8>) -> Result<TargetPdu, PduError> {
    let segment_len = (usize::from(b[5]) << 16) | (usize::from(b[6]) << 8) | usize::from(b[7]);
    let sn = Numbering::read(b);
    let mut lun = [0u8; 8];
    lun.copy_from_slice(&b[8..16]);
    let flags = b[1];
    Ok(match b[0] & 0x3f {
        OP_LOGIN_RESPONSE => TargetPdu::Login(LoginResponse {
            transit: flags & 0x80 != 0,
            cont: flags & 0x40 != 0,
            csg: (flags >> 2) & 3,
            nsg: flags & 3,
            version_active: b[3],
            tsih: be16(b, 14),
            itt: be32(b, 16),
            sn,
            status_class: b[36],
            status_detail: b[37],
            text: data,
        }),
        OP_SCSI_RESPONSE => TargetPdu::Response(ScsiResponse {
            itt: be32(b, 16),
            response: b[2],
            status: b[3],
            overflow: flags & 0x04 != 0,
            underflow: flags & 0x02 != 0,
            residual: be32(b, 44),
            sn,
            data,
        }),
        OP_DATA_IN => TargetPdu::DataIn(DataIn {
            final_pdu: flags & 0x80 != 0,
            status: (flags & 0x01 != 0).then_some(b[3]),
            overflow: flags & 0x04 != 0,
            underflow: flags & 0x02 != 0,
            itt: be32(b, 16),
            ttt: be32(b, 20),
            sn,
            data_sn: be32(b, 36),
            offset: be32(b, 40),
            residual: be32(b, 44),
            len: segment_len,
            data,
        }),
        OP_R2T => TargetPdu::R2t(R2t {
            lun,
            itt: be32(b, 16),
            ttt: be32(b, 20),
            sn,
            r2t_sn: be32(b, 36),
            offset: be32(b, 40),
            desired_len: be32(b, 44),
        }),
        OP_LOGOUT_RESPONSE => TargetPdu::Logout(LogoutResponse {
            itt: be32(b, 16),
            response: b[2],
            sn,
        }),
        OP_NOP_IN => TargetPdu::NopIn(NopIn {
            lun,
            itt: be32(b, 16),
            ttt: be32(b, 20),
            sn,
            data,
        }),
        OP_REJECT => TargetPdu::Reject(Reject {
            reason: b[2],
            sn,
            header: data,
        }),
        OP_ASYNC_MESSAGE => TargetPdu::Async(AsyncMessage { event: b[36], sn }),
        op @ (0x22 | 0x24) => TargetPdu::Other { opcode: op, sn },
        op => return Err(PduError::UnknownOpcode(op)),
    })
}

/// What a Reject PDU's reason code means (§11.17.1).
pub fn reject_reason(reason: u8) -> &'static str {
    match reason {
        0x02 => "data digest error",
        0x03 => "SNACK reject",
        0x04 => "protocol error",
        0x05 => "command not supported",
        0x06 => "immediate command rejected: too many immediate commands",
        0x07 => "task in progress",
        0x08 => "invalid data ack",
        0x09 => "invalid PDU field",
        0x0a => "long operation reject: out of resources",
        0x0c => "waiting for logout",
        _ => "reserved reason",
    }
}

/// Encodes text parameters: each `key=value` followed by a NUL (§6.1).
pub fn encode_text<K: AsRef<str>, V: AsRef<str>>(pairs: &[(K, V)]) -> Vec<u8> {
    let mut out = Vec::new();
    for (k, v) in pairs {
        out.extend_from_slice(k.as_ref().as_bytes());
        out.push(b'=');
        out.extend_from_slice(v.as_ref().as_bytes());
        out.push(0);
    }
    out
}

/// Parses NUL-terminated `key=value` pairs. Trailing NULs (padding some
/// targets count in the data segment) are ignored; a final pair without its
/// NUL is accepted.
pub fn parse_text(data: &[u8]) -> Result<Vec<(String, String)>, PduError> {
    let mut pairs = Vec::new();
    for item in data.split(|&c| c == 0).filter(|s| !s.is_empty()) {
        let item = std::str::from_utf8(item).map_err(|_| {
            PduError::Text(format!("not UTF-8: {:?}", String::from_utf8_lossy(item)))
        })?;
        let Some((key, value)) = item.split_once('=') else {
            return Err(PduError::Text(format!("{item:?} has no '='")));
        };
        if key.is_empty() || key.len() > 63 {
            return Err(PduError::Text(format!("bad key in {item:?}")));
        }
        pairs.push((key.to_string(), value.to_string()));
    }
    Ok(pairs)
}

/// The 8-byte LUN field (SAM-5 §4.7): peripheral addressing below 256,
/// flat space addressing up to 16383.
pub fn encode_lun(lun: u64) -> Option<[u8; 8]> {
    let mut out = [0u8; 8];
    match lun {
        0..=255 => out[1] = lun as u8,
        256..=16383 => {
            out[0] = 0x40 | (lun >> 8) as u8;
            out[1] = (lun & 0xff) as u8;
        }
        _ => return None,
    }
    Some(out)
}

#[cfg(test)]
#[path = "pdu_tests.rs"]
mod tests;
