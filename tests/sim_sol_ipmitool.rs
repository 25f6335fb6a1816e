//! Serial-over-LAN of the BMC simulator against the reference client: real
//! `ipmitool -I lanplus sol activate` (cipher suites 3 and 17) in a tmux
//! pane, since it needs a terminal. Host output must reach the pane, typing
//! must reach the host, `~.` must end ipmitool, and `sol deactivate` from a
//! second session must free the payload. ipmitool and tmux are required:
//! without them these tests fail, they never skip. Every step has its own
//! timeout, so a hang fails fast. Waiting on tmux blocks the test's own
//! thread, not the runtime's workers, where the simulator runs.

mod support;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use petitlab::sim::{BmcSpec, SerialInput, Sim};
use support::tmux::Tmux;
use tokio::sync::broadcast;

const INSTALL: &str = "apt-get install ipmitool tmux";
/// How long one step (a line to show up, a command to finish) may take.
const STEP: Duration = Duration::from_secs(10);

/// The tool's path, or a failure that says what to install.
fn tool(name: &str) -> PathBuf {
    support::tools::tool(name, INSTALL)
}

fn ipmitool_args(sim: &Sim, cipher: u8, command: &str) -> Vec<String> {
    let port = sim.addr(0).port().to_string();
    let cipher = cipher.to_string();
    let fixed = [
        "-I",
        "lanplus",
        "-C",
        &cipher,
        "-H",
        "127.0.0.1",
        "-p",
        &port,
    ];
    fixed
        .iter()
        .chain(&["-U", "admin", "-P", "password"])
        .map(|s| s.to_string())
        .chain(command.split_whitespace().map(String::from))
        .collect()
}

/// The shell command for a pane running ipmitool.
fn ipmitool_line(sim: &Sim, cipher: u8, command: &str) -> String {
    let tool = tool("ipmitool").display().to_string();
    [tool]
        .into_iter()
        .chain(ipmitool_args(sim, cipher, command))
        .collect::<Vec<_>>()
        .join(" ")
}

/// Runs ipmitool without a terminal; (success, stdout + stderr).
async fn ipmitool(sim: &Sim, cipher: u8, command: &str) -> (bool, String) {
    let child = tokio::process::Command::new(tool("ipmitool"))
        .args(ipmitool_args(sim, cipher, command))
        .stdin(std::process::Stdio::null())
        .kill_on_drop(true)
        .output();
    let out = tokio::time::timeout(STEP, child)
        .await
        .unwrap_or_else(|_| panic!("ipmitool {command} hung for {STEP:?}"))
        .unwrap_or_else(|e| panic!("cannot run ipmitool: {e}"));
    let text = String::from_utf8_lossy(&out.stdout) + String::from_utf8_lossy(&out.stderr);
    (out.status.success(), text.into_owned())
}

async fn one_bmc() -> Sim {
    let mut spec = BmcSpec::new("node1", 0, "admin", "password");
    spec.line_delay = Duration::from_millis(1);
    Sim::start(vec![spec]).await.unwrap()
}

/// Reads what consoles typed into the host until it contains `needle`.
async fn typed_until(input: &mut broadcast::Receiver<SerialInput>, needle: &str) -> String {
    let mut typed = Vec::new();
    let read = async {
        while !String::from_utf8_lossy(&typed).contains(needle) {
            if let Ok(SerialInput::Data(bytes)) = input.recv().await {
                typed.extend_from_slice(&bytes);
            }
        }
    };
    if tokio::time::timeout(STEP, read).await.is_err() {
        panic!(
            "the host never got {needle:?}; it got {:?}",
            String::from_utf8_lossy(&typed)
        );
    }
    String::from_utf8_lossy(&typed).into_owned()
}

async fn console_both_ways(cipher: u8) {
    let sim = one_bmc().await;
    let tmux = Tmux::new(STEP);
    let started = Instant::now();
    tmux.run("sol", &ipmitool_line(&sim, cipher, "sol activate"));
    tmux.wait_for("sol", "[SOL Session operational");
    assert!(sim.sol_active(0));

    // Host → pane: a unique line injected on the serial port.
    let marker = format!("injected-{cipher}-{}", std::process::id());
    sim.serial(0).write(format!("host says {marker}\r\n"));
    tmux.wait_for("sol", &format!("host says {marker}"));

    // A netboot, printed while the console watches (a second session).
    assert!(ipmitool(&sim, cipher, "chassis bootdev pxe").await.0);
    assert!(ipmitool(&sim, cipher, "power on").await.0);
    let boot = tmux.wait_for("sol", "node1 login: ");
    for line in [
        "Petitboot (v1.14)",
        "pxelinux.cfg/",
        "kexec_core: Starting new kernel",
    ] {
        assert!(boot.contains(line), "no {line:?} in\n{boot}");
    }

    // Pane → host, and the host's echo back.
    let mut input = sim.serial(0).input();
    let typed = format!("typed{cipher}x");
    tmux.type_text("sol", &typed);
    typed_until(&mut input, &typed).await;
    tmux.wait_for("sol", &format!("node1 login: {typed}"));

    // `~.` only counts at the start of a line: Enter first.
    tmux.keys("sol", &["Enter"]);
    typed_until(&mut input, "\r").await;
    tmux.type_text("sol", "~.");
    let (status, end) = tmux.wait_for_exit("sol");
    assert_eq!(status, 0, "{end}");
    assert!(end.contains("[terminated ipmitool]"), "{end}");
    assert!(!sim.sol_active(0), "ipmitool deactivates on its way out");
    eprintln!("ipmitool -C {cipher} sol session: {:?}", started.elapsed());
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sol_console_both_ways_suite_3() {
    console_both_ways(3).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sol_console_both_ways_suite_17() {
    console_both_ways(17).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sol_deactivate_from_a_second_session_takes_over() {
    let sim = one_bmc().await;
    // `sol info` reads parameters 0–8; the payload port must be the BMC's.
    let (ok, info) = ipmitool(&sim, 17, "sol info").await;
    let port = format!(": {}", sim.addr(0).port());
    assert!(
        ok && info
            .lines()
            .any(|l| l.starts_with("Payload Port") && l.ends_with(&port)),
        "{info}"
    );
    let tmux = Tmux::new(STEP);
    tmux.run("old", &ipmitool_line(&sim, 17, "sol activate"));
    tmux.wait_for("old", "[SOL Session operational");

    let (ok, text) = ipmitool(&sim, 3, "sol activate").await;
    assert!(
        !ok && text.contains("SOL payload already active on another session"),
        "{text}"
    );
    let (ok, text) = ipmitool(&sim, 3, "sol deactivate").await;
    assert!(ok, "sol deactivate: {text}");
    assert!(!sim.sol_active(0));

    tmux.run("new", &ipmitool_line(&sim, 3, "sol activate"));
    tmux.wait_for("new", "[SOL Session operational");
    sim.serial(0).write("for the new console\r\n");
    tmux.wait_for("new", "for the new console");
    // The old console (which ignores the deactivating bit) gets nothing.
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(!tmux.screen("old").contains("for the new console"));

    // New first: the old one's parting Deactivate must not take over.
    tmux.keys("new", &["Enter"]);
    tmux.type_text("new", "~.");
    let (status, new) = tmux.wait_for_exit("new");
    assert_eq!(status, 0, "{new}");
    tmux.type_text("old", "~.");
    let (_, old) = tmux.wait_for_exit("old");
    assert!(old.contains("SOL payload already de-activated"), "{old}");
    assert!(!sim.sol_active(0));
    sim.shutdown().await;
}
