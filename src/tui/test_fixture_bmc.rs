//! A selected node's BMC events and FRU inventory, as the detail pane's
//! tests feed them to the cache (see `tui::bmc_info`).

use super::NOW;

/// A POWER9 node's BMC event log (newest last) and FRU inventory, as the
/// toolbox parses an OpenBMC/ipmi_sim answer.
pub fn bmc_sample() -> crate::tui::bmc_info::NodeInfo {
    use crate::tui::bmc_info::{Fru, FruField, NodeInfo, SelLine, Slot};
    let event = |id: &str, time: Option<&str>, sensor: Option<&str>, message: &str, dir| SelLine {
        id: id.into(),
        time: time.map(Into::into),
        pre_init_seconds: None,
        sensor_type: sensor.map(Into::into),
        direction: dir,
        severity: None,
        message: message.into(),
    };
    let on = Some("asserted".to_string());
    let off = Some("deasserted".to_string());
    let mut events = vec![
        SelLine {
            pre_init_seconds: Some(42),
            ..event(
                "1",
                None,
                Some("System Event"),
                "Timestamp Clock Sync",
                on.clone(),
            )
        },
        event(
            "2",
            Some("2025-11-24T15:41:07Z"),
            Some("Temperature"),
            "Upper Critical going high",
            on.clone(),
        ),
        event(
            "3",
            Some("2025-11-24T15:43:30Z"),
            Some("Temperature"),
            "Upper Critical going high",
            off,
        ),
        event(
            "4",
            Some("2025-11-24T15:52:11Z"),
            Some("Power Supply"),
            "Power Supply AC lost",
            on,
        ),
        event(
            "5",
            Some("2025-11-24T15:58:00Z"),
            None,
            "OEM record c1: 0a0b0c0d0e0f",
            None,
        ),
    ];
    events[3].severity = Some("Warning".into());
    let f = |name: &str, value: &str| FruField {
        name: name.into(),
        value: value.into(),
    };
    let fru = Fru {
        chassis: vec![
            f("Chassis Type", "Rack Mount Chassis"),
            f("Chassis Serial", "CH18AS600179"),
        ],
        board: vec![
            f("Board Mfg Date", "Mon Jan  8 10:00:00 2018"),
            f("Board Mfg", "Supermicro"),
            f("Board Product", "P9DSU-C"),
            f("Board Serial", "VM18AS600179"),
            f("Board Part Number", "P9DSU-C-P001"),
        ],
        product: vec![
            f("Product Manufacturer", "IBM"),
            f("Product Name", "9006-22P Boston"),
            f("Product Part Number", "9006-22P"),
            f("Product Serial", "782F2CA"),
        ],
        problems: Vec::new(),
    };
    NodeInfo {
        events: Slot {
            value: Some(Ok(events)),
            at: NOW - 12_000,
            loading: false,
            again: false,
        },
        inventory: Slot {
            value: Some(Ok(fru)),
            at: NOW - 12_000,
            loading: false,
            again: false,
        },
    }
}

/// A fetch that failed at NOW with `why`.
pub fn failed_slot<T>(why: &str) -> crate::tui::bmc_info::Slot<T> {
    crate::tui::bmc_info::Slot {
        value: Some(Err(why.to_string())),
        at: NOW,
        loading: false,
        again: false,
    }
}
