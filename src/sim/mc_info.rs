//! Who the BMC says it is: Get Device ID (IPMI 2.0 section 20.1) and Get
//! System Info Parameters (section 22.14a) with the host firmware's
//! version, plus the version strings the Redfish side shows.

/// The BMC firmware as Get Device ID reports it: 2.10 (BCD minor).
pub const BMC_FIRMWARE: (u8, u8) = (2, 0x10);
/// The same version as bmcweb's Manager.FirmwareVersion shows it.
pub const BMC_FIRMWARE_VERSION: &str = "2.10.0-petitlab-sim";
/// The simulated host firmware (hostboot + skiboot + petitboot) version:
/// System Info parameter 1 and Redfish's BiosVersion.
pub const HOST_FIRMWARE_VERSION: &str = "open-power-petitlab-v2.7-sim";
/// IANA enterprise number 2 (IBM), 3 bytes LS first.
pub const MANUFACTURER_ID: u32 = 2;
pub const PRODUCT_ID: u16 = 0x0001;
/// Auxiliary firmware revision bytes: the build (1) of 2.10.
pub const AUX_REVISION: [u8; 4] = [0x01, 0x00, 0x00, 0x00];

/// Additional device support: chassis device (bit 7), FRU inventory (3),
/// SEL (2), SDR repository (1), sensor device (0).
const DEVICE_SUPPORT: u8 = 0x8F;
/// System Info parameters' revision.
const PARAMETER_REVISION: u8 = 0x11;
pub const SYSTEM_FIRMWARE_VERSION: u8 = 1;
pub const SYSTEM_NAME: u8 = 2;

/// Get Device ID's reply: device 20h rev 1 (no device SDRs), firmware
/// [`BMC_FIRMWARE`] in normal operation, IPMI 2.0.
pub fn device_id() -> Vec<u8> {
    let mut out = vec![
        0x20,
        0x01,
        BMC_FIRMWARE.0,
        BMC_FIRMWARE.1,
        0x02,
        DEVICE_SUPPORT,
    ];
    out.extend_from_slice(&MANUFACTURER_ID.to_le_bytes()[..3]);
    out.extend_from_slice(&PRODUCT_ID.to_le_bytes());
    out.extend_from_slice(&AUX_REVISION);
    out
}

/// Why a parameter read failed: not supported (80h), or a block past the
/// string's end (C9h).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ParamError {
    Unsupported,
    OutOfRange,
}

/// Get System Info Parameters: `revision_only` (bit 7 of the request's
/// first byte) answers just the revision; strings are read in sets of 16
/// bytes, set 0 holding the encoding (ASCII), the length and the first
/// 14 bytes.
pub fn system_info(
    revision_only: bool,
    parameter: u8,
    set: u8,
    node: &str,
) -> Result<Vec<u8>, ParamError> {
    if revision_only {
        return Ok(vec![PARAMETER_REVISION]);
    }
    let text = match parameter {
        SYSTEM_FIRMWARE_VERSION => HOST_FIRMWARE_VERSION,
        SYSTEM_NAME => node,
        _ => return Err(ParamError::Unsupported),
    };
    // At most 255 bytes, as the length byte allows.
    let text = &text.as_bytes()[..text.len().min(255)];
    let mut stream = vec![0x00, text.len() as u8];
    stream.extend_from_slice(text);
    let start = usize::from(set) * 16;
    if start >= stream.len() {
        return Err(ParamError::OutOfRange);
    }
    let mut block = stream[start..(start + 16).min(stream.len())].to_vec();
    block.resize(16, 0);
    Ok([&[PARAMETER_REVISION, set][..], &block].concat())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn device_id_bytes() {
        assert_eq!(
            device_id(),
            [
                0x20, 0x01, 0x02, 0x10, 0x02, 0x8F, 0x02, 0, 0, 0x01, 0x00, 1, 0, 0, 0
            ]
        );
    }

    #[test]
    fn firmware_version_in_sets_of_16() {
        let set0 = system_info(false, 1, 0, "n").unwrap();
        assert_eq!(
            &set0[..4],
            &[0x11, 0, 0x00, HOST_FIRMWARE_VERSION.len() as u8]
        );
        assert_eq!(&set0[4..], &HOST_FIRMWARE_VERSION.as_bytes()[..14]);
        let set1 = system_info(false, 1, 1, "n").unwrap();
        assert_eq!(set1.len(), 18);
        assert_eq!(&set1[2..16], &HOST_FIRMWARE_VERSION.as_bytes()[14..28]);
        let mut whole = set0[4..].to_vec();
        whole.extend_from_slice(&set1[2..]);
        let len = usize::from(set0[3]);
        assert_eq!(&whole[..len], HOST_FIRMWARE_VERSION.as_bytes());
        assert_eq!(system_info(false, 1, 2, "n"), Err(ParamError::OutOfRange));
        assert_eq!(system_info(true, 9, 0, "n").unwrap(), [0x11]);
        assert_eq!(system_info(false, 9, 0, "n"), Err(ParamError::Unsupported));
        assert_eq!(&system_info(false, 2, 0, "node7").unwrap()[4..9], b"node7");
    }
}
