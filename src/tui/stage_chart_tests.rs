//! The stage durations chart: fetched when opened, drawn with the slowest
//! node of each stretch, closed by its keys.

use crossterm::event::KeyCode;

use crate::tui::app::{Effect, Mode, Msg};
use crate::tui::test_fixture::*;
use crate::tui::theme::Role;

#[test]
fn stage_chart_is_read_when_opened_and_names_the_slowest_nodes() {
    let fx = fixture();
    let mut app = populated(&fx.lab);
    let effects = app.update(ch('T'));
    assert_eq!(app.mode(), Mode::Stages);
    assert!(effects.iter().any(|e| matches!(e, Effect::FetchStages)));
    // Asked once while the answer is on its way.
    assert!(
        !app.update(ch('r'))
            .iter()
            .any(|e| matches!(e, Effect::FetchStages))
    );
    let screen = text(draw(&mut app, 120, 32).backend().buffer());
    assert!(screen.contains("reading…"), "{screen}");
    app.update(Msg::Stages(Ok(stage_stats())));
    let terminal = draw(&mut app, 120, 32);
    insta::assert_snapshot!("stage_chart_120x32", terminal.backend());
    let buf = terminal.backend().buffer().clone();
    let t = &app.theme;
    assert_text_role(t, &buf, "power-on→petitboot median", Role::Text);
    assert_text_role(t, &buf, "14 boots · slowest", Role::Muted);
    assert!(find(&buf, "14 boots · slowest: p8-rack2-01").is_some());
    assert!(find(&buf, "11 boots · slowest: p8-rack2-02").is_some());
    // The longest stretch's max bar is the longest bar: kexec→up, 61 s.
    let row = find(&buf, "61 s").expect("kexec→up max").1;
    let bar_len = |y: u16| {
        (buf.area.left()..buf.area.right())
            .filter(|&x| buf[(x, y)].symbol() == "█")
            .count()
    };
    let median_row = find(&buf, "5.2 s").expect("petitboot→dhcp median").1;
    assert!(bar_len(row) > 3 * bar_len(median_row));
    let (x, y) = find(&buf, "61 s").unwrap();
    assert_role(t, &buf, (x + 5, y), Role::Warning);
    // r reads again; q closes.
    assert!(
        app.update(ch('r'))
            .iter()
            .any(|e| matches!(e, Effect::FetchStages))
    );
    app.update(key(KeyCode::Esc));
    assert_eq!(app.mode(), Mode::Normal);
}

#[test]
fn stage_chart_says_why_it_is_empty() {
    let fx = fixture();
    let mut app = populated(&fx.lab);
    app.update(ch('T'));
    app.update(Msg::Stages(Err(
        "the lab service has no method stage-stats".into(),
    )));
    let buf = draw(&mut app, 80, 24).backend().buffer().clone();
    assert_text_role(
        &app.theme,
        &buf,
        "cannot read the durations: the lab service",
        Role::Error,
    );
    app.update(ch('T'));
    assert_eq!(app.mode(), Mode::Normal);
    app.update(ch('T'));
    app.update(Msg::Stages(Ok(Vec::new())));
    let screen = text(draw(&mut app, 80, 24).backend().buffer());
    assert!(screen.contains("no boots recorded yet"), "{screen}");
}
