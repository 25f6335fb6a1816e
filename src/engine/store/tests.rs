use std::os::unix::fs::PermissionsExt;
use std::sync::{Arc, Barrier};

use super::*;

fn mem() -> Store {
    Store::open_in_memory().unwrap()
}

fn with_nodes(names: &[&str]) -> Store {
    let mut s = mem();
    s.ensure_nodes(names, "enroll").unwrap();
    s
}

fn ev(node: &str, action: &str, detail: &str) -> Event {
    Event {
        node: Some(node.to_string()),
        who: "tester".to_string(),
        action: action.to_string(),
        result: "ok".to_string(),
        detail: detail.to_string(),
    }
}

fn holder(pid: u32) -> Holder {
    Holder {
        pid,
        host: "lab-admin-box".to_string(),
        user: format!("user{pid}"),
    }
}

/// A transition with a throwaway event.
fn go(s: &mut Store, node: &str, from: &str, to: &str) -> Result<NodeRecord, StoreError> {
    s.transition(node, &[from], to, None, None, &ev(node, "t", to))
}

fn temp_path() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.db");
    (dir, path)
}

fn pragma<T: rusqlite::types::FromSql>(s: &Store, name: &str) -> T {
    s.conn.pragma_query_value(None, name, |r| r.get(0)).unwrap()
}

fn is_unknown<T>(r: Result<T, StoreError>, name: &str) -> bool {
    matches!(r, Err(StoreError::UnknownNode { node }) if node == name)
}

fn event_count(s: &Store) -> usize {
    s.events_after(None, 0, usize::MAX).unwrap().len()
}

fn new_deploy(node: &str, token: &str) -> NewDeploy {
    NewDeploy {
        node: node.to_string(),
        token_sha256: token.to_string(),
        image_url: "http://10.0.0.1/img".to_string(),
        image_size: 4096,
        image_sha256: "abc".to_string(),
        image_name: "ubuntu".to_string(),
    }
}

#[test]
fn store_moves_between_threads_behind_a_mutex() {
    let shared = Arc::new(std::sync::Mutex::new(mem()));
    let writer = Arc::clone(&shared);
    std::thread::spawn(move || writer.lock().unwrap().ensure_nodes(&["n1"], "available"))
        .join()
        .unwrap()
        .unwrap();
    assert_eq!(shared.lock().unwrap().nodes().unwrap()[0].name, "n1");
}

#[test]
fn migrations_from_empty_reach_current_version() {
    let s = mem();
    assert_eq!(s.schema_version().unwrap(), SCHEMA_VERSION);
    const { assert!(SCHEMA_VERSION >= 1) };
    let mut tables: Vec<String> = s
        .conn
        .prepare("SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .collect::<rusqlite::Result<_>>()
        .unwrap();
    tables.sort();
    assert_eq!(
        tables,
        [
            "boot_events",
            "boots",
            "deploys",
            "events",
            "nodes",
            "reservations"
        ]
    );
    assert_eq!(pragma::<i64>(&s, "foreign_keys"), 1);
}

#[test]
fn reopen_keeps_data_and_version() {
    let (_dir, path) = temp_path();
    {
        let mut s = Store::open(&path).unwrap();
        s.ensure_nodes(&["n1"], "available").unwrap();
        go(&mut s, "n1", "available", "active").unwrap();
        s.set_step("n1", "s").unwrap();
    }
    let s = Store::open(&path).unwrap();
    assert_eq!(s.path(), path.as_path());
    assert_eq!(s.schema_version().unwrap(), SCHEMA_VERSION);
    let n = s.node("n1").unwrap().unwrap();
    assert_eq!((n.state.as_str(), n.step.as_deref()), ("active", Some("s")));
    assert_eq!(event_count(&s), 2);
    assert_eq!(pragma::<String>(&s, "journal_mode"), "wal");
}

#[test]
fn too_new_store_is_refused_and_left_untouched() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.db");
    {
        let c = Connection::open(&path).unwrap();
        c.execute_batch("CREATE TABLE future (x); PRAGMA user_version = 99;")
            .unwrap();
    }
    let before = std::fs::read(&path).unwrap();
    let err = Store::open(&path).unwrap_err();
    let StoreError::TooNew {
        path: p,
        found,
        known,
    } = &err
    else {
        panic!("expected TooNew, got {err:?}");
    };
    assert_eq!((p, *found, *known), (&path, 99, SCHEMA_VERSION));
    assert!(err.to_string().contains(&path.display().to_string()));
    assert_eq!(std::fs::read(&path).unwrap(), before);
    assert!(!dir.path().join("state.db-wal").exists());
}

#[test]
fn not_a_database_error_names_the_path() {
    let (_dir, path) = temp_path();
    std::fs::write(&path, vec![b'x'; 4096]).unwrap();
    let err = Store::open(&path).unwrap_err();
    assert!(matches!(err, StoreError::Sqlite { .. }), "{err:?}");
    assert!(
        err.to_string()
            .starts_with(&format!("state store {}: ", path.display()))
    );
}

#[test]
fn open_creates_private_dir_and_file() {
    let dir = tempfile::tempdir().unwrap();
    let sub = dir.path().join("a").join("b");
    let path = sub.join("state.db");
    let mut s = Store::open(&path).unwrap();
    s.ensure_nodes(&["n1"], "available").unwrap();
    let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&sub), 0o700);
    assert_eq!(mode(&dir.path().join("a")), 0o700);
    assert_eq!(mode(&path), 0o600);
    // SQLite gives the WAL the database file's permissions.
    assert_eq!(mode(&sub.join("state.db-wal")), 0o600);
}

#[test]
fn ensure_nodes_inserts_only_new_ones_with_enroll_events() {
    let mut s = mem();
    assert_eq!(s.ensure_nodes(&["b", "a"], "enroll").unwrap(), ["b", "a"]);
    go(&mut s, "a", "enroll", "available").unwrap();
    assert_eq!(s.ensure_nodes(&["a", "c", "c"], "enroll").unwrap(), ["c"]);
    let nodes = s.nodes().unwrap();
    let names: Vec<_> = nodes.iter().map(|n| n.name.as_str()).collect();
    assert_eq!(names, ["a", "b", "c"]);
    assert_eq!(nodes[0].state, "available", "existing node left alone");
    let events = s.events_after(None, 0, 100).unwrap();
    let enrolls: Vec<_> = events.iter().filter(|e| e.action == "enroll").collect();
    let enrolled: Vec<_> = enrolls.iter().filter_map(|e| e.node.as_deref()).collect();
    assert_eq!(enrolled, ["b", "a", "c"]);
    let who = Holder::current().to_string();
    assert!(enrolls.iter().all(|e| e.who == who && e.result == "ok"));
}

#[test]
fn transition_cas_succeeds_and_appends_event() {
    let mut s = with_nodes(&["n1"]);
    let before = s.node("n1").unwrap().unwrap();
    let rec = s
        .transition(
            "n1",
            &["available", "enroll"],
            "manageable",
            Some("verify"),
            Some("why"),
            &ev("n1", "manage", "done"),
        )
        .unwrap();
    assert_eq!(rec.state, "manageable");
    assert_eq!(rec.step.as_deref(), Some("verify"));
    assert_eq!(rec.reason.as_deref(), Some("why"));
    assert!(rec.state_since >= before.state_since);
    let last = s.last_events(Some("n1"), 1).unwrap();
    assert_eq!(
        (last[0].action.as_str(), last[0].detail.as_str()),
        ("manage", "done")
    );
    assert_eq!(s.node("n1").unwrap().unwrap().state, "manageable");
}

#[test]
fn failed_cas_is_conflict_and_appends_nothing() {
    let mut s = with_nodes(&["n1"]);
    let events = event_count(&s);
    let event = ev("n1", "t", "");
    let err = s.transition("n1", &["active", "deploying"], "x", None, None, &event);
    let Err(err) = err else {
        panic!("CAS from the wrong state succeeded")
    };
    let StoreError::StateConflict {
        node,
        expected,
        found,
    } = &err
    else {
        panic!("expected StateConflict, got {err:?}");
    };
    assert_eq!((node.as_str(), found.as_str()), ("n1", "enroll"));
    assert_eq!(expected, &["active", "deploying"]);
    assert_eq!(
        err.to_string(),
        "node n1 is enroll, not active or deploying"
    );
    assert_eq!(event_count(&s), events);
    assert_eq!(s.node("n1").unwrap().unwrap().state, "enroll");
}

#[test]
fn transition_of_unknown_node_fails_and_appends_nothing() {
    let mut s = with_nodes(&["n1"]);
    let events = event_count(&s);
    assert!(is_unknown(go(&mut s, "ghost", "enroll", "x"), "ghost"));
    assert_eq!(event_count(&s), events);
}

#[test]
fn abort_request_survives_busy_states_and_is_cleared_after() {
    let mut s = with_nodes(&["n1"]);
    go(&mut s, "n1", "enroll", "wait-callback").unwrap();
    s.request_abort("n1", "alice").unwrap();
    let n = go(&mut s, "n1", "wait-callback", "deploying").unwrap();
    assert_eq!(
        n.abort_requested.as_deref(),
        Some("alice"),
        "not lost on the way"
    );
    let n = go(&mut s, "n1", "deploying", "deploy-failed").unwrap();
    assert_eq!(n.abort_requested, None);
    assert!(is_unknown(s.request_abort("ghost", "alice"), "ghost"));
}

#[test]
fn set_step_and_record_reading() {
    let mut s = with_nodes(&["n1"]);
    s.set_step("n1", "writing image").unwrap();
    s.record_reading("n1", Some(true), Some("pxe"), None)
        .unwrap();
    let n = s.node("n1").unwrap().unwrap();
    assert_eq!(n.state, "enroll");
    assert_eq!(n.step.as_deref(), Some("writing image"));
    assert_eq!(
        (n.power_on, n.boot_device.as_deref()),
        (Some(true), Some("pxe"))
    );
    assert!(n.reading_at.is_some());
    s.record_reading("n1", None, None, Some("timeout")).unwrap();
    let n = s.node("n1").unwrap().unwrap();
    assert_eq!(
        (n.power_on, n.reading_error.as_deref()),
        (None, Some("timeout"))
    );
    assert!(is_unknown(s.set_step("x", "y"), "x"));
    assert!(is_unknown(s.record_reading("x", None, None, None), "x"));
}

#[test]
fn reservation_is_exclusive_idempotent_and_released_only_by_holder() {
    let mut s = with_nodes(&["n1"]);
    let (a, b) = (holder(100), holder(200));
    let r = s.reserve("n1", &a, "deploy").unwrap();
    assert_eq!((r.holder.clone(), r.action.as_str()), (a.clone(), "deploy"));

    let err = s.reserve("n1", &b, "power").unwrap_err();
    let StoreError::Reserved {
        node,
        holder,
        action,
        since,
    } = &err
    else {
        panic!("expected Reserved, got {err:?}");
    };
    assert_eq!(
        (node.as_str(), holder, action.as_str()),
        ("n1", &a, "deploy")
    );
    assert_eq!(*since, r.since);
    let msg = err.to_string();
    assert!(msg.contains("reserved by user100@lab-admin-box pid 100 for deploy since "));
    assert!(msg.ends_with(&format_utc(r.since)), "{msg}");

    // Same pid+host again: the action moves on, since stays.
    let again = s.reserve("n1", &a, "cleanup").unwrap();
    assert_eq!((again.action.as_str(), again.since), ("cleanup", r.since));
    assert_eq!(s.reservation("n1").unwrap().unwrap().action, "cleanup");

    assert!(!s.release("n1", &b).unwrap());
    assert!(s.reservation("n1").unwrap().is_some());
    assert!(s.release("n1", &a).unwrap());
    assert!(s.reservation("n1").unwrap().is_none());
    assert!(!s.release("n1", &a).unwrap());
    assert!(s.reserve("n1", &b, "power").is_ok());
    assert!(is_unknown(s.reserve("ghost", &a, "x"), "ghost"));
}

#[test]
fn break_reservation_removes_it_and_logs_in_one_go() {
    let mut s = with_nodes(&["n1", "n2"]);
    s.reserve("n1", &holder(1), "deploy").unwrap();
    s.reserve("n2", &holder(2), "deploy").unwrap();
    let old = s
        .break_reservation("n1", &ev("n1", "break", "stale"))
        .unwrap();
    assert_eq!(old.unwrap().holder, holder(1));
    assert!(s.reservation("n1").unwrap().is_none());
    let left = s.reservations().unwrap();
    assert_eq!((left.len(), left[0].node.as_str()), (1, "n2"));
    assert_eq!(s.last_events(None, 1).unwrap()[0].action, "break");
    // Nothing to break: still logged, returns None.
    assert!(
        s.break_reservation("n1", &ev("n1", "break", "again"))
            .unwrap()
            .is_none()
    );
    assert_eq!(s.last_events(None, 1).unwrap()[0].detail, "again");
}

#[test]
fn holder_current_is_alive() {
    let me = Holder::current();
    assert_eq!(me.pid, std::process::id());
    assert!(!me.host.is_empty() && !me.user.is_empty());
    assert_eq!(me.is_alive(), Some(true));
    assert_eq!(
        me.to_string(),
        format!("{}@{} pid {}", me.user, me.host, me.pid)
    );
}

#[test]
fn holder_with_dead_pid_is_not_alive() {
    let mut child = std::process::Command::new("true").spawn().unwrap();
    let pid = child.id();
    assert!(child.wait().unwrap().success());
    let (mut dead, mut zero) = (Holder::current(), Holder::current());
    (dead.pid, zero.pid) = (pid, 0);
    assert_eq!(dead.is_alive(), Some(false));
    assert_eq!(
        zero.is_alive(),
        Some(false),
        "pid 0 is a process group, not a holder"
    );
}

#[test]
fn holder_on_another_host_is_unknown() {
    let other = Holder {
        host: format!("{}-elsewhere", Holder::current().host),
        ..Holder::current()
    };
    assert_eq!(other.is_alive(), None);
}

#[test]
fn deploy_record_lifecycle() {
    let mut s = with_nodes(&["n1"]);
    assert!(s.deploy("n1").unwrap().is_none());
    assert!(!s.agent_lookup("n1").unwrap());
    assert!(!s.agent_heartbeat("n1").unwrap());
    assert!(!s.agent_progress("n1", 1, 2).unwrap());

    s.begin_deploy(&new_deploy("n1", "t1")).unwrap();
    let d = s.deploy("n1").unwrap().unwrap();
    assert_eq!((d.token_sha256.as_str(), d.image_size), ("t1", 4096));
    assert_eq!(
        (d.written, d.total, d.looked_up_at, d.result),
        (0, 0, None, None)
    );

    assert!(s.agent_lookup("n1").unwrap());
    let first = s.deploy("n1").unwrap().unwrap().looked_up_at.unwrap();
    std::thread::sleep(Duration::from_millis(3));
    assert!(s.agent_lookup("n1").unwrap());
    let d = s.deploy("n1").unwrap().unwrap();
    assert_eq!(d.looked_up_at, Some(first), "first lookup is kept");
    assert!(d.agent_seen_at.unwrap() > first);

    assert!(s.agent_heartbeat("n1").unwrap());
    assert!(s.agent_progress("n1", 1024, 4096).unwrap());
    let d = s.deploy("n1").unwrap().unwrap();
    assert_eq!((d.written, d.total), (1024, 4096));

    let sha256 = "abc".to_string();
    let done = AgentResult::Done { sha256 };
    assert!(s.agent_result("n1", &done).unwrap());
    let reason = "late".to_string();
    let failed = AgentResult::Failed { reason };
    assert!(
        !s.agent_result("n1", &failed).unwrap(),
        "only the first counts"
    );
    assert_eq!(s.deploy("n1").unwrap().unwrap().result, Some(done));

    // A new deploy replaces the old record entirely.
    s.begin_deploy(&new_deploy("n1", "t2")).unwrap();
    let d = s.deploy("n1").unwrap().unwrap();
    assert_eq!(
        (d.token_sha256.as_str(), d.written, d.result),
        ("t2", 0, None)
    );
    assert!(s.agent_result("n1", &failed).unwrap());
    assert_eq!(s.deploy("n1").unwrap().unwrap().result, Some(failed));

    s.end_deploy("n1").unwrap();
    assert!(s.deploy("n1").unwrap().is_none());
    assert!(!s.agent_heartbeat("n1").unwrap());
    assert!(is_unknown(
        s.begin_deploy(&new_deploy("ghost", "t")),
        "ghost"
    ));
}

#[test]
fn u64_beyond_i64_is_clamped_not_panicking() {
    let mut s = with_nodes(&["n1"]);
    let mut big = new_deploy("n1", "t");
    big.image_size = u64::MAX;
    s.begin_deploy(&big).unwrap();
    assert!(s.agent_progress("n1", u64::MAX, u64::MAX).unwrap());
    let d = s.deploy("n1").unwrap().unwrap();
    let max = i64::MAX as u64;
    assert_eq!((d.image_size, d.written, d.total), (max, max, max));
}

#[test]
fn events_after_and_last_events_order_and_filter() {
    let mut s = mem();
    let mut ids = Vec::new();
    for i in 0..6 {
        let node = if i % 2 == 0 { "a" } else { "b" };
        ids.push(s.append_event(&ev(node, "x", &i.to_string())).unwrap());
    }
    let lab = Event {
        node: None,
        ..ev("", "lab", "6")
    };
    ids.push(s.append_event(&lab).unwrap());
    assert!(ids.windows(2).all(|w| w[0] < w[1]), "{ids:?}");

    // Details joined, so each expectation stays on one line.
    let after = |node, id, limit| {
        let events = s.events_after(node, id, limit).unwrap();
        events.into_iter().map(|e| e.detail).collect::<String>()
    };
    assert_eq!(after(None, 0, 100), "0123456");
    assert_eq!(after(None, ids[2], 2), "34");
    assert_eq!(after(Some("a"), 0, 100), "024");
    assert_eq!(after(Some("a"), ids[2], 100), "4");
    assert_eq!(after(None, ids[6], 100), "");
    let last = |node, limit| {
        let events = s.last_events(node, limit).unwrap();
        events.into_iter().map(|e| e.detail).collect::<String>()
    };
    assert_eq!(last(None, 3), "456");
    assert_eq!(last(Some("b"), 2), "35");
    assert_eq!(last(Some("b"), 0), "");
    let last = s.last_events(None, 1).unwrap().remove(0);
    assert_eq!(
        (last.node, last.id, last.who.as_str()),
        (None, ids[6], "tester")
    );
    assert!(last.at > 0);
}

#[test]
fn events_cannot_be_updated_or_deleted_through_sql() {
    let mut s = mem();
    s.append_event(&ev("a", "x", "original")).unwrap();
    let upd = s.conn.execute("UPDATE events SET detail = 'forged'", []);
    assert!(upd.unwrap_err().to_string().contains("append-only"));
    let del = s.conn.execute("DELETE FROM events", []);
    assert!(del.unwrap_err().to_string().contains("append-only"));
    assert_eq!(s.last_events(None, 5).unwrap()[0].detail, "original");
}

#[test]
fn format_utc_known_instants() {
    assert_eq!(format_utc(0), "1970-01-01 00:00:00 UTC");
    assert_eq!(format_utc(951_825_600_000), "2000-02-29 12:00:00 UTC");
    assert_eq!(format_utc(1_735_689_599_999), "2024-12-31 23:59:59 UTC");
    assert_eq!(format_utc(-1), "1969-12-31 23:59:59 UTC");
}

#[test]
fn format_utc_ms_known_instants() {
    assert_eq!(format_utc_ms(0), "1970-01-01T00:00:00.000Z");
    assert_eq!(format_utc_ms(951_825_600_007), "2000-02-29T12:00:00.007Z");
    assert_eq!(format_utc_ms(1_735_689_599_999), "2024-12-31T23:59:59.999Z");
    assert_eq!(format_utc_ms(-1), "1969-12-31T23:59:59.999Z");
}

#[test]
fn two_connections_see_each_others_writes() {
    let (_dir, path) = temp_path();
    let mut one = Store::open(&path).unwrap();
    let mut two = Store::open(&path).unwrap();
    one.ensure_nodes(&["n1"], "available").unwrap();
    assert_eq!(two.node("n1").unwrap().unwrap().state, "available");
    go(&mut two, "n1", "available", "active").unwrap();
    assert_eq!(one.node("n1").unwrap().unwrap().state, "active");
    assert_eq!(one.last_events(None, 1).unwrap()[0].detail, "active");
    // A CAS based on what the other connection changed fails as it should.
    let err = go(&mut one, "n1", "available", "x");
    assert!(
        matches!(err, Err(StoreError::StateConflict { .. })),
        "{err:?}"
    );
}

#[test]
fn reserve_race_between_two_connections_has_one_winner() {
    let (_dir, path) = temp_path();
    let names: Vec<String> = (0..25).map(|i| format!("n{i}")).collect();
    let refs: Vec<&str> = names.iter().map(String::as_str).collect();
    Store::open(&path)
        .unwrap()
        .ensure_nodes(&refs, "available")
        .unwrap();

    let barrier = Arc::new(Barrier::new(2));
    let racers: Vec<_> = [holder(1), holder(2)]
        .into_iter()
        .map(|h| {
            let (path, names, barrier) = (path.clone(), names.clone(), barrier.clone());
            std::thread::spawn(move || {
                let mut store = Store::open(&path).unwrap();
                let mut outcomes = Vec::new();
                for name in &names {
                    barrier.wait();
                    outcomes.push(match store.reserve(name, &h, "race") {
                        Ok(r) => Ok(r.holder),
                        Err(StoreError::Reserved { holder, .. }) => Err(holder),
                        Err(other) => panic!("unexpected {other}"),
                    });
                }
                outcomes
            })
        })
        .collect();
    let results: Vec<_> = racers.into_iter().map(|t| t.join().unwrap()).collect();
    let check = Store::open(&path).unwrap();
    for (i, name) in names.iter().enumerate() {
        let (a, b) = (&results[0][i], &results[1][i]);
        let winner = match (a, b) {
            (Ok(w), Err(seen)) | (Err(seen), Ok(w)) => {
                assert_eq!(w, seen, "the loser is told who won");
                w
            }
            _ => panic!("{name}: not exactly one winner: {a:?} {b:?}"),
        };
        assert_eq!(&check.reservation(name).unwrap().unwrap().holder, winner);
    }
}

#[test]
fn concurrent_first_opens_migrate_once() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("fresh").join("state.db");
    let barrier = Arc::new(Barrier::new(4));
    let openers: Vec<_> = (0..4)
        .map(|_| {
            let (path, barrier) = (path.clone(), barrier.clone());
            std::thread::spawn(move || {
                barrier.wait();
                Store::open(&path).map(|s| s.schema_version())
            })
        })
        .collect();
    for t in openers {
        assert_eq!(t.join().unwrap().unwrap().unwrap(), SCHEMA_VERSION);
    }
}

#[test]
fn a_version_1_store_with_a_deploy_migrates_and_keeps_it() {
    let (_dir, path) = temp_path();
    {
        let c = Connection::open(&path).unwrap();
        c.execute_batch(schema::SCHEMA_V1).unwrap();
        c.pragma_update(None, "user_version", 1).unwrap();
        c.execute_batch(
            "INSERT INTO nodes (name, state, state_since) VALUES ('n1', 'wait-callback', 0);
             INSERT INTO deploys (node, token_sha256, image_url, image_size, image_sha256,
                 image_name, started_at) VALUES ('n1', 't', 'http://h/i', 10, 'abc', 'os', 0);",
        )
        .unwrap();
    }
    let mut s = Store::open(&path).unwrap();
    assert_eq!(s.schema_version().unwrap(), SCHEMA_VERSION);
    let d = s.deploy("n1").unwrap().unwrap();
    assert_eq!((d.image_size, d.iscsi.clone()), (10, None));
    assert_eq!(d.iscsi_written_sha256, None);
    let target = IscsiTarget {
        target: "iqn.2026-11.org.example:n1".into(),
        portal: "127.0.0.1:3260".into(),
        lun: 1,
    };
    assert!(s.iscsi_target("n1", &target).unwrap());
    assert!(s.iscsi_written("n1", "abc").unwrap());
    let d = s.deploy("n1").unwrap().unwrap();
    assert_eq!(d.iscsi, Some(target.clone()));
    assert_eq!(d.iscsi_written_sha256.as_deref(), Some("abc"));
    assert!(
        d.agent_seen_at.is_some(),
        "a target report is a sign of life"
    );
    assert!(!s.iscsi_target("nobody", &target).unwrap());
}
