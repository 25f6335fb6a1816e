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
    /// override is cleared from `boot_device` by then).
    pub booted_from: BootDevice,
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

pub struct Chassis {
    state: ChassisState,
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
            boot_params: BOOT_PARAM_LENGTHS.map(|len| vec![0; len]),
            soft_off_at: None,
            soft_off_delay,
            publish: watch::Sender::new(state),
        }
    }

    pub fn subscribe(&self) -> watch::Receiver<ChassisState> {
        self.publish.subscribe()
    }

    /// The state at `now` (a pending soft off may have completed).
    pub fn state(&mut self, now: Instant) -> ChassisState {
        self.tick(now);
        self.state
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

    /// The host (re)boots: it consumes a one-shot override, as a real BMC
    /// clears non-persistent boot flags once the firmware has read them.
    fn boot(&mut self) {
        self.state.booted_from = self.state.boot_device;
        if !self.state.persistent {
            self.boot_params[BOOT_FLAGS].fill(0);
            self.sync_boot_flags();
        }
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
