// Each test crate compiles all of `support` but uses only part of it.
#[allow(dead_code)]
pub mod cast;
#[allow(dead_code)]
pub mod guarded;
#[allow(dead_code)]
pub mod ipmi_sim;
#[allow(dead_code)]
pub mod ipmi_sim_farm;
#[allow(dead_code)]
pub mod ipmitool_c17;
#[allow(dead_code)]
pub mod ipmitool_kat;
#[allow(dead_code)]
pub mod lab;
#[allow(dead_code)]
pub mod lossy_relay;
#[allow(dead_code)]
pub mod netns;
#[allow(dead_code)]
pub mod petitboot_rig;
#[allow(dead_code)]
pub mod powernv;
#[allow(dead_code)]
pub mod ramdisk;
#[allow(dead_code)]
pub mod service;
#[allow(dead_code)]
pub mod sshd;
#[allow(dead_code)]
pub mod sushy;
#[allow(dead_code)]
pub mod tmux;
#[allow(dead_code)]
pub mod tools;
#[allow(dead_code)]
pub mod virtual_lab;
#[allow(dead_code)]
pub mod ws_peer;
