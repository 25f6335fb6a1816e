//! The thin HTTP layer: one request to a checked link on the BMC's origin,
//! its body bounded, the whole exchange under the target's timeout, and
//! every failure turned into a [`RedfishError`] that names its cause.

use std::sync::Arc;
use std::time::Duration;

use reqwest::Method;
use reqwest::header::{HeaderMap, HeaderValue};
use serde_json::Value;

use super::error::{RedfishError, bound, error_message};
use super::link;
use super::tls::{self, TlsPolicy, TlsRefusals};

/// Redfish resources are small; bmcweb's largest (a 1000-entry journal
/// page) is well under this.
pub const MAX_BODY: usize = 4 << 20;

#[derive(Clone)]
pub(crate) enum Auth {
    None,
    Basic { user: String, password: String },
    Token(String),
}

pub(crate) struct Reply {
    pub url: String,
    pub status: u16,
    pub headers: HeaderMap,
    pub body: Vec<u8>,
}

impl Reply {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    pub fn json(&self) -> Result<Value, RedfishError> {
        serde_json::from_slice(&self.body).map_err(|e| {
            RedfishError::Protocol(format!("{} answered with invalid JSON: {e}", self.url))
        })
    }

    /// Ok for 2xx; the error its status means otherwise.
    pub fn checked(self) -> Result<Reply, RedfishError> {
        match self.status {
            200..=299 => Ok(self),
            401 => Err(RedfishError::Unauthorized { url: self.url }),
            403 => Err(RedfishError::Forbidden { url: self.url }),
            status => Err(RedfishError::Http {
                message: error_message(&self.body),
                url: self.url,
                status,
            }),
        }
    }
}

pub(crate) struct Transport {
    http: reqwest::Client,
    origin: String,
    timeout: Duration,
    tls: Arc<rustls::ClientConfig>,
    refusals: TlsRefusals,
}

impl Transport {
    pub fn new(
        base_url: &str,
        policy: &TlsPolicy,
        timeout: Duration,
    ) -> Result<Self, RedfishError> {
        let origin = link::origin(base_url)?;
        let (tls, refusals) = tls::build(policy)?;
        let http = reqwest::Client::builder()
            .tls_backend_preconfigured((*tls).clone())
            .timeout(timeout)
            .connect_timeout(timeout)
            // A redirect could leave the origin we checked links against.
            .redirect(reqwest::redirect::Policy::none())
            // BMCs are on the lab network, not behind the user's web proxy.
            .no_proxy()
            .pool_idle_timeout(Duration::from_secs(30))
            .build()
            .map_err(|e| RedfishError::Tls(format!("HTTP client setup: {e}")))?;
        Ok(Transport {
            http,
            origin,
            timeout,
            tls,
            refusals,
        })
    }

    pub fn origin(&self) -> &str {
        &self.origin
    }

    pub fn tls_config(&self) -> Arc<rustls::ClientConfig> {
        self.tls.clone()
    }

    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// The absolute URL for a link from the BMC (checked).
    pub fn url(&self, link: &str) -> Result<String, RedfishError> {
        link::resolve(&self.origin, link)
    }

    /// One request; any status comes back as a [`Reply`] (see
    /// [`Reply::checked`]).
    pub async fn send(
        &self,
        method: Method,
        link: &str,
        auth: &Auth,
        body: Option<&Value>,
        extra: &[(&str, &str)],
        limit: Duration,
    ) -> Result<Reply, RedfishError> {
        let url = self.url(link)?;
        let mut req = self
            .http
            .request(method.clone(), &url)
            .header("Accept", "application/json")
            .header("OData-Version", "4.0");
        for (k, v) in extra {
            req = req.header(*k, *v);
        }
        req = match auth {
            Auth::None => req,
            Auth::Basic { user, password } => req.basic_auth(user, Some(password)),
            Auth::Token(token) => {
                let mut value = HeaderValue::from_str(token).map_err(|_| {
                    RedfishError::Protocol("the BMC's session token is not a header value".into())
                })?;
                value.set_sensitive(true);
                req.header("X-Auth-Token", value)
            }
        };
        if let Some(b) = body {
            req = req
                .header("Content-Type", "application/json")
                .body(serde_json::to_vec(b).expect("a JSON value serializes"));
        }
        self.refusals.take();
        tracing::debug!(%method, %url, "redfish request");
        let exchange = async {
            let mut resp = req.send().await.map_err(|e| self.send_error(&url, e))?;
            let status = resp.status().as_u16();
            if resp.content_length().is_some_and(|n| n > MAX_BODY as u64) {
                return Err(too_big(&url));
            }
            let headers = std::mem::take(resp.headers_mut());
            let mut body = Vec::new();
            while let Some(chunk) = resp.chunk().await.map_err(|e| self.send_error(&url, e))? {
                if body.len() + chunk.len() > MAX_BODY {
                    return Err(too_big(&url));
                }
                body.extend_from_slice(&chunk);
            }
            Ok(Reply {
                url: url.clone(),
                status,
                headers,
                body,
            })
        };
        match tokio::time::timeout(limit, exchange).await {
            Ok(r) => r,
            Err(_) => Err(RedfishError::Timeout {
                url,
                secs: limit.as_secs_f64(),
            }),
        }
    }

    fn send_error(&self, url: &str, e: reqwest::Error) -> RedfishError {
        if let Some(why) = self.refusals.take() {
            return RedfishError::Tls(why);
        }
        if let Some(why) = tls::rustls_error_in(&e) {
            return RedfishError::Tls(why);
        }
        if e.is_timeout() {
            return RedfishError::Timeout {
                url: url.to_string(),
                secs: self.timeout.as_secs_f64(),
            };
        }
        RedfishError::Unreachable {
            url: url.to_string(),
            why: bound(&chain(&e)),
        }
    }
}

fn too_big(url: &str) -> RedfishError {
    RedfishError::Protocol(format!(
        "{url} answered with more than {} MiB",
        MAX_BODY >> 20
    ))
}

/// "client error (Connect): tcp connect error: Connection refused": the
/// causes under reqwest's "error sending request for url (...)", which
/// only repeats the URL.
fn chain(e: &(dyn std::error::Error + 'static)) -> String {
    let (first, mut cur) = match e.source() {
        Some(s) => (s, s.source()),
        None => (e, None),
    };
    let mut parts = vec![first.to_string()];
    while let Some(s) = cur {
        let text = s.to_string();
        if !parts.iter().any(|p| p.contains(&text)) {
            parts.push(text);
        }
        cur = s.source();
        if parts.len() > 8 {
            break;
        }
    }
    parts.join(": ")
}
