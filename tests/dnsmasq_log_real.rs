//! petitlab's reading of dnsmasq's DHCP log against a real dnsmasq
//! (Debian's dnsmasq-base) writing `--log-dhcp --log-facility=FILE`, and a
//! real client (busybox udhcpc asking for 209 and 210, as petitboot does),
//! across a veth pair between two network namespaces this test creates and
//! removes. The log is followed with `timeline::follow` as it grows and
//! parsed with `timeline::dnsmasq_log`. Needs root (ip netns); fails, never
//! skips, when it cannot set up its peers.

mod support;

use std::fs;
use std::path::PathBuf;
use std::time::Duration;

use petitlab::timeline::dnsmasq_log::Parser;
use petitlab::timeline::{DhcpMessage, follow};
use support::netns::NetPair;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

const SERVER_IP: &str = "10.204.0.1";
const OPT_209: &str = "http://10.204.0.1:8080/n1/config";
const OPT_210: &str = "http://10.204.0.1:8080/";

/// The messages parsed from the followed log until `done` holds for them.
/// A batch is flushed once no line came for a while (several polls), so a
/// reply is never closed between two reads of its option lines.
async fn messages_until(
    rx: &mut mpsc::Receiver<String>,
    net: &NetPair,
    done: impl Fn(&[DhcpMessage]) -> bool,
) -> Vec<DhcpMessage> {
    let mut parser = Parser::new();
    let mut messages = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let quiet = tokio::time::Instant::now() + Duration::from_millis(300);
        match tokio::time::timeout_at(quiet.min(deadline), rx.recv()).await {
            Ok(Some(line)) => messages.extend(parser.line(&line)),
            Ok(None) => panic!("the follower ended"),
            Err(_) => {
                messages.extend(parser.flush());
                if done(&messages) {
                    return messages;
                }
                assert!(
                    tokio::time::Instant::now() < deadline,
                    "the followed log never gave what was expected; parsed {messages:#?}\nlog:\n{}",
                    net.dnsmasq_log()
                );
            }
        }
    }
}

fn find<'a>(messages: &'a [DhcpMessage], kind: &str, mac: &str) -> Option<&'a DhcpMessage> {
    messages.iter().find(|m| m.message == kind && m.mac == mac)
}

struct Dirs {
    _tmp: tempfile::TempDir,
    work: PathBuf,
    /// dnsmasq's `--log-facility` file, which the tests follow.
    log: PathBuf,
    hostsdir: PathBuf,
    optsdir: PathBuf,
    opts_file: PathBuf,
}

/// A hostsdir (empty) and an optsdir sending 209/210 to tag pl-n1, as
/// petitlab writes them.
fn dirs() -> Dirs {
    let tmp = tempfile::tempdir().unwrap();
    let work = tmp.path().to_path_buf();
    let hostsdir = work.join("hosts");
    let optsdir = work.join("opts");
    fs::create_dir_all(&hostsdir).unwrap();
    fs::create_dir_all(&optsdir).unwrap();
    let opts_file = optsdir.join("n1");
    fs::write(
        &opts_file,
        format!("tag:pl-n1,209,\"{OPT_209}\"\ntag:pl-n1,210,\"{OPT_210}\"\n"),
    )
    .unwrap();
    Dirs {
        _tmp: tmp,
        log: work.join("dnsmasq.log"),
        work,
        hostsdir,
        optsdir,
        opts_file,
    }
}

/// dnsmasq serving the hostsdir file `hosts` and `d`'s 209/210 to `mac`,
/// and one udhcpc exchange, followed from the log's end as petitlab
/// follows a dnsmasq already running: the pair, the follower, its lines.
async fn exchange(
    d: &Dirs,
    mac: &str,
    hosts: &str,
) -> (NetPair, JoinHandle<()>, mpsc::Receiver<String>) {
    let hosts_file = d.hostsdir.join("n1");
    fs::write(&hosts_file, hosts).unwrap();
    let mut net = NetPair::new("dq", SERVER_IP, mac);
    net.start_dnsmasq(&d.work, &d.hostsdir, &d.optsdir, &d.log);
    net.wait_for_read(&hosts_file, 1);
    net.wait_for_read(&d.opts_file, 1);

    let (tx, rx) = mpsc::channel(64);
    let follower = follow::spawn(d.log.clone(), Duration::from_millis(50), tx);
    tokio::time::sleep(Duration::from_millis(150)).await;
    let work = d.work.clone();
    let net = tokio::task::spawn_blocking(move || {
        net.udhcpc(&work);
        net
    })
    .await
    .unwrap();
    (net, follower, rx)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_followed_log_shows_the_exchange_and_the_boot_options_sent() {
    const MAC: &str = "52:54:00:dd:00:01";
    let d = dirs();
    let (net, follower, mut rx) = exchange(&d, MAC, &format!("{MAC},set:pl-n1\n")).await;

    let messages = messages_until(&mut rx, &net, |m| find(m, "ACK", MAC).is_some()).await;
    for kind in ["DISCOVER", "OFFER", "REQUEST", "ACK"] {
        let m = find(&messages, kind, MAC)
            .unwrap_or_else(|| panic!("no {kind} for {MAC} in {messages:#?}"));
        assert_eq!(m.interface, net.server_if, "{m:?}");
    }
    let offer = find(&messages, "OFFER", MAC).unwrap();
    let ack = find(&messages, "ACK", MAC).unwrap();
    assert_eq!(offer.ip, ack.ip);
    assert!(
        ack.ip
            .as_deref()
            .is_some_and(|ip| ip.starts_with("10.204.0.")),
        "{ack:?}"
    );
    for (code, want) in [(209, OPT_209), (210, OPT_210)] {
        for m in [offer, ack] {
            let o = m
                .option(code)
                .unwrap_or_else(|| panic!("{} has no option {code}: {m:#?}", m.message));
            assert_eq!(o.size, want.len(), "{o:?}");
            assert!(
                !o.value.is_empty() && want.starts_with(&o.value),
                "{o:?} vs {want:?}"
            );
            assert_eq!(o.truncated, want.len() > 14, "{o:?}");
        }
    }
    assert_eq!(
        ack.option(53).map(|o| o.value.as_str()),
        Some("5"),
        "{ack:?}"
    );
    assert_eq!(
        offer.option(53).map(|o| o.value.as_str()),
        Some("2"),
        "{offer:?}"
    );
    assert_eq!(
        ack.option(54).map(|o| o.value.as_str()),
        Some(SERVER_IP),
        "{ack:?}"
    );
    drop(rx);
    tokio::time::timeout(Duration::from_secs(5), follower)
        .await
        .expect("the follower did not end with its channel")
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_without_a_host_entry_gets_a_lease_without_boot_options() {
    const MAC: &str = "52:54:00:dd:00:02";
    let d = dirs();
    // Another node's entry: this MAC is unknown, so it is not tagged pl-n1.
    let (net, _follower, mut rx) = exchange(&d, MAC, "52:54:00:dd:00:99,set:pl-n1\n").await;

    let messages = messages_until(&mut rx, &net, |m| find(m, "ACK", MAC).is_some()).await;
    let ack = find(&messages, "ACK", MAC).unwrap();
    assert!(
        ack.ip
            .as_deref()
            .is_some_and(|ip| ip.starts_with("10.204.0.")),
        "{ack:?}"
    );
    assert_eq!(
        ack.option(53).map(|o| o.value.as_str()),
        Some("5"),
        "{ack:?}"
    );
    // The options were read through the router, logged just before 209/210.
    assert!(ack.option(3).is_some(), "{ack:#?}");
    assert!(
        ack.option(209).is_none(),
        "209 sent to an unknown node: {ack:#?}"
    );
    assert!(
        ack.option(210).is_none(),
        "210 sent to an unknown node: {ack:#?}"
    );
}
