//! Unit tests of the responder, driven with bytes built by the `ipmi` codecs.

use std::time::{Duration, Instant};

use super::*;
use crate::ipmi::CipherSuite::{self, Suite3, Suite17};
use crate::sim::handshake::status;
use crate::sim::test_console::{Console, USER, later, plain_payload, responder};

const BOTH: [CipherSuite; 2] = [Suite17, Suite3];

#[test]
fn handshake_then_privilege_then_chassis_control_for_both_suites() {
    for suite in BOTH {
        let mut bmc = responder(&BOTH, Limits::default());
        let mut console = Console::new(suite);
        let now = Instant::now();
        console.connect(&mut bmc, now).unwrap();
        assert_eq!(bmc.active_sessions(), 1);

        let req = console.request(netfn::APP, 0x01, &[]);
        let (seq, resp) = console.response(&bmc.handle(&req, now).unwrap());
        assert_eq!(
            (seq, resp.completion, resp.data[4]),
            (1, 0, 0x02),
            "{suite:?}"
        );

        // Sessions start at USER: chassis control is refused, as on OpenBMC.
        let (code, _) = console.call(&mut bmc, now, netfn::CHASSIS, 0x02, &[1]);
        assert_eq!(code, 0xD4);
        let (code, data) = console.call(&mut bmc, now, netfn::APP, SET_SESSION_PRIVILEGE, &[4]);
        assert_eq!((code, data), (0, vec![4]));
        let (code, _) = console.call(&mut bmc, now, netfn::CHASSIS, 0x02, &[1]);
        assert_eq!(code, 0);
        let (_, status) = console.call(&mut bmc, now, netfn::CHASSIS, 0x01, &[]);
        assert_eq!(status[0] & 1, 1);
        assert!(bmc.subscribe().borrow().power_on);
        assert_eq!(bmc.dropped_packets(), 0);
    }
}

#[test]
fn privilege_cannot_exceed_the_rakp1_role() {
    let mut bmc = responder(&BOTH, Limits::default());
    let mut console = Console::new(Suite17);
    console.role = 0x10 | privilege::OPERATOR;
    let now = Instant::now();
    console.connect(&mut bmc, now).unwrap();
    let (code, _) = console.call(&mut bmc, now, netfn::APP, SET_SESSION_PRIVILEGE, &[4]);
    assert_eq!(code, 0x81);
    let (code, data) = console.call(&mut bmc, now, netfn::APP, SET_SESSION_PRIVILEGE, &[3]);
    assert_eq!((code, data), (0, vec![3]));
    let (code, data) = console.call(&mut bmc, now, netfn::APP, SET_SESSION_PRIVILEGE, &[0]);
    assert_eq!((code, data), (0, vec![3]));
}

#[test]
fn wrong_password_fails_rakp2_check_and_rakp3_gets_0x0f() {
    let mut bmc = responder(&BOTH, Limits::default());
    let mut console = Console::new(Suite3);
    console.password = b"wrong".to_vec();
    let now = Instant::now();
    assert_eq!(
        console.connect(&mut bmc, now),
        Err(0xFE),
        "console sees the mismatch"
    );
    // A console that carries on anyway is refused, and the session is gone.
    let r4 = bmc.handle(&console.rakp3(), now).unwrap();
    assert_eq!(console.on_rakp4(&r4), status::INVALID_INTEGRITY_CHECK);
    let r4 = bmc.handle(&console.rakp3(), now).unwrap();
    assert_eq!(console.on_rakp4(&r4), status::INVALID_SESSION_ID);
    assert_eq!(bmc.active_sessions(), 0);
}

#[test]
fn unknown_user_gets_0x0d() {
    let mut bmc = responder(&BOTH, Limits::default());
    let mut console = Console::new(Suite17);
    console.username = b"root".to_vec();
    assert_eq!(
        console.connect(&mut bmc, Instant::now()),
        Err(status::UNAUTHORIZED_NAME)
    );
    assert!(bmc.slots.is_empty(), "discarded");
    assert_ne!(console.username, USER);
}

#[test]
fn unoffered_suite_gets_0x11() {
    let mut bmc = responder(&[Suite3], Limits::default());
    let mut console = Console::new(Suite17);
    assert_eq!(
        console.connect(&mut bmc, Instant::now()),
        Err(status::NO_CIPHER_SUITE_MATCH)
    );
    assert!(bmc.slots.is_empty());
}

#[test]
fn tampered_unprotected_and_unknown_session_packets_are_dropped_and_counted() {
    let mut bmc = responder(&BOTH, Limits::default());
    let mut console = Console::new(Suite17);
    let now = Instant::now();
    console.connect(&mut bmc, now).unwrap();

    let mut req = console.request(netfn::APP, 0x01, &[]);
    let last = req.len() - 1;
    req[last] ^= 0x01; // AuthCode
    assert_eq!(bmc.handle(&req, now), None);
    let mut req = console.request(netfn::APP, 0x01, &[]);
    req[20] ^= 0x80; // ciphertext
    assert_eq!(bmc.handle(&req, now), None);

    // Unauthenticated packet naming the live session.
    console.seq += 1;
    let body = Request::new(netfn::APP, 0x01, 1, &[]).encode();
    let bare = packet::encode_v20(
        payload::IPMI,
        console.bmc_session_id,
        console.seq,
        &body,
        None,
    );
    assert_eq!(bmc.handle(&bare, now), None);

    // Unknown session.
    console.bmc_session_id ^= 1;
    let req = console.request(netfn::APP, 0x01, &[]);
    assert_eq!(bmc.handle(&req, now), None);
    console.bmc_session_id ^= 1;

    assert_eq!(bmc.dropped_packets(), 4);
    let (code, _) = console.call(&mut bmc, now, netfn::APP, 0x01, &[]);
    assert_eq!(code, 0, "the session survives forgeries");
}

#[test]
fn replayed_and_stale_sequence_numbers_are_dropped() {
    let mut bmc = responder(&BOTH, Limits::default());
    let mut console = Console::new(Suite3);
    let now = Instant::now();
    console.connect(&mut bmc, now).unwrap();
    let req = console.request(netfn::APP, 0x01, &[]);
    assert!(bmc.handle(&req, now).is_some());
    assert_eq!(bmc.handle(&req, now), None, "replay");
    console.seq += 20;
    assert!(
        bmc.handle(&console.request(netfn::APP, 0x01, &[]), now)
            .is_some()
    );
    assert_eq!(bmc.handle(&req, now), None, "stale");
    assert_eq!(bmc.dropped_packets(), 2);
}

#[test]
fn outbound_sequence_numbers_count_from_one() {
    let mut bmc = responder(&BOTH, Limits::default());
    let mut console = Console::new(Suite17);
    let now = Instant::now();
    console.connect(&mut bmc, now).unwrap();
    for expected in 1..=3 {
        let req = console.request(netfn::APP, 0x01, &[]);
        let (seq, _) = console.response(&bmc.handle(&req, now).unwrap());
        assert_eq!(seq, expected);
    }
}

#[test]
fn presession_ping_auth_caps_and_cipher_suites() {
    let mut bmc = responder(&BOTH, Limits::default());
    let now = Instant::now();
    let ping = [6, 0, 0xFF, 6, 0, 0, 0x11, 0xBE, 0x80, 0x42, 0, 0];
    let pong = bmc.handle(&ping, now).unwrap();
    assert_eq!((pong[8], pong[9]), (0x40, 0x42));

    let caps = Request::new(netfn::APP, 0x38, 0, &[0x8E, 4]).encode();
    let reply = bmc.handle(&packet::encode_v15(&caps), now).unwrap();
    let Ok(Frame::V15 { message, .. }) = packet::parse(&reply, 0) else {
        panic!("not 1.5")
    };
    let resp = Response::decode(message).unwrap();
    assert_eq!(resp.data, [1, 0x80, 0x04, 0x02, 0, 0, 0, 0]);

    let suites = Request::new(netfn::APP, 0x54, 1, &[0x0E, 0, 0x80]).encode();
    let reply = bmc.handle(&packet::encode_v20(payload::IPMI, 0, 0, &suites, None), now);
    let (kind, body) = plain_payload(&reply.unwrap());
    let resp = Response::decode(&body).unwrap();
    assert_eq!((kind, &resp.data[1..3]), (payload::IPMI, &[0xC0, 17][..]));

    // Anything else before a session is refused.
    let id = Request::new(netfn::APP, 0x01, 2, &[]).encode();
    let reply = bmc.handle(&packet::encode_v15(&id), now).unwrap();
    let Ok(Frame::V15 { message, .. }) = packet::parse(&reply, 0) else {
        panic!("not 1.5")
    };
    assert_eq!(Response::decode(message).unwrap().completion, 0xD4);
}

#[test]
fn idle_sessions_expire_and_the_cap_evicts_the_longest_idle() {
    let limits = Limits {
        max_sessions: 2,
        ..Limits::default()
    };
    let mut bmc = responder(&BOTH, limits);
    let t0 = Instant::now();
    let mut first = Console::new(Suite17);
    first.connect(&mut bmc, t0).unwrap();
    let mut second = Console::new(Suite17);
    second.connect(&mut bmc, later(t0, 1)).unwrap();
    first.call(&mut bmc, later(t0, 2), netfn::APP, 0x01, &[]);
    let mut third = Console::new(Suite17);
    third.connect(&mut bmc, later(t0, 3)).unwrap();
    assert_eq!(bmc.active_sessions(), 2);
    let req = second.request(netfn::APP, 0x01, &[]);
    assert_eq!(bmc.handle(&req, later(t0, 3)), None, "second was evicted");

    let req = first.request(netfn::APP, 0x01, &[]);
    assert!(
        bmc.handle(&req, later(t0, 32)).is_some(),
        "30 s idle is fine"
    );
    let req = third.request(netfn::APP, 0x01, &[]);
    assert_eq!(bmc.handle(&req, later(t0, 34)), None, "31 s idle is not");
    assert_eq!(bmc.active_sessions(), 1);
}

#[test]
fn close_session_and_forget_sessions_end_sessions() {
    let mut bmc = responder(&BOTH, Limits::default());
    let now = Instant::now();
    let mut console = Console::new(Suite3);
    console.connect(&mut bmc, now).unwrap();
    let id = console.bmc_session_id.to_le_bytes();
    let (code, _) = console.call(&mut bmc, now, netfn::APP, CLOSE_SESSION, &[9, 9, 9, 9]);
    assert_eq!(code, 0x87);
    let (code, _) = console.call(&mut bmc, now, netfn::APP, CLOSE_SESSION, &id);
    assert_eq!(code, 0);
    assert_eq!(bmc.active_sessions(), 0);
    assert_eq!(
        bmc.handle(&console.request(netfn::APP, 0x01, &[]), now),
        None
    );

    console.connect(&mut bmc, now).unwrap();
    bmc.forget_sessions();
    assert_eq!(
        bmc.handle(&console.request(netfn::APP, 0x01, &[]), now),
        None
    );
}

#[test]
fn sol_payloads_without_an_activation_are_ignored_not_dropped() {
    let mut bmc = responder(&BOTH, Limits::default());
    let now = Instant::now();
    let mut console = Console::new(Suite17);
    console.connect(&mut bmc, now).unwrap();
    console.seq += 1;
    let sol = packet::encode_v20(
        payload::SOL,
        console.bmc_session_id,
        console.seq,
        &[1, 0, 0, 0, b'x'],
        console.keys.as_ref(),
    );
    assert_eq!(bmc.handle(&sol, now), None);
    assert_eq!(bmc.dropped_packets(), 0, "verified SOL is not a drop");
}

#[test]
fn a_retransmitted_rakp1_gets_the_same_rakp2_and_the_first_answer_works() {
    // A slow link: the console resends RAKP 1, and uses the first RAKP 2.
    let mut bmc = responder(&BOTH, Limits::default());
    let mut console = Console::new(Suite17);
    let now = Instant::now();
    let opened = bmc.handle(&console.open_session(), now).unwrap();
    assert_eq!(console.on_open_session(&opened), 0);
    let first = bmc.handle(&console.rakp1(), now).unwrap();
    let again = bmc.handle(&console.rakp1(), later(now, 1)).unwrap();
    assert_eq!(first, again, "the same RAKP 2, as ipmi_sim answers");
    assert_eq!(console.on_rakp2(&first), 0);
    let r4 = bmc.handle(&console.rakp3(), later(now, 2)).unwrap();
    assert_eq!(console.on_rakp4(&r4), 0, "RAKP 3 from the first RAKP 2");
    assert_eq!(bmc.active_sessions(), 1);
}

#[test]
fn the_idle_timeout_counts_ipmi_requests_only_and_defaults_to_30_s() {
    assert_eq!(Limits::default().idle_timeout, Duration::from_secs(30));
    let mut bmc = responder(&BOTH, Limits::default());
    let mut console = Console::new(Suite17);
    let t0 = Instant::now();
    console.connect(&mut bmc, t0).unwrap();
    // SOL traffic every 10 s keeps nothing alive (ipmi_sim ignores it too).
    for s in [10, 20, 30] {
        console.seq += 1;
        let sol = packet::encode_v20(
            payload::SOL,
            console.bmc_session_id,
            console.seq,
            &[0, 0, 0, 0],
            console.keys.as_ref(),
        );
        assert_eq!(bmc.handle(&sol, later(t0, s)), None);
    }
    let req = console.request(netfn::APP, 0x01, &[]);
    assert_eq!(bmc.handle(&req, later(t0, 31)), None, "timed out at 30 s");
    assert_eq!(bmc.active_sessions(), 0);

    // An IPMI request every 25 s keeps it for good.
    console.connect(&mut bmc, t0).unwrap();
    for s in [25, 50, 75, 100] {
        let (code, _) = console.call(&mut bmc, later(t0, s), netfn::APP, 0x01, &[]);
        assert_eq!(code, 0, "{s} s");
    }
}

#[test]
fn session_count_tracks_active_ids_and_the_total_ever_opened() {
    let mut bmc = responder(&BOTH, Limits::default());
    let t0 = Instant::now();
    assert_eq!(bmc.sessions(t0), SessionCount::default());
    let mut a = Console::new(Suite17);
    a.connect(&mut bmc, t0).unwrap();
    let mut b = Console::new(Suite3);
    b.connect(&mut bmc, t0).unwrap();
    let mut ids = vec![a.bmc_session_id, b.bmc_session_id];
    ids.sort_unstable();
    assert_eq!(
        bmc.sessions(t0),
        SessionCount {
            active_ids: ids,
            opened_total: 2
        }
    );
    // A handshake that never finishes counts neither way.
    let half = Console::new(Suite17);
    assert!(bmc.handle(&half.open_session(), t0).is_some());
    assert_eq!(bmc.sessions(t0).opened_total, 2);
    let id = b.bmc_session_id.to_le_bytes();
    assert_eq!(b.call(&mut bmc, t0, netfn::APP, CLOSE_SESSION, &id).0, 0);
    let now = bmc.sessions(t0);
    assert_eq!(
        (now.active_ids, now.opened_total),
        (vec![a.bmc_session_id], 2)
    );
    // Idle past the timeout: gone, even before the next datagram.
    assert!(bmc.sessions(later(t0, 31)).active_ids.is_empty());
}

#[test]
fn get_session_info_reports_the_current_and_the_nth_session() {
    let mut bmc = responder(&BOTH, Limits::default());
    let now = Instant::now();
    let mut a = Console::new(Suite17);
    a.connect(&mut bmc, now).unwrap();
    let mut b = Console::new(Suite3);
    b.connect(&mut bmc, now).unwrap();
    let (code, current) = b.call(&mut bmc, now, netfn::APP, GET_SESSION_INFO, &[0]);
    assert_eq!(code, 0);
    // Handle 2 (a has 1), 32 slots, 2 active, user 2, USER (sessions start
    // there), RMCP+ on channel 1, then the console's address: 127.0.0.1,
    // no MAC, its port LS byte first.
    let port = crate::sim::test_console::PEER.port().to_le_bytes();
    let user = privilege::USER;
    let mut expected = vec![2, 32, 2, USER_ID, user, 0x11, 127, 0, 0, 1];
    expected.extend_from_slice(&[0; 6]);
    expected.extend_from_slice(&port);
    assert_eq!(current, expected);
    let (_, first) = b.call(&mut bmc, now, netfn::APP, GET_SESSION_INFO, &[1]);
    assert_eq!(first[0], 1, "the first active session is a's");
    let by_id = [&[0xFF][..], &a.bmc_session_id.to_le_bytes()].concat();
    let (_, found) = b.call(&mut bmc, now, netfn::APP, GET_SESSION_INFO, &by_id);
    assert_eq!(found, first);
    let (code, none) = b.call(&mut bmc, now, netfn::APP, GET_SESSION_INFO, &[3]);
    assert_eq!((code, none), (0, vec![0, 32, 2]), "no third session");
    let (code, _) = b.call(&mut bmc, now, netfn::APP, GET_SESSION_INFO, &[]);
    assert_eq!(code, 0xC7);
}

#[test]
fn cold_reset_answers_then_is_silent_for_its_pause_and_keeps_the_host() {
    let limits = Limits {
        bmc_reset_pause: Duration::from_secs(2),
        ..Limits::default()
    };
    let mut bmc = responder(&BOTH, limits);
    let t0 = Instant::now();
    let mut console = Console::new(Suite17);
    console.connect(&mut bmc, t0).unwrap();
    console.call(&mut bmc, t0, netfn::APP, SET_SESSION_PRIVILEGE, &[4]);
    console.call(&mut bmc, t0, netfn::CHASSIS, 0x02, &[1]);
    let (code, _) = console.call(&mut bmc, t0, netfn::STORAGE, 0x42, &[]);
    assert_eq!(code, 0);
    let (code, _) = console.call(&mut bmc, t0, netfn::APP, 0x02, &[]);
    assert_eq!(code, 0, "answered before the reboot");
    assert_eq!(bmc.active_sessions(), 0, "sessions gone");
    assert_eq!(bmc.next_deadline(), Some(t0 + Duration::from_secs(2)));
    let ping = [6, 0, 0xFF, 6, 0, 0, 0x11, 0xBE, 0x80, 7, 0, 0];
    let almost = t0 + Duration::from_millis(1999);
    assert!(
        bmc.handle(&ping, almost).is_none(),
        "silent while rebooting"
    );
    assert!(bmc.is_down(almost));
    let back = t0 + Duration::from_secs(2);
    assert!(bmc.handle(&ping, back).is_some(), "back after the pause");
    assert!(bmc.subscribe().borrow().power_on, "the host kept running");
    let events: Vec<_> = bmc.sel().records().iter().map(|r| r.event()).collect();
    assert_eq!(
        events.last(),
        Some(&Some(crate::sim::sel::Event::BmcStarted))
    );
    assert_eq!(bmc.bmc_resets(), 1);
    // The old session is gone: a new one is needed.
    let req = console.request(netfn::APP, 0x01, &[]);
    assert!(bmc.handle(&req, back).is_none());
}
