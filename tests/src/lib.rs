//! Shared helpers for Floom's integration tests: the paths of every guest component
//! (built from source by this crate's build script) and a way to run one.

use std::time::Duration;

use floom_runtime::{CompiledApp, Engine, EngineConfig, Event, Manifest, Outcome, RunRequest};
use tokio::sync::mpsc;

/// Paths of the built guest components and of the examples' manifests.
pub mod guests {
    include!(concat!(env!("OUT_DIR"), "/guests.rs"));
}

/// A manifest for a test guest: `slug` with one action per name, and extra TOML lines.
pub fn manifest(slug: &str, actions: &[&str], extra: &str) -> Manifest {
    let mut text = format!("slug = {slug:?}\n{extra}\n");
    for action in actions {
        text.push_str(&format!("[actions.{action}]\n"));
    }
    let manifest = Manifest::parse(&text).expect("test manifest parses");
    manifest.validate().expect("test manifest is valid");
    manifest
}

/// Compiles the component at `path` for `manifest`.
pub fn compile(engine: &Engine, manifest: Manifest, path: &str) -> CompiledApp {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("read {path}: {e}"));
    engine
        .compile(manifest, &bytes)
        .unwrap_or_else(|e| panic!("compile {path}: {e}"))
}

/// An engine with the default settings and a fast tick.
pub fn engine() -> Engine {
    Engine::new(EngineConfig {
        max_instances: 64,
        ..EngineConfig::default()
    })
    .expect("engine")
}

/// What a run produced: its events, in order, and its outcome.
pub struct Ran {
    /// Every event the run streamed.
    pub events: Vec<Event>,
    /// How it ended.
    pub outcome: Outcome,
}

impl Ran {
    /// The chunks' JSON texts.
    pub fn chunks(&self) -> Vec<String> {
        self.events
            .iter()
            .filter_map(|e| match e {
                Event::Chunk { data } => Some(data.get().to_owned()),
                Event::Log { .. } => None,
            })
            .collect()
    }

    /// The log lines.
    pub fn logs(&self) -> Vec<String> {
        self.events
            .iter()
            .filter_map(|e| match e {
                Event::Log { line, .. } => Some(line.clone()),
                Event::Chunk { .. } => None,
            })
            .collect()
    }

    /// The output parsed as JSON.
    pub fn output(&self) -> serde_json::Value {
        let raw = self.outcome.output.as_ref().expect("the run has an output");
        serde_json::from_str(raw.get()).expect("output is JSON")
    }

    /// The error code, as the API spells it.
    pub fn code(&self) -> &'static str {
        self.outcome
            .error
            .as_ref()
            .map_or("none", |e| e.code.as_str())
    }
}

/// Runs `action` of `app` on `input`, collecting every event, with an optional shorter
/// deadline.
pub async fn run(
    app: &CompiledApp,
    action: &str,
    input: serde_json::Value,
    timeout: Option<Duration>,
) -> Ran {
    let input = serde_json::value::to_raw_value(&input).expect("input serializes");
    let (tx, mut rx) = mpsc::channel(64);
    let mut request = RunRequest::new(app, action, input)
        .expect("valid request")
        .events(tx);
    if let Some(timeout) = timeout {
        request = request.timeout(timeout);
    }
    let collector = tokio::spawn(async move {
        let mut events = Vec::new();
        while let Some(event) = rx.recv().await {
            events.push(event);
        }
        events
    });
    let outcome = app.run(request).await;
    let events = collector.await.expect("collector");
    Ran { events, outcome }
}
