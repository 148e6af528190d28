//! An execution's files: `GET /api/executions/{id}/artifacts/{name}` and
//! `.../inputs/{name}` (one file, with ranges), `GET /api/executions/{id}/artifacts.zip`
//! (all artifacts). Readable with the usual credentials (a token that covers the app, or
//! the execution's view token), or with the signed, expiring URL the execution's detail
//! lists (`?expires=&sig=`): a tampered or expired one is 403.

use std::io::{Read as _, Seek as _, SeekFrom, Write as _};

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde::Deserialize;

use super::AppState;
use super::auth::Caller;
use super::error::{ApiError, Problem};
use super::executions::readable;
use super::extract::{PathParams, QueryParams};
use crate::store::{FileKind, FileRecord};

/// The file routes.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/executions/{id}/artifacts/{*name}", get(artifact))
        .route("/api/executions/{id}/inputs/{*name}", get(input))
        .route("/api/executions/{id}/artifacts.zip", get(zip))
}

#[derive(Deserialize, Default)]
struct FileQuery {
    view_token: Option<String>,
    expires: Option<u64>,
    sig: Option<String>,
}

/// The execution's file `name` of `kind`, when the caller may read it.
async fn authorized(
    state: &AppState,
    caller: &Caller,
    headers: &HeaderMap,
    id: &str,
    kind: FileKind,
    name: &str,
    query: &FileQuery,
) -> Result<FileRecord, ApiError> {
    let signed = match (query.expires, query.sig.as_deref()) {
        (Some(expires), Some(sig)) => {
            if !state.files.verify(id, kind, name, expires, sig) {
                return Err(ApiError::forbidden(
                    "this file URL is expired or was altered: read the execution again for a fresh one",
                ));
            }
            true
        }
        (None, None) => false,
        _ => {
            return Err(ApiError::forbidden(
                "a signed file URL needs both `expires` and `sig`",
            ));
        }
    };
    if !signed {
        readable(state, caller, headers, id, query.view_token.as_deref()).await?;
    }
    state
        .store
        .files(id)
        .await?
        .into_iter()
        .find(|f| f.kind == kind && f.name == name)
        .ok_or_else(|| {
            ApiError::not_found(format!("execution {id} has no {} {name:?}", kind.as_str()))
        })
}

/// One artifact of an execution. Supports a single byte range (`Range: bytes=...`).
#[utoipa::path(get, path = "/api/executions/{id}/artifacts/{name}", tag = "executions",
    params(("id" = String, Path, description = "exec_..."), ("name" = String, Path, description = "The artifact's path below /out"),
        ("view_token" = Option<String>, Query, description = "The execution's view token"),
        ("expires" = Option<u64>, Query, description = "A signed URL's expiry (Unix seconds)"),
        ("sig" = Option<String>, Query, description = "A signed URL's signature"),
        ("Range" = Option<String>, Header, description = "One byte range, e.g. `bytes=0-99`")),
    responses((status = 200, description = "The bytes, with Content-Type, ETag and Content-Disposition", content_type = "application/octet-stream", body = Vec<u8>),
        (status = 206, description = "The range asked for", content_type = "application/octet-stream", body = Vec<u8>),
        (status = 304, description = "Not modified (If-None-Match)"),
        (status = 401, body = Problem, content_type = "application/problem+json", description = "Missing or wrong credentials"),
        (status = 403, body = Problem, content_type = "application/problem+json", description = "An expired or altered signed URL"),
        (status = 404, body = Problem, content_type = "application/problem+json", description = "No such execution or artifact"),
        (status = 416, body = Problem, content_type = "application/problem+json", description = "The range is outside the file")),
    security((), ("bearer" = [])))]
async fn artifact(
    State(state): State<AppState>,
    PathParams((id, name)): PathParams<(String, String)>,
    QueryParams(query): QueryParams<FileQuery>,
    caller: Caller,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let record = authorized(
        &state,
        &caller,
        &headers,
        &id,
        FileKind::Artifact,
        &name,
        &query,
    )
    .await?;
    serve(&state, &record, &headers).await
}

/// One input file of an execution, served like an artifact.
#[utoipa::path(get, path = "/api/executions/{id}/inputs/{name}", tag = "executions",
    params(("id" = String, Path, description = "exec_..."), ("name" = String, Path, description = "The file's name below /in"),
        ("view_token" = Option<String>, Query, description = "The execution's view token"),
        ("expires" = Option<u64>, Query, description = "A signed URL's expiry (Unix seconds)"),
        ("sig" = Option<String>, Query, description = "A signed URL's signature"),
        ("Range" = Option<String>, Header, description = "One byte range, e.g. `bytes=0-99`")),
    responses((status = 200, description = "The bytes", content_type = "application/octet-stream", body = Vec<u8>),
        (status = 206, description = "The range asked for", content_type = "application/octet-stream", body = Vec<u8>),
        (status = 401, body = Problem, content_type = "application/problem+json", description = "Missing or wrong credentials"),
        (status = 403, body = Problem, content_type = "application/problem+json", description = "An expired or altered signed URL"),
        (status = 404, body = Problem, content_type = "application/problem+json", description = "No such execution or file"),
        (status = 416, body = Problem, content_type = "application/problem+json", description = "The range is outside the file")),
    security((), ("bearer" = [])))]
async fn input(
    State(state): State<AppState>,
    PathParams((id, name)): PathParams<(String, String)>,
    QueryParams(query): QueryParams<FileQuery>,
    caller: Caller,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let record = authorized(
        &state,
        &caller,
        &headers,
        &id,
        FileKind::Input,
        &name,
        &query,
    )
    .await?;
    serve(&state, &record, &headers).await
}

/// A byte range asked for, resolved against the file's size.
#[derive(Debug, PartialEq, Eq)]
enum Wanted {
    All,
    Range(u64, u64),
    Unsatisfiable,
}

/// Reads a `Range` header: one range of bytes; anything else (several ranges, other
/// units, a malformed header) is ignored and the whole file served, as RFC 9110 allows.
fn wanted(header: Option<&str>, size: u64) -> Wanted {
    let Some(spec) = header.and_then(|h| h.trim().strip_prefix("bytes=")) else {
        return Wanted::All;
    };
    if spec.contains(',') {
        return Wanted::All;
    }
    let Some((start, end)) = spec.trim().split_once('-') else {
        return Wanted::All;
    };
    let (start, end) = (start.trim(), end.trim());
    let range = match (start.parse::<u64>(), end.parse::<u64>()) {
        (Ok(start), Ok(end)) if start <= end => (start, end.min(size.saturating_sub(1))),
        (Ok(_), Ok(_)) => return Wanted::All,
        (Ok(start), Err(_)) if end.is_empty() => (start, size.saturating_sub(1)),
        (Err(_), Ok(suffix)) if start.is_empty() => {
            if suffix == 0 {
                return Wanted::Unsatisfiable;
            }
            (size.saturating_sub(suffix), size.saturating_sub(1))
        }
        _ => return Wanted::All,
    };
    if size == 0 || range.0 >= size {
        return Wanted::Unsatisfiable;
    }
    Wanted::Range(range.0, range.1)
}

/// The headers every file answer carries. The bytes are the app's, so a browser must
/// not run them on this origin: nothing is sniffed, active types are downloaded, and
/// the sandbox CSP stops scripts in whatever is shown inline.
fn file_headers(
    record: &FileRecord,
    builder: axum::http::response::Builder,
) -> axum::http::response::Builder {
    let inline = matches!(
        record.content_type.as_str(),
        "image/png" | "image/jpeg" | "image/gif" | "image/webp" | "application/pdf"
    ) || record.content_type.starts_with("text/plain");
    let base = record.name.rsplit('/').next().unwrap_or(&record.name);
    let ascii: String = base
        .chars()
        .map(|c| {
            if c.is_ascii_graphic() && c != '"' && c != '\\' || c == ' ' {
                c
            } else {
                '_'
            }
        })
        .collect();
    let disposition = format!(
        "{}; filename=\"{ascii}\"; filename*=UTF-8''{}",
        if inline { "inline" } else { "attachment" },
        crate::artifacts::encode_path(base)
    );
    builder
        .header(header::CONTENT_TYPE, &record.content_type)
        .header(header::ETAG, format!("\"{}\"", record.sha256))
        .header(header::ACCEPT_RANGES, "bytes")
        .header(header::CONTENT_DISPOSITION, disposition)
        .header(header::X_CONTENT_TYPE_OPTIONS, "nosniff")
        .header(
            header::CONTENT_SECURITY_POLICY,
            "sandbox; default-src 'none'",
        )
        .header(header::CACHE_CONTROL, "private, max-age=3600")
}

async fn serve(
    state: &AppState,
    record: &FileRecord,
    headers: &HeaderMap,
) -> Result<Response, ApiError> {
    let etag = format!("\"{}\"", record.sha256);
    if headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|t| t.trim() == etag || t.trim() == "*"))
    {
        return file_headers(record, Response::builder().status(StatusCode::NOT_MODIFIED))
            .body(Body::empty())
            .map_err(ApiError::internal);
    }
    let size = u64::try_from(record.size).unwrap_or(0);
    let range = wanted(
        headers.get(header::RANGE).and_then(|v| v.to_str().ok()),
        size,
    );
    let (status, start, len) = match range {
        Wanted::All => (StatusCode::OK, 0, size),
        Wanted::Range(start, end) => (StatusCode::PARTIAL_CONTENT, start, end - start + 1),
        Wanted::Unsatisfiable => {
            let mut response = ApiError::range_not_satisfiable(format!(
                "the file is {size} bytes; ask for a range inside it"
            ))
            .into_response();
            if let Ok(value) = HeaderValue::from_str(&format!("bytes */{size}")) {
                response.headers_mut().insert(header::CONTENT_RANGE, value);
            }
            return Ok(response);
        }
    };
    let file = open_blob(state, &record.sha256).await?;
    let mut builder = file_headers(record, Response::builder().status(status))
        .header(header::CONTENT_LENGTH, len);
    if status == StatusCode::PARTIAL_CONTENT {
        builder = builder.header(
            header::CONTENT_RANGE,
            format!("bytes {start}-{}/{size}", start + len - 1),
        );
    }
    builder
        .body(file_body(file, start, len))
        .map_err(ApiError::internal)
}

async fn open_blob(state: &AppState, sha256: &str) -> Result<std::fs::File, ApiError> {
    let blobs = state.files.blobs().clone();
    let sha256 = sha256.to_owned();
    tokio::task::spawn_blocking(move || blobs.open(&sha256))
        .await
        .map_err(ApiError::internal)?
        .map_err(|e| ApiError::internal(format!("a stored file cannot be read: {e}")))
}

/// Streams `len` bytes of `file` from `start`, read off the async executor in 64 KiB
/// pieces; a client that stops reading stops the reading.
fn file_body(mut file: std::fs::File, start: u64, len: u64) -> Body {
    let (tx, rx) = tokio::sync::mpsc::channel::<std::io::Result<Bytes>>(4);
    tokio::task::spawn_blocking(move || {
        if let Err(e) = file.seek(SeekFrom::Start(start)) {
            let _ = tx.blocking_send(Err(e));
            return;
        }
        let mut left = len;
        let mut buffer = vec![0; 64 << 10];
        while left > 0 {
            let want = buffer
                .len()
                .min(usize::try_from(left).unwrap_or(usize::MAX));
            match file.read(&mut buffer[..want]) {
                Ok(0) => return,
                Ok(n) => {
                    left -= n as u64;
                    if tx
                        .blocking_send(Ok(Bytes::copy_from_slice(&buffer[..n])))
                        .is_err()
                    {
                        return;
                    }
                }
                Err(e) => {
                    let _ = tx.blocking_send(Err(e));
                    return;
                }
            }
        }
    });
    Body::from_stream(futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|item| (item, rx))
    }))
}

/// Every artifact of an execution in one zip file, each under its name.
#[utoipa::path(get, path = "/api/executions/{id}/artifacts.zip", tag = "executions",
    params(("id" = String, Path, description = "exec_..."),
        ("view_token" = Option<String>, Query, description = "The execution's view token")),
    responses((status = 200, description = "A zip of the artifacts", content_type = "application/zip", body = Vec<u8>),
        (status = 401, body = Problem, content_type = "application/problem+json", description = "Missing or wrong credentials"),
        (status = 404, body = Problem, content_type = "application/problem+json", description = "No such execution")),
    security((), ("bearer" = [])))]
async fn zip(
    State(state): State<AppState>,
    PathParams(id): PathParams<String>,
    QueryParams(query): QueryParams<FileQuery>,
    caller: Caller,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let record = readable(&state, &caller, &headers, &id, query.view_token.as_deref()).await?;
    let artifacts: Vec<FileRecord> = state
        .store
        .files(&record.id)
        .await?
        .into_iter()
        .filter(|f| f.kind == FileKind::Artifact)
        .collect();
    let blobs = state.files.blobs().clone();
    let scratch = state.files.scratch_file();
    // Written to an unlinked scratch file, not memory: a run's artifacts may be 64 MiB.
    let (file, size) =
        tokio::task::spawn_blocking(move || -> anyhow::Result<(std::fs::File, u64)> {
            let file = scratch?;
            let mut zip = zip::ZipWriter::new(file);
            let options = zip::write::SimpleFileOptions::default()
                .compression_method(zip::CompressionMethod::Deflated)
                .large_file(true);
            for artifact in &artifacts {
                zip.start_file(artifact.name.as_str(), options)?;
                let mut blob = blobs.open(&artifact.sha256)?;
                std::io::copy(&mut blob, &mut zip)?;
            }
            let mut file = zip.finish()?;
            file.flush()?;
            let size = file.stream_position()?;
            Ok((file, size))
        })
        .await
        .map_err(ApiError::internal)?
        .map_err(|e| ApiError::internal(format!("the zip could not be made: {e:#}")))?;
    Response::builder()
        .header(header::CONTENT_TYPE, "application/zip")
        .header(header::CONTENT_LENGTH, size)
        .header(
            header::CONTENT_DISPOSITION,
            format!("attachment; filename=\"{}-artifacts.zip\"", record.id),
        )
        .header(header::X_CONTENT_TYPE_OPTIONS, "nosniff")
        .body(file_body(file, 0, size))
        .map_err(ApiError::internal)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges() {
        assert_eq!(wanted(None, 100), Wanted::All);
        assert_eq!(wanted(Some("bytes=0-9"), 100), Wanted::Range(0, 9));
        assert_eq!(wanted(Some("bytes=90-"), 100), Wanted::Range(90, 99));
        assert_eq!(wanted(Some("bytes=-10"), 100), Wanted::Range(90, 99));
        assert_eq!(wanted(Some("bytes=50-1000"), 100), Wanted::Range(50, 99));
        assert_eq!(wanted(Some("bytes=100-"), 100), Wanted::Unsatisfiable);
        assert_eq!(wanted(Some("bytes=-0"), 100), Wanted::Unsatisfiable);
        assert_eq!(wanted(Some("bytes=0-1,5-6"), 100), Wanted::All);
        assert_eq!(wanted(Some("items=0-1"), 100), Wanted::All);
        assert_eq!(wanted(Some("bytes=9-1"), 100), Wanted::All);
        assert_eq!(wanted(Some("bytes=0-0"), 0), Wanted::Unsatisfiable);
    }
}
