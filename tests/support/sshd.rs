//! Real SSH servers playing OpenBMC's console port (dropbear on 2200 with
//! `obmc-console-client` as the forced command): Debian's OpenSSH `sshd`
//! and `dropbear`, each on 127.0.0.1:<free port> with its own host key,
//! config and files in a temp dir, never the system's.
//!
//! The forced command is [`CONSOLE_SCRIPT`]: it prints obmc-console-client's
//! banner, then `cat` echoes stdin to stdout byte for byte (no PTY is asked
//! for, so nothing cooks the bytes), and it leaves its PID in `consoles/`
//! so a test can kill the session's child.
//!
//! Each server runs in a private mount namespace (`unshare --mount`) so it
//! can see files of ours in system places without touching them:
//! - dropbear reads `~/.ssh/authorized_keys` only: a temp dir is bound over
//!   the home directory (sshd takes `AuthorizedKeysFile` instead);
//! - with a password, a shadow file giving the user that password is bound
//!   over `/etc/shadow` (both servers check passwords with getspnam()).
//!
//! Needs root (mount namespaces, sshd's privilege separation), as CI runs.

use std::fs;
use std::io::Read;
use std::net::{TcpListener, TcpStream};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// What the forced command prints first, like obmc-console-client's setup.
pub const BANNER: &[u8] = b"Press ~. to exit console\r\n";

/// The password [`Options::password`] servers accept for the user, and its
/// SHA-512 crypt (`openssl passwd -6 -salt petitlab`).
pub const PASSWORD: &str = "not-the-real-root-pw";
const PASSWORD_HASH: &str = "$6$petitlab$su82L/jJaX.rHD.cECFbU2Zk.oCZGVKA1Ibj7xcHHeaDy4hKMfhBFa92/iY/W7KG2TPhDjmOh1fcrdxKaHqu8.";

const SSHD: &str = "/usr/sbin/sshd";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    OpenSsh,
    Dropbear,
}

#[derive(Debug, Clone, Copy, Default)]
pub struct Options {
    /// Also accept [`PASSWORD`] for the user.
    pub password: bool,
}

pub struct SshServer {
    dir: tempfile::TempDir,
    kind: Kind,
    options: Options,
    port: u16,
    child: Option<Child>,
    /// Host keys generated so far (the newest is in use).
    generation: u32,
}

impl SshServer {
    pub fn start(kind: Kind, options: Options) -> SshServer {
        require_root();
        let dir = tempfile::Builder::new()
            .prefix("petitlab-sshd-")
            .tempdir()
            .unwrap();
        let mut server = SshServer {
            dir,
            kind,
            options,
            port: free_port(),
            child: None,
            generation: 0,
        };
        server.prepare();
        server.new_host_key();
        server.launch();
        server
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn kind(&self) -> Kind {
        self.kind
    }

    /// The user the servers let in: whoever runs the tests (root in CI).
    pub fn user(&self) -> String {
        current_user()
    }

    /// The client's private key (OpenSSH format), authorized on the server.
    pub fn client_key(&self) -> PathBuf {
        self.dir.path().join("client_key")
    }

    /// A key the server does not know.
    pub fn stranger_key(&self) -> PathBuf {
        self.dir.path().join("stranger_key")
    }

    /// SHA256 fingerprint of the host key in use, as `ssh-keygen -l` shows it.
    pub fn host_key_fingerprint(&self) -> String {
        let public = self
            .dir
            .path()
            .join(format!("host_key.{}.pub", self.generation));
        let out = run(Command::new("ssh-keygen")
            .arg("-l")
            .arg("-E")
            .arg("sha256")
            .arg("-f")
            .arg(&public));
        out.split_whitespace()
            .nth(1)
            .unwrap_or_else(|| panic!("ssh-keygen -l printed {out:?}"))
            .to_string()
    }

    /// The server's own log (stderr), for failure messages.
    pub fn log(&self) -> String {
        fs::read_to_string(self.dir.path().join("server.log")).unwrap_or_default()
    }

    /// PIDs of the forced commands (the sessions' children) still running.
    /// Every byte the console sessions were sent, in order (the forced
    /// command echoes them and also appends them here).
    pub fn typed(&self) -> Vec<u8> {
        fs::read(self.path("typed")).unwrap_or_default()
    }

    pub fn console_pids(&self) -> Vec<i32> {
        let mut pids = Vec::new();
        for entry in fs::read_dir(self.dir.path().join("consoles")).unwrap() {
            let name = entry.unwrap().file_name();
            if let Ok(pid) = name.to_string_lossy().parse::<i32>()
                && alive(pid)
            {
                pids.push(pid);
            }
        }
        pids
    }

    /// Waits until `count` sessions run their forced command.
    pub fn wait_for_consoles(&self, count: usize) -> Vec<i32> {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let pids = self.console_pids();
            if pids.len() >= count {
                return pids;
            }
            assert!(
                Instant::now() < deadline,
                "{count} console session(s) expected, {} running; server log:\n{}",
                pids.len(),
                self.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Kills every session's forced command, as a crashing
    /// obmc-console-client would end the session.
    pub fn kill_consoles(&self) -> usize {
        let pids = self.console_pids();
        for &pid in &pids {
            kill(pid);
            let _ = fs::remove_file(self.dir.path().join("consoles").join(pid.to_string()));
        }
        pids.len()
    }

    /// Stops the server and every session it forked.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            kill_tree(child.id() as i32);
            let _ = child.wait();
        }
        // Their sessions went with them.
        for entry in fs::read_dir(self.path("consoles")).unwrap().flatten() {
            let _ = fs::remove_file(entry.path());
        }
    }

    /// Stops and starts the server again on the same port and host key.
    pub fn restart(&mut self) {
        self.stop();
        self.launch();
    }

    /// Stops the server and starts it on the same port with a new host key,
    /// as a reflashed BMC would come back.
    pub fn restart_with_new_host_key(&mut self) {
        self.stop();
        self.new_host_key();
        self.launch();
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// Client keys, the forced command, the home and shadow stand-ins.
    fn prepare(&self) {
        fs::create_dir(self.path("consoles")).unwrap();
        for key in ["client_key", "stranger_key"] {
            run(Command::new("ssh-keygen")
                .args(["-q", "-t", "ed25519", "-N", "", "-C", key, "-f"])
                .arg(self.path(key)));
        }
        let script = format!(
            "#!/bin/sh\n\
             # Plays obmc-console-client: a banner, then the host's bytes raw\n\
             # (an echo, kept for the tests to read).\n\
             echo $$ > '{consoles}/'$$\n\
             printf 'Press ~. to exit console\\r\\n'\n\
             exec tee -a '{typed}'\n",
            consoles = self.path("consoles").display(),
            typed = self.path("typed").display()
        );
        let script_path = self.path("console.sh");
        fs::write(&script_path, script).unwrap();
        fs::set_permissions(&script_path, fs::Permissions::from_mode(0o755)).unwrap();

        let authorized = fs::read_to_string(self.path("client_key.pub")).unwrap();
        fs::write(self.path("authorized_keys"), &authorized).unwrap();
        // dropbear's view of the home directory.
        let home = self.path("home");
        fs::create_dir_all(home.join(".ssh")).unwrap();
        fs::set_permissions(&home, fs::Permissions::from_mode(0o700)).unwrap();
        fs::set_permissions(home.join(".ssh"), fs::Permissions::from_mode(0o700)).unwrap();
        fs::write(home.join(".ssh/authorized_keys"), &authorized).unwrap();
        fs::set_permissions(
            home.join(".ssh/authorized_keys"),
            fs::Permissions::from_mode(0o600),
        )
        .unwrap();
        // A shadow file that gives the user PASSWORD (only the server sees it).
        let today = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs()
            / 86_400;
        fs::write(
            self.path("shadow"),
            format!("{}:{PASSWORD_HASH}:{today}:0:99999:7:::\n", current_user()),
        )
        .unwrap();
        fs::set_permissions(self.path("shadow"), fs::Permissions::from_mode(0o640)).unwrap();
    }

    fn new_host_key(&mut self) {
        self.generation += 1;
        let key = self.path(&format!("host_key.{}", self.generation));
        // ssh-keygen writes OpenSSH's format; dropbear wants its own.
        run(Command::new("ssh-keygen")
            .args(["-q", "-t", "ed25519", "-N", "", "-C", "host", "-f"])
            .arg(&key));
        if self.kind == Kind::Dropbear {
            let dropbear_key = self.path(&format!("host_key.{}.dropbear", self.generation));
            run(Command::new("dropbearconvert")
                .args(["openssh", "dropbear"])
                .arg(&key)
                .arg(&dropbear_key));
        }
    }

    fn launch(&mut self) {
        let log = fs::File::create(self.path("server.log")).unwrap();
        let home = home_dir();
        let mut setup = String::from("set -e\n");
        if self.options.password {
            setup += &format!(
                "mount --bind '{}' /etc/shadow\n",
                self.path("shadow").display()
            );
        }
        let server = match self.kind {
            Kind::OpenSsh => {
                // Privilege separation directory sshd insists on.
                fs::create_dir_all("/run/sshd").unwrap();
                fs::write(self.path("sshd_config"), self.sshd_config()).unwrap();
                format!(
                    "exec {SSHD} -D -e -f '{}'\n",
                    self.path("sshd_config").display()
                )
            }
            Kind::Dropbear => {
                setup += &format!(
                    "mount --bind '{}' '{}'\n",
                    self.path("home").display(),
                    home.display()
                );
                format!(
                    "exec dropbear -F -E -m -p 127.0.0.1:{port} -r '{key}' -c '{command}'{no_password}\n",
                    port = self.port,
                    key = self
                        .path(&format!("host_key.{}.dropbear", self.generation))
                        .display(),
                    command = self.path("console.sh").display(),
                    no_password = if self.options.password { "" } else { " -s" },
                )
            }
        };
        fs::write(self.path("launch.sh"), setup + &server).unwrap();
        // unshare and sh exec into the server: the child's PID is the server.
        let child = Command::new("unshare")
            .args(["--mount", "--propagation", "private", "/bin/sh"])
            .arg(self.path("launch.sh"))
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .process_group(0)
            .spawn()
            .expect("starting unshare (util-linux)");
        self.child = Some(child);
        self.wait_ready();
    }

    fn sshd_config(&self) -> String {
        let password = self.options.password;
        let mut config = format!(
            "ListenAddress 127.0.0.1:{port}\n\
             HostKey {key}\n\
             PidFile none\n\
             AuthorizedKeysFile {authorized}\n\
             PermitRootLogin {root}\n\
             PubkeyAuthentication yes\n\
             PasswordAuthentication {pw}\n\
             KbdInteractiveAuthentication no\n\
             UsePAM no\n\
             StrictModes no\n\
             ForceCommand {command}\n\
             DisableForwarding yes\n\
             PrintMotd no\n\
             PrintLastLog no\n\
             UseDNS no\n\
             LogLevel VERBOSE\n",
            port = self.port,
            key = self
                .path(&format!("host_key.{}", self.generation))
                .display(),
            authorized = self.path("authorized_keys").display(),
            root = if password { "yes" } else { "prohibit-password" },
            pw = if password { "yes" } else { "no" },
            command = self.path("console.sh").display(),
        );
        // OpenSSH 9.8+ penalizes addresses whose sessions end oddly or fail
        // to log in; tests reconnect and fail on purpose from 127.0.0.1.
        if openssh_version() >= (9, 8) {
            config += "PerSourcePenalties no\n";
        }
        config
    }

    /// Waits for the server's SSH identification line on its port.
    fn wait_ready(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(status) = self.child.as_mut().unwrap().try_wait().unwrap() {
                panic!(
                    "{:?} server exited ({status}) before listening; log:\n{}",
                    self.kind,
                    self.log()
                );
            }
            if let Ok(mut stream) = TcpStream::connect(("127.0.0.1", self.port)) {
                stream
                    .set_read_timeout(Some(Duration::from_secs(2)))
                    .unwrap();
                let mut ident = [0u8; 8];
                if stream.read_exact(&mut ident).is_ok() && &ident == b"SSH-2.0-" {
                    return;
                }
            }
            assert!(
                Instant::now() < deadline,
                "{:?} server not answering on 127.0.0.1:{} within 10 s; log:\n{}",
                self.kind,
                self.port,
                self.log()
            );
            std::thread::sleep(Duration::from_millis(25));
        }
    }
}

impl Drop for SshServer {
    fn drop(&mut self) {
        self.stop();
    }
}

/// `ssh-keygen`, `dropbearkey`...: the output, or the test fails saying why.
fn run(command: &mut Command) -> String {
    let out = command.output().unwrap_or_else(|e| {
        panic!("running {command:?}: {e} (is the package installed? see scripts/test)")
    });
    assert!(
        out.status.success(),
        "{command:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// OpenSSH's version from `sshd -V` (it prints e.g. "OpenSSH_9.2p1, ...").
pub fn openssh_version() -> (u32, u32) {
    let out = Command::new(SSHD)
        .arg("-V")
        .output()
        .unwrap_or_else(|e| panic!("{SSHD}: {e}; install openssh-server (scripts/test)"));
    let text = String::from_utf8_lossy(&out.stderr);
    let version = text
        .split("OpenSSH_")
        .nth(1)
        .unwrap_or_else(|| panic!("sshd -V printed {text:?}"));
    let mut parts = version.split(|c: char| !c.is_ascii_digit());
    let major = parts.next().and_then(|p| p.parse().ok()).unwrap();
    let minor = parts.next().and_then(|p| p.parse().ok()).unwrap();
    (major, minor)
}

/// dropbear's version line ("Dropbear v2022.83").
pub fn dropbear_version() -> String {
    let out = Command::new("dropbear")
        .arg("-V")
        .output()
        .unwrap_or_else(|e| panic!("dropbear: {e}; install dropbear-bin (scripts/test)"));
    String::from_utf8_lossy(&out.stderr).trim().to_string()
}

fn require_root() {
    assert_eq!(
        unsafe { libc::geteuid() },
        0,
        "the SSH console tests need root (mount namespaces, sshd privilege separation); CI runs them as root"
    );
}

fn current_user() -> String {
    passwd_field(0)
}

fn home_dir() -> PathBuf {
    PathBuf::from(passwd_field(5))
}

/// A field of the current user's /etc/passwd line.
fn passwd_field(index: usize) -> String {
    let uid = unsafe { libc::geteuid() }.to_string();
    let passwd = fs::read_to_string("/etc/passwd").unwrap();
    passwd
        .lines()
        .map(|line| line.split(':').collect::<Vec<_>>())
        .find(|fields| fields.get(2) == Some(&uid.as_str()))
        .and_then(|fields| fields.get(index).map(|f| f.to_string()))
        .unwrap_or_else(|| panic!("uid {uid} has no /etc/passwd line"))
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Running, not a zombie waiting to be reaped.
fn alive(pid: i32) -> bool {
    match fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => stat
            .rfind(')')
            .and_then(|i| stat[i + 1..].split_whitespace().next())
            .is_some_and(|state| state != "Z" && state != "X"),
        Err(_) => false,
    }
}

fn kill(pid: i32) {
    unsafe {
        libc::kill(pid, libc::SIGKILL);
    }
}

/// Stops `pid` (so it forks no more), then kills it and every descendant:
/// sshd's sessions call setsid(), so a process group would miss them.
fn kill_tree(pid: i32) {
    unsafe {
        libc::kill(pid, libc::SIGSTOP);
    }
    let mut family = vec![pid];
    let mut index = 0;
    let parents = parent_map();
    while index < family.len() {
        let parent = family[index];
        family.extend(
            parents
                .iter()
                .filter(|(_, p)| *p == parent)
                .map(|(child, _)| *child),
        );
        index += 1;
    }
    for member in family.iter().rev() {
        kill(*member);
    }
}

/// (pid, parent pid) of every process.
fn parent_map() -> Vec<(i32, i32)> {
    let mut map = Vec::new();
    for entry in fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        let Ok(stat) = fs::read_to_string(entry.path().join("stat")) else {
            continue;
        };
        // "pid (comm) state ppid ...": comm may hold spaces and parentheses.
        let Some(after) = stat.rfind(')').map(|i| &stat[i + 1..]) else {
            continue;
        };
        if let Some(ppid) = after.split_whitespace().nth(1).and_then(|p| p.parse().ok()) {
            map.push((pid, ppid));
        }
    }
    map
}
