//! Extractors whose rejections are problems: JSON bodies, query strings and path
//! segments that are malformed, mistyped or too large get a precise 4xx answer.

use std::time::{Duration, Instant};

use axum::body::{Body, Bytes};
use axum::extract::rejection::QueryRejection;
use axum::extract::{FromRequest, FromRequestParts, Query, Request};
use axum::http::header;
use axum::http::request::Parts;
use futures_util::StreamExt;
use serde::de::DeserializeOwned;

use super::AppState;
use super::error::ApiError;

/// How much of an oversized body is read and thrown away before answering 413. Closing
/// a connection with unread data makes the client's TCP stack drop our answer (a reset),
/// so a slightly-too-large body is drained for a clean 413; a huge one is cut off.
const DRAIN_BYTES: usize = 16 << 20;
/// How long draining may take.
const DRAIN_TIME: Duration = Duration::from_secs(2);

/// Reads and throws away what the client still sends, within the drain bounds, so a
/// refusal made before reading the body reaches the client instead of a reset.
pub async fn drain(body: Body) {
    let mut stream = body.into_data_stream();
    let started = Instant::now();
    let mut seen = 0;
    while seen < DRAIN_BYTES && started.elapsed() < DRAIN_TIME {
        match tokio::time::timeout(DRAIN_TIME, stream.next()).await {
            Ok(Some(Ok(frame))) => seen += frame.len(),
            _ => break,
        }
    }
}

/// Reads a request body of at most `limit` bytes.
pub async fn read_limited(body: Body, limit: usize) -> Result<Bytes, ApiError> {
    let mut stream = body.into_data_stream();
    let mut collected = Vec::new();
    while let Some(frame) = stream.next().await {
        let frame = frame.map_err(|e| ApiError::unreadable_body(&e))?;
        if collected.len() + frame.len() > limit {
            drain(Body::from_stream(stream)).await;
            return Err(ApiError::payload_too_large(format!(
                "the body is over the {limit} byte limit"
            )));
        }
        collected.extend_from_slice(&frame);
    }
    Ok(Bytes::from(collected))
}

/// A JSON request body. A missing body reads as `{}`; a body with another content type
/// is refused with 415.
pub struct JsonBody<T>(pub T);

impl<T: DeserializeOwned> FromRequest<AppState> for JsonBody<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, Self::Rejection> {
        if let Some(content_type) = req.headers().get(header::CONTENT_TYPE) {
            let content_type = content_type.to_str().unwrap_or_default();
            let essence = content_type.split(';').next().unwrap_or_default().trim();
            let json = essence.eq_ignore_ascii_case("application/json")
                || essence.to_ascii_lowercase().ends_with("+json");
            if !json {
                return Err(ApiError::unsupported_media_type(format!(
                    "the body must be JSON (Content-Type: application/json), not {content_type:?}"
                )));
            }
        }
        let bytes = read_limited(req.into_body(), state.config.max_body).await?;
        let text: &[u8] = if bytes.iter().all(u8::is_ascii_whitespace) {
            b"{}"
        } else {
            &bytes
        };
        serde_json::from_slice(text).map(JsonBody).map_err(|e| {
            ApiError::invalid_input(format!("the body is not valid JSON for this endpoint: {e}"))
        })
    }
}

/// A query string deserialized into `T`.
pub struct QueryParams<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequestParts<S> for QueryParams<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        Query::<T>::from_request_parts(parts, state)
            .await
            .map(|Query(value)| QueryParams(value))
            .map_err(|e: QueryRejection| {
                ApiError::invalid_input(format!("bad query string: {}", e.body_text()))
            })
    }
}

/// Path parameters.
pub struct PathParams<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned + Send> FromRequestParts<S> for PathParams<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        axum::extract::Path::<T>::from_request_parts(parts, state)
            .await
            .map(|axum::extract::Path(value)| PathParams(value))
            .map_err(|e| ApiError::invalid_input(format!("bad path: {}", e.body_text())))
    }
}

/// A boolean query flag: `true`, `1` or an empty value (`?wait`) turn it on.
pub fn flag(value: Option<&str>, name: &str) -> Result<bool, ApiError> {
    match value {
        None => Ok(false),
        Some("" | "true" | "1" | "yes") => Ok(true),
        Some("false" | "0" | "no") => Ok(false),
        Some(other) => Err(ApiError::invalid_input(format!(
            "?{name}={other:?} is not a boolean (use true or false)"
        ))),
    }
}

/// Most days a time series covers: a year, leap day included.
pub const MAX_DAYS: u32 = 366;

/// Reads `?days=`: 1 to [`MAX_DAYS`], `default` when absent or empty.
pub fn days_param(days: Option<&str>, default: u32) -> Result<u32, ApiError> {
    match days.filter(|d| !d.is_empty()) {
        None => Ok(default),
        Some(text) => text
            .parse::<u32>()
            .ok()
            .filter(|n| (1..=MAX_DAYS).contains(n))
            .ok_or_else(|| {
                ApiError::invalid_input(format!(
                    "days {text:?} must be a number from 1 to {MAX_DAYS}"
                ))
            }),
    }
}
