//! The `petitlab` command line.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, bail};
use clap::{Parser, Subcommand};
use petitlab::boot::{BootInterface, Stage};
use petitlab::engine::lab::Action;
use petitlab::inventory::{self, Lab, Node, Scope};

mod cli;

use cli::out::errln;

#[derive(Parser)]
#[command(
    name = "petitlab",
    version,
    about = "Lab manager for OpenPOWER servers that netboot through petitboot"
)]
struct Cli {
    /// The lab inventory.
    #[arg(long, global = true, default_value = "lab.toml", value_name = "PATH")]
    lab: PathBuf,
    /// Machine-readable output.
    #[arg(long, global = true)]
    json: bool,
    /// More log detail (-v info, -vv debug, -vvv trace); RUST_LOG overrides.
    /// Logs go to stderr, or while the dashboard runs to a file in the
    /// state dir (petitlab.log).
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    verbose: u8,
    /// Work in this process even when a lab service runs for the lab
    /// (by default commands go through its socket).
    #[arg(long, global = true)]
    local: bool,
    #[command(flatten)]
    dashboard: cli::dashboard::DashboardArgs,
    /// Without a command: the dashboard on the lab.
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Report every problem in the inventory, each with its node and field.
    Check {
        /// The lab inventory (overrides --lab).
        lab: Option<PathBuf>,
    },
    /// List the node properties the petitboot boot interface reads.
    Properties,
    /// Print a node's petitboot config exactly as it would be written (writes nothing).
    Render {
        node: String,
        #[arg(long, value_enum, default_value = "deploy")]
        stage: Stage,
    },
    /// Stage the deploy kernel/ramdisk, write the deploy config and DHCP options.
    PrepareRamdisk(Targets),
    /// Remove exactly what prepare-ramdisk wrote.
    CleanUpRamdisk(Targets),
    /// Local boot: remove the node's config; netboot: stage and write the instance config.
    PrepareInstance(Targets),
    /// Remove exactly what prepare-instance wrote.
    CleanUpInstance(Targets),
    /// Power status or control over IPMI: `power NODE… status|on|off|cycle|reset|soft`.
    Power(VerbArgs),
    /// Set the boot device override: `bootdev NODE… pxe|disk|none [--persistent]`.
    Bootdev {
        #[command(flatten)]
        args: VerbArgs,
        /// Keep the override for every boot, not just the next one.
        #[arg(long)]
        persistent: bool,
    },
    /// Read a node's sensors (SDR) and DCMI power reading.
    Sensors { node: String },
    /// The node's serial console over IPMI SOL (~. quits, ~B break, ~? help);
    /// through the lab service when one runs (--read-only watches only).
    Console {
        node: String,
        /// Take the console over from another session holding it (through
        /// the service: take the write lock from whoever has it).
        #[arg(long)]
        force: bool,
        /// Follow the node's console log instead of attaching.
        #[arg(long, conflicts_with = "force")]
        log: bool,
        /// With --log: start each line with its UTC time.
        #[arg(long, requires = "log")]
        timestamps: bool,
        /// Free the node's SOL payload (left active by a killed console)
        /// without attaching, like `ipmitool sol deactivate`.
        #[arg(long, conflicts_with_all = ["log", "force"])]
        deactivate: bool,
        /// The escape character instead of `~` (one printable character),
        /// or `none`: no escapes, only closing the terminal ends the console.
        #[arg(short = 'e', long, value_name = "CHAR", default_value = "~")]
        escape: petitlab::console::escape::EscapeChar,
    },
    /// Deploy nodes: netboot the deploy ramdisk, let its agent write the
    /// image, boot the instance; resumes a deploy left waiting on its node.
    Deploy {
        #[arg(required = true)]
        nodes: Vec<String>,
    },
    /// Power nodes off and remove everything their deploy wrote.
    Undeploy {
        #[arg(required = true)]
        nodes: Vec<String>,
    },
    /// Stop nodes' deploys (the process running them stops at its next check).
    Abort {
        #[arg(required = true)]
        nodes: Vec<String>,
    },
    /// Provisioning state, step, reservation and failure reason of nodes.
    Status { nodes: Vec<String> },
    /// The audit log: who did what to which node, when, and how it went.
    History {
        node: Option<String>,
        /// Show at most this many of the newest events.
        #[arg(long, default_value_t = 50)]
        limit: usize,
    },
    /// The built-in virtual lab (lab.toml.example on loopback, simulated nodes
    /// that really netboot), in this process; `--headless` drives it from the CLI.
    Demo {
        /// Run the lab for the CLI: print its lab.toml path and wait.
        #[arg(long)]
        headless: bool,
        /// Keep the lab in this directory (default: a temp dir removed on exit).
        #[arg(long, value_name = "DIR")]
        dir: Option<PathBuf>,
    },
    /// Run the lab service: the engine, the poller, every console
    /// (connected and logged all the time), HTTP, TFTP and the agent API,
    /// with a socket the CLI and dashboards attach to. `--only http|tftp`
    /// serves just the files nodes boot from.
    Serve {
        /// Listen here for HTTP instead of [http] listen.
        #[arg(long, value_name = "ADDR")]
        http: Option<std::net::SocketAddr>,
        /// Listen here for TFTP instead of [tftp] listen.
        #[arg(long, value_name = "ADDR")]
        tftp: Option<std::net::SocketAddr>,
        /// Only serve files: HTTP, TFTP, or both (`files`), without the
        /// lab service.
        #[arg(long, value_enum)]
        only: Option<cli::serve::Only>,
    },
    /// Make the lab service re-read lab.toml (as SIGHUP does): added nodes'
    /// consoles connect, removed ones close, the others keep their sessions.
    Reload,
    /// Run simulated BMCs on 127.0.0.1: the lab's nodes, or --count of them.
    Sim {
        /// Simulate N anonymous BMCs instead of the lab's nodes.
        #[arg(long, value_name = "N")]
        count: Option<usize>,
        /// First UDP port for --count BMCs.
        #[arg(long, default_value_t = 16230, value_name = "PORT")]
        base_port: u16,
        /// User name of --count BMCs.
        #[arg(long, default_value = cli::sim::DEFAULT_USER)]
        user: String,
        /// Environment variable with the password of --count BMCs
        /// (default: the simulator's password, "password").
        #[arg(long, value_name = "VAR")]
        password_env: Option<String>,
        /// Directory of the nodes' virtual disks (default: <state_dir>/sim/disks).
        #[arg(long, value_name = "DIR")]
        disks: Option<PathBuf>,
        /// Inject a fault: NODE=agent-silent, NODE=wrong-token, NODE=iscsi-target-vanishes, NODE=bmc-silent or NODE=redfish-keeps-once (repeatable).
        #[arg(long = "fault", value_name = "NODE=KIND")]
        faults: Vec<String>,
        /// Pause after each line a virtual host prints (default: 10).
        #[arg(long, value_name = "N")]
        line_delay_ms: Option<u64>,
        /// The node's host is a QEMU guest: listen on ADDR (loopback, TCP) for
        /// its ipmi-bmc-extern chardev, the guest's in-band BMC (repeatable).
        #[arg(long = "vm-bmc", value_name = "NODE=ADDR")]
        vm_bmc: Vec<String>,
        /// Hosts print `chatter <index> <unix-nanos>` lines, N a second over
        /// all of them, without booting; SIGUSR1 pauses and resumes them.
        #[arg(long, value_name = "N", default_value_t = 0.0)]
        chatter: f64,
    },
}

#[derive(clap::Args)]
struct VerbArgs {
    /// Node names, then the action.
    #[arg(required = true, num_args = 1.., value_name = "NODE… ACTION")]
    args: Vec<String>,
    /// Every node in the lab.
    #[arg(long)]
    all: bool,
}

#[derive(clap::Args)]
struct Targets {
    /// Node names.
    #[arg(required_unless_present = "all")]
    nodes: Vec<String>,
    /// Every node in the lab.
    #[arg(long, conflicts_with = "nodes")]
    all: bool,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(code) => code,
        Err(e) => {
            errln!("petitlab: {}", one_line(&e));
            ExitCode::FAILURE
        }
    }
}

/// The error and its causes on one line, leaving out a cause its error
/// already quotes (most library errors end with their source's words).
fn one_line(e: &anyhow::Error) -> String {
    let mut line = e.to_string();
    for cause in e.chain().skip(1) {
        let cause = cause.to_string();
        if !line.contains(&cause) {
            line.push_str(": ");
            line.push_str(&cause);
        }
    }
    line
}

fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    let json = cli.json;
    let Some(command) = cli.command else {
        let lab = load_lab(&cli.lab)?;
        let log = lab.state_dir.join("petitlab.log");
        petitlab::logging::to_file(&log, cli.verbose)
            .with_context(|| format!("opening the dashboard's log {}", log.display()))?;
        return runtime()?.block_on(cli::dashboard::run(lab, &cli.dashboard, cli.local));
    };
    match &command {
        Command::Demo {
            headless: false, ..
        } => {
            let log = petitlab::logging::xdg_state_dir().join("demo.log");
            petitlab::logging::to_file(&log, cli.verbose)
                .with_context(|| format!("opening the demo's log {}", log.display()))?;
        }
        // The service says what it does (listening, reloads) by default.
        Command::Serve { only: None, .. } => petitlab::logging::to_stderr(cli.verbose.max(1)),
        _ => petitlab::logging::to_stderr(cli.verbose),
    }
    match command {
        Command::Check { lab } => cli::files::check(lab.as_deref().unwrap_or(&cli.lab), json),
        Command::Properties => cli::files::properties(json),
        Command::Render { node, stage } => cli::files::render(&cli.lab, &node, stage, json),
        Command::PrepareRamdisk(t) => {
            cli::files::act(&cli.lab, &t.nodes, t.all, json, |b, n| b.prepare_ramdisk(n))
        }
        Command::CleanUpRamdisk(t) => cli::files::act(&cli.lab, &t.nodes, t.all, json, |b, n| {
            b.clean_up_ramdisk(n)
        }),
        Command::PrepareInstance(t) => cli::files::act(&cli.lab, &t.nodes, t.all, json, |b, n| {
            b.prepare_instance(n)
        }),
        Command::CleanUpInstance(t) => cli::files::act(&cli.lab, &t.nodes, t.all, json, |b, n| {
            b.clean_up_instance(n)
        }),
        Command::Power(v) => {
            let (names, verb) = cli::bmc::split_verb(&v.args, v.all)?;
            runtime()?.block_on(async {
                let results = match route(&cli.lab, cli.local, scope(&names, v.all)).await? {
                    Route::Service(client, all) => {
                        let names = if v.all { all } else { names };
                        cli::remote::power(&client, names, verb).await?
                    }
                    Route::Local(lab) => {
                        let nodes = select_nodes(&lab, &names, v.all)?;
                        cli::bmc::power(nodes, verb).await
                    }
                };
                cli::bmc::print_results(&results, json)
            })
        }
        Command::Bootdev { args, persistent } => {
            let (names, device) = cli::bmc::split_verb(&args.args, args.all)?;
            runtime()?.block_on(async {
                let results = match route(&cli.lab, cli.local, scope(&names, args.all)).await? {
                    Route::Service(client, all) => {
                        let names = if args.all { all } else { names };
                        cli::remote::bootdev(&client, names, device, persistent).await?
                    }
                    Route::Local(lab) => {
                        let nodes = select_nodes(&lab, &names, args.all)?;
                        cli::bmc::bootdev(nodes, device, persistent).await
                    }
                };
                cli::bmc::print_results(&results, json)
            })
        }
        Command::Sensors { node } => runtime()?.block_on(async {
            let report = match route(&cli.lab, cli.local, Scope::only(&[&node])).await? {
                Route::Service(client, _) => cli::remote::sensors(&client, &node).await?,
                Route::Local(lab) => cli::bmc::sensors(find_node(&lab, &node)?).await?,
            };
            cli::bmc::print_sensors(&node, report, json)
        }),
        Command::Console {
            node,
            force,
            log,
            timestamps,
            deactivate,
            escape,
        } => {
            let read_only = cli.dashboard.read_only;
            runtime()?.block_on(async {
                match (
                    route(&cli.lab, cli.local, Scope::only(&[&node])).await?,
                    log,
                ) {
                    (Route::Service(client, _), _) if deactivate => {
                        cli::console_remote::deactivate(&client, &node).await
                    }
                    (Route::Local(lab), _) if deactivate => {
                        cli::console::deactivate(find_node(&lab, &node)?).await
                    }
                    (Route::Service(client, _), true) => {
                        cli::console_remote::follow_log(&client, &node, timestamps).await
                    }
                    (Route::Service(client, _), false) => {
                        cli::console_remote::attach(&client, &node, force, read_only, escape).await
                    }
                    (Route::Local(lab), true) => {
                        cli::console::follow_log(&lab, find_node(&lab, &node)?, timestamps).await
                    }
                    (Route::Local(lab), false) if read_only => anyhow::bail!(
                        "--read-only watches a console the lab service holds, and no service \
                         runs for this lab ({}); `petitlab console --log {node}` follows its log",
                        lab.service.socket.display(),
                    ),
                    (Route::Local(lab), false) => {
                        cli::console::attach(&lab, find_node(&lab, &node)?, force, escape).await
                    }
                }
            })
        }
        Command::Deploy { nodes } => lifecycle(&cli.lab, cli.local, Action::Deploy, nodes, json),
        Command::Undeploy { nodes } => {
            lifecycle(&cli.lab, cli.local, Action::Undeploy, nodes, json)
        }
        Command::Abort { nodes } => lifecycle(&cli.lab, cli.local, Action::Abort, nodes, json),
        Command::Status { nodes } => runtime()?.block_on(async {
            match route(&cli.lab, cli.local, engine_scope(&nodes, nodes.is_empty())).await? {
                Route::Service(client, _) => cli::remote::status(&client, &nodes, json).await,
                Route::Local(lab) => cli::lifecycle::status(&lab, &nodes, json),
            }
        }),
        Command::History { node, limit } => runtime()?.block_on(async {
            match route(&cli.lab, cli.local, Scope::nodes(node.as_slice())).await? {
                Route::Service(client, _) => {
                    cli::remote::history(&client, node.as_deref(), limit, json).await
                }
                Route::Local(lab) => {
                    if let Some(name) = &node {
                        find_node(&lab, name)?;
                    }
                    cli::lifecycle::history(&lab, node.as_deref(), limit, json)
                }
            }
        }),
        Command::Reload => runtime()?.block_on(async {
            match route(&cli.lab, false, Scope::only::<&str>(&[])).await? {
                Route::Service(client, _) => cli::remote::reload(&client, json).await,
                Route::Local(lab) => anyhow::bail!(
                    "no lab service runs for {} (nothing answers on {}); start one with \
                     `petitlab serve`",
                    lab.path.display(),
                    lab.service.socket.display()
                ),
            }
        }),
        Command::Demo { headless, dir } => {
            runtime()?.block_on(cli::demo::run(headless, dir, &cli.dashboard))
        }
        Command::Serve { http, tftp, only } => {
            let lab = load_lab(&cli.lab)?;
            let opts = cli::serve::Options { http, tftp, only };
            match only {
                Some(_) => runtime()?.block_on(cli::serve::run(&lab, opts)),
                None => runtime()?.block_on(cli::service::run(lab, opts)),
            }
        }
        Command::Sim {
            count,
            base_port,
            user,
            password_env,
            disks,
            faults,
            line_delay_ms,
            vm_bmc,
            chatter,
        } => {
            let lab = match count {
                Some(_) => None,
                None => Some(load_lab(&cli.lab)?),
            };
            let opts = cli::sim::Options {
                count,
                base_port,
                user,
                password_env,
                disks,
                faults,
                line_delay_ms,
                vm_bmc,
                chatter,
            };
            runtime()?.block_on(cli::sim::run(lab.as_ref(), opts))
        }
    }
}

fn lifecycle(
    path: &Path,
    local: bool,
    action: Action,
    nodes: Vec<String>,
    json: bool,
) -> anyhow::Result<ExitCode> {
    runtime()?.block_on(async {
        match route(path, local, engine_scope(&nodes, false)).await? {
            Route::Service(client, _) => cli::remote::lifecycle(&client, action, nodes, json).await,
            Route::Local(lab) => {
                for name in &nodes {
                    find_node(&lab, name)?;
                }
                cli::lifecycle::run(*lab, action, nodes, json).await
            }
        }
    })
}

/// Where a command runs.
enum Route {
    /// The lab's service answers: it checks what it is asked (node names
    /// included) against the lab it serves, listed here.
    Service(petitlab::service::Client, Vec<String>),
    /// In this process, on the lab loaded and validated here.
    Local(Box<Lab>),
}

/// The lab's service when one answers (and `local` is not set), else the
/// lab loaded, with the nodes in `scope` validated, for an in-process run.
/// Reaching the service needs only the socket's path: a member of the
/// service's group need not be able to read the lab's secrets.
async fn route(path: &Path, local: bool, scope: Scope) -> anyhow::Result<Route> {
    let loaded = inventory::load_scoped(path, &scope)?;
    if !local {
        let socket = &loaded.lab.service.socket;
        if let Some((client, nodes)) = cli::remote::service_at(socket, path, false).await? {
            return Ok(Route::Service(client, nodes));
        }
    }
    Ok(Route::Local(Box::new(valid_lab(loaded)?)))
}

/// The nodes a command names, or every node.
pub(crate) fn scope(names: &[String], all: bool) -> Scope {
    if all { Scope::All } else { Scope::only(names) }
}

/// For commands that run the engine, which knows every node: all of them
/// are loaded, but only the named ones are checked closely.
fn engine_scope(names: &[String], all: bool) -> Scope {
    if all { Scope::All } else { Scope::nodes(names) }
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?)
}

pub(crate) fn select_nodes<'a>(
    lab: &'a Lab,
    names: &[String],
    all: bool,
) -> anyhow::Result<Vec<&'a Node>> {
    if all {
        return Ok(lab.nodes.iter().collect());
    }
    names.iter().map(|name| find_node(lab, name)).collect()
}

pub(crate) fn load_lab(path: &Path) -> anyhow::Result<Lab> {
    load_lab_for(path, &Scope::All)
}

/// The lab, refusing it if lab-wide settings or the nodes in `scope` have
/// errors (other nodes are not looked at closely: `check` does that).
pub(crate) fn load_lab_for(path: &Path, scope: &Scope) -> anyhow::Result<Lab> {
    valid_lab(inventory::load_scoped(path, scope)?)
}

fn valid_lab(loaded: inventory::Loaded) -> anyhow::Result<Lab> {
    match loaded.into_valid() {
        Ok((lab, warnings)) => {
            for w in warnings {
                errln!("{w}");
            }
            Ok(lab)
        }
        Err(inventory::InventoryError::Invalid { path, problems }) => {
            for p in problems.iter().filter(|p| p.is_error()) {
                errln!("{p}");
            }
            bail!("{} is not valid: nothing was done", path.display())
        }
        Err(e) => Err(e.into()),
    }
}

pub(crate) fn find_node<'a>(lab: &'a Lab, name: &str) -> anyhow::Result<&'a Node> {
    lab.node(name).with_context(|| {
        let known: Vec<&str> = lab.nodes.iter().map(|n| n.name.as_str()).collect();
        format!(
            "no node named {name:?} in {} (nodes: {})",
            lab.path.display(),
            known.join(", ")
        )
    })
}

#[cfg(test)]
mod tests {
    use super::one_line;
    use anyhow::Context;

    #[test]
    fn an_error_line_names_each_cause_once() {
        let io = std::io::Error::new(std::io::ErrorKind::NotFound, "no such file");
        let quoted = anyhow::Error::new(io).context("cannot read lab.toml: no such file");
        assert_eq!(one_line(&quoted), "cannot read lab.toml: no such file");
        let plain: anyhow::Result<()> = Err(anyhow::anyhow!("permission denied"));
        let wrapped = plain.context("creating /srv/petitlab").unwrap_err();
        assert_eq!(
            one_line(&wrapped),
            "creating /srv/petitlab: permission denied"
        );
    }
}
