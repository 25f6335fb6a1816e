//! Undeploy (power off, remove what the deploy wrote → available) and abort.

use super::action::{Failure, Run, reserved, store_failure};
use super::bmc_steps::Bmc;
use super::deploy::fail_deploy;
use super::image;
use super::lab::Engine;
use super::lifecycle::{self, State, Step, Trigger};
use crate::boot::BootInterface;
use crate::inventory::Node;
use crate::ipmi::chassis::BootDevice;

pub async fn undeploy(engine: &Engine, node: &Node) -> Result<String, String> {
    reserved(engine, node, "undeploy", || async {
        let run = Run { engine, node };
        let record = engine.record(&node.name).map_err(|e| e.to_string())?;
        let state: State = record.state.parse()?;
        if lifecycle::next(state, Trigger::Undeploy).is_none() {
            return Err(format!(
                "{} is {state}; undeploy needs {}",
                node.name,
                lifecycle::allowed_from(Trigger::Undeploy).join(" or ")
            ));
        }
        match undeploy_steps(&run).await {
            Ok(()) => Ok(format!("{} is available", node.name)),
            Err(failure) => {
                let reason = failure.reason();
                let step = engine
                    .record(&node.name)
                    .ok()
                    .and_then(|r| r.step)
                    .and_then(|s| s.parse().ok());
                let _ = run.go(Trigger::Fail, State::Error, step, Some(&reason));
                Err(reason)
            }
        }
    })
    .await
}

async fn undeploy_steps(run: &Run<'_>) -> Result<(), Failure> {
    let (engine, node) = (run.engine, run.node);
    run.go(
        Trigger::Undeploy,
        State::Undeploying,
        Some(Step::PowerOff),
        None,
    )?;
    let mut bmc = Bmc::connect(&engine.consoles, node, engine.lab.deploy.power_timeout)
        .await
        .map_err(|w| Failure::Step(Step::PowerOff, w))?;
    let off = bmc.power_off().await;
    let off = match off {
        Ok(done) => {
            run.reading(false, "none");
            run.progress(Step::PowerOff, done, None);
            run.step(State::Undeploying, Step::CleanUp)?;
            bmc.set_boot_device(BootDevice::None)
                .await
                .map_err(|w| Failure::Step(Step::CleanUp, w))
        }
        Err(w) => Err(Failure::Step(Step::PowerOff, w)),
    };
    bmc.close().await;
    off?;
    let fail = |e: crate::boot::BootError| Failure::Step(Step::CleanUp, e.to_string());
    engine.boot.clean_up_instance(node).map_err(fail)?;
    run.go(Trigger::Clean, State::Cleaning, Some(Step::CleanUp), None)?;
    engine
        .store()
        .end_deploy(&node.name)
        .map_err(store_failure(Step::CleanUp))?;
    image::unstage(&engine.lab, node).map_err(|e| Failure::Step(Step::CleanUp, e.to_string()))?;
    engine.boot.clean_up_ramdisk(node).map_err(fail)?;
    run.go(Trigger::Succeed, State::Available, None, None)
}

/// Asks the process running the node's deploy to stop; if none is (a
/// deploy left waiting by a dead petitlab), fails the deploy here.
pub async fn abort(engine: &Engine, node: &Node) -> Result<String, String> {
    let record = engine.record(&node.name).map_err(|e| e.to_string())?;
    let state: State = record.state.parse()?;
    if lifecycle::next(state, Trigger::Abort).is_none() {
        return Err(format!(
            "{} is {state}: there is no deploy to abort",
            node.name
        ));
    }
    let who = engine.who();
    let holder = engine
        .store()
        .reservation(&node.name)
        .map_err(|e| e.to_string())?;
    match holder {
        Some(r) => {
            engine
                .store()
                .request_abort(&node.name, &who)
                .map_err(|e| e.to_string())?;
            let event = engine.event(
                &node.name,
                "abort",
                "requested",
                &format!("asked {} to stop", r.holder),
            );
            let _ = engine.store().append_event(&event);
            Ok(format!(
                "{}: abort requested; {} stops the deploy at its next check",
                node.name, r.holder
            ))
        }
        None => {
            reserved(engine, node, "abort", || async {
                let run = Run { engine, node };
                Ok(fail_deploy(&run, Failure::Aborted(who)))
            })
            .await
        }
    }
}
