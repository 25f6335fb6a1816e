//! The few SBC-3 commands the initiator issues, and SCSI sense data.

use std::fmt;

pub const STATUS_GOOD: u8 = 0x00;
pub const STATUS_CHECK_CONDITION: u8 = 0x02;
pub const SENSE_KEY_ILLEGAL_REQUEST: u8 = 0x05;
pub const SENSE_KEY_UNIT_ATTENTION: u8 = 0x06;

/// READ CAPACITY(16): SERVICE ACTION IN(16) 0x9E, service action 0x10.
pub fn read_capacity16() -> [u8; 16] {
    let mut cdb = [0u8; 16];
    cdb[0] = 0x9e;
    cdb[1] = 0x10;
    cdb[10..14].copy_from_slice(&32u32.to_be_bytes());
    cdb
}

/// READ CAPACITY(10), 0x25, in a 16-byte CDB field.
pub fn read_capacity10() -> [u8; 16] {
    let mut cdb = [0u8; 16];
    cdb[0] = 0x25;
    cdb
}

fn rw16(opcode: u8, lba: u64, blocks: u32) -> [u8; 16] {
    let mut cdb = [0u8; 16];
    cdb[0] = opcode;
    cdb[2..10].copy_from_slice(&lba.to_be_bytes());
    cdb[10..14].copy_from_slice(&blocks.to_be_bytes());
    cdb
}

pub fn read16(lba: u64, blocks: u32) -> [u8; 16] {
    rw16(0x88, lba, blocks)
}

pub fn write16(lba: u64, blocks: u32) -> [u8; 16] {
    rw16(0x8a, lba, blocks)
}

/// SYNCHRONIZE CACHE(10), 0x35: LBA 0 and 0 blocks mean the whole medium.
pub fn synchronize_cache10() -> [u8; 16] {
    let mut cdb = [0u8; 16];
    cdb[0] = 0x35;
    cdb
}

/// (block count, block size) from READ CAPACITY(16) parameter data.
pub fn parse_capacity16(data: &[u8]) -> Option<(u64, u32)> {
    let last = u64::from_be_bytes(data.get(0..8)?.try_into().ok()?);
    let size = u32::from_be_bytes(data.get(8..12)?.try_into().ok()?);
    Some((last.checked_add(1)?, size))
}

/// (block count, block size) from READ CAPACITY(10) parameter data;
/// `None` also when the LUN is too large for it (last LBA 0xFFFFFFFF).
pub fn parse_capacity10(data: &[u8]) -> Option<(u64, u32)> {
    let last = u32::from_be_bytes(data.get(0..4)?.try_into().ok()?);
    let size = u32::from_be_bytes(data.get(4..8)?.try_into().ok()?);
    (last != u32::MAX).then_some((u64::from(last) + 1, size))
}

/// Sense key and additional sense code of a CHECK CONDITION.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sense {
    pub key: u8,
    pub asc: u8,
    pub ascq: u8,
}

impl Sense {
    /// Parses the data segment of a SCSI Response: SenseLength (2 bytes)
    /// then fixed (0x70/0x71) or descriptor (0x72/0x73) format sense data.
    pub fn from_response_data(data: &[u8]) -> Option<Sense> {
        let len = usize::from(u16::from_be_bytes([*data.first()?, *data.get(1)?]));
        let sense = data.get(2..2 + len)?;
        match sense.first()? & 0x7f {
            0x70 | 0x71 => Some(Sense {
                key: sense.get(2)? & 0x0f,
                asc: sense.get(12).copied().unwrap_or(0),
                ascq: sense.get(13).copied().unwrap_or(0),
            }),
            0x72 | 0x73 => Some(Sense {
                key: sense.get(1)? & 0x0f,
                asc: sense.get(2).copied().unwrap_or(0),
                ascq: sense.get(3).copied().unwrap_or(0),
            }),
            _ => None,
        }
    }
}

pub fn sense_key_name(key: u8) -> &'static str {
    match key {
        0x0 => "NO SENSE",
        0x1 => "RECOVERED ERROR",
        0x2 => "NOT READY",
        0x3 => "MEDIUM ERROR",
        0x4 => "HARDWARE ERROR",
        0x5 => "ILLEGAL REQUEST",
        0x6 => "UNIT ATTENTION",
        0x7 => "DATA PROTECT",
        0x8 => "BLANK CHECK",
        0xb => "ABORTED COMMAND",
        0xd => "VOLUME OVERFLOW",
        0xe => "MISCOMPARE",
        _ => "reserved sense key",
    }
}

impl fmt::Display for Sense {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "sense key {:#x} ({}), ASC/ASCQ {:02x}h/{:02x}h",
            self.key,
            sense_key_name(self.key),
            self.asc,
            self.ascq
        )
    }
}

pub fn status_name(status: u8) -> &'static str {
    match status {
        0x00 => "GOOD",
        0x02 => "CHECK CONDITION",
        0x08 => "BUSY",
        0x18 => "RESERVATION CONFLICT",
        0x28 => "TASK SET FULL",
        0x30 => "ACA ACTIVE",
        0x40 => "TASK ABORTED",
        _ => "unknown status",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cdbs_follow_sbc3() {
        let w = write16(0x0102_0304_0506_0708, 0x0a0b_0c0d);
        assert_eq!(w[0], 0x8a);
        assert_eq!(&w[2..10], &[1, 2, 3, 4, 5, 6, 7, 8]);
        assert_eq!(&w[10..14], &[0x0a, 0x0b, 0x0c, 0x0d]);
        assert_eq!(read16(7, 1)[0], 0x88);
        let rc = read_capacity16();
        assert_eq!((rc[0], rc[1], rc[13]), (0x9e, 0x10, 32));
        assert_eq!(read_capacity10()[0], 0x25);
    }

    #[test]
    fn capacity_data() {
        let mut d = [0u8; 32];
        d[7] = 0xff; // last LBA 255
        d[10] = 0x02; // 512
        assert_eq!(parse_capacity16(&d), Some((256, 512)));
        assert_eq!(parse_capacity16(&d[..5]), None);
        assert_eq!(
            parse_capacity10(&[0, 0, 0x3f, 0xff, 0, 0, 0x10, 0]),
            Some((16384, 4096))
        );
        assert_eq!(parse_capacity10(&[0xff; 8]), None);
    }

    #[test]
    fn sense_fixed_and_descriptor() {
        let mut fixed = vec![0, 18, 0x70, 0, 0x05, 0, 0, 0, 0, 10];
        fixed.extend_from_slice(&[0, 0, 0, 0, 0x24, 0x01, 0, 0, 0, 0]);
        let s = Sense::from_response_data(&fixed);
        assert_eq!(
            s,
            Some(Sense {
                key: 5,
                asc: 0x24,
                ascq: 1
            })
        );
        let text = s.map(|s| s.to_string()).unwrap_or_default();
        assert!(
            text.contains("ILLEGAL REQUEST") && text.contains("24h/01h"),
            "{text}"
        );
        let desc = [0, 8, 0x72, 0x06, 0x29, 0x00, 0, 0, 0, 0];
        assert_eq!(
            Sense::from_response_data(&desc),
            Some(Sense {
                key: 6,
                asc: 0x29,
                ascq: 0
            })
        );
        assert_eq!(Sense::from_response_data(&[0, 40, 0x70]), None);
        assert_eq!(Sense::from_response_data(&[]), None);
        assert_eq!(Sense::from_response_data(&[0, 1, 0x12]), None);
    }
}
