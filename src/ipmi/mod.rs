//! IPMI over LAN (RMCP+): the wire format and crypto shared by the client and
//! the BMC simulator, the async client session, chassis/sensor commands, and
//! the BMC toolbox: event log (sel), inventory (fru), controller (mc).

pub mod chassis;
pub mod crypto;
pub mod error;
pub mod fru;
mod handshake;
mod link;
pub mod mc;
pub mod message;
pub mod packet;
pub mod rakp;
pub mod rmcp;
pub mod sel;
mod sel_desc;
pub mod sensors;
pub mod seq_window;
pub mod sol;
pub mod sol_driver;

pub use crypto::CipherSuite;
pub use error::IpmiError;
pub use rmcp::{Bmc, CipherChoice, Credentials, Session, Target, Timing};

#[cfg(test)]
mod crypto_kat;
#[cfg(test)]
mod fuzz_tests;
