//! The system's EventLog: power events the chassis went through since the
//! front end started, as OpenBMC's Redfish event log records them.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use super::super::ChassisState;
use super::Bmc;

/// Entries kept; older ones are dropped (a real BMC rotates its log too).
const MAX_ENTRIES: usize = 200;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub id: u64,
    /// ISO 8601, UTC.
    pub created: String,
    pub message_id: &'static str,
    pub message: &'static str,
}

#[derive(Debug, Default)]
pub struct EventLog {
    inner: Mutex<(VecDeque<Entry>, u64)>,
}

impl EventLog {
    pub fn record(&self, message_id: &'static str, message: &'static str) {
        let mut inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        let (entries, last_id) = &mut *inner;
        *last_id += 1;
        if entries.len() == MAX_ENTRIES {
            entries.pop_front();
        }
        entries.push_back(Entry {
            id: *last_id,
            created: iso8601(SystemTime::now()),
            message_id,
            message,
        });
    }

    pub fn entries(&self) -> Vec<Entry> {
        let inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        inner.0.iter().cloned().collect()
    }
}

/// The events between two chassis states.
pub fn events(before: &ChassisState, after: &ChassisState) -> Vec<(&'static str, &'static str)> {
    let mut out = Vec::new();
    let power_ons = after.power_on_count.saturating_sub(before.power_on_count);
    // A power cycle of a running host: off, then on again.
    if before.power_on && (!after.power_on || power_ons > 0) {
        out.push(("OpenBMC.0.1.DCPowerOff", "Host system DC power is off"));
    }
    if power_ons > 0 && after.power_on {
        out.push(("OpenBMC.0.1.DCPowerOn", "Host system DC power is on"));
    }
    if after.resets > before.resets {
        out.push(("OpenBMC.0.1.ResetButtonPressed", "Host system reset"));
    }
    out
}

/// Records the chassis' power events until the front end stops.
pub async fn follow(bmc: Arc<Bmc>) {
    let mut chassis = bmc.chassis.clone();
    let mut seen = *chassis.borrow_and_update();
    while chassis.changed().await.is_ok() {
        let now = *chassis.borrow_and_update();
        for (id, message) in events(&seen, &now) {
            bmc.log.record(id, message);
        }
        seen = now;
    }
}

/// `2024-05-01T12:00:00+00:00`, as bmcweb writes times.
pub fn iso8601(time: SystemTime) -> String {
    let secs = time.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let (days, rem) = (secs / 86_400, secs % 86_400);
    // Howard Hinnant's civil_from_days.
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}+00:00",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn iso8601_of_known_instants() {
        assert_eq!(iso8601(UNIX_EPOCH), "1970-01-01T00:00:00+00:00");
        let t = UNIX_EPOCH + Duration::from_secs(1_709_210_096);
        assert_eq!(iso8601(t), "2024-02-29T12:34:56+00:00");
    }

    #[test]
    fn power_events_from_chassis_changes() {
        let off = ChassisState::default();
        let on = ChassisState {
            power_on: true,
            power_on_count: 1,
            ..off
        };
        assert_eq!(events(&off, &on)[0].0, "OpenBMC.0.1.DCPowerOn");
        let off_again = ChassisState {
            power_on: false,
            ..on
        };
        assert_eq!(events(&on, &off_again)[0].0, "OpenBMC.0.1.DCPowerOff");
        let cycled = ChassisState {
            power_on_count: 2,
            ..on
        };
        let ids: Vec<_> = events(&on, &cycled).iter().map(|e| e.0).collect();
        assert_eq!(ids, ["OpenBMC.0.1.DCPowerOff", "OpenBMC.0.1.DCPowerOn"]);
        let reset = ChassisState { resets: 1, ..on };
        assert_eq!(events(&on, &reset)[0].0, "OpenBMC.0.1.ResetButtonPressed");
        let log = EventLog::default();
        for _ in 0..MAX_ENTRIES + 3 {
            log.record("a", "b");
        }
        let entries = log.entries();
        assert_eq!(entries.len(), MAX_ENTRIES);
        assert_eq!(entries[0].id, 4);
    }
}
