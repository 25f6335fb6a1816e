//! The Redfish resources petitlab reads, parsed from JSON without I/O:
//! a ComputerSystem's power state, reset action, boot override and serial
//! consoles; Thermal/Power/Sensor readings; log entries. Shapes follow the
//! DMTF schemas as OpenBMC's bmcweb and sushy-tools fill them in
//! (`model_tests.rs` has both).

use serde_json::Value;

use super::error::{RedfishError, bound};

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PowerState {
    On,
    Off,
    PoweringOn,
    PoweringOff,
    /// Missing, or a value this schema version does not name (e.g.
    /// `"Paused"`).
    Unknown(String),
}

impl PowerState {
    pub fn parse(text: &str) -> PowerState {
        match text {
            "On" => PowerState::On,
            "Off" => PowerState::Off,
            "PoweringOn" => PowerState::PoweringOn,
            "PoweringOff" => PowerState::PoweringOff,
            other => PowerState::Unknown(bound(other)),
        }
    }
}

/// `#ComputerSystem.Reset`'s `ResetType`s that petitlab asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResetType {
    On,
    ForceOff,
    GracefulShutdown,
    GracefulRestart,
    ForceRestart,
    PowerCycle,
    Nmi,
    PushPowerButton,
}

impl ResetType {
    pub const ALL: [ResetType; 8] = [
        ResetType::On,
        ResetType::ForceOff,
        ResetType::GracefulShutdown,
        ResetType::GracefulRestart,
        ResetType::ForceRestart,
        ResetType::PowerCycle,
        ResetType::Nmi,
        ResetType::PushPowerButton,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ResetType::On => "On",
            ResetType::ForceOff => "ForceOff",
            ResetType::GracefulShutdown => "GracefulShutdown",
            ResetType::GracefulRestart => "GracefulRestart",
            ResetType::ForceRestart => "ForceRestart",
            ResetType::PowerCycle => "PowerCycle",
            ResetType::Nmi => "Nmi",
            ResetType::PushPowerButton => "PushPowerButton",
        }
    }
}

impl std::fmt::Display for ResetType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// `Boot.BootSourceOverrideTarget`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BootTarget {
    Pxe,
    Hdd,
    /// `"None"`: no override, the normal boot order.
    None,
    /// Any other value (`Cd`, `BiosSetup`, `UefiHttp`, ...), as the BMC
    /// spells it.
    Other(String),
}

impl BootTarget {
    pub fn as_str(&self) -> &str {
        match self {
            BootTarget::Pxe => "Pxe",
            BootTarget::Hdd => "Hdd",
            BootTarget::None => "None",
            BootTarget::Other(s) => s,
        }
    }

    pub fn parse(text: &str) -> BootTarget {
        match text {
            "Pxe" => BootTarget::Pxe,
            "Hdd" => BootTarget::Hdd,
            "None" => BootTarget::None,
            other => BootTarget::Other(bound(other)),
        }
    }
}

/// `Boot.BootSourceOverrideEnabled`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OverrideEnabled {
    Once,
    Continuous,
    Disabled,
}

impl OverrideEnabled {
    pub fn as_str(self) -> &'static str {
        match self {
            OverrideEnabled::Once => "Once",
            OverrideEnabled::Continuous => "Continuous",
            OverrideEnabled::Disabled => "Disabled",
        }
    }

    pub fn parse(text: &str) -> Option<OverrideEnabled> {
        match text {
            "Once" => Some(OverrideEnabled::Once),
            "Continuous" => Some(OverrideEnabled::Continuous),
            "Disabled" => Some(OverrideEnabled::Disabled),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BootOverride {
    pub target: BootTarget,
    pub enabled: OverrideEnabled,
}

/// One reading, whichever resource it came from (Thermal, Power, Sensor).
#[derive(Debug, Clone, PartialEq)]
pub struct Sensor {
    pub name: String,
    /// None when the BMC has no reading (sensor absent, host off).
    pub reading: Option<f64>,
    /// UCUM-ish as Redfish uses: "Cel", "RPM", "V", "W", "A", "%".
    pub units: String,
    /// `Status.Health`: "OK", "Warning", "Critical".
    pub health: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogEntry {
    pub id: String,
    /// ISO 8601 as the BMC wrote it.
    pub created: Option<String>,
    /// "OK", "Warning", "Critical".
    pub severity: Option<String>,
    pub message: String,
}

/// `ComputerSystem.SerialConsole`: the ways to the host's console that the
/// BMC says are on.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SerialConsoles {
    /// Whether the system has a `SerialConsole` object at all.
    pub advertised: bool,
    pub ipmi: bool,
    pub ssh: bool,
    /// OpenBMC's obmc-console-ssh is on 2200.
    pub ssh_port: Option<u16>,
    pub telnet: bool,
    /// `SerialConsole.WebSocket` (newer schemas; bmcweb serves `/console0`
    /// without advertising it here).
    pub websocket: bool,
    pub websocket_uri: Option<String>,
}

/// Where to reset, and what it says it accepts.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ResetInfo {
    pub target: Option<String>,
    /// `ResetType@Redfish.AllowableValues`, if given inline.
    pub allowed: Vec<String>,
    /// `@Redfish.ActionInfo`, to fetch when nothing is inline (bmcweb).
    pub action_info: Option<String>,
}

/// `obj[key]["@odata.id"]`.
pub fn link<'a>(obj: &'a Value, key: &str) -> Option<&'a str> {
    obj.get(key)?.get("@odata.id")?.as_str()
}

/// The `@odata.id`s of a collection's or link array's members.
pub fn member_links(list: Option<&Value>) -> Vec<String> {
    list.and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|m| m.get("@odata.id").and_then(Value::as_str))
        .map(str::to_string)
        .collect()
}

pub fn members(collection: &Value) -> Vec<String> {
    member_links(collection.get("Members"))
}

/// Where to POST a login: the service root's `Links.Sessions`, or the
/// spec's fixed path when only `SessionService` is there. None: the service
/// has no sessions (sushy-tools), basic auth it is.
pub fn sessions_link(root: &Value) -> Option<String> {
    if let Some(l) = root
        .get("Links")
        .and_then(|links| links.get("Sessions"))
        .and_then(|s| s.get("@odata.id"))
        .and_then(Value::as_str)
    {
        return Some(l.to_string());
    }
    root.get("SessionService")
        .map(|_| "/redfish/v1/SessionService/Sessions".to_string())
}

/// Picks the system to manage among a `Systems` collection's members: the
/// only one, or the one whose last path segment (or whole path) is
/// `wanted`.
pub fn pick_system(members: &[String], wanted: Option<&str>) -> Result<String, RedfishError> {
    let found = || {
        if members.is_empty() {
            "none".to_string()
        } else {
            members
                .iter()
                .map(|m| bound(m))
                .collect::<Vec<_>>()
                .join(", ")
        }
    };
    match wanted {
        Some(w) => members
            .iter()
            .find(|m| {
                m.trim_end_matches('/') == w.trim_end_matches('/')
                    || m.trim_end_matches('/').rsplit('/').next() == Some(w)
            })
            .cloned()
            .ok_or_else(|| {
                RedfishError::Protocol(format!(
                    "the BMC has no system {:?}; its systems: {}",
                    bound(w),
                    found()
                ))
            }),
        None => match members {
            [one] => Ok(one.clone()),
            [] => Err(RedfishError::Protocol(
                "the BMC lists no system under /redfish/v1/Systems".into(),
            )),
            _ => Err(RedfishError::Protocol(format!(
                "the BMC has {} systems, set system_id to one of: {}",
                members.len(),
                found()
            ))),
        },
    }
}

pub fn power_state(system: &Value) -> PowerState {
    match system.get("PowerState").and_then(Value::as_str) {
        Some(s) => PowerState::parse(s),
        None => PowerState::Unknown("(not reported)".into()),
    }
}

fn strings(v: Option<&Value>) -> Vec<String> {
    v.and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .map(str::to_string)
        .collect()
}

pub fn reset_info(system: &Value) -> ResetInfo {
    action_reset_info(system, "#ComputerSystem.Reset")
}

/// `Actions[name]` of a resource with a `ResetType` parameter
/// (`#Manager.Reset`, `#ComputerSystem.Reset`).
pub fn action_reset_info(resource: &Value, name: &str) -> ResetInfo {
    let Some(action) = resource.get("Actions").and_then(|a| a.get(name)) else {
        return ResetInfo::default();
    };
    ResetInfo {
        target: action
            .get("target")
            .and_then(Value::as_str)
            .map(str::to_string),
        allowed: strings(action.get("ResetType@Redfish.AllowableValues")),
        action_info: action
            .get("@Redfish.ActionInfo")
            .and_then(Value::as_str)
            .map(str::to_string),
    }
}

/// `Parameters[Name == "ResetType"].AllowableValues` of an ActionInfo.
pub fn action_info_allowed(action_info: &Value) -> Vec<String> {
    action_info
        .get("Parameters")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .find(|p| p.get("Name").and_then(Value::as_str) == Some("ResetType"))
        .map(|p| strings(p.get("AllowableValues")))
        .unwrap_or_default()
}

/// The first of `preferred` that `allowed` lists; with nothing advertised,
/// the first of `preferred` (the BMC will say if it minds).
pub fn choose_reset(
    preferred: &[ResetType],
    allowed: &[String],
) -> Result<ResetType, RedfishError> {
    let pick = if allowed.is_empty() {
        preferred.first().copied()
    } else {
        preferred
            .iter()
            .copied()
            .find(|p| allowed.iter().any(|a| a == p.as_str()))
    };
    pick.ok_or_else(|| RedfishError::Unsupported {
        what: format!(
            "reset {}",
            if preferred.is_empty() {
                "(no type asked)".to_string()
            } else {
                preferred
                    .iter()
                    .map(|p| p.as_str())
                    .collect::<Vec<_>>()
                    .join(" or ")
            }
        ),
        allowed: allowed.iter().map(|a| bound(a)).collect(),
    })
}

pub fn boot_override(system: &Value) -> Result<BootOverride, RedfishError> {
    let boot = system
        .get("Boot")
        .ok_or_else(|| RedfishError::Protocol("the system has no Boot object".into()))?;
    let target = boot
        .get("BootSourceOverrideTarget")
        .and_then(Value::as_str)
        .map(BootTarget::parse)
        .ok_or_else(|| {
            RedfishError::Protocol("the system reports no Boot.BootSourceOverrideTarget".into())
        })?;
    let enabled_text = boot
        .get("BootSourceOverrideEnabled")
        .and_then(Value::as_str)
        .ok_or_else(|| {
            RedfishError::Protocol("the system reports no Boot.BootSourceOverrideEnabled".into())
        })?;
    let enabled = OverrideEnabled::parse(enabled_text).ok_or_else(|| {
        RedfishError::Protocol(format!(
            "unknown Boot.BootSourceOverrideEnabled {:?}",
            bound(enabled_text)
        ))
    })?;
    Ok(BootOverride { target, enabled })
}

/// `Boot.BootSourceOverrideTarget@Redfish.AllowableValues` (empty: not
/// advertised).
pub fn boot_targets_allowed(system: &Value) -> Vec<String> {
    strings(
        system
            .get("Boot")
            .and_then(|b| b.get("BootSourceOverrideTarget@Redfish.AllowableValues")),
    )
}

pub fn boot_patch(target: &BootTarget, enabled: OverrideEnabled) -> Value {
    serde_json::json!({
        "Boot": {
            "BootSourceOverrideTarget": target.as_str(),
            "BootSourceOverrideEnabled": enabled.as_str(),
        }
    })
}

pub fn serial_consoles(system: &Value) -> SerialConsoles {
    let Some(sc) = system.get("SerialConsole").filter(|v| v.is_object()) else {
        return SerialConsoles::default();
    };
    let enabled = |key: &str| {
        sc.get(key)
            .and_then(|p| p.get("ServiceEnabled"))
            .and_then(Value::as_bool)
            .unwrap_or(false)
    };
    SerialConsoles {
        advertised: true,
        ipmi: enabled("IPMI"),
        ssh: enabled("SSH"),
        ssh_port: sc
            .get("SSH")
            .and_then(|p| p.get("Port"))
            .and_then(Value::as_u64)
            .and_then(|p| u16::try_from(p).ok())
            .filter(|p| *p != 0),
        telnet: enabled("Telnet"),
        websocket: enabled("WebSocket"),
        websocket_uri: sc
            .get("WebSocket")
            .and_then(|p| p.get("ConsoleURI"))
            .and_then(Value::as_str)
            .map(bound),
    }
}

fn health(item: &Value) -> Option<String> {
    item.get("Status")
        .and_then(|s| s.get("Health"))
        .and_then(Value::as_str)
        .map(bound)
}

fn name(item: &Value, fallback: &str) -> String {
    item.get("Name")
        .or_else(|| item.get("FanName"))
        .or_else(|| item.get("MemberId"))
        .and_then(Value::as_str)
        .map(bound)
        .unwrap_or_else(|| fallback.to_string())
}

/// A sensor in a legacy array, unless the BMC marks it absent.
fn array_sensor(item: &Value, reading_key: &str, units: &str, fallback: &str) -> Option<Sensor> {
    let state = item
        .get("Status")
        .and_then(|s| s.get("State"))
        .and_then(Value::as_str);
    if state == Some("Absent") {
        return None;
    }
    let units = item
        .get("ReadingUnits")
        .and_then(Value::as_str)
        .map(bound)
        .unwrap_or_else(|| units.to_string());
    Some(Sensor {
        name: name(item, fallback),
        reading: item.get(reading_key).and_then(Value::as_f64),
        units,
        health: health(item),
    })
}

fn array<'a>(v: &'a Value, key: &str) -> impl Iterator<Item = &'a Value> {
    v.get(key).and_then(Value::as_array).into_iter().flatten()
}

/// Chassis `Thermal`: `Temperatures[].ReadingCelsius`, `Fans[].Reading`.
pub fn thermal_sensors(thermal: &Value) -> Vec<Sensor> {
    let temps = array(thermal, "Temperatures")
        .filter_map(|t| array_sensor(t, "ReadingCelsius", "Cel", "temperature"));
    let fans = array(thermal, "Fans").filter_map(|f| array_sensor(f, "Reading", "RPM", "fan"));
    temps.chain(fans).collect()
}

/// Chassis `Power`: `Voltages[]`, `PowerControl[]` (consumed watts),
/// `PowerSupplies[]` (input watts).
pub fn power_sensors(power: &Value) -> Vec<Sensor> {
    let volts =
        array(power, "Voltages").filter_map(|v| array_sensor(v, "ReadingVolts", "V", "voltage"));
    let control = array(power, "PowerControl")
        .filter_map(|c| array_sensor(c, "PowerConsumedWatts", "W", "power"));
    let supplies = array(power, "PowerSupplies")
        .filter_map(|p| array_sensor(p, "PowerInputWatts", "W", "power supply"));
    volts.chain(control).chain(supplies).collect()
}

/// The system's power draw from a chassis `Power`: the first
/// `PowerControl[].PowerConsumedWatts`.
pub fn power_watts_from_power(power: &Value) -> Option<f64> {
    array(power, "PowerControl").find_map(|c| c.get("PowerConsumedWatts").and_then(Value::as_f64))
}

/// The same from a chassis `EnvironmentMetrics` (newer BMCs).
pub fn power_watts_from_environment(metrics: &Value) -> Option<f64> {
    metrics.get("PowerWatts")?.get("Reading")?.as_f64()
}

/// A `Sensor` resource (the `Chassis/<id>/Sensors` model). None for a bare
/// link (the collection was not expanded): fetch it.
pub fn sensor_resource(v: &Value) -> Option<Sensor> {
    if v.get("Reading").is_none() && v.get("ReadingType").is_none() && v.get("Name").is_none() {
        return None;
    }
    let units = v
        .get("ReadingUnits")
        .and_then(Value::as_str)
        .map(bound)
        .or_else(|| {
            v.get("ReadingType")
                .and_then(Value::as_str)
                .map(units_for_type)
                .map(str::to_string)
        })
        .unwrap_or_default();
    Some(Sensor {
        name: name(v, "sensor"),
        reading: v.get("Reading").and_then(Value::as_f64),
        units,
        health: health(v),
    })
}

fn units_for_type(reading_type: &str) -> &'static str {
    match reading_type {
        "Temperature" => "Cel",
        "Voltage" => "V",
        "Current" => "A",
        "Power" => "W",
        "Rotational" => "RPM",
        "Percent" | "Humidity" => "%",
        _ => "",
    }
}

/// A `LogEntry`; None for a bare link (fetch it).
pub fn log_entry(v: &Value) -> Option<LogEntry> {
    let message = v.get("Message").and_then(Value::as_str);
    let id = v.get("Id").and_then(Value::as_str);
    if message.is_none() && id.is_none() {
        return None;
    }
    Some(LogEntry {
        id: id.map(bound).unwrap_or_default(),
        created: v.get("Created").and_then(Value::as_str).map(bound),
        severity: v
            .get("Severity")
            .or_else(|| v.get("MessageSeverity"))
            .and_then(Value::as_str)
            .map(bound),
        message: message.map(bound).unwrap_or_default(),
    })
}

/// The entries a page of a `LogEntryCollection` carries inline, and the
/// links of those it only names.
pub fn log_page(collection: &Value) -> (Vec<LogEntry>, Vec<String>) {
    let mut entries = Vec::new();
    let mut links = Vec::new();
    for m in array(collection, "Members") {
        match log_entry(m) {
            Some(e) => entries.push(e),
            None => {
                if let Some(l) = m.get("@odata.id").and_then(Value::as_str) {
                    links.push(l.to_string());
                }
            }
        }
    }
    (entries, links)
}

pub fn next_link(collection: &Value) -> Option<&str> {
    collection.get("Members@odata.nextLink")?.as_str()
}

/// Log services not worth reading for "what happened to this host": huge
/// (the BMC's journal, POST codes) or not events (dumps).
pub fn is_event_log_service(service: &Value) -> bool {
    let id = service.get("Id").and_then(Value::as_str).unwrap_or("");
    let noisy = [
        "Journal",
        "PostCodes",
        "Dump",
        "HostLogger",
        "Crashdump",
        "FaultLog",
    ];
    if noisy.contains(&id) {
        return false;
    }
    service.get("Entries").is_some()
}

/// `Actions[name].target`, e.g. `#LogService.ClearLog`.
pub fn action_target(resource: &Value, name: &str) -> Option<String> {
    resource
        .get("Actions")?
        .get(name)?
        .get("target")?
        .as_str()
        .map(str::to_string)
}

/// A string property, bounded and made safe to show; empty counts as absent.
fn text_of(v: &Value, key: &str) -> Option<String> {
    v.get(key)
        .and_then(Value::as_str)
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(bound)
}

/// The inventory fields of a resource, named like ipmitool's FRU fields
/// under `area` ("Product", "Chassis"): Manufacturer, Model (the name),
/// PartNumber, SerialNumber, SKU; a chassis' ChassisType first.
pub fn inventory_fields(resource: &Value, area: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let keys: &[(&str, &str)] = if area == "Chassis" {
        &[
            ("ChassisType", "Type"),
            ("Manufacturer", "Manufacturer"),
            ("Model", "Model"),
            ("PartNumber", "Part Number"),
            ("SerialNumber", "Serial"),
            ("SKU", "SKU"),
        ]
    } else {
        &[
            ("Manufacturer", "Manufacturer"),
            ("Model", "Name"),
            ("PartNumber", "Part Number"),
            ("SerialNumber", "Serial"),
            ("SKU", "SKU"),
        ]
    };
    for (key, name) in keys {
        if let Some(v) = text_of(resource, key) {
            out.push((format!("{area} {name}"), v));
        }
    }
    out
}

/// Firmware versions from the Manager and the System.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FirmwareVersions {
    /// The Manager's `FirmwareVersion`.
    pub bmc: Option<String>,
    /// The System's `BiosVersion`.
    pub host: Option<String>,
    /// The Manager's `Manufacturer`.
    pub manufacturer: Option<String>,
    /// The Manager's `Model`.
    pub model: Option<String>,
}

/// `FirmwareVersion` of a Manager, `BiosVersion` of a System, …
pub fn version(resource: &Value, key: &str) -> Option<String> {
    // sushy-tools renders a missing BiosVersion as the string "None".
    text_of(resource, key).filter(|v| v != "None")
}

pub fn text(resource: &Value, key: &str) -> Option<String> {
    text_of(resource, key)
}

/// How to light or darken a resource's identify LED: the PATCH body and
/// which property it sets. `LocationIndicatorActive` (Redfish 2020.3+)
/// when the resource has it, else the deprecated `IndicatorLED`.
pub fn identify_patch(resource: &Value, on: bool) -> Option<(Value, String)> {
    if resource.get("LocationIndicatorActive").is_some() {
        return Some((
            serde_json::json!({ "LocationIndicatorActive": on }),
            format!("LocationIndicatorActive {on}"),
        ));
    }
    if resource.get("IndicatorLED").is_some() {
        let state = if on { "Lit" } else { "Off" };
        return Some((
            serde_json::json!({ "IndicatorLED": state }),
            format!("IndicatorLED {state}"),
        ));
    }
    None
}

/// Whether a resource's identify LED reads as on.
pub fn identify_state(resource: &Value) -> Option<bool> {
    if let Some(b) = resource
        .get("LocationIndicatorActive")
        .and_then(Value::as_bool)
    {
        return Some(b);
    }
    match resource.get("IndicatorLED").and_then(Value::as_str)? {
        "Lit" | "Blinking" => Some(true),
        "Off" => Some(false),
        _ => None,
    }
}
