//! One QEMU guest's link to its node's BMC, I/O-free: the VM protocol's
//! frames become in-band IPMI requests for the node's controller (the same
//! one the LAN side uses) and their responses become frames again; chassis
//! changes become commands to the guest (power off, reset).

use super::chassis::ChassisState;
use super::vm_codec::{self, Command, Decoder, Dropped, Frame, Message, cmd};
use crate::ipmi::message::{Request, Response};

/// What the guest's bytes asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Inbound {
    /// An in-band request; answer it with [`GuestLink::answer`].
    Request { seq: u8, request: Request },
    /// QEMU reset the guest's system (its own reboot or our RESET): told
    /// for information only, the chassis already knows or does not care.
    GuestReset,
}

/// What the link has seen, for logs and tests.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LinkStats {
    pub requests: u64,
    pub dropped: u64,
    pub guest_resets: u64,
    /// QEMU's protocol version and capability mask, once it sent them.
    pub version: Option<u8>,
    pub capabilities: Option<u8>,
}

#[derive(Debug, Default)]
pub struct GuestLink {
    decoder: Decoder,
    stats: LinkStats,
    last_drop: Option<Dropped>,
}

impl GuestLink {
    pub fn new() -> GuestLink {
        GuestLink::default()
    }

    /// What the BMC says first on a new connection (as OpenIPMI does).
    pub fn greeting() -> Vec<u8> {
        vm_codec::encode_command(cmd::VERSION, &[vm_codec::PROTOCOL_VERSION])
    }

    pub fn stats(&self) -> LinkStats {
        self.stats
    }

    /// The last frame dropped since the previous call, to log it once.
    pub fn take_drop(&mut self) -> Option<Dropped> {
        self.last_drop.take()
    }

    /// Bytes from the guest; never panics, keeps at most one frame.
    pub fn receive(&mut self, bytes: &[u8]) -> Vec<Inbound> {
        let mut inbound = Vec::new();
        for frame in self.decoder.feed(bytes) {
            match frame {
                Frame::Message(m) => {
                    self.stats.requests += 1;
                    inbound.push(Inbound::Request {
                        seq: m.seq,
                        request: request(&m),
                    });
                }
                Frame::Command(Command::Version(v)) => self.stats.version = v,
                Frame::Command(Command::Capabilities(c)) => self.stats.capabilities = c,
                Frame::Command(Command::Reset) => {
                    self.stats.guest_resets += 1;
                    inbound.push(Inbound::GuestReset);
                }
                // Codes only a BMC sends, or new ones: ignored, as by OpenIPMI.
                Frame::Command(Command::Other(_)) => {}
                Frame::Dropped(why) => {
                    self.stats.dropped += 1;
                    self.last_drop = Some(why);
                }
            }
        }
        inbound
    }

    /// The frame answering the request that came with `seq`.
    pub fn answer(seq: u8, response: &Response) -> Vec<u8> {
        let mut data = Vec::with_capacity(1 + response.data.len());
        data.push(response.completion);
        data.extend_from_slice(&response.data);
        vm_codec::encode_message(&Message {
            seq,
            netfn: response.netfn,
            lun: response.rs_lun,
            cmd: response.cmd,
            data,
        })
    }
}

fn request(m: &Message) -> Request {
    let mut request = Request::new(m.netfn, m.cmd, 0, &m.data);
    request.rs_lun = m.lun;
    request
}

/// The command that makes the guest follow a chassis change: power off
/// when the chassis went off, a reset when it booted again (a cycle, a
/// hard reset, or off and on in between). Boot flag changes need nothing.
pub fn command_for(before: &ChassisState, after: &ChassisState) -> Option<Vec<u8>> {
    let rebooted = after.power_on_count != before.power_on_count || after.resets != before.resets;
    let code = if !after.power_on && before.power_on {
        cmd::POWEROFF
    } else if after.power_on && rebooted {
        cmd::RESET
    } else {
        return None;
    };
    Some(vm_codec::encode_command(code, &[]))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ipmi::message::netfn;

    fn on(count: u64, resets: u64) -> ChassisState {
        ChassisState {
            power_on: true,
            power_on_count: count,
            resets,
            ..ChassisState::default()
        }
    }

    #[test]
    fn requests_come_out_with_their_seq_and_answers_go_back_with_it() {
        let mut link = GuestLink::new();
        let mut wire = vm_codec::encode_command(cmd::VERSION, &[1]);
        wire.extend(vm_codec::encode_command(cmd::CAPABILITIES, &[0x3F]));
        wire.extend(vm_codec::encode_message(&Message {
            seq: 0xAA,
            netfn: netfn::CHASSIS,
            lun: 0,
            cmd: 0x09,
            data: vec![5, 0, 0],
        }));
        let inbound = link.receive(&wire);
        let [Inbound::Request { seq, request }] = &inbound[..] else {
            panic!("{inbound:?}");
        };
        assert_eq!((*seq, request.netfn, request.cmd), (0xAA, 0x00, 0x09));
        assert_eq!(request.data, [5, 0, 0]);
        let stats = link.stats();
        assert_eq!((stats.version, stats.capabilities), (Some(1), Some(0x3F)));

        let response = request.respond(0x00, &[1, 5, 0x80, 0x04, 0, 0, 0]);
        let frames = Decoder::new().feed(&GuestLink::answer(*seq, &response));
        let [Frame::Message(m)] = &frames[..] else {
            panic!("{frames:?}");
        };
        assert_eq!((m.seq, m.netfn, m.cmd), (0xAA, 0x01, 0x09));
        assert_eq!(m.data, [0, 1, 5, 0x80, 0x04, 0, 0, 0]);
    }

    #[test]
    fn garbage_is_counted_and_qemu_resets_are_reported() {
        let mut link = GuestLink::new();
        let inbound = link.receive(&[1, 2, 3, 4, 0xA0, 0x04, 0xA1, 0xAA, 0xA0]);
        assert_eq!(inbound, [Inbound::GuestReset]);
        let stats = link.stats();
        assert_eq!((stats.dropped, stats.guest_resets), (2, 1));
        assert_eq!(link.take_drop(), Some(Dropped::EndedInEscape));
        assert_eq!(link.take_drop(), None);
    }

    #[test]
    fn chassis_changes_map_to_poweroff_and_reset() {
        let off = ChassisState::default();
        let poweroff = Some(vec![cmd::POWEROFF, vm_codec::CMD_CHAR]);
        let reset = Some(vec![cmd::RESET, vm_codec::CMD_CHAR]);
        assert_eq!(command_for(&on(1, 0), &off), poweroff);
        assert_eq!(command_for(&on(1, 0), &on(2, 0)), reset, "cycle");
        assert_eq!(command_for(&on(1, 0), &on(1, 1)), reset, "hard reset");
        assert_eq!(command_for(&on(1, 0), &on(3, 0)), reset, "off and on");
        assert_eq!(command_for(&off, &on(1, 0)), reset, "on (a guest boots)");
        assert_eq!(command_for(&on(1, 0), &on(1, 0)), None);
        assert_eq!(command_for(&off, &off), None);
        let mut flags = on(1, 0);
        flags.persistent = true;
        assert_eq!(command_for(&on(1, 0), &flags), None, "boot flags only");
    }
}
