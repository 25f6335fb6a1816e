//! The CLI through the lab service: when `petitlab serve` runs for this lab
//! (its socket answers), commands ask it instead of opening their own BMC
//! sessions and consoles; `--local` forces the in-process way.

use std::process::ExitCode;

use anyhow::Context;
use petitlab::engine::bmc_ops::PowerVerb;
use petitlab::engine::lab::{Action, EngineEvent};
use petitlab::engine::store::EventRecord;
use petitlab::inventory::Lab;
use petitlab::ipmi::chassis::BootDevice;
use petitlab::service::{Client, ClientError};
use serde_json::{Value, json};

use super::bmc::NodeResults;

/// The lab's service, if one answers on its socket (and `--local` was not given).
pub async fn service(lab: &Lab, local: bool) -> anyhow::Result<Option<Client>> {
    if local {
        return Ok(None);
    }
    let client = Client::connect(&lab.service.socket).await?;
    let Some(client) = client else {
        return Ok(None);
    };
    // The first call says whether we are admitted (and to which lab).
    client.call("hello", json!({})).await.map_err(refused)?;
    Ok(Some(client))
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

pub async fn sensors(client: &Client, node: &str) -> anyhow::Result<Value> {
    Ok(client.call("sensors", json!({"node": node})).await?)
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
    client
        .call("act", json!({"action": action, "nodes": nodes}))
        .await?;
    let events = futures::stream::poll_fn(move |cx| notes.poll_recv(cx)).filter_map(
        |(method, params)| async move {
            (method == "event")
                .then(|| serde_json::from_value::<EngineEvent>(params).ok())
                .flatten()
        },
    );
    let interrupted = "petitlab: stopped watching; the actions go on in the lab service: \
                       `petitlab status` shows them, `petitlab abort NODE` stops one";
    super::lifecycle::report(events, nodes.len(), json, interrupted).await
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
