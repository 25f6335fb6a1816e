use super::*;
use ratatui::Terminal;
use ratatui::backend::TestBackend;
use ratatui::buffer::Buffer;

const BOOT_LOG: &[u8] = include_bytes!("../console/testdata/netboot_ok.log");
const PANIC_LOG: &[u8] = include_bytes!("../console/testdata/kernel_panic.log");
const MISSING_LOG: &[u8] = include_bytes!("../console/testdata/netboot_config_missing.log");

fn check_layout(area: Rect, count: usize) -> Vec<Rect> {
    let rects = layout(area, count);
    assert!(rects.len() <= count);
    for (i, r) in rects.iter().enumerate() {
        assert!(
            r.x >= area.x
                && r.y >= area.y
                && r.right() <= area.right()
                && r.bottom() <= area.bottom(),
            "{count} tiles in {area:?}: tile {i} {r:?} outside"
        );
        assert!(
            r.width >= MIN_W && r.height >= MIN_H,
            "{count} tiles in {area:?}: tile {i} {r:?} under 20x4 inside"
        );
        for (j, s) in rects.iter().enumerate().skip(i + 1) {
            assert!(
                !r.intersects(*s),
                "{count} tiles in {area:?}: {i} {r:?} overlaps {j} {s:?}"
            );
        }
    }
    if rects.len() < count {
        // The note row stays free.
        assert!(
            rects.iter().all(|r| r.bottom() < area.bottom()),
            "{rects:?}"
        );
    }
    rects
}

#[test]
fn layout_fits_and_never_overlaps() {
    for area in [Rect::new(0, 0, 120, 40), Rect::new(3, 2, 80, 24)] {
        for count in [0, 1, 2, 3, 4, 5, 9, 12, 30] {
            check_layout(area, count);
        }
    }
}

#[test]
fn layout_shapes() {
    let big = Rect::new(0, 0, 120, 40);
    let small = Rect::new(0, 0, 80, 24);
    let shape = |rects: &[Rect]| -> Vec<(u16, u16, u16, u16)> {
        rects
            .iter()
            .map(|r| (r.x, r.y, r.width, r.height))
            .collect()
    };
    assert_eq!(shape(&check_layout(big, 1)), [(0, 0, 120, 40)]);
    // Two tiles side by side (60x40 is squarer than 120x20).
    assert_eq!(
        shape(&check_layout(big, 2)),
        [(0, 0, 60, 40), (60, 0, 60, 40)]
    );
    assert_eq!(
        shape(&check_layout(big, 4)),
        [
            (0, 0, 60, 20),
            (60, 0, 60, 20),
            (0, 20, 60, 20),
            (60, 20, 60, 20)
        ]
    );
    // Three side by side; five in 80x24: a short last row is stretched.
    assert_eq!(
        shape(&check_layout(big, 3)),
        [(0, 0, 40, 40), (40, 0, 40, 40), (80, 0, 40, 40)]
    );
    assert_eq!(
        shape(&check_layout(small, 5)),
        [
            (0, 0, 26, 12),
            (26, 0, 27, 12),
            (53, 0, 27, 12),
            (0, 12, 40, 12),
            (40, 12, 40, 12)
        ]
    );
    let nine = check_layout(big, 9);
    assert_eq!(nine.len(), 9);
    assert!(
        nine.iter().all(|r| r.width == 40 && r.height >= 13),
        "{nine:?}"
    );
    // 30 fit in 120x40 exactly as 5x6 minimum tiles.
    assert_eq!(check_layout(big, 30).len(), 30);

    assert_eq!(check_layout(small, 4).len(), 4);
    assert_eq!(check_layout(small, 9).len(), 9);
    // 80x24 holds 3x3 minimum tiles above the note row.
    assert_eq!(check_layout(small, 30).len(), 9);
    assert!(
        check_layout(Rect::new(0, 0, 21, 40), 1).is_empty(),
        "too narrow"
    );
}

/// The log up to the firmware's restart after the panic.
fn until_reboot(log: &[u8]) -> &[u8] {
    let marker = b"Rebooting in 10 seconds..\r\n";
    let end = log
        .windows(marker.len())
        .position(|w| w == marker)
        .map_or(log.len(), |at| at + marker.len());
    &log[..end]
}

fn boot_screen(bytes: &[u8]) -> ConsoleScreen {
    let mut screen = ConsoleScreen::new(24, 80, 100);
    screen.feed(bytes);
    screen
}

fn render(area: (u16, u16), tiles: &[Tile<'_>]) -> Terminal<TestBackend> {
    let mut terminal = Terminal::new(TestBackend::new(area.0, area.1)).expect("test backend");
    let theme = Theme::dark();
    terminal
        .draw(|f| draw(f, f.area(), tiles, &theme))
        .expect("draw");
    terminal
}

fn text(buf: &Buffer) -> String {
    let w = usize::from(buf.area.width);
    buf.content()
        .chunks(w)
        .map(|row| row.iter().map(|c| c.symbol()).collect::<String>() + "\n")
        .collect()
}

/// Four nodes at different points of a mass boot.
fn four_screens() -> Vec<(&'static str, ConsoleScreen, Option<Stage>)> {
    vec![
        ("node01", boot_screen(BOOT_LOG), Some(Stage::LoginPrompt)),
        (
            "node02",
            boot_screen(until_reboot(PANIC_LOG)),
            Some(Stage::Panic),
        ),
        (
            "node03",
            boot_screen(MISSING_LOG),
            Some(Stage::DownloadFailed),
        ),
        (
            "node04",
            boot_screen(b"\r\n --== Welcome to Hostboot ==--\r\n"),
            None,
        ),
    ]
}

fn tiles<'a>(
    screens: &'a [(&'static str, ConsoleScreen, Option<Stage>)],
    selected: usize,
) -> Vec<Tile<'a>> {
    screens
        .iter()
        .enumerate()
        .map(|(i, (node, screen, stage))| Tile {
            node,
            screen,
            stage: *stage,
            selected: i == selected,
        })
        .collect()
}

#[test]
fn snapshot_four_tiles() {
    let screens = four_screens();
    let theme = Theme::dark();
    for size in [(120, 40), (80, 24)] {
        let terminal = render(size, &tiles(&screens, 1));
        insta::assert_snapshot!(
            format!("wall_four_{}x{}", size.0, size.1),
            terminal.backend()
        );
        let buf = terminal.backend().buffer();
        let view = text(buf);
        // Every tile titled "node · stage", showing its newest rows.
        assert!(view.contains(" node01 · login_prompt "), "{view}");
        assert!(view.contains(" node02 · panic "), "{view}");
        assert!(view.contains("node01 login:"), "{view}");
        assert!(view.contains("Rebooting in 10 seconds"), "{view}");
        // The selected tile's border is focused, the others are not.
        let rects = layout(Rect::new(0, 0, size.0, size.1), 4);
        let corner = |i: usize| buf[(rects[i].x, rects[i].y)].fg;
        assert_eq!(Some(corner(1)), theme.style(Role::BorderFocus).fg);
        assert_eq!(Some(corner(0)), theme.style(Role::Border).fg);
        // A failure stage is drawn with the failure role.
        let title_y = rects[1].y;
        let x = (0..size.0)
            .find(|&x| buf[(x, title_y)].symbol() == "p" && buf[(x + 1, title_y)].symbol() == "a")
            .expect("panic in the title");
        assert_eq!(
            buf[(x, title_y)].fg,
            theme.style(Role::StateFailed).fg.expect("failed colour")
        );
    }
}

#[test]
fn overflow_shows_the_selected_page_and_a_note() {
    let screen = boot_screen(BOOT_LOG);
    let names: Vec<String> = (1..=30).map(|i| format!("node{i:02}")).collect();
    let tiles: Vec<Tile<'_>> = names
        .iter()
        .enumerate()
        .map(|(i, node)| Tile {
            node,
            screen: &screen,
            stage: Some(Stage::KernelBooting),
            selected: i == 12,
        })
        .collect();
    let terminal = render((80, 24), &tiles);
    let view = text(terminal.backend().buffer());
    let last = view.lines().last().unwrap_or_default();
    assert!(
        last.starts_with("+21 more · showing 10–18 of 30"),
        "{last:?}"
    );
    assert!(view.contains(" node13 · kernel_booting"), "{view}");
    assert!(!view.contains("node09 "), "{view}");

    let terminal = render((15, 3), &tiles);
    let view = text(terminal.backend().buffer());
    let last = view.lines().last().unwrap_or_default();
    assert!(last.starts_with("+30 more"), "{view}");
}

#[test]
fn tile_shows_the_newest_rows() {
    let mut screen = ConsoleScreen::new(24, 80, 0);
    for i in 0..10 {
        screen.feed(format!("row {i}\r\n").as_bytes());
    }
    let view = Newest {
        screen: screen.screen(),
        skip: newest_rows_skip(screen.screen(), 4),
    };
    // Cursor on row 10 (empty): rows 7..=10 are the newest four.
    assert_eq!(view.skip, 7);
    assert_eq!(
        tui_term::widget::Screen::cell(&view, 0, 4).map(|c| c.contents()),
        Some("7")
    );
    assert_eq!(tui_term::widget::Screen::cursor_position(&view), (3, 0));
    // A short screen is shown from the top.
    assert_eq!(newest_rows_skip(screen.screen(), 30), 0);
}
