//! A Redfish session with one BMC and one of its systems: log in (a
//! SessionService token, or basic auth where there is none), then power,
//! boot override, sensors, event log and console discovery, each a few
//! requests through [`Transport`], the JSON read by [`model`] functions.

use std::time::Duration;

use reqwest::Method;
use serde_json::{Value, json};

use super::error::RedfishError;
use super::link;
use super::model::{
    self, BootOverride, BootTarget, LogEntry, OverrideEnabled, PowerState, ResetType, Sensor,
    SerialConsoles,
};
use super::tls::TlsPolicy;
use super::transport::{Auth, Reply, Transport};

/// Fan-out bounds: a hostile or huge BMC cannot make one call run away.
const MAX_CHASSIS: usize = 4;
const MAX_SENSOR_FETCHES: usize = 64;
const MAX_MANAGERS: usize = 2;
const MAX_LOG_SERVICES: usize = 8;
const MAX_LOG_PAGES: usize = 4;
const MAX_ENTRY_FETCHES: usize = 32;
/// Per log service, the newest this many (BMCs list oldest first).
pub const MAX_LOG_ENTRIES: usize = 200;
/// Logout is courtesy: never hold a caller up long for it.
const LOGOUT_LIMIT: Duration = Duration::from_secs(5);

/// Where a BMC is and how to log in to it.
#[derive(Clone)]
pub struct Target {
    /// "https://host:port"
    pub base_url: String,
    pub username: String,
    pub password: String,
    pub tls: TlsPolicy,
    /// Which member of `/redfish/v1/Systems` (its id, the last path
    /// segment, or its whole path); None: the only one.
    pub system_id: Option<String>,
    /// For each HTTP exchange (connect, request, whole body).
    pub timeout: Duration,
}

impl std::fmt::Debug for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Target")
            .field("base_url", &self.base_url)
            .field("username", &self.username)
            .field("password", &"<hidden>")
            .field("tls", &self.tls)
            .field("system_id", &self.system_id)
            .field("timeout", &self.timeout)
            .finish()
    }
}

pub struct Client {
    t: Transport,
    username: String,
    password: String,
    auth: Auth,
    /// Where to log in again when a token expires; None: basic auth.
    sessions_link: Option<String>,
    /// The session resource to DELETE at logout.
    session: Option<String>,
    system_path: String,
    system_url: String,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let auth = match self.auth {
            Auth::None => "none",
            Auth::Basic { .. } => "basic",
            Auth::Token(_) => "session",
        };
        f.debug_struct("Client")
            .field("origin", &self.t.origin())
            .field("username", &self.username)
            .field("auth", &auth)
            .field("session", &self.session)
            .field("system_url", &self.system_url)
            .finish_non_exhaustive()
    }
}

impl Client {
    /// Logs in and finds the system. Uses a SessionService when the service
    /// root advertises one (bmcweb), else basic auth (sushy-tools); a
    /// SessionService that answers 404/405/501 also means basic auth.
    pub async fn connect(target: &Target) -> Result<Client, RedfishError> {
        let t = Transport::new(&target.base_url, &target.tls, target.timeout)?;
        // The service root needs no credentials (Redfish spec); some BMCs
        // want them anyway, and then surely have sessions.
        let root_reply = t
            .send(
                Method::GET,
                "/redfish/v1/",
                &Auth::None,
                None,
                &[],
                target.timeout,
            )
            .await?;
        let (root, sessions_link) = match root_reply.status {
            401 | 403 => (
                Value::Null,
                Some("/redfish/v1/SessionService/Sessions".to_string()),
            ),
            _ => {
                let root = root_reply.checked()?.json()?;
                let sessions = model::sessions_link(&root);
                (root, sessions)
            }
        };
        let mut client = Client {
            t,
            username: target.username.clone(),
            password: target.password.clone(),
            auth: Auth::Basic {
                user: target.username.clone(),
                password: target.password.clone(),
            },
            sessions_link,
            session: None,
            system_path: String::new(),
            system_url: String::new(),
        };
        if let Some(s) = client.sessions_link.clone() {
            client.login(&s).await?;
        }
        let systems = model::link(&root, "Systems")
            .unwrap_or("/redfish/v1/Systems")
            .to_string();
        match client
            .find_system(&systems, target.system_id.as_deref())
            .await
        {
            Ok(path) => {
                client.system_url = client.t.url(&path)?;
                client.system_path = path;
                Ok(client)
            }
            Err(e) => {
                // Do not leave a session behind: BMCs have few slots.
                client.logout().await;
                Err(e)
            }
        }
    }

    async fn find_system(
        &mut self,
        systems: &str,
        wanted: Option<&str>,
    ) -> Result<String, RedfishError> {
        let collection = self.get(systems).await?;
        let picked = model::pick_system(&model::members(&collection), wanted)?;
        link::checked_path(self.t.origin(), &picked)
    }

    /// POSTs the credentials to the SessionService; falls back to basic
    /// auth if it is not really there.
    async fn login(&mut self, sessions_link: &str) -> Result<(), RedfishError> {
        let body = json!({ "UserName": self.username, "Password": self.password });
        let reply = self
            .t
            .send(
                Method::POST,
                sessions_link,
                &Auth::None,
                Some(&body),
                &[],
                self.t.timeout(),
            )
            .await?;
        if matches!(reply.status, 404 | 405 | 501) {
            tracing::debug!(
                status = reply.status,
                url = %reply.url,
                "no usable SessionService, using basic auth"
            );
            self.sessions_link = None;
            self.session = None;
            self.auth = Auth::Basic {
                user: self.username.clone(),
                password: self.password.clone(),
            };
            return Ok(());
        }
        let reply = reply.checked()?;
        let token = reply
            .header("X-Auth-Token")
            .filter(|t| !t.is_empty())
            .ok_or_else(|| {
                RedfishError::Protocol(format!(
                    "{} created a session but sent no X-Auth-Token",
                    reply.url
                ))
            })?
            .to_string();
        let location = reply.header("Location").map(str::to_string).or_else(|| {
            reply.json().ok().and_then(|v| {
                v.get("@odata.id")
                    .and_then(Value::as_str)
                    .map(str::to_string)
            })
        });
        self.session = match location.map(|l| link::checked_path(self.t.origin(), &l)) {
            Some(Ok(path)) => Some(path),
            Some(Err(e)) => {
                tracing::warn!("session location refused, cannot log out later: {e}");
                None
            }
            None => None,
        };
        self.auth = Auth::Token(token);
        Ok(())
    }

    /// One checked request; a session that expired (bmcweb drops idle ones
    /// after 30 minutes) is renewed once.
    async fn call(
        &mut self,
        method: Method,
        link: &str,
        body: Option<&Value>,
        extra: &[(&str, &str)],
    ) -> Result<Reply, RedfishError> {
        let limit = self.t.timeout();
        let reply = self
            .t
            .send(method.clone(), link, &self.auth, body, extra, limit)
            .await?;
        if reply.status == 401
            && matches!(self.auth, Auth::Token(_))
            && let Some(sessions) = self.sessions_link.clone()
        {
            tracing::debug!(url = %reply.url, "session refused, logging in again");
            self.login(&sessions).await?;
            return self
                .t
                .send(method, link, &self.auth, body, extra, limit)
                .await?
                .checked();
        }
        reply.checked()
    }

    async fn get(&mut self, link: &str) -> Result<Value, RedfishError> {
        self.call(Method::GET, link, None, &[]).await?.json()
    }

    /// A resource the BMC may not really have: an HTTP error status (404,
    /// 500, ...) or bad JSON gives None; auth, TLS and network failures
    /// still fail the call.
    async fn get_optional(&mut self, link: &str) -> Result<Option<Value>, RedfishError> {
        match self.get(link).await {
            Ok(v) => Ok(Some(v)),
            Err(e @ (RedfishError::Http { .. } | RedfishError::Protocol(_))) => {
                tracing::debug!("skipping {link}: {e}");
                Ok(None)
            }
            Err(e) => Err(e),
        }
    }

    async fn system(&mut self) -> Result<Value, RedfishError> {
        let path = self.system_path.clone();
        self.get(&path).await
    }

    /// The session's token, for bmcweb's `/console0` websocket (None with
    /// basic auth).
    pub fn session_token(&self) -> Option<&str> {
        match &self.auth {
            Auth::Token(t) => Some(t),
            _ => None,
        }
    }

    /// The TLS configuration this client trusts the BMC with, for the
    /// websocket console to the same BMC.
    pub fn tls_config(&self) -> std::sync::Arc<rustls::ClientConfig> {
        self.t.tls_config()
    }

    /// "https://host:port/redfish/v1/Systems/<id>"
    pub fn system_url(&self) -> &str {
        &self.system_url
    }

    pub async fn power_state(&mut self) -> Result<PowerState, RedfishError> {
        Ok(model::power_state(&self.system().await?))
    }

    /// The ResetTypes the system advertises, inline or through its
    /// ActionInfo (bmcweb). Empty: not advertised.
    pub async fn allowed_resets(&mut self) -> Result<Vec<String>, RedfishError> {
        let system = self.system().await?;
        self.allowed_for(&system).await
    }

    async fn allowed_for(&mut self, system: &Value) -> Result<Vec<String>, RedfishError> {
        let info = model::reset_info(system);
        if !info.allowed.is_empty() {
            return Ok(info.allowed);
        }
        match info.action_info {
            Some(l) => Ok(self
                .get_optional(&l)
                .await?
                .map(|v| model::action_info_allowed(&v))
                .unwrap_or_default()),
            None => Ok(Vec::new()),
        }
    }

    /// Sends the first of `preferred` that the system allows (the first,
    /// when it advertises nothing) and returns which one went.
    pub async fn reset(&mut self, preferred: &[ResetType]) -> Result<ResetType, RedfishError> {
        let system = self.system().await?;
        let target = model::reset_info(&system).target.ok_or_else(|| {
            RedfishError::Protocol(format!(
                "{} has no #ComputerSystem.Reset action target",
                self.system_url
            ))
        })?;
        let allowed = self.allowed_for(&system).await?;
        let choice = model::choose_reset(preferred, &allowed)?;
        tracing::debug!(reset = choice.as_str(), "redfish reset");
        self.call(
            Method::POST,
            &target,
            Some(&json!({ "ResetType": choice.as_str() })),
            &[],
        )
        .await?;
        Ok(choice)
    }

    pub async fn boot_override(&mut self) -> Result<BootOverride, RedfishError> {
        model::boot_override(&self.system().await?)
    }

    /// PATCHes the override, then reads it back: the result is what the BMC
    /// now says, which the caller compares with what it asked (some BMCs
    /// and sushy-tools' fake driver keep "Continuous" whatever is asked).
    pub async fn set_boot_override(
        &mut self,
        target: BootTarget,
        enabled: OverrideEnabled,
    ) -> Result<BootOverride, RedfishError> {
        let system = self.system().await?;
        let allowed = model::boot_targets_allowed(&system);
        // "None" (no override) is often left out of the list yet accepted.
        if target != BootTarget::None
            && !allowed.is_empty()
            && !allowed.iter().any(|a| a == target.as_str())
        {
            return Err(RedfishError::Unsupported {
                what: format!("boot override target {}", target.as_str()),
                allowed,
            });
        }
        let patch = model::boot_patch(&target, enabled);
        let path = self.system_path.clone();
        match self.call(Method::PATCH, &path, Some(&patch), &[]).await {
            Ok(_) => {}
            // Some BMCs insist on If-Match; ask again with the current ETag.
            Err(RedfishError::Http { status: 428, .. }) => {
                let etag = self
                    .call(Method::GET, &path, None, &[])
                    .await?
                    .header("ETag")
                    .map(str::to_string)
                    .unwrap_or_else(|| "*".to_string());
                self.call(Method::PATCH, &path, Some(&patch), &[("If-Match", &etag)])
                    .await?;
            }
            Err(e) => return Err(e),
        }
        self.boot_override().await
    }

    /// The chassis holding the system (its `Links.Chassis`, else all of
    /// `/redfish/v1/Chassis`), at most MAX_CHASSIS.
    async fn chassis(&mut self) -> Result<Vec<String>, RedfishError> {
        let system = self.system().await?;
        let mut chassis = model::member_links(system.get("Links").and_then(|l| l.get("Chassis")));
        if chassis.is_empty()
            && let Some(all) = self.get_optional("/redfish/v1/Chassis").await?
        {
            chassis = model::members(&all);
        }
        chassis.truncate(MAX_CHASSIS);
        Ok(chassis)
    }

    /// Readings from the system's chassis: the Thermal and Power resources,
    /// or the Sensors collection when a chassis has neither.
    pub async fn sensors(&mut self) -> Result<Vec<Sensor>, RedfishError> {
        let mut out = Vec::new();
        let mut fetches = 0;
        for c in self.chassis().await? {
            let Some(chassis) = self.get_optional(&c).await? else {
                continue;
            };
            let mut found = Vec::new();
            if let Some(l) = model::link(&chassis, "Thermal")
                && let Some(v) = self.get_optional(l).await?
            {
                found.extend(model::thermal_sensors(&v));
            }
            if let Some(l) = model::link(&chassis, "Power")
                && let Some(v) = self.get_optional(l).await?
            {
                found.extend(model::power_sensors(&v));
            }
            if found.is_empty()
                && let Some(l) = model::link(&chassis, "Sensors")
                && let Some(collection) = self.get_optional(l).await?
            {
                for m in collection
                    .get("Members")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                {
                    if let Some(s) = model::sensor_resource(m) {
                        found.push(s);
                    } else if let Some(l) = m.get("@odata.id").and_then(Value::as_str)
                        && fetches < MAX_SENSOR_FETCHES
                    {
                        fetches += 1;
                        if let Some(v) = self.get_optional(l).await?
                            && let Some(s) = model::sensor_resource(&v)
                        {
                            found.push(s);
                        }
                    }
                }
            }
            out.extend(found);
        }
        Ok(out)
    }

    /// The system's power draw: `PowerControl[].PowerConsumedWatts` of a
    /// chassis' Power, else its EnvironmentMetrics' `PowerWatts`. None: the
    /// BMC does not say.
    pub async fn power_watts(&mut self) -> Result<Option<f64>, RedfishError> {
        for c in self.chassis().await? {
            let Some(chassis) = self.get_optional(&c).await? else {
                continue;
            };
            if let Some(l) = model::link(&chassis, "Power")
                && let Some(v) = self.get_optional(l).await?
                && let Some(w) = model::power_watts_from_power(&v)
            {
                return Ok(Some(w));
            }
            if let Some(l) = model::link(&chassis, "EnvironmentMetrics")
                && let Some(v) = self.get_optional(l).await?
                && let Some(w) = model::power_watts_from_environment(&v)
            {
                return Ok(Some(w));
            }
        }
        Ok(None)
    }

    /// The managers of the system (`Links.ManagedBy`, else all of
    /// `/redfish/v1/Managers`), at most MAX_MANAGERS.
    async fn managers(&mut self, system: &Value) -> Result<Vec<String>, RedfishError> {
        let mut managers =
            model::member_links(system.get("Links").and_then(|l| l.get("ManagedBy")));
        if managers.is_empty()
            && let Some(all) = self.get_optional("/redfish/v1/Managers").await?
        {
            managers = model::members(&all);
        }
        managers.truncate(MAX_MANAGERS);
        Ok(managers)
    }

    /// The event LogServices of the system, then of its managers (the
    /// BMC journal, POST codes and dumps left out): (path, resource).
    async fn event_log_services(&mut self) -> Result<Vec<(String, Value)>, RedfishError> {
        let system = self.system().await?;
        let mut collections: Vec<String> = model::link(&system, "LogServices")
            .map(str::to_string)
            .into_iter()
            .collect();
        let mut managers =
            model::member_links(system.get("Links").and_then(|l| l.get("ManagedBy")));
        managers.truncate(MAX_MANAGERS);
        for m in managers {
            if let Some(manager) = self.get_optional(&m).await?
                && let Some(l) = model::link(&manager, "LogServices")
            {
                collections.push(l.to_string());
            }
        }
        let mut services = Vec::new();
        for c in collections {
            if let Some(v) = self.get_optional(&c).await? {
                services.extend(model::members(&v));
            }
        }
        services.truncate(MAX_LOG_SERVICES);
        let mut out = Vec::new();
        for s in services {
            if let Some(service) = self.get_optional(&s).await?
                && model::is_event_log_service(&service)
            {
                out.push((s, service));
            }
        }
        Ok(out)
    }

    /// Entries of the system's event logs, then its managers': per log
    /// service the newest MAX_LOG_ENTRIES, oldest first. The BMC journal,
    /// POST codes and dumps are left out.
    pub async fn event_log(&mut self) -> Result<Vec<LogEntry>, RedfishError> {
        let mut out = Vec::new();
        let mut fetches = 0;
        for (_, service) in self.event_log_services().await? {
            let Some(entries) = model::link(&service, "Entries").map(str::to_string) else {
                continue;
            };
            let mut page_link = Some(entries);
            let mut these = Vec::new();
            for _ in 0..MAX_LOG_PAGES {
                let Some(l) = page_link.take() else { break };
                let Some(page) = self.get_optional(&l).await? else {
                    break;
                };
                let (inline, links) = model::log_page(&page);
                these.extend(inline);
                for l in links {
                    if fetches >= MAX_ENTRY_FETCHES {
                        break;
                    }
                    fetches += 1;
                    if let Some(v) = self.get_optional(&l).await?
                        && let Some(e) = model::log_entry(&v)
                    {
                        these.push(e);
                    }
                }
                page_link = model::next_link(&page).map(str::to_string);
            }
            let skip = these.len().saturating_sub(MAX_LOG_ENTRIES);
            out.extend(these.into_iter().skip(skip));
        }
        Ok(out)
    }

    /// `LogService.ClearLog` on every event log service that offers it;
    /// returns how many were cleared. None offering it is `Unsupported`.
    pub async fn clear_event_log(&mut self) -> Result<usize, RedfishError> {
        let mut cleared = 0;
        let mut seen = Vec::new();
        for (path, service) in self.event_log_services().await? {
            seen.push(path);
            let Some(target) = model::action_target(&service, "#LogService.ClearLog") else {
                continue;
            };
            self.call(Method::POST, &target, Some(&json!({})), &[])
                .await?;
            cleared += 1;
        }
        if cleared == 0 {
            return Err(RedfishError::Unsupported {
                what: "clearing the event log (no event LogService with #LogService.ClearLog)"
                    .into(),
                allowed: seen,
            });
        }
        Ok(cleared)
    }

    /// Inventory fields of the System ("Product …") and of its chassis
    /// ("Chassis …"), named like ipmitool's FRU fields.
    pub async fn inventory(
        &mut self,
    ) -> Result<(Vec<(String, String)>, Vec<(String, String)>), RedfishError> {
        let system = self.system().await?;
        let product = model::inventory_fields(&system, "Product");
        let mut chassis = Vec::new();
        if let Some(c) = self.chassis().await?.into_iter().next()
            && let Some(v) = self.get_optional(&c).await?
        {
            chassis = model::inventory_fields(&v, "Chassis");
        }
        Ok((product, chassis))
    }

    /// The first manager's FirmwareVersion, Manufacturer and Model, and
    /// the system's BiosVersion.
    pub async fn firmware(&mut self) -> Result<model::FirmwareVersions, RedfishError> {
        let system = self.system().await?;
        let mut out = model::FirmwareVersions {
            host: model::version(&system, "BiosVersion"),
            ..Default::default()
        };
        if let Some(m) = self.managers(&system).await?.into_iter().next()
            && let Some(manager) = self.get_optional(&m).await?
        {
            out.bmc = model::version(&manager, "FirmwareVersion");
            out.manufacturer = model::text(&manager, "Manufacturer");
            out.model = model::text(&manager, "Model");
        }
        Ok(out)
    }

    /// Lights (or darkens) the identify LED of the system, or of its first
    /// chassis when the system has none; returns what was set
    /// ("IndicatorLED Lit") after reading it back.
    pub async fn set_identify(&mut self, on: bool) -> Result<String, RedfishError> {
        let system = self.system().await?;
        let mut candidates = vec![(self.system_path.clone(), system)];
        if let Some(c) = self.chassis().await?.into_iter().next()
            && let Some(v) = self.get_optional(&c).await?
        {
            candidates.push((c, v));
        }
        for (path, resource) in candidates {
            let Some((patch, how)) = model::identify_patch(&resource, on) else {
                continue;
            };
            self.call(Method::PATCH, &path, Some(&patch), &[]).await?;
            let after = self.get(&path).await?;
            if model::identify_state(&after) == Some(!on) {
                return Err(RedfishError::Protocol(format!(
                    "{path} still reads {} after setting {how}",
                    if on { "off" } else { "on" }
                )));
            }
            return Ok(format!("{how} on {path}"));
        }
        Err(RedfishError::Unsupported {
            what: "the identify LED (neither LocationIndicatorActive nor IndicatorLED on the \
                   system or its chassis)"
                .into(),
            allowed: Vec::new(),
        })
    }

    /// `#Manager.Reset` on the system's manager: GracefulRestart where
    /// allowed, else ForceRestart. Returns the type sent.
    pub async fn manager_reset(&mut self) -> Result<ResetType, RedfishError> {
        let system = self.system().await?;
        let manager_path = self
            .managers(&system)
            .await?
            .into_iter()
            .next()
            .ok_or_else(|| RedfishError::Unsupported {
                what: "resetting the BMC (the system names no Manager)".into(),
                allowed: Vec::new(),
            })?;
        let manager = self.get(&manager_path).await?;
        let info = model::action_reset_info(&manager, "#Manager.Reset");
        let target = info
            .target
            .clone()
            .ok_or_else(|| RedfishError::Unsupported {
                what: format!("resetting the BMC ({manager_path} has no #Manager.Reset action)"),
                allowed: Vec::new(),
            })?;
        let allowed = if info.allowed.is_empty() {
            match info.action_info {
                Some(l) => self
                    .get_optional(&l)
                    .await?
                    .map(|v| model::action_info_allowed(&v))
                    .unwrap_or_default(),
                None => Vec::new(),
            }
        } else {
            info.allowed
        };
        let choice = model::choose_reset(
            &[ResetType::GracefulRestart, ResetType::ForceRestart],
            &allowed,
        )?;
        self.call(
            Method::POST,
            &target,
            Some(&json!({ "ResetType": choice.as_str() })),
            &[],
        )
        .await?;
        Ok(choice)
    }

    /// `SerialConsole` of the system: which console services are on.
    pub async fn serial_consoles(&mut self) -> Result<SerialConsoles, RedfishError> {
        Ok(model::serial_consoles(&self.system().await?))
    }

    /// Ends the session on the BMC (bounded; errors ignored). With basic
    /// auth there is nothing to end.
    pub async fn logout(self) {
        let (Auth::Token(_), Some(session)) = (&self.auth, &self.session) else {
            return;
        };
        let limit = self.t.timeout().min(LOGOUT_LIMIT);
        match self
            .t
            .send(Method::DELETE, session, &self.auth, None, &[], limit)
            .await
        {
            Ok(r) if (200..300).contains(&r.status) => {}
            Ok(r) => tracing::debug!(status = r.status, "redfish logout refused"),
            Err(e) => tracing::debug!("redfish logout failed: {e}"),
        }
    }
}
