//! The bare-wasmtime baseline the runtime is measured against: the same component, the
//! pooling allocator and an `InstancePre`, a fresh store per run, and nothing else (no
//! limits, deadlines, output capture or events).

use wasmtime::component::{HasSelf, Linker, ResourceTable};
use wasmtime::{Engine, InstanceAllocationStrategy, PoolingAllocationConfig, Store};
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

mod bindings {
    wasmtime::component::bindgen!({
        path: "../wit",
        world: "app",
        imports: { default: async },
        exports: { default: async },
    });
}

use bindings::floom::app::host;

/// Store data of a bare run: WASI and nothing more.
pub struct Bare {
    wasi: WasiCtx,
    table: ResourceTable,
}

impl WasiView for Bare {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

/// The `floom:app/host` imports, doing nothing: the baseline measures wasmtime alone.
impl host::Host for Bare {
    async fn emit(&mut self, _chunk: String) -> Result<(), String> {
        Ok(())
    }

    async fn log(&mut self, _level: host::Level, _message: String) {}

    async fn secret(&mut self, _name: String) -> Option<String> {
        None
    }
}

/// An SDK app on bare wasmtime.
pub struct BareApp {
    engine: Engine,
    pre: bindings::AppPre<Bare>,
}

impl BareApp {
    /// Compiles the SDK component at `path` on a pooling engine with default settings.
    pub fn new(path: &str) -> wasmtime::Result<Self> {
        let mut config = wasmtime::Config::new();
        config.allocation_strategy(InstanceAllocationStrategy::Pooling(
            PoolingAllocationConfig::new(),
        ));
        let engine = Engine::new(&config)?;
        let mut linker = Linker::new(&engine);
        wasmtime_wasi::p2::add_to_linker_async(&mut linker)?;
        host::add_to_linker::<Bare, HasSelf<Bare>>(&mut linker, |state| state)?;
        let component = wasmtime::component::Component::from_file(&engine, path)?;
        let pre = bindings::AppPre::new(linker.instantiate_pre(&component)?)?;
        Ok(BareApp { engine, pre })
    }

    /// Instantiates the app in a fresh store and calls `run(action, input)`.
    pub async fn run(&self, action: &str, input: &str) -> wasmtime::Result<String> {
        let mut store = Store::new(
            &self.engine,
            Bare {
                wasi: WasiCtx::builder().build(),
                table: ResourceTable::new(),
            },
        );
        let app = self.pre.instantiate_async(&mut store).await?;
        let output = app
            .floom_app_handler()
            .call_run(&mut store, action, input)
            .await?;
        output.map_err(|e| wasmtime::format_err!("{}: {}", e.code, e.message))
    }
}
