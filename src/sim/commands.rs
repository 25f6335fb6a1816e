//! IPMI command dispatch behind the session layer: (NetFn, command) →
//! completion code and data, with OpenBMC-like privilege checks.

use std::time::Instant;

use super::chassis::{BootParamError, Chassis, ChassisState, Control};
use super::dcmi;
use super::fru::{self, Inventory};
use super::mc_info::{self, ParamError};
use super::sdr::{self, Repository, SdrError};
use super::sel::{self, SelError, SelHandle};
use crate::ipmi::CipherSuite;
use crate::ipmi::message::{Request, Response, netfn};

/// Session privilege levels.
pub mod privilege {
    /// Pre-session: only the commands needed to open a session.
    pub const NONE: u8 = 0;
    pub const CALLBACK: u8 = 1;
    pub const USER: u8 = 2;
    pub const OPERATOR: u8 = 3;
    pub const ADMINISTRATOR: u8 = 4;
}

mod cc {
    pub const OK: u8 = 0x00;
    pub const PARAMETER_NOT_SUPPORTED: u8 = 0x80;
    /// Write FRU Data's "write-protected offset".
    pub const WRITE_PROTECTED: u8 = 0x80;
    pub const INVALID_COMMAND: u8 = 0xC1;
    pub const RESERVATION: u8 = 0xC5;
    pub const BAD_LENGTH: u8 = 0xC7;
    pub const OUT_OF_RANGE: u8 = 0xC9;
    pub const NOT_PRESENT: u8 = 0xCB;
    pub const INVALID_DATA: u8 = 0xCC;
    pub const INSUFFICIENT_PRIVILEGE: u8 = 0xD4;
    pub const NOT_IN_PRESENT_STATE: u8 = 0xD5;
}

/// The App commands answered here (session ones live in `session`).
mod app {
    pub const GET_DEVICE_ID: u8 = 0x01;
    pub const COLD_RESET: u8 = 0x02;
    pub const WARM_RESET: u8 = 0x03;
    pub const GET_SYSTEM_INFO: u8 = 0x59;
    pub const GET_DEVICE_GUID: u8 = 0x08;
    pub const GET_SYSTEM_GUID: u8 = 0x37;
    pub const GET_CHANNEL_AUTH_CAPS: u8 = 0x38;
    pub const GET_CHANNEL_CIPHER_SUITES: u8 = 0x54;
}

/// The LAN channel this BMC reports for "this channel" (0x0E).
pub const LAN_CHANNEL: u8 = 0x01;

/// The Storage commands answered here.
mod storage {
    pub const FRU_AREA_INFO: u8 = 0x10;
    pub const READ_FRU: u8 = 0x11;
    pub const WRITE_FRU: u8 = 0x12;
    pub const SEL_INFO: u8 = 0x40;
    pub const SEL_ALLOCATION: u8 = 0x41;
    pub const RESERVE_SEL: u8 = 0x42;
    pub const GET_SEL_ENTRY: u8 = 0x43;
    pub const ADD_SEL_ENTRY: u8 = 0x44;
    pub const CLEAR_SEL: u8 = 0x47;
    pub const GET_SEL_TIME: u8 = 0x48;
}

type Outcome = Result<Vec<u8>, u8>;

/// Everything behind the session layer: chassis, sensors, channel facts.
pub struct Controller {
    pub chassis: Chassis,
    sdr: Repository,
    suites: Vec<CipherSuite>,
    guid: [u8; 16],
    /// Bumped per sensor reading, so a running host's readings wobble.
    readings: u8,
    /// The node's name (System Info's system name).
    node: String,
    /// FRU device 0's image.
    fru: Vec<u8>,
    sel: SelHandle,
    /// The chassis as last logged to the SEL.
    logged: ChassisState,
    /// A BMC reset was asked for: the session layer carries it out once
    /// the reply is out.
    reset_asked: bool,
}

/// The lowest privilege a command needs (USER for all but the few below).
fn required_privilege(req: &Request) -> u8 {
    match (req.netfn, req.cmd) {
        (
            netfn::APP,
            app::GET_SYSTEM_GUID | app::GET_CHANNEL_AUTH_CAPS | app::GET_CHANNEL_CIPHER_SUITES,
        ) => privilege::NONE,
        (netfn::CHASSIS, 0x02 | 0x04 | 0x08) => privilege::OPERATOR,
        (netfn::APP, app::COLD_RESET | app::WARM_RESET) => privilege::ADMINISTRATOR,
        (netfn::STORAGE, storage::WRITE_FRU | storage::ADD_SEL_ENTRY | storage::CLEAR_SEL) => {
            privilege::OPERATOR
        }
        _ => privilege::USER,
    }
}

fn bytes<const N: usize>(data: &[u8]) -> Result<[u8; N], u8> {
    data.get(..N)
        .and_then(|d| d.try_into().ok())
        .ok_or(cc::BAD_LENGTH)
}

impl Controller {
    pub fn new(chassis: Chassis, suites: Vec<CipherSuite>, guid: [u8; 16]) -> Controller {
        Controller {
            chassis,
            sdr: Repository::default(),
            suites,
            guid,
            readings: 0,
            node: String::new(),
            fru: Inventory::for_node("").image(),
            sel: SelHandle::default(),
            logged: ChassisState::default(),
            reset_asked: false,
        }
    }

    /// The node this BMC belongs to (its FRU and system name) and the SEL
    /// it logs to.
    pub fn for_node(mut self, node: &str, sel: SelHandle) -> Controller {
        self.node = node.to_string();
        self.fru = Inventory::for_node(node).image();
        self.sel = sel;
        self
    }

    pub fn sel(&self) -> &SelHandle {
        &self.sel
    }

    /// Applies due timed transitions and logs what they did.
    pub fn tick(&mut self, now: Instant) {
        self.chassis.tick(now);
        self.log_chassis();
    }

    /// Logs the chassis' changes since last time to the SEL (the chassis
    /// owns the state; the SEL records what happened to it).
    pub fn log_chassis(&mut self) {
        let now = self.chassis.current();
        let events = sel::chassis_events(&self.logged, &now);
        if !events.is_empty() {
            let at = sel::unix_now();
            let mut log = self.sel.lock();
            for event in events {
                log.log(event, at);
            }
        }
        self.logged = now;
    }

    /// Whether a BMC reset was asked for since the last call.
    pub fn take_reset(&mut self) -> bool {
        std::mem::take(&mut self.reset_asked)
    }

    /// Runs `req` for a caller at `privilege` (`privilege::NONE` before a
    /// session exists).
    pub fn execute(&mut self, req: &Request, privilege: u8, now: Instant) -> Response {
        let outcome = if privilege < required_privilege(req) {
            Err(cc::INSUFFICIENT_PRIVILEGE)
        } else {
            self.run(req, now)
        };
        self.log_chassis();
        match outcome {
            Ok(data) => req.respond(cc::OK, &data),
            Err(code) => req.respond(code, &[]),
        }
    }

    fn run(&mut self, req: &Request, now: Instant) -> Outcome {
        let data = &req.data[..];
        match req.netfn {
            netfn::APP => self.app(req.cmd, data),
            netfn::CHASSIS => self.chassis_command(req.cmd, data, now),
            netfn::SENSOR => self.sensor(req.cmd, data, now),
            netfn::STORAGE => self.storage(req.cmd, data),
            netfn::GROUP_EXT if data.first() == Some(&dcmi::GROUP) => self.dcmi(req.cmd, data, now),
            _ => Err(cc::INVALID_COMMAND),
        }
    }

    fn app(&mut self, cmd: u8, data: &[u8]) -> Outcome {
        match cmd {
            app::GET_DEVICE_ID => Ok(mc_info::device_id()),
            // Answered, then carried out by the session layer (a warm
            // reset here is a cold one: sessions go either way).
            app::COLD_RESET | app::WARM_RESET => {
                self.reset_asked = true;
                Ok(vec![])
            }
            app::GET_SYSTEM_INFO => {
                let [flags, parameter, set, _block] = bytes(data)?;
                mc_info::system_info(flags & 0x80 != 0, parameter, set, &self.node).map_err(|e| {
                    match e {
                        ParamError::Unsupported => cc::PARAMETER_NOT_SUPPORTED,
                        ParamError::OutOfRange => cc::OUT_OF_RANGE,
                    }
                })
            }
            app::GET_DEVICE_GUID | app::GET_SYSTEM_GUID => Ok(self.guid.to_vec()),
            app::GET_CHANNEL_AUTH_CAPS => {
                let [channel, _privilege] = bytes(data)?;
                Ok(auth_capabilities(channel))
            }
            app::GET_CHANNEL_CIPHER_SUITES => {
                let [_channel, _payload_type, index] = bytes(data)?;
                Ok(self.cipher_suites(index))
            }
            _ => Err(cc::INVALID_COMMAND),
        }
    }

    /// Get Channel Cipher Suites: 16-byte pages of the record list.
    fn cipher_suites(&self, index: u8) -> Vec<u8> {
        let by_suite = index & 0x80 != 0;
        let mut records = Vec::new();
        for suite in &self.suites {
            let (a, i, c) = suite.algorithms();
            if by_suite {
                records.extend_from_slice(&[0xC0, suite.id()]);
            }
            records.extend_from_slice(&[a, 0x40 | i, 0x80 | c]);
        }
        let start = (usize::from(index & 0x3F) * 16).min(records.len());
        let end = (start + 16).min(records.len());
        let mut out = vec![LAN_CHANNEL];
        out.extend_from_slice(&records[start..end]);
        out
    }

    fn chassis_command(&mut self, cmd: u8, data: &[u8], now: Instant) -> Outcome {
        match cmd {
            // Get Chassis Status: power (restore policy "previous"), last
            // event (power on via IPMI), misc state (identify), front panel.
            0x01 => {
                let state = self.chassis.state(now);
                let last_event = if state.power_on_count > 0 { 0x10 } else { 0 };
                let misc = self.chassis.identify_state(now).status_bits();
                Ok(vec![0x20 | u8::from(state.power_on), last_event, misc, 0])
            }
            // Chassis Identify: optional interval, optional force byte.
            0x04 => {
                let interval = data.first().copied();
                let force = data.get(1).is_some_and(|f| f & 0x01 != 0);
                self.chassis.identify(interval, force, now);
                Ok(vec![])
            }
            0x02 => {
                let [action] = bytes(data)?;
                let action = Control::from_byte(action).ok_or(cc::INVALID_DATA)?;
                if self.chassis.control(action, now) {
                    Ok(vec![])
                } else {
                    Err(cc::NOT_IN_PRESENT_STATE)
                }
            }
            // Set System Boot Options: selector (bit 7 = lock, ignored), data.
            0x08 => {
                let (&selector, value) = data.split_first().ok_or(cc::BAD_LENGTH)?;
                self.chassis
                    .set_boot_param(selector & 0x7F, value)
                    .map(|()| vec![])
                    .map_err(boot_param_code)
            }
            // Get System Boot Options: version 1, selector (bit 7 clear:
            // valid), data.
            0x09 => {
                let [selector, _set, _block] = bytes(data)?;
                let selector = selector & 0x7F;
                let value = self.chassis.boot_param(selector).map_err(boot_param_code)?;
                Ok([&[0x01, selector][..], value].concat())
            }
            _ => Err(cc::INVALID_COMMAND),
        }
    }

    fn sensor(&mut self, cmd: u8, data: &[u8], now: Instant) -> Outcome {
        let [number] = bytes(data)?;
        let sensor = sdr::sensor(number);
        match cmd {
            // Get Sensor Reading
            0x2D => {
                let sensor = sensor.ok_or(cc::NOT_PRESENT)?;
                self.readings = self.readings.wrapping_add(1);
                let on = self.chassis.state(now).power_on;
                Ok(sensor.reading(sensor.raw(on, self.readings)))
            }
            // Get Sensor Thresholds
            0x27 => Ok(sensor.ok_or(cc::NOT_PRESENT)?.thresholds()),
            _ => Err(cc::INVALID_COMMAND),
        }
    }

    fn storage(&mut self, cmd: u8, data: &[u8]) -> Outcome {
        match cmd {
            storage::FRU_AREA_INFO => {
                let [device] = bytes(data)?;
                if device != 0 {
                    return Err(cc::NOT_PRESENT);
                }
                let size = self.fru.len() as u16;
                // Accessed by bytes (bit 0 clear).
                Ok([&size.to_le_bytes()[..], &[0x00]].concat())
            }
            storage::READ_FRU => {
                let [device, lo, hi, count] = bytes(data)?;
                if device != 0 {
                    return Err(cc::NOT_PRESENT);
                }
                let part = fru::read(&self.fru, u16::from_le_bytes([lo, hi]), count)
                    .ok_or(cc::OUT_OF_RANGE)?;
                Ok([&[part.len() as u8][..], part].concat())
            }
            storage::WRITE_FRU => Err(cc::WRITE_PROTECTED),
            storage::SEL_INFO => Ok(self.sel.lock().info()),
            storage::SEL_ALLOCATION => Ok(self.sel.lock().allocation()),
            storage::RESERVE_SEL => Ok(self.sel.lock().reserve().to_le_bytes().to_vec()),
            storage::GET_SEL_ENTRY => {
                let [r0, r1, id0, id1, offset, len] = bytes(data)?;
                let log = self.sel.lock();
                let reservation = u16::from_le_bytes([r0, r1]);
                let (next, part) = log
                    .get(reservation, u16::from_le_bytes([id0, id1]), offset, len)
                    .map_err(sel_code)?;
                Ok([&next.to_le_bytes()[..], part].concat())
            }
            storage::ADD_SEL_ENTRY => {
                let record: [u8; sel::RECORD_LEN] = bytes(data)?;
                // Full: "out of space" (C4h).
                let id = self.sel.lock().add(record, sel::unix_now()).ok_or(0xC4)?;
                Ok(id.to_le_bytes().to_vec())
            }
            storage::CLEAR_SEL => {
                let [r0, r1, c, l, r, action] = bytes(data)?;
                let reservation = u16::from_le_bytes([r0, r1]);
                let progress = self
                    .sel
                    .lock()
                    .clear(reservation, [c, l, r], action, sel::unix_now())
                    .map_err(sel_code)?;
                Ok(vec![progress])
            }
            storage::GET_SEL_TIME => Ok(sel::unix_now().to_le_bytes().to_vec()),
            0x20 => Ok(self.sdr.info()),
            0x22 => Ok(self.sdr.reserve().to_le_bytes().to_vec()),
            // Get SDR: reservation, record ID, offset, bytes to read.
            0x23 => {
                let [r0, r1, id0, id1, offset, len] = bytes(data)?;
                let reservation = u16::from_le_bytes([r0, r1]);
                let id = u16::from_le_bytes([id0, id1]);
                let (next, part) =
                    self.sdr
                        .get(reservation, id, offset, len)
                        .map_err(|e| match e {
                            SdrError::Reservation => cc::RESERVATION,
                            SdrError::NotPresent => cc::NOT_PRESENT,
                            SdrError::Offset => cc::OUT_OF_RANGE,
                        })?;
                Ok([&next.to_le_bytes()[..], part].concat())
            }
            _ => Err(cc::INVALID_COMMAND),
        }
    }

    fn dcmi(&mut self, cmd: u8, data: &[u8], now: Instant) -> Outcome {
        match cmd {
            dcmi::GET_CAPABILITIES => {
                let [_group, parameter] = bytes(data)?;
                dcmi::capabilities(parameter)
            }
            dcmi::GET_POWER_READING => {
                let power = &sdr::SENSORS[3];
                let on = self.chassis.state(now).power_on;
                Ok(dcmi::power_reading(power.value(power.raw(on, 0)) as u16))
            }
            _ => Err(cc::INVALID_COMMAND),
        }
    }
}

fn sel_code(e: SelError) -> u8 {
    match e {
        SelError::Reservation => cc::RESERVATION,
        SelError::NotPresent => cc::NOT_PRESENT,
        SelError::OutOfRange => cc::OUT_OF_RANGE,
        SelError::InvalidData => cc::INVALID_DATA,
    }
}

fn boot_param_code(e: BootParamError) -> u8 {
    match e {
        BootParamError::Unsupported => cc::PARAMETER_NOT_SUPPORTED,
        BootParamError::BadLength => cc::BAD_LENGTH,
    }
}

/// Get Channel Authentication Capabilities for an RMCP+-only channel.
/// ipmitool and freeipmi want: bit 7 of byte 2 (IPMI 2.0 extended data, only
/// when asked for with bit 7 of the request's channel byte), non-null user
/// names enabled (byte 3 bit 2), and IPMI 2.0 supported (byte 4 bit 1).
fn auth_capabilities(channel_request: u8) -> Vec<u8> {
    let extended = channel_request & 0x80;
    vec![LAN_CHANNEL, extended, 0x04, 0x02, 0, 0, 0, 0]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sim::chassis::{BootDevice, DEFAULT_SOFT_OFF_DELAY};

    fn controller() -> Controller {
        let suites = vec![CipherSuite::Suite17, CipherSuite::Suite3];
        Controller::new(Chassis::new(DEFAULT_SOFT_OFF_DELAY), suites, [7; 16])
    }

    fn run(c: &mut Controller, priv_: u8, netfn: u8, cmd: u8, data: &[u8]) -> (u8, Vec<u8>) {
        let r = c.execute(&Request::new(netfn, cmd, 1, data), priv_, Instant::now());
        assert_eq!((r.netfn, r.cmd), (netfn | 1, cmd));
        (r.completion, r.data)
    }

    #[test]
    fn privileges_mimic_openbmc() {
        let mut c = controller();
        let (code, _) = run(&mut c, privilege::USER, netfn::CHASSIS, 0x02, &[1]);
        assert_eq!(code, cc::INSUFFICIENT_PRIVILEGE);
        let (code, _) = run(&mut c, privilege::NONE, netfn::APP, 0x01, &[]);
        assert_eq!(code, cc::INSUFFICIENT_PRIVILEGE);
        let (code, data) = run(&mut c, privilege::NONE, netfn::APP, 0x38, &[0x8E, 4]);
        assert_eq!((code, data[1], data[3]), (0, 0x80, 0x02));
        let (code, _) = run(&mut c, privilege::OPERATOR, netfn::CHASSIS, 0x02, &[1]);
        assert_eq!(code, 0);
        let (_, status) = run(&mut c, privilege::USER, netfn::CHASSIS, 0x01, &[]);
        assert_eq!(status[0] & 1, 1);
        let (code, _) = run(&mut c, privilege::ADMINISTRATOR, 0x30, 0x01, &[]);
        assert_eq!(code, cc::INVALID_COMMAND);
    }

    #[test]
    fn bootdev_pxe_as_ipmitool_sends_it() {
        let mut c = controller();
        let admin = privilege::ADMINISTRATOR;
        for data in [
            &[0x00, 0x01][..],
            &[0x04, 0x01, 0x01],
            &[0x05, 0x80, 0x04, 0, 0, 0],
            &[0, 0],
        ] {
            assert_eq!(
                run(&mut c, admin, netfn::CHASSIS, 0x08, data).0,
                0,
                "{data:?}"
            );
        }
        let (code, data) = run(&mut c, admin, netfn::CHASSIS, 0x09, &[5, 0, 0]);
        assert_eq!((code, data), (0, vec![1, 5, 0x80, 0x04, 0, 0, 0]));
        assert_eq!(c.chassis.state(Instant::now()).boot_device, BootDevice::Pxe);
        assert_eq!(run(&mut c, admin, netfn::CHASSIS, 0x09, &[7, 0, 0]).0, 0x80);
    }

    #[test]
    fn cipher_suite_records_page_by_16() {
        let mut c = controller();
        let (_, data) = run(&mut c, privilege::NONE, netfn::APP, 0x54, &[0x0E, 0, 0x80]);
        assert_eq!(data, [1, 0xC0, 17, 3, 0x44, 0x81, 0xC0, 3, 1, 0x41, 0x81]);
        let (_, data) = run(&mut c, privilege::NONE, netfn::APP, 0x54, &[0x0E, 0, 0x81]);
        assert_eq!(data, [1]);
    }

    #[test]
    fn sdr_and_sensor_commands() {
        let mut c = controller();
        let user = privilege::USER;
        let (_, res) = run(&mut c, user, netfn::STORAGE, 0x22, &[]);
        let (code, data) = run(
            &mut c,
            user,
            netfn::STORAGE,
            0x23,
            &[res[0], res[1], 0, 0, 0, 5],
        );
        assert_eq!((code, &data[..2], data.len()), (0, &[2, 0][..], 7));
        let (code, _) = run(&mut c, user, netfn::STORAGE, 0x23, &[0, 0, 1, 0, 5, 4]);
        assert_eq!(code, cc::RESERVATION);
        let (code, data) = run(&mut c, user, netfn::SENSOR, 0x2D, &[1]);
        assert_eq!((code, data[1]), (0, 0xC0));
        assert_eq!(
            run(&mut c, user, netfn::SENSOR, 0x2D, &[0x77]).0,
            cc::NOT_PRESENT
        );
        let (code, data) = run(&mut c, user, netfn::GROUP_EXT, 0x02, &[0xDC, 1, 0, 0]);
        assert_eq!((code, data[0], data.len()), (0, 0xDC, 18));
        assert_eq!(u16::from_le_bytes([data[1], data[2]]), 12, "standby power");
    }
}
