//! petitlab: a lab manager for OpenPOWER servers that netboot through petitboot.

pub mod boot;
pub mod calendar;
pub mod console;
pub mod console_link;
pub mod demo;
pub mod dhcp;
pub mod engine;
pub mod fsutil;
pub mod hardware;
pub mod inventory;
pub mod ipmi;
pub mod iscsi;
pub mod logging;
pub mod panics;
pub mod redfish;
pub mod serve;
pub mod service;
pub mod sim;
pub mod text;
pub mod timeline;
pub mod tui;
pub mod users;
