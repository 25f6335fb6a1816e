//! SOL through the responder: payload commands, sealed SOL packets to the
//! right console, retransmission timers and deactivation when sessions end.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use super::*;
use crate::ipmi::CipherSuite::{self, Suite3, Suite17};
use crate::sim::sol::{MAX_SENDS, Packet, RETRY_INTERVAL, status};
use crate::sim::test_console::{Console, later, responder};

const BOTH: [CipherSuite; 2] = [Suite17, Suite3];
const APP: u8 = netfn::APP;

fn console(suite: CipherSuite, n: u8) -> Console {
    let mut c = Console::new(suite);
    c.console_session_id = 0xC0C0_0000 | u32::from(n);
    c.peer = SocketAddr::from(([127, 0, 0, 1], 40000 + u16::from(n)));
    c
}

/// A BMC with `console` connected and SOL activated for it.
fn activated(suite: CipherSuite, now: Instant) -> (Responder, Console) {
    let mut bmc = responder(&BOTH, Limits::default());
    let mut c = console(suite, 1);
    c.connect(&mut bmc, now).unwrap();
    assert_eq!(c.activate_sol(&mut bmc, now).0, 0);
    (bmc, c)
}

/// The SOL packets queued for `console`'s address, decrypted; anything
/// for the host is returned as it is.
fn drain(bmc: &mut Responder, console: &Console) -> (Vec<Packet>, Vec<SerialInput>) {
    let (mut packets, mut serial) = (Vec::new(), Vec::new());
    for out in bmc.take_output() {
        match out {
            Output::Datagram(peer, d) if peer == console.peer => packets.push(console.open_sol(&d)),
            Output::Datagram(peer, _) => panic!("unexpected datagram to {peer}"),
            Output::Serial(s) => serial.push(s),
        }
    }
    (packets, serial)
}

fn sol(bmc: &mut Responder, console: &mut Console, packet: Packet, now: Instant) {
    let datagram = console.sol(&packet);
    assert_eq!(bmc.handle_from(&datagram, console.peer, now), None);
}

#[test]
fn activate_answers_as_ipmitool_expects_and_payload_commands_report_it() {
    for suite in BOTH {
        let now = Instant::now();
        let mut bmc = responder(&BOTH, Limits::default());
        let mut c = console(suite, 1);
        c.connect(&mut bmc, now).unwrap();
        let refused = c.call(&mut bmc, now, APP, 0x48, &[1, 1, 0x40, 0, 0, 0]);
        assert_eq!(refused.0, 0x84, "unencrypted SOL");
        let (code, data) = c.activate_sol(&mut bmc, now);
        // Sizes 255, port 623 (0x026F), no VLAN.
        let expected = [0, 0, 0, 0, 0xFF, 0, 0xFF, 0, 0x6F, 0x02, 0xFF, 0xFF];
        assert_eq!((code, &data[..]), (0, &expected[..]), "{suite:?}");
        assert_eq!(c.activate_sol(&mut bmc, now).0, 0x80);
        assert_eq!(c.call(&mut bmc, now, APP, 0x4A, &[1]), (0, vec![1, 1, 0]));
        let (_, info) = c.call(&mut bmc, now, APP, 0x4B, &[1, 1]);
        assert_eq!(info[..4], c.bmc_session_id.to_le_bytes());
        let param =
            |c: &mut Console, bmc: &mut Responder, d: &[u8]| c.call(bmc, now, 0x0C, 0x22, d);
        assert_eq!(
            param(&mut c, &mut bmc, &[1, 8, 0, 0]),
            (0, vec![0x11, 0x6F, 0x02])
        );
        assert_eq!(
            param(&mut c, &mut bmc, &[0x0E, 1, 0, 0]),
            (0, vec![0x11, 1])
        );
        assert_eq!(param(&mut c, &mut bmc, &[0x8E, 5, 0, 0]), (0, vec![0x11]));
        assert_eq!(param(&mut c, &mut bmc, &[1, 0x20, 0, 0]).0, 0x80);
        assert_eq!(
            c.call(&mut bmc, now, APP, 0x49, &[1, 2, 0, 0, 0, 0]).0,
            0xCC
        );
        assert_eq!(c.call(&mut bmc, now, APP, 0x49, &[1, 1, 0, 0, 0, 0]).0, 0);
        assert_eq!(
            c.call(&mut bmc, now, APP, 0x49, &[1, 1, 0, 0, 0, 0]).0,
            0x80
        );
        assert_eq!(c.call(&mut bmc, now, APP, 0x4A, &[1]), (0, vec![1, 0, 0]));
        assert_eq!(bmc.take_output(), [], "nothing to tell anyone");
    }
}

#[test]
fn activation_needs_user_privilege() {
    let mut bmc = responder(&BOTH, Limits::default());
    let mut c = console(Suite17, 1);
    c.role = 0x10 | privilege::CALLBACK;
    let now = Instant::now();
    c.connect(&mut bmc, now).unwrap();
    assert_eq!(c.activate_sol(&mut bmc, now).0, 0xD4);
    assert!(!bmc.sol_active());
}

#[test]
fn host_output_reaches_the_console_and_console_data_the_host() {
    for suite in BOTH {
        let now = Instant::now();
        let (mut bmc, mut c) = activated(suite, now);
        bmc.host_output(b"boot\r\n", now);
        let (packets, _) = drain(&mut bmc, &c);
        assert_eq!(
            (packets[0].seq, &packets[0].data[..]),
            (1, &b"boot\r\n"[..])
        );

        // Typed data with the ACK piggybacked, as some consoles send it.
        let typed = Packet {
            seq: 1,
            ack: 1,
            accepted: 6,
            data: b"ls\r".to_vec(),
            ..Packet::default()
        };
        sol(&mut bmc, &mut c, typed, now);
        let (packets, serial) = drain(&mut bmc, &c);
        assert_eq!(serial, [SerialInput::Data(b"ls\r".to_vec())]);
        assert_eq!((packets[0].ack, packets[0].accepted), (1, 3));
        assert_eq!(bmc.next_deadline(), None, "nothing in flight");
        assert_eq!(bmc.dropped_packets(), 0);
    }
}

#[test]
fn unacked_output_is_retransmitted_on_the_timer_then_given_up() {
    let t = Instant::now();
    let (mut bmc, c) = activated(Suite3, t);
    bmc.host_output(b"x", t);
    let (first, _) = drain(&mut bmc, &c);
    let mut at = t;
    for _ in 1..MAX_SENDS {
        at += RETRY_INTERVAL;
        assert_eq!(bmc.next_deadline(), Some(at));
        bmc.tick(at);
        assert_eq!(drain(&mut bmc, &c).0, first, "same SOL sequence");
    }
    bmc.tick(at + RETRY_INTERVAL);
    assert!(
        !bmc.sol_active(),
        "a console that never ACKs loses the payload"
    );
    assert_eq!(bmc.take_output(), []);
}

#[test]
fn closing_forgetting_or_idling_out_the_session_deactivates() {
    let now = Instant::now();
    let (mut bmc, mut c) = activated(Suite17, now);
    let id = c.bmc_session_id.to_le_bytes();
    assert_eq!(c.call(&mut bmc, now, APP, CLOSE_SESSION, &id).0, 0);
    assert!(!bmc.sol_active());

    let (mut bmc, _) = activated(Suite17, now);
    bmc.forget_sessions();
    assert!(!bmc.sol_active());

    let (mut bmc, _) = activated(Suite17, now);
    bmc.tick(later(now, 30));
    assert!(bmc.sol_active());
    bmc.tick(later(now, 31));
    assert!(!bmc.sol_active(), "idle timeout");
}

#[test]
fn takeover_refuses_then_deactivates_and_tells_the_old_console_once() {
    let now = Instant::now();
    let (mut bmc, mut old) = activated(Suite17, now);
    let mut new = console(Suite3, 2);
    new.connect(&mut bmc, now).unwrap();
    assert_eq!(new.activate_sol(&mut bmc, now).0, 0x80);
    // The new console's SOL packets are ignored, not counted as drops.
    let ignored = Packet {
        seq: 1,
        data: b"x".to_vec(),
        ..Packet::default()
    };
    sol(&mut bmc, &mut new, ignored, now);
    assert_eq!((bmc.take_output(), bmc.dropped_packets()), (vec![], 0));

    assert_eq!(new.call(&mut bmc, now, APP, 0x49, &[1, 1, 0, 0, 0, 0]).0, 0);
    let (notice, _) = drain(&mut bmc, &old);
    assert_eq!(notice.len(), 1);
    assert_eq!(
        notice[0].status & status::DEACTIVATING,
        status::DEACTIVATING
    );

    assert_eq!(new.activate_sol(&mut bmc, now).0, 0);
    bmc.host_output(b"to new", now + Duration::from_millis(1));
    let (packets, _) = drain(&mut bmc, &new);
    assert_eq!(packets[0].data, b"to new");
    // The old console's leftovers change nothing.
    sol(&mut bmc, &mut old, Packet::ack(1, 6, 0), now);
    assert_eq!(
        bmc.next_deadline().map(|d| d > now),
        Some(true),
        "still in flight"
    );
}

#[test]
fn all_256_byte_values_pass_both_ways() {
    let now = Instant::now();
    let (mut bmc, mut c) = activated(Suite17, now);
    let all: Vec<u8> = (0..=255).collect();
    bmc.host_output(&all, now);
    let (first, _) = drain(&mut bmc, &c);
    sol(
        &mut bmc,
        &mut c,
        Packet::ack(1, first[0].data.len(), 0),
        now,
    );
    let (second, _) = drain(&mut bmc, &c);
    assert_eq!([&first[0].data[..], &second[0].data[..]].concat(), all);

    let mut typed = Vec::new();
    for (seq, chunk) in (1..).zip(all.chunks(251)) {
        let data = chunk.to_vec();
        let packet = Packet {
            seq,
            data,
            ..Packet::default()
        };
        sol(&mut bmc, &mut c, packet, now);
        for s in drain(&mut bmc, &c).1 {
            let SerialInput::Data(bytes) = s else {
                panic!("{s:?}")
            };
            typed.extend(bytes);
        }
    }
    assert_eq!(typed, all);
}
