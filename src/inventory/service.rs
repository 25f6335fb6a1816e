//! `[service]` and `[console] always`: where the lab service listens, who
//! may use it, and which nodes' consoles it keeps connected all the time.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::build::Ctx;
use super::raw::Lenient;

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ServiceSettings {
    /// The client socket (default: `<state_dir>/petitlab.sock`).
    pub socket: PathBuf,
    /// The group whose members may use the socket (mode 0660); without
    /// one only the service's own user (and root) may.
    pub group: Option<String>,
}

impl ServiceSettings {
    pub fn default_for(state_dir: &Path) -> ServiceSettings {
        ServiceSettings {
            socket: state_dir.join("petitlab.sock"),
            group: None,
        }
    }
}

/// Which consoles the service keeps connected and logged all the time:
/// the lab's default, overridden per group, overridden per node.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ConsoleAlways {
    pub default: bool,
    pub by_group: BTreeMap<String, bool>,
}

impl Default for ConsoleAlways {
    fn default() -> Self {
        ConsoleAlways {
            default: true,
            by_group: BTreeMap::new(),
        }
    }
}

impl ConsoleAlways {
    pub fn of(&self, node: &super::Node) -> bool {
        node.console_always
            .or_else(|| {
                node.group
                    .as_ref()
                    .and_then(|g| self.by_group.get(g).copied())
            })
            .unwrap_or(self.default)
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct RawService {
    pub socket: Lenient<String>,
    pub group: Lenient<String>,
}

pub(super) fn build(ctx: &mut Ctx, raw: RawService, state_dir: &Path) -> ServiceSettings {
    let mut settings = ServiceSettings::default_for(state_dir);
    if let Some(socket) = ctx.take(None, "service.socket", raw.socket) {
        settings.socket = ctx.resolve(&socket);
    }
    if let Some(group) = ctx.take(None, "service.group", raw.group) {
        if crate::users::group_id(&group).is_none() {
            let msg = format!("no group named {group:?} on this host");
            ctx.error(None, "service.group", msg);
        }
        settings.group = Some(group);
    }
    settings
}

pub(super) fn build_always(
    ctx: &mut Ctx,
    always: Lenient<bool>,
    by_group: Lenient<BTreeMap<String, bool>>,
) -> ConsoleAlways {
    ConsoleAlways {
        default: ctx.take(None, "console.always", always).unwrap_or(true),
        by_group: ctx
            .take(None, "console.always_by_group", by_group)
            .unwrap_or_default(),
    }
}
