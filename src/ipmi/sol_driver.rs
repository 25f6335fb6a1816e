//! The tokio side of a SOL console: opens the session, activates the SOL
//! payload (taking it over on request), moves bytes between the channel
//! and the state machine, keeps the session alive, and reconnects with
//! backoff when the BMC goes away (consoles stay open across power cycles).

use std::time::{Duration, Instant};

use tokio::sync::mpsc;

use super::error::{IpmiError, Result};
use super::message::{Response, netfn};
use super::packet::payload;
use super::rmcp::{Session, Target};
use super::sol::{SolConfig, SolEnd, SolMachine};

const ACTIVATE: u8 = 0x48;
const DEACTIVATE: u8 = 0x49;
const GET_DEVICE_ID: u8 = 0x01;
/// Payload type SOL, instance 1.
const SOL_INSTANCE: [u8; 2] = [0x01, 0x01];
/// Completion code: the payload is already active in another session.
const ALREADY_ACTIVE: u8 = 0x80;

#[derive(Debug, Clone, Copy)]
pub struct SolOptions {
    /// Deactivate a payload another session holds, then take it.
    pub force: bool,
    /// Reopen the console when the BMC goes away.
    pub reconnect: bool,
    /// Ping the BMC (Get Device ID) when no IPMI request has gone out for
    /// this long, however busy the console is.
    pub keepalive: Duration,
    /// Longest wait between reconnection attempts.
    pub max_backoff: Duration,
    pub machine: SolConfig,
}

impl Default for SolOptions {
    fn default() -> Self {
        SolOptions {
            force: false,
            reconnect: true,
            keepalive: Duration::from_secs(15),
            max_backoff: Duration::from_secs(10),
            machine: SolConfig::default(),
        }
    }
}

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

pub fn spawn(target: Target, options: SolOptions) -> Console {
    let (input, inputs) = mpsc::channel(64);
    let (events_tx, events) = mpsc::channel(256);
    tokio::spawn(run(target, options, inputs, events_tx));
    Console { input, events }
}

/// How one connected stretch ended.
enum Exit {
    /// The user closed the console (or dropped it).
    User,
    /// The BMC ended it on purpose; reconnecting would fight over it.
    Final(String),
    /// The connection was lost; worth reopening.
    Lost(String),
}

async fn run(
    target: Target,
    options: SolOptions,
    mut inputs: mpsc::Receiver<ConsoleInput>,
    events: mpsc::Sender<ConsoleEvent>,
) {
    let mut force = options.force;
    let mut backoff = Duration::from_millis(250);
    let reason = loop {
        let exit = match activate(&target, force).await {
            Ok((mut session, max_chunk)) => {
                backoff = Duration::from_millis(250);
                if events.send(ConsoleEvent::Connected).await.is_err() {
                    break deactivate(session).await;
                }
                let mut machine = options.machine;
                machine.max_chunk = machine.max_chunk.min(max_chunk);
                let exit = pump(&mut session, &options, machine, &mut inputs, &events).await;
                if matches!(exit, Exit::User) {
                    break deactivate(session).await;
                }
                exit
            }
            Err(e) if e.is_transient() => Exit::Lost(e.to_string()),
            Err(e) => Exit::Final(e.to_string()),
        };
        match exit {
            Exit::User => break "closed".to_string(),
            Exit::Final(reason) => break reason,
            Exit::Lost(reason) if !options.reconnect => break reason,
            Exit::Lost(reason) => {
                let event = ConsoleEvent::Reconnecting {
                    reason,
                    after: backoff,
                };
                if events.send(event).await.is_err() {
                    break "closed".to_string();
                }
                // Our own lost session may still hold the payload.
                force = true;
                tokio::select! {
                    _ = tokio::time::sleep(backoff) => {}
                    input = inputs.recv() => if matches!(input, None | Some(ConsoleInput::Close)) {
                        break "closed".to_string();
                    },
                }
                backoff = (backoff * 2).min(options.max_backoff);
            }
        }
    };
    let _ = events.send(ConsoleEvent::Closed { reason }).await;
}

/// Opens a session and activates SOL on it, deactivating a stale payload
/// first when forced. Returns the session and the most characters the BMC
/// takes per packet (ipmi_sim: 28).
async fn activate(target: &Target, force: bool) -> Result<(Session, usize)> {
    let mut session = Session::open(target).await?;
    // Aux data: encrypted and authenticated payload, alerts as configured.
    let request = [SOL_INSTANCE[0], SOL_INSTANCE[1], 0xC0, 0, 0, 0];
    let first = session
        .call(netfn::APP, ACTIVATE, &request, "Activate Payload (SOL)")
        .await;
    let reply = match first {
        Err(IpmiError::Completion {
            code: ALREADY_ACTIVE,
            ..
        }) if force => {
            let off = [SOL_INSTANCE[0], SOL_INSTANCE[1], 0, 0, 0, 0];
            session
                .call(netfn::APP, DEACTIVATE, &off, "Deactivate Payload (SOL)")
                .await?;
            session
                .call(netfn::APP, ACTIVATE, &request, "Activate Payload (SOL)")
                .await?
        }
        Err(IpmiError::Completion {
            code: ALREADY_ACTIVE,
            ..
        }) => {
            session.close().await;
            return Err(IpmiError::Protocol {
                command: "Activate Payload (SOL)",
                why: "SOL is already active in another session; take it over with --force".into(),
            });
        }
        other => other?,
    };
    // Reply: aux data (4), inbound payload size (2), outbound size (2), port, VLAN.
    let inbound = match reply.get(4..6) {
        Some(b) => u16::from_le_bytes([b[0], b[1]]) as usize,
        None => 0,
    };
    Ok((session, inbound.saturating_sub(4).max(1)))
}

async fn deactivate(mut session: Session) -> String {
    let off = [SOL_INSTANCE[0], SOL_INSTANCE[1], 0, 0, 0, 0];
    let _ = session
        .call(netfn::APP, DEACTIVATE, &off, "Deactivate Payload (SOL)")
        .await;
    session.close().await;
    "closed".to_string()
}

/// A keepalive request waiting for its answer.
struct Ping {
    rq_seq: u8,
    packet: Vec<u8>,
    due: Instant,
    resends: u32,
}

/// Moves bytes until the console ends. Every inbound datagram is sorted by
/// payload type here: SOL to the machine, IPMI to the keepalive.
async fn pump(
    session: &mut Session,
    options: &SolOptions,
    machine: SolConfig,
    inputs: &mut mpsc::Receiver<ConsoleInput>,
    events: &mpsc::Sender<ConsoleEvent>,
) -> Exit {
    let timing = session.timing();
    // A different first sequence each time (see SolMachine::new).
    let first_seq = 1 + super::crypto::random::<1>()[0] % 15;
    let mut machine = SolMachine::new(machine, first_seq);
    let mut ping: Option<Ping> = None;
    let mut buf = [0u8; 2048];
    loop {
        let now = Instant::now();
        while let Some(packet) = machine.poll_transmit(now) {
            if let Err(e) = session.send_payload(payload::SOL, &packet).await {
                return Exit::Lost(e.to_string());
            }
        }
        match machine.ended() {
            Some(SolEnd::Deactivated) => return Exit::Final(SolEnd::Deactivated.to_string()),
            Some(end) => return Exit::Lost(end.to_string()),
            None => {}
        }
        // A timer on requests, not on datagrams: a busy console sends only
        // SOL ACKs, which BMCs do not count as session activity.
        let keepalive_due = session.last_request() + options.keepalive;
        let wake = [
            machine.next_deadline(),
            ping.as_ref().map(|p| p.due),
            ping.is_none().then_some(keepalive_due),
        ]
        .into_iter()
        .flatten()
        .min()
        .unwrap_or(now + options.keepalive);
        tokio::select! {
            received = session.recv_payload(&mut buf) => match received {
                Ok(Some((payload::SOL, seq, sol))) => {
                    machine.receive(seq, &sol, Instant::now());
                    let output = machine.take_output();
                    if !output.is_empty() && events.send(ConsoleEvent::Data(output)).await.is_err() {
                        return Exit::User;
                    }
                }
                Ok(Some((payload::IPMI, _, message))) => {
                    let answered = Response::decode(&message)
                        .is_ok_and(|r| ping.as_ref().is_some_and(|p| p.rq_seq == r.rq_seq));
                    if answered {
                        ping = None;
                    }
                }
                Ok(_) => {}
                Err(e) => return Exit::Lost(e.to_string()),
            },
            input = inputs.recv() => match input {
                Some(ConsoleInput::Data(bytes)) => machine.write(&bytes),
                Some(ConsoleInput::Break) => machine.send_break(),
                Some(ConsoleInput::Close) | None => return Exit::User,
            },
            _ = tokio::time::sleep_until(wake.into()) => {
                let now = Instant::now();
                match ping.as_mut() {
                    Some(p) if now >= p.due => {
                        if p.resends >= timing.retries {
                            return Exit::Lost("the BMC stopped answering (keepalive)".into());
                        }
                        p.resends += 1;
                        p.due = now + timing.timeout;
                        let packet = p.packet.clone();
                        if let Err(e) = session.send_payload(payload::IPMI, &packet).await {
                            return Exit::Lost(e.to_string());
                        }
                    }
                    None if now >= keepalive_due => {
                        let request = session.next_request(netfn::APP, GET_DEVICE_ID, &[]);
                        let packet = request.encode();
                        if let Err(e) = session.send_payload(payload::IPMI, &packet).await {
                            return Exit::Lost(e.to_string());
                        }
                        ping = Some(Ping {
                            rq_seq: request.rq_seq,
                            packet,
                            due: now + timing.timeout,
                            resends: 0,
                        });
                    }
                    _ => {}
                }
            }
        }
    }
}
