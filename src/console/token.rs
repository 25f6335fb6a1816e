//! Deploy tokens on a console. A deploy kernel's command line carries
//! `petitlab.token=<hex>`, and the kernel prints it at boot. The deploy that
//! issued the token redacts it as a known secret; this filter catches it in
//! any console, also one opened by another petitlab that never knew the
//! token (`petitlab console --force` during a deploy): the hex digits after
//! the key become [`MARKER`], even when split across chunks.

use super::redact::{MARKER, Redactor};

const KEY: &[u8] = b"petitlab.token=";
/// A token is 32 hex digits; a longer run is cut there.
const TOKEN_LEN: usize = 32;

/// I/O-free, streaming; a streamed run gives the same output as filtering
/// the whole input at once.
#[derive(Debug, Clone, Default)]
pub struct TokenFilter {
    /// A key (or the start of one) and the hex digits after it, undecided.
    held: Vec<u8>,
    /// Hex digits still to drop after a token cut short by [`Self::flush_idle`].
    skip: usize,
}

impl TokenFilter {
    pub fn new() -> Self {
        Self::default()
    }

    /// Filter the next chunk, appending what can be written now to `out`.
    pub fn push(&mut self, data: &[u8], out: &mut Vec<u8>) {
        let mut data = data;
        while self.skip > 0 && !data.is_empty() && data[0].is_ascii_hexdigit() {
            (self.skip, data) = (self.skip - 1, &data[1..]);
        }
        if !data.is_empty() {
            self.skip = 0;
        }
        let mut buf = std::mem::take(&mut self.held);
        buf.extend_from_slice(data);
        let mut i = 0;
        while i < buf.len() {
            let rest = &buf[i..];
            if rest.starts_with(KEY) {
                let after = &rest[KEY.len()..];
                let hex = after
                    .iter()
                    .take(TOKEN_LEN)
                    .take_while(|b| b.is_ascii_hexdigit())
                    .count();
                if hex < TOKEN_LEN && hex == after.len() {
                    // The token may go on in the next chunk.
                    self.held = rest.to_vec();
                    return;
                }
                out.extend_from_slice(KEY);
                if hex > 0 {
                    out.extend_from_slice(MARKER);
                }
                i += KEY.len() + hex;
                continue;
            }
            if rest.len() < KEY.len() && KEY.starts_with(rest) {
                self.held = rest.to_vec();
                return;
            }
            let next = rest[1..]
                .iter()
                .position(|&b| b == KEY[0])
                .map_or(rest.len(), |p| p + 1);
            out.extend_from_slice(&rest[..next]);
            i += next;
        }
    }

    /// The console went quiet: write a held token's digits so far as
    /// [`MARKER`], and drop the rest of that token when it comes. A key
    /// with no digit yet, or the start of one, stays held (at most 15
    /// bytes): written, the digits that follow could no longer be told from
    /// plain text.
    pub fn flush_idle(&mut self, out: &mut Vec<u8>) {
        if let Some(hex) = self.held.strip_prefix(KEY)
            && !hex.is_empty()
        {
            out.extend_from_slice(KEY);
            out.extend_from_slice(MARKER);
            self.skip = TOKEN_LEN - hex.len();
            self.held.clear();
        }
    }

    /// End of stream: a held token as in [`Self::flush_idle`], the start
    /// of a key as it is.
    pub fn finish(&mut self, out: &mut Vec<u8>) {
        self.flush_idle(out);
        out.append(&mut self.held);
        self.skip = 0;
    }
}

/// What a console's log and the dashboard get: deploy tokens filtered
/// ([`TokenFilter`]), then the known secrets redacted ([`Redactor`]).
#[derive(Debug, Clone)]
pub struct ConsoleRedactor {
    tokens: TokenFilter,
    secrets: Redactor,
    /// Reused between the two stages.
    scratch: Vec<u8>,
}

impl ConsoleRedactor {
    pub fn new<S: AsRef<[u8]>>(secrets: &[S]) -> Self {
        ConsoleRedactor {
            tokens: TokenFilter::new(),
            secrets: Redactor::new(secrets),
            scratch: Vec::new(),
        }
    }

    pub fn push(&mut self, data: &[u8], out: &mut Vec<u8>) {
        self.scratch.clear();
        self.tokens.push(data, &mut self.scratch);
        self.secrets.push(&self.scratch, out);
    }

    /// See [`TokenFilter::flush_idle`] and [`Redactor::flush_idle`].
    pub fn flush_idle(&mut self, out: &mut Vec<u8>) {
        self.scratch.clear();
        self.tokens.flush_idle(&mut self.scratch);
        self.secrets.push(&self.scratch, out);
        self.secrets.flush_idle(out);
    }

    pub fn finish(&mut self, out: &mut Vec<u8>) {
        self.scratch.clear();
        self.tokens.finish(&mut self.scratch);
        self.secrets.push(&self.scratch, out);
        self.secrets.finish(out);
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    const TOKEN: &str = "00112233445566778899aabbccddeeff";

    fn all_at_once(input: &[u8]) -> Vec<u8> {
        let mut f = TokenFilter::new();
        let mut out = Vec::new();
        f.push(input, &mut out);
        f.finish(&mut out);
        out
    }

    #[test]
    fn a_token_on_a_kernel_command_line_is_redacted() {
        let line = format!("Kernel command line: console=hvc0 petitlab.token={TOKEN} quiet\n");
        assert_eq!(
            String::from_utf8(all_at_once(line.as_bytes())).unwrap(),
            "Kernel command line: console=hvc0 petitlab.token=<redacted> quiet\n"
        );
        // At the very end of the stream, and cut short.
        assert_eq!(
            all_at_once(format!("petitlab.token={TOKEN}").as_bytes()),
            b"petitlab.token=<redacted>"
        );
        assert_eq!(
            all_at_once(b"petitlab.token=ab"),
            b"petitlab.token=<redacted>"
        );
        // Without hex digits there is nothing to hide.
        assert_eq!(all_at_once(b"petitlab.token= x"), b"petitlab.token= x");
        assert_eq!(all_at_once(b"petitlab.tok"), b"petitlab.tok");
        assert_eq!(all_at_once(b"plain text"), b"plain text");
    }

    #[test]
    fn a_quiet_console_shows_the_start_of_a_token_redacted_and_drops_the_rest() {
        let mut f = TokenFilter::new();
        let mut out = Vec::new();
        f.push(b"x petitlab.token=0011", &mut out);
        assert_eq!(out, b"x ");
        f.flush_idle(&mut out);
        assert_eq!(out, b"x petitlab.token=<redacted>");
        f.push(&TOKEN.as_bytes()[4..], &mut out);
        f.push(b" quiet", &mut out);
        // The start of a key waits for the rest even on a quiet console.
        f.push(b" petitlab.tok", &mut out);
        f.flush_idle(&mut out);
        assert_eq!(out, b"x petitlab.token=<redacted> quiet ");
        f.push(format!("en={TOKEN}").as_bytes(), &mut out);
        f.finish(&mut out);
        assert_eq!(
            out,
            b"x petitlab.token=<redacted> quiet petitlab.token=<redacted>"
        );
    }

    #[test]
    fn a_quiet_console_right_after_the_key_leaks_no_digit() {
        let mut f = TokenFilter::new();
        let mut out = Vec::new();
        f.push(b"x petitlab.token=", &mut out);
        f.flush_idle(&mut out);
        f.push(TOKEN.as_bytes(), &mut out);
        f.finish(&mut out);
        assert_eq!(out, b"x petitlab.token=<redacted>");
    }

    proptest! {
        /// Any chunking, with the console going quiet (`flush_idle`) after
        /// any chunk, gives what filtering the whole input gives.
        #[test]
        fn chunking_never_changes_the_output_or_leaks_a_token(
            before in "[ -~]{0,40}",
            after in "[ -~]{0,40}",
            cuts in proptest::collection::vec((0usize..200, any::<bool>()), 0..6),
        ) {
            let input = format!("{before}petitlab.token={TOKEN}{after}");
            let whole = all_at_once(input.as_bytes());
            let mut f = TokenFilter::new();
            let mut out = Vec::new();
            let mut cuts = cuts;
            cuts.sort_unstable();
            let mut at = 0;
            for (cut, idle) in cuts.into_iter().map(|(c, idle)| (c.min(input.len()), idle)) {
                f.push(&input.as_bytes()[at..cut.max(at)], &mut out);
                at = cut.max(at);
                if idle {
                    f.flush_idle(&mut out);
                }
            }
            f.push(&input.as_bytes()[at..], &mut out);
            f.finish(&mut out);
            prop_assert_eq!(&out, &whole);
            prop_assert!(!String::from_utf8_lossy(&out).contains(TOKEN));
        }
    }
}
