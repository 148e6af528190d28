//! The run endpoints: `POST /api/apps/{slug}/run` and
//! `POST /api/apps/{slug}/actions/{action}/run`, async (202), sync (`?wait=true`) or
//! streamed (`?stream=true` or `Accept: text/event-stream`).

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use floom_runtime::{DEFAULT_ACTION, is_slug};
use serde::Deserialize;
use serde_json::Value;
use utoipa::{IntoParams, ToSchema};

use super::AppState;
use super::auth::{Caller, Need, random_token, sha256_hex};
use super::error::{ApiError, Problem};
use super::executions::{Envelope, SseEvent, sse};
use super::extract::{JsonBody, PathParams, QueryParams, flag};
use crate::follow::{Waited, follow, wait_for_end};
use crate::registry::LoadedApp;
use crate::scheduler::{SubmitError, Submitted};
use crate::store::{IdempotencyKey, NewExecution, now_ms};

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
    request_body(content = RunBody, content_type = "application/json"),
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
    JsonBody(body): JsonBody<RunBody>,
) -> Result<Response, ApiError> {
    let action = body.action.clone();
    start(&state, caller, &headers, &slug, action, false, body, query).await
}

/// Start a run of a named action.
#[utoipa::path(post, path = "/api/apps/{slug}/actions/{action}/run", tag = "runs",
    params(("slug" = String, Path, description = "The app's slug"),
        ("action" = String, Path, description = "The action"), RunQuery,
        ("Idempotency-Key" = Option<String>, Header, description = "Replays within 24 h return the same execution (needs credentials)", pattern = "^[!-~]{1,255}$")),
    request_body(content = RunBody, content_type = "application/json"),
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
    JsonBody(body): JsonBody<RunBody>,
) -> Result<Response, ApiError> {
    if body.action.as_ref().is_some_and(|a| *a != action) {
        return Err(ApiError::invalid_input(format!(
            "the body names action {:?} but the path names {action:?}",
            body.action.unwrap_or_default()
        )));
    }
    start(
        &state,
        caller,
        &headers,
        &slug,
        Some(action),
        true,
        body,
        query,
    )
    .await
}

/// Picks the action: the one named, else `run`, else the app's only action.
fn choose_action(
    app: &LoadedApp,
    named: Option<String>,
    from_path: bool,
) -> Result<String, ApiError> {
    let manifest = app.app.manifest();
    let names: Vec<&str> = manifest.actions().map(|(name, _)| name).collect();
    match named {
        Some(name) if manifest.action(&name).is_some() => Ok(name),
        Some(name) => {
            let detail = format!(
                "{} has no action {name:?} (it has: {})",
                manifest.slug,
                names.join(", ")
            );
            Err(if from_path {
                ApiError::not_found(detail)
            } else {
                ApiError::invalid_input(detail)
            })
        }
        None if names.contains(&DEFAULT_ACTION) => Ok(DEFAULT_ACTION.to_owned()),
        None if names.len() == 1 => Ok(names[0].to_owned()),
        None => Err(ApiError::invalid_input(format!(
            "{} has several actions ({}): name one with \"action\" or /actions/{{action}}/run",
            manifest.slug,
            names.join(", ")
        ))),
    }
}

/// Longest accepted `Idempotency-Key`.
const MAX_IDEMPOTENCY_KEY: usize = 255;

fn idempotency_key(headers: &HeaderMap) -> Result<Option<String>, ApiError> {
    let Some(value) = headers.get("idempotency-key") else {
        return Ok(None);
    };
    let key = value.to_str().unwrap_or_default().trim();
    if key.is_empty()
        || key.len() > MAX_IDEMPOTENCY_KEY
        || !key.bytes().all(|b| b.is_ascii_graphic())
    {
        return Err(ApiError::invalid_input(format!(
            "Idempotency-Key must be 1 to {MAX_IDEMPOTENCY_KEY} visible ASCII characters"
        )));
    }
    Ok(Some(key.to_owned()))
}

/// The associated data a replayable view token is sealed with.
fn idempotency_owner(id: &str) -> Vec<u8> {
    format!("view-token\0{id}").into_bytes()
}

#[allow(clippy::too_many_arguments)]
async fn start(
    state: &AppState,
    caller: Caller,
    headers: &HeaderMap,
    slug: &str,
    action: Option<String>,
    from_path: bool,
    body: RunBody,
    query: RunQuery,
) -> Result<Response, ApiError> {
    let wait = flag(query.wait.as_deref(), "wait")?;
    let stream = flag(query.stream.as_deref(), "stream")?
        || headers
            .get(header::ACCEPT)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.contains("text/event-stream"));
    let idempotency = idempotency_key(headers)?;
    // Anonymous callers are known only by their address, which clients behind one NAT
    // share: a key of theirs could replay another client's execution and view token.
    if idempotency.is_some() && !caller.has_credentials() {
        return Err(ApiError::invalid_input(
            "Idempotency-Key needs credentials (Authorization: Bearer <token>): anonymous \
             callers share addresses, so their keys could return another client's execution",
        ));
    }

    let app = match is_slug(slug)
        .then(|| state.registry.current(slug))
        .flatten()
    {
        Some(app) => {
            caller.authorize(slug, app.record.public, Need::Run)?;
            app
        }
        None => return Err(ApiError::not_found(format!("no app {slug:?}"))),
    };
    if !matches!(caller, Caller::Admin)
        && let Err(wait) = state.limiter.check(&caller.identity())
    {
        return Err(ApiError::quota_exceeded(
            format!(
                "too many runs: the limit is {} a minute",
                state.config.runs_per_minute
            ),
            wait.as_secs().max(1),
        ));
    }
    let action = choose_action(&app, action, from_path)?;
    let inputs = body
        .inputs
        .unwrap_or_else(|| Value::Object(Default::default()));
    if !inputs.is_object() {
        return Err(ApiError::invalid_input(
            "\"inputs\" must be a JSON object, such as {\"inputs\": {\"text\": \"...\"}}",
        ));
    }
    // On the validation pool: a costly schema and input take its threads, not ours.
    let inputs = match app.input_schema(&action) {
        Some(schema) => state.validations.validate(schema, inputs).await?,
        None => inputs,
    };

    let mut view_token = random_token()?;
    let execution = NewExecution {
        id: format!("exec_{}", uuid::Uuid::now_v7().simple()),
        app: app.record.slug.clone(),
        version: app.record.version,
        inputs: inputs.to_string(),
        view_token_hash: sha256_hex(&view_token),
        created_at: now_ms(),
        started_at: None,
        action,
    };
    let key = match idempotency {
        None => None,
        Some(key) => Some(IdempotencyKey {
            caller: caller.identity(),
            request_hash: sha256_hex(&format!(
                "{}\n{}\n{}",
                execution.app, execution.action, execution.inputs
            )),
            view_token: state
                .sealer
                .seal(&idempotency_owner(&execution.id), view_token.as_bytes())?,
            key,
        }),
    };
    let request_hash = key.as_ref().map(|k| k.request_hash.clone());
    let mut id = execution.id.clone();
    let submitted = state
        .scheduler
        .submit(execution, caller.identity(), key, wait)
        .await
        .map_err(|e| match e {
            SubmitError::QueueFull(_)
            | SubmitError::AppQueueFull { .. }
            | SubmitError::CallerQueueFull(_) => ApiError::quota_exceeded(e.to_string(), 1),
            SubmitError::Draining => ApiError::unavailable(e.to_string()),
            SubmitError::Store(e) => ApiError::from(e),
        })?;
    let replay = matches!(submitted, Submitted::Existing { .. });
    let subscription = match submitted {
        Submitted::New(subscription) => subscription,
        Submitted::Existing {
            execution_id,
            request_hash: earlier,
            view_token: sealed,
        } => {
            if Some(&earlier) != request_hash.as_ref() {
                return Err(ApiError::idempotency_mismatch(
                    "this Idempotency-Key was used in the last 24 h with a different request",
                ));
            }
            let token = state
                .sealer
                .open(&idempotency_owner(&execution_id), &sealed)?;
            view_token = String::from_utf8(token)
                .map_err(|_| ApiError::internal("a stored view token is not text"))?;
            id = execution_id;
            // Subscribe now; if it has already ended, the store has the answer.
            wait.then(|| state.live.subscribe(&id)).flatten()
        }
    };

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
    let mut envelope = Envelope::queued(&id);
    let mut status = StatusCode::ACCEPTED;
    let waited = if wait {
        wait_for_end(subscription, state.config.max_wait).await
    } else if replay {
        // A replay answers with the execution as it stands now.
        Waited::Ended
    } else {
        Waited::TimedOut
    };
    match waited {
        Waited::Event(event) => {
            envelope = Envelope::from_terminal(&id, &event)?;
            status = StatusCode::OK;
        }
        Waited::Ended => {
            let record = state
                .store
                .execution(&id)
                .await?
                .ok_or_else(|| ApiError::internal(format!("execution {id} vanished")))?;
            if record.status.is_terminal() {
                status = StatusCode::OK;
            }
            envelope = Envelope::from_record(&record)?;
        }
        Waited::TimedOut if wait => {
            let record = state
                .store
                .execution(&id)
                .await?
                .ok_or_else(|| ApiError::internal(format!("execution {id} vanished")))?;
            envelope = Envelope::from_record(&record)?;
        }
        Waited::TimedOut => {}
    }
    if wait && envelope.is_sandbox_unavailable() {
        return Err(ApiError::sandbox_unavailable(envelope.error_message()));
    }
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
