//! `/api/executions`: read one (envelope plus detail), its events (SSE, resumable), its
//! logs (NDJSON), cancel it, and list them with cursor pagination.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::Body;
use axum::extract::{FromRequestParts, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use bytes::Bytes;
use futures_util::Stream;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use tokio::sync::mpsc;
use tokio::time::{Instant, Sleep};
use utoipa::{IntoParams, ToSchema};

use super::auth::{Caller, view_token_matches};
use super::error::{ApiError, Problem};
use super::extract::{PathParams, QueryParams};
use super::{AppState, timestamp};
use crate::artifacts::Listed;
use crate::follow::{Waited, follow, wait_for_end};
use crate::live::LiveEvent;
use crate::scheduler::Cancelled;
use crate::store::{
    Approval, ExecStatus, ExecutionRecord, ExecutionSummary, FileKind, ListExecutions, StoredEvent,
    TriggerSource,
};

/// The execution routes.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/executions", get(list))
        .route("/api/executions/{id}", get(detail))
        .route("/api/executions/{id}/events", get(events))
        .route("/api/executions/{id}/logs", get(logs))
        .route("/api/executions/{id}/cancel", post(cancel))
}

/// The execution envelope (SPEC section 4).
#[derive(Debug, Serialize, ToSchema)]
pub struct Envelope {
    /// `exec_...`
    pub execution_id: String,
    /// Where it is.
    pub status: ExecStatus,
    /// The output, once succeeded: any JSON value.
    #[schema(value_type = Value)]
    pub output: Option<Box<RawValue>>,
    /// The error, once failed.
    #[schema(value_type = Option<RunErrorDoc>)]
    pub error: Option<Box<RawValue>>,
    /// Shown once, when the execution is created.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub view_token: Option<String>,
    /// For an action that needs approval: the proposed output, and the decision once
    /// made (SPEC section 11).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Approval>)]
    pub approval: Option<Box<RawValue>>,
}

/// The fields of a terminal event's data that the envelope needs.
#[derive(Deserialize)]
struct TerminalData {
    status: ExecStatus,
    #[serde(default)]
    output: Option<Box<RawValue>>,
    #[serde(default)]
    error: Option<Box<RawValue>>,
    #[serde(default)]
    approval: Option<Box<RawValue>>,
}

fn raw(json: Option<&String>) -> Result<Option<Box<RawValue>>, ApiError> {
    json.map(|text| RawValue::from_string(text.clone()))
        .transpose()
        .map_err(|e| ApiError::internal(format!("stored JSON is broken: {e}")))
}

impl Envelope {
    /// A just-accepted execution.
    pub fn queued(id: &str) -> Self {
        Envelope {
            execution_id: id.to_owned(),
            status: ExecStatus::Queued,
            output: None,
            error: None,
            view_token: None,
            approval: None,
        }
    }

    /// From the `end` or `error` event, or the `approval` event of an execution now
    /// awaiting approval.
    pub fn from_terminal(id: &str, event: &StoredEvent) -> Result<Self, ApiError> {
        let data: TerminalData = serde_json::from_str(&event.data)
            .map_err(|e| ApiError::internal(format!("terminal event of {id}: {e}")))?;
        Ok(Envelope {
            execution_id: id.to_owned(),
            status: data.status,
            output: data.output.filter(|_| data.status == ExecStatus::Succeeded),
            error: data.error,
            view_token: None,
            approval: data.approval,
        })
    }

    /// From the stored execution.
    pub fn from_record(record: &ExecutionRecord) -> Result<Self, ApiError> {
        Ok(Envelope {
            execution_id: record.id.clone(),
            status: record.status,
            output: raw(record.output.as_ref())?,
            error: raw(record.error.as_ref())?,
            view_token: None,
            approval: raw(record.approval.as_ref())?,
        })
    }

    fn error_field(&self, field: &str) -> Option<String> {
        let error: serde_json::Value = serde_json::from_str(self.error.as_ref()?.get()).ok()?;
        error.get(field)?.as_str().map(str::to_owned)
    }

    /// Whether the sandbox could not start.
    pub fn is_sandbox_unavailable(&self) -> bool {
        self.error_field("code").as_deref() == Some("sandbox_unavailable")
    }

    /// The error's message.
    pub fn error_message(&self) -> String {
        self.error_field("message").unwrap_or_default()
    }
}

/// One server-sent event: `id` is the sequence number, `event` the type (start, chunk,
/// log, artifact, approval, decision, end, error), `data` JSON that repeats the type.
#[derive(ToSchema)]
#[allow(dead_code)] // Only its schema is used: events are written by `sse`.
pub struct SseEvent {
    /// The per-execution sequence number.
    id: String,
    /// start, chunk, log, artifact, approval, decision, end or error.
    event: String,
    /// JSON text.
    data: String,
}

/// Why an execution did not succeed.
#[derive(ToSchema)]
#[allow(dead_code)] // Only its schema is used: errors are stored as JSON text.
pub struct RunErrorDoc {
    /// app_error, exit_code, trap, memory_limit, fuel_exhausted, timeout, cancelled,
    /// output_too_large, sandbox_unavailable, host_restarted, rejected or
    /// approval_expired.
    code: String,
    /// What went wrong.
    message: String,
    /// For app_error: the app's own code.
    app_code: Option<String>,
}

/// What every view of an execution says besides its envelope.
#[derive(Serialize, ToSchema)]
pub struct Facts {
    /// The app's slug.
    app: String,
    /// The app version it runs.
    version: i64,
    /// The action.
    action: String,
    /// How many times it was started.
    attempts: i64,
    /// When it was accepted (RFC 3339).
    created_at: String,
    /// When its last attempt started.
    started_at: Option<String>,
    /// When it ended.
    finished_at: Option<String>,
    /// From start to end.
    duration_ms: Option<i64>,
    /// What the run used.
    #[schema(value_type = Option<Object>)]
    usage: Option<Box<RawValue>>,
    /// How it started: api, cli, mcp, webhook, ui or schedule.
    trigger_source: TriggerSource,
}

impl Facts {
    #[allow(clippy::too_many_arguments)]
    fn new(
        app: &str,
        version: i64,
        action: &str,
        attempts: i64,
        created_at: i64,
        started_at: Option<i64>,
        finished_at: Option<i64>,
        usage: Option<&String>,
        trigger_source: TriggerSource,
    ) -> Result<Self, ApiError> {
        Ok(Facts {
            app: app.to_owned(),
            version,
            action: action.to_owned(),
            attempts,
            created_at: timestamp(created_at),
            started_at: started_at.map(timestamp),
            finished_at: finished_at.map(timestamp),
            duration_ms: started_at.zip(finished_at).map(|(s, f)| f - s),
            usage: raw(usage)?,
            trigger_source,
        })
    }
}

/// An execution with its detail.
#[derive(Serialize, ToSchema)]
pub struct Detail {
    #[serde(flatten)]
    envelope: Envelope,
    #[serde(flatten)]
    facts: Facts,
    /// The inputs.
    #[schema(value_type = Object)]
    inputs: Box<RawValue>,
    /// Its step, after an approved `then` hands the output to a next action: 2, 3, ...
    #[serde(skip_serializing_if = "Option::is_none")]
    step: Option<i64>,
    /// The action that step runs.
    #[serde(skip_serializing_if = "Option::is_none")]
    step_action: Option<String>,
    /// The input files uploaded with the run (shown to the app under `/in`).
    input_files: Vec<Listed>,
    /// What the run left under `/out`, once it has ended; each `url` is signed and
    /// expires (`?url_ttl_s=` asks for a shorter life than the server's).
    artifacts: Vec<Listed>,
}

/// An execution's detail, with its files listed under URLs signed for `url_ttl`.
pub async fn detail_of(
    state: &AppState,
    record: &ExecutionRecord,
    url_ttl: Option<Duration>,
) -> Result<Detail, ApiError> {
    let files = state.store.files(&record.id).await?;
    let (inputs, artifacts): (Vec<_>, Vec<_>) =
        files.iter().partition(|f| f.kind == FileKind::Input);
    let mut detail = detail_view(record)?;
    detail.input_files = inputs
        .into_iter()
        .map(|f| state.files.listed(f, url_ttl))
        .collect();
    detail.artifacts = artifacts
        .into_iter()
        .map(|f| state.files.listed(f, url_ttl))
        .collect();
    Ok(detail)
}

pub(super) fn detail_view(record: &ExecutionRecord) -> Result<Detail, ApiError> {
    Ok(Detail {
        input_files: Vec::new(),
        artifacts: Vec::new(),
        envelope: Envelope::from_record(record)?,
        facts: Facts::new(
            &record.app,
            record.version,
            &record.action,
            record.attempts,
            record.created_at,
            record.started_at,
            record.finished_at,
            record.usage.as_ref(),
            record.trigger_source,
        )?,
        inputs: raw(Some(&record.inputs))?
            .unwrap_or_else(|| RawValue::from_string("{}".into()).expect("JSON")),
        step: (record.step > 1).then_some(record.step),
        step_action: record.step_run.as_ref().map(|s| s.action.clone()),
    })
}

/// An execution in a list: its detail without the inputs and output, which can be a
/// megabyte each (read them with `GET /api/executions/{id}`).
#[derive(Serialize, ToSchema)]
pub struct Summary {
    /// `exec_...`
    execution_id: String,
    /// Where it is.
    status: ExecStatus,
    /// The error, once failed.
    #[schema(value_type = Option<RunErrorDoc>)]
    error: Option<Box<RawValue>>,
    #[serde(flatten)]
    facts: Facts,
}

fn summary_view(summary: &ExecutionSummary) -> Result<Summary, ApiError> {
    Ok(Summary {
        execution_id: summary.id.clone(),
        status: summary.status,
        error: raw(summary.error.as_ref())?,
        facts: Facts::new(
            &summary.app,
            summary.version,
            &summary.action,
            summary.attempts,
            summary.created_at,
            summary.started_at,
            summary.finished_at,
            summary.usage.as_ref(),
            summary.trigger_source,
        )?,
    })
}

#[derive(Deserialize, Default)]
struct ViewQuery {
    view_token: Option<String>,
    cursor: Option<String>,
    url_ttl_s: Option<u64>,
}

/// The execution named in the path, when the caller may read it: the admin, or whoever
/// holds its view token (`?view_token=` or `x-floom-view-token`).
pub(super) struct Readable {
    pub(super) record: ExecutionRecord,
    /// `?cursor=`, for the event stream.
    cursor: Option<String>,
    /// `?url_ttl_s=`: how long the signed file URLs of the answer should live.
    url_ttl: Option<Duration>,
}

impl FromRequestParts<AppState> for Readable {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let PathParams(id) = PathParams::<String>::from_request_parts(parts, state).await?;
        let QueryParams(query) = QueryParams::<ViewQuery>::from_request_parts(parts, state).await?;
        let caller = Caller::from_request_parts(parts, state).await?;
        let record = readable(
            state,
            &caller,
            &parts.headers,
            &id,
            query.view_token.as_deref(),
        )
        .await?;
        Ok(Readable {
            record,
            cursor: query.cursor,
            url_ttl: query.url_ttl_s.map(Duration::from_secs),
        })
    }
}

/// The execution `id` when `caller` may read it: a token that covers its app, or its
/// view token (`view_token`, else the `x-floom-view-token` header).
pub async fn readable(
    state: &AppState,
    caller: &Caller,
    headers: &HeaderMap,
    id: &str,
    view_token: Option<&str>,
) -> Result<ExecutionRecord, ApiError> {
    let missing = || ApiError::not_found(format!("no execution {id:?}"));
    if !id.starts_with("exec_") || id.len() > 64 {
        return Err(missing());
    }
    let record = state.store.execution(id).await?.ok_or_else(missing)?;
    let header_token = headers
        .get("x-floom-view-token")
        .and_then(|v| v.to_str().ok());
    // An empty view token is no view token.
    let presented = view_token.or(header_token).filter(|t| !t.is_empty());
    if caller.covers(&record.app)
        || presented.is_some_and(|t| view_token_matches(t, &record.view_token_hash))
    {
        return Ok(record);
    }
    match (caller, presented) {
        (Caller::Anonymous(_), None) => Err(ApiError::auth_failed(
            "send the execution's view_token (?view_token= or x-floom-view-token) or a token that covers its app",
        )),
        // Credentials that do not cover it: answer as if it did not exist.
        _ => Err(missing()),
    }
}

/// One execution: the envelope plus app, version, action, inputs, timings and usage.
#[utoipa::path(get, path = "/api/executions/{id}", tag = "executions",
    params(("id" = String, Path, description = "exec_..."), ("view_token" = Option<String>, Query, description = "The execution's view token"), ("x-floom-view-token" = Option<String>, Header, description = "The execution's view token, as a header"),
        ("url_ttl_s" = Option<u64>, Query, description = "Seconds the signed file URLs should stay valid (at most the server's --artifact-url-ttl-s)")),
    responses((status = 200, body = Detail, description = "OK"), (status = 400, body = Problem, content_type = "application/problem+json", description = "Malformed request"), (status = 401, body = Problem, content_type = "application/problem+json", description = "Missing or wrong credentials"), (status = 404, body = Problem, content_type = "application/problem+json", description = "No such resource (or not visible to the caller)")),
    security((), ("bearer" = [])))]
async fn detail(
    State(state): State<AppState>,
    Readable {
        record, url_ttl, ..
    }: Readable,
) -> Result<Json<Detail>, ApiError> {
    Ok(Json(detail_of(&state, &record, url_ttl).await?))
}

/// How long an SSE stream may stay silent before it sends a keep-alive comment.
const KEEP_ALIVE: Duration = Duration::from_secs(15);

/// An SSE response over stored-then-live events.
pub fn sse(events: mpsc::Receiver<Arc<LiveEvent>>) -> Response {
    let frames = Frames::new(events, KEEP_ALIVE);
    (
        [
            (header::CONTENT_TYPE, "text/event-stream"),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        Body::from_stream(frames),
    )
        .into_response()
}

/// The frames of an SSE stream: each event's shared frame as it comes, and a comment
/// after [`KEEP_ALIVE`] of silence. The keep-alive timer is moved only when it fires
/// (to the last frame's time plus the interval), not after every event: a timer reset
/// per event per subscriber was work for the timer wheel at every chunk of a fan-out.
struct Frames {
    events: mpsc::Receiver<Arc<LiveEvent>>,
    interval: Duration,
    keep_alive: Pin<Box<Sleep>>,
    last_sent: Instant,
}

impl Frames {
    fn new(events: mpsc::Receiver<Arc<LiveEvent>>, interval: Duration) -> Self {
        Frames {
            events,
            interval,
            keep_alive: Box::pin(tokio::time::sleep(interval)),
            last_sent: Instant::now(),
        }
    }
}

impl Stream for Frames {
    type Item = Result<Bytes, Infallible>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        match self.events.poll_recv(cx) {
            Poll::Ready(Some(event)) => {
                self.last_sent = Instant::now();
                return Poll::Ready(Some(Ok(event.frame())));
            }
            Poll::Ready(None) => return Poll::Ready(None),
            Poll::Pending => {}
        }
        while self.keep_alive.as_mut().poll(cx).is_ready() {
            let due = self.last_sent + self.interval;
            let now = Instant::now();
            if due <= now {
                self.last_sent = now;
                let next = now + self.interval;
                self.keep_alive.as_mut().reset(next);
                return Poll::Ready(Some(Ok(Bytes::from_static(b":\n\n"))));
            }
            self.keep_alive.as_mut().reset(due);
        }
        Poll::Pending
    }
}

fn cursor(query: Option<&str>, headers: &HeaderMap) -> Result<i64, ApiError> {
    let header = headers.get("last-event-id").and_then(|v| v.to_str().ok());
    match query.or(header) {
        None | Some("") => Ok(0),
        Some(text) => text
            .trim()
            .parse::<i64>()
            .ok()
            .filter(|n| *n >= 0)
            .ok_or_else(|| {
                ApiError::invalid_input(format!(
                    "the cursor {text:?} is not an event sequence number"
                ))
            }),
    }
}

/// The execution's events as SSE: replays what came after the cursor, then follows live
/// until the terminal event.
#[utoipa::path(get, path = "/api/executions/{id}/events", tag = "executions",
    params(("id" = String, Path, description = "exec_..."), ("view_token" = Option<String>, Query, description = "The execution's view token"), ("x-floom-view-token" = Option<String>, Header, description = "The execution's view token, as a header"),
        ("cursor" = Option<i64>, Query, description = "Replay the events after this sequence number", minimum = 0),
        ("Last-Event-ID" = Option<i64>, Header, description = "Like `cursor`, as browsers send it")),
    responses((status = 200, description = "The SSE stream", content_type = "text/event-stream", body = SseEvent),
        (status = 400, body = Problem, content_type = "application/problem+json", description = "Malformed request"), (status = 401, body = Problem, content_type = "application/problem+json", description = "Missing or wrong credentials"), (status = 404, body = Problem, content_type = "application/problem+json", description = "No such resource (or not visible to the caller)")),
    security((), ("bearer" = [])))]
async fn events(
    State(state): State<AppState>,
    headers: HeaderMap,
    Readable {
        record,
        cursor: query,
        ..
    }: Readable,
) -> Result<Response, ApiError> {
    let after = cursor(query.as_deref(), &headers)?;
    let events = follow(state.store.clone(), state.live.clone(), record.id, after);
    Ok(sse(events).into_response())
}

/// The execution's log lines as NDJSON.
#[utoipa::path(get, path = "/api/executions/{id}/logs", tag = "executions",
    params(("id" = String, Path, description = "exec_..."), ("view_token" = Option<String>, Query, description = "The execution's view token"), ("x-floom-view-token" = Option<String>, Header, description = "The execution's view token, as a header")),
    responses((status = 200, description = "One JSON object per line", content_type = "application/x-ndjson", body = String),
        (status = 400, body = Problem, content_type = "application/problem+json", description = "Malformed request"), (status = 401, body = Problem, content_type = "application/problem+json", description = "Missing or wrong credentials"), (status = 404, body = Problem, content_type = "application/problem+json", description = "No such resource (or not visible to the caller)")),
    security((), ("bearer" = [])))]
async fn logs(
    State(state): State<AppState>,
    Readable { record, .. }: Readable,
) -> Result<Response, ApiError> {
    let store = state.store.clone();
    // Page through the stored events, writing each log line as one JSON line.
    let lines = futures_util::stream::unfold(Some(0i64), move |after| {
        let store = store.clone();
        let id = record.id.clone();
        async move {
            let after = after?;
            let page = match store.events_after(&id, after, 500).await {
                Ok(page) => page,
                Err(e) => {
                    tracing::error!(execution = %id, "reading logs failed: {e:#}");
                    return None;
                }
            };
            let next = (page.len() == 500).then(|| page.last().map_or(after, |e| e.seq));
            let mut chunk = String::new();
            for event in page.iter().filter(|e| e.kind == "log") {
                // `{"seq":N,` followed by the rest of the stored object.
                chunk.push_str(&format!("{{\"seq\":{},{}\n", event.seq, &event.data[1..]));
            }
            Some((Ok::<_, Infallible>(chunk), next))
        }
    });
    Ok((
        [(header::CONTENT_TYPE, "application/x-ndjson")],
        Body::from_stream(lines),
    )
        .into_response())
}

/// Cancel a queued or running execution.
#[utoipa::path(post, path = "/api/executions/{id}/cancel", tag = "executions",
    params(("id" = String, Path, description = "exec_..."), ("view_token" = Option<String>, Query, description = "The execution's view token"), ("x-floom-view-token" = Option<String>, Header, description = "The execution's view token, as a header")),
    responses((status = 200, body = Envelope, description = "Cancelled"),
        (status = 202, body = Envelope, description = "Told to stop; not yet recorded"),
        (status = 400, body = Problem, content_type = "application/problem+json", description = "Malformed request"), (status = 401, body = Problem, content_type = "application/problem+json", description = "Missing or wrong credentials"), (status = 404, body = Problem, content_type = "application/problem+json", description = "No such resource (or not visible to the caller)"),
        (status = 409, body = Problem, content_type = "application/problem+json", description = "It has already ended")),
    security((), ("bearer" = [])))]
async fn cancel(
    State(state): State<AppState>,
    Readable { record, .. }: Readable,
) -> Result<Response, ApiError> {
    let id = record.id.clone();
    if record.status.is_terminal() {
        return Err(ApiError::conflict(format!(
            "{id} has already ended ({})",
            record.status
        )));
    }
    let mut subscription = state.live.subscribe(&id);
    match state.scheduler.cancel(&id).await? {
        Cancelled::AlreadyTerminal => {
            return Err(ApiError::conflict(format!("{id} has already ended")));
        }
        Cancelled::NotFound => return Err(ApiError::not_found(format!("no execution {id:?}"))),
        Cancelled::Queued => {}
        // A busy guest stops within an epoch tick; give it a moment to be recorded.
        Cancelled::Running => {
            if let Waited::Event(event) =
                wait_for_end(&mut subscription, Duration::from_secs(5)).await
            {
                return Ok(Json(Envelope::from_terminal(&id, &event)?).into_response());
            }
        }
    }
    let record = state
        .store
        .execution(&id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("no execution {id:?}")))?;
    let status = if record.status.is_terminal() {
        StatusCode::OK
    } else {
        StatusCode::ACCEPTED
    };
    Ok((status, Json(Envelope::from_record(&record)?)).into_response())
}

#[derive(Deserialize, Default, IntoParams)]
#[into_params(parameter_in = Query)]
struct ListQuery {
    /// Only this app's.
    app: Option<String>,
    /// Only this status.
    #[param(value_type = Option<ExecStatus>)]
    status: Option<String>,
    /// Only those started this way: api, cli, mcp, webhook, ui or schedule.
    #[param(value_type = Option<TriggerSource>)]
    trigger_source: Option<String>,
    /// Page size, 1 to 200 (default 50).
    #[param(value_type = Option<u32>, minimum = 1, maximum = 200)]
    limit: Option<String>,
    /// The `next_cursor` of the previous page.
    cursor: Option<String>,
}

/// A page of executions.
#[derive(Serialize, ToSchema)]
pub struct Page {
    /// Newest first.
    data: Vec<Summary>,
    /// Pass as `cursor` for the next page; null on the last.
    next_cursor: Option<String>,
}

/// Executions, newest first, with cursor pagination; each without its inputs and output.
/// A scoped token sees its apps'.
#[utoipa::path(get, path = "/api/executions", tag = "executions",
    params(ListQuery),
    responses((status = 200, body = Page, description = "OK"), (status = 400, body = Problem, content_type = "application/problem+json", description = "Malformed request"), (status = 401, body = Problem, content_type = "application/problem+json", description = "Missing or wrong credentials")),
    security(("bearer" = [])))]
async fn list(
    State(state): State<AppState>,
    QueryParams(query): QueryParams<ListQuery>,
    caller: Caller,
) -> Result<Json<Page>, ApiError> {
    // A scoped token sees the executions of the apps it covers.
    let apps = caller.listable_apps("listing executions")?;
    let limit = page_limit(query.limit.as_deref())?;
    // An empty parameter (`?app=&cursor=`) means no filter.
    let nonempty = |value: Option<String>| value.filter(|v| !v.is_empty());
    let status = parse_filter::<ExecStatus>(query.status.as_deref())?;
    let trigger_source = parse_filter::<TriggerSource>(query.trigger_source.as_deref())?;
    let before = page_cursor(query.cursor.as_deref())?;
    let records = state
        .store
        .executions(ListExecutions {
            app: nonempty(query.app),
            apps,
            status,
            trigger_source,
            before,
            limit,
            ..ListExecutions::default()
        })
        .await?;
    let next_cursor = (records.len() == limit as usize)
        .then(|| records.last().map(|r| r.n.to_string()))
        .flatten();
    let data = records.iter().map(summary_view).collect::<Result<_, _>>()?;
    Ok(Json(Page { data, next_cursor }))
}

/// A page size from `?limit=`: 1 to 200, default 50.
pub fn page_limit(limit: Option<&str>) -> Result<u32, ApiError> {
    match limit.filter(|l| !l.is_empty()) {
        None => Ok(50),
        Some(text) => text
            .parse::<u32>()
            .ok()
            .filter(|n| (1..=200).contains(n))
            .ok_or_else(|| {
                ApiError::invalid_input(format!("limit {text:?} must be a number from 1 to 200"))
            }),
    }
}

/// A page cursor from `?cursor=`: the number a previous page gave; empty is none.
pub fn page_cursor(cursor: Option<&str>) -> Result<Option<i64>, ApiError> {
    cursor
        .filter(|c| !c.is_empty())
        .map(|c| {
            c.parse::<i64>().map_err(|_| {
                ApiError::invalid_input(format!("cursor {c:?} is not one this API returned"))
            })
        })
        .transpose()
}

/// A filter parameter (`?status=`, `?trigger_source=`); an empty one is no filter.
pub fn parse_filter<T: std::str::FromStr<Err = String>>(
    value: Option<&str>,
) -> Result<Option<T>, ApiError> {
    value
        .filter(|v| !v.is_empty())
        .map(str::parse::<T>)
        .transpose()
        .map_err(ApiError::invalid_input)
}

#[cfg(test)]
mod tests {
    use futures_util::StreamExt;

    use super::*;
    use crate::store::StoredEvent;

    fn chunk(seq: i64) -> Arc<LiveEvent> {
        LiveEvent::new(StoredEvent {
            execution_id: "exec_1".into(),
            seq,
            kind: "chunk".into(),
            data: format!(r#"{{"type":"chunk","data":{seq}}}"#),
        })
    }

    /// Events go out as they come; a keep-alive only after a whole interval without
    /// one, counted from the last event (the timer is moved lazily, never early).
    #[tokio::test]
    async fn frames_keep_alive_only_after_an_interval_of_silence() {
        let interval = Duration::from_millis(300);
        let (tx, rx) = mpsc::channel(4);
        let mut frames = Frames::new(rx, interval);
        tokio::time::sleep(interval / 2).await;
        tx.send(chunk(1)).await.unwrap();
        let sent = Instant::now();
        let first = frames.next().await.unwrap().unwrap();
        assert!(first.starts_with(b"id: 1\nevent: chunk\n"), "{first:?}");
        // The timer set at the start fires before the interval after the event is up.
        let keep_alive = frames.next().await.unwrap().unwrap();
        assert_eq!(&keep_alive[..], b":\n\n");
        assert!(
            sent.elapsed() >= interval,
            "a keep-alive {:?} after an event",
            sent.elapsed()
        );
        tx.send(chunk(2)).await.unwrap();
        let second = frames.next().await.unwrap().unwrap();
        assert!(second.starts_with(b"id: 2\n"), "{second:?}");
        drop(tx);
        assert!(
            frames.next().await.is_none(),
            "the stream ends with its events"
        );
    }
}
