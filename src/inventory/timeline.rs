//! `[timeline]`: how many boots each node keeps, and when a boot that made
//! no progress counts as stalled (`petitlab why`, the dashboard).

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::build::Ctx;
use super::raw::Lenient;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct TimelineSettings {
    /// Boots kept per node (older ones are dropped).
    pub keep_boots: u32,
    /// A boot with no new milestone for this long, once petitboot runs, is
    /// stalled and diagnosed.
    pub stall_after: Duration,
    /// Power-on to petitboot: the firmware's IPL (minutes on a real POWER9).
    pub firmware_allowance: Duration,
}

impl Default for TimelineSettings {
    fn default() -> Self {
        TimelineSettings {
            keep_boots: 20,
            stall_after: Duration::from_secs(60),
            firmware_allowance: Duration::from_secs(600),
        }
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct RawTimeline {
    pub keep_boots: Lenient<u64>,
    pub stall_after: Lenient<u64>,
    pub firmware_allowance: Lenient<u64>,
}

/// Most boots a node may keep: each holds at most 400 events.
const MAX_KEEP_BOOTS: u64 = 1000;

pub(super) fn build(ctx: &mut Ctx, raw: RawTimeline) -> TimelineSettings {
    let defaults = TimelineSettings::default();
    let keep_boots = match ctx.take(None, "timeline.keep_boots", raw.keep_boots) {
        None => defaults.keep_boots,
        Some(n) if (1..=MAX_KEEP_BOOTS).contains(&n) => n as u32,
        Some(n) => {
            let msg = format!("{n} is not a number of boots between 1 and {MAX_KEEP_BOOTS}");
            ctx.error(None, "timeline.keep_boots", msg);
            defaults.keep_boots
        }
    };
    let mut seconds = |field: &str, value: Lenient<u64>, default: Duration| {
        super::deploy::seconds(ctx, &format!("timeline.{field}"), value, default)
    };
    TimelineSettings {
        keep_boots,
        stall_after: seconds("stall_after", raw.stall_after, defaults.stall_after),
        firmware_allowance: seconds(
            "firmware_allowance",
            raw.firmware_allowance,
            defaults.firmware_allowance,
        ),
    }
}
