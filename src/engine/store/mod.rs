//! SQLite persistence for the engine: node provisioning state, reservations,
//! the last power/boot reading, the running deploy's agent record, and the
//! append-only event history (the audit log).

mod boots;
mod deploys;
mod holder;
mod open;
mod schema;

pub use boots::Appended;
pub use holder::{Holder, format_utc, format_utc_ms};
pub use schema::SCHEMA_VERSION;

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::lifecycle::State;
use rusqlite::{Connection, OptionalExtension, Row, ToSql, TransactionBehavior, params};
use serde::Serialize;

use schema::{
    EVENT_SELECT, NODE_SELECT, RESERVATION_SELECT, event_from_row, insert_event, node_from_row,
    reservation_from_row, user_version,
};

/// Several petitlab processes share one store; a writer waits this long for another.
const BUSY_TIMEOUT: Duration = Duration::from_secs(10);

/// Unix time in milliseconds (0 if the clock is before 1970).
pub fn now_ms() -> i64 {
    match SystemTime::now().duration_since(UNIX_EPOCH) {
        Ok(d) => i64::try_from(d.as_millis()).unwrap_or(i64::MAX),
        Err(_) => 0,
    }
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("state store {}: {source}", path.display())]
    Sqlite {
        path: PathBuf,
        source: rusqlite::Error,
    },
    /// SQLite reports a full disk as one of several I/O errors ("disk I/O
    /// error: Error code 4874"): named here for what it is.
    #[error(
        "state store {}: the disk is full ({free} bytes free there); free some space and retry",
        path.display()
    )]
    DiskFull {
        path: PathBuf,
        free: u64,
        sqlite: rusqlite::Error,
    },
    #[error("state store {}: its file system is mounted read-only", path.display())]
    ReadOnly {
        path: PathBuf,
        sqlite: rusqlite::Error,
    },
    #[error("state store {}: {source}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "state store {} has schema version {found}, newer than the {known} this petitlab \
         knows; refusing to touch it (upgrade petitlab)",
        path.display()
    )]
    TooNew {
        path: PathBuf,
        found: u32,
        known: u32,
    },
    #[error("node {node} is reserved by {holder} for {action} since {}", format_utc(*since))]
    Reserved {
        node: String,
        holder: Holder,
        action: String,
        since: i64,
    },
    #[error("node {node} is {found}, not {}", expected.join(" or "))]
    StateConflict {
        node: String,
        expected: Vec<String>,
        found: String,
    },
    #[error("unknown node {node}: not in the state store")]
    UnknownNode { node: String },
}

#[derive(Debug, Clone, Serialize, serde::Deserialize)]
pub struct Reservation {
    pub node: String,
    pub holder: Holder,
    pub action: String,
    pub since: i64,
}

#[derive(Debug, Clone, Serialize, serde::Deserialize)]
pub struct NodeRecord {
    pub name: String,
    /// Provisioning state name; the store treats it as opaque text.
    pub state: String,
    pub step: Option<String>,
    pub reason: Option<String>,
    /// ms; when state or step last changed.
    pub state_since: i64,
    pub power_on: Option<bool>,
    pub boot_device: Option<String>,
    pub reading_at: Option<i64>,
    pub reading_error: Option<String>,
    /// Who asked for an abort, if anyone.
    pub abort_requested: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Event {
    pub node: Option<String>,
    pub who: String,
    pub action: String,
    pub result: String,
    pub detail: String,
}

#[derive(Debug, Clone, Serialize, serde::Deserialize)]
pub struct EventRecord {
    pub id: i64,
    pub at: i64,
    pub node: Option<String>,
    pub who: String,
    pub action: String,
    pub result: String,
    pub detail: String,
}

/// The agent side of the deploy in progress on a node (at most one per node).
#[derive(Debug, Clone)]
pub struct NewDeploy {
    pub node: String,
    pub token_sha256: String,
    pub image_url: String,
    pub image_size: u64,
    pub image_sha256: String,
    pub image_name: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub enum AgentResult {
    Done { sha256: String },
    Failed { reason: String },
}

#[derive(Debug, Clone, Serialize)]
pub struct Deploy {
    pub node: String,
    pub token_sha256: String,
    pub image_url: String,
    pub image_size: u64,
    pub image_sha256: String,
    pub image_name: String,
    pub started_at: i64,
    /// First successful lookup.
    pub looked_up_at: Option<i64>,
    /// Last lookup/heartbeat/progress.
    pub agent_seen_at: Option<i64>,
    pub written: u64,
    pub total: u64,
    pub result: Option<AgentResult>,
    /// iSCSI deploys: the target the ramdisk exports, once it said.
    pub iscsi: Option<IscsiTarget>,
    /// iSCSI deploys: set when petitlab wrote the image and read it back.
    pub iscsi_written_sha256: Option<String>,
}

/// An iSCSI target a deploy ramdisk exports its disk as.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct IscsiTarget {
    pub target: String,
    /// `ip:port`.
    pub portal: String,
    pub lun: u64,
}

/// SQLite stores signed 64-bit integers; sizes beyond i64::MAX are clamped.
fn to_db<T: TryInto<i64>>(v: T) -> i64 {
    v.try_into().unwrap_or(i64::MAX)
}

fn from_db(v: i64) -> u64 {
    u64::try_from(v).unwrap_or(0)
}

type Res<T> = Result<T, StoreError>;
type Params<'a> = &'a [&'a dyn ToSql];
type FromRow<T> = fn(&Row<'_>) -> rusqlite::Result<T>;

/// Internal failure: rusqlite errors get the store path at the public boundary,
/// so internal code can use plain `?`.
#[derive(Debug, thiserror::Error)]
enum Fail {
    #[error(transparent)]
    Sql(#[from] rusqlite::Error),
    #[error(transparent)]
    Store(#[from] StoreError),
}

type Inner<T> = Result<T, Fail>;

impl Fail {
    fn at(self, path: &Path) -> StoreError {
        match self {
            Fail::Sql(source) => match open::file_system_trouble(path, source) {
                Ok(named) => named,
                Err(source) => StoreError::Sqlite {
                    path: path.to_path_buf(),
                    source,
                },
            },
            Fail::Store(e) => e,
        }
    }
}

/// The refusal naming who holds the node.
fn reserved(r: Reservation) -> StoreError {
    let (node, holder, action, since) = (r.node, r.holder, r.action, r.since);
    StoreError::Reserved {
        node,
        holder,
        action,
        since,
    }
}

fn unknown(node: &str) -> StoreError {
    StoreError::UnknownNode {
        node: node.to_string(),
    }
}

fn query_opt<T>(c: &Connection, sql: &str, p: Params, f: FromRow<T>) -> Inner<Option<T>> {
    Ok(c.prepare_cached(sql)?.query_row(p, f).optional()?)
}

fn query_all<T>(c: &Connection, sql: &str, p: Params, f: FromRow<T>) -> Inner<Vec<T>> {
    let mut stmt = c.prepare_cached(sql)?;
    let rows = stmt.query_map(p, f)?.collect::<rusqlite::Result<_>>()?;
    Ok(rows)
}

fn read_node(c: &Connection, name: &str) -> Inner<NodeRecord> {
    let sql = format!("{NODE_SELECT} WHERE name = ?1");
    Ok(query_opt(c, &sql, &[&name], node_from_row)?.ok_or_else(|| unknown(name))?)
}

fn read_reservation(c: &Connection, node: &str) -> Inner<Option<Reservation>> {
    let sql = format!("{RESERVATION_SELECT} WHERE node = ?1");
    query_opt(c, &sql, &[&node], reservation_from_row)
}

/// The persistent state of the engine. `Send`; share it as `Arc<Mutex<Store>>`.
#[derive(Debug)]
pub struct Store {
    conn: Connection,
    path: PathBuf,
}

impl Store {
    /// Runs `f` in one BEGIN IMMEDIATE transaction (the write lock is taken up
    /// front, so no other process interleaves a read-check-write); commits on Ok.
    fn write<T>(&mut self, f: impl FnOnce(&Connection) -> Inner<T>) -> Res<T> {
        let run = |conn: &mut Connection| {
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let value = f(&tx)?;
            tx.commit()?;
            Ok(value)
        };
        run(&mut self.conn).map_err(|e: Fail| e.at(&self.path))
    }

    fn read<T>(&self, f: impl FnOnce(&Connection) -> Inner<T>) -> Res<T> {
        f(&self.conn).map_err(|e| e.at(&self.path))
    }

    /// One statement in its own write transaction; returns the rows changed.
    fn exec(&mut self, sql: &str, p: Params) -> Res<usize> {
        self.write(|tx| Ok(tx.execute(sql, p)?))
    }

    /// One UPDATE of a node's row; UnknownNode when it changed nothing.
    fn exec_node(&mut self, node: &str, sql: &str, p: Params) -> Res<()> {
        match self.exec(sql, p)? {
            0 => Err(unknown(node)),
            _ => Ok(()),
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// `PRAGMA user_version`.
    pub fn schema_version(&self) -> Res<u32> {
        self.read(user_version)
    }

    /// Inserts nodes not yet present with `initial_state` and an "enroll" event
    /// each; returns the names inserted.
    pub fn ensure_nodes(&mut self, names: &[&str], initial_state: &str) -> Res<Vec<String>> {
        let who = Holder::current().to_string();
        self.write(|tx| {
            let mut inserted = Vec::new();
            for &name in names {
                let sql = "INSERT INTO nodes (name, state, state_since) VALUES (?1, ?2, ?3) \
                           ON CONFLICT (name) DO NOTHING";
                if tx.execute(sql, params![name, initial_state, now_ms()])? == 0 {
                    continue;
                }
                let event = Event {
                    node: Some(name.to_string()),
                    who: who.clone(),
                    action: "enroll".to_string(),
                    result: "ok".to_string(),
                    detail: format!("enrolled in state {initial_state}"),
                };
                insert_event(tx, &event)?;
                inserted.push(name.to_string());
            }
            Ok(inserted)
        })
    }

    pub fn node(&self, name: &str) -> Res<Option<NodeRecord>> {
        let sql = format!("{NODE_SELECT} WHERE name = ?1");
        self.read(|c| query_opt(c, &sql, &[&name], node_from_row))
    }

    /// All nodes, by name.
    pub fn nodes(&self) -> Res<Vec<NodeRecord>> {
        let sql = format!("{NODE_SELECT} ORDER BY name");
        self.read(|c| query_all(c, &sql, &[], node_from_row))
    }

    /// Compare-and-set in one transaction: the node must be in one of `from`;
    /// sets state, step, reason, state_since, and appends `event`. An abort
    /// request survives moves between the states an action runs in (e.g.
    /// wait-callback → deploying), so none is lost; any other state clears it.
    /// Returns the new record.
    pub fn transition(
        &mut self,
        node: &str,
        from: &[&str],
        to: &str,
        step: Option<&str>,
        reason: Option<&str>,
        event: &Event,
    ) -> Res<NodeRecord> {
        self.write(|tx| {
            let found = read_node(tx, node)?.state;
            if !from.contains(&found.as_str()) {
                let (node, expected) = (node.to_string(), from.iter().map(|s| s.to_string()));
                let expected = expected.collect();
                return Err(StoreError::StateConflict {
                    node,
                    expected,
                    found,
                }
                .into());
            }
            let busy = to.parse::<State>().is_ok_and(State::is_busy);
            let sql = "UPDATE nodes SET state = ?2, step = ?3, reason = ?4, state_since = ?5, \
                 abort_requested = CASE WHEN ?6 THEN abort_requested END WHERE name = ?1";
            tx.execute(sql, params![node, to, step, reason, now_ms(), busy])?;
            insert_event(tx, event)?;
            read_node(tx, node)
        })
    }

    /// Same state, new step (state_since = now).
    pub fn set_step(&mut self, node: &str, step: &str) -> Res<()> {
        let sql = "UPDATE nodes SET step = ?2, state_since = ?3 WHERE name = ?1";
        self.exec_node(node, sql, params![node, step, now_ms()])
    }

    /// Stores the reading exactly as given (reading_at = now).
    pub fn record_reading(
        &mut self,
        node: &str,
        power_on: Option<bool>,
        boot_device: Option<&str>,
        error: Option<&str>,
    ) -> Res<()> {
        let sql = "UPDATE nodes SET power_on = ?2, boot_device = ?3, reading_at = ?4, \
                   reading_error = ?5 WHERE name = ?1";
        self.exec_node(
            node,
            sql,
            params![node, power_on, boot_device, now_ms(), error],
        )
    }

    /// Succeeds when the node is free or already held by the same holder (pid+host),
    /// then with the action updated; otherwise `Reserved` naming the current holder.
    pub fn reserve(&mut self, node: &str, holder: &Holder, action: &str) -> Res<Reservation> {
        self.write(|tx| {
            read_node(tx, node)?;
            let since = match read_reservation(tx, node)? {
                Some(r) if r.holder.pid == holder.pid && r.holder.host == holder.host => r.since,
                Some(r) => return Err(reserved(r).into()),
                None => now_ms(),
            };
            let sql = "INSERT INTO reservations (node, pid, host, user, action, since) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6) \
                 ON CONFLICT (node) DO UPDATE SET user = excluded.user, action = excluded.action";
            let h = holder;
            tx.execute(sql, params![node, h.pid, h.host, h.user, action, since])?;
            let (node, holder, action) = (node.to_string(), h.clone(), action.to_string());
            Ok(Reservation {
                node,
                holder,
                action,
                since,
            })
        })
    }

    /// Releases only if held by `holder`; returns whether it was.
    pub fn release(&mut self, node: &str, holder: &Holder) -> Res<bool> {
        let sql = "DELETE FROM reservations WHERE node = ?1 AND pid = ?2 AND host = ?3";
        Ok(self.exec(sql, params![node, holder.pid, holder.host])? > 0)
    }

    pub fn reservation(&self, node: &str) -> Res<Option<Reservation>> {
        self.read(|c| read_reservation(c, node))
    }

    /// All reservations, by node.
    pub fn reservations(&self) -> Res<Vec<Reservation>> {
        let sql = format!("{RESERVATION_SELECT} ORDER BY node");
        self.read(|c| query_all(c, &sql, &[], reservation_from_row))
    }

    /// Removes whatever reservation the node has and appends `event`, in one
    /// transaction. The event is appended even when there was none.
    pub fn break_reservation(&mut self, node: &str, event: &Event) -> Res<Option<Reservation>> {
        self.write(|tx| {
            let old = read_reservation(tx, node)?;
            tx.execute("DELETE FROM reservations WHERE node = ?1", [node])?;
            insert_event(tx, event)?;
            Ok(old)
        })
    }

    /// Records who asked for an abort.
    pub fn request_abort(&mut self, node: &str, who: &str) -> Res<()> {
        let sql = "UPDATE nodes SET abort_requested = ?2 WHERE name = ?1";
        self.exec_node(node, sql, params![node, who])
    }

    /// Appends to the audit log; returns the event's id.
    pub fn append_event(&mut self, event: &Event) -> Res<i64> {
        self.write(|tx| insert_event(tx, event))
    }

    /// Events with id > after_id, ascending, at most `limit`; all nodes when `node` is None.
    pub fn events_after(
        &self,
        node: Option<&str>,
        after_id: i64,
        limit: usize,
    ) -> Res<Vec<EventRecord>> {
        self.events(node, "id > ?2 ORDER BY id", after_id, limit)
    }

    /// The newest `limit` events, returned in ascending id order.
    pub fn last_events(&self, node: Option<&str>, limit: usize) -> Res<Vec<EventRecord>> {
        let mut events = self.events(node, "id <= ?2 ORDER BY id DESC", i64::MAX, limit)?;
        events.reverse();
        Ok(events)
    }

    /// `cond` uses ?2 (an id bound) and is followed by LIMIT ?3.
    fn events(
        &self,
        node: Option<&str>,
        cond: &str,
        id: i64,
        limit: usize,
    ) -> Res<Vec<EventRecord>> {
        // Filter with `node = ?1` only when asked, so the (node, id) index is used.
        let filter = if node.is_some() {
            "node = ?1"
        } else {
            "?1 IS NULL"
        };
        let sql = format!("{EVENT_SELECT} WHERE {filter} AND {cond} LIMIT ?3");
        let p = params![node, id, to_db(limit)];
        self.read(|c| query_all(c, &sql, p, event_from_row))
    }
}

#[cfg(test)]
mod tests;
