//! The System Event Log (IPMI 2.0 §31): Get SEL Info, walk the entries with
//! Get SEL Entry, clear it (reserve, initiate erase, poll). Records are
//! decoded without I/O ([`SelRecord::parse`]); the event descriptions are
//! the spec's event offset names, in sel_desc.rs.

use ipmi_rs_core::storage::sdr::SensorType;
use serde::Serialize;

use super::error::{IpmiError, Result};
use super::message::netfn::STORAGE;
use super::rmcp::Bmc;
use super::sel_desc;

/// Walk bound: a SEL longer than this is a BMC bug (or a hostile one).
pub const MAX_SEL_ENTRIES: usize = 4096;
/// Get SEL Entry's "last record" ID.
const LAST_RECORD: u16 = 0xFFFF;
/// Timestamps at or below this count seconds since the BMC started, not
/// since 1970 (IPMI 2.0 §37.1).
pub const PRE_INIT_LIMIT: u32 = 0x2000_0000;
/// Erase-status polls before Clear SEL gives up (about 5 s).
const ERASE_POLLS: u32 = 50;

/// Get SEL Info (§31.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct SelInfo {
    /// BCD, 0x51 for "1.5".
    pub version: u8,
    pub entries: u16,
    pub free_bytes: u16,
    pub last_add: u32,
    pub last_erase: u32,
    pub overflow: bool,
    /// Operation support bits: delete 0x08, partial add 0x04, reserve 0x02,
    /// get allocation info 0x01.
    pub operations: u8,
}

impl SelInfo {
    pub fn parse(data: &[u8]) -> Option<SelInfo> {
        let d = data.get(..14)?;
        let word = |i: usize| u16::from_le_bytes([d[i], d[i + 1]]);
        let dword = |i: usize| u32::from_le_bytes([d[i], d[i + 1], d[i + 2], d[i + 3]]);
        Some(SelInfo {
            version: d[0],
            entries: word(1),
            free_bytes: word(3),
            last_add: dword(5),
            last_erase: dword(9),
            overflow: d[13] & 0x80 != 0,
            operations: d[13] & 0x0F,
        })
    }
}

/// A SEL timestamp: seconds since 1970 (UTC), or seconds since the BMC
/// started when its clock was not set yet ("Pre-Init" in ipmitool).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", content = "seconds", rename_all = "snake_case")]
pub enum SelTime {
    Utc(u32),
    PreInit(u32),
}

impl SelTime {
    pub fn from_raw(raw: u32) -> SelTime {
        if raw <= PRE_INIT_LIMIT {
            SelTime::PreInit(raw)
        } else {
            SelTime::Utc(raw)
        }
    }

    /// "2024-01-02T10:00:00Z", or "pre-init +52102s".
    pub fn label(self) -> String {
        match self {
            SelTime::Utc(s) => rfc3339(i64::from(s)),
            SelTime::PreInit(s) => format!("pre-init +{s}s"),
        }
    }
}

/// `secs` since 1970 as "YYYY-MM-DDTHH:MM:SSZ".
pub(crate) fn rfc3339(secs: i64) -> String {
    let (y, mo, d, h, mi, s) = crate::calendar::utc_fields(secs);
    format!("{y:04}-{mo:02}-{d:02}T{h:02}:{mi:02}:{s:02}Z")
}

/// A system event record (type 0x02, §32.1).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SystemEvent {
    pub time: SelTime,
    /// Slave address or software ID (byte 1) and channel/LUN (byte 2).
    pub generator_id: u16,
    pub evm_revision: u8,
    pub sensor_type: u8,
    pub sensor_number: u8,
    /// Event/reading type code, direction bit removed: 0x01 threshold,
    /// 0x02-0x0C generic discrete, 0x6F sensor-specific, 0x70-0x7F OEM.
    pub event_type: u8,
    /// Assertion (true) or deassertion event.
    pub asserted: bool,
    pub event_data: [u8; 3],
}

impl SystemEvent {
    /// ipmitool's wording: "Temperature", "Memory", "OEM (0xC0)".
    pub fn sensor_type_name(&self) -> String {
        SensorType::from(self.sensor_type).to_string()
    }

    /// The event offset, the low nibble of event data 1.
    pub fn offset(&self) -> u8 {
        self.event_data[0] & 0x0F
    }

    /// What happened, as ipmitool's `sel list` says it ("Lower
    /// Non-critical going low", "Uncorrectable ECC"); an offset with no
    /// name in the tables reads "Unknown event offset 0xN".
    pub fn description(&self) -> String {
        let offset = self.offset();
        let name = match self.event_type {
            0x01..=0x0C => sel_desc::generic_offset(self.event_type, offset),
            0x6F => sel_desc::specific_offset(self.sensor_type, offset, self.data2()),
            _ => None,
        };
        match name {
            Some(n) => n.to_string(),
            None if (0x70..=0x7F).contains(&self.event_type) => {
                format!(
                    "OEM event type 0x{:02X} offset 0x{offset:X}",
                    self.event_type
                )
            }
            None => format!("Unknown event offset 0x{offset:X}"),
        }
    }

    /// Event data 2, when data 1 says it carries event extension bits
    /// (bits 7:6 = 0b11) that the tables qualify descriptions with.
    fn data2(&self) -> Option<u8> {
        (self.event_data[0] & 0xC0 == 0xC0).then_some(self.event_data[1])
    }
}

/// One SEL record, decoded.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SelRecord {
    pub record_id: u16,
    pub record_type: u8,
    pub body: SelBody,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum SelBody {
    System(SystemEvent),
    /// Types 0xC0-0xDF: timestamp, manufacturer ID, six OEM bytes.
    OemTimestamped {
        time: SelTime,
        manufacturer_id: u32,
        data: Vec<u8>,
    },
    /// Types 0xE0-0xFF, and any other type: the 13 bytes after the type.
    Oem {
        data: Vec<u8>,
    },
}

impl SelRecord {
    /// Decodes the 16 bytes of a SEL record. `None` when shorter.
    pub fn parse(bytes: &[u8]) -> Option<SelRecord> {
        let b = bytes.get(..16)?;
        let record_id = u16::from_le_bytes([b[0], b[1]]);
        let record_type = b[2];
        let time = SelTime::from_raw(u32::from_le_bytes([b[3], b[4], b[5], b[6]]));
        let body = match record_type {
            0x02 => SelBody::System(SystemEvent {
                time,
                generator_id: u16::from_le_bytes([b[7], b[8]]),
                evm_revision: b[9],
                sensor_type: b[10],
                sensor_number: b[11],
                event_type: b[12] & 0x7F,
                asserted: b[12] & 0x80 == 0,
                event_data: [b[13], b[14], b[15]],
            }),
            0xC0..=0xDF => SelBody::OemTimestamped {
                time,
                manufacturer_id: u32::from_le_bytes([b[7], b[8], b[9], 0]),
                data: b[10..16].to_vec(),
            },
            _ => SelBody::Oem {
                data: b[3..16].to_vec(),
            },
        };
        Some(SelRecord {
            record_id,
            record_type,
            body,
        })
    }

    pub fn time(&self) -> Option<SelTime> {
        match &self.body {
            SelBody::System(e) => Some(e.time),
            SelBody::OemTimestamped { time, .. } => Some(*time),
            SelBody::Oem { .. } => None,
        }
    }

    /// One line of text: the description, or the OEM bytes in hex.
    pub fn description(&self) -> String {
        match &self.body {
            SelBody::System(e) => e.description(),
            SelBody::OemTimestamped {
                manufacturer_id,
                data,
                ..
            } => format!(
                "OEM record {:02x}, manufacturer {manufacturer_id}: {}",
                self.record_type,
                hex(data)
            ),
            SelBody::Oem { data } => {
                format!("OEM record {:02x}: {}", self.record_type, hex(data))
            }
        }
    }
}

pub(crate) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// A Get SEL Entry response: the next record's ID and the record.
pub fn parse_entry_response(data: &[u8]) -> Result<(u16, SelRecord)> {
    const GET: &str = "Get SEL Entry";
    if data.len() < 18 {
        return Err(IpmiError::Protocol {
            command: GET,
            why: format!("{} bytes, expected 2 + 16", data.len()),
        });
    }
    let next = u16::from_le_bytes([data[0], data[1]]);
    let record = SelRecord::parse(&data[2..]).expect("length checked");
    Ok((next, record))
}

/// The SEL walk as a state machine: feed it each response, it says which
/// record to ask for next, and stops at the end, on a loop, or at the bound.
#[derive(Debug, Default)]
pub struct SelWalk {
    records: Vec<SelRecord>,
    seen: std::collections::HashSet<u16>,
    next: u16,
    done: bool,
}

impl SelWalk {
    pub fn new() -> SelWalk {
        SelWalk::default()
    }

    /// The record ID to ask for, or `None` when the walk is over.
    pub fn next_id(&self) -> Option<u16> {
        (!self.done).then_some(self.next)
    }

    /// Takes one Get SEL Entry response. A next-record ID already visited
    /// (a BMC that loops) ends the walk with what was read so far.
    pub fn feed(&mut self, data: &[u8]) -> Result<()> {
        let (next, record) = parse_entry_response(data)?;
        self.seen.insert(self.next);
        self.seen.insert(record.record_id);
        self.records.push(record);
        if next == LAST_RECORD || self.records.len() >= MAX_SEL_ENTRIES {
            self.done = true;
        } else if self.seen.contains(&next) {
            tracing::warn!(next, "SEL next-record ID loops back; stopping the walk");
            self.done = true;
        } else {
            self.next = next;
        }
        Ok(())
    }

    pub fn finish(self) -> Vec<SelRecord> {
        self.records
    }
}

pub async fn sel_info(bmc: &mut Bmc) -> Result<SelInfo> {
    const GET: &str = "Get SEL Info";
    let data = bmc.call(STORAGE, 0x40, &[], GET).await?;
    SelInfo::parse(&data).ok_or(IpmiError::Protocol {
        command: GET,
        why: format!("{} bytes, expected 14", data.len()),
    })
}

/// Every SEL record, oldest first (bounded by [`MAX_SEL_ENTRIES`]).
pub async fn sel_entries(bmc: &mut Bmc) -> Result<Vec<SelRecord>> {
    if sel_info(bmc).await?.entries == 0 {
        return Ok(Vec::new());
    }
    let mut walk = SelWalk::new();
    while let Some(id) = walk.next_id() {
        let [lo, hi] = id.to_le_bytes();
        // No reservation (0000) is needed to read whole records.
        let request = [0, 0, lo, hi, 0, 0xFF];
        match bmc.call(STORAGE, 0x43, &request, "Get SEL Entry").await {
            Ok(data) => walk.feed(&data)?,
            // Emptied while we read (or the BMC lied in SEL Info).
            Err(IpmiError::Completion { code: 0xCB, .. }) if id == 0 => break,
            Err(e) => return Err(e),
        }
    }
    Ok(walk.finish())
}

/// Reserve SEL: the reservation ID Clear SEL needs.
pub async fn reserve_sel(bmc: &mut Bmc) -> Result<[u8; 2]> {
    const RESERVE: &str = "Reserve SEL";
    let data = bmc.call(STORAGE, 0x42, &[], RESERVE).await?;
    match data.get(..2) {
        Some(r) => Ok([r[0], r[1]]),
        None => Err(IpmiError::Protocol {
            command: RESERVE,
            why: format!("{} bytes, expected a 2-byte reservation ID", data.len()),
        }),
    }
}

/// Clear SEL request data: reservation, "CLR", and the action (0xAA
/// initiate erase, 0x00 get erase status).
pub fn clear_request(reservation: [u8; 2], initiate: bool) -> [u8; 6] {
    let action = if initiate { 0xAA } else { 0x00 };
    [reservation[0], reservation[1], b'C', b'L', b'R', action]
}

/// Erasure complete (status byte low nibble 1), per a Clear SEL response.
pub fn erase_done(data: &[u8]) -> Option<bool> {
    data.first().map(|b| b & 0x0F == 0x01)
}

/// Clears the SEL: reserve, initiate erase, then poll the erase status
/// until the BMC says it is done (bounded: about 5 s).
pub async fn clear_sel(bmc: &mut Bmc) -> Result<()> {
    const CLEAR: &str = "Clear SEL";
    let reservation = reserve_sel(bmc).await?;
    let data = bmc
        .call(STORAGE, 0x47, &clear_request(reservation, true), CLEAR)
        .await?;
    if erase_done(&data) == Some(true) {
        return Ok(());
    }
    for _ in 0..ERASE_POLLS {
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        let data = bmc
            .call(STORAGE, 0x47, &clear_request(reservation, false), CLEAR)
            .await?;
        if erase_done(&data) != Some(false) {
            return Ok(());
        }
    }
    Err(IpmiError::Protocol {
        command: CLEAR,
        why: "the erase was still in progress after 5 s".into(),
    })
}

#[cfg(test)]
#[path = "sel_tests.rs"]
mod tests;
