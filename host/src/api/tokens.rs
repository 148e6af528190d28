//! `/api/tokens`: create, list and revoke agent tokens (full admins only).

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get};
use axum::{Json, Router};
use floom_runtime::is_slug;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::auth::Caller;
use super::error::{ApiError, Problem};
use super::extract::{JsonBody, PathParams};
use super::openapi::SlugDoc;
use super::{AppState, timestamp};
use crate::store::{TokenRecord, now_ms};
use crate::tokens::Role;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/tokens", get(list).post(create))
        .route("/api/tokens/{id}", delete(revoke))
}

/// The longest a token may be made to last: ten years.
const MAX_EXPIRY_S: u64 = 10 * 365 * 24 * 3600;

/// A token to create.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewToken {
    /// A label for people.
    #[schema(min_length = 1, max_length = 100, pattern = "\\S")]
    name: String,
    /// `run` (default) or `admin`.
    #[serde(default)]
    role: Option<Role>,
    /// The apps it covers; absent or null for every app.
    #[serde(default)]
    #[schema(min_items = 1, inline, value_type = Option<Vec<SlugDoc>>)]
    apps: Option<Vec<String>>,
    /// Seconds until it stops working; absent for never.
    #[serde(default, deserialize_with = "whole_seconds")]
    #[schema(minimum = 1, maximum = 315_360_000, value_type = Option<u64>)]
    expires_in_s: Option<u64>,
}

/// A whole number of seconds; JSON Schema counts `60.0` as an integer too.
fn whole_seconds<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
    let Some(number) = Option::<serde_json::Number>::deserialize(d)? else {
        return Ok(None);
    };
    number
        .as_u64()
        .or_else(|| {
            number
                .as_f64()
                .filter(|f| f.fract() == 0.0 && *f >= 0.0 && *f <= u64::MAX as f64)
                .map(|f| f as u64)
        })
        .map(Some)
        .ok_or_else(|| {
            serde::de::Error::custom(format!("{number} is not a whole number of seconds"))
        })
}

/// A token as the API shows it.
#[derive(Serialize, ToSchema)]
pub struct TokenView {
    id: String,
    name: String,
    role: String,
    apps: Option<Vec<String>>,
    created_at: String,
    expires_at: Option<String>,
    revoked_at: Option<String>,
    /// Only in the answer to its creation.
    #[serde(skip_serializing_if = "Option::is_none")]
    token: Option<String>,
}

fn view(record: TokenRecord, token: Option<String>) -> TokenView {
    TokenView {
        id: record.id,
        name: record.name,
        role: record.role,
        apps: record.apps,
        created_at: timestamp(record.created_at),
        expires_at: record.expires_at.map(timestamp),
        revoked_at: record.revoked_at.map(timestamp),
        token,
    }
}

/// Create an agent token; the answer is the only time it is shown.
#[utoipa::path(post, path = "/api/tokens", tag = "tokens",
    request_body(content = NewToken, content_type = "application/json"),
    responses((status = 201, body = TokenView, description = "Created"), (status = 400, body = Problem, content_type = "application/problem+json", description = "Malformed request"), (status = 401, body = Problem, content_type = "application/problem+json", description = "Missing or wrong credentials"), (status = 403, body = Problem, content_type = "application/problem+json", description = "The credentials do not allow this"),
        (status = 415, body = Problem, content_type = "application/problem+json", description = "The body is not JSON")),
    security(("bearer" = [])))]
async fn create(
    State(state): State<AppState>,
    caller: Caller,
    JsonBody(new): JsonBody<NewToken>,
) -> Result<Response, ApiError> {
    caller.require_full_admin()?;
    let name = new.name.trim().to_owned();
    if name.is_empty() || name.chars().count() > 100 {
        return Err(ApiError::invalid_input("name must be 1 to 100 characters"));
    }
    if let Some(apps) = &new.apps {
        if apps.is_empty() {
            return Err(ApiError::invalid_input(
                "apps must list at least one slug (or be left out for every app)",
            ));
        }
        if let Some(bad) = apps.iter().find(|a| !is_slug(a)) {
            return Err(ApiError::invalid_input(format!(
                "apps: {bad:?} is not a slug"
            )));
        }
    }
    let expires_at = match new.expires_in_s {
        None => None,
        Some(0) => return Err(ApiError::invalid_input("expires_in_s must be at least 1")),
        Some(s) if s > MAX_EXPIRY_S => {
            return Err(ApiError::invalid_input(format!(
                "expires_in_s must be at most {MAX_EXPIRY_S}"
            )));
        }
        Some(s) => Some(now_ms() + i64::try_from(s * 1000).unwrap_or(i64::MAX)),
    };
    let (record, token) = state
        .tokens
        .create(name, new.role.unwrap_or(Role::Run), new.apps, expires_at)
        .await?;
    Ok((StatusCode::CREATED, Json(view(record, Some(token)))).into_response())
}

/// Every token.
#[derive(Serialize, ToSchema)]
pub struct TokenList {
    data: Vec<TokenView>,
}

/// List agent tokens (never their secrets).
#[utoipa::path(get, path = "/api/tokens", tag = "tokens",
    responses((status = 200, body = TokenList, description = "OK"), (status = 401, body = Problem, content_type = "application/problem+json", description = "Missing or wrong credentials"), (status = 403, body = Problem, content_type = "application/problem+json", description = "The credentials do not allow this")),
    security(("bearer" = [])))]
async fn list(State(state): State<AppState>, caller: Caller) -> Result<Json<TokenList>, ApiError> {
    caller.require_full_admin()?;
    let data = state
        .store
        .tokens()
        .await?
        .into_iter()
        .map(|record| view(record, None))
        .collect();
    Ok(Json(TokenList { data }))
}

/// Revoke a token at once.
#[utoipa::path(delete, path = "/api/tokens/{id}", tag = "tokens",
    params(("id" = String, Path, description = "tok_...")),
    responses((status = 204, description = "Revoked"), (status = 400, body = Problem, content_type = "application/problem+json", description = "Malformed request"), (status = 401, body = Problem, content_type = "application/problem+json", description = "Missing or wrong credentials"), (status = 403, body = Problem, content_type = "application/problem+json", description = "The credentials do not allow this"), (status = 404, body = Problem, content_type = "application/problem+json", description = "No such resource (or not visible to the caller)")),
    security(("bearer" = [])))]
async fn revoke(
    State(state): State<AppState>,
    PathParams(id): PathParams<String>,
    caller: Caller,
) -> Result<StatusCode, ApiError> {
    caller.require_full_admin()?;
    if state.tokens.revoke(&id).await? {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::not_found(format!("no live token {id:?}")))
    }
}
