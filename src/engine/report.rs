//! What `status` and the dashboard's snapshot show, as JSON: built here so
//! the in-process CLI and the lab service answer alike.

use serde_json::{Value, json};

use super::lab::Engine;
use super::store::{Store, StoreError};
use crate::inventory::Lab;

/// One row per node of the lab (`names` empty: every node), in store
/// order: its record, reservation and deploy progress.
pub fn status_rows_of(store: &Store, lab: &Lab, names: &[String]) -> Result<Value, StoreError> {
    let wanted = |name: &str| {
        lab.node(name).is_some() && (names.is_empty() || names.iter().any(|n| n == name))
    };
    let reservations = store.reservations()?;
    let rows: Vec<Value> = store
        .nodes()?
        .into_iter()
        .filter(|r| wanted(&r.name))
        .map(|r| {
            let held = reservations.iter().find(|h| h.node == r.name);
            let deploy = store.deploy(&r.name).ok().flatten();
            json!({
                "node": r,
                "reservation": held,
                "deploy": deploy.map(|d| json!({
                    "written": d.written, "total": d.total, "image_name": d.image_name,
                    "looked_up_at": d.looked_up_at, "agent_seen_at": d.agent_seen_at, "result": d.result,
                })),
            })
        })
        .collect();
    Ok(Value::Array(rows))
}

pub fn status_rows(engine: &Engine, names: &[String]) -> Result<Value, StoreError> {
    status_rows_of(&engine.store(), &engine.lab, names)
}

/// Records, reservations and recent history: what a dashboard starts from.
pub fn snapshot(engine: &Engine) -> Result<Value, StoreError> {
    let store = engine.store();
    Ok(json!({
        "records": store.nodes()?,
        "reservations": store.reservations()?,
        "history": store.last_events(None, 500)?,
    }))
}
