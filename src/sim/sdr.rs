//! A small SDR repository: a few threshold sensors as Full Sensor Records
//! (IPMI 2.0 §43.1), their readings (which follow the power state) and the
//! repository commands' data: info, reservation, partial record reads.

/// Sensor units (IPMI 2.0 table 43-15).
const UNIT_DEGREES_C: u8 = 1;
const UNIT_WATTS: u8 = 6;
const UNIT_RPM: u8 = 18;

/// Threshold indexes, in Get Sensor Thresholds order.
const LNC: usize = 0;
const LC: usize = 1;
const UNC: usize = 3;
const UC: usize = 4;
const UNR: usize = 5;

/// One analog threshold sensor. Value = (M × raw + B × 10^b_exp) × 10^r_exp.
pub struct Sensor {
    pub number: u8,
    pub name: &'static str,
    sensor_type: u8,
    entity_id: u8,
    unit: u8,
    m: i16,
    b: i16,
    b_exp: i8,
    r_exp: i8,
    raw_on: u8,
    raw_off: u8,
    /// Raw thresholds: LNC, LC, LNR, UNC, UC, UNR.
    thresholds: [Option<u8>; 6],
}

pub const SENSORS: [Sensor; 4] = [
    Sensor {
        number: 0x01,
        name: "CPU Temp",
        sensor_type: 0x01,
        entity_id: 0x03, // processor
        unit: UNIT_DEGREES_C,
        m: 1,
        b: 0,
        b_exp: 0,
        r_exp: 0,
        raw_on: 52,
        raw_off: 24,
        thresholds: [None, None, None, Some(85), Some(95), Some(105)],
    },
    Sensor {
        // Half-degree resolution: M = 5, result exponent -1.
        number: 0x02,
        name: "Inlet Temp",
        sensor_type: 0x01,
        entity_id: 0x37, // air inlet
        unit: UNIT_DEGREES_C,
        m: 5,
        b: 0,
        b_exp: 0,
        r_exp: -1,
        raw_on: 50,
        raw_off: 46,
        thresholds: [Some(20), Some(10), None, Some(80), Some(90), Some(100)],
    },
    Sensor {
        number: 0x03,
        name: "Fan 1",
        sensor_type: 0x04,
        entity_id: 0x1D, // fan
        unit: UNIT_RPM,
        m: 50,
        b: 0,
        b_exp: 0,
        r_exp: 0,
        raw_on: 96,
        raw_off: 0,
        thresholds: [None, None, None, Some(220), Some(240), None],
    },
    Sensor {
        // 2 W steps with a 10 W offset: B = 1, B exponent 1.
        number: 0x04,
        name: "Total Power",
        sensor_type: 0x0B, // other units-based
        entity_id: 0x15,   // power unit
        unit: UNIT_WATTS,
        m: 2,
        b: 1,
        b_exp: 1,
        r_exp: 0,
        raw_on: 165,
        raw_off: 1,
        thresholds: [None, None, None, Some(220), Some(240), None],
    },
];

/// 4-bit two's complement, as the exponents are stored.
fn nibble(v: i8) -> u8 {
    (v as u8) & 0x0F
}

impl Sensor {
    /// The converted value of a raw reading.
    pub fn value(&self, raw: u8) -> f64 {
        let b = f64::from(self.b) * 10f64.powi(self.b_exp.into());
        (f64::from(self.m) * f64::from(raw) + b) * 10f64.powi(self.r_exp.into())
    }

    /// The raw reading; `wobble` (0, 1, 2…) makes a running host look alive.
    pub fn raw(&self, power_on: bool, wobble: u8) -> u8 {
        if power_on {
            self.raw_on.saturating_add(wobble % 3)
        } else {
            self.raw_off
        }
    }

    fn threshold_mask(&self) -> u8 {
        (0..6)
            .filter(|&i| self.thresholds[i].is_some())
            .fold(0, |m, i| m | 1 << i)
    }

    /// The record body after its 5-byte header (IPMI 2.0 table 43-1).
    fn body(&self) -> Vec<u8> {
        let mask = self.threshold_mask();
        let lower = u16::from(mask & 0x07) << 12; // LNR/LC/LNC comparison returned
        let upper = u16::from(mask >> 3) << 12; // UNR/UC/UNC comparison returned
        let [m_ls, m_ms] = (self.m as u16).to_le_bytes();
        let [b_ls, b_ms] = (self.b as u16).to_le_bytes();
        let t = |i: usize| self.thresholds[i].unwrap_or(0);
        let mut out = vec![
            0x20, // owner: the BMC
            0x00, // owner LUN 0, channel 0
            self.number,
            self.entity_id,
            0x01, // entity instance 1, system-relative
            0x03, // initialisation: events and scanning enabled
            0x47, // capabilities: auto re-arm, thresholds readable, no events
            self.sensor_type,
            0x01, // event/reading type: threshold
        ];
        out.extend_from_slice(&lower.to_le_bytes());
        out.extend_from_slice(&upper.to_le_bytes());
        out.extend_from_slice(&[mask, 0x00]); // readable, settable thresholds
        out.extend_from_slice(&[0x00, self.unit, 0x00, 0x00]); // unsigned, unit, no modifier, linear
        out.extend_from_slice(&[m_ls, (m_ms & 0x03) << 6, b_ls, (b_ms & 0x03) << 6, 0x00]);
        out.push(nibble(self.r_exp) << 4 | nibble(self.b_exp));
        out.extend_from_slice(&[0x00, 0, 0, 0, 0xFF, 0x00]); // no nominal/normal; max, min
        out.extend_from_slice(&[t(UNR), t(UC), t(UNC), t(2), t(LC), t(LNC)]);
        out.extend_from_slice(&[0, 0, 0, 0, 0]); // hysteresis, reserved, OEM
        out.push(0xC0 | self.name.len() as u8); // 8-bit ASCII id string
        out.extend_from_slice(self.name.as_bytes());
        out
    }

    /// The whole record with its header.
    pub fn record(&self, record_id: u16) -> Vec<u8> {
        let body = self.body();
        let mut out = record_id.to_le_bytes().to_vec();
        out.extend_from_slice(&[0x51, 0x01, body.len() as u8]);
        out.extend_from_slice(&body);
        out
    }

    /// Get Sensor Reading data: reading, flags (scanning on), threshold status.
    pub fn reading(&self, raw: u8) -> Vec<u8> {
        let t = &self.thresholds;
        let below = |i: usize| t[i].is_some_and(|v| raw <= v);
        let above = |i: usize| t[i].is_some_and(|v| raw >= v);
        let status = [
            below(LNC),
            below(LC),
            below(2),
            above(UNC),
            above(UC),
            above(UNR),
        ]
        .iter()
        .enumerate()
        .fold(0u8, |s, (i, &hit)| s | u8::from(hit) << i);
        vec![raw, 0xC0, status]
    }

    /// Get Sensor Thresholds data: readable mask, then LNC, LC, LNR, UNC, UC, UNR.
    pub fn thresholds(&self) -> Vec<u8> {
        let mut out = vec![self.threshold_mask()];
        out.extend(self.thresholds.iter().map(|t| t.unwrap_or(0)));
        out
    }
}

pub fn sensor(number: u8) -> Option<&'static Sensor> {
    SENSORS.iter().find(|s| s.number == number)
}

/// Why a Get SDR failed; mapped to completion codes by the command layer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SdrError {
    /// 0xC5: a partial read with a stale reservation.
    Reservation,
    /// 0xCB: no such record.
    NotPresent,
    /// 0xC9: offset beyond the record.
    Offset,
}

/// The repository: records numbered 1.. and the current reservation.
pub struct Repository {
    records: Vec<Vec<u8>>,
    reservation: u16,
}

impl Default for Repository {
    fn default() -> Self {
        Repository {
            records: (1..).zip(&SENSORS).map(|(id, s)| s.record(id)).collect(),
            reservation: 0,
        }
    }
}

impl Repository {
    /// Get SDR Repository Info data.
    pub fn info(&self) -> Vec<u8> {
        let mut out = vec![0x51];
        out.extend_from_slice(&(self.records.len() as u16).to_le_bytes());
        out.extend_from_slice(&0u16.to_le_bytes()); // free space: none
        out.extend_from_slice(&[0; 8]); // add and erase timestamps
        out.push(0x22); // non-modal update; Reserve SDR Repository supported
        out
    }

    /// Reserve SDR Repository: a new reservation cancels the previous one.
    pub fn reserve(&mut self) -> u16 {
        self.reservation = self.reservation.wrapping_add(1).max(1);
        self.reservation
    }

    /// Get SDR: (next record ID, requested bytes). Record ID 0 is the first
    /// record; the last one's next ID is 0xFFFF. `len` 0xFF reads to the end.
    pub fn get(
        &self,
        reservation: u16,
        record_id: u16,
        offset: u8,
        len: u8,
    ) -> Result<(u16, &[u8]), SdrError> {
        if offset != 0 && reservation != self.reservation {
            return Err(SdrError::Reservation);
        }
        let index = usize::from(record_id.max(1)) - 1;
        let record = self.records.get(index).ok_or(SdrError::NotPresent)?;
        let start = usize::from(offset);
        if start > record.len() {
            return Err(SdrError::Offset);
        }
        let end = (start + usize::from(len)).min(record.len());
        let next = if index + 1 < self.records.len() {
            index as u16 + 2
        } else {
            0xFFFF
        };
        Ok((next, &record[start..end]))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ipmi_rs_core::storage::sdr::record::{IdentifiableSensor, Record, WithSensorRecordCommon};

    #[test]
    fn records_parse_with_ipmi_rs_core_and_convert_like_we_do() {
        let repo = Repository::default();
        let mut id = 0;
        let mut names = Vec::new();
        while id != 0xFFFF {
            let (next, header) = repo.get(0, id, 0, 5).unwrap();
            let header = header.to_vec();
            let reservation = repo.reservation;
            let (_, body) = repo.get(reservation, id, 5, 0xFF).unwrap();
            let record = Record::parse(&[header, body.to_vec()].concat()).unwrap();
            let full = record.full_sensor().expect("full sensor record");
            let sensor = sensor(full.sensor_number().get()).unwrap();
            names.push(full.id_string().to_string());
            let raw = sensor.raw(true, 0);
            let shown = full.display_reading(raw).unwrap();
            let value = sensor.value(raw);
            assert!(
                shown.starts_with(&format!("{value:.2} ")),
                "{shown} vs {value}"
            );
            id = next;
        }
        assert_eq!(names, ["CPU Temp", "Inlet Temp", "Fan 1", "Total Power"]);
    }

    #[test]
    fn readings_follow_power_and_thresholds() {
        let cpu = sensor(1).unwrap();
        assert_eq!(cpu.value(cpu.raw(true, 0)), 52.0);
        assert!(cpu.value(cpu.raw(false, 0)) < 30.0);
        assert_eq!(sensor(2).unwrap().value(50), 25.0);
        assert_eq!(sensor(3).unwrap().value(96), 4800.0);
        let power = sensor(4).unwrap();
        assert_eq!(power.value(165), 340.0);
        assert_eq!(power.value(power.raw(false, 0)), 12.0);
        assert_eq!(cpu.reading(52), [52, 0xC0, 0x00]);
        assert_eq!(cpu.reading(96), [96, 0xC0, 0x18], "at/above UNC and UC");
        assert_eq!(cpu.thresholds(), [0x38, 0, 0, 0, 85, 95, 105]);
    }

    #[test]
    fn partial_reads_need_the_current_reservation() {
        let mut repo = Repository::default();
        let r = repo.reserve();
        assert!(repo.get(r, 1, 5, 4).is_ok());
        repo.reserve();
        assert_eq!(repo.get(r, 1, 5, 4), Err(SdrError::Reservation));
        assert_eq!(repo.get(0, 9, 0, 5), Err(SdrError::NotPresent));
        assert_eq!(repo.info()[1..3], [4, 0]);
    }
}
