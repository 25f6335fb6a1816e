//! The engine: everything the CLI and the TUI share, with no UI in it.

pub mod action;
pub mod agent_api;
pub mod bmc_ops;
pub mod bmc_steps;
pub mod boot_record;
pub mod console_watch;
pub mod deploy;
pub mod deploy_iscsi;
pub mod image;
pub mod lab;
pub mod lifecycle;
pub mod live;
pub mod manual;
pub mod poller;
pub mod rejections;
pub mod report;
pub mod store;
pub mod targets;
pub mod undeploy;
