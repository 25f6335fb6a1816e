//! The client side: connect to a lab service's socket, call methods, read
//! its notifications (events, console output). Used by the CLI and the
//! dashboard; scripts can speak the same protocol (docs/service-api.md).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use futures::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::net::UnixStream;
use tokio::sync::{mpsc, oneshot};
use tokio_util::codec::{FramedRead, FramedWrite, LinesCodec};

use super::protocol::{MAX_REPLY, Message, Request, RpcError};

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error(
        "lab service socket {}: permission denied: user {user} may not connect (it is mode \
         0660 for its group; see `[service] group` in lab.toml)",
        path.display()
    )]
    Denied { path: PathBuf, user: String },
    #[error("lab service socket {}: {source}", path.display())]
    Connect {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("the lab service closed the connection")]
    Closed,
    /// The service answered with an error.
    #[error("{}", .0.message)]
    Rpc(RpcError),
}

type Pending = Arc<Mutex<HashMap<u64, oneshot::Sender<Result<Value, RpcError>>>>>;

/// A notification: its method (`event`, `console`, `console.writer`,
/// `lagged`) and params.
pub type Notification = (String, Value);

pub struct Client {
    out: mpsc::Sender<String>,
    pending: Pending,
    next: AtomicU64,
    notifications: Mutex<Option<mpsc::Receiver<Notification>>>,
    path: PathBuf,
}

impl Client {
    /// Connects; `Ok(None)` when nothing listens there (no socket, or a
    /// stale one a dead service left).
    pub async fn connect(path: &Path) -> Result<Option<Client>, ClientError> {
        let stream = match UnixStream::connect(path).await {
            Ok(s) => s,
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::NotFound | std::io::ErrorKind::ConnectionRefused
                ) =>
            {
                return Ok(None);
            }
            Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => {
                // SAFETY: getuid cannot fail.
                let user = crate::users::name_of(unsafe { libc::getuid() });
                return Err(ClientError::Denied {
                    path: path.to_path_buf(),
                    user,
                });
            }
            Err(source) => {
                return Err(ClientError::Connect {
                    path: path.to_path_buf(),
                    source,
                });
            }
        };
        let (read, write) = stream.into_split();
        let mut lines = FramedRead::new(read, LinesCodec::new_with_max_length(MAX_REPLY));
        let mut sink = FramedWrite::new(write, LinesCodec::new());
        let (out, mut outgoing) = mpsc::channel::<String>(256);
        tokio::spawn(async move {
            while let Some(line) = outgoing.recv().await {
                if sink.send(line).await.is_err() {
                    break;
                }
            }
        });
        let pending: Pending = Arc::default();
        let (notify, notifications) = mpsc::channel(4096);
        let waiting = pending.clone();
        tokio::spawn(async move {
            while let Some(Ok(line)) = lines.next().await {
                let Ok(message) = serde_json::from_str::<Message>(&line) else {
                    continue;
                };
                match (message.id.as_ref().and_then(Value::as_u64), message.method) {
                    (Some(id), _) => {
                        let result = match message.error {
                            Some(e) => Err(e),
                            None => Ok(message.result.unwrap_or(Value::Null)),
                        };
                        let waiter = waiting
                            .lock()
                            .unwrap_or_else(|p| p.into_inner())
                            .remove(&id);
                        if let Some(waiter) = waiter {
                            let _ = waiter.send(result);
                        }
                    }
                    (None, Some(method)) => {
                        let params = message.params.unwrap_or(Value::Null);
                        // Nobody reading notifications: they are not wanted.
                        let _ = notify.try_send((method, params));
                    }
                    // An error without an id: the service refused us.
                    (None, None) => {
                        if let Some(e) = message.error {
                            let all: Vec<_> = waiting
                                .lock()
                                .unwrap_or_else(|p| p.into_inner())
                                .drain()
                                .collect();
                            for (_, waiter) in all {
                                let _ = waiter.send(Err(e.clone()));
                            }
                        }
                    }
                }
            }
            // Gone: every call still waiting fails as closed.
            waiting.lock().unwrap_or_else(|p| p.into_inner()).clear();
        });
        Ok(Some(Client {
            out,
            pending,
            next: AtomicU64::new(1),
            notifications: Mutex::new(Some(notifications)),
            path: path.to_path_buf(),
        }))
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The notifications, once (later calls get `None`).
    pub fn notifications(&self) -> Option<mpsc::Receiver<Notification>> {
        self.notifications
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take()
    }

    pub async fn call(&self, method: &str, params: Value) -> Result<Value, ClientError> {
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = oneshot::channel();
        self.pending
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(id, tx);
        let request = Request {
            jsonrpc: "2.0".into(),
            id: Some(json!(id)),
            method: method.to_string(),
            params,
        };
        let line = serde_json::to_string(&request).unwrap_or_default();
        if self.out.send(line).await.is_err() {
            return Err(ClientError::Closed);
        }
        match rx.await {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(e)) => Err(ClientError::Rpc(e)),
            Err(_) => Err(ClientError::Closed),
        }
    }
}
