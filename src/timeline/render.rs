//! A boot's timeline and diagnosis as text (`petitlab why`): the diagnosis
//! first, then one line per event, then the stages' durations. Text from
//! the network (console lines, paths, dnsmasq's notes) is escaped here.

use std::fmt::Write;

use super::diagnose::Why;
use super::{BootEvent, Fetch, What};
use crate::calendar::hms;
use crate::text::display_safe;

/// The whole report for one node's last boot.
pub fn why(why: &Why, now: i64) -> String {
    let boot = &why.boot;
    let mut out = String::new();
    let reached = why.milestones.last().map_or("nothing", |(m, _)| m.as_str());
    let _ = writeln!(
        out,
        "{}: boot began {} ({}), {} ago; got as far as {reached}",
        display_safe(&boot.node),
        hms(boot.started_at),
        display_safe(&boot.origin),
        seconds(now - boot.started_at)
    );
    match &why.diagnosis {
        Some(d) => {
            let _ = writeln!(out, "stalled: expected {}", display_safe(&d.expected));
            for cause in &d.causes {
                let _ = writeln!(out, "  likely: {}", display_safe(cause));
            }
            for seen in &d.evidence {
                let _ = writeln!(out, "  seen:   {}", display_safe(seen));
            }
        }
        None if reached == "up" => {
            let _ = writeln!(out, "booted: no diagnosis needed");
        }
        None => {
            let _ = writeln!(
                out,
                "no stall yet: the next step is still within its allowance"
            );
        }
    }
    out.push('\n');
    let _ = writeln!(out, "{:<8}  {:>7}  {:<7}  EVENT", "TIME", "+S", "SOURCE");
    for event in &boot.events {
        let _ = writeln!(
            out,
            "{:<8}  {:>7}  {:<7}  {}",
            hms(event.at),
            format!("+{:.1}", (event.at - boot.started_at) as f64 / 1000.0),
            event.what.source(),
            describe(event)
        );
    }
    if boot.dropped > 0 {
        let _ = writeln!(out, "({} more events not kept)", boot.dropped);
    }
    let phases = why.milestones.phases();
    if !phases.is_empty() {
        let stages: Vec<String> = phases
            .iter()
            .map(|p| format!("{} {}", p.name(), seconds(p.millis)))
            .collect();
        let _ = writeln!(out, "\nstages: {}", stages.join(", "));
    }
    out
}

/// One event's detail, escaped.
pub fn describe(event: &BootEvent) -> String {
    let text = match &event.what {
        What::PowerOn { how, by } => format!("power {how} by {by}"),
        What::BootOverride { device } => format!("boot override: {device}"),
        What::Dhcp(d) => {
            let mut s = d.message.to_string();
            if let Some(ip) = &d.ip {
                let _ = write!(s, " {ip}");
            }
            let _ = write!(s, " {} on {}", d.mac, d.interface);
            for code in [209, 210] {
                if let Some(o) = d.option(code) {
                    let cut = if o.truncated { "…" } else { "" };
                    let _ = write!(s, " {code}={}{cut} ({} B)", o.value, o.size);
                }
            }
            if let Some(note) = &d.note {
                let _ = write!(s, " ({note})");
            }
            s
        }
        What::Fetch(f) => fetch(f),
        What::Console { stage, line } => format!("{} \"{}\"", stage.as_str(), line),
        What::ConsoleGap { detail } => detail.clone(),
        What::Agent { call, detail } => format!("agent {call}: {detail}"),
    };
    display_safe(&text).into_owned()
}

fn fetch(f: &Fetch) -> String {
    let mut s = format!(
        "{} {} {} {}",
        f.file.as_str(),
        f.path,
        f.status,
        bytes(f.bytes)
    );
    let _ = write!(s, " {}", millis(f.millis));
    if let Some(rate) = f.rate().filter(|_| f.bytes >= 64 * 1024) {
        let _ = write!(s, " {}/s", bytes(rate as u64));
    }
    s
}

fn bytes(n: u64) -> String {
    match n {
        n if n >= 1 << 30 => format!("{:.1} GiB", n as f64 / (1u64 << 30) as f64),
        n if n >= 1 << 20 => format!("{:.1} MiB", n as f64 / (1u64 << 20) as f64),
        n if n >= 1 << 10 => format!("{:.1} KiB", n as f64 / 1024.0),
        n => format!("{n} B"),
    }
}

fn millis(ms: u64) -> String {
    if ms >= 1000 {
        format!("{:.1} s", ms as f64 / 1000.0)
    } else {
        format!("{ms} ms")
    }
}

fn seconds(ms: i64) -> String {
    format!("{:.1} s", ms.max(0) as f64 / 1000.0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::timeline::phases::Milestones;
    use crate::timeline::{Boot, FileKind};

    #[test]
    fn hostile_text_is_escaped_and_fetches_say_rate() {
        let boot = Boot {
            id: 1,
            node: "n1".into(),
            started_at: 0,
            origin: "power on by root".into(),
            events: vec![
                BootEvent {
                    at: 1_000,
                    what: What::Console {
                        stage: crate::console::Stage::Petitboot,
                        line: "Petitboot \u{1b}[2J\u{7}".into(),
                    },
                },
                BootEvent {
                    at: 2_000,
                    what: What::Fetch(Fetch {
                        proto: "http".into(),
                        path: "u/deploy_kernel".into(),
                        file: FileKind::Kernel,
                        status: 200,
                        bytes: 2 << 20,
                        millis: 1_000,
                    }),
                },
            ],
            dropped: 0,
        };
        let why = Why {
            milestones: Milestones::of(&boot),
            diagnosis: None,
            boot,
        };
        let text = super::why(&why, 5_000);
        assert!(!text.contains('\u{1b}'), "{text}");
        assert!(!text.contains('\u{7}'), "{text}");
        assert!(
            text.contains("kernel u/deploy_kernel 200 2.0 MiB 1.0 s 2.0 MiB/s"),
            "{text}"
        );
        assert!(
            text.contains("stages: power-on→petitboot 1.0 s, petitboot→kernel 1.0 s"),
            "{text}"
        );
    }
}
