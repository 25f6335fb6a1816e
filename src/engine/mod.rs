//! The engine: everything the CLI and the TUI share, with no UI in it.

pub mod poller;
pub mod targets;
