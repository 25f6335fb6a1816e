//! Serial-over-LAN, console side (IPMI 2.0 §15): an I/O-free state machine.
//! The driver (sol_driver.rs) feeds it inbound SOL payloads, keystrokes and
//! the clock, and sends what `poll_transmit` returns.
//!
//! One data packet is in flight at a time; it is resent with the same
//! sequence number until the BMC acknowledges it. Every BMC data packet is
//! acknowledged; a repeated one is acknowledged again but not delivered twice.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// Operation/status bits, BMC → console.
pub mod status {
    pub const NACK: u8 = 0x40;
    pub const TRANSFER_UNAVAILABLE: u8 = 0x20;
    pub const DEACTIVATING: u8 = 0x10;
    /// Console → BMC: send a break on the host's serial line.
    pub const GENERATE_BREAK: u8 = 0x10;
}

#[derive(Debug, Clone, Copy)]
pub struct SolConfig {
    /// Resend an unacknowledged packet after this long.
    pub retransmit_after: Duration,
    /// Give up (connection lost) after this many resends of one packet.
    pub max_retransmits: u32,
    /// Most characters per packet (the BMC's inbound payload size - 4).
    pub max_chunk: usize,
    /// How long to hold back after "character transfer unavailable".
    pub pause: Duration,
}

impl Default for SolConfig {
    fn default() -> Self {
        SolConfig {
            retransmit_after: Duration::from_millis(500),
            max_retransmits: 8,
            max_chunk: 200,
            pause: Duration::from_millis(100),
        }
    }
}

/// Why the machine stopped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SolEnd {
    /// The BMC set "SOL deactivating": someone took the console over, or SOL
    /// was disabled. Not worth reconnecting to.
    Deactivated,
    /// A packet went unacknowledged through every resend.
    NoAck { retransmits: u32 },
}

impl std::fmt::Display for SolEnd {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SolEnd::Deactivated => f.write_str(
                "the BMC deactivated SOL (another console took it over, or SOL was disabled)",
            ),
            SolEnd::NoAck { retransmits } => write!(
                f,
                "the BMC stopped acknowledging console data ({retransmits} resends)"
            ),
        }
    }
}

struct InFlight {
    packet: Vec<u8>,
    /// Characters in the packet, to requeue what the BMC did not accept.
    data: Vec<u8>,
    due: Instant,
    resends: u32,
}

pub struct SolMachine {
    config: SolConfig,
    next_seq: u8,
    in_flight: Option<InFlight>,
    queue: VecDeque<u8>,
    break_requested: bool,
    last_inbound_seq: u8,
    /// Session sequence number of the newest SOL packet taken.
    newest_session_seq: u32,
    paused_until: Option<Instant>,
    acks: VecDeque<Vec<u8>>,
    received: Vec<u8>,
    ended: Option<SolEnd>,
    /// Inbound payloads too short to be SOL packets.
    pub malformed: u64,
    /// Inbound packets overtaken by a newer one, ignored.
    pub stale: u64,
}

fn next(seq: u8) -> u8 {
    if seq >= 15 { 1 } else { seq + 1 }
}

impl SolMachine {
    /// `first_seq` (1–15) should differ between activations: ipmi_sim keeps
    /// the last sequence it saw across activations and drops a repeat.
    pub fn new(config: SolConfig, first_seq: u8) -> SolMachine {
        SolMachine {
            config,
            next_seq: first_seq.clamp(1, 15),
            in_flight: None,
            queue: VecDeque::new(),
            break_requested: false,
            last_inbound_seq: 0,
            newest_session_seq: 0,
            paused_until: None,
            acks: VecDeque::new(),
            received: Vec::new(),
            ended: None,
            malformed: 0,
            stale: 0,
        }
    }

    /// Keystrokes for the host.
    pub fn write(&mut self, bytes: &[u8]) {
        self.queue.extend(bytes);
    }

    pub fn send_break(&mut self) {
        self.break_requested = true;
    }

    pub fn ended(&self) -> Option<&SolEnd> {
        self.ended.as_ref()
    }

    /// Nothing queued, in flight or waiting to be acknowledged.
    pub fn is_idle(&self) -> bool {
        self.in_flight.is_none() && self.queue.is_empty() && self.acks.is_empty()
    }

    /// Host output received so far, handed over once.
    pub fn take_output(&mut self) -> Vec<u8> {
        std::mem::take(&mut self.received)
    }

    /// One inbound SOL payload (already decrypted) with the session
    /// sequence number it came under.
    ///
    /// SOL packets are taken in session order only: a resend the network
    /// delayed past the BMC's next packet carries an older session number
    /// but a packet sequence number that no longer matches the last one,
    /// and would otherwise be delivered twice.
    pub fn receive(&mut self, session_seq: u32, payload: &[u8], now: Instant) {
        let [seq, ack, accepted, status, ..] = *payload else {
            self.malformed += 1;
            return;
        };
        if session_seq <= self.newest_session_seq {
            self.stale += 1;
            return;
        }
        self.newest_session_seq = session_seq;
        let (seq, ack, data) = (seq & 0x0F, ack & 0x0F, &payload[4..]);
        if ack != 0 {
            self.on_ack(ack, accepted, status, now);
        }
        if seq != 0 {
            if seq != self.last_inbound_seq {
                self.received.extend_from_slice(data);
                self.last_inbound_seq = seq;
            }
            // Acknowledge repeats too: our first ACK may have been lost.
            self.acks.push_back(vec![0, seq, data.len() as u8, 0]);
        }
        if status & status::DEACTIVATING != 0 {
            self.ended = Some(SolEnd::Deactivated);
        }
    }

    fn on_ack(&mut self, ack: u8, accepted: u8, status: u8, now: Instant) {
        let Some(flight) = self.in_flight.as_mut() else {
            return;
        };
        if flight.packet[0] != ack {
            return; // an ACK for an older packet, already handled
        }
        if status & status::NACK != 0 {
            // Not accepted: resend the same packet after a pause if the
            // BMC says it cannot take characters now.
            let wait = if status & status::TRANSFER_UNAVAILABLE != 0 {
                self.paused_until = Some(now + self.config.pause);
                self.config.pause
            } else {
                Duration::ZERO
            };
            flight.due = now + wait;
            return;
        }
        let flight = self.in_flight.take().expect("checked above");
        let accepted = (accepted as usize).min(flight.data.len());
        // What the BMC did not take goes first in the next packet.
        for &b in flight.data[accepted..].iter().rev() {
            self.queue.push_front(b);
        }
        self.paused_until = None;
    }

    /// The next payload to send now, if any: ACKs first, then a resend or a
    /// new data packet.
    pub fn poll_transmit(&mut self, now: Instant) -> Option<Vec<u8>> {
        if self.ended.is_some() {
            return None;
        }
        if let Some(ack) = self.acks.pop_front() {
            return Some(ack);
        }
        if let Some(flight) = self.in_flight.as_mut() {
            if now < flight.due {
                return None;
            }
            if flight.resends >= self.config.max_retransmits {
                self.ended = Some(SolEnd::NoAck {
                    retransmits: flight.resends,
                });
                return None;
            }
            flight.resends += 1;
            flight.due = now + self.config.retransmit_after;
            return Some(flight.packet.clone());
        }
        if self.paused_until.is_some_and(|until| now < until) {
            return None;
        }
        if self.queue.is_empty() && !self.break_requested {
            return None;
        }
        let take = self.queue.len().min(self.config.max_chunk.max(1));
        let data: Vec<u8> = self.queue.drain(..take).collect();
        let status = if std::mem::take(&mut self.break_requested) {
            status::GENERATE_BREAK
        } else {
            0
        };
        let seq = self.next_seq;
        self.next_seq = next(seq);
        let mut packet = vec![seq, 0, 0, status];
        packet.extend_from_slice(&data);
        self.in_flight = Some(InFlight {
            packet: packet.clone(),
            data,
            due: now + self.config.retransmit_after,
            resends: 0,
        });
        Some(packet)
    }

    /// When `poll_transmit` next has something to do, if ever.
    pub fn next_deadline(&self) -> Option<Instant> {
        if !self.acks.is_empty() {
            return Some(Instant::now());
        }
        match &self.in_flight {
            Some(flight) => Some(flight.due),
            None if !self.queue.is_empty() || self.break_requested => self.paused_until,
            None => None,
        }
    }
}

#[cfg(test)]
#[path = "sol_tests.rs"]
mod tests;
