use crossterm::event::KeyCode;

use super::*;
use crate::tui::app::{App, Effect, Msg};
use crate::tui::test_fixture::*;

fn fetches(effects: &[Effect]) -> Vec<String> {
    effects
        .iter()
        .filter_map(|e| match e {
            Effect::FetchTimeline { node } => Some(node.clone()),
            _ => None,
        })
        .collect()
}

#[test]
fn a_node_is_fetched_once_until_outdated_then_debounced() {
    let mut t = Timelines::default();
    assert!(t.due("n1", 1_000));
    assert!(!t.due("n1", 1_000), "already loading");
    t.deliver("n1", Ok(None), 1_500);
    assert_eq!(t.in_flight(), 0);
    assert!(!t.due("n1", 60_000), "an answer stands until outdated");
    // A BootStatus right after the fetch began: read again 2 s after it.
    t.outdate("n1");
    assert!(t.due("n1", 60_000));
    t.deliver("n1", Ok(None), 60_100);
    t.outdate("n1");
    assert!(!t.due("n1", 61_000), "debounced");
    assert!(t.due("n1", 62_000));
}

#[test]
fn failures_are_retried_later_and_unasked_answers_hold_no_slot() {
    let mut t = Timelines::default();
    assert!(t.due("n1", 0));
    t.deliver("n1", Err("no answer within 20 s".into()), 0);
    assert!(!t.due("n1", RETRY_AFTER - 1));
    assert!(t.due("n1", RETRY_AFTER));
    t.deliver("n1", Ok(None), RETRY_AFTER);
    // An answer nobody asked for is filed, and frees nothing.
    t.deliver("n2", Ok(None), 0);
    assert_eq!(t.in_flight(), 0);
    assert_eq!(t.get("n2").and_then(|e| e.value.clone()), Some(Ok(None)));
    // Outdating a node never fetched does not make it due.
    t.outdate("n3");
    assert!(t.get("n3").is_none());
}

#[test]
fn at_most_a_few_fetches_at_once() {
    let mut t = Timelines::default();
    let asked: Vec<bool> = (0..MAX_IN_FLIGHT + 2)
        .map(|i| t.due(&format!("n{i}"), 0))
        .collect();
    assert_eq!(asked.iter().filter(|a| **a).count(), MAX_IN_FLIGHT);
    t.deliver("n0", Ok(None), 1);
    assert!(t.due("n9", 1));
}

#[test]
fn a_long_boot_keeps_its_newest_events() {
    let mut why = good_boot();
    let first = why.boot.events[0].clone();
    while why.boot.events.len() < EVENTS_KEPT + 5 {
        why.boot.events.insert(0, first.clone());
    }
    let last = why.boot.events.last().cloned();
    let mut t = Timelines::default();
    t.deliver("p9-rack1-01", Ok(Some(why)), 0);
    let Some(Some(Ok(Some(kept)))) = t.get("p9-rack1-01").map(|e| e.value.clone()) else {
        panic!("no timeline");
    };
    assert_eq!(kept.boot.events.len(), EVENTS_KEPT);
    assert_eq!(kept.boot.dropped, 5);
    assert_eq!(kept.boot.events.last().cloned(), last);
}

#[test]
fn events_read_as_the_lab_saw_them() {
    let why = good_boot();
    let details: Vec<String> = why.boot.events.iter().map(detail).collect();
    assert_eq!(details[0], "power cycle by deploy");
    assert_eq!(details[2], "ACK 10.77.0.11 209=http://10.77.0… (40 B)");
    assert_eq!(
        details[3],
        "GET p9-rack1-01/config 200 412 B 4 ms 100.6 KiB/s"
    );
    assert_eq!(
        details[4],
        "GET …/deploy_kernel 200 1.0 MiB 0.7 s 1.4 MiB/s"
    );
    assert_eq!(details[6], r#"kexec "kexec_core: Starting new kernel""#);
    assert_eq!(details[7], "lookup: node p9-rack1-01 found");
    let stalled = stalled_boot();
    let fail: Vec<bool> = stalled.boot.events.iter().map(failed).collect();
    assert_eq!(
        fail,
        [false, false, false, false, false, false, false, true, true]
    );
}

#[test]
fn units() {
    assert_eq!(seconds(4), "4 ms");
    assert_eq!(seconds(4_200), "4.2 s");
    assert_eq!(seconds(47_900), "47 s");
    assert_eq!(seconds(200_000), "3 min 20 s");
    assert_eq!(bytes(30), "30 B");
    assert_eq!(bytes(1_536), "1.5 KiB");
    assert_eq!(bytes(3 * 1024 * 1024 * 1024), "3.0 GiB");
}

#[test]
fn the_bar_shares_its_width_by_duration() {
    let why = good_boot();
    let bar = stage_bar(&why.milestones, None);
    let labels: Vec<&str> = bar.segments.iter().map(|s| s.label.as_str()).collect();
    assert_eq!(
        labels,
        [
            "petitboot 30 s",
            "dhcp 6.0 s",
            "config 0.5 s",
            "kernel 1.5 s",
            "kexec 4.0 s",
            "up 28 s"
        ]
    );
    assert!(bar.unreached.is_empty());
    let w = widths(&bar.segments, 120).unwrap();
    assert_eq!(w.iter().sum::<usize>(), 120);
    assert!(w[0] > w[1] && w[5] > w[4] && w[4] > w[2]);
    assert!(widths(&bar.segments, 40).is_none(), "labels do not fit");

    // A stalled boot: the stretch waited on, then what it never reached.
    let stalled = stalled_boot();
    let bar = stage_bar(&stalled.milestones, Some(55_900));
    let last = bar.segments.last().unwrap();
    assert!(last.waiting);
    assert_eq!(last.label, "config? 55 s");
    assert_eq!(
        bar.unreached,
        [Milestone::Kernel, Milestone::Kexec, Milestone::Up]
    );
}

fn status(app: &mut App, node: &str, stalled: Option<&str>) -> Vec<Effect> {
    app.update(Msg::Engine(crate::engine::lab::EngineEvent::BootStatus {
        node: node.into(),
        reached: None,
        stalled: stalled.map(Into::into),
    }))
}

/// The App on `node`'s boot view (nothing answered yet).
fn on_boot_view(app: &mut App, node: &str) -> Vec<Effect> {
    select(app, node);
    app.update(ch('t'))
}

#[test]
fn node_a_timeline_never_shows_under_node_b() {
    let fx = fixture();
    let mut app = populated(&fx.lab);
    assert_eq!(
        fetches(&on_boot_view(&mut app, "p9-rack1-03")),
        ["p9-rack1-03"]
    );
    // Moving to the node above before p9-rack1-03's answer comes: its own fetch.
    let effects = app.update(key(KeyCode::Up));
    let b = app.selected_name().unwrap().to_string();
    assert_eq!(b, "p9-rack1-02");
    assert_eq!(fetches(&effects), vec![b.as_str()]);
    // p9-rack1-03's late answer is filed under it, not shown under b.
    app.update(Msg::Timeline {
        node: "p9-rack1-03".into(),
        answer: Ok(Some(stalled_boot())),
    });
    let screen = text(draw(&mut app, 120, 40).backend().buffer());
    assert!(!screen.contains("petitboot config"), "{screen}");
    assert!(!screen.contains("10.77.0.13"), "{screen}");
    assert!(screen.contains("loading…"), "{screen}");
    // b's answer shows under b.
    app.update(Msg::Timeline {
        node: b.clone(),
        answer: Ok(None),
    });
    let screen = text(draw(&mut app, 120, 40).backend().buffer());
    assert!(screen.contains("no boot recorded"), "{screen}");
    // Back on p9-rack1-03: its answer is there, no new fetch needed.
    let effects = app.update(key(KeyCode::Down));
    assert_eq!(app.selected_name(), Some("p9-rack1-03"));
    assert!(fetches(&effects).is_empty());
    let screen = text(draw(&mut app, 120, 40).backend().buffer());
    assert!(screen.contains("✗ the petitboot config"), "{screen}");
}

#[test]
fn boot_status_marks_the_row_and_refetches_the_shown_timeline() {
    let fx = fixture();
    let mut app = populated(&fx.lab);
    on_boot_view(&mut app, "p9-rack1-03");
    app.update(Msg::Timeline {
        node: "p9-rack1-03".into(),
        answer: Ok(Some(stalled_boot())),
    });
    status(&mut app, "p9-rack1-03", Some("no config"));
    assert_eq!(
        app.row("p9-rack1-03").unwrap().stalled.as_deref(),
        Some("no config")
    );
    // The next message (a tick, 2 s after the fetch) reads it again.
    let effects = app.update(Msg::Tick(NOW + 2_000));
    assert_eq!(fetches(&effects), ["p9-rack1-03"]);
    // Many statuses in a burst: one fetch at a time, then debounced.
    for _ in 0..5 {
        // (an engine event's update() itself may ask; the burst asks nothing)
        assert!(fetches(&status(&mut app, "p9-rack1-03", Some("no config"))).is_empty());
        assert!(fetches(&app.update(Msg::Tick(NOW + 2_500))).is_empty());
    }
    app.update(Msg::Timeline {
        node: "p9-rack1-03".into(),
        answer: Ok(Some(stalled_boot())),
    });
    assert!(fetches(&app.update(Msg::Tick(NOW + 3_000))).is_empty());
    assert_eq!(
        fetches(&app.update(Msg::Tick(NOW + 4_500))),
        ["p9-rack1-03"]
    );
    // Statuses of a node not shown fetch nothing.
    status(&mut app, "p8-rack2-01", Some("no DHCP"));
    assert!(fetches(&app.update(Msg::Tick(NOW + 9_000))).is_empty());
}

#[test]
fn the_bmc_view_reads_the_bmc_and_the_boot_view_the_timeline() {
    let fx = fixture();
    let mut app = populated(&fx.lab);
    select(&mut app, "p9-rack1-01");
    let effects = app.update(key(KeyCode::Enter));
    assert!(effects.iter().any(|e| matches!(e, Effect::FetchBmc { .. })));
    assert!(fetches(&effects).is_empty());
    let effects = app.update(ch('t'));
    assert_eq!(fetches(&effects), ["p9-rack1-01"]);
    // Back to the BMC view: nothing more fetched for the timeline.
    let effects = app.update(ch('t'));
    assert!(fetches(&effects).is_empty());
}

#[test]
fn a_stalled_bar_is_redrawn_as_it_waits() {
    let fx = fixture();
    let mut app = populated(&fx.lab);
    on_boot_view(&mut app, "p9-rack1-03");
    app.update(Msg::Timeline {
        node: "p9-rack1-03".into(),
        answer: Ok(Some(stalled_boot())),
    });
    draw(&mut app, 120, 40);
    app.update(Msg::Tick(NOW + 1_000));
    assert!(app.needs_redraw(), "the waited seconds changed");
    let screen = text(draw(&mut app, 120, 40).backend().buffer());
    assert!(screen.contains("config? 56 s"), "{screen}");
}

#[test]
fn the_lab_service_answers_parse_as_sent() {
    // What the service's `why` and `stage-stats` send, read back.
    let why = stalled_boot();
    let sent = serde_json::to_value(Some(&why)).unwrap();
    let read: Option<crate::timeline::diagnose::Why> = serde_json::from_value(sent).unwrap();
    assert_eq!(read, Some(why));
    let stats = stage_stats();
    let sent = serde_json::to_value(&stats).unwrap();
    let read: Vec<StageStats> = serde_json::from_value(sent).unwrap();
    assert_eq!(read, stats);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_engine_in_process_answers_through_the_backend() {
    let fx = fixture();
    let (engine, _events) =
        crate::engine::lab::Engine::open(std::sync::Arc::new(fx.lab.clone())).unwrap();
    let t0 = NOW - 60_000;
    engine.boot_begins("p9-rack1-01", t0, "on", Some("pxe"));
    let backend = crate::tui::backend::Backend::local(engine);
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    backend.timeline("p9-rack1-01".into(), &tx);
    backend.timeline("no-such-node".into(), &tx);
    backend.stage_stats(&tx);
    let mut seen = Vec::new();
    for _ in 0..3 {
        let msg = tokio::time::timeout(std::time::Duration::from_secs(10), rx.recv())
            .await
            .expect("an answer within 10 s")
            .expect("the channel open");
        seen.push(msg);
    }
    let mut boots = 0;
    for msg in seen {
        match msg {
            Msg::Timeline { node, answer } if node == "p9-rack1-01" => {
                let why = answer.expect("a timeline").expect("a boot");
                assert_eq!(why.boot.node, "p9-rack1-01");
                assert_eq!(why.milestones.at(Milestone::PowerOn), Some(t0));
                boots += 1;
            }
            Msg::Timeline { node, answer } => {
                assert_eq!(node, "no-such-node");
                let why = answer.expect_err("no such node");
                assert!(why.contains("no-such-node"), "{why}");
            }
            Msg::Stages(answer) => {
                // One boot: no stretch between two milestones yet.
                assert_eq!(answer, Ok(Vec::new()));
            }
            _ => panic!("an unexpected message"),
        }
    }
    assert_eq!(boots, 1);
}
