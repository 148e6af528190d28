//! Entry point for the `publish` fuzz target in `fuzz/` and for the regression test that
//! replays what it found (`host/tests/fuzz_regressions.rs`), so both exercise the same
//! code. Not part of the API: [`PublishHarness::publish`] panics when the server answers
//! in a way it must not, which is how the fuzzer notices.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context as _;
use axum::Router;
use axum::body::Body;
use axum::http::{HeaderValue, Request, StatusCode, header};
use floom_runtime::{Caps, Engine, EngineConfig, is_slug};
use serde_json::Value;
use tower::ServiceExt as _;

use crate::api::{self, ApiConfig, Services};
use crate::crypto::Sealer;
use crate::live::Live;
use crate::metrics::Metrics;
use crate::ratelimit::RateLimiter;
use crate::registry::Registry;
use crate::scheduler::{Guests, RunSupport, Scheduler, SchedulerConfig};
use crate::schema::ValidationPool;
use crate::store::{DynStore, SqliteStore};
use crate::tokens::Tokens;

/// The admin secret of the harness's server.
pub const ADMIN_TOKEN: &str = "fuzz-admin-secret";
/// The harness's component limit: small, so the fuzzer's inputs (4 KiB by default)
/// reach it, yet above the 186 bytes of the seed's valid component.
pub const MAX_COMPONENT: usize = 512;
/// The `Content-Type` of an input without a first line of its own.
pub const DEFAULT_CONTENT_TYPE: &str = "multipart/form-data; boundary=FUZZ";

/// The real API router over a real store, registry and engine in a scratch directory,
/// driven in-process through `tower::ServiceExt::oneshot`.
pub struct PublishHarness {
    router: Router,
    runtime: tokio::runtime::Runtime,
    dir: PathBuf,
}

impl PublishHarness {
    /// Sets up the server's state under `dir`, which it empties first and removes when
    /// the harness is dropped.
    pub fn new(dir: PathBuf) -> anyhow::Result<Self> {
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir)
            .with_context(|| format!("cannot create {}", dir.display()))?;
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let router = runtime.block_on(router(&dir))?;
        Ok(PublishHarness {
            router,
            runtime,
            dir,
        })
    }

    /// Sends `data` as a publish as the admin and checks the answer.
    ///
    /// The input's first line (up to 256 bytes) is the `Content-Type` (multipart
    /// boundary included) and the rest is the body; an input without such a line is all
    /// body, sent as [`DEFAULT_CONTENT_TYPE`]. Returns the answer's status.
    pub fn publish(&self, data: &[u8]) -> StatusCode {
        let (content_type, body) = match data.iter().take(257).position(|&b| b == b'\n') {
            Some(end) => (&data[..end], &data[end + 1..]),
            None => (DEFAULT_CONTENT_TYPE.as_bytes(), data),
        };
        let mut request = Request::post("/api/apps")
            .header(header::AUTHORIZATION, format!("Bearer {ADMIN_TOKEN}"))
            .body(Body::from(body.to_vec()))
            .expect("a valid request");
        if let Ok(value) = HeaderValue::from_bytes(content_type) {
            request.headers_mut().insert(header::CONTENT_TYPE, value);
        }
        self.runtime.block_on(async {
            let response = self
                .router
                .clone()
                .oneshot(request)
                .await
                .expect("the router is infallible");
            let status = response.status();
            let problem = response
                .headers()
                .get(header::CONTENT_TYPE)
                .is_some_and(|v| v == "application/problem+json");
            let body = axum::body::to_bytes(response.into_body(), usize::MAX)
                .await
                .expect("the answer body reads");
            let json: Value = serde_json::from_slice(&body).unwrap_or_else(|e| {
                panic!("{status}: the answer is not JSON ({e}): {body:?}");
            });
            check_answer(status, problem, &json);
            status
        })
    }
}

/// What the publish endpoint documents (see its OpenAPI responses): 200 and 201 with
/// the app, 400 and 413 as problems. 401 and 403 cannot happen to the admin; any 5xx
/// is a bug.
fn check_answer(status: StatusCode, problem: bool, json: &Value) {
    match status {
        StatusCode::OK | StatusCode::CREATED => {
            let slug = json["slug"].as_str().unwrap_or_default();
            assert!(is_slug(slug), "{status} with a bad slug: {json}");
            assert!(json["version"].as_i64().is_some_and(|v| v >= 1), "{json}");
        }
        StatusCode::BAD_REQUEST | StatusCode::PAYLOAD_TOO_LARGE => {
            assert!(problem, "{status} is not a problem document: {json}");
            assert_eq!(json["status"], status.as_u16(), "{json}");
            let code = json["code"].as_str().unwrap_or_default();
            let expected: &[&str] = if status == StatusCode::BAD_REQUEST {
                &["invalid_input", "invalid_manifest", "invalid_component"]
            } else {
                &["payload_too_large"]
            };
            assert!(
                expected.contains(&code),
                "{status} with code {code:?}: {json}"
            );
        }
        other => panic!("publish answered {other}, which it must not: {json}"),
    }
}

impl Drop for PublishHarness {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The API router as `floom serve` builds it (see `server.rs`), with small caps. The
/// scheduler is not started: publishing does not run anything.
async fn router(dir: &std::path::Path) -> anyhow::Result<Router> {
    let engine = Engine::new(EngineConfig {
        cache_dir: Some(dir.join("cache")),
        max_instances: 4,
        max_memory_mb: 64,
        caps: Caps::default(),
        ..EngineConfig::default()
    })?;
    let live = Arc::new(Live::default());
    let store: DynStore = Arc::new(SqliteStore::open(&dir.join("floom.db"), live.clone())?);
    let metrics = Arc::new(Metrics::default());
    let current = tokio::runtime::Handle::current();
    let lanes = crate::lanes::Lanes {
        fast: current.clone(),
        slow: current,
        budget: std::time::Duration::from_millis(10),
    };
    let guests = Guests::new(lanes, 1);
    let registry = Arc::new(Registry::new(
        engine,
        guests.clone(),
        store.clone(),
        crate::components::Components::open(dir.join("components"), None)?,
        metrics.clone(),
    ));
    let sealer = Arc::new(Sealer::load(dir)?);
    let files = Arc::new(crate::artifacts::Files::open(
        dir,
        Arc::new(crate::blobs::FsBlobs::open(dir.join("blobs"))?),
        crate::artifacts::FilesConfig::default(),
    )?);
    let tokens = Arc::new(Tokens::load(store.clone()).await?);
    let scheduler = Scheduler::new(
        store.clone(),
        registry.clone(),
        live.clone(),
        RunSupport {
            sealer: sealer.clone(),
            files: files.clone(),
        },
        metrics.clone(),
        SchedulerConfig {
            max_concurrent_runs: 1,
            max_runs_per_app: 1,
            max_queue: 1,
            max_queue_per_app: 1,
            max_queue_per_caller: 1,
        },
        guests,
    );
    let services = Arc::new(Services {
        store,
        registry,
        scheduler,
        live,
        admin_token: ADMIN_TOKEN.to_owned(),
        tokens,
        sealer,
        limiter: RateLimiter::new(0),
        validations: ValidationPool::new(1, || {})?,
        metrics,
        files,
        config: ApiConfig {
            max_component: MAX_COMPONENT,
            ..ApiConfig::default()
        },
    });
    Ok(api::router(services))
}
