//! Boot-stage detection: console bytes in, [`StageEvent`]s out.
//!
//! Text is split into lines ([`super::lines`]: escapes stripped, cursor jumps
//! and CR/LF end a line) and each line is matched against one pattern table.
//! The incomplete last line is matched too, but may only signal the login
//! prompt, which has no newline: any other stage waits for its whole line,
//! so that its event quotes all of it (a SOL packet can end mid-line, and a
//! failure reason must not name `…/deploy_kerne`).
//!
//! Events report news only. A stage equal to the previous one is dropped,
//! and so is a step backwards within one boot: petitboot redraws its menu
//! title long after the config was fetched. Firmware and kexec start a boot
//! over; failures (download, boot, panic) are always reported. The kernel
//! petitboot itself runs on ("skiroot") is part of the firmware, so kernel
//! messages right after firmware are not `KernelBooting`.

use std::fmt;

use regex::bytes::{Regex, RegexSet};
use serde::{Deserialize, Serialize};

use super::lines::LineSplitter;

/// Where a node is in its boot, as seen on its console.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Stage {
    /// Hostboot or skiboot (OPAL) is running.
    Firmware,
    /// Petitboot's menu is up.
    Petitboot,
    /// Petitboot downloaded and parsed a PXE config.
    ConfigFetched,
    /// Petitboot could not download a config, kernel or initrd.
    DownloadFailed,
    /// Petitboot had the files but could not kexec them.
    BootFailed,
    /// The running kernel is handing over to a new one.
    Kexec,
    /// The target Linux kernel is booting.
    KernelBooting,
    /// A getty login prompt.
    LoginPrompt,
    /// Kernel panic or firmware assertion.
    Panic,
}

impl Stage {
    pub const ALL: [Stage; 9] = [
        Stage::Firmware,
        Stage::Petitboot,
        Stage::ConfigFetched,
        Stage::DownloadFailed,
        Stage::BootFailed,
        Stage::Kexec,
        Stage::KernelBooting,
        Stage::LoginPrompt,
        Stage::Panic,
    ];

    /// The name used in lab.toml (`stage = "config_fetched"`).
    pub fn as_str(self) -> &'static str {
        match self {
            Stage::Firmware => "firmware",
            Stage::Petitboot => "petitboot",
            Stage::ConfigFetched => "config_fetched",
            Stage::DownloadFailed => "download_failed",
            Stage::BootFailed => "boot_failed",
            Stage::Kexec => "kexec",
            Stage::KernelBooting => "kernel_booting",
            Stage::LoginPrompt => "login_prompt",
            Stage::Panic => "panic",
        }
    }

    /// A download or boot failure, or a panic.
    pub fn is_failure(self) -> bool {
        self.rank().is_none()
    }

    /// Position in a normal boot; `None` for failures.
    fn rank(self) -> Option<u8> {
        match self {
            Stage::Firmware => Some(0),
            Stage::Petitboot => Some(1),
            Stage::ConfigFetched => Some(2),
            Stage::Kexec => Some(3),
            Stage::KernelBooting => Some(4),
            Stage::LoginPrompt => Some(5),
            Stage::DownloadFailed | Stage::BootFailed | Stage::Panic => None,
        }
    }
}

impl fmt::Display for Stage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A regex and the stage it signals; lab.toml can add these with
/// `[[console.stage_pattern]] pattern = "..." stage = "kexec"`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StagePattern {
    pub pattern: String,
    pub stage: Stage,
}

/// Why the pattern table could not be built.
#[derive(Debug, thiserror::Error)]
pub enum StagePatternError {
    /// A user pattern is not a valid regex.
    #[error("invalid console stage pattern {pattern:?} (stage {stage}): {source}")]
    Invalid {
        pattern: String,
        stage: Stage,
        #[source]
        source: regex::Error,
    },
    /// Every pattern compiles alone, but together they exceed regex limits.
    #[error("console stage patterns too large together: {0}")]
    TooLarge(#[source] regex::Error),
}

/// A stage reached, with the (escape-free, trimmed) console line that showed
/// it. The line may be incomplete if it matched before its end arrived.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StageEvent {
    pub stage: Stage,
    pub line: String,
}

/// Built-in patterns, each with where its text comes from. Checked in order
/// after user patterns; the first match decides a line's stage, so failures
/// come first. Compiled without Unicode classes (`\S` is any non-space
/// byte): smaller automata, and binary noise on a console stays cheap.
const BUILTIN: &[(&str, Stage)] = &[
    // Linux kernel/panic.c panic(): "Kernel panic - not syncing: %s".
    (r"Kernel panic - not syncing", Stage::Panic),
    // skiboot core/utils.c assert_fail(): "Assert fail: core/init.c:593:0".
    (r"Assert fail: \S+:\d+", Stage::Panic),
    // petitboot discover/boot.c kexec_load(), kexec_reboot(): "kexec load
    // failed: %s", "kexec reboot failed" (lower-case in older releases).
    (r"(?i)kexec load failed", Stage::BootFailed),
    (r"(?i)kexec reboot failed", Stage::BootFailed),
    // petitboot discover/boot.c boot(): "Boot failed: no image specified",
    // and kexec_load(): "Boot verification failure: %s".
    (r"Boot failed: no ", Stage::BootFailed),
    (r"Boot verification failure", Stage::BootFailed),
    // petitboot discover/pxe-parser.c: "Failed to download %s" (a URL) and,
    // once every pxelinux.cfg name was tried, "PXE autoconfiguration failed".
    (r"Failed to download [a-z]+://", Stage::DownloadFailed),
    (r"PXE autoconfiguration failed", Stage::DownloadFailed),
    // petitboot discover/boot.c: "Couldn't load %s from %s" (older: "Couldn't
    // load %s") and "Error loading %s", %s being "kernel image", "initrd",
    // "dtb" or one of their signatures.
    (
        r"Couldn't load (?:kernel image|initrd|dtb)",
        Stage::DownloadFailed,
    ),
    (
        r"Error loading (?:kernel image|initrd|dtb)",
        Stage::DownloadFailed,
    ),
    // util-linux agetty: "<hostname> login: " (no newline after it).
    (r"^\S+ login: *$", Stage::LoginPrompt),
    // Linux init/version.c linux_banner: "Linux version 5.15.0-105-generic (...".
    (r"Linux version \d+\.\d+", Stage::KernelBooting),
    // Linux init/main.c run_init_process(): "Run /init as init process".
    (r"Run /\S* as init process", Stage::KernelBooting),
    // Linux kernel/kexec_core.c kernel_kexec(): "Starting new kernel" with
    // pr_fmt "kexec_core: " ("kexec: " in older kernels).
    (r"kexec(?:_core)?: Starting new kernel", Stage::Kexec),
    // petitboot discover/boot.c boot_process() status: "Performing kexec
    // reboot" ("performing kexec reboot" in older releases).
    (r"(?i)performing kexec reboot", Stage::Kexec),
    // petitboot discover/pxe-parser.c: "Parsed PXE config from %s"; older
    // releases, after "Retrieve config from URL": "Config file %s parsed".
    (r"Parsed PXE config from ", Stage::ConfigFetched),
    (r"Config file \S+ parsed", Stage::ConfigFetched),
    // petitboot ui/ncurses/nc-cui.c main menu: title "Petitboot (v1.10.4)",
    // help "Enter=accept, e=edit, n=new, x=exit, ...", "Welcome to Petitboot".
    (r"Petitboot \([^)\s]+\)", Stage::Petitboot),
    (r"e=edit, n=new, x=exit", Stage::Petitboot),
    (r"Welcome to Petitboot", Stage::Petitboot),
    // petitboot discover/pb-discover.c main(): "--- pb-discover ---", on the
    // console when its log goes there (`pb-discover -l -`, as in the test
    // guests of tests/peers/petitboot-vm) instead of behind the ncurses UI.
    (r"--- pb-discover ---", Stage::Petitboot),
    // hostboot console banner "--== Welcome to Hostboot hostboot-.../hbicore.bin
    // ==--" and progress lines "  5.60502|ISTEP  6. 5 - host_init_fsi".
    (r"--== Welcome to Hostboot", Stage::Firmware),
    (r"\|ISTEP +\d+\. *\d+", Stage::Firmware),
    // skiboot core/init.c: "OPAL v6.7.1 starting..." ("OPAL skiboot-v6.0.1
    // starting..." on some builds, "SkiBoot ... starting" on old ones), and
    // "INIT: Starting kernel at 0x..., fdt at ..." when it starts petitboot.
    (r"OPAL \S+.* starting\.\.\.", Stage::Firmware),
    (r"SkiBoot \S+.* starting", Stage::Firmware),
    (r"INIT: Starting kernel at ", Stage::Firmware),
];

/// Flags for built-in patterns; see [`BUILTIN`].
const BUILTIN_FLAGS: &str = "(?-u)";

/// The built-in table, e.g. to show users what is matched.
pub fn builtin_patterns() -> Vec<StagePattern> {
    BUILTIN
        .iter()
        .map(|&(pattern, stage)| StagePattern {
            pattern: format!("{BUILTIN_FLAGS}{pattern}"),
            stage,
        })
        .collect()
}

/// Which stages are news; see the module doc.
#[derive(Debug, Clone, Default)]
struct Progress {
    last: Option<Stage>,
    /// Highest rank reached since the current boot started.
    high: Option<u8>,
}

impl Progress {
    fn accept(&mut self, stage: Stage) -> bool {
        if self.last == Some(stage) {
            return false;
        }
        let news = match (stage.rank(), self.high) {
            (None, _) | (Some(_), None) => true,
            _ if matches!(stage, Stage::Firmware | Stage::Kexec) => true,
            (Some(rank), Some(high)) => {
                let skiroot_kernel = stage == Stage::KernelBooting && high == 0;
                rank > high && !skiroot_kernel
            }
        };
        if news {
            self.last = Some(stage);
            if let Some(rank) = stage.rank() {
                self.high = Some(rank);
            }
        }
        news
    }
}

/// Streaming detector for one node's console.
#[derive(Debug, Clone)]
pub struct StageDetector {
    set: RegexSet,
    stages: Vec<Stage>,
    lines: LineSplitter,
    progress: Progress,
    /// `lines.version()` when the partial line was last matched.
    partial_seen: u64,
}

impl StageDetector {
    /// The built-in table plus `extra` patterns, which are tried first.
    pub fn new(extra: &[StagePattern]) -> Result<Self, StagePatternError> {
        // Compile user patterns one by one so an error names the culprit.
        for p in extra {
            Regex::new(&p.pattern).map_err(|source| StagePatternError::Invalid {
                pattern: p.pattern.clone(),
                stage: p.stage,
                source,
            })?;
        }
        let table: Vec<StagePattern> = extra.iter().cloned().chain(builtin_patterns()).collect();
        let set =
            RegexSet::new(table.iter().map(|p| &p.pattern)).map_err(StagePatternError::TooLarge)?;
        Ok(Self {
            set,
            stages: table.iter().map(|p| p.stage).collect(),
            lines: LineSplitter::new(),
            progress: Progress::default(),
            partial_seen: 0,
        })
    }

    /// Feed console output; returns the stages reached, in order.
    pub fn feed(&mut self, bytes: &[u8]) -> Vec<StageEvent> {
        let mut events = Vec::new();
        let Self {
            set,
            stages,
            lines,
            progress,
            ..
        } = self;
        lines.feed(bytes, |line| {
            if let Some(ev) = check(set, stages, progress, line, false) {
                events.push(ev);
            }
        });
        if self.lines.version() != self.partial_seen {
            self.partial_seen = self.lines.version();
            let line = self.lines.partial();
            if let Some(ev) = check(&self.set, &self.stages, &mut self.progress, line, true) {
                events.push(ev);
            }
        }
        events
    }

    /// The last stage reported, if any.
    pub fn current(&self) -> Option<Stage> {
        self.progress.last
    }

    /// Forget the boot seen so far (e.g. after petitlab power-cycled the
    /// node), so every stage is news again.
    pub fn reset(&mut self) {
        self.progress = Progress::default();
    }
}

fn check(
    set: &RegexSet,
    stages: &[Stage],
    progress: &mut Progress,
    line: &[u8],
    partial: bool,
) -> Option<StageEvent> {
    if line.iter().all(u8::is_ascii_whitespace) {
        return None;
    }
    let stage = stages[set.matches(line).iter().next()?];
    if partial && stage != Stage::LoginPrompt {
        return None;
    }
    progress.accept(stage).then(|| StageEvent {
        stage,
        line: String::from_utf8_lossy(line).trim().to_owned(),
    })
}

#[cfg(test)]
#[path = "stages_tests.rs"]
mod tests;
