//! Approvals (SPEC section 11) on SQLite: deciding, listing and expiring executions that
//! await a person's decision. Each decision is one transaction over the execution's row,
//! its events and its notifications, guarded by `status = 'awaiting_approval'`: whoever
//! commits first decides, and anyone after finds it no longer pending.

use rusqlite::{Connection, OptionalExtension, params};
use serde_json::value::RawValue;

use super::decision::{self, Next};
use super::sqlite::{EXECUTION_COLUMNS, Effects, execution_row, insert_event, next_seq};
use super::sqlite_hooks;
use super::{
    Approval, Decided, Decision, DecisionNote, ExecStatus, ExecutionRecord, ListApprovals, Millis,
};
use crate::events;

/// Approvals one expiry write ends at most, so it holds the writer briefly.
const EXPIRE_PER_WRITE: i64 = 100;

/// Decides execution `id`; see [`super::Store::decide`].
pub(super) fn decide(
    tx: &Connection,
    effects: &mut Effects,
    id: &str,
    decision: Decision,
    note: &DecisionNote,
    at: Millis,
) -> anyhow::Result<Decided> {
    let Some(record) = tx
        .prepare_cached(&format!(
            "SELECT {EXECUTION_COLUMNS} FROM executions WHERE id = ?1"
        ))?
        .query_row([id], execution_row)
        .optional()?
    else {
        return Ok(Decided::NotFound);
    };
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
        next_seq(tx, id)?,
        &RawValue::from_string(approval_json.clone())?,
    );
    insert_event(tx, &decided)?;
    effects.publish.push(decided);

    let (status, output, error) = match next {
        Next::Step { action, inputs } => {
            // The next step: queued again, with an attempt counter of its own.
            tx.prepare_cached(
                "UPDATE executions SET status = 'queued', approval = ?2, approval_expires_at = NULL, \
                 step = step + 1, step_action = ?3, step_inputs = ?4, attempts = 0, started_at = NULL \
                 WHERE id = ?1",
            )?
            .execute(params![id, approval_json, action, inputs])?;
            return Ok(Decided::NextStep(reread(tx, id)?));
        }
        Next::End {
            status,
            output,
            error,
        } => (status, output, error),
    };
    let error_json = error.as_ref().map(serde_json::to_string).transpose()?;
    let (app, webhook): (String, Option<String>) = tx
        .prepare_cached(
            "UPDATE executions SET status = ?2, output = ?3, error = ?4, finished_at = ?5, \
             approval = ?6, approval_expires_at = NULL WHERE id = ?1 RETURNING app, webhook",
        )?
        .query_row(
            params![id, status.as_str(), output, error_json, at, approval_json],
            |row| Ok((row.get(0)?, row.get(1)?)),
        )?;
    effects.outbox |= sqlite_hooks::enqueue(tx, id, &app, webhook.as_deref(), status, at)?;
    let seq = next_seq(tx, id)?;
    let terminal = decision::terminal(&record, seq, status, output.as_deref(), error.as_ref())?;
    insert_event(tx, &terminal)?;
    effects.publish.push(terminal);
    Ok(Decided::Ended(reread(tx, id)?))
}

fn reread(tx: &Connection, id: &str) -> anyhow::Result<ExecutionRecord> {
    Ok(tx
        .prepare_cached(&format!(
            "SELECT {EXECUTION_COLUMNS} FROM executions WHERE id = ?1"
        ))?
        .query_row([id], execution_row)?)
}

/// Executions awaiting approval, oldest first.
pub(super) fn pending(
    conn: &Connection,
    filter: &ListApprovals,
) -> anyhow::Result<Vec<ExecutionRecord>> {
    let apps = filter
        .apps
        .as_ref()
        .map(serde_json::to_string)
        .transpose()?;
    let rows = conn
        .prepare_cached(&format!(
            "SELECT {EXECUTION_COLUMNS} FROM executions INDEXED BY executions_awaiting \
             WHERE status = 'awaiting_approval' AND (?1 IS NULL OR app = ?1) \
             AND (?2 IS NULL OR app IN (SELECT value FROM json_each(?2))) \
             AND (?3 IS NULL OR n > ?3) ORDER BY n LIMIT ?4"
        ))?
        .query_map(
            params![filter.app, apps, filter.after, filter.limit],
            execution_row,
        )?
        .collect::<rusqlite::Result<_>>()?;
    Ok(rows)
}

/// How many executions await approval.
pub(super) fn pending_count(conn: &Connection, apps: Option<&[String]>) -> anyhow::Result<i64> {
    let apps = apps.map(serde_json::to_string).transpose()?;
    Ok(conn
        .prepare_cached(
            "SELECT COUNT(*) FROM executions INDEXED BY executions_awaiting \
             WHERE status = 'awaiting_approval' \
             AND (?1 IS NULL OR app IN (SELECT value FROM json_each(?1)))",
        )?
        .query_row([apps], |row| row.get(0))?)
}

/// Ends up to [`EXPIRE_PER_WRITE`] approvals that expired at `now`.
pub(super) fn expire(
    tx: &Connection,
    effects: &mut Effects,
    now: Millis,
) -> anyhow::Result<Vec<String>> {
    let due: Vec<String> = tx
        .prepare_cached(
            "SELECT id FROM executions INDEXED BY executions_awaiting \
             WHERE status = 'awaiting_approval' AND approval_expires_at <= ?1 \
             ORDER BY approval_expires_at LIMIT ?2",
        )?
        .query_map(params![now, EXPIRE_PER_WRITE], |row| row.get(0))?
        .collect::<rusqlite::Result<_>>()?;
    for id in &due {
        decide(
            tx,
            effects,
            id,
            Decision::Expire,
            &DecisionNote::default(),
            now,
        )?;
    }
    Ok(due)
}
