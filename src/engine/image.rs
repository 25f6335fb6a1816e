//! The instance image, published on the HTTP server for the deploy agent
//! while a deploy runs: `<http root>/<uuid>/image`, hard-linked when it can
//! be (no copy of a multi-GB image), removed when the deploy ends.

use std::io::Read;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use crate::fsutil;
use crate::inventory::{InstanceImage, Lab, Node};

#[derive(Debug, Clone)]
pub struct StagedImage {
    pub path: PathBuf,
    pub url: String,
    pub size: u64,
    pub sha256: String,
    /// The source's file name, for the agent's console.
    pub name: String,
}

#[derive(Debug, thiserror::Error)]
pub enum ImageError {
    #[error("node {node}: instance.image {}: {source}", .path.display())]
    Io {
        node: String,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("http.base_url is required: the deploy agent downloads the image over HTTP")]
    NoBaseUrl,
}

pub fn source(node: &Node) -> &Path {
    match &node.instance {
        InstanceImage::WholeDisk { image } | InstanceImage::Partition { image, .. } => image,
    }
}

pub fn staged_path(lab: &Lab, node: &Node) -> PathBuf {
    lab.http.root.join(node.uuid.to_string()).join("image")
}

/// Publishes the image and checksums it (blocking: call off the runtime).
pub fn stage(lab: &Lab, node: &Node) -> Result<StagedImage, ImageError> {
    let base = lab.http.base_url.as_deref().ok_or(ImageError::NoBaseUrl)?;
    let src = source(node);
    let err = |path: &Path| {
        let node = node.name.clone();
        let path = path.to_path_buf();
        move |source| ImageError::Io { node, path, source }
    };
    let target = staged_path(lab, node);
    fsutil::stage_file(src, &target).map_err(err(src))?;
    let (size, sha256) = checksum(&target).map_err(err(&target))?;
    Ok(StagedImage {
        url: format!("{base}{}/image", node.uuid),
        path: target,
        size,
        sha256,
        name: src
            .file_name()
            .map_or_else(|| "image".into(), |n| n.to_string_lossy().into_owned()),
    })
}

/// Removes the published image (and the node's directory when empty).
pub fn unstage(lab: &Lab, node: &Node) -> std::io::Result<bool> {
    let target = staged_path(lab, node);
    let removed = fsutil::remove_if_present(&target)?;
    if let Some(dir) = target.parent() {
        fsutil::remove_dir_if_empty(dir)?;
    }
    Ok(removed)
}

/// Size and SHA-256 (hex) of a file.
pub fn checksum(path: &Path) -> std::io::Result<(u64, String)> {
    let mut file = std::fs::File::open(path)?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut size = 0u64;
    loop {
        let n = file.read(&mut buf)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        size += n as u64;
    }
    Ok((size, super::agent_api::hex(&hasher.finalize())))
}
