//! The IPMI management interface: chassis commands, boot options, SDR
//! sensors and DCMI power over an RMCP+ session; the toolbox: SEL, FRU 0,
//! Get Device ID and System Info, Chassis Identify, Cold Reset.

use super::toolbox::{BmcResetSent, Event, Firmware, IdentifySet, Inventory};
use super::{BmcError, BootDevice, BootFlags, BootSet, PowerAction, PowerReading, SensorReading};
use crate::ipmi::chassis::IdentifyMode;
use crate::ipmi::{Bmc, IpmiError, chassis, fru, mc, sel, sensors};

pub async fn power_status(bmc: &mut Bmc) -> Result<bool, BmcError> {
    Ok(chassis::power_status(bmc).await?)
}

pub async fn power(bmc: &mut Bmc, action: PowerAction) -> Result<(), BmcError> {
    Ok(chassis::power(bmc, action).await?)
}

pub async fn set_boot_device(
    bmc: &mut Bmc,
    device: BootDevice,
    persistent: bool,
) -> Result<BootSet, BmcError> {
    chassis::set_boot_device(bmc, device, persistent).await?;
    let flags = match chassis::boot_flags(bmc).await {
        Ok(flags) => flags,
        // A BMC that takes the override but cannot read it back: what was
        // set is all there is to say (the set itself succeeded).
        Err(IpmiError::Completion { .. }) => BootFlags {
            valid: device != BootDevice::None,
            persistent,
            device: Some(device),
            selector: match device {
                BootDevice::None => 0,
                BootDevice::Pxe => 1,
                BootDevice::Disk => 2,
            },
        },
        Err(e) => return Err(e.into()),
    };
    // IPMI BMCs clear a one-shot override themselves (ipmi_sim reports
    // the flags oddly; see `BootFlags::valid`), so none is left behind.
    Ok(BootSet {
        flags,
        once_ignored: false,
    })
}

pub async fn boot_flags(bmc: &mut Bmc) -> Result<Option<BootFlags>, BmcError> {
    match chassis::boot_flags(bmc).await {
        Ok(flags) => Ok(Some(flags)),
        // A BMC without boot options still has a power state.
        Err(IpmiError::Completion { .. }) => Ok(None),
        Err(e) => Err(e.into()),
    }
}

pub async fn sensors(bmc: &mut Bmc) -> Result<Vec<SensorReading>, BmcError> {
    Ok(sensors::read_sensors(bmc).await?)
}

pub async fn power_draw(bmc: &mut Bmc) -> Result<Option<PowerReading>, BmcError> {
    Ok(sensors::dcmi_power(bmc).await?)
}

pub async fn events(bmc: &mut Bmc) -> Result<Vec<Event>, BmcError> {
    let records = sel::sel_entries(bmc).await?;
    Ok(records.iter().map(Event::from_sel).collect())
}

pub async fn clear_events(bmc: &mut Bmc) -> Result<(), BmcError> {
    Ok(sel::clear_sel(bmc).await?)
}

/// FRU device 0, the BMC's builtin one.
pub async fn inventory(bmc: &mut Bmc) -> Result<Inventory, BmcError> {
    Ok(Inventory::from_fru(fru::read_inventory(bmc, 0).await?))
}

pub async fn firmware(bmc: &mut Bmc) -> Result<Firmware, BmcError> {
    let id = mc::device_id(bmc).await?;
    let host = mc::system_firmware_version(bmc).await?;
    Ok(Firmware::from_device_id(&id, host))
}

pub async fn identify(bmc: &mut Bmc, on: bool) -> Result<IdentifySet, BmcError> {
    let how = match chassis::identify(bmc, on).await? {
        IdentifyMode::Forced => "forced on",
        IdentifyMode::Timed255s => "on for 255 s (the BMC has no force-on)",
        IdentifyMode::Off => "off",
    };
    Ok(IdentifySet {
        on,
        how: how.to_string(),
    })
}

pub async fn bmc_reset(bmc: &mut Bmc) -> Result<BmcResetSent, BmcError> {
    let sent = mc::cold_reset(bmc).await?;
    Ok(BmcResetSent {
        answered: sent.answered,
        note: sent.note,
    })
}
