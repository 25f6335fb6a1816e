//! The lab service end to end in tmux: `petitlab demo --headless` is the
//! service; two dashboards and a read-only console attach to it. A deploy
//! started from the first dashboard goes on after that dashboard quits; the
//! second dashboard and the spectator see the node's console through
//! petitboot and kexec to its login prompt; the simulated BMC saw one
//! session the whole time.

mod support;

use std::path::Path;
use std::time::Duration;

use support::tmux::Tmux;

const NODE: &str = "p9-rack1-01";

fn row<'a>(frame: &'a str, node: &str) -> Option<&'a str> {
    frame
        .lines()
        .find(|l| l.starts_with('│') && l.contains(&format!(" {node} ")))
}

/// The demo's simulated BMC sessions for NODE, asked of the service.
fn sessions(socket: &Path) -> serde_json::Value {
    support::service::sessions(socket)[NODE].clone()
}

/// Filters the dashboard in `window` down to NODE.
fn select(tmux: &Tmux, window: &str) {
    tmux.wait_visible(window, "the node table", |f| {
        row(f, NODE).is_some() && f.contains("q quit")
    });
    tmux.keys(window, &["/"]);
    tmux.type_text(window, NODE);
    tmux.keys(window, &["Enter"]);
    tmux.wait_visible(window, "the node alone", |f| f.contains("Nodes 1/4"));
}

#[test]
fn two_dashboards_and_a_spectator_share_one_console_and_the_deploy_outlives_its_dashboard() {
    let tmux = Tmux::new(Duration::from_secs(40));
    let dir = tempfile::tempdir().unwrap();
    let labdir = dir.path().join("lab");
    let lab = labdir.join("lab.toml");
    let socket = labdir.join("state/petitlab.sock");
    let bin = env!("CARGO_BIN_EXE_petitlab");
    tmux.run(
        "service",
        &format!("{bin} demo --headless --dir {}", labdir.display()),
    );
    let frame = tmux.wait_for("service", "petitlab demo: running");
    assert!(frame.contains("petitlab demo: lab service on"), "{frame}");
    let before = sessions(&socket);

    tmux.run("dash1", &format!("{bin} --lab {}", lab.display()));
    tmux.run("dash2", &format!("{bin} --lab {}", lab.display()));
    tmux.run(
        "spy",
        &format!("{bin} --lab {} console --read-only {NODE}", lab.display()),
    );
    tmux.wait_for("spy", "read-only");
    select(&tmux, "dash1");
    select(&tmux, "dash2");

    // Deploy from dashboard 1, then quit it at once.
    tmux.keys("dash1", &["d"]);
    tmux.wait_visible("dash1", "the confirm popup", |f| f.contains("[ No ]"));
    tmux.keys("dash1", &["y"]);
    tmux.wait_visible("dash1", "the deploy under way", |f| {
        row(f, NODE).is_some_and(|r| !r.contains("enroll") && !r.contains("available"))
    });
    tmux.keys("dash1", &["q"]);
    let (code, screen) = tmux.wait_for_exit("dash1");
    assert_eq!(code, 0, "{screen}");

    // Dashboard 2's console pane and the spectator follow the boot.
    tmux.keys("dash2", &["c"]);
    let frame = tmux.wait_visible("dash2", "the login prompt in dashboard 2", |f| {
        f.contains(&format!("{NODE} login:")) && f.contains("active")
    });
    assert!(
        frame.contains("Welcome to rhel-9.4-ppc64le (petitlab demo)!"),
        "{frame}"
    );
    let spy = tmux.wait_for("spy", &format!("{NODE} login:"));
    for seen in ["Petitboot", "Performing kexec reboot"] {
        assert!(spy.contains(seen), "{seen:?} not on the spectator: {spy}");
    }

    // One BMC session for the poller, the console and the deploy, from the
    // service's start to the end.
    let after = sessions(&socket);
    assert_eq!(before["opened"], 1, "before: {before}");
    assert_eq!(after["opened"], 1, "after: {after}");
    assert_eq!(after["active"], before["active"], "{before} {after}");

    // The spectator leaves with ~. and nothing else notices.
    tmux.type_text("spy", "\r~.");
    let (code, screen) = tmux.wait_for_exit("spy");
    assert_eq!(code, 0, "{screen}");
    tmux.keys("dash2", &["q"]);
    tmux.keys("dash2", &["q"]);
    let (code, screen) = tmux.wait_for_exit("dash2");
    assert_eq!(code, 0, "{screen}");
}
