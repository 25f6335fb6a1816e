//! Sensors: walk the SDR repository, read each sensor, convert with the
//! record's linearisation (ipmi-rs-core parses the records); and the DCMI
//! power reading where the BMC offers it.

use ipmi_rs_core::storage::sdr::record::{IdentifiableSensor, Record, RecordContents};
use serde::Serialize;

use super::error::{IpmiError, Result};
use super::message::netfn::{GROUP_EXT, SENSOR, STORAGE};
use super::rmcp::Bmc;

#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize)]
pub struct SensorReading {
    pub name: String,
    pub number: u8,
    /// Converted reading with its unit ("42.00 °C"); `None` when the BMC
    /// says the reading is unavailable or the sensor is discrete.
    pub reading: Option<String>,
    pub raw: Option<u8>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct PowerReading {
    pub current_watts: u16,
    pub minimum_watts: u16,
    pub maximum_watts: u16,
    pub average_watts: u16,
}

/// Bytes per Get SDR read: small enough for every BMC's buffer.
const SDR_CHUNK: u8 = 16;
const LAST_RECORD: u16 = 0xFFFF;

/// Every record in the SDR repository, raw (header included).
pub async fn sdr_records(bmc: &mut Bmc) -> Result<Vec<Vec<u8>>> {
    const GET: &str = "Get SDR";
    let reservation = bmc
        .call(STORAGE, 0x22, &[], "Reserve SDR Repository")
        .await?;
    let reservation = [
        *reservation.first().unwrap_or(&0),
        *reservation.get(1).unwrap_or(&0),
    ];
    let mut records = Vec::new();
    let mut id: u16 = 0;
    // A repository larger than this is a BMC bug; stop rather than loop.
    for _ in 0..1024 {
        let mut record = Vec::new();
        let mut next = LAST_RECORD;
        let mut length = 5usize; // the header, until it is read
        while record.len() < length {
            let want = (length - record.len()).min(SDR_CHUNK as usize) as u8;
            let [lo, hi] = id.to_le_bytes();
            let request = [
                reservation[0],
                reservation[1],
                lo,
                hi,
                record.len() as u8,
                want,
            ];
            let data = bmc.call(STORAGE, 0x23, &request, GET).await?;
            if data.len() < 3 {
                return Err(IpmiError::Protocol {
                    command: GET,
                    why: "response shorter than the next-record ID".into(),
                });
            }
            next = u16::from_le_bytes([data[0], data[1]]);
            record.extend_from_slice(&data[2..]);
            if record.len() >= 5 {
                length = 5 + record[4] as usize;
            }
        }
        record.truncate(length);
        records.push(record);
        if next == LAST_RECORD || next == id {
            break;
        }
        id = next;
    }
    Ok(records)
}

/// All full and compact sensors with their current readings.
pub async fn read_sensors(bmc: &mut Bmc) -> Result<Vec<SensorReading>> {
    let mut out = Vec::new();
    for raw in sdr_records(bmc).await? {
        let Ok(record) = Record::parse(&raw) else {
            continue; // an OEM or malformed record does not hide the others
        };
        let (name, number) = match &record.contents {
            RecordContents::FullSensor(full) => {
                (full.id_string().to_string(), record.sensor_number())
            }
            RecordContents::CompactSensor(compact) => {
                (compact.id_string().to_string(), record.sensor_number())
            }
            _ => continue,
        };
        let Some(number) = number.map(|n| n.get()) else {
            continue;
        };
        let data = bmc
            .call(SENSOR, 0x2D, &[number], "Get Sensor Reading")
            .await;
        // Byte 2 bit 5: reading unavailable; bit 6 clear: scanning disabled.
        let raw_value = match data {
            Ok(d) if d.len() >= 2 && d[1] & 0x20 == 0 => Some(d[0]),
            Ok(_) | Err(IpmiError::Completion { .. }) => None,
            Err(e) => return Err(e),
        };
        let reading = match (&record.contents, raw_value) {
            (RecordContents::FullSensor(full), Some(v)) => full.display_reading(v),
            _ => None,
        };
        out.push(SensorReading {
            name,
            number,
            reading,
            raw: raw_value,
        });
    }
    Ok(out)
}

/// DCMI Get Power Reading; `None` when the BMC does not offer DCMI power
/// management (it answers with an invalid-command completion code).
pub async fn dcmi_power(bmc: &mut Bmc) -> Result<Option<PowerReading>> {
    const GET: &str = "DCMI Get Power Reading";
    match bmc
        .call(GROUP_EXT, 0x02, &[0xDC, 0x01, 0x00, 0x00], GET)
        .await
    {
        Ok(d) if d.len() >= 9 && d[0] == 0xDC => {
            let word = |i: usize| u16::from_le_bytes([d[i], d[i + 1]]);
            Ok(Some(PowerReading {
                current_watts: word(1),
                minimum_watts: word(3),
                maximum_watts: word(5),
                average_watts: word(7),
            }))
        }
        Ok(d) => Err(IpmiError::Protocol {
            command: GET,
            why: format!("{} bytes without the DCMI group ID", d.len()),
        }),
        Err(IpmiError::Completion {
            code: 0xC1 | 0xCC | 0xD4 | 0xD6,
            ..
        }) => Ok(None),
        Err(e) => Err(e),
    }
}
