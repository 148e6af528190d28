//! `floom serve`: wires the store, the registry, the scheduler and the API together,
//! and shuts down gracefully.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use floom_runtime::{Caps, Engine, EngineConfig};
use tokio_util::sync::CancellationToken;

use crate::api::{self, ApiConfig, Services};
use crate::blobs::{Blobs, FsBlobs, PgBlobs};
use crate::components::Components;
use crate::crypto::{Key, Sealer, WhenEmpty, load_key};
use crate::http::ConnectionLimits;
use crate::lanes::Lanes;
use crate::live::Live;
use crate::metrics::Metrics;
use crate::ratelimit::RateLimiter;
use crate::registry::{PublishError, Registry};
use crate::scheduler::{Guests, RunSupport, Scheduler, SchedulerConfig};
use crate::schema::ValidationPool;
use crate::store::{DynStore, PgOptions, PgStore, SqliteStore};
use crate::tokens::{PREFIX, Tokens};

/// Everything `floom serve` can be told.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// Where to listen.
    pub listen: SocketAddr,
    /// Where the database and components live.
    pub data_dir: PathBuf,
    /// A PostgreSQL database to keep the store in, instead of SQLite in `data_dir`.
    pub database: Option<String>,
    /// Leases on running executions, when several hosts share the database.
    pub leases: crate::cluster::Leases,
    /// Where compiled components are cached.
    pub cache_dir: PathBuf,
    /// Executions running at once.
    pub max_concurrent_runs: usize,
    /// Executions waiting at once.
    pub max_queue: usize,
    /// Executions of one app running at once.
    pub max_runs_per_app: usize,
    /// Executions of one app waiting at once.
    pub max_queue_per_app: usize,
    /// Executions one caller has waiting at once.
    pub max_queue_per_caller: usize,
    /// The largest memory limit an app gets, in MiB.
    pub max_memory_mb: u64,
    /// The longest a run may take (the 290 s cap, or less).
    pub max_timeout: Duration,
    /// How long running executions get to finish on shutdown.
    pub grace_period: Duration,
    /// Threads that run guests.
    pub guest_threads: usize,
    /// Threads that serve HTTP.
    pub http_threads: usize,
    /// Which bundled example apps to publish at startup.
    pub examples: Option<Examples>,
    /// Whether apps may reach private addresses.
    pub allow_private_network: bool,
    /// Outbound HTTP requests per run.
    pub max_outbound_requests: u32,
    /// Outbound HTTP response bytes per run.
    pub max_outbound_response_bytes: u64,
    /// Bytes of streamed chunks and log lines stored per run.
    pub max_event_bytes: u64,
    /// How long the streamed events of finished runs are kept; `None`: forever.
    pub event_retention: Option<Duration>,
    /// Host memory a run may make the server hold through wasi:http, in bytes.
    pub max_http_memory_bytes: u64,
    /// Bytes a run may write under `/out`.
    pub max_artifact_bytes: u64,
    /// Files and artifacts: upload cap, URL lifetime, retention.
    pub files: crate::artifacts::FilesConfig,
    /// API sizes and timeouts.
    pub api: ApiConfig,
    /// Bounds on client connections.
    pub connections: ConnectionLimits,
}

/// The admin secret: `FLOOM_SECRET`, or one generated into `<data-dir>/admin-token`.
/// Refuses a secret that could never authenticate, or that anyone could guess.
fn admin_token(data_dir: &Path) -> anyhow::Result<Key> {
    let key = load_key(
        "FLOOM_SECRET",
        &data_dir.join("admin-token"),
        api::auth::random_token,
        // A generated token nobody has read yet is all an empty file can have held.
        WhenEmpty::Regenerate,
    )?;
    // Presented tokens with this prefix are checked as agent tokens only.
    if key.value.starts_with(PREFIX) {
        anyhow::bail!(
            "the admin secret ({}) must not start with {PREFIX:?}: that prefix marks agent \
             tokens, so it could never authenticate",
            key.source
        );
    }
    if key.generated {
        eprintln!("generated the admin token into {}", key.source);
    }
    Ok(key)
}

/// Makes everything the server creates private to its user (the database, its WAL,
/// keys, components, compiled code), and tightens a data dir made before this rule.
fn make_private(dirs: &[&Path]) -> anyhow::Result<()> {
    use std::os::unix::fs::PermissionsExt as _;
    rustix::process::umask(rustix::fs::Mode::from_raw_mode(0o077));
    for dir in dirs {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
            .with_context(|| format!("cannot make {} private", dir.display()))?;
    }
    let data_dir = dirs.first().context("no data dir")?;
    for entry in std::fs::read_dir(data_dir)? {
        let entry = entry?;
        if entry.file_type()?.is_file() {
            std::fs::set_permissions(entry.path(), std::fs::Permissions::from_mode(0o600))?;
        }
    }
    Ok(())
}

/// Slow-lane guest threads' nice value: runs that have been busy for a while, below
/// every other run (see [`crate::lanes`]).
const SLOW_GUEST_NICE: i32 = 19;
/// Time inside the guest a run may take before it moves to the slow lane.
const FAST_LANE_BUDGET: Duration = Duration::from_millis(3);
/// Fast-lane guest threads' nice value: below the HTTP runtime, so `/healthz` and the API
/// answer while guests spin; far above the slow lane, so short runs go first.
const GUEST_NICE: i32 = 5;
/// Validation threads' nice value: below the HTTP runtime, so `/healthz` answers while
/// costly inputs are checked, and level with short runs, as a client waits on each.
const VALIDATION_NICE: i32 = 5;
/// Compiler threads' nice value: the lowest, so compiling a (possibly hostile) component
/// at publish takes what running executions leave (busy runs share it).
const COMPILE_NICE: i32 = 19;

/// Sets the nice value of the calling thread (Linux: per thread).
fn lower_priority(nice: i32) {
    let tid = rustix::thread::gettid();
    if let Err(e) = rustix::process::setpriority_process(Some(tid), nice) {
        tracing::debug!("cannot lower the thread priority to {nice}: {e}");
    }
}

/// This host's name among the hosts of one database, kept in `<data-dir>/host-id` so it
/// survives restarts (a data dir per host: two hosts on one data dir would share it).
fn host_id(data_dir: &Path) -> anyhow::Result<String> {
    let path = data_dir.join("host-id");
    match std::fs::read_to_string(&path) {
        Ok(id) if !id.trim().is_empty() => Ok(id.trim().to_owned()),
        Ok(_) | Err(_) => {
            let id = format!("host_{}", uuid::Uuid::now_v7().simple());
            floom_runtime::write_atomically(&path, id.as_bytes())
                .with_context(|| format!("cannot write {}", path.display()))?;
            Ok(id)
        }
    }
}

/// Refuses to start against a shared database whose secrets this host's master key
/// cannot open (another host sealed them with another key).
async fn check_master_key(store: &DynStore, sealer: &Sealer) -> anyhow::Result<()> {
    const OWNER: &[u8] = b"floom key check";
    let sealed = store.key_check(sealer.seal(OWNER, b"ok")?).await?;
    if sealer.open(OWNER, &sealed).is_err() {
        anyhow::bail!(
            "FLOOM_MASTER_KEY is not the key the other hosts of this database use: their \
             secrets could not be opened here. Give every host the same key"
        );
    }
    Ok(())
}

/// Which bundled example apps `floom serve --examples` publishes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Examples {
    /// Every example.
    All,
    /// The Rust examples.
    Rust,
    /// The Python examples.
    Python,
}

impl Examples {
    fn rust(self) -> bool {
        self != Examples::Python
    }

    fn python(self) -> bool {
        self != Examples::Rust
    }
}

/// Runs the server until SIGTERM or Ctrl-C.
pub fn serve(config: ServerConfig) -> anyhow::Result<()> {
    make_private(&[&config.data_dir, &config.cache_dir])?;
    let admin_token = admin_token(&config.data_dir)?;
    // Components compile on rayon's global pool (wasmtime's parallel compilation, and
    // the registry's compile jobs): build it niced before anything compiles.
    if let Err(e) = rayon::ThreadPoolBuilder::new()
        .thread_name(|i| format!("floom-compile-{i}"))
        .start_handler(|_| lower_priority(COMPILE_NICE))
        .build_global()
    {
        tracing::debug!("the compile pool was already built: {e}");
    }
    // Guests get runtimes of their own at a lower priority: a spinning guest shares its
    // threads with other guests (it yields every epoch tick) but never starves the
    // HTTP runtime (a sync run alone on the host starts on the HTTP thread, until its
    // first yield); and once busy it moves to the slow lane, below the short runs.
    let guest_runtime = |name: &'static str, threads: usize, nice: i32| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(threads.max(1))
            .thread_name(name)
            .on_thread_start(move || lower_priority(nice))
            .enable_all()
            .build()
            .with_context(|| format!("cannot start the {name} runtime"))
    };
    let guests = guest_runtime("floom-guest", config.guest_threads, GUEST_NICE)?;
    // Busy runs only need a thread per core between them: more would only compete.
    let cores = std::thread::available_parallelism().map_or(2, usize::from);
    let slow_guests = guest_runtime(
        "floom-guest-slow",
        config.guest_threads.min(cores),
        SLOW_GUEST_NICE,
    )?;
    // HTTP threads are runtimes of one worker each, every connection on one of them
    // (`http::ConnectionThreads`); the first also runs the server's own tasks.
    let http = (0..config.http_threads.max(1))
        .map(|_| {
            tokio::runtime::Builder::new_multi_thread()
                .worker_threads(1)
                .thread_name("floom-http")
                .enable_all()
                .build()
                .context("cannot start the HTTP runtime")
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    let connections =
        crate::http::ConnectionThreads::new(http.iter().map(|r| r.handle().clone()).collect());
    let lanes = Lanes {
        fast: guests.handle().clone(),
        slow: slow_guests.handle().clone(),
        budget: FAST_LANE_BUDGET,
    };
    let result = http[0].block_on(run(config, admin_token, lanes, connections));
    for runtime in http {
        runtime.shutdown_timeout(Duration::from_secs(1));
    }
    slow_guests.shutdown_timeout(Duration::from_secs(1));
    guests.shutdown_timeout(Duration::from_secs(1));
    result
}

/// Memory mappings a running sandbox holds (its memories, tables and fiber stack with
/// their guards), measured: 10,000 sleeping sandboxes took about 100,000.
const MAPPINGS_PER_SANDBOX: usize = 10;

/// Warns when the kernel's limit on memory mappings (`vm.max_map_count`, 65,530 by
/// default) is below what `sandboxes` running at once need: past it, instantiation fails
/// with "Cannot allocate memory" and runs end `sandbox_unavailable`.
fn check_map_count(sandboxes: usize) {
    let Ok(text) = std::fs::read_to_string("/proc/sys/vm/max_map_count") else {
        return;
    };
    let Ok(limit) = text.trim().parse::<usize>() else {
        return;
    };
    // The rest of the process (runtimes, the store, compiled code) has a few thousand.
    let needed = sandboxes.saturating_mul(MAPPINGS_PER_SANDBOX) + 10_000;
    if limit < needed {
        tracing::warn!(
            "vm.max_map_count is {limit}: {sandboxes} sandboxes at once need about {needed} \
             memory mappings, so only about {} can run at once; raise it with \
             `sysctl -w vm.max_map_count={needed}`",
            limit.saturating_sub(10_000) / MAPPINGS_PER_SANDBOX
        );
    }
}

async fn run(
    config: ServerConfig,
    admin_token: Key,
    lanes: Lanes,
    connections: crate::http::ConnectionThreads,
) -> anyhow::Result<()> {
    check_map_count(config.max_concurrent_runs);
    let engine = Engine::new(EngineConfig {
        cache_dir: Some(config.cache_dir.clone()),
        max_instances: u32::try_from(config.max_concurrent_runs)
            .unwrap_or(u32::MAX)
            .max(1),
        max_memory_mb: config.max_memory_mb,
        max_timeout: config.max_timeout,
        allow_private_network: config.allow_private_network,
        caps: Caps {
            http_requests: config.max_outbound_requests,
            http_response_bytes: config.max_outbound_response_bytes,
            event_bytes: config.max_event_bytes,
            http_memory_bytes: config.max_http_memory_bytes,
            artifact_bytes: config.max_artifact_bytes,
            artifact_files: u64::try_from(config.files.max_artifacts).unwrap_or(u64::MAX),
            ..Caps::default()
        },
        ..EngineConfig::default()
    })?;
    let live = Arc::new(Live::default());
    let mut metrics = Metrics::default();
    // The shared database's pool, for the bytes kept beside the store.
    let (store, database): (DynStore, _) = match &config.database {
        Some(url) => {
            let options = PgOptions {
                host: host_id(&config.data_dir)?,
                lease: config.leases.length,
                max_runs_per_app: config.max_runs_per_app,
            };
            let store = PgStore::open_with(url, live.clone(), options).await?;
            let pool = store.pool().clone();
            (Arc::new(store), Some(pool))
        }
        None => {
            let store = SqliteStore::open(&config.data_dir.join("floom.db"), live.clone())?;
            metrics.register_store(&store.work());
            (Arc::new(store), None)
        }
    };
    let metrics = Arc::new(metrics);
    let lanes_slow = lanes.slow.clone();
    let guests = Guests::new(lanes, config.max_concurrent_runs);
    let registry = Arc::new(Registry::new(
        engine,
        guests.clone(),
        store.clone(),
        Components::open(config.data_dir.join("components"), database.clone())?,
        metrics.clone(),
    ));
    let loaded = registry.load_all().await?;
    tracing::info!(apps = loaded, "loaded apps");
    if config.examples.is_some_and(|set| set.rust()) {
        publish_examples(&registry, false).await?;
    }
    let sealer = Arc::new(Sealer::load(&config.data_dir)?);
    check_master_key(&store, &sealer).await?;
    let blobs: Arc<dyn Blobs> = match database {
        Some(pool) => Arc::new(PgBlobs::open(config.data_dir.join("blobs"), pool)?),
        None => Arc::new(FsBlobs::open(config.data_dir.join("blobs"))?),
    };
    let files = Arc::new(crate::artifacts::Files::open(
        &config.data_dir,
        blobs,
        config.files,
    )?);
    let tokens = Arc::new(Tokens::load(store.clone()).await?);
    if store.shared() {
        let (registry, tokens) = (registry.clone(), tokens.clone());
        tokio::spawn(refresh_every("apps", async move || {
            registry.refresh().await
        }));
        tokio::spawn(refresh_every("tokens", async move || {
            tokens.refresh().await
        }));
    }
    let scheduler = Scheduler::new(
        store.clone(),
        registry.clone(),
        live.clone(),
        RunSupport {
            sealer: sealer.clone(),
            files: files.clone(),
        },
        metrics.clone(),
        SchedulerConfig {
            max_concurrent_runs: config.max_concurrent_runs,
            max_queue: config.max_queue,
            max_queue_per_app: config.max_queue_per_app,
            max_queue_per_caller: config.max_queue_per_caller,
            max_runs_per_app: config.max_runs_per_app,
        },
        guests,
    );
    scheduler.start().await?;
    if store.shared() {
        tokio::spawn(crate::cluster::run(
            store.clone(),
            scheduler.clone(),
            config.leases,
        ));
    }
    tokio::spawn(crate::sweeper::run(
        store.clone(),
        config.event_retention,
        files.clone(),
    ));
    tokio::spawn(crate::approvals::expire(store.clone()));

    // Deliveries run in the slow guest lane (the lowest priority): notifying never takes
    // CPU from a run.
    let notifier =
        crate::notify::Notifier::new(store.clone(), sealer.clone(), config.allow_private_network);
    lanes_slow.spawn(notifier.run());
    let services = Arc::new(Services {
        store,
        registry,
        scheduler: scheduler.clone(),
        live,
        admin_token: admin_token.value.clone(),
        tokens,
        sealer,
        limiter: RateLimiter::new(config.api.runs_per_minute),
        // One thread per core: validation is CPU work, more threads would only share.
        validations: ValidationPool::new(
            std::thread::available_parallelism().map_or(1, usize::from),
            || lower_priority(VALIDATION_NICE),
        )?,
        metrics: metrics.clone(),
        files,
        config: config.api.clone(),
    });
    tokio::spawn(crate::schedules::run(services.clone()));
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .with_context(|| format!("cannot listen on {}", config.listen))?;
    let address = listener.local_addr()?;
    // Tests and scripts read this line to find the port.
    println!("floom listening on http://{address}");
    eprintln!(
        "data in {}; admin token from {}",
        config.data_dir.display(),
        admin_token.source
    );

    if config.examples.is_some_and(|set| set.python()) {
        // Python components take seconds each to compile the first time (they are
        // cached after): publish them once the server answers.
        let registry = services.registry.clone();
        tokio::spawn(async move {
            if let Err(e) = publish_examples(&registry, true).await {
                eprintln!("error: {e:#}");
            }
        });
    }
    let shutdown = CancellationToken::new();
    tokio::spawn(watch_signals(shutdown.clone()));
    let server = crate::http::serve(
        listener,
        crate::pages::router()
            .with_state(services.clone())
            .merge(api::router(services)),
        config.connections.clone(),
        connections,
        shutdown.clone(),
    );
    let mut server = tokio::spawn(server);
    let stopped = tokio::select! {
        result = &mut server => Some(result),
        () = shutdown.cancelled() => None,
    };
    // The server only stops on its own after a shutdown signal (graceful shutdown ends it
    // at once when no connection is open); anything else is an error to report.
    if !shutdown.is_cancelled() {
        stopped
            .context("the server stopped")?
            .context("the server task failed")?;
        anyhow::bail!("the server stopped without a shutdown signal");
    }
    eprintln!(
        "shutting down: no new runs; waiting up to {} s for {} running",
        config.grace_period.as_secs(),
        scheduler.running()
    );
    let left = scheduler.drain(config.grace_period).await;
    if left > 0 {
        eprintln!("{left} executions still running will be retried at the next start");
    }
    // Open streams and waits get a moment to finish, then the process ends.
    if stopped.is_none() {
        let _ = tokio::time::timeout(Duration::from_secs(1), server).await;
    }
    Ok(())
}

/// Publishes the bundled examples, the Python ones or the others. An example the
/// operator deleted stays deleted.
async fn publish_examples(registry: &Registry, python: bool) -> anyhow::Result<()> {
    for example in crate::examples::EXAMPLES {
        if example.python != python {
            continue;
        }
        let published = registry
            .publish(
                example.manifest.to_owned(),
                bytes::Bytes::from_static(example.component),
            )
            .await;
        let (published, _) = match published {
            Ok(published) => published,
            Err(PublishError::Retired(e)) => {
                eprintln!("not publishing the example {}: {e}", example.name);
                continue;
            }
            Err(e) => anyhow::bail!("publishing the example {}: {e}", example.name),
        };
        if published.created {
            eprintln!(
                "published example {} (version {})",
                published.app.slug, published.app.current.version
            );
        }
    }
    Ok(())
}

async fn watch_signals(shutdown: CancellationToken) {
    let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(term) => term,
        Err(e) => {
            tracing::error!("cannot watch SIGTERM: {e}");
            return;
        }
    };
    tokio::select! {
        _ = term.recv() => {}
        _ = tokio::signal::ctrl_c() => {}
    }
    shutdown.cancel();
}

/// How soon a change another host made to the shared store takes effect here.
const REFRESH_EVERY: Duration = Duration::from_millis(500);

/// Runs `refresh` every [`REFRESH_EVERY`] (after a slow round the next starts at once:
/// rounds never pile up); a failed round is logged and the next one retries.
async fn refresh_every(what: &'static str, mut refresh: impl AsyncFnMut() -> anyhow::Result<()>) {
    let mut tick = tokio::time::interval(REFRESH_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        if let Err(e) = refresh().await {
            tracing::warn!("cannot refresh the {what} from the shared store: {e:#}");
        }
    }
}
