//! Approvals (SPEC section 11): a person approves, edits or rejects an action's output
//! before it counts. The scheduler asks for an approval when an action with
//! `approval = true` succeeds ([`Request::pending`]); [`decide`] is the one way every
//! surface (REST, CLI, web page) decides one; [`expire`] ends those nobody decided in
//! time. The state lives in the store only, so a pending approval survives restarts.

use std::time::Duration;

use serde_json::Value;
use serde_json::value::RawValue;

use crate::api::Services;
use crate::api::auth::Caller;
use crate::api::error::ApiError;
use crate::api::timestamp;
use crate::schema::Rejection;
use crate::store::{
    Approval, Decided, Decision, DecisionNote, DynStore, ExecStatus, ExecutionRecord, Millis,
    now_ms,
};
use crate::tokens::Role;

/// How often [`expire`] looks for approvals past their time.
const EXPIRY_EVERY: Duration = Duration::from_secs(1);
/// The longest annotation or rejection reason kept.
pub const MAX_ANNOTATION: usize = 4096;

/// A run of an action whose output needs approval.
#[derive(Debug, Clone, Copy)]
pub struct Request<'a> {
    /// The action.
    pub action: &'a str,
    /// The execution's step it ran.
    pub step: i64,
    /// How long the decision may take.
    pub timeout: Duration,
}

impl Request<'_> {
    /// The approval to store for `output`, proposed at `now`, and when it expires.
    pub fn pending(&self, output: Option<&RawValue>, now: Millis) -> (Box<RawValue>, Millis) {
        let timeout = Millis::try_from(self.timeout.as_millis()).unwrap_or(Millis::MAX);
        let expires_at = now.saturating_add(timeout);
        let null = RawValue::from_string("null".to_owned()).expect("null is JSON");
        let approval = Approval {
            action: self.action.to_owned(),
            step: self.step,
            proposed_output: output.map_or(null, ToOwned::to_owned),
            requested_at: timestamp(now),
            expires_at: timestamp(expires_at),
            decision: None,
            decided_by: None,
            annotation: None,
            edited: false,
            decided_at: None,
        };
        // An `Approval` always serializes.
        let json = serde_json::value::to_raw_value(&approval)
            .unwrap_or_else(|_| RawValue::from_string("{}".to_owned()).expect("JSON"));
        (json, expires_at)
    }
}

/// What a person decided.
#[derive(Debug, Clone)]
pub enum Verdict {
    /// Approve, with the output as proposed or edited.
    Approve {
        /// An edited output, which must meet the action's `output_schema`.
        output: Option<Value>,
        /// A note for the record.
        annotation: Option<String>,
    },
    /// Reject.
    Reject {
        /// Why.
        reason: Option<String>,
    },
}

/// Whether `caller` may decide approvals of `app`: the admin, or an admin-role token
/// that covers it. Anyone else who can read the execution learns why not (403).
fn may_decide(caller: &Caller, app: &str) -> Result<(), ApiError> {
    match caller {
        Caller::Admin => Ok(()),
        Caller::Agent(token) if token.role == Role::Admin && token.covers(app) => Ok(()),
        _ => Err(ApiError::forbidden(format!(
            "deciding an approval needs the admin token or an admin-role token that covers \
             {app}; this one can read the pending approval but not decide it"
        ))),
    }
}

fn not_pending(id: &str, status: ExecStatus) -> ApiError {
    match status {
        ExecStatus::Queued | ExecStatus::Running => ApiError::conflict(format!(
            "{id} is {status}: it has no output awaiting approval yet"
        )),
        _ => ApiError::conflict(format!(
            "{id} is {status}: it is not awaiting approval (decided already, or it never asked)"
        )),
    }
}

fn note_text(text: Option<String>, what: &str) -> Result<Option<String>, ApiError> {
    match text {
        Some(text) if text.len() > MAX_ANNOTATION => Err(ApiError::invalid_input(format!(
            "\"{what}\" is {} bytes; at most {MAX_ANNOTATION} are kept",
            text.len()
        ))),
        Some(text) if text.trim().is_empty() => Ok(None),
        text => Ok(text),
    }
}

/// A schema's refusal of an approver's output, named as such.
fn refused(what: String, rejection: Rejection) -> ApiError {
    match rejection {
        Rejection::Invalid { problems, omitted } => {
            ApiError::invalid_inputs(what, problems, omitted)
        }
        other => ApiError::from(other),
    }
}

/// Decides `record` (which `caller` may read) for `caller`: checks who may decide, that
/// it awaits approval, and an edited output against the action's `output_schema` (and
/// with `then`, the approved output against the next action's `input_schema`); then
/// records the decision and queues the next step, if any. A refused decision leaves the
/// approval pending. Returns the execution as it is after the decision.
pub async fn decide(
    state: &Services,
    caller: &Caller,
    record: ExecutionRecord,
    verdict: Verdict,
) -> Result<ExecutionRecord, ApiError> {
    may_decide(caller, &record.app)?;
    if record.status != ExecStatus::AwaitingApproval {
        return Err(not_pending(&record.id, record.status));
    }
    let loaded = state
        .registry
        .version(&record.app, record.version)
        .await
        .map_err(|e| ApiError::internal(format!("the app could not be loaded: {e:#}")))?;
    let step_action = record.current_action().to_owned();
    let then = loaded
        .app
        .manifest()
        .action(&step_action)
        .and_then(|a| a.then.clone());
    let by = caller.identity();
    let (decision, note) = match verdict {
        Verdict::Reject { reason } => (
            Decision::Reject,
            DecisionNote {
                by,
                annotation: note_text(reason, "reason")?,
                edited: false,
            },
        ),
        Verdict::Approve { output, annotation } => {
            let edited = output.is_some();
            let output = match output {
                Some(output) => {
                    if let Some(schema) = loaded.output_schema(&step_action) {
                        state
                            .validations
                            .validate(schema, output)
                            .await
                            .map_err(|e| {
                                refused(
                                    format!(
                                        "the edited output does not match {step_action}'s \
                                     output_schema; the approval is still pending"
                                    ),
                                    e,
                                )
                            })?
                    } else {
                        output
                    }
                }
                None => proposed_output(&record)?,
            };
            if let Some(next) = &then {
                if !output.is_object() {
                    return Err(ApiError::invalid_input(format!(
                        "the approved output becomes the inputs of {next}, so it must be a JSON \
                         object; the approval is still pending"
                    )));
                }
                if let Some(schema) = loaded.input_schema(next) {
                    state
                        .validations
                        .validate(schema, output.clone())
                        .await
                        .map_err(|e| {
                            refused(
                                format!(
                                    "the approved output is not valid input for {next} (its \
                                 input_schema); the approval is still pending"
                                ),
                                e,
                            )
                        })?;
                }
            }
            (
                Decision::Approve {
                    output: output.to_string(),
                    then,
                },
                DecisionNote {
                    by,
                    annotation: note_text(annotation, "annotation")?,
                    edited,
                },
            )
        }
    };
    match state
        .store
        .decide(&record.id, decision, note, now_ms())
        .await?
    {
        Decided::Ended(record) => Ok(record),
        Decided::NextStep(record) => {
            state.scheduler.queue_stored(&record);
            Ok(record)
        }
        Decided::NotPending(status) => Err(not_pending(&record.id, status)),
        Decided::NotFound => Err(ApiError::not_found(format!("no execution {:?}", record.id))),
    }
}

/// The output awaiting approval, as JSON.
fn proposed_output(record: &ExecutionRecord) -> Result<Value, ApiError> {
    let approval: Approval = record
        .approval
        .as_deref()
        .map(serde_json::from_str)
        .transpose()
        .map_err(|e| ApiError::internal(format!("the stored approval is broken: {e}")))?
        .ok_or_else(|| not_pending(&record.id, record.status))?;
    serde_json::from_str(approval.proposed_output.get())
        .map_err(|e| ApiError::internal(format!("the stored proposed output is broken: {e}")))
}

/// Ends the approvals nobody decided in time (`timed_out`, `approval_expired`), every
/// second: the store holds when each expires, so none is missed across restarts.
pub async fn expire(store: DynStore) {
    let mut ticks = tokio::time::interval(EXPIRY_EVERY);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticks.tick().await;
        loop {
            match store.expire_approvals(now_ms()).await {
                Ok(ended) if ended.is_empty() => break,
                Ok(ended) => tracing::info!(executions = ended.len(), "approvals expired"),
                Err(e) => {
                    tracing::warn!("expiring approvals failed (retried later): {e:#}");
                    break;
                }
            }
        }
    }
}
