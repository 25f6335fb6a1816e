use super::*;

fn text(s: &str) -> Vec<u8> {
    let mut v = vec![0xC0 | s.len() as u8];
    v.extend_from_slice(s.as_bytes());
    v
}

/// 6-bit packed ASCII, padded with spaces to whole groups of four.
fn packed(s: &str) -> Vec<u8> {
    let mut vals: Vec<u32> = s.bytes().map(|c| u32::from(c - 0x20)).collect();
    while !vals.len().is_multiple_of(4) {
        vals.push(0);
    }
    let mut out = Vec::new();
    for g in vals.chunks(4) {
        let v = g[0] | g[1] << 6 | g[2] << 12 | g[3] << 18;
        out.extend_from_slice(&[v as u8, (v >> 8) as u8, (v >> 16) as u8]);
    }
    let mut field = vec![0x80 | out.len() as u8];
    field.extend(out);
    field
}

/// An area: version, length, preamble, fields, end marker, pad, checksum.
fn area(preamble: &[u8], fields: &[Vec<u8>]) -> Vec<u8> {
    let mut body = preamble.to_vec();
    for f in fields {
        body.extend_from_slice(f);
    }
    body.push(0xC1);
    let total = (body.len() + 3).div_ceil(8) * 8;
    let mut a = vec![1, (total / 8) as u8];
    a.extend(body);
    a.resize(total - 1, 0);
    let sum = a.iter().fold(0u8, |s, b| s.wrapping_add(*b));
    a.push(sum.wrapping_neg());
    a
}

/// The image the ipmi_sim test serves too: chassis (with a 6-bit serial),
/// board, product.
pub(crate) fn sample_image() -> Vec<u8> {
    let chassis = area(&[0x17], &[text("CPN-1"), packed("CSN42"), text("custom1")]);
    let board = area(
        &[0, 0x10, 0x20, 0x30],
        &[
            text("ACME"),
            text("Widget Board"),
            text("SN123"),
            text("PN-456"),
            text("fruid"),
            text("board extra"),
        ],
    );
    let product = area(
        &[0],
        &[
            text("ACME Corp"),
            text("Widget"),
            text("PN-789"),
            text("v1.2"),
            text("PSN999"),
            text("AT1"),
            text("fruid"),
        ],
    );
    let c = 1u8;
    let b = c + (chassis.len() / 8) as u8;
    let p = b + (board.len() / 8) as u8;
    let mut header = vec![1, 0, c, b, p, 0, 0];
    let sum = header.iter().fold(0u8, |s, x| s.wrapping_add(*x));
    header.push(sum.wrapping_neg());
    let mut image = header;
    image.extend(chassis);
    image.extend(board);
    image.extend(product);
    image
}

#[test]
fn every_area_decodes_with_ipmitools_names() {
    let info = parse_fru(&sample_image());
    assert!(info.problems.is_empty(), "{:?}", info.problems);
    let chassis = info.chassis.unwrap();
    assert_eq!(chassis.get("Chassis Type"), Some("Rack Mount Chassis"));
    assert_eq!(chassis.get("Chassis Serial"), Some("CSN42"));
    assert_eq!(chassis.get("Chassis Extra"), Some("custom1"));
    let board = info.board.unwrap();
    // What `ipmitool fru print` showed for this image on ipmi_sim.
    assert_eq!(
        board.get("Board Mfg Date"),
        Some("Sun Dec 30 05:36:00 2001 UTC")
    );
    let names: Vec<&str> = board.fields.iter().map(|f| f.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "Board Mfg Date",
            "Board Mfg",
            "Board Product",
            "Board Serial",
            "Board Part Number",
            "Board Extra"
        ]
    );
    assert!(board.checksum_ok);
    let product = info.product.unwrap();
    assert_eq!(product.get("Product Version"), Some("v1.2"));
    assert_eq!(product.get("Product Asset Tag"), Some("AT1"));
    assert_eq!(product.fields.len(), 6, "no FRU file ID: {product:?}");
}

#[test]
fn field_encodings() {
    assert_eq!(decode_field(0x43, &[0x12, 0xAB, 0xC9]), "12 -.9");
    assert_eq!(decode_field(0x02, &[0xDE, 0xAD]), "dead");
    assert_eq!(decode_field(0xC3, &[b'a', 0xE9, b' ']), "a\u{e9}");
    let p = packed("IBM POWER9");
    assert_eq!(decode_field(p[0], &p[1..]), "IBM POWER9");
    assert_eq!(decode_field(0xC3, b"a\x1b["), "a\\x1b[");
    assert_eq!(mfg_date(0), "Unspecified");
    // 1996-01-01 00:01 was a Monday.
    assert_eq!(mfg_date(1), "Mon Jan  1 00:01:00 1996 UTC");
    assert_eq!(chassis_type(0x99), "Unknown (0x99)");
}

#[test]
fn a_bad_checksum_is_reported_and_the_fields_still_read() {
    let mut image = sample_image();
    let board_at = usize::from(image[3]) * 8;
    image[board_at + 8] ^= 0x01; // a letter of "ACME"
    let info = parse_fru(&image);
    assert_eq!(info.problems, ["board area checksum mismatch"]);
    let board = info.board.unwrap();
    assert!(!board.checksum_ok);
    assert_eq!(board.get("Board Mfg"), Some("ABME"));

    let mut image = sample_image();
    image[7] ^= 1;
    let info = parse_fru(&image);
    assert_eq!(info.problems, ["common header checksum mismatch"]);
    assert!(info.board.is_none());
}

#[test]
fn truncated_and_hostile_images_do_not_panic() {
    let image = sample_image();
    let product_at = usize::from(image[4]) * 8;
    let info = parse_fru(&image[..product_at + 16]);
    assert!(
        info.problems
            .iter()
            .any(|p| p.starts_with("product area truncated")),
        "{:?}",
        info.problems
    );
    assert_eq!(
        info.product.unwrap().get("Product Manufacturer"),
        Some("ACME Corp")
    );

    assert!(!parse_fru(&[]).problems.is_empty());
    assert!(!parse_fru(&[2, 0, 0, 0, 0, 0, 0, 0xFE]).problems.is_empty());
    // A header pointing past the image.
    let mut header = vec![1, 0, 0, 0xF0, 0, 0, 0];
    let sum = header.iter().fold(0u8, |s, x| s.wrapping_add(*x));
    header.push(sum.wrapping_neg());
    let info = parse_fru(&header);
    assert!(
        info.problems[0].contains("past the end"),
        "{:?}",
        info.problems
    );
    // Fuzz: every prefix and some byte flips of a real image.
    for n in 0..image.len() {
        let _ = parse_fru(&image[..n]);
    }
    for i in 0..image.len() {
        let mut m = image.clone();
        m[i] = 0xFF;
        let _ = parse_fru(&m);
    }
    // A field claiming more bytes than the area holds.
    let mut a = area(&[0], &[text("X")]);
    a[3] = 0xFF;
    let mut img = vec![1, 0, 0, 0, 1, 0, 0];
    let sum = img.iter().fold(0u8, |s, x| s.wrapping_add(*x));
    img.push(sum.wrapping_neg());
    img.extend(a);
    let info = parse_fru(&img);
    assert!(
        info.problems.iter().any(|p| p.contains("runs past")),
        "{:?}",
        info.problems
    );
}

#[test]
fn area_info_reads_size_and_access_mode() {
    assert_eq!(
        FruAreaInfo::parse(&[0x00, 0x01, 0x01]),
        Some(FruAreaInfo {
            size: 256,
            by_words: true
        })
    );
    assert_eq!(FruAreaInfo::parse(&[0x00, 0x01]), None);
}
