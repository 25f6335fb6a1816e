//! The iSCSI deploy interface (the petitboot spec's `iscsi_opc`): the deploy
//! ramdisk exports its disk as an iSCSI target and says where (`/v1/iscsi`);
//! petitlab writes the raw image to it, flushes it, reads it back and marks
//! it written. The ramdisk hears that in its heartbeat answer, removes its
//! target, checks its own disk and reports `done` as the agent does, so the
//! rest of the deploy is the agent's.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use super::action::{Failure, POLL, Run, store_failure};
use super::deploy::{agent_record, quiet_for, step_started};
use super::image;
use super::lifecycle::Step;
use super::store::{AgentResult, Deploy, IscsiTarget};
use crate::iscsi::{self, LoginOptions, Portal, Session};

const STEP: Step = Step::WriteImage;
/// Progress events at most this often.
const PROGRESS_EVERY: Duration = Duration::from_millis(500);

/// Writes the image to the target the ramdisk exports, unless a previous
/// run (before a restart) already did.
pub(super) async fn write_image(run: &Run<'_>) -> Result<(), Failure> {
    let Some((target, deploy)) = wait_for_target(run).await? else {
        run.progress(
            STEP,
            "the image was already written over iSCSI".into(),
            None,
        );
        return Ok(());
    };
    let (size, expected) = (deploy.image_size, deploy.image_sha256);
    let fail = |why: String| Failure::Step(STEP, why);
    let portal: SocketAddr = target.portal.parse().map_err(|_| {
        fail(format!(
            "the ramdisk's portal {} is not ip:port",
            target.portal
        ))
    })?;
    let settings = &run.engine.lab.iscsi;
    let options = LoginOptions {
        initiator_name: settings.initiator_name.clone(),
        target_name: target.target.clone(),
        lun: target.lun,
        timeout: settings.timeout,
    };
    let path = image::raw_path(&run.engine.lab, run.node);
    let mut file = tokio::fs::File::open(&path)
        .await
        .map_err(|e| fail(format!("cannot open the raw image {}: {e}", path.display())))?;
    run.progress(
        STEP,
        format!(
            "writing {size} bytes to iSCSI target {} at {portal} LUN {}",
            target.target, target.lun
        ),
        Some(0.0),
    );
    let mut session = Session::login(&Portal { addr: portal }, &options)
        .await
        .map_err(|e| fail(e.to_string()))?;
    let mut last = Instant::now();
    let report = |written: u64, total: u64| {
        if last.elapsed() >= PROGRESS_EVERY || written == total {
            last = Instant::now();
            let message = format!("{written} of {total} bytes written over iSCSI");
            run.progress(STEP, message, Some(written as f64 / total.max(1) as f64));
        }
    };
    let write = iscsi::write_image(&mut session, &mut file, size, report);
    let read_back = watched(run, write)
        .await?
        .map_err(|e| fail(e.to_string()))?;
    // The write is verified; a failed logout loses nothing.
    let _ = session.logout().await;
    if read_back != expected {
        return Err(fail(format!(
            "read back over iSCSI sha256 {read_back}, the image is {expected}"
        )));
    }
    let mut store = run.engine.store();
    store
        .iscsi_written(run.name(), &read_back)
        .map_err(store_failure(STEP))?;
    let detail = format!(
        "{size} bytes to {} at {portal} LUN {}, read back sha256 {read_back}",
        target.target, target.lun
    );
    let event = run.engine.event(run.name(), "iscsi-write", "ok", &detail);
    store.append_event(&event).map_err(store_failure(STEP))?;
    drop(store);
    run.progress(
        STEP,
        "image written and read back over iSCSI; waiting for the ramdisk to release its disk"
            .into(),
        Some(1.0),
    );
    Ok(())
}

/// Runs `work` while checking for an abort and the write timeout.
async fn watched<T>(
    run: &Run<'_>,
    work: impl std::future::Future<Output = T>,
) -> Result<T, Failure> {
    let limit = run.engine.lab.deploy.write_timeout;
    let start = step_started(run);
    tokio::pin!(work);
    loop {
        tokio::select! {
            done = &mut work => return Ok(done),
            _ = tokio::time::sleep(POLL) => {
                run.check_abort()?;
                if start.elapsed() >= limit {
                    return Err(Failure::Step(STEP, format!(
                        "the image was not written within {} s", limit.as_secs()
                    )));
                }
            }
        }
    }
}

/// The target the ramdisk reported, with the deploy record it is in, or
/// `None` when the image is already written. Fails when the ramdisk reports
/// a failure or falls silent.
async fn wait_for_target(run: &Run<'_>) -> Result<Option<(IscsiTarget, Deploy)>, Failure> {
    let settings = run.engine.lab.deploy;
    let silence = settings.heartbeat * 3;
    let start = step_started(run);
    let mut said = false;
    loop {
        run.check_abort()?;
        let deploy = agent_record(run, STEP)?;
        if let Some(AgentResult::Failed { reason }) = deploy.result {
            return Err(Failure::Step(
                STEP,
                format!("the deploy ramdisk failed: {reason}"),
            ));
        }
        if deploy.iscsi_written_sha256.is_some() || deploy.result.is_some() {
            return Ok(None);
        }
        if let Some(target) = deploy.iscsi.clone() {
            return Ok(Some((target, deploy)));
        }
        if !said {
            said = true;
            let message = "waiting for the deploy ramdisk to export its disk over iSCSI";
            run.progress(STEP, message.into(), None);
        }
        let quiet = quiet_for(&deploy);
        if quiet > silence {
            return Err(Failure::Step(
                STEP,
                format!(
                    "no word from the deploy ramdisk for {} s, and no iSCSI target reported",
                    quiet.as_secs()
                ),
            ));
        }
        if start.elapsed() >= settings.write_timeout {
            return Err(Failure::Step(
                STEP,
                format!(
                    "no iSCSI target reported within {} s",
                    settings.write_timeout.as_secs()
                ),
            ));
        }
        tokio::time::sleep(POLL).await;
    }
}
