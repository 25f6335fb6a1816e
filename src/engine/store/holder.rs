//! Who holds a reservation (a process on a host, run by a user), and the UTC
//! timestamp format used when naming a holder in errors.

use std::fmt;

use serde::Serialize;

/// `ms` since the epoch as "YYYY-MM-DD HH:MM:SS UTC" (no timezone database needed).
pub fn format_utc(ms: i64) -> String {
    let (year, month, day, h, m, s) = crate::calendar::utc_fields(ms.div_euclid(1000));
    format!("{year:04}-{month:02}-{day:02} {h:02}:{m:02}:{s:02} UTC")
}

/// `ms` since the epoch as RFC 3339 with milliseconds,
/// "YYYY-MM-DDTHH:MM:SS.mmmZ" (the calendar of [`format_utc`]).
pub fn format_utc_ms(ms: i64) -> String {
    let (year, month, day, h, m, s) = crate::calendar::utc_fields(ms.div_euclid(1000));
    let milli = ms.rem_euclid(1000);
    format!("{year:04}-{month:02}-{day:02}T{h:02}:{m:02}:{s:02}.{milli:03}Z")
}

/// Who holds a reservation: a process on a host, run by a user.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct Holder {
    pub pid: u32,
    pub host: String,
    pub user: String,
}

impl Holder {
    /// This process.
    pub fn current() -> Holder {
        Holder {
            pid: std::process::id(),
            host: hostname(),
            user: username(),
        }
    }

    /// Some(alive) when the holder is on this host; None on another host (cannot tell).
    pub fn is_alive(&self) -> Option<bool> {
        if self.host != hostname() {
            return None;
        }
        // pid 0 would address our own process group, not a process.
        let pid = match libc::pid_t::try_from(self.pid) {
            Ok(pid) if pid > 0 => pid,
            _ => return Some(false),
        };
        // SAFETY: signal 0 only checks that the pid exists and may be signalled.
        if unsafe { libc::kill(pid, 0) } == 0 {
            return Some(true);
        }
        // EPERM: it exists but belongs to someone else.
        Some(std::io::Error::last_os_error().raw_os_error() == Some(libc::EPERM))
    }
}

impl fmt::Display for Holder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}@{} pid {}", self.user, self.host, self.pid)
    }
}

fn hostname() -> String {
    let name = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default();
    match name.trim() {
        "" => "localhost".to_string(),
        name => name.to_string(),
    }
}

/// The user this process runs as, from the user database: `$USER` is
/// often unset (a service, `sudo`, CI) and can be anything.
fn username() -> String {
    // SAFETY: getuid cannot fail and touches no memory of ours.
    crate::users::name_of(unsafe { libc::getuid() })
}
