//! The host console over SSH, as OpenBMC serves it on port 2200: dropbear
//! with obmc-console-client as the forced command. Password auth with the
//! BMC's account; whatever shell or command the client asks for, it gets
//! the console: the host's serial output from then on, and its typed bytes
//! (8-bit clean, no PTY processing) to the serial input — until it types
//! `~.` after a carriage return, as obmc-console-client's escape.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use russh::keys::ssh_key::LineEnding;
use russh::keys::{Algorithm, HashAlg, PrivateKey};
use russh::server::{Auth, Handle, Msg, Session};
use russh::{Channel, ChannelId, ChannelMsg, MethodKind, MethodSet};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::broadcast::error::RecvError;
use tokio::sync::{Semaphore, mpsc};
use tokio::task::JoinSet;

use super::super::SerialInput;
use super::Bmc;
use super::tls::write_file;

pub const HOST_KEY_FILE: &str = "ssh_host_ed25519_key";
/// obmc-console's MaxConcurrentSessions, as Redfish reports it.
const MAX_CONNECTIONS: usize = 15;
/// Consoles one connection may open.
const MAX_CHANNELS: usize = 4;
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// obmc-console-client's exit status after its escape.
const EXIT_ESCAPE: u32 = 2;

/// The host key in `dir`, made (and written, mode 0600) if missing.
pub fn load_or_create_host_key(dir: &Path) -> std::io::Result<PrivateKey> {
    let path = dir.join(HOST_KEY_FILE);
    let error = |what: String| std::io::Error::other(format!("{}: {what}", path.display()));
    if path.is_file() {
        return PrivateKey::read_openssh_file(&path).map_err(|e| error(e.to_string()));
    }
    std::fs::create_dir_all(dir).map_err(|e| error(format!("creating the directory: {e}")))?;
    let key = PrivateKey::random(&mut rand::rng(), Algorithm::Ed25519)
        .map_err(|e| error(format!("generating: {e}")))?;
    let text = key
        .to_openssh(LineEnding::LF)
        .map_err(|e| error(format!("encoding: {e}")))?;
    write_file(&path, text.as_bytes(), true)?;
    Ok(key)
}

/// As `ssh-keygen -l` shows it: "SHA256:…".
pub fn fingerprint(key: &PrivateKey) -> String {
    key.public_key().fingerprint(HashAlg::Sha256).to_string()
}

/// obmc-console-client's escape: `~` right after a carriage return is held
/// back; a `.` next ends the session, anything else is sent without the
/// `~` (so `~~` sends one).
#[derive(Debug, Default)]
pub struct Escape {
    state: u8,
}

impl Escape {
    /// The bytes to forward, and whether the escape was typed (the bytes
    /// before it are still forwarded).
    pub fn feed(&mut self, input: &[u8]) -> (Vec<u8>, bool) {
        let mut out = Vec::with_capacity(input.len());
        for &b in input {
            match b {
                b'.' if self.state == b'~' => return (out, true),
                b'~' if self.state == b'\r' => {
                    self.state = b'~';
                    continue;
                }
                b'\r' => self.state = b'\r',
                _ => self.state = 0,
            }
            out.push(b);
        }
        (out, false)
    }
}

fn password_only() -> MethodSet {
    MethodSet::from(&[MethodKind::Password][..])
}

/// Accepts SSH connections until the front end stops.
pub async fn serve(listener: TcpListener, key: PrivateKey, bmc: Arc<Bmc>) {
    let config = Arc::new(russh::server::Config {
        methods: password_only(),
        auth_rejection_time: Duration::from_millis(500),
        auth_rejection_time_initial: Some(Duration::ZERO),
        keys: vec![key],
        max_auth_attempts: 6,
        // A console may sit idle for hours; dead peers are found by
        // keepalives instead.
        inactivity_timeout: None,
        keepalive_interval: Some(Duration::from_secs(30)),
        keepalive_max: 3,
        nodelay: true,
        ..Default::default()
    });
    let permits = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    loop {
        let (tcp, peer) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(e) => {
                tracing::warn!(node = %bmc.name, "SSH console accept: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let Ok(permit) = permits.clone().try_acquire_owned() else {
            tracing::warn!(node = %bmc.name, %peer, "SSH console: too many connections, closing");
            continue;
        };
        let (config, task_bmc) = (config.clone(), bmc.clone());
        bmc.spawn(async move {
            connection(config, tcp, peer, task_bmc).await;
            drop(permit);
        });
    }
}

/// Disconnects the client when the connection's task ends, however it
/// ends (russh runs the session in a task of its own).
struct Disconnect(Handle);

impl Drop for Disconnect {
    fn drop(&mut self) {
        let handle = self.0.clone();
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(async move {
                let reason = russh::Disconnect::ByApplication;
                let _ = handle
                    .disconnect(reason, "console closed".into(), String::new())
                    .await;
            });
        }
    }
}

async fn connection(
    config: Arc<russh::server::Config>,
    tcp: TcpStream,
    peer: SocketAddr,
    bmc: Arc<Bmc>,
) {
    let (start, mut consoles_to_start) = mpsc::channel(MAX_CHANNELS);
    let handler = Console {
        bmc: bmc.clone(),
        peer,
        channels: HashMap::new(),
        start,
    };
    let running = tokio::time::timeout(
        HANDSHAKE_TIMEOUT,
        russh::server::run_stream(config, tcp, handler),
    );
    let session = match running.await {
        Ok(Ok(session)) => session,
        Ok(Err(e)) => {
            tracing::debug!(node = %bmc.name, %peer, "SSH console: {e}");
            return;
        }
        Err(_) => return,
    };
    let _disconnect = Disconnect(session.handle());
    tokio::pin!(session);
    let mut consoles = JoinSet::new();
    loop {
        tokio::select! {
            ended = &mut session => {
                if let Err(e) = ended {
                    tracing::debug!(node = %bmc.name, %peer, "SSH console session: {e}");
                }
                break;
            }
            Some(channel) = consoles_to_start.recv() => {
                consoles.spawn(console(channel, bmc.clone(), peer));
            }
            Some(_) = consoles.join_next(), if !consoles.is_empty() => {}
        }
    }
}

/// One console on one channel, until the client leaves or escapes.
async fn console(channel: Channel<Msg>, bmc: Arc<Bmc>, peer: SocketAddr) {
    let (mut read, write) = channel.split();
    let mut output = bmc.serial.output();
    let serial = bmc.serial.clone();
    tracing::info!(node = %bmc.name, %peer, "SSH console opened");
    let out = async {
        loop {
            match output.recv().await {
                Ok(bytes) => {
                    if write.data_bytes(bytes).await.is_err() {
                        return;
                    }
                }
                // Output lost while this client was slow: go on.
                Err(RecvError::Lagged(_)) => {}
                Err(RecvError::Closed) => return,
            }
        }
    };
    let input = async {
        let mut escape = Escape::default();
        while let Some(msg) = read.wait().await {
            match msg {
                ChannelMsg::Data { data } => {
                    let (typed, escaped) = escape.feed(&data);
                    if !typed.is_empty() {
                        serial.deliver(SerialInput::Data(typed));
                    }
                    if escaped {
                        return true;
                    }
                }
                ChannelMsg::Eof | ChannelMsg::Close => return false,
                _ => {}
            }
        }
        false
    };
    let escaped = tokio::select! {
        () = out => false,
        escaped = input => escaped,
    };
    if escaped {
        let _ = write.exit_status(EXIT_ESCAPE).await;
    }
    let _ = write.eof().await;
    let _ = write.close().await;
    tracing::info!(node = %bmc.name, %peer, escaped, "SSH console closed");
}

/// The per-connection SSH handler: authentication and channel requests.
struct Console {
    bmc: Arc<Bmc>,
    peer: SocketAddr,
    /// Session channels opened, not yet started.
    channels: HashMap<ChannelId, Channel<Msg>>,
    start: mpsc::Sender<Channel<Msg>>,
}

impl Console {
    /// Any shell or command: the console (dropbear's forced command).
    fn start_console(&mut self, id: ChannelId, session: &mut Session) -> Result<(), russh::Error> {
        let started = self
            .channels
            .remove(&id)
            .is_some_and(|channel| self.start.try_send(channel).is_ok());
        if started {
            session.channel_success(id)
        } else {
            session.channel_failure(id)
        }
    }
}

impl russh::server::Handler for Console {
    type Error = russh::Error;

    async fn auth_password(&mut self, user: &str, password: &str) -> Result<Auth, Self::Error> {
        if self.bmc.credentials.check(user, password) {
            Ok(Auth::Accept)
        } else {
            tracing::info!(node = %self.bmc.name, peer = %self.peer, "SSH console login refused");
            // Password may be tried again (up to max_auth_attempts), as
            // dropbear allows.
            Ok(Auth::Reject {
                proceed_with_methods: Some(password_only()),
                partial_success: false,
            })
        }
    }

    async fn channel_open_session(
        &mut self,
        channel: Channel<Msg>,
        reply: russh::server::ChannelOpenHandle,
        _session: &mut Session,
    ) -> Result<(), Self::Error> {
        // Past the limit the handle is dropped, which refuses the channel.
        if self.channels.len() < MAX_CHANNELS {
            self.channels.insert(channel.id(), channel);
            reply.accept().await;
        }
        Ok(())
    }

    async fn pty_request(
        &mut self,
        channel: ChannelId,
        _term: &str,
        _col_width: u32,
        _row_height: u32,
        _pix_width: u32,
        _pix_height: u32,
        _modes: &[(russh::Pty, u32)],
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        session.channel_success(channel)
    }

    async fn shell_request(
        &mut self,
        channel: ChannelId,
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        self.start_console(channel, session)
    }

    async fn exec_request(
        &mut self,
        channel: ChannelId,
        _command: &[u8],
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        self.start_console(channel, session)
    }

    async fn subsystem_request(
        &mut self,
        channel: ChannelId,
        _name: &str,
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        session.channel_failure(channel)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escape_follows_obmc_console_client() {
        let mut e = Escape::default();
        // Not after a carriage return: plain bytes.
        assert_eq!(e.feed(b"a~.b"), (b"a~.b".to_vec(), false));
        assert_eq!(e.feed(b"x\r~~y"), (b"x\r~y".to_vec(), false));
        assert_eq!(e.feed(b"\r~z"), (b"\rz".to_vec(), false));
        // Split across reads, 8-bit bytes untouched.
        assert_eq!(e.feed(&[0xFF, 0, b'\r']), (vec![0xFF, 0, b'\r'], false));
        assert_eq!(e.feed(b"~"), (vec![], false));
        assert_eq!(e.feed(b".rest"), (vec![], true));
        let mut e = Escape::default();
        assert_eq!(e.feed(b"ls\r~."), (b"ls\r".to_vec(), true));
    }

    #[test]
    fn host_key_is_made_once() {
        let dir = tempfile::tempdir().unwrap();
        let first = load_or_create_host_key(dir.path()).unwrap();
        let again = load_or_create_host_key(dir.path()).unwrap();
        assert_eq!(fingerprint(&first), fingerprint(&again));
        assert!(fingerprint(&first).starts_with("SHA256:"));
    }
}
