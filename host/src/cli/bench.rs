//! `floom bench`: sandbox cold starts of a component, beside bare wasmtime in the same run.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use floom_runtime::baseline::Baseline;
use floom_runtime::{CompiledApp, Engine, EngineConfig, RunRequest, Status};
use serde::Serialize;
use serde_json::value::RawValue;

use super::EXIT_INVALID;
use super::peers;

/// Measure a component's sandbox cold starts through the runtime and on bare wasmtime.
///
/// Both sides run the same component in the same process, one after the other, so the
/// ratios hold on a noisy machine even when the absolute figures move. Bare wasmtime is
/// a pooling engine, an InstancePre and a fresh store per run: the floor. It is measured
/// twice: with wasmtime's default pool, and with the runtime's pool settings (memory
/// kept resident and reset in place), which isolates what the runtime adds (limits,
/// deadline, output capture, outcome classification) from how it tunes the pool.
///
/// How to read it:
///   compile          compiling the component (what a publish pays once)
///   load from cache  loading the compiled artifact (what a restart pays per app)
///   instantiate      a fresh sandbox, without calling it (p50 and p99)
///   run              a fresh sandbox plus the call (p50 and p99): the cold start
///   throughput       runs per second with --concurrency runs at once
///   ratio            runtime / bare: 1.00 means the runtime adds nothing; below 1,
///                    the runtime is faster than that baseline
///
/// Examples:
///
///   floom bench target/wasm32-wasip2/guest/hello.wasm
///
///   floom bench examples/word-count --input '{"text": "a b c"}' --runs 5000 --json
///
/// With --peers, also the same work done the other ways people isolate code per run,
/// in one table (p50, p99, runs/s, p50 as a multiple of floom's): floom warm and cold
/// (its compiled artifact loaded from the disk cache first, as after a restart), bare
/// wasmtime, `wasmtime run` as a process per run (command apps), a native build of the
/// same program as a process per run (--native), a `python3` process per run (Python
/// apps) and a fresh Node `vm` context per run. Missing peers are listed as skipped:
///
///   cargo build --release -p word-count
///   floom bench examples/word-count --input '{"text": "a b"}' --peers \
///       --native target/release/word-count
#[derive(Debug, clap::Args)]
#[command(verbatim_doc_comment)]
pub struct BenchArgs {
    /// The component (`.wasm`), or an app directory or `floom.toml`.
    path: PathBuf,

    /// The manifest, when PATH is a bare component.
    #[arg(long, value_name = "FLOOM.TOML")]
    manifest: Option<PathBuf>,

    /// The action to run.
    #[arg(long)]
    action: Option<String>,

    /// The inputs of every run, as a JSON object.
    #[arg(long, default_value = "{}")]
    input: String,

    /// Runs per measurement.
    #[arg(long, default_value_t = 2000, value_parser = clap::value_parser!(u32).range(10..))]
    runs: u32,

    /// Runs at once for the throughput figure (default: the CPU count).
    #[arg(long)]
    concurrency: Option<usize>,

    /// Print the figures as JSON.
    #[arg(long)]
    json: bool,

    /// Also measure the peers: processes per run, Node contexts, floom cold.
    #[arg(long)]
    peers: bool,

    /// The `wasmtime` CLI for the `wasmtime run` peer (default: the one on PATH).
    #[arg(long, value_name = "PATH", requires = "peers")]
    wasmtime: Option<PathBuf>,

    /// A native build of the same program, for the process-per-run peer.
    #[arg(long, value_name = "PATH", requires = "peers")]
    native: Option<PathBuf>,
}

/// Median and 99th percentile, in microseconds.
#[derive(Debug, Clone, Copy, Serialize)]
struct Latency {
    p50_us: f64,
    p99_us: f64,
}

#[derive(Debug, Serialize)]
struct Side {
    instantiate: Latency,
    run: Latency,
    runs_per_second: f64,
}

#[derive(Debug, Serialize)]
struct Report {
    component: String,
    kind: String,
    runs: u32,
    concurrency: usize,
    compile_ms: f64,
    load_from_cache_ms: f64,
    floom: Side,
    bare_wasmtime: Side,
    bare_wasmtime_tuned_pool: Side,
    ratio: Ratios,
    ratio_to_tuned: Ratios,
    /// With `--peers`: every peer's row.
    #[serde(skip_serializing_if = "Option::is_none")]
    peers: Option<Vec<peers::Peer>>,
}

#[derive(Debug, Serialize)]
struct Ratios {
    instantiate_p50: f64,
    run_p50: f64,
    run_p99: f64,
    throughput: f64,
}

impl Ratios {
    /// `floom` over `bare`, figure by figure.
    fn of(floom: &Side, bare: &Side) -> Ratios {
        Ratios {
            instantiate_p50: floom.instantiate.p50_us / bare.instantiate.p50_us,
            run_p50: floom.run.p50_us / bare.run.p50_us,
            run_p99: floom.run.p99_us / bare.run.p99_us,
            throughput: floom.runs_per_second / bare.runs_per_second,
        }
    }
}

/// The figures of one bare-wasmtime baseline.
async fn measure_bare(
    bare: Baseline,
    args: &BenchArgs,
    concurrency: usize,
    action: &str,
    input: &str,
) -> anyhow::Result<Side> {
    let bare = Arc::new(bare);
    let once = {
        let (bare, action, input) = (bare.clone(), action.to_owned(), input.to_owned());
        move || {
            let (bare, action, input) = (bare.clone(), action.clone(), input.clone());
            async move { bare.run(&action, &input).await }
        }
    };
    Ok(Side {
        instantiate: latency(sample(args.runs, || bare.instantiate()).await?),
        run: latency(sample(args.runs, &once).await?),
        runs_per_second: throughput(args.runs, concurrency, once.clone()).await?,
    })
}

fn latency(samples: Vec<Duration>) -> Latency {
    let (p50_us, p99_us) = peers::percentiles(samples);
    Latency { p50_us, p99_us }
}

/// A side's run figures, as a row of the peers table.
fn figures(side: &Side) -> peers::Figures {
    peers::Figures {
        p50_us: side.run.p50_us,
        p99_us: side.run.p99_us,
        runs_per_second: side.runs_per_second,
    }
}

/// Times `f` `runs` times, after a warm-up.
async fn sample<F, Fut>(runs: u32, mut f: F) -> anyhow::Result<Vec<Duration>>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = anyhow::Result<()>>,
{
    for _ in 0..runs.min(200) {
        f().await?;
    }
    let mut samples = Vec::with_capacity(runs as usize);
    for _ in 0..runs {
        let started = Instant::now();
        f().await?;
        samples.push(started.elapsed());
    }
    Ok(samples)
}

/// Runs `f` `runs` times, `concurrency` at a time; returns runs per second.
async fn throughput<F, Fut>(runs: u32, concurrency: usize, f: F) -> anyhow::Result<f64>
where
    F: Fn() -> Fut + Send + Sync + 'static,
    Fut: Future<Output = anyhow::Result<()>> + Send,
{
    let f = Arc::new(f);
    let left = Arc::new(AtomicUsize::new(runs as usize));
    let started = Instant::now();
    let workers: Vec<_> = (0..concurrency)
        .map(|_| {
            let (f, left) = (f.clone(), left.clone());
            tokio::spawn(async move {
                while left
                    .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| n.checked_sub(1))
                    .is_ok()
                {
                    f().await?;
                }
                anyhow::Ok(())
            })
        })
        .collect();
    for worker in workers {
        worker.await??;
    }
    Ok(f64::from(runs) / started.elapsed().as_secs_f64())
}

/// Runs `floom bench`.
pub async fn run(args: BenchArgs) -> std::process::ExitCode {
    match bench(args).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::from(EXIT_INVALID)
        }
    }
}

async fn bench(args: BenchArgs) -> anyhow::Result<()> {
    let (manifest, component) =
        super::exec::locate_app(&args.path, args.manifest.as_deref(), args.action.as_deref())?;
    let bytes = std::fs::read(&component)
        .with_context(|| format!("cannot read {}", component.display()))?;
    let input: serde_json::Value =
        serde_json::from_str(&args.input).context("--input is not JSON")?;
    let input = serde_json::to_string(&input)?;
    let concurrency = args
        .concurrency
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(2, usize::from))
        .max(1);
    let config = EngineConfig {
        max_instances: u32::try_from(concurrency * 2).unwrap_or(u32::MAX).max(16),
        ..EngineConfig::default()
    };

    // Compile (no cache), three times.
    let mut compiles = Vec::new();
    let engine = Engine::new(config.clone())?;
    let mut app = None;
    for _ in 0..3 {
        let started = Instant::now();
        app = Some(engine.compile(manifest.clone(), &bytes)?);
        compiles.push(started.elapsed());
    }
    let app: CompiledApp = app.context("compiled")?;
    // Load from the on-disk cache, five times.
    let cache = std::env::temp_dir().join(format!("floom-bench-{}", std::process::id()));
    let cached = Engine::new(EngineConfig {
        cache_dir: Some(cache.clone()),
        ..config.clone()
    })?;
    cached.compile(manifest.clone(), &bytes)?;
    let mut loads = Vec::new();
    for _ in 0..5 {
        let started = Instant::now();
        let loaded = cached.compile(manifest.clone(), &bytes)?;
        loads.push(started.elapsed());
        if !loaded.compile_info().from_cache {
            bail!("the compile cache did not serve the component");
        }
    }
    compiles.sort_unstable();
    loads.sort_unstable();

    let action = args.action.clone().unwrap_or_else(|| {
        app.manifest()
            .actions()
            .next()
            .map_or("run", |(n, _)| n)
            .to_owned()
    });
    let raw = RawValue::from_string(input.clone())?;
    RunRequest::new(&app, &action, raw.clone())?;
    let run_once = {
        let (app, action, raw) = (app.clone(), action.clone(), raw.clone());
        move || {
            let (app, action, raw) = (app.clone(), action.clone(), raw.clone());
            async move {
                let outcome = app.run(RunRequest::new(&app, &action, raw)?).await;
                if outcome.status != Status::Succeeded {
                    bail!("the run did not succeed: {:?}", outcome.error);
                }
                anyhow::Ok(())
            }
        }
    };
    let floom = Side {
        instantiate: latency(
            sample(args.runs, || async {
                app.probe().await.map_err(|e| anyhow::anyhow!(e.message))
            })
            .await?,
        ),
        run: latency(sample(args.runs, &run_once).await?),
        runs_per_second: throughput(args.runs, concurrency, run_once.clone()).await?,
    };

    let bare = measure_bare(Baseline::new(&bytes)?, &args, concurrency, &action, &input).await?;
    let tuned = measure_bare(
        Baseline::tuned(&bytes)?,
        &args,
        concurrency,
        &action,
        &input,
    )
    .await?;

    let peers = if args.peers {
        let subject = peers::Subject {
            component: &component,
            command: app.kind() == floom_runtime::AppKind::Command,
            python: is_python(&args.path),
            action: &action,
            input: &input,
            runs: args.runs,
            concurrency,
        };
        let cold_once = {
            let (cached, manifest, bytes) = (cached.clone(), manifest.clone(), Arc::new(bytes));
            let (action, raw) = (action.clone(), raw.clone());
            move || {
                let (cached, manifest, bytes) = (cached.clone(), manifest.clone(), bytes.clone());
                let (action, raw) = (action.clone(), raw.clone());
                async move {
                    let app = cached.compile(manifest, &bytes)?;
                    let outcome = app.run(RunRequest::new(&app, &action, raw)?).await;
                    if outcome.status != Status::Succeeded {
                        bail!("the run did not succeed: {:?}", outcome.error);
                    }
                    anyhow::Ok(())
                }
            }
        };
        // Each cold run loads for milliseconds: fewer of them.
        let cold_runs = args.runs.clamp(10, 500);
        let (p50_us, p99_us) = peers::percentiles(sample(cold_runs, &cold_once).await?);
        let cold = peers::Figures {
            p50_us,
            p99_us,
            runs_per_second: throughput(cold_runs, concurrency, cold_once).await?,
        };
        Some(vec![
            peers::Peer::measured("floom, warm (app resident, fresh sandbox)", figures(&floom)),
            peers::Peer::measured("floom, cold (loaded from the disk cache)", cold),
            peers::Peer::measured("bare wasmtime, runtime's pool", figures(&tuned)),
            peers::Peer::from(
                "wasmtime run, a process per run",
                peers::wasmtime_run(&subject, args.wasmtime.as_deref()),
            ),
            peers::Peer::from(
                "native process per run (fork + exec)",
                peers::native(&subject, args.native.as_deref()),
            ),
            peers::Peer::from("python3 process per run", peers::python(&subject)),
            peers::Peer::from("Node vm context per run", peers::node_vm(&subject)),
        ])
    } else {
        None
    };
    let _ = std::fs::remove_dir_all(&cache);

    let report = Report {
        component: component.display().to_string(),
        kind: app.kind().to_string(),
        runs: args.runs,
        concurrency,
        compile_ms: compiles[1].as_secs_f64() * 1e3,
        load_from_cache_ms: loads[2].as_secs_f64() * 1e3,
        ratio: Ratios::of(&floom, &bare),
        ratio_to_tuned: Ratios::of(&floom, &tuned),
        floom,
        bare_wasmtime: bare,
        bare_wasmtime_tuned_pool: tuned,
        peers,
    };
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print_report(&report);
        if let Some(peers) = &report.peers {
            peers::print_table(peers, &figures(&report.floom));
        }
    }
    Ok(())
}

/// Whether `path` (an app folder or its `floom.toml`) is a Python app: it has `app.py`.
fn is_python(path: &std::path::Path) -> bool {
    let folder = if path.is_dir() {
        Some(path)
    } else {
        path.parent()
    };
    folder.is_some_and(|folder| folder.join("app.py").is_file())
}

fn print_report(r: &Report) {
    println!(
        "{} ({} app), {} runs per figure, concurrency {}",
        r.component, r.kind, r.runs, r.concurrency
    );
    println!("compile          {:>10.1} ms", r.compile_ms);
    println!("load from cache  {:>10.2} ms", r.load_from_cache_ms);
    println!();
    println!("                      floom  bare wasmtime  ratio   bare, tuned pool  ratio");
    let row = |name: &str, unit: &str, f: f64, b: f64, t: f64| {
        println!(
            "{name:<16} {f:>8.1} {unit}  {b:>8.1} {unit}  {:>5.2}  {t:>10.1} {unit}     {:>5.2}",
            f / b,
            f / t
        );
    };
    let (f, b, t) = (&r.floom, &r.bare_wasmtime, &r.bare_wasmtime_tuned_pool);
    row(
        "instantiate p50",
        "µs",
        f.instantiate.p50_us,
        b.instantiate.p50_us,
        t.instantiate.p50_us,
    );
    row(
        "instantiate p99",
        "µs",
        f.instantiate.p99_us,
        b.instantiate.p99_us,
        t.instantiate.p99_us,
    );
    row("run p50", "µs", f.run.p50_us, b.run.p50_us, t.run.p50_us);
    row("run p99", "µs", f.run.p99_us, b.run.p99_us, t.run.p99_us);
    row(
        "throughput",
        "/s",
        f.runs_per_second,
        b.runs_per_second,
        t.runs_per_second,
    );
}
