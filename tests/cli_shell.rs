//! Shell integration with the real shell: bash completes node names and
//! groups from the lab (through `petitlab completions bash`, as an admin's
//! .bashrc sources it), man pages are written, dashboard-only flags stay
//! out of other commands' help, and `PETITLAB_LAB` names the lab when
//! there is no ./lab.toml.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_petitlab")
}

fn example_lab() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("lab.toml.example")
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// What bash's completion function offers for `words` (the last one being
/// completed), run in `dir` with `env` set, as pressing Tab would.
fn complete(dir: &Path, env: &[(&str, &str)], words: &[&str]) -> Vec<String> {
    let quoted: Vec<String> = words.iter().map(|w| format!("'{w}'")).collect();
    let script = format!(
        r#"set -e
source <("{bin}" completions bash)
complete -p petitlab >/dev/null
COMP_WORDS=({words})
COMP_CWORD={cword}
COMP_TYPE=9
_clap_complete_petitlab petitlab "${{COMP_WORDS[COMP_CWORD]}}" "${{COMP_WORDS[COMP_CWORD-1]}}"
printf '%s\n' "${{COMPREPLY[@]}}"
"#,
        bin = bin(),
        words = quoted.join(" "),
        cword = words.len() - 1,
    );
    let out = Command::new("bash")
        .args(["--norc", "--noprofile", "-c", &script])
        .current_dir(dir)
        .env_remove("PETITLAB_LAB")
        .envs(env.iter().copied())
        .output()
        .expect("run bash (apt-get install bash)");
    assert!(out.status.success(), "bash failed: {}", text(&out));
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| !l.is_empty())
        .map(str::to_string)
        .collect()
}

#[test]
fn bash_completes_node_names_and_groups_from_the_lab() {
    let dir = tempfile::tempdir().unwrap();
    let lab = example_lab();
    let lab = lab.to_str().unwrap();
    assert_eq!(
        complete(
            dir.path(),
            &[],
            &["petitlab", "--lab", lab, "power", "p9-rack1-0"]
        ),
        ["p9-rack1-01", "p9-rack1-02"]
    );
    // The last term of a range: what comes before it is kept.
    assert_eq!(
        complete(
            dir.path(),
            &[],
            &["petitlab", "--lab", lab, "deploy", "p8-rack2-01,p10"]
        ),
        ["p8-rack2-01,p10-rack3-01"]
    );
    assert_eq!(
        complete(
            dir.path(),
            &[],
            &["petitlab", "--lab", lab, "events", "grou"]
        ),
        ["group:rack1", "group:rack2", "group:rack3"]
    );
    // Without --lab: the lab PETITLAB_LAB names.
    assert_eq!(
        complete(
            dir.path(),
            &[("PETITLAB_LAB", lab)],
            &["petitlab", "console", "p10"]
        ),
        ["p10-rack3-01"]
    );
    // Subcommands complete too; an unreadable lab completes no node, quietly.
    assert!(complete(dir.path(), &[], &["petitlab", "inv"]).contains(&"inventory".to_string()));
    assert!(complete(dir.path(), &[], &["petitlab", "power", "p9"]).is_empty());
}

#[test]
fn man_pages_are_written_for_every_command() {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(bin())
        .args(["man", "--dir"])
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    for page in [
        "petitlab",
        "petitlab-events",
        "petitlab-bmc-reset",
        "petitlab-console",
    ] {
        let path = dir.path().join(format!("{page}.1"));
        let roff = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path:?}: {e}"));
        assert!(roff.contains(".TH"), "{page}: no title header:\n{roff}");
        assert!(
            text(&out).contains(path.to_str().unwrap()),
            "{}",
            text(&out)
        );
    }
    let events = std::fs::read_to_string(dir.path().join("petitlab-events.1")).unwrap();
    assert!(events.contains("clear"), "{events}");
}

#[test]
fn dashboard_flags_are_only_in_the_dashboards_help() {
    let help = |args: &[&str]| {
        let out = Command::new(bin()).args(args).output().unwrap();
        assert!(out.status.success(), "{}", text(&out));
        text(&out)
    };
    let top = help(&["--help"]);
    for flag in ["--theme", "--keymap", "--read-only"] {
        assert!(top.contains(flag), "petitlab --help lacks {flag}:\n{top}");
    }
    for command in ["power", "events", "deploy", "status"] {
        let text = help(&[command, "--help"]);
        for flag in ["--theme", "--keymap", "--read-only"] {
            assert!(
                !text.contains(flag),
                "{command} --help shows {flag}:\n{text}"
            );
        }
    }
    assert!(help(&["demo", "--help"]).contains("--theme"));
    assert!(help(&["console", "--help"]).contains("--read-only"));
}

#[test]
fn petitlab_lab_names_the_lab_when_there_is_no_local_one() {
    let dir = tempfile::tempdir().unwrap();
    let state = tempfile::tempdir().unwrap();
    let run = |env: Option<&Path>| {
        let mut cmd = Command::new(bin());
        cmd.args(["--local", "status", "p9-rack1-[01-02]"])
            .current_dir(dir.path())
            .env("XDG_STATE_HOME", state.path())
            .env_remove("PETITLAB_LAB");
        if let Some(lab) = env {
            cmd.env("PETITLAB_LAB", lab);
        }
        cmd.output().unwrap()
    };
    let out = run(Some(&example_lab()));
    assert!(out.status.success(), "{}", text(&out));
    let said = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        said.contains("p9-rack1-01") && said.contains("p9-rack1-02"),
        "{said}"
    );
    // Neither ./lab.toml nor PETITLAB_LAB (nor /etc/petitlab/lab.toml, on
    // a test machine): the error names ./lab.toml.
    assert!(
        !Path::new("/etc/petitlab/lab.toml").exists(),
        "this machine has an /etc/petitlab/lab.toml: the fallback test needs it absent"
    );
    let out = run(None);
    assert!(!out.status.success());
    assert!(text(&out).contains("lab.toml"), "{}", text(&out));
    // ./lab.toml wins over PETITLAB_LAB.
    std::fs::write(dir.path().join("lab.toml"), "this is not toml [").unwrap();
    let out = run(Some(&example_lab()));
    assert!(!out.status.success(), "{}", text(&out));
}
