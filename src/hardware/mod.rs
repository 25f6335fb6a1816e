//! A node's hardware interfaces, chosen per node in lab.toml as Ironic
//! chooses them: the management interface (power, boot device, sensors)
//! speaks IPMI or Redfish; the console interface is IPMI SOL, SSH to
//! obmc-console or bmcweb's websocket ([`crate::console_link`]). The engine,
//! the CLI and the service talk to [`Bmc`], never to a protocol.

pub mod console;
mod ipmi_bmc;
mod redfish_bmc;
pub mod toolbox;

use std::fmt;

use serde::Serialize;

pub use crate::ipmi::chassis::{BootDevice, BootFlags, PowerAction};
pub use crate::ipmi::sensors::{PowerReading, SensorReading};
use crate::ipmi::{self, IpmiError};
use crate::redfish::{self as rf, RedfishError};
pub use toolbox::{BmcResetSent, Direction, Event, Field, Firmware, IdentifySet, Inventory};

/// Where and how to reach a node's management interface.
#[derive(Clone)]
pub enum Target {
    Ipmi(ipmi::Target),
    Redfish(Box<rf::Target>),
}

impl fmt::Debug for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Target::Ipmi(t) => write!(f, "ipmi {}", t.addr),
            Target::Redfish(t) => write!(f, "redfish {}", t.base_url),
        }
    }
}

/// Why a BMC request failed, whichever protocol carried it.
#[derive(Debug, thiserror::Error)]
pub enum BmcError {
    #[error(transparent)]
    Ipmi(#[from] IpmiError),
    #[error(transparent)]
    Redfish(#[from] RedfishError),
}

impl BmcError {
    /// "unreachable", "auth", "tls", … for dashboards and JSON.
    pub fn kind(&self) -> &'static str {
        match self {
            BmcError::Ipmi(e) => e.kind(),
            BmcError::Redfish(e) => e.kind(),
        }
    }
}

/// What setting the boot device did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct BootSet {
    /// The override as the BMC reads it back afterwards.
    pub flags: BootFlags,
    /// A one-shot override the BMC kept for every boot (sushy-tools ignores
    /// "Once"): whoever set it must clear it after the boot it was for.
    pub once_ignored: bool,
}

/// One node's BMC over its management interface.
// One per node, held for a session's life: boxing the larger IPMI variant
// would only add an allocation.
#[allow(clippy::large_enum_variant)]
pub enum Bmc {
    Ipmi(ipmi::Bmc),
    Redfish(Box<redfish_bmc::RedfishBmc>),
}

impl Bmc {
    pub fn new(target: Target) -> Bmc {
        match target {
            Target::Ipmi(t) => Bmc::Ipmi(ipmi::Bmc::new(t)),
            Target::Redfish(t) => Bmc::Redfish(Box::new(redfish_bmc::RedfishBmc::new(*t))),
        }
    }

    /// Whether the chassis is powered on.
    pub async fn power_status(&mut self) -> Result<bool, BmcError> {
        match self {
            Bmc::Ipmi(b) => ipmi_bmc::power_status(b).await,
            Bmc::Redfish(b) => b.power_status().await,
        }
    }

    pub async fn power(&mut self, action: PowerAction) -> Result<(), BmcError> {
        match self {
            Bmc::Ipmi(b) => ipmi_bmc::power(b, action).await,
            Bmc::Redfish(b) => b.power(action).await,
        }
    }

    /// Sets the boot override and reads it back.
    pub async fn set_boot_device(
        &mut self,
        device: BootDevice,
        persistent: bool,
    ) -> Result<BootSet, BmcError> {
        match self {
            Bmc::Ipmi(b) => ipmi_bmc::set_boot_device(b, device, persistent).await,
            Bmc::Redfish(b) => b.set_boot_device(device, persistent).await,
        }
    }

    /// The boot override; `None` for a BMC without one.
    pub async fn boot_flags(&mut self) -> Result<Option<BootFlags>, BmcError> {
        match self {
            Bmc::Ipmi(b) => ipmi_bmc::boot_flags(b).await,
            Bmc::Redfish(b) => b.boot_flags().await,
        }
    }

    pub async fn sensors(&mut self) -> Result<Vec<SensorReading>, BmcError> {
        match self {
            Bmc::Ipmi(b) => ipmi_bmc::sensors(b).await,
            Bmc::Redfish(b) => b.sensors().await,
        }
    }

    /// The chassis' power draw, where the BMC measures it.
    pub async fn power_draw(&mut self) -> Result<Option<PowerReading>, BmcError> {
        match self {
            Bmc::Ipmi(b) => ipmi_bmc::power_draw(b).await,
            Bmc::Redfish(b) => b.power_draw().await,
        }
    }

    /// The event log, oldest first: the SEL (IPMI) or the system's and
    /// managers' event LogServices (Redfish).
    pub async fn events(&mut self) -> Result<Vec<Event>, BmcError> {
        match self {
            Bmc::Ipmi(b) => ipmi_bmc::events(b).await,
            Bmc::Redfish(b) => b.events().await,
        }
    }

    /// Empties the event log (Clear SEL; `LogService.ClearLog`).
    pub async fn clear_events(&mut self) -> Result<(), BmcError> {
        match self {
            Bmc::Ipmi(b) => ipmi_bmc::clear_events(b).await,
            Bmc::Redfish(b) => b.clear_events().await,
        }
    }

    /// Chassis, board and product data: FRU 0 (IPMI), the System and its
    /// Chassis (Redfish).
    pub async fn inventory(&mut self) -> Result<Inventory, BmcError> {
        match self {
            Bmc::Ipmi(b) => ipmi_bmc::inventory(b).await,
            Bmc::Redfish(b) => b.inventory().await,
        }
    }

    /// The BMC's and the host's firmware versions.
    pub async fn firmware(&mut self) -> Result<Firmware, BmcError> {
        match self {
            Bmc::Ipmi(b) => ipmi_bmc::firmware(b).await,
            Bmc::Redfish(b) => b.firmware().await,
        }
    }

    /// Turns the chassis identify light on (until turned off) or off.
    pub async fn identify(&mut self, on: bool) -> Result<IdentifySet, BmcError> {
        match self {
            Bmc::Ipmi(b) => ipmi_bmc::identify(b, on).await,
            Bmc::Redfish(b) => b.identify(on).await,
        }
    }

    /// Restarts the BMC (not the host): IPMI Cold Reset, Redfish
    /// `Manager.Reset`. The session is gone afterwards.
    pub async fn bmc_reset(&mut self) -> Result<BmcResetSent, BmcError> {
        match self {
            Bmc::Ipmi(b) => ipmi_bmc::bmc_reset(b).await,
            Bmc::Redfish(b) => b.bmc_reset().await,
        }
    }

    /// Ends the session (IPMI Close Session, Redfish logout).
    pub async fn close(&mut self) {
        match self {
            Bmc::Ipmi(b) => b.close().await,
            Bmc::Redfish(b) => b.close().await,
        }
    }
}
