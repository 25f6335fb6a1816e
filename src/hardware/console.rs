//! The console interface: a node's serial console over whichever transport
//! lab.toml names (`[node.bmc] console`), as one [`Console`] stream.

use std::path::PathBuf;

use crate::console_link::Console;
use crate::engine::targets::{TargetError, bmc_target};
use crate::inventory::{ConsoleTransport, Lab, Node};
use crate::ipmi::sol_driver::{self, CallReceiver, SolOptions};
use crate::ipmi::{Target, Timing};

/// Everything needed to open the node's console, resolved and read (the
/// async part), so that opening it is immediate.
pub enum Prepared {
    Sol(Target),
}

/// petitlab's own record of console host keys (never `~/.ssh`).
pub fn known_hosts_path(lab: &Lab) -> PathBuf {
    lab.state_dir.join("ssh_known_hosts")
}

/// Resolves the BMC and reads the credentials for the node's console.
pub async fn prepare(lab: &Lab, node: &Node) -> Result<Prepared, TargetError> {
    let _ = lab;
    match node.bmc.console {
        ConsoleTransport::Sol => Ok(Prepared::Sol(bmc_target(node, Timing::default()).await?)),
        ConsoleTransport::Ssh | ConsoleTransport::Websocket => Err(TargetError::Password {
            node: node.name.clone(),
            why: "console transport not wired yet".into(),
        }),
    }
}

impl Prepared {
    /// What the console's log and screen must never show: the password
    /// the transport logs in with.
    pub fn secrets(&self) -> Vec<String> {
        match self {
            Prepared::Sol(target) => vec![target.credentials.password.clone()],
        }
    }

    /// "SOL at 10.0.0.5:623", for the first status line.
    pub fn via(&self) -> String {
        match self {
            Prepared::Sol(target) => format!("SOL at {}", target.addr),
        }
    }

    /// Starts the console. `force` (SOL) takes a payload held elsewhere;
    /// `calls` (SOL) lets IPMI requests ride in the console's session.
    pub fn spawn(self, force: bool, calls: Option<CallReceiver>) -> Console {
        match self {
            Prepared::Sol(target) => {
                let options = SolOptions {
                    force,
                    ..SolOptions::default()
                };
                match calls {
                    Some(calls) => sol_driver::spawn_with_calls(target, options, calls),
                    None => sol_driver::spawn(target, options),
                }
            }
        }
    }
}
