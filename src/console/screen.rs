//! A per-node virtual terminal: console bytes in, a `vt100::Screen` out that
//! tui-term's `PseudoTerminal` widget can draw.

use crate::panics::catch;

use tui_term::vt100;

/// Terminal dimensions are clamped to this range: vt100 underflows below two
/// columns (a wide character needs two), and a huge size from a bad resize
/// would allocate rows × cols cells per node.
const MIN_DIM: u16 = 2;
const MAX_DIM: u16 = 1000;

fn clamp_dim(n: u16) -> u16 {
    n.clamp(MIN_DIM, MAX_DIM)
}

/// One node's console as a terminal emulator with bounded scrollback.
///
/// Every change that alters what a UI would draw bumps [`generation`], so a
/// UI holding many consoles redraws only the ones that changed.
///
/// vt100 can panic on rare input: drawing over a wide character that a
/// narrowing resize cut in half does. A console must survive whatever a node
/// prints, so such a panic is caught and the terminal rebuilt from what it
/// still shows (the scrollback and the rest of the chunk being fed are lost);
/// see [`ConsoleScreen::resets`].
///
/// [`generation`]: ConsoleScreen::generation
pub struct ConsoleScreen {
    parser: vt100::Parser,
    /// Kept outside the parser, to rebuild it after a panic.
    size: (u16, u16),
    scrollback_lines: usize,
    generation: u64,
    /// Generation last reported by [`ConsoleScreen::changed`].
    seen: u64,
    resets: u64,
}

impl ConsoleScreen {
    /// A blank `rows` × `cols` terminal keeping at most `scrollback_lines`
    /// lines that scrolled off the top. Sizes are clamped to 2..=1000.
    pub fn new(rows: u16, cols: u16, scrollback_lines: usize) -> Self {
        let size = (clamp_dim(rows), clamp_dim(cols));
        Self {
            parser: vt100::Parser::new(size.0, size.1, scrollback_lines),
            size,
            scrollback_lines,
            generation: 0,
            seen: 0,
            resets: 0,
        }
    }

    /// Interpret console output (any bytes; invalid sequences are ignored).
    pub fn feed(&mut self, bytes: &[u8]) {
        if bytes.is_empty() {
            return;
        }
        self.guarded(|p| p.process(bytes));
        self.bump();
    }

    /// Resize the terminal (e.g. the TUI pane changed). Clamped to 2..=1000.
    pub fn resize(&mut self, rows: u16, cols: u16) {
        let size = (clamp_dim(rows), clamp_dim(cols));
        if size != self.size {
            self.size = size;
            self.guarded(|p| p.screen_mut().set_size(size.0, size.1));
            self.bump();
        }
    }

    /// Current size as (rows, cols).
    pub fn size(&self) -> (u16, u16) {
        self.size
    }

    /// How often a vt100 panic forced a rebuild of the terminal.
    pub fn resets(&self) -> u64 {
        self.resets
    }

    /// The emulated screen, for tui-term's `PseudoTerminal::new(screen)`.
    pub fn screen(&self) -> &vt100::Screen {
        self.parser.screen()
    }

    /// The visible text, rows joined by newlines, trailing blanks trimmed.
    pub fn contents(&self) -> String {
        self.parser.screen().contents()
    }

    /// View `offset` lines back into the scrollback (0 = live screen).
    /// Returns the offset actually applied, clamped to the lines available.
    pub fn set_scrollback(&mut self, offset: usize) -> usize {
        let before = self.scrollback();
        self.guarded(|p| p.screen_mut().set_scrollback(offset));
        let after = self.scrollback();
        if after != before {
            self.bump();
        }
        after
    }

    /// Current scrollback offset (0 = live screen).
    pub fn scrollback(&self) -> usize {
        self.parser.screen().scrollback()
    }

    /// Whether the node's application switched the cursor keys to
    /// application mode (DECCKM, `ESC [ ? 1 h`): arrow keys must then be
    /// sent as `ESC O A` rather than `ESC [ A`. Petitboot's ncurses UI does.
    pub fn application_cursor(&self) -> bool {
        self.parser.screen().application_cursor()
    }

    /// Counter bumped on every visible change; compare with a stored value.
    pub fn generation(&self) -> u64 {
        self.generation
    }

    /// True if anything changed since the previous call (first call: since
    /// creation). For a single consumer; several consumers should each keep
    /// their own copy of [`ConsoleScreen::generation`].
    pub fn changed(&mut self) -> bool {
        let changed = self.seen != self.generation;
        self.seen = self.generation;
        changed
    }

    fn bump(&mut self) {
        self.generation = self.generation.wrapping_add(1);
    }

    /// Run `op` on the parser; if vt100 panics, rebuild it (see the type doc).
    fn guarded(&mut self, op: impl FnOnce(&mut vt100::Parser)) {
        let parser = &mut self.parser;
        if catch(|| op(parser)).is_ok() {
            return;
        }
        self.resets += 1;
        let (rows, cols) = self.size;
        let mut old = std::mem::replace(
            &mut self.parser,
            vt100::Parser::new(rows, cols, self.scrollback_lines),
        );
        // Keep what was on screen if the damaged parser can still describe it.
        let state = catch(move || {
            old.screen_mut().set_scrollback(0);
            old.screen().state_formatted()
        });
        let fresh = &mut self.parser;
        let replayed = state.is_ok_and(|state| catch(|| fresh.process(&state)).is_ok());
        if !replayed {
            self.parser = vt100::Parser::new(rows, cols, self.scrollback_lines);
        }
    }
}

impl std::fmt::Debug for ConsoleScreen {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConsoleScreen")
            .field("size", &self.size())
            .field("scrollback", &self.scrollback())
            .field("generation", &self.generation)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_text_and_crlf() {
        let mut s = ConsoleScreen::new(5, 20, 100);
        s.feed(b"hello\r\nworld");
        assert_eq!(s.contents(), "hello\nworld");
    }

    #[test]
    fn cursor_addressing_like_ncurses() {
        let mut s = ConsoleScreen::new(4, 30, 0);
        s.feed(b"\x1b[H\x1b[2J\x1b[1;2HPetitboot (v1.12)\x1b[4;2HInfo: ok");
        assert_eq!(s.contents(), " Petitboot (v1.12)\n\n\n Info: ok");
    }

    #[test]
    fn scrollback_is_bounded_and_clamped() {
        let mut s = ConsoleScreen::new(2, 10, 3);
        for i in 0..10 {
            s.feed(format!("line{i}\r\n").as_bytes());
        }
        // Only 3 lines of history are kept, however far back we ask.
        assert_eq!(s.set_scrollback(100), 3);
        assert_eq!(s.contents(), "line6\nline7");
        assert_eq!(s.set_scrollback(0), 0);
        assert_eq!(s.contents(), "line9");
    }

    #[test]
    fn changed_tracks_generation() {
        let mut s = ConsoleScreen::new(2, 10, 0);
        assert!(!s.changed());
        s.feed(b"");
        assert!(!s.changed(), "empty feed is not a change");
        s.feed(b"x");
        assert!(s.changed());
        assert!(!s.changed());
        s.resize(2, 10);
        assert!(!s.changed(), "same size is not a change");
        s.resize(3, 12);
        assert!(s.changed());
        assert_eq!(s.size(), (3, 12));
        let g = s.generation();
        s.set_scrollback(5); // nothing to scroll back to
        assert_eq!(s.generation(), g);
    }

    #[test]
    fn application_cursor_mode() {
        let mut s = ConsoleScreen::new(2, 10, 0);
        assert!(!s.application_cursor());
        s.feed(b"\x1b[?1h\x1b=");
        assert!(s.application_cursor());
        s.feed(b"\x1b[?1l");
        assert!(!s.application_cursor());
    }

    #[test]
    fn degenerate_sizes_are_clamped() {
        let mut s = ConsoleScreen::new(0, 0, 0);
        assert_eq!(s.size(), (2, 2));
        s.feed("abc\r\n\x1b[99;99Hx\u{4e2d}\u{6587}\r\n\u{4e2d}".as_bytes());
        s.resize(u16::MAX, 0);
        assert_eq!(s.size(), (MAX_DIM, 2));
    }

    #[test]
    fn survives_drawing_over_a_wide_character_cut_by_a_resize() {
        let mut s = ConsoleScreen::new(3, 10, 10);
        // vt100 0.16 panics here: the resize leaves half of the wide character.
        s.feed("\x1b[1;9H\u{4e2d}\x1b[2;1Hkept".as_bytes());
        s.resize(3, 9);
        s.feed(b"\x1b[1;9Hx");
        assert_eq!(s.resets(), 1);
        assert_eq!(s.size(), (3, 9));
        assert!(s.contents().contains("kept"), "{:?}", s.contents());
        s.feed(b"\x1b[3;1Hstill working");
        assert!(s.contents().ends_with("still working"));
    }

    #[test]
    fn screen_is_what_tui_term_draws() {
        let mut s = ConsoleScreen::new(2, 10, 0);
        s.feed(b"\x1b[1mA");
        let cell = s.screen().cell(0, 0).expect("cell in range");
        assert_eq!(cell.contents(), "A");
        assert!(cell.bold());
    }
}
