//! The BMC's Serial-over-LAN payload (IPMI 2.0 §15), I/O-free: one instance
//! per BMC, owned by at most one session. Host output goes out in data
//! packets, one in flight, retransmitted until ACKed; console packets are
//! ACKed and their data handed to the host once, duplicates dropped.
//! The session layer seals what this module returns and addresses it.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use super::serial::SerialInput;

/// Largest SOL payload either way (header included): what we announce in
/// Activate Payload, and one byte's worth of accepted-character count.
pub const PAYLOAD_SIZE: u16 = 255;
const MAX_DATA: usize = PAYLOAD_SIZE as usize - 4;
/// Retransmit an unACKed packet after this long...
pub const RETRY_INTERVAL: Duration = Duration::from_millis(500);
/// ...until it has been sent this often; then the console is gone.
pub const MAX_SENDS: u32 = 5;
/// Host output buffered while the console is slow; beyond it the oldest
/// bytes are lost and the next packet reports a transmit overrun.
const PENDING_CAP: usize = 64 * 1024;

/// Status bits, BMC → console (IPMI 2.0 table 15-2). This BMC never NACKs
/// (the host takes any amount) nor reports breaks or unavailability.
pub mod status {
    pub const DEACTIVATING: u8 = 0x10;
    pub const TRANSMIT_OVERRUN: u8 = 0x08;
}

/// Operation bits, console → BMC. "Flush inbound" (0x02) needs nothing:
/// console data reaches the host at once.
pub mod op {
    pub const NACK: u8 = 0x40;
    pub const GENERATE_BREAK: u8 = 0x10;
    pub const CTS_PAUSE: u8 = 0x08;
    pub const FLUSH_OUTBOUND: u8 = 0x01;
}

/// One SOL packet: header fields and character data.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Packet {
    /// 1..=15 for packets carrying data (or a break); 0 for ACK-only.
    pub seq: u8,
    /// The sequence number this packet ACKs or NACKs; 0 for none.
    pub ack: u8,
    /// How many characters of the ACKed packet were accepted.
    pub accepted: u8,
    pub status: u8,
    pub data: Vec<u8>,
}

impl Packet {
    pub fn decode(bytes: &[u8]) -> Option<Packet> {
        let (&[seq, ack, accepted, status], data) = bytes.split_first_chunk::<4>()?;
        Some(Packet {
            seq: seq & 0x0F,
            ack: ack & 0x0F,
            accepted,
            status,
            data: data.to_vec(),
        })
    }

    pub fn encode(&self) -> Vec<u8> {
        let header = [self.seq, self.ack, self.accepted, self.status];
        [&header[..], &self.data].concat()
    }

    /// An ACK-only packet.
    pub fn ack(seq: u8, accepted: usize, status: u8) -> Packet {
        let accepted = accepted.min(usize::from(u8::MAX)) as u8;
        Packet {
            ack: seq,
            accepted,
            status,
            ..Packet::default()
        }
    }
}

/// What the session layer must do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Effect {
    /// Seal this SOL payload for that session and send it to its console.
    Send { session: u32, packet: Packet },
    /// Hand this to the host's serial port.
    Serial(SerialInput),
}

/// The sequence number after `seq`: 1..=15, wrapping 15 → 1.
pub fn next_seq(seq: u8) -> u8 {
    if seq >= 15 { 1 } else { seq + 1 }
}

#[derive(Debug)]
struct InFlight {
    packet: Packet,
    sent_at: Instant,
    sends: u32,
}

#[derive(Debug)]
struct Activation {
    session: u32,
    retry: Duration,
    /// The last outbound sequence number used (0: none yet).
    seq: u8,
    in_flight: Option<InFlight>,
    pending: VecDeque<u8>,
    overrun: bool,
    /// After a NACK, nothing new goes out before this.
    hold_until: Option<Instant>,
    /// The console deasserted CTS: it wants no new data for now.
    paused: bool,
    /// The sequence number of the last console packet accepted: a packet
    /// repeating it is a retransmission, ACKed again but not delivered.
    last_inbound: Option<u8>,
    /// Session sequence number of the newest console packet taken: SOL is
    /// taken in session order, so a resend the network delayed past the
    /// console's next packet is not delivered twice.
    newest_session_seq: u32,
}

impl Activation {
    fn new(session: u32, retry: Duration) -> Activation {
        Activation {
            session,
            retry,
            seq: 0,
            in_flight: None,
            pending: VecDeque::new(),
            overrun: false,
            hold_until: None,
            paused: false,
            last_inbound: None,
            newest_session_seq: 0,
        }
    }

    /// The console ACKed (or NACKed) a packet of ours.
    fn on_ack(&mut self, ack: u8, accepted: u8, nack: bool, now: Instant) {
        let Some(f) = self.in_flight.take_if(|f| f.packet.seq == ack) else {
            return; // stale or unknown: nothing in flight has that number
        };
        let accepted = usize::from(accepted).min(f.packet.data.len());
        for &b in f.packet.data[accepted..].iter().rev() {
            self.pending.push_front(b);
        }
        if nack {
            self.hold_until = Some(now + self.retry);
        }
    }

    /// Starts the next data packet if the line is free.
    fn pump(&mut self, now: Instant, out: &mut Vec<Effect>) {
        let held = self.hold_until.is_some_and(|t| now < t);
        if self.in_flight.is_some() || self.paused || held || self.pending.is_empty() {
            return;
        }
        self.hold_until = None;
        self.seq = next_seq(self.seq);
        let take = self.pending.len().min(MAX_DATA);
        let status = if std::mem::take(&mut self.overrun) {
            status::TRANSMIT_OVERRUN
        } else {
            0
        };
        let packet = Packet {
            seq: self.seq,
            status,
            data: self.pending.drain(..take).collect(),
            ..Packet::default()
        };
        out.push(self.send(packet.clone()));
        self.in_flight = Some(InFlight {
            packet,
            sent_at: now,
            sends: 1,
        });
    }

    fn send(&self, packet: Packet) -> Effect {
        Effect::Send {
            session: self.session,
            packet,
        }
    }
}

/// The SOL payload instance (there is one, instance 1).
#[derive(Debug)]
pub struct Sol {
    active: Option<Activation>,
    /// Resend an unacknowledged packet after this long.
    retry: Duration,
}

impl Default for Sol {
    fn default() -> Self {
        Sol::new(RETRY_INTERVAL)
    }
}

impl Sol {
    /// Tests on a lossy link shorten `retry` to keep them quick.
    pub fn new(retry: Duration) -> Sol {
        Sol {
            active: None,
            retry,
        }
    }

    /// The session the payload is active for.
    pub fn owner(&self) -> Option<u32> {
        self.active.as_ref().map(|a| a.session)
    }

    /// Activates the payload for `session`; `Err(0x80)` if already active.
    pub fn activate(&mut self, session: u32) -> Result<(), u8> {
        if self.active.is_some() {
            return Err(0x80);
        }
        self.active = Some(Activation::new(session, self.retry));
        Ok(())
    }

    /// Deactivates the payload at `session`'s request; `Err(0x80)` if not
    /// active. Taken from another session, that session is told so (once).
    pub fn deactivate(&mut self, session: u32) -> Result<Vec<Effect>, u8> {
        let old = self.active.take().ok_or(0x80)?;
        if old.session == session {
            return Ok(vec![]);
        }
        let notice = Packet {
            status: status::DEACTIVATING,
            ..Packet::default()
        };
        Ok(vec![old.send(notice)])
    }

    /// The session is gone (closed, expired, evicted): its payload too.
    pub fn end_session(&mut self, session: u32) {
        self.active.take_if(|a| a.session == session);
    }

    /// A SOL packet from `session`, verified and decrypted, with the session
    /// sequence number it came under.
    pub fn on_packet(
        &mut self,
        session: u32,
        session_seq: u32,
        body: &[u8],
        now: Instant,
    ) -> Vec<Effect> {
        let mut out = Vec::new();
        let Some(a) = self.active.as_mut().filter(|a| a.session == session) else {
            return out; // not activated here: ignored, as OpenBMC does
        };
        if session_seq <= a.newest_session_seq {
            return out; // overtaken by a newer packet: stale
        }
        a.newest_session_seq = session_seq;
        let Some(p) = Packet::decode(body) else {
            return out;
        };
        if p.ack != 0 {
            a.on_ack(p.ack, p.accepted, p.status & op::NACK != 0, now);
        }
        a.paused = p.status & op::CTS_PAUSE != 0;
        if p.status & op::FLUSH_OUTBOUND != 0 {
            a.pending.clear();
        }
        if p.seq != 0 {
            if a.last_inbound != Some(p.seq) {
                a.last_inbound = Some(p.seq);
                if !p.data.is_empty() {
                    out.push(Effect::Serial(SerialInput::Data(p.data.clone())));
                }
                if p.status & op::GENERATE_BREAK != 0 {
                    out.push(Effect::Serial(SerialInput::Break));
                }
            }
            out.push(a.send(Packet::ack(p.seq, p.data.len(), 0)));
        }
        a.pump(now, &mut out);
        out
    }

    /// Bytes the host wrote: queued for the console, or lost if none.
    pub fn host_output(&mut self, bytes: &[u8], now: Instant) -> Vec<Effect> {
        let mut out = Vec::new();
        if let Some(a) = self.active.as_mut() {
            a.pending.extend(bytes);
            if a.pending.len() > PENDING_CAP {
                let excess = a.pending.len() - PENDING_CAP;
                a.pending.drain(..excess);
                a.overrun = true;
            }
            a.pump(now, &mut out);
        }
        out
    }

    /// Host output was lost before it reached the BMC.
    pub fn overrun(&mut self) {
        if let Some(a) = self.active.as_mut() {
            a.overrun = true;
        }
    }

    /// Retransmits, or gives up on a console that stopped ACKing.
    pub fn tick(&mut self, now: Instant) -> Vec<Effect> {
        let mut out = Vec::new();
        let Some(a) = self.active.as_mut() else {
            return out;
        };
        let retry = a.retry;
        if let Some(f) = a.in_flight.as_mut()
            && now >= f.sent_at + retry
        {
            if f.sends >= MAX_SENDS {
                self.active = None;
                return out;
            }
            f.sends += 1;
            f.sent_at = now;
            let again = f.packet.clone();
            out.push(a.send(again));
        }
        a.pump(now, &mut out);
        out
    }

    /// When [`tick`](Self::tick) next has something to do.
    pub fn next_deadline(&self) -> Option<Instant> {
        let a = self.active.as_ref()?;
        match &a.in_flight {
            Some(f) => Some(f.sent_at + a.retry),
            None if a.pending.is_empty() || a.paused => None,
            None => a.hold_until,
        }
    }
}

#[cfg(test)]
#[path = "sol_tests.rs"]
mod tests;
