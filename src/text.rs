//! Text from outside petitlab (an agent's failure reason, a BMC's strings,
//! console lines quoted in events, what an HTTP or TFTP client sent) made
//! safe to show on a terminal. Control characters would drive the terminal
//! (ESC starts CSI and OSC sequences, BEL rings, CR rewrites the line) and
//! bidi controls reorder what the admin reads (U+202E), so both become
//! visible escapes. The store keeps the text as it came; this is applied
//! where text is shown (CLI lines, TUI cells), see docs/cli-reference.md.

use std::borrow::Cow;
use std::fmt::Write as _;

/// Unicode's bidirectional formatting characters: ALM, LRM, RLM, the
/// embeddings and overrides (LRE RLE PDF LRO RLO) and the isolates.
pub fn is_bidi_control(c: char) -> bool {
    matches!(
        c,
        '\u{061c}' | '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}'
    )
}

/// Whether `c` must not reach a terminal as it is: the C0 and C1 controls
/// and DEL (tab and newline too: a shown field is one line), the bidi
/// controls, and the line and paragraph separators.
pub fn needs_escape(c: char) -> bool {
    c.is_control() || is_bidi_control(c) || matches!(c, '\u{2028}' | '\u{2029}')
}

/// `text` with every character [`needs_escape`] names written as `\t`,
/// `\n`, `\r`, `\xNN` (the other C0 controls and DEL) or `\u{NNNN}` (C1
/// controls, bidi controls, separators); borrowed when nothing needs it.
/// Backslashes stay as they are: the escapes are for reading, and the exact
/// text is in the store (`--json` shows it).
pub fn display_safe(text: &str) -> Cow<'_, str> {
    if !text.chars().any(needs_escape) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 16);
    for c in text.chars() {
        match c {
            '\t' => out.push_str(r"\t"),
            '\n' => out.push_str(r"\n"),
            '\r' => out.push_str(r"\r"),
            c if needs_escape(c) && (c as u32) <= 0x7f => {
                let _ = write!(out, r"\x{:02x}", c as u32);
            }
            c if needs_escape(c) => {
                let _ = write!(out, r"\u{{{:x}}}", c as u32);
            }
            c => out.push(c),
        }
    }
    Cow::Owned(out)
}

/// [`display_safe`] line by line, keeping the newlines: for multi-line
/// text such as a rendered config.
pub fn display_safe_lines(text: &str) -> Cow<'_, str> {
    if !text.chars().any(|c| c != '\n' && needs_escape(c)) {
        return Cow::Borrowed(text);
    }
    let lines: Vec<Cow<'_, str>> = text.split('\n').map(display_safe).collect();
    Cow::Owned(lines.join("\n"))
}

/// JSON text (as serde_json writes it) with the characters JSON allows raw
/// in a string but a terminal must not get (DEL, C1 controls, bidi
/// controls, separators) written as `\uXXXX` escapes: the same JSON value,
/// inert on a terminal. serde_json already escapes the C0 controls, so the
/// C0 characters left (newlines and indentation) are the layout's.
pub fn json_safe(json: &str) -> Cow<'_, str> {
    let raw = |c: char| needs_escape(c) && (c as u32) >= 0x7f;
    if !json.chars().any(raw) {
        return Cow::Borrowed(json);
    }
    let mut out = String::with_capacity(json.len() + 16);
    for c in json.chars() {
        if raw(c) {
            // Every such character is in the BMP: one \uXXXX each.
            let _ = write!(out, r"\u{:04x}", c as u32);
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn controls_and_bidi_become_visible_escapes() {
        let hostile =
            "a\u{1b}]0;pwned\u{7}b\u{1b}[2J\u{202e}c\td\ne\rf\u{7f}\u{9b}g\u{2066}\u{2028}";
        assert_eq!(
            display_safe(hostile),
            r"a\x1b]0;pwned\x07b\x1b[2J\u{202e}c\td\ne\rf\x7f\u{9b}g\u{2066}\u{2028}"
        );
    }

    #[test]
    fn plain_text_is_borrowed_unchanged() {
        for text in ["", "n1: deploy done", "Grüße, 日本語 ✓ 🙂", r"C:\boot \x1b"] {
            assert!(matches!(display_safe(text), Cow::Borrowed(t) if t == text));
            assert!(matches!(json_safe(text), Cow::Borrowed(t) if t == text));
        }
    }

    #[test]
    fn lines_keep_their_newlines() {
        assert_eq!(
            display_safe_lines("kernel x\u{1b}[1m\nappend\tquiet\n"),
            "kernel x\\x1b[1m\nappend\\tquiet\n"
        );
        assert!(matches!(display_safe_lines("a\nb\n"), Cow::Borrowed(_)));
    }

    #[test]
    fn json_keeps_its_value_and_loses_the_raw_characters() {
        let value = vec!["\u{202e}gpj.exe\u{7f}\u{85}".to_string()];
        let json = serde_json::to_string_pretty(&value).unwrap();
        assert!(
            json.contains('\u{202e}'),
            "serde_json leaves it raw: {json}"
        );
        let safe = json_safe(&json);
        assert!(safe.contains(r"\u202e") && safe.contains(r"\u007f") && safe.contains(r"\u0085"));
        let back: Vec<String> = serde_json::from_str(&safe).unwrap();
        assert_eq!(back, value);
    }

    /// Strings heavy in the characters that matter, and any others.
    fn text() -> impl Strategy<Value = String> {
        let interesting = prop::sample::select(vec![
            '\u{0}', '\u{7}', '\t', '\n', '\r', '\u{1b}', '\u{7f}', '\u{80}', '\u{9b}', '\u{9f}',
            '\u{61c}', '\u{200e}', '\u{200f}', '\u{202a}', '\u{202e}', '\u{2066}', '\u{2069}',
            '\u{2028}', '\u{2029}', '\\', 'x', '{', 'é', '日',
        ]);
        prop::collection::vec(prop_oneof![interesting, any::<char>()], 0..48)
            .prop_map(|chars| chars.into_iter().collect())
    }

    proptest! {
        #[test]
        fn escaped_text_holds_no_control_or_bidi_character(s in text()) {
            let shown = display_safe(&s);
            prop_assert!(!shown.chars().any(needs_escape), "{:?} → {:?}", s, shown);
            let lines = display_safe_lines(&s);
            prop_assert!(!lines.chars().any(|c| c != '\n' && needs_escape(c)));
            prop_assert_eq!(lines.split('\n').count(), s.split('\n').count());
            // Characters that need nothing pass through in order.
            if !s.chars().any(needs_escape) {
                prop_assert_eq!(shown.as_ref(), s.as_str());
            }
        }

        #[test]
        fn safe_json_is_the_same_value(v in prop::collection::vec(text(), 0..4)) {
            let json = serde_json::to_string_pretty(&v).unwrap();
            let safe = json_safe(&json);
            prop_assert!(!safe.chars().any(|c| c != '\n' && needs_escape(c)), "{}", safe);
            let back: Vec<String> = serde_json::from_str(&safe).unwrap();
            prop_assert_eq!(back, v);
        }
    }
}
