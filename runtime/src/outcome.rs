//! How a run ended: every way out of the sandbox maps to one status and error code here.

use std::fmt;
use std::time::Duration;

use serde::Serialize;
use serde_json::value::RawValue;
use wasmtime::Trap;
use wasmtime_wasi::I32Exit;

/// Terminal status of an execution (SPEC section 3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// The app returned an output.
    Succeeded,
    /// The app failed: an error, trap, limit or non-zero exit.
    Failed,
    /// The wall-clock deadline passed.
    TimedOut,
    /// Someone cancelled the run.
    Cancelled,
}

impl Status {
    /// The status as the API spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Succeeded => "succeeded",
            Status::Failed => "failed",
            Status::TimedOut => "timed_out",
            Status::Cancelled => "cancelled",
        }
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why an execution did not succeed (SPEC section 3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    /// The app returned an error on purpose.
    AppError,
    /// A command app exited with a non-zero code.
    ExitCode,
    /// The guest trapped: a panic, `unreachable`, a stack overflow, a host-call budget, a
    /// `wasi:http` call from an app without a network grant.
    Trap,
    /// The guest asked for more memory than its limit, or made the host hold more for
    /// `wasi:http` than the run's budget or a fields map's limit.
    MemoryLimit,
    /// The guest used up its fuel (instruction budget).
    FuelExhausted,
    /// The wall-clock deadline passed.
    Timeout,
    /// The run was cancelled from outside.
    Cancelled,
    /// The output was larger than the output cap.
    OutputTooLarge,
    /// The sandbox could not be started.
    SandboxUnavailable,
    /// The server restarted while the run was in flight (set by the server, never by the
    /// runtime).
    HostRestarted,
    /// A person rejected the proposed output (set by the server).
    Rejected,
    /// Nobody decided on the proposed output in time (set by the server).
    ApprovalExpired,
}

impl ErrorCode {
    /// The code as the API spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::AppError => "app_error",
            ErrorCode::ExitCode => "exit_code",
            ErrorCode::Trap => "trap",
            ErrorCode::MemoryLimit => "memory_limit",
            ErrorCode::FuelExhausted => "fuel_exhausted",
            ErrorCode::Timeout => "timeout",
            ErrorCode::Cancelled => "cancelled",
            ErrorCode::OutputTooLarge => "output_too_large",
            ErrorCode::SandboxUnavailable => "sandbox_unavailable",
            ErrorCode::HostRestarted => "host_restarted",
            ErrorCode::Rejected => "rejected",
            ErrorCode::ApprovalExpired => "approval_expired",
        }
    }

    /// The terminal status an execution failing with this code ends in.
    pub fn status(self) -> Status {
        match self {
            ErrorCode::Timeout | ErrorCode::ApprovalExpired => Status::TimedOut,
            ErrorCode::Cancelled => Status::Cancelled,
            _ => Status::Failed,
        }
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The `error` object of an execution.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RunError {
    /// What kind of failure this is.
    pub code: ErrorCode,
    /// A human-readable explanation.
    pub message: String,
    /// For `app_error`: the code the app itself chose.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub app_code: Option<String>,
}

impl RunError {
    /// An error with `code` and `message`.
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        RunError {
            code,
            message: message.into(),
            app_code: None,
        }
    }
}

/// What a run used, for the execution's detail and for metrics.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Usage {
    /// Wall-clock time from the start of instantiation to the end of the run.
    #[serde(rename = "duration_ms", serialize_with = "as_millis")]
    pub duration: Duration,
    /// Peak linear memory over all of the component's memories, in bytes.
    pub memory_peak_bytes: u64,
    /// Fuel consumed, when the app runs with fuel metering.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fuel_consumed: Option<u64>,
    /// Events the guest produced (chunks and logs), including dropped ones.
    pub events: u64,
    /// Bytes the guest wrote to stdout.
    pub stdout_bytes: u64,
    /// Bytes the guest wrote to stderr.
    pub stderr_bytes: u64,
    /// What its writes under `/out` were charged against the artifact budget.
    #[serde(skip_serializing_if = "is_zero")]
    pub artifact_bytes: u64,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

/// Milliseconds with microsecond precision: runs often take well under one.
fn as_millis<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_f64(d.as_micros() as f64 / 1000.0)
}

/// How a run ended.
#[derive(Debug, Clone, Serialize)]
pub struct Outcome {
    /// The terminal status.
    pub status: Status,
    /// The output, when the run succeeded.
    pub output: Option<Box<RawValue>>,
    /// Why the run did not succeed.
    pub error: Option<RunError>,
    /// What the run used.
    #[serde(skip)]
    pub usage: Usage,
}

impl Outcome {
    /// A successful run.
    pub(crate) fn succeeded(output: Box<RawValue>) -> Self {
        Outcome {
            status: Status::Succeeded,
            output: Some(output),
            error: None,
            usage: Usage::default(),
        }
    }

    /// A run that ended with `error`.
    pub(crate) fn failed(error: RunError) -> Self {
        Outcome {
            status: error.code.status(),
            output: None,
            error: Some(error),
            usage: Usage::default(),
        }
    }
}

/// Returned by the memory limiter when a guest asks for more memory than its limit; a
/// plain error rather than a `Trap`, so it is recognised here by type.
#[derive(Debug, Clone, thiserror::Error)]
#[error("memory limit of {limit} bytes exceeded: the guest asked for {requested} bytes")]
pub(crate) struct MemoryLimitExceeded {
    pub limit: u64,
    pub requested: u64,
}

/// Returned by a `wasi:http` call that would take the run past its budget of host memory
/// (`crate::http_budget`); reported as `memory_limit`.
#[derive(Debug, Clone, thiserror::Error)]
#[error(
    "wasi:http host-memory budget (http_memory_bytes) of {limit} bytes exceeded: the guest's \
     fields, requests and bodies would hold {requested} bytes"
)]
pub(crate) struct HttpMemoryExceeded {
    pub limit: u64,
    pub requested: u64,
}

/// Returned by the stand-ins for `wasi:http` functions in an app whose manifest grants no
/// network (the component imports them, but nothing may be sent): names the function.
#[derive(Debug, thiserror::Error)]
#[error(
    "the app called `{0}` (wasi:http), but its manifest allows no network: list the hosts \
     it may reach under `[network] allowed_hosts`"
)]
pub(crate) struct NetworkNotGranted(pub String);

/// Returned when a run's folders (`/in`, `/out`) cannot be opened as the guest first
/// lists them: the host's failure, not the app's, so the run ends `sandbox_unavailable`
/// as it did when they were opened before the run.
#[derive(Debug, thiserror::Error)]
#[error("the run's folders could not be opened: {0}")]
pub(crate) struct FoldersUnavailable(pub String);

/// Returned by a host function when the guest made more host calls than its budget.
#[derive(Debug, thiserror::Error)]
#[error("host-call budget of {0} calls exhausted")]
pub(crate) struct HostCallBudgetExhausted(pub u64);

/// Where in the run a wasmtime error arose: instantiation failures that are not traps
/// mean the sandbox could not be set up; during the call they are guest faults.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Phase {
    Instantiate,
    Call,
}

/// Maps an error out of wasmtime to the SPEC's error codes. `memory_refused` is set when
/// the limiter refused a growth: whatever shape the failure then took inside the guest
/// (our error, or `unreachable` from its allocator), it is a memory limit.
pub(crate) fn classify_error(
    err: &wasmtime::Error,
    phase: Phase,
    memory_refused: Option<&MemoryLimitExceeded>,
    panic_message: Option<&str>,
) -> RunError {
    if let Some(limit) = err.downcast_ref::<MemoryLimitExceeded>().or(memory_refused) {
        return RunError::new(ErrorCode::MemoryLimit, limit.to_string());
    }
    if let Some(budget) = err.downcast_ref::<HttpMemoryExceeded>() {
        return RunError::new(ErrorCode::MemoryLimit, budget.to_string());
    }
    if let Some(
        wasmtime_wasi_http::FieldMapError::TotalSizeTooBig
        | wasmtime_wasi_http::FieldMapError::TooManyFields,
    ) = err.downcast_ref::<wasmtime_wasi_http::FieldMapError>()
    {
        // wasmtime-wasi-http traps rather than return a header error here.
        return RunError::new(
            ErrorCode::MemoryLimit,
            format!(
                "a wasi:http fields map passed its size limit of {} bytes (names, values and \
                 their overhead)",
                crate::http_budget::FIELDS_BYTES
            ),
        );
    }
    if let Some(write) = err.downcast_ref::<crate::output::WriteOverPermit>() {
        return RunError::new(ErrorCode::Trap, write.to_string());
    }
    if let Some(offline) = err.downcast_ref::<NetworkNotGranted>() {
        return RunError::new(ErrorCode::Trap, offline.to_string());
    }
    if let Some(exit) = err.downcast_ref::<I32Exit>() {
        return RunError::new(
            ErrorCode::ExitCode,
            format!("the app exited with code {}", exit.0),
        );
    }
    if let Some(budget) = err.downcast_ref::<HostCallBudgetExhausted>() {
        return RunError::new(ErrorCode::Trap, budget.to_string());
    }
    if let Some(trap) = err.downcast_ref::<Trap>() {
        return match trap {
            Trap::OutOfFuel => RunError::new(
                ErrorCode::FuelExhausted,
                "the app used up its fuel (instruction budget)",
            ),
            Trap::Interrupt => RunError::new(ErrorCode::Timeout, "the deadline passed"),
            Trap::StackOverflow => RunError::new(ErrorCode::Trap, "stack overflow"),
            Trap::UnreachableCodeReached if panic_message.is_some() => RunError::new(
                ErrorCode::Trap,
                format!("the app panicked: {}", panic_message.unwrap_or_default()),
            ),
            other => RunError::new(ErrorCode::Trap, other.to_string()),
        };
    }
    if let Some(folders) = err.downcast_ref::<FoldersUnavailable>() {
        return RunError::new(ErrorCode::SandboxUnavailable, folders.to_string());
    }
    if let Some(pool) = err.downcast_ref::<wasmtime::PoolConcurrencyLimitError>() {
        return RunError::new(
            ErrorCode::SandboxUnavailable,
            format!("no sandbox slot is free: {pool}"),
        );
    }
    match phase {
        Phase::Instantiate => RunError::new(
            ErrorCode::SandboxUnavailable,
            format!("the sandbox could not be started: {err:#}"),
        ),
        Phase::Call => RunError::new(ErrorCode::Trap, format!("{err:#}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_map_to_statuses() {
        assert_eq!(ErrorCode::Timeout.status(), Status::TimedOut);
        assert_eq!(ErrorCode::Cancelled.status(), Status::Cancelled);
        assert_eq!(ErrorCode::MemoryLimit.status(), Status::Failed);
        assert_eq!(ErrorCode::AppError.status(), Status::Failed);
    }

    #[test]
    fn traps_are_classified() {
        let err = wasmtime::Error::from(Trap::OutOfFuel);
        assert_eq!(
            classify_error(&err, Phase::Call, None, None).code,
            ErrorCode::FuelExhausted
        );
        let err = wasmtime::Error::from(Trap::StackOverflow);
        assert_eq!(
            classify_error(&err, Phase::Call, None, None).code,
            ErrorCode::Trap
        );
        let err = wasmtime::Error::from(Trap::UnreachableCodeReached);
        let e = classify_error(&err, Phase::Call, None, Some("boom"));
        assert_eq!(e.message, "the app panicked: boom");
    }

    #[test]
    fn a_refused_growth_wins_over_the_trap_it_caused() {
        let refused = MemoryLimitExceeded {
            limit: 10,
            requested: 20,
        };
        let err = wasmtime::Error::from(Trap::UnreachableCodeReached);
        let e = classify_error(&err, Phase::Call, Some(&refused), None);
        assert_eq!(e.code, ErrorCode::MemoryLimit);
    }

    #[test]
    fn the_http_budget_and_a_missing_network_grant_are_named() {
        let err = wasmtime::Error::new(HttpMemoryExceeded {
            limit: 100,
            requested: 200,
        });
        let e = classify_error(&err, Phase::Call, None, None);
        assert_eq!(e.code, ErrorCode::MemoryLimit);
        assert!(e.message.contains("http_memory_bytes"), "{}", e.message);
        let err = wasmtime::Error::new(NetworkNotGranted("wasi:http/types#f".into()));
        let e = classify_error(&err, Phase::Call, None, None);
        assert_eq!(e.code, ErrorCode::Trap);
        assert!(
            e.message.contains("[network] allowed_hosts"),
            "{}",
            e.message
        );
    }

    #[test]
    fn exits_and_setup_failures() {
        let err = wasmtime::Error::from(I32Exit(3));
        assert_eq!(
            classify_error(&err, Phase::Call, None, None).code,
            ErrorCode::ExitCode
        );
        let err = wasmtime::format_err!("no memory slot");
        assert_eq!(
            classify_error(&err, Phase::Instantiate, None, None).code,
            ErrorCode::SandboxUnavailable
        );
        // Folders opened as the guest first lists them fail as the host's, mid-call too.
        let err = wasmtime::Error::new(FoldersUnavailable("/data/runs/out-3: ENOENT".into()));
        let e = classify_error(&err, Phase::Call, None, None);
        assert_eq!(e.code, ErrorCode::SandboxUnavailable);
        assert!(e.message.contains("out-3"), "{}", e.message);
    }
}
