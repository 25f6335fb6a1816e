//! Property tests: the responder never panics, whatever arrives — random
//! bytes, or valid datagrams of every kind flipped, truncated or extended.

use std::time::Instant;

use proptest::prelude::*;

use super::session::{Limits, Responder};
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

proptest! {
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
