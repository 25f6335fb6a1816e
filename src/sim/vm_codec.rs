//! OpenIPMI's "VM" serial protocol, I/O-free: what QEMU's `ipmi-bmc-extern`
//! device speaks on its chardev to an external BMC. Bytes in, frames out;
//! frames in, bytes out. No sockets here.
//!
//! Checked against QEMU's hw/ipmi/ipmi_bmc_extern.c and OpenIPMI's
//! lanserv/serial_ipmi.c (the "VM" codec, the BMC side this plays):
//!
//! - A frame ends with 0xA0 (a message) or 0xA1 (a command). 0xAA escapes
//!   the next byte: the sender writes 0xAA then the byte with bit 4 set
//!   (only 0xA0, 0xA1 and 0xAA are escaped); the receiver clears bit 4.
//! - A message is `seq, netfn << 2 | lun, cmd, data…, checksum`, the
//!   checksum making the byte sum zero. The response carries the request's
//!   seq and the response NetFn; its data starts with the completion code.
//! - A command is a code and its arguments: VERSION (0xFF, version 1),
//!   CAPABILITIES (0x08, bit mask) and RESET (0x04, "the guest reset") come
//!   from QEMU; the BMC sends VERSION on connect and POWEROFF, RESET,
//!   GRACEFUL_SHUTDOWN, NMI, IRQ and ATTN commands to the guest.
//! - Bad frames are dropped without an answer, as OpenIPMI does: too short,
//!   bad checksum, ended inside an escape, longer than the buffer (QEMU
//!   then fails the guest's request with "timeout" after 4 s).

/// Ends a message.
pub const MSG_CHAR: u8 = 0xA0;
/// Ends a command.
pub const CMD_CHAR: u8 = 0xA1;
/// The next byte has bit 4 set and stands for itself with it clear.
pub const ESCAPE_CHAR: u8 = 0xAA;

pub const PROTOCOL_VERSION: u8 = 1;

/// Command codes, both directions.
pub mod cmd {
    /// A version byte follows.
    pub const VERSION: u8 = 0xFF;
    pub const NOATTN: u8 = 0x00;
    pub const ATTN: u8 = 0x01;
    pub const ATTN_IRQ: u8 = 0x02;
    pub const POWEROFF: u8 = 0x03;
    pub const RESET: u8 = 0x04;
    pub const ENABLE_IRQ: u8 = 0x05;
    pub const DISABLE_IRQ: u8 = 0x06;
    pub const SEND_NMI: u8 = 0x07;
    /// A capability mask follows ([`super::caps`]).
    pub const CAPABILITIES: u8 = 0x08;
    pub const GRACEFUL_SHUTDOWN: u8 = 0x09;
}

/// Bits of the CAPABILITIES command QEMU sends on connect.
pub mod caps {
    pub const POWER: u8 = 0x01;
    pub const RESET: u8 = 0x02;
    pub const IRQ: u8 = 0x04;
    pub const NMI: u8 = 0x08;
    pub const ATTN: u8 = 0x10;
    pub const GRACEFUL_SHUTDOWN: u8 = 0x20;
}

/// Longest frame kept, unescaped: QEMU's largest message (300 bytes,
/// MAX_IPMI_MSG_SIZE) with seq and checksum, plus OpenIPMI's slack.
pub const MAX_FRAME: usize = 304;

/// An IPMI message in a VM frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    pub seq: u8,
    pub netfn: u8,
    pub lun: u8,
    pub cmd: u8,
    /// For a response, the completion code first.
    pub data: Vec<u8>,
}

/// A command frame as received.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    Version(Option<u8>),
    Capabilities(Option<u8>),
    /// From QEMU: the guest's system was reset.
    Reset,
    /// Anything else (codes the BMC only sends, or unknown ones).
    Other(u8),
}

/// Why a frame was dropped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dropped {
    /// A message shorter than seq, netfn, cmd and checksum.
    TooShort,
    BadChecksum,
    /// Longer than [`MAX_FRAME`]: the whole frame is discarded.
    TooLong,
    /// The terminator came right after an escape.
    EndedInEscape,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Frame {
    Message(Message),
    Command(Command),
    Dropped(Dropped),
}

/// Splits a byte stream into frames. Holds at most [`MAX_FRAME`] bytes
/// whatever it is fed.
#[derive(Debug, Default)]
pub struct Decoder {
    buf: Vec<u8>,
    in_escape: bool,
    too_long: bool,
}

impl Decoder {
    pub fn new() -> Decoder {
        Decoder::default()
    }

    /// Every frame `bytes` completes, in order.
    pub fn feed(&mut self, bytes: &[u8]) -> Vec<Frame> {
        bytes.iter().filter_map(|&b| self.push(b)).collect()
    }

    /// One byte; a frame when it ends one (empty frames are ignored).
    pub fn push(&mut self, byte: u8) -> Option<Frame> {
        match byte {
            MSG_CHAR | CMD_CHAR => {
                let frame = self.finish(byte == MSG_CHAR);
                self.buf.clear();
                self.in_escape = false;
                self.too_long = false;
                frame
            }
            ESCAPE_CHAR => {
                if !self.too_long {
                    self.in_escape = true;
                }
                None
            }
            mut b => {
                if std::mem::take(&mut self.in_escape) {
                    b &= !0x10;
                }
                if !self.too_long {
                    if self.buf.len() >= MAX_FRAME {
                        self.too_long = true;
                        self.buf.clear();
                    } else {
                        self.buf.push(b);
                    }
                }
                None
            }
        }
    }

    fn finish(&self, message: bool) -> Option<Frame> {
        let dropped = |why| Some(Frame::Dropped(why));
        if self.in_escape {
            return dropped(Dropped::EndedInEscape);
        }
        if self.too_long {
            return dropped(Dropped::TooLong);
        }
        if self.buf.is_empty() {
            return None;
        }
        if !message {
            return Some(Frame::Command(command(&self.buf)));
        }
        if self.buf.len() < 4 {
            return dropped(Dropped::TooShort);
        }
        if sum(&self.buf) != 0 {
            return dropped(Dropped::BadChecksum);
        }
        let (head, rest) = self.buf.split_at(3);
        Some(Frame::Message(Message {
            seq: head[0],
            netfn: head[1] >> 2,
            lun: head[1] & 3,
            cmd: head[2],
            data: rest[..rest.len() - 1].to_vec(),
        }))
    }
}

fn command(frame: &[u8]) -> Command {
    let arg = frame.get(1).copied();
    match frame[0] {
        cmd::VERSION => Command::Version(arg),
        cmd::CAPABILITIES => Command::Capabilities(arg),
        cmd::RESET => Command::Reset,
        other => Command::Other(other),
    }
}

fn sum(bytes: &[u8]) -> u8 {
    bytes.iter().fold(0u8, |a, b| a.wrapping_add(*b))
}

fn escape_into(out: &mut Vec<u8>, byte: u8) {
    match byte {
        MSG_CHAR | CMD_CHAR | ESCAPE_CHAR => out.extend_from_slice(&[ESCAPE_CHAR, byte | 0x10]),
        b => out.push(b),
    }
}

/// A message frame: seq, netfn/lun, cmd, `data`, checksum, terminator.
pub fn encode_message(msg: &Message) -> Vec<u8> {
    let head = [msg.seq, msg.netfn << 2 | (msg.lun & 3), msg.cmd];
    let mut out = Vec::with_capacity(2 * (head.len() + msg.data.len() + 1) + 1);
    for &b in head.iter().chain(&msg.data) {
        escape_into(&mut out, b);
    }
    let checksum = sum(&head).wrapping_add(sum(&msg.data)).wrapping_neg();
    escape_into(&mut out, checksum);
    out.push(MSG_CHAR);
    out
}

/// A command frame: its code, its arguments, terminator.
pub fn encode_command(code: u8, args: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(2 * (1 + args.len()) + 1);
    for &b in std::iter::once(&code).chain(args) {
        escape_into(&mut out, b);
    }
    out.push(CMD_CHAR);
    out
}

#[cfg(test)]
#[path = "vm_codec_tests.rs"]
mod tests;
