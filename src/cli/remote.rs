//! The CLI through the lab service: when `petitlab serve` runs for this lab
//! (its socket answers), commands ask it instead of opening their own BMC
//! sessions and consoles; `--local` forces the in-process way.

use std::process::ExitCode;

use anyhow::Context;
use petitlab::engine::bmc_ops::{PowerVerb, Toolbox};
use petitlab::engine::lab::{Action, EngineEvent};
use petitlab::engine::store::EventRecord;
use petitlab::inventory::Lab;
use petitlab::ipmi::chassis::BootDevice;
use petitlab::service::{Client, ClientError};
use serde_json::{Value, json};

use super::bmc::NodeResults;

/// The lab's service, if one answers on its socket (and `--local` was not
/// given), with the nodes it serves. A service for another lab.toml on the
/// same socket (two files sharing a state dir) is an error, not a fallback.
pub async fn service(lab: &Lab, local: bool) -> anyhow::Result<Option<(Client, Vec<String>)>> {
    service_at(&lab.service.socket, &lab.path, local).await
}

pub async fn service_at(
    socket: &std::path::Path,
    lab_path: &std::path::Path,
    local: bool,
) -> anyhow::Result<Option<(Client, Vec<String>)>> {
    if local {
        return Ok(None);
    }
    let Some(client) = Client::connect(socket).await? else {
        return Ok(None);
    };
    // The first call says whether we are admitted, and to which lab.
    let hello = client.call("hello", json!({})).await.map_err(refused)?;
    let theirs = std::path::PathBuf::from(hello["lab"].as_str().unwrap_or_default());
    let same = |p: &std::path::Path| std::fs::canonicalize(p).unwrap_or_else(|_| p.to_path_buf());
    if same(&theirs) != same(lab_path) {
        anyhow::bail!(
            "the lab service on {} serves {}, not {}: they share a state dir; give this lab its \
             own state_dir, or use --local",
            socket.display(),
            theirs.display(),
            lab_path.display()
        );
    }
    let nodes = hello["nodes"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|n| n.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default();
    Ok(Some((client, nodes)))
}

fn refused(e: ClientError) -> anyhow::Error {
    anyhow::anyhow!("the lab service refused: {e}")
}

pub async fn status(client: &Client, nodes: &[String], json: bool) -> anyhow::Result<ExitCode> {
    let rows = client.call("status", json!({"nodes": nodes})).await?;
    super::lifecycle::print_status(&rows, json)
}

pub async fn history(
    client: &Client,
    node: Option<&str>,
    limit: usize,
    json: bool,
) -> anyhow::Result<ExitCode> {
    let events = client
        .call("history", json!({"node": node, "limit": limit}))
        .await?;
    let events: Vec<EventRecord> = serde_json::from_value(events)?;
    super::lifecycle::print_history(&events, json)
}

fn node_results(rows: Value) -> NodeResults {
    rows.as_array()
        .cloned()
        .unwrap_or_default()
        .into_iter()
        .map(|row| {
            let node = row["node"].as_str().unwrap_or_default().to_string();
            let result = match row["ok"].as_bool() {
                Some(true) => Ok(row["result"].clone()),
                _ => Err(row["error"].as_str().unwrap_or("failed").to_string()),
            };
            (node, result)
        })
        .collect()
}

pub async fn power(
    client: &Client,
    nodes: Vec<String>,
    verb: PowerVerb,
) -> anyhow::Result<NodeResults> {
    let rows = client
        .call("power", json!({"nodes": nodes, "verb": verb}))
        .await?;
    Ok(node_results(rows))
}

pub async fn bootdev(
    client: &Client,
    nodes: Vec<String>,
    device: BootDevice,
    persistent: bool,
) -> anyhow::Result<NodeResults> {
    let params = json!({"nodes": nodes, "device": device, "persistent": persistent});
    Ok(node_results(client.call("bootdev", params).await?))
}

/// A toolbox operation (sensors, events, inventory…) on every node, by
/// the service's BMC sessions.
pub async fn toolbox(
    client: &Client,
    nodes: Vec<String>,
    op: Toolbox,
) -> anyhow::Result<NodeResults> {
    Ok(node_results(
        client
            .call("toolbox", json!({"nodes": nodes, "op": op}))
            .await?,
    ))
}

/// Deploy, undeploy or abort by the service: the actions run there, so
/// this process going away (Ctrl-C, a closed terminal) stops nothing.
pub async fn lifecycle(
    client: &Client,
    action: Action,
    nodes: Vec<String>,
    json: bool,
) -> anyhow::Result<ExitCode> {
    let nodes = super::lifecycle::dedup(nodes);
    let mut notes = client.notifications().context("notifications taken")?;
    client.call("subscribe", json!({"nodes": nodes})).await?;
    let acted = client
        .call("act", json!({"action": action, "nodes": nodes}))
        .await?;
    for node in acted["watching"].as_array().into_iter().flatten() {
        if !json && let Some(node) = node.as_str() {
            super::out::outln!(
                "{node}: {} already under way in the lab service; watching it",
                action.name()
            );
        }
    }
    let events = futures::stream::poll_fn(move |cx| notes.poll_recv(cx)).filter_map(
        |(method, params)| async move {
            (method == "event")
                .then(|| serde_json::from_value::<EngineEvent>(params).ok())
                .flatten()
        },
    );
    let interrupted = "petitlab: stopped watching; the actions go on in the lab service: \
                       `petitlab status` shows them, `petitlab abort NODE` stops one";
    super::lifecycle::report(events, action, nodes.len(), json, interrupted).await
}

use futures::StreamExt;

pub async fn reload(client: &Client, json: bool) -> anyhow::Result<ExitCode> {
    let report = client.call("reload", json!({})).await?;
    if json {
        super::out::json_pretty(&report)?;
    } else {
        for key in ["added", "removed", "changed"] {
            let names: Vec<&str> = report[key]
                .as_array()
                .map(|a| a.iter().filter_map(Value::as_str).collect())
                .unwrap_or_default();
            let list = if names.is_empty() {
                "none".to_string()
            } else {
                names.join(", ")
            };
            super::out::outln!("{key}: {}", super::out::safe(&list));
        }
    }
    Ok(ExitCode::SUCCESS)
}
