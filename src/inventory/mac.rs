//! MAC addresses as petitlab writes them: lower-case, colon-separated.

use std::fmt;
use std::str::FromStr;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct MacAddr(pub [u8; 6]);

impl MacAddr {
    /// `01-aa-bb-cc-dd-ee-ff`: the pxelinux.cfg file name petitboot tries
    /// first (ARP hardware type 1, lower-case, dashes).
    pub fn pxelinux_name(&self) -> String {
        let hex: Vec<String> = self.0.iter().map(|b| format!("{b:02x}")).collect();
        format!("01-{}", hex.join("-"))
    }
}

impl fmt::Display for MacAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let [a, b, c, d, e, g] = self.0;
        write!(f, "{a:02x}:{b:02x}:{c:02x}:{d:02x}:{e:02x}:{g:02x}")
    }
}

impl FromStr for MacAddr {
    type Err = String;

    /// Accepts `52:54:00:12:34:56` or `52-54-00-12-34-56`, any case; one
    /// separator throughout, since a mix is most likely a mistyped address.
    fn from_str(s: &str) -> Result<Self, String> {
        let expected = "expected six hex pairs like 52:54:00:12:34:56";
        if s.contains(':') && s.contains('-') {
            return Err(format!(
                "{s:?} mixes ':' and '-' (use one separator throughout, like 52:54:00:12:34:56)"
            ));
        }
        let parts: Vec<&str> = s.split([':', '-']).collect();
        if parts.len() != 6 || parts.iter().any(|p| p.len() != 2) {
            return Err(format!("{s:?} is not a MAC address ({expected})"));
        }
        let mut bytes = [0u8; 6];
        for (byte, part) in bytes.iter_mut().zip(&parts) {
            *byte = u8::from_str_radix(part, 16)
                .map_err(|_| format!("{s:?} is not a MAC address ({expected})"))?;
        }
        if bytes == [0; 6] {
            return Err(format!("{s:?} is the all-zero address, not a NIC's"));
        }
        if bytes[0] & 1 == 1 {
            return Err(format!("{s:?} is a multicast address, not a NIC's"));
        }
        Ok(MacAddr(bytes))
    }
}

impl serde::Serialize for MacAddr {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_normalises() {
        let mac: MacAddr = "52-54-00-AB-cd-0F".parse().unwrap();
        assert_eq!(mac.to_string(), "52:54:00:ab:cd:0f");
        assert_eq!(mac.pxelinux_name(), "01-52-54-00-ab-cd-0f");
    }

    #[test]
    fn rejects_bad_addresses_with_reason() {
        for (bad, why) in [
            ("52:54:00:12:34", "not a MAC"),
            ("52:54:00:12:34:zz", "not a MAC"),
            ("525400123456", "not a MAC"),
            ("70:e2-84:14:00:01", "mixes ':' and '-'"),
            ("00:00:00:00:00:00", "all-zero"),
            ("01:00:5e:00:00:01", "multicast"),
        ] {
            let err = bad.parse::<MacAddr>().unwrap_err();
            assert!(err.contains(why), "{bad}: {err}");
        }
    }
}
