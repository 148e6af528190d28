//! Periodic clean-up of what finished work leaves behind: input files and artifacts
//! (rows and blobs) after their retention period (30 days by default), the streamed events of
//! executions after the retention period (the execution, its output and its terminal
//! event stay), ended notification deliveries after the same period, and schedule tick
//! claims after a day. Each pass deletes in bounded writes, so other writes interleave
//! with it.

use std::sync::Arc;
use std::time::Duration;

use crate::artifacts::Files;

use crate::store::{DynStore, Millis, now_ms};

/// How often the sweeper looks for work.
const EVERY: Duration = Duration::from_secs(600);
/// How long a schedule's claimed ticks are kept: a tick before the schedule's next tick
/// cannot be claimed again, so the rows only guard against a second host racing for the
/// current one.
const TICKS_KEPT_MS: Millis = 24 * 3600 * 1000;

/// Prunes, now and every ten minutes, the events and deliveries of work finished more
/// than `retention` ago (`None` keeps them forever) and tick claims older than a day.
pub async fn run(store: DynStore, retention: Option<Duration>, files: Arc<Files>) {
    let retention_ms = retention.map(|r| Millis::try_from(r.as_millis()).unwrap_or(Millis::MAX));
    let mut ticks = tokio::time::interval(EVERY);
    loop {
        ticks.tick().await;
        match files.sweep(&store).await {
            Ok(0) => {}
            Ok(blobs) => tracing::info!(blobs, "deleted expired input files and artifacts"),
            Err(e) => tracing::warn!("deleting expired artifacts failed (retried later): {e:#}"),
        }
        let now = now_ms();
        let cutoff = retention_ms.map(|r| now.saturating_sub(r));
        if let Some(cutoff) = cutoff {
            let pruned = drain(|| store.prune_events(cutoff), "old events").await;
            if pruned > 0 {
                tracing::info!(executions = pruned, "pruned the events of old executions");
            }
        }
        let pruned = drain(
            || store.prune_outbox(cutoff, now - TICKS_KEPT_MS),
            "old deliveries and tick claims",
        )
        .await;
        if pruned > 0 {
            tracing::info!(rows = pruned, "pruned old deliveries and tick claims");
        }
    }
}

/// Calls `prune` until it has nothing left; returns the total it removed.
async fn drain<F, Fut>(mut prune: F, what: &str) -> usize
where
    F: FnMut() -> Fut,
    Fut: Future<Output = anyhow::Result<usize>>,
{
    let mut total = 0;
    loop {
        match prune().await {
            Ok(0) => return total,
            Ok(n) => total += n,
            Err(e) => {
                tracing::warn!("pruning {what} failed (retried later): {e:#}");
                return total;
            }
        }
    }
}
