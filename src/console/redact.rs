//! Streaming secret redaction: every occurrence of a secret (e.g. the BMC
//! password echoed on the console) becomes [`MARKER`], even when it arrives
//! split across chunks.
//!
//! Matching is leftmost-longest, and a streamed run gives the same output as
//! redacting the whole input at once: bytes that could still be the start of
//! a secret are held back (at most the longest secret's length − 1 bytes)
//! until later input or [`Redactor::finish`] decides them.

/// What a secret is replaced with.
pub const MARKER: &[u8] = b"<redacted>";

/// I/O-free redactor; see the module doc.
#[derive(Debug, Clone, Default)]
pub struct Redactor {
    /// Non-empty, distinct secrets, longest first (so the first complete
    /// match at a position is the longest).
    secrets: Vec<Vec<u8>>,
    /// Bytes that may begin a secret, not yet written out.
    tail: Vec<u8>,
    /// Leading bytes of `tail` already written as a [`MARKER`] by
    /// [`Redactor::flush_idle`]; they are never written again.
    hidden: usize,
}

impl Redactor {
    /// Empty secrets are ignored; with none left the redactor passes bytes
    /// through unchanged.
    pub fn new<S: AsRef<[u8]>>(secrets: &[S]) -> Self {
        let mut secrets: Vec<Vec<u8>> = secrets
            .iter()
            .map(|s| s.as_ref().to_vec())
            .filter(|s| !s.is_empty())
            .collect();
        secrets.sort_by(|a, b| b.len().cmp(&a.len()).then_with(|| a.cmp(b)));
        secrets.dedup();
        Self {
            secrets,
            tail: Vec::new(),
            hidden: 0,
        }
    }

    /// Redact `data` (the next chunk of the stream), appending what can be
    /// written now to `out`.
    pub fn push(&mut self, data: &[u8], out: &mut Vec<u8>) {
        self.process(data, false, out);
    }

    /// End of stream: decide the held-back bytes and write them.
    pub fn finish(&mut self, out: &mut Vec<u8>) {
        self.process(&[], true, out);
    }

    /// The stream went quiet: make the output complete *without* risking a
    /// leak. Held-back bytes could be a secret being typed slowly (echoed one
    /// character at a time), so they are written as a [`MARKER`], never as
    /// themselves. Should they turn out not to be a secret, those few bytes
    /// stay hidden — a false positive is the price of never leaking a prefix.
    pub fn flush_idle(&mut self, out: &mut Vec<u8>) {
        if self.tail.len() > self.hidden {
            // Bytes hidden earlier are still the last thing written, so one
            // marker covers them and the new ones alike.
            if self.hidden == 0 {
                out.extend_from_slice(MARKER);
            }
            self.hidden = self.tail.len();
        }
    }

    /// Number of bytes currently held back (never more than the longest
    /// secret's length − 1).
    pub fn pending(&self) -> usize {
        self.tail.len()
    }

    /// Redact a complete input in one go.
    pub fn redact_all<S: AsRef<[u8]>>(secrets: &[S], data: &[u8]) -> Vec<u8> {
        let mut r = Self::new(secrets);
        let mut out = Vec::with_capacity(data.len());
        r.push(data, &mut out);
        r.finish(&mut out);
        out
    }

    fn process(&mut self, data: &[u8], at_end: bool, out: &mut Vec<u8>) {
        if self.secrets.is_empty() {
            out.extend_from_slice(data);
            return;
        }
        let mut buf = std::mem::take(&mut self.tail);
        buf.extend_from_slice(data);
        let hidden = self.hidden;
        // Copy buf[from..to] except what a previous idle flush already hid.
        let emit = |out: &mut Vec<u8>, from: usize, to: usize| {
            let from = from.max(hidden);
            if from < to {
                out.extend_from_slice(&buf[from..to]);
            }
        };
        let (mut written, mut i) = (0, 0);
        while i < buf.len() {
            let rest = &buf[i..];
            // A longer secret might still complete here: decide later.
            if !at_end && self.could_complete(rest) {
                break;
            }
            if let Some(len) = self.longest_match(rest) {
                emit(out, written, i);
                if i >= hidden {
                    out.extend_from_slice(MARKER);
                }
                i += len;
                written = i;
            } else {
                i += 1;
            }
        }
        emit(out, written, i);
        self.hidden = hidden.saturating_sub(i);
        self.tail = buf.split_off(i.min(buf.len()));
    }

    /// `rest` is a proper prefix of some secret, so more input could turn
    /// it into a match.
    fn could_complete(&self, rest: &[u8]) -> bool {
        self.secrets
            .iter()
            .any(|s| rest.len() < s.len() && s.starts_with(rest))
    }

    fn longest_match(&self, rest: &[u8]) -> Option<usize> {
        self.secrets
            .iter()
            .find(|s| rest.starts_with(s))
            .map(|s| s.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn stream(secrets: &[&str], chunks: &[&[u8]]) -> Vec<u8> {
        let mut r = Redactor::new(secrets);
        let mut out = Vec::new();
        for c in chunks {
            r.push(c, &mut out);
        }
        r.finish(&mut out);
        out
    }

    #[test]
    fn whole_and_split_at_every_point() {
        let data = b"login as root with hunter2, then hunter2hunter2 and hunte";
        let want = String::from_utf8_lossy(data).replace("hunter2", "<redacted>");
        assert_eq!(Redactor::redact_all(&["hunter2"], data), want.as_bytes());
        for cut in 0..=data.len() {
            let (a, b) = data.split_at(cut);
            assert_eq!(stream(&["hunter2"], &[a, b]), want.as_bytes(), "cut {cut}");
        }
    }

    #[test]
    fn one_byte_at_a_time() {
        let data = b"xxpasswordxx";
        let chunks: Vec<&[u8]> = data.chunks(1).collect();
        assert_eq!(stream(&["password"], &chunks), b"xx<redacted>xx");
    }

    #[test]
    fn held_back_bytes_are_bounded() {
        let mut r = Redactor::new(&["secret"]);
        let mut out = Vec::new();
        r.push(b"abc secre", &mut out);
        assert_eq!(out, b"abc ");
        assert_eq!(r.pending(), 5);
        r.push(b"ts", &mut out);
        // The final "s" could begin another "secret".
        assert_eq!(out, b"abc <redacted>");
        assert_eq!(r.pending(), 1);
        r.push(b"!", &mut out);
        assert_eq!(out, b"abc <redacted>s!");
        assert_eq!(r.pending(), 0);
    }

    #[test]
    fn longer_secret_with_a_shorter_secret_as_prefix() {
        // "ab" completes first, but "abcd" might still follow: no leak of "cd".
        assert_eq!(stream(&["ab", "abcd"], &[b"xab", b"cdy"]), b"x<redacted>y");
        assert_eq!(stream(&["ab", "abcd"], &[b"xab", b"cy"]), b"x<redacted>cy");
        // A secret starting earlier wins over one completing earlier.
        assert_eq!(stream(&["abcdef", "cd"], &[b"abcd", b"ef"]), b"<redacted>");
        assert_eq!(
            stream(&["abcdef", "cd"], &[b"abcd", b"e!"]),
            b"ab<redacted>e!"
        );
    }

    #[test]
    fn empty_and_duplicate_secrets_are_ignored() {
        assert_eq!(Redactor::redact_all(&["", ""], b"abc"), b"abc");
        assert_eq!(
            Redactor::redact_all(&["b", "b", ""], b"abc"),
            b"a<redacted>c"
        );
    }

    #[test]
    fn idle_flush_never_writes_a_secret_prefix() {
        let mut r = Redactor::new(&["hunter2"]);
        let mut out = Vec::new();
        // Typed slowly and echoed: an idle flush after every key.
        for b in b"$ ipmitool -P hunter2\r\n" {
            r.push(&[*b], &mut out);
            r.flush_idle(&mut out);
        }
        r.finish(&mut out);
        assert_eq!(
            String::from_utf8_lossy(&out),
            "$ ipmitool -P <redacted>\r\n"
        );
    }

    #[test]
    fn idle_flush_of_innocent_prefix_hides_only_those_bytes() {
        let mut r = Redactor::new(&["hunter2"]);
        let mut out = Vec::new();
        r.push(b"prompt h", &mut out);
        r.flush_idle(&mut out);
        r.flush_idle(&mut out); // nothing new held: no second marker
        r.push(b"ello", &mut out);
        r.finish(&mut out);
        assert_eq!(out, b"prompt <redacted>ello");
    }

    proptest! {
        /// Streaming in any chunks equals redacting the whole input, and a
        /// single secret gives exactly `str::replace`'s output.
        #[test]
        fn streaming_matches_whole_input(
            data in "[ab ]{0,40}",
            secrets in proptest::collection::vec("[ab]{0,4}", 0..3),
            cuts in proptest::collection::vec(0usize..41, 0..6),
        ) {
            let whole = Redactor::redact_all(&secrets, data.as_bytes());
            let mut cuts: Vec<usize> = cuts.into_iter().map(|c| c.min(data.len())).collect();
            cuts.sort_unstable();
            let mut r = Redactor::new(&secrets);
            let mut out = Vec::new();
            let mut from = 0;
            for c in cuts.into_iter().chain([data.len()]) {
                r.push(&data.as_bytes()[from..c], &mut out);
                prop_assert!(r.pending() < 4);
                from = c;
            }
            r.finish(&mut out);
            prop_assert_eq!(&out, &whole);
            if secrets.len() == 1 && !secrets[0].is_empty() {
                prop_assert_eq!(whole, data.replace(&secrets[0], "<redacted>").into_bytes());
            }
        }
    }
}
