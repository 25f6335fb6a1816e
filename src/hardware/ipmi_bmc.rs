//! The IPMI management interface: chassis commands, boot options, SDR
//! sensors and DCMI power over an RMCP+ session.

use super::{BmcError, BootDevice, BootFlags, BootSet, PowerAction, PowerReading, SensorReading};
use crate::ipmi::{Bmc, IpmiError, chassis, sensors};

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
