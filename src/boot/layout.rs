//! Where a node's boot files live in the served tree, and their URLs.
//!
//! ```text
//! <root>/<uuid>/config                  the node's petitboot config (option 209)
//! <root>/<uuid>/deploy_kernel|deploy_ramdisk
//! <root>/<uuid>/kernel|ramdisk          netboot instance
//! <root>/pxelinux.cfg/01-<mac>          discovery copies of the config, for
//! <root>/pxelinux.cfg/<HEX-IP>          DHCP servers that cannot send 209
//! ```

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};

use crate::dhcp::DhcpOptions;
use crate::inventory::Node;

use super::Stage;

pub struct Layout<'a> {
    pub root: &'a Path,
    /// Ends with `/`.
    pub base_url: &'a str,
    pub node: &'a Node,
}

impl Layout<'_> {
    pub fn node_dir(&self) -> PathBuf {
        self.root.join(self.node.uuid.to_string())
    }

    pub fn config(&self) -> PathBuf {
        self.node_dir().join("config")
    }

    /// Option 209: relative, so it is joined to 210 and never starts with `/`.
    fn config_rel(&self) -> String {
        format!("{}/config", self.node.uuid)
    }

    pub fn discovery_dir(&self) -> PathBuf {
        self.root.join("pxelinux.cfg")
    }

    /// The names petitboot tries without option 209, most specific first:
    /// `01-<mac>` for each MAC, then the IPv4 address in upper-case hex.
    pub fn discovery_files(&self) -> Vec<PathBuf> {
        let dir = self.discovery_dir();
        let mut files: Vec<PathBuf> = self
            .node
            .macs
            .iter()
            .map(|mac| dir.join(mac.pxelinux_name()))
            .collect();
        if let Some(ip) = self.node.ipv4 {
            files.push(dir.join(hex_ip(ip)));
        }
        files
    }

    /// The kernel and ramdisk file names for a stage.
    pub fn artifact_names(stage: Stage) -> [&'static str; 2] {
        match stage {
            Stage::Deploy => ["deploy_kernel", "deploy_ramdisk"],
            Stage::Instance => ["kernel", "ramdisk"],
        }
    }

    pub fn artifact(&self, name: &str) -> PathBuf {
        self.node_dir().join(name)
    }

    /// Absolute URL of a file in the node's directory.
    pub fn url(&self, name: &str) -> String {
        format!("{}{}/{name}", self.base_url, self.node.uuid)
    }

    pub fn dhcp_options(&self) -> DhcpOptions {
        DhcpOptions {
            conf_file: self.config_rel(),
            path_prefix: self.base_url.to_string(),
        }
    }
}

/// `10.77.0.11` → `0A4D000B`, the first IP-based name petitboot tries.
pub fn hex_ip(ip: Ipv4Addr) -> String {
    ip.octets().iter().map(|b| format!("{b:02X}")).collect()
}
