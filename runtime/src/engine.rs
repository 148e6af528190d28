//! One [`Engine`] per process: wasmtime configured for untrusted code, the pooling
//! allocator, the epoch ticker thread and the on-disk cache of compiled components.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use wasmtime::component::types::ComponentItem;
use wasmtime::component::{Component, HasSelf, InstancePre, Linker, ResourceType};
use wasmtime::{Enabled, InstanceAllocationStrategy, OptLevel, PoolingAllocationConfig, Strategy};

use crate::app::{CompiledApp, ComponentError};
use crate::cache::ArtifactCache;
use crate::manifest::{MAX_TIMEOUT, Manifest};
use crate::outcome::NetworkNotGranted;
use crate::sandbox::RunState;
use crate::sdk_host;

/// Operator-wide caps on what a single execution may produce (SPEC section 3 defaults).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Caps {
    /// Largest output, in bytes (1 MiB).
    pub output_bytes: usize,
    /// Largest single chunk, in bytes (64 KiB).
    pub chunk_bytes: usize,
    /// Streamed events per execution (10,000); later ones are dropped and marked.
    pub events: u64,
    /// Bytes of streamed chunks and log lines per execution (16 MiB): what the store
    /// keeps of one run; later events are dropped and marked.
    pub event_bytes: u64,
    /// Captured stdout, in bytes (1 MiB); the excess is dropped and marked.
    pub stdout_bytes: usize,
    /// Captured stderr, in bytes (1 MiB); the excess is dropped and marked.
    pub stderr_bytes: usize,
    /// Calls into the `floom:app/host` interface per execution; past it the guest traps.
    pub host_calls: u64,
    /// Live WASI resources (streams, pollables, ...) per execution.
    pub resources: usize,
    /// Outbound HTTP requests per execution.
    pub http_requests: u32,
    /// Outbound HTTP response body bytes per execution, over all requests.
    pub http_response_bytes: u64,
    /// Host memory an execution may make the host hold through `wasi:http` (32 MiB):
    /// fields maps, outgoing requests and responses, the strings set on them, and what
    /// their bodies may buffer, charged as they are created and never given back. Past
    /// it the guest traps and the run fails with `memory_limit`. An app that uses its
    /// whole request cap (100 requests with headers and a body each) needs about 20 MiB.
    pub http_memory_bytes: u64,
    /// What a run may write under `/out` (64 MiB): bytes past a file's high-water size,
    /// plus 4 KiB for each file or folder it creates. Past it the write fails inside the
    /// guest (`insufficient-space`) and the run goes on (`crate::files`).
    pub artifact_bytes: u64,
    /// Files and folders a run may create under `/out` (1,000); past it the creation
    /// fails inside the guest (`quota`).
    pub artifact_files: u64,
}

impl Default for Caps {
    fn default() -> Self {
        Caps {
            output_bytes: 1 << 20,
            chunk_bytes: 64 << 10,
            events: 10_000,
            event_bytes: 16 << 20,
            stdout_bytes: 1 << 20,
            stderr_bytes: 1 << 20,
            host_calls: 100_000,
            resources: 4096,
            http_requests: 100,
            http_response_bytes: 16 << 20,
            http_memory_bytes: 32 << 20,
            artifact_bytes: 64 << 20,
            artifact_files: 1000,
        }
    }
}

/// How the process-wide engine is set up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EngineConfig {
    /// Where compiled components are kept across restarts; `None` compiles every time.
    pub cache_dir: Option<PathBuf>,
    /// Sandboxes that may exist at once; sizes the pooling allocator.
    pub max_instances: u32,
    /// The largest memory limit any app gets, in MiB; an app asking for more is capped.
    pub max_memory_mb: u64,
    /// The longest deadline any run gets (the 290 s cap, or less).
    pub max_timeout: Duration,
    /// How often the epoch ticks: the granularity of deadlines and cancellation, and how
    /// often a busy guest yields its thread (1 ms: a run queued behind busy guests on
    /// the same thread waits about a tick, measured at ~2 ms median with every guest
    /// thread spinning, against ~10 ms with a 10 ms tick).
    pub epoch_tick: Duration,
    /// Per-execution output caps.
    pub caps: Caps,
    /// Whether apps may reach private, loopback and link-local addresses (for tests and
    /// self-hosting next to internal services). Off: only public addresses.
    pub allow_private_network: bool,
}

impl Default for EngineConfig {
    fn default() -> Self {
        EngineConfig {
            cache_dir: None,
            max_instances: 1000,
            max_memory_mb: 1024,
            max_timeout: MAX_TIMEOUT,
            epoch_tick: Duration::from_millis(1),
            caps: Caps::default(),
            allow_private_network: false,
        }
    }
}

/// The process-wide sandbox engine. Cheap to clone.
#[derive(Clone)]
pub struct Engine {
    inner: Arc<EngineInner>,
}

/// One wasmtime engine and the linkers that go with it. Fuel metering is compiled into
/// the code, so apps that ask for fuel get an engine of their own and the others pay
/// nothing for it.
pub(crate) struct Flavor {
    pub engine: wasmtime::Engine,
    /// Everything the host provides: WASI, `floom:app/host` and `wasi:http` (charged
    /// against the run's budget, `crate::http_budget`). Apps with `[network]` link here.
    linker: Linker<RunState>,
    /// The same without `wasi:http`, for apps whose manifest grants no network.
    offline: Linker<RunState>,
    pub cache_key: String,
}

struct EngineInner {
    config: EngineConfig,
    plain: Flavor,
    metered: Flavor,
    cache: Option<ArtifactCache>,
    ticker: Option<EpochTicker>,
}

impl Engine {
    /// Builds the engines, starts the epoch ticker and opens the compile cache.
    pub fn new(config: EngineConfig) -> anyhow::Result<Self> {
        anyhow::ensure!(config.max_instances > 0, "max_instances must be at least 1");
        anyhow::ensure!(
            !config.epoch_tick.is_zero(),
            "epoch_tick must be longer than zero"
        );
        let plain = Flavor::new(&config, false)?;
        let metered = Flavor::new(&config, true)?;
        let cache = config
            .cache_dir
            .as_ref()
            .map(|dir| ArtifactCache::open(dir.clone()))
            .transpose()?;
        let ticker = EpochTicker::start(
            vec![plain.engine.clone(), metered.engine.clone()],
            config.epoch_tick,
        )?;
        Ok(Engine {
            inner: Arc::new(EngineInner {
                config,
                plain,
                metered,
                cache,
                ticker: Some(ticker),
            }),
        })
    }

    /// Keeps the epoch ticking for a guest's store while it lives.
    pub(crate) fn ticking(&self) -> Option<Ticking> {
        self.inner.ticker.as_ref().map(EpochTicker::ticking)
    }

    /// The configuration this engine was built with.
    pub fn config(&self) -> &EngineConfig {
        &self.inner.config
    }

    pub(crate) fn flavor(&self, metered: bool) -> &Flavor {
        if metered {
            &self.inner.metered
        } else {
            &self.inner.plain
        }
    }

    /// Validates and compiles `component` for the app described by `manifest` (which the
    /// caller has validated). A component compiled before with the same engine settings is
    /// loaded from the cache instead. CPU-heavy: call it off the async executor.
    pub fn compile(
        &self,
        manifest: Manifest,
        component: &[u8],
    ) -> Result<CompiledApp, ComponentError> {
        let started = Instant::now();
        crate::app::check_header(component)?;
        let sha256 = crate::cache::sha256_hex(component);
        let metered = manifest.limits.fuel.is_some();
        let flavor = self.flavor(metered);
        let cached = self
            .inner
            .cache
            .as_ref()
            .and_then(|cache| cache.load(&flavor.engine, &flavor.cache_key, &sha256));
        let from_cache = cached.is_some();
        let compiled = match cached {
            Some(component) => component,
            None => {
                let compiled = wasmtime::component::Component::new(&flavor.engine, component)
                    .map_err(|e| ComponentError::Invalid(format!("{e:#}")))?;
                if let Some(cache) = &self.inner.cache {
                    cache.store(&flavor.cache_key, &sha256, &compiled);
                }
                compiled
            }
        };
        CompiledApp::new(
            self.clone(),
            manifest,
            compiled,
            sha256,
            metered,
            crate::app::CompileInfo {
                from_cache,
                elapsed: started.elapsed(),
            },
        )
    }
}

impl Drop for EngineInner {
    fn drop(&mut self) {
        if let Some(ticker) = self.ticker.take() {
            ticker.stop();
        }
    }
}

impl Flavor {
    fn new(config: &EngineConfig, metered: bool) -> anyhow::Result<Self> {
        let mut wasm = wasmtime::Config::new();
        // Cranelift, not Winch: the optimising compiler is the one that is fuzzed and
        // hardened for untrusted code.
        wasm.strategy(Strategy::Cranelift);
        wasm.cranelift_opt_level(OptLevel::Speed);
        wasm.wasm_component_model(true);
        // Deadlines and cancellation: a ticker thread bumps the epoch; every running guest
        // checks it at function entries and loop back-edges.
        wasm.epoch_interruption(true);
        wasm.consume_fuel(metered);
        // Guests never run concurrently inside one store (threads, GC and
        // component-model-async are compiled out of wasmtime altogether).
        wasm.concurrency_support(false);
        wasm.parallel_compilation(true);
        if let Some(reservation) = memory_reservation(config) {
            wasm.memory_reservation(reservation);
        }
        wasm.allocation_strategy(InstanceAllocationStrategy::Pooling(pooling(config)));
        let engine = wasmtime::Engine::new(&wasm)
            .map_err(|e| anyhow::Error::from(e).context("cannot create the wasmtime engine"))?;

        let mut offline = Linker::new(&engine);
        // Every WASI preview-2 interface is linked, so ordinary `wasm32-wasip2` programs
        // instantiate; what they may do is decided per run by the WasiCtx (no sockets,
        // no name lookup, no host environment, and only the run's own `/in` and `/out`,
        // whose writes are charged against its budget).
        wasmtime_wasi::p2::add_to_linker_async(&mut offline)?;
        crate::files::add_to_linker(&mut offline)?;
        sdk_host::floom::app::host::add_to_linker::<RunState, HasSelf<RunState>>(
            &mut offline,
            |state| state,
        )?;
        // Outbound HTTP only for apps that list hosts; each request is still checked
        // against the app's allowlist by `Outbound`.
        let mut linker = offline.clone();
        crate::http_budget::add_to_linker(&mut linker)?;
        let cache_key = crate::cache::engine_key(&engine);
        Ok(Flavor {
            engine,
            linker,
            offline,
            cache_key,
        })
    }

    /// Links `component` for an app with or without a network grant.
    ///
    /// Every component is first checked against everything the host provides, so an
    /// import the host lacks is refused the same way either way. Without a grant, the
    /// component's `wasi:http` imports are then stood in for by functions that trap with
    /// [`NetworkNotGranted`]: a component that imports `wasi:http` without using it (as
    /// componentize-py builds do) still runs, and one that calls it learns why it may not.
    pub(crate) fn link(
        &self,
        component: &Component,
        network: bool,
    ) -> Result<InstancePre<RunState>, ComponentError> {
        let unsupported = |e: wasmtime::Error| {
            ComponentError::UnsupportedImport(crate::app::describe_missing_import(&e))
        };
        let full = self
            .linker
            .instantiate_pre(component)
            .map_err(unsupported)?;
        if network {
            return Ok(full);
        }
        let ty = component.component_type();
        let imports: Vec<(&str, ComponentItem)> = ty
            .imports(&self.engine)
            .map(|(name, import)| (name, import.ty))
            .collect();
        let is_http = |name: &str| name.starts_with("wasi:http/");
        if !imports.iter().any(|(name, _)| is_http(name)) {
            return self.offline.instantiate_pre(component).map_err(unsupported);
        }
        // Resources `wasi:http` only re-exports (`wasi:io`'s streams and pollables) are
        // already linked and must keep their real types.
        let linked: Vec<ResourceType> = imports
            .iter()
            .filter(|(name, _)| !is_http(name))
            .filter_map(|(_, item)| match item {
                ComponentItem::ComponentInstance(instance) => Some(instance),
                _ => None,
            })
            .flat_map(|instance| instance.exports(&self.engine))
            .filter_map(|(_, export)| match export.ty {
                ComponentItem::Resource(ty) => Some(ty),
                _ => None,
            })
            .collect();
        let mut linker = self.offline.clone();
        for (name, item) in &imports {
            let ComponentItem::ComponentInstance(instance) = item else {
                continue;
            };
            if !is_http(name) {
                continue;
            }
            let mut stand_in = linker.instance(name).map_err(unsupported)?;
            for (export, item) in instance.exports(&self.engine) {
                match item.ty {
                    ComponentItem::ComponentFunc(_) => {
                        let called = format!("{name}#{export}");
                        stand_in
                            .func_new(export, move |_, _, _, _| {
                                Err(NetworkNotGranted(called.clone()).into())
                            })
                            .map_err(unsupported)?;
                    }
                    ComponentItem::Resource(ty) if !linked.contains(&ty) => stand_in
                        .resource(export, ResourceType::host::<()>(), |_, _| Ok(()))
                        .map_err(unsupported)?,
                    _ => {}
                }
            }
        }
        linker.instantiate_pre(component).map_err(unsupported)
    }
}

/// Address space the memory pools of both engine flavors may reserve: most of the
/// 128 TiB a 64-bit Linux process has, with room for everything else.
const POOL_ADDRESS_SPACE: u64 = 64 << 40;
/// What wasmtime reserves per memory slot by default (4 GiB) and its guard (32 MiB).
const DEFAULT_SLOT: u64 = (4 << 30) + (32 << 20);

/// The address space each memory slot reserves, when the default does not fit.
///
/// By default every slot reserves 4 GiB, so compiled code needs no bounds checks on
/// 32-bit memories. The pool has two memories per sandbox and there are two engines
/// (with and without fuel), so past about 8,000 sandboxes the slots no longer fit in
/// the address space and the engine would not start. Then each slot reserves only the
/// largest memory an app may have, and compiled code checks bounds instead.
fn memory_reservation(config: &EngineConfig) -> Option<u64> {
    let slots = 2 * 2 * u64::from(config.max_instances);
    (slots.saturating_mul(DEFAULT_SLOT) > POOL_ADDRESS_SPACE).then_some(config.max_memory_mb << 20)
}

/// The pooling allocator: slots for every sandbox are reserved up front, so starting one
/// is a free-list pop instead of `mmap` calls, and the pool size is a hard cap on
/// concurrent sandboxes.
pub(crate) fn pooling(config: &EngineConfig) -> PoolingAllocationConfig {
    let n = config.max_instances;
    let mut pool = PoolingAllocationConfig::new();
    // One component instance per sandbox.
    pool.total_component_instances(n);
    // A Rust `wasm32-wasip2` component holds the program, the WASI adapter and a few
    // shims: up to 4 core instances, 2 memories and 2 tables in practice; a Python one
    // (componentize-py) instantiates 14 core modules. Core-instance slots are small
    // (a reservation of metadata, not memory), so every sandbox may hold the
    // per-component cap; a component needing more is refused at instantiation.
    pool.total_core_instances(n.saturating_mul(16));
    pool.max_core_instances_per_component(16);
    pool.total_memories(n.saturating_mul(2));
    pool.max_memories_per_component(4);
    pool.total_tables(n.saturating_mul(2));
    pool.max_tables_per_component(4);
    // One async fiber stack per running call.
    pool.total_stacks(n);
    // No single memory may pass the operator's cap; the per-run limiter enforces each
    // app's own, smaller limit over all of its memories.
    pool.max_memory_size(usize::try_from(config.max_memory_mb << 20).unwrap_or(usize::MAX));
    // Returning a slot normally `madvise`s its memory away, which costs a syscall and
    // cross-CPU TLB flushes per run, and the next run faults every page back in (a
    // copy-on-write fault, with another TLB flush, for pages of the data image).
    // Instead, up to 2 MiB of the pages a run wrote are reset in place; with
    // `PAGEMAP_SCAN` (Linux 6.7+) only the pages actually written are, and they stay
    // resident and private for the next run. The rest is still decommitted.
    pool.pagemap_scan(Enabled::Auto);
    pool.linear_memory_keep_resident(2 << 20);
    pool.table_keep_resident(64 << 10);
    pool.async_stack_keep_resident(64 << 10);
    // Decommits are not batched (wasmtime's default of 1): with batching, slots freed
    // by finished runs sat in a decommit queue and a new run could find the pool "full"
    // although only `max_instances` sandboxes existed (reproduced: a pool of 8 running 8
    // at a time failed about 5% of instantiations with a batch of 16).
    pool
}

/// Bumps the epoch of every engine at a fixed interval from its own OS thread (a tokio
/// task could be starved by a busy guest, which is exactly when the tick matters), while
/// any guest is running and for [`IDLE_TICKS`] after: an idle server does not wake a
/// thousand times a second, and a busy one does not wake the ticker for every run (a
/// syscall, and on a VM an IPI, on the path of each run's start). Epoch deadlines count
/// ticks from when they are set, so a pause between runs changes none.
struct EpochTicker {
    stop: Arc<AtomicBool>,
    running: Arc<AtomicUsize>,
    /// Set while the ticker sleeps until the next guest starts.
    asleep: Arc<AtomicBool>,
    thread: JoinHandle<()>,
}

/// Ticks the ticker goes on for after the last guest ended, in case another starts.
const IDLE_TICKS: u32 = 100;

/// Keeps the epoch ticking while it lives: held by every guest's store.
pub(crate) struct Ticking {
    running: Arc<AtomicUsize>,
}

impl Drop for Ticking {
    fn drop(&mut self) {
        self.running.fetch_sub(1, Ordering::AcqRel);
    }
}

impl EpochTicker {
    fn start(engines: Vec<wasmtime::Engine>, tick: Duration) -> anyhow::Result<Self> {
        let stop = Arc::new(AtomicBool::new(false));
        let running = Arc::new(AtomicUsize::new(0));
        let asleep = Arc::new(AtomicBool::new(false));
        let (flag, guests, sleeping) = (stop.clone(), running.clone(), asleep.clone());
        let thread = std::thread::Builder::new()
            .name("floom-epoch".into())
            .spawn(move || {
                let mut idle = 0;
                while !flag.load(Ordering::Acquire) {
                    if guests.load(Ordering::SeqCst) > 0 {
                        idle = 0;
                    } else if idle < IDLE_TICKS {
                        idle += 1;
                    } else {
                        // Asleep first, then the count checked again: a guest that
                        // starts in between either is seen here or sees `asleep` and
                        // unparks (an unpark that comes first makes `park` return).
                        sleeping.store(true, Ordering::SeqCst);
                        if guests.load(Ordering::SeqCst) == 0 {
                            std::thread::park();
                        }
                        sleeping.store(false, Ordering::SeqCst);
                        idle = 0;
                        continue;
                    }
                    std::thread::park_timeout(tick);
                    for engine in &engines {
                        engine.increment_epoch();
                    }
                }
            })
            .context("cannot start the epoch ticker thread")?;
        Ok(EpochTicker {
            stop,
            running,
            asleep,
            thread,
        })
    }

    fn ticking(&self) -> Ticking {
        self.running.fetch_add(1, Ordering::SeqCst);
        if self.asleep.swap(false, Ordering::SeqCst) {
            self.thread.thread().unpark();
        }
        Ticking {
            running: self.running.clone(),
        }
    }

    fn stop(self) {
        self.stop.store(true, Ordering::Release);
        self.thread.thread().unpark();
        // The thread only sleeps and ticks: it cannot panic, and joining bounds its life
        // to the engine's.
        let _ = self.thread.join();
    }
}
