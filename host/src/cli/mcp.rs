//! `floom mcp`: a stdio bridge to a server's MCP endpoint, for clients that only start
//! MCP servers as local processes (Claude Desktop and the like).

use std::collections::HashMap;
use std::io::{BufRead, Write};
use std::sync::{Arc, Mutex};

use base64::Engine as _;
use reqwest::Method;
use serde_json::{Value, json};
use tokio::sync::mpsc;
use tokio::task::AbortHandle;

use super::client::{Client, Failure, ServerArgs};

/// How long the bridge, once stdin has closed, still takes to deliver the notifications
/// the client sent last.
const NOTIFICATION_GRACE: std::time::Duration = std::time::Duration::from_secs(5);

/// Serve a floom server's apps as MCP tools over stdio.
///
/// Reads newline-delimited JSON-RPC messages on stdin, sends each to the server's MCP
/// endpoint (`POST /mcp`, or `/mcp/apps/SLUG` with `--app`) with the token, and writes
/// every message of the answer (progress notifications, then the response) to stdout,
/// one per line. `notifications/cancelled` stops the call it names. Logs go to stderr.
///
/// Examples:
///
///   floom mcp --server https://floom.example.com --token floom_...
///
///   floom mcp --app hello
///
/// In an MCP client's configuration (Claude Desktop's `claude_desktop_config.json`):
///
///   { "mcpServers": { "floom": { "command": "floom",
///       "args": ["mcp", "--server", "https://floom.example.com", "--token", "floom_..."] } } }
#[derive(Debug, clap::Args)]
#[command(verbatim_doc_comment)]
pub struct McpArgs {
    /// Serve only this app's tools.
    #[arg(long)]
    app: Option<String>,

    #[command(flatten)]
    server: ServerArgs,
}

/// What the bridge learns from the answers and shares between calls: the session id and
/// protocol version an `initialize` handed out, which later requests repeat.
#[derive(Default)]
struct Learned {
    session: Option<String>,
    version: Option<String>,
}

struct Bridge {
    client: Client,
    path: String,
    learned: Mutex<Learned>,
    out: Mutex<std::io::Stdout>,
    /// Calls in flight by JSON-RPC id (as JSON text), so a cancellation can stop one.
    calls: Mutex<HashMap<String, AbortHandle>>,
}

impl Bridge {
    /// Writes one message as a line on stdout.
    fn write(&self, message: &Value) {
        let mut out = self.out.lock().unwrap_or_else(|p| p.into_inner());
        let line = message.to_string();
        if writeln!(out, "{line}").and_then(|()| out.flush()).is_err() {
            // The client is gone; the next read of stdin ends the bridge.
            tracing::debug!("stdout is closed");
        }
    }

    fn error(&self, id: &Value, code: i64, message: String) {
        self.write(
            &json!({ "jsonrpc": "2.0", "id": id, "error": { "code": code, "message": message } }),
        );
    }

    /// Sends one message to the server and writes what comes back.
    async fn forward(&self, message: Value) {
        let id = message.get("id").cloned();
        let method = message
            .get("method")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let mut request = self
            .client
            .request(Method::POST, &self.path)
            .header("content-type", "application/json")
            .header("accept", "application/json, text/event-stream")
            .body(message.to_string());
        let meta_version = message
            .pointer("/params/_meta/io.modelcontextprotocol~1protocolVersion")
            .and_then(Value::as_str);
        {
            let learned = self.learned.lock().unwrap_or_else(|p| p.into_inner());
            if let Some(session) = &learned.session {
                request = request.header("mcp-session-id", session);
            }
            // A modern request names its version itself; a handshake-era one repeats
            // what initialize negotiated.
            match meta_version.or(learned.version.as_deref()) {
                Some(version) if method != "initialize" => {
                    request = request.header("mcp-protocol-version", version);
                }
                _ => {}
            }
        }
        if !method.is_empty() {
            request = request.header("mcp-method", method);
        }
        if let Some(name) = message.pointer("/params/name").and_then(Value::as_str) {
            request = request.header("mcp-name", header_value(name));
        }
        let response = match request.send().await {
            Ok(response) => response,
            Err(e) => {
                if let Some(id) = &id {
                    self.error(id, -32603, Failure::from(e).message);
                }
                return;
            }
        };
        if method == "initialize" {
            let session = response
                .headers()
                .get("mcp-session-id")
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned);
            self.learned
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .session = session;
        }
        let status = response.status();
        let sse = response
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with("text/event-stream"));
        if sse {
            self.relay_sse(response).await;
            return;
        }
        let body = response.bytes().await.unwrap_or_default();
        let Some(id) = id else {
            // A notification: 202 and nothing to write.
            return;
        };
        match serde_json::from_slice::<Value>(&body) {
            Ok(answer) if answer.get("result").is_some() || answer.get("error").is_some() => {
                if method == "initialize"
                    && let Some(version) = answer
                        .pointer("/result/protocolVersion")
                        .and_then(Value::as_str)
                {
                    self.learned
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .version = Some(version.to_owned());
                }
                // An error answered before the request was read carries no id.
                let mut answer = answer;
                answer["id"] = id;
                self.write(&answer);
            }
            _ => self.error(
                &id,
                -32603,
                format!(
                    "the server answered {status}: {}",
                    String::from_utf8_lossy(&body)
                        .chars()
                        .take(500)
                        .collect::<String>()
                ),
            ),
        }
    }

    /// Writes the `data` of every event of an SSE answer as a message.
    async fn relay_sse(&self, mut response: reqwest::Response) {
        let mut buffer = String::new();
        while let Ok(Some(chunk)) = response.chunk().await {
            buffer.push_str(&String::from_utf8_lossy(&chunk));
            let normalized = buffer.replace("\r\n", "\n");
            buffer = normalized;
            while let Some(end) = buffer.find("\n\n") {
                let event: String = buffer.drain(..end + 2).collect();
                let data: Vec<&str> = event
                    .lines()
                    .filter_map(|line| line.strip_prefix("data:"))
                    .map(|d| d.strip_prefix(' ').unwrap_or(d))
                    .collect();
                if data.is_empty() {
                    continue;
                }
                match serde_json::from_str::<Value>(&data.join("\n")) {
                    Ok(message) => self.write(&message),
                    Err(e) => tracing::warn!("the server sent an event that is not JSON: {e}"),
                }
            }
        }
    }
}

/// A header value for `value`: as it is when it is plain visible ASCII, else in the
/// `=?base64?...?=` form MCP defines.
fn header_value(value: &str) -> String {
    let printable = value.bytes().all(|b| b.is_ascii_graphic() || b == b' ');
    let padded = value.starts_with(' ') || value.ends_with(' ');
    let sentinel = value.starts_with("=?base64?") && value.ends_with("?=");
    let plain = printable && !padded && !sentinel;
    if plain {
        value.to_owned()
    } else {
        format!(
            "=?base64?{}?=",
            base64::engine::general_purpose::STANDARD.encode(value)
        )
    }
}

/// Runs `floom mcp` until stdin closes.
pub async fn run(args: McpArgs) -> Result<(), Failure> {
    let client = Client::new(&args.server)?;
    let path = match &args.app {
        Some(slug) => format!("/mcp/apps/{slug}"),
        None => "/mcp".to_owned(),
    };
    let bridge = Arc::new(Bridge {
        client,
        path,
        learned: Mutex::default(),
        out: Mutex::new(std::io::stdout()),
        calls: Mutex::default(),
    });
    // Stdin is read on a thread of its own: the async runtime has no stdin reader.
    let (lines_tx, mut lines) = mpsc::channel::<String>(64);
    std::thread::spawn(move || {
        for line in std::io::stdin().lock().lines() {
            let Ok(line) = line else { break };
            if lines_tx.blocking_send(line).is_err() {
                break;
            }
        }
    });
    let mut notifications = tokio::task::JoinSet::new();
    while let Some(line) = lines.recv().await {
        if line.trim().is_empty() {
            continue;
        }
        let message: Value = match serde_json::from_str(&line) {
            Ok(message) => message,
            Err(e) => {
                bridge.error(&Value::Null, -32700, format!("Parse error: {e}"));
                continue;
            }
        };
        if message.get("method").and_then(Value::as_str) == Some("notifications/cancelled")
            && let Some(request_id) = message.pointer("/params/requestId")
        {
            // Closing the call's request is the cancellation under 2026-07-28; the
            // notification, forwarded too, is the one of the handshake era.
            let key = request_id.to_string();
            if let Some(call) = bridge
                .calls
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .remove(&key)
            {
                call.abort();
            }
        }
        let forwarding = bridge.clone();
        while notifications.try_join_next().is_some() {}
        let Some(key) = message.get("id").map(Value::to_string) else {
            notifications.spawn(async move { forwarding.forward(message).await });
            continue;
        };
        // Registered before the task can finish and remove itself: it waits for the lock.
        let mut calls = bridge.calls.lock().unwrap_or_else(|p| p.into_inner());
        let done = key.clone();
        let task = tokio::spawn(async move {
            forwarding.forward(message).await;
            forwarding
                .calls
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .remove(&done);
        });
        calls.insert(key, task.abort_handle());
    }
    // The client is gone, so nothing can read the answers in flight; what it said last
    // (a cancellation, say) is still delivered.
    let delivered = async { while notifications.join_next().await.is_some() {} };
    let _ = tokio::time::timeout(NOTIFICATION_GRACE, delivered).await;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_values_that_are_not_plain_ascii_are_base64() {
        assert_eq!(header_value("hello__run"), "hello__run");
        assert_eq!(
            header_value("Hello, 世界"),
            "=?base64?SGVsbG8sIOS4lueVjA==?="
        );
        assert_eq!(header_value(" padded "), "=?base64?IHBhZGRlZCA=?=");
        assert_eq!(
            header_value("=?base64?literal?="),
            "=?base64?PT9iYXNlNjQ/bGl0ZXJhbD89?="
        );
    }
}
