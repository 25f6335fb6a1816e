//! The lab service's share of the boot timelines: the `why` and
//! `stage-stats` methods, and what its power and boot-device requests tell
//! the timelines.

use std::sync::Arc;

use serde::Deserialize;
use serde_json::Value;

use super::protocol::RpcError;
use crate::engine::lab::Engine;
use crate::hardware::BootDevice;

/// `why {node}` and `stage-stats`, read off the store on a blocking thread.
pub(super) async fn call(engine: Arc<Engine>, method: &str, p: Value) -> Result<Value, RpcError> {
    let answer = match method {
        "why" => {
            #[derive(Deserialize)]
            struct P {
                node: String,
            }
            let P { node } =
                serde_json::from_value(p).map_err(|e| RpcError::params(e.to_string()))?;
            tokio::task::spawn_blocking(move || {
                engine
                    .why(&node)
                    .map(|w| serde_json::to_value(w).unwrap_or_default())
            })
            .await
        }
        _ => {
            tokio::task::spawn_blocking(move || {
                engine
                    .stage_stats()
                    .map(|s| serde_json::to_value(s).unwrap_or_default())
            })
            .await
        }
    };
    answer
        .map_err(|e| RpcError::failed(format!("the request failed: {e}")))?
        .map_err(RpcError::failed)
}

/// What the service just set is each node's reading (the dashboard's, and
/// the boot override a following power-on's timeline starts with), as the
/// in-process dashboard's own action does.
pub(super) fn note_boot_device(engine: &Engine, results: &Value, device: BootDevice) {
    let name = match device {
        BootDevice::Pxe => "pxe",
        BootDevice::Disk => "disk",
        BootDevice::None => "none",
    };
    for row in results.as_array().into_iter().flatten() {
        if row["ok"].as_bool() != Some(true) {
            continue;
        }
        let Some(node) = row["node"].as_str() else {
            continue;
        };
        let on = engine.record(node).ok().and_then(|r| r.power_on);
        engine.note_reading(node, on, Some(name));
    }
}

/// The boots a power request began, into the nodes' timelines.
pub(super) fn record_boots(engine: &Engine, results: &Value, sent: i64) {
    let rows: Vec<(String, Result<Value, String>)> = results
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|row| {
            let node = row["node"].as_str()?.to_string();
            let result = match row["ok"].as_bool() {
                Some(true) => Ok(row["result"].clone()),
                _ => Err(String::new()),
            };
            Some((node, result))
        })
        .collect();
    for (node, how) in crate::engine::boot_record::booted_by(&rows) {
        engine.boot_begins(node, sent, &how, None);
    }
}
