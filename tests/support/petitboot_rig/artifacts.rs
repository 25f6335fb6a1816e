//! The guest artifacts real-petitboot tests boot: made by
//! `tests/peers/petitboot-vm/build.sh <arch> <outdir>` into
//! `target/petitboot-vm/<arch>/` (cached there: seconds when already
//! built). A rig runs it once per test process and architecture; build.sh
//! takes a lock per architecture itself, so test binaries running at once
//! do not build over each other.

use std::collections::HashMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Mutex;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Arch {
    X86_64,
    Ppc64le,
}

impl Arch {
    /// build.sh's and the output directory's name for it.
    pub fn as_str(self) -> &'static str {
        match self {
            Arch::X86_64 => "x86_64",
            Arch::Ppc64le => "ppc64le",
        }
    }
}

/// The files of `<outdir>` (see build.sh) and `guest.env`'s values.
#[derive(Clone, Debug)]
pub struct Artifacts {
    pub arch: Arch,
    pub dir: PathBuf,
    /// x86: a bzImage; ppc64le: an ELF vmlinux. petitboot's kernel, the
    /// deploy kernel and the instance kernel.
    pub kernel: PathBuf,
    /// petitboot's "firmware" initramfs.
    pub petitboot_initrd: PathBuf,
    /// The deploy ramdisk, with petitlab's agent.
    pub deploy_initrd: PathBuf,
    /// Whole-disk image (MBR, one ext4 partition with /etc/kboot.conf).
    pub instance_img: PathBuf,
    /// That partition alone, for netboot nodes.
    pub instance_part_img: PathBuf,
    /// The instance ramdisk, for netboot nodes.
    pub instance_initrd: PathBuf,
    /// `ttyS0` or `hvc0`.
    pub console: String,
    /// The guest's disk, `/dev/vda`.
    pub disk: String,
    /// The instance partition a netboot instance mounts (`root_device`):
    /// guest.env's ROOT_DEVICE, else the disk's first partition.
    pub root_device: String,
    pub kernel_version: String,
}

const FILES: [&str; 7] = [
    "kernel",
    "petitboot.initrd",
    "deploy.initrd",
    "instance.img",
    "instance-part.img",
    "instance.initrd",
    "guest.env",
];

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

pub fn build_script() -> PathBuf {
    repo().join("tests/peers/petitboot-vm/build.sh")
}

pub fn out_dir(arch: Arch) -> PathBuf {
    repo().join("target/petitboot-vm").join(arch.as_str())
}

/// Architectures whose build.sh already ran in this process.
static BUILT: Mutex<Vec<Arch>> = Mutex::new(Vec::new());

/// Set to a directory holding `<arch>/` with the files build.sh makes, the
/// rig uses those and runs no build (artifacts made elsewhere).
pub const DIR_ENV: &str = "PETITLAB_PETITBOOT_VM_DIR";

/// Builds (or finds cached) the artifacts for `arch`; panics saying what is
/// missing and how to make it, never returns without them.
pub fn ensure(arch: Arch) -> Artifacts {
    if let Some(base) = std::env::var_os(DIR_ENV) {
        let dir = PathBuf::from(base).join(arch.as_str());
        let missing = missing_files(&dir);
        assert!(
            missing.is_empty(),
            "{DIR_ENV} names {}, which lacks {}",
            dir.display(),
            missing.join(", ")
        );
        return load(arch, &dir);
    }
    let dir = out_dir(arch);
    let mut built = BUILT.lock().unwrap_or_else(|e| e.into_inner());
    if !built.contains(&arch) {
        run_build(arch, &dir);
        built.push(arch);
    }
    drop(built);
    load(arch, &dir)
}

fn run_build(arch: Arch, dir: &Path) {
    let script = build_script();
    let parent = dir.parent().unwrap();
    fs::create_dir_all(parent).unwrap_or_else(|e| panic!("create {}: {e}", parent.display()));
    if !script.is_file() {
        // Hand-made artifacts are fine; a missing build without them is not.
        let missing = missing_files(dir);
        assert!(
            missing.is_empty(),
            "real-petitboot guest artifacts for {} are missing in {} ({}), and {} does not exist to build them",
            arch.as_str(),
            dir.display(),
            missing.join(", "),
            script.display()
        );
        eprintln!(
            "petitboot rig: {} does not exist; using the artifacts already in {}",
            script.display(),
            dir.display()
        );
        return;
    }
    let log_path = parent.join(format!("{}.build.log", arch.as_str()));
    let log = fs::File::create(&log_path)
        .unwrap_or_else(|e| panic!("create {}: {e}", log_path.display()));
    let started = std::time::Instant::now();
    let status = Command::new("bash")
        .arg(&script)
        .arg(arch.as_str())
        .arg(dir)
        .current_dir(repo())
        .stdin(Stdio::null())
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .status()
        .unwrap_or_else(|e| panic!("cannot run bash {}: {e}", script.display()));
    let text = fs::read_to_string(&log_path).unwrap_or_default();
    assert!(
        status.success(),
        "building the real-petitboot guest for {} failed ({status}): bash {} {} {}\n--- last lines of {} ---\n{}",
        arch.as_str(),
        script.display(),
        arch.as_str(),
        dir.display(),
        log_path.display(),
        tail_lines(&text, 40)
    );
    let secs = started.elapsed().as_secs_f64();
    if secs > 5.0 {
        eprintln!(
            "petitboot rig: built the {} guest in {secs:.0} s",
            arch.as_str()
        );
    }
}

fn missing_files(dir: &Path) -> Vec<String> {
    FILES
        .iter()
        .filter(|f| !dir.join(f).is_file())
        .map(|f| f.to_string())
        .collect()
}

fn load(arch: Arch, dir: &Path) -> Artifacts {
    let missing = missing_files(dir);
    assert!(
        missing.is_empty(),
        "real-petitboot guest artifacts for {} are missing in {} after {} ran: {}",
        arch.as_str(),
        dir.display(),
        build_script().display(),
        missing.join(", ")
    );
    let env_path = dir.join("guest.env");
    let text = fs::read_to_string(&env_path).unwrap();
    let env: HashMap<&str, &str> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.trim(), v.trim().trim_matches(|c| c == '"' || c == '\'')))
        .collect();
    let get = |key: &str| -> String {
        env.get(key)
            .filter(|v| !v.is_empty())
            .unwrap_or_else(|| panic!("{} has no {key}=…:\n{text}", env_path.display()))
            .to_string()
    };
    let env_arch = get("ARCH");
    assert_eq!(
        env_arch,
        arch.as_str(),
        "{} says ARCH={env_arch}, expected {}",
        env_path.display(),
        arch.as_str()
    );
    Artifacts {
        arch,
        dir: dir.to_path_buf(),
        kernel: dir.join("kernel"),
        petitboot_initrd: dir.join("petitboot.initrd"),
        deploy_initrd: dir.join("deploy.initrd"),
        instance_img: dir.join("instance.img"),
        instance_part_img: dir.join("instance-part.img"),
        instance_initrd: dir.join("instance.initrd"),
        console: get("CONSOLE"),
        root_device: env
            .get("ROOT_DEVICE")
            .filter(|v| !v.is_empty())
            .map(|v| v.to_string())
            .unwrap_or_else(|| format!("{}1", get("DISK"))),
        disk: get("DISK"),
        kernel_version: get("KERNEL_VERSION"),
    }
}

pub fn tail_lines(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}
