//! What can go wrong talking Redfish to a BMC, each cause named (which URL,
//! what status, what the BMC said, what it allows) so an admin can act.

use serde_json::Value;

#[derive(Debug, thiserror::Error)]
pub enum RedfishError {
    #[error("{url}: 401 Unauthorized: wrong user name or password")]
    Unauthorized { url: String },
    #[error("{url}: 403 Forbidden: the account lacks the privilege for this")]
    Forbidden { url: String },
    #[error("TLS: {0}")]
    Tls(String),
    #[error("{what} is not supported here (the BMC allows: {})", list(.allowed))]
    Unsupported { what: String, allowed: Vec<String> },
    #[error("{url}: no complete answer within {secs:.1} s")]
    Timeout { url: String, secs: f64 },
    #[error("{url} is unreachable: {why}")]
    Unreachable { url: String, why: String },
    #[error("{url}: HTTP {status}{}", if .message.is_empty() { String::new() } else { format!(": {}", .message) })]
    Http {
        url: String,
        status: u16,
        message: String,
    },
    #[error("unexpected answer from the BMC: {0}")]
    Protocol(String),
}

fn list(items: &[String]) -> String {
    if items.is_empty() {
        "nothing advertised".into()
    } else {
        items.join(", ")
    }
}

impl RedfishError {
    /// A short stable name for events and the CLI.
    pub fn kind(&self) -> &'static str {
        match self {
            RedfishError::Unauthorized { .. } => "auth",
            RedfishError::Forbidden { .. } => "forbidden",
            RedfishError::Tls(_) => "tls",
            RedfishError::Unsupported { .. } => "unsupported",
            RedfishError::Timeout { .. } => "timeout",
            RedfishError::Unreachable { .. } => "unreachable",
            RedfishError::Http { .. } => "http",
            RedfishError::Protocol(_) => "protocol",
        }
    }

    /// Whether trying again later may succeed without anyone changing
    /// anything (the BMC busy or rebooting, the network down a moment).
    pub fn is_transient(&self) -> bool {
        match self {
            RedfishError::Timeout { .. } | RedfishError::Unreachable { .. } => true,
            RedfishError::Http { status, .. } => {
                matches!(status, 408 | 429 | 500 | 502 | 503 | 504)
            }
            _ => false,
        }
    }
}

const MAX_MESSAGE_CHARS: usize = 400;

/// The human part of a Redfish error body: the `Message`s of
/// `error.@Message.ExtendedInfo` (bmcweb), else `error.message` (sushy-tools
/// and the spec's one-line form), else the start of whatever text came.
/// Bounded and made safe to print.
pub fn error_message(body: &[u8]) -> String {
    let text = match serde_json::from_slice::<Value>(body) {
        Ok(v) => message_from_json(&v).unwrap_or_default(),
        Err(_) => String::from_utf8_lossy(body).trim().to_string(),
    };
    bound(&text)
}

fn message_from_json(v: &Value) -> Option<String> {
    let err = v.get("error")?;
    let extended: Vec<&str> = err
        .get("@Message.ExtendedInfo")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|m| m.get("Message").and_then(Value::as_str))
        .filter(|m| !m.trim().is_empty())
        .collect();
    if !extended.is_empty() {
        return Some(extended.join("; "));
    }
    err.get("message")
        .and_then(Value::as_str)
        .map(str::to_string)
}

/// At most MAX_MESSAGE_CHARS characters, control characters escaped.
pub(crate) fn bound(text: &str) -> String {
    let mut out: String = text.chars().take(MAX_MESSAGE_CHARS).collect();
    if text.chars().nth(MAX_MESSAGE_CHARS).is_some() {
        out.push('…');
    }
    crate::text::display_safe(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bmcweb_extended_info_messages() {
        // bmcweb's shape for a bad ResetType.
        let body = br##"{
          "error": {
            "@Message.ExtendedInfo": [
              {
                "@odata.type": "#Message.v1_1_1.Message",
                "Message": "The parameter ResetType for the action Reset is not supported on the target resource.",
                "MessageArgs": ["ResetType", "Reset"],
                "MessageId": "Base.1.13.0.ActionParameterNotSupported",
                "MessageSeverity": "Warning",
                "Resolution": "Remove the parameter supplied and resubmit the request if the operation failed."
              }
            ],
            "code": "Base.1.13.0.ActionParameterNotSupported",
            "message": "The parameter ResetType for the action Reset is not supported on the target resource."
          }
        }"##;
        assert_eq!(
            error_message(body),
            "The parameter ResetType for the action Reset is not supported on the target resource."
        );
    }

    #[test]
    fn sushy_tools_message_without_extended_text() {
        let body = br#"{"error":{"code":"Base.1.0.GeneralError","message":"Power state Nmi is not supported","@Message.ExtendedInfo":[{"@odata.type":"/redfish/v1/$metadata#Message.1.0.0.Message","MessageId":"Base.1.0.GeneralError"}]}}"#;
        assert_eq!(error_message(body), "Power state Nmi is not supported");
    }

    #[test]
    fn non_json_bodies_are_bounded_and_escaped() {
        assert_eq!(error_message(b"  <html>nope</html>\n"), "<html>nope</html>");
        let long = "x".repeat(5000);
        let m = error_message(long.as_bytes());
        assert_eq!(m.chars().count(), MAX_MESSAGE_CHARS + 1);
        let m = error_message(b"evil \x1b]0;title\x07 text");
        assert!(!m.contains('\x1b') && !m.contains('\x07'), "{m:?}");
        assert_eq!(error_message(b"{}"), "");
    }

    #[test]
    fn kinds_and_transience() {
        let http = |status| RedfishError::Http {
            url: "u".into(),
            status,
            message: String::new(),
        };
        assert!(http(503).is_transient());
        assert!(!http(501).is_transient());
        assert!(!http(400).is_transient());
        assert_eq!(http(400).kind(), "http");
        assert_eq!(http(400).to_string(), "u: HTTP 400");
        let unsupported = RedfishError::Unsupported {
            what: "reset PowerCycle".into(),
            allowed: vec!["On".into(), "ForceOff".into()],
        };
        assert_eq!(
            unsupported.to_string(),
            "reset PowerCycle is not supported here (the BMC allows: On, ForceOff)"
        );
        assert!(!unsupported.is_transient());
        assert!(
            RedfishError::Timeout {
                url: "u".into(),
                secs: 1.0
            }
            .is_transient()
        );
        assert_eq!(
            RedfishError::Unauthorized { url: "u".into() }.kind(),
            "auth"
        );
    }
}
