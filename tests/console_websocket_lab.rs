//! A lab.toml node with `console = "websocket"` end to end through
//! petitlab's own path: `hardware::console` logs into Redfish for a token,
//! trusts the BMC by the `ca_file` lab.toml names, and opens `/console0`;
//! powering the node on over Redfish, its boot arrives on that console.
//! The far end is the virtual lab's bmcweb-shaped BMC; the websocket
//! transport itself is tested against Python's `websockets` in
//! tests/console_websocket.rs.

mod support;

use std::path::Path;
use std::time::Duration;

use petitlab::console_link::ConsoleEvent;
use petitlab::hardware::{self, PowerAction};
use petitlab::sim::Sim;
use petitlab::sim::lab::{LabSim, specs_for_lab, start_redfish};
use support::lab::{one_node_lab, repo};

fn free_tcp() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}

fn write_lab(dir: &Path) -> std::path::PathBuf {
    let ca = repo().join("examples/secrets/virtual-lab-bmc-ca.pem");
    let bmc = format!(
        "protocol = \"redfish\"\nconsole = \"websocket\"\nport = {}\nssh_port = {}\n\
         username = \"root\"\nca_file = \"{}\"\n",
        free_tcp(),
        free_tcp(),
        ca.display()
    );
    one_node_lab(dir, "p10-ws", "ws-password", &bmc)
}

#[tokio::test]
async fn a_websocket_console_sees_the_boot_that_redfish_power_on_starts() {
    let dir = tempfile::tempdir().unwrap();
    let path = write_lab(dir.path());
    let (lab, warnings) = petitlab::inventory::load_valid(&path).expect("a valid lab");
    assert!(warnings.is_empty(), "{warnings:?}");
    let specs = specs_for_lab(&lab, &LabSim::new(&lab)).unwrap();
    let sim = Sim::start(specs.into_iter().map(|(s, _)| s).collect())
        .await
        .unwrap();
    let fronts = start_redfish(&sim, &lab, &Default::default())
        .await
        .unwrap();
    let node = &lab.nodes[0];

    let prepared = hardware::console::prepare(&lab, node).await.unwrap();
    assert!(
        prepared.via().starts_with("websocket wss://127.0.0.1:"),
        "{}",
        prepared.via()
    );
    let mut console = prepared.spawn(false, None);
    let next = async |console: &mut petitlab::console_link::Console| {
        tokio::time::timeout(Duration::from_secs(15), console.events.recv())
            .await
            .expect("a console event within 15 s")
            .expect("the console still runs")
    };
    assert_eq!(next(&mut console).await, ConsoleEvent::Connected);

    let target = petitlab::engine::targets::management_target(node)
        .await
        .unwrap();
    let mut bmc = hardware::Bmc::new(target);
    assert!(!bmc.power_status().await.unwrap(), "off at first");
    bmc.power(PowerAction::On).await.unwrap();
    assert!(bmc.power_status().await.unwrap(), "on after On");
    bmc.close().await;

    let mut seen = Vec::new();
    while !String::from_utf8_lossy(&seen).contains("login:") {
        match next(&mut console).await {
            ConsoleEvent::Data(bytes) => seen.extend_from_slice(&bytes),
            other => panic!("{other:?} after {:?}", String::from_utf8_lossy(&seen)),
        }
    }
    let text = String::from_utf8_lossy(&seen);
    assert!(text.contains("Petitboot"), "{text}");
    drop(console);
    for (_, front) in fronts {
        front.shutdown().await;
    }
    sim.shutdown().await;
}
