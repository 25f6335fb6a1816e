//! A console that is lost and comes back says so: a marker line with the
//! times and the reason in the node's console log and in the dashboard's
//! pane, and a deploy's progress (and its timeout's reason) names the gap.
//! The BMC goes away by restarting `petitlab sim`, which forgets every
//! session, as a rebooting BMC does.

mod support;

use std::sync::Arc;
use std::time::{Duration, Instant};

use petitlab::engine::lab::{Engine, EngineEvent};
use support::lab::{Daemon, petitlab, show};
use support::virtual_lab::{Proto, VNode, VirtualLab};

const MARKER: &str = "[petitlab: console lost ";

fn one_node(deploy: &str) -> VirtualLab {
    VirtualLab::new(
        vec![VNode::new("n1", Proto::Http, false, 0)],
        64 << 10,
        deploy,
    )
}

fn console_log(v: &VirtualLab) -> String {
    support::cast::console_text_or_empty(&support::cast::console_path(&v.state(), "n1"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_console_leaves_a_marker_in_the_log_and_the_pane() {
    let v = one_node("");
    let sim = Daemon::start(&v.lab, &["sim", "--line-delay-ms", "1"]);
    let (lab, _) = petitlab::inventory::load_valid(&v.lab).unwrap();
    let lab = Arc::new(lab);
    let node = lab.node("n1").unwrap().clone();
    let (engine, mut events) = Engine::open(lab.clone()).unwrap();
    let watch = engine.consoles.attach(&node, vec![]).await.unwrap();
    engine.consoles.watch_ui(&node, true).await.unwrap();
    let seen = watch.seen();
    let deadline = Instant::now() + Duration::from_secs(10);
    while !seen.borrow().connected {
        assert!(Instant::now() < deadline, "console not connected in 10 s");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    // The BMC reboots: our session is gone. Keepalive finds out.
    sim.stop();
    let _sim = Daemon::start(&v.lab, &["sim", "--line-delay-ms", "1"]);
    let mut pane = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(45);
    while !String::from_utf8_lossy(&pane).contains(MARKER) {
        let left = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, events.recv()).await {
            Ok(Some(EngineEvent::ConsoleData { node, bytes })) if node == "n1" => {
                pane.extend(bytes)
            }
            Ok(Some(_)) => {}
            Ok(None) => panic!("engine events ended"),
            Err(_) => panic!(
                "no gap marker in the pane within 45 s; pane: {:?}",
                String::from_utf8_lossy(&pane)
            ),
        }
    }
    let pane = String::from_utf8_lossy(&pane).into_owned();
    let gap = seen.borrow().last_gap.clone().expect("the gap is recorded");
    assert_eq!(seen.borrow().gaps, 1);
    assert!(seen.borrow().connected, "reconnected");
    let marker = gap.marker();
    assert!(pane.contains(&marker), "{pane:?} lacks {marker:?}");
    assert!(
        marker.contains("UTC") && marker.contains('–') && marker.contains("keepalive"),
        "{marker:?}"
    );
    assert!(gap.to_ms.unwrap() > gap.from_ms);
    watch.close().await;
    engine.consoles.watch_ui(&node, false).await.unwrap();
    let log = console_log(&v);
    assert!(
        log.contains(&marker),
        "console log lacks the marker: {log:?}"
    );
}

#[test]
fn a_deploy_says_when_its_console_was_lost_and_its_timeout_names_the_gap() {
    // The agent never calls back; the BMC reboots while the deploy waits.
    let v = one_node("[deploy]\npower_timeout = 4\ncallback_timeout = 35\nheartbeat = 1\n");
    let _serve = Daemon::start(&v.lab, &["serve", "--only", "files"]);
    let sim_args = ["sim", "--line-delay-ms", "1", "--fault", "n1=agent-silent"];
    let sim = Daemon::start(&v.lab, &sim_args);
    let deploy = std::thread::spawn({
        let lab = v.lab.clone();
        move || petitlab(&lab, &["deploy", "n1"])
    });
    let deadline = Instant::now() + Duration::from_secs(20);
    while !console_log(&v).contains("agent silent") {
        assert!(Instant::now() < deadline, "the ramdisk never booted");
        std::thread::sleep(Duration::from_millis(50));
    }
    sim.stop();
    let _sim = Daemon::start(&v.lab, &sim_args);
    let out = deploy.join().unwrap();
    let text = show(&out);
    assert!(!out.status.success(), "{text}");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let progress = stdout
        .lines()
        .find(|l| l.contains("console lost "))
        .unwrap_or_else(|| panic!("no progress line names the gap: {text}"));
    assert!(
        progress.contains("wait-callback") && progress.contains("missing"),
        "{progress}"
    );
    assert!(
        text.contains("no callback from the deploy agent within 35 s")
            && text.contains("; console lost "),
        "the timeout's reason names the gap: {text}"
    );
    assert!(console_log(&v).contains(MARKER), "{}", console_log(&v));
}
