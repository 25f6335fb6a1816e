//! The deploy agent in petitlab's deploy ramdisk, as docs/agent-api.md
//! describes it: look the node up by its MACs, stream the image onto the
//! disk like `dd` (or, for `deploy_interface=iscsi`, export the disk over
//! iSCSI for petitlab to write: [`super::agent_iscsi`]), report progress,
//! read the disk back and report its sha256. Every step is printed on the
//! console.

use std::io::{Read, Write};
use std::path::Path;
use std::time::Duration;

use sha2::{Digest, Sha256};
use tokio::time::{Instant, MissedTickBehavior};

use super::host::Boot;
use super::http_get;
use super::petitboot::{HostFault, VirtualHost};

pub const TOKEN_HEADER: &str = "X-Petitlab-Token";
const PROMPT: &str = "deploy:~# ";
/// Progress is posted at most this often.
const PROGRESS_EVERY: Duration = Duration::from_millis(500);
/// Largest API answer read.
const API_LIMIT: u64 = 64 * 1024;

/// The agent stopped: it has said why on the console.
pub(super) struct Stopped;

/// Why writing the image stopped.
pub(super) enum Halt {
    /// Report this reason with `failed`.
    Report(String),
    /// An API call was refused (already printed): report nothing more.
    Stopped,
}

impl From<Stopped> for Halt {
    fn from(_: Stopped) -> Halt {
        Halt::Stopped
    }
}

pub(super) struct Api {
    base: String,
    token: String,
}

/// What `lookup` answered.
pub(super) struct Deploy {
    pub(super) node: String,
    /// `None` for an iSCSI deploy: petitlab writes the image itself.
    url: Option<String>,
    pub(super) size: u64,
    sha256: String,
    name: String,
    pub(super) heartbeat: Duration,
}

pub(crate) async fn run(host: &VirtualHost, boot: &Boot, api: &str, token: &str) {
    boot.line(&format!("petitlab-agent: starting (api {api})"))
        .await;
    let token = match host.fault {
        HostFault::AgentSilent => {
            boot.line("petitlab-agent: (simulated fault) agent silent")
                .await;
            boot.prompt(PROMPT);
            return;
        }
        HostFault::WrongToken => {
            boot.line("petitlab-agent: (simulated fault) presenting a wrong token")
                .await;
            wrong(token)
        }
        _ => token.to_string(),
    };
    let base = if api.ends_with('/') {
        api.to_string()
    } else {
        format!("{api}/")
    };
    let api = Api { base, token };
    // Whatever happened, the agent ends at its shell.
    let _ = deploy(host, boot, &api).await;
    boot.prompt(PROMPT);
}

/// The token with its last hex digit changed.
fn wrong(token: &str) -> String {
    let mut chars: Vec<char> = token.chars().collect();
    match chars.last_mut() {
        Some(last) => *last = if *last == '0' { '1' } else { '0' },
        None => chars.push('0'),
    }
    chars.into_iter().collect()
}

async fn deploy(host: &VirtualHost, boot: &Boot, api: &Api) -> Result<(), Stopped> {
    let macs: String = host.macs.iter().map(|m| format!("mac={m}\n")).collect();
    let answer = api.call(boot, "lookup", &macs).await?;
    let deploy = match Deploy::from(&answer) {
        Ok(deploy) => deploy,
        Err(missing) => {
            let line = format!("petitlab-agent: lookup answered without a valid {missing}");
            boot.line(&line).await;
            return Err(Stopped);
        }
    };
    let how = match deploy.url {
        Some(_) => "writing",
        None => "petitlab writes over iSCSI",
    };
    boot.line(&format!(
        "petitlab-agent: deploying {}: {how} {} ({} bytes)",
        deploy.node, deploy.name, deploy.size
    ))
    .await;
    let node = format!("node={}\n", deploy.node);
    let written = match &deploy.url {
        Some(url) => write_image(boot, api, &deploy, url, &host.disk).await,
        None => super::agent_iscsi::export_disk(host, boot, api, &deploy).await,
    };
    match written {
        Ok(()) => {}
        Err(Halt::Report(reason)) => return fail(boot, api, &node, reason).await,
        Err(Halt::Stopped) => return Err(Stopped),
    }
    let (path, size) = (host.disk.clone(), deploy.size);
    let read_back = tokio::task::spawn_blocking(move || disk_sha256(&path, size));
    let sha256 = match with_heartbeats(boot, api, &node, deploy.heartbeat, read_back).await? {
        Ok(Ok(sha256)) => sha256,
        Ok(Err(e)) => {
            return fail(boot, api, &node, format!("cannot read the disk back: {e}")).await;
        }
        Err(e) => return fail(boot, api, &node, format!("read-back task failed: {e}")).await,
    };
    boot.line(&format!(
        "petitlab-agent: read back {size} bytes: sha256 {sha256}"
    ))
    .await;
    if !sha256.eq_ignore_ascii_case(&deploy.sha256) {
        let reason = format!(
            "sha256 mismatch: disk has {sha256}, image_sha256 is {}",
            deploy.sha256
        );
        return fail(boot, api, &node, reason).await;
    }
    api.call(boot, "done", &format!("{node}sha256={sha256}\n"))
        .await?;
    boot.line("petitlab-agent: done; waiting for petitlab to reboot this node")
        .await;
    Ok(())
}

/// Awaits `work`, calling `heartbeat` while it takes long.
async fn with_heartbeats<T>(
    boot: &Boot,
    api: &Api,
    node: &str,
    heartbeat: Duration,
    work: impl std::future::Future<Output = T>,
) -> Result<T, Stopped> {
    tokio::pin!(work);
    let mut ticker = tokio::time::interval(heartbeat / 2);
    ticker.set_missed_tick_behavior(MissedTickBehavior::Delay);
    ticker.tick().await;
    loop {
        tokio::select! {
            done = &mut work => return Ok(done),
            _ = ticker.tick() => {
                api.call(boot, "heartbeat", node).await?;
            }
        }
    }
}

async fn fail(boot: &Boot, api: &Api, node: &str, reason: String) -> Result<(), Stopped> {
    boot.line(&format!("petitlab-agent: {reason}; reporting failed"))
        .await;
    api.call(boot, "failed", &format!("{node}reason={reason}\n"))
        .await?;
    Err(Stopped)
}

impl Deploy {
    /// Err names the key missing or malformed.
    fn from(answer: &[(String, String)]) -> Result<Deploy, &'static str> {
        let get = |key: &'static str| {
            answer
                .iter()
                .find(|(k, _)| k == key)
                .map(|(_, v)| v.clone())
                .filter(|v| !v.is_empty())
                .ok_or(key)
        };
        let sha256 = get("image_sha256")?;
        if sha256.len() != 64 || !sha256.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err("image_sha256");
        }
        let heartbeat = match get("heartbeat") {
            Ok(v) => v.parse().map_err(|_| "heartbeat")?,
            Err(_) => 10,
        };
        let url = match get("deploy_interface").as_deref() {
            Ok("iscsi") => None,
            Ok("agent") | Err(_) => Some(get("image_url")?),
            Ok(_) => return Err("deploy_interface"),
        };
        Ok(Deploy {
            node: get("node")?,
            url,
            size: get("image_size")?.parse().map_err(|_| "image_size")?,
            sha256,
            name: get("image_name")?,
            heartbeat: Duration::from_secs(u64::max(heartbeat, 1)),
        })
    }
}

impl Api {
    /// POSTs `body` to `<api><call>`; any answer but 200 is printed and stops the agent.
    pub(super) async fn call(
        &self,
        boot: &Boot,
        call: &str,
        body: &str,
    ) -> Result<Vec<(String, String)>, Stopped> {
        let url = format!("{}{call}", self.base);
        let headers = [
            (TOKEN_HEADER, self.token.as_str()),
            ("Content-Type", "text/plain"),
        ];
        let answer = async {
            let response =
                http_get::post(&url, &headers, body.as_bytes(), http_get::TIMEOUT).await?;
            let status = response.status;
            let body = response.read_to_end(API_LIMIT).await?;
            Ok::<_, http_get::HttpError>((status, String::from_utf8_lossy(&body).into_owned()))
        };
        let (status, text) = match answer.await {
            Ok(answer) => answer,
            Err(e) => {
                boot.line(&format!("petitlab-agent: {call} failed: {e}"))
                    .await;
                return Err(Stopped);
            }
        };
        if status != 200 {
            let error = text
                .lines()
                .find(|l| l.starts_with("error="))
                .or_else(|| text.lines().next())
                .unwrap_or("");
            boot.line(&format!("petitlab-agent: {call} refused: {status} {error}"))
                .await;
            return Err(Stopped);
        }
        Ok(text
            .lines()
            .filter_map(|l| l.split_once('='))
            .map(|(k, v)| (k.trim().to_string(), v.to_string()))
            .collect())
    }
}

/// Streams the image at `url` onto the disk.
async fn write_image(
    boot: &Boot,
    api: &Api,
    deploy: &Deploy,
    url: &str,
    disk: &Path,
) -> Result<(), Halt> {
    let report = |reason: String| Halt::Report(reason);
    let node = format!("node={}\n", deploy.node);
    let mut response = http_get::get(url, http_get::TIMEOUT)
        .await
        .map_err(|e| report(format!("image download {url}: {e}")))?;
    if response.status != 200 {
        let line = response.status_line();
        return Err(report(format!("image download {url}: {line}")));
    }
    if let Some(len) = response.content_length
        && len != deploy.size
    {
        return Err(report(format!(
            "image download {url}: {len} bytes served, lookup said {}",
            deploy.size
        )));
    }
    let mut file = open_disk(disk)
        .map_err(|e| report(format!("cannot open the disk {}: {e}", disk.display())))?;
    boot.line(&format!(
        "petitlab-agent: writing {url} to {}",
        disk.display()
    ))
    .await;
    let mut written: u64 = 0;
    // Progress is paced on its own clock; any call counts as a heartbeat.
    let (mut last_progress, mut last_call) = (Instant::now(), Instant::now());
    let beat = deploy.heartbeat / 2;
    let mut ticker = tokio::time::interval(beat);
    ticker.set_missed_tick_behavior(MissedTickBehavior::Delay);
    ticker.tick().await;
    loop {
        tokio::select! {
            piece = response.chunk() => match piece {
                Ok(Some(bytes)) => {
                    // Page-cache writes of at most 64 KiB: quick enough to
                    // make inline, as `dd` would.
                    file.write_all(bytes).map_err(|e| report(format!("writing the disk: {e}")))?;
                    written += bytes.len() as u64;
                    if last_progress.elapsed() >= PROGRESS_EVERY && written < deploy.size {
                        progress(boot, api, &node, written, deploy.size).await?;
                        (last_progress, last_call) = (Instant::now(), Instant::now());
                    }
                }
                Ok(None) => break,
                Err(e) => return Err(report(format!("image download {url}: {e}"))),
            },
            _ = ticker.tick() => {
                // A stalled download still shows the agent is alive.
                if last_call.elapsed() >= beat {
                    api.call(boot, "heartbeat", &node).await?;
                    last_call = Instant::now();
                }
            }
        }
    }
    if written != deploy.size {
        return Err(report(format!(
            "image download {url}: got {written} bytes, lookup said {}",
            deploy.size
        )));
    }
    file.flush()
        .map_err(|e| report(format!("writing the disk: {e}")))?;
    progress(boot, api, &node, written, deploy.size).await?;
    Ok(())
}

async fn progress(
    boot: &Boot,
    api: &Api,
    node: &str,
    written: u64,
    total: u64,
) -> Result<(), Stopped> {
    let body = format!("{node}written={written}\ntotal={total}\n");
    api.call(boot, "progress", &body).await?;
    boot.line(&format!("petitlab-agent: wrote {written} of {total} bytes"))
        .await;
    Ok(())
}

/// The disk, truncated as `dd` to a file leaves it.
fn open_disk(disk: &Path) -> std::io::Result<std::fs::File> {
    if let Some(dir) = disk.parent() {
        std::fs::create_dir_all(dir)?;
    }
    std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .open(disk)
}

/// sha256 of the disk's first `size` bytes, read in pieces.
fn disk_sha256(disk: &Path, size: u64) -> std::io::Result<String> {
    let mut file = std::fs::File::open(disk)?.take(size);
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = file.read(&mut buf)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    Ok(hasher
        .finalize()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_wrong_token_differs_in_its_last_digit_only() {
        assert_eq!(wrong("ab12"), "ab10");
        assert_eq!(wrong("ab10"), "ab11");
        assert_eq!(wrong(""), "0");
    }

    #[test]
    fn lookup_answers_name_what_is_missing_or_malformed() {
        let sha = "a".repeat(64);
        let answer = |skip: &str, sha: &str| -> Vec<(String, String)> {
            [
                ("node", "n1"),
                ("image_url", "http://h/i"),
                ("image_size", "10"),
                ("image_sha256", sha),
                ("image_name", "os"),
            ]
            .iter()
            .filter(|(k, _)| *k != skip)
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
        };
        let deploy = Deploy::from(&answer("", &sha)).ok().unwrap();
        assert_eq!(
            (deploy.size, deploy.heartbeat),
            (10, Duration::from_secs(10))
        );
        for key in ["node", "image_url", "image_size", "image_name"] {
            assert_eq!(Deploy::from(&answer(key, &sha)).err(), Some(key));
        }
        assert_eq!(Deploy::from(&answer("", "abc")).err(), Some("image_sha256"));
    }
}
