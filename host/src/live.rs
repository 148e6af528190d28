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
    channels: Mutex<HashMap<String, Channel>>,
}

/// One execution's channel, and the last sequence number sent on it (where a reader of
/// another host's events goes on from).
struct Channel {
    sender: broadcast::Sender<Arc<StoredEvent>>,
    last: i64,
}

impl Live {
    fn channels(&self) -> std::sync::MutexGuard<'_, HashMap<String, Channel>> {
        self.channels.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Makes a channel for an execution that has not finished.
    pub fn open(&self, id: &str) {
        self.channels()
            .entry(id.to_owned())
            .or_insert_with(|| Channel {
                sender: broadcast::channel(CHANNEL_CAPACITY).0,
                last: 0,
            });
    }

    /// Follows an unfinished execution; `None` once it has finished (or is unknown).
    pub fn subscribe(&self, id: &str) -> Option<broadcast::Receiver<Arc<StoredEvent>>> {
        self.channels().get(id).map(|c| c.sender.subscribe())
    }

    /// Sends committed events to their subscribers. A terminal event closes the channel
    /// (receivers still get everything sent before).
    pub fn publish(&self, event: StoredEvent) {
        let mut channels = self.channels();
        let terminal = event.is_terminal();
        if let Some(channel) = channels.get_mut(&event.execution_id) {
            channel.last = channel.last.max(event.seq);
            // No receiver is fine: nobody is watching.
            let _ = channel.sender.send(Arc::new(event.clone()));
        }
        if terminal {
            channels.remove(&event.execution_id);
        }
    }

    /// The last sequence number sent to the followers of `id`, when it has any.
    pub fn last_seq(&self, id: &str) -> Option<i64> {
        self.channels()
            .get(id)
            .filter(|c| c.sender.receiver_count() > 0)
            .map(|c| c.last)
    }

    /// Every execution with followers, and the last sequence number each was sent.
    pub fn followed(&self) -> Vec<(String, i64)> {
        self.channels()
            .iter()
            .filter(|(_, c)| c.sender.receiver_count() > 0)
            .map(|(id, c)| (id.clone(), c.last))
            .collect()
    }

    /// Closes the channel of `id` if nobody follows it: one opened for an execution of
    /// another host, once its last follower here is gone.
    pub fn close_unfollowed(&self, id: &str) {
        let mut channels = self.channels();
        if channels
            .get(id)
            .is_some_and(|c| c.sender.receiver_count() == 0)
        {
            channels.remove(id);
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
