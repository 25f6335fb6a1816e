//! SIGKILL `petitlab prepare-ramdisk --all` at moments spread over its run:
//! every file that exists afterwards must be complete (a config exactly as
//! rendered, a staged ramdisk byte for byte), and a later run must finish
//! the job and sweep the dead run's temp files.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

const NODES: usize = 40;
const RAMDISK_BYTES: usize = 2 << 20;
const KILLS: u32 = 16;

fn petitlab(lab: &Path) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_petitlab"));
    cmd.arg("--lab").arg(lab);
    cmd
}

/// Run `cmd` to completion; it must succeed.
fn run_ok(cmd: &mut Command) -> std::process::Output {
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// A whole `prepare-ramdisk --all`, which must succeed.
fn prepare_all(lab: &Path) {
    run_ok(petitlab(lab).args(["prepare-ramdisk", "--all"]));
}

/// Artifacts live on tmpfs when it exists, so staging copies (a copy can be
/// cut short) instead of hard-linking (which is instant).
fn artifact_dir() -> tempfile::TempDir {
    tempfile::tempdir_in("/dev/shm").unwrap_or_else(|_| tempfile::tempdir().unwrap())
}

fn write_lab(dir: &Path, artifacts: &Path) -> PathBuf {
    let ramdisk: Vec<u8> = (0..RAMDISK_BYTES).map(|i| (i * 7 % 251) as u8).collect();
    fs::write(artifacts.join("initrd"), ramdisk).unwrap();
    fs::write(artifacts.join("vmlinux"), b"kernel").unwrap();
    fs::write(artifacts.join("disk.img"), b"disk").unwrap();
    fs::write(dir.join("pw"), "pw").unwrap();
    // 0600, as a real password file should be (no warning noise).
    let private = std::os::unix::fs::PermissionsExt::from_mode(0o600);
    fs::set_permissions(dir.join("pw"), private).unwrap();
    let mut text = "state_dir = \"state\"\n[http]\nbase_url = \"http://10.77.0.1:8080/\"\n\
                    [dhcp]\nbackend = \"dnsmasq\"\n"
        .to_string();
    let a = artifacts.display();
    for i in 0..NODES {
        text.push_str(&format!(
            "[[node]]\nname = \"n{i}\"\nmacs = [\"52:54:00:00:10:{i:02x}\"]\nipv4 = \"10.77.2.{}\"\n\
             [node.bmc]\nhost = \"h\"\nusername = \"u\"\npassword_file = \"pw\"\n\
             [node.deploy]\nkernel = \"{a}/vmlinux\"\nramdisk = \"{a}/initrd\"\n\
             [node.instance]\nimage = \"{a}/disk.img\"\n",
            i + 1
        ));
    }
    let lab = dir.join("lab.toml");
    fs::write(&lab, text).unwrap();
    lab
}

/// Every file petitlab may write, with the exact content it must have.
fn expected_files(lab: &Path, artifacts: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    let ramdisk = fs::read(artifacts.join("initrd")).unwrap();
    let mut files = BTreeMap::new();
    for i in 0..NODES {
        let out = run_ok(petitlab(lab).args(["--json", "render", &format!("n{i}")]));
        let r: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        let config = r["rendered"]["config"]
            .as_str()
            .unwrap()
            .as_bytes()
            .to_vec();
        files.insert(
            PathBuf::from(r["rendered"]["config_path"].as_str().unwrap()),
            config.clone(),
        );
        for p in r["rendered"]["discovery_paths"].as_array().unwrap() {
            files.insert(PathBuf::from(p.as_str().unwrap()), config.clone());
        }
        for f in r["dhcp_files"].as_array().unwrap() {
            let content = f["content"].as_str().unwrap().as_bytes().to_vec();
            files.insert(PathBuf::from(f["path"].as_str().unwrap()), content);
        }
        for pair in r["rendered"]["artifacts"].as_array().unwrap() {
            let staged = PathBuf::from(pair[1].as_str().unwrap());
            let source = fs::read(pair[0].as_str().unwrap()).unwrap();
            assert!(source == ramdisk || source == b"kernel");
            files.insert(staged, source);
        }
    }
    files
}

fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    for e in entries {
        let p = e.unwrap().path();
        if p.is_dir() {
            walk(&p, out)
        } else {
            out.push(p)
        }
    }
}

fn is_temp(path: &Path) -> bool {
    path.file_name()
        .unwrap()
        .to_string_lossy()
        .contains(".petitlab-tmp.")
}

/// Every non-temp file is complete and known; returns the temp files seen.
fn check_tree(state: &Path, expected: &BTreeMap<PathBuf, Vec<u8>>) -> usize {
    let mut files = Vec::new();
    walk(state, &mut files);
    let mut temps = 0;
    for path in files {
        if is_temp(&path) {
            temps += 1;
            continue;
        }
        if path.extension().is_some_and(|e| e == "json") {
            let bytes = fs::read(&path).unwrap();
            serde_json::from_slice::<serde_json::Value>(&bytes)
                .unwrap_or_else(|e| panic!("torn manifest {}: {e}", path.display()));
            continue;
        }
        let want = expected
            .get(&path)
            .unwrap_or_else(|| panic!("unexpected file {}", path.display()));
        let got = fs::read(&path).unwrap();
        assert!(
            got == *want,
            "{} is incomplete: {} of {} bytes",
            path.display(),
            got.len(),
            want.len()
        );
    }
    temps
}

#[test]
fn killing_prepare_never_leaves_a_half_written_file() {
    let tmp = tempfile::tempdir().unwrap();
    let artifacts = artifact_dir();
    let lab = write_lab(tmp.path(), artifacts.path());
    let state = tmp.path().join("state");
    let expected = expected_files(&lab, artifacts.path());

    // How long a whole run from nothing takes here (after a warm-up run),
    // to spread the kills over it.
    let mut full = std::time::Duration::ZERO;
    for _ in 0..2 {
        let _ = fs::remove_dir_all(&state);
        let start = Instant::now();
        prepare_all(&lab);
        full = start.elapsed();
        assert_eq!(check_tree(&state, &expected), 0);
    }

    let mut killed_mid_run = 0;
    let mut temps_left = 0;
    for i in 0..KILLS {
        // Half the runs start from nothing, half replace a previous run's files.
        if i % 2 == 0 {
            fs::remove_dir_all(&state).unwrap();
        }
        // Spread over the first 80% of a run, so most kills land mid-run.
        let delay = full.mul_f64(0.8 * (f64::from(i) + 0.5) / f64::from(KILLS));
        let mut child = petitlab(&lab)
            .args(["prepare-ramdisk", "--all"])
            .stdout(std::process::Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(delay);
        if child.try_wait().unwrap().is_none() {
            killed_mid_run += 1;
        }
        child.kill().unwrap();
        child.wait().unwrap();
        temps_left += check_tree(&state, &expected);
    }
    assert!(
        killed_mid_run >= KILLS / 2,
        "only {killed_mid_run} of {KILLS} kills landed mid-run (full run {full:?})"
    );

    // A complete run afterwards finishes the job and sweeps dead runs' temps.
    prepare_all(&lab);
    assert_eq!(
        check_tree(&state, &expected),
        0,
        "temp files left after a full run"
    );
    let mut files = Vec::new();
    walk(&state, &mut files);
    for path in expected.keys() {
        assert!(
            files.contains(path),
            "{} missing after a full run",
            path.display()
        );
    }
    eprintln!(
        "full run {full:?}; {killed_mid_run}/{KILLS} kills mid-run; {temps_left} temp files seen after kills"
    );
}
