//! Operating apps (SPEC section 12): executions exported as CSV, runs per day, pausing
//! and resuming an app, changing its visibility, and a sample input for an action.

use std::collections::BTreeMap;
use std::convert::Infallible;

use axum::body::Body;
use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use utoipa::{IntoParams, ToSchema};

use super::apps::{AppView, app_view, authorized_app, status_counts};
use super::auth::{Caller, Need};
use super::error::{ApiError, Problem};
use super::executions::parse_filter;
use super::extract::{JsonBody, PathParams, QueryParams};
use super::{AppState, timestamp};
use crate::store::{
    DynStore, ExecStatus, ExportedExecution, ListExecutions, Millis, TriggerSource, now_ms,
};

/// The operating routes (`PATCH /api/apps/{slug}` is routed with the app's others).
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/executions/export.csv", get(export))
        .route("/api/apps/{slug}/timeseries", get(timeseries))
        .route("/api/apps/{slug}/pause", post(pause))
        .route("/api/apps/{slug}/resume", post(resume))
        .route("/api/apps/{slug}/sample-input", get(sample_input))
}

/// The export's columns, in order.
const COLUMNS: [&str; 14] = [
    "execution_id",
    "app",
    "action",
    "version",
    "status",
    "error_code",
    "error_message",
    "trigger_source",
    "created_at",
    "started_at",
    "finished_at",
    "duration_ms",
    "attempt",
    "output",
];
/// Executions read from the store per page of the export.
const EXPORT_PAGE: u32 = 500;

/// `?app=&status=&trigger_source=&since=&until=`.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ExportQuery {
    /// Only this app's.
    app: Option<String>,
    /// Only this status.
    #[param(value_type = Option<ExecStatus>)]
    status: Option<String>,
    /// Only those started this way.
    #[param(value_type = Option<TriggerSource>)]
    trigger_source: Option<String>,
    /// Only those created at or after this time (ISO-8601: a date or a date and time).
    since: Option<String>,
    /// Only those created before this time (ISO-8601).
    until: Option<String>,
}

/// An ISO-8601 time (RFC 3339, or a date meaning its midnight UTC) in unix ms.
fn iso_time(name: &str, text: &str) -> Result<Millis, ApiError> {
    if let Ok(time) = chrono::DateTime::parse_from_rfc3339(text) {
        return Ok(time.timestamp_millis());
    }
    if let Ok(date) = chrono::NaiveDate::parse_from_str(text, "%Y-%m-%d")
        && let Some(midnight) = date.and_hms_opt(0, 0, 0)
    {
        return Ok(midnight.and_utc().timestamp_millis());
    }
    Err(ApiError::invalid_input(format!(
        "?{name}={text:?} is not an ISO-8601 time (such as 2026-12-01 or 2026-12-01T08:00:00Z)"
    )))
}

/// Executions as RFC 4180 CSV, newest first, streamed.
#[utoipa::path(get, path = "/api/executions/export.csv", tag = "executions",
    params(ExportQuery),
    responses((status = 200, description = "CSV with a header row (CRLF line ends); `output` is JSON text, times ISO-8601 UTC", content_type = "text/csv", body = String),
        (status = 400, body = Problem, content_type = "application/problem+json", description = "Malformed request"),
        (status = 401, body = Problem, content_type = "application/problem+json", description = "Missing or wrong credentials")),
    security(("bearer" = [])))]
async fn export(
    State(state): State<AppState>,
    QueryParams(query): QueryParams<ExportQuery>,
    caller: Caller,
) -> Result<Response, ApiError> {
    let apps = caller.listable_apps("exporting executions")?;
    let time = |name: &str, value: Option<String>| {
        value
            .filter(|v| !v.is_empty())
            .map(|v| iso_time(name, &v))
            .transpose()
    };
    let filter = ListExecutions {
        app: query.app.filter(|a| !a.is_empty()),
        apps,
        status: parse_filter(query.status.as_deref())?,
        trigger_source: parse_filter(query.trigger_source.as_deref())?,
        since: time("since", query.since)?,
        until: time("until", query.until)?,
        before: None,
        limit: EXPORT_PAGE,
    };
    let body = Body::from_stream(csv_pages(state.store.clone(), filter));
    Ok((
        [
            (
                header::CONTENT_TYPE,
                "text/csv; charset=utf-8; header=present",
            ),
            (
                header::CONTENT_DISPOSITION,
                "attachment; filename=\"executions.csv\"",
            ),
        ],
        body,
    )
        .into_response())
}

/// The header row, then one chunk of rows per page read from the store.
fn csv_pages(
    store: DynStore,
    filter: ListExecutions,
) -> impl futures_util::Stream<Item = Result<Vec<u8>, Infallible>> {
    let header = futures_util::stream::once(async {
        Ok(csv_rows(std::iter::once(COLUMNS.map(String::from))))
    });
    let rows = futures_util::stream::unfold(Some(filter), move |filter| {
        let store = store.clone();
        async move {
            let filter = filter?;
            let page = match store.export(filter.clone()).await {
                Ok(page) => page,
                Err(e) => {
                    // The status line is sent: a cut-off body is all that can say it failed.
                    tracing::error!("the export stopped: {e:#}");
                    return None;
                }
            };
            let next = (page.len() == filter.limit as usize).then(|| ListExecutions {
                before: page.last().map(|e| e.summary.n),
                ..filter
            });
            Some((Ok(csv_rows(page.iter().map(record))), next))
        }
    });
    futures_util::StreamExt::chain(header, rows)
}

/// RFC 4180 rows: CRLF line ends, fields with commas, quotes or line breaks quoted.
fn csv_rows<R: IntoIterator<Item = String>>(rows: impl Iterator<Item = R>) -> Vec<u8> {
    let mut writer = csv::WriterBuilder::new()
        .terminator(csv::Terminator::CRLF)
        .from_writer(Vec::new());
    for row in rows {
        // Writing to memory fails only on a broken record, and every record has 14 fields.
        let _ = writer.write_record(row);
    }
    writer.into_inner().unwrap_or_default()
}

/// One execution's fields, in [`COLUMNS`] order.
fn record(exported: &ExportedExecution) -> [String; 14] {
    let e = &exported.summary;
    let error: Option<Value> = e
        .error
        .as_deref()
        .and_then(|t| serde_json::from_str(t).ok());
    let field = |name: &str| {
        error
            .as_ref()
            .and_then(|e| e.get(name))
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned()
    };
    let time = |ms: Option<Millis>| ms.map(timestamp).unwrap_or_default();
    [
        e.id.clone(),
        e.app.clone(),
        e.action.clone(),
        e.version.to_string(),
        e.status.as_str().to_owned(),
        field("code"),
        field("message"),
        e.trigger_source.as_str().to_owned(),
        timestamp(e.created_at),
        time(e.started_at),
        time(e.finished_at),
        e.started_at
            .zip(e.finished_at)
            .map(|(s, f)| (f - s).to_string())
            .unwrap_or_default(),
        e.attempts.to_string(),
        exported.output.clone().unwrap_or_default(),
    ]
}

/// `?days=`.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct TimeseriesQuery {
    /// How many UTC days, ending today (1 to 366, default 30).
    #[param(value_type = Option<u32>, minimum = 1, maximum = 366)]
    days: Option<String>,
}

/// One UTC day of an app's executions.
#[derive(Debug, Serialize, ToSchema)]
pub struct Day {
    /// `YYYY-MM-DD`.
    date: String,
    /// Executions created that day, per status.
    counts: BTreeMap<&'static str, i64>,
    /// The median run duration of those that ended.
    p50_ms: Option<i64>,
    /// The 95th percentile.
    p95_ms: Option<i64>,
}

/// Runs per day.
#[derive(Debug, Serialize, ToSchema)]
pub struct Timeseries {
    /// One entry per UTC day, oldest first.
    days: Vec<Day>,
}

/// Execution counts per status and p50/p95 durations per UTC day.
#[utoipa::path(get, path = "/api/apps/{slug}/timeseries", tag = "apps",
    params(("slug" = String, Path, description = "The app's slug"), TimeseriesQuery),
    responses((status = 200, body = Timeseries, description = "OK"),
        (status = 400, body = Problem, content_type = "application/problem+json", description = "Malformed request"),
        (status = 401, body = Problem, content_type = "application/problem+json", description = "Missing or wrong credentials"),
        (status = 404, body = Problem, content_type = "application/problem+json", description = "No such resource (or not visible to the caller)")),
    security(("bearer" = [])))]
async fn timeseries(
    State(state): State<AppState>,
    PathParams(slug): PathParams<String>,
    QueryParams(query): QueryParams<TimeseriesQuery>,
    caller: Caller,
) -> Result<Json<Timeseries>, ApiError> {
    if !caller.has_credentials() {
        return Err(ApiError::auth_failed(
            "the time series needs a token that covers the app",
        ));
    }
    authorized_app(&state, &caller, &slug, Need::Run).await?;
    if !caller.covers(&slug) {
        return Err(ApiError::not_found(format!("no app {slug:?}")));
    }
    let days = super::extract::days_param(query.days.as_deref(), 30)?;
    let days = crate::store::per_day(state.store.as_ref(), &slug, days, now_ms())
        .await?
        .iter()
        .map(|day| Day {
            date: super::date(day.day),
            counts: status_counts(&day.counts),
            p50_ms: day.p50_ms,
            p95_ms: day.p95_ms,
        })
        .collect();
    Ok(Json(Timeseries { days }))
}

async fn set_paused(
    state: &AppState,
    caller: &Caller,
    slug: &str,
    paused: bool,
) -> Result<Json<AppView>, ApiError> {
    authorized_app(state, caller, slug, Need::Administer).await?;
    let app = state
        .registry
        .set_paused(slug, paused)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("no app {slug:?}")))?;
    Ok(Json(app_view(&app, state.registry.max_memory_mb())?))
}

/// Pause an app: it refuses new runs (409) until resumed; its history stays.
#[utoipa::path(post, path = "/api/apps/{slug}/pause", tag = "apps",
    params(("slug" = String, Path, description = "The app's slug")),
    responses((status = 200, body = AppView, description = "Paused"),
        (status = 400, body = Problem, content_type = "application/problem+json", description = "Malformed request"),
        (status = 401, body = Problem, content_type = "application/problem+json", description = "Missing or wrong credentials"),
        (status = 403, body = Problem, content_type = "application/problem+json", description = "The credentials do not allow this"),
        (status = 404, body = Problem, content_type = "application/problem+json", description = "No such resource (or not visible to the caller)")),
    security(("bearer" = [])))]
async fn pause(
    State(state): State<AppState>,
    PathParams(slug): PathParams<String>,
    caller: Caller,
) -> Result<Json<AppView>, ApiError> {
    set_paused(&state, &caller, &slug, true).await
}

/// Resume a paused app.
#[utoipa::path(post, path = "/api/apps/{slug}/resume", tag = "apps",
    params(("slug" = String, Path, description = "The app's slug")),
    responses((status = 200, body = AppView, description = "Resumed"),
        (status = 400, body = Problem, content_type = "application/problem+json", description = "Malformed request"),
        (status = 401, body = Problem, content_type = "application/problem+json", description = "Missing or wrong credentials"),
        (status = 403, body = Problem, content_type = "application/problem+json", description = "The credentials do not allow this"),
        (status = 404, body = Problem, content_type = "application/problem+json", description = "No such resource (or not visible to the caller)")),
    security(("bearer" = [])))]
async fn resume(
    State(state): State<AppState>,
    PathParams(slug): PathParams<String>,
    caller: Caller,
) -> Result<Json<AppView>, ApiError> {
    set_paused(&state, &caller, &slug, false).await
}

/// What `PATCH /api/apps/{slug}` changes.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AppPatch {
    /// Whether anyone may run it. Holds until a new version is published (whose manifest
    /// then decides) or the next PATCH.
    public: bool,
}

/// Change an app's visibility.
#[utoipa::path(patch, path = "/api/apps/{slug}", tag = "apps",
    params(("slug" = String, Path, description = "The app's slug")),
    request_body(content = AppPatch, content_type = "application/json"),
    responses((status = 200, body = AppView, description = "Changed"),
        (status = 400, body = Problem, content_type = "application/problem+json", description = "Malformed request"),
        (status = 401, body = Problem, content_type = "application/problem+json", description = "Missing or wrong credentials"),
        (status = 403, body = Problem, content_type = "application/problem+json", description = "The credentials do not allow this"),
        (status = 404, body = Problem, content_type = "application/problem+json", description = "No such resource (or not visible to the caller)"),
        (status = 415, body = Problem, content_type = "application/problem+json", description = "The body is not JSON")),
    security(("bearer" = [])))]
pub async fn patch(
    State(state): State<AppState>,
    PathParams(slug): PathParams<String>,
    caller: Caller,
    JsonBody(body): JsonBody<AppPatch>,
) -> Result<Json<AppView>, ApiError> {
    authorized_app(&state, &caller, &slug, Need::Administer).await?;
    let app = state
        .registry
        .set_public(&slug, body.public)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("no app {slug:?}")))?;
    Ok(Json(app_view(&app, state.registry.max_memory_mb())?))
}

/// `?action=`.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct SampleQuery {
    /// The action (default `run`, or the app's only action).
    action: Option<String>,
}

/// An example input of an action.
#[derive(Debug, Serialize, ToSchema)]
pub struct SampleInput {
    /// The action.
    action: String,
    /// Inputs its `input_schema` accepts.
    #[schema(value_type = Object)]
    inputs: Value,
}

/// An example input for an action, built from its schema (defaults, examples, else a
/// minimal valid value) and checked against it.
#[utoipa::path(get, path = "/api/apps/{slug}/sample-input", tag = "apps",
    params(("slug" = String, Path, description = "The app's slug"), SampleQuery),
    responses((status = 200, body = SampleInput, description = "OK"),
        (status = 400, body = Problem, content_type = "application/problem+json", description = "Malformed request or an unknown action"),
        (status = 401, body = Problem, content_type = "application/problem+json", description = "Missing or wrong credentials"),
        (status = 404, body = Problem, content_type = "application/problem+json", description = "No such resource (or not visible to the caller)"),
        (status = 409, body = Problem, content_type = "application/problem+json", description = "No input the schema accepts could be built (a pattern, say)")),
    security((), ("bearer" = [])))]
async fn sample_input(
    State(state): State<AppState>,
    PathParams(slug): PathParams<String>,
    QueryParams(query): QueryParams<SampleQuery>,
    caller: Caller,
) -> Result<Json<SampleInput>, ApiError> {
    authorized_app(&state, &caller, &slug, Need::Run).await?;
    let action =
        super::triggers::chosen_action(&state, &slug, query.action.filter(|a| !a.is_empty()))?;
    let app = state
        .registry
        .current(&slug)
        .ok_or_else(|| ApiError::not_found(format!("no app {slug:?}")))?;
    let schema = app
        .app
        .manifest()
        .action(&action)
        .and_then(|a| a.input_schema.clone());
    let inputs = match &schema {
        None => Value::Object(Map::new()),
        Some(schema) => {
            let mut inputs = sample(schema, schema, 0);
            if !inputs.is_object() {
                inputs = Value::Object(Map::new());
            }
            inputs
        }
    };
    let inputs = match app.input_schema(&action) {
        Some(validator) => state
            .validations
            .validate(validator, inputs)
            .await
            .map_err(|e| {
                ApiError::conflict(format!(
                    "no sample input could be built that the schema accepts: {e}"
                ))
            })?,
        None => inputs,
    };
    Ok(Json(SampleInput { action, inputs }))
}

/// How deep [`sample`] follows a schema (publish bounds schemas to 32 levels).
const MAX_SAMPLE_DEPTH: usize = 40;

/// A value `schema` (within `root`) accepts: its default, its first example, else the
/// smallest value of its type.
fn sample(schema: &Value, root: &Value, depth: usize) -> Value {
    let Some(object) = schema.as_object() else {
        return Value::Null;
    };
    if depth > MAX_SAMPLE_DEPTH {
        return Value::Null;
    }
    for key in ["default", "const"] {
        if let Some(value) = object.get(key) {
            return value.clone();
        }
    }
    if let Some(first) = object
        .get("examples")
        .and_then(Value::as_array)
        .and_then(|e| e.first())
    {
        return first.clone();
    }
    if let Some(first) = object
        .get("enum")
        .and_then(Value::as_array)
        .and_then(|e| e.first())
    {
        return first.clone();
    }
    if let Some(target) = object
        .get("$ref")
        .and_then(Value::as_str)
        .and_then(|r| r.strip_prefix('#'))
        .and_then(|pointer| root.pointer(pointer))
    {
        return sample(target, root, depth + 1);
    }
    for key in ["anyOf", "oneOf"] {
        if let Some(first) = object
            .get(key)
            .and_then(Value::as_array)
            .and_then(|b| b.first())
        {
            return sample(first, root, depth + 1);
        }
    }
    if let Some(parts) = object.get("allOf").and_then(Value::as_array) {
        // Objects from every part, merged; anything else from the first.
        let mut merged = Map::new();
        let mut other = None;
        for part in parts {
            match sample(part, root, depth + 1) {
                Value::Object(fields) => merged.extend(fields),
                value => other = other.or(Some(value)),
            }
        }
        if !merged.is_empty() || other.is_none() {
            let mut own = object.clone();
            own.remove("allOf");
            if let Value::Object(fields) = sample(&Value::Object(own), root, depth + 1) {
                merged.extend(fields);
            }
            return Value::Object(merged);
        }
        return other.unwrap_or(Value::Null);
    }
    let kind = match object.get("type") {
        Some(Value::String(kind)) => kind.as_str(),
        Some(Value::Array(kinds)) => kinds
            .iter()
            .filter_map(Value::as_str)
            .find(|k| *k != "null")
            .unwrap_or("null"),
        _ if object.contains_key("properties") => "object",
        _ => "null",
    };
    let number = |name: &str| object.get(name).and_then(Value::as_f64);
    match kind {
        "object" => {
            let required: Vec<&str> = object
                .get("required")
                .and_then(Value::as_array)
                .map(|r| r.iter().filter_map(Value::as_str).collect())
                .unwrap_or_default();
            let properties = object.get("properties").and_then(Value::as_object);
            let mut fields = Map::new();
            for (name, property) in properties.into_iter().flatten() {
                let has_example =
                    property.get("default").is_some() || property.get("examples").is_some();
                if required.contains(&name.as_str()) || has_example {
                    fields.insert(name.clone(), sample(property, root, depth + 1));
                }
            }
            for name in required {
                fields.entry(name).or_insert(Value::Null);
            }
            Value::Object(fields)
        }
        "array" => {
            let count = number("minItems").unwrap_or(0.0).clamp(0.0, 100.0) as usize;
            let prefix = object.get("prefixItems").and_then(Value::as_array);
            let items = object.get("items");
            (0..count)
                .map(|i| match prefix.and_then(|p| p.get(i)).or(items) {
                    Some(item) => sample(item, root, depth + 1),
                    None => Value::Null,
                })
                .collect()
        }
        "string" => Value::String(match object.get("format").and_then(Value::as_str) {
            Some("date-time") => "2026-01-01T00:00:00Z".to_owned(),
            Some("date") => "2026-01-01".to_owned(),
            Some("time") => "00:00:00Z".to_owned(),
            Some("email") => "user@example.com".to_owned(),
            Some("uri" | "url" | "iri") => "https://example.com/".to_owned(),
            Some("uuid") => "00000000-0000-4000-8000-000000000000".to_owned(),
            _ => "a".repeat(number("minLength").unwrap_or(0.0).clamp(0.0, 10_000.0) as usize),
        }),
        "integer" | "number" => {
            let low = number("minimum")
                .or_else(|| number("exclusiveMinimum").map(|m| m.floor() + 1.0))
                .unwrap_or(0.0);
            let high =
                number("maximum").or_else(|| number("exclusiveMaximum").map(|m| m.ceil() - 1.0));
            let mut value = high.map_or(low, |h| low.min(h));
            if let Some(step) = number("multipleOf").filter(|s| *s > 0.0) {
                value = (value / step).ceil() * step;
            }
            if kind == "integer" {
                Value::from(value.ceil() as i64)
            } else {
                serde_json::Number::from_f64(value).map_or(Value::Null, Value::Number)
            }
        }
        "boolean" => Value::Bool(false),
        _ => Value::Null,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn samples_use_defaults_examples_then_minimal_values() {
        let schema = json!({
            "type": "object",
            "required": ["text", "count", "mode", "tags", "when", "nested"],
            "properties": {
                "text": { "type": "string", "minLength": 3 },
                "count": { "type": "integer", "minimum": 2, "maximum": 9 },
                "mode": { "enum": ["fast", "slow"] },
                "tags": { "type": "array", "minItems": 1, "items": { "type": "string", "examples": ["x"] } },
                "when": { "type": "string", "format": "date" },
                "nested": { "$ref": "#/$defs/inner" },
                "lang": { "type": "string", "default": "en" },
                "skipped": { "type": "number" }
            },
            "$defs": { "inner": { "type": "object", "required": ["ok"], "properties": { "ok": { "type": "boolean" } } } }
        });
        assert_eq!(
            sample(&schema, &schema, 0),
            json!({
                "text": "aaa", "count": 2, "mode": "fast", "tags": ["x"], "when": "2026-01-01",
                "nested": { "ok": false }, "lang": "en"
            })
        );
    }

    #[test]
    fn csv_quotes_what_needs_quoting_and_ends_lines_with_crlf() {
        let out = csv_rows(std::iter::once(vec![
            "plain".to_owned(),
            "a,b".to_owned(),
            "say \"hi\"".to_owned(),
            "two\nlines".to_owned(),
        ]));
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "plain,\"a,b\",\"say \"\"hi\"\"\",\"two\nlines\"\r\n"
        );
    }
}
