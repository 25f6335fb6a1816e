//! ipmitool over RMCP+ with cipher suite 17 against a `petitlab sim` BMC on
//! loopback (lab.toml.example's admin/password): the independent LAN peer of
//! the tests where the simulator is a QEMU guest's in-band BMC.

use std::process::Command;

use super::petitboot_rig::require;

/// Runs `ipmitool … COMMAND` (bounded by `timeout 30`); its stdout, or a
/// failed test showing both outputs.
pub fn ipmitool(port: u16, command: &str) -> String {
    let out = Command::new("timeout")
        .arg("30")
        .arg(require("ipmitool", "ipmitool"))
        .args(["-I", "lanplus", "-C", "17", "-H", "127.0.0.1"])
        .args(["-p", &port.to_string(), "-U", "admin", "-P", "password"])
        .args(command.split_whitespace())
        .output()
        .expect("run ipmitool");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "ipmitool {command}: {stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}
