//! Asking a running lab service directly, as a script would.

use std::path::Path;

/// `method` on the service at `socket`, from a runtime of its own.
pub fn call(
    socket: &Path,
    method: &str,
    params: serde_json::Value,
) -> Result<serde_json::Value, petitlab::service::ClientError> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let client = petitlab::service::Client::connect(socket)
            .await?
            .expect("the lab service answers on its socket");
        client.call(method, params).await
    })
}

/// The demo's simulated BMC sessions by node: `{"NODE": {"active", "opened"}}`.
pub fn sessions(socket: &Path) -> serde_json::Value {
    call(socket, "sessions", serde_json::json!({})).unwrap()
}
