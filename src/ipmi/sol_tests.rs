use std::time::{Duration, Instant};

use proptest::prelude::*;

use super::*;

fn machine(first_seq: u8) -> SolMachine {
    SolMachine::new(
        SolConfig {
            max_chunk: 4,
            ..SolConfig::default()
        },
        first_seq,
    )
}

/// Session sequence numbers for inbound packets, always growing.
static SESSION_SEQ: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(1);

fn receive(m: &mut SolMachine, payload: &[u8], now: Instant) {
    let seq = SESSION_SEQ.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    m.receive(seq, payload, now);
}

fn drain(m: &mut SolMachine, now: Instant) -> Vec<Vec<u8>> {
    std::iter::from_fn(|| m.poll_transmit(now)).collect()
}

/// A BMC packet acknowledging `ack` with `accepted` characters.
fn ack(ack: u8, accepted: u8) -> Vec<u8> {
    vec![0, ack, accepted, 0]
}

#[test]
fn one_packet_in_flight_and_sequence_wraps_15_to_1() {
    let t = Instant::now();
    let mut m = machine(14);
    m.write(b"aaaabbbbcccc");
    assert_eq!(
        drain(&mut m, t),
        vec![b"\x0e\0\0\0aaaa".to_vec()],
        "only one in flight"
    );
    receive(&mut m, &ack(14, 4), t);
    assert_eq!(drain(&mut m, t), vec![b"\x0f\0\0\0bbbb".to_vec()]);
    receive(&mut m, &ack(15, 4), t);
    assert_eq!(
        drain(&mut m, t),
        vec![b"\x01\0\0\0cccc".to_vec()],
        "15 wraps to 1"
    );
    receive(&mut m, &ack(1, 4), t);
    assert!(m.is_idle());
}

#[test]
fn unacknowledged_packets_are_resent_unchanged_then_give_up() {
    let t = Instant::now();
    let mut m = machine(3);
    m.write(b"hi");
    let first = m.poll_transmit(t).unwrap();
    assert_eq!(m.poll_transmit(t + Duration::from_millis(100)), None);
    let mut now = t;
    for _ in 0..8 {
        now += Duration::from_millis(500);
        assert_eq!(m.poll_transmit(now).as_ref(), Some(&first), "same sequence");
    }
    now += Duration::from_millis(500);
    assert_eq!(m.poll_transmit(now), None);
    assert_eq!(m.ended(), Some(&SolEnd::NoAck { retransmits: 8 }));
}

#[test]
fn partial_acceptance_resends_the_rest_first() {
    let t = Instant::now();
    let mut m = machine(1);
    m.write(b"abcdef");
    assert_eq!(m.poll_transmit(t).unwrap(), b"\x01\0\0\0abcd");
    receive(&mut m, &ack(1, 1), t);
    assert_eq!(m.poll_transmit(t).unwrap(), b"\x02\0\0\0bcde");
    receive(&mut m, &ack(2, 4), t);
    assert_eq!(m.poll_transmit(t).unwrap(), b"\x03\0\0\0f");
}

#[test]
fn nack_with_transfer_unavailable_pauses_then_resends() {
    let t = Instant::now();
    let mut m = machine(5);
    m.write(b"x");
    let p = m.poll_transmit(t).unwrap();
    receive(
        &mut m,
        &[0, 5, 0, status::NACK | status::TRANSFER_UNAVAILABLE],
        t,
    );
    assert_eq!(
        m.poll_transmit(t + Duration::from_millis(50)),
        None,
        "paused"
    );
    assert_eq!(m.poll_transmit(t + Duration::from_millis(100)), Some(p));
}

#[test]
fn inbound_data_is_acked_and_duplicates_are_not_delivered_twice() {
    let t = Instant::now();
    let mut m = machine(1);
    receive(&mut m, b"\x07\0\0\0boot", t);
    receive(&mut m, b"\x07\0\0\0boot", t);
    receive(&mut m, b"\x08\0\0\0ing", t);
    assert_eq!(m.take_output(), b"booting");
    assert_eq!(
        drain(&mut m, t),
        vec![ack(7, 4), ack(7, 4), ack(8, 3)],
        "the repeat is acknowledged again"
    );
}

#[test]
fn break_and_deactivation() {
    let t = Instant::now();
    let mut m = machine(2);
    m.send_break();
    assert_eq!(
        m.poll_transmit(t).unwrap(),
        vec![2, 0, 0, status::GENERATE_BREAK]
    );
    receive(&mut m, &[0, 2, 0, status::DEACTIVATING], t);
    assert_eq!(m.ended(), Some(&SolEnd::Deactivated));
    assert_eq!(m.poll_transmit(t), None);
}

proptest! {
    #[test]
    fn any_inbound_payload_is_safe(payloads in proptest::collection::vec(
        proptest::collection::vec(any::<u8>(), 0..40), 0..20)) {
        let t = Instant::now();
        let mut m = machine(1);
        m.write(b"typed");
        for p in &payloads {
            receive(&mut m, p, t);
            drain(&mut m, t);
        }
    }
}

#[test]
fn a_resend_overtaken_by_the_next_packet_is_not_delivered_again() {
    let t = Instant::now();
    let mut m = machine(1);
    // The BMC sent 5, resent it (session 11), got our ACK and sent 6
    // (session 12); the network delivered the resend last.
    m.receive(10, b"\x05\0\0\0A", t);
    m.receive(12, b"\x06\0\0\0B", t);
    m.receive(11, b"\x05\0\0\0A", t);
    assert_eq!(m.take_output(), b"AB");
    assert_eq!(m.stale, 1);
}
