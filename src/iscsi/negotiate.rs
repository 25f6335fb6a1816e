//! Login-time text negotiation (RFC 7143 §6.2, §13), free of I/O: what the
//! initiator offers, and how the target's answers (and its own offers)
//! become the session's parameters.

/// The largest data segment this initiator accepts per PDU.
pub const OUR_MAX_RECV_SEGMENT: u32 = 262_144;
/// The burst lengths we offer; the target's (smaller) answers win.
pub const OUR_MAX_BURST: u32 = 16_776_192;
pub const OUR_FIRST_BURST: u32 = 262_144;

/// The operational parameters in force after login.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Negotiated {
    /// The target's MaxRecvDataSegmentLength: the largest data segment we
    /// may send it (8192 unless it declares otherwise).
    pub max_send_segment: u32,
    /// Ours, declared to the target.
    pub max_recv_segment: u32,
    pub max_burst: u32,
    pub first_burst: u32,
    pub initial_r2t: bool,
    pub immediate_data: bool,
    pub max_outstanding_r2t: u32,
    pub error_recovery_level: u32,
}

impl Default for Negotiated {
    /// The RFC 7143 defaults, which hold for keys the target does not answer.
    fn default() -> Negotiated {
        Negotiated {
            max_send_segment: 8192,
            max_recv_segment: OUR_MAX_RECV_SEGMENT,
            max_burst: 262_144,
            first_burst: 65_536,
            initial_r2t: true,
            immediate_data: true,
            max_outstanding_r2t: 1,
            error_recovery_level: 0,
        }
    }
}

/// Keys of the security stage (§13.14: AuthMethod=None, no CHAP).
pub fn security_offer(initiator: &str, target: &str) -> Vec<(String, String)> {
    [
        ("InitiatorName", initiator),
        ("SessionType", "Normal"),
        ("TargetName", target),
        ("AuthMethod", "None"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect()
}

/// Checks the target's security-stage answer.
pub fn check_security(pairs: &[(String, String)]) -> Result<(), String> {
    for (key, value) in pairs {
        if key == "AuthMethod" && value != "None" {
            return Err(format!(
                "target requires authentication (AuthMethod={value}); only None is supported"
            ));
        }
    }
    Ok(())
}

/// Keys of the operational stage.
pub fn operational_offer() -> Vec<(String, String)> {
    [
        ("HeaderDigest", "None".to_string()),
        ("DataDigest", "None".to_string()),
        ("MaxRecvDataSegmentLength", OUR_MAX_RECV_SEGMENT.to_string()),
        ("MaxBurstLength", OUR_MAX_BURST.to_string()),
        ("FirstBurstLength", OUR_FIRST_BURST.to_string()),
        ("InitialR2T", "No".to_string()),
        ("ImmediateData", "Yes".to_string()),
        ("MaxOutstandingR2T", "1".to_string()),
        ("ErrorRecoveryLevel", "0".to_string()),
        ("DataPDUInOrder", "Yes".to_string()),
        ("DataSequenceInOrder", "Yes".to_string()),
        ("MaxConnections", "1".to_string()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect()
}

fn number(key: &str, value: &str) -> Result<Option<u32>, String> {
    match value {
        // Key not applicable or refused: the default (already in place) holds.
        "Irrelevant" | "Reject" | "NotUnderstood" => Ok(None),
        v => v
            .parse::<u32>()
            .map(Some)
            .map_err(|_| format!("{key}={value} is not a number")),
    }
}

fn boolean(key: &str, value: &str) -> Result<Option<bool>, String> {
    match value {
        "Yes" => Ok(Some(true)),
        "No" => Ok(Some(false)),
        "Irrelevant" | "Reject" | "NotUnderstood" => Ok(None),
        v => Err(format!("{key}={v} is neither Yes nor No")),
    }
}

/// Keys the target only declares; they need no answer.
const DECLARATIVE: &[&str] = &[
    "TargetAlias",
    "TargetAddress",
    "TargetPortalGroupTag",
    "TargetRecvDataSegmentLength",
    "MaxXmitDataSegmentLength",
];

/// Folds the target's operational-stage keys into `params`. Returns the
/// answers owed for keys the target offered on its own (ours it answers).
pub fn absorb(
    params: &mut Negotiated,
    pairs: &[(String, String)],
) -> Result<Vec<(String, String)>, String> {
    let offered = operational_offer();
    let we_offered = |key: &str| offered.iter().any(|(k, _)| k == key);
    let mut answers = Vec::new();
    for (key, value) in pairs {
        let answer: Option<String> = match key.as_str() {
            "HeaderDigest" | "DataDigest" => {
                // The only value we offer or accept is None.
                if value != "None" && (we_offered(key) || !value.split(',').any(|v| v == "None")) {
                    return Err(format!(
                        "target insists on {key}={value}; only None is supported"
                    ));
                }
                Some("None".to_string())
            }
            "MaxRecvDataSegmentLength" => {
                if let Some(n) = number(key, value)? {
                    if !(512..=16_777_215).contains(&n) {
                        return Err(format!("target declares {key}={n}, outside 512..2^24-1"));
                    }
                    params.max_send_segment = n;
                }
                None
            }
            "MaxBurstLength" | "FirstBurstLength" | "MaxOutstandingR2T" | "ErrorRecoveryLevel"
            | "MaxConnections" => {
                let ours = offered
                    .iter()
                    .find(|(k, _)| k == key)
                    .and_then(|(_, v)| v.parse::<u32>().ok())
                    .unwrap_or(0);
                let result = number(key, value)?.map(|n| n.min(ours));
                if result == Some(0) && key != "ErrorRecoveryLevel" {
                    return Err(format!("target answers {key}={value}"));
                }
                match (key.as_str(), result) {
                    ("MaxBurstLength", Some(n)) => params.max_burst = n,
                    ("FirstBurstLength", Some(n)) => params.first_burst = n,
                    ("MaxOutstandingR2T", Some(n)) => params.max_outstanding_r2t = n,
                    ("ErrorRecoveryLevel", Some(n)) => params.error_recovery_level = n,
                    _ => {}
                }
                result.map(|n| n.to_string())
            }
            // InitialR2T is an OR, ImmediateData an AND (§13.10, §13.11).
            "InitialR2T" => {
                if let Some(b) = boolean(key, value)? {
                    params.initial_r2t = b;
                }
                Some(yes_no(params.initial_r2t))
            }
            "ImmediateData" => {
                if let Some(b) = boolean(key, value)? {
                    params.immediate_data = b;
                }
                Some(yes_no(params.immediate_data))
            }
            "DataPDUInOrder" | "DataSequenceInOrder" => Some("Yes".to_string()),
            "IFMarker" | "OFMarker" => Some("No".to_string()),
            "DefaultTime2Wait" | "DefaultTime2Retain" => Some(value.clone()),
            k if DECLARATIVE.contains(&k) => None,
            _ => Some("NotUnderstood".to_string()),
        };
        if !we_offered(key)
            && let Some(answer) = answer
        {
            answers.push((key.clone(), answer));
        }
    }
    if params.first_burst > params.max_burst {
        params.first_burst = params.max_burst;
    }
    Ok(answers)
}

fn yes_no(b: bool) -> String {
    if b { "Yes" } else { "No" }.to_string()
}

/// What a Login Response status class/detail means (§11.13.5).
pub fn login_status_meaning(class: u8, detail: u8) -> &'static str {
    match (class, detail) {
        (1, 1) => "target moved temporarily",
        (1, 2) => "target moved permanently",
        (1, _) => "redirected",
        (2, 1) => "authentication failed",
        (2, 2) => "initiator not authorized to access the target",
        (2, 3) => "target not found",
        (2, 4) => "target removed",
        (2, 5) => "unsupported iSCSI version",
        (2, 6) => "too many connections",
        (2, 7) => "missing parameter",
        (2, 8) => "cannot include the connection in the session",
        (2, 9) => "session type not supported",
        (2, 0x0a) => "session does not exist",
        (2, 0x0b) => "invalid request during login",
        (2, _) => "initiator error",
        (3, 1) => "target error",
        (3, 2) => "service unavailable",
        (3, 3) => "target out of resources",
        (3, _) => "target error",
        _ => "unknown status",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kv(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn answers_set_the_parameters() {
        let mut p = Negotiated::default();
        let owed = absorb(
            &mut p,
            &kv(&[
                ("HeaderDigest", "None"),
                ("MaxRecvDataSegmentLength", "8192"),
                ("MaxBurstLength", "262144"),
                ("FirstBurstLength", "65536"),
                ("InitialR2T", "Yes"),
                ("ImmediateData", "Yes"),
                ("MaxOutstandingR2T", "1"),
                ("ErrorRecoveryLevel", "0"),
                ("TargetAlias", "disk"),
            ]),
        );
        assert_eq!(owed, Ok(vec![]));
        assert_eq!(p.max_send_segment, 8192);
        assert_eq!((p.max_burst, p.first_burst), (262_144, 65_536));
        assert!(p.initial_r2t && p.immediate_data);
    }

    #[test]
    fn target_offers_get_answers_and_bounds_hold() {
        let mut p = Negotiated::default();
        let owed = absorb(
            &mut p,
            &kv(&[
                ("InitialR2T", "No"),
                ("ImmediateData", "No"),
                ("FirstBurstLength", "99999999"),
                ("MaxBurstLength", "4096"),
                ("IFMarker", "Yes"),
                ("X-com.example.Thing", "1"),
            ]),
        );
        assert_eq!(
            owed,
            Ok(kv(&[
                ("IFMarker", "No"),
                ("X-com.example.Thing", "NotUnderstood")
            ]))
        );
        assert!(!p.initial_r2t && !p.immediate_data);
        assert_eq!((p.max_burst, p.first_burst), (4096, 4096));
    }

    #[test]
    fn refusals() {
        let mut p = Negotiated::default();
        let err = absorb(&mut p, &kv(&[("HeaderDigest", "CRC32C")])).err();
        assert!(err.is_some_and(|e| e.contains("HeaderDigest=CRC32C")));
        assert!(absorb(&mut p, &kv(&[("MaxBurstLength", "lots")])).is_err());
        assert!(absorb(&mut p, &kv(&[("InitialR2T", "Maybe")])).is_err());
        assert!(absorb(&mut p, &kv(&[("MaxRecvDataSegmentLength", "12")])).is_err());
        assert!(check_security(&kv(&[("AuthMethod", "CHAP")])).is_err());
        assert!(check_security(&kv(&[("AuthMethod", "None")])).is_ok());
        assert_eq!(login_status_meaning(2, 3), "target not found");
    }
}
