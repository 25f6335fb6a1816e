//! A node's boot, joined from every signal petitlab holds: its own BMC
//! actions, dnsmasq's log, the HTTP/TFTP fetches, the console's stages and
//! the deploy agent's callbacks. [`Boot`] is one boot's events in order;
//! [`Milestones`] is where it got to; [`diagnose`] says where it stopped
//! and why. No I/O here: the engine records ([`crate::engine::boot_record`])
//! and the store keeps the last boots of each node.

pub mod diagnose;
pub mod dnsmasq_log;
pub mod follow;
pub mod phases;
pub mod render;

use serde::{Deserialize, Serialize};

use crate::console::Stage;

/// One thing that happened during a boot.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BootEvent {
    /// Unix milliseconds.
    pub at: i64,
    #[serde(flatten)]
    pub what: What,
}

/// What happened, by source.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum What {
    /// petitlab powered the node on (or cycled or reset it): a boot begins.
    PowerOn {
        /// "on", "cycle", "reset".
        how: String,
        /// Who asked (user, or "deploy").
        by: String,
    },
    /// The BMC's boot override read back when the boot began.
    BootOverride { device: String },
    /// One DHCP message in dnsmasq's log for one of the node's MACs.
    Dhcp(DhcpMessage),
    /// One fetch of one of the node's files.
    Fetch(Fetch),
    /// A boot stage seen on the console, with the line that matched.
    Console { stage: Stage, line: String },
    /// The console was not connected for a while: output then is missing.
    ConsoleGap { detail: String },
    /// The deploy agent called back ("lookup", "progress", "done", "failed").
    Agent { call: String, detail: String },
}

/// A DHCP message, as dnsmasq logged it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DhcpMessage {
    /// DISCOVER, OFFER, REQUEST, ACK, NAK, DECLINE, RELEASE, INFORM.
    pub message: String,
    pub mac: String,
    /// The address offered or acknowledged, when the line names one.
    pub ip: Option<String>,
    /// The interface dnsmasq heard it on.
    pub interface: String,
    /// Options dnsmasq logged as sent with this message (OFFER and ACK).
    pub sent: Vec<SentOption>,
    /// dnsmasq's words after the MAC ("no address available", a hostname).
    pub note: Option<String>,
}

impl DhcpMessage {
    pub fn option(&self, code: u16) -> Option<&SentOption> {
        self.sent.iter().find(|o| o.code == code)
    }
}

/// An option dnsmasq sent, as its log shows it: the size, and the value
/// (dnsmasq prints options it has no name for as hex, cut after 14 bytes;
/// `value` is what that hex decodes to, `truncated` when it was cut).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SentOption {
    pub code: u16,
    pub size: usize,
    pub value: String,
    pub truncated: bool,
}

/// One fetch of a node's file over HTTP or TFTP.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Fetch {
    /// "http" or "tftp".
    pub proto: String,
    /// The path requested (relative to the served root).
    pub path: String,
    /// What the file is to the boot, from its name.
    pub file: FileKind,
    /// HTTP status; for TFTP 200 when sent whole, 404 for "file not found",
    /// 500 for any other error.
    pub status: u16,
    pub bytes: u64,
    pub millis: u64,
}

impl Fetch {
    pub fn ok(&self) -> bool {
        (200..300).contains(&self.status)
    }

    /// Bytes per second, when it took measurable time.
    pub fn rate(&self) -> Option<f64> {
        (self.millis > 0).then(|| self.bytes as f64 * 1000.0 / self.millis as f64)
    }
}

/// What a fetched file is to the boot.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum FileKind {
    Config,
    Kernel,
    Initrd,
    /// The instance image the deploy agent writes.
    Image,
    Other,
}

impl FileKind {
    /// From the file name petitlab stages (`config`, `pxelinux.cfg/…`,
    /// `deploy_kernel`, `kernel`, `deploy_ramdisk`, `ramdisk`, `image`).
    pub fn of(path: &str) -> FileKind {
        let name = path.rsplit('/').next().unwrap_or(path);
        if path.contains("pxelinux.cfg/") || name == "config" || name.ends_with(".cfg") {
            FileKind::Config
        } else if name.contains("kernel") || name.contains("vmlinu") {
            FileKind::Kernel
        } else if name.contains("ramdisk") || name.contains("initrd") || name.contains("initramfs")
        {
            FileKind::Initrd
        } else if name == "image" {
            FileKind::Image
        } else {
            FileKind::Other
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            FileKind::Config => "config",
            FileKind::Kernel => "kernel",
            FileKind::Initrd => "initrd",
            FileKind::Image => "image",
            FileKind::Other => "file",
        }
    }
}

impl What {
    /// Where the event came from, for the timeline's source column.
    pub fn source(&self) -> &'static str {
        match self {
            What::PowerOn { .. } | What::BootOverride { .. } => "bmc",
            What::Dhcp(_) => "dhcp",
            What::Fetch(f) if f.proto == "tftp" => "tftp",
            What::Fetch(_) => "http",
            What::Console { .. } | What::ConsoleGap { .. } => "console",
            What::Agent { .. } => "agent",
        }
    }
}

/// One boot of one node: from a power-on by petitlab (or the first sign of
/// a boot nobody here started) to the next.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Boot {
    pub id: i64,
    pub node: String,
    /// Unix milliseconds.
    pub started_at: i64,
    /// What began it: "power on by alice", "first seen: dhcp".
    pub origin: String,
    pub events: Vec<BootEvent>,
    /// Events not kept because the boot already held the most it keeps.
    pub dropped: u32,
}

/// Most events one boot keeps; a node looping in its firmware stops
/// adding here (the count of the rest is kept).
pub const EVENTS_PER_BOOT: usize = 400;
