//! Periodic clean-up of what finished executions leave behind: their streamed events
//! after the retention period (the execution, its output and its terminal event stay).
//! Each pass deletes in bounded writes, so other writes interleave with it.

use std::time::Duration;

use crate::store::{DynStore, Millis, now_ms};

/// How often the sweeper looks for work.
const EVERY: Duration = Duration::from_secs(600);

/// Prunes the events of executions finished more than `retention` ago, now and every
/// ten minutes; `None` keeps them forever.
pub async fn run(store: DynStore, retention: Option<Duration>) {
    let Some(retention) = retention else { return };
    let retention_ms = Millis::try_from(retention.as_millis()).unwrap_or(Millis::MAX);
    let mut ticks = tokio::time::interval(EVERY);
    loop {
        ticks.tick().await;
        let cutoff = now_ms().saturating_sub(retention_ms);
        let mut pruned = 0;
        loop {
            match store.prune_events(cutoff).await {
                Ok(0) => break,
                Ok(n) => pruned += n,
                Err(e) => {
                    tracing::warn!("pruning old events failed (retried later): {e:#}");
                    break;
                }
            }
        }
        if pruned > 0 {
            tracing::info!(executions = pruned, "pruned the events of old executions");
        }
    }
}
