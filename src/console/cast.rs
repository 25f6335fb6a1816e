//! asciinema v2 `.cast` files: the format of console logs
//! (<https://docs.asciinema.org/manual/asciicast/v2/>).
//!
//! A file is a JSON header line, `{"version":2,"width":80,"height":24,
//! "timestamp":<unix seconds>,"title":"<node> console"}`, then one event line
//! per chunk of output, `[<seconds since the header's timestamp>,"o","text"]`.
//! `asciinema play FILE` replays it with its timing, `asciinema cat FILE`
//! prints it.
//!
//! Reading is tolerant: a line that is not JSON (a write torn by a crash, or
//! garbage) is skipped and counted, never an error; a header line met later
//! (files concatenated while following a rotation) starts a new clock.

use std::io;
use std::path::Path;

use serde::Serialize;

use crate::engine::store::format_utc_ms;

/// Terminal size declared in headers: console logs are not sized, and every
/// player needs one.
pub const WIDTH: u32 = 80;
pub const HEIGHT: u32 = 24;

/// A parsed cast file.
#[derive(Debug, Clone, PartialEq)]
pub struct Cast {
    /// The header's `timestamp` (unix seconds; 0 if absent): event times
    /// count from it.
    pub timestamp: i64,
    pub events: Vec<Event>,
    /// Lines that were neither a header nor an event (a torn last line).
    pub skipped: usize,
}

/// One event line.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    /// Seconds since the header's timestamp.
    pub time: f64,
    /// `"o"` for output; other kinds (`"i"`, `"m"`, `"r"`) are kept but not
    /// rendered.
    pub kind: String,
    pub data: String,
}

/// Why a file is not a cast at all.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum CastError {
    #[error("not an asciinema v2 cast: the first line is not a version 2 header")]
    NoHeader,
}

#[derive(Serialize)]
struct Header<'a> {
    version: u32,
    width: u32,
    height: u32,
    timestamp: i64,
    title: &'a str,
}

/// The header line (ending in a newline) of a file started at `timestamp`.
pub fn header_line(timestamp: i64, title: &str) -> String {
    let header = Header {
        version: 2,
        width: WIDTH,
        height: HEIGHT,
        timestamp,
        title,
    };
    let mut line = serde_json::to_string(&header).expect("a header always encodes");
    line.push('\n');
    line
}

/// An output event line (ending in a newline); `time` is rounded to
/// microseconds.
pub fn event_line(time: f64, data: &str) -> String {
    let time = (time * 1e6).round() / 1e6;
    let mut line = serde_json::to_string(&(time, "o", data)).expect("an event always encodes");
    line.push('\n');
    line
}

/// Bytes `c` takes inside a JSON string as serde_json writes it.
pub fn escaped_len(c: char) -> usize {
    match c {
        '"' | '\\' | '\x08' | '\x0c' | '\n' | '\r' | '\t' => 2,
        '\0'..='\x1f' => 6,
        _ => c.len_utf8(),
    }
}

/// One line of a cast file.
enum Line {
    Header(i64),
    Event(Event),
    Garbage,
}

fn parse_line(line: &[u8]) -> Line {
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    if let Ok((time, kind, data)) = serde_json::from_slice::<(f64, String, String)>(line) {
        return Line::Event(Event { time, kind, data });
    }
    match serde_json::from_slice::<serde_json::Value>(line) {
        Ok(serde_json::Value::Object(header))
            if header.get("version").and_then(|v| v.as_u64()) == Some(2) =>
        {
            let timestamp = header.get("timestamp").and_then(|t| t.as_f64());
            Line::Header(timestamp.unwrap_or(0.0) as i64)
        }
        _ => Line::Garbage,
    }
}

/// Parse a whole file: its first line must be a v2 header; other lines that
/// are not events are skipped (see the module doc).
pub fn parse(bytes: &[u8]) -> Result<Cast, CastError> {
    let mut lines = bytes.split(|&b| b == b'\n');
    let timestamp = match lines.next().map(parse_line) {
        Some(Line::Header(timestamp)) => timestamp,
        _ => return Err(CastError::NoHeader),
    };
    let mut cast = Cast {
        timestamp,
        events: Vec::new(),
        skipped: 0,
    };
    for line in lines.filter(|l| !l.is_empty()) {
        match parse_line(line) {
            Line::Event(event) => cast.events.push(event),
            // Only a second file appended to this one has another header.
            Line::Header(_) | Line::Garbage => cast.skipped += 1,
        }
    }
    Ok(cast)
}

/// Read and [`parse`] a file; a file that is not a cast is `InvalidData`.
pub fn read(path: &Path) -> io::Result<Cast> {
    let bytes = std::fs::read(path)?;
    parse(&bytes).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))
}

/// The output of `cast` as text, as `asciinema cat` prints it; with
/// `timestamps`, each line starts with the UTC time of the event that
/// printed its first character (`2026-12-05T01:02:03.456Z `).
pub fn render(cast: &Cast, timestamps: bool) -> String {
    let mut text = Text::new(timestamps);
    text.origin = Some(cast.timestamp);
    let mut out = String::new();
    for event in &cast.events {
        text.event(event, &mut out);
    }
    out
}

/// Turns a cast's bytes into text as they arrive (`petitlab console --log`
/// following a growing file): whole lines are decoded, a partial last line
/// waits for the rest.
#[derive(Debug, Clone)]
pub struct Text {
    timestamps: bool,
    /// Unix seconds of the latest header seen.
    origin: Option<i64>,
    partial: Vec<u8>,
    at_line_start: bool,
    skipped: usize,
}

impl Text {
    pub fn new(timestamps: bool) -> Self {
        Self {
            timestamps,
            origin: None,
            partial: Vec::new(),
            at_line_start: true,
            skipped: 0,
        }
    }

    /// Append the text of the whole lines in `bytes` (after what was held
    /// back from before) to `out`.
    pub fn feed(&mut self, bytes: &[u8], out: &mut String) {
        self.partial.extend_from_slice(bytes);
        let Some(end) = self.partial.iter().rposition(|&b| b == b'\n') else {
            return;
        };
        let whole: Vec<u8> = self.partial.drain(..=end).collect();
        for line in whole.split(|&b| b == b'\n').filter(|l| !l.is_empty()) {
            self.line(line, out);
        }
    }

    /// The file ended for good (or was replaced): decode a last line
    /// without its newline, or skip it if it is torn.
    pub fn end_of_file(&mut self, out: &mut String) {
        let last = std::mem::take(&mut self.partial);
        if !last.is_empty() {
            self.line(&last, out);
        }
    }

    /// Lines skipped so far as neither header nor event.
    pub fn skipped(&self) -> usize {
        self.skipped
    }

    fn line(&mut self, line: &[u8], out: &mut String) {
        match parse_line(line) {
            Line::Header(timestamp) => self.origin = Some(timestamp),
            Line::Event(event) => self.event(&event, out),
            Line::Garbage => self.skipped += 1,
        }
    }

    fn event(&mut self, event: &Event, out: &mut String) {
        if event.kind != "o" {
            return;
        }
        if !self.timestamps {
            out.push_str(&event.data);
            return;
        }
        let ms =
            self.origin.unwrap_or(0).saturating_mul(1000) + (event.time * 1000.0).round() as i64;
        let mut prefix = None;
        for c in event.data.chars() {
            if self.at_line_start {
                let prefix = prefix.get_or_insert_with(|| format_utc_ms(ms));
                out.push_str(prefix);
                out.push(' ');
                self.at_line_start = false;
            }
            out.push(c);
            self.at_line_start = c == '\n';
        }
    }
}

#[cfg(test)]
#[path = "cast_tests.rs"]
mod tests;
