//! Unit tests of the SOL payload state machine, without sessions.

use std::time::{Duration, Instant};

use super::*;

const A: u32 = 0xA;
const B: u32 = 0xB;

/// Growing session sequence numbers for console packets.
fn s() -> u32 {
    static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(1);
    NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
}

fn active(now: Instant) -> (Sol, Instant) {
    let mut sol = Sol::default();
    sol.activate(A).unwrap();
    (sol, now)
}

/// The packets sent to `session`, in order.
fn sent(effects: &[Effect], to: u32) -> Vec<Packet> {
    effects
        .iter()
        .filter_map(|e| match e {
            Effect::Send { session, packet } if *session == to => Some(packet.clone()),
            _ => None,
        })
        .collect()
}

fn serial(effects: &[Effect]) -> Vec<SerialInput> {
    effects
        .iter()
        .filter_map(|e| match e {
            Effect::Serial(s) => Some(s.clone()),
            _ => None,
        })
        .collect()
}

fn ack(seq: u8, accepted: usize) -> Vec<u8> {
    Packet::ack(seq, accepted, 0).encode()
}

fn data(seq: u8, bytes: &[u8]) -> Vec<u8> {
    let packet = Packet {
        seq,
        data: bytes.to_vec(),
        ..Packet::default()
    };
    packet.encode()
}

#[test]
fn one_packet_in_flight_and_sequence_wraps_15_to_1() {
    let (mut sol, t) = active(Instant::now());
    let mut seqs = Vec::new();
    let first = sol.host_output(b"0", t);
    assert_eq!(sent(&first, A)[0].data, b"0");
    let mut in_flight = sent(&first, A)[0].seq;
    for i in 1..=16u8 {
        // More output while a packet is in flight waits for its ACK.
        assert!(sol.host_output(&[b'0' + i % 10], t).is_empty());
        seqs.push(in_flight);
        let next = sol.on_packet(A, s(), &ack(in_flight, 1), t);
        let [p] = &sent(&next, A)[..] else {
            panic!("{next:?}")
        };
        assert_eq!(p.data, [b'0' + i % 10]);
        in_flight = p.seq;
    }
    let expected: Vec<u8> = (1..=15).chain(1..=2).collect();
    assert_eq!(seqs, expected[..16]);
    assert_eq!(in_flight, 2);
}

#[test]
fn host_output_is_cut_to_the_payload_size() {
    let (mut sol, t) = active(Instant::now());
    let out = sol.host_output(&[7; 300], t);
    assert_eq!(sent(&out, A)[0].data.len(), 251);
    let rest = sol.on_packet(A, s(), &ack(1, 251), t);
    assert_eq!(sent(&rest, A)[0].data.len(), 49);
}

#[test]
fn duplicate_console_packet_is_acked_again_but_delivered_once() {
    let (mut sol, t) = active(Instant::now());
    let first = sol.on_packet(A, s(), &data(3, b"ab"), t);
    assert_eq!(serial(&first), [SerialInput::Data(b"ab".to_vec())]);
    assert_eq!(sent(&first, A), [Packet::ack(3, 2, 0)]);
    let again = sol.on_packet(A, s(), &data(3, b"ab"), t);
    assert!(serial(&again).is_empty(), "delivered twice");
    assert_eq!(sent(&again, A), [Packet::ack(3, 2, 0)]);
    let next = sol.on_packet(A, s(), &data(4, b"c"), t);
    assert_eq!(serial(&next), [SerialInput::Data(b"c".to_vec())]);
}

#[test]
fn a_new_activation_forgets_the_last_inbound_sequence() {
    // ipmi_sim's bug: a new session's first packet, numbered like the old
    // session's last one, was ACKed and dropped.
    let (mut sol, t) = active(Instant::now());
    sol.on_packet(A, s(), &data(1, b"x"), t);
    sol.deactivate(A).unwrap();
    sol.activate(B).unwrap();
    let out = sol.on_packet(B, s(), &data(1, b"y"), t);
    assert_eq!(serial(&out), [SerialInput::Data(b"y".to_vec())]);
}

#[test]
fn partial_accept_sends_the_remainder_in_a_new_packet() {
    let (mut sol, t) = active(Instant::now());
    sol.host_output(b"hello", t);
    let out = sol.on_packet(A, s(), &ack(1, 2), t);
    let [p] = &sent(&out, A)[..] else {
        panic!("{out:?}")
    };
    assert_eq!((p.seq, &p.data[..]), (2, &b"llo"[..]));
}

#[test]
fn piggybacked_ack_on_console_data_is_honoured() {
    let (mut sol, t) = active(Instant::now());
    sol.host_output(b"out", t);
    sol.host_output(b"more", t);
    let both = Packet {
        seq: 5,
        ack: 1,
        accepted: 3,
        data: b"in".to_vec(),
        ..Packet::default()
    };
    let out = sol.on_packet(A, s(), &both.encode(), t);
    assert_eq!(serial(&out), [SerialInput::Data(b"in".to_vec())]);
    let packets = sent(&out, A);
    assert_eq!(packets[0], Packet::ack(5, 2, 0), "the ACK goes first");
    assert_eq!((packets[1].seq, &packets[1].data[..]), (2, &b"more"[..]));
}

#[test]
fn stale_acks_are_ignored() {
    let (mut sol, t) = active(Instant::now());
    sol.host_output(b"x", t);
    assert!(sol.on_packet(A, s(), &ack(9, 1), t).is_empty());
    assert!(sol.next_deadline().is_some(), "still in flight");
}

#[test]
fn retransmits_the_same_packet_then_gives_up() {
    let (mut sol, t) = active(Instant::now());
    let first = sent(&sol.host_output(b"hi", t), A).remove(0);
    assert!(sol.tick(t + Duration::from_millis(499)).is_empty());
    let mut at = t;
    for _ in 1..MAX_SENDS {
        at += RETRY_INTERVAL;
        assert_eq!(sol.next_deadline(), Some(at));
        assert_eq!(
            sent(&sol.tick(at), A),
            std::slice::from_ref(&first),
            "same sequence, same data"
        );
    }
    assert!(sol.tick(at + RETRY_INTERVAL).is_empty());
    assert_eq!(sol.owner(), None, "dropped after {MAX_SENDS} sends");
    assert_eq!(sol.next_deadline(), None);
}

#[test]
fn nack_holds_output_then_resends_under_a_new_number() {
    let (mut sol, t) = active(Instant::now());
    sol.host_output(b"abc", t);
    let nack = Packet {
        ack: 1,
        accepted: 1,
        status: op::NACK,
        ..Packet::default()
    };
    assert!(sol.on_packet(A, s(), &nack.encode(), t).is_empty());
    assert_eq!(sol.next_deadline(), Some(t + RETRY_INTERVAL));
    let out = sol.tick(t + RETRY_INTERVAL);
    let [p] = &sent(&out, A)[..] else {
        panic!("{out:?}")
    };
    assert_eq!((p.seq, &p.data[..]), (2, &b"bc"[..]));
}

#[test]
fn cts_pause_flush_and_break() {
    let (mut sol, t) = active(Instant::now());
    let pause = Packet {
        status: op::CTS_PAUSE,
        ..Packet::default()
    };
    sol.on_packet(A, s(), &pause.encode(), t);
    assert!(sol.host_output(b"held", t).is_empty());
    assert_eq!(sol.next_deadline(), None);
    let out = sol.on_packet(A, s(), &Packet::default().encode(), t);
    assert_eq!(sent(&out, A)[0].data, b"held", "resumed");
    sol.on_packet(A, s(), &ack(1, 4), t);

    sol.on_packet(A, s(), &pause.encode(), t);
    sol.host_output(b"old", t);
    let flush = Packet {
        status: op::FLUSH_OUTBOUND,
        ..Packet::default()
    };
    assert!(sol.on_packet(A, s(), &flush.encode(), t).is_empty());
    let out = sol.host_output(b"new", t);
    assert_eq!(sent(&out, A)[0].data, b"new", "the old output was flushed");

    let brk = Packet {
        seq: 1,
        status: op::GENERATE_BREAK,
        ..Packet::default()
    };
    let out = sol.on_packet(A, s(), &brk.encode(), t);
    assert_eq!(serial(&out), [SerialInput::Break]);
    assert_eq!(sent(&out, A), [Packet::ack(1, 0, 0)]);
}

#[test]
fn overflowing_output_is_reported_as_an_overrun() {
    let (mut sol, t) = active(Instant::now());
    sol.host_output(b"x", t);
    sol.host_output(&vec![1; PENDING_CAP + 10], t);
    let out = sol.on_packet(A, s(), &ack(1, 1), t);
    assert_eq!(sent(&out, A)[0].status, status::TRANSMIT_OVERRUN);
    let out = sol.on_packet(A, s(), &ack(2, 251), t);
    assert_eq!(sent(&out, A)[0].status, 0, "reported once");
}

#[test]
fn only_the_owner_talks_and_takeover_notifies_the_old_owner() {
    let (mut sol, t) = active(Instant::now());
    assert_eq!(sol.activate(B), Err(0x80));
    assert!(
        sol.on_packet(B, s(), &data(1, b"x"), t).is_empty(),
        "B is not active"
    );
    let notice = sol.deactivate(B).unwrap();
    let [p] = &sent(&notice, A)[..] else {
        panic!("{notice:?}")
    };
    assert_eq!(p.status, status::DEACTIVATING);
    assert_eq!(sol.deactivate(B), Err(0x80));
    sol.activate(B).unwrap();
    assert_eq!(sol.deactivate(B), Ok(vec![]), "no notice to oneself");
    assert!(sol.host_output(b"lost", t).is_empty(), "no console: lost");
}

#[test]
fn packets_decode_and_encode() {
    assert_eq!(Packet::decode(&[1, 2, 3]), None);
    let p = Packet::decode(&[0xF1, 0x22, 3, 0x40, b'z']).unwrap();
    assert_eq!((p.seq, p.ack, p.accepted, p.status), (1, 2, 3, 0x40));
    assert_eq!(p.encode(), [1, 2, 3, 0x40, b'z']);
    assert_eq!(Packet::ack(4, 1000, 0).accepted, 255);
    assert_eq!((next_seq(0), next_seq(14), next_seq(15)), (1, 15, 1));
}

#[test]
fn a_resend_overtaken_by_the_next_packet_is_not_delivered_again() {
    let (mut sol, t) = active(Instant::now());
    // The console sent 3, resent it under session number 11, got our ACK
    // and sent 4 (12); the network delivered the resend last.
    let first = sol.on_packet(A, 10, &data(3, b"ab"), t);
    let next = sol.on_packet(A, 12, &data(4, b"c"), t);
    let late = sol.on_packet(A, 11, &data(3, b"ab"), t);
    let typed = |effects: &[Effect]| {
        effects
            .iter()
            .filter(|e| matches!(e, Effect::Serial(_)))
            .count()
    };
    assert_eq!((typed(&first), typed(&next), typed(&late)), (1, 1, 0));
}
