use super::*;
use crossterm::event::KeyEventState;
use ratatui::Terminal;
use ratatui::backend::TestBackend;
use ratatui::style::Color;

/// A real netboot: hostboot, skiboot, petitboot's ncurses menu (alternate
/// screen, DECCKM), kexec, the target kernel and a login prompt.
const BOOT_LOG: &[u8] = include_bytes!("../console/testdata/netboot_ok.log");

fn press(code: KeyCode) -> KeyEvent {
    KeyEvent::new(code, KeyModifiers::NONE)
}

fn ctrl(c: char) -> KeyEvent {
    KeyEvent::new(KeyCode::Char(c), KeyModifiers::CONTROL)
}

fn keys(pane: &mut ConsolePane, screen: &mut ConsoleScreen, text: &str) -> Vec<PaneOutcome> {
    text.chars()
        .map(|c| handle_key(pane, screen, press(KeyCode::Char(c))))
        .collect()
}

/// The boot log up to (not including) the first occurrence of `marker`.
fn log_until(marker: &str) -> &'static [u8] {
    let end = BOOT_LOG
        .windows(marker.len())
        .position(|w| w == marker.as_bytes())
        .expect("marker in the boot log");
    &BOOT_LOG[..end]
}

/// The whole boot, with systemd's status colours as a real console has them.
fn coloured_boot() -> Vec<u8> {
    let text = String::from_utf8_lossy(BOOT_LOG).replace("[  OK  ]", "[\x1b[0;32m  OK  \x1b[0m]");
    let mut bytes = text.into_bytes();
    bytes.extend_from_slice(b"\r\n\x1b[0;1;31mFAILED\x1b[0m to mount /boot/efi\r\nnode01 login: ");
    bytes
}

fn screen_for(area: Rect, bytes: &[u8]) -> ConsoleScreen {
    let (rows, cols) = inner_size(area);
    let mut screen = ConsoleScreen::new(rows, cols, 1000);
    screen.feed(bytes);
    screen
}

fn render(
    width: u16,
    height: u16,
    pane: &ConsolePane,
    screen: &ConsoleScreen,
    status: &str,
) -> Terminal<TestBackend> {
    let mut terminal = Terminal::new(TestBackend::new(width, height)).expect("test backend");
    let theme = Theme::dark();
    terminal
        .draw(|f| draw(f, f.area(), pane, screen, status, &theme))
        .expect("draw");
    terminal
}

const SIZES: [(u16, u16); 2] = [(100, 30), (60, 16)];

#[test]
fn inner_size_leaves_border_and_hint() {
    assert_eq!(inner_size(Rect::new(0, 0, 100, 30)), (27, 98));
    assert_eq!(inner_size(Rect::new(5, 5, 2, 2)), (0, 0));
    assert_eq!(inner_size(Rect::new(0, 0, 1, 0)), (0, 0));
}

#[test]
fn view_typing_and_back() {
    let mut pane = ConsolePane::new("node01");
    let mut screen = ConsoleScreen::new(5, 20, 10);
    assert_eq!(pane.node(), "node01");
    assert!(!pane.typing());
    assert_eq!(keys(&mut pane, &mut screen, "x"), [PaneOutcome::Nothing]);
    assert_eq!(keys(&mut pane, &mut screen, "i"), [PaneOutcome::Redraw]);
    assert!(pane.typing());
    // In typing mode the view-mode keys go to the node.
    assert_eq!(
        keys(&mut pane, &mut screen, "qz"),
        [
            PaneOutcome::Send(b"q".to_vec()),
            PaneOutcome::Send(b"z".to_vec())
        ]
    );
    assert_eq!(
        handle_key(&mut pane, &mut screen, ctrl('c')),
        PaneOutcome::Send(vec![3])
    );
    assert_eq!(
        handle_key(&mut pane, &mut screen, press(KeyCode::Esc)),
        PaneOutcome::Send(vec![0x1b])
    );
    assert_eq!(
        handle_key(&mut pane, &mut screen, ctrl(']')),
        PaneOutcome::Redraw
    );
    assert!(!pane.typing());
    // Enter types too, and a legacy terminal's Ctrl-] (reported as Ctrl-5) stops.
    assert_eq!(
        handle_key(&mut pane, &mut screen, press(KeyCode::Enter)),
        PaneOutcome::Redraw
    );
    assert!(pane.typing());
    assert_eq!(
        handle_key(&mut pane, &mut screen, ctrl('5')),
        PaneOutcome::Redraw
    );
    assert!(!pane.typing());
}

#[test]
fn typing_follows_decckm() {
    let mut pane = ConsolePane::new("n");
    let mut screen = ConsoleScreen::new(5, 20, 10);
    handle_key(&mut pane, &mut screen, press(KeyCode::Char('i')));
    screen.feed(b"\x1b[?1h");
    assert_eq!(
        handle_key(&mut pane, &mut screen, press(KeyCode::Up)),
        PaneOutcome::Send(b"\x1bOA".to_vec())
    );
    let release = KeyEvent {
        kind: KeyEventKind::Release,
        state: KeyEventState::NONE,
        ..press(KeyCode::Char('a'))
    };
    assert_eq!(
        handle_key(&mut pane, &mut screen, release),
        PaneOutcome::Nothing
    );
}

#[test]
fn leave_zoom_and_break() {
    let mut pane = ConsolePane::new("n");
    let mut screen = ConsoleScreen::new(5, 20, 10);
    assert_eq!(keys(&mut pane, &mut screen, "q"), [PaneOutcome::Leave]);
    assert_eq!(
        handle_key(&mut pane, &mut screen, press(KeyCode::Esc)),
        PaneOutcome::Leave
    );
    assert_eq!(keys(&mut pane, &mut screen, "b"), [PaneOutcome::Break]);
    assert!(!pane.zoomed());
    assert_eq!(keys(&mut pane, &mut screen, "z"), [PaneOutcome::Redraw]);
    assert!(pane.zoomed());
    keys(&mut pane, &mut screen, "z");
    assert!(!pane.zoomed());
}

fn numbered(screen: &mut ConsoleScreen, from: usize, to: usize) {
    for i in from..to {
        screen.feed(format!("line {i}\r\n").as_bytes());
    }
}

#[test]
fn scrolling_and_typing_snaps_to_live() {
    let mut pane = ConsolePane::new("n");
    let mut screen = ConsoleScreen::new(5, 20, 100);
    numbered(&mut screen, 0, 40);
    assert_eq!(
        handle_key(&mut pane, &mut screen, press(KeyCode::PageUp)),
        PaneOutcome::Redraw
    );
    assert_eq!(screen.scrollback(), 4);
    keys(&mut pane, &mut screen, "kk");
    assert_eq!(screen.scrollback(), 6);
    keys(&mut pane, &mut screen, "j");
    assert_eq!(screen.scrollback(), 5);
    handle_key(&mut pane, &mut screen, press(KeyCode::Home));
    assert_eq!(screen.scrollback(), 36);
    assert!(
        screen.contents().starts_with("line 0\n"),
        "{}",
        screen.contents()
    );
    assert_eq!(
        handle_key(&mut pane, &mut screen, press(KeyCode::Up)),
        PaneOutcome::Nothing
    );
    handle_key(&mut pane, &mut screen, press(KeyCode::PageDown));
    assert_eq!(screen.scrollback(), 32);
    keys(&mut pane, &mut screen, "G");
    assert_eq!(screen.scrollback(), 0);

    // Entering typing mode snaps to live...
    handle_key(&mut pane, &mut screen, press(KeyCode::PageUp));
    keys(&mut pane, &mut screen, "i");
    assert_eq!(screen.scrollback(), 0);
    // ...and so does every key typed.
    screen.set_scrollback(10);
    assert_eq!(
        keys(&mut pane, &mut screen, "l"),
        [PaneOutcome::Send(b"l".to_vec())]
    );
    assert_eq!(screen.scrollback(), 0);
}

#[test]
fn search_scrolls_back_to_older_matches() {
    let mut pane = ConsolePane::new("n");
    let mut screen = ConsoleScreen::new(5, 30, 200);
    screen.feed(b"Info: Booting alpha (first)\r\n");
    numbered(&mut screen, 0, 30);
    screen.feed(b"Info: booting ALPHA (second)\r\n");
    numbered(&mut screen, 30, 60);

    assert_eq!(keys(&mut pane, &mut screen, "/"), [PaneOutcome::Redraw]);
    assert_eq!(pane.prompt(), Some(""));
    keys(&mut pane, &mut screen, "alphx");
    handle_key(&mut pane, &mut screen, press(KeyCode::Backspace));
    keys(&mut pane, &mut screen, "a");
    assert_eq!(pane.prompt(), Some("alpha"));
    assert_eq!(
        handle_key(&mut pane, &mut screen, press(KeyCode::Enter)),
        PaneOutcome::Redraw
    );
    assert_eq!(pane.prompt(), None);
    assert_eq!(pane.query(), Some("alpha"));
    // The newest match, which scrolled into the scrollback, is in view.
    assert!(screen.scrollback() > 0);
    assert!(
        screen.contents().contains("booting ALPHA (second)"),
        "{}",
        screen.contents()
    );
    let newest = screen.scrollback();

    // `n` goes to an older match (the search is case-insensitive).
    assert_eq!(keys(&mut pane, &mut screen, "n"), [PaneOutcome::Redraw]);
    assert!(screen.scrollback() > newest);
    assert!(
        screen.contents().contains("Booting alpha (first)"),
        "{}",
        screen.contents()
    );
    assert!(!screen.contents().contains("(second)"));
    let oldest = screen.scrollback();
    keys(&mut pane, &mut screen, "n");
    assert_eq!(screen.scrollback(), oldest, "no older match: stay");
    assert_eq!(
        pane.note.as_ref().map(|n| n.0.as_str()),
        Some("no older match")
    );
    keys(&mut pane, &mut screen, "N");
    assert_eq!(screen.scrollback(), newest);

    // An uppercase letter makes the search case-sensitive; Esc cancels.
    keys(&mut pane, &mut screen, "/ALPHA");
    handle_key(&mut pane, &mut screen, press(KeyCode::Esc));
    assert_eq!((pane.prompt(), pane.query()), (None, Some("alpha")));
    keys(&mut pane, &mut screen, "G/ALPHA");
    handle_key(&mut pane, &mut screen, press(KeyCode::Enter));
    assert!(screen.contents().contains("(second)"));
    keys(&mut pane, &mut screen, "n");
    assert!(screen.contents().contains("(second)"), "only one ALPHA");

    keys(&mut pane, &mut screen, "/nowhere");
    handle_key(&mut pane, &mut screen, press(KeyCode::Enter));
    assert_eq!(pane.note.as_ref().map(|n| n.0.as_str()), Some("not found"));
}

#[test]
fn search_on_the_live_screen_does_not_scroll() {
    let mut pane = ConsolePane::new("n");
    let mut screen = ConsoleScreen::new(5, 30, 200);
    numbered(&mut screen, 0, 20);
    screen.feed(b"node01 login: ");
    keys(&mut pane, &mut screen, "/login");
    handle_key(&mut pane, &mut screen, press(KeyCode::Enter));
    assert_eq!(screen.scrollback(), 0);
    assert_eq!(pane.note.as_ref().map(|n| n.0.as_str()), Some("match 1/1"));
}

#[test]
fn host_colours_survive_and_borders_use_roles() {
    let theme = Theme::dark();
    let area = Rect::new(0, 0, 60, 16);
    let screen = screen_for(area, &coloured_boot());
    let mut pane = ConsolePane::new("node01");
    let terminal = render(60, 16, &pane, &screen, "connected");
    let buf = terminal.backend().buffer();
    // Find "FAILED" (ANSI bold red from the host) and "OK" (green).
    let find = |word: &str| -> (u16, u16) {
        for y in 0..buf.area.height {
            let row: String = (0..buf.area.width).map(|x| buf[(x, y)].symbol()).collect();
            if let Some(x) = row.find(word) {
                return (u16::try_from(x).expect("column"), y);
            }
        }
        panic!("{word} not drawn");
    };
    let (x, y) = find("FAILED");
    assert_eq!(buf[(x, y)].fg, Color::Indexed(1));
    let (x, y) = find("  OK  ");
    assert_eq!(buf[(x + 2, y)].fg, Color::Indexed(2));
    assert_eq!(
        buf[(0, 0)].fg,
        theme.style(Role::Border).fg.expect("border colour")
    );

    pane.typing = true;
    let terminal = render(60, 16, &pane, &screen, "connected");
    let buf = terminal.backend().buffer();
    assert_eq!(
        buf[(0, 0)].fg,
        theme.style(Role::BorderFocus).fg.expect("focus colour")
    );
    assert_ne!(theme.style(Role::Border), theme.style(Role::BorderFocus));
}

#[test]
fn search_highlight_uses_roles() {
    let theme = Theme::dark();
    let (w, h) = (60, 16);
    let mut screen = screen_for(Rect::new(0, 0, w, h), &coloured_boot());
    let mut pane = ConsolePane::new("node01");
    keys(&mut pane, &mut screen, "/command line");
    handle_key(&mut pane, &mut screen, press(KeyCode::Enter));
    let terminal = render(w, h, &pane, &screen, "connected");
    let buf = terminal.backend().buffer();
    let flash = theme.style(Role::Flash).bg.expect("flash background");
    let lit: Vec<(u16, u16)> = (0..h)
        .flat_map(|y| (0..w).map(move |x| (x, y)))
        .filter(|&(x, y)| buf[(x, y)].bg == flash)
        .collect();
    assert_eq!(lit.len(), "command line".len(), "{lit:?}");
    let text: String = lit.iter().map(|&p| buf[p].symbol()).collect();
    assert_eq!(text, "command line");
}

fn snapshot(
    name: &str,
    pane: &ConsolePane,
    screen: &ConsoleScreen,
    status: &str,
    size: (u16, u16),
) -> Terminal<TestBackend> {
    let terminal = render(size.0, size.1, pane, screen, status);
    insta::assert_snapshot!(format!("{name}_{}x{}", size.0, size.1), terminal.backend());
    terminal
}

#[test]
fn snapshot_petitboot_menu() {
    for size in SIZES {
        let area = Rect::new(0, 0, size.0, size.1);
        let screen = screen_for(area, log_until("Info: Booting in 7 sec"));
        snapshot(
            "console_petitboot",
            &ConsolePane::new("node01"),
            &screen,
            "connected",
            size,
        );
    }
}

#[test]
fn snapshot_typing() {
    for size in SIZES {
        let area = Rect::new(0, 0, size.0, size.1);
        let mut screen = screen_for(area, &coloured_boot());
        let mut pane = ConsolePane::new("node01");
        keys(&mut pane, &mut screen, "i");
        snapshot("console_typing", &pane, &screen, "connected", size);
    }
}

#[test]
fn snapshot_search_prompt_over_a_match() {
    for size in SIZES {
        let area = Rect::new(0, 0, size.0, size.1);
        let mut screen = screen_for(area, &coloured_boot());
        let mut pane = ConsolePane::new("node01");
        keys(&mut pane, &mut screen, "/Kernel command line");
        handle_key(&mut pane, &mut screen, press(KeyCode::Enter));
        keys(&mut pane, &mut screen, "/OPAL");
        let terminal = snapshot("console_search", &pane, &screen, "reconnecting in 2s", size);
        // The match found before the prompt opened stays highlighted.
        let flash = Theme::dark().style(Role::Flash).bg;
        let buf = terminal.backend().buffer();
        let lit: String = buf
            .content()
            .iter()
            .filter(|c| c.bg == flash.unwrap_or(Color::Reset))
            .map(|c| c.symbol())
            .collect();
        assert_eq!(lit, "Kernel command line");
    }
}

#[test]
fn snapshot_scrollback() {
    for size in SIZES {
        let area = Rect::new(0, 0, size.0, size.1);
        let mut screen = screen_for(area, &coloured_boot());
        let mut pane = ConsolePane::new("node01");
        handle_key(&mut pane, &mut screen, press(KeyCode::PageUp));
        keys(&mut pane, &mut screen, "k");
        assert!(screen.scrollback() > 0);
        snapshot(
            "console_scrollback",
            &pane,
            &screen,
            "SOL busy: another session holds the console",
            size,
        );
    }
}
