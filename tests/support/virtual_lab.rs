//! A virtual lab for lifecycle tests: generated deploy kernels, ramdisks and
//! instance images in a temp dir, a lab.toml on free loopback ports (HTTP,
//! TFTP, one BMC per node), dnsmasq files in the state dir, and short
//! deploy timeouts.

use std::fmt::Write as _;
use std::net::{Ipv4Addr, TcpListener, UdpSocket};
use std::path::{Path, PathBuf};

use petitlab::demo::filler;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Proto {
    Http,
    Tftp,
}

#[derive(Clone, Debug)]
pub struct VNode {
    pub name: String,
    pub proto: Proto,
    pub netboot: bool,
    pub cipher_suite: &'static str,
    pub mac: String,
    /// `deploy_interface = "iscsi"` instead of the default agent.
    pub iscsi: bool,
    /// The instance image is given as qcow2 (converted from the raw one by qemu-img).
    pub qcow2: bool,
}

impl VNode {
    pub fn new(name: &str, proto: Proto, netboot: bool, index: usize) -> VNode {
        VNode {
            name: name.to_string(),
            proto,
            netboot,
            cipher_suite: ["17", "\"auto\"", "3"][index % 3],
            mac: format!(
                "52:54:00:{:02x}:{:02x}:{:02x}",
                index >> 16 & 0xff,
                index >> 8 & 0xff,
                index & 0xff
            ),
            iscsi: false,
            qcow2: false,
        }
    }

    /// Deployed by petitlab over iSCSI rather than by the agent.
    pub fn iscsi(mut self) -> VNode {
        self.iscsi = true;
        self
    }

    /// Its instance image is a qcow2 file.
    pub fn qcow2(mut self) -> VNode {
        self.qcow2 = true;
        self
    }
}

/// `qemu-img convert -O qcow2 raw qcow2`; panics with qemu-img's words.
fn to_qcow2(raw: &Path, qcow2: &Path) {
    let out = std::process::Command::new("qemu-img")
        .args(["convert", "-f", "raw", "-O", "qcow2"])
        .arg(raw)
        .arg(qcow2)
        .output()
        .unwrap_or_else(|e| panic!("cannot run qemu-img: {e} (apt-get install qemu-utils)"));
    assert!(
        out.status.success(),
        "qemu-img convert: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

pub struct VirtualLab {
    pub dir: tempfile::TempDir,
    pub lab: PathBuf,
    pub nodes: Vec<VNode>,
    pub http_port: u16,
    pub tftp_port: u16,
}

fn free_tcp() -> u16 {
    TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Free UDP ports, all distinct: every socket stays bound until all are
/// chosen, so the kernel cannot hand the same port out twice.
fn free_udp_ports(count: usize) -> Vec<u16> {
    let held: Vec<UdpSocket> = (0..count)
        .map(|_| UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).unwrap())
        .collect();
    held.iter()
        .map(|s| s.local_addr().unwrap().port())
        .collect()
}

/// An image the virtual host recognises: a name line, then data.
pub fn image_bytes(name: &str, seed: u64, len: usize) -> Vec<u8> {
    let mut bytes = format!("PETITLAB-IMAGE {name}\n").into_bytes();
    bytes.extend(filler(seed, len));
    bytes
}

impl VirtualLab {
    /// `extra` goes into lab.toml's top level (e.g. a `[deploy]` table).
    pub fn new(nodes: Vec<VNode>, image_len: usize, deploy: &str) -> VirtualLab {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        std::fs::write(d.join("bmc-password"), "s3cret-bmc\n").unwrap();
        std::fs::write(d.join("deploy.vmlinux"), filler(1, 64 << 10)).unwrap();
        std::fs::write(d.join("deploy.initramfs"), filler(2, 96 << 10)).unwrap();
        std::fs::write(d.join("instance.vmlinux"), filler(3, 48 << 10)).unwrap();
        std::fs::write(d.join("instance.initrd"), filler(4, 32 << 10)).unwrap();
        // One for TFTP, one per BMC.
        let mut udp = free_udp_ports(nodes.len() + 1);
        let (http_port, tftp_port) = (free_tcp(), udp.pop().unwrap());
        let mut text = format!(
            "state_dir = \"{}/state\"\n\
             [http]\nbase_url = \"http://127.0.0.1:{http_port}/\"\nlisten = \"127.0.0.1:{http_port}\"\n\
             [tftp]\nbase_url = \"tftp://127.0.0.1:{tftp_port}/\"\nlisten = \"127.0.0.1:{tftp_port}\"\n\
             [dhcp]\nbackend = \"dnsmasq\"\n{deploy}\n",
            d.display()
        );
        for (i, node) in nodes.iter().enumerate() {
            let image = d.join(format!("{}.img", node.name));
            std::fs::write(
                &image,
                image_bytes(
                    &format!("Virtual Linux for {}", node.name),
                    100 + i as u64,
                    image_len,
                ),
            )
            .unwrap();
            let source = if node.qcow2 {
                let qcow2 = image.with_extension("qcow2");
                to_qcow2(&image, &qcow2);
                qcow2
            } else {
                image.clone()
            };
            let protocol = match node.proto {
                Proto::Http => "http",
                Proto::Tftp => "tftp",
            };
            let _ = write!(
                text,
                "\n[[node]]\nname = \"{}\"\nmacs = [\"{}\"]\nprotocol = \"{protocol}\"\nconsole = \"hvc0\"\n\
                 boot_option = \"{}\"\ndeploy_interface = \"{}\"\n\
                 [node.bmc]\nhost = \"127.0.0.1\"\nport = {}\nusername = \"admin\"\n\
                 password_file = \"bmc-password\"\ncipher_suite = {}\n\
                 [node.deploy]\nkernel = \"deploy.vmlinux\"\nramdisk = \"deploy.initramfs\"\n\
                 [node.instance]\nimage = \"{}\"\n",
                node.name,
                node.mac,
                if node.netboot { "netboot" } else { "local" },
                if node.iscsi { "iscsi" } else { "agent" },
                udp[i],
                node.cipher_suite,
                source.display(),
            );
            if node.netboot {
                text.push_str(
                    "kernel = \"instance.vmlinux\"\nramdisk = \"instance.initrd\"\nroot_device = \"/dev/sda2\"\n",
                );
            }
        }
        let lab = d.join("lab.toml");
        std::fs::write(&lab, text).unwrap();
        VirtualLab {
            dir,
            lab,
            nodes,
            http_port,
            tftp_port,
        }
    }

    pub fn state(&self) -> PathBuf {
        self.dir.path().join("state")
    }

    /// The instance image as raw bytes (a qcow2 node's source is beside it).
    pub fn image(&self, node: &str) -> PathBuf {
        self.dir.path().join(format!("{node}.img"))
    }

    /// The virtual host's disk (`petitlab sim`'s default `--disks`).
    pub fn disk(&self, node: &str) -> PathBuf {
        self.state().join("sim/disks").join(format!("{node}.img"))
    }

    pub fn store(&self) -> PathBuf {
        self.state().join("petitlab.db")
    }

    /// The node's row in the state store; panics if it has none.
    pub fn record(&self, node: &str) -> petitlab::engine::store::NodeRecord {
        petitlab::engine::store::Store::open(&self.store())
            .unwrap()
            .node(node)
            .unwrap()
            .unwrap_or_else(|| panic!("node {node} is not in the store"))
    }

    /// Every file under `dir`, relative, sorted (empty when `dir` is missing).
    pub fn files_under(dir: &Path) -> Vec<String> {
        let mut out = Vec::new();
        let mut stack = vec![dir.to_path_buf()];
        while let Some(d) = stack.pop() {
            let Ok(entries) = std::fs::read_dir(&d) else {
                continue;
            };
            for e in entries.flatten() {
                let p = e.path();
                if p.is_dir() {
                    stack.push(p);
                } else {
                    out.push(p.strip_prefix(dir).unwrap().display().to_string());
                }
            }
        }
        out.sort();
        out
    }
}
