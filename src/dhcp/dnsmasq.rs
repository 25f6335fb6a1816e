//! dnsmasq backend: one file per node in `--dhcp-hostsdir` (MAC → tag) and
//! one in `--dhcp-optsdir` (tag → options 209/210). dnsmasq watches both
//! directories with inotify, so no restart is needed.

use std::path::{Path, PathBuf};

use crate::fsutil;
use crate::inventory::Node;

use super::{DhcpError, DhcpOptions, DhcpProvider, PlannedFile};

pub struct Dnsmasq {
    hostsdir: PathBuf,
    optsdir: PathBuf,
}

impl Dnsmasq {
    pub fn new(hostsdir: &Path, optsdir: &Path) -> Self {
        Dnsmasq {
            hostsdir: hostsdir.to_path_buf(),
            optsdir: optsdir.to_path_buf(),
        }
    }

    fn file_name(node: &Node) -> String {
        format!("petitlab-{}", node.uuid)
    }

    /// The tag that links a node's MACs to its options.
    fn tag(node: &Node) -> String {
        format!("petitlab-{}", node.uuid)
    }

    fn hosts_content(node: &Node) -> String {
        let tag = Self::tag(node);
        let mut out = format!("# node {}, written by petitlab\n", node.name);
        for (i, mac) in node.macs.iter().enumerate() {
            match node.ipv4 {
                // The address belongs to the first (boot) interface.
                Some(ip) if i == 0 => out.push_str(&format!("{mac},set:{tag},{ip}\n")),
                _ => out.push_str(&format!("{mac},set:{tag}\n")),
            }
        }
        out
    }

    fn opts_content(node: &Node, options: &DhcpOptions) -> String {
        let tag = Self::tag(node);
        format!(
            "# node {}, written by petitlab; no option 67 for petitboot clients\n\
             tag:{tag},209,\"{}\"\ntag:{tag},210,\"{}\"\n",
            node.name, options.conf_file, options.path_prefix
        )
    }
}

impl DhcpProvider for Dnsmasq {
    fn plan(&self, node: &Node, options: &DhcpOptions) -> Vec<PlannedFile> {
        let name = Self::file_name(node);
        // Options first: a host tagged before its options exist would get
        // a bare offer.
        vec![
            PlannedFile {
                path: self.optsdir.join(&name),
                content: Self::opts_content(node, options),
            },
            PlannedFile {
                path: self.hostsdir.join(&name),
                content: Self::hosts_content(node),
            },
        ]
    }

    fn update(&self, node: &Node, options: &DhcpOptions) -> Result<Vec<PathBuf>, DhcpError> {
        let mut written = Vec::new();
        for file in self.plan(node, options) {
            fsutil::write_atomic(&file.path, file.content.as_bytes(), 0o644).map_err(|source| {
                DhcpError::Io {
                    action: "write",
                    path: file.path.clone(),
                    source,
                }
            })?;
            written.push(file.path);
        }
        Ok(written)
    }

    fn remove(&self, node: &Node) -> Result<Vec<PathBuf>, DhcpError> {
        let name = Self::file_name(node);
        let mut removed = Vec::new();
        // Hosts first: an untagged MAC gets no petitboot options at all.
        for path in [self.hostsdir.join(&name), self.optsdir.join(&name)] {
            let gone = fsutil::remove_if_present(&path).map_err(|source| DhcpError::Io {
                action: "remove",
                path: path.clone(),
                source,
            })?;
            if gone {
                removed.push(path);
            }
        }
        Ok(removed)
    }
}
