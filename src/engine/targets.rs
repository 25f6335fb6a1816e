//! From inventory BMC settings to a hardware target: resolve the host,
//! read the password (never logged), map the cipher-suite or TLS choice.

use crate::inventory::{self, Node};
use crate::ipmi::{CipherChoice, CipherSuite, Credentials, Target, Timing};

#[derive(Debug, thiserror::Error)]
pub enum TargetError {
    #[error("node {node}: bmc.password: {why}")]
    Password { node: String, why: String },
    #[error(
        "node {node}: bmc.ca_file: a Redfish BMC needs ca_file, fingerprint or insecure = true"
    )]
    Tls { node: String },
    #[error("node {node}: bmc.console: {why}")]
    Console { node: String, why: String },
    #[error("node {node}: bmc.host: cannot resolve {host:?}: {why}")]
    Resolve {
        node: String,
        host: String,
        why: String,
    },
}

pub fn cipher_choice(suite: inventory::CipherSuite) -> CipherChoice {
    match suite {
        inventory::CipherSuite::Auto => CipherChoice::Auto,
        inventory::CipherSuite::Suite3 => CipherChoice::Fixed(CipherSuite::Suite3),
        inventory::CipherSuite::Suite17 => CipherChoice::Fixed(CipherSuite::Suite17),
    }
}

pub async fn bmc_target(node: &Node, timing: Timing) -> Result<Target, TargetError> {
    let bmc = &node.bmc;
    let password = bmc.password.read().map_err(|why| TargetError::Password {
        node: node.name.clone(),
        why,
    })?;
    let resolve_error = |why: String| TargetError::Resolve {
        node: node.name.clone(),
        host: bmc.host.clone(),
        why,
    };
    let addr = tokio::net::lookup_host((bmc.host.as_str(), bmc.port))
        .await
        .map_err(|e| resolve_error(e.to_string()))?
        .next()
        .ok_or_else(|| resolve_error("no addresses".into()))?;
    Ok(Target {
        addr,
        credentials: Credentials {
            username: bmc.username.clone(),
            password,
        },
        cipher: cipher_choice(bmc.cipher_suite),
        timing,
    })
}

/// The node's management interface, as lab.toml chooses it.
pub async fn management_target(node: &Node) -> Result<crate::hardware::Target, TargetError> {
    match node.bmc.protocol {
        inventory::BmcProtocol::Ipmi => Ok(crate::hardware::Target::Ipmi(
            bmc_target(node, Timing::default()).await?,
        )),
        inventory::BmcProtocol::Redfish => Ok(crate::hardware::Target::Redfish(Box::new(
            redfish_target(node)?,
        ))),
    }
}

/// How long one Redfish request may take (bmcweb answers in well under a
/// second; a BMC busy flashing may take several).
const REDFISH_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(20);

pub fn redfish_target(node: &Node) -> Result<crate::redfish::Target, TargetError> {
    use crate::redfish::TlsPolicy;
    let bmc = &node.bmc;
    let password = bmc.password.read().map_err(|why| TargetError::Password {
        node: node.name.clone(),
        why,
    })?;
    let tls = match &bmc.tls {
        Some(inventory::BmcTls::CaFile(path)) => TlsPolicy::CaFile(path.clone()),
        Some(inventory::BmcTls::Fingerprint(pin)) => TlsPolicy::Fingerprint(pin.clone()),
        Some(inventory::BmcTls::Insecure) => TlsPolicy::Insecure,
        None => {
            return Err(TargetError::Tls {
                node: node.name.clone(),
            });
        }
    };
    // An IPv6 literal needs brackets in a URL.
    let host = if bmc.host.contains(':') {
        format!("[{}]", bmc.host)
    } else {
        bmc.host.clone()
    };
    Ok(crate::redfish::Target {
        base_url: format!("https://{host}:{}", bmc.port),
        username: bmc.username.clone(),
        password,
        tls,
        system_id: bmc.system_id.clone(),
        timeout: REDFISH_TIMEOUT,
    })
}
