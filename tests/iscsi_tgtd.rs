//! petitlab's iSCSI initiator against a real target: Debian's tgt (tgtd +
//! tgtadm). Each test starts its own tgtd on a private loopback portal and
//! control socket (with the launcher the virtual lab uses), exports a
//! file-backed LUN from a temp dir, and kills the daemon on drop. Needs root (tgtd); it fails, never skips, when tgtd
//! cannot start.

use std::fs;
use std::io::{Read, Seek, SeekFrom};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use petitlab::demo::filler;
use petitlab::iscsi::{self, IscsiError, LoginOptions, Portal, Session};
use petitlab::sim::tgt;
use sha2::{Digest, Sha256};

const TARGET: &str = "iqn.2026-11.org.petitlab:test";
const MIB: usize = 1 << 20;
const BLOCK: usize = 512;

/// A tgtd of our own (petitlab's launcher, `sim::tgt`) with target 1 /
/// LUN 1 backed by a sparse file.
struct Tgtd {
    tgtd: tgt::Tgtd,
    backing: PathBuf,
    _dir: tempfile::TempDir,
}

impl Tgtd {
    /// Starts tgtd and exports the target; panics with tgtd's own words
    /// when it cannot.
    async fn start(lun_bytes: u64) -> Tgtd {
        let dir = tempfile::tempdir().expect("temp dir");
        let backing = dir.path().join("lun.img");
        let file = fs::File::create(&backing).expect("create the backing file");
        file.set_len(lun_bytes).expect("size the backing file");
        let tgtd = tgt::Tgtd::start(&dir.path().join("tgtd.log"))
            .await
            .unwrap_or_else(|why| panic!("{why} (apt-get install tgt; run as root)"));
        tgtd.export(1, TARGET, 1, &backing)
            .await
            .unwrap_or_else(|why| panic!("exporting the LUN: {why}"));
        Tgtd {
            tgtd,
            backing,
            _dir: dir,
        }
    }

    async fn set_param(&self, name: &str, value: &str) {
        let args = ["--op", "update", "--mode", "target", "--tid", "1"];
        self.tgtd
            .adm(&[&args[..], &["--name", name, "--value", value]].concat())
            .await
            .unwrap_or_else(|why| panic!("{why}"));
    }

    fn portal(&self) -> Portal {
        Portal {
            addr: self.tgtd.portal(),
        }
    }

    fn file_bytes(&self, offset: u64, len: usize) -> Vec<u8> {
        let mut file = fs::File::open(&self.backing).expect("open the backing file");
        file.seek(SeekFrom::Start(offset))
            .expect("seek the backing file");
        let mut buf = vec![0u8; len];
        file.read_exact(&mut buf).expect("read the backing file");
        buf
    }
}

fn options(target: &str, timeout: Duration) -> LoginOptions {
    LoginOptions {
        timeout,
        ..LoginOptions::new(target, 1)
    }
}

async fn login(tgtd: &Tgtd) -> Session {
    match Session::login(&tgtd.portal(), &options(TARGET, Duration::from_secs(10))).await {
        Ok(session) => session,
        Err(e) => panic!("login to tgtd failed: {e}"),
    }
}

fn sha256_hex(data: &[u8]) -> String {
    Sha256::digest(data)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn report(test: &str, started: Instant) {
    eprintln!("{test}: {:.2?}", started.elapsed());
}

fn must<T>(result: Result<T, IscsiError>, what: &str) -> T {
    result.unwrap_or_else(|e| panic!("{what}: {e}"))
}

#[tokio::test]
async fn login_and_capacity_match_the_backing_file() {
    let started = Instant::now();
    let tgtd = Tgtd::start(8 * MIB as u64).await;
    let mut session = login(&tgtd).await;
    let (blocks, block_size) = must(session.capacity().await, "capacity");
    let file_len = fs::metadata(&tgtd.backing).expect("backing file").len();
    assert_eq!(block_size as usize, BLOCK);
    assert_eq!(blocks * u64::from(block_size), file_len);
    assert_ne!(session.tsih(), 0, "tgtd assigns a session handle");
    // tgtd's defaults, as it answered them.
    let p = *session.negotiated();
    assert_eq!(p.max_send_segment, 8192);
    assert_eq!((p.first_burst, p.max_burst), (65_536, 262_144));
    assert!(p.initial_r2t && p.immediate_data, "{p:?}");
    must(session.logout().await, "logout");
    report("login_and_capacity_match_the_backing_file", started);
}

#[tokio::test]
async fn patterned_writes_read_back_and_land_on_disk() {
    let started = Instant::now();
    let tgtd = Tgtd::start(8 * MIB as u64).await;
    let mut session = login(&tgtd).await;
    let first = filler(1, 3 * MIB);
    let second = filler(2, 3 * MIB);
    let odd_lba = 8191u64;
    let blocks = (3 * MIB / BLOCK) as u32;
    must(session.write(0, &first).await, "write at LBA 0");
    must(session.write(odd_lba, &second).await, "write at an odd LBA");
    let back = must(session.read(0, blocks).await, "read at LBA 0");
    assert!(back == first, "LBA 0 reads back different bytes");
    let back = must(session.read(odd_lba, blocks).await, "read at an odd LBA");
    assert!(back == second, "LBA {odd_lba} reads back different bytes");
    must(session.logout().await, "logout");
    assert!(
        tgtd.file_bytes(0, 3 * MIB) == first,
        "file differs at LBA 0"
    );
    let at = odd_lba * BLOCK as u64;
    assert!(
        tgtd.file_bytes(at, 3 * MIB) == second,
        "file differs at LBA {odd_lba}"
    );
    report("patterned_writes_read_back_and_land_on_disk", started);
}

#[tokio::test]
async fn writes_follow_what_the_target_negotiates() {
    let started = Instant::now();
    let tgtd = Tgtd::start(8 * MIB as u64).await;
    // Small segments and bursts; then each combination of InitialR2T and
    // ImmediateData: immediate data, unsolicited Data-Out, R2T only.
    tgtd.set_param("MaxRecvDataSegmentLength", "4096").await;
    tgtd.set_param("FirstBurstLength", "16384").await;
    tgtd.set_param("MaxBurstLength", "32768").await;
    let combos = [("No", "Yes"), ("No", "No"), ("Yes", "No"), ("Yes", "Yes")];
    for (i, (initial_r2t, immediate)) in combos.into_iter().enumerate() {
        tgtd.set_param("InitialR2T", initial_r2t).await;
        tgtd.set_param("ImmediateData", immediate).await;
        let mut session = login(&tgtd).await;
        let p = *session.negotiated();
        assert_eq!(p.max_send_segment, 4096);
        assert_eq!((p.first_burst, p.max_burst), (16_384, 32_768));
        assert_eq!(p.initial_r2t, initial_r2t == "Yes", "{p:?}");
        assert_eq!(p.immediate_data, immediate == "Yes", "{p:?}");
        let data = filler(10 + i as u64, MIB + 3 * BLOCK);
        let lba = 101 + 3001 * i as u64;
        must(session.write(lba, &data).await, "write");
        let back = must(session.read(lba, (data.len() / BLOCK) as u32).await, "read");
        assert!(
            back == data,
            "InitialR2T={initial_r2t} ImmediateData={immediate}: differs"
        );
        // A write smaller than the first burst, and one of a single block.
        let small = filler(20 + i as u64, 8 * BLOCK);
        must(session.write(lba, &small).await, "small write");
        must(
            session.write(lba + 8, &small[..BLOCK]).await,
            "one-block write",
        );
        must(session.logout().await, "logout");
        let on_disk = tgtd.file_bytes(lba * BLOCK as u64, data.len());
        assert!(on_disk[..8 * BLOCK] == small[..], "small write not on disk");
        assert!(
            on_disk[8 * BLOCK..9 * BLOCK] == small[..BLOCK],
            "block write not on disk"
        );
        assert!(
            on_disk[9 * BLOCK..] == data[9 * BLOCK..],
            "large write not on disk"
        );
    }
    report("writes_follow_what_the_target_negotiates", started);
}

#[tokio::test]
async fn write_image_returns_the_sha256_of_the_source() {
    let started = Instant::now();
    let tgtd = Tgtd::start(8 * MIB as u64).await;
    let mut session = login(&tgtd).await;
    let len = 5 * MIB / 2 + 123;
    let image = filler(7, len);
    // Dirty the blocks at the image's end so the zero padding shows.
    let last_block = (len / BLOCK) as u64;
    must(session.write(last_block, &[0xff; 2 * BLOCK]).await, "dirty");
    let mut progress = Vec::new();
    let sha = iscsi::write_image(&mut session, &mut &image[..], len as u64, |done, total| {
        progress.push((done, total))
    })
    .await;
    let sha = must(sha, "write_image");
    assert_eq!(sha, sha256_hex(&image));
    assert_eq!(progress.last(), Some(&(len as u64, len as u64)));
    assert_eq!(
        progress.len(),
        len.div_ceil(MIB),
        "one call per 1 MiB chunk"
    );
    assert!(progress.windows(2).all(|w| w[0].0 < w[1].0), "{progress:?}");
    must(session.logout().await, "logout");
    let padded = len.div_ceil(BLOCK) * BLOCK;
    let disk = tgtd.file_bytes(0, padded + BLOCK);
    assert!(disk[..len] == image[..], "image not on disk");
    assert!(
        disk[len..padded].iter().all(|&b| b == 0),
        "last block not zero-padded"
    );
    assert!(
        disk[padded..].iter().all(|&b| b == 0xff),
        "block after the image touched"
    );
    report("write_image_returns_the_sha256_of_the_source", started);
}

#[tokio::test]
async fn wrong_target_name_is_a_login_error_naming_it() {
    let started = Instant::now();
    let tgtd = Tgtd::start(MIB as u64).await;
    let wrong = "iqn.2026-11.org.petitlab:no-such-target";
    let result = Session::login(&tgtd.portal(), &options(wrong, Duration::from_secs(10))).await;
    let err = match result {
        Ok(_) => panic!("login to {wrong} succeeded"),
        Err(e) => e,
    };
    let text = err.to_string();
    assert!(
        matches!(
            err,
            IscsiError::LoginRefused {
                class: 2,
                detail: 3,
                ..
            }
        ),
        "{text}"
    );
    assert!(
        text.contains(wrong) && text.contains("target not found"),
        "{text}"
    );
    // The right name still works on the same tgtd.
    must(login(&tgtd).await.logout().await, "logout");
    report("wrong_target_name_is_a_login_error_naming_it", started);
}

#[tokio::test]
async fn commands_beyond_the_end_report_sense_and_keep_the_session() {
    let started = Instant::now();
    let tgtd = Tgtd::start(MIB as u64).await;
    let mut session = login(&tgtd).await;
    let (blocks, _) = must(session.capacity().await, "capacity");
    let err = session.write(blocks - 1, &[1; 2 * BLOCK]).await.err();
    let text = err.as_ref().map(|e| e.to_string()).unwrap_or_default();
    let sense = err.and_then(|e| e.sense());
    assert_eq!(sense.map(|s| (s.key, s.asc)), Some((0x05, 0x21)), "{text}");
    assert!(
        text.contains("WRITE(16)") && text.contains("ILLEGAL REQUEST"),
        "{text}"
    );
    let err = session.read(blocks, 1).await.err();
    assert_eq!(err.and_then(|e| e.sense()).map(|s| s.key), Some(0x05));
    // A CHECK CONDITION leaves the session usable.
    must(session.write(blocks - 1, &[2; BLOCK]).await, "last block");
    assert_eq!(
        must(session.read(blocks - 1, 1).await, "read"),
        vec![2; BLOCK]
    );
    let err = session.write(0, &[0; 100]).await.err();
    assert!(
        matches!(err, Some(IscsiError::Invalid(_))),
        "partial block accepted"
    );
    must(session.logout().await, "logout");
    report(
        "commands_beyond_the_end_report_sense_and_keep_the_session",
        started,
    );
}

enum Interruption {
    DeleteTarget,
    KillTgtd,
}

/// Runs a 64 MiB write_image fed through a pipe; after 4 MiB the feeder
/// interrupts the target, then keeps feeding. The write must fail, within
/// the timeout, and leave the session refusing further commands.
async fn interrupted_write_image(how: Interruption, test: &str) {
    let started = Instant::now();
    let mut tgtd = Tgtd::start(64 * MIB as u64).await;
    let timeout = Duration::from_secs(5);
    let mut session = must(
        Session::login(&tgtd.portal(), &options(TARGET, timeout)).await,
        "login",
    );
    let len = 64 * MIB;
    let (mut feed, mut image) = tokio::io::duplex(256 * 1024);
    let mut interrupt = match how {
        Interruption::DeleteTarget => {
            let mut cmd = tokio::process::Command::new("tgtadm");
            let control = tgtd.tgtd.control().to_string();
            cmd.args(["-C", &control, "--lld", "iscsi"]).args([
                "--op", "delete", "--force", "--mode", "target", "--tid", "1",
            ]);
            cmd
        }
        Interruption::KillTgtd => {
            let mut cmd = tokio::process::Command::new("kill");
            let pid = tgtd.tgtd.pid().expect("tgtd runs");
            cmd.args(["-KILL", &pid.to_string()]);
            cmd
        }
    };
    let feeder = tokio::spawn(async move {
        use tokio::io::AsyncWriteExt;
        let chunk = filler(3, MIB);
        let mut interrupted = None;
        for i in 0..len / MIB {
            if i == 4 {
                interrupted = Some(interrupt.output().await);
            }
            if feed.write_all(&chunk).await.is_err() {
                break;
            }
        }
        interrupted
    });
    let written = Arc::new(AtomicU64::new(0));
    let seen = written.clone();
    let result = iscsi::write_image(&mut session, &mut image, len as u64, move |done, _| {
        seen.store(done, Ordering::SeqCst)
    })
    .await;
    let elapsed = started.elapsed();
    drop(image);
    let interrupted = feeder.await.expect("feeder task");
    let out = match interrupted {
        Some(Ok(out)) => out,
        Some(Err(e)) => panic!("cannot interrupt the target: {e}"),
        None => panic!("the write failed before the target was interrupted: {result:?}"),
    };
    assert!(
        out.status.success(),
        "interrupting: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let err = match result {
        Ok(sha) => panic!("write_image survived the interruption (sha256 {sha})"),
        Err(e) => e,
    };
    eprintln!(
        "{test}: error after {:?} and {} bytes: {err}",
        elapsed,
        written.load(Ordering::SeqCst)
    );
    // Interrupted once 4 MiB were fed: the pipe holds 256 KiB and the chunk in
    // flight is not counted yet, so at least 3 MiB were reported written.
    assert!(written.load(Ordering::SeqCst) >= 3 * MIB as u64);
    assert!(
        elapsed < timeout * 3,
        "took {elapsed:?}, timeout {timeout:?}"
    );
    let again = session.read(0, 1).await.err();
    assert!(
        matches!(again, Some(IscsiError::Broken { .. })),
        "{again:?}"
    );
    tgtd.tgtd.kill().await;
    report(test, started);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn target_deleted_mid_write_is_an_error_not_a_hang() {
    interrupted_write_image(
        Interruption::DeleteTarget,
        "target_deleted_mid_write_is_an_error_not_a_hang",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tgtd_killed_mid_write_is_an_error_not_a_hang() {
    interrupted_write_image(
        Interruption::KillTgtd,
        "tgtd_killed_mid_write_is_an_error_not_a_hang",
    )
    .await;
}
