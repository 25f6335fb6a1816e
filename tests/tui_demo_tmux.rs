//! The dashboard end to end: the real `petitlab demo` in tmux, driven by
//! keys as an admin would: filter, select, preview a config, deploy a node,
//! watch its console reach the login prompt, undeploy; then the same deploy
//! for the Redfish node, whose console is SSH; quit.

mod support;

use std::time::Duration;

use support::tmux::Tmux;

const W: &str = "demo";

/// The table row of `node` in a frame (inside the table's border, not the
/// title line that may name it in the filter).
fn row<'a>(frame: &'a str, node: &str) -> Option<&'a str> {
    frame
        .lines()
        .find(|l| l.starts_with('│') && l.contains(&format!(" {node} ")))
}

#[test]
fn an_admin_deploys_and_undeploys_a_node_from_the_dashboard() {
    let tmux = Tmux::new(Duration::from_secs(30));
    let dir = tempfile::tempdir().unwrap();
    tmux.run(
        W,
        &format!(
            "{} demo --dir {}",
            env!("CARGO_BIN_EXE_petitlab"),
            dir.path().join("lab").display()
        ),
    );
    let frame = tmux.wait_visible(W, "the node table", |f| {
        ["p9-rack1-01", "p9-rack1-02", "p8-rack2-01", "p10-rack3-01"]
            .iter()
            .all(|n| row(f, n).is_some())
            && f.contains("q quit")
    });
    assert!(frame.contains("Nodes 4/4"), "{frame}");

    // Filter by group: only rack2 is left; Esc brings the others back.
    tmux.keys(W, &["/"]);
    tmux.type_text(W, "group:rack2");
    tmux.keys(W, &["Enter"]);
    let frame = tmux.wait_visible(W, "the filtered table", |f| f.contains("Nodes 1/4"));
    assert!(
        row(&frame, "p8-rack2-01").is_some() && row(&frame, "p9-rack1-01").is_none(),
        "{frame}"
    );
    tmux.keys(W, &["Escape"]);
    tmux.wait_visible(W, "the filter cleared", |f| f.contains("Nodes 4/4"));
    tmux.keys(W, &["/"]);
    tmux.type_text(W, "p9-rack1-01");
    tmux.keys(W, &["Enter"]);
    tmux.wait_visible(W, "p9-rack1-01 alone", |f| {
        f.contains("Nodes 1/4") && row(f, "p9-rack1-01").is_some()
    });

    // Preview: the deploy config it would get, not yet on disk.
    tmux.keys(W, &["Enter"]);
    let frame = tmux.wait_visible(W, "the config preview", |f| f.contains("label deploy"));
    assert!(
        frame.contains("kernel http://127.0.0.1:") && frame.contains("deploy_kernel"),
        "{frame}"
    );
    assert!(frame.contains("dhcp 210"), "{frame}");

    // The BMC's word on the node, read for the detail pane: its event log
    // (the simulated BMC's clock sync when it started) and its FRU.
    tmux.keys(W, &["Tab", "G"]);
    let frame = tmux.wait_visible(W, "the BMC's event log and FRU in the detail pane", |f| {
        f.contains("Events (BMC event log, read") && f.contains("Board Mfg")
    });
    assert!(frame.contains("Timestamp Clock Sync"), "{frame}");
    let mfg = frame
        .lines()
        .find(|l| l.contains("Board Mfg"))
        .unwrap_or_default();
    assert!(mfg.contains("IBM"), "{frame}");
    let product = frame
        .lines()
        .find(|l| l.contains("Product Name"))
        .unwrap_or_default();
    assert!(product.contains("P9 Romulus"), "{frame}");
    tmux.keys(W, &["Tab"]);

    // Deploy: the confirm opens on No; Enter there does nothing.
    tmux.keys(W, &["d"]);
    let frame = tmux.wait_visible(W, "the confirm popup", |f| f.contains("[ No ]"));
    assert!(frame.contains("Deploy node?"), "{frame}");
    tmux.keys(W, &["Enter"]);
    std::thread::sleep(Duration::from_millis(500));
    let frame = tmux.visible(W);
    assert!(
        !frame.contains("deploying") && !frame.contains("[ No ]"),
        "No was the default:\n{frame}"
    );
    tmux.keys(W, &["d"]);
    tmux.wait_visible(W, "the confirm popup again", |f| f.contains("[ No ]"));
    tmux.keys(W, &["y"]);

    // Its console, live: petitboot, kexec, then the instance's login prompt.
    tmux.keys(W, &["c"]);
    let frame = tmux.wait_visible(W, "the login prompt on the console", |f| {
        f.contains("p9-rack1-01 login:") && f.contains("active")
    });
    assert!(
        frame.contains("Welcome to rhel-9.4-ppc64le (petitlab demo)!"),
        "{frame}"
    );
    assert!(
        !frame.contains("petitlab.token=") || frame.contains("petitlab.token=<redacted>"),
        "{frame}"
    );
    // The deploy's last event follows "→ active" by a frame or more: wait for
    // it rather than read the one screen caught with the login prompt.
    tmux.wait_for(W, "deploy done: p9-rack1-01 is active");

    // Undeploy from the table.
    tmux.keys(W, &["q"]);
    tmux.keys(W, &["U"]);
    tmux.wait_visible(W, "the undeploy confirm", |f| f.contains("[ No ]"));
    tmux.keys(W, &["y"]);
    let frame = tmux.wait_visible(W, "available", |f| {
        row(f, "p9-rack1-01").is_some_and(|r| r.contains("available"))
    });
    let done = row(&frame, "p9-rack1-01").unwrap_or_default();
    assert!(
        done.contains("undeploy"),
        "its last event is the undeploy: {frame}"
    );

    // The Redfish node: powered and set to netboot over Redfish, its
    // console over SSH to the simulated obmc-console.
    tmux.keys(W, &["Escape"]);
    tmux.wait_visible(W, "the filter cleared again", |f| f.contains("Nodes 4/4"));
    tmux.keys(W, &["/"]);
    tmux.type_text(W, "p10-rack3-01");
    tmux.keys(W, &["Enter"]);
    tmux.wait_visible(W, "p10-rack3-01 alone", |f| {
        f.contains("Nodes 1/4") && row(f, "p10-rack3-01").is_some()
    });
    tmux.keys(W, &["d"]);
    tmux.wait_visible(W, "the confirm popup for p10", |f| f.contains("[ No ]"));
    tmux.keys(W, &["y"]);
    tmux.keys(W, &["c"]);
    let frame = tmux.wait_visible(W, "p10's login prompt on its SSH console", |f| {
        f.contains("p10-rack3-01 login:") && f.contains("active")
    });
    assert!(
        frame.contains("Welcome to rhel-9.4-ppc64le (petitlab demo)!"),
        "{frame}"
    );
    tmux.wait_for(W, "deploy done: p10-rack3-01 is active");
    tmux.keys(W, &["q"]);

    tmux.keys(W, &["q"]);
    let (code, screen) = tmux.wait_for_exit(W);
    assert_eq!(code, 0, "{screen}");
}
