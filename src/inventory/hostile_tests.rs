use super::*;

/// Runs `f` on a thread and fails the test if it takes over 10 s: a FIFO
/// that is opened for reading blocks until a writer comes, which never does.
fn within_10s<T: Send + 'static>(what: &str, f: impl FnOnce() -> T + Send + 'static) -> T {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(f());
    });
    rx.recv_timeout(std::time::Duration::from_secs(10))
        .unwrap_or_else(|_| panic!("{what} did not finish within 10 s"))
}

fn mkfifo(path: &Path) {
    let status = std::process::Command::new("mkfifo")
        .arg(path)
        .status()
        .expect("run mkfifo (coreutils)");
    assert!(status.success(), "mkfifo {}", path.display());
}

#[test]
fn files_lab_toml_names_must_be_regular_and_are_never_opened_blocking() {
    let f = Fixture::new();
    let d = f.dir.path().to_path_buf();
    for fifo in ["kernel.fifo", "pw.fifo", "template.fifo"] {
        mkfifo(&d.join(fifo));
    }
    std::os::unix::fs::symlink("/dev/zero", d.join("zero-link")).unwrap();
    let text = format!(
        "[petitboot]\nconfig_template = \"template.fifo\"\n\
         [http]\nbase_url = \"http://10.77.0.1:8080\"\n\
         [[node]]\n{N1}\n\
         [node.bmc]\nhost = \"h\"\nusername = \"u\"\npassword_file = \"pw.fifo\"\n\
         [node.deploy]\nkernel = \"kernel.fifo\"\nramdisk = \"/dev/zero\"\n\
         [node.instance]\nimage = \"zero-link\"\n"
    );
    let loaded = within_10s("loading a lab naming FIFOs", move || f.load(&text));
    let fifo = "is a FIFO (named pipe), not a regular file";
    let chardev = "is a character device, not a regular file";
    for needle in [
        format!(
            "petitboot.config_template: {}: {fifo}",
            d.join("template.fifo").display()
        ),
        format!(
            "node n1: bmc.password_file: {}: {fifo}",
            d.join("pw.fifo").display()
        ),
        format!(
            "node n1: deploy.kernel: {}: {fifo}",
            d.join("kernel.fifo").display()
        ),
        format!("node n1: deploy.ramdisk: /dev/zero: {chardev}"),
        format!(
            "node n1: instance.image: {}: {chardev}",
            d.join("zero-link").display()
        ),
    ] {
        assert_error(&loaded, &needle);
    }
    assert_eq!(errors(&loaded).len(), 5, "{:#?}", errors(&loaded));
}

#[test]
fn bmc_username_is_at_most_16_bytes_as_ipmi_allows() {
    let f = Fixture::new();
    let with_user = |name: &str, user: &str, mac: &str| {
        format!(
            "[[node]]\nname = \"{name}\"\nmacs = [\"{mac}\"]\n\
             [node.bmc]\nhost = \"h\"\nusername = \"{user}\"\npassword_env = \"BMC_PW\"\n{DEPLOY}{WHOLE}"
        )
    };
    let loaded = f.load(&lab(&[
        with_user("ok", &"u".repeat(16), "52:54:00:00:00:01"),
        with_user("long", &"u".repeat(17), "52:54:00:00:00:02"),
        // Bytes, not characters: 9 × 'é' is 18 bytes.
        with_user("wide", &"é".repeat(9), "52:54:00:00:00:03"),
    ]));
    assert_error(
        &loaded,
        "node long: bmc.username: is 17 bytes long; IPMI allows at most 16",
    );
    assert_error(
        &loaded,
        "node wide: bmc.username: is 18 bytes long; IPMI allows at most 16",
    );
    assert_eq!(errors(&loaded).len(), 2, "{:#?}", errors(&loaded));
    let names: Vec<_> = loaded.lab.nodes.iter().map(|n| n.name.as_str()).collect();
    assert_eq!(names, ["ok"]);
}

#[test]
fn mixed_mac_separators_are_an_error() {
    let f = Fixture::new();
    let loaded = f.load(&lab(&[node(
        "name = \"n1\"\nmacs = [\"70:e2-84:14:00:01\", \"70-e2-84-14-00-02\", \"70:E2:84:14:00:03\"]",
    )]));
    assert_error(
        &loaded,
        "node n1: macs[0]: \"70:e2-84:14:00:01\" mixes ':' and '-'",
    );
    assert_eq!(errors(&loaded).len(), 1, "{:#?}", errors(&loaded));
}

#[test]
fn bmc_host_is_a_hostname_or_an_address() {
    let f = Fixture::new();
    let with_host = |i: usize, host: &str| {
        format!(
            "[[node]]\nname = \"n{i}\"\nmacs = [\"52:54:00:00:01:{i:02x}\"]\n\
             [node.bmc]\nhost = '{host}'\nusername = \"u\"\npassword_env = \"BMC_PW\"\n{DEPLOY}{WHOLE}"
        )
    };
    let good = [
        "10.77.1.1",
        "bmc-01.lab.example.com",
        "BMC1",
        "localhost",
        "p9_rack1_bmc",
        "bmc.lab.example.",
        "::1",
        "fd00:77::11",
        "fe80::1%eth0",
    ];
    let bad = [
        ("-oProxyCommand=id", "is not a host name or an IP address"),
        ("-bmc", "is not a host name or an IP address"),
        ("bmc-.lab", "is not a host name or an IP address"),
        ("a..b", "is not a host name or an IP address"),
        ("bmc 1", "is not a host name or an IP address"),
        ("", "is not a host name or an IP address"),
        ("10.77.1", "is not an IPv4 address"),
        ("10.77.1.300", "is not an IPv4 address"),
        (
            "10.77.1.1:623",
            "is not a host name or an IP address: the port goes in bmc.port",
        ),
        (
            "bmc1:623",
            "is not a host name or an IP address: the port goes in bmc.port",
        ),
        (
            "[fd00::11]",
            "is not a host name or an IP address: write an IPv6 address without brackets",
        ),
    ];
    let mut nodes: Vec<String> = good
        .iter()
        .enumerate()
        .map(|(i, h)| with_host(i, h))
        .collect();
    nodes.extend(
        bad.iter()
            .enumerate()
            .map(|(i, (h, _))| with_host(good.len() + i, h)),
    );
    let loaded = f.load(&lab(&nodes));
    for (i, (host, why)) in bad.iter().enumerate() {
        let n = good.len() + i;
        assert_error(&loaded, &format!("node n{n}: bmc.host: {host:?} {why}"));
    }
    assert_eq!(errors(&loaded).len(), bad.len(), "{:#?}", errors(&loaded));
    assert_eq!(loaded.lab.nodes.len(), good.len());
}

#[test]
fn served_roots_and_state_may_not_be_system_directories() {
    let f = Fixture::new();
    let d = f.dir.path();
    std::os::unix::fs::symlink("/", d.join("slash")).unwrap();
    std::os::unix::fs::symlink("/etc", d.join("etc-link")).unwrap();
    let text = format!(
        "[http]\nbase_url = \"http://10.77.0.1:8080\"\nroot = \"/\"\n\
         [tftp]\nroot = \"etc-link\"\n\
         [dhcp]\nbackend = \"dnsmasq\"\nhostsdir = \"slash/usr/\"\noptsdir = \"/var/lib/../../var\"\n{}",
        node(N1)
    );
    let loaded = f.load(&text);
    let sys = "a system directory";
    assert_error(&loaded, &format!("http.root: /: is {sys}"));
    let etc = d.join("etc-link");
    assert_error(
        &loaded,
        &format!("tftp.root: {}: is /etc, {sys}", etc.display()),
    );
    let usr = d.join("slash/usr/");
    assert_error(
        &loaded,
        &format!("dhcp.hostsdir: {}: is /usr, {sys}", usr.display()),
    );
    assert_error(
        &loaded,
        &format!("dhcp.optsdir: /var/lib/../../var: is /var, {sys}"),
    );
    assert_eq!(errors(&loaded).len(), 4, "{:#?}", errors(&loaded));

    // A directory below one of them is fine (it is where roots usually live).
    let loaded = f.load(&format!(
        "[http]\nbase_url = \"http://10.77.0.1:8080\"\nroot = \"/var/lib/petitlab-test-unused/http\"\n{}",
        node(N1)
    ));
    assert_eq!(errors(&loaded), Vec::<String>::new());
}

#[test]
fn a_state_dir_or_root_that_exists_and_is_not_a_directory_is_an_error() {
    let f = Fixture::new();
    let d = f.dir.path();
    let loaded = f.load(&format!("state_dir = \"pw\"\n{}", lab(&[node(N1)])));
    let not_dir = "exists and is not a directory";
    assert_error(
        &loaded,
        &format!("state_dir: {}: {not_dir}", d.join("pw").display()),
    );
    // The roots under it are not reported again.
    assert_eq!(errors(&loaded).len(), 1, "{:#?}", errors(&loaded));

    let loaded = f.load(&format!(
        "state_dir = \"state\"\n[http]\nbase_url = \"http://10.77.0.1:8080\"\nroot = \"disk.img\"\n{}",
        node(N1)
    ));
    assert_error(
        &loaded,
        &format!("http.root: {}: {not_dir}", d.join("disk.img").display()),
    );
    assert_eq!(errors(&loaded).len(), 1, "{:#?}", errors(&loaded));
}

#[test]
fn bmc_password_is_at_most_20_bytes_as_ipmi_allows() {
    let f = Fixture::new();
    let long = "p".repeat(21);
    std::fs::write(f.dir.path().join("long-pw"), format!("{long}\n")).unwrap();
    std::fs::write(f.dir.path().join("ok-pw"), format!("{}\n", "p".repeat(20))).unwrap();
    let with_password = |name: &str, password: &str, mac: &str| {
        format!(
            "[[node]]\nname = \"{name}\"\nmacs = [\"{mac}\"]\n\
             [node.bmc]\nhost = \"h\"\nusername = \"u\"\n{password}\n{DEPLOY}{WHOLE}"
        )
    };
    let text = lab(&[
        with_password("file-ok", "password_file = \"ok-pw\"", "52:54:00:00:00:01"),
        with_password("file", "password_file = \"long-pw\"", "52:54:00:00:00:02"),
        with_password("env", "password_env = \"LONG_PW\"", "52:54:00:00:00:03"),
        with_password(
            "literal",
            &format!("password = \"{long}\""),
            "52:54:00:00:00:04",
        ),
        // Bytes, not characters: 11 × 'é' is 22 bytes.
        with_password(
            "wide",
            &format!("password = \"{}\"", "é".repeat(11)),
            "52:54:00:00:00:05",
        ),
    ]);
    let env = Env::from_pairs(&[("HOME", "/home/admin"), ("LONG_PW", &long)]);
    let loaded = from_text(&f.dir.path().join("lab.toml"), &text, &env, &Scope::All);
    for needle in [
        "node file: bmc.password_file: the password file holds 21 bytes; IPMI passwords are at most 20",
        "node env: bmc.password_env: environment variable LONG_PW holds 21 bytes; IPMI passwords are at most 20",
        "node literal: bmc.password: the password holds 21 bytes; IPMI passwords are at most 20",
        "node wide: bmc.password: the password holds 22 bytes",
    ] {
        assert_error(&loaded, needle);
    }
    assert_eq!(errors(&loaded).len(), 4, "{:#?}", errors(&loaded));
    assert!(
        errors(&loaded).iter().all(|e| !e.contains(&long)),
        "an error shows the password: {:#?}",
        errors(&loaded)
    );
}
