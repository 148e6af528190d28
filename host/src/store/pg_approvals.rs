//! Approvals (SPEC section 11) on PostgreSQL: deciding, listing and expiring executions
//! that await a person's decision. Each decision is one transaction over the execution's
//! row (locked first, so hosts deciding at once take turns), its events and its
//! notifications: whoever commits first decides, and anyone after finds it no longer
//! pending.

use deadpool_postgres::{GenericClient, Transaction};
use serde_json::value::RawValue;

use super::decision::{self, Next};
use super::pg_hooks;
use super::postgres::{
    self, EXECUTION_COLUMNS, Effects, execute, execution_row, insert_event, next_seq, query,
    query_one, query_opt,
};
use super::{
    Approval, Decided, Decision, DecisionNote, ExecStatus, ExecutionRecord, ListApprovals, Millis,
};
use crate::events;

/// Approvals one expiry write ends at most, so it holds its locks briefly.
const EXPIRE_PER_WRITE: i64 = 100;

/// Decides execution `id`; see [`super::Store::decide`].
pub(super) async fn decide(
    tx: &Transaction<'_>,
    effects: &mut Effects,
    id: &str,
    decision: Decision,
    note: &DecisionNote,
    at: Millis,
) -> anyhow::Result<Decided> {
    // A decision on another host holds the row until it commits; this one then reads
    // the decided row.
    let Some(row) = query_opt(
        tx,
        &format!("SELECT {EXECUTION_COLUMNS} FROM executions WHERE id = $1 FOR UPDATE"),
        &[&id],
    )
    .await?
    else {
        return Ok(Decided::NotFound);
    };
    let record = execution_row(&row)?;
    let pending = record
        .approval
        .as_deref()
        .filter(|_| record.status == ExecStatus::AwaitingApproval);
    let Some(pending) = pending else {
        return Ok(Decided::NotPending(record.status));
    };
    let mut approval: Approval = serde_json::from_str(pending)?;
    let next = decision::decide(&mut approval, decision, note, at);
    let approval_json = serde_json::to_string(&approval)?;
    let decided = events::decision(
        id,
        next_seq(tx, id).await?,
        &RawValue::from_string(approval_json.clone())?,
    );
    insert_event(tx, &decided).await?;
    effects.publish.push(decided);

    let (status, output, error) = match next {
        Next::Step { action, inputs } => {
            // The next step: queued again, with an attempt counter of its own.
            execute(
                tx,
                "UPDATE executions SET status = 'queued', approval = $2, approval_expires_at = NULL, \
                 step = step + 1, step_action = $3, step_inputs = $4, attempts = 0, started_at = NULL \
                 WHERE id = $1",
                &[&id, &approval_json, &action, &inputs],
            )
            .await?;
            effects.queued = true;
            return Ok(Decided::NextStep(reread(tx, id).await?));
        }
        Next::End {
            status,
            output,
            error,
        } => (status, output, error),
    };
    let error_json = error.as_ref().map(serde_json::to_string).transpose()?;
    let row = query_one(
        tx,
        "UPDATE executions SET status = $2, output = $3, error = $4, finished_at = $5, \
         approval = $6, approval_expires_at = NULL WHERE id = $1 RETURNING app, webhook",
        &[
            &id,
            &status.as_str(),
            &output,
            &error_json,
            &at,
            &approval_json,
        ],
    )
    .await?;
    let (app, webhook): (String, Option<String>) = (row.try_get(0)?, row.try_get(1)?);
    effects.outbox |= pg_hooks::enqueue(tx, id, &app, webhook.as_deref(), status, at).await?;
    let seq = next_seq(tx, id).await?;
    let terminal = decision::terminal(&record, seq, status, output.as_deref(), error.as_ref())?;
    insert_event(tx, &terminal).await?;
    effects.publish.push(terminal);
    Ok(Decided::Ended(reread(tx, id).await?))
}

async fn reread(tx: &Transaction<'_>, id: &str) -> anyhow::Result<ExecutionRecord> {
    execution_row(
        &query_one(
            tx,
            &format!("SELECT {EXECUTION_COLUMNS} FROM executions WHERE id = $1"),
            &[&id],
        )
        .await?,
    )
}

/// Executions awaiting approval, oldest first.
pub(super) async fn pending(
    db: &impl GenericClient,
    filter: &ListApprovals,
) -> anyhow::Result<Vec<ExecutionRecord>> {
    query(
        db,
        &format!(
            "SELECT {EXECUTION_COLUMNS} FROM executions \
             WHERE status = 'awaiting_approval' AND ($1::text IS NULL OR app = $1) \
             AND ($2::text[] IS NULL OR app = ANY($2)) \
             AND ($3::bigint IS NULL OR n > $3) ORDER BY n LIMIT $4"
        ),
        &[
            &filter.app.as_deref(),
            &filter.apps.as_deref(),
            &filter.after,
            &postgres::limit(filter.limit),
        ],
    )
    .await?
    .iter()
    .map(execution_row)
    .collect()
}

/// How many executions await approval.
pub(super) async fn pending_count(
    db: &impl GenericClient,
    apps: Option<&[String]>,
) -> anyhow::Result<i64> {
    Ok(query_one(
        db,
        "SELECT COUNT(*) FROM executions WHERE status = 'awaiting_approval' \
         AND ($1::text[] IS NULL OR app = ANY($1))",
        &[&apps],
    )
    .await?
    .try_get(0)?)
}

/// Whether any approval expired at `now`: the cheap read before [`expire`] writes.
pub(super) async fn any_expired(db: &impl GenericClient, now: Millis) -> anyhow::Result<bool> {
    Ok(query_one(
        db,
        "SELECT EXISTS (SELECT 1 FROM executions \
         WHERE status = 'awaiting_approval' AND approval_expires_at <= $1)",
        &[&now],
    )
    .await?
    .try_get(0)?)
}

/// Ends up to [`EXPIRE_PER_WRITE`] approvals that expired at `now`. Those another host
/// is expiring or deciding (their rows locked) are left to it.
pub(super) async fn expire(
    tx: &Transaction<'_>,
    effects: &mut Effects,
    now: Millis,
) -> anyhow::Result<Vec<String>> {
    let due: Vec<String> = query(
        tx,
        "SELECT id FROM executions \
         WHERE status = 'awaiting_approval' AND approval_expires_at <= $1 \
         ORDER BY approval_expires_at LIMIT $2 FOR UPDATE SKIP LOCKED",
        &[&now, &EXPIRE_PER_WRITE],
    )
    .await?
    .iter()
    .map(|row| row.try_get(0))
    .collect::<Result<_, _>>()?;
    for id in &due {
        decide(
            tx,
            effects,
            id,
            Decision::Expire,
            &DecisionNote::default(),
            now,
        )
        .await?;
    }
    Ok(due)
}
