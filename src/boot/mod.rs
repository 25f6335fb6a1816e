//! Boot interfaces: how a node is made to boot the deploy ramdisk, then its
//! instance. The petitboot driver is the one petitlab ships.

mod layout;
mod manifest;
pub mod petitboot;
mod properties;
pub mod pxeconf;

use std::path::PathBuf;

use serde::Serialize;

use crate::inventory::{Node, Problem};

pub use petitboot::PetitbootBoot;

/// Which config a node gets: the deploy ramdisk, or its instance.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Stage {
    Deploy,
    Instance,
}

impl Stage {
    pub fn name(self) -> &'static str {
        match self {
            Stage::Deploy => "deploy",
            Stage::Instance => "instance",
        }
    }
}

/// A node property the boot interface reads (the spec's get_properties).
#[derive(Debug, Clone, Serialize)]
pub struct Property {
    /// The key in a `[[node]]` table of lab.toml.
    pub name: &'static str,
    pub required: bool,
    pub description: &'static str,
}

/// What an action did to the served trees and DHCP files.
#[derive(Debug, Default, Clone, Serialize)]
pub struct Changes {
    pub written: Vec<PathBuf>,
    pub removed: Vec<PathBuf>,
    /// Files left in place, with why (e.g. replaced by another step since this one wrote them).
    pub kept: Vec<(PathBuf, String)>,
}

impl Changes {
    pub fn is_empty(&self) -> bool {
        self.written.is_empty() && self.removed.is_empty() && self.kept.is_empty()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum BootError {
    #[error("node {node}: {} problem(s): {}", .problems.len(), join(.problems))]
    Invalid {
        node: String,
        problems: Vec<Problem>,
    },
    #[error("node {node}: {action} {}: {source}", .path.display())]
    Io {
        node: String,
        action: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("petitboot.config_template: {0}")]
    Template(String),
    #[error("node {node}: {source}")]
    Dhcp {
        node: String,
        source: crate::dhcp::DhcpError,
    },
}

fn join(problems: &[Problem]) -> String {
    let parts: Vec<String> = problems
        .iter()
        .map(|p| format!("{}: {}", p.field, p.message))
        .collect();
    parts.join("; ")
}

/// What the deploy ramdisk is told on its kernel command line.
#[derive(Debug, Clone, Default)]
pub struct RamdiskParams {
    /// Appended after the node's own `kernel_args`.
    pub kernel_args: Vec<String>,
}

/// The boot side of provisioning, as in the petitboot boot driver spec.
/// Every action is idempotent; writes are atomic.
pub trait BootInterface {
    /// The node properties this interface reads.
    fn properties(&self) -> &'static [Property];

    /// Every problem that would make a prepare fail or a node misboot,
    /// without writing anything.
    fn validate(&self, node: &Node) -> Vec<Problem>;

    /// Make the node netboot the deploy kernel and ramdisk.
    fn prepare_ramdisk(&self, node: &Node) -> Result<Changes, BootError> {
        self.prepare_ramdisk_with(node, &RamdiskParams::default())
    }

    /// `prepare_ramdisk`, with arguments for the deploy ramdisk (the agent's
    /// callback URL and token) on its kernel command line.
    fn prepare_ramdisk_with(
        &self,
        node: &Node,
        params: &RamdiskParams,
    ) -> Result<Changes, BootError>;

    /// Undo exactly what `prepare_ramdisk` wrote.
    fn clean_up_ramdisk(&self, node: &Node) -> Result<Changes, BootError>;

    /// Make the node boot its instance (local disk, or netboot).
    fn prepare_instance(&self, node: &Node) -> Result<Changes, BootError>;

    /// Undo exactly what `prepare_instance` wrote.
    fn clean_up_instance(&self, node: &Node) -> Result<Changes, BootError>;
}
