//! Live subscribers: a broadcast channel per unfinished execution, fed by the store after
//! each commit. Readers replay the store first and then follow the channel, dropping what
//! they already saw by sequence number.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use tokio::sync::broadcast;

use crate::store::StoredEvent;

/// Events buffered per execution for subscribers that fall behind; a subscriber that
/// lags further re-reads the store. Every queued execution has a channel, so this is
/// kept small (the ring is allocated up front).
const CHANNEL_CAPACITY: usize = 64;

/// The broadcast channels of unfinished executions.
#[derive(Default)]
pub struct Live {
    channels: Mutex<HashMap<String, broadcast::Sender<Arc<StoredEvent>>>>,
}

impl Live {
    fn channels(
        &self,
    ) -> std::sync::MutexGuard<'_, HashMap<String, broadcast::Sender<Arc<StoredEvent>>>> {
        self.channels.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Makes a channel for an execution that has not finished.
    pub fn open(&self, id: &str) {
        self.channels()
            .entry(id.to_owned())
            .or_insert_with(|| broadcast::channel(CHANNEL_CAPACITY).0);
    }

    /// Follows an unfinished execution; `None` once it has finished (or is unknown).
    pub fn subscribe(&self, id: &str) -> Option<broadcast::Receiver<Arc<StoredEvent>>> {
        self.channels().get(id).map(broadcast::Sender::subscribe)
    }

    /// Sends committed events to their subscribers. A terminal event closes the channel
    /// (receivers still get everything sent before).
    pub fn publish(&self, event: StoredEvent) {
        let mut channels = self.channels();
        let terminal = event.is_terminal();
        if let Some(sender) = channels.get(&event.execution_id) {
            // No receiver is fine: nobody is watching.
            let _ = sender.send(Arc::new(event.clone()));
        }
        if terminal {
            channels.remove(&event.execution_id);
        }
    }

    /// How many executions are unfinished.
    pub fn len(&self) -> usize {
        self.channels().len()
    }

    /// Whether no execution is unfinished.
    pub fn is_empty(&self) -> bool {
        self.channels().is_empty()
    }
}
