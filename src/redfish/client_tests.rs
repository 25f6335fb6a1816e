//! The client's session handling and bounds against a small in-process
//! HTTPS service shaped like bmcweb (SessionService, ResetActionInfo,
//! SerialConsole). sushy-tools, the real peer in tests/redfish_sushy.rs,
//! has no SessionService, so the session path is exercised here.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use serde_json::{Value, json};
use tokio::net::TcpListener;

use super::*;

#[derive(Debug, Clone)]
struct Seen {
    method: String,
    path: String,
    token: Option<String>,
    basic: bool,
    body: Value,
}

type Reply = (u16, Vec<(&'static str, String)>, Vec<u8>);
type Handler = Arc<dyn Fn(&Seen) -> Reply + Send + Sync>;

struct FakeBmc {
    base_url: String,
    seen: Arc<Mutex<Vec<Seen>>>,
    pin: String,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for FakeBmc {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl FakeBmc {
    async fn start(handler: Handler) -> FakeBmc {
        let cert = rcgen::generate_simple_self_signed(vec!["127.0.0.1".into()]).unwrap();
        let pin = fingerprint_of(cert.cert.der());
        let key = rustls::pki_types::PrivateKeyDer::Pkcs8(cert.signing_key.serialize_der().into());
        let config = rustls::ServerConfig::builder_with_provider(tls::ring_provider())
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(vec![cert.cert.der().clone()], key)
            .unwrap();
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base_url = format!("https://{}", listener.local_addr().unwrap());
        let seen = Arc::new(Mutex::new(Vec::new()));
        let seen2 = seen.clone();
        let task = tokio::spawn(async move {
            loop {
                let Ok((tcp, _)) = listener.accept().await else {
                    return;
                };
                let acceptor = acceptor.clone();
                let handler = handler.clone();
                let seen = seen2.clone();
                tokio::spawn(async move {
                    let Ok(tls) = acceptor.accept(tcp).await else {
                        return;
                    };
                    let service = hyper::service::service_fn(
                        move |req: hyper::Request<hyper::body::Incoming>| {
                            let handler = handler.clone();
                            let seen = seen.clone();
                            async move {
                                let method = req.method().to_string();
                                let path = req
                                    .uri()
                                    .path_and_query()
                                    .map(|p| p.to_string())
                                    .unwrap_or_default();
                                let token = req
                                    .headers()
                                    .get("X-Auth-Token")
                                    .and_then(|v| v.to_str().ok())
                                    .map(str::to_string);
                                let basic = req.headers().contains_key("Authorization");
                                let bytes = req.into_body().collect().await.unwrap().to_bytes();
                                let body = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
                                let s = Seen {
                                    method,
                                    path,
                                    token,
                                    basic,
                                    body,
                                };
                                seen.lock().unwrap().push(s.clone());
                                let (status, headers, body) = handler(&s);
                                let mut resp = hyper::Response::builder().status(status);
                                for (k, v) in headers {
                                    resp = resp.header(k, v);
                                }
                                Ok::<_, std::convert::Infallible>(
                                    resp.body(Full::new(Bytes::from(body))).unwrap(),
                                )
                            }
                        },
                    );
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(hyper_util::rt::TokioIo::new(tls), service)
                        .await;
                });
            }
        });
        FakeBmc {
            base_url,
            seen,
            pin,
            task,
        }
    }

    fn target(&self) -> Target {
        Target {
            base_url: self.base_url.clone(),
            username: "root".into(),
            password: "0penBmc".into(),
            tls: TlsPolicy::Fingerprint(self.pin.clone()),
            system_id: None,
            timeout: Duration::from_secs(5),
        }
    }

    fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }
}

fn ok(v: Value) -> Reply {
    (
        200,
        vec![("Content-Type", "application/json".into())],
        v.to_string().into_bytes(),
    )
}

fn not_found() -> Reply {
    (
        404,
        vec![],
        br#"{"error":{"message":"not found"}}"#.to_vec(),
    )
}

fn bmcweb_root() -> Value {
    json!({
        "@odata.id": "/redfish/v1",
        "Links": {"Sessions": {"@odata.id": "/redfish/v1/SessionService/Sessions"}},
        "SessionService": {"@odata.id": "/redfish/v1/SessionService"},
        "Systems": {"@odata.id": "/redfish/v1/Systems"}
    })
}

fn bmcweb_system() -> Value {
    json!({
        "@odata.id": "/redfish/v1/Systems/system",
        "Id": "system",
        "PowerState": "On",
        "Actions": {"#ComputerSystem.Reset": {
            "@Redfish.ActionInfo": "/redfish/v1/Systems/system/ResetActionInfo",
            "target": "/redfish/v1/Systems/system/Actions/ComputerSystem.Reset"
        }},
        "SerialConsole": {
            "IPMI": {"ServiceEnabled": true},
            "MaxConcurrentSessions": 15,
            "SSH": {"HotKeySequenceDisplay": "Press ~. to exit console", "Port": 2200, "ServiceEnabled": true}
        }
    })
}

/// bmcweb-like: sessions with tokens "tok1", "tok2", ...; `valid` holds the
/// tokens not yet expired.
fn bmcweb(valid: Arc<Mutex<Vec<String>>>) -> Handler {
    let issued = Arc::new(Mutex::new(0u32));
    Arc::new(move |s: &Seen| {
        let path = s.path.as_str();
        if path == "/redfish/v1/" {
            return ok(bmcweb_root());
        }
        if s.method == "POST" && path == "/redfish/v1/SessionService/Sessions" {
            if s.body != json!({"UserName": "root", "Password": "0penBmc"}) {
                return (401, vec![], Vec::new());
            }
            let mut n = issued.lock().unwrap();
            *n += 1;
            let token = format!("tok{n}");
            valid.lock().unwrap().push(token.clone());
            return (
                201,
                vec![
                    ("X-Auth-Token", token),
                    (
                        "Location",
                        format!("/redfish/v1/SessionService/Sessions/s{n}"),
                    ),
                ],
                json!({"@odata.id": format!("/redfish/v1/SessionService/Sessions/s{n}")})
                    .to_string()
                    .into_bytes(),
            );
        }
        let authorized = s
            .token
            .as_ref()
            .is_some_and(|t| valid.lock().unwrap().contains(t));
        if !authorized {
            return (401, vec![], Vec::new());
        }
        match (s.method.as_str(), path) {
            ("GET", "/redfish/v1/Systems") => {
                ok(json!({"Members": [{"@odata.id": "/redfish/v1/Systems/system"}]}))
            }
            ("GET", "/redfish/v1/Systems/system") => ok(bmcweb_system()),
            ("GET", "/redfish/v1/Systems/system/ResetActionInfo") => ok(json!({
                "Parameters": [{"Name": "ResetType", "Required": true, "DataType": "String",
                    "AllowableValues": ["ForceOff", "ForceOn", "ForceRestart", "GracefulRestart",
                                        "GracefulShutdown", "PowerCycle", "Nmi", "On"]}]
            })),
            ("POST", "/redfish/v1/Systems/system/Actions/ComputerSystem.Reset") => {
                (204, vec![], Vec::new())
            }
            ("DELETE", p) if p.starts_with("/redfish/v1/SessionService/Sessions/") => {
                (200, vec![], Vec::new())
            }
            _ => not_found(),
        }
    })
}

#[tokio::test]
async fn session_login_action_info_relogin_and_logout() {
    let valid = Arc::new(Mutex::new(Vec::new()));
    let bmc = FakeBmc::start(bmcweb(valid.clone())).await;
    let mut client = Client::connect(&bmc.target()).await.unwrap();
    assert_eq!(client.session_token(), Some("tok1"));
    assert_eq!(
        client.system_url(),
        format!("{}/redfish/v1/Systems/system", bmc.base_url)
    );
    let debug = format!("{client:?}");
    assert!(
        !debug.contains("tok1") && !debug.contains("0penBmc"),
        "{debug}"
    );

    let allowed = client.allowed_resets().await.unwrap();
    assert_eq!(allowed.len(), 8);
    assert_eq!(
        client.reset(&[ResetType::PowerCycle]).await.unwrap(),
        ResetType::PowerCycle
    );
    let consoles = client.serial_consoles().await.unwrap();
    assert!(consoles.ssh && consoles.ipmi && !consoles.websocket);
    assert_eq!(consoles.ssh_port, Some(2200));

    // The BMC drops the session (idle timeout): one 401, a new login, the
    // request again.
    valid.lock().unwrap().clear();
    assert_eq!(client.power_state().await.unwrap(), PowerState::On);
    assert_eq!(client.session_token(), Some("tok2"));

    client.logout().await;
    let seen = bmc.seen();
    assert!(seen.iter().all(|s| !s.basic), "no basic auth with sessions");
    let post = seen
        .iter()
        .find(|s| s.method == "POST" && s.path.ends_with("ComputerSystem.Reset"))
        .unwrap();
    assert_eq!(post.body, json!({"ResetType": "PowerCycle"}));
    let last = seen.last().unwrap();
    assert_eq!(
        (
            last.method.as_str(),
            last.path.as_str(),
            last.token.as_deref()
        ),
        (
            "DELETE",
            "/redfish/v1/SessionService/Sessions/s2",
            Some("tok2")
        )
    );
}

#[tokio::test]
async fn wrong_password_at_session_login() {
    let bmc = FakeBmc::start(bmcweb(Arc::new(Mutex::new(Vec::new())))).await;
    let mut t = bmc.target();
    t.password = "wrong".into();
    let e = Client::connect(&t).await.unwrap_err();
    assert_eq!(e.kind(), "auth", "{e}");
    assert!(
        e.to_string()
            .contains("/redfish/v1/SessionService/Sessions"),
        "{e}"
    );
}

#[tokio::test]
async fn failed_connect_does_not_leave_a_session() {
    let bmc = FakeBmc::start(bmcweb(Arc::new(Mutex::new(Vec::new())))).await;
    let mut t = bmc.target();
    t.system_id = Some("other".into());
    let e = Client::connect(&t).await.unwrap_err();
    assert!(e.to_string().contains("/redfish/v1/Systems/system"), "{e}");
    let last = bmc.seen().pop().unwrap();
    assert_eq!(
        (last.method.as_str(), last.path.as_str()),
        ("DELETE", "/redfish/v1/SessionService/Sessions/s1")
    );
}

#[tokio::test]
async fn session_service_404_means_basic_auth() {
    let bmc = FakeBmc::start(Arc::new(|s: &Seen| {
        match (s.method.as_str(), s.path.as_str()) {
            ("GET", "/redfish/v1/") => {
                ok(json!({"SessionService": {"@odata.id": "/redfish/v1/SessionService"}}))
            }
            (_, "/redfish/v1/SessionService/Sessions") => not_found(),
            ("GET", "/redfish/v1/Systems") if s.basic => {
                ok(json!({"Members": [{"@odata.id": "/redfish/v1/Systems/1"}]}))
            }
            ("GET", "/redfish/v1/Systems/1") if s.basic => ok(json!({"PowerState": "PoweringOn"})),
            _ => (401, vec![], Vec::new()),
        }
    }))
    .await;
    let mut client = Client::connect(&bmc.target()).await.unwrap();
    assert_eq!(client.session_token(), None);
    assert_eq!(client.power_state().await.unwrap(), PowerState::PoweringOn);
    client.logout().await;
    assert!(!bmc.seen().iter().any(|s| s.method == "DELETE"));
}

#[tokio::test]
async fn oversized_bodies_and_escaping_links_are_refused() {
    let handler: Handler = Arc::new(|s: &Seen| match s.path.as_str() {
        "/redfish/v1/" => ok(json!({"Systems": {"@odata.id": "/redfish/v1/Systems"}})),
        "/redfish/v1/Systems" => ok(json!({"Members": [{"@odata.id": "/redfish/v1/Systems/a"}]})),
        "/redfish/v1/Systems/a" => ok(json!({
            "Links": {"Chassis": [{"@odata.id": "/redfish/v1/../../admin/Chassis"}]},
            "Actions": {"#ComputerSystem.Reset": {"target": "https://elsewhere.example/redfish/v1/x"}}
        })),
        _ => (200, vec![], vec![b' '; MAX_BODY + 1]),
    });
    let bmc = FakeBmc::start(handler).await;
    let mut client = Client::connect(&bmc.target()).await.unwrap();
    let e = client.reset(&[ResetType::On]).await.unwrap_err();
    assert_eq!(e.kind(), "protocol");
    assert!(e.to_string().contains("not on this BMC"), "{e}");
    // A chassis link out of /redfish/v1 is skipped, never requested.
    assert_eq!(client.sensors().await.unwrap(), []);
    assert!(!bmc.seen().iter().any(|s| s.path.contains("admin")));

    // A body over the bound: the call fails, it does not buffer it all.
    let big = FakeBmc::start(Arc::new(|_: &Seen| {
        (200, vec![], vec![b'x'; MAX_BODY + 10])
    }))
    .await;
    let e = Client::connect(&big.target()).await.unwrap_err();
    assert!(e.to_string().contains("more than 4 MiB"), "{e}");
}

#[test]
fn target_debug_hides_the_password() {
    let t = Target {
        base_url: "https://bmc".into(),
        username: "root".into(),
        password: "s3cret".into(),
        tls: TlsPolicy::Insecure,
        system_id: None,
        timeout: Duration::from_secs(1),
    };
    let d = format!("{t:?}");
    assert!(!d.contains("s3cret") && d.contains("root"), "{d}");
}

/// bmcweb's shapes for the toolbox, behind basic auth: LocationIndicatorActive
/// on the system, `#Manager.Reset` with a ResetActionInfo, an EventLog
/// with `#LogService.ClearLog` next to a Journal that must be left alone.
fn bmcweb_toolbox() -> Handler {
    Arc::new(|s: &Seen| {
        let sys = "/redfish/v1/Systems/system";
        match (s.method.as_str(), s.path.as_str()) {
            ("GET", "/redfish/v1/") => ok(json!({"Systems": {"@odata.id": "/redfish/v1/Systems"}})),
            ("GET", "/redfish/v1/Systems") => ok(json!({"Members": [{"@odata.id": sys}]})),
            ("GET", p) if p == sys => ok(json!({
                "@odata.id": sys, "Id": "system",
                "Manufacturer": "IBM", "Model": "9105-22A", "SerialNumber": "7812345",
                "BiosVersion": "open-power-P10-v2.3", "LocationIndicatorActive": false,
                "LogServices": {"@odata.id": "/redfish/v1/Systems/system/LogServices"},
                "Links": {"ManagedBy": [{"@odata.id": "/redfish/v1/Managers/bmc"}],
                          "Chassis": [{"@odata.id": "/redfish/v1/Chassis/chassis"}]}
            })),
            ("PATCH", p) if p == sys => (204, vec![], Vec::new()),
            ("GET", "/redfish/v1/Chassis/chassis") => ok(json!({
                "ChassisType": "RackMount", "PartNumber": "02CY123", "SerialNumber": "Y1234"
            })),
            ("GET", "/redfish/v1/Managers/bmc") => ok(json!({
                "FirmwareVersion": "2.14.0-dev", "Model": "OpenBmc",
                "Actions": {"#Manager.Reset": {
                    "@Redfish.ActionInfo": "/redfish/v1/Managers/bmc/ResetActionInfo",
                    "target": "/redfish/v1/Managers/bmc/Actions/Manager.Reset"}}
            })),
            ("GET", "/redfish/v1/Managers/bmc/ResetActionInfo") => ok(json!({
                "Parameters": [{"Name": "ResetType", "AllowableValues": ["GracefulRestart", "ForceRestart"]}]
            })),
            ("POST", "/redfish/v1/Managers/bmc/Actions/Manager.Reset") => (204, vec![], Vec::new()),
            ("GET", "/redfish/v1/Systems/system/LogServices") => ok(json!({"Members": [
                {"@odata.id": "/redfish/v1/Systems/system/LogServices/EventLog"},
                {"@odata.id": "/redfish/v1/Systems/system/LogServices/Journal"}
            ]})),
            ("GET", "/redfish/v1/Systems/system/LogServices/EventLog") => ok(json!({
                "Id": "EventLog",
                "Entries": {"@odata.id": "/redfish/v1/Systems/system/LogServices/EventLog/Entries"},
                "Actions": {"#LogService.ClearLog": {
                    "target": "/redfish/v1/Systems/system/LogServices/EventLog/Actions/LogService.ClearLog"}}
            })),
            ("GET", "/redfish/v1/Systems/system/LogServices/Journal") => ok(json!({
                "Id": "Journal",
                "Entries": {"@odata.id": "/redfish/v1/Systems/system/LogServices/Journal/Entries"},
                "Actions": {"#LogService.ClearLog": {
                    "target": "/redfish/v1/Systems/system/LogServices/Journal/Actions/LogService.ClearLog"}}
            })),
            ("POST", p) if p.ends_with("LogService.ClearLog") => (204, vec![], Vec::new()),
            _ => not_found(),
        }
    })
}

#[tokio::test]
async fn toolbox_on_bmcweb_shapes() {
    let bmc = FakeBmc::start(bmcweb_toolbox()).await;
    let mut client = Client::connect(&bmc.target()).await.unwrap();

    let fw = client.firmware().await.unwrap();
    assert_eq!(fw.bmc.as_deref(), Some("2.14.0-dev"));
    assert_eq!(fw.host.as_deref(), Some("open-power-P10-v2.3"));
    let (product, chassis) = client.inventory().await.unwrap();
    assert_eq!(
        product[1],
        ("Product Name".to_string(), "9105-22A".to_string())
    );
    assert_eq!(
        chassis[0],
        ("Chassis Type".to_string(), "RackMount".to_string())
    );

    // The fake always reads false: setting true is caught on read-back.
    let err = client.set_identify(true).await.unwrap_err();
    assert!(err.to_string().contains("still reads off"), "{err}");
    assert!(
        client
            .set_identify(false)
            .await
            .unwrap()
            .starts_with("LocationIndicatorActive false")
    );

    assert_eq!(
        client.manager_reset().await.unwrap(),
        ResetType::GracefulRestart
    );
    assert_eq!(client.clear_event_log().await.unwrap(), 1);

    let seen = bmc.seen();
    let bodies: Vec<(String, Value)> = seen
        .iter()
        .filter(|s| s.method != "GET")
        .map(|s| (s.path.clone(), s.body.clone()))
        .collect();
    assert_eq!(
        bodies,
        [
            (
                "/redfish/v1/Systems/system".to_string(),
                json!({"LocationIndicatorActive": true})
            ),
            (
                "/redfish/v1/Systems/system".to_string(),
                json!({"LocationIndicatorActive": false})
            ),
            (
                "/redfish/v1/Managers/bmc/Actions/Manager.Reset".to_string(),
                json!({"ResetType": "GracefulRestart"})
            ),
            (
                "/redfish/v1/Systems/system/LogServices/EventLog/Actions/LogService.ClearLog"
                    .to_string(),
                json!({})
            ),
        ],
        "the Journal is never cleared"
    );
}

/// The engine runs these in spawned tasks.
#[allow(dead_code)]
fn futures_are_send(client: &mut Client, target: &Target) {
    fn send<T: Send>(_: T) {}
    send(Client::connect(target));
    send(client.power_state());
    send(client.reset(&[ResetType::On]));
    send(client.set_boot_override(BootTarget::Pxe, OverrideEnabled::Once));
    send(client.sensors());
    send(client.event_log());
    send(client.clear_event_log());
    send(client.inventory());
    send(client.firmware());
    send(client.set_identify(true));
    send(client.manager_reset());
}
