//! The store's shared behaviour, through the `Store` trait: what every implementation
//! must do. (Runs against SQLite; a second implementation runs the same checks.)

use std::sync::Arc;
use std::time::Duration;

use futures_util::FutureExt as _;

use floom_host::events;
use floom_host::live::Live;
use floom_host::store::{
    DynStore, ExecStatus, Finish, NewExecution, NewVersion, SqliteStore, StoredEvent,
    TriggerSource, now_ms,
};

/// A fresh SQLite store in a temp dir, with one app `app`.
async fn sqlite() -> (DynStore, std::path::PathBuf) {
    static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let dir = std::env::temp_dir().join(format!("floom-store-{}-{n}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let store: DynStore =
        Arc::new(SqliteStore::open(&dir.join("floom.db"), Arc::new(Live::default())).unwrap());
    store
        .publish(NewVersion {
            slug: "app".into(),
            sha256: "0".repeat(64),
            manifest: "slug = \"app\"\n".into(),
            kind: "sdk".into(),
            public: true,
        })
        .await
        .unwrap();
    (store, dir)
}

/// Writes a running execution `id`; returns the sequence number of its start event.
async fn running(store: &DynStore, id: &str) -> i64 {
    let inserted = store
        .insert_execution(
            NewExecution {
                id: id.into(),
                app: "app".into(),
                version: 1,
                action: "run".into(),
                inputs: "{}".into(),
                view_token_hash: "0".repeat(64),
                created_at: now_ms(),
                started_at: Some(now_ms()),
                trigger_source: TriggerSource::Api,
                mcp_call: None,
            },
            None,
        )
        .await
        .unwrap();
    match inserted {
        floom_host::store::Inserted::New(Some(started)) => started.seq,
        other => panic!("not started: {other:?}"),
    }
}

fn chunks(id: &str, after: i64, count: usize, bytes: usize) -> Vec<StoredEvent> {
    (0..count)
        .map(|i| StoredEvent {
            execution_id: id.into(),
            seq: after + 1 + i as i64,
            kind: "chunk".into(),
            data: format!(r#"{{"type":"chunk","data":"{}"}}"#, "x".repeat(bytes)),
        })
        .collect()
}

fn succeeded(id: &str, seq: i64, finished_at: i64) -> Finish {
    Finish {
        status: ExecStatus::Succeeded,
        output: Some("{}".into()),
        error: None,
        usage: None,
        finished_at,
        event: events::end(id, seq, None, 1.0),
    }
}

#[tokio::test]
async fn an_end_is_written_after_every_event_of_its_execution() {
    let (store, dir) = sqlite().await;
    let seq = running(&store, "exec_a").await;
    for batch in 0..5 {
        let _ = store.append_events(chunks("exec_a", seq + batch * 10, 10, 100));
    }
    // Not waiting for the appends: the store orders the end after them itself.
    store
        .finish_execution("exec_a", succeeded("exec_a", seq + 51, now_ms()))
        .await
        .unwrap();
    let stored = store.events_after("exec_a", 0, 1000).await.unwrap();
    assert_eq!(stored.len(), 52);
    assert!(stored.windows(2).all(|w| w[1].seq == w[0].seq + 1));
    assert!(stored.last().unwrap().is_terminal());
    std::fs::remove_dir_all(dir).unwrap();
}

#[tokio::test]
async fn other_writes_do_not_wait_behind_a_runs_events() {
    // Review finding 9: one writer for every app, so a run streaming large chunks made
    // every other run's start and end wait behind its events (seconds).
    let (store, dir) = sqlite().await;
    let seq = running(&store, "exec_chatty").await;
    let mut last = None;
    for batch in 0..200 {
        // 200 batches of 4 x 64 KiB: 50 MiB of events queued at once.
        last = Some(store.append_events(chunks("exec_chatty", seq + batch * 4, 4, 64 << 10)));
    }
    let started = std::time::Instant::now();
    running(&store, "exec_quiet").await;
    let took = started.elapsed();
    let last = last.unwrap();
    let mut last = std::pin::pin!(last.written());
    assert!(
        last.as_mut().now_or_never().is_none(),
        "the quiet run's write waited for all 50 MiB of events ({took:?})"
    );
    assert!(took < Duration::from_secs(1), "{took:?}");
    last.await;
    let stored = store.events_after("exec_chatty", 0, 1000).await.unwrap();
    assert_eq!(stored.len(), 801, "every event is written in the end");
    std::fs::remove_dir_all(dir).unwrap();
}

#[tokio::test]
async fn old_events_are_pruned_and_the_end_stays() {
    let (store, dir) = sqlite().await;
    let day = 86_400_000;
    for (id, finished_at) in [("exec_old", now_ms() - 40 * day), ("exec_new", now_ms())] {
        let seq = running(&store, id).await;
        store.append_events(chunks(id, seq, 3, 10)).written().await;
        store
            .finish_execution(id, succeeded(id, seq + 4, finished_at))
            .await
            .unwrap();
    }
    let cutoff = now_ms() - 30 * day;
    assert_eq!(store.prune_events(cutoff).await.unwrap(), 1);
    assert_eq!(store.prune_events(cutoff).await.unwrap(), 0, "nothing left");
    let old = store.events_after("exec_old", 0, 100).await.unwrap();
    assert_eq!(old.len(), 1);
    assert_eq!(old[0].kind, "end");
    let new = store.events_after("exec_new", 0, 100).await.unwrap();
    assert_eq!(new.len(), 5, "a recent run keeps its events");
    let record = store.execution("exec_old").await.unwrap().unwrap();
    assert_eq!(record.output.as_deref(), Some("{}"));
    std::fs::remove_dir_all(dir).unwrap();
}
