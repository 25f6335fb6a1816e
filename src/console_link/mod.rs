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
