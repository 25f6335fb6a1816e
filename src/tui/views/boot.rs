//! The detail pane's boot view: the node's last boot as the lab diagnosed
//! it — the diagnosis (headline, causes, evidence), the stage bar (one
//! segment per stretch between milestones, as wide as it took), then the
//! newest events. Text from the network (console lines, DHCP notes, paths)
//! is escaped by `fit` and again by the pane's `safe_line`.

use ratatui::text::{Line, Span};

use super::{clock, fit, style};
use crate::timeline::diagnose::Why;
use crate::tui::app::App;
use crate::tui::keymap::UiAction;
use crate::tui::theme::Role;
use crate::tui::timeline::{self, Segment};

/// Events the pane lists: the newest.
const EVENTS_SHOWN: usize = 12;
/// The source column ("console").
const SOURCE_W: usize = 7;

pub fn lines(app: &App, node: &str, width: u16, out: &mut Vec<Line<'static>>) {
    let w = usize::from(width);
    let key = app.keymap.first_key(UiAction::BmcRefresh);
    let entry = app.timelines.get(node);
    let mut title = "Boot".to_string();
    if let Some(Some(Ok(Some(why)))) = entry.map(|e| e.value.as_ref()) {
        title.push_str(&format!(
            " (started {}, {}",
            clock(why.boot.started_at),
            why.boot.origin
        ));
        if entry.is_some_and(|e| e.loading) {
            title.push_str(", reading again…");
        }
        title.push(')');
    }
    title.push_str(&format!("; {key}: read again"));
    out.push(Line::styled(fit(&title, w), style(app, Role::Title)));
    let why = match entry.and_then(|e| e.value.as_ref()) {
        None => {
            out.push(Line::styled("loading…", style(app, Role::Muted)));
            return;
        }
        Some(Err(e)) => {
            out.push(Line::styled(
                fit(&format!("no timeline: {e}"), w),
                style(app, Role::Error),
            ));
            return;
        }
        Some(Ok(None)) => {
            out.push(Line::styled(
                "no boot recorded for this node yet (power it on or deploy it)",
                style(app, Role::Muted),
            ));
            return;
        }
        Some(Ok(Some(why))) => why,
    };
    verdict(app, why, w, out);
    out.push(Line::default());
    bar(app, why, w, out);
    out.push(Line::default());
    events(app, why, w, out);
}

/// Evidence lines shown whole; more are cut to the first and last two.
const EVIDENCE_SHOWN: usize = 4;

fn verdict(app: &App, why: &Why, w: usize, out: &mut Vec<Line<'static>>) {
    let Some(d) = &why.diagnosis else {
        let reached = why.milestones.last();
        let (text, role) = match reached {
            Some((crate::timeline::phases::Milestone::Up, at)) => (
                format!(
                    "booted: up {} after it began",
                    timeline::seconds(at - why.boot.started_at)
                ),
                Role::StateOk,
            ),
            Some((m, _)) => (
                format!("in progress: reached {}", m.as_str()),
                Role::StateBusy,
            ),
            None => ("in progress".to_string(), Role::StateBusy),
        };
        out.push(Line::styled(text, style(app, role)));
        return;
    };
    out.push(Line::styled(
        format!("✗ {}", d.headline()),
        style(app, Role::Error),
    ));
    let row = |key: &str, text: &str, role: Role| {
        Line::from(vec![
            Span::styled(format!("  {key:<6} "), style(app, Role::Muted)),
            Span::styled(fit(text, w.saturating_sub(9)), style(app, role)),
        ])
    };
    // The headline names the first cause; the others follow.
    for cause in d.causes.iter().skip(1) {
        out.push(row("or", cause, Role::Warning));
    }
    // The rule's own lines first and the console's last ones: the stage
    // bar and the events must stay on screen; `petitlab why` has them all.
    let n = d.evidence.len();
    let (head, tail) = if n > EVIDENCE_SHOWN { (2, 2) } else { (n, 0) };
    for evidence in &d.evidence[..head] {
        out.push(row("saw", evidence, Role::Text));
    }
    if tail > 0 {
        let more = format!(
            "… {} more: petitlab why {}",
            n - head - tail,
            crate::text::display_safe(&why.boot.node)
        );
        out.push(row("", &more, Role::Muted));
        for evidence in &d.evidence[n - tail..] {
            out.push(row("saw", evidence, Role::Text));
        }
    }
    out.push(Line::styled(
        format!("  rule {}", d.rule),
        style(app, Role::Muted),
    ));
}

fn bar(app: &App, why: &Why, w: usize, out: &mut Vec<Line<'static>>) {
    let b = timeline::stage_bar(&why.milestones, timeline::waiting_ms(why, app.now));
    let start = why
        .milestones
        .reached
        .first()
        .map_or("power-on", |(m, _)| m.as_str());
    let rest: String = b
        .unreached
        .iter()
        .map(|m| format!(" · {}", m.as_str()))
        .collect();
    let lead = format!("{start} ");
    let room = w.saturating_sub(lead.chars().count() + rest.chars().count());
    let Some(widths) = timeline::widths(&b.segments, room) else {
        // Too narrow for a bar: the stretches as a list.
        let mut spans = vec![Span::styled(lead, style(app, Role::Text))];
        for s in &b.segments {
            spans.push(Span::styled(
                format!("› {} ", s.label),
                style(app, segment_role(s)),
            ));
        }
        spans.push(Span::styled(rest, style(app, Role::Muted)));
        out.push(Line::from(spans));
        return;
    };
    let pad = " ".repeat(lead.chars().count());
    let mut labels = vec![Span::styled(pad, style(app, Role::Text))];
    let mut bars = vec![Span::styled(lead, style(app, Role::Text))];
    for (s, &sw) in b.segments.iter().zip(&widths) {
        let fill = if s.waiting { "░" } else { "█" };
        labels.push(Span::styled(
            format!("{:<sw$}", s.label),
            style(app, segment_role(s)),
        ));
        bars.push(Span::styled(
            format!("{} ", fill.repeat(sw.saturating_sub(1))),
            style(app, segment_role(s)),
        ));
    }
    labels.push(Span::styled(rest, style(app, Role::Muted)));
    out.push(Line::from(labels));
    out.push(Line::from(bars));
}

fn segment_role(s: &Segment) -> Role {
    if s.waiting {
        Role::Warning
    } else {
        Role::StateOk
    }
}

fn events(app: &App, why: &Why, w: usize, out: &mut Vec<Line<'static>>) {
    let all = why.boot.events.len() + why.boot.dropped as usize;
    let shown = why.boot.events.len().min(EVENTS_SHOWN);
    let title = if shown < all {
        format!("Events (the newest {shown} of {all}, newest first)")
    } else {
        "Events (newest first)".to_string()
    };
    out.push(Line::styled(title, style(app, Role::Title)));
    if shown == 0 {
        out.push(Line::styled("none yet", style(app, Role::Muted)));
        return;
    }
    // Newest first: a short pane still shows where the boot is now.
    let skip = why.boot.events.len() - shown;
    for e in why.boot.events[skip..].iter().rev() {
        let role = match &e.what {
            _ if timeline::failed(e) => Role::Error,
            crate::timeline::What::ConsoleGap { .. } => Role::Warning,
            _ => Role::Text,
        };
        let head = format!("{} {:<SOURCE_W$} ", clock(e.at), e.what.source());
        let room = w.saturating_sub(head.chars().count());
        out.push(Line::from(vec![
            Span::styled(head, style(app, Role::Muted)),
            Span::styled(fit(&timeline::detail(e), room), style(app, role)),
        ]));
    }
}
