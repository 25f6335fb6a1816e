//! Node ranges through the real CLI, in this process (no lab service), on
//! the shipped example lab: brackets, groups, states, exclusion, `all`,
//! and the errors that name what matched nothing. (Through the service:
//! tests/demo_headless.rs.)

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn petitlab(state: &Path, args: &[&str]) -> Output {
    let lab = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("lab.toml.example");
    Command::new(env!("CARGO_BIN_EXE_petitlab"))
        .arg("--lab")
        .arg(lab)
        .arg("--local")
        .args(args)
        .env("XDG_STATE_HOME", state)
        .output()
        .expect("run petitlab")
}

/// The nodes `status RANGE` lists, in its order.
fn status(state: &Path, range: &str) -> Result<Vec<String>, String> {
    let out = petitlab(state, &["status", range]);
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    if !out.status.success() {
        return Err(stderr);
    }
    Ok(String::from_utf8_lossy(&out.stdout)
        .lines()
        .skip(1)
        .filter_map(|l| l.split_whitespace().next().map(str::to_string))
        .collect())
}

#[test]
fn ranges_name_the_example_labs_nodes() {
    let state = tempfile::tempdir().unwrap();
    let s = state.path();
    let sorted = |mut v: Vec<String>| {
        v.sort();
        v
    };
    assert_eq!(
        status(s, "p9-rack1-[01-02]").unwrap(),
        ["p9-rack1-01", "p9-rack1-02"]
    );
    // Zero padding, a bracket naming more than the lab has, overlap.
    assert_eq!(
        status(s, "p9-rack1-[01-09],p9-rack1-02").unwrap(),
        ["p9-rack1-01", "p9-rack1-02"]
    );
    assert_eq!(
        sorted(status(s, "group:rack1,group:rack3").unwrap()),
        ["p10-rack3-01", "p9-rack1-01", "p9-rack1-02"]
    );
    assert_eq!(
        sorted(status(s, "all,-group:rack1").unwrap()),
        ["p10-rack3-01", "p8-rack2-01"]
    );
    assert_eq!(
        status(s, "group:rack1,-p9-rack1-[02-03]").unwrap(),
        ["p9-rack1-01"]
    );
    // Every node starts enrolled: the store's states are read.
    assert_eq!(
        sorted(status(s, "state:enroll,-group:rack2").unwrap()),
        ["p10-rack3-01", "p9-rack1-01", "p9-rack1-02"]
    );
    // An exclusion that names nothing is an error too: likely a typo.
    let err = status(s, "state:enroll,-state:active").unwrap_err();
    assert!(err.contains("state:active matches no node"), "{err}");

    let err = status(s, "p9-rack9-[01-03],group:nope,p8-rack2-01").unwrap_err();
    assert!(
        err.contains("p9-rack9-[01-03], group:nope match no node in"),
        "{err}"
    );
    let err = status(s, "state:active").unwrap_err();
    assert!(err.contains("state:active matches no node"), "{err}");
    let err = status(s, "group:rack2,-p8-rack2-01").unwrap_err();
    assert!(err.contains("leaves no node"), "{err}");
    let err = status(s, "p9-rack1-[3-1]").unwrap_err();
    assert!(err.contains("runs backwards"), "{err}");
    let err = status(s, "state:broken").unwrap_err();
    assert!(err.contains("states are enroll, manageable"), "{err}");
    let err = status(s, "n[1-99999999]").unwrap_err();
    assert!(err.contains("at most 10000"), "{err}");
}

#[test]
fn a_boot_file_action_on_a_range_writes_for_each_node_or_for_none() {
    let state = tempfile::tempdir().unwrap();
    let s = state.path();
    let out = petitlab(s, &["prepare-ramdisk", "group:rack1"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(
        said.contains("p9-rack1-01") && said.contains("p9-rack1-02") && !said.contains("p8"),
        "{said}"
    );
    // A term naming nothing: nothing is done for the others either.
    let out = petitlab(s, &["clean-up-ramdisk", "group:rack1,group:nope"]);
    assert!(!out.status.success());
    let out = petitlab(s, &["clean-up-ramdisk", "group:rack1"]);
    assert!(out.status.success());
    let said = String::from_utf8_lossy(&out.stdout);
    for node in ["p9-rack1-01:", "p9-rack1-02:"] {
        assert!(
            said.lines()
                .any(|l| l.starts_with(node) && l.contains("removed")),
            "{said}"
        );
    }
}
