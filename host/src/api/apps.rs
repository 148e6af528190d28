//! `/api/apps`: publish, list, read and delete apps; and the two run endpoints.

use std::collections::BTreeMap;

use axum::extract::multipart::{Multipart, MultipartError};
use axum::extract::{DefaultBodyLimit, FromRequest, Request, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use floom_runtime::{Manifest, is_slug};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::{IntoParams, ToSchema};

use super::auth::{Caller, Need};
use super::error::{ApiError, Problem};
use super::extract::{PathParams, QueryParams};
use super::{AppState, runs, timestamp};
use crate::registry::PublishError;
use crate::store::{AppRecord, ExecStatus, NotPurgeable, percentile};
use crate::tokens::Role;

/// Largest manifest part of a publish.
const MAX_MANIFEST: usize = 256 << 10;

/// The parts of a publish upload.
#[derive(ToSchema)]
#[allow(dead_code)] // Only its schema is used: the parts are read as they stream in.
pub struct PublishForm {
    /// The floom.toml text.
    manifest: String,
    /// The component's bytes.
    #[schema(value_type = String, format = Binary)]
    component: Vec<u8>,
}

pub fn router() -> Router<AppState> {
    Router::new()
        .route(
            "/api/apps",
            // The publish handler reads its body with its own limit.
            get(list).post(publish).layer(DefaultBodyLimit::disable()),
        )
        .route(
            "/api/apps/{slug}",
            get(detail).delete(delete).patch(super::operate::patch),
        )
        .route("/api/apps/{slug}/versions", get(versions))
        .route("/api/apps/{slug}/rollback/{version}", post(rollback))
        .route("/api/apps/{slug}/stats", get(stats))
        // Run requests read their own bodies: JSON within the JSON cap, a multipart one
        // with files within the upload cap (`runs::RunForm`).
        .route(
            "/api/apps/{slug}/run",
            post(runs::run_app).layer(DefaultBodyLimit::disable()),
        )
        .route(
            "/api/apps/{slug}/actions/{action}/run",
            post(runs::run_action).layer(DefaultBodyLimit::disable()),
        )
}

/// An app as the API shows it.
#[derive(Debug, Serialize, ToSchema)]
pub struct AppView {
    slug: String,
    name: Option<String>,
    description: Option<String>,
    public: bool,
    /// Whether the operator paused it (it refuses new runs).
    paused: bool,
    kind: String,
    version: i64,
    sha256: String,
    created_at: String,
    updated_at: String,
    run_url: String,
    limits: LimitsView,
    secrets: Vec<String>,
    network: NetworkView,
    actions: BTreeMap<String, ActionView>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct LimitsView {
    timeout_s: u64,
    memory_mb: u64,
    fuel: Option<u64>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct NetworkView {
    allowed_hosts: Vec<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ActionView {
    description: Option<String>,
    streaming: bool,
    #[schema(value_type = Option<Value>)]
    input_schema: Option<Value>,
    #[schema(value_type = Option<Value>)]
    output_schema: Option<Value>,
    run_url: String,
}

/// The view of a stored app; `max_memory_mb` is the operator's cap on memory.
pub fn app_view(record: &AppRecord, max_memory_mb: u64) -> Result<AppView, ApiError> {
    let version = &record.current;
    let manifest = Manifest::parse(&version.manifest)
        .map_err(|e| ApiError::internal(format!("stored manifest of {}: {e}", record.slug)))?;
    let limits = manifest.limits(max_memory_mb);
    let slug = record.slug.clone();
    Ok(AppView {
        run_url: format!("/api/apps/{slug}/run"),
        actions: manifest
            .actions()
            .map(|(name, action)| {
                (
                    name.to_owned(),
                    ActionView {
                        description: action.description.clone(),
                        streaming: action.streaming,
                        input_schema: action.input_schema.clone(),
                        output_schema: action.output_schema.clone(),
                        run_url: format!("/api/apps/{slug}/actions/{name}/run"),
                    },
                )
            })
            .collect(),
        limits: LimitsView {
            timeout_s: limits.timeout.as_secs(),
            memory_mb: limits.memory_bytes >> 20,
            fuel: limits.fuel,
        },
        secrets: manifest.secrets.clone(),
        network: NetworkView {
            allowed_hosts: manifest.network.allowed_hosts.clone(),
        },
        name: manifest.name,
        description: manifest.description,
        public: version.public,
        paused: record.paused,
        kind: version.kind.clone(),
        version: version.version,
        sha256: version.sha256.clone(),
        created_at: timestamp(record.created_at),
        updated_at: timestamp(record.updated_at),
        slug,
    })
}

#[derive(Serialize, ToSchema)]
pub struct AppList {
    data: Vec<AppView>,
}

#[utoipa::path(get, path = "/api/apps", tag = "apps",
    summary = "List apps: public ones, and private ones the token covers",
    responses((status = 200, body = AppList, description = "OK"), (status = 401, body = Problem, content_type = "application/problem+json", description = "Missing or wrong credentials")),
    security((), ("bearer" = [])))]
async fn list(State(state): State<AppState>, caller: Caller) -> Result<Json<AppList>, ApiError> {
    let max_memory = state.registry.max_memory_mb();
    let data = state
        .store
        .apps()
        .await?
        .iter()
        .filter(|app| app.current.public || caller.covers(&app.slug))
        .map(|app| app_view(app, max_memory))
        .collect::<Result<_, _>>()?;
    Ok(Json(AppList { data }))
}

/// Looks up an app the caller may `need`.
pub async fn authorized_app(
    state: &AppState,
    caller: &Caller,
    slug: &str,
    need: Need,
) -> Result<AppRecord, ApiError> {
    let missing = || ApiError::not_found(format!("no app {slug:?}"));
    // Administering needs credentials whatever the app: check that before looking.
    if need == Need::Administer && !caller.has_credentials() {
        caller.authorize(slug, false, need)?;
    }
    if !is_slug(slug) {
        return Err(missing());
    }
    let app = state.store.app(slug).await?.ok_or_else(missing)?;
    caller.authorize(slug, app.current.public, need)?;
    Ok(app)
}

#[utoipa::path(get, path = "/api/apps/{slug}", tag = "apps",
    summary = "One app with its actions, schemas and limits",
    params(("slug" = String, Path, description = "The app's slug")),
    responses((status = 200, body = AppView, description = "OK"), (status = 400, body = Problem, content_type = "application/problem+json", description = "Malformed request"), (status = 401, body = Problem, content_type = "application/problem+json", description = "Missing or wrong credentials"), (status = 404, body = Problem, content_type = "application/problem+json", description = "No such resource (or not visible to the caller)")),
    security((), ("bearer" = [])))]
async fn detail(
    State(state): State<AppState>,
    PathParams(slug): PathParams<String>,
    caller: Caller,
) -> Result<Json<AppView>, ApiError> {
    let app = authorized_app(&state, &caller, &slug, Need::Run).await?;
    Ok(Json(app_view(&app, state.registry.max_memory_mb())?))
}

/// `?purge=`.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct DeleteQuery {
    /// Also delete the app's executions, their events and its versions, freeing the
    /// slug for a new app (also for an app deleted earlier).
    #[param(value_type = Option<bool>)]
    purge: Option<String>,
}

/// How long a purge waits for the runs its delete stopped to be recorded.
const PURGE_WAIT: std::time::Duration = std::time::Duration::from_secs(5);

#[utoipa::path(delete, path = "/api/apps/{slug}", tag = "apps",
    summary = "Delete an app: its secrets, token grants and runs in flight go; its executions stay readable and its slug retired, unless purged",
    params(("slug" = String, Path, description = "The app's slug"), DeleteQuery),
    responses((status = 204, description = "Deleted"), (status = 400, body = Problem, content_type = "application/problem+json", description = "Malformed request"), (status = 401, body = Problem, content_type = "application/problem+json", description = "Missing or wrong credentials"), (status = 403, body = Problem, content_type = "application/problem+json", description = "The credentials do not allow this"), (status = 404, body = Problem, content_type = "application/problem+json", description = "No such resource (or not visible to the caller)"),
        (status = 409, body = Problem, content_type = "application/problem+json", description = "`?purge=true`: runs of the app have not ended yet")),
    security(("bearer" = [])))]
async fn delete(
    State(state): State<AppState>,
    PathParams(slug): PathParams<String>,
    QueryParams(query): QueryParams<DeleteQuery>,
    caller: Caller,
) -> Result<StatusCode, ApiError> {
    let purge = super::extract::flag(query.purge.as_deref(), "purge")?;
    let missing = || ApiError::not_found(format!("no app {slug:?}"));
    let deleted = match authorized_app(&state, &caller, &slug, Need::Administer).await {
        Ok(_) => {
            let deleted = state.registry.delete(&slug).await?.ok_or_else(missing)?;
            state.scheduler.app_deleted(&slug, &deleted.cancelled);
            state.tokens.forget_app(&slug);
            true
        }
        // What a deleted app left can still be purged, by whoever could administer it.
        Err(e) if purge && e.is_not_found() && is_slug(&slug) => {
            caller.authorize(&slug, false, Need::Administer)?;
            false
        }
        Err(e) => return Err(e),
    };
    if !purge {
        return Ok(StatusCode::NO_CONTENT);
    }
    // The delete told its runs to stop; they are recorded within a few ticks.
    let waited = std::time::Instant::now();
    while state.scheduler.running_of(&slug) > 0 && waited.elapsed() < PURGE_WAIT {
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    match state.registry.purge(&slug).await {
        Ok(true) => Ok(StatusCode::NO_CONTENT),
        Ok(false) if deleted => Ok(StatusCode::NO_CONTENT),
        Ok(false) => Err(missing()),
        Err(e) => match e.downcast::<NotPurgeable>() {
            Ok(e) => Err(ApiError::conflict(e.to_string())),
            Err(e) => Err(e.into()),
        },
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

#[utoipa::path(post, path = "/api/apps", tag = "apps",
    summary = "Publish an app: its manifest and component",
    request_body(content = PublishForm, content_type = "multipart/form-data"),
    responses(
        (status = 201, body = AppView, description = "A new version, now current"),
        (status = 200, body = AppView, description = "The same as the current version: nothing changed"),
        (status = 400, body = Problem, content_type = "application/problem+json", description = "Malformed upload, invalid manifest or component"),
        (status = 401, body = Problem, content_type = "application/problem+json", description = "Missing or wrong credentials"), (status = 403, body = Problem, content_type = "application/problem+json", description = "The credentials do not allow this"),
        (status = 409, body = Problem, content_type = "application/problem+json", description = "The slug belonged to a deleted app that was not purged"),
        (status = 413, body = Problem, content_type = "application/problem+json", description = "The upload is too large"),
        (status = 503, body = Problem, content_type = "application/problem+json", description = "Every sandbox is busy: the component could not be checked; see Retry-After")),
    security(("bearer" = [])))]
async fn publish(
    State(state): State<AppState>,
    caller: Caller,
    request: Request,
) -> Result<Response, ApiError> {
    // Only admins publish; which apps a scoped admin token may publish is known once the
    // manifest is read.
    let refusal = match &caller {
        Caller::Anonymous(_) => Some(ApiError::auth_failed(
            "publishing needs an admin token (Authorization: Bearer <token>)",
        )),
        Caller::Agent(token) if token.role != Role::Admin => Some(ApiError::forbidden(
            "publishing needs a token with the admin role",
        )),
        _ => None,
    };
    if let Some(refusal) = refusal {
        super::extract::drain(request.into_body()).await;
        return Err(refusal);
    }
    // The whole upload is needed in memory to compile it anyway; read it with the upload
    // limit, then parse the parts.
    let (parts, body) = request.into_parts();
    let limit = state.config.max_component + MAX_MANIFEST + (64 << 10);
    let body = super::extract::read_limited(body, limit).await?;
    let request = Request::from_parts(parts, axum::body::Body::from(body));
    let multipart = Multipart::from_request(request, &state).await;
    let mut multipart = multipart.map_err(|e| {
        ApiError::invalid_input(format!(
            "publish with multipart/form-data parts `manifest` (floom.toml) and `component` (.wasm): {}",
            e.body_text()
        ))
    })?;
    let mut manifest = None;
    let mut component = None;
    while let Some(field) = multipart.next_field().await.map_err(multipart_error)? {
        match field.name() {
            Some("manifest") => {
                let bytes = field.bytes().await.map_err(multipart_error)?;
                if bytes.len() > MAX_MANIFEST {
                    return Err(ApiError::payload_too_large(format!(
                        "the manifest is {} bytes; the limit is {MAX_MANIFEST}",
                        bytes.len()
                    )));
                }
                let text = String::from_utf8(bytes.to_vec())
                    .map_err(|_| ApiError::invalid_manifest("the manifest is not UTF-8 text"))?;
                manifest = Some(text);
            }
            Some("component") => {
                let bytes = field.bytes().await.map_err(multipart_error)?;
                if bytes.len() > state.config.max_component {
                    return Err(ApiError::payload_too_large(format!(
                        "the component is {} bytes; the limit is {}",
                        bytes.len(),
                        state.config.max_component
                    )));
                }
                component = Some(bytes);
            }
            other => {
                return Err(ApiError::invalid_input(format!(
                    "unexpected part {:?}: send `manifest` and `component`",
                    other.unwrap_or_default()
                )));
            }
        }
    }
    let (Some(manifest), Some(component)) = (manifest, component) else {
        return Err(ApiError::invalid_input(
            "both parts are needed: `manifest` (floom.toml text) and `component` (the .wasm bytes)",
        ));
    };
    let slug = Manifest::parse(&manifest)
        .map_err(|e| ApiError::invalid_manifest(e.to_string()))?
        .slug;
    if !caller.covers(&slug) {
        return Err(ApiError::forbidden(format!(
            "the token does not cover {slug:?}"
        )));
    }
    let (published, _) =
        state
            .registry
            .publish(manifest, component)
            .await
            .map_err(|e| match e {
                PublishError::Manifest(e) => ApiError::invalid_manifest(e.to_string()),
                PublishError::Component(e) => ApiError::invalid_component(e.to_string()),
                PublishError::Retired(e) => ApiError::conflict(e.to_string()),
                PublishError::Busy => ApiError::unavailable(e.to_string()),
                PublishError::Internal(e) => ApiError::internal(format!("{e:#}")),
            })?;
    let status = if published.created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    let view = app_view(&published.app, state.registry.max_memory_mb())?;
    Ok((status, Json(view)).into_response())
}

/// One version in the history.
#[derive(Serialize, ToSchema)]
pub struct VersionView {
    version: i64,
    sha256: String,
    kind: String,
    public: bool,
    current: bool,
    created_at: String,
}

#[derive(Serialize, ToSchema)]
pub struct VersionList {
    data: Vec<VersionView>,
}

#[utoipa::path(get, path = "/api/apps/{slug}/versions", tag = "apps",
    summary = "An app's version history",
    params(("slug" = String, Path, description = "The app's slug")),
    responses((status = 200, body = VersionList, description = "OK"), (status = 400, body = Problem, content_type = "application/problem+json", description = "Malformed request"), (status = 401, body = Problem, content_type = "application/problem+json", description = "Missing or wrong credentials"), (status = 404, body = Problem, content_type = "application/problem+json", description = "No such resource (or not visible to the caller)")),
    security((), ("bearer" = [])))]
async fn versions(
    State(state): State<AppState>,
    PathParams(slug): PathParams<String>,
    caller: Caller,
) -> Result<Json<VersionList>, ApiError> {
    let app = authorized_app(&state, &caller, &slug, Need::Run).await?;
    let data = state
        .store
        .versions(&slug)
        .await?
        .into_iter()
        .map(|v| VersionView {
            current: v.version == app.current.version,
            version: v.version,
            sha256: v.sha256,
            kind: v.kind,
            public: v.public,
            created_at: timestamp(v.created_at),
        })
        .collect();
    Ok(Json(VersionList { data }))
}

#[utoipa::path(post, path = "/api/apps/{slug}/rollback/{version}", tag = "apps",
    summary = "Make an earlier version current",
    params(("slug" = String, Path, description = "The app's slug"),
        ("version" = i64, Path, description = "The version to make current")),
    responses((status = 200, body = AppView, description = "OK"), (status = 400, body = Problem, content_type = "application/problem+json", description = "Malformed request"), (status = 401, body = Problem, content_type = "application/problem+json", description = "Missing or wrong credentials"), (status = 403, body = Problem, content_type = "application/problem+json", description = "The credentials do not allow this"), (status = 404, body = Problem, content_type = "application/problem+json", description = "No such resource (or not visible to the caller)")),
    security(("bearer" = [])))]
async fn rollback(
    State(state): State<AppState>,
    PathParams((slug, version)): PathParams<(String, String)>,
    caller: Caller,
) -> Result<Json<AppView>, ApiError> {
    authorized_app(&state, &caller, &slug, Need::Administer).await?;
    let version: i64 = version
        .parse()
        .map_err(|_| ApiError::invalid_input(format!("version {version:?} is not a number")))?;
    let app = state
        .registry
        .make_current(&slug, version)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("{slug} has no version {version}")))?;
    Ok(Json(app_view(&app, state.registry.max_memory_mb())?))
}

/// Execution figures of an app.
#[derive(Serialize, ToSchema)]
pub struct StatsView {
    total: i64,
    by_status: BTreeMap<&'static str, i64>,
    /// Share of finished runs that failed or timed out.
    error_rate: Option<f64>,
    /// Over the most recent 10,000 finished runs.
    duration_ms: Percentiles,
}

#[derive(Serialize, ToSchema)]
pub struct Percentiles {
    p50: Option<i64>,
    p95: Option<i64>,
}

#[utoipa::path(get, path = "/api/apps/{slug}/stats", tag = "apps",
    summary = "Execution counts, error rate and durations of an app",
    params(("slug" = String, Path, description = "The app's slug")),
    responses((status = 200, body = StatsView, description = "OK"), (status = 400, body = Problem, content_type = "application/problem+json", description = "Malformed request"), (status = 401, body = Problem, content_type = "application/problem+json", description = "Missing or wrong credentials"), (status = 404, body = Problem, content_type = "application/problem+json", description = "No such resource (or not visible to the caller)")),
    security(("bearer" = [])))]
async fn stats(
    State(state): State<AppState>,
    PathParams(slug): PathParams<String>,
    caller: Caller,
) -> Result<Json<StatsView>, ApiError> {
    if !caller.has_credentials() {
        return Err(ApiError::auth_failed(
            "stats need a token that covers the app",
        ));
    }
    authorized_app(&state, &caller, &slug, Need::Run).await?;
    if !caller.covers(&slug) {
        return Err(ApiError::not_found(format!("no app {slug:?}")));
    }
    let mut stats = state.store.stats(&slug).await?;
    stats.durations_ms.sort_unstable();
    let by_status = status_counts(&stats.counts);
    let finished: i64 = stats
        .counts
        .iter()
        .filter(|(s, _)| s.is_terminal())
        .map(|(_, n)| n)
        .sum();
    let errors = by_status["failed"] + by_status["timed_out"];
    Ok(Json(StatsView {
        total: stats.counts.iter().map(|(_, n)| n).sum(),
        error_rate: (finished > 0).then(|| errors as f64 / finished as f64),
        duration_ms: Percentiles {
            p50: percentile(&stats.durations_ms, 50.0),
            p95: percentile(&stats.durations_ms, 95.0),
        },
        by_status,
    }))
}

/// Counts per status, every status present (zero when none).
pub(super) fn status_counts(counts: &[(ExecStatus, i64)]) -> BTreeMap<&'static str, i64> {
    let mut by_status: BTreeMap<&'static str, i64> =
        ExecStatus::ALL.iter().map(|s| (s.as_str(), 0)).collect();
    for (status, count) in counts {
        by_status.insert(status.as_str(), *count);
    }
    by_status
}
