//! Single actions an admin takes by hand from the dashboard: power, boot
//! device, prepare-ramdisk. Each holds the node's reservation while it
//! runs (so it never crosses a deploy) and lands in the audit log.

use super::action::reserved;
use super::bmc_steps::{Bmc, device_name};
use super::lab::Engine;
use crate::boot::BootInterface;
use crate::inventory::Node;
use crate::ipmi::chassis::{BootDevice, PowerAction};

fn audit(engine: &Engine, node: &Node, action: &str, result: &Result<String, String>) {
    let (verdict, detail) = match result {
        Ok(done) => ("ok", done.as_str()),
        Err(why) => ("failed", why.as_str()),
    };
    let event = engine.event(&node.name, action, verdict, detail);
    let _ = engine.store().append_event(&event);
}

pub async fn power(engine: &Engine, node: &Node, action: PowerAction) -> Result<String, String> {
    let result = reserved(engine, node, "power", || async {
        let mut bmc = Bmc::connect(&engine.consoles, node, engine.lab.deploy.power_timeout).await?;
        let sent = super::store::now_ms();
        let result = bmc.power(action).await;
        let boots = matches!(
            action,
            PowerAction::On | PowerAction::Cycle | PowerAction::Reset
        );
        if let Ok(done) = &result
            && boots
            && !done.contains("already")
        {
            let how = serde_json::to_value(action).unwrap_or_default();
            engine.boot_begins(&node.name, sent, how.as_str().unwrap_or("on"), None);
        }
        let after = bmc.power_status().await;
        bmc.close().await;
        if let Ok(on) = after {
            let boot = engine.record(&node.name).ok().and_then(|r| r.boot_device);
            engine.note_reading(&node.name, Some(on), boot.as_deref());
        }
        result.map(|done| format!("{}: {done}", node.name))
    })
    .await;
    audit(engine, node, "power", &result);
    result
}

pub async fn boot_device(
    engine: &Engine,
    node: &Node,
    device: BootDevice,
) -> Result<String, String> {
    let result = reserved(engine, node, "boot device", || async {
        let mut bmc = Bmc::connect(&engine.consoles, node, engine.lab.deploy.power_timeout).await?;
        let result = bmc.set_boot_device(device).await;
        bmc.close().await;
        let set = result?;
        let on = engine.record(&node.name).ok().and_then(|r| r.power_on);
        let name = match device {
            BootDevice::Pxe => "pxe",
            BootDevice::Disk => "disk",
            BootDevice::None => "none",
        };
        engine.note_reading(&node.name, on, Some(name));
        let lasts = if set.once_ignored {
            "every boot: the BMC ignored \"once\"; set none to clear it"
        } else {
            "next boot"
        };
        Ok(format!(
            "{}: boot device {} ({lasts})",
            node.name,
            device_name(device)
        ))
    })
    .await;
    audit(engine, node, "boot-device", &result);
    result
}

pub async fn prepare_ramdisk(engine: &Engine, node: &Node) -> Result<String, String> {
    let result = reserved(engine, node, "prepare-ramdisk", || async {
        let changes = engine
            .boot
            .prepare_ramdisk(node)
            .map_err(|e| e.to_string())?;
        Ok(format!(
            "{}: deploy config prepared ({} file(s) written, {} removed)",
            node.name,
            changes.written.len(),
            changes.removed.len()
        ))
    })
    .await;
    audit(engine, node, "prepare-ramdisk", &result);
    result
}
