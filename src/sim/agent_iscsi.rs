//! The deploy ramdisk's side of an iSCSI deploy (`deploy_interface=iscsi`
//! in the lookup answer): export the disk as an iSCSI target with a real
//! tgtd, tell petitlab where (`iscsi`), keep heartbeating until the answer
//! says `iscsi=written`, then remove the target. The agent then reads the
//! disk back and reports `done` as after its own write.

use std::path::Path;
use std::time::{Duration, SystemTime};

use tokio::time::MissedTickBehavior;

use super::agent::{Api, Deploy, Halt};
use super::host::Boot;
use super::petitboot::{HostFault, VirtualHost};
use super::tgt::Tgtd;

const TID: u32 = 1;
const LUN: u64 = 1;
/// The virtual disk is at least this big, as a real one would be.
const MIN_DISK: u64 = 64 << 20;
/// How often the fault watcher looks for petitlab's first write.
const WATCH_EVERY: Duration = Duration::from_millis(5);

/// The node's target name: an IQN may hold only lower-case letters,
/// digits, `-`, `.` and `:`.
pub(super) fn target_name(node: &str) -> String {
    let name: String = node
        .to_ascii_lowercase()
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '.' {
                c
            } else {
                '-'
            }
        })
        .collect();
    format!("iqn.2026-11.org.petitlab.sim:{name}")
}

pub(super) async fn export_disk(
    host: &VirtualHost,
    boot: &Boot,
    api: &Api,
    deploy: &Deploy,
) -> Result<(), Halt> {
    let disk = &host.disk;
    let capacity = size_disk(disk, deploy.size)
        .map_err(|e| Halt::Report(format!("cannot prepare the disk {}: {e}", disk.display())))?;
    let log = disk.with_extension("tgtd.log");
    let mut tgtd = Tgtd::start(&log).await.map_err(Halt::Report)?;
    let iqn = target_name(&deploy.node);
    tgtd.export(TID, &iqn, LUN, disk)
        .await
        .map_err(Halt::Report)?;
    let portal = tgtd.portal();
    boot.line(&format!(
        "petitlab-agent: exporting {} ({capacity} bytes) as iSCSI target {iqn} LUN {LUN} on {portal}",
        disk.display()
    ))
    .await;
    let node = format!("node={}\n", deploy.node);
    let body = format!("{node}target={iqn}\nportal={portal}\nlun={LUN}\n");
    api.call(boot, "iscsi", &body).await?;

    let mut vanish = host.fault == HostFault::IscsiTargetVanishes;
    let first_seen = modified(disk);
    let mut ticker = tokio::time::interval(deploy.heartbeat / 2);
    ticker.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let mut watch = tokio::time::interval(WATCH_EVERY);
    loop {
        tokio::select! {
            _ = ticker.tick() => {
                let answer = api.call(boot, "heartbeat", &node).await?;
                if answer.iter().any(|(k, v)| k == "iscsi" && v == "written") {
                    break;
                }
            }
            _ = watch.tick(), if vanish => {
                if modified(disk) != first_seen {
                    vanish = false;
                    // Killed first: printing waits for the console's pace.
                    tgtd.kill().await;
                    boot.line("petitlab-agent: (simulated fault) the iSCSI target vanished mid-write").await;
                    // The agent keeps heartbeating: petitlab must notice on its own.
                }
            }
        }
    }
    let removed = tgtd.delete(TID).await;
    drop(tgtd);
    if let Err(why) = removed {
        return Err(Halt::Report(format!("removing the iSCSI target: {why}")));
    }
    boot.line(&format!(
        "petitlab-agent: petitlab wrote the image; target {iqn} removed"
    ))
    .await;
    Ok(())
}

/// Grows the disk file (sparse) to hold the image: at least [`MIN_DISK`]
/// and a whole MiB. Returns its size.
fn size_disk(disk: &Path, image: u64) -> std::io::Result<u64> {
    if let Some(dir) = disk.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(false)
        .open(disk)?;
    let want = image
        .div_ceil(1 << 20)
        .saturating_mul(1 << 20)
        .max(MIN_DISK);
    let have = file.metadata()?.len();
    if have < want {
        file.set_len(want)?;
    }
    Ok(have.max(want))
}

fn modified(disk: &Path) -> Option<SystemTime> {
    std::fs::metadata(disk).and_then(|m| m.modified()).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn target_names_are_valid_iqns() {
        assert_eq!(target_name("n1"), "iqn.2026-11.org.petitlab.sim:n1");
        assert_eq!(
            target_name("P9_Rack1 01"),
            "iqn.2026-11.org.petitlab.sim:p9-rack1-01"
        );
        assert!(crate::inventory::valid_iscsi_name(&target_name("a b")));
    }

    #[test]
    fn the_disk_grows_to_hold_the_image_and_never_shrinks() {
        let dir = tempfile::tempdir().unwrap();
        let disk = dir.path().join("d/disk.img");
        assert_eq!(size_disk(&disk, 10).unwrap(), MIN_DISK);
        assert_eq!(
            size_disk(&disk, MIN_DISK + 1).unwrap(),
            MIN_DISK + (1 << 20)
        );
        assert_eq!(size_disk(&disk, 1).unwrap(), MIN_DISK + (1 << 20));
        assert_eq!(
            std::fs::metadata(&disk).unwrap().len(),
            MIN_DISK + (1 << 20)
        );
    }
}
