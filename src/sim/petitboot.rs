//! The virtual OpenPOWER host: a virtual petitboot that does what the real
//! one does with the lab's DHCP options — builds the config URL from 209
//! and 210, really fetches the config, kernel and initrd over HTTP or TFTP,
//! and prints what petitboot prints — then the kernel it kexecs: petitlab's
//! deploy ramdisk ([`super::agent`]) or an instance whose root is the
//! node's virtual disk (a file). Plugged into a BMC as its [`Firmware`].

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::UdpSocket;

use crate::boot::pxeconf::{self, Label};
use crate::inventory::{Dhcp, MacAddr};
use crate::serve::tftp_client::{self, ClientOptions, TftpError};
use crate::serve::tftp_packet::{self as packet, ERR_OPTION_REFUSED, Mode, Packet, Request};

use super::agent;
use super::chassis::BootDevice;
use super::dhcp_log::{self, DhcpLog, Exchange};
use super::dhcp_view;
use super::firmware::{Firmware, KERNEL, OPAL, node_hash};
use super::host::Boot;
use super::http_get::{self, HttpError, HttpUrl};

/// One node of the virtual lab, as its virtual host sees it.
#[derive(Debug, Clone)]
pub struct VirtualHost {
    pub node: String,
    /// Its NICs, `eth0` first.
    pub macs: Vec<MacAddr>,
    /// Where the lab's DHCP options live (read as dnsmasq would).
    pub dhcp: Dhcp,
    /// The node's disk: a file the deploy agent writes like `dd`.
    pub disk: PathBuf,
    pub fault: HostFault,
    /// The lab's `[dhcp] log`: each netboot appends the lines dnsmasq
    /// would log for its DHCP exchange.
    pub dhcp_log: Option<DhcpLog>,
}

/// How the virtual host misbehaves, for tests of the deploy's error paths
/// and of the boot diagnosis. Each applies to every boot of the node.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum HostFault {
    #[default]
    None,
    /// The deploy ramdisk boots but its agent never calls back.
    AgentSilent,
    /// The agent presents a wrong token.
    WrongToken,
    /// An iSCSI deploy ramdisk's target dies once petitlab starts writing.
    IscsiTargetVanishes,
    /// DHCPDISCOVERs never reach dnsmasq: no lease, nothing in its log.
    NoDhcpReply,
    /// dnsmasq answers, but without options 209/210.
    NoPxeOptions,
    /// Petitboot's autoboot is disabled: the config is parsed, nothing boots.
    AutobootOff,
    /// The config names a kernel that is not there (HTTP 404).
    Kernel404,
    /// Every file downloads, then kexec_load fails.
    KexecFail,
    /// The kexec happens and the new kernel prints nothing (wrong
    /// `console=`, wrong endianness).
    SilentKernel,
}

impl HostFault {
    /// Every fault but `none`, by name.
    pub const ALL: [HostFault; 9] = [
        HostFault::AgentSilent,
        HostFault::WrongToken,
        HostFault::IscsiTargetVanishes,
        HostFault::NoDhcpReply,
        HostFault::NoPxeOptions,
        HostFault::AutobootOff,
        HostFault::Kernel404,
        HostFault::KexecFail,
        HostFault::SilentKernel,
    ];

    pub fn name(self) -> &'static str {
        match self {
            HostFault::None => "none",
            HostFault::AgentSilent => "agent-silent",
            HostFault::WrongToken => "wrong-token",
            HostFault::IscsiTargetVanishes => "iscsi-target-vanishes",
            HostFault::NoDhcpReply => "no-dhcp-reply",
            HostFault::NoPxeOptions => "no-pxe-options",
            HostFault::AutobootOff => "autoboot-off",
            HostFault::Kernel404 => "kernel-404",
            HostFault::KexecFail => "kexec-fail",
            HostFault::SilentKernel => "silent-kernel",
        }
    }

    /// `agent-silent, wrong-token, …`: for "known:" messages.
    pub fn known() -> String {
        HostFault::ALL.map(HostFault::name).join(", ")
    }
}

impl FromStr for HostFault {
    type Err = String;

    fn from_str(s: &str) -> Result<HostFault, String> {
        if s == "none" {
            return Ok(HostFault::None);
        }
        HostFault::ALL
            .into_iter()
            .find(|f| f.name() == s)
            .ok_or_else(|| format!("unknown host fault {s:?} (known: {})", HostFault::known()))
    }
}

impl fmt::Display for HostFault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The host's firmware: OPAL, petitboot, then what petitboot boots.
pub fn virtual_firmware(host: VirtualHost) -> Firmware {
    let host = Arc::new(host);
    Firmware::new(move |boot: Boot| {
        let host = host.clone();
        async move { run(&host, &boot).await }
    })
}

pub(crate) const PETITBOOT_PROMPT: &str = "petitboot> ";
/// Largest config petitboot is asked to parse.
const CONFIG_LIMIT: u64 = 1 << 20;

async fn run(host: &VirtualHost, boot: &Boot) {
    for line in OPAL {
        boot.line(line).await;
    }
    boot.line("Petitboot (v1.14)").await;
    if host.fault == HostFault::AutobootOff {
        // pb-discover's config dump (discover/platform.c dump_config()).
        boot.line("configuration:").await;
        boot.line(" autoboot: disabled").await;
    }
    match boot.chassis().booted_from {
        BootDevice::Disk => {}
        BootDevice::BiosSetup => {
            boot.line("Exiting petitboot. Type 'exit' to return.").await;
            boot.prompt("/ # ");
            return;
        }
        // Petitboot always brings its NICs up with DHCP.
        _ => {
            if netboot(host, boot).await == Next::Stop {
                return;
            }
        }
    }
    local_boot(host, boot).await;
}

#[derive(Debug, PartialEq, Eq)]
enum Next {
    LocalBoot,
    Stop,
}

async fn netboot(host: &VirtualHost, boot: &Boot) -> Next {
    let offer = dhcp_view::offer(&host.dhcp, &host.macs);
    let nic = format!("eth{}", offer.as_ref().map_or(0, |o| o.nic));
    if host.fault == HostFault::NoDhcpReply {
        no_lease(boot, &nic).await;
        return Next::LocalBoot;
    }
    log_exchange(host, offer.as_ref()).await;
    let offer = offer.filter(|_| host.fault != HostFault::NoPxeOptions);
    let Some((offer, conf_file)) = offer.and_then(|o| {
        let conf = o.option(209)?.to_string();
        Some((o, conf))
    }) else {
        let line = format!("[net] {nic}: no petitboot options in the DHCP offer");
        boot.line(&line).await;
        return Next::LocalBoot;
    };
    boot.line(&format!(
        "[net] {nic}: link up, DHCP offer for {}",
        offer.mac
    ))
    .await;
    let url = match config_url(&conf_file, offer.option(210)) {
        Ok(url) => url,
        Err(path) => {
            boot.line(&format!(
                "[net] {nic}: config {path} is TFTP from the DHCP server, and the virtual lab has none"
            ))
            .await;
            return Next::LocalBoot;
        }
    };
    boot.line(&format!("pxeconffile  => {url}")).await;
    boot.line(&format!(
        "device_handler_status: [{nic}] Requesting config {url}"
    ))
    .await;
    let text = match download(&url, Keep::Bytes(CONFIG_LIMIT)).await {
        Ok(bytes) => bytes,
        Err(e) => {
            boot.line(&e.console_line()).await;
            boot.line(&format!(
                "device_handler_status: [{nic}] Failed to download {url}"
            ))
            .await;
            return Next::LocalBoot;
        }
    };
    boot.line("device_handler_status: Download complete: config")
        .await;
    let config = pxeconf::parse(&String::from_utf8_lossy(&text));
    let Some(label) = config.default_label() else {
        boot.line("handler: no default boot option").await;
        boot.prompt(PETITBOOT_PROMPT);
        return Next::Stop;
    };
    let id = format!("{nic}@0x{:08x}", node_hash(&host.node));
    if host.fault == HostFault::AutobootOff {
        // With autoboot disabled petitboot sets no default and counts
        // nothing down (device-handler.c set_default() returns early): the
        // option just appears in the menu.
        boot.line(&format!("boot option {id} is resolved, sending to clients"))
            .await;
        boot.prompt(PETITBOOT_PROMPT);
        return Next::Stop;
    }
    boot.line(&format!(
        "handler: boot option {id} set as default, timeout 10 sec."
    ))
    .await;
    boot.pause(10).await;
    boot.line(&format!("Timeout expired, booting default option {id}"))
        .await;
    let mut option = BootOption::new(label, &url, offer.mac);
    if host.fault == HostFault::Kernel404 {
        // Models a config naming a kernel file that is not there: petitlab
        // never stages a name ending in "-missing".
        option.kernel.push_str("-missing");
    }
    let mut resources = vec![("kernel image", option.kernel.clone())];
    resources.extend(option.initrd.iter().map(|i| ("initrd", i.clone())));
    for (what, url) in resources {
        if let Err(e) = download(&url, Keep::Count).await {
            boot.line(&e.console_line()).await;
            boot.line(&format!("Failed to load {what} from {url}"))
                .await;
            boot.line(&format!("boot status: [1] Couldn't load {what} from {url}"))
                .await;
            boot.line("Failed to load all boot resources").await;
            boot.prompt(PETITBOOT_PROMPT);
            return Next::Stop;
        }
        boot.line(&format!("boot status: [1] Loaded {what} from {url}"))
            .await;
    }
    match host.fault {
        HostFault::KexecFail => {
            kexec_load_fails(boot).await;
            boot.prompt(PETITBOOT_PROMPT);
            return Next::Stop;
        }
        HostFault::SilentKernel => {
            // The kexec happens; the new kernel never says a word.
            kexec_start(boot).await;
            return Next::Stop;
        }
        _ => {}
    }
    kexec(boot, &option.cmdline).await;
    match deploy_args(&option.cmdline) {
        Some((api, token)) => {
            boot.line("[    0.958120] Run /init as init process").await;
            agent::run(host, boot, &api, &token).await;
        }
        None => instance(host, boot).await,
    }
    Next::Stop
}

/// The URL petitboot fetches: a 209 with a scheme alone, else 210 and 209
/// concatenated (no slash added). `Err` holds a result without a scheme:
/// TFTP to the DHCP server.
pub fn config_url(conf_file: &str, path_prefix: Option<&str>) -> Result<String, String> {
    let url = if conf_file.contains("://") {
        conf_file.to_string()
    } else {
        format!("{}{conf_file}", path_prefix.unwrap_or(""))
    };
    if url.contains("://") {
        Ok(url)
    } else {
        Err(url)
    }
}

/// A path without a scheme is relative to the config's directory, even
/// with a leading `/` (as petitboot's `pb_url_join` treats it).
pub fn resolve(config_url: &str, path: &str) -> String {
    if path.contains("://") {
        return path.to_string();
    }
    let authority = config_url.find("://").map_or(0, |at| at + 3);
    let dir = match config_url[authority..].rfind('/') {
        Some(at) => config_url[..authority + at + 1].to_string(),
        None => format!("{config_url}/"),
    };
    format!("{dir}{}", path.trim_start_matches('/'))
}

/// What petitboot makes of the default label.
#[derive(Debug, PartialEq, Eq)]
pub struct BootOption {
    pub kernel: String,
    pub initrd: Option<String>,
    pub cmdline: String,
}

impl BootOption {
    pub fn new(label: &Label, config_url: &str, mac: MacAddr) -> BootOption {
        let append = label.append.clone().unwrap_or_default();
        // `initrd=` anywhere in APPEND replaces the initrd (case-insensitive).
        let from_append = append.to_ascii_lowercase().find("initrd=").map(|at| {
            let rest = &append[at + "initrd=".len()..];
            rest.split(' ').next().unwrap_or("").to_string()
        });
        let initrd = from_append.or_else(|| label.initrd.clone());
        let mut cmdline = append;
        if label.ipappend.as_deref() == Some("2") {
            let bootif = mac.pxelinux_name();
            cmdline = format!("{cmdline} BOOTIF={bootif}").trim().to_string();
        }
        BootOption {
            kernel: resolve(config_url, label.kernel.as_deref().unwrap_or("")),
            initrd: initrd.map(|i| resolve(config_url, &i)),
            cmdline,
        }
    }
}

/// `petitlab.api=` and `petitlab.token=` on the command line: the deploy ramdisk.
fn deploy_args(cmdline: &str) -> Option<(String, String)> {
    let arg = |key: &str| {
        cmdline
            .split_whitespace()
            .find_map(|w| w.strip_prefix(key))
            .map(str::to_string)
    };
    Some((arg("petitlab.api=")?, arg("petitlab.token=")?))
}

/// busybox udhcpc as petitboot runs it (`-n`: exit without a lease,
/// after its 3 discovers 3 s apart), then pb-discover noting its exit
/// (discover/network.c udhcpc_process_exit()).
async fn no_lease(boot: &Boot, nic: &str) {
    boot.line("udhcpc: started, v1.36.1").await;
    for _ in 0..3 {
        boot.line("udhcpc: broadcasting discover").await;
        boot.pause(3).await;
    }
    boot.line("udhcpc: no lease, failing").await;
    boot.line(&format!(
        "udhcp client [pid 1183] for interface {nic} exited, rc 1"
    ))
    .await;
}

/// Appends the exchange dnsmasq would log for this netboot to the lab's
/// `[dhcp] log`, if it has one.
async fn log_exchange(host: &VirtualHost, offer: Option<&dhcp_view::Offer>) {
    let Some(log) = &host.dhcp_log else {
        return;
    };
    let Some(mac) = offer.map(|o| o.mac).or(host.macs.first().copied()) else {
        return;
    };
    let pxe = offer.filter(|_| host.fault != HostFault::NoPxeOptions);
    let tags = pxe.map(|o| o.tags.clone()).unwrap_or_default();
    // dnsmasq keeps options in the reverse of the order it read them in,
    // and sends 209/210 only to a client that asks (petitboot's does).
    let sent: Vec<(u16, String)> = pxe
        .map(|o| {
            let asked = o
                .options
                .iter()
                .filter(|(code, _)| matches!(code, 209 | 210));
            asked.rev().cloned().collect()
        })
        .unwrap_or_default();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    let exchange = Exchange {
        xid: node_hash(&host.node) ^ now.subsec_nanos() ^ now.as_secs() as u32,
        interface: "sim0",
        mac,
        ip: log.ip,
        server: log.server(),
        tags: &tags,
        known: offer.is_some(),
        sent: &sent,
    };
    let lines = dhcp_log::exchange(&exchange);
    let text = dhcp_log::render(now.as_secs() as i64, std::process::id(), &lines);
    dhcp_log::append(&log.path, text).await;
}

/// Petitboot's kexec_load failing (discover/boot.c boot_process(): the
/// status before it, kexec-tools' own error, the failure logged, then the
/// status older releases show, which the stage detector takes as a failed
/// boot).
async fn kexec_load_fails(boot: &Boot) {
    boot.line("boot status: [0] Performing kexec load").await;
    boot.line("kexec_load failed: Invalid argument").await;
    boot.line("kexec_load: failed: (255)").await;
    boot.line("boot status: [1] kexec load failed").await;
}

/// Petitboot's kexec reboot and the kernel's last words before the jump.
async fn kexec_start(boot: &Boot) {
    boot.line("device_handler_status: Performing kexec reboot")
        .await;
    boot.line("kexec_core: Starting new kernel").await;
}

async fn kexec(boot: &Boot, cmdline: &str) {
    kexec_start(boot).await;
    for line in KERNEL.iter().take(1) {
        boot.line(line).await;
    }
    boot.line(&format!("[    0.000000] Kernel command line: {cmdline}"))
        .await;
    boot.line("[    0.402117] sd 0:0:0:0: [sda] Attached SCSI disk")
        .await;
}

/// A netbooted instance kernel: its root filesystem is the virtual disk.
async fn instance(host: &VirtualHost, boot: &Boot) {
    match disk_image_name(&host.disk) {
        Some(name) => userspace(boot, &name).await,
        None => {
            boot.line("[    1.104512] VFS: Unable to mount root fs")
                .await;
            boot.line("[    1.104530] Kernel panic - not syncing: VFS: Unable to mount root fs on unknown-block(0,0)")
                .await;
        }
    }
}

async fn local_boot(host: &VirtualHost, boot: &Boot) {
    let Some(name) = disk_image_name(&host.disk) else {
        boot.line("[disk] sda: no boot options found").await;
        boot.prompt(PETITBOOT_PROMPT);
        return;
    };
    boot.line(&format!("[disk] sda2: found boot option '{name}'"))
        .await;
    boot.line(&format!("Booting '{name}' from /dev/sda2")).await;
    kexec(boot, "root=/dev/sda2 ro console=hvc0").await;
    userspace(boot, &name).await;
}

async fn userspace(boot: &Boot, name: &str) {
    boot.line("[    1.052193] EXT4-fs (sda2): mounted filesystem with ordered data mode.")
        .await;
    boot.line(&format!("Welcome to {name}!")).await;
    boot.line("[  OK  ] Reached target multi-user.target - Multi-User System.")
        .await;
    boot.line("").await;
    boot.prompt(&format!("{} login: ", boot.node()));
}

/// The bootable image on the disk, by its first line: `PETITLAB-IMAGE
/// <name>`, else its printable text; `None` for a missing or empty disk.
pub fn disk_image_name(disk: &Path) -> Option<String> {
    use std::io::Read;
    let mut head = Vec::with_capacity(200);
    let file = std::fs::File::open(disk).ok()?;
    file.take(200).read_to_end(&mut head).ok()?;
    if head.is_empty() {
        return None;
    }
    let first = head.split(|&b| b == b'\n').next().unwrap_or(&[]);
    let text: String = String::from_utf8_lossy(first)
        .chars()
        .filter(|c| !c.is_control() && *c != '\u{FFFD}')
        .collect();
    if let Some(name) = text.strip_prefix("PETITLAB-IMAGE ") {
        return Some(name.trim().to_string());
    }
    let name: String = text.trim().chars().take(60).collect();
    Some(if name.is_empty() {
        "unnamed image".to_string()
    } else {
        name.trim().to_string()
    })
}

/// What to do with a download's body.
enum Keep {
    /// Keep it, refused beyond this many bytes (a config).
    Bytes(u64),
    /// Count it only (a kernel or initrd: its size is what is checked).
    Count,
}

#[derive(Debug)]
enum LoadError {
    Status(String),
    Http(HttpError),
    Tftp(TftpError),
    TftpSize { got: u64, tsize: u64 },
    TooLarge(u64),
    Unsupported(String),
}

impl LoadError {
    /// What the downloader (busybox wget or tftp) prints.
    fn console_line(&self) -> String {
        match self {
            LoadError::Status(line) => format!("wget: server returned error: {line}"),
            LoadError::Http(e) => format!("wget: {e}"),
            LoadError::Tftp(TftpError::Server { code, message }) => {
                format!("tftp: server error: ({code}) {message}")
            }
            LoadError::Tftp(e) => format!("tftp: {e}"),
            LoadError::TftpSize { got, tsize } => {
                format!("tftp: received {got} bytes, tsize said {tsize}")
            }
            LoadError::TooLarge(limit) => format!("wget: file larger than {limit} bytes"),
            LoadError::Unsupported(url) => format!("Unsupported URL scheme: {url}"),
        }
    }
}

/// Downloads `url` over HTTP or TFTP, checking its size against what the
/// server announced (Content-Length, tsize).
async fn download(url: &str, keep: Keep) -> Result<Vec<u8>, LoadError> {
    if url.starts_with("http://") {
        let response = http_get::get(url, http_get::TIMEOUT)
            .await
            .map_err(LoadError::Http)?;
        if response.status != 200 {
            return Err(LoadError::Status(response.status_line()));
        }
        return match keep {
            Keep::Bytes(limit) => response.read_to_end(limit).await,
            Keep::Count => response.drain().await.map(|_| Vec::new()),
        }
        .map_err(LoadError::Http);
    }
    if !url.starts_with("tftp://") {
        return Err(LoadError::Unsupported(url.to_string()));
    }
    let target = HttpUrl::parse_as(url, "tftp://", 69).map_err(LoadError::Http)?;
    let server = tokio::net::lookup_host((target.host.as_str(), target.port))
        .await
        .ok()
        .and_then(|mut addrs| addrs.next())
        .ok_or_else(|| {
            let why = std::io::Error::other(format!("cannot resolve {}", target.host));
            LoadError::Tftp(TftpError::Io(why))
        })?;
    let tsize = tsize_probe(server, &target.path)
        .await
        .map_err(LoadError::Tftp)?;
    let options = ClientOptions {
        blksize: Some(1428),
        tsize: true,
        ..ClientOptions::default()
    };
    let data = tftp_client::fetch(server, &target.path, options)
        .await
        .map_err(LoadError::Tftp)?;
    let got = data.len() as u64;
    if let Some(tsize) = tsize
        && tsize != got
    {
        return Err(LoadError::TftpSize { got, tsize });
    }
    match keep {
        Keep::Bytes(limit) if got > limit => Err(LoadError::TooLarge(limit)),
        Keep::Bytes(_) => Ok(data),
        Keep::Count => Ok(Vec::new()),
    }
}

/// Asks for `tsize` only (RFC 2349): the server's OACK names the size, and
/// the transfer is then declined with ERROR 8, as RFC 2347 allows. `None`
/// when the server ignores the option. The fetch itself cannot report the
/// size it was promised, so the promise is taken here.
async fn tsize_probe(server: SocketAddr, path: &str) -> Result<Option<u64>, TftpError> {
    let any: IpAddr = match server {
        SocketAddr::V4(_) => Ipv4Addr::UNSPECIFIED.into(),
        SocketAddr::V6(_) => Ipv6Addr::UNSPECIFIED.into(),
    };
    let socket = UdpSocket::bind(SocketAddr::new(any, 0)).await?;
    let rrq = Packet::Rrq(Request {
        filename: path.as_bytes().to_vec(),
        mode: Mode::Octet,
        options: vec![("tsize".into(), "0".into())],
    })
    .to_bytes();
    let mut buf = vec![0u8; 65536];
    for _ in 0..4 {
        socket.send_to(&rrq, server).await?;
        let wait = tokio::time::timeout(Duration::from_secs(1), socket.recv_from(&mut buf));
        let Ok(received) = wait.await else {
            continue;
        };
        let (n, from) = received?;
        if from.ip() != server.ip() {
            continue;
        }
        let decline = packet::error(ERR_OPTION_REFUSED, "tsize query only");
        match Packet::decode(&buf[..n]) {
            Ok(Packet::Oack { options }) => {
                socket.send_to(&decline, from).await?;
                let tsize = options
                    .iter()
                    .find(|(name, _)| name.eq_ignore_ascii_case("tsize"))
                    .and_then(|(_, v)| v.parse().ok());
                return Ok(tsize);
            }
            Ok(Packet::Data { .. }) => {
                socket.send_to(&decline, from).await?;
                return Ok(None);
            }
            Ok(Packet::Error { code, message }) => {
                return Err(TftpError::Server { code, message });
            }
            _ => {}
        }
    }
    Err(TftpError::Timeout)
}

#[cfg(test)]
#[path = "petitboot_tests.rs"]
mod tests;
