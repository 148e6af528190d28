//! `/healthz`: answered from memory, never from the database, so it stays fast while
//! the server is busy.

use axum::extract::State;
use axum::routing::get;
use axum::{Json, Router};
use serde::Serialize;

use super::AppState;

pub fn router() -> Router<AppState> {
    Router::new().route("/healthz", get(healthz))
}

#[derive(Serialize)]
struct Health {
    status: &'static str,
    queued: usize,
    running: usize,
}

async fn healthz(State(state): State<AppState>) -> Json<Health> {
    Json(Health {
        status: "ok",
        queued: state.scheduler.queued(),
        running: state.scheduler.running(),
    })
}
