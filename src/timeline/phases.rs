//! Where a boot got to: its milestones in the order a netboot reaches them,
//! and the time between each pair (the dashboard's stage bar and the lab's
//! stage-duration chart).

use serde::{Deserialize, Serialize};

use super::{Boot, FileKind, What};
use crate::console::Stage;

/// The milestones of a netboot, in order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Milestone {
    /// petitlab powered it on (or the boot's first event).
    PowerOn,
    /// Petitboot's menu on the console.
    Petitboot,
    /// dnsmasq acknowledged a lease.
    #[serde(rename = "dhcp")]
    DhcpAck,
    /// The petitboot config was fetched.
    Config,
    /// The kernel was fetched.
    Kernel,
    /// The console showed the kexec.
    Kexec,
    /// A login prompt, or the deploy agent's first callback.
    Up,
}

impl Milestone {
    pub const ALL: [Milestone; 7] = [
        Milestone::PowerOn,
        Milestone::Petitboot,
        Milestone::DhcpAck,
        Milestone::Config,
        Milestone::Kernel,
        Milestone::Kexec,
        Milestone::Up,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Milestone::PowerOn => "power-on",
            Milestone::Petitboot => "petitboot",
            Milestone::DhcpAck => "dhcp",
            Milestone::Config => "config",
            Milestone::Kernel => "kernel",
            Milestone::Kexec => "kexec",
            Milestone::Up => "up",
        }
    }
}

/// When a boot reached each milestone (unix ms), first time only.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Milestones {
    pub reached: Vec<(Milestone, i64)>,
}

impl Milestones {
    pub fn of(boot: &Boot) -> Milestones {
        let mut m = Milestones::default();
        m.set(Milestone::PowerOn, boot.started_at);
        for event in &boot.events {
            let at = event.at;
            match &event.what {
                What::PowerOn { .. } => m.set(Milestone::PowerOn, at),
                What::Dhcp(d) if d.message == "ACK" => m.set(Milestone::DhcpAck, at),
                What::Fetch(f) if f.ok() && f.file == FileKind::Config => {
                    m.set(Milestone::Config, at)
                }
                What::Fetch(f) if f.ok() && f.file == FileKind::Kernel => {
                    m.set(Milestone::Kernel, at)
                }
                What::Console { stage, .. } => match stage {
                    Stage::Petitboot => m.set(Milestone::Petitboot, at),
                    Stage::ConfigFetched => m.set(Milestone::Config, at),
                    Stage::Kexec => m.set(Milestone::Kexec, at),
                    Stage::LoginPrompt => m.set(Milestone::Up, at),
                    _ => {}
                },
                What::Agent { call, .. } if call == "lookup" => m.set(Milestone::Up, at),
                _ => {}
            }
        }
        m.reached.sort_by_key(|&(milestone, _)| milestone);
        m
    }

    fn set(&mut self, milestone: Milestone, at: i64) {
        if !self.reached.iter().any(|&(m, _)| m == milestone) {
            self.reached.push((milestone, at));
        }
    }

    pub fn at(&self, milestone: Milestone) -> Option<i64> {
        self.reached
            .iter()
            .find(|&&(m, _)| m == milestone)
            .map(|&(_, at)| at)
    }

    /// The furthest milestone reached.
    pub fn last(&self) -> Option<(Milestone, i64)> {
        self.reached.iter().max_by_key(|&&(m, _)| m).copied()
    }

    /// Each stretch between two consecutive milestones reached, in ms
    /// (a milestone skipped, such as petitboot on a console nobody
    /// watched, joins its neighbours' stretch).
    pub fn phases(&self) -> Vec<Phase> {
        self.reached
            .windows(2)
            .map(|pair| Phase {
                from: pair[0].0,
                to: pair[1].0,
                millis: (pair[1].1 - pair[0].1).max(0),
            })
            .collect()
    }
}

/// The time from one milestone to the next.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Phase {
    pub from: Milestone,
    pub to: Milestone,
    pub millis: i64,
}

impl Phase {
    pub fn name(&self) -> String {
        format!("{}→{}", self.from.as_str(), self.to.as_str())
    }
}

/// Lab-wide: per stretch between consecutive milestones, the durations over
/// recent boots (for the chart) and the slowest node.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StageStats {
    pub from: Milestone,
    pub to: Milestone,
    pub boots: usize,
    pub median_ms: i64,
    pub max_ms: i64,
    /// The node of the slowest boot.
    pub slowest: String,
}

/// Stage durations across `boots`, for the stretches every boot names the
/// same way (consecutive milestones); stretches in milestone order.
pub fn stage_stats(boots: &[Boot]) -> Vec<StageStats> {
    // (stretch, [(millis, node)]), in the order first seen.
    type Durations = Vec<(i64, String)>;
    let mut by_stretch: Vec<((Milestone, Milestone), Durations)> = Vec::new();
    for boot in boots {
        for phase in Milestones::of(boot).phases() {
            let key = (phase.from, phase.to);
            match by_stretch.iter_mut().find(|(k, _)| *k == key) {
                Some((_, v)) => v.push((phase.millis, boot.node.clone())),
                None => by_stretch.push((key, vec![(phase.millis, boot.node.clone())])),
            }
        }
    }
    by_stretch.sort_by_key(|(k, _)| *k);
    by_stretch
        .into_iter()
        .map(|((from, to), mut v)| {
            v.sort();
            let median_ms = v[v.len() / 2].0;
            let (max_ms, slowest) = v.last().cloned().unwrap_or_default();
            StageStats {
                from,
                to,
                boots: v.len(),
                median_ms,
                max_ms,
                slowest,
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::timeline::{BootEvent, Fetch};

    fn boot(node: &str, events: Vec<(i64, What)>) -> Boot {
        Boot {
            id: 1,
            node: node.into(),
            started_at: 0,
            origin: "power on".into(),
            events: events
                .into_iter()
                .map(|(at, what)| BootEvent { at, what })
                .collect(),
            dropped: 0,
        }
    }

    fn fetch(path: &str, status: u16) -> What {
        What::Fetch(Fetch {
            proto: "http".into(),
            path: path.into(),
            file: FileKind::of(path),
            status,
            bytes: 10,
            millis: 1,
        })
    }

    #[test]
    fn milestones_in_order_first_time_only_and_failed_fetches_do_not_count() {
        let b = boot(
            "n1",
            vec![
                (5_000, fetch("u/config", 404)),
                (6_000, fetch("u/config", 200)),
                (7_000, fetch("u/config", 200)),
                (9_000, fetch("u/deploy_kernel", 200)),
            ],
        );
        let m = Milestones::of(&b);
        assert_eq!(
            m.reached,
            vec![
                (Milestone::PowerOn, 0),
                (Milestone::Config, 6_000),
                (Milestone::Kernel, 9_000)
            ]
        );
        let phases = m.phases();
        assert_eq!(phases[0].name(), "power-on→config");
        assert_eq!(phases[1].millis, 3_000);
    }

    #[test]
    fn stage_stats_name_the_slowest_node() {
        let fast = boot("n1", vec![(1_000, fetch("a/config", 200))]);
        let slow = boot("n2", vec![(9_000, fetch("b/config", 200))]);
        let mid = boot("n3", vec![(2_000, fetch("c/config", 200))]);
        let stats = stage_stats(&[fast, slow, mid]);
        assert_eq!(stats.len(), 1);
        assert_eq!(stats[0].boots, 3);
        assert_eq!(stats[0].median_ms, 2_000);
        assert_eq!(stats[0].max_ms, 9_000);
        assert_eq!(stats[0].slowest, "n2");
    }

    #[test]
    fn file_kinds_from_staged_names() {
        assert_eq!(FileKind::of("uuid/config"), FileKind::Config);
        assert_eq!(FileKind::of("pxelinux.cfg/01-aa-bb"), FileKind::Config);
        assert_eq!(FileKind::of("uuid/deploy_kernel"), FileKind::Kernel);
        assert_eq!(FileKind::of("uuid/deploy_ramdisk"), FileKind::Initrd);
        assert_eq!(FileKind::of("uuid/image"), FileKind::Image);
    }
}
