//! Notification subscriptions (SPEC section 9): `/api/apps/{slug}/webhooks` to
//! subscribe a URL to an app's execution events, list and remove subscriptions, list
//! every delivery attempt, and read the app's run-webhook key (admin).
//! [`crate::notify`] delivers.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::apps::authorized_app;
use super::auth::{Caller, Need};
use super::error::{ApiError, Problem};
use super::extract::{JsonBody, PathParams, QueryParams};
use super::{AppState, timestamp};
use crate::notify::{self, sign};
use crate::store::{DeliveryHistory, EVENT_TYPES, SubscriptionRecord, now_ms};

/// The subscription routes.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/apps/{slug}/webhooks", post(create).get(list))
        .route("/api/apps/{slug}/webhooks/secret", get(run_secret))
        .route("/api/apps/{slug}/webhooks/{id}", delete(remove))
        .route("/api/apps/{slug}/webhooks/{id}/deliveries", get(deliveries))
}

/// A new subscription.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewSubscription {
    /// Where deliveries go: http or https, a public address unless the server allows
    /// private ones.
    #[schema(example = "https://example.org/floom-events")]
    url: String,
    /// The events to receive (default: all of them): `execution.succeeded`,
    /// `execution.failed`, `execution.timed_out`, `execution.cancelled`,
    /// `execution.awaiting_approval`.
    #[serde(default)]
    events: Option<Vec<String>>,
}

/// A subscription as listed (its key is never shown again).
#[derive(Debug, Serialize, ToSchema)]
pub struct SubscriptionView {
    /// `whk_...`
    id: String,
    /// Where deliveries go.
    url: String,
    /// The events it receives.
    events: Vec<String>,
    /// When it was made.
    created_at: String,
    /// Whether deliveries still go out (a receiver's 410 Gone disables it).
    enabled: bool,
    /// When it was disabled.
    disabled_at: Option<String>,
    /// Why.
    disabled_reason: Option<String>,
}

/// A subscription with its signing key, shown once.
#[derive(Debug, Serialize, ToSchema)]
pub struct SubscriptionSecret {
    #[serde(flatten)]
    subscription: SubscriptionView,
    /// The Standard Webhooks key (`whsec_...`) every delivery is signed with.
    secret: String,
}

/// The subscriptions of an app.
#[derive(Debug, Serialize, ToSchema)]
pub struct SubscriptionList {
    data: Vec<SubscriptionView>,
}

/// An app's run-webhook key.
#[derive(Debug, Serialize, ToSchema)]
pub struct RunWebhookSecret {
    /// The Standard Webhooks key (`whsec_...`) the deliveries to runs' own `webhook`
    /// URLs are signed with.
    secret: String,
}

fn view(subscription: &SubscriptionRecord) -> SubscriptionView {
    SubscriptionView {
        id: subscription.id.clone(),
        url: subscription.url.clone(),
        events: subscription.events.clone(),
        created_at: timestamp(subscription.created_at),
        enabled: subscription.disabled_at.is_none(),
        disabled_at: subscription.disabled_at.map(timestamp),
        disabled_reason: subscription.disabled_reason.clone(),
    }
}

/// Subscribe a URL to the app's execution events; the signing key is shown once.
#[utoipa::path(post, path = "/api/apps/{slug}/webhooks", tag = "webhooks",
    params(("slug" = String, Path, description = "The app's slug")),
    request_body(content = NewSubscription, content_type = "application/json"),
    responses((status = 201, body = SubscriptionSecret, description = "Subscribed; the key is shown this once"),
        (status = 400, body = Problem, content_type = "application/problem+json", description = "Not an http(s) URL, a private address (without --allow-private-network), or an unknown event"),
        (status = 401, body = Problem, content_type = "application/problem+json", description = "Missing or wrong credentials"),
        (status = 403, body = Problem, content_type = "application/problem+json", description = "The credentials do not allow this"),
        (status = 404, body = Problem, content_type = "application/problem+json", description = "No such resource (or not visible to the caller)")),
    security(("bearer" = [])))]
async fn create(
    State(state): State<AppState>,
    PathParams(slug): PathParams<String>,
    caller: Caller,
    JsonBody(body): JsonBody<NewSubscription>,
) -> Result<Response, ApiError> {
    authorized_app(&state, &caller, &slug, Need::Administer).await?;
    let url = notify::check_url(&body.url, state.config.allow_private_network)
        .map_err(ApiError::invalid_input)?;
    let mut events = body
        .events
        .unwrap_or_else(|| EVENT_TYPES.iter().map(|e| (*e).to_owned()).collect());
    if events.is_empty() {
        return Err(ApiError::invalid_input("\"events\" names no event"));
    }
    if let Some(unknown) = events.iter().find(|e| !EVENT_TYPES.contains(&e.as_str())) {
        return Err(ApiError::invalid_input(format!(
            "{unknown:?} is not an event (one of {})",
            EVENT_TYPES.join(", ")
        )));
    }
    events.sort();
    events.dedup();
    let id = format!("whk_{}", uuid::Uuid::now_v7().simple());
    let secret = sign::new_key()?;
    let subscription = SubscriptionRecord {
        secret: state
            .sealer
            .seal(&notify::subscription_owner(&id), secret.as_bytes())?,
        id,
        app: slug,
        url,
        events,
        created_at: now_ms(),
        disabled_at: None,
        disabled_reason: None,
    };
    state
        .store
        .insert_subscription(subscription.clone())
        .await?;
    let shown = SubscriptionSecret {
        subscription: view(&subscription),
        secret,
    };
    Ok((StatusCode::CREATED, Json(shown)).into_response())
}

/// List an app's subscriptions.
#[utoipa::path(get, path = "/api/apps/{slug}/webhooks", tag = "webhooks",
    params(("slug" = String, Path, description = "The app's slug")),
    responses((status = 200, body = SubscriptionList, description = "OK"),
        (status = 400, body = Problem, content_type = "application/problem+json", description = "Malformed request"),
        (status = 401, body = Problem, content_type = "application/problem+json", description = "Missing or wrong credentials"),
        (status = 403, body = Problem, content_type = "application/problem+json", description = "The credentials do not allow this"),
        (status = 404, body = Problem, content_type = "application/problem+json", description = "No such resource (or not visible to the caller)")),
    security(("bearer" = [])))]
async fn list(
    State(state): State<AppState>,
    PathParams(slug): PathParams<String>,
    caller: Caller,
) -> Result<Json<SubscriptionList>, ApiError> {
    authorized_app(&state, &caller, &slug, Need::Administer).await?;
    let data = state
        .store
        .subscriptions(&slug)
        .await?
        .iter()
        .map(view)
        .collect();
    Ok(Json(SubscriptionList { data }))
}

/// Remove a subscription (its pending deliveries are dropped).
#[utoipa::path(delete, path = "/api/apps/{slug}/webhooks/{id}", tag = "webhooks",
    params(("slug" = String, Path, description = "The app's slug"), ("id" = String, Path, description = "whk_...")),
    responses((status = 204, description = "Removed"),
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
    if state.store.delete_subscription(&slug, &id).await? {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::not_found(format!("{slug} has no webhook {id:?}")))
    }
}

/// The app's run-webhook key, made on first use.
#[utoipa::path(get, path = "/api/apps/{slug}/webhooks/secret", tag = "webhooks",
    params(("slug" = String, Path, description = "The app's slug")),
    responses((status = 200, body = RunWebhookSecret, description = "OK"),
        (status = 400, body = Problem, content_type = "application/problem+json", description = "Malformed request"),
        (status = 401, body = Problem, content_type = "application/problem+json", description = "Missing or wrong credentials"),
        (status = 403, body = Problem, content_type = "application/problem+json", description = "The credentials do not allow this"),
        (status = 404, body = Problem, content_type = "application/problem+json", description = "No such resource (or not visible to the caller)")),
    security(("bearer" = [])))]
async fn run_secret(
    State(state): State<AppState>,
    PathParams(slug): PathParams<String>,
    caller: Caller,
) -> Result<Json<RunWebhookSecret>, ApiError> {
    authorized_app(&state, &caller, &slug, Need::Administer).await?;
    let secret = notify::run_webhook_secret(&state, &slug).await?;
    Ok(Json(RunWebhookSecret { secret }))
}

/// `?limit=&cursor=`.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct DeliveriesQuery {
    /// Page size, 1 to 200 (default 50).
    #[param(value_type = Option<u32>, minimum = 1, maximum = 200)]
    limit: Option<String>,
    /// The `next_cursor` of the previous page.
    cursor: Option<String>,
}

/// One attempt at a delivery.
#[derive(Debug, Serialize, ToSchema)]
pub struct AttemptView {
    /// 1, 2, ...
    attempt: i64,
    /// When it started.
    at: String,
    /// The HTTP status the receiver answered, if it answered.
    status: Option<u16>,
    /// What failed, if anything.
    error: Option<String>,
    /// How long it took.
    latency_ms: i64,
}

/// A delivery and its attempts.
#[derive(Debug, Serialize, ToSchema)]
pub struct DeliveryView {
    /// `msg_...`: the `webhook-id` of each attempt.
    id: String,
    /// The execution it is about.
    execution_id: String,
    /// The event.
    event: String,
    /// pending, delivered, failed (given up after 24 h) or cancelled.
    state: String,
    /// When the event happened.
    created_at: String,
    /// When the next attempt is due, while pending.
    next_attempt_at: Option<String>,
    /// When it was delivered or given up.
    finished_at: Option<String>,
    /// Every attempt, oldest first.
    attempts: Vec<AttemptView>,
}

/// A page of deliveries.
#[derive(Debug, Serialize, ToSchema)]
pub struct DeliveryPage {
    /// Newest first.
    data: Vec<DeliveryView>,
    /// Pass as `cursor` for the next page; null on the last.
    next_cursor: Option<String>,
}

fn delivery_view(history: DeliveryHistory) -> DeliveryView {
    let d = history.delivery;
    DeliveryView {
        id: d.id,
        execution_id: d.execution_id,
        event: d.event,
        state: d.state.as_str().to_owned(),
        created_at: timestamp(d.created_at),
        next_attempt_at: d.next_attempt_at.map(timestamp),
        finished_at: d.finished_at.map(timestamp),
        attempts: history
            .attempts
            .into_iter()
            .map(|a| AttemptView {
                attempt: a.attempt,
                at: timestamp(a.at),
                status: a.status,
                error: a.error,
                latency_ms: a.latency_ms,
            })
            .collect(),
    }
}

/// A subscription's deliveries, newest first, each with every attempt.
#[utoipa::path(get, path = "/api/apps/{slug}/webhooks/{id}/deliveries", tag = "webhooks",
    params(("slug" = String, Path, description = "The app's slug"), ("id" = String, Path, description = "whk_..."), DeliveriesQuery),
    responses((status = 200, body = DeliveryPage, description = "OK"),
        (status = 400, body = Problem, content_type = "application/problem+json", description = "Malformed request"),
        (status = 401, body = Problem, content_type = "application/problem+json", description = "Missing or wrong credentials"),
        (status = 403, body = Problem, content_type = "application/problem+json", description = "The credentials do not allow this"),
        (status = 404, body = Problem, content_type = "application/problem+json", description = "No such resource (or not visible to the caller)")),
    security(("bearer" = [])))]
async fn deliveries(
    State(state): State<AppState>,
    PathParams((slug, id)): PathParams<(String, String)>,
    QueryParams(query): QueryParams<DeliveriesQuery>,
    caller: Caller,
) -> Result<Json<DeliveryPage>, ApiError> {
    authorized_app(&state, &caller, &slug, Need::Administer).await?;
    if !state
        .store
        .subscriptions(&slug)
        .await?
        .iter()
        .any(|s| s.id == id)
    {
        return Err(ApiError::not_found(format!("{slug} has no webhook {id:?}")));
    }
    let limit = super::executions::page_limit(query.limit.as_deref())?;
    let cursor = query.cursor.filter(|c| !c.is_empty());
    let page = state.store.deliveries(&id, cursor, limit).await?;
    let next_cursor = (page.len() == limit as usize)
        .then(|| page.last().map(|h| h.delivery.id.clone()))
        .flatten();
    let data = page.into_iter().map(delivery_view).collect();
    Ok(Json(DeliveryPage { data, next_cursor }))
}
