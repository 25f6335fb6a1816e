//! The lifecycle end to end through the CLI: `petitlab serve` (boot files,
//! agent API), `petitlab sim` (BMCs and virtual petitboot hosts that really
//! fetch their configs over HTTP or TFTP and run the deploy agent), and
//! `petitlab deploy` / `undeploy`. The store, the served trees, the DHCP
//! files and the virtual disks are checked at each step.

mod support;

use std::collections::BTreeSet;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use petitlab::engine::store::Store;
use petitlab::inventory::derived_uuid;
use support::cast::{console_path, console_text};
use support::lab::{Daemon, ok, petitlab, show};
use support::virtual_lab::{Proto, VNode, VirtualLab};

const DEPLOY: &str = "[deploy]\npower_timeout = 10\ncallback_timeout = 60\nheartbeat = 2\n\
                      write_timeout = 60\nboot_timeout = 60\n";

fn nodes() -> Vec<VNode> {
    vec![
        VNode::new("p9-http-local", Proto::Http, false, 0),
        VNode::new("p9-tftp-netboot", Proto::Tftp, true, 1),
        VNode::new("p8-tftp-local", Proto::Tftp, false, 2),
    ]
}

fn states(v: &VirtualLab) -> Vec<(String, String)> {
    let store = Store::open(&v.store()).unwrap();
    store
        .nodes()
        .unwrap()
        .into_iter()
        .map(|r| (r.name, r.state))
        .collect()
}

fn root(v: &VirtualLab, proto: Proto) -> std::path::PathBuf {
    v.state().join(match proto {
        Proto::Http => "http",
        Proto::Tftp => "tftp",
    })
}

/// While the deploy runs: each node's deploy config (with its agent token)
/// and DHCP options are in place when the node waits for its agent.
fn watch_deploy(v: &VirtualLab) -> (BTreeSet<String>, Vec<String>) {
    let mut checked = BTreeSet::new();
    let mut tokens = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    while checked.len() < v.nodes.len() && Instant::now() < deadline {
        let store = Store::open(&v.store()).unwrap();
        for record in store.nodes().unwrap() {
            if record.state != "wait-callback" || checked.contains(&record.name) {
                continue;
            }
            let node = v.nodes.iter().find(|n| n.name == record.name).unwrap();
            let uuid = derived_uuid(&node.name);
            let config =
                std::fs::read_to_string(root(v, node.proto).join(format!("{uuid}/config")))
                    .unwrap_or_else(|e| {
                        panic!("{}: no deploy config while waiting: {e}", node.name)
                    });
            assert!(
                config.contains(&format!(
                    "petitlab.api=http://127.0.0.1:{}/v1/",
                    v.http_port
                )) && config.contains("petitlab.token="),
                "{}: {config}",
                node.name
            );
            assert!(config.contains("deploy_kernel"), "{config}");
            let opts =
                std::fs::read_to_string(v.state().join(format!("dnsmasq/opts/petitlab-{uuid}")))
                    .unwrap();
            assert!(opts.contains(",209,") && opts.contains(",210,"), "{opts}");
            // The token is a secret of this deploy: the store keeps its hash only.
            let token = config
                .split("petitlab.token=")
                .nth(1)
                .unwrap()
                .split_whitespace()
                .next()
                .unwrap();
            let raw = std::fs::read(v.store()).unwrap();
            assert!(
                !String::from_utf8_lossy(&raw).contains(token),
                "the store holds the token itself"
            );
            tokens.push(token.to_string());
            checked.insert(record.name);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    (checked, tokens)
}

#[test]
fn three_virtual_nodes_deploy_to_active_and_undeploy_to_available() {
    let v = VirtualLab::new(nodes(), 300 << 10, DEPLOY);
    let _serve = Daemon::start(&v.lab, &["serve"]);
    let _sim = Daemon::start(&v.lab, &["sim", "--line-delay-ms", "20"]);
    let names: Vec<&str> = v.nodes.iter().map(|n| n.name.as_str()).collect();

    let deploy = Command::new(env!("CARGO_BIN_EXE_petitlab"))
        .arg("--lab")
        .arg(&v.lab)
        .arg("deploy")
        .args(&names)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let (seen_waiting, tokens) = watch_deploy(&v);
    let out = deploy.wait_with_output().unwrap();
    let text = show(&out);
    assert!(out.status.success(), "{text}");
    assert_eq!(
        seen_waiting.len(),
        3,
        "saw {seen_waiting:?} in wait-callback\n{text}"
    );
    for name in &names {
        assert!(
            text.contains(&format!("{name}: deploy done: {name} is active")),
            "{text}"
        );
        assert!(text.contains(&format!("{name}: wait-callback")), "{text}");
        assert!(
            text.contains(&format!("{name}: write-image 100%"))
                || text.contains(&format!("{name}: write-image")),
            "{text}"
        );
    }

    // Active: the store, the disks, the served files, the DHCP options.
    let expect_all = |state: &str| {
        let now = states(&v);
        assert_eq!(now.len(), 3);
        assert!(now.iter().all(|(_, s)| s == state), "{now:?}");
    };
    expect_all("active");
    let store = Store::open(&v.store()).unwrap();
    assert!(store.reservations().unwrap().is_empty());
    for node in &v.nodes {
        assert!(
            store.deploy(&node.name).unwrap().is_none(),
            "{}: the token is dead",
            node.name
        );
        let disk = std::fs::read(v.disk(&node.name)).unwrap();
        assert!(
            disk == std::fs::read(v.image(&node.name)).unwrap(),
            "{}: disk differs from the image",
            node.name
        );
        let log = console_text(&console_path(&v.state(), &node.name));
        assert!(
            log.contains("Performing kexec reboot") && log.contains("login: "),
            "{}: {log}",
            node.name
        );
        assert!(
            log.contains(&format!("Welcome to Virtual Linux for {}", node.name)),
            "{log}"
        );
        assert!(
            !log.contains("s3cret-bmc"),
            "the BMC password reached the log"
        );
        // The deploy kernel's command line is on the console; its token is not in the log.
        assert!(log.contains("petitlab.token=<redacted>"), "{log}");
        assert!(
            tokens.iter().all(|t| !log.contains(t.as_str())),
            "a token reached the log"
        );
    }
    let http = VirtualLab::files_under(&root(&v, Proto::Http));
    assert!(
        http.is_empty(),
        "the image and deploy files are unpublished: {http:?}"
    );
    let netboot = derived_uuid("p9-tftp-netboot");
    let tftp = VirtualLab::files_under(&root(&v, Proto::Tftp));
    let expected: Vec<String> = ["config", "kernel", "ramdisk"]
        .iter()
        .map(|f| format!("{netboot}/{f}"))
        .chain(std::iter::once(format!(
            "pxelinux.cfg/01-{}",
            v.nodes[1].mac.replace(':', "-")
        )))
        .collect();
    let mut expected_sorted = expected.clone();
    expected_sorted.sort();
    assert_eq!(tftp, expected_sorted, "only the netboot instance is served");
    let config =
        std::fs::read_to_string(root(&v, Proto::Tftp).join(format!("{netboot}/config"))).unwrap();
    assert!(
        config.contains("root=/dev/sda2") && !config.contains("petitlab.token"),
        "{config}"
    );
    let opts = VirtualLab::files_under(&v.state().join("dnsmasq/opts"));
    assert_eq!(
        opts,
        [format!("petitlab-{netboot}")],
        "local nodes get no petitboot options"
    );

    let history = ok(&v.lab, &["history", "p9-http-local"]);
    for action in [
        "deploy",
        "wait-for-agent",
        "agent-lookup",
        "agent-called-back",
        "agent-done",
        "succeed",
    ] {
        assert!(
            history.contains(&format!("  {action}  ")),
            "{action} missing:\n{history}"
        );
    }

    // Undeploy: powered off, everything the deploy wrote removed.
    let out = petitlab(&v.lab, &[&["undeploy"][..], &names].concat());
    assert!(out.status.success(), "{}", show(&out));
    expect_all("available");
    for proto in [Proto::Http, Proto::Tftp] {
        let left = VirtualLab::files_under(&root(&v, proto));
        assert!(left.is_empty(), "{proto:?} root still has {left:?}");
    }
    assert!(VirtualLab::files_under(&v.state().join("dnsmasq/opts")).is_empty());
    // dnsmasq never forgets a host line, so released MACs are re-tagged to a
    // tag with no options rather than deleted (see src/dhcp/dnsmasq.rs).
    for host in VirtualLab::files_under(&v.state().join("dnsmasq/hosts")) {
        let text = std::fs::read_to_string(v.state().join("dnsmasq/hosts").join(&host)).unwrap();
        let lines: Vec<&str> = text.lines().filter(|l| !l.starts_with('#')).collect();
        assert!(
            lines.iter().all(|l| l.ends_with(",set:petitlab-released")),
            "{text}"
        );
    }
    let status = ok(&v.lab, &["--json", "status"]);
    let rows: serde_json::Value = serde_json::from_str(&status).unwrap();
    for row in rows.as_array().unwrap() {
        assert_eq!(row["node"]["state"], "available", "{row}");
        assert_eq!(row["node"]["power_on"], false, "{row}");
        assert_eq!(row["node"]["boot_device"], "none", "{row}");
        assert!(row["reservation"].is_null(), "{row}");
    }
    let power = ok(&v.lab, &["power", "p9-http-local", "status"]);
    assert!(power.contains("off"), "{power}");
}
