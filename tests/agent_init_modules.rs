//! agent/init's module loading as a deploy ramdisk runs it: a fake kernel
//! module tree goes through agent/add-to-initramfs.sh --modules-from, and the
//! ramdisk's /init runs (with `chroot`, in namespaces this test creates:
//! root needed) over a stand-in /sys. Its `modprobe` writes down what real
//! busybox modprobe would load (`modprobe -D`), so nothing reaches the
//! host's kernel.

mod support;

use std::fs;
use std::path::Path;
use std::process::Command;

use support::ramdisk::{ramdisk, run_init, sh};

/// A stand-in kernel module: the NUL-separated .modinfo strings busybox
/// depmod reads, compressed as the file name says.
fn fake_module(tree: &Path, path: &str, modinfo: &[&str]) {
    let file = tree.join(path);
    fs::create_dir_all(file.parent().unwrap()).unwrap();
    let mut body = b"\x7fELF fake module\0".to_vec();
    for field in modinfo {
        body.extend_from_slice(field.as_bytes());
        body.push(0);
    }
    let compress = match path.rsplit('.').next() {
        Some("xz") => Some("xz"),
        Some("gz") => Some("gzip"),
        Some("zst") => Some("zstd"),
        _ => None,
    };
    match compress {
        None => fs::write(&file, body).unwrap(),
        Some(tool) => {
            let raw = file.with_extension("");
            fs::write(&raw, body).unwrap();
            let status = Command::new(tool)
                .arg("-q")
                .arg(&raw)
                .status()
                .unwrap_or_else(|e| {
                    panic!("{tool} must be installed (scripts/test installs it): {e}")
                });
            assert!(status.success() && file.exists(), "{tool} {raw:?}");
            let _ = fs::remove_file(&raw);
        }
    }
}

/// The modprobe the test puts first on /init's PATH: it writes down what
/// real busybox modprobe would load, in order (`-D` loads nothing), and
/// plays the kernel: virtio_pci's probe registers the virtio devices,
/// virtio_net's the NIC eth0.
const STUB_MODPROBE: &str = r#"#!/bin/sh
echo "modprobe $*" >> /modprobe.log
busybox modprobe -D "$@" 2>/dev/null | tee -a /modprobe.log > /tmp/deps
S=$PETITLAB_SYS
if grep -q virtio_pci.ko /tmp/deps; then
    mkdir -p $S/bus/virtio/devices/virtio0 $S/bus/virtio/devices/virtio1
    echo virtio:d00000001v00001AF4 > $S/bus/virtio/devices/virtio0/modalias
    echo virtio:d00000002v00001AF4 > $S/bus/virtio/devices/virtio1/modalias
fi
if grep -q virtio_net.ko /tmp/deps; then
    mkdir -p $S/class/net/eth0/device $S/bus/virtio/drivers/virtio_net
    echo 52:54:00:12:34:56 > $S/class/net/eth0/address
    ln -sf $S/bus/virtio/drivers/virtio_net $S/class/net/eth0/device/driver
fi
exit 0
"#;

#[test]
fn the_init_loads_the_nic_and_disk_modules_in_dependency_order_before_dhcp() {
    let dir = tempfile::tempdir().unwrap();
    let work = dir.path();
    // The deploy kernel is "this" kernel: busybox modprobe looks in
    // /lib/modules/$(uname -r).
    let version = sh(work, "uname -r").trim().to_string();
    let tree = work.join("linux-image/lib/modules").join(&version);
    let pci = "alias=pci:v00001AF4d*sv*sd*bc*sc*i*";
    for (path, modinfo) in [
        ("kernel/drivers/virtio/virtio.ko", vec!["depends="]),
        (
            "kernel/drivers/virtio/virtio_ring.ko",
            vec!["depends=virtio"],
        ),
        (
            "kernel/drivers/virtio/virtio_pci.ko.xz",
            vec!["depends=virtio,virtio_ring", pci],
        ),
        (
            "kernel/drivers/net/virtio_net.ko.zst",
            vec![
                "depends=virtio_ring,virtio,net_failover",
                "alias=virtio:d00000001v*",
            ],
        ),
        (
            "kernel/drivers/net/net_failover.ko",
            vec!["depends=failover"],
        ),
        // Outside the NIC and disk directories: copied as a dependency.
        ("kernel/net/core/failover.ko", vec!["depends="]),
        (
            "kernel/drivers/block/virtio_blk.ko.gz",
            vec!["depends=virtio,virtio_ring", "alias=virtio:d00000002v*"],
        ),
        ("kernel/drivers/scsi/scsi_mod.ko", vec!["depends="]),
        (
            "kernel/drivers/scsi/sd_mod.ko",
            vec!["depends=scsi_mod,crc-t10dif", "alias=scsi:t-0x00*"],
        ),
        (
            "kernel/lib/crc-t10dif.ko",
            vec!["depends=", "softdep=pre: crct10dif"],
        ),
        // Named by the soft dependency only: "crct10dif" is its algorithm.
        (
            "kernel/crypto/crct10dif_generic.ko",
            vec!["depends=", "alias=crypto-crct10dif"],
        ),
        // A NIC driver no device alias names: petitlab.modules= loads it.
        (
            "kernel/drivers/net/ethernet/acme/acme_nic.ko",
            vec!["depends="],
        ),
        // Neither NIC nor disk: stays out of the ramdisk.
        (
            "kernel/sound/pci/hda/snd-hda-intel.ko",
            vec!["depends=", "alias=pci:v00008086d*sv*sd*bc04sc03i*"],
        ),
    ] {
        fake_module(&tree, path, &modinfo);
    }

    let (root, report) = ramdisk(work, &["--modules-from", tree.to_str().unwrap()]);
    assert!(
        report.contains(&format!("petitlab: 12 modules of {version} from")),
        "{report}"
    );
    let modules = root.join("lib/modules").join(&version);
    for ko in [
        "kernel/drivers/net/virtio_net.ko",
        "kernel/drivers/virtio/virtio_pci.ko",
        "kernel/drivers/block/virtio_blk.ko",
        "kernel/net/core/failover.ko",
        "kernel/crypto/crct10dif_generic.ko",
    ] {
        let body = fs::read(modules.join(ko)).unwrap_or_else(|e| panic!("{ko}: {e}"));
        assert!(body.starts_with(b"\x7fELF"), "{ko} is copied decompressed");
    }
    let listing = sh(&modules, "find . -type f | sort");
    assert!(!listing.contains("snd"), "{listing}");
    assert!(
        !listing.contains(".xz") && !listing.contains(".gz") && !listing.contains(".zst"),
        "{listing}"
    );
    let dep = fs::read_to_string(modules.join("modules.dep")).unwrap();
    assert!(dep.contains("kernel/drivers/net/virtio_net.ko: "), "{dep}");

    // /sys as the kernel shows it before any module is loaded.
    let sys = root.join("fakesys");
    for (dev, alias) in [
        (
            "pci/devices/0000:00:03.0",
            "pci:v00001AF4d00001000sv00001AF4sd00000001bc02sc00i00",
        ),
        (
            "pci/devices/0000:00:1b.0",
            "pci:v00008086d0000293Esv00001AF4sd00001100bc04sc03i00",
        ),
        ("platform/devices/serial8250", "platform:serial8250"),
    ] {
        fs::create_dir_all(sys.join("bus").join(dev)).unwrap();
        fs::write(
            sys.join("bus").join(dev).join("modalias"),
            format!("{alias}\n"),
        )
        .unwrap();
    }
    fs::create_dir_all(sys.join("class/net/lo")).unwrap();
    let stub = |name: &str, body: &str| {
        let path = root.join("usr/sbin").join(name);
        let _ = fs::remove_file(&path);
        fs::write(&path, body).unwrap();
        sh(work, &format!("chmod 755 {}", path.display()));
    };
    stub("modprobe", STUB_MODPROBE);
    stub(
        "udhcpc",
        "#!/bin/sh\necho \"udhcpc $*\" >> /modprobe.log\nexit 1\n",
    );

    fs::write(
        root.join("cmdline"),
        "console=hvc0 petitlab.modules=acme-nic petitlab.api=http://10.0.0.1:8080/v1/\n",
    )
    .unwrap();
    let out = run_init(
        &root,
        &["unshare", "--net", "--mount"],
        &[
            ("PETITLAB_SYS", "/fakesys"),
            ("PETITLAB_CMDLINE", "/cmdline"),
        ],
    );

    let log = fs::read_to_string(root.join("modprobe.log"))
        .unwrap_or_else(|e| panic!("/init never ran modprobe ({e}):\n{out}"));
    let at = |needle: &str| {
        log.lines()
            .position(|l| l.contains(needle))
            .unwrap_or_else(|| panic!("{needle:?} never loaded:\n{log}\n{out}"))
    };
    for chain in [
        &["/virtio.ko", "/virtio_ring.ko", "/virtio_pci.ko"][..],
        &["/failover.ko", "/net_failover.ko", "/virtio_net.ko"],
        &["/virtio_ring.ko", "/virtio_blk.ko"],
        &["/scsi_mod.ko", "/sd_mod.ko"],
    ] {
        for pair in chain.windows(2) {
            assert!(
                at(pair[0]) < at(pair[1]),
                "{} loads before {}:\n{log}",
                pair[0],
                pair[1]
            );
        }
    }
    at("/acme_nic.ko"); // from petitlab.modules=
    let dhcp = at("udhcpc -i eth0");
    let lines: Vec<&str> = log.lines().collect();
    let last_insmod = lines.iter().rposition(|l| l.starts_with("insmod")).unwrap();
    assert!(last_insmod < dhcp, "every module loads before DHCP:\n{log}");
    assert!(!log.contains("snd"), "{log}");
    for line in [
        format!("petitlab-init: looked up the drivers of 5 devices in /lib/modules/{version}; loaded: "),
        "petitlab-init: eth0: no IPv4 address after DHCP (MAC 52:54:00:12:34:56, driver virtio_net)"
            .to_string(),
    ] {
        assert!(out.contains(&line), "{line:?} missing:\n{out}");
    }
}
