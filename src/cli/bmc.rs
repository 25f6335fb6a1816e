//! `petitlab power`, `bootdev` and `sensors`: IPMI actions on many nodes at
//! once, bounded, each node's result reported on its own line.

use std::process::ExitCode;

use anyhow::bail;
use futures::StreamExt;
use petitlab::engine::targets::bmc_target;
use petitlab::inventory::Node;
use petitlab::ipmi::chassis::{self, BootDevice, PowerAction};
use petitlab::ipmi::sensors;
use petitlab::ipmi::{Bmc, IpmiError, Timing};
use serde_json::{Value, json};

use super::out::{self, errln, outln, safe};

/// BMCs talked to at once: enough to sweep a rack in one round trip, few
/// enough not to flood a management network.
const CONCURRENCY: usize = 64;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum PowerVerb {
    Status,
    On,
    Off,
    Cycle,
    Reset,
    Soft,
}

/// Splits `NODE… VERB` (the verb comes last, as in `ipmitool power on`).
pub fn split_verb<V: clap::ValueEnum>(
    args: &[String],
    all: bool,
) -> anyhow::Result<(Vec<String>, V)> {
    let choices: Vec<String> = V::value_variants()
        .iter()
        .filter_map(|v| v.to_possible_value().map(|p| p.get_name().to_string()))
        .collect();
    let choices = choices.join(", ");
    let Some((last, nodes)) = args.split_last() else {
        bail!("give the nodes (or --all) and then one of: {choices}");
    };
    let verb = V::from_str(last, true)
        .map_err(|_| anyhow::anyhow!("{last:?} is not one of: {choices}"))?;
    if all && !nodes.is_empty() {
        bail!("give node names or --all, not both");
    }
    if !all && nodes.is_empty() {
        bail!("no nodes given: name them or use --all");
    }
    Ok((nodes.to_vec(), verb))
}

/// Runs `job` for every node with its BMC, at most CONCURRENCY at a time,
/// and prints one line (or one JSON object) per node in inventory order.
async fn for_each_bmc<F, Fut>(nodes: Vec<&Node>, json: bool, job: F) -> anyhow::Result<ExitCode>
where
    F: Fn(Bmc) -> Fut,
    Fut: Future<Output = (Bmc, Result<Value, IpmiError>)>,
{
    let job = &job;
    let mut results: Vec<(usize, String, Result<Value, String>)> =
        futures::stream::iter(nodes.into_iter().enumerate())
            .map(|(i, node)| async move {
                let result = match bmc_target(node, Timing::default()).await {
                    Ok(target) => {
                        let (mut bmc, result) = job(Bmc::new(target)).await;
                        bmc.close().await;
                        result.map_err(|e| format!("node {}: {e}", node.name))
                    }
                    Err(e) => Err(e.to_string()),
                };
                (i, node.name.clone(), result)
            })
            .buffer_unordered(CONCURRENCY)
            .collect()
            .await;
    results.sort_by_key(|(i, ..)| *i);
    let failed = results.iter().filter(|(_, _, r)| r.is_err()).count();
    if json {
        let report: Vec<Value> = results
            .iter()
            .map(|(_, name, r)| match r {
                Ok(v) => json!({"node": name, "ok": true, "result": v}),
                Err(e) => json!({"node": name, "ok": false, "error": e}),
            })
            .collect();
        out::json_pretty(&report)?;
    } else {
        // A BMC's answers and errors may quote what it sent: escaped whole.
        for (_, name, r) in &results {
            match r {
                Ok(v) => outln!(
                    "{name}: {}",
                    safe(v["summary"].as_str().unwrap_or_default())
                ),
                Err(e) => errln!("petitlab: {}", safe(e)),
            }
        }
    }
    Ok(if failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

fn on_off(on: bool) -> &'static str {
    if on { "on" } else { "off" }
}

pub async fn power(nodes: Vec<&Node>, verb: PowerVerb, json: bool) -> anyhow::Result<ExitCode> {
    for_each_bmc(nodes, json, |mut bmc| async move {
        let result = power_one(&mut bmc, verb).await;
        (bmc, result)
    })
    .await
}

async fn power_one(bmc: &mut Bmc, verb: PowerVerb) -> Result<Value, IpmiError> {
    let before = chassis::power_status(bmc).await?;
    let action = match verb {
        PowerVerb::Status => {
            return Ok(json!({"power": on_off(before), "summary": on_off(before)}));
        }
        // On and off are idempotent: asking again changes nothing.
        PowerVerb::On if before => {
            return Ok(json!({"power": "on", "changed": false, "summary": "on (already)"}));
        }
        PowerVerb::Off if !before => {
            return Ok(json!({"power": "off", "changed": false, "summary": "off (already)"}));
        }
        PowerVerb::On => PowerAction::On,
        PowerVerb::Off => PowerAction::Off,
        PowerVerb::Cycle => PowerAction::Cycle,
        PowerVerb::Reset => PowerAction::Reset,
        PowerVerb::Soft => PowerAction::Soft,
    };
    chassis::power(bmc, action).await?;
    let after = chassis::power_status(bmc).await?;
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

pub async fn bootdev(
    nodes: Vec<&Node>,
    device: BootDevice,
    persistent: bool,
    json: bool,
) -> anyhow::Result<ExitCode> {
    for_each_bmc(nodes, json, |mut bmc| async move {
        let result = async {
            chassis::set_boot_device(&mut bmc, device, persistent).await?;
            let flags = chassis::boot_flags(&mut bmc).await?;
            Ok(json!({"boot": flags, "summary": format!("boot device {}", flags.label())}))
        }
        .await;
        (bmc, result)
    })
    .await
}

pub async fn sensors(node: &Node, json: bool) -> anyhow::Result<ExitCode> {
    let target = bmc_target(node, Timing::default()).await?;
    let mut bmc = Bmc::new(target);
    let result = async {
        let readings = sensors::read_sensors(&mut bmc).await?;
        let power = sensors::dcmi_power(&mut bmc).await?;
        Ok::<_, IpmiError>((readings, power))
    }
    .await;
    bmc.close().await;
    let (readings, power) = result.map_err(|e| anyhow::anyhow!("node {}: {e}", node.name))?;
    if json {
        let report = json!({"node": node.name, "sensors": readings, "dcmi_power": power});
        out::json_pretty(&report)?;
        return Ok(ExitCode::SUCCESS);
    }
    // Sensor names and readings are the BMC's strings.
    let names: Vec<String> = readings
        .iter()
        .map(|r| safe(&r.name).into_owned())
        .collect();
    let width = names.iter().map(|n| n.chars().count()).max().unwrap_or(0);
    for (r, name) in readings.iter().zip(&names) {
        let value = safe(r.reading.as_deref().unwrap_or("unavailable"));
        outln!("{name:width$}  {value}");
    }
    match power {
        Some(p) => outln!(
            "{:width$}  {} W now (min {} W, max {} W, avg {} W)",
            "DCMI power",
            p.current_watts,
            p.minimum_watts,
            p.maximum_watts,
            p.average_watts
        ),
        None => outln!("{:width$}  not offered by this BMC", "DCMI power"),
    }
    Ok(ExitCode::SUCCESS)
}
