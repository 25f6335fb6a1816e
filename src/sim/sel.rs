//! The BMC's System Event Log: a bounded store of 16-byte records (IPMI 2.0
//! section 31 and 32), its reservation rules, and the events the simulator
//! logs as the chassis and host go through them. I/O-free: callers pass the
//! time (unix seconds). The store is shared ([`SelHandle`]) by the IPMI
//! controller, the virtual host (boot milestones) and the Redfish front end
//! (its EventLog), so every view shows the same records.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{SystemTime, UNIX_EPOCH};

use super::chassis::ChassisState;

/// Records kept; past this, new ones are dropped and the overflow flag set.
pub const CAPACITY: usize = 512;
pub const RECORD_LEN: usize = 16;
/// Get SEL Entry's "last record" ID (and "no next record").
pub const LAST: u16 = 0xFFFF;
/// IPMI 2.0's SEL version in Get SEL Info (51h: 1.5/2.0).
const SEL_VERSION: u8 = 0x51;
/// Generator ID: the BMC itself (slave address 20h, LUN 0, channel 0).
const GENERATOR_BMC: [u8; 2] = [0x20, 0x00];
/// Event message revision for IPMI 2.0.
const EVM_REV: u8 = 0x04;
/// Event/reading type code: sensor-specific (6Fh), assertion.
const SENSOR_SPECIFIC: u8 = 0x6F;

/// Something the simulator logs. Sensor types and offsets are IPMI 2.0
/// table 42-3's, so ipmitool decodes them (`sel list` text in comments).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Event {
    /// "System ACPI Power State | S0/G0: working"
    PowerOn,
    /// "System ACPI Power State | S5/G2: soft-off"
    PowerOff,
    /// "System Boot Initiated | Initiated by power up"
    BootOnPowerUp,
    /// "System Boot Initiated | Initiated by hard reset"
    BootOnHardReset,
    /// "System Firmware Progress | ..." with progress code 13h, "Starting
    /// operating system boot process": petitboot is up.
    FirmwareProgress,
    /// "OS Boot | C: boot completed": the host's login prompt.
    OsBoot,
    /// "Event Logging Disabled | Log area reset/cleared"
    LogCleared,
    /// "System Event | Timestamp Clock Sync": the BMC (re)started.
    BmcStarted,
}

impl Event {
    /// Sensor type, sensor number, event data 1–3.
    fn fields(self) -> (u8, u8, [u8; 3]) {
        // Event data 1: A0h = OEM data in bytes 2 and 3 (none: FFh),
        // C0h = sensor-specific extension code in byte 2.
        let plain = |offset: u8| [0xA0 | offset, 0xFF, 0xFF];
        match self {
            Event::PowerOn => (0x22, 0x30, plain(0x00)),
            Event::PowerOff => (0x22, 0x30, plain(0x05)),
            Event::BootOnPowerUp => (0x1D, 0x31, plain(0x00)),
            Event::BootOnHardReset => (0x1D, 0x31, plain(0x01)),
            Event::FirmwareProgress => (0x0F, 0x32, [0xC2, 0x13, 0xFF]),
            Event::OsBoot => (0x1F, 0x33, plain(0x01)),
            Event::LogCleared => (0x10, 0x34, plain(0x02)),
            Event::BmcStarted => (0x12, 0x35, plain(0x05)),
        }
    }

    /// The bmcweb (OpenBMC registry) message for this event, if its
    /// EventLog has one: the Redfish side shows only these.
    pub fn redfish(self) -> Option<(&'static str, &'static str)> {
        match self {
            Event::PowerOn => Some(("OpenBMC.0.1.DCPowerOn", "Host system DC power is on")),
            Event::PowerOff => Some(("OpenBMC.0.1.DCPowerOff", "Host system DC power is off")),
            Event::BootOnHardReset => Some(("OpenBMC.0.1.ResetButtonPressed", "Host system reset")),
            _ => None,
        }
    }

    /// The event a 16-byte record holds, if it is one the simulator logs.
    pub fn of_record(record: &[u8; RECORD_LEN]) -> Option<Event> {
        ALL.into_iter().find(|e| {
            let (kind, number, data) = e.fields();
            record[10..13] == [kind, number, SENSOR_SPECIFIC] && record[13..16] == data
        })
    }
}

const ALL: [Event; 8] = [
    Event::PowerOn,
    Event::PowerOff,
    Event::BootOnPowerUp,
    Event::BootOnHardReset,
    Event::FirmwareProgress,
    Event::OsBoot,
    Event::LogCleared,
    Event::BmcStarted,
];

/// The events between two chassis states, in the order they happened.
pub fn chassis_events(before: &ChassisState, after: &ChassisState) -> Vec<Event> {
    let mut out = Vec::new();
    let power_ons = after.power_on_count.saturating_sub(before.power_on_count);
    // A power cycle of a running host: off, then on again.
    if before.power_on && (!after.power_on || power_ons > 0) {
        out.push(Event::PowerOff);
    }
    if power_ons > 0 && after.power_on {
        out.push(Event::PowerOn);
        out.push(Event::BootOnPowerUp);
    }
    if after.resets > before.resets && after.power_on {
        out.push(Event::BootOnHardReset);
    }
    out
}

/// The system clock in unix seconds, as SEL timestamps are.
pub fn unix_now() -> u32 {
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    u32::try_from(secs).unwrap_or(u32::MAX)
}

/// A record: its ID, the time it was added, its 16 bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    pub id: u16,
    pub timestamp: u32,
    pub bytes: [u8; RECORD_LEN],
}

impl Record {
    pub fn event(&self) -> Option<Event> {
        Event::of_record(&self.bytes)
    }
}

/// Why a SEL command failed; the command layer maps these to completion
/// codes (C5h, CBh, C9h, CCh).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SelError {
    Reservation,
    NotPresent,
    OutOfRange,
    InvalidData,
}

#[derive(Debug)]
pub struct Sel {
    records: VecDeque<Record>,
    next_id: u16,
    /// The reservation in force; 0 = none.
    reservation: u16,
    last_reservation: u16,
    overflow: bool,
    last_add: u32,
    last_erase: u32,
}

impl Default for Sel {
    fn default() -> Self {
        Sel {
            records: VecDeque::new(),
            next_id: 1,
            reservation: 0,
            last_reservation: 0,
            overflow: false,
            // FFFFFFFFh: "never", as the spec says for both timestamps.
            last_add: u32::MAX,
            last_erase: u32::MAX,
        }
    }
}

impl Sel {
    /// The records, oldest first.
    pub fn records(&self) -> impl Iterator<Item = &Record> {
        self.records.iter()
    }

    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.records.len()
    }

    #[cfg(test)]
    pub fn is_empty(&self) -> bool {
        self.records.is_empty()
    }

    /// Logs `event` at `now`; `None` when full (the overflow flag is set).
    pub fn log(&mut self, event: Event, now: u32) -> Option<u16> {
        let (kind, number, data) = event.fields();
        let mut bytes = [0u8; RECORD_LEN];
        bytes[2] = 0x02; // system event record
        bytes[7..9].copy_from_slice(&GENERATOR_BMC);
        bytes[9] = EVM_REV;
        bytes[10..13].copy_from_slice(&[kind, number, SENSOR_SPECIFIC]);
        bytes[13..16].copy_from_slice(&data);
        self.add(bytes, now)
    }

    /// Adds a record as Add SEL Entry does: the BMC assigns its ID and, for
    /// timestamped types (below E0h), the time. `None` when full.
    pub fn add(&mut self, mut bytes: [u8; RECORD_LEN], now: u32) -> Option<u16> {
        if self.records.len() >= CAPACITY {
            self.overflow = true;
            return None;
        }
        let id = self.next_id;
        // IDs 0000h and FFFFh are reserved: wrap from FFFEh to 1.
        self.next_id = if id >= 0xFFFE { 1 } else { id + 1 };
        bytes[..2].copy_from_slice(&id.to_le_bytes());
        if bytes[2] < 0xE0 {
            bytes[3..7].copy_from_slice(&now.to_le_bytes());
        }
        self.records.push_back(Record {
            id,
            timestamp: now,
            bytes,
        });
        self.last_add = now;
        Some(id)
    }

    /// Get SEL Info's reply.
    pub fn info(&self) -> Vec<u8> {
        let count = self.records.len() as u16;
        let free = ((CAPACITY - self.records.len()) * RECORD_LEN).min(0xFFFE) as u16;
        let mut out = vec![SEL_VERSION];
        out.extend_from_slice(&count.to_le_bytes());
        out.extend_from_slice(&free.to_le_bytes());
        out.extend_from_slice(&self.last_add.to_le_bytes());
        out.extend_from_slice(&self.last_erase.to_le_bytes());
        // Overflow (bit 7), reserve supported (bit 1), allocation info
        // supported (bit 0); no delete, no partial add.
        out.push(u8::from(self.overflow) << 7 | 0x03);
        out
    }

    /// Get SEL Allocation Info: units of one record each.
    pub fn allocation(&self) -> Vec<u8> {
        let units = CAPACITY as u16;
        let free = (CAPACITY - self.records.len()) as u16;
        let mut out = Vec::new();
        out.extend_from_slice(&units.to_le_bytes());
        out.extend_from_slice(&(RECORD_LEN as u16).to_le_bytes());
        out.extend_from_slice(&free.to_le_bytes());
        out.extend_from_slice(&free.to_le_bytes());
        out.push(RECORD_LEN as u8);
        out
    }

    /// Reserve SEL: a new ID, which cancels the previous one.
    pub fn reserve(&mut self) -> u16 {
        self.last_reservation = self.last_reservation.wrapping_add(1).max(1);
        self.reservation = self.last_reservation;
        self.reservation
    }

    /// Cancels the reservation in force (a BMC reset does).
    pub fn cancel_reservation(&mut self) {
        self.reservation = 0;
    }

    fn check(&self, reservation: u16) -> Result<(), SelError> {
        if reservation == 0 || reservation != self.reservation {
            return Err(SelError::Reservation);
        }
        Ok(())
    }

    /// Get SEL Entry: `offset`/`len` of record `id` (0000h first, FFFFh
    /// last; `len` FFh = the whole record) and the next record's ID. The
    /// reservation matters only for partial reads, as the spec says.
    pub fn get(
        &self,
        reservation: u16,
        id: u16,
        offset: u8,
        len: u8,
    ) -> Result<(u16, &[u8]), SelError> {
        if offset != 0 {
            self.check(reservation)?;
        }
        let index = match id {
            0 if !self.records.is_empty() => 0,
            LAST if !self.records.is_empty() => self.records.len() - 1,
            _ => self
                .records
                .iter()
                .position(|r| r.id == id)
                .ok_or(SelError::NotPresent)?,
        };
        let record = &self.records[index];
        let next = self.records.get(index + 1).map_or(LAST, |r| r.id);
        let start = usize::from(offset);
        if start >= RECORD_LEN {
            return Err(SelError::OutOfRange);
        }
        let end = if len == 0xFF {
            RECORD_LEN
        } else {
            (start + usize::from(len)).min(RECORD_LEN)
        };
        Ok((next, &record.bytes[start..end]))
    }

    /// Clear SEL: `action` AAh erases, 00h asks how it went; both answer
    /// "erasure completed" (01h). Needs the reservation in force, which
    /// the erase cancels.
    pub fn clear(
        &mut self,
        reservation: u16,
        clr: [u8; 3],
        action: u8,
        now: u32,
    ) -> Result<u8, SelError> {
        self.check(reservation)?;
        if clr != *b"CLR" {
            return Err(SelError::InvalidData);
        }
        match action {
            0xAA => {
                self.records.clear();
                self.overflow = false;
                self.last_erase = now;
                self.next_id = 1;
                self.reservation = 0;
            }
            0x00 => {}
            _ => return Err(SelError::InvalidData),
        }
        Ok(0x01)
    }
}

/// The SEL as its users share it: the controller, the host, Redfish.
#[derive(Debug, Clone, Default)]
pub struct SelHandle(Arc<Mutex<Sel>>);

impl SelHandle {
    /// A fresh SEL with the entries a BMC's boot leaves: the log reset by
    /// its last clear, then the BMC's clock sync.
    pub fn seeded(now: u32) -> SelHandle {
        let handle = SelHandle::default();
        {
            let mut sel = handle.lock();
            sel.log(Event::LogCleared, now);
            sel.log(Event::BmcStarted, now);
        }
        handle
    }

    /// Never held across an await; a poisoned lock is still usable.
    pub fn lock(&self) -> MutexGuard<'_, Sel> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Logs `event` now.
    pub fn log(&self, event: Event) {
        self.lock().log(event, unix_now());
    }

    /// A copy of the records, oldest first.
    pub fn records(&self) -> Vec<Record> {
        self.lock().records().cloned().collect()
    }
}

#[cfg(test)]
#[path = "sel_tests.rs"]
mod tests;
