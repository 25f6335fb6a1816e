//! Chassis commands: power status and control, boot device, identify
//! (IPMI 2.0 §28).

use serde::Serialize;

use super::error::{IpmiError, Result};
use super::message::netfn::CHASSIS;
use super::rmcp::Bmc;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum PowerAction {
    On,
    Off,
    Cycle,
    /// Hard reset.
    Reset,
    /// ACPI soft off: asks the OS to shut down.
    Soft,
}

impl PowerAction {
    /// Chassis Control data byte.
    fn code(self) -> u8 {
        match self {
            PowerAction::Off => 0,
            PowerAction::On => 1,
            PowerAction::Cycle => 2,
            PowerAction::Reset => 3,
            PowerAction::Soft => 5,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum BootDevice {
    /// Network boot: petitboot fetches its config.
    Pxe,
    /// The default hard disk.
    Disk,
    /// No override: the firmware's own order.
    None,
}

impl BootDevice {
    /// Device selector, bits 5:2 of boot flags byte 2.
    fn selector(self) -> u8 {
        match self {
            BootDevice::None => 0x00,
            BootDevice::Pxe => 0x04,
            BootDevice::Disk => 0x08,
        }
    }
}

/// The boot flags (boot option parameter 5) as the BMC reports them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct BootFlags {
    /// The override is armed. Some BMCs (ipmi_sim) report it clear even when
    /// set, so callers show it rather than trust it.
    pub valid: bool,
    /// Applies to every boot, not just the next one.
    pub persistent: bool,
    /// `None` when the selector is one petitlab does not name (CD, BIOS…).
    pub device: Option<BootDevice>,
    /// The raw selector, bits 5:2 of byte 2.
    pub selector: u8,
}

impl BootFlags {
    pub fn parse(data: &[u8]) -> Option<BootFlags> {
        // Response: parameter version, parameter selector, five flag bytes.
        let flags = data.get(2..4)?;
        let selector = (flags[1] >> 2) & 0x0F;
        Some(BootFlags {
            valid: flags[0] & 0x80 != 0,
            persistent: flags[0] & 0x40 != 0,
            device: match selector {
                0 => Some(BootDevice::None),
                1 => Some(BootDevice::Pxe),
                2 => Some(BootDevice::Disk),
                _ => None,
            },
            selector,
        })
    }

    pub fn label(&self) -> String {
        let device = match self.device {
            Some(BootDevice::Pxe) => "pxe".to_string(),
            Some(BootDevice::Disk) => "disk".to_string(),
            Some(BootDevice::None) => "none".to_string(),
            None => format!("other(0x{:X})", self.selector),
        };
        if self.persistent {
            format!("{device} (persistent)")
        } else {
            device
        }
    }
}

/// Get Chassis Status: is the power on?
pub async fn power_status(bmc: &mut Bmc) -> Result<bool> {
    let data = bmc.call(CHASSIS, 0x01, &[], "Get Chassis Status").await?;
    let first = data.first().ok_or(IpmiError::Protocol {
        command: "Get Chassis Status",
        why: "empty response".into(),
    })?;
    Ok(first & 0x01 != 0)
}

pub async fn power(bmc: &mut Bmc, action: PowerAction) -> Result<()> {
    bmc.call(CHASSIS, 0x02, &[action.code()], "Chassis Control")
        .await
        .map(drop)
}

/// Sets the boot device override the way ipmitool does: set-in-progress,
/// acknowledge boot info, write the flags, commit.
pub async fn set_boot_device(bmc: &mut Bmc, device: BootDevice, persistent: bool) -> Result<()> {
    const SET: &str = "Set System Boot Options";
    // Set-in-progress is optional in the spec; BMCs without it still take
    // parameter 5, so its failure is not fatal.
    let in_progress = bmc.call(CHASSIS, 0x08, &[0x00, 0x01], SET).await.is_ok();
    // Parameter 4, boot info acknowledge: clear the "BIOS/POST handled it"
    // bit so the firmware reads the new flags (ipmitool sends the same).
    let _ = bmc.call(CHASSIS, 0x08, &[0x04, 0x01, 0x01], SET).await;
    let mut byte1 = 0x80;
    if persistent {
        byte1 |= 0x40;
    }
    let result = bmc
        .call(
            CHASSIS,
            0x08,
            &[0x05, byte1, device.selector(), 0, 0, 0],
            SET,
        )
        .await
        .map(drop);
    if in_progress {
        let _ = bmc.call(CHASSIS, 0x08, &[0x00, 0x00], SET).await;
    }
    result
}

/// Get System Boot Options, parameter 5.
pub async fn boot_flags(bmc: &mut Bmc) -> Result<BootFlags> {
    const GET: &str = "Get System Boot Options";
    let data = bmc.call(CHASSIS, 0x09, &[0x05, 0, 0], GET).await?;
    BootFlags::parse(&data).ok_or(IpmiError::Protocol {
        command: GET,
        why: format!("{} bytes of boot flags", data.len()),
    })
}

/// Chassis Identify request data: on forces the light on until told
/// otherwise (interval 0, force 1, as `ipmitool chassis identify force`);
/// off is interval 0 alone (`ipmitool chassis identify 0`).
pub fn identify_request(on: bool) -> &'static [u8] {
    if on { &[0x00, 0x01] } else { &[0x00] }
}

/// How the identify light was set.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum IdentifyMode {
    /// On until turned off (force on).
    Forced,
    /// The BMC refused "force on" (an IPMI 1.5 BMC): on for 255 s instead.
    Timed255s,
    Off,
}

/// Chassis Identify (§28.5). A BMC without "force on" (it rejects the
/// second byte) gets the longest interval, 255 s.
pub async fn identify(bmc: &mut Bmc, on: bool) -> Result<IdentifyMode> {
    const IDENTIFY: &str = "Chassis Identify";
    match bmc
        .call(CHASSIS, 0x04, identify_request(on), IDENTIFY)
        .await
    {
        Ok(_) if on => Ok(IdentifyMode::Forced),
        Ok(_) => Ok(IdentifyMode::Off),
        Err(IpmiError::Completion {
            code: 0xC7 | 0xCC, ..
        }) if on => {
            bmc.call(CHASSIS, 0x04, &[0xFF], IDENTIFY).await?;
            Ok(IdentifyMode::Timed255s)
        }
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn boot_flags_decode_what_bmcs_send() {
        // ipmi_sim after `bootdev pxe`: valid bit clear, PXE selected.
        let f = BootFlags::parse(&[0x01, 0x05, 0x00, 0x04, 0, 0, 0]).unwrap();
        assert_eq!(
            (f.valid, f.persistent, f.device),
            (false, false, Some(BootDevice::Pxe))
        );
        let f = BootFlags::parse(&[0x01, 0x05, 0xC0, 0x08, 0, 0, 0]).unwrap();
        assert_eq!(f.label(), "disk (persistent)");
        let f = BootFlags::parse(&[0x01, 0x05, 0x80, 0x14, 0, 0, 0]).unwrap();
        assert_eq!(f.label(), "other(0x5)");
        assert!(BootFlags::parse(&[1, 5]).is_none());
    }

    #[test]
    fn identify_on_forces_and_off_is_interval_zero() {
        assert_eq!(identify_request(true), [0x00, 0x01]);
        assert_eq!(identify_request(false), [0x00]);
    }
}
