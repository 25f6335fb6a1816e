//! Subcommands that need more than a few lines each.

pub mod bmc;
pub mod console;
pub mod console_remote;
pub mod dashboard;
pub mod demo;
pub mod files;
pub mod lifecycle;
pub mod out;
pub mod remote;
pub mod route;
pub mod serve;
pub mod service;
pub mod shell;
pub mod sim;
pub mod toolbox;
pub mod why;

/// Until Ctrl-C or SIGTERM (a service manager's stop).
pub async fn wait_for_stop() -> anyhow::Result<()> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate())?;
    tokio::select! {
        r = tokio::signal::ctrl_c() => r?,
        _ = term.recv() => {}
    }
    Ok(())
}

/// Until Ctrl-C, SIGTERM or SIGHUP (the terminal went away).
pub async fn wait_for_stop_or_hangup() -> anyhow::Result<()> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut hangup = signal(SignalKind::hangup())?;
    tokio::select! {
        r = wait_for_stop() => r,
        _ = hangup.recv() => Ok(()),
    }
}
