//! The run endpoints: `POST /api/apps/{slug}/run` and
//! `POST /api/apps/{slug}/actions/{action}/run`, async (202), sync (`?wait=true`) or
//! streamed (`?stream=true` or `Accept: text/event-stream`).

use axum::Json;
use axum::extract::multipart::{Multipart, MultipartError};
use axum::extract::{FromRequest, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::Value;
use utoipa::{IntoParams, ToSchema};

use super::AppState;
use super::auth::Caller;
use super::error::{ApiError, Problem};
use super::executions::{Envelope, SseEvent, sse};
use super::extract::{JsonBody, PathParams, QueryParams, flag};
use crate::follow::{Waited, follow, wait_for_end};
use crate::runs::{self, StartRun, Upload};
use crate::store::TriggerSource;

/// The run request body.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RunBody {
    /// The inputs: a JSON object (default `{}`), checked against the action's input_schema.
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    inputs: Option<Value>,
    /// The action (first form only; default `run` or the app's only action).
    #[serde(default)]
    action: Option<String>,
    /// How the run was started: `cli` or `ui` (the CLI and the pages say so); default
    /// `api`. The server sets the others (`mcp`, `webhook`, `schedule`) itself.
    #[serde(default)]
    #[schema(value_type = Option<String>, example = "cli")]
    trigger_source: Option<String>,
    /// A URL to notify when the run ends (signed with the app's run-webhook key, see
    /// `GET /api/apps/{slug}/webhooks/secret`): http or https, a public address unless
    /// the server allows private ones.
    #[serde(default)]
    #[schema(example = "https://example.org/floom-hook")]
    webhook: Option<String>,
}

/// A run request with files (for actions with file properties): the JSON inputs plus
/// one part per file, named after its property; the app sees each under `/in/` and the
/// property's value is its path there.
#[derive(ToSchema)]
#[allow(dead_code)] // Only its schema is used: the form is read by `RunForm`.
pub struct RunUpload {
    /// The inputs object, as JSON text.
    #[schema(value_type = String)]
    inputs: String,
    /// A file for a property with `"format": "binary"` (one part per file property,
    /// named after it).
    #[schema(value_type = String, format = Binary)]
    file: Vec<u8>,
}

/// The source a run request names for itself; the ones the server sets are refused.
fn requested_source(named: Option<&str>) -> Result<TriggerSource, ApiError> {
    match named {
        None | Some("api") => Ok(TriggerSource::Api),
        Some("cli") => Ok(TriggerSource::Cli),
        Some("ui") => Ok(TriggerSource::Ui),
        Some(set @ ("mcp" | "webhook" | "schedule")) => Err(ApiError::invalid_input(format!(
            "\"trigger_source\": {set:?} is set by the server for its own runs; a run request \
             may name \"cli\" or \"ui\" (or \"api\", the default)"
        ))),
        Some(other) => Err(ApiError::invalid_input(format!(
            "\"trigger_source\": {other:?} is not a source (a run request may name \"cli\", \
             \"ui\" or \"api\")"
        ))),
    }
}

/// `?wait=` and `?stream=`.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct RunQuery {
    /// Hold the request up to 250 s for the outcome.
    #[param(value_type = Option<bool>)]
    wait: Option<String>,
    /// Answer with the execution's SSE stream (also `Accept: text/event-stream`).
    #[param(value_type = Option<bool>)]
    stream: Option<String>,
}

/// Start a run of an app's default action (or the one named in the body).
#[utoipa::path(post, path = "/api/apps/{slug}/run", tag = "runs",
    params(("slug" = String, Path, description = "The app's slug"), RunQuery,
        ("Idempotency-Key" = Option<String>, Header, description = "Replays within 24 h return the same execution (needs credentials)", pattern = "^[!-~]{1,255}$")),
    request_body(content(
        (RunBody = "application/json"),
        (RunUpload = "multipart/form-data"),
    )),
    responses(
        (status = 200, description = "`?wait=true`: the run ended in time (a failed run is still 200); or the SSE stream when streaming",
            content((Envelope = "application/json"), (SseEvent = "text/event-stream"))),
        (status = 202, body = Envelope, description = "Accepted and queued; poll `Location`"),
        (status = 400, body = Problem, content_type = "application/problem+json", description = "Malformed request or inputs that break the action's input_schema (at most 100 listed in `errors`, the rest counted in `errors_omitted`)"),
        (status = 401, body = Problem, content_type = "application/problem+json", description = "Missing or wrong credentials"), (status = 404, body = Problem, content_type = "application/problem+json", description = "No such resource (or not visible to the caller)"),
        (status = 408, body = Problem, content_type = "application/problem+json", description = "The body did not arrive within the server's body timeout"),
        (status = 413, body = Problem, content_type = "application/problem+json", description = "The body is too large, or validating the inputs against the input_schema would pass the server's budget (work, nesting or time)"),
        (status = 415, body = Problem, content_type = "application/problem+json", description = "The body is not JSON"),
        (status = 422, body = Problem, content_type = "application/problem+json", description = "The Idempotency-Key was used with a different request"),
        (status = 429, body = Problem, content_type = "application/problem+json", description = "Rate limit, queue full or every input validator busy; see Retry-After"),
        (status = 502, body = Problem, content_type = "application/problem+json", description = "`?wait=true`: the sandbox could not start"),
        (status = 503, body = Problem, content_type = "application/problem+json", description = "The server is shutting down, or cannot write its data (disk full); see Retry-After")),
    security((), ("bearer" = [])))]
pub async fn run_app(
    State(state): State<AppState>,
    PathParams(slug): PathParams<String>,
    QueryParams(query): QueryParams<RunQuery>,
    caller: Caller,
    headers: HeaderMap,
    RunForm(body, uploads): RunForm,
) -> Result<Response, ApiError> {
    let action = body.action.clone();
    let run = Run {
        slug: &slug,
        action,
        action_in_path: false,
        body,
        uploads,
    };
    start(&state, caller, &headers, run, query).await
}

/// Start a run of a named action.
#[utoipa::path(post, path = "/api/apps/{slug}/actions/{action}/run", tag = "runs",
    params(("slug" = String, Path, description = "The app's slug"),
        ("action" = String, Path, description = "The action"), RunQuery,
        ("Idempotency-Key" = Option<String>, Header, description = "Replays within 24 h return the same execution (needs credentials)", pattern = "^[!-~]{1,255}$")),
    request_body(content(
        (RunBody = "application/json"),
        (RunUpload = "multipart/form-data"),
    )),
    responses(
        (status = 200, description = "`?wait=true`: the run ended in time (a failed run is still 200); or the SSE stream when streaming",
            content((Envelope = "application/json"), (SseEvent = "text/event-stream"))),
        (status = 202, body = Envelope, description = "Accepted and queued; poll `Location`"),
        (status = 400, body = Problem, content_type = "application/problem+json", description = "Malformed request or inputs that break the action's input_schema (at most 100 listed in `errors`, the rest counted in `errors_omitted`)"),
        (status = 401, body = Problem, content_type = "application/problem+json", description = "Missing or wrong credentials"), (status = 404, body = Problem, content_type = "application/problem+json", description = "No such resource (or not visible to the caller)"),
        (status = 408, body = Problem, content_type = "application/problem+json", description = "The body did not arrive within the server's body timeout"),
        (status = 413, body = Problem, content_type = "application/problem+json", description = "The body is too large, or validating the inputs against the input_schema would pass the server's budget (work, nesting or time)"),
        (status = 415, body = Problem, content_type = "application/problem+json", description = "The body is not JSON"),
        (status = 422, body = Problem, content_type = "application/problem+json", description = "The Idempotency-Key was used with a different request"),
        (status = 429, body = Problem, content_type = "application/problem+json", description = "Rate limit, queue full or every input validator busy; see Retry-After"),
        (status = 502, body = Problem, content_type = "application/problem+json", description = "`?wait=true`: the sandbox could not start"),
        (status = 503, body = Problem, content_type = "application/problem+json", description = "The server is shutting down, or cannot write its data (disk full); see Retry-After")),
    security((), ("bearer" = [])))]
pub async fn run_action(
    State(state): State<AppState>,
    PathParams((slug, action)): PathParams<(String, String)>,
    QueryParams(query): QueryParams<RunQuery>,
    caller: Caller,
    headers: HeaderMap,
    RunForm(body, uploads): RunForm,
) -> Result<Response, ApiError> {
    if body.action.as_ref().is_some_and(|a| *a != action) {
        return Err(ApiError::invalid_input(format!(
            "the body names action {:?} but the path names {action:?}",
            body.action.unwrap_or_default()
        )));
    }
    let run = Run {
        slug: &slug,
        action: Some(action),
        action_in_path: true,
        body,
        uploads,
    };
    start(&state, caller, &headers, run, query).await
}

/// A run request as its handler read it.
struct Run<'a> {
    slug: &'a str,
    action: Option<String>,
    action_in_path: bool,
    body: RunBody,
    uploads: Vec<Upload>,
}

/// A run request's body: JSON ([`RunBody`]), or `multipart/form-data` with a part
/// `inputs` (the inputs object, JSON), optional text parts `action`, `trigger_source` and
/// `webhook`, and one part per file, named after its property. A multipart body may be
/// as large as `--max-upload-mb` (413 past it); a JSON one as the JSON body cap.
pub struct RunForm(RunBody, Vec<Upload>);

impl FromRequest<AppState> for RunForm {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, Self::Rejection> {
        let multipart = req
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| {
                v.split(';')
                    .next()
                    .unwrap_or_default()
                    .trim()
                    .eq_ignore_ascii_case("multipart/form-data")
            });
        if !multipart {
            let JsonBody(body) = JsonBody::<RunBody>::from_request(req, state).await?;
            return Ok(RunForm(body, Vec::new()));
        }
        let limit = state.files.config.max_upload_bytes;
        // Read whole (the files are held until they are stored anyway), so a request
        // over the cap is drained and answered 413 rather than reset mid-upload.
        let (parts, body) = req.into_parts();
        let cap = usize::try_from(limit)
            .unwrap_or(usize::MAX)
            .saturating_add(64 << 10);
        let body = super::extract::read_limited(body, cap).await.map_err(|e| {
            if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
                ApiError::payload_too_large(format!(
                    "the run request is over the {limit} byte upload limit (--max-upload-mb)"
                ))
            } else {
                e
            }
        })?;
        let req = Request::from_parts(parts, axum::body::Body::from(body));
        let mut form = Multipart::from_request(req, state).await.map_err(|e| {
            ApiError::invalid_input(format!("a multipart run request: {}", e.body_text()))
        })?;
        let mut body = RunBody::default();
        let mut uploads = Vec::new();
        let mut total = 0u64;
        while let Some(mut field) = form.next_field().await.map_err(multipart_error)? {
            let name = field.name().unwrap_or_default().to_owned();
            let file_name = field.file_name().map(str::to_owned);
            let content_type = field.content_type().map(str::to_owned);
            // Read piece by piece, so a request over the cap stops at the cap.
            let mut bytes = Vec::new();
            while let Some(chunk) = field.chunk().await.map_err(multipart_error)? {
                total += chunk.len() as u64;
                if total > limit {
                    return Err(ApiError::payload_too_large(format!(
                        "the run request is over the {limit} byte upload limit (--max-upload-mb)"
                    )));
                }
                bytes.extend_from_slice(&chunk);
            }
            let text = || {
                String::from_utf8(bytes.clone()).map_err(|_| {
                    ApiError::invalid_input(format!("the part {name:?} is not UTF-8 text"))
                })
            };
            match name.as_str() {
                "inputs" => {
                    let inputs: Value = serde_json::from_slice(&bytes).map_err(|e| {
                        ApiError::invalid_input(format!("the part \"inputs\" is not JSON: {e}"))
                    })?;
                    body.inputs = Some(inputs);
                }
                "action" => body.action = Some(text()?),
                "trigger_source" => body.trigger_source = Some(text()?),
                "webhook" => body.webhook = Some(text()?),
                "" => return Err(ApiError::invalid_input("a multipart part has no name")),
                _ => uploads.push(Upload {
                    property: name,
                    file_name,
                    content_type,
                    bytes: bytes.into(),
                }),
            }
        }
        Ok(RunForm(body, uploads))
    }
}

fn multipart_error(e: MultipartError) -> ApiError {
    if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
        return ApiError::payload_too_large(format!("the upload is too large: {}", e.body_text()));
    }
    if super::error::body_timed_out(&e) {
        return ApiError::body_timeout();
    }
    ApiError::invalid_input(format!(
        "the multipart body is malformed: {}",
        e.body_text()
    ))
}

async fn start(
    state: &AppState,
    caller: Caller,
    headers: &HeaderMap,
    run: Run<'_>,
    query: RunQuery,
) -> Result<Response, ApiError> {
    let Run {
        slug,
        action,
        action_in_path,
        body,
        uploads,
    } = run;
    let wait = flag(query.wait.as_deref(), "wait")?;
    let stream = flag(query.stream.as_deref(), "stream")?
        || headers
            .get(header::ACCEPT)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.contains("text/event-stream"));
    let idempotency_key = headers
        .get("idempotency-key")
        .map(|v| runs::idempotency_key(v.to_str().unwrap_or_default()))
        .transpose()?;
    let trigger_source = requested_source(body.trigger_source.as_deref())?;
    let webhook = body
        .webhook
        .as_deref()
        .map(|url| crate::notify::check_url(url, state.config.allow_private_network))
        .transpose()
        .map_err(|e| ApiError::invalid_input(format!("\"webhook\": {e}")))?;
    let started = runs::start_with(
        state,
        &caller,
        StartRun {
            slug: slug.to_owned(),
            action,
            action_in_path,
            inputs: body.inputs,
            idempotency_key,
            trigger_source,
            mcp_call: None,
            watch: wait,
        },
        runs::RunOptions {
            webhook,
            uploads,
            ..runs::RunOptions::default()
        },
    )
    .await?;
    let runs::Started {
        id,
        view_token,
        replay,
        mut subscription,
        unwritten,
    } = started;

    if stream {
        let events = follow(state.store.clone(), state.live.clone(), id.clone(), 0);
        let mut response = sse(events).into_response();
        location(&mut response, &id);
        // The stream carries no envelope: these let a client resume it after a drop.
        let headers = response.headers_mut();
        if let (Ok(id), Ok(token)) = (
            HeaderValue::from_str(&id),
            HeaderValue::from_str(&view_token),
        ) {
            headers.insert("x-floom-execution-id", id);
            headers.insert("x-floom-view-token", token);
        }
        return Ok(response);
    }
    let waited = if wait {
        Some(wait_for_end(&mut subscription, state.config.max_wait).await)
    } else {
        // A replay answers with the execution as it stands now.
        replay.then_some(Waited::Ended)
    };
    let mut envelope = match waited {
        Some(Waited::Event(event)) => Envelope::from_terminal(&id, &event)?,
        Some(Waited::Ended | Waited::TimedOut) => {
            // Answered before its end: the execution is written first.
            if let Some(unwritten) = &unwritten {
                unwritten.write().await?;
            }
            runs::current(state, &id).await?
        }
        None => Envelope::queued(&id),
    };
    if wait && envelope.is_sandbox_unavailable() {
        return Err(ApiError::sandbox_unavailable(envelope.error_message()));
    }
    let status = if envelope.status.is_terminal() {
        StatusCode::OK
    } else {
        StatusCode::ACCEPTED
    };
    envelope.view_token = Some(view_token);
    let mut response = (status, Json(envelope)).into_response();
    location(&mut response, &id);
    Ok(response)
}

fn location(response: &mut Response, id: &str) {
    if let Ok(value) = HeaderValue::from_str(&format!("/api/executions/{id}")) {
        response.headers_mut().insert(header::LOCATION, value);
    }
}
