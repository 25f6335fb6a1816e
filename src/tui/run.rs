//! The dashboard's loop: terminal events, engine events and a one-second
//! tick become `Msg`s for the `App`; its `Effect`s are carried out here
//! (engine commands, previews off the loop, console attachments). The
//! screen is redrawn only when the App says something changed, after
//! draining whatever else is already waiting.

use std::io;
use std::sync::Arc;
use std::time::Duration;

use crossterm::event::{DisableMouseCapture, EnableMouseCapture, Event, EventStream};
use crossterm::execute;
use futures::StreamExt;
use tokio::sync::mpsc;

use super::app::{App, Effect, Msg, Preview};
use super::keymap::Keymap;
use super::theme::Theme;
use crate::engine::lab::{Engine, EngineEvent, LabHandle};
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
    engine: Arc<Engine>,
    mut events: mpsc::UnboundedReceiver<EngineEvent>,
    options: TuiOptions,
) -> io::Result<()> {
    let mut terminal = ratatui::init();
    // After ratatui's own hook: panics petitlab survives go to the log only.
    let _panics = crate::panics::DashboardHook::install();
    execute!(io::stdout(), EnableMouseCapture)?;
    let result = run_loop(&mut terminal, engine, &mut events, options).await;
    let _ = execute!(io::stdout(), DisableMouseCapture);
    ratatui::restore();
    result
}

async fn run_loop(
    terminal: &mut ratatui::DefaultTerminal,
    engine: Arc<Engine>,
    events: &mut mpsc::UnboundedReceiver<EngineEvent>,
    options: TuiOptions,
) -> io::Result<()> {
    let mut app = App::new(
        &engine.lab,
        options.theme,
        options.keymap,
        options.read_only,
    );
    let handle = LabHandle::new(engine.clone());
    let _live = live::start(engine.clone(), options.live).await;
    let (msgs_tx, mut msgs) = mpsc::unbounded_channel::<Msg>();
    spawn_snapshot(&engine, &msgs_tx);
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
            Some(event) = events.recv() => Msg::Engine(event),
            Some(msg) = msgs.recv() => msg,
            _ = tick.tick() => Msg::Tick(crate::engine::store::now_ms()),
            _ = refresh.tick() => {
                spawn_snapshot(&engine, &msgs_tx);
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
                if !carry_out(effect, &engine, &handle, &msgs_tx) {
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

/// Reads the store off the loop and sends it back as a Snapshot.
fn spawn_snapshot(engine: &Arc<Engine>, msgs: &mpsc::UnboundedSender<Msg>) {
    let (engine, msgs) = (engine.clone(), msgs.clone());
    tokio::task::spawn_blocking(move || {
        let store = engine.store();
        let (Ok(records), Ok(reservations), Ok(history)) = (
            store.nodes(),
            store.reservations(),
            store.last_events(None, 500),
        ) else {
            return;
        };
        let _ = msgs.send(Msg::Snapshot {
            records,
            reservations,
            history,
        });
    });
}

/// False when the App asked to quit.
fn carry_out(
    effect: Effect,
    engine: &Arc<Engine>,
    handle: &LabHandle,
    msgs: &mpsc::UnboundedSender<Msg>,
) -> bool {
    match effect {
        Effect::Quit => return false,
        Effect::Engine(command) => handle.send(command),
        Effect::Preview { node, stage } => {
            let (engine, msgs) = (engine.clone(), msgs.clone());
            tokio::task::spawn_blocking(move || {
                let Some(n) = engine.node(&node) else { return };
                let rendered = engine.boot.render(n, stage);
                let on_disk = match &rendered {
                    Ok(Some(r)) => std::fs::read_to_string(&r.config_path).ok(),
                    _ => None,
                };
                let _ = msgs.send(Msg::Preview(Preview {
                    node,
                    stage,
                    rendered,
                    on_disk,
                }));
            });
        }
        Effect::WatchConsole { node, on } => {
            let engine = engine.clone();
            tokio::spawn(async move {
                if let Some(n) = engine.node(&node).cloned()
                    && let Err(why) = engine.consoles.watch_ui(&n, on).await
                {
                    engine.emit(EngineEvent::ConsoleStatus {
                        node,
                        connected: false,
                        message: Some(why),
                    });
                }
            });
        }
        Effect::ConsoleInput { node, bytes } => engine.consoles.send(&node, bytes),
        Effect::ConsoleBreak { node } => engine.consoles.send_break(&node),
    }
    true
}
