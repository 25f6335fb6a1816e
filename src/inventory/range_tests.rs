use super::*;

/// A small lab: name, group, state.
const LAB: &[(&str, Option<&str>, Option<State>)] = &[
    ("p9-rack1-01", Some("rack1"), Some(State::Active)),
    ("p9-rack1-02", Some("rack1"), Some(State::DeployFailed)),
    ("p9-rack1-03", Some("rack1"), Some(State::Active)),
    ("p9-rack1-04", Some("rack1"), Some(State::Available)),
    ("p8-rack2-01", Some("rack2"), Some(State::Active)),
    ("p8-rack2-02", Some("rack2"), None),
    ("bench", None, Some(State::Error)),
];

fn lab() -> Vec<Candidate<'static>> {
    LAB.iter()
        .map(|&(name, group, state)| Candidate { name, group, state })
        .collect()
}

fn resolve(expr: &str) -> Result<Vec<String>, RangeError> {
    parse(expr)?.resolve(&lab())
}

fn names(expr: &str) -> Vec<String> {
    resolve(expr).unwrap_or_else(|e| panic!("{expr}: {e}"))
}

/// What a range expands to without the lab.
fn literal(expr: &str) -> Vec<String> {
    parse(expr)
        .unwrap_or_else(|e| panic!("{expr}: {e}"))
        .literal_names()
        .expect("only names")
}

fn syntax_error(expr: &str) -> String {
    match parse(expr) {
        Err(e @ RangeError::Syntax { .. }) => e.to_string(),
        other => panic!("{expr}: expected a syntax error, got {other:?}"),
    }
}

#[test]
fn zero_padding_follows_the_bound_written_with_a_leading_zero() {
    assert_eq!(literal("n[01-03]"), ["n01", "n02", "n03"]);
    assert_eq!(literal("n[08-10]"), ["n08", "n09", "n10"]);
    assert_eq!(literal("n[001-002]"), ["n001", "n002"]);
    assert_eq!(literal("n[098-101]"), ["n098", "n099", "n100", "n101"]);
    // A padded high bound pads too; a lone 0 is not a leading zero.
    assert_eq!(literal("n[9-010]"), ["n009", "n010"]);
    assert_eq!(literal("n[0-2]"), ["n0", "n1", "n2"]);
    // Single numbers are kept as written.
    assert_eq!(literal("n[007]"), ["n007"]);
}

#[test]
fn unpadded_ranges_are_not_padded() {
    assert_eq!(literal("n[1-3]"), ["n1", "n2", "n3"]);
    assert_eq!(literal("n[9-11]"), ["n9", "n10", "n11"]);
}

#[test]
fn lists_mix_numbers_and_ranges() {
    assert_eq!(
        literal("n[1-3,7,10-12]"),
        ["n1", "n2", "n3", "n7", "n10", "n11", "n12"]
    );
    assert_eq!(literal("n[01-02,5,010]"), ["n01", "n02", "n5", "n010"]);
}

#[test]
fn several_brackets_multiply_out() {
    assert_eq!(
        literal("r[1-2]n[01-02]"),
        ["r1n01", "r1n02", "r2n01", "r2n02"]
    );
    assert_eq!(literal("[1-2]x"), ["1x", "2x"]);
    assert_eq!(literal("a[1]b[2]c"), ["a1b2c"]);
}

#[test]
fn names_and_brackets_resolve_in_the_labs_order_each_once() {
    assert_eq!(names("p9-rack1-01"), ["p9-rack1-01"]);
    // Written backwards and overlapping: the lab's order, no duplicates.
    assert_eq!(
        names("p9-rack1-[03-04],p9-rack1-[01-03],bench,p9-rack1-03"),
        [
            "p9-rack1-01",
            "p9-rack1-02",
            "p9-rack1-03",
            "p9-rack1-04",
            "bench"
        ]
    );
    // Words are unioned the same way.
    let range = parse_words(&["bench", "p9-rack1-[02-01]x", "p9-rack1-02"]);
    assert!(range.is_err(), "a backwards range in any word is an error");
    let range = parse_words(&["bench", "p9-rack1-02", "bench"]).unwrap();
    assert_eq!(range.resolve(&lab()).unwrap(), ["p9-rack1-02", "bench"]);
    // A bracket term may name nodes the lab does not have.
    assert_eq!(names("p9-rack1-[03-12]"), ["p9-rack1-03", "p9-rack1-04"]);
}

#[test]
fn group_state_and_all() {
    assert_eq!(names("group:rack2"), ["p8-rack2-01", "p8-rack2-02"]);
    assert_eq!(
        names("state:active"),
        ["p9-rack1-01", "p9-rack1-03", "p8-rack2-01"]
    );
    assert_eq!(
        names("state:deploy-failed,state:error"),
        ["p9-rack1-02", "bench"]
    );
    assert_eq!(names("all").len(), LAB.len());
    assert_eq!(
        names("group:rack2,state:available"),
        ["p9-rack1-04", "p8-rack2-01", "p8-rack2-02"]
    );
}

#[test]
fn exclusions_remove_what_the_terms_before_matched() {
    assert_eq!(
        names("all,-p8-rack2-01,-bench"),
        [
            "p9-rack1-01",
            "p9-rack1-02",
            "p9-rack1-03",
            "p9-rack1-04",
            "p8-rack2-02"
        ]
    );
    assert_eq!(
        names("group:rack1,-p9-rack1-[03-04]"),
        ["p9-rack1-01", "p9-rack1-02"]
    );
    assert_eq!(
        names("state:active,-group:rack2"),
        ["p9-rack1-01", "p9-rack1-03"]
    );
    // Only what came before: a later term adds back.
    assert_eq!(
        names("group:rack2,-group:rack2,p8-rack2-02"),
        ["p8-rack2-02"]
    );
    // Excluding a node that was not picked is fine, and it must exist.
    assert_eq!(names("bench,-p9-rack1-01"), ["bench"]);
    // An exclusion narrows only its own word.
    let range = parse_words(&["group:rack2,-p8-rack2-01", "p8-rack2-01"]).unwrap();
    assert_eq!(
        range.resolve(&lab()).unwrap(),
        ["p8-rack2-01", "p8-rack2-02"]
    );
}

#[test]
fn exclusions_that_leave_nothing_are_an_error() {
    let err = resolve("group:rack2,-p8-rack2-[01-02]").unwrap_err();
    assert_eq!(
        err.to_string(),
        "group:rack2,-p8-rack2-[01-02] leaves no node"
    );
}

#[test]
fn every_term_that_matches_no_node_is_named() {
    let err =
        resolve("p9-rack9-[01-03],bench,group:lab9,-nope,state:cleaning,p9-rack1-05").unwrap_err();
    assert_eq!(
        err,
        RangeError::NoMatch {
            terms: vec![
                "p9-rack9-[01-03]".into(),
                "group:lab9".into(),
                "nope".into(),
                "state:cleaning".into(),
                "p9-rack1-05".into(),
            ]
        }
    );
    assert_eq!(
        err.to_string(),
        "p9-rack9-[01-03], group:lab9, nope, state:cleaning, p9-rack1-05 match no node"
    );
    assert_eq!(
        resolve("p9-rack9-[01-03]").unwrap_err().to_string(),
        "p9-rack9-[01-03] matches no node"
    );
    // Nodes whose state is not known match no state.
    assert_eq!(
        parse("state:active").unwrap().resolve(&[Candidate {
            name: "n1",
            group: None,
            state: None
        }]),
        Err(RangeError::NoMatch {
            terms: vec!["state:active".into()]
        })
    );
    // `all` of no node matches nothing either.
    assert!(matches!(
        parse("all").unwrap().resolve(&[]),
        Err(RangeError::NoMatch { .. })
    ));
}

#[test]
fn select_is_lenient() {
    let selection = parse("bench,zzz").unwrap().select(&lab());
    assert_eq!(selection.indices, [6]);
    assert_eq!(selection.unmatched, ["zzz"]);
}

#[test]
fn syntax_errors_say_what_and_where() {
    assert_eq!(
        syntax_error("p9-rack1-[5-1]"),
        r#""p9-rack1-[5-1]" column 11: range 5-1 runs backwards (write 1-5)"#
    );
    assert_eq!(
        syntax_error("n[1-3,a]"),
        r#""n[1-3,a]" column 7: 'a' in brackets: they hold numbers and ranges, like [01-20,25]"#
    );
    assert_eq!(
        syntax_error("n[1-3"),
        r#""n[1-3" column 2: '[' is never closed"#
    );
    assert_eq!(
        syntax_error("n1-3]"),
        r#""n1-3]" column 5: ']' without a '[' before it"#
    );
    assert_eq!(
        syntax_error("n[1[2]]"),
        r#""n[1[2]]" column 4: brackets cannot nest"#
    );
    assert_eq!(syntax_error("n[]"), r#""n[]" column 3: empty brackets"#);
    assert_eq!(
        syntax_error("n[1-]"),
        r#""n[1-]" column 5: range 1- has no end"#
    );
    assert_eq!(
        syntax_error("n[-1]"),
        r#""n[-1]" column 3: range -1 has no start"#
    );
    assert_eq!(
        syntax_error("n[1,]"),
        r#""n[1,]" column 5: empty item in brackets (a comma too many?)"#
    );
    assert_eq!(
        syntax_error("n[1-9999999999]"),
        r#""n[1-9999999999]" column 5: 9999999999 has more than 9 digits"#
    );
    assert_eq!(
        syntax_error("-bench"),
        r#""-bench" column 1: -bench excludes from nothing: put it after the terms it narrows (all,-bench)"#
    );
    assert_eq!(
        syntax_error("bench,,n1"),
        r#""bench,,n1" column 7: empty term (a comma too many?)"#
    );
    assert_eq!(
        syntax_error("bench,"),
        r#""bench," column 7: empty term (a comma too many?)"#
    );
    assert_eq!(
        syntax_error(""),
        r#""" column 1: empty term (a comma too many?)"#
    );
    assert_eq!(
        syntax_error("bench,-"),
        r#""bench,-" column 7: '-' needs a term to exclude"#
    );
    assert_eq!(
        syntax_error("rack:1"),
        r#""rack:1" column 1: unknown prefix "rack": use group:NAME or state:NAME"#
    );
    assert_eq!(
        syntax_error("all,group:"),
        r#""all,group:" column 11: group: needs a name"#
    );
    assert_eq!(
        syntax_error("group:r[1-2]"),
        r#""group:r[1-2]" column 8: '[' cannot be in a group name here"#
    );
    assert_eq!(
        syntax_error("p9 rack"),
        r#""p9 rack" column 3: ' ' cannot be in a node name (letters, digits, '-', '_', '.')"#
    );
    // Hostile text is escaped in the message.
    assert_eq!(
        syntax_error("n\u{1b}x"),
        r#""n\u{1b}x" column 2: '\u{1b}' cannot be in a node name (letters, digits, '-', '_', '.')"#
    );
    assert!(parse_words::<&str>(&[]).is_err());
}

#[test]
fn unknown_states_list_the_valid_ones() {
    assert_eq!(
        parse("state:failed").unwrap_err().to_string(),
        "unknown state \"failed\" in state:failed; states are enroll, manageable, available, \
         deploying, wait-callback, deploy-failed, active, undeploying, cleaning, error"
    );
}

#[test]
fn hostile_sizes_are_refused_before_allocating() {
    assert_eq!(
        parse("n[1-99999999]").unwrap_err().to_string(),
        r#""n[1-99999999]" expands to 99999999 names; a range may name at most 10000"#
    );
    // The product of brackets counts, and so do all the words together.
    assert!(matches!(
        parse("r[1-200]n[1-200]"),
        Err(RangeError::TooLarge { count: 40_000, .. })
    ));
    assert!(matches!(
        parse_words(&["a[1-6000]", "b[1-6000]"]),
        Err(RangeError::TooLarge { count: 12_000, .. })
    ));
    assert!(matches!(
        parse("r[1-999999999]n[1-999999999]m[1-999999999]"),
        Err(RangeError::TooLarge { .. })
    ));
    assert_eq!(literal("n[1-10000]").len(), MAX_NAMES);
    // Many brackets of one number each would be 10000 long names to build.
    let long = format!("n[1-10000]{}", "[0]".repeat(60));
    assert_eq!(
        parse(&long).unwrap_err().to_string(),
        format!("{long:?} column 1: names 66 characters long are not node names (at most 63)")
    );
    assert!(parse("n[1-10000],x").is_err());
    let long = "n,".repeat(2048) + "n";
    assert_eq!(parse(&long).unwrap_err(), RangeError::TooLong { len: 4097 });
    assert_eq!(
        parse(&long).unwrap_err().to_string(),
        "the range is 4097 bytes long; at most 4096"
    );
}

#[test]
fn literal_names_only_without_the_lab() {
    assert_eq!(
        parse_words(&["n[1-2]", "m,n1"]).unwrap().literal_names(),
        Some(vec!["n1".into(), "n2".into(), "m".into()])
    );
    for expr in [
        "all",
        "group:rack1",
        "state:active",
        "n1,-n1",
        "n[1-3],group:x",
    ] {
        assert_eq!(parse(expr).unwrap().literal_names(), None, "{expr}");
    }
}

#[test]
fn single_name_and_needs_state() {
    assert_eq!(parse("bench").unwrap().single_name(), Some("bench"));
    assert_eq!(parse("n[1]").unwrap().single_name(), None);
    assert_eq!(parse("a,b").unwrap().single_name(), None);
    assert_eq!(parse_words(&["a", "b"]).unwrap().single_name(), None);
    assert!(parse("all,-state:active").unwrap().needs_state());
    assert!(parse_words(&["a", "state:error"]).unwrap().needs_state());
    assert!(!parse("all,-group:x").unwrap().needs_state());
    assert_eq!(parse_words(&["a", "b,c"]).unwrap().to_string(), "a b,c");
}
