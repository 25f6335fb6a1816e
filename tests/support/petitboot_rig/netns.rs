//! A network namespace of the rig's own: created with `ip netns add`, entered
//! by child processes through `ip netns exec` and by threads of the test
//! process through setns(2) (a socket belongs to the namespace of the thread
//! that creates it, and stays there whichever thread uses it later).

use std::fs;
use std::os::fd::AsRawFd;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

/// Names of rig namespaces: `plab-pb-<pid of the test process>-<n>`.
pub const PREFIX: &str = "plab-pb-";

pub struct Netns {
    name: String,
}

fn run(cmd: &mut Command) -> Output {
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e} (iproute2 must be installed)"));
    assert!(
        out.status.success(),
        "{cmd:?} failed ({}): {}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn exists(name: &str) -> bool {
    Path::new("/run/netns").join(name).exists()
}

/// Ends what still runs inside namespace `name` and deletes it. Only for
/// rig namespaces (this process's, or a killed earlier run's): everything in
/// them was started by a rig.
fn remove(name: &str) {
    if !exists(name) {
        return;
    }
    let pids = Command::new("ip")
        .args(["netns", "pids", name])
        .stdin(Stdio::null())
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_default();
    let pids: Vec<i32> = pids
        .split_whitespace()
        .filter_map(|p| p.parse().ok())
        .collect();
    for &pid in &pids {
        // SAFETY: kill(2) with a pid read from the namespace just now.
        unsafe { libc::kill(pid, libc::SIGKILL) };
    }
    // Not our children (a QEMU the chassis hook started, say): wait for them
    // to vanish rather than reap them. A zombie no longer holds the tap or
    // the namespace, so it counts as gone.
    let deadline = Instant::now() + Duration::from_secs(5);
    while pids.iter().any(|p| running(*p)) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = Command::new("ip")
        .args(["netns", "del", name])
        .stdin(Stdio::null())
        .status();
}

/// The process exists and is not a zombie.
pub fn running(pid: i32) -> bool {
    let Ok(stat) = fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return false;
    };
    let state = stat.rsplit_once(") ").map(|(_, rest)| rest.as_bytes()[0]);
    !matches!(state, None | Some(b'Z') | Some(b'X'))
}

/// Deletes the rig namespaces of test processes that no longer exist (a
/// killed run never dropped its rig), with whatever still runs in them.
pub fn sweep_stale() {
    let Ok(entries) = fs::read_dir("/run/netns") else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some(rest) = name.strip_prefix(PREFIX) else {
            continue;
        };
        let Some(pid) = rest.split('-').next().and_then(|p| p.parse::<i32>().ok()) else {
            continue;
        };
        if !Path::new(&format!("/proc/{pid}")).exists() {
            eprintln!(
                "petitboot rig: removing stale namespace {name} (its test process {pid} is gone)"
            );
            remove(&name);
        }
    }
}

impl Netns {
    /// Creates namespace `name` with `lo` up, after removing a stale one of
    /// the same name.
    pub fn create(name: &str) -> Netns {
        remove(name);
        let probe = Command::new("ip")
            .args(["netns", "add", name])
            .stdin(Stdio::null())
            .output()
            .expect("cannot run ip: iproute2 must be installed");
        assert!(
            probe.status.success(),
            "cannot create network namespace {name} (the real-petitboot rig needs root): {}",
            String::from_utf8_lossy(&probe.stderr)
        );
        let ns = Netns {
            name: name.to_string(),
        };
        ns.ip(&["link", "set", "lo", "up"]);
        ns
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// `ip -n NAME ARGS…`; panics with ip's words when it fails.
    pub fn ip(&self, args: &[&str]) -> Output {
        run(Command::new("ip").arg("-n").arg(&self.name).args(args))
    }

    /// A command that runs `program` inside the namespace. `ip netns exec`
    /// execs it, so the child's pid is the program's own.
    pub fn command(&self, program: impl AsRef<std::ffi::OsStr>) -> Command {
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", &self.name]).arg(program);
        cmd
    }

    /// Moves the calling thread into the namespace. Only for threads that
    /// the rig owns: the test's own thread must stay where it is.
    pub fn enter_this_thread(&self) {
        let path = Path::new("/run/netns").join(&self.name);
        let file = fs::File::open(&path).unwrap_or_else(|e| panic!("open {}: {e}", path.display()));
        // SAFETY: setns(2) on an open namespace file; affects this thread only.
        let rc = unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) };
        assert_eq!(
            rc,
            0,
            "setns into {}: {}",
            self.name,
            std::io::Error::last_os_error()
        );
    }

    /// Runs `f` on a short-lived thread inside the namespace, e.g. to create
    /// a socket there or read `/proc/thread-self/net/…`.
    pub fn within<T: Send>(&self, f: impl FnOnce() -> T + Send) -> T {
        std::thread::scope(|s| {
            s.spawn(|| {
                self.enter_this_thread();
                f()
            })
            .join()
            .unwrap_or_else(|e| std::panic::resume_unwind(e))
        })
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        remove(&self.name);
    }
}
