//! `petitlab check` on real files: the shipped example passes; each bad
//! inventory under tests/inventories yields exactly its expected errors, and
//! no command writes anything for it.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

fn petitlab(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_petitlab"))
        .current_dir(dir)
        .env_remove("PETITLAB_TEST_SURELY_UNSET")
        .args(args)
        .output()
        .expect("run petitlab")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Copy of tests/inventories in a temp dir, so "nothing written" can be checked.
fn inventories_copy() -> tempfile::TempDir {
    let tmp = tempfile::tempdir().unwrap();
    let status = Command::new("cp")
        .arg("-a")
        .arg(repo().join("tests/inventories/."))
        .arg(tmp.path())
        .status()
        .unwrap();
    assert!(status.success());
    tmp
}

fn listing(dir: &Path) -> Vec<String> {
    let out = Command::new("find").arg(dir).output().unwrap();
    let mut lines: Vec<String> = text(&out.stdout).lines().map(str::to_string).collect();
    lines.sort();
    lines
}

/// An expected line matches an error line when all its ` ... `-separated
/// fragments appear in it, in order.
fn matches(expected: &str, line: &str) -> bool {
    let mut rest = line;
    for fragment in expected.split(" ... ") {
        match rest.find(fragment) {
            Some(at) => rest = &rest[at + fragment.len()..],
            None => return false,
        }
    }
    true
}

#[test]
fn the_shipped_example_passes_check() {
    let out = petitlab(&repo(), &["check", "lab.toml.example"]);
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{stdout}{}", text(&out.stderr));
    assert!(
        stdout.contains("lab.toml.example: ok, 4 node(s)"),
        "{stdout}"
    );
    assert!(!stdout.contains("error:"), "{stdout}");
    // Derived uuids are shown.
    assert!(stdout.contains("note: node p9-rack1-02: uuid "), "{stdout}");
}

#[test]
fn every_bad_inventory_reports_every_expected_error() {
    let tmp = inventories_copy();
    let dir = tmp.path();
    let mut checked = 0;
    for entry in fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_none_or(|e| e != "toml") {
            continue;
        }
        let name = path.file_name().unwrap().to_str().unwrap();
        let expected = fs::read_to_string(path.with_extension("expected"))
            .unwrap_or_else(|_| panic!("{name} has no .expected file"));
        let expected: Vec<&str> = expected.lines().filter(|l| !l.is_empty()).collect();

        let out = petitlab(dir, &["check", name]);
        let stdout = text(&out.stdout);
        assert_eq!(
            out.status.code(),
            Some(1),
            "{name} must fail check:\n{stdout}"
        );
        let mut errors: Vec<&str> = stdout.lines().filter(|l| l.starts_with("error:")).collect();
        for want in &expected {
            let at = errors.iter().position(|line| matches(want, line));
            let at =
                at.unwrap_or_else(|| panic!("{name}: no error matching {want:?}; got:\n{stdout}"));
            errors.remove(at);
        }
        assert!(
            errors.is_empty(),
            "{name}: unexpected errors {errors:#?}\nfull output:\n{stdout}"
        );

        // JSON says the same.
        let json = petitlab(dir, &["--json", "check", name]);
        let report: serde_json::Value = serde_json::from_slice(&json.stdout).unwrap();
        assert_eq!(report["ok"], false, "{name}");
        let json_errors = report["problems"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|p| p["severity"] == "error")
            .count();
        assert_eq!(json_errors, expected.len(), "{name}: {report:#}");
        checked += 1;
    }
    assert_eq!(checked, 7, "inventories checked");
}

#[test]
fn no_command_writes_anything_for_a_bad_inventory() {
    let tmp = inventories_copy();
    let dir = tmp.path();
    let before = listing(dir);
    for lab in [
        "bad-macs.toml",
        "duplicates.toml",
        "hosts-users-roots.toml",
        "misreading-template.toml",
        "syntax.toml",
    ] {
        for action in [
            "prepare-ramdisk",
            "prepare-instance",
            "clean-up-ramdisk",
            "clean-up-instance",
        ] {
            let out = petitlab(dir, &["--lab", lab, action, "--all"]);
            let stderr = text(&out.stderr);
            assert_eq!(out.status.code(), Some(1), "{lab} {action}: {stderr}");
            assert!(
                stderr.contains("nothing was done"),
                "{lab} {action}: {stderr}"
            );
        }
        let out = petitlab(dir, &["--lab", lab, "render", "n1"]);
        assert_eq!(out.status.code(), Some(1), "{lab} render");
    }
    assert_eq!(
        listing(dir),
        before,
        "a bad inventory made petitlab write files"
    );
}

#[test]
fn unknown_nodes_are_named_and_nothing_is_written() {
    let tmp = tempfile::tempdir().unwrap();
    let lab = tmp.path().join("lab.toml");
    let example = fs::read_to_string(repo().join("lab.toml.example")).unwrap();
    // Keep state inside the temp dir; artifacts stay in the repository.
    let example = example
        .replace("examples/", &format!("{}/examples/", repo().display()))
        .replace(
            "# state_dir = \"/var/lib/petitlab\"",
            "state_dir = \"state\"",
        );
    fs::write(&lab, example).unwrap();
    let out = petitlab(
        tmp.path(),
        &["prepare-ramdisk", "p9-rack1-01", "no-such-node"],
    );
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("no node named \"no-such-node\""),
        "{stderr}"
    );
    assert!(
        stderr.contains("p9-rack1-01, p9-rack1-02, p8-rack2-01"),
        "{stderr}"
    );
    assert!(!tmp.path().join("state").exists(), "nothing may be written");

    // The good node alone works, and says what it wrote.
    let out = petitlab(tmp.path(), &["prepare-ramdisk", "p9-rack1-01"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).starts_with("p9-rack1-01: 7 written, 0 removed"),
        "{}",
        text(&out.stdout)
    );
}

/// `petitlab check` as a child with a deadline and a 2 GiB address-space
/// limit: a regression that blocks on a FIFO or reads /dev/zero without end
/// fails the test instead of hanging it or eating the machine's memory.
fn check_bounded(dir: &Path, args: &[&str]) -> Output {
    let mut child = Command::new("prlimit")
        .arg("--as=2147483648")
        .arg(env!("CARGO_BIN_EXE_petitlab"))
        .arg("check")
        .args(args)
        .current_dir(dir)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run petitlab under prlimit (util-linux)");
    let deadline = Instant::now() + Duration::from_secs(10);
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            child.kill().unwrap();
            let out = child.wait_with_output().unwrap();
            panic!(
                "petitlab check {args:?} still ran after 10 s (killed):\n{}{}",
                text(&out.stdout),
                text(&out.stderr)
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    child.wait_with_output().unwrap()
}

fn mkfifo(path: &Path) {
    let status = Command::new("mkfifo").arg(path).status().expect("mkfifo");
    assert!(status.success(), "mkfifo {}", path.display());
}

#[test]
fn check_refuses_a_lab_toml_that_is_a_device_a_fifo_or_too_large() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    mkfifo(&dir.join("lab.fifo"));
    // Sparse: 16 MiB and one byte, over the cap without writing it all.
    let big = fs::File::create(dir.join("big.toml")).unwrap();
    big.set_len((16 << 20) + 1).unwrap();
    for (lab, why) in [
        (
            "/dev/zero",
            "/dev/zero: is a character device, not a regular file",
        ),
        (
            "lab.fifo",
            "lab.fifo: is a FIFO (named pipe), not a regular file",
        ),
        ("big.toml", "big.toml: is larger than 16 MiB"),
    ] {
        let out = check_bounded(dir, &[lab]);
        let stderr = text(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{lab}: {stderr}");
        assert!(stderr.contains(why), "{lab}: want {why:?} in:\n{stderr}");
    }
}

#[test]
fn check_refuses_artifacts_that_are_fifos_or_devices_naming_node_field_and_path() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    mkfifo(&dir.join("vmlinux.fifo"));
    fs::write(dir.join("pw"), "x").unwrap();
    fs::write(
        dir.join("lab.toml"),
        "state_dir = \"state\"\n[http]\nbase_url = \"http://10.77.0.1:8080/\"\n\
         [[node]]\nname = \"n1\"\nmacs = [\"70:e2:84:14:00:01\"]\n\
         [node.bmc]\nhost = \"10.77.1.1\"\nusername = \"admin\"\npassword_file = \"pw\"\n\
         [node.deploy]\nkernel = \"vmlinux.fifo\"\nramdisk = \"/dev/zero\"\n\
         [node.instance]\nimage = \"/dev/zero\"\n",
    )
    .unwrap();
    let out = check_bounded(dir, &["lab.toml"]);
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}{}", text(&out.stderr));
    let fifo = dir.join("vmlinux.fifo");
    for want in [
        format!(
            "error: node n1: deploy.kernel: {}: is a FIFO (named pipe), not a regular file",
            fifo.display()
        ),
        "error: node n1: deploy.ramdisk: /dev/zero: is a character device, not a regular file"
            .to_string(),
        "error: node n1: instance.image: /dev/zero: is a character device, not a regular file"
            .to_string(),
    ] {
        assert!(stdout.contains(&want), "want {want:?} in:\n{stdout}");
    }
    assert_eq!(stdout.matches("error:").count(), 3, "{stdout}");
}

/// A command on some nodes checks those nodes and the lab-wide settings,
/// not every other node's files: one node's missing password file or
/// kernel does not stop work on the others. `check` still sees everything.
#[test]
fn commands_check_only_the_nodes_they_touch() {
    let tmp = tempfile::tempdir().unwrap();
    let lab = tmp.path().join("lab.toml");
    let example = fs::read_to_string(repo().join("lab.toml.example")).unwrap();
    let (head, broken) = example.split_at(example.find("name = \"p8-rack2-01\"").unwrap());
    let broken = broken
        .replace("examples/secrets/bmc-password", "missing/bmc-password")
        .replace(
            "examples/artifacts/deploy.vmlinux",
            "missing/deploy.vmlinux",
        );
    let example = format!("{head}{broken}")
        .replace("examples/", &format!("{}/examples/", repo().display()))
        .replace(
            "# state_dir = \"/var/lib/petitlab\"",
            "state_dir = \"state\"",
        );
    fs::write(&lab, example).unwrap();

    for args in [
        &["render", "p9-rack1-01"][..],
        &["prepare-ramdisk", "p9-rack1-01", "p9-rack1-02"],
    ] {
        let out = petitlab(tmp.path(), args);
        assert!(out.status.success(), "{args:?}: {}", text(&out.stderr));
        assert!(
            !text(&out.stderr).contains("p8-rack2-01"),
            "{args:?} spoke of a node it does not touch: {}",
            text(&out.stderr)
        );
    }

    // The broken node itself, --all, and check name both problems.
    for args in [
        &["render", "p8-rack2-01"][..],
        &["prepare-ramdisk", "--all"],
        &["check"],
    ] {
        let out = petitlab(tmp.path(), args);
        // `check` reports on stdout, the others on stderr.
        let stderr = text(&out.stdout) + &text(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {stderr}");
        for field in ["bmc.password_file", "deploy.kernel"] {
            let want = format!("node p8-rack2-01: {field}:");
            assert!(stderr.contains(&want), "{args:?}: no {want:?} in {stderr}");
        }
    }
}
