//! The BMC's host as Redfish sees it, read and driven through the same
//! IPMI controller the LAN side uses (its in-band path: Chassis Control,
//! Get Chassis Status, Get/Set System Boot Options), as bmcweb and
//! phosphor-host-ipmid share phosphor's D-Bus settings on a real OpenBMC.

use std::time::Instant;

use super::super::sdr::SENSORS;
use super::super::server::{Shared, lock};
use crate::ipmi::message::{Request, netfn};

/// Completion code of a chassis action that makes no sense now (reset of
/// a host that is off).
const NOT_IN_PRESENT_STATE: u8 = 0xD5;
const BOOT_FLAGS: u8 = 5;
const FLAG_VALID: u8 = 0x80;
const FLAG_PERSISTENT: u8 = 0x40;
const FLAG_EFI: u8 = 0x20;

/// Runs one IPMI command on the BMC's controller; its data, or the
/// completion code it failed with.
fn ipmi(state: &Shared, netfn: u8, cmd: u8, data: &[u8]) -> Result<Vec<u8>, u8> {
    let response = lock(state).inband(&Request::new(netfn, cmd, 0, data), Instant::now());
    match response.completion {
        0 => Ok(response.data),
        code => Err(code),
    }
}

/// Whether the host is powered on (a pending soft off counts as on).
pub fn power_on(state: &Shared) -> bool {
    ipmi(state, netfn::CHASSIS, 0x01, &[]).is_ok_and(|d| d.first().is_some_and(|b| b & 1 == 1))
}

/// The system GUID, as a UUID string (same bytes as Get System GUID).
pub fn uuid(state: &Shared) -> String {
    let guid = ipmi(state, netfn::APP, 0x37, &[]).unwrap_or_default();
    let hex: String = guid.iter().map(|b| format!("{b:02x}")).collect();
    if hex.len() != 32 {
        return "00000000-0000-0000-0000-000000000000".into();
    }
    format!(
        "{}-{}-{}-{}-{}",
        &hex[..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..]
    )
}

/// bmcweb's ComputerSystem.Reset types (its ResetActionInfo defaults).
pub const RESET_TYPES: [&str; 8] = [
    "On",
    "ForceOn",
    "ForceOff",
    "GracefulShutdown",
    "GracefulRestart",
    "ForceRestart",
    "PowerCycle",
    "Nmi",
];

#[derive(Debug, PartialEq, Eq)]
pub enum ResetError {
    /// Not one of [`RESET_TYPES`].
    Unknown,
    /// A restart asked of a host that is off.
    HostOff,
}

/// Performs a Reset action as IPMI Chassis Control would.
pub fn reset(state: &Shared, reset_type: &str) -> Result<(), ResetError> {
    let control = match reset_type {
        "On" | "ForceOn" => 1,
        "ForceOff" => 0,
        "GracefulShutdown" => 5,
        "GracefulRestart" | "ForceRestart" => 3,
        "PowerCycle" => 2,
        "Nmi" => 4,
        _ => return Err(ResetError::Unknown),
    };
    match ipmi(state, netfn::CHASSIS, 0x02, &[control]) {
        Err(NOT_IN_PRESENT_STATE) => Err(ResetError::HostOff),
        // The controller accepts every other control byte.
        _ => Ok(()),
    }
}

/// Whether the chassis identify light is on (Get Chassis Status' misc
/// byte, bits 5:4).
pub fn identify_on(state: &Shared) -> bool {
    ipmi(state, netfn::CHASSIS, 0x01, &[]).is_ok_and(|d| d.get(2).is_some_and(|b| b & 0x30 != 0))
}

/// Turns the identify light on until turned off, or off (Chassis
/// Identify with "force" or interval 0), as bmcweb's
/// LocationIndicatorActive does.
pub fn set_identify(state: &Shared, on: bool) {
    // Chassis Identify with two data bytes is always accepted.
    let _ = ipmi(state, netfn::CHASSIS, 0x04, &[0, u8::from(on)]);
}

/// Reboots the BMC (Manager.Reset): the same as an IPMI cold reset.
pub fn reset_bmc(state: &Shared) {
    lock(state).reset_bmc(Instant::now());
}

/// Whether the BMC is rebooting now, and how many resets it went through.
pub fn bmc_status(state: &Shared) -> (bool, u64) {
    let mut bmc = lock(state);
    (bmc.is_down(Instant::now()), bmc.bmc_resets())
}

/// When the chassis next has a timed transition due (a soft off).
pub fn next_deadline(state: &Shared) -> Option<Instant> {
    lock(state).next_deadline()
}

/// Applies due timed transitions (the LAN task does this for its own
/// requests; a soft off asked over Redfish needs its own wake-up).
pub fn tick(state: &Shared) {
    lock(state).tick(Instant::now());
}

/// The Redfish boot targets bmcweb offers, with their IPMI device
/// selectors (boot flags byte 2, bits 5:2).
pub const BOOT_TARGETS: [(&str, u8); 7] = [
    ("None", 0x0),
    ("Pxe", 0x1),
    ("Hdd", 0x2),
    ("Cd", 0x5),
    ("Diags", 0x3),
    ("BiosSetup", 0x6),
    ("Usb", 0xF),
];

pub const OVERRIDE_ENABLED: [&str; 3] = ["Disabled", "Once", "Continuous"];
pub const OVERRIDE_MODES: [&str; 2] = ["Legacy", "UEFI"];

/// Boot source override, as Redfish names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BootOverride {
    pub enabled: &'static str,
    pub target: &'static str,
    pub mode: &'static str,
}

/// The override in the boot flags (parameter 5).
pub fn boot_override(state: &Shared) -> BootOverride {
    let flags = ipmi(state, netfn::CHASSIS, 0x09, &[BOOT_FLAGS, 0, 0])
        .ok()
        .and_then(|d| d.get(2..4).map(|f| [f[0], f[1]]))
        .unwrap_or([0, 0]);
    let selector = (flags[1] >> 2) & 0x0F;
    let target = BOOT_TARGETS
        .iter()
        .find(|(_, s)| *s == selector)
        .map_or("None", |(name, _)| name);
    // As bmcweb: no target means no override, whatever the flags say.
    let enabled = if flags[0] & FLAG_VALID == 0 || target == "None" {
        "Disabled"
    } else if flags[0] & FLAG_PERSISTENT != 0 {
        "Continuous"
    } else {
        "Once"
    };
    let mode = if flags[0] & FLAG_EFI != 0 {
        "UEFI"
    } else {
        "Legacy"
    };
    BootOverride {
        enabled,
        target,
        mode,
    }
}

/// Writes the override: each field given replaces the current one.
/// Values must already be checked against the lists above.
pub fn set_boot_override(
    state: &Shared,
    enabled: Option<&str>,
    target: Option<&str>,
    mode: Option<&str>,
) {
    let current = ipmi(state, netfn::CHASSIS, 0x09, &[BOOT_FLAGS, 0, 0])
        .ok()
        .and_then(|d| d.get(2..7).map(<[u8]>::to_vec))
        .unwrap_or_else(|| vec![0; 5]);
    let mut flags = [current[0], current[1], current[2], current[3], current[4]];
    match enabled {
        Some("Disabled") => flags[0] &= !(FLAG_VALID | FLAG_PERSISTENT),
        Some("Once") => flags[0] = (flags[0] | FLAG_VALID) & !FLAG_PERSISTENT,
        Some("Continuous") => flags[0] |= FLAG_VALID | FLAG_PERSISTENT,
        _ => {}
    }
    if let Some(selector) = target.and_then(|t| BOOT_TARGETS.iter().find(|(n, _)| *n == t)) {
        flags[1] = (flags[1] & !0x3C) | (selector.1 << 2);
    }
    match mode {
        Some("UEFI") => flags[0] |= FLAG_EFI,
        Some("Legacy") => flags[0] &= !FLAG_EFI,
        _ => {}
    }
    let mut data = vec![BOOT_FLAGS];
    data.extend_from_slice(&flags);
    // Parameter 5 with 5 bytes is always accepted.
    let _ = ipmi(state, netfn::CHASSIS, 0x08, &data);
}

/// One sensor reading, as the chassis resources show it.
#[derive(Debug, Clone, PartialEq)]
pub struct Reading {
    pub name: &'static str,
    pub kind: SensorKind,
    pub value: f64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SensorKind {
    Temperature,
    Fan,
    Power,
}

/// The SDR's sensors now (they follow the power state, as over IPMI).
pub fn readings(state: &Shared, wobble: u8) -> Vec<Reading> {
    let on = power_on(state);
    SENSORS
        .iter()
        .map(|sensor| Reading {
            name: sensor.name,
            kind: match sensor.name {
                n if n.contains("Temp") => SensorKind::Temperature,
                n if n.contains("Fan") => SensorKind::Fan,
                _ => SensorKind::Power,
            },
            value: sensor.value(sensor.raw(on, wobble)),
        })
        .collect()
}
