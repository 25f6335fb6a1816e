//! The nodes' boot timelines: each node keeps its last boots, each boot its
//! events in order, bounded on both counts.

use rusqlite::{Connection, OptionalExtension, params};

use super::{Inner, Res, Store};
use crate::timeline::{Boot, BootEvent, EVENTS_PER_BOOT, What};

/// What a batch of recorded events did to the nodes' boots.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Appended {
    /// Events kept.
    pub kept: usize,
    /// Events not kept: their boot was full.
    pub dropped: usize,
}

impl Store {
    /// A new boot of `node` (petitlab powered it on), its older boots beyond
    /// the last `keep` removed. Returns the boot's id.
    pub fn start_boot(&mut self, node: &str, at: i64, origin: &str, keep: u32) -> Res<i64> {
        self.write(|tx| new_boot(tx, node, at, origin, keep))
    }

    /// Appends events to their nodes' current boots, in order. An event for
    /// a node with no boot yet, or one that begins a boot nobody here
    /// started (the firmware starting again after the boot got further),
    /// opens a new boot.
    pub fn append_boot_events(
        &mut self,
        events: &[(String, BootEvent)],
        keep: u32,
    ) -> Res<Appended> {
        self.write(|tx| {
            let mut done = Appended::default();
            for (node, event) in events {
                let current = current_boot(tx, node)?;
                let boot = match current {
                    Some((id, _)) if !begins_new_boot(tx, id, &event.what)? => id,
                    _ => {
                        let origin = format!("first seen: {}", event.what.source());
                        new_boot(tx, node, event.at, &origin, keep)?
                    }
                };
                let count: i64 =
                    tx.query_row("SELECT events FROM boots WHERE id = ?1", [boot], |r| {
                        r.get(0)
                    })?;
                if count as usize >= EVENTS_PER_BOOT {
                    tx.execute(
                        "UPDATE boots SET dropped = dropped + 1 WHERE id = ?1",
                        [boot],
                    )?;
                    done.dropped += 1;
                    continue;
                }
                let what = serde_json::to_string(&event.what).unwrap_or_default();
                tx.execute(
                    "INSERT INTO boot_events (boot, seq, at, what) VALUES (?1, ?2, ?3, ?4)",
                    params![boot, count, event.at, what],
                )?;
                tx.execute("UPDATE boots SET events = events + 1 WHERE id = ?1", [boot])?;
                done.kept += 1;
            }
            Ok(done)
        })
    }

    /// The node's latest boot with its events.
    pub fn last_boot(&self, node: &str) -> Res<Option<Boot>> {
        self.read(|c| match current_boot(c, node)? {
            Some((id, _)) => read_boot(c, id).map(Some),
            None => Ok(None),
        })
    }

    /// The last `per_node` boots of every node, newest first within a node.
    pub fn recent_boots(&self, per_node: usize) -> Res<Vec<Boot>> {
        self.read(|c| {
            let mut stmt = c.prepare_cached(
                "SELECT id FROM boots b WHERE (SELECT COUNT(*) FROM boots n \
                 WHERE n.node = b.node AND n.id > b.id) < ?1 ORDER BY node, id DESC",
            )?;
            let ids: Vec<i64> = stmt
                .query_map([per_node as i64], |r| r.get(0))?
                .collect::<rusqlite::Result<_>>()?;
            ids.into_iter().map(|id| read_boot(c, id)).collect()
        })
    }
}

fn new_boot(tx: &Connection, node: &str, at: i64, origin: &str, keep: u32) -> Inner<i64> {
    tx.execute(
        "INSERT INTO boots (node, started_at, origin) VALUES (?1, ?2, ?3)",
        params![node, at, origin],
    )?;
    let id = tx.last_insert_rowid();
    // Keep the newest `keep` (this one among them); events go by cascade.
    tx.execute(
        "DELETE FROM boots WHERE node = ?1 AND id NOT IN \
         (SELECT id FROM boots WHERE node = ?1 ORDER BY id DESC LIMIT ?2)",
        params![node, keep.max(1)],
    )?;
    Ok(id)
}

fn current_boot(c: &Connection, node: &str) -> Inner<Option<(i64, i64)>> {
    let sql = "SELECT id, started_at FROM boots WHERE node = ?1 ORDER BY id DESC LIMIT 1";
    Ok(c.prepare_cached(sql)?
        .query_row([node], |r| Ok((r.get(0)?, r.get(1)?)))
        .optional()?)
}

/// The firmware starting on the console of a boot that had got past it:
/// someone powered the node on again without petitlab (a BMC's web page, a
/// button, a watchdog).
fn begins_new_boot(c: &Connection, boot: i64, what: &What) -> Inner<bool> {
    let What::Console {
        stage: crate::console::Stage::Firmware,
        ..
    } = what
    else {
        return Ok(false);
    };
    let progressed: i64 = c.query_row(
        "SELECT COUNT(*) FROM boot_events WHERE boot = ?1 AND \
         (json_extract(what, '$.kind') IN ('dhcp', 'fetch', 'agent') OR \
          (json_extract(what, '$.kind') = 'console' AND json_extract(what, '$.stage') <> 'firmware'))",
        [boot],
        |r| r.get(0),
    )?;
    Ok(progressed > 0)
}

fn read_boot(c: &Connection, id: i64) -> Inner<Boot> {
    let (node, started_at, origin, dropped): (String, i64, String, i64) = c.query_row(
        "SELECT node, started_at, origin, dropped FROM boots WHERE id = ?1",
        [id],
        |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
    )?;
    let mut stmt =
        c.prepare_cached("SELECT at, what FROM boot_events WHERE boot = ?1 ORDER BY at, seq")?;
    let rows = stmt.query_map([id], |r| Ok((r.get::<_, i64>(0)?, r.get::<_, String>(1)?)))?;
    let mut events = Vec::new();
    for row in rows {
        let (at, what) = row?;
        // A row a newer petitlab wrote in a shape this one does not know is skipped.
        if let Ok(what) = serde_json::from_str::<What>(&what) {
            events.push(BootEvent { at, what });
        }
    }
    Ok(Boot {
        id,
        node,
        started_at,
        origin,
        events,
        dropped: u32::try_from(dropped).unwrap_or(u32::MAX),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::console::Stage;
    use crate::timeline::{Fetch, FileKind};

    fn store() -> (tempfile::TempDir, Store) {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("s.db")).unwrap();
        (dir, store)
    }

    fn console(at: i64, stage: Stage) -> BootEvent {
        BootEvent {
            at,
            what: What::Console {
                stage,
                line: format!("{stage:?}"),
            },
        }
    }

    fn fetch(at: i64) -> BootEvent {
        BootEvent {
            at,
            what: What::Fetch(Fetch {
                proto: "http".into(),
                path: "u/config".into(),
                file: FileKind::Config,
                status: 200,
                bytes: 10,
                millis: 1,
            }),
        }
    }

    #[test]
    fn events_join_the_current_boot_in_order_and_old_boots_go() {
        let (_d, mut s) = store();
        for i in 0..5 {
            s.start_boot("n1", i * 1000, "power on by root", 3).unwrap();
        }
        let n = |e: BootEvent| ("n1".to_string(), e);
        s.append_boot_events(&[n(console(5_100, Stage::Firmware)), n(fetch(5_200))], 3)
            .unwrap();
        let boot = s.last_boot("n1").unwrap().unwrap();
        assert_eq!(boot.started_at, 4_000);
        assert_eq!(boot.events.len(), 2);
        assert_eq!(boot.events[1], fetch(5_200));
        assert_eq!(s.recent_boots(10).unwrap().len(), 3, "keep 3");
        let events: i64 = s
            .read(|c| Ok(c.query_row("SELECT COUNT(*) FROM boot_events", [], |r| r.get(0))?))
            .unwrap();
        assert_eq!(events, 2, "events of removed boots go with them");
    }

    #[test]
    fn firmware_after_progress_opens_a_boot_nobody_here_started() {
        let (_d, mut s) = store();
        let n = |e: BootEvent| ("n1".to_string(), e);
        // No boot yet: the first event opens one.
        s.append_boot_events(&[n(console(1_000, Stage::Firmware))], 20)
            .unwrap();
        s.append_boot_events(&[n(console(1_500, Stage::Firmware)), n(fetch(2_000))], 20)
            .unwrap();
        let first = s.last_boot("n1").unwrap().unwrap();
        assert_eq!(first.origin, "first seen: console");
        assert_eq!(
            first.events.len(),
            3,
            "firmware twice before progress: one boot"
        );
        s.append_boot_events(&[n(console(9_000, Stage::Firmware))], 20)
            .unwrap();
        let second = s.last_boot("n1").unwrap().unwrap();
        assert_ne!(second.id, first.id);
        assert_eq!(second.started_at, 9_000);
    }

    #[test]
    fn a_full_boot_counts_what_it_drops() {
        let (_d, mut s) = store();
        s.start_boot("n1", 0, "power on", 20).unwrap();
        let batch: Vec<_> = (0..EVENTS_PER_BOOT as i64 + 5)
            .map(|i| ("n1".to_string(), fetch(i)))
            .collect();
        let done = s.append_boot_events(&batch, 20).unwrap();
        assert_eq!(done.kept, EVENTS_PER_BOOT);
        assert_eq!(done.dropped, 5);
        let boot = s.last_boot("n1").unwrap().unwrap();
        assert_eq!(boot.events.len(), EVENTS_PER_BOOT);
        assert_eq!(boot.dropped, 5);
    }
}
