//! `petitlab` without a command: the dashboard on the lab, with its theme,
//! keymap and read-only choice.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use petitlab::engine::lab::Engine;
use petitlab::engine::live::LiveOptions;
use petitlab::inventory::Lab;
use petitlab::tui::backend::Backend;
use petitlab::tui::keymap::Keymap;
use petitlab::tui::run::{TuiOptions, run as run_tui};
use petitlab::tui::theme::Theme;

#[derive(clap::Args, Debug, Clone, Default)]
pub struct DashboardArgs {
    /// Dashboard: refuse every action (look, don't touch).
    #[arg(long)]
    pub read_only: bool,
    /// Dashboard theme: dark, light, high-contrast, or a theme file.
    #[arg(long, value_name = "NAME|PATH")]
    pub theme: Option<String>,
    /// Dashboard key bindings to override (default: $XDG_CONFIG_HOME/petitlab/keymap.toml if present).
    #[arg(long, value_name = "PATH")]
    pub keymap: Option<PathBuf>,
}

fn config_dir() -> Option<PathBuf> {
    std::env::var_os("XDG_CONFIG_HOME")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".config")))
        .map(|d| d.join("petitlab"))
}

pub fn options(args: &DashboardArgs) -> anyhow::Result<TuiOptions> {
    let theme = match &args.theme {
        None => Theme::dark(),
        Some(name) => match Theme::builtin(name) {
            Some(theme) => theme,
            None => {
                let path = config_dir()
                    .map(|d| d.join("themes").join(format!("{name}.toml")))
                    .filter(|p| p.exists())
                    .unwrap_or_else(|| PathBuf::from(name));
                Theme::load(&path)?
            }
        },
    };
    let mut keymap = Keymap::default();
    let path = args.keymap.clone().or_else(|| {
        config_dir()
            .map(|d| d.join("keymap.toml"))
            .filter(|p| p.exists())
    });
    if let Some(path) = path {
        keymap = Keymap::load_override(&path)?;
    }
    Ok(TuiOptions {
        theme,
        keymap,
        read_only: args.read_only,
        live: LiveOptions::default(),
    })
}

/// The dashboard on the lab's service when one runs (and `local` is not
/// set), else on an engine in this process.
pub async fn run(lab: Lab, args: &DashboardArgs, local: bool) -> anyhow::Result<ExitCode> {
    let options = options(args)?;
    let lab = Arc::new(lab);
    if let Some((client, _)) = super::remote::service(&lab, local).await? {
        let (backend, events) = Backend::service(client, lab).await?;
        run_tui(backend, events, options).await?;
        return Ok(ExitCode::SUCCESS);
    }
    // One BMC session per node for the poller, plus consoles: a big lab
    // needs more than a soft limit of 1024 descriptors.
    petitlab::serve::limits::raise_descriptor_limit();
    let (engine, events) = Engine::open(lab)?;
    run_tui(Backend::local(engine), events, options).await?;
    Ok(ExitCode::SUCCESS)
}
