use crossterm::event::KeyCode;

use super::*;
use crate::engine::lab::Action;
use crate::engine::lifecycle::{State, Step};
use crate::ipmi::chassis::{BootDevice, PowerAction};
use crate::tui::test_fixture::*;
use crate::tui::theme::Role;

fn engine_commands(effects: &[Effect]) -> Vec<(Action, String)> {
    effects
        .iter()
        .filter_map(|e| match e {
            Effect::Engine(c) => Some((c.action, c.node.clone())),
            _ => None,
        })
        .collect()
}

fn shown(app: &App) -> Vec<&str> {
    app.view
        .iter()
        .map(|&i| app.rows[i].name.as_str())
        .collect()
}

#[test]
fn rows_follow_the_lab_sorted_by_name() {
    let fx = fixture();
    let app = app(&fx.lab);
    assert_eq!(
        shown(&app),
        [
            "p10-lab-01",
            "p8-rack2-01",
            "p8-rack2-02",
            "p9-rack1-01",
            "p9-rack1-02",
            "p9-rack1-03"
        ]
    );
    assert_eq!(app.selected_name(), Some("p10-lab-01"));
    assert!(app.needs_redraw());
}

#[test]
fn vim_keys_and_arrows_move_within_bounds() {
    let fx = fixture();
    let mut app = app(&fx.lab);
    app.update(ch('j'));
    app.update(key(KeyCode::Down));
    assert_eq!(app.cursor, 2);
    app.update(ch('k'));
    assert_eq!(app.cursor, 1);
    app.update(ch('G'));
    assert_eq!(app.selected_name(), Some("p9-rack1-03"));
    app.update(ch('j'));
    assert_eq!(app.cursor, 5, "stays on the last row");
    app.update(ch('g'));
    assert_eq!(app.cursor, 0);
    app.update(key(KeyCode::Up));
    assert_eq!(app.cursor, 0, "stays on the first row");
    app.update(key(KeyCode::End));
    assert_eq!(app.cursor, 5);
    app.update(key(KeyCode::PageUp));
    assert_eq!(app.cursor, 0);
    app.update(key(KeyCode::PageDown));
    assert_eq!(app.cursor, 5);
}

#[test]
fn filter_matches_name_state_and_group_and_esc_restores() {
    let fx = fixture();
    let mut app = populated(&fx.lab);
    app.update(ch('/'));
    assert_eq!(app.mode(), Mode::Filter);
    type_text(&mut app, "rack2");
    assert_eq!(shown(&app), ["p8-rack2-01", "p8-rack2-02"]);
    app.update(key(KeyCode::Enter));
    assert_eq!(app.mode(), Mode::Normal);
    assert_eq!(app.filter_text, "rack2");

    // Esc while editing restores the filter from before.
    app.update(ch('/'));
    app.update(ctrl('u'));
    type_text(&mut app, "state:active");
    assert_eq!(shown(&app), ["p9-rack1-01"]);
    app.update(key(KeyCode::Esc));
    assert_eq!(shown(&app), ["p8-rack2-01", "p8-rack2-02"]);

    command(&mut app, "filter group:rack1 failed");
    assert_eq!(shown(&app), ["p9-rack1-03"]);
    command(&mut app, "filter power:on");
    assert_eq!(shown(&app), ["p9-rack1-01", "p9-rack1-02"]);
    command(&mut app, "filter stage:login");
    assert_eq!(shown(&app), ["p9-rack1-01"]);
    command(&mut app, "filter nothing-like-this");
    assert!(shown(&app).is_empty());
    assert_eq!(app.selected_name(), None);
    // Esc in the table clears the filter.
    app.update(key(KeyCode::Esc));
    assert_eq!(shown(&app).len(), 6);
}

#[test]
fn filter_words_with_brackets_or_commas_are_node_ranges() {
    let fx = fixture();
    let mut app = populated(&fx.lab);
    app.update(ch('/'));
    // Half-typed: every row stays, and the line says what is wrong.
    type_text(&mut app, "p9-rack1-[01-0");
    assert_eq!(shown(&app).len(), 6);
    assert_eq!(
        app.filter_problem.as_deref(),
        Some(r#""p9-rack1-[01-0" column 10: '[' is never closed"#)
    );
    let terminal = draw(&mut app, 100, 24);
    assert_text_role(
        &app.theme,
        terminal.backend().buffer(),
        "column 10: '[' is never closed",
        Role::Error,
    );
    type_text(&mut app, "2]");
    assert_eq!(shown(&app), ["p9-rack1-01", "p9-rack1-02"]);
    assert_eq!(app.filter_problem, None);
    app.update(key(KeyCode::Enter));
    assert_eq!(app.flash, None, "a good range flashes nothing");

    command(&mut app, "filter group:rack1,-p9-rack1-02");
    assert_eq!(shown(&app), ["p9-rack1-01", "p9-rack1-03"]);
    // Exact states, several at once; sorted as the table is.
    command(&mut app, "filter state:error,state:active");
    assert_eq!(shown(&app), ["p8-rack2-02", "p9-rack1-01"]);
    // Ranges and text terms must all match.
    command(&mut app, "filter group:rack1,group:rack2 power:on");
    assert_eq!(shown(&app), ["p9-rack1-01", "p9-rack1-02"]);
    command(&mut app, "filter all,-group:rack1 rack");
    assert_eq!(shown(&app), ["p8-rack2-01", "p8-rack2-02"]);

    // A term that matches no node: the others still filter, and it is named.
    command(&mut app, "filter p9-rack1-03,p9-rack9-[01-02]");
    assert_eq!(shown(&app), ["p9-rack1-03"]);
    assert_eq!(
        app.flash.as_ref().unwrap().text,
        "filter: p9-rack9-[01-02] matches no node"
    );
    // A bad range filters nothing out, and says why.
    command(&mut app, "filter n[5-1] rack1");
    assert_eq!(shown(&app), ["p9-rack1-01", "p9-rack1-02", "p9-rack1-03"]);
    let flash = app.flash.as_ref().unwrap();
    assert!(flash.error);
    assert_eq!(
        flash.text,
        r#"filter: "n[5-1]" column 3: range 5-1 runs backwards (write 1-5)"#
    );
    command(&mut app, "filter state:nope,p9");
    assert_eq!(shown(&app).len(), 6);
    assert!(app.flash.as_ref().unwrap().text.contains("unknown state"));
    // A word starting with '-' is still text to look for.
    command(&mut app, "filter -01");
    assert_eq!(shown(&app), ["p10-lab-01", "p8-rack2-01", "p9-rack1-01"]);
    assert_eq!(app.filter_problem, None);
}

#[test]
fn commands_take_node_ranges() {
    let fx = fixture();
    let mut app = populated(&fx.lab);
    // Named nodes need not be shown.
    command(&mut app, "filter p10");
    let effects = command(&mut app, "bootdev pxe group:rack2");
    let pxe = Action::BootDevice(BootDevice::Pxe);
    assert_eq!(
        engine_commands(&effects),
        [
            (pxe, "p8-rack2-01".to_string()),
            (pxe, "p8-rack2-02".to_string())
        ]
    );
    // The lab's order, each node once.
    let on = Action::Power(PowerAction::On);
    let effects = command(
        &mut app,
        "power on p9-rack1-[01-03],-p9-rack1-02 p8-rack2-01 p9-rack1-01",
    );
    assert_eq!(
        engine_commands(&effects),
        [
            (on, "p9-rack1-01".to_string()),
            (on, "p9-rack1-03".to_string()),
            (on, "p8-rack2-01".to_string())
        ]
    );
    // Destructive: confirmed first, on the range's nodes.
    assert!(command(&mut app, "deploy state:deploy-failed,state:available").is_empty());
    assert_eq!(app.mode(), Mode::Confirm);
    assert_eq!(
        app.confirm.as_ref().unwrap().nodes,
        ["p9-rack1-03", "p8-rack2-01"]
    );
    app.update(ch('n'));
    // Unmatched terms: every one named, nothing done.
    assert!(command(&mut app, "power on p9-rack9-[01-02],group:nope,p10-lab-01").is_empty());
    assert_eq!(
        app.flash.as_ref().unwrap().text,
        "p9-rack9-[01-02], group:nope match no node in lab.toml"
    );
    assert!(command(&mut app, "power on group:rack2,-group:rack2").is_empty());
    assert_eq!(
        app.flash.as_ref().unwrap().text,
        "group:rack2,-group:rack2 leaves no node"
    );
    assert!(command(&mut app, "power on p9-rack1-[1-").is_empty());
    assert_eq!(
        app.flash.as_ref().unwrap().text,
        r#""p9-rack1-[1-" column 10: '[' is never closed"#
    );
    assert_eq!(app.mode(), Mode::Normal);
    // The wall too.
    command(&mut app, "wall group:rack2");
    assert_eq!(app.mode(), Mode::Wall);
    assert_eq!(
        app.wall.as_ref().unwrap().nodes,
        ["p8-rack2-01", "p8-rack2-02"]
    );
}

#[test]
fn sort_cycles_columns_and_keeps_the_selection() {
    let fx = fixture();
    let mut app = populated(&fx.lab);
    select(&mut app, "p9-rack1-02");
    app.update(ch('o'));
    assert_eq!(app.sort, Column::Power);
    assert_eq!(
        app.selected_name(),
        Some("p9-rack1-02"),
        "the selection follows its node"
    );
    assert_eq!(
        &shown(&app)[..2],
        ["p9-rack1-01", "p9-rack1-02"],
        "on first"
    );
    app.update(ch('o'));
    app.update(ch('o'));
    assert_eq!(app.sort, Column::State);
    assert_eq!(
        shown(&app)[..3],
        ["p9-rack1-03", "p8-rack2-02", "p9-rack1-02"],
        "trouble first"
    );
    app.update(ch('O'));
    assert!(app.descending);
    assert_eq!(
        shown(&app)[0],
        "p9-rack1-01",
        "active last, so first reversed"
    );
    for _ in 0..4 {
        app.update(ch('o'));
    }
    assert_eq!(app.sort, Column::Name);
    command(&mut app, "sort last");
    assert_eq!(app.sort, Column::Last);
    assert!(!app.descending);
}

#[test]
fn marks_choose_the_targets_of_bulk_actions() {
    let fx = fixture();
    let mut app = populated(&fx.lab);
    select(&mut app, "p8-rack2-01");
    app.update(ch(' '));
    assert_eq!(
        app.selected_name(),
        Some("p8-rack2-02"),
        "marking moves down"
    );
    app.update(ch(' '));
    assert_eq!(app.marked(), ["p8-rack2-01", "p8-rack2-02"]);
    let effects = app.update(ch('b'));
    assert_eq!(
        engine_commands(&effects),
        [
            (
                Action::BootDevice(BootDevice::Pxe),
                "p8-rack2-01".to_string()
            ),
            (
                Action::BootDevice(BootDevice::Pxe),
                "p8-rack2-02".to_string()
            )
        ]
    );
    // Marked nodes hidden by the filter are not targets.
    command(&mut app, "filter p8-rack2-01");
    assert_eq!(app.marked(), ["p8-rack2-01"]);
    command(&mut app, "filter");
    // ctrl-a marks every shown node; again unmarks them.
    app.update(ctrl('a'));
    assert_eq!(app.marked().len(), 6);
    app.update(ctrl('a'));
    assert!(app.marked().is_empty());
    // Without marks, the selected node.
    select(&mut app, "p10-lab-01");
    let effects = app.update(ch('p'));
    assert_eq!(
        engine_commands(&effects),
        [(Action::Power(PowerAction::On), "p10-lab-01".to_string())]
    );
    // Esc clears marks.
    app.update(ch(' '));
    app.update(key(KeyCode::Esc));
    assert!(app.marked().is_empty());
}

#[test]
fn destructive_actions_ask_first_and_no_is_the_default() {
    let fx = fixture();
    let mut app = populated(&fx.lab);
    select(&mut app, "p8-rack2-01");
    let effects = app.update(ch('d'));
    assert!(effects.is_empty());
    assert_eq!(app.mode(), Mode::Confirm);
    let confirm = app.confirm.clone().unwrap();
    assert_eq!(confirm.action, Action::Deploy);
    assert_eq!(confirm.nodes, ["p8-rack2-01"]);
    assert!(!confirm.yes_focused);
    // Enter on the default button does nothing destructive.
    let effects = app.update(key(KeyCode::Enter));
    assert!(engine_commands(&effects).is_empty());
    assert_eq!(app.mode(), Mode::Normal);
    assert!(app.confirm.is_none());

    // Move to Yes, then Enter.
    app.update(ch('P'));
    app.update(key(KeyCode::Right));
    assert!(app.confirm.as_ref().unwrap().yes_focused);
    app.update(key(KeyCode::Left));
    assert!(!app.confirm.as_ref().unwrap().yes_focused);
    app.update(key(KeyCode::Tab));
    let effects = app.update(key(KeyCode::Enter));
    assert_eq!(
        engine_commands(&effects),
        [(Action::Power(PowerAction::Off), "p8-rack2-01".to_string())]
    );

    // y confirms at once; n and Esc cancel.
    app.update(ch('C'));
    let effects = app.update(ch('y'));
    assert_eq!(
        engine_commands(&effects),
        [(Action::Power(PowerAction::Cycle), "p8-rack2-01".to_string())]
    );
    for cancel in [ch('n'), key(KeyCode::Esc)] {
        app.update(ch('U'));
        assert_eq!(app.mode(), Mode::Confirm);
        assert!(app.update(cancel).is_empty());
        assert_eq!(app.mode(), Mode::Normal);
    }
    // Other keys do nothing while the dialog is up.
    app.update(ch('A'));
    assert!(app.update(ch('d')).is_empty());
    assert!(app.update(ch('p')).is_empty());
    assert_eq!(app.mode(), Mode::Confirm);
    assert_eq!(app.confirm.as_ref().unwrap().action, Action::Abort);
    // Each destructive key asks; the others do not.
    for (c, destructive) in [('X', true), ('R', false), ('N', false), ('B', false)] {
        app.mode = Mode::Normal;
        app.confirm = None;
        let effects = app.update(ch(c));
        assert_eq!(app.mode() == Mode::Confirm, destructive, "{c}");
        assert_eq!(
            engine_commands(&effects).len(),
            usize::from(!destructive),
            "{c}"
        );
    }
}

#[test]
fn read_only_refuses_every_action() {
    let fx = fixture();
    let mut app = App::new(&fx.lab, Theme::dark(), Keymap::default(), true);
    app.update(ctrl('a'));
    let mut effects = Vec::new();
    for c in ['p', 'P', 'C', 'X', 'b', 'B', 'N', 'R', 'd', 'U', 'A'] {
        effects.extend(app.update(ch(c)));
        assert_eq!(app.mode(), Mode::Normal, "{c}: no confirm in read-only");
        let flash = app.flash.clone().unwrap();
        assert!(
            flash.error && flash.text.starts_with("read-only: "),
            "{c}: {flash:?}"
        );
    }
    for line in [
        "deploy",
        "power cycle p9-rack1-01",
        "bootdev pxe",
        "abort",
        "prepare",
    ] {
        effects.extend(command(&mut app, line));
    }
    assert!(engine_commands(&effects).is_empty());
    // Watching a console is fine; typing into it is not.
    app.update(ch('c'));
    assert_eq!(app.mode(), Mode::Console);
    app.update(ch('i'));
    let effects = app.update(ch('x'));
    assert!(
        !effects
            .iter()
            .any(|e| matches!(e, Effect::ConsoleInput { .. } | Effect::Engine(_)))
    );
    assert!(app.flash.as_ref().unwrap().text.contains("read-only"));
}

#[test]
fn command_line_runs_actions_and_view_commands() {
    let fx = fixture();
    let mut app = populated(&fx.lab);
    select(&mut app, "p9-rack1-01");
    app.update(ch(':'));
    assert_eq!(app.mode(), Mode::Command);
    type_text(&mut app, "bootdev pxe p8-rack2-01 p8-rack2-02");
    let effects = app.update(key(KeyCode::Enter));
    assert_eq!(
        engine_commands(&effects),
        [
            (
                Action::BootDevice(BootDevice::Pxe),
                "p8-rack2-01".to_string()
            ),
            (
                Action::BootDevice(BootDevice::Pxe),
                "p8-rack2-02".to_string()
            )
        ]
    );
    assert_eq!(app.mode(), Mode::Normal);
    // Destructive: through the confirm dialog, on the selected node.
    app.update(ch(':'));
    type_text(&mut app, "power cycle");
    app.update(key(KeyCode::Enter));
    assert_eq!(app.mode(), Mode::Confirm);
    assert_eq!(app.confirm.as_ref().unwrap().nodes, ["p9-rack1-01"]);
    app.update(ch('n'));
    // Mistakes flash and do nothing.
    assert!(command(&mut app, "deploy p9-nope").is_empty());
    assert_eq!(
        app.flash.as_ref().unwrap().text,
        "p9-nope matches no node in lab.toml"
    );
    assert!(command(&mut app, "power sideways").is_empty());
    assert!(app.flash.as_ref().unwrap().error);
    // Backspace and ctrl-w edit; Esc cancels.
    app.update(ch(':'));
    type_text(&mut app, "deploy p9 x");
    app.update(key(KeyCode::Backspace));
    app.update(ctrl('w'));
    assert_eq!(app.input, "deploy ");
    assert!(app.update(key(KeyCode::Esc)).is_empty());
    assert_eq!(app.mode(), Mode::Normal);
    // Theme and quit.
    command(&mut app, "theme light");
    assert_eq!(app.theme.name, "light");
    assert!(command(&mut app, "theme neon").is_empty());
    assert!(matches!(command(&mut app, "q")[..], [Effect::Quit]));
    assert!(matches!(app.update(ch('q'))[..], [Effect::Quit]));
}

#[test]
fn detail_asks_for_previews_of_the_selected_node() {
    let fx = fixture();
    let mut app = populated(&fx.lab);
    select(&mut app, "p9-rack1-01");
    let effects = app.update(key(KeyCode::Enter));
    assert!(app.detail_open);
    assert!(
        matches!(&effects[..], [Effect::Preview { node, stage: crate::boot::Stage::Deploy }, ..] if node == "p9-rack1-01")
    );
    // A preview for the selected node is shown; one for another is dropped.
    app.update(Msg::Preview(preview(
        &fx,
        "p9-rack1-02",
        crate::boot::Stage::Deploy,
        None,
    )));
    assert!(app.preview.is_none());
    app.update(Msg::Preview(preview(
        &fx,
        "p9-rack1-01",
        crate::boot::Stage::Deploy,
        None,
    )));
    assert_eq!(app.preview.as_ref().unwrap().node, "p9-rack1-01");
    // Moving asks for the next node's.
    let effects = app.update(ch('j'));
    assert!(matches!(&effects[..], [Effect::Preview { node, .. }, ..] if node == "p9-rack1-02"));
    assert!(app.preview.is_none());
    // s: the other stage; r: again.
    let effects = app.update(ch('s'));
    assert!(matches!(
        &effects[..],
        [Effect::Preview {
            stage: crate::boot::Stage::Instance,
            ..
        }]
    ));
    let effects = app.update(ch('r'));
    assert_eq!(effects.len(), 1);
    // Tab focuses the detail pane: j scrolls it instead of moving.
    app.update(key(KeyCode::Tab));
    assert_eq!(app.focus, Focus::Detail);
    app.update(ch('j'));
    assert_eq!(app.detail_scroll, 1);
    assert_eq!(app.selected_name(), Some("p9-rack1-02"));
    app.update(key(KeyCode::Esc));
    assert_eq!(app.focus, Focus::Table);
    // A finished action on the shown node asks again (the file on disk may have changed).
    let effects = app.update(Msg::Engine(EngineEvent::Finished {
        node: "p9-rack1-02".into(),
        action: Action::PrepareRamdisk,
        ok: true,
        state: None,
        message: "deploy config written".into(),
    }));
    assert_eq!(effects.len(), 1);
    // Closed: no more previews.
    app.update(key(KeyCode::Enter));
    assert!(!app.detail_open);
    assert!(app.update(ch('k')).is_empty());
}

#[test]
fn engine_events_update_rows_log_and_flash() {
    let fx = fixture();
    let mut app = populated(&fx.lab);
    let row = app.row("p9-rack1-02").unwrap();
    assert_eq!(row.state_text(), "deploying: write-image 43%");
    assert_eq!(row.holder.as_deref(), Some("ops@lab-admin pid 4242"));
    assert_eq!(app.row("p9-rack1-01").unwrap().watts.len(), 12);
    assert!(app.row("p8-rack2-01").unwrap().stale(NOW));
    assert!(!app.row("p9-rack1-01").unwrap().stale(NOW));

    // Progress lines of one step replace each other.
    let before = app.log.len();
    for f in [0.5, 0.6] {
        app.update(Msg::Engine(EngineEvent::Progress {
            node: "p9-rack1-02".into(),
            step: Step::WriteImage,
            message: "writing".into(),
            fraction: Some(f),
        }));
    }
    assert_eq!(app.log.len(), before);
    assert_eq!(app.log.back().unwrap().text, "write-image 60%: writing");

    app.update(Msg::Engine(EngineEvent::State {
        node: "p9-rack1-02".into(),
        state: State::Deploying,
        step: Some(Step::PrepareInstance),
        reason: None,
    }));
    assert_eq!(
        app.row("p9-rack1-02").unwrap().state_text(),
        "deploying: prepare-instance"
    );
    app.update(Msg::Engine(EngineEvent::Finished {
        node: "p9-rack1-02".into(),
        action: Action::Deploy,
        ok: false,
        state: Some(State::DeployFailed),
        message: "wait-active: no login prompt within 600 s".into(),
    }));
    let row = app.row("p9-rack1-02").unwrap();
    assert_eq!(row.state, "deploy-failed");
    assert_eq!(row.last.as_ref().unwrap().ok, Some(false));
    assert_eq!(row.history.back().unwrap().result, "failed");
    let flash = app.flash.clone().unwrap();
    assert!(flash.error);
    assert_eq!(
        flash.text,
        "p9-rack1-02: deploy failed: wait-active: no login prompt within 600 s"
    );
    // The flash goes after a few ticks.
    for t in 1..=FLASH_TICKS {
        assert!(app.flash.is_some());
        app.update(Msg::Tick(NOW + i64::from(t) * 1000));
    }
    assert!(app.flash.is_none());

    for w in 0..40 {
        app.update(Msg::Engine(EngineEvent::PowerDraw {
            node: "p9-rack1-01".into(),
            watts: w,
            at: NOW,
        }));
    }
    assert_eq!(
        app.row("p9-rack1-01").unwrap().watts.len(),
        model::WATTS_KEPT
    );
    // Events about nodes not in the lab are ignored.
    app.update(Msg::Engine(EngineEvent::State {
        node: "ghost".into(),
        state: State::Active,
        step: None,
        reason: None,
    }));
}
