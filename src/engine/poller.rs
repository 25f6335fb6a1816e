//! Polls every node's BMC for power and boot flags over persistent sessions,
//! with bounded concurrency, and reports only what changed. A node that
//! times out occupies one slot for its own timeouts and nobody else's.

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt;
use serde::Serialize;
use tokio::sync::{Semaphore, mpsc};

use crate::hardware::{Bmc, BmcError, BootFlags, Target};

#[derive(Debug, Clone, Copy)]
pub struct PollerConfig {
    /// Time between two polls of one node.
    pub interval: Duration,
    /// Most BMCs talked to at once (sockets, CPU, the BMCs' own limits).
    pub concurrency: usize,
    /// Also read boot flags (one more round trip per node).
    pub boot_flags: bool,
    /// Longest wait between polls of a node that keeps failing.
    pub max_backoff: Duration,
    /// `run` also reports readings that did not change, so a dashboard can
    /// show how fresh each one is (sweeps report changes only).
    pub report_unchanged: bool,
}

impl Default for PollerConfig {
    fn default() -> Self {
        PollerConfig {
            interval: Duration::from_secs(5),
            concurrency: 64,
            boot_flags: true,
            max_backoff: Duration::from_secs(60),
            report_unchanged: false,
        }
    }
}

/// What the poller last learned about a node.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "state", rename_all = "lowercase")]
pub enum Reading {
    Ok {
        power_on: bool,
        /// `None` when boot flags were not asked for or the BMC has none.
        boot: Option<BootFlags>,
    },
    Failed {
        /// "unreachable", "auth", "cipher", "tls", … (see `BmcError::kind`).
        kind: &'static str,
        message: String,
    },
}

impl Reading {
    fn failed(err: &BmcError) -> Reading {
        Reading::Failed {
            kind: err.kind(),
            message: err.to_string(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Update {
    pub index: usize,
    pub node: String,
    pub reading: Reading,
}

/// One node: its name, its BMC (or why there is none) and what was last sent.
struct Slot {
    index: usize,
    name: String,
    bmc: Result<Bmc, String>,
    last: Option<Reading>,
}

impl Slot {
    async fn poll(&mut self, boot_flags: bool) -> Reading {
        let bmc = match &mut self.bmc {
            Ok(bmc) => bmc,
            Err(why) => {
                return Reading::Failed {
                    kind: "config",
                    message: why.clone(),
                };
            }
        };
        let power_on = match bmc.power_status().await {
            Ok(on) => on,
            Err(e) => return Reading::failed(&e),
        };
        let boot = if boot_flags {
            match bmc.boot_flags().await {
                Ok(flags) => flags,
                Err(e) => return Reading::failed(&e),
            }
        } else {
            None
        };
        Reading::Ok { power_on, boot }
    }

    /// The update to emit: the reading, if it differs from the last one sent
    /// (or `always`).
    fn record(&mut self, reading: Reading, always: bool) -> Option<Update> {
        if !always && self.last.as_ref() == Some(&reading) {
            return None;
        }
        self.last = Some(reading.clone());
        Some(Update {
            index: self.index,
            node: self.name.clone(),
            reading,
        })
    }
}

/// The result of one sweep.
#[derive(Debug, Default)]
pub struct Sweep {
    /// Readings that changed since the previous sweep (all, the first time).
    pub changes: Vec<Update>,
    /// Per node (by index): time from the sweep's start until its reading.
    pub finished_after: Vec<Duration>,
}

pub struct Poller {
    slots: Vec<Slot>,
    config: PollerConfig,
}

impl Poller {
    /// `nodes`: name and target, or why the node has no usable target.
    pub fn new(nodes: Vec<(String, Result<Target, String>)>, config: PollerConfig) -> Poller {
        let bmcs = nodes
            .into_iter()
            .map(|(name, target)| (name, target.map(Bmc::new)))
            .collect();
        Poller::from_bmcs(bmcs, config)
    }

    /// Like `new`, with BMC connections made elsewhere (e.g. through the
    /// nodes' console sessions).
    pub fn from_bmcs(nodes: Vec<(String, Result<Bmc, String>)>, config: PollerConfig) -> Poller {
        let slots = nodes
            .into_iter()
            .enumerate()
            .map(|(index, (name, bmc))| Slot {
                index,
                name,
                bmc,
                last: None,
            })
            .collect();
        Poller { slots, config }
    }

    pub fn len(&self) -> usize {
        self.slots.len()
    }

    pub fn is_empty(&self) -> bool {
        self.slots.is_empty()
    }

    /// Polls every node once, at most `concurrency` at a time.
    pub async fn sweep(&mut self) -> Sweep {
        let start = Instant::now();
        let boot_flags = self.config.boot_flags;
        let mut finished_after = vec![Duration::ZERO; self.slots.len()];
        let mut changes = Vec::new();
        let mut results = futures::stream::iter(self.slots.iter_mut())
            .map(|slot| async move {
                let reading = slot.poll(boot_flags).await;
                (slot, reading, start.elapsed())
            })
            .buffer_unordered(self.config.concurrency.max(1));
        while let Some((slot, reading, after)) = results.next().await {
            finished_after[slot.index] = after;
            changes.extend(slot.record(reading, false));
        }
        changes.sort_by_key(|u| u.index);
        Sweep {
            changes,
            finished_after,
        }
    }

    /// Polls forever, each node on its own schedule (failing nodes back off),
    /// sending changes until the receiver is dropped. Sessions are closed on
    /// the way out.
    pub async fn run(self, tx: mpsc::Sender<Update>) {
        let permits = Arc::new(Semaphore::new(self.config.concurrency.max(1)));
        let config = self.config;
        let mut tasks = tokio::task::JoinSet::new();
        for mut slot in self.slots {
            let (tx, permits) = (tx.clone(), permits.clone());
            tasks.spawn(async move {
                let mut wait = config.interval;
                loop {
                    let reading = {
                        let _permit = permits.acquire().await.expect("never closed");
                        slot.poll(config.boot_flags).await
                    };
                    wait = match reading {
                        Reading::Ok { .. } => config.interval,
                        Reading::Failed { .. } => (wait * 2).min(config.max_backoff),
                    };
                    if let Some(update) = slot.record(reading, config.report_unchanged)
                        && tx.send(update).await.is_err()
                    {
                        break;
                    }
                    tokio::select! {
                        _ = tokio::time::sleep(wait) => {}
                        _ = tx.closed() => break,
                    }
                }
                if let Ok(bmc) = &mut slot.bmc {
                    bmc.close().await;
                }
            });
        }
        while tasks.join_next().await.is_some() {}
    }

    /// Closes every open session (Close Session), concurrently.
    pub async fn close(&mut self) {
        futures::stream::iter(self.slots.iter_mut())
            .for_each_concurrent(self.config.concurrency.max(1), |slot| async move {
                if let Ok(bmc) = &mut slot.bmc {
                    bmc.close().await;
                }
            })
            .await;
    }
}
