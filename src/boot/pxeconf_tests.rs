//! One test per petitboot parser fact in DESIGN.md ("Petitboot facts").

use super::*;

const GOOD: &str = "default deploy\n\
label deploy\n\
kernel http://10.77.0.1:8080/u/deploy_kernel\n\
initrd http://10.77.0.1:8080/u/deploy_ramdisk\n\
append console=hvc0\n\
ipappend 2\n";

fn messages(text: &str) -> Vec<String> {
    lint(text).iter().map(ToString::to_string).collect()
}

fn assert_refused(text: &str, needle: &str) {
    let found = messages(text);
    assert!(
        found.iter().any(|m| m.contains(needle)),
        "expected a lint error containing {needle:?} for:\n{text}\ngot: {found:#?}"
    );
}

#[test]
fn a_well_formed_config_passes_and_parses() {
    assert_eq!(lint(GOOD), vec![]);
    let config = parse(GOOD);
    let label = config.default_label().expect("default label");
    assert_eq!(
        label.kernel.as_deref(),
        Some("http://10.77.0.1:8080/u/deploy_kernel")
    );
    assert_eq!(
        label.initrd.as_deref(),
        Some("http://10.77.0.1:8080/u/deploy_ramdisk")
    );
    assert_eq!(label.append.as_deref(), Some("console=hvc0"));
    assert_eq!(label.ipappend.as_deref(), Some("2"));
}

// Fact: keywords are case-insensitive.
#[test]
fn keywords_are_case_insensitive() {
    let upper = GOOD
        .to_uppercase()
        .replace("HTTP://10.77.0.1:8080/U/", "http://h/u/");
    assert_eq!(lint(&upper), vec![]);
    let mixed = "Default x\nLaBeL x\nKeRnEl http://h/k\n";
    assert_eq!(lint(mixed), vec![]);
    assert_eq!(
        parse(mixed).default_label().unwrap().kernel.as_deref(),
        Some("http://h/k")
    );
}

// Fact: only DEFAULT, LABEL, KERNEL, INITRD, APPEND, FDT/DTB, IPAPPEND are used;
// LINUX, MENU ..., TIMEOUT, INCLUDE, LOCALBOOT are silently ignored.
#[test]
fn ignored_keywords_are_refused() {
    for line in [
        "timeout 50",
        "menu title Lab",
        "include other.cfg",
        "localboot 0",
        "prompt 1",
    ] {
        let text = format!("{line}\n{GOOD}");
        assert_refused(&text, "petitboot ignores the keyword");
    }
    // FDT and DTB are understood.
    assert_eq!(lint(&format!("{GOOD}fdt http://h/a.dtb\n")), vec![]);
    assert_eq!(lint(&format!("{GOOD}dtb http://h/a.dtb\n")), vec![]);
}

// Fact: a label with `linux` instead of `kernel` is dropped.
#[test]
fn linux_keyword_is_refused_and_its_label_dropped() {
    let text = "default x\nlabel x\nLINUX http://h/vmlinux\n";
    assert_refused(text, "write KERNEL");
    assert_refused(text, "LABEL x has no KERNEL");
    assert!(parse(text).labels.is_empty(), "petitboot drops the label");
}

// Fact: `DEFAULT x` only marks LABELs that come after it.
#[test]
fn default_after_label_is_refused() {
    let text = "label x\nkernel http://h/k\ndefault x\n";
    assert_refused(text, "DEFAULT after a LABEL");
    assert!(parse(text).default_after_label);
    assert_refused("label x\nkernel http://h/k\n", "no DEFAULT");
    assert_refused(
        "default y\nlabel x\nkernel http://h/k\n",
        "DEFAULT y names no LABEL",
    );
}

// Fact: KERNEL takes the whole rest of the line as the URL.
#[test]
fn kernel_arguments_on_the_kernel_line_are_refused() {
    let text = GOOD.replace("deploy_kernel", "deploy_kernel console=hvc0");
    assert_refused(&text, "kernel arguments belong in APPEND");
    assert_eq!(
        parse(&text).default_label().unwrap().kernel.as_deref(),
        Some("http://10.77.0.1:8080/u/deploy_kernel console=hvc0"),
        "petitboot would fetch this whole string as the kernel URL"
    );
}

// Fact: any `initrd=` substring inside APPEND replaces the initrd.
#[test]
fn initrd_in_append_is_refused_even_inside_a_word() {
    for append in ["initrd=other.img", "noinitrd=1 quiet", "INITRD=x"] {
        let text = GOOD.replace("console=hvc0", append);
        assert_refused(&text, "APPEND contains \"initrd=\"");
    }
}

// Fact: a value's leading/trailing quote characters are stripped.
#[test]
fn leading_or_trailing_quotes_are_refused() {
    let text = GOOD.replace("console=hvc0", "\"console=hvc0 root=LABEL='x y'\"");
    assert_refused(&text, "quote");
    // What petitboot does with it: strips both ends.
    let label = parse(&text).default_label().cloned().unwrap();
    assert_eq!(
        label.append.as_deref(),
        Some("console=hvc0 root=LABEL='x y")
    );
}

// Fact: an inline `#` is not a comment (a leading one is).
#[test]
fn inline_hash_is_refused_but_comment_lines_are_fine() {
    let text = GOOD.replace("console=hvc0", "console=hvc0 # serial");
    assert_refused(&text, "'#' inside the APPEND value is not a comment");
    assert_eq!(
        parse(&text).default_label().unwrap().append.as_deref(),
        Some("console=hvc0 # serial")
    );
    let commented = format!("# written by petitlab\n   # indented comment\n{GOOD}");
    assert_eq!(lint(&commented), vec![]);
}

// Fact: paths without `://` are relative to the config file's directory, even
// with a leading `/`: kernel and initrd must be absolute URLs.
#[test]
fn relative_kernel_and_initrd_paths_are_refused() {
    for (from, to) in [
        ("http://10.77.0.1:8080/u/deploy_kernel", "/u/deploy_kernel"),
        ("http://10.77.0.1:8080/u/deploy_ramdisk", "deploy_ramdisk"),
    ] {
        let text = GOOD.replace(from, to);
        assert_refused(&text, "is relative");
    }
}

// Fact: `IPAPPEND 2` appends BOOTIF; `${mac}`-style variables are not expanded.
#[test]
fn variables_are_refused_and_only_ipappend_2_is_accepted() {
    let text = GOOD.replace("console=hvc0", "BOOTIF=01-${mac}");
    assert_refused(&text, "does not expand variables");
    assert_refused(&GOOD.replace("ipappend 2", "ipappend 1"), "only IPAPPEND 2");
}

#[test]
fn structural_mistakes_are_refused() {
    assert_refused("", "no LABEL");
    assert_refused(
        "kernel http://h/k\ndefault x\nlabel x\nkernel http://h/k\n",
        "before any LABEL",
    );
    assert_refused(
        "default x\nlabel x\nkernel http://h/a\nkernel http://h/b\n",
        "2 KERNEL lines",
    );
    assert_refused(&format!("default x\n{GOOD}"), "second DEFAULT");
    assert_refused(&format!("{GOOD}kernel\n"), "has no value");
}

#[test]
fn tabs_and_indentation_parse_like_petitboot() {
    let text = "default x\nlabel x\n\tkernel\thttp://h/k\n    append  a=1  \n";
    assert_eq!(lint(text), vec![]);
    let label = parse(text).default_label().cloned().unwrap();
    assert_eq!(label.kernel.as_deref(), Some("http://h/k"));
    assert_eq!(label.append.as_deref(), Some("a=1"));
}
