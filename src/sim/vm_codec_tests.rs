use proptest::prelude::*;

use super::*;

fn msg(seq: u8, netfn: u8, cmd: u8, data: &[u8]) -> Message {
    Message {
        seq,
        netfn,
        lun: 0,
        cmd,
        data: data.to_vec(),
    }
}

#[test]
fn decodes_what_qemu_sends_on_connect_and_for_a_request() {
    // QEMU's chr_event(OPENED): VERSION 1, CAPABILITIES (IRQ|ATTN|POWER|
    // GRACEFUL_SHUTDOWN|RESET|NMI = 0x3F), then a reset from its machine
    // reset; then Get Device ID with seq 0x07: sum 07+18+01 = 0x20 → 0xE0.
    let wire = [
        0xFF, 0x01, 0xA1, 0x08, 0x3F, 0xA1, 0x04, 0xA1, 0x07, 0x18, 0x01, 0xE0, 0xA0,
    ];
    let frames = Decoder::new().feed(&wire);
    assert_eq!(
        frames,
        [
            Frame::Command(Command::Version(Some(1))),
            Frame::Command(Command::Capabilities(Some(0x3F))),
            Frame::Command(Command::Reset),
            Frame::Message(msg(7, 0x06, 0x01, &[])),
        ]
    );
}

#[test]
fn escapes_exactly_the_three_special_bytes() {
    // Get System Boot Options param 5 answered with seq 0xA0 and data
    // holding 0xA1 and 0xAA: each special byte goes out as AA, byte|0x10.
    let m = msg(0xA0, 0x01, 0x09, &[0x00, 0x01, 0x05, 0xA1, 0xAA, 0xB0]);
    let wire = encode_message(&m);
    assert_eq!(&wire[..2], [0xAA, 0xB0]);
    assert!(wire.windows(2).any(|w| w == [0xAA, 0xB1]));
    assert!(wire.windows(2).any(|w| w == [0xAA, 0xBA]));
    assert_eq!(wire.last(), Some(&MSG_CHAR));
    let specials = wire[..wire.len() - 1]
        .iter()
        .filter(|b| matches!(**b, MSG_CHAR | CMD_CHAR))
        .count();
    assert_eq!(specials, 0, "{wire:02X?}");
    assert_eq!(Decoder::new().feed(&wire), [Frame::Message(m)]);
    assert_eq!(encode_command(cmd::RESET, &[]), [0x04, 0xA1]);
    assert_eq!(encode_command(cmd::VERSION, &[1]), [0xFF, 0x01, 0xA1]);
}

#[test]
fn checksum_covers_seq_header_and_data() {
    let wire = encode_message(&msg(1, 0x00, 0x01, &[0x00, 0x21]));
    let sum = wire[..wire.len() - 1]
        .iter()
        .fold(0u8, |a, b| a.wrapping_add(*b));
    assert_eq!(sum, 0);
}

#[test]
fn bad_frames_are_dropped_and_the_next_one_decodes() {
    let good = encode_message(&msg(9, 0x00, 0x01, &[]));
    let mut bad_sum = good.clone();
    bad_sum[2] ^= 0x01;
    let mut wire = bad_sum;
    wire.extend_from_slice(&[0x01, 0x02, MSG_CHAR]); // too short
    wire.extend_from_slice(&[0x01, 0x02, 0x03, ESCAPE_CHAR, MSG_CHAR]);
    wire.extend_from_slice(&[ESCAPE_CHAR, CMD_CHAR]); // escape, then a command end
    wire.extend_from_slice(&[MSG_CHAR, CMD_CHAR, MSG_CHAR]); // empty frames: nothing
    wire.extend_from_slice(&good);
    assert_eq!(
        Decoder::new().feed(&wire),
        [
            Frame::Dropped(Dropped::BadChecksum),
            Frame::Dropped(Dropped::TooShort),
            Frame::Dropped(Dropped::EndedInEscape),
            Frame::Dropped(Dropped::EndedInEscape),
            Frame::Message(msg(9, 0x00, 0x01, &[])),
        ]
    );
}

#[test]
fn an_oversize_frame_is_discarded_whole_and_memory_stays_bounded() {
    let mut d = Decoder::new();
    // A megabyte with no terminator: nothing decoded, nothing kept.
    for _ in 0..1024 {
        assert!(d.feed(&[0x55; 1024]).is_empty());
        assert!(d.buf.capacity() <= 2 * MAX_FRAME, "{}", d.buf.capacity());
    }
    assert_eq!(d.feed(&[MSG_CHAR]), [Frame::Dropped(Dropped::TooLong)]);
    // Exactly MAX_FRAME bytes still fit.
    let data = vec![0x11; MAX_FRAME - 4];
    let m = msg(1, 0x06, 0x01, &data);
    assert_eq!(d.feed(&encode_message(&m)), [Frame::Message(m)]);
    let one_more = msg(1, 0x06, 0x01, &[0x11; MAX_FRAME - 3]);
    assert_eq!(
        d.feed(&encode_message(&one_more)),
        [Frame::Dropped(Dropped::TooLong)]
    );
}

#[test]
fn commands_keep_unknown_codes_and_short_arguments() {
    let frames = Decoder::new().feed(&[0xFF, 0xA1, 0x08, 0xA1, 0x42, 0x01, 0xA1]);
    assert_eq!(
        frames,
        [
            Frame::Command(Command::Version(None)),
            Frame::Command(Command::Capabilities(None)),
            Frame::Command(Command::Other(0x42)),
        ]
    );
}

#[test]
fn an_escaped_ordinary_byte_loses_bit_4_as_openipmi_does() {
    // AA 15 → 0x05 (OpenIPMI clears bit 4; an XOR would agree only on
    // bytes that have it set).
    let mut d = Decoder::new();
    assert_eq!(
        d.feed(&[0xAA, 0x15, 0xA1]),
        [Frame::Command(Command::Other(0x05))]
    );
}

proptest! {
    #[test]
    fn any_bytes_any_split_never_panic_and_stay_bounded(
        bytes in proptest::collection::vec(any::<u8>(), 0..2048),
        split in 0usize..2048,
    ) {
        let mut d = Decoder::new();
        let at = split.min(bytes.len());
        let mut frames = d.feed(&bytes[..at]);
        frames.extend(d.feed(&bytes[at..]));
        prop_assert!(d.buf.len() <= MAX_FRAME);
        for f in frames {
            if let Frame::Message(m) = f {
                prop_assert!(m.data.len() + 4 <= MAX_FRAME);
            }
        }
    }

    #[test]
    fn messages_round_trip_whatever_their_bytes(
        seq in any::<u8>(),
        netfn in 0u8..64,
        lun in 0u8..4,
        cmd in any::<u8>(),
        data in proptest::collection::vec(any::<u8>(), 0..(MAX_FRAME - 4)),
        garbage in proptest::collection::vec(any::<u8>(), 0..64),
    ) {
        let m = Message { seq, netfn, lun, cmd, data };
        // Whatever came before, a terminator resynchronises the stream.
        let mut wire = garbage;
        wire.push(MSG_CHAR);
        wire.extend(encode_message(&m));
        let frames = Decoder::new().feed(&wire);
        prop_assert_eq!(frames.last(), Some(&Frame::Message(m)));
    }
}
