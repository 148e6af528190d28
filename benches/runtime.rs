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

/// What a run's folders cost a run that does not use them: the same `hello` run alone,
/// and with the host's whole file path around it (take an empty output folder, preopen
/// it as `/out`, hand it back after the run), as `floom serve` does for
/// every run.
fn folders(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    let bytes = std::fs::read(guests::HELLO).expect("hello.wasm");
    let engine = Engine::new(EngineConfig::default()).expect("engine");
    let app = engine.compile(hello_manifest(), &bytes).expect("compile");
    let input = serde_json::value::RawValue::from_string(INPUT.to_owned()).expect("json");
    let data = std::env::temp_dir().join(format!("floom-bench-folders-{}", std::process::id()));
    let blobs = floom_host::blobs::FsBlobs::open(data.join("blobs")).expect("blobs");
    let files = floom_host::artifacts::Files::open(
        &data,
        std::sync::Arc::new(blobs),
        floom_host::artifacts::FilesConfig::default(),
    )
    .expect("files");

    let mut group = c.benchmark_group("instantiate_call/hello_folders");
    group.bench_function("without_folders", |b| {
        b.to_async(&rt).iter(|| async {
            let request = RunRequest::new(&app, "run", input.clone()).expect("request");
            assert_eq!(app.run(request).await.status, Status::Succeeded);
        });
    });
    let mut n = 0u64;
    group.bench_function("with_folders", |b| {
        b.to_async(&rt).iter(|| {
            n += 1;
            let id = format!("exec_bench{n}");
            let (app, files, input) = (&app, &files, input.clone());
            async move {
                let folders = files.prepare(&id, Vec::new()).await.expect("folders");
                let request = RunRequest::new(app, "run", input)
                    .expect("request")
                    .files(folders.run_files().expect("an output folder"));
                let outcome = app.run(request).await;
                assert_eq!(outcome.status, Status::Succeeded);
                let wrote = outcome.usage.artifact_bytes > 0;
                let artifacts = files.collect(&id, folders, wrote).await.expect("collect");
                assert!(artifacts.is_empty());
            }
        });
    });
    group.finish();
    let _ = std::fs::remove_dir_all(&data);
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

criterion_group!(benches, instantiate_call, folders, compile, streaming);
criterion_main!(benches);
