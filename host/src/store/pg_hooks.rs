//! The SQL of triggers in and out (SPEC section 9) for [`super::PgStore`]: functions over
//! a pooled connection or a write's transaction, called from the store's trait methods
//! and from the writes that end executions.
//!
//! Several hosts claim deliveries from one database at once: a claim takes its retries
//! and its outbox rows with `SKIP LOCKED`, so no change is expanded twice and no claim
//! waits for another. Removals delete deliveries before their attempts, in separate
//! statements, so an attempt recorded meanwhile (its delivery row locked) is seen and
//! deleted too.

use std::collections::HashMap;

use anyhow::Context as _;
use deadpool_postgres::{GenericClient, Transaction};
use tokio_postgres::Row;

use super::postgres::{self, execute, query, query_one, query_opt};
use super::{
    AfterAttempt, AttemptRecord, DeliveryHistory, DeliveryRecord, DeliveryState, DueDelivery,
    ExecStatus, Millis, ScheduleRecord, SubscriptionRecord, TickClaim, TickTaken, TriggerRecord,
    event_type,
};

/// Claims a schedule's tick for `execution_id`, in the transaction that writes the
/// execution: the schedule moves past the tick only if the tick is still due, and the
/// tick's row (primary key: schedule and tick) can be written once only. A claim of the
/// same tick on another host waits for this one's row lock, then finds the schedule
/// moved past the tick.
pub(super) async fn claim_tick(
    tx: &Transaction<'_>,
    claim: &TickClaim,
    execution_id: &str,
) -> anyhow::Result<()> {
    let advanced = execute(
        tx,
        "UPDATE schedules SET next_tick = $3, last_tick = $2, last_execution_id = $4, \
         last_error = NULL WHERE id = $1 AND NOT paused AND next_tick <= $2",
        &[
            &claim.schedule_id,
            &claim.tick,
            &claim.next_tick,
            &execution_id,
        ],
    )
    .await?;
    let claimed = advanced == 1
        && execute(
            tx,
            "INSERT INTO schedule_ticks (schedule_id, tick, execution_id) VALUES ($1, $2, $3) \
             ON CONFLICT DO NOTHING",
            &[&claim.schedule_id, &claim.tick, &execution_id],
        )
        .await?
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
pub(super) async fn enqueue(
    tx: &Transaction<'_>,
    id: &str,
    app: &str,
    webhook: Option<&str>,
    status: ExecStatus,
    at: Millis,
) -> anyhow::Result<bool> {
    let Some(event) = event_type(status) else {
        return Ok(false);
    };
    let mut targets: Vec<(Option<String>, String)> = query(
        tx,
        "SELECT id, url FROM subscriptions \
         WHERE app = $1 AND disabled_at IS NULL AND events::jsonb ? $2",
        &[&app, &event],
    )
    .await?
    .iter()
    .map(|row| Ok((Some(row.try_get(0)?), row.try_get(1)?)))
    .collect::<anyhow::Result<_>>()?;
    targets.extend(webhook.map(|url| (None, url.to_owned())));
    if targets.is_empty() {
        return Ok(false);
    }
    // One narrow row now; its deliveries are written by the next claim (see expand).
    execute(
        tx,
        "INSERT INTO outbox (execution_id, app, event, targets, at) VALUES ($1, $2, $3, $4, $5)",
        &[&id, &app, &event, &serde_json::to_string(&targets)?, &at],
    )
    .await?;
    Ok(true)
}

/// Most outbox rows one claim turns into deliveries.
const EXPAND_BATCH: i64 = 512;

/// An outbox row: a change and whom it goes to.
struct Change {
    n: i64,
    execution_id: String,
    app: String,
    event: String,
    targets: Vec<(Option<String>, String)>,
    at: Millis,
}

/// Turns outbox rows into their deliveries, skipping subscriptions deleted or disabled
/// since, and deletes the rows. The first `limit` deliveries are written already held
/// until `hold_until` and returned (claimed in the same insert, not by a second update);
/// the rest are written due at the change's time, for the next claims.
async fn expand(
    tx: &Transaction<'_>,
    hold_until: Millis,
    limit: usize,
) -> anyhow::Result<Vec<DueDelivery>> {
    // Rows another claim holds are skipped, and the ones taken here are theirs to skip.
    let mut changes = query(
        tx,
        "DELETE FROM outbox WHERE n IN \
         (SELECT n FROM outbox ORDER BY n LIMIT $1 FOR UPDATE SKIP LOCKED) \
         RETURNING n, execution_id, app, event, targets, at",
        &[&EXPAND_BATCH],
    )
    .await?
    .iter()
    .map(|row| {
        let targets: String = row.try_get(4)?;
        Ok(Change {
            n: row.try_get(0)?,
            execution_id: row.try_get(1)?,
            app: row.try_get(2)?,
            event: row.try_get(3)?,
            targets: serde_json::from_str(&targets).context("a stored change's targets")?,
            at: row.try_get(5)?,
        })
    })
    .collect::<anyhow::Result<Vec<_>>>()?;
    if changes.is_empty() {
        return Ok(Vec::new());
    }
    // RETURNING has no order; deliveries are written in the changes' order.
    changes.sort_by_key(|change| change.n);
    let (active, webhook_secrets) = target_secrets(tx, &changes).await?;
    let mut written = Vec::new();
    let mut claimed = Vec::new();
    for change in changes {
        for (subscription, url) in change.targets {
            let secret = match &subscription {
                Some(subscription) => {
                    let Some(secret) = active.get(subscription) else {
                        continue;
                    };
                    Some(secret.clone())
                }
                None => webhook_secrets.get(&change.app).cloned(),
            };
            let held = claimed.len() < limit;
            let delivery = DeliveryRecord {
                id: new_delivery_id(),
                subscription_id: subscription,
                app: change.app.clone(),
                url,
                execution_id: change.execution_id.clone(),
                event: change.event.clone(),
                state: DeliveryState::Pending,
                attempts: 0,
                created_at: change.at,
                next_attempt_at: Some(if held { hold_until } else { change.at }),
                finished_at: None,
            };
            if held {
                claimed.push(DueDelivery {
                    delivery: delivery.clone(),
                    secret,
                });
            }
            written.push(delivery);
        }
    }
    insert_deliveries(tx, &written).await?;
    Ok(claimed)
}

/// The signing keys of the changes' targets: the active subscriptions' (by id) and the
/// apps' run-webhook keys (by app). The subscriptions are key-share locked, so one being
/// deleted meanwhile either goes first (and is skipped) or waits for this claim's
/// deliveries and deletes them too.
async fn target_secrets(
    tx: &Transaction<'_>,
    changes: &[Change],
) -> anyhow::Result<(HashMap<String, Vec<u8>>, HashMap<String, Vec<u8>>)> {
    let mut subscriptions: Vec<&str> = Vec::new();
    let mut apps: Vec<&str> = Vec::new();
    for change in changes {
        for (subscription, _) in &change.targets {
            match subscription {
                Some(id) => subscriptions.push(id),
                None => apps.push(&change.app),
            }
        }
    }
    let mut active = HashMap::new();
    if !subscriptions.is_empty() {
        for row in query(
            tx,
            "SELECT id, secret FROM subscriptions \
             WHERE id = ANY($1) AND disabled_at IS NULL FOR KEY SHARE",
            &[&subscriptions],
        )
        .await?
        {
            active.insert(row.try_get(0)?, row.try_get(1)?);
        }
    }
    let mut webhook_secrets = HashMap::new();
    if !apps.is_empty() {
        for row in query(
            tx,
            "SELECT app, secret FROM run_webhook_secrets WHERE app = ANY($1)",
            &[&apps],
        )
        .await?
        {
            webhook_secrets.insert(row.try_get(0)?, row.try_get(1)?);
        }
    }
    Ok((active, webhook_secrets))
}

/// Writes new pending deliveries in one statement (arrays unnested).
async fn insert_deliveries(
    tx: &Transaction<'_>,
    deliveries: &[DeliveryRecord],
) -> anyhow::Result<()> {
    if deliveries.is_empty() {
        return Ok(());
    }
    let ids: Vec<&str> = deliveries.iter().map(|d| d.id.as_str()).collect();
    let subscriptions: Vec<Option<&str>> = deliveries
        .iter()
        .map(|d| d.subscription_id.as_deref())
        .collect();
    let apps: Vec<&str> = deliveries.iter().map(|d| d.app.as_str()).collect();
    let urls: Vec<&str> = deliveries.iter().map(|d| d.url.as_str()).collect();
    let executions: Vec<&str> = deliveries.iter().map(|d| d.execution_id.as_str()).collect();
    let events: Vec<&str> = deliveries.iter().map(|d| d.event.as_str()).collect();
    let created: Vec<Millis> = deliveries.iter().map(|d| d.created_at).collect();
    let next: Vec<Option<Millis>> = deliveries.iter().map(|d| d.next_attempt_at).collect();
    execute(
        tx,
        "INSERT INTO deliveries (id, subscription_id, app, url, execution_id, event, state, \
         created_at, next_attempt_at) \
         SELECT id, subscription_id, app, url, execution_id, event, 'pending', created_at, \
         next_attempt_at \
         FROM UNNEST($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], \
         $7::bigint[], $8::bigint[]) \
         AS d (id, subscription_id, app, url, execution_id, event, created_at, next_attempt_at)",
        &[
            &ids,
            &subscriptions,
            &apps,
            &urls,
            &executions,
            &events,
            &created,
            &next,
        ],
    )
    .await?;
    Ok(())
}

/// A new delivery id: `msg_` and a UUIDv7, so ids sort by creation (the list's cursor).
fn new_delivery_id() -> String {
    format!("msg_{}", uuid::Uuid::now_v7().simple())
}

/// What deleting an app removes here: its triggers, schedules, subscriptions and
/// run-webhook key; its pending deliveries are cancelled.
pub(super) async fn delete_app(tx: &Transaction<'_>, app: &str, at: Millis) -> anyhow::Result<()> {
    // Changes not yet expanded would become deliveries only to be cancelled. First, so a
    // claim expanding some of them finishes before this touches what it locks.
    execute(tx, "DELETE FROM outbox WHERE app = $1", &[&app]).await?;
    execute(tx, "DELETE FROM triggers WHERE app = $1", &[&app]).await?;
    execute(
        tx,
        "DELETE FROM schedule_ticks WHERE schedule_id IN (SELECT id FROM schedules WHERE app = $1)",
        &[&app],
    )
    .await?;
    execute(tx, "DELETE FROM schedules WHERE app = $1", &[&app]).await?;
    execute(tx, "DELETE FROM subscriptions WHERE app = $1", &[&app]).await?;
    execute(
        tx,
        "DELETE FROM run_webhook_secrets WHERE app = $1",
        &[&app],
    )
    .await?;
    execute(
        tx,
        "UPDATE deliveries SET state = 'cancelled', next_attempt_at = NULL, finished_at = $2 \
         WHERE app = $1 AND state = 'pending'",
        &[&app, &at],
    )
    .await?;
    Ok(())
}

/// What purging an app removes here: its deliveries and their attempts.
pub(super) async fn purge_app(tx: &Transaction<'_>, app: &str) -> anyhow::Result<()> {
    let gone = deleted_ids(
        query(
            tx,
            "DELETE FROM deliveries WHERE app = $1 RETURNING id",
            &[&app],
        )
        .await?,
    )?;
    delete_attempts(tx, &gone).await
}

/// The ids a `DELETE ... RETURNING id` returned.
fn deleted_ids(rows: Vec<Row>) -> anyhow::Result<Vec<String>> {
    Ok(rows
        .iter()
        .map(|row| row.try_get(0))
        .collect::<Result<_, _>>()?)
}

/// Deletes the attempts at deliveries `ids` (already deleted, in an earlier statement: its
/// snapshot is after any attempt recorded while they were locked).
async fn delete_attempts(tx: &Transaction<'_>, ids: &[String]) -> anyhow::Result<()> {
    if !ids.is_empty() {
        execute(
            tx,
            "DELETE FROM delivery_attempts WHERE delivery_id = ANY($1)",
            &[&ids],
        )
        .await?;
    }
    Ok(())
}

/// Rows one pruning write deletes at most, so it holds its locks briefly.
const PRUNE_PER_WRITE: i64 = 2000;

/// Deletes deliveries that ended before `deliveries_before` (with their attempts) and
/// ticks before `ticks_before`; returns how many rows went (a batch at most).
pub(super) async fn prune(
    tx: &Transaction<'_>,
    deliveries_before: Option<Millis>,
    ticks_before: Millis,
) -> anyhow::Result<usize> {
    let mut removed = 0;
    if let Some(before) = deliveries_before {
        // A delivery ends after it is made, so every one that ended before `before`
        // has an id below the first one made at `before`: the walk stops there.
        let made_before = format!("msg_{:012x}", before.max(0));
        let ended = deleted_ids(
            query(
                tx,
                "DELETE FROM deliveries WHERE id IN \
                 (SELECT id FROM deliveries WHERE id < $1 \
                  AND state != 'pending' AND finished_at < $2 ORDER BY id LIMIT $3 \
                  FOR UPDATE SKIP LOCKED) RETURNING id",
                &[&made_before, &before, &PRUNE_PER_WRITE],
            )
            .await?,
        )?;
        delete_attempts(tx, &ended).await?;
        removed += ended.len();
    }
    let ticks = execute(
        tx,
        "DELETE FROM schedule_ticks WHERE (schedule_id, tick) IN \
         (SELECT schedule_id, tick FROM schedule_ticks WHERE tick < $1 LIMIT $2 \
          FOR UPDATE SKIP LOCKED)",
        &[&ticks_before, &PRUNE_PER_WRITE],
    )
    .await?;
    Ok(removed + usize::try_from(ticks)?)
}

const TRIGGER_COLUMNS: &str = "id, app, action, secret, created_at, rotated_at";

fn trigger_row(row: &Row) -> anyhow::Result<TriggerRecord> {
    Ok(TriggerRecord {
        id: row.try_get(0)?,
        app: row.try_get(1)?,
        action: row.try_get(2)?,
        secret: row.try_get(3)?,
        created_at: row.try_get(4)?,
        rotated_at: row.try_get(5)?,
    })
}

pub(super) async fn insert_trigger(tx: &Transaction<'_>, t: &TriggerRecord) -> anyhow::Result<()> {
    execute(
        tx,
        &format!("INSERT INTO triggers ({TRIGGER_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6)"),
        &[
            &t.id,
            &t.app,
            &t.action,
            &t.secret,
            &t.created_at,
            &t.rotated_at,
        ],
    )
    .await?;
    Ok(())
}

pub(super) async fn trigger(
    db: &impl GenericClient,
    id: &str,
) -> anyhow::Result<Option<TriggerRecord>> {
    query_opt(
        db,
        &format!("SELECT {TRIGGER_COLUMNS} FROM triggers WHERE id = $1"),
        &[&id],
    )
    .await?
    .as_ref()
    .map(trigger_row)
    .transpose()
}

pub(super) async fn triggers(
    db: &impl GenericClient,
    app: &str,
) -> anyhow::Result<Vec<TriggerRecord>> {
    query(
        db,
        &format!("SELECT {TRIGGER_COLUMNS} FROM triggers WHERE app = $1 ORDER BY created_at, id"),
        &[&app],
    )
    .await?
    .iter()
    .map(trigger_row)
    .collect()
}

pub(super) async fn rotate_trigger(
    tx: &Transaction<'_>,
    app: &str,
    id: &str,
    secret: &[u8],
    at: Millis,
) -> anyhow::Result<bool> {
    Ok(execute(
        tx,
        "UPDATE triggers SET secret = $3, rotated_at = $4 WHERE app = $1 AND id = $2",
        &[&app, &id, &secret, &at],
    )
    .await?
        == 1)
}

pub(super) async fn delete_trigger(
    tx: &Transaction<'_>,
    app: &str,
    id: &str,
) -> anyhow::Result<bool> {
    Ok(execute(
        tx,
        "DELETE FROM triggers WHERE app = $1 AND id = $2",
        &[&app, &id],
    )
    .await?
        == 1)
}

const SCHEDULE_COLUMNS: &str = "id, app, action, inputs, cron, timezone, paused, next_tick, \
                                created_at, last_tick, last_execution_id, last_error";

fn schedule_row(row: &Row) -> anyhow::Result<ScheduleRecord> {
    Ok(ScheduleRecord {
        id: row.try_get(0)?,
        app: row.try_get(1)?,
        action: row.try_get(2)?,
        inputs: row.try_get(3)?,
        cron: row.try_get(4)?,
        timezone: row.try_get(5)?,
        paused: row.try_get(6)?,
        next_tick: row.try_get(7)?,
        created_at: row.try_get(8)?,
        last_tick: row.try_get(9)?,
        last_execution_id: row.try_get(10)?,
        last_error: row.try_get(11)?,
    })
}

pub(super) async fn insert_schedule(
    tx: &Transaction<'_>,
    s: &ScheduleRecord,
) -> anyhow::Result<()> {
    execute(
        tx,
        &format!(
            "INSERT INTO schedules ({SCHEDULE_COLUMNS}) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)"
        ),
        &[
            &s.id,
            &s.app,
            &s.action,
            &s.inputs,
            &s.cron,
            &s.timezone,
            &s.paused,
            &s.next_tick,
            &s.created_at,
            &s.last_tick,
            &s.last_execution_id,
            &s.last_error,
        ],
    )
    .await?;
    Ok(())
}

pub(super) async fn schedules(
    db: &impl GenericClient,
    app: &str,
) -> anyhow::Result<Vec<ScheduleRecord>> {
    query(
        db,
        &format!("SELECT {SCHEDULE_COLUMNS} FROM schedules WHERE app = $1 ORDER BY created_at, id"),
        &[&app],
    )
    .await?
    .iter()
    .map(schedule_row)
    .collect()
}

pub(super) async fn due_schedules(
    db: &impl GenericClient,
    before: Millis,
) -> anyhow::Result<Vec<ScheduleRecord>> {
    query(
        db,
        &format!(
            "SELECT {SCHEDULE_COLUMNS} FROM schedules WHERE NOT paused AND next_tick <= $1 \
             ORDER BY next_tick LIMIT 1000"
        ),
        &[&before],
    )
    .await?
    .iter()
    .map(schedule_row)
    .collect()
}

pub(super) async fn set_schedule_paused(
    tx: &Transaction<'_>,
    app: &str,
    id: &str,
    paused: bool,
    next_tick: Millis,
) -> anyhow::Result<bool> {
    Ok(execute(
        tx,
        "UPDATE schedules SET paused = $3, next_tick = $4 WHERE app = $1 AND id = $2",
        &[&app, &id, &paused, &next_tick],
    )
    .await?
        == 1)
}

pub(super) async fn delete_schedule(
    tx: &Transaction<'_>,
    app: &str,
    id: &str,
) -> anyhow::Result<bool> {
    // The schedule first: a claim of one of its ticks holding its row is waited for, and
    // its tick is then seen and deleted.
    if execute(
        tx,
        "DELETE FROM schedules WHERE app = $1 AND id = $2",
        &[&app, &id],
    )
    .await?
        == 0
    {
        return Ok(false);
    }
    execute(
        tx,
        "DELETE FROM schedule_ticks WHERE schedule_id = $1",
        &[&id],
    )
    .await?;
    Ok(true)
}

pub(super) async fn skip_tick(
    tx: &Transaction<'_>,
    claim: &TickClaim,
    error: &str,
) -> anyhow::Result<bool> {
    Ok(execute(
        tx,
        "UPDATE schedules SET next_tick = $3, last_tick = $2, last_execution_id = NULL, \
         last_error = $4 WHERE id = $1 AND NOT paused AND next_tick <= $2",
        &[&claim.schedule_id, &claim.tick, &claim.next_tick, &error],
    )
    .await?
        == 1)
}

const SUBSCRIPTION_COLUMNS: &str =
    "id, app, url, events, secret, created_at, disabled_at, disabled_reason";

fn subscription_row(row: &Row) -> anyhow::Result<SubscriptionRecord> {
    let events: String = row.try_get(3)?;
    Ok(SubscriptionRecord {
        id: row.try_get(0)?,
        app: row.try_get(1)?,
        url: row.try_get(2)?,
        events: serde_json::from_str(&events).context("a stored subscription's events")?,
        secret: row.try_get(4)?,
        created_at: row.try_get(5)?,
        disabled_at: row.try_get(6)?,
        disabled_reason: row.try_get(7)?,
    })
}

pub(super) async fn insert_subscription(
    tx: &Transaction<'_>,
    s: &SubscriptionRecord,
) -> anyhow::Result<()> {
    execute(
        tx,
        &format!(
            "INSERT INTO subscriptions ({SUBSCRIPTION_COLUMNS}) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)"
        ),
        &[
            &s.id,
            &s.app,
            &s.url,
            &serde_json::to_string(&s.events)?,
            &s.secret,
            &s.created_at,
            &s.disabled_at,
            &s.disabled_reason,
        ],
    )
    .await?;
    Ok(())
}

pub(super) async fn subscriptions(
    db: &impl GenericClient,
    app: &str,
) -> anyhow::Result<Vec<SubscriptionRecord>> {
    query(
        db,
        &format!(
            "SELECT {SUBSCRIPTION_COLUMNS} FROM subscriptions WHERE app = $1 \
             ORDER BY created_at, id"
        ),
        &[&app],
    )
    .await?
    .iter()
    .map(subscription_row)
    .collect()
}

pub(super) async fn delete_subscription(
    tx: &Transaction<'_>,
    app: &str,
    id: &str,
) -> anyhow::Result<bool> {
    if execute(
        tx,
        "DELETE FROM subscriptions WHERE app = $1 AND id = $2",
        &[&app, &id],
    )
    .await?
        == 0
    {
        return Ok(false);
    }
    let gone = deleted_ids(
        query(
            tx,
            "DELETE FROM deliveries WHERE subscription_id = $1 RETURNING id",
            &[&id],
        )
        .await?,
    )?;
    delete_attempts(tx, &gone).await?;
    Ok(true)
}

pub(super) async fn run_webhook_secret(
    tx: &Transaction<'_>,
    app: &str,
    new: &[u8],
    at: Millis,
) -> anyhow::Result<Vec<u8>> {
    // Two hosts making the key at once: the second insert waits for the first, does
    // nothing, and both return the first one's key.
    execute(
        tx,
        "INSERT INTO run_webhook_secrets (app, secret, created_at) VALUES ($1, $2, $3) \
         ON CONFLICT (app) DO NOTHING",
        &[&app, &new, &at],
    )
    .await?;
    Ok(query_one(
        tx,
        "SELECT secret FROM run_webhook_secrets WHERE app = $1",
        &[&app],
    )
    .await?
    .try_get(0)?)
}

const DELIVERY_COLUMNS: &str = "d.id, d.subscription_id, d.app, d.url, d.execution_id, d.event, \
                                d.state, d.attempts, d.created_at, d.next_attempt_at, d.finished_at";

fn delivery_row(row: &Row) -> anyhow::Result<DeliveryRecord> {
    let state: String = row.try_get(6)?;
    Ok(DeliveryRecord {
        id: row.try_get(0)?,
        subscription_id: row.try_get(1)?,
        app: row.try_get(2)?,
        url: row.try_get(3)?,
        execution_id: row.try_get(4)?,
        event: row.try_get(5)?,
        state: DeliveryState::parse(&state)
            .with_context(|| format!("unknown delivery state {state:?}"))?,
        attempts: row.try_get(7)?,
        created_at: row.try_get(8)?,
        next_attempt_at: row.try_get(9)?,
        finished_at: row.try_get(10)?,
    })
}

/// Claims up to `limit` deliveries due at `now`, holding them until `hold_until`: due
/// retries first, then new ones from the outbox.
pub(super) async fn claim_deliveries(
    tx: &Transaction<'_>,
    now: Millis,
    hold_until: Millis,
    limit: u32,
) -> anyhow::Result<Vec<DueDelivery>> {
    // Retries first, so a steady stream of new changes cannot starve them. Those another
    // claim holds are skipped, not waited for (it moves them past `now` anyway).
    let mut due: Vec<DueDelivery> = query(
        tx,
        &format!(
            "SELECT {DELIVERY_COLUMNS}, \
             CASE WHEN d.subscription_id IS NULL THEN r.secret ELSE s.secret END \
             FROM deliveries d \
             LEFT JOIN subscriptions s ON s.id = d.subscription_id \
             LEFT JOIN run_webhook_secrets r ON r.app = d.app \
             WHERE d.state = 'pending' AND d.next_attempt_at <= $1 \
             ORDER BY d.next_attempt_at LIMIT $2 FOR UPDATE OF d SKIP LOCKED"
        ),
        &[&now, &postgres::limit(limit)],
    )
    .await?
    .iter()
    .map(|row| {
        Ok(DueDelivery {
            delivery: delivery_row(row)?,
            secret: row.try_get(11)?,
        })
    })
    .collect::<anyhow::Result<_>>()?;
    if !due.is_empty() {
        let ids: Vec<&str> = due.iter().map(|d| d.delivery.id.as_str()).collect();
        execute(
            tx,
            "UPDATE deliveries SET next_attempt_at = $2 WHERE id = ANY($1)",
            &[&ids, &hold_until],
        )
        .await?;
        for due in &mut due {
            due.delivery.next_attempt_at = Some(hold_until);
        }
    }
    let room = usize::try_from(limit)
        .unwrap_or(usize::MAX)
        .saturating_sub(due.len());
    due.extend(expand(tx, hold_until, room).await?);
    Ok(due)
}

/// Records `attempt` and what follows it on its delivery.
pub(super) async fn record_attempt(
    tx: &Transaction<'_>,
    attempt: &AttemptRecord,
    next: AfterAttempt,
) -> anyhow::Result<()> {
    // Removed meanwhile (its subscription or app went): nothing to record it on. Locked,
    // so a removal waits for this attempt and deletes it with the delivery.
    let Some(row) = query_opt(
        tx,
        "SELECT subscription_id FROM deliveries WHERE id = $1 FOR UPDATE",
        &[&attempt.delivery_id],
    )
    .await?
    else {
        return Ok(());
    };
    let subscription: Option<String> = row.try_get(0)?;
    execute(
        tx,
        "INSERT INTO delivery_attempts (delivery_id, attempt, at, status, error, latency_ms) \
         VALUES ($1, $2, $3, $4, $5, $6) \
         ON CONFLICT (delivery_id, attempt) DO UPDATE SET at = excluded.at, \
         status = excluded.status, error = excluded.error, latency_ms = excluded.latency_ms",
        &[
            &attempt.delivery_id,
            &attempt.attempt,
            &attempt.at,
            &attempt.status.map(i64::from),
            &attempt.error,
            &attempt.latency_ms,
        ],
    )
    .await?;
    let now = attempt.at + attempt.latency_ms;
    let (state, next_at, finished_at) = match next {
        AfterAttempt::Delivered => (DeliveryState::Delivered, None, Some(now)),
        AfterAttempt::Retry(at) => (DeliveryState::Pending, Some(at), None),
        AfterAttempt::GiveUp => (DeliveryState::Failed, None, Some(now)),
        AfterAttempt::Gone => (DeliveryState::Cancelled, None, Some(now)),
    };
    // A delivery cancelled while its attempt was out keeps its state.
    execute(
        tx,
        "UPDATE deliveries SET attempts = GREATEST(attempts, $2), state = $3, \
         next_attempt_at = $4, finished_at = $5 WHERE id = $1 AND state = 'pending'",
        &[
            &attempt.delivery_id,
            &attempt.attempt,
            &state.as_str(),
            &next_at,
            &finished_at,
        ],
    )
    .await?;
    if let (AfterAttempt::Gone, Some(subscription)) = (next, subscription) {
        execute(
            tx,
            "UPDATE subscriptions SET disabled_at = $2, disabled_reason = $3 \
             WHERE id = $1 AND disabled_at IS NULL",
            &[&subscription, &now, &"the receiver answered 410 Gone"],
        )
        .await?;
        execute(
            tx,
            "UPDATE deliveries SET state = 'cancelled', next_attempt_at = NULL, finished_at = $2 \
             WHERE subscription_id = $1 AND state = 'pending'",
            &[&subscription, &now],
        )
        .await?;
    }
    Ok(())
}

/// A subscription's deliveries, newest first, before the cursor `before`, each with its
/// attempts.
pub(super) async fn deliveries(
    db: &impl GenericClient,
    subscription_id: &str,
    before: Option<&str>,
    limit: u32,
) -> anyhow::Result<Vec<DeliveryHistory>> {
    let records = query(
        db,
        &format!(
            "SELECT {DELIVERY_COLUMNS} FROM deliveries d WHERE d.subscription_id = $1 \
             AND ($2::text IS NULL OR d.id < $2) ORDER BY d.id DESC LIMIT $3"
        ),
        &[&subscription_id, &before, &postgres::limit(limit)],
    )
    .await?
    .iter()
    .map(delivery_row)
    .collect::<anyhow::Result<Vec<_>>>()?;
    if records.is_empty() {
        return Ok(Vec::new());
    }
    // The page's attempts in one query, not one per delivery.
    let ids: Vec<&str> = records.iter().map(|d| d.id.as_str()).collect();
    let mut attempts: HashMap<String, Vec<AttemptRecord>> = HashMap::new();
    for row in query(
        db,
        "SELECT delivery_id, attempt, at, status, error, latency_ms FROM delivery_attempts \
         WHERE delivery_id = ANY($1) ORDER BY delivery_id, attempt",
        &[&ids],
    )
    .await?
    {
        let status: Option<i64> = row.try_get(3)?;
        let attempt = AttemptRecord {
            delivery_id: row.try_get(0)?,
            attempt: row.try_get(1)?,
            at: row.try_get(2)?,
            status: status.map(u16::try_from).transpose()?,
            error: row.try_get(4)?,
            latency_ms: row.try_get(5)?,
        };
        attempts
            .entry(attempt.delivery_id.clone())
            .or_default()
            .push(attempt);
    }
    Ok(records
        .into_iter()
        .map(|delivery| DeliveryHistory {
            attempts: attempts.remove(&delivery.id).unwrap_or_default(),
            delivery,
        })
        .collect())
}

/// When the next delivery is due: a change still in the outbox counts as due at its
/// time (in the past: it is due now); `None` when nothing is pending.
pub(super) async fn next_delivery_at(db: &impl GenericClient) -> anyhow::Result<Option<Millis>> {
    Ok(query_one(
        db,
        "SELECT LEAST((SELECT at FROM outbox ORDER BY n LIMIT 1), \
         (SELECT MIN(next_attempt_at) FROM deliveries WHERE state = 'pending'))",
        &[],
    )
    .await?
    .try_get(0)?)
}
