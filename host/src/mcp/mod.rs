//! The Model Context Protocol (SPEC section 7): every app action the caller may run is a
//! tool, over Streamable HTTP at `POST /mcp` (all apps) and `POST /mcp/apps/{slug}` (one
//! app).
//!
//! The server keeps no per-session state, so any host answers any request. Two protocol
//! eras meet here:
//!
//! - **Handshake era** (2025-06-18, 2025-11-25): `initialize` negotiates a version, the
//!   client then names it in `MCP-Protocol-Version`. The `Mcp-Session-Id` minted by
//!   `initialize` is random and never stored: it only namespaces request ids, so that a
//!   `notifications/cancelled` finds the call it names among the caller's, on any host.
//! - **Modern era** (2026-07-28): no handshake; every request carries its version and
//!   capabilities in `_meta`, mirrored in headers that must agree with the body;
//!   `server/discover` advertises the versions; closing a request's stream cancels it.
//!
//! This module is the transport: origin, method, headers, era and JSON-RPC framing. What
//! the methods do is in [`tools`] (naming and listing) and [`call`] (`tools/call`, which
//! starts runs through [`crate::runs`] like the REST API and reads them back through
//! [`crate::follow`]).

use axum::Router;
use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use base64::Engine as _;
use serde_json::{Map, Value, json};

use crate::api::auth::{Caller, random_token};
use crate::api::error::ApiError;
use crate::api::extract::{PathParams, read_limited};
use crate::api::{AppState, Services};

mod call;
mod tools;

/// The tool name of an action, for the pages that show how to call it.
pub(crate) use tools::tool_name;

use tools::BUILTIN_EXECUTION_TOOL;

/// The handshake-era revisions served, newest first.
pub const HANDSHAKE_VERSIONS: &[&str] = &["2025-11-25", "2025-06-18"];
/// The modern (per-request metadata) revisions served.
pub const MODERN_VERSIONS: &[&str] = &["2026-07-28"];

/// JSON-RPC: the body is not JSON.
pub const PARSE_ERROR: i64 = -32700;
/// JSON-RPC: the body is not a valid request.
pub const INVALID_REQUEST: i64 = -32600;
/// JSON-RPC: no such method.
pub const METHOD_NOT_FOUND: i64 = -32601;
/// JSON-RPC: the params are wrong.
pub const INVALID_PARAMS: i64 = -32602;
/// JSON-RPC: the server failed.
pub const INTERNAL_ERROR: i64 = -32603;
/// MCP 2026-07-28: a header disagrees with the body, or a required one is missing.
pub const HEADER_MISMATCH: i64 = -32020;
/// MCP 2026-07-28: the protocol version is not served.
pub const UNSUPPORTED_PROTOCOL_VERSION: i64 = -32022;

const META_PROTOCOL_VERSION: &str = "io.modelcontextprotocol/protocolVersion";
const META_CLIENT_CAPABILITIES: &str = "io.modelcontextprotocol/clientCapabilities";
const META_SERVER_INFO: &str = "io.modelcontextprotocol/serverInfo";
/// Longest session id taken from a client; a longer one is ignored.
const MAX_SESSION_ID: usize = 128;

/// The MCP routes.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/mcp", post(all_apps).fallback(not_allowed))
        .route("/mcp/apps/{slug}", post(one_app).fallback(not_allowed))
}

/// Which tools a URL serves.
#[derive(Debug, Clone)]
enum Scope {
    /// Every app the caller may run.
    All,
    /// One app's.
    App(String),
}

/// How a request speaks the protocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Era {
    /// After an `initialize` handshake (or the handshake itself).
    Handshake,
    /// 2026-07-28: everything in the request.
    Modern,
}

/// A JSON-RPC error.
#[derive(Debug)]
struct RpcError {
    code: i64,
    message: String,
    data: Option<Value>,
}

impl RpcError {
    fn new(code: i64, message: impl Into<String>) -> Self {
        RpcError {
            code,
            message: message.into(),
            data: None,
        }
    }

    fn invalid_params(message: impl Into<String>) -> Self {
        Self::new(INVALID_PARAMS, message)
    }

    fn to_json(&self) -> Value {
        let mut error = json!({ "code": self.code, "message": self.message });
        if let Some(data) = &self.data {
            error["data"] = data.clone();
        }
        error
    }

    /// The HTTP status a modern-era answer carries for this error; the handshake era
    /// answers method errors with 200, as its clients expect.
    fn status(&self, era: Era) -> StatusCode {
        match (self.code, era) {
            (PARSE_ERROR | INVALID_REQUEST | UNSUPPORTED_PROTOCOL_VERSION | HEADER_MISMATCH, _) => {
                StatusCode::BAD_REQUEST
            }
            (INVALID_PARAMS, Era::Modern) => StatusCode::BAD_REQUEST,
            (METHOD_NOT_FOUND, Era::Modern) => StatusCode::NOT_FOUND,
            _ => StatusCode::OK,
        }
    }
}

/// What one request is answered from: who asks, through which URL, in which era, and
/// which response types the client takes.
struct Exchange {
    state: AppState,
    caller: Caller,
    scope: Scope,
    era: Era,
    headers: HeaderMap,
    /// The client's `Mcp-Session-Id`, if it sent a usable one.
    session: Option<String>,
    /// Whether the client takes `text/event-stream`.
    sse: bool,
    /// Whether the client takes `application/json`.
    json: bool,
}

impl Exchange {
    /// A JSON-RPC message (a result or an error) as the HTTP answer: JSON, unless the
    /// client named only SSE.
    fn answer(&self, status: StatusCode, message: Value) -> Response {
        if !self.json && self.sse {
            return call::sse_of(vec![message]);
        }
        json_response(status, &message)
    }

    fn result(&self, id: &Value, result: Value) -> Response {
        self.answer(StatusCode::OK, rpc_message(self.era, id, Ok(result)))
    }

    fn error(&self, id: &Value, error: RpcError) -> Response {
        self.answer(
            error.status(self.era),
            rpc_message(self.era, id, Err(error)),
        )
    }
}

/// The JSON-RPC response to request `id`; a modern result also says its type and who
/// answered.
fn rpc_message(era: Era, id: &Value, outcome: Result<Value, RpcError>) -> Value {
    match outcome {
        Ok(mut result) => {
            if era == Era::Modern
                && let Some(object) = result.as_object_mut()
            {
                object
                    .entry("resultType")
                    .or_insert_with(|| json!("complete"));
                let meta = object
                    .entry("_meta")
                    .or_insert_with(|| Value::Object(Map::new()));
                if let Some(meta) = meta.as_object_mut() {
                    meta.insert(META_SERVER_INFO.into(), server_info());
                }
            }
            json!({ "jsonrpc": "2.0", "id": id, "result": result })
        }
        Err(error) => json!({ "jsonrpc": "2.0", "id": id, "error": error.to_json() }),
    }
}

fn server_info() -> Value {
    json!({ "name": "floom", "title": "Floom runtime", "version": env!("CARGO_PKG_VERSION") })
}

fn json_response(status: StatusCode, message: &Value) -> Response {
    let body = serde_json::to_vec(message).unwrap_or_default();
    let mut response = (status, body).into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}

/// An HTTP-level refusal whose body is a JSON-RPC error, so that MCP clients show its
/// message.
fn refusal(status: StatusCode, id: &Value, code: i64, message: impl Into<String>) -> Response {
    let error = RpcError::new(code, message);
    let mut response = json_response(
        status,
        &json!({ "jsonrpc": "2.0", "id": id, "error": error.to_json() }),
    );
    if status == StatusCode::UNAUTHORIZED {
        response.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_static("Bearer realm=\"floom\""),
        );
    }
    response
}

async fn not_allowed() -> Response {
    let mut response = refusal(
        StatusCode::METHOD_NOT_ALLOWED,
        &Value::Null,
        INVALID_REQUEST,
        "the MCP endpoint takes POST only: this server keeps no sessions, so it has no \
         stream to GET and nothing to DELETE",
    );
    response
        .headers_mut()
        .insert(header::ALLOW, HeaderValue::from_static("POST"));
    response
}

async fn all_apps(
    State(state): State<AppState>,
    caller: Result<Caller, ApiError>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    serve(state, Scope::All, caller, headers, body).await
}

async fn one_app(
    State(state): State<AppState>,
    PathParams(slug): PathParams<String>,
    caller: Result<Caller, ApiError>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    serve(state, Scope::App(slug), caller, headers, body).await
}

/// Whether `origin` (an `Origin` header) is this server's own, as the client reached it
/// (its `Host`). Browsers send `Origin` on cross-site requests; a page of another site
/// must not drive an agent's tools (DNS rebinding), so anything else is refused.
fn own_origin(origin: &str, headers: &HeaderMap) -> bool {
    let Some(host) = headers.get(header::HOST).and_then(|h| h.to_str().ok()) else {
        return false;
    };
    let authority = origin
        .strip_prefix("http://")
        .or_else(|| origin.strip_prefix("https://"));
    authority.is_some_and(|a| a.trim_end_matches('/').eq_ignore_ascii_case(host))
}

/// Which response types the client named in `Accept` (no header takes either).
fn accepts(headers: &HeaderMap) -> (bool, bool) {
    let Some(accept) = headers.get(header::ACCEPT).and_then(|a| a.to_str().ok()) else {
        return (true, false);
    };
    let accept = accept.to_ascii_lowercase();
    let any = accept.contains("*/*");
    let json = any || accept.contains("application/json") || accept.contains("application/*");
    let sse = accept.contains("text/event-stream");
    (json || !sse, sse)
}

fn header_str<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

/// A header value, decoded from the `=?base64?...?=` form when it has it.
fn decoded_header(headers: &HeaderMap, name: &str) -> Option<String> {
    let value = header_str(headers, name)?;
    match value
        .strip_prefix("=?base64?")
        .and_then(|v| v.strip_suffix("?="))
    {
        Some(encoded) => base64::engine::general_purpose::STANDARD
            .decode(encoded)
            .ok()
            .and_then(|bytes| String::from_utf8(bytes).ok()),
        None => Some(value.to_owned()),
    }
}

async fn serve(
    state: AppState,
    scope: Scope,
    caller: Result<Caller, ApiError>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    if let Some(origin) = header_str(&headers, "origin")
        && !own_origin(origin, &headers)
    {
        return refusal(
            StatusCode::FORBIDDEN,
            &Value::Null,
            INVALID_REQUEST,
            format!("requests from the web origin {origin:?} are refused: it is not this server's"),
        );
    }
    let caller = match caller {
        Ok(caller) => caller,
        Err(error) => {
            return refusal(
                error.status(),
                &Value::Null,
                INVALID_REQUEST,
                format!("{}: {}", error.code(), error.detail()),
            );
        }
    };
    let bytes = match read_limited(body, state.config.max_body).await {
        Ok(bytes) => bytes,
        Err(error) => return error.into_response(),
    };
    let message: Value = match serde_json::from_slice(&bytes) {
        Ok(message) => message,
        Err(e) => {
            return refusal(
                StatusCode::BAD_REQUEST,
                &Value::Null,
                PARSE_ERROR,
                format!("Parse error: the body is not JSON: {e}"),
            );
        }
    };
    let Value::Object(message) = message else {
        let (code, text) = if message.is_array() {
            (
                INVALID_REQUEST,
                "JSON-RPC batches are not part of MCP since 2025-06-18: send one message per \
                 request",
            )
        } else {
            (
                INVALID_REQUEST,
                "the body must be a JSON-RPC message (an object)",
            )
        };
        return refusal(StatusCode::BAD_REQUEST, &Value::Null, code, text);
    };
    let id = message.get("id").cloned();
    let method = message.get("method").and_then(Value::as_str);
    let valid_id = id
        .as_ref()
        .is_none_or(|id| id.is_string() || id.is_i64() || id.is_u64());
    if message.get("jsonrpc").and_then(Value::as_str) != Some("2.0") || !valid_id {
        return refusal(
            StatusCode::BAD_REQUEST,
            &id.filter(|_| valid_id).unwrap_or(Value::Null),
            INVALID_REQUEST,
            "not a JSON-RPC 2.0 message: it needs \"jsonrpc\": \"2.0\" and a string or integer \
             \"id\" (requests) or no id (notifications)",
        );
    }
    let Some(method) = method else {
        // A response to a request of ours: we send none, so there is nothing to match.
        if id.is_some() && (message.contains_key("result") || message.contains_key("error")) {
            return StatusCode::ACCEPTED.into_response();
        }
        return refusal(
            StatusCode::BAD_REQUEST,
            &id.unwrap_or(Value::Null),
            INVALID_REQUEST,
            "a JSON-RPC request needs a \"method\"",
        );
    };
    let method = method.to_owned();
    let params = message.get("params").cloned().unwrap_or(Value::Null);
    let reply_id = id.clone().unwrap_or(Value::Null);

    let era = match era(&headers, &method, &params, id.is_some()) {
        Ok(era) => era,
        Err(error) => {
            let status = error.status(Era::Modern);
            return json_response(
                status,
                &json!({ "jsonrpc": "2.0", "id": reply_id, "error": error.to_json() }),
            );
        }
    };
    if let Err(response) = check_scope(&state, &caller, &scope, &reply_id) {
        return response;
    }
    let (json, sse) = accepts(&headers);
    let session = header_str(&headers, "mcp-session-id")
        .filter(|s| s.len() <= MAX_SESSION_ID && s.bytes().all(|b| b.is_ascii_graphic()))
        .map(str::to_owned);
    let exchange = Exchange {
        state,
        caller,
        scope,
        era,
        headers,
        session,
        sse,
        json,
    };
    let Some(id) = id else {
        return notification(&exchange, &method, &params).await;
    };
    request(&exchange, &id, &method, &params).await
}

/// The era of a message, after checking what its headers say against its body.
fn era(headers: &HeaderMap, method: &str, params: &Value, request: bool) -> Result<Era, RpcError> {
    let header = header_str(headers, "mcp-protocol-version");
    let meta = params.get("_meta");
    let meta_version = meta.and_then(|m| m.get(META_PROTOCOL_VERSION));
    // The handshake itself negotiates the version; whatever a header says, it is the
    // handshake era's.
    if method == "initialize" {
        return Ok(Era::Handshake);
    }
    match header {
        Some(version) if MODERN_VERSIONS.contains(&version) => {}
        Some(version) if HANDSHAKE_VERSIONS.contains(&version) => return Ok(Era::Handshake),
        Some(version) => return Err(unsupported_version(version)),
        // A modern body without its header breaks the 2026-07-28 rules; a body without
        // either is an older client that never sends the header.
        None if meta_version.is_some() => {
            return Err(RpcError::new(
                HEADER_MISMATCH,
                "the MCP-Protocol-Version header is missing: it must repeat the request's \
                 _meta protocol version",
            ));
        }
        None => return Ok(Era::Handshake),
    }
    // Modern: the transport rules apply to requests (notifications have none).
    if !request {
        return Ok(Era::Modern);
    }
    let version = header.unwrap_or_default();
    // Readers that take the first copy and readers that take the last would disagree.
    if let Some(twice) = ["mcp-protocol-version", "mcp-method", "mcp-name"]
        .into_iter()
        .find(|name| headers.get_all(*name).iter().count() > 1)
    {
        return Err(RpcError::new(
            HEADER_MISMATCH,
            format!("the {twice} header appears more than once"),
        ));
    }
    let Some(meta) = meta.and_then(Value::as_object) else {
        return Err(RpcError::invalid_params(format!(
            "params._meta must be an object carrying {META_PROTOCOL_VERSION:?} and \
             {META_CLIENT_CAPABILITIES:?} (MCP 2026-07-28 sends them with every request)"
        )));
    };
    let missing: Vec<&str> = [META_PROTOCOL_VERSION, META_CLIENT_CAPABILITIES]
        .into_iter()
        .filter(|key| !meta.contains_key(*key))
        .collect();
    if !missing.is_empty() {
        return Err(RpcError::invalid_params(format!(
            "params._meta lacks {}",
            missing.join(" and ")
        )));
    }
    if meta_version.and_then(Value::as_str) != Some(version) {
        return Err(RpcError::new(
            HEADER_MISMATCH,
            "the MCP-Protocol-Version header does not match the request's _meta protocol version",
        ));
    }
    if header_str(headers, "mcp-method") != Some(method) {
        return Err(RpcError::new(
            HEADER_MISMATCH,
            format!("the Mcp-Method header must be present and say {method:?}"),
        ));
    }
    if method == "tools/call"
        && let Some(name) = params.get("name").and_then(Value::as_str)
        && decoded_header(headers, "mcp-name").as_deref() != Some(name)
    {
        return Err(RpcError::new(
            HEADER_MISMATCH,
            format!("the Mcp-Name header must be present and say {name:?}"),
        ));
    }
    Ok(Era::Modern)
}

fn supported_versions() -> Vec<&'static str> {
    MODERN_VERSIONS
        .iter()
        .chain(HANDSHAKE_VERSIONS)
        .copied()
        .collect()
}

fn unsupported_version(requested: &str) -> RpcError {
    let mut error = RpcError::new(
        UNSUPPORTED_PROTOCOL_VERSION,
        format!(
            "Unsupported protocol version {requested:?}: this server speaks {}",
            supported_versions().join(", ")
        ),
    );
    error.data = Some(json!({ "supported": supported_versions(), "requested": requested }));
    error
}

/// Refuses a per-app URL whose app the caller may not run: 401 (with the challenge)
/// when a token would help, else 404, as the REST API answers.
#[allow(clippy::result_large_err)]
fn check_scope(
    state: &Services,
    caller: &Caller,
    scope: &Scope,
    id: &Value,
) -> Result<(), Response> {
    let Scope::App(slug) = scope else {
        return Ok(());
    };
    let app = floom_runtime::is_slug(slug)
        .then(|| state.registry.current(slug))
        .flatten();
    match app {
        Some(app) if app.record.public || caller.covers(slug) => Ok(()),
        Some(_) if !caller.has_credentials() => Err(refusal(
            StatusCode::UNAUTHORIZED,
            id,
            INVALID_REQUEST,
            format!(
                "{slug} is private: send a token that covers it (Authorization: Bearer <token>)"
            ),
        )),
        _ => Err(refusal(
            StatusCode::NOT_FOUND,
            id,
            INVALID_REQUEST,
            format!("no app {slug:?} at this URL"),
        )),
    }
}

async fn notification(exchange: &Exchange, method: &str, params: &Value) -> Response {
    if method == "notifications/cancelled"
        && let Some(request_id) = params.get("requestId")
    {
        call::cancel(exchange, request_id).await;
    }
    // Every other notification (initialized, progress, roots...) needs nothing here.
    StatusCode::ACCEPTED.into_response()
}

async fn request(exchange: &Exchange, id: &Value, method: &str, params: &Value) -> Response {
    let outcome = match (method, exchange.era) {
        ("initialize", _) => initialize(exchange, params),
        ("server/discover", _) => Ok(discover(exchange)),
        ("ping", Era::Handshake) => Ok(json!({})),
        ("tools/list", _) => tools::list(exchange, params),
        ("tools/call", _) => return call::call(exchange, id, params).await,
        _ => Err(RpcError::new(
            METHOD_NOT_FOUND,
            format!("Method not found: {method} (this server serves tools)"),
        )),
    };
    let mut response = match outcome {
        Ok(result) => exchange.result(id, result),
        Err(error) => exchange.error(id, error),
    };
    if method == "initialize" && response.status().is_success() {
        // Random and unstored: it namespaces this client's request ids (see the module
        // docs), it does not open a session.
        if let Ok(value) = random_token()
            .map_err(|_| ())
            .and_then(|t| HeaderValue::from_str(&t[..32]).map_err(|_| ()))
        {
            response.headers_mut().insert("mcp-session-id", value);
        }
    }
    response
}

fn instructions(exchange: &Exchange) -> String {
    let scope = match &exchange.scope {
        Scope::All => "the apps published on this floom server".to_owned(),
        Scope::App(slug) => format!("the app {slug} on this floom server"),
    };
    format!(
        "Each tool runs an action of {scope} in a sandbox and returns its output as \
         structured content. A failed run is a tool error naming its code. A run still going \
         at the server's time limit returns its execution id and view token: call \
         {BUILTIN_EXECUTION_TOOL} with them to get the result instead of calling the tool again."
    )
}

fn capabilities() -> Value {
    json!({ "tools": { "listChanged": false } })
}

fn initialize(exchange: &Exchange, params: &Value) -> Result<Value, RpcError> {
    let Some(requested) = params.get("protocolVersion").and_then(Value::as_str) else {
        return Err(RpcError::invalid_params(
            "initialize needs params.protocolVersion (a string)",
        ));
    };
    // The client's version when it is one of ours, else our newest: the client then
    // decides whether it speaks that.
    let version = HANDSHAKE_VERSIONS
        .iter()
        .find(|v| **v == requested)
        .unwrap_or(&HANDSHAKE_VERSIONS[0]);
    Ok(json!({
        "protocolVersion": version,
        "capabilities": capabilities(),
        "serverInfo": server_info(),
        "instructions": instructions(exchange),
    }))
}

fn discover(exchange: &Exchange) -> Value {
    json!({
        "supportedVersions": supported_versions(),
        "capabilities": capabilities(),
        "instructions": instructions(exchange),
        // What a token may see differs: never shared between callers, never stale.
        "ttlMs": 0,
        "cacheScope": "private",
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.insert(*name, HeaderValue::from_str(value).unwrap());
        }
        map
    }

    #[test]
    fn origins_must_be_the_servers_own() {
        let h = headers(&[("host", "127.0.0.1:8000")]);
        assert!(own_origin("http://127.0.0.1:8000", &h));
        assert!(own_origin("https://127.0.0.1:8000/", &h));
        assert!(!own_origin("http://evil.example", &h));
        assert!(!own_origin("null", &h));
        assert!(!own_origin("http://127.0.0.1:8001", &h));
    }

    #[test]
    fn accept_naming_only_json_gets_json() {
        assert_eq!(
            accepts(&headers(&[("accept", "application/json")])),
            (true, false)
        );
        assert_eq!(
            accepts(&headers(&[(
                "accept",
                "application/json, text/event-stream"
            )])),
            (true, true)
        );
        assert_eq!(
            accepts(&headers(&[("accept", "text/event-stream")])),
            (false, true)
        );
        assert_eq!(accepts(&HeaderMap::new()), (true, false));
    }

    #[test]
    fn base64_header_values_are_decoded() {
        let h = headers(&[("mcp-name", "=?base64?SGVsbG8sIOS4lueVjA==?=")]);
        assert_eq!(decoded_header(&h, "mcp-name").unwrap(), "Hello, 世界");
        let h = headers(&[("mcp-name", "hello")]);
        assert_eq!(decoded_header(&h, "mcp-name").unwrap(), "hello");
    }

    #[test]
    fn the_era_follows_the_headers_and_they_must_agree_with_the_body() {
        let modern = json!({ "_meta": {
            META_PROTOCOL_VERSION: "2026-07-28", META_CLIENT_CAPABILITIES: {} } });
        let h = headers(&[
            ("mcp-protocol-version", "2026-07-28"),
            ("mcp-method", "tools/list"),
        ]);
        assert_eq!(era(&h, "tools/list", &modern, true).unwrap(), Era::Modern);
        let wrong_method = headers(&[
            ("mcp-protocol-version", "2026-07-28"),
            ("mcp-method", "tools/call"),
        ]);
        assert_eq!(
            era(&wrong_method, "tools/list", &modern, true)
                .unwrap_err()
                .code,
            HEADER_MISMATCH
        );
        assert_eq!(
            era(&HeaderMap::new(), "tools/list", &modern, true)
                .unwrap_err()
                .code,
            HEADER_MISMATCH
        );
        let legacy = headers(&[("mcp-protocol-version", "2025-06-18")]);
        assert_eq!(
            era(&legacy, "tools/list", &Value::Null, true).unwrap(),
            Era::Handshake
        );
        let unknown = headers(&[("mcp-protocol-version", "1999-01-01")]);
        let error = era(&unknown, "tools/list", &Value::Null, true).unwrap_err();
        assert_eq!(error.code, UNSUPPORTED_PROTOCOL_VERSION);
        assert_eq!(error.data.unwrap()["supported"][0], "2026-07-28");
        assert_eq!(
            era(&h, "tools/list", &json!({}), true).unwrap_err().code,
            INVALID_PARAMS
        );
    }
}
