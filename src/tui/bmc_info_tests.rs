use crossterm::event::KeyCode;
use serde_json::json;

use super::*;
use crate::tui::app::{App, Effect, Msg};
use crate::tui::test_fixture::*;

fn fetches(effects: &[Effect]) -> Vec<(String, Info)> {
    effects
        .iter()
        .filter_map(|e| match e {
            Effect::FetchBmc { node, what } => Some((node.clone(), *what)),
            _ => None,
        })
        .collect()
}

fn events_of(n: usize) -> serde_json::Value {
    let list: Vec<_> = (0..n)
        .map(|i| {
            json!({"id": format!("{i:x}"), "record_id": i, "time": "2025-11-24T15:00:00Z",
                   "pre_init_seconds": null, "sensor_type": "Temperature", "sensor_number": 1,
                   "direction": "asserted", "severity": null, "message": format!("event {i}")})
        })
        .collect();
    json!({"events": list, "cleared": false, "summary": format!("{n} events")})
}

fn inventory() -> serde_json::Value {
    json!({"inventory": {
        "chassis": [{"name": "Chassis Type", "value": "Rack Mount Chassis"}],
        "board": [{"name": "Board Mfg Date", "value": "Mon Jan  8 10:00:00 2018"},
                  {"name": "Board Mfg", "value": "Supermicro"},
                  {"name": "Board Serial", "value": "VM18AS600179"}],
        "product": [{"name": "Product Name", "value": "9006-22P"},
                    {"name": "Product Manufacturer", "value": "IBM"}],
        "problems": []}, "summary": "6 inventory fields"})
}

#[test]
fn the_toolbox_json_parses_newest_events_last_and_key_fields_in_order() {
    let Fetched::Events { result, .. } =
        Fetched::parse("n".into(), Info::Events, Ok(events_of(20)))
    else {
        panic!("events")
    };
    let events = result.unwrap();
    assert_eq!(events.len(), EVENTS_KEPT);
    assert_eq!(events.first().unwrap().message, "event 12");
    assert_eq!(events.last().unwrap().message, "event 19");
    assert_eq!(events[0].direction.as_deref(), Some("asserted"));

    let fru = parse_inventory(&inventory()).unwrap();
    let shown: Vec<&str> = fru.shown(7).iter().map(|f| f.name.as_str()).collect();
    // KEY_FIELDS order, whatever the BMC's; absent ones skipped.
    assert_eq!(
        shown,
        [
            "Board Mfg",
            "Board Serial",
            "Product Manufacturer",
            "Product Name"
        ]
    );
    // None of the key fields: the first ones it gave.
    let redfishish = Fru {
        chassis: vec![FruField {
            name: "Chassis Type".into(),
            value: "RackMount".into(),
        }],
        ..Fru::default()
    };
    assert_eq!(redfishish.shown(7)[0].name, "Chassis Type");

    // A BMC that answers nonsense, or huge strings.
    assert!(parse_events(&json!({"summary": "x"})).is_err());
    assert!(parse_events(&json!({"events": [{"message": 5}]})).is_err());
    assert!(parse_inventory(&json!({"events": []})).is_err());
    let long = "é".repeat(5000);
    let fru =
        parse_inventory(&json!({"inventory": {"board": [{"name": "Board Mfg", "value": long}]}}))
            .unwrap();
    assert!(fru.board[0].value.len() <= 200);
    // Errors stay errors, for the node they were for.
    let f = Fetched::parse("n".into(), Info::Inventory, Err("timed out".into()));
    assert_eq!(
        f,
        Fetched::Inventory {
            node: "n".into(),
            result: Err("timed out".into())
        }
    );
}

#[test]
fn events_age_out_inventory_is_read_once_and_failures_are_retried() {
    let mut c = BmcInfo::default();
    assert_eq!(c.due("a", NOW), [Info::Events, Info::Inventory]);
    // Running: not asked again.
    assert!(c.due("a", NOW + 1).is_empty());
    c.deliver(
        Fetched::parse("a".into(), Info::Events, Ok(events_of(2))),
        NOW,
    );
    c.deliver(
        Fetched::parse("a".into(), Info::Inventory, Ok(inventory())),
        NOW,
    );
    assert_eq!(c.in_flight(), 0);
    assert!(c.due("a", NOW + EVENTS_MAX_AGE - 1).is_empty());
    // Events again after 30 s; the inventory not.
    assert_eq!(c.due("a", NOW + EVENTS_MAX_AGE), [Info::Events]);
    c.deliver(
        Fetched::parse("a".into(), Info::Events, Err("no answer".into())),
        NOW + EVENTS_MAX_AGE,
    );
    // The failure shows (the old list is replaced by why); retried later.
    let t = NOW + EVENTS_MAX_AGE;
    assert!(matches!(c.get("a").unwrap().events.value, Some(Err(_))));
    assert!(c.due("a", t + RETRY_AFTER - 1).is_empty());
    assert_eq!(c.due("a", t + RETRY_AFTER), [Info::Events]);
    // The refresh key: both again, once.
    c.deliver(
        Fetched::parse("a".into(), Info::Events, Ok(events_of(1))),
        t,
    );
    c.refresh("a");
    assert_eq!(c.due("a", t + 1), [Info::Events, Info::Inventory]);
    assert!(c.due("a", t + 2).is_empty());
    // An answer nobody asked for (a refresh's twin) frees no slot.
    assert_eq!(c.in_flight(), 2);
    c.deliver(
        Fetched::parse("b".into(), Info::Events, Ok(events_of(1))),
        t,
    );
    assert_eq!(c.in_flight(), 2);
}

#[test]
fn at_most_four_fetches_run_whatever_the_nodes() {
    let mut c = BmcInfo::default();
    assert_eq!(c.due("a", NOW).len(), 2);
    assert_eq!(c.due("b", NOW).len(), 2);
    // Full: c's fetches wait.
    assert!(c.due("c", NOW).is_empty());
    assert_eq!(c.in_flight(), MAX_IN_FLIGHT);
    c.deliver(
        Fetched::parse("a".into(), Info::Events, Err("slow".into())),
        NOW,
    );
    // One slot: c's events first.
    assert_eq!(c.due("c", NOW), [Info::Events]);
    assert_eq!(c.in_flight(), MAX_IN_FLIGHT);
}

/// The dashboard with the detail pane open on `node`, its first fetches
/// asked for.
fn open_on(lab: &crate::inventory::Lab, node: &str) -> (App, Vec<(String, Info)>) {
    let mut app = populated(lab);
    select(&mut app, node);
    let asked = fetches(&app.update(key(KeyCode::Enter)));
    (app, asked)
}

#[test]
fn the_shown_node_is_fetched_and_an_answer_for_another_never_shows_under_it() {
    let fx = fixture();
    let (mut app, asked) = open_on(&fx.lab, "p9-rack1-01");
    let a = "p9-rack1-01".to_string();
    assert_eq!(asked, [(a.clone(), Info::Events), (a, Info::Inventory)]);
    // Move to B before A's BMC answers.
    let asked = fetches(&app.update(ch('j')));
    assert_eq!(app.selected_name(), Some("p9-rack1-02"));
    assert_eq!(asked.len(), 2);
    assert!(asked.iter().all(|(n, _)| n == "p9-rack1-02"));
    // A's answers arrive: filed under A; B's pane still waits.
    let mut answer = events_of(1);
    answer["events"][0]["message"] = json!("ONLY-ON-A");
    app.update(Msg::BmcInfo(Fetched::parse(
        "p9-rack1-01".into(),
        Info::Events,
        Ok(answer),
    )));
    let mut fru = inventory();
    fru["inventory"]["board"][1]["value"] = json!("MFG-OF-A");
    app.update(Msg::BmcInfo(Fetched::parse(
        "p9-rack1-01".into(),
        Info::Inventory,
        Ok(fru),
    )));
    let screen = text(draw(&mut app, 120, 100).backend().buffer());
    assert!(screen.contains("┌ p9-rack1-02 "), "{screen}");
    assert!(
        !screen.contains("ONLY-ON-A"),
        "A's event under B:\n{screen}"
    );
    assert!(!screen.contains("MFG-OF-A"), "A's FRU under B:\n{screen}");
    assert!(screen.contains("bmc      loading…"), "{screen}");
    // Back on A: its answers, without asking again.
    let asked = fetches(&app.update(ch('k')));
    assert!(asked.is_empty(), "{asked:?}");
    let screen = text(draw(&mut app, 120, 100).backend().buffer());
    assert!(screen.contains("ONLY-ON-A"), "{screen}");
    assert!(screen.contains("MFG-OF-A"), "{screen}");
}

#[test]
fn a_slow_bmc_holds_one_slot_and_the_selected_node_goes_next() {
    let fx = fixture();
    let (mut app, _) = open_on(&fx.lab, "p10-lab-01");
    // Scrolling on through the table: at most four fetches ever run.
    let mut asked = Vec::new();
    for _ in 0..5 {
        asked.extend(fetches(&app.update(ch('j'))));
        assert!(app.bmc_info.in_flight() <= MAX_IN_FLIGHT);
    }
    assert_eq!(asked.len(), 2, "{asked:?}");
    let selected = app.selected_name().unwrap().to_string();
    assert!(asked.iter().all(|(n, _)| n != &selected));
    // p10-lab-01's BMC gives up: its slot goes to the node now shown.
    let asked = fetches(&app.update(Msg::BmcInfo(Fetched::parse(
        "p10-lab-01".into(),
        Info::Inventory,
        Err("no answer within 60 s".into()),
    ))));
    assert_eq!(asked, [(selected, Info::Events)]);
}

#[test]
fn the_refresh_key_reads_again_even_read_only_and_never_clears() {
    let fx = fixture();
    let mut app = App::new(
        &fx.lab,
        crate::tui::theme::Theme::dark(),
        crate::tui::keymap::Keymap::default(),
        true,
    );
    app.update(Msg::Tick(NOW));
    // E opens the pane and reads.
    let asked = fetches(&app.update(ch('E')));
    assert!(app.detail_open);
    assert_eq!(asked.len(), 2);
    let node = app.selected_name().unwrap().to_string();
    for (n, what) in asked {
        assert!(!matches!(
            what.op(),
            crate::engine::bmc_ops::Toolbox::Events { clear: true }
        ));
        let answer = match what {
            Info::Events => events_of(1),
            Info::Inventory => inventory(),
        };
        app.update(Msg::BmcInfo(Fetched::parse(n, what, Ok(answer))));
    }
    assert!(fetches(&app.update(Msg::Tick(NOW + 1000))).is_empty());
    let asked = fetches(&app.update(ch('E')));
    assert_eq!(
        asked,
        [(node.clone(), Info::Events), (node, Info::Inventory)]
    );
    // Without the pane nothing is read.
    app.update(key(KeyCode::Enter));
    assert!(!app.detail_open);
    assert!(fetches(&app.update(Msg::Tick(NOW + 120_000))).is_empty());
}
