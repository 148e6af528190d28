//! The SQL of triggers in and out (SPEC section 9) for [`super::SqliteStore`]: functions
//! over a connection (a read connection, or the writer's transaction), called from the
//! store's trait methods and from the writes that end executions.

use anyhow::Context as _;
use rusqlite::{Connection, OptionalExtension, Row, params};

use super::{
    AfterAttempt, AttemptRecord, DeliveryHistory, DeliveryRecord, DeliveryState, DueDelivery,
    ExecStatus, Millis, ScheduleRecord, SubscriptionRecord, TickClaim, TickTaken, TriggerRecord,
    event_type,
};

/// Claims a schedule's tick for `execution_id`, in the transaction that writes the
/// execution: the schedule moves past the tick only if the tick is still due, and the
/// tick's row (primary key: schedule and tick) can be written once only.
pub(super) fn claim_tick(
    tx: &Connection,
    claim: &TickClaim,
    execution_id: &str,
) -> anyhow::Result<()> {
    let advanced = tx
        .prepare_cached(
            "UPDATE schedules SET next_tick = ?3, last_tick = ?2, last_execution_id = ?4, \
             last_error = NULL WHERE id = ?1 AND paused = 0 AND next_tick <= ?2",
        )?
        .execute(params![
            claim.schedule_id,
            claim.tick,
            claim.next_tick,
            execution_id
        ])?;
    let claimed = advanced == 1
        && tx
            .prepare_cached(
                "INSERT OR IGNORE INTO schedule_ticks (schedule_id, tick, execution_id) \
                 VALUES (?1, ?2, ?3)",
            )?
            .execute(params![claim.schedule_id, claim.tick, execution_id])?
            == 1;
    if !claimed {
        return Err(TickTaken {
            schedule_id: claim.schedule_id.clone(),
            tick: claim.tick,
        }
        .into());
    }
    Ok(())
}

/// Writes the outbox rows for execution `id` of `app` reaching `status`: one per
/// subscription to the event, and one for the run's own `webhook`. Returns whether it
/// wrote any.
pub(super) fn enqueue(
    tx: &Connection,
    id: &str,
    app: &str,
    webhook: Option<&str>,
    status: ExecStatus,
    at: Millis,
) -> anyhow::Result<bool> {
    let Some(event) = event_type(status) else {
        return Ok(false);
    };
    // `IN`, not `EXISTS (SELECT 1 FROM json_each(..) WHERE value = ?2)`: SQLite 3.54
    // prepares the `EXISTS` form again at every step (6.5 against 0.35 us here), and
    // this runs at the end of every run.
    let mut targets: Vec<(Option<String>, String)> = tx
        .prepare_cached(
            "SELECT id, url FROM subscriptions INDEXED BY subscriptions_by_app \
             WHERE app = ?1 AND disabled_at IS NULL \
             AND ?2 IN (SELECT value FROM json_each(subscriptions.events))",
        )?
        .query_map(params![app, event], |row| {
            Ok((Some(row.get(0)?), row.get(1)?))
        })?
        .collect::<rusqlite::Result<_>>()?;
    targets.extend(webhook.map(|url| (None, url.to_owned())));
    if targets.is_empty() {
        return Ok(false);
    }
    // One narrow row now; its deliveries are written by the next claim (see expand).
    tx.prepare_cached(
        "INSERT INTO outbox (execution_id, app, event, targets, at) VALUES (?1, ?2, ?3, ?4, ?5)",
    )?
    .execute(params![
        id,
        app,
        event,
        serde_json::to_string(&targets)?,
        at
    ])?;
    Ok(true)
}

/// Most outbox rows one claim turns into deliveries.
const EXPAND_BATCH: u32 = 512;

/// Turns outbox rows into their deliveries, skipping subscriptions deleted or disabled
/// since, and deletes the rows. The first `limit` deliveries are written already held
/// until `hold_until` and returned (claimed in the same insert, not by a second update);
/// the rest are written due at the change's time, for the next claims.
fn expand(tx: &Connection, hold_until: Millis, limit: usize) -> anyhow::Result<Vec<DueDelivery>> {
    type Row = (i64, String, String, String, String, Millis);
    let rows: Vec<Row> = tx
        .prepare_cached(
            "SELECT n, execution_id, app, event, targets, at FROM outbox ORDER BY n LIMIT ?1",
        )?
        .query_map([EXPAND_BATCH], |row| {
            Ok((
                row.get(0)?,
                row.get(1)?,
                row.get(2)?,
                row.get(3)?,
                row.get(4)?,
                row.get(5)?,
            ))
        })?
        .collect::<rusqlite::Result<_>>()?;
    let mut claimed = Vec::new();
    let Some(last) = rows.last().map(|row| row.0) else {
        return Ok(claimed);
    };
    for (_, execution_id, app, event, targets, at) in rows {
        let targets: Vec<(Option<String>, String)> = serde_json::from_str(&targets)?;
        for (subscription, url) in targets {
            let secret = match &subscription {
                Some(subscription) => {
                    let active: Option<Vec<u8>> = tx
                        .prepare_cached(
                            "SELECT secret FROM subscriptions WHERE id = ?1 AND disabled_at IS NULL",
                        )?
                        .query_row([subscription], |row| row.get(0))
                        .optional()?;
                    let Some(secret) = active else { continue };
                    Some(secret)
                }
                None => tx
                    .prepare_cached("SELECT secret FROM run_webhook_secrets WHERE app = ?1")?
                    .query_row([&app], |row| row.get(0))
                    .optional()?,
            };
            let held = claimed.len() < limit;
            let next_attempt_at = if held { hold_until } else { at };
            let id = new_delivery_id();
            tx.prepare_cached(
                "INSERT INTO deliveries (id, subscription_id, app, url, execution_id, event, \
                 state, created_at, next_attempt_at) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, 'pending', ?7, ?8)",
            )?
            .execute(params![
                id,
                subscription,
                app,
                url,
                execution_id,
                event,
                at,
                next_attempt_at
            ])?;
            if held {
                claimed.push(DueDelivery {
                    delivery: DeliveryRecord {
                        id,
                        subscription_id: subscription,
                        app: app.clone(),
                        url,
                        execution_id: execution_id.clone(),
                        event: event.clone(),
                        state: DeliveryState::Pending,
                        attempts: 0,
                        created_at: at,
                        next_attempt_at: Some(hold_until),
                        finished_at: None,
                    },
                    secret,
                });
            }
        }
    }
    tx.prepare_cached("DELETE FROM outbox WHERE n <= ?1")?
        .execute([last])?;
    Ok(claimed)
}

/// A new delivery id: `msg_` and a UUIDv7, so ids sort by creation (the list's cursor).
fn new_delivery_id() -> String {
    format!("msg_{}", uuid::Uuid::now_v7().simple())
}

/// What deleting an app removes here: its triggers, schedules, subscriptions and
/// run-webhook key; its pending deliveries are cancelled.
pub(super) fn delete_app(tx: &Connection, app: &str, at: Millis) -> anyhow::Result<()> {
    tx.execute("DELETE FROM triggers WHERE app = ?1", [app])?;
    tx.execute(
        "DELETE FROM schedule_ticks WHERE schedule_id IN (SELECT id FROM schedules WHERE app = ?1)",
        [app],
    )?;
    tx.execute("DELETE FROM schedules WHERE app = ?1", [app])?;
    tx.execute("DELETE FROM subscriptions WHERE app = ?1", [app])?;
    tx.execute("DELETE FROM run_webhook_secrets WHERE app = ?1", [app])?;
    // Changes not yet expanded would become deliveries only to be cancelled.
    tx.execute("DELETE FROM outbox WHERE app = ?1", [app])?;
    tx.execute(
        "UPDATE deliveries SET state = 'cancelled', next_attempt_at = NULL, finished_at = ?2 \
         WHERE app = ?1 AND state = 'pending'",
        params![app, at],
    )?;
    Ok(())
}

/// What purging an app removes here: its deliveries and their attempts.
pub(super) fn purge_app(tx: &Connection, app: &str) -> anyhow::Result<()> {
    tx.execute(
        "DELETE FROM delivery_attempts WHERE delivery_id IN (SELECT id FROM deliveries WHERE app = ?1)",
        [app],
    )?;
    tx.execute("DELETE FROM deliveries WHERE app = ?1", [app])?;
    Ok(())
}

/// Rows one pruning write deletes at most, so it holds the writer for milliseconds.
const PRUNE_PER_WRITE: i64 = 2000;

pub(super) fn prune(
    tx: &Connection,
    deliveries_before: Option<Millis>,
    ticks_before: Millis,
) -> anyhow::Result<usize> {
    let mut removed = 0;
    if let Some(before) = deliveries_before {
        // A delivery ends after it is made, so every one that ended before `before`
        // has an id below the first one made at `before`: the walk stops there.
        let made_before = format!("msg_{:012x}", before.max(0));
        let ended: Vec<String> = tx
            .prepare_cached(
                "SELECT id FROM deliveries WHERE id < ?1 \
                 AND state != 'pending' AND finished_at < ?2 ORDER BY id LIMIT ?3",
            )?
            .query_map(params![made_before, before, PRUNE_PER_WRITE], |row| {
                row.get(0)
            })?
            .collect::<rusqlite::Result<_>>()?;
        for id in &ended {
            tx.prepare_cached("DELETE FROM delivery_attempts WHERE delivery_id = ?1")?
                .execute([id])?;
            tx.prepare_cached("DELETE FROM deliveries WHERE id = ?1")?
                .execute([id])?;
        }
        removed += ended.len();
    }
    removed += tx
        .prepare_cached(
            "DELETE FROM schedule_ticks WHERE (schedule_id, tick) IN \
             (SELECT schedule_id, tick FROM schedule_ticks INDEXED BY schedule_ticks_by_age \
              WHERE tick < ?1 LIMIT ?2)",
        )?
        .execute(params![ticks_before, PRUNE_PER_WRITE])?;
    Ok(removed)
}

const TRIGGER_COLUMNS: &str = "id, app, action, secret, created_at, rotated_at";

fn trigger_row(row: &Row<'_>) -> rusqlite::Result<TriggerRecord> {
    Ok(TriggerRecord {
        id: row.get(0)?,
        app: row.get(1)?,
        action: row.get(2)?,
        secret: row.get(3)?,
        created_at: row.get(4)?,
        rotated_at: row.get(5)?,
    })
}

pub(super) fn insert_trigger(tx: &Connection, t: &TriggerRecord) -> anyhow::Result<()> {
    tx.execute(
        &format!("INSERT INTO triggers ({TRIGGER_COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6)"),
        params![t.id, t.app, t.action, t.secret, t.created_at, t.rotated_at],
    )?;
    Ok(())
}

pub(super) fn trigger(conn: &Connection, id: &str) -> anyhow::Result<Option<TriggerRecord>> {
    Ok(conn
        .prepare_cached(&format!(
            "SELECT {TRIGGER_COLUMNS} FROM triggers WHERE id = ?1"
        ))?
        .query_row([id], trigger_row)
        .optional()?)
}

pub(super) fn triggers(conn: &Connection, app: &str) -> anyhow::Result<Vec<TriggerRecord>> {
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {TRIGGER_COLUMNS} FROM triggers WHERE app = ?1 ORDER BY created_at, id"
    ))?;
    let rows = stmt.query_map([app], trigger_row)?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

pub(super) fn rotate_trigger(
    tx: &Connection,
    app: &str,
    id: &str,
    secret: &[u8],
    at: Millis,
) -> anyhow::Result<bool> {
    Ok(tx.execute(
        "UPDATE triggers SET secret = ?3, rotated_at = ?4 WHERE app = ?1 AND id = ?2",
        params![app, id, secret, at],
    )? == 1)
}

pub(super) fn delete_trigger(tx: &Connection, app: &str, id: &str) -> anyhow::Result<bool> {
    Ok(tx.execute(
        "DELETE FROM triggers WHERE app = ?1 AND id = ?2",
        params![app, id],
    )? == 1)
}

const SCHEDULE_COLUMNS: &str = "id, app, action, inputs, cron, timezone, paused, next_tick, \
                                created_at, last_tick, last_execution_id, last_error";

fn schedule_row(row: &Row<'_>) -> rusqlite::Result<ScheduleRecord> {
    Ok(ScheduleRecord {
        id: row.get(0)?,
        app: row.get(1)?,
        action: row.get(2)?,
        inputs: row.get(3)?,
        cron: row.get(4)?,
        timezone: row.get(5)?,
        paused: row.get(6)?,
        next_tick: row.get(7)?,
        created_at: row.get(8)?,
        last_tick: row.get(9)?,
        last_execution_id: row.get(10)?,
        last_error: row.get(11)?,
    })
}

pub(super) fn insert_schedule(tx: &Connection, s: &ScheduleRecord) -> anyhow::Result<()> {
    tx.execute(
        &format!(
            "INSERT INTO schedules ({SCHEDULE_COLUMNS}) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)"
        ),
        params![
            s.id,
            s.app,
            s.action,
            s.inputs,
            s.cron,
            s.timezone,
            s.paused,
            s.next_tick,
            s.created_at,
            s.last_tick,
            s.last_execution_id,
            s.last_error
        ],
    )?;
    Ok(())
}

pub(super) fn schedules(conn: &Connection, app: &str) -> anyhow::Result<Vec<ScheduleRecord>> {
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {SCHEDULE_COLUMNS} FROM schedules WHERE app = ?1 ORDER BY created_at, id"
    ))?;
    let rows = stmt.query_map([app], schedule_row)?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

pub(super) fn due_schedules(
    conn: &Connection,
    before: Millis,
) -> anyhow::Result<Vec<ScheduleRecord>> {
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {SCHEDULE_COLUMNS} FROM schedules WHERE paused = 0 AND next_tick <= ?1 \
         ORDER BY next_tick LIMIT 1000"
    ))?;
    let rows = stmt.query_map([before], schedule_row)?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

pub(super) fn set_schedule_paused(
    tx: &Connection,
    app: &str,
    id: &str,
    paused: bool,
    next_tick: Millis,
) -> anyhow::Result<bool> {
    Ok(tx.execute(
        "UPDATE schedules SET paused = ?3, next_tick = ?4 WHERE app = ?1 AND id = ?2",
        params![app, id, paused, next_tick],
    )? == 1)
}

pub(super) fn delete_schedule(tx: &Connection, app: &str, id: &str) -> anyhow::Result<bool> {
    tx.execute("DELETE FROM schedule_ticks WHERE schedule_id = ?1", [id])?;
    Ok(tx.execute(
        "DELETE FROM schedules WHERE app = ?1 AND id = ?2",
        params![app, id],
    )? == 1)
}

pub(super) fn skip_tick(tx: &Connection, claim: &TickClaim, error: &str) -> anyhow::Result<bool> {
    Ok(tx.execute(
        "UPDATE schedules SET next_tick = ?3, last_tick = ?2, last_execution_id = NULL, \
         last_error = ?4 WHERE id = ?1 AND paused = 0 AND next_tick <= ?2",
        params![claim.schedule_id, claim.tick, claim.next_tick, error],
    )? == 1)
}

const SUBSCRIPTION_COLUMNS: &str =
    "id, app, url, events, secret, created_at, disabled_at, disabled_reason";

fn subscription_row(row: &Row<'_>) -> rusqlite::Result<(SubscriptionRecord, String)> {
    Ok((
        SubscriptionRecord {
            id: row.get(0)?,
            app: row.get(1)?,
            url: row.get(2)?,
            events: Vec::new(),
            secret: row.get(4)?,
            created_at: row.get(5)?,
            disabled_at: row.get(6)?,
            disabled_reason: row.get(7)?,
        },
        row.get(3)?,
    ))
}

pub(super) fn insert_subscription(tx: &Connection, s: &SubscriptionRecord) -> anyhow::Result<()> {
    tx.execute(
        &format!(
            "INSERT INTO subscriptions ({SUBSCRIPTION_COLUMNS}) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)"
        ),
        params![
            s.id,
            s.app,
            s.url,
            serde_json::to_string(&s.events)?,
            s.secret,
            s.created_at,
            s.disabled_at,
            s.disabled_reason
        ],
    )?;
    Ok(())
}

pub(super) fn subscriptions(
    conn: &Connection,
    app: &str,
) -> anyhow::Result<Vec<SubscriptionRecord>> {
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {SUBSCRIPTION_COLUMNS} FROM subscriptions WHERE app = ?1 ORDER BY created_at, id"
    ))?;
    let rows = stmt.query_map([app], subscription_row)?;
    let mut subscriptions = Vec::new();
    for row in rows {
        let (mut subscription, events) = row?;
        subscription.events =
            serde_json::from_str(&events).context("a stored subscription's events")?;
        subscriptions.push(subscription);
    }
    Ok(subscriptions)
}

pub(super) fn delete_subscription(tx: &Connection, app: &str, id: &str) -> anyhow::Result<bool> {
    if tx.execute(
        "DELETE FROM subscriptions WHERE app = ?1 AND id = ?2",
        params![app, id],
    )? == 0
    {
        return Ok(false);
    }
    tx.execute(
        "DELETE FROM delivery_attempts WHERE delivery_id IN \
         (SELECT id FROM deliveries WHERE subscription_id = ?1)",
        [id],
    )?;
    tx.execute("DELETE FROM deliveries WHERE subscription_id = ?1", [id])?;
    Ok(true)
}

pub(super) fn run_webhook_secret(
    tx: &Connection,
    app: &str,
    new: &[u8],
    at: Millis,
) -> anyhow::Result<Vec<u8>> {
    tx.execute(
        "INSERT OR IGNORE INTO run_webhook_secrets (app, secret, created_at) VALUES (?1, ?2, ?3)",
        params![app, new, at],
    )?;
    Ok(tx.query_row(
        "SELECT secret FROM run_webhook_secrets WHERE app = ?1",
        [app],
        |row| row.get(0),
    )?)
}

const DELIVERY_COLUMNS: &str = "d.id, d.subscription_id, d.app, d.url, d.execution_id, d.event, \
                                d.state, d.attempts, d.created_at, d.next_attempt_at, d.finished_at";

fn delivery_row(row: &Row<'_>) -> rusqlite::Result<DeliveryRecord> {
    let state: String = row.get(6)?;
    Ok(DeliveryRecord {
        id: row.get(0)?,
        subscription_id: row.get(1)?,
        app: row.get(2)?,
        url: row.get(3)?,
        execution_id: row.get(4)?,
        event: row.get(5)?,
        state: DeliveryState::parse(&state).ok_or_else(|| {
            rusqlite::Error::FromSqlConversionFailure(
                6,
                rusqlite::types::Type::Text,
                format!("unknown delivery state {state:?}").into(),
            )
        })?,
        attempts: row.get(7)?,
        created_at: row.get(8)?,
        next_attempt_at: row.get(9)?,
        finished_at: row.get(10)?,
    })
}

pub(super) fn claim_deliveries(
    tx: &Connection,
    now: Millis,
    hold_until: Millis,
    limit: u32,
) -> anyhow::Result<Vec<DueDelivery>> {
    // Retries first, so a steady stream of new changes cannot starve them.
    let mut due: Vec<DueDelivery> = tx
        .prepare_cached(&format!(
            "SELECT {DELIVERY_COLUMNS}, \
             CASE WHEN d.subscription_id IS NULL THEN r.secret ELSE s.secret END \
             FROM deliveries d INDEXED BY deliveries_due \
             LEFT JOIN subscriptions s ON s.id = d.subscription_id \
             LEFT JOIN run_webhook_secrets r ON r.app = d.app \
             WHERE d.state = 'pending' AND d.next_attempt_at <= ?1 \
             ORDER BY d.next_attempt_at LIMIT ?2"
        ))?
        .query_map(params![now, limit], |row| {
            Ok(DueDelivery {
                delivery: delivery_row(row)?,
                secret: row.get(11)?,
            })
        })?
        .collect::<rusqlite::Result<_>>()?;
    for due in &mut due {
        tx.prepare_cached("UPDATE deliveries SET next_attempt_at = ?2 WHERE id = ?1")?
            .execute(params![due.delivery.id, hold_until])?;
        due.delivery.next_attempt_at = Some(hold_until);
    }
    let room = usize::try_from(limit)
        .unwrap_or(usize::MAX)
        .saturating_sub(due.len());
    due.extend(expand(tx, hold_until, room)?);
    Ok(due)
}

pub(super) fn record_attempt(
    tx: &Connection,
    attempt: &AttemptRecord,
    next: AfterAttempt,
) -> anyhow::Result<()> {
    // Removed meanwhile (its subscription or app went): nothing to record it on.
    let Some(subscription) = tx
        .prepare_cached("SELECT subscription_id FROM deliveries WHERE id = ?1")?
        .query_row([&attempt.delivery_id], |row| {
            row.get::<_, Option<String>>(0)
        })
        .optional()?
    else {
        return Ok(());
    };
    tx.prepare_cached(
        "INSERT OR REPLACE INTO delivery_attempts (delivery_id, attempt, at, status, error, latency_ms) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
    )?
    .execute(params![
        attempt.delivery_id,
        attempt.attempt,
        attempt.at,
        attempt.status,
        attempt.error,
        attempt.latency_ms
    ])?;
    let now = attempt.at + attempt.latency_ms;
    let (state, next_at, finished_at) = match next {
        AfterAttempt::Delivered => (DeliveryState::Delivered, None, Some(now)),
        AfterAttempt::Retry(at) => (DeliveryState::Pending, Some(at), None),
        AfterAttempt::GiveUp => (DeliveryState::Failed, None, Some(now)),
        AfterAttempt::Gone => (DeliveryState::Cancelled, None, Some(now)),
    };
    // A delivery cancelled while its attempt was out keeps its state.
    tx.prepare_cached(
        "UPDATE deliveries SET attempts = MAX(attempts, ?2), state = ?3, next_attempt_at = ?4, \
         finished_at = ?5 WHERE id = ?1 AND state = 'pending'",
    )?
    .execute(params![
        attempt.delivery_id,
        attempt.attempt,
        state.as_str(),
        next_at,
        finished_at
    ])?;
    if let (AfterAttempt::Gone, Some(subscription)) = (next, subscription) {
        tx.prepare_cached(
            "UPDATE subscriptions SET disabled_at = ?2, disabled_reason = ?3 \
             WHERE id = ?1 AND disabled_at IS NULL",
        )?
        .execute(params![subscription, now, "the receiver answered 410 Gone"])?;
        tx.prepare_cached(
            "UPDATE deliveries SET state = 'cancelled', next_attempt_at = NULL, finished_at = ?2 \
             WHERE subscription_id = ?1 AND state = 'pending'",
        )?
        .execute(params![subscription, now])?;
    }
    Ok(())
}

pub(super) fn deliveries(
    conn: &Connection,
    subscription_id: &str,
    before: Option<&str>,
    limit: u32,
) -> anyhow::Result<Vec<DeliveryHistory>> {
    let records: Vec<DeliveryRecord> = conn
        .prepare_cached(&format!(
            "SELECT {DELIVERY_COLUMNS} FROM deliveries d WHERE d.subscription_id = ?1 \
             AND (?2 IS NULL OR d.id < ?2) ORDER BY d.id DESC LIMIT ?3"
        ))?
        .query_map(params![subscription_id, before, limit], delivery_row)?
        .collect::<rusqlite::Result<_>>()?;
    let mut stmt = conn.prepare_cached(
        "SELECT delivery_id, attempt, at, status, error, latency_ms FROM delivery_attempts \
         WHERE delivery_id = ?1 ORDER BY attempt",
    )?;
    let mut histories = Vec::with_capacity(records.len());
    for delivery in records {
        let attempts = stmt
            .query_map([&delivery.id], |row| {
                Ok(AttemptRecord {
                    delivery_id: row.get(0)?,
                    attempt: row.get(1)?,
                    at: row.get(2)?,
                    status: row.get(3)?,
                    error: row.get(4)?,
                    latency_ms: row.get(5)?,
                })
            })?
            .collect::<rusqlite::Result<_>>()?;
        histories.push(DeliveryHistory { delivery, attempts });
    }
    Ok(histories)
}
