//! The Redfish documents, shaped like bmcweb's (same URIs, ids, types and
//! the properties clients read), and the Base registry errors it answers
//! with.

use serde_json::{Value, json};

use super::super::fru::Inventory;
use super::super::mc_info::{BMC_FIRMWARE_VERSION, HOST_FIRMWARE_VERSION};
use super::event_log::Entry;
use super::model::{BOOT_TARGETS, BootOverride, OVERRIDE_ENABLED, OVERRIDE_MODES, RESET_TYPES};
use super::model::{Reading, SensorKind};
use super::sessions::Session;

pub const SYSTEM: &str = "/redfish/v1/Systems/system";
pub const MANAGER: &str = "/redfish/v1/Managers/bmc";
pub const CHASSIS: &str = "/redfish/v1/Chassis/chassis";
pub const SESSIONS: &str = "/redfish/v1/SessionService/Sessions";
pub const EVENT_LOG: &str = "/redfish/v1/Systems/system/LogServices/EventLog";
pub const RESET_TARGET: &str = "/redfish/v1/Systems/system/Actions/ComputerSystem.Reset";
pub const CLEAR_LOG_TARGET: &str =
    "/redfish/v1/Systems/system/LogServices/EventLog/Actions/LogService.ClearLog";
pub const MANAGER_RESET_TARGET: &str = "/redfish/v1/Managers/bmc/Actions/Manager.Reset";
/// bmcweb's Manager.Reset types.
pub const MANAGER_RESET_TYPES: [&str; 2] = ["GracefulRestart", "ForceRestart"];

fn link(uri: &str) -> Value {
    json!({ "@odata.id": uri })
}

fn collection(uri: &str, odata_type: &str, name: &str, members: &[String]) -> Value {
    let members: Vec<Value> = members.iter().map(|m| link(m)).collect();
    json!({
        "@odata.id": uri,
        "@odata.type": odata_type,
        "Name": name,
        "Members": members,
        "Members@odata.count": members.len(),
    })
}

pub fn redfish() -> Value {
    json!({ "v1": "/redfish/v1/" })
}

pub fn service_root(uuid: &str) -> Value {
    json!({
        "@odata.id": "/redfish/v1",
        "@odata.type": "#ServiceRoot.v1_15_0.ServiceRoot",
        "Id": "RootService",
        "Name": "Root Service",
        "RedfishVersion": "1.17.0",
        "UUID": uuid,
        "Product": "OpenBMC",
        "Vendor": "OpenBMC",
        "Links": { "Sessions": link(SESSIONS) },
        "SessionService": link("/redfish/v1/SessionService"),
        "Systems": link("/redfish/v1/Systems"),
        "Chassis": link("/redfish/v1/Chassis"),
        "Managers": link("/redfish/v1/Managers"),
    })
}

pub fn session_service() -> Value {
    json!({
        "@odata.id": "/redfish/v1/SessionService",
        "@odata.type": "#SessionService.v1_0_2.SessionService",
        "Id": "SessionService",
        "Name": "Session Service",
        "Description": "Session Service",
        "ServiceEnabled": true,
        "SessionTimeout": super::sessions::SESSION_TIMEOUT.as_secs(),
        "Sessions": link(SESSIONS),
    })
}

pub fn session_collection(ids: &[String]) -> Value {
    let members: Vec<String> = ids.iter().map(|id| format!("{SESSIONS}/{id}")).collect();
    collection(
        SESSIONS,
        "#SessionCollection.SessionCollection",
        "Session Collection",
        &members,
    )
}

pub fn session(s: &Session) -> Value {
    json!({
        "@odata.id": format!("{SESSIONS}/{}", s.id),
        "@odata.type": "#Session.v1_5_0.Session",
        "Id": s.id,
        "Name": "User Session",
        "Description": "Manager User Session",
        "UserName": s.username,
        "ClientOriginIPAddress": s.origin.ip().to_string(),
    })
}

pub fn systems() -> Value {
    collection(
        "/redfish/v1/Systems",
        "#ComputerSystemCollection.ComputerSystemCollection",
        "Computer System Collection",
        &[SYSTEM.to_string()],
    )
}

/// What the System shows besides power and boot: its inventory and the
/// identify light.
pub struct SystemFacts<'a> {
    pub inventory: &'a Inventory,
    pub identify: bool,
}

/// The one ComputerSystem.
pub fn system(
    power_on: bool,
    boot: &BootOverride,
    uuid: &str,
    ssh_port: u16,
    facts: &SystemFacts<'_>,
) -> Value {
    let targets: Vec<&str> = BOOT_TARGETS.iter().map(|(name, _)| *name).collect();
    let inv = facts.inventory;
    json!({
        "@odata.id": SYSTEM,
        "@odata.type": "#ComputerSystem.v1_22_0.ComputerSystem",
        "Id": "system",
        "Name": "system",
        "Description": "Computer System",
        "SystemType": "Physical",
        "UUID": uuid,
        "Manufacturer": inv.manufacturer,
        "Model": inv.model,
        "SerialNumber": inv.serial_number,
        "PartNumber": inv.part_number,
        "AssetTag": inv.asset_tag,
        "BiosVersion": HOST_FIRMWARE_VERSION,
        "LocationIndicatorActive": facts.identify,
        "IndicatorLED": if facts.identify { "Lit" } else { "Off" },
        "PowerState": if power_on { "On" } else { "Off" },
        "Status": {
            "State": if power_on { "Enabled" } else { "Disabled" },
            "Health": "OK",
        },
        "Boot": {
            "BootSourceOverrideEnabled": boot.enabled,
            "BootSourceOverrideEnabled@Redfish.AllowableValues": OVERRIDE_ENABLED,
            "BootSourceOverrideTarget": boot.target,
            "BootSourceOverrideTarget@Redfish.AllowableValues": targets,
            "BootSourceOverrideMode": boot.mode,
            "BootSourceOverrideMode@Redfish.AllowableValues": OVERRIDE_MODES,
        },
        "Actions": {
            "#ComputerSystem.Reset": {
                "target": RESET_TARGET,
                "@Redfish.ActionInfo": format!("{SYSTEM}/ResetActionInfo"),
                "ResetType@Redfish.AllowableValues": RESET_TYPES,
            }
        },
        "SerialConsole": {
            "MaxConcurrentSessions": 15,
            "IPMI": { "ServiceEnabled": true },
            "SSH": {
                "ServiceEnabled": true,
                "Port": ssh_port,
                "HotKeySequenceDisplay": "Press ~. to exit console",
            },
            // bmcweb's /console0 (its path is fixed: bmcweb does not list
            // it; only the schema's SerialConsoleProtocol fields here).
            "WebSocket": { "ServiceEnabled": true },
        },
        "LogServices": link(&format!("{SYSTEM}/LogServices")),
        "Links": {
            "Chassis": [link(CHASSIS)],
            "ManagedBy": [link(MANAGER)],
        },
    })
}

pub fn reset_action_info() -> Value {
    json!({
        "@odata.id": format!("{SYSTEM}/ResetActionInfo"),
        "@odata.type": "#ActionInfo.v1_1_2.ActionInfo",
        "Id": "ResetActionInfo",
        "Name": "Reset Action Info",
        "Parameters": [{
            "Name": "ResetType",
            "Required": true,
            "DataType": "String",
            "AllowableValues": RESET_TYPES,
        }],
    })
}

pub fn log_services() -> Value {
    collection(
        &format!("{SYSTEM}/LogServices"),
        "#LogServiceCollection.LogServiceCollection",
        "System Log Services Collection",
        &[EVENT_LOG.to_string()],
    )
}

pub fn event_log_service() -> Value {
    json!({
        "@odata.id": EVENT_LOG,
        "@odata.type": "#LogService.v1_2_0.LogService",
        "Id": "EventLog",
        "Name": "Event Log Service",
        "Description": "System Event Log Service",
        // The SEL drops new records when full; it does not wrap.
        "OverWritePolicy": "NeverOverWrites",
        "MaxNumberOfRecords": super::super::sel::CAPACITY,
        "Entries": link(&format!("{EVENT_LOG}/Entries")),
        "Actions": {
            "#LogService.ClearLog": { "target": CLEAR_LOG_TARGET },
        },
    })
}

pub fn log_entry(e: &Entry) -> Value {
    json!({
        "@odata.id": format!("{EVENT_LOG}/Entries/{}", e.id),
        "@odata.type": "#LogEntry.v1_9_0.LogEntry",
        "Id": e.id.to_string(),
        "Name": "System Event Log Entry",
        "EntryType": "Event",
        "Severity": "OK",
        "Created": e.created,
        "Message": e.message,
        "MessageId": e.message_id,
        "MessageArgs": [],
    })
}

pub fn log_entries(entries: &[Entry]) -> Value {
    let members: Vec<Value> = entries.iter().map(log_entry).collect();
    json!({
        "@odata.id": format!("{EVENT_LOG}/Entries"),
        "@odata.type": "#LogEntryCollection.LogEntryCollection",
        "Name": "System Event Log Entries",
        "Description": "Collection of System Event Log Entries",
        "Members@odata.count": members.len(),
        "Members": members,
    })
}

pub fn managers() -> Value {
    collection(
        "/redfish/v1/Managers",
        "#ManagerCollection.ManagerCollection",
        "Manager Collection",
        &[MANAGER.to_string()],
    )
}

pub fn manager(uuid: &str, date_time: &str) -> Value {
    json!({
        "@odata.id": MANAGER,
        "@odata.type": "#Manager.v1_14_0.Manager",
        "Id": "bmc",
        "Name": "OpenBmc Manager",
        "Description": "Baseboard Management Controller",
        "ManagerType": "BMC",
        "Model": "OpenBmc",
        "FirmwareVersion": BMC_FIRMWARE_VERSION,
        "Actions": {
            "#Manager.Reset": {
                "target": MANAGER_RESET_TARGET,
                "ResetType@Redfish.AllowableValues": MANAGER_RESET_TYPES,
            }
        },
        "UUID": uuid,
        "ServiceEntryPointUUID": uuid,
        "PowerState": "On",
        "DateTime": date_time,
        "Status": { "State": "Enabled", "Health": "OK" },
        "SerialConsole": {
            "ServiceEnabled": true,
            "MaxConcurrentSessions": 15,
            "ConnectTypesSupported": ["IPMI", "SSH"],
        },
        "NetworkProtocol": link(&format!("{MANAGER}/NetworkProtocol")),
        "Links": {
            "ManagerForServers": [link(SYSTEM)],
            "ManagerForChassis": [link(CHASSIS)],
        },
    })
}

pub fn network_protocol(https: u16, ipmi: u16) -> Value {
    json!({
        "@odata.id": format!("{MANAGER}/NetworkProtocol"),
        "@odata.type": "#ManagerNetworkProtocol.v1_9_0.ManagerNetworkProtocol",
        "Id": "NetworkProtocol",
        "Name": "Manager Network Protocol",
        "Description": "Manager Network Service",
        "HostName": "bmc",
        "HTTPS": { "ProtocolEnabled": true, "Port": https },
        "IPMI": { "ProtocolEnabled": true, "Port": ipmi },
    })
}

pub fn chassis_collection() -> Value {
    collection(
        "/redfish/v1/Chassis",
        "#ChassisCollection.ChassisCollection",
        "Chassis Collection",
        &[CHASSIS.to_string()],
    )
}

pub fn chassis(power_on: bool) -> Value {
    json!({
        "@odata.id": CHASSIS,
        "@odata.type": "#Chassis.v1_22_0.Chassis",
        "Id": "chassis",
        "Name": "chassis",
        "ChassisType": "RackMount",
        "PowerState": if power_on { "On" } else { "Off" },
        "Status": { "State": "Enabled", "Health": "OK" },
        "Thermal": link(&format!("{CHASSIS}/Thermal")),
        "Power": link(&format!("{CHASSIS}/Power")),
        "Sensors": link(&format!("{CHASSIS}/Sensors")),
        "Links": {
            "ComputerSystems": [link(SYSTEM)],
            "ManagedBy": [link(MANAGER)],
        },
    })
}

/// bmcweb's sensor ids: `<type>_<name with underscores>`.
pub fn sensor_id(r: &Reading) -> String {
    let kind = match r.kind {
        SensorKind::Temperature => "temperature",
        SensorKind::Fan => "fan_tach",
        SensorKind::Power => "power",
    };
    format!("{kind}_{}", r.name.replace(' ', "_"))
}

fn status() -> Value {
    json!({ "State": "Enabled", "Health": "OK" })
}

pub fn thermal(readings: &[Reading]) -> Value {
    let uri = format!("{CHASSIS}/Thermal");
    let temps: Vec<Value> = readings
        .iter()
        .filter(|r| r.kind == SensorKind::Temperature)
        .enumerate()
        .map(|(i, r)| {
            json!({
                "@odata.id": format!("{uri}#/Temperatures/{i}"),
                "MemberId": r.name.replace(' ', "_"),
                "Name": r.name,
                "ReadingCelsius": r.value,
                "Status": status(),
            })
        })
        .collect();
    let fans: Vec<Value> = readings
        .iter()
        .filter(|r| r.kind == SensorKind::Fan)
        .enumerate()
        .map(|(i, r)| {
            json!({
                "@odata.id": format!("{uri}#/Fans/{i}"),
                "MemberId": r.name.replace(' ', "_"),
                "Name": r.name,
                "Reading": r.value,
                "ReadingUnits": "RPM",
                "Status": status(),
            })
        })
        .collect();
    json!({
        "@odata.id": uri,
        "@odata.type": "#Thermal.v1_7_0.Thermal",
        "Id": "Thermal",
        "Name": "Thermal",
        "Temperatures": temps,
        "Temperatures@odata.count": temps.len(),
        "Fans": fans,
        "Fans@odata.count": fans.len(),
    })
}

pub fn power(readings: &[Reading]) -> Value {
    let uri = format!("{CHASSIS}/Power");
    let control: Vec<Value> = readings
        .iter()
        .filter(|r| r.kind == SensorKind::Power)
        .enumerate()
        .map(|(i, r)| {
            json!({
                "@odata.id": format!("{uri}#/PowerControl/{i}"),
                "MemberId": i.to_string(),
                "Name": "Chassis Power Control",
                "PowerConsumedWatts": r.value,
                "Status": status(),
            })
        })
        .collect();
    json!({
        "@odata.id": uri,
        "@odata.type": "#Power.v1_7_1.Power",
        "Id": "Power",
        "Name": "Power",
        "PowerControl": control,
        "PowerControl@odata.count": control.len(),
    })
}

pub fn sensors(readings: &[Reading]) -> Value {
    let members: Vec<String> = readings
        .iter()
        .map(|r| format!("{CHASSIS}/Sensors/{}", sensor_id(r)))
        .collect();
    collection(
        &format!("{CHASSIS}/Sensors"),
        "#SensorCollection.SensorCollection",
        "Sensors",
        &members,
    )
}

pub fn sensor(r: &Reading) -> Value {
    let (reading_type, units) = match r.kind {
        SensorKind::Temperature => ("Temperature", "Cel"),
        SensorKind::Fan => ("Rotational", "RPM"),
        SensorKind::Power => ("Power", "W"),
    };
    let id = sensor_id(r);
    json!({
        "@odata.id": format!("{CHASSIS}/Sensors/{id}"),
        "@odata.type": "#Sensor.v1_2_0.Sensor",
        "Id": id,
        "Name": r.name,
        "Reading": r.value,
        "ReadingType": reading_type,
        "ReadingUnits": units,
        "Status": status(),
    })
}

/// The Base message registry version bmcweb ships.
const BASE: &str = "Base.1.18.1";

/// One Base registry message as Redfish's extended info.
pub fn message(id: &str, message: &str, args: &[&str], resolution: &str) -> Value {
    json!({
        "@odata.type": "#Message.v1_1_1.Message",
        "MessageId": format!("{BASE}.{id}"),
        "Message": message,
        "MessageArgs": args,
        "MessageSeverity": "Critical",
        "Resolution": resolution,
    })
}

/// A Redfish error body carrying one message.
pub fn error(id: &str, text: &str, args: &[&str], resolution: &str) -> Value {
    json!({
        "error": {
            "code": format!("{BASE}.{id}"),
            "message": text,
            "@Message.ExtendedInfo": [message(id, text, args, resolution)],
        }
    })
}
