use super::*;

// Fact: a 209 with a scheme is used alone; otherwise 210 + 209 by plain
// concatenation, no slash added; no scheme at all means TFTP to the server.
#[test]
fn config_url_is_built_as_petitboot_builds_it() {
    let prefix = Some("http://10.77.0.1:8080/");
    assert_eq!(
        config_url("tftp://10.0.0.9/x/config", prefix),
        Ok("tftp://10.0.0.9/x/config".to_string()),
        "an absolute 209 wins over 210"
    );
    assert_eq!(
        config_url("u1/config", prefix),
        Ok("http://10.77.0.1:8080/u1/config".to_string())
    );
    assert_eq!(
        config_url("u1/config", Some("http://10.77.0.1:8080")),
        Ok("http://10.77.0.1:8080u1/config".to_string()),
        "no slash is added"
    );
    assert_eq!(
        config_url("/u1/config", prefix),
        Ok("http://10.77.0.1:8080//u1/config".to_string())
    );
    assert_eq!(config_url("u1/config", None), Err("u1/config".to_string()));
    assert_eq!(
        config_url("config", Some("pxe/")),
        Err("pxe/config".to_string()),
        "a 210 without a scheme is TFTP too"
    );
}

// Fact: paths without `://` are relative to the config's directory, even
// with a leading `/`.
#[test]
fn relative_kernel_paths_resolve_against_the_config_directory() {
    let config = "http://h:8080/u1/config";
    assert_eq!(resolve(config, "vmlinux"), "http://h:8080/u1/vmlinux");
    assert_eq!(
        resolve(config, "/boot/vmlinux"),
        "http://h:8080/u1/boot/vmlinux"
    );
    assert_eq!(resolve(config, "tftp://t/k"), "tftp://t/k");
    assert_eq!(resolve("http://h", "k"), "http://h/k");
    assert_eq!(resolve("tftp://t/config", "k"), "tftp://t/k");
}

#[test]
fn boot_option_takes_initrd_from_append_and_adds_bootif() {
    let mac: MacAddr = "52:54:00:AB:00:01".parse().unwrap();
    let label = Label {
        name: "deploy".into(),
        kernel: Some("k".into()),
        initrd: Some("http://h/i".into()),
        append: Some("console=hvc0 noinitrd=other quiet".into()),
        ipappend: Some("2".into()),
        ..Label::default()
    };
    let option = BootOption::new(&label, "http://h/u/config", mac);
    assert_eq!(option.kernel, "http://h/u/k");
    assert_eq!(option.initrd.as_deref(), Some("http://h/u/other"));
    assert_eq!(
        option.cmdline,
        "console=hvc0 noinitrd=other quiet BOOTIF=01-52-54-00-ab-00-01"
    );
    let plain = Label {
        append: None,
        ipappend: None,
        ..label
    };
    let option = BootOption::new(&plain, "http://h/u/config", mac);
    assert_eq!(
        (option.initrd.as_deref(), option.cmdline.as_str()),
        (Some("http://h/i"), "")
    );
}

#[test]
fn deploy_args_need_both_api_and_token() {
    let both = "console=hvc0 petitlab.api=http://h/v1/ petitlab.token=ab12";
    assert_eq!(
        deploy_args(both),
        Some(("http://h/v1/".to_string(), "ab12".to_string()))
    );
    assert_eq!(deploy_args("petitlab.api=http://h/v1/"), None);
    assert_eq!(deploy_args("root=/dev/sda2 petitlab.token=x"), None);
}

#[test]
fn disk_image_names_come_from_the_first_line() {
    let dir = tempfile::tempdir().unwrap();
    let disk = dir.path().join("n1.img");
    assert_eq!(disk_image_name(&disk), None, "missing");
    std::fs::write(&disk, b"").unwrap();
    assert_eq!(disk_image_name(&disk), None, "empty");
    std::fs::write(&disk, b"PETITLAB-IMAGE rhel-9.4\nbinary\0\0").unwrap();
    assert_eq!(disk_image_name(&disk).as_deref(), Some("rhel-9.4"));
    let long = format!("  {}\x07\nrest", "x".repeat(300));
    std::fs::write(&disk, long).unwrap();
    assert_eq!(disk_image_name(&disk), Some("x".repeat(60)), "capped");
    std::fs::write(&disk, [0u8; 512]).unwrap();
    assert_eq!(disk_image_name(&disk).as_deref(), Some("unnamed image"));
}

#[test]
fn host_faults_parse_by_name() {
    assert_eq!("agent-silent".parse(), Ok(HostFault::AgentSilent));
    assert_eq!("wrong-token".parse(), Ok(HostFault::WrongToken));
    let err = "bmc-silent".parse::<HostFault>().unwrap_err();
    assert!(err.contains("bmc-silent"), "{err}");
    assert_eq!(HostFault::WrongToken.to_string(), "wrong-token");
}

#[tokio::test]
async fn downloads_refuse_other_schemes_and_report_tftp_errors() {
    let err = download("https://h/x", Keep::Count).await.unwrap_err();
    assert_eq!(err.console_line(), "Unsupported URL scheme: https://h/x");
    // A TFTP server that exists and refuses: petitlab's own.
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("cfg"), b"default x\n").unwrap();
    let any = SocketAddr::from((Ipv4Addr::LOCALHOST, 0));
    let server = crate::serve::tftp::TftpServer::bind(any, dir.path().into(), Default::default())
        .unwrap()
        .spawn();
    let base = format!("tftp://{}", server.local_addr());
    let err = download(&format!("{base}/missing"), Keep::Count)
        .await
        .unwrap_err();
    assert!(
        err.console_line().starts_with("tftp: server error: (1)"),
        "{err:?}"
    );
    let got = download(&format!("{base}/cfg"), Keep::Bytes(100))
        .await
        .unwrap();
    assert_eq!(got, b"default x\n");
    let err = download(&format!("{base}/cfg"), Keep::Bytes(4))
        .await
        .unwrap_err();
    assert!(matches!(err, LoadError::TooLarge(4)), "{err:?}");
    assert_eq!(
        tsize_probe(server.local_addr(), "/cfg").await.unwrap(),
        Some(10)
    );
}

#[test]
fn every_host_fault_round_trips_and_unknown_ones_list_the_known() {
    for fault in HostFault::ALL.into_iter().chain([HostFault::None]) {
        assert_eq!(fault.to_string().parse(), Ok(fault), "{fault}");
    }
    let err = "kernel-500".parse::<HostFault>().unwrap_err();
    for name in [
        "agent-silent",
        "no-dhcp-reply",
        "no-pxe-options",
        "autoboot-off",
        "kernel-404",
        "kexec-fail",
        "silent-kernel",
    ] {
        assert!(err.contains(name), "{err}");
    }
    assert_eq!(HostFault::KexecFail.to_string(), "kexec-fail");
}

/// A one-node virtual lab: dnsmasq's files tagging the node, an HTTP
/// server with its config, kernel and initrd, a disk holding an image.
struct Lab {
    dir: tempfile::TempDir,
    http: crate::serve::http::HttpHandle,
}

const MAC: &str = "52:54:00:aa:bb:01";

impl Lab {
    async fn new() -> Lab {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("http");
        std::fs::create_dir_all(root.join("n1")).unwrap();
        std::fs::write(
            root.join("n1/config"),
            "DEFAULT instance\nLABEL instance\nKERNEL vmlinux\nINITRD initrd\nAPPEND root=/dev/sda2 console=hvc0\n",
        )
        .unwrap();
        std::fs::write(root.join("n1/vmlinux"), vec![7u8; 3000]).unwrap();
        std::fs::write(root.join("n1/initrd"), vec![9u8; 2000]).unwrap();
        let any = SocketAddr::from((Ipv4Addr::LOCALHOST, 0));
        let http = crate::serve::http::HttpServer::bind(any, root, Default::default())
            .await
            .unwrap()
            .spawn();
        for sub in ["hosts", "opts"] {
            std::fs::create_dir_all(dir.path().join(sub)).unwrap();
        }
        std::fs::write(dir.path().join("hosts/n1"), format!("{MAC},set:pl-n1\n")).unwrap();
        let base = format!("http://{}/", http.local_addr());
        std::fs::write(
            dir.path().join("opts/n1"),
            format!("tag:pl-n1,209,\"n1/config\"\ntag:pl-n1,210,\"{base}\"\n"),
        )
        .unwrap();
        std::fs::write(dir.path().join("n1.img"), "PETITLAB-IMAGE test-os\n").unwrap();
        Lab { dir, http }
    }

    fn log(&self) -> PathBuf {
        self.dir.path().join("dnsmasq.log")
    }

    fn host(&self, fault: HostFault) -> VirtualHost {
        VirtualHost {
            node: "n1".into(),
            macs: vec![MAC.parse().unwrap()],
            dhcp: Dhcp::Dnsmasq {
                hostsdir: self.dir.path().join("hosts"),
                optsdir: self.dir.path().join("opts"),
            },
            disk: self.dir.path().join("n1.img"),
            fault,
            dhcp_log: Some(DhcpLog::new(self.log(), 0, None)),
        }
    }

    fn logged(&self) -> String {
        std::fs::read_to_string(self.log()).unwrap_or_default()
    }
}

/// Powers a virtual host on with a PXE boot and returns its console up to
/// `until`, then whatever it prints in the next 100 ms.
async fn console(host: VirtualHost, until: &str) -> (String, String) {
    use crate::sim::chassis::ChassisState;
    use crate::sim::host::{HostSpec, run};
    use crate::sim::serial::SerialPort;
    let (tx, rx) = tokio::sync::watch::channel(ChassisState::default());
    let serial = SerialPort::default();
    let mut out = serial.output();
    let spec = HostSpec {
        node: "n1".into(),
        firmware: virtual_firmware(host),
        line_delay: Duration::ZERO,
        sel: None,
    };
    let task = tokio::spawn(run(spec, rx, serial));
    tx.send(ChassisState {
        power_on: true,
        power_on_count: 1,
        booted_from: BootDevice::Pxe,
        ..ChassisState::default()
    })
    .unwrap();
    let mut seen = String::new();
    let wait = async {
        while !seen.contains(until) {
            seen.push_str(&String::from_utf8_lossy(&out.recv().await.unwrap()));
        }
    };
    if tokio::time::timeout(Duration::from_secs(10), wait)
        .await
        .is_err()
    {
        panic!("no {until:?} on the console; it printed:\n{seen}");
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    let mut after = String::new();
    while let Ok(bytes) = out.try_recv() {
        after.push_str(&String::from_utf8_lossy(&bytes));
    }
    task.abort();
    (seen, after)
}

fn lines_with(log: &str, what: &str) -> usize {
    log.lines().filter(|l| l.contains(what)).count()
}

#[tokio::test]
async fn a_good_netboot_logs_one_exchange_with_209_and_210() {
    let lab = Lab::new().await;
    let (out, _) = console(lab.host(HostFault::None), "n1 login: ").await;
    assert!(
        out.contains("[net] eth0: link up, DHCP offer for 52:54:00:aa:bb:01"),
        "{out}"
    );
    let log = lab.logged();
    let pid = std::process::id();
    for what in [
        "DHCPDISCOVER(sim0) 52:54:00:aa:bb:01 ",
        "DHCPOFFER(sim0) 10.77.0.10 52:54:00:aa:bb:01 ",
        "DHCPACK(sim0) 10.77.0.10",
    ] {
        assert_eq!(lines_with(&log, what), 1, "{what} in\n{log}");
    }
    assert_eq!(lines_with(&log, "tags: pl-n1, known, sim0"), 2, "{log}");
    assert_eq!(
        lines_with(&log, &format!("dnsmasq-dhcp[{pid}]: ")),
        18,
        "{log}"
    );
    // 209 is "n1/config" (9 bytes): uncut.
    assert_eq!(
        lines_with(
            &log,
            "sent size:  9 option:209   6e:31:2f:63:6f:6e:66:69:67"
        ),
        2,
        "{log}"
    );
    let base = format!("http://{}/", lab.http.local_addr());
    let size = format!("sent size:{:3} option:210   ", base.len());
    assert_eq!(lines_with(&log, &size), 2, "{log}");
    // One transaction id on every line of the exchange.
    let ids: std::collections::HashSet<&str> = log
        .lines()
        .filter_map(|l| l.split(": ").nth(1)?.split(' ').next())
        .collect();
    assert_eq!(ids.len(), 1, "{log}");
    // A second boot appends a second exchange.
    console(lab.host(HostFault::None), "n1 login: ").await;
    assert_eq!(lines_with(&lab.logged(), "DHCPACK"), 2);
}

#[tokio::test]
async fn no_dhcp_reply_logs_nothing_and_boots_the_disk() {
    let lab = Lab::new().await;
    let (out, _) = console(lab.host(HostFault::NoDhcpReply), "n1 login: ").await;
    assert_eq!(
        lines_with(&out, "udhcpc: broadcasting discover"),
        3,
        "{out}"
    );
    assert!(out.contains("udhcpc: no lease, failing"), "{out}");
    assert!(
        out.contains("udhcp client [pid 1183] for interface eth0 exited, rc 1"),
        "{out}"
    );
    assert!(
        !out.contains("[net]") && !out.contains("pxeconffile"),
        "{out}"
    );
    assert!(out.contains("Booting 'test-os' from /dev/sda2"), "{out}");
    assert_eq!(lab.logged(), "", "dnsmasq heard nothing");
}

#[tokio::test]
async fn no_dhcp_reply_without_an_image_sits_at_the_prompt() {
    let lab = Lab::new().await;
    std::fs::remove_file(lab.dir.path().join("n1.img")).unwrap();
    let (out, _) = console(lab.host(HostFault::NoDhcpReply), PETITBOOT_PROMPT).await;
    assert!(out.contains("udhcpc: no lease, failing\r\n"), "{out}");
    assert!(out.contains("[disk] sda: no boot options found"), "{out}");
}

#[tokio::test]
async fn no_pxe_options_acks_without_209_and_210() {
    let lab = Lab::new().await;
    let (out, _) = console(lab.host(HostFault::NoPxeOptions), "n1 login: ").await;
    assert!(
        out.contains("[net] eth0: no petitboot options in the DHCP offer"),
        "{out}"
    );
    assert!(!out.contains("pxeconffile"), "{out}");
    let log = lab.logged();
    assert_eq!(lines_with(&log, "DHCPACK(sim0)"), 1, "{log}");
    assert_eq!(lines_with(&log, "tags: known, sim0"), 2, "{log}");
    assert_eq!(lines_with(&log, "pl-n1"), 0, "{log}");
    assert_eq!(lines_with(&log, "option:209"), 0, "{log}");
    assert_eq!(lines_with(&log, "option:210"), 0, "{log}");
    assert_eq!(lines_with(&log, "message-type  5"), 1, "{log}");
}

#[tokio::test]
async fn autoboot_off_parses_the_config_and_waits() {
    let lab = Lab::new().await;
    let (out, after) = console(lab.host(HostFault::AutobootOff), PETITBOOT_PROMPT).await;
    assert!(
        out.contains("configuration:\r\n autoboot: disabled\r\n"),
        "{out}"
    );
    assert!(
        out.contains("device_handler_status: Download complete: config"),
        "{out}"
    );
    assert!(out.contains("is resolved, sending to clients"), "{out}");
    assert!(
        !out.contains("set as default") && !out.contains("Timeout expired"),
        "{out}"
    );
    assert!(!out.contains("kernel image"), "{out}");
    assert_eq!(after, "");
    assert_eq!(lines_with(&lab.logged(), "DHCPACK"), 1);
}

#[tokio::test]
async fn kernel_404_asks_for_a_name_never_staged() {
    let lab = Lab::new().await;
    let (out, _) = console(lab.host(HostFault::Kernel404), PETITBOOT_PROMPT).await;
    let url = format!("http://{}/n1/vmlinux-missing", lab.http.local_addr());
    assert!(
        out.contains("wget: server returned error: HTTP/1."),
        "{out}"
    );
    assert!(out.contains(" 404 "), "{out}");
    assert!(
        out.contains(&format!("Failed to load kernel image from {url}")),
        "{out}"
    );
    assert!(
        out.contains(&format!(
            "boot status: [1] Couldn't load kernel image from {url}"
        )),
        "{out}"
    );
    assert!(out.contains("Failed to load all boot resources"), "{out}");
    assert!(!out.contains("kexec"), "{out}");
}

#[tokio::test]
async fn kexec_fail_loads_everything_then_fails_as_a_boot_failure() {
    use crate::console::stages::Stage;
    let lab = Lab::new().await;
    let (out, after) = console(lab.host(HostFault::KexecFail), PETITBOOT_PROMPT).await;
    assert!(out.contains("boot status: [1] Loaded initrd from"), "{out}");
    let tail: Vec<&str> = out.lines().rev().take(5).collect();
    assert_eq!(
        tail,
        [
            PETITBOOT_PROMPT,
            "boot status: [1] kexec load failed",
            "kexec_load: failed: (255)",
            "kexec_load failed: Invalid argument",
            "boot status: [0] Performing kexec load",
        ]
    );
    assert!(!out.contains("Performing kexec reboot"), "{out}");
    assert_eq!(after, "");
    let stages = stage_of_lines(&out);
    assert!(stages.contains(&Stage::BootFailed), "{stages:?}");
}

#[tokio::test]
async fn silent_kernel_goes_quiet_after_the_kexec() {
    let lab = Lab::new().await;
    let (out, after) = console(lab.host(HostFault::SilentKernel), "Starting new kernel").await;
    assert!(
        out.ends_with(
            "device_handler_status: Performing kexec reboot\r\nkexec_core: Starting new kernel\r\n"
        ),
        "{out}"
    );
    assert_eq!(after, "", "the new kernel printed something");
}

/// The stages the console detector sees in `out`, line by line.
fn stage_of_lines(out: &str) -> Vec<crate::console::stages::Stage> {
    let mut detector = crate::console::stages::StageDetector::new(&[]).unwrap();
    detector
        .feed(out.as_bytes())
        .into_iter()
        .map(|e| e.stage)
        .collect()
}
