//! `petitlab console NODE --deactivate`: frees the node's SOL payload
//! without attaching, like `ipmitool sol deactivate`, for when a killed
//! console client left it active and every new console is refused with
//! "already active". Talks to the BMC (one fresh IPMI session); shared by
//! the CLI and the lab service so that both say the same.

use crate::engine::targets::{TargetError, bmc_target};
use crate::inventory::{ConsoleTransport, Node};
use crate::ipmi::sol_driver::{self, Deactivation};
use crate::ipmi::{IpmiError, Timing};

#[derive(Debug, thiserror::Error)]
pub enum DeactivateError {
    /// SSH and websocket consoles have no payload to free: a session a
    /// killed client left there ends with its TCP connection.
    #[error(
        "node {node}: its console is {kind}, not IPMI SOL: there is no SOL payload to deactivate"
    )]
    NotSol { node: String, kind: &'static str },
    #[error(transparent)]
    Target(#[from] TargetError),
    #[error("node {node}: deactivating the SOL payload: {source}")]
    Ipmi {
        node: String,
        #[source]
        source: IpmiError,
    },
}

/// Sends Deactivate Payload (SOL, instance 1) to the node's BMC in a
/// session of its own. Idempotent: an inactive payload is
/// [`Deactivation::WasInactive`].
pub async fn deactivate_sol(node: &Node) -> Result<Deactivation, DeactivateError> {
    check_sol(node)?;
    let target = bmc_target(node, Timing::default()).await?;
    sol_driver::deactivate_payload(&target)
        .await
        .map_err(|source| DeactivateError::Ipmi {
            node: node.name.clone(),
            source,
        })
}

/// Refuses a node whose console is not SOL, naming it and its console.
pub fn check_sol(node: &Node) -> Result<(), DeactivateError> {
    match node.bmc.console {
        ConsoleTransport::Sol => Ok(()),
        other => Err(DeactivateError::NotSol {
            node: node.name.clone(),
            kind: other.name(),
        }),
    }
}

/// "p9-rack1-01: SOL payload deactivated" or "…: no SOL payload was active".
pub fn describe(node: &str, outcome: Deactivation) -> String {
    match outcome {
        Deactivation::Deactivated => format!("{node}: SOL payload deactivated"),
        Deactivation::WasInactive => format!("{node}: no SOL payload was active"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn descriptions_name_the_node() {
        assert_eq!(
            describe("n1", Deactivation::Deactivated),
            "n1: SOL payload deactivated"
        );
        assert_eq!(
            describe("n1", Deactivation::WasInactive),
            "n1: no SOL payload was active"
        );
    }
}
