//! How the toolbox commands (`sensors`, `events`, `inventory`, `firmware`,
//! `identify`, `bmc-reset`) print many nodes' answers: one table or one
//! line per row, each starting with its node, so `grep` and `sort` work.

use std::io::{BufRead, IsTerminal, Write};
use std::process::ExitCode;

use petitlab::engine::bmc_ops::Toolbox;
use serde_json::Value;

use super::bmc::NodeResults;
use super::out::{errln, outln, safe};

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum OnOff {
    On,
    Off,
}

/// `bmc-reset` without `--yes`: asks on a terminal, refuses elsewhere (a
/// script must say it means it).
pub fn confirm_bmc_reset(names: &[String]) -> anyhow::Result<()> {
    let stdin = std::io::stdin();
    if !stdin.is_terminal() {
        anyhow::bail!(
            "bmc-reset resets {} BMC(s) and asks first, but standard input is not a terminal: \
             give --yes to reset without asking",
            names.len()
        );
    }
    let shown = if names.len() > 8 {
        format!("{}, … ({} nodes)", names[..8].join(", "), names.len())
    } else {
        names.join(", ")
    };
    eprint!("Cold-reset the BMC of {shown}? The hosts keep running. [y/N] ");
    let _ = std::io::stderr().flush();
    let mut answer = String::new();
    stdin.lock().read_line(&mut answer)?;
    if !matches!(answer.trim(), "y" | "Y" | "yes") {
        anyhow::bail!("nothing was reset");
    }
    Ok(())
}

/// Every node's answer; fails if any node failed (each failure on stderr).
pub fn print(op: Toolbox, results: &NodeResults, json: bool) -> anyhow::Result<ExitCode> {
    if json {
        super::bmc::print_json(results)?;
    } else {
        let answered: Vec<(&str, &Value)> = results
            .iter()
            .filter_map(|(n, r)| r.as_ref().ok().map(|v| (n.as_str(), v)))
            .collect();
        let rows = match op {
            Toolbox::Sensors => sensor_rows(&answered),
            Toolbox::Events { .. } => event_rows(&answered),
            Toolbox::Inventory => inventory_rows(&answered),
            Toolbox::Firmware => firmware_rows(&answered),
            Toolbox::Identify { .. } | Toolbox::BmcReset => answered
                .iter()
                .map(|(n, v)| vec![n.to_string(), text(&v["summary"])])
                .collect(),
        };
        print_table(&rows);
        for (_, r) in results {
            if let Err(e) = r {
                errln!("petitlab: {}", safe(e));
            }
        }
    }
    Ok(super::bmc::exit_code(results))
}

/// A JSON value as one line of text ("" for null).
fn text(v: &Value) -> String {
    match v {
        Value::Null => String::new(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// Columns padded to their widest cell (the last one is not), every cell
/// escaped: BMCs choose these strings.
fn print_table(rows: &[Vec<String>]) {
    let rows: Vec<Vec<String>> = rows
        .iter()
        .map(|r| r.iter().map(|c| safe(c).into_owned()).collect())
        .collect();
    let columns = rows.iter().map(Vec::len).max().unwrap_or(0);
    let widths: Vec<usize> = (0..columns)
        .map(|i| {
            rows.iter()
                .filter_map(|r| r.get(i))
                .map(|c| c.chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    for row in rows {
        let mut line = String::new();
        for (i, cell) in row.iter().enumerate() {
            if i + 1 == row.len() {
                line.push_str(cell);
            } else {
                line.push_str(&format!("{cell:w$}  ", w = widths[i]));
            }
        }
        outln!("{}", line.trim_end());
    }
}

/// NODE  SENSOR  READING, with the DCMI power reading as one more sensor.
fn sensor_rows(answered: &[(&str, &Value)]) -> Vec<Vec<String>> {
    let mut rows = Vec::new();
    for (node, v) in answered {
        for s in v["sensors"].as_array().into_iter().flatten() {
            let reading = s["reading"].as_str().unwrap_or("unavailable");
            rows.push(vec![
                node.to_string(),
                text(&s["name"]),
                reading.to_string(),
            ]);
        }
        let power = &v["dcmi_power"];
        let reading = match power["current_watts"].as_u64() {
            Some(now) => format!(
                "{now} W now (min {} W, max {} W, avg {} W)",
                power["minimum_watts"], power["maximum_watts"], power["average_watts"]
            ),
            None => "not offered by this BMC".to_string(),
        };
        rows.push(vec![node.to_string(), "DCMI power".into(), reading]);
    }
    rows
}

/// NODE  ID  TIME  SENSOR TYPE  EVENT  DIRECTION, as the BMC keeps them
/// (oldest first); the IDs are `ipmitool sel list`'s.
fn event_rows(answered: &[(&str, &Value)]) -> Vec<Vec<String>> {
    let mut rows = Vec::new();
    for (node, v) in answered {
        let events = v["events"].as_array().cloned().unwrap_or_default();
        if events.is_empty() {
            rows.push(vec![
                node.to_string(),
                String::new(),
                String::new(),
                String::new(),
                "(no events)".into(),
            ]);
        }
        for e in events {
            let time = match (&e["time"], e["pre_init_seconds"].as_u64()) {
                (Value::String(t), _) => t.clone(),
                (_, Some(s)) => format!("pre-init +{s}s"),
                _ => "-".into(),
            };
            let sensor = match (&e["sensor_type"], e["sensor_number"].as_u64()) {
                (Value::String(t), Some(n)) => format!("{t} #0x{n:02x}"),
                (Value::String(t), None) => t.clone(),
                _ => text(&e["severity"]),
            };
            rows.push(vec![
                node.to_string(),
                text(&e["id"]),
                time,
                sensor,
                text(&e["message"]),
                text(&e["direction"]),
            ]);
        }
        if v["cleared"].as_bool() == Some(true) {
            rows.push(vec![
                node.to_string(),
                String::new(),
                String::new(),
                String::new(),
                "(event log cleared)".into(),
            ]);
        }
    }
    rows
}

/// NODE  FIELD  VALUE: the chassis, board and product areas' fields, in
/// the BMC's order, with ipmitool's names.
fn inventory_rows(answered: &[(&str, &Value)]) -> Vec<Vec<String>> {
    let mut rows = Vec::new();
    for (node, v) in answered {
        let inventory = &v["inventory"];
        for area in ["chassis", "board", "product"] {
            for f in inventory[area].as_array().into_iter().flatten() {
                rows.push(vec![node.to_string(), text(&f["name"]), text(&f["value"])]);
            }
        }
        for problem in inventory["problems"].as_array().into_iter().flatten() {
            rows.push(vec![node.to_string(), "Problem".into(), text(problem)]);
        }
    }
    rows
}

/// NODE  WHAT  VERSION.
fn firmware_rows(answered: &[(&str, &Value)]) -> Vec<Vec<String>> {
    let mut rows = Vec::new();
    for (node, v) in answered {
        let f = &v["firmware"];
        let or_not = |v: &Value| match v {
            Value::Null => "not reported".to_string(),
            v => text(v),
        };
        rows.push(vec![
            node.to_string(),
            "BMC firmware".into(),
            or_not(&f["bmc"]),
        ]);
        rows.push(vec![
            node.to_string(),
            "Host firmware".into(),
            or_not(&f["host"]),
        ]);
        let maker = match (&f["manufacturer"], f["manufacturer_id"].as_u64()) {
            (Value::String(m), Some(id)) => Some(format!("{m} ({id})")),
            (Value::String(m), None) => Some(m.clone()),
            (_, Some(id)) => Some(id.to_string()),
            _ => None,
        };
        if let Some(maker) = maker {
            rows.push(vec![node.to_string(), "BMC manufacturer".into(), maker]);
        }
        for (key, what) in [
            ("product_id", "BMC product ID"),
            ("model", "BMC model"),
            ("ipmi_version", "IPMI version"),
        ] {
            if !f[key].is_null() {
                rows.push(vec![node.to_string(), what.into(), text(&f[key])]);
            }
        }
    }
    rows
}
