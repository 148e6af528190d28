//! The runtime's hot paths beside bare wasmtime, in the same run so the ratio is
//! meaningful on a noisy machine.
//!
//! `cargo bench -p floom-benches` runs everything; `-- instantiate_call` runs the group
//! behind the headline figure (instantiate + call `hello`, runtime vs bare).

use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use floom_runtime::baseline::Baseline;
use floom_runtime::{Engine, EngineConfig, Manifest, RunRequest, Status};
use floom_tests::guests;

const INPUT: &str = r#"{"name":"Ada"}"#;

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime")
}

fn hello_manifest() -> Manifest {
    Manifest::from_file(guests::HELLO_MANIFEST.as_ref()).expect("hello manifest")
}

fn instantiate_call(c: &mut Criterion) {
    let rt = runtime();
    let bytes = std::fs::read(guests::HELLO).expect("hello.wasm");
    let engine = Engine::new(EngineConfig::default()).expect("engine");
    let app = engine.compile(hello_manifest(), &bytes).expect("compile");
    let bare = Baseline::new(&bytes).expect("bare app");
    let tuned = Baseline::tuned(&bytes).expect("tuned bare app");
    let input = serde_json::value::RawValue::from_string(INPUT.to_owned()).expect("json");

    let mut group = c.benchmark_group("instantiate_call/hello");
    group.bench_function("bare_wasmtime", |b| {
        b.to_async(&rt).iter(|| async {
            bare.run("run", INPUT).await.expect("bare run");
        });
    });
    group.bench_function("bare_wasmtime_tuned_pool", |b| {
        b.to_async(&rt).iter(|| async {
            tuned.run("run", INPUT).await.expect("bare run");
        });
    });
    group.bench_function("floom_runtime", |b| {
        b.to_async(&rt).iter(|| async {
            let request = RunRequest::new(&app, "run", input.clone()).expect("request");
            let outcome = app.run(request).await;
            assert_eq!(outcome.status, Status::Succeeded);
        });
    });
    group.finish();

    let mut group = c.benchmark_group("instantiate/hello");
    group.bench_function("bare_wasmtime", |b| {
        b.to_async(&rt)
            .iter(|| async { bare.instantiate().await.expect("bare instantiate") });
    });
    group.bench_function("bare_wasmtime_tuned_pool", |b| {
        b.to_async(&rt)
            .iter(|| async { tuned.instantiate().await.expect("bare instantiate") });
    });
    group.bench_function("floom_runtime", |b| {
        b.to_async(&rt)
            .iter(|| async { app.probe().await.expect("probe") });
    });
    group.finish();
}

fn compile(c: &mut Criterion) {
    let bytes = std::fs::read(guests::HELLO).expect("hello.wasm");
    let dir = std::env::temp_dir().join(format!("floom-bench-cache-{}", std::process::id()));
    let uncached = Engine::new(EngineConfig::default()).expect("engine");
    let cached = Engine::new(EngineConfig {
        cache_dir: Some(dir.clone()),
        ..EngineConfig::default()
    })
    .expect("engine");
    cached
        .compile(hello_manifest(), &bytes)
        .expect("warm the cache");

    let mut group = c.benchmark_group("compile/hello");
    group
        .sample_size(10)
        .measurement_time(Duration::from_secs(10));
    group.bench_function("compile", |b| {
        b.iter(|| uncached.compile(hello_manifest(), &bytes).expect("compile"));
    });
    group.bench_function("load_from_cache", |b| {
        b.iter(|| {
            let app = cached.compile(hello_manifest(), &bytes).expect("load");
            assert!(app.compile_info().from_cache);
        });
    });
    group.finish();
    let _ = std::fs::remove_dir_all(dir);
}

fn streaming(c: &mut Criterion) {
    let rt = runtime();
    let engine = Engine::new(EngineConfig::default()).expect("engine");
    let manifest = Manifest::parse("slug = \"misbehave\"\n[actions.emit]\n").expect("manifest");
    let bytes = std::fs::read(guests::MISBEHAVE).expect("misbehave.wasm");
    let app = engine.compile(manifest, &bytes).expect("compile");
    let input = serde_json::value::RawValue::from_string(r#"{"count":100}"#.into()).expect("json");

    let mut group = c.benchmark_group("events");
    group.throughput(criterion::Throughput::Elements(100));
    group.bench_function("emit_100_chunks", |b| {
        b.to_async(&rt).iter(|| async {
            let (tx, mut rx) = tokio::sync::mpsc::channel(64);
            let request = RunRequest::new(&app, "emit", input.clone())
                .expect("request")
                .events(tx);
            let reader = tokio::spawn(async move {
                let mut n = 0;
                while rx.recv().await.is_some() {
                    n += 1;
                }
                n
            });
            let outcome = app.run(request).await;
            assert_eq!(outcome.status, Status::Succeeded);
            assert_eq!(reader.await.expect("reader"), 100);
        });
    });
    group.finish();
}

criterion_group!(benches, instantiate_call, compile, streaming);
criterion_main!(benches);
