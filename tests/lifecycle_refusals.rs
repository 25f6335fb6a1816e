//! A deploy that validate refuses leaves the node's state alone (the
//! refusal is in its history), and a node named twice is deployed once.

mod support;

use support::lab::{Daemon, ok, petitlab, show};
use support::virtual_lab::{Proto, VNode, VirtualLab};

const FAST: &str = "[deploy]\npower_timeout = 4\ncallback_timeout = 20\nheartbeat = 1\n\
                    write_timeout = 30\nboot_timeout = 30\n";

#[test]
fn an_image_that_cannot_be_made_raw_is_refused_before_the_state_changes() {
    let v = VirtualLab::new(
        vec![VNode::new("n1", Proto::Http, false, 0)],
        64 << 10,
        FAST,
    );
    // qcow2's magic, then garbage: qemu-img cannot convert it.
    let mut broken = b"QFI\xfb\x00\x00\x00\x03".to_vec();
    broken.extend(std::iter::repeat_n(0x5a, 4096));
    std::fs::write(v.image("n1"), broken).unwrap();
    let _serve = Daemon::start(&v.lab, &["serve"]);
    let _sim = Daemon::start(&v.lab, &["sim", "--line-delay-ms", "1"]);
    let out = petitlab(&v.lab, &["deploy", "n1"]);
    let text = show(&out);
    assert!(!out.status.success(), "{text}");
    assert!(
        text.contains("n1: deploy FAILED: refused, nothing changed: validate: "),
        "{text}"
    );
    assert_eq!(
        v.record("n1").state,
        "available",
        "refused before any change: {text}"
    );
    let history = ok(&v.lab, &["history", "n1"]);
    assert!(history.contains("deploy  refused: "), "{history}");
    assert!(!history.contains("deploy-failed"), "{history}");
    assert!(
        VirtualLab::files_under(&v.state().join("http")).is_empty(),
        "nothing published"
    );
}

#[test]
fn a_node_named_twice_is_deployed_once() {
    let v = VirtualLab::new(
        vec![VNode::new("n1", Proto::Http, false, 0)],
        64 << 10,
        FAST,
    );
    let _serve = Daemon::start(&v.lab, &["serve"]);
    let _sim = Daemon::start(&v.lab, &["sim", "--line-delay-ms", "1"]);
    let out = petitlab(&v.lab, &["deploy", "n1", "n1"]);
    let text = show(&out);
    assert!(out.status.success(), "{text}");
    assert_eq!(v.record("n1").state, "active");
    assert!(
        !text.contains("FAILED") && !text.contains("failed"),
        "{text}"
    );
    let history = ok(&v.lab, &["history", "n1", "--limit", "200"]);
    assert_eq!(
        history.matches("  deploy  deploying").count(),
        1,
        "{history}"
    );
}
