//! The BMC toolbox's results, whichever protocol fetched them: the event
//! log, the inventory, firmware versions, the identify light and BMC
//! resets. Serializable as they are, for `--json` and the service. Names
//! read like ipmitool's where they mean the same, so the two can be
//! compared line by line.

use serde::Serialize;

use crate::ipmi::fru::{FruArea, FruField, FruInfo};
use crate::ipmi::mc::DeviceId;
use crate::ipmi::sel::{SelBody, SelRecord, SelTime};

/// Assertion or deassertion, for events that say.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Direction {
    Asserted,
    Deasserted,
}

/// One event-log entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Event {
    /// IPMI: the SEL record ID in hex, as `ipmitool sel list` prints it
    /// ("1a"); Redfish: the LogEntry's Id.
    pub id: String,
    /// IPMI: the SEL record ID.
    pub record_id: Option<u16>,
    /// RFC 3339, UTC for IPMI; Redfish: as the BMC wrote it. `None` for a
    /// pre-init IPMI timestamp or an entry without one.
    pub time: Option<String>,
    /// IPMI: seconds since the BMC started, for timestamps taken before
    /// its clock was set (ipmitool's "Pre-Init").
    pub pre_init_seconds: Option<u32>,
    /// "Temperature", "Memory", "OEM (0xC0)"… (IPMI system events).
    pub sensor_type: Option<String>,
    pub sensor_number: Option<u8>,
    pub direction: Option<Direction>,
    /// Redfish: "OK", "Warning", "Critical".
    pub severity: Option<String>,
    /// What happened: ipmitool's description ("Lower Non-critical going
    /// low"), the Redfish message, or an OEM record's bytes in hex.
    pub message: String,
}

impl Event {
    pub fn from_sel(record: &SelRecord) -> Event {
        let (time, pre_init_seconds) = match record.time() {
            Some(SelTime::Utc(s)) => (Some(SelTime::Utc(s).label()), None),
            Some(SelTime::PreInit(s)) => (None, Some(s)),
            None => (None, None),
        };
        let (sensor_type, sensor_number, direction) = match &record.body {
            SelBody::System(e) => (
                Some(e.sensor_type_name()),
                Some(e.sensor_number),
                Some(if e.asserted {
                    Direction::Asserted
                } else {
                    Direction::Deasserted
                }),
            ),
            _ => (None, None, None),
        };
        Event {
            id: format!("{:x}", record.record_id),
            record_id: Some(record.record_id),
            time,
            pre_init_seconds,
            sensor_type,
            sensor_number,
            direction,
            severity: None,
            message: record.description(),
        }
    }
}

/// The FRU-style inventory: each area an ordered list of named fields
/// ("Board Mfg", "Product Serial"…; see [`crate::ipmi::fru`]).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize)]
pub struct Inventory {
    pub chassis: Vec<Field>,
    pub board: Vec<Field>,
    pub product: Vec<Field>,
    /// Checksum mismatches, truncated areas… (the fields still shown).
    pub problems: Vec<String>,
}

pub type Field = FruField;

impl Inventory {
    pub fn from_fru(info: FruInfo) -> Inventory {
        let fields = |a: Option<FruArea>| a.map(|a| a.fields).unwrap_or_default();
        Inventory {
            chassis: fields(info.chassis),
            board: fields(info.board),
            product: fields(info.product),
            problems: info.problems,
        }
    }

    /// The value of the first field called `name` in any area.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.chassis
            .iter()
            .chain(&self.board)
            .chain(&self.product)
            .find(|f| f.name == name)
            .map(|f| f.value.as_str())
    }
}

/// Firmware versions: the BMC's and the host's.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize)]
pub struct Firmware {
    /// IPMI: "2.13" (`ipmitool mc info`'s Firmware Revision); Redfish: the
    /// Manager's FirmwareVersion.
    pub bmc: Option<String>,
    /// IPMI: System Info parameter 1; Redfish: the System's BiosVersion.
    /// `None`: the BMC does not report it.
    pub host: Option<String>,
    /// IANA enterprise number (IPMI).
    pub manufacturer_id: Option<u32>,
    /// The enterprise's name for a few known numbers (IPMI), or the
    /// Manager's Manufacturer (Redfish).
    pub manufacturer: Option<String>,
    /// IPMI product ID.
    pub product_id: Option<u16>,
    /// IPMI: "2.0".
    pub ipmi_version: Option<String>,
    /// Redfish: the Manager's Model.
    pub model: Option<String>,
}

impl Firmware {
    pub fn from_device_id(d: &DeviceId, host: Option<String>) -> Firmware {
        Firmware {
            bmc: Some(d.firmware.clone()),
            host,
            manufacturer_id: Some(d.manufacturer_id),
            manufacturer: d.manufacturer.clone(),
            product_id: Some(d.product_id),
            ipmi_version: Some(d.ipmi_version.clone()),
            model: None,
        }
    }
}

/// What an identify request did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct IdentifySet {
    pub on: bool,
    /// How: "forced on", "on for 255 s (the BMC has no force-on)", "off",
    /// "LocationIndicatorActive", "IndicatorLED Lit"…
    pub how: String,
}

/// What a BMC reset request came to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BmcResetSent {
    /// The BMC acknowledged before it reset.
    pub answered: bool,
    /// "sent; the BMC did not answer before resetting", "GracefulRestart"…
    pub note: String,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_sel_record_reads_as_an_event_with_ipmitools_hex_id() {
        let mut raw = [0u8; 16];
        raw[0] = 0x1a;
        raw[2] = 0x02;
        raw[3..7].copy_from_slice(&1_704_189_600u32.to_le_bytes());
        raw[10] = 0x01;
        raw[11] = 0x30;
        raw[12] = 0x81; // threshold, deasserted
        raw[13] = 0x09;
        let e = Event::from_sel(&SelRecord::parse(&raw).unwrap());
        assert_eq!(
            serde_json::to_value(&e).unwrap(),
            json!({
                "id": "1a", "record_id": 26, "time": "2024-01-02T10:00:00Z",
                "pre_init_seconds": null, "sensor_type": "Temperature",
                "sensor_number": 48, "direction": "deasserted", "severity": null,
                "message": "Upper Critical going high"
            })
        );
    }

    #[test]
    fn inventory_json_keeps_field_order() {
        let inv = Inventory {
            board: vec![
                Field {
                    name: "Board Mfg".into(),
                    value: "ACME".into(),
                },
                Field {
                    name: "Board Serial".into(),
                    value: "S1".into(),
                },
            ],
            ..Inventory::default()
        };
        assert_eq!(
            serde_json::to_value(&inv).unwrap(),
            json!({
                "chassis": [], "product": [], "problems": [],
                "board": [{"name": "Board Mfg", "value": "ACME"}, {"name": "Board Serial", "value": "S1"}]
            })
        );
        assert_eq!(inv.get("Board Serial"), Some("S1"));
    }

    /// The engine and the service run these in spawned tasks.
    #[allow(dead_code)]
    fn futures_are_send(bmc: &mut crate::hardware::Bmc) {
        fn send<T: Send>(_: T) {}
        send(bmc.events());
        send(bmc.clear_events());
        send(bmc.inventory());
        send(bmc.firmware());
        send(bmc.identify(true));
        send(bmc.bmc_reset());
    }
}
