//! Redfish request → reply: authentication first (as bmcweb: only the
//! service root and the login are open), then the resource, then the
//! method. Bodies are already read and bounded; anything malformed gets a
//! 400 with a Base registry message, never a panic.

use std::net::SocketAddr;
use std::time::{Instant, SystemTime};

use hyper::{HeaderMap, Method, StatusCode};
use serde_json::{Map, Value};

use super::super::fru::Inventory;
use super::Bmc;
use super::event_log::{self, iso8601};
use super::model::{self, BOOT_TARGETS, OVERRIDE_ENABLED, OVERRIDE_MODES, ResetError};
use super::resources as doc;
use super::sessions::authenticate;

/// A request as the router sees it.
pub struct Req<'a> {
    pub method: &'a Method,
    /// The URI's path, trailing slash and query already gone.
    pub path: &'a str,
    pub headers: &'a HeaderMap,
    pub body: &'a [u8],
    pub peer: SocketAddr,
}

/// What to answer: status, extra headers, JSON body.
#[derive(Debug)]
pub struct Reply {
    pub status: StatusCode,
    pub headers: Vec<(&'static str, String)>,
    pub body: Option<Value>,
}

impl Reply {
    fn json(status: StatusCode, body: Value) -> Reply {
        Reply {
            status,
            headers: Vec::new(),
            body: Some(body),
        }
    }

    fn ok(body: Value) -> Reply {
        Reply::json(StatusCode::OK, body)
    }

    fn no_content() -> Reply {
        Reply {
            status: StatusCode::NO_CONTENT,
            headers: Vec::new(),
            body: None,
        }
    }

    fn header(mut self, name: &'static str, value: String) -> Reply {
        self.headers.push((name, value));
        self
    }
}

pub fn unauthorized() -> Reply {
    Reply::json(
        StatusCode::UNAUTHORIZED,
        doc::error(
            "NoValidSession",
            "There is no valid session established with the implementation.",
            &[],
            "Establish a session before attempting any operations.",
        ),
    )
    .header("WWW-Authenticate", "Basic realm=\"Redfish\"".into())
}

pub fn bad_request(id: &str, text: &str, args: &[&str]) -> Reply {
    Reply::json(
        StatusCode::BAD_REQUEST,
        doc::error(
            id,
            text,
            args,
            "Correct the request body and resubmit the request if the operation failed.",
        ),
    )
}

pub fn general_error(status: StatusCode, text: &str) -> Reply {
    Reply::json(
        status,
        doc::error(
            "GeneralError",
            text,
            &[],
            "See the message for details and resubmit the request.",
        ),
    )
}

fn malformed_json() -> Reply {
    bad_request(
        "MalformedJSON",
        "The request body submitted was malformed JSON and could not be parsed by the receiving service.",
        &[],
    )
}

fn missing_at(path: &str) -> Reply {
    Reply::json(
        StatusCode::NOT_FOUND,
        doc::error(
            "ResourceMissingAtURI",
            &format!("The resource at the URI {path} was not found."),
            &[path],
            "Place a valid resource at the URI or correct the URI and resubmit the request.",
        ),
    )
}

fn not_found(kind: &str, name: &str) -> Reply {
    Reply::json(
        StatusCode::NOT_FOUND,
        doc::error(
            "ResourceNotFound",
            &format!("The requested resource of type {kind} named '{name}' was not found."),
            &[kind, name],
            "Provide a valid resource identifier and resubmit the request.",
        ),
    )
}

fn method_not_allowed(allowed: &[Method]) -> Reply {
    let allow: Vec<&str> = allowed.iter().map(Method::as_str).collect();
    Reply::json(
        StatusCode::METHOD_NOT_ALLOWED,
        doc::error(
            "OperationNotAllowed",
            "The HTTP method is not allowed on this resource.",
            &[],
            "None.",
        ),
    )
    .header("Allow", allow.join(", "))
}

/// The resources this BMC has, by path.
#[derive(Debug, PartialEq, Eq)]
enum Resource {
    Redfish,
    Root,
    SessionService,
    Sessions,
    Session(String),
    Systems,
    System,
    Reset,
    ResetActionInfo,
    LogServices,
    EventLog,
    ClearLog,
    Entries,
    Entry(String),
    Managers,
    Manager,
    ManagerReset,
    NetworkProtocol,
    ChassisCollection,
    Chassis,
    Thermal,
    Power,
    Sensors,
    Sensor(String),
    /// A member of a known collection that does not exist.
    Missing(&'static str, String),
}

fn resource(path: &str) -> Option<Resource> {
    use Resource::*;
    let parts: Vec<&str> = path.split('/').skip(1).collect();
    Some(match parts.as_slice() {
        ["redfish"] => Redfish,
        ["redfish", "v1"] => Root,
        ["redfish", "v1", "SessionService"] => SessionService,
        ["redfish", "v1", "SessionService", "Sessions"] => Sessions,
        ["redfish", "v1", "SessionService", "Sessions", id] => Session(id.to_string()),
        ["redfish", "v1", "Systems"] => Systems,
        ["redfish", "v1", "Systems", "system", rest @ ..] => match rest {
            [] => System,
            ["Actions", "ComputerSystem.Reset"] => Reset,
            ["ResetActionInfo"] => ResetActionInfo,
            ["LogServices"] => LogServices,
            ["LogServices", "EventLog"] => EventLog,
            ["LogServices", "EventLog", "Actions", "LogService.ClearLog"] => ClearLog,
            ["LogServices", "EventLog", "Entries"] => Entries,
            ["LogServices", "EventLog", "Entries", id] => Entry(id.to_string()),
            _ => return None,
        },
        ["redfish", "v1", "Systems", other] => Missing("ComputerSystem", other.to_string()),
        ["redfish", "v1", "Managers"] => Managers,
        ["redfish", "v1", "Managers", "bmc"] => Manager,
        [
            "redfish",
            "v1",
            "Managers",
            "bmc",
            "Actions",
            "Manager.Reset",
        ] => ManagerReset,
        ["redfish", "v1", "Managers", "bmc", "NetworkProtocol"] => NetworkProtocol,
        ["redfish", "v1", "Managers", other] => Missing("Manager", other.to_string()),
        ["redfish", "v1", "Chassis"] => ChassisCollection,
        ["redfish", "v1", "Chassis", "chassis", rest @ ..] => match rest {
            [] => Chassis,
            ["Thermal"] => Thermal,
            ["Power"] => Power,
            ["Sensors"] => Sensors,
            ["Sensors", id] => Sensor(id.to_string()),
            _ => return None,
        },
        ["redfish", "v1", "Chassis", other] => Missing("Chassis", other.to_string()),
        _ => return None,
    })
}

impl Resource {
    fn methods(&self) -> &'static [Method] {
        const READ: &[Method] = &[Method::GET, Method::HEAD];
        match self {
            Resource::Sessions => &[Method::GET, Method::HEAD, Method::POST],
            Resource::Session(_) => &[Method::GET, Method::HEAD, Method::DELETE],
            Resource::System => &[Method::GET, Method::HEAD, Method::PATCH],
            Resource::Reset | Resource::ClearLog | Resource::ManagerReset => &[Method::POST],
            _ => READ,
        }
    }

    /// Open to anyone, as bmcweb's service root and login are.
    fn open(&self, method: &Method) -> bool {
        match self {
            Resource::Redfish | Resource::Root => true,
            Resource::Sessions => method == Method::POST,
            _ => false,
        }
    }
}

/// Strips trailing slashes (bmcweb answers with and without).
pub fn normalize(path: &str) -> &str {
    let trimmed = path.trim_end_matches('/');
    if trimmed.is_empty() { "/" } else { trimmed }
}

/// 503 while the BMC reboots after a reset, as a BMC that is not up yet
/// (bmcweb is not running then; a proxy in front would say this).
fn rebooting() -> Reply {
    general_error(
        StatusCode::SERVICE_UNAVAILABLE,
        "The BMC is rebooting after a reset; retry in a few seconds.",
    )
    .header("Retry-After", "2".into())
}

pub fn route(bmc: &Bmc, req: &Req<'_>) -> Reply {
    let now = Instant::now();
    let (down, resets) = model::bmc_status(&bmc.state);
    // Sessions do not survive a BMC reboot, however it was asked for.
    if bmc
        .bmc_resets
        .swap(resets, std::sync::atomic::Ordering::Relaxed)
        != resets
    {
        bmc.sessions.clear();
    }
    if down {
        return rebooting();
    }
    let found = resource(req.path);
    let open = found.as_ref().is_some_and(|r| r.open(req.method));
    if !open && authenticate(req.headers, &bmc.credentials, &bmc.sessions, false, now).is_none() {
        return unauthorized();
    }
    let Some(found) = found else {
        return missing_at(req.path);
    };
    if let Resource::Missing(kind, name) = &found {
        return not_found(kind, name);
    }
    if !found.methods().contains(req.method) {
        return method_not_allowed(found.methods());
    }
    let read = req.method == Method::GET || req.method == Method::HEAD;
    match found {
        Resource::Sessions if !read => login(bmc, req, now),
        Resource::Session(id) if req.method == Method::DELETE => match bmc.sessions.remove(&id) {
            Some(session) => Reply::ok(doc::session(&session)),
            None => not_found("Session", &id),
        },
        Resource::System if req.method == Method::PATCH => patch_system(bmc, req.body),
        Resource::Reset => reset(bmc, req.body),
        Resource::ClearLog => clear_log(bmc, req.body),
        Resource::ManagerReset => manager_reset(bmc, req.body),
        found => get(bmc, found, now),
    }
}

fn get(bmc: &Bmc, found: Resource, now: Instant) -> Reply {
    let readings = || {
        let wobble = bmc
            .readings
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        model::readings(&bmc.state, wobble)
    };
    let body = match found {
        Resource::Redfish => doc::redfish(),
        Resource::Root => doc::service_root(&bmc.uuid),
        Resource::SessionService => doc::session_service(),
        Resource::Sessions => doc::session_collection(&bmc.sessions.ids(now)),
        Resource::Session(id) => match bmc.sessions.get(&id, now) {
            Some(session) => doc::session(&session),
            None => return not_found("Session", &id),
        },
        Resource::Systems => doc::systems(),
        Resource::System => doc::system(
            model::power_on(&bmc.state),
            &model::boot_override(&bmc.state),
            &bmc.uuid,
            bmc.ports.ssh,
            &doc::SystemFacts {
                inventory: &Inventory::for_node(&bmc.name),
                identify: model::identify_on(&bmc.state),
            },
        ),
        Resource::ResetActionInfo => doc::reset_action_info(),
        Resource::LogServices => doc::log_services(),
        Resource::EventLog => doc::event_log_service(),
        Resource::Entries => doc::log_entries(&event_log::entries(&bmc.sel)),
        Resource::Entry(id) => match event_log::entries(&bmc.sel)
            .iter()
            .find(|e| e.id.to_string() == id)
        {
            Some(entry) => doc::log_entry(entry),
            None => return not_found("LogEntry", &id),
        },
        Resource::Managers => doc::managers(),
        Resource::Manager => doc::manager(&bmc.uuid, &iso8601(SystemTime::now())),
        Resource::NetworkProtocol => doc::network_protocol(bmc.ports.https, bmc.ports.ipmi),
        Resource::ChassisCollection => doc::chassis_collection(),
        Resource::Chassis => doc::chassis(model::power_on(&bmc.state)),
        Resource::Thermal => doc::thermal(&readings()),
        Resource::Power => doc::power(&readings()),
        Resource::Sensors => doc::sensors(&readings()),
        Resource::Sensor(id) => match readings().iter().find(|r| doc::sensor_id(r) == id) {
            Some(reading) => doc::sensor(reading),
            None => return not_found("Sensor", &id),
        },
        Resource::Reset | Resource::ClearLog | Resource::ManagerReset | Resource::Missing(..) => {
            unreachable!("not readable")
        }
    };
    Reply::ok(body)
}

fn object(body: &[u8]) -> Result<Map<String, Value>, Reply> {
    match serde_json::from_slice(body) {
        Ok(Value::Object(map)) => Ok(map),
        _ => Err(malformed_json()),
    }
}

fn type_error(value: &Value, property: &str) -> Reply {
    let value = value.to_string();
    bad_request(
        "PropertyValueTypeError",
        &format!(
            "The value {value} for the property {property} is of a different type than the property can accept."
        ),
        &[&value, property],
    )
}

fn property_missing(property: &str) -> Reply {
    bad_request(
        "PropertyMissing",
        &format!(
            "The property {property} is a required property and must be included in the request."
        ),
        &[property],
    )
}

fn property_unknown(property: &str) -> Reply {
    bad_request(
        "PropertyUnknown",
        &format!(
            "The property {property} is not in the list of valid properties for the resource."
        ),
        &[property],
    )
}

/// POST Sessions: a login with UserName and Password.
fn login(bmc: &Bmc, req: &Req<'_>, now: Instant) -> Reply {
    let body = match object(req.body) {
        Ok(body) => body,
        Err(reply) => return reply,
    };
    let mut fields = [("UserName", ""), ("Password", "")];
    for (name, slot) in &mut fields {
        match body.get(*name) {
            Some(Value::String(s)) => *slot = s,
            Some(other) => return type_error(other, name),
            None => return property_missing(name),
        }
    }
    let [(_, username), (_, password)] = fields;
    if !bmc.credentials.check(username, password) {
        tracing::info!(node = %bmc.name, peer = %req.peer, "Redfish login refused");
        return Reply::json(
            StatusCode::UNAUTHORIZED,
            doc::error(
                "ResourceAtUriUnauthorized",
                &format!(
                    "While accessing the resource at {}, the service received an authorization error Invalid username or password.",
                    doc::SESSIONS
                ),
                &[doc::SESSIONS, "Invalid username or password"],
                "Ensure that the appropriate access is provided for the service in order for it to access the URI.",
            ),
        );
    }
    let (session, token) = bmc.sessions.create(username, req.peer, now);
    tracing::info!(node = %bmc.name, peer = %req.peer, session = %session.id, "Redfish login");
    Reply::json(StatusCode::CREATED, doc::session(&session))
        .header("X-Auth-Token", token.0)
        .header("Location", format!("{}/{}", doc::SESSIONS, session.id))
}

/// A string property that must be one of `allowed`.
fn one_of(value: &Value, property: &str, allowed: &[&'static str]) -> Result<&'static str, Reply> {
    let Value::String(s) = value else {
        return Err(type_error(value, property));
    };
    allowed.iter().find(|a| **a == s).copied().ok_or_else(|| {
        bad_request(
            "PropertyValueNotInList",
            &format!("The value '{s}' for the property {property} is not in the list of acceptable values."),
            &[s, property],
        )
    })
}

/// PATCH the system: the boot override and the identify light
/// (LocationIndicatorActive) are writable here.
fn patch_system(bmc: &Bmc, body: &[u8]) -> Reply {
    let body = match object(body) {
        Ok(body) => body,
        Err(reply) => return reply,
    };
    if body.is_empty() {
        return bad_request(
            "EmptyJSON",
            "The request body submitted contained an empty JSON object and the service is unable to process it.",
            &[],
        );
    }
    if let Some(key) = body
        .keys()
        .find(|k| *k != "Boot" && *k != "LocationIndicatorActive")
    {
        return property_unknown(key);
    }
    let identify = match body.get("LocationIndicatorActive") {
        None => None,
        Some(Value::Bool(on)) => Some(*on),
        Some(other) => return type_error(other, "LocationIndicatorActive"),
    };
    let boot = match body.get("Boot") {
        Some(Value::Object(boot)) => Some(boot),
        None => None,
        Some(other) => return type_error(other, "Boot"),
    };
    if let Some(on) = identify {
        model::set_identify(&bmc.state, on);
        tracing::info!(node = %bmc.name, on, "Redfish identify set");
    }
    let Some(boot) = boot else {
        return Reply::no_content();
    };
    let targets: Vec<&'static str> = BOOT_TARGETS.iter().map(|(n, _)| *n).collect();
    let (mut enabled, mut target, mut mode) = (None, None, None);
    for (key, value) in boot {
        let checked = match key.as_str() {
            "BootSourceOverrideEnabled" => {
                one_of(value, key, &OVERRIDE_ENABLED).map(|v| enabled = Some(v))
            }
            "BootSourceOverrideTarget" => one_of(value, key, &targets).map(|v| target = Some(v)),
            "BootSourceOverrideMode" => one_of(value, key, &OVERRIDE_MODES).map(|v| mode = Some(v)),
            other => Err(property_unknown(&format!("Boot/{other}"))),
        };
        if let Err(reply) = checked {
            return reply;
        }
    }
    if bmc.keeps_once && enabled == Some("Once") {
        enabled = Some("Continuous");
    }
    model::set_boot_override(&bmc.state, enabled, target, mode);
    tracing::info!(node = %bmc.name, ?enabled, ?target, ?mode, "Redfish boot override set");
    Reply::no_content()
}

/// POST ComputerSystem.Reset.
fn reset(bmc: &Bmc, body: &[u8]) -> Reply {
    let body = match object(body) {
        Ok(body) => body,
        Err(reply) => return reply,
    };
    if let Some(key) = body.keys().find(|k| *k != "ResetType") {
        return bad_request(
            "ActionParameterNotSupported",
            &format!(
                "The parameter {key} for the action Reset is not supported on the target resource."
            ),
            &[key, "Reset"],
        );
    }
    let reset_type = match body.get("ResetType") {
        Some(Value::String(s)) => s.as_str(),
        Some(other) => return type_error(other, "ResetType"),
        None => {
            return bad_request(
                "ActionParameterMissing",
                "The action Reset requires the parameter ResetType to be present in the request body.",
                &["Reset", "ResetType"],
            );
        }
    };
    match model::reset(&bmc.state, reset_type) {
        Ok(()) => {}
        Err(ResetError::Unknown) => {
            return bad_request(
                "ActionParameterUnknown",
                &format!(
                    "The action Reset was submitted with the invalid parameter {reset_type}; allowed: {}.",
                    model::RESET_TYPES.join(", ")
                ),
                &["Reset", reset_type],
            );
        }
        Err(ResetError::HostOff) => {
            return Reply::json(
                StatusCode::CONFLICT,
                doc::error(
                    "ResourceInStandby",
                    &format!(
                        "The request could not be performed because the resource is in standby: {reset_type} needs the host on."
                    ),
                    &[],
                    "Ensure that the resource is in the correct power state and resubmit the request.",
                ),
            );
        }
    }
    tracing::info!(node = %bmc.name, reset_type, "Redfish reset");
    // A graceful shutdown completes later: wake up to apply it.
    if reset_type == "GracefulShutdown"
        && let Some(at) = model::next_deadline(&bmc.state)
    {
        let state = bmc.state.clone();
        bmc.spawn(async move {
            tokio::time::sleep_until(at.into()).await;
            model::tick(&state);
        });
    }
    Reply::no_content()
}

/// The body of an action that takes no parameters besides an optional
/// ResetType from `allowed`; the ResetType given, if any.
fn action_body(
    body: &[u8],
    action: &str,
    allowed: &[&'static str],
) -> Result<Option<&'static str>, Reply> {
    // An empty body is an empty object for parameterless actions.
    let body = if body.iter().all(u8::is_ascii_whitespace) {
        Map::new()
    } else {
        object(body)?
    };
    if let Some(key) = body
        .keys()
        .find(|k| *k != "ResetType" || allowed.is_empty())
    {
        return Err(bad_request(
            "ActionParameterNotSupported",
            &format!(
                "The parameter {key} for the action {action} is not supported on the target resource."
            ),
            &[key, action],
        ));
    }
    match body.get("ResetType") {
        None => Ok(None),
        Some(value) => one_of(value, "ResetType", allowed).map(Some),
    }
}

/// POST LogService.ClearLog: the SEL is erased (IPMI sees it too).
fn clear_log(bmc: &Bmc, body: &[u8]) -> Reply {
    if let Err(reply) = action_body(body, "ClearLog", &[]) {
        return reply;
    }
    event_log::clear(&bmc.sel);
    tracing::info!(node = %bmc.name, "Redfish event log cleared");
    Reply::no_content()
}

/// POST Manager.Reset: the BMC reboots (as an IPMI cold reset does);
/// the host keeps running.
fn manager_reset(bmc: &Bmc, body: &[u8]) -> Reply {
    if let Err(reply) = action_body(body, "Reset", &doc::MANAGER_RESET_TYPES) {
        return reply;
    }
    model::reset_bmc(&bmc.state);
    tracing::info!(node = %bmc.name, "Redfish BMC reset");
    Reply::no_content()
}
