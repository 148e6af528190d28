//! `/api/apps/{slug}/secrets`: set, list (names only) and delete an app's secrets.
//! Values are encrypted at rest and never appear in an answer, a log or an event.

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{get, put};
use axum::{Json, Router};
use floom_runtime::{Manifest, is_secret_name};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::apps::authorized_app;
use super::auth::{Caller, Need};
use super::error::{ApiError, Problem};
use super::extract::{JsonBody, PathParams};
use super::{AppState, timestamp};
use crate::crypto::secret_owner;
use crate::store::{SecretRecord, now_ms};

/// The largest secret value.
const MAX_VALUE: usize = 64 << 10;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/apps/{slug}/secrets", get(list))
        .route("/api/apps/{slug}/secrets/{name}", put(set).delete(remove))
}

/// A secret's value.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SecretValue {
    /// The value, at most 64 KiB.
    value: String,
}

fn check_name(name: &str) -> Result<(), ApiError> {
    if is_secret_name(name) {
        Ok(())
    } else {
        Err(ApiError::invalid_input(format!(
            "{name:?} is not a secret name (^[A-Z_][A-Z0-9_]{{0,63}}$, not FLOOM_...)"
        )))
    }
}

/// Set a secret's value (encrypted at rest; never shown again).
#[utoipa::path(put, path = "/api/apps/{slug}/secrets/{name}", tag = "secrets",
    params(("slug" = String, Path, description = "The app's slug"),
        ("name" = String, Path, description = "The secret's name", pattern = "^[A-Z_][A-Z0-9_]{0,63}$")),
    request_body(content = SecretValue, content_type = "application/json"),
    responses((status = 204, description = "Set"), (status = 400, body = Problem, content_type = "application/problem+json", description = "Malformed request"), (status = 401, body = Problem, content_type = "application/problem+json", description = "Missing or wrong credentials"), (status = 403, body = Problem, content_type = "application/problem+json", description = "The credentials do not allow this"), (status = 404, body = Problem, content_type = "application/problem+json", description = "No such resource (or not visible to the caller)"),
        (status = 413, body = Problem, content_type = "application/problem+json", description = "The value is too large"),
        (status = 415, body = Problem, content_type = "application/problem+json", description = "The body is not JSON")),
    security(("bearer" = [])))]
async fn set(
    State(state): State<AppState>,
    PathParams((slug, name)): PathParams<(String, String)>,
    caller: Caller,
    JsonBody(secret): JsonBody<SecretValue>,
) -> Result<StatusCode, ApiError> {
    authorized_app(&state, &caller, &slug, Need::Administer).await?;
    check_name(&name)?;
    if secret.value.len() > MAX_VALUE {
        return Err(ApiError::payload_too_large(format!(
            "a secret value is at most {MAX_VALUE} bytes"
        )));
    }
    let sealed = state
        .sealer
        .seal(&secret_owner(&slug, &name), secret.value.as_bytes())?;
    state
        .store
        .put_secret(
            &slug,
            SecretRecord {
                name,
                sealed,
                updated_at: now_ms(),
            },
        )
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// A secret, without its value.
#[derive(Serialize, ToSchema)]
pub struct SecretView {
    /// The name.
    name: String,
    /// Whether the current manifest declares it (only declared secrets reach runs).
    declared: bool,
    /// When it was last set.
    updated_at: String,
}

/// An app's secrets.
#[derive(Serialize, ToSchema)]
pub struct SecretList {
    /// By name.
    data: Vec<SecretView>,
}

/// An app's secret names (never values).
#[utoipa::path(get, path = "/api/apps/{slug}/secrets", tag = "secrets",
    params(("slug" = String, Path, description = "The app's slug")),
    responses((status = 200, body = SecretList, description = "OK"), (status = 400, body = Problem, content_type = "application/problem+json", description = "Malformed request"), (status = 401, body = Problem, content_type = "application/problem+json", description = "Missing or wrong credentials"), (status = 403, body = Problem, content_type = "application/problem+json", description = "The credentials do not allow this"), (status = 404, body = Problem, content_type = "application/problem+json", description = "No such resource (or not visible to the caller)")),
    security(("bearer" = [])))]
async fn list(
    State(state): State<AppState>,
    PathParams(slug): PathParams<String>,
    caller: Caller,
) -> Result<Json<SecretList>, ApiError> {
    let app = authorized_app(&state, &caller, &slug, Need::Administer).await?;
    let declared = Manifest::parse(&app.current.manifest)
        .map(|m| m.secrets)
        .unwrap_or_default();
    let data = state
        .store
        .secrets(&slug)
        .await?
        .into_iter()
        .map(|s| SecretView {
            declared: declared.contains(&s.name),
            name: s.name,
            updated_at: timestamp(s.updated_at),
        })
        .collect();
    Ok(Json(SecretList { data }))
}

/// Delete a secret.
#[utoipa::path(delete, path = "/api/apps/{slug}/secrets/{name}", tag = "secrets",
    params(("slug" = String, Path, description = "The app's slug"),
        ("name" = String, Path, description = "The secret's name")),
    responses((status = 204, description = "Deleted"), (status = 400, body = Problem, content_type = "application/problem+json", description = "Malformed request"), (status = 401, body = Problem, content_type = "application/problem+json", description = "Missing or wrong credentials"), (status = 403, body = Problem, content_type = "application/problem+json", description = "The credentials do not allow this"), (status = 404, body = Problem, content_type = "application/problem+json", description = "No such resource (or not visible to the caller)")),
    security(("bearer" = [])))]
async fn remove(
    State(state): State<AppState>,
    PathParams((slug, name)): PathParams<(String, String)>,
    caller: Caller,
) -> Result<StatusCode, ApiError> {
    authorized_app(&state, &caller, &slug, Need::Administer).await?;
    check_name(&name)?;
    if state.store.delete_secret(&slug, &name).await? {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::not_found(format!(
            "{slug} has no secret {name:?}"
        )))
    }
}
