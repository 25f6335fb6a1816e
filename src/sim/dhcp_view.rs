//! What dnsmasq would offer one of a node's NICs. The virtual lab has no
//! DHCP server, so the virtual host reads the files petitlab keeps in
//! dnsmasq's `--dhcp-hostsdir` (`<mac>,set:<tag>`) and `--dhcp-optsdir`
//! (`tag:<tag>,<code>,"<value>"`) and matches them as dnsmasq does.

use std::path::{Path, PathBuf};

use crate::inventory::{Dhcp, MacAddr};

/// The options one NIC would get.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Offer {
    /// Index of the NIC among the node's MACs (`eth<nic>`).
    pub nic: usize,
    pub mac: MacAddr,
    /// The tags its host line sets.
    pub tags: Vec<String>,
    /// (option code, value), one per code.
    pub options: Vec<(u16, String)>,
}

impl Offer {
    pub fn option(&self, code: u16) -> Option<&str> {
        self.options
            .iter()
            .find(|(c, _)| *c == code)
            .map(|(_, v)| v.as_str())
    }
}

/// The offer for the first of `macs` that a host line tags; `None` when
/// DHCP is not dnsmasq or no MAC is tagged.
pub fn offer(dhcp: &Dhcp, macs: &[MacAddr]) -> Option<Offer> {
    let Dhcp::Dnsmasq { hostsdir, optsdir } = dhcp else {
        return None;
    };
    let hosts: Vec<HostLine> = lines(hostsdir)
        .iter()
        .filter_map(|l| HostLine::parse(l))
        .collect();
    let (nic, mac, tags) = macs.iter().enumerate().find_map(|(nic, mac)| {
        // The newest line for a MAC wins, as when dnsmasq reloads a file.
        let line = hosts.iter().rev().find(|h| h.matches(mac))?;
        (!line.tags.is_empty()).then(|| (nic, *mac, line.tags.clone()))
    })?;
    let mut options: Vec<(u16, String, bool)> = Vec::new();
    for line in lines(optsdir) {
        let Some(opt) = OptLine::parse(&line) else {
            continue;
        };
        if !opt.applies_to(&tags) {
            continue;
        }
        let tagged = !opt.conditions.is_empty();
        match options.iter_mut().find(|(code, _, _)| *code == opt.code) {
            // A tagged option beats an untagged one; otherwise the later wins.
            Some(slot) if tagged || !slot.2 => *slot = (opt.code, opt.value, tagged),
            Some(_) => {}
            None => options.push((opt.code, opt.value, tagged)),
        }
    }
    Some(Offer {
        nic,
        mac,
        tags,
        options: options.into_iter().map(|(c, v, _)| (c, v)).collect(),
    })
}

/// Every non-comment line of the directory's files, oldest file first.
/// dnsmasq skips dot files (temp files), `*~` and `#*#` (editor backups).
fn lines(dir: &Path) -> Vec<String> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut files: Vec<(std::time::SystemTime, PathBuf)> = entries
        .filter_map(Result::ok)
        .filter(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            !(name.starts_with('.')
                || name.ends_with('~')
                || (name.starts_with('#') && name.ends_with('#')))
        })
        .filter_map(|e| {
            let meta = e.metadata().ok()?;
            meta.is_file()
                .then(|| (meta.modified().unwrap_or(std::time::UNIX_EPOCH), e.path()))
        })
        .collect();
    files.sort();
    files
        .iter()
        .filter_map(|(_, path)| std::fs::read(path).ok())
        .flat_map(|bytes| {
            String::from_utf8_lossy(&bytes)
                .lines()
                .map(str::trim)
                .filter(|l| !l.is_empty() && !l.starts_with('#'))
                .map(str::to_string)
                .collect::<Vec<_>>()
        })
        .collect()
}

/// Splits on commas outside double quotes, then unquotes each field.
fn fields(line: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut field = String::new();
    let (mut quoted, mut escaped) = (false, false);
    for c in line.chars() {
        match c {
            _ if escaped => {
                field.push(match c {
                    'n' => '\n',
                    't' => '\t',
                    'r' => '\r',
                    'e' => '\x1b',
                    'b' => '\x08',
                    other => other,
                });
                escaped = false;
            }
            '\\' if quoted => escaped = true,
            '"' => quoted = !quoted,
            ',' if !quoted => out.push(std::mem::take(&mut field).trim().to_string()),
            _ => field.push(c),
        }
    }
    out.push(field.trim().to_string());
    out
}

/// One `--dhcp-host` line: its MAC patterns and the tags it sets.
struct HostLine {
    macs: Vec<[Option<u8>; 6]>,
    tags: Vec<String>,
}

impl HostLine {
    fn parse(line: &str) -> Option<HostLine> {
        let mut host = HostLine {
            macs: Vec::new(),
            tags: Vec::new(),
        };
        for field in fields(line) {
            if let Some(tag) = field.strip_prefix("set:").or(field.strip_prefix("net:")) {
                host.tags.push(tag.to_string());
            } else if let Some(mac) = mac_pattern(&field) {
                host.macs.push(mac);
            }
        }
        (!host.macs.is_empty()).then_some(host)
    }

    fn matches(&self, mac: &MacAddr) -> bool {
        self.macs.iter().any(|pattern| {
            pattern
                .iter()
                .zip(mac.0)
                .all(|(want, byte)| want.is_none_or(|w| w == byte))
        })
    }
}

/// `aa:bb:cc:dd:ee:ff` (or dashes), `*` for any byte.
fn mac_pattern(text: &str) -> Option<[Option<u8>; 6]> {
    let parts: Vec<&str> = text.split([':', '-']).collect();
    if parts.len() != 6 {
        return None;
    }
    let mut out = [None; 6];
    for (slot, part) in out.iter_mut().zip(parts) {
        *slot = match part {
            "*" => None,
            hex if hex.len() == 2 => Some(u8::from_str_radix(hex, 16).ok()?),
            _ => return None,
        };
    }
    Some(out)
}

/// One `--dhcp-option` line.
struct OptLine {
    /// (tag, negated): `tag:x` / `tag:!x`.
    conditions: Vec<(String, bool)>,
    code: u16,
    value: String,
}

impl OptLine {
    fn parse(line: &str) -> Option<OptLine> {
        let fields = fields(line);
        let mut conditions = Vec::new();
        let mut rest = fields.iter();
        let code = loop {
            let field = rest.next()?;
            if let Some(tag) = field.strip_prefix("tag:").or(field.strip_prefix("net:")) {
                match tag.strip_prefix('!') {
                    Some(tag) => conditions.push((tag.to_string(), true)),
                    None => conditions.push((tag.to_string(), false)),
                }
            } else if field.starts_with("encap:")
                || field.starts_with("vi-encap:")
                || field.starts_with("vendor:")
                || field.starts_with("option6:")
            {
                return None; // not a plain DHCPv4 option
            } else {
                let number = field.strip_prefix("option:").unwrap_or(field);
                break number.parse::<u16>().ok()?;
            }
        };
        let value: Vec<&str> = rest.map(String::as_str).collect();
        Some(OptLine {
            conditions,
            code,
            value: value.join(","),
        })
    }

    fn applies_to(&self, tags: &[String]) -> bool {
        self.conditions
            .iter()
            .all(|(tag, negated)| tags.contains(tag) != *negated)
    }
}

#[cfg(test)]
#[path = "dhcp_view_tests.rs"]
mod tests;
