//! The console interface: a node's serial console over whichever transport
//! lab.toml names (`[node.bmc] console`), as one [`Console`] stream.

use std::path::PathBuf;

use crate::console_link::reconnect::{LinkError, LinkOptions};
use crate::console_link::ssh::{SshAuth, SshConsole};
use crate::console_link::websocket::{Login, WebsocketConsole};
use crate::console_link::{Console, ssh, websocket};
use crate::engine::targets::{TargetError, bmc_target, redfish_target};
use crate::inventory::{ConsoleTransport, Lab, Node};
use crate::ipmi::sol_driver::{self, CallReceiver, SolOptions};
use crate::ipmi::{Target, Timing};

/// Everything needed to open the node's console, resolved and read (the
/// async part), so that opening it is immediate.
pub enum Prepared {
    Sol(Target),
    Ssh {
        console: SshConsole,
        /// The BMC password, redacted from the console even when the SSH
        /// login uses a key.
        password: String,
    },
    Websocket {
        console: WebsocketConsole,
        password: String,
    },
}

/// petitlab's own record of console host keys (never `~/.ssh`).
pub fn known_hosts_path(lab: &Lab) -> PathBuf {
    lab.state_dir.join("ssh_known_hosts")
}

/// Resolves the BMC and reads the credentials for the node's console.
pub async fn prepare(lab: &Lab, node: &Node) -> Result<Prepared, TargetError> {
    let bmc = &node.bmc;
    let password = || {
        bmc.password.read().map_err(|why| TargetError::Password {
            node: node.name.clone(),
            why,
        })
    };
    match bmc.console {
        ConsoleTransport::Sol => Ok(Prepared::Sol(bmc_target(node, Timing::default()).await?)),
        ConsoleTransport::Ssh => {
            let password = password()?;
            let auth = match &bmc.ssh_key {
                Some(key) => SshAuth::Key(key.clone()),
                None => SshAuth::Password(password.clone()),
            };
            let console = SshConsole {
                host: bmc.host.clone(),
                port: bmc.ssh_port,
                username: bmc.username.clone(),
                auth,
                known_hosts: known_hosts_path(lab),
                node: node.name.clone(),
            };
            Ok(Prepared::Ssh { console, password })
        }
        ConsoleTransport::Websocket => {
            let target = redfish_target(node)?;
            let tls =
                crate::redfish::client_config(&target.tls).map_err(|e| TargetError::Console {
                    node: node.name.clone(),
                    why: e.to_string(),
                })?;
            let url = format!(
                "{}/console0",
                target.base_url.replacen("https://", "wss://", 1)
            );
            let password = target.password.clone();
            let console = WebsocketConsole {
                url,
                tls,
                login: redfish_login(target),
                node: node.name.clone(),
            };
            Ok(Prepared::Websocket { console, password })
        }
    }
}

/// bmcweb's `/console0` takes a Redfish session's token: a login per
/// connection. The session is left to bmcweb's idle timeout rather than
/// logged out, since the websocket lives on it.
fn redfish_login(target: crate::redfish::Target) -> Login {
    let target = std::sync::Arc::new(target);
    std::sync::Arc::new(move || {
        let target = target.clone();
        Box::pin(async move {
            let client = crate::redfish::Client::connect(&target)
                .await
                .map_err(|e| {
                    let message = format!("Redfish login for the console: {e}");
                    if e.is_transient() {
                        LinkError::transient(message)
                    } else {
                        LinkError::fatal(message)
                    }
                })?;
            match client.session_token() {
                Some(token) => Ok(vec![("X-Auth-Token".to_string(), token.to_string())]),
                // No session service: basic auth, as the client itself does.
                None => {
                    use base64::Engine;
                    let pair = format!("{}:{}", target.username, target.password);
                    let basic = base64::engine::general_purpose::STANDARD.encode(pair);
                    Ok(vec![(
                        "Authorization".to_string(),
                        format!("Basic {basic}"),
                    )])
                }
            }
        })
    })
}

impl Prepared {
    /// IPMI Serial-over-LAN, whose session can carry other IPMI requests.
    pub fn is_sol(&self) -> bool {
        matches!(self, Prepared::Sol(_))
    }

    /// What the console's log and screen must never show: the password
    /// the transport logs in with.
    pub fn secrets(&self) -> Vec<String> {
        match self {
            Prepared::Sol(target) => vec![target.credentials.password.clone()],
            Prepared::Ssh { password, .. } | Prepared::Websocket { password, .. } => {
                vec![password.clone()]
            }
        }
    }

    /// "SOL at 10.0.0.5:623", for the first status line.
    pub fn via(&self) -> String {
        match self {
            Prepared::Sol(target) => format!("SOL at {}", target.addr),
            Prepared::Ssh { console, .. } => {
                format!("SSH to {}:{}", console.host, console.port)
            }
            Prepared::Websocket { console, .. } => format!("websocket {}", console.url),
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
            Prepared::Ssh { console, .. } => ssh::spawn(console, LinkOptions::default()),
            Prepared::Websocket { console, .. } => {
                websocket::spawn(console, LinkOptions::default())
            }
        }
    }
}
