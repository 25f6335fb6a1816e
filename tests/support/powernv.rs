//! QEMU arguments every emulated POWER9 (`-M powernv9 -nodefaults`) of the
//! tests needs, in one place (DESIGN.md, "Emulated POWER9 as a test peer").

use std::net::SocketAddr;

/// Two PHBs, each with a root port (`rp0`, `rp1`): `-nodefaults` drops the
/// machine's own, a PHB without a root port fails to train, and two train
/// faster than the default six. Put the NIC on `rp0` and the disk on `rp1`.
pub fn phb_args() -> Vec<String> {
    (0..2)
        .flat_map(|i| {
            [
                "-device".to_string(),
                format!("pnv-phb,chip-id=0,index={i},id=pcie{i}"),
                "-device".to_string(),
                format!("pnv-phb-root-port,id=rp{i},bus=pcie{i},chassis={i}"),
            ]
        })
        .collect()
}

/// An external BMC (ipmi_sim's `serial bt … codec VM`, or `petitlab sim
/// --vm-bmc`) listening on `bmc`, reached in-band over a BT interface:
/// skiboot, Linux's ipmi_powernv and petitboot all talk to it. QEMU
/// reconnects every second should the BMC restart.
pub fn external_bmc_args(bmc: SocketAddr) -> Vec<String> {
    let chardev = format!(
        "socket,id=ipmi0,host={},port={},reconnect-ms=1000",
        bmc.ip(),
        bmc.port()
    );
    [
        "-chardev",
        &chardev,
        "-device",
        "ipmi-bmc-extern,id=bmc0,chardev=ipmi0",
        "-device",
        "isa-ipmi-bt,bmc=bmc0,irq=10",
    ]
    .map(String::from)
    .to_vec()
}
