//! `floom serve`: run the server.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use crate::api::ApiConfig;
use crate::artifacts::FilesConfig;
use crate::http::ConnectionLimits;
use crate::server::{Examples, ServerConfig, serve};

/// Serve the HTTP API on an embedded SQLite store.
///
/// The admin token is FLOOM_SECRET, or one generated into <data-dir>/admin-token (mode
/// 0600) at first start. Executions survive restarts: queued ones resume, running ones
/// are retried once. SIGTERM stops accepting runs and gives running ones the grace
/// period to finish.
///
/// Examples:
///
///   floom serve --examples
///
///   FLOOM_SECRET=s3cret floom serve --listen 0.0.0.0:8000 --data-dir /var/lib/floom
#[derive(Debug, clap::Args)]
#[command(verbatim_doc_comment)]
pub struct ServeArgs {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:8000")]
    pub listen: SocketAddr,

    /// Where the database, components and compiled artifacts live.
    #[arg(long, default_value = "./floom-data", env = "FLOOM_DATA_DIR")]
    pub data_dir: PathBuf,

    /// Keep the store in this PostgreSQL database (postgres://user:password@host/db)
    /// instead of the embedded SQLite file in --data-dir.
    #[arg(long, env = "FLOOM_DATABASE_URL", value_name = "URL")]
    pub database: Option<String>,

    /// With --database: how long a host holds a running execution without renewing.
    /// A host that dies (or loses the database) has its runs retried by another host
    /// this long after.
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u64).range(2..=3600))]
    pub lease_s: u64,

    /// With --database: how often a host renews its leases (at most a third of
    /// --lease-s is sane: a renewal may be slow).
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u64).range(1..=1200))]
    pub lease_renew_s: u64,

    /// Publish the bundled example apps at startup: all of them, or only the Rust or the
    /// Python ones (Python components take seconds each to compile the first time; they
    /// are published once the server answers).
    #[arg(long, value_enum, num_args = 0..=1, require_equals = true, default_missing_value = "all")]
    pub examples: Option<Examples>,

    /// Executions that run at once.
    #[arg(long, default_value_t = 64)]
    pub max_concurrent_runs: usize,

    /// Executions of one app that run at once (default: three quarters of
    /// --max-concurrent-runs), so one busy or misbehaving app cannot take every slot.
    #[arg(long)]
    pub max_runs_per_app: Option<usize>,

    /// Executions that may wait; past it, runs get 429 quota_exceeded.
    #[arg(long, default_value_t = 10_000)]
    pub max_queue: usize,

    /// Executions of one app that may wait (default: half of --max-queue), so one
    /// app's backlog cannot fill the queue for every other app.
    #[arg(long)]
    pub max_queue_per_app: Option<usize>,

    /// Executions one caller (an agent token, the admin, or a client address when
    /// anonymous) may have waiting (default: a quarter of --max-queue), so one caller
    /// cannot fill the queue for the others.
    #[arg(long)]
    pub max_queue_per_caller: Option<usize>,

    /// The largest memory limit any app gets, in MiB.
    #[arg(long, default_value_t = 1024)]
    pub max_memory_mb: u64,

    /// The longest any run may take, in seconds (at most 290).
    #[arg(long, default_value_t = 290, value_parser = clap::value_parser!(u64).range(1..=290))]
    pub max_timeout_s: u64,

    /// Seconds running executions get to finish on shutdown.
    #[arg(long, default_value_t = 30)]
    pub grace_period_s: u64,

    /// Threads that start guests (default: twice the CPU count). A run busy for more
    /// than 3 ms of guest time moves to a slow lane at the lowest CPU priority, with at
    /// most one thread per CPU.
    #[arg(long)]
    pub guest_threads: Option<usize>,

    /// Threads that serve HTTP (default: one per CPU). Each connection is served on one
    /// of them, so a single client keeps one thread busy and leaves the others asleep.
    #[arg(long)]
    pub http_threads: Option<usize>,

    /// Where compiled components are cached (default: <data-dir>/compiled). Safe to
    /// share between servers of the same build.
    #[arg(long)]
    pub cache_dir: Option<PathBuf>,

    /// The largest component a publish may upload, and the largest run request carrying
    /// input files, in MiB.
    #[arg(long, default_value_t = 64)]
    pub max_upload_mb: usize,

    /// Let apps and webhook deliveries reach private, loopback and link-local addresses
    /// (for tests, and for self-hosting next to internal services). Off: they reach
    /// public addresses only.
    #[arg(long)]
    pub allow_private_network: bool,

    /// Outbound HTTP requests one run may make.
    #[arg(long, default_value_t = 100)]
    pub max_outbound_requests: u32,

    /// Outbound HTTP response bytes one run may read, in MiB.
    #[arg(long, default_value_t = 16)]
    pub max_outbound_response_mb: u64,

    /// Bytes of streamed chunks and log lines one run may store, in MiB; later ones are
    /// dropped and marked.
    #[arg(long, default_value_t = 16, value_parser = clap::value_parser!(u64).range(1..))]
    pub max_event_mb: u64,

    /// Days the streamed events (chunks, logs) of finished runs are kept; 0 keeps them
    /// forever. The execution, its output and its final event stay.
    #[arg(long, default_value_t = 30)]
    pub event_retention_days: u64,
    /// Host memory one run may make the server hold through wasi:http, in MiB: headers,
    /// requests and what their bodies buffer, counted as they are made (a run using all
    /// of its outbound requests needs about 20). Past it the run fails with
    /// `memory_limit`.
    #[arg(long, default_value_t = 32, value_parser = clap::value_parser!(u64).range(1..=65_536))]
    pub max_http_memory_mb: u64,

    /// What one run may write under `/out` (its artifacts), in MiB; a manifest may ask
    /// for less with `[limits] artifacts_mb`. A write past it fails inside the app.
    #[arg(long, default_value_t = 64, value_parser = clap::value_parser!(u64).range(1..=65_536))]
    pub max_artifacts_mb: u64,

    /// Files and folders one run may create under `/out`.
    #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u64).range(1..=1_000_000))]
    pub max_artifact_files: u64,

    /// Seconds a signed artifact URL stays valid; `?url_ttl_s=N` on a read asks for less.
    #[arg(long, default_value_t = 3600, value_parser = clap::value_parser!(u64).range(1..))]
    pub artifact_url_ttl_s: u64,

    /// Days input files and artifacts are kept, then deleted.
    #[arg(long, default_value_t = 30, value_parser = clap::value_parser!(u64).range(1..))]
    pub artifact_retention_days: u64,

    /// Seconds input files and artifacts are kept, instead of the days above (tests).
    #[arg(long, hide = true)]
    pub artifact_retention_s: Option<u64>,

    /// Seconds a sync run (`?wait=true`, an MCP `tools/call`) holds its request for the
    /// outcome; a run still going then is answered with its execution id.
    #[arg(long, default_value_t = 250, value_parser = clap::value_parser!(u64).range(1..=250))]
    pub max_wait_s: u64,

    /// Runs one caller (an agent token, or a client address when anonymous) may start
    /// per minute; 0 for no limit. The admin secret is exempt.
    #[arg(long, default_value_t = 600)]
    pub runs_per_minute: u32,

    /// Client connections open at once; more wait in the listen backlog.
    #[arg(long, default_value_t = 10_000)]
    pub max_connections: usize,

    /// Seconds a client has to send a request's headers; also how long an idle
    /// keep-alive connection stays open.
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..))]
    pub header_timeout_s: u64,

    /// Seconds a client has to send a request body, from the request's arrival.
    #[arg(long, default_value_t = 60, value_parser = clap::value_parser!(u64).range(1..))]
    pub body_timeout_s: u64,

    /// Seconds a write to a client may make no progress (a client that stopped
    /// reading) before its connection is dropped.
    #[arg(long, default_value_t = 30, value_parser = clap::value_parser!(u64).range(1..))]
    pub write_timeout_s: u64,
}

/// Runs `floom serve` (it builds its own runtimes).
pub fn run(args: ServeArgs) -> anyhow::Result<()> {
    let cores = std::thread::available_parallelism().map_or(2, usize::from);
    serve(ServerConfig {
        cache_dir: args
            .cache_dir
            .unwrap_or_else(|| args.data_dir.join("compiled")),
        listen: args.listen,
        data_dir: args.data_dir,
        database: args.database,
        leases: crate::cluster::Leases {
            length: Duration::from_secs(args.lease_s),
            renew: Duration::from_secs(args.lease_renew_s.min(args.lease_s / 2).max(1)),
        },
        max_concurrent_runs: args.max_concurrent_runs.max(1),
        max_runs_per_app: args
            .max_runs_per_app
            .unwrap_or(args.max_concurrent_runs * 3 / 4)
            .max(1),
        max_queue: args.max_queue,
        max_queue_per_app: args.max_queue_per_app.unwrap_or(args.max_queue / 2).max(1),
        max_queue_per_caller: args
            .max_queue_per_caller
            .unwrap_or(args.max_queue / 4)
            .max(1),
        max_memory_mb: args.max_memory_mb,
        max_timeout: Duration::from_secs(args.max_timeout_s),
        grace_period: Duration::from_secs(args.grace_period_s),
        guest_threads: args.guest_threads.unwrap_or(cores * 2).max(1),
        http_threads: args.http_threads.unwrap_or(cores).max(1),
        examples: args.examples,
        allow_private_network: args.allow_private_network,
        max_outbound_requests: args.max_outbound_requests,
        max_outbound_response_bytes: args.max_outbound_response_mb << 20,
        max_event_bytes: args.max_event_mb << 20,
        event_retention: (args.event_retention_days > 0)
            .then(|| Duration::from_secs(args.event_retention_days * 86_400)),
        max_http_memory_bytes: args.max_http_memory_mb << 20,
        max_artifact_bytes: args.max_artifacts_mb << 20,
        files: FilesConfig {
            max_upload_bytes: (args.max_upload_mb as u64) << 20,
            url_ttl: Duration::from_secs(args.artifact_url_ttl_s),
            retention: Duration::from_secs(
                args.artifact_retention_s
                    .unwrap_or(args.artifact_retention_days * 86_400),
            ),
            max_artifacts: usize::try_from(args.max_artifact_files).unwrap_or(usize::MAX),
        },
        api: ApiConfig {
            max_component: args.max_upload_mb << 20,
            runs_per_minute: args.runs_per_minute,
            body_deadline: Duration::from_secs(args.body_timeout_s),
            allow_private_network: args.allow_private_network,
            max_wait: Duration::from_secs(args.max_wait_s),
            ..ApiConfig::default()
        },
        connections: ConnectionLimits {
            max_connections: args.max_connections.max(1),
            header_timeout: Duration::from_secs(args.header_timeout_s),
            write_timeout: Duration::from_secs(args.write_timeout_s),
            ..ConnectionLimits::default()
        },
    })
}
