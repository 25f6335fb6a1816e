//! The expected bytes are the xterm ctlseqs "PC-Style Function Keys" and
//! VT100 keyboard definitions (ECMA-48 CSI = ESC [, SS3 = ESC O), written out
//! literally here rather than derived, so the table is the cross-check.

use super::*;
use crate::console::ConsoleScreen;
use crossterm::event::KeyEventState;

const NONE: KeyModifiers = KeyModifiers::NONE;
const CTRL: KeyModifiers = KeyModifiers::CONTROL;
const ALT: KeyModifiers = KeyModifiers::ALT;
const SHIFT: KeyModifiers = KeyModifiers::SHIFT;

fn key(code: KeyCode, mods: KeyModifiers) -> KeyEvent {
    KeyEvent::new(code, mods)
}

/// (key, modifiers, normal-mode bytes, application-cursor-mode bytes).
type Row = (KeyCode, KeyModifiers, &'static [u8], &'static [u8]);

/// Keys that DECCKM does not affect: same bytes in both modes.
const SAME: &[(KeyCode, KeyModifiers, &[u8])] = &[
    // Printable characters as UTF-8; shift only changes the character.
    (KeyCode::Char('a'), NONE, b"a"),
    (KeyCode::Char('A'), SHIFT, b"A"),
    (KeyCode::Char('~'), NONE, b"~"),
    (KeyCode::Char('é'), NONE, "é".as_bytes()),
    (KeyCode::Char('中'), NONE, "中".as_bytes()),
    // C0 keys.
    (KeyCode::Enter, NONE, b"\r"),
    (KeyCode::Backspace, NONE, b"\x7f"),
    (KeyCode::Backspace, CTRL, b"\x08"),
    (KeyCode::Tab, NONE, b"\t"),
    (KeyCode::BackTab, SHIFT, b"\x1b[Z"),
    (KeyCode::Esc, NONE, b"\x1b"),
    (KeyCode::Null, NONE, b"\x00"),
    // Ctrl-letters: the letter & 0x1f.
    (KeyCode::Char('a'), CTRL, b"\x01"),
    (KeyCode::Char('c'), CTRL, b"\x03"),
    (KeyCode::Char('z'), CTRL, b"\x1a"),
    (KeyCode::Char('Z'), CTRL.union(SHIFT), b"\x1a"),
    (KeyCode::Char(' '), CTRL, b"\x00"),
    (KeyCode::Char('@'), CTRL, b"\x00"),
    (KeyCode::Char('['), CTRL, b"\x1b"),
    (KeyCode::Char('\\'), CTRL, b"\x1c"),
    (KeyCode::Char(']'), CTRL, b"\x1d"),
    (KeyCode::Char('^'), CTRL, b"\x1e"),
    (KeyCode::Char('_'), CTRL, b"\x1f"),
    // How crossterm reports 0x1c..0x1f from a legacy terminal.
    (KeyCode::Char('4'), CTRL, b"\x1c"),
    (KeyCode::Char('5'), CTRL, b"\x1d"),
    (KeyCode::Char('6'), CTRL, b"\x1e"),
    (KeyCode::Char('7'), CTRL, b"\x1f"),
    // Ctrl on a character without a control code sends the character.
    (KeyCode::Char('1'), CTRL, b"1"),
    // Alt (metaSendsEscape): ESC then the key.
    (KeyCode::Char('x'), ALT, b"\x1bx"),
    (KeyCode::Char('X'), ALT.union(SHIFT), b"\x1bX"),
    (KeyCode::Char('c'), ALT.union(CTRL), b"\x1b\x03"),
    (KeyCode::Enter, ALT, b"\x1b\r"),
    (KeyCode::Backspace, ALT, b"\x1b\x7f"),
    // Editing keypad.
    (KeyCode::Insert, NONE, b"\x1b[2~"),
    (KeyCode::Delete, NONE, b"\x1b[3~"),
    (KeyCode::PageUp, NONE, b"\x1b[5~"),
    (KeyCode::PageDown, NONE, b"\x1b[6~"),
    (KeyCode::Delete, CTRL, b"\x1b[3;5~"),
    (KeyCode::PageUp, SHIFT, b"\x1b[5;2~"),
    // Function keys.
    (KeyCode::F(1), NONE, b"\x1bOP"),
    (KeyCode::F(2), NONE, b"\x1bOQ"),
    (KeyCode::F(3), NONE, b"\x1bOR"),
    (KeyCode::F(4), NONE, b"\x1bOS"),
    (KeyCode::F(5), NONE, b"\x1b[15~"),
    (KeyCode::F(6), NONE, b"\x1b[17~"),
    (KeyCode::F(7), NONE, b"\x1b[18~"),
    (KeyCode::F(8), NONE, b"\x1b[19~"),
    (KeyCode::F(9), NONE, b"\x1b[20~"),
    (KeyCode::F(10), NONE, b"\x1b[21~"),
    (KeyCode::F(11), NONE, b"\x1b[23~"),
    (KeyCode::F(12), NONE, b"\x1b[24~"),
    (KeyCode::F(1), SHIFT, b"\x1b[1;2P"),
    (KeyCode::F(5), CTRL, b"\x1b[15;5~"),
    // Modified cursor keys are CSI 1;m X in both modes.
    (KeyCode::Up, CTRL, b"\x1b[1;5A"),
    (KeyCode::Down, ALT, b"\x1b[1;3B"),
    (KeyCode::Right, SHIFT, b"\x1b[1;2C"),
    (KeyCode::Left, CTRL.union(SHIFT), b"\x1b[1;6D"),
    (KeyCode::Home, CTRL, b"\x1b[1;5H"),
    (KeyCode::End, ALT, b"\x1b[1;3F"),
];

/// Keys that DECCKM switches from CSI to SS3.
const CURSOR: &[Row] = &[
    (KeyCode::Up, NONE, b"\x1b[A", b"\x1bOA"),
    (KeyCode::Down, NONE, b"\x1b[B", b"\x1bOB"),
    (KeyCode::Right, NONE, b"\x1b[C", b"\x1bOC"),
    (KeyCode::Left, NONE, b"\x1b[D", b"\x1bOD"),
    (KeyCode::Home, NONE, b"\x1b[H", b"\x1bOH"),
    (KeyCode::End, NONE, b"\x1b[F", b"\x1bOF"),
];

fn show(bytes: &[u8]) -> String {
    bytes.escape_ascii().to_string()
}

#[test]
fn every_key_class_in_both_cursor_modes() {
    let rows = SAME
        .iter()
        .map(|&(code, mods, bytes)| (code, mods, bytes, bytes))
        .chain(CURSOR.iter().copied());
    let mut checked = 0;
    for (code, mods, normal, application) in rows {
        for (app, want) in [(false, normal), (true, application)] {
            let got = encode(key(code, mods), app);
            assert_eq!(
                got.as_deref().map(show),
                Some(show(want)),
                "{code:?} {mods:?} application_cursor={app}"
            );
            checked += 1;
        }
    }
    assert_eq!(checked, 2 * (SAME.len() + CURSOR.len()));
}

#[test]
fn keys_without_an_encoding() {
    use crossterm::event::{MediaKeyCode, ModifierKeyCode};
    let release = KeyEvent {
        code: KeyCode::Char('a'),
        modifiers: NONE,
        kind: KeyEventKind::Release,
        state: KeyEventState::NONE,
    };
    for app in [false, true] {
        assert_eq!(encode(release, app), None);
        for code in [
            KeyCode::Media(MediaKeyCode::Play),
            KeyCode::Modifier(ModifierKeyCode::LeftShift),
            KeyCode::CapsLock,
            KeyCode::NumLock,
            KeyCode::ScrollLock,
            KeyCode::PrintScreen,
            KeyCode::Pause,
            KeyCode::F(13),
            KeyCode::F(0),
        ] {
            assert_eq!(encode(key(code, NONE), app), None, "{code:?}");
        }
    }
}

#[test]
fn key_repeat_is_a_press() {
    let repeat = KeyEvent {
        code: KeyCode::Up,
        modifiers: NONE,
        kind: KeyEventKind::Repeat,
        state: KeyEventState::NONE,
    };
    assert_eq!(encode(repeat, false).as_deref(), Some(&b"\x1b[A"[..]));
}

#[test]
fn decckm_from_the_host_switches_arrows_to_ss3() {
    let mut screen = ConsoleScreen::new(24, 80, 0);
    let up = key(KeyCode::Up, NONE);
    assert!(!screen.application_cursor());
    assert_eq!(
        encode(up, screen.application_cursor()).as_deref(),
        Some(&b"\x1b[A"[..])
    );
    // What ncurses (petitboot's UI) sends on start-up: DECCKM set (smkx).
    screen.feed(b"\x1b[?1h");
    assert!(screen.application_cursor());
    assert_eq!(
        encode(up, screen.application_cursor()).as_deref(),
        Some(&b"\x1bOA"[..])
    );
    // And reset (rmkx) on exit.
    screen.feed(b"\x1b[?1l");
    assert_eq!(
        encode(up, screen.application_cursor()).as_deref(),
        Some(&b"\x1b[A"[..])
    );
}
