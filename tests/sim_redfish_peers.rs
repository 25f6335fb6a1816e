//! The simulated bmcweb (`Sim::start_redfish`) against clients we did not
//! write: curl over TLS with the front end's CA (and openssl for the
//! certificate's fingerprint), ipmitool on the same BMC, OpenSSH's `ssh`
//! (with sshpass) on the SSH console, and Python's `websockets` on
//! `/console0`. Every client runs with a timeout and is killed when the
//! test ends; a missing client fails the test, saying what to install.

mod support;

use std::path::PathBuf;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use petitlab::sim::redfish::{RedfishFrontend, RedfishSpec};
use petitlab::sim::{BmcSpec, BootDevice, SerialInput, Sim};
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::process::{Child, ChildStdin, Command};

const INSTALL: &str =
    "apt-get install curl ipmitool openssh-client sshpass python3-websockets openssl";
const COMMAND_TIMEOUT: Duration = Duration::from_secs(30);
const WAIT: Duration = Duration::from_secs(15);

/// The tool's path, or a failure that says what to install.
fn tool(name: &str) -> PathBuf {
    support::tools::tool(name, INSTALL)
}

struct Lab {
    sim: Sim,
    front: RedfishFrontend,
    dir: tempfile::TempDir,
}

async fn lab() -> Lab {
    let mut spec = BmcSpec::new("node1", 0, "admin", "password");
    spec.line_delay = Duration::from_millis(1);
    let sim = Sim::start(vec![spec]).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let front = sim
        .start_redfish(
            0,
            RedfishSpec::new(dir.path().join("bmc"), "admin", "password"),
        )
        .await
        .unwrap();
    Lab { sim, front, dir }
}

/// Runs a program to completion; its exit code, stdout, stderr.
async fn run(program: &str, args: &[&str]) -> (Option<i32>, String, String) {
    let child = Command::new(tool(program))
        .args(args)
        .stdin(Stdio::null())
        .kill_on_drop(true)
        .output();
    let out = tokio::time::timeout(COMMAND_TIMEOUT, child)
        .await
        .unwrap_or_else(|_| panic!("{program} {args:?} hung for {COMMAND_TIMEOUT:?}"))
        .unwrap_or_else(|e| panic!("cannot run {program}: {e}"));
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    eprintln!(
        "{program} {args:?} → {:?}\n{stdout}{stderr}",
        out.status.code()
    );
    (out.status.code(), stdout, stderr)
}

struct Http {
    status: u16,
    headers: String,
    body: String,
}

impl Http {
    fn json(&self) -> Value {
        serde_json::from_str(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {:?}", self.body))
    }

    fn header(&self, name: &str) -> Option<String> {
        self.headers.lines().find_map(|line| {
            let (n, v) = line.split_once(':')?;
            n.trim()
                .eq_ignore_ascii_case(name)
                .then(|| v.trim().to_string())
        })
    }
}

/// curl, verifying the server against the front end's CA.
async fn curl(lab: &Lab, method: &str, path: &str, auth: &[&str], body: Option<&str>) -> Http {
    let headers = lab.dir.path().join("headers");
    let out = lab.dir.path().join("body");
    let url = format!("https://127.0.0.1:{}{path}", lab.front.https.port());
    let (ca, headers_s, out_s) = (
        lab.front.ca_pem.to_str().unwrap(),
        headers.to_str().unwrap(),
        out.to_str().unwrap(),
    );
    let mut args = vec![
        "-sS",
        "--cacert",
        ca,
        "-X",
        method,
        "-D",
        headers_s,
        "-o",
        out_s,
        "-w",
        "%{http_code}",
    ];
    args.extend_from_slice(auth);
    if let Some(body) = body {
        args.extend_from_slice(&[
            "-H",
            "Content-Type: application/json",
            "--data-binary",
            body,
        ]);
    }
    args.push(&url);
    let (code, stdout, stderr) = run("curl", &args).await;
    assert_eq!(code, Some(0), "curl {method} {path} failed: {stderr}");
    Http {
        status: stdout.trim().parse().unwrap(),
        headers: std::fs::read_to_string(&headers).unwrap(),
        body: std::fs::read_to_string(&out).unwrap(),
    }
}

/// Logs in through the SessionService; the token.
async fn login(lab: &Lab) -> String {
    let body = r#"{"UserName":"admin","Password":"password"}"#;
    let reply = curl(
        lab,
        "POST",
        "/redfish/v1/SessionService/Sessions",
        &[],
        Some(body),
    )
    .await;
    assert_eq!(reply.status, 201, "login: {}", reply.body);
    reply.header("X-Auth-Token").expect("X-Auth-Token")
}

async fn ipmitool_power(lab: &Lab) -> String {
    let port = lab.sim.addr(0).port().to_string();
    let args = [
        "-I",
        "lanplus",
        "-C",
        "17",
        "-H",
        "127.0.0.1",
        "-p",
        &port,
        "-U",
        "admin",
        "-P",
        "password",
        "chassis",
        "power",
        "status",
    ];
    let (code, stdout, stderr) = run("ipmitool", &args).await;
    assert_eq!(code, Some(0), "ipmitool: {stderr}");
    stdout.trim().to_string()
}

async fn reset(lab: &Lab, token: &[&str], reset_type: &str) -> Http {
    let body = format!(r#"{{"ResetType":"{reset_type}"}}"#);
    let path = "/redfish/v1/Systems/system/Actions/ComputerSystem.Reset";
    curl(lab, "POST", path, token, Some(&body)).await
}

#[tokio::test]
async fn curl_logs_in_drives_power_and_boot_and_ipmitool_agrees() {
    let lab = lab().await;
    // The certificate curl trusted is the one whose fingerprint we report.
    let cert = lab.front.cert_pem.to_str().unwrap();
    let (code, stdout, _) = run(
        "openssl",
        &["x509", "-noout", "-fingerprint", "-sha256", "-in", cert],
    )
    .await;
    assert_eq!(code, Some(0));
    assert_eq!(
        stdout.trim().rsplit('=').next(),
        Some(lab.front.fingerprint.as_str())
    );

    let root = curl(&lab, "GET", "/redfish/v1", &[], None).await;
    assert_eq!(root.status, 200);
    assert_eq!(root.header("OData-Version").as_deref(), Some("4.0"));
    let anonymous = curl(&lab, "GET", "/redfish/v1/Systems/system", &[], None).await;
    assert_eq!(anonymous.status, 401);
    assert!(
        anonymous.json()["error"]["code"]
            .as_str()
            .unwrap()
            .ends_with("NoValidSession")
    );
    let wrong = r#"{"UserName":"admin","Password":"wrong"}"#;
    let refused = curl(
        &lab,
        "POST",
        "/redfish/v1/SessionService/Sessions",
        &[],
        Some(wrong),
    )
    .await;
    assert_eq!(refused.status, 401);
    assert!(refused.header("X-Auth-Token").is_none());
    let basic = curl(
        &lab,
        "GET",
        "/redfish/v1/Managers/bmc",
        &["-u", "admin:password"],
        None,
    )
    .await;
    assert_eq!(basic.status, 200);
    assert_eq!(basic.json()["ManagerType"], "BMC");
    let bad_basic = curl(
        &lab,
        "GET",
        "/redfish/v1/Managers/bmc",
        &["-u", "admin:nope"],
        None,
    )
    .await;
    assert_eq!(bad_basic.status, 401);

    let token = login(&lab).await;
    let auth_header = format!("X-Auth-Token: {token}");
    let auth = ["-H", auth_header.as_str()];
    let system = curl(&lab, "GET", "/redfish/v1/Systems/system", &auth, None).await;
    assert_eq!(system.status, 200);
    assert_eq!(system.json()["PowerState"], "Off");
    assert_eq!(ipmitool_power(&lab).await, "Chassis Power is off");

    assert_eq!(reset(&lab, &auth, "On").await.status, 204);
    let system = curl(&lab, "GET", "/redfish/v1/Systems/system", &auth, None).await;
    assert_eq!(system.json()["PowerState"], "On");
    assert_eq!(ipmitool_power(&lab).await, "Chassis Power is on");
    assert_eq!(reset(&lab, &auth, "ForceOff").await.status, 204);
    let system = curl(&lab, "GET", "/redfish/v1/Systems/system", &auth, None).await;
    assert_eq!(system.json()["PowerState"], "Off");
    assert_eq!(ipmitool_power(&lab).await, "Chassis Power is off");

    // Not in bmcweb's list: 400 with a Base registry message.
    let push = reset(&lab, &auth, "PushPowerButton").await;
    assert_eq!(push.status, 400);
    let id = push.json()["error"]["@Message.ExtendedInfo"][0]["MessageId"].clone();
    assert!(
        id.as_str().unwrap().ends_with("ActionParameterUnknown"),
        "{id}"
    );

    // A one-shot PXE override: the next boot netboots and consumes it.
    let mut serial = lab.sim.serial(0).output();
    let patch = r#"{"Boot":{"BootSourceOverrideEnabled":"Once","BootSourceOverrideTarget":"Pxe"}}"#;
    let patched = curl(
        &lab,
        "PATCH",
        "/redfish/v1/Systems/system",
        &auth,
        Some(patch),
    )
    .await;
    assert_eq!(patched.status, 204, "{}", patched.body);
    let boot = curl(&lab, "GET", "/redfish/v1/Systems/system", &auth, None)
        .await
        .json()["Boot"]
        .clone();
    assert_eq!(boot["BootSourceOverrideEnabled"], "Once");
    assert_eq!(boot["BootSourceOverrideTarget"], "Pxe");
    assert_eq!(lab.sim.chassis(0).boot_device, BootDevice::Pxe);
    assert_eq!(reset(&lab, &auth, "On").await.status, 204);
    let mut seen = String::new();
    tokio::time::timeout(WAIT, async {
        while !seen.contains("login: ") {
            seen.push_str(&String::from_utf8_lossy(&serial.recv().await.unwrap()));
        }
    })
    .await
    .unwrap_or_else(|_| panic!("no login prompt after power on: {seen}"));
    assert!(
        seen.contains("pxelinux.cfg"),
        "the host did not netboot: {seen}"
    );
    assert_eq!(lab.sim.chassis(0).booted_from, BootDevice::Pxe);
    let boot = curl(&lab, "GET", "/redfish/v1/Systems/system", &auth, None)
        .await
        .json()["Boot"]
        .clone();
    assert_eq!(boot["BootSourceOverrideEnabled"], "Disabled", "{boot}");

    let log = curl(
        &lab,
        "GET",
        "/redfish/v1/Systems/system/LogServices/EventLog/Entries",
        &auth,
        None,
    )
    .await;
    let ids: Vec<String> = log.json()["Members"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["MessageId"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(
        ids,
        [
            "OpenBMC.0.1.DCPowerOn",
            "OpenBMC.0.1.DCPowerOff",
            "OpenBMC.0.1.DCPowerOn"
        ]
    );

    // Bounded bodies and garbage requests: refused, and the server lives on.
    let big = lab.dir.path().join("big.json");
    std::fs::write(&big, vec![b' '; 100 * 1024]).unwrap();
    let big_arg = format!("@{}", big.display());
    let too_big = curl(
        &lab,
        "PATCH",
        "/redfish/v1/Systems/system",
        &auth,
        Some(&big_arg),
    )
    .await;
    assert_eq!(too_big.status, 413, "{}", too_big.body);
    let ca = lab.front.ca_pem.to_str().unwrap();
    let connect = format!("127.0.0.1:{}", lab.front.https.port());
    let mut raw = Peer::spawn(
        "openssl",
        &["s_client", "-quiet", "-CAfile", ca, "-connect", &connect],
    );
    raw.type_bytes(b"\x00\xffGARBAGE / HTTP/9\r\n\r\n").await;
    raw.wait_for("400 Bad Request").await;
    let alive = curl(&lab, "GET", "/redfish/v1/Systems/system", &auth, None).await;
    assert_eq!(alive.status, 200);

    // Logout: the token no longer works.
    let location = "/redfish/v1/SessionService/Sessions";
    let sessions = curl(&lab, "GET", location, &auth, None).await.json();
    let me = sessions["Members"][0]["@odata.id"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(curl(&lab, "DELETE", &me, &auth, None).await.status, 200);
    let after = curl(&lab, "GET", "/redfish/v1/Systems/system", &auth, None).await;
    assert_eq!(after.status, 401);
    lab.front.shutdown().await;
}

#[tokio::test]
async fn the_certificate_and_host_key_survive_a_restart() {
    let lab = lab().await;
    let (fingerprint, host_key) = (
        lab.front.fingerprint.clone(),
        lab.front.ssh_host_key_fingerprint.clone(),
    );
    let https = lab.front.https;
    lab.front.shutdown().await;
    let again = lab
        .sim
        .start_redfish(
            0,
            RedfishSpec {
                https_port: https.port(),
                ..RedfishSpec::new(lab.dir.path().join("bmc"), "admin", "password")
            },
        )
        .await
        .unwrap();
    assert_eq!(again.https, https, "the port is free again after shutdown");
    assert_eq!(
        (
            again.fingerprint.as_str(),
            again.ssh_host_key_fingerprint.as_str()
        ),
        (fingerprint.as_str(), host_key.as_str())
    );
    let (code, stdout, _) = run(
        "curl",
        &[
            "-sS",
            "--cacert",
            again.ca_pem.to_str().unwrap(),
            &format!("https://127.0.0.1:{}/redfish", https.port()),
        ],
    )
    .await;
    assert_eq!(code, Some(0));
    assert!(stdout.contains("/redfish/v1/"), "{stdout}");
}

/// A client process whose stdout is collected as it arrives.
struct Peer {
    child: Child,
    stdin: Option<ChildStdin>,
    out: Arc<Mutex<Vec<u8>>>,
    name: String,
}

impl Peer {
    fn spawn(program: &str, args: &[&str]) -> Peer {
        let mut child = Command::new(tool(program))
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run {program}: {e}"));
        let out = Arc::new(Mutex::new(Vec::new()));
        let mut stdout = child.stdout.take().unwrap();
        let sink = out.clone();
        tokio::spawn(async move {
            let mut buf = [0u8; 4096];
            while let Ok(n) = stdout.read(&mut buf).await {
                if n == 0 {
                    break;
                }
                sink.lock().unwrap().extend_from_slice(&buf[..n]);
            }
        });
        Peer {
            stdin: child.stdin.take(),
            child,
            out,
            name: program.to_string(),
        }
    }

    fn output(&self) -> String {
        String::from_utf8_lossy(&self.out.lock().unwrap()).into_owned()
    }

    async fn wait_for(&self, needle: &str) {
        let deadline = tokio::time::Instant::now() + WAIT;
        while !self.output().contains(needle) {
            assert!(
                tokio::time::Instant::now() < deadline,
                "{}: no {needle:?} within {WAIT:?} in {:?}",
                self.name,
                self.output()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    async fn type_bytes(&mut self, bytes: &[u8]) {
        let stdin = self.stdin.as_mut().unwrap();
        stdin.write_all(bytes).await.unwrap();
        stdin.flush().await.unwrap();
    }

    /// Its exit code, if it exits within `limit`.
    async fn exits_within(&mut self, limit: Duration) -> Option<Option<i32>> {
        let status = tokio::time::timeout(limit, self.child.wait()).await.ok()?;
        Some(status.unwrap().code())
    }
}

/// Writes markers on the host's serial port until `peer` shows one: its
/// console is attached and sees host output from now on.
async fn until_attached(lab: &Lab, peer: &Peer) {
    let deadline = tokio::time::Instant::now() + WAIT;
    for n in 0.. {
        let marker = format!("attached-{n}");
        lab.sim.serial(0).write(format!("{marker}\r\n"));
        tokio::time::sleep(Duration::from_millis(100)).await;
        if peer.output().contains(&marker) {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{} never saw host output: {:?}",
            peer.name,
            peer.output()
        );
    }
}

fn ssh_args<'a>(known_hosts: &'a str, port: &'a str) -> Vec<&'a str> {
    vec![
        "-e",
        "none",
        "-T",
        "-p",
        port,
        "-o",
        "StrictHostKeyChecking=accept-new",
        "-o",
        known_hosts,
        "-o",
        "PubkeyAuthentication=no",
        "-o",
        "PreferredAuthentications=password",
        "-o",
        "NumberOfPasswordPrompts=1",
        "-o",
        "ConnectTimeout=10",
        "admin@127.0.0.1",
    ]
}

/// Serial input bytes typed by consoles, collected.
fn typed(lab: &Lab) -> Arc<Mutex<Vec<u8>>> {
    let mut input = lab.sim.serial(0).input();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let sink = seen.clone();
    tokio::spawn(async move {
        while let Ok(got) = input.recv().await {
            if let SerialInput::Data(bytes) = got {
                sink.lock().unwrap().extend_from_slice(&bytes);
            }
        }
    });
    seen
}

async fn wait_typed(seen: &Mutex<Vec<u8>>, expected: &[u8]) {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let now = seen.lock().unwrap().clone();
        if now.windows(expected.len()).any(|w| w == expected) {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "serial input never got {expected:?}: {now:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn openssh_console_sees_the_host_types_8_bit_clean_and_escapes() {
    let lab = lab().await;
    let known_hosts = lab.dir.path().join("known_hosts");
    let known = format!("UserKnownHostsFile={}", known_hosts.display());
    let port = lab.front.ssh.port().to_string();

    // A wrong password: no console.
    let mut args = vec!["-p", "wrong", "ssh"];
    args.extend(ssh_args(&known, &port));
    let mut refused = Peer::spawn("sshpass", &args);
    let code = refused
        .exits_within(WAIT)
        .await
        .expect("sshpass with a wrong password hung");
    assert_ne!(code, Some(0));

    // Two consoles at once.
    let mut args = vec!["-p", "password", "ssh"];
    args.extend(ssh_args(&known, &port));
    let mut first = Peer::spawn("sshpass", &args);
    let second = Peer::spawn("sshpass", &args);
    until_attached(&lab, &first).await;
    until_attached(&lab, &second).await;

    // The key ssh recorded is the one we report.
    let (code, stdout, _) = run("ssh-keygen", &["-l", "-f", known_hosts.to_str().unwrap()]).await;
    assert_eq!(code, Some(0));
    assert!(
        stdout.contains(&lab.front.ssh_host_key_fingerprint),
        "{stdout}"
    );

    let typed = typed(&lab);
    let token = login(&lab).await;
    let auth_header = format!("X-Auth-Token: {token}");
    assert_eq!(reset(&lab, &["-H", &auth_header], "On").await.status, 204);
    first.wait_for("node1 login: ").await;
    second.wait_for("node1 login: ").await;
    assert!(first.output().contains("Petitboot"));

    // Bytes of every kind reach the serial port as typed.
    let bytes = b"root\xff\x00\x1b[A\x7f~.\r";
    first.type_bytes(bytes).await;
    wait_typed(&typed, bytes).await;
    // The host echoes at its prompt: both consoles see it.
    second.wait_for("root").await;

    // "~." after a carriage return ends the session, as obmc-console-client.
    first.type_bytes(b"~.").await;
    let code = first
        .exits_within(WAIT)
        .await
        .expect("ssh did not exit on ~.");
    assert_eq!(code, Some(2), "obmc-console-client's escape status");
    tokio::time::sleep(Duration::from_millis(100)).await;
    let all = typed.lock().unwrap().clone();
    assert!(
        all.ends_with(bytes),
        "the escape was sent to the host: {all:?}"
    );
    // The other console is still there.
    lab.sim.serial(0).write("still here\r\n");
    second.wait_for("still here").await;
    lab.front.shutdown().await;
}

const WS_CLIENT: &str = r#"
import asyncio, ssl, sys, websockets
url, ca, token = sys.argv[1], sys.argv[2], sys.argv[3]
ctx = ssl.create_default_context(cafile=ca)
out = sys.stdout.buffer
async def main():
    try:
        async with websockets.connect(url, ssl=ctx):
            print("UNAUTHENTICATED ACCEPTED", flush=True)
            sys.exit(1)
    except websockets.exceptions.InvalidStatusCode as e:
        print("refused", e.status_code, flush=True)
    async with websockets.connect(url, ssl=ctx, extra_headers={"X-Auth-Token": token}) as ws:
        seen = b""
        while b"login: " not in seen:
            msg = await ws.recv()
            assert isinstance(msg, bytes), type(msg)
            seen += msg
            out.write(msg); out.flush()
        await ws.send(b"ws-typed\xfe\r")
        while b"ws-typed" not in seen:
            msg = await ws.recv()
            seen += msg
            out.write(msg); out.flush()
    # bmcweb's web UI sends the token as the subprotocol instead.
    async with websockets.connect(url, ssl=ctx, subprotocols=[token]) as ws:
        assert ws.subprotocol == token, ws.subprotocol
    print("\nDONE", flush=True)
asyncio.run(asyncio.wait_for(main(), 20))
"#;

#[tokio::test]
async fn python_websockets_on_console0() {
    let lab = lab().await;
    let token = login(&lab).await;
    let url = format!("wss://127.0.0.1:{}/console0", lab.front.https.port());
    let typed = typed(&lab);
    // Debian's python3, where python3-websockets lives.
    let mut client = Peer::spawn(
        "/usr/bin/python3",
        &[
            "-c",
            WS_CLIENT,
            &url,
            lab.front.ca_pem.to_str().unwrap(),
            &token,
        ],
    );
    client.wait_for("refused 401").await;
    until_attached(&lab, &client).await;
    let auth_header = format!("X-Auth-Token: {token}");
    assert_eq!(reset(&lab, &["-H", &auth_header], "On").await.status, 204);
    client.wait_for("node1 login: ").await;
    wait_typed(&typed, b"ws-typed\xfe\r").await;
    client.wait_for("DONE").await;
    let code = client
        .exits_within(WAIT)
        .await
        .expect("the websocket client did not exit");
    assert_eq!(code, Some(0), "{}", client.output());
    lab.front.shutdown().await;
}
