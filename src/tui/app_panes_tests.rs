//! The console pane, the wall, the mouse, and a thousand nodes.

use crossterm::event::{KeyCode, KeyModifiers, MouseButton, MouseEvent, MouseEventKind};

use crate::engine::lab::EngineEvent;
use crate::tui::app::{Effect, Mode, Msg};
use crate::tui::test_fixture::*;

#[test]
fn console_pane_watches_and_leaving_unwatches() {
    let fx = fixture();
    let mut app = populated(&fx.lab);
    select(&mut app, "p9-rack1-02");
    let effects = app.update(ch('c'));
    assert!(
        matches!(&effects[..], [Effect::WatchConsole { node, on: true }] if node == "p9-rack1-02")
    );
    assert_eq!(app.mode(), Mode::Console);
    app.update(Msg::Engine(EngineEvent::ConsoleData {
        node: "p9-rack1-02".into(),
        bytes: b"Petitboot (v1.15)\r\n".to_vec(),
    }));
    assert!(app.needs_redraw());
    // Typing goes to the node.
    app.update(ch('i'));
    let effects = app.update(ch('x'));
    assert!(
        matches!(&effects[..], [Effect::ConsoleInput { node, bytes }] if node == "p9-rack1-02" && bytes == b"x")
    );
    app.update(ctrl(']'));
    let effects = app.update(ch('q'));
    assert!(
        matches!(&effects[..], [Effect::WatchConsole { node, on: false }] if node == "p9-rack1-02")
    );
    assert_eq!(app.mode(), Mode::Normal);
    assert!(app.watched.is_empty());
}

#[test]
fn wall_watches_marked_nodes_or_the_first_shown() {
    let fx = fixture();
    let mut app = populated(&fx.lab);
    select(&mut app, "p9-rack1-01");
    app.update(ch(' '));
    app.update(ch(' '));
    let effects = app.update(ch('w'));
    let watched: Vec<&str> = effects
        .iter()
        .filter_map(|e| match e {
            Effect::WatchConsole { node, on: true } => Some(node.as_str()),
            _ => None,
        })
        .collect();
    assert_eq!(watched, ["p9-rack1-01", "p9-rack1-02"]);
    assert_eq!(app.mode(), Mode::Wall);
    draw(&mut app, 120, 32);
    app.update(ch('l'));
    assert_eq!(app.wall.as_ref().unwrap().selected, 1);
    // Enter opens the selected tile's console; leaving it returns to the wall.
    let effects = app.update(key(KeyCode::Enter));
    assert!(effects.is_empty(), "already watched: {effects:?}");
    assert_eq!(app.mode(), Mode::Console);
    assert_eq!(app.pane.as_ref().unwrap().node(), "p9-rack1-02");
    assert!(app.update(ch('q')).is_empty());
    assert_eq!(app.mode(), Mode::Wall);
    let mut effects = app.update(ch('q'));
    effects.sort_by_key(|e| format!("{e:?}"));
    assert_eq!(effects.len(), 2);
    assert!(
        effects
            .iter()
            .all(|e| matches!(e, Effect::WatchConsole { on: false, .. }))
    );
    assert_eq!(app.mode(), Mode::Normal);

    // Without marks: the first shown nodes that fit.
    app.update(key(KeyCode::Esc));
    app.update(Msg::Resize(80, 24));
    let effects = app.update(ch('w'));
    assert_eq!(effects.len(), 4, "80x24 fits 2x2 tiles");
}

#[test]
fn mouse_click_selects_and_wheel_scrolls() {
    let fx = fixture();
    let mut app = populated(&fx.lab);
    draw(&mut app, 120, 32);
    let body = app.hits.table_body;
    let click = |row: u16| {
        Msg::Mouse(MouseEvent {
            kind: MouseEventKind::Down(MouseButton::Left),
            column: body.x + 3,
            row,
            modifiers: KeyModifiers::NONE,
        })
    };
    app.update(click(body.y + 3));
    assert_eq!(app.selected_name(), Some("p9-rack1-01"));
    // Below the last row: nothing.
    app.update(click(body.y + 20));
    assert_eq!(app.selected_name(), Some("p9-rack1-01"));
    let wheel = Msg::Mouse(MouseEvent {
        kind: MouseEventKind::ScrollDown,
        column: body.x + 3,
        row: body.y,
        modifiers: KeyModifiers::NONE,
    });
    app.update(wheel);
    assert_eq!(app.cursor, 5);
}

#[test]
fn a_thousand_nodes_draw_only_the_rows_on_screen() {
    let mut text = String::from("state_dir = \"state\"\n[http]\nbase_url = \"http://10.0.0.1/\"\n");
    for i in 0..1000 {
        text.push_str(&format!(
            "[[node]]\nname = \"n{i:04}\"\ngroup = \"rack{}\"\nmacs = [\"02:00:00:00:{:02x}:{:02x}\"]\n\
             [node.bmc]\nhost = \"10.1.{}.{}\"\nusername = \"u\"\npassword = \"p\"\n\
             [node.deploy]\nkernel = \"deploy.vmlinux\"\nramdisk = \"deploy.initramfs\"\n\
             [node.instance]\nimage = \"rhel.qcow2\"\n",
            i / 40,
            i / 256,
            i % 256,
            i / 256,
            i % 256
        ));
    }
    let fx = fixture_from(&text);
    let mut app = app(&fx.lab);
    app.update(Msg::Tick(NOW));
    for i in 0..1000 {
        app.update(Msg::Engine(EngineEvent::Reading {
            node: format!("n{i:04}"),
            power_on: Some(i % 3 == 0),
            boot_device: Some("pxe".into()),
            error: None,
            at: NOW,
        }));
    }
    app.update(ch('G'));
    let start = std::time::Instant::now();
    let frames = 20;
    for _ in 0..frames {
        app.dirty = true;
        draw(&mut app, 120, 40);
    }
    let per_frame = start.elapsed() / frames;
    let t = draw(&mut app, 120, 40);
    let screen = text_of(&t);
    assert!(screen.contains("n0999"), "{screen}");
    assert!(!screen.contains("n0000"));
    eprintln!("1000 nodes: {per_frame:?} per frame");
    // Generous: a debug build on a busy machine.
    assert!(per_frame.as_millis() < 200, "{per_frame:?} per frame");
}

fn text_of(t: &ratatui::Terminal<ratatui::backend::TestBackend>) -> String {
    crate::tui::test_fixture::text(t.backend().buffer())
}
