//! petitlab's HTTP server against the real `curl` (Debian's curl package):
//! full downloads of 0 B to 33 MiB files checked by SHA-256, ranges, HEAD,
//! 304 and 416, every traversal form we know refused with the secret never
//! leaking, 10 parallel downloads, and keep-alive across two URLs. Fails,
//! never skips, without curl.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use petitlab::serve::http::{HttpHandle, HttpOptions, HttpServer};

const SECRET: &[u8] = b"TOP-SECRET-petitlab-must-never-serve-this";
const BIG: usize = (33 << 20) + 7;

/// Deterministic bytes (xorshift64*), different per `seed`.
fn pattern(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        out.extend_from_slice(&x.wrapping_mul(0x2545_F491_4F6C_DD1D).to_le_bytes());
    }
    out.truncate(len);
    out
}

/// `sha256sum` of each file, in order (natively fast, unlike a debug build).
fn sha256(files: &[&Path]) -> Vec<String> {
    let out = Command::new("sha256sum")
        .args(files)
        .output()
        .expect("sha256sum runs (apt-get install coreutils)");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    let sums: Vec<String> = text
        .lines()
        .map(|l| l.split_whitespace().next().unwrap().to_owned())
        .collect();
    assert_eq!(sums.len(), files.len());
    sums
}

struct Lab {
    dir: tempfile::TempDir,
    root: PathBuf,
    /// (name, size) of the served files.
    files: Vec<(String, usize)>,
    rt: tokio::runtime::Runtime,
    server: Option<HttpHandle>,
    addr: SocketAddr,
}

impl Lab {
    fn new() -> Lab {
        let found = Command::new("curl")
            .arg("--version")
            .stdout(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        assert!(found, "curl is not installed: apt-get install curl");

        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("root");
        std::fs::create_dir_all(root.join("a/b")).unwrap();
        std::fs::create_dir_all(root.join("dir")).unwrap();
        std::fs::create_dir_all(root.join("v1")).unwrap();
        std::fs::write(root.join("v1/x"), b"not for files").unwrap();
        std::fs::write(dir.path().join("secret"), SECRET).unwrap();
        std::os::unix::fs::symlink(dir.path().join("secret"), root.join("escape")).unwrap();
        std::os::unix::fs::symlink("../secret", root.join("escape-rel")).unwrap();

        let mut files = vec![("empty".to_owned(), 0), ("one".to_owned(), 1)];
        for n in [1, 3, 8, 2048] {
            files.push((format!("blocks-{n}"), 512 * n));
        }
        files.push(("vmlinux-big".to_owned(), BIG));
        for (i, (name, size)) in files.iter().enumerate() {
            std::fs::write(root.join(name), pattern(*size, i as u64 + 1)).unwrap();
        }

        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let listen = "127.0.0.1:0".parse().unwrap();
        let server = rt
            .block_on(HttpServer::bind(
                listen,
                root.clone(),
                HttpOptions::default(),
            ))
            .unwrap();
        let server = {
            let _entered = rt.enter();
            server.spawn()
        };
        let addr = server.local_addr();
        Lab {
            dir,
            root,
            files,
            rt,
            server: Some(server),
            addr,
        }
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    fn content(&self, name: &str) -> Vec<u8> {
        std::fs::read(self.root.join(name)).unwrap()
    }

    fn served(&self, name: &str) -> PathBuf {
        self.root.join(name)
    }

    fn out(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        if let Some(server) = self.server.take() {
            self.rt.block_on(server.shutdown(Duration::from_secs(5)));
        }
    }
}

/// `curl -q -sS --noproxy '*' ARGS`: no ~/.curlrc, no proxy from the env.
fn curl(args: &[&str]) -> Output {
    let out = Command::new("curl")
        .args(["-q", "-sS", "--noproxy", "*", "--max-time", "60"])
        .args(args)
        .output()
        .expect("curl runs");
    assert!(
        out.status.success(),
        "curl {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// Fetches `url` into `file` with extra `args`; returns the status code.
fn fetch(url: &str, file: &Path, args: &[&str]) -> u16 {
    let file = file.to_str().unwrap();
    let mut all = vec!["-o", file, "-w", "%{http_code}"];
    all.extend_from_slice(args);
    all.push(url);
    let out = curl(&all);
    String::from_utf8(out.stdout).unwrap().parse().unwrap()
}

/// The downloaded body; curl writes no file for an empty body.
fn read_body(file: &Path) -> Vec<u8> {
    std::fs::read(file).unwrap_or_default()
}

/// Header `name` from `curl -D -`/`-I` output.
fn header<'a>(head: &'a str, name: &str) -> Option<&'a str> {
    head.lines().find_map(|line| {
        let (n, v) = line.split_once(':')?;
        n.eq_ignore_ascii_case(name).then(|| v.trim())
    })
}

#[test]
fn full_downloads_match_byte_for_byte() {
    let lab = Lab::new();
    for (name, size) in &lab.files {
        let out = lab.out(&format!("got-{name}"));
        let _ = std::fs::remove_file(&out);
        assert_eq!(
            fetch(&lab.url(&format!("/{name}")), &out, &[]),
            200,
            "{name}"
        );
        if *size == 0 {
            assert!(read_body(&out).is_empty());
            continue;
        }
        assert_eq!(
            std::fs::metadata(&out).unwrap().len(),
            *size as u64,
            "{name}"
        );
        let sums = sha256(&[&out, &lab.served(name)]);
        assert_eq!(sums[0], sums[1], "{name}");
    }
}

#[test]
fn ranges_head_and_conditionals() {
    let lab = Lab::new();
    let big = lab.content("vmlinux-big");
    let url = lab.url("/vmlinux-big");
    let out = lab.out("part");
    for (range, expected) in [
        ("1000-1999", &big[1000..2000]),
        ("-100", &big[BIG - 100..]),
        ("100-", &big[100..]),
        ("0-0", &big[..1]),
        (&*format!("{}-{}", BIG - 1, BIG + 50), &big[BIG - 1..]),
    ] {
        assert_eq!(fetch(&url, &out, &["-r", range]), 206, "{range}");
        let got = read_body(&out);
        assert_eq!(got.len(), expected.len(), "{range}");
        assert!(got == expected, "{range}: wrong bytes");
    }

    let head = String::from_utf8(curl(&["-I", &url]).stdout).unwrap();
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert_eq!(header(&head, "content-length"), Some(&*BIG.to_string()));
    assert_eq!(header(&head, "accept-ranges"), Some("bytes"));
    assert_eq!(
        header(&head, "content-type"),
        Some("application/octet-stream")
    );
    let modified = header(&head, "last-modified").expect("Last-Modified");
    assert!(
        modified.ends_with(" GMT") && modified.len() == 29,
        "{modified}"
    );
    let etag = header(&head, "etag").expect("ETag");
    assert!(etag.starts_with('"') && etag.ends_with('"'), "{etag}");

    let beyond = format!("{BIG}-");
    let got = curl(&["-D", "-", "-o", "/dev/null", "-r", &beyond, &url]);
    let got = String::from_utf8(got.stdout).unwrap();
    assert!(got.starts_with("HTTP/1.1 416"), "{got}");
    let unsatisfied = format!("bytes */{BIG}");
    assert_eq!(header(&got, "content-range"), Some(&*unsatisfied));

    let none_match = format!("If-None-Match: {etag}");
    assert_eq!(fetch(&url, &out, &["-H", &none_match]), 304);
    let since = format!("If-Modified-Since: {modified}");
    assert_eq!(fetch(&url, &out, &["-H", &since]), 304);
    assert_eq!(fetch(&url, &out, &["-H", "If-None-Match: \"stale\""]), 200);
}

#[test]
fn nothing_outside_the_root_nor_any_directory_is_served() {
    let lab = Lab::new();
    let out = lab.out("attempt");
    for path in [
        "/../secret",
        "/%2e%2e/secret",
        "/%2E%2E/secret",
        "/%2e%2e%2fsecret",
        "/..%2fsecret",
        "/..%2Fsecret",
        "/a/%2e%2e/%2e%2e/secret",
        "/a/b/../../../secret",
        "/a/..%5c..%5csecret",
        "/..\\secret",
        "/escape",
        "/escape-rel",
        "/secret%00",
        "/dir",
        "/dir/",
        "/a/b/",
        "/",
        "/v1/x",
        "/v1/",
        "/%76%31/x",
        "/missing",
    ] {
        let _ = std::fs::remove_file(&out);
        let code = fetch(&lab.url(path), &out, &["--path-as-is"]);
        assert_eq!(code, 404, "{path}");
        let body = read_body(&out);
        assert!(
            !body.windows(SECRET.len()).any(|w| w == SECRET),
            "{path} leaked the secret"
        );
        assert!(!body.starts_with(b"not for files"), "{path}");
    }
}

#[test]
fn ten_parallel_downloads_of_the_big_file() {
    let lab = Lab::new();
    let url = lab.url("/vmlinux-big");
    let children: Vec<_> = (0..10)
        .map(|i| {
            let out = lab.out(&format!("parallel-{i}"));
            let child = Command::new("curl")
                .args(["-q", "-sS", "--noproxy", "*", "--max-time", "120", "-o"])
                .arg(&out)
                .arg(&url)
                .spawn()
                .expect("curl runs");
            (child, out)
        })
        .collect();
    let mut files = vec![lab.served("vmlinux-big")];
    for (mut child, out) in children {
        assert!(child.wait().unwrap().success());
        files.push(out);
    }
    let sums = sha256(&files.iter().map(PathBuf::as_path).collect::<Vec<_>>());
    for (file, sum) in files.iter().zip(&sums) {
        assert_eq!(sum, &sums[0], "{}", file.display());
    }
}

#[test]
fn one_connection_carries_two_requests() {
    let lab = Lab::new();
    let (first, second) = (lab.out("ka-1"), lab.out("ka-2"));
    let out = curl(&[
        "-w",
        "%{http_code} %{num_connects}\n",
        "-o",
        first.to_str().unwrap(),
        &lab.url("/blocks-8"),
        "-o",
        second.to_str().unwrap(),
        &lab.url("/one"),
    ]);
    let report = String::from_utf8(out.stdout).unwrap();
    assert_eq!(
        report, "200 1\n200 0\n",
        "the second transfer reuses the connection"
    );
    assert_eq!(read_body(&first), lab.content("blocks-8"));
    assert_eq!(read_body(&second), lab.content("one"));
}
