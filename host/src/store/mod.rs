//! Durable state: apps and their versions, executions and their events.
//!
//! [`Store`] is what the API handlers and the scheduler use; [`SqliteStore`] implements it
//! on an embedded SQLite database. Events are published to live subscribers only after
//! they are committed, so a subscriber that reads the store and then follows the live
//! stream never sees a gap.

use std::collections::HashMap;
use std::fmt;
use std::str::FromStr;
use std::sync::Arc;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

mod decision;
mod hooks;
mod pg_approvals;
mod pg_hooks;
mod postgres;
mod sqlite;
mod sqlite_approvals;
mod sqlite_hooks;
mod takeback;

pub use hooks::{
    AfterAttempt, AttemptRecord, DeliveryHistory, DeliveryRecord, DeliveryState, DueDelivery,
    EVENT_TYPES, ScheduleRecord, SubscriptionRecord, TickClaim, TickTaken, TriggerRecord,
    event_type,
};
pub use postgres::{PgOptions, PgStore, migrate_url as migrate_postgres};
pub use sqlite::{CommitFailed, SqliteStore, StoreWork};

/// Unix time in milliseconds.
pub type Millis = i64;

/// The current time in unix milliseconds.
pub fn now_ms() -> Millis {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// An app and its current version.
#[derive(Debug, Clone)]
pub struct AppRecord {
    /// The app's slug.
    pub slug: String,
    /// When the app was first published.
    pub created_at: Millis,
    /// When its current version changed.
    pub updated_at: Millis,
    /// The current version (its `public` is the app's visibility: the manifest's, or
    /// what the operator last set).
    pub current: VersionRecord,
    /// Whether the operator paused it: it refuses new runs.
    pub paused: bool,
}

/// One immutable published version of an app.
#[derive(Debug, Clone)]
pub struct VersionRecord {
    /// The app's slug.
    pub slug: String,
    /// 1, 2, ... per app.
    pub version: i64,
    /// Hex sha256 of the component.
    pub sha256: String,
    /// The manifest text as published.
    pub manifest: String,
    /// `sdk` or `command`.
    pub kind: String,
    /// Whether anyone may run it.
    pub public: bool,
    /// When it was published.
    pub created_at: Millis,
}

/// What publishing a version needs.
#[derive(Debug, Clone)]
pub struct NewVersion {
    /// The app's slug.
    pub slug: String,
    /// Hex sha256 of the component.
    pub sha256: String,
    /// The manifest text.
    pub manifest: String,
    /// `sdk` or `command`.
    pub kind: String,
    /// Whether anyone may run it.
    pub public: bool,
}

/// The result of a publish: the app, and whether a new version was made (publishing the
/// current version again changes nothing).
#[derive(Debug, Clone)]
pub struct Published {
    /// The app after the publish.
    pub app: AppRecord,
    /// Whether this publish created a version.
    pub created: bool,
}

/// The state of an execution.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ExecStatus {
    /// Waiting for a sandbox.
    Queued,
    /// Running in a sandbox.
    Running,
    /// Its code succeeded; a person must approve, edit or reject the output (SPEC
    /// section 11). Not terminal.
    AwaitingApproval,
    /// Finished with an output.
    Succeeded,
    /// Finished with an error.
    Failed,
    /// Passed its deadline.
    TimedOut,
    /// Cancelled.
    Cancelled,
}

impl ExecStatus {
    /// Every status, in the order an execution can pass through them.
    pub const ALL: [ExecStatus; 7] = [
        ExecStatus::Queued,
        ExecStatus::Running,
        ExecStatus::AwaitingApproval,
        ExecStatus::Succeeded,
        ExecStatus::Failed,
        ExecStatus::TimedOut,
        ExecStatus::Cancelled,
    ];

    /// The status as the API spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            ExecStatus::Queued => "queued",
            ExecStatus::Running => "running",
            ExecStatus::AwaitingApproval => "awaiting_approval",
            ExecStatus::Succeeded => "succeeded",
            ExecStatus::Failed => "failed",
            ExecStatus::TimedOut => "timed_out",
            ExecStatus::Cancelled => "cancelled",
        }
    }

    /// Whether the execution is over.
    pub fn is_terminal(self) -> bool {
        !matches!(
            self,
            ExecStatus::Queued | ExecStatus::Running | ExecStatus::AwaitingApproval
        )
    }
}

impl From<floom_runtime::Status> for ExecStatus {
    fn from(status: floom_runtime::Status) -> Self {
        match status {
            floom_runtime::Status::Succeeded => ExecStatus::Succeeded,
            floom_runtime::Status::Failed => ExecStatus::Failed,
            floom_runtime::Status::TimedOut => ExecStatus::TimedOut,
            floom_runtime::Status::Cancelled => ExecStatus::Cancelled,
        }
    }
}

impl fmt::Display for ExecStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for ExecStatus {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(match s {
            "queued" => ExecStatus::Queued,
            "running" => ExecStatus::Running,
            "awaiting_approval" => ExecStatus::AwaitingApproval,
            "succeeded" => ExecStatus::Succeeded,
            "failed" => ExecStatus::Failed,
            "timed_out" => ExecStatus::TimedOut,
            "cancelled" => ExecStatus::Cancelled,
            other => {
                return Err(format!(
                    "unknown status {other:?} (one of queued, running, awaiting_approval, succeeded, \
                     failed, timed_out, cancelled)"
                ));
            }
        })
    }
}

/// How an execution started (SPEC section 12).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum TriggerSource {
    /// The REST API.
    Api,
    /// The `floom` CLI.
    Cli,
    /// An MCP `tools/call`.
    Mcp,
    /// An inbound webhook.
    Webhook,
    /// A web page.
    Ui,
    /// A schedule.
    Schedule,
}

impl TriggerSource {
    /// Every source.
    pub const ALL: [TriggerSource; 6] = [
        TriggerSource::Api,
        TriggerSource::Cli,
        TriggerSource::Mcp,
        TriggerSource::Webhook,
        TriggerSource::Ui,
        TriggerSource::Schedule,
    ];

    /// The source as the API spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            TriggerSource::Api => "api",
            TriggerSource::Cli => "cli",
            TriggerSource::Mcp => "mcp",
            TriggerSource::Webhook => "webhook",
            TriggerSource::Ui => "ui",
            TriggerSource::Schedule => "schedule",
        }
    }
}

impl FromStr for TriggerSource {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(match s {
            "api" => TriggerSource::Api,
            "cli" => TriggerSource::Cli,
            "mcp" => TriggerSource::Mcp,
            "webhook" => TriggerSource::Webhook,
            "ui" => TriggerSource::Ui,
            "schedule" => TriggerSource::Schedule,
            other => {
                return Err(format!(
                    "unknown trigger source {other:?} (one of api, cli, mcp, webhook, ui, schedule)"
                ));
            }
        })
    }
}

/// A new execution, written before its 202 is sent.
#[derive(Debug, Clone)]
pub struct NewExecution {
    /// `exec_...`
    pub id: String,
    /// The app's slug.
    pub app: String,
    /// The app version it runs.
    pub version: i64,
    /// The action.
    pub action: String,
    /// The inputs, as JSON text.
    pub inputs: String,
    /// sha256 of the view token.
    pub view_token_hash: String,
    /// When it was accepted.
    pub created_at: Millis,
    /// Set when a slot is already free: the execution is written as running (its first
    /// attempt started at this time) with its `start` event, saving a second write.
    pub started_at: Option<Millis>,
    /// How it started.
    pub trigger_source: TriggerSource,
    /// For an MCP `tools/call`: the call's key (see [`Store::unfinished_mcp_call`]).
    pub mcp_call: Option<String>,
    /// The URL the run's own notifications go to.
    pub webhook: Option<String>,
    /// For a scheduled run: its tick, claimed in the same transaction.
    pub tick: Option<TickClaim>,
}

/// An execution as stored.
#[derive(Debug, Clone)]
pub struct ExecutionRecord {
    /// Insertion order (the list cursor).
    pub n: i64,
    /// `exec_...`
    pub id: String,
    /// The app's slug.
    pub app: String,
    /// The app version it runs.
    pub version: i64,
    /// The action.
    pub action: String,
    /// Where it is.
    pub status: ExecStatus,
    /// The inputs, as JSON text.
    pub inputs: String,
    /// The output, as JSON text.
    pub output: Option<String>,
    /// The error, as JSON text.
    pub error: Option<String>,
    /// What the run used, as JSON text.
    pub usage: Option<String>,
    /// sha256 of the view token.
    pub view_token_hash: String,
    /// How many times it was started.
    pub attempts: i64,
    /// When it was accepted.
    pub created_at: Millis,
    /// When its last attempt started.
    pub started_at: Option<Millis>,
    /// When it ended.
    pub finished_at: Option<Millis>,
    /// How it started.
    pub trigger_source: TriggerSource,
    /// Its step: 1 for its own action, then one more per approved `then` step.
    pub step: i64,
    /// For a `then` step: the action it runs and its inputs (the approved output).
    pub step_run: Option<StepRun>,
    /// Its latest approval (SPEC section 11), as the API shows it (JSON text).
    pub approval: Option<String>,
}

impl ExecutionRecord {
    /// The action its current step runs.
    pub fn current_action(&self) -> &str {
        self.step_run.as_ref().map_or(&self.action, |s| &s.action)
    }

    /// The inputs of its current step.
    pub fn current_inputs(&self) -> &str {
        self.step_run.as_ref().map_or(&self.inputs, |s| &s.inputs)
    }
}

/// What a `then` step runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StepRun {
    /// The action.
    pub action: String,
    /// Its inputs, as JSON text: the approved output of the step before.
    pub inputs: String,
}

/// An execution as a list shows it: everything but its inputs and output, which may be
/// a megabyte each (a page of 200 would then be hundreds), so a list never carries
/// them.
#[derive(Debug, Clone)]
pub struct ExecutionSummary {
    /// Insertion order (the list cursor).
    pub n: i64,
    /// `exec_...`
    pub id: String,
    /// The app's slug.
    pub app: String,
    /// The app version it runs.
    pub version: i64,
    /// The action.
    pub action: String,
    /// Where it is.
    pub status: ExecStatus,
    /// The error, as JSON text (bounded by the runtime).
    pub error: Option<String>,
    /// What the run used, as JSON text.
    pub usage: Option<String>,
    /// How many times it was started.
    pub attempts: i64,
    /// When it was accepted.
    pub created_at: Millis,
    /// When its last attempt started.
    pub started_at: Option<Millis>,
    /// When it ended.
    pub finished_at: Option<Millis>,
    /// How it started.
    pub trigger_source: TriggerSource,
}

/// An execution as an export shows it: its summary and output.
#[derive(Debug, Clone)]
pub struct ExportedExecution {
    /// Everything but the inputs and output.
    pub summary: ExecutionSummary,
    /// The output, as JSON text.
    pub output: Option<String>,
}

/// One execution as a time series counts it.
#[derive(Debug, Clone, Copy)]
pub struct TimedExecution {
    /// When it was accepted.
    pub created_at: Millis,
    /// Where it is.
    pub status: ExecStatus,
    /// From start to end, once ended.
    pub duration_ms: Option<i64>,
}

/// One persisted event of an execution's stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredEvent {
    /// The execution.
    pub execution_id: String,
    /// 1, 2, ... per execution.
    pub seq: i64,
    /// `start`, `chunk`, `log`, `approval`, `decision`, `end` or `error`.
    pub kind: String,
    /// The SSE data: JSON that repeats the kind as `type`.
    pub data: String,
}

impl StoredEvent {
    /// Whether this event ends the stream.
    pub fn is_terminal(&self) -> bool {
        matches!(self.kind.as_str(), "end" | "error")
    }

    /// Whether someone waiting for the run's answer stops here: at its end, or when its
    /// output awaits a person's approval (the stream itself goes on to the end).
    pub fn ends_wait(&self) -> bool {
        self.is_terminal() || self.kind == "approval"
    }
}

/// Resolves once queued events are written (or their write failed, which the store
/// logs): what lets a producer wait for the store instead of queueing without bound.
#[derive(Debug)]
pub struct Appended(tokio::sync::oneshot::Receiver<()>);

impl Appended {
    /// A handle, and the sender that resolves it.
    pub fn new() -> (tokio::sync::oneshot::Sender<()>, Self) {
        let (tx, rx) = tokio::sync::oneshot::channel();
        (tx, Appended(rx))
    }

    /// Waits until the events are written.
    pub async fn written(self) {
        let _ = self.0.await;
    }
}

/// How a run ended, with its terminal event (or, for an action that needs approval, its
/// `approval` event).
#[derive(Debug, Clone)]
pub struct Finish {
    /// The terminal status, or [`ExecStatus::AwaitingApproval`].
    pub status: ExecStatus,
    /// The output, as JSON text.
    pub output: Option<String>,
    /// The error, as JSON text.
    pub error: Option<String>,
    /// What the run used, as JSON text.
    pub usage: Option<String>,
    /// When it ended.
    pub finished_at: Millis,
    /// The `end` or `error` event, or the `approval` event.
    pub event: StoredEvent,
    /// For a run awaiting approval: the approval, and when it expires.
    pub approval: Option<(String, Millis)>,
    /// The attempt that ran (its [`Started::attempt`]): the ending is recorded only
    /// while that attempt holds the execution, so an attempt whose lease was taken back
    /// cannot end the retry that followed it.
    pub attempt: i64,
    /// No other run was going on this host when it ended: no other write to share a
    /// commit with, so the store may commit this one at once rather than hand it to a
    /// batching writer (under load, waiting for the batch saves more than it costs).
    pub alone: bool,
}

/// An execution's approval as the API shows it and the store keeps it (SPEC section 11).
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Approval {
    /// The action whose output awaits (or awaited) the decision.
    pub action: String,
    /// The execution's step it belongs to (1 for its own action).
    pub step: i64,
    /// What the action returned.
    #[schema(value_type = Object)]
    pub proposed_output: Box<serde_json::value::RawValue>,
    /// When the decision was asked for (RFC 3339).
    pub requested_at: String,
    /// When it expires undecided (RFC 3339).
    pub expires_at: String,
    /// `approved`, `rejected` or `expired`, once decided.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub decision: Option<String>,
    /// Who decided: a token id, or `admin`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub decided_by: Option<String>,
    /// The approver's annotation, or the rejection's reason.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub annotation: Option<String>,
    /// Whether the approver edited the output.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub edited: bool,
    /// When it was decided (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub decided_at: Option<String>,
}

/// A decision on an execution awaiting approval (SPEC section 11).
#[derive(Debug, Clone)]
pub enum Decision {
    /// The output is approved (perhaps edited): it becomes the execution's output, or with
    /// `then`, the inputs of that action, run as the execution's next step.
    Approve {
        /// The approved output, as JSON text.
        output: String,
        /// The next step's action.
        then: Option<String>,
    },
    /// The output is rejected: the execution fails with `rejected`.
    Reject,
    /// Nobody decided in time: the execution times out with `approval_expired`.
    Expire,
}

/// Who decided, and why: what the approval records besides the decision.
#[derive(Debug, Clone, Default)]
pub struct DecisionNote {
    /// The token id, or `admin` (empty for an expiry).
    pub by: String,
    /// The annotation or the rejection's reason.
    pub annotation: Option<String>,
    /// Whether the output was edited.
    pub edited: bool,
}

/// What a decision did.
#[derive(Debug, Clone)]
pub enum Decided {
    /// The execution ended (approved without `then`, rejected or expired).
    Ended(ExecutionRecord),
    /// The approved output is queued as the execution's next step.
    NextStep(ExecutionRecord),
    /// It was not awaiting approval (decided already, or never asked): its status.
    NotPending(ExecStatus),
    /// No such execution.
    NotFound,
}

/// What starting an execution returned.
#[derive(Debug, Clone, Copy)]
pub struct Started {
    /// Which attempt this is (1 for the first).
    pub attempt: i64,
    /// The sequence number of the `start` event just written.
    pub seq: i64,
}

/// Filters and paging for the execution list.
#[derive(Debug, Clone, Default)]
pub struct ListExecutions {
    /// Only this app's.
    pub app: Option<String>,
    /// Only these apps' (the apps a scoped token covers); `None` for every app.
    pub apps: Option<Vec<String>>,
    /// Only this status.
    pub status: Option<ExecStatus>,
    /// Only those started this way.
    pub trigger_source: Option<TriggerSource>,
    /// Only those created at or after this time.
    pub since: Option<Millis>,
    /// Only those created before this time.
    pub until: Option<Millis>,
    /// Only executions inserted before this one (the cursor).
    pub before: Option<i64>,
    /// At most this many.
    pub limit: u32,
}

/// Filters and paging for the list of pending approvals.
#[derive(Debug, Clone, Default)]
pub struct ListApprovals {
    /// Only this app's.
    pub app: Option<String>,
    /// Only these apps' (the apps a scoped token covers); `None` for every app.
    pub apps: Option<Vec<String>>,
    /// Only executions inserted after this one (the cursor).
    pub after: Option<i64>,
    /// At most this many.
    pub limit: u32,
}

/// What recovery did at startup.
#[derive(Debug, Clone, Default)]
pub struct Recovery {
    /// Executions that were running and will be retried.
    pub retried: Vec<String>,
    /// Executions that were running on their second attempt and failed `host_restarted`.
    pub failed: Vec<String>,
    /// Every execution now queued, oldest first.
    pub queued: Vec<String>,
}

/// Durable state, shared by the API handlers and the scheduler.
#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// Adds a version of `slug` and makes it current. Publishing the same component and
    /// manifest as the current version returns it unchanged.
    async fn publish(&self, version: NewVersion) -> anyhow::Result<Published>;
    /// The app and its current version.
    async fn app(&self, slug: &str) -> anyhow::Result<Option<AppRecord>>;
    /// Every app, by slug.
    async fn apps(&self) -> anyhow::Result<Vec<AppRecord>>;
    /// One version of an app (also of a deleted app).
    async fn version(&self, slug: &str, version: i64) -> anyhow::Result<Option<VersionRecord>>;
    /// Deletes the app: its current version, its secrets and every token's grant to it;
    /// its queued executions are cancelled (returned, so the scheduler can forget them).
    /// Its versions and executions stay readable, and the slug stays retired (publishing
    /// it is refused with [`SlugRetired`]) until [`Store::purge_app`]. `None` if unknown.
    async fn delete_app(&self, slug: &str, at: Millis) -> anyhow::Result<Option<DeletedApp>>;
    /// Deletes what a deleted app left (its executions, their events, its versions) and
    /// frees its slug. False when the slug is neither an app nor retired; an error when
    /// the app is still live or has executions not yet ended.
    async fn purge_app(&self, slug: &str) -> anyhow::Result<bool>;

    /// Writes a new execution, queued (or running, with `started_at`), unless
    /// `idempotency` names a key this caller used within 24 h: then nothing is written
    /// and the earlier execution is returned.
    async fn insert_execution(
        &self,
        execution: NewExecution,
        idempotency: Option<IdempotencyKey>,
    ) -> anyhow::Result<Inserted>;
    /// Moves a queued execution to running and writes its `start` event. `None` when it
    /// is no longer queued (cancelled meanwhile).
    async fn start_execution(&self, id: &str, at: Millis) -> anyhow::Result<Option<Started>>;
    /// Queues streamed events (of one execution) to be written with a later batch of
    /// writes. The execution's [`Store::finish_execution`] is written after them; the
    /// returned handle tells when they are written, for a caller that wants to keep its
    /// backlog small.
    fn append_events(&self, events: Vec<StoredEvent>) -> Appended;
    /// Records the end of a running execution and its terminal event.
    async fn finish_execution(&self, id: &str, finish: Finish) -> anyhow::Result<()>;
    /// Records an execution that already ran (its first attempt, started at
    /// `e.started_at`), with its `start` event and its end, in one transaction: a sync
    /// run that ended before anything revealed it costs one commit instead of two. It
    /// must have streamed no events, so retention has nothing of it to prune: it is
    /// marked pruned at once (its start event stays beside its end; SQLite keeps both in
    /// the execution's row, one B-tree fewer per commit, and `events_after` reads them
    /// from there). `e` carries no idempotency key or schedule tick.
    async fn insert_finished(&self, e: NewExecution, finish: Finish) -> anyhow::Result<()>;
    /// Cancels a queued execution, writing its terminal event. False when it was not
    /// queued.
    async fn cancel_queued(&self, id: &str, at: Millis) -> anyhow::Result<bool>;
    /// One execution.
    async fn execution(&self, id: &str) -> anyhow::Result<Option<ExecutionRecord>>;
    /// The newest unfinished execution started by the MCP call `key` (the key it was
    /// inserted with), if any.
    async fn unfinished_mcp_call(&self, key: &str) -> anyhow::Result<Option<String>>;
    /// Executions, newest first, without their inputs and outputs.
    async fn executions(&self, filter: ListExecutions) -> anyhow::Result<Vec<ExecutionSummary>>;
    /// Events of `id` after sequence number `after`, in order, at most `limit`.
    async fn events_after(
        &self,
        id: &str,
        after: i64,
        limit: u32,
    ) -> anyhow::Result<Vec<StoredEvent>>;
    /// Every version of an app, oldest first.
    async fn versions(&self, slug: &str) -> anyhow::Result<Vec<VersionRecord>>;
    /// Makes an existing version current; `None` when the app or version is unknown.
    async fn set_current(&self, slug: &str, version: i64) -> anyhow::Result<Option<AppRecord>>;
    /// Execution counts and recent durations of an app.
    async fn stats(&self, slug: &str) -> anyhow::Result<AppStats>;
    /// When each app's newest execution was accepted, for the apps that have one.
    async fn last_runs(&self) -> anyhow::Result<HashMap<String, Millis>>;

    /// Adds an agent token.
    async fn insert_token(&self, token: TokenRecord) -> anyhow::Result<()>;
    /// Every agent token.
    async fn tokens(&self) -> anyhow::Result<Vec<TokenRecord>>;
    /// Revokes a token; false when unknown or already revoked.
    async fn revoke_token(&self, id: &str, at: Millis) -> anyhow::Result<bool>;

    /// Sets an app's secret.
    async fn put_secret(&self, app: &str, secret: SecretRecord) -> anyhow::Result<()>;
    /// Removes an app's secret; false when unknown.
    async fn delete_secret(&self, app: &str, name: &str) -> anyhow::Result<bool>;
    /// An app's secrets, by name.
    async fn secrets(&self, app: &str) -> anyhow::Result<Vec<SecretRecord>>;

    /// Deletes the streamed events (all but the terminal one) of some executions that
    /// finished before `finished_before`, a bounded amount per call; returns how many
    /// executions it pruned (0 when none are left).
    async fn prune_events(&self, finished_before: Millis) -> anyhow::Result<usize>;
    /// Records input files or artifacts (a row with the same execution, kind and name is
    /// replaced).
    async fn add_files(&self, files: Vec<FileRecord>) -> anyhow::Result<()>;
    /// An execution's input files and artifacts, inputs first, each by name.
    async fn files(&self, execution_id: &str) -> anyhow::Result<Vec<FileRecord>>;
    /// Deletes up to 500 file rows created before `created_before`; returns the sha256 of
    /// each blob no row names any more, for the caller to delete. Empty when none are due.
    async fn expire_files(&self, created_before: Millis) -> anyhow::Result<Vec<String>>;

    /// At startup: requeues executions interrupted on their first attempt, fails those
    /// interrupted twice with `host_restarted`, and lists every queued execution.
    async fn recover(&self, at: Millis) -> anyhow::Result<Recovery>;

    /// Pauses or resumes an app; `None` when unknown.
    async fn set_paused(&self, slug: &str, paused: bool) -> anyhow::Result<Option<AppRecord>>;
    /// Sets an app's visibility (until a new version is published); `None` when unknown.
    async fn set_public(&self, slug: &str, public: bool) -> anyhow::Result<Option<AppRecord>>;
    /// A page of executions, newest first, with their outputs (for exports).
    async fn export(&self, filter: ListExecutions) -> anyhow::Result<Vec<ExportedExecution>>;
    /// Every execution of `app` created at or after `since`.
    async fn timeseries(&self, app: &str, since: Millis) -> anyhow::Result<Vec<TimedExecution>>;

    /// Decides an execution awaiting approval, writing its `decision` event (and its
    /// terminal event and notifications when it ends) in one transaction: a second
    /// decision, here or on another host, finds it no longer pending.
    async fn decide(
        &self,
        id: &str,
        decision: Decision,
        note: DecisionNote,
        at: Millis,
    ) -> anyhow::Result<Decided>;
    /// Executions awaiting approval, oldest first, with their approvals.
    async fn pending_approvals(
        &self,
        filter: ListApprovals,
    ) -> anyhow::Result<Vec<ExecutionRecord>>;
    /// How many executions await approval (of `apps` when given).
    async fn pending_approval_count(&self, apps: Option<Vec<String>>) -> anyhow::Result<i64>;
    /// Ends, a bounded number per call, the approvals that expired at `now`; returns
    /// their executions.
    async fn expire_approvals(&self, now: Millis) -> anyhow::Result<Vec<String>>;

    /// Adds an inbound trigger.
    async fn insert_trigger(&self, trigger: TriggerRecord) -> anyhow::Result<()>;
    /// One trigger.
    async fn trigger(&self, id: &str) -> anyhow::Result<Option<TriggerRecord>>;
    /// An app's triggers, oldest first.
    async fn triggers(&self, app: &str) -> anyhow::Result<Vec<TriggerRecord>>;
    /// Replaces a trigger's secret (the old one stops working at once); false when
    /// unknown.
    async fn rotate_trigger(
        &self,
        app: &str,
        id: &str,
        secret: Vec<u8>,
        at: Millis,
    ) -> anyhow::Result<bool>;
    /// Removes a trigger; false when unknown.
    async fn delete_trigger(&self, app: &str, id: &str) -> anyhow::Result<bool>;

    /// Adds a schedule.
    async fn insert_schedule(&self, schedule: ScheduleRecord) -> anyhow::Result<()>;
    /// An app's schedules, oldest first.
    async fn schedules(&self, app: &str) -> anyhow::Result<Vec<ScheduleRecord>>;
    /// Every unpaused schedule whose next tick is at or before `before`, soonest first.
    async fn due_schedules(&self, before: Millis) -> anyhow::Result<Vec<ScheduleRecord>>;
    /// Pauses a schedule, or resumes it with the given next tick; false when unknown.
    async fn set_schedule_paused(
        &self,
        app: &str,
        id: &str,
        paused: bool,
        next_tick: Millis,
    ) -> anyhow::Result<bool>;
    /// Removes a schedule; false when unknown.
    async fn delete_schedule(&self, app: &str, id: &str) -> anyhow::Result<bool>;
    /// Moves a schedule past a tick that started no run, recording why; false when the
    /// tick was no longer due (taken, paused or gone).
    async fn skip_tick(&self, claim: TickClaim, error: String) -> anyhow::Result<bool>;

    /// Adds a notification subscription.
    async fn insert_subscription(&self, subscription: SubscriptionRecord) -> anyhow::Result<()>;
    /// An app's subscriptions, oldest first.
    async fn subscriptions(&self, app: &str) -> anyhow::Result<Vec<SubscriptionRecord>>;
    /// Removes a subscription and cancels its pending deliveries; false when unknown.
    async fn delete_subscription(&self, app: &str, id: &str) -> anyhow::Result<bool>;
    /// The app's sealed run-webhook key; `new` is stored and returned when it has none.
    async fn run_webhook_secret(
        &self,
        app: &str,
        new: Vec<u8>,
        at: Millis,
    ) -> anyhow::Result<Vec<u8>>;
    /// Claims up to `limit` pending deliveries due at `now` for an attempt: each is
    /// held until `hold_until` (another claim skips it meanwhile, and a crash mid-attempt
    /// only delays it).
    async fn claim_deliveries(
        &self,
        now: Millis,
        hold_until: Millis,
        limit: u32,
    ) -> anyhow::Result<Vec<DueDelivery>>;
    /// Records attempts, each with what follows it, in one commit (the notifier
    /// gathers those that end while the last commit is under way).
    async fn record_attempts(
        &self,
        attempts: Vec<(AttemptRecord, AfterAttempt)>,
    ) -> anyhow::Result<()>;
    /// The newest deliveries of a subscription with their attempts, before the delivery
    /// `before` (a cursor) when given.
    async fn deliveries(
        &self,
        subscription_id: &str,
        before: Option<String>,
        limit: u32,
    ) -> anyhow::Result<Vec<DeliveryHistory>>;
    /// Deletes, a bounded amount per call, deliveries that ended before
    /// `deliveries_before` (with their attempts; `None` keeps them) and claimed schedule
    /// ticks older than `ticks_before`; returns how many rows went (0 when none are left).
    async fn prune_outbox(
        &self,
        deliveries_before: Option<Millis>,
        ticks_before: Millis,
    ) -> anyhow::Result<usize>;
    /// When the soonest pending delivery is due (it may be now, or past).
    async fn next_delivery_at(&self) -> anyhow::Result<Option<Millis>>;
    /// Notified after every commit that added deliveries to the outbox.
    fn outbox_signal(&self) -> Arc<tokio::sync::Notify>;
    /// Whether other hosts share this store (PostgreSQL): what one host holds in
    /// memory (apps, tokens, live channels) must then follow their changes.
    fn shared(&self) -> bool {
        false
    }

    /// Extends the leases this host holds on its running executions to `until`;
    /// returns the ids it still holds, each with whether a cancel was asked for it on
    /// another host (one missing was taken back: its guest must stop). A store no other
    /// host shares has no leases: it returns `running`.
    async fn renew_leases(
        &self,
        running: Vec<String>,
        until: Millis,
    ) -> anyhow::Result<Vec<(String, bool)>> {
        let _ = until;
        Ok(running.into_iter().map(|id| (id, false)).collect())
    }

    /// Asks the host running execution `id` to cancel it (it sees this at its next
    /// renewal); false when it is not running. Only a shared store has other hosts.
    async fn request_cancel(&self, id: &str) -> anyhow::Result<bool> {
        let _ = id;
        Ok(false)
    }

    /// Puts back in the queue the running executions whose host's lease ran out before
    /// `now` (failing those interrupted twice with `host_restarted`, as at a restart).
    async fn expire_leases(&self, now: Millis) -> anyhow::Result<Recovery> {
        let _ = now;
        Ok(Recovery::default())
    }

    /// Starts up to `limit` queued executions on this host (the oldest, skipping those
    /// another host is taking, and apps already at `per_app` running across hosts);
    /// returns each with its start. Empty for a store no other host shares: its
    /// scheduler has every queued execution in memory already.
    async fn claim_queued(
        &self,
        limit: u32,
        per_app: u32,
        at: Millis,
    ) -> anyhow::Result<Vec<(ExecutionRecord, Started)>> {
        let _ = (limit, per_app, at);
        Ok(Vec::new())
    }

    /// Notified when another host queued an execution this host might claim.
    fn queued_signal(&self) -> Option<Arc<tokio::sync::Notify>> {
        None
    }

    /// The value sealed with the master key by the first host that started on this
    /// store (`sealed` is kept and returned when there is none): a host whose key cannot
    /// open it has another key, and must not start. A store no other host shares
    /// returns `sealed` (its key lives beside it, in the data dir).
    async fn key_check(&self, sealed: Vec<u8>) -> anyhow::Result<Vec<u8>> {
        Ok(sealed)
    }

    /// Which database this is, for `/healthz`: `sqlite` or `postgres`.
    fn kind(&self) -> &'static str {
        "sqlite"
    }

    /// Whether the database answered its last health check (an embedded one always
    /// does). While it does not, the API answers 503 and the host claims nothing.
    fn reachable(&self) -> bool {
        true
    }
}

/// The write of an execution's start, events or end was refused because this host no
/// longer holds its lease: another host took it back (this one was cut off from the
/// database for longer than a lease). The guest must stop; nothing it does is recorded.
#[derive(Debug, Clone, thiserror::Error)]
#[error("this host lost the lease on execution {0}; another host has it now")]
pub struct LeaseLost(pub String);

/// What deleting an app did.
#[derive(Debug, Clone, Default)]
pub struct DeletedApp {
    /// Its executions that were queued, now cancelled.
    pub cancelled: Vec<String>,
}

/// Publishing a slug that belonged to a deleted app whose history is kept.
#[derive(Debug, Clone, thiserror::Error)]
#[error(
    "{0:?} belonged to an app that was deleted; its executions are kept, so the slug is not \
     reused for a new app until they are purged (DELETE /api/apps/{0}?purge=true, or \
     floom apps delete {0} --purge)"
)]
pub struct SlugRetired(pub String);

/// Purging an app that cannot be purged yet.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{0}")]
pub struct NotPurgeable(pub String);

/// An agent token as stored (never the token itself).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenRecord {
    /// `tok_...`
    pub id: String,
    /// A label for people.
    pub name: String,
    /// sha256 of the token.
    pub secret_hash: String,
    /// `run` or `admin`.
    pub role: String,
    /// The apps it covers; `None` for all.
    pub apps: Option<Vec<String>>,
    /// When it was made.
    pub created_at: Millis,
    /// When it stops working.
    pub expires_at: Option<Millis>,
    /// When it was revoked.
    pub revoked_at: Option<Millis>,
}

/// Whether a file came in with the run request or out of the run's `/out`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileKind {
    /// Uploaded with the run request and shown to the app under `/in`.
    Input,
    /// Left by the run under `/out`.
    Artifact,
}

impl FileKind {
    /// As stored.
    pub fn as_str(self) -> &'static str {
        match self {
            FileKind::Input => "input",
            FileKind::Artifact => "artifact",
        }
    }
}

/// One input file or artifact of an execution; its bytes are the blob `sha256`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileRecord {
    /// `exec_...`
    pub execution_id: String,
    /// Input or artifact.
    pub kind: FileKind,
    /// Its path below `/in` or `/out` (`/`-separated for artifacts in folders).
    pub name: String,
    /// Bytes.
    pub size: i64,
    /// Hex sha256 of its bytes: its blob's name.
    pub sha256: String,
    /// Its media type, from the upload or guessed from the name.
    pub content_type: String,
    /// When it was recorded; retention counts from here.
    pub created_at: Millis,
}

/// An encrypted secret value.
#[derive(Debug, Clone)]
pub struct SecretRecord {
    /// The secret's name.
    pub name: String,
    /// The encrypted value (nonce, then ciphertext).
    pub sealed: Vec<u8>,
    /// When it was last set.
    pub updated_at: Millis,
}

/// An `Idempotency-Key` to record with a new execution.
#[derive(Debug, Clone)]
pub struct IdempotencyKey {
    /// Who sent it (keys are scoped to the caller).
    pub caller: String,
    /// The key.
    pub key: String,
    /// sha256 of the route and body.
    pub request_hash: String,
    /// The execution's view token, encrypted.
    pub view_token: Vec<u8>,
}

/// What inserting an execution did.
#[derive(Debug, Clone)]
pub enum Inserted {
    /// The execution was written; `Some` when it was written as started.
    New(Option<Started>),
    /// The idempotency key was used before (within 24 h): nothing was written.
    Existing {
        /// The execution made the first time.
        execution_id: String,
        /// sha256 of the first request.
        request_hash: String,
        /// Its view token, encrypted.
        view_token: Vec<u8>,
    },
}

/// How long an idempotency key holds.
pub const IDEMPOTENCY_WINDOW_MS: Millis = 24 * 60 * 60 * 1000;

/// Per-app execution figures.
#[derive(Debug, Clone, Default)]
pub struct AppStats {
    /// Executions per status.
    pub counts: Vec<(ExecStatus, i64)>,
    /// Run durations of the most recent finished executions, in milliseconds.
    pub durations_ms: Vec<i64>,
}

/// Milliseconds in a day: [`DayStats::day`] is a unix time divided by this.
pub const DAY_MS: Millis = 24 * 60 * 60 * 1000;

/// One UTC day of an app's executions.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DayStats {
    /// Days since the unix epoch (UTC) of the executions' `created_at`.
    pub day: i64,
    /// Executions accepted that day, per status (statuses with none left out).
    pub counts: Vec<(ExecStatus, i64)>,
    /// The median duration, start to end, of those that ran and ended.
    pub p50_ms: Option<i64>,
    /// The 95th percentile of the same durations.
    pub p95_ms: Option<i64>,
}

/// The value at percentile `p` of `sorted` (nearest rank: the value at rank
/// ceil(p% of the count)).
pub fn percentile(sorted: &[i64], p: f64) -> Option<i64> {
    if sorted.is_empty() {
        return None;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted
        .get(rank.saturating_sub(1).min(sorted.len() - 1))
        .copied()
}

/// The last `days` UTC days of an app's executions up to the one holding `now`, oldest
/// first, one entry per day (days without executions are empty): what
/// `GET /api/apps/{slug}/timeseries` answers and the operator's charts draw.
pub async fn per_day(
    store: &dyn Store,
    slug: &str,
    days: u32,
    now: Millis,
) -> anyhow::Result<Vec<DayStats>> {
    let today = now.div_euclid(DAY_MS);
    let first = today - i64::from(days.max(1)) + 1;
    let mut buckets: Vec<(HashMap<ExecStatus, i64>, Vec<i64>)> =
        (0..days.max(1)).map(|_| Default::default()).collect();
    for execution in store.timeseries(slug, first * DAY_MS).await? {
        let day = execution.created_at.div_euclid(DAY_MS) - first;
        // A run stamped after today (a clock set back) is outside the window.
        let Some((counts, durations)) = usize::try_from(day).ok().and_then(|d| buckets.get_mut(d))
        else {
            continue;
        };
        *counts.entry(execution.status).or_default() += 1;
        if execution.status.is_terminal() {
            durations.extend(execution.duration_ms);
        }
    }
    Ok(buckets
        .into_iter()
        .zip(first..)
        .map(|((counts, mut durations), day)| {
            durations.sort_unstable();
            DayStats {
                day,
                counts: ExecStatus::ALL
                    .iter()
                    .filter_map(|s| counts.get(s).map(|n| (*s, *n)))
                    .collect(),
                p50_ms: percentile(&durations, 50.0),
                p95_ms: percentile(&durations, 95.0),
            }
        })
        .collect())
}

/// The store as the server holds it.
pub type DynStore = Arc<dyn Store>;
