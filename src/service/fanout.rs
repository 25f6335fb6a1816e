//! One engine event stream to many clients: every event is broadcast
//! (bounded: a client that falls behind is told how much it missed), each
//! console's recent output is kept for clients that attach later, and each
//! console has at most one writer.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};

use tokio::sync::{broadcast, mpsc};

use crate::engine::lab::EngineEvent;

/// What every client's connection receives, and filters for itself.
#[derive(Debug, Clone)]
pub enum Item {
    Event(EngineEvent),
    /// Console output of `node`; `end` is the node's output position after
    /// these bytes (so a client that just read the scrollback skips what
    /// it already has).
    Console {
        node: String,
        end: u64,
        bytes: Arc<Vec<u8>>,
    },
    /// The node's console writer changed (`None`: nobody holds it).
    Writer {
        node: String,
        writer: Option<Writer>,
        previous: Option<Writer>,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Writer {
    pub client: u64,
    pub user: String,
}

/// Items a slow client may fall behind by before it is told it lost some.
const BACKLOG: usize = 16 * 1024;

#[derive(Default)]
struct Ring {
    bytes: VecDeque<u8>,
    /// Output position after the last byte.
    end: u64,
}

pub struct Fanout {
    items: broadcast::Sender<Arc<Item>>,
    rings: Mutex<HashMap<String, Ring>>,
    writers: Mutex<HashMap<String, Writer>>,
    /// Clients attached to each console (the first one opens a console
    /// that is not kept open, the last one closes it).
    viewers: Mutex<HashMap<String, HashMap<u64, ()>>>,
}

/// How a client asks to attach to a console.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Mode {
    /// Take the write lock if nobody holds it, else watch.
    Auto,
    /// Never write (conserver's spy mode).
    ReadOnly,
    /// Take the write lock from whoever holds it; they are told.
    Force,
}

impl Fanout {
    pub fn new() -> Arc<Fanout> {
        let (items, _) = broadcast::channel(BACKLOG);
        Arc::new(Fanout {
            items,
            rings: Mutex::default(),
            writers: Mutex::default(),
            viewers: Mutex::default(),
        })
    }

    pub fn subscribe(&self) -> broadcast::Receiver<Arc<Item>> {
        self.items.subscribe()
    }

    fn rings(&self) -> MutexGuard<'_, HashMap<String, Ring>> {
        self.rings.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn writers(&self) -> MutexGuard<'_, HashMap<String, Writer>> {
        self.writers.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn viewers(&self) -> MutexGuard<'_, HashMap<String, HashMap<u64, ()>>> {
        self.viewers.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Moves the engine's events to the clients until the engine is gone.
    pub async fn run(self: Arc<Self>, mut events: mpsc::UnboundedReceiver<EngineEvent>) {
        while let Some(event) = events.recv().await {
            self.publish(event);
        }
    }

    pub fn publish(&self, event: EngineEvent) {
        let item = match event {
            EngineEvent::ConsoleData { node, bytes } => {
                let end = self.remember(&node, &bytes);
                Item::Console {
                    node,
                    end,
                    bytes: Arc::new(bytes),
                }
            }
            event => Item::Event(event),
        };
        // Nobody listening is fine: the rings keep the consoles.
        let _ = self.items.send(Arc::new(item));
    }

    fn remember(&self, node: &str, bytes: &[u8]) -> u64 {
        let mut rings = self.rings();
        let ring = rings.entry(node.to_string()).or_default();
        ring.bytes.extend(bytes);
        let over = ring.bytes.len().saturating_sub(super::protocol::SCROLLBACK);
        ring.bytes.drain(..over);
        ring.end += bytes.len() as u64;
        ring.end
    }

    /// The node's recent output and its end position.
    pub fn scrollback(&self, node: &str) -> (Vec<u8>, u64) {
        let rings = self.rings();
        match rings.get(node) {
            Some(ring) => (ring.bytes.iter().copied().collect(), ring.end),
            None => (Vec::new(), 0),
        }
    }

    /// Forgets a node's console (removed from the lab).
    pub fn forget(&self, node: &str) {
        self.rings().remove(node);
        self.writers().remove(node);
    }

    /// Adds a viewer; true when it is the console's first.
    pub fn add_viewer(&self, node: &str, client: u64) -> bool {
        let mut viewers = self.viewers();
        let set = viewers.entry(node.to_string()).or_default();
        let first = set.is_empty();
        set.insert(client, ());
        first
    }

    /// Whether any client watches the node's console.
    pub fn has_viewers(&self, node: &str) -> bool {
        self.viewers().get(node).is_some_and(|set| !set.is_empty())
    }

    /// Removes a viewer (and its write lock); true when it was the last.
    pub fn remove_viewer(&self, node: &str, client: u64) -> bool {
        let last = {
            let mut viewers = self.viewers();
            let removed = viewers
                .get_mut(node)
                .map(|set| (set.remove(&client).is_some(), set.is_empty()));
            match removed {
                Some((true, empty)) => {
                    if empty {
                        viewers.remove(node);
                    }
                    empty
                }
                _ => false,
            }
        };
        self.release(node, client);
        last
    }

    /// Decides the client's write lock as it attaches; returns who holds
    /// the lock afterwards.
    pub fn claim(&self, node: &str, client: u64, user: &str, mode: Mode) -> Option<Writer> {
        let me = Writer {
            client,
            user: user.to_string(),
        };
        let (now, previous) = {
            let mut writers = self.writers();
            let held = writers.get(node).cloned();
            match (mode, held) {
                (Mode::ReadOnly, held) => return held,
                (Mode::Auto, Some(held)) => return Some(held),
                (Mode::Force, Some(held)) if held.client == client => return Some(held),
                (_, held) => {
                    writers.insert(node.to_string(), me.clone());
                    (me, held)
                }
            }
        };
        let _ = self.items.send(Arc::new(Item::Writer {
            node: node.to_string(),
            writer: Some(now.clone()),
            previous,
        }));
        Some(now)
    }

    /// Gives up the client's write lock on the node, if it holds it.
    pub fn release(&self, node: &str, client: u64) {
        let previous = {
            let mut writers = self.writers();
            match writers.get(node) {
                Some(w) if w.client == client => writers.remove(node),
                _ => None,
            }
        };
        if previous.is_some() {
            let _ = self.items.send(Arc::new(Item::Writer {
                node: node.to_string(),
                writer: None,
                previous,
            }));
        }
    }

    pub fn writer(&self, node: &str) -> Option<Writer> {
        self.writers().get(node).cloned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scrollback_keeps_the_newest_bytes_and_positions_count_all() {
        let fanout = Fanout::new();
        let mut rx = fanout.subscribe();
        let big = vec![b'x'; super::super::protocol::SCROLLBACK];
        fanout.publish(EngineEvent::ConsoleData {
            node: "n1".into(),
            bytes: b"old".to_vec(),
        });
        fanout.publish(EngineEvent::ConsoleData {
            node: "n1".into(),
            bytes: big.clone(),
        });
        let (kept, end) = fanout.scrollback("n1");
        assert_eq!(kept, big, "the oldest bytes went first");
        assert_eq!(end, 3 + big.len() as u64);
        match &*rx.try_recv().unwrap() {
            Item::Console { end, .. } => assert_eq!(*end, 3),
            other => panic!("{other:?}"),
        }
        assert_eq!(fanout.scrollback("n2"), (Vec::new(), 0));
    }

    #[test]
    fn one_writer_force_takes_it_read_only_never_does() {
        let fanout = Fanout::new();
        let mut rx = fanout.subscribe();
        let w = |c: u64, u: &str| Writer {
            client: c,
            user: u.into(),
        };
        assert_eq!(
            fanout.claim("n1", 1, "alice", Mode::Auto),
            Some(w(1, "alice"))
        );
        assert_eq!(
            fanout.claim("n1", 2, "bob", Mode::Auto),
            Some(w(1, "alice"))
        );
        assert_eq!(
            fanout.claim("n1", 3, "eve", Mode::ReadOnly),
            Some(w(1, "alice"))
        );
        assert_eq!(fanout.claim("n1", 2, "bob", Mode::Force), Some(w(2, "bob")));
        // The first claim and the forced one were announced, with who lost it.
        let _ = rx.try_recv().unwrap();
        match &*rx.try_recv().unwrap() {
            Item::Writer {
                writer, previous, ..
            } => {
                assert_eq!(writer, &Some(w(2, "bob")));
                assert_eq!(previous, &Some(w(1, "alice")));
            }
            other => panic!("{other:?}"),
        }
        fanout.release("n1", 1);
        assert_eq!(
            fanout.writer("n1"),
            Some(w(2, "bob")),
            "alice no longer held it"
        );
        fanout.add_viewer("n1", 2);
        assert!(fanout.remove_viewer("n1", 2));
        assert_eq!(fanout.writer("n1"), None, "leaving gives the lock up");
    }
}
