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
