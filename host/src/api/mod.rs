//! The HTTP API (SPEC section 4): one router per resource, merged here, with problem
//! answers for unknown routes and methods.

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::{Method, Uri};
use tower_http::timeout::RequestBodyDeadlineLayer;

use crate::crypto::Sealer;
use crate::live::Live;
use crate::metrics::Metrics;
use crate::ratelimit::RateLimiter;
use crate::registry::Registry;
use crate::scheduler::Scheduler;
use crate::schema::ValidationPool;
use crate::store::DynStore;
use crate::tokens::Tokens;

mod approvals;
mod apps;
mod artifacts;
pub mod auth;
pub mod error;
pub mod executions;
pub mod extract;
pub mod openapi;
mod operate;
mod runs;
mod schedules;
mod secrets;
mod system;
mod tokens;
mod triggers;
mod webhooks;

pub use error::ApiError;

/// Sizes and timeouts of the API.
#[derive(Debug, Clone)]
pub struct ApiConfig {
    /// Largest JSON body (1 MiB).
    pub max_body: usize,
    /// Largest component upload (64 MiB).
    pub max_component: usize,
    /// How long `?wait=true` holds a request (250 s).
    pub max_wait: Duration,
    /// How long a client has to send a request body, from the request's arrival (60 s).
    pub body_deadline: Duration,
    /// Runs one caller may start per minute (0: no limit); the admin is exempt. Each
    /// inbound trigger has the same limit of its own.
    pub runs_per_minute: u32,
    /// Whether notifications may go to private addresses (`--allow-private-network`).
    pub allow_private_network: bool,
}

impl Default for ApiConfig {
    fn default() -> Self {
        ApiConfig {
            max_body: 1 << 20,
            max_component: 64 << 20,
            max_wait: Duration::from_secs(250),
            body_deadline: Duration::from_secs(60),
            runs_per_minute: 600,
            allow_private_network: false,
        }
    }
}

/// What every handler can reach.
pub struct Services {
    /// Durable state.
    pub store: DynStore,
    /// Compiled apps.
    pub registry: Arc<Registry>,
    /// The run queue.
    pub scheduler: Arc<Scheduler>,
    /// Live event channels.
    pub live: Arc<Live>,
    /// The admin secret.
    pub admin_token: String,
    /// Agent tokens.
    pub tokens: Arc<Tokens>,
    /// Encryption of secrets at rest.
    pub sealer: Arc<Sealer>,
    /// Per-caller run limits.
    pub limiter: RateLimiter,
    /// Where inputs are validated, off the HTTP runtime.
    pub validations: ValidationPool,
    /// Prometheus metrics.
    pub metrics: Arc<Metrics>,
    /// Input files, artifacts and their signed URLs.
    pub files: Arc<crate::artifacts::Files>,
    /// Sizes and timeouts.
    pub config: ApiConfig,
}

/// Shared handler state.
pub type AppState = Arc<Services>;

/// The whole API.
pub fn router(state: AppState) -> Router {
    let max_body = state.config.max_body;
    let body_deadline = state.config.body_deadline;
    Router::new()
        .merge(apps::router())
        .merge(executions::router())
        .merge(approvals::router())
        .merge(artifacts::router())
        .merge(system::router())
        .merge(tokens::router())
        .merge(secrets::router())
        .merge(openapi::router())
        .merge(crate::mcp::router())
        .merge(triggers::router())
        .merge(schedules::router())
        .merge(webhooks::router())
        .merge(operate::router())
        .fallback(unknown_route)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(max_body))
        // A body trickling in (slow loris) fails when the deadline passes, however
        // steadily it trickles.
        .layer(RequestBodyDeadlineLayer::new(body_deadline))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            system::refuse_without_database,
        ))
        .with_state(state)
}

async fn unknown_route(method: Method, uri: Uri) -> ApiError {
    ApiError::not_found(format!("no route for {method} {}", uri.path()))
}

async fn method_not_allowed(method: Method, uri: Uri) -> ApiError {
    ApiError::method_not_allowed(format!("{} does not accept {method}", uri.path()))
}

/// Unix milliseconds as an RFC 3339 UTC timestamp.
pub fn timestamp(ms: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_default()
}

/// A day since the unix epoch as its UTC date, `2026-12-01`.
pub fn date(day: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp(day.saturating_mul(86_400))
        .map(|t| t.date().to_string())
        .unwrap_or_default()
}
