//! Every command in the operator guide (docs/operator-guide.md and the
//! chapters it links) is run, and what the guide shows it printing must
//! appear. The convention, also explained in the guide's "About the
//! examples":
//!
//! - A ```` ```console ```` block is a transcript. A line starting with `$ `
//!   is a command (a trailing `\` continues it on the next line); the lines
//!   after it, up to the next `$ `, are what it prints. Each shown line must
//!   be a whole line of its output (stdout and stderr together, trailing
//!   blanks ignored), in the order shown; `…` inside a line stands for any
//!   text, and a line that is only `…` stands for output left out.
//! - `[exit N]` in a transcript: the command exits with status N (else 0).
//! - `^C` in a transcript: the command runs until interrupted. Once the
//!   lines above `^C` have appeared it gets SIGINT (its process group, as
//!   Ctrl-C would), must exit 0 (or its `[exit N]`), and the lines below
//!   `^C` must follow.
//! - A command ending in ` &` runs in the background: once the first line
//!   shown for it has appeared, the next commands run. When the chapter ends
//!   and it has printed all its lines, it gets SIGINT (if still running);
//!   it must exit with its `[exit N]`, else 0.
//! - `kill %N` (optionally `-INT`/`-TERM`/`-KILL`) and `wait %N` are the
//!   shell's job control for those jobs (numbered as bash does): `kill`
//!   signals the job and waits for it, `wait` waits for it to end by itself
//!   and exits with its status, as in bash. Either way the job must have
//!   printed its lines and exit with its `[exit N]`, else 0.
//! - A fenced block (not `console`) whose first line is `# /absolute/path`
//!   is that file: it is written there before the commands after it run;
//!   `# add to /absolute/path` appends to it. Every ```` ```toml ```` block
//!   must be such a file, and a later command in its chapter must use it.
//! - A console block without a command fails the test, as do `cd`, `export`
//!   and `sudo` (each command is its own `bash -euo pipefail -c`, so shell
//!   state would not carry over; the examples run as root).
//! - A few commands change the machine or the network beyond what a test may
//!   (apt-get install, rustup, cargo install, systemctl): they are checked by
//!   the stand-ins in [`STAND_INS`] instead, each saying what it checks. Every
//!   stand-in must be used, and nothing else is replaced.
//!
//! Each chapter is one test, in its own fresh virtual lab: private network
//! and mount namespaces (`unshare`, so root) with `eth1` = 10.77.0.1/24 (its
//! far end, `node0`, carries p9-rack1-01's MAC), private /etc, /var and
//! /usr/local (overlays), /srv and /run (empty), the working directory
//! /etc/petitlab, the source tree at /usr/local/src/petitlab, and the
//! petitlab binary under test first on PATH. It replays the "About the
//! examples" section of operator-guide.md first (artifacts, lab.toml), then
//! the chapter. Every process is stopped by pid when the chapter ends,
//! however it ends, daemons that detached included (found by namespace).
//! Other tests check the convention itself, and the CLI and lab.toml
//! references against `petitlab --help` and the inventory's structs.

mod support;

use std::collections::BTreeSet;
use std::io::{Read, Write};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use support::lab::repo;

/// The chapters, in the guide's order; each is one test.
macro_rules! chapters {
    ($($test:ident => $file:literal,)*) => {
        const CHAPTERS: &[&str] = &[$($file),*];
        $(
            #[test]
            fn $test() {
                run_chapter($file);
            }
        )*
    };
}

chapters! {
    operator_guide => "operator-guide.md",
    install => "install.md",
    lab_toml => "lab-toml.md",
    netboot => "netboot.md",
    deploying => "deploying.md",
    iscsi_deploy => "iscsi-deploy.md",
    consoles => "consoles.md",
    redfish => "redfish.md",
    troubleshooting => "troubleshooting.md",
    cli_reference => "cli-reference.md",
}

/// The guide's index; its "About the examples" section sets up every chapter's lab.
const INDEX: &str = "operator-guide.md";
const PROLOGUE: &str = "About the examples";
/// Where the examples run, and the lab.toml there.
const WORKDIR: &str = "/etc/petitlab";
const LAB: &str = "/etc/petitlab/lab.toml";

/// Commands that must not run in a test, each with the check that replaces
/// it and why that check is honest. `$PETITLAB_BIN` is the binary under
/// test, `$REPO` the source tree it was built from.
const STAND_INS: &[(&str, &str, &str)] = &[
    (
        "apt-get install -y build-essential curl git",
        "dpkg -s build-essential curl git >/dev/null",
        "installing is not for a test; the build tools are installed",
    ),
    (
        "curl --proto '=https' --tlsv1.2 -sSf https://sh.rustup.rs | sh -s -- -y",
        "rustup --version && cargo --version",
        "rustup is not reinstalled; the toolchain it installs is present",
    ),
    (
        "cargo install --locked --path /usr/local/src/petitlab --root /usr/local",
        "cargo tree --locked --offline -e normal,build --prefix none \
         --manifest-path \"$REPO/Cargo.toml\" >/dev/null \
         && install -D -m 755 \"$PETITLAB_BIN\" /usr/local/bin/petitlab",
        "no second build in a test: Cargo.lock satisfies --locked, and the binary this test suite \
         built from the same tree is installed where cargo install --root /usr/local puts it \
         (/usr/local is a private overlay)",
    ),
    (
        "apt-get install -y dnsmasq-base qemu-utils",
        "dpkg -s dnsmasq-base qemu-utils >/dev/null",
        "installing is not for a test; scripts/test installs both",
    ),
    (
        "apt-get install -y tgt",
        "dpkg -s tgt >/dev/null",
        "installing is not for a test; scripts/test installs it",
    ),
    (
        "systemctl daemon-reload && systemctl enable --now petitlab-serve.service",
        "systemd-analyze verify /etc/systemd/system/petitlab-serve.service",
        "no systemd runs in a test; the unit file is verified instead (its ExecStart binary included)",
    ),
];

/// How long a command may run before it counts as hung.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(120);
/// How long a service or an interrupted command may take to show its lines.
const READY_TIMEOUT: Duration = Duration::from_secs(60);

// ---------------------------------------------------------------------------
// The docs, parsed.

#[derive(Debug, Clone)]
struct Cmd {
    /// Where it is: `file:line`.
    at: String,
    text: String,
    background: bool,
    /// Lines shown before `^C` (all of them without one).
    shown: Vec<String>,
    /// Lines shown after `^C`; `Some` when the command is interrupted.
    after_interrupt: Option<Vec<String>>,
    exit: i32,
}

#[derive(Debug, Clone)]
struct FileBlock {
    at: String,
    path: String,
    append: bool,
    content: String,
}

#[derive(Debug, Clone)]
enum Item {
    Command(Cmd),
    File(FileBlock),
}

#[derive(Debug, Clone)]
struct Located {
    /// The `## ` heading the item is under.
    section: String,
    item: Item,
}

fn docs_dir() -> PathBuf {
    repo().join("docs")
}

fn read_doc(file: &str) -> String {
    let path = docs_dir().join(file);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Parses one doc; the errors name file and line.
fn parse(file: &str, text: &str) -> Result<Vec<Located>, Vec<String>> {
    let lines: Vec<&str> = text.lines().collect();
    let mut items = Vec::new();
    let mut errors = Vec::new();
    let mut section = String::new();
    let mut i = 0;
    while i < lines.len() {
        let line = lines[i];
        let trimmed = line.trim_start();
        if let Some(heading) = line.strip_prefix("## ") {
            section = heading.trim().to_string();
        }
        let Some(info) = trimmed.strip_prefix("```") else {
            i += 1;
            continue;
        };
        let indent = line.len() - trimmed.len();
        let lang = info.trim().to_string();
        let start = i + 1;
        let mut end = start;
        while end < lines.len() && lines[end].trim() != "```" {
            end += 1;
        }
        if end == lines.len() {
            errors.push(format!("{file}:{}: unclosed code block", i + 1));
            break;
        }
        let body: Vec<&str> = lines[start..end]
            .iter()
            .map(|l| l.get(indent..).unwrap_or(l.trim_start()))
            .collect();
        if lang == "console" {
            match parse_console(file, start + 1, &body) {
                Ok(cmds) => items.extend(cmds.into_iter().map(|c| Located {
                    section: section.clone(),
                    item: Item::Command(c),
                })),
                Err(mut e) => errors.append(&mut e),
            }
        } else if let Some(block) = parse_file_block(file, start + 1, &body) {
            items.push(Located {
                section: section.clone(),
                item: Item::File(block),
            });
        } else if lang == "toml" {
            errors.push(format!(
                "{file}:{}: a toml block must be a file: start it with `# /path/of/the.toml` or `# add to /path`",
                start + 1
            ));
        }
        i = end + 1;
    }
    if errors.is_empty() {
        Ok(items)
    } else {
        Err(errors)
    }
}

fn parse_file_block(file: &str, first_line: usize, body: &[&str]) -> Option<FileBlock> {
    let first = body.first()?.strip_prefix("# ")?.trim();
    let (path, append) = match first.strip_prefix("add to ") {
        Some(path) => (path.trim(), true),
        None => (first, false),
    };
    if !path.starts_with('/') || path.contains(char::is_whitespace) {
        return None;
    }
    let mut content = body.join("\n");
    content.push('\n');
    Some(FileBlock {
        at: format!("{file}:{first_line}"),
        path: path.to_string(),
        append,
        content,
    })
}

fn parse_console(file: &str, first_line: usize, body: &[&str]) -> Result<Vec<Cmd>, Vec<String>> {
    let mut cmds: Vec<Cmd> = Vec::new();
    let mut errors = Vec::new();
    let mut j = 0;
    while j < body.len() {
        let line = body[j];
        let at = format!("{file}:{}", first_line + j);
        if let Some(rest) = line.strip_prefix("$ ") {
            let mut text = rest.to_string();
            while text.ends_with('\\') && j + 1 < body.len() {
                j += 1;
                text.push('\n');
                text.push_str(body[j]);
            }
            let text = text.trim().to_string();
            let (text, background) = match text.strip_suffix(" &") {
                Some(t) => (t.trim_end().to_string(), true),
                None => (text, false),
            };
            if text.is_empty() {
                errors.push(format!("{at}: `$ ` without a command"));
            }
            for word in ["cd ", "export ", "sudo "] {
                if text.starts_with(word) {
                    errors.push(format!(
                        "{at}: `{}`: each command runs in its own shell as root; write it without `{}`",
                        text,
                        word.trim()
                    ));
                }
            }
            cmds.push(Cmd {
                at,
                text,
                background,
                shown: Vec::new(),
                after_interrupt: None,
                exit: 0,
            });
            j += 1;
            continue;
        }
        let Some(cmd) = cmds.last_mut() else {
            if !line.trim().is_empty() {
                errors.push(format!(
                    "{at}: output before the block's first `$ ` command"
                ));
            }
            j += 1;
            continue;
        };
        let trimmed = line.trim_end();
        if trimmed == "^C" {
            if cmd.after_interrupt.is_some() {
                errors.push(format!("{at}: a second ^C"));
            }
            if cmd.background {
                errors.push(format!("{at}: ^C after a background (`&`) command"));
            }
            if cmd.shown.is_empty() {
                errors.push(format!(
                    "{at}: ^C needs a line above it to wait for before interrupting"
                ));
            }
            cmd.after_interrupt = Some(Vec::new());
        } else if let Some(code) = trimmed
            .strip_prefix("[exit ")
            .and_then(|r| r.strip_suffix(']'))
        {
            match code.parse() {
                Ok(n) => cmd.exit = n,
                Err(_) => errors.push(format!("{at}: {trimmed:?} is not [exit N]")),
            }
        } else if trimmed == "…" || trimmed.is_empty() {
        } else if let Some(after) = cmd.after_interrupt.as_mut() {
            after.push(trimmed.to_string());
        } else {
            cmd.shown.push(trimmed.to_string());
        }
        j += 1;
    }
    if cmds.is_empty() {
        errors.push(format!(
            "{file}:{first_line}: a console block without a `$ ` command"
        ));
    }
    for cmd in &cmds {
        if cmd.background && cmd.shown.is_empty() {
            errors.push(format!(
                "{}: `{} &`: show the line to wait for before the next command",
                cmd.at, cmd.text
            ));
        }
    }
    if errors.is_empty() {
        Ok(cmds)
    } else {
        Err(errors)
    }
}

fn parsed(file: &str) -> Vec<Located> {
    parse(file, &read_doc(file))
        .unwrap_or_else(|errors| panic!("{file} breaks the convention:\n{}", errors.join("\n")))
}

/// What a chapter runs: the index's "About the examples", then the chapter.
fn chapter_items(file: &str) -> Vec<Item> {
    let mut items: Vec<Item> = Vec::new();
    if file != INDEX {
        items.extend(
            parsed(INDEX)
                .into_iter()
                .filter(|l| l.section == PROLOGUE)
                .map(|l| l.item),
        );
        assert!(
            !items.is_empty(),
            "{INDEX} has no \"## {PROLOGUE}\" section with the examples' lab"
        );
    }
    items.extend(parsed(file).into_iter().map(|l| l.item));
    items
}

// ---------------------------------------------------------------------------
// Matching output against the transcript.

/// Does `line` match `pattern`, where `…` stands for any text?
fn line_matches(pattern: &str, line: &str) -> bool {
    let parts: Vec<&str> = pattern.split('…').collect();
    if parts.len() == 1 {
        return line == pattern;
    }
    let (first, last) = (parts[0], parts[parts.len() - 1]);
    let Some(mut rest) = line.strip_prefix(first) else {
        return false;
    };
    for middle in &parts[1..parts.len() - 1] {
        match rest.find(middle) {
            Some(at) => rest = &rest[at + middle.len()..],
            None => return false,
        }
    }
    rest.ends_with(last)
}

fn output_lines(bytes: &[u8]) -> Vec<String> {
    String::from_utf8_lossy(bytes)
        .split('\n')
        .map(|l| l.trim_end_matches('\r').trim_end().to_string())
        .collect()
}

/// Finds `shown` in `output`, in order, starting at line `from`. Ok: the
/// index after the last match; Err: the first shown line not found.
fn find_in_order(shown: &[String], output: &[String], from: usize) -> Result<usize, String> {
    let mut at = from;
    for pattern in shown {
        match output[at.min(output.len())..]
            .iter()
            .position(|l| line_matches(pattern, l))
        {
            Some(offset) => at += offset + 1,
            None => return Err(pattern.clone()),
        }
    }
    Ok(at)
}

// ---------------------------------------------------------------------------
// A chapter's virtual lab: the namespaces, and the processes in them.

/// Sets up the namespaces, says "ready", then holds them open.
const HOLDER: &str = r#"set -e
mount -t tmpfs -o mode=755 petitlab-docs /mnt
for d in etc var usr-local; do mkdir -p /mnt/$d/upper /mnt/$d/work; done
mount -t overlay overlay -o lowerdir=/etc,upperdir=/mnt/etc/upper,workdir=/mnt/etc/work /etc
mount -t overlay overlay -o lowerdir=/var,upperdir=/mnt/var/upper,workdir=/mnt/var/work /var
mount -t overlay overlay -o lowerdir=/usr/local,upperdir=/mnt/usr-local/upper,workdir=/mnt/usr-local/work /usr/local
mount -t tmpfs -o mode=755 petitlab-docs /srv
mount -t tmpfs -o mode=755 petitlab-docs /run
mkdir -p /etc/petitlab /usr/local/src
ln -s "$REPO" /usr/local/src/petitlab
ip link set lo up
ip link add eth1 type veth peer name node0
ip link set node0 address 70:e2:84:14:00:01
ip addr add 10.77.0.1/24 dev eth1
ip link set eth1 up
ip link set node0 up
echo ready
exec sleep 86400
"#;

struct Job {
    cmd: Cmd,
    /// Its job number, as bash would give it (`%N`).
    number: usize,
    child: Child,
    output: Arc<Mutex<Vec<u8>>>,
    reader: Option<JoinHandle<()>>,
    status: Option<ExitStatus>,
}

impl Job {
    fn lines(&self) -> Vec<String> {
        output_lines(&self.output.lock().unwrap())
    }

    fn text(&self) -> String {
        String::from_utf8_lossy(&self.output.lock().unwrap()).into_owned()
    }

    fn pgid(&self) -> i32 {
        self.child.id() as i32
    }

    fn signal(&self, signal: i32) {
        // The job leads its own process group: this is Ctrl-C (or a kill) to
        // it and its children only.
        unsafe {
            libc::kill(-self.pgid(), signal);
        }
    }

    fn poll(&mut self) -> Option<ExitStatus> {
        if self.status.is_none() {
            self.status = self.child.try_wait().expect("wait for a command");
        }
        self.status
    }

    /// Waits for it to exit (and its output to end), up to `limit`.
    fn wait(&mut self, limit: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + limit;
        while self.poll().is_none() {
            if Instant::now() > deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        if let Some(reader) = self.reader.take() {
            // Output of daemons it started could keep the pipe open: don't wait for them.
            let deadline = Instant::now() + Duration::from_secs(2);
            while !reader.is_finished() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(10));
            }
            if reader.is_finished() {
                let _ = reader.join();
            }
        }
        self.status
    }

    /// Waits until `shown` has appeared in order; Err with why not.
    fn wait_for(&mut self, shown: &[String], limit: Duration) -> Result<(), String> {
        let deadline = Instant::now() + limit;
        loop {
            let exited = self.poll();
            let lines = self.lines();
            let found = find_in_order(shown, &lines, 0);
            match (found, exited) {
                (Ok(_), _) => return Ok(()),
                (Err(missing), Some(status)) => {
                    // Let the reader catch the last bytes before judging.
                    self.wait(Duration::from_secs(1));
                    if find_in_order(shown, &self.lines(), 0).is_ok() {
                        return Ok(());
                    }
                    return Err(format!(
                        "it exited ({}) without printing {missing:?}",
                        describe(status)
                    ));
                }
                (Err(missing), None) if Instant::now() > deadline => {
                    return Err(format!("no {missing:?} within {} s", limit.as_secs()));
                }
                _ => std::thread::sleep(Duration::from_millis(20)),
            }
        }
    }
}

/// `kill [-INT|-TERM|-KILL] %N…` → the signal and the job numbers.
fn job_kill(text: &str) -> Option<(i32, Vec<usize>)> {
    let mut words = text.split_whitespace();
    if words.next() != Some("kill") {
        return None;
    }
    let mut signal = libc::SIGTERM;
    let mut numbers = Vec::new();
    for word in words {
        match word {
            "-INT" | "-SIGINT" => signal = libc::SIGINT,
            "-TERM" | "-SIGTERM" => signal = libc::SIGTERM,
            "-KILL" | "-SIGKILL" | "-9" => signal = libc::SIGKILL,
            _ => numbers.push(word.strip_prefix('%')?.parse().ok()?),
        }
    }
    (!numbers.is_empty()).then_some((signal, numbers))
}

/// `wait %N…` → the job numbers.
fn job_wait(text: &str) -> Option<Vec<usize>> {
    let mut words = text.split_whitespace();
    if words.next() != Some("wait") {
        return None;
    }
    let numbers: Option<Vec<usize>> = words.map(|w| w.strip_prefix('%')?.parse().ok()).collect();
    numbers.filter(|n| !n.is_empty())
}

fn describe(status: ExitStatus) -> String {
    match (status.code(), status.signal()) {
        (Some(code), _) => format!("exit {code}"),
        (None, Some(signal)) => format!("killed by signal {signal}"),
        _ => status.to_string(),
    }
}

struct Session {
    chapter: String,
    holder: Child,
    netns: PathBuf,
    bin: tempfile::TempDir,
    jobs: Vec<Job>,
    /// What ran so far, for failure messages.
    ran: Vec<String>,
    commands: usize,
}

fn netns_of(pid: u32) -> Option<PathBuf> {
    std::fs::read_link(format!("/proc/{pid}/ns/net")).ok()
}

impl Session {
    fn start(chapter: &str) -> Session {
        let bin = tempfile::tempdir().expect("temp dir");
        std::os::unix::fs::symlink(env!("CARGO_BIN_EXE_petitlab"), bin.path().join("petitlab"))
            .expect("link petitlab onto PATH");
        let mut holder = Command::new("unshare")
            .args(["--net", "--mount", "--propagation", "private", "--"])
            .args(["sh", "-c", HOLDER])
            .env("REPO", repo())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0)
            .spawn()
            .expect("run unshare (util-linux)");
        let mut stdout = holder.stdout.take().unwrap();
        let mut said = [0u8; 6];
        let ready = stdout.read_exact(&mut said).is_ok() && &said == b"ready\n";
        if !ready {
            let _ = holder.kill();
            let mut err = String::new();
            let _ = holder.stderr.take().unwrap().read_to_string(&mut err);
            let _ = holder.wait();
            panic!(
                "{chapter}: cannot set up the virtual lab's namespaces (this needs root, \
                 unshare, overlayfs and veth):\n{err}"
            );
        }
        let netns = netns_of(holder.id()).expect("the holder's network namespace");
        assert_ne!(
            Some(&netns),
            netns_of(std::process::id()).as_ref(),
            "unshare did not make a new network namespace"
        );
        Session {
            chapter: chapter.to_string(),
            holder,
            netns,
            bin,
            jobs: Vec::new(),
            ran: Vec::new(),
            commands: 0,
        }
    }

    fn path_env(&self) -> String {
        format!(
            "{}:{}",
            self.bin.path().display(),
            std::env::var("PATH").unwrap_or_default()
        )
    }

    /// `bash -euo pipefail -c SCRIPT` in the lab, its own process group,
    /// stdin empty, stdout and stderr into one pipe.
    fn spawn(
        &self,
        script: &str,
        input: Option<&str>,
    ) -> (Child, Arc<Mutex<Vec<u8>>>, JoinHandle<()>) {
        let (mut reader, writer) = std::io::pipe().expect("pipe");
        let writer2 = writer.try_clone().expect("pipe");
        let mut child = Command::new("nsenter")
            .args([
                "--target",
                &self.holder.id().to_string(),
                "--net",
                "--mount",
                "--",
            ])
            .args([
                "sh",
                "-c",
                "cd \"$1\" && exec bash -euo pipefail -c \"$2\"",
                "sh",
                WORKDIR,
                &format!("exec 2>&1\n{script}"),
            ])
            .env("PATH", self.path_env())
            .env("PETITLAB_BIN", env!("CARGO_BIN_EXE_petitlab"))
            .env("REPO", repo())
            .stdin(if input.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(writer)
            .stderr(writer2)
            .process_group(0)
            .spawn()
            .expect("run nsenter (util-linux)");
        if let Some(text) = input {
            let mut stdin = child.stdin.take().unwrap();
            stdin
                .write_all(text.as_bytes())
                .expect("write a file into the lab");
        }
        let output = Arc::new(Mutex::new(Vec::new()));
        let sink = output.clone();
        let thread = std::thread::spawn(move || {
            let mut buf = [0u8; 8192];
            while let Ok(n @ 1..) = reader.read(&mut buf) {
                sink.lock().unwrap().extend_from_slice(&buf[..n]);
            }
        });
        (child, output, thread)
    }

    fn fail(&self, at: &str, what: &str, output: &str) -> ! {
        let tail = |text: &str, max: usize| {
            let start = text.len().saturating_sub(max);
            let start = (start..=text.len())
                .find(|&i| text.is_char_boundary(i))
                .unwrap_or(text.len());
            text[start..].to_string()
        };
        let mut msg = format!(
            "{} (chapter {}): {what}\n--- its output:\n{}\n",
            at,
            self.chapter,
            tail(output, 6000)
        );
        for job in &self.jobs {
            msg.push_str(&format!(
                "--- background `{}` ({}) printed:\n{}\n",
                job.cmd.text,
                job.cmd.at,
                tail(&job.text(), 1500)
            ));
        }
        msg.push_str(&format!("--- ran before it:\n{}\n", self.ran.join("\n")));
        panic!("{msg}");
    }

    fn write_file(&mut self, block: &FileBlock) {
        let op = if block.append { ">>" } else { ">" };
        let script = format!(
            "mkdir -p \"$(dirname '{0}')\" && cat {op} '{0}'",
            block.path
        );
        let (mut child, output, thread) = self.spawn(&script, Some(&block.content));
        let status = child.wait().expect("wait");
        let _ = thread.join();
        if !status.success() {
            let text = String::from_utf8_lossy(&output.lock().unwrap()).into_owned();
            self.fail(&block.at, &format!("cannot write {}", block.path), &text);
        }
        self.ran
            .push(format!("{}: (file) {}", block.at, block.path));
    }

    fn run(&mut self, cmd: &Cmd) {
        self.commands += 1;
        if let Some((signal, numbers)) = job_kill(&cmd.text) {
            return self.end_jobs(cmd, Some(signal), &numbers);
        }
        if let Some(numbers) = job_wait(&cmd.text) {
            return self.end_jobs(cmd, None, &numbers);
        }
        let stand_in = STAND_INS.iter().find(|(doc, ..)| *doc == cmd.text);
        let script = stand_in.map_or(cmd.text.as_str(), |(_, check, _)| check);
        let (child, output, reader) = self.spawn(script, None);
        let number = self.jobs.iter().map(|j| j.number).max().unwrap_or(0) + 1;
        let mut job = Job {
            cmd: cmd.clone(),
            number,
            child,
            output,
            reader: Some(reader),
            status: None,
        };
        let label = match stand_in {
            Some((_, check, why)) => format!("`{}` (checked by `{check}`: {why})", cmd.text),
            None => format!("`{}`", cmd.text),
        };
        if cmd.background {
            if let Err(why) = job.wait_for(&cmd.shown[..1], READY_TIMEOUT) {
                let text = job.text();
                job.signal(libc::SIGKILL);
                self.fail(&cmd.at, &format!("{label} in the background: {why}"), &text);
            }
            self.ran.push(format!("{}: {} &", cmd.at, cmd.text));
            self.jobs.push(job);
            return;
        }
        if let Some(after) = &cmd.after_interrupt {
            if let Err(why) = job.wait_for(&cmd.shown, READY_TIMEOUT) {
                let text = job.text();
                job.signal(libc::SIGKILL);
                self.fail(&cmd.at, &format!("{label} before ^C: {why}"), &text);
            }
            job.signal(libc::SIGINT);
            if job.wait(Duration::from_secs(10)).is_none() {
                job.signal(libc::SIGKILL);
                let text = job.text();
                self.fail(
                    &cmd.at,
                    &format!("{label} did not stop within 10 s of ^C"),
                    &text,
                );
            }
            let lines = job.lines();
            let before = find_in_order(&cmd.shown, &lines, 0).unwrap_or(0);
            if let Err(missing) = find_in_order(after, &lines, before) {
                self.fail(
                    &cmd.at,
                    &format!("{label} did not print {missing:?} after ^C"),
                    &job.text(),
                );
            }
        } else if job.wait(COMMAND_TIMEOUT).is_none() {
            job.signal(libc::SIGKILL);
            let _ = job.wait(Duration::from_secs(5));
            let text = job.text();
            self.fail(
                &cmd.at,
                &format!("{label} did not end within {} s", COMMAND_TIMEOUT.as_secs()),
                &text,
            );
        }
        let status = job.status.expect("exited");
        let text = job.text();
        if status.code() != Some(cmd.exit) {
            self.fail(
                &cmd.at,
                &format!(
                    "{label} ended with {}, not exit {}",
                    describe(status),
                    cmd.exit
                ),
                &text,
            );
        }
        if cmd.after_interrupt.is_none()
            && let Err(missing) = find_in_order(&cmd.shown, &job.lines(), 0)
        {
            let why = format!("{label} did not print {missing:?} (in the order shown)");
            self.fail(&cmd.at, &why, &text);
        }
        self.ran.push(format!("{}: {}", cmd.at, cmd.text));
    }

    /// `kill [-SIG] %N…` and `wait %N…`: the shell's job control, for jobs
    /// started with `&` (numbered as bash does). `kill` is like `kill %N;
    /// wait %N`. Each job must end, print its lines and exit with the status
    /// shown for it; `wait` itself exits with the last job's status, as in bash.
    fn end_jobs(&mut self, cmd: &Cmd, signal: Option<i32>, numbers: &[usize]) {
        let mut last = 0;
        for number in numbers {
            let Some(at) = self.jobs.iter().position(|j| j.number == *number) else {
                self.fail(
                    &cmd.at,
                    &format!("`{}`: there is no job %{number}", cmd.text),
                    "",
                );
            };
            let mut job = self.jobs.remove(at);
            let limit = match signal {
                Some(signal) => {
                    job.signal(signal);
                    Duration::from_secs(10)
                }
                None => COMMAND_TIMEOUT,
            };
            let status = job.wait(limit);
            let text = job.text();
            match status {
                None => {
                    job.signal(libc::SIGKILL);
                    self.fail(
                        &cmd.at,
                        &format!(
                            "`{} &` did not end within {} s of `{}`",
                            job.cmd.text,
                            limit.as_secs(),
                            cmd.text
                        ),
                        &text,
                    );
                }
                Some(status) if status.code() != Some(job.cmd.exit) => self.fail(
                    &cmd.at,
                    &format!(
                        "`{} &` ended with {}, not exit {}",
                        job.cmd.text,
                        describe(status),
                        job.cmd.exit
                    ),
                    &text,
                ),
                Some(status) => last = status.code().unwrap_or(-1),
            }
            if let Err(missing) = find_in_order(&job.cmd.shown, &job.lines(), 0) {
                self.fail(
                    &job.cmd.at,
                    &format!(
                        "`{} &` did not print {missing:?} (in the order shown)",
                        job.cmd.text
                    ),
                    &text,
                );
            }
        }
        let expected = if signal.is_some() { 0 } else { last };
        if cmd.exit != expected {
            let why = format!("`{}` exits {expected}, not {}", cmd.text, cmd.exit);
            self.fail(&cmd.at, &why, "");
        }
        self.ran.push(format!("{}: {}", cmd.at, cmd.text));
    }

    /// Stops the background services: SIGINT, as Ctrl-C would, then their
    /// exit status must be the one shown.
    fn finish(&mut self) {
        let jobs = std::mem::take(&mut self.jobs);
        let mut failures = Vec::new();
        for mut job in jobs {
            // What it is shown printing, it may still be about to print (a
            // deploy that was just aborted); then it is interrupted.
            let _ = job.wait_for(&job.cmd.shown.clone(), READY_TIMEOUT);
            if job.poll().is_none() {
                job.signal(libc::SIGINT);
            }
            match job.wait(Duration::from_secs(10)) {
                None => {
                    job.signal(libc::SIGKILL);
                    failures.push(format!(
                        "{}: `{} &` did not stop within 10 s of SIGINT",
                        job.cmd.at, job.cmd.text
                    ));
                }
                Some(status) if status.code() != Some(job.cmd.exit) => failures.push(format!(
                    "{}: `{} &` ended with {}, not exit {}; it printed:\n{}",
                    job.cmd.at,
                    job.cmd.text,
                    describe(status),
                    job.cmd.exit,
                    job.text()
                )),
                Some(_) => {
                    if let Err(missing) = find_in_order(&job.cmd.shown, &job.lines(), 0) {
                        failures.push(format!(
                            "{}: `{} &` did not print {missing:?} (in the order shown); it printed:\n{}",
                            job.cmd.at,
                            job.cmd.text,
                            job.text()
                        ));
                    }
                }
            }
        }
        assert!(failures.is_empty(), "{}", failures.join("\n"));
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        for job in &mut self.jobs {
            job.signal(libc::SIGKILL);
            let _ = job.child.wait();
        }
        // Daemons that detached (dnsmasq, tgtd) are found by namespace: only
        // what this chapter started lives in it.
        for _ in 0..3 {
            let mut left = 0;
            for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
                let Some(pid) = entry
                    .file_name()
                    .to_str()
                    .and_then(|s| s.parse::<u32>().ok())
                else {
                    continue;
                };
                if pid != self.holder.id() && netns_of(pid).as_ref() == Some(&self.netns) {
                    left += 1;
                    unsafe {
                        libc::kill(pid as i32, libc::SIGKILL);
                    }
                }
            }
            if left == 0 {
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.holder.kill();
        let _ = self.holder.wait();
    }
}

fn run_chapter(file: &str) {
    let started = Instant::now();
    let items = chapter_items(file);
    let mut session = Session::start(file);
    for item in &items {
        match item {
            Item::File(block) => session.write_file(block),
            Item::Command(cmd) => session.run(cmd),
        }
    }
    session.finish();
    eprintln!(
        "{file}: {} commands ran in {:.1} s",
        session.commands,
        started.elapsed().as_secs_f64()
    );
}

// ---------------------------------------------------------------------------
// The convention, checked over the whole guide.

/// File blocks nothing uses: a file is used when a later command names it
/// (any petitlab command uses lab.toml), or a used file names it (a
/// template named in a lab.toml).
fn unused_files(file: &str, items: &[Located]) -> Vec<String> {
    let base = |path: &str| {
        Path::new(path)
            .file_name()
            .unwrap()
            .to_string_lossy()
            .into_owned()
    };
    let files: Vec<(usize, &FileBlock)> = items
        .iter()
        .enumerate()
        .filter_map(|(n, l)| match &l.item {
            Item::File(f) => Some((n, f)),
            Item::Command(_) => None,
        })
        .collect();
    let mut used: Vec<bool> = files
        .iter()
        .map(|(n, block)| {
            let name = base(&block.path);
            items[n + 1..].iter().any(|l| match &l.item {
                Item::Command(c) => {
                    c.text.contains(&name) || (block.path == LAB && c.text.contains("petitlab"))
                }
                Item::File(_) => false,
            })
        })
        .collect();
    loop {
        let mut changed = false;
        for i in 0..files.len() {
            if used[i] {
                continue;
            }
            let name = base(&files[i].1.path);
            if (0..files.len()).any(|j| used[j] && files[j].1.content.contains(&name)) {
                used[i] = true;
                changed = true;
            }
        }
        if !changed {
            break;
        }
    }
    files
        .iter()
        .zip(used)
        .filter(|(_, used)| !used)
        .map(|((_, block), _)| format!("{}: nothing in {file} uses {}", block.at, block.path))
        .collect()
}

#[test]
fn every_chapter_follows_the_convention_and_is_run() {
    let mut problems = Vec::new();
    // Every doc with a transcript is a chapter, and the index links each one.
    let mut with_console = BTreeSet::new();
    for entry in std::fs::read_dir(docs_dir()).unwrap().flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.ends_with(".md") && read_doc(&name).contains("```console") {
            with_console.insert(name);
        }
    }
    let listed: BTreeSet<String> = CHAPTERS.iter().map(|s| s.to_string()).collect();
    for missing in with_console.difference(&listed) {
        problems.push(format!(
            "docs/{missing} has console blocks but is not in CHAPTERS"
        ));
    }
    let index = read_doc(INDEX);
    for chapter in CHAPTERS.iter().filter(|c| **c != INDEX) {
        if !index.contains(&format!("]({chapter})")) {
            problems.push(format!("{INDEX} does not link {chapter}"));
        }
    }
    let mut used_stand_ins = BTreeSet::new();
    let mut commands = 0;
    for file in CHAPTERS {
        let items = match parse(file, &read_doc(file)) {
            Ok(items) => items,
            Err(mut errors) => {
                problems.append(&mut errors);
                continue;
            }
        };
        for located in &items {
            match &located.item {
                Item::Command(cmd) => {
                    commands += 1;
                    if let Some((doc, ..)) = STAND_INS.iter().find(|(doc, ..)| *doc == cmd.text) {
                        used_stand_ins.insert(*doc);
                    }
                }
                Item::File(_) => {}
            }
        }
        problems.extend(unused_files(file, &items));
    }
    for (doc, ..) in STAND_INS {
        if !used_stand_ins.contains(doc) {
            problems.push(format!("stand-in for `{doc}` is used by no chapter"));
        }
    }
    assert!(commands > 0, "no commands at all");
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn the_convention_catches_what_would_rot() {
    // A console block without a command, and output before the first command.
    let errors = parse("t.md", "```console\npetitlab: ok\n```\n").unwrap_err();
    assert!(
        errors.iter().any(|e| e.contains("without a `$ ` command")),
        "{errors:?}"
    );
    let errors = parse("t.md", "```console\n\n```\n").unwrap_err();
    assert!(errors.iter().any(|e| e.contains("without")), "{errors:?}");
    // A toml block that is not a file.
    let errors = parse("t.md", "```toml\n[http]\n```\n").unwrap_err();
    assert!(
        errors.iter().any(|e| e.contains("must be a file")),
        "{errors:?}"
    );
    // cd would not carry over.
    assert!(parse("t.md", "```console\n$ cd /tmp\n```\n").is_err());
    // A service must show what to wait for.
    assert!(parse("t.md", "```console\n$ petitlab serve &\n```\n").is_err());
    let items = parse(
        "t.md",
        "## S\n```console\n$ a \\\n  b\nx…z\n…\n[exit 3]\n$ c &\nready\n$ d\nup\n^C\nbye\n```\n",
    )
    .unwrap();
    let cmds: Vec<&Cmd> = items
        .iter()
        .map(|l| match &l.item {
            Item::Command(c) => c,
            Item::File(_) => panic!("no files here"),
        })
        .collect();
    assert_eq!(cmds[0].text, "a \\\n  b");
    assert_eq!(
        (cmds[0].exit, cmds[0].shown.clone()),
        (3, vec!["x…z".to_string()])
    );
    assert!(cmds[1].background && cmds[1].text == "c");
    assert_eq!(cmds[2].after_interrupt, Some(vec!["bye".to_string()]));
    assert_eq!(items[0].section, "S");
    assert!(line_matches("x…z", "x and then z"));
    assert!(line_matches("…tail", "the tail"));
    assert!(!line_matches("x…z", "x and then"));
    assert!(!line_matches("exact", "exactly"));
    let out: Vec<String> = ["a", "b", "c"].iter().map(|s| s.to_string()).collect();
    assert!(find_in_order(&["a".into(), "c".into()], &out, 0).is_ok());
    assert!(find_in_order(&["c".into(), "a".into()], &out, 0).is_err());
}

// ---------------------------------------------------------------------------
// The references, against the code.

fn petitlab_help(args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_petitlab"))
        .args(args)
        .arg("--help")
        .output()
        .expect("run petitlab --help");
    assert!(out.status.success(), "petitlab {args:?} --help failed");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// `--flags` in a text.
fn flags_in(text: &str) -> BTreeSet<String> {
    let re = regex::Regex::new(r"(^|[^\w-])(--[a-z][a-z-]*)").unwrap();
    re.captures_iter(text).map(|c| c[2].to_string()).collect()
}

#[test]
fn cli_reference_names_every_subcommand_and_flag() {
    let top = petitlab_help(&[]);
    let subcommands: Vec<String> = top
        .split("Commands:")
        .nth(1)
        .expect("a Commands: section")
        .lines()
        .skip(1)
        .take_while(|l| !l.trim().is_empty())
        .filter_map(|l| l.split_whitespace().next().map(str::to_string))
        .filter(|c| c != "help")
        .collect();
    assert!(subcommands.len() > 10, "{subcommands:?}");
    let doc = read_doc("cli-reference.md");
    let global = flags_in(top.split("Options:").nth(1).unwrap());
    let mut known = global.clone();
    let mut problems = Vec::new();
    for flag in &global {
        if !doc.contains(&format!("`{flag}")) {
            problems.push(format!("global flag {flag} is not documented"));
        }
    }
    // Sections: `### petitlab <sub>` headings.
    for sub in &subcommands {
        let heading = format!("### `petitlab {sub}");
        let Some(start) = doc.find(&heading) else {
            problems.push(format!("no `{heading}…` heading"));
            continue;
        };
        let section = &doc[start + heading.len()..];
        let end = ["\n## ", "\n### "]
            .iter()
            .filter_map(|h| section.find(h))
            .min()
            .unwrap_or(section.len());
        let section = &section[..end];
        let help = petitlab_help(&[sub]);
        let flags = flags_in(help.split("Options:").nth(1).unwrap_or(""));
        for flag in flags.difference(&global) {
            if !section.contains(&format!("`{flag}")) {
                problems.push(format!(
                    "petitlab {sub}: {flag} is not documented in its section"
                ));
            }
        }
        known.extend(flags);
    }
    for flag in flags_in(&doc) {
        if !known.contains(&flag) {
            problems.push(format!(
                "cli-reference.md names {flag}, which petitlab does not have"
            ));
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn lab_toml_reference_documents_every_key_the_code_reads() {
    // Every field of the raw (as deserialised) inventory structs, wherever
    // they are (the iSCSI work may add its own), and of a stage pattern.
    let mut keys = BTreeSet::new();
    let field = regex::Regex::new(r"^\s*pub (\w+):").unwrap();
    let mut sources: Vec<PathBuf> = ["src/inventory", "src/iscsi"]
        .iter()
        .flat_map(|dir| {
            std::fs::read_dir(repo().join(dir))
                .into_iter()
                .flatten()
                .flatten()
        })
        .map(|e| e.path())
        .collect();
    sources.push(repo().join("src/console/stages.rs"));
    for source in sources {
        let text = std::fs::read_to_string(&source).unwrap_or_default();
        let mut in_raw = false;
        for line in text.lines() {
            if line.starts_with("pub struct Raw") || line.starts_with("pub struct StagePattern") {
                in_raw = true;
            } else if line.starts_with('}') {
                in_raw = false;
            } else if in_raw && let Some(c) = field.captures(line) {
                keys.insert(c[1].to_string());
            }
        }
    }
    assert!(
        keys.contains("password_file") && keys.contains("boot_timeout"),
        "{keys:?}"
    );
    let doc = read_doc("lab-toml.md");
    // Table rows and the headings naming the tables.
    let rows: Vec<&str> = doc
        .lines()
        .filter(|l| l.starts_with('|') || l.starts_with('#'))
        .collect();
    let word = |key: &str| {
        let re = regex::Regex::new(&format!(r"[`\[.]{key}[`\]\s=]")).unwrap();
        rows.iter().any(|r| re.is_match(r))
    };
    let missing: Vec<&String> = keys.iter().filter(|k| !word(k)).collect();
    assert!(
        missing.is_empty(),
        "lab-toml.md's tables and headings do not document {missing:?}"
    );
}
