//! `[deploy]`: how long each deploy step may take before the deploy fails
//! naming that step. Values are whole seconds.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::build::Ctx;
use super::raw::Lenient;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct DeploySettings {
    /// Each BMC step: boot device, power on/cycle/off.
    pub power_timeout: Duration,
    /// Power-on until the deploy agent's first call (firmware, petitboot,
    /// downloads and the ramdisk's own boot all fit in here).
    pub callback_timeout: Duration,
    /// How often the agent must report while it writes; three missed
    /// intervals fail the deploy.
    pub heartbeat: Duration,
    /// The whole image write.
    pub write_timeout: Duration,
    /// Reboot into the instance until its login prompt.
    pub boot_timeout: Duration,
}

impl Default for DeploySettings {
    fn default() -> Self {
        DeploySettings {
            power_timeout: Duration::from_secs(60),
            callback_timeout: Duration::from_secs(900),
            heartbeat: Duration::from_secs(10),
            write_timeout: Duration::from_secs(3600),
            boot_timeout: Duration::from_secs(900),
        }
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct RawDeploySettings {
    pub power_timeout: Lenient<u64>,
    pub callback_timeout: Lenient<u64>,
    pub heartbeat: Lenient<u64>,
    pub write_timeout: Lenient<u64>,
    pub boot_timeout: Lenient<u64>,
}

/// A day: longer is surely a typo (milliseconds?) rather than a wish.
const MAX_SECONDS: u64 = 86_400;

/// A whole number of seconds from 1 to a day for the lab-wide `field`
/// (e.g. `deploy.heartbeat`); `default` when it is missing or wrong (then
/// the problem is recorded).
pub(super) fn seconds(
    ctx: &mut Ctx,
    field: &str,
    value: Lenient<u64>,
    default: Duration,
) -> Duration {
    match ctx.take(None, field, value) {
        None => default,
        Some(s) if (1..=MAX_SECONDS).contains(&s) => Duration::from_secs(s),
        Some(s) => {
            let msg = format!("{s} is not a number of seconds between 1 and {MAX_SECONDS}");
            ctx.error(None, field, msg);
            default
        }
    }
}

pub(super) fn build(ctx: &mut Ctx, raw: RawDeploySettings) -> DeploySettings {
    let defaults = DeploySettings::default();
    let mut seconds = |field: &str, value: Lenient<u64>, default: Duration| {
        seconds(ctx, &format!("deploy.{field}"), value, default)
    };
    DeploySettings {
        power_timeout: seconds("power_timeout", raw.power_timeout, defaults.power_timeout),
        callback_timeout: seconds(
            "callback_timeout",
            raw.callback_timeout,
            defaults.callback_timeout,
        ),
        heartbeat: seconds("heartbeat", raw.heartbeat, defaults.heartbeat),
        write_timeout: seconds("write_timeout", raw.write_timeout, defaults.write_timeout),
        boot_timeout: seconds("boot_timeout", raw.boot_timeout, defaults.boot_timeout),
    }
}
