//! The web pages (SPEC section 8), served by the binary itself: the gallery (`/`), a page
//! per app with a form from each action's schema (`/apps/{slug}`), a shareable page per
//! execution (`/executions/{id}?view_token=...`) and the operator's view (`/ops`,
//! `/ops/apps/{slug}`).
//!
//! Pages are rendered here from the same store, registry and authorization the REST API
//! uses ([`Caller`], [`readable`]); everything a page *does* (run, stream, cancel) its
//! script does by calling the REST API, so no run starts any other way. A token is typed
//! into the page, kept in the tab's `sessionStorage` and sent as a bearer header, both to
//! the API and when the script reloads the page's `<main>` with it: pages set no cookies,
//! so there is nothing for another site to ride on.
//!
//! Everything shown is escaped by the templates (app names, descriptions, schemas and
//! outputs are untrusted), and every page carries a Content-Security-Policy that allows
//! only this server's own script and stylesheet (`/assets/`, embedded in the binary).

use std::sync::OnceLock;

use askama::Template;
use axum::Router;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::map_response;
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use floom_runtime::is_slug;
use serde::Deserialize;
use serde_json::Value;

use crate::api::auth::{Caller, Need};
use crate::api::error::ApiError;
use crate::api::executions::readable;
use crate::api::{AppState, date, timestamp};
use crate::registry::LoadedApp;
use crate::store::{
    DayStats, ExecStatus, ExecutionSummary, ListExecutions, Millis, TriggerSource, now_ms,
};

pub mod chart;
pub mod form;

use chart::Chart;
use form::Field;

/// Runs listed per page of the operator's view.
const RUNS_PER_PAGE: u32 = 50;
/// Days the operator's charts cover unless `?days=` says otherwise.
const DEFAULT_DAYS: u32 = 14;
/// Days the charts show on a phone's screen (where 14 would be too small to read).
const NARROW_DAYS: usize = 7;
/// Most bytes of an execution's inputs its page shows (they can be a megabyte).
const MAX_SHOWN_INPUTS: usize = 64 << 10;

/// The pages and their assets.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/", get(gallery))
        .route("/apps/{slug}", get(app_page))
        .route("/executions/{id}", get(execution_page))
        .route("/ops", get(ops_index))
        .route("/ops/apps/{slug}", get(ops_app))
        .route("/assets/floom.css", get(css))
        .route("/assets/floom.js", get(script))
        .layer(map_response(secure))
}

/// The policy every page is served with: only this server's own script, stylesheet and
/// API; no inline script or style, no frames, no forms to elsewhere.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; \
     style-src 'self'; img-src 'self'; connect-src 'self'; form-action 'self'; \
     base-uri 'none'; frame-ancestors 'none'";

/// Security headers on every page and asset. `no-referrer` keeps a view token in an
/// execution page's address from leaking to any link followed from it; `no-store` keeps
/// pages rendered with a token out of every cache.
async fn secure(mut response: Response) -> Response {
    let headers = response.headers_mut();
    for (name, value) in [
        (header::CONTENT_SECURITY_POLICY, CONTENT_SECURITY_POLICY),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (header::REFERRER_POLICY, "no-referrer"),
        (header::X_FRAME_OPTIONS, "DENY"),
        (
            header::HeaderName::from_static("cross-origin-opener-policy"),
            "same-origin",
        ),
    ] {
        headers.insert(name, HeaderValue::from_static(value));
    }
    headers
        .entry(header::CACHE_CONTROL)
        .or_insert(HeaderValue::from_static("no-store"));
    response
}

/// A file the pages load, embedded in the binary.
struct Asset {
    body: &'static str,
    content_type: &'static str,
    etag: OnceLock<String>,
}

static CSS: Asset = Asset {
    body: include_str!("assets/floom.css"),
    content_type: "text/css; charset=utf-8",
    etag: OnceLock::new(),
};

static JS: Asset = Asset {
    body: include_str!("assets/floom.js"),
    content_type: "text/javascript; charset=utf-8",
    etag: OnceLock::new(),
};

impl Asset {
    /// The asset with an ETag, so a browser revalidates it cheaply instead of keeping a
    /// copy that outlives an upgrade of the binary.
    fn serve(&self, headers: &HeaderMap) -> Response {
        let tag = self
            .etag
            .get_or_init(|| format!("\"{}\"", &crate::tokens::hash(self.body)[..16]));
        let cache = [
            (header::CACHE_CONTROL, "no-cache".to_owned()),
            (header::ETAG, tag.clone()),
        ];
        if headers
            .get(header::IF_NONE_MATCH)
            .is_some_and(|v| v.as_bytes() == tag.as_bytes())
        {
            return (StatusCode::NOT_MODIFIED, cache).into_response();
        }
        (
            cache,
            [(header::CONTENT_TYPE, self.content_type)],
            self.body,
        )
            .into_response()
    }
}

async fn css(headers: HeaderMap) -> Response {
    CSS.serve(&headers)
}

async fn script(headers: HeaderMap) -> Response {
    JS.serve(&headers)
}

/// A page that could not be shown, as a page: what went wrong and, when a token would
/// help, the form to enter one.
#[derive(Debug)]
pub struct PageError {
    status: StatusCode,
    heading: String,
    message: String,
    token: bool,
}

impl From<ApiError> for PageError {
    fn from(error: ApiError) -> Self {
        let status = error.status();
        let (heading, token) = match status {
            StatusCode::UNAUTHORIZED => ("A token is needed", true),
            StatusCode::FORBIDDEN => ("This token cannot do that", true),
            StatusCode::NOT_FOUND => ("Not found", false),
            s if s.is_client_error() => ("That request did not work", false),
            _ => ("Something went wrong", false),
        };
        PageError {
            status,
            heading: heading.to_owned(),
            message: error.detail().to_owned(),
            token,
        }
    }
}

impl From<anyhow::Error> for PageError {
    fn from(error: anyhow::Error) -> Self {
        ApiError::from(error).into()
    }
}

/// The page of a [`PageError`].
#[derive(Template)]
#[template(path = "message.html")]
struct MessagePage<'a> {
    nav: &'static str,
    heading: &'a str,
    message: &'a str,
    token: bool,
}

impl IntoResponse for PageError {
    fn into_response(self) -> Response {
        let page = MessagePage {
            nav: "",
            heading: &self.heading,
            message: &self.message,
            token: self.token,
        };
        (self.status, html(&page)).into_response()
    }
}

fn html(page: &impl Template) -> Response {
    match page.render() {
        Ok(text) => Html(text).into_response(),
        Err(e) => {
            tracing::error!("rendering a page failed: {e}");
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                "the page could not be rendered",
            )
                .into_response()
        }
    }
}

/// The caller, or the page that says why its token was refused.
fn caller(caller: Result<Caller, ApiError>) -> Result<Caller, PageError> {
    caller.map_err(PageError::from)
}

/// A query string, or the page that says what is wrong with it.
fn query<T: Default>(query: Result<Query<T>, QueryRejection>) -> Result<T, PageError> {
    match query {
        Ok(Query(query)) => Ok(query),
        Err(e) => Err(ApiError::invalid_input(e.body_text()).into()),
    }
}

/// A moment, for a `<time>` element: its timestamp and how long ago it was.
#[derive(Debug, Clone)]
pub struct When {
    /// RFC 3339, UTC.
    pub iso: String,
    /// `3 minutes ago`.
    pub ago: String,
}

impl When {
    fn new(at: Millis, now: Millis) -> Self {
        When {
            iso: timestamp(at),
            ago: ago(now - at),
        }
    }
}

/// A time span in the past, for people.
pub fn ago(ms: Millis) -> String {
    let s = ms.max(0) / 1000;
    let (n, unit) = match s {
        0..45 => return "just now".to_owned(),
        45..3_600 => ((s + 30) / 60, "minute"),
        3_600..86_400 => ((s + 1_800) / 3_600, "hour"),
        _ => ((s + 43_200) / 86_400, "day"),
    };
    let n = n.max(1);
    format!("{n} {unit}{} ago", if n == 1 { "" } else { "s" })
}

/// An app's display name: its `name`, else its slug.
fn display_name(app: &LoadedApp) -> String {
    app.app
        .manifest()
        .name
        .clone()
        .unwrap_or_else(|| app.record.slug.clone())
}

// ---- The gallery ----------------------------------------------------------------------

#[derive(Debug, Default, Deserialize)]
struct GalleryQuery {
    #[serde(default)]
    q: String,
}

/// An app on the gallery.
struct AppCard {
    slug: String,
    name: String,
    description: String,
    public: bool,
    actions: Vec<String>,
    last_run: Option<When>,
    /// What the search box matches, lowercased.
    search: String,
    /// Whether it matches the search (`?q=`); the others are sent hidden, for the
    /// script's search as you type.
    hit: bool,
}

#[derive(Template)]
#[template(path = "gallery.html")]
struct GalleryPage {
    nav: &'static str,
    q: String,
    apps: Vec<AppCard>,
    /// How many match the search.
    hits: usize,
    with_token: bool,
}

/// `GET /`: the apps the visitor may see, with a search box.
async fn gallery(
    State(state): State<AppState>,
    who: Result<Caller, ApiError>,
    params: Result<Query<GalleryQuery>, QueryRejection>,
) -> Result<Response, PageError> {
    let who = caller(who)?;
    let GalleryQuery { q } = query(params)?;
    let last_runs = state.store.last_runs().await?;
    let now = now_ms();
    let needle = q.trim().to_lowercase();
    let apps: Vec<AppCard> = state
        .registry
        .all()
        .into_iter()
        .filter(|app| app.record.public || who.covers(&app.record.slug))
        .map(|app| {
            let manifest = app.app.manifest();
            let slug = app.record.slug.clone();
            let name = display_name(&app);
            let description = manifest.description.clone().unwrap_or_default();
            let actions: Vec<String> = manifest.actions().map(|(a, _)| a.to_owned()).collect();
            let search =
                format!("{name} {slug} {description} {}", actions.join(" ")).to_lowercase();
            AppCard {
                hit: needle.split_whitespace().all(|word| search.contains(word)),
                search,
                last_run: last_runs.get(&slug).map(|at| When::new(*at, now)),
                public: app.record.public,
                slug,
                name,
                description,
                actions,
            }
        })
        .collect();
    Ok(html(&GalleryPage {
        nav: "apps",
        q,
        hits: apps.iter().filter(|card| card.hit).count(),
        apps,
        with_token: who.has_credentials(),
    }))
}

// ---- An app's page --------------------------------------------------------------------

/// One action of an app page: its form and what its snippets need.
struct ActionForm {
    name: String,
    description: Option<String>,
    streaming: bool,
    /// The REST path that runs it.
    run_path: String,
    /// Whether it is the default action (run with `floom run SLUG`).
    default: bool,
    /// Its MCP tool name.
    tool: String,
    form: Field,
}

#[derive(Template)]
#[template(path = "app.html")]
struct AppPage {
    nav: &'static str,
    slug: String,
    name: String,
    description: Option<String>,
    public: bool,
    version: i64,
    timeout_s: u64,
    actions: Vec<ActionForm>,
    operator: bool,
}

/// `GET /apps/{slug}`: the app with a form per action.
async fn app_page(
    State(state): State<AppState>,
    Path(slug): Path<String>,
    who: Result<Caller, ApiError>,
) -> Result<Response, PageError> {
    let who = caller(who)?;
    let app = is_slug(&slug)
        .then(|| state.registry.current(&slug))
        .flatten()
        .ok_or_else(|| ApiError::not_found(format!("There is no app {slug:?}.")))?;
    who.authorize(&slug, app.record.public, Need::Run)?;
    let manifest = app.app.manifest();
    let default = crate::runs::default_action(&app);
    let actions = manifest
        .actions()
        .enumerate()
        .map(|(i, (name, action))| {
            let is_default = default.as_deref() == Some(name);
            ActionForm {
                name: name.to_owned(),
                description: action.description.clone(),
                streaming: action.streaming,
                run_path: if is_default {
                    format!("/api/apps/{slug}/run")
                } else {
                    format!("/api/apps/{slug}/actions/{name}/run")
                },
                default: is_default,
                tool: crate::mcp::tool_name(&slug, name, is_default),
                form: form::form(action.input_schema.as_ref(), &format!("a{i}")),
            }
        })
        .collect();
    Ok(html(&AppPage {
        nav: "apps",
        name: display_name(&app),
        description: manifest.description.clone(),
        public: app.record.public,
        version: app.record.version,
        timeout_s: manifest
            .limits(state.registry.max_memory_mb())
            .timeout
            .as_secs(),
        operator: who
            .authorize(&slug, app.record.public, Need::Administer)
            .is_ok(),
        actions,
        slug,
    }))
}

// ---- An execution's page --------------------------------------------------------------

#[derive(Debug, Default, Deserialize)]
struct ExecutionQuery {
    view_token: Option<String>,
}

#[derive(Template)]
#[template(path = "execution.html")]
struct ExecutionPage {
    nav: &'static str,
    id: String,
    app: String,
    app_name: String,
    action: String,
    version: i64,
    status: ExecStatus,
    trigger: TriggerSource,
    attempts: i64,
    created: When,
    started: Option<When>,
    finished: Option<When>,
    duration: Option<String>,
    inputs: String,
    inputs_cut: bool,
    approval: Option<ApprovalView>,
}

/// An execution's approval as its page shows it.
struct ApprovalView {
    action: String,
    /// The proposed output, pretty JSON.
    proposed: String,
    expires_at: String,
    decision: Option<String>,
    decided_by: Option<String>,
    decided_at: Option<String>,
    annotation: Option<String>,
    edited: bool,
}

impl ApprovalView {
    fn new(json: &str) -> Option<Self> {
        let approval: crate::store::Approval = serde_json::from_str(json).ok()?;
        let proposed = serde_json::from_str::<Value>(approval.proposed_output.get())
            .ok()
            .and_then(|v| serde_json::to_string_pretty(&v).ok())
            .unwrap_or_else(|| approval.proposed_output.get().to_owned());
        Some(ApprovalView {
            action: approval.action,
            proposed,
            expires_at: approval.expires_at,
            decision: approval.decision,
            decided_by: approval.decided_by,
            decided_at: approval.decided_at,
            annotation: approval.annotation,
            edited: approval.edited,
        })
    }
}

/// `GET /executions/{id}?view_token=...`: one execution, live while it runs; its events
/// and output are streamed by the script from the API with the same credentials.
async fn execution_page(
    State(state): State<AppState>,
    Path(id): Path<String>,
    who: Result<Caller, ApiError>,
    headers: HeaderMap,
    params: Result<Query<ExecutionQuery>, QueryRejection>,
) -> Result<Response, PageError> {
    let who = caller(who)?;
    let ExecutionQuery { view_token } = query(params)?;
    let record = readable(&state, &who, &headers, &id, view_token.as_deref()).await?;
    let now = now_ms();
    let mut inputs = serde_json::from_str::<Value>(&record.inputs)
        .ok()
        .and_then(|v| serde_json::to_string_pretty(&v).ok())
        .unwrap_or_else(|| record.inputs.clone());
    let inputs_cut = inputs.len() > MAX_SHOWN_INPUTS;
    if inputs_cut {
        inputs = floom_runtime::text::cut(inputs, MAX_SHOWN_INPUTS);
    }
    let app_name = state
        .registry
        .current(&record.app)
        .map_or_else(|| record.app.clone(), |app| display_name(&app));
    Ok(html(&ExecutionPage {
        nav: "",
        app_name,
        action: record.action.clone(),
        version: record.version,
        status: record.status,
        trigger: record.trigger_source,
        attempts: record.attempts,
        created: When::new(record.created_at, now),
        started: record.started_at.map(|at| When::new(at, now)),
        finished: record.finished_at.map(|at| When::new(at, now)),
        duration: record
            .started_at
            .zip(record.finished_at)
            .map(|(s, f)| chart::duration((f - s) as f64)),
        inputs,
        inputs_cut,
        approval: record.approval.as_deref().and_then(ApprovalView::new),
        app: record.app,
        id: record.id,
    }))
}

// ---- The operator's view --------------------------------------------------------------

/// The apps `who` may operate (administer), by slug.
fn operated(state: &AppState, who: &Caller) -> Result<Vec<std::sync::Arc<LoadedApp>>, PageError> {
    if !who.has_credentials() {
        return Err(ApiError::auth_failed(
            "The operator's view needs an admin token: enter it above.",
        )
        .into());
    }
    Ok(state
        .registry
        .all()
        .into_iter()
        .filter(|app| {
            who.authorize(&app.record.slug, app.record.public, Need::Administer)
                .is_ok()
        })
        .collect())
}

/// One app on the operator's overview.
struct OpsRow {
    slug: String,
    name: String,
    public: bool,
    runs: i64,
    failed: i64,
    p95: Option<String>,
    last_run: Option<When>,
}

#[derive(Template)]
#[template(path = "ops.html")]
struct OpsPage {
    nav: &'static str,
    days: u32,
    apps: Vec<OpsRow>,
}

/// `GET /ops`: every app the token may operate, with its recent figures.
async fn ops_index(
    State(state): State<AppState>,
    who: Result<Caller, ApiError>,
) -> Result<Response, PageError> {
    let who = caller(who)?;
    let apps = operated(&state, &who)?;
    let last_runs = state.store.last_runs().await?;
    let now = now_ms();
    let mut rows = Vec::with_capacity(apps.len());
    for app in apps {
        let slug = app.record.slug.clone();
        let series = crate::store::per_day(state.store.as_ref(), &slug, DEFAULT_DAYS, now).await?;
        let sum = |statuses: &[ExecStatus]| -> i64 {
            series
                .iter()
                .flat_map(|d| &d.counts)
                .filter(|(s, _)| statuses.contains(s))
                .map(|(_, n)| n)
                .sum()
        };
        rows.push(OpsRow {
            name: display_name(&app),
            public: app.record.public,
            runs: sum(&ExecStatus::ALL),
            failed: sum(&[ExecStatus::Failed, ExecStatus::TimedOut]),
            p95: series
                .iter()
                .filter_map(|d| d.p95_ms)
                .max()
                .map(|ms| chart::duration(ms as f64)),
            last_run: last_runs.get(&slug).map(|at| When::new(*at, now)),
            slug,
        });
    }
    Ok(html(&OpsPage {
        nav: "ops",
        days: DEFAULT_DAYS,
        apps: rows,
    }))
}

#[derive(Debug, Default, Deserialize)]
struct OpsQuery {
    #[serde(default)]
    status: String,
    #[serde(default)]
    trigger: String,
    #[serde(default)]
    days: String,
    #[serde(default)]
    before: String,
}

/// A query parameter, unless it is empty (`?status=` is no filter).
fn nonempty(text: &str) -> Option<&str> {
    Some(text.trim()).filter(|t| !t.is_empty())
}

/// One run in the operator's list.
struct RunRow {
    id: String,
    status: ExecStatus,
    action: String,
    version: i64,
    trigger: TriggerSource,
    created: When,
    duration: Option<String>,
    error: Option<String>,
}

impl RunRow {
    fn new(run: &ExecutionSummary, now: Millis) -> Self {
        let error = run
            .error
            .as_deref()
            .and_then(|e| serde_json::from_str::<Value>(e).ok())
            .and_then(|e| e.get("code").and_then(Value::as_str).map(str::to_owned));
        RunRow {
            id: run.id.clone(),
            status: run.status,
            action: run.action.clone(),
            version: run.version,
            trigger: run.trigger_source,
            created: When::new(run.created_at, now),
            duration: run
                .started_at
                .zip(run.finished_at)
                .map(|(s, f)| chart::duration((f - s) as f64)),
            error,
        }
    }

    fn cancellable(&self) -> bool {
        !self.status.is_terminal()
    }
}

/// One day of the charts' data, as a table row.
struct DayRow {
    date: String,
    counts: Vec<i64>,
    p50: Option<String>,
    p95: Option<String>,
}

/// A choice of a filter: its value, its label, and whether it is the one in force.
struct Filter {
    value: &'static str,
    label: String,
    selected: bool,
}

#[derive(Template)]
#[template(path = "ops_app.html")]
struct OpsAppPage {
    nav: &'static str,
    slug: String,
    name: String,
    days: u32,
    day_choices: Vec<Filter>,
    statuses: Vec<Filter>,
    triggers: Vec<Filter>,
    filtered: bool,
    runs_chart: Chart,
    duration_chart: Chart,
    /// The same for a phone: the last [`NARROW_DAYS`] days.
    runs_chart_narrow: Chart,
    duration_chart_narrow: Chart,
    legend: Vec<(&'static str, String)>,
    table: Vec<DayRow>,
    runs: Vec<RunRow>,
    older: Option<String>,
}

/// `GET /ops/apps/{slug}`: an app's charts and recent runs, with filters and cancel
/// buttons.
async fn ops_app(
    State(state): State<AppState>,
    Path(slug): Path<String>,
    who: Result<Caller, ApiError>,
    params: Result<Query<OpsQuery>, QueryRejection>,
) -> Result<Response, PageError> {
    let who = caller(who)?;
    let params = query(params)?;
    let app = operated(&state, &who)?
        .into_iter()
        .find(|app| app.record.slug == slug)
        .ok_or_else(|| {
            ApiError::not_found(format!("There is no app {slug:?} this token may operate."))
        })?;
    let days = crate::api::extract::days_param(Some(&params.days), DEFAULT_DAYS)?;
    let status = nonempty(&params.status)
        .map(str::parse::<ExecStatus>)
        .transpose()
        .map_err(ApiError::invalid_input)?;
    let trigger = nonempty(&params.trigger)
        .map(str::parse::<TriggerSource>)
        .transpose()
        .map_err(ApiError::invalid_input)?;
    let before = nonempty(&params.before)
        .map(|c| {
            c.parse::<i64>()
                .map_err(|_| ApiError::invalid_input(format!("{c:?} is not a cursor")))
        })
        .transpose()?;
    let now = now_ms();
    let series = crate::store::per_day(state.store.as_ref(), &slug, days, now).await?;
    let dated: Vec<(String, &DayStats)> = series.iter().map(|d| (date(d.day), d)).collect();
    let summaries = state
        .store
        .executions(ListExecutions {
            app: Some(slug.clone()),
            status,
            trigger_source: trigger,
            before,
            limit: RUNS_PER_PAGE,
            ..ListExecutions::default()
        })
        .await?;
    let older = (summaries.len() == RUNS_PER_PAGE as usize)
        .then(|| summaries.last().map(|r| r.n.to_string()))
        .flatten();
    let table = dated
        .iter()
        .rev()
        .map(|(date, day)| DayRow {
            date: date.clone(),
            counts: chart::STACK
                .iter()
                .map(|s| {
                    day.counts
                        .iter()
                        .find(|(c, _)| c == s)
                        .map_or(0, |(_, n)| *n)
                })
                .collect(),
            p50: day.p50_ms.map(|ms| chart::duration(ms as f64)),
            p95: day.p95_ms.map(|ms| chart::duration(ms as f64)),
        })
        .collect();
    let label = |s: &str| s.replace('_', " ");
    let recent = &dated[dated.len().saturating_sub(NARROW_DAYS)..];
    Ok(html(&OpsAppPage {
        nav: "ops",
        name: display_name(&app),
        days,
        day_choices: [7, 14, 30, 90]
            .into_iter()
            .map(|n: u32| Filter {
                value: match n {
                    7 => "7",
                    14 => "14",
                    30 => "30",
                    _ => "90",
                },
                label: format!("{n} days"),
                selected: n == days,
            })
            .collect(),
        statuses: ExecStatus::ALL
            .iter()
            .map(|s| Filter {
                value: s.as_str(),
                label: label(s.as_str()),
                selected: status == Some(*s),
            })
            .collect(),
        triggers: TriggerSource::ALL
            .iter()
            .map(|t| Filter {
                value: t.as_str(),
                label: t.as_str().to_owned(),
                selected: trigger == Some(*t),
            })
            .collect(),
        filtered: status.is_some() || trigger.is_some(),
        runs_chart: chart::runs("runs-chart", &dated, chart::WIDE),
        duration_chart: chart::durations("duration-chart", &dated, chart::WIDE),
        runs_chart_narrow: chart::runs("runs-chart-narrow", recent, chart::NARROW),
        duration_chart_narrow: chart::durations("duration-chart-narrow", recent, chart::NARROW),
        legend: chart::STACK
            .iter()
            .map(|s| (s.as_str(), label(s.as_str())))
            .collect(),
        table,
        runs: summaries.iter().map(|r| RunRow::new(r, now)).collect(),
        older,
        slug,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spans_read_as_people_say_them() {
        assert_eq!(ago(10_000), "just now");
        assert_eq!(ago(60_000), "1 minute ago");
        assert_eq!(ago(5 * 3_600_000), "5 hours ago");
        assert_eq!(ago(3 * 86_400_000), "3 days ago");
        assert_eq!(ago(-5), "just now", "a clock set back is not the future");
    }
}
