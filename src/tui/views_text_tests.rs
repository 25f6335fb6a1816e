//! Text from outside the process (an agent's failure reason and progress, a
//! BMC's error, a console line, the audit log's details) is drawn with its
//! control and bidi characters made visible, in every pane that shows it.

use crossterm::event::KeyCode;

use crate::engine::lab::{Action, EngineEvent};
use crate::engine::lifecycle::{State, Step};
use crate::engine::store::EventRecord;
use crate::tui::app::{App, Msg};
use crate::tui::test_fixture::*;

/// A window-title OSC, a bell, a screen clear and a right-to-left override.
const HOSTILE: &str = "\u{1b}]0;pwned\u{7}\u{1b}[2J\u{202e}gpj.exe";
const SHOWN: &str = r"\x1b]0;pwned\x07\x1b[2J\u{202e}gpj.exe";
const NODE: &str = "p9-rack1-03";

fn hostile(lab: &crate::inventory::Lab) -> App {
    let mut app = populated(lab);
    select(&mut app, NODE);
    let history = vec![EventRecord {
        id: 9,
        at: NOW - 1_000,
        node: Some(NODE.into()),
        who: "agent 10.77.0.13".into(),
        action: "agent-failed".into(),
        result: "ok".into(),
        detail: format!("hist {HOSTILE}"),
    }];
    let records = Vec::new();
    app.update(Msg::Snapshot {
        records,
        reservations: Vec::new(),
        history,
    });
    for event in [
        EngineEvent::Progress {
            node: "p9-rack1-02".into(),
            step: Step::WriteImage,
            message: format!("prog {HOSTILE}"),
            fraction: None,
        },
        EngineEvent::Reading {
            node: NODE.into(),
            power_on: None,
            boot_device: Some(format!("boot {HOSTILE}")),
            error: Some(format!("bmc {HOSTILE}")),
            at: NOW,
        },
        EngineEvent::ConsoleStage {
            node: NODE.into(),
            stage: crate::console::Stage::DownloadFailed,
            line: format!("cons {HOSTILE}"),
        },
        EngineEvent::State {
            node: NODE.into(),
            state: State::DeployFailed,
            step: Some(Step::WaitCallback),
            reason: Some(format!("why {HOSTILE}")),
        },
        EngineEvent::Finished {
            node: NODE.into(),
            action: Action::Deploy,
            ok: false,
            state: Some(State::DeployFailed),
            message: format!("fin {HOSTILE}"),
        },
    ] {
        app.update(Msg::Engine(event));
    }
    app
}

/// No control or bidi character anywhere on `screen`.
fn assert_inert(screen: &str) {
    let bidi = |c: char| matches!(c, '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}' | '\u{200e}' | '\u{200f}' | '\u{61c}');
    for c in screen.chars() {
        assert!(
            !(c.is_control() && c != '\n' || bidi(c)),
            "{c:?} drawn raw:\n{screen}"
        );
    }
}

#[test]
fn outside_text_is_escaped_in_the_table_detail_log_and_status_line() {
    let fx = fixture();
    let mut app = hostile(&fx.lab);
    app.update(key(KeyCode::Enter));
    let screen = text(draw(&mut app, 240, 50).backend().buffer());
    assert_inert(&screen);
    for shown in [
        // The detail pane: reason, BMC error, boot device, console line, history.
        format!("why {SHOWN}"),
        format!("bmc {SHOWN}"),
        format!("boot {SHOWN}"),
        format!("cons {SHOWN}"),
        format!("hist {SHOWN}"),
        // The log pane: progress and the result.
        format!("prog {SHOWN}"),
        format!("fin {SHOWN}"),
    ] {
        assert!(screen.contains(&shown), "no {shown:?} on screen:\n{screen}");
    }
    // The status line's flash.
    let status = screen.lines().nth(48).unwrap();
    assert!(status.contains(&format!("fin {SHOWN}")), "{status}");
    insta::assert_snapshot!("hostile_text_120x32", draw(&mut app, 120, 32).backend());
}

#[test]
fn the_failure_reason_on_the_status_line_is_escaped() {
    let fx = fixture();
    let mut app = hostile(&fx.lab);
    // The flash goes after its ticks; the selected node's reason stays.
    for i in 1..=20 {
        app.update(Msg::Tick(NOW + i * 1000));
    }
    let screen = text(draw(&mut app, 200, 30).backend().buffer());
    assert_inert(&screen);
    let status = screen.lines().nth(28).unwrap();
    assert!(status.contains(&format!("why {SHOWN}")), "{status}");
}

#[test]
fn a_console_status_from_the_bmc_is_escaped_in_the_pane_title() {
    let fx = fixture();
    let mut app = hostile(&fx.lab);
    app.update(ch('c'));
    app.update(Msg::Engine(EngineEvent::ConsoleStatus {
        node: NODE.into(),
        connected: false,
        message: Some(format!("sol {HOSTILE}")),
    }));
    let screen = text(draw(&mut app, 200, 40).backend().buffer());
    assert_inert(&screen);
    assert!(screen.contains(&format!("sol {SHOWN}")), "{screen}");
}

#[test]
fn the_bmc_event_log_inventory_and_errors_are_escaped() {
    use crate::tui::bmc_info::{FruField, NodeInfo};
    let fx = fixture();
    let mut app = populated(&fx.lab);
    select(&mut app, NODE);
    app.update(key(KeyCode::Enter));
    let mut info = bmc_sample();
    if let Some(Ok(events)) = &mut info.events.value {
        events[4].message = format!("sel {HOSTILE}");
        events[4].sensor_type = Some("\u{1b}[31mRed".into());
        events[4].time = Some(format!("\u{1b}[2J{HOSTILE}"));
    }
    if let Some(Ok(fru)) = &mut info.inventory.value {
        fru.board[1] = FruField {
            name: "Board Mfg".into(),
            value: format!("fru {HOSTILE}"),
        };
        fru.problems.push(format!("prob {HOSTILE}"));
    }
    app.bmc_info.insert(NODE, info);
    let screen = text(draw(&mut app, 240, 100).backend().buffer());
    assert_inert(&screen);
    for shown in [
        format!("sel {SHOWN}"),
        format!("fru {SHOWN}"),
        format!("prob {SHOWN}"),
        r"\x1b[31mRed".to_string(),
    ] {
        assert!(screen.contains(&shown), "no {shown:?} on screen:\n{screen}");
    }
    // A BMC's error, for both.
    app.bmc_info.insert(
        NODE,
        NodeInfo {
            events: failed_slot(&format!("err {HOSTILE}")),
            inventory: failed_slot(&format!("ferr {HOSTILE}")),
        },
    );
    let screen = text(draw(&mut app, 240, 100).backend().buffer());
    assert_inert(&screen);
    assert!(
        screen.contains(&format!("bmc      err {SHOWN}")),
        "{screen}"
    );
    assert!(
        screen.contains(&format!("fru      ferr {SHOWN}")),
        "{screen}"
    );
}
