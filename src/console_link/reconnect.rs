//! The driver every byte-stream console shares: connect, pump bytes both
//! ways, and on a lost connection say so and reconnect with a doubling
//! backoff; a refusal that retrying cannot fix (bad credentials, a changed
//! host key) ends the console instead.

use std::future::Future;
use std::io;
use std::time::Duration;

use tokio::sync::mpsc;

use super::{Console, ConsoleEvent, ConsoleInput};

#[derive(Debug, Clone, Copy)]
pub struct LinkOptions {
    /// Reopen the console when the connection is lost.
    pub reconnect: bool,
    /// First wait before reconnecting; doubles up to `max_backoff`.
    pub min_backoff: Duration,
    pub max_backoff: Duration,
    /// Longest a connection attempt (TCP, handshake, login) may take.
    pub connect_timeout: Duration,
}

impl Default for LinkOptions {
    fn default() -> Self {
        LinkOptions {
            reconnect: true,
            min_backoff: Duration::from_millis(250),
            max_backoff: Duration::from_secs(10),
            connect_timeout: Duration::from_secs(10),
        }
    }
}

/// Why a connection attempt failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinkError {
    pub message: String,
    /// Retrying cannot help (wrong password, changed host key): the console
    /// ends with this message.
    pub fatal: bool,
}

impl LinkError {
    pub fn transient(message: impl Into<String>) -> LinkError {
        LinkError {
            message: message.into(),
            fatal: false,
        }
    }

    pub fn fatal(message: impl Into<String>) -> LinkError {
        LinkError {
            message: message.into(),
            fatal: true,
        }
    }
}

/// One open connection to a console.
pub trait Link: Send + 'static {
    /// The host's next bytes; `Ok(None)` when the far end closed. Must be
    /// cancel-safe: the driver drops it when a keystroke arrives first.
    fn read(&mut self) -> impl Future<Output = io::Result<Option<Vec<u8>>>> + Send;
    fn write(&mut self, bytes: &[u8]) -> impl Future<Output = io::Result<()>> + Send;
    /// A serial break, where the transport has one (an error where not).
    fn send_break(&mut self) -> impl Future<Output = io::Result<()>> + Send;
    /// Ends the connection politely (bounded by the caller).
    fn close(self) -> impl Future<Output = ()> + Send;
}

/// How to open a [`Link`]; called again for every reconnection.
pub trait Connector: Send + 'static {
    type Link: Link;
    fn connect(&mut self) -> impl Future<Output = Result<Self::Link, LinkError>> + Send;
}

/// Runs the console on its own task until it is closed (by
/// [`ConsoleInput::Close`] or by dropping the input sender) or ends for good.
pub fn spawn<C: Connector>(connector: C, options: LinkOptions) -> Console {
    let (input, inputs) = mpsc::channel(64);
    let (events_tx, events) = mpsc::channel(256);
    tokio::spawn(run(connector, options, inputs, events_tx));
    Console { input, events }
}

/// How one connected stretch ended.
enum Exit {
    /// The user closed the console (or dropped it), or nobody listens.
    User,
    /// The connection was lost: worth reopening.
    Lost(String),
}

async fn run<C: Connector>(
    mut connector: C,
    options: LinkOptions,
    mut inputs: mpsc::Receiver<ConsoleInput>,
    events: mpsc::Sender<ConsoleEvent>,
) {
    let mut backoff = options.min_backoff;
    let reason = loop {
        let attempt = tokio::select! {
            attempt = tokio::time::timeout(options.connect_timeout, connector.connect()) => attempt,
            () = closed(&mut inputs) => break "closed".to_string(),
        };
        let lost = match attempt {
            Err(_) => format!(
                "no connection within {} s",
                options.connect_timeout.as_secs()
            ),
            Ok(Err(e)) if e.fatal => break e.message,
            Ok(Err(e)) => e.message,
            Ok(Ok(mut link)) => {
                backoff = options.min_backoff;
                if events.send(ConsoleEvent::Connected).await.is_err() {
                    close(link).await;
                    break "closed".to_string();
                }
                match pump(&mut link, &mut inputs, &events).await {
                    Exit::User => {
                        close(link).await;
                        break "closed".to_string();
                    }
                    Exit::Lost(reason) => reason,
                }
            }
        };
        if !options.reconnect {
            break lost;
        }
        let event = ConsoleEvent::Reconnecting {
            reason: lost,
            after: backoff,
        };
        if events.send(event).await.is_err() {
            break "closed".to_string();
        }
        if super::wait_to_retry(&mut inputs, backoff).await {
            break "closed".to_string();
        }
        backoff = (backoff * 2).min(options.max_backoff);
    };
    let _ = events.send(ConsoleEvent::Closed { reason }).await;
}

/// Resolves when the user closes the console; keystrokes typed while it is
/// not connected are dropped (the host is not there to read them).
async fn closed(inputs: &mut mpsc::Receiver<ConsoleInput>) {
    loop {
        match inputs.recv().await {
            None | Some(ConsoleInput::Close) => return,
            Some(_) => {}
        }
    }
}

async fn close<L: Link>(link: L) {
    let _ = tokio::time::timeout(Duration::from_secs(2), link.close()).await;
}

async fn pump<L: Link>(
    link: &mut L,
    inputs: &mut mpsc::Receiver<ConsoleInput>,
    events: &mpsc::Sender<ConsoleEvent>,
) -> Exit {
    loop {
        tokio::select! {
            biased;
            input = inputs.recv() => match input {
                None | Some(ConsoleInput::Close) => return Exit::User,
                Some(ConsoleInput::Data(bytes)) => {
                    if let Err(e) = link.write(&bytes).await {
                        return Exit::Lost(format!("sending to the console: {e}"));
                    }
                }
                Some(ConsoleInput::Break) => {
                    if let Err(e) = link.send_break().await {
                        tracing::debug!(error = %e, "console break not sent");
                    }
                }
                Some(ConsoleInput::RetryNow) => {}
            },
            read = link.read() => match read {
                Ok(Some(bytes)) => {
                    if events.send(ConsoleEvent::Data(bytes)).await.is_err() {
                        return Exit::User;
                    }
                }
                Ok(None) => return Exit::Lost("the console closed the connection".into()),
                Err(e) => return Exit::Lost(format!("reading the console: {e}")),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::VecDeque;
    use std::sync::{Arc, Mutex};

    use super::*;

    /// A scripted transport: each connection yields its chunks then ends.
    struct Script {
        connections: VecDeque<Result<Vec<&'static [u8]>, LinkError>>,
        written: Arc<Mutex<Vec<u8>>>,
    }

    struct Scripted {
        chunks: VecDeque<&'static [u8]>,
        written: Arc<Mutex<Vec<u8>>>,
    }

    impl Link for Scripted {
        async fn read(&mut self) -> io::Result<Option<Vec<u8>>> {
            match self.chunks.pop_front() {
                Some(chunk) => Ok(Some(chunk.to_vec())),
                None => {
                    // Give keystrokes a moment before the far end hangs up.
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    Ok(None)
                }
            }
        }
        async fn write(&mut self, bytes: &[u8]) -> io::Result<()> {
            self.written.lock().unwrap().extend_from_slice(bytes);
            Ok(())
        }
        async fn send_break(&mut self) -> io::Result<()> {
            Err(io::Error::other("no break here"))
        }
        async fn close(self) {}
    }

    impl Connector for Script {
        type Link = Scripted;
        async fn connect(&mut self) -> Result<Scripted, LinkError> {
            match self.connections.pop_front() {
                Some(Ok(chunks)) => Ok(Scripted {
                    chunks: chunks.into(),
                    written: self.written.clone(),
                }),
                Some(Err(e)) => Err(e),
                None => std::future::pending().await,
            }
        }
    }

    fn options() -> LinkOptions {
        LinkOptions {
            min_backoff: Duration::from_millis(5),
            max_backoff: Duration::from_millis(20),
            ..LinkOptions::default()
        }
    }

    async fn next(console: &mut Console) -> ConsoleEvent {
        tokio::time::timeout(Duration::from_secs(5), console.events.recv())
            .await
            .expect("an event within 5 s")
            .expect("the console still runs")
    }

    #[tokio::test]
    async fn reconnects_after_the_far_end_hangs_up_and_after_a_failed_attempt() {
        let script = Script {
            connections: VecDeque::from([
                Ok(vec![&b"one"[..]]),
                Err(LinkError::transient("refused")),
                Ok(vec![&b"two"[..]]),
            ]),
            written: Arc::default(),
        };
        let mut console = spawn(script, options());
        assert_eq!(next(&mut console).await, ConsoleEvent::Connected);
        assert_eq!(
            next(&mut console).await,
            ConsoleEvent::Data(b"one".to_vec())
        );
        let ConsoleEvent::Reconnecting { reason, after } = next(&mut console).await else {
            panic!("expected a reconnection");
        };
        assert!(reason.contains("closed the connection"), "{reason}");
        assert_eq!(after, Duration::from_millis(5));
        let ConsoleEvent::Reconnecting { reason, after } = next(&mut console).await else {
            panic!("expected a second reconnection");
        };
        assert_eq!(
            (reason.as_str(), after),
            ("refused", Duration::from_millis(10))
        );
        assert_eq!(next(&mut console).await, ConsoleEvent::Connected);
        assert_eq!(
            next(&mut console).await,
            ConsoleEvent::Data(b"two".to_vec())
        );
    }

    #[tokio::test]
    async fn a_fatal_refusal_ends_the_console_with_its_reason() {
        let script = Script {
            connections: VecDeque::from([Err(LinkError::fatal("host key changed"))]),
            written: Arc::default(),
        };
        let mut console = spawn(script, options());
        assert_eq!(
            next(&mut console).await,
            ConsoleEvent::Closed {
                reason: "host key changed".into()
            }
        );
    }

    #[tokio::test]
    async fn keystrokes_reach_the_link_and_close_ends_it() {
        let written = Arc::new(Mutex::new(Vec::new()));
        let script = Script {
            connections: VecDeque::from([Ok(vec![&b"login: "[..]])]),
            written: written.clone(),
        };
        let mut console = spawn(script, options());
        assert_eq!(next(&mut console).await, ConsoleEvent::Connected);
        console
            .input
            .send(ConsoleInput::Data(b"root\r".to_vec()))
            .await
            .unwrap();
        assert_eq!(
            next(&mut console).await,
            ConsoleEvent::Data(b"login: ".to_vec())
        );
        console.input.send(ConsoleInput::Close).await.unwrap();
        loop {
            if let ConsoleEvent::Closed { reason } = next(&mut console).await {
                assert_eq!(reason, "closed");
                break;
            }
        }
        assert_eq!(written.lock().unwrap().as_slice(), b"root\r");
    }

    #[tokio::test]
    async fn close_while_connecting_ends_at_once() {
        let script = Script {
            connections: VecDeque::new(), // connect() never finishes
            written: Arc::default(),
        };
        let mut console = spawn(script, options());
        console.input.send(ConsoleInput::Close).await.unwrap();
        assert_eq!(
            next(&mut console).await,
            ConsoleEvent::Closed {
                reason: "closed".into()
            }
        );
    }
}
