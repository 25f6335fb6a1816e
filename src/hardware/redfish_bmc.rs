//! The Redfish management interface: the ComputerSystem's power state and
//! `Reset` action, its boot override, and the chassis' sensors, over one
//! session logged into on first use and out on close.

use super::toolbox::{BmcResetSent, Event, Field, Firmware, IdentifySet, Inventory};
use super::{BmcError, BootDevice, BootFlags, BootSet, PowerAction, PowerReading, SensorReading};
use crate::redfish::{
    self, BootOverride, BootTarget, Client, OverrideEnabled, PowerState, RedfishError, ResetType,
};

pub struct RedfishBmc {
    target: redfish::Target,
    client: Option<Client>,
}

/// What each power action asks for, in order of preference: the first the
/// system allows is sent (a BMC without PowerCycle still restarts).
fn resets_for(action: PowerAction) -> &'static [ResetType] {
    match action {
        PowerAction::On => &[ResetType::On],
        PowerAction::Off => &[ResetType::ForceOff],
        PowerAction::Soft => &[ResetType::GracefulShutdown],
        PowerAction::Cycle => &[ResetType::PowerCycle, ResetType::ForceRestart],
        PowerAction::Reset => &[ResetType::ForceRestart],
    }
}

/// The override as the IPMI-shaped flags the dashboard and store show.
pub fn flags_of(found: &BootOverride) -> BootFlags {
    let device = match (&found.enabled, &found.target) {
        (OverrideEnabled::Disabled, _) | (_, BootTarget::None) => Some(BootDevice::None),
        (_, BootTarget::Pxe) => Some(BootDevice::Pxe),
        (_, BootTarget::Hdd) => Some(BootDevice::Disk),
        (_, BootTarget::Other(_)) => None,
    };
    BootFlags {
        valid: found.enabled != OverrideEnabled::Disabled,
        persistent: found.enabled == OverrideEnabled::Continuous,
        device,
        selector: match device {
            Some(BootDevice::None) => 0,
            Some(BootDevice::Pxe) => 1,
            Some(BootDevice::Disk) => 2,
            None => 0x0F,
        },
    }
}

/// What to PATCH for a boot device: `None` turns the override off.
fn wanted(device: BootDevice, persistent: bool) -> (BootTarget, OverrideEnabled) {
    let enabled = if persistent {
        OverrideEnabled::Continuous
    } else {
        OverrideEnabled::Once
    };
    match device {
        BootDevice::None => (BootTarget::None, OverrideEnabled::Disabled),
        BootDevice::Pxe => (BootTarget::Pxe, enabled),
        BootDevice::Disk => (BootTarget::Hdd, enabled),
    }
}

/// A one-shot override the BMC turned into a lasting one (sushy-tools).
fn once_ignored(asked: &(BootTarget, OverrideEnabled), found: &BootOverride) -> bool {
    asked.1 == OverrideEnabled::Once
        && found.target == asked.0
        && found.enabled == OverrideEnabled::Continuous
}

/// Runs `$call` on a logged-in client (`$c`). A session the BMC has
/// dropped (401 on a session that worked before) is logged into again,
/// once. A macro, not a closure-taking method: async closures borrowing the
/// client make the engine's futures fail to be `Send`.
macro_rules! with_client {
    ($bmc:expr, |$c:ident| $call:expr) => {{
        let reused = $bmc.client.is_some();
        let result = {
            let $c = $bmc.client().await?;
            $call.await
        };
        match result {
            Err(RedfishError::Unauthorized { .. }) if reused => {
                $bmc.client = None;
                let $c = $bmc.client().await?;
                $call.await
            }
            other => other,
        }
    }};
}

impl RedfishBmc {
    pub fn new(target: redfish::Target) -> RedfishBmc {
        RedfishBmc {
            target,
            client: None,
        }
    }

    /// A logged-in client: the session of an earlier call, else a new one.
    async fn client(&mut self) -> Result<&mut Client, RedfishError> {
        if self.client.is_none() {
            self.client = Some(Client::connect(&self.target).await?);
        }
        Ok(self.client.as_mut().expect("just logged in"))
    }

    pub async fn power_status(&mut self) -> Result<bool, BmcError> {
        match with_client!(self, |c| c.power_state())? {
            PowerState::On | PowerState::PoweringOff => Ok(true),
            PowerState::Off | PowerState::PoweringOn => Ok(false),
            PowerState::Unknown(state) => Err(BmcError::Redfish(RedfishError::Protocol(format!(
                "the system's PowerState is {state:?}, not On or Off"
            )))),
        }
    }

    pub async fn power(&mut self, action: PowerAction) -> Result<(), BmcError> {
        let preferred = resets_for(action);
        with_client!(self, |c| c.reset(preferred))?;
        Ok(())
    }

    pub async fn set_boot_device(
        &mut self,
        device: BootDevice,
        persistent: bool,
    ) -> Result<BootSet, BmcError> {
        let asked = wanted(device, persistent);
        let found = with_client!(self, |c| c.set_boot_override(asked.0.clone(), asked.1))?;
        Ok(BootSet {
            flags: flags_of(&found),
            once_ignored: once_ignored(&asked, &found),
        })
    }

    pub async fn boot_flags(&mut self) -> Result<Option<BootFlags>, BmcError> {
        let found = with_client!(self, |c| c.boot_override())?;
        Ok(Some(flags_of(&found)))
    }

    pub async fn sensors(&mut self) -> Result<Vec<SensorReading>, BmcError> {
        let sensors = with_client!(self, |c| c.sensors())?;
        Ok(sensors
            .into_iter()
            .enumerate()
            .map(|(i, s)| SensorReading {
                name: s.name,
                number: u8::try_from(i).unwrap_or(u8::MAX),
                reading: s.reading.map(|v| format!("{v:.2} {}", s.units)),
                raw: None,
            })
            .collect())
    }

    pub async fn power_draw(&mut self) -> Result<Option<PowerReading>, BmcError> {
        let watts = with_client!(self, |c| c.power_watts())?;
        Ok(watts.map(|w| {
            let w = w.round().clamp(0.0, f64::from(u16::MAX)) as u16;
            PowerReading {
                current_watts: w,
                minimum_watts: w,
                maximum_watts: w,
                average_watts: w,
            }
        }))
    }

    pub async fn events(&mut self) -> Result<Vec<Event>, BmcError> {
        let entries = with_client!(self, |c| c.event_log())?;
        Ok(entries
            .into_iter()
            .map(|e| Event {
                id: e.id,
                record_id: None,
                time: e.created,
                pre_init_seconds: None,
                sensor_type: None,
                sensor_number: None,
                direction: None,
                severity: e.severity,
                message: e.message,
            })
            .collect())
    }

    pub async fn clear_events(&mut self) -> Result<(), BmcError> {
        with_client!(self, |c| c.clear_event_log())?;
        Ok(())
    }

    pub async fn inventory(&mut self) -> Result<Inventory, BmcError> {
        let (product, chassis) = with_client!(self, |c| c.inventory())?;
        let fields = |v: Vec<(String, String)>| {
            v.into_iter()
                .map(|(name, value)| Field { name, value })
                .collect()
        };
        Ok(Inventory {
            chassis: fields(chassis),
            board: Vec::new(),
            product: fields(product),
            problems: Vec::new(),
        })
    }

    pub async fn firmware(&mut self) -> Result<Firmware, BmcError> {
        let v = with_client!(self, |c| c.firmware())?;
        Ok(Firmware {
            bmc: v.bmc,
            host: v.host,
            manufacturer_id: None,
            manufacturer: v.manufacturer,
            product_id: None,
            ipmi_version: None,
            model: v.model,
        })
    }

    pub async fn identify(&mut self, on: bool) -> Result<IdentifySet, BmcError> {
        let how = with_client!(self, |c| c.set_identify(on))?;
        Ok(IdentifySet { on, how })
    }

    /// `Manager.Reset`; the session is dropped (the BMC forgets it).
    pub async fn bmc_reset(&mut self) -> Result<BmcResetSent, BmcError> {
        let sent = with_client!(self, |c| c.manager_reset())?;
        self.client = None;
        Ok(BmcResetSent {
            answered: true,
            note: format!("Manager.Reset {} accepted", sent.as_str()),
        })
    }

    /// Logs out (bounded; a BMC that does not answer keeps the session
    /// until it times it out).
    pub async fn close(&mut self) {
        if let Some(client) = self.client.take() {
            client.logout().await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_kept_once_is_told_apart_from_a_cleared_or_honoured_one() {
        let asked = wanted(BootDevice::Pxe, false);
        let kept = BootOverride {
            target: BootTarget::Pxe,
            enabled: OverrideEnabled::Continuous,
        };
        let honoured = BootOverride {
            target: BootTarget::Pxe,
            enabled: OverrideEnabled::Once,
        };
        assert!(once_ignored(&asked, &kept));
        assert!(!once_ignored(&asked, &honoured));
        // Asking for a lasting override and getting one is no surprise.
        assert!(!once_ignored(&wanted(BootDevice::Pxe, true), &kept));
    }

    #[test]
    fn overrides_read_as_the_flags_petitlab_shows() {
        let flags = flags_of(&BootOverride {
            target: BootTarget::Pxe,
            enabled: OverrideEnabled::Once,
        });
        assert_eq!((flags.label(), flags.valid), ("pxe".to_string(), true));
        let flags = flags_of(&BootOverride {
            target: BootTarget::Hdd,
            enabled: OverrideEnabled::Continuous,
        });
        assert_eq!(flags.label(), "disk (persistent)");
        let flags = flags_of(&BootOverride {
            target: BootTarget::Pxe,
            enabled: OverrideEnabled::Disabled,
        });
        assert_eq!((flags.label(), flags.valid), ("none".to_string(), false));
        let flags = flags_of(&BootOverride {
            target: BootTarget::Other("Cd".into()),
            enabled: OverrideEnabled::Once,
        });
        assert_eq!(flags.label(), "other(0xF)");
    }

    #[test]
    fn none_turns_the_override_off_and_cycle_falls_back_to_a_restart() {
        assert_eq!(
            wanted(BootDevice::None, false),
            (BootTarget::None, OverrideEnabled::Disabled)
        );
        assert_eq!(
            resets_for(PowerAction::Cycle),
            &[ResetType::PowerCycle, ResetType::ForceRestart]
        );
    }
}
