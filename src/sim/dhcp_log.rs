//! The lines dnsmasq 2.90 writes with `--log-dhcp --log-facility=FILE` for
//! one DHCP exchange, so the virtual lab (which has no DHCP server) leaves
//! the log petitlab's timeline follows, as a real lab does. Pure formatting
//! here; the virtual host appends the lines ([`append`]).

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::calendar::utc_fields;
use crate::inventory::MacAddr;

/// Where one virtual host's DHCP exchanges are logged, and the address
/// dnsmasq gives it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DhcpLog {
    pub path: PathBuf,
    pub ip: Ipv4Addr,
}

impl DhcpLog {
    /// The node's `ipv4` from lab.toml, else 10.77.x.y from its index.
    pub fn new(path: PathBuf, index: usize, ipv4: Option<Ipv4Addr>) -> DhcpLog {
        DhcpLog {
            path,
            ip: ipv4.unwrap_or_else(|| derived_ip(index)),
        }
    }

    /// The DHCP server's address: `.1` of the node's /24 (`.254` when the
    /// node is `.1`).
    pub fn server(&self) -> Ipv4Addr {
        let [a, b, c, d] = self.ip.octets();
        Ipv4Addr::new(a, b, c, if d == 1 { 254 } else { 1 })
    }
}

/// 10.77.0.10 for the first node: .10 to .209 in each /24, never .0, .1
/// or .255.
pub fn derived_ip(index: usize) -> Ipv4Addr {
    let third = (index / 200).min(255) as u8;
    Ipv4Addr::new(10, 77, third, (index % 200 + 10) as u8)
}

/// One DISCOVER / OFFER / REQUEST / ACK exchange as dnsmasq sees it.
#[derive(Debug, Clone)]
pub struct Exchange<'a> {
    /// The client's transaction id, printed first on every line.
    pub xid: u32,
    /// dnsmasq's interface (also a tag it sets).
    pub interface: &'a str,
    pub mac: MacAddr,
    pub ip: Ipv4Addr,
    pub server: Ipv4Addr,
    /// The tags the client's hostsdir line sets.
    pub tags: &'a [String],
    /// A hostsdir line names the MAC: dnsmasq adds the tag `known`.
    pub known: bool,
    /// Options sent because the client asked for them (209, 210), in the
    /// order dnsmasq sends them.
    pub sent: &'a [(u16, String)],
}

/// The netmask dnsmasq sends: the virtual lab's nets are /24s.
const NETMASK: Ipv4Addr = Ipv4Addr::new(255, 255, 255, 0);

/// What petitboot's udhcpc asks for (`-O 209 -O 210` on top of busybox's
/// defaults), as dnsmasq logs it: names it knows, then bare numbers.
const REQUESTED: [&str; 2] = [
    "1:netmask, 3:router, 6:dns-server, 12:hostname, ",
    "209, 210",
];

/// The exchange's messages, without the date and `dnsmasq-dhcp[PID]: `
/// prefix ([`prefix`]). Lines end in a space where dnsmasq's do.
pub fn exchange(x: &Exchange) -> Vec<String> {
    let id = x.xid;
    let (iface, mac, ip) = (x.interface, x.mac, x.ip);
    let mut tags: Vec<&str> = x.tags.iter().map(String::as_str).collect();
    if x.known {
        tags.push("known");
    }
    tags.push(iface);
    let tags = format!("{id} tags: {}", tags.join(", "));
    let sent = |out: &mut Vec<String>| {
        for (code, value) in x.sent {
            out.push(sent_line(id, *code, value.as_bytes()));
        }
    };
    let mut out = vec![
        format!("{id} DHCPDISCOVER({iface}) {mac} "),
        tags.clone(),
        format!("{id} DHCPOFFER({iface}) {ip} {mac} "),
        format!("{id} requested options: {}", REQUESTED[0]),
        format!("{id} requested options: {}", REQUESTED[1]),
        format!("{id} next server: {}", x.server),
        format!("{id} sent size:  1 option: 53 message-type  2"),
        format!(
            "{id} sent size:  4 option: 54 server-identifier  {}",
            x.server
        ),
        format!("{id} sent size:  4 option:  1 netmask  {NETMASK}"),
    ];
    sent(&mut out);
    out.extend([
        format!("{id} DHCPREQUEST({iface}) {ip} {mac} "),
        tags,
        format!("{id} DHCPACK({iface}) {ip} {mac} "),
        format!("{id} requested options: {}", REQUESTED[1]),
        format!("{id} sent size:  1 option: 53 message-type  5"),
    ]);
    sent(&mut out);
    out
}

/// `sent size: 30 option:209   68:74:…` for an option dnsmasq has no name
/// for: `%3d` size and code, an empty name, then its bytes in hex.
pub fn sent_line(xid: u32, code: u16, value: &[u8]) -> String {
    format!(
        "{xid} sent size:{:3} option:{code:3}   {}",
        value.len(),
        hex(value)
    )
}

/// dnsmasq's hex rendering of an option: bytes joined by `:`, cut after 14
/// with `...`.
pub fn hex(value: &[u8]) -> String {
    let shown: Vec<String> = value.iter().take(14).map(|b| format!("{b:02x}")).collect();
    let cut = if value.len() > 14 { "..." } else { "" };
    format!("{}{cut}", shown.join(":"))
}

const MONTHS: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];

/// `Dec  5 13:48:03 dnsmasq-dhcp[6019]: ` (strftime `%b %e %H:%M:%S`, UTC).
pub fn prefix(unix_secs: i64, pid: u32) -> String {
    let (_, month, day, hour, minute, second) = utc_fields(unix_secs);
    let month = MONTHS[(month.clamp(1, 12) - 1) as usize];
    format!("{month} {day:2} {hour:02}:{minute:02}:{second:02} dnsmasq-dhcp[{pid}]: ")
}

/// The lines as the file holds them: each prefixed, each ending in `\n`.
pub fn render(unix_secs: i64, pid: u32, messages: &[String]) -> String {
    let prefix = prefix(unix_secs, pid);
    messages.iter().map(|m| format!("{prefix}{m}\n")).collect()
}

/// How long an append may take before the boot goes on without it.
const APPEND_TIMEOUT: Duration = Duration::from_secs(1);

/// Appends `text` to the log in one write. Failures are logged and
/// otherwise ignored: the log is a side show, the boot goes on.
pub async fn append(path: &Path, text: String) {
    let target = path.to_path_buf();
    let write = tokio::task::spawn_blocking(move || {
        use std::io::Write;
        let mut file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&target)?;
        file.write_all(text.as_bytes())
    });
    match tokio::time::timeout(APPEND_TIMEOUT, write).await {
        Ok(Ok(Ok(()))) => {}
        Ok(Ok(Err(e))) => {
            tracing::warn!(log = %path.display(), error = %e, "appending to the simulated dnsmasq log")
        }
        Ok(Err(e)) => {
            tracing::warn!(log = %path.display(), error = %e, "appending to the simulated dnsmasq log")
        }
        Err(_) => tracing::warn!(
            log = %path.display(),
            "appending to the simulated dnsmasq log took over 1 s; the boot goes on"
        ),
    }
}

#[cfg(test)]
#[path = "dhcp_log_tests.rs"]
mod tests;
