//! `check`, `properties`, `render` and the boot interface's steps
//! (`prepare-ramdisk` …): commands on the lab's files, run in process,
//! never through the lab service.

use std::path::Path;
use std::process::ExitCode;

use anyhow::bail;
use petitlab::boot::{BootError, BootInterface, Changes, PetitbootBoot, Stage};
use petitlab::inventory::{self, Node, Problem, Scope};

use super::out::{self, errln, outln};
use crate::{find_node, load_lab_for};

pub fn check(path: &Path, json: bool) -> anyhow::Result<ExitCode> {
    let loaded = inventory::load(path)?;
    let mut problems = loaded.problems;
    match PetitbootBoot::new(&loaded.lab) {
        Ok(boot) => {
            for node in &loaded.lab.nodes {
                problems.extend(boot.validate(node));
            }
        }
        Err(BootError::Template(why)) => {
            problems.push(Problem::error(None, "petitboot.config_template", why))
        }
        Err(e) => return Err(e.into()),
    }
    let errors = problems.iter().filter(|p| p.is_error()).count();
    let lab = &loaded.lab;
    if json {
        let nodes: Vec<_> = lab
            .nodes
            .iter()
            .map(|n| serde_json::json!({"name": n.name, "uuid": n.uuid, "uuid_derived": n.uuid_derived}))
            .collect();
        out::json_pretty(
            &serde_json::json!({"ok": errors == 0, "problems": problems, "nodes": nodes}),
        )?;
    } else {
        for p in &problems {
            outln!("{p}");
        }
        for n in &lab.nodes {
            if n.uuid_derived {
                outln!(
                    "note: node {}: uuid {} (derived from the name; set uuid to pin it)",
                    n.name,
                    n.uuid
                );
            }
        }
        let warnings = problems.len() - errors;
        let valid = lab.nodes.len();
        if errors == 0 {
            outln!(
                "{}: ok, {valid} node(s), {warnings} warning(s)",
                path.display()
            );
        } else {
            outln!(
                "{}: {errors} error(s), {warnings} warning(s)",
                path.display()
            );
        }
    }
    Ok(if errors == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

pub fn properties(json: bool) -> anyhow::Result<ExitCode> {
    // Properties are static; no inventory is needed to list them.
    let props = petitlab::boot::petitboot::properties();
    if json {
        out::json_pretty(&props)?;
    } else {
        let width = props.iter().map(|p| p.name.len()).max().unwrap_or(0);
        for p in props {
            let req = if p.required { "required" } else { "optional" };
            outln!("{:width$}  {req}  {}", p.name, p.description);
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Load the lab, refusing one with errors; warnings go to stderr.
pub fn render(path: &Path, name: &str, stage: Stage, json: bool) -> anyhow::Result<ExitCode> {
    let lab = load_lab_for(path, &Scope::only(&[name]))?;
    let node = find_node(&lab, name)?;
    let boot = PetitbootBoot::new(&lab)?;
    let rendered = match boot.render(node, stage) {
        Ok(r) => r,
        Err(problems) => {
            for p in problems {
                errln!("{p}");
            }
            bail!(
                "node {name}: the {} config cannot be rendered",
                stage.name()
            );
        }
    };
    match (rendered, json) {
        (Some(r), true) => {
            let dhcp_files = boot.dhcp_plan(node);
            out::json_pretty(&serde_json::json!({"rendered": r, "dhcp_files": dhcp_files}))?;
        }
        (Some(r), false) => out::text(&r.config),
        (None, true) => out::json_pretty(
            &serde_json::json!({"node": name, "stage": stage, "local_boot": true}),
        )?,
        (None, false) => errln!(
            "node {name} boots its local disk: no petitboot config is served for its instance"
        ),
    }
    Ok(ExitCode::SUCCESS)
}

pub fn act(
    path: &Path,
    names: &[String],
    all: bool,
    json: bool,
    action: impl Fn(&PetitbootBoot, &Node) -> Result<Changes, BootError>,
) -> anyhow::Result<ExitCode> {
    let (lab, names) = super::route::pick_local(path, names, all)?;
    let nodes = names
        .iter()
        .map(|n| crate::find_node(&lab, n))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let boot = PetitbootBoot::new(&lab)?;
    // Refuse the whole batch before writing anything if any node is invalid.
    let problems: Vec<Problem> = nodes.iter().flat_map(|n| boot.validate(n)).collect();
    if !problems.is_empty() {
        for p in &problems {
            errln!("{p}");
        }
        bail!("{} problem(s): nothing was done", problems.len());
    }
    let mut failed = 0;
    let mut report = Vec::new();
    // One failing node does not stop the others.
    for node in nodes {
        match action(&boot, node) {
            Ok(changes) => {
                if !json {
                    print_changes(&node.name, &changes);
                }
                report.push(serde_json::json!({"node": node.name, "ok": true, "changes": changes}));
            }
            Err(e) => {
                failed += 1;
                errln!("petitlab: {e}");
                report.push(
                    serde_json::json!({"node": node.name, "ok": false, "error": e.to_string()}),
                );
            }
        }
    }
    if json {
        out::json_pretty(&report)?;
    }
    Ok(if failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

fn print_changes(node: &str, changes: &Changes) {
    if changes.is_empty() {
        outln!("{node}: nothing to do");
        return;
    }
    outln!(
        "{node}: {} written, {} removed, {} kept",
        changes.written.len(),
        changes.removed.len(),
        changes.kept.len()
    );
    for p in &changes.written {
        outln!("  + {}", p.display());
    }
    for p in &changes.removed {
        outln!("  - {}", p.display());
    }
    for (p, why) in &changes.kept {
        outln!("  = {} ({why})", p.display());
    }
}
