//! TFTP packets (RFC 1350, with RFC 2347 options and OACK), decoded and
//! encoded without any I/O. Decoding never panics: every malformed input is
//! a [`DecodeError`], which tells whether it was a request (worth an
//! ERROR 4 answer) or something to drop.

use std::fmt;

/// Opcodes (RFC 1350, RFC 2347).
pub const OP_RRQ: u16 = 1;
pub const OP_WRQ: u16 = 2;
pub const OP_DATA: u16 = 3;
pub const OP_ACK: u16 = 4;
pub const OP_ERROR: u16 = 5;
pub const OP_OACK: u16 = 6;

/// Error codes (RFC 1350, RFC 2347).
pub const ERR_NOT_DEFINED: u16 = 0;
pub const ERR_FILE_NOT_FOUND: u16 = 1;
pub const ERR_ACCESS_VIOLATION: u16 = 2;
pub const ERR_DISK_FULL: u16 = 3;
pub const ERR_ILLEGAL_OPERATION: u16 = 4;
pub const ERR_UNKNOWN_TID: u16 = 5;
pub const ERR_FILE_EXISTS: u16 = 6;
pub const ERR_NO_SUCH_USER: u16 = 7;
pub const ERR_OPTION_REFUSED: u16 = 8;

/// The largest block RFC 2348 allows.
pub const MAX_BLKSIZE: u16 = 65464;
/// The block size without a `blksize` option.
pub const DEFAULT_BLKSIZE: u16 = 512;

/// Transfer mode of a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Text: lines end in CR LF on the wire, a lone CR is CR NUL.
    NetAscii,
    /// Bytes as they are.
    Octet,
}

impl Mode {
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::NetAscii => "netascii",
            Mode::Octet => "octet",
        }
    }
}

impl fmt::Display for Mode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A read or write request: the file as the client sent it (bytes, not
/// necessarily UTF-8), its mode and its RFC 2347 options in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    pub filename: Vec<u8>,
    pub mode: Mode,
    pub options: Vec<(String, String)>,
}

impl Request {
    /// The value of option `name` (case-insensitive); the first one wins.
    pub fn option(&self, name: &str) -> Option<&str> {
        self.options
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// One TFTP packet. `Data` borrows its payload from the decoded buffer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Packet<'a> {
    Rrq(Request),
    Wrq(Request),
    Data { block: u16, data: &'a [u8] },
    Ack { block: u16 },
    Error { code: u16, message: String },
    Oack { options: Vec<(String, String)> },
}

/// Why a datagram is not a TFTP packet.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// An RRQ or WRQ that cannot be understood: answer with ERROR 4.
    #[error("malformed request: {0}")]
    BadRequest(&'static str),
    /// A request with a mode other than netascii or octet (e.g. `mail`).
    #[error("unsupported transfer mode {0:?}")]
    UnsupportedMode(String),
    /// Anything else: too short, unknown opcode, a broken ERROR or OACK.
    #[error("malformed packet: {0}")]
    Malformed(&'static str),
}

impl DecodeError {
    /// Whether the datagram was a request, so an ERROR 4 answer makes sense.
    pub fn is_request(&self) -> bool {
        matches!(
            self,
            DecodeError::BadRequest(_) | DecodeError::UnsupportedMode(_)
        )
    }
}

/// Splits `bytes` at the first NUL: (before, after).
fn take_cstr(bytes: &[u8]) -> Option<(&[u8], &[u8])> {
    let end = bytes.iter().position(|&b| b == 0)?;
    Some((&bytes[..end], &bytes[end + 1..]))
}

/// `name\0value\0` pairs to the end; trailing NUL padding is tolerated.
fn decode_options(mut rest: &[u8]) -> Option<Vec<(String, String)>> {
    let mut options = Vec::new();
    while !rest.iter().all(|&b| b == 0) {
        let (name, after) = take_cstr(rest)?;
        let (value, after) = take_cstr(after)?;
        if name.is_empty() {
            return None;
        }
        options.push((
            String::from_utf8_lossy(name).into_owned(),
            String::from_utf8_lossy(value).into_owned(),
        ));
        rest = after;
    }
    Some(options)
}

fn decode_request(body: &[u8]) -> Result<Request, DecodeError> {
    let (filename, rest) =
        take_cstr(body).ok_or(DecodeError::BadRequest("filename is not NUL-terminated"))?;
    let (mode, rest) =
        take_cstr(rest).ok_or(DecodeError::BadRequest("mode is not NUL-terminated"))?;
    let mode = if mode.eq_ignore_ascii_case(b"octet") {
        Mode::Octet
    } else if mode.eq_ignore_ascii_case(b"netascii") {
        Mode::NetAscii
    } else {
        return Err(DecodeError::UnsupportedMode(
            String::from_utf8_lossy(mode).into_owned(),
        ));
    };
    let options = decode_options(rest).ok_or(DecodeError::BadRequest("broken options"))?;
    Ok(Request {
        filename: filename.to_vec(),
        mode,
        options,
    })
}

impl<'a> Packet<'a> {
    /// Decodes one datagram.
    pub fn decode(buf: &'a [u8]) -> Result<Packet<'a>, DecodeError> {
        if buf.len() < 2 {
            return Err(DecodeError::Malformed("shorter than an opcode"));
        }
        let opcode = u16::from_be_bytes([buf[0], buf[1]]);
        let body = &buf[2..];
        let block = || {
            body.get(..2)
                .map(|b| u16::from_be_bytes([b[0], b[1]]))
                .ok_or(DecodeError::Malformed("no block number"))
        };
        match opcode {
            OP_RRQ => decode_request(body).map(Packet::Rrq),
            OP_WRQ => decode_request(body).map(Packet::Wrq),
            OP_DATA => Ok(Packet::Data {
                block: block()?,
                data: &body[2.min(body.len())..],
            }),
            // Some clients pad ACKs: anything after the block is ignored.
            OP_ACK => Ok(Packet::Ack { block: block()? }),
            OP_ERROR => {
                let code = block()?;
                let text = &body[2..];
                // A missing terminator is tolerated: the message is all there is.
                let message = take_cstr(text).map_or(text, |(m, _)| m);
                Ok(Packet::Error {
                    code,
                    message: String::from_utf8_lossy(message).into_owned(),
                })
            }
            OP_OACK => decode_options(body)
                .map(|options| Packet::Oack { options })
                .ok_or(DecodeError::Malformed("broken OACK options")),
            _ => Err(DecodeError::Malformed("unknown opcode")),
        }
    }

    /// Appends the wire form of the packet to `out`. Strings containing NUL
    /// are cut at it (they could not be decoded otherwise).
    pub fn encode(&self, out: &mut Vec<u8>) {
        fn cstr(out: &mut Vec<u8>, s: &[u8]) {
            let end = s.iter().position(|&b| b == 0).unwrap_or(s.len());
            out.extend_from_slice(&s[..end]);
            out.push(0);
        }
        fn options(out: &mut Vec<u8>, opts: &[(String, String)]) {
            for (name, value) in opts {
                cstr(out, name.as_bytes());
                cstr(out, value.as_bytes());
            }
        }
        match self {
            Packet::Rrq(r) | Packet::Wrq(r) => {
                let op = if matches!(self, Packet::Rrq(_)) {
                    OP_RRQ
                } else {
                    OP_WRQ
                };
                out.extend_from_slice(&op.to_be_bytes());
                cstr(out, &r.filename);
                cstr(out, r.mode.as_str().as_bytes());
                options(out, &r.options);
            }
            Packet::Data { block, data } => {
                out.extend_from_slice(&data_header(*block));
                out.extend_from_slice(data);
            }
            Packet::Ack { block } => out.extend_from_slice(&ack(*block)),
            Packet::Error { code, message } => {
                out.extend_from_slice(&OP_ERROR.to_be_bytes());
                out.extend_from_slice(&code.to_be_bytes());
                cstr(out, message.as_bytes());
            }
            Packet::Oack { options: opts } => {
                out.extend_from_slice(&OP_OACK.to_be_bytes());
                options(out, opts);
            }
        }
    }

    /// The wire form of the packet.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::new();
        self.encode(&mut out);
        out
    }
}

/// The four header bytes of a DATA packet.
pub fn data_header(block: u16) -> [u8; 4] {
    let [hi, lo] = block.to_be_bytes();
    [0, OP_DATA as u8, hi, lo]
}

/// An ACK packet.
pub fn ack(block: u16) -> [u8; 4] {
    let [hi, lo] = block.to_be_bytes();
    [0, OP_ACK as u8, hi, lo]
}

/// An ERROR packet.
pub fn error(code: u16, message: &str) -> Vec<u8> {
    Packet::Error {
        code,
        message: message.to_string(),
    }
    .to_bytes()
}

/// Appends `data` to `out` in netascii: LF → CR LF, CR → CR NUL. Each byte
/// converts on its own, so chunks can be converted independently.
pub fn netascii_encode(data: &[u8], out: &mut Vec<u8>) {
    for &b in data {
        match b {
            b'\n' => out.extend_from_slice(b"\r\n"),
            b'\r' => out.extend_from_slice(b"\r\0"),
            _ => out.push(b),
        }
    }
}

/// Netascii back to local text (CR LF → LF, CR NUL → CR), across blocks:
/// a CR at the end of one block is held until the next byte arrives.
#[derive(Debug, Default)]
pub struct NetasciiDecoder {
    pending_cr: bool,
}

impl NetasciiDecoder {
    pub fn push(&mut self, data: &[u8], out: &mut Vec<u8>) {
        for &b in data {
            if self.pending_cr {
                self.pending_cr = false;
                match b {
                    b'\n' => out.push(b'\n'),
                    0 => out.push(b'\r'),
                    b'\r' => {
                        out.push(b'\r');
                        self.pending_cr = true;
                    }
                    _ => out.extend_from_slice(&[b'\r', b]),
                }
            } else if b == b'\r' {
                self.pending_cr = true;
            } else {
                out.push(b);
            }
        }
    }

    /// Ends the stream: a trailing lone CR is kept as it is.
    pub fn finish(&mut self, out: &mut Vec<u8>) {
        if std::mem::take(&mut self.pending_cr) {
            out.push(b'\r');
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn rrq(name: &[u8], mode: Mode, options: &[(&str, &str)]) -> Packet<'static> {
        Packet::Rrq(Request {
            filename: name.to_vec(),
            mode,
            options: options
                .iter()
                .map(|(n, v)| (n.to_string(), v.to_string()))
                .collect(),
        })
    }

    #[test]
    fn decodes_what_real_clients_send() {
        // busybox tftp -g -b 1428
        let p = b"\0\x01pxelinux.cfg/default\0octet\0blksize\x001428\0tsize\x000\0";
        let Packet::Rrq(r) = Packet::decode(p).unwrap() else {
            panic!()
        };
        assert_eq!(r.filename, b"pxelinux.cfg/default");
        assert_eq!(r.mode, Mode::Octet);
        assert_eq!(r.option("BLKSIZE"), Some("1428"));
        assert_eq!(r.option("tsize"), Some("0"));
        // tftp-hpa: upper-case mode, no options
        let p = b"\0\x01a\0NetASCII\0";
        assert_eq!(Packet::decode(p), Ok(rrq(b"a", Mode::NetAscii, &[])));
        // padding after the options is tolerated
        let p = b"\0\x02a\0octet\0\0\0";
        assert!(matches!(Packet::decode(p), Ok(Packet::Wrq(_))));
        assert_eq!(
            Packet::decode(b"\0\x04\x12\x34\0\0"),
            Ok(Packet::Ack { block: 0x1234 })
        );
        assert_eq!(
            Packet::decode(b"\0\x03\0\x01"),
            Ok(Packet::Data {
                block: 1,
                data: b""
            })
        );
        assert_eq!(
            Packet::decode(b"\0\x05\0\x01File not found"),
            Ok(Packet::Error {
                code: 1,
                message: "File not found".into()
            })
        );
    }

    #[test]
    fn malformed_requests_are_told_apart_from_noise() {
        for bad in [
            &b"\0\x01file"[..],
            b"\0\x01file\0octet",
            b"\0\x01file\0octet\0blksize\0",
            b"\0\x01file\0octet\0blksize\x00512",
            b"\0\x01file\0octet\0\x00512\0",
            b"\0\x01",
        ] {
            let e = Packet::decode(bad).unwrap_err();
            assert!(e.is_request(), "{bad:?}: {e}");
        }
        assert_eq!(
            Packet::decode(b"\0\x01f\0mail\0"),
            Err(DecodeError::UnsupportedMode("mail".into()))
        );
        for noise in [
            &b""[..],
            b"\0",
            b"\0\x07abc",
            b"\0\x04\0",
            b"\0\x03",
            b"\0\x05\0",
            b"\0\x06x",
        ] {
            let e = Packet::decode(noise).unwrap_err();
            assert!(!e.is_request(), "{noise:?}: {e}");
        }
    }

    #[test]
    fn netascii_round_trips() {
        let text = b"a\nb\r\nc\rd\r\r\n\r";
        let mut wire = Vec::new();
        netascii_encode(text, &mut wire);
        assert_eq!(wire, b"a\r\nb\r\0\r\nc\r\0d\r\0\r\0\r\n\r\0");
        // decode split at every position
        for cut in 0..=wire.len() {
            let mut d = NetasciiDecoder::default();
            let mut out = Vec::new();
            d.push(&wire[..cut], &mut out);
            d.push(&wire[cut..], &mut out);
            d.finish(&mut out);
            assert_eq!(out, text, "cut at {cut}");
        }
    }

    fn arb_string() -> impl Strategy<Value = String> {
        proptest::collection::vec(1u8..=255, 0..20)
            .prop_map(|b| String::from_utf8_lossy(&b).replace('\0', ""))
    }

    fn arb_options() -> impl Strategy<Value = Vec<(String, String)>> {
        proptest::collection::vec(
            (
                arb_string().prop_filter("names are not empty", |s| !s.is_empty()),
                arb_string(),
            ),
            0..5,
        )
    }

    fn arb_packet() -> impl Strategy<Value = Vec<u8>> {
        let mode = prop_oneof![Just(Mode::Octet), Just(Mode::NetAscii)];
        let request = (
            proptest::collection::vec(1u8..=255, 0..40),
            mode,
            arb_options(),
        )
            .prop_map(|(filename, mode, options)| Request {
                filename,
                mode,
                options,
            })
            .boxed();
        prop_oneof![
            request.clone().prop_map(|r| Packet::Rrq(r).to_bytes()),
            request.prop_map(|r| Packet::Wrq(r).to_bytes()),
            (any::<u16>(), proptest::collection::vec(any::<u8>(), 0..600))
                .prop_map(|(block, data)| Packet::Data { block, data: &data }.to_bytes()),
            any::<u16>().prop_map(|block| Packet::Ack { block }.to_bytes()),
            (any::<u16>(), arb_string()).prop_map(|(code, message)| Packet::Error {
                code,
                message
            }
            .to_bytes()),
            arb_options().prop_map(|options| Packet::Oack { options }.to_bytes()),
        ]
    }

    proptest! {
        #[test]
        fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
            let _ = Packet::decode(&bytes);
        }

        #[test]
        fn valid_packets_round_trip(wire in arb_packet()) {
            let packet = Packet::decode(&wire).expect("an encoded packet decodes");
            prop_assert_eq!(packet.to_bytes(), wire);
        }

        #[test]
        fn mutated_packets_never_panic(
            wire in arb_packet(),
            edits in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>(), 0u8..3), 1..6),
        ) {
            let mut wire = wire;
            for (at, byte, how) in edits {
                match how {
                    0 if !wire.is_empty() => { let i = at.index(wire.len()); wire[i] = byte; }
                    1 => { let i = at.index(wire.len() + 1); wire.insert(i, byte); }
                    _ if !wire.is_empty() => { let i = at.index(wire.len()); wire.truncate(i); }
                    _ => {}
                }
            }
            if let Ok(p) = Packet::decode(&wire) {
                // Whatever decodes re-encodes and decodes to the same packet.
                let again = p.to_bytes();
                prop_assert_eq!(Packet::decode(&again), Ok(p));
            }
        }

        #[test]
        fn netascii_decodes_what_it_encodes(text in proptest::collection::vec(any::<u8>(), 0..300), cut in any::<prop::sample::Index>()) {
            let mut wire = Vec::new();
            netascii_encode(&text, &mut wire);
            let cut = cut.index(wire.len() + 1);
            let mut d = NetasciiDecoder::default();
            let mut out = Vec::new();
            d.push(&wire[..cut], &mut out);
            d.push(&wire[cut..], &mut out);
            d.finish(&mut out);
            prop_assert_eq!(out, text);
        }
    }
}
