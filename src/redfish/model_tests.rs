//! The model functions on real-shaped JSON: sushy-tools 2.2.0's fake driver
//! (captured from the emulator, trimmed) and OpenBMC bmcweb's resources as
//! its redfish-core/lib handlers fill them in.

use serde_json::{Value, json};

use super::model::*;

fn sushy_system() -> Value {
    json!({
        "@odata.type": "#ComputerSystem.v1_13_0.ComputerSystem",
        "Id": "27946b59-9e44-4fa7-8e91-f3527a1ef094",
        "Name": "fake",
        "PowerState": "Off",
        "Boot": {
            "BootSourceOverrideEnabled": "Continuous",
            "BootSourceOverrideTarget": "Pxe",
            "BootSourceOverrideTarget@Redfish.AllowableValues": ["Pxe", "Cd", "Hdd", "UefiHttp"],
            "BootSourceOverrideMode": "UEFI",
            "UefiTargetBootSourceOverride": "/0x31/0x33/0x01/0x01",
            "HttpBootUri": "None"
        },
        "Links": {
            "Chassis": [{"@odata.id": "/redfish/v1/Chassis/15693887-7984-9484-3272-842188918912"}],
            "ManagedBy": [{"@odata.id": "/redfish/v1/Managers/27946b59-9e44-4fa7-8e91-f3527a1ef094"}]
        },
        "Actions": {
            "#ComputerSystem.Reset": {
                "target": "/redfish/v1/Systems/27946b59-9e44-4fa7-8e91-f3527a1ef094/Actions/ComputerSystem.Reset",
                "ResetType@Redfish.AllowableValues": [
                    "On", "ForceOff", "GracefulShutdown", "GracefulRestart", "ForceRestart", "Nmi", "ForceOn"
                ]
            }
        },
        "@odata.id": "/redfish/v1/Systems/27946b59-9e44-4fa7-8e91-f3527a1ef094"
    })
}

fn bmcweb_system() -> Value {
    json!({
        "@odata.id": "/redfish/v1/Systems/system",
        "@odata.type": "#ComputerSystem.v1_22_0.ComputerSystem",
        "Actions": {
            "#ComputerSystem.Reset": {
                "@Redfish.ActionInfo": "/redfish/v1/Systems/system/ResetActionInfo",
                "target": "/redfish/v1/Systems/system/Actions/ComputerSystem.Reset"
            }
        },
        "Boot": {
            "AutomaticRetryAttempts": 3,
            "AutomaticRetryConfig": "Disabled",
            "BootSourceOverrideEnabled": "Disabled",
            "BootSourceOverrideMode": "Legacy",
            "BootSourceOverrideTarget": "None",
            "BootSourceOverrideTarget@Redfish.AllowableValues": [
                "None", "Pxe", "Hdd", "Cd", "Diags", "BiosSetup", "Usb"
            ]
        },
        "Id": "system",
        "Links": {
            "Chassis": [{"@odata.id": "/redfish/v1/Chassis/chassis"}],
            "ManagedBy": [{"@odata.id": "/redfish/v1/Managers/bmc"}]
        },
        "LogServices": {"@odata.id": "/redfish/v1/Systems/system/LogServices"},
        "PowerState": "On",
        "SerialConsole": {
            "IPMI": {"ServiceEnabled": true},
            "MaxConcurrentSessions": 15,
            "SSH": {
                "HotKeySequenceDisplay": "Press ~. to exit console",
                "Port": 2200,
                "ServiceEnabled": true
            }
        },
        "Status": {"Health": "OK", "State": "Enabled"}
    })
}

#[test]
fn power_states() {
    assert_eq!(power_state(&sushy_system()), PowerState::Off);
    assert_eq!(power_state(&bmcweb_system()), PowerState::On);
    assert_eq!(
        power_state(&json!({"PowerState": "PoweringOn"})),
        PowerState::PoweringOn
    );
    assert_eq!(
        power_state(&json!({"PowerState": "Paused"})),
        PowerState::Unknown("Paused".into())
    );
    assert!(matches!(power_state(&json!({})), PowerState::Unknown(_)));
    // A hostile value is bounded and escaped.
    let evil = "\x1b[2J".repeat(500);
    match power_state(&json!({ "PowerState": evil })) {
        PowerState::Unknown(s) => {
            assert!(!s.contains('\x1b'));
            assert!(s.chars().count() < 2100, "{}", s.len());
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn reset_inline_allowable_values_sushy() {
    let info = reset_info(&sushy_system());
    assert_eq!(
        info.target.as_deref(),
        Some(
            "/redfish/v1/Systems/27946b59-9e44-4fa7-8e91-f3527a1ef094/Actions/ComputerSystem.Reset"
        )
    );
    assert_eq!(info.allowed.len(), 7);
    assert_eq!(info.action_info, None);
}

#[test]
fn reset_action_info_bmcweb() {
    let info = reset_info(&bmcweb_system());
    assert!(info.allowed.is_empty());
    assert_eq!(
        info.action_info.as_deref(),
        Some("/redfish/v1/Systems/system/ResetActionInfo")
    );
    let action_info = json!({
        "@odata.id": "/redfish/v1/Systems/system/ResetActionInfo",
        "@odata.type": "#ActionInfo.v1_1_2.ActionInfo",
        "Id": "ResetActionInfo",
        "Name": "Reset Action Info",
        "Parameters": [{
            "AllowableValues": [
                "ForceOff", "ForceOn", "ForceRestart", "GracefulRestart",
                "GracefulShutdown", "PowerCycle", "Nmi", "On"
            ],
            "DataType": "String",
            "Name": "ResetType",
            "Required": true
        }]
    });
    let allowed = action_info_allowed(&action_info);
    assert_eq!(allowed.len(), 8);
    assert!(allowed.contains(&"PowerCycle".to_string()));
    assert!(
        action_info_allowed(&json!({"Parameters": [{"Name": "Other", "AllowableValues": ["x"]}]}))
            .is_empty()
    );
    assert_eq!(reset_info(&json!({})), ResetInfo::default());
}

#[test]
fn choosing_a_reset() {
    let sushy = reset_info(&sushy_system()).allowed;
    assert_eq!(
        choose_reset(&[ResetType::PowerCycle, ResetType::ForceRestart], &sushy).unwrap(),
        ResetType::ForceRestart
    );
    let e = choose_reset(&[ResetType::PowerCycle, ResetType::PushPowerButton], &sushy).unwrap_err();
    assert_eq!(e.kind(), "unsupported");
    let text = e.to_string();
    assert!(text.contains("PowerCycle or PushPowerButton"), "{text}");
    assert!(text.contains("GracefulRestart"), "{text}");
    // Not advertised: the first preference goes, the BMC decides.
    assert_eq!(
        choose_reset(&[ResetType::PowerCycle], &[]).unwrap(),
        ResetType::PowerCycle
    );
    assert!(choose_reset(&[], &sushy).is_err());
    for r in ResetType::ALL {
        assert_eq!(r.to_string(), r.as_str());
    }
}

#[test]
fn boot_overrides() {
    assert_eq!(
        boot_override(&sushy_system()).unwrap(),
        BootOverride {
            target: BootTarget::Pxe,
            enabled: OverrideEnabled::Continuous
        }
    );
    assert_eq!(
        boot_override(&bmcweb_system()).unwrap(),
        BootOverride {
            target: BootTarget::None,
            enabled: OverrideEnabled::Disabled
        }
    );
    assert_eq!(
        boot_override(&json!({"Boot": {"BootSourceOverrideTarget": "BiosSetup", "BootSourceOverrideEnabled": "Once"}}))
            .unwrap()
            .target,
        BootTarget::Other("BiosSetup".into())
    );
    assert_eq!(boot_override(&json!({})).unwrap_err().kind(), "protocol");
    let e = boot_override(&json!({"Boot": {"BootSourceOverrideTarget": "Pxe"}})).unwrap_err();
    assert!(e.to_string().contains("BootSourceOverrideEnabled"), "{e}");
    let e = boot_override(&json!({"Boot": {"BootSourceOverrideTarget": "Pxe", "BootSourceOverrideEnabled": "Sometimes"}}))
        .unwrap_err();
    assert!(e.to_string().contains("Sometimes"), "{e}");
    assert_eq!(
        boot_targets_allowed(&bmcweb_system()),
        ["None", "Pxe", "Hdd", "Cd", "Diags", "BiosSetup", "Usb"]
    );
    assert_eq!(
        boot_patch(&BootTarget::Pxe, OverrideEnabled::Once),
        json!({"Boot": {"BootSourceOverrideTarget": "Pxe", "BootSourceOverrideEnabled": "Once"}})
    );
    for t in [BootTarget::Pxe, BootTarget::Hdd, BootTarget::None] {
        assert_eq!(BootTarget::parse(t.as_str()), t);
    }
    for e in [
        OverrideEnabled::Once,
        OverrideEnabled::Continuous,
        OverrideEnabled::Disabled,
    ] {
        assert_eq!(OverrideEnabled::parse(e.as_str()), Some(e));
    }
}

#[test]
fn serial_consoles_bmcweb_and_none() {
    let sc = serial_consoles(&bmcweb_system());
    assert_eq!(
        sc,
        SerialConsoles {
            advertised: true,
            ipmi: true,
            ssh: true,
            ssh_port: Some(2200),
            telnet: false,
            websocket: false,
            websocket_uri: None
        }
    );
    // sushy-tools has no SerialConsole.
    assert_eq!(serial_consoles(&sushy_system()), SerialConsoles::default());
    // Newer schemas: a WebSocket console with its URI; SSH disabled, bad port.
    let sc = serial_consoles(&json!({"SerialConsole": {
        "SSH": {"ServiceEnabled": false, "Port": 70000},
        "WebSocket": {"ServiceEnabled": true, "ConsoleURI": "/redfish/v1/Systems/system/SerialConsole/ws", "Interactive": true}
    }}));
    assert!(sc.advertised && sc.websocket && !sc.ssh && !sc.ipmi);
    assert_eq!(sc.ssh_port, None);
    assert_eq!(
        sc.websocket_uri.as_deref(),
        Some("/redfish/v1/Systems/system/SerialConsole/ws")
    );
}

#[test]
fn sushy_thermal() {
    let thermal = json!({
        "@odata.type": "#Thermal.v1_3_0.Thermal",
        "Temperatures": [
            {"MemberId": "0", "Name": "CPU Temp", "Status": {"State": "Enabled", "Health": "OK"}, "ReadingCelsius": 41},
            {"MemberId": "1", "Name": "Chassis Intake Temp", "Status": {"State": "Enabled", "Health": "OK"}, "ReadingCelsius": 25}
        ],
        "Fans": [
            {"MemberId": "0", "Name": "BaseBoard System Fan", "Status": {"State": "Enabled", "Health": "OK"}, "Reading": 2100, "ReadingUnits": "RPM"},
            {"MemberId": "1", "Name": "BaseBoard System Fan Backup", "Status": {"State": "Enabled", "Health": "OK"}, "Reading": 2050, "ReadingUnits": "RPM"}
        ]
    });
    let s = thermal_sensors(&thermal);
    assert_eq!(s.len(), 4);
    assert_eq!(
        s[0],
        Sensor {
            name: "CPU Temp".into(),
            reading: Some(41.0),
            units: "Cel".into(),
            health: Some("OK".into())
        }
    );
    assert_eq!(s[3].name, "BaseBoard System Fan Backup");
    assert_eq!(s[3].reading, Some(2050.0));
    assert_eq!(s[3].units, "RPM");
}

#[test]
fn bmcweb_thermal_and_power() {
    let thermal = json!({
        "@odata.id": "/redfish/v1/Chassis/chassis/Thermal",
        "Fans": [
            {"@odata.id": "/redfish/v1/Chassis/chassis/Thermal#/Fans/0", "MemberId": "fan0", "Name": "fan0",
             "Reading": 5400.0, "ReadingUnits": "RPM", "Status": {"Health": "OK", "State": "Enabled"}},
            {"MemberId": "fan1", "Name": "fan1", "Reading": null, "ReadingUnits": "RPM",
             "Status": {"State": "Absent"}}
        ],
        "Temperatures": [
            {"MemberId": "CPU0", "Name": "CPU0", "ReadingCelsius": 48.5, "Status": {"Health": "Warning", "State": "Enabled"}},
            {"MemberId": "DIMM", "Name": "DIMM", "ReadingCelsius": null, "Status": {"Health": "OK", "State": "Enabled"}}
        ]
    });
    let s = thermal_sensors(&thermal);
    assert_eq!(s.len(), 3, "absent fan dropped: {s:?}");
    assert_eq!(s[0].health.as_deref(), Some("Warning"));
    assert_eq!(s[1].reading, None);
    let power = json!({
        "@odata.id": "/redfish/v1/Chassis/chassis/Power",
        "PowerControl": [{"@odata.id": "/redfish/v1/Chassis/chassis/Power#/PowerControl/0",
            "MemberId": "0", "Name": "Chassis Power Control", "PowerConsumedWatts": 312.0,
            "PowerLimit": {"LimitInWatts": null}, "Status": {"Health": "OK", "State": "Enabled"}}],
        "PowerSupplies": [{"MemberId": "ps0", "Name": "ps0", "PowerInputWatts": 160.0,
            "Status": {"Health": "OK", "State": "Enabled"}}],
        "Voltages": [{"MemberId": "P12V", "Name": "P12V", "ReadingVolts": 12.06,
            "Status": {"Health": "OK", "State": "Enabled"}}]
    });
    let s = power_sensors(&power);
    let names: Vec<_> = s
        .iter()
        .map(|x| (x.name.as_str(), x.units.as_str()))
        .collect();
    assert_eq!(
        names,
        [("P12V", "V"), ("Chassis Power Control", "W"), ("ps0", "W")]
    );
    assert_eq!(power_watts_from_power(&power), Some(312.0));
    assert_eq!(
        power_watts_from_power(&json!({"PowerControl": [{"PowerConsumedWatts": null}]})),
        None
    );
    assert_eq!(
        power_watts_from_environment(
            &json!({"PowerWatts": {"DataSourceUri": "/x", "Reading": 250.5}})
        ),
        Some(250.5)
    );
}

#[test]
fn bmcweb_sensor_resources() {
    let expanded = json!({
        "@odata.id": "/redfish/v1/Chassis/chassis/Sensors/temperature_CPU0",
        "@odata.type": "#Sensor.v1_2_0.Sensor",
        "Id": "temperature_CPU0",
        "Name": "CPU0",
        "Reading": 40.5,
        "ReadingRangeMax": 127.0,
        "ReadingType": "Temperature",
        "ReadingUnits": "Cel",
        "Status": {"Health": "OK", "State": "Enabled"}
    });
    let s = sensor_resource(&expanded).unwrap();
    assert_eq!(
        (s.name.as_str(), s.reading, s.units.as_str()),
        ("CPU0", Some(40.5), "Cel")
    );
    // Units from the reading type when ReadingUnits is missing.
    let s =
        sensor_resource(&json!({"Name": "total_power", "ReadingType": "Power", "Reading": 300}))
            .unwrap();
    assert_eq!(s.units, "W");
    // A bare link is not a sensor yet.
    assert_eq!(
        sensor_resource(&json!({"@odata.id": "/redfish/v1/Chassis/chassis/Sensors/fan0"})),
        None
    );
}

#[test]
fn bmcweb_event_log_page() {
    let page = json!({
        "@odata.id": "/redfish/v1/Systems/system/LogServices/EventLog/Entries",
        "@odata.type": "#LogEntryCollection.LogEntryCollection",
        "Members": [
            {
                "@odata.id": "/redfish/v1/Systems/system/LogServices/EventLog/Entries/1651234567",
                "@odata.type": "#LogEntry.v1_9_0.LogEntry",
                "Created": "2022-04-29T12:16:07+00:00",
                "EntryType": "Event",
                "Id": "1651234567",
                "Message": "Host system DC power is off",
                "MessageArgs": [],
                "MessageId": "OpenBMC.0.1.DCPowerOff",
                "Name": "System Event Log Entry",
                "Severity": "OK"
            },
            {"@odata.id": "/redfish/v1/Systems/system/LogServices/EventLog/Entries/1651234999"}
        ],
        "Members@odata.count": 1200,
        "Members@odata.nextLink": "/redfish/v1/Systems/system/LogServices/EventLog/Entries?$skip=1000"
    });
    let (entries, links) = log_page(&page);
    assert_eq!(
        entries,
        [LogEntry {
            id: "1651234567".into(),
            created: Some("2022-04-29T12:16:07+00:00".into()),
            severity: Some("OK".into()),
            message: "Host system DC power is off".into()
        }]
    );
    assert_eq!(
        links,
        ["/redfish/v1/Systems/system/LogServices/EventLog/Entries/1651234999"]
    );
    assert_eq!(
        next_link(&page),
        Some("/redfish/v1/Systems/system/LogServices/EventLog/Entries?$skip=1000")
    );
}

#[test]
fn which_log_services_are_read() {
    let event_log = json!({"Id": "EventLog", "Entries": {"@odata.id": "/redfish/v1/Systems/system/LogServices/EventLog/Entries"}});
    let journal = json!({"Id": "Journal", "Entries": {"@odata.id": "/redfish/v1/Managers/bmc/LogServices/Journal/Entries"}});
    let sel = json!({"Id": "SEL", "Entries": {"@odata.id": "/redfish/v1/Managers/1/LogServices/SEL/Entries"}});
    assert!(is_event_log_service(&event_log));
    assert!(is_event_log_service(&sel));
    assert!(!is_event_log_service(&journal));
    assert!(!is_event_log_service(&json!({"Id": "EventLog"})));
}

#[test]
fn picking_the_system() {
    let one = vec!["/redfish/v1/Systems/system".to_string()];
    assert_eq!(pick_system(&one, None).unwrap(), one[0]);
    assert_eq!(pick_system(&one, Some("system")).unwrap(), one[0]);
    assert_eq!(
        pick_system(&one, Some("/redfish/v1/Systems/system/")).unwrap(),
        one[0]
    );
    let two = vec![
        "/redfish/v1/Systems/a".to_string(),
        "/redfish/v1/Systems/b".to_string(),
    ];
    let e = pick_system(&two, None).unwrap_err().to_string();
    assert!(
        e.contains("/redfish/v1/Systems/a") && e.contains("/redfish/v1/Systems/b"),
        "{e}"
    );
    assert_eq!(pick_system(&two, Some("b")).unwrap(), two[1]);
    let e = pick_system(&two, Some("c")).unwrap_err().to_string();
    assert!(
        e.contains("\"c\"") && e.contains("/redfish/v1/Systems/a"),
        "{e}"
    );
    assert!(pick_system(&[], None).is_err());
}

#[test]
fn service_roots_and_sessions() {
    // bmcweb's root.
    let bmcweb = json!({
        "@odata.id": "/redfish/v1",
        "Links": {"Sessions": {"@odata.id": "/redfish/v1/SessionService/Sessions"}},
        "SessionService": {"@odata.id": "/redfish/v1/SessionService"},
        "Systems": {"@odata.id": "/redfish/v1/Systems"}
    });
    assert_eq!(
        sessions_link(&bmcweb).as_deref(),
        Some("/redfish/v1/SessionService/Sessions")
    );
    // sushy-tools' root: no SessionService at all.
    let sushy = json!({
        "@odata.type": "#ServiceRoot.v1_5_0.ServiceRoot",
        "Systems": {"@odata.id": "/redfish/v1/Systems"},
        "Managers": {"@odata.id": "/redfish/v1/Managers"},
        "@odata.id": "/redfish/v1/"
    });
    assert_eq!(sessions_link(&sushy), None);
    assert_eq!(
        sessions_link(&json!({"SessionService": {"@odata.id": "/redfish/v1/SessionService"}}))
            .as_deref(),
        Some("/redfish/v1/SessionService/Sessions")
    );
    assert_eq!(link(&sushy, "Systems"), Some("/redfish/v1/Systems"));
    assert_eq!(
        members(&json!({"Members": [{"@odata.id": "/a"}, {"x": 1}, 5]})),
        ["/a"]
    );
}

#[test]
fn identify_prefers_location_indicator_active() {
    let both = json!({ "LocationIndicatorActive": false, "IndicatorLED": "Off" });
    let (patch, how) = identify_patch(&both, true).unwrap();
    assert_eq!(patch, json!({ "LocationIndicatorActive": true }));
    assert_eq!(how, "LocationIndicatorActive true");
    let (patch, _) = identify_patch(&json!({ "IndicatorLED": "Lit" }), false).unwrap();
    assert_eq!(patch, json!({ "IndicatorLED": "Off" }));
    assert_eq!(identify_patch(&json!({}), true), None);
    assert_eq!(
        identify_state(&json!({ "IndicatorLED": "Blinking" })),
        Some(true)
    );
    assert_eq!(
        identify_state(&json!({ "LocationIndicatorActive": false })),
        Some(false)
    );
    assert_eq!(identify_state(&json!({ "IndicatorLED": "Unknown" })), None);
}

#[test]
fn inventory_fields_read_like_fru_fields_and_are_made_safe() {
    let system = json!({
        "Manufacturer": "IBM", "Model": "9006-22P", "SerialNumber": "13ABCDE",
        "PartNumber": "", "SKU": "x\u{1b}[2J"
    });
    assert_eq!(
        inventory_fields(&system, "Product"),
        [
            ("Product Manufacturer".to_string(), "IBM".to_string()),
            ("Product Name".to_string(), "9006-22P".to_string()),
            ("Product Serial".to_string(), "13ABCDE".to_string()),
            ("Product SKU".to_string(), "x\\x1b[2J".to_string()),
        ]
    );
    let chassis = json!({ "ChassisType": "RackMount", "SerialNumber": "S1" });
    assert_eq!(
        inventory_fields(&chassis, "Chassis"),
        [
            ("Chassis Type".to_string(), "RackMount".to_string()),
            ("Chassis Serial".to_string(), "S1".to_string()),
        ]
    );
    assert_eq!(
        version(&json!({ "BiosVersion": "None" }), "BiosVersion"),
        None
    );
    assert_eq!(
        version(&json!({ "FirmwareVersion": "2.14.0" }), "FirmwareVersion").as_deref(),
        Some("2.14.0")
    );
}

#[test]
fn manager_reset_and_clear_log_actions() {
    // bmcweb's Manager: the allowed types inline.
    let manager = json!({ "Actions": { "#Manager.Reset": {
        "target": "/redfish/v1/Managers/bmc/Actions/Manager.Reset",
        "ResetType@Redfish.AllowableValues": ["GracefulRestart", "ForceRestart"]
    }}});
    let info = action_reset_info(&manager, "#Manager.Reset");
    assert_eq!(
        info.target.as_deref(),
        Some("/redfish/v1/Managers/bmc/Actions/Manager.Reset")
    );
    let pick = choose_reset(
        &[ResetType::GracefulRestart, ResetType::ForceRestart],
        &info.allowed,
    )
    .unwrap();
    assert_eq!(pick, ResetType::GracefulRestart);
    let only_force = vec!["ForceRestart".to_string()];
    assert_eq!(
        choose_reset(
            &[ResetType::GracefulRestart, ResetType::ForceRestart],
            &only_force
        )
        .unwrap(),
        ResetType::ForceRestart
    );
    assert_eq!(action_reset_info(&json!({}), "#Manager.Reset").target, None);
    let log = json!({ "Actions": { "#LogService.ClearLog": {
        "target": "/redfish/v1/Systems/system/LogServices/EventLog/Actions/LogService.ClearLog"
    }}});
    assert!(
        action_target(&log, "#LogService.ClearLog")
            .unwrap()
            .ends_with("ClearLog")
    );
    assert_eq!(action_target(&log, "#LogService.Other"), None);
}
