use super::*;
use crate::console::Redactor;
use crate::console::cast::{self, Cast};
use proptest::prelude::*;
use std::sync::{Arc, Mutex};

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

/// The file as a cast, which it must be, with no line skipped.
fn parse(path: &Path) -> Cast {
    let cast = cast::parse(&read(path)).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    assert_eq!(cast.skipped, 0, "{}", path.display());
    cast
}

/// The text of a cast file.
fn text(path: &Path) -> String {
    cast::render(&parse(path), false)
}

/// Rotated files oldest first, then the live one: their texts concatenated.
fn all_text(path: &Path, keep: usize) -> String {
    let mut out = String::new();
    for n in (1..=keep).rev() {
        let rotated = ConsoleLog::rotated_path(path, n);
        if rotated.exists() {
            out.push_str(&text(&rotated));
        }
    }
    if path.exists() {
        out.push_str(&text(path));
    }
    out
}

/// A clock the test sets.
fn fake_clock(start: f64) -> (Arc<Mutex<f64>>, Clock) {
    let now = Arc::new(Mutex::new(start));
    let read = now.clone();
    (now, Box::new(move || *read.lock().unwrap()))
}

#[test]
fn writes_a_header_then_one_event_per_write() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("node01.cast");
    let (now, clock) = fake_clock(1_700_000_000.75);
    let mut log = ConsoleLog::open_with_clock(path.clone(), BIG, &[""], clock).unwrap();
    *now.lock().unwrap() += 0.5;
    log.write(b"hi \"x\"\\ \x1b[1m\r\n").unwrap();
    *now.lock().unwrap() += 2.0;
    log.write("é\t".as_bytes()).unwrap();
    log.close().unwrap();
    assert_eq!(
        String::from_utf8(read(&path)).unwrap(),
        concat!(
            r#"{"version":2,"width":80,"height":24,"timestamp":1700000000,"title":"node01 console"}"#,
            "\n",
            r#"[1.25,"o","hi \"x\"\\ \u001b[1m\r\n"]"#,
            "\n",
            "[3.25,\"o\",\"é\\t\"]\n",
        )
    );
}

#[test]
fn creates_file_with_mode_0600_and_appends() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("logs/node01.cast");
    let mut log = ConsoleLog::open(&path, BIG, &[""]).unwrap();
    assert_eq!(mode(&path), 0o600);
    log.write(b"hello ").unwrap();
    log.write(b"world\r\n").unwrap();
    log.close().unwrap();
    let mut log = ConsoleLog::open(&path, BIG, &[""]).unwrap();
    log.write(b"again\r\n").unwrap();
    drop(log);
    let cast = parse(&path);
    assert_eq!(cast.events.len(), 3, "one header, three events");
    assert_eq!(cast::render(&cast, false), "hello world\r\nagain\r\n");
    let now = system_clock() as i64;
    assert!(
        (now - 60..=now).contains(&cast.timestamp),
        "{}",
        cast.timestamp
    );
    assert!(cast.events.iter().all(|e| (0.0..60.0).contains(&e.time)));
}

#[test]
fn fixes_mode_of_an_existing_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("node01.cast");
    drop(ConsoleLog::open(&path, BIG, &[""]).unwrap());
    fs::set_permissions(&path, Permissions::from_mode(0o644)).unwrap();
    let mut log = ConsoleLog::open(&path, BIG, &[""]).unwrap();
    assert_eq!(mode(&path), 0o600);
    log.write(b"new\n").unwrap();
    drop(log);
    assert_eq!(text(&path), "new\n");
}

#[test]
fn a_file_that_is_not_a_cast_is_rotated_away() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("n.cast");
    fs::write(&path, b"old raw log\n").unwrap();
    let mut log = ConsoleLog::open(&path, BIG, &[""]).unwrap();
    log.write(b"new\n").unwrap();
    drop(log);
    assert_eq!(read(&ConsoleLog::rotated_path(&path, 1)), b"old raw log\n");
    assert_eq!(text(&path), "new\n");
}

#[test]
fn a_torn_last_line_is_cut_off_at_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("n.cast");
    let mut log = ConsoleLog::open(&path, BIG, &[""]).unwrap();
    log.write(b"whole\n").unwrap();
    drop(log);
    // A crash in the middle of the next event.
    let mut file = OpenOptions::new().append(true).open(&path).unwrap();
    file.write_all(br#"[9.5,"o","tor"#).unwrap();
    drop(file);
    assert_eq!(cast::parse(&read(&path)).unwrap().skipped, 1);
    let mut log = ConsoleLog::open(&path, BIG, &[""]).unwrap();
    log.write(b"after\n").unwrap();
    drop(log);
    assert_eq!(text(&path), "whole\nafter\n"); // and nothing skipped
}

#[test]
fn utf8_split_across_writes_is_carried_and_invalid_bytes_replaced() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("n.cast");
    let mut log = ConsoleLog::open(&path, BIG, &[""]).unwrap();
    // é (c3 a9) and 中 (e4 b8 ad) split between writes.
    log.write(b"a\xc3").unwrap();
    log.write(b"\xa9 \xe4").unwrap();
    log.write(b"\xb8").unwrap();
    log.flush().unwrap(); // idle: the character still waits for its end
    log.write(b"\xad \xff\xfe b \xe4\xb8").unwrap();
    log.close().unwrap(); // never ended: replaced
    let cast = parse(&path);
    let data: Vec<&str> = cast.events.iter().map(|e| e.data.as_str()).collect();
    assert_eq!(data, ["a", "é ", "中 \u{fffd}\u{fffd} b ", "\u{fffd}"]);
}

#[test]
fn times_count_from_each_files_header_and_never_go_back() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("n.cast");
    let limits = LogLimits {
        max_bytes: 0, // raised to the minimum
        keep: 1,
    };
    let (now, clock) = fake_clock(1_000_000.5);
    let mut log = ConsoleLog::open_with_clock(path.clone(), limits, &[""], clock).unwrap();
    let max = log.limits.max_bytes;
    *now.lock().unwrap() = 1_000_010.0;
    log.write(b"ten\n").unwrap();
    *now.lock().unwrap() = 1_000_005.0; // the clock stepped back
    log.write(b"still ten\n").unwrap();
    *now.lock().unwrap() = 1_000_100.25;
    let long = "x".repeat(max as usize);
    log.write(long.as_bytes()).unwrap();
    drop(log);
    let old = parse(&ConsoleLog::rotated_path(&path, 1));
    let live = parse(&path);
    assert_eq!(old.timestamp, 1_000_000);
    let times: Vec<f64> = old.events.iter().map(|e| e.time).collect();
    assert_eq!(times, [10.0, 10.0, 100.25]);
    assert_eq!(live.timestamp, 1_000_100);
    assert_eq!(live.events[0].time, 0.25);
    assert_eq!(
        format!(
            "{}{}",
            cast::render(&old, false),
            cast::render(&live, false)
        ),
        format!("ten\nstill ten\n{long}")
    );
}

#[test]
fn rotation_bounds_size_and_count() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("node01.cast");
    let limits = LogLimits {
        max_bytes: 1000,
        keep: 3,
    };
    let mut log = ConsoleLog::open(&path, limits, &[""]).unwrap();
    let mut input = String::new();
    for i in 0..500 {
        let line = format!("line {i:04}\r\n");
        input.push_str(&line);
        log.write(line.as_bytes()).unwrap();
    }
    log.close().unwrap();
    for n in 1..=3 {
        let rotated = ConsoleLog::rotated_path(&path, n);
        let len = read(&rotated).len();
        assert!((500..=1000).contains(&len), "{}: {len}", rotated.display());
        // Whole events, so whole lines here.
        assert!(text(&rotated).ends_with("\r\n"));
        assert_eq!(mode(&rotated), 0o600);
    }
    assert!(!ConsoleLog::rotated_path(&path, 4).exists());
    assert!(read(&path).len() <= 1000);
    assert_eq!(mode(&path), 0o600);
    // What is kept is exactly the end of the stream.
    let kept = all_text(&path, 3);
    assert!(kept.len() > 1000);
    assert!(input.ends_with(&kept));
}

#[test]
fn keep_zero_keeps_only_the_live_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("n.cast");
    let limits = LogLimits {
        max_bytes: 10,
        keep: 0,
    };
    let mut log = ConsoleLog::open(&path, limits, &[""]).unwrap();
    let max = log.limits.max_bytes as usize;
    log.write(&vec![b'a'; max]).unwrap();
    log.write(b"bcdef").unwrap();
    drop(log);
    assert!(text(&path).ends_with("abcdef"));
    assert!(text(&path).len() < max);
    assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 1);
}

#[test]
fn long_write_is_split_into_valid_files_on_char_boundaries() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("n.cast");
    let limits = LogLimits {
        max_bytes: 0,
        keep: 50,
    };
    let mut log = ConsoleLog::open(&path, limits, &[""]).unwrap();
    let max = log.limits.max_bytes;
    // Characters of every encoded width: 1, 2, 3 and 6 (\u001b) bytes.
    let text = "abc\u{e9}\u{4e2d}\x1b\n".repeat(max as usize / 4);
    log.write(text.as_bytes()).unwrap();
    drop(log);
    assert!(ConsoleLog::rotated_path(&path, 2).exists());
    for n in 1..=50 {
        let rotated = ConsoleLog::rotated_path(&path, n);
        if rotated.exists() {
            assert!(read(&rotated).len() as u64 <= max);
            parse(&rotated);
        }
    }
    assert_eq!(all_text(&path, 50), text);
}

#[test]
fn reopening_a_full_log_rotates_on_first_write() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("n.cast");
    let limits = LogLimits {
        max_bytes: 0,
        keep: 2,
    };
    let mut log = ConsoleLog::open(&path, BIG, &[""]).unwrap();
    log.write(&[b'x'; 2000]).unwrap();
    drop(log);
    let mut log = ConsoleLog::open(&path, limits, &[""]).unwrap();
    assert!(log.limits.max_bytes < 2000);
    log.write(b"new\n").unwrap();
    drop(log);
    assert_eq!(text(&ConsoleLog::rotated_path(&path, 1)), "x".repeat(2000));
    assert_eq!(text(&path), "new\n");
}

#[test]
fn redacts_across_every_split_point() {
    let dir = tempfile::tempdir().unwrap();
    let data = b"ipmitool -P s3cr3t-pw sol activate; again s3cr3t-pw!\r\n";
    let want = "ipmitool -P <redacted> sol activate; again <redacted>!\r\n";
    for cut in 0..=data.len() {
        let path = dir.path().join(format!("n{cut}.cast"));
        let mut log = ConsoleLog::open(&path, BIG, &["s3cr3t-pw", ""]).unwrap();
        log.write(&data[..cut]).unwrap();
        log.write(&data[cut..]).unwrap();
        log.close().unwrap();
        assert_eq!(text(&path), want, "split at {cut}");
        assert!(!String::from_utf8_lossy(&read(&path)).contains("s3cr3t"));
    }
}

#[test]
fn redaction_and_rotation_together() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("n.cast");
    let limits = LogLimits {
        max_bytes: 0,
        keep: 50,
    };
    let mut log = ConsoleLog::open(&path, limits, &["hunter2"]).unwrap();
    let data = b"pw hunter2\npw hunter2 hunter2\nend\n".repeat(40);
    for b in &data {
        log.write(&[*b]).unwrap();
    }
    log.close().unwrap();
    assert!(ConsoleLog::rotated_path(&path, 1).exists());
    let all = all_text(&path, 50);
    assert_eq!(
        all.as_bytes(),
        Redactor::redact_all(&["hunter2"], &data).as_slice()
    );
    assert!(!all.contains("hunt"));
}

#[test]
fn drop_writes_held_back_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("n.cast");
    let mut log = ConsoleLog::open(&path, BIG, &["hunter2"]).unwrap();
    log.write(b"abc hunt").unwrap();
    assert_eq!(text(&path), "abc ");
    drop(log);
    assert_eq!(text(&path), "abc hunt");
}

#[test]
fn idle_flush_writes_a_marker_not_a_secret_prefix() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("n.cast");
    let mut log = ConsoleLog::open(&path, BIG, &["hunter2"]).unwrap();
    log.write(b"$ echo hun").unwrap();
    log.flush().unwrap();
    assert_eq!(text(&path), "$ echo <redacted>");
    log.write(b"ter2\r\n").unwrap();
    log.close().unwrap();
    assert_eq!(text(&path), "$ echo <redacted>\r\n");
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// Whatever the chunking and limits, the files are valid casts holding
    /// exactly the redacted stream (decoded as lossy UTF-8), each within
    /// max_bytes, all but the live one at least half full, each mode 0600.
    #[test]
    fn no_data_lost(
        data in proptest::collection::vec(
            prop_oneof![
                3 => any::<u8>(),
                1 => Just(b'\n'),
                1 => Just(b'p'),
                1 => Just(b'w'),
                1 => Just(0xe4u8),
                1 => Just(0xb8u8),
            ],
            0..1500,
        ),
        sizes in proptest::collection::vec(1usize..300, 1..10),
        max_bytes in 0u64..1200,
    ) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("n.cast");
        let want = String::from_utf8_lossy(&Redactor::redact_all(&["pw"], &data)).into_owned();
        let keep = 40;
        let mut log = ConsoleLog::open(&path, LogLimits { max_bytes, keep }, &["pw"]).unwrap();
        let max_bytes = log.limits.max_bytes;
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
        prop_assert!(!ConsoleLog::rotated_path(&path, keep).exists(), "keep too small");
        prop_assert_eq!(all_text(&path, keep), want);
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
    let path = dir.path().join("n1.cast");
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
    let text = text(&path);
    assert_eq!(
        text,
        "Kernel command line: petitlab.api=http://h/v1/ petitlab.token=<redacted> quiet <redacted>\r\n"
    );
    assert!(!String::from_utf8_lossy(&read(&path)).contains(&token[..4]));
}
