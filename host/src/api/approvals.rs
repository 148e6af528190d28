//! Approvals over HTTP (SPEC section 11): approve or reject an execution awaiting
//! approval, and list the pending ones. Deciding goes through [`crate::approvals::decide`],
//! as from every other surface.

use axum::extract::State;
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::{IntoParams, ToSchema};

use super::AppState;
use super::auth::Caller;
use super::error::{ApiError, Problem};
use super::executions::{Detail, Readable, detail_of, detail_view, page_cursor, page_limit};
use super::extract::{JsonBody, QueryParams};
use crate::approvals::{self, Verdict};
use crate::store::ListApprovals;

/// The approval routes.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/approvals", get(list))
        .route("/api/approvals/count", get(count))
        .route("/api/executions/{id}/approve", post(approve))
        .route("/api/executions/{id}/reject", post(reject))
}

/// `POST /api/executions/{id}/approve`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ApproveBody {
    /// A note for the record.
    annotation: Option<String>,
    /// An edited output (any JSON value that meets the action's `output_schema`) to
    /// approve instead of the proposed one.
    #[schema(value_type = Option<Object>)]
    #[serde(default, deserialize_with = "present")]
    output: Option<Value>,
}

/// A present `output` is an edit, even `null`: only a missing one approves as proposed.
fn present<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Value>, D::Error> {
    Value::deserialize(d).map(Some)
}

/// `POST /api/executions/{id}/reject`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RejectBody {
    /// Why, for the record and the execution's error message.
    reason: Option<String>,
}

/// Approve the output of an execution awaiting approval, as proposed or edited: it
/// becomes the output, or with `then`, the inputs of the next step (same execution).
#[utoipa::path(post, path = "/api/executions/{id}/approve", tag = "approvals",
    params(("id" = String, Path, description = "exec_...")),
    request_body(content = ApproveBody, description = "Optional; an empty body approves as proposed"),
    responses((status = 200, body = Detail, description = "Approved: the execution as it is now"),
        (status = 400, body = Problem, content_type = "application/problem+json", description = "The edited output breaks the output_schema (or the next action's input_schema); still pending"),
        (status = 401, body = Problem, content_type = "application/problem+json", description = "Missing or wrong credentials"),
        (status = 403, body = Problem, content_type = "application/problem+json", description = "The caller may read it but not decide"),
        (status = 404, body = Problem, content_type = "application/problem+json", description = "No such execution (or not visible to the caller)"),
        (status = 409, body = Problem, content_type = "application/problem+json", description = "Not awaiting approval (decided already)")),
    security(("bearer" = [])))]
async fn approve(
    State(state): State<AppState>,
    caller: Caller,
    Readable { record, .. }: Readable,
    JsonBody(body): JsonBody<ApproveBody>,
) -> Result<Json<Detail>, ApiError> {
    let verdict = Verdict::Approve {
        output: body.output,
        annotation: body.annotation,
    };
    let record = approvals::decide(&state, &caller, record, verdict).await?;
    Ok(Json(detail_of(&state, &record, None).await?))
}

/// Reject the output of an execution awaiting approval: it fails with `rejected`.
#[utoipa::path(post, path = "/api/executions/{id}/reject", tag = "approvals",
    params(("id" = String, Path, description = "exec_...")),
    request_body(content = RejectBody, description = "Optional"),
    responses((status = 200, body = Detail, description = "Rejected: the execution as it is now"),
        (status = 400, body = Problem, content_type = "application/problem+json", description = "Malformed request"),
        (status = 401, body = Problem, content_type = "application/problem+json", description = "Missing or wrong credentials"),
        (status = 403, body = Problem, content_type = "application/problem+json", description = "The caller may read it but not decide"),
        (status = 404, body = Problem, content_type = "application/problem+json", description = "No such execution (or not visible to the caller)"),
        (status = 409, body = Problem, content_type = "application/problem+json", description = "Not awaiting approval (decided already)")),
    security(("bearer" = [])))]
async fn reject(
    State(state): State<AppState>,
    caller: Caller,
    Readable { record, .. }: Readable,
    JsonBody(body): JsonBody<RejectBody>,
) -> Result<Json<Detail>, ApiError> {
    let verdict = Verdict::Reject {
        reason: body.reason,
    };
    let record = approvals::decide(&state, &caller, record, verdict).await?;
    Ok(Json(detail_of(&state, &record, None).await?))
}

#[derive(Deserialize, Default, IntoParams)]
#[into_params(parameter_in = Query)]
struct ListQuery {
    /// Only this app's.
    app: Option<String>,
    /// Page size, 1 to 200 (default 50).
    #[param(value_type = Option<u32>, minimum = 1, maximum = 200)]
    limit: Option<String>,
    /// The `next_cursor` of the previous page.
    cursor: Option<String>,
}

/// A page of executions awaiting approval.
#[derive(Serialize, ToSchema)]
pub struct ApprovalPage {
    /// Oldest first: the executions, each with its `approval`.
    data: Vec<Detail>,
    /// Pass as `cursor` for the next page; null on the last.
    next_cursor: Option<String>,
}

/// How many executions await approval.
#[derive(Serialize, ToSchema)]
pub struct ApprovalCount {
    /// Of the apps the caller's token covers.
    pending: i64,
}

/// Executions awaiting approval, oldest first, with their proposed outputs. A scoped
/// token sees its apps'.
#[utoipa::path(get, path = "/api/approvals", tag = "approvals",
    params(ListQuery),
    responses((status = 200, body = ApprovalPage, description = "OK"), (status = 400, body = Problem, content_type = "application/problem+json", description = "Malformed request"), (status = 401, body = Problem, content_type = "application/problem+json", description = "Missing or wrong credentials")),
    security(("bearer" = [])))]
async fn list(
    State(state): State<AppState>,
    QueryParams(query): QueryParams<ListQuery>,
    caller: Caller,
) -> Result<Json<ApprovalPage>, ApiError> {
    let apps = caller.listable_apps("listing approvals")?;
    let limit = page_limit(query.limit.as_deref())?;
    let after = page_cursor(query.cursor.as_deref())?;
    let records = state
        .store
        .pending_approvals(ListApprovals {
            app: query.app.filter(|a| !a.is_empty()),
            apps,
            after,
            limit,
        })
        .await?;
    let next_cursor = (records.len() == limit as usize)
        .then(|| records.last().map(|r| r.n.to_string()))
        .flatten();
    let data = records.iter().map(detail_view).collect::<Result<_, _>>()?;
    Ok(Json(ApprovalPage { data, next_cursor }))
}

/// How many executions await approval.
#[utoipa::path(get, path = "/api/approvals/count", tag = "approvals",
    responses((status = 200, body = ApprovalCount, description = "OK"), (status = 401, body = Problem, content_type = "application/problem+json", description = "Missing or wrong credentials")),
    security(("bearer" = [])))]
async fn count(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<Json<ApprovalCount>, ApiError> {
    let apps = caller.listable_apps("listing approvals")?;
    let pending = state.store.pending_approval_count(apps).await?;
    Ok(Json(ApprovalCount { pending }))
}
