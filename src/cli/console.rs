//! `petitlab console NODE`: the node's serial console (IPMI SOL, SSH to
//! obmc-console or bmcweb's websocket, as lab.toml says) in this
//! terminal, like `ipmitool sol activate` (`~.` quits, `~B` breaks, `~?`
//! helps; `-e CHAR` picks another escape character, `-e none` turns them
//! off), logged to the state dir as an asciinema cast. `--log` follows
//! that log as text instead (`--timestamps`: each line with its UTC time).
//! `--deactivate` frees a SOL payload a killed console left active.

use std::io::Write;
use std::os::unix::fs::DirBuilderExt;
use std::path::Path;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use petitlab::console::escape::EscapeChar;
use petitlab::console::gap::now_ms;
use petitlab::console::{
    Action, ConsoleLog, EscapeMachine, GapTracker, LOG_LIMITS, cast, log_path,
};
use petitlab::console_link::{ConsoleEvent, ConsoleInput};
use petitlab::inventory::{Lab, Node};
use petitlab::text::display_safe;

use super::out::{self, errln};

/// Raw mode for the life of the console, restored however it ends.
pub(super) struct RawTerminal(bool);

impl RawTerminal {
    pub(super) fn enable() -> RawTerminal {
        use std::io::IsTerminal;
        let tty = std::io::stdin().is_terminal();
        // Without a terminal (piped input) there is no mode to change.
        RawTerminal(tty && crossterm::terminal::enable_raw_mode().is_ok())
    }
}

impl Drop for RawTerminal {
    fn drop(&mut self) {
        if self.0 {
            let _ = crossterm::terminal::disable_raw_mode();
        }
    }
}

/// Keystrokes from a plain thread: a blocking read of stdin cannot be
/// cancelled, and in tokio's pool it would hold up the exit after `~.`.
pub(super) fn stdin_chunks() -> tokio::sync::mpsc::Receiver<Vec<u8>> {
    use std::io::Read;
    let (tx, rx) = tokio::sync::mpsc::channel(16);
    std::thread::spawn(move || {
        let mut stdin = std::io::stdin().lock();
        let mut buf = [0u8; 1024];
        while let Ok(n @ 1..) = stdin.read(&mut buf) {
            if tx.blocking_send(buf[..n].to_vec()).is_err() {
                break;
            }
        }
    });
    rx
}

/// A status line between console output: on its own line, never logged.
pub(super) fn say(text: &str) {
    let mut err = std::io::stderr();
    let _ = write!(err, "\r\n[petitlab: {text}]\r\n");
    let _ = err.flush();
}

/// Frees the node's SOL payload without attaching (a fresh IPMI session
/// sends Deactivate Payload) and says what it found.
pub async fn deactivate(node: &Node) -> anyhow::Result<ExitCode> {
    use petitlab::console::deactivate::{deactivate_sol, describe};
    let outcome = deactivate_sol(node).await?;
    out::outln!("{}", describe(&node.name, outcome));
    Ok(ExitCode::SUCCESS)
}

/// Ends the console as `~.` does when the terminal goes away (SIGHUP) or
/// the client is told to stop (SIGTERM), so that SOL is deactivated rather
/// than left active on the BMC: with `-e none` that is the way out.
fn hangups() -> anyhow::Result<impl std::future::Future<Output = ()>> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut hup = signal(SignalKind::hangup())?;
    let mut term = signal(SignalKind::terminate())?;
    Ok(async move {
        tokio::select! {
            _ = hup.recv() => {}
            _ = term.recv() => {}
        }
    })
}

pub async fn attach(
    lab: &Lab,
    node: &Node,
    force: bool,
    escape_char: EscapeChar,
) -> anyhow::Result<ExitCode> {
    let prepared = petitlab::hardware::console::prepare(lab, node).await?;
    let via = prepared.via();
    let path = log_path(lab, node);
    let dir = path.parent().expect("log path has a parent");
    // Consoles show what admins type: the directory is theirs alone.
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .with_context(|| format!("creating {}", dir.display()))?;
    // The password is redacted should the console ever echo it.
    let mut log = ConsoleLog::open(&path, LOG_LIMITS, &prepared.secrets())
        .with_context(|| format!("node {}: opening console log {}", node.name, path.display()))?;

    let hangup = hangups()?;
    tokio::pin!(hangup);
    let mut console = prepared.spawn(force, None);
    let _raw = RawTerminal::enable();
    let mut escape = EscapeMachine::with_escape(escape_char);
    let mut keys = stdin_chunks();
    let mut quitting = false;
    let mut gaps = GapTracker::default();
    let outcome = loop {
        tokio::select! {
            event = console.events.recv() => match event {
                Some(ConsoleEvent::Data(bytes)) => {
                    log.write(&bytes)?;
                    // The console is a terminal's byte stream: shown as it
                    // is. With nobody left reading it, quit as `~.` does.
                    if !out::raw(&bytes) && !quitting {
                        quitting = true;
                        let _ = console.input.send(ConsoleInput::Close).await;
                    }
                }
                Some(ConsoleEvent::Connected) => match gaps.connected(now_ms()) {
                    // What the host printed meanwhile is lost: say so in the log too.
                    Some(gap) => {
                        let marker = gap.marker();
                        log.write(marker.as_bytes())?;
                        out::raw(marker.as_bytes());
                    }
                    None => say(&format!(
                        "console of {} over {via}; {}; log {}",
                        node.name,
                        escape_char.reminder("quits"),
                        path.display()
                    )),
                },
                Some(ConsoleEvent::Reconnecting { reason, after }) => {
                    gaps.lost(now_ms(), &reason);
                    say(&format!(
                        "console lost: {}; reconnecting in {:.1} s",
                        display_safe(&reason),
                        after.as_secs_f64()
                    ))
                }
                Some(ConsoleEvent::Closed { reason }) => {
                    if let Some(gap) = gaps.closed(now_ms(), &reason).filter(|_| !quitting) {
                        log.write(gap.marker().as_bytes())?;
                    }
                    break reason;
                }
                None => break "closed".to_string(),
            },
            _ = &mut hangup, if !quitting => {
                quitting = true;
                let _ = console.input.send(ConsoleInput::Close).await;
            }
            typed = keys.recv(), if !quitting => {
                // End of input (a pipe closed) quits like `~.`.
                let actions = match typed {
                    Some(bytes) => escape.feed(&bytes),
                    None => vec![Action::Quit],
                };
                for action in actions {
                    let input = match action {
                        Action::Send(bytes) => ConsoleInput::Data(bytes),
                        Action::Break => ConsoleInput::Break,
                        Action::Help => {
                            say(escape.help_text().trim_end());
                            continue;
                        }
                        Action::Quit => {
                            quitting = true;
                            ConsoleInput::Close
                        }
                    };
                    let _ = console.input.send(input).await;
                }
            }
        }
    };
    log.close()?;
    drop(_raw);
    say(&format!(
        "console of {} ended: {}",
        node.name,
        display_safe(&outcome)
    ));
    Ok(if outcome == "closed" {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// Prints the node's console log as text (its rotated predecessor first)
/// and follows it as it grows (and rotates), without attaching to the
/// console; with `timestamps`, each line starts with its UTC time. Runs
/// until interrupted.
pub async fn follow_log(lab: &Lab, node: &Node, timestamps: bool) -> anyhow::Result<ExitCode> {
    // Listening from the start: a Ctrl-C while reading or printing ends it
    // as cleanly as one during the wait.
    let mut interrupt = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::interrupt())?;
    let path = log_path(lab, node);
    let mut text = cast::Text::new(timestamps);
    let mut out = String::new();
    let previous = ConsoleLog::rotated_path(&path, 1);
    match std::fs::read(&previous) {
        Ok(bytes) => {
            text.feed(&bytes, &mut out);
            text.end_of_file(&mut out);
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e).with_context(|| format!("reading {}", previous.display())),
    }
    let mut position = None;
    let mut announced = false;
    loop {
        match read_new(&path, &mut position, &mut text, &mut out) {
            Ok(()) => announced = false,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                // Between rotation's rename and the new file, it is missing.
                if position.is_none() && !announced {
                    errln!(
                        "petitlab: node {}: no console log yet at {}; waiting",
                        node.name,
                        path.display()
                    );
                    announced = true;
                }
            }
            Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
        }
        // The console output as it is, like `tail -f`; a reader gone
        // (`| head`) ends it.
        if !out.is_empty() && !out::raw(out.as_bytes()) {
            return Ok(ExitCode::SUCCESS);
        }
        out.clear();
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_millis(200)) => {}
            _ = interrupt.recv() => return Ok(ExitCode::SUCCESS),
        }
    }
}

/// How far the followed file has been read.
struct Position {
    /// Device and inode: another file at the path means a rotation.
    id: (u64, u64),
    offset: u64,
}

/// Decode what the live log gained since `position` into `out`. After a
/// rotation, the rest of the old file (now `.1`) comes first, then the new
/// file from its start; a file cut shorter (a torn line removed when the log
/// was reopened) is read on from its new end.
fn read_new(
    path: &Path,
    position: &mut Option<Position>,
    text: &mut cast::Text,
    out: &mut String,
) -> std::io::Result<()> {
    use std::io::{Read, Seek, SeekFrom};
    use std::os::unix::fs::MetadataExt;
    let mut file = std::fs::File::open(path)?;
    let meta = file.metadata()?;
    let id = (meta.dev(), meta.ino());
    let offset = match position.take() {
        Some(p) if p.id == id && meta.len() >= p.offset => p.offset,
        Some(p) if p.id == id => {
            text.end_of_file(out);
            meta.len()
        }
        Some(p) => {
            let old = ConsoleLog::rotated_path(path, 1);
            if let Ok(mut old) = std::fs::File::open(old)
                && let Ok(old_meta) = old.metadata()
                && (old_meta.dev(), old_meta.ino()) == p.id
            {
                let mut rest = Vec::new();
                old.seek(SeekFrom::Start(p.offset))?;
                old.read_to_end(&mut rest)?;
                text.feed(&rest, out);
            }
            text.end_of_file(out);
            0
        }
        None => 0,
    };
    file.seek(SeekFrom::Start(offset))?;
    let mut bytes = Vec::new();
    file.read_to_end(&mut bytes)?;
    text.feed(&bytes, out);
    *position = Some(Position {
        id,
        offset: offset + bytes.len() as u64,
    });
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use petitlab::console::LogLimits;

    fn follow(path: &Path, position: &mut Option<Position>, text: &mut cast::Text) -> String {
        let mut out = String::new();
        read_new(path, position, text, &mut out).unwrap();
        out
    }

    #[test]
    fn following_reads_across_rotations_and_past_garbage() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("n1.cast");
        let limits = LogLimits {
            max_bytes: 0, // the smallest a log allows
            keep: 2,
        };
        let mut log = ConsoleLog::open(&path, limits, &["pw"]).unwrap();
        let (mut position, mut text) = (None, cast::Text::new(false));
        log.write(b"first\r\n").unwrap();
        let mut seen = follow(&path, &mut position, &mut text);
        assert_eq!(seen, "first\r\n");
        // Enough to rotate once (not twice) before the next look.
        let mut want = String::from("first\r\n");
        for i in 0..20 {
            let line = format!("line {i}\r\n");
            log.write(line.as_bytes()).unwrap();
            want.push_str(&line);
        }
        assert!(ConsoleLog::rotated_path(&path, 1).exists());
        assert!(!ConsoleLog::rotated_path(&path, 2).exists());
        seen.push_str(&follow(&path, &mut position, &mut text));
        assert_eq!(seen, want);
        // A line that is not an event does not stop it.
        drop(log);
        let mut file = std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .unwrap();
        file.write_all(b"\xff garbage\n").unwrap();
        drop(file);
        let mut log = ConsoleLog::open(&path, limits, &["pw"]).unwrap();
        log.write(b"after\r\n").unwrap();
        seen.push_str(&follow(&path, &mut position, &mut text));
        assert_eq!(seen, want + "after\r\n");
        assert_eq!(text.skipped(), 1);
    }
}
