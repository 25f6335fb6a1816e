//! Console bytes → plain-text lines for pattern matching.
//!
//! ANSI escape sequences are stripped. Besides CR/LF, cursor jumps to another
//! row end a line: an ncurses UI such as petitboot's never sends newlines, it
//! positions the cursor (`ESC [ row ; col H`) before each piece of text.

/// Longer lines are cut here, so memory stays bounded on endless output
/// without newlines.
pub const MAX_LINE: usize = 4096;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
enum State {
    #[default]
    Ground,
    /// After ESC.
    Escape,
    /// After ESC and intermediate bytes, e.g. `ESC ( B`.
    EscapeIntermediate,
    /// Control sequence: `ESC [` params intermediates final.
    Csi,
    /// OSC/DCS/SOS/PM/APC string, up to BEL or `ESC \`.
    Str,
    /// ESC inside such a string.
    StrEscape,
}

/// Incremental splitter; feed any chunks, get the same lines.
#[derive(Debug, Clone, Default)]
pub struct LineSplitter {
    line: Vec<u8>,
    state: State,
    /// Bumped whenever `line` changes, so callers can skip re-checking an
    /// unchanged partial line.
    version: u64,
}

impl LineSplitter {
    pub fn new() -> Self {
        Self::default()
    }

    /// Process `bytes`, calling `on_line` with each completed line that is
    /// not blank (leading/trailing spaces are kept).
    pub fn feed(&mut self, bytes: &[u8], mut on_line: impl FnMut(&[u8])) {
        for &b in bytes {
            self.step(b, &mut on_line);
        }
    }

    /// The line being assembled (e.g. a `login: ` prompt, which has no
    /// newline after it).
    pub fn partial(&self) -> &[u8] {
        &self.line
    }

    /// Changes whenever [`LineSplitter::partial`] does.
    pub fn version(&self) -> u64 {
        self.version
    }

    fn step(&mut self, b: u8, on_line: &mut impl FnMut(&[u8])) {
        const ESC: u8 = 0x1b;
        const BEL: u8 = 0x07;
        // CAN and SUB abort any sequence in progress.
        const CAN: u8 = 0x18;
        const SUB: u8 = 0x1a;
        self.state = match (self.state, b) {
            (_, CAN | SUB) => State::Ground,
            (State::Str, BEL) | (State::StrEscape, b'\\') => State::Ground,
            (State::Str | State::StrEscape, ESC) => State::StrEscape,
            (State::Str | State::StrEscape, _) => State::Str,
            (_, ESC) => State::Escape,
            (State::Ground, _) => {
                self.ground(b, on_line);
                State::Ground
            }
            (State::Escape, b'[') => State::Csi,
            (State::Escape, b']' | b'P' | b'X' | b'^' | b'_') => State::Str,
            (State::Escape | State::EscapeIntermediate, 0x20..=0x2f) => State::EscapeIntermediate,
            // IND, NEL, RI: the cursor goes to another row.
            (State::Escape, b'D' | b'E' | b'M') => {
                self.end_line(on_line);
                State::Ground
            }
            (State::Escape | State::EscapeIntermediate, _) => State::Ground,
            (State::Csi, 0x20..=0x3f) => State::Csi,
            (State::Csi, 0x40..=0x7e) => {
                self.csi_final(b, on_line);
                State::Ground
            }
            // Terminals execute C0 controls met inside a sequence.
            (State::Csi, b'\r' | b'\n') => {
                self.end_line(on_line);
                State::Csi
            }
            (State::Csi, _) => State::Csi,
        };
    }

    fn ground(&mut self, b: u8, on_line: &mut impl FnMut(&[u8])) {
        match b {
            b'\n' | b'\r' | 0x0b | 0x0c => self.end_line(on_line),
            b'\t' => self.push(b' ', on_line),
            0x08 => self.backspace(),
            0x00..=0x1f | 0x7f => {}
            _ => self.push(b, on_line),
        }
    }

    fn csi_final(&mut self, b: u8, on_line: &mut impl FnMut(&[u8])) {
        match b {
            // Cursor up/down/next/previous line, position, row, erase display.
            b'A' | b'B' | b'E' | b'F' | b'H' | b'f' | b'd' | b'J' => self.end_line(on_line),
            // Cursor forward or to a column on the same row: curses uses
            // these instead of spaces, so keep words apart.
            b'C' | b'G' | b'`' if self.line.last().is_some_and(|&c| c != b' ') => {
                self.push(b' ', on_line)
            }
            _ => {}
        }
    }

    fn push(&mut self, b: u8, on_line: &mut impl FnMut(&[u8])) {
        if self.line.len() >= MAX_LINE {
            self.end_line(on_line);
        }
        self.line.push(b);
        self.version = self.version.wrapping_add(1);
    }

    /// Remove the last character (all bytes of a UTF-8 sequence).
    fn backspace(&mut self) {
        while let Some(last) = self.line.pop() {
            self.version = self.version.wrapping_add(1);
            if last & 0xc0 != 0x80 {
                break;
            }
        }
    }

    fn end_line(&mut self, on_line: &mut impl FnMut(&[u8])) {
        if self.line.is_empty() {
            return;
        }
        if self.line.iter().any(|b| !b.is_ascii_whitespace()) {
            on_line(&self.line);
        }
        self.line.clear();
        self.version = self.version.wrapping_add(1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(input: &[u8]) -> (Vec<String>, String) {
        let mut s = LineSplitter::new();
        let mut out = Vec::new();
        s.feed(input, |l| out.push(String::from_utf8_lossy(l).into_owned()));
        (out, String::from_utf8_lossy(s.partial()).into_owned())
    }

    #[test]
    fn crlf_and_blank_lines() {
        let (l, p) = lines(b"one\r\n\r\n  \r\ntwo\r\nthree");
        assert_eq!(l, ["one", "two"]);
        assert_eq!(p, "three");
    }

    #[test]
    fn escapes_are_stripped() {
        let (l, p) =
            lines(b"\x1b[1;31mred\x1b[0m \x1b(Bok\x1b]0;title\x07!\x1b]2;t\x1b\\\r\n\x1b[?1049h");
        assert_eq!(l, ["red ok!"]);
        assert_eq!(p, "");
    }

    #[test]
    fn cursor_positioning_splits_lines() {
        let (l, p) = lines(b"\x1b[H\x1b[2J\x1b[1;2HPetitboot (v1.12)\x1b[24;2HInfo: x\x1b[K");
        assert_eq!(l, ["Petitboot (v1.12)"]);
        assert_eq!(p, "Info: x");
    }

    #[test]
    fn cursor_forward_becomes_a_space() {
        let (_, p) = lines(b"System\x1b[Cinformation\x1b[5Cx");
        assert_eq!(p, "System information x");
    }

    #[test]
    fn backspace_removes_a_whole_character() {
        let (_, p) = lines("ab\u{e9}\x08\x08c".as_bytes());
        assert_eq!(p, "ac");
    }

    #[test]
    fn long_lines_are_cut() {
        let (l, p) = lines(&vec![b'x'; MAX_LINE + 10]);
        assert_eq!(l.len(), 1);
        assert_eq!(l[0].len(), MAX_LINE);
        assert_eq!(p.len(), 10);
    }

    #[test]
    fn same_lines_for_any_chunking() {
        let input = b"a\x1b[1;2Hb\x1b]0;t\x1b\\c\r\nd\x1b[31me\x1b[Cf";
        let whole = lines(input);
        for cut in 0..=input.len() {
            let mut s = LineSplitter::new();
            let mut out = Vec::new();
            s.feed(&input[..cut], |l| {
                out.push(String::from_utf8_lossy(l).into_owned())
            });
            s.feed(&input[cut..], |l| {
                out.push(String::from_utf8_lossy(l).into_owned())
            });
            assert_eq!(
                (out, String::from_utf8_lossy(s.partial()).into_owned()),
                whole
            );
        }
    }
}
