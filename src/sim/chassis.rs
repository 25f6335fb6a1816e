//! The virtual chassis: power state machine and system boot options, with
//! every state change published on a `watch` channel so a virtual host can
//! follow power-ons, resets and the boot device they used.

use std::time::{Duration, Instant};

use tokio::sync::watch;

/// Default delay between a soft-off request and the host actually going off
/// (a real OS takes a while to shut down; status reports "on" until then).
pub const DEFAULT_SOFT_OFF_DELAY: Duration = Duration::from_millis(200);

/// Boot device override, from the device selector (bits 5:2 of byte 2 of
/// boot option parameter 5).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum BootDevice {
    /// No override: the host boots its default order.
    #[default]
    None,
    Pxe,
    Disk,
    Cdrom,
    BiosSetup,
    /// Any other selector value (bits 5:2).
    Other(u8),
}

impl BootDevice {
    pub fn from_flags_byte(byte: u8) -> BootDevice {
        match (byte >> 2) & 0x0F {
            0x0 => BootDevice::None,
            0x1 => BootDevice::Pxe,
            0x2 => BootDevice::Disk,
            0x5 => BootDevice::Cdrom,
            0x6 => BootDevice::BiosSetup,
            n => BootDevice::Other(n),
        }
    }
}

/// A snapshot of one virtual chassis.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ChassisState {
    pub power_on: bool,
    /// The boot override currently set; `None` when no valid override.
    pub boot_device: BootDevice,
    /// The override applies to every boot, not just the next one.
    pub persistent: bool,
    /// Off→on transitions, power cycles included: the host boots on each.
    pub power_on_count: u64,
    /// Hard resets while on: the host reboots on each.
    pub resets: u64,
    /// The override the last power-on or reset booted with (a one-shot
    /// override is cleared from `boot_device` by then, unless a guest
    /// firmware reads and clears it itself).
    pub booted_from: BootDevice,
    /// A QEMU guest is attached as the host (in-band, over the VM
    /// protocol): it is the host instead of the virtual one, and its
    /// firmware reads and clears a one-shot override itself.
    pub guest: bool,
}

/// Chassis Control actions (IPMI 2.0 table 28-4).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Control {
    Off,
    On,
    Cycle,
    HardReset,
    PulseDiagnostic,
    SoftOff,
}

impl Control {
    pub fn from_byte(byte: u8) -> Option<Control> {
        Some(match byte & 0x0F {
            0 => Control::Off,
            1 => Control::On,
            2 => Control::Cycle,
            3 => Control::HardReset,
            4 => Control::PulseDiagnostic,
            5 => Control::SoftOff,
            _ => return None,
        })
    }
}

/// Why a boot option could not be read or written; the command layer maps
/// these to completion codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BootParamError {
    Unsupported,
    BadLength,
}

/// Boot option parameters 0–6 and their data lengths (IPMI 2.0 table 28-14).
const BOOT_PARAM_LENGTHS: [usize; 7] = [1, 1, 1, 1, 2, 5, 9];
const BOOT_FLAGS: usize = 5;
const FLAG_VALID: u8 = 0x80;
const FLAG_PERSISTENT: u8 = 0x40;

/// The chassis identify light (IPMI 2.0 section 28.5).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Identify {
    #[default]
    Off,
    /// On until an interval runs out.
    Timed,
    /// On until turned off ("force identify on").
    Indefinite,
}

impl Identify {
    /// Get Chassis Status' misc byte bits 5:4, with bit 6 (identify state
    /// reported) set.
    pub fn status_bits(self) -> u8 {
        0x40 | match self {
            Identify::Off => 0x00,
            Identify::Timed => 0x10,
            Identify::Indefinite => 0x20,
        }
    }
}

/// Chassis Identify's interval when the request gives none.
pub const DEFAULT_IDENTIFY: Duration = Duration::from_secs(15);

pub struct Chassis {
    state: ChassisState,
    /// Identify: lit until then (timed), or indefinitely.
    identify_until: Option<Instant>,
    identify_forced: bool,
    boot_params: [Vec<u8>; 7],
    soft_off_at: Option<Instant>,
    soft_off_delay: Duration,
    publish: watch::Sender<ChassisState>,
}

impl Chassis {
    pub fn new(soft_off_delay: Duration) -> Chassis {
        let state = ChassisState::default();
        Chassis {
            state,
            identify_until: None,
            identify_forced: false,
            boot_params: BOOT_PARAM_LENGTHS.map(|len| vec![0; len]),
            soft_off_at: None,
            soft_off_delay,
            publish: watch::Sender::new(state),
        }
    }

    pub fn subscribe(&self) -> watch::Receiver<ChassisState> {
        self.publish.subscribe()
    }

    /// The state as it stands, without applying due transitions.
    pub fn current(&self) -> ChassisState {
        self.state
    }

    /// The state at `now` (a pending soft off may have completed).
    pub fn state(&mut self, now: Instant) -> ChassisState {
        self.tick(now);
        self.state
    }

    /// Chassis Identify: `interval` seconds (none: 15 s; 0: off), or on
    /// until turned off when `force` is set (it overrides the interval).
    pub fn identify(&mut self, interval: Option<u8>, force: bool, now: Instant) {
        self.identify_forced = force;
        let lit = match interval {
            Some(secs) => Duration::from_secs(u64::from(secs)),
            None => DEFAULT_IDENTIFY,
        };
        self.identify_until = (!force && !lit.is_zero()).then(|| now + lit);
    }

    /// The identify light at `now`.
    pub fn identify_state(&self, now: Instant) -> Identify {
        if self.identify_forced {
            Identify::Indefinite
        } else if self.identify_until.is_some_and(|until| now < until) {
            Identify::Timed
        } else {
            Identify::Off
        }
    }

    /// When [`tick`](Self::tick) next has something to do.
    pub fn next_deadline(&self) -> Option<Instant> {
        self.soft_off_at
    }

    /// Applies timed transitions that are due.
    pub fn tick(&mut self, now: Instant) {
        if self.soft_off_at.is_some_and(|at| at <= now) {
            self.soft_off_at = None;
            self.state.power_on = false;
            self.publish();
        }
    }

    /// Performs a Chassis Control action; `false` if it makes no sense in
    /// the present state (reset of a powered-off host).
    pub fn control(&mut self, action: Control, now: Instant) -> bool {
        self.tick(now);
        match action {
            Control::Off => {
                self.soft_off_at = None;
                self.state.power_on = false;
            }
            Control::On => {
                self.soft_off_at = None;
                if !self.state.power_on {
                    self.power_on();
                }
            }
            // Off then on, from either state: the host always boots.
            Control::Cycle => {
                self.soft_off_at = None;
                self.power_on();
            }
            Control::HardReset => {
                if !self.state.power_on {
                    return false;
                }
                self.soft_off_at = None;
                self.state.resets += 1;
                self.boot();
            }
            Control::PulseDiagnostic => {}
            Control::SoftOff => {
                if self.state.power_on && self.soft_off_at.is_none() {
                    self.soft_off_at = Some(now + self.soft_off_delay);
                    self.tick(now);
                }
            }
        }
        self.publish();
        true
    }

    fn power_on(&mut self) {
        self.state.power_on = true;
        self.state.power_on_count += 1;
        self.boot();
    }

    /// The host (re)boots. The virtual host's firmware consumes a one-shot
    /// override right away (as if it had read and cleared it); a guest's
    /// firmware reads it in-band and clears it itself (petitboot does,
    /// before it kexecs), so it must still be there for it to read.
    fn boot(&mut self) {
        self.state.booted_from = self.state.boot_device;
        if !self.state.persistent && !self.state.guest {
            self.boot_params[BOOT_FLAGS].fill(0);
            self.sync_boot_flags();
        }
    }

    /// A guest connected: it runs, so the chassis is on (counted as a
    /// power-on if it was off); the override stays for its firmware.
    pub fn attach_guest(&mut self, now: Instant) {
        self.tick(now);
        self.state.guest = true;
        if !self.state.power_on {
            self.soft_off_at = None;
            self.state.power_on = true;
            self.state.power_on_count += 1;
            self.state.booted_from = self.state.boot_device;
        }
        self.publish();
    }

    /// The guest's connection is gone: QEMU exited (or will not hear us),
    /// so the chassis is off. The virtual host takes over again.
    pub fn detach_guest(&mut self) {
        self.state.guest = false;
        self.state.power_on = false;
        self.soft_off_at = None;
        self.publish();
    }

    pub fn boot_param(&self, selector: u8) -> Result<&[u8], BootParamError> {
        self.boot_params
            .get(selector as usize)
            .map(Vec::as_slice)
            .ok_or(BootParamError::Unsupported)
    }

    pub fn set_boot_param(&mut self, selector: u8, data: &[u8]) -> Result<(), BootParamError> {
        let slot = self
            .boot_params
            .get_mut(selector as usize)
            .ok_or(BootParamError::Unsupported)?;
        if data.len() != slot.len() {
            return Err(BootParamError::BadLength);
        }
        slot.copy_from_slice(data);
        if selector as usize == BOOT_FLAGS {
            self.sync_boot_flags();
            self.publish();
        }
        Ok(())
    }

    /// Derives the published boot fields from the raw boot flags.
    fn sync_boot_flags(&mut self) {
        let flags = &self.boot_params[BOOT_FLAGS];
        let valid = flags[0] & FLAG_VALID != 0;
        self.state.persistent = valid && flags[0] & FLAG_PERSISTENT != 0;
        self.state.boot_device = if valid {
            BootDevice::from_flags_byte(flags[1])
        } else {
            BootDevice::None
        };
    }

    fn publish(&self) {
        let state = self.state;
        self.publish.send_if_modified(|s| {
            let changed = *s != state;
            *s = state;
            changed
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chassis() -> (Chassis, Instant) {
        (Chassis::new(Duration::from_millis(200)), Instant::now())
    }

    #[test]
    fn on_off_cycle_and_reset_count_boots() {
        let (mut c, t) = chassis();
        let rx = c.subscribe();
        assert!(!c.state(t).power_on);
        assert!(!c.control(Control::HardReset, t), "reset needs power");
        assert!(c.control(Control::On, t));
        assert!(c.control(Control::On, t), "on while on is a no-op");
        assert_eq!(c.state(t).power_on_count, 1);
        assert!(c.control(Control::HardReset, t));
        let s = c.state(t);
        assert!(s.power_on);
        assert_eq!((s.power_on_count, s.resets), (1, 1));
        c.control(Control::Cycle, t);
        assert_eq!(c.state(t).power_on_count, 2);
        c.control(Control::Off, t);
        assert!(!c.state(t).power_on);
        c.control(Control::Cycle, t);
        assert!(c.state(t).power_on, "cycle from off powers on");
        assert_eq!(*rx.borrow(), c.state(t));
    }

    #[test]
    fn soft_off_reports_on_until_its_delay_has_passed() {
        let (mut c, t) = chassis();
        let mut rx = c.subscribe();
        c.control(Control::On, t);
        c.control(Control::SoftOff, t);
        assert!(c.state(t + Duration::from_millis(100)).power_on);
        assert_eq!(c.next_deadline(), Some(t + Duration::from_millis(200)));
        rx.mark_unchanged();
        c.tick(t + Duration::from_millis(200));
        assert!(rx.has_changed().unwrap());
        assert!(!rx.borrow().power_on);
        assert_eq!(c.next_deadline(), None);
    }

    #[test]
    fn one_shot_boot_flags_are_consumed_by_the_next_boot() {
        let (mut c, t) = chassis();
        c.set_boot_param(5, &[0x80, 0x04, 0, 0, 0]).unwrap();
        let s = c.state(t);
        assert_eq!((s.boot_device, s.persistent), (BootDevice::Pxe, false));
        c.control(Control::On, t);
        let s = c.state(t);
        assert_eq!(
            (s.boot_device, s.booted_from),
            (BootDevice::None, BootDevice::Pxe)
        );
        assert_eq!(c.boot_param(5).unwrap(), [0; 5]);

        c.set_boot_param(5, &[0xC0, 0x08, 0, 0, 0]).unwrap();
        c.control(Control::HardReset, t);
        let s = c.state(t);
        assert_eq!((s.boot_device, s.persistent), (BootDevice::Disk, true));
        assert_eq!(s.booted_from, BootDevice::Disk);
    }

    #[test]
    fn a_guest_reads_and_clears_a_one_shot_override_itself() {
        let (mut c, t) = chassis();
        c.set_boot_param(5, &[0x80, 0x04, 0, 0, 0]).unwrap();
        c.attach_guest(t);
        let s = c.state(t);
        assert!(s.guest && s.power_on && s.power_on_count == 1);
        for action in [
            Control::Cycle,
            Control::HardReset,
            Control::Off,
            Control::On,
        ] {
            c.control(action, t);
            assert_eq!(
                c.boot_param(5).unwrap(),
                [0x80, 0x04, 0, 0, 0],
                "{action:?}"
            );
        }
        let s = c.state(t);
        assert_eq!(
            (s.boot_device, s.booted_from),
            (BootDevice::Pxe, BootDevice::Pxe)
        );
        // petitboot's clear: valid bit set, no device.
        c.set_boot_param(5, &[0x80, 0, 0, 0, 0]).unwrap();
        assert_eq!(c.state(t).boot_device, BootDevice::None);

        // Gone: off, and the virtual host's boots consume one-shots again.
        c.detach_guest();
        let s = c.state(t);
        assert!(!s.guest && !s.power_on);
        c.set_boot_param(5, &[0x80, 0x08, 0, 0, 0]).unwrap();
        c.control(Control::On, t);
        assert_eq!(c.boot_param(5).unwrap(), [0; 5]);
        // Attaching to a host already on is no new power-on.
        c.attach_guest(t);
        assert_eq!(c.state(t).power_on_count, 4);
    }

    #[test]
    fn identify_interval_and_force() {
        let (mut c, t) = chassis();
        assert_eq!(c.identify_state(t), Identify::Off);
        c.identify(None, false, t);
        assert_eq!(
            c.identify_state(t + Duration::from_secs(14)),
            Identify::Timed
        );
        assert_eq!(c.identify_state(t + DEFAULT_IDENTIFY), Identify::Off);
        c.identify(Some(2), false, t);
        assert_eq!(
            c.identify_state(t + Duration::from_secs(1)),
            Identify::Timed
        );
        assert_eq!(c.identify_state(t + Duration::from_secs(2)), Identify::Off);
        // Force overrides the interval, even 0; 0 alone turns it off.
        c.identify(Some(0), true, t);
        assert_eq!(
            c.identify_state(t + Duration::from_secs(3600)),
            Identify::Indefinite
        );
        c.identify(Some(0), false, t);
        assert_eq!(c.identify_state(t), Identify::Off);
        assert_eq!(
            [Identify::Off, Identify::Timed, Identify::Indefinite].map(Identify::status_bits),
            [0x40, 0x50, 0x60]
        );
    }

    #[test]
    fn boot_params_check_selector_and_length() {
        let (mut c, _) = chassis();
        assert_eq!(c.set_boot_param(5, &[0x80]), Err(BootParamError::BadLength));
        assert_eq!(c.set_boot_param(9, &[0]), Err(BootParamError::Unsupported));
        assert_eq!(c.boot_param(7), Err(BootParamError::Unsupported));
        c.set_boot_param(4, &[1, 1]).unwrap();
        assert_eq!(c.boot_param(4).unwrap(), [1, 1]);
        // Valid bit clear: no override, whatever the selector says.
        c.set_boot_param(5, &[0x00, 0x04, 0, 0, 0]).unwrap();
        assert_eq!(c.state(Instant::now()).boot_device, BootDevice::None);
    }
}
