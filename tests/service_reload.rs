//! `petitlab reload` on a running lab service
//! (`petitlab demo --headless`): a node removed from lab.toml loses its
//! console, a node added gets one, and every other console keeps its BMC
//! session — the same session IDs at the simulated BMC.

mod support;

use std::path::Path;
use std::time::{Duration, Instant};

use support::lab::{Daemon, petitlab, show};
use support::service::sessions;

const GONE: &str = "p8-rack2-01";

fn wait_sessions(
    socket: &Path,
    what: &str,
    ok: impl Fn(&serde_json::Value) -> bool,
) -> serde_json::Value {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let now = sessions(socket);
        if ok(&now) {
            return now;
        }
        assert!(Instant::now() < deadline, "{what}: {now}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The demo's Redfish node: its console is SSH, which the simulated BMCs'
/// IPMI session counts do not see.
const REDFISH: &str = "p10-rack3-01";

/// lab.toml without GONE's `[[node]]` table (up to the next one, or the end).
fn without_gone(text: &str) -> String {
    let name = format!("name = \"{GONE}\"");
    let at = text.find(&name).unwrap();
    let start = text[..at].rfind("[[node]]").unwrap();
    let end = text[at..].find("[[node]]").map_or(text.len(), |i| at + i);
    format!("{}{}", &text[..start], &text[end..])
}

#[test]
fn reload_connects_added_consoles_closes_removed_ones_and_keeps_the_others() {
    let dir = tempfile::tempdir().unwrap();
    let labdir = dir.path().join("lab");
    let lab = labdir.join("lab.toml");
    let socket = labdir.join("state/petitlab.sock");
    // `--lab` is not read by the demo, which writes its own lab.toml.
    let demo_args = ["demo", "--headless", "--dir", labdir.to_str().unwrap()];
    let service = Daemon::start(Path::new("unused.toml"), &demo_args);
    let before = wait_sessions(&socket, "every SOL console connected", |s| {
        s.as_object().is_some_and(|m| {
            m.len() == 4
                && m.iter()
                    .filter(|(name, _)| *name != REDFISH)
                    .all(|(_, n)| n["opened"] == 1)
        })
    });
    let original = std::fs::read_to_string(&lab).unwrap();

    // Removed: its console closes; the others keep their sessions.
    let reduced = without_gone(&original);
    assert!(
        !reduced.contains(GONE) && reduced.contains(REDFISH),
        "{reduced}"
    );
    std::fs::write(&lab, reduced).unwrap();
    let out = petitlab(&lab, &["reload"]);
    assert!(out.status.success(), "{}", show(&out));
    assert!(
        show(&out).contains(&format!("removed: {GONE}")),
        "{}",
        show(&out)
    );
    let after = wait_sessions(&socket, "the removed node's session closed", |s| {
        s[GONE]["active"].as_array().is_some_and(|a| a.is_empty())
    });
    for node in ["p9-rack1-01", "p9-rack1-02"] {
        assert_eq!(after[node], before[node], "{node} kept its session");
    }
    let status = show(&petitlab(&lab, &["status"]));
    assert!(!status.contains(GONE), "{status}");

    // Added back: its console connects anew.
    std::fs::write(&lab, &original).unwrap();
    let out = petitlab(&lab, &["reload"]);
    assert!(
        show(&out).contains(&format!("added: {GONE}")),
        "{}",
        show(&out)
    );
    let again = wait_sessions(&socket, "the added node's console connected", |s| {
        s[GONE]["opened"] == 2 && s[GONE]["active"].as_array().is_some_and(|a| a.len() == 1)
    });
    for node in ["p9-rack1-01", "p9-rack1-02"] {
        assert_eq!(again[node], before[node], "{node} kept its session");
    }

    // A lab.toml with an error is refused whole, saying why; nothing changes.
    std::fs::write(&lab, format!("{original}\n[[node]]\nname = \"broken\"\n")).unwrap();
    let refused = support::service::call(&socket, "reload", serde_json::json!({}))
        .unwrap_err()
        .to_string();
    assert!(
        refused.contains("is not valid, nothing was reloaded") && refused.contains("broken"),
        "{refused}"
    );
    assert_eq!(sessions(&socket), again, "nothing changed");
    service.stop();
}
