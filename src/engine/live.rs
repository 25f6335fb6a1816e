//! The live side of the lab for the dashboard: every BMC's power and boot
//! device, polled with persistent sessions and bounded concurrency, and the
//! DCMI power draw of BMCs that offer it. Readings arrive as engine events;
//! changes are stored as each node's last reading.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{Semaphore, mpsc};
use tokio::task::JoinSet;

use super::lab::{Engine, EngineEvent};
use super::poller::{Poller, PollerConfig, Reading};
use super::store::now_ms;
use super::targets::management_target;

#[derive(Debug, Clone, Copy)]
pub struct LiveOptions {
    pub poll_interval: Duration,
    pub dcmi_interval: Duration,
    pub concurrency: usize,
}

impl Default for LiveOptions {
    fn default() -> Self {
        LiveOptions {
            poll_interval: Duration::from_secs(5),
            dcmi_interval: Duration::from_secs(10),
            concurrency: 64,
        }
    }
}

/// Runs until the returned set is dropped or aborted.
pub async fn start(engine: Arc<Engine>, options: LiveOptions) -> JoinSet<()> {
    let mut tasks = JoinSet::new();
    let mut targets = Vec::new();
    for node in &engine.lab.nodes {
        let target = management_target(node).await.map_err(|e| e.to_string());
        targets.push((node.name.clone(), target));
    }
    let config = PollerConfig {
        interval: options.poll_interval,
        concurrency: options.concurrency,
        report_unchanged: true,
        ..PollerConfig::default()
    };
    // Through each node's console session where one is open: one RMCP+
    // session per BMC.
    let bmcs = targets
        .iter()
        .map(|(name, target)| {
            let bmc = target.clone().map(|t| engine.consoles.bmc(name, t));
            (name.clone(), bmc)
        })
        .collect();
    let poller = Poller::from_bmcs(bmcs, config);
    let (tx, mut rx) = mpsc::channel(1024);
    tasks.spawn(poller.run(tx));
    let readings = engine.clone();
    tasks.spawn(async move {
        let mut last: std::collections::HashMap<String, Reading> = Default::default();
        while let Some(update) = rx.recv().await {
            let changed = last.get(&update.node) != Some(&update.reading);
            let (power_on, boot_device, error) = match &update.reading {
                Reading::Ok { power_on, boot } => {
                    (Some(*power_on), boot.as_ref().map(|b| b.label()), None)
                }
                Reading::Failed { message, .. } => (None, None, Some(message.clone())),
            };
            if changed {
                let _ = readings.store().record_reading(
                    &update.node,
                    power_on,
                    boot_device.as_deref(),
                    error.as_deref(),
                );
                last.insert(update.node.clone(), update.reading.clone());
            }
            readings.emit(EngineEvent::Reading {
                node: update.node,
                power_on,
                boot_device,
                error,
                at: now_ms(),
            });
        }
    });
    let permits = Arc::new(Semaphore::new(options.concurrency.max(1)));
    for (node, target) in targets {
        let Ok(target) = target else { continue };
        let (engine, permits) = (engine.clone(), permits.clone());
        tasks.spawn(async move {
            let mut bmc = engine.consoles.bmc(&node, target);
            loop {
                let reading = {
                    let Ok(_permit) = permits.acquire().await else {
                        break;
                    };
                    bmc.power_draw().await
                };
                match reading {
                    Ok(Some(power)) => engine.emit(EngineEvent::PowerDraw {
                        node: node.clone(),
                        watts: power.current_watts,
                        at: now_ms(),
                    }),
                    // No DCMI on this BMC: nothing to sample, ever.
                    Ok(None) => break,
                    Err(_) => {}
                }
                tokio::time::sleep(options.dcmi_interval).await;
            }
            bmc.close().await;
        });
    }
    tasks
}
