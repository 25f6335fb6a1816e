//! The BMC toolbox over IPMI (SEL, FRU, mc info, identify, cold reset)
//! against OpenIPMI's ipmi_sim, each result cross-checked with what
//! ipmitool says about the same ipmi_sim.
//!
//! What ipmi_sim (openipmi 2.0.33) does, seen here:
//! - `sel_add` records get ipmi_sim's own SEL clock as their timestamp (the
//!   13 bytes' first four are overwritten); that clock starts "pre-init"
//!   (seconds since some start) until Set SEL Time;
//! - Chassis Identify with "force on" is accepted, as is interval 0;
//! - Get System Info Parameters is "invalid command" (0xC1): no host
//!   firmware version;
//! - Cold Reset is acknowledged and ipmi_sim goes on running (no reset).

mod support;

use std::time::Duration;

use petitlab::hardware::{self, Direction, Event};
use petitlab::ipmi::{Bmc, chassis, fru, mc, sel};
use support::ipmi_sim::IpmiSim;

fn text(s: &str) -> Vec<u8> {
    let mut v = vec![0xC0 | s.len() as u8];
    v.extend_from_slice(s.as_bytes());
    v
}

fn packed(s: &str) -> Vec<u8> {
    let mut vals: Vec<u32> = s.bytes().map(|c| u32::from(c - 0x20)).collect();
    while !vals.len().is_multiple_of(4) {
        vals.push(0);
    }
    let mut out = Vec::new();
    for g in vals.chunks(4) {
        let v = g[0] | g[1] << 6 | g[2] << 12 | g[3] << 18;
        out.extend_from_slice(&[v as u8, (v >> 8) as u8, (v >> 16) as u8]);
    }
    let mut field = vec![0x80 | out.len() as u8];
    field.extend(out);
    field
}

fn area(preamble: &[u8], fields: &[Vec<u8>]) -> Vec<u8> {
    let mut body = preamble.to_vec();
    for f in fields {
        body.extend_from_slice(f);
    }
    body.push(0xC1);
    let total = (body.len() + 3).div_ceil(8) * 8;
    let mut a = vec![1, (total / 8) as u8];
    a.extend(body);
    a.resize(total - 1, 0);
    let sum = a.iter().fold(0u8, |s, b| s.wrapping_add(*b));
    a.push(sum.wrapping_neg());
    a
}

/// A 256-byte FRU 0: chassis (6-bit ASCII serial), board, product.
fn fru_image() -> Vec<u8> {
    let chassis = area(&[0x17], &[text("CPN-1"), packed("CSN42"), text("custom1")]);
    let board = area(
        &[0, 0x10, 0x20, 0x30],
        &[
            text("ACME"),
            text("Widget Board"),
            text("SN123"),
            text("PN-456"),
            text("fruid"),
            text("board extra"),
        ],
    );
    let product = area(
        &[0],
        &[
            text("ACME Corp"),
            text("Widget"),
            text("PN-789"),
            text("v1.2"),
            text("PSN999"),
            text("AT1"),
            text("fruid"),
        ],
    );
    let b = 1 + (chassis.len() / 8) as u8;
    let p = b + (board.len() / 8) as u8;
    let mut image = vec![1, 0, 1, b, p, 0, 0];
    let sum = image.iter().fold(0u8, |s, x| s.wrapping_add(*x));
    image.push(sum.wrapping_neg());
    image.extend(chassis);
    image.extend(board);
    image.extend(product);
    image.resize(256, 0);
    image
}

/// Three events: a temperature threshold, a memory ECC error, a power
/// unit deassertion.
const SEL_ADDS: &str = "\
sel_enable 0x20 1000 0x0a
mc_add_fru_data 0x20 0 256 file 0 \"{dir}/fru.bin\"
sel_add 0x20 2 0 0 0 0 0x20 0x00 0x04 0x01 0x30 0x01 0x00 0xff 0xff
sel_add 0x20 2 0 0 0 0 0x20 0x00 0x04 0x0c 0x08 0x6f 0x01 0xff 0xff
sel_add 0x20 2 0 0 0 0 0x20 0x00 0x04 0x09 0x02 0xef 0x01 0xff 0xff
";

fn start() -> IpmiSim {
    let image = fru_image();
    IpmiSim::start_with_emu(&[("fru.bin", &image)], SEL_ADDS)
}

fn bmc(sim: &IpmiSim) -> Bmc {
    Bmc::new(sim.target())
}

fn ipmitool(sim: &IpmiSim, args: &[&str]) -> String {
    let out = sim.ipmitool_env(&[("TZ", "UTC")], args);
    assert!(
        out.status.success(),
        "ipmitool {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// `ipmitool sel list` lines as (id, time, sensor, description, direction);
/// time is "Pre-Init 0000052102" or "01/02/24 10:00:00 UTC".
fn sel_list(sim: &IpmiSim) -> Vec<(String, String, String, String, String)> {
    ipmitool(sim, &["sel", "list"])
        .lines()
        .filter(|l| l.contains('|'))
        .map(|l| {
            let c: Vec<&str> = l.split('|').map(str::trim).collect();
            assert_eq!(c.len(), 6, "odd sel list line {l:?}");
            (
                c[0].to_string(),
                format!("{} {}", c[1], c[2]),
                c[3].to_string(),
                c[4].to_string(),
                c[5].to_string(),
            )
        })
        .collect()
}

fn ipmitool_time(e: &Event) -> String {
    match (&e.time, e.pre_init_seconds) {
        (None, Some(s)) => format!("Pre-Init {s:010}"),
        // "2024-01-02T10:00:00Z" → "01/02/24 10:00:00 UTC"
        (Some(t), None) => format!("{}/{}/{} {} UTC", &t[5..7], &t[8..10], &t[2..4], &t[11..19]),
        other => panic!("event without a time: {other:?}"),
    }
}

#[tokio::test]
async fn sel_entries_match_what_was_added_and_ipmitool_sel_list() {
    let sim = start();
    let mut bmc = bmc(&sim);
    let records = sel::sel_entries(&mut bmc).await.expect("read the SEL");
    assert_eq!(records.len(), 3, "{records:?}");
    let events: Vec<Event> = records.iter().map(Event::from_sel).collect();

    let ids: Vec<Option<u16>> = events.iter().map(|e| e.record_id).collect();
    assert_eq!(ids, [Some(1), Some(2), Some(3)]);
    let what: Vec<(&str, Option<u8>, Option<Direction>, &str)> = events
        .iter()
        .map(|e| {
            (
                e.sensor_type.as_deref().unwrap(),
                e.sensor_number,
                e.direction,
                e.message.as_str(),
            )
        })
        .collect();
    assert_eq!(
        what,
        [
            (
                "Temperature",
                Some(0x30),
                Some(Direction::Asserted),
                "Lower Non-critical going low"
            ),
            (
                "Memory",
                Some(0x08),
                Some(Direction::Asserted),
                "Uncorrectable ECC"
            ),
            (
                "Power Unit",
                Some(0x02),
                Some(Direction::Deasserted),
                "Power cycle"
            ),
        ]
    );
    assert!(
        events.iter().all(|e| e.pre_init_seconds.is_some()),
        "ipmi_sim's SEL clock starts unset: {events:?}"
    );

    let listed = sel_list(&sim);
    assert_eq!(listed.len(), events.len(), "{listed:?}");
    for (e, (id, time, sensor, desc, dir)) in events.iter().zip(&listed) {
        assert_eq!(&e.id, id);
        assert_eq!(&ipmitool_time(e), time, "{e:?}");
        assert_eq!(
            sensor,
            &format!(
                "{} #0x{:02x}",
                match e.sensor_type.as_deref() {
                    // ipmitool's own short name.
                    Some("Power Unit") => "Power Unit",
                    other => other.unwrap(),
                },
                e.sensor_number.unwrap()
            )
        );
        assert_eq!(desc, &e.message);
        let want = match e.direction {
            Some(Direction::Asserted) => "Asserted",
            Some(Direction::Deasserted) => "Deasserted",
            None => "",
        };
        assert_eq!(dir, want);
    }
    bmc.close().await;
}

#[tokio::test]
async fn a_set_sel_clock_gives_utc_times_that_ipmitool_agrees_with() {
    let sim = start();
    // Set SEL Time to 2024-01-02 10:00:00 UTC, then add a firmware
    // progress event ("System boot initiated") through IPMI.
    ipmitool(
        &sim,
        &["raw", "0x0a", "0x49", "0xa0", "0xde", "0x93", "0x65"],
    );
    ipmitool(
        &sim,
        &[
            "raw", "0x0a", "0x44", "0", "0", "2", "0", "0", "0", "0", "0x20", "0", "4", "0x0f",
            "0x05", "0x6f", "0xc2", "0x13", "0xff",
        ],
    );
    let mut bmc = hardware::Bmc::new(hardware::Target::Ipmi(sim.target()));
    let events = bmc.events().await.expect("events");
    let last = events.last().unwrap();
    assert_eq!(last.record_id, Some(4));
    assert_eq!(last.message, "System boot initiated");
    let time = last.time.as_deref().expect("a UTC time");
    assert!(
        time.starts_with("2024-01-02T10:00:"),
        "the SEL clock was set to 2024-01-02 10:00:00: {time}"
    );
    let listed = sel_list(&sim);
    let (id, t, _, desc, _) = listed.last().unwrap();
    assert_eq!((id.as_str(), desc.as_str()), ("4", "System boot initiated"));
    assert_eq!(t, &ipmitool_time(last));
    bmc.close().await;
}

#[tokio::test]
async fn clear_empties_the_sel_and_ipmitool_agrees() {
    let sim = start();
    let mut bmc = hardware::Bmc::new(hardware::Target::Ipmi(sim.target()));
    assert_eq!(bmc.events().await.unwrap().len(), 3);
    bmc.clear_events().await.expect("clear");
    assert_eq!(bmc.events().await.unwrap(), []);
    // ipmitool says so on stderr, and lists nothing on stdout.
    let out = sim.ipmitool_env(&[], &["sel", "list"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        !stdout.contains('|'),
        "ipmitool still lists entries: {stdout}"
    );
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("SEL has no entries"),
        "{out:?}"
    );
    bmc.close().await;
}

/// `ipmitool fru print 0` as (name, value) pairs, values trimmed.
fn fru_print(sim: &IpmiSim) -> Vec<(String, String)> {
    ipmitool(sim, &["fru", "print", "0"])
        .lines()
        .filter_map(|l| l.split_once(" : "))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect()
}

#[tokio::test]
async fn inventory_equals_ipmitool_fru_print() {
    let sim = start();
    let mut bmc = hardware::Bmc::new(hardware::Target::Ipmi(sim.target()));
    let inv = bmc.inventory().await.expect("inventory");
    assert!(inv.problems.is_empty(), "{:?}", inv.problems);
    let ours: Vec<(String, String)> = inv
        .chassis
        .iter()
        .chain(&inv.board)
        .chain(&inv.product)
        .map(|f| (f.name.clone(), f.value.clone()))
        .collect();
    assert_eq!(ours, fru_print(&sim));
    assert_eq!(inv.get("Board Mfg"), Some("ACME"));
    assert_eq!(inv.get("Chassis Serial"), Some("CSN42"));
    assert_eq!(inv.get("Product Serial"), Some("PSN999"));
    bmc.close().await;
}

#[tokio::test]
async fn fru_read_in_chunks_gives_back_the_image() {
    let sim = start();
    let mut bmc = bmc(&sim);
    let info = fru::area_info(&mut bmc, 0).await.unwrap();
    assert_eq!(info.size, 256);
    let image = fru::read_range(&mut bmc, 0, info, 0, info.size)
        .await
        .unwrap();
    assert_eq!(image, fru_image());
    // A device that does not exist is a completion code, named.
    let err = fru::read_inventory(&mut bmc, 7).await.unwrap_err();
    assert!(
        matches!(err, petitlab::ipmi::IpmiError::Completion { .. }),
        "{err}"
    );
    bmc.close().await;
}

/// `ipmitool mc info` as (name, value) pairs.
fn mc_info(sim: &IpmiSim) -> Vec<(String, String)> {
    ipmitool(sim, &["mc", "info"])
        .lines()
        .filter_map(|l| l.split_once(" : "))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect()
}

#[tokio::test]
async fn firmware_equals_ipmitool_mc_info() {
    let sim = start();
    let mut bmc = hardware::Bmc::new(hardware::Target::Ipmi(sim.target()));
    let fw = bmc.firmware().await.expect("firmware");
    let info = mc_info(&sim);
    let get = |k: &str| {
        info.iter()
            .find(|(n, _)| n == k)
            .map(|(_, v)| v.clone())
            .unwrap_or_else(|| panic!("no {k} in mc info: {info:?}"))
    };
    assert_eq!(fw.bmc.as_deref(), Some(get("Firmware Revision").as_str()));
    assert_eq!(
        fw.manufacturer_id.map(|m| m.to_string()),
        Some(get("Manufacturer ID"))
    );
    assert_eq!(
        fw.manufacturer.as_deref(),
        Some(get("Manufacturer Name").as_str())
    );
    assert_eq!(
        fw.product_id.map(|p| format!("{p} (0x{p:04x})")),
        Some(get("Product ID"))
    );
    assert_eq!(
        fw.ipmi_version.as_deref(),
        Some(get("IPMI Version").as_str())
    );
    // ipmi_sim has no System Info Parameters: "not reported", no error.
    assert_eq!(fw.host, None);
    bmc.close().await;
}

#[tokio::test]
async fn identify_on_and_off() {
    let sim = start();
    let mut bmc = bmc(&sim);
    assert_eq!(
        chassis::identify(&mut bmc, true)
            .await
            .expect("identify on"),
        chassis::IdentifyMode::Forced
    );
    assert_eq!(
        chassis::identify(&mut bmc, false)
            .await
            .expect("identify off"),
        chassis::IdentifyMode::Off
    );
    bmc.close().await;
    let mut bmc = hardware::Bmc::new(hardware::Target::Ipmi(sim.target()));
    let set = bmc.identify(true).await.unwrap();
    assert_eq!((set.on, set.how.as_str()), (true, "forced on"));
    bmc.close().await;
}

/// ipmi_sim has no Cold Reset: it answers "invalid command", which
/// petitlab reports as such. (`ipmitool mc reset cold` prints "Sent cold
/// reset command to MC" because it does not wait for the answer; `ipmitool
/// raw 0x06 0x02` shows the 0xC1.)
#[tokio::test]
async fn cold_reset_on_ipmi_sim_is_reported_as_unsupported() {
    let sim = start();
    let raw = sim.ipmitool_env(&[], &["raw", "0x06", "0x02"]);
    assert!(
        String::from_utf8_lossy(&raw.stderr).contains("rsp=0xc1"),
        "ipmitool raw Cold Reset: {raw:?}"
    );
    let mut bmc = hardware::Bmc::new(hardware::Target::Ipmi(sim.target()));
    let err = bmc.bmc_reset().await.unwrap_err();
    assert_eq!(
        err.to_string(),
        "Cold Reset failed: invalid or unsupported command (completion code 0xC1)"
    );
    assert_eq!(err.kind(), "completion");
    // The session is still good.
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(bmc.firmware().await.unwrap().bmc.as_deref(), Some("9.08"));
    bmc.close().await;
}

#[tokio::test]
async fn device_id_directly() {
    let sim = start();
    let mut bmc = bmc(&sim);
    let id = mc::device_id(&mut bmc).await.unwrap();
    assert_eq!((id.firmware.as_str(), id.product_id), ("9.08", 0x0f02));
    assert_eq!(mc::system_firmware_version(&mut bmc).await.unwrap(), None);
    bmc.close().await;
}
