//! The dashboard: a ratatui TUI over the engine's `LabHandle` (commands in,
//! events out). It never blocks on I/O and redraws only on change.

pub mod app;
mod app_events;
mod app_input;
mod app_panes;
pub mod backend;
pub mod bmc_info;
pub mod command;
pub mod console_keys;
pub mod console_pane;
pub mod diff;
pub mod keymap;
pub mod model;
pub mod pacer;
pub mod run;
pub mod stage_chart;
#[cfg(test)]
pub(crate) mod test_fixture;
pub mod theme;
pub mod timeline;
pub mod views;
pub mod wall;
