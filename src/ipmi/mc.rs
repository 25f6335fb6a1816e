//! The management controller itself (IPMI 2.0 §20, §22.14): Get Device ID
//! (the BMC's firmware revision and maker), the host firmware version from
//! Get System Info Parameters, and Cold Reset.

use serde::Serialize;

use super::error::{IpmiError, Result};
use super::message::netfn::APP;
use super::rmcp::Bmc;

/// Get Device ID, as ipmitool's `mc info` shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DeviceId {
    pub device_id: u8,
    pub device_revision: u8,
    /// "2.13": major, then the BCD minor as two digits (ipmitool's
    /// "Firmware Revision").
    pub firmware: String,
    /// "2.0"
    pub ipmi_version: String,
    /// IANA enterprise number (20 bits).
    pub manufacturer_id: u32,
    /// For a few well-known numbers; `None` otherwise.
    pub manufacturer: Option<String>,
    pub product_id: u16,
    pub provides_sdrs: bool,
    /// Bit 7 of the firmware byte: firmware update or self-init in progress.
    pub device_available: bool,
    /// Additional device support bits (SEL device 0x04, FRU 0x08, …).
    pub device_support: u8,
    /// Four optional bytes, vendor-defined.
    pub aux_firmware: Option<[u8; 4]>,
}

impl DeviceId {
    pub fn parse(data: &[u8]) -> Option<DeviceId> {
        let d = data.get(..11)?;
        let manufacturer_id = u32::from_le_bytes([d[6], d[7], d[8] & 0x0F, 0]);
        Some(DeviceId {
            device_id: d[0],
            device_revision: d[1] & 0x0F,
            provides_sdrs: d[1] & 0x80 != 0,
            firmware: format!("{}.{:02x}", d[2] & 0x7F, d[3]),
            device_available: d[2] & 0x80 == 0,
            ipmi_version: format!("{:x}.{:x}", d[4] & 0x0F, d[4] >> 4),
            device_support: d[5],
            manufacturer_id,
            manufacturer: manufacturer_name(manufacturer_id).map(str::to_string),
            product_id: u16::from_le_bytes([d[9], d[10]]),
            aux_firmware: data.get(11..15).map(|a| [a[0], a[1], a[2], a[3]]),
        })
    }
}

/// IANA enterprise numbers petitlab's labs meet (the registry's wording).
pub fn manufacturer_name(id: u32) -> Option<&'static str> {
    Some(match id {
        2 => "IBM",
        11 => "Hewlett-Packard",
        343 => "Intel Corporation",
        674 => "Dell Inc.",
        4753 => "MontaVista Software, Inc.",
        7244 => "Quanta Computer Inc.",
        10876 => "Super Micro Computer Inc.",
        15370 => "GIGA-BYTE TECHNOLOGY CO., LTD",
        19046 => "Lenovo Enterprise Business Group",
        42817 => "IBM Platform Firmware Division",
        49871 => "OpenBMC Project",
        _ => return None,
    })
}

pub async fn device_id(bmc: &mut Bmc) -> Result<DeviceId> {
    const GET: &str = "Get Device ID";
    let data = bmc.call(APP, 0x01, &[], GET).await?;
    DeviceId::parse(&data).ok_or(IpmiError::Protocol {
        command: GET,
        why: format!("{} bytes, expected at least 11", data.len()),
    })
}

/// System Firmware Version (parameter 1) is at most this many sets of 16
/// bytes (a one-byte length, plus the two-byte preamble).
const MAX_SETS: u8 = 17;

/// Assembles parameter 1 from its sets: set 0 starts with the encoding and
/// the string length. Returns `None` until enough sets are in.
pub fn firmware_version_from_sets(sets: &[Vec<u8>]) -> Option<std::result::Result<String, String>> {
    let first = sets.first()?;
    if first.len() < 2 {
        return Some(Err(format!("set 0 is {} bytes", first.len())));
    }
    let encoding = first[0] & 0x0F;
    let len = usize::from(first[1]);
    let mut bytes: Vec<u8> = first[2..].to_vec();
    for s in &sets[1..] {
        bytes.extend_from_slice(s);
    }
    if bytes.len() < len {
        return None;
    }
    bytes.truncate(len);
    let text = match encoding {
        // ASCII+Latin-1
        0 => bytes.iter().map(|&b| char::from(b)).collect(),
        // UTF-8
        1 => String::from_utf8_lossy(&bytes).into_owned(),
        // UCS-2 (little-endian per spec)
        2 => {
            let units: Vec<u16> = bytes
                .chunks_exact(2)
                .map(|c| u16::from_le_bytes([c[0], c[1]]))
                .collect();
            String::from_utf16_lossy(&units)
        }
        other => return Some(Err(format!("string encoding {other} is reserved"))),
    };
    // From the BMC: control characters become visible escapes.
    Some(Ok(crate::text::display_safe(
        text.trim_end_matches(['\0', ' ']),
    )
    .into_owned()))
}

/// The host firmware's version as the BMC knows it (Get System Info
/// Parameters, parameter 1); `None` when the BMC does not keep it (invalid
/// command, parameter not supported, …).
pub async fn system_firmware_version(bmc: &mut Bmc) -> Result<Option<String>> {
    const GET: &str = "Get System Info Parameters";
    let mut sets: Vec<Vec<u8>> = Vec::new();
    for set in 0..MAX_SETS {
        let data = match bmc.call(APP, 0x59, &[0x00, 0x01, set, 0x00], GET).await {
            Ok(d) => d,
            // 0x80: parameter not supported; 0xC1/0xCC/0xD4/0xD5/0xD6: the
            // BMC does not do this here. Only a first set may be missing.
            Err(IpmiError::Completion { code, .. })
                if set == 0
                    && matches!(code, 0x80 | 0xC1 | 0xC9 | 0xCB | 0xCC | 0xD4 | 0xD5 | 0xD6) =>
            {
                return Ok(None);
            }
            Err(e) => return Err(e),
        };
        // Response: parameter revision, set selector, up to 16 data bytes.
        let block = data.get(2..).unwrap_or(&[]);
        if block.is_empty() {
            return Err(IpmiError::Protocol {
                command: GET,
                why: format!("set {set} carried no data"),
            });
        }
        sets.push(block.iter().take(16).copied().collect());
        match firmware_version_from_sets(&sets) {
            None => continue,
            Some(Ok(v)) if v.is_empty() => return Ok(None),
            Some(Ok(v)) => return Ok(Some(v)),
            Some(Err(why)) => return Err(IpmiError::Protocol { command: GET, why }),
        }
    }
    Err(IpmiError::Protocol {
        command: GET,
        why: format!("the version string did not end within {MAX_SETS} sets"),
    })
}

/// What a BMC reset request came to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ResetSent {
    /// The BMC acknowledged before resetting.
    pub answered: bool,
    pub note: String,
}

/// Cold Reset. A BMC may reset before it answers: no answer counts as
/// sent. The session is closed either way; the next call opens a new one.
pub async fn cold_reset(bmc: &mut Bmc) -> Result<ResetSent> {
    // Sent at most once: a BMC that reset and came back quickly must not
    // get a second reset from a retry.
    let result = bmc.call_at_most_once(APP, 0x02, &[], "Cold Reset").await;
    let sent = match result {
        Ok(_) => ResetSent {
            answered: true,
            note: "the BMC acknowledged the cold reset".into(),
        },
        Err(e) if e.is_transient() => ResetSent {
            answered: false,
            note: "sent; the BMC did not answer before resetting".into(),
        },
        Err(e) => return Err(e),
    };
    bmc.close().await;
    Ok(sent)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn device_id_reads_as_ipmitool_mc_info() {
        // ipmi_sim's `mc_add 0x20 0 no-device-sdrs 0x23 9 8 0x9f 0x1291
        // 0xf02`; ipmitool: Firmware Revision 9.08, IPMI Version 2.0,
        // Manufacturer ID 4753, Product ID 3842 (0x0f02).
        let d = DeviceId::parse(&[
            0x00, 0x03, 0x09, 0x08, 0x02, 0x9f, 0x91, 0x12, 0x00, 0x02, 0x0f, 0, 0, 0, 0,
        ])
        .unwrap();
        assert_eq!(d.firmware, "9.08");
        assert_eq!(d.ipmi_version, "2.0");
        assert_eq!(d.manufacturer_id, 4753);
        assert_eq!(d.manufacturer.as_deref(), Some("MontaVista Software, Inc."));
        assert_eq!(d.product_id, 0x0f02);
        assert_eq!(d.device_revision, 3);
        assert!(d.device_available && !d.provides_sdrs);
        assert_eq!(d.aux_firmware, Some([0; 4]));

        // BCD minor: 0x13 is ".13"; the 20-bit manufacturer ID drops the
        // high nibble; no aux bytes.
        let d = DeviceId::parse(&[
            0x20, 0x81, 0x82, 0x13, 0x51, 0, 0xCF, 0xC2, 0xF0, 0x01, 0x00,
        ])
        .unwrap();
        assert_eq!(d.firmware, "2.13");
        assert_eq!(d.ipmi_version, "1.5");
        assert_eq!(d.manufacturer_id, 49871);
        assert_eq!(d.manufacturer.as_deref(), Some("OpenBMC Project"));
        assert!(!d.device_available && d.provides_sdrs);
        assert_eq!(d.aux_firmware, None);

        assert!(DeviceId::parse(&[0; 10]).is_none());
    }

    #[test]
    fn firmware_version_spans_sets() {
        let mut set0 = vec![0x00, 20];
        set0.extend_from_slice(b"open-power-20");
        set0.push(b'2');
        assert_eq!(
            firmware_version_from_sets(std::slice::from_ref(&set0)),
            None
        );
        let sets = vec![set0, b"4.01-x\0\0\0\0\0\0\0\0\0\0".to_vec()];
        assert_eq!(
            firmware_version_from_sets(&sets),
            Some(Ok("open-power-2024.01-x".to_string()))
        );
        assert_eq!(
            firmware_version_from_sets(&[vec![0x01, 3, b'a', 0xC3, 0xA9]]),
            Some(Ok("a\u{e9}".to_string()))
        );
        assert_eq!(
            firmware_version_from_sets(&[vec![0x02, 4, b'h', 0, b'i', 0]]),
            Some(Ok("hi".to_string()))
        );
        assert!(matches!(
            firmware_version_from_sets(&[vec![0x07, 1, b'x']]),
            Some(Err(_))
        ));
        assert!(matches!(
            firmware_version_from_sets(&[vec![0]]),
            Some(Err(_))
        ));
        assert_eq!(firmware_version_from_sets(&[]), None);
    }
}
