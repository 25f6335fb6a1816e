//! At most one frame per interval (render coalescing, as yazi does): the
//! first change after a quiet spell is drawn at once, so keys feel
//! immediate; changes that follow within the interval wait for the next
//! slot and are drawn together. I/O-free: the loop asks it when to draw.

use std::time::{Duration, Instant};

/// 30 frames a second at most.
pub const FRAME: Duration = Duration::from_millis(33);

#[derive(Debug)]
pub struct FramePacer {
    interval: Duration,
    last: Option<Instant>,
}

impl FramePacer {
    pub fn new(interval: Duration) -> FramePacer {
        FramePacer {
            interval,
            last: None,
        }
    }

    /// When something that changed at `now` may be drawn: `now` itself, or
    /// the next frame slot.
    pub fn due(&self, now: Instant) -> Instant {
        match self.last {
            Some(last) if now < last + self.interval => last + self.interval,
            _ => now,
        }
    }

    pub fn drawn(&mut self, at: Instant) {
        self.last = Some(at);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_change_at_once_then_one_frame_per_interval() {
        let t0 = Instant::now();
        let ms = Duration::from_millis;
        let mut pacer = FramePacer::new(ms(33));
        assert_eq!(pacer.due(t0), t0, "nothing drawn yet: now");
        pacer.drawn(t0);
        assert_eq!(
            pacer.due(t0 + ms(1)),
            t0 + ms(33),
            "within the frame: waits"
        );
        assert_eq!(pacer.due(t0 + ms(32)), t0 + ms(33));
        assert_eq!(
            pacer.due(t0 + ms(40)),
            t0 + ms(40),
            "after a quiet frame: now"
        );
    }

    /// A stream of changes (a reading every millisecond) is drawn at most
    /// once per interval.
    #[test]
    fn a_burst_of_changes_is_capped_at_the_frame_rate() {
        let t0 = Instant::now();
        let ms = Duration::from_millis;
        let mut pacer = FramePacer::new(ms(33));
        let mut frames = 0;
        let mut pending: Option<Instant> = None;
        for i in 0..1000 {
            let now = t0 + ms(i);
            if let Some(at) = pending
                && now >= at
            {
                pacer.drawn(now);
                frames += 1;
                pending = None;
            }
            if pending.is_none() {
                let due = pacer.due(now);
                if due <= now {
                    pacer.drawn(now);
                    frames += 1;
                } else {
                    pending = Some(due);
                }
            }
        }
        assert!((30..=31).contains(&frames), "{frames} frames in one second");
    }
}
