//! `petitlab deploy|undeploy|abort NODE…`, `status [NODE…]`, `history [NODE]`:
//! the provisioning lifecycle from the command line, through the same
//! engine handle the TUI uses.

use std::collections::HashMap;
use std::process::ExitCode;
use std::sync::Arc;

use petitlab::engine::lab::{Action, Command, Engine, EngineEvent, LabHandle};
use petitlab::engine::lifecycle::Step;
use petitlab::engine::report;
use petitlab::engine::store::{EventRecord, NodeRecord, Reservation, Store, format_utc as utc};
use petitlab::inventory::Lab;

use super::out::{self, errln, outln, safe};

/// Runs `action` on every node at once, in this process, and reports as it goes.
pub async fn run(
    lab: Lab,
    action: Action,
    nodes: Vec<String>,
    json: bool,
) -> anyhow::Result<ExitCode> {
    let nodes = dedup(nodes);
    for name in &nodes {
        if lab.node(name).is_none() {
            anyhow::bail!("no node named {name:?} in {}", lab.path.display());
        }
    }
    let (engine, mut events) = Engine::open(Arc::new(lab))?;
    let handle = LabHandle::new(engine);
    for node in &nodes {
        handle.send(Command {
            action,
            node: node.clone(),
        });
    }
    let events = futures::stream::poll_fn(move |cx| events.poll_recv(cx));
    let interrupted = "petitlab: interrupted; the nodes stay where they are: `petitlab deploy NODE` \
                       resumes a deploy that waits on its node, `petitlab abort NODE` stops it, \
                       `petitlab status` shows them";
    report(events, action, nodes.len(), json, interrupted).await
}

/// A node named twice gets one action, not a second that finds it busy.
pub fn dedup(mut nodes: Vec<String>) -> Vec<String> {
    let mut named = std::collections::HashSet::new();
    nodes.retain(|n| named.insert(n.clone()));
    nodes
}

/// Prints the actions' events until `pending` of them (`action` on each
/// node) finished (or Ctrl-C, which prints `interrupted`); fails if any
/// action failed. Another action's end (an abort someone else sent) is
/// shown, not counted.
pub async fn report(
    events: impl futures::Stream<Item = EngineEvent>,
    action: Action,
    mut pending: usize,
    json: bool,
    interrupted: &str,
) -> anyhow::Result<ExitCode> {
    use futures::StreamExt;
    let mut events = std::pin::pin!(events);
    let mut failed = 0;
    let mut shown: HashMap<String, (Step, u32)> = HashMap::new();
    let stop = super::wait_for_stop();
    tokio::pin!(stop);
    while pending > 0 {
        let event = tokio::select! {
            event = events.next() => event,
            _ = &mut stop => {
                errln!("{interrupted}");
                return Ok(ExitCode::from(130));
            }
        };
        let Some(event) = event else {
            anyhow::bail!(
                "the lab service went away before the actions ended; `petitlab status` shows where they are"
            )
        };
        // Stdout may be closed (`| head -1`): the events are dropped and
        // the deploy goes on to its end, its exit status saying how it went.
        if json {
            out::json_line(&event)?;
        }
        match &event {
            EngineEvent::Finished {
                ok, action: ended, ..
            } if *ended == action => {
                pending -= 1;
                if !ok {
                    failed += 1;
                }
            }
            EngineEvent::Progress {
                node,
                step,
                fraction: Some(f),
                ..
            } if *f < 1.0 => {
                // Write progress every 10%, not every report.
                let tenth = (f * 10.0) as u32;
                if shown.get(node) == Some(&(*step, tenth)) {
                    continue;
                }
                shown.insert(node.clone(), (*step, tenth));
            }
            _ => {}
        }
        if !json && let Some(line) = describe(&event) {
            outln!("{line}");
        }
    }
    Ok(if failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// The event as a line for a person; `None` for readings and console
/// traffic, which are the dashboard's (the steps report what matters of them).
fn describe(event: &EngineEvent) -> Option<String> {
    Some(match event {
        EngineEvent::State {
            node,
            state,
            step,
            reason,
        } => {
            let mut out = format!("{node}: {state}");
            // A failure's reason starts with its step: not twice.
            let named = |s: &Step| {
                reason
                    .as_ref()
                    .is_some_and(|r| r.starts_with(&format!("{s}: ")))
            };
            if let Some(step) = step.as_ref().filter(|s| !named(s)) {
                out.push_str(&format!(" › {step}"));
            }
            if let Some(reason) = reason {
                out.push_str(&format!(": {}", safe(reason)));
            }
            out
        }
        EngineEvent::Progress {
            node,
            step,
            message,
            fraction,
        } => match fraction {
            Some(f) => format!("{node}: {step} {:.0}%: {}", f * 100.0, safe(message)),
            None => format!("{node}: {step}: {}", safe(message)),
        },
        EngineEvent::Finished {
            node,
            action,
            ok,
            message,
            ..
        } => {
            let verdict = if *ok { "done" } else { "FAILED" };
            format!("{node}: {} {verdict}: {}", action.name(), safe(message))
        }
        _ => return None,
    })
}

pub(crate) fn open_store(lab: &Lab) -> anyhow::Result<Store> {
    // Opening through the engine enrolls new nodes and recovers dead actions,
    // so status shows the truth rather than a dead process's last word.
    let path = Engine::store_path(lab);
    match Engine::open(Arc::new(lab.clone())) {
        Ok((engine, _events)) => {
            drop(engine);
            Ok(Store::open(&path)?)
        }
        // A store that cannot be written (a read-only mount, a full disk)
        // can still be read: shown as it is, saying why.
        Err(writable) => match Store::open_read_only(&path) {
            Ok(store) => {
                errln!(
                    "warning: {writable}; showing the store read-only, as it is (new nodes \
                     are not enrolled, interrupted actions not recovered)"
                );
                Ok(store)
            }
            Err(_) => Err(writable.into()),
        },
    }
}

pub fn status(lab: &Lab, nodes: &[String], json: bool) -> anyhow::Result<ExitCode> {
    for name in nodes {
        if lab.node(name).is_none() {
            anyhow::bail!("no node named {name:?} in {}", lab.path.display());
        }
    }
    let store = open_store(lab)?;
    let rows = report::status_rows_of(&store, lab, nodes)?;
    print_status(&rows, json)
}

/// `status` from its rows (see `engine::report`), in process or from the service.
pub fn print_status(rows: &serde_json::Value, json: bool) -> anyhow::Result<ExitCode> {
    if json {
        out::json_pretty(rows)?;
        return Ok(ExitCode::SUCCESS);
    }
    let rows = rows.as_array().cloned().unwrap_or_default();
    let width = rows
        .iter()
        .map(|r| r["node"]["name"].as_str().unwrap_or_default().len())
        .max()
        .unwrap_or(4)
        .max(4);
    outln!(
        "{:width$}  {:13}  {:16}  {:23}  DETAIL",
        "NODE",
        "STATE",
        "STEP",
        "SINCE"
    );
    for row in &rows {
        let r: NodeRecord = serde_json::from_value(row["node"].clone())?;
        let mut detail = safe(r.reason.as_deref().unwrap_or_default()).into_owned();
        if let Ok(h) = serde_json::from_value::<Reservation>(row["reservation"].clone()) {
            let held = format!(
                "reserved by {} for {} since {}",
                safe(&h.holder.to_string()),
                safe(&h.action),
                utc(h.since)
            );
            detail = if detail.is_empty() {
                held
            } else {
                format!("{held}; {detail}")
            };
        }
        let deploy = &row["deploy"];
        if let (Some(written), Some(total)) = (deploy["written"].as_u64(), deploy["total"].as_u64())
            && total > 0
        {
            detail.push_str(&format!(" [{written} of {total} bytes written]"));
        }
        outln!(
            "{:width$}  {:13}  {:16}  {:23}  {}",
            r.name,
            safe(&r.state),
            safe(r.step.as_deref().unwrap_or("-")),
            utc(r.state_since),
            detail.trim()
        );
    }
    Ok(ExitCode::SUCCESS)
}

pub fn history(
    lab: &Lab,
    node: Option<&str>,
    limit: usize,
    json: bool,
) -> anyhow::Result<ExitCode> {
    if let Some(name) = node
        && lab.node(name).is_none()
    {
        anyhow::bail!("no node named {name:?} in {}", lab.path.display());
    }
    let store = open_store(lab)?;
    let events = store.last_events(node, limit)?;
    print_history(&events, json)
}

pub fn print_history(events: &[EventRecord], json: bool) -> anyhow::Result<ExitCode> {
    if json {
        out::json_pretty(&events)?;
    } else {
        for e in events {
            outln!("{}", history_line(e));
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// One audit event; its details may quote an agent or a console, so each
/// field is escaped whole.
fn history_line(e: &EventRecord) -> String {
    let node = safe(e.node.as_deref().unwrap_or("-"));
    let mut out = format!(
        "{}  {node}  {}  {}",
        utc(e.at),
        safe(&e.action),
        safe(&e.result)
    );
    if !e.detail.is_empty() {
        out.push_str(&format!(": {}", safe(&e.detail)));
    }
    out.push_str(&format!("  ({})", safe(&e.who)));
    out
}
