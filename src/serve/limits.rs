//! Caps the servers share, so one client cannot take what the others need:
//! how many connections or transfers one client address may hold at once,
//! and how much of the process's descriptor limit each server may use (a
//! TFTP flood must not leave HTTP, and so the deploy agent's API, without
//! descriptors).

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

/// Which cap refused a slot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Full {
    /// Every slot is taken.
    All,
    /// This client address holds its share already.
    Address,
}

/// Counted slots: at most `total` held at once, at most `per_address` by
/// one client address.
pub(crate) struct Slots {
    total: usize,
    per_address: usize,
    held: Mutex<Held>,
}

#[derive(Default)]
struct Held {
    total: usize,
    by_address: HashMap<IpAddr, usize>,
}

/// One held slot, given back when dropped.
pub(crate) struct Slot {
    slots: Arc<Slots>,
    ip: IpAddr,
}

impl Slots {
    pub(crate) fn new(total: usize, per_address: usize) -> Arc<Slots> {
        Arc::new(Slots {
            total: total.max(1),
            per_address: per_address.max(1),
            held: Mutex::default(),
        })
    }

    /// A slot for a client at `ip` (an IPv4-mapped IPv6 address counts as
    /// the IPv4 one), unless a cap is reached.
    pub(crate) fn try_acquire(self: &Arc<Self>, ip: IpAddr) -> Result<Slot, Full> {
        let ip = ip.to_canonical();
        let mut held = self.held.lock().unwrap_or_else(|e| e.into_inner());
        if held.total >= self.total {
            return Err(Full::All);
        }
        let mine = held.by_address.entry(ip).or_default();
        if *mine >= self.per_address {
            return Err(Full::Address);
        }
        *mine += 1;
        held.total += 1;
        Ok(Slot {
            slots: self.clone(),
            ip,
        })
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut held = self.slots.held.lock().unwrap_or_else(|e| e.into_inner());
        held.total -= 1;
        if let Some(mine) = held.by_address.get_mut(&self.ip) {
            *mine -= 1;
            if *mine == 0 {
                held.by_address.remove(&self.ip);
            }
        }
    }
}

/// The process's soft limit on open descriptors; `None` when unlimited.
pub fn descriptor_limit() -> Option<u64> {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: `limit` is a valid rlimit for the kernel to fill.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } != 0 {
        return None;
    }
    (limit.rlim_cur != libc::RLIM_INFINITY).then_some(limit.rlim_cur)
}

/// Raises the soft descriptor limit to the hard one, as servers do at
/// start (the soft one is often 1024 for a hard one far higher). Returns
/// the soft limit now in force.
pub fn raise_descriptor_limit() -> Option<u64> {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: `limit` is a valid rlimit, filled and then passed back.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) == 0 && limit.rlim_cur < limit.rlim_max
        {
            let raised = libc::rlimit {
                rlim_cur: limit.rlim_max,
                ..limit
            };
            libc::setrlimit(libc::RLIMIT_NOFILE, &raised);
        }
    }
    descriptor_limit()
}

/// `wanted` units, fewer if needed so that units of `each` descriptors
/// take at most `1/share` of `limit`; at least one.
pub(crate) fn fit(wanted: usize, each: u64, share: u64, limit: Option<u64>) -> usize {
    match limit {
        None => wanted,
        Some(limit) => {
            let budget = limit / share.max(1) / each.max(1);
            wanted.min(usize::try_from(budget).unwrap_or(usize::MAX).max(1))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_cap_each_address_and_the_total() {
        let slots = Slots::new(3, 2);
        let a: IpAddr = "10.0.0.1".parse().unwrap();
        let b: IpAddr = "10.0.0.2".parse().unwrap();
        let a1 = slots.try_acquire(a).unwrap();
        let a2 = slots.try_acquire(a).unwrap();
        assert_eq!(slots.try_acquire(a).err(), Some(Full::Address));
        // The mapped form of `a` is `a`.
        let mapped: IpAddr = "::ffff:10.0.0.1".parse().unwrap();
        assert_eq!(slots.try_acquire(mapped).err(), Some(Full::Address));
        let b1 = slots.try_acquire(b).unwrap();
        assert_eq!(slots.try_acquire(b).err(), Some(Full::All));
        drop(a1);
        let b2 = slots.try_acquire(b).unwrap();
        drop((a2, b1, b2));
        assert!(slots.held.lock().unwrap().by_address.is_empty());
        assert_eq!(slots.held.lock().unwrap().total, 0);
    }

    #[test]
    fn fit_keeps_within_the_share_of_descriptors() {
        // 256 descriptors, a quarter for units of two: 32.
        assert_eq!(fit(64, 2, 4, Some(256)), 32);
        assert_eq!(fit(16, 2, 4, Some(256)), 16);
        assert_eq!(fit(64, 2, 4, None), 64);
        assert_eq!(fit(64, 2, 4, Some(3)), 1, "never none at all");
    }

    #[test]
    fn the_descriptor_limit_is_the_kernels_soft_one() {
        let limits = std::fs::read_to_string("/proc/self/limits").unwrap();
        let line = limits
            .lines()
            .find(|l| l.starts_with("Max open files"))
            .unwrap();
        let soft = line.split_whitespace().nth(3).unwrap();
        assert_eq!(descriptor_limit(), soft.parse().ok(), "{line}");
    }
}
