//! The schema: migrations and `PRAGMA user_version` handling, the SELECT
//! column lists with the row decoders that depend on their column order, and
//! the event INSERT.

use std::path::Path;

use rusqlite::types::Type;
use rusqlite::{Connection, Row, params};

use super::{
    AgentResult, Deploy, Event, EventRecord, Holder, Inner, IscsiTarget, NodeRecord, Res,
    Reservation, Store, StoreError, from_db, now_ms,
};

/// Schema steps, in order; step `i` takes the store from version `i` to `i + 1`.
/// Never edit a released step: append a new one.
const MIGRATIONS: &[&str] = &[SCHEMA_V1, SCHEMA_V2, SCHEMA_V3];

/// The schema version this binary writes (`PRAGMA user_version`).
pub const SCHEMA_VERSION: u32 = MIGRATIONS.len() as u32;

pub(super) const SCHEMA_V1: &str = "
CREATE TABLE nodes (
    name TEXT PRIMARY KEY NOT NULL, state TEXT NOT NULL, step TEXT, reason TEXT,
    state_since INTEGER NOT NULL, power_on INTEGER CHECK (power_on IN (0, 1)),
    boot_device TEXT, reading_at INTEGER, reading_error TEXT, abort_requested TEXT
) STRICT;
CREATE TABLE reservations (
    node TEXT PRIMARY KEY NOT NULL REFERENCES nodes (name) ON DELETE CASCADE,
    pid INTEGER NOT NULL, host TEXT NOT NULL, user TEXT NOT NULL,
    action TEXT NOT NULL, since INTEGER NOT NULL
) STRICT;
CREATE TABLE deploys (
    node TEXT PRIMARY KEY NOT NULL REFERENCES nodes (name) ON DELETE CASCADE,
    token_sha256 TEXT NOT NULL, image_url TEXT NOT NULL, image_size INTEGER NOT NULL,
    image_sha256 TEXT NOT NULL, image_name TEXT NOT NULL, started_at INTEGER NOT NULL,
    looked_up_at INTEGER, agent_seen_at INTEGER,
    written INTEGER NOT NULL DEFAULT 0, total INTEGER NOT NULL DEFAULT 0,
    result_kind TEXT CHECK (result_kind IN ('done', 'failed')), result_detail TEXT,
    CHECK ((result_kind IS NULL) = (result_detail IS NULL))
) STRICT;
-- No foreign key to nodes: the audit log outlives nodes leaving the inventory.
-- AUTOINCREMENT: an id is a reader's cursor, so it is never handed out twice.
CREATE TABLE events (
    id INTEGER PRIMARY KEY AUTOINCREMENT, at INTEGER NOT NULL, node TEXT,
    who TEXT NOT NULL, action TEXT NOT NULL, result TEXT NOT NULL, detail TEXT NOT NULL
) STRICT;
CREATE INDEX events_by_node ON events (node, id);
-- Append-only, even for someone poking at the file with sqlite3. (A later
-- migration that must rebuild the table drops and recreates these.)
CREATE TRIGGER events_no_update BEFORE UPDATE ON events
BEGIN SELECT RAISE(ABORT, 'events are append-only'); END;
CREATE TRIGGER events_no_delete BEFORE DELETE ON events
BEGIN SELECT RAISE(ABORT, 'events are append-only'); END;
";

/// iSCSI deploys: the target the ramdisk exported, and the SHA-256 petitlab
/// read back after writing the image to it.
const SCHEMA_V2: &str = "
ALTER TABLE deploys ADD COLUMN iscsi_target TEXT;
ALTER TABLE deploys ADD COLUMN iscsi_portal TEXT;
ALTER TABLE deploys ADD COLUMN iscsi_lun INTEGER;
ALTER TABLE deploys ADD COLUMN iscsi_written_sha256 TEXT;
";

/// Boot timelines: the last boots of each node (`[timeline] keep_boots`),
/// each with its events in order (at most `timeline::EVENTS_PER_BOOT`).
/// No foreign key to nodes: a node's boots outlive its leaving lab.toml
/// until its next boots push them out.
const SCHEMA_V3: &str = "
CREATE TABLE boots (
    id INTEGER PRIMARY KEY AUTOINCREMENT, node TEXT NOT NULL, started_at INTEGER NOT NULL,
    origin TEXT NOT NULL, events INTEGER NOT NULL DEFAULT 0, dropped INTEGER NOT NULL DEFAULT 0
) STRICT;
CREATE INDEX boots_by_node ON boots (node, id);
CREATE TABLE boot_events (
    boot INTEGER NOT NULL REFERENCES boots (id) ON DELETE CASCADE,
    seq INTEGER NOT NULL, at INTEGER NOT NULL, what TEXT NOT NULL,
    PRIMARY KEY (boot, seq)
) STRICT;
";

pub(super) fn user_version(c: &Connection) -> Inner<u32> {
    let v: i64 = c.pragma_query_value(None, "user_version", |r| r.get(0))?;
    // A negative version was not written by us: treat it as unknown-and-newer.
    Ok(u32::try_from(v).unwrap_or(u32::MAX))
}

pub(super) fn too_new(path: &Path, found: u32) -> StoreError {
    let (path, known) = (path.to_path_buf(), SCHEMA_VERSION);
    StoreError::TooNew { path, found, known }
}

impl Store {
    /// Each step in its own transaction, together with its user_version bump.
    pub(super) fn migrate(&mut self) -> Res<()> {
        let path = self.path.clone();
        for (done, step) in MIGRATIONS.iter().enumerate() {
            let target = u32::try_from(done + 1).unwrap_or(u32::MAX);
            self.write(|tx| {
                // Re-read under the write lock: another process may have migrated meanwhile.
                let current = user_version(tx)?;
                if current > SCHEMA_VERSION {
                    return Err(too_new(&path, current).into());
                }
                if current < target {
                    tx.execute_batch(step)?;
                    tx.pragma_update(None, "user_version", target)?;
                }
                Ok(())
            })?;
        }
        Ok(())
    }
}

pub(super) const NODE_SELECT: &str = "SELECT name, state, step, reason, state_since, power_on, \
     boot_device, reading_at, reading_error, abort_requested FROM nodes";

/// Field `i` is column `i` of `NODE_SELECT`.
pub(super) fn node_from_row(r: &Row<'_>) -> rusqlite::Result<NodeRecord> {
    Ok(NodeRecord {
        name: r.get(0)?,
        state: r.get(1)?,
        step: r.get(2)?,
        reason: r.get(3)?,
        state_since: r.get(4)?,
        power_on: r.get(5)?,
        boot_device: r.get(6)?,
        reading_at: r.get(7)?,
        reading_error: r.get(8)?,
        abort_requested: r.get(9)?,
    })
}

pub(super) const RESERVATION_SELECT: &str =
    "SELECT node, pid, host, user, action, since FROM reservations";

/// Field `i` is column `i` of `RESERVATION_SELECT`.
pub(super) fn reservation_from_row(r: &Row<'_>) -> rusqlite::Result<Reservation> {
    Ok(Reservation {
        node: r.get(0)?,
        holder: Holder {
            pid: r.get(1)?,
            host: r.get(2)?,
            user: r.get(3)?,
        },
        action: r.get(4)?,
        since: r.get(5)?,
    })
}

pub(super) const DEPLOY_SELECT: &str = "SELECT node, token_sha256, image_url, image_size, \
     image_sha256, image_name, started_at, looked_up_at, agent_seen_at, written, total, \
     result_kind, result_detail, iscsi_target, iscsi_portal, iscsi_lun, iscsi_written_sha256 \
     FROM deploys";

/// Field `i` is column `i` of `DEPLOY_SELECT`.
pub(super) fn deploy_from_row(r: &Row<'_>) -> rusqlite::Result<Deploy> {
    Ok(Deploy {
        node: r.get(0)?,
        token_sha256: r.get(1)?,
        image_url: r.get(2)?,
        image_size: from_db(r.get(3)?),
        image_sha256: r.get(4)?,
        image_name: r.get(5)?,
        started_at: r.get(6)?,
        looked_up_at: r.get(7)?,
        agent_seen_at: r.get(8)?,
        written: from_db(r.get(9)?),
        total: from_db(r.get(10)?),
        result: agent_result(r, 11)?,
        iscsi: iscsi_target(r, 13)?,
        iscsi_written_sha256: r.get(16)?,
    })
}

/// Columns `i` (target), `i + 1` (portal) and `i + 2` (LUN) of a deploy row.
fn iscsi_target(r: &Row<'_>, i: usize) -> rusqlite::Result<Option<IscsiTarget>> {
    let (target, portal, lun): (Option<String>, Option<String>, Option<i64>) =
        (r.get(i)?, r.get(i + 1)?, r.get(i + 2)?);
    Ok(match (target, portal, lun) {
        (Some(target), Some(portal), Some(lun)) => Some(IscsiTarget {
            target,
            portal,
            lun: from_db(lun),
        }),
        _ => None,
    })
}

/// Columns `i` (kind) and `i + 1` (detail) of a deploy row.
fn agent_result(r: &Row<'_>, i: usize) -> rusqlite::Result<Option<AgentResult>> {
    let kind: Option<String> = r.get(i)?;
    Ok(match (kind.as_deref(), r.get(i + 1)?) {
        (None, _) => None,
        (Some("done"), Some(sha256)) => Some(AgentResult::Done { sha256 }),
        (Some("failed"), Some(reason)) => Some(AgentResult::Failed { reason }),
        (Some(other), _) => {
            let msg = format!("bad agent result {other:?}").into();
            return Err(rusqlite::Error::FromSqlConversionFailure(
                i,
                Type::Text,
                msg,
            ));
        }
    })
}

pub(super) const EVENT_SELECT: &str =
    "SELECT id, at, node, who, action, result, detail FROM events";

/// Field `i` is column `i` of `EVENT_SELECT`.
pub(super) fn event_from_row(r: &Row<'_>) -> rusqlite::Result<EventRecord> {
    Ok(EventRecord {
        id: r.get(0)?,
        at: r.get(1)?,
        node: r.get(2)?,
        who: r.get(3)?,
        action: r.get(4)?,
        result: r.get(5)?,
        detail: r.get(6)?,
    })
}

pub(super) fn insert_event(c: &Connection, e: &Event) -> Inner<i64> {
    let sql = "INSERT INTO events (at, node, who, action, result, detail) \
               VALUES (?1, ?2, ?3, ?4, ?5, ?6)";
    let p = params![now_ms(), e.node, e.who, e.action, e.result, e.detail];
    c.prepare_cached(sql)?.execute(p)?;
    Ok(c.last_insert_rowid())
}
