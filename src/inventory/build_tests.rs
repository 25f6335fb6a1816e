use super::*;

/// A temp lab directory holding every artifact file the fixtures name.
struct Fixture {
    dir: tempfile::TempDir,
}

impl Fixture {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        for f in ["k", "r", "disk.img", "root.img", "vmlinux", "initrd", "pw"] {
            std::fs::write(dir.path().join(f), b"x").unwrap();
        }
        Fixture { dir }
    }

    fn load(&self, text: &str) -> Loaded {
        let env = Env::from_pairs(&[("HOME", "/home/admin"), ("BMC_PW", "secret")]);
        from_text(&self.dir.path().join("lab.toml"), text, &env, &Scope::All)
    }
}

const BMC: &str =
    "[node.bmc]\nhost = \"10.0.0.1\"\nusername = \"admin\"\npassword_env = \"BMC_PW\"\n";
const DEPLOY: &str = "[node.deploy]\nkernel = \"k\"\nramdisk = \"r\"\n";
const WHOLE: &str = "[node.instance]\nimage = \"disk.img\"\n";
const PARTITION: &str = "[node.instance]\nimage = \"root.img\"\nkernel = \"vmlinux\"\nramdisk = \"initrd\"\nroot_device = \"/dev/sda2\"\n";

fn node(header: &str) -> String {
    format!("[[node]]\n{header}\n{BMC}{DEPLOY}{WHOLE}")
}

fn lab(nodes: &[String]) -> String {
    format!(
        "[http]\nbase_url = \"http://10.77.0.1:8080\"\n{}",
        nodes.join("\n")
    )
}

fn errors(loaded: &Loaded) -> Vec<String> {
    loaded
        .problems
        .iter()
        .filter(|p| p.is_error())
        .map(ToString::to_string)
        .collect()
}

fn assert_error(loaded: &Loaded, needle: &str) {
    let errs = errors(loaded);
    assert!(
        errs.iter().any(|e| e.contains(needle)),
        "no error containing {needle:?}; errors: {errs:#?}"
    );
}

#[test]
fn a_good_lab_loads_with_defaults() {
    let f = Fixture::new();
    let loaded = f.load(&lab(&[node(
        "name = \"n1\"\nmacs = [\"52:54:00:00:00:01\"]",
    )]));
    assert_eq!(errors(&loaded), Vec::<String>::new());
    let lab = &loaded.lab;
    let n = &lab.nodes[0];
    assert_eq!(n.uuid, derived_uuid("n1"));
    assert!(n.uuid_derived);
    assert_eq!(n.cpu_arch, CpuArch::Ppc64le);
    assert_eq!(n.boot_option, BootOption::Local);
    assert_eq!(n.bmc.port, 623);
    assert_eq!(n.bmc.cipher_suite, CipherSuite::Auto);
    assert_eq!(n.deploy.kernel, f.dir.path().join("k"));
    // The base URL gains the trailing slash option 210 needs.
    assert_eq!(lab.http.base_url.as_deref(), Some("http://10.77.0.1:8080/"));
    assert_eq!(
        lab.state_dir,
        Path::new("/home/admin/.local/state/petitlab")
    );
    assert_eq!(lab.http.root, lab.state_dir.join("http"));
    assert_eq!(lab.dhcp, Dhcp::None);
}

#[test]
fn derived_uuid_is_stable_and_distinct() {
    assert_eq!(derived_uuid("node1"), derived_uuid("node1"));
    assert_ne!(derived_uuid("node1"), derived_uuid("node2"));
    // Pinned: changing the namespace would re-identify every node of every lab.
    assert_eq!(derived_uuid("node1").get_version_num(), 5);
}

#[test]
fn every_problem_is_reported_at_once_with_node_and_field() {
    let f = Fixture::new();
    let text = lab(&[
        format!(
            "[[node]]\nname = \"bad\"\nmacs = [\"52:54:00:zz:00:01\", \"01:00:5e:00:00:01\"]\n\
             cpu_arch = \"x86_64\"\nboot_option = \"pxe\"\nipv4 = \"10.0.0.300\"\n\
             [node.bmc]\nhost = \"h\"\nport = \"623\"\nusername = \"u\"\npassword_env = \"UNSET_VAR\"\ncipher_suite = 2\n\
             [node.deploy]\nkernel = \"missing-kernel\"\nramdisk = \"r\"\n{WHOLE}"
        ),
        node("name = \"ok\"\nmacs = [\"52:54:00:00:00:02\"]"),
    ]);
    let loaded = f.load(&text);
    for needle in [
        "node bad: macs[0]: \"52:54:00:zz:00:01\" is not a MAC address",
        "node bad: macs[1]: \"01:00:5e:00:00:01\" is a multicast address",
        "node bad: cpu_arch: unknown cpu_arch \"x86_64\"",
        "node bad: boot_option: unknown boot_option \"pxe\"",
        "node bad: ipv4: \"10.0.0.300\" is not an IPv4 address",
        "node bad: bmc.port: invalid type: string \"623\"",
        "node bad: bmc.password_env: environment variable UNSET_VAR is not set",
        "node bad: bmc.cipher_suite: 2 is not supported",
        "node bad: deploy.kernel:",
    ] {
        assert_error(&loaded, needle);
    }
    assert_eq!(errors(&loaded).len(), 9, "{:#?}", errors(&loaded));
    // The healthy node is still usable; the broken one is left out.
    let names: Vec<_> = loaded.lab.nodes.iter().map(|n| n.name.as_str()).collect();
    assert_eq!(names, ["ok"]);
}

#[test]
fn duplicates_are_reported_on_the_later_node() {
    let f = Fixture::new();
    let uuid = "3d8f3a1e-6b0c-4f4e-9a57-1f0c2b7d9e01";
    let loaded = f.load(&lab(&[
        node(&format!(
            "name = \"a\"\nuuid = \"{uuid}\"\nmacs = [\"52:54:00:00:00:01\"]\nipv4 = \"10.0.0.5\""
        )),
        node(&format!(
            "name = \"b\"\nuuid = \"{uuid}\"\nmacs = [\"52-54-00-00-00-01\"]\nipv4 = \"10.0.0.5\""
        )),
        node("name = \"a\"\nmacs = [\"52:54:00:00:00:03\", \"52:54:00:00:00:03\"]"),
    ]));
    assert_error(
        &loaded,
        "node b: uuid: uuid 3d8f3a1e-6b0c-4f4e-9a57-1f0c2b7d9e01 is also used by node a",
    );
    assert_error(
        &loaded,
        "node b: macs[0]: MAC 52:54:00:00:00:01 is also used by node a",
    );
    assert_error(
        &loaded,
        "node b: ipv4: address 10.0.0.5 is also used by node a",
    );
    assert_error(&loaded, "node a: name: name a is also used by node a");
    assert_error(
        &loaded,
        "node a: macs[1]: 52:54:00:00:00:03 is listed twice",
    );
    assert!(loaded.lab.nodes.is_empty());
}

#[test]
fn boot_option_must_match_the_image_kind() {
    let f = Fixture::new();
    let local_partition = format!(
        "[[node]]\nname = \"lp\"\nmacs = [\"52:54:00:00:00:01\"]\n{BMC}{DEPLOY}{PARTITION}"
    );
    let netboot_whole =
        node("name = \"nw\"\nmacs = [\"52:54:00:00:00:02\"]\nboot_option = \"netboot\"");
    let netboot_partial = format!(
        "[[node]]\nname = \"np\"\nmacs = [\"52:54:00:00:00:03\"]\nboot_option = \"netboot\"\n{BMC}{DEPLOY}\
         [node.instance]\nimage = \"root.img\"\nkernel = \"vmlinux\"\n"
    );
    let loaded = f.load(&lab(&[local_partition, netboot_whole, netboot_partial]));
    assert_error(
        &loaded,
        "node lp: instance: boot_option = \"local\" needs a whole-disk image",
    );
    assert_error(
        &loaded,
        "node nw: instance: boot_option = \"netboot\" needs a partition image",
    );
    assert_error(
        &loaded,
        "node np: instance.ramdisk: is required for a partition image",
    );
    assert_error(
        &loaded,
        "node np: instance.root_device: is required for a partition image",
    );
}

#[test]
fn missing_required_sections_and_unknown_keys() {
    let f = Fixture::new();
    let text = lab(&[
        "[[node]]\nmacs = [\"52:54:00:00:00:01\"]\n".to_string(),
        format!(
            "[[node]]\nname = \"typo\"\nmac = \"52:54:00:00:00:02\"\n[node.bmc]\nhost = \"h\"\nusername = \"u\"\npasword_file = \"pw\"\n{DEPLOY}{WHOLE}"
        ),
    ]) + "\n[htpp]\nlisten = \"x\"\n";
    let loaded = f.load(&text);
    assert_error(&loaded, "node node[0]: name: is required");
    assert_error(&loaded, "node node[0]: bmc: is required");
    assert_error(&loaded, "node node[0]: deploy: is required");
    assert_error(&loaded, "node node[0]: instance: is required");
    assert_error(&loaded, "node typo: mac: unknown key");
    assert_error(&loaded, "node typo: bmc.pasword_file: unknown key");
    assert_error(&loaded, "node typo: macs: is required");
    assert_error(&loaded, "node typo: bmc.password_env: is required");
    assert_error(&loaded, "error: htpp: unknown key");
}

#[test]
fn lab_wide_settings_are_checked() {
    let f = Fixture::new();
    let text = "[petitboot]\nprotocol = \"nfs\"\nconfig_template = \"nope.tera\"\n\
                [http]\nlisten = \"0.0.0.0:8080\"\n[tftp]\nlisten = \"bogus\"\n[dhcp]\nbackend = \"isc\"\n";
    let loaded = f.load(text);
    assert_error(&loaded, "petitboot.protocol: \"nfs\" is not a protocol");
    assert_error(&loaded, "petitboot.config_template:");
    assert_error(&loaded, "http.base_url: is required");
    assert_error(&loaded, "tftp.listen: \"bogus\" is not an address:port");
    assert_error(&loaded, "dhcp.backend: \"isc\" is not a DHCP backend");
}

#[test]
fn base_url_is_derived_from_a_specific_listen_address() {
    let f = Fixture::new();
    let loaded = f.load(
        "[petitboot]\nprotocol = \"tftp\"\n[http]\nlisten = \"10.1.0.1:8080\"\n[tftp]\nlisten = \"10.1.0.1:69\"\n",
    );
    assert_eq!(errors(&loaded), Vec::<String>::new());
    assert_eq!(
        loaded.lab.http.base_url.as_deref(),
        Some("http://10.1.0.1:8080/")
    );
    assert_eq!(
        loaded.lab.tftp.base_url.as_deref(),
        Some("tftp://10.1.0.1/")
    );
    assert_eq!(
        loaded.lab.boot_server().base_url.as_deref(),
        Some("tftp://10.1.0.1/")
    );
}

#[test]
fn syntax_errors_name_the_line() {
    let f = Fixture::new();
    let loaded = f.load("[http]\nbase_url = \"http://x/\n");
    assert_error(&loaded, "lab.toml: not valid TOML");
    assert_error(&loaded, "line 2");
}

#[test]
fn literal_password_is_accepted_with_a_warning_and_never_shown() {
    let f = Fixture::new();
    let text = format!(
        "[http]\nbase_url = \"http://x/\"\n[[node]]\nname = \"n\"\nmacs = [\"52:54:00:00:00:01\"]\n\
         [node.bmc]\nhost = \"h\"\nusername = \"u\"\npassword = \"hunter2\"\n{DEPLOY}{WHOLE}"
    );
    let loaded = f.load(&text);
    assert_eq!(errors(&loaded), Vec::<String>::new());
    let warnings: Vec<_> = loaded.problems.iter().map(ToString::to_string).collect();
    assert!(
        warnings
            .iter()
            .any(|w| w.contains("bmc.password: a literal password"))
    );
    let debug = format!("{:?}", loaded.lab.nodes[0]);
    let json = serde_json::to_string(&loaded.lab.nodes[0]).unwrap();
    assert!(
        !debug.contains("hunter2") && !json.contains("hunter2"),
        "{debug}\n{json}"
    );
}

#[test]
fn world_readable_password_file_is_warned_about_once() {
    use std::os::unix::fs::PermissionsExt;
    let f = Fixture::new();
    let pw = f.dir.path().join("pw");
    std::fs::set_permissions(&pw, std::fs::Permissions::from_mode(0o644)).unwrap();
    let bmc = "[node.bmc]\nhost = \"h\"\nusername = \"u\"\npassword_file = \"pw\"\n";
    let n = |name: &str, mac: &str| {
        format!("[[node]]\nname = \"{name}\"\nmacs = [\"{mac}\"]\n{bmc}{DEPLOY}{WHOLE}")
    };
    let loaded = f.load(&lab(&[
        n("a", "52:54:00:00:00:01"),
        n("b", "52:54:00:00:00:02"),
    ]));
    let warnings: Vec<_> = loaded.problems.iter().filter(|p| !p.is_error()).collect();
    assert_eq!(warnings.len(), 1, "{warnings:#?}");
    assert!(warnings[0].message.contains("chmod 600"));
    std::fs::set_permissions(&pw, std::fs::Permissions::from_mode(0o600)).unwrap();
    let loaded = f.load(&lab(&[n("a", "52:54:00:00:00:01")]));
    assert!(loaded.problems.is_empty(), "{:#?}", loaded.problems);
}

const N1: &str = "name = \"n1\"\nmacs = [\"52:54:00:00:00:01\"]";

#[test]
fn console_stage_patterns_extend_the_table_and_bad_ones_are_named() {
    let f = Fixture::new();
    let extra = "[[console.stage_pattern]]\npattern = 'Reached target Cloud-init'\nstage = 'login_prompt'\n";
    let loaded = f.load(&format!("{extra}{}", lab(&[node(N1)])));
    assert!(errors(&loaded).is_empty(), "{:?}", errors(&loaded));
    assert_eq!(loaded.lab.stage_patterns.len(), 1);
    assert_eq!(
        loaded.lab.stage_patterns[0].pattern,
        "Reached target Cloud-init"
    );

    let bad = "[[console.stage_pattern]]\npattern = 'unclosed ('\nstage = 'kexec'\n";
    let loaded = f.load(&format!("{bad}{}", lab(&[node(N1)])));
    assert_error(
        &loaded,
        "console.stage_pattern: invalid console stage pattern \"unclosed (\"",
    );

    let unknown = "[[console.stage_pattern]]\npattern = 'x'\nstage = 'lunch'\n";
    let loaded = f.load(&format!("{unknown}{}", lab(&[node(N1)])));
    assert_error(&loaded, "console.stage_pattern");
}

#[test]
fn deploy_interface_and_iscsi_settings_default_and_are_checked() {
    let f = Fixture::new();
    let loaded = f.load(&lab(&[
        node("name = \"a\"\nmacs = [\"52:54:00:00:00:01\"]"),
        node("name = \"i\"\nmacs = [\"52:54:00:00:00:02\"]\ndeploy_interface = \"iscsi\""),
    ]));
    assert!(errors(&loaded).is_empty(), "{:#?}", errors(&loaded));
    let kinds: Vec<_> = loaded
        .lab
        .nodes
        .iter()
        .map(|n| n.deploy_interface)
        .collect();
    assert_eq!(kinds, [DeployInterface::Agent, DeployInterface::Iscsi]);
    assert_eq!(loaded.lab.iscsi, IscsiSettings::default());
    assert_eq!(loaded.lab.iscsi.timeout, std::time::Duration::from_secs(30));

    let text = format!(
        "[iscsi]\ninitiator_name = \"petitlab box\"\ntimeout = 0\n{}",
        lab(&[node(
            "name = \"b\"\nmacs = [\"52:54:00:00:00:03\"]\ndeploy_interface = \"nfs\""
        )])
    );
    let loaded = f.load(&text);
    assert_error(
        &loaded,
        "iscsi.initiator_name: \"petitlab box\" is not an iSCSI name",
    );
    assert_error(&loaded, "iscsi.timeout: 0 is not a number of seconds");
    assert_error(
        &loaded,
        "node b: deploy_interface: unknown deploy_interface \"nfs\"",
    );

    let loaded = f.load(&format!(
        "[iscsi]\ninitiator_name = \"iqn.2026-11.com.example:lab1\"\ntimeout = 7\n{}",
        lab(&[node("name = \"c\"\nmacs = [\"52:54:00:00:00:04\"]")])
    ));
    assert!(errors(&loaded).is_empty(), "{:#?}", errors(&loaded));
    assert_eq!(
        loaded.lab.iscsi.initiator_name,
        "iqn.2026-11.com.example:lab1"
    );
    assert_eq!(loaded.lab.iscsi.timeout, std::time::Duration::from_secs(7));
}

#[test]
fn a_tftp_lab_without_an_http_url_is_warned_that_deploys_need_one() {
    let f = Fixture::new();
    let text = format!(
        "[petitboot]\nprotocol = \"tftp\"\n[tftp]\nbase_url = \"tftp://10.77.0.1/\"\n{}",
        node("name = \"a\"\nmacs = [\"52:54:00:00:00:01\"]")
    );
    let loaded = f.load(&text);
    assert!(errors(&loaded).is_empty(), "{:#?}", errors(&loaded));
    let warned =
        loaded.problems.iter().map(ToString::to_string).any(|p| {
            p.contains("http.base_url: is not set") && p.contains("will refuse every node")
        });
    assert!(warned, "{:#?}", loaded.problems);
}

/// Values a careless or hostile lab.toml may hold: files that are not
/// files, hosts that are options, names past IPMI's limit, system dirs.
#[path = "hostile_tests.rs"]
mod hostile;

/// The hardware-interface keys of `[node.bmc]`: protocol, console, TLS.
#[path = "interfaces_tests.rs"]
mod interfaces;
