use super::*;
use crate::calendar::days_from_civil;

/// Real dnsmasq 2.90 `--log-dhcp --log-facility=FILE` output for one
/// exchange with busybox udhcpc (`-O 209 -O 210`), captured in a network
/// namespace: hostsdir `52:54:00:aa:bb:01,set:pl-n1`, optsdir
/// `tag:pl-n1,209,"http://10.9.0.1:8080/n1/config"` and
/// `tag:pl-n1,210,"http://10.9.0.1:8080/"`.
const SAMPLE: &str = "\
Dec  5 13:48:08 dnsmasq-dhcp[6019]: 2589585939 DHCPDISCOVER(dqs0) 52:54:00:aa:bb:01 
Dec  5 13:48:08 dnsmasq-dhcp[6019]: 2589585939 tags: pl-n1, known, dqs0
Dec  5 13:48:08 dnsmasq-dhcp[6019]: 2589585939 DHCPOFFER(dqs0) 10.9.0.98 52:54:00:aa:bb:01 
Dec  5 13:48:08 dnsmasq-dhcp[6019]: 2589585939 requested options: 1:netmask, 3:router, 6:dns-server, 12:hostname, 
Dec  5 13:48:08 dnsmasq-dhcp[6019]: 2589585939 requested options: 209, 210
Dec  5 13:48:08 dnsmasq-dhcp[6019]: 2589585939 next server: 10.9.0.1
Dec  5 13:48:08 dnsmasq-dhcp[6019]: 2589585939 sent size:  1 option: 53 message-type  2
Dec  5 13:48:08 dnsmasq-dhcp[6019]: 2589585939 sent size:  4 option: 54 server-identifier  10.9.0.1
Dec  5 13:48:08 dnsmasq-dhcp[6019]: 2589585939 sent size:  4 option:  1 netmask  255.255.255.0
Dec  5 13:48:08 dnsmasq-dhcp[6019]: 2589585939 sent size: 21 option:210   68:74:74:70:3a:2f:2f:31:30:2e:39:2e:30:2e...
Dec  5 13:48:08 dnsmasq-dhcp[6019]: 2589585939 sent size: 30 option:209   68:74:74:70:3a:2f:2f:31:30:2e:39:2e:30:2e...
Dec  5 13:48:08 dnsmasq-dhcp[6019]: 2589585939 DHCPREQUEST(dqs0) 10.9.0.98 52:54:00:aa:bb:01 
Dec  5 13:48:08 dnsmasq-dhcp[6019]: 2589585939 tags: pl-n1, known, dqs0
Dec  5 13:48:08 dnsmasq-dhcp[6019]: 2589585939 DHCPACK(dqs0) 10.9.0.98 52:54:00:aa:bb:01 
Dec  5 13:48:08 dnsmasq-dhcp[6019]: 2589585939 requested options: 209, 210
Dec  5 13:48:08 dnsmasq-dhcp[6019]: 2589585939 sent size:  1 option: 53 message-type  5
Dec  5 13:48:08 dnsmasq-dhcp[6019]: 2589585939 sent size: 21 option:210   68:74:74:70:3a:2f:2f:31:30:2e:39:2e:30:2e...
Dec  5 13:48:08 dnsmasq-dhcp[6019]: 2589585939 sent size: 30 option:209   68:74:74:70:3a:2f:2f:31:30:2e:39:2e:30:2e...
";

fn dec_5_13_48_08() -> i64 {
    days_from_civil(2024, 12, 5) * 86_400 + 13 * 3600 + 48 * 60 + 8
}

#[test]
fn an_exchange_renders_exactly_as_dnsmasq_logs_it() {
    let tags = vec!["pl-n1".to_string()];
    let sent = vec![
        (210, "http://10.9.0.1:8080/".to_string()),
        (209, "http://10.9.0.1:8080/n1/config".to_string()),
    ];
    let x = Exchange {
        xid: 2_589_585_939,
        interface: "dqs0",
        mac: "52:54:00:AA:BB:01".parse().unwrap(),
        ip: "10.9.0.98".parse().unwrap(),
        server: "10.9.0.1".parse().unwrap(),
        tags: &tags,
        known: true,
        sent: &sent,
    };
    let text = render(dec_5_13_48_08(), 6019, &exchange(&x));
    for (got, want) in text.lines().zip(SAMPLE.lines()) {
        assert_eq!(got, want);
    }
    assert_eq!(text, SAMPLE);
}

#[test]
fn an_ack_without_options_has_no_sent_209_and_an_untagged_tags_line() {
    let x = Exchange {
        xid: 7,
        interface: "sim0",
        mac: "52:54:00:00:00:01".parse().unwrap(),
        ip: Ipv4Addr::new(10, 77, 0, 10),
        server: Ipv4Addr::new(10, 77, 0, 1),
        tags: &[],
        known: true,
        sent: &[],
    };
    let lines = exchange(&x);
    assert_eq!(lines.len(), 14, "{lines:#?}");
    assert!(lines.iter().all(|l| !l.contains("option:209")));
    assert_eq!(lines[1], "7 tags: known, sim0");
    assert_eq!(lines[13], "7 sent size:  1 option: 53 message-type  5");
}

#[test]
fn hex_is_cut_after_14_bytes() {
    assert_eq!(hex(b""), "");
    assert_eq!(hex(b"ab"), "61:62");
    assert_eq!(hex(&[0xff; 14]), ["ff"; 14].join(":"));
    assert_eq!(hex(&[0; 15]), format!("{}...", ["00"; 14].join(":")));
    assert_eq!(
        sent_line(1, 210, b"tftp://x/"),
        "1 sent size:  9 option:210   74:66:74:70:3a:2f:2f:78:2f"
    );
}

#[test]
fn dates_pad_the_day_like_strftime_e() {
    let jan_31 = days_from_civil(2025, 1, 31) * 86_400 + 59;
    assert_eq!(prefix(jan_31, 1), "Jan 31 00:00:59 dnsmasq-dhcp[1]: ");
    assert_eq!(
        prefix(dec_5_13_48_08(), 6019),
        "Dec  5 13:48:08 dnsmasq-dhcp[6019]: "
    );
}

#[test]
fn node_addresses_come_from_lab_toml_or_the_index() {
    let path = PathBuf::from("/x");
    let set = DhcpLog::new(path.clone(), 3, Some(Ipv4Addr::new(192, 168, 5, 1)));
    assert_eq!(set.ip, Ipv4Addr::new(192, 168, 5, 1));
    assert_eq!(set.server(), Ipv4Addr::new(192, 168, 5, 254));
    let derived = DhcpLog::new(path, 0, None);
    assert_eq!(derived.ip, Ipv4Addr::new(10, 77, 0, 10));
    assert_eq!(derived.server(), Ipv4Addr::new(10, 77, 0, 1));
    assert_eq!(derived_ip(199), Ipv4Addr::new(10, 77, 0, 209));
    assert_eq!(derived_ip(200), Ipv4Addr::new(10, 77, 1, 10));
}

#[tokio::test]
async fn appends_keep_what_was_there_and_a_bad_path_is_only_logged() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("dnsmasq.log");
    std::fs::write(&log, "old\n").unwrap();
    append(&log, "a\nb\n".into()).await;
    append(&log, "c\n".into()).await;
    assert_eq!(std::fs::read_to_string(&log).unwrap(), "old\na\nb\nc\n");
    append(&dir.path().join("missing/dir/log"), "x\n".into()).await;
}
