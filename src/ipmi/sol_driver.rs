//! The tokio side of a SOL console: opens the session, activates the SOL
//! payload (taking it over on request), moves bytes between the channel
//! and the state machine, keeps the session alive, and reconnects with
//! backoff when the BMC goes away (consoles stay open across power cycles).
//! Other IPMI requests can ride in the console's session ([`CallHandle`]),
//! so a poller needs no second session on the BMC.

use std::time::{Duration, Instant};

use tokio::sync::{mpsc, oneshot};

use super::error::{IpmiError, Result};
use super::link::completion;
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

pub use crate::console_link::{Console, ConsoleEvent, ConsoleInput};

/// Requests that may wait for the console's session; more make
/// [`CallHandle::call`] wait for room.
const CALL_QUEUE: usize = 16;

/// One IPMI request for the console's session.
struct Call {
    netfn: u8,
    cmd: u8,
    data: Vec<u8>,
    command: &'static str,
    reply: oneshot::Sender<Result<Vec<u8>>>,
}

/// Sends IPMI requests through a console's session (see
/// [`spawn_with_calls`]). Clonable; every clone talks to the same console.
#[derive(Clone, Debug)]
pub struct CallHandle {
    calls: mpsc::Sender<Call>,
}

/// The console's end of a [`CallHandle`]: give it to [`spawn_with_calls`].
/// Until then calls wait (nothing answers them); once the console has ended
/// they are answered [`IpmiError::ConsoleNotConnected`].
#[derive(Debug)]
pub struct CallReceiver {
    calls: mpsc::Receiver<Call>,
}

impl std::fmt::Debug for Call {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Call({})", self.command)
    }
}

/// A handle for requests and the receiver a console serves them from.
pub fn call_channel() -> (CallHandle, CallReceiver) {
    let (calls, receiver) = mpsc::channel(CALL_QUEUE);
    (CallHandle { calls }, CallReceiver { calls: receiver })
}

impl CallHandle {
    /// Sends one request in the console's session and returns the response
    /// data, as [`Session::call`] does (same timeout and retries, non-zero
    /// completion codes become [`IpmiError::Completion`]). One request is
    /// in flight at a time; the others queue (up to 16, then the caller
    /// waits). While the console is not connected, or once it has ended,
    /// the answer is at once [`IpmiError::ConsoleNotConnected`]. A request
    /// left unanswered when the console ends gets [`IpmiError::Protocol`]
    /// (the BMC may have carried it out), and one the BMC never answers gets
    /// [`IpmiError::Timeout`] and ends that console connection (it
    /// reconnects if allowed), as an unanswered keepalive does.
    pub async fn call(
        &self,
        netfn: u8,
        cmd: u8,
        data: &[u8],
        command: &'static str,
    ) -> Result<Vec<u8>> {
        let (reply, answer) = oneshot::channel();
        let call = Call {
            netfn,
            cmd,
            data: data.to_vec(),
            command,
            reply,
        };
        self.calls
            .send(call)
            .await
            .map_err(|_| IpmiError::ConsoleNotConnected)?;
        answer.await.map_err(|_| IpmiError::ConsoleNotConnected)?
    }
}

impl Call {
    fn refuse(self) {
        let _ = self.reply.send(Err(IpmiError::ConsoleNotConnected));
    }
}

pub fn spawn(target: Target, options: SolOptions) -> Console {
    // Nobody holds the handle, so no call ever arrives.
    spawn_with_calls(target, options, call_channel().1)
}

/// [`spawn`], also serving requests sent through `calls`' [`CallHandle`]s
/// in the console's session while it is connected.
pub fn spawn_with_calls(target: Target, options: SolOptions, calls: CallReceiver) -> Console {
    let (input, inputs) = mpsc::channel(64);
    let (events_tx, events) = mpsc::channel(256);
    tokio::spawn(run(target, options, inputs, calls.calls, events_tx));
    Console { input, events }
}

/// Answers every call that arrives while `work` runs with
/// [`IpmiError::ConsoleNotConnected`], then returns `work`'s result.
async fn refusing_calls<T>(
    calls: &mut mpsc::Receiver<Call>,
    work: impl std::future::Future<Output = T>,
) -> T {
    tokio::pin!(work);
    loop {
        tokio::select! {
            done = &mut work => return done,
            Some(call) = calls.recv() => call.refuse(),
        }
    }
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
    mut calls: mpsc::Receiver<Call>,
    events: mpsc::Sender<ConsoleEvent>,
) {
    let mut force = options.force;
    let mut backoff = Duration::from_millis(250);
    let reason = loop {
        let activation = refusing_calls(&mut calls, activate(&target, force)).await;
        let exit = match activation {
            Ok((mut session, max_chunk)) => {
                backoff = Duration::from_millis(250);
                let connected = events.send(ConsoleEvent::Connected);
                if refusing_calls(&mut calls, connected).await.is_err() {
                    break refusing_calls(&mut calls, deactivate(session)).await;
                }
                let mut machine = options.machine;
                machine.max_chunk = machine.max_chunk.min(max_chunk);
                let mut io = Io {
                    inputs: &mut inputs,
                    calls: &mut calls,
                    events: &events,
                };
                let exit = pump(&mut session, &options, machine, &mut io).await;
                if matches!(exit, Exit::User) {
                    break refusing_calls(&mut calls, deactivate(session)).await;
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
                if refusing_calls(&mut calls, events.send(event))
                    .await
                    .is_err()
                {
                    break "closed".to_string();
                }
                // Our own lost session may still hold the payload.
                force = true;
                let wait = crate::console_link::wait_to_retry(&mut inputs, backoff);
                if refusing_calls(&mut calls, wait).await {
                    break "closed".to_string();
                }
                backoff = (backoff * 2).min(options.max_backoff);
            }
        }
    };
    // Calls still queued get ConsoleNotConnected when `calls` drops.
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

/// What [`deactivate_payload`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Deactivation {
    /// The SOL payload was active (in whichever session) and is now free.
    Deactivated,
    /// Nothing to free: the BMC answered "payload already deactivated"
    /// (completion code 0x80, from ipmi_sim and our simulator alike).
    WasInactive,
}

/// Completion code of Deactivate Payload when the payload is not active
/// (IPMI 2.0 §24.3).
const ALREADY_DEACTIVATED: u8 = 0x80;

/// Frees the BMC's SOL payload (instance 1) from a fresh session without
/// attaching, as `ipmitool sol deactivate` does: for a payload a killed
/// console left active. Idempotent.
pub async fn deactivate_payload(target: &Target) -> Result<Deactivation> {
    let mut session = Session::open(target).await?;
    let off = [SOL_INSTANCE[0], SOL_INSTANCE[1], 0, 0, 0, 0];
    let answer = session
        .call(netfn::APP, DEACTIVATE, &off, "Deactivate Payload (SOL)")
        .await;
    session.close().await;
    match answer {
        Ok(_) => Ok(Deactivation::Deactivated),
        Err(IpmiError::Completion {
            code: ALREADY_DEACTIVATED,
            ..
        }) => Ok(Deactivation::WasInactive),
        Err(e) => Err(e),
    }
}

async fn deactivate(mut session: Session) -> String {
    let off = [SOL_INSTANCE[0], SOL_INSTANCE[1], 0, 0, 0, 0];
    let _ = session
        .call(netfn::APP, DEACTIVATE, &off, "Deactivate Payload (SOL)")
        .await;
    session.close().await;
    "closed".to_string()
}

/// The console's channels, as the pump sees them.
struct Io<'a> {
    inputs: &'a mut mpsc::Receiver<ConsoleInput>,
    calls: &'a mut mpsc::Receiver<Call>,
    events: &'a mpsc::Sender<ConsoleEvent>,
}

/// Whose answer an in-flight request is waiting for.
enum Asker {
    /// Our keepalive (Get Device ID).
    Keepalive,
    /// A [`CallHandle`] caller.
    Caller {
        command: &'static str,
        reply: oneshot::Sender<Result<Vec<u8>>>,
    },
}

/// The one IPMI request in flight in the console's session.
struct InFlight {
    rq_seq: u8,
    cmd: u8,
    packet: Vec<u8>,
    due: Instant,
    resends: u32,
    asker: Asker,
}

impl InFlight {
    fn command(&self) -> &'static str {
        match &self.asker {
            Asker::Keepalive => "keepalive",
            Asker::Caller { command, .. } => command,
        }
    }

    /// The console ends with this request unanswered: the BMC may have
    /// carried it out, so the caller must not simply resend it elsewhere.
    fn abandon(self) {
        if let Asker::Caller { command, reply } = self.asker {
            let why = "the console session ended before the BMC answered".into();
            let _ = reply.send(Err(IpmiError::Protocol { command, why }));
        }
    }
}

/// Sends a request (a caller's or the keepalive) as an IPMI payload.
async fn send_request(
    session: &mut Session,
    (netfn, cmd, data): (u8, u8, &[u8]),
    asker: Asker,
    timeout: Duration,
) -> std::result::Result<InFlight, (String, InFlight)> {
    let request = session.next_request(netfn, cmd, data);
    let packet = request.encode();
    let sent = session.send_payload(payload::IPMI, &packet).await;
    let flight = InFlight {
        rq_seq: request.rq_seq,
        cmd,
        packet,
        due: Instant::now() + timeout,
        resends: 0,
        asker,
    };
    match sent {
        Ok(()) => Ok(flight),
        Err(e) => Err((e.to_string(), flight)),
    }
}

/// Moves bytes until the console ends. Every inbound datagram is sorted by
/// payload type here: SOL to the machine, IPMI to the request in flight
/// (the keepalive's or a caller's).
async fn pump(
    session: &mut Session,
    options: &SolOptions,
    machine: SolConfig,
    io: &mut Io<'_>,
) -> Exit {
    let mut flight: Option<InFlight> = None;
    let exit = pump_with(session, options, machine, io, &mut flight).await;
    if let Some(flight) = flight {
        flight.abandon();
    }
    exit
}

async fn pump_with(
    session: &mut Session,
    options: &SolOptions,
    machine: SolConfig,
    io: &mut Io<'_>,
    flight: &mut Option<InFlight>,
) -> Exit {
    let timing = session.timing();
    // A different first sequence each time (see SolMachine::new).
    let first_seq = 1 + super::crypto::random::<1>()[0] % 15;
    let mut machine = SolMachine::new(machine, first_seq);
    let mut buf = [0u8; 2048];
    // When the BMC last sent anything in this session: a request it leaves
    // unanswered while it goes on talking does not mean the session died.
    let mut last_heard = Instant::now();
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
        // SOL ACKs, which BMCs do not count as session activity. A caller's
        // request counts as much as the keepalive's.
        let keepalive_due = session.last_request() + options.keepalive;
        let wake = [
            machine.next_deadline(),
            flight.as_ref().map(|p| p.due),
            flight.is_none().then_some(keepalive_due),
        ]
        .into_iter()
        .flatten()
        .min()
        .unwrap_or(now + options.keepalive);
        let idle = flight.is_none();
        tokio::select! {
            received = session.recv_payload(&mut buf) => match received {
                Ok(Some((payload::SOL, seq, sol))) => {
                    last_heard = Instant::now();
                    machine.receive(seq, &sol, last_heard);
                    let output = machine.take_output();
                    if !output.is_empty() && io.events.send(ConsoleEvent::Data(output)).await.is_err() {
                        return Exit::User;
                    }
                }
                Ok(Some((payload::IPMI, _, message))) => {
                    last_heard = Instant::now();
                    let Ok(response) = Response::decode(&message) else { continue };
                    let answers = flight
                        .as_ref()
                        .is_some_and(|f| f.rq_seq == response.rq_seq && f.cmd == response.cmd);
                    if answers && let Some(done) = flight.take()
                        && let Asker::Caller { command, reply } = done.asker
                    {
                        let _ = reply.send(completion(response, command));
                    }
                }
                Ok(_) => {}
                Err(e) => return Exit::Lost(e.to_string()),
            },
            input = io.inputs.recv() => match input {
                Some(ConsoleInput::Data(bytes)) => machine.write(&bytes),
                Some(ConsoleInput::Break) => machine.send_break(),
                Some(ConsoleInput::RetryNow) => {}
                Some(ConsoleInput::Close) | None => return Exit::User,
            },
            // One request in flight; the rest wait in the bounded channel.
            Some(call) = io.calls.recv(), if idle => {
                let asker = Asker::Caller { command: call.command, reply: call.reply };
                let request = (call.netfn, call.cmd, &call.data[..]);
                match send_request(session, request, asker, timing.timeout).await {
                    Ok(sent) => *flight = Some(sent),
                    Err((why, sent)) => {
                        *flight = Some(sent);
                        return Exit::Lost(why);
                    }
                }
            },
            _ = tokio::time::sleep_until(wake.into()) => {
                let now = Instant::now();
                match flight.as_mut() {
                    Some(f) if now >= f.due => {
                        if f.resends >= timing.retries {
                            let why = format!("the BMC stopped answering ({})", f.command());
                            let sent = f.due - timing.timeout * (timing.retries + 1);
                            if let Some(done) = flight.take()
                                && let Asker::Caller { command, reply } = done.asker
                            {
                                let _ = reply.send(Err(IpmiError::Timeout {
                                    addr: session.addr(),
                                    tries: timing.retries + 1,
                                    step: command,
                                }));
                            }
                            // Still talking (console output, other answers):
                            // the request failed, the session lives on.
                            if last_heard > sent {
                                continue;
                            }
                            return Exit::Lost(why);
                        }
                        f.resends += 1;
                        f.due = now + timing.timeout;
                        let packet = f.packet.clone();
                        if let Err(e) = session.send_payload(payload::IPMI, &packet).await {
                            return Exit::Lost(e.to_string());
                        }
                    }
                    None if now >= keepalive_due => {
                        let request = (netfn::APP, GET_DEVICE_ID, &[][..]);
                        match send_request(session, request, Asker::Keepalive, timing.timeout).await {
                            Ok(sent) => *flight = Some(sent),
                            Err((why, _)) => return Exit::Lost(why),
                        }
                    }
                    _ => {}
                }
            }
        }
    }
}

#[cfg(test)]
#[path = "sol_driver_tests.rs"]
mod tests;
