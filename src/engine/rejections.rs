//! Coalesces refused agent-API calls per peer, so that a peer hammering the
//! API without a valid token costs the audit log a bounded number of rows:
//! the first refusal of a window is recorded in full, the others are only
//! counted, and one summary row per window carries the count. I/O-free: the
//! caller passes the time and writes the rows.

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::{Duration, Instant};

/// How long a peer's refusals are folded into one count.
pub const INTERVAL: Duration = Duration::from_secs(60);

/// Peers tracked one by one; refusals from further peers share one window,
/// so many source addresses cannot grow the table (or the log) either.
pub const MAX_PEERS: usize = 256;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Peer {
    One(IpAddr),
    /// Everyone beyond [`MAX_PEERS`] while the table is full.
    Others,
}

impl std::fmt::Display for Peer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Peer::One(ip) => write!(f, "{ip}"),
            Peer::Others => f.write_str("other peers"),
        }
    }
}

#[derive(Debug, PartialEq, Eq)]
pub enum Verdict {
    /// The first refusal of the peer's window: record it in full.
    Record(Peer),
    /// Counted into the window; nothing to write now.
    Counted,
}

/// The refusals of a closed window that were not recorded one by one.
#[derive(Debug, PartialEq, Eq)]
pub struct Summary {
    pub peer: Peer,
    pub more: u64,
    /// How long the window ran.
    pub interval: Duration,
    /// What the last of them was refused for.
    pub last: String,
}

struct Window {
    opened: Instant,
    more: u64,
    last: String,
}

pub struct Coalescer {
    interval: Duration,
    max_peers: usize,
    windows: HashMap<Peer, Window>,
}

impl Coalescer {
    pub fn new(interval: Duration, max_peers: usize) -> Coalescer {
        Coalescer {
            interval,
            max_peers,
            windows: HashMap::new(),
        }
    }

    /// A call from `ip` was refused (`what` says why). Call [`expire`] first
    /// so a closed window's summary comes before the next window's record.
    ///
    /// [`expire`]: Coalescer::expire
    pub fn refuse(&mut self, ip: IpAddr, now: Instant, what: &str) -> Verdict {
        let mut peer = Peer::One(ip);
        if !self.windows.contains_key(&peer) && self.windows.len() >= self.max_peers {
            peer = Peer::Others;
        }
        match self.windows.get_mut(&peer) {
            Some(w) => {
                w.more += 1;
                w.last = what.to_string();
                Verdict::Counted
            }
            None => {
                let window = Window {
                    opened: now,
                    more: 0,
                    last: String::new(),
                };
                self.windows.insert(peer, window);
                Verdict::Record(peer)
            }
        }
    }

    /// Closes the windows older than the interval; returns the summaries of
    /// those that counted anything beyond their first refusal.
    pub fn expire(&mut self, now: Instant) -> Vec<Summary> {
        let interval = self.interval;
        let closed: Vec<Peer> = self
            .windows
            .iter()
            .filter(|(_, w)| now.saturating_duration_since(w.opened) >= interval)
            .map(|(p, _)| *p)
            .collect();
        self.close(closed, now)
    }

    /// Closes every window (the server is stopping).
    pub fn drain(&mut self, now: Instant) -> Vec<Summary> {
        let all: Vec<Peer> = self.windows.keys().copied().collect();
        self.close(all, now)
    }

    fn close(&mut self, peers: Vec<Peer>, now: Instant) -> Vec<Summary> {
        let mut out: Vec<Summary> = peers
            .into_iter()
            .filter_map(|peer| {
                let w = self.windows.remove(&peer)?;
                (w.more > 0).then(|| Summary {
                    peer,
                    more: w.more,
                    interval: now.saturating_duration_since(w.opened).min(self.interval),
                    last: w.last,
                })
            })
            .collect();
        // Stable order for the log.
        out.sort_by_key(|s| s.peer.to_string());
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(last: u8) -> IpAddr {
        IpAddr::from([10, 0, 0, last])
    }

    #[test]
    fn one_record_then_a_count_per_window() {
        let t0 = Instant::now();
        let mut c = Coalescer::new(Duration::from_secs(60), 4);
        assert_eq!(c.refuse(ip(1), t0, "a"), Verdict::Record(Peer::One(ip(1))));
        for i in 0..2999 {
            let t = t0 + Duration::from_millis(i);
            assert_eq!(c.refuse(ip(1), t, "b"), Verdict::Counted);
        }
        assert!(c.expire(t0 + Duration::from_secs(59)).is_empty());
        let closed = c.expire(t0 + Duration::from_secs(60));
        assert_eq!(
            closed,
            [Summary {
                peer: Peer::One(ip(1)),
                more: 2999,
                interval: Duration::from_secs(60),
                last: "b".into(),
            }]
        );
        // A new window starts with a record again.
        let t1 = t0 + Duration::from_secs(61);
        assert_eq!(c.refuse(ip(1), t1, "c"), Verdict::Record(Peer::One(ip(1))));
    }

    #[test]
    fn a_lone_refusal_leaves_no_summary() {
        let t0 = Instant::now();
        let mut c = Coalescer::new(Duration::from_secs(1), 4);
        c.refuse(ip(1), t0, "a");
        assert!(c.expire(t0 + Duration::from_secs(2)).is_empty());
        assert!(c.drain(t0).is_empty());
    }

    #[test]
    fn peers_beyond_the_cap_share_one_window() {
        let t0 = Instant::now();
        let mut c = Coalescer::new(Duration::from_secs(60), 2);
        assert_eq!(c.refuse(ip(1), t0, "x"), Verdict::Record(Peer::One(ip(1))));
        assert_eq!(c.refuse(ip(2), t0, "x"), Verdict::Record(Peer::One(ip(2))));
        assert_eq!(c.refuse(ip(3), t0, "x"), Verdict::Record(Peer::Others));
        for n in 4..200 {
            assert_eq!(c.refuse(ip(n), t0, "x"), Verdict::Counted);
        }
        // Known peers keep their own window.
        assert_eq!(c.refuse(ip(1), t0, "y"), Verdict::Counted);
        let drained = c.drain(t0 + Duration::from_secs(5));
        let counts: Vec<(String, u64)> = drained
            .iter()
            .map(|s| (s.peer.to_string(), s.more))
            .collect();
        assert_eq!(
            counts,
            [
                ("10.0.0.1".to_string(), 1),
                ("other peers".to_string(), 196)
            ]
        );
        assert_eq!(drained[0].interval, Duration::from_secs(5));
    }
}
