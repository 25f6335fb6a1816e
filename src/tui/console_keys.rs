//! Key events to the bytes an xterm would send, for typing into a node's
//! serial console.
//!
//! The encodings follow xterm's "Xterm Control Sequences" (ctlseqs), section
//! "PC-Style Function Keys", whose sequences are ECMA-48 control functions
//! (CSI = `ESC [`, SS3 = `ESC O`):
//!
//! - cursor keys and Home/End: `CSI A`..`CSI D`, `CSI H`, `CSI F`, or
//!   `SS3 A`.. when the host set DECCKM (application cursor keys, `CSI ? 1 h`);
//! - editing keys: `CSI 2 ~` Insert, `CSI 3 ~` Delete, `CSI 5 ~` PgUp,
//!   `CSI 6 ~` PgDn;
//! - F1–F4 `SS3 P`..`SS3 S`; F5–F12 `CSI 15 ~`, 17, 18, 19, 20, 21, 23, 24;
//! - a modifier turns the key into `CSI 1 ; m X` (or `CSI n ; m ~`), where
//!   m = 1 + Shift(1) + Alt(2) + Ctrl(4), in normal and application mode;
//! - Alt (Meta) on anything else prefixes ESC (xterm's `metaSendsEscape`);
//! - Ctrl on a letter sends the C0 control (the letter & 0x1f), as a VT100's
//!   keyboard does.

use crossterm::event::{KeyCode, KeyEvent, KeyEventKind, KeyModifiers};

const ESC: u8 = 0x1b;

/// The bytes a terminal sends for `key`, as xterm does: printable chars as
/// UTF-8; Enter `\r`; Backspace 0x7f; Tab `\t`; BackTab `ESC [ Z`; Esc 0x1b;
/// Ctrl-A..Ctrl-Z 0x01..0x1a, Ctrl-Space 0x00, Ctrl-[ \ ] ^ _ 0x1b..0x1f;
/// Alt-x `ESC x`; arrows `ESC [ A`.. or `ESC O A`.. when
/// `application_cursor`; Home/End likewise; Insert/Delete/PgUp/PgDn
/// `ESC [ 2 ~`..; F1–F12; modifiers on cursor and function keys as
/// `ESC [ 1 ; 5 A` (Ctrl), `;3` (Alt), `;2` (Shift).
///
/// Returns None for keys with no encoding: key releases, media and lone
/// modifier keys, Caps/Num/Scroll Lock, F13 and up.
pub fn encode(key: KeyEvent, application_cursor: bool) -> Option<Vec<u8>> {
    if key.kind == KeyEventKind::Release {
        return None;
    }
    let mods = key.modifiers;
    let shift = mods.contains(KeyModifiers::SHIFT);
    let alt = mods.contains(KeyModifiers::ALT) || mods.contains(KeyModifiers::META);
    let ctrl = mods.contains(KeyModifiers::CONTROL);
    // xterm's modifier parameter.
    let param = 1 + u8::from(shift) + 2 * u8::from(alt) + 4 * u8::from(ctrl);

    // Keys whose modifiers go inside the sequence.
    let cursor = |letter: u8| -> Vec<u8> {
        if param > 1 {
            format!("\x1b[1;{param}{}", char::from(letter)).into_bytes()
        } else if application_cursor {
            vec![ESC, b'O', letter]
        } else {
            vec![ESC, b'[', letter]
        }
    };
    let tilde = |n: u8| -> Vec<u8> {
        if param > 1 {
            format!("\x1b[{n};{param}~").into_bytes()
        } else {
            format!("\x1b[{n}~").into_bytes()
        }
    };
    let ss3 = |letter: u8| -> Vec<u8> {
        if param > 1 {
            format!("\x1b[1;{param}{}", char::from(letter)).into_bytes()
        } else {
            vec![ESC, b'O', letter]
        }
    };
    match key.code {
        KeyCode::Up => return Some(cursor(b'A')),
        KeyCode::Down => return Some(cursor(b'B')),
        KeyCode::Right => return Some(cursor(b'C')),
        KeyCode::Left => return Some(cursor(b'D')),
        KeyCode::Home => return Some(cursor(b'H')),
        KeyCode::End => return Some(cursor(b'F')),
        KeyCode::KeypadBegin => return Some(cursor(b'E')),
        KeyCode::Insert => return Some(tilde(2)),
        KeyCode::Delete => return Some(tilde(3)),
        KeyCode::PageUp => return Some(tilde(5)),
        KeyCode::PageDown => return Some(tilde(6)),
        KeyCode::Menu => return Some(tilde(29)),
        KeyCode::F(n @ 1..=4) => return Some(ss3(b'P' + n - 1)),
        KeyCode::F(n @ 5..=12) => {
            const CODES: [u8; 8] = [15, 17, 18, 19, 20, 21, 23, 24];
            return Some(tilde(CODES[usize::from(n - 5)]));
        }
        KeyCode::BackTab => return Some(b"\x1b[Z".to_vec()),
        _ => {}
    }

    // Keys that send one character, ESC-prefixed with Alt.
    let mut bytes: Vec<u8> = match key.code {
        KeyCode::Enter => vec![b'\r'],
        KeyCode::Tab => vec![b'\t'],
        KeyCode::Esc => vec![ESC],
        KeyCode::Null => vec![0],
        KeyCode::Backspace if ctrl => vec![0x08],
        KeyCode::Backspace => vec![0x7f],
        KeyCode::Char(c) if ctrl => match control(c) {
            Some(b) => vec![b],
            None => utf8(c),
        },
        KeyCode::Char(c) => utf8(c),
        _ => return None,
    };
    if alt {
        bytes.insert(0, ESC);
    }
    Some(bytes)
}

fn utf8(c: char) -> Vec<u8> {
    c.to_string().into_bytes()
}

/// The C0 control for Ctrl+`c`, as xterm sends it. Digits are there because
/// legacy terminals report Ctrl-\ ] ^ _ as Ctrl-4..7 (crossterm follows).
fn control(c: char) -> Option<u8> {
    Some(match c {
        'a'..='z' | 'A'..='Z' => (c as u8) & 0x1f,
        ' ' | '@' | '2' => 0x00,
        '[' | '3' => 0x1b,
        '\\' | '4' => 0x1c,
        ']' | '5' => 0x1d,
        '^' | '6' => 0x1e,
        '_' | '7' | '/' => 0x1f,
        '?' | '8' => 0x7f,
        _ => return None,
    })
}

#[cfg(test)]
#[path = "console_keys_tests.rs"]
mod tests;
