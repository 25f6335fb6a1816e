use std::collections::BTreeMap;
use std::fs;
use std::path::Path;

use super::*;
use crate::inventory;

/// A lab in a temp dir: artifacts, state dir, served roots, dnsmasq dirs.
struct TestLab {
    dir: tempfile::TempDir,
    lab: Lab,
}

const NODES: &str = r#"
[[node]]
name = "local1"
macs = ["52:54:00:00:00:01", "52:54:00:00:00:11"]
ipv4 = "10.77.0.11"
console = "hvc0"
bootif = true
[node.bmc]
host = "h"
username = "u"
password_file = "pw"
[node.deploy]
kernel = "deploy.vmlinux"
ramdisk = "deploy.initrd"
[node.instance]
image = "disk.img"

[[node]]
name = "net1"
macs = ["52:54:00:00:00:02"]
boot_option = "netboot"
kernel_args = "quiet"
[node.bmc]
host = "h"
username = "u"
password_file = "pw"
[node.deploy]
kernel = "deploy.vmlinux"
ramdisk = "deploy.initrd"
[node.instance]
image = "root.img"
kernel = "inst.vmlinux"
ramdisk = "inst.initrd"
root_device = "UUID=1234"
"#;

impl TestLab {
    fn new(settings: &str) -> Self {
        Self::build(settings, None)
    }

    /// `template`: written to custom.tera before the lab is loaded.
    fn build(settings: &str, template: Option<&str>) -> Self {
        let nodes = NODES;
        let dir = tempfile::tempdir().unwrap();
        if let Some(t) = template {
            fs::write(dir.path().join("custom.tera"), t).unwrap();
        }
        for f in [
            "deploy.vmlinux",
            "deploy.initrd",
            "disk.img",
            "root.img",
            "inst.vmlinux",
            "inst.initrd",
        ] {
            fs::write(dir.path().join(f), format!("contents of {f}")).unwrap();
        }
        fs::write(dir.path().join("pw"), "pw").unwrap();
        let private = std::os::unix::fs::PermissionsExt::from_mode(0o600);
        fs::set_permissions(dir.path().join("pw"), private).unwrap();
        let path = dir.path().join("lab.toml");
        let text = format!(
            "state_dir = \"state\"\n{settings}\n[http]\nbase_url = \"http://10.77.0.1:8080\"\n\
             [tftp]\nbase_url = \"tftp://10.77.0.1\"\n[dhcp]\nbackend = \"dnsmasq\"\n{nodes}"
        );
        fs::write(&path, text).unwrap();
        let (lab, _warnings) = inventory::load_valid(&path).unwrap();
        TestLab { dir, lab }
    }

    fn boot(&self) -> PetitbootBoot {
        PetitbootBoot::new(&self.lab).unwrap()
    }

    fn node(&self, name: &str) -> &Node {
        self.lab.node(name).unwrap()
    }

    fn state(&self) -> std::path::PathBuf {
        self.dir.path().join("state")
    }

    /// Every file under the state dir (served roots, DHCP dirs, manifests).
    fn tree(&self) -> BTreeMap<String, String> {
        let mut out = BTreeMap::new();
        walk(&self.state(), &self.state(), &mut out);
        out
    }
}

fn walk(base: &Path, dir: &Path, out: &mut BTreeMap<String, String>) {
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    for entry in entries {
        let path = entry.unwrap().path();
        if path.is_dir() {
            walk(base, &path, out);
        } else {
            let rel = path.strip_prefix(base).unwrap().display().to_string();
            out.insert(
                rel,
                String::from_utf8_lossy(&fs::read(&path).unwrap()).into_owned(),
            );
        }
    }
}

/// Files under the served roots (not DHCP files or manifests).
fn served_files(tree: &BTreeMap<String, String>) -> Vec<&str> {
    tree.keys()
        .map(String::as_str)
        .filter(|k| k.starts_with("http/") || k.starts_with("tftp/"))
        .collect()
}

// Fact: render absolute http:// or tftp:// URLs for kernel and initrd.
#[test]
fn configs_use_absolute_urls_of_the_chosen_protocol() {
    for (settings, base) in [
        ("", "http://10.77.0.1:8080/"),
        ("[petitboot]\nprotocol = \"tftp\"", "tftp://10.77.0.1/"),
    ] {
        let t = TestLab::new(settings);
        let node = t.node("local1");
        let r = t.boot().render(node, Stage::Deploy).unwrap().unwrap();
        let uuid = node.uuid;
        let label = pxeconf::parse(&r.config).default_label().cloned().unwrap();
        assert_eq!(label.kernel, Some(format!("{base}{uuid}/deploy_kernel")));
        assert_eq!(label.initrd, Some(format!("{base}{uuid}/deploy_ramdisk")));
        assert_eq!(r.config_url, format!("{base}{uuid}/config"));
        assert_eq!(pxeconf::lint(&r.config), vec![]);
    }
}

#[test]
fn default_template_writes_default_first_and_the_node_arguments() {
    let t = TestLab::new("");
    let r = t
        .boot()
        .render(t.node("net1"), Stage::Instance)
        .unwrap()
        .unwrap();
    let first = r.config.lines().find(|l| !l.starts_with('#')).unwrap();
    assert_eq!(first, "default instance");
    let label = pxeconf::parse(&r.config).default_label().cloned().unwrap();
    assert_eq!(label.append.as_deref(), Some("root=UUID=1234 quiet"));
    assert_eq!(label.ipappend, None, "bootif is off for net1");
}

// Fact: IPAPPEND 2 appends BOOTIF=01-<mac>; it is how BOOTIF is asked for.
#[test]
fn bootif_renders_ipappend_2() {
    let t = TestLab::new("");
    let r = t
        .boot()
        .render(t.node("local1"), Stage::Deploy)
        .unwrap()
        .unwrap();
    let label = pxeconf::parse(&r.config).default_label().cloned().unwrap();
    assert_eq!(label.ipappend.as_deref(), Some("2"));
    assert_eq!(label.append.as_deref(), Some("console=hvc0"));
}

// Facts: 210 is joined to 209 by plain concatenation, so 210 ends with `/`
// and 209 does not start with `/`; the result is the config's URL.
#[test]
fn dhcp_options_concatenate_to_the_served_config() {
    let t = TestLab::new("");
    let node = t.node("local1");
    let r = t.boot().render(node, Stage::Deploy).unwrap().unwrap();
    assert!(r.dhcp.path_prefix.ends_with('/'), "{:?}", r.dhcp);
    assert!(!r.dhcp.conf_file.starts_with('/'), "{:?}", r.dhcp);
    assert_eq!(
        format!("{}{}", r.dhcp.path_prefix, r.dhcp.conf_file),
        r.config_url
    );
    // And the URL's path is the file's place under the served root.
    let rel = r.config_url.strip_prefix(&r.dhcp.path_prefix).unwrap();
    assert_eq!(t.lab.http.root.join(rel), r.config_path);
}

// Fact: a 209/210 without `://` always means TFTP: 210 always names its scheme.
#[test]
fn option_210_always_names_its_scheme() {
    for (settings, scheme) in [
        ("", "http://"),
        ("[petitboot]\nprotocol = \"tftp\"", "tftp://"),
    ] {
        let t = TestLab::new(settings);
        let r = t
            .boot()
            .render(t.node("net1"), Stage::Deploy)
            .unwrap()
            .unwrap();
        assert!(r.dhcp.path_prefix.starts_with(scheme), "{:?}", r.dhcp);
    }
}

// Fact: without 209, petitboot tries pxelinux.cfg/01-<mac lower-case, dashes>,
// then the IPv4 address in upper-case hex.
#[test]
fn discovery_files_use_the_names_petitboot_tries() {
    let t = TestLab::new("");
    let boot = t.boot();
    let node = t.node("local1");
    boot.prepare_ramdisk(node).unwrap();
    let root = &t.lab.http.root;
    let config = fs::read_to_string(root.join(format!("{}/config", node.uuid))).unwrap();
    for name in ["01-52-54-00-00-00-01", "01-52-54-00-00-00-11", "0A4D000B"] {
        let path = root.join("pxelinux.cfg").join(name);
        assert_eq!(
            fs::read_to_string(&path).unwrap(),
            config,
            "{}",
            path.display()
        );
    }
}

// Fact: do not send option 67 to petitboot clients.
#[test]
fn dnsmasq_files_carry_209_and_210_and_never_67() {
    let t = TestLab::new("");
    let node = t.node("local1");
    let boot = t.boot();
    boot.prepare_ramdisk(node).unwrap();
    let name = format!("petitlab-{}", node.uuid);
    let opts = fs::read_to_string(t.state().join("dnsmasq/opts").join(&name)).unwrap();
    let hosts = fs::read_to_string(t.state().join("dnsmasq/hosts").join(&name)).unwrap();
    let tag = format!("petitlab-{}", node.uuid);
    assert!(
        opts.contains(&format!("tag:{tag},209,\"{}/config\"\n", node.uuid)),
        "{opts}"
    );
    assert!(
        opts.contains(&format!("tag:{tag},210,\"http://10.77.0.1:8080/\"\n")),
        "{opts}"
    );
    let options: Vec<&str> = opts
        .lines()
        .filter(|l| !l.starts_with('#'))
        .map(|l| l.split(',').nth(1).unwrap())
        .collect();
    assert_eq!(options, ["209", "210"]);
    assert!(!opts.contains("bootfile") && !opts.contains("dhcp-boot"));
    // No address on host lines: dnsmasq rejects a rewritten line whose IP it
    // has seen, which would make the node's options impossible to release.
    let lines: Vec<&str> = hosts.lines().filter(|l| !l.starts_with('#')).collect();
    assert_eq!(
        lines,
        [
            format!("52:54:00:00:00:01,set:{tag}"),
            format!("52:54:00:00:00:11,set:{tag}")
        ]
    );

    // Released: MACs re-tagged to a tag without options, options file gone.
    boot.clean_up_ramdisk(node).unwrap();
    let hosts = fs::read_to_string(t.state().join("dnsmasq/hosts").join(&name)).unwrap();
    assert!(
        hosts.contains("52:54:00:00:00:01,set:petitlab-released\n"),
        "{hosts}"
    );
    assert!(!hosts.contains(&tag), "{hosts}");
    assert!(!t.state().join("dnsmasq/opts").join(&name).exists());
}

// Fact: local boot = no config for the node (404).
#[test]
fn local_instance_removes_the_config_discovery_files_and_dhcp_options() {
    let t = TestLab::new("");
    let boot = t.boot();
    let node = t.node("local1");
    assert!(boot.render(node, Stage::Instance).unwrap().is_none());
    boot.prepare_ramdisk(node).unwrap();
    let changes = boot.prepare_instance(node).unwrap();
    let tree = t.tree();
    let served = served_files(&tree);
    let uuid = node.uuid.to_string();
    assert_eq!(
        served,
        [
            format!("http/{uuid}/deploy_kernel"),
            format!("http/{uuid}/deploy_ramdisk")
        ],
        "only the deploy artifacts remain until clean_up_ramdisk"
    );
    assert_eq!(
        changes.removed.len(),
        5,
        "config, 3 discovery, dnsmasq opts: {changes:#?}"
    );
}

#[test]
fn prepare_ramdisk_links_artifacts_and_never_serves_the_original_path() {
    use std::os::unix::fs::MetadataExt;
    let t = TestLab::new("");
    let node = t.node("net1");
    t.boot().prepare_ramdisk(node).unwrap();
    let staged = t.lab.http.root.join(format!("{}/deploy_kernel", node.uuid));
    let original = t.dir.path().join("deploy.vmlinux");
    assert!(fs::symlink_metadata(&staged).unwrap().file_type().is_file());
    assert_eq!(
        fs::metadata(&staged).unwrap().ino(),
        fs::metadata(&original).unwrap().ino()
    );
}

#[test]
fn prepare_is_idempotent() {
    let t = TestLab::new("");
    let boot = t.boot();
    let node = t.node("local1");
    boot.prepare_ramdisk(node).unwrap();
    let first = t.tree();
    let again = boot.prepare_ramdisk(node).unwrap();
    assert_eq!(t.tree(), first);
    assert_eq!(again.removed, Vec::<std::path::PathBuf>::new());
}

#[test]
fn clean_up_removes_exactly_what_prepare_wrote() {
    let t = TestLab::new("");
    let boot = t.boot();
    // Someone else's files in the same trees must survive.
    let http = &t.lab.http.root;
    fs::create_dir_all(http.join("pxelinux.cfg")).unwrap();
    fs::write(http.join("pxelinux.cfg/default"), "admin's").unwrap();
    fs::write(http.join("other.iso"), "admin's").unwrap();
    boot.prepare_ramdisk(t.node("net1")).unwrap();
    let before = t.tree();

    let node = t.node("local1");
    boot.prepare_ramdisk(node).unwrap();
    assert_ne!(t.tree(), before);
    let changes = boot.clean_up_ramdisk(node).unwrap();
    let mut after = t.tree();
    // The released host file stays (dnsmasq cannot forget a deleted one).
    let hosts = format!("dnsmasq/hosts/petitlab-{}", node.uuid);
    assert!(
        after
            .remove(&hosts)
            .unwrap()
            .contains("set:petitlab-released")
    );
    assert_eq!(after, before);
    assert!(
        !http.join(node.uuid.to_string()).exists(),
        "empty node dir removed"
    );
    assert_eq!(changes.removed.len(), 2 + 1 + 3 + 1, "{changes:#?}");
    assert_eq!(changes.written, vec![t.state().join(&hosts)]);
    // Idempotent: a second clean-up has nothing to do.
    assert!(boot.clean_up_ramdisk(node).unwrap().is_empty());
}

#[test]
fn netboot_instance_survives_clean_up_ramdisk() {
    let t = TestLab::new("");
    let boot = t.boot();
    let node = t.node("net1");
    boot.prepare_ramdisk(node).unwrap();
    boot.prepare_instance(node).unwrap();
    let changes = boot.clean_up_ramdisk(node).unwrap();
    assert_eq!(
        changes.kept.len(),
        2,
        "config and discovery file now hold the instance config"
    );

    let tree = t.tree();
    let uuid = node.uuid.to_string();
    let config = &tree[&format!("http/{uuid}/config")];
    assert!(config.contains("default instance"), "{config}");
    assert!(!tree.contains_key(&format!("http/{uuid}/deploy_kernel")));
    assert!(tree.contains_key(&format!("http/{uuid}/kernel")));
    let dhcp = format!("dnsmasq/opts/petitlab-{uuid}");
    assert!(
        tree.contains_key(&dhcp),
        "the netbooting instance still needs its options"
    );

    boot.clean_up_instance(node).unwrap();
    assert_eq!(served_files(&t.tree()), Vec::<&str>::new());
}

#[test]
fn a_changed_mac_leaves_no_stale_discovery_file() {
    let t = TestLab::new("");
    let boot = t.boot();
    let mut node = t.node("net1").clone();
    boot.prepare_ramdisk(&node).unwrap();
    node.macs = vec!["52:54:00:00:00:99".parse().unwrap()];
    let changes = boot.prepare_ramdisk(&node).unwrap();
    let dir = t.lab.http.root.join("pxelinux.cfg");
    assert!(dir.join("01-52-54-00-00-00-99").exists());
    assert!(!dir.join("01-52-54-00-00-00-02").exists());
    assert_eq!(changes.removed, vec![dir.join("01-52-54-00-00-00-02")]);
}

fn lab_with_template(template: &str) -> TestLab {
    TestLab::build(
        "[petitboot]\nconfig_template = \"custom.tera\"",
        Some(template),
    )
}

#[test]
fn templates_petitboot_would_misread_are_refused_and_nothing_is_written() {
    for (template, needle) in [
        (
            "default {{label}}\nlabel {{label}}\nlinux {{kernel_url}}\n",
            "LINUX",
        ),
        (
            "default {{label}}\nlabel {{label}}\nkernel {{kernel_url}} {{append}}\n",
            "kernel arguments belong in APPEND",
        ),
        (
            "default {{label}}\nlabel {{label}}\nkernel {{kernel_url}}\nappend initrd={{initrd_url}}\n",
            "initrd=",
        ),
        (
            "default {{label}}\nlabel {{label}}\nkernel {{kernel_url}}\nappend \"{{append}}\"\n",
            "quote",
        ),
        (
            "default {{label}}\nlabel {{label}}\ninitrd {{initrd_url}}\n",
            "has no KERNEL",
        ),
        (
            "label {{label}}\nkernel {{kernel_url}}\ndefault {{label}}\n",
            "DEFAULT after a LABEL",
        ),
    ] {
        let t = lab_with_template(template);
        let boot = t.boot();
        let node = t.node("local1");
        let problems = boot.validate(node);
        assert!(
            problems
                .iter()
                .any(|p| p.field == "petitboot.config_template" && p.message.contains(needle)),
            "{template:?}: {problems:#?}"
        );
        let err = boot.prepare_ramdisk(node).unwrap_err();
        assert!(matches!(err, BootError::Invalid { .. }), "{err}");
        assert_eq!(t.tree(), BTreeMap::new(), "nothing may be written");
    }
}

#[test]
fn a_template_that_does_not_compile_is_a_clear_error() {
    let t = lab_with_template("default {{ label\n");
    let err = PetitbootBoot::new(&t.lab).err().expect("must fail");
    assert!(
        err.to_string().starts_with("petitboot.config_template:"),
        "{err}"
    );
}

#[test]
fn hazardous_kernel_args_are_named_on_their_field() {
    let t = TestLab::new("");
    let boot = t.boot();
    for (args, needle) in [
        ("noinitrd=1", "initrd="),
        ("\"quiet\"", "quote"),
        ("quiet # comment", "'#'"),
        ("BOOTIF=${mac}", "expand variables"),
    ] {
        let mut node = t.node("net1").clone();
        node.kernel_args = args.to_string();
        let problems = boot.validate(&node);
        assert!(
            problems
                .iter()
                .any(|p| p.field == "kernel_args" && p.message.contains(needle)),
            "{args}: {problems:#?}"
        );
    }
}

#[test]
fn an_artifact_swapped_for_a_fifo_or_device_after_loading_is_refused_before_any_write() {
    let t = TestLab::new("");
    let boot = t.boot();
    let kernel = t.dir.path().join("deploy.vmlinux");
    fs::remove_file(&kernel).unwrap();
    let made = std::process::Command::new("mkfifo").arg(&kernel).status();
    assert!(made.unwrap().success(), "mkfifo");
    let mut node = t.node("net1").clone();
    node.instance = InstanceImage::Partition {
        image: "/dev/zero".into(),
        kernel: t.dir.path().join("inst.vmlinux"),
        ramdisk: t.dir.path().join("inst.initrd"),
        root_device: "UUID=1234".into(),
    };
    let problems = boot.validate(&node);
    let found = |field: &str, why: &str| {
        problems.iter().any(|p| {
            p.is_error()
                && p.node.as_deref() == Some("net1")
                && p.field == field
                && p.message.contains(why)
        })
    };
    let fifo = format!(
        "{}: is a FIFO (named pipe), not a regular file",
        kernel.display()
    );
    assert!(found("deploy.kernel", &fifo), "{problems:#?}");
    assert!(
        found(
            "instance.image",
            "/dev/zero: is a character device, not a regular file"
        ),
        "{problems:#?}"
    );
    let err = boot.prepare_ramdisk(&node).unwrap_err();
    assert!(matches!(err, BootError::Invalid { .. }), "{err}");
    assert_eq!(t.tree(), BTreeMap::new(), "nothing may be written");
}
