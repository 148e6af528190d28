//! Bare wasmtime, the baseline the runtime is measured against (`floom bench`, the
//! criterion benches): the same component on a pooling engine, an `InstancePre`, a fresh
//! store per run with an empty WASI context, and nothing else: no limits, deadlines,
//! output capture, events or outcome classification.
//!
//! [`Baseline::new`] uses wasmtime's default pool (what a user of wasmtime starts
//! with); [`Baseline::tuned`] the runtime's own pool settings, which isolates the cost
//! of what the runtime adds from the gain of how it configures the pool.

use wasmtime::component::{Component, HasSelf, Linker, ResourceTable};
use wasmtime::{Engine, InstanceAllocationStrategy, PoolingAllocationConfig, Store};
use wasmtime_wasi::p2::bindings::CommandPre;
use wasmtime_wasi::p2::pipe::{MemoryInputPipe, MemoryOutputPipe};
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};
use wasmtime_wasi_http::{WasiHttpCtx, WasiHttpCtxView, WasiHttpHooks, WasiHttpView};

use crate::EngineConfig;
use crate::app::{HANDLER_EXPORT, check_header};
use crate::engine::pooling;
use crate::sdk_host::{AppPre, floom::app::host};

/// Store data of a bare run.
pub struct Bare {
    wasi: WasiCtx,
    http: WasiHttpCtx,
    hooks: NoNetwork,
    table: ResourceTable,
}

/// Outbound HTTP that is always refused: the baseline measures wasmtime, not networks.
struct NoNetwork;

impl WasiHttpHooks for NoNetwork {
    fn send_request(
        &mut self,
        _request: http::Request<wasmtime_wasi_http::WasiBody>,
        _options: Option<wasmtime_wasi_http::RequestOptions>,
        _fut: Box<dyn Future<Output = Result<(), wasmtime_wasi_http::Error>> + Send>,
    ) -> Box<
        dyn Future<
                Output = Result<
                    (
                        http::Response<wasmtime_wasi_http::WasiBody>,
                        Box<dyn Future<Output = Result<(), wasmtime_wasi_http::Error>> + Send>,
                    ),
                    wasmtime_wasi_http::Error,
                >,
            > + Send,
    > {
        Box::new(async { Err(wasmtime_wasi_http::Error::HttpRequestDenied) })
    }
}

impl WasiView for Bare {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl WasiHttpView for Bare {
    fn http(&mut self) -> WasiHttpCtxView<'_> {
        WasiHttpCtxView {
            ctx: &mut self.http,
            table: &mut self.table,
            hooks: &mut self.hooks,
        }
    }
}

/// The `floom:app/host` imports, doing nothing.
impl host::Host for Bare {
    async fn emit(&mut self, _chunk: String) -> wasmtime::Result<Result<(), String>> {
        Ok(Ok(()))
    }

    async fn log(&mut self, _level: host::Level, _message: String) -> wasmtime::Result<()> {
        Ok(())
    }

    async fn secret(&mut self, _name: String) -> wasmtime::Result<Option<String>> {
        Ok(None)
    }
}

enum BarePre {
    Sdk(AppPre<Bare>),
    Command(CommandPre<Bare>),
}

/// A component on bare wasmtime.
pub struct Baseline {
    engine: Engine,
    pre: BarePre,
}

impl Baseline {
    /// Compiles `component` on a pooling engine with wasmtime's default settings.
    pub fn new(component: &[u8]) -> anyhow::Result<Self> {
        Self::with_pool(component, PoolingAllocationConfig::new())
    }

    /// Compiles `component` on a pooling engine configured like the runtime's (memory
    /// kept resident and reset in place), with nothing else of the runtime.
    pub fn tuned(component: &[u8]) -> anyhow::Result<Self> {
        Self::with_pool(component, pooling(&EngineConfig::default()))
    }

    fn with_pool(component: &[u8], pool: PoolingAllocationConfig) -> anyhow::Result<Self> {
        check_header(component)?;
        let mut config = wasmtime::Config::new();
        config.allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
        let engine = Engine::new(&config).map_err(anyhow::Error::from)?;
        let mut linker = Linker::new(&engine);
        wasmtime_wasi::p2::add_to_linker_async(&mut linker).map_err(anyhow::Error::from)?;
        wasmtime_wasi_http::p2::add_only_http_to_linker_async(&mut linker)
            .map_err(anyhow::Error::from)?;
        host::add_to_linker::<Bare, HasSelf<Bare>>(&mut linker, |state| state)
            .map_err(anyhow::Error::from)?;
        let compiled = Component::new(&engine, component).map_err(anyhow::Error::from)?;
        let instance_pre = linker
            .instantiate_pre(&compiled)
            .map_err(anyhow::Error::from)?;
        let pre = if compiled.get_export_index(None, HANDLER_EXPORT).is_some() {
            BarePre::Sdk(AppPre::new(instance_pre).map_err(anyhow::Error::from)?)
        } else {
            BarePre::Command(CommandPre::new(instance_pre).map_err(anyhow::Error::from)?)
        };
        Ok(Baseline { engine, pre })
    }

    fn store(&self, stdin: &str) -> Store<Bare> {
        let mut wasi = WasiCtx::builder();
        if matches!(self.pre, BarePre::Command(_)) {
            wasi.stdin(MemoryInputPipe::new(stdin.to_owned()))
                .stdout(MemoryOutputPipe::new(1 << 20))
                .env("FLOOM_ACTION", "run");
        }
        Store::new(
            &self.engine,
            Bare {
                wasi: wasi.build(),
                http: WasiHttpCtx::new(),
                hooks: NoNetwork,
                table: ResourceTable::new(),
            },
        )
    }

    /// Instantiates the component in a fresh store, without calling it.
    pub async fn instantiate(&self) -> anyhow::Result<()> {
        let mut store = self.store("{}");
        match &self.pre {
            BarePre::Sdk(pre) => pre.instantiate_async(&mut store).await.map(|_| ())?,
            BarePre::Command(pre) => pre.instantiate_async(&mut store).await.map(|_| ())?,
        }
        Ok(())
    }

    /// Instantiates the component in a fresh store and runs `action` on `input`.
    pub async fn run(&self, action: &str, input: &str) -> anyhow::Result<()> {
        let mut store = self.store(input);
        match &self.pre {
            BarePre::Sdk(pre) => {
                let app = pre.instantiate_async(&mut store).await?;
                app.floom_app_handler()
                    .call_run(&mut store, action, input)
                    .await?
                    .map_err(|e| anyhow::anyhow!("{}: {}", e.code, e.message))?;
            }
            BarePre::Command(pre) => {
                let command = pre.instantiate_async(&mut store).await?;
                command
                    .wasi_cli_run()
                    .call_run(&mut store)
                    .await?
                    .map_err(|()| anyhow::anyhow!("the command failed"))?;
            }
        }
        Ok(())
    }
}
