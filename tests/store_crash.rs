//! SIGKILL a process that is hammering the state store, five times at different
//! moments. Each time the store must open, pass `PRAGMA integrity_check`, be at
//! the current schema version, and show every multi-row write whole or not at
//! all: a transition without its event, or a broken reservation still present
//! next to its "break" event, fails the invariants below.
//!
//! The writer is this same test binary, re-executed with `STORE_CRASH_CHILD`
//! set to the store path.

use std::io::Read;
use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime};

use rusqlite::OptionalExtension;

use petitlab::engine::store::{Event, Holder, NewDeploy, SCHEMA_VERSION, Store};

const CHILD_ENV: &str = "STORE_CRASH_CHILD";
const TEST_NAME: &str = "sigkill_mid_write_leaves_store_consistent";
const ROUNDS: u64 = 5;
const TOTAL: u64 = 1 << 40;

fn event(node: &str, action: &str, detail: String) -> Event {
    Event {
        node: Some(node.to_string()),
        who: "crash-writer".to_string(),
        action: action.to_string(),
        result: "ok".to_string(),
        detail,
    }
}

/// Cycle k = 1, 2, … forever, each step its own transaction:
/// 1. n1 flips between "active" and "deploying" with step = k and a
///    "transition" event whose detail is the new state;
/// 2. n2 is reserved by this process for "cycle k";
/// 3. n1's deploy progress becomes written = k;
/// 4. n2's reservation is broken with a "break" event whose detail is k.
fn writer(path: &Path) -> ! {
    let mut store = Store::open(path).expect("writer opens the store");
    let me = Holder::current();
    loop {
        let n1 = store.node("n1").unwrap().unwrap();
        let k = n1.step.as_deref().map_or(0, |s| s.parse::<u64>().unwrap()) + 1;
        let to = if n1.state == "active" {
            "deploying"
        } else {
            "active"
        };
        let ev = event("n1", "transition", to.to_string());
        let step = k.to_string();
        store
            .transition("n1", &[&n1.state], to, Some(&step), None, &ev)
            .unwrap();
        store.reserve("n2", &me, &format!("cycle {k}")).unwrap();
        assert!(store.agent_progress("n1", k, TOTAL).unwrap());
        store
            .break_reservation("n2", &event("n2", "break", step))
            .unwrap();
    }
}

/// Kills and reaps the writer even when the parent panics, so no writer outlives the test.
struct Writer(Child);

impl Drop for Writer {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn spawn_writer(path: &Path) -> Writer {
    let child = Command::new(std::env::current_exe().unwrap())
        .args([TEST_NAME, "--exact", "--nocapture"])
        .env(CHILD_ENV, path)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    Writer(child)
}

fn output(child: &mut Child) -> String {
    let mut text = String::new();
    if let Some(mut out) = child.stdout.take() {
        let _ = out.read_to_string(&mut text);
    }
    if let Some(mut err) = child.stderr.take() {
        let _ = err.read_to_string(&mut text);
    }
    text
}

fn cycle(store: &Store) -> u64 {
    let n1 = store.node("n1").unwrap().unwrap();
    n1.step.map_or(0, |s| s.parse().unwrap())
}

fn count(conn: &rusqlite::Connection, node: &str, action: &str) -> u64 {
    let sql = "SELECT count(*) FROM events WHERE node = ?1 AND action = ?2";
    let n: i64 = conn.query_row(sql, [node, action], |r| r.get(0)).unwrap();
    u64::try_from(n).unwrap()
}

/// Checks the store after a kill; returns the cycle it reached.
fn check(path: &Path, dead_pid: u32) -> u64 {
    let mut store = Store::open(path).unwrap();
    assert_eq!(store.schema_version().unwrap(), SCHEMA_VERSION);
    let conn = rusqlite::Connection::open(path).unwrap();
    let integrity: String = conn
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .unwrap();
    assert_eq!(integrity, "ok");

    // Transition and its event are one transaction.
    let n1 = store.node("n1").unwrap().unwrap();
    let k = cycle(&store);
    assert_eq!(
        count(&conn, "n1", "transition"),
        k,
        "one event per transition"
    );
    let last = store.last_events(Some("n1"), 1).unwrap().remove(0);
    assert_eq!(
        (last.action.as_str(), last.detail.as_str()),
        ("transition", n1.state.as_str())
    );

    // Where in cycle k the writer died, from what the four steps left behind.
    // Steps commit in order, and a break removes the reservation and logs it
    // at once: any other combination means a write was torn or reordered.
    let sql = "SELECT detail FROM events WHERE node = 'n2' AND action = 'break' \
               ORDER BY id DESC LIMIT 1";
    let last_break: Option<String> = conn.query_row(sql, [], |r| r.get(0)).optional().unwrap();
    let last_break = last_break.map_or(0, |b| b.parse::<u64>().unwrap());
    let deploy = store.deploy("n1").unwrap().unwrap();
    let reservation = store.reservation("n2").unwrap();
    assert!(
        last_break <= k && deploy.written <= k,
        "{deploy:?} {last_break} at {k}"
    );
    let seen = (reservation.is_some(), deploy.written == k, last_break == k);
    let step = match seen {
        (false, false, false) => 1,
        (true, false, false) => 2,
        (true, true, false) => 3,
        (false, true, true) => 4,
        _ => panic!("cycle {k}: torn state {seen:?}: {reservation:?} {deploy:?}"),
    };
    assert_eq!(deploy.total, if deploy.written > 0 { TOTAL } else { 0 });
    if let Some(r) = reservation {
        assert_eq!(r.action, format!("cycle {k}"));
        assert_eq!((r.holder.pid, r.holder.is_alive()), (dead_pid, Some(false)));
        // What the engine does with a dead holder's reservation.
        let stale = event("n2", "break-stale", r.holder.to_string());
        assert!(store.break_reservation("n2", &stale).unwrap().is_some());
    }
    eprintln!("killed in cycle {k} after step {step}");
    k
}

#[test]
fn sigkill_mid_write_leaves_store_consistent() {
    if let Some(path) = std::env::var_os(CHILD_ENV) {
        writer(Path::new(&path));
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state").join("petitlab.db");
    {
        let mut store = Store::open(&path).unwrap();
        store.ensure_nodes(&["n1", "n2"], "available").unwrap();
        let deploy = NewDeploy {
            node: "n1".to_string(),
            token_sha256: "t".to_string(),
            image_url: "http://192.0.2.1/img".to_string(),
            image_size: TOTAL,
            image_sha256: "s".to_string(),
            image_name: "img".to_string(),
        };
        store.begin_deploy(&deploy).unwrap();
    }

    let mut reached = 0;
    for round in 0..ROUNDS {
        let mut writer = spawn_writer(&path);
        // Wait until this writer has made progress, then let it run a while
        // longer, a different while each round.
        {
            let store = Store::open(&path).unwrap();
            let deadline = Instant::now() + Duration::from_secs(30);
            while cycle(&store) <= reached {
                if let Some(status) = writer.0.try_wait().unwrap() {
                    panic!("writer exited with {status}: {}", output(&mut writer.0));
                }
                assert!(Instant::now() < deadline, "writer made no progress");
                std::thread::sleep(Duration::from_millis(5));
            }
        }
        let nanos = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap()
            .subsec_nanos();
        let run_ms = 200 + round * 45 + u64::from(nanos % 40);
        std::thread::sleep(Duration::from_millis(run_ms));

        let child = &mut writer.0;
        assert!(child.try_wait().unwrap().is_none(), "{}", output(child));
        let pid = child.id();
        let pid_t = libc::pid_t::try_from(pid).unwrap();
        // SAFETY: plain syscall on our own child, which is not yet reaped.
        assert_eq!(unsafe { libc::kill(pid_t, libc::SIGKILL) }, 0);
        let status = child.wait().unwrap();
        assert_eq!(status.signal(), Some(libc::SIGKILL), "{status}");

        let k = check(&path, pid);
        assert!(k > reached, "round {round}: cycle {k} after {reached}");
        reached = k;
    }
}
