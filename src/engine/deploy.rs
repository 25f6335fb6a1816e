//! Deploy (petitboot boot, IPMI power, and the node's deploy interface):
//! validate, prepare the ramdisk, netboot it, get the image written (by the
//! ramdisk's agent, or by petitlab over iSCSI: `deploy_iscsi`), switch the
//! node to its instance, reboot, and wait for its login prompt. A failure
//! names its step.

use std::time::{Duration, Instant};

use super::action::{Failure, POLL, Run, reserved, store_failure};
use super::agent_api;
use super::bmc_steps::{self, Bmc};
use super::console_watch::{self, ConsoleWatch};
use super::deploy_iscsi;
use super::image::{self, StagedImage};
use super::lab::Engine;
use super::lifecycle::{self, State, Step, Trigger};
use super::store::{AgentResult, NewDeploy};
use crate::boot::{BootInterface, RamdiskParams};
use crate::inventory::{DeployInterface, Node};
use crate::ipmi::chassis::BootDevice;

pub async fn deploy(engine: &Engine, node: &Node) -> Result<String, String> {
    reserved(engine, node, "deploy", || async {
        let run = Run { engine, node };
        let record = engine.record(&node.name).map_err(|e| e.to_string())?;
        let state: State = record.state.parse()?;
        let step = record.step.as_deref().and_then(|s| s.parse::<Step>().ok());
        let outcome = match (state, step) {
            (State::Deploying | State::WaitCallback, Some(step)) if step.resumable() => {
                run.progress(
                    step,
                    format!("resuming the interrupted deploy at {step}"),
                    None,
                );
                after_power_on(&run, step, None).await
            }
            _ => {
                become_available(&run, state).await?;
                let staged = preflight(&run).await?;
                let deploying = run.go(
                    Trigger::Deploy,
                    State::Deploying,
                    Some(Step::Validate),
                    None,
                );
                if let Err(f) = deploying {
                    let _ = image::unstage(&engine.lab, node);
                    return Err(f.reason());
                }
                fresh_deploy(&run, staged).await
            }
        };
        match outcome {
            Ok(()) => Ok(format!("{} is active", node.name)),
            Err(failure) => Err(fail_deploy(&run, failure)),
        }
    })
    .await
}

/// enroll → (BMC verified) manageable → available, so a fresh lab deploys
/// in one command. Deploy is refused from any state it is not allowed in.
async fn become_available(run: &Run<'_>, state: State) -> Result<(), String> {
    let mut state = state;
    if state == State::Enroll {
        let mut bmc = Bmc::connect(
            &run.engine.consoles,
            run.node,
            run.engine.lab.deploy.power_timeout,
        )
        .await
        .map_err(|why| format!("verify: {why}"))?;
        let verified = bmc.power_status().await;
        bmc.close().await;
        if let Err(why) = verified {
            // Stays in enroll, with the reason where `petitlab status` shows it.
            let reason = format!("verify: {why}");
            let event = run.engine.event(run.name(), "verify", "failed", &why);
            let enroll = [State::Enroll.name()];
            let _ = run.engine.store().transition(
                run.name(),
                &enroll,
                State::Enroll.name(),
                Some(Step::Verify.name()),
                Some(&reason),
                &event,
            );
            return Err(reason);
        }
        run.go(Trigger::Manage, State::Manageable, None, None)
            .map_err(|f| f.reason())?;
        state = State::Manageable;
    }
    if state == State::Manageable {
        run.go(Trigger::Provide, State::Available, None, None)
            .map_err(|f| f.reason())?;
        state = State::Available;
    }
    if lifecycle::next(state, Trigger::Deploy).is_none() {
        return Err(format!(
            "{} is {state}; deploy needs {} (undeploy it first)",
            run.name(),
            lifecycle::allowed_from(Trigger::Deploy).join(" or ")
        ));
    }
    Ok(())
}

/// What would doom the deploy from the start refuses it before the node
/// changes state: config problems, petitlab's servers not answering, or an
/// image that cannot be made raw, published and checksummed. Returns the
/// staged image.
async fn preflight(run: &Run<'_>) -> Result<StagedImage, String> {
    let problems: Vec<String> = run
        .engine
        .boot
        .validate(run.node)
        .into_iter()
        .filter(|p| p.is_error())
        .map(|p| format!("{}: {}", p.field, p.message))
        .collect();
    let checked = if problems.is_empty() {
        bmc_steps::check_servers(&run.engine.lab, run.node).await
    } else {
        Err(problems.join("; "))
    };
    let why = match checked {
        Ok(()) => match stage_image(run).await {
            Ok(staged) => return Ok(staged),
            Err(why) => {
                let _ = image::unstage(&run.engine.lab, run.node);
                why
            }
        },
        Err(why) => why,
    };
    let event = run.engine.event(run.name(), "deploy", "refused", &why);
    let _ = run.engine.store().append_event(&event);
    Err(format!("refused, nothing changed: validate: {why}"))
}

/// The image part of validate: made raw (qcow2 is converted), then
/// published for the agent (or kept for the iSCSI write), and checksummed.
async fn stage_image(run: &Run<'_>) -> Result<StagedImage, String> {
    let (lab, node) = (&run.engine.lab, run.node);
    let interface = node.deploy_interface;
    let doing = match interface {
        DeployInterface::Agent => "publishing and checksumming the instance image",
        DeployInterface::Iscsi => "checksumming the instance image for the iSCSI write",
    };
    let qcow2 = image::is_qcow2(image::source(node)).unwrap_or(false);
    let convert = if qcow2 {
        "converting the qcow2 image to raw (qemu-img), then "
    } else {
        ""
    };
    run.progress(Step::Validate, format!("{convert}{doing}"), None);
    let (lab, node) = (lab.clone(), node.clone());
    tokio::task::spawn_blocking(move || match interface {
        DeployInterface::Agent => image::stage(&lab, &node),
        DeployInterface::Iscsi => image::prepare_raw(&lab, &node),
    })
    .await
    .map_err(|e| e.to_string())?
    .map_err(|e| e.to_string())
}

async fn fresh_deploy(run: &Run<'_>, staged: StagedImage) -> Result<(), Failure> {
    let (engine, node) = (run.engine, run.node);
    let lab = &engine.lab;
    let token = agent_api::new_token();
    engine
        .store()
        .begin_deploy(&NewDeploy {
            node: node.name.clone(),
            token_sha256: agent_api::token_hash(&token),
            image_url: staged.url.clone(),
            image_size: staged.size,
            image_sha256: staged.sha256.clone(),
            image_name: staged.name.clone(),
        })
        .map_err(store_failure(Step::Validate))?;

    run.step(State::Deploying, Step::PrepareRamdisk)?;
    let api_url = format!("{}v1/", lab.http.base_url.as_deref().unwrap_or_default());
    let params = RamdiskParams {
        kernel_args: agent_api::ramdisk_args(&api_url, &token),
    };
    engine
        .boot
        .prepare_ramdisk_with(node, &params)
        .map_err(|e| Failure::Step(Step::PrepareRamdisk, e.to_string()))?;

    run.step(State::Deploying, Step::SetBootDevice)?;
    let timeout = lab.deploy.power_timeout;
    let mut bmc = Bmc::connect(&engine.consoles, node, timeout)
        .await
        .map_err(|w| Failure::Step(Step::SetBootDevice, w))?;
    let result = async {
        let set = bmc
            .set_boot_device(BootDevice::Pxe)
            .await
            .map_err(|w| Failure::Step(Step::SetBootDevice, w))?;
        if set.once_ignored {
            // Cleared below, before the instance boots (Step::Reboot).
            run.progress(
                Step::SetBootDevice,
                "the BMC ignored \"once\" and keeps pxe for every boot; petitlab clears it before the instance boots".into(),
                None,
            );
        }
        run.step(State::Deploying, Step::PowerOn)?;
        run.engine
            .boot_begins(&run.node.name, super::store::now_ms(), "on", Some("pxe"));
        let done = bmc
            .power_on_or_cycle()
            .await
            .map_err(|w| Failure::Step(Step::PowerOn, w))?;
        run.reading(true, "pxe");
        run.progress(
            Step::PowerOn,
            format!("{done}; the node netboots the deploy ramdisk"),
            None,
        );
        Ok(())
    }
    .await;
    bmc.close().await;
    result?;
    after_power_on(run, Step::WaitCallback, Some(&token)).await
}

/// From the node's power-on into the deploy ramdisk to `active`. `token`:
/// this deploy's, to redact from the console log; `None` when a restarted
/// The reboot's wait for a reconnecting console (the login prompt is read there).
const CONSOLE_READY_WAIT: Duration = Duration::from_secs(10);

/// petitlab picks the deploy up at `from` (only the token's hash is stored).
async fn after_power_on(run: &Run<'_>, from: Step, token: Option<&str>) -> Result<(), Failure> {
    let resumed = token.is_none();
    let (engine, node) = (run.engine, run.node);
    let settings = engine.lab.deploy;
    // The console is watched (and logged) from here to the end.
    let secrets: Vec<String> = token.map(str::to_string).into_iter().collect();
    let watch = engine
        .consoles
        .attach(node, secrets)
        .await
        .map_err(|why| Failure::Step(from, why))?;
    let result = async {
        if from == Step::WaitCallback {
            if !resumed {
                run.go(
                    Trigger::WaitForAgent,
                    State::WaitCallback,
                    Some(Step::WaitCallback),
                    None,
                )?;
            }
            wait_for_agent(run, settings.callback_timeout, &watch).await?;
            run.go(
                Trigger::AgentCalledBack,
                State::Deploying,
                Some(Step::WriteImage),
                None,
            )?;
        }
        if from != Step::WaitActive {
            if node.deploy_interface == DeployInterface::Iscsi {
                deploy_iscsi::write_image(run).await?;
            }
            wait_for_image(run).await?;
            finish_instance(run, &watch).await?;
        } else {
            // The prompt may already be up: a carriage return redraws it.
            watch.ensure_connected(CONSOLE_READY_WAIT).await;
            watch.send(b"\r");
        }
        wait_active(run, &watch, settings.boot_timeout).await
    };
    let result = tokio::select! {
        result = result => result,
        never = report_console_gaps(run, &watch) => match never {},
    };
    watch.close().await;
    result?;
    run.go(Trigger::Succeed, State::Active, None, None)
}

/// Says in the deploy's progress whenever the console was lost and came
/// back: what the node printed meanwhile (a prompt, a failure) is missing.
async fn report_console_gaps(run: &Run<'_>, watch: &ConsoleWatch) -> std::convert::Infallible {
    let mut seen = watch.seen();
    let mut reported = seen.borrow_and_update().gaps;
    while seen.changed().await.is_ok() {
        let (gaps, gap) = {
            let now = seen.borrow_and_update();
            (now.gaps, now.last_gap.clone())
        };
        if let Some(gap) = gap.filter(|_| gaps > reported) {
            reported = gaps;
            let step = run.current_step().unwrap_or(Step::WaitCallback);
            let message = format!(
                "{}; what the node printed meanwhile is missing",
                gap.describe()
            );
            run.progress(step, message, None);
        }
    }
    std::future::pending().await
}

/// "; the console was lost …" when it was since `gaps_before`: a timeout's
/// reason then says the awaited line may have come while nobody watched.
fn missed(seen: &console_watch::Seen, gaps_before: u32) -> String {
    match &seen.last_gap {
        Some(gap) if seen.gaps > gaps_before => {
            format!("; {}, what it printed then is missing", gap.describe())
        }
        _ => String::new(),
    }
}

/// Waits for the agent's lookup. What the console shows on the way
/// (petitboot, a failed download, the kexec) is reported as it happens, and
/// named in the reason when the wait times out.
async fn wait_for_agent(
    run: &Run<'_>,
    limit: Duration,
    watch: &ConsoleWatch,
) -> Result<(), Failure> {
    let step = Step::WaitCallback;
    let start = step_started(run);
    let seen = watch.seen();
    let gaps_before = seen.borrow().gaps;
    let (mut last_stage, mut last_failure) = (None, None);
    loop {
        run.check_abort()?;
        let (stage, failure) = {
            let now = seen.borrow();
            (now.stage.clone(), now.failure.clone())
        };
        if failure.is_some() && failure != last_failure {
            last_failure = failure.clone();
            let line = failure.as_ref().map_or("", |f| f.line.as_str());
            run.progress(step, format!("the console shows a failure: {line}"), None);
        }
        if let Some(event) = &stage
            && !event.stage.is_failure()
            && last_stage != Some(event.stage)
        {
            last_stage = Some(event.stage);
            run.progress(step, format!("console: {}", event.stage.as_str()), None);
        }
        let deploy = agent_record(run, step)?;
        if let Some(AgentResult::Failed { reason }) = deploy.result {
            return Err(Failure::Step(
                step,
                format!("the deploy agent failed: {reason}"),
            ));
        }
        if deploy.looked_up_at.is_some() {
            run.progress(step, "the deploy agent called back".into(), None);
            return Ok(());
        }
        if start.elapsed() >= limit {
            let hint = match (&failure, &stage) {
                (Some(failed), Some(now)) if failed != now => {
                    format!("the console showed: {}; then: {}", failed.line, now.line)
                }
                (_, Some(now)) => format!("the console last showed: {}", now.line),
                (Some(failed), None) => format!("the console showed: {}", failed.line),
                (None, None) => {
                    "watch the console: did petitboot fetch the config and kexec?".into()
                }
            };
            return Err(Failure::Step(
                step,
                format!(
                    "no callback from the deploy agent within {} s ({hint}{})",
                    limit.as_secs(),
                    missed(&seen.borrow(), gaps_before)
                ),
            ));
        }
        tokio::time::sleep(POLL).await;
    }
}

/// The agent's side of the deploy, as the API recorded it.
pub(super) fn agent_record(run: &Run<'_>, step: Step) -> Result<super::store::Deploy, Failure> {
    let deploy = run
        .engine
        .store()
        .deploy(run.name())
        .map_err(store_failure(step))?;
    deploy.ok_or_else(|| Failure::Step(step, "the deploy record is gone".into()))
}

/// How long the deploy agent (or ramdisk) has said nothing.
pub(super) fn quiet_for(deploy: &super::store::Deploy) -> Duration {
    let seen = deploy.agent_seen_at.unwrap_or(deploy.started_at);
    Duration::from_millis((super::store::now_ms() - seen).max(0) as u64)
}

/// When the current step started, as an `Instant` (so a resumed wait keeps its deadline).
pub(super) fn step_started(run: &Run<'_>) -> Instant {
    let since = run
        .engine
        .record(run.name())
        .map(|r| r.state_since)
        .unwrap_or_else(|_| super::store::now_ms());
    let ago = (super::store::now_ms() - since).max(0) as u64;
    Instant::now()
        .checked_sub(Duration::from_millis(ago))
        .unwrap_or_else(Instant::now)
}

async fn wait_for_image(run: &Run<'_>) -> Result<(), Failure> {
    let step = Step::WriteImage;
    let settings = run.engine.lab.deploy;
    let start = step_started(run);
    let silence = settings.heartbeat * 3;
    let mut last_written = None;
    loop {
        run.check_abort()?;
        let deploy = agent_record(run, step)?;
        match deploy.result {
            Some(AgentResult::Done { sha256 }) => {
                run.progress(
                    step,
                    format!("image written and verified (sha256 {sha256})"),
                    Some(1.0),
                );
                return Ok(());
            }
            Some(AgentResult::Failed { reason }) => {
                return Err(Failure::Step(
                    step,
                    format!("the deploy agent failed: {reason}"),
                ));
            }
            None => {}
        }
        if last_written != Some(deploy.written) && deploy.total > 0 {
            last_written = Some(deploy.written);
            let fraction = deploy.written as f64 / deploy.total as f64;
            let message = format!("{} of {} bytes written", deploy.written, deploy.total);
            run.progress(step, message, Some(fraction));
        }
        let quiet = quiet_for(&deploy);
        if quiet > silence {
            return Err(Failure::Step(
                step,
                format!(
                    "no word from the deploy agent for {} s ({} of {} bytes written)",
                    quiet.as_secs(),
                    deploy.written,
                    deploy.total
                ),
            ));
        }
        if start.elapsed() >= settings.write_timeout {
            return Err(Failure::Step(
                step,
                format!(
                    "the image was not written within {} s",
                    settings.write_timeout.as_secs()
                ),
            ));
        }
        tokio::time::sleep(POLL).await;
    }
}

/// The agent is done: the token dies, the image is unpublished, the node
/// gets its instance boot (and loses the ramdisk's), then reboots.
async fn finish_instance(run: &Run<'_>, watch: &ConsoleWatch) -> Result<(), Failure> {
    let (engine, node) = (run.engine, run.node);
    run.step(State::Deploying, Step::PrepareInstance)?;
    engine
        .store()
        .end_deploy(&node.name)
        .map_err(store_failure(Step::PrepareInstance))?;
    image::unstage(&engine.lab, node)
        .map_err(|e| Failure::Step(Step::PrepareInstance, e.to_string()))?;
    let fail = |e: crate::boot::BootError| Failure::Step(Step::PrepareInstance, e.to_string());
    // Instance first: with netboot the config keeps its DHCP options.
    engine.boot.prepare_instance(node).map_err(fail)?;
    engine.boot.clean_up_ramdisk(node).map_err(fail)?;

    run.step(State::Deploying, Step::Reboot)?;
    // The login prompt is read off the console: a console still waiting to
    // reconnect (the BMC was away) is asked to try now, before the boot.
    if !watch.ensure_connected(CONSOLE_READY_WAIT).await {
        run.progress(
            Step::Reboot,
            format!(
                "the console is not connected after {} s; the instance's boot may go unseen",
                CONSOLE_READY_WAIT.as_secs()
            ),
            None,
        );
    }
    let mut bmc = Bmc::connect(&engine.consoles, node, engine.lab.deploy.power_timeout)
        .await
        .map_err(|w| Failure::Step(Step::Reboot, w))?;
    let result = async {
        // No override left: petitboot finds no config (local) or the
        // instance's. This also clears a pxe the BMC kept despite "once".
        bmc.set_boot_device(BootDevice::None).await?;
        watch.restart_stages();
        engine.boot_begins(&node.name, super::store::now_ms(), "cycle", Some("none"));
        bmc.power_on_or_cycle().await
    }
    .await;
    bmc.close().await;
    let done = result.map_err(|w| Failure::Step(Step::Reboot, w))?;
    run.reading(true, "none");
    run.progress(Step::Reboot, format!("{done} into the instance"), None);
    run.step(State::Deploying, Step::WaitActive)
}

async fn wait_active(run: &Run<'_>, watch: &ConsoleWatch, limit: Duration) -> Result<(), Failure> {
    let step = Step::WaitActive;
    let start = step_started(run);
    let mut seen = watch.seen();
    let gaps_before = seen.borrow().gaps;
    let mut last_stage = None;
    loop {
        run.check_abort()?;
        let now = seen.borrow_and_update().clone();
        if console_watch::is_up(&now.stage) {
            run.progress(step, "login prompt on the console".into(), Some(1.0));
            return Ok(());
        }
        if let Some(event) = &now.stage {
            if event.stage == crate::console::Stage::Panic {
                return Err(Failure::Step(
                    step,
                    format!("the console shows: {}", event.line),
                ));
            }
            if last_stage != Some(event.stage) {
                last_stage = Some(event.stage);
                run.progress(step, format!("console: {}", event.stage.as_str()), None);
            }
        }
        if let Some(why) = &now.closed {
            // No console to watch (e.g. an admin holds SOL): the power state is all we know.
            run.progress(
                step,
                format!("console unavailable ({why}); the node is powered on, not watched up"),
                None,
            );
            return Ok(());
        }
        if start.elapsed() >= limit {
            let last = now
                .stage
                .as_ref()
                .map_or("nothing recognised".to_string(), |s| {
                    format!("last seen: {}", s.line)
                });
            let unseen = if now.connected {
                ""
            } else {
                "; the console is not connected"
            };
            return Err(Failure::Step(
                step,
                format!(
                    "no login prompt on the console within {} s ({last}{}{unseen})",
                    limit.as_secs(),
                    missed(&now, gaps_before)
                ),
            ));
        }
        let _ = tokio::time::timeout(POLL, seen.changed()).await;
    }
}

/// deploy-failed with the step's reason; the token dies and the image is unpublished.
/// Boot files stay for the admin to look at; undeploy removes them. Returns
/// the reason, for the action's result.
pub(super) fn fail_deploy(run: &Run<'_>, failure: Failure) -> String {
    let reason = failure.reason();
    let trigger = match failure {
        Failure::Aborted(_) => Trigger::Abort,
        Failure::Step(..) => Trigger::Fail,
    };
    let step = run.current_step();
    let _ = run.engine.store().end_deploy(run.name());
    let _ = image::unstage(&run.engine.lab, run.node);
    // The reason alone: whoever shows it names the node and the verdict.
    match run.go(trigger, State::DeployFailed, step, Some(&reason)) {
        Ok(()) => reason,
        Err(f) => format!("{reason} (and recording it failed: {})", f.reason()),
    }
}
