//! One `[[node]]` table → a validated [`Node`], and the lab-wide
//! uniqueness checks (names, uuids, MACs, addresses).

use std::collections::HashMap;
use std::net::Ipv4Addr;
use std::path::Path;

use super::build::Ctx;
use super::raw::{Lenient, RawBmc, RawDeploy, RawInstance, RawNode};
use super::*;

/// What makes a node unique in the lab; collected even for invalid nodes
/// so duplicates are reported alongside their other problems.
#[derive(Default)]
pub(super) struct Identity {
    label: String,
    uuid: Option<Uuid>,
    uuid_derived: bool,
    macs: Vec<MacAddr>,
    ipv4: Option<Ipv4Addr>,
}

pub(super) fn build_node(
    ctx: &mut Ctx,
    index: usize,
    raw: Lenient<RawNode>,
    unknown: Vec<String>,
) -> (Identity, Option<Node>) {
    let fallback_label = format!("node[{index}]");
    let raw = match raw {
        Lenient::Value(raw) => raw,
        Lenient::Missing | Lenient::Invalid(_) => {
            if let Lenient::Invalid(why) = raw {
                ctx.error(Some(&fallback_label), "node", why);
            }
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
    ctx.in_scope = ctx.scope.includes(&label);
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
    let deploy_interface = match ctx
        .take(node, "deploy_interface", raw.deploy_interface)
        .as_deref()
    {
        None | Some("agent") => DeployInterface::Agent,
        Some("iscsi") => DeployInterface::Iscsi,
        Some(other) => {
            let msg = format!("unknown deploy_interface {other:?}; use \"agent\" or \"iscsi\"");
            ctx.error(node, "deploy_interface", msg);
            DeployInterface::Agent
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
    let group = ctx.take(node, "group", raw.group);
    let console_always = ctx.take(node, "console_always", raw.console_always);
    let protocol = match ctx.take(node, "protocol", raw.protocol).as_deref() {
        None => None,
        Some("http") => Some(Protocol::Http),
        Some("tftp") => Some(Protocol::Tftp),
        Some(other) => {
            let msg = format!("{other:?} is not a protocol; use \"http\" or \"tftp\"");
            ctx.error(node, "protocol", msg);
            None
        }
    };

    let bmc = build_bmc(ctx, node, raw.bmc.0);
    let deploy = build_deploy(ctx, node, raw.deploy.0);
    let instance = build_instance(ctx, node, raw.instance.0, boot_option);
    ctx.in_scope = true;

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
            deploy_interface,
            console,
            kernel_args,
            bootif,
            group,
            console_always,
            protocol,
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

/// IPMI v2.0's limit on a user name, in bytes.
const MAX_USERNAME: usize = 16;
/// IPMI 2.0's limit (RAKP's K_UID); a longer one fails only at the
/// session, so `check` says so first.
const MAX_PASSWORD: usize = 20;

fn build_bmc(ctx: &mut Ctx, node: Option<&str>, raw: Lenient<RawBmc>) -> Option<Bmc> {
    let missing = "is required: host, username and a password source";
    let raw = ctx.section(node, "bmc", raw, missing)?;
    let host = ctx.required(node, "bmc.host", raw.host);
    if let Some(h) = &host
        && let Err(why) = super::host::check_host(h)
    {
        ctx.error(node, "bmc.host", why);
    }
    let protocol = match ctx.take(node, "bmc.protocol", raw.protocol).as_deref() {
        None | Some("ipmi") => BmcProtocol::Ipmi,
        Some("redfish") => BmcProtocol::Redfish,
        Some(other) => {
            let msg = format!("{other:?} is not supported; use \"ipmi\" or \"redfish\"");
            ctx.error(node, "bmc.protocol", msg);
            BmcProtocol::Ipmi
        }
    };
    let ipmi = protocol == BmcProtocol::Ipmi;
    let port = ctx
        .take(node, "bmc.port", raw.port)
        .unwrap_or(protocol.default_port());
    if port == 0 {
        ctx.error(node, "bmc.port", "0 is not a port");
    }
    let username = ctx.required(node, "bmc.username", raw.username);
    // RAKP 1 carries the name's length in one byte, and IPMI caps it at 16.
    if let Some(u) = &username
        && ipmi
        && u.len() > MAX_USERNAME
    {
        let msg = format!(
            "is {} bytes long; IPMI allows at most {MAX_USERNAME}",
            u.len()
        );
        ctx.error(node, "bmc.username", msg);
    }

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
            match ctx.env.var(&var).map(str::to_owned) {
                None => {
                    let msg = format!("environment variable {var} is not set (or empty)");
                    ctx.error(node, "bmc.password_env", msg);
                }
                Some(secret) => {
                    let what = format!("environment variable {var}");
                    if ipmi {
                        check_password_length(ctx, node, "bmc.password_env", &what, &secret);
                    }
                }
            }
            Some(PasswordSource::Env(var))
        }
        (None, None, Some(raw_path)) => {
            let path = ctx.readable_file(node, "bmc.password_file", &raw_path);
            let source = PasswordSource::File(path.clone());
            // Unreadable files were reported by readable_file above.
            if ctx.in_scope
                && let Ok(secret) = source.read()
            {
                warn_if_shared(ctx, node, &path);
                if ipmi {
                    let what = "the password file";
                    check_password_length(ctx, node, "bmc.password_file", what, &secret);
                }
            }
            Some(source)
        }
        (Some(secret), None, None) => {
            let msg =
                "a literal password is stored in lab.toml; prefer password_env or password_file";
            ctx.warn(node, "bmc.password", msg);
            if ipmi {
                check_password_length(ctx, node, "bmc.password", "the password", &secret);
            }
            Some(PasswordSource::Literal(secret))
        }
        _ => {
            let msg = "is required: give password_env or password_file";
            ctx.error(node, "bmc.password_env", msg);
            None
        }
    };

    let cipher_given = matches!(raw.cipher_suite, Lenient::Value(_));
    if cipher_given && !ipmi {
        ctx.warn(
            node,
            "bmc.cipher_suite",
            "is for IPMI; a Redfish BMC ignores it",
        );
    }
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

    let rest = super::interfaces::RawInterfaces {
        console: raw.console,
        ssh_port: raw.ssh_port,
        ssh_key: raw.ssh_key,
        ca_file: raw.ca_file,
        fingerprint: raw.fingerprint,
        insecure: raw.insecure,
        system_id: raw.system_id,
    };
    let interfaces = super::interfaces::build(ctx, node, protocol, rest);
    Some(Bmc {
        host: host?,
        port,
        username: username?,
        password: password?,
        cipher_suite,
        protocol,
        console: interfaces.console,
        ssh_port: interfaces.ssh_port,
        ssh_key: interfaces.ssh_key,
        tls: interfaces.tls,
        system_id: interfaces.system_id,
    })
}

/// An error when the password is longer than IPMI allows; it says how long,
/// never what it is.
fn check_password_length(ctx: &mut Ctx, node: Option<&str>, key: &str, what: &str, secret: &str) {
    if secret.len() > MAX_PASSWORD {
        let msg = format!(
            "{what} holds {} bytes; IPMI passwords are at most {MAX_PASSWORD}",
            secret.len()
        );
        ctx.error(node, key, msg);
    }
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

fn build_deploy(
    ctx: &mut Ctx,
    node: Option<&str>,
    raw: Lenient<RawDeploy>,
) -> Option<DeployImages> {
    let missing = "is required: deploy.kernel and deploy.ramdisk";
    let raw = ctx.section(node, "deploy", raw, missing)?;
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
    raw: Lenient<RawInstance>,
    boot_option: BootOption,
) -> Option<InstanceImage> {
    let missing = "is required: at least instance.image";
    let raw = ctx.section(node, "instance", raw, missing)?;
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
pub(super) fn find_duplicates(ctx: &mut Ctx, nodes: &[Identity]) -> Vec<bool> {
    let mut clashing = vec![false; nodes.len()];
    let mut clash = |ctx: &mut Ctx, first: usize, later: usize, field: &str, what: String| {
        let msg = format!("{what} is also used by node {}", nodes[first].label);
        ctx.error(Some(&nodes[later].label), field, msg);
        // A command on the first node alone must still say why it is left out.
        let (first_label, later_label) = (&nodes[first].label, &nodes[later].label);
        if !ctx.scope.includes(later_label) && ctx.scope.includes(first_label) {
            let msg = format!("{what} is also used by node {later_label}");
            ctx.error(Some(first_label), field, msg);
        }
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
