//! The responder's Serial-over-LAN glue: SOL payloads in, host output in,
//! and the state machine's effects sealed per session and queued for the
//! I/O side. A child of `session`, so it reaches the responder's fields.

use std::time::Instant;

use super::{Output, Responder};
use crate::ipmi::packet::payload;
use crate::sim::sol::Effect;

impl Responder {
    /// What the I/O side must still send or deliver, oldest first.
    pub fn take_output(&mut self) -> Vec<Output> {
        std::mem::take(&mut self.outbox)
    }

    /// Whether a session has the SOL payload activated.
    pub fn sol_active(&self) -> bool {
        self.sol.owner().is_some()
    }

    /// Bytes the host wrote to its serial port.
    pub fn host_output(&mut self, bytes: &[u8], now: Instant) {
        self.expire(now);
        let effects = self.sol.host_output(bytes, now);
        self.apply(effects);
    }

    /// Host output was lost on its way to the BMC.
    pub fn host_overrun(&mut self) {
        self.sol.overrun();
    }

    /// A payload outlives no session: deactivate it once its owner is gone.
    pub(super) fn end_orphaned_sol(&mut self) {
        if let Some(owner) = self.sol.owner()
            && self.active(owner).is_err()
        {
            self.sol.end_session(owner);
        }
    }

    /// Seals SOL packets for their sessions and queues everything to go out.
    pub(super) fn apply(&mut self, effects: Vec<Effect>) {
        for effect in effects {
            match effect {
                Effect::Serial(input) => self.outbox.push(Output::Serial(input)),
                Effect::Send { session, packet } => {
                    // A session that is gone, or never spoke, is unreachable.
                    let Ok(active) = self.active(session) else {
                        continue;
                    };
                    let Some(peer) = active.peer else { continue };
                    let datagram = active.seal(payload::SOL, &packet.encode());
                    self.outbox.push(Output::Datagram(peer, datagram));
                }
            }
        }
    }

    /// An established session's Serial-over-LAN payload, verified, decrypted
    /// and in sequence. ACKs and data go out through the outbox rather than
    /// as a reply, so they stay in order with host output sent meanwhile.
    pub(super) fn sol(&mut self, session_id: u32, session_seq: u32, payload: &[u8], now: Instant) {
        let effects = self.sol.on_packet(session_id, session_seq, payload, now);
        self.apply(effects);
    }
}
