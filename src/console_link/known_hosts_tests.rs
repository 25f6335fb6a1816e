use std::os::unix::fs::PermissionsExt;

use super::*;

/// A wire-encoded key of `key_type` with `body` as its only other field.
fn blob(key_type: &str, body: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    out.extend_from_slice(&(key_type.len() as u32).to_be_bytes());
    out.extend_from_slice(key_type.as_bytes());
    out.extend_from_slice(&(body.len() as u32).to_be_bytes());
    out.extend_from_slice(body);
    out
}

fn line(host: &str, key_type: &str, body: &[u8]) -> String {
    format!(
        "{host} {key_type} {}\n",
        STANDARD.encode(blob(key_type, body))
    )
}

fn malformed_line(err: KnownHostsError) -> (usize, String) {
    match err {
        KnownHostsError::Malformed { line, problem, .. } => (line, problem),
        other => panic!("expected a malformed-line error, got {other}"),
    }
}

#[test]
fn fingerprint_matches_ssh_keygen() {
    // `ssh-keygen -lf` printed this fingerprint for this key.
    let key = "AAAAC3NzaC1lZDI1NTE5AAAAIABfIm+2t1GuhX9ht8FQbTn8NzYkbez0cHTKf1JC8dFp";
    let blob = STANDARD.decode(key).unwrap();
    assert_eq!(
        fingerprint(&blob),
        "SHA256:mexos9VtQl4ukF5aKwKkWUt5L93vZ4jFH0ieR2FwENE"
    );
    assert_eq!(wire_key_type(&blob), Some("ssh-ed25519"));
}

#[test]
fn parses_comments_blank_lines_several_hosts_and_comments_after_keys() {
    let text = format!(
        "# petitlab\n\n{}[bmc2]:2200,[BMC3]:2200 {} {} a comment\r\n",
        line("[bmc1]:2200", "ssh-ed25519", b"one"),
        "ssh-rsa",
        STANDARD.encode(blob("ssh-rsa", b"two")),
    );
    let entries = parse(&text, Path::new("kh")).unwrap();
    assert_eq!(entries.len(), 2);
    assert_eq!(entries[0].line, 3);
    assert_eq!(entries[0].hosts, vec!["[bmc1]:2200"]);
    assert_eq!(entries[1].line, 4);
    assert_eq!(entries[1].hosts, vec!["[bmc2]:2200", "[bmc3]:2200"]);
    assert_eq!(entries[1].key_type, "ssh-rsa");
    assert_eq!(entries[1].blob, blob("ssh-rsa", b"two"));
}

#[test]
fn garbage_lines_are_errors_naming_the_line() {
    let cases: &[(&str, &str)] = &[
        ("just-a-host\n", "expected"),
        ("[h]:1 ssh-ed25519 !!!notbase64\n", "not base64"),
        ("[h]:1 ssh-ed25519 AAAA\n", "not an SSH public key"),
        ("@revoked [h]:1 ssh-ed25519 AAAA\n", "markers"),
        ("|1|abc=|def= ssh-ed25519 AAAA\n", "hashed"),
        ("[h]:1 ssh\u{7}rsa AAAA\n", "control character"),
    ];
    for (text, expected) in cases {
        let text = format!("# ok\n{text}");
        let (line, problem) = malformed_line(parse(&text, Path::new("kh")).unwrap_err());
        assert_eq!(line, 2, "{text:?}");
        assert!(problem.contains(expected), "{text:?}: {problem}");
    }
    // A key whose own type disagrees with the line's.
    let text = format!(
        "[h]:1 ssh-ed25519 {}\n",
        STANDARD.encode(blob("ssh-rsa", b"x"))
    );
    let (_, problem) = malformed_line(parse(&text, Path::new("kh")).unwrap_err());
    assert!(problem.contains("ssh-rsa"), "{problem}");
}

#[test]
fn hostile_bytes_give_errors_not_panics() {
    // Lengths that overflow, truncated fields, random binary.
    let mut wild = vec![0xff, 0xff, 0xff, 0xff];
    wild.extend_from_slice(b"ssh");
    let text = format!("[h]:1 ssh-ed25519 {}\n", STANDARD.encode(&wild));
    assert!(parse(&text, Path::new("kh")).is_err());
    for seed in 0u32..200 {
        let bytes: Vec<u8> = (0..64u32)
            .map(|i| (seed.wrapping_mul(2_654_435_761).wrapping_add(i * 40_503) >> 7) as u8)
            .collect();
        let text = format!("[h]:1 ssh-ed25519 {}\n", STANDARD.encode(&bytes));
        let _ = parse(&text, Path::new("kh"));
        let lossy = String::from_utf8_lossy(&bytes).into_owned();
        let _ = parse(&lossy, Path::new("kh"));
    }
}

#[test]
fn first_use_records_the_key_in_a_private_file_and_directory() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state/petitlab/known_hosts");
    let key = blob("ssh-ed25519", b"first");
    let verdict = check_and_record(&path, "BMC1.lab", 2200, "ssh-ed25519", &key).unwrap();
    assert_eq!(verdict, Verdict::Recorded);
    let text = fs::read_to_string(&path).unwrap();
    assert_eq!(
        text,
        format!("[bmc1.lab]:2200 ssh-ed25519 {}\n", STANDARD.encode(&key))
    );
    let mode = |p: &Path| fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&path), 0o600);
    assert_eq!(mode(path.parent().unwrap()), 0o700);
    // No temporary file left behind.
    assert_eq!(fs::read_dir(path.parent().unwrap()).unwrap().count(), 1);

    // The same key again: known, file unchanged.
    let again = check_and_record(&path, "bmc1.lab", 2200, "ssh-ed25519", &key).unwrap();
    assert_eq!(again, Verdict::Known);
    assert_eq!(fs::read_to_string(&path).unwrap(), text);
}

#[test]
fn other_hosts_and_ports_are_kept_and_do_not_match() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("known_hosts");
    // A file without a final newline, written by hand.
    let existing = line("[bmc1]:2200", "ssh-ed25519", b"a");
    fs::write(&path, existing.trim_end()).unwrap();
    let key = blob("ssh-ed25519", b"b");
    // Same host, another port: a different console, a new entry.
    assert_eq!(
        check_and_record(&path, "bmc1", 2201, "ssh-ed25519", &key).unwrap(),
        Verdict::Recorded
    );
    let text = fs::read_to_string(&path).unwrap();
    assert!(text.starts_with(&existing), "{text}");
    assert_eq!(text.lines().count(), 2);
}

#[test]
fn a_changed_key_names_the_line_and_both_fingerprints() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("known_hosts");
    let old = blob("ssh-ed25519", b"old");
    fs::write(
        &path,
        format!(
            "# mine\n{}{}",
            line("[other]:2200", "ssh-ed25519", b"x"),
            line("[bmc1]:2200", "ssh-ed25519", b"old")
        ),
    )
    .unwrap();
    let before = fs::read_to_string(&path).unwrap();
    let new = blob("ssh-ed25519", b"new");
    let verdict = check_and_record(&path, "bmc1", 2200, "ssh-ed25519", &new).unwrap();
    assert_eq!(
        verdict,
        Verdict::Changed {
            line: 3,
            old_type: "ssh-ed25519".into(),
            old_fingerprint: fingerprint(&old),
        }
    );
    // Another key type for a known host is a change too, not a new host.
    let rsa = blob("ssh-rsa", b"new");
    assert!(matches!(
        check_and_record(&path, "bmc1", 2200, "ssh-rsa", &rsa).unwrap(),
        Verdict::Changed { line: 3, .. }
    ));
    assert_eq!(fs::read_to_string(&path).unwrap(), before, "file untouched");
}

#[test]
fn port_22_matches_openssh_bare_host_lines() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("known_hosts");
    fs::write(&path, line("bmc1", "ssh-ed25519", b"k")).unwrap();
    let key = blob("ssh-ed25519", b"k");
    assert_eq!(
        check_and_record(&path, "bmc1", 22, "ssh-ed25519", &key).unwrap(),
        Verdict::Known
    );
    // ...but not for another port.
    assert_eq!(
        check_and_record(&path, "bmc1", 2200, "ssh-ed25519", &key).unwrap(),
        Verdict::Recorded
    );
}

#[test]
fn a_garbage_file_is_refused_and_left_alone() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("known_hosts");
    fs::write(&path, b"\x00\xff\xfe binary junk\n").unwrap();
    let key = blob("ssh-ed25519", b"k");
    let err = check_and_record(&path, "bmc1", 2200, "ssh-ed25519", &key).unwrap_err();
    assert!(matches!(err, KnownHostsError::NotText { .. }), "{err}");
    assert!(err.to_string().contains(&path.display().to_string()));

    fs::write(&path, "[bmc1]:2200 ssh-ed25519\n").unwrap();
    let err = check_and_record(&path, "bmc1", 2200, "ssh-ed25519", &key).unwrap_err();
    let message = err.to_string();
    assert!(message.contains("line 1"), "{message}");
    assert_eq!(
        fs::read_to_string(&path).unwrap(),
        "[bmc1]:2200 ssh-ed25519\n"
    );
}

#[test]
fn an_oversized_file_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("known_hosts");
    let file = fs::File::create(&path).unwrap();
    file.set_len(MAX_FILE_BYTES + 1).unwrap();
    let err = check_and_record(
        &path,
        "bmc1",
        2200,
        "ssh-ed25519",
        &blob("ssh-ed25519", b"k"),
    )
    .unwrap_err();
    assert!(matches!(err, KnownHostsError::TooLarge { .. }), "{err}");
}

#[test]
fn host_names_that_would_break_the_format_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("known_hosts");
    let key = blob("ssh-ed25519", b"k");
    for host in ["", "a b", "a,b", "[a]:1", "a\nb", "*"] {
        let err = check_and_record(&path, host, 2200, "ssh-ed25519", &key).unwrap_err();
        assert!(
            matches!(err, KnownHostsError::BadHost { .. }),
            "{host:?}: {err}"
        );
    }
    assert!(!path.exists());
    // IPv4 and IPv6 addresses are fine.
    for host in ["192.0.2.1", "fe80::1"] {
        assert_eq!(
            check_and_record(&path, host, 2200, "ssh-ed25519", &key).unwrap(),
            Verdict::Recorded
        );
    }
    let text = fs::read_to_string(&path).unwrap();
    assert!(text.contains("[fe80::1]:2200 ssh-ed25519 "), "{text}");
}

#[test]
fn an_unreadable_path_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    // A directory where the file should be.
    let path = dir.path().join("known_hosts");
    fs::create_dir(&path).unwrap();
    let err = check_and_record(
        &path,
        "bmc1",
        2200,
        "ssh-ed25519",
        &blob("ssh-ed25519", b"k"),
    )
    .unwrap_err();
    assert!(err.to_string().contains("known_hosts"), "{err}");
}
