//! A Redfish client for BMCs: OpenBMC's bmcweb first, any DMTF Redfish
//! service in general (sushy-tools is what the tests run against).
//!
//! - [`tls`]: which certificates to trust (CA file, SHA-256 pin, any), also
//!   used by the websocket console;
//! - [`link`]: links from the BMC checked to stay under its `/redfish/v1`;
//! - [`model`]: the JSON read as petitlab's types, no I/O;
//! - [`transport`]: one bounded, timed HTTP exchange;
//! - [`client`]: login, the system, and the operations.

pub mod client;
pub mod error;
pub mod link;
pub mod model;
pub mod tls;
mod transport;

#[cfg(test)]
mod client_tests;
#[cfg(test)]
mod model_tests;

pub use client::{Client, MAX_LOG_ENTRIES, Target};
pub use error::RedfishError;
pub use model::{
    BootOverride, BootTarget, FirmwareVersions, LogEntry, OverrideEnabled, PowerState, ResetType,
    Sensor, SerialConsoles,
};
pub use tls::{TlsPolicy, TlsRefusals, client_config, client_config_with_refusals, fingerprint_of};
pub use transport::MAX_BODY;
