//! `petitlab power`, `bootdev` and the toolbox (`sensors`, `events`…): BMC actions on many nodes at
//! once, bounded, each node's result reported on its own line. In process
//! here, or by the lab service (`cli::remote`), printed the same way.

use std::process::ExitCode;

use anyhow::bail;
use futures::StreamExt;
use petitlab::engine::bmc_ops::{self, PowerVerb, Toolbox};
use petitlab::engine::targets::management_target;
use petitlab::hardware::{Bmc, BmcError, BootDevice};
use petitlab::inventory::{Lab, Node};
use serde_json::{Value, json};

use super::out::{self, errln, outln, safe};

/// BMCs talked to at once, as `ipmipower -F 128`: enough to sweep a rack
/// in one round trip, few enough not to flood a management network.
/// Measured against 1000 ipmi_sim BMCs (benches/power_sweep.rs): 128 rather
/// than 64 made `power --all status` no slower and at times faster; the
/// BMCs' CPU is the limit there either way.
const CONCURRENCY: usize = 128;

/// Each node's answer, or why it has none, in the order the nodes were named.
pub type NodeResults = Vec<(String, Result<Value, String>)>;

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

/// Runs `job` for every node with its own BMC session, at most CONCURRENCY
/// at a time.
async fn for_each_bmc<F, Fut>(nodes: Vec<&Node>, job: F) -> NodeResults
where
    F: Fn(Bmc) -> Fut,
    Fut: Future<Output = (Bmc, Result<Value, BmcError>)>,
{
    let job = &job;
    let mut results: Vec<(usize, String, Result<Value, String>)> =
        futures::stream::iter(nodes.into_iter().enumerate())
            .map(|(i, node)| async move {
                let result = match management_target(node).await {
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
    results.into_iter().map(|(_, n, r)| (n, r)).collect()
}

/// `--json`: one `{node, ok, result|error}` per node.
pub fn print_json(results: &NodeResults) -> anyhow::Result<()> {
    let report: Vec<Value> = results
        .iter()
        .map(|(name, r)| match r {
            Ok(v) => json!({"node": name, "ok": true, "result": v}),
            Err(e) => json!({"node": name, "ok": false, "error": e}),
        })
        .collect();
    out::json_pretty(&report)
}

/// Success only when every node answered.
pub fn exit_code(results: &NodeResults) -> ExitCode {
    if results.iter().all(|(_, r)| r.is_ok()) {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

/// One line (or one JSON object) per node; fails if any node failed.
pub fn print_results(results: &NodeResults, json: bool) -> anyhow::Result<ExitCode> {
    if json {
        print_json(results)?;
    } else {
        // A BMC's answers and errors may quote what it sent: escaped whole.
        for (name, r) in results {
            match r {
                Ok(v) => outln!(
                    "{}: {}",
                    safe(name),
                    safe(v["summary"].as_str().unwrap_or_default())
                ),
                Err(e) => errln!("petitlab: {}", safe(e)),
            }
        }
    }
    Ok(exit_code(results))
}

pub async fn power(nodes: Vec<&Node>, verb: PowerVerb) -> NodeResults {
    for_each_bmc(nodes, |mut bmc| async move {
        let result = bmc_ops::power(&mut bmc, verb).await;
        (bmc, result)
    })
    .await
}

/// The boots a local power action began, into the store's timelines (when
/// the lab has a store this user may write: else nothing is recorded).
pub fn record_boots(lab: &Lab, results: &NodeResults, sent: i64) {
    let booted = petitlab::engine::boot_record::booted_by(results);
    if booted.is_empty() {
        return;
    }
    let path = petitlab::engine::lab::Engine::store_path(lab);
    let Ok(store) = petitlab::engine::store::Store::open(&path) else {
        return;
    };
    let store = std::sync::Mutex::new(store);
    for (node, how) in booted {
        let reading = store
            .lock()
            .ok()
            .and_then(|s| s.node(node).ok().flatten())
            .and_then(|r| r.boot_device);
        petitlab::engine::boot_record::start_boot(
            &store,
            lab,
            node,
            sent,
            &how,
            reading.as_deref(),
        );
    }
}

pub async fn bootdev(nodes: Vec<&Node>, device: BootDevice, persistent: bool) -> NodeResults {
    for_each_bmc(nodes, |mut bmc| async move {
        let result = bmc_ops::bootdev(&mut bmc, device, persistent).await;
        (bmc, result)
    })
    .await
}

/// A toolbox operation on every node, each with its own BMC session.
pub async fn toolbox(nodes: Vec<&Node>, op: Toolbox) -> NodeResults {
    for_each_bmc(nodes, |mut bmc| async move {
        let result = op.run(&mut bmc).await;
        (bmc, result)
    })
    .await
}
