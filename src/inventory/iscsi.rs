//! `[iscsi]`: how petitlab's initiator talks to the targets that deploy
//! ramdisks export for nodes with `deploy_interface = "iscsi"`.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::build::Ctx;
use super::raw::Lenient;

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct IscsiSettings {
    /// The iSCSI name petitlab logs in with (targets may restrict by it).
    pub initiator_name: String,
    /// Bounds each iSCSI network wait: connect, each PDU sent or awaited.
    pub timeout: Duration,
}

impl Default for IscsiSettings {
    fn default() -> Self {
        IscsiSettings {
            initiator_name: crate::iscsi::DEFAULT_INITIATOR_NAME.to_string(),
            timeout: Duration::from_secs(30),
        }
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct RawIscsi {
    pub initiator_name: Lenient<String>,
    pub timeout: Lenient<u64>,
}

/// An iSCSI name as RFC 7143 §4.2.7 has them: `iqn.`, `eui.` or `naa.`, at
/// most 223 bytes, no spaces or control characters.
pub fn valid_iscsi_name(name: &str) -> bool {
    let lower = name.to_ascii_lowercase();
    ["iqn.", "eui.", "naa."]
        .iter()
        .any(|p| lower.starts_with(p))
        && name.len() > 4
        && name.len() <= 223
        && !name.chars().any(|c| c.is_whitespace() || c.is_control())
}

pub(super) fn build(ctx: &mut Ctx, raw: RawIscsi) -> IscsiSettings {
    let defaults = IscsiSettings::default();
    let initiator_name = match ctx.take(None, "iscsi.initiator_name", raw.initiator_name) {
        None => defaults.initiator_name,
        Some(name) if valid_iscsi_name(&name) => name,
        Some(name) => {
            let msg = format!(
                "{name:?} is not an iSCSI name (iqn.YYYY-MM.reverse.domain:name, eui. or naa.)"
            );
            ctx.error(None, "iscsi.initiator_name", msg);
            defaults.initiator_name
        }
    };
    let timeout = super::deploy::seconds(ctx, "iscsi.timeout", raw.timeout, defaults.timeout);
    IscsiSettings {
        initiator_name,
        timeout,
    }
}

#[cfg(test)]
mod tests {
    use super::valid_iscsi_name;

    #[test]
    fn iscsi_names_need_a_known_prefix_and_no_spaces() {
        assert!(valid_iscsi_name("iqn.2026-11.org.petitlab:initiator"));
        assert!(valid_iscsi_name("eui.02004567A425678D"));
        assert!(!valid_iscsi_name("petitlab"));
        assert!(!valid_iscsi_name("iqn."));
        assert!(!valid_iscsi_name("iqn.2026-11.org.petitlab: spaced"));
        assert!(!valid_iscsi_name(&format!("iqn.{}", "x".repeat(220))));
    }
}
