//! Several hosts on one database (SPEC section 13): what each host does beside its own
//! runs when the store is shared. It renews the leases on the executions it runs (and
//! stops a guest whose lease another host took back), puts back in the queue the runs
//! of hosts that stopped renewing, and claims queued executions when it has free slots,
//! woken by other hosts' notifications or, failing those, every second.
//!
//! Nothing here runs for a store no other host shares.

use std::sync::Arc;
use std::time::Duration;

use crate::scheduler::Scheduler;
use crate::store::{DynStore, Millis, now_ms};

/// How often an idle host looks for queued executions without being told.
const CLAIM_LOOK: Duration = Duration::from_secs(1);

/// How long leases last, and how often they are renewed.
#[derive(Debug, Clone, Copy)]
pub struct Leases {
    /// How long a lease lasts unless renewed: a host that stops renewing (it died, or
    /// lost the database) has its runs taken back this long after.
    pub length: Duration,
    /// How often a host renews its leases (and looks for expired ones): well within
    /// `length`, so a slow renewal does not lose a run.
    pub renew: Duration,
}

/// Runs the host's part of the cluster for as long as the server runs.
pub async fn run(store: DynStore, scheduler: Arc<Scheduler>, leases: Leases) {
    tokio::spawn(hold_leases(store.clone(), scheduler.clone(), leases));
    let Some(queued) = store.queued_signal() else {
        return;
    };
    loop {
        let notified = queued.notified();
        // A host that cannot reach the database takes on nothing until it can.
        if !store.reachable() {
            tokio::time::sleep(CLAIM_LOOK).await;
            continue;
        }
        match scheduler.claim_shared().await {
            // More may wait: look again at once.
            Ok(n) if n > 0 => continue,
            Ok(_) => {}
            Err(e) => tracing::warn!("cannot claim queued executions (retrying): {e:#}"),
        }
        let _ = tokio::time::timeout(CLAIM_LOOK, notified).await;
    }
}

/// Renews this host's leases and takes back other hosts' expired ones, every
/// `leases.renew`.
async fn hold_leases(store: DynStore, scheduler: Arc<Scheduler>, leases: Leases) {
    let length = Millis::try_from(leases.length.as_millis()).unwrap_or(Millis::MAX);
    let mut tick = tokio::time::interval(leases.renew);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    // A run counts as running here a moment before its start commits: only one that
    // was running at the previous renewal too can have lost its lease.
    let mut before: Vec<String> = Vec::new();
    loop {
        tick.tick().await;
        let running = scheduler.running_ids();
        match store
            .renew_leases(running.clone(), now_ms().saturating_add(length))
            .await
        {
            Ok(held) => {
                let lost: Vec<String> = running
                    .iter()
                    .filter(|id| before.contains(id) && !held.iter().any(|(h, _)| h == *id))
                    .cloned()
                    .collect();
                scheduler.stop_lost(&lost);
                for (id, cancel) in held {
                    if cancel {
                        scheduler.cancel_here(&id);
                    }
                }
                before = running;
            }
            // Not renewed: if this lasts a lease, other hosts take the runs back and
            // this host's writes for them are refused.
            Err(e) => tracing::warn!("cannot renew leases (retrying): {e:#}"),
        }
        match store.expire_leases(now_ms()).await {
            Ok(recovery) if !recovery.retried.is_empty() || !recovery.failed.is_empty() => {
                tracing::warn!(
                    retried = recovery.retried.len(),
                    failed = recovery.failed.len(),
                    "took back executions of a host that stopped"
                );
            }
            Ok(_) => {}
            Err(e) => tracing::warn!("cannot look for expired leases (retrying): {e:#}"),
        }
    }
}
