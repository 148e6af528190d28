//! Inbound triggers (SPEC section 9): `/api/apps/{slug}/triggers` to create, list,
//! rotate and delete them (admin), and `POST /hooks/{id}`, where a sender starts a run
//! whose inputs are the body it posts.
//!
//! A sender proves itself with `?token=<secret>` or an `X-Floom-Signature:
//! sha256=<hex HMAC-SHA256 of the raw body>` header keyed with the secret's text (as
//! GitHub signs), both compared in constant time; anything else is 401 and starts
//! nothing. The body is checked like any run's inputs (400 with `errors`, nothing
//! created). A delivery id (`webhook-id`, `X-Request-ID` or `Idempotency-Key`) is
//! de-duplicated for 24 h, as an idempotency key scoped to the trigger, and each trigger
//! has its own rate limit (`--runs-per-minute`).

use axum::extract::{Request, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, post};
use axum::{Json, Router};
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::Sha256;
use subtle::ConstantTimeEq;
use utoipa::{IntoParams, ToSchema};

use super::apps::authorized_app;
use super::auth::{Caller, Need, random_token};
use super::error::{ApiError, Problem};
use super::extract::{JsonBody, PathParams, QueryParams, read_limited};
use super::{AppState, timestamp};
use crate::runs::{self, RunOptions, StartRun};
use crate::store::{TriggerRecord, TriggerSource, now_ms};

/// The trigger routes.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/apps/{slug}/triggers", post(create).get(list))
        .route("/api/apps/{slug}/triggers/{id}", delete(remove))
        .route("/api/apps/{slug}/triggers/{id}/rotate", post(rotate))
        .route("/hooks/{id}", post(hook))
}

/// The headers that may carry a delivery id, in the order they are read.
const DELIVERY_ID_HEADERS: [&str; 3] = ["webhook-id", "x-request-id", "idempotency-key"];

/// The associated data a trigger's secret is sealed with.
fn owner(id: &str) -> Vec<u8> {
    format!("trigger\0{id}").into_bytes()
}

/// A new trigger.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewTrigger {
    /// The action it runs (default `run`, or the app's only action).
    #[serde(default)]
    action: Option<String>,
}

/// A trigger as listed (its secret is never shown again).
#[derive(Debug, Serialize, ToSchema)]
pub struct TriggerView {
    /// `trg_...`
    id: String,
    /// Where senders post: `/hooks/{id}`.
    url: String,
    /// The action it runs.
    action: String,
    /// When it was made.
    created_at: String,
    /// When its secret was last replaced.
    rotated_at: Option<String>,
}

/// A trigger with its secret, shown once (when made or rotated).
#[derive(Debug, Serialize, ToSchema)]
pub struct TriggerSecret {
    #[serde(flatten)]
    trigger: TriggerView,
    /// Send it as `?token=`, or key an `X-Floom-Signature: sha256=<hex HMAC-SHA256 of
    /// the body>` with it.
    secret: String,
}

/// The triggers of an app.
#[derive(Debug, Serialize, ToSchema)]
pub struct TriggerList {
    data: Vec<TriggerView>,
}

fn view(trigger: &TriggerRecord) -> TriggerView {
    TriggerView {
        url: format!("/hooks/{}", trigger.id),
        id: trigger.id.clone(),
        action: trigger.action.clone(),
        created_at: timestamp(trigger.created_at),
        rotated_at: trigger.rotated_at.map(timestamp),
    }
}

/// Create a trigger; its secret is shown once.
#[utoipa::path(post, path = "/api/apps/{slug}/triggers", tag = "triggers",
    params(("slug" = String, Path, description = "The app's slug")),
    request_body(content = NewTrigger, content_type = "application/json"),
    responses((status = 201, body = TriggerSecret, description = "Created; the secret is shown this once"),
        (status = 400, body = Problem, content_type = "application/problem+json", description = "Malformed request or an unknown action"),
        (status = 401, body = Problem, content_type = "application/problem+json", description = "Missing or wrong credentials"),
        (status = 403, body = Problem, content_type = "application/problem+json", description = "The credentials do not allow this"),
        (status = 404, body = Problem, content_type = "application/problem+json", description = "No such resource (or not visible to the caller)")),
    security(("bearer" = [])))]
async fn create(
    State(state): State<AppState>,
    PathParams(slug): PathParams<String>,
    caller: Caller,
    JsonBody(body): JsonBody<NewTrigger>,
) -> Result<Response, ApiError> {
    authorized_app(&state, &caller, &slug, Need::Administer).await?;
    let action = chosen_action(&state, &slug, body.action)?;
    let id = format!("trg_{}", uuid::Uuid::now_v7().simple());
    let secret = random_token()?;
    let trigger = TriggerRecord {
        secret: state.sealer.seal(&owner(&id), secret.as_bytes())?,
        id,
        app: slug,
        action,
        created_at: now_ms(),
        rotated_at: None,
    };
    state.store.insert_trigger(trigger.clone()).await?;
    let shown = TriggerSecret {
        trigger: view(&trigger),
        secret,
    };
    Ok((StatusCode::CREATED, Json(shown)).into_response())
}

/// The action named (which the app must have), else its default one.
pub fn chosen_action(
    state: &AppState,
    slug: &str,
    named: Option<String>,
) -> Result<String, ApiError> {
    let app = state
        .registry
        .current(slug)
        .ok_or_else(|| ApiError::not_found(format!("no app {slug:?}")))?;
    let manifest = app.app.manifest();
    match named {
        Some(name) if manifest.action(&name).is_some() => Ok(name),
        Some(name) => Err(ApiError::invalid_input(format!(
            "{slug} has no action {name:?} (it has: {})",
            manifest
                .actions()
                .map(|(name, _)| name)
                .collect::<Vec<_>>()
                .join(", ")
        ))),
        None => runs::default_action(&app).ok_or_else(|| {
            ApiError::invalid_input(format!(
                "{slug} has several actions: name one with \"action\""
            ))
        }),
    }
}

/// List an app's triggers (never their secrets).
#[utoipa::path(get, path = "/api/apps/{slug}/triggers", tag = "triggers",
    params(("slug" = String, Path, description = "The app's slug")),
    responses((status = 200, body = TriggerList, description = "OK"),
        (status = 400, body = Problem, content_type = "application/problem+json", description = "Malformed request"),
        (status = 401, body = Problem, content_type = "application/problem+json", description = "Missing or wrong credentials"),
        (status = 403, body = Problem, content_type = "application/problem+json", description = "The credentials do not allow this"),
        (status = 404, body = Problem, content_type = "application/problem+json", description = "No such resource (or not visible to the caller)")),
    security(("bearer" = [])))]
async fn list(
    State(state): State<AppState>,
    PathParams(slug): PathParams<String>,
    caller: Caller,
) -> Result<Json<TriggerList>, ApiError> {
    authorized_app(&state, &caller, &slug, Need::Administer).await?;
    let data = state
        .store
        .triggers(&slug)
        .await?
        .iter()
        .map(view)
        .collect();
    Ok(Json(TriggerList { data }))
}

/// Replace a trigger's secret: the new one is shown once, the old one stops working.
#[utoipa::path(post, path = "/api/apps/{slug}/triggers/{id}/rotate", tag = "triggers",
    params(("slug" = String, Path, description = "The app's slug"), ("id" = String, Path, description = "trg_...")),
    responses((status = 200, body = TriggerSecret, description = "The new secret, shown this once"),
        (status = 400, body = Problem, content_type = "application/problem+json", description = "Malformed request"),
        (status = 401, body = Problem, content_type = "application/problem+json", description = "Missing or wrong credentials"),
        (status = 403, body = Problem, content_type = "application/problem+json", description = "The credentials do not allow this"),
        (status = 404, body = Problem, content_type = "application/problem+json", description = "No such resource (or not visible to the caller)")),
    security(("bearer" = [])))]
async fn rotate(
    State(state): State<AppState>,
    PathParams((slug, id)): PathParams<(String, String)>,
    caller: Caller,
) -> Result<Json<TriggerSecret>, ApiError> {
    authorized_app(&state, &caller, &slug, Need::Administer).await?;
    let missing = || ApiError::not_found(format!("{slug} has no trigger {id:?}"));
    let secret = random_token()?;
    let sealed = state.sealer.seal(&owner(&id), secret.as_bytes())?;
    if !state
        .store
        .rotate_trigger(&slug, &id, sealed, now_ms())
        .await?
    {
        return Err(missing());
    }
    let trigger = state.store.trigger(&id).await?.ok_or_else(missing)?;
    Ok(Json(TriggerSecret {
        trigger: view(&trigger),
        secret,
    }))
}

/// Delete a trigger.
#[utoipa::path(delete, path = "/api/apps/{slug}/triggers/{id}", tag = "triggers",
    params(("slug" = String, Path, description = "The app's slug"), ("id" = String, Path, description = "trg_...")),
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
    if state.store.delete_trigger(&slug, &id).await? {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::not_found(format!("{slug} has no trigger {id:?}")))
    }
}

/// `?token=`.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct HookQuery {
    /// The trigger's secret (or sign the body with X-Floom-Signature instead).
    token: Option<String>,
}

/// What a trigger answers.
#[derive(Debug, Serialize, ToSchema)]
pub struct HookAnswer {
    /// `queued` for a new run; a repeated delivery answers its run's status now.
    #[schema(value_type = String)]
    status: String,
    /// `exec_...`
    execution_id: String,
    /// Reads the execution without a token.
    view_token: String,
}

/// Start a run of the trigger's action with the body as its inputs.
#[utoipa::path(post, path = "/hooks/{id}", tag = "triggers",
    params(("id" = String, Path, description = "trg_..."), HookQuery,
        ("X-Floom-Signature" = Option<String>, Header, description = "sha256=<hex HMAC-SHA256 of the raw body, keyed with the secret>"),
        ("webhook-id" = Option<String>, Header, description = "A delivery id, de-duplicated for 24 h (also X-Request-ID or Idempotency-Key)")),
    request_body(content = Object, content_type = "application/json", description = "The inputs"),
    responses((status = 202, body = HookAnswer, description = "Accepted: the run is queued"),
        (status = 200, body = HookAnswer, description = "A delivery id seen in the last 24 h: its run"),
        (status = 400, body = Problem, content_type = "application/problem+json", description = "The body is not a JSON object, or breaks the action's input_schema (see `errors`); nothing was started"),
        (status = 401, body = Problem, content_type = "application/problem+json", description = "No token or signature, or a wrong one; nothing was started"),
        (status = 404, body = Problem, content_type = "application/problem+json", description = "No such trigger"),
        (status = 409, body = Problem, content_type = "application/problem+json", description = "The app is paused"),
        (status = 413, body = Problem, content_type = "application/problem+json", description = "The body is too large"),
        (status = 422, body = Problem, content_type = "application/problem+json", description = "The delivery id was used with a different body"),
        (status = 429, body = Problem, content_type = "application/problem+json", description = "The trigger's rate limit, or the queue, is full; see Retry-After")),
    security(()))]
async fn hook(
    State(state): State<AppState>,
    PathParams(id): PathParams<String>,
    QueryParams(query): QueryParams<HookQuery>,
    headers: HeaderMap,
    request: Request,
) -> Result<Response, ApiError> {
    let missing = || ApiError::not_found(format!("no trigger {id:?}"));
    if !id.starts_with("trg_") || id.len() > 64 {
        return Err(missing());
    }
    let body = read_limited(request.into_body(), state.config.max_body).await?;
    let trigger = state.store.trigger(&id).await?.ok_or_else(missing)?;
    let secret = state.sealer.open(&owner(&id), &trigger.secret)?;
    authenticate(&secret, query.token.as_deref(), &headers, &body)?;
    // After the proof, so nobody without the secret can spend a trigger's allowance.
    if let Err(wait) = state.limiter.check(&format!("trigger:{id}")) {
        return Err(ApiError::quota_exceeded(
            format!(
                "too many runs for this trigger: the limit is {} a minute",
                state.config.runs_per_minute
            ),
            wait.as_secs().max(1),
        ));
    }
    let inputs: Value = if body.iter().all(u8::is_ascii_whitespace) {
        Value::Object(Default::default())
    } else {
        serde_json::from_slice(&body)
            .map_err(|e| ApiError::invalid_input(format!("the body is not JSON: {e}")))?
    };
    if !inputs.is_object() {
        return Err(ApiError::invalid_input(
            "the body must be a JSON object: it becomes the run's inputs",
        ));
    }
    let delivery = DELIVERY_ID_HEADERS
        .iter()
        .find_map(|name| headers.get(*name))
        .map(|v| runs::idempotency_key(v.to_str().unwrap_or_default()))
        .transpose()?;
    let started = runs::start_with(
        &state,
        &Caller::Admin,
        StartRun {
            slug: trigger.app.clone(),
            action: Some(trigger.action.clone()),
            action_in_path: false,
            inputs: Some(inputs),
            idempotency_key: delivery,
            trigger_source: TriggerSource::Webhook,
            mcp_call: None,
            watch: false,
        },
        RunOptions {
            on_behalf_of: Some(format!("trigger:{id}")),
            ..RunOptions::default()
        },
    )
    .await?;
    let (code, status) = if started.replay {
        let envelope = runs::current(&state, &started.id).await?;
        (StatusCode::OK, envelope.status.as_str().to_owned())
    } else {
        (StatusCode::ACCEPTED, "queued".to_owned())
    };
    let answer = HookAnswer {
        status,
        execution_id: started.id,
        view_token: started.view_token,
    };
    Ok((code, Json(answer)).into_response())
}

/// Checks the sender's proof: the secret as `?token=`, or the HMAC of `body` in
/// `X-Floom-Signature`; both compared in constant time.
fn authenticate(
    secret: &[u8],
    token: Option<&str>,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<(), ApiError> {
    let signature = headers
        .get("x-floom-signature")
        .map(|v| v.to_str().unwrap_or_default());
    if token.is_none() && signature.is_none() {
        return Err(ApiError::auth_failed(
            "send the trigger's secret as ?token=, or sign the body: X-Floom-Signature: \
             sha256=<hex HMAC-SHA256 of the body, keyed with the secret>",
        ));
    }
    let token_ok = token.is_some_and(|t| !t.is_empty() && bool::from(t.as_bytes().ct_eq(secret)));
    let signature_ok = signature.is_some_and(|s| signature_matches(secret, s, body));
    if token_ok || signature_ok {
        Ok(())
    } else {
        Err(ApiError::auth_failed(
            "the trigger's token or signature is wrong",
        ))
    }
}

/// Whether `header` is `sha256=<hex>` of the HMAC-SHA256 of `body` keyed with `secret`.
fn signature_matches(secret: &[u8], header: &str, body: &[u8]) -> bool {
    let Some(Ok(presented)) = header.trim().strip_prefix("sha256=").map(hex::decode) else {
        return false;
    };
    let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(secret) else {
        return false;
    };
    mac.update(body);
    // `verify_slice` compares in constant time.
    mac.verify_slice(&presented).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signatures_are_github_style_hmacs_of_the_body() {
        let secret = b"It's a Secret to Everybody";
        // GitHub's documented example.
        let header = "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17";
        assert!(signature_matches(secret, header, b"Hello, World!"));
        assert!(!signature_matches(secret, header, b"Hello, World?"));
        assert!(!signature_matches(b"another", header, b"Hello, World!"));
        assert!(!signature_matches(
            secret,
            "sha1=757107ea",
            b"Hello, World!"
        ));
        assert!(!signature_matches(secret, "sha256=zz", b"Hello, World!"));
    }
}
