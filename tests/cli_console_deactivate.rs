//! `petitlab console NODE --deactivate` frees a SOL payload a killed client
//! left active, and `console -e CHAR` moves the escape character. A stuck
//! payload is made the way it happens: `ipmitool sol activate`, SIGKILLed.
//! Then `petitlab console` is refused as busy, `--deactivate` frees it (and
//! says there was nothing to free the second time), and `petitlab console`
//! attaches without `--force`, in tmux, and quits with `~.`. Against
//! OpenIPMI's ipmi_sim (a fresh one per test: a killed console's payload
//! stays busy there for ~30 s) and against `petitlab sim`.

mod support;

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use support::ipmi_sim::{IpmiSim, PASSWORD, USER, require_binary};
use support::lab::{NODES, loopback_lab, one_node_lab, petitlab, repo, show, start_sim};
use support::tmux::Tmux;

/// `ipmitool sol activate` left running without a terminal, its output
/// collected; SIGKILLed by pid by `kill` or when dropped.
struct StuckConsole {
    child: Child,
    output: Arc<Mutex<Vec<u8>>>,
}

impl StuckConsole {
    /// `args`: the ipmitool arguments that reach the BMC.
    fn start(args: &[String]) -> StuckConsole {
        let mut child = Command::new(require_binary("ipmitool"))
            .args(args)
            .args(["sol", "activate"])
            // Held open: ipmitool would quit at the end of its input.
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("start ipmitool sol activate");
        let output = Arc::new(Mutex::new(Vec::new()));
        let mut stdout = child.stdout.take().unwrap();
        let sink = output.clone();
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n @ 1..) = stdout.read(&mut buf) {
                sink.lock().unwrap().extend_from_slice(&buf[..n]);
            }
        });
        StuckConsole { child, output }
    }

    fn output(&self) -> String {
        String::from_utf8_lossy(&self.output.lock().unwrap()).into_owned()
    }

    /// SIGKILL, as a crashed client: the payload stays active on the BMC.
    fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for StuckConsole {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Waits until the BMC reports the SOL payload (instance 1) active, asking
/// with Get Payload Activation Status (netfn App, 0x4A) through ipmitool.
fn wait_payload_active(args: &[String], console: &StuckConsole) {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let out = Command::new(require_binary("ipmitool"))
            .args(args)
            .args(["raw", "0x06", "0x4a", "0x01"])
            .stdin(Stdio::null())
            .output()
            .expect("run ipmitool raw");
        // " 01 01 00": capacity, then the active instances' bits.
        let bytes: Vec<u8> = String::from_utf8_lossy(&out.stdout)
            .split_whitespace()
            .filter_map(|b| u8::from_str_radix(b, 16).ok())
            .collect();
        if out.status.success() && bytes.get(1).is_some_and(|b| b & 1 == 1) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "SOL never became active under ipmitool: status {bytes:02x?} ({}), \
             ipmitool printed {:?}",
            show(&out),
            console.output()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_petitlab")
}

fn console_line(lab: &Path, args: &str) -> String {
    format!("{} --lab {} console {args}", bin(), lab.display())
}

/// The stuck payload is refused as busy, freed by `--deactivate`, found
/// free the second time, and a plain `console` then attaches (in tmux)
/// and quits with `~.`. `host_says` makes the host print, until `expect`
/// shows up.
fn refused_freed_and_attached(lab: &Path, node: &str, mut host_says: impl FnMut(), expect: &str) {
    let out = petitlab(lab, &["console", node]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{}", show(&out));
    assert!(
        stderr.contains("already active in another session; take it over with --force"),
        "{}",
        show(&out)
    );

    let out = petitlab(lab, &["console", node, "--deactivate"]);
    assert!(out.status.success(), "{}", show(&out));
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        format!("{node}: SOL payload deactivated\n"),
        "{}",
        show(&out)
    );
    let out = petitlab(lab, &["console", node, "--deactivate"]);
    assert!(out.status.success(), "{}", show(&out));
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        format!("{node}: no SOL payload was active\n"),
        "idempotent: {}",
        show(&out)
    );

    let tmux = Tmux::new(Duration::from_secs(15));
    tmux.run("c", &console_line(lab, node));
    tmux.wait_for("c", &format!("console of {node} over SOL"));
    tmux.wait_for("c", "~. quits, ~? helps");
    // The console is really attached: what the host prints shows up.
    let deadline = Instant::now() + Duration::from_secs(20);
    while !tmux.screen("c").contains(expect) {
        assert!(Instant::now() < deadline, "{}", tmux.screen("c"));
        host_says();
        std::thread::sleep(Duration::from_millis(300));
    }
    tmux.type_text("c", "~.");
    let (status, screen) = tmux.wait_for_exit("c");
    assert_eq!(status, 0, "{screen}");
    assert!(screen.contains("ended: closed"), "{screen}");
}

fn ipmi_sim_args(sim: &IpmiSim) -> Vec<String> {
    let port = sim.port().to_string();
    ["-I", "lanplus", "-C", "3", "-H", "127.0.0.1", "-p", &port]
        .into_iter()
        .chain(["-U", USER, "-P", PASSWORD])
        .map(String::from)
        .collect()
}

fn ipmi_sim_lab(dir: &Path, sim: &IpmiSim) -> PathBuf {
    let bmc = format!(
        "port = {}\nusername = \"{USER}\"\ncipher_suite = 3\n",
        sim.port()
    );
    one_node_lab(dir, "osim-01", PASSWORD, &bmc)
}

#[test]
fn ipmi_sim_payload_left_by_a_killed_ipmitool_is_freed() {
    let (sim, serial) = IpmiSim::start_with_sol();
    let serial = Mutex::new(serial);
    let dir = tempfile::tempdir().unwrap();
    let lab = ipmi_sim_lab(dir.path(), &sim);
    let args = ipmi_sim_args(&sim);
    let mut stuck = StuckConsole::start(&args);
    wait_payload_active(&args, &stuck);
    stuck.kill();
    let says = || {
        serial
            .lock()
            .unwrap()
            .write_all(b"host after deactivate\r\n")
    };
    refused_freed_and_attached(&lab, "osim-01", says, "host after deactivate");
}

#[test]
fn simulator_payload_left_by_a_killed_ipmitool_is_freed() {
    let dir = tempfile::tempdir().unwrap();
    let (lab, ports) = loopback_lab(dir.path());
    let _sim = start_sim(&lab);
    let node = NODES[0];
    let password_file = repo().join("examples/secrets/bmc-password");
    let args: Vec<String> = [
        "-I",
        "lanplus",
        "-C",
        "17",
        "-H",
        "127.0.0.1",
        "-p",
        &ports[0].to_string(),
        "-U",
        "admin",
        "-f",
        password_file.to_str().unwrap(),
    ]
    .into_iter()
    .map(String::from)
    .collect();
    let mut stuck = StuckConsole::start(&args);
    wait_payload_active(&args, &stuck);
    stuck.kill();
    // The simulated host prints its boot once powered on.
    let mut powered = false;
    let says = || {
        if !powered {
            let out = petitlab(&lab, &["power", node, "on"]);
            assert!(out.status.success(), "{}", show(&out));
            powered = true;
        }
    };
    refused_freed_and_attached(&lab, node, says, "p9-rack1-01 login:");
}

#[test]
fn another_escape_character_passes_tilde_dot_to_the_host() {
    let (sim, mut serial) = IpmiSim::start_with_sol();
    let dir = tempfile::tempdir().unwrap();
    let lab = ipmi_sim_lab(dir.path(), &sim);
    let tmux = Tmux::new(Duration::from_secs(15));
    tmux.run("c", &console_line(&lab, "osim-01 -e '&'"));
    tmux.wait_for("c", "console of osim-01 over SOL");
    // The help line names the chosen character.
    tmux.wait_for("c", "&. quits, &? helps");
    tmux.type_text("c", "~.");
    tmux.keys("c", &["Enter"]);
    // `~.` at the start of a line is plain text now: the host gets it.
    let got = serial.read_until(b"\r", Duration::from_secs(10));
    assert_eq!(got, b"~.\r", "{}", got.escape_ascii());
    tmux.type_text("c", "&?");
    tmux.wait_for("c", "&B  send a serial break");
    tmux.type_text("c", "&.");
    let (status, screen) = tmux.wait_for_exit("c");
    assert_eq!(status, 0, "{screen}");
    assert!(screen.contains("ended: closed"), "{screen}");
    // Neither `&?` nor `&.` reached the host.
    let rest = serial.read_for(Duration::from_millis(300));
    assert!(rest.is_empty(), "{}", rest.escape_ascii());
}

#[test]
fn escape_values_that_cannot_be_typed_are_refused() {
    for (value, why) in [
        ("ab", "must be one character (or `none`)"),
        ("\x01", "must be printable ASCII"),
        ("é", "must be printable ASCII"),
    ] {
        let out = Command::new(bin())
            .args([
                "--lab",
                "/nonexistent/lab.toml",
                "console",
                "n1",
                "-e",
                value,
            ])
            .stdin(Stdio::null())
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "{value:?}: {}", show(&out));
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains(why), "{value:?}: {stderr}");
    }
}

#[test]
fn deactivate_refuses_a_console_that_is_not_sol() {
    let dir = tempfile::tempdir().unwrap();
    let bmc = "username = \"root\"\nconsole = \"ssh\"\nssh_port = 1\n";
    let lab = one_node_lab(dir.path(), "p10-ssh", "unused", bmc);
    let out = petitlab(&lab, &["console", "p10-ssh", "--deactivate"]);
    assert_eq!(out.status.code(), Some(1), "{}", show(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(
            "node p10-ssh: its console is ssh, not IPMI SOL: there is no SOL payload to deactivate"
        ),
        "{stderr}"
    );
    // Nor does it combine with what it cannot mean.
    for other in ["--force", "--log"] {
        let out = petitlab(&lab, &["console", "p10-ssh", "--deactivate", other]);
        assert_eq!(out.status.code(), Some(2), "{}", show(&out));
    }
}

/// Through the lab service, which holds the node's console itself: its
/// console, refused at start by the stuck payload, is connected again after
/// `--deactivate` (what the host prints reaches the service's log).
#[test]
fn through_the_service_the_payload_is_freed_and_its_console_reconnects() {
    let (sim, serial) = IpmiSim::start_with_sol();
    let serial = Mutex::new(serial);
    let dir = tempfile::tempdir().unwrap();
    let lab = ipmi_sim_lab(dir.path(), &sim);
    let args = ipmi_sim_args(&sim);
    let mut stuck = StuckConsole::start(&args);
    wait_payload_active(&args, &stuck);
    stuck.kill();
    let _serve = support::lab::Daemon::start(&lab, &["serve"]);

    let out = petitlab(&lab, &["console", "osim-01", "--deactivate"]);
    assert!(out.status.success(), "{}", show(&out));
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "osim-01: SOL payload deactivated; the lab service's console reconnected\n",
        "{}",
        show(&out)
    );
    let log = support::cast::console_path(&dir.path().join("state"), "osim-01");
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        serial
            .lock()
            .unwrap()
            .write_all(b"host after deactivate\r\n");
        std::thread::sleep(Duration::from_millis(300));
        if log.exists() && support::cast::console_text(&log).contains("host after deactivate") {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the service's console did not show the host: {:?}",
            log.exists().then(|| support::cast::console_text(&log))
        );
    }
    // Again, now that the service's own console holds the payload.
    let out = petitlab(&lab, &["console", "osim-01", "--deactivate"]);
    assert!(out.status.success(), "{}", show(&out));
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "osim-01: SOL payload deactivated (the lab service's own console held it); \
         the lab service's console reconnected\n",
        "{}",
        show(&out)
    );
    // Not there: refused by the service.
    let out = petitlab(&lab, &["console", "nope", "--deactivate"]);
    assert!(!out.status.success(), "{}", show(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("no node named \"nope\""),
        "{}",
        show(&out)
    );
}
