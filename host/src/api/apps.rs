//! `/api/apps`: publish, list, read and delete apps; and the two run endpoints.

use std::collections::BTreeMap;

use axum::extract::multipart::{Multipart, MultipartError};
use axum::extract::{DefaultBodyLimit, FromRequest, Request, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use floom_runtime::{Manifest, is_slug};
use serde::Serialize;
use serde_json::Value;

use super::auth::Caller;
use super::error::ApiError;
use super::extract::PathParams;
use super::{AppState, runs, timestamp};
use crate::registry::PublishError;
use crate::store::AppRecord;

/// Largest manifest part of a publish.
const MAX_MANIFEST: usize = 256 << 10;

pub fn router() -> Router<AppState> {
    Router::new()
        .route(
            "/api/apps",
            // The publish handler reads its body with its own limit.
            get(list).post(publish).layer(DefaultBodyLimit::disable()),
        )
        .route("/api/apps/{slug}", get(detail).delete(delete))
        .route("/api/apps/{slug}/run", post(runs::run_app))
        .route(
            "/api/apps/{slug}/actions/{action}/run",
            post(runs::run_action),
        )
}

/// An app as the API shows it.
#[derive(Debug, Serialize)]
pub struct AppView {
    slug: String,
    name: Option<String>,
    description: Option<String>,
    public: bool,
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

#[derive(Debug, Serialize)]
struct LimitsView {
    timeout_s: u64,
    memory_mb: u64,
    fuel: Option<u64>,
}

#[derive(Debug, Serialize)]
struct NetworkView {
    allowed_hosts: Vec<String>,
}

#[derive(Debug, Serialize)]
struct ActionView {
    description: Option<String>,
    streaming: bool,
    input_schema: Option<Value>,
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
        kind: version.kind.clone(),
        version: version.version,
        sha256: version.sha256.clone(),
        created_at: timestamp(record.created_at),
        updated_at: timestamp(record.updated_at),
        slug,
    })
}

#[derive(Serialize)]
struct AppList {
    data: Vec<AppView>,
}

async fn list(
    State(state): State<AppState>,
    headers: HeaderMap,
) -> Result<Json<AppList>, ApiError> {
    let caller = Caller::from_headers(&headers, &state.admin_token)?;
    let max_memory = state.registry.max_memory_mb();
    let data = state
        .store
        .apps()
        .await?
        .iter()
        .filter(|app| app.current.public || caller.is_admin())
        .map(|app| app_view(app, max_memory))
        .collect::<Result<_, _>>()?;
    Ok(Json(AppList { data }))
}

/// Looks up an app the caller may see: private apps need credentials.
async fn visible_app(state: &AppState, caller: Caller, slug: &str) -> Result<AppRecord, ApiError> {
    let missing = || ApiError::not_found(format!("no app {slug:?}"));
    if !is_slug(slug) {
        return Err(missing());
    }
    let app = state.store.app(slug).await?.ok_or_else(missing)?;
    if !app.current.public && !caller.is_admin() {
        return Err(ApiError::auth_failed(format!(
            "{slug} is private: send a token that covers it"
        )));
    }
    Ok(app)
}

async fn detail(
    State(state): State<AppState>,
    PathParams(slug): PathParams<String>,
    headers: HeaderMap,
) -> Result<Json<AppView>, ApiError> {
    let caller = Caller::from_headers(&headers, &state.admin_token)?;
    let app = visible_app(&state, caller, &slug).await?;
    Ok(Json(app_view(&app, state.registry.max_memory_mb())?))
}

async fn delete(
    State(state): State<AppState>,
    PathParams(slug): PathParams<String>,
    headers: HeaderMap,
) -> Result<StatusCode, ApiError> {
    Caller::from_headers(&headers, &state.admin_token)?.require_admin()?;
    if is_slug(&slug) && state.registry.delete(&slug).await? {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::not_found(format!("no app {slug:?}")))
    }
}

fn multipart_error(e: MultipartError) -> ApiError {
    if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
        ApiError::payload_too_large(format!("the upload is too large: {}", e.body_text()))
    } else {
        ApiError::invalid_input(format!(
            "the multipart body is malformed: {}",
            e.body_text()
        ))
    }
}

async fn publish(State(state): State<AppState>, request: Request) -> Result<Response, ApiError> {
    Caller::from_headers(request.headers(), &state.admin_token)?.require_admin()?;
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
    let (published, _) =
        state
            .registry
            .publish(manifest, component)
            .await
            .map_err(|e| match e {
                PublishError::Manifest(e) => ApiError::invalid_manifest(e.to_string()),
                PublishError::Component(e) => ApiError::invalid_component(e.to_string()),
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
