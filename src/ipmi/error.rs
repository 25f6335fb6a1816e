//! What can go wrong talking to a BMC, each cause named so an admin knows
//! what to fix (credentials, cipher suite, network) without a packet capture.

use std::net::SocketAddr;

use super::message::completion_meaning;
use super::rakp::status_meaning;

#[derive(Debug, thiserror::Error)]
pub enum IpmiError {
    #[error("no answer from BMC {addr} after {tries} tries ({step})")]
    Timeout {
        addr: SocketAddr,
        tries: u32,
        step: &'static str,
    },
    #[error(
        "BMC {addr} answered {step} only with malformed packets ({count}, the last: {why}): \
         is that port an IPMI BMC?"
    )]
    Malformed {
        addr: SocketAddr,
        step: &'static str,
        count: u32,
        why: &'static str,
    },
    #[error("BMC {addr} is unreachable: nothing listens on that UDP port")]
    PortUnreachable { addr: SocketAddr },
    #[error("cannot resolve BMC host {host:?}: {why}")]
    Resolve { host: String, why: String },
    #[error("wrong password for user {user:?} (the BMC's RAKP 2 auth code does not match)")]
    WrongPassword { user: String },
    #[error("unknown user {user:?} on the BMC")]
    UnknownUser { user: String },
    #[error("cipher suite {wanted} is not offered by the BMC (it offers {offered:?})")]
    CipherNotOffered { wanted: String, offered: Vec<u8> },
    #[error("the BMC does not support IPMI 2.0 / RMCP+")]
    NoRmcpPlus,
    #[error("the BMC refused the session: {} (status 0x{code:02X})", status_meaning(*.code))]
    SessionRefused { code: u8 },
    /// RAKP 4 carried an error although RAKP 2 matched our password.
    #[error(
        "the BMC answered RAKP 3 with status 0x{code:02X} ({}), although its RAKP 2 matched the password{}",
        rakp3_status(*.code),
        if *.rakp1_resent {
            "; RAKP 1 had to be resent, so the BMC answers slower than the timeout and \
             may have answered the resend with a new challenge: raise the BMC's timeout"
        } else {
            ""
        }
    )]
    Rakp3Refused { code: u8, rakp1_resent: bool },
    #[error("{command} failed: {} (completion code 0x{code:02X})", completion_meaning(*.code))]
    Completion { command: &'static str, code: u8 },
    #[error("unexpected reply to {command}: {why}")]
    Protocol { command: &'static str, why: String },
    /// A request for the console's session while it is not connected
    /// (before activation, between reconnects, after close): the caller can
    /// fall back on a session of its own.
    #[error("the console session is not connected")]
    ConsoleNotConnected,
    #[error("network error talking to BMC {addr}: {source}")]
    Io {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
}

impl IpmiError {
    /// Errors that a fresh session might cure (the BMC forgot ours, or a
    /// reply was lost); credentials and protocol errors are not retried.
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            IpmiError::Timeout { .. } | IpmiError::PortUnreachable { .. }
        )
    }

    /// A short, stable label for tables and JSON ("timeout", "auth", …).
    pub fn kind(&self) -> &'static str {
        match self {
            IpmiError::Timeout { .. } | IpmiError::PortUnreachable { .. } => "unreachable",
            IpmiError::Resolve { .. } => "resolve",
            IpmiError::WrongPassword { .. } | IpmiError::UnknownUser { .. } => "auth",
            IpmiError::CipherNotOffered { .. } | IpmiError::NoRmcpPlus => "cipher",
            IpmiError::SessionRefused { .. } | IpmiError::Rakp3Refused { .. } => "refused",
            IpmiError::Completion { .. } => "completion",
            IpmiError::Protocol { .. } | IpmiError::Malformed { .. } => "protocol",
            IpmiError::ConsoleNotConnected => "console",
            IpmiError::Io { .. } => "io",
        }
    }
}

/// A RAKP 4 status, without the "wrong password?" guess that fits other
/// messages: after a matching RAKP 2 the password is not the cause.
fn rakp3_status(code: u8) -> &'static str {
    match code {
        0x0F => "invalid integrity check value",
        code => status_meaning(code),
    }
}

pub type Result<T> = std::result::Result<T, IpmiError>;
