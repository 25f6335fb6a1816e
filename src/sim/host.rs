//! A virtual host behind each BMC: it follows the chassis (`watch`), runs its
//! [`Firmware`] on every power-on or reset, stops when powered off, and
//! echoes what a SOL console types while it sits at a prompt.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{broadcast, watch};

use super::chassis::ChassisState;
use super::firmware::{BootFuture, Firmware};
use super::sel::{Event, SelHandle};
use super::serial::{SerialInput, SerialPort};

/// The prompt the host sits at, if any: shared by the host task (echo) and
/// the running boot (which sets it).
type Prompt = Arc<Mutex<Option<String>>>;

/// One boot of the host, handed to its [`Firmware`]: what it booted with,
/// and a paced way to print on the serial port.
pub struct Boot {
    node: String,
    chassis: ChassisState,
    serial: SerialPort,
    line_delay: Duration,
    prompt: Prompt,
    sel: Option<SelHandle>,
}

/// The boot milestones a BMC sees in its host's console and logs, as a
/// real BMC gets them from the host firmware (progress codes, OS boot):
/// petitboot's banner, then a login prompt.
fn milestone(text: &str, prompt: bool) -> Option<Event> {
    if !prompt && text.starts_with("Petitboot (") {
        Some(Event::FirmwareProgress)
    } else if prompt && text.ends_with(" login: ") {
        Some(Event::OsBoot)
    } else {
        None
    }
}

impl Boot {
    fn note(&self, text: &str, prompt: bool) {
        if let (Some(sel), Some(event)) = (&self.sel, milestone(text, prompt)) {
            sel.log(event);
        }
    }

    /// The node's name (as in its login prompt).
    pub fn node(&self) -> &str {
        &self.node
    }

    /// The chassis at power-on; `booted_from` is the boot device this boot
    /// used (a one-shot override is already cleared from `boot_device`).
    pub fn chassis(&self) -> ChassisState {
        self.chassis
    }

    /// The serial port, for output that is not line by line.
    pub fn serial(&self) -> &SerialPort {
        &self.serial
    }

    /// Prints one line (CR LF, as on a serial console), then waits the
    /// host's line delay so output is paced like a real boot.
    pub async fn line(&self, text: &str) {
        self.note(text, false);
        self.serial.write(format!("{text}\r\n"));
        self.pause(1).await;
    }

    /// Waits as long as printing `lines` lines takes: a slow boot step.
    pub async fn pause(&self, lines: u32) {
        tokio::time::sleep(self.line_delay * lines).await;
    }

    /// Prints `text` and from then on echoes every byte the console types,
    /// printing `text` again after each carriage return (like getty).
    pub fn prompt(&self, text: &str) {
        self.note(text, true);
        *lock(&self.prompt) = Some(text.to_string());
        self.serial.write(text);
    }
}

fn lock(prompt: &Prompt) -> std::sync::MutexGuard<'_, Option<String>> {
    prompt
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// How one node's host behaves.
#[derive(Clone, Debug)]
pub struct HostSpec {
    pub node: String,
    pub firmware: Firmware,
    pub line_delay: Duration,
    /// Where boot milestones are logged (the BMC's SEL).
    pub sel: Option<SelHandle>,
}

/// The host task: runs until aborted, or until the chassis is gone.
pub async fn run(spec: HostSpec, mut chassis: watch::Receiver<ChassisState>, serial: SerialPort) {
    let mut input = serial.input();
    let mut host = Host {
        spec,
        serial,
        booting: None,
        prompt: Prompt::default(),
        boots_seen: (0, 0),
    };
    let initial = *chassis.borrow_and_update();
    host.follow(initial);
    loop {
        let booting = async {
            match host.booting.as_mut() {
                Some(boot) => boot.await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            changed = chassis.changed() => {
                if changed.is_err() {
                    return;
                }
                let state = *chassis.borrow_and_update();
                host.follow(state);
            }
            () = booting => host.booting = None,
            typed = input.recv() => match typed {
                Ok(SerialInput::Data(bytes)) => host.echo(&bytes),
                Ok(SerialInput::Break) | Err(broadcast::error::RecvError::Lagged(_)) => {}
                Err(broadcast::error::RecvError::Closed) => return,
            },
        }
    }
}

struct Host {
    spec: HostSpec,
    serial: SerialPort,
    booting: Option<BootFuture>,
    prompt: Prompt,
    /// (power-ons, resets) already booted for.
    boots_seen: (u64, u64),
}

impl Host {
    /// Off: the host stops where it is. A new power-on or reset: it starts
    /// over, from the firmware. A QEMU guest attached in its place: it
    /// stays quiet (the guest is the host).
    fn follow(&mut self, state: ChassisState) {
        let boots = (state.power_on_count, state.resets);
        if !state.power_on || state.guest {
            self.booting = None;
            *lock(&self.prompt) = None;
        } else if boots != self.boots_seen {
            // A fresh prompt state, so a dropped old boot cannot touch it.
            self.prompt = Prompt::default();
            let boot = Boot {
                node: self.spec.node.clone(),
                chassis: state,
                serial: self.serial.clone(),
                line_delay: self.spec.line_delay,
                prompt: self.prompt.clone(),
                sel: self.spec.sel.clone(),
            };
            self.booting = Some(self.spec.firmware.boot(boot));
        }
        self.boots_seen = boots;
    }

    fn echo(&self, typed: &[u8]) {
        let Some(prompt) = lock(&self.prompt).clone() else {
            return; // busy booting (or off): input is ignored
        };
        let mut out = Vec::with_capacity(typed.len());
        for &b in typed {
            out.push(b);
            if b == b'\r' {
                out.push(b'\n');
                out.extend_from_slice(prompt.as_bytes());
            }
        }
        self.serial.write(out);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sim::chassis::BootDevice;

    fn spec(firmware: Firmware) -> HostSpec {
        HostSpec {
            node: "n1".into(),
            firmware,
            line_delay: Duration::ZERO,
            sel: None,
        }
    }

    /// Output until it contains `needle` (or panics after 5 s).
    async fn until(out: &mut broadcast::Receiver<Vec<u8>>, needle: &str) -> String {
        let mut seen = String::new();
        let wait = async {
            while !seen.contains(needle) {
                seen.push_str(&String::from_utf8_lossy(&out.recv().await.unwrap()));
            }
        };
        tokio::time::timeout(Duration::from_secs(5), wait)
            .await
            .unwrap_or_else(|_| panic!("no {needle:?} in {seen:?}"));
        seen
    }

    fn on(count: u64, device: BootDevice) -> ChassisState {
        ChassisState {
            power_on: true,
            power_on_count: count,
            booted_from: device,
            ..ChassisState::default()
        }
    }

    #[tokio::test]
    async fn boots_on_power_on_echoes_at_the_prompt_and_stops_when_off() {
        let (tx, rx) = watch::channel(ChassisState::default());
        let serial = SerialPort::default();
        let mut out = serial.output();
        let task = tokio::spawn(run(spec(Firmware::petitboot()), rx, serial.clone()));

        tx.send(on(1, BootDevice::Pxe)).unwrap();
        let boot = until(&mut out, "n1 login: ").await;
        assert!(boot.contains("Petitboot (v1.14)") && boot.contains("pxelinux.cfg"));
        assert!(boot.contains("kexec_core: Starting new kernel"), "{boot}");
        serial.deliver(SerialInput::Data(b"ro\rx".to_vec()));
        assert_eq!(out.recv().await.unwrap(), b"ro\r\nn1 login: x");

        tx.send(on(2, BootDevice::Disk)).unwrap();
        let boot = until(&mut out, "n1 login: ").await;
        assert!(
            !boot.contains("pxelinux") && boot.contains("[disk]"),
            "{boot}"
        );

        tx.send(ChassisState::default()).unwrap();
        tokio::time::sleep(Duration::from_millis(20)).await;
        while out.try_recv().is_ok() {}
        serial.deliver(SerialInput::Data(b"y".to_vec()));
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert!(out.try_recv().is_err(), "no echo while off");
        task.abort();
    }

    #[tokio::test]
    async fn stays_quiet_while_a_guest_is_the_host() {
        let (tx, rx) = watch::channel(ChassisState::default());
        let serial = SerialPort::default();
        let mut out = serial.output();
        let task = tokio::spawn(run(spec(Firmware::petitboot()), rx, serial));
        let guest = |count| ChassisState {
            guest: true,
            ..on(count, BootDevice::Pxe)
        };
        tx.send(guest(1)).unwrap();
        tx.send(guest(2)).unwrap();
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(
            out.try_recv().is_err(),
            "the virtual host booted a guest's node"
        );
        // The guest gone and powered on again: the virtual host boots.
        tx.send(on(3, BootDevice::None)).unwrap();
        until(&mut out, "n1 login: ").await;
        task.abort();
    }

    #[tokio::test]
    async fn power_off_stops_a_boot_midway() {
        let slow = Firmware::new(|boot: Boot| async move {
            boot.line("one").await;
            tokio::time::sleep(Duration::from_millis(200)).await;
            boot.line("two").await;
        });
        let (tx, rx) = watch::channel(ChassisState::default());
        let serial = SerialPort::default();
        let mut out = serial.output();
        let task = tokio::spawn(run(spec(slow), rx, serial));
        tx.send(on(1, BootDevice::None)).unwrap();
        until(&mut out, "one").await;
        tx.send(ChassisState::default()).unwrap();
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert!(out.try_recv().is_err(), "the boot went on after power-off");
        task.abort();
    }
}

#[cfg(test)]
mod milestone_tests {
    use super::*;

    #[test]
    fn petitboot_banner_and_login_prompt_are_milestones() {
        assert_eq!(
            milestone("Petitboot (v1.14)", false),
            Some(Event::FirmwareProgress)
        );
        assert_eq!(milestone("node1 login: ", true), Some(Event::OsBoot));
        assert_eq!(milestone("petitboot> ", true), None);
        assert_eq!(milestone("node1 login: ", false), None);
        assert_eq!(milestone("[    0.000000] Linux version", false), None);
    }
}
