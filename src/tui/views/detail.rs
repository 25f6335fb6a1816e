//! The detail pane: the selected node's state, the config it would get now
//! beside what is on disk (a line diff when they differ, template problems
//! inline), its DHCP options, its BMC's recent event-log entries, recent
//! history and its inventory (the BMC's FRU fields, then the lab file's) —
//! never its BMC password.

use ratatui::Frame;
use ratatui::layout::Rect;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Paragraph, Wrap};

use super::{block, clock, detail_focused, fit, safe_line, style};
use crate::inventory::{InstanceImage, Node, PasswordSource};
use crate::tui::app::{App, DetailView, Preview};
use crate::tui::bmc_info::{NodeInfo, SelLine, Slot};
use crate::tui::diff::{self, DiffLine};
use crate::tui::model::{NodeRow, age, stage_label};
use crate::tui::theme::Role;

/// Wider than this (inside the border), the config and the file on disk
/// are shown side by side; narrower, as one unified diff.
const SIDE_BY_SIDE: u16 = 160;
const HISTORY_SHOWN: usize = 12;

pub fn draw(frame: &mut Frame, app: &App, area: Rect) {
    let name = app.selected_name().unwrap_or("no node");
    let title = match app.detail_view {
        DetailView::Bmc => format!(" {name} "),
        DetailView::Boot => format!(" {name} · boot "),
    };
    let outer = block(app, title, detail_focused(app));
    let inner = outer.inner(area);
    frame.render_widget(outer, area);
    if inner.width == 0 || inner.height == 0 {
        return;
    }
    let (Some(row), Some(node)) = (app.selected_row(), app.selected_node()) else {
        frame.render_widget(
            Paragraph::new("no node selected").style(style(app, Role::Muted)),
            inner,
        );
        return;
    };
    let lines = lines(app, row, node, inner.width);
    let paragraph = Paragraph::new(lines)
        .wrap(Wrap { trim: false })
        .scroll((app.detail_scroll, 0));
    frame.render_widget(paragraph, inner);
}

fn heading(app: &App, text: String) -> Line<'static> {
    Line::from(Span::styled(text, style(app, Role::Title)))
}

fn field(app: &App, key: &str, value: String, role: Role) -> Line<'static> {
    Line::from(vec![
        Span::styled(format!("{key:<9}"), style(app, Role::Muted)),
        Span::styled(value, style(app, role)),
    ])
}

/// Rows the pane's text takes at `width` (wrapped), for scroll limits.
pub fn rows(app: &App, width: u16) -> usize {
    let (Some(row), Some(node)) = (app.selected_row(), app.selected_node()) else {
        return 0;
    };
    let w = usize::from(width.max(1));
    lines(app, row, node, width)
        .iter()
        // Word wrap can take a row more than the characters need.
        .map(|l| l.width().div_ceil(w).max(1) + usize::from(l.width() > w))
        .sum()
}

pub fn lines(app: &App, row: &NodeRow, node: &Node, width: u16) -> Vec<Line<'static>> {
    let mut out = Vec::new();
    let bmc = app.bmc_info.get(&row.name);
    status(app, row, &mut out);
    out.push(Line::default());
    if app.detail_view == DetailView::Boot {
        super::boot::lines(app, &row.name, width, &mut out);
        out.push(Line::default());
        history(app, row, &mut out);
        return out.into_iter().map(safe_line).collect();
    }
    config(app, width, &mut out);
    out.push(Line::default());
    events(app, bmc, width, &mut out);
    out.push(Line::default());
    history(app, row, &mut out);
    out.push(Line::default());
    inventory(app, node, bmc, width, &mut out);
    // Reasons, BMC errors, console lines and the audit log come from outside.
    out.into_iter().map(safe_line).collect()
}

fn status(app: &App, row: &NodeRow, out: &mut Vec<Line<'static>>) {
    let mut state = row.state_text();
    if row.state_since > 0 && app.now > 0 {
        state.push_str(&format!(" (for {})", age(app.now - row.state_since)));
    }
    out.push(field(app, "state", state, row.state_role()));
    if let Some(reason) = &row.reason {
        out.push(field(app, "reason", reason.clone(), Role::Error));
    }
    if let Some(p) = &row.progress {
        out.push(field(app, "progress", p.message.clone(), Role::StateBusy));
    }
    let mut power = row.power_word().to_string();
    if let Some(at) = row.reading_at {
        power.push_str(&format!(" (read {} ago)", age(app.now - at)));
    }
    let boot = row.boot_device.as_deref().unwrap_or("not read yet");
    power.push_str(&format!(", boot device {boot}"));
    if let Some(w) = row.watts.back() {
        power.push_str(&format!(", {w} W"));
    }
    let power_role = if row.stale(app.now) {
        Role::Stale
    } else {
        row.power_role()
    };
    out.push(field(app, "power", power, power_role));
    if let Some(e) = &row.reading_error {
        out.push(field(app, "bmc", e.clone(), Role::Error));
    }
    if let Some(stage) = row.stage {
        let line = row.stage_line.as_deref().unwrap_or("").trim();
        let text = format!("{}: {line}", stage_label(stage));
        out.push(field(app, "console", text, row.stage_role()));
    }
    if let Some(headline) = &row.stalled {
        out.push(field(app, "stalled", headline.clone(), Role::Warning));
    }
    if let Some(h) = &row.holder {
        let action = row.holder_action.as_deref().unwrap_or("?");
        out.push(field(
            app,
            "held by",
            format!("{h} ({action})"),
            Role::Warning,
        ));
    }
}

fn config(app: &App, width: u16, out: &mut Vec<Line<'static>>) {
    let stage = app.stage.name();
    let other = match app.stage {
        crate::boot::Stage::Deploy => "instance",
        crate::boot::Stage::Instance => "deploy",
    };
    let key = app.keymap.first_key(crate::tui::keymap::UiAction::Stage);
    out.push(heading(
        app,
        format!("Config: {stage} stage ({key}: {other})"),
    ));
    let current = app
        .preview
        .as_ref()
        .filter(|p| p.stage == app.stage && app.selected_name() == Some(p.node.as_str()));
    let Some(p) = current else {
        out.push(Line::styled("rendering…", style(app, Role::Muted)));
        return;
    };
    preview(app, p, width, out);
}

fn preview(app: &App, p: &Preview, width: u16, out: &mut Vec<Line<'static>>) {
    let rendered = match &p.rendered {
        Err(problems) => {
            out.push(Line::styled(
                format!(
                    "cannot render the {} config ({} problem(s)):",
                    p.stage.name(),
                    problems.len()
                ),
                style(app, Role::Error),
            ));
            for problem in problems {
                let role = if problem.is_error() {
                    Role::Error
                } else {
                    Role::Warning
                };
                out.push(Line::styled(
                    format!("  ✗ {}: {}", problem.field, problem.message),
                    style(app, role),
                ));
            }
            return;
        }
        Ok(None) => {
            out.push(Line::styled(
                format!(
                    "no {} config: petitboot gets a 404 and boots the disk (local boot)",
                    p.stage.name()
                ),
                style(app, Role::Muted),
            ));
            return;
        }
        Ok(Some(r)) => r,
    };
    out.push(field(
        app,
        "file",
        rendered.config_path.display().to_string(),
        Role::Text,
    ));
    out.push(field(app, "url", rendered.config_url.clone(), Role::Text));
    out.push(field(
        app,
        "dhcp 209",
        format!("pxeconffile   {}", rendered.dhcp.conf_file),
        Role::Text,
    ));
    out.push(field(
        app,
        "dhcp 210",
        format!("pxepathprefix {}", rendered.dhcp.path_prefix),
        Role::Text,
    ));
    out.push(field(
        app,
        "fetches",
        rendered.dhcp.config_url(),
        Role::Text,
    ));
    let text = |s: &str| Line::styled(s.to_string(), style(app, Role::Text));
    match &p.on_disk {
        None => {
            out.push(Line::styled(
                "not on disk: would be written by prepare or deploy",
                style(app, Role::Warning),
            ));
            out.extend(rendered.config.lines().map(text));
        }
        Some(disk) if disk == &rendered.config => {
            out.push(Line::styled("on disk: the same", style(app, Role::StateOk)));
            out.extend(rendered.config.lines().map(text));
        }
        Some(disk) => {
            let d = diff::diff_lines(disk, &rendered.config);
            if width >= SIDE_BY_SIDE {
                side_by_side(app, &d, width, out);
            } else {
                out.push(Line::styled(
                    "on disk differs: - on disk, + would be written",
                    style(app, Role::Warning),
                ));
                for line in &d {
                    out.push(match line {
                        DiffLine::Same(l) => Line::styled(format!("  {l}"), style(app, Role::Text)),
                        DiffLine::Removed(l) => {
                            Line::styled(format!("- {l}"), style(app, Role::DiffRemove))
                        }
                        DiffLine::Added(l) => {
                            Line::styled(format!("+ {l}"), style(app, Role::DiffAdd))
                        }
                    });
                }
            }
        }
    }
}

fn side_by_side(app: &App, d: &[DiffLine<'_>], width: u16, out: &mut Vec<Line<'static>>) {
    let half = usize::from(width.saturating_sub(3) / 2);
    let cell = |line: Option<DiffLine<'_>>| -> Span<'static> {
        let (mark, text, role) = match line {
            None => (' ', "", Role::Muted),
            Some(DiffLine::Same(l)) => (' ', l, Role::Text),
            Some(DiffLine::Removed(l)) => ('-', l, Role::DiffRemove),
            Some(DiffLine::Added(l)) => ('+', l, Role::DiffAdd),
        };
        let body = fit(&format!("{mark}{text}"), half);
        Span::styled(format!("{body:<half$}"), style(app, role))
    };
    out.push(Line::from(vec![
        Span::styled(
            format!("{:<half$}", "would be written"),
            style(app, Role::Title),
        ),
        Span::styled(" │ ", style(app, Role::Border)),
        Span::styled("on disk now (differs)", style(app, Role::Warning)),
    ]));
    for (old, new) in diff::side_by_side(d) {
        out.push(Line::from(vec![
            cell(new),
            Span::styled(" │ ", style(app, Role::Border)),
            cell(old),
        ]));
    }
}

fn history(app: &App, row: &NodeRow, out: &mut Vec<Line<'static>>) {
    out.push(heading(app, "History".into()));
    if row.history.is_empty() {
        out.push(Line::styled("nothing yet", style(app, Role::Muted)));
    }
    let skip = row.history.len().saturating_sub(HISTORY_SHOWN);
    for e in row.history.iter().skip(skip).rev() {
        let role = match e.result.as_str() {
            "failed" | "error" | "refused" | "deploy-failed" => Role::Error,
            _ => Role::Text,
        };
        let mut text = format!("{} {} {}", clock(e.at), e.action, e.result);
        if !e.detail.is_empty() {
            text.push_str(&format!(": {}", e.detail));
        }
        if !e.who.is_empty() {
            text.push_str(&format!(" ({})", e.who));
        }
        out.push(Line::styled(text, style(app, role)));
    }
}

/// The BMC's word, one line: "loading…" or why not (`key` names it).
fn not_yet<T>(app: &App, slot: Option<&Slot<T>>, key: &str, width: u16) -> Option<Line<'static>> {
    let room = usize::from(width).saturating_sub(9);
    match slot.and_then(|s| s.value.as_ref()) {
        None => Some(field(app, key, "loading…".into(), Role::Muted)),
        Some(Err(why)) => Some(field(app, key, fit(why, room), Role::Error)),
        Some(Ok(_)) => None,
    }
}

fn events(app: &App, bmc: Option<&NodeInfo>, width: u16, out: &mut Vec<Line<'static>>) {
    let slot = bmc.map(|b| &b.events);
    let key = app
        .keymap
        .first_key(crate::tui::keymap::UiAction::BmcRefresh);
    let mut title = "Events (BMC event log".to_string();
    if let Some(s) = slot.filter(|s| matches!(s.value, Some(Ok(_)))) {
        title.push_str(&format!(", read {} ago", age(app.now - s.at)));
        if s.loading {
            title.push_str(", reading again…");
        }
    }
    title.push_str(&format!("; {key}: read again)"));
    out.push(heading(app, title));
    if let Some(line) = not_yet(app, slot, "bmc", width) {
        out.push(line);
        return;
    }
    let Some(Some(Ok(entries))) = slot.map(|s| s.value.as_ref()) else {
        return;
    };
    if entries.is_empty() {
        out.push(Line::styled(
            "the event log is empty",
            style(app, Role::Muted),
        ));
        return;
    }
    // Columns: as wide as the widest shown (the sensor type at most 24:
    // "Event Logging Disabled" whole).
    let times: Vec<String> = entries.iter().map(event_time).collect();
    let sensors: Vec<String> = entries
        .iter()
        .map(|e| fit(e.sensor_type.as_deref().unwrap_or("-"), 24))
        .collect();
    let tw = times.iter().map(|t| t.chars().count()).max().unwrap_or(0);
    let sw = sensors.iter().map(|t| t.chars().count()).max().unwrap_or(0);
    for ((e, time), sensor) in entries.iter().zip(&times).zip(&sensors) {
        let mut text = format!("{time:<tw$}  {sensor:<sw$}  {}", e.message);
        if let Some(d) = &e.direction {
            text.push_str(&format!(" ({d})"));
        }
        let role = match e.severity.as_deref() {
            Some("Critical") => Role::Error,
            Some("Warning") => Role::Warning,
            _ if e.direction.as_deref() == Some("deasserted") => Role::Muted,
            _ => Role::Text,
        };
        out.push(Line::styled(
            fit(&text, usize::from(width)),
            style(app, role),
        ));
    }
}

/// "2025-11-24 15:58:12" of an RFC 3339 time; the BMC's text otherwise.
fn event_time(e: &SelLine) -> String {
    match (&e.time, e.pre_init_seconds) {
        (Some(t), _) => {
            let b = t.as_bytes();
            if t.len() >= 19 && t.is_char_boundary(19) && b[10] == b'T' {
                format!("{} {}", &t[..10], &t[11..19])
            } else {
                fit(t, 25)
            }
        }
        (None, Some(s)) => format!("pre-init +{s}s"),
        (None, None) => "no time".into(),
    }
}

/// The BMC's FRU fields the pane shows.
const FRU_SHOWN: usize = 7;

fn fru(app: &App, bmc: Option<&NodeInfo>, width: u16, out: &mut Vec<Line<'static>>) {
    let slot = bmc.map(|b| &b.inventory);
    if let Some(line) = not_yet(app, slot, "fru", width) {
        out.push(line);
        return;
    }
    let Some(Some(Ok(fru))) = slot.map(|s| s.value.as_ref()) else {
        return;
    };
    let shown = fru.shown(FRU_SHOWN);
    if shown.is_empty() {
        out.push(field(
            app,
            "fru",
            "the BMC gave no board or product fields".into(),
            Role::Muted,
        ));
    }
    let nw = shown
        .iter()
        .map(|f| fit(&f.name, 24).chars().count())
        .max()
        .unwrap_or(0);
    let room = usize::from(width).saturating_sub(nw + 1);
    for f in shown {
        out.push(Line::from(vec![
            Span::styled(
                format!("{:<nw$} ", fit(&f.name, 24)),
                style(app, Role::Muted),
            ),
            Span::styled(fit(&f.value, room), style(app, Role::Text)),
        ]));
    }
    for p in &fru.problems {
        let room = usize::from(width).saturating_sub(9);
        out.push(field(app, "fru", fit(p, room), Role::Warning));
    }
}

fn inventory(
    app: &App,
    node: &Node,
    bmc: Option<&NodeInfo>,
    width: u16,
    out: &mut Vec<Line<'static>>,
) {
    out.push(heading(app, "Inventory".into()));
    fru(app, bmc, width, out);
    if let Some(g) = &node.group {
        out.push(field(app, "group", g.clone(), Role::Text));
    }
    let uuid = if node.uuid_derived {
        format!("{} (derived from the name)", node.uuid)
    } else {
        node.uuid.to_string()
    };
    out.push(field(app, "uuid", uuid, Role::Text));
    let macs: Vec<String> = node.macs.iter().map(ToString::to_string).collect();
    out.push(field(app, "macs", macs.join(", "), Role::Text));
    if let Some(ip) = node.ipv4 {
        out.push(field(app, "ipv4", ip.to_string(), Role::Text));
    }
    let arch = serde_plain(&node.cpu_arch);
    let boot = serde_plain(&node.boot_option);
    let mut os = format!("{arch}, boot_option {boot}");
    if node.deploy_interface != crate::inventory::DeployInterface::Agent {
        os.push_str(&format!(
            ", deploy_interface {}",
            node.deploy_interface.name()
        ));
    }
    if let Some(c) = &node.console {
        os.push_str(&format!(", console {c}"));
    }
    if node.bootif {
        os.push_str(", bootif");
    }
    if let Some(p) = node.protocol {
        os.push_str(&format!(", protocol {}", p.scheme()));
    }
    out.push(field(app, "node", os, Role::Text));
    if !node.kernel_args.is_empty() {
        out.push(field(app, "args", node.kernel_args.clone(), Role::Text));
    }
    let bmc = &node.bmc;
    let password = match &bmc.password {
        PasswordSource::Env(var) => format!("from ${var}"),
        PasswordSource::File(path) => format!("from {}", path.display()),
        PasswordSource::Literal(_) => "in the lab file (not shown)".into(),
    };
    let cipher = serde_plain(&bmc.cipher_suite);
    out.push(field(
        app,
        "bmc",
        format!(
            "{}@{}:{} cipher {cipher}, password {password}",
            bmc.username, bmc.host, bmc.port
        ),
        Role::Text,
    ));
    out.push(field(
        app,
        "deploy",
        node.deploy.kernel.display().to_string(),
        Role::Text,
    ));
    out.push(field(
        app,
        "",
        node.deploy.ramdisk.display().to_string(),
        Role::Text,
    ));
    match &node.instance {
        InstanceImage::WholeDisk { image } => {
            out.push(field(
                app,
                "instance",
                format!("whole disk {}", image.display()),
                Role::Text,
            ));
        }
        InstanceImage::Partition {
            image,
            kernel,
            ramdisk,
            root_device,
        } => {
            out.push(field(
                app,
                "instance",
                format!("partition {} root={root_device}", image.display()),
                Role::Text,
            ));
            out.push(field(app, "", kernel.display().to_string(), Role::Text));
            out.push(field(app, "", ramdisk.display().to_string(), Role::Text));
        }
    }
}

/// A unit-like enum's serde name ("ppc64le", "local", "17").
fn serde_plain<T: serde::Serialize>(value: &T) -> String {
    match serde_json::to_value(value) {
        Ok(serde_json::Value::String(s)) => s,
        Ok(other) => other.to_string(),
        Err(_) => String::new(),
    }
}
