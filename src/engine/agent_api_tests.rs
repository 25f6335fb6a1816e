use std::net::SocketAddr;
use std::time::Duration;

use super::*;
use crate::engine::store::NewDeploy;

const LAB: &str = r#"
state_dir = "state"
[http]
base_url = "http://127.0.0.1:8080/"
[[node]]
name = "n1"
macs = ["52:54:00:00:00:01", "52:54:00:00:00:11"]
[node.bmc]
host = "127.0.0.1"
username = "u"
password = "pw"
[node.deploy]
kernel = "k"
ramdisk = "r"
[node.instance]
image = "img"
"#;

struct Fixture {
    _dir: tempfile::TempDir,
    api: AgentApi,
    store: Arc<Mutex<Store>>,
}

const TOKEN: &str = "00112233445566778899aabbccddeeff";
const SHA: &str = "ab12";

fn fixture(deploying: bool) -> Fixture {
    fixture_with(LAB, deploying)
}

fn fixture_with(lab_toml: &str, deploying: bool) -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    for f in ["k", "r", "img"] {
        std::fs::write(dir.path().join(f), f).unwrap();
    }
    let path = dir.path().join("lab.toml");
    std::fs::write(&path, lab_toml).unwrap();
    let (lab, _) = crate::inventory::load_valid(&path).unwrap();
    let mut store = Store::open_in_memory().unwrap();
    store.ensure_nodes(&["n1"], "wait-callback").unwrap();
    if deploying {
        store
            .begin_deploy(&NewDeploy {
                node: "n1".into(),
                token_sha256: token_hash(TOKEN),
                image_url: "http://127.0.0.1:8080/u/image".into(),
                image_size: 4096,
                image_sha256: SHA.into(),
                image_name: "disk.raw".into(),
            })
            .unwrap();
    }
    let store = Arc::new(Mutex::new(store));
    Fixture {
        _dir: dir,
        api: AgentApi::new(Arc::new(lab), store.clone()),
        store,
    }
}

fn request(method: &str, path: &str, token: Option<&str>, body: &str) -> ApiRequest {
    let mut headers = vec![("Host".to_string(), b"x".to_vec())];
    if let Some(t) = token {
        headers.push(("x-petitlab-token".to_string(), t.as_bytes().to_vec()));
    }
    ApiRequest {
        method: method.into(),
        path: path.into(),
        query: None,
        headers,
        body: body.as_bytes().to_vec(),
        peer: SocketAddr::from(([127, 0, 0, 9], 4000)),
        node: None,
    }
}

impl Fixture {
    fn call(&self, path: &str, token: Option<&str>, body: &str) -> (u16, String) {
        let r = self.api.handle(&request("POST", path, token, body));
        (r.status, String::from_utf8(r.body).unwrap())
    }

    fn rejections(&self) -> Vec<String> {
        all_rejections(self)
            .into_iter()
            .map(|(_, who, detail)| format!("{who} {detail}"))
            .collect()
    }
}

#[test]
fn ping_needs_no_token_and_other_methods_are_refused() {
    let f = fixture(false);
    let r = f.api.handle(&request("GET", "/v1/ping", None, ""));
    assert_eq!((r.status, r.body.as_slice()), (200, &b"ok=petitlab\n"[..]));
    assert_eq!(
        f.api.handle(&request("GET", "/v1/lookup", None, "")).status,
        405
    );
    assert_eq!(f.call("/v1/nope", Some(TOKEN), "node=n1").0, 404);
}

#[test]
fn lookup_by_mac_with_the_token_starts_the_agent_side() {
    let f = fixture(true);
    let (status, body) = f.call("/v1/lookup", Some(TOKEN), "mac=52:54:00:00:00:11\n");
    assert_eq!(status, 200, "{body}");
    for line in [
        "node=n1",
        "image_url=http://127.0.0.1:8080/u/image",
        "image_size=4096",
        &format!("image_sha256={SHA}"),
        "image_name=disk.raw",
        "heartbeat=10",
    ] {
        assert!(body.lines().any(|l| l == line), "{line} missing in {body}");
    }
    let deploy = f.store.lock().unwrap().deploy("n1").unwrap().unwrap();
    assert!(deploy.looked_up_at.is_some());
    assert!(f.rejections().is_empty());
}

#[test]
fn missing_and_wrong_tokens_are_refused_and_audited() {
    let f = fixture(true);
    let (status, body) = f.call("/v1/lookup", None, "mac=52:54:00:00:00:01");
    assert_eq!(status, 401, "{body}");
    assert!(body.starts_with("error="), "{body}");
    let wrong = "ffffffffffffffffffffffffffffffff";
    let r = f.api.handle(&from(
        [127, 0, 0, 10],
        "/v1/heartbeat",
        Some(wrong),
        b"node=n1",
    ));
    assert_eq!(r.status, 403);
    let body = String::from_utf8(r.body).unwrap();
    assert!(body.contains("not that of a deploy in progress"), "{body}");
    let audited = all_rejections(&f);
    assert_eq!(audited.len(), 2, "{audited:?}");
    assert_eq!(audited[0].1, "agent 127.0.0.9");
    assert_eq!(audited[1].1, "agent 127.0.0.10");
    // The rows (not the answers) name the node the calls claim to be for.
    assert!(
        audited.iter().all(|a| a.0.as_deref() == Some("n1")),
        "{audited:?}"
    );
    assert!(
        audited[1].2.contains("node n1: wrong deploy token"),
        "{audited:?}"
    );
    assert!(
        !audited.iter().any(|a| a.2.contains(wrong)),
        "tokens are not logged: {audited:?}"
    );
    let deploy = f.store.lock().unwrap().deploy("n1").unwrap().unwrap();
    assert!(deploy.looked_up_at.is_none() && deploy.agent_seen_at.is_none());
}

#[test]
fn no_deploy_in_progress_means_no_token_is_valid() {
    let f = fixture(false);
    let (status, body) = f.call("/v1/lookup", Some(TOKEN), "mac=52:54:00:00:00:01");
    assert_eq!(status, 403, "{body}");
    assert!(body.contains("not that of a deploy in progress"), "{body}");
    assert_eq!(all_rejections(&f).len(), 1);
}

#[test]
fn progress_done_and_a_second_report_refused() {
    let f = fixture(true);
    let (status, _) = f.call(
        "/v1/progress",
        Some(TOKEN),
        "node=n1\nwritten=1024\ntotal=4096\n",
    );
    assert_eq!(status, 200);
    let deploy = f.store.lock().unwrap().deploy("n1").unwrap().unwrap();
    assert_eq!((deploy.written, deploy.total), (1024, 4096));
    assert_eq!(
        f.call("/v1/progress", Some(TOKEN), "node=n1\nwritten=x\ntotal=1")
            .0,
        400
    );
    assert_eq!(
        f.call("/v1/done", Some(TOKEN), "node=n1").0,
        400,
        "sha256 is required"
    );

    let (status, body) = f.call(
        "/v1/done",
        Some(TOKEN),
        &format!("node=n1\nsha256={}", SHA.to_uppercase()),
    );
    assert_eq!(status, 200, "{body}");
    let deploy = f.store.lock().unwrap().deploy("n1").unwrap().unwrap();
    assert_eq!(
        deploy.result,
        Some(AgentResult::Done { sha256: SHA.into() })
    );
    let (status, body) = f.call("/v1/failed", Some(TOKEN), "node=n1\nreason=late");
    assert_eq!(status, 409, "{body}");
}

#[test]
fn a_checksum_mismatch_fails_the_deploy_naming_both_sums() {
    let f = fixture(true);
    let (status, body) = f.call("/v1/done", Some(TOKEN), "node=n1\nsha256=ffff");
    assert_eq!(status, 409);
    assert!(body.contains("ffff") && body.contains(SHA), "{body}");
    let deploy = f.store.lock().unwrap().deploy("n1").unwrap().unwrap();
    assert!(matches!(deploy.result, Some(AgentResult::Failed { .. })));
}

#[test]
fn unknown_macs_names_and_garbage_bodies() {
    let f = fixture(true);
    // With the token: a MAC or name that is not the token's node is refused
    // (403, audited), whether or not another node has it.
    let (status, body) = f.call("/v1/lookup", Some(TOKEN), "mac=52:54:00:99:99:99");
    assert_eq!(status, 403, "{body}");
    assert!(body.contains("none of mac=52:54:00:99:99:99"), "{body}");
    assert_eq!(f.call("/v1/lookup", Some(TOKEN), "mac=not-a-mac").0, 400);
    assert_eq!(f.call("/v1/lookup", Some(TOKEN), "").0, 400);
    assert_eq!(f.call("/v1/heartbeat", Some(TOKEN), "node=ghost").0, 403);
    assert_eq!(f.call("/v1/heartbeat", Some(TOKEN), "just words").0, 400);
    let r = f.api.handle(&ApiRequest {
        body: vec![0xff, 0xfe],
        ..request("POST", "/v1/heartbeat", Some(TOKEN), "")
    });
    assert_eq!(r.status, 400);
}

#[test]
fn token_helpers() {
    let t = new_token();
    assert_eq!(t.len(), 32);
    assert!(t.bytes().all(|b| b.is_ascii_hexdigit()));
    assert_ne!(t, new_token());
    // Computed by coreutils: echo -n 00112233445566778899aabbccddeeff | sha256sum
    assert_eq!(
        token_hash(TOKEN),
        "5947d7c33d783f94b3b4c1a96ebc8991ed28f1b069b71e03376cba8caa98a720"
    );
    assert_eq!(
        ramdisk_args("http://h/v1/", "ab"),
        ["petitlab.api=http://h/v1/", "petitlab.token=ab"]
    );
}

#[test]
fn an_iscsi_ramdisk_reports_its_target_and_hears_how_far_petitlab_got() {
    let iscsi_lab = LAB.replace("[node.bmc]", "deploy_interface = \"iscsi\"\n[node.bmc]");
    let f = fixture_with(&iscsi_lab, true);
    let (status, body) = f.call("/v1/lookup", Some(TOKEN), "mac=52:54:00:00:00:01\n");
    assert_eq!(status, 200, "{body}");
    assert!(
        body.lines().any(|l| l == "deploy_interface=iscsi"),
        "{body}"
    );
    assert!(
        !body.contains("image_url="),
        "petitlab writes the image itself: {body}"
    );
    let beat = |f: &Fixture| f.call("/v1/heartbeat", Some(TOKEN), "node=n1").1;
    assert_eq!(beat(&f), "ok=1\niscsi=waiting\n");

    for (bad, why) in [
        (
            "target=disk1\nportal=127.0.0.1:3260\nlun=1",
            "not an iSCSI name",
        ),
        (
            "target=iqn.2026-11.x:d\nportal=localhost\nlun=1",
            "not ip:port",
        ),
        (
            "target=iqn.2026-11.x:d\nportal=127.0.0.1:3260\nlun=99999",
            "not a LUN",
        ),
        (
            "target=iqn.2026-11.x:d\nportal=127.0.0.1:3260",
            "missing lun=",
        ),
    ] {
        let (status, body) = f.call("/v1/iscsi", Some(TOKEN), &format!("node=n1\n{bad}"));
        assert_eq!(status, 400, "{bad}: {body}");
        assert!(body.contains(why), "{bad}: {body}");
    }
    let good = "node=n1\ntarget=iqn.2026-11.org.petitlab.sim:n1\nportal=127.0.0.1:3260\nlun=1\n";
    assert_eq!(f.call("/v1/iscsi", None, good).0, 401);
    assert_eq!(f.call("/v1/iscsi", Some(TOKEN), good).0, 200);
    let deploy = f.store.lock().unwrap().deploy("n1").unwrap().unwrap();
    let target = deploy.iscsi.unwrap();
    assert_eq!(
        (target.target.as_str(), target.portal.as_str(), target.lun),
        ("iqn.2026-11.org.petitlab.sim:n1", "127.0.0.1:3260", 1)
    );
    assert_eq!(beat(&f), "ok=1\niscsi=writing\n");
    f.store.lock().unwrap().iscsi_written("n1", SHA).unwrap();
    assert_eq!(beat(&f), "ok=1\niscsi=written\n");
    let audited = f.store.lock().unwrap().last_events(Some("n1"), 10).unwrap();
    assert!(audited.iter().any(|e| e.action == "agent-iscsi"
        && e.detail == "target iqn.2026-11.org.petitlab.sim:n1 portal 127.0.0.1:3260 lun 1"));
}

#[test]
fn an_agent_node_refuses_an_iscsi_report_and_its_heartbeat_stays_plain() {
    let f = fixture(true);
    let good = "node=n1\ntarget=iqn.2026-11.x:d\nportal=127.0.0.1:3260\nlun=1\n";
    let (status, body) = f.call("/v1/iscsi", Some(TOKEN), good);
    assert_eq!(status, 409, "{body}");
    assert!(body.contains("deploy_interface is agent"), "{body}");
    assert_eq!(f.call("/v1/heartbeat", Some(TOKEN), "node=n1").1, "ok=1\n");
}

fn from(peer: [u8; 4], path: &str, token: Option<&str>, body: &[u8]) -> ApiRequest {
    ApiRequest {
        body: body.to_vec(),
        peer: SocketAddr::from((peer, 4000)),
        ..request("POST", path, token, "")
    }
}

/// Every `agent-rejected` row, whatever node (if any) it names.
fn all_rejections(f: &Fixture) -> Vec<(Option<String>, String, String)> {
    let store = f.store.lock().unwrap();
    store
        .last_events(None, 10_000)
        .unwrap()
        .into_iter()
        .filter(|e| e.action == "agent-rejected")
        .map(|e| (e.node, e.who, e.detail))
        .collect()
}

#[test]
fn without_a_valid_token_every_body_gets_the_same_answer_and_no_node_name() {
    let f = fixture(true);
    let bodies: [(&str, &[u8]); 8] = [
        ("/v1/lookup", b"mac=52:54:00:00:00:01"),
        ("/v1/lookup", b"mac=52:54:00:99:99:99"),
        ("/v1/lookup", b"mac=not-a-mac"),
        ("/v1/lookup", b""),
        ("/v1/heartbeat", b"node=n1"),
        ("/v1/heartbeat", b"node=ghost"),
        ("/v1/progress", b"just words"),
        ("/v1/done", &[0xff, 0xfe]),
    ];
    let wrong = "ffffffffffffffffffffffffffffffff";
    for (token, status) in [(None, 401), (Some(wrong), 403)] {
        let answers: Vec<(u16, String)> = bodies
            .iter()
            .enumerate()
            .map(|(i, (path, body))| {
                // A peer each, so every refusal is recorded on its own.
                let r = f.api.handle(&from([10, 0, 0, i as u8], path, token, body));
                (r.status, String::from_utf8(r.body).unwrap())
            })
            .collect();
        for ((path, body), answer) in bodies.iter().zip(&answers) {
            let shown = String::from_utf8_lossy(body);
            assert_eq!(answer.0, status, "{token:?} {path} {shown:?}: {}", answer.1);
            assert_eq!(answer.1, answers[0].1, "{token:?} {path} {shown:?}");
            assert!(
                !answer.1.contains("n1") && !answer.1.contains("ghost"),
                "{token:?} {path} {shown:?}: {}",
                answer.1
            );
        }
    }
}

#[test]
fn refusals_of_malformed_or_unknown_calls_are_audited() {
    let f = fixture(true);
    let r = f
        .api
        .handle(&from([10, 0, 0, 1], "/v1/lookup", None, b"junk"));
    assert_eq!(r.status, 401);
    let r = f.api.handle(&from(
        [10, 0, 0, 2],
        "/v1/heartbeat",
        Some("ffffffffffffffffffffffffffffffff"),
        b"node=ghost",
    ));
    assert_eq!(r.status, 403);
    let audited = all_rejections(&f);
    assert_eq!(audited.len(), 2, "{audited:?}");
    assert!(audited[0].1 == "agent 10.0.0.1" && audited[0].2.contains("lookup"));
    assert!(audited[1].1 == "agent 10.0.0.2" && audited[1].2.contains("heartbeat"));
    assert!(audited.iter().all(|a| a.0.is_none()), "{audited:?}");
}

#[test]
fn a_flood_of_refused_calls_from_one_peer_adds_a_bounded_number_of_rows() {
    let f = fixture(true);
    for _ in 0..3000 {
        let r = f
            .api
            .handle(&from([10, 0, 0, 7], "/v1/heartbeat", None, b"node=n1"));
        assert_eq!(r.status, 401);
    }
    let audited = all_rejections(&f);
    assert!(audited.len() <= 2, "{} rows for one peer", audited.len());
    assert!(!audited.is_empty(), "the first refusal is recorded");
}

#[test]
fn progress_beyond_its_total_is_refused_naming_written() {
    let f = fixture(true);
    let (status, body) = f.call(
        "/v1/progress",
        Some(TOKEN),
        "node=n1\nwritten=5000\ntotal=4096\n",
    );
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("written=5000"), "{body}");
    let deploy = f.store.lock().unwrap().deploy("n1").unwrap().unwrap();
    assert_eq!((deploy.written, deploy.total), (0, 0));
}

#[test]
fn a_valid_token_answers_only_for_its_own_node() {
    let two = format!(
        "{LAB}\n[[node]]\nname = \"n2\"\nmacs = [\"52:54:00:00:00:02\"]\n\
         [node.bmc]\nhost = \"127.0.0.1\"\nusername = \"u\"\npassword = \"pw\"\n\
         [node.deploy]\nkernel = \"k\"\nramdisk = \"r\"\n[node.instance]\nimage = \"img\"\n"
    );
    let f = fixture_with(&two, true);
    // n2 exists and ghost does not: the answers must not tell them apart.
    let (s2, b2) = f.call("/v1/heartbeat", Some(TOKEN), "node=n2");
    let (sg, bg) = f.call("/v1/heartbeat", Some(TOKEN), "node=ghost");
    assert_eq!((s2, sg), (403, 403), "{b2} / {bg}");
    assert_eq!(b2.replace("n2", "X"), bg.replace("ghost", "X"));
    let (s, b) = f.call("/v1/lookup", Some(TOKEN), "mac=52:54:00:00:00:02");
    let (su, bu) = f.call("/v1/lookup", Some(TOKEN), "mac=52:54:00:99:99:99");
    assert_eq!((s, su), (403, 403), "{b} / {bu}");
    assert!(!b.contains("n2"), "{b}");
}

#[test]
fn a_closed_window_leaves_one_row_with_the_count() {
    let dir = fixture(true);
    let lab = dir.api.lab.clone();
    let api = AgentApi::with_refusal_interval(lab, dir.store.clone(), Duration::from_millis(300));
    let peer = [10, 0, 0, 7];
    for _ in 0..500 {
        assert_eq!(
            api.handle(&from(peer, "/v1/lookup", None, b"x")).status,
            401
        );
    }
    std::thread::sleep(Duration::from_millis(400));
    // Any later call closes the window; the peer's next refusal opens another.
    assert_eq!(
        api.handle(&request("GET", "/v1/ping", None, "")).status,
        200
    );
    assert_eq!(
        api.handle(&from(peer, "/v1/lookup", None, b"x")).status,
        401
    );
    let audited = all_rejections(&dir);
    let details: Vec<&str> = audited.iter().map(|a| a.2.as_str()).collect();
    assert_eq!(audited.len(), 3, "{details:#?}");
    assert!(
        details[0].starts_with("lookup from 10.0.0.7:4000: "),
        "{details:?}"
    );
    assert!(
        details[1].starts_with("499 more refused calls from 10.0.0.7 in "),
        "{details:?}"
    );
    assert!(details[1].contains("header required"), "{details:?}");
    assert!(
        details[2].starts_with("lookup from 10.0.0.7:4000: "),
        "{details:?}"
    );
    // The server stopping writes what it still counts.
    for _ in 0..9 {
        api.handle(&from(peer, "/v1/lookup", None, b"x"));
    }
    drop(api);
    let audited = all_rejections(&dir);
    assert_eq!(audited.len(), 4);
    assert!(
        audited[3]
            .2
            .starts_with("9 more refused calls from 10.0.0.7"),
        "{:?}",
        audited[3]
    );
}
