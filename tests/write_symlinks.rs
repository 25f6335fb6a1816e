//! `prepare-ramdisk` and `clean-up-ramdisk` (run as root in a real lab)
//! never write or delete through a symlink planted in the HTTP root or the
//! dnsmasq directories: a linked directory is refused with an error that
//! names it; a link planted where a file goes is replaced (rename replaces
//! the link itself) or removed as a link, never followed.

mod support;

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};

use support::lab::{NODES, loopback_lab, ok, petitlab, show};

struct Lab {
    dir: tempfile::TempDir,
    lab: PathBuf,
    /// What a symlink points to: outside every root.
    outside: PathBuf,
}

fn setup() -> Lab {
    let dir = tempfile::tempdir().unwrap();
    let (lab, _) = loopback_lab(dir.path());
    let outside = dir.path().join("outside");
    fs::create_dir(&outside).unwrap();
    fs::write(outside.join("precious"), "keep me").unwrap();
    Lab { dir, lab, outside }
}

impl Lab {
    fn state(&self) -> PathBuf {
        self.dir.path().join("state")
    }

    fn http_root(&self) -> PathBuf {
        self.state().join("http")
    }

    /// The node's directory in the HTTP root, `<root>/<uuid>`.
    fn node_dir(&self, node: &str) -> PathBuf {
        let out = ok(&self.lab, &["--json", "render", node, "--stage", "deploy"]);
        let json: serde_json::Value = serde_json::from_str(&out).unwrap();
        let config = PathBuf::from(json["rendered"]["config_path"].as_str().unwrap());
        let dir = config.parent().unwrap().to_path_buf();
        assert_eq!(dir.parent().unwrap(), self.http_root(), "{out}");
        dir
    }

    fn uuid(&self, node: &str) -> String {
        let dir = self.node_dir(node);
        dir.file_name().unwrap().to_string_lossy().into_owned()
    }
}

/// Every file under `dir` with its content (symlinks not followed).
fn snapshot(dir: &Path) -> BTreeMap<PathBuf, String> {
    let mut out = BTreeMap::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        for entry in fs::read_dir(&d).unwrap() {
            let path = entry.unwrap().path();
            let meta = fs::symlink_metadata(&path).unwrap();
            if meta.is_dir() {
                todo.push(path);
            } else if meta.file_type().is_symlink() {
                let to = fs::read_link(&path).unwrap();
                out.insert(path, format!("-> {}", to.display()));
            } else {
                let text = String::from_utf8_lossy(&fs::read(&path).unwrap()).into_owned();
                out.insert(path, text);
            }
        }
    }
    out
}

/// Runs the command; what is outside must be as it was; then the command
/// must have failed, naming `link` as a symlink.
fn refused(lab: &Lab, args: &[&str], link: &Path) {
    let before = snapshot(&lab.outside);
    let out = petitlab(&lab.lab, args);
    let text = show(&out);
    assert_eq!(
        snapshot(&lab.outside),
        before,
        "{args:?} wrote or deleted outside the roots: {text}"
    );
    assert!(!out.status.success(), "{args:?} must fail: {text}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    let named = format!("{} is a symlink", link.display());
    assert!(stderr.contains(&named), "{args:?}: no {named:?} in: {text}");
}

#[test]
fn prepare_refuses_a_node_directory_that_is_a_symlink() {
    let lab = setup();
    let node = NODES[0];
    let link = lab.node_dir(node);
    fs::create_dir_all(lab.http_root()).unwrap();
    symlink(&lab.outside, &link).unwrap();
    refused(&lab, &["prepare-ramdisk", node], &link);
    assert!(
        fs::symlink_metadata(&link)
            .unwrap()
            .file_type()
            .is_symlink(),
        "the link itself is left for the admin to see"
    );
}

#[test]
fn prepare_refuses_a_discovery_directory_that_is_a_symlink() {
    let lab = setup();
    let link = lab.http_root().join("pxelinux.cfg");
    fs::create_dir_all(lab.http_root()).unwrap();
    symlink(&lab.outside, &link).unwrap();
    refused(&lab, &["prepare-ramdisk", NODES[0]], &link);
}

#[test]
fn clean_up_deletes_nothing_through_a_node_directory_swapped_for_a_symlink() {
    let lab = setup();
    let node = NODES[0];
    ok(&lab.lab, &["prepare-ramdisk", node]);
    // Someone with write access to the root moves the node's directory
    // away and leaves a link to a directory holding files of the same names.
    let dir = lab.node_dir(node);
    let victim = lab.outside.join("victim");
    fs::rename(&dir, &victim).unwrap();
    symlink(&victim, &dir).unwrap();
    assert!(victim.join("config").exists());
    refused(&lab, &["clean-up-ramdisk", node], &dir);
}

#[test]
fn a_symlink_planted_as_a_file_is_replaced_never_followed() {
    let lab = setup();
    let node = NODES[0];
    let uuid = lab.uuid(node);
    let dir = lab.node_dir(node);
    fs::create_dir_all(&dir).unwrap();
    let file = lab.outside.join("precious");
    symlink(&file, dir.join("config")).unwrap();
    let hostsdir = lab.state().join("dnsmasq/hosts");
    let optsdir = lab.state().join("dnsmasq/opts");
    // A link to a directory in the hosts directory, to a file in the options one.
    fs::create_dir_all(&hostsdir).unwrap();
    fs::create_dir_all(&optsdir).unwrap();
    symlink(&lab.outside, hostsdir.join(format!("petitlab-{uuid}"))).unwrap();
    symlink(&file, optsdir.join(format!("petitlab-{uuid}"))).unwrap();
    let before = snapshot(&lab.outside);
    ok(&lab.lab, &["prepare-ramdisk", node]);
    assert_eq!(snapshot(&lab.outside), before, "nothing written outside");
    for f in [
        dir.join("config"),
        hostsdir.join(format!("petitlab-{uuid}")),
        optsdir.join(format!("petitlab-{uuid}")),
    ] {
        let meta = fs::symlink_metadata(&f).unwrap();
        assert!(meta.is_file(), "{} is our own file now", f.display());
    }
    // Links planted again before the clean-up: removed as links (or left),
    // their targets untouched.
    for f in [
        dir.join("deploy_kernel"),
        optsdir.join(format!("petitlab-{uuid}")),
    ] {
        fs::remove_file(&f).unwrap();
        symlink(&file, &f).unwrap();
    }
    ok(&lab.lab, &["clean-up-ramdisk", node]);
    assert_eq!(snapshot(&lab.outside), before, "nothing deleted outside");
}
