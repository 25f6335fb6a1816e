//! `petitlab console NODE` through the lab service: the service holds the
//! node's one console session (SOL, SSH or websocket); any number of
//! clients watch it, one writes (`--force` takes the write lock,
//! `--read-only` never asks for it), and
//! `~.` leaves without disturbing the others. `--log` reads the service's
//! log of the console.

use std::process::ExitCode;

use anyhow::Context;
use petitlab::console::escape::EscapeChar;
use petitlab::console::{Action, EscapeMachine};
use petitlab::engine::lab::EngineEvent;
use petitlab::service::Client;
use petitlab::service::protocol::{decode_bytes, encode_bytes};
use petitlab::text::display_safe;
use serde_json::{Value, json};

use super::console::{RawTerminal, say, stdin_chunks};
use super::out;

pub async fn attach(
    client: &Client,
    node: &str,
    force: bool,
    read_only: bool,
    escape_char: EscapeChar,
) -> anyhow::Result<ExitCode> {
    let mut notes = client.notifications().context("notifications taken")?;
    let mode = match (force, read_only) {
        (true, _) => "force",
        (_, true) => "read-only",
        _ => "auto",
    };
    let attached = client
        .call("console.attach", json!({"node": node, "mode": mode}))
        .await?;
    let mut writing = attached["you"].as_bool() == Some(true);
    let _raw = RawTerminal::enable();
    let role = match (writing, attached["writer"].as_str()) {
        (true, _) => "you have the write lock".to_string(),
        (false, Some(who)) if !read_only => format!(
            "read-only: {} has the write lock (--force takes it)",
            display_safe(who)
        ),
        _ => "read-only".to_string(),
    };
    say(&format!(
        "console of {node} from the lab service; {role}; {}",
        escape_char.reminder("leaves")
    ));
    let mut escape = EscapeMachine::with_escape(escape_char);
    let mut keys = stdin_chunks();
    let mut told_read_only = false;
    let mut input_open = true;
    loop {
        tokio::select! {
            note = notes.recv() => {
                let Some((method, params)) = note else {
                    say("the lab service closed the connection");
                    return Ok(ExitCode::FAILURE);
                };
                if params["node"].as_str() != Some(node) {
                    continue;
                }
                match method.as_str() {
                    "console" => {
                        let bytes = decode_bytes(params["data"].as_str().unwrap_or_default())
                            .unwrap_or_default();
                        // Nobody left reading it: leave as `~.` does.
                        if !out::raw(&bytes) {
                            return leave(client, node).await;
                        }
                    }
                    "console.writer" => {
                        let was = writing;
                        writing = params["you"].as_bool() == Some(true);
                        if params["taken_from_you"].as_bool() == Some(true) {
                            let who = params["writer"].as_str().unwrap_or("someone");
                            say(&format!("{} took the write lock: read-only now", display_safe(who)));
                        } else if writing && !was {
                            say("you have the write lock");
                        }
                    }
                    "event" => {
                        if let Ok(EngineEvent::ConsoleStatus { connected, message, .. }) =
                            serde_json::from_value::<EngineEvent>(params)
                        {
                            match (connected, message) {
                                (true, _) => say("console connected"),
                                (false, Some(m)) => say(&format!("console: {}", display_safe(&m))),
                                (false, None) => say("console disconnected"),
                            }
                        }
                    }
                    _ => {}
                }
            }
            typed = keys.recv(), if input_open => {
                // End of input (a pipe closed) leaves like `~.`; a
                // spectator goes on watching (`console --read-only < /dev/null`).
                let actions = match typed {
                    Some(bytes) => escape.feed(&bytes),
                    None if read_only => {
                        input_open = false;
                        continue;
                    }
                    None => vec![Action::Quit],
                };
                for action in actions {
                    let (method, data) = match action {
                        Action::Send(bytes) => ("console.input", encode_bytes(&bytes)),
                        Action::Break => ("console.break", String::new()),
                        Action::Help => {
                            say(escape.help_text().trim_end());
                            continue;
                        }
                        Action::Quit => return leave(client, node).await,
                    };
                    if read_only {
                        if !told_read_only {
                            say("read-only: what you type is not sent");
                            told_read_only = true;
                        }
                        continue;
                    }
                    if let Err(e) = client.call(method, json!({"node": node, "data": data})).await
                        && !told_read_only
                    {
                        say(&display_safe(&e.to_string()));
                        told_read_only = true;
                    }
                }
            }
        }
    }
}

/// `--deactivate` through the lab service: the service frees the SOL
/// payload (a fresh IPMI session) and reconnects the console it holds.
pub async fn deactivate(client: &Client, node: &str) -> anyhow::Result<ExitCode> {
    let done = client
        .call("console.deactivate", json!({"node": node}))
        .await
        .map_err(|e| match e {
            petitlab::service::ClientError::Rpc(rpc)
                if rpc.code == petitlab::service::protocol::code::METHOD_NOT_FOUND =>
            {
                anyhow::anyhow!(
                    "this lab service predates console --deactivate; restart it, or run \
                     `petitlab --local console {node} --deactivate`"
                )
            }
            e => e.into(),
        })?;
    let what = done["message"].as_str().unwrap_or("done");
    out::outln!("{}", display_safe(what));
    Ok(ExitCode::SUCCESS)
}

async fn leave(client: &Client, node: &str) -> anyhow::Result<ExitCode> {
    let _ = client.call("console.detach", json!({"node": node})).await;
    say(&format!(
        "left the console of {node}; it stays connected in the lab service"
    ));
    Ok(ExitCode::SUCCESS)
}

/// The service's log of the console (a cast), as text, followed as it
/// grows, until interrupted.
pub async fn follow_log(client: &Client, node: &str, timestamps: bool) -> anyhow::Result<ExitCode> {
    let mut offset = 0u64;
    let mut announced = false;
    let mut text = petitlab::console::cast::Text::new(timestamps);
    let mut out = String::new();
    // Listening from the start: a Ctrl-C during a call ends it as cleanly
    // as one during the wait.
    let mut interrupt = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::interrupt())?;
    loop {
        let call = client.call("console.log", json!({"node": node, "offset": offset}));
        let chunk: Value = tokio::select! {
            chunk = call => chunk?,
            _ = interrupt.recv() => return Ok(ExitCode::SUCCESS),
        };
        if let Some(e) = chunk["error"].as_str() {
            anyhow::bail!("node {node}: console log: {e}");
        }
        if chunk["exists"].as_bool() == Some(false) && !announced {
            out::errln!("petitlab: node {node}: no console log yet; waiting");
            announced = true;
        }
        let bytes = decode_bytes(chunk["data"].as_str().unwrap_or_default())
            .map_err(|e| anyhow::anyhow!(e.message))?;
        if chunk["rotated"].as_bool() == Some(true) {
            text.end_of_file(&mut out);
        }
        text.feed(&bytes, &mut out);
        // A reader gone (`| head`) ends it.
        if !out.is_empty() && !out::raw(out.as_bytes()) {
            return Ok(ExitCode::SUCCESS);
        }
        out.clear();
        let more = chunk["offset"].as_u64().unwrap_or(0);
        let full_chunk = more.saturating_sub(offset) >= 1 << 20;
        offset = more;
        if full_chunk {
            continue;
        }
        tokio::select! {
            _ = tokio::time::sleep(std::time::Duration::from_millis(200)) => {}
            _ = interrupt.recv() => return Ok(ExitCode::SUCCESS),
        }
    }
}
