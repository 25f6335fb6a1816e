//! Property tests: the client-side parsers take any datagram without
//! panicking, and no tampered packet passes the integrity check.

use proptest::prelude::*;

use super::crypto::{CipherSuite, SessionKeys};
use super::message::{Request, Response};
use super::packet::{self, Frame, payload};
use super::rakp::{OpenSessionRequest, OpenSessionResponse, Rakp1, Rakp2, RakpCode};

fn keys(suite: CipherSuite) -> SessionKeys {
    SessionKeys::derive(suite, &[0x5A; 32])
}

/// Everything a client or BMC does with an inbound datagram, minus the socket.
fn digest(datagram: &[u8], keys: &SessionKeys) -> Option<Vec<u8>> {
    for body in [datagram, datagram.get(4..).unwrap_or_default()] {
        let _ = Request::decode(body);
        let _ = Response::decode(body);
        let _ = OpenSessionRequest::decode(body);
        let _ = OpenSessionResponse::decode(body);
        let _ = Rakp1::decode(body);
        let _ = Rakp2::decode(body);
        let _ = RakpCode::decode(body);
    }
    for len in [0, 12, 16] {
        let _ = packet::parse(datagram, len);
    }
    match packet::parse(datagram, keys.suite.integrity_len()).ok()? {
        Frame::V20 {
            header,
            payload,
            signed,
            auth_code,
        } => packet::open(&header, payload, signed, auth_code, keys).ok(),
        _ => None,
    }
}

#[derive(Debug, Clone)]
enum Mutation {
    Flip { at: usize, mask: u8 },
    Truncate(usize),
    Extend(Vec<u8>),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        (any::<usize>(), 1u8..).prop_map(|(at, mask)| Mutation::Flip { at, mask }),
        any::<usize>().prop_map(Mutation::Truncate),
        proptest::collection::vec(any::<u8>(), 1..8).prop_map(Mutation::Extend),
    ]
}

fn apply(mut pkt: Vec<u8>, m: &Mutation) -> Vec<u8> {
    match m {
        Mutation::Flip { at, mask } => {
            // The 4-byte RMCP header is outside the AuthCode (IPMI 2.0
            // §13.28.4), so only flips after it must be caught.
            let i = 4 + at % (pkt.len() - 4);
            pkt[i] ^= mask;
        }
        Mutation::Truncate(n) => pkt.truncate(n % pkt.len()),
        Mutation::Extend(extra) => pkt.extend_from_slice(extra),
    }
    pkt
}

proptest! {
    #[test]
    fn random_datagrams_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
        for suite in [CipherSuite::Suite3, CipherSuite::Suite17] {
            let _ = digest(&bytes, &keys(suite));
        }
    }

    #[test]
    fn rmcp_prefixed_garbage_never_panics(tail in proptest::collection::vec(any::<u8>(), 0..120)) {
        // Past the RMCP header, so the session parsers see the garbage.
        let mut bytes = vec![0x06, 0x00, 0xFF, 0x07, 0x06];
        bytes.extend(tail);
        let _ = digest(&bytes, &keys(CipherSuite::Suite17));
    }

    #[test]
    fn tampered_packets_never_verify(
        body in proptest::collection::vec(any::<u8>(), 0..64),
        m in mutation(),
        suite17 in any::<bool>(),
    ) {
        let suite = if suite17 { CipherSuite::Suite17 } else { CipherSuite::Suite3 };
        let k = keys(suite);
        let good = packet::encode_v20(payload::IPMI, 7, 9, &body, Some(&k));
        prop_assert_eq!(digest(&good, &k), Some(body.clone()));
        let bad = apply(good.clone(), &m);
        if bad != good {
            prop_assert_eq!(digest(&bad, &k), None, "mutation {:?} was accepted", m);
        }
    }
}
