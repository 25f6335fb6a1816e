use super::*;
use crate::console::Redactor;
use proptest::prelude::*;

const BIG: LogLimits = LogLimits {
    max_bytes: 1 << 30,
    keep: 1,
};

fn mode(path: &Path) -> u32 {
    fs::metadata(path).unwrap().permissions().mode() & 0o777
}

fn read(path: &Path) -> Vec<u8> {
    fs::read(path).unwrap_or_default()
}

/// Rotated files oldest first, then the live one, concatenated.
fn all_logs(path: &Path, keep: usize) -> Vec<u8> {
    let mut out = Vec::new();
    for n in (1..=keep).rev() {
        out.extend(read(&ConsoleLog::rotated_path(path, n)));
    }
    out.extend(read(path));
    out
}

#[test]
fn creates_file_with_mode_0600_and_appends() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("logs/node01.log");
    let mut log = ConsoleLog::open(&path, BIG, &[""]).unwrap();
    assert_eq!(mode(&path), 0o600);
    log.write(b"hello ").unwrap();
    log.write(b"world\r\n").unwrap();
    log.close().unwrap();
    let mut log = ConsoleLog::open(&path, BIG, &[""]).unwrap();
    log.write(b"again\r\n").unwrap();
    drop(log);
    assert_eq!(read(&path), b"hello world\r\nagain\r\n");
}

#[test]
fn fixes_mode_of_an_existing_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("node01.log");
    fs::write(&path, b"old\n").unwrap();
    fs::set_permissions(&path, Permissions::from_mode(0o644)).unwrap();
    let mut log = ConsoleLog::open(&path, BIG, &[""]).unwrap();
    assert_eq!(mode(&path), 0o600);
    log.write(b"new\n").unwrap();
    drop(log);
    assert_eq!(read(&path), b"old\nnew\n");
}

#[test]
fn rotation_bounds_size_and_count() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("node01.log");
    let limits = LogLimits {
        max_bytes: 100,
        keep: 3,
    };
    let mut log = ConsoleLog::open(&path, limits, &[""]).unwrap();
    let mut input = Vec::new();
    for i in 0..200 {
        let line = format!("line {i:04}\r\n"); // 11 bytes
        input.extend_from_slice(line.as_bytes());
        log.write(line.as_bytes()).unwrap();
    }
    log.close().unwrap();
    for n in 1..=3 {
        let rotated = ConsoleLog::rotated_path(&path, n);
        let data = read(&rotated);
        // Cut after a newline: 9 whole lines fit in 100 bytes.
        assert_eq!(data.len(), 99, "{}", rotated.display());
        assert!(data.ends_with(b"\r\n"));
        assert_eq!(mode(&rotated), 0o600);
    }
    assert!(!ConsoleLog::rotated_path(&path, 4).exists());
    assert!(read(&path).len() <= 100);
    assert_eq!(mode(&path), 0o600);
    // What is kept is exactly the end of the stream.
    assert!(input.ends_with(&all_logs(&path, 3)));
}

#[test]
fn keep_zero_keeps_only_the_live_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("n.log");
    let limits = LogLimits {
        max_bytes: 10,
        keep: 0,
    };
    let mut log = ConsoleLog::open(&path, limits, &[""]).unwrap();
    log.write(b"0123456789abcdef").unwrap();
    drop(log);
    assert_eq!(read(&path), b"abcdef");
    assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 1);
}

#[test]
fn long_line_is_split_at_max_bytes_on_char_boundaries() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("n.log");
    let limits = LogLimits {
        max_bytes: 4,
        keep: 10,
    };
    let mut log = ConsoleLog::open(&path, limits, &[""]).unwrap();
    let text = "abc\u{e9}\u{e9}xyz"; // é is 2 bytes
    log.write(text.as_bytes()).unwrap();
    drop(log);
    let files: Vec<Vec<u8>> = (1..=10)
        .rev()
        .map(|n| read(&ConsoleLog::rotated_path(&path, n)))
        .filter(|d| !d.is_empty())
        .chain([read(&path)])
        .collect();
    assert!(files.iter().all(|f| f.len() <= 4));
    assert!(
        files.iter().all(|f| std::str::from_utf8(f).is_ok()),
        "{files:?}"
    );
    assert_eq!(files.concat(), text.as_bytes());
}

#[test]
fn reopening_a_full_log_rotates_on_first_write() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("n.log");
    fs::write(&path, vec![b'x'; 50]).unwrap();
    let limits = LogLimits {
        max_bytes: 40,
        keep: 2,
    };
    let mut log = ConsoleLog::open(&path, limits, &[""]).unwrap();
    log.write(b"new\n").unwrap();
    drop(log);
    assert_eq!(read(&ConsoleLog::rotated_path(&path, 1)).len(), 50);
    assert_eq!(read(&path), b"new\n");
}

#[test]
fn redacts_across_every_split_point() {
    let dir = tempfile::tempdir().unwrap();
    let data = b"ipmitool -P s3cr3t-pw sol activate; again s3cr3t-pw!\r\n";
    let want = b"ipmitool -P <redacted> sol activate; again <redacted>!\r\n";
    for cut in 0..=data.len() {
        let path = dir.path().join(format!("n{cut}.log"));
        let mut log = ConsoleLog::open(&path, BIG, &["s3cr3t-pw", ""]).unwrap();
        log.write(&data[..cut]).unwrap();
        log.write(&data[cut..]).unwrap();
        log.close().unwrap();
        assert_eq!(read(&path), want, "split at {cut}");
    }
}

#[test]
fn redaction_and_rotation_together() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("n.log");
    let limits = LogLimits {
        max_bytes: 16,
        keep: 50,
    };
    let mut log = ConsoleLog::open(&path, limits, &["hunter2"]).unwrap();
    let data = b"pw hunter2\npw hunter2 hunter2\nend\n";
    for b in data {
        log.write(&[*b]).unwrap();
    }
    log.close().unwrap();
    let all = all_logs(&path, 50);
    assert_eq!(all, Redactor::redact_all(&["hunter2"], data));
    assert!(!String::from_utf8_lossy(&all).contains("hunt"));
}

#[test]
fn drop_writes_held_back_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("n.log");
    let mut log = ConsoleLog::open(&path, BIG, &["hunter2"]).unwrap();
    log.write(b"abc hunt").unwrap();
    assert_eq!(read(&path), b"abc ");
    drop(log);
    assert_eq!(read(&path), b"abc hunt");
}

#[test]
fn idle_flush_writes_a_marker_not_a_secret_prefix() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("n.log");
    let mut log = ConsoleLog::open(&path, BIG, &["hunter2"]).unwrap();
    log.write(b"$ echo hun").unwrap();
    log.flush().unwrap();
    assert_eq!(read(&path), b"$ echo <redacted>");
    log.write(b"ter2\r\n").unwrap();
    log.close().unwrap();
    assert_eq!(read(&path), b"$ echo <redacted>\r\n");
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// Whatever the chunking and limits, the files hold exactly the
    /// redacted stream, each within max_bytes, all but the live one at least
    /// half full, each mode 0600.
    #[test]
    fn no_data_lost(
        data in proptest::collection::vec(
            prop_oneof![3 => any::<u8>(), 1 => Just(b'\n'), 1 => Just(b'p'), 1 => Just(b'w')],
            0..200,
        ),
        sizes in proptest::collection::vec(1usize..50, 1..10),
        max_bytes in 8u64..64,
    ) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("n.log");
        let want = Redactor::redact_all(&["pw"], &data);
        // Room for everything: files are at least half full.
        let keep = 2 * want.len() / max_bytes as usize + 2;
        let mut log = ConsoleLog::open(&path, LogLimits { max_bytes, keep }, &["pw"]).unwrap();
        let mut rest = &data[..];
        for &n in sizes.iter().cycle() {
            if rest.is_empty() {
                break;
            }
            let (chunk, tail) = rest.split_at(n.min(rest.len()));
            log.write(chunk).unwrap();
            rest = tail;
        }
        log.close().unwrap();
        prop_assert_eq!(all_logs(&path, keep), want);
        for entry in fs::read_dir(dir.path()).unwrap() {
            let p = entry.unwrap().path();
            let len = read(&p).len() as u64;
            prop_assert!(len <= max_bytes);
            prop_assert!(p == path || len >= max_bytes / 2, "{} has {len}", p.display());
            prop_assert_eq!(mode(&p), 0o600);
        }
    }
}

#[test]
fn a_deploy_token_is_redacted_even_when_the_log_does_not_know_it() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("n1.log");
    let token = "3f9c00112233445566778899aabbccdd";
    let mut log = ConsoleLog::open(&path, BIG, &["bmc-pw"]).unwrap();
    log.write(b"Kernel command line: petitlab.api=http://h/v1/ petitla")
        .unwrap();
    log.write(format!("b.token={}", &token[..10]).as_bytes())
        .unwrap();
    log.flush().unwrap();
    log.write(format!("{} quiet bmc-pw\r\n", &token[10..]).as_bytes())
        .unwrap();
    log.close().unwrap();
    let text = String::from_utf8(read(&path)).unwrap();
    assert_eq!(
        text,
        "Kernel command line: petitlab.api=http://h/v1/ petitlab.token=<redacted> quiet <redacted>\r\n"
    );
    assert!(!text.contains(&token[..4]));
}
