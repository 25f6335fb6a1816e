//! `petitlab demo`: the built-in virtual lab (lab.toml.example on loopback,
//! generated artifacts, simulated BMCs with virtual petitboot hosts, HTTP +
//! agent API + TFTP) in this process, with the dashboard on it; or, with
//! `--headless`, driven from another terminal with the printed `--lab` path.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use petitlab::demo::{self, Running};
use petitlab::engine::lab::Engine;
use petitlab::inventory;
use petitlab::service::{Client, Service, ServiceOptions};
use petitlab::tui::backend::Backend;

use super::out::outln;

pub async fn run(
    headless: bool,
    dir: Option<PathBuf>,
    faults: Vec<String>,
    dashboard: &super::dashboard::DashboardArgs,
) -> anyhow::Result<ExitCode> {
    // Checked before anything starts: a bad theme or keymap stops here.
    let tui = match headless {
        true => None,
        false => Some(super::dashboard::options(dashboard)?),
    };
    // The demo runs a whole lab in one process (servers, simulated BMCs and
    // hosts, consoles, the poller): use all the descriptors the hard limit
    // allows rather than a soft 1024.
    petitlab::serve::limits::raise_descriptor_limit();
    // A directory we made is ours to remove; one given is the caller's to keep.
    let (dir, ours) = match dir {
        Some(dir) => (dir, false),
        None => (
            std::env::temp_dir().join(format!("petitlab-demo-{}", std::process::id())),
            true,
        ),
    };
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    // The generated lab.toml names its files by this path: relative, they
    // would be read against the lab file's own directory.
    let dir = std::path::absolute(&dir).with_context(|| format!("resolving {}", dir.display()))?;
    let path = demo::generate(&dir)?;
    let (lab, _) = inventory::load_valid(&path)?;
    let faults = super::sim::parse_faults(&lab, &faults)?;
    let lab = Arc::new(lab);
    let (engine, events) = Engine::open(lab.clone())?;
    let delay = Duration::from_millis(40);
    let recorder = engine.recorder.clone();
    let running = Running::start(&lab, engine.shared_store(), recorder, delay, faults).await?;
    // The demo is a lab service like `petitlab serve`; the dashboard is
    // one of its clients, over the same socket as any other.
    let options = ServiceOptions {
        sessions: Some(running.sessions_counter(&lab)),
        ..ServiceOptions::default()
    };
    let service = match Service::start(engine, events, options).await {
        Ok(service) => service,
        Err(e) => {
            running.shutdown().await;
            return Err(e.into());
        }
    };
    if let Some(options) = tui {
        let result = async {
            let client = Client::connect(service.socket())
                .await?
                .context("the demo's own lab service does not answer")?;
            let (backend, events) = Backend::service(client, lab.clone()).await?;
            petitlab::tui::run::run(backend, events, options).await?;
            anyhow::Ok(())
        }
        .await;
        service.shutdown().await;
        running.shutdown().await;
        if ours {
            let _ = std::fs::remove_dir_all(&dir);
        }
        result?;
        return Ok(ExitCode::SUCCESS);
    }
    outln!("petitlab demo: lab {}", path.display());
    for (i, node) in lab.nodes.iter().enumerate() {
        let bmc = match node.bmc.protocol {
            inventory::BmcProtocol::Ipmi => format!("BMC on {}", running.sim.addr(i)),
            inventory::BmcProtocol::Redfish => format!(
                "Redfish BMC on https://{}:{}, SSH console on port {}",
                node.bmc.host, node.bmc.port, node.bmc.ssh_port
            ),
        };
        outln!(
            "petitlab demo: {}: {bmc}, {} instance",
            node.name,
            match node.boot_option {
                inventory::BootOption::Local => "local",
                inventory::BootOption::Netboot => "netboot",
            }
        );
    }
    outln!(
        "petitlab demo: HTTP and agent API on {}, TFTP on {}",
        running.http_addr(),
        lab.tftp.listen
    );
    let first = lab.nodes.first().map_or("NODE", |n| n.name.as_str());
    outln!(
        "petitlab demo: try `petitlab --lab {} deploy {first}`, then `status`, `console --log {first}`, `undeploy {first}`",
        path.display()
    );
    outln!(
        "petitlab demo: lab service on {}: attach a dashboard with `petitlab --lab {}`, watch a console with `petitlab --lab {} console --read-only {first}`",
        service.socket().display(),
        path.display(),
        path.display()
    );
    outln!("petitlab demo: running; Ctrl-C stops, `petitlab reload` re-reads lab.toml");
    // The demo lives in a terminal: its hangup stops it, as Ctrl-C does.
    super::wait_for_stop_or_hangup().await?;
    service.shutdown().await;
    running.shutdown().await;
    if ours {
        std::fs::remove_dir_all(&dir).with_context(|| format!("removing {}", dir.display()))?;
    }
    outln!("petitlab demo: stopped");
    Ok(ExitCode::SUCCESS)
}
