use std::collections::HashSet;
use std::path::Path;

use super::reduce;
use crate::inventory::Scope;
use crate::inventory::build::{Env, from_text};

fn names(list: &[&str]) -> HashSet<String> {
    list.iter().map(|n| n.to_string()).collect()
}

const LAB: &str = r#"# a lab
state_dir = "/tmp/petitlab-reduce-test"  # not created: checks only
[http]
base_url = "http://10.0.0.1:8080/"
listen = "10.0.0.1:8080"

[[node]]
name = "a"
macs = ["52:54:00:00:00:01"]
kernel_args = "quiet [x] # not a comment"
[node.bmc]
host = "127.0.0.1"
username = "admin"
password = "pw"
[node.deploy]
kernel = "k"
ramdisk = "r"
[node.instance]
image = "i"

  [[node]]   # indented, with a comment
  macs = [
    "52:54:00:00:00:02",
  ]
  name = 'b'
  [node.bmc]
  name = "not the node's"
  host = "127.0.0.2"
  username = "admin"
  password = "pw"
  [node.deploy]
  kernel = "k"
  ramdisk = "r"
  [node.instance]
  image = "i"

[tftp]
listen = "10.0.0.1:69"

[[node]]
name = "c"
macs = ["52:54:00:00:00:03"]
"#;

#[test]
fn keeps_the_settings_and_the_named_nodes_only() {
    let cut = reduce(LAB, &names(&["b"])).expect("a plain lab is cut");
    assert!(cut.contains("[http]") && cut.contains("[tftp]"), "{cut}");
    assert!(cut.contains("name = 'b'"), "{cut}");
    assert!(cut.contains("name = \"not the node's\""), "{cut}");
    assert!(!cut.contains("\"a\"") && !cut.contains("\"c\""), "{cut}");
    assert!(!cut.contains("52:54:00:00:00:01"), "{cut}");
}

/// The cut parses to what the whole file says about the named nodes and
/// the lab-wide settings.
#[test]
fn the_cut_loads_like_the_whole_file() {
    let path = Path::new("/tmp/lab.toml");
    let env = Env::from_pairs(&[("HOME", "/root")]);
    for wanted in [&["a"][..], &["b"], &["a", "b"], &[]] {
        let scope = Scope::only(wanted);
        let cut = reduce(LAB, &names(wanted)).expect("cut");
        let part = from_text(path, &cut, &env, &scope);
        let whole = from_text(path, LAB, &env, &Scope::nodes(wanted));
        assert_eq!(part.problems, whole.problems, "{wanted:?}");
        let pick = |lab: &crate::inventory::Lab| {
            let nodes: Vec<String> = lab
                .nodes
                .iter()
                .filter(|n| wanted.contains(&n.name.as_str()))
                .map(|n| format!("{n:?}"))
                .collect();
            (
                nodes,
                format!("{:?}", lab.http),
                format!("{:?}", lab.tftp),
                lab.state_dir.clone(),
            )
        };
        assert_eq!(pick(&part.lab), pick(&whole.lab), "{wanted:?}");
        // Their files (k, r, i) do not exist: the named nodes were checked.
        for name in wanted {
            assert!(
                part.problems
                    .iter()
                    .any(|p| p.node.as_deref() == Some(*name)),
                "{name}: {:?}",
                part.problems
            );
        }
    }
}

#[test]
fn gives_up_where_it_cannot_be_sure() {
    let all = names(&["a"]);
    let cases = [
        // A multi-line string could hold anything, headers included.
        "x = \"\"\"\n[[node]]\n\"\"\"\n[[node]]\nname = \"a\"\n",
        "x = '''\n'''\n[[node]]\nname = \"a\"\n",
        // A name with an escape, a quote or a hash is not read here.
        "[[node]]\nname = \"a\\u0041\"\n",
        "[[node]]\nname = \"a#b\"\n",
        // A node whose name comes after its sub-tables, or never.
        "[[node]]\n[node.bmc]\nhost = \"h\"\nname = \"a\"\n",
        "[[node]]\nmacs = []\n",
        // Two names in one node.
        "[[node]]\nname = \"a\"\nname = \"a\"\n",
        // Lines starting with `[` that are no plain header.
        "x = [\n[1, 2],\n]\n[[node]]\nname = \"a\"\n",
        "[\"quoted\"]\n[[node]]\nname = \"a\"\n",
        "[node]\nname = \"a\"\n",
        // A node table before any node.
        "[node.bmc]\n[[node]]\nname = \"a\"\n",
        // The named node is not there.
        "[[node]]\nname = \"b\"\n",
    ];
    for text in cases {
        assert_eq!(reduce(text, &all), None, "{text}");
    }
}

#[test]
fn crlf_and_no_final_newline() {
    let text =
        "[http]\r\nlisten = \"1.2.3.4:80\"\r\n[[node]]\r\nname = \"a\"\r\n[[node]]\r\nname = \"b\"";
    let cut = reduce(text, &names(&["b"])).expect("cut");
    assert_eq!(
        cut,
        "[http]\r\nlisten = \"1.2.3.4:80\"\r\n[[node]]\r\nname = \"b\""
    );
}

/// A line that looks like a header inside a multi-line array cuts wrong,
/// and the cut then fails to parse: `load_scoped` falls back to the whole
/// file, which loads.
#[test]
fn a_wrong_cut_falls_back_to_the_whole_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("lab.toml");
    let text = format!(
        "state_dir = \"{}/state\"\n[[node]]\nname = \"a\"\nx = [\n[1]\n]\n[[node]]\nname = \"b\"\n",
        dir.path().display()
    );
    std::fs::write(&path, &text).unwrap();
    let cut = reduce(&text, &names(&["b"])).expect("the scan is fooled");
    assert!(cut.contains("[1]\n]\n"), "{cut}");
    let loaded = crate::inventory::load_scoped(&path, &Scope::only(&["b"])).unwrap();
    assert!(
        loaded.problems.iter().all(|p| p.field != "lab.toml"),
        "{:?}",
        loaded.problems
    );
    assert!(
        loaded
            .problems
            .iter()
            .any(|p| p.node.as_deref() == Some("b") && p.field == "macs"),
        "node b is loaded from the whole file: {:?}",
        loaded.problems
    );
}
