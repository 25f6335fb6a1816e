//! Raw lab.toml → validated [`Lab`], collecting every problem on the way.

use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};

use super::raw::{
    Lenient, RawBmc, RawDeploy, RawInstance, RawLab, RawNode, RawServer,
    deserialize_collecting_unknown,
};
use super::*;

/// The environment a lab.toml is read in (variables), so tests need not
/// touch the process environment.
pub struct Env {
    vars: HashMap<String, String>,
}

impl Env {
    pub fn from_process() -> Self {
        Env {
            vars: std::env::vars().collect(),
        }
    }

    #[cfg(test)]
    pub fn from_pairs(pairs: &[(&str, &str)]) -> Self {
        Env {
            vars: pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        }
    }

    fn var(&self, name: &str) -> Option<&str> {
        self.vars
            .get(name)
            .map(String::as_str)
            .filter(|v| !v.is_empty())
    }
}

/// Collects problems while building; `node` is the node being built, if any.
struct Ctx<'a> {
    lab_dir: PathBuf,
    env: &'a Env,
    problems: Vec<Problem>,
    /// Password files already warned about (one warning per file, not per node).
    warned_files: Vec<PathBuf>,
}

impl Ctx<'_> {
    fn error(&mut self, node: Option<&str>, field: &str, message: impl Into<String>) {
        self.problems.push(Problem::error(node, field, message));
    }

    fn warn(&mut self, node: Option<&str>, field: &str, message: impl Into<String>) {
        self.problems.push(Problem::warning(node, field, message));
    }

    /// The value of a lenient field; a type error is recorded and yields `None`.
    fn take<T>(&mut self, node: Option<&str>, field: &str, value: Lenient<T>) -> Option<T> {
        match value {
            Lenient::Missing => None,
            Lenient::Value(v) => Some(v),
            Lenient::Invalid(why) => {
                self.error(node, field, why);
                None
            }
        }
    }

    fn required<T>(&mut self, node: Option<&str>, field: &str, value: Lenient<T>) -> Option<T> {
        let missing = matches!(value, Lenient::Missing);
        let v = self.take(node, field, value);
        if missing {
            self.error(node, field, "is required");
        }
        v
    }

    /// A path from lab.toml: `~/` is the home directory, relative paths are
    /// relative to the directory holding lab.toml.
    fn resolve(&self, raw: &str) -> PathBuf {
        if let (Some(rest), Some(home)) = (raw.strip_prefix("~/"), self.env.var("HOME")) {
            return Path::new(home).join(rest);
        }
        self.lab_dir.join(raw)
    }

    /// A path to a file petitlab will read: it must exist and be readable.
    fn readable_file(&mut self, node: Option<&str>, field: &str, raw: &str) -> PathBuf {
        let path = self.resolve(raw);
        if let Err(why) = check_readable(&path) {
            self.error(node, field, format!("{}: {why}", path.display()));
        }
        path
    }
}

fn check_readable(path: &Path) -> Result<(), String> {
    let meta = std::fs::metadata(path).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => "does not exist".to_string(),
        _ => format!("cannot be read: {e}"),
    })?;
    if meta.is_dir() {
        return Err("is a directory, not a file".into());
    }
    std::fs::File::open(path)
        .map(drop)
        .map_err(|e| format!("cannot be read: {e}"))
}

pub fn from_text(path: &Path, text: &str, env: &Env) -> Loaded {
    let lab_dir = std::path::absolute(path)
        .ok()
        .and_then(|p| p.parent().map(Path::to_path_buf))
        .unwrap_or_else(|| PathBuf::from("."));
    let mut ctx = Ctx {
        lab_dir,
        env,
        problems: Vec::new(),
        warned_files: Vec::new(),
    };
    let lab = match parse_raw(&mut ctx, text) {
        Some(raw) => build_lab(&mut ctx, path, raw),
        None => {
            // Unparsable: report only that, not the defaults' shortcomings.
            let reported = ctx.problems.len();
            let lab = build_lab(&mut ctx, path, RawLab::default());
            ctx.problems.truncate(reported);
            lab
        }
    };
    Loaded {
        lab,
        problems: ctx.problems,
    }
}

fn parse_raw(ctx: &mut Ctx, text: &str) -> Option<RawLab> {
    let table: toml::Table = match text.parse() {
        Ok(t) => t,
        Err(e) => {
            ctx.error(None, "lab.toml", format!("not valid TOML: {e}"));
            return None;
        }
    };
    match deserialize_collecting_unknown::<RawLab>(toml::Value::Table(table)) {
        Ok((raw, unknown)) => {
            for key in unknown {
                ctx.error(None, &key, "unknown key (misspelt?)");
            }
            Some(raw)
        }
        Err(why) => {
            ctx.error(None, "lab.toml", why);
            None
        }
    }
}

fn build_lab(ctx: &mut Ctx, path: &Path, raw: RawLab) -> Lab {
    let state_dir = match ctx.take(None, "state_dir", raw.state_dir) {
        Some(dir) => ctx.resolve(&dir),
        None => default_state_dir(ctx),
    };

    let protocol = match ctx.take(None, "petitboot.protocol", raw.petitboot.protocol) {
        None => Protocol::Http,
        Some(p) => match p.as_str() {
            "http" => Protocol::Http,
            "tftp" => Protocol::Tftp,
            other => {
                let msg = format!("{other:?} is not a protocol; use \"http\" or \"tftp\"");
                ctx.error(None, "petitboot.protocol", msg);
                Protocol::Http
            }
        },
    };
    let field = "petitboot.config_template";
    let template = match ctx.take(None, field, raw.petitboot.config_template) {
        None => Template {
            path: None,
            source: DEFAULT_TEMPLATE.to_string(),
        },
        Some(raw_path) => {
            let path = ctx.resolve(&raw_path);
            let source = std::fs::read_to_string(&path).unwrap_or_else(|e| {
                ctx.error(
                    None,
                    field,
                    format!("{}: cannot be read: {e}", path.display()),
                );
                String::new()
            });
            Template {
                path: Some(path),
                source,
            }
        }
    };

    let http = build_server(
        ctx,
        "http",
        raw.http,
        &state_dir,
        8080,
        protocol == Protocol::Http,
    );
    let tftp = build_server(
        ctx,
        "tftp",
        raw.tftp,
        &state_dir,
        69,
        protocol == Protocol::Tftp,
    );
    let dhcp = build_dhcp(ctx, raw.dhcp, &state_dir);

    let mut identities = Vec::new();
    let mut built = Vec::new();
    for (index, value) in raw.node.into_iter().enumerate() {
        let (identity, node) = build_node(ctx, index, value);
        identities.push(identity);
        built.push(node);
    }
    let clashing = find_duplicates(ctx, &identities);
    let nodes = built
        .into_iter()
        .zip(clashing)
        .filter_map(|(node, clash)| if clash { None } else { node })
        .collect();

    Lab {
        path: path.to_path_buf(),
        state_dir,
        petitboot: Petitboot { template, protocol },
        http,
        tftp,
        dhcp,
        nodes,
    }
}

/// `$XDG_STATE_HOME/petitlab`, else `~/.local/state/petitlab`.
fn default_state_dir(ctx: &mut Ctx) -> PathBuf {
    if let Some(xdg) = ctx.env.var("XDG_STATE_HOME") {
        return Path::new(xdg).join("petitlab");
    }
    if let Some(home) = ctx.env.var("HOME") {
        return Path::new(home).join(".local/state/petitlab");
    }
    ctx.error(
        None,
        "state_dir",
        "not set, and neither XDG_STATE_HOME nor HOME is set to derive it",
    );
    PathBuf::from("petitlab-state")
}

fn build_server(
    ctx: &mut Ctx,
    section: &str,
    raw: RawServer,
    state_dir: &Path,
    default_port: u16,
    in_use: bool,
) -> Server {
    let root = match ctx.take(None, &format!("{section}.root"), raw.root) {
        Some(root) => ctx.resolve(&root),
        None => state_dir.join(section),
    };
    let listen_field = format!("{section}.listen");
    let default_listen = SocketAddr::from((Ipv4Addr::UNSPECIFIED, default_port));
    let listen = match ctx.take(None, &listen_field, raw.listen) {
        None => default_listen,
        Some(s) => s.parse().unwrap_or_else(|_| {
            let msg = format!("{s:?} is not an address:port such as 10.77.0.1:{default_port}");
            ctx.error(None, &listen_field, msg);
            default_listen
        }),
    };
    let url_field = format!("{section}.base_url");
    let scheme = format!("{section}://");
    let base_url = match ctx.take(None, &url_field, raw.base_url) {
        Some(url) => {
            let host = url.strip_prefix(&scheme).unwrap_or("");
            if host.is_empty() || host.starts_with('/') {
                let msg = format!("{url:?} must look like {scheme}10.77.0.1:{default_port}/");
                ctx.error(None, &url_field, msg);
            } else if url.chars().any(|c| c.is_whitespace() || "\"'#".contains(c)) {
                let msg =
                    format!("{url:?} contains a space, quote or '#' that petitboot would misread");
                ctx.error(None, &url_field, msg);
            }
            Some(with_trailing_slash(url))
        }
        // Nodes can reach a specific listen address; a wildcard names no host.
        None if !listen.ip().is_unspecified() => Some(match listen.port() {
            p if p == default_port && section == "tftp" => format!("{scheme}{}/", listen.ip()),
            p => format!("{scheme}{}:{p}/", listen.ip()),
        }),
        None => {
            if in_use {
                let msg = format!(
                    "is required: the URL nodes fetch from (e.g. {scheme}10.77.0.1:{default_port}/), \
                     since {listen_field} {listen} names no single host"
                );
                ctx.error(None, &url_field, msg);
            }
            None
        }
    };
    Server {
        base_url,
        root,
        listen,
    }
}

/// Option 210 is joined to 209 by plain concatenation: it must end with `/`.
fn with_trailing_slash(mut url: String) -> String {
    if !url.ends_with('/') {
        url.push('/');
    }
    url
}

fn build_dhcp(ctx: &mut Ctx, raw: super::raw::RawDhcp, state_dir: &Path) -> Dhcp {
    let backend = ctx.take(None, "dhcp.backend", raw.backend);
    let hostsdir = ctx.take(None, "dhcp.hostsdir", raw.hostsdir);
    let optsdir = ctx.take(None, "dhcp.optsdir", raw.optsdir);
    match backend.as_deref() {
        None | Some("none") => Dhcp::None,
        Some("dnsmasq") => Dhcp::Dnsmasq {
            hostsdir: hostsdir.map_or_else(|| state_dir.join("dnsmasq/hosts"), |d| ctx.resolve(&d)),
            optsdir: optsdir.map_or_else(|| state_dir.join("dnsmasq/opts"), |d| ctx.resolve(&d)),
        },
        Some(other) => {
            let msg = format!("{other:?} is not a DHCP backend; use \"dnsmasq\" or \"none\"");
            ctx.error(None, "dhcp.backend", msg);
            Dhcp::None
        }
    }
}

/// What makes a node unique in the lab; collected even for invalid nodes
/// so duplicates are reported alongside their other problems.
#[derive(Default)]
struct Identity {
    label: String,
    uuid: Option<Uuid>,
    uuid_derived: bool,
    macs: Vec<MacAddr>,
    ipv4: Option<Ipv4Addr>,
}

fn build_node(ctx: &mut Ctx, index: usize, value: toml::Value) -> (Identity, Option<Node>) {
    let fallback_label = format!("node[{index}]");
    let (raw, unknown) = match deserialize_collecting_unknown::<RawNode>(value) {
        Ok(parsed) => parsed,
        Err(why) => {
            ctx.error(Some(&fallback_label), "node", why);
            let identity = Identity {
                label: fallback_label,
                ..Identity::default()
            };
            return (identity, None);
        }
    };
    let before = ctx.problems.iter().filter(|p| p.is_error()).count();

    let name = ctx.required(Some(&fallback_label), "name", raw.name);
    let label = match &name {
        Some(n) if !n.is_empty() => n.clone(),
        _ => fallback_label,
    };
    let node = Some(label.as_str());
    for key in unknown {
        ctx.error(node, &key, "unknown key (misspelt?)");
    }
    if let Some(n) = &name
        && let Err(why) = check_node_name(n)
    {
        ctx.error(node, "name", why);
    }

    let (uuid, uuid_derived) = match ctx.take(node, "uuid", raw.uuid) {
        Some(s) => match s.parse::<Uuid>() {
            Ok(u) => (Some(u), false),
            Err(e) => {
                ctx.error(node, "uuid", format!("{s:?} is not a UUID: {e}"));
                (None, false)
            }
        },
        None => (Some(derived_uuid(&label)), true),
    };

    let mut macs = Vec::new();
    match ctx.required(node, "macs", raw.macs) {
        Some(list) if list.is_empty() => ctx.error(node, "macs", "needs at least one MAC address"),
        Some(list) => {
            for (i, s) in list.iter().enumerate() {
                match s.parse::<MacAddr>() {
                    Ok(mac) if macs.contains(&mac) => ctx.error(
                        node,
                        &format!("macs[{i}]"),
                        format!("{mac} is listed twice"),
                    ),
                    Ok(mac) => macs.push(mac),
                    Err(why) => ctx.error(node, &format!("macs[{i}]"), why),
                }
            }
        }
        None => {}
    }

    let ipv4 = ctx
        .take(node, "ipv4", raw.ipv4)
        .and_then(|s| match s.parse::<Ipv4Addr>() {
            Ok(ip) if ip.is_unspecified() || ip.is_broadcast() || ip.is_multicast() => {
                ctx.error(node, "ipv4", format!("{ip} cannot be a node's address"));
                None
            }
            Ok(ip) => Some(ip),
            Err(_) => {
                ctx.error(node, "ipv4", format!("{s:?} is not an IPv4 address"));
                None
            }
        });

    let cpu_arch = match ctx.take(node, "cpu_arch", raw.cpu_arch).as_deref() {
        None | Some("ppc64le") => CpuArch::Ppc64le,
        Some("ppc64") => CpuArch::Ppc64,
        Some(other) => {
            let msg = format!("unknown cpu_arch {other:?}; use \"ppc64le\" or \"ppc64\"");
            ctx.error(node, "cpu_arch", msg);
            CpuArch::Ppc64le
        }
    };
    let boot_option = match ctx.take(node, "boot_option", raw.boot_option).as_deref() {
        None | Some("local") => BootOption::Local,
        Some("netboot") => BootOption::Netboot,
        Some(other) => {
            let msg = format!("unknown boot_option {other:?}; use \"local\" or \"netboot\"");
            ctx.error(node, "boot_option", msg);
            BootOption::Local
        }
    };

    let console = ctx.take(node, "console", raw.console);
    if let Some(c) = &console
        && (c.is_empty()
            || c.chars()
                .any(|ch| ch.is_whitespace() || "\"'#".contains(ch)))
    {
        let msg = format!("{c:?} must be one word such as hvc0 or ttyS0,115200");
        ctx.error(node, "console", msg);
    }
    let kernel_args = ctx
        .take(node, "kernel_args", raw.kernel_args)
        .unwrap_or_default();
    let bootif = ctx.take(node, "bootif", raw.bootif).unwrap_or(false);

    let bmc = build_bmc(ctx, node, raw.bmc);
    let deploy = build_deploy(ctx, node, raw.deploy);
    let instance = build_instance(ctx, node, raw.instance, boot_option);

    let identity = Identity {
        label: label.clone(),
        uuid,
        uuid_derived,
        macs: macs.clone(),
        ipv4,
    };
    let after = ctx.problems.iter().filter(|p| p.is_error()).count();
    if after > before {
        return (identity, None);
    }
    let node = (|| {
        Some(Node {
            name: label,
            uuid: uuid?,
            uuid_derived,
            macs,
            ipv4,
            cpu_arch,
            boot_option,
            console,
            kernel_args,
            bootif,
            bmc: bmc?,
            deploy: deploy?,
            instance: instance?,
        })
    })();
    (identity, node)
}

/// Names become file names, DHCP tags and CLI arguments: keep them hostname-like.
fn check_node_name(name: &str) -> Result<(), String> {
    let ok_chars = name
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c));
    let starts_ok = name.starts_with(|c: char| c.is_ascii_alphanumeric());
    if name.is_empty() || name.len() > 63 || !ok_chars || !starts_ok {
        return Err(format!(
            "{name:?} must be 1-63 letters, digits, '-', '_' or '.', starting with a letter or digit"
        ));
    }
    Ok(())
}

fn build_bmc(ctx: &mut Ctx, node: Option<&str>, raw: Option<RawBmc>) -> Option<Bmc> {
    let Some(raw) = raw else {
        ctx.error(
            node,
            "bmc",
            "is required: host, username and a password source",
        );
        return None;
    };
    let host = ctx.required(node, "bmc.host", raw.host);
    let port = ctx.take(node, "bmc.port", raw.port).unwrap_or(623);
    if port == 0 {
        ctx.error(node, "bmc.port", "0 is not a port");
    }
    let username = ctx.required(node, "bmc.username", raw.username);

    let literal = ctx.take(node, "bmc.password", raw.password);
    let env = ctx.take(node, "bmc.password_env", raw.password_env);
    let file = ctx.take(node, "bmc.password_file", raw.password_file);
    let given = [literal.is_some(), env.is_some(), file.is_some()];
    let password = match (literal, env, file) {
        _ if given.iter().filter(|g| **g).count() > 1 => {
            let msg = "give only one of password_env, password_file, password";
            ctx.error(node, "bmc.password_env", msg);
            None
        }
        (None, Some(var), None) => {
            if ctx.env.var(&var).is_none() {
                let msg = format!("environment variable {var} is not set (or empty)");
                ctx.error(node, "bmc.password_env", msg);
            }
            Some(PasswordSource::Env(var))
        }
        (None, None, Some(raw_path)) => {
            let path = ctx.readable_file(node, "bmc.password_file", &raw_path);
            warn_if_shared(ctx, node, &path);
            Some(PasswordSource::File(path))
        }
        (Some(secret), None, None) => {
            let msg =
                "a literal password is stored in lab.toml; prefer password_env or password_file";
            ctx.warn(node, "bmc.password", msg);
            Some(PasswordSource::Literal(secret))
        }
        _ => {
            let msg = "is required: give password_env or password_file";
            ctx.error(node, "bmc.password_env", msg);
            None
        }
    };

    let cipher_suite = match ctx.take(node, "bmc.cipher_suite", raw.cipher_suite) {
        None => CipherSuite::Auto,
        Some(v) => match v
            .as_str()
            .map(str::to_string)
            .unwrap_or(v.to_string())
            .as_str()
        {
            "auto" => CipherSuite::Auto,
            "3" => CipherSuite::Suite3,
            "17" => CipherSuite::Suite17,
            other => {
                let msg = format!("{other} is not supported; use \"auto\", 3 or 17");
                ctx.error(node, "bmc.cipher_suite", msg);
                CipherSuite::Auto
            }
        },
    };

    Some(Bmc {
        host: host?,
        port,
        username: username?,
        password: password?,
        cipher_suite,
    })
}

fn warn_if_shared(ctx: &mut Ctx, node: Option<&str>, path: &Path) {
    use std::os::unix::fs::PermissionsExt;
    if ctx.warned_files.iter().any(|p| p == path) {
        return;
    }
    if let Ok(meta) = std::fs::metadata(path)
        && meta.permissions().mode() & 0o077 != 0
    {
        ctx.warned_files.push(path.to_path_buf());
        let msg = format!(
            "{} is readable by other users (mode {:o}); chmod 600 it",
            path.display(),
            meta.permissions().mode() & 0o777
        );
        ctx.warn(node, "bmc.password_file", msg);
    }
}

fn build_deploy(ctx: &mut Ctx, node: Option<&str>, raw: Option<RawDeploy>) -> Option<DeployImages> {
    let Some(raw) = raw else {
        ctx.error(
            node,
            "deploy",
            "is required: deploy.kernel and deploy.ramdisk",
        );
        return None;
    };
    let kernel = ctx.required(node, "deploy.kernel", raw.kernel);
    let ramdisk = ctx.required(node, "deploy.ramdisk", raw.ramdisk);
    let kernel = kernel.map(|k| ctx.readable_file(node, "deploy.kernel", &k));
    let ramdisk = ramdisk.map(|r| ctx.readable_file(node, "deploy.ramdisk", &r));
    Some(DeployImages {
        kernel: kernel?,
        ramdisk: ramdisk?,
    })
}

fn build_instance(
    ctx: &mut Ctx,
    node: Option<&str>,
    raw: Option<RawInstance>,
    boot_option: BootOption,
) -> Option<InstanceImage> {
    let Some(raw) = raw else {
        ctx.error(node, "instance", "is required: at least instance.image");
        return None;
    };
    let image = ctx.required(node, "instance.image", raw.image);
    let kernel = ctx.take(node, "instance.kernel", raw.kernel);
    let ramdisk = ctx.take(node, "instance.ramdisk", raw.ramdisk);
    let root_device = ctx.take(node, "instance.root_device", raw.root_device);
    let image = image.map(|i| ctx.readable_file(node, "instance.image", &i));

    // A kernel, ramdisk or root device makes it a partition image.
    let partition = kernel.is_some() || ramdisk.is_some() || root_device.is_some();
    if !partition {
        if boot_option == BootOption::Netboot {
            let msg = "boot_option = \"netboot\" needs a partition image: \
                       add instance.kernel, instance.ramdisk and instance.root_device";
            ctx.error(node, "instance", msg);
        }
        return Some(InstanceImage::WholeDisk { image: image? });
    }
    if boot_option == BootOption::Local {
        let msg = "boot_option = \"local\" needs a whole-disk image (instance.image only), \
                   but instance.kernel/ramdisk/root_device make this a partition image";
        ctx.error(node, "instance", msg);
    }
    let mut part_file = |field: &str, value: Option<String>| match value {
        Some(v) => Some(ctx.readable_file(node, field, &v)),
        None => {
            ctx.error(node, field, "is required for a partition image");
            None
        }
    };
    let kernel = part_file("instance.kernel", kernel);
    let ramdisk = part_file("instance.ramdisk", ramdisk);
    let root_device = match root_device {
        Some(r) if r.is_empty() || r.chars().any(|c| c.is_whitespace() || "\"'#".contains(c)) => {
            let msg = format!("{r:?} must be one word such as /dev/sda2 or UUID=…");
            ctx.error(node, "instance.root_device", msg);
            None
        }
        Some(r) => Some(r),
        None => {
            ctx.error(
                node,
                "instance.root_device",
                "is required for a partition image",
            );
            None
        }
    };
    Some(InstanceImage::Partition {
        image: image?,
        kernel: kernel?,
        ramdisk: ramdisk?,
        root_device: root_device?,
    })
}

/// Names, uuids, MACs and IPs must be unique across the lab: each clash is
/// reported on the later node, and both nodes are marked (true) to be left out.
fn find_duplicates(ctx: &mut Ctx, nodes: &[Identity]) -> Vec<bool> {
    let mut clashing = vec![false; nodes.len()];
    let mut clash = |ctx: &mut Ctx, first: usize, later: usize, field: &str, what: String| {
        let msg = format!("{what} is also used by node {}", nodes[first].label);
        ctx.error(Some(&nodes[later].label), field, msg);
        clashing[first] = true;
        clashing[later] = true;
    };
    let mut names = HashMap::new();
    let mut uuids = HashMap::new();
    let mut macs = HashMap::new();
    let mut ips = HashMap::new();
    for (i, node) in nodes.iter().enumerate() {
        if let Some(&first) = names.get(&node.label) {
            clash(ctx, first, i, "name", format!("name {}", node.label));
        }
        names.entry(node.label.clone()).or_insert(i);
        if let Some(uuid) = node.uuid {
            if let Some(&first) = uuids.get(&uuid) {
                let field = if node.uuid_derived {
                    "uuid (derived from name)"
                } else {
                    "uuid"
                };
                clash(ctx, first, i, field, format!("uuid {uuid}"));
            }
            uuids.entry(uuid).or_insert(i);
        }
        for (m, mac) in node.macs.iter().enumerate() {
            if let Some(&first) = macs.get(mac) {
                clash(ctx, first, i, &format!("macs[{m}]"), format!("MAC {mac}"));
            }
            macs.entry(*mac).or_insert(i);
        }
        if let Some(ip) = node.ipv4 {
            if let Some(&first) = ips.get(&ip) {
                clash(ctx, first, i, "ipv4", format!("address {ip}"));
            }
            ips.entry(ip).or_insert(i);
        }
    }
    clashing
}

#[cfg(test)]
#[path = "build_tests.rs"]
mod tests;
