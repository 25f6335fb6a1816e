//! The dashboard: a ratatui TUI over the engine's `LabHandle` (commands in,
//! events out). It never blocks on I/O and redraws only on change.

pub mod theme;
