use super::*;
use crate::tui::test_fixture::*;

fn ev(code: KeyCode, mods: KeyModifiers) -> KeyEvent {
    KeyEvent::new(code, mods)
}

#[test]
fn every_default_key_parses_and_no_two_live_bindings_share_a_key() {
    for (_, name, _, keys, _) in DEFAULTS {
        for k in *keys {
            Key::parse(k).unwrap_or_else(|e| panic!("{name}: {e}"));
        }
    }
    let map = Keymap::default();
    assert_eq!(map.bindings().len(), DEFAULTS.len());
    map.check_conflicts(&[]).unwrap();
    let mut names: Vec<&str> = map.bindings().iter().map(|b| b.name).collect();
    names.sort_unstable();
    names.dedup();
    assert_eq!(names.len(), DEFAULTS.len(), "binding names are unique");
}

#[test]
fn keys_parse_and_match_events_as_terminals_send_them() {
    let map = Keymap::default();
    let main = [Context::Nav, Context::View, Context::Actions];
    // Upper case arrives with SHIFT; the character carries the case.
    assert_eq!(
        map.lookup(&main, &ev(KeyCode::Char('P'), KeyModifiers::SHIFT)),
        Some(UiAction::PowerOff)
    );
    assert_eq!(
        map.lookup(&main, &ev(KeyCode::Char('p'), KeyModifiers::NONE)),
        Some(UiAction::PowerOn)
    );
    assert_eq!(
        map.lookup(&main, &ev(KeyCode::Char('a'), KeyModifiers::CONTROL)),
        Some(UiAction::MarkAll)
    );
    assert_eq!(
        map.lookup(&main, &ev(KeyCode::Down, KeyModifiers::NONE)),
        Some(UiAction::Down)
    );
    assert_eq!(
        map.lookup(&main, &ev(KeyCode::Char('z'), KeyModifiers::NONE)),
        None
    );
    // E reads the BMC's event log and inventory again; e is not bound.
    assert_eq!(
        map.lookup(&main, &ev(KeyCode::Char('E'), KeyModifiers::SHIFT)),
        Some(UiAction::BmcRefresh)
    );
    assert_eq!(
        map.lookup(&main, &ev(KeyCode::Char('e'), KeyModifiers::NONE)),
        None
    );
    assert_eq!(
        map.binding(UiAction::BmcRefresh).unwrap().name,
        "bmc_refresh"
    );
    // The detail pane shadows navigation while focused.
    let detail = [
        Context::Detail,
        Context::Nav,
        Context::View,
        Context::Actions,
    ];
    assert_eq!(
        map.lookup(&detail, &ev(KeyCode::Char('j'), KeyModifiers::NONE)),
        Some(UiAction::DetailDown)
    );
    assert_eq!(
        map.lookup(&detail, &ev(KeyCode::Char('d'), KeyModifiers::NONE)),
        Some(UiAction::Deploy)
    );

    assert_eq!(
        Key::parse("shift-tab").unwrap(),
        Key::new(KeyCode::BackTab, KeyModifiers::NONE)
    );
    assert_eq!(
        Key::parse("ctrl-A").unwrap(),
        Key::new(KeyCode::Char('a'), KeyModifiers::CONTROL)
    );
    assert_eq!(Key::parse("shift-d").unwrap(), Key::parse("D").unwrap());
    assert_eq!(Key::parse("PgDn").unwrap().code, KeyCode::PageDown);
    assert_eq!(Key::parse("f12").unwrap().code, KeyCode::F(12));
    assert_eq!(Key::parse("-").unwrap().code, KeyCode::Char('-'));
    assert!(Key::parse("f13").is_err());
    assert!(Key::parse("hyper-x").is_err());
    assert!(Key::parse("").is_err());
    assert_eq!(Key::parse("ctrl-c").unwrap().to_string(), "ctrl-c");
    assert_eq!(Key::parse("space").unwrap().to_string(), "space");
    assert_eq!(Key::parse("up").unwrap().to_string(), "↑");
}

#[test]
fn override_replaces_the_keys_of_named_bindings() {
    let map = Keymap::default()
        .with_override(
            "keymap.toml",
            "[bindings]\ndeploy = \"D\"\npower_off = [\"ctrl-o\", \"F2\"]\n",
        )
        .unwrap();
    let main = [Context::Nav, Context::View, Context::Actions];
    assert_eq!(
        map.lookup(&main, &ev(KeyCode::Char('D'), KeyModifiers::SHIFT)),
        Some(UiAction::Deploy)
    );
    assert_eq!(
        map.lookup(&main, &ev(KeyCode::Char('d'), KeyModifiers::NONE)),
        None
    );
    assert_eq!(
        map.lookup(&main, &ev(KeyCode::Char('o'), KeyModifiers::CONTROL)),
        Some(UiAction::PowerOff)
    );
    assert_eq!(
        map.lookup(&main, &ev(KeyCode::F(2), KeyModifiers::NONE)),
        Some(UiAction::PowerOff)
    );
    assert_eq!(
        map.lookup(&main, &ev(KeyCode::Char('P'), KeyModifiers::SHIFT)),
        None
    );
    assert_eq!(map.keys_label(UiAction::PowerOff), "ctrl-o F2");
    // An empty list unbinds.
    let map = Keymap::default()
        .with_override("k.toml", "[bindings]\nabort = []\n")
        .unwrap();
    assert_eq!(map.first_key(UiAction::Abort), "");
}

#[test]
fn override_errors_name_the_file_and_the_key() {
    let err = |text: &str| {
        Keymap::default()
            .with_override("/home/me/keymap.toml", text)
            .unwrap_err()
            .to_string()
    };
    let e = err("[bindings]\ndeploy = \"j\"\n");
    assert_eq!(
        e,
        "/home/me/keymap.toml: bindings.deploy: j is also bound to down (select the node below); rebind that one too"
    );
    let e = err("[bindings]\ndeploy = \"hyper-q\"\n");
    assert!(
        e.starts_with("/home/me/keymap.toml: bindings.deploy: \"hyper-q\" is not a key"),
        "{e}"
    );
    let e = err("[bindings]\ndeplyo = \"D\"\n");
    assert!(
        e.starts_with("/home/me/keymap.toml: bindings.deplyo: unknown binding"),
        "{e}"
    );
    let e = err("[keys]\ndeploy = \"D\"\n");
    assert!(
        e.starts_with("/home/me/keymap.toml: keys: unknown section"),
        "{e}"
    );
    let e = err("[bindings]\ndeploy = 4\n");
    assert!(
        e.starts_with("/home/me/keymap.toml: bindings.deploy: a key"),
        "{e}"
    );
    let e = err("[bindings]\ndeploy = [\"D\", 4]\n");
    assert!(
        e.starts_with("/home/me/keymap.toml: bindings.deploy: keys must be strings"),
        "{e}"
    );
    let e = err("[bindings\n");
    assert!(e.starts_with("/home/me/keymap.toml: "), "{e}");
    // Swapping two keys is fine when both are rebound.
    Keymap::default()
        .with_override(
            "k.toml",
            "[bindings]\npower_on = \"P\"\npower_off = \"p\"\n",
        )
        .unwrap();
    // Keys of different modal contexts may repeat.
    Keymap::default()
        .with_override("k.toml", "[bindings]\nconfirm_yes = \"d\"\n")
        .unwrap();
}

#[test]
fn load_override_reads_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("keymap.toml");
    std::fs::write(&path, "[bindings]\nquit = \"Q\"\n").unwrap();
    let map = Keymap::load_override(&path).unwrap();
    assert_eq!(map.first_key(UiAction::Quit), "Q");
    let missing = dir.path().join("nope.toml");
    let e = Keymap::load_override(&missing).unwrap_err().to_string();
    assert!(e.starts_with(&format!("{}: ", missing.display())), "{e}");
}

#[test]
fn keymap_override_changes_what_keys_do() {
    let fx = fixture();
    let keymap = Keymap::default()
        .with_override("keymap.toml", "[bindings]\ndeploy = \"D\"\n")
        .unwrap();
    let mut app =
        crate::tui::app::App::new(&fx.lab, crate::tui::theme::Theme::dark(), keymap, false);
    app.update(ch('d'));
    assert_eq!(app.mode(), crate::tui::app::Mode::Normal);
    app.update(ch('D'));
    assert_eq!(app.mode(), crate::tui::app::Mode::Confirm);
    let hints = crate::tui::views::hint_pairs(&app);
    assert!(
        hints.contains(&("y".to_string(), "yes".to_string())),
        "{hints:?}"
    );
    app.update(ch('n'));
    let hints = crate::tui::views::hint_pairs(&app);
    assert!(
        hints.contains(&("D".to_string(), "deploy".to_string())),
        "{hints:?}"
    );
}

#[test]
fn help_is_generated_from_every_binding() {
    let fx = fixture();
    let keymap = Keymap::default()
        .with_override(
            "keymap.toml",
            "[bindings]\npower_off = [\"ctrl-o\", \"F9\"]\n",
        )
        .unwrap();
    let mut app =
        crate::tui::app::App::new(&fx.lab, crate::tui::theme::Theme::dark(), keymap, false);
    let text: String = crate::tui::views::help_lines(&app)
        .iter()
        .map(|l| {
            l.spans
                .iter()
                .map(|s| s.content.as_ref())
                .collect::<String>()
                + "\n"
        })
        .collect();
    for b in app.keymap.bindings() {
        let keys: Vec<String> = b.keys.iter().map(ToString::to_string).collect();
        let line = format!("{:<20} {}", keys.join(" "), b.desc);
        assert!(text.contains(&line), "{} missing: {line:?}", b.name);
    }
    for context in crate::tui::keymap::Context::ALL {
        assert!(text.contains(context.title()), "{context:?}");
    }
    assert!(text.contains("ctrl-o F9"));
    for (usage, _) in crate::tui::command::USAGE {
        assert!(text.contains(usage), "{usage}");
    }
    // ? opens it, scrolls, closes.
    app.update(ch('?'));
    assert_eq!(app.mode(), crate::tui::app::Mode::Help);
    app.update(ch('j'));
    assert_eq!(app.help_scroll, 1);
    app.update(key(KeyCode::Esc));
    assert_eq!(app.mode(), crate::tui::app::Mode::Normal);
}
