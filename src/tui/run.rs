//! The dashboard's loop: terminal events, engine events and a one-second
//! tick become `Msg`s for the `App`; its `Effect`s are carried out here
//! (engine commands, previews off the loop, console attachments). The
//! screen is redrawn only when the App says something changed, after
//! draining whatever else is already waiting, and at most once per frame
//! slot ([`FramePacer`]).

use std::io;
use std::time::{Duration, Instant};

use crossterm::event::{DisableMouseCapture, EnableMouseCapture, Event, EventStream};
use crossterm::execute;
use futures::StreamExt;
use tokio::sync::mpsc;

use super::app::{App, Effect, Msg};
use super::backend::Backend;
use super::keymap::Keymap;
use super::pacer::{FRAME, FramePacer};
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
    let mut pacer = FramePacer::new(FRAME);
    // A frame owed, and when its slot comes.
    let mut draw_at: Option<Instant> = None;
    let mut frames = FrameCount::default();
    terminal.draw(|f| app.draw(f))?;
    pacer.drawn(Instant::now());
    loop {
        let msg = tokio::select! {
            _ = tokio::time::sleep_until(draw_at.unwrap_or_else(Instant::now).into()), if draw_at.is_some() => {
                draw_at = None;
                if app.needs_redraw() {
                    terminal.draw(|f| app.draw(f))?;
                    pacer.drawn(Instant::now());
                    frames.count();
                }
                continue;
            }
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
        if app.needs_redraw() && draw_at.is_none() {
            let now = Instant::now();
            match pacer.due(now) {
                due if due <= now => {
                    terminal.draw(|f| app.draw(f))?;
                    pacer.drawn(now);
                    frames.count();
                }
                due => draw_at = Some(due),
            }
        }
    }
}

/// Frames drawn, logged every ten seconds (at debug level: `-vv` or
/// `RUST_LOG=petitlab::tui=debug`), so a frame rate can be measured on
/// the real binary.
#[derive(Default)]
struct FrameCount {
    frames: u64,
    since: Option<Instant>,
}

impl FrameCount {
    fn count(&mut self) {
        self.frames += 1;
        let since = *self.since.get_or_insert_with(Instant::now);
        let elapsed = since.elapsed();
        if elapsed >= Duration::from_secs(10) {
            tracing::debug!(
                frames = self.frames,
                seconds = elapsed.as_secs_f64(),
                "dashboard frames drawn"
            );
            self.frames = 0;
            self.since = Some(Instant::now());
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
        Effect::FetchBmc { node, what } => backend.bmc_info(node, what, msgs),
        Effect::FetchTimeline { node } => backend.timeline(node, msgs),
        Effect::FetchStages => backend.stage_stats(msgs),
    }
    true
}
