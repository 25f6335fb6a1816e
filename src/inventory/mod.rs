//! The lab inventory: `lab.toml` parsed into a validated model.
//!
//! Loading never stops at the first mistake: every problem is collected,
//! each naming the node and the field, so `petitlab check` can show all of
//! them at once. Only nodes without errors make it into [`Lab::nodes`].

mod build;
mod deploy;
mod files;
mod host;
mod interfaces;
mod iscsi;
mod mac;
mod node;
pub mod range;
mod raw;
mod reduce;
mod service;
mod timeline;

use std::collections::HashSet;
use std::fmt;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};

use serde::Serialize;
use uuid::Uuid;

pub use deploy::DeploySettings;
pub use files::{FileError, LAB_TOML_CAP, file_problem, open_regular};
pub use iscsi::{IscsiSettings, valid_iscsi_name};
pub use mac::MacAddr;
pub use service::{ConsoleAlways, ServiceSettings};
pub use timeline::TimelineSettings;

/// The default petitboot config template, embedded at build time.
pub const DEFAULT_TEMPLATE: &str = include_str!("../../templates/petitboot.cfg.tera");

#[derive(Debug, Clone)]
pub struct Lab {
    /// The lab.toml this was loaded from.
    pub path: PathBuf,
    pub state_dir: PathBuf,
    pub petitboot: Petitboot,
    pub http: Server,
    pub tftp: Server,
    pub dhcp: Dhcp,
    /// Boot-stage patterns added to the built-in table (`[[console.stage_pattern]]`).
    pub stage_patterns: Vec<crate::console::StagePattern>,
    /// Per-step deploy timeouts (`[deploy]`).
    pub deploy: DeploySettings,
    /// petitlab's iSCSI initiator (`[iscsi]`), for `deploy_interface = "iscsi"`.
    pub iscsi: IscsiSettings,
    /// The lab service's socket and group (`[service]`).
    pub service: ServiceSettings,
    /// Which consoles the service keeps connected (`[console] always`).
    pub console_always: ConsoleAlways,
    /// dnsmasq's log file (`[dhcp] log`, its `--log-dhcp
    /// --log-facility=FILE`), followed for the nodes' boot timelines.
    pub dhcp_log: Option<PathBuf>,
    /// Boots kept and stall detection (`[timeline]`).
    pub timeline: TimelineSettings,
    pub nodes: Vec<Node>,
}

impl Lab {
    pub fn node(&self, name: &str) -> Option<&Node> {
        self.nodes.iter().find(|n| n.name == name)
    }

    /// The server whose URLs go into petitboot configs.
    pub fn boot_server(&self) -> &Server {
        self.server(self.petitboot.protocol)
    }

    /// The protocol of `node`'s config URLs.
    pub fn protocol_of(&self, node: &Node) -> Protocol {
        node.protocol.unwrap_or(self.petitboot.protocol)
    }

    pub fn server(&self, protocol: Protocol) -> &Server {
        match protocol {
            Protocol::Http => &self.http,
            Protocol::Tftp => &self.tftp,
        }
    }
}

#[derive(Debug, Clone)]
pub struct Petitboot {
    pub template: Template,
    pub protocol: Protocol,
}

#[derive(Debug, Clone)]
pub struct Template {
    /// `None` for the embedded default template.
    pub path: Option<PathBuf>,
    pub source: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Protocol {
    Http,
    Tftp,
}

impl Protocol {
    pub fn scheme(self) -> &'static str {
        match self {
            Protocol::Http => "http",
            Protocol::Tftp => "tftp",
        }
    }
}

/// An artifact server (HTTP or TFTP): where files live and how nodes reach them.
#[derive(Debug, Clone)]
pub struct Server {
    /// Always ends with `/` (it becomes DHCP option 210, which petitboot
    /// joins to option 209 without adding a slash). `None` when it could
    /// not be derived; an error only for the protocol in use.
    pub base_url: Option<String>,
    pub root: PathBuf,
    pub listen: SocketAddr,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Dhcp {
    None,
    Dnsmasq { hostsdir: PathBuf, optsdir: PathBuf },
}

#[derive(Debug, Clone, Serialize)]
pub struct Node {
    pub name: String,
    pub uuid: Uuid,
    /// True when no uuid was given and it was derived from the name.
    pub uuid_derived: bool,
    pub macs: Vec<MacAddr>,
    pub ipv4: Option<Ipv4Addr>,
    pub cpu_arch: CpuArch,
    pub boot_option: BootOption,
    /// Who writes the instance image to the disk.
    pub deploy_interface: DeployInterface,
    pub console: Option<String>,
    pub kernel_args: String,
    /// Ask petitboot to append `BOOTIF=01-<mac>` (pxelinux `IPAPPEND 2`).
    pub bootif: bool,
    /// This node's config URLs use this scheme instead of `[petitboot] protocol`
    /// (e.g. a petitboot too old for HTTP).
    pub protocol: Option<Protocol>,
    /// A free-form group (rack, team, purpose) to filter by in the dashboard.
    pub group: Option<String>,
    /// Overrides `[console] always` for this node.
    pub console_always: Option<bool>,
    pub bmc: Bmc,
    pub deploy: DeployImages,
    pub instance: InstanceImage,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum CpuArch {
    Ppc64le,
    Ppc64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum BootOption {
    /// The instance boots from its disk: no petitboot config is served.
    Local,
    /// The instance kernel and ramdisk are netbooted every time.
    Netboot,
}

/// How the instance image gets onto the node's disk (the petitboot spec's
/// `agent_opc` and `iscsi_opc` drivers).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum DeployInterface {
    /// The deploy ramdisk's agent downloads the image over HTTP and writes it.
    #[default]
    Agent,
    /// The deploy ramdisk exports its disk as an iSCSI target; petitlab writes it.
    Iscsi,
}

impl DeployInterface {
    pub fn name(self) -> &'static str {
        match self {
            DeployInterface::Agent => "agent",
            DeployInterface::Iscsi => "iscsi",
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct Bmc {
    pub host: String,
    /// The management protocol's port (623 for IPMI, 443 for Redfish).
    pub port: u16,
    pub username: String,
    pub password: PasswordSource,
    /// IPMI only.
    pub cipher_suite: CipherSuite,
    /// How petitlab manages the node: power, boot device, sensors.
    pub protocol: BmcProtocol,
    /// How petitlab reaches the host's serial console.
    pub console: ConsoleTransport,
    /// obmc-console's SSH port (OpenBMC: 2200).
    pub ssh_port: u16,
    /// An OpenSSH private key for the SSH console; else the BMC password.
    pub ssh_key: Option<PathBuf>,
    /// How the Redfish BMC's certificate is checked (Redfish only).
    pub tls: Option<BmcTls>,
    /// Which member of /redfish/v1/Systems; needed only when there are several.
    pub system_id: Option<String>,
}

/// The hardware interface that manages a node (Ironic's power and
/// management interfaces).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum BmcProtocol {
    /// IPMI 2.0 over LAN (RMCP+): AMI, FSP, and OpenBMC with IPMI on.
    #[default]
    Ipmi,
    /// DMTF Redfish over HTTPS: OpenBMC's bmcweb and most current BMCs.
    Redfish,
}

impl BmcProtocol {
    pub fn name(self) -> &'static str {
        match self {
            BmcProtocol::Ipmi => "ipmi",
            BmcProtocol::Redfish => "redfish",
        }
    }

    pub fn default_port(self) -> u16 {
        match self {
            BmcProtocol::Ipmi => 623,
            BmcProtocol::Redfish => 443,
        }
    }

    /// The console a BMC of this kind is reached on unless lab.toml says.
    pub fn default_console(self) -> ConsoleTransport {
        match self {
            BmcProtocol::Ipmi => ConsoleTransport::Sol,
            BmcProtocol::Redfish => ConsoleTransport::Ssh,
        }
    }
}

/// The console interface.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ConsoleTransport {
    /// IPMI Serial-over-LAN.
    Sol,
    /// SSH to OpenBMC's obmc-console (port 2200).
    Ssh,
    /// bmcweb's `/console0` websocket, after a Redfish login.
    Websocket,
}

impl ConsoleTransport {
    pub fn name(self) -> &'static str {
        match self {
            ConsoleTransport::Sol => "sol",
            ConsoleTransport::Ssh => "ssh",
            ConsoleTransport::Websocket => "websocket",
        }
    }
}

/// How a Redfish BMC's TLS certificate is checked.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum BmcTls {
    /// Verified against this CA (PEM), name included.
    CaFile(PathBuf),
    /// The leaf certificate's SHA-256, pinned (normalised `AB:CD:…`).
    Fingerprint(String),
    /// Any certificate (`insecure = true`; `check` warns).
    Insecure,
}

/// Where the BMC password comes from. The value itself is read only when
/// needed, and never printed.
#[derive(Clone, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum PasswordSource {
    Env(String),
    File(PathBuf),
    #[serde(serialize_with = "redact")]
    Literal(String),
}

fn redact<S: serde::Serializer>(_: &str, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str("<redacted>")
}

impl PasswordSource {
    /// The password itself. Errors say where it should have come from, never
    /// what it is. A password file's trailing newline is not part of it.
    pub fn read(&self) -> Result<String, String> {
        match self {
            PasswordSource::Env(var) => std::env::var(var)
                .ok()
                .filter(|v| !v.is_empty())
                .ok_or_else(|| format!("environment variable {var} is not set (or empty)")),
            PasswordSource::File(path) => files::read_text(path, files::PASSWORD_FILE_CAP)
                .map(|s| s.trim_end_matches(['\n', '\r']).to_string())
                .map_err(|e| format!("{}: {e}", path.display())),
            PasswordSource::Literal(secret) => Ok(secret.clone()),
        }
    }
}

impl fmt::Debug for PasswordSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PasswordSource::Env(var) => write!(f, "Env({var:?})"),
            PasswordSource::File(path) => write!(f, "File({path:?})"),
            PasswordSource::Literal(_) => f.write_str("Literal(<redacted>)"),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum CipherSuite {
    /// Ask the BMC (Get Channel Cipher Suites) and pick 17, else 3.
    Auto,
    #[serde(rename = "3")]
    Suite3,
    #[serde(rename = "17")]
    Suite17,
}

#[derive(Debug, Clone, Serialize)]
pub struct DeployImages {
    pub kernel: PathBuf,
    pub ramdisk: PathBuf,
}

#[derive(Debug, Clone, Serialize)]
#[serde(tag = "type", rename_all = "kebab-case")]
pub enum InstanceImage {
    /// A disk image with its own bootloader: only `boot_option = "local"`.
    WholeDisk { image: PathBuf },
    /// A root filesystem image plus the kernel/ramdisk that boot it.
    Partition {
        image: PathBuf,
        kernel: PathBuf,
        ramdisk: PathBuf,
        root_device: String,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Warning,
    Error,
}

/// One finding about the inventory, naming where it is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Problem {
    pub severity: Severity,
    /// The node's name (or `node[N]` when it has none); `None` for lab-wide settings.
    pub node: Option<String>,
    /// The field, dotted as in lab.toml: `bmc.port`, `macs[1]`, `http.base_url`.
    pub field: String,
    pub message: String,
}

impl Problem {
    pub fn error(node: Option<&str>, field: impl Into<String>, message: impl Into<String>) -> Self {
        Self::new(Severity::Error, node, field, message)
    }

    pub fn warning(
        node: Option<&str>,
        field: impl Into<String>,
        message: impl Into<String>,
    ) -> Self {
        Self::new(Severity::Warning, node, field, message)
    }

    fn new(
        severity: Severity,
        node: Option<&str>,
        field: impl Into<String>,
        message: impl Into<String>,
    ) -> Self {
        Problem {
            severity,
            node: node.map(str::to_string),
            field: field.into(),
            message: message.into(),
        }
    }

    pub fn is_error(&self) -> bool {
        self.severity == Severity::Error
    }
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let level = match self.severity {
            Severity::Warning => "warning",
            Severity::Error => "error",
        };
        match &self.node {
            Some(node) => write!(f, "{level}: node {node}: {}: {}", self.field, self.message),
            None => write!(f, "{level}: {}: {}", self.field, self.message),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum InventoryError {
    /// lab.toml itself: missing, unreadable, not a regular file, too large.
    #[error("{}: {source}", .path.display())]
    Read { path: PathBuf, source: FileError },
    #[error("{path} has {} error(s); run `petitlab check` to see them all", count_errors(.problems))]
    Invalid {
        path: PathBuf,
        problems: Vec<Problem>,
    },
}

fn count_errors(problems: &[Problem]) -> usize {
    problems.iter().filter(|p| p.is_error()).count()
}

/// A loaded inventory with everything found wrong in it.
#[derive(Debug)]
pub struct Loaded {
    /// The lab; nodes with errors are left out of `lab.nodes`.
    pub lab: Lab,
    pub problems: Vec<Problem>,
}

impl Loaded {
    pub fn has_errors(&self) -> bool {
        self.problems.iter().any(Problem::is_error)
    }
}

/// Which nodes a load validates in full: the lab-wide settings always are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scope {
    /// Every node (`check`, `--all`, the service).
    All,
    /// Every node is parsed and checked against the others (names, MACs,
    /// addresses stay unique), but only these have their files opened and
    /// their problems reported: what a command that runs the engine, which
    /// knows every node, needs.
    Nodes(HashSet<String>),
    /// Only these nodes are loaded at all (and checked only against each
    /// other): `render n0001` on a 4000-node lab neither parses nor opens
    /// the other 3999. Falls back to [`Scope::Nodes`] when lab.toml cannot
    /// be cut with certainty.
    Only(HashSet<String>),
}

impl Scope {
    pub fn nodes<S: AsRef<str>>(names: &[S]) -> Scope {
        Scope::Nodes(names.iter().map(|n| n.as_ref().to_string()).collect())
    }

    pub fn only<S: AsRef<str>>(names: &[S]) -> Scope {
        Scope::Only(names.iter().map(|n| n.as_ref().to_string()).collect())
    }

    pub fn includes(&self, node: &str) -> bool {
        match self {
            Scope::All => true,
            Scope::Nodes(names) | Scope::Only(names) => names.contains(node),
        }
    }
}

/// Load and validate `path`, collecting every problem. Fails only when the
/// file cannot be read at all, or is not a regular file of at most
/// [`LAB_TOML_CAP`] bytes of text.
pub fn load(path: &Path) -> Result<Loaded, InventoryError> {
    load_scoped(path, &Scope::All)
}

/// [`load`], validating in full only the nodes in `scope` (and lab-wide
/// settings); problems of other nodes are left out.
pub fn load_scoped(path: &Path, scope: &Scope) -> Result<Loaded, InventoryError> {
    let text = files::read_text(path, LAB_TOML_CAP).map_err(|source| InventoryError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    let env = build::Env::from_process();
    let Scope::Only(names) = scope else {
        return Ok(build::from_text(path, &text, &env, scope));
    };
    if let Some(reduced) = reduce::reduce(&text, names) {
        let loaded = build::from_text(path, &reduced, &env, scope);
        // A cut that does not parse was a wrong cut: the whole file decides.
        if !loaded.problems.iter().any(|p| p.field == "lab.toml") {
            return Ok(loaded);
        }
    }
    Ok(build::from_text(
        path,
        &text,
        &env,
        &Scope::Nodes(names.clone()),
    ))
}

/// Load `path` and insist it has no errors; warnings are returned.
pub fn load_valid(path: &Path) -> Result<(Lab, Vec<Problem>), InventoryError> {
    load(path)?.into_valid()
}

impl Loaded {
    /// The lab, or every problem when any is an error; warnings are returned.
    pub fn into_valid(self) -> Result<(Lab, Vec<Problem>), InventoryError> {
        let loaded = self;
        let path = &loaded.lab.path;
        if loaded.has_errors() {
            return Err(InventoryError::Invalid {
                path: path.to_path_buf(),
                problems: loaded.problems,
            });
        }
        Ok((loaded.lab, loaded.problems))
    }
}

/// A node's uuid when lab.toml gives none: UUIDv5 of its name, so it is
/// the same on every machine and every run.
pub fn derived_uuid(name: &str) -> Uuid {
    // Fixed, arbitrary namespace for petitlab node names; never change it.
    const NAMESPACE: Uuid = Uuid::from_u128(0x6a1c_9f0e_5b7d_5c55_8e0f_2d43_b1a7_9c10);
    Uuid::new_v5(&NAMESPACE, name.as_bytes())
}
