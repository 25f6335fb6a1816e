//! Where a command runs (the lab service, or this process) and which nodes
//! its node range names there.

use std::collections::HashMap;
use std::path::Path;

use petitlab::engine::lifecycle::State;
use petitlab::inventory::range::{self, Candidate, NodeRange, RangeError};
use petitlab::inventory::{self, Lab, Scope};
use serde_json::json;

/// Where a command runs.
pub enum Route {
    /// The lab's service answers: it checks what it is asked (node names
    /// included) against the lab it serves, listed here.
    Service(petitlab::service::Client, Vec<String>),
    /// In this process, on the lab loaded and validated here.
    Local(Box<Lab>),
}

/// The lab's service when one answers (and `local` is not set), else the
/// lab loaded, with the nodes in `scope` validated, for an in-process run.
/// Reaching the service needs only the socket's path: a member of the
/// service's group need not be able to read the lab's secrets.
pub async fn route(path: &Path, local: bool, scope: Scope) -> anyhow::Result<Route> {
    let loaded = inventory::load_scoped(path, &scope)?;
    if !local {
        let socket = &loaded.lab.service.socket;
        if let Some((client, nodes)) = super::remote::service_at(socket, path, false).await? {
            return Ok(Route::Service(client, nodes));
        }
    }
    Ok(Route::Local(Box::new(crate::valid_lab(loaded)?)))
}

/// How closely a command's nodes are loaded.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Load {
    /// Only the named nodes (BMC commands): a range of plain names on a
    /// 4000-node lab.toml parses just those.
    Named,
    /// Every node parsed, the named ones checked closely: what a command
    /// that runs the engine needs.
    Engine,
}

/// The route, and the nodes `words` (one node range each, joined) name
/// there, in the lab's order. `all` adds the range `all` (the `--all` flag).
pub async fn pick(
    path: &Path,
    local: bool,
    words: &[String],
    all: bool,
    load: Load,
) -> anyhow::Result<(Route, Vec<String>)> {
    let (words, range) = parse(words, all)?;
    let route = route(path, local, scope(&range, load)).await?;
    let names = match &route {
        // `all` (a command's default, or --all): the service listed them.
        Route::Service(_, all) if words == ["all"] => all.clone(),
        Route::Service(client, all) => match range.literal_names() {
            // Plain names: checked against the service's list, as before.
            Some(_) => resolve(
                &range,
                all.iter().map(|n| (n.as_str(), None)),
                &HashMap::new(),
            )?,
            None => {
                let names = client.call("resolve", json!({"range": words})).await?;
                serde_json::from_value(names)?
            }
        },
        Route::Local(lab) => resolve_in(&range, lab)?,
    };
    Ok((route, names))
}

/// [`pick`] for commands that always run in this process (they write
/// files only this host has): the lab and the nodes named in it.
pub fn pick_local(path: &Path, words: &[String], all: bool) -> anyhow::Result<(Lab, Vec<String>)> {
    let (_, range) = parse(words, all)?;
    let lab = crate::load_lab_for(path, &scope(&range, Load::Named))?;
    let names = resolve_in(&range, &lab)?;
    Ok((lab, names))
}

fn parse(words: &[String], all: bool) -> anyhow::Result<(Vec<String>, NodeRange)> {
    let mut words = words.to_vec();
    if all {
        words.push("all".into());
    }
    if words.is_empty() {
        anyhow::bail!(
            "no nodes given: name them with a node range (p9-rack1-[01-04], group:NAME, all)"
        );
    }
    let range = range::parse_words(&words)?;
    Ok((words, range))
}

fn scope(range: &NodeRange, load: Load) -> Scope {
    match (range.literal_names(), load) {
        (Some(names), Load::Named) => Scope::only(&names),
        (Some(names), Load::Engine) => Scope::nodes(&names),
        (None, _) => Scope::All,
    }
}

fn resolve_in(range: &NodeRange, lab: &Lab) -> anyhow::Result<Vec<String>> {
    let states = if range.needs_state() {
        node_states(lab)?
    } else {
        HashMap::new()
    };
    let nodes = lab
        .nodes
        .iter()
        .map(|n| (n.name.as_str(), n.group.as_deref()));
    resolve(range, nodes, &states).map_err(|e| unmatched(e, lab))
}

/// A range error in the words of the lab: a single unknown name is told as
/// before ranges existed, with the nodes there are.
fn unmatched(e: anyhow::Error, lab: &Lab) -> anyhow::Error {
    let path = lab.path.display();
    match e.downcast_ref::<RangeError>() {
        Some(RangeError::NoMatch { terms })
            if terms.len() == 1 && !terms[0].contains(['[', ':', ',']) =>
        {
            let known: Vec<&str> = lab.nodes.iter().map(|n| n.name.as_str()).collect();
            anyhow::anyhow!(
                "no node named {:?} in {path} (nodes: {})",
                terms[0],
                known.join(", ")
            )
        }
        _ => anyhow::anyhow!("{e} in {path}"),
    }
}

fn resolve<'a>(
    range: &NodeRange,
    nodes: impl Iterator<Item = (&'a str, Option<&'a str>)>,
    states: &HashMap<String, State>,
) -> anyhow::Result<Vec<String>> {
    let candidates: Vec<Candidate> = nodes
        .map(|(name, group)| Candidate {
            name,
            group,
            state: states.get(name).copied(),
        })
        .collect();
    Ok(range.resolve(&candidates)?)
}

/// Each node's provisioning state, as the state store has it (nodes the
/// store has never seen have none and match no `state:` term).
fn node_states(lab: &Lab) -> anyhow::Result<HashMap<String, State>> {
    let store = super::lifecycle::open_store(lab)?;
    Ok(store
        .nodes()?
        .into_iter()
        .filter_map(|n| Some((n.name, n.state.parse().ok()?)))
        .collect())
}
