//! The machine-readable contract: the OpenAPI 3.1 document generated from the handlers'
//! annotations at `/openapi.json`, a readable page of it at `/docs`, and `/metrics`.

use axum::Router;
use axum::extract::State;
use axum::http::header;
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi, ToSchema};

use super::AppState;
use super::{
    approvals, apps, artifacts, executions, operate, runs, schedules, secrets, system, tokens,
    triggers, webhooks,
};

/// An app's slug.
#[derive(ToSchema)]
#[schema(pattern = "^[a-z0-9][a-z0-9-]{0,62}$")]
#[allow(dead_code)] // Only its schema is used.
pub struct SlugDoc(String);

/// The whole API.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "Floom runtime",
        description = "Publish WebAssembly apps and run them safely: async (202 + polling), sync (`?wait=true`) or streamed (SSE). Errors are RFC 9457 problems.",
    ),
    paths(
        system::healthz,
        apps::list, apps::publish, apps::detail, apps::delete, apps::versions, apps::rollback, apps::stats,
        runs::run_app, runs::run_action,
        secrets::list, secrets::set, secrets::remove,
        executions::list, executions::detail, executions::events, executions::logs, executions::cancel,
        approvals::approve, approvals::reject, approvals::list, approvals::count,
        artifacts::artifact, artifacts::input, artifacts::zip,
        tokens::create, tokens::list, tokens::revoke,
        triggers::create, triggers::list, triggers::rotate, triggers::remove, triggers::hook,
        schedules::create, schedules::list, schedules::pause, schedules::resume, schedules::remove,
        webhooks::create, webhooks::list, webhooks::remove, webhooks::run_secret, webhooks::deliveries,
        operate::export, operate::timeseries, operate::pause, operate::resume, operate::patch, operate::sample_input,
        openapi_json, metrics,
    ),
    modifiers(&BearerAuth),
    tags(
        (name = "apps", description = "Publish, inspect, roll back and delete apps"),
        (name = "runs", description = "Start executions"),
        (name = "executions", description = "Read, stream, cancel and list executions"),
        (name = "approvals", description = "Approve, edit or reject outputs before they count"),
        (name = "secrets", description = "App secrets, encrypted at rest"),
        (name = "tokens", description = "Scoped agent tokens"),
        (name = "triggers", description = "Inbound webhooks that start runs"),
        (name = "schedules", description = "Runs on a cron schedule"),
        (name = "webhooks", description = "Signed notifications of execution events"),
        (name = "system", description = "Health, metrics and this document"),
    )
)]
pub struct ApiDoc;

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some(
                        "The admin secret or an agent token (floom_...); also accepted as x-floom-token or x-floom-secret",
                    ))
                    .build(),
            ),
        );
    }
}

/// `/openapi.json`, `/docs` and `/metrics`.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/openapi.json", get(openapi_json))
        .route("/docs", get(docs))
        .route("/metrics", get(metrics))
}

/// This document.
#[utoipa::path(get, path = "/openapi.json", tag = "system",
    responses((status = 200, description = "The OpenAPI 3.1 document", content_type = "application/json", body = Object)))]
async fn openapi_json() -> Response {
    (
        [(header::CONTENT_TYPE, "application/json")],
        ApiDoc::openapi().to_json().unwrap_or_default(),
    )
        .into_response()
}

/// Prometheus metrics.
#[utoipa::path(get, path = "/metrics", tag = "system",
    responses((status = 200, description = "The Prometheus text format", content_type = "text/plain", body = String)))]
async fn metrics(State(state): State<AppState>) -> Response {
    let text = state
        .metrics
        .render(state.scheduler.queued(), state.scheduler.running());
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        text,
    )
        .into_response()
}

/// A readable page of the document, rendered on the server (no scripts, nothing fetched
/// from elsewhere).
async fn docs() -> Html<String> {
    Html(render_docs(&ApiDoc::openapi()))
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

fn render_docs(doc: &utoipa::openapi::OpenApi) -> String {
    let json = serde_json::to_value(doc).unwrap_or_default();
    let mut html = String::from(
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>Floom runtime API</title>\
         <style>body{font:15px/1.5 system-ui,sans-serif;max-width:60rem;margin:2rem auto;padding:0 1rem;color:#222}\
         h2{margin-top:2.5rem;border-bottom:1px solid #ddd}.op{margin:1.2rem 0;padding:.6rem 1rem;border-left:4px solid #888;background:#fafafa}\
         .m{font-weight:bold;text-transform:uppercase;margin-right:.5rem}.get{color:#176}.post{color:#714}.put{color:#741}.delete{color:#a11}\
         code{background:#eee;padding:0 .2rem}details pre{font-size:13px;overflow:auto}</style></head><body>",
    );
    html.push_str(&format!(
        "<h1>{}</h1><p>{}</p><p>The machine-readable document is at <a href=\"/openapi.json\">/openapi.json</a>.</p>",
        escape(json["info"]["title"].as_str().unwrap_or("API")),
        escape(json["info"]["description"].as_str().unwrap_or("")),
    ));
    let paths = json["paths"].as_object().cloned().unwrap_or_default();
    for tag in json["tags"].as_array().cloned().unwrap_or_default() {
        let name = tag["name"].as_str().unwrap_or_default();
        html.push_str(&format!(
            "<h2>{}</h2><p>{}</p>",
            escape(name),
            escape(tag["description"].as_str().unwrap_or(""))
        ));
        for (path, item) in &paths {
            for (method, op) in item.as_object().into_iter().flatten() {
                let tagged = op["tags"]
                    .as_array()
                    .is_some_and(|t| t.iter().any(|t| t == name));
                if !tagged {
                    continue;
                }
                html.push_str(&format!(
                    "<div class=\"op\"><span class=\"m {method}\">{method}</span><code>{}</code><p>{}</p>",
                    escape(path),
                    escape(
                        op["summary"]
                            .as_str()
                            .or(op["description"].as_str())
                            .unwrap_or("")
                    ),
                ));
                if let Some(params) = op["parameters"].as_array() {
                    html.push_str("<p>Parameters: ");
                    let list: Vec<String> = params
                        .iter()
                        .map(|p| {
                            format!(
                                "<code>{}</code> ({}) {}",
                                escape(p["name"].as_str().unwrap_or("")),
                                escape(p["in"].as_str().unwrap_or("")),
                                escape(p["description"].as_str().unwrap_or(""))
                            )
                        })
                        .collect();
                    html.push_str(&list.join("; "));
                    html.push_str("</p>");
                }
                let statuses: Vec<String> = op["responses"]
                    .as_object()
                    .into_iter()
                    .flatten()
                    .map(|(status, r)| {
                        format!(
                            "<code>{}</code> {}",
                            escape(status),
                            escape(r["description"].as_str().unwrap_or(""))
                        )
                    })
                    .collect();
                html.push_str(&format!("<p>Responses: {}</p>", statuses.join("; ")));
                html.push_str(&format!(
                    "<details><summary>Details</summary><pre>{}</pre></details></div>",
                    escape(&serde_json::to_string_pretty(op).unwrap_or_default())
                ));
            }
        }
    }
    html.push_str(&format!(
        "<h2>Schemas</h2><pre>{}</pre></body></html>",
        escape(&serde_json::to_string_pretty(&json["components"]["schemas"]).unwrap_or_default())
    ));
    html
}
