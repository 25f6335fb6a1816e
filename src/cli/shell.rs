//! Shell integration: which lab.toml a command means when `--lab` is not
//! given, completions (node names and groups from that lab), man pages.

use std::ffi::{OsStr, OsString};
use std::path::{Path, PathBuf};

use clap_complete::engine::CompletionCandidate;
use clap_complete::env::Shells;
use petitlab::inventory::{self, Scope};

/// Names the lab file after `--lab` and before the built-in fallbacks.
pub const LAB_ENV: &str = "PETITLAB_LAB";
/// The lab file of a machine that runs one lab for everybody.
pub const SYSTEM_LAB: &str = "/etc/petitlab/lab.toml";

/// The lab file a command works on: `--lab`, else `./lab.toml` when it
/// exists, else `$PETITLAB_LAB`, else `/etc/petitlab/lab.toml` when it
/// exists. With none of them, `./lab.toml`: loading it then fails with
/// a message naming that path.
pub fn lab_path(given: Option<&Path>) -> PathBuf {
    lab_path_from(
        given,
        std::env::var_os(LAB_ENV).as_deref(),
        Path::new(SYSTEM_LAB),
    )
}

fn lab_path_from(given: Option<&Path>, env: Option<&OsStr>, system: &Path) -> PathBuf {
    let local = Path::new("lab.toml");
    if let Some(path) = given {
        return path.to_path_buf();
    }
    if local.exists() {
        return local.to_path_buf();
    }
    if let Some(path) = env.filter(|v| !v.is_empty()) {
        return PathBuf::from(path);
    }
    if system.exists() {
        return system.to_path_buf();
    }
    local.to_path_buf()
}

/// `--lab PATH` or `--lab=PATH` among the words being completed: the
/// completer sees only the word under the cursor, not the parsed command.
fn lab_in_words(words: &[OsString]) -> Option<PathBuf> {
    let mut words = words.iter();
    while let Some(word) = words.next() {
        if word == "--lab" {
            return words.next().map(PathBuf::from);
        }
        if let Some(path) = word.to_str().and_then(|w| w.strip_prefix("--lab=")) {
            return Some(PathBuf::from(path));
        }
    }
    None
}

/// Completes a node range's last comma-separated term with the lab's node
/// names, `group:` names and `all`. Quiet on any error: a completion
/// must never print into the user's command line.
pub fn complete_nodes(current: &OsStr) -> Vec<CompletionCandidate> {
    let Some(current) = current.to_str() else {
        return Vec::new();
    };
    let words: Vec<OsString> = std::env::args_os().collect();
    let path = lab_path(lab_in_words(&words).as_deref());
    // Every node parsed, none of their files (secrets) opened.
    let Ok(loaded) = inventory::load_scoped(&path, &Scope::nodes::<&str>(&[])) else {
        return Vec::new();
    };
    let mut terms: Vec<String> = vec!["all".into()];
    let mut groups: Vec<&str> = Vec::new();
    for node in &loaded.lab.nodes {
        terms.push(node.name.clone());
        if let Some(group) = node.group.as_deref()
            && !groups.contains(&group)
        {
            groups.push(group);
        }
    }
    terms.extend(groups.iter().map(|g| format!("group:{g}")));
    candidates(current, &terms)
}

fn candidates(current: &str, terms: &[String]) -> Vec<CompletionCandidate> {
    // `a,b,-c`: complete the word after the last comma (and its `-`).
    let (head, last) = match current.rfind(',') {
        Some(i) => current.split_at(i + 1),
        None => ("", current),
    };
    let (head, last) = match last.strip_prefix('-') {
        Some(rest) if !head.is_empty() => (&current[..head.len() + 1], rest),
        _ => (head, last),
    };
    terms
        .iter()
        .filter(|t| t.starts_with(last))
        .map(|t| CompletionCandidate::new(format!("{head}{t}")))
        .collect()
}

/// The shell code that asks petitlab for completions: `source` it from
/// bash or zsh, pipe it to `source` in fish.
pub fn registration(shell: &str) -> anyhow::Result<String> {
    let shells = Shells::builtins();
    let Some(completer) = shells.completer(shell) else {
        let known: Vec<&str> = shells.names().collect();
        anyhow::bail!("no completions for {shell:?}: one of {}", known.join(", "));
    };
    // The binary the shell runs for completions: this one.
    let exe = std::env::current_exe()?;
    let mut script = Vec::new();
    completer.write_registration(
        "COMPLETE",
        "petitlab",
        "petitlab",
        &exe.to_string_lossy(),
        &mut script,
    )?;
    Ok(String::from_utf8_lossy(&script).into_owned())
}

/// Writes petitlab.1 and one petitlab-COMMAND.1 per subcommand into
/// `dir`, each through a temp file renamed into place.
pub fn write_man_pages(cmd: clap::Command, dir: &Path) -> anyhow::Result<Vec<PathBuf>> {
    use anyhow::Context;
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let mut cmd = cmd;
    cmd.build();
    let mut pages = vec![(String::from("petitlab"), cmd.clone())];
    for sub in cmd.get_subcommands() {
        if sub.is_hide_set() {
            continue;
        }
        let name = format!("petitlab-{}", sub.get_name());
        pages.push((name.clone(), sub.clone().name(name)));
    }
    let mut written = Vec::new();
    for (name, page) in pages {
        let mut roff = Vec::new();
        clap_mangen::Man::new(page).render(&mut roff)?;
        let path = dir.join(format!("{name}.1"));
        let tmp = dir.join(format!(".{name}.1.tmp"));
        std::fs::write(&tmp, &roff).with_context(|| format!("writing {}", tmp.display()))?;
        std::fs::rename(&tmp, &path).with_context(|| format!("writing {}", path.display()))?;
        written.push(path);
    }
    Ok(written)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(found: Vec<CompletionCandidate>) -> Vec<String> {
        found
            .iter()
            .map(|c| c.get_value().to_string_lossy().into_owned())
            .collect()
    }

    #[test]
    fn the_last_term_of_a_range_is_completed() {
        let terms: Vec<String> = ["all", "p9-01", "p9-02", "p8-01", "group:rack1"]
            .map(String::from)
            .to_vec();
        assert_eq!(names(candidates("p9", &terms)), ["p9-01", "p9-02"]);
        assert_eq!(
            names(candidates("p8-01,p9-0", &terms)),
            ["p8-01,p9-01", "p8-01,p9-02"]
        );
        assert_eq!(names(candidates("all,-p8", &terms)), ["all,-p8-01"]);
        assert_eq!(names(candidates("gr", &terms)), ["group:rack1"]);
        assert!(candidates("x", &terms).is_empty());
    }

    #[test]
    fn the_lab_flag_is_found_in_either_spelling() {
        let words = |w: &[&str]| w.iter().map(OsString::from).collect::<Vec<_>>();
        assert_eq!(
            lab_in_words(&words(&[
                "petitlab", "--", "petitlab", "--lab", "x.toml", "power"
            ])),
            Some(PathBuf::from("x.toml"))
        );
        assert_eq!(
            lab_in_words(&words(&["petitlab", "--lab=y.toml"])),
            Some(PathBuf::from("y.toml"))
        );
        assert_eq!(lab_in_words(&words(&["petitlab", "power"])), None);
    }

    #[test]
    fn fallbacks_come_after_the_flag_and_the_local_file() {
        let dir = tempfile::tempdir().unwrap();
        let system = dir.path().join("etc-lab.toml");
        let env = OsStr::new("/srv/env-lab.toml");
        // The test runs in the crate's directory, which has no lab.toml.
        assert!(!Path::new("lab.toml").exists());
        let given = Path::new("given.toml");
        assert_eq!(lab_path_from(Some(given), Some(env), &system), given);
        assert_eq!(
            lab_path_from(None, Some(env), &system),
            Path::new("/srv/env-lab.toml")
        );
        // An empty variable counts as unset.
        assert_eq!(
            lab_path_from(None, Some(OsStr::new("")), &system),
            Path::new("lab.toml")
        );
        std::fs::write(&system, "").unwrap();
        assert_eq!(lab_path_from(None, None, &system), system);
        assert_eq!(
            lab_path_from(None, Some(env), &system),
            Path::new("/srv/env-lab.toml")
        );
    }
}
