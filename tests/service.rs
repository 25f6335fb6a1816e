//! The lab service (`petitlab serve`) with the CLI as its client, against
//! `petitlab sim`'s BMCs and virtual petitboot hosts: actions run in the
//! service whatever happens to the client, consoles keep a scrollback, the
//! socket admits only the lab's group, and the audit log names the user.

mod support;

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use support::lab::{Daemon, petitlab, show};
use support::virtual_lab::{Proto, VNode, VirtualLab};

const DEPLOY: &str = "[deploy]\npower_timeout = 10\ncallback_timeout = 60\nheartbeat = 2\n\
                      write_timeout = 60\nboot_timeout = 60\n";

fn lab(extra: &str) -> VirtualLab {
    let nodes = vec![
        VNode::new("n1", Proto::Http, false, 0),
        VNode::new("n2", Proto::Tftp, true, 1),
    ];
    VirtualLab::new(nodes, 200 << 10, &format!("{DEPLOY}{extra}"))
}

/// Waits until `node` is in `state` (read through the service), or panics.
fn wait_state(v: &VirtualLab, node: &str, state: &str, within: Duration) {
    let deadline = Instant::now() + within;
    let mut last = String::new();
    while Instant::now() < deadline {
        let out = petitlab(&v.lab, &["status", "--json", node]);
        last = show(&out);
        let rows: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
        if rows[0]["node"]["state"] == state {
            return;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    panic!("{node} never reached {state}: {last}");
}

fn petitlab_cmd(lab: &Path) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_petitlab"));
    cmd.arg("--lab").arg(lab);
    cmd
}

#[test]
fn a_deploy_goes_on_when_its_client_is_piped_into_head_or_killed() {
    let v = lab("");
    let serve = Daemon::start(&v.lab, &["serve"]);
    let _sim = Daemon::start(&v.lab, &["sim", "--line-delay-ms", "20"]);
    assert!(
        serve.startup.iter().any(|l| l.contains("lab service for")),
        "{:?}",
        serve.startup
    );
    // A second service for the same lab is refused, naming the socket.
    let second = petitlab(&v.lab, &["serve"]);
    assert!(!second.status.success());
    assert!(
        show(&second).contains("a lab service already runs on"),
        "{}",
        show(&second)
    );

    // `| head -1`: the client's stdout closes after the first line.
    let piped = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "{} --lab {} deploy n1 | head -1",
            env!("CARGO_BIN_EXE_petitlab"),
            v.lab.display()
        ))
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&piped.stdout).lines().count(),
        1,
        "{}",
        show(&piped)
    );
    wait_state(&v, "n1", "active", Duration::from_secs(60));

    // SIGKILL of the client as soon as the deploy has started.
    let mut client = petitlab_cmd(&v.lab)
        .args(["deploy", "n2"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut first = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(client.stdout.as_mut().unwrap()),
        &mut first,
    )
    .unwrap();
    client.kill().unwrap();
    client.wait().unwrap();
    assert!(first.starts_with("n2: "), "{first}");
    wait_state(&v, "n2", "active", Duration::from_secs(60));

    // The audit log names the user who asked, not only the service.
    let history = show(&petitlab(&v.lab, &["history", "n2", "--limit", "200"]));
    assert!(
        history.contains("succeed  active  (root (pid "),
        "the user is named: {history}"
    );
    serve.stop();
}

#[test]
fn a_console_opened_after_a_boot_shows_the_boot() {
    let v = lab("");
    let serve = Daemon::start(&v.lab, &["serve"]);
    let _sim = Daemon::start(&v.lab, &["sim", "--line-delay-ms", "20"]);
    let out = petitlab(&v.lab, &["deploy", "n2"]);
    assert!(out.status.success(), "{}", show(&out));
    // Nobody watched the console during the boot: the service did.
    let out = petitlab_cmd(&v.lab)
        .args(["console", "--read-only", "n2"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_secs(2));
    let pid = out.id().to_string();
    Command::new("kill").args(["-TERM", &pid]).status().unwrap();
    let out = out.wait_with_output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    for seen in ["Petitboot", "Performing kexec reboot", "n2 login: "] {
        assert!(
            text.contains(seen),
            "{seen:?} not in the scrollback: {text}"
        );
    }
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(said.contains("from the lab service; read-only"), "{said}");
    serve.stop();
}

/// The lab's files readable by any user, as a shared lab's are.
fn open_to_all(v: &VirtualLab) {
    let d = v.dir.path();
    std::fs::set_permissions(d, std::fs::Permissions::from_mode(0o755)).unwrap();
    for entry in std::fs::read_dir(d).unwrap() {
        let path = entry.unwrap().path();
        if path.is_file() {
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        }
    }
}

/// `petitlab ARGS` as uid/gid 65534 (nobody) with these extra groups.
fn as_nobody(v: &VirtualLab, groups: &str, args: &[&str]) -> std::process::Output {
    let mut cmd = Command::new("setpriv");
    cmd.args(["--reuid=65534", "--regid=65534"]);
    match groups {
        "" => cmd.arg("--clear-groups"),
        g => cmd.arg(format!("--groups={g}")),
    };
    cmd.arg(env!("CARGO_BIN_EXE_petitlab"))
        .arg("--lab")
        .arg(&v.lab)
        .args(args)
        .env("HOME", "/nonexistent")
        .output()
        .unwrap()
}

#[test]
fn the_socket_admits_the_labs_group_only_and_the_audit_log_names_each_user() {
    // SAFETY: geteuid cannot fail.
    assert_eq!(
        unsafe { libc::geteuid() },
        0,
        "this test switches users: run it as root (CI does)"
    );
    let v = lab("[service]\ngroup = \"adm\"\n");
    open_to_all(&v);
    let serve = Daemon::start(&v.lab, &["serve"]);
    let _sim = Daemon::start(&v.lab, &["sim"]);
    let socket = v.state().join("petitlab.sock");
    let meta = std::fs::metadata(&socket).unwrap();
    assert_eq!(meta.permissions().mode() & 0o777, 0o660);
    assert_eq!(std::os::unix::fs::MetadataExt::gid(&meta), 4, "group adm");

    // Not in the group: the socket's mode keeps nobody out.
    let out = as_nobody(&v, "", &["status"]);
    assert!(!out.status.success());
    let text = show(&out);
    assert!(
        text.contains("permission denied: user nobody may not connect"),
        "{text}"
    );

    // A member of adm is admitted, and needs to read lab.toml, not the BMC
    // password; its power action is in the audit log under its name, and
    // root's under root's.
    let password = v.dir.path().join("bmc-password");
    std::fs::set_permissions(&password, std::fs::Permissions::from_mode(0o600)).unwrap();
    let out = as_nobody(&v, "4", &["power", "n1", "on"]);
    assert!(out.status.success(), "{}", show(&out));
    assert!(
        show(&out).contains("n1: on sent; power is on"),
        "{}",
        show(&out)
    );
    let out = petitlab(&v.lab, &["power", "n1", "off"]);
    assert!(out.status.success(), "{}", show(&out));
    let history = show(&petitlab(&v.lab, &["history", "n1"]));
    assert!(
        history.contains("power on  ok: on sent; power is on  (nobody (pid "),
        "{history}"
    );
    assert!(
        history.contains("power off  ok: off sent; power is off  (root (pid "),
        "{history}"
    );

    // Should the socket be opened to everyone, the service itself still
    // refuses a user outside the group, saying why.
    std::fs::set_permissions(&socket, std::fs::Permissions::from_mode(0o666)).unwrap();
    let state = v.state();
    let mode = std::fs::metadata(&state).unwrap().permissions().mode();
    std::fs::set_permissions(&state, std::fs::Permissions::from_mode(mode | 0o001)).unwrap();
    let out = as_nobody(&v, "", &["status"]);
    assert!(!out.status.success());
    let text = show(&out);
    assert!(
        text.contains("the lab service refused: user nobody is not in group adm"),
        "{text}"
    );
    serve.stop();
}

#[test]
fn kill_9_of_the_service_mid_deploy_then_a_restart_resumes_it() {
    let v = lab("");
    let serve = Daemon::start(&v.lab, &["serve"]);
    let _sim = Daemon::start(&v.lab, &["sim", "--line-delay-ms", "150"]);
    let mut client = petitlab_cmd(&v.lab)
        .args(["deploy", "n1"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    wait_state(&v, "n1", "wait-callback", Duration::from_secs(30));
    let pid = serve.pid().to_string();
    assert!(
        Command::new("kill")
            .args(["-KILL", &pid])
            .status()
            .unwrap()
            .success()
    );
    drop(serve);
    // The client sees its service go and says so.
    let status = client.wait().unwrap();
    assert!(!status.success());

    let serve = Daemon::start(&v.lab, &["serve"]);
    let status = show(&petitlab(&v.lab, &["status", "n1"]));
    assert!(status.contains("wait-callback"), "{status}");
    let history = show(&petitlab(&v.lab, &["history", "n1"]));
    assert!(
        history.contains("`petitlab deploy n1` resumes it at"),
        "the restart says how to resume: {history}"
    );
    let out = petitlab(&v.lab, &["deploy", "n1"]);
    assert!(out.status.success(), "{}", show(&out));
    assert!(
        show(&out).contains("n1: deploy done: n1 is active"),
        "{}",
        show(&out)
    );
    serve.stop();
}

/// Reads a child's stream on a thread, line by line, for `wait_line`.
fn lines_of(stream: impl std::io::Read + Send + 'static) -> std::sync::mpsc::Receiver<String> {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        use std::io::BufRead;
        for line in std::io::BufReader::new(stream)
            .split(b'\n')
            .map_while(Result::ok)
        {
            let _ = tx.send(String::from_utf8_lossy(&line).into_owned());
        }
    });
    rx
}

fn wait_line(lines: &std::sync::mpsc::Receiver<String>, text: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut seen = Vec::new();
    while let Some(left) = deadline.checked_duration_since(Instant::now()) {
        match lines.recv_timeout(left) {
            Ok(line) if line.contains(text) => return line,
            Ok(line) => seen.push(line),
            Err(_) => break,
        }
    }
    panic!("{text:?} never came; saw {seen:?}");
}

#[test]
fn one_writer_at_a_time_force_takes_the_lock_and_the_previous_writer_is_told() {
    let v = lab("");
    let serve = Daemon::start(&v.lab, &["serve"]);
    let _sim = Daemon::start(&v.lab, &["sim"]);
    let attach = |args: &[&str]| {
        let mut child = petitlab_cmd(&v.lab)
            .args(["console", "n1"])
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let said = lines_of(child.stderr.take().unwrap());
        (child, said)
    };
    let (mut first, first_said) = attach(&[]);
    wait_line(&first_said, "you have the write lock");
    let (mut second, second_said) = attach(&[]);
    wait_line(
        &second_said,
        "read-only: root has the write lock (--force takes it)",
    );
    let (mut third, third_said) = attach(&["--force"]);
    wait_line(&third_said, "you have the write lock");
    wait_line(&first_said, "root took the write lock: read-only now");
    // The first now types in vain, and is told why once.
    use std::io::Write;
    let keys = first.stdin.as_mut().unwrap();
    keys.write_all(b"x").unwrap();
    keys.flush().unwrap();
    wait_line(&first_said, "read-only on the console of n1: root holds it");
    // ~. leaves without disturbing the others.
    third.stdin.as_mut().unwrap().write_all(b"\r~.").unwrap();
    assert!(third.wait().unwrap().success());
    wait_line(&third_said, "left the console of n1");
    for child in [&mut first, &mut second] {
        assert!(child.try_wait().unwrap().is_none(), "still attached");
        child.kill().unwrap();
        child.wait().unwrap();
    }
    serve.stop();
}

#[test]
fn sighup_makes_serve_reread_lab_toml() {
    let v = lab("");
    let serve = Daemon::start(&v.lab, &["serve"]);
    let _sim = Daemon::start(&v.lab, &["sim"]);
    let text = std::fs::read_to_string(&v.lab).unwrap();
    let n2 = text.rfind("[[node]]").unwrap();
    assert!(text[n2..].contains("name = \"n2\""));
    std::fs::write(&v.lab, &text[..n2]).unwrap();
    let pid = serve.pid().to_string();
    assert!(
        Command::new("kill")
            .args(["-HUP", &pid])
            .status()
            .unwrap()
            .success()
    );
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let status = show(&petitlab(&v.lab, &["status"]));
        if status.contains("n1") && !status.contains("n2") {
            break;
        }
        assert!(Instant::now() < deadline, "n2 still served: {status}");
        std::thread::sleep(Duration::from_millis(100));
    }
    // Still serving, and stopped cleanly by SIGTERM afterwards.
    serve.stop();
}
