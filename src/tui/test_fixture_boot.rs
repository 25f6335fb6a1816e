//! Boots as the lab records them, for the boot view's tests: one that
//! stalled when petitboot's config fetch got a 404 (diagnosed), one that
//! reached a login prompt, one whose console and DHCP text is hostile, and
//! lab-wide stage durations.

use super::NOW;
use crate::console::Stage;
use crate::timeline::diagnose::{Diagnosis, Why};
use crate::timeline::phases::{Milestone, Milestones, StageStats};
use crate::timeline::{Boot, BootEvent, DhcpMessage, Fetch, FileKind, SentOption, What};

fn boot(node: &str, started_at: i64, events: Vec<(i64, What)>) -> Boot {
    Boot {
        id: 7,
        node: node.into(),
        started_at,
        origin: "power on by ops".into(),
        events: events
            .into_iter()
            .map(|(at, what)| BootEvent { at, what })
            .collect(),
        dropped: 0,
    }
}

fn dhcp(message: &str, ip: Option<&str>, node: &str, note: Option<&str>) -> What {
    let url = format!("http://10.77.0.1:8080/{node}/config");
    let sent = if matches!(message, "OFFER" | "ACK") {
        vec![SentOption {
            code: 209,
            size: url.len(),
            value: url[..14].to_string(),
            truncated: true,
        }]
    } else {
        Vec::new()
    };
    What::Dhcp(DhcpMessage {
        message: message.into(),
        mac: "70:e2:84:14:00:03".into(),
        ip: ip.map(Into::into),
        interface: "lab0".into(),
        sent,
        note: note.map(Into::into),
    })
}

fn fetch(path: &str, status: u16, bytes: u64, millis: u64) -> What {
    What::Fetch(Fetch {
        proto: "http".into(),
        path: path.into(),
        file: FileKind::of(path),
        status,
        bytes,
        millis,
    })
}

fn console(stage: Stage, line: &str) -> What {
    What::Console {
        stage,
        line: line.into(),
    }
}

fn why(boot: Boot, diagnosis: Option<Diagnosis>) -> Why {
    Why {
        milestones: Milestones::of(&boot),
        boot,
        diagnosis,
    }
}

/// p9-rack1-03: DHCP answered, the config fetch got a 404; 50 s ago.
pub fn stalled_boot() -> Why {
    let t0 = NOW - 95_000;
    let node = "p9-rack1-03";
    let events = vec![
        (
            t0,
            What::PowerOn {
                how: "on".into(),
                by: "ops".into(),
            },
        ),
        (
            t0 + 1_000,
            What::BootOverride {
                device: "pxe".into(),
            },
        ),
        (
            t0 + 31_000,
            console(Stage::Petitboot, "Petitboot (v1.13.0)"),
        ),
        (t0 + 38_000, dhcp("DISCOVER", None, node, None)),
        (t0 + 38_100, dhcp("OFFER", Some("10.77.0.13"), node, None)),
        (t0 + 39_000, dhcp("REQUEST", Some("10.77.0.13"), node, None)),
        (t0 + 39_100, dhcp("ACK", Some("10.77.0.13"), node, None)),
        (t0 + 40_000, fetch("p9-rack1-03/config", 404, 0, 3)),
        (
            t0 + 45_000,
            console(
                Stage::DownloadFailed,
                "Failed to download http://10.77.0.1:8080/p9-rack1-03/config",
            ),
        ),
    ];
    let diagnosis = Diagnosis {
        rule: "config-404".into(),
        expected: "the petitboot config".into(),
        causes: vec![
            "its file is missing: p9-rack1-03/config was never written (prepare not run?)".into(),
            "[http] root is not the directory the server serves".into(),
        ],
        evidence: vec![
            "GET p9-rack1-03/config 404 at 15:59:04".into(),
            "DHCP ACK 10.77.0.13 with 209=http://10.77.0.1:8080/p9-rack1-03/config".into(),
        ],
    };
    why(boot(node, t0, events), Some(diagnosis))
}

/// p9-rack1-01: every milestone up to a login prompt.
pub fn good_boot() -> Why {
    let t0 = NOW - 300_000;
    let node = "p9-rack1-01";
    let events = vec![
        (
            t0,
            What::PowerOn {
                how: "cycle".into(),
                by: "deploy".into(),
            },
        ),
        (
            t0 + 30_000,
            console(Stage::Petitboot, "Petitboot (v1.13.0)"),
        ),
        (t0 + 36_000, dhcp("ACK", Some("10.77.0.11"), node, None)),
        (t0 + 36_500, fetch("p9-rack1-01/config", 200, 412, 4)),
        (
            t0 + 38_000,
            fetch(
                "3d8f3a1e-6b0c-4f4e-9a57-1f0c2b7d9e01/deploy_kernel",
                200,
                1_048_576,
                700,
            ),
        ),
        (
            t0 + 41_000,
            fetch(
                "3d8f3a1e-6b0c-4f4e-9a57-1f0c2b7d9e01/deploy_ramdisk",
                200,
                52_428_800,
                2_900,
            ),
        ),
        (
            t0 + 42_000,
            console(Stage::Kexec, "kexec_core: Starting new kernel"),
        ),
        (
            t0 + 70_000,
            What::Agent {
                call: "lookup".into(),
                detail: "node p9-rack1-01 found".into(),
            },
        ),
    ];
    why(boot(node, t0, events), None)
}

/// A boot whose console and DHCP note carry terminal controls.
pub fn hostile_boot() -> Why {
    let t0 = NOW - 20_000;
    let node = "p9-rack1-02";
    let events = vec![
        (
            t0 + 1_000,
            dhcp("NAK", None, node, Some("wrong\x07 server\u{202e}evil")),
        ),
        (
            t0 + 2_000,
            console(Stage::Petitboot, "\x1b[2J\x1b]0;pwned\x07Petitboot"),
        ),
        (t0 + 3_000, fetch("p9-rack1-02/con\x1b[31mfig", 404, 0, 1)),
    ];
    let diagnosis = Diagnosis {
        rule: "config-404".into(),
        expected: "the petitboot config".into(),
        causes: vec!["served \x1b[5mnothing\u{202e}".into()],
        evidence: vec!["console said \x1b[2Jhello\r".into()],
    };
    why(boot(node, t0, events), Some(diagnosis))
}

pub fn stage_stats() -> Vec<StageStats> {
    let s = |from, to, boots, median_ms, max_ms, slowest: &str| StageStats {
        from,
        to,
        boots,
        median_ms,
        max_ms,
        slowest: slowest.into(),
    };
    use Milestone::*;
    vec![
        s(PowerOn, Petitboot, 14, 31_000, 48_000, "p8-rack2-01"),
        s(Petitboot, DhcpAck, 14, 5_200, 41_000, "p9-rack1-03"),
        s(DhcpAck, Config, 13, 400, 1_900, "p9-rack1-02"),
        s(Config, Kernel, 12, 1_500, 3_100, "p10-lab-01"),
        s(Kernel, Kexec, 12, 4_000, 9_500, "p9-rack1-02"),
        s(Kexec, Up, 11, 27_000, 61_000, "p8-rack2-02"),
    ]
}
