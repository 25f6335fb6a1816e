//! The dashboard's loop: terminal events, engine events and a one-second
//! tick become `Msg`s for the `App`; its `Effect`s are carried out here
//! (engine commands, previews off the loop, console attachments). The
//! screen is redrawn only when the App says something changed, after
//! draining whatever else is already waiting.

use std::io;
use std::time::Duration;

use crossterm::event::{DisableMouseCapture, EnableMouseCapture, Event, EventStream};
use crossterm::execute;
use futures::StreamExt;
use tokio::sync::mpsc;

use super::app::{App, Effect, Msg};
use super::backend::Backend;
use super::keymap::Keymap;
use super::theme::Theme;
use crate::engine::lab::EngineEvent;
use crate::engine::live::{self, LiveOptions};

pub struct TuiOptions {
    pub theme: Theme,
    pub keymap: Keymap,
    pub read_only: bool,
    pub live: LiveOptions,
}

/// How often the store is read again for what other processes changed
/// (reservations, history).
const REFRESH: Duration = Duration::from_secs(5);

/// Runs the dashboard on this terminal until the user quits.
pub async fn run(
    backend: Backend,
    mut events: mpsc::UnboundedReceiver<EngineEvent>,
    options: TuiOptions,
) -> io::Result<()> {
    let mut terminal = ratatui::init();
    // After ratatui's own hook: panics petitlab survives go to the log only.
    let _panics = crate::panics::DashboardHook::install();
    execute!(io::stdout(), EnableMouseCapture)?;
    let result = run_loop(&mut terminal, backend, &mut events, options).await;
    let _ = execute!(io::stdout(), DisableMouseCapture);
    ratatui::restore();
    result
}

async fn run_loop(
    terminal: &mut ratatui::DefaultTerminal,
    backend: Backend,
    events: &mut mpsc::UnboundedReceiver<EngineEvent>,
    options: TuiOptions,
) -> io::Result<()> {
    let mut app = App::new(
        backend.lab(),
        options.theme,
        options.keymap,
        options.read_only,
    );
    // A lab service polls the BMCs itself; in process, the dashboard does.
    let _live = match &backend {
        Backend::Local { engine, .. } => Some(live::start(engine.clone(), options.live).await),
        Backend::Service { .. } => None,
    };
    let (msgs_tx, mut msgs) = mpsc::unbounded_channel::<Msg>();
    backend.snapshot(&msgs_tx);
    let mut terminal_events = EventStream::new();
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    let mut refresh = tokio::time::interval(REFRESH);
    terminal.draw(|f| app.draw(f))?;
    loop {
        let msg = tokio::select! {
            event = terminal_events.next() => match event {
                Some(Ok(event)) => match terminal_msg(event) {
                    Some(msg) => msg,
                    None => continue,
                },
                Some(Err(e)) => return Err(e),
                None => return Ok(()),
            },
            event = events.recv() => match event {
                Some(event) => Msg::Engine(event),
                // Only a lab service's stream ends: it went away.
                None => return Err(io::Error::other("the lab service closed the connection")),
            },
            Some(msg) = msgs.recv() => msg,
            _ = tick.tick() => Msg::Tick(crate::engine::store::now_ms()),
            _ = refresh.tick() => {
                backend.snapshot(&msgs_tx);
                continue;
            }
        };
        let mut pending = vec![msg];
        // Coalesce: everything already waiting is applied before one redraw.
        while let Ok(event) = events.try_recv() {
            pending.push(Msg::Engine(event));
        }
        while let Ok(msg) = msgs.try_recv() {
            pending.push(msg);
        }
        for msg in pending {
            for effect in app.update(msg) {
                if !carry_out(effect, &backend, &msgs_tx) {
                    return Ok(());
                }
            }
        }
        if app.needs_redraw() {
            terminal.draw(|f| app.draw(f))?;
        }
    }
}

fn terminal_msg(event: Event) -> Option<Msg> {
    match event {
        Event::Key(key) => Some(Msg::Key(key)),
        Event::Mouse(mouse) => Some(Msg::Mouse(mouse)),
        Event::Resize(w, h) => Some(Msg::Resize(w, h)),
        _ => None,
    }
}

/// False when the App asked to quit.
fn carry_out(effect: Effect, backend: &Backend, msgs: &mpsc::UnboundedSender<Msg>) -> bool {
    match effect {
        Effect::Quit => return false,
        Effect::Engine(command) => backend.send(command),
        Effect::Preview { node, stage } => backend.preview(node, stage, msgs),
        Effect::WatchConsole { node, on } => backend.watch_console(node, on),
        Effect::ConsoleInput { node, bytes } => backend.console_input(node, bytes),
        Effect::ConsoleBreak { node } => backend.console_break(node),
    }
    true
}
