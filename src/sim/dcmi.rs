//! DCMI (NetFn group extension 0x2C, group 0xDC): capabilities discovery and
//! the power reading `ipmitool dcmi power reading` shows.

use std::time::{SystemTime, UNIX_EPOCH};

pub const GROUP: u8 = 0xDC;
pub const GET_CAPABILITIES: u8 = 0x01;
pub const GET_POWER_READING: u8 = 0x02;

/// Completion code for a parameter this BMC does not have.
const INVALID_DATA: u8 = 0xCC;

/// Get DCMI Capabilities Info: DCMI 1.5, parameter revision 2.
pub fn capabilities(parameter: u8) -> Result<Vec<u8>, u8> {
    let data: &[u8] = match parameter {
        // Supported capabilities: reserved, power management, access through
        // the primary LAN channel only.
        1 => &[0x00, 0x01, 0x08],
        // Mandatory platform attributes: no SEL, no identification or
        // temperature sampling attributes.
        2 => &[0x00, 0x00, 0x00, 0x00, 0x00],
        // Optional platform attributes: power management controller at the
        // BMC's own address (0x20), channel 0.
        3 => &[0x20, 0x00],
        // Manageability access attributes: primary LAN is channel 1; no
        // secondary LAN or serial channel.
        4 => &[0x01, 0xFF, 0xFF],
        // Enhanced power statistics: no rolling-average periods.
        5 => &[0x00],
        _ => return Err(INVALID_DATA),
    };
    let mut out = vec![GROUP, 0x01, 0x05, 0x02];
    out.extend_from_slice(data);
    Ok(out)
}

/// Get Power Reading in "system power statistics" mode: current, min, max and
/// average watts over a one-second sample, timestamped now, active.
pub fn power_reading(watts: u16) -> Vec<u8> {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as u32);
    let mut out = vec![GROUP];
    for w in [
        watts,
        watts.saturating_sub(4),
        watts.saturating_add(4),
        watts,
    ] {
        out.extend_from_slice(&w.to_le_bytes());
    }
    out.extend_from_slice(&now.to_le_bytes());
    out.extend_from_slice(&1000u32.to_le_bytes()); // sampling period, ms
    out.push(0x40); // power measurement active
    out
}
