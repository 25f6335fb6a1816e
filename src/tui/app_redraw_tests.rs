//! When the App asks for a frame, and what a frame recomputes: the
//! redraw rules the dashboard's frame pacer relies on.

use crossterm::event::KeyCode;

use super::*;
use crate::tui::test_fixture::*;

#[test]
fn redraws_only_when_something_changed() {
    let fx = fixture();
    let mut app = app(&fx.lab);
    draw(&mut app, 80, 24);
    assert!(!app.needs_redraw());
    app.update(Msg::Tick(NOW));
    assert!(!app.needs_redraw(), "nothing ages yet");
    app.update(key(KeyCode::Char('z')));
    assert!(!app.needs_redraw(), "an unbound key");
    app.update(Msg::Engine(EngineEvent::Reading {
        node: "p10-lab-01".into(),
        power_on: Some(true),
        boot_device: None,
        error: None,
        at: NOW,
    }));
    assert!(app.needs_redraw());
    draw(&mut app, 80, 24);
    app.update(Msg::Tick(NOW + 1000));
    assert!(!app.needs_redraw(), "a fresh reading shows no age");
    let reading = |at| {
        Msg::Engine(EngineEvent::Reading {
            node: "p10-lab-01".into(),
            power_on: Some(true),
            boot_device: None,
            error: None,
            at,
        })
    };
    app.update(reading(NOW + 3000));
    assert!(!app.needs_redraw(), "a poll that found the same: no frame");
    app.update(Msg::Tick(NOW + 3000 + model::AGE_SHOWN_MS));
    assert!(
        app.needs_redraw(),
        "the reading's age is shown once it is old"
    );
    draw(&mut app, 80, 24);
    app.update(Msg::Tick(NOW + 3500 + model::AGE_SHOWN_MS));
    assert!(!app.needs_redraw(), "the age's text did not change");
    app.update(Msg::Tick(NOW + 4000 + model::AGE_SHOWN_MS));
    assert!(app.needs_redraw(), "the age's text moved");
    draw(&mut app, 80, 24);
    app.update(reading(NOW + 5000 + model::AGE_SHOWN_MS));
    assert!(app.needs_redraw(), "a new reading hides the age again");
    draw(&mut app, 80, 24);
    // Console output of a console nobody watches does not redraw, and
    // gets no screen (a screen costs its scrollback).
    app.update(Msg::Engine(EngineEvent::ConsoleData {
        node: "p10-lab-01".into(),
        bytes: b"hello\r\n".to_vec(),
    }));
    assert!(!app.needs_redraw());
    assert!(!app.consoles.contains_key("p10-lab-01"));
    app.update(Msg::Resize(100, 30));
    assert!(app.needs_redraw());
}

#[test]
fn engine_bursts_recompute_the_view_once_per_draw() {
    let fx = fixture();
    let mut app = populated(&fx.lab);
    command(&mut app, "filter power:on");
    select(&mut app, "p9-rack1-01");
    assert!(matches!(
        &app.update(key(KeyCode::Enter))[..],
        [Effect::Preview { .. }, ..]
    ));
    // p9-rack1-01 goes off: it leaves the filtered view, but only when drawn.
    for at in [NOW, NOW + 1] {
        let effects = app.update(Msg::Engine(EngineEvent::Reading {
            node: "p9-rack1-01".into(),
            power_on: Some(false),
            boot_device: None,
            error: None,
            at,
        }));
        assert!(effects.is_empty());
        assert!(app.view_dirty);
    }
    draw(&mut app, 120, 32);
    assert!(!app.view_dirty);
    assert_eq!(app.selected_name(), Some("p9-rack1-02"));
    // The next message asks for the newly selected node's preview.
    let effects = app.update(Msg::Tick(NOW + 1000));
    assert!(matches!(&effects[..], [Effect::Preview { node, .. }, ..] if node == "p9-rack1-02"));
}

#[test]
fn a_node_powered_off_loses_its_console_stage() {
    let fx = fixture();
    let mut app = populated(&fx.lab);
    let stage = |app: &mut App| app.row_mut("p9-rack1-01").and_then(|r| r.stage);
    app.update(Msg::Engine(EngineEvent::ConsoleStage {
        node: "p9-rack1-01".into(),
        stage: crate::console::Stage::LoginPrompt,
        line: "p9-rack1-01 login:".into(),
    }));
    assert_eq!(stage(&mut app), Some(crate::console::Stage::LoginPrompt));
    let reading = |on| {
        Msg::Engine(EngineEvent::Reading {
            node: "p9-rack1-01".into(),
            power_on: Some(on),
            boot_device: None,
            error: None,
            at: NOW,
        })
    };
    app.update(reading(true));
    assert!(stage(&mut app).is_some(), "still on: the stage stands");
    app.update(reading(false));
    assert_eq!(stage(&mut app), None);
}
