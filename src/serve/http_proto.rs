//! The pure HTTP/1.1 pieces of the server, free of I/O: request heads,
//! request targets, byte ranges, validators and HTTP dates.

use crate::calendar::{civil_from_days, days_from_civil};
use percent_encoding::percent_decode;

/// Most header lines one request may carry (more → 431).
const MAX_HEADERS: usize = 64;

/// One parsed request head, owned so the read buffer can move on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Head {
    pub method: String,
    /// The request target exactly as sent (`/a%20b?x=1`).
    pub target: String,
    /// 0 for HTTP/1.0, 1 for HTTP/1.1.
    pub minor_version: u8,
    pub headers: Vec<(String, Vec<u8>)>,
    /// Bytes of the buffer the head took, blank line included.
    pub len: usize,
}

/// Why a request head cannot be served; the connection closes after the
/// status is sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Reject {
    /// 400: not HTTP, or a framing we refuse (conflicting Content-Length).
    Bad,
    /// 431: the head exceeds the size or header-count limit.
    TooLarge,
    /// 501: a Transfer-Encoding (chunked bodies are not supported).
    NotImplemented,
}

impl Reject {
    pub fn status(self) -> u16 {
        match self {
            Reject::Bad => 400,
            Reject::TooLarge => 431,
            Reject::NotImplemented => 501,
        }
    }
}

/// The head at the start of `buf`: `Ok(None)` while it is incomplete.
pub(super) fn parse_head(buf: &[u8], max_bytes: usize) -> Result<Option<Head>, Reject> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut req = httparse::Request::new(&mut headers);
    match req.parse(buf) {
        Ok(httparse::Status::Complete(len)) if len > max_bytes => Err(Reject::TooLarge),
        Ok(httparse::Status::Complete(len)) => Ok(Some(Head {
            method: req.method.unwrap_or_default().to_owned(),
            target: req.path.unwrap_or_default().to_owned(),
            minor_version: req.version.unwrap_or(1),
            headers: req
                .headers
                .iter()
                .map(|h| (h.name.to_owned(), h.value.to_owned()))
                .collect(),
            len,
        })),
        Ok(httparse::Status::Partial) if buf.len() >= max_bytes => Err(Reject::TooLarge),
        Ok(httparse::Status::Partial) => Ok(None),
        Err(httparse::Error::TooManyHeaders) => Err(Reject::TooLarge),
        Err(_) => Err(Reject::Bad),
    }
}

impl Head {
    /// The first value of header `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&[u8]> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_slice())
    }

    pub fn headers_named<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a [u8]> + 'a {
        self.headers
            .iter()
            .filter(move |(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_slice())
    }

    /// Whether a comma-separated header (`Connection`, `Expect`) lists `token`.
    fn lists(&self, name: &str, token: &str) -> bool {
        self.headers_named(name)
            .flat_map(|v| v.split(|&b| b == b','))
            .any(|t| t.trim_ascii().eq_ignore_ascii_case(token.as_bytes()))
    }

    /// Whether the client wants the connection kept after this request.
    pub fn keep_alive(&self) -> bool {
        if self.minor_version == 0 {
            self.lists("connection", "keep-alive")
        } else {
            !self.lists("connection", "close")
        }
    }

    pub fn expects_continue(&self) -> bool {
        self.minor_version >= 1 && self.lists("expect", "100-continue")
    }

    /// The body's length: by Content-Length (every copy must agree), 0
    /// without one; any Transfer-Encoding is refused.
    pub fn content_length(&self) -> Result<u64, Reject> {
        if self.header("transfer-encoding").is_some() {
            return Err(Reject::NotImplemented);
        }
        let mut length = None;
        for value in self.headers_named("content-length") {
            for part in value.split(|&b| b == b',') {
                let n = digits(part.trim_ascii())
                    .filter(|&n| n != u64::MAX)
                    .ok_or(Reject::Bad)?;
                if length.is_some_and(|l| l != n) {
                    return Err(Reject::Bad);
                }
                length = Some(n);
            }
        }
        Ok(length.unwrap_or(0))
    }
}

/// An unsigned decimal made of ASCII digits only, saturating at `u64::MAX`.
fn digits(s: &[u8]) -> Option<u64> {
    if s.is_empty() || !s.iter().all(u8::is_ascii_digit) {
        return None;
    }
    Some(s.iter().fold(0u64, |n, &d| {
        n.saturating_mul(10).saturating_add(u64::from(d - b'0'))
    }))
}

/// What a request target names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Target {
    /// A file under the root: the percent-decoded path, to `path::resolve`.
    File(Vec<u8>),
    /// The reserved `/v1/` API: the decoded path with `.` and empty segments
    /// removed (`/v1/nodes/x`), and the raw query.
    Api { path: String, query: Option<String> },
    /// Refused without looking at the disk (`..`, encoded separators, NUL).
    NotFound,
    /// Not a request target at all.
    Bad,
}

pub(super) fn classify(target: &str) -> Target {
    let target = target.split('#').next().unwrap_or_default();
    let (mut path, query) = match target.split_once('?') {
        Some((p, q)) => (p, Some(q.to_owned())),
        None => (target, None),
    };
    // The absolute form (`http://host/path`), which servers must accept.
    for scheme in ["http://", "https://"] {
        if path.len() >= scheme.len() && path[..scheme.len()].eq_ignore_ascii_case(scheme) {
            let rest = &path[scheme.len()..];
            path = rest.find('/').map_or("/", |i| &rest[i..]);
        }
    }
    if !path.starts_with('/') {
        return Target::Bad;
    }
    // Encoded separators and NUL change what the path means once decoded.
    let lower = path.to_ascii_lowercase();
    if ["%2f", "%5c", "%00"].iter().any(|e| lower.contains(e)) {
        return Target::NotFound;
    }
    let decoded: Vec<u8> = percent_decode(path.as_bytes()).collect();
    if decoded.contains(&0) || decoded.contains(&b'\\') {
        return Target::NotFound;
    }
    let segments: Vec<&[u8]> = decoded
        .split(|&b| b == b'/')
        .filter(|s| !s.is_empty() && *s != b".")
        .collect();
    if segments.iter().any(|s| *s == b"..") {
        return Target::NotFound;
    }
    if segments.first() == Some(&&b"v1"[..]) {
        let joined: Vec<u8> = segments
            .iter()
            .flat_map(|s| [&b"/"[..], s])
            .flatten()
            .copied()
            .collect();
        return match String::from_utf8(joined) {
            Ok(path) => Target::Api { path, query },
            Err(_) => Target::NotFound,
        };
    }
    Target::File(decoded)
}

/// The part of a file a `Range` header asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum ByteRange {
    /// No (usable) range: the whole file, 200.
    Full,
    /// Bytes `start..=end`, 206.
    Part { start: u64, end: u64 },
    /// 416.
    Unsatisfiable,
}

/// A `Range` header value against a file of `size` bytes. A syntactically
/// invalid header, another unit, and several ranges all give the whole file.
pub(super) fn parse_range(value: &[u8], size: u64) -> ByteRange {
    let value = value.trim_ascii();
    let Some(set) = value
        .get(..6)
        .filter(|unit| unit.eq_ignore_ascii_case(b"bytes="))
        .map(|_| &value[6..])
    else {
        return ByteRange::Full;
    };
    let specs: Vec<&[u8]> = set
        .split(|&b| b == b',')
        .map(<[u8]>::trim_ascii)
        .filter(|s| !s.is_empty())
        .collect();
    let [spec] = specs[..] else {
        return ByteRange::Full;
    };
    let Some(dash) = spec.iter().position(|&b| b == b'-') else {
        return ByteRange::Full;
    };
    let (first, last) = (&spec[..dash], &spec[dash + 1..]);
    if first.is_empty() {
        return match digits(last) {
            None => ByteRange::Full,
            Some(0) => ByteRange::Unsatisfiable,
            Some(_) if size == 0 => ByteRange::Unsatisfiable,
            Some(n) => ByteRange::Part {
                start: size.saturating_sub(n),
                end: size - 1,
            },
        };
    }
    let Some(start) = digits(first) else {
        return ByteRange::Full;
    };
    let end = if last.is_empty() {
        u64::MAX
    } else {
        match digits(last) {
            Some(end) if end >= start => end,
            _ => return ByteRange::Full,
        }
    };
    if start >= size {
        return ByteRange::Unsatisfiable;
    }
    ByteRange::Part {
        start,
        end: end.min(size - 1),
    }
}

/// Whether an `If-None-Match` value lists `etag` (weak comparison) or is `*`.
pub(super) fn etag_listed(if_none_match: &[u8], etag: &str) -> bool {
    let bare = |t: &[u8]| -> Vec<u8> { t.strip_prefix(b"W/").unwrap_or(t).to_vec() };
    let ours = bare(etag.as_bytes());
    if_none_match
        .split(|&b| b == b',')
        .map(<[u8]>::trim_ascii)
        .any(|t| t == b"*" || bare(t) == ours)
}

/// The `Content-Type` of a served file, from its name.
pub(super) fn content_type(path: &std::path::Path) -> &'static str {
    let ext = path
        .extension()
        .and_then(|e| e.to_str())
        .map(str::to_ascii_lowercase);
    let in_config_dir = path
        .parent()
        .and_then(|p| p.file_name())
        .is_some_and(|d| d == "pxelinux.cfg");
    match ext.as_deref() {
        Some("cfg" | "conf" | "txt" | "ipxe" | "toml" | "yaml" | "yml" | "sh") => {
            "text/plain; charset=utf-8"
        }
        Some("json") => "application/json",
        Some("html" | "htm") => "text/html; charset=utf-8",
        None if in_config_dir => "text/plain; charset=utf-8",
        _ => "application/octet-stream",
    }
}

const WEEKDAYS: [&str; 7] = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"];
const MONTHS: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];

/// Seconds since the epoch as an IMF-fixdate: `Sun, 06 Nov 1994 08:49:37 GMT`.
pub(super) fn http_date(secs: u64) -> String {
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    let (y, m, d) = civil_from_days(days);
    format!(
        "{}, {d:02} {} {y:04} {:02}:{:02}:{:02} GMT",
        WEEKDAYS[(days + 4).rem_euclid(7) as usize],
        MONTHS[m as usize - 1],
        rem / 3600,
        rem / 60 % 60,
        rem % 60
    )
}

/// Seconds since the epoch of an HTTP date in any of the three forms a
/// recipient must accept: IMF-fixdate, RFC 850 and asctime.
pub(super) fn parse_http_date(text: &[u8]) -> Option<u64> {
    let text = std::str::from_utf8(text).ok()?;
    let words: Vec<&str> = text.split_ascii_whitespace().collect();
    let (day, month, year, time) = match words[..] {
        // Sun, 06 Nov 1994 08:49:37 GMT
        [_, day, month, year, time, "GMT"] => (day, month, year.parse::<i64>().ok()?, time),
        // Sunday, 06-Nov-94 08:49:37 GMT
        [_, date, time, "GMT"] => {
            let mut parts = date.split('-');
            let (day, month, yy) = (parts.next()?, parts.next()?, parts.next()?);
            if parts.next().is_some() || yy.len() != 2 {
                return None;
            }
            let yy: i64 = yy.parse().ok()?;
            (
                day,
                month,
                if yy >= 70 { 1900 + yy } else { 2000 + yy },
                time,
            )
        }
        // Sun Nov  6 08:49:37 1994
        [_, month, day, time, year] => (day, month, year.parse::<i64>().ok()?, time),
        _ => return None,
    };
    let day = u32::try_from(digits(day.as_bytes())?).ok()?;
    let month = MONTHS.iter().position(|m| *m == month)? as u32 + 1;
    let mut hms = time.split(':').map(|t| digits(t.as_bytes()));
    let (h, m, s) = (hms.next()??, hms.next()??, hms.next()??);
    if hms.next().is_some() || !(1..=31).contains(&day) || h > 23 || m > 59 || s > 60 {
        return None;
    }
    if !(1970..=9999).contains(&year) {
        return None;
    }
    let days = days_from_civil(year, month, day);
    u64::try_from(days)
        .ok()
        .map(|d| d * 86_400 + h * 3600 + m * 60 + s)
}

#[cfg(test)]
#[path = "http_proto_tests.rs"]
mod tests;
