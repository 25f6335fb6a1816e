//! Links from a BMC's JSON (`@odata.id`, action targets, `Location`) turned
//! into URLs we are willing to request: the BMC's own origin, under
//! `/redfish/v1`, no dot segments (plain or percent-encoded), nothing that
//! could make the request line say something else.

use super::error::RedfishError;

const MAX_LINK_LEN: usize = 2048;

/// "https://host:port" without a trailing slash, the origin every link must
/// stay on.
pub fn origin(base_url: &str) -> Result<String, RedfishError> {
    let trimmed = base_url.trim_end_matches('/');
    let rest = trimmed
        .strip_prefix("https://")
        .or_else(|| trimmed.strip_prefix("http://"))
        .ok_or_else(|| {
            RedfishError::Protocol(format!(
                "base URL {:?} must start with https:// (or http://)",
                crate::text::display_safe(base_url)
            ))
        })?;
    if rest.is_empty() || rest.contains(['/', '?', '#', '@']) || !printable(rest) {
        return Err(RedfishError::Protocol(format!(
            "base URL {:?} must be just scheme://host[:port]",
            crate::text::display_safe(base_url)
        )));
    }
    Ok(trimmed.to_string())
}

/// The absolute URL for `link` (a path, or an absolute URL on `origin`),
/// with any `#fragment` dropped, or why it is refused.
pub fn resolve(origin: &str, link: &str) -> Result<String, RedfishError> {
    Ok(format!("{origin}{}", checked_path(origin, link)?))
}

/// The path (and query) of `link`, checked.
pub fn checked_path(origin: &str, link: &str) -> Result<String, RedfishError> {
    let refuse = |why: &str| {
        RedfishError::Protocol(format!(
            "the BMC linked to {:?}, which is {why}",
            super::error::bound(link)
        ))
    };
    if link.len() > MAX_LINK_LEN {
        return Err(refuse("too long"));
    }
    let link = link.split('#').next().unwrap_or_default();
    let path = if link.starts_with('/') {
        link
    } else if let Some(rest) = strip_prefix_ignore_case(link, origin) {
        if !rest.starts_with('/') {
            return Err(refuse("not on this BMC"));
        }
        rest
    } else {
        return Err(refuse("not on this BMC"));
    };
    if !printable(path) {
        return Err(refuse("not a plain URL path"));
    }
    let (only_path, _query) = path.split_once('?').unwrap_or((path, ""));
    if only_path != "/redfish/v1"
        && only_path != "/redfish/v1/"
        && !only_path.starts_with("/redfish/v1/")
    {
        return Err(refuse("outside /redfish/v1"));
    }
    for segment in only_path.split('/').skip(1) {
        let decoded = percent_encoding::percent_decode_str(segment).decode_utf8_lossy();
        if decoded == "." || decoded == ".." || decoded.contains(['/', '\\']) {
            return Err(refuse("escaping /redfish/v1"));
        }
    }
    Ok(path.to_string())
}

fn strip_prefix_ignore_case<'a>(text: &'a str, prefix: &str) -> Option<&'a str> {
    let head = text.get(..prefix.len())?;
    head.eq_ignore_ascii_case(prefix)
        .then(|| &text[prefix.len()..])
}

/// Visible ASCII only: no spaces, controls or non-ASCII that a server
/// might read differently.
fn printable(s: &str) -> bool {
    s.bytes().all(|b| b.is_ascii_graphic())
}

#[cfg(test)]
mod tests {
    use super::*;

    const O: &str = "https://127.0.0.1:8443";

    #[test]
    fn origins() {
        assert_eq!(origin("https://bmc:443/").unwrap(), "https://bmc:443");
        assert_eq!(origin("https://[::1]:8443").unwrap(), "https://[::1]:8443");
        for bad in [
            "bmc:443",
            "ftp://bmc",
            "https://",
            "https://bmc/redfish",
            "https://user@bmc",
            "https://bm c",
        ] {
            assert!(origin(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn accepted_links() {
        assert_eq!(
            resolve(O, "/redfish/v1/Systems/system").unwrap(),
            "https://127.0.0.1:8443/redfish/v1/Systems/system"
        );
        assert_eq!(
            resolve(O, "/redfish/v1/Chassis/c/Thermal#/Temperatures/0").unwrap(),
            "https://127.0.0.1:8443/redfish/v1/Chassis/c/Thermal"
        );
        assert_eq!(
            resolve(
                O,
                "/redfish/v1/Systems/system/LogServices/EventLog/Entries?$skip=1000"
            )
            .unwrap(),
            "https://127.0.0.1:8443/redfish/v1/Systems/system/LogServices/EventLog/Entries?$skip=1000"
        );
        assert_eq!(
            resolve(
                O,
                "HTTPS://127.0.0.1:8443/redfish/v1/SessionService/Sessions/abc"
            )
            .unwrap(),
            "https://127.0.0.1:8443/redfish/v1/SessionService/Sessions/abc"
        );
        assert!(resolve(O, "/redfish/v1/").is_ok());
        assert!(resolve(O, "/redfish/v1/Systems/a%20b").is_ok());
    }

    #[test]
    fn refused_links() {
        for bad in [
            "/redfish/v1/../../etc/passwd",
            "/redfish/v1/Systems/%2e%2e/%2E%2E/x",
            "/redfish/v1/Systems/a%2Fb",
            "/redfish/v1/Systems/a%5cb",
            "/redfish/v10/x",
            "/redfishx",
            "/other",
            "https://evil.example/redfish/v1/Systems",
            "https://127.0.0.1:8443.evil/redfish/v1",
            "//evil.example/redfish/v1",
            "redfish/v1/Systems",
            "/redfish/v1/Systems/a b",
            "/redfish/v1/Systems/a\r\nHost: x",
            "/redfish/v1/Systems/é",
        ] {
            assert!(resolve(O, bad).is_err(), "{bad:?} accepted");
        }
        assert!(resolve(O, &format!("/redfish/v1/{}", "a".repeat(3000))).is_err());
    }
}
