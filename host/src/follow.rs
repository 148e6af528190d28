//! Reading an execution's events: replay what the store has after a sequence number,
//! then follow the live channel until the terminal event. Events are published only
//! after they are committed, so subscribe-then-replay never misses one; duplicates are
//! dropped by sequence number.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{broadcast, mpsc};

use crate::live::{Live, LiveEvent};
use crate::store::{DynStore, StoredEvent};

const PAGE: u32 = 500;

/// Streams the events of `id` after `after` into the returned channel, ending after the
/// terminal event (or when the receiver is dropped). Live events come as their
/// followers share them; replayed ones are wrapped the same way.
pub fn follow(
    store: DynStore,
    live: Arc<Live>,
    id: String,
    after: i64,
) -> mpsc::Receiver<Arc<LiveEvent>> {
    let (tx, rx) = mpsc::channel(64);
    tokio::spawn(async move {
        if let Err(e) = run(store, live, &id, after, tx).await {
            tracing::warn!(execution = %id, "event stream stopped: {e:#}");
        }
    });
    rx
}

/// Sends the stored events of `id` after `last`; returns the new last sequence number
/// and whether the terminal event was among them. `Err` when the receiver is gone.
async fn replay(
    store: &DynStore,
    id: &str,
    mut last: i64,
    tx: &mpsc::Sender<Arc<LiveEvent>>,
) -> anyhow::Result<(i64, bool)> {
    loop {
        let page = store.events_after(id, last, PAGE).await?;
        let full = page.len() == PAGE as usize;
        for event in page {
            last = event.seq;
            let terminal = event.is_terminal();
            tx.send(LiveEvent::new(event)).await?;
            if terminal {
                return Ok((last, true));
            }
        }
        if !full {
            return Ok((last, false));
        }
    }
}

async fn run(
    store: DynStore,
    live: Arc<Live>,
    id: &str,
    after: i64,
    tx: mpsc::Sender<Arc<LiveEvent>>,
) -> anyhow::Result<()> {
    // Subscribe first: anything committed before this is in the store.
    let subscription = live.subscribe(id);
    let (mut last, done) = replay(&store, id, after, &tx).await?;
    if done {
        return Ok(());
    }
    let live_events = match subscription {
        Some(events) => events,
        // Unfinished, and another host's: this host gets its events through the store's
        // notifications from now on; the replay below takes what came meanwhile.
        None if store.shared() => {
            live.open(id);
            let events = live.subscribe(id);
            let (seq, done) = replay(&store, id, last, &tx).await?;
            last = seq;
            match events {
                Some(events) if !done => {
                    let result = follow_live(&store, id, last, events, &tx).await;
                    live.close_unfollowed(id);
                    return result;
                }
                _ => {
                    live.close_unfollowed(id);
                    return Ok(());
                }
            }
        }
        None => {
            // Finished (or never queued) before we subscribed: the store has it all.
            replay(&store, id, last, &tx).await?;
            return Ok(());
        }
    };
    follow_live(&store, id, last, live_events, &tx).await
}

/// How long a follower of a shared store waits for a live event before it looks at
/// the store itself: a notification from another host that went missing costs this
/// much latency, never an event.
const SHARED_POLL: Duration = Duration::from_secs(1);

/// Follows the live channel after `last` until the terminal event.
async fn follow_live(
    store: &DynStore,
    id: &str,
    mut last: i64,
    mut live_events: broadcast::Receiver<Arc<LiveEvent>>,
    tx: &mpsc::Sender<Arc<LiveEvent>>,
) -> anyhow::Result<()> {
    let shared = store.shared();
    loop {
        let received = if shared {
            match tokio::time::timeout(SHARED_POLL, live_events.recv()).await {
                Ok(received) => received,
                Err(_) => {
                    let (seq, done) = replay(store, id, last, tx).await?;
                    last = seq;
                    if done {
                        return Ok(());
                    }
                    continue;
                }
            }
        } else {
            live_events.recv().await
        };
        match received {
            Ok(event) if event.seq <= last => {}
            Ok(event) if event.seq == last + 1 => {
                last = event.seq;
                let terminal = event.is_terminal();
                tx.send(event).await?;
                if terminal {
                    return Ok(());
                }
            }
            // A gap or a lag: the store has what was missed.
            Ok(_) | Err(broadcast::error::RecvError::Lagged(_)) => {
                let (seq, done) = replay(store, id, last, tx).await?;
                last = seq;
                if done {
                    return Ok(());
                }
            }
            Err(broadcast::error::RecvError::Closed) => {
                replay(store, id, last, tx).await?;
                return Ok(());
            }
        }
    }
}

/// How waiting for the end went.
#[derive(Debug)]
pub enum Waited {
    /// The terminal event arrived.
    Event(StoredEvent),
    /// The execution ended before it could be watched: read it from the store.
    Ended,
    /// Still going when the time was up.
    TimedOut,
}

/// Waits up to `timeout` for the terminal event (or the `approval` event) of an
/// execution followed through
/// `subscription`, which was taken while the execution could not yet have ended. Every
/// unfinished execution has a live channel, so no subscription means it has ended. A
/// caller may wait again on the same subscription after [`Waited::TimedOut`].
pub async fn wait_for_end(
    subscription: &mut Option<broadcast::Receiver<Arc<LiveEvent>>>,
    timeout: Duration,
) -> Waited {
    let Some(events) = subscription else {
        return Waited::Ended;
    };
    let wait = async {
        loop {
            match events.recv().await {
                Ok(event) if event.ends_wait() => return Waited::Event(event.into_event()),
                // Only the terminal event matters here; a lag skips older ones.
                Ok(_) | Err(broadcast::error::RecvError::Lagged(_)) => {}
                Err(broadcast::error::RecvError::Closed) => return Waited::Ended,
            }
        }
    };
    tokio::time::timeout(timeout, wait)
        .await
        .unwrap_or(Waited::TimedOut)
}
