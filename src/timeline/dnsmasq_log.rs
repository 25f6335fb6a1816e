//! dnsmasq's `--log-dhcp` lines to [`DhcpMessage`]s.
//!
//! dnsmasq 2.90 (rfc2131.c `log_packet`, `log_options`) writes, behind the
//! log prefix (`Mmm dd HH:MM:SS dnsmasq-dhcp[PID]: ` in a `--log-facility`
//! file, `dnsmasq-dhcp: ` on stderr with `-d`):
//!
//! ```text
//! XID DHCPTYPE(IFACE) [IP ]MAC [STRING][ERR]     with --log-dhcp
//! DHCPTYPE(IFACE) [IP ]MAC [STRING][ERR]         without it
//! XID sent size: N option: CODE NAME  VALUE      one per option sent
//! ```
//!
//! The lines of one packet share the transaction id (XID); the options
//! dnsmasq sent follow the reply they belong to. Options with no name (or
//! none it can decode) are printed as hex, cut after 14 bytes with "...".
//! Every line is hostile (clients choose hostnames and vendor classes):
//! lengths and the number of open transactions are bounded, and lines this
//! parser does not understand are ignored.

use std::collections::{HashMap, VecDeque};
use std::net::Ipv4Addr;

use super::{DhcpMessage, SentOption};

/// Longest line looked at; the rest is cut.
pub const MAX_LINE: usize = 4096;
/// Most transactions held open; the oldest is completed early past this.
pub const MAX_OPEN: usize = 1024;
/// Most options kept for one message.
const MAX_OPTIONS: usize = 64;
/// Longest option value kept (dnsmasq prints at most an option's 255 bytes).
const MAX_VALUE: usize = 1024;
/// Longest text before "dnsmasq-dhcp" taken as the log's time prefix.
const MAX_PREFIX: usize = 64;

/// Groups dnsmasq's lines into messages by transaction id.
#[derive(Debug, Default)]
pub struct Parser {
    /// Replies still taking their `sent size:` lines, by transaction id.
    open: HashMap<u32, DhcpMessage>,
    /// Transaction ids in the order their replies were opened.
    order: VecDeque<u32>,
}

impl Parser {
    pub fn new() -> Parser {
        Parser::default()
    }

    /// Feeds one line (without newline); returns the messages completed by it.
    pub fn line(&mut self, line: &str) -> Vec<DhcpMessage> {
        let Some(body) = body(cut(line, MAX_LINE)) else {
            return Vec::new();
        };
        let (xid, rest) = match body.split_once(' ') {
            Some((first, rest)) if is_digits(first) => match first.parse::<u32>() {
                Ok(xid) => (Some(xid), rest),
                Err(_) => return Vec::new(),
            },
            _ => (None, body),
        };
        if let Some(option) = rest.strip_prefix("sent size:") {
            if let (Some(xid), Some(option)) = (xid, sent_option(option)) {
                self.attach(xid, option);
            }
            return Vec::new();
        }
        let Some(message) = message(rest) else {
            return Vec::new();
        };
        let mut done = Vec::new();
        // A new message of this transaction: the reply before it is whole.
        if let Some(xid) = xid
            && let Some(previous) = self.take(xid)
        {
            done.push(previous);
        }
        match xid {
            // Only replies carry `sent size:` lines; what dnsmasq received
            // is whole at once, and without ids nothing can follow.
            Some(xid) if is_reply(&message.message) => {
                if self.order.len() >= MAX_OPEN
                    && let Some(oldest) = self.order.pop_front()
                    && let Some(early) = self.open.remove(&oldest)
                {
                    done.push(early);
                }
                self.open.insert(xid, message);
                self.order.push_back(xid);
            }
            _ => done.push(message),
        }
        done
    }

    /// Messages still open (call after each batch of lines read: dnsmasq
    /// writes one packet's lines together).
    pub fn flush(&mut self) -> Vec<DhcpMessage> {
        let order = std::mem::take(&mut self.order);
        order
            .into_iter()
            .filter_map(|xid| self.open.remove(&xid))
            .collect()
    }

    fn take(&mut self, xid: u32) -> Option<DhcpMessage> {
        let message = self.open.remove(&xid)?;
        self.order.retain(|&x| x != xid);
        Some(message)
    }

    fn attach(&mut self, xid: u32, option: SentOption) {
        if let Some(message) = self.open.get_mut(&xid)
            && message.sent.len() < MAX_OPTIONS
        {
            message.sent.push(option);
        }
    }
}

/// At most `max` bytes of `s`, cut on a character boundary.
fn cut(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

fn is_digits(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit())
}

/// What follows `dnsmasq-dhcp[PID]: ` (or `dnsmasq-dhcp: `), when the
/// text before it is short enough to be the log's time prefix. The first
/// occurrence is dnsmasq's own: client text comes only after it.
fn body(line: &str) -> Option<&str> {
    let at = line.find("dnsmasq-dhcp")?;
    if at > MAX_PREFIX || (at > 0 && !line[..at].ends_with(' ')) {
        return None;
    }
    let mut rest = &line[at + "dnsmasq-dhcp".len()..];
    if let Some(pid) = rest.strip_prefix('[') {
        let (digits, after) = pid.split_once(']')?;
        if !is_digits(digits) {
            return None;
        }
        rest = after;
    }
    rest.strip_prefix(": ")
}

/// The messages dnsmasq sends (the ones `sent size:` lines follow).
fn is_reply(message: &str) -> bool {
    matches!(message, "OFFER" | "ACK" | "NAK" | "BOOTP")
}

/// `DHCPTYPE(IFACE) [IP ]MAC [NOTE]`.
fn message(rest: &str) -> Option<DhcpMessage> {
    let (head, rest) = rest.split_once(' ').unwrap_or((rest, ""));
    let (kind, interface) = head.strip_suffix(')')?.split_once('(')?;
    let message = match kind.strip_prefix("DHCP") {
        Some(word) => word,
        None if kind == "BOOTP" => kind,
        None => return None,
    };
    if !matches!(
        message,
        "DISCOVER"
            | "OFFER"
            | "REQUEST"
            | "ACK"
            | "NAK"
            | "DECLINE"
            | "RELEASE"
            | "INFORM"
            | "BOOTP"
    ) {
        return None;
    }
    let rest = rest.trim_start_matches(' ');
    let (first, after) = rest.split_once(' ').unwrap_or((rest, ""));
    let (ip, mac, note) = if first.parse::<Ipv4Addr>().is_ok() {
        let (mac, note) = after.split_once(' ').unwrap_or((after, ""));
        (Some(first.to_string()), mac, note)
    } else {
        (None, first, after)
    };
    if !is_mac(mac) {
        return None;
    }
    let note = note.trim();
    Some(DhcpMessage {
        message: message.to_string(),
        mac: mac.to_ascii_lowercase(),
        ip,
        interface: interface.to_string(),
        sent: Vec::new(),
        note: (!note.is_empty()).then(|| note.to_string()),
    })
}

/// dnsmasq's `print_mac`: hex bytes joined by ':' (up to 16 bytes of
/// hardware address, and a type byte for non-Ethernet), or "<null>".
fn is_mac(s: &str) -> bool {
    if s == "<null>" {
        return true;
    }
    let mut n = 0;
    for byte in s.split([':', '-']) {
        n += 1;
        if n > 20 || byte.is_empty() || byte.len() > 2 {
            return false;
        }
        if !byte.bytes().all(|b| b.is_ascii_hexdigit()) {
            return false;
        }
    }
    true
}

/// After `sent size:`: `%3d option:%3d NAME  VALUE` (2.90), or the older
/// `%3d option:%3d:NAME  VALUE` / `%3d option:%3d  HEX...`.
fn sent_option(s: &str) -> Option<SentOption> {
    let (size, rest) = s.trim_start().split_once(' ')?;
    let size = bounded_number(size)?;
    let rest = rest.trim_start().strip_prefix("option:")?.trim_start();
    let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
    let code = u16::try_from(bounded_number(&rest[..digits])?).ok()?;
    let rest = &rest[digits..];
    // One separator (':' or ' ') before the name; the name has no spaces.
    let rest = rest
        .strip_prefix(':')
        .or_else(|| rest.strip_prefix(' '))
        .unwrap_or(rest);
    let (name, value) = rest.split_once("  ").unwrap_or((rest, ""));
    let name = name.trim();
    let value = value.trim_end();
    let hex = hex_bytes(value);
    let (value, truncated) = match hex {
        // No name: dnsmasq printed the bytes; show what they say.
        Some((bytes, truncated)) if name.is_empty() => (printable(&bytes), truncated),
        Some((_, truncated)) => (value.to_string(), truncated),
        None => (value.to_string(), false),
    };
    let (value, cut_here) = if value.len() > MAX_VALUE {
        (cut(&value, MAX_VALUE).to_string(), true)
    } else {
        (value, false)
    };
    Some(SentOption {
        code,
        size,
        value,
        truncated: truncated || cut_here,
    })
}

/// A decimal number of at most 6 digits (sizes and codes are below 256).
fn bounded_number(s: &str) -> Option<usize> {
    if !is_digits(s) || s.len() > 6 {
        return None;
    }
    s.parse().ok()
}

/// `aa:bb:cc` or `aa:bb:cc...` as bytes, and whether it was cut.
fn hex_bytes(s: &str) -> Option<(Vec<u8>, bool)> {
    let (hex, truncated) = match s.strip_suffix("...") {
        Some(hex) => (hex, true),
        None => (s, false),
    };
    if hex.is_empty() {
        return None;
    }
    hex.split(':')
        .map(|pair| {
            if pair.len() == 2 {
                u8::from_str_radix(pair, 16).ok()
            } else {
                None
            }
        })
        .collect::<Option<Vec<u8>>>()
        .map(|bytes| (bytes, truncated))
}

/// The printable ASCII of `bytes`, as dnsmasq's own `sanitise` keeps.
fn printable(bytes: &[u8]) -> String {
    bytes
        .iter()
        .filter(|b| (0x20..0x7f).contains(*b))
        .map(|&b| b as char)
        .collect()
}

#[cfg(test)]
#[path = "dnsmasq_log_tests.rs"]
mod tests;
