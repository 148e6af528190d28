//! `tools/call`: an app tool starts an execution through [`crate::runs::start`]
//! (`trigger_source: "mcp"`, the REST API's validation, limits, rate limits and
//! idempotency) and answers with its outcome, waiting up to the sync limit; the built-in
//! [`BUILTIN_EXECUTION_TOOL`] reads one back.
//!
//! The answer is JSON when the run ends within [`SSE_AFTER`]; otherwise (and at once
//! with a `progressToken`) it is an SSE stream: a `notifications/progress` per chunk,
//! comments that keep it alive (and reveal a client that left), then the result. Under
//! 2026-07-28 a client that closes that stream cancels the run; in the handshake era
//! `notifications/cancelled` does, found through the call key stored with the execution.

use std::convert::Infallible;
use std::time::Duration;

use axum::http::HeaderValue;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use tokio::sync::mpsc;
use tokio::time::Instant;

use super::tools::{self, AppTool, BUILTIN_EXECUTION_TOOL, is_object_schema};
use super::{Era, Exchange, INTERNAL_ERROR, RpcError, Scope, rpc_message};
use crate::api::AppState;
use crate::api::auth::sha256_hex;
use crate::api::error::ApiError;
use crate::api::executions::{Envelope, readable};
use crate::follow::{Waited, follow, wait_for_end};
use crate::runs::{self, StartRun};
use crate::scheduler::Subscription;
use crate::store::{ExecStatus, TriggerSource};

/// How long a call may wait for its run before the answer turns into an SSE stream
/// (when the client takes one).
const SSE_AFTER: Duration = Duration::from_secs(1);
/// How often a quiet stream gets a comment: keeps proxies from timing it out, and a
/// failed write is how a client that left is noticed.
const KEEP_ALIVE: Duration = Duration::from_secs(5);
/// `_meta` keys of a result.
const META_EXECUTION_ID: &str = "dev.floom/execution_id";
/// The run's artifacts, as the execution detail lists them (with signed URLs).
const META_ARTIFACTS: &str = "dev.floom/artifacts";
const META_VIEW_TOKEN: &str = "dev.floom/view_token";
const META_STATUS: &str = "dev.floom/status";
/// The `_meta` key of a call's idempotency key (like the REST `Idempotency-Key`).
const META_IDEMPOTENCY_KEY: &str = "dev.floom/idempotency_key";

/// The key an execution started by this call is stored with: the caller, the client's
/// session (when it has one) and the JSON-RPC id, hashed.
fn call_key(exchange: &Exchange, request_id: &Value) -> String {
    sha256_hex(&format!(
        "{}\n{}\n{request_id}",
        exchange.caller.identity(),
        exchange.session.as_deref().unwrap_or_default()
    ))
}

/// `notifications/cancelled`: cancels the caller's call in flight with that request id.
pub(super) async fn cancel(exchange: &Exchange, request_id: &Value) {
    let key = call_key(exchange, request_id);
    let found = exchange.state.store.unfinished_mcp_call(&key).await;
    match found {
        Ok(Some(id)) => {
            if let Err(e) = exchange.state.scheduler.cancel(&id).await {
                tracing::warn!(execution = %id, "cancelling an MCP call failed: {e:#}");
            }
        }
        Ok(None) => {}
        Err(e) => tracing::warn!("finding an MCP call to cancel failed: {e:#}"),
    }
}

/// Cancels the execution when dropped armed: a modern-era call whose stream (or
/// request) the client closed before the result.
struct CancelOnDrop {
    state: AppState,
    id: String,
    armed: bool,
}

impl Drop for CancelOnDrop {
    fn drop(&mut self) {
        if !self.armed {
            return;
        }
        let (state, id) = (self.state.clone(), std::mem::take(&mut self.id));
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(async move {
                if let Err(e) = state.scheduler.cancel(&id).await {
                    tracing::warn!(execution = %id, "cancelling a closed MCP call failed: {e:#}");
                }
            });
        }
    }
}

/// An SSE answer carrying `messages` as they come; the one with an `id` (the response)
/// is last and disarms `guard`, which the stream holds: dropping the stream before (the
/// client left) drops the guard armed.
fn sse(messages: mpsc::Receiver<Value>, guard: Option<CancelOnDrop>) -> Response {
    let stream =
        futures_util::stream::unfold((messages, guard), |(mut messages, mut guard)| async move {
            let message = messages.recv().await?;
            if message.get("id").is_some()
                && let Some(guard) = guard.as_mut()
            {
                guard.armed = false;
            }
            let event = Event::default().event("message").data(message.to_string());
            Some((Ok::<_, Infallible>(event), (messages, guard)))
        });
    let mut response = Sse::new(stream)
        .keep_alive(KeepAlive::new().interval(KEEP_ALIVE))
        .into_response();
    // Proxies (nginx) would otherwise hold progress back.
    response
        .headers_mut()
        .insert("x-accel-buffering", HeaderValue::from_static("no"));
    response
}

/// A finished list of messages as an SSE answer.
pub(super) fn sse_of(messages: Vec<Value>) -> Response {
    let (tx, rx) = mpsc::channel(messages.len().max(1));
    for message in messages {
        let _ = tx.try_send(message);
    }
    sse(rx, None)
}

/// How the outcome of an execution becomes a tool result.
#[derive(Clone)]
enum Shape {
    /// An app tool: the output is the structured content, wrapped as `{"result": ...}`
    /// when `wrapped` (a non-object output schema), or when it is not an object.
    App {
        tool: String,
        wrapped: bool,
        view_token: String,
    },
    /// The built-in tool: the structured content is the envelope.
    Execution,
}

/// A call whose run is under way: what answering it needs, owned, so a stream task can
/// take it.
struct Pending {
    state: AppState,
    era: Era,
    request_id: Value,
    execution: String,
    shape: Shape,
}

impl Pending {
    /// The JSON-RPC response for the execution as it stands in `envelope`.
    async fn response(&self, envelope: &Envelope) -> Value {
        let mut result = self.result(envelope);
        if envelope.status.is_terminal() {
            self.add_artifacts(&mut result).await;
        }
        rpc_message(self.era, &self.request_id, Ok(result))
    }

    /// Lists the run's artifacts in `result`: their signed URLs in a text item (links an
    /// agent can hand on without a token) and in `_meta`, leaving `structuredContent` to
    /// the tool's output schema.
    async fn add_artifacts(&self, result: &mut Value) {
        let files = match self.state.store.files(&self.execution).await {
            Ok(files) => files,
            Err(e) => {
                tracing::warn!(execution = %self.execution, "cannot list the artifacts: {e:#}");
                return;
            }
        };
        let listed: Vec<_> = files
            .iter()
            .filter(|f| f.kind == crate::store::FileKind::Artifact)
            .map(|f| self.state.files.listed(f, None))
            .collect();
        if listed.is_empty() {
            return;
        }
        let lines: Vec<String> = listed
            .iter()
            .map(|a| {
                format!(
                    "- {} ({} bytes, {}): {}",
                    a.name, a.size, a.content_type, a.url
                )
            })
            .collect();
        if let Some(content) = result["content"].as_array_mut() {
            content.push(json!({
                "type": "text",
                "text": format!("Artifacts (signed links, valid for a limited time):\n{}", lines.join("\n")),
            }));
        }
        result["_meta"][META_ARTIFACTS] = json!(listed);
    }

    fn result(&self, envelope: &Envelope) -> Value {
        let status = envelope.status;
        let output: Option<Value> = envelope
            .output
            .as_ref()
            .and_then(|o| serde_json::from_str(o.get()).ok());
        let error: Value = envelope
            .error
            .as_ref()
            .and_then(|e| serde_json::from_str(e.get()).ok())
            .unwrap_or(Value::Null);
        let approval: Value = envelope
            .approval
            .as_ref()
            .and_then(|a| serde_json::from_str(a.get()).ok())
            .unwrap_or(Value::Null);
        let id = &self.execution;
        let mut meta = json!({ META_EXECUTION_ID: id, META_STATUS: status });
        let max_wait = self.state.config.max_wait.as_secs();
        let (structured, text, is_error) = match &self.shape {
            Shape::App {
                tool,
                wrapped,
                view_token,
            } => {
                meta[META_VIEW_TOKEN] = json!(view_token);
                match status {
                    ExecStatus::Succeeded => {
                        let output = output.unwrap_or(Value::Null);
                        let text = output.to_string();
                        let structured = if *wrapped || !output.is_object() {
                            json!({ "result": output })
                        } else {
                            output
                        };
                        (structured, text, false)
                    }
                    ExecStatus::AwaitingApproval => (
                        json!({ "execution_id": id, "status": status, "view_token": view_token,
                                "approval": approval }),
                        format!(
                            "The run succeeded, and its output now awaits a person's approval \
                             (execution {id}, expires {}): nothing failed, but there is no \
                             result until someone approves it. Do not call {tool} again: call \
                             {BUILTIN_EXECUTION_TOOL} with {{\"execution_id\": \"{id}\", \
                             \"view_token\": \"{view_token}\"}} later for the outcome. Proposed \
                             output: {}",
                            approval["expires_at"].as_str().unwrap_or("later"),
                            approval["proposed_output"]
                        ),
                        true,
                    ),
                    status if status.is_terminal() => {
                        let mut code = error["code"].as_str().unwrap_or("unknown").to_owned();
                        if let Some(app_code) = error["app_code"].as_str() {
                            code.push_str(&format!(", the app's code {app_code}"));
                        }
                        let text = format!(
                            "The run ended {status} ({code}): {} (execution {id})",
                            error["message"].as_str().unwrap_or_default()
                        );
                        (
                            json!({ "execution_id": id, "status": status, "error": error }),
                            text,
                            true,
                        )
                    }
                    // A tool error, though nothing failed: a result without its
                    // structured output would break the tool's outputSchema, and the
                    // agent must not take it for the output.
                    status => (
                        json!({ "execution_id": id, "status": status, "view_token": view_token }),
                        format!(
                            "The run is still {status} after the server's {max_wait} s limit; \
                             nothing failed and it goes on. Do not call {tool} again (that \
                             starts another run): call {BUILTIN_EXECUTION_TOOL} with \
                             {{\"execution_id\": \"{id}\", \"view_token\": \"{view_token}\"}} \
                             to wait for its result."
                        ),
                        true,
                    ),
                }
            }
            Shape::Execution => {
                let structured = json!({
                    "execution_id": id, "status": status, "output": output, "error": error,
                    "approval": approval,
                });
                let text = if status.is_terminal() {
                    structured.to_string()
                } else if status == ExecStatus::AwaitingApproval {
                    format!(
                        "Execution {id} awaits a person's approval of its output (expires {}); \
                         call {BUILTIN_EXECUTION_TOOL} again later for the outcome.",
                        approval["expires_at"].as_str().unwrap_or("later")
                    )
                } else {
                    format!(
                        "Execution {id} is still {status}: call {BUILTIN_EXECUTION_TOOL} \
                         again to keep waiting."
                    )
                };
                let failed = status.is_terminal() && status != ExecStatus::Succeeded;
                (structured, text, failed)
            }
        };
        json!({
            "content": [{ "type": "text", "text": text }],
            "structuredContent": structured,
            "isError": is_error,
            "_meta": meta,
        })
    }

    async fn envelope(&self, waited: Waited) -> Result<Envelope, ApiError> {
        match waited {
            Waited::Event(event) => Envelope::from_terminal(&self.execution, &event),
            Waited::Ended | Waited::TimedOut => runs::current(&self.state, &self.execution).await,
        }
    }

    /// The response once the run has ended or the time is up, as JSON-RPC.
    async fn settled(&self, waited: Waited) -> Value {
        match self.envelope(waited).await {
            Ok(envelope) => self.response(&envelope).await,
            Err(e) => rpc_message(
                self.era,
                &self.request_id,
                Err(RpcError::new(INTERNAL_ERROR, e.detail().to_owned())),
            ),
        }
    }
}

/// Answers `pending` once its run ends (or the sync limit passes): JSON if that is
/// within [`SSE_AFTER`] or the client takes only JSON, else an SSE stream that waits on.
async fn answer(
    exchange: &Exchange,
    pending: Pending,
    mut subscription: Option<Subscription>,
    mut guard: Option<CancelOnDrop>,
) -> Response {
    let deadline = Instant::now() + exchange.state.config.max_wait;
    let first = if exchange.sse {
        SSE_AFTER.min(exchange.state.config.max_wait)
    } else {
        exchange.state.config.max_wait
    };
    let waited = wait_for_end(&mut subscription, first).await;
    if !matches!(waited, Waited::TimedOut) || !exchange.sse {
        let message = pending.settled(waited).await;
        if let Some(guard) = guard.as_mut() {
            guard.armed = false;
        }
        return exchange.answer(axum::http::StatusCode::OK, message);
    }
    let (tx, rx) = mpsc::channel(1);
    tokio::spawn(async move {
        let left = deadline.saturating_duration_since(Instant::now());
        let waited = tokio::select! {
            waited = wait_for_end(&mut subscription, left) => waited,
            // The client left: nobody to answer.
            () = tx.closed() => return,
        };
        let _ = tx.send(pending.settled(waited).await).await;
    });
    sse(rx, guard)
}

/// Answers with a `notifications/progress` per chunk (the chunk's JSON as its message),
/// then the result.
fn answer_with_progress(pending: Pending, token: Value, guard: Option<CancelOnDrop>) -> Response {
    let (tx, rx) = mpsc::channel(16);
    let deadline = Instant::now() + pending.state.config.max_wait;
    tokio::spawn(async move {
        let state = &pending.state;
        let mut events = follow(
            state.store.clone(),
            state.live.clone(),
            pending.execution.clone(),
            0,
        );
        let mut progress = 0u64;
        let waited = loop {
            let event = tokio::select! {
                event = events.recv() => event,
                () = tokio::time::sleep_until(deadline) => break Waited::TimedOut,
                () = tx.closed() => return,
            };
            let Some(event) = event else {
                break Waited::Ended;
            };
            if event.ends_wait() {
                break Waited::Event(event.into_event());
            }
            if event.kind != "chunk" {
                continue;
            }
            progress += 1;
            let chunk: Value = serde_json::from_str(&event.data).unwrap_or(Value::Null);
            let notification = json!({
                "jsonrpc": "2.0",
                "method": "notifications/progress",
                "params": { "progressToken": token, "progress": progress,
                    "message": chunk["data"].to_string() },
            });
            if tx.send(notification).await.is_err() {
                return;
            }
        };
        let _ = tx.send(pending.settled(waited).await).await;
    });
    sse(rx, guard)
}

/// A call refused before it ran. What the agent can act on (its inputs, a limit, a
/// conflict) is a tool error it sees; an unknown or invisible app is an unknown tool.
fn refused(exchange: &Exchange, id: &Value, name: &str, error: ApiError) -> Response {
    match error.code() {
        "not_found" | "auth_failed" | "forbidden" => exchange.error(
            id,
            RpcError::invalid_params(format!("Unknown tool: {name}")),
        ),
        "internal" if error.status().as_u16() == 500 => {
            exchange.error(id, RpcError::new(INTERNAL_ERROR, error.detail().to_owned()))
        }
        code => {
            let (problems, omitted) = error.input_problems();
            let mut text = format!("The call was refused ({code}): {}", error.detail());
            for problem in problems {
                let path = if problem.path.is_empty() {
                    "(inputs)"
                } else {
                    &problem.path
                };
                text.push_str(&format!("\n  {path}: {}", problem.message));
            }
            let mut detail = json!({ "code": code, "message": error.detail() });
            if !problems.is_empty() {
                detail["errors"] = json!(problems);
            }
            if let Some(omitted) = omitted {
                detail["errors_omitted"] = json!(omitted);
            }
            if let Some(seconds) = error.retry_after() {
                detail["retry_after_s"] = json!(seconds);
                text.push_str(&format!("\nRetry in {seconds} s."));
            }
            exchange.result(
                id,
                json!({
                    "content": [{ "type": "text", "text": text }],
                    "structuredContent": { "error": detail },
                    "isError": true,
                }),
            )
        }
    }
}

/// `tools/call`.
pub(super) async fn call(exchange: &Exchange, id: &Value, params: &Value) -> Response {
    let Some(name) = params.get("name").and_then(Value::as_str) else {
        return exchange.error(id, RpcError::invalid_params("tools/call needs params.name"));
    };
    let arguments = match params.get("arguments") {
        None | Some(Value::Null) => None,
        Some(arguments @ Value::Object(_)) => Some(arguments.clone()),
        Some(_) => {
            return exchange.error(
                id,
                RpcError::invalid_params("params.arguments must be an object"),
            );
        }
    };
    let meta = params.get("_meta");
    let progress = meta
        .and_then(|m| m.get("progressToken"))
        .filter(|t| t.is_string() || t.is_i64() || t.is_u64())
        .cloned();
    if name == BUILTIN_EXECUTION_TOOL {
        return execution(exchange, id, arguments.unwrap_or_else(|| json!({}))).await;
    }
    let Some(AppTool { app, action, .. }) = tools::resolve(exchange, name) else {
        return exchange.error(
            id,
            RpcError::invalid_params(format!("Unknown tool: {name}")),
        );
    };
    let key = meta
        .and_then(|m| m.get(META_IDEMPOTENCY_KEY))
        .and_then(Value::as_str)
        .or_else(|| super::header_str(&exchange.headers, "idempotency-key"))
        .map(runs::idempotency_key)
        .transpose();
    let idempotency_key = match key {
        Ok(key) => key,
        Err(error) => return refused(exchange, id, name, error),
    };
    let streamed = progress.is_some() && exchange.sse;
    let wrapped = app
        .app
        .manifest()
        .action(&action)
        .and_then(|a| a.output_schema.as_ref())
        .is_some_and(|schema| !is_object_schema(schema));
    let started = runs::start(
        &exchange.state,
        &exchange.caller,
        StartRun {
            slug: app.record.slug.clone(),
            action: Some(action),
            action_in_path: true,
            inputs: arguments,
            idempotency_key,
            trigger_source: TriggerSource::Mcp,
            mcp_call: Some(call_key(exchange, id)),
            watch: !streamed,
        },
    )
    .await;
    let started = match started {
        Ok(started) => started,
        Err(error) => return refused(exchange, id, name, error),
    };
    // Under 2026-07-28 a closed stream is the cancellation; an idempotent replay's run
    // belongs to the first call, so it is never cancelled by a replay's.
    let guard = (exchange.era == Era::Modern && !started.replay).then(|| CancelOnDrop {
        state: exchange.state.clone(),
        id: started.id.clone(),
        armed: true,
    });
    let pending = Pending {
        state: exchange.state.clone(),
        era: exchange.era,
        request_id: id.clone(),
        execution: started.id,
        shape: Shape::App {
            tool: name.to_owned(),
            wrapped,
            view_token: started.view_token,
        },
    };
    match progress {
        Some(token) if streamed => answer_with_progress(pending, token, guard),
        _ => answer(exchange, pending, started.subscription, guard).await,
    }
}

/// The built-in tool: reads an execution the caller may read (a token that covers its
/// app, or its view token), waiting for its end unless `wait` is false.
async fn execution(exchange: &Exchange, id: &Value, arguments: Value) -> Response {
    let invalid = |message: &str| {
        refused(
            exchange,
            id,
            BUILTIN_EXECUTION_TOOL,
            ApiError::invalid_input(message.to_owned()),
        )
    };
    let Some(execution_id) = arguments.get("execution_id").and_then(Value::as_str) else {
        return invalid("execution_id (a string, exec_...) is required");
    };
    let view_token = match arguments.get("view_token") {
        None | Some(Value::Null) => None,
        Some(Value::String(token)) => Some(token.as_str()),
        Some(_) => return invalid("view_token must be a string"),
    };
    let wait = match arguments.get("wait") {
        None | Some(Value::Null) => true,
        Some(Value::Bool(wait)) => *wait,
        Some(_) => return invalid("wait must be true or false"),
    };
    let state = &exchange.state;
    // Subscribe before reading, so an end between the two is not missed.
    let subscription = wait.then(|| state.live.subscribe(execution_id)).flatten();
    let record = readable(
        state,
        &exchange.caller,
        &exchange.headers,
        execution_id,
        view_token,
    )
    .await;
    let record = match record {
        Ok(record) => match &exchange.scope {
            Scope::App(slug) if record.app != *slug => Err(ApiError::not_found(format!(
                "no execution {execution_id:?}"
            ))),
            _ => Ok(record),
        },
        Err(error) => Err(error),
    };
    let record = match record {
        Ok(record) => record,
        // Reading is this tool's whole job: a refusal is its result, not an unknown tool.
        Err(error) => {
            let text = format!("{}: {}", error.code(), error.detail());
            return exchange.result(
                id,
                json!({
                    "content": [{ "type": "text", "text": text }],
                    "structuredContent": { "error": { "code": error.code(), "message": error.detail() } },
                    "isError": true,
                }),
            );
        }
    };
    let pending = Pending {
        state: state.clone(),
        era: exchange.era,
        request_id: id.clone(),
        execution: record.id.clone(),
        shape: Shape::Execution,
    };
    if !wait || record.status.is_terminal() {
        let message = match Envelope::from_record(&record) {
            Ok(envelope) => pending.response(&envelope).await,
            Err(e) => rpc_message(
                exchange.era,
                id,
                Err(RpcError::new(INTERNAL_ERROR, e.detail().to_owned())),
            ),
        };
        return exchange.answer(axum::http::StatusCode::OK, message);
    }
    answer(exchange, pending, subscription, None).await
}
