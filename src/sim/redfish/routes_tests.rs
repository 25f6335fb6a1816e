//! The router on a real simulated BMC, without the network: auth, the
//! resources, actions on the shared chassis, and hostile bodies.

use std::net::SocketAddr;
use std::time::Duration;

use base64::Engine;
use hyper::header::HeaderValue;
use hyper::{HeaderMap, Method, StatusCode};
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

use super::routes::{Reply, Req, normalize, route};
use super::{Bmc, Ports, RedfishSpec};
use crate::sim::{BmcSpec, BootDevice, Sim};

const PEER: &str = "127.0.0.1:40000";

async fn bmc() -> (Sim, Bmc) {
    let mut spec = BmcSpec::new("n1", 0, "admin", "secret");
    spec.line_delay = Duration::ZERO;
    spec.soft_off_delay = Duration::from_millis(50);
    let sim = Sim::start(vec![spec]).await.unwrap();
    let spec = RedfishSpec::new("/nonexistent".into(), "admin", "secret");
    let ports = Ports {
        https: 443,
        ssh: 2200,
        ipmi: sim.addr(0).port(),
    };
    let bmc = Bmc::new(&sim.bmcs[0], &spec, ports, CancellationToken::new());
    (sim, bmc)
}

fn basic(user: &str, pass: &str) -> HeaderMap {
    let mut h = HeaderMap::new();
    let encoded = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{pass}"));
    let value = HeaderValue::from_str(&format!("Basic {encoded}")).unwrap();
    h.insert("authorization", value);
    h
}

fn call(bmc: &Bmc, method: Method, path: &str, headers: &HeaderMap, body: &[u8]) -> Reply {
    let req = Req {
        method: &method,
        path: normalize(path),
        headers,
        body,
        peer: PEER.parse::<SocketAddr>().unwrap(),
    };
    route(bmc, &req)
}

fn admin() -> HeaderMap {
    basic("admin", "secret")
}

fn message_id(reply: &Reply) -> String {
    let body = reply.body.as_ref().expect("an error body");
    body["error"]["@Message.ExtendedInfo"][0]["MessageId"]
        .as_str()
        .unwrap()
        .to_string()
}

fn get(bmc: &Bmc, path: &str) -> Value {
    let reply = call(bmc, Method::GET, path, &admin(), b"");
    assert_eq!(reply.status, StatusCode::OK, "{path}: {:?}", reply.body);
    reply.body.unwrap()
}

#[tokio::test]
async fn only_the_root_and_login_are_open() {
    let (_sim, bmc) = bmc().await;
    let none = HeaderMap::new();
    let root = call(&bmc, Method::GET, "/redfish/v1/", &none, b"");
    assert_eq!(root.status, StatusCode::OK);
    assert_eq!(
        root.body.unwrap()["Systems"]["@odata.id"],
        "/redfish/v1/Systems"
    );
    for path in [
        "/redfish/v1/Systems",
        "/redfish/v1/nothing",
        "/redfish/v1/SessionService",
    ] {
        let reply = call(&bmc, Method::GET, path, &none, b"");
        assert_eq!(reply.status, StatusCode::UNAUTHORIZED, "{path}");
        assert!(message_id(&reply).ends_with(".NoValidSession"));
        assert!(reply.headers.iter().any(|(n, _)| *n == "WWW-Authenticate"));
    }
    let wrong = call(
        &bmc,
        Method::GET,
        "/redfish/v1/Systems",
        &basic("admin", "nope"),
        b"",
    );
    assert_eq!(wrong.status, StatusCode::UNAUTHORIZED);
    let garbage = {
        let mut h = HeaderMap::new();
        h.insert("authorization", HeaderValue::from_static("Basic %%%"));
        h.insert("x-auth-token", HeaderValue::from_static("nope"));
        h
    };
    let reply = call(&bmc, Method::GET, "/redfish/v1/Systems", &garbage, b"");
    assert_eq!(reply.status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn login_token_and_logout() {
    let (_sim, bmc) = bmc().await;
    let none = HeaderMap::new();
    let sessions = "/redfish/v1/SessionService/Sessions";
    let bad = call(
        &bmc,
        Method::POST,
        sessions,
        &none,
        br#"{"UserName":"admin","Password":"x"}"#,
    );
    assert_eq!(bad.status, StatusCode::UNAUTHORIZED);
    assert!(message_id(&bad).ends_with(".ResourceAtUriUnauthorized"));
    let missing = call(
        &bmc,
        Method::POST,
        sessions,
        &none,
        br#"{"UserName":"admin"}"#,
    );
    assert_eq!(missing.status, StatusCode::BAD_REQUEST);
    assert!(message_id(&missing).ends_with(".PropertyMissing"));
    let typed = call(
        &bmc,
        Method::POST,
        sessions,
        &none,
        br#"{"UserName":1,"Password":"s"}"#,
    );
    assert!(message_id(&typed).ends_with(".PropertyValueTypeError"));

    let ok = call(
        &bmc,
        Method::POST,
        sessions,
        &none,
        br#"{"UserName":"admin","Password":"secret"}"#,
    );
    assert_eq!(ok.status, StatusCode::CREATED);
    let header = |name: &str| {
        ok.headers
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| v.clone())
            .unwrap()
    };
    let (token, location) = (header("X-Auth-Token"), header("Location"));
    assert_eq!(token.len(), 20);
    let id = ok.body.as_ref().unwrap()["Id"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(location, format!("{sessions}/{id}"));
    // The token is not in the body, nor in Debug output of what is logged.
    assert!(!ok.body.as_ref().unwrap().to_string().contains(&token));
    let session = bmc.sessions.get(&id, std::time::Instant::now()).unwrap();
    assert!(!format!("{session:?}").contains(&token));

    let mut with_token = HeaderMap::new();
    with_token.insert("x-auth-token", HeaderValue::from_str(&token).unwrap());
    let system = call(
        &bmc,
        Method::GET,
        "/redfish/v1/Systems/system",
        &with_token,
        b"",
    );
    assert_eq!(system.status, StatusCode::OK);
    let list = call(&bmc, Method::GET, sessions, &with_token, b"")
        .body
        .unwrap();
    assert_eq!(list["Members"][0]["@odata.id"], location.as_str());
    let out = call(&bmc, Method::DELETE, &location, &with_token, b"");
    assert_eq!(out.status, StatusCode::OK);
    let after = call(
        &bmc,
        Method::GET,
        "/redfish/v1/Systems/system",
        &with_token,
        b"",
    );
    assert_eq!(after.status, StatusCode::UNAUTHORIZED);
    let gone = call(&bmc, Method::DELETE, &location, &admin(), b"");
    assert_eq!(gone.status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn reset_and_boot_override_act_on_the_ipmi_chassis() {
    let (sim, bmc) = bmc().await;
    let system = get(&bmc, "/redfish/v1/Systems/system");
    assert_eq!(system["PowerState"], "Off");
    assert_eq!(system["Boot"]["BootSourceOverrideEnabled"], "Disabled");
    assert_eq!(
        system["Actions"]["#ComputerSystem.Reset"]["target"],
        "/redfish/v1/Systems/system/Actions/ComputerSystem.Reset"
    );
    assert_eq!(system["SerialConsole"]["SSH"]["Port"], 2200);

    let patch =
        json!({"Boot": {"BootSourceOverrideEnabled": "Once", "BootSourceOverrideTarget": "Pxe"}});
    let reply = call(
        &bmc,
        Method::PATCH,
        "/redfish/v1/Systems/system",
        &admin(),
        patch.to_string().as_bytes(),
    );
    assert_eq!(reply.status, StatusCode::NO_CONTENT, "{:?}", reply.body);
    let boot = &get(&bmc, "/redfish/v1/Systems/system")["Boot"];
    assert_eq!(
        (
            boot["BootSourceOverrideEnabled"].as_str(),
            boot["BootSourceOverrideTarget"].as_str()
        ),
        (Some("Once"), Some("Pxe"))
    );
    assert_eq!(sim.chassis(0).boot_device, BootDevice::Pxe);

    let reset = "/redfish/v1/Systems/system/Actions/ComputerSystem.Reset";
    let restart = call(
        &bmc,
        Method::POST,
        reset,
        &admin(),
        br#"{"ResetType":"ForceRestart"}"#,
    );
    assert_eq!(
        restart.status,
        StatusCode::CONFLICT,
        "restart of a host that is off"
    );
    let on = call(
        &bmc,
        Method::POST,
        reset,
        &admin(),
        br#"{"ResetType":"On"}"#,
    );
    assert_eq!(on.status, StatusCode::NO_CONTENT);
    let state = sim.chassis(0);
    assert!(state.power_on);
    assert_eq!(
        (state.booted_from, state.boot_device),
        (BootDevice::Pxe, BootDevice::None)
    );
    let system = get(&bmc, "/redfish/v1/Systems/system");
    assert_eq!(system["PowerState"], "On");
    assert_eq!(
        system["Boot"]["BootSourceOverrideEnabled"], "Disabled",
        "one-shot consumed"
    );

    let push = call(
        &bmc,
        Method::POST,
        reset,
        &admin(),
        br#"{"ResetType":"PushPowerButton"}"#,
    );
    assert_eq!(push.status, StatusCode::BAD_REQUEST);
    assert!(message_id(&push).ends_with(".ActionParameterUnknown"));
    let extra = call(
        &bmc,
        Method::POST,
        reset,
        &admin(),
        br#"{"ResetType":"On","X":1}"#,
    );
    assert!(message_id(&extra).ends_with(".ActionParameterNotSupported"));
    let none = call(&bmc, Method::POST, reset, &admin(), b"{}");
    assert!(message_id(&none).ends_with(".ActionParameterMissing"));

    // Graceful: on until the soft off delay has passed, then off.
    let soft = call(
        &bmc,
        Method::POST,
        reset,
        &admin(),
        br#"{"ResetType":"GracefulShutdown"}"#,
    );
    assert_eq!(soft.status, StatusCode::NO_CONTENT);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!sim.chassis(0).power_on, "soft off applied by its timer");

    // Continuous: every boot uses it, and it stays.
    let patch = json!({"Boot": {"BootSourceOverrideEnabled": "Continuous", "BootSourceOverrideTarget": "Hdd"}});
    let reply = call(
        &bmc,
        Method::PATCH,
        "/redfish/v1/Systems/system",
        &admin(),
        patch.to_string().as_bytes(),
    );
    assert_eq!(reply.status, StatusCode::NO_CONTENT);
    for _ in 0..2 {
        let cycle = call(
            &bmc,
            Method::POST,
            reset,
            &admin(),
            br#"{"ResetType":"PowerCycle"}"#,
        );
        assert_eq!(cycle.status, StatusCode::NO_CONTENT);
        assert_eq!(sim.chassis(0).booted_from, BootDevice::Disk);
    }
    let boot = &get(&bmc, "/redfish/v1/Systems/system")["Boot"];
    assert_eq!(
        (
            boot["BootSourceOverrideEnabled"].as_str(),
            boot["BootSourceOverrideTarget"].as_str()
        ),
        (Some("Continuous"), Some("Hdd"))
    );
    // Disabled: the flags' valid bit goes, as ipmitool would see it.
    let patch = br#"{"Boot": {"BootSourceOverrideEnabled": "Disabled"}}"#;
    assert_eq!(
        call(
            &bmc,
            Method::PATCH,
            "/redfish/v1/Systems/system",
            &admin(),
            patch
        )
        .status,
        StatusCode::NO_CONTENT
    );
    assert_eq!(sim.chassis(0).boot_device, BootDevice::None);
    assert_eq!(
        get(&bmc, "/redfish/v1/Systems/system")["Boot"]["BootSourceOverrideEnabled"],
        "Disabled"
    );

    let entries = get(
        &bmc,
        "/redfish/v1/Systems/system/LogServices/EventLog/Entries",
    );
    // The SEL's power records, as bmcweb's messages, in order.
    let ids: Vec<&str> = entries["Members"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["MessageId"].as_str().unwrap())
        .collect();
    let (on, off) = ("OpenBMC.0.1.DCPowerOn", "OpenBMC.0.1.DCPowerOff");
    assert_eq!(ids, [on, off, on, off, on]);
    let first = entries["Members"][0]["Id"].as_str().unwrap().to_string();
    let one = get(
        &bmc,
        &format!("/redfish/v1/Systems/system/LogServices/EventLog/Entries/{first}"),
    );
    assert_eq!(one["MessageId"], on);
}

#[tokio::test]
async fn identify_inventory_clear_log_and_manager_reset() {
    let (sim, bmc) = bmc().await;
    let system = get(&bmc, "/redfish/v1/Systems/system");
    assert_eq!(system["Manufacturer"], "IBM");
    assert_eq!(system["Model"], "P9 Romulus");
    let inv = crate::sim::Inventory::for_node("n1");
    assert_eq!(system["SerialNumber"], inv.serial_number.as_str());
    assert_eq!(system["PartNumber"], "9006-22P");
    assert_eq!(system["BiosVersion"], crate::sim::HOST_FIRMWARE_VERSION);
    assert_eq!(system["LocationIndicatorActive"], false);
    let patch = br#"{"LocationIndicatorActive":true}"#;
    let reply = call(
        &bmc,
        Method::PATCH,
        "/redfish/v1/Systems/system",
        &admin(),
        patch,
    );
    assert_eq!(reply.status, StatusCode::NO_CONTENT);
    assert_eq!(sim.identify(0), crate::sim::Identify::Indefinite);
    assert_eq!(
        get(&bmc, "/redfish/v1/Systems/system")["LocationIndicatorActive"],
        true
    );
    let bad = br#"{"LocationIndicatorActive":"yes"}"#;
    let reply = call(
        &bmc,
        Method::PATCH,
        "/redfish/v1/Systems/system",
        &admin(),
        bad,
    );
    assert!(message_id(&reply).ends_with(".PropertyValueTypeError"));
    let off = br#"{"LocationIndicatorActive":false}"#;
    call(
        &bmc,
        Method::PATCH,
        "/redfish/v1/Systems/system",
        &admin(),
        off,
    );
    assert_eq!(sim.identify(0), crate::sim::Identify::Off);

    let manager = get(&bmc, "/redfish/v1/Managers/bmc");
    assert_eq!(manager["FirmwareVersion"], crate::sim::BMC_FIRMWARE_VERSION);
    let log = "/redfish/v1/Systems/system/LogServices/EventLog";
    let clear = get(&bmc, log)["Actions"]["#LogService.ClearLog"]["target"].clone();
    assert_eq!(sim.sel(0).len(), 2, "seeded");
    let reply = call(&bmc, Method::POST, clear.as_str().unwrap(), &admin(), b"{}");
    assert_eq!(reply.status, StatusCode::NO_CONTENT);
    assert!(sim.sel(0).is_empty());

    let target = manager["Actions"]["#Manager.Reset"]["target"].clone();
    let body = br#"{"ResetType":"Explode"}"#;
    let reply = call(&bmc, Method::POST, target.as_str().unwrap(), &admin(), body);
    assert_eq!(reply.status, StatusCode::BAD_REQUEST);
    assert!(!sim.bmc_down(0));
    let body = br#"{"ResetType":"GracefulRestart"}"#;
    let reply = call(&bmc, Method::POST, target.as_str().unwrap(), &admin(), body);
    assert_eq!(reply.status, StatusCode::NO_CONTENT);
    assert!(sim.bmc_down(0));
    let reply = call(
        &bmc,
        Method::GET,
        "/redfish/v1/Systems/system",
        &admin(),
        b"",
    );
    assert_eq!(reply.status, StatusCode::SERVICE_UNAVAILABLE);
}

#[tokio::test]
async fn chassis_sensors_follow_power() {
    let (_sim, bmc) = bmc().await;
    let thermal = get(&bmc, "/redfish/v1/Chassis/chassis/Thermal");
    assert_eq!(thermal["Temperatures"][0]["Name"], "CPU Temp");
    assert_eq!(thermal["Temperatures"][0]["ReadingCelsius"], 24.0);
    let sensors = get(&bmc, "/redfish/v1/Chassis/chassis/Sensors");
    let first = sensors["Members"][0]["@odata.id"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(get(&bmc, &first)["ReadingUnits"], "Cel");
    let power = get(&bmc, "/redfish/v1/Chassis/chassis/Power");
    assert_eq!(power["PowerControl"][0]["PowerConsumedWatts"], 12.0);
    let manager = get(&bmc, "/redfish/v1/Managers/bmc");
    assert_eq!(manager["UUID"], get(&bmc, "/redfish/v1")["UUID"]);
    assert_eq!(manager["UUID"].as_str().unwrap().len(), 36);
}

#[tokio::test]
async fn not_found_method_not_allowed_and_hostile_bodies() {
    let (_sim, bmc) = bmc().await;
    let missing = call(
        &bmc,
        Method::GET,
        "/redfish/v1/Systems/other",
        &admin(),
        b"",
    );
    assert_eq!(missing.status, StatusCode::NOT_FOUND);
    assert!(message_id(&missing).ends_with(".ResourceNotFound"));
    let nowhere = call(
        &bmc,
        Method::GET,
        "/redfish/v1/Nowhere/at/all",
        &admin(),
        b"",
    );
    assert_eq!(nowhere.status, StatusCode::NOT_FOUND);
    let delete = call(
        &bmc,
        Method::DELETE,
        "/redfish/v1/Systems/system",
        &admin(),
        b"",
    );
    assert_eq!(delete.status, StatusCode::METHOD_NOT_ALLOWED);
    assert!(
        delete
            .headers
            .iter()
            .any(|(n, v)| *n == "Allow" && v.contains("PATCH"))
    );
    let get_reset = call(
        &bmc,
        Method::GET,
        "/redfish/v1/Systems/system/Actions/ComputerSystem.Reset",
        &admin(),
        b"",
    );
    assert_eq!(get_reset.status, StatusCode::METHOD_NOT_ALLOWED);

    let system = "/redfish/v1/Systems/system";
    let reset = "/redfish/v1/Systems/system/Actions/ComputerSystem.Reset";
    let mut bodies: Vec<Vec<u8>> = [
        &b""[..],
        b"null",
        b"[]",
        b"{",
        b"{}",
        b"\xff\xfe",
        br#"{"Boot":1}"#,
        br#"{"Boot":{"BootSourceOverrideTarget":"Floppy"}}"#,
        br#"{"Boot":{"BootSourceOverrideTarget":7}}"#,
        br#"{"Boot":{"Nope":"x"}}"#,
        br#"{"AssetTag":"x"}"#,
        br#"{"ResetType":null}"#,
        br#"{"ResetType":"on"}"#,
    ]
    .iter()
    .map(|b| b.to_vec())
    .collect();
    for _ in 0..200 {
        let random: [u8; 24] = crate::ipmi::crypto::random();
        bodies.push(random[..usize::from(random[0]) % 24].to_vec());
    }
    for body in &bodies {
        for (method, path) in [
            (Method::PATCH, system),
            (Method::POST, reset),
            (Method::POST, "/redfish/v1/SessionService/Sessions"),
        ] {
            let reply = call(&bmc, method.clone(), path, &admin(), body);
            assert_eq!(
                reply.status,
                StatusCode::BAD_REQUEST,
                "{method} {path} {body:?}"
            );
            assert!(message_id(&reply).starts_with("Base."));
        }
    }
    // Nothing changed by all that.
    let system = get(&bmc, system);
    assert_eq!(
        (
            system["PowerState"].as_str(),
            system["Boot"]["BootSourceOverrideEnabled"].as_str()
        ),
        (Some("Off"), Some("Disabled"))
    );
}
