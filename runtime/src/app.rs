//! A compiled app: validated once, held as an `InstancePre`, run many times.

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use serde_json::value::RawValue;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use wasmtime::component::Component;
use wasmtime_wasi::p2::bindings::CommandPre;

use crate::engine::Engine;
use crate::event::Event;
use crate::files::RunFiles;
use crate::manifest::{Action, Limits, Manifest};
use crate::outcome::Outcome;
use crate::sandbox::{self, RunState};
use crate::sdk_host::AppPre;

/// The name of the export that makes a component an SDK app.
pub const HANDLER_EXPORT: &str = "floom:app/handler@0.1.0";

/// Why a component was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ComponentError {
    /// The bytes are not WebAssembly at all.
    #[error("not a WebAssembly file: it does not start with the `\\0asm` magic bytes")]
    NotWasm,
    /// A core module, not a component.
    #[error(
        "this is a core WebAssembly module, not a component: build it for `wasm32-wasip2` \
         (or wrap it with `wasm-tools component new`)"
    )]
    CoreModule,
    /// The component does not validate or compile.
    #[error("the component does not compile: {0}")]
    Invalid(String),
    /// Neither of the two app worlds is exported.
    #[error(
        "the component exports neither `{HANDLER_EXPORT}` (an SDK app) nor `wasi:cli/run@0.2` \
         (a command app)"
    )]
    NoEntryPoint,
    /// The component imports an interface the host does not provide.
    #[error("the component imports {0}, which Floom does not provide")]
    UnsupportedImport(String),
    /// The component compiles but cannot be started in a sandbox.
    #[error("the component does not start in a sandbox: {0}")]
    DoesNotStart(String),
}

/// Checks the preamble: WebAssembly magic, then the component (not core module) layer.
pub(crate) fn check_header(bytes: &[u8]) -> Result<(), ComponentError> {
    const MAGIC: &[u8] = b"\0asm";
    if !bytes.starts_with(MAGIC) || bytes.len() < 8 {
        return Err(ComponentError::NotWasm);
    }
    // Bytes 4..6 are the version, 6..8 the layer: 0 for core modules, 1 for components.
    match bytes[6..8] {
        [0, 0] => Err(ComponentError::CoreModule),
        [1, 0] => Ok(()),
        _ => Err(ComponentError::Invalid(
            "unknown WebAssembly layer in the header".into(),
        )),
    }
}

/// The two kinds of app, detected from what the component exports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AppKind {
    /// Exports `floom:app/handler`: built with the guest SDK.
    Sdk,
    /// Exports `wasi:cli/run`: a plain program reading stdin and writing stdout.
    Command,
}

impl fmt::Display for AppKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            AppKind::Sdk => "sdk",
            AppKind::Command => "command",
        })
    }
}

/// How a component got compiled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CompileInfo {
    /// Loaded from the on-disk cache rather than compiled.
    pub from_cache: bool,
    /// Time spent compiling or loading, validation included.
    pub elapsed: Duration,
}

pub(crate) enum Pre {
    Sdk(AppPre<RunState>),
    Command(CommandPre<RunState>),
}

/// A validated, compiled app, ready to run many times. Cheap to clone.
#[derive(Clone)]
pub struct CompiledApp {
    inner: Arc<AppInner>,
}

pub(crate) struct AppInner {
    pub engine: Engine,
    pub manifest: Manifest,
    /// `[network] allowed_hosts`, lowercased once.
    pub allowed_hosts: Arc<[String]>,
    pub limits: Limits,
    pub sha256: String,
    pub kind: AppKind,
    pub pre: Pre,
    pub metered: bool,
    pub compile: CompileInfo,
}

impl CompiledApp {
    pub(crate) fn new(
        engine: Engine,
        manifest: Manifest,
        component: Component,
        sha256: String,
        metered: bool,
        compile: CompileInfo,
    ) -> Result<Self, ComponentError> {
        let network = !manifest.network.allowed_hosts.is_empty();
        let instance_pre = engine.flavor(metered).link(&component, network)?;
        let (kind, pre) = if component.get_export_index(None, HANDLER_EXPORT).is_some() {
            let pre = AppPre::new(instance_pre)
                .map_err(|e| ComponentError::Invalid(format!("{HANDLER_EXPORT}: {e:#}")))?;
            (AppKind::Sdk, Pre::Sdk(pre))
        } else {
            let pre = CommandPre::new(instance_pre).map_err(|_| ComponentError::NoEntryPoint)?;
            (AppKind::Command, Pre::Command(pre))
        };
        let limits = manifest.limits(engine.config().max_memory_mb);
        let allowed_hosts = manifest
            .network
            .allowed_hosts
            .iter()
            .map(|h| h.to_ascii_lowercase())
            .collect();
        Ok(CompiledApp {
            inner: Arc::new(AppInner {
                engine,
                allowed_hosts,
                manifest,
                limits,
                sha256,
                kind,
                pre,
                metered,
                compile,
            }),
        })
    }

    /// Whether this is an SDK or a command app.
    pub fn kind(&self) -> AppKind {
        self.inner.kind
    }

    /// The manifest the app was compiled with.
    pub fn manifest(&self) -> &Manifest {
        &self.inner.manifest
    }

    /// Hex sha256 of the component bytes: the app version's content address.
    pub fn sha256(&self) -> &str {
        &self.inner.sha256
    }

    /// The action called `name`, if the app has it.
    pub fn action(&self, name: &str) -> Option<&Action> {
        self.inner.manifest.action(name)
    }

    /// The limits each run gets.
    pub fn limits(&self) -> Limits {
        self.inner.limits
    }

    /// Whether this app was compiled or loaded from the cache, and how long it took.
    pub fn compile_info(&self) -> CompileInfo {
        self.inner.compile
    }

    /// Starts the app in a fresh sandbox, exactly as a run would, without calling it:
    /// checks at publish time that it instantiates (and measures how fast). Bounded by
    /// the app's deadline, and by 10 s at most. Guest code runs here: call it where
    /// guests run, not on a thread that serves anything else.
    pub async fn probe(&self) -> Result<(), crate::RunError> {
        sandbox::probe(&self.inner).await
    }

    /// Runs the app once in a fresh sandbox. Events stream to the request's channel while
    /// the guest runs; every way the run can end comes back as an [`Outcome`].
    pub async fn run(&self, request: RunRequest) -> Outcome {
        sandbox::run(&self.inner, request).await
    }
}

/// wasmtime names the missing import in prose; keep its name when it can be found.
pub(crate) fn describe_missing_import(err: &wasmtime::Error) -> String {
    let text = format!("{err:#}");
    let mut parts = text.split('`');
    match (parts.next(), parts.next()) {
        (Some(_), Some(name)) if !name.is_empty() => format!("`{name}`"),
        _ => format!("something ({text})"),
    }
}

/// A request the runtime cannot run.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RequestError {
    /// The app has no action by that name.
    #[error("the app has no action {action:?} (it has: {available})")]
    UnknownAction {
        /// The action asked for.
        action: String,
        /// The actions the app has, comma-separated.
        available: String,
    },
    /// The input is not a JSON object.
    #[error("the input must be a JSON object")]
    InputNotObject,
}

/// One run of an app: what to run, where its events go, and how to stop it.
pub struct RunRequest {
    pub(crate) action: String,
    pub(crate) input: Box<RawValue>,
    pub(crate) secrets: HashMap<String, String>,
    pub(crate) events: Option<mpsc::Sender<Event>>,
    pub(crate) cancel: CancellationToken,
    pub(crate) timeout: Option<Duration>,
    pub(crate) files: Option<RunFiles>,
}

impl RunRequest {
    /// A run of `action` on `input` (a JSON object), checked against the app.
    pub fn new(
        app: &CompiledApp,
        action: &str,
        input: Box<RawValue>,
    ) -> Result<Self, RequestError> {
        if app.action(action).is_none() {
            let available: Vec<&str> = app.manifest().actions().map(|(name, _)| name).collect();
            return Err(RequestError::UnknownAction {
                action: action.to_owned(),
                available: available.join(", "),
            });
        }
        if !input.get().trim_start().starts_with('{') {
            return Err(RequestError::InputNotObject);
        }
        Ok(RunRequest {
            action: action.to_owned(),
            input,
            secrets: HashMap::new(),
            events: None,
            cancel: CancellationToken::new(),
            timeout: None,
            files: None,
        })
    }

    /// A request for the app's default action on `{}`, used to set up a probe's store.
    pub(crate) fn probe(manifest: &Manifest) -> Self {
        let action = manifest
            .actions()
            .next()
            .map_or(crate::DEFAULT_ACTION, |(name, _)| name)
            .to_owned();
        RunRequest {
            action,
            input: RawValue::from_string("{}".to_owned()).expect("{} is JSON"),
            secrets: HashMap::new(),
            events: None,
            cancel: CancellationToken::new(),
            timeout: None,
            files: None,
        }
    }

    /// Streams the run's events to `events` while it runs. A full channel slows the
    /// guest down rather than buffering without bound.
    pub fn events(mut self, events: mpsc::Sender<Event>) -> Self {
        self.events = Some(events);
        self
    }

    /// Stops the run when `cancel` fires, within about one epoch tick for a busy guest.
    pub fn cancel(mut self, cancel: CancellationToken) -> Self {
        self.cancel = cancel;
        self
    }

    /// Secret values by name. Only the names the manifest declares reach the guest.
    pub fn secrets(mut self, secrets: HashMap<String, String>) -> Self {
        self.secrets = secrets;
        self
    }

    /// Gives the run its folders: `/in` (read-only) and `/out` (within the artifact
    /// budget). Without them the guest sees no filesystem at all.
    pub fn files(mut self, files: RunFiles) -> Self {
        self.files = Some(files);
        self
    }

    /// A deadline shorter than the app's own; the shorter one wins.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers() {
        assert_eq!(check_header(b"hello world"), Err(ComponentError::NotWasm));
        assert_eq!(check_header(b"\0asm"), Err(ComponentError::NotWasm));
        assert_eq!(
            check_header(b"\0asm\x01\0\0\0"),
            Err(ComponentError::CoreModule)
        );
        assert_eq!(check_header(b"\0asm\x0d\0\x01\0"), Ok(()));
    }
}
