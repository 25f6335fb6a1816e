//! Who may talk to the front end: the BMC's one account, checked by HTTP
//! Basic auth or by a session token from a Redfish login (as bmcweb's
//! SessionService hands out). Secrets never reach Debug output or logs.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use base64::Engine;
use hyper::HeaderMap;

/// bmcweb's default SessionTimeout: a session unused this long is gone.
pub const SESSION_TIMEOUT: Duration = Duration::from_secs(1800);
/// Sessions kept at once; a login past this evicts the least recently used.
const MAX_SESSIONS: usize = 64;

/// The BMC's account.
pub struct Credentials {
    username: String,
    password: String,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("username", &self.username)
            .finish_non_exhaustive()
    }
}

/// Equal contents, in time that depends on the lengths only.
pub fn same_secret(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

impl Credentials {
    pub fn new(username: &str, password: &str) -> Credentials {
        Credentials {
            username: username.to_string(),
            password: password.to_string(),
        }
    }

    pub fn check(&self, username: &str, password: &str) -> bool {
        // Both compared, so a wrong name takes as long as a wrong password.
        let user = same_secret(username.as_bytes(), self.username.as_bytes());
        let pass = same_secret(password.as_bytes(), self.password.as_bytes());
        user & pass
    }

    /// An `Authorization: Basic …` header with this account.
    pub fn check_basic(&self, header: &str) -> bool {
        let Some((scheme, encoded)) = header.trim().split_once(' ') else {
            return false;
        };
        if !scheme.eq_ignore_ascii_case("basic") {
            return false;
        }
        let Ok(decoded) = base64::engine::general_purpose::STANDARD.decode(encoded.trim()) else {
            return false;
        };
        let Ok(decoded) = String::from_utf8(decoded) else {
            return false;
        };
        decoded
            .split_once(':')
            .is_some_and(|(user, pass)| self.check(user, pass))
    }
}

/// One logged-in session.
#[derive(Clone)]
pub struct Session {
    pub id: String,
    token: String,
    pub username: String,
    pub origin: SocketAddr,
    last_used: Instant,
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session")
            .field("id", &self.id)
            .field("username", &self.username)
            .field("origin", &self.origin)
            .finish_non_exhaustive()
    }
}

/// The token a new session was given (only its creator sees it).
pub struct Token(pub String);

impl std::fmt::Debug for Token {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Token(…)")
    }
}

#[derive(Default)]
pub struct Sessions {
    by_id: Mutex<HashMap<String, Session>>,
}

/// `len` random characters from [A-Za-z0-9].
fn random_text(len: usize) -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    let bytes: [u8; 32] = crate::ipmi::crypto::random();
    bytes[..len.min(32)]
        .iter()
        .map(|b| ALPHABET[usize::from(*b) % ALPHABET.len()] as char)
        .collect()
}

impl Sessions {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Session>> {
        self.by_id
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// A new session for `username`; its id (as in its URI) and token.
    pub fn create(&self, username: &str, origin: SocketAddr, now: Instant) -> (Session, Token) {
        let mut map = self.lock();
        map.retain(|_, s| now.duration_since(s.last_used) < SESSION_TIMEOUT);
        if map.len() >= MAX_SESSIONS
            && let Some(oldest) = map
                .values()
                .min_by_key(|s| s.last_used)
                .map(|s| s.id.clone())
        {
            map.remove(&oldest);
        }
        let session = Session {
            id: random_text(10),
            token: random_text(20),
            username: username.to_string(),
            origin,
            last_used: now,
        };
        map.insert(session.id.clone(), session.clone());
        let token = Token(session.token.clone());
        (session, token)
    }

    /// The live session holding `token`, marked used.
    pub fn by_token(&self, token: &str, now: Instant) -> Option<Session> {
        let mut map = self.lock();
        map.retain(|_, s| now.duration_since(s.last_used) < SESSION_TIMEOUT);
        let session = map
            .values_mut()
            .find(|s| same_secret(s.token.as_bytes(), token.as_bytes()))?;
        session.last_used = now;
        Some(session.clone())
    }

    pub fn get(&self, id: &str, now: Instant) -> Option<Session> {
        let map = self.lock();
        map.get(id)
            .filter(|s| now.duration_since(s.last_used) < SESSION_TIMEOUT)
            .cloned()
    }

    pub fn remove(&self, id: &str) -> Option<Session> {
        self.lock().remove(id)
    }

    /// Forgets every session (the BMC rebooted).
    pub fn clear(&self) {
        self.lock().clear();
    }

    /// Live session ids, sorted.
    pub fn ids(&self, now: Instant) -> Vec<String> {
        let map = self.lock();
        let mut ids: Vec<String> = map
            .values()
            .filter(|s| now.duration_since(s.last_used) < SESSION_TIMEOUT)
            .map(|s| s.id.clone())
            .collect();
        ids.sort();
        ids
    }
}

/// Who is asking: the session behind an `X-Auth-Token` (or, for a
/// websocket, a `Sec-WebSocket-Protocol` token as bmcweb's web UI sends
/// it), or the account behind Basic auth.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Caller {
    Session,
    /// The subprotocol that carried the token, to be echoed back.
    WebsocketToken(String),
    Basic,
}

pub fn authenticate(
    headers: &HeaderMap,
    credentials: &Credentials,
    sessions: &Sessions,
    websocket: bool,
    now: Instant,
) -> Option<Caller> {
    if let Some(token) = headers.get("x-auth-token").and_then(|v| v.to_str().ok())
        && sessions.by_token(token.trim(), now).is_some()
    {
        return Some(Caller::Session);
    }
    if let Some(auth) = headers
        .get(hyper::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        && credentials.check_basic(auth)
    {
        return Some(Caller::Basic);
    }
    if websocket {
        let protocols = headers
            .get_all(hyper::header::SEC_WEBSOCKET_PROTOCOL)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .map(str::trim);
        for protocol in protocols {
            if sessions.by_token(protocol, now).is_some() {
                return Some(Caller::WebsocketToken(protocol.to_string()));
            }
        }
    }
    None
}
