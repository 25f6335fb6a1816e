//! Ways to a host's serial console. Each gives a [`Console`]: keystrokes
//! in, host output and status out, so the engine's console (logs, stages,
//! redaction, the service's attach) does not care which one it is:
//!
//! - IPMI Serial-over-LAN ([`crate::ipmi::sol_driver`]);
//! - SSH to OpenBMC's obmc-console (port 2200) ([`ssh`]);
//! - bmcweb's `/console0` websocket after a Redfish login ([`websocket`]).
//!
//! SSH and websocket share one reconnecting driver ([`reconnect::spawn`]):
//! they only say how to connect and how to move bytes.

pub mod known_hosts;
pub mod reconnect;
pub mod ssh;
pub mod websocket;

use std::time::Duration;

use tokio::sync::mpsc;

#[derive(Debug)]
pub enum ConsoleInput {
    Data(Vec<u8>),
    Break,
    /// Reconnect now if the console is waiting out its backoff (someone is
    /// about to act on the host and wants to see it); nothing otherwise.
    RetryNow,
    Close,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConsoleEvent {
    Connected,
    Data(Vec<u8>),
    /// The console was lost and will be reopened after `after`.
    Reconnecting {
        reason: String,
        after: Duration,
    },
    /// The console ended for good.
    Closed {
        reason: String,
    },
}

/// A running console: send keystrokes in, read host output and status out.
pub struct Console {
    pub input: mpsc::Sender<ConsoleInput>,
    pub events: mpsc::Receiver<ConsoleEvent>,
}

/// Waits out a reconnection backoff; true when the user closed the console
/// meanwhile. [`ConsoleInput::RetryNow`] ends the wait early; keystrokes
/// are dropped (the host is not there to read them).
pub async fn wait_to_retry(inputs: &mut mpsc::Receiver<ConsoleInput>, backoff: Duration) -> bool {
    let sleep = tokio::time::sleep(backoff);
    tokio::pin!(sleep);
    loop {
        tokio::select! {
            () = &mut sleep => return false,
            input = inputs.recv() => match input {
                None | Some(ConsoleInput::Close) => return true,
                Some(ConsoleInput::RetryNow) => return false,
                Some(ConsoleInput::Data(_) | ConsoleInput::Break) => {}
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn retry_now_cuts_the_backoff_short_and_keystrokes_do_not() {
        let (tx, mut rx) = mpsc::channel(4);
        let waiter = tokio::spawn(async move {
            let started = tokio::time::Instant::now();
            let closed = wait_to_retry(&mut rx, Duration::from_secs(60)).await;
            (closed, started.elapsed())
        });
        tx.send(ConsoleInput::Data(b"x".to_vec())).await.unwrap();
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert!(!waiter.is_finished(), "a keystroke ended the wait");
        tx.send(ConsoleInput::RetryNow).await.unwrap();
        let (closed, waited) = waiter.await.unwrap();
        assert!(!closed);
        assert!(waited < Duration::from_secs(10), "{waited:?}");
    }

    #[tokio::test]
    async fn close_during_the_backoff_says_closed() {
        let (tx, mut rx) = mpsc::channel(4);
        tx.send(ConsoleInput::Close).await.unwrap();
        assert!(wait_to_retry(&mut rx, Duration::from_secs(60)).await);
        drop(tx);
        let (_tx, mut rx) = mpsc::channel::<ConsoleInput>(1);
        assert!(!wait_to_retry(&mut rx, Duration::from_millis(10)).await);
    }
}
