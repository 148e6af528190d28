//! Schedules (SPEC section 9): `/api/apps/{slug}/schedules` to create, list, pause,
//! resume and delete them (admin). [`crate::schedules`] starts their runs.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, post};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;

use super::apps::authorized_app;
use super::auth::{Caller, Need};
use super::error::{ApiError, Problem};
use super::extract::{JsonBody, PathParams};
use super::triggers::chosen_action;
use super::{AppState, timestamp};
use crate::schedules::Cron;
use crate::store::{Millis, ScheduleRecord, now_ms};

/// The schedule routes.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/apps/{slug}/schedules", post(create).get(list))
        .route("/api/apps/{slug}/schedules/{id}", delete(remove))
        .route("/api/apps/{slug}/schedules/{id}/pause", post(pause))
        .route("/api/apps/{slug}/schedules/{id}/resume", post(resume))
}

/// A new schedule.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewSchedule {
    /// 5 fields (minute hour day-of-month month day-of-week), or 6 with leading seconds.
    #[schema(example = "*/5 * * * *")]
    cron: String,
    /// The IANA time zone the expression is read in (default UTC).
    #[serde(default)]
    #[schema(example = "Europe/Berlin")]
    timezone: Option<String>,
    /// The action (default `run`, or the app's only action).
    #[serde(default)]
    action: Option<String>,
    /// The inputs of every run (default `{}`), checked against the action's schema now.
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    inputs: Option<Value>,
}

/// A schedule.
#[derive(Debug, Serialize, ToSchema)]
pub struct ScheduleView {
    /// `sch_...`
    id: String,
    /// The cron expression.
    cron: String,
    /// Its time zone.
    timezone: String,
    /// The action it runs.
    action: String,
    /// The inputs of its runs.
    #[schema(value_type = Object)]
    inputs: Value,
    /// Whether it is paused.
    paused: bool,
    /// When it runs next; null while paused.
    next_tick: Option<String>,
    /// When it was made.
    created_at: String,
    /// The last tick run (or skipped).
    last_tick: Option<String>,
    /// The execution the last tick started.
    last_execution_id: Option<String>,
    /// Why the last tick started no run.
    last_error: Option<String>,
}

/// The schedules of an app.
#[derive(Debug, Serialize, ToSchema)]
pub struct ScheduleList {
    data: Vec<ScheduleView>,
}

fn view(schedule: &ScheduleRecord) -> ScheduleView {
    ScheduleView {
        id: schedule.id.clone(),
        cron: schedule.cron.clone(),
        timezone: schedule.timezone.clone(),
        action: schedule.action.clone(),
        inputs: serde_json::from_str(&schedule.inputs).unwrap_or(Value::Null),
        paused: schedule.paused,
        next_tick: (!schedule.paused && schedule.next_tick < Millis::MAX)
            .then(|| timestamp(schedule.next_tick)),
        created_at: timestamp(schedule.created_at),
        last_tick: schedule.last_tick.map(timestamp),
        last_execution_id: schedule.last_execution_id.clone(),
        last_error: schedule.last_error.clone(),
    }
}

/// The first tick of `cron` after now, or a 400 for one that never comes.
fn first_tick(cron: &Cron, expression: &str) -> Result<Millis, ApiError> {
    cron.next_after(now_ms())
        .ok_or_else(|| ApiError::invalid_input(format!("{expression:?} has no tick in the future")))
}

/// Create a schedule: a run at each tick of a cron expression.
#[utoipa::path(post, path = "/api/apps/{slug}/schedules", tag = "schedules",
    params(("slug" = String, Path, description = "The app's slug")),
    request_body(content = NewSchedule, content_type = "application/json"),
    responses((status = 201, body = ScheduleView, description = "Created"),
        (status = 400, body = Problem, content_type = "application/problem+json", description = "A bad cron expression or time zone, an unknown action, or inputs that break its schema (see `errors`)"),
        (status = 401, body = Problem, content_type = "application/problem+json", description = "Missing or wrong credentials"),
        (status = 403, body = Problem, content_type = "application/problem+json", description = "The credentials do not allow this"),
        (status = 404, body = Problem, content_type = "application/problem+json", description = "No such resource (or not visible to the caller)"),
        (status = 413, body = Problem, content_type = "application/problem+json", description = "The inputs are too costly to check")),
    security(("bearer" = [])))]
async fn create(
    State(state): State<AppState>,
    PathParams(slug): PathParams<String>,
    caller: Caller,
    JsonBody(body): JsonBody<NewSchedule>,
) -> Result<Response, ApiError> {
    authorized_app(&state, &caller, &slug, Need::Administer).await?;
    let timezone = body.timezone.unwrap_or_else(|| "UTC".to_owned());
    let cron = Cron::parse(&body.cron, &timezone).map_err(ApiError::invalid_input)?;
    let action = chosen_action(&state, &slug, body.action)?;
    let inputs = body
        .inputs
        .unwrap_or_else(|| Value::Object(Default::default()));
    if !inputs.is_object() {
        return Err(ApiError::invalid_input("\"inputs\" must be a JSON object"));
    }
    let schema = state
        .registry
        .current(&slug)
        .and_then(|app| app.input_schema(&action));
    let inputs = match schema {
        Some(schema) => state.validations.validate(schema, inputs).await?,
        None => inputs,
    };
    let schedule = ScheduleRecord {
        id: format!("sch_{}", uuid::Uuid::now_v7().simple()),
        app: slug,
        action,
        inputs: inputs.to_string(),
        next_tick: first_tick(&cron, &body.cron)?,
        cron: body.cron,
        timezone,
        paused: false,
        created_at: now_ms(),
        last_tick: None,
        last_execution_id: None,
        last_error: None,
    };
    state.store.insert_schedule(schedule.clone()).await?;
    Ok((StatusCode::CREATED, Json(view(&schedule))).into_response())
}

/// List an app's schedules with their next ticks.
#[utoipa::path(get, path = "/api/apps/{slug}/schedules", tag = "schedules",
    params(("slug" = String, Path, description = "The app's slug")),
    responses((status = 200, body = ScheduleList, description = "OK"),
        (status = 400, body = Problem, content_type = "application/problem+json", description = "Malformed request"),
        (status = 401, body = Problem, content_type = "application/problem+json", description = "Missing or wrong credentials"),
        (status = 403, body = Problem, content_type = "application/problem+json", description = "The credentials do not allow this"),
        (status = 404, body = Problem, content_type = "application/problem+json", description = "No such resource (or not visible to the caller)")),
    security(("bearer" = [])))]
async fn list(
    State(state): State<AppState>,
    PathParams(slug): PathParams<String>,
    caller: Caller,
) -> Result<Json<ScheduleList>, ApiError> {
    authorized_app(&state, &caller, &slug, Need::Administer).await?;
    let data = state
        .store
        .schedules(&slug)
        .await?
        .iter()
        .map(view)
        .collect();
    Ok(Json(ScheduleList { data }))
}

/// Pauses or resumes one schedule and answers it as it is now. A resumed schedule runs
/// from its next tick after now: ticks that passed while paused do not run.
async fn set_paused(
    state: &AppState,
    caller: &Caller,
    slug: &str,
    id: &str,
    paused: bool,
) -> Result<Json<ScheduleView>, ApiError> {
    authorized_app(state, caller, slug, Need::Administer).await?;
    let missing = || ApiError::not_found(format!("{slug} has no schedule {id:?}"));
    let schedule = state
        .store
        .schedules(slug)
        .await?
        .into_iter()
        .find(|s| s.id == id)
        .ok_or_else(missing)?;
    let next_tick = if paused {
        schedule.next_tick
    } else {
        let cron = Cron::parse(&schedule.cron, &schedule.timezone)
            .map_err(|e| ApiError::internal(format!("a stored schedule: {e}")))?;
        first_tick(&cron, &schedule.cron)?
    };
    if !state
        .store
        .set_schedule_paused(slug, id, paused, next_tick)
        .await?
    {
        return Err(missing());
    }
    Ok(Json(view(&ScheduleRecord {
        paused,
        next_tick,
        ..schedule
    })))
}

/// Pause a schedule.
#[utoipa::path(post, path = "/api/apps/{slug}/schedules/{id}/pause", tag = "schedules",
    params(("slug" = String, Path, description = "The app's slug"), ("id" = String, Path, description = "sch_...")),
    responses((status = 200, body = ScheduleView, description = "Paused"),
        (status = 400, body = Problem, content_type = "application/problem+json", description = "Malformed request"),
        (status = 401, body = Problem, content_type = "application/problem+json", description = "Missing or wrong credentials"),
        (status = 403, body = Problem, content_type = "application/problem+json", description = "The credentials do not allow this"),
        (status = 404, body = Problem, content_type = "application/problem+json", description = "No such resource (or not visible to the caller)")),
    security(("bearer" = [])))]
async fn pause(
    State(state): State<AppState>,
    PathParams((slug, id)): PathParams<(String, String)>,
    caller: Caller,
) -> Result<Json<ScheduleView>, ApiError> {
    set_paused(&state, &caller, &slug, &id, true).await
}

/// Resume a schedule from its next tick.
#[utoipa::path(post, path = "/api/apps/{slug}/schedules/{id}/resume", tag = "schedules",
    params(("slug" = String, Path, description = "The app's slug"), ("id" = String, Path, description = "sch_...")),
    responses((status = 200, body = ScheduleView, description = "Resumed"),
        (status = 400, body = Problem, content_type = "application/problem+json", description = "Malformed request"),
        (status = 401, body = Problem, content_type = "application/problem+json", description = "Missing or wrong credentials"),
        (status = 403, body = Problem, content_type = "application/problem+json", description = "The credentials do not allow this"),
        (status = 404, body = Problem, content_type = "application/problem+json", description = "No such resource (or not visible to the caller)")),
    security(("bearer" = [])))]
async fn resume(
    State(state): State<AppState>,
    PathParams((slug, id)): PathParams<(String, String)>,
    caller: Caller,
) -> Result<Json<ScheduleView>, ApiError> {
    set_paused(&state, &caller, &slug, &id, false).await
}

/// Delete a schedule.
#[utoipa::path(delete, path = "/api/apps/{slug}/schedules/{id}", tag = "schedules",
    params(("slug" = String, Path, description = "The app's slug"), ("id" = String, Path, description = "sch_...")),
    responses((status = 204, description = "Deleted"),
        (status = 400, body = Problem, content_type = "application/problem+json", description = "Malformed request"),
        (status = 401, body = Problem, content_type = "application/problem+json", description = "Missing or wrong credentials"),
        (status = 403, body = Problem, content_type = "application/problem+json", description = "The credentials do not allow this"),
        (status = 404, body = Problem, content_type = "application/problem+json", description = "No such resource (or not visible to the caller)")),
    security(("bearer" = [])))]
async fn remove(
    State(state): State<AppState>,
    PathParams((slug, id)): PathParams<(String, String)>,
    caller: Caller,
) -> Result<StatusCode, ApiError> {
    authorized_app(&state, &caller, &slug, Need::Administer).await?;
    if state.store.delete_schedule(&slug, &id).await? {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::not_found(format!(
            "{slug} has no schedule {id:?}"
        )))
    }
}
