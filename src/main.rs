//! The `petitlab` command line.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, bail};
use clap::{CommandFactory, Parser, Subcommand};
use clap_complete::engine::ArgValueCompleter;
use petitlab::boot::{BootInterface, Stage};
use petitlab::engine::lab::Action;
use petitlab::inventory::{self, Lab, Node, Scope};

mod cli;

use cli::out::errln;
use cli::route::{Load, Route, pick, route};
use petitlab::engine::bmc_ops::Toolbox;

#[derive(Parser)]
#[command(
    name = "petitlab",
    version,
    about = "Lab manager for OpenPOWER servers that netboot through petitboot"
)]
struct Cli {
    /// The lab inventory [default: ./lab.toml if it exists, else
    /// $PETITLAB_LAB, else /etc/petitlab/lab.toml if it exists].
    #[arg(long, global = true, value_name = "PATH")]
    lab: Option<PathBuf>,
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
    /// Power status or control: `power RANGE… status|on|off|cycle|reset|soft`.
    Power(VerbArgs),
    /// Set the boot device override: `bootdev RANGE… pxe|disk|none [--persistent]`.
    Bootdev {
        #[command(flatten)]
        args: VerbArgs,
        /// Keep the override for every boot, not just the next one.
        #[arg(long)]
        persistent: bool,
    },
    /// Read nodes' sensors (SDR or Redfish) and DCMI power readings, as one table.
    Sensors(Nodes),
    /// The BMCs' event logs (IPMI SEL or Redfish log), decoded; --clear empties them.
    Events {
        #[command(flatten)]
        nodes: Nodes,
        /// Clear the event log after reading it (what it held is printed first).
        #[arg(long)]
        clear: bool,
    },
    /// Hardware inventory from the BMCs: FRU board, product and chassis
    /// (manufacturer, part and serial numbers), or Redfish's.
    Inventory(Nodes),
    /// Firmware revisions: the BMC's own and what it reports of the host's.
    Firmware(Nodes),
    /// Turn the chassis identify light on or off: `identify RANGE… on|off`.
    Identify(VerbArgs),
    /// Cold-reset the nodes' BMCs (the hosts keep running); asks first on a
    /// terminal.
    BmcReset {
        #[command(flatten)]
        nodes: Nodes,
        /// Do not ask (scripts).
        #[arg(long, short = 'y')]
        yes: bool,
    },
    /// Why a node did not boot: its last boot's timeline (BMC, DHCP from
    /// dnsmasq's log, HTTP/TFTP fetches, console stages, agent calls) and
    /// where it stopped, with the likely causes.
    Why {
        /// The node.
        #[arg(value_name = "NODE", add = ArgValueCompleter::new(cli::shell::complete_nodes))]
        node: String,
    },
    /// The node's serial console over IPMI SOL (~. quits, ~B break, ~? help);
    /// through the lab service when one runs (--read-only watches only).
    Console {
        #[arg(add = ArgValueCompleter::new(cli::shell::complete_nodes))]
        node: String,
        /// Through the service: watch only, never take the write lock.
        #[arg(long)]
        read_only: bool,
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
    Deploy(Nodes),
    /// Power nodes off and remove everything their deploy wrote.
    Undeploy(Nodes),
    /// Stop nodes' deploys (the process running them stops at its next check).
    Abort(Nodes),
    /// Provisioning state, step, reservation and failure reason of nodes
    /// (all without a range).
    Status {
        #[arg(value_name = "RANGE", add = ArgValueCompleter::new(cli::shell::complete_nodes))]
        nodes: Vec<String>,
    },
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
        #[command(flatten)]
        dashboard: cli::dashboard::DashboardArgs,
        /// Run the lab for the CLI: print its lab.toml path and wait.
        #[arg(long)]
        headless: bool,
        /// Keep the lab in this directory (default: a temp dir removed on exit).
        #[arg(long, value_name = "DIR")]
        dir: Option<PathBuf>,
        /// Inject a fault into a node, as `petitlab sim --fault` does (repeatable).
        /// KIND: agent-silent, wrong-token, iscsi-target-vanishes, no-dhcp-reply,
        /// no-pxe-options, autoboot-off, kernel-404, kexec-fail, silent-kernel,
        /// bmc-silent or redfish-keeps-once.
        #[arg(long = "fault", value_name = "NODE=KIND")]
        faults: Vec<String>,
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
    /// Print the shell code that completes petitlab's commands and the lab's
    /// node names: `source <(petitlab completions bash)`.
    Completions {
        /// bash, zsh, fish, elvish or powershell.
        shell: String,
    },
    /// Write petitlab's man pages (petitlab.1, petitlab-COMMAND.1) into DIR,
    /// e.g. /usr/local/share/man/man1.
    Man {
        #[arg(long, value_name = "DIR")]
        dir: PathBuf,
    },
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
        /// Inject a fault into a node (repeatable). KIND: agent-silent, wrong-token,
        /// iscsi-target-vanishes, no-dhcp-reply, no-pxe-options, autoboot-off,
        /// kernel-404, kexec-fail, silent-kernel, bmc-silent or redfish-keeps-once.
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
    /// Node ranges, then the action.
    #[arg(
        required = true,
        num_args = 1..,
        value_name = "RANGE… ACTION",
        add = ArgValueCompleter::new(cli::shell::complete_nodes)
    )]
    args: Vec<String>,
    /// Every node in the lab (the range `all`).
    #[arg(long)]
    all: bool,
}

#[derive(clap::Args)]
struct Targets {
    /// Node ranges.
    #[arg(
        required_unless_present = "all",
        value_name = "RANGE",
        add = ArgValueCompleter::new(cli::shell::complete_nodes)
    )]
    nodes: Vec<String>,
    /// Every node in the lab (the range `all`).
    #[arg(long, conflicts_with = "nodes")]
    all: bool,
}

/// The nodes a command acts on.
#[derive(clap::Args)]
struct Nodes {
    /// Node ranges: names, p9-rack1-[01-04], group:NAME, state:STATE, all;
    /// `,-TERM` leaves TERM's nodes out (`all,-p8-rack2-01`).
    #[arg(
        required = true,
        value_name = "RANGE",
        add = ArgValueCompleter::new(cli::shell::complete_nodes)
    )]
    nodes: Vec<String>,
}

fn main() -> ExitCode {
    // `COMPLETE=bash petitlab -- WORDS…`: the shell asking for completions.
    clap_complete::CompleteEnv::with_factory(Cli::command).complete();
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
    let lab_path = cli::shell::lab_path(cli.lab.as_deref());
    let Some(command) = cli.command else {
        let lab = load_lab(&lab_path)?;
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
        Command::Check { lab } => cli::files::check(lab.as_deref().unwrap_or(&lab_path), json),
        Command::Completions { shell } => {
            cli::out::outln!("{}", cli::shell::registration(&shell)?);
            Ok(ExitCode::SUCCESS)
        }
        Command::Man { dir } => {
            for page in cli::shell::write_man_pages(Cli::command(), &dir)? {
                cli::out::outln!("{}", page.display());
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Properties => cli::files::properties(json),
        Command::Render { node, stage } => cli::files::render(&lab_path, &node, stage, json),
        Command::PrepareRamdisk(t) => cli::files::act(&lab_path, &t.nodes, t.all, json, |b, n| {
            b.prepare_ramdisk(n)
        }),
        Command::CleanUpRamdisk(t) => cli::files::act(&lab_path, &t.nodes, t.all, json, |b, n| {
            b.clean_up_ramdisk(n)
        }),
        Command::PrepareInstance(t) => cli::files::act(&lab_path, &t.nodes, t.all, json, |b, n| {
            b.prepare_instance(n)
        }),
        Command::CleanUpInstance(t) => cli::files::act(&lab_path, &t.nodes, t.all, json, |b, n| {
            b.clean_up_instance(n)
        }),
        Command::Power(v) => {
            let (words, verb) = cli::bmc::split_verb(&v.args, v.all)?;
            runtime()?.block_on(async {
                let results = match pick(&lab_path, cli.local, &words, v.all, Load::Named).await? {
                    (Route::Service(client, _), names) => {
                        cli::remote::power(&client, names, verb).await?
                    }
                    (Route::Local(lab), names) => {
                        let sent = petitlab::engine::store::now_ms();
                        let results = cli::bmc::power(select_nodes(&lab, &names)?, verb).await;
                        cli::bmc::record_boots(&lab, &results, sent);
                        results
                    }
                };
                cli::bmc::print_results(&results, json)
            })
        }
        Command::Bootdev { args, persistent } => {
            let (words, device) = cli::bmc::split_verb(&args.args, args.all)?;
            runtime()?.block_on(async {
                let results =
                    match pick(&lab_path, cli.local, &words, args.all, Load::Named).await? {
                        (Route::Service(client, _), names) => {
                            cli::remote::bootdev(&client, names, device, persistent).await?
                        }
                        (Route::Local(lab), names) => {
                            cli::bmc::bootdev(select_nodes(&lab, &names)?, device, persistent).await
                        }
                    };
                cli::bmc::print_results(&results, json)
            })
        }
        Command::Sensors(n) => toolbox(&lab_path, cli.local, &n.nodes, Toolbox::Sensors, json),
        Command::Events { nodes, clear } => toolbox(
            &lab_path,
            cli.local,
            &nodes.nodes,
            Toolbox::Events { clear },
            json,
        ),
        Command::Inventory(n) => toolbox(&lab_path, cli.local, &n.nodes, Toolbox::Inventory, json),
        Command::Firmware(n) => toolbox(&lab_path, cli.local, &n.nodes, Toolbox::Firmware, json),
        Command::Identify(v) => {
            let (words, state) = cli::bmc::split_verb::<cli::toolbox::OnOff>(&v.args, v.all)?;
            let words = if v.all { vec!["all".into()] } else { words };
            let on = state == cli::toolbox::OnOff::On;
            toolbox(&lab_path, cli.local, &words, Toolbox::Identify { on }, json)
        }
        Command::BmcReset { nodes, yes } => {
            let op = Toolbox::BmcReset;
            let ask = (!yes).then_some(cli::toolbox::confirm_bmc_reset as Confirm);
            toolbox_asking(&lab_path, cli.local, &nodes.nodes, op, json, ask)
        }
        Command::Why { node } => {
            runtime()?.block_on(cli::why::run(&lab_path, cli.local, &node, json))
        }
        Command::Console {
            node,
            read_only,
            force,
            log,
            timestamps,
            deactivate,
            escape,
        } => runtime()?.block_on(async {
            match (
                route(&lab_path, cli.local, Scope::only(&[&node])).await?,
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
        }),
        Command::Deploy(n) => lifecycle(&lab_path, cli.local, Action::Deploy, n.nodes, json),
        Command::Undeploy(n) => lifecycle(&lab_path, cli.local, Action::Undeploy, n.nodes, json),
        Command::Abort(n) => lifecycle(&lab_path, cli.local, Action::Abort, n.nodes, json),
        Command::Status { nodes } => runtime()?.block_on(async {
            let all = nodes.is_empty();
            match pick(&lab_path, cli.local, &nodes, all, Load::Engine).await? {
                // Without a range: every node, in the service's order.
                (Route::Service(client, _), names) => {
                    let names = if all { Vec::new() } else { names };
                    cli::remote::status(&client, &names, json).await
                }
                (Route::Local(lab), names) => {
                    let names = if all { Vec::new() } else { names };
                    cli::lifecycle::status(&lab, &names, json)
                }
            }
        }),
        Command::History { node, limit } => runtime()?.block_on(async {
            match route(&lab_path, cli.local, Scope::nodes(node.as_slice())).await? {
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
            match route(&lab_path, false, Scope::only::<&str>(&[])).await? {
                Route::Service(client, _) => cli::remote::reload(&client, json).await,
                Route::Local(lab) => anyhow::bail!(
                    "no lab service runs for {} (nothing answers on {}); start one with \
                     `petitlab serve`",
                    lab.path.display(),
                    lab.service.socket.display()
                ),
            }
        }),
        Command::Demo {
            dashboard,
            headless,
            dir,
            faults,
        } => runtime()?.block_on(cli::demo::run(headless, dir, faults, &dashboard)),
        Command::Serve { http, tftp, only } => {
            let lab = load_lab(&lab_path)?;
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
                None => Some(load_lab(&lab_path)?),
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
    words: Vec<String>,
    json: bool,
) -> anyhow::Result<ExitCode> {
    runtime()?.block_on(async {
        match pick(path, local, &words, false, Load::Engine).await? {
            (Route::Service(client, _), names) => {
                cli::remote::lifecycle(&client, action, names, json).await
            }
            (Route::Local(lab), names) => cli::lifecycle::run(*lab, action, names, json).await,
        }
    })
}

/// A BMC toolbox command on every node of a range, at most a bounded
/// number at once, through the service when one runs.
fn toolbox(
    path: &Path,
    local: bool,
    words: &[String],
    op: Toolbox,
    json: bool,
) -> anyhow::Result<ExitCode> {
    toolbox_asking(path, local, words, op, json, None)
}

/// Asks whether to go on with these nodes; an error stops the command.
type Confirm = fn(&[String]) -> anyhow::Result<()>;

fn toolbox_asking(
    path: &Path,
    local: bool,
    words: &[String],
    op: Toolbox,
    json: bool,
    confirm: Option<Confirm>,
) -> anyhow::Result<ExitCode> {
    runtime()?.block_on(async {
        let (route, names) = pick(path, local, words, false, Load::Named).await?;
        if let Some(confirm) = confirm {
            confirm(&names)?;
        }
        let results = match (route, names) {
            (Route::Service(client, _), names) => cli::remote::toolbox(&client, names, op).await?,
            (Route::Local(lab), names) => cli::bmc::toolbox(select_nodes(&lab, &names)?, op).await,
        };
        cli::toolbox::print(op, &results, json)
    })
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?)
}

pub(crate) fn select_nodes<'a>(lab: &'a Lab, names: &[String]) -> anyhow::Result<Vec<&'a Node>> {
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

pub(crate) fn valid_lab(loaded: inventory::Loaded) -> anyhow::Result<Lab> {
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
