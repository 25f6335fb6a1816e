use super::*;

/// The record ipmi_sim returned for `sel_add 0x20 2 … 0x01 0x30 0x01 0x00
/// 0xff 0xff` (read with `ipmitool raw 0x0a 0x43 0 0 1 0 0 0xff`).
const IPMI_SIM_THRESHOLD: [u8; 18] = [
    0x02, 0x00, 0x01, 0x00, 0x02, 0x86, 0xcb, 0x00, 0x00, 0x20, 0x00, 0x04, 0x01, 0x30, 0x01, 0x00,
    0xff, 0xff,
];

fn system(sensor_type: u8, event_type: u8, data: [u8; 3]) -> SystemEvent {
    SystemEvent {
        time: SelTime::Utc(1_700_000_000),
        generator_id: 0x20,
        evm_revision: 4,
        sensor_type,
        sensor_number: 1,
        event_type,
        asserted: true,
        event_data: data,
    }
}

#[test]
fn a_captured_threshold_record_decodes_as_ipmitool_shows_it() {
    let (next, r) = parse_entry_response(&IPMI_SIM_THRESHOLD).unwrap();
    assert_eq!(next, 2);
    assert_eq!((r.record_id, r.record_type), (1, 2));
    let SelBody::System(e) = &r.body else {
        panic!("{r:?}")
    };
    // ipmitool: "Pre-Init |0000052102| Temperature #0x30 | Lower
    // Non-critical going low | Asserted"
    assert_eq!(e.time, SelTime::PreInit(52102));
    assert_eq!(e.sensor_type_name(), "Temperature");
    assert_eq!(e.sensor_number, 0x30);
    assert!(e.asserted);
    assert_eq!(e.description(), "Lower Non-critical going low");
    assert_eq!(e.generator_id, 0x20);
}

#[test]
fn direction_and_sensor_specific_offsets() {
    let e = system(0x0C, 0x6F, [0x01, 0xFF, 0xFF]);
    assert_eq!(e.description(), "Uncorrectable ECC");
    let mut raw = [0u8; 16];
    raw[2] = 0x02;
    raw[10] = 0x09;
    raw[12] = 0x80 | 0x6F; // deassertion
    raw[13] = 0x01;
    let r = SelRecord::parse(&raw).unwrap();
    let SelBody::System(p) = r.body else { panic!() };
    assert!(!p.asserted);
    assert_eq!(p.event_type, 0x6F);
    assert_eq!(p.description(), "Power cycle");
    assert_eq!(p.sensor_type_name(), "Power Unit");

    assert_eq!(
        system(0x12, 0x6F, [0x05, 0, 0]).description(),
        "Timestamp Clock Sync"
    );
    assert_eq!(
        system(0x1F, 0x6F, [0x02, 0, 0]).description(),
        "PXE boot completed"
    );
    assert_eq!(system(0x07, 0x6F, [0x00, 0, 0]).description(), "IERR");
    assert_eq!(system(0x23, 0x6F, [0x01, 0, 0]).description(), "Hard reset");
    assert_eq!(
        system(0x14, 0x6F, [0x00, 0, 0]).description(),
        "Power Button pressed"
    );
    assert_eq!(
        system(0x23, 0x6F, [0, 0, 0]).sensor_type_name(),
        "Watchdog 2"
    );
}

#[test]
fn firmware_progress_reads_event_data_2_when_flagged() {
    // Data 1 bits 7:6 = 11: data 2 carries the progress code.
    assert_eq!(
        system(0x0F, 0x6F, [0xC2, 0x13, 0xFF]).description(),
        "System boot initiated"
    );
    assert_eq!(
        system(0x0F, 0x6F, [0xC0, 0x01, 0xFF]).description(),
        "No system memory installed"
    );
    assert_eq!(
        system(0x0F, 0x6F, [0xC2, 0xEE, 0xFF]).description(),
        "Unknown Progress"
    );
    assert_eq!(
        system(0x0F, 0x6F, [0x02, 0x13, 0xFF]).description(),
        "System Firmware Progress"
    );
}

#[test]
fn unknown_offsets_and_oem_types_are_named_not_invented() {
    assert_eq!(
        system(0x0C, 0x6F, [0x0F, 0, 0]).description(),
        "Unknown event offset 0xF"
    );
    assert_eq!(
        system(0x01, 0x01, [0x0C, 0, 0]).description(),
        "Unknown event offset 0xC"
    );
    assert_eq!(
        system(0xC5, 0x70, [0x03, 0, 0]).description(),
        "OEM event type 0x70 offset 0x3"
    );
    assert_eq!(
        system(0xC5, 0x70, [0, 0, 0]).sensor_type_name(),
        "OEM (0xC5)"
    );
}

#[test]
fn oem_records_are_kept_raw() {
    let mut raw: Vec<u8> = (0..16).collect();
    raw[0] = 0x34;
    raw[1] = 0x12;
    raw[2] = 0xC1;
    let r = SelRecord::parse(&raw).unwrap();
    assert_eq!(r.record_id, 0x1234);
    match &r.body {
        SelBody::OemTimestamped {
            manufacturer_id,
            data,
            time,
        } => {
            assert_eq!(*manufacturer_id, 0x09_0807);
            assert_eq!(data, &[10, 11, 12, 13, 14, 15]);
            assert_eq!(*time, SelTime::PreInit(0x0605_0403));
        }
        other => panic!("{other:?}"),
    }
    raw[2] = 0xE0;
    let r = SelRecord::parse(&raw).unwrap();
    assert_eq!(r.time(), None);
    assert_eq!(r.description(), "OEM record e0: 030405060708090a0b0c0d0e0f");
}

#[test]
fn timestamps_split_at_the_pre_init_limit() {
    assert_eq!(
        SelTime::from_raw(0x2000_0000),
        SelTime::PreInit(0x2000_0000)
    );
    assert_eq!(
        SelTime::from_raw(1_704_189_600).label(),
        "2024-01-02T10:00:00Z"
    );
    assert_eq!(SelTime::from_raw(5).label(), "pre-init +5s");
    assert_eq!(
        serde_json::to_value(SelTime::Utc(1)).unwrap(),
        serde_json::json!({"kind": "utc", "seconds": 1})
    );
}

#[test]
fn short_or_hostile_responses_are_errors_not_panics() {
    assert!(parse_entry_response(&IPMI_SIM_THRESHOLD[..17]).is_err());
    assert!(parse_entry_response(&[]).is_err());
    assert!(SelRecord::parse(&[0; 15]).is_none());
    assert!(SelInfo::parse(&[0x51, 0, 0]).is_none());
    let info = SelInfo::parse(&[
        0x51, 0x02, 0x00, 0x60, 0x3e, 0x8f, 0xcb, 0, 0, 0x97, 0xcb, 0, 0, 0x8a,
    ])
    .unwrap();
    assert_eq!(
        (info.entries, info.free_bytes, info.overflow),
        (2, 0x3e60, true)
    );
    // Longer than 16 bytes (extra trailing data) is fine: the rest is ignored.
    let mut long = IPMI_SIM_THRESHOLD.to_vec();
    long.extend_from_slice(&[0xAA; 40]);
    assert_eq!(parse_entry_response(&long).unwrap().1.record_id, 1);
}

fn response(id: u16, next: u16) -> Vec<u8> {
    let mut d = next.to_le_bytes().to_vec();
    d.extend_from_slice(&id.to_le_bytes());
    d.push(0x02);
    d.extend_from_slice(&[0; 13]);
    d
}

#[test]
fn the_walk_ends_at_ffff_on_a_loop_and_at_the_bound() {
    let mut w = SelWalk::new();
    assert_eq!(w.next_id(), Some(0));
    w.feed(&response(1, 2)).unwrap();
    assert_eq!(w.next_id(), Some(2));
    w.feed(&response(2, 0xFFFF)).unwrap();
    assert_eq!(w.next_id(), None);
    assert_eq!(w.finish().len(), 2);

    // A BMC whose next ID points back at an earlier record.
    let mut w = SelWalk::new();
    w.feed(&response(1, 2)).unwrap();
    w.feed(&response(2, 1)).unwrap();
    assert_eq!(w.next_id(), None);
    assert_eq!(w.finish().len(), 2);

    // One that never ends.
    let mut w = SelWalk::new();
    let mut n = 0u16;
    while let Some(id) = w.next_id() {
        n += 1;
        w.feed(&response(id, n)).unwrap();
    }
    assert_eq!(w.finish().len(), MAX_SEL_ENTRIES);
}

#[test]
fn clear_requests_spell_clr() {
    assert_eq!(
        clear_request([0x12, 0x34], true),
        [0x12, 0x34, b'C', b'L', b'R', 0xAA]
    );
    assert_eq!(clear_request([1, 0], false)[5], 0x00);
    assert_eq!(erase_done(&[0x01]), Some(true));
    assert_eq!(erase_done(&[0x00]), Some(false));
    assert_eq!(erase_done(&[]), None);
}
