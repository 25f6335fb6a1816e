//! The wire format: JSON-RPC 2.0 requests, responses and notifications,
//! one per line (tokio-util's `LinesCodec` frames them, bounded).

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Longest line the service reads from a client (requests are small).
pub const MAX_REQUEST: usize = 1 << 20;
/// Longest line a client reads from the service (a big lab's status).
pub const MAX_REPLY: usize = 64 << 20;
/// How much console output the service keeps per node for a client that
/// attaches later (a boot's worth: petitboot, the kernel, the login).
pub const SCROLLBACK: usize = 64 * 1024;

/// JSON-RPC error codes: the standard ones and the service's own.
pub mod code {
    pub const PARSE: i64 = -32700;
    pub const INVALID_REQUEST: i64 = -32600;
    pub const METHOD_NOT_FOUND: i64 = -32601;
    pub const INVALID_PARAMS: i64 = -32602;
    /// The peer's user may not use this service.
    pub const NOT_ALLOWED: i64 = -32001;
    /// The request named something the lab does not have, or failed.
    pub const FAILED: i64 = -32000;
    /// Console input from a client that does not hold the write lock.
    pub const READ_ONLY: i64 = -32002;
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Request {
    pub jsonrpc: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<Value>,
    pub method: String,
    #[serde(default)]
    pub params: Value,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RpcError {
    pub code: i64,
    pub message: String,
}

impl RpcError {
    pub fn new(code: i64, message: impl Into<String>) -> RpcError {
        RpcError {
            code,
            message: message.into(),
        }
    }

    pub fn failed(message: impl Into<String>) -> RpcError {
        RpcError::new(code::FAILED, message)
    }

    pub fn params(message: impl Into<String>) -> RpcError {
        RpcError::new(code::INVALID_PARAMS, message)
    }
}

/// What the service writes: a response (with `id`) or a notification.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Message {
    pub jsonrpc: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<RpcError>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub method: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub params: Option<Value>,
}

impl Message {
    pub fn reply(id: Value, result: Result<Value, RpcError>) -> Message {
        let (result, error) = match result {
            Ok(v) => (Some(v), None),
            Err(e) => (None, Some(e)),
        };
        Message {
            jsonrpc: "2.0".into(),
            id: Some(id),
            result,
            error,
            method: None,
            params: None,
        }
    }

    pub fn notification(method: &str, params: Value) -> Message {
        Message {
            jsonrpc: "2.0".into(),
            id: None,
            result: None,
            error: None,
            method: Some(method.to_string()),
            params: Some(params),
        }
    }

    pub fn line(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }
}

/// Console bytes travel base64-encoded in JSON strings.
pub fn encode_bytes(bytes: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

pub fn decode_bytes(text: &str) -> Result<Vec<u8>, RpcError> {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD
        .decode(text)
        .map_err(|e| RpcError::params(format!("data is not base64: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replies_and_notifications_are_json_rpc_2() {
        let ok = Message::reply(Value::from(7), Ok(serde_json::json!({"a": 1}))).line();
        assert_eq!(ok, r#"{"jsonrpc":"2.0","id":7,"result":{"a":1}}"#);
        let err = Message::reply(Value::from(8), Err(RpcError::failed("no"))).line();
        assert_eq!(
            err,
            r#"{"jsonrpc":"2.0","id":8,"error":{"code":-32000,"message":"no"}}"#
        );
        let n = Message::notification("event", serde_json::json!({})).line();
        assert_eq!(n, r#"{"jsonrpc":"2.0","method":"event","params":{}}"#);
        assert_eq!(
            decode_bytes(&encode_bytes(b"\x1b[0m\xff")).unwrap(),
            b"\x1b[0m\xff"
        );
        assert!(decode_bytes("not base64!").is_err());
    }
}
