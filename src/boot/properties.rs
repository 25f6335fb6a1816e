//! The node properties the petitboot driver reads (the spec's get_properties).

use super::Property;

pub static PROPERTIES: &[Property] = &[
    Property {
        name: "macs",
        required: true,
        description: "MAC addresses of the node's NICs; DHCP options and pxelinux.cfg/01-<mac> discovery files are keyed on them.",
    },
    Property {
        name: "deploy.kernel",
        required: true,
        description: "Path of the deploy kernel (ppc64le or ppc64) that petitboot kexecs to deploy the node.",
    },
    Property {
        name: "deploy.ramdisk",
        required: true,
        description: "Path of the deploy ramdisk booted with deploy.kernel.",
    },
    Property {
        name: "instance.image",
        required: true,
        description: "Path of the instance image: a whole-disk image (boot_option local) or a partition image (boot_option netboot).",
    },
    Property {
        name: "instance.kernel",
        required: false,
        description: "Kernel of a partition image; required with boot_option netboot.",
    },
    Property {
        name: "instance.ramdisk",
        required: false,
        description: "Ramdisk of a partition image; required with boot_option netboot.",
    },
    Property {
        name: "instance.root_device",
        required: false,
        description: "root= device of a partition image (e.g. /dev/sda2 or UUID=...); required with boot_option netboot.",
    },
    Property {
        name: "boot_option",
        required: false,
        description: "\"local\" (default): after deploy the node boots its disk and gets no config; \"netboot\": it netboots the instance kernel every time.",
    },
    Property {
        name: "cpu_arch",
        required: false,
        description: "\"ppc64le\" (default) or \"ppc64\".",
    },
    Property {
        name: "ipv4",
        required: false,
        description: "The node's address; adds a pxelinux.cfg/<HEX-IP> discovery file (the DHCP host line carries no address).",
    },
    Property {
        name: "console",
        required: false,
        description: "Kernel console, e.g. hvc0 or ttyS0,115200; becomes console= on the kernel command line.",
    },
    Property {
        name: "kernel_args",
        required: false,
        description: "Extra kernel arguments for deploy and netboot instance configs.",
    },
    Property {
        name: "protocol",
        required: false,
        description: "\"http\" or \"tftp\": this node's config and kernel URLs, instead of [petitboot] protocol.",
    },
    Property {
        name: "bootif",
        required: false,
        description: "true: petitboot appends BOOTIF=01-<mac> of the booting NIC (IPAPPEND 2).",
    },
];
