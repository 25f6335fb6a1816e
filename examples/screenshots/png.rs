//! A terminal screen (vt100, as parsed from `tmux capture-pane -e`) as a
//! PNG: each cell 8×16 pixels, glyphs from the public-domain font8x8 (ASCII,
//! Latin-1, box drawing, blocks) with every font row doubled, colours as
//! xterm draws them.

use std::path::Path;

use font8x8::legacy::{BASIC_LEGACY, BLOCK_LEGACY, BOX_LEGACY, LATIN_LEGACY};
use tui_term::vt100;

const CELL_W: usize = 8;
const CELL_H: usize = 16;
const DEFAULT_FG: [u8; 3] = [0xd0, 0xd0, 0xd0];
const DEFAULT_BG: [u8; 3] = [0x12, 0x16, 0x1c];

/// xterm's 16 colours.
const ANSI: [[u8; 3]; 16] = [
    [0x00, 0x00, 0x00],
    [0xcd, 0x00, 0x00],
    [0x00, 0xcd, 0x00],
    [0xcd, 0xcd, 0x00],
    [0x00, 0x00, 0xee],
    [0xcd, 0x00, 0xcd],
    [0x00, 0xcd, 0xcd],
    [0xe5, 0xe5, 0xe5],
    [0x7f, 0x7f, 0x7f],
    [0xff, 0x00, 0x00],
    [0x00, 0xff, 0x00],
    [0xff, 0xff, 0x00],
    [0x5c, 0x5c, 0xff],
    [0xff, 0x00, 0xff],
    [0x00, 0xff, 0xff],
    [0xff, 0xff, 0xff],
];

fn rgb(color: vt100::Color, default: [u8; 3]) -> [u8; 3] {
    match color {
        vt100::Color::Default => default,
        vt100::Color::Idx(i) => indexed(i),
        vt100::Color::Rgb(r, g, b) => [r, g, b],
    }
}

/// The xterm 256-colour palette.
fn indexed(i: u8) -> [u8; 3] {
    match i {
        0..=15 => ANSI[i as usize],
        16..=231 => {
            let i = i - 16;
            let level = |v: u8| if v == 0 { 0 } else { 55 + v * 40 };
            [level(i / 36), level(i / 6 % 6), level(i % 6)]
        }
        _ => {
            let v = 8 + (i - 232) * 10;
            [v, v, v]
        }
    }
}

/// Glyphs the dashboard uses that font8x8 lacks (bit 0 is the leftmost pixel).
fn extra(c: char) -> Option<[u8; 8]> {
    Some(match c {
        '▲' => [0x00, 0x08, 0x1C, 0x3E, 0x7F, 0x00, 0x00, 0x00],
        '▼' => [0x00, 0x7F, 0x3E, 0x1C, 0x08, 0x00, 0x00, 0x00],
        '…' => [0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x49, 0x00],
        '—' => [0x00, 0x00, 0x00, 0xFF, 0x00, 0x00, 0x00, 0x00],
        '●' => [0x00, 0x1C, 0x3E, 0x3E, 0x3E, 0x1C, 0x00, 0x00],
        '›' | '→' => BASIC_LEGACY[b'>' as usize],
        '‹' | '←' => BASIC_LEGACY[b'<' as usize],
        _ => return None,
    })
}

fn glyph(c: char) -> [u8; 8] {
    if let Some(g) = extra(c) {
        return g;
    }
    let code = c as usize;
    let found = match code {
        0..=0x7F => BASIC_LEGACY.get(code),
        0xA0..=0xFF => LATIN_LEGACY.get(code - 0xA0),
        0x2500..=0x257F => BOX_LEGACY.get(code - 0x2500),
        0x2580..=0x259F => BLOCK_LEGACY.get(code - 0x2580),
        _ => None,
    };
    found.copied().unwrap_or(BASIC_LEGACY[b'?' as usize])
}

pub fn write_png(screen: &vt100::Screen, path: &Path) -> std::io::Result<()> {
    let (rows, cols) = screen.size();
    let (rows, cols) = (rows as usize, cols as usize);
    let (w, h) = (cols * CELL_W, rows * CELL_H);
    let mut pixels = vec![0u8; w * h * 3];
    for y in 0..rows {
        for x in 0..cols {
            let Some(cell) = screen.cell(y as u16, x as u16) else {
                continue;
            };
            let mut fg = rgb(cell.fgcolor(), DEFAULT_FG);
            let mut bg = rgb(cell.bgcolor(), DEFAULT_BG);
            if cell.inverse() {
                std::mem::swap(&mut fg, &mut bg);
            }
            if cell.dim() {
                fg = [0, 1, 2].map(|i| ((fg[i] as u16 + bg[i] as u16) / 2) as u8);
            }
            let bold = cell.bold();
            let underline = cell.underline();
            let rows_of = glyph(cell.contents().chars().next().unwrap_or(' '));
            for py in 0..CELL_H {
                let bits = rows_of[py / 2];
                for px in 0..CELL_W {
                    // Bold: each lit pixel also lights its right neighbour.
                    let lit =
                        bits & (1 << px) != 0 || (bold && px > 0 && bits & (1 << (px - 1)) != 0);
                    let on = lit || (underline && py == CELL_H - 1);
                    let colour = if on { fg } else { bg };
                    let at = ((y * CELL_H + py) * w + x * CELL_W + px) * 3;
                    pixels[at..at + 3].copy_from_slice(&colour);
                }
            }
        }
    }
    let file = std::io::BufWriter::new(std::fs::File::create(path)?);
    let mut encoder = png::Encoder::new(file, w as u32, h as u32);
    encoder.set_color(png::ColorType::Rgb);
    encoder.set_depth(png::BitDepth::Eight);
    let mut writer = encoder.write_header().map_err(std::io::Error::other)?;
    writer
        .write_image_data(&pixels)
        .map_err(std::io::Error::other)?;
    writer.finish().map_err(std::io::Error::other)
}
