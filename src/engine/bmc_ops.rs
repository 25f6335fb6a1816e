//! One node's answer to `power`, `bootdev` and `sensors`, as JSON the CLI
//! prints and the service sends: shared by the in-process CLI and the lab
//! service, which differ only in whose BMC session asks.

use serde_json::{Value, json};

use crate::hardware::{Bmc, BmcError, BootDevice, PowerAction};

#[derive(
    Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum PowerVerb {
    Status,
    On,
    Off,
    Cycle,
    Reset,
    Soft,
}

fn on_off(on: bool) -> &'static str {
    if on { "on" } else { "off" }
}

/// `{"power", "changed", "summary", …}`; on and off are idempotent.
pub async fn power(bmc: &mut Bmc, verb: PowerVerb) -> Result<Value, BmcError> {
    let action = match verb {
        PowerVerb::Status => {
            let on = bmc.power_status().await?;
            return Ok(json!({"power": on_off(on), "summary": on_off(on)}));
        }
        PowerVerb::On => PowerAction::On,
        PowerVerb::Off => PowerAction::Off,
        PowerVerb::Cycle => PowerAction::Cycle,
        PowerVerb::Reset => PowerAction::Reset,
        PowerVerb::Soft => PowerAction::Soft,
    };
    // On and off are idempotent: asking again changes nothing.
    let target = match action {
        PowerAction::On => Some(true),
        PowerAction::Off => Some(false),
        _ => None,
    };
    // A status read first only where its answer matters: on and off are
    // idempotent and leave a chassis already there alone (one request);
    // cycle, reset and soft are sent whatever the power is.
    if let Some(target) = target
        && bmc.power_status().await? == target
    {
        return Ok(already(target));
    }
    bmc.power(action).await?;
    // What the BMC says after, not what was asked for.
    let after = bmc.power_status().await?;
    let name = serde_json::to_value(action).unwrap_or_default();
    let mut summary = format!(
        "{} sent; power is {}",
        name.as_str().unwrap_or_default(),
        on_off(after)
    );
    if action == PowerAction::Soft && after {
        summary.push_str(" until the OS finishes shutting down");
    }
    Ok(json!({"action": name, "power": on_off(after), "changed": true, "summary": summary}))
}

fn already(on: bool) -> Value {
    let summary = format!("{} (already)", on_off(on));
    json!({"power": on_off(on), "changed": false, "summary": summary})
}

/// Sets the override and reads it back: `{"boot", "summary"}`.
pub async fn bootdev(
    bmc: &mut Bmc,
    device: BootDevice,
    persistent: bool,
) -> Result<Value, BmcError> {
    let set = bmc.set_boot_device(device, persistent).await?;
    let mut summary = format!("boot device {}", set.flags.label());
    if set.once_ignored {
        summary.push_str(" (the BMC keeps it for every boot: it ignored \"once\"; clear it with `bootdev NODE none`)");
    }
    Ok(json!({"boot": set.flags, "once_ignored": set.once_ignored, "summary": summary}))
}

/// `{"sensors": [...], "dcmi_power": …}`.
pub async fn sensors(bmc: &mut Bmc) -> Result<Value, BmcError> {
    let readings = bmc.sensors().await?;
    let power = bmc.power_draw().await?;
    Ok(json!({"sensors": readings, "dcmi_power": power}))
}

/// The admin's toolbox beyond power and boot device: one operation on one
/// BMC, the same through the service and in process.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(tag = "op", rename_all = "kebab-case")]
pub enum Toolbox {
    /// Sensors and the DCMI power reading.
    Sensors,
    /// The event log (SEL), emptied afterwards with `clear`.
    Events { clear: bool },
    /// FRU (or Redfish) board, product and chassis data.
    Inventory,
    /// The BMC's firmware revision and the host firmware it reports.
    Firmware,
    /// The chassis identify light.
    Identify { on: bool },
    /// A BMC cold reset.
    BmcReset,
}

impl Toolbox {
    /// The audit log's name for it; `None` for what only reads.
    pub fn audited_as(self) -> Option<&'static str> {
        match self {
            Toolbox::Sensors | Toolbox::Inventory | Toolbox::Firmware => None,
            Toolbox::Events { clear } => clear.then_some("clear-events"),
            Toolbox::Identify { .. } => Some("identify"),
            Toolbox::BmcReset => Some("bmc-reset"),
        }
    }

    /// `{…, "summary"}`: the operation's answer, and one line saying it.
    pub async fn run(self, bmc: &mut Bmc) -> Result<Value, BmcError> {
        match self {
            Toolbox::Sensors => sensors(bmc).await,
            Toolbox::Events { clear } => {
                let events = bmc.events().await?;
                let n = events.len();
                let mut summary = format!("{n} event{}", if n == 1 { "" } else { "s" });
                if clear {
                    bmc.clear_events().await?;
                    summary.push_str(", then cleared");
                }
                Ok(json!({"events": events, "cleared": clear, "summary": summary}))
            }
            Toolbox::Inventory => {
                let inventory = bmc.inventory().await?;
                let n = inventory.chassis.len() + inventory.board.len() + inventory.product.len();
                let mut summary = format!("{n} inventory fields");
                for problem in &inventory.problems {
                    summary.push_str(&format!("; {problem}"));
                }
                Ok(json!({"inventory": inventory, "summary": summary}))
            }
            Toolbox::Firmware => {
                let firmware = bmc.firmware().await?;
                let summary = format!(
                    "BMC firmware {}, host firmware {}",
                    firmware.bmc.as_deref().unwrap_or("not reported"),
                    firmware.host.as_deref().unwrap_or("not reported")
                );
                Ok(json!({"firmware": firmware, "summary": summary}))
            }
            Toolbox::Identify { on } => {
                let set = bmc.identify(on).await?;
                // IPMI says "off" for off; Redfish names the property it set.
                let summary = match set.how.as_str() {
                    "off" => "identify off".to_string(),
                    how => format!("identify {} ({how})", on_off(on)),
                };
                Ok(json!({"identify": set, "summary": summary}))
            }
            Toolbox::BmcReset => {
                let sent = bmc.bmc_reset().await?;
                let summary = format!("BMC reset: {}", sent.note);
                Ok(json!({"bmc_reset": sent, "summary": summary}))
            }
        }
    }
}
