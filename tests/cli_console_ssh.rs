//! `petitlab console` on a node whose console is SSH (OpenBMC's
//! obmc-console on port 2200), in tmux, against Debian's OpenSSH sshd and
//! dropbear playing it (tests/support/sshd.rs): typing reaches the host,
//! `~.` is petitlab's own escape (the host never sees it), and the host key
//! lands in petitlab's own known-hosts file.

mod support;

use std::path::{Path, PathBuf};
use std::time::Duration;

use support::lab::one_node_lab;
use support::sshd::{Kind, Options, SshServer};
use support::tmux::Tmux;

/// A one-node lab whose console is the server's SSH console, logged into
/// with the server's client key.
fn lab_for(dir: &Path, server: &SshServer) -> PathBuf {
    let bmc = format!(
        "username = \"{}\"\nconsole = \"ssh\"\nssh_port = {}\nssh_key = \"{}\"\n",
        server.user(),
        server.port(),
        server.client_key().display()
    );
    one_node_lab(dir, "p10-ssh", "unused-for-ssh", &bmc)
}

fn tilde_dot_is_petitlabs_own_escape(kind: Kind) {
    let server = SshServer::start(kind, Options::default());
    let dir = tempfile::tempdir().unwrap();
    let lab = lab_for(dir.path(), &server);
    let tmux = Tmux::new(Duration::from_secs(15));
    tmux.run(
        "c",
        &format!(
            "{} --local --lab {} console p10-ssh",
            env!("CARGO_BIN_EXE_petitlab"),
            lab.display()
        ),
    );
    tmux.wait_for("c", "console of p10-ssh over SSH to 127.0.0.1:");
    tmux.wait_for("c", "Press ~. to exit console");
    tmux.type_text("c", "hello-host");
    tmux.keys("c", &["Enter"]);
    // The forced command echoes: what was typed came back.
    tmux.wait_for("c", "hello-host");
    tmux.type_text("c", "~.");
    let (status, screen) = tmux.wait_for_exit("c");
    assert_eq!(status, 0, "{screen}");
    // Give the server a moment: anything sent would be recorded by now.
    std::thread::sleep(Duration::from_millis(300));
    let typed = server.typed();
    assert_eq!(
        String::from_utf8_lossy(&typed),
        "hello-host\r",
        "the host got exactly what was typed before ~., and not ~."
    );
    let known = std::fs::read_to_string(dir.path().join("state/ssh_known_hosts")).unwrap();
    assert!(
        known.starts_with(&format!("[127.0.0.1]:{} ssh-", server.port())),
        "{known}"
    );
}

#[test]
fn openssh_console_through_the_cli_with_tilde_dot_kept_by_petitlab() {
    tilde_dot_is_petitlabs_own_escape(Kind::OpenSsh);
}

#[test]
fn dropbear_console_through_the_cli_with_tilde_dot_kept_by_petitlab() {
    tilde_dot_is_petitlabs_own_escape(Kind::Dropbear);
}
