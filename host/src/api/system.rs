//! `/healthz`: answered from memory, never from the database, so it stays fast while
//! the server is busy (a shared database's health is checked apart, every second).

use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde::Serialize;
use utoipa::ToSchema;

use super::{ApiError, AppState};

pub fn router() -> Router<AppState> {
    Router::new().route("/healthz", get(healthz))
}

/// Server health.
#[derive(Serialize, ToSchema)]
pub struct Health {
    /// `ok`, or `unavailable` while the database does not answer.
    status: &'static str,
    /// The store: `sqlite` (embedded) or `postgres` (shared by the hosts).
    database: &'static str,
    /// Whether the database answered its last check.
    database_ok: bool,
    /// Executions waiting.
    queued: usize,
    /// Executions running.
    running: usize,
}

/// Seconds a client is told to wait while the database does not answer (as
/// [`ApiError::unavailable`] says too).
const RETRY_AFTER_S: u64 = 5;

#[utoipa::path(get, path = "/healthz", tag = "system",
    summary = "Health, answered from memory",
    responses((status = 200, body = Health, description = "OK"),
        (status = 503, body = Health, description = "The database does not answer; see Retry-After")))]
async fn healthz(State(state): State<AppState>) -> Response {
    let reachable = state.store.reachable();
    let health = Json(Health {
        status: if reachable { "ok" } else { "unavailable" },
        database: state.store.kind(),
        database_ok: reachable,
        queued: state.scheduler.queued(),
        running: state.scheduler.running(),
    });
    if reachable {
        health.into_response()
    } else {
        let retry = [("retry-after", RETRY_AFTER_S.to_string())];
        (StatusCode::SERVICE_UNAVAILABLE, retry, health).into_response()
    }
}

/// Answers every other request with 503 and `Retry-After` while the database does not
/// answer, rather than letting each fail on its own (a load balancer sends the clients
/// to another host meanwhile).
pub async fn refuse_without_database(
    State(state): State<AppState>,
    request: Request,
    next: Next,
) -> Response {
    if state.store.reachable() || request.uri().path() == "/healthz" {
        return next.run(request).await;
    }
    ApiError::unavailable(
        "this host cannot reach its database; retry (another host may answer meanwhile)",
    )
    .into_response()
}
