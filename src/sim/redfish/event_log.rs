//! The system's EventLog: the BMC's SEL records that OpenBMC's message
//! registry has a message for (host DC power on and off, host reset), as
//! bmcweb shows them. Same store as IPMI's SEL: clearing one clears both.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::super::sel::{self, SelHandle};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// The SEL record's ID.
    pub id: u64,
    /// ISO 8601, UTC.
    pub created: String,
    pub message_id: &'static str,
    pub message: &'static str,
}

/// The entries, oldest first.
pub fn entries(sel: &SelHandle) -> Vec<Entry> {
    sel.records()
        .iter()
        .filter_map(|record| {
            let (message_id, message) = record.event()?.redfish()?;
            let at = UNIX_EPOCH + Duration::from_secs(u64::from(record.timestamp));
            Some(Entry {
                id: u64::from(record.id),
                created: iso8601(at),
                message_id,
                message,
            })
        })
        .collect()
}

/// LogService.ClearLog: erases the SEL, as IPMI's Clear SEL does.
pub fn clear(sel: &SelHandle) {
    let mut log = sel.lock();
    let reservation = log.reserve();
    // With the reservation just taken and "CLR", the erase cannot fail.
    let _ = log.clear(reservation, *b"CLR", 0xAA, sel::unix_now());
}

/// `2024-05-01T12:00:00+00:00`, as bmcweb writes times.
pub fn iso8601(time: SystemTime) -> String {
    let secs = time.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let (year, month, day, h, m, s) = crate::calendar::utc_fields(secs as i64);
    format!("{year:04}-{month:02}-{day:02}T{h:02}:{m:02}:{s:02}+00:00")
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
    fn entries_are_the_sel_records_bmcweb_has_messages_for() {
        use super::super::super::sel::Event;
        let sel = SelHandle::seeded(1_709_210_096);
        for event in [
            Event::PowerOn,
            Event::BootOnPowerUp,
            Event::OsBoot,
            Event::PowerOff,
        ] {
            sel.lock().log(event, 1_709_210_096);
        }
        sel.lock().log(Event::BootOnHardReset, 1_709_210_100);
        let got: Vec<_> = entries(&sel)
            .into_iter()
            .map(|e| (e.id, e.message_id))
            .collect();
        assert_eq!(
            got,
            [
                (3, "OpenBMC.0.1.DCPowerOn"),
                (6, "OpenBMC.0.1.DCPowerOff"),
                (7, "OpenBMC.0.1.ResetButtonPressed")
            ]
        );
        assert_eq!(entries(&sel)[0].created, "2024-02-29T12:34:56+00:00");
        clear(&sel);
        assert!(sel.records().is_empty());
    }
}
