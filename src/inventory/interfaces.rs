//! The `[node.bmc]` keys that choose a node's hardware interfaces (IPMI or
//! Redfish; SOL, SSH or websocket console) and configure them, with the
//! combinations that cannot work explained.

use std::path::PathBuf;

use super::build::Ctx;
use super::raw::Lenient;
use super::{BmcProtocol, BmcTls, ConsoleTransport};

/// The `[node.bmc]` keys that choose and configure the hardware interfaces.
pub(super) struct RawInterfaces {
    pub console: Lenient<String>,
    pub ssh_port: Lenient<u16>,
    pub ssh_key: Lenient<String>,
    pub ca_file: Lenient<String>,
    pub fingerprint: Lenient<String>,
    pub insecure: Lenient<bool>,
    pub system_id: Lenient<String>,
}

pub(super) struct Interfaces {
    pub console: ConsoleTransport,
    pub ssh_port: u16,
    pub ssh_key: Option<PathBuf>,
    pub tls: Option<BmcTls>,
    pub system_id: Option<String>,
}

/// The console and Redfish settings, with `check` explaining the
/// combinations that cannot work.
pub(super) fn build(
    ctx: &mut Ctx,
    node: Option<&str>,
    protocol: BmcProtocol,
    raw: RawInterfaces,
) -> Interfaces {
    let redfish = protocol == BmcProtocol::Redfish;
    let console = match ctx.take(node, "bmc.console", raw.console).as_deref() {
        None => protocol.default_console(),
        Some("sol") => ConsoleTransport::Sol,
        Some("ssh") => ConsoleTransport::Ssh,
        Some("websocket") => ConsoleTransport::Websocket,
        Some(other) => {
            let msg = format!("{other:?} is not supported; use \"sol\", \"ssh\" or \"websocket\"");
            ctx.error(node, "bmc.console", msg);
            protocol.default_console()
        }
    };
    match (protocol, console) {
        (BmcProtocol::Ipmi, ConsoleTransport::Websocket) => ctx.error(
            node,
            "bmc.console",
            "\"websocket\" is bmcweb's /console0, reached after a Redfish login: it needs protocol = \"redfish\"",
        ),
        (BmcProtocol::Redfish, ConsoleTransport::Sol) => ctx.error(
            node,
            "bmc.console",
            "\"sol\" needs IPMI over LAN, which protocol = \"redfish\" does not speak; use \"ssh\" (obmc-console on port 2200) or \"websocket\", or protocol = \"ipmi\"",
        ),
        _ => {}
    }
    let ssh = console == ConsoleTransport::Ssh;
    let ssh_port = ctx.take(node, "bmc.ssh_port", raw.ssh_port).unwrap_or(2200);
    if ssh_port == 0 {
        ctx.error(node, "bmc.ssh_port", "0 is not a port");
    }
    let ssh_key = ctx
        .take(node, "bmc.ssh_key", raw.ssh_key)
        .map(|path| ctx.readable_file(node, "bmc.ssh_key", &path));
    if !ssh && ssh_key.is_some() {
        ctx.warn(
            node,
            "bmc.ssh_key",
            "is for console = \"ssh\"; this node's console does not use it",
        );
    }

    let ca_file = ctx
        .take(node, "bmc.ca_file", raw.ca_file)
        .map(|path| ctx.readable_file(node, "bmc.ca_file", &path));
    let fingerprint = ctx.take(node, "bmc.fingerprint", raw.fingerprint);
    let insecure = ctx
        .take(node, "bmc.insecure", raw.insecure)
        .unwrap_or(false);
    let given =
        usize::from(ca_file.is_some()) + usize::from(fingerprint.is_some()) + usize::from(insecure);
    let tls = match (ca_file, fingerprint) {
        _ if !redfish => {
            if given > 0 {
                ctx.warn(node, "bmc.ca_file", "ca_file, fingerprint and insecure are for protocol = \"redfish\"; IPMI ignores them");
            }
            None
        }
        _ if given > 1 => {
            ctx.error(
                node,
                "bmc.fingerprint",
                "give only one of ca_file, fingerprint, insecure = true",
            );
            None
        }
        (Some(ca), None) => Some(BmcTls::CaFile(ca)),
        (None, Some(pin)) => match normalise_fingerprint(&pin) {
            Ok(pin) => Some(BmcTls::Fingerprint(pin)),
            Err(why) => {
                ctx.error(node, "bmc.fingerprint", why);
                None
            }
        },
        _ if insecure => {
            ctx.warn(node, "bmc.insecure", "the BMC's TLS certificate is not checked, so anyone on the path can take the BMC password; pin it with fingerprint = \"…\" (`openssl s_client -connect HOST:PORT </dev/null | openssl x509 -noout -fingerprint -sha256`) or give ca_file");
            Some(BmcTls::Insecure)
        }
        _ => {
            ctx.error(node, "bmc.ca_file", "a Redfish BMC's certificate must be checked: give ca_file (the CA that signed it), fingerprint (its SHA-256, as `openssl x509 -noout -fingerprint -sha256` prints it) or insecure = true");
            None
        }
    };
    let system_id = ctx.take(node, "bmc.system_id", raw.system_id);
    if !redfish && system_id.is_some() {
        ctx.warn(
            node,
            "bmc.system_id",
            "is for protocol = \"redfish\"; IPMI ignores it",
        );
    }
    Interfaces {
        console,
        ssh_port,
        ssh_key,
        tls,
        system_id,
    }
}

/// `AB:CD:…` (upper case, colons) from any mix of case and colons; 32 bytes.
pub fn normalise_fingerprint(text: &str) -> Result<String, String> {
    let hex: String = text
        .trim()
        .trim_start_matches("SHA256:")
        .trim_start_matches("sha256:")
        .chars()
        .filter(|c| *c != ':')
        .collect();
    if hex.len() != 64 || !hex.chars().all(|c| c.is_ascii_hexdigit()) {
        return Err(format!(
            "{text:?} is not a SHA-256 fingerprint: 32 bytes in hex, colons allowed"
        ));
    }
    let upper = hex.to_ascii_uppercase();
    let pairs: Vec<&str> = (0..32).map(|i| &upper[2 * i..2 * i + 2]).collect();
    Ok(pairs.join(":"))
}
