use super::*;

const T: u32 = 1_714_564_800; // 2024-05-01T12:00:00Z

#[test]
fn records_are_ipmi_system_event_records() {
    let mut sel = Sel::default();
    assert_eq!(sel.log(Event::BootOnPowerUp, T), Some(1));
    let (next, bytes) = sel.get(0, 0, 0, 0xFF).unwrap();
    assert_eq!(next, LAST);
    let mut expected = vec![1, 0, 0x02];
    expected.extend_from_slice(&T.to_le_bytes());
    expected.extend_from_slice(&[0x20, 0x00, 0x04, 0x1D, 0x31, 0x6F, 0xA0, 0xFF, 0xFF]);
    assert_eq!(bytes, expected);
    assert_eq!(
        sel.records().next().unwrap().event(),
        Some(Event::BootOnPowerUp)
    );
    for event in ALL {
        let id = sel.log(event, T).unwrap();
        let record = sel.records().find(|r| r.id == id).unwrap();
        assert_eq!(record.event(), Some(event));
    }
}

#[test]
fn walk_by_next_id_and_partial_reads_need_the_reservation() {
    let mut sel = Sel::default();
    for event in [Event::PowerOn, Event::BootOnPowerUp, Event::OsBoot] {
        sel.log(event, T);
    }
    let (next, _) = sel.get(0, 0, 0, 0xFF).unwrap();
    assert_eq!(next, 2);
    let (next, _) = sel.get(0, 2, 0, 0xFF).unwrap();
    assert_eq!(next, 3);
    let (next, last) = sel.get(0, LAST, 0, 0xFF).unwrap();
    assert_eq!((next, last[0]), (LAST, 3));
    assert_eq!(sel.get(0, 9, 0, 0xFF), Err(SelError::NotPresent));
    // Partial: offset 0 needs no reservation; any other offset does.
    assert_eq!(sel.get(0, 1, 0, 8).unwrap().1.len(), 8);
    assert_eq!(sel.get(0, 1, 8, 8), Err(SelError::Reservation));
    let r = sel.reserve();
    assert_eq!(sel.get(r, 1, 8, 8).unwrap().1, &sel.records[0].bytes[8..]);
    assert_eq!(sel.get(r, 1, 12, 100).unwrap().1.len(), 4, "clipped");
    assert_eq!(sel.get(r, 1, 16, 1), Err(SelError::OutOfRange));
    // A new reservation cancels the old one; an added record does not.
    sel.log(Event::PowerOff, T);
    assert!(sel.get(r, 1, 8, 8).is_ok());
    let r2 = sel.reserve();
    assert_ne!(r, r2);
    assert_eq!(sel.get(r, 1, 8, 8), Err(SelError::Reservation));
    sel.cancel_reservation();
    assert_eq!(sel.get(r2, 1, 8, 8), Err(SelError::Reservation));
}

#[test]
fn clear_needs_reservation_and_clr_and_cancels_it() {
    let mut sel = Sel::default();
    sel.log(Event::PowerOn, T);
    assert_eq!(sel.clear(0, *b"CLR", 0xAA, T), Err(SelError::Reservation));
    let r = sel.reserve();
    assert_eq!(sel.clear(r, *b"CLX", 0xAA, T), Err(SelError::InvalidData));
    assert_eq!(sel.clear(r, *b"CLR", 0x55, T), Err(SelError::InvalidData));
    assert_eq!(sel.clear(r, *b"CLR", 0x00, T), Ok(1), "status only");
    assert_eq!(sel.len(), 1);
    assert_eq!(sel.clear(r, *b"CLR", 0xAA, T + 5), Ok(1));
    assert!(sel.is_empty());
    assert_eq!(sel.get(0, 0, 0, 0xFF), Err(SelError::NotPresent));
    assert_eq!(sel.clear(r, *b"CLR", 0x00, T), Err(SelError::Reservation));
    let info = sel.info();
    assert_eq!(&info[1..3], &[0, 0]);
    assert_eq!(&info[9..13], &(T + 5).to_le_bytes());
    assert_eq!(sel.log(Event::PowerOn, T), Some(1), "IDs start over");
}

#[test]
fn full_log_drops_new_records_and_flags_overflow() {
    let mut sel = Sel::default();
    for _ in 0..CAPACITY {
        assert!(sel.log(Event::PowerOn, T).is_some());
    }
    assert_eq!(sel.info()[13] & 0x80, 0);
    assert_eq!(sel.log(Event::PowerOff, T + 1), None);
    assert_eq!(sel.len(), CAPACITY);
    let info = sel.info();
    assert_eq!(info[0], 0x51);
    assert_eq!(u16::from_le_bytes([info[1], info[2]]), CAPACITY as u16);
    assert_eq!(u16::from_le_bytes([info[3], info[4]]), 0, "no free space");
    assert_eq!(info[13], 0x83);
    assert_eq!(&sel.allocation()[4..6], &[0, 0]);
    // The last record kept is the last one that fit.
    assert_eq!(sel.records().last().unwrap().event(), Some(Event::PowerOn));
}

#[test]
fn add_assigns_id_and_time() {
    let mut sel = Sel::default();
    let mut bytes = [0u8; RECORD_LEN];
    bytes[2] = 0x02;
    bytes[0] = 0x77;
    assert_eq!(sel.add(bytes, T), Some(1));
    let stored = &sel.records[0].bytes;
    assert_eq!(&stored[..7], &[1, 0, 2, 0xC0, 0x2E, 0x32, 0x66][..]);
    // OEM non-timestamped records keep their bytes.
    bytes[2] = 0xF0;
    bytes[3] = 0x99;
    sel.add(bytes, T);
    assert_eq!(sel.records[1].bytes[3], 0x99);
}

#[test]
fn chassis_changes_become_events() {
    let off = ChassisState::default();
    let on = ChassisState {
        power_on: true,
        power_on_count: 1,
        ..off
    };
    assert_eq!(
        chassis_events(&off, &on),
        [Event::PowerOn, Event::BootOnPowerUp]
    );
    let off_again = ChassisState {
        power_on: false,
        ..on
    };
    assert_eq!(chassis_events(&on, &off_again), [Event::PowerOff]);
    let cycled = ChassisState {
        power_on_count: 2,
        ..on
    };
    assert_eq!(
        chassis_events(&on, &cycled),
        [Event::PowerOff, Event::PowerOn, Event::BootOnPowerUp]
    );
    let reset = ChassisState { resets: 1, ..on };
    assert_eq!(chassis_events(&on, &reset), [Event::BootOnHardReset]);
    assert!(chassis_events(&on, &on).is_empty());
    let redfish: Vec<_> = ALL
        .iter()
        .filter_map(|e| e.redfish())
        .map(|r| r.0)
        .collect();
    assert_eq!(
        redfish,
        [
            "OpenBMC.0.1.DCPowerOn",
            "OpenBMC.0.1.DCPowerOff",
            "OpenBMC.0.1.ResetButtonPressed"
        ]
    );
}

#[test]
fn seeded_log_has_the_boot_entries() {
    let sel = SelHandle::seeded(T);
    let events: Vec<_> = sel.records().iter().map(Record::event).collect();
    assert_eq!(events, [Some(Event::LogCleared), Some(Event::BmcStarted)]);
    assert!(sel.records().iter().all(|r| r.timestamp == T));
}
