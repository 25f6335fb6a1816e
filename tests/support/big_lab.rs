//! A lab.toml of many nodes whose BMCs are a `petitlab sim --count N`
//! from one base port, for the benches that run the real binary at scale.

use std::path::{Path, PathBuf};

pub const USER: &str = "admin";
pub const PASSWORD: &str = "password";

/// The first of `count` consecutive free UDP ports on 127.0.0.1.
pub fn free_udp_base(count: usize) -> u16 {
    // A run of free UDP ports above the usual ephemeral range's start.
    'base: for base in (20000u16..60000).step_by(1500) {
        let mut held = Vec::with_capacity(count);
        for i in 0..count {
            match std::net::UdpSocket::bind(("127.0.0.1", base + i as u16)) {
                Ok(s) => held.push(s),
                Err(_) => continue 'base,
            }
        }
        return base;
    }
    panic!("no run of {count} free UDP ports");
}

pub fn free_tcp() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

/// A lab of `count` nodes whose BMCs are a `sim --count` from `base`.
pub fn write_lab(dir: &Path, count: usize, base: u16) -> PathBuf {
    std::fs::create_dir_all(dir).unwrap();
    std::fs::write(dir.join("bmc-password"), format!("{PASSWORD}\n")).unwrap();
    for f in ["deploy.vmlinux", "deploy.initramfs", "instance.img"] {
        std::fs::write(dir.join(f), b"bench").unwrap();
    }
    let (http, tftp) = (free_tcp(), free_tcp());
    let mut text = format!(
        "state_dir = \"{}/state\"\n\
         [http]\nbase_url = \"http://127.0.0.1:{http}/\"\nlisten = \"127.0.0.1:{http}\"\n\
         [tftp]\nbase_url = \"tftp://127.0.0.1:{tftp}/\"\nlisten = \"127.0.0.1:{tftp}\"\n\
         [dhcp]\nbackend = \"dnsmasq\"\n",
        dir.display()
    );
    for i in 0..count {
        use std::fmt::Write;
        let _ = write!(
            text,
            "\n[[node]]\nname = \"n{i:04}\"\nmacs = [\"52:54:00:{:02x}:{:02x}:{:02x}\"]\n\
             [node.bmc]\nhost = \"127.0.0.1\"\nport = {}\nusername = \"{USER}\"\n\
             password_file = \"bmc-password\"\ncipher_suite = 17\n\
             [node.deploy]\nkernel = \"deploy.vmlinux\"\nramdisk = \"deploy.initramfs\"\n\
             [node.instance]\nimage = \"instance.img\"\n",
            (i >> 16) & 0xff,
            (i >> 8) & 0xff,
            i & 0xff,
            base as usize + i,
        );
    }
    let path = dir.join("lab.toml");
    std::fs::write(&path, text).unwrap();
    path
}
