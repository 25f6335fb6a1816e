//! The System Event Log (IPMI 2.0 §31): Get SEL Info, walk the entries with
//! Get SEL Entry, clear it (reserve, initiate erase, poll). Records are
//! decoded without I/O ([`SelRecord::parse`]); the event descriptions are
//! the spec's event offset names (tables 42-2 and 42-3), worded as
//! ipmitool's `sel list` words them so the two can be read side by side.

use ipmi_rs_core::storage::sdr::SensorType;
use serde::Serialize;

use super::error::{IpmiError, Result};
use super::message::netfn::STORAGE;
use super::rmcp::Bmc;

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
            0x01..=0x0C => generic_offset(self.event_type, offset),
            0x6F => specific_offset(self.sensor_type, offset, self.data2()),
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

/// Generic event/reading types 0x01-0x0C (table 42-2).
fn generic_offset(event_type: u8, offset: u8) -> Option<&'static str> {
    let names: &[&str] = match event_type {
        0x01 => &[
            "Lower Non-critical going low",
            "Lower Non-critical going high",
            "Lower Critical going low",
            "Lower Critical going high",
            "Lower Non-recoverable going low",
            "Lower Non-recoverable going high",
            "Upper Non-critical going low",
            "Upper Non-critical going high",
            "Upper Critical going low",
            "Upper Critical going high",
            "Upper Non-recoverable going low",
            "Upper Non-recoverable going high",
        ],
        0x02 => &[
            "Transition to Idle",
            "Transition to Active",
            "Transition to Busy",
        ],
        0x03 => &["State Deasserted", "State Asserted"],
        0x04 => &[
            "Predictive Failure Deasserted",
            "Predictive Failure Asserted",
        ],
        0x05 => &["Limit Not Exceeded", "Limit Exceeded"],
        0x06 => &["Performance Met", "Performance Lags"],
        0x07 => &[
            "Transition to OK",
            "Transition to Non-critical from OK",
            "Transition to Critical from less severe",
            "Transition to Non-recoverable from less severe",
            "Transition to Non-critical from more severe",
            "Transition to Critical from Non-recoverable",
            "Transition to Non-recoverable",
            "Monitor",
            "Informational",
        ],
        0x08 => &["Device Absent", "Device Present"],
        0x09 => &["Device Disabled", "Device Enabled"],
        0x0A => &[
            "Transition to Running",
            "Transition to In Test",
            "Transition to Power Off",
            "Transition to On Line",
            "Transition to Off Line",
            "Transition to Off Duty",
            "Transition to Degraded",
            "Transition to Power Save",
            "Install Error",
        ],
        0x0B => &[
            "Fully Redundant",
            "Redundancy Lost",
            "Redundancy Degraded",
            "Non-Redundant: Sufficient from Redundant",
            "Non-Redundant: Sufficient from Insufficient",
            "Non-Redundant: Insufficient Resources",
            "Redundancy Degraded from Fully Redundant",
            "Redundancy Degraded from Non-Redundant",
        ],
        0x0C => &[
            "D0 Power State",
            "D1 Power State",
            "D2 Power State",
            "D3 Power State",
        ],
        _ => &[],
    };
    names.get(usize::from(offset)).copied()
}

/// System firmware progress/hang/error codes in event data 2 (table 42-3,
/// sensor type 0x0F).
const FIRMWARE_PROGRESS: [&str; 26] = [
    "Unspecified",
    "Memory initialization",
    "Hard-disk initialization",
    "Secondary CPU Initialization",
    "User authentication",
    "User-initiated system setup",
    "USB resource configuration",
    "PCI resource configuration",
    "Option ROM initialization",
    "Video initialization",
    "Cache initialization",
    "SMBus initialization",
    "Keyboard controller initialization",
    "Management controller initialization",
    "Docking station attachment",
    "Enabling docking station",
    "Docking station ejection",
    "Disabling docking station",
    "Calling operating system wake-up vector",
    "System boot initiated",
    "Motherboard initialization",
    "reserved",
    "Floppy initialization",
    "Keyboard test",
    "Pointing device test",
    "Primary CPU initialization",
];

const FIRMWARE_ERROR: [&str; 14] = [
    "Unspecified",
    "No system memory installed",
    "No usable system memory",
    "Unrecoverable IDE device failure",
    "Unrecoverable system-board failure",
    "Unrecoverable diskette failure",
    "Unrecoverable hard-disk controller failure",
    "Unrecoverable PS/2 or USB keyboard failure",
    "Removable boot media not found",
    "Unrecoverable video controller failure",
    "No video device selected",
    "BIOS corruption detected",
    "CPU voltage mismatch",
    "CPU speed mismatch failure",
];

/// Sensor-specific offsets (event/reading type 0x6F, table 42-3) for the
/// sensor types a lab host's SEL is mostly made of.
fn specific_offset(sensor_type: u8, offset: u8, data2: Option<u8>) -> Option<&'static str> {
    let names: &[&str] = match sensor_type {
        0x05 => &[
            "General Chassis intrusion",
            "Drive Bay intrusion",
            "I/O Card area intrusion",
            "Processor area intrusion",
            "System unplugged from LAN",
            "Unauthorized dock",
            "FAN area intrusion",
        ],
        0x07 => &[
            "IERR",
            "Thermal Trip",
            "FRB1/BIST failure",
            "FRB2/Hang in POST failure",
            "FRB3/Processor startup/init failure",
            "Configuration Error",
            "SM BIOS Uncorrectable CPU-complex Error",
            "Presence detected",
            "Disabled",
            "Terminator presence detected",
            "Throttled",
            "Uncorrectable machine check exception",
            "Correctable machine check error",
        ],
        0x08 => &[
            "Presence detected",
            "Failure detected",
            "Predictive failure",
            "Power Supply AC lost",
            "AC lost or out-of-range",
            "AC out-of-range, but present",
            "Config Error",
        ],
        0x09 => &[
            "Power off/down",
            "Power cycle",
            "240VA power down",
            "Interlock power down",
            "AC lost",
            "Soft-power control failure",
            "Failure detected",
            "Predictive failure",
        ],
        0x0C => &[
            "Correctable ECC",
            "Uncorrectable ECC",
            "Parity",
            "Memory Scrub Failed",
            "Memory Device Disabled",
            "Correctable ECC logging limit reached",
            "Presence Detected",
            "Configuration Error",
            "Spare",
            "Throttled",
            "Critical Overtemperature",
        ],
        0x0F => {
            // Event data 2 names the step when data 1 says it is there.
            return match (offset, data2) {
                (0x00, Some(d)) => Some(
                    FIRMWARE_ERROR
                        .get(usize::from(d))
                        .copied()
                        .unwrap_or("Unknown Error"),
                ),
                (0x01, Some(d)) => Some(
                    FIRMWARE_PROGRESS
                        .get(usize::from(d))
                        .copied()
                        .unwrap_or("Unknown Hang"),
                ),
                (0x02, Some(d)) => Some(
                    FIRMWARE_PROGRESS
                        .get(usize::from(d))
                        .copied()
                        .unwrap_or("Unknown Progress"),
                ),
                (0x00, None) => Some("System Firmware Error"),
                (0x01, None) => Some("System Firmware Hang"),
                (0x02, None) => Some("System Firmware Progress"),
                _ => None,
            };
        }
        0x10 => &[
            "Correctable memory error logging disabled",
            "Event logging disabled",
            "Log area reset/cleared",
            "All event logging disabled",
            "Log full",
            "Log almost full",
        ],
        0x11 => &[
            "BIOS Reset",
            "OS Reset",
            "OS Shut Down",
            "OS Power Down",
            "OS Power Cycle",
            "OS NMI/Diag Interrupt",
            "OS Expired",
            "OS pre-timeout Interrupt",
        ],
        0x12 => &[
            "System Reconfigured",
            "OEM System boot event",
            "Undetermined system hardware failure",
            "Entry added to auxiliary log",
            "PEF Action",
            "Timestamp Clock Sync",
        ],
        0x13 => &[
            "NMI/Diag Interrupt",
            "Bus Timeout",
            "I/O Channel check NMI",
            "Software NMI",
            "PCI PERR",
            "PCI SERR",
            "EISA failsafe timeout",
            "Bus Correctable error",
            "Bus Uncorrectable error",
            "Fatal NMI",
            "Bus Fatal Error",
            "Bus Degraded",
        ],
        0x14 => &[
            "Power Button pressed",
            "Sleep Button pressed",
            "Reset Button pressed",
            "FRU Latch",
            "FRU Service",
        ],
        0x1D => &[
            "Initiated by power up",
            "Initiated by hard reset",
            "Initiated by warm reset",
            "User requested PXE boot",
            "Automatic boot to diagnostic",
            "OS initiated hard reset",
            "OS initiated warm reset",
            "System Restart",
        ],
        0x1E => &[
            "No bootable media",
            "Non-bootable disk in drive",
            "PXE server not found",
            "Invalid boot sector",
            "Timeout waiting for selection",
        ],
        0x1F => &[
            "A: boot completed",
            "C: boot completed",
            "PXE boot completed",
            "Diagnostic boot completed",
            "CD-ROM boot completed",
            "ROM boot completed",
            "boot completed - device not specified",
            "Installation started",
            "Installation completed",
            "Installation aborted",
            "Installation failed",
        ],
        0x20 => &[
            "Error during system startup",
            "Run-time critical stop",
            "OS graceful stop",
            "OS graceful shutdown",
            "PEF initiated soft shutdown",
            "Agent not responding",
        ],
        0x22 => &[
            "S0/G0: working",
            "S1: sleeping with system hw & processor context maintained",
            "S2: sleeping, processor context lost",
            "S3: sleeping, processor & hw context lost, memory retained",
            "S4: non-volatile sleep/suspend-to-disk",
            "S5/G2: soft-off",
            "S4/S5: soft-off",
            "G3: mechanical off",
            "Sleeping in S1/S2/S3 state",
            "G1: sleeping",
            "S5: entered by override",
            "Legacy ON state",
            "Legacy OFF state",
        ],
        0x23 => &[
            "Timer expired",
            "Hard reset",
            "Power down",
            "Power cycle",
            "reserved",
            "reserved",
            "reserved",
            "reserved",
            "Timer interrupt",
        ],
        0x25 => &["Present", "Absent", "Disabled"],
        0x28 => &[
            "Sensor access degraded or unavailable",
            "Controller access degraded or unavailable",
            "Management controller off-line",
            "Management controller unavailable",
            "Sensor failure",
            "FRU failure",
        ],
        0x29 => &["Low", "Failed", "Presence Detected"],
        _ => &[],
    };
    names.get(usize::from(offset)).copied()
}

#[cfg(test)]
#[path = "sel_tests.rs"]
mod tests;
