//! A small async iSCSI initiator (RFC 7143, ErrorRecoveryLevel 0, one
//! connection, no digests, no authentication) for writing instance images
//! to a disk that a deploy ramdisk exports as an iSCSI target.
//!
//! [`pdu`], [`negotiate`] and [`scsi`] are free of I/O; [`Session`] drives
//! them over TCP with tokio, every network wait bounded by the login
//! options' timeout.

pub mod negotiate;
pub mod pdu;
pub mod scsi;
mod session;

use std::fmt;
use std::net::SocketAddr;
use std::time::Duration;

use sha2::{Digest, Sha256};
use tokio::io::{AsyncRead, AsyncReadExt};

pub use negotiate::Negotiated;
pub use scsi::Sense;
pub use session::Session;

/// The initiator name petitlab logs in with.
pub const DEFAULT_INITIATOR_NAME: &str = "iqn.2026-11.org.petitlab:initiator";

/// Where a target listens.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Portal {
    pub addr: SocketAddr,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoginOptions {
    pub initiator_name: String,
    pub target_name: String,
    pub lun: u64,
    /// Bounds each network wait: connect, each PDU sent, each PDU awaited.
    pub timeout: Duration,
}

impl LoginOptions {
    /// Options for `target_name`, LUN `lun`, with petitlab's initiator name
    /// and a 30-second timeout.
    pub fn new(target_name: impl Into<String>, lun: u64) -> LoginOptions {
        LoginOptions {
            initiator_name: DEFAULT_INITIATOR_NAME.to_string(),
            target_name: target_name.into(),
            lun,
            timeout: Duration::from_secs(30),
        }
    }
}

/// What was being done, with which target, when something failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Context {
    pub step: String,
    pub target: String,
    pub portal: SocketAddr,
}

impl fmt::Display for Context {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} with {} at {}", self.step, self.target, self.portal)
    }
}

fn sense_text(sense: &Option<Sense>) -> String {
    match sense {
        Some(s) => format!(", {s}"),
        None => String::new(),
    }
}

#[derive(Debug, thiserror::Error)]
pub enum IscsiError {
    #[error("iSCSI {at}: network error: {source}")]
    Io {
        at: Context,
        #[source]
        source: std::io::Error,
    },
    #[error("iSCSI {at}: no answer within {timeout:?}")]
    Timeout { at: Context, timeout: Duration },
    #[error("iSCSI {at}: the target closed the connection")]
    Closed { at: Context },
    #[error(
        "iSCSI login to target {target} at {portal} refused: {meaning} (status class {class:#04x}, detail {detail:#04x})"
    )]
    LoginRefused {
        target: String,
        portal: SocketAddr,
        class: u8,
        detail: u8,
        meaning: &'static str,
    },
    #[error("iSCSI {at}: {detail}")]
    Protocol { at: Context, detail: String },
    #[error(
        "SCSI {at} (LUN {lun}) failed: {} (status {status:#04x}){}",
        scsi::status_name(*.status),
        sense_text(.sense)
    )]
    Scsi {
        at: Context,
        lun: u64,
        status: u8,
        sense: Option<Sense>,
    },
    #[error(
        "iSCSI session with {target} at {portal} is unusable after an earlier failure: {cause}"
    )]
    Broken {
        target: String,
        portal: SocketAddr,
        cause: String,
    },
    #[error("invalid iSCSI request: {0}")]
    Invalid(String),
    #[error("reading the image failed after {read} of {len} bytes: {source}")]
    Image {
        read: u64,
        len: u64,
        #[source]
        source: std::io::Error,
    },
    #[error("the image ({image_len} bytes) does not fit LUN {lun} of {target} ({capacity} bytes)")]
    ImageTooLarge {
        target: String,
        lun: u64,
        image_len: u64,
        capacity: u64,
    },
    #[error(
        "{target} read back differs from the image written: sha256 {written} written, {read} read"
    )]
    VerifyMismatch {
        target: String,
        written: String,
        read: String,
    },
}

impl IscsiError {
    /// The sense data, when a SCSI command ended in CHECK CONDITION.
    pub fn sense(&self) -> Option<Sense> {
        match self {
            IscsiError::Scsi { sense, .. } => *sense,
            _ => None,
        }
    }
}

/// How much of the image is written (and read back) per SCSI command.
pub const IMAGE_CHUNK: u64 = 1 << 20;

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Writes `image` (`image_len` bytes) from LBA 0 in chunks of about
/// [`IMAGE_CHUNK`], the last block padded with zeros, calling
/// `progress(written, total)` after each chunk; flushes the target's cache
/// (SYNCHRONIZE CACHE); then reads it all back and
/// returns the SHA-256 (hex) of the first `image_len` bytes read. A read-back
/// that differs from what was written is an error.
pub async fn write_image(
    session: &mut Session,
    image: &mut (impl AsyncRead + Unpin),
    image_len: u64,
    mut progress: impl FnMut(u64, u64),
) -> Result<String, IscsiError> {
    let (blocks, block_size) = session.capacity().await?;
    let bs = u64::from(block_size);
    let capacity = blocks.saturating_mul(bs);
    if image_len > capacity {
        return Err(IscsiError::ImageTooLarge {
            target: session.target().to_string(),
            lun: session.lun(),
            image_len,
            capacity,
        });
    }
    let chunk = (IMAGE_CHUNK / bs).max(1) * bs;
    let mut written_hash = Sha256::new();
    let mut buf = Vec::new();
    let mut written = 0u64;
    while written < image_len {
        let len = chunk.min(image_len - written);
        buf.clear();
        buf.resize(len as usize, 0);
        image
            .read_exact(&mut buf)
            .await
            .map_err(|source| IscsiError::Image {
                read: written,
                len: image_len,
                source,
            })?;
        written_hash.update(&buf);
        buf.resize(len.div_ceil(bs) as usize * bs as usize, 0);
        session.write(written / bs, &buf).await?;
        written += len;
        progress(written, image_len);
    }
    session.synchronize_cache().await?;
    let mut read_hash = Sha256::new();
    let mut verified = 0u64;
    while verified < image_len {
        let len = chunk.min(image_len - verified);
        let count = len.div_ceil(bs) as u32;
        let data = session.read(verified / bs, count).await?;
        read_hash.update(&data[..data.len().min(len as usize)]);
        verified += len;
    }
    let (written, read) = (hex(&written_hash.finalize()), hex(&read_hash.finalize()));
    if written != read {
        return Err(IscsiError::VerifyMismatch {
            target: session.target().to_string(),
            written,
            read,
        });
    }
    Ok(read)
}
