//! What a decision on an approval means, whichever store records it: the approval as
//! decided, where the execution goes next, and its terminal event.

use floom_runtime::{ErrorCode, RunError};
use serde_json::value::RawValue;

use super::{Approval, Decision, DecisionNote, ExecStatus, ExecutionRecord, Millis, StoredEvent};
use crate::api::timestamp;
use crate::events;

/// Where a decided execution goes.
pub(super) enum Next {
    /// Queued again for the `then` step, on the approved output.
    Step { action: String, inputs: String },
    /// Ended: its status, output and error.
    End {
        status: ExecStatus,
        output: Option<String>,
        error: Option<RunError>,
    },
}

/// Stamps `approval` with `decision` (by whom, with what note, when), and says where the
/// execution goes next.
pub(super) fn decide(
    approval: &mut Approval,
    decision: Decision,
    note: &DecisionNote,
    at: Millis,
) -> Next {
    approval.decision = Some(
        match decision {
            Decision::Approve { .. } => "approved",
            Decision::Reject => "rejected",
            Decision::Expire => "expired",
        }
        .to_owned(),
    );
    approval.decided_by = Some(note.by.clone()).filter(|by| !by.is_empty());
    approval.annotation.clone_from(&note.annotation);
    approval.edited = note.edited;
    approval.decided_at = Some(timestamp(at));
    match decision {
        Decision::Approve {
            output,
            then: Some(action),
        } => Next::Step {
            action,
            inputs: output,
        },
        Decision::Approve { output, then: None } => Next::End {
            status: ExecStatus::Succeeded,
            output: Some(output),
            error: None,
        },
        Decision::Reject => {
            let message = match &note.annotation {
                Some(reason) => format!("{} rejected the output: {reason}", note.by),
                None => format!("{} rejected the output", note.by),
            };
            Next::End {
                status: ExecStatus::Failed,
                output: None,
                error: Some(RunError::new(ErrorCode::Rejected, message)),
            }
        }
        Decision::Expire => Next::End {
            status: ExecStatus::TimedOut,
            output: None,
            error: Some(RunError::new(
                ErrorCode::ApprovalExpired,
                format!(
                    "nobody approved or rejected the output by {}",
                    approval.expires_at
                ),
            )),
        },
    }
}

/// The terminal event of `record` ended as `status` with `output` or `error`, at `seq`.
pub(super) fn terminal(
    record: &ExecutionRecord,
    seq: i64,
    status: ExecStatus,
    output: Option<&str>,
    error: Option<&RunError>,
) -> anyhow::Result<StoredEvent> {
    Ok(match error {
        None => {
            let output = output
                .map(|o| RawValue::from_string(o.to_owned()))
                .transpose()?;
            // The run's own duration, as its usage recorded it (not the wait).
            let duration_ms = record
                .usage
                .as_deref()
                .and_then(|u| serde_json::from_str::<serde_json::Value>(u).ok())
                .and_then(|u| u.get("duration_ms")?.as_f64())
                .unwrap_or(0.0);
            events::end(&record.id, seq, output.as_deref(), duration_ms)
        }
        Some(error) => events::error(&record.id, seq, status, error),
    })
}
