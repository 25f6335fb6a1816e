//! Property tests: the responder never panics, whatever arrives — random
//! bytes, or valid datagrams of every kind flipped, truncated or extended —
//! and SOL keeps one packet in flight whatever consoles and hosts do.

use std::time::{Duration, Instant};

use proptest::prelude::*;

use super::session::{Limits, Output, Responder};
use super::sol::Packet;
use super::test_console::{Console, responder};
use crate::ipmi::CipherSuite::{Suite3, Suite17};
use crate::ipmi::message::{Request, netfn};
use crate::ipmi::packet;

/// Valid datagrams of each kind, sent to a responder that has a session
/// with `console`, so mutants reach every parser and handler.
fn corpus(bmc: &mut Responder, console: &mut Console) -> Vec<Vec<u8>> {
    let now = Instant::now();
    let caps = Request::new(netfn::APP, 0x38, 0, &[0x8E, 4]).encode();
    let suites = Request::new(netfn::APP, 0x54, 0, &[0x0E, 0, 0x80]).encode();
    let mut out = vec![
        vec![6, 0, 0xFF, 6, 0, 0, 0x11, 0xBE, 0x80, 1, 0, 0],
        packet::encode_v15(&caps),
        packet::encode_v20(0, 0, 0, &suites, None),
        console.open_session(),
    ];
    console.connect(bmc, now).unwrap();
    out.push(console.rakp1());
    out.push(console.rakp3());
    out.push(console.request(netfn::APP, 0x3B, &[4]));
    out.push(console.request(netfn::CHASSIS, 0x02, &[1]));
    out.push(console.request(netfn::CHASSIS, 0x08, &[5, 0x80, 4, 0, 0, 0]));
    out.push(console.request(netfn::STORAGE, 0x23, &[0, 0, 0, 0, 0, 0xFF]));
    // SOL: payload commands, then packets for an active payload.
    out.push(console.request(0x0C, 0x22, &[0x0E, 8, 0, 0]));
    out.push(console.request(netfn::APP, 0x4A, &[1]));
    out.push(console.request(netfn::APP, 0x49, &[1, 1, 0, 0, 0, 0]));
    out.push(console.request(netfn::APP, 0x48, &[1, 1, 0xC6, 0, 0, 0]));
    assert_eq!(console.activate_sol(bmc, now).0, 0);
    bmc.host_output(b"host output", now);
    let data = Packet {
        seq: 1,
        ack: 1,
        accepted: 3,
        status: 0x10,
        data: b"typed".to_vec(),
    };
    out.push(console.sol(&data));
    out.push(console.sol(&Packet::ack(1, 11, 0)));
    out.push(console.request(netfn::APP, 0x3C, &console.bmc_session_id.to_le_bytes()));
    out
}

#[derive(Debug, Clone)]
enum Mutation {
    Flip { at: usize, mask: u8 },
    Truncate { len: usize },
    Extend { tail: Vec<u8> },
    Set { at: usize, value: u8 },
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        (any::<usize>(), 1u8..).prop_map(|(at, mask)| Mutation::Flip { at, mask }),
        any::<usize>().prop_map(|len| Mutation::Truncate { len }),
        prop::collection::vec(any::<u8>(), 1..40).prop_map(|tail| Mutation::Extend { tail }),
        (any::<usize>(), any::<u8>()).prop_map(|(at, value)| Mutation::Set { at, value }),
    ]
}

fn apply(mut packet: Vec<u8>, m: &Mutation) -> Vec<u8> {
    let n = packet.len().max(1);
    match m {
        Mutation::Flip { at, mask } => {
            if let Some(b) = packet.get_mut(at % n) {
                *b ^= mask;
            }
        }
        Mutation::Truncate { len } => packet.truncate(len % n),
        Mutation::Extend { tail } => packet.extend_from_slice(tail),
        Mutation::Set { at, value } => {
            if let Some(b) = packet.get_mut(at % n) {
                *b = *value;
            }
        }
    }
    packet
}

/// One thing happening to a BMC with an active SOL console.
#[derive(Debug, Clone)]
enum SolStep {
    /// Any SOL packet from the console (all fields arbitrary).
    Console(Packet),
    /// The console ACKs (or NACKs) the packet in flight, if any.
    Ack {
        accepted: u8,
        status: u8,
    },
    Host(Vec<u8>),
    /// Time passes, then timers run.
    Wait(Duration),
}

fn sol_step() -> impl Strategy<Value = SolStep> {
    let packet = (any::<[u8; 4]>(), prop::collection::vec(any::<u8>(), 0..300));
    prop_oneof![
        packet.prop_map(|([seq, ack, accepted, status], data)| {
            SolStep::Console(Packet {
                seq,
                ack,
                accepted,
                status,
                data,
            })
        }),
        any::<(u8, u8)>().prop_map(|(accepted, status)| SolStep::Ack { accepted, status }),
        prop::collection::vec(any::<u8>(), 1..600).prop_map(SolStep::Host),
        (0u64..1200).prop_map(|ms| SolStep::Wait(Duration::from_millis(ms))),
    ]
}

/// Checks what the BMC sent: SOL sequence numbers in 0..=15, and a data
/// packet never replaced by another before the console ACKed it.
fn check_sol(bmc: &mut Responder, console: &Console, in_flight: &mut Option<Packet>) {
    for out in bmc.take_output() {
        let Output::Datagram(_, d) = out else {
            continue;
        };
        let p = console.open_sol(&d);
        assert!(p.seq <= 15 && p.data.len() <= 251, "{p:?}");
        if p.seq == 0 {
            continue;
        }
        if let Some(f) = in_flight.as_ref() {
            assert_eq!(f, &p, "a second packet while one was unACKed");
        }
        *in_flight = Some(p);
    }
}

proptest! {
    #[test]
    fn sol_keeps_one_packet_in_flight_whatever_happens(
        steps in prop::collection::vec(sol_step(), 1..40)) {
        let mut bmc = responder(&[Suite17, Suite3], Limits::default());
        let mut console = Console::new(Suite17);
        let mut now = Instant::now();
        console.connect(&mut bmc, now).unwrap();
        assert_eq!(console.activate_sol(&mut bmc, now).0, 0);
        let mut in_flight: Option<Packet> = None;
        for mut step in steps {
            if let (SolStep::Ack { accepted, status }, Some(f)) = (&step, &in_flight) {
                step = SolStep::Console(Packet::ack(f.seq, usize::from(*accepted), *status));
            }
            match step {
                SolStep::Console(p) => {
                    let acked = p.ack & 0x0F;
                    in_flight.take_if(|f| f.seq == acked);
                    let d = console.sol(&p);
                    bmc.handle(&d, now);
                }
                SolStep::Ack { .. } => {}
                SolStep::Host(bytes) => bmc.host_output(&bytes, now),
                SolStep::Wait(d) => {
                    now += d;
                    bmc.tick(now);
                }
            }
            if !bmc.sol_active() {
                break; // the console stopped ACKing: dropped, as designed
            }
            check_sol(&mut bmc, &console, &mut in_flight);
        }
    }

    #[test]
    fn random_bytes_never_panic(datagrams in prop::collection::vec(
        prop::collection::vec(any::<u8>(), 0..200), 1..8)) {
        let mut bmc = responder(&[Suite17, Suite3], Limits::default());
        let now = Instant::now();
        for d in &datagrams {
            bmc.handle(d, now);
        }
    }

    #[test]
    fn random_bytes_behind_a_valid_rmcp_plus_header_never_panic(
        session in any::<bool>(), kind in 0u8..0x20, tail in prop::collection::vec(any::<u8>(), 0..120)) {
        let mut bmc = responder(&[Suite17, Suite3], Limits::default());
        let mut console = Console::new(Suite17);
        let now = Instant::now();
        console.connect(&mut bmc, now).unwrap();
        let id = if session { console.bmc_session_id } else { 0 };
        let mut d = vec![6, 0, 0xFF, 7, 6, kind | 0xC0];
        d.extend_from_slice(&id.to_le_bytes());
        d.extend_from_slice(&tail);
        bmc.handle(&d, now);
    }

    #[test]
    fn mutated_valid_packets_never_panic(
        suite3 in any::<bool>(),
        mutations in prop::collection::vec((any::<prop::sample::Index>(), mutation()), 1..12)) {
        let suite = if suite3 { Suite3 } else { Suite17 };
        let mut bmc = responder(&[Suite17, Suite3], Limits::default());
        let mut console = Console::new(suite);
        let corpus = corpus(&mut bmc, &mut console);
        let now = Instant::now();
        for (pick, m) in &mutations {
            let original = pick.get(&corpus).clone();
            bmc.handle(&apply(original, m), now);
        }
    }
}
