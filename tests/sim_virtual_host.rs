//! The virtual OpenPOWER host (virtual petitboot + deploy agent) behind a
//! simulated BMC, against petitlab's real HTTP and TFTP servers: the boot
//! files and dnsmasq files are written by petitlab's own boot driver, the
//! BMC is driven by petitlab's IPMI client, and the `/v1/` deploy API is
//! answered by this test, which records every call and checks its token.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use petitlab::boot::{BootInterface, PetitbootBoot};
use petitlab::inventory::{self, Lab};
use petitlab::ipmi::chassis::{self, BootDevice, PowerAction};
use petitlab::ipmi::{Bmc, CipherChoice, Credentials, Target, Timing};
use petitlab::serve::http::{
    ApiHandler, ApiRequest, ApiResponse, HttpHandle, HttpOptions, HttpServer,
};
use petitlab::serve::tftp::{TftpHandle, TftpServer};
use petitlab::sim::{BmcSpec, HostFault, Sim, VirtualHost, virtual_firmware};
use sha2::{Digest, Sha256};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::broadcast;

const TOKEN: &str = "3f9c0a1b2c3d4e5f60718293a4b5c6d7";
const MACS: [&str; 2] = ["52:54:00:00:00:01", "52:54:00:00:00:11"];
const IMAGE_NAME: &str = "test-os-1.0.raw";

/// One `/v1/` call as the test's API saw it.
#[derive(Debug, Clone)]
struct Call {
    at: Instant,
    path: String,
    token: Option<String>,
    body: String,
}

/// The deploy API's side: answers as docs/agent-api.md says, for node n1.
struct FakeApi {
    calls: Mutex<Vec<Call>>,
    image_url: Mutex<String>,
    image: Vec<u8>,
    heartbeat: AtomicU64,
}

impl FakeApi {
    fn calls(&self) -> Vec<Call> {
        self.calls.lock().unwrap().clone()
    }
}

fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

impl ApiHandler for FakeApi {
    fn handle(&self, request: &ApiRequest) -> ApiResponse {
        let token = request
            .header("X-Petitlab-Token")
            .map(|t| String::from_utf8_lossy(t).into_owned());
        let body = String::from_utf8_lossy(&request.body).into_owned();
        self.calls.lock().unwrap().push(Call {
            at: Instant::now(),
            path: request.path.clone(),
            token: token.clone(),
            body: body.clone(),
        });
        if token.as_deref() != Some(TOKEN) {
            return ApiResponse::text(403, "error=not the token of a deploy in progress\n");
        }
        let field = |key: &str| body.lines().find_map(|l| l.strip_prefix(key));
        match request.path.as_str() {
            "/v1/lookup" if body.contains(&format!("mac={}\n", MACS[0])) => {
                let answer = format!(
                    "node=n1\nuuid=x\nimage_url={}\nimage_size={}\nimage_sha256={}\nimage_name={IMAGE_NAME}\nheartbeat={}\n",
                    self.image_url.lock().unwrap(),
                    self.image.len(),
                    sha256_hex(&self.image),
                    self.heartbeat.load(Ordering::Relaxed),
                );
                ApiResponse::text(200, &answer)
            }
            "/v1/lookup" => ApiResponse::text(404, "error=unknown MAC\n"),
            "/v1/done" if field("sha256=") == Some(&sha256_hex(&self.image)) => {
                ApiResponse::text(200, "ok=1\n")
            }
            "/v1/done" => ApiResponse::text(409, "error=checksum mismatch\n"),
            "/v1/progress" | "/v1/heartbeat" | "/v1/failed" => ApiResponse::text(200, "ok=1\n"),
            _ => ApiResponse::text(404, "error=no such call\n"),
        }
    }
}

/// A lab in a temp dir, served by petitlab's HTTP (with the fake API) and
/// TFTP servers, with n1's boot files written by petitlab's boot driver.
struct Fixture {
    dir: tempfile::TempDir,
    lab: Lab,
    api: Arc<FakeApi>,
    http: HttpHandle,
    _tftp: TftpHandle,
}

/// Bytes that differ everywhere, so a misplaced block would show.
fn noise(len: usize, seed: u32) -> Vec<u8> {
    let mut x = seed;
    (0..len)
        .map(|_| {
            x = x.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
            (x >> 24) as u8
        })
        .collect()
}

#[derive(Clone, Copy)]
enum Kind {
    /// Deploy config with petitlab.api/token (prepare-ramdisk).
    Deploy,
    /// A netboot instance config (prepare-instance), no petitlab arguments.
    Instance,
}

impl Fixture {
    async fn new(protocol: &str, kind: Kind) -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        for sub in ["http/images", "tftp"] {
            std::fs::create_dir_all(d.join(sub)).unwrap();
        }
        let mut image = format!("PETITLAB-IMAGE {IMAGE_NAME}\n").into_bytes();
        image.extend(noise(300_000, 1));
        std::fs::write(d.join("http/images/n1.img"), &image).unwrap();
        let api = Arc::new(FakeApi {
            calls: Mutex::default(),
            image_url: Mutex::default(),
            image,
            heartbeat: AtomicU64::new(10),
        });
        let options = HttpOptions {
            api: Some(api.clone()),
            ..HttpOptions::default()
        };
        let local = "127.0.0.1:0".parse().unwrap();
        let http = HttpServer::bind(local, d.join("http"), options)
            .await
            .unwrap()
            .spawn();
        let tftp = TftpServer::bind(local, d.join("tftp"), Default::default())
            .unwrap()
            .spawn();
        let (hp, tp) = (http.local_addr().port(), tftp.local_addr().port());
        *api.image_url.lock().unwrap() = format!("http://127.0.0.1:{hp}/images/n1.img");

        for (file, seed) in [("deploy.vmlinux", 2), ("deploy.initrd", 3), ("disk.img", 4)] {
            std::fs::write(d.join(file), noise(100_000, seed)).unwrap();
        }
        for file in ["inst.vmlinux", "inst.initrd"] {
            std::fs::write(d.join(file), file).unwrap();
        }
        std::fs::write(d.join("pw"), "password").unwrap();
        let private = std::os::unix::fs::PermissionsExt::from_mode(0o600);
        std::fs::set_permissions(d.join("pw"), private).unwrap();
        let (args, boot_option, instance) = match kind {
            Kind::Deploy => (
                format!("petitlab.api=http://127.0.0.1:{hp}/v1/ petitlab.token={TOKEN}"),
                "local",
                "",
            ),
            Kind::Instance => (
                String::new(),
                "netboot",
                "kernel = \"inst.vmlinux\"\nramdisk = \"inst.initrd\"\nroot_device = \"/dev/sda2\"\n",
            ),
        };
        let text = format!(
            "state_dir = \"state\"\n[petitboot]\nprotocol = \"{protocol}\"\n\
             [http]\nbase_url = \"http://127.0.0.1:{hp}/\"\nroot = \"http\"\n\
             [tftp]\nbase_url = \"tftp://127.0.0.1:{tp}/\"\nroot = \"tftp\"\n\
             [dhcp]\nbackend = \"dnsmasq\"\n\
             [[node]]\nname = \"n1\"\nmacs = [\"{}\", \"{}\"]\nconsole = \"hvc0\"\n\
             boot_option = \"{boot_option}\"\nkernel_args = \"{args}\"\n\
             [node.bmc]\nhost = \"127.0.0.1\"\nusername = \"admin\"\npassword_file = \"pw\"\n\
             [node.deploy]\nkernel = \"deploy.vmlinux\"\nramdisk = \"deploy.initrd\"\n\
             [node.instance]\nimage = \"disk.img\"\n{instance}",
            MACS[0], MACS[1]
        );
        std::fs::write(d.join("lab.toml"), text).unwrap();
        let (lab, _warnings) = inventory::load_valid(&d.join("lab.toml")).unwrap();
        let fixture = Fixture {
            dir,
            lab,
            api,
            http,
            _tftp: tftp,
        };
        let boot = PetitbootBoot::new(&fixture.lab).unwrap();
        let node = fixture.lab.node("n1").unwrap();
        match kind {
            Kind::Deploy => boot.prepare_ramdisk(node).unwrap(),
            Kind::Instance => boot.prepare_instance(node).unwrap(),
        };
        fixture
    }

    fn disk(&self) -> PathBuf {
        self.dir.path().join("disks/n1.img")
    }

    /// n1's file `name` in the served root of `protocol`, and its URL.
    fn served(&self, protocol: &str, name: &str) -> PathBuf {
        let root = if protocol == "tftp" {
            &self.lab.tftp
        } else {
            &self.lab.http
        };
        root.root
            .join(self.lab.nodes[0].uuid.to_string())
            .join(name)
    }

    fn url(&self, protocol: &str, name: &str) -> String {
        let server = if protocol == "tftp" {
            &self.lab.tftp
        } else {
            &self.lab.http
        };
        let base = server.base_url.clone().unwrap();
        format!("{base}{}/{name}", self.lab.nodes[0].uuid)
    }

    fn host(&self, fault: HostFault) -> VirtualHost {
        VirtualHost {
            node: "n1".into(),
            macs: self.lab.node("n1").unwrap().macs.clone(),
            dhcp: self.lab.dhcp.clone(),
            disk: self.disk(),
            fault,
            dhcp_log: None,
        }
    }
}

/// A running host: its BMC, the IPMI client driving it, its console.
struct Host {
    sim: Sim,
    bmc: Bmc,
    console: broadcast::Receiver<Vec<u8>>,
    seen: String,
}

impl Host {
    /// Starts the BMC and powers the host on with a one-shot PXE boot.
    async fn boot(host: VirtualHost) -> Host {
        let mut spec = BmcSpec::new("n1", 0, "admin", "password");
        spec.firmware = virtual_firmware(host);
        spec.line_delay = Duration::from_millis(1);
        let sim = Sim::start(vec![spec]).await.unwrap();
        let console = sim.serial(0).output();
        let mut bmc = Bmc::new(Target {
            addr: sim.addr(0),
            credentials: Credentials {
                username: "admin".into(),
                password: "password".into(),
            },
            cipher: CipherChoice::Auto,
            timing: Timing::default(),
        });
        chassis::set_boot_device(&mut bmc, BootDevice::Pxe, false)
            .await
            .unwrap();
        chassis::power(&mut bmc, PowerAction::On).await.unwrap();
        Host {
            sim,
            bmc,
            console,
            seen: String::new(),
        }
    }

    /// Console output up to `needle` (from where the last wait ended).
    async fn until(&mut self, needle: &str) -> String {
        let wait = async {
            while !self.seen.contains(needle) {
                match self.console.recv().await {
                    Ok(bytes) => self.seen.push_str(&String::from_utf8_lossy(&bytes)),
                    Err(broadcast::error::RecvError::Lagged(_)) => {}
                    Err(e) => panic!("console closed: {e}"),
                }
            }
        };
        if tokio::time::timeout(Duration::from_secs(20), wait)
            .await
            .is_err()
        {
            panic!("no {needle:?} on the console; it printed:\n{}", self.seen);
        }
        let at = self.seen.find(needle).unwrap() + needle.len();
        let upto = self.seen[..at].to_string();
        self.seen.drain(..at);
        upto
    }
}

/// Each line of `expected` is in `out`, in that order.
#[track_caller]
fn has(out: &str, expected: &str) {
    let mut rest = out;
    // Split on LF only, so a CR in `expected` pins a line's end.
    for line in expected.split('\n') {
        let Some(at) = rest.find(line) else {
            panic!("no {line:?} (in this order) in\n{out}");
        };
        rest = &rest[at + line.len()..];
    }
}

fn prefill(disk: &Path, name: &str) {
    std::fs::create_dir_all(disk.parent().unwrap()).unwrap();
    let mut bytes = format!("PETITLAB-IMAGE {name}\n").into_bytes();
    bytes.extend(noise(4096, 9));
    std::fs::write(disk, bytes).unwrap();
}

/// The agent's calls: a lookup with every MAC, progress up to the whole
/// image, then done with the image's sha256 — all with the right token.
fn assert_clean_deploy(f: &Fixture) {
    let calls = f.api.calls();
    let paths: Vec<&str> = calls.iter().map(|c| c.path.as_str()).collect();
    let tokens_ok = calls.iter().all(|c| c.token.as_deref() == Some(TOKEN));
    assert!(tokens_ok, "{calls:?}");
    assert_eq!(paths.first(), Some(&"/v1/lookup"), "{paths:?}");
    assert_eq!(calls[0].body, format!("mac={}\nmac={}\n", MACS[0], MACS[1]));
    assert_eq!(paths.last(), Some(&"/v1/done"), "{paths:?}");
    assert!(!paths.contains(&"/v1/failed"), "{paths:?}");
    let size = f.api.image.len();
    let progress = calls.iter().rev().find(|c| c.path == "/v1/progress");
    let want = format!("node=n1\nwritten={size}\ntotal={size}\n");
    assert_eq!(progress.unwrap().body, want);
    let sha256 = sha256_hex(&f.api.image);
    assert_eq!(
        calls.last().unwrap().body,
        format!("node=n1\nsha256={sha256}\n")
    );
    let disk = std::fs::read(f.disk()).unwrap();
    assert!(
        disk == f.api.image,
        "the disk holds the image, byte for byte"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deploys_over_http_then_boots_the_deployed_disk() {
    let f = Fixture::new("http", Kind::Deploy).await;
    // An old, bigger disk: the image replaces it like dd, truncated.
    std::fs::create_dir_all(f.disk().parent().unwrap()).unwrap();
    std::fs::write(f.disk(), noise(500_000, 7)).unwrap();
    let mut host = Host::boot(f.host(HostFault::None)).await;
    let out = host.until("\r\n[    0.402117]").await;
    let (config, kernel) = (f.url("http", "config"), f.url("http", "deploy_kernel"));
    let (initrd, port) = (f.url("http", "deploy_ramdisk"), f.http.local_addr().port());
    has(&out, &format!("Petitboot (v1.14)
[net] eth0: link up, DHCP offer for {}
pxeconffile  => {config}
device_handler_status: [eth0] Requesting config {config}
device_handler_status: Download complete: config
handler: boot option eth0@0x
Timeout expired, booting default option eth0@0x
boot status: [1] Loaded kernel image from {kernel}
boot status: [1] Loaded initrd from {initrd}
device_handler_status: Performing kexec reboot
kexec_core: Starting new kernel
Kernel command line: console=hvc0 petitlab.api=http://127.0.0.1:{port}/v1/ petitlab.token={TOKEN}\r\n", MACS[0]));
    let size = f.api.image.len();
    let out = host.until("deploy:~# ").await;
    has(
        &out,
        &format!(
            "petitlab-agent: deploying n1: writing {IMAGE_NAME} ({size} bytes)
petitlab-agent: read back {size} bytes: sha256 {}
petitlab-agent: done; waiting for petitlab to reboot this node",
            sha256_hex(&f.api.image)
        ),
    );
    assert_clean_deploy(&f);

    // As petitlab then does: local-boot instance (config and DHCP options
    // released), reset through the BMC: petitboot finds no options and
    // boots the image it just wrote.
    let boot = PetitbootBoot::new(&f.lab).unwrap();
    boot.prepare_instance(f.lab.node("n1").unwrap()).unwrap();
    let reset = chassis::power(&mut host.bmc, PowerAction::Reset);
    reset.await.unwrap();
    let out = host.until("n1 login: ").await;
    has(
        &out,
        &format!(
            "[net] eth0: no petitboot options in the DHCP offer
[disk] sda2: found boot option '{IMAGE_NAME}'
Booting '{IMAGE_NAME}' from /dev/sda2
kexec_core: Starting new kernel
Welcome to {IMAGE_NAME}!"
        ),
    );
    host.sim.shutdown().await;
    f.http.shutdown(Duration::ZERO).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deploys_with_config_kernel_and_initrd_over_tftp() {
    let f = Fixture::new("tftp", Kind::Deploy).await;
    let mut host = Host::boot(f.host(HostFault::None)).await;
    let config = f.url("tftp", "config");
    assert!(config.starts_with("tftp://127.0.0.1:"), "{config}");
    let out = host.until("deploy:~# ").await;
    let (kernel, initrd) = (
        f.url("tftp", "deploy_kernel"),
        f.url("tftp", "deploy_ramdisk"),
    );
    has(
        &out,
        &format!(
            "pxeconffile  => {config}
device_handler_status: Download complete: config
boot status: [1] Loaded kernel image from {kernel}
boot status: [1] Loaded initrd from {initrd}
kexec_core: Starting new kernel
petitlab-agent: done; waiting for petitlab to reboot this node"
        ),
    );
    assert_clean_deploy(&f);
    host.sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_config_it_boots_the_disk() {
    let f = Fixture::new("http", Kind::Deploy).await;
    std::fs::remove_file(f.served("http", "config")).unwrap();
    prefill(&f.disk(), "old-os 2.3");
    let mut host = Host::boot(f.host(HostFault::None)).await;
    let out = host.until("n1 login: ").await;
    let config = f.url("http", "config");
    has(
        &out,
        &format!(
            "device_handler_status: [eth0] Requesting config {config}
wget: server returned error: HTTP/1.1 404 
device_handler_status: [eth0] Failed to download {config}
[disk] sda2: found boot option 'old-os 2.3'
kexec_core: Starting new kernel
Welcome to old-os 2.3!"
        ),
    );
    assert!(!out.contains("Download complete"), "{out}");
    assert!(f.api.calls().is_empty());
    host.sim.shutdown().await;
}

/// An HTTP server that promises `promised` bytes, then sends `body` in
/// `pieces`, 200 ms apart, stalling 1.5 s after the fourth, and closes.
async fn scripted_server(promised: usize, body: Vec<u8>, pieces: usize) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            let _ = stream.read(&mut [0u8; 2048]).await;
            let head = format!("HTTP/1.1 200 OK\r\nContent-Length: {promised}\r\n\r\n");
            let _ = stream.write_all(head.as_bytes()).await;
            for (i, piece) in body.chunks(body.len().div_ceil(pieces)).enumerate() {
                let _ = stream.write_all(piece).await;
                let pause = if i == 3 { 1500 } else { 200 };
                tokio::time::sleep(Duration::from_millis(pause)).await;
            }
        }
    });
    format!("http://{addr}/file")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_or_short_kernel_is_not_booted() {
    let f = Fixture::new("http", Kind::Deploy).await;
    let kernel = f.url("http", "deploy_kernel");
    std::fs::remove_file(f.served("http", "deploy_kernel")).unwrap();
    let mut host = Host::boot(f.host(HostFault::None)).await;
    let out = host.until("petitboot> ").await;
    has(
        &out,
        &format!(
            "wget: server returned error: HTTP/1.1 404 
Failed to load kernel image from {kernel}
boot status: [1] Couldn't load kernel image from {kernel}
Failed to load all boot resources"
        ),
    );

    // The config now names a kernel whose server closes early.
    let liar = scripted_server(1_000_000, noise(1000, 5), 1).await;
    let config = std::fs::read_to_string(f.served("http", "config")).unwrap();
    std::fs::write(f.served("http", "config"), config.replace(&kernel, &liar)).unwrap();
    let reset = chassis::power(&mut host.bmc, PowerAction::Reset);
    reset.await.unwrap();
    let out = host.until("petitboot> ").await;
    has(
        &out,
        &format!(
            "wget: connection closed after 1000 of 1000000 bytes
boot status: [1] Couldn't load kernel image from {liar}
Failed to load all boot resources"
        ),
    );
    assert!(!out.contains("kexec"), "{out}");
    assert!(f.api.calls().is_empty());
    host.sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_agent_calls_nothing_and_a_wrong_token_is_refused() {
    let f = Fixture::new("http", Kind::Deploy).await;
    let mut host = Host::boot(f.host(HostFault::AgentSilent)).await;
    let out = host.until("deploy:~# ").await;
    has(&out, "petitlab-agent: (simulated fault) agent silent");
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(f.api.calls().is_empty(), "{:?}", f.api.calls());
    host.sim.shutdown().await;

    let mut host = Host::boot(f.host(HostFault::WrongToken)).await;
    let out = host.until("deploy:~# ").await;
    has(
        &out,
        "petitlab-agent: lookup refused: 403 error=not the token",
    );
    let calls = f.api.calls();
    assert_eq!(calls.len(), 1, "it stops at the refusal: {calls:?}");
    let token = calls[0].token.clone().unwrap();
    assert!(token != TOKEN && token.len() == TOKEN.len(), "{token}");
    assert!(!f.disk().exists(), "nothing was written");
    host.sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_netbooted_instance_mounts_the_disk_or_panics_without_one() {
    let f = Fixture::new("http", Kind::Instance).await;
    prefill(&f.disk(), "inst-os");
    let mut host = Host::boot(f.host(HostFault::None)).await;
    let out = host.until("n1 login: ").await;
    let kernel = f.url("http", "kernel");
    has(
        &out,
        &format!(
            "boot status: [1] Loaded kernel image from {kernel}
[    0.000000] Kernel command line: root=/dev/sda2 console=hvc0\r
Welcome to inst-os!"
        ),
    );
    assert!(!out.contains("petitlab-agent"), "{out}");

    std::fs::remove_file(f.disk()).unwrap();
    let reset = chassis::power(&mut host.bmc, PowerAction::Reset);
    reset.await.unwrap();
    let out = host.until("on unknown-block(0,0)").await;
    has(
        &out,
        "Kernel command line: root=/dev/sda2 console=hvc0
VFS: Unable to mount root fs
Kernel panic - not syncing: VFS: Unable to mount root fs",
    );
    assert!(f.api.calls().is_empty());
    host.sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_image_gets_paced_progress_and_heartbeats() {
    let f = Fixture::new("http", Kind::Deploy).await;
    f.api.heartbeat.store(1, Ordering::Relaxed);
    let image = f.api.image.clone();
    *f.api.image_url.lock().unwrap() = scripted_server(image.len(), image, 8).await;
    let mut host = Host::boot(f.host(HostFault::None)).await;
    host.until("petitlab-agent: done; waiting for petitlab to reboot this node")
        .await;
    assert_clean_deploy(&f);
    let calls = f.api.calls();
    let progress: Vec<&Call> = calls.iter().filter(|c| c.path == "/v1/progress").collect();
    assert!(progress.len() >= 3, "progress while writing: {calls:?}");
    // At most every 500 ms, the final one (at the end) aside.
    for pair in progress[..progress.len() - 1].windows(2) {
        let gap = pair[1].at - pair[0].at;
        assert!(
            gap >= Duration::from_millis(490),
            "progress {gap:?} apart: {calls:?}"
        );
    }
    let (first, last) = (progress[0].at, progress[progress.len() - 1].at);
    let beat = |c: &Call| c.path == "/v1/heartbeat" && c.at > first && c.at < last;
    assert!(
        calls.iter().any(beat),
        "a heartbeat while the download stalled: {calls:?}"
    );
    host.sim.shutdown().await;
}
