//! What a virtual host prints after power-on: the [`Firmware`] seam and the
//! default script, firmware then petitboot then a kernel up to a login
//! prompt, by the boot device the boot used. The lifecycle's virtual
//! petitboot replaces the default by plugging its own `Firmware` in.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use super::chassis::BootDevice;
use super::host::Boot;

pub type BootFuture = Pin<Box<dyn Future<Output = ()> + Send>>;

/// Decides what the host prints after each power-on or reset. The script
/// runs as one future per boot and is dropped when the host powers off or
/// boots again; [`Boot::prompt`] leaves it waiting at a prompt with echo.
#[derive(Clone)]
pub struct Firmware(Arc<dyn Fn(Boot) -> BootFuture + Send + Sync>);

impl Firmware {
    /// A script run once per boot:
    ///
    /// ```
    /// use petitlab::sim::{BmcSpec, Boot, Firmware};
    /// let mut spec = BmcSpec::new("node1", 0, "admin", "password");
    /// spec.firmware = Firmware::new(|boot: Boot| async move {
    ///     boot.line("Petitboot (v1.14)").await;
    ///     boot.prompt("petitboot> ");
    /// });
    /// ```
    pub fn new<F, Fut>(script: F) -> Firmware
    where
        F: Fn(Boot) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        Firmware(Arc::new(move |boot| Box::pin(script(boot))))
    }

    /// The default: OPAL, petitboot (netboot or local boot by
    /// `booted_from`), a kernel, then "`<node>` login: ".
    pub fn petitboot() -> Firmware {
        Firmware::new(petitboot_like)
    }

    pub(crate) fn boot(&self, boot: Boot) -> BootFuture {
        (self.0)(boot)
    }
}

impl Default for Firmware {
    fn default() -> Self {
        Firmware::petitboot()
    }
}

impl fmt::Debug for Firmware {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Firmware(..)")
    }
}

pub(crate) const OPAL: &[&str] = &[
    "--== Welcome to Hostboot hostboot-e5e8ee8/hbicore.bin ==--",
    "ISTEP  6. 5 - host_init_fsi",
    "ISTEP 21. 3 - host_start_payload",
    "[   52.104118563,5] OPAL skiboot-v7.0 starting...",
    "[   52.104123419,7] initial console log level: memory 7, driver 5",
    "[   58.223458713,5] INIT: Starting kernel at 0x20011000, fdt at 0x3072ea48",
];

pub(crate) const KERNEL: &[&str] = &[
    "[    0.000000] Linux version 6.1.0-18-powerpc64le (debian-kernel@lists.debian.org)",
    "[    0.000000] Kernel command line: root=/dev/sda2 ro console=hvc0",
    "[    1.052193] EXT4-fs (sda2): mounted filesystem with ordered data mode.",
    "[    2.318047] systemd[1]: Detected architecture ppc64-le.",
    "[  OK  ] Reached target multi-user.target - Multi-User System.",
];

/// A stable per-node number, for addresses that differ between nodes.
pub(crate) fn node_hash(node: &str) -> u32 {
    node.bytes().fold(0x811C_9DC5, |h: u32, b| {
        (h ^ u32::from(b)).wrapping_mul(0x0100_0193)
    })
}

async fn petitboot_like(boot: Boot) {
    for line in OPAL {
        boot.line(line).await;
    }
    boot.line("Petitboot (v1.14)").await;
    match boot.chassis().booted_from {
        BootDevice::Pxe => netboot(&boot).await,
        BootDevice::BiosSetup => {
            // Petitboot's shell: the host waits there, echoing.
            boot.line("Exiting petitboot. Type 'exit' to return.").await;
            boot.prompt("/ # ");
            return;
        }
        device => local_boot(&boot, device).await,
    }
    boot.line("kexec_core: Starting new kernel").await;
    for line in KERNEL {
        boot.line(line).await;
    }
    let node = boot.node().to_string();
    boot.line("").await;
    boot.line(&format!("Debian GNU/Linux 12 {node} hvc0")).await;
    boot.line("").await;
    boot.prompt(&format!("{node} login: "));
}

async fn netboot(boot: &Boot) {
    let [a, b, c, d] = node_hash(boot.node()).to_be_bytes();
    let (ip, server) = (
        format!("10.{a}.{b}.{}", 2 + c % 250),
        format!("10.{a}.{b}.1"),
    );
    let mac = format!("52-54-00-{b:02x}-{c:02x}-{d:02x}");
    let config = format!("tftp://{server}/pxelinux.cfg/01-{mac}");
    let kernel = format!("tftp://{server}/vmlinuz");
    boot.line("[net] eth0: link up").await;
    boot.line(&format!("[net] eth0: configured with address {ip}/24"))
        .await;
    boot.line(&format!("Loading config from {config}")).await;
    boot.line(&format!("pxeconffile  => {config}")).await;
    boot.line(&format!(
        "device_handler_status: [eth0] Requesting config {config}"
    ))
    .await;
    boot.line("device_handler_status: Download complete: config")
        .await;
    boot.line("Timeout expired, booting default option eth0@0x52540001")
        .await;
    boot.pause(5).await;
    boot.line(&format!("[net] eth0: downloaded {kernel} (8388608 bytes)"))
        .await;
    boot.line(&format!(
        "boot status: [1] Loaded kernel image from {kernel}"
    ))
    .await;
    boot.line("device_handler_status: Performing kexec reboot")
        .await;
}

async fn local_boot(boot: &Boot, device: BootDevice) {
    let (tag, dev) = match device {
        BootDevice::Cdrom => ("cdrom", "sr0"),
        _ => ("disk", "sda2"),
    };
    let option = "Debian GNU/Linux, with Linux 6.1.0-18-powerpc64le";
    boot.line(&format!("[{tag}] {dev}: found boot option '{option}'"))
        .await;
    boot.line(&format!("Booting '{option}' from /dev/{dev}"))
        .await;
    boot.line("device_handler_status: Performing kexec reboot")
        .await;
}
