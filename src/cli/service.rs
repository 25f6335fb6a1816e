//! `petitlab serve`: the lab service. It owns the lab's engine (store,
//! poller, consoles, actions), serves HTTP, TFTP and the agent API, and
//! answers the CLI and dashboards on its socket until SIGTERM or Ctrl-C;
//! SIGHUP re-reads lab.toml.

use std::process::ExitCode;
use std::sync::Arc;

use petitlab::engine::lab::Engine;
use petitlab::inventory::Lab;
use petitlab::service::{Service, ServiceOptions};

use super::out::{errln, outln};

pub async fn run(lab: Lab, opts: super::serve::Options) -> anyhow::Result<ExitCode> {
    // One BMC session and console per node, plus clients and servers.
    petitlab::serve::limits::raise_descriptor_limit();
    // Before anything binds: a second service for the lab says so.
    if petitlab::service::Client::connect(&lab.service.socket)
        .await?
        .is_some()
    {
        anyhow::bail!(
            "a lab service already runs on {}; `petitlab reload` makes it re-read lab.toml",
            lab.service.socket.display()
        );
    }
    let lab = Arc::new(lab);
    let (engine, events) = Engine::open(lab.clone())?;
    let recorder = engine.recorder.clone();
    let servers = super::serve::start(
        &lab,
        &opts,
        Some(engine.shared_store()),
        Some(recorder.clone()),
    )
    .await?;
    // dnsmasq's log, for the boots' DHCP (as long as the service runs).
    let dhcp = lab.dhcp_log.clone().map(|path| recorder.follow_dhcp(path));
    let service = match Service::start(engine, events, ServiceOptions::default()).await {
        Ok(service) => service,
        Err(e) => {
            servers.shutdown().await?;
            return Err(e.into());
        }
    };
    outln!(
        "petitlab serve: lab service for {} on {} ({} node(s))",
        lab.path.display(),
        service.socket().display(),
        lab.nodes.len()
    );
    outln!("petitlab serve: running; Ctrl-C or SIGTERM stops, SIGHUP reloads lab.toml");
    let result = serve_until_stopped(&service).await;
    if let Some(dhcp) = dhcp {
        dhcp.abort();
    }
    service.shutdown().await;
    servers.shutdown().await?;
    outln!("petitlab serve: stopped");
    result.map(|()| ExitCode::SUCCESS)
}

/// Until Ctrl-C or SIGTERM; SIGHUP reloads lab.toml meanwhile.
async fn serve_until_stopped(service: &Service) -> anyhow::Result<()> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut hangup = signal(SignalKind::hangup())?;
    let stop = super::wait_for_stop();
    tokio::pin!(stop);
    loop {
        tokio::select! {
            r = &mut stop => return r,
            _ = hangup.recv() => match service.reload().await {
                Ok(r) => outln!(
                    "petitlab serve: reloaded lab.toml: added {:?}, removed {:?}, changed {:?}",
                    r.added, r.removed, r.changed
                ),
                Err(why) => errln!("petitlab serve: reload refused: {why}"),
            },
        }
    }
}
