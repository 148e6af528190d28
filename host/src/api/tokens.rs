//! `/api/tokens`: create, list and revoke agent tokens (full admins only).

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get};
use axum::{Json, Router};
use floom_runtime::is_slug;
use serde::{Deserialize, Serialize};

use super::auth::Caller;
use super::error::ApiError;
use super::extract::{JsonBody, PathParams};
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

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewToken {
    /// A label for people.
    name: String,
    /// `run` (default) or `admin`.
    #[serde(default)]
    role: Option<Role>,
    /// The apps it covers; absent or null for every app.
    #[serde(default)]
    apps: Option<Vec<String>>,
    /// Seconds until it stops working; absent for never.
    #[serde(default)]
    expires_in_s: Option<u64>,
}

/// A token as the API shows it.
#[derive(Serialize)]
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

#[derive(Serialize)]
struct TokenList {
    data: Vec<TokenView>,
}

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
