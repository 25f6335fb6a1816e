//! dnsmasq backend: one file per node in `--dhcp-hostsdir` (MAC → tag) and
//! one in `--dhcp-optsdir` (tag → options 209/210).
//!
//! dnsmasq (2.90) reads new and changed files in those directories through
//! inotify, but only ever *adds* records: a deleted file's records stay until
//! SIGHUP or a restart, and SIGHUP crashes Debian's 2.90 once a client has
//! matched a `set:` host line. What does take effect at once is a rewritten
//! host line for the same MAC (the newest wins), provided it carries no IP
//! address (a reused IP is rejected as a duplicate). So:
//! - host lines carry only the tag — fixed addresses stay in the admin's own
//!   dnsmasq config;
//! - releasing a node rewrites its host file to map its MACs to a tag with no
//!   options, and removes its options file.
//!
//! Temp files start with a dot (see `fsutil`), which dnsmasq ignores.

use std::path::{Path, PathBuf};

use crate::fsutil;
use crate::inventory::Node;

use super::{DhcpError, DhcpOptions, DhcpProvider, PlannedFile, Released};

/// The tag released MACs get: no options are attached to it.
const RELEASED_TAG: &str = "petitlab-released";

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

    fn hosts_content(node: &Node, tag: &str, why: &str) -> String {
        let mut out = format!("# node {}, {why}, written by petitlab\n", node.name);
        for mac in &node.macs {
            out.push_str(&format!("{mac},set:{tag}\n"));
        }
        out
    }

    fn opts_content(node: &Node, options: &DhcpOptions) -> String {
        let tag = Self::tag(node);
        // Quoted: unquoted values are typed by dnsmasq (numbers, IPs, hex).
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
        // an offer without them.
        vec![
            PlannedFile {
                path: self.optsdir.join(&name),
                content: Self::opts_content(node, options),
            },
            PlannedFile {
                path: self.hostsdir.join(&name),
                content: Self::hosts_content(node, &Self::tag(node), "netbooting"),
            },
        ]
    }

    fn release(&self, node: &Node) -> Result<Released, DhcpError> {
        let name = Self::file_name(node);
        let hosts = self.hostsdir.join(&name);
        let opts = self.optsdir.join(&name);
        let mut released = Released::default();
        // Untag the MACs first: from then on the node gets no petitboot options.
        // Not following a link planted there (rewriting one replaces it).
        if std::fs::symlink_metadata(&hosts).is_ok() {
            super::write_file(&hosts, &Self::hosts_content(node, RELEASED_TAG, "released"))?;
            released.rewritten.push(hosts);
        }
        let gone =
            fsutil::remove_if_present(&self.optsdir, &opts).map_err(|source| DhcpError::Io {
                action: "remove",
                path: opts.clone(),
                source,
            })?;
        if gone {
            released.removed.push(opts);
        }
        Ok(released)
    }
}
