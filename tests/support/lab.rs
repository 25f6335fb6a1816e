//! The example lab on loopback: lab.toml.example with its BMCs moved to
//! free 127.0.0.1 ports, and `petitlab sim` serving them, killed by pid
//! when the test ends however it ends.

use std::io::{BufRead, BufReader};
use std::net::{Ipv4Addr, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::Duration;

/// lab.toml.example's IPMI nodes.
pub const NODES: [&str; 3] = ["p9-rack1-01", "p9-rack1-02", "p8-rack2-01"];
const EXAMPLE_HOSTS: [&str; 3] = ["10.77.1.11", "10.77.1.12", "10.77.1.21"];
/// lab.toml.example's Redfish node (a simulated bmcweb, its console SSH).
pub const REDFISH_NODE: &str = "p10-rack3-01";
const REDFISH_HOST: &str = "10.77.1.31";

pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn free_port() -> u16 {
    let s = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
    s.local_addr().unwrap().port()
}

fn free_tcp_port() -> u16 {
    let l = std::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
    l.local_addr().unwrap().port()
}

/// A port number free for TCP and for UDP alike.
fn free_tcp_and_udp_port() -> u16 {
    for _ in 0..100 {
        let tcp = std::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
        let port = tcp.local_addr().unwrap().port();
        if UdpSocket::bind((Ipv4Addr::LOCALHOST, port)).is_ok() {
            return port;
        }
    }
    panic!("no port free for both TCP and UDP in 100 tries");
}

/// lab.toml.example with its BMCs moved to loopback ports and its paths
/// made absolute. Returns the lab file and the IPMI nodes' ports, in
/// [`NODES`] order.
pub fn loopback_lab(dir: &Path) -> (PathBuf, Vec<u16>) {
    let mut text = std::fs::read_to_string(repo().join("lab.toml.example")).unwrap();
    let ports: Vec<u16> = NODES.iter().map(|_| free_port()).collect();
    for (host, port) in EXAMPLE_HOSTS.iter().zip(&ports) {
        let from = format!("host = \"{host}\"");
        assert!(text.contains(&from), "lab.toml.example changed: no {from}");
        text = text.replace(&from, &format!("host = \"127.0.0.1\"\nport = {port}"));
    }
    // The Redfish node: HTTPS (TCP) and its simulated IPMI (UDP) share the
    // port number; its SSH console has a port of its own.
    let from = format!("host = \"{REDFISH_HOST}\"");
    assert!(text.contains(&from), "lab.toml.example changed: no {from}");
    let (https, ssh) = (free_tcp_and_udp_port(), free_tcp_port());
    text = text.replace(
        &from,
        &format!("host = \"127.0.0.1\"\nport = {https}\nssh_port = {ssh}"),
    );
    // State (console logs, staged files) stays inside the test's dir.
    let state = format!("state_dir = \"{}/state\"", dir.display());
    assert!(
        text.contains("# state_dir = "),
        "lab.toml.example changed: no state_dir line"
    );
    text = text.replacen("# state_dir = ", &format!("{state}\n# was: "), 1);
    let abs = format!("\"{}/examples/", repo().display());
    text = text.replace("\"examples/", &abs);
    let path = dir.join("lab.toml");
    std::fs::write(&path, text).unwrap();
    (path, ports)
}

/// [`loopback_lab`] with `petitlab serve`'s HTTP and TFTP servers on free
/// loopback ports, configs using `protocol` ("http" or "tftp").
pub fn served_loopback_lab(dir: &Path, protocol: &str) -> PathBuf {
    let (path, _) = loopback_lab(dir);
    let (http, tftp) = (free_tcp_port(), free_port());
    let mut text = std::fs::read_to_string(&path).unwrap();
    for (from, to) in [
        (
            "http://10.77.0.1:8080/",
            format!("http://127.0.0.1:{http}/"),
        ),
        ("\"0.0.0.0:8080\"", format!("\"127.0.0.1:{http}\"")),
        ("tftp://10.77.0.1/", format!("tftp://127.0.0.1:{tftp}/")),
        ("\"0.0.0.0:69\"", format!("\"127.0.0.1:{tftp}\"")),
        (
            "# protocol = \"http\"",
            format!("protocol = \"{protocol}\""),
        ),
    ] {
        assert!(text.contains(from), "lab.toml.example changed: no {from}");
        text = text.replace(from, &to);
    }
    std::fs::write(&path, text).unwrap();
    path
}

/// A lab of one node, `name`, whose `[node.bmc]` has `bmc` (TOML lines)
/// plus `host = "127.0.0.1"` and `password_file` (0600, holding
/// `password`); stand-in deploy and instance files; state in `dir/state`.
/// Nothing serves its HTTP URL: for commands that never send a node there.
pub fn one_node_lab(dir: &Path, name: &str, password: &str, bmc: &str) -> PathBuf {
    use std::os::unix::fs::PermissionsExt;
    for file in ["k", "r", "disk.img"] {
        std::fs::write(dir.join(file), b"x").unwrap();
    }
    let pw = dir.join("pw");
    std::fs::write(&pw, format!("{password}\n")).unwrap();
    std::fs::set_permissions(&pw, std::fs::Permissions::from_mode(0o600)).unwrap();
    let text = format!(
        "state_dir = \"{state}\"\n\n[http]\nbase_url = \"http://127.0.0.1:8080/\"\n\n\
         [[node]]\nname = \"{name}\"\nmacs = [\"08:94:ef:30:00:09\"]\n\n\
         [node.bmc]\nhost = \"127.0.0.1\"\npassword_file = \"pw\"\n{bmc}\n\
         [node.deploy]\nkernel = \"k\"\nramdisk = \"r\"\n\n\
         [node.instance]\nimage = \"disk.img\"\n",
        state = dir.join("state").display(),
    );
    let lab = dir.join("lab.toml");
    std::fs::write(&lab, text).unwrap();
    lab
}

pub fn petitlab(lab: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_petitlab"))
        .arg("--lab")
        .arg(lab)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("run petitlab")
}

pub fn show(out: &Output) -> String {
    format!(
        "exit {}\nstdout:\n{}stderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

pub fn ok(lab: &Path, args: &[&str]) -> String {
    let out = petitlab(lab, args);
    assert!(out.status.success(), "petitlab {args:?}: {}", show(&out));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A long-running petitlab subcommand (`sim`, `serve`), killed by pid when
/// the test ends however it ends.
pub struct Daemon {
    child: Child,
    /// What it printed before "running".
    pub startup: Vec<String>,
}

impl Daemon {
    /// Starts `petitlab --lab LAB ARGS…` and waits for its "running" line.
    pub fn start(lab: &Path, args: &[&str]) -> Daemon {
        let mut child = Command::new(env!("CARGO_BIN_EXE_petitlab"))
            .arg("--lab")
            .arg(lab)
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("start petitlab {args:?}: {e}"));
        let stdout = child.stdout.take().unwrap();
        // Kept for the panic message should it fail to start.
        let stderr = child.stderr.take().unwrap();
        let errors = std::thread::spawn(move || {
            let mut text = String::new();
            let _ = std::io::Read::read_to_string(&mut BufReader::new(stderr), &mut text);
            text
        });
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        let mut startup = Vec::new();
        loop {
            match rx.recv_timeout(Duration::from_secs(10)) {
                Ok(line) if line.contains("running") => break,
                Ok(line) => startup.push(line),
                Err(e) => {
                    let _ = child.kill();
                    let _ = child.wait();
                    let stderr = errors.join().unwrap_or_default();
                    panic!(
                        "petitlab {args:?} did not start ({e}); it printed {startup:?}, stderr: {stderr}"
                    )
                }
            }
        }
        Daemon { child, startup }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// SIGTERM, as a service manager would: it must stop cleanly.
    pub fn stop(mut self) {
        let pid = self.child.id().to_string();
        assert!(
            Command::new("kill")
                .args(["-TERM", &pid])
                .status()
                .unwrap()
                .success()
        );
        let status = self.child.wait().unwrap();
        assert!(status.success(), "petitlab exited with {status}");
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `petitlab sim` serving the example lab's BMCs: one startup line for
/// each, and one more for the Redfish node's bmcweb front end.
pub fn start_sim(lab: &Path) -> Daemon {
    let sim = Daemon::start(lab, &["sim"]);
    let said = &sim.startup;
    let bmcs = said
        .iter()
        .filter(|l| l.contains(": BMC on 127.0.0.1:"))
        .count();
    let redfish = said
        .iter()
        .filter(|l| l.contains(&format!("{REDFISH_NODE}: Redfish on https://127.0.0.1:")))
        .count();
    assert_eq!((bmcs, redfish), (NODES.len() + 1, 1), "{said:?}");
    sim
}
