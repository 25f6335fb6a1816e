//! The `:` command line: `:deploy`, `:power cycle`, `:bootdev pxe`, `:q`…
//! Node ranges after an action name the nodes (`p9-rack1-[01-04]`,
//! `group:rack1,-p9-rack1-02`, `state:active`: see
//! [`crate::inventory::range`]); without them the action applies to the
//! marked nodes, else the selected one. Ranges are parsed here and resolved
//! by the app against its rows.

use crate::engine::lab::Action;
use crate::inventory::range::{self, NodeRange};
use crate::ipmi::chassis::{BootDevice, PowerAction};
use crate::tui::model::Column;

#[derive(Debug, Clone, PartialEq)]
pub enum CommandLine {
    /// An engine action on the range's nodes (none: marked, else selected).
    Act {
        action: Action,
        nodes: Option<NodeRange>,
    },
    Quit,
    Filter(String),
    Sort {
        column: Column,
        descending: bool,
    },
    Theme(String),
    Help,
    Console(Option<String>),
    /// The range's consoles (none: marked, else the shown nodes).
    Wall(Option<NodeRange>),
    Mark(bool),
}

/// Usage lines, for the help.
pub const USAGE: &[(&str, &str)] = &[
    (":deploy [RANGE…]", "deploy (asks first)"),
    (":undeploy [RANGE…]", "undeploy (asks first)"),
    (":abort [RANGE…]", "abort a running deploy (asks first)"),
    (":prepare [RANGE…]", "prepare the deploy ramdisk"),
    (
        ":power on|off|cycle|reset|soft [RANGE…]",
        "power control (all but on ask first)",
    ),
    (":bootdev pxe|disk|none [RANGE…]", "one-shot boot device"),
    (":filter [TEXT]", "set (or clear) the filter"),
    (
        ":sort COLUMN [desc]",
        "name, power, boot, state, console, holder, last",
    ),
    (":mark all|none", "mark every shown node, or none"),
    (":console [NODE]", "open a console"),
    (":wall [RANGE…]", "console wall"),
    (":theme NAME", "dark, light, high-contrast"),
    (":help", "this help"),
    (":q", "quit"),
];

pub fn parse(line: &str) -> Result<CommandLine, String> {
    let mut words = line.split_whitespace();
    let Some(verb) = words.next() else {
        return Err("empty command; :help lists them".into());
    };
    let rest: Vec<String> = words.map(str::to_string).collect();
    let act = |action: Action, words: &[String]| -> Result<CommandLine, String> {
        Ok(CommandLine::Act {
            action,
            nodes: nodes(words)?,
        })
    };
    Ok(match verb {
        "q" | "q!" | "quit" | "qa" => CommandLine::Quit,
        "deploy" => act(Action::Deploy, &rest)?,
        "undeploy" => act(Action::Undeploy, &rest)?,
        "abort" => act(Action::Abort, &rest)?,
        "prepare" | "prepare-ramdisk" => act(Action::PrepareRamdisk, &rest)?,
        "power" => {
            let Some(what) = rest.first() else {
                return Err(":power needs on, off, cycle, reset or soft".into());
            };
            let p = match what.as_str() {
                "on" => PowerAction::On,
                "off" => PowerAction::Off,
                "cycle" => PowerAction::Cycle,
                "reset" => PowerAction::Reset,
                "soft" => PowerAction::Soft,
                other => {
                    return Err(format!(":power {other}: use on, off, cycle, reset or soft"));
                }
            };
            act(Action::Power(p), &rest[1..])?
        }
        "bootdev" | "boot" => {
            let Some(what) = rest.first() else {
                return Err(format!(":{verb} needs pxe, disk or none"));
            };
            let d = match what.as_str() {
                "pxe" | "network" | "net" => BootDevice::Pxe,
                "disk" => BootDevice::Disk,
                "none" | "clear" => BootDevice::None,
                other => return Err(format!(":{verb} {other}: use pxe, disk or none")),
            };
            act(Action::BootDevice(d), &rest[1..])?
        }
        "filter" | "f" => CommandLine::Filter(rest.join(" ")),
        "sort" => {
            let Some(name) = rest.first() else {
                return Err(
                    ":sort needs a column: name, power, boot, state, console, holder, last".into(),
                );
            };
            let column = Column::parse(name).ok_or_else(|| {
                format!(":sort {name}: columns are name, power, boot, state, console, holder, last")
            })?;
            let descending = match rest.get(1).map(String::as_str) {
                None | Some("asc") => false,
                Some("desc") => true,
                Some(other) => return Err(format!(":sort {name} {other}: use asc or desc")),
            };
            CommandLine::Sort { column, descending }
        }
        "theme" => match rest.as_slice() {
            [name] => CommandLine::Theme(name.clone()),
            _ => return Err(":theme needs one name: dark, light or high-contrast".into()),
        },
        "help" | "h" => CommandLine::Help,
        "console" => match rest.as_slice() {
            [] => CommandLine::Console(None),
            [node] => CommandLine::Console(Some(node.clone())),
            _ => return Err(":console takes one node".into()),
        },
        "wall" => CommandLine::Wall(nodes(&rest)?),
        "mark" => match rest.first().map(String::as_str) {
            Some("all") => CommandLine::Mark(true),
            Some("none") => CommandLine::Mark(false),
            _ => return Err(":mark all or :mark none".into()),
        },
        other => return Err(format!(":{other}: unknown command; :help lists them")),
    })
}

/// The node range the words after a command name, if any.
fn nodes(words: &[String]) -> Result<Option<NodeRange>, String> {
    if words.is_empty() {
        return Ok(None);
    }
    range::parse_words(words)
        .map(Some)
        .map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn act(action: Action, nodes: &[&str]) -> CommandLine {
        CommandLine::Act {
            action,
            nodes: (!nodes.is_empty()).then(|| range::parse_words(nodes).unwrap()),
        }
    }

    #[test]
    fn actions_with_and_without_nodes() {
        assert_eq!(parse("deploy"), Ok(act(Action::Deploy, &[])));
        assert_eq!(
            parse("  deploy  n1 n2 "),
            Ok(act(Action::Deploy, &["n1", "n2"]))
        );
        assert_eq!(parse("undeploy n1"), Ok(act(Action::Undeploy, &["n1"])));
        assert_eq!(parse("abort"), Ok(act(Action::Abort, &[])));
        assert_eq!(
            parse("prepare-ramdisk n3"),
            Ok(act(Action::PrepareRamdisk, &["n3"]))
        );
        assert_eq!(
            parse("power cycle"),
            Ok(act(Action::Power(PowerAction::Cycle), &[]))
        );
        assert_eq!(
            parse("power off n1"),
            Ok(act(Action::Power(PowerAction::Off), &["n1"]))
        );
        assert_eq!(
            parse("bootdev pxe"),
            Ok(act(Action::BootDevice(BootDevice::Pxe), &[]))
        );
        assert_eq!(
            parse("boot none n2"),
            Ok(act(Action::BootDevice(BootDevice::None), &["n2"]))
        );
    }

    #[test]
    fn view_commands() {
        assert_eq!(parse("q"), Ok(CommandLine::Quit));
        assert_eq!(parse("quit"), Ok(CommandLine::Quit));
        assert_eq!(
            parse("filter group:rack1 on"),
            Ok(CommandLine::Filter("group:rack1 on".into()))
        );
        assert_eq!(parse("filter"), Ok(CommandLine::Filter(String::new())));
        assert_eq!(
            parse("sort state desc"),
            Ok(CommandLine::Sort {
                column: Column::State,
                descending: true
            })
        );
        assert_eq!(parse("theme light"), Ok(CommandLine::Theme("light".into())));
        assert_eq!(
            parse("console n1"),
            Ok(CommandLine::Console(Some("n1".into())))
        );
        assert_eq!(parse("wall"), Ok(CommandLine::Wall(None)));
        assert_eq!(parse("mark all"), Ok(CommandLine::Mark(true)));
        assert_eq!(parse("help"), Ok(CommandLine::Help));
    }

    #[test]
    fn node_words_are_ranges() {
        assert_eq!(
            parse("deploy p9-rack1-[01-02]"),
            Ok(act(Action::Deploy, &["p9-rack1-[01-02]"]))
        );
        assert_eq!(
            parse("power cycle group:rack1 n7"),
            Ok(act(
                Action::Power(PowerAction::Cycle),
                &["group:rack1", "n7"]
            ))
        );
        let Ok(CommandLine::Act { nodes: Some(r), .. }) = parse("bootdev pxe n[1-3],-n2") else {
            panic!("a range")
        };
        assert_eq!(r.literal_names(), None, "an exclusion needs the lab");
        assert_eq!(
            parse("wall state:active"),
            Ok(CommandLine::Wall(Some(
                range::parse("state:active").unwrap()
            )))
        );
        // Words are ranges of their own: an exclusion cannot start one.
        assert_eq!(
            parse("undeploy all -n2"),
            Err(r#""-n2" column 1: -n2 excludes from nothing: put it after the terms it narrows (all,-n2)"#.into())
        );
    }

    #[test]
    fn bad_ranges_are_refused_with_the_reason() {
        assert_eq!(
            parse("deploy p9-rack1-[01-"),
            Err(r#""p9-rack1-[01-" column 10: '[' is never closed"#.into())
        );
        assert_eq!(
            parse("power off n[5-1]"),
            Err(r#""n[5-1]" column 3: range 5-1 runs backwards (write 1-5)"#.into())
        );
        assert!(
            parse("wall state:broken")
                .unwrap_err()
                .starts_with("unknown state \"broken\"")
        );
        assert!(
            parse("abort n[1-100000]")
                .unwrap_err()
                .contains("a range may name at most 10000")
        );
    }

    #[test]
    fn mistakes_say_what_would_be_right() {
        assert_eq!(parse(""), Err("empty command; :help lists them".into()));
        assert_eq!(
            parse("power"),
            Err(":power needs on, off, cycle, reset or soft".into())
        );
        assert_eq!(
            parse("power up"),
            Err(":power up: use on, off, cycle, reset or soft".into())
        );
        assert_eq!(
            parse("bootdev cdrom"),
            Err(":bootdev cdrom: use pxe, disk or none".into())
        );
        assert!(
            parse("sort colour")
                .unwrap_err()
                .contains("columns are name")
        );
        assert_eq!(
            parse("deplo"),
            Err(":deplo: unknown command; :help lists them".into())
        );
        assert!(parse("theme").is_err());
        assert!(parse("mark some").is_err());
    }
}
