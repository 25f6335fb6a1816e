//! The host console over SSH: OpenBMC runs dropbear on port 2200 with
//! `obmc-console-client` as the forced command ("Press ~. to exit console"),
//! so a session channel is the host's serial port.
//!
//! No PTY is requested: `obmc-console-client` only touches termios when its
//! stdin is a tty, so over pipes every byte passes untouched both ways (with
//! a PTY the BMC's line discipline would cook input until the client turns
//! it raw). Nothing here interprets `~.`; note that `obmc-console-client`
//! itself exits on `\r~.` (its default escape), which ends the session.
//!
//! Host keys are checked against petitlab's own known-hosts file
//! ([`super::known_hosts`]); a changed key or a refused login ends the
//! console, a lost connection is retried by [`reconnect`].

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use russh::client::{self, AuthResult, Handle};
use russh::keys::{PrivateKeyWithHashAlg, PublicKeyOrCertificate};
use russh::{Channel, ChannelMsg, Disconnect};

use super::Console;
use super::known_hosts::{self, Verdict};
use super::reconnect::{self, Connector, Link, LinkError, LinkOptions};

/// A quiet connection is probed this often; after [`KEEPALIVE_MAX`]
/// unanswered probes it is declared lost (and reopened).
const KEEPALIVE_INTERVAL: Duration = Duration::from_secs(15);
const KEEPALIVE_MAX: usize = 3;
/// A private key file larger than this is not a key.
const MAX_KEY_FILE_BYTES: u64 = 64 * 1024;

/// How to reach one node's console over SSH.
#[derive(Debug, Clone)]
pub struct SshConsole {
    pub host: String,
    pub port: u16,
    pub username: String,
    pub auth: SshAuth,
    /// petitlab's own known-hosts file (not `~/.ssh/known_hosts`).
    pub known_hosts: PathBuf,
    /// The node's name, for messages.
    pub node: String,
}

#[derive(Clone)]
pub enum SshAuth {
    Password(String),
    /// An unencrypted OpenSSH private key file.
    Key(PathBuf),
}

impl fmt::Debug for SshAuth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SshAuth::Password(_) => f.write_str("Password(<hidden>)"),
            SshAuth::Key(path) => f.debug_tuple("Key").field(path).finish(),
        }
    }
}

/// Runs the node's SSH console until it is closed or refused for good.
pub fn spawn(console: SshConsole, options: LinkOptions) -> Console {
    reconnect::spawn(console, options)
}

impl SshConsole {
    /// `user@host:port`, for messages.
    fn target(&self) -> String {
        format!("{}@{}", self.username, self.address())
    }

    fn address(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }

    async fn authenticate(&self, handle: &mut Handle<HostKeyCheck>) -> Result<(), LinkError> {
        let (result, method) = match &self.auth {
            SshAuth::Password(password) => (
                handle
                    .authenticate_password(self.username.clone(), password.clone())
                    .await,
                "password".to_string(),
            ),
            SshAuth::Key(path) => {
                let key = load_key(path, &self.node).await?;
                let hash = if key.algorithm().is_rsa() {
                    // Servers that predate rsa-sha2 only take SHA-1.
                    handle
                        .best_supported_rsa_hash()
                        .await
                        .map_err(|e| transient_ssh(self, "asking for RSA signatures", &e))?
                        .flatten()
                } else {
                    None
                };
                let key = PrivateKeyWithHashAlg::new(Arc::new(key), hash);
                (
                    handle
                        .authenticate_publickey(self.username.clone(), key)
                        .await,
                    format!("key {}", path.display()),
                )
            }
        };
        match result {
            Ok(AuthResult::Success) => Ok(()),
            Ok(AuthResult::Failure { .. }) => Err(LinkError::fatal(format!(
                "node {}: SSH login as {} refused ({method}); check the console's user and credentials",
                self.node,
                self.target()
            ))),
            Err(e) => Err(transient_ssh(self, "logging in", &e)),
        }
    }
}

impl Connector for SshConsole {
    type Link = SshLink;

    async fn connect(&mut self) -> Result<SshLink, LinkError> {
        let config = Arc::new(client::Config {
            keepalive_interval: Some(KEEPALIVE_INTERVAL),
            keepalive_max: KEEPALIVE_MAX,
            inactivity_timeout: None,
            nodelay: true,
            ..client::Config::default()
        });
        let check = HostKeyCheck {
            node: self.node.clone(),
            host: self.host.clone(),
            port: self.port,
            known_hosts: self.known_hosts.clone(),
        };
        let mut handle = client::connect(config, (self.host.as_str(), self.port), check)
            .await
            .map_err(|e| match e {
                CheckError::Refused(e) => e,
                CheckError::Ssh(e) => connect_error(self, &e),
            })?;
        self.authenticate(&mut handle).await?;
        let mut channel = handle
            .channel_open_session()
            .await
            .map_err(|e| transient_ssh(self, "opening a session", &e))?;
        // The forced command runs whatever we ask for; a shell request is
        // what `ssh -p 2200 bmc` sends.
        channel
            .request_shell(true)
            .await
            .map_err(|e| transient_ssh(self, "starting the console", &e))?;
        let mut early = Vec::new();
        loop {
            match channel.wait().await {
                Some(ChannelMsg::Success) => break,
                Some(ChannelMsg::Failure) => {
                    return Err(LinkError::transient(format!(
                        "node {}: {} refused to start the console",
                        self.node,
                        self.target()
                    )));
                }
                Some(ChannelMsg::Data { data }) | Some(ChannelMsg::ExtendedData { data, .. }) => {
                    early.extend_from_slice(&data)
                }
                Some(ChannelMsg::Eof | ChannelMsg::Close) | None => {
                    return Err(LinkError::transient(format!(
                        "node {}: {} closed the console as it started",
                        self.node,
                        self.target()
                    )));
                }
                Some(_) => {}
            }
        }
        Ok(SshLink {
            handle,
            channel,
            early: (!early.is_empty()).then_some(early),
        })
    }
}

/// One open console session.
pub struct SshLink {
    handle: Handle<HostKeyCheck>,
    channel: Channel<client::Msg>,
    /// Bytes that came with the shell request's reply.
    early: Option<Vec<u8>>,
}

impl Link for SshLink {
    async fn read(&mut self) -> io::Result<Option<Vec<u8>>> {
        if let Some(early) = self.early.take() {
            return Ok(Some(early));
        }
        // `Channel::wait` reads an mpsc queue: cancel-safe.
        loop {
            match self.channel.wait().await {
                Some(ChannelMsg::Data { data }) => return Ok(Some(data.to_vec())),
                // obmc-console-client's complaints ("Can't connect to
                // console server") are worth seeing beside the output.
                Some(ChannelMsg::ExtendedData { data, .. }) => return Ok(Some(data.to_vec())),
                Some(ChannelMsg::ExitStatus { exit_status }) => {
                    tracing::debug!(exit_status, "SSH console command exited");
                }
                Some(ChannelMsg::Eof | ChannelMsg::Close) | None => return Ok(None),
                Some(_) => {}
            }
        }
    }

    async fn write(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.channel
            .data_bytes(bytes.to_vec())
            .await
            .map_err(io::Error::other)
    }

    async fn send_break(&mut self) -> io::Result<()> {
        // RFC 4335's "break" channel request: russh's client cannot send it
        // (it has no way to send an arbitrary channel request).
        Err(io::Error::new(
            io::ErrorKind::Unsupported,
            "the SSH client (russh) cannot send a break request (RFC 4335)",
        ))
    }

    async fn close(self) {
        let _ = self.channel.eof().await;
        let _ = self.channel.close().await;
        let _ = self
            .handle
            .disconnect(Disconnect::ByApplication, "console closed", "en")
            .await;
    }
}

/// Checks the server's host key against petitlab's known-hosts file.
struct HostKeyCheck {
    node: String,
    host: String,
    port: u16,
    known_hosts: PathBuf,
}

#[derive(Debug)]
enum CheckError {
    Ssh(russh::Error),
    /// A refusal of ours (changed key, unusable known-hosts file).
    Refused(LinkError),
}

impl From<russh::Error> for CheckError {
    fn from(e: russh::Error) -> Self {
        CheckError::Ssh(e)
    }
}

impl client::Handler for HostKeyCheck {
    type Error = CheckError;

    async fn check_server_key(
        &mut self,
        offered: &PublicKeyOrCertificate,
    ) -> Result<bool, CheckError> {
        let PublicKeyOrCertificate::PublicKey { key, .. } = offered else {
            // Certificates are never asked for (russh's default).
            return Err(CheckError::Refused(LinkError::fatal(format!(
                "node {}: {}:{} offered an SSH host certificate; petitlab only checks plain host keys",
                self.node, self.host, self.port
            ))));
        };
        let key_type = key.algorithm().as_str().to_string();
        let blob = key.to_bytes().map_err(|e| CheckError::Ssh(e.into()))?;
        let (path, host, port) = (self.known_hosts.clone(), self.host.clone(), self.port);
        let new_fingerprint = known_hosts::fingerprint(&blob);
        let verdict = tokio::task::spawn_blocking(move || {
            known_hosts::check_and_record(&path, &host, port, &key_type, &blob)
        })
        .await
        .map_err(|e| CheckError::Refused(LinkError::fatal(format!("checking the host key: {e}"))))?
        .map_err(|e| CheckError::Refused(LinkError::fatal(format!("node {}: {e}", self.node))))?;
        let address = known_hosts::host_pattern(&self.host, self.port);
        match verdict {
            Verdict::Known => Ok(true),
            Verdict::Recorded => {
                tracing::warn!(
                    node = %self.node,
                    host = %address,
                    fingerprint = %new_fingerprint,
                    file = %self.known_hosts.display(),
                    "first SSH connection to this console: recorded its host key {} {new_fingerprint} for {address}; check it against the BMC's own if you can",
                    key.algorithm().as_str(),
                );
                Ok(true)
            }
            Verdict::Changed {
                line,
                old_type,
                old_fingerprint,
            } => Err(CheckError::Refused(LinkError::fatal(format!(
                "node {}: the SSH host key of {address} has CHANGED: {} line {line} has {old_type} {old_fingerprint}, the server offered {} {new_fingerprint}. \
                 Someone may be intercepting the connection, or the BMC was reinstalled. \
                 If the change is expected, remove line {line} from {} and reconnect.",
                self.node,
                self.known_hosts.display(),
                key.algorithm().as_str(),
                self.known_hosts.display(),
            )))),
        }
    }
}

async fn load_key(path: &Path, node: &str) -> Result<russh::keys::PrivateKey, LinkError> {
    let unusable =
        |why: String| LinkError::fatal(format!("node {node}: SSH key {}: {why}", path.display()));
    let size = tokio::fs::metadata(path)
        .await
        .map_err(|e| unusable(e.to_string()))?
        .len();
    if size > MAX_KEY_FILE_BYTES {
        return Err(unusable(format!(
            "{size} bytes is too large for a private key"
        )));
    }
    let text = tokio::fs::read_to_string(path)
        .await
        .map_err(|e| unusable(e.to_string()))?;
    russh::keys::decode_secret_key(&text, None).map_err(|e| {
        unusable(format!(
            "not a usable unencrypted OpenSSH private key ({e})"
        ))
    })
}

/// A connection that failed before login: most failures are worth a retry,
/// but no common algorithm will not change by itself.
fn connect_error(console: &SshConsole, e: &russh::Error) -> LinkError {
    match e {
        russh::Error::NoCommonAlgo { .. } => LinkError::fatal(format!(
            "node {}: no SSH algorithm in common with {}: {e}",
            console.node,
            console.address()
        )),
        _ => transient_ssh(console, "connecting", e),
    }
}

fn transient_ssh(console: &SshConsole, doing: &str, e: &russh::Error) -> LinkError {
    LinkError::transient(format!(
        "node {}: {doing} to {} over SSH: {e}",
        console.node,
        console.address()
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_hides_the_password() {
        let console = SshConsole {
            host: "bmc1".into(),
            port: 2200,
            username: "root".into(),
            auth: SshAuth::Password("s3cret-pw".into()),
            known_hosts: "/tmp/kh".into(),
            node: "n1".into(),
        };
        let shown = format!("{console:?}");
        assert!(!shown.contains("s3cret-pw"), "{shown}");
        assert!(shown.contains("Password(<hidden>)"), "{shown}");
        assert_eq!(console.target(), "root@bmc1:2200");
    }

    #[test]
    fn ipv6_addresses_are_bracketed_in_messages() {
        let console = SshConsole {
            host: "fe80::1".into(),
            port: 2200,
            username: "root".into(),
            auth: SshAuth::Key("/k".into()),
            known_hosts: "/tmp/kh".into(),
            node: "n1".into(),
        };
        assert_eq!(console.target(), "root@[fe80::1]:2200");
    }

    #[tokio::test]
    async fn an_unusable_key_file_is_fatal_and_names_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("nope");
        let err = load_key(&missing, "n1").await.unwrap_err();
        assert!(err.fatal);
        assert!(err.message.contains("nope"), "{}", err.message);
        let garbage = dir.path().join("garbage");
        std::fs::write(&garbage, "-----BEGIN OPENSSH PRIVATE KEY-----\nAAAA\n").unwrap();
        let err = load_key(&garbage, "n1").await.unwrap_err();
        assert!(err.fatal);
        assert!(err.message.contains("garbage"), "{}", err.message);
        assert!(!err.message.contains("AAAA"), "{}", err.message);
    }
}
