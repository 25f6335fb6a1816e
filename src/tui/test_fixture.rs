//! A realistic lab and dashboard state for the TUI's tests: six nodes in
//! three groups, loaded from lab.toml text like a user's, then a store
//! snapshot and engine events with mixed states (active, deploying,
//! deploy-failed, error), a stale reading, DCMI power samples, console
//! stages and a reservation. Paths are pinned so snapshots do not depend on
//! the temporary directory.

use std::path::PathBuf;

use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use ratatui::Terminal;
use ratatui::backend::TestBackend;
use ratatui::buffer::Buffer;

use crate::console::Stage as ConsoleStage;
use crate::engine::lab::EngineEvent;
use crate::engine::lifecycle::{State, Step};
use crate::engine::store::{EventRecord, Holder, NodeRecord, Reservation};
use crate::inventory::{InstanceImage, Lab, PasswordSource};
use crate::tui::app::{App, Effect, Msg, Preview};
use crate::tui::keymap::Keymap;
use crate::tui::theme::{Role, Theme};

#[path = "test_fixture_bmc.rs"]
mod bmc;
pub use bmc::{bmc_sample, failed_slot};

#[path = "test_fixture_boot.rs"]
mod boot;
pub use boot::{good_boot, hostile_boot, stage_stats, stalled_boot};

/// 2025-11-24 16:00:00 UTC.
pub const NOW: i64 = 1_764_000_000_000;
/// Never shown anywhere.
pub const SECRET: &str = "hunter2-do-not-show";

pub const LAB: &str = r#"
state_dir = "state"
[http]
base_url = "http://10.77.0.1:8080/"
[tftp]
base_url = "tftp://10.77.0.1/"
[dhcp]
backend = "none"

[[node]]
name = "p9-rack1-01"
group = "rack1"
uuid = "3d8f3a1e-6b0c-4f4e-9a57-1f0c2b7d9e01"
macs = ["70:e2:84:14:00:01"]
ipv4 = "10.77.0.11"
console = "hvc0"
bootif = true
[node.bmc]
host = "10.77.1.11"
username = "admin"
password = "hunter2-do-not-show"
cipher_suite = 17
[node.deploy]
kernel = "deploy.vmlinux"
ramdisk = "deploy.initramfs"
[node.instance]
image = "rhel.qcow2"

[[node]]
name = "p9-rack1-02"
group = "rack1"
macs = ["70:e2:84:14:00:02", "70:e2:84:14:00:12"]
ipv4 = "10.77.0.12"
boot_option = "netboot"
console = "hvc0"
kernel_args = "quiet"
[node.bmc]
host = "10.77.1.12"
username = "admin"
password_file = "bmc-password"
[node.deploy]
kernel = "deploy.vmlinux"
ramdisk = "deploy.initramfs"
[node.instance]
image = "ubuntu-root.img"
kernel = "ubuntu.vmlinux"
ramdisk = "ubuntu.initrd"
root_device = "/dev/sda2"

[[node]]
name = "p9-rack1-03"
group = "rack1"
macs = ["70:e2:84:14:00:03"]
[node.bmc]
host = "10.77.1.13"
username = "admin"
password_file = "bmc-password"
[node.deploy]
kernel = "deploy.vmlinux"
ramdisk = "deploy.initramfs"
[node.instance]
image = "rhel.qcow2"

[[node]]
name = "p8-rack2-01"
group = "rack2"
macs = ["98:be:94:00:20:01"]
cpu_arch = "ppc64"
[node.bmc]
host = "10.77.1.21"
username = "ADMIN"
password_file = "bmc-password"
cipher_suite = 3
[node.deploy]
kernel = "deploy.vmlinux"
ramdisk = "deploy.initramfs"
[node.instance]
image = "rhel.qcow2"

[[node]]
name = "p8-rack2-02"
group = "rack2"
macs = ["98:be:94:00:20:02"]
[node.bmc]
host = "10.77.1.22"
username = "ADMIN"
password_file = "bmc-password"
[node.deploy]
kernel = "deploy.vmlinux"
ramdisk = "deploy.initramfs"
[node.instance]
image = "rhel.qcow2"

[[node]]
name = "p10-lab-01"
group = "lab"
macs = ["0c:c4:7a:00:00:01"]
[node.bmc]
host = "10.77.1.31"
username = "root"
password_file = "bmc-password"
[node.deploy]
kernel = "deploy.vmlinux"
ramdisk = "deploy.initramfs"
[node.instance]
image = "rhel.qcow2"
"#;

pub struct Fixture {
    pub _dir: tempfile::TempDir,
    pub lab: Lab,
}

/// The lab, loaded from text in a temporary directory, its paths then
/// pinned to what a real install would show.
pub fn fixture() -> Fixture {
    fixture_from(LAB)
}

pub fn fixture_from(text: &str) -> Fixture {
    let dir = tempfile::tempdir().expect("temp dir");
    for f in [
        "deploy.vmlinux",
        "deploy.initramfs",
        "rhel.qcow2",
        "ubuntu-root.img",
        "ubuntu.vmlinux",
        "ubuntu.initrd",
        "bmc-password",
    ] {
        std::fs::write(dir.path().join(f), f).expect("write artifact");
    }
    let path = dir.path().join("lab.toml");
    std::fs::write(&path, text).expect("write lab.toml");
    let (mut lab, _) = crate::inventory::load_valid(&path).expect("fixture lab is valid");
    let pin = |p: &PathBuf| PathBuf::from("/srv/petitlab").join(p.file_name().unwrap_or_default());
    lab.path = PathBuf::from("/etc/petitlab/lab.toml");
    for n in &mut lab.nodes {
        n.deploy.kernel = pin(&n.deploy.kernel);
        n.deploy.ramdisk = pin(&n.deploy.ramdisk);
        match &mut n.instance {
            InstanceImage::WholeDisk { image } => *image = pin(image),
            InstanceImage::Partition {
                image,
                kernel,
                ramdisk,
                ..
            } => {
                *image = pin(image);
                *kernel = pin(kernel);
                *ramdisk = pin(ramdisk);
            }
        }
        if let PasswordSource::File(p) = &mut n.bmc.password {
            *p = PathBuf::from("/etc/petitlab/bmc-password");
        }
        // As if it said password_env (loading would need the variable set).
        if n.name == "p9-rack1-02" {
            n.bmc.password = PasswordSource::Env("P9_BMC_PASSWORD".into());
        }
    }
    Fixture { _dir: dir, lab }
}

pub fn app(lab: &Lab) -> App {
    App::new(lab, Theme::dark(), Keymap::default(), false)
}

pub fn key(code: KeyCode) -> Msg {
    Msg::Key(KeyEvent::new(code, KeyModifiers::NONE))
}

pub fn ch(c: char) -> Msg {
    let mods = if c.is_ascii_uppercase() {
        KeyModifiers::SHIFT
    } else {
        KeyModifiers::NONE
    };
    Msg::Key(KeyEvent::new(KeyCode::Char(c), mods))
}

pub fn ctrl(c: char) -> Msg {
    Msg::Key(KeyEvent::new(KeyCode::Char(c), KeyModifiers::CONTROL))
}

/// Moves the selection to `node` (which must be shown).
pub fn select(app: &mut App, node: &str) {
    app.update(key(KeyCode::Home));
    for _ in 0..app.view.len() {
        if app.selected_name() == Some(node) {
            return;
        }
        app.update(key(KeyCode::Down));
    }
    panic!("{node} is not shown");
}

/// Runs `line` on the `:` command line, as typed; returns every effect.
pub fn command(app: &mut App, line: &str) -> Vec<Effect> {
    let mut effects = app.update(ch(':'));
    effects.extend(type_text(app, line));
    effects.extend(app.update(key(KeyCode::Enter)));
    effects
}

/// Sends each character as a key press; returns every effect.
pub fn type_text(app: &mut App, text: &str) -> Vec<Effect> {
    text.chars().flat_map(|c| app.update(ch(c))).collect()
}

fn record(name: &str, state: State, step: Option<Step>, reason: Option<&str>) -> NodeRecord {
    NodeRecord {
        name: name.into(),
        state: state.name().into(),
        step: step.map(|s| s.name().into()),
        reason: reason.map(Into::into),
        state_since: NOW - 600_000,
        power_on: None,
        boot_device: None,
        reading_at: None,
        reading_error: None,
        abort_requested: None,
    }
}

fn event(id: i64, at: i64, node: &str, action: &str, result: &str, detail: &str) -> EventRecord {
    EventRecord {
        id,
        at,
        node: Some(node.into()),
        who: "ops@lab-admin pid 4242".into(),
        action: action.into(),
        result: result.into(),
        detail: detail.into(),
    }
}

fn reading(
    node: &str,
    on: Option<bool>,
    boot: Option<&str>,
    error: Option<&str>,
    age_s: i64,
) -> Msg {
    Msg::Engine(EngineEvent::Reading {
        node: node.into(),
        power_on: on,
        boot_device: boot.map(Into::into),
        error: error.map(Into::into),
        at: NOW - age_s * 1000,
    })
}

/// The dashboard after a snapshot and a minute of live events.
pub fn populated(lab: &Lab) -> App {
    let mut app = app(lab);
    app.update(Msg::Tick(NOW - 60_000));
    let records = vec![
        record("p9-rack1-01", State::Active, None, None),
        record(
            "p9-rack1-02",
            State::Deploying,
            Some(Step::WriteImage),
            None,
        ),
        record(
            "p9-rack1-03",
            State::DeployFailed,
            Some(Step::WaitCallback),
            Some("wait-callback: no callback from the deploy agent within 900 s"),
        ),
        record("p8-rack2-01", State::Available, None, None),
        record(
            "p8-rack2-02",
            State::Error,
            Some(Step::CleanUp),
            Some("clean-up: dnsmasq optsdir not writable"),
        ),
        record("p10-lab-01", State::Enroll, None, None),
    ];
    let reservations = vec![Reservation {
        node: "p9-rack1-02".into(),
        holder: Holder {
            pid: 4242,
            host: "lab-admin".into(),
            user: "ops".into(),
        },
        action: "deploy".into(),
        since: NOW - 300_000,
    }];
    let history = vec![
        event(1, NOW - 3_600_000, "p9-rack1-01", "deploy", "ok", "active"),
        event(2, NOW - 900_000, "p9-rack1-03", "deploy", "started", ""),
        event(
            3,
            NOW - 600_000,
            "p9-rack1-03",
            "deploy",
            "failed",
            "wait-callback: no callback",
        ),
        event(4, NOW - 300_000, "p9-rack1-02", "deploy", "started", ""),
    ];
    app.update(Msg::Snapshot {
        records,
        reservations,
        history,
    });
    app.update(Msg::Tick(NOW));
    for msg in [
        reading("p9-rack1-01", Some(true), Some("none"), None, 3),
        reading("p9-rack1-02", Some(true), Some("pxe"), None, 2),
        reading(
            "p9-rack1-03",
            Some(false),
            Some("pxe (persistent)"),
            None,
            5,
        ),
        // Stale: 95 s old.
        reading("p8-rack2-01", Some(false), Some("disk"), None, 95),
        reading(
            "p8-rack2-02",
            None,
            None,
            Some("no answer from 10.77.1.22:623"),
            4,
        ),
    ] {
        app.update(msg);
    }
    for (i, w) in [
        410u16, 415, 430, 512, 640, 655, 630, 470, 450, 452, 458, 449,
    ]
    .iter()
    .enumerate()
    {
        app.update(Msg::Engine(EngineEvent::PowerDraw {
            node: "p9-rack1-01".into(),
            watts: *w,
            at: NOW - 12_000 + i as i64 * 1000,
        }));
    }
    app.update(Msg::Engine(EngineEvent::PowerDraw {
        node: "p9-rack1-02".into(),
        watts: 380,
        at: NOW,
    }));
    let stages = [
        (
            "p9-rack1-01",
            ConsoleStage::LoginPrompt,
            "p9-rack1-01 login: ",
        ),
        (
            "p9-rack1-02",
            ConsoleStage::KernelBooting,
            "[    0.000000] Linux version 6.8.0",
        ),
        (
            "p9-rack1-03",
            ConsoleStage::DownloadFailed,
            "Failed to download http://10.77.0.1:8080/p9-rack1-03/config",
        ),
    ];
    for (node, stage, line) in stages {
        app.update(Msg::Engine(EngineEvent::ConsoleStage {
            node: node.into(),
            stage,
            line: line.into(),
        }));
    }
    app.update(Msg::Engine(EngineEvent::Progress {
        node: "p9-rack1-02".into(),
        step: Step::WriteImage,
        message: "writing the image: 1.2 of 2.8 GiB".into(),
        fraction: Some(0.43),
    }));
    app
}

/// A real render of `node`'s config, with its path pinned.
pub fn preview(
    fx: &Fixture,
    node: &str,
    stage: crate::boot::Stage,
    on_disk: Option<&str>,
) -> Preview {
    let boot = crate::boot::PetitbootBoot::new(&fx.lab).expect("boot driver");
    let n = fx.lab.node(node).expect("fixture node");
    let rendered = boot.render(n, stage).map(|r| {
        r.map(|mut r| {
            r.config_path = PathBuf::from(format!("/var/lib/petitlab/http/{node}/config"));
            r
        })
    });
    Preview {
        node: node.into(),
        stage,
        rendered,
        on_disk: on_disk.map(Into::into),
    }
}

pub fn draw(app: &mut App, width: u16, height: u16) -> Terminal<TestBackend> {
    let mut terminal = Terminal::new(TestBackend::new(width, height)).expect("test terminal");
    terminal.draw(|f| app.draw(f)).expect("draw");
    terminal
}

/// The buffer's text, rows joined by newlines.
pub fn text(buf: &Buffer) -> String {
    let area = buf.area;
    let mut out = String::new();
    for y in area.top()..area.bottom() {
        for x in area.left()..area.right() {
            out.push_str(buf[(x, y)].symbol());
        }
        out.push('\n');
    }
    out
}

/// Where `needle` starts on screen (first match, row by row).
pub fn find(buf: &Buffer, needle: &str) -> Option<(u16, u16)> {
    let area = buf.area;
    for y in area.top()..area.bottom() {
        let row: Vec<&str> = (area.left()..area.right())
            .map(|x| buf[(x, y)].symbol())
            .collect();
        let chars: Vec<char> = needle.chars().collect();
        for x in 0..row.len() {
            let matched = chars.iter().enumerate().all(|(k, c)| {
                row.get(x + k)
                    .is_some_and(|s| s.chars().eq(std::iter::once(*c)))
            });
            if matched {
                return Some((area.left() + x as u16, y));
            }
        }
    }
    None
}

/// The cell at (x, y) is drawn in `role`: its colours and modifiers.
pub fn assert_role(theme: &Theme, buf: &Buffer, (x, y): (u16, u16), role: Role) {
    let want = theme.style(role);
    let cell = &buf[(x, y)];
    if let Some(fg) = want.fg {
        assert_eq!(
            cell.fg,
            fg,
            "fg of {:?} at ({x},{y}) for {role:?}",
            cell.symbol()
        );
    }
    if let Some(bg) = want.bg {
        assert_eq!(
            cell.bg,
            bg,
            "bg of {:?} at ({x},{y}) for {role:?}",
            cell.symbol()
        );
    }
    assert!(
        cell.modifier.contains(want.add_modifier),
        "modifiers of {:?} at ({x},{y}) for {role:?}: {:?} lacks {:?}",
        cell.symbol(),
        cell.modifier,
        want.add_modifier
    );
}

/// `needle` is on screen and its first cell is drawn in `role`.
pub fn assert_text_role(theme: &Theme, buf: &Buffer, needle: &str, role: Role) {
    let at =
        find(buf, needle).unwrap_or_else(|| panic!("{needle:?} not on screen:\n{}", text(buf)));
    assert_role(theme, buf, at, role);
}
