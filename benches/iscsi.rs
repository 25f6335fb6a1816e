//! iSCSI speed against a real tgtd on 127.0.0.1 (a 256 MiB file-backed
//! LUN), in the same run:
//! - sequential READ of 1 MiB per command, one in flight: petitlab's
//!   initiator against libiscsi's `iscsi-perf -b 2048 -m 1` (the peer), ratio;
//! - petitlab's WRITE rate, and a whole `write_image` (write, SYNCHRONIZE
//!   CACHE, read back, SHA-256 of both), which is what a deploy costs.
//!
//! `cargo bench --bench iscsi` (env RUNS=N pairs, default 5; as root, for tgtd).
//! Needs tgt and libiscsi-bin.

#[path = "../tests/support/pairs.rs"]
mod pairs;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use petitlab::demo::filler;
use petitlab::iscsi::{self, LoginOptions, Portal, Session};
use petitlab::sim::tgt::Tgtd;

const LUN_BYTES: u64 = 256 << 20;
const TARGET: &str = "iqn.2026-11.org.petitlab:bench";
const CHUNK_BLOCKS: u32 = 2048;
const PERF_SECONDS: u64 = 5;

fn require(binary: &str, package: &str) {
    let found = Command::new("sh")
        .args(["-c", &format!("command -v {binary}")])
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    assert!(found, "{binary} is missing: apt-get install {package}");
}

fn mb_per_s(bytes: u64, d: Duration) -> f64 {
    bytes as f64 / 1e6 / d.as_secs_f64()
}

/// libiscsi's sequential read for PERF_SECONDS: its final "iops average N (M MB/s)".
fn iscsi_perf(portal: &Portal) -> f64 {
    let url = format!("iscsi://{}/{TARGET}/1", portal.addr);
    let out = Command::new("iscsi-perf")
        .args(["-t", &PERF_SECONDS.to_string()])
        .args(["-b", &CHUNK_BLOCKS.to_string(), "-m", "1", &url])
        .output()
        .expect("run iscsi-perf");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "iscsi-perf failed: {text}");
    let last = text
        .rsplit("iops average")
        .next()
        .expect("an iops average line");
    let mb = last
        .split('(')
        .nth(1)
        .and_then(|s| s.split_whitespace().next())
        .and_then(|n| n.parse::<f64>().ok())
        .unwrap_or_else(|| panic!("no MB/s in iscsi-perf's output: {text}"));
    // iscsi-perf's MB is 2^20 bytes.
    mb * 1_048_576.0 / 1e6
}

async fn login(portal: &Portal) -> Session {
    Session::login(portal, &LoginOptions::new(TARGET, 1))
        .await
        .unwrap_or_else(|e| panic!("login: {e}"))
}

/// petitlab's sequential read for PERF_SECONDS, wrapping at the LUN's end.
async fn our_read(portal: &Portal) -> f64 {
    let mut session = login(portal).await;
    let (blocks, block_size) = session.capacity().await.unwrap();
    let (start, mut lba, mut bytes) = (Instant::now(), 0u64, 0u64);
    while start.elapsed() < Duration::from_secs(PERF_SECONDS) {
        if lba + u64::from(CHUNK_BLOCKS) > blocks {
            lba = 0;
        }
        let data = session.read(lba, CHUNK_BLOCKS).await.unwrap();
        bytes += data.len() as u64;
        lba += u64::from(CHUNK_BLOCKS);
    }
    let rate = mb_per_s(bytes, start.elapsed());
    assert!(bytes >= u64::from(CHUNK_BLOCKS) * u64::from(block_size));
    session.logout().await.unwrap();
    rate
}

/// petitlab writing the whole LUN, 1 MiB per command.
async fn our_write(portal: &Portal, data: &[u8]) -> f64 {
    let mut session = login(portal).await;
    let per = CHUNK_BLOCKS as usize * 512;
    let start = Instant::now();
    for (i, chunk) in data.chunks(per).enumerate() {
        session
            .write(i as u64 * u64::from(CHUNK_BLOCKS), chunk)
            .await
            .unwrap();
    }
    session.synchronize_cache().await.unwrap();
    let rate = mb_per_s(data.len() as u64, start.elapsed());
    session.logout().await.unwrap();
    rate
}

/// A deploy's whole write: write, flush, read back, both hashed.
async fn our_write_image(portal: &Portal, data: &[u8]) -> f64 {
    let mut session = login(portal).await;
    let start = Instant::now();
    let mut source = data;
    iscsi::write_image(&mut session, &mut source, data.len() as u64, |_, _| {})
        .await
        .unwrap();
    let rate = mb_per_s(data.len() as u64, start.elapsed());
    session.logout().await.unwrap();
    rate
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    require("tgtd", "tgt");
    require("iscsi-perf", "libiscsi-bin");
    let runs: usize = std::env::var("RUNS")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(5);
    let dir = tempfile::tempdir().unwrap();
    let backing = dir.path().join("lun.img");
    std::fs::File::create(&backing)
        .unwrap()
        .set_len(LUN_BYTES)
        .unwrap();
    let tgtd = Tgtd::start(&dir.path().join("tgtd.log"))
        .await
        .unwrap_or_else(|why| panic!("{why}"));
    tgtd.export(1, TARGET, 1, &backing).await.unwrap();
    let portal = Portal {
        addr: tgtd.portal(),
    };
    let data = filler(42, LUN_BYTES as usize);
    // Fill the LUN once so reads come from allocated blocks.
    our_write(&portal, &data).await;

    let (mut reads, mut writes, mut images) = (pairs::Pairs::default(), vec![], vec![]);
    let load_before = pairs::loadavg();
    for run in 1..=runs {
        // Interleaved, and who goes first alternates.
        let (ours, peer) = if run % 2 == 1 {
            let peer = iscsi_perf(&portal);
            (our_read(&portal).await, peer)
        } else {
            let ours = our_read(&portal).await;
            (ours, iscsi_perf(&portal))
        };
        reads.push(ours, peer);
        writes.push(our_write(&portal, &data).await);
        images.push(our_write_image(&portal, &data).await);
    }
    println!(
        "iSCSI against tgtd on 127.0.0.1, {runs} interleaved pairs, 1 MiB per command, one in flight \
         (load average {load_before} at start, {} at end):",
        pairs::loadavg()
    );
    reads.report("sequential read", "petitlab", "libiscsi iscsi-perf", "MB/s");
    println!("  write (petitlab): {:.0} MB/s", pairs::median(writes));
    println!(
        "  write_image (write + flush + read back + sha256 of both): {:.0} MB/s of image",
        pairs::median(images)
    );
}
