//! The service side: binds the socket (mode 0660, `[service] group`),
//! admits peers by SO_PEERCRED, keeps the consoles open, runs the poller,
//! and serves each client's requests and events (methods.rs).

use std::collections::HashMap;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};

use futures::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::{Semaphore, broadcast, mpsc};
use tokio::task::JoinSet;
use tokio_util::codec::{FramedRead, FramedWrite, LinesCodec};

use super::fanout::{Fanout, Item};
use super::peer::{Admission, Peer};
use super::protocol::{MAX_REQUEST, Message, Request, RpcError, code, encode_bytes};
use crate::engine::lab::{Engine, EngineEvent};
use crate::engine::live::{self, LiveOptions};
use crate::inventory::Lab;

/// How long the service waits at start (or reload) for the consoles it
/// opens to connect before it starts polling.
const CONNECT_WAIT: std::time::Duration = std::time::Duration::from_secs(5);

pub struct ServiceOptions {
    pub live: LiveOptions,
    /// Clients connected at once; more are told so and closed.
    pub max_clients: usize,
    /// The `sessions` method: a virtual lab's BMC session counts.
    pub sessions: Option<Arc<dyn Fn() -> Value + Send + Sync>>,
}

impl Default for ServiceOptions {
    fn default() -> Self {
        ServiceOptions {
            live: LiveOptions::default(),
            max_clients: 256,
            sessions: None,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    #[error("a lab service already runs on {}", .0.display())]
    Running(PathBuf),
    #[error("lab service socket {}: {source}", path.display())]
    Socket {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{0}")]
    Admission(String),
}

pub struct Service {
    engine: RwLock<Arc<Engine>>,
    pub(super) fanout: Arc<Fanout>,
    admission: Admission,
    socket: PathBuf,
    pub(super) options: ServiceOptions,
    live: tokio::sync::Mutex<Option<JoinSet<()>>>,
    clients: Arc<Semaphore>,
    next_client: AtomicU64,
    /// One reload at a time.
    reloading: tokio::sync::Mutex<()>,
    accept: Mutex<Option<tokio::task::JoinHandle<()>>>,
}

/// What a reload changed.
#[derive(Debug, Default, Clone, serde::Serialize, serde::Deserialize)]
pub struct Reloaded {
    pub added: Vec<String>,
    pub removed: Vec<String>,
    pub changed: Vec<String>,
}

impl Service {
    /// Binds the socket and starts everything; runs until [`Service::shutdown`].
    pub async fn start(
        engine: Arc<Engine>,
        events: mpsc::UnboundedReceiver<EngineEvent>,
        options: ServiceOptions,
    ) -> Result<Arc<Service>, ServiceError> {
        let settings = engine.lab.service.clone();
        let admission =
            Admission::current(settings.group.as_deref()).map_err(ServiceError::Admission)?;
        let listener = bind(&settings.socket, admission.group.as_ref().map(|g| g.1)).await?;
        let fanout = Fanout::new();
        tokio::spawn(fanout.clone().run(events));
        let service = Arc::new(Service {
            engine: RwLock::new(engine.clone()),
            fanout,
            admission,
            socket: settings.socket.clone(),
            clients: Arc::new(Semaphore::new(options.max_clients.max(1))),
            options,
            live: tokio::sync::Mutex::default(),
            next_client: AtomicU64::new(1),
            reloading: tokio::sync::Mutex::default(),
            accept: Mutex::default(),
        });
        let names: Vec<String> = engine.lab.nodes.iter().map(|n| n.name.clone()).collect();
        service.keep_consoles(&engine, names).await;
        *service.live.lock().await = Some(live::start(engine, service.options.live).await);
        let accept = tokio::spawn(service.clone().accept(listener));
        *service.accept.lock().unwrap_or_else(|p| p.into_inner()) = Some(accept);
        tracing::info!(socket = %service.socket.display(), "lab service listening");
        Ok(service)
    }

    pub fn engine(&self) -> Arc<Engine> {
        self.engine
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    pub fn socket(&self) -> &Path {
        &self.socket
    }

    /// Opens the consoles of `nodes` that the lab keeps connected, all at
    /// once, and waits (a bounded while: one silent BMC never holds up the
    /// others) until they connect: the poller then rides in their sessions
    /// rather than opening its own.
    async fn keep_consoles(&self, engine: &Arc<Engine>, nodes: Vec<String>) {
        let kept: Vec<_> = nodes
            .into_iter()
            .filter_map(|name| engine.node(&name).cloned())
            .filter(|node| engine.lab.console_always.of(node))
            .collect();
        let hub = &engine.consoles;
        futures::future::join_all(kept.iter().map(|node| async move {
            if let Err(why) = hub.keep_open(node).await {
                tracing::warn!(node = %node.name, "console not kept open: {why}");
                return;
            }
            if !hub.wait_connected(&node.name, CONNECT_WAIT).await {
                tracing::warn!(
                    node = %node.name,
                    "console not connected after {} s; it keeps trying",
                    CONNECT_WAIT.as_secs()
                );
            }
        }))
        .await;
    }

    /// Re-reads lab.toml: added nodes' consoles connect, removed ones close,
    /// changed ones reconnect; every other console keeps its session.
    pub async fn reload(&self) -> Result<Reloaded, String> {
        let _one = self.reloading.lock().await;
        let old = self.engine();
        let path = old.lab.path.clone();
        let lab = match crate::inventory::load_valid(&path) {
            Ok((lab, _warnings)) => lab,
            Err(crate::inventory::InventoryError::Invalid { path, problems }) => {
                let errors: Vec<String> = problems
                    .iter()
                    .filter(|p| p.is_error())
                    .map(|p| p.to_string())
                    .collect();
                return Err(format!(
                    "{} is not valid, nothing was reloaded: {}",
                    path.display(),
                    errors.join("; ")
                ));
            }
            Err(e) => return Err(e.to_string()),
        };
        let report = diff(&old.lab, &lab);
        let engine = old.reloaded(Arc::new(lab)).map_err(|e| e.to_string())?;
        for name in report.removed.iter().chain(&report.changed) {
            engine.consoles.let_go(name).await;
        }
        for name in &report.removed {
            self.fanout.forget(name);
        }
        // Nodes whose `console.always` changed are "changed" too.
        let opened = report
            .added
            .iter()
            .chain(&report.changed)
            .cloned()
            .collect();
        self.keep_consoles(&engine, opened).await;
        *self.engine.write().unwrap_or_else(|p| p.into_inner()) = engine.clone();
        let mut live = self.live.lock().await;
        if let Some(mut old) = live.take() {
            old.shutdown().await;
        }
        *live = Some(live::start(engine, self.options.live).await);
        tracing::info!(
            added = ?report.added,
            removed = ?report.removed,
            changed = ?report.changed,
            "lab.toml reloaded"
        );
        Ok(report)
    }

    /// Stops accepting, closes every console (deactivating SOL), stops the
    /// poller and removes the socket.
    pub async fn shutdown(&self) {
        let accept = self.accept.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let Some(accept) = accept {
            accept.abort();
        }
        let _ = std::fs::remove_file(&self.socket);
        if let Some(mut live) = self.live.lock().await.take() {
            live.shutdown().await;
        }
        self.engine().consoles.close_all().await;
        tracing::info!("lab service stopped");
    }

    async fn accept(self: Arc<Self>, listener: UnixListener) {
        loop {
            let stream = match listener.accept().await {
                Ok((stream, _)) => stream,
                Err(e) => {
                    // Out of descriptors, mostly: wait rather than spin.
                    tracing::warn!("accepting a client: {e}");
                    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                    continue;
                }
            };
            let id = self.next_client.fetch_add(1, Ordering::Relaxed);
            let this = self.clone();
            tokio::spawn(async move { this.client(stream, id).await });
        }
    }

    async fn client(self: Arc<Self>, stream: UnixStream, id: u64) {
        let peer = match Peer::of(&stream) {
            Ok(peer) => peer,
            Err(e) => {
                tracing::warn!("client {id}: no peer credentials: {e}");
                return;
            }
        };
        let (read, write) = stream.into_split();
        let mut lines = FramedRead::new(read, LinesCodec::new_with_max_length(MAX_REQUEST));
        let mut sink = FramedWrite::new(write, LinesCodec::new());
        let refusal = match (
            self.admission.admit(&peer),
            self.clients.clone().try_acquire_owned(),
        ) {
            (Err(why), _) => Some((code::NOT_ALLOWED, why)),
            (Ok(()), Err(_)) => Some((
                code::FAILED,
                format!(
                    "the lab service has {} clients already; try again later",
                    self.options.max_clients
                ),
            )),
            (Ok(()), Ok(permit)) => {
                self.serve(peer.clone(), id, lines, sink, permit).await;
                return;
            }
        };
        let Some((code, why)) = refusal else { return };
        tracing::warn!(user = %peer.user, uid = peer.uid, "client refused: {why}");
        // Say why to whatever it asks first, then hang up.
        let first = tokio::time::timeout(std::time::Duration::from_secs(5), lines.next()).await;
        let id = match first {
            Ok(Some(Ok(line))) => serde_json::from_str::<Request>(&line)
                .ok()
                .and_then(|r| r.id)
                .unwrap_or(Value::Null),
            _ => Value::Null,
        };
        let _ = sink
            .send(Message::reply(id, Err(RpcError::new(code, why))).line())
            .await;
    }

    async fn serve(
        self: Arc<Self>,
        peer: Peer,
        id: u64,
        mut lines: FramedRead<tokio::net::unix::OwnedReadHalf, LinesCodec>,
        mut sink: FramedWrite<tokio::net::unix::OwnedWriteHalf, LinesCodec>,
        _permit: tokio::sync::OwnedSemaphorePermit,
    ) {
        tracing::debug!(user = %peer.user, client = id, "client connected");
        let (out, mut outgoing) = mpsc::channel::<String>(1024);
        let writer = tokio::spawn(async move {
            while let Some(line) = outgoing.recv().await {
                if sink.send(line).await.is_err() {
                    break;
                }
            }
        });
        let conn = Arc::new(Conn {
            id,
            peer,
            out,
            state: Mutex::default(),
            console_order: tokio::sync::Mutex::default(),
        });
        let mut items = self.fanout.subscribe();
        // Requests run on their own tasks (a power sweep takes a while),
        // a bounded number at a time per client.
        let requests = Arc::new(Semaphore::new(32));
        loop {
            tokio::select! {
                line = lines.next() => match line {
                    Some(Ok(line)) => {
                        let Ok(permit) = requests.clone().acquire_owned().await else { break };
                        let (this, conn) = (self.clone(), conn.clone());
                        tokio::spawn(async move {
                            this.request(&conn, &line).await;
                            drop(permit);
                        });
                    }
                    Some(Err(e)) => {
                        let error = RpcError::new(code::INVALID_REQUEST, e.to_string());
                        let _ = conn.out.send(Message::reply(Value::Null, Err(error)).line()).await;
                        break;
                    }
                    None => break,
                },
                item = items.recv() => match item {
                    Ok(item) => {
                        if !conn.forward(&item).await {
                            break;
                        }
                    }
                    Err(broadcast::error::RecvError::Lagged(missed)) => {
                        conn.notify("lagged", json!({"missed": missed})).await;
                    }
                    Err(broadcast::error::RecvError::Closed) => break,
                },
            }
        }
        let consoles: Vec<String> = conn.state().consoles.keys().cloned().collect();
        for node in consoles {
            self.detach_console(&conn, &node).await;
        }
        drop(conn);
        let _ = writer.await;
        tracing::debug!(client = id, "client gone");
    }

    async fn request(&self, conn: &Arc<Conn>, line: &str) {
        let request: Request = match serde_json::from_str(line) {
            Ok(r) => r,
            Err(e) => {
                let error = RpcError::new(code::PARSE, format!("not a JSON-RPC request: {e}"));
                let _ = conn
                    .out
                    .send(Message::reply(Value::Null, Err(error)).line())
                    .await;
                return;
            }
        };
        let result = super::methods::call(self, conn, &request.method, request.params).await;
        // A notification (no id) gets no answer.
        if let Some(id) = request.id {
            let _ = conn.out.send(Message::reply(id, result).line()).await;
        }
    }

    pub(super) async fn detach_console(&self, conn: &Conn, node: &str) {
        if conn.state().consoles.remove(node).is_none() {
            return;
        }
        let last = self.fanout.remove_viewer(node, conn.id);
        let engine = self.engine();
        if last
            && !engine.consoles.is_kept(node)
            && let Some(n) = engine.node(node).cloned()
        {
            let _ = engine.consoles.watch_ui(&n, false).await;
        }
    }
}

/// What one client has asked for.
#[derive(Default)]
pub(super) struct ConnState {
    /// Engine events: `None` none, `Some(None)` every node's, else these.
    pub subscribed: Option<Option<std::collections::HashSet<String>>>,
    /// Attached consoles, with the output position the client has reached.
    pub consoles: HashMap<String, u64>,
}

pub(super) struct Conn {
    pub id: u64,
    pub peer: Peer,
    out: mpsc::Sender<String>,
    state: Mutex<ConnState>,
    /// Held while a console's scrollback is read and sent, and while its
    /// output is forwarded: the client gets every byte once, in order.
    console_order: tokio::sync::Mutex<()>,
}

impl Conn {
    pub fn state(&self) -> std::sync::MutexGuard<'_, ConnState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub async fn notify(&self, method: &str, params: Value) -> bool {
        self.out
            .send(Message::notification(method, params).line())
            .await
            .is_ok()
    }

    /// Starts following the node's console: its scrollback now (as the
    /// first `console` notification), its output from there on.
    pub async fn attach_console(&self, fanout: &Fanout, node: &str) {
        let _order = self.console_order.lock().await;
        let (scrollback, end) = fanout.scrollback(node);
        self.state().consoles.insert(node.to_string(), end);
        let params = json!({"node": node, "data": encode_bytes(&scrollback), "scrollback": true});
        self.notify("console", params).await;
    }

    /// Sends what the client asked for of one item; false when it is gone.
    async fn forward(&self, item: &Item) -> bool {
        let _order = match item {
            Item::Console { .. } => Some(self.console_order.lock().await),
            _ => None,
        };
        let message = match item {
            Item::Event(event) => {
                let node = event_node(event);
                let state = self.state();
                let console_event = matches!(
                    event,
                    EngineEvent::ConsoleStatus { .. } | EngineEvent::ConsoleStage { .. }
                ) && state.consoles.contains_key(node);
                let wanted = match &state.subscribed {
                    None => false,
                    Some(None) => true,
                    Some(Some(nodes)) => nodes.contains(node),
                };
                if !(wanted || console_event) {
                    return true;
                }
                ("event", serde_json::to_value(event).unwrap_or_default())
            }
            Item::Console { node, end, bytes } => {
                let mut state = self.state();
                let Some(reached) = state.consoles.get_mut(node) else {
                    return true;
                };
                // Already in the scrollback it was sent on attaching.
                if *end <= *reached {
                    return true;
                }
                let new = usize::try_from(*end - *reached)
                    .unwrap_or(usize::MAX)
                    .min(bytes.len());
                *reached = *end;
                let data = encode_bytes(&bytes[bytes.len() - new..]);
                ("console", json!({"node": node, "data": data}))
            }
            Item::Writer {
                node,
                writer,
                previous,
            } => {
                if !self.state().consoles.contains_key(node) {
                    return true;
                }
                let you = writer.as_ref().is_some_and(|w| w.client == self.id);
                let taken = writer.is_some()
                    && !you
                    && previous.as_ref().is_some_and(|w| w.client == self.id);
                let params = json!({
                    "node": node,
                    "writer": writer.as_ref().map(|w| &w.user),
                    "you": you,
                    "taken_from_you": taken,
                });
                ("console.writer", params)
            }
        };
        self.notify(message.0, message.1).await
    }
}

fn event_node(event: &EngineEvent) -> &str {
    match event {
        EngineEvent::State { node, .. }
        | EngineEvent::Progress { node, .. }
        | EngineEvent::Reading { node, .. }
        | EngineEvent::PowerDraw { node, .. }
        | EngineEvent::ConsoleStage { node, .. }
        | EngineEvent::ConsoleData { node, .. }
        | EngineEvent::ConsoleStatus { node, .. }
        | EngineEvent::BootStatus { node, .. }
        | EngineEvent::Finished { node, .. } => node,
    }
}

/// Nodes added, removed, and changed in any way (BMC, images, console).
fn diff(old: &Lab, new: &Lab) -> Reloaded {
    let key = |lab: &Lab, n: &crate::inventory::Node| {
        let mut v = serde_json::to_value(n).unwrap_or_default();
        v["console_always_effective"] = json!(lab.console_always.of(n));
        v
    };
    let mut report = Reloaded::default();
    for n in &new.nodes {
        match old.node(&n.name) {
            None => report.added.push(n.name.clone()),
            Some(o) if key(old, o) != key(new, n) => report.changed.push(n.name.clone()),
            Some(_) => {}
        }
    }
    for o in &old.nodes {
        if new.node(&o.name).is_none() {
            report.removed.push(o.name.clone());
        }
    }
    report
}

/// Binds the socket, refusing to take over one a live service answers on;
/// a stale one (its service died) is replaced. Mode 0660, owned by the group.
async fn bind(path: &Path, group: Option<u32>) -> Result<UnixListener, ServiceError> {
    let err = |source| ServiceError::Socket {
        path: path.to_path_buf(),
        source,
    };
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(err)?;
    }
    if std::fs::symlink_metadata(path).is_ok() {
        if UnixStream::connect(path).await.is_ok() {
            return Err(ServiceError::Running(path.to_path_buf()));
        }
        std::fs::remove_file(path).map_err(err)?;
    }
    // Connecting needs write permission: with the usual umask (022) only
    // we can until the mode below opens it to the group.
    let listener = UnixListener::bind(path).map_err(err)?;
    if let Some(gid) = group {
        std::os::unix::fs::chown(path, None, Some(gid)).map_err(err)?;
        // The group must reach the socket: its directory gets the group and
        // g+x (search only: the files in it keep their own modes, 0600/0700).
        if let Some(dir) = path.parent() {
            let mode = std::fs::metadata(dir).map_err(err)?.permissions().mode();
            std::os::unix::fs::chown(dir, None, Some(gid)).map_err(err)?;
            std::fs::set_permissions(dir, std::fs::Permissions::from_mode(mode | 0o010))
                .map_err(err)?;
        }
    }
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o660)).map_err(err)?;
    Ok(listener)
}
