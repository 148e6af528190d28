//! The store's hot paths on a real SQLite file (WAL, one group-committing writer):
//! inserting an execution, its whole lifecycle, and a batch of streamed events.
//!
//! `cargo bench -p floom-benches --bench store`. The `concurrent/64` figures are per
//! operation with 64 callers waiting at once: what group commit buys over `one`.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use floom_host::events;
use floom_host::live::Live;
use floom_host::store::{
    ExecStatus, Finish, NewExecution, NewVersion, SqliteStore, Store, StoredEvent, TriggerSource,
    now_ms,
};
use futures_util::future::join_all;
use serde_json::value::RawValue;

const APP: &str = "hello";

struct Bench {
    rt: tokio::runtime::Runtime,
    store: Arc<SqliteStore>,
    next: AtomicU64,
    dir: std::path::PathBuf,
}

impl Drop for Bench {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

impl Bench {
    fn new() -> Bench {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("tokio runtime");
        let dir = std::env::temp_dir().join(format!("floom-store-bench-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("temp dir");
        let store = Arc::new(
            SqliteStore::open(&dir.join("floom.db"), Arc::new(Live::default()))
                .expect("open store"),
        );
        rt.block_on(store.publish(NewVersion {
            slug: APP.to_owned(),
            sha256: "0".repeat(64),
            manifest: "slug = \"hello\"\n".to_owned(),
            kind: "sdk".to_owned(),
            public: true,
        }))
        .expect("publish");
        Bench {
            rt,
            store,
            next: AtomicU64::new(0),
            dir,
        }
    }

    fn new_execution(&self) -> NewExecution {
        let n = self.next.fetch_add(1, Ordering::Relaxed);
        NewExecution {
            id: format!("exec_bench{n:020}"),
            app: APP.to_owned(),
            version: 1,
            action: "run".to_owned(),
            inputs: r#"{"name":"Ada"}"#.to_owned(),
            view_token_hash: "0".repeat(64),
            created_at: now_ms(),
            started_at: None,
            trigger_source: TriggerSource::Api,
            mcp_call: None,
            webhook: None,
            tick: None,
        }
    }
}

/// Insert, start, finish: the three awaited writes of a run.
async fn lifecycle(store: &SqliteStore, execution: NewExecution) {
    let id = execution.id.clone();
    store
        .insert_execution(execution, None)
        .await
        .expect("insert");
    let started = store
        .start_execution(&id, now_ms())
        .await
        .expect("start")
        .expect("queued");
    let output = RawValue::from_string(r#"{"greeting":"Hello, Ada!"}"#.to_owned()).expect("json");
    let finish = Finish {
        status: ExecStatus::Succeeded,
        output: Some(output.get().to_owned()),
        error: None,
        usage: None,
        finished_at: now_ms(),
        event: events::end(&id, started.seq + 1, Some(&output), 0.05),
        approval: None,
        attempt: started.attempt,
        // Through the writer thread, as the figures in BENCHMARKS.md were taken.
        alone: false,
    };
    store.finish_execution(&id, finish).await.expect("finish");
}

fn store(c: &mut Criterion) {
    let bench = Bench::new();
    let store = &*bench.store;

    let mut group = c.benchmark_group("store/insert_execution");
    group.bench_function("one", |b| {
        b.to_async(&bench.rt).iter(|| async {
            store
                .insert_execution(bench.new_execution(), None)
                .await
                .expect("insert");
        });
    });
    group.throughput(Throughput::Elements(64));
    group.bench_function("concurrent/64", |b| {
        b.to_async(&bench.rt).iter(|| {
            join_all((0..64).map(|_| store.insert_execution(bench.new_execution(), None)))
        });
    });
    group.finish();

    let mut group = c.benchmark_group("store/lifecycle");
    group.bench_function("one", |b| {
        b.to_async(&bench.rt)
            .iter(|| lifecycle(store, bench.new_execution()));
    });
    group.throughput(Throughput::Elements(64));
    group.bench_function("concurrent/64", |b| {
        b.to_async(&bench.rt)
            .iter(|| join_all((0..64).map(|_| lifecycle(store, bench.new_execution()))));
    });
    group.finish();

    // 100 chunk events, then an awaited write: the writer is FIFO, so once that write
    // is answered the events are committed too.
    let execution = bench.new_execution();
    let id = execution.id.clone();
    bench
        .rt
        .block_on(store.insert_execution(execution, None))
        .expect("insert");
    let mut seq = 0;
    let mut group = c.benchmark_group("store/events");
    group.throughput(Throughput::Elements(100));
    group.bench_function("batch/100", |b| {
        b.to_async(&bench.rt).iter(|| {
            let batch: Vec<StoredEvent> = (0..100)
                .map(|_| {
                    seq += 1;
                    StoredEvent {
                        execution_id: id.clone(),
                        seq,
                        kind: "chunk".to_owned(),
                        data: format!(
                            r#"{{"type":"chunk","seq":{seq},"data":"a line of output"}}"#
                        ),
                    }
                })
                .collect();
            // Not awaited: the write after it is (see above).
            drop(store.append_events(batch));
            store.insert_execution(bench.new_execution(), None)
        });
    });
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().measurement_time(Duration::from_secs(5));
    targets = store
}
criterion_main!(benches);
