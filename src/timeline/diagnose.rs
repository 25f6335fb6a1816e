//! Where a boot stopped, and the likely causes: rules kept in one table
//! ([`RULES`]), each looking at the boot's milestones and events.

use serde::{Deserialize, Serialize};

use super::Boot;
use super::phases::Milestones;

/// What the rules say of a boot that stalled or failed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Diagnosis {
    /// The rule's name (`no-dhcp`, `ack-without-209`, …).
    pub rule: String,
    /// The step expected next that did not come.
    pub expected: String,
    /// Likely causes, most likely first.
    pub causes: Vec<String>,
    /// What the rule saw (readings, file names, console lines).
    pub evidence: Vec<String>,
}

impl Diagnosis {
    /// One line: the expected step and the first cause.
    pub fn headline(&self) -> String {
        match self.causes.first() {
            Some(cause) => format!("{}: {cause}", self.expected),
            None => self.expected.clone(),
        }
    }
}

/// A boot's timeline and what the rules make of it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Why {
    pub boot: Boot,
    pub milestones: Milestones,
    pub diagnosis: Option<Diagnosis>,
}

/// What the rules know besides the boot's events.
#[derive(Debug, Clone, Default)]
pub struct Context {
    pub settings: crate::inventory::TimelineSettings,
    /// Unix ms.
    pub now: i64,
    /// The node's MACs as lab.toml has them (lowercase `aa:bb:…`).
    pub macs: Vec<String>,
    /// The files petitlab has staged for the node, as paths under the
    /// served roots (what a fetch's path is compared with).
    pub staged: Vec<String>,
    /// Whether petitlab follows dnsmasq's log (`[dhcp] log`): without it,
    /// no DHCP is not evidence of anything.
    pub follows_dhcp: bool,
    /// The console's last lines (escaped), for failures petitboot printed.
    pub console_tail: Vec<String>,
}

/// Petitboot's default autoboot countdown.
const COUNTDOWN_MS: i64 = 10_000;

/// One rule: its name and the check that fires it.
struct Rule {
    name: &'static str,
    check: fn(&Facts, &Context) -> Option<Finding>,
}

/// A rule's verdict, before the name is attached.
struct Finding {
    expected: String,
    causes: Vec<String>,
    evidence: Vec<String>,
}

/// The rules, most specific first; the first that fires is the diagnosis.
const RULES: &[Rule] = &[
    Rule {
        name: "file-missing",
        check: file_missing,
    },
    Rule {
        name: "kexec-failed",
        check: kexec_failed,
    },
    Rule {
        name: "silent-kernel",
        check: silent_kernel,
    },
    Rule {
        name: "autoboot-off",
        check: autoboot_off,
    },
    Rule {
        name: "ack-without-209",
        check: ack_without_209,
    },
    Rule {
        name: "no-dhcp-offer",
        check: no_offer,
    },
    Rule {
        name: "no-dhcp",
        check: no_dhcp,
    },
    Rule {
        name: "no-config",
        check: no_config,
    },
];

/// The boot's diagnosis now, if it stalled or failed; `None` for a boot
/// that is up, or still within its allowances.
pub fn diagnose(boot: &Boot, ctx: &Context) -> Option<Diagnosis> {
    let facts = Facts::of(boot, ctx);
    if facts.milestones.at(super::phases::Milestone::Up).is_some() {
        return None;
    }
    RULES.iter().find_map(|rule| {
        (rule.check)(&facts, ctx).map(|f| Diagnosis {
            rule: rule.name.to_string(),
            expected: f.expected,
            causes: f.causes,
            evidence: f.evidence,
        })
    })
}

/// A boot's timeline, diagnosed.
pub fn why(boot: Boot, ctx: &Context) -> Why {
    Why {
        milestones: Milestones::of(&boot),
        diagnosis: diagnose(&boot, ctx),
        boot,
    }
}

/// What the rules read off a boot.
struct Facts<'a> {
    boot: &'a Boot,
    milestones: Milestones,
    /// The boot override read when it began.
    boot_override: Option<&'a str>,
    /// DHCP messages for the node's MACs.
    dhcp: Vec<(i64, &'a super::DhcpMessage)>,
    fetches: Vec<(i64, &'a super::Fetch)>,
    /// Console failure lines (download, boot) with their time.
    console_failures: Vec<(i64, crate::console::Stage, &'a str)>,
    /// The time of the last event of any kind.
    last_event: i64,
}

impl<'a> Facts<'a> {
    fn of(boot: &'a Boot, ctx: &Context) -> Facts<'a> {
        use super::What;
        let mut facts = Facts {
            boot,
            milestones: Milestones::of(boot),
            boot_override: None,
            dhcp: Vec::new(),
            fetches: Vec::new(),
            console_failures: Vec::new(),
            last_event: boot.started_at,
        };
        for event in &boot.events {
            facts.last_event = facts.last_event.max(event.at);
            match &event.what {
                What::BootOverride { device } => facts.boot_override = Some(device),
                What::Dhcp(d) if ctx.macs.is_empty() || ctx.macs.contains(&d.mac) => {
                    facts.dhcp.push((event.at, d))
                }
                What::Fetch(f) => facts.fetches.push((event.at, f)),
                What::Console { stage, line } if stage.is_failure() => {
                    facts.console_failures.push((event.at, *stage, line))
                }
                _ => {}
            }
        }
        facts
    }

    fn at(&self, m: super::phases::Milestone) -> Option<i64> {
        self.milestones.at(m)
    }

    /// Nothing new for the stall allowance since `since`.
    fn quiet_since(&self, since: i64, ctx: &Context) -> bool {
        ctx.now - since.max(self.last_event) >= stall_ms(ctx)
    }
}

fn stall_ms(ctx: &Context) -> i64 {
    i64::try_from(ctx.settings.stall_after.as_millis()).unwrap_or(i64::MAX)
}

fn seconds(ms: i64) -> String {
    format!("{:.0} s", ms as f64 / 1000.0)
}

/// A fetch answered 404, or petitboot said it could not download a file.
fn file_missing(f: &Facts, ctx: &Context) -> Option<Finding> {
    let missing = f
        .fetches
        .iter()
        .rev()
        .find(|(at, fetch)| {
            fetch.status == 404
                && !f
                    .fetches
                    .iter()
                    .any(|(later, ok)| later >= at && ok.ok() && ok.path == fetch.path)
        })
        .map(|(_, fetch)| *fetch);
    let console = f
        .console_failures
        .iter()
        .find(|(_, stage, _)| *stage == crate::console::Stage::DownloadFailed)
        .map(|(_, _, line)| *line);
    if missing.is_none() && console.is_none() {
        return None;
    }
    let mut evidence = Vec::new();
    let mut causes = Vec::new();
    let expected = match missing {
        Some(fetch) => {
            evidence.push(format!(
                "{} GET {} answered {}",
                fetch.proto, fetch.path, fetch.status
            ));
            let staged = ctx.staged.iter().any(|s| s == &fetch.path);
            if staged {
                causes.push(format!(
                    "petitlab staged {} but the server could not send it (removed or unreadable since?)",
                    fetch.path
                ));
            } else {
                let theirs: Vec<&str> = ctx.staged.iter().map(String::as_str).collect();
                causes.push(format!(
                    "petitlab did not stage {}: the config names a file that is not there (staged for this node: {})",
                    fetch.path,
                    if theirs.is_empty() { "nothing".to_string() } else { theirs.join(", ") }
                ));
            }
            format!("the {} {}", fetch.file.as_str(), fetch.path)
        }
        None => {
            causes.push("a file the config names could not be downloaded".into());
            "a boot file".into()
        }
    };
    if let Some(line) = console {
        evidence.push(format!("console: {line}"));
    }
    Some(Finding {
        expected: format!("{expected}, which was not found"),
        causes,
        evidence,
    })
}

/// The kernel was fetched and petitboot said its kexec failed, or no kexec
/// came.
fn kexec_failed(f: &Facts, ctx: &Context) -> Option<Finding> {
    use super::phases::Milestone;
    let kernel = f.at(Milestone::Kernel)?;
    if f.at(Milestone::Kexec).is_some() {
        return None;
    }
    let failed = f
        .console_failures
        .iter()
        .find(|(_, stage, _)| *stage == crate::console::Stage::BootFailed);
    if failed.is_none() && !f.quiet_since(kernel, ctx) {
        return None;
    }
    let mut evidence =
        vec!["the kernel was fetched; no \"Performing kexec reboot\" followed".to_string()];
    if let Some((_, _, line)) = failed {
        evidence.push(format!("console: {line}"));
    }
    evidence.extend(ctx.console_tail.iter().map(|l| format!("console: {l}")));
    Some(Finding {
        expected: "kexec into the downloaded kernel".into(),
        causes: vec![
            "kexec failed: the kernel or initrd is not a ppc64le image petitboot's kernel can load, or does not fit in memory".into(),
            "the console lines before it say what kexec_load refused".into(),
        ],
        evidence,
    })
}

/// kexec, then nothing on the console.
fn silent_kernel(f: &Facts, ctx: &Context) -> Option<Finding> {
    use super::phases::Milestone;
    let kexec = f.at(Milestone::Kexec)?;
    let after = f.boot.events.iter().any(|e| {
        e.at > kexec
            && matches!(&e.what, super::What::Console { stage, .. } if *stage != crate::console::Stage::Kexec)
    });
    if after || !f.quiet_since(kexec, ctx) {
        return None;
    }
    Some(Finding {
        expected: "the new kernel's first lines on the console".into(),
        causes: vec![
            "a wrong console= for this machine (OPAL's hvc0 on PowerNV; the kernel command line must name it)".into(),
            "a kernel of the wrong endianness or architecture (ppc64 big-endian, x86) that never starts".into(),
        ],
        evidence: vec![format!(
            "kexec at {}; nothing on the console for {} since",
            crate::calendar::hms(kexec),
            seconds(ctx.now - kexec)
        )],
    })
}

/// The config came, the kernel was never asked for within the countdown.
fn autoboot_off(f: &Facts, ctx: &Context) -> Option<Finding> {
    use super::phases::Milestone;
    let config = f.at(Milestone::Config)?;
    if f.at(Milestone::Kernel).is_some()
        || f.fetches
            .iter()
            .any(|(at, x)| *at >= config && x.file == super::FileKind::Kernel)
        || ctx.now - config < COUNTDOWN_MS + stall_ms(ctx)
        || !f.quiet_since(config, ctx)
    {
        return None;
    }
    let mut causes = vec!["petitboot's autoboot is off (petitboot's System Configuration, or nvram's auto-boot?=false)".to_string()];
    let reading = f.boot_override.unwrap_or("not read");
    causes.push(format!(
        "an IPMI boot override petitboot's netboot option does not match (petitboot autoboots only options of the overridden kind; override read: {reading})"
    ));
    Some(Finding {
        expected: "the kernel requested within petitboot's 10 s countdown".into(),
        causes,
        evidence: vec![format!(
            "config fetched at {}; no kernel request in {}",
            crate::calendar::hms(config),
            seconds(ctx.now - config)
        )],
    })
}

/// dnsmasq acknowledged a lease without 209.
fn ack_without_209(f: &Facts, ctx: &Context) -> Option<Finding> {
    use super::phases::Milestone;
    // A node booting its disk gets no 209 on purpose (its instance is
    // local): only a boot meant to netboot is missing it.
    let netboot = f.boot_override.is_some_and(|d| d.starts_with("pxe"))
        || ctx
            .staged
            .iter()
            .any(|p| super::FileKind::of(p) == super::FileKind::Config);
    if !netboot {
        return None;
    }
    let acks: Vec<_> = f.dhcp.iter().filter(|(_, d)| d.message == "ACK").collect();
    let (at, ack) = acks.last()?;
    if acks.iter().any(|(_, d)| d.option(209).is_some())
        || f.at(Milestone::Config).is_some()
        || !f.quiet_since(*at, ctx)
    {
        return None;
    }
    Some(Finding {
        expected: "a DHCP ACK carrying options 209/210 (the config's URL)".into(),
        causes: vec![
            format!(
                "the node's MAC {} is not tagged in dnsmasq's hostsdir (petitlab's prepare-ramdisk/prepare-instance writes it)",
                ack.mac
            ),
            "dnsmasq has not re-read its --dhcp-hostsdir/--dhcp-optsdir (send it SIGHUP)".into(),
        ],
        evidence: vec![format!(
            "DHCP ACK {} to {} at {} without option 209",
            ack.ip.as_deref().unwrap_or("?"),
            ack.mac,
            crate::calendar::hms(*at)
        )],
    })
}

/// dnsmasq heard the node and offered nothing.
fn no_offer(f: &Facts, ctx: &Context) -> Option<Finding> {
    let (at, discover) = f.dhcp.iter().rev().find(|(_, d)| d.message == "DISCOVER")?;
    if f.dhcp.iter().any(|(_, d)| d.message != "DISCOVER") || !f.quiet_since(*at, ctx) {
        return None;
    }
    let mut evidence = vec![format!(
        "DHCPDISCOVER from {} on {}",
        discover.mac, discover.interface
    )];
    if let Some(note) = &discover.note {
        evidence.push(format!("dnsmasq: {note}"));
    }
    Some(Finding {
        expected: "a DHCP OFFER".into(),
        causes: vec!["dnsmasq heard the node but offered nothing: no dhcp-range or dhcp-host for it on that network, or the MAC is ignored".into()],
        evidence,
    })
}

/// No DHCP at all once petitboot ran (or long after power-on).
fn no_dhcp(f: &Facts, ctx: &Context) -> Option<Finding> {
    use super::phases::Milestone;
    if !ctx.follows_dhcp || !f.dhcp.is_empty() || f.at(Milestone::Config).is_some() {
        return None;
    }
    let since = match f.at(Milestone::Petitboot) {
        Some(at) => at,
        None => {
            let allowance =
                i64::try_from(ctx.settings.firmware_allowance.as_millis()).unwrap_or(i64::MAX);
            f.at(Milestone::PowerOn)?.saturating_add(allowance)
        }
    };
    if ctx.now < since || !f.quiet_since(since, ctx) {
        return None;
    }
    let mut causes = Vec::new();
    match f.boot_override {
        Some(device) if !device.starts_with("pxe") => causes.push(format!(
            "the boot override is not pxe (read: {device}), so petitboot did not netboot"
        )),
        _ => {}
    }
    causes.push(format!(
        "the NIC or MAC in lab.toml is wrong (lab.toml: {}), or the node is on a network dnsmasq does not serve",
        if ctx.macs.is_empty() { "no MACs".to_string() } else { ctx.macs.join(", ") }
    ));
    if f.boot_override.is_none() {
        causes.push("the boot override was not read when the boot began".into());
    }
    Some(Finding {
        expected: "a DHCP DISCOVER from the node".into(),
        causes,
        evidence: vec![format!(
            "nothing in dnsmasq's log for these MACs for {} since {}",
            seconds(ctx.now - since),
            if f.at(Milestone::Petitboot).is_some() {
                "petitboot started"
            } else {
                "the firmware's allowance ran out"
            }
        )],
    })
}

/// Without dnsmasq's log: petitboot ran and no config was fetched.
fn no_config(f: &Facts, ctx: &Context) -> Option<Finding> {
    use super::phases::Milestone;
    if ctx.follows_dhcp || f.at(Milestone::Config).is_some() {
        return None;
    }
    let petitboot = f.at(Milestone::Petitboot)?;
    if !f.quiet_since(petitboot, ctx) {
        return None;
    }
    Some(Finding {
        expected: "the config fetched by petitboot".into(),
        causes: vec![
            "no DHCP answer with 209/210 (petitlab does not follow dnsmasq's log: set [dhcp] log to see it)".into(),
            format!("the boot override is not pxe (read: {})", f.boot_override.unwrap_or("not read")),
        ],
        evidence: vec![format!("petitboot started at {}; no config fetched", crate::calendar::hms(petitboot))],
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::timeline::{BootEvent, DhcpMessage, What};

    fn boot(override_: &str) -> Boot {
        let ack = DhcpMessage {
            message: "ACK".into(),
            mac: "52:54:00:00:00:01".into(),
            ip: Some("10.0.0.9".into()),
            interface: "eth0".into(),
            sent: Vec::new(),
            note: None,
        };
        let events = vec![
            What::BootOverride {
                device: override_.into(),
            },
            What::Dhcp(ack),
        ];
        Boot {
            id: 1,
            node: "n1".into(),
            started_at: 0,
            origin: "power on".into(),
            events: events
                .into_iter()
                .map(|what| BootEvent { at: 1_000, what })
                .collect(),
            dropped: 0,
        }
    }

    fn quiet_context() -> Context {
        Context {
            now: 1_000_000,
            macs: vec!["52:54:00:00:00:01".into()],
            follows_dhcp: true,
            ..Context::default()
        }
    }

    #[test]
    fn an_ack_without_209_is_a_fault_only_for_a_boot_meant_to_netboot() {
        let ctx = quiet_context();
        let d = diagnose(&boot("pxe"), &ctx).expect("a netboot with no 209");
        assert_eq!(d.rule, "ack-without-209");
        assert!(
            d.causes[0].contains("52:54:00:00:00:01 is not tagged"),
            "{d:?}"
        );
        // A local instance booting its disk: no 209 is what petitlab wrote.
        assert_eq!(diagnose(&boot("none"), &ctx), None);
        // Unless petitlab staged a config for it.
        let staged = Context {
            staged: vec!["uuid/config".into()],
            ..quiet_context()
        };
        assert_eq!(
            diagnose(&boot("none"), &staged).unwrap().rule,
            "ack-without-209"
        );
    }
}
