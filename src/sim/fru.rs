//! FRU device 0: the node's inventory (Platform Management FRU Information
//! Storage Definition v1.0): common header, Chassis, Board and Product
//! areas, every field deterministic from the node's name so tests can
//! predict them. Read-only, as Read FRU Data serves it.

/// The most Read FRU Data returns at once (a client asking for more gets
/// this many: the reply says how many it holds).
pub const MAX_READ: usize = 32;
/// Minutes from 1970-01-01 to 1996-01-01, the FRU epoch.
const FRU_EPOCH_MINUTES: u64 = 13_674_240;
/// 2019-01-01T00:00:00Z, the first mfg date handed out.
const FIRST_MFG_UNIX: u64 = 1_546_300_800;
/// Chassis type 17h: Rack Mount Chassis (SMBIOS).
const RACK_MOUNT: u8 = 0x17;
const FRU_FILE_ID: &str = "petitlab-sim";

/// What the node's FRU (and its Redfish System) says it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Inventory {
    pub manufacturer: &'static str,
    /// "P9 Romulus", "P10 Rainier" or "P8 Palmetto", by the name's prefix.
    pub model: &'static str,
    /// Product part / model number (a machine type-model).
    pub part_number: &'static str,
    /// The system's serial: Product Serial and Chassis Serial.
    pub serial_number: String,
    pub board_serial: String,
    pub board_part_number: String,
    /// Board Mfg Date, unix seconds (whole minutes).
    pub mfg_unix: u64,
    /// Product Asset Tag: the node's name.
    pub asset_tag: String,
    pub product_version: &'static str,
}

/// 64-bit FNV-1a: a stable hash that needs no crate.
pub fn fnv1a(text: &str) -> u64 {
    text.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

impl Inventory {
    pub fn for_node(name: &str) -> Inventory {
        let h = fnv1a(name);
        let lower = name.to_ascii_lowercase();
        let (model, part_number) = if lower.starts_with("p10") {
            ("P10 Rainier", "9105-22A")
        } else if lower.starts_with("p8") {
            ("P8 Palmetto", "8335-GTA")
        } else {
            ("P9 Romulus", "9006-22P")
        };
        Inventory {
            manufacturer: "IBM",
            model,
            part_number,
            serial_number: format!("PL{:08X}", (h >> 32) as u32),
            board_serial: format!("YA{:08X}", h as u32),
            board_part_number: format!("01DH{:03}", h % 1000),
            mfg_unix: FIRST_MFG_UNIX + (h % 730) * 86_400,
            asset_tag: name.to_string(),
            product_version: "1.0",
        }
    }

    /// The FRU image: header then Chassis, Board and Product areas.
    pub fn image(&self) -> Vec<u8> {
        let chassis = area(&[RACK_MOUNT], &[self.part_number, &self.serial_number]);
        let minutes = (self.mfg_unix / 60).saturating_sub(FRU_EPOCH_MINUTES) as u32;
        let date = &minutes.to_le_bytes()[..3];
        let board = area(
            &[&[0x00][..], date].concat(),
            &[
                self.manufacturer,
                self.model,
                &self.board_serial,
                &self.board_part_number,
                FRU_FILE_ID,
            ],
        );
        let product = area(
            &[0x00],
            &[
                self.manufacturer,
                self.model,
                self.part_number,
                self.product_version,
                &self.serial_number,
                &self.asset_tag,
                FRU_FILE_ID,
            ],
        );
        let chassis_at = 1;
        let board_at = chassis_at + chassis.len() / 8;
        let product_at = board_at + board.len() / 8;
        let mut header = vec![
            0x01,
            0x00,
            chassis_at as u8,
            board_at as u8,
            product_at as u8,
            0x00,
            0x00,
        ];
        header.push(checksum(&header));
        [header, chassis, board, product].concat()
    }
}

/// One area: version, length, the fixed bytes, type/length-coded ASCII
/// fields, C1h, padding to 8 bytes, checksum. Board and Product areas
/// start their fixed part with the language code; Chassis with its type.
fn area(fixed: &[u8], fields: &[&str]) -> Vec<u8> {
    let mut out = vec![0x01, 0x00];
    out.extend_from_slice(fixed);
    for field in fields {
        let bytes = &field.as_bytes()[..field.len().min(63)];
        out.push(0xC0 | bytes.len() as u8);
        out.extend_from_slice(bytes);
    }
    out.push(0xC1);
    while (out.len() + 1) % 8 != 0 {
        out.push(0);
    }
    out[1] = ((out.len() + 1) / 8) as u8;
    out.push(checksum(&out));
    out
}

/// The zero checksum: the byte that makes the sum 0 mod 256.
fn checksum(bytes: &[u8]) -> u8 {
    bytes
        .iter()
        .fold(0u8, |sum, b| sum.wrapping_add(*b))
        .wrapping_neg()
}

/// Read FRU Data: up to [`MAX_READ`] bytes from `offset`; `None` past the
/// end.
pub fn read(image: &[u8], offset: u16, count: u8) -> Option<&[u8]> {
    let start = usize::from(offset);
    if start >= image.len() {
        return None;
    }
    let end = (start + usize::from(count).min(MAX_READ)).min(image.len());
    Some(&image[start..end])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fields(area: &[u8], skip: usize) -> Vec<String> {
        let mut out = Vec::new();
        let mut at = skip;
        while area[at] != 0xC1 {
            let len = usize::from(area[at] & 0x3F);
            out.push(String::from_utf8(area[at + 1..at + 1 + len].to_vec()).unwrap());
            at += 1 + len;
        }
        out
    }

    #[test]
    fn image_layout_and_checksums() {
        let inv = Inventory::for_node("p9-rack1-01");
        let image = inv.image();
        assert_eq!(image.len() % 8, 0);
        assert_eq!(image[0], 1);
        assert_eq!(image[..8].iter().fold(0u8, |s, b| s.wrapping_add(*b)), 0);
        let mut areas = Vec::new();
        for slot in 2..=4 {
            let at = usize::from(image[slot]) * 8;
            let len = usize::from(image[at + 1]) * 8;
            let area = &image[at..at + len];
            assert_eq!(area[0], 1, "area version");
            assert_eq!(area.iter().fold(0u8, |s, b| s.wrapping_add(*b)), 0);
            areas.push(area);
        }
        assert_eq!(areas[0][2], RACK_MOUNT);
        assert_eq!(
            fields(areas[0], 3),
            [inv.part_number.to_string(), inv.serial_number.clone()]
        );
        let minutes = u32::from_le_bytes([areas[1][3], areas[1][4], areas[1][5], 0]);
        assert_eq!((u64::from(minutes) + FRU_EPOCH_MINUTES) * 60, inv.mfg_unix);
        assert_eq!(
            fields(areas[1], 6),
            [
                "IBM",
                "P9 Romulus",
                &inv.board_serial,
                &inv.board_part_number,
                FRU_FILE_ID
            ]
        );
        assert_eq!(
            fields(areas[2], 3),
            [
                "IBM",
                "P9 Romulus",
                "9006-22P",
                "1.0",
                &inv.serial_number,
                "p9-rack1-01",
                FRU_FILE_ID
            ]
        );
        let last = usize::from(image[4]) * 8 + areas[2].len();
        assert_eq!(last, image.len());
    }

    #[test]
    fn deterministic_per_node() {
        let a = Inventory::for_node("p9-rack1-01");
        assert_eq!(a, Inventory::for_node("p9-rack1-01"));
        let b = Inventory::for_node("p9-rack1-02");
        assert_ne!(a.serial_number, b.serial_number);
        assert_eq!(Inventory::for_node("p10-rack3-01").model, "P10 Rainier");
        assert_eq!(Inventory::for_node("p8-rack2-01").model, "P8 Palmetto");
        assert!(a.serial_number.starts_with("PL") && a.serial_number.len() == 10);
        assert!(a.mfg_unix >= FIRST_MFG_UNIX && a.mfg_unix % 86_400 == 0);
        assert_eq!(fnv1a(""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a("a"), 0xaf63_dc4c_8601_ec8c);
    }

    #[test]
    fn reads_are_bounded() {
        let image = Inventory::for_node("n").image();
        assert_eq!(read(&image, 0, 255).unwrap().len(), MAX_READ);
        assert_eq!(read(&image, 0, 8).unwrap(), &image[..8]);
        let tail = image.len() as u16 - 3;
        assert_eq!(read(&image, tail, 16).unwrap().len(), 3);
        assert!(read(&image, image.len() as u16, 1).is_none());
    }
}
