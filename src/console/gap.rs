//! Gaps in a console: stretches in which SOL was not connected, so what the
//! host printed then is lost. Each gap becomes a marker line in the log and
//! the pane, so nobody reads a console log as the whole story when it is not.

/// A stretch of time without a console, in Unix milliseconds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Gap {
    pub from_ms: i64,
    /// `None`: the console ended while lost.
    pub to_ms: Option<i64>,
    pub reason: String,
}

impl Gap {
    /// "console lost 12:01:03–12:01:21 UTC (18 s): reason".
    pub fn describe(&self) -> String {
        let from = time_of_day(self.from_ms);
        match self.to_ms {
            Some(to) => format!(
                "console lost {from}–{} UTC ({} s): {}",
                time_of_day(to),
                (to - self.from_ms).max(0).div_euclid(1000),
                self.reason
            ),
            None => format!("console lost at {from} UTC: {}", self.reason),
        }
    }

    /// The line written into the log and shown in the pane, on a line of
    /// its own.
    pub fn marker(&self) -> String {
        format!("\r\n[petitlab: {}]\r\n", self.describe())
    }
}

/// "HH:MM:SS" (UTC) of a Unix millisecond time.
fn time_of_day(ms: i64) -> String {
    let s = ms.div_euclid(1000).rem_euclid(86_400);
    format!("{:02}:{:02}:{:02}", s / 3600, s / 60 % 60, s % 60)
}

/// Follows a console's connection state and yields a [`Gap`] when one ends.
/// Only losses after the first connection count: before it, nothing was
/// being shown that could be lost.
#[derive(Debug, Default)]
pub struct GapTracker {
    was_connected: bool,
    lost: Option<(i64, String)>,
}

impl GapTracker {
    /// The console is (again) connected: the gap that ends now, if any.
    pub fn connected(&mut self, now_ms: i64) -> Option<Gap> {
        self.was_connected = true;
        self.lost.take().map(|(from_ms, reason)| Gap {
            from_ms,
            to_ms: Some(now_ms),
            reason,
        })
    }

    /// The console was lost (it may be reopened); the first loss of a gap
    /// keeps its time and reason, later retries do not move them.
    pub fn lost(&mut self, now_ms: i64, reason: &str) {
        if self.was_connected && self.lost.is_none() {
            self.lost = Some((now_ms, reason.to_string()));
        }
    }

    /// The console ended on its own (not closed by its user): an open gap
    /// from when it was lost, or from now if it was connected; `None` if it
    /// never was.
    pub fn closed(&mut self, now_ms: i64, reason: &str) -> Option<Gap> {
        self.lost(now_ms, reason);
        self.lost.take().map(|(from_ms, reason)| Gap {
            from_ms,
            to_ms: None,
            reason,
        })
    }
}

/// Now, in Unix milliseconds.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

#[cfg(test)]
mod tests {
    use super::*;

    const T: i64 = 1_700_000_000_000; // 22:13:20 UTC

    #[test]
    fn a_loss_then_a_reconnect_is_one_gap_with_the_first_reason() {
        let mut t = GapTracker::default();
        assert_eq!(t.connected(T), None, "first connection is no gap");
        t.lost(T + 1_000, "the BMC stopped answering (keepalive)");
        t.lost(T + 5_000, "no answer from BMC");
        let gap = t.connected(T + 19_000).unwrap();
        assert_eq!(
            gap.marker(),
            "\r\n[petitlab: console lost 22:13:21–22:13:39 UTC (18 s): \
             the BMC stopped answering (keepalive)]\r\n"
        );
        assert_eq!(t.connected(T + 20_000), None);
    }

    #[test]
    fn losses_before_the_first_connection_are_no_gap_an_end_while_connected_is() {
        let mut t = GapTracker::default();
        t.lost(T, "unreachable");
        assert_eq!(t.connected(T + 1_000), None);
        let mut t = GapTracker::default();
        t.lost(T, "unreachable");
        assert_eq!(t.closed(T + 2_000, "SOL is already active"), None);
        let mut t = GapTracker::default();
        t.connected(T);
        let open = t.closed(T + 3_000, "SOL deactivated by the BMC").unwrap();
        assert_eq!(
            open.describe(),
            "console lost at 22:13:23 UTC: SOL deactivated by the BMC"
        );
    }
}
