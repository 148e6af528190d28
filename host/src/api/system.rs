//! `/healthz`: answered from memory, never from the database, so it stays fast while
//! the server is busy.

use axum::extract::State;
use axum::routing::get;
use axum::{Json, Router};
use serde::Serialize;
use utoipa::ToSchema;

use super::AppState;

pub fn router() -> Router<AppState> {
    Router::new().route("/healthz", get(healthz))
}

/// Server health.
#[derive(Serialize, ToSchema)]
pub struct Health {
    /// Always `ok`.
    status: &'static str,
    /// Executions waiting.
    queued: usize,
    /// Executions running.
    running: usize,
}

#[utoipa::path(get, path = "/healthz", tag = "system",
    summary = "Health, answered from memory",
    responses((status = 200, body = Health, description = "OK")))]
async fn healthz(State(state): State<AppState>) -> Json<Health> {
    Json(Health {
        status: "ok",
        queued: state.scheduler.queued(),
        running: state.scheduler.running(),
    })
}
