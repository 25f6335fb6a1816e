//! A real userspace iSCSI target for the virtual lab: Debian's `tgt`
//! (tgtd + tgtadm), one daemon per exported disk, on its own loopback
//! portal and control socket. Killed (SIGKILL: tgtd ignores SIGTERM) when
//! dropped. tgtd needs root.

use std::net::{Ipv4Addr, SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use tokio::process::{Child, Command};

/// tgtd refuses control ids from 32768 on.
const CONTROL_IDS: u16 = 32768;
const START_TRIES: usize = 5;
const READY_WITHIN: Duration = Duration::from_secs(10);

pub struct Tgtd {
    child: Child,
    control: u16,
    port: u16,
    log: PathBuf,
}

fn free_port() -> std::io::Result<u16> {
    Ok(TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?
        .local_addr()?
        .port())
}

fn control_files(control: u16) -> [PathBuf; 2] {
    let base = format!("/var/run/tgtd/socket.{control}");
    [PathBuf::from(&base), PathBuf::from(format!("{base}.lock"))]
}

fn remove_control_files(control: u16) {
    for file in control_files(control) {
        let _ = std::fs::remove_file(file);
    }
}

impl Tgtd {
    /// Starts tgtd on a free loopback port, logging to `log`; waits until
    /// it answers on its control socket and its portal. Err says why, with
    /// tgtd's own words.
    pub async fn start(log: &Path) -> Result<Tgtd, String> {
        let mut failures = Vec::new();
        // A port or control id taken between our probe and tgtd's bind
        // makes tgtd exit: try a few.
        for _ in 0..START_TRIES {
            let port = free_port().map_err(|e| format!("no free loopback port: {e}"))?;
            let control = port % CONTROL_IDS;
            remove_control_files(control);
            let out = std::fs::File::create(log)
                .map_err(|e| format!("cannot create {}: {e}", log.display()))?;
            let err = out.try_clone().map_err(|e| e.to_string())?;
            let child = Command::new("tgtd")
                .args(["-f", "--iscsi", &format!("portal=127.0.0.1:{port}")])
                .args(["-C", &control.to_string()])
                .stdin(Stdio::null())
                .stdout(out)
                .stderr(err)
                .kill_on_drop(true)
                .spawn()
                .map_err(|e| format!("cannot run tgtd: {e} (apt-get install tgt)"))?;
            let mut tgtd = Tgtd {
                child,
                control,
                port,
                log: log.to_path_buf(),
            };
            match tgtd.wait_ready().await {
                Ok(()) => return Ok(tgtd),
                Err(why) => {
                    let said = std::fs::read_to_string(log).unwrap_or_default();
                    failures.push(format!("{why}; tgtd said: {}", said.trim()));
                }
            }
        }
        Err(format!(
            "tgtd did not start (it needs root): {}",
            failures.join(" | ")
        ))
    }

    async fn wait_ready(&mut self) -> Result<(), String> {
        let deadline = Instant::now() + READY_WITHIN;
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Err(format!("tgtd exited at start with {status}"));
            }
            let shows = self.adm(&["--op", "show", "--mode", "target"]).await;
            if shows.is_ok() && tokio::net::TcpStream::connect(self.portal()).await.is_ok() {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(format!(
                    "no answer on control socket {} and portal {} within {:?}",
                    self.control,
                    self.portal(),
                    READY_WITHIN
                ));
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// `tgtadm -C <ours> --lld iscsi <args>`; Err has tgtadm's words.
    pub async fn adm(&self, args: &[&str]) -> Result<(), String> {
        let out = Command::new("tgtadm")
            .args(["-C", &self.control.to_string(), "--lld", "iscsi"])
            .args(args)
            .stdin(Stdio::null())
            .output()
            .await
            .map_err(|e| format!("cannot run tgtadm: {e} (apt-get install tgt)"))?;
        if out.status.success() {
            return Ok(());
        }
        Err(format!(
            "tgtadm {}: {}{}",
            args.join(" "),
            String::from_utf8_lossy(&out.stdout).trim(),
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }

    /// Target `tid` named `iqn` with LUN `lun` backed by the file `backing`,
    /// open to every initiator.
    pub async fn export(
        &self,
        tid: u32,
        iqn: &str,
        lun: u64,
        backing: &Path,
    ) -> Result<(), String> {
        let (tid, lun) = (tid.to_string(), lun.to_string());
        let backing = backing.to_string_lossy();
        let target = ["--mode", "target", "--tid", &tid];
        self.adm(&[&["--op", "new"][..], &target, &["-T", iqn]].concat())
            .await?;
        let unit = ["--mode", "logicalunit", "--tid", &tid, "--lun", &lun];
        self.adm(&[&["--op", "new"][..], &unit, &["-b", &backing]].concat())
            .await?;
        self.adm(&[&["--op", "bind"][..], &target, &["-I", "ALL"]].concat())
            .await
    }

    /// Removes target `tid`, dropping any session it has.
    pub async fn delete(&self, tid: u32) -> Result<(), String> {
        let tid = tid.to_string();
        self.adm(&[
            "--op", "delete", "--force", "--mode", "target", "--tid", &tid,
        ])
        .await
    }

    pub fn portal(&self) -> SocketAddr {
        SocketAddr::from((Ipv4Addr::LOCALHOST, self.port))
    }

    pub fn log(&self) -> &Path {
        &self.log
    }

    /// The control id (`tgtadm -C`).
    pub fn control(&self) -> u16 {
        self.control
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.id()
    }

    /// SIGKILL, as a crashed target or a node losing power.
    pub async fn kill(&mut self) {
        let _ = self.child.kill().await;
        remove_control_files(self.control);
    }
}

impl Drop for Tgtd {
    fn drop(&mut self) {
        let _ = self.child.start_kill();
        remove_control_files(self.control);
    }
}
