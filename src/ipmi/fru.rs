//! FRU inventory (IPMI 2.0 §34 and the Platform Management FRU Information
//! Storage Definition v1.0): read a FRU device's chassis, board and product
//! areas and decode their type/length fields. The decoding is I/O-free
//! ([`parse_fru`]) and never panics on a hostile image: bad checksums and
//! truncated areas are reported in [`FruInfo::problems`]. Field names are
//! ipmitool's (`fru print`), so the two outputs can be compared.

use serde::Serialize;

use super::error::{IpmiError, Result};
use super::message::netfn::STORAGE;
use super::rmcp::Bmc;

/// A FRU device larger than this is refused (the spec's offsets are 16 bits).
pub const MAX_FRU_BYTES: usize = 64 * 1024;
/// First Read FRU Data chunk; shrunk when the BMC says it is too much.
const FIRST_CHUNK: u8 = 24;
const MIN_CHUNK: u8 = 4;

/// Get FRU Inventory Area Info.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct FruAreaInfo {
    pub size: usize,
    /// Accessed in 16-bit words rather than bytes.
    pub by_words: bool,
}

impl FruAreaInfo {
    pub fn parse(data: &[u8]) -> Option<FruAreaInfo> {
        let d = data.get(..3)?;
        Some(FruAreaInfo {
            size: usize::from(u16::from_le_bytes([d[0], d[1]])),
            by_words: d[2] & 0x01 != 0,
        })
    }
}

/// One decoded field, named as ipmitool names it ("Board Mfg").
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FruField {
    pub name: String,
    pub value: String,
}

/// One area's fields in their order, and whether its checksum held.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize)]
pub struct FruArea {
    pub fields: Vec<FruField>,
    pub checksum_ok: bool,
}

impl FruArea {
    pub fn get(&self, name: &str) -> Option<&str> {
        self.fields
            .iter()
            .find(|f| f.name == name)
            .map(|f| f.value.as_str())
    }
}

/// The common-header areas petitlab reads, and what was wrong with the image.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize)]
pub struct FruInfo {
    pub chassis: Option<FruArea>,
    pub board: Option<FruArea>,
    pub product: Option<FruArea>,
    /// "board area checksum mismatch", "product area truncated at byte 40"…
    pub problems: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Chassis,
    Board,
    Product,
}

impl Kind {
    fn label(self) -> &'static str {
        match self {
            Kind::Chassis => "chassis",
            Kind::Board => "board",
            Kind::Product => "product",
        }
    }

    /// Names of the fixed fields after the area's preamble; `None` for the
    /// FRU File ID, which ipmitool does not print either.
    fn fixed(self) -> &'static [Option<&'static str>] {
        match self {
            Kind::Chassis => &[Some("Chassis Part Number"), Some("Chassis Serial")],
            Kind::Board => &[
                Some("Board Mfg"),
                Some("Board Product"),
                Some("Board Serial"),
                Some("Board Part Number"),
                None,
            ],
            Kind::Product => &[
                Some("Product Manufacturer"),
                Some("Product Name"),
                Some("Product Part Number"),
                Some("Product Version"),
                Some("Product Serial"),
                Some("Product Asset Tag"),
                None,
            ],
        }
    }

    fn extra(self) -> &'static str {
        match self {
            Kind::Chassis => "Chassis Extra",
            Kind::Board => "Board Extra",
            Kind::Product => "Product Extra",
        }
    }
}

/// The area offsets of the common header (in bytes), after checking it.
pub fn parse_header(image: &[u8]) -> std::result::Result<[Option<usize>; 3], String> {
    let h = image
        .get(..8)
        .ok_or_else(|| format!("FRU image of {} bytes has no common header", image.len()))?;
    if h[0] & 0x0F != 0x01 {
        return Err(format!(
            "common header format version {:#04x}, expected 1",
            h[0]
        ));
    }
    if checksum(h) != 0 {
        return Err("common header checksum mismatch".into());
    }
    let at = |b: u8| (b != 0).then_some(usize::from(b) * 8);
    Ok([at(h[2]), at(h[3]), at(h[4])])
}

fn checksum(bytes: &[u8]) -> u8 {
    bytes.iter().fold(0u8, |a, b| a.wrapping_add(*b))
}

/// Decodes the chassis, board and product areas of a FRU image.
pub fn parse_fru(image: &[u8]) -> FruInfo {
    let mut info = FruInfo::default();
    let offsets = match parse_header(image) {
        Ok(o) => o,
        Err(why) => {
            info.problems.push(why);
            return info;
        }
    };
    for (kind, offset) in [Kind::Chassis, Kind::Board, Kind::Product]
        .into_iter()
        .zip(offsets)
    {
        let Some(offset) = offset else { continue };
        let area = parse_area(image, offset, kind, &mut info.problems);
        match kind {
            Kind::Chassis => info.chassis = area,
            Kind::Board => info.board = area,
            Kind::Product => info.product = area,
        }
    }
    info
}

fn parse_area(
    image: &[u8],
    offset: usize,
    kind: Kind,
    problems: &mut Vec<String>,
) -> Option<FruArea> {
    let label = kind.label();
    let Some(head) = image.get(offset..offset + 2) else {
        problems.push(format!(
            "{label} area at byte {offset} is past the end of the image"
        ));
        return None;
    };
    let declared = usize::from(head[1]) * 8;
    if declared < 2 {
        problems.push(format!("{label} area at byte {offset} has length 0"));
        return None;
    }
    let end = (offset + declared).min(image.len());
    let area = &image[offset..end];
    let mut out = FruArea {
        fields: Vec::new(),
        checksum_ok: area.len() == declared && checksum(area) == 0,
    };
    if area.len() < declared {
        problems.push(format!(
            "{label} area truncated: {} of its {declared} bytes",
            area.len()
        ));
    } else if !out.checksum_ok {
        problems.push(format!("{label} area checksum mismatch"));
    }
    // Preamble: version, length, then chassis type or language (+ the
    // board's manufacturing date).
    let mut i;
    match kind {
        Kind::Chassis => {
            let t = *area.get(2)?;
            out.fields.push(field("Chassis Type", chassis_type(t)));
            i = 3;
        }
        Kind::Board => {
            let d = area.get(3..6)?;
            let minutes = u32::from_le_bytes([d[0], d[1], d[2], 0]);
            out.fields.push(field("Board Mfg Date", mfg_date(minutes)));
            i = 6;
        }
        Kind::Product => i = 3,
    }
    let fixed = kind.fixed();
    let mut n = 0;
    // Every field takes at least one byte, so this ends.
    loop {
        let Some(&tl) = area.get(i) else {
            problems.push(format!(
                "{label} area ends without its end-of-fields marker"
            ));
            break;
        };
        if tl == 0xC1 {
            break;
        }
        let len = usize::from(tl & 0x3F);
        let Some(bytes) = area.get(i + 1..i + 1 + len) else {
            problems.push(format!(
                "{label} area field at byte {i} runs past the area's end"
            ));
            break;
        };
        i += 1 + len;
        let name = if n < fixed.len() {
            fixed[n]
        } else {
            Some(kind.extra())
        };
        n += 1;
        let Some(name) = name else { continue };
        let value = decode_field(tl, bytes);
        if !value.is_empty() {
            out.fields.push(field(name, value));
        }
    }
    Some(out)
}

fn field(name: &str, value: impl Into<String>) -> FruField {
    FruField {
        name: name.to_string(),
        value: value.into(),
    }
}

/// A type/length-encoded field's text: 8-bit (latin-1), 6-bit packed
/// ASCII, BCD plus, or binary as hex. Trailing spaces and NULs are trimmed,
/// control characters escaped (`\x1b`).
pub fn decode_field(type_length: u8, bytes: &[u8]) -> String {
    let text: String = match type_length >> 6 {
        0b00 => return super::sel::hex(bytes),
        0b01 => bytes
            .iter()
            .flat_map(|b| [b >> 4, b & 0x0F])
            .map(|d| match d {
                0..=9 => char::from(b'0' + d),
                0x0A => ' ',
                0x0B => '-',
                0x0C => '.',
                _ => '?',
            })
            .collect(),
        0b10 => six_bit(bytes),
        _ => bytes.iter().map(|&b| char::from(b)).collect(),
    };
    // From the BMC: control characters become visible escapes.
    crate::text::display_safe(text.trim_end_matches([' ', '\0'])).into_owned()
}

/// 6-bit packed ASCII: four characters (0x20 + value) per three bytes,
/// least significant bits first.
fn six_bit(bytes: &[u8]) -> String {
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let mut v = 0u32;
        for (k, b) in chunk.iter().enumerate() {
            v |= u32::from(*b) << (8 * k);
        }
        for k in 0..(chunk.len() * 8 / 6) {
            out.push(char::from(0x20 + ((v >> (6 * k)) & 0x3F) as u8));
        }
    }
    out
}

/// Minutes since 1996-01-01 00:00 UTC as ipmitool prints them (C's
/// `asctime` plus " UTC"); 0 means unspecified.
pub fn mfg_date(minutes: u32) -> String {
    if minutes == 0 {
        return "Unspecified".into();
    }
    const EPOCH_1996: i64 = 820_454_400;
    let secs = EPOCH_1996 + i64::from(minutes) * 60;
    let (y, mo, d, h, mi, s) = crate::calendar::utc_fields(secs);
    const DAYS: [&str; 7] = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"];
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let weekday = DAYS[secs.div_euclid(86_400).rem_euclid(7) as usize];
    let month = MONTHS[(mo - 1) as usize];
    format!("{weekday} {month} {d:>2} {h:02}:{mi:02}:{s:02} {y} UTC")
}

/// SMBIOS chassis types, as the FRU chassis area uses them.
pub fn chassis_type(code: u8) -> String {
    const NAMES: [&str; 37] = [
        "Unspecified",
        "Other",
        "Unknown",
        "Desktop",
        "Low Profile Desktop",
        "Pizza Box",
        "Mini Tower",
        "Tower",
        "Portable",
        "LapTop",
        "Notebook",
        "Hand Held",
        "Docking Station",
        "All in One",
        "Sub Notebook",
        "Space-saving",
        "Lunch Box",
        "Main Server Chassis",
        "Expansion Chassis",
        "SubChassis",
        "Bus Expansion Chassis",
        "Peripheral Chassis",
        "RAID Chassis",
        "Rack Mount Chassis",
        "Sealed-case PC",
        "Multi-system Chassis",
        "Compact PCI",
        "Advanced TCA",
        "Blade",
        "Blade Enclosure",
        "Tablet",
        "Convertible",
        "Detachable",
        "IoT Gateway",
        "Embedded PC",
        "Mini PC",
        "Stick PC",
    ];
    NAMES
        .get(usize::from(code))
        .map(|s| s.to_string())
        .unwrap_or_else(|| format!("Unknown (0x{code:02X})"))
}

/// Get FRU Inventory Area Info for `device`.
pub async fn area_info(bmc: &mut Bmc, device: u8) -> Result<FruAreaInfo> {
    const GET: &str = "Get FRU Inventory Area Info";
    let data = bmc.call(STORAGE, 0x10, &[device], GET).await?;
    FruAreaInfo::parse(&data).ok_or(IpmiError::Protocol {
        command: GET,
        why: format!("{} bytes, expected 3", data.len()),
    })
}

/// Reads `len` bytes at `offset` with Read FRU Data, in chunks that shrink
/// when the BMC answers "cannot return that many bytes" (0xCA) or "request
/// length invalid" (0xC7/0xC8).
pub async fn read_range(
    bmc: &mut Bmc,
    device: u8,
    info: FruAreaInfo,
    offset: usize,
    len: usize,
) -> Result<Vec<u8>> {
    const READ: &str = "Read FRU Data";
    let end = (offset + len).min(info.size).min(MAX_FRU_BYTES);
    let unit = if info.by_words { 2 } else { 1 };
    let mut chunk = FIRST_CHUNK;
    let mut out = Vec::with_capacity(end.saturating_sub(offset));
    let mut at = offset;
    while at < end {
        let want = (end - at).min(usize::from(chunk));
        let [lo, hi] = u16::try_from(at / unit)
            .map_err(|_| IpmiError::Protocol {
                command: READ,
                why: format!("offset {at} beyond 16 bits"),
            })?
            .to_le_bytes();
        let count = want.div_ceil(unit) as u8;
        match bmc
            .call(STORAGE, 0x11, &[device, lo, hi, count], READ)
            .await
        {
            Ok(data) => {
                let got = usize::from(*data.first().unwrap_or(&0)) * unit;
                let bytes = data.get(1..).unwrap_or(&[]);
                let got = got.min(bytes.len()).min(end - at);
                if got == 0 {
                    return Err(IpmiError::Protocol {
                        command: READ,
                        why: format!("no data returned at offset {at}"),
                    });
                }
                out.extend_from_slice(&bytes[..got]);
                at += got;
            }
            Err(IpmiError::Completion {
                code: 0xCA | 0xC7 | 0xC8,
                ..
            }) if chunk > MIN_CHUNK => {
                chunk = (chunk / 2).max(MIN_CHUNK);
                tracing::debug!(chunk, "Read FRU Data: smaller chunks");
            }
            Err(e) => return Err(e),
        }
    }
    Ok(out)
}

/// The chassis, board and product areas of FRU `device` (0: the BMC's
/// builtin FRU). Only the header and those areas are read.
pub async fn read_inventory(bmc: &mut Bmc, device: u8) -> Result<FruInfo> {
    let info = area_info(bmc, device).await?;
    if info.size < 8 {
        return Ok(FruInfo {
            problems: vec![format!(
                "FRU device {device} is {} bytes: no header",
                info.size
            )],
            ..FruInfo::default()
        });
    }
    let header = read_range(bmc, device, info, 0, 8).await?;
    let offsets = match parse_header(&header) {
        Ok(o) => o,
        Err(why) => {
            return Ok(FruInfo {
                problems: vec![why],
                ..FruInfo::default()
            });
        }
    };
    // A sparse image: the header and each area, zeros elsewhere.
    let size = info.size.min(MAX_FRU_BYTES);
    let mut image = vec![0u8; size];
    image[..8].copy_from_slice(&header);
    for offset in offsets.into_iter().flatten() {
        if offset + 2 > size {
            continue; // parse_fru reports it
        }
        let head = read_range(bmc, device, info, offset, 2).await?;
        let len = usize::from(head.get(1).copied().unwrap_or(0)) * 8;
        let area = read_range(bmc, device, info, offset, len.max(2)).await?;
        image[offset..offset + area.len()].copy_from_slice(&area);
        // Past what the device holds: keep the truncation visible.
        if offset + len > size {
            image.truncate(offset + area.len());
        }
    }
    Ok(parse_fru(&image))
}

#[cfg(test)]
#[path = "fru_tests.rs"]
mod tests;
