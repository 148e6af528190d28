//! The SSE event payloads (SPEC section 4, Streaming): every `data` is JSON that repeats
//! the event's type, so it stands alone in the store, in SSE and in logs.

use floom_runtime::{Event, RunError, Status};
use serde::Serialize;
use serde_json::value::RawValue;

use crate::store::{ExecStatus, FileRecord, StoredEvent};

fn event(execution_id: &str, seq: i64, kind: &str, data: &impl Serialize) -> StoredEvent {
    StoredEvent {
        execution_id: execution_id.to_owned(),
        seq,
        kind: kind.to_owned(),
        // Serializing these plain structs cannot fail.
        data: serde_json::to_string(data).unwrap_or_else(|_| "{}".to_owned()),
    }
}

/// `start`: the execution is running (again, on a retry).
pub fn start(execution_id: &str, seq: i64, attempt: i64) -> StoredEvent {
    #[derive(Serialize)]
    struct Start {
        r#type: &'static str,
        status: ExecStatus,
        attempt: i64,
    }
    event(
        execution_id,
        seq,
        "start",
        &Start {
            r#type: "start",
            status: ExecStatus::Running,
            attempt,
        },
    )
}

/// A `chunk` or `log` event from the sandbox.
pub fn streamed(execution_id: &str, seq: i64, streamed: &Event) -> StoredEvent {
    let kind = match streamed {
        Event::Chunk { .. } => "chunk",
        Event::Log { .. } => "log",
    };
    // `Event` serializes with its `type` tag already.
    event(execution_id, seq, kind, streamed)
}

/// The artifacts a run left, once it has ended (before its terminal event). Their
/// signed URLs are not in it: they expire, and are made afresh by each read of the
/// execution.
pub fn artifact(execution_id: &str, seq: i64, artifacts: &[FileRecord]) -> StoredEvent {
    #[derive(Serialize)]
    struct Artifact<'a> {
        name: &'a str,
        size: i64,
        content_type: &'a str,
        sha256: &'a str,
    }
    #[derive(Serialize)]
    struct Artifacts<'a> {
        r#type: &'static str,
        artifacts: Vec<Artifact<'a>>,
    }
    event(
        execution_id,
        seq,
        "artifact",
        &Artifacts {
            r#type: "artifact",
            artifacts: artifacts
                .iter()
                .map(|a| Artifact {
                    name: &a.name,
                    size: a.size,
                    content_type: &a.content_type,
                    sha256: &a.sha256,
                })
                .collect(),
        },
    )
}

/// A log line from the host about this execution.
pub fn host_log(execution_id: &str, seq: i64, line: &str) -> StoredEvent {
    #[derive(Serialize)]
    struct Log<'a> {
        r#type: &'static str,
        stream: &'static str,
        level: &'static str,
        line: &'a str,
    }
    event(
        execution_id,
        seq,
        "log",
        &Log {
            r#type: "log",
            stream: "host",
            level: "warn",
            line,
        },
    )
}

/// `end`: the execution succeeded.
pub fn end(
    execution_id: &str,
    seq: i64,
    output: Option<&RawValue>,
    duration_ms: f64,
) -> StoredEvent {
    #[derive(Serialize)]
    struct End<'a> {
        r#type: &'static str,
        status: Status,
        output: Option<&'a RawValue>,
        duration_ms: f64,
    }
    event(
        execution_id,
        seq,
        "end",
        &End {
            r#type: "end",
            status: Status::Succeeded,
            output,
            duration_ms,
        },
    )
}

/// `error`: the execution ended without success.
pub fn error(execution_id: &str, seq: i64, status: ExecStatus, error: &RunError) -> StoredEvent {
    #[derive(Serialize)]
    struct Error<'a> {
        r#type: &'static str,
        status: ExecStatus,
        error: &'a RunError,
    }
    event(
        execution_id,
        seq,
        "error",
        &Error {
            r#type: "error",
            status,
            error,
        },
    )
}

/// `approval`: the run's code succeeded and its output awaits a person's decision
/// (SPEC section 11). `approval` is the execution's approval as the API shows it.
pub fn approval(execution_id: &str, seq: i64, approval: &RawValue) -> StoredEvent {
    #[derive(Serialize)]
    struct Approval<'a> {
        r#type: &'static str,
        status: ExecStatus,
        approval: &'a RawValue,
    }
    event(
        execution_id,
        seq,
        "approval",
        &Approval {
            r#type: "approval",
            status: ExecStatus::AwaitingApproval,
            approval,
        },
    )
}

/// `decision`: a person decided (or the approval expired); what follows is the end, or
/// with `then`, the next step's `start`.
pub fn decision(execution_id: &str, seq: i64, approval: &RawValue) -> StoredEvent {
    #[derive(Serialize)]
    struct Decision<'a> {
        r#type: &'static str,
        approval: &'a RawValue,
    }
    event(
        execution_id,
        seq,
        "decision",
        &Decision {
            r#type: "decision",
            approval,
        },
    )
}
