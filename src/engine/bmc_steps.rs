//! The BMC side of an action, each call bounded by the step's timeout and
//! worded for a failure reason; and the check that petitlab's own servers
//! answer before a node is sent to them.

use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::hardware::{self, BmcError, BootDevice, BootSet, PowerAction};
use crate::inventory::{Lab, Node, Protocol};

pub struct Bmc {
    bmc: hardware::Bmc,
    timeout: Duration,
    /// Where the BMC is, for messages: "10.0.0.5:623".
    addr: String,
}

impl Bmc {
    /// Through the node's open console session when the hub has one (one
    /// RMCP+ session per BMC), else a session of its own.
    pub async fn connect(
        consoles: &super::console_watch::ConsoleHub,
        node: &Node,
        timeout: Duration,
    ) -> Result<Bmc, String> {
        let target = super::targets::management_target(node)
            .await
            .map_err(|e| e.to_string())?;
        let addr = format!("{}:{}", node.bmc.host, node.bmc.port);
        Ok(Bmc {
            bmc: consoles.bmc(&node.name, target),
            timeout,
            addr,
        })
    }

    async fn bounded<T>(
        &mut self,
        what: &str,
        call: impl AsyncFnOnce(&mut hardware::Bmc) -> Result<T, BmcError>,
    ) -> Result<T, String> {
        let (addr, limit) = (&self.addr, self.timeout);
        match tokio::time::timeout(limit, call(&mut self.bmc)).await {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(e)) => Err(format!("{what} on the BMC at {addr}: {e}")),
            Err(_) => Err(format!(
                "{what} on the BMC at {addr}: no answer within {} s",
                limit.as_secs()
            )),
        }
    }

    pub async fn power_status(&mut self) -> Result<bool, String> {
        self.bounded("power status", async |b| b.power_status().await)
            .await
    }

    /// One-shot: the next boot only (see [`BootSet::once_ignored`] for a
    /// BMC that keeps it).
    pub async fn set_boot_device(&mut self, device: BootDevice) -> Result<BootSet, String> {
        let what = format!("boot device {}", device_name(device));
        self.bounded(&what, async move |b| b.set_boot_device(device, false).await)
            .await
    }

    /// Power on, or cycle a node that is already on, so it boots afresh.
    pub async fn power_on_or_cycle(&mut self) -> Result<String, String> {
        let action = if self.power_status().await? {
            PowerAction::Cycle
        } else {
            PowerAction::On
        };
        self.bounded("power", async move |b| b.power(action).await)
            .await?;
        Ok(match action {
            PowerAction::Cycle => "power cycled".into(),
            _ => "powered on".into(),
        })
    }

    /// Any power action; on and off are idempotent ("on (already)").
    pub async fn power(&mut self, action: PowerAction) -> Result<String, String> {
        let before = self.power_status().await?;
        match action {
            PowerAction::On if before => return Ok("on (already)".into()),
            PowerAction::Off | PowerAction::Soft if !before => return Ok("off (already)".into()),
            _ => {}
        }
        let what = format!("power {}", power_name(action));
        self.bounded(&what, async move |b| b.power(action).await)
            .await?;
        Ok(format!("power {} done", power_name(action)))
    }

    pub async fn power_off(&mut self) -> Result<String, String> {
        if !self.power_status().await? {
            return Ok("already off".into());
        }
        self.bounded("power off", async |b| b.power(PowerAction::Off).await)
            .await?;
        Ok("powered off".into())
    }

    pub async fn close(&mut self) {
        let _ = tokio::time::timeout(Duration::from_secs(2), self.bmc.close()).await;
    }
}

fn power_name(action: PowerAction) -> &'static str {
    match action {
        PowerAction::On => "on",
        PowerAction::Off => "off",
        PowerAction::Cycle => "cycle",
        PowerAction::Reset => "reset",
        PowerAction::Soft => "soft off",
    }
}

pub fn device_name(device: BootDevice) -> &'static str {
    match device {
        BootDevice::Pxe => "pxe",
        BootDevice::Disk => "disk",
        BootDevice::None => "none (clear override)",
    }
}

/// Where petitlab itself reaches a server that listens on `listen`.
fn local(listen: SocketAddr) -> SocketAddr {
    if listen.ip().is_unspecified() {
        SocketAddr::from((Ipv4Addr::LOCALHOST, listen.port()))
    } else {
        listen
    }
}

/// The HTTP server (boot files and agent API) must answer `/v1/ping`, and
/// the TFTP server must answer when configs use TFTP: a deploy sent to a
/// server that is not running would only time out much later.
pub async fn check_servers(lab: &Lab, node: &Node) -> Result<(), String> {
    let http = local(lab.http.listen);
    ping_http(http).await.map_err(|why| {
        format!(
            "petitlab's HTTP server on {http} does not answer ({why}); `petitlab serve` serves the boot files and the deploy agent API"
        )
    })?;
    if lab.protocol_of(node) == Protocol::Tftp {
        let tftp = local(lab.tftp.listen);
        ping_tftp(tftp).await.map_err(|why| {
            format!(
                "petitlab's TFTP server on {tftp} does not answer ({why}); start `petitlab serve`"
            )
        })?;
    }
    Ok(())
}

async fn ping_http(addr: SocketAddr) -> Result<(), String> {
    let exchange = async {
        let mut stream = tokio::net::TcpStream::connect(addr).await?;
        stream
            .write_all(b"GET /v1/ping HTTP/1.0\r\nHost: petitlab\r\n\r\n")
            .await?;
        let mut reply = Vec::new();
        stream.read_to_end(&mut reply).await?;
        Ok::<_, std::io::Error>(reply)
    };
    let reply = tokio::time::timeout(Duration::from_secs(3), exchange)
        .await
        .map_err(|_| "no answer within 3 s".to_string())?
        .map_err(|e| e.to_string())?;
    let text = String::from_utf8_lossy(&reply);
    if text.contains("ok=petitlab") {
        Ok(())
    } else {
        let status = text.lines().next().unwrap_or("an empty reply").to_string();
        Err(format!(
            "/v1/ping answered {status:?}, not petitlab's agent API"
        ))
    }
}

/// Any TFTP answer will do, an error for a file that does not exist included.
async fn ping_tftp(addr: SocketAddr) -> Result<(), String> {
    use crate::serve::tftp_client::{ClientOptions, TftpError, fetch};
    let options = ClientOptions {
        timeout: Duration::from_millis(500),
        retries: 3,
        ..ClientOptions::default()
    };
    match fetch(addr, "petitlab-probe/does-not-exist", options).await {
        Ok(_) | Err(TftpError::Server { .. }) => Ok(()),
        Err(e) => Err(e.to_string()),
    }
}
