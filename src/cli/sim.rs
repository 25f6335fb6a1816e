//! `petitlab sim`: run simulated BMCs on 127.0.0.1 until interrupted — the
//! lab's own nodes (from lab.toml) or `--count N` anonymous ones.

use std::process::ExitCode;

use anyhow::{Context, bail};
use petitlab::inventory::{self, Lab};
use petitlab::ipmi::CipherSuite;
use petitlab::sim::{BmcSpec, Sim};

/// Credentials of `--count` BMCs unless overridden: a simulator's, not a secret.
pub const DEFAULT_USER: &str = "admin";
pub const DEFAULT_PASSWORD: &str = "password";

pub struct Options {
    pub count: Option<usize>,
    pub base_port: u16,
    pub user: String,
    /// Environment variable holding the password of `--count` BMCs.
    pub password_env: Option<String>,
}

fn suites(choice: inventory::CipherSuite) -> Vec<CipherSuite> {
    match choice {
        inventory::CipherSuite::Auto => vec![CipherSuite::Suite17, CipherSuite::Suite3],
        inventory::CipherSuite::Suite3 => vec![CipherSuite::Suite3],
        inventory::CipherSuite::Suite17 => vec![CipherSuite::Suite17],
    }
}

/// One simulated BMC per node, on the node's own BMC port; the host must be
/// on loopback because that is where the simulator listens.
fn specs_from_lab(lab: &Lab) -> anyhow::Result<Vec<BmcSpec>> {
    let mut specs = Vec::new();
    for node in &lab.nodes {
        let host = &node.bmc.host;
        let loopback = host == "localhost"
            || host
                .parse::<std::net::IpAddr>()
                .is_ok_and(|ip| ip.is_loopback());
        if !loopback {
            bail!(
                "node {}: bmc.host: {host:?} is not on loopback; the simulator listens on 127.0.0.1 only",
                node.name
            );
        }
        let password = node
            .bmc
            .password
            .read()
            .map_err(|why| anyhow::anyhow!("node {}: bmc.password: {why}", node.name))?;
        let mut spec = BmcSpec::new(&node.name, node.bmc.port, &node.bmc.username, &password);
        spec.cipher_suites = suites(node.bmc.cipher_suite);
        specs.push(spec);
    }
    Ok(specs)
}

fn counted_specs(opts: &Options, count: usize) -> anyhow::Result<Vec<BmcSpec>> {
    let password = match &opts.password_env {
        Some(var) => std::env::var(var)
            .with_context(|| format!("--password-env: environment variable {var} is not set"))?,
        None => DEFAULT_PASSWORD.to_string(),
    };
    let last = opts.base_port as usize + count.saturating_sub(1);
    if count == 0 || last > u16::MAX as usize {
        bail!(
            "--count {count} from --base-port {} does not fit in the port range",
            opts.base_port
        );
    }
    Ok((0..count)
        .map(|i| {
            let port = opts.base_port + i as u16;
            BmcSpec::new(&format!("bmc{i}"), port, &opts.user, &password)
        })
        .collect())
}

pub async fn run(lab: Option<&Lab>, opts: Options) -> anyhow::Result<ExitCode> {
    let specs = match (opts.count, lab) {
        (Some(count), _) => counted_specs(&opts, count)?,
        (None, Some(lab)) => specs_from_lab(lab)?,
        (None, None) => bail!("give --count N, or a lab.toml whose nodes to simulate"),
    };
    let names: Vec<String> = specs.iter().map(|s| s.name.clone()).collect();
    let sim = Sim::start(specs).await.context("starting the simulator")?;
    if opts.count.is_some() {
        let (first, last) = (sim.addr(0), sim.addr(sim.len() - 1));
        println!(
            "petitlab sim: {} BMCs on {}..{} (user {}, cipher suites 17 and 3)",
            sim.len(),
            first,
            last.port(),
            opts.user
        );
    } else {
        for (i, name) in names.iter().enumerate() {
            println!("petitlab sim: {name}: BMC on {}", sim.addr(i));
        }
    }
    println!("petitlab sim: running; Ctrl-C stops");
    super::wait_for_stop().await?;
    sim.shutdown().await;
    println!("petitlab sim: stopped");
    Ok(ExitCode::SUCCESS)
}
