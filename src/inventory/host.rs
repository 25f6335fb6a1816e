//! `bmc.host`: a host name or an IP address, nothing else. The value goes
//! to the resolver and is shown in commands an operator may paste (an
//! `ipmitool -H …` line); one starting with `-` would read as an option.

use std::net::{IpAddr, Ipv6Addr};

/// Why `host` is not a host name or an IP address, if it is not.
///
/// A host name is dot-separated labels of 1–63 letters, digits, `-` and `_`,
/// each starting and ending with a letter or digit (RFC 1123; `_` is kept
/// because /etc/hosts and lab DNS servers often have it), at most 253 bytes,
/// with an optional final dot. An IPv6 address may carry a zone
/// (`fe80::1%eth0`). The port is `bmc.port`, never part of the host.
pub fn check_host(host: &str) -> Result<(), String> {
    if host.parse::<IpAddr>().is_ok() || is_scoped_ipv6(host) {
        return Ok(());
    }
    if host.starts_with('[') && host.contains(']') {
        return Err(format!(
            "{host:?} is not a host name or an IP address: write an IPv6 address without brackets (the port goes in bmc.port)"
        ));
    }
    if let Some((name, port)) = host.rsplit_once(':')
        && !name.contains(':')
        && port.parse::<u16>().is_ok()
        && check_host(name).is_ok()
    {
        return Err(format!(
            "{host:?} is not a host name or an IP address: the port goes in bmc.port"
        ));
    }
    let name = host.strip_suffix('.').unwrap_or(host);
    let labels: Vec<&str> = name.split('.').collect();
    // All digits and dots is an attempt at an IPv4 address, which the
    // resolver would read in its own ways ("10.77.1" is 10.77.0.1).
    if labels.iter().all(|l| l.bytes().all(|b| b.is_ascii_digit())) && !name.is_empty() {
        return Err(format!(
            "{host:?} is not an IPv4 address (four numbers 0-255, such as 10.77.1.11)"
        ));
    }
    if name.is_empty() || host.len() > 253 || !labels.iter().all(|l| is_label(l)) {
        return Err(format!(
            "{host:?} is not a host name or an IP address (such as bmc-01.lab.example or 10.77.1.11)"
        ));
    }
    Ok(())
}

fn is_label(label: &str) -> bool {
    let b = label.as_bytes();
    let inner_ok = |c: &u8| c.is_ascii_alphanumeric() || *c == b'-' || *c == b'_';
    (1..=63).contains(&b.len())
        && b[0].is_ascii_alphanumeric()
        && b[b.len() - 1].is_ascii_alphanumeric()
        && b.iter().all(inner_ok)
}

/// `fe80::1%eth0`: the resolver accepts a link-local address with its zone.
fn is_scoped_ipv6(host: &str) -> bool {
    let Some((addr, zone)) = host.split_once('%') else {
        return false;
    };
    addr.parse::<Ipv6Addr>().is_ok()
        && zone.len() <= 15
        && zone.starts_with(|c: char| c.is_ascii_alphanumeric())
        && zone
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
}
