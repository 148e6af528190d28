//! What the store keeps for triggers in and out (SPEC section 9): inbound triggers,
//! schedules and their claimed ticks, notification subscriptions, and the outbox of
//! deliveries with every attempt at them.

use super::{ExecStatus, Millis};

/// An inbound trigger: `POST /hooks/{id}` starts a run of `action`.
#[derive(Debug, Clone)]
pub struct TriggerRecord {
    /// `trg_...`
    pub id: String,
    /// The app it runs.
    pub app: String,
    /// The action it runs.
    pub action: String,
    /// The secret, sealed (it keys signatures, so it is kept, encrypted, not hashed).
    pub secret: Vec<u8>,
    /// When it was made.
    pub created_at: Millis,
    /// When its secret was last replaced.
    pub rotated_at: Option<Millis>,
}

/// A schedule: a run of `action` with `inputs` at every tick of `cron` in `timezone`.
#[derive(Debug, Clone)]
pub struct ScheduleRecord {
    /// `sch_...`
    pub id: String,
    /// The app it runs.
    pub app: String,
    /// The action it runs.
    pub action: String,
    /// The inputs, as JSON text.
    pub inputs: String,
    /// The cron expression (5 fields, or 6 with leading seconds).
    pub cron: String,
    /// The IANA time zone the expression is read in.
    pub timezone: String,
    /// Whether it is paused.
    pub paused: bool,
    /// The next tick not yet run (unix ms).
    pub next_tick: Millis,
    /// When it was made.
    pub created_at: Millis,
    /// The last tick that was run or skipped.
    pub last_tick: Option<Millis>,
    /// The execution the last run tick started.
    pub last_execution_id: Option<String>,
    /// Why the last tick started no run.
    pub last_error: Option<String>,
}

/// The schedule tick a new execution runs: claimed in the transaction that writes the
/// execution, so a tick starts at most one run, whoever (a restarted server, another
/// host) tries it again.
#[derive(Debug, Clone)]
pub struct TickClaim {
    /// The schedule.
    pub schedule_id: String,
    /// The tick (unix ms); ticks missed while the server was down fold into the latest.
    pub tick: Millis,
    /// The schedule's following tick, stored as its `next_tick`.
    pub next_tick: Millis,
}

/// The tick was taken already (or the schedule is paused or gone): nothing was written.
#[derive(Debug, Clone, thiserror::Error)]
#[error("tick {tick} of schedule {schedule_id} was already run, or the schedule is paused or gone")]
pub struct TickTaken {
    /// The schedule.
    pub schedule_id: String,
    /// The tick.
    pub tick: Millis,
}

/// A subscription of a URL to an app's execution events.
#[derive(Debug, Clone)]
pub struct SubscriptionRecord {
    /// `whk_...`
    pub id: String,
    /// The app.
    pub app: String,
    /// Where deliveries go.
    pub url: String,
    /// The event types it receives (`execution.succeeded`, ...).
    pub events: Vec<String>,
    /// The signing key (`whsec_...`), sealed.
    pub secret: Vec<u8>,
    /// When it was made.
    pub created_at: Millis,
    /// When a receiver's `410 Gone` disabled it.
    pub disabled_at: Option<Millis>,
    /// Why it was disabled.
    pub disabled_reason: Option<String>,
}

/// The event type of a change to `status`, as subscriptions name it; `None` for a change
/// nobody is notified of (queued, running).
pub fn event_type(status: ExecStatus) -> Option<&'static str> {
    match status {
        ExecStatus::Succeeded => Some("execution.succeeded"),
        ExecStatus::Failed => Some("execution.failed"),
        ExecStatus::TimedOut => Some("execution.timed_out"),
        ExecStatus::Cancelled => Some("execution.cancelled"),
        ExecStatus::AwaitingApproval => Some("execution.awaiting_approval"),
        ExecStatus::Queued | ExecStatus::Running => None,
    }
}

/// The event types a subscription may ask for.
pub const EVENT_TYPES: &[&str] = &[
    "execution.succeeded",
    "execution.failed",
    "execution.timed_out",
    "execution.cancelled",
    "execution.awaiting_approval",
];

/// Where a delivery is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeliveryState {
    /// Not yet answered with a 2xx; attempts go on.
    Pending,
    /// Answered with a 2xx.
    Delivered,
    /// Given up after 24 h of attempts.
    Failed,
    /// Stopped: its subscription or app was removed, or its receiver answered 410.
    Cancelled,
}

impl DeliveryState {
    /// The state as the API spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            DeliveryState::Pending => "pending",
            DeliveryState::Delivered => "delivered",
            DeliveryState::Failed => "failed",
            DeliveryState::Cancelled => "cancelled",
        }
    }

    /// The state stored as `text`.
    pub fn parse(text: &str) -> Option<Self> {
        Some(match text {
            "pending" => DeliveryState::Pending,
            "delivered" => DeliveryState::Delivered,
            "failed" => DeliveryState::Failed,
            "cancelled" => DeliveryState::Cancelled,
            _ => return None,
        })
    }
}

/// One notification in the outbox.
#[derive(Debug, Clone)]
pub struct DeliveryRecord {
    /// `msg_...`, the `webhook-id` of every attempt.
    pub id: String,
    /// The subscription; `None` for the run's own webhook.
    pub subscription_id: Option<String>,
    /// The app.
    pub app: String,
    /// Where it goes.
    pub url: String,
    /// The execution it is about.
    pub execution_id: String,
    /// The event type.
    pub event: String,
    /// Where it is.
    pub state: DeliveryState,
    /// Attempts made.
    pub attempts: i64,
    /// When it was written (with the execution's change).
    pub created_at: Millis,
    /// When the next attempt is due, while pending.
    pub next_attempt_at: Option<Millis>,
    /// When it was delivered or given up.
    pub finished_at: Option<Millis>,
}

/// A delivery claimed for an attempt, with its signing key.
#[derive(Debug, Clone)]
pub struct DueDelivery {
    /// The delivery.
    pub delivery: DeliveryRecord,
    /// The sealed key: the subscription's, or the app's run-webhook key; `None` when it
    /// is gone (the app was deleted).
    pub secret: Option<Vec<u8>>,
}

/// One attempt at a delivery.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttemptRecord {
    /// The delivery.
    pub delivery_id: String,
    /// 1, 2, ...
    pub attempt: i64,
    /// When it started.
    pub at: Millis,
    /// The HTTP status, when an answer came.
    pub status: Option<u16>,
    /// What went wrong, when none did (or what the status meant).
    pub error: Option<String>,
    /// From the start of the attempt to its answer or failure.
    pub latency_ms: i64,
}

/// What follows an attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AfterAttempt {
    /// A 2xx: delivered.
    Delivered,
    /// Try again at this time.
    Retry(Millis),
    /// Out of time: give up.
    GiveUp,
    /// The receiver answered 410 Gone: stop, and disable the subscription (its other
    /// pending deliveries are cancelled).
    Gone,
}

/// A delivery with its attempts, for the list.
#[derive(Debug, Clone)]
pub struct DeliveryHistory {
    /// The delivery.
    pub delivery: DeliveryRecord,
    /// Its attempts, in order.
    pub attempts: Vec<AttemptRecord>,
}
