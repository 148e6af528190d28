//! A sync run started before its execution is written. One that ends within
//! [`WRITE_WINDOW`] is written once, with its end: one commit instead of two, and half
//! the pages. Until then nobody has seen its id (the request that waits for it holds
//! it, and answers only with the end); it is written as running first as soon as
//! anything could reveal it: an event to store, files it left, the window passing, or
//! the waiting request giving up before the end. A crash before the one commit loses a
//! run no client heard of, never one a client has seen.

use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use tokio::sync::Mutex;

use super::retry_store;
use crate::store::{DynStore, Finish, NewExecution};

/// How long a sync run may go before its execution is written as running.
pub(super) const WRITE_WINDOW: Duration = Duration::from_millis(10);

/// Where the execution stands in the store.
#[derive(Clone, Copy, PartialEq, Eq)]
enum State {
    Unwritten,
    /// Written as running: its end is written as for any run.
    Running,
    /// Written with its end.
    Finished,
}

/// A run's execution that may not be written yet.
pub struct Unwritten {
    execution: NewExecution,
    store: DynStore,
    draining: Arc<AtomicBool>,
    state: Arc<Mutex<State>>,
}

impl std::fmt::Debug for Unwritten {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Unwritten")
            .field("execution", &self.execution.id)
            .finish_non_exhaustive()
    }
}

impl Unwritten {
    pub(super) fn new(execution: NewExecution, store: DynStore, draining: Arc<AtomicBool>) -> Self {
        Unwritten {
            execution,
            store,
            draining,
            state: Arc::new(Mutex::new(State::Unwritten)),
        }
    }

    /// Writes the execution as running, unless it is written already; retries a store
    /// that fails until it succeeds (or the server shuts down).
    ///
    /// Safe to drop halfway: the write goes on in a task of its own and records what it
    /// did, so a write that commits is never attempted again.
    pub async fn write(&self) -> anyhow::Result<()> {
        let mut state = self.state.clone().lock_owned().await;
        if *state != State::Unwritten {
            return Ok(());
        }
        let (execution, store, draining) = (
            self.execution.clone(),
            self.store.clone(),
            self.draining.clone(),
        );
        tokio::spawn(async move {
            retry_store(&draining, &execution.id, || {
                store.insert_execution(execution.clone(), None)
            })
            .await?;
            *state = State::Running;
            Ok(())
        })
        .await
        .map_err(|e| anyhow::anyhow!("the execution's write failed: {e}"))?
    }

    /// Writes the run's end: with the execution, in one commit, when it is not written
    /// yet. (Called in a retry loop: an end written once is not written again.)
    pub(super) async fn finish(&self, finish: Finish) -> anyhow::Result<()> {
        let mut state = self.state.lock().await;
        match *state {
            State::Unwritten => {
                self.store
                    .insert_finished(self.execution.clone(), finish)
                    .await?;
                *state = State::Finished;
            }
            State::Running => {
                self.store
                    .finish_execution(&self.execution.id, finish)
                    .await?;
                *state = State::Finished;
            }
            State::Finished => {}
        }
        Ok(())
    }
}
