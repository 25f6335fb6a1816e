use super::*;

/// Real dnsmasq 2.90 output (`--log-dhcp --log-facility=FILE`, busybox
/// udhcpc asking for 209 and 210).
const SAMPLE: &str = include_str!("testdata/dnsmasq_2.90_log_dhcp.log");

fn feed(parser: &mut Parser, text: &str) -> Vec<DhcpMessage> {
    let mut out = Vec::new();
    for line in text.lines() {
        out.extend(parser.line(line));
    }
    out.extend(parser.flush());
    out
}

#[test]
fn the_sample_exchange_gives_discover_offer_request_ack_with_their_options() {
    let messages = feed(&mut Parser::new(), SAMPLE);
    let kinds: Vec<&str> = messages.iter().map(|m| m.message.as_str()).collect();
    assert_eq!(kinds, ["DISCOVER", "OFFER", "REQUEST", "ACK"]);
    for m in &messages {
        assert_eq!(m.mac, "52:54:00:aa:bb:01");
        assert_eq!(m.interface, "dqs0");
        assert_eq!(m.note, None);
    }
    assert_eq!(messages[0].ip, None);
    assert_eq!(messages[1].ip.as_deref(), Some("10.9.0.98"));
    assert_eq!(messages[3].ip.as_deref(), Some("10.9.0.98"));
    assert!(messages[0].sent.is_empty() && messages[2].sent.is_empty());

    let offer = &messages[1];
    let codes: Vec<u16> = offer.sent.iter().map(|o| o.code).collect();
    assert_eq!(codes, [53, 54, 1, 210, 209]);
    assert_eq!(
        offer.option(54),
        Some(&SentOption {
            code: 54,
            size: 4,
            value: "10.9.0.1".into(),
            truncated: false
        })
    );
    assert_eq!(offer.option(1).unwrap().value, "255.255.255.0");
    assert_eq!(offer.option(53).unwrap().value, "2");

    let ack = &messages[3];
    assert_eq!(ack.option(53).unwrap().value, "5");
    assert_eq!(
        ack.option(209),
        Some(&SentOption {
            code: 209,
            size: 30,
            value: "http://10.9.0.".into(),
            truncated: true
        })
    );
    let o210 = ack.option(210).unwrap();
    assert_eq!(
        (o210.size, o210.value.as_str(), o210.truncated),
        (21, "http://10.9.0.", true)
    );
}

#[test]
fn a_reply_is_held_until_its_transaction_moves_on_or_the_batch_ends() {
    let mut p = Parser::new();
    let offer = "Dec  5 13:48:08 dnsmasq-dhcp[6019]: 7 DHCPOFFER(eth0) 10.0.0.5 52:54:00:00:00:01 ";
    assert!(p.line(offer).is_empty(), "the OFFER waits for its options");
    assert!(
        p.line("Dec  5 13:48:08 dnsmasq-dhcp[6019]: 7 sent size:  1 option: 53 message-type  2")
            .is_empty()
    );
    // Another transaction does not close this one.
    let other = p.line("dnsmasq-dhcp[6019]: 8 DHCPDISCOVER(eth0) 52:54:00:00:00:02 ");
    assert_eq!(other.len(), 1);
    assert_eq!(other[0].message, "DISCOVER");
    // The next message of the same transaction does.
    let done = p.line("dnsmasq-dhcp[6019]: 7 DHCPREQUEST(eth0) 10.0.0.5 52:54:00:00:00:01 ");
    assert_eq!(done.len(), 2);
    assert_eq!((done[0].message.as_str(), done[0].sent.len()), ("OFFER", 1));
    assert_eq!(done[1].message, "REQUEST");
    assert!(p.flush().is_empty());
}

#[test]
fn the_shapes_in_dnsmasqs_source() {
    let one = |line: &str| {
        let mut p = Parser::new();
        let mut out = p.line(line);
        out.extend(p.flush());
        assert_eq!(out.len(), 1, "{line:?} gave {out:?}");
        out.remove(0)
    };
    // No address available: the error follows the MAC.
    let m = one("dnsmasq-dhcp[1]: 42 DHCPDISCOVER(eth0) 52:54:00:AA:BB:01 no address available");
    assert_eq!(m.message, "DISCOVER");
    assert_eq!(m.mac, "52:54:00:aa:bb:01");
    assert_eq!(m.note.as_deref(), Some("no address available"));
    let m = one("dnsmasq-dhcp[1]: 42 DHCPDISCOVER(eth0) 52:54:00:aa:bb:01 ignored");
    assert_eq!(m.note.as_deref(), Some("ignored"));
    // A DISCOVER naming the address the client asks for.
    let m = one("dnsmasq-dhcp[1]: 42 DHCPDISCOVER(eth0) 10.0.0.9 52:54:00:aa:bb:01 ");
    assert_eq!((m.ip.as_deref(), m.note), (Some("10.0.0.9"), None));
    let m = one("dnsmasq-dhcp[1]: 42 DHCPNAK(eth0) 10.0.0.9 52:54:00:aa:bb:01 wrong address");
    assert_eq!(
        (m.message.as_str(), m.note.as_deref()),
        ("NAK", Some("wrong address"))
    );
    let m = one("dnsmasq-dhcp[1]: 42 DHCPACK(br0) 10.0.0.9 52:54:00:aa:bb:01 node1");
    assert_eq!(
        (m.interface.as_str(), m.note.as_deref()),
        ("br0", Some("node1"))
    );
    let m = one("dnsmasq-dhcp[1]: 42 DHCPRELEASE(eth0) 10.0.0.9 52:54:00:aa:bb:01 unknown lease");
    assert_eq!(m.message, "RELEASE");
    let m = one("dnsmasq-dhcp[1]: 42 DHCPDECLINE(eth0) 10.0.0.9 52:54:00:aa:bb:01 ");
    assert_eq!(m.message, "DECLINE");
    let m = one("dnsmasq-dhcp[1]: 42 DHCPINFORM(eth0) 10.0.0.9 52:54:00:aa:bb:01 ");
    assert_eq!(m.message, "INFORM");
    let m = one("dnsmasq-dhcp[1]: 42 BOOTP(eth0) 10.0.0.9 52:54:00:aa:bb:01 node1");
    assert_eq!(m.message, "BOOTP");
    // Without --log-dhcp: no transaction id, on stderr without a pid.
    let m = one("dnsmasq-dhcp: DHCPACK(eth0) 10.0.0.9 52:54:00:aa:bb:01 node1");
    assert_eq!(
        (m.message.as_str(), m.ip.as_deref()),
        ("ACK", Some("10.0.0.9"))
    );
    let m = one("Jan 15 01:02:03 dnsmasq-dhcp[77]: DHCPOFFER(eth0) 10.0.0.9 52:54:00:aa:bb:01 ");
    assert_eq!(m.message, "OFFER");
    // A client without a hardware address.
    let m = one("dnsmasq-dhcp[1]: 42 DHCPDISCOVER(eth0) <null> no unique-id");
    assert_eq!(
        (m.mac.as_str(), m.note.as_deref()),
        ("<null>", Some("no unique-id"))
    );
}

#[test]
fn sent_options_in_their_printed_forms() {
    let opt = |s: &str| sent_option(s).unwrap_or_else(|| panic!("{s:?}"));
    // 2.90: an option with no name, whole (under 14 bytes).
    let o = opt(" 5 option:200   68:65:6c:6c:6f");
    assert_eq!(
        (o.code, o.size, o.value.as_str(), o.truncated),
        (200, 5, "hello", false)
    );
    // Non-printable bytes are dropped from the decoded value.
    let o = opt(" 3 option:201   41:00:42");
    assert_eq!(o.value, "AB");
    // Named and decoded: kept as printed.
    let o = opt("  4 option:  3 router  10.9.0.1");
    assert_eq!((o.code, o.value.as_str()), (3, "10.9.0.1"));
    let o = opt("  4 option: 51 lease-time  1h");
    assert_eq!(o.value, "1h");
    let o = opt("  5 option: 12 hostname  de:ad");
    assert_eq!((o.value.as_str(), o.truncated), ("de:ad", false));
    // Named but not decoded (printed as hex, cut): kept, marked cut.
    let o = opt(" 20 option: 43 vendor-encap  01:04:00:00:00:00:ff:00:00:00:00:00:00:00...");
    assert!(o.truncated);
    assert!(o.value.starts_with("01:04"));
    // An empty option.
    let o = opt("  0 option: 80 rapid-commit  ");
    assert_eq!((o.size, o.value.as_str()), (0, ""));
    let o = opt("  0 option:210   ");
    assert_eq!((o.code, o.value.as_str()), (210, ""));
    // Older dnsmasq: ':' before the name.
    let o = opt("  4 option: 54:server-identifier  10.9.0.1");
    assert_eq!((o.code, o.value.as_str()), (54, "10.9.0.1"));
    assert!(sent_option(" x option: 1 netmask  255.255.255.0").is_none());
    assert!(sent_option("  4 option:99999999 netmask  1").is_none());
}

#[test]
fn options_of_an_unknown_or_finished_transaction_are_dropped() {
    let mut p = Parser::new();
    assert!(
        p.line("dnsmasq-dhcp[1]: 9 sent size:  1 option: 53 message-type  5")
            .is_empty()
    );
    p.line("dnsmasq-dhcp[1]: 9 DHCPACK(eth0) 10.0.0.9 52:54:00:aa:bb:01 ");
    let ack = p.flush();
    assert_eq!((ack.len(), ack[0].sent.len()), (1, 0));
    p.line("dnsmasq-dhcp[1]: 9 sent size:  1 option: 53 message-type  5");
    assert!(p.flush().is_empty());
}

#[test]
fn lines_that_are_not_dnsmasqs_are_ignored() {
    let mut p = Parser::new();
    for line in [
        "",
        "dnsmasq-dhcp",
        "dnsmasq[5]: query[A] example.com from 127.0.0.1",
        "dnsmasq-tftp[5]: sent /srv/tftp/pxelinux.0 to 10.0.0.9",
        "Dec  5 13:48:03 dnsmasq-dhcp[6019]: read /tmp/dq/hosts/n1",
        "Dec  5 13:48:05 dnsmasq-dhcp[6019]: 2589585939 vendor class: udhcp 1.35.0",
        "dnsmasq-dhcp[x]: 1 DHCPACK(eth0) 10.0.0.9 52:54:00:aa:bb:01 ",
        "dnsmasq-dhcp[1]: 1 DHCPSOLICIT(eth0) 52:54:00:aa:bb:01 ",
        "dnsmasq-dhcp[1]: 1 DHCPACK(eth0) 10.0.0.9 not-a-mac ",
        "dnsmasq-dhcp[1]: 1 DHCPACK eth0 10.0.0.9 52:54:00:aa:bb:01 ",
        "dnsmasq-dhcp[1]: 99999999999 DHCPACK(eth0) 10.0.0.9 52:54:00:aa:bb:01 ",
        // Client text quoting a message line is not one.
        "Dec  5 13:48:05 dnsmasq-dhcp[6019]: 1 vendor class: x dnsmasq-dhcp[1]: 2 DHCPACK(e) 1.2.3.4 aa:bb:cc:dd:ee:ff",
        "a long prefix that is not a time stamp at all, not one bit of it dnsmasq-dhcp[1]: 1 DHCPACK(eth0) 10.0.0.9 52:54:00:aa:bb:01 ",
    ] {
        assert!(p.line(line).is_empty(), "{line:?}");
    }
    assert!(p.flush().is_empty());
}

#[test]
fn open_transactions_are_bounded_by_completing_the_oldest() {
    let mut p = Parser::new();
    let mut early = Vec::new();
    for xid in 0..(MAX_OPEN as u32 + 10) {
        early.extend(p.line(&format!(
            "dnsmasq-dhcp[1]: {xid} DHCPOFFER(eth0) 10.0.0.9 52:54:00:aa:bb:01 "
        )));
    }
    assert_eq!(early.len(), 10);
    assert_eq!(p.open.len(), MAX_OPEN);
    assert_eq!(p.flush().len(), MAX_OPEN);
}

#[test]
fn long_lines_are_cut_and_options_per_message_bounded() {
    let mut p = Parser::new();
    let long_name = "h".repeat(10_000);
    let m = p.line(&format!(
        "dnsmasq-dhcp[1]: 3 DHCPREQUEST(eth0) 10.0.0.9 52:54:00:aa:bb:01 {long_name}"
    ));
    assert!(m[0].note.as_ref().unwrap().len() < MAX_LINE);
    p.line("dnsmasq-dhcp[1]: 3 DHCPACK(eth0) 10.0.0.9 52:54:00:aa:bb:01 ");
    for _ in 0..500 {
        p.line(&format!(
            "dnsmasq-dhcp[1]: 3 sent size:255 option: 12 hostname  {}",
            "é".repeat(3000)
        ));
    }
    let ack = p.flush();
    assert_eq!(ack[0].sent.len(), MAX_OPTIONS);
    assert!(
        ack[0]
            .sent
            .iter()
            .all(|o| o.value.len() <= MAX_VALUE && o.truncated)
    );
}

proptest::proptest! {
    #[test]
    fn no_input_panics(line in ".{0,300}", xid in 0u32..4, tail in "[ -~]{0,80}") {
        let mut p = Parser::new();
        p.line(&line);
        // Near misses of the real shapes too.
        for shape in [
            format!("dnsmasq-dhcp[1]: {xid} DHCPACK({tail}"),
            format!("dnsmasq-dhcp[1]: {xid} DHCPOFFER(e) {tail}"),
            format!("dnsmasq-dhcp[1]: {xid} sent size:{tail}"),
            format!("dnsmasq-dhcp[1]: {xid} sent size: 3 option:{tail}"),
            format!("dnsmasq-dhcp: {tail}"),
        ] {
            p.line(&shape);
        }
        for m in p.flush() {
            proptest::prop_assert!(m.sent.len() <= MAX_OPTIONS);
        }
    }

    #[test]
    fn no_bytes_panic(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..600)) {
        let mut p = Parser::new();
        let text = String::from_utf8_lossy(&bytes);
        p.line(&text);
        p.line(&format!("dnsmasq-dhcp[1]: 1 {text}"));
        p.flush();
    }
}
