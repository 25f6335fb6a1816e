//! The instance image while a deploy runs. A qcow2 source is first
//! converted to raw (`qemu-img convert`) into `<state_dir>/images/`: both
//! deploy interfaces write raw bytes to the disk. For the agent the raw image
//! is published on the HTTP server (`<http root>/<uuid>/image`, hard-linked
//! when it can be: no copy of a multi-GB image); an iSCSI deploy reads it
//! from where it is. Everything is removed when the deploy ends.

use std::io::Read;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use crate::fsutil;
use crate::inventory::{InstanceImage, Lab, Node, open_regular};

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
    #[error("node {node}: instance.image {}: converting qcow2 to raw failed: {why}", .path.display())]
    Convert {
        node: String,
        path: PathBuf,
        why: String,
    },
}

/// qcow2 files (versions 2 and 3) start with these four bytes.
const QCOW2_MAGIC: [u8; 4] = *b"QFI\xfb";

/// Only a regular file is opened: a FIFO or a device put in the image's
/// place would block the deploy or never end (see [`open_regular`]).
pub fn is_qcow2(path: &Path) -> std::io::Result<bool> {
    let mut magic = [0u8; 4];
    let mut file = open_regular(path)?;
    match file.read_exact(&mut magic) {
        Ok(()) => Ok(magic == QCOW2_MAGIC),
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => Ok(false),
        Err(e) => Err(e),
    }
}

/// Where a qcow2 source's raw conversion lives during a deploy.
pub fn converted_path(lab: &Lab, node: &Node) -> PathBuf {
    lab.state_dir
        .join("images")
        .join(format!("{}.raw", node.name))
}

/// The raw bytes to write: the conversion when there is one, else the source.
pub fn raw_path(lab: &Lab, node: &Node) -> PathBuf {
    let converted = converted_path(lab, node);
    if converted.exists() {
        converted
    } else {
        source(node).to_path_buf()
    }
}

/// The source as raw bytes: itself, or for qcow2 a fresh conversion
/// (`qemu-img convert -O raw` to a temp file, renamed when complete, so a
/// crash never leaves a half-converted image that looks whole). Blocking.
fn raw_source(lab: &Lab, node: &Node) -> Result<PathBuf, ImageError> {
    let src = source(node);
    let io = |path: &Path| {
        let (node, path) = (node.name.clone(), path.to_path_buf());
        move |source| ImageError::Io { node, path, source }
    };
    if !is_qcow2(src).map_err(io(src))? {
        return Ok(src.to_path_buf());
    }
    let target = converted_path(lab, node);
    let dir = target.parent().unwrap_or(&lab.state_dir);
    std::fs::create_dir_all(dir).map_err(io(dir))?;
    let temp = dir.join(format!(".{}.raw.tmp", node.name));
    let convert_err = |why: String| ImageError::Convert {
        node: node.name.clone(),
        path: src.to_path_buf(),
        why,
    };
    let out = std::process::Command::new("qemu-img")
        .args(["convert", "-f", "qcow2", "-O", "raw"])
        .arg(src)
        .arg(&temp)
        .stdin(std::process::Stdio::null())
        .output()
        .map_err(|e| convert_err(format!("cannot run qemu-img ({e}); install qemu-utils")))?;
    if !out.status.success() {
        let _ = std::fs::remove_file(&temp);
        let said = String::from_utf8_lossy(&out.stderr).trim().to_string();
        return Err(convert_err(format!("qemu-img {}: {said}", out.status)));
    }
    std::fs::rename(&temp, &target).map_err(io(&target))?;
    Ok(target)
}

/// The raw image checksummed where it is, for an iSCSI deploy (which
/// publishes nothing: `url` is empty). Blocking: call off the runtime.
pub fn prepare_raw(lab: &Lab, node: &Node) -> Result<StagedImage, ImageError> {
    let raw = raw_source(lab, node)?;
    let (size, sha256) = checksum(&raw).map_err(|source| ImageError::Io {
        node: node.name.clone(),
        path: raw.clone(),
        source,
    })?;
    Ok(StagedImage {
        url: String::new(),
        path: raw,
        size,
        sha256,
        name: file_name(node),
    })
}

fn file_name(node: &Node) -> String {
    source(node)
        .file_name()
        .map_or_else(|| "image".into(), |n| n.to_string_lossy().into_owned())
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
    let raw = raw_source(lab, node)?;
    fsutil::stage_file(&raw, &lab.http.root, &target).map_err(err(src))?;
    // Read back where it was published, through no symlink.
    let (size, sha256) = match fsutil::open_beneath(&lab.http.root, &target) {
        Ok(fsutil::Found::File(file)) => checksum_of(file),
        Ok(_) => Err(std::io::Error::other("not the regular file just staged")),
        Err(e) => Err(e),
    }
    .map_err(err(&target))?;
    Ok(StagedImage {
        url: format!("{base}{}/image", node.uuid),
        path: target,
        size,
        sha256,
        name: file_name(node),
    })
}

/// Removes the published image and any raw conversion (and their
/// directories when empty).
pub fn unstage(lab: &Lab, node: &Node) -> std::io::Result<bool> {
    let mut removed = false;
    let targets = [
        (&lab.http.root, staged_path(lab, node)),
        (&lab.state_dir, converted_path(lab, node)),
    ];
    for (root, target) in targets {
        removed |= fsutil::remove_if_present(root, &target)?;
        if let Some(dir) = target.parent() {
            fsutil::remove_dir_if_empty(root, dir)?;
        }
    }
    Ok(removed)
}

/// Size and SHA-256 (hex) of a regular file.
pub fn checksum(path: &Path) -> std::io::Result<(u64, String)> {
    checksum_of(open_regular(path)?)
}

fn checksum_of(mut file: std::fs::File) -> std::io::Result<(u64, String)> {
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

#[cfg(test)]
mod tests {
    use super::{checksum, is_qcow2};
    use std::path::Path;

    /// A FIFO or a device put where the image was after lab.toml was loaded:
    /// refused at once, never waited on (FIFO) nor read without end (/dev/zero).
    #[test]
    fn an_image_that_is_not_a_regular_file_is_refused_without_reading_it() {
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("image.fifo");
        let made = std::process::Command::new("mkfifo").arg(&fifo).status();
        assert!(made.unwrap().success(), "mkfifo");
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let qcow2 = is_qcow2(&fifo).map_err(|e| e.to_string());
            let sum = checksum(&fifo).map_err(|e| e.to_string());
            let zero = checksum(Path::new("/dev/zero")).map_err(|e| e.to_string());
            let _ = tx.send((qcow2, sum, zero));
        });
        let (qcow2, sum, zero) = rx
            .recv_timeout(std::time::Duration::from_secs(10))
            .expect("reading a FIFO or /dev/zero image did not finish within 10 s");
        let fifo_why = "is a FIFO (named pipe), not a regular file";
        assert_eq!(qcow2.unwrap_err(), fifo_why);
        assert_eq!(sum.unwrap_err(), fifo_why);
        assert_eq!(
            zero.unwrap_err(),
            "is a character device, not a regular file"
        );
    }

    #[test]
    fn qcow2_is_known_by_its_magic_and_short_files_are_not_it() {
        let dir = tempfile::tempdir().unwrap();
        let check = |name: &str, bytes: &[u8]| {
            let path = dir.path().join(name);
            std::fs::write(&path, bytes).unwrap();
            is_qcow2(&path).unwrap()
        };
        assert!(check("q", b"QFI\xfb\x00\x00\x00\x03rest"));
        assert!(!check("raw", b"PETITLAB-IMAGE os\n"));
        assert!(!check("short", b"QF"));
        assert!(!check("empty", b""));
        assert!(is_qcow2(&dir.path().join("missing")).is_err());
    }
}
