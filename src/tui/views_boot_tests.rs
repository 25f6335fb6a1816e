//! Snapshots of the boot view (the detail pane's timeline and diagnosis),
//! the table's stalled note, and hostile text from the network escaped.

use crossterm::event::KeyCode;

use crate::engine::lab::EngineEvent;
use crate::timeline::diagnose::Why;
use crate::tui::app::{App, DetailView, Effect, Msg};
use crate::tui::test_fixture::*;
use crate::tui::theme::Role;

fn snap(name: &str, app: &mut App, w: u16, h: u16) -> ratatui::buffer::Buffer {
    let terminal = draw(app, w, h);
    insta::assert_snapshot!(format!("{name}_{w}x{h}"), terminal.backend());
    terminal.backend().buffer().clone()
}

/// The dashboard on `node`'s boot view, the lab's answer delivered, the
/// pane focused.
fn boot_detail(fx: &Fixture, node: &str, why: Option<Why>) -> App {
    let mut app = populated(&fx.lab);
    select(&mut app, node);
    let effects = app.update(ch('t'));
    assert_eq!(app.detail_view, DetailView::Boot);
    assert!(
        effects
            .iter()
            .any(|e| matches!(e, Effect::FetchTimeline { node: n } if n == node)),
        "t asks for {node}'s timeline: {effects:?}"
    );
    // The boot view does not read the BMC.
    assert!(!effects.iter().any(|e| matches!(e, Effect::FetchBmc { .. })));
    app.update(Msg::Timeline {
        node: node.into(),
        answer: Ok(why),
    });
    app.update(key(KeyCode::Tab));
    app
}

/// Scrolls the focused detail pane until `needle` is its first row.
fn scroll_to(app: &mut App, w: u16, h: u16, needle: &str) {
    for _ in 0..80 {
        let buf = draw(app, w, h).backend().buffer().clone();
        let top = app.hits.detail.y + 1;
        match find(&buf, needle) {
            Some((_, y)) if y == top => return,
            Some((_, y)) if y < top => panic!("{needle:?} is above the pane"),
            _ => {
                app.update(ch('j'));
            }
        }
    }
    let screen = text(draw(app, w, h).backend().buffer());
    panic!("{needle:?} never reached the top of the detail pane:\n{screen}");
}

#[test]
fn boot_view_with_a_diagnosis() {
    let fx = fixture();
    for (w, h) in [(120, 40), (80, 24)] {
        let mut app = boot_detail(&fx, "p9-rack1-03", Some(stalled_boot()));
        scroll_to(&mut app, w, h, "Boot (started");
        let top = snap("boot_diagnosis", &mut app, w, h);
        // A short pane scrolls down to them.
        let mut bottom = top.clone();
        for _ in 0..40 {
            if find(&bottom, "ACK 10.77.0.13 209=http://10.77.0… (40 B)").is_some() {
                break;
            }
            app.update(ch('j'));
            bottom = draw(&mut app, w, h).backend().buffer().clone();
        }
        let buf = &top;
        let t = &app.theme;
        assert_text_role(t, buf, "✗ the petitboot config: its file", Role::Error);
        assert_text_role(t, buf, "[http] root is not", Role::Warning);
        // The stalled stretch: from the DHCP ACK until now, hatched.
        assert_text_role(t, buf, "config? 55 s", Role::Warning);
        assert_text_role(t, buf, "░", Role::Warning);
        assert_text_role(t, buf, "petitboot 31 s", Role::StateOk);
        assert_text_role(t, buf, "· kernel · kexec · up", Role::Muted);
        // The newest events, first in their list.
        assert_text_role(
            t,
            &bottom,
            "GET p9-rack1-03/config 404 0 B 3 ms",
            Role::Error,
        );
        assert!(find(&bottom, "ACK 10.77.0.13 209=http://10.77.0… (40 B)").is_some());
        assert_text_role(
            t,
            &bottom,
            "download failed \"Failed to download http://",
            Role::Error,
        );
    }
}

#[test]
fn boot_view_of_a_boot_that_reached_up() {
    let fx = fixture();
    for (w, h) in [(120, 40), (80, 24)] {
        let mut app = boot_detail(&fx, "p9-rack1-01", Some(good_boot()));
        scroll_to(&mut app, w, h, "Boot (started");
        let buf = snap("boot_up", &mut app, w, h);
        let t = &app.theme;
        assert_text_role(t, &buf, "booted: up 70 s after it began", Role::StateOk);
        assert!(find(&buf, "✗").is_none(), "no diagnosis");
        assert!(find(&buf, "░").is_none(), "nothing waited on");
        if w >= 120 {
            // Each stretch as wide as it took: power-on→petitboot (30 s)
            // wider than dhcp→config (0.5 s).
            let p = find(&buf, "petitboot 30 s").unwrap();
            let d = find(&buf, "dhcp 6.0 s").unwrap();
            let c = find(&buf, "config 0.5 s").unwrap();
            assert!(d.0 - p.0 > 25, "{p:?} {d:?}");
            assert!(c.0 - d.0 <= 15, "{d:?} {c:?}");
            assert!(
                find(&buf, "GET …/deploy_kernel 200 1.0 MiB 0.7 s 1.4 MiB/s").is_some(),
                "{}",
                text(&buf)
            );
            assert!(find(&buf, r#"kexec "kexec_core: Starting new kernel""#).is_some());
        }
    }
}

#[test]
fn boot_view_before_any_boot_and_while_loading() {
    let fx = fixture();
    let mut app = boot_detail(&fx, "p10-lab-01", None);
    let buf = draw(&mut app, 120, 40).backend().buffer().clone();
    assert_text_role(
        &app.theme,
        &buf,
        "no boot recorded for this node yet",
        Role::Muted,
    );
    // Another node, not answered yet.
    app.update(key(KeyCode::Tab));
    app.update(ch('j'));
    let buf = draw(&mut app, 120, 40).backend().buffer().clone();
    assert_text_role(&app.theme, &buf, "loading…", Role::Muted);
    assert!(find(&buf, "no boot recorded").is_none());
}

#[test]
fn hostile_timeline_text_is_escaped() {
    let fx = fixture();
    let mut app = boot_detail(&fx, "p9-rack1-02", Some(hostile_boot()));
    app.update(ch('G'));
    let buf = snap("boot_hostile", &mut app, 120, 40);
    let screen = text(&buf);
    for bad in ['\x1b', '\x07', '\r', '\u{202e}'] {
        assert!(!screen.contains(bad), "{bad:?} reached the screen");
    }
    assert!(
        screen.contains(r"served \x1b[5mnothing\u{202e}"),
        "{screen}"
    );
    assert!(
        screen.contains(r"\x1b[2J\x1b]0;pwned\x07Petitboot"),
        "{screen}"
    );
    assert!(screen.contains(r"wrong\x07 server\u{202e}evil"), "{screen}");
    assert!(screen.contains(r"con\x1b[31mfig"), "{screen}");
}

fn boot_status(app: &mut App, node: &str, stalled: Option<&str>) {
    app.update(Msg::Engine(EngineEvent::BootStatus {
        node: node.into(),
        reached: Some("dhcp".into()),
        stalled: stalled.map(Into::into),
    }));
}

#[test]
fn stalled_note_in_the_table_until_cleared() {
    let fx = fixture();
    let mut app = populated(&fx.lab);
    boot_status(
        &mut app,
        "p9-rack1-03",
        Some("DHCP answer: no DISCOVER from the node's MACs"),
    );
    let buf = snap("table_stalled", &mut app, 120, 32);
    assert_text_role(&app.theme, &buf, "stalled: DHCP", Role::Warning);
    // The log says it once; the full headline is in the detail pane.
    assert!(find(&buf, "boot stalled: DHCP answer").is_some());
    select(&mut app, "p9-rack1-03");
    app.update(key(KeyCode::Enter));
    let screen = text(draw(&mut app, 120, 32).backend().buffer());
    assert!(
        screen.contains("stalled  DHCP answer: no DISCOVER from the node's MACs"),
        "{screen}"
    );
    boot_status(&mut app, "p9-rack1-03", None);
    let screen = text(draw(&mut app, 120, 32).backend().buffer());
    assert!(!screen.contains("stalled"), "{screen}");
    // The console stage shows again.
    assert!(screen.contains("download failed"), "{screen}");
}
