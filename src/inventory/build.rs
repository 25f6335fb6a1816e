//! Raw lab.toml → validated [`Lab`], collecting every problem on the way.

use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};

use super::files;
use super::node::{build_node, find_duplicates};
use super::raw::{Lenient, RawLab, RawServer, deserialize_collecting_unknown};
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

    pub(super) fn var(&self, name: &str) -> Option<&str> {
        self.vars
            .get(name)
            .map(String::as_str)
            .filter(|v| !v.is_empty())
    }
}

/// Collects problems while building; `node` is the node being built, if any.
pub(super) struct Ctx<'a> {
    lab_dir: PathBuf,
    pub(super) env: &'a Env,
    pub(super) problems: Vec<Problem>,
    /// Password files already warned about (one warning per file, not per node).
    pub(super) warned_files: Vec<PathBuf>,
    /// The nodes whose files are looked at, and whose problems are kept.
    pub(super) scope: &'a Scope,
    /// Unknown keys inside nodes, by node index, until the nodes are built.
    pub(super) unknown_node_keys: Vec<(usize, String)>,
    /// Whether the setting being built is in scope: lab-wide settings always
    /// are; a node is when `scope` names it.
    pub(super) in_scope: bool,
}

impl Ctx<'_> {
    pub(super) fn error(&mut self, node: Option<&str>, field: &str, message: impl Into<String>) {
        self.problems.push(Problem::error(node, field, message));
    }

    pub(super) fn warn(&mut self, node: Option<&str>, field: &str, message: impl Into<String>) {
        self.problems.push(Problem::warning(node, field, message));
    }

    /// The value of a lenient field; a type error is recorded and yields `None`.
    pub(super) fn take<T>(
        &mut self,
        node: Option<&str>,
        field: &str,
        value: Lenient<T>,
    ) -> Option<T> {
        match value {
            Lenient::Missing => None,
            Lenient::Value(v) => Some(v),
            Lenient::Invalid(why) => {
                self.error(node, field, why);
                None
            }
        }
    }

    pub(super) fn required<T>(
        &mut self,
        node: Option<&str>,
        field: &str,
        value: Lenient<T>,
    ) -> Option<T> {
        let missing = matches!(value, Lenient::Missing);
        let v = self.take(node, field, value);
        if missing {
            self.error(node, field, "is required");
        }
        v
    }

    /// A required table: `missing` says what it must hold.
    pub(super) fn section<T>(
        &mut self,
        node: Option<&str>,
        field: &str,
        value: Lenient<T>,
        missing: &str,
    ) -> Option<T> {
        if matches!(value, Lenient::Missing) {
            self.error(node, field, missing);
            return None;
        }
        self.take(node, field, value)
    }

    /// A path from lab.toml: `~/` is the home directory, relative paths are
    /// relative to the directory holding lab.toml.
    pub(super) fn resolve(&self, raw: &str) -> PathBuf {
        if let (Some(rest), Some(home)) = (raw.strip_prefix("~/"), self.env.var("HOME")) {
            return Path::new(home).join(rest);
        }
        self.lab_dir.join(raw)
    }

    /// A path to a file petitlab will read: it must be a regular file
    /// (never a FIFO or a device) and readable. It is not read here.
    /// Out of scope, only the path is resolved: a command on one node does
    /// not open every other node's artifacts.
    pub(super) fn readable_file(&mut self, node: Option<&str>, field: &str, raw: &str) -> PathBuf {
        let path = self.resolve(raw);
        if !self.in_scope {
            return path;
        }
        if let Err(why) = files::open_regular(&path) {
            self.error(node, field, format!("{}: {why}", path.display()));
        }
        path
    }

    /// A directory petitlab writes into (state, served roots, dnsmasq's):
    /// if it exists it must be a directory, and not a system one.
    fn own_dir(&mut self, field: &str, path: &Path) {
        if let Err(why) = files::check_own_dir(path) {
            self.error(None, field, why);
        }
    }
}

pub fn from_text(path: &Path, text: &str, env: &Env, scope: &Scope) -> Loaded {
    let lab_dir = std::path::absolute(path)
        .ok()
        .and_then(|p| p.parent().map(Path::to_path_buf))
        .unwrap_or_else(|| PathBuf::from("."));
    let mut ctx = Ctx {
        lab_dir,
        env,
        problems: Vec::new(),
        warned_files: Vec::new(),
        scope,
        in_scope: true,
        unknown_node_keys: Vec::new(),
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
    // Other nodes' problems are `check`'s business, not this command's.
    let mut problems = ctx.problems;
    problems.retain(|p| p.node.as_deref().is_none_or(|n| scope.includes(n)));
    Loaded { lab, problems }
}

fn parse_raw(ctx: &mut Ctx, text: &str) -> Option<RawLab> {
    // Straight from the parsed document: going through a `toml::Table`
    // first cost a third of loading a 4000-node lab.
    let document = match toml::Deserializer::parse(text) {
        Ok(d) => d,
        Err(e) => {
            ctx.error(None, "lab.toml", format!("not valid TOML: {e}"));
            return None;
        }
    };
    match deserialize_collecting_unknown::<RawLab, _>(document) {
        Ok((raw, unknown)) => {
            // A node's own unknown keys are reported with that node.
            for key in unknown.iter().filter(|k| node_key(k).is_none()) {
                ctx.error(None, key, "unknown key (misspelt?)");
            }
            ctx.unknown_node_keys = unknown
                .iter()
                .filter_map(|k| node_key(k))
                .map(|(i, key)| (i, key.to_string()))
                .collect();
            Some(raw)
        }
        Err(why) => {
            ctx.error(None, "lab.toml", why);
            None
        }
    }
}

/// `node.3.bmc.pasword` → (3, `bmc.pasword`).
fn node_key(path: &str) -> Option<(usize, &str)> {
    let (index, key) = path.strip_prefix("node.")?.split_once('.')?;
    Some((index.parse().ok()?, key))
}

fn build_lab(ctx: &mut Ctx, path: &Path, raw: RawLab) -> Lab {
    let state_dir = match ctx.take(None, "state_dir", raw.state_dir) {
        Some(dir) => ctx.resolve(&dir),
        None => default_state_dir(ctx),
    };
    ctx.own_dir("state_dir", &state_dir);

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
            let source = files::read_text(&path, files::TEMPLATE_CAP).unwrap_or_else(|e| {
                ctx.error(None, field, format!("{}: {e}", path.display()));
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
    let dhcp_log = ctx
        .take(None, "dhcp.log", raw.dhcp.log.clone())
        .map(|p| ctx.resolve(&p));
    let dhcp = build_dhcp(ctx, raw.dhcp, &state_dir);
    let timeline = super::timeline::build(ctx, raw.timeline);
    let stage_patterns = build_stage_patterns(ctx, raw.console.stage_pattern);
    let console_always =
        super::service::build_always(ctx, raw.console.always, raw.console.always_by_group);
    let service = super::service::build(ctx, raw.service, &state_dir);
    let deploy = super::deploy::build(ctx, raw.deploy);
    let iscsi = super::iscsi::build(ctx, raw.iscsi);

    let mut identities = Vec::new();
    let mut built = Vec::new();
    let mut unknown = std::mem::take(&mut ctx.unknown_node_keys);
    for (index, value) in raw.node.into_iter().enumerate() {
        let (theirs, rest) = unknown.into_iter().partition(|(i, _)| *i == index);
        unknown = rest;
        let keys = theirs.into_iter().map(|(_, key)| key).collect();
        let (identity, node) = build_node(ctx, index, value.0, keys);
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
        stage_patterns,
        deploy,
        iscsi,
        service,
        console_always,
        dhcp_log,
        timeline,
        nodes,
    }
}

/// Extra console stage patterns; each must compile, and the error names it.
fn build_stage_patterns(
    ctx: &mut Ctx,
    raw: Lenient<Vec<crate::console::StagePattern>>,
) -> Vec<crate::console::StagePattern> {
    let field = "console.stage_pattern";
    let patterns = ctx.take(None, field, raw).unwrap_or_default();
    match crate::console::StageDetector::new(&patterns) {
        Ok(_) => patterns,
        Err(e) => {
            ctx.error(None, field, e.to_string());
            Vec::new()
        }
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
    let root_field = format!("{section}.root");
    let root = match ctx.take(None, &root_field, raw.root) {
        Some(root) => ctx.resolve(&root),
        None => state_dir.join(section),
    };
    ctx.own_dir(&root_field, &root);
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
            } else if section == "http" {
                // Configs may go over TFTP, but deploys always use HTTP.
                let msg = format!(
                    "is not set and {listen_field} {listen} names no single host: \
                     `petitlab deploy` will refuse every node (the deploy agent's API \
                     and the image are served over HTTP)"
                );
                ctx.warn(None, &url_field, msg);
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
        Some("dnsmasq") => {
            let hostsdir =
                hostsdir.map_or_else(|| state_dir.join("dnsmasq/hosts"), |d| ctx.resolve(&d));
            let optsdir =
                optsdir.map_or_else(|| state_dir.join("dnsmasq/opts"), |d| ctx.resolve(&d));
            ctx.own_dir("dhcp.hostsdir", &hostsdir);
            ctx.own_dir("dhcp.optsdir", &optsdir);
            Dhcp::Dnsmasq { hostsdir, optsdir }
        }
        Some(other) => {
            let msg = format!("{other:?} is not a DHCP backend; use \"dnsmasq\" or \"none\"");
            ctx.error(None, "dhcp.backend", msg);
            Dhcp::None
        }
    }
}

#[cfg(test)]
#[path = "build_tests.rs"]
mod tests;
