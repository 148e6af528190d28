//! The one API error type: every failure answers as an RFC 9457 problem
//! (`application/problem+json`) with one of the SPEC's codes.
//!
//! A problem never amplifies the request it answers: `detail` is cut at
//! [`MAX_DETAIL_BYTES`] (it may quote a path, a key or a manifest), and `errors` lists at
//! most [`MAX_LISTED_ERRORS`] problems of at most 256 bytes each, counting the rest in
//! `errors_omitted`.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use utoipa::ToSchema;

use crate::schema::{InputProblem, MAX_LISTED_ERRORS, Rejection};
use floom_runtime::text;

/// Longest `detail`, in bytes.
pub const MAX_DETAIL_BYTES: usize = 4 << 10;

/// An API failure.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    code: &'static str,
    detail: String,
    errors: Vec<InputProblem>,
    errors_omitted: Option<u64>,
    retry_after: Option<u64>,
}

/// An RFC 9457 problem document: every error the API answers.
#[derive(Serialize, ToSchema)]
pub struct Problem {
    /// A URI naming the kind of problem.
    #[serde(rename = "type")]
    kind: String,
    /// The HTTP status's reason phrase.
    title: String,
    /// The HTTP status.
    status: u16,
    /// What went wrong, for people; at most 4 KiB, ending with `…` when cut.
    detail: String,
    /// What went wrong, for programs.
    #[schema(value_type = ProblemCode)]
    code: &'static str,
    /// For `invalid_input`: where the inputs break the schema, at most 100.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    #[schema(required = false, max_items = 100)]
    errors: Vec<InputProblem>,
    /// For `invalid_input`: how many more problems there are than `errors` lists (absent
    /// when it lists them all).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(required = false, minimum = 1)]
    errors_omitted: Option<u64>,
}

/// The error codes (SPEC section 4).
#[derive(ToSchema)]
#[schema(rename_all = "snake_case")]
#[allow(dead_code)] // Only its schema is used: the codes are written as strings.
pub enum ProblemCode {
    /// The request is malformed or its inputs break the schema.
    InvalidInput,
    /// The manifest does not parse or breaks a rule.
    InvalidManifest,
    /// The component is not a runnable app.
    InvalidComponent,
    /// No such resource, or not visible to the caller.
    NotFound,
    /// Missing or wrong credentials.
    AuthFailed,
    /// The credentials do not allow this.
    Forbidden,
    /// The resource's state does not allow this.
    Conflict,
    /// The body or upload is too large.
    PayloadTooLarge,
    /// A rate limit or the run queue is full.
    QuotaExceeded,
    /// The sandbox could not start.
    SandboxUnavailable,
    /// The server failed.
    Internal,
}

impl ApiError {
    fn new(status: StatusCode, code: &'static str, detail: impl Into<String>) -> Self {
        ApiError {
            status,
            code,
            detail: text::cut(detail.into(), MAX_DETAIL_BYTES),
            errors: Vec::new(),
            errors_omitted: None,
            retry_after: None,
        }
    }

    /// 400: the request is malformed or its inputs break the schema.
    pub fn invalid_input(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "invalid_input", detail)
    }

    /// 400: the inputs break the action's schema; the first [`MAX_LISTED_ERRORS`]
    /// problems are listed and the rest (`omitted`) counted.
    pub fn invalid_inputs(
        detail: impl Into<String>,
        errors: Vec<InputProblem>,
        omitted: u64,
    ) -> Self {
        let mut error = Self::invalid_input(detail);
        error.errors = errors;
        error.errors.truncate(MAX_LISTED_ERRORS);
        error.errors_omitted = (omitted > 0).then_some(omitted);
        error
    }

    /// Whether this is a 404.
    pub fn is_not_found(&self) -> bool {
        self.status == StatusCode::NOT_FOUND
    }

    /// 415: the body is not JSON.
    pub fn unsupported_media_type(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::UNSUPPORTED_MEDIA_TYPE, "invalid_input", detail)
    }

    /// 400: the manifest does not parse or breaks a rule.
    pub fn invalid_manifest(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "invalid_manifest", detail)
    }

    /// 400: the component is not a runnable app.
    pub fn invalid_component(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "invalid_component", detail)
    }

    /// 404.
    pub fn not_found(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found", detail)
    }

    /// 405.
    pub fn method_not_allowed(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::METHOD_NOT_ALLOWED, "invalid_input", detail)
    }

    /// 401: missing or wrong credentials.
    pub fn auth_failed(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "auth_failed", detail)
    }

    /// 403: the credentials do not allow this.
    pub fn forbidden(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, "forbidden", detail)
    }

    /// 409: the resource is not in a state that allows this.
    pub fn conflict(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::CONFLICT, "conflict", detail)
    }

    /// 422: an `Idempotency-Key` replayed with a different request.
    pub fn idempotency_mismatch(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::UNPROCESSABLE_ENTITY, "conflict", detail)
    }

    /// The problem for a request body that could not be read: 408 when its deadline
    /// passed (a client trickling it in), else 400.
    pub fn unreadable_body(error: &(dyn std::error::Error + 'static)) -> Self {
        if body_timed_out(error) {
            return Self::body_timeout();
        }
        Self::invalid_input(format!("the body could not be read: {error}"))
    }

    /// 408: the body's deadline passed.
    pub fn body_timeout() -> Self {
        Self::new(
            StatusCode::REQUEST_TIMEOUT,
            "invalid_input",
            "the request body did not arrive in time (the server's --body-timeout-s)",
        )
    }

    /// 413.
    pub fn payload_too_large(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large", detail)
    }

    /// 416: a byte range outside the file.
    pub fn range_not_satisfiable(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::RANGE_NOT_SATISFIABLE, "invalid_input", detail)
    }

    /// 429 with `Retry-After`.
    pub fn quota_exceeded(detail: impl Into<String>, retry_after_s: u64) -> Self {
        let mut error = Self::new(StatusCode::TOO_MANY_REQUESTS, "quota_exceeded", detail);
        error.retry_after = Some(retry_after_s);
        error
    }

    /// 502: the sandbox could not start.
    pub fn sandbox_unavailable(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_GATEWAY, "sandbox_unavailable", detail)
    }

    /// 503 while shutting down, with `Retry-After`.
    pub fn unavailable(detail: impl Into<String>) -> Self {
        let mut error = Self::new(StatusCode::SERVICE_UNAVAILABLE, "internal", detail);
        error.retry_after = Some(5);
        error
    }

    /// 500. The cause is logged; the client gets a generic message.
    pub fn internal(err: impl std::fmt::Display) -> Self {
        tracing::error!("internal error: {err:#}");
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "the server failed to handle the request; the error is in its log",
        )
    }

    /// The HTTP status.
    pub fn status(&self) -> StatusCode {
        self.status
    }

    /// The SPEC's code (`invalid_input`, `quota_exceeded`, ...).
    pub fn code(&self) -> &'static str {
        self.code
    }

    /// What went wrong, for people.
    pub fn detail(&self) -> &str {
        &self.detail
    }

    /// For `invalid_input`: where the inputs break the schema, and how many more
    /// problems there are.
    pub fn input_problems(&self) -> (&[InputProblem], Option<u64>) {
        (&self.errors, self.errors_omitted)
    }

    /// For a 429 or 503: seconds to wait before retrying.
    pub fn retry_after(&self) -> Option<u64> {
        self.retry_after
    }
}

impl From<Rejection> for ApiError {
    /// Inputs that break the schema are a 400. Inputs too costly to validate are a 413:
    /// the request is larger, in validation work, than the server takes, and sending it
    /// again unchanged gets the same answer, unlike a 429 or a 503.
    fn from(rejection: Rejection) -> Self {
        let detail = rejection.to_string();
        match rejection {
            Rejection::Invalid { problems, omitted } => {
                Self::invalid_inputs(detail, problems, omitted)
            }
            Rejection::Unlisted => Self::invalid_input(detail),
            Rejection::TooCostly | Rejection::TooDeep | Rejection::TimedOut => {
                Self::payload_too_large(detail)
            }
            Rejection::Busy => Self::quota_exceeded(detail, 1),
            Rejection::Failed(_) => Self::internal(detail),
        }
    }
}

impl From<anyhow::Error> for ApiError {
    /// A storage failure the operator must fix (disk full, read-only file system) is a
    /// 503 that says so; anything else is a 500.
    fn from(err: anyhow::Error) -> Self {
        if storage_unwritable(&err) {
            tracing::error!("cannot write the data dir: {err:#}");
            let mut error = Self::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "internal",
                "the server cannot write its data (the disk is full or read-only): nothing was \
                 changed; retry once the operator has made room",
            );
            error.retry_after = Some(30);
            return error;
        }
        ApiError::internal(format!("{err:#}"))
    }
}

/// Whether reading a request body failed because its deadline passed (the router's
/// `RequestBodyDeadlineLayer`).
pub fn body_timed_out(error: &(dyn std::error::Error + 'static)) -> bool {
    std::iter::successors(Some(error), |e| e.source())
        .any(|e| e.is::<tower_http::timeout::TimeoutError>())
}

/// Whether `err` comes from SQLite or the file system refusing writes for lack of space
/// or permission, rather than from a bug.
fn storage_unwritable(err: &anyhow::Error) -> bool {
    let refused = |code: Option<rusqlite::ErrorCode>| {
        matches!(
            code,
            Some(
                rusqlite::ErrorCode::DiskFull
                    | rusqlite::ErrorCode::ReadOnly
                    | rusqlite::ErrorCode::SystemIoFailure
                    | rusqlite::ErrorCode::CannotOpen
            )
        )
    };
    err.chain().any(|cause| {
        if let Some(e) = cause.downcast_ref::<rusqlite::Error>() {
            return refused(e.sqlite_error_code());
        }
        if let Some(e) = cause.downcast_ref::<crate::store::CommitFailed>() {
            return refused(e.code);
        }
        cause.downcast_ref::<std::io::Error>().is_some_and(|e| {
            matches!(
                e.kind(),
                std::io::ErrorKind::StorageFull
                    | std::io::ErrorKind::ReadOnlyFilesystem
                    | std::io::ErrorKind::PermissionDenied
            )
        })
    })
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let title = self.status.canonical_reason().unwrap_or("Error");
        let problem = Problem {
            kind: format!("https://floom.dev/docs/errors#{}", self.code),
            title: title.to_owned(),
            status: self.status.as_u16(),
            detail: self.detail,
            code: self.code,
            errors: self.errors,
            errors_omitted: self.errors_omitted,
        };
        let body = serde_json::to_vec(&problem).unwrap_or_default();
        let mut response = (self.status, body).into_response();
        let headers = response.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/problem+json"),
        );
        if let Some(seconds) = self.retry_after {
            headers.insert(header::RETRY_AFTER, HeaderValue::from(seconds));
        }
        response
    }
}
