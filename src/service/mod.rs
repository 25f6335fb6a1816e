//! The lab service: one process owns the lab's engine (store, poller, BMC
//! sessions, consoles, actions), and the CLI and dashboards attach to it
//! over a unix socket (conserver's model: one connection per BMC, many
//! clients). The protocol is JSON-RPC 2.0, one JSON text per line; see
//! docs/service-api.md.

mod boots;
pub mod client;
pub mod fanout;
mod methods;
pub mod peer;
pub mod protocol;
pub mod server;

pub use client::{Client, ClientError};
pub use server::{Service, ServiceOptions};
