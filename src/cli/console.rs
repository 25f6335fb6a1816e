//! `petitlab console NODE`: the node's serial console over IPMI SOL in this
//! terminal, like `ipmitool sol activate` (`~.` quits, `~B` breaks, `~?`
//! helps), logged to the state dir. `--log` follows that log instead.

use std::io::Write;
use std::os::unix::fs::DirBuilderExt;
use std::path::Path;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use petitlab::console::gap::now_ms;
use petitlab::console::{Action, ConsoleLog, EscapeMachine, GapTracker, LOG_LIMITS, log_path};
use petitlab::engine::targets::bmc_target;
use petitlab::inventory::{Lab, Node};
use petitlab::ipmi::Timing;
use petitlab::ipmi::sol_driver::{self, ConsoleEvent, ConsoleInput, SolOptions};
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

pub async fn attach(lab: &Lab, node: &Node, force: bool) -> anyhow::Result<ExitCode> {
    let target = bmc_target(node, Timing::default()).await?;
    let password = target.credentials.password.clone();
    let path = log_path(lab, node);
    let dir = path.parent().expect("log path has a parent");
    // Consoles show what admins type: the directory is theirs alone.
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .with_context(|| format!("creating {}", dir.display()))?;
    // The password is redacted should the console ever echo it.
    let mut log = ConsoleLog::open(&path, LOG_LIMITS, &[password])
        .with_context(|| format!("node {}: opening console log {}", node.name, path.display()))?;

    let options = SolOptions {
        force,
        ..SolOptions::default()
    };
    let mut console = sol_driver::spawn(target, options);
    let _raw = RawTerminal::enable();
    let mut escape = EscapeMachine::new();
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
                        "console of {} over SOL; ~. quits, ~? helps; log {}",
                        node.name,
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

/// Prints the node's console log and follows it as it grows (and rotates),
/// without attaching to the console. Runs until interrupted.
pub async fn follow_log(lab: &Lab, node: &Node) -> anyhow::Result<ExitCode> {
    let path = log_path(lab, node);
    let mut offset = 0u64;
    let mut announced = false;
    loop {
        match read_from(&path, offset) {
            Ok((bytes, new_offset)) => {
                announced = false;
                // The log as it is, like `tail -f`; a reader gone (`| head`) ends it.
                if !bytes.is_empty() && !out::raw(&bytes) {
                    return Ok(ExitCode::SUCCESS);
                }
                offset = new_offset;
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                if !announced {
                    errln!(
                        "petitlab: node {}: no console log yet at {}; waiting",
                        node.name,
                        path.display()
                    );
                    announced = true;
                }
                offset = 0;
            }
            Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
        }
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_millis(200)) => {}
            _ = tokio::signal::ctrl_c() => return Ok(ExitCode::SUCCESS),
        }
    }
}

/// New bytes since `offset`; a file now shorter than `offset` was rotated,
/// so it is read from the start.
fn read_from(path: &Path, offset: u64) -> std::io::Result<(Vec<u8>, u64)> {
    use std::io::{Read, Seek, SeekFrom};
    let mut file = std::fs::File::open(path)?;
    let len = file.metadata()?.len();
    let start = if len < offset { 0 } else { offset };
    file.seek(SeekFrom::Start(start))?;
    let mut bytes = Vec::new();
    file.read_to_end(&mut bytes)?;
    let end = start + bytes.len() as u64;
    Ok((bytes, end))
}
