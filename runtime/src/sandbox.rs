//! One run in a fresh store: WASI context, limits, deadline, cancellation, and turning
//! the way it ended into an [`Outcome`].

use std::time::{Duration, Instant};

use serde_json::value::RawValue;
use wasmtime::component::ResourceTable;
use wasmtime::{ResourceLimiter, Store};
use wasmtime_wasi::p2::pipe::MemoryInputPipe;
use wasmtime_wasi::{I32Exit, WasiCtx, WasiCtxBuilder, WasiCtxView, WasiView};
use wasmtime_wasi_http::{WasiHttpCtx, WasiHttpCtxView, WasiHttpView};

use crate::app::{AppInner, AppKind, Pre, RunRequest};
use crate::event::{LogStream, MAX_ERROR_CODE, MAX_ERROR_MESSAGE, json_string};
use crate::files::{FilesBudgeted, Ledger, Preopens, SharedLedger};
use crate::http_budget::{HttpBudget, HttpBudgeted};
use crate::outbound::{NetworkPolicy, Outbound};
use crate::outcome::{
    ErrorCode, MemoryLimitExceeded, Outcome, Phase, RunError, Usage, classify_error,
};
use crate::output::{Captured, EventSink, LineRole, Marker, OutputPipe, PipeCaps};
use crate::sdk_host::HostState;
use crate::text::cut_in_place;

/// Random bytes a guest may ask for in one call (WASI's default is far larger).
const MAX_RANDOM_BYTES: u64 = 1 << 20;

/// Everything a store holds for one run.
pub(crate) struct RunState {
    wasi: WasiCtx,
    http: WasiHttpCtx,
    outbound: Outbound,
    http_budget: HttpBudget,
    table: ResourceTable,
    limiter: MemoryLimiter,
    ledger: SharedLedger,
    /// The run's `/in` and `/out`, opened when the guest first asks for them.
    preopens: Preopens,
    pub(crate) host: HostState,
    /// The epoch ticks while the store lives (its deadlines and yields need them).
    _ticking: Option<crate::engine::Ticking>,
}

impl FilesBudgeted for RunState {
    fn ledger(&self) -> &SharedLedger {
        &self.ledger
    }

    fn preopens(&mut self) -> &mut Preopens {
        &mut self.preopens
    }
}

impl WasiView for RunState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl WasiHttpView for RunState {
    fn http(&mut self) -> WasiHttpCtxView<'_> {
        WasiHttpCtxView {
            ctx: &mut self.http,
            table: &mut self.table,
            hooks: &mut self.outbound,
        }
    }
}

impl HttpBudgeted for RunState {
    fn http_budget(&mut self) -> &mut HttpBudget {
        &mut self.http_budget
    }
}

/// Enforces the app's memory limit over all of its memories together, and remembers a
/// refusal so the run is reported as `memory_limit` whatever the guest did next.
struct MemoryLimiter {
    limit: u64,
    used: u64,
    peak: u64,
    refused: Option<MemoryLimitExceeded>,
}

/// Most tables, memories and instances a component may create; generous for real
/// components, and a bound on what a hostile one can make the host allocate.
const MAX_TABLE_ELEMENTS: usize = 100_000;
const MAX_INSTANCES: usize = 64;
const MAX_TABLES: usize = 64;
const MAX_MEMORIES: usize = 16;

impl ResourceLimiter for MemoryLimiter {
    fn memory_growing(
        &mut self,
        current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        let total = self
            .used
            .saturating_sub(current as u64)
            .saturating_add(desired as u64);
        if total > self.limit {
            let refused = MemoryLimitExceeded {
                limit: self.limit,
                requested: total,
            };
            self.refused = Some(refused.clone());
            // Trap at once: a guest allocator that sees a failed growth would abort with
            // a bare `unreachable`, hiding the cause.
            return Err(wasmtime::Error::new(refused));
        }
        self.used = total;
        self.peak = self.peak.max(total);
        Ok(true)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        Ok(desired <= MAX_TABLE_ELEMENTS)
    }

    fn instances(&self) -> usize {
        MAX_INSTANCES
    }

    fn tables(&self) -> usize {
        MAX_TABLES
    }

    fn memories(&self) -> usize {
        MAX_MEMORIES
    }
}

/// How the guest call ended, before classification.
enum Ending {
    /// An SDK app returned output JSON.
    Output(String),
    /// An SDK app returned an error on purpose.
    AppError {
        code: String,
        message: String,
    },
    /// A command app finished with exit status 0.
    Exited,
    /// A command app finished with a failure status.
    ExitFailure,
    /// wasmtime reported an error (a trap, a limit, an exit code, a setup failure).
    Fault(wasmtime::Error, Phase),
    TimedOut(Duration),
    Cancelled,
}

pub(crate) async fn run(app: &AppInner, request: RunRequest) -> Outcome {
    let started = Instant::now();
    let config = app.engine.config();
    let caps = config.caps;
    let timeout = request
        .timeout
        .map_or(app.limits.timeout, |t| t.min(app.limits.timeout))
        .min(config.max_timeout);

    let sink = EventSink::new(request.events.clone(), caps.events).with_byte_cap(caps.event_bytes);
    let stdout_role = match app.kind {
        AppKind::Command => LineRole::Chunks,
        AppKind::Sdk => LineRole::Logs(LogStream::Stdout),
    };
    let pipe_caps = |capture| PipeCaps {
        capture,
        chunk: caps.chunk_bytes,
        output: caps.output_bytes,
    };
    let stdout = OutputPipe::new(stdout_role, pipe_caps(caps.stdout_bytes), sink.clone());
    let stderr = OutputPipe::new(
        LineRole::Logs(LogStream::Stderr),
        pipe_caps(caps.stderr_bytes),
        sink.clone(),
    );

    let mut store = match new_store(app, &request, &stdout, &stderr, &sink, started + timeout) {
        Ok(store) => store,
        Err(e) => return Outcome::failed(e),
    };
    let ending = {
        let guest = call_guest(&app.pre, &mut store, &request.action, request.input.get());
        tokio::select! {
            biased;
            () = request.cancel.cancelled() => Ending::Cancelled,
            () = tokio::time::sleep(timeout) => Ending::TimedOut(timeout),
            ending = guest => ending,
        }
    };

    let stdout = stdout.finish();
    let stderr = stderr.finish();
    let limiter = &store.data().limiter;
    let mut outcome = classify(ending, app, &stdout, &stderr, limiter.refused.as_ref());
    // Messages built from wasmtime's errors can quote the guest too.
    if let Some(error) = &mut outcome.error {
        cut_in_place(&mut error.message, MAX_ERROR_MESSAGE);
    }
    outcome.usage = Usage {
        duration: started.elapsed(),
        memory_peak_bytes: limiter.peak,
        fuel_consumed: app
            .limits
            .fuel
            .filter(|_| app.metered)
            .map(|initial| initial.saturating_sub(store.get_fuel().unwrap_or(0))),
        events: sink.produced(),
        stdout_bytes: stdout.total,
        stderr_bytes: stderr.total,
        artifact_bytes: crate::files::used(&store.data().ledger),
    };
    drop(store);
    // Everything the guest produced reaches the caller before the outcome does.
    sink.flush().await;
    outcome
}

/// The longest a probe may take, whatever the app's own deadline: starting a component
/// (its start function and the adapter's setup) takes microseconds when it is not
/// hostile.
pub(crate) const PROBE_TIMEOUT: Duration = Duration::from_secs(10);

/// Instantiates the app in a store set up as for a run, without calling it, under the
/// app's limits and deadline (at most [`PROBE_TIMEOUT`]): a start function that loops
/// forever is stopped there.
pub(crate) async fn probe(app: &AppInner) -> Result<(), RunError> {
    let caps = app.engine.config().caps;
    let sink = EventSink::new(None, caps.events);
    let pipe_caps = PipeCaps {
        capture: caps.stdout_bytes,
        chunk: caps.chunk_bytes,
        output: caps.output_bytes,
    };
    let stdout = OutputPipe::new(LineRole::Logs(LogStream::Stdout), pipe_caps, sink.clone());
    let stderr = OutputPipe::new(LineRole::Logs(LogStream::Stderr), pipe_caps, sink.clone());
    let request = RunRequest::probe(&app.manifest);
    let timeout = app.limits.timeout.min(PROBE_TIMEOUT);
    let mut store = new_store(
        app,
        &request,
        &stdout,
        &stderr,
        &sink,
        Instant::now() + timeout,
    )?;
    let instantiate = async {
        match &app.pre {
            Pre::Sdk(pre) => pre.instantiate_async(&mut store).await.map(|_| ()),
            Pre::Command(pre) => pre.instantiate_async(&mut store).await.map(|_| ()),
        }
    };
    let Ok(result) = tokio::time::timeout(timeout, instantiate).await else {
        return Err(RunError::new(
            ErrorCode::Timeout,
            format!(
                "starting it took longer than {} s (does its start function loop?)",
                timeout.as_secs_f64()
            ),
        ));
    };
    let refused = store.data().limiter.refused.clone();
    result.map_err(|e| {
        let mut error = classify_error(&e, Phase::Instantiate, refused.as_ref(), None);
        cut_in_place(&mut error.message, MAX_ERROR_MESSAGE);
        error
    })
}

fn new_store(
    app: &AppInner,
    request: &RunRequest,
    stdout: &OutputPipe,
    stderr: &OutputPipe,
    sink: &EventSink,
    deadline: Instant,
) -> Result<Store<RunState>, RunError> {
    let config = app.engine.config();
    let caps = config.caps;
    // Declared secrets only, whatever the caller passed.
    let secrets: Vec<(String, String)> = app
        .manifest
        .secrets
        .iter()
        .filter_map(|name| Some((name.clone(), request.secrets.get(name)?.clone())))
        .collect();

    // The builder starts empty: stdin closed, no args, env, preopens or sockets. We add
    // only what the app is owed.
    let mut wasi = WasiCtxBuilder::new();
    wasi.stdout(stdout.clone())
        .stderr(stderr.clone())
        .env("FLOOM_ACTION", &request.action)
        .arg(&app.manifest.slug)
        .allow_tcp(false)
        .allow_udp(false)
        .allow_ip_name_lookup(false)
        // The run's folders are on local disk: a file call takes microseconds, less
        // than handing it to a blocking thread and back (which made a guest looping on
        // refused creations cost ~300 µs a try).
        .allow_blocking_current_thread(true)
        .max_random_size(MAX_RANDOM_BYTES);
    if app.kind == AppKind::Command {
        // A command app's only channels: the inputs on stdin, secrets in its environment.
        wasi.stdin(MemoryInputPipe::new(request.input.get().to_owned()));
        wasi.envs(&secrets);
    }
    let artifact_bytes = app
        .limits
        .artifacts_bytes
        .map_or(caps.artifact_bytes, |b| b.min(caps.artifact_bytes));
    let mut table = ResourceTable::new();
    table.set_max_capacity(caps.resources);

    let flavor = app.engine.flavor(app.metered);
    let mut store = Store::new(
        &flavor.engine,
        RunState {
            wasi: wasi.build(),
            http: crate::http_budget::http_ctx(),
            outbound: Outbound::new(
                NetworkPolicy {
                    allowed_hosts: app.allowed_hosts.clone(),
                    allow_private: config.allow_private_network,
                    max_requests: caps.http_requests,
                    max_response_bytes: caps.http_response_bytes,
                },
                sink.clone(),
                deadline,
            ),
            http_budget: HttpBudget::new(caps.http_memory_bytes),
            table,
            limiter: MemoryLimiter {
                limit: app.limits.memory_bytes,
                used: 0,
                peak: 0,
                refused: None,
            },
            ledger: Ledger::new(artifact_bytes, caps.artifact_files, sink.clone()),
            preopens: Preopens::new(request.files.clone()),
            host: HostState {
                sink: sink.clone(),
                secrets,
                chunk_cap: caps.chunk_bytes,
                calls: 0,
                call_budget: caps.host_calls,
            },
            _ticking: app.engine.ticking(),
        },
    );
    store.limiter(|state| &mut state.limiter);
    // Yield to the executor at every epoch tick: a busy guest shares its thread, and the
    // deadline and cancel branches of the run's `select!` get to fire.
    store.set_epoch_deadline(1);
    store.epoch_deadline_async_yield_and_update(1);
    if let (true, Some(fuel)) = (app.metered, app.limits.fuel) {
        // The metered engine always has fuel enabled, so this cannot fail.
        let _ = store.set_fuel(fuel);
    }
    Ok(store)
}

async fn call_guest(pre: &Pre, store: &mut Store<RunState>, action: &str, input: &str) -> Ending {
    match pre {
        Pre::Sdk(pre) => {
            let app = match pre.instantiate_async(&mut *store).await {
                Ok(app) => app,
                Err(e) => return Ending::Fault(e, Phase::Instantiate),
            };
            match app
                .floom_app_handler()
                .call_run(&mut *store, action, input)
                .await
            {
                Ok(Ok(output)) => Ending::Output(output),
                Ok(Err(mut e)) => {
                    // Bounded here, where they enter the host: they are stored twice
                    // (the execution and its error event) and shown in every answer.
                    cut_in_place(&mut e.code, MAX_ERROR_CODE);
                    cut_in_place(&mut e.message, MAX_ERROR_MESSAGE);
                    Ending::AppError {
                        code: e.code,
                        message: e.message,
                    }
                }
                Err(e) => Ending::Fault(e, Phase::Call),
            }
        }
        Pre::Command(pre) => {
            let command = match pre.instantiate_async(&mut *store).await {
                Ok(command) => command,
                Err(e) => return Ending::Fault(e, Phase::Instantiate),
            };
            match command.wasi_cli_run().call_run(&mut *store).await {
                Ok(Ok(())) => Ending::Exited,
                Ok(Err(())) => Ending::ExitFailure,
                Err(e) if e.downcast_ref::<I32Exit>().is_some_and(|exit| exit.0 == 0) => {
                    Ending::Exited
                }
                Err(e) => Ending::Fault(e, Phase::Call),
            }
        }
    }
}

/// Every way a run can end, mapped to a status, output and error in one place.
fn classify(
    ending: Ending,
    app: &AppInner,
    stdout: &Captured,
    stderr: &Captured,
    memory_refused: Option<&MemoryLimitExceeded>,
) -> Outcome {
    let output_cap = app.engine.config().caps.output_bytes;
    match ending {
        Ending::Output(text) if text.len() > output_cap => {
            output_too_large(text.len() as u64, output_cap)
        }
        Ending::Output(text) => match RawValue::from_string(text) {
            Ok(output) => Outcome::succeeded(output),
            Err(e) => Outcome::failed(RunError::new(
                ErrorCode::AppError,
                format!("the app returned an output that is not valid JSON: {e}"),
            )),
        },
        Ending::AppError { code, message } => Outcome::failed(RunError {
            code: ErrorCode::AppError,
            message,
            app_code: Some(code),
        }),
        Ending::Exited => command_output(stdout, output_cap),
        Ending::ExitFailure => Outcome::failed(RunError::new(
            ErrorCode::ExitCode,
            "the app exited with a failure status",
        )),
        Ending::Fault(err, phase) => Outcome::failed(classify_error(
            &err,
            phase,
            memory_refused,
            panic_message(&stderr.recent).as_deref(),
        )),
        Ending::TimedOut(limit) => Outcome::failed(RunError::new(
            ErrorCode::Timeout,
            format!("the run passed its {} s deadline", limit.as_secs_f64()),
        )),
        Ending::Cancelled => {
            Outcome::failed(RunError::new(ErrorCode::Cancelled, "the run was cancelled"))
        }
    }
}

/// A command app's output (SPEC section 2): the last `__FLOOM_RESULT__` line if there is
/// one, else all of stdout as JSON, else stdout as a string.
pub(crate) fn command_output(stdout: &Captured, output_cap: usize) -> Outcome {
    match &stdout.marker {
        Some(Marker::TooLarge) => Outcome::failed(RunError::new(
            ErrorCode::OutputTooLarge,
            format!("the result line is over the {output_cap} byte output cap"),
        )),
        Some(Marker::Found(json)) => Outcome::succeeded(json_or_string(json)),
        None if stdout.total > output_cap as u64 || stdout.total > stdout.capture.len() as u64 => {
            output_too_large(stdout.total, output_cap)
        }
        None if stdout.capture.iter().all(u8::is_ascii_whitespace) => {
            Outcome::succeeded(RawValue::from_string("null".into()).expect("null is JSON"))
        }
        None => Outcome::succeeded(json_or_string(&stdout.capture)),
    }
}

fn output_too_large(size: u64, cap: usize) -> Outcome {
    Outcome::failed(RunError::new(
        ErrorCode::OutputTooLarge,
        format!("the output is {size} bytes, over the {cap} byte output cap"),
    ))
}

fn json_or_string(bytes: &[u8]) -> Box<RawValue> {
    let text = String::from_utf8_lossy(bytes);
    let trimmed = text.trim();
    match serde_json::from_str::<Box<RawValue>>(trimmed) {
        Ok(json) => json,
        Err(_) => json_string(text.trim_end_matches(['\n', '\r'])),
    }
}

/// Rust guests print `thread '...' panicked at FILE:LINE:COL:` and the message on the
/// next line(s) to stderr before trapping; recover them for the error message.
fn panic_message(recent: &[String]) -> Option<String> {
    let start = recent
        .iter()
        .rposition(|line| line.contains("panicked at"))?;
    let location = recent[start]
        .split_once("panicked at ")
        .map(|(_, at)| at.trim_end_matches(':'))
        .unwrap_or_default();
    let message: Vec<&str> = recent[start + 1..]
        .iter()
        .map(String::as_str)
        .take_while(|line| !line.starts_with("note:"))
        .collect();
    Some(format!("{} (at {location})", message.join("\n")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn captured(capture: &[u8], marker: Option<Marker>) -> Captured {
        Captured {
            capture: capture.to_vec(),
            total: capture.len() as u64,
            marker,
            recent: Vec::new(),
        }
    }

    #[test]
    fn command_outputs() {
        let out = command_output(&captured(b"{\"a\": 1}\n", None), 100);
        assert_eq!(out.output.unwrap().get(), "{\"a\": 1}");
        let out = command_output(&captured(b"hello\nworld\n", None), 100);
        assert_eq!(out.output.unwrap().get(), "\"hello\\nworld\"");
        let out = command_output(&captured(b"", None), 100);
        assert_eq!(out.output.unwrap().get(), "null");
        let out = command_output(
            &captured(b"noise\n", Some(Marker::Found(b"[1,2]".to_vec()))),
            100,
        );
        assert_eq!(out.output.unwrap().get(), "[1,2]");
        let out = command_output(&captured(&[b'x'; 101], None), 100);
        assert_eq!(out.error.unwrap().code, ErrorCode::OutputTooLarge);
        let out = command_output(&captured(b"", Some(Marker::TooLarge)), 100);
        assert_eq!(out.error.unwrap().code, ErrorCode::OutputTooLarge);
    }

    #[test]
    fn panic_messages_are_recovered() {
        let recent: Vec<String> = [
            "",
            "thread '<unnamed>' panicked at src/lib.rs:10:5:",
            "boom",
            "note: run with `RUST_BACKTRACE=1` environment variable to display a backtrace",
        ]
        .map(String::from)
        .to_vec();
        assert_eq!(panic_message(&recent).unwrap(), "boom (at src/lib.rs:10:5)");
        assert_eq!(panic_message(&["plain".to_owned()]), None);
    }
}
