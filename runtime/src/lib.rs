//! Floom's sandbox runtime: compile a WebAssembly component once, run it many times,
//! each run in a fresh, tightly limited sandbox.
//!
//! The pieces, in the order a run meets them:
//!
//! - [`Engine`] (one per process) configures wasmtime for untrusted code: Cranelift,
//!   epoch interruption driven by its own ticker thread, the pooling allocator, optional
//!   fuel, and an on-disk cache of compiled components.
//! - [`Manifest`] is a parsed `floom.toml`; [`Manifest::validate`] checks it.
//! - [`Engine::compile`] turns component bytes into a [`CompiledApp`]: it checks that the
//!   bytes are a component, which of the two app worlds it exports ([`AppKind`]) and that
//!   it imports nothing the host lacks, and keeps an `InstancePre`.
//! - [`CompiledApp::run`] runs one [`RunRequest`] in a fresh store with the app's
//!   [`Limits`]: memory, wall-clock deadline, fuel, output caps. WASI grants nothing by
//!   default: no files, sockets, name lookup or host environment; `wasi:http` is linked
//!   only for apps whose manifest lists hosts, and what it makes the host hold counts
//!   against a per-run budget ([`Caps::http_memory_bytes`]). A run given [`RunFiles`]
//!   sees its input files read-only under `/in` and writes artifacts under `/out`,
//!   within [`Caps::artifact_bytes`] and [`Caps::artifact_files`]. [`Event`]s stream out
//!   while the guest runs, and the run ends in exactly one [`Outcome`].
//!
//! The runtime knows nothing of HTTP, storage or tokens.
//!
//! ```no_run
//! # async fn demo(component: &[u8]) -> anyhow::Result<()> {
//! use floom_runtime::{Engine, EngineConfig, Manifest, RunRequest};
//!
//! let engine = Engine::new(EngineConfig::default())?;
//! let manifest = Manifest::parse("slug = \"hello\"")?;
//! manifest.validate()?;
//! let app = engine.compile(manifest, component)?; // once per version
//!
//! let (events, mut rx) = tokio::sync::mpsc::channel(64);
//! let input = serde_json::value::to_raw_value(&serde_json::json!({ "name": "Ada" }))?;
//! let request = RunRequest::new(&app, "run", input)?.events(events);
//! let run = tokio::spawn(async move { app.run(request).await });
//! while let Some(event) = rx.recv().await {
//!     println!("{}", serde_json::to_string(&event)?); // chunks and logs, live
//! }
//! let outcome = run.await?;
//! println!("{} {:?}", outcome.status, outcome.output);
//! # Ok(()) }
//! ```

mod app;
mod atomic_file;
pub mod baseline;
mod cache;
mod engine;
mod event;
mod files;
#[doc(hidden)]
pub mod fuzzing;
mod http_budget;
mod manifest;
mod outbound;
mod outcome;
mod output;
mod sandbox;
mod sdk_host;
pub mod text;

pub use app::{
    AppKind, CompileInfo, CompiledApp, ComponentError, HANDLER_EXPORT, RequestError, RunRequest,
};
pub use atomic_file::write_atomically;
pub use engine::{Caps, Engine, EngineConfig};
pub use event::{Event, Level, LogStream};
pub use files::{ENTRY_BYTES, RunFiles};
pub use manifest::{
    Action, BuildSection, DEFAULT_ACTION, DEFAULT_MEMORY_MB, Limits, LimitsSection, MAX_TIMEOUT,
    Manifest, ManifestError, NetworkSection, is_action_name, is_secret_name, is_slug,
};
pub use outbound::{Destination, MAX_CONNECT, Stream, Unreachable, connect, is_public};
pub use outcome::{ErrorCode, Outcome, RunError, Status, Usage};
pub use output::RESULT_MARKER;
