//! Live subscribers: a broadcast channel per unfinished execution, fed by the store after
//! each commit. Readers replay the store first and then follow the channel, dropping what
//! they already saw by sequence number.

use std::collections::HashMap;
use std::ops::Deref;
use std::sync::{Arc, Mutex, OnceLock};

use bytes::Bytes;
use tokio::sync::broadcast;

use crate::store::StoredEvent;

/// Events buffered per execution for subscribers that fall behind; a subscriber that
/// lags further re-reads the store. Every queued execution has a channel, so this is
/// kept small (the ring is allocated up front).
const CHANNEL_CAPACITY: usize = 64;

/// A committed event as its live followers get it: one copy shared by all of them, with
/// its SSE frame rendered once, by the first follower that sends it. Ten thousand
/// viewers of one run otherwise cloned and formatted every event ten thousand times
/// (the allocator was a third of the HTTP thread's time in that fan-out).
pub struct LiveEvent {
    event: StoredEvent,
    frame: OnceLock<Bytes>,
}

impl LiveEvent {
    /// Wraps an event for its followers.
    pub fn new(event: StoredEvent) -> Arc<Self> {
        Arc::new(LiveEvent {
            event,
            frame: OnceLock::new(),
        })
    }

    /// The event as one SSE frame (`id`, `event`, `data` lines and the blank line).
    pub fn frame(&self) -> Bytes {
        self.frame.get_or_init(|| sse_frame(&self.event)).clone()
    }

    /// The event itself, copied only when others still hold it.
    pub fn into_event(self: Arc<Self>) -> StoredEvent {
        Arc::try_unwrap(self).map_or_else(|shared| shared.event.clone(), |own| own.event)
    }
}

impl Deref for LiveEvent {
    type Target = StoredEvent;

    fn deref(&self) -> &StoredEvent {
        &self.event
    }
}

/// `event` as an SSE frame. Its data is JSON, which has no raw line breaks; a line
/// break would still end up as one `data:` line per line, as SSE wants.
fn sse_frame(event: &StoredEvent) -> Bytes {
    let mut frame = format!("id: {}\nevent: {}\n", event.seq, event.kind);
    for line in event.data.split('\n') {
        frame.push_str("data: ");
        frame.push_str(line.strip_suffix('\r').unwrap_or(line));
        frame.push('\n');
    }
    frame.push('\n');
    Bytes::from(frame)
}

/// The broadcast channels of unfinished executions.
#[derive(Default)]
pub struct Live {
    channels: Mutex<HashMap<String, Channel>>,
}

/// One execution's channel, and the last sequence number sent on it (where a reader of
/// another host's events goes on from).
struct Channel {
    sender: broadcast::Sender<Arc<LiveEvent>>,
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
    pub fn subscribe(&self, id: &str) -> Option<broadcast::Receiver<Arc<LiveEvent>>> {
        self.channels().get(id).map(|c| c.sender.subscribe())
    }

    /// Sends committed events to their subscribers. A terminal event closes the channel
    /// (receivers still get everything sent before).
    pub fn publish(&self, event: StoredEvent) {
        let mut channels = self.channels();
        if event.is_terminal() {
            if let Some(channel) = channels.remove(&event.execution_id) {
                // No receiver is fine: nobody is watching.
                let _ = channel.sender.send(LiveEvent::new(event));
            }
        } else if let Some(channel) = channels.get_mut(&event.execution_id) {
            channel.last = channel.last.max(event.seq);
            let _ = channel.sender.send(LiveEvent::new(event));
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

#[cfg(test)]
mod tests {
    use super::*;

    fn event(seq: i64, kind: &str, data: &str) -> StoredEvent {
        StoredEvent {
            execution_id: "exec_1".into(),
            seq,
            kind: kind.into(),
            data: data.into(),
        }
    }

    #[test]
    fn an_event_is_one_sse_frame_with_a_data_line_per_line() {
        let frame = LiveEvent::new(event(7, "chunk", r#"{"type":"chunk","data":"a"}"#)).frame();
        assert_eq!(
            &frame[..],
            b"id: 7\nevent: chunk\ndata: {\"type\":\"chunk\",\"data\":\"a\"}\n\n"
        );
        let frame = LiveEvent::new(event(8, "log", "one\r\ntwo")).frame();
        assert_eq!(&frame[..], b"id: 8\nevent: log\ndata: one\ndata: two\n\n");
    }

    /// Every follower gets the same event, and the last one out takes it without a copy.
    #[test]
    fn followers_share_one_event_until_the_end_closes_the_channel() {
        let live = Live::default();
        live.open("exec_1");
        let (mut a, mut b) = (
            live.subscribe("exec_1").unwrap(),
            live.subscribe("exec_1").unwrap(),
        );
        live.publish(event(1, "chunk", "{}"));
        live.publish(event(2, "end", "{}"));
        let (first_a, first_b) = (a.try_recv().unwrap(), b.try_recv().unwrap());
        assert!(Arc::ptr_eq(&first_a, &first_b));
        assert_eq!(first_a.frame(), first_b.frame());
        assert_eq!(a.try_recv().unwrap().into_event().kind, "end");
        assert!(
            live.subscribe("exec_1").is_none(),
            "the end closes the channel"
        );
        assert!(live.is_empty());
    }
}
