//! `petitlab why NODE`: the node's last boot, event by event, and where it
//! stopped with the likely causes. Through the lab service when one runs
//! (it records the boots); else read from the store.

use std::process::ExitCode;
use std::sync::Mutex;

use petitlab::engine::boot_record;
use petitlab::engine::lab::Engine;
use petitlab::engine::store::{Store, now_ms};
use petitlab::timeline::diagnose::Why;
use serde_json::json;

use super::out::{outln, safe};
use super::route::{Load, Route, pick};

pub async fn run(
    path: &std::path::Path,
    local: bool,
    node: &str,
    json: bool,
) -> anyhow::Result<ExitCode> {
    let (route, names) = pick(path, local, &[node.to_string()], false, Load::Named).await?;
    let [name] = names.as_slice() else {
        anyhow::bail!(
            "why takes one node; {node:?} names {} ({})",
            names.len(),
            names.join(", ")
        );
    };
    let why: Option<Why> = match route {
        Route::Service(client, _) => {
            let answer = client.call("why", json!({"node": name})).await?;
            serde_json::from_value(answer)?
        }
        Route::Local(lab) => {
            let node = crate::find_node(&lab, name)?;
            let store = Store::open(&Engine::store_path(&lab))?;
            boot_record::why(&Mutex::new(store), &lab, node).map_err(anyhow::Error::msg)?
        }
    };
    if json {
        // Console lines and DHCP notes are the network's: escaped inert.
        super::out::json_pretty(&json!({"node": name, "boot": why}))?;
        return Ok(ExitCode::SUCCESS);
    }
    match why {
        Some(why) => outln!(
            "{}",
            petitlab::timeline::render::why(&why, now_ms()).trim_end()
        ),
        None => outln!(
            "{}: no boot recorded yet (petitlab records the boots it powers on, and what its servers, the consoles and dnsmasq's log see)",
            safe(name)
        ),
    }
    Ok(ExitCode::SUCCESS)
}
