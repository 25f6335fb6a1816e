use super::*;

const PIN: &str = "ab:cd:ef:01:23:45:67:89:ab:cd:ef:01:23:45:67:89:ab:cd:ef:01:23:45:67:89:ab:cd:ef:01:23:45:67:89";

/// One node whose `[node.bmc]` has `extra` lines.
fn with_bmc(extra: &str) -> String {
    lab(&[format!(
        "[[node]]\nname = \"n1\"\nmacs = [\"52:54:00:00:00:01\"]\n{BMC}{extra}\n{DEPLOY}{WHOLE}"
    )])
}

fn bmc_of(loaded: &Loaded) -> Bmc {
    assert!(errors(loaded).is_empty(), "{:#?}", loaded.problems);
    loaded.lab.nodes[0].bmc.clone()
}

fn warnings(loaded: &Loaded) -> Vec<String> {
    loaded
        .problems
        .iter()
        .filter(|p| !p.is_error())
        .map(ToString::to_string)
        .collect()
}

#[test]
fn ipmi_with_sol_is_the_default() {
    let bmc = bmc_of(&Fixture::new().load(&with_bmc("")));
    assert_eq!(bmc.protocol, BmcProtocol::Ipmi);
    assert_eq!(bmc.console, ConsoleTransport::Sol);
    assert_eq!((bmc.port, bmc.tls), (623, None));
}

#[test]
fn redfish_defaults_to_port_443_and_the_ssh_console_on_2200() {
    let f = Fixture::new();
    let loaded = f.load(&with_bmc(&format!(
        "protocol = \"redfish\"\nfingerprint = \"{PIN}\"\n"
    )));
    let bmc = bmc_of(&loaded);
    assert_eq!(bmc.protocol, BmcProtocol::Redfish);
    assert_eq!(bmc.console, ConsoleTransport::Ssh);
    assert_eq!((bmc.port, bmc.ssh_port), (443, 2200));
    let Some(BmcTls::Fingerprint(pin)) = bmc.tls else {
        panic!("a pinned fingerprint: {:?}", bmc.tls);
    };
    assert_eq!(pin, PIN.to_ascii_uppercase());
}

#[test]
fn a_redfish_bmc_without_a_way_to_check_its_certificate_is_refused() {
    let loaded = Fixture::new().load(&with_bmc("protocol = \"redfish\"\n"));
    assert_error(
        &loaded,
        "node n1: bmc.ca_file: a Redfish BMC's certificate must be checked",
    );
}

#[test]
fn insecure_is_taken_only_when_written_and_warned_about() {
    let loaded = Fixture::new().load(&with_bmc("protocol = \"redfish\"\ninsecure = true\n"));
    assert_eq!(bmc_of(&loaded).tls, Some(BmcTls::Insecure));
    let warned = warnings(&loaded);
    assert!(
        warned
            .iter()
            .any(|w| w.contains("bmc.insecure") && w.contains("not checked")),
        "{warned:#?}"
    );
}

#[test]
fn a_ca_file_must_be_readable_and_only_one_check_may_be_given() {
    let f = Fixture::new();
    let loaded = f.load(&with_bmc(
        "protocol = \"redfish\"\nca_file = \"missing.pem\"\n",
    ));
    assert_error(&loaded, "node n1: bmc.ca_file:");
    let loaded = f.load(&with_bmc(&format!(
        "protocol = \"redfish\"\nca_file = \"k\"\nfingerprint = \"{PIN}\"\n"
    )));
    assert_error(&loaded, "give only one of ca_file, fingerprint, insecure");
    let loaded = f.load(&with_bmc(
        "protocol = \"redfish\"\nfingerprint = \"12:34\"\n",
    ));
    assert_error(
        &loaded,
        "node n1: bmc.fingerprint: \"12:34\" is not a SHA-256",
    );
}

#[test]
fn consoles_that_cannot_work_with_the_protocol_are_explained() {
    let f = Fixture::new();
    let loaded = f.load(&with_bmc("console = \"websocket\"\n"));
    assert_error(&loaded, "bmc.console: \"websocket\" is bmcweb's /console0");
    let loaded = f.load(&with_bmc(
        "protocol = \"redfish\"\ninsecure = true\nconsole = \"sol\"\n",
    ));
    assert_error(&loaded, "bmc.console: \"sol\" needs IPMI over LAN");
    let loaded = f.load(&with_bmc("console = \"telnet\"\n"));
    assert_error(&loaded, "bmc.console: \"telnet\" is not supported");
    let loaded = f.load(&with_bmc("protocol = \"ssh\"\n"));
    assert_error(&loaded, "bmc.protocol: \"ssh\" is not supported");
}

#[test]
fn ipmi_may_use_the_ssh_console_and_ignores_redfish_settings_with_a_warning() {
    let loaded = Fixture::new().load(&with_bmc(&format!(
        "console = \"ssh\"\nssh_port = 2222\nfingerprint = \"{PIN}\"\n"
    )));
    let bmc = bmc_of(&loaded);
    assert_eq!(
        (bmc.console, bmc.ssh_port, bmc.tls),
        (ConsoleTransport::Ssh, 2222, None)
    );
    let warned = warnings(&loaded);
    assert!(
        warned.iter().any(|w| w.contains("IPMI ignores them")),
        "{warned:#?}"
    );
}

#[test]
fn redfish_lifts_ipmis_name_and_password_limits() {
    let f = Fixture::new();
    let long = "[[node]]\nname = \"n1\"\nmacs = [\"52:54:00:00:00:01\"]\n[node.bmc]\nhost = \"10.0.0.1\"\nusername = \"a-much-longer-user-name\"\npassword_env = \"BMC_PW\"\n";
    let loaded = f.load(&lab(&[format!(
        "{long}protocol = \"redfish\"\ninsecure = true\n{DEPLOY}{WHOLE}"
    )]));
    assert!(errors(&loaded).is_empty(), "{:#?}", loaded.problems);
    let loaded = f.load(&lab(&[format!("{long}{DEPLOY}{WHOLE}")]));
    assert_error(&loaded, "IPMI allows at most 16");
}
