//! Snapshots of every view through ratatui's TestBackend at two sizes, and
//! the styles of the cells whose colour carries meaning.

use crossterm::event::KeyCode;

use crate::engine::lab::{Action, EngineEvent};
use crate::engine::lifecycle::State;
use crate::inventory::Problem;
use crate::tui::app::{App, Msg, Preview};
use crate::tui::keymap::Keymap;
use crate::tui::test_fixture::*;
use crate::tui::theme::{Role, Theme};

const SIZES: [(u16, u16); 2] = [(120, 32), (80, 24)];

/// Draws `app` at `w`×`h` and snapshots the screen as `name_WxH`.
fn snap(name: &str, app: &mut App, w: u16, h: u16) -> ratatui::buffer::Buffer {
    let terminal = draw(app, w, h);
    insta::assert_snapshot!(format!("{name}_{w}x{h}"), terminal.backend());
    terminal.backend().buffer().clone()
}

#[test]
fn table_with_mixed_states() {
    let fx = fixture();
    for (w, h) in SIZES {
        let mut app = populated(&fx.lab);
        select(&mut app, "p8-rack2-02");
        app.update(ch(' '));
        let buf = snap("table", &mut app, w, h);
        let t = &app.theme;
        assert_text_role(t, &buf, "deploy-failed", Role::StateFailed);
        assert_text_role(t, &buf, "available", Role::StateOk);
        assert_text_role(t, &buf, "off 1m", Role::Stale);
        // Fresh readings show no age; the power word is coloured.
        let power_of = |node: &str, word: &str| {
            let (x, y) = find(&buf, &format!("{node} {word} ")).expect(node);
            (x + node.chars().count() as u16 + 1, y)
        };
        assert_role(t, &buf, power_of("p9-rack1-01", "on"), Role::PowerOn);
        assert_role(t, &buf, power_of("p9-rack1-03", "off"), Role::PowerOff);
        assert_role(
            t,
            &buf,
            power_of("p8-rack2-02", "error"),
            Role::PowerUnknown,
        );
        assert_text_role(t, &buf, "download failed", Role::StateFailed);
        assert_text_role(t, &buf, "●", Role::Marked);
        if w >= 120 {
            assert_text_role(t, &buf, "pxe*", Role::Warning);
            assert_text_role(t, &buf, "login prompt", Role::StateOk);
            assert_text_role(t, &buf, "deploying: write-image 43%", Role::StateBusy);
            let spark = find(&buf, "▁").expect("sparkline");
            assert_role(t, &buf, spark, Role::Sparkline);
            assert!(find(&buf, " 458W").is_none() && find(&buf, " 449W").is_some());
        }
    }
}

#[test]
fn table_selected_row_keeps_meaningful_colours() {
    let fx = fixture();
    let mut app = populated(&fx.lab);
    select(&mut app, "p9-rack1-03");
    let buf = draw(&mut app, 120, 32).backend().buffer().clone();
    let at = find(&buf, "deploy-failed").unwrap();
    assert_role(&app.theme, &buf, at, Role::StateFailed);
    let selected_bg = app.theme.style(Role::Selected).bg.unwrap();
    assert_eq!(buf[at].bg, selected_bg, "the selection shows behind it");
}

#[test]
fn table_in_high_contrast_and_light_themes() {
    let fx = fixture();
    for name in ["high-contrast", "light"] {
        let mut app = populated(&fx.lab);
        command(&mut app, &format!("theme {name}"));
        let buf = draw(&mut app, 120, 32).backend().buffer().clone();
        let theme = Theme::builtin(name).unwrap();
        assert_text_role(&theme, &buf, "deploy-failed", Role::StateFailed);
        assert_text_role(&theme, &buf, "off 1m", Role::Stale);
    }
}

fn old_config(config: &str) -> String {
    config
        .replace("deploy_kernel", "deploy_kernel.old")
        .lines()
        .filter(|l| !l.starts_with("ipappend"))
        .map(|l| format!("{l}\n"))
        .collect()
}

#[test]
fn detail_with_a_diff() {
    let fx = fixture();
    for (w, h) in SIZES.into_iter().chain([(320, 40)]) {
        let mut app = populated(&fx.lab);
        select(&mut app, "p9-rack1-01");
        app.update(key(KeyCode::Enter));
        let mut p = preview(&fx, "p9-rack1-01", crate::boot::Stage::Deploy, None);
        let config = match &p.rendered {
            Ok(Some(r)) => r.config.clone(),
            other => panic!("{other:?}"),
        };
        p.on_disk = Some(old_config(&config));
        app.update(Msg::Preview(p));
        // Scroll the state lines away (on a short screen, the URLs too).
        app.update(key(KeyCode::Tab));
        for _ in 0..if h < 30 { 11 } else { 4 } {
            app.update(ch('j'));
        }
        let buf = snap("detail_diff", &mut app, w, h);
        let text = text(&buf);
        assert!(!text.contains(SECRET));
        if w >= 300 {
            assert!(text.contains("would be written"), "side by side:\n{text}");
            assert_text_role(&app.theme, &buf, "+ipappend 2", Role::DiffAdd);
        } else {
            assert_text_role(&app.theme, &buf, "+ ipappend 2", Role::DiffAdd);
            assert_text_role(&app.theme, &buf, "- kernel", Role::DiffRemove);
        }
    }
}

#[test]
fn detail_when_disk_matches_and_the_inventory() {
    let fx = fixture();
    let mut app = populated(&fx.lab);
    select(&mut app, "p9-rack1-01");
    app.update(key(KeyCode::Enter));
    let p = preview(&fx, "p9-rack1-01", crate::boot::Stage::Deploy, None);
    let config = match &p.rendered {
        Ok(Some(r)) => r.config.clone(),
        other => panic!("{other:?}"),
    };
    let p = Preview {
        on_disk: Some(config),
        ..p
    };
    app.update(Msg::Preview(p));
    app.update(key(KeyCode::Tab));
    app.update(ch('G'));
    let buf = snap("detail_inventory", &mut app, 120, 32);
    let text = text(&buf);
    assert!(
        text.contains("password in the lab file (not shown)"),
        "{text}"
    );
    assert!(!text.contains(SECRET));
}

#[test]
fn detail_with_template_problems_and_local_boot() {
    let fx = fixture();
    for (w, h) in SIZES {
        let mut app = populated(&fx.lab);
        select(&mut app, "p9-rack1-03");
        app.update(key(KeyCode::Enter));
        app.update(Msg::Preview(Preview {
            node: "p9-rack1-03".into(),
            stage: crate::boot::Stage::Deploy,
            rendered: Err(vec![
                Problem::error(
                    Some("p9-rack1-03"),
                    "petitboot.config_template",
                    "line 5: Variable `node.initrd` not found in context",
                ),
                Problem::warning(
                    Some("p9-rack1-03"),
                    "kernel_args",
                    "\"initrd=x\" replaces the initrd petitboot loads",
                ),
            ]),
            on_disk: None,
        }));
        let buf = snap("detail_problems", &mut app, w, h);
        assert_text_role(
            &app.theme,
            &buf,
            "cannot render the deploy config",
            Role::Error,
        );
        assert_text_role(
            &app.theme,
            &buf,
            "  ✗ petitboot.config_template",
            Role::Error,
        );
        assert_text_role(&app.theme, &buf, "  ✗ kernel_args", Role::Warning);
    }
    // A local-boot node's instance stage: no config at all.
    let mut app = populated(&fx.lab);
    select(&mut app, "p9-rack1-01");
    app.update(ch('s'));
    app.update(Msg::Preview(preview(
        &fx,
        "p9-rack1-01",
        crate::boot::Stage::Instance,
        None,
    )));
    let t = draw(&mut app, 120, 32);
    let screen = text(t.backend().buffer());
    assert!(
        screen.contains("no instance config: petitboot gets a 404"),
        "{screen}"
    );
}

/// The dashboard on p9-rack1-01's detail pane (its config on disk), the
/// BMC's answers as `info` (None: still loading).
fn bmc_detail(fx: &Fixture, info: Option<crate::tui::bmc_info::NodeInfo>) -> App {
    let mut app = populated(&fx.lab);
    select(&mut app, "p9-rack1-01");
    app.update(key(KeyCode::Enter));
    let p = preview(fx, "p9-rack1-01", crate::boot::Stage::Deploy, None);
    let on_disk = p
        .rendered
        .as_ref()
        .ok()
        .and_then(Option::as_ref)
        .map(|r| r.config.clone());
    app.update(Msg::Preview(Preview { on_disk, ..p }));
    if let Some(info) = info {
        app.bmc_info.insert("p9-rack1-01", info);
    }
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
    panic!("{needle:?} never reached the top of the detail pane");
}

#[test]
fn detail_with_bmc_events_and_inventory() {
    let fx = fixture();
    for (w, h) in SIZES {
        let mut app = bmc_detail(&fx, Some(bmc_sample()));
        scroll_to(&mut app, w, h, "Events (BMC");
        let buf = snap("detail_bmc_events", &mut app, w, h);
        let t = &app.theme;
        assert_text_role(
            t,
            &buf,
            "Events (BMC event log, read 12s ago; E: read again)",
            Role::Title,
        );
        // Newest last: the OEM record is the last line.
        let temp = find(&buf, "2025-11-24 15:41:07  Temperature").expect("first dated event");
        let oem = find(&buf, "2025-11-24 15:58:00  -").expect("OEM event");
        assert!(temp.1 < oem.1);
        assert!(find(&buf, "pre-init +42s").is_some());
        assert_text_role(t, &buf, "2025-11-24 15:43:30", Role::Muted);
        assert_text_role(t, &buf, "2025-11-24 15:52:11", Role::Warning);
    }
    let mut app = bmc_detail(&fx, Some(bmc_sample()));
    scroll_to(&mut app, 120, 32, "Inventory");
    let buf = snap("detail_bmc_inventory", &mut app, 120, 32);
    let screen = text(&buf);
    let order: Vec<usize> = [
        "Board Mfg            Supermicro",
        "Board Product        P9DSU-C",
        "Board Serial         VM18AS600179",
        "Board Part Number    P9DSU-C-P001",
        "Product Manufacturer IBM",
        "Product Name         9006-22P Boston",
        "Product Serial       782F2CA",
        "group    rack1",
    ]
    .iter()
    .map(|s| {
        screen
            .find(s)
            .unwrap_or_else(|| panic!("no {s:?}:\n{screen}"))
    })
    .collect();
    assert!(order.is_sorted(), "{screen}");
    // Not among the key fields.
    assert!(!screen.contains("Board Mfg Date") && !screen.contains("Chassis Type"));
}

#[test]
fn detail_while_the_bmc_is_read_and_when_it_fails() {
    let fx = fixture();
    let mut app = bmc_detail(&fx, None);
    scroll_to(&mut app, 80, 24, "Events (BMC");
    let buf = snap("detail_bmc_loading", &mut app, 80, 24);
    assert_text_role(&app.theme, &buf, "loading…", Role::Muted);

    let info = crate::tui::bmc_info::NodeInfo {
        events: failed_slot("IPMI session to 10.77.1.11:623: no answer within 5 s (3 tries)"),
        inventory: failed_slot(
            "FRU device 0: checksum mismatch in the board area and a very long tail that does not fit on one line of the pane",
        ),
    };
    let mut app = bmc_detail(&fx, Some(info));
    scroll_to(&mut app, 80, 24, "Events (BMC");
    let buf = snap("detail_bmc_error", &mut app, 80, 24);
    assert_text_role(
        &app.theme,
        &buf,
        "IPMI session to 10.77.1.11:623",
        Role::Error,
    );
    let mut app_inv = bmc_detail(&fx, Some(app.bmc_info.get("p9-rack1-01").cloned().unwrap()));
    scroll_to(&mut app_inv, 80, 24, "Inventory");
    let screen = text(draw(&mut app_inv, 80, 24).backend().buffer());
    // One line, cut with "…".
    let line = screen
        .lines()
        .find(|l| l.contains("fru      FRU device 0"))
        .expect(&screen);
    assert!(line.contains('…'), "{line}");
}

#[test]
fn help() {
    let fx = fixture();
    for (w, h) in SIZES {
        let mut app = populated(&fx.lab);
        app.update(ch('?'));
        let buf = snap("help", &mut app, w, h);
        assert_text_role(&app.theme, &buf, "Moving around the table", Role::Title);
        let e = find(&buf, "read the BMC event log and inventory").expect("E in the help");
        assert_eq!(find(&buf, "E   ").map(|(_, y)| y), Some(e.1));
    }
    // Scrolled to the end: the commands.
    let mut app = populated(&fx.lab);
    app.update(ch('?'));
    app.update(ch('G'));
    snap("help_end", &mut app, 80, 24);
    app.update(ch('k'));
    assert!(
        app.help_scroll > 0 && app.help_scroll < u16::MAX - 1,
        "clamped when drawn"
    );
}

#[test]
fn confirm_focuses_no() {
    let fx = fixture();
    for (w, h) in SIZES {
        let mut app = populated(&fx.lab);
        select(&mut app, "p8-rack2-01");
        app.update(ch(' '));
        app.update(ch(' '));
        app.update(ch('d'));
        let buf = snap("confirm", &mut app, w, h);
        assert_text_role(&app.theme, &buf, "[ No ]", Role::ButtonFocus);
        assert_text_role(&app.theme, &buf, "[ Yes ]", Role::Button);
        let text = text(&buf);
        assert!(text.contains("Deploy 2 nodes?") && text.contains("p8-rack2-01, p8-rack2-02"));
    }
    // Many nodes are counted after the first dozen.
    let mut app = populated(&fx.lab);
    app.update(ctrl('a'));
    app.update(ch('P'));
    app.update(key(KeyCode::Right));
    let buf = snap("confirm_power_off_yes", &mut app, 80, 24);
    assert_text_role(&app.theme, &buf, "[ Yes ]", Role::ButtonFocus);
}

#[test]
fn command_line_and_filter_line() {
    let fx = fixture();
    for (w, h) in SIZES {
        let mut app = populated(&fx.lab);
        app.update(ch(':'));
        type_text(&mut app, "power cycle p9-rack1-0");
        snap("command_line", &mut app, w, h);

        let mut app = populated(&fx.lab);
        app.update(ch('/'));
        type_text(&mut app, "group:rack1");
        snap("filter", &mut app, w, h);
    }
    // Nothing matches.
    let mut app = populated(&fx.lab);
    command(&mut app, "filter state:cleaning");
    snap("filter_empty", &mut app, 80, 24);
}

#[test]
fn log_and_flash() {
    let fx = fixture();
    for (w, h) in SIZES {
        let mut app = populated(&fx.lab);
        select(&mut app, "p8-rack2-01");
        app.update(ch('p'));
        app.update(Msg::Engine(EngineEvent::Finished {
            node: "p8-rack2-01".into(),
            action: Action::Power(crate::ipmi::chassis::PowerAction::On),
            ok: true,
            state: None,
            message: "on".into(),
        }));
        app.update(Msg::Engine(EngineEvent::Finished {
            node: "p9-rack1-02".into(),
            action: Action::Deploy,
            ok: false,
            state: Some(State::DeployFailed),
            message: "write-image: checksum mismatch".into(),
        }));
        let buf = snap("log_flash", &mut app, w, h);
        assert_text_role(&app.theme, &buf, " p9-rack1-02: deploy failed", Role::Error);
        if h >= 30 {
            assert_text_role(&app.theme, &buf, "deploy failed: write-image", Role::Error);
            assert_text_role(&app.theme, &buf, "power on done: on", Role::StateOk);
        }
        // A success flashes in the flash role.
        app.update(Msg::Engine(EngineEvent::Finished {
            node: "p8-rack2-01".into(),
            action: Action::PrepareRamdisk,
            ok: true,
            state: None,
            message: "deploy config written".into(),
        }));
        let buf = draw(&mut app, w, h).backend().buffer().clone();
        assert_text_role(
            &app.theme,
            &buf,
            " p8-rack2-01: prepare-ramdisk done",
            Role::Flash,
        );
    }
}

#[test]
fn read_only_shows_and_refuses() {
    let fx = fixture();
    let mut app = App::new(&fx.lab, Theme::dark(), Keymap::default(), true);
    app.update(Msg::Tick(NOW));
    app.update(ch('d'));
    let buf = snap("read_only", &mut app, 80, 24);
    assert_text_role(&app.theme, &buf, "READ-ONLY", Role::Warning);
}

const PETITBOOT: &[u8] = b"\x1b[2J\x1b[HPetitboot (v1.15.1)\r\n\
 [Network: eth0 / 70:e2:84:14:00:02]\r\n\
   p9-rack1-02 deploy (eth0)\r\n\r\n\
pxeconffile  => http://10.77.0.1:8080/p9-rack1-02/config\r\n\
device_handler_status: Download complete: config\r\n\
Timeout expired, booting default option eth0@0x1c\r\n\
device_handler_status: Performing kexec reboot\r\n\
[    0.000000] Linux version 6.8.0-petitlab (ppc64le)\r\n";

#[test]
fn console_pane() {
    let fx = fixture();
    for (w, h) in SIZES {
        let mut app = populated(&fx.lab);
        select(&mut app, "p9-rack1-02");
        app.update(ch('c'));
        app.update(Msg::Engine(EngineEvent::ConsoleStatus {
            node: "p9-rack1-02".into(),
            connected: true,
            message: None,
        }));
        app.update(Msg::Engine(EngineEvent::ConsoleData {
            node: "p9-rack1-02".into(),
            bytes: PETITBOOT.to_vec(),
        }));
        snap("console", &mut app, w, h);
        app.update(ch('z'));
        snap("console_zoomed", &mut app, w, h);
    }
}

#[test]
fn console_wall() {
    let fx = fixture();
    for (w, h) in SIZES {
        let mut app = populated(&fx.lab);
        select(&mut app, "p8-rack2-02");
        for _ in 0..4 {
            app.update(ch(' '));
        }
        app.update(ch('w'));
        for (i, node) in app.wall.clone().unwrap().nodes.iter().enumerate() {
            let text = format!("{node} boot {i}\r\nPetitboot (v1.15.1)\r\n");
            app.update(Msg::Engine(EngineEvent::ConsoleData {
                node: node.clone(),
                bytes: text.into_bytes(),
            }));
        }
        app.update(ch('l'));
        snap("wall", &mut app, w, h);
    }
}

/// Every mode at sizes down to nothing: no panic, no overflow.
#[test]
fn tiny_and_odd_sizes_never_panic() {
    let fx = fixture();
    type Setup = (&'static str, fn(&mut App));
    let setups: Vec<Setup> = vec![
        ("table", |_| {}),
        ("detail", |a| {
            a.update(key(KeyCode::Enter));
        }),
        ("help", |a| {
            a.update(ch('?'));
        }),
        ("confirm", |a| {
            a.update(ch('d'));
        }),
        ("command", |a| {
            a.update(ch(':'));
            type_text(a, "deploy a-very-long-node-name-that-does-not-fit-anywhere");
        }),
        ("console", |a| {
            a.update(ch('c'));
        }),
        ("wall", |a| {
            a.update(ctrl('a'));
            a.update(ch('w'));
        }),
        ("empty", |a| {
            command(a, "filter zzz");
        }),
    ];
    for (name, setup) in setups {
        for (w, h) in [
            (20, 5),
            (1, 1),
            (0, 0),
            (10, 3),
            (200, 3),
            (3, 60),
            (40, 10),
            (300, 100),
        ] {
            let mut app = populated(&fx.lab);
            setup(&mut app);
            app.update(Msg::Resize(w, h));
            let t = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                draw(&mut app, w, h);
                // And again after keys that move things.
                app.update(ch('j'));
                app.update(key(KeyCode::PageDown));
                draw(&mut app, w, h);
            }));
            assert!(t.is_ok(), "{name} at {w}x{h} panicked");
        }
    }
    let mut app = populated(&fx.lab);
    snap("tiny", &mut app, 20, 5);
}

#[test]
fn the_inventory_names_an_iscsi_deploy_interface() {
    let lab = LAB.replacen(
        "bootif = true\n",
        "bootif = true\ndeploy_interface = \"iscsi\"\n",
        1,
    );
    let fx = fixture_from(&lab);
    let mut app = populated(&fx.lab);
    select(&mut app, "p9-rack1-01");
    app.update(key(KeyCode::Enter));
    app.update(Msg::Preview(preview(
        &fx,
        "p9-rack1-01",
        crate::boot::Stage::Deploy,
        None,
    )));
    app.update(key(KeyCode::Tab));
    app.update(ch('G'));
    let shown = text(&draw(&mut app, 160, 40).backend().buffer().clone());
    assert!(
        shown.contains("boot_option local, deploy_interface iscsi"),
        "{shown}"
    );
}
