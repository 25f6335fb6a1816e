//! The guest's serial port, relayed between QEMU and ipmi_sim's SOL, with a
//! copy of every byte the guest printed.
//!
//! QEMU serves its serial port on a unix socket (`server=on,wait=off`: a
//! missing reader never stalls the guest) that exists only while that QEMU
//! runs; ipmi_sim connects out to a TCP "serial port" at start-up and keeps
//! it across power cycles. The relay listens for ipmi_sim inside the rig's
//! namespace (its listener is created by a thread that entered it), and
//! connects to QEMU's socket again whenever a new QEMU comes up, so SOL
//! survives power cycles as on a real machine. Guest → BMC bytes go through
//! a queue drained by a thread of its own, so a BMC that stops reading (ipmi_sim
//! blocked in its chassis hook) never stops the relay from reading the
//! guest; what does not fit in the queue is dropped towards the BMC, and
//! counted, but always kept in the copy.

use std::io::{ErrorKind, Read, Write};
use std::net::{Ipv4Addr, TcpListener, TcpStream};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, TrySendError, sync_channel};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::netns::Netns;

/// The copy keeps at most this much; the guests here print far less, and a
/// guest that printed more would be a runaway worth failing on.
pub const GUEST_LOG_CAP: usize = 64 << 20;
/// How often the relay tries QEMU's socket while no QEMU runs: the guest's
/// first lines are lost until it connects.
const CONNECT_EVERY: Duration = Duration::from_millis(10);
/// How often blocked reads wake up to see whether the relay is stopping.
const POLL: Duration = Duration::from_millis(100);

#[derive(Default)]
pub struct GuestLog {
    pub bytes: Vec<u8>,
    /// Bytes beyond [`GUEST_LOG_CAP`], not kept.
    pub dropped: u64,
    /// Where in `bytes` each QEMU's output began, and when the relay
    /// connected to that QEMU.
    pub boots: Vec<(usize, Instant)>,
}

struct Shared {
    log: Mutex<GuestLog>,
    grew: Condvar,
    /// The current QEMU connection, for BMC → guest bytes.
    qemu: Mutex<Option<UnixStream>>,
    /// The current ipmi_sim connection, for guest → BMC bytes.
    sol: Mutex<Option<TcpStream>>,
    sol_connections: AtomicU64,
    to_bmc_dropped: AtomicU64,
    stop: AtomicBool,
}

pub struct Relay {
    shared: Arc<Shared>,
    threads: Vec<JoinHandle<()>>,
    port: u16,
}

impl Relay {
    /// Listens on 127.0.0.1:`port` inside `ns` for ipmi_sim and follows
    /// QEMU's serial socket at `serial`.
    pub fn start(ns: &Netns, port: u16, serial: &Path) -> Relay {
        let listener = ns.within(|| TcpListener::bind((Ipv4Addr::LOCALHOST, port)));
        let listener = listener.unwrap_or_else(|e| {
            panic!("serial relay: bind 127.0.0.1:{port} in {}: {e}", ns.name())
        });
        listener.set_nonblocking(true).unwrap();
        let shared = Arc::new(Shared {
            log: Mutex::new(GuestLog::default()),
            grew: Condvar::new(),
            qemu: Mutex::new(None),
            sol: Mutex::new(None),
            sol_connections: AtomicU64::new(0),
            to_bmc_dropped: AtomicU64::new(0),
            stop: AtomicBool::new(false),
        });
        // Counted in reads, and QEMU's serial socket gives a few bytes a
        // read: 1024 held only ~5 KB, which a kernel's first burst filled
        // while ipmi_sim sat in its chassis hook on a loaded CI machine
        // (4665 bytes dropped, a test failed). The guest log cap bounds it.
        let (to_bmc, queue) = sync_channel::<Vec<u8>>(1 << 16);
        let mut threads = Vec::new();
        let s = shared.clone();
        threads.push(spawn("relay-sol-accept", move || accept_sol(&s, listener)));
        let s = shared.clone();
        threads.push(spawn("relay-to-bmc", move || write_to_bmc(&s, queue)));
        let s = shared.clone();
        let serial = serial.to_path_buf();
        threads.push(spawn("relay-qemu", move || {
            follow_qemu(&s, &serial, to_bmc)
        }));
        Relay {
            shared,
            threads,
            port,
        }
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// How many times ipmi_sim connected its SOL serial port.
    pub fn sol_connections(&self) -> u64 {
        self.shared.sol_connections.load(Ordering::SeqCst)
    }

    /// Guest bytes that could not be handed to ipmi_sim (it did not read).
    pub fn to_bmc_dropped(&self) -> u64 {
        self.shared.to_bmc_dropped.load(Ordering::SeqCst)
    }

    pub fn with_log<T>(&self, f: impl FnOnce(&GuestLog) -> T) -> T {
        f(&self.shared.log.lock().unwrap_or_else(|e| e.into_inner()))
    }

    /// Blocks until `done(log)` gives Some or `deadline` passes (None).
    pub fn wait<T>(
        &self,
        deadline: Instant,
        mut done: impl FnMut(&GuestLog) -> Option<T>,
    ) -> Option<T> {
        let mut log = self.shared.log.lock().unwrap_or_else(|e| e.into_inner());
        loop {
            if let Some(v) = done(&log) {
                return Some(v);
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return None;
            }
            log = self
                .shared
                .grew
                .wait_timeout(log, left)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
    }

    pub fn stop(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.stop();
    }
}

fn spawn(name: &str, f: impl FnOnce() + Send + 'static) -> JoinHandle<()> {
    std::thread::Builder::new()
        .name(name.to_string())
        .spawn(f)
        .expect("spawn relay thread")
}

fn stopping(s: &Shared) -> bool {
    s.stop.load(Ordering::SeqCst)
}

fn idle(e: &std::io::Error) -> bool {
    matches!(
        e.kind(),
        ErrorKind::WouldBlock | ErrorKind::TimedOut | ErrorKind::Interrupted
    )
}

/// Accepts ipmi_sim's connections (a new one replaces the old: ipmi_sim
/// reconnects after an error) and copies BMC → guest.
fn accept_sol(s: &Arc<Shared>, listener: TcpListener) {
    let mut readers: Vec<JoinHandle<()>> = Vec::new();
    while !stopping(s) {
        match listener.accept() {
            Ok((stream, _)) => {
                stream.set_nonblocking(false).unwrap();
                let _ = stream.set_nodelay(true);
                stream.set_read_timeout(Some(POLL)).unwrap();
                // A BMC that does not read for this long loses the bytes.
                stream
                    .set_write_timeout(Some(Duration::from_secs(2)))
                    .unwrap();
                let writer = stream.try_clone().unwrap();
                *s.sol.lock().unwrap() = Some(writer);
                s.sol_connections.fetch_add(1, Ordering::SeqCst);
                let s2 = s.clone();
                readers.push(spawn("relay-from-bmc", move || from_bmc(&s2, stream)));
            }
            Err(e) if idle(&e) => std::thread::sleep(Duration::from_millis(20)),
            Err(_) => std::thread::sleep(Duration::from_millis(100)),
        }
    }
    for r in readers {
        let _ = r.join();
    }
}

fn from_bmc(s: &Shared, mut stream: TcpStream) {
    let mut buf = [0u8; 4096];
    while !stopping(s) {
        match stream.read(&mut buf) {
            Ok(0) => return,
            Ok(n) => {
                // No QEMU (powered off): the bytes go nowhere, as on a
                // machine whose host is off.
                let mut qemu = s.qemu.lock().unwrap();
                if let Some(q) = qemu.as_mut()
                    && q.write_all(&buf[..n]).is_err()
                {
                    *qemu = None;
                }
            }
            Err(e) if idle(&e) => {}
            Err(_) => return,
        }
    }
}

fn write_to_bmc(s: &Shared, queue: Receiver<Vec<u8>>) {
    while !stopping(s) {
        let chunk = match queue.recv_timeout(POLL) {
            Ok(c) => c,
            Err(std::sync::mpsc::RecvTimeoutError::Timeout) => continue,
            Err(_) => return,
        };
        let mut sol = s.sol.lock().unwrap();
        if let Some(stream) = sol.as_mut()
            && stream.write_all(&chunk).is_err()
        {
            s.to_bmc_dropped
                .fetch_add(chunk.len() as u64, Ordering::SeqCst);
            *sol = None;
        }
    }
}

/// Connects to each QEMU's serial socket in turn and copies guest → BMC,
/// keeping every byte in the log.
fn follow_qemu(s: &Shared, serial: &PathBuf, to_bmc: SyncSender<Vec<u8>>) {
    let mut buf = vec![0u8; 16384];
    while !stopping(s) {
        let Ok(mut stream) = UnixStream::connect(serial) else {
            std::thread::sleep(CONNECT_EVERY);
            continue;
        };
        stream.set_read_timeout(Some(POLL)).unwrap();
        // A guest that stops reading its serial port loses what is typed.
        stream
            .set_write_timeout(Some(Duration::from_secs(2)))
            .unwrap();
        *s.qemu.lock().unwrap() = Some(stream.try_clone().unwrap());
        let connected = Instant::now();
        // A boot is recorded with its first bytes: the relay can also reach
        // a QEMU that is exiting (SIGTERM received, socket not yet closed),
        // which closes without a word.
        let mut first = true;
        while !stopping(s) {
            match stream.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => {
                    let data = &buf[..n];
                    {
                        let mut log = s.log.lock().unwrap();
                        if std::mem::take(&mut first) {
                            let at = log.bytes.len();
                            log.boots.push((at, connected));
                        }
                        let room = GUEST_LOG_CAP.saturating_sub(log.bytes.len());
                        let keep = room.min(n);
                        log.bytes.extend_from_slice(&data[..keep]);
                        log.dropped += (n - keep) as u64;
                    }
                    s.grew.notify_all();
                    match to_bmc.try_send(data.to_vec()) {
                        Ok(()) => {}
                        Err(TrySendError::Full(c)) | Err(TrySendError::Disconnected(c)) => {
                            s.to_bmc_dropped.fetch_add(c.len() as u64, Ordering::SeqCst);
                        }
                    }
                }
                Err(e) if idle(&e) => {}
                Err(_) => break,
            }
        }
        // This QEMU is gone (or stopping); BMC → guest bytes go nowhere
        // until the next one.
        *s.qemu.lock().unwrap() = None;
    }
}
