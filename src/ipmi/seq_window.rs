//! Inbound session sequence numbers (IPMI 2.0 §6.12.13): each number is
//! accepted once, in any order within a sliding window, so replays and stale
//! packets are dropped while reordered or retried ones still get through.

/// How far below the highest number seen a packet may still arrive.
const BEHIND: u32 = 16;
/// How far a packet may jump ahead (lost packets, client retries).
const AHEAD: u32 = 32;

#[derive(Debug, Default, Clone)]
pub struct SeqWindow {
    /// Highest accepted number; 0 before the first packet (0 is never valid).
    highest: u32,
    /// Bit i set: `highest - i` was accepted.
    seen: u32,
}

impl SeqWindow {
    /// Records `seq` and says whether the packet should be processed.
    pub fn accept(&mut self, seq: u32) -> bool {
        if seq == 0 {
            return false;
        }
        if self.highest == 0 {
            // Clients pick their first number; take it.
            (self.highest, self.seen) = (seq, 1);
            return true;
        }
        let ahead = seq.wrapping_sub(self.highest);
        if ahead != 0 && ahead <= AHEAD {
            self.seen = self.seen.checked_shl(ahead).unwrap_or(0) | 1;
            self.highest = seq;
            return true;
        }
        let behind = self.highest.wrapping_sub(seq);
        if behind >= BEHIND || self.seen & (1 << behind) != 0 {
            return false;
        }
        self.seen |= 1 << behind;
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_each_number_once_within_the_window() {
        let mut w = SeqWindow::default();
        assert!(!w.accept(0));
        assert!(w.accept(1));
        assert!(!w.accept(1), "replay");
        assert!(w.accept(3));
        assert!(w.accept(2), "late but new");
        assert!(!w.accept(2));
        assert!(w.accept(3 + AHEAD));
        assert!(!w.accept(3), "too old");
        assert!(!w.accept(3 + 2 * AHEAD + 1), "too far ahead");
        assert!(w.accept(3 + AHEAD - (BEHIND - 1)));
    }

    #[test]
    fn wraps_around() {
        let mut w = SeqWindow::default();
        assert!(w.accept(u32::MAX - 1));
        assert!(w.accept(1));
        assert!(w.accept(u32::MAX));
        assert!(!w.accept(u32::MAX));
    }
}
