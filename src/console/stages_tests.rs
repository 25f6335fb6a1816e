//! Tests for the stage detector, mostly on recorded console transcripts in
//! `testdata/` (SOL output: CRLF, petitboot's ncurses escape sequences).

use super::*;
use proptest::prelude::*;

const NETBOOT_OK: &str = include_str!("testdata/netboot_ok.log");
const CONFIG_MISSING: &str = include_str!("testdata/netboot_config_missing.log");
const KERNEL_MISSING: &str = include_str!("testdata/netboot_kernel_missing.log");
const KERNEL_PANIC: &str = include_str!("testdata/kernel_panic.log");
/// Real: QEMU powernv9, Debian's skiboot, upstream petitboot (pb-discover
/// logging to hvc0) booting the test instance from disk after its PXE
/// probe failed (tests/peers/petitboot-vm, QEMU user networking).
const POWERNV9_DISK_BOOT: &str = include_str!("testdata/powernv9_petitboot_disk_boot.log");

/// Name, console bytes, and expected events.
type Fixture = (&'static str, &'static str, Vec<(Stage, &'static str)>);

/// Each fixture with the events it must produce: stage, and text the
/// event's line contains (a prefix of the match, since a line can match
/// before its end has arrived).
fn fixtures() -> Vec<Fixture> {
    vec![
        (
            "netboot_ok",
            NETBOOT_OK,
            vec![
                (Stage::Firmware, "--== Welcome to Hostboot"),
                (Stage::Petitboot, "Petitboot (v1.10.4)"),
                (Stage::ConfigFetched, "Parsed PXE config from"),
                (Stage::Kexec, "Performing kexec reboot"),
                (Stage::KernelBooting, "Linux version 5.1"),
                (Stage::LoginPrompt, "node01 login:"),
            ],
        ),
        (
            "netboot_config_missing",
            CONFIG_MISSING,
            vec![
                (Stage::Firmware, "--== Welcome to Hostboot"),
                (Stage::Petitboot, "Petitboot (v1.10.4)"),
                (Stage::DownloadFailed, "Failed to download tftp://"),
            ],
        ),
        (
            "netboot_kernel_missing",
            KERNEL_MISSING,
            vec![
                (Stage::Firmware, "--== Welcome to Hostboot"),
                (Stage::Petitboot, "Petitboot (v1.10.4)"),
                (Stage::ConfigFetched, "Parsed PXE config from"),
                (Stage::DownloadFailed, "Couldn't load kernel image"),
            ],
        ),
        (
            "powernv9_petitboot_disk_boot",
            POWERNV9_DISK_BOOT,
            vec![
                (Stage::Firmware, "OPAL v7.1-106-g785a5e30 starting..."),
                (Stage::Petitboot, "--- pb-discover ---"),
                (Stage::DownloadFailed, "PXE autoconfiguration failed"),
                (Stage::Kexec, "Performing kexec reboot"),
                (Stage::KernelBooting, "Linux version 6.1"),
                (Stage::LoginPrompt, "petitlab-instance login:"),
            ],
        ),
        (
            "kernel_panic",
            KERNEL_PANIC,
            vec![
                (Stage::Kexec, "Performing kexec reboot"),
                (Stage::KernelBooting, "Linux version 5.1"),
                (Stage::Panic, "Kernel panic - not syncing"),
                (Stage::Firmware, "--== Welcome to Hostboot"),
            ],
        ),
    ]
}

/// A fresh detector with the built-in table, compiled once per test run
/// (regex compilation dominates in debug builds).
fn detector() -> StageDetector {
    static TEMPLATE: std::sync::LazyLock<StageDetector> =
        std::sync::LazyLock::new(|| StageDetector::new(&[]).expect("builtin table compiles"));
    TEMPLATE.clone()
}

/// Feed `input` in chunks of the given sizes (cycled; 0 counts as 1).
fn run(input: &[u8], sizes: &[usize]) -> Vec<StageEvent> {
    let mut d = detector();
    let mut events = Vec::new();
    let mut rest = input;
    for &n in sizes.iter().cycle() {
        if rest.is_empty() {
            break;
        }
        let (chunk, tail) = rest.split_at(n.clamp(1, rest.len()));
        events.extend(d.feed(chunk));
        rest = tail;
    }
    events
}

fn check(name: &str, events: &[StageEvent], want: &[(Stage, &str)], how: &str) {
    let stages: Vec<Stage> = events.iter().map(|e| e.stage).collect();
    let want_stages: Vec<Stage> = want.iter().map(|w| w.0).collect();
    assert_eq!(stages, want_stages, "{name} fed {how}: {events:#?}");
    for (ev, (_, text)) in events.iter().zip(want) {
        assert!(
            ev.line.contains(text),
            "{name} fed {how}: {ev:?} lacks {text:?}"
        );
    }
}

#[test]
fn fixtures_fed_whole() {
    for (name, input, want) in fixtures() {
        check(name, &run(input.as_bytes(), &[usize::MAX]), &want, "whole");
    }
}

#[test]
fn fixtures_fed_in_every_fixed_chunk_size() {
    for (name, input, want) in fixtures() {
        for size in 1..=80 {
            let how = format!("in {size}-byte chunks");
            check(name, &run(input.as_bytes(), &[size]), &want, &how);
        }
    }
}

#[test]
fn full_lines_are_reported_when_they_arrive_whole() {
    let events = run(NETBOOT_OK.as_bytes(), &[usize::MAX]);
    assert_eq!(
        events[0].line,
        "--== Welcome to Hostboot hostboot-2a2f5e8/hbicore.bin ==--"
    );
    assert_eq!(
        events[2].line,
        "Info: [enP3p9s0f0] Parsed PXE config from tftp://10.0.0.1/pxelinux.cfg/01-98-be-94-68-2e-90"
    );
    assert_eq!(events[5].line, "node01 login:");
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn fixtures_fed_in_random_chunks(sizes in proptest::collection::vec(1usize..300, 1..40)) {
        for (name, input, want) in fixtures() {
            check(name, &run(input.as_bytes(), &sizes), &want, &format!("in chunks {sizes:?}"));
        }
    }
}

fn stages_of(d: &mut StageDetector, input: &str) -> Vec<Stage> {
    d.feed(input.as_bytes())
        .into_iter()
        .map(|e| e.stage)
        .collect()
}

#[test]
fn escapes_and_carriage_returns_inside_lines() {
    let mut d = StageDetector::new(&[]).unwrap();
    let got = stages_of(
        &mut d,
        "\x1b[1;31mKernel panic\x1b[0m - not \x1b[Ksyncing: x\r\r\n",
    );
    assert_eq!(got, [Stage::Panic]);
}

#[test]
fn a_failure_line_cut_by_a_packet_is_quoted_whole() {
    // Seen with real petitboot over SOL: a packet ended inside the URL and
    // the deploy's failure reason said ".../deploy_kerne".
    let mut d = StageDetector::new(&[]).unwrap();
    let line =
        "boot status: [1] Couldn't load kernel image from http://10.77.1.1:8080/u/deploy_kernel";
    let (head, tail) = line.split_at(line.len() - 2);
    let mut events = d.feed(head.as_bytes());
    events.extend(d.feed(format!("{tail}\r\n").as_bytes()));
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!(events[0].stage, Stage::DownloadFailed);
    assert_eq!(events[0].line, line);
}

#[test]
fn fixtures_fed_in_chunks_quote_the_same_lines_as_fed_whole() {
    for (name, input, _) in fixtures() {
        let whole = run(input.as_bytes(), &[usize::MAX]);
        for size in [1, 7, 64, 1000] {
            assert_eq!(
                run(input.as_bytes(), &[size]),
                whole,
                "{name} fed in {size}-byte chunks"
            );
        }
    }
}

#[test]
fn prompt_without_newline_then_login() {
    let mut d = StageDetector::new(&[]).unwrap();
    assert_eq!(stages_of(&mut d, "\r\nnode01 log"), []);
    assert_eq!(stages_of(&mut d, "in: "), [Stage::LoginPrompt]);
    assert_eq!(d.current(), Some(Stage::LoginPrompt));
    // Typed user name completes the same line: not news.
    assert_eq!(
        stages_of(&mut d, "root\r\nPassword: \r\nLast login: Mon\r\n"),
        []
    );
}

#[test]
fn same_stage_twice_in_a_row_is_reported_once() {
    let mut d = StageDetector::new(&[]).unwrap();
    let text = "[ 1.0] Kernel panic - not syncing: a\r\n[ 1.1] Kernel panic - not syncing: b\r\n";
    assert_eq!(stages_of(&mut d, text), [Stage::Panic]);
}

#[test]
fn petitboot_kernel_is_firmware_but_a_late_attach_sees_the_kernel() {
    let banner = "[    0.000000] Linux version 5.10.50-openpower1 (x@y) #1\r\n";
    let mut d = StageDetector::new(&[]).unwrap();
    assert_eq!(
        stages_of(&mut d, "[ 1.2,5] OPAL v6.7 starting...\r\n"),
        [Stage::Firmware]
    );
    assert_eq!(stages_of(&mut d, banner), [], "skiroot's own kernel");
    let mut late = StageDetector::new(&[]).unwrap();
    assert_eq!(stages_of(&mut late, banner), [Stage::KernelBooting]);
}

#[test]
fn reboots_start_over() {
    let mut d = StageDetector::new(&[]).unwrap();
    let boot = "Linux version 6.8.0 (b@h)\r\nnode01 login: \r\n";
    assert_eq!(
        stages_of(&mut d, boot),
        [Stage::KernelBooting, Stage::LoginPrompt]
    );
    // kexec reboot from the OS, then through firmware.
    let kexec = "[ 99.1] kexec_core: Starting new kernel\r\n";
    assert_eq!(
        stages_of(&mut d, &format!("{kexec}{boot}")),
        [Stage::Kexec, Stage::KernelBooting, Stage::LoginPrompt]
    );
    assert_eq!(
        stages_of(&mut d, "--== Welcome to Hostboot x ==--\r\n"),
        [Stage::Firmware]
    );
    d.reset();
    assert_eq!(d.current(), None);
    assert_eq!(
        stages_of(&mut d, boot),
        [Stage::KernelBooting, Stage::LoginPrompt]
    );
}

#[test]
fn user_patterns_from_lab_toml_extend_the_table() {
    #[derive(serde::Deserialize)]
    struct Lab {
        console: Console,
    }
    #[derive(serde::Deserialize)]
    struct Console {
        stage_pattern: Vec<StagePattern>,
    }
    let lab: Lab = toml::from_str(
        r#"
        [[console.stage_pattern]]
        pattern = 'Starting new kernel via kexec'
        stage = "kexec"
        [[console.stage_pattern]]
        pattern = 'ISTEP 99\. *1 - host_fail'
        stage = "boot_failed"
        "#,
    )
    .unwrap();
    let extra = &lab.console.stage_pattern;
    assert_eq!(extra[0].stage, Stage::Kexec);
    let mut d = StageDetector::new(extra).unwrap();
    assert_eq!(
        stages_of(&mut d, "Starting new kernel via kexec\r\n"),
        [Stage::Kexec]
    );
    // User patterns win over built-in ones ("|ISTEP n.m" is firmware).
    let line = " 9.1|ISTEP 99. 1 - host_fail\r\n";
    assert_eq!(stages_of(&mut d, line), [Stage::BootFailed]);
}

#[test]
fn unknown_stage_name_is_a_toml_error() {
    let err = toml::from_str::<StagePattern>("pattern = 'x'\nstage = 'booting'\n").unwrap_err();
    assert!(err.to_string().contains("booting"), "{err}");
}

#[test]
fn invalid_regex_names_the_pattern() {
    let bad = StagePattern {
        pattern: "Starting (new kernel".into(),
        stage: Stage::Kexec,
    };
    let err = StageDetector::new(&[bad]).unwrap_err();
    let msg = err.to_string();
    assert!(msg.contains("\"Starting (new kernel\""), "{msg}");
    assert!(msg.contains("kexec"), "{msg}");
}

#[test]
fn builtin_table_covers_every_stage() {
    let table = builtin_patterns();
    for stage in Stage::ALL {
        assert!(
            table.iter().any(|p| p.stage == stage),
            "{stage} has no pattern"
        );
        let json = serde_json::to_string(&stage).unwrap();
        assert_eq!(json, format!("\"{stage}\""));
    }
}
