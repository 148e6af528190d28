//! Published apps, compiled and ready to run: the current version of every app in
//! memory, older versions loaded on demand (queued executions run the version they were
//! accepted for), and the input schemas of every action (compiled by [`crate::schema`]).

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use floom_runtime::{CompiledApp, ComponentError, Engine, Manifest, ManifestError};

use crate::components::Components;
use crate::metrics::Metrics;
use crate::scheduler::Guests;
use crate::schema::Schema;
use crate::store::{
    AppRecord, DeletedApp, DynStore, Published, SlugRetired, VersionRecord, now_ms,
};

/// One compiled app version with its input schemas.
pub struct LoadedApp {
    /// The version as stored.
    pub record: VersionRecord,
    /// The compiled component.
    pub app: CompiledApp,
    input_schemas: HashMap<String, Arc<Schema>>,
    output_schemas: HashMap<String, Arc<Schema>>,
}

impl LoadedApp {
    /// The same compiled version under another record (the app's visibility changed).
    fn with_record(&self, record: VersionRecord) -> Self {
        LoadedApp {
            record,
            app: self.app.clone(),
            input_schemas: self.input_schemas.clone(),
            output_schemas: self.output_schemas.clone(),
        }
    }

    fn new(record: VersionRecord, app: CompiledApp) -> Result<Self, ManifestError> {
        let (input_schemas, output_schemas) = compile_schemas(app.manifest())?;
        Ok(LoadedApp {
            record,
            app,
            input_schemas,
            output_schemas,
        })
    }

    /// The action's `input_schema`, if it has one; validate with
    /// [`crate::schema::ValidationPool::validate`].
    pub fn input_schema(&self, action: &str) -> Option<Arc<Schema>> {
        self.input_schemas.get(action).cloned()
    }

    /// The action's `output_schema`, if it has one (what an approver's edit must meet).
    pub fn output_schema(&self, action: &str) -> Option<Arc<Schema>> {
        self.output_schemas.get(action).cloned()
    }
}

/// Compiled schemas by action name.
type Schemas = HashMap<String, Arc<Schema>>;

/// Compiles every action's schemas, so a broken or pathological one is refused at
/// publish (and an app stored before a rule existed is not loaded); returns the input
/// and the output schemas.
fn compile_schemas(manifest: &Manifest) -> Result<(Schemas, Schemas), ManifestError> {
    let mut inputs = HashMap::new();
    let mut outputs = HashMap::new();
    let mut problems = Vec::new();
    for (name, action) in manifest.actions() {
        for (key, schema) in [
            ("input_schema", &action.input_schema),
            ("output_schema", &action.output_schema),
        ] {
            let Some(schema) = schema else { continue };
            match Schema::compile(schema) {
                Ok(validator) if key == "input_schema" => {
                    inputs.insert(name.to_owned(), Arc::new(validator));
                }
                Ok(validator) => {
                    outputs.insert(name.to_owned(), Arc::new(validator));
                }
                Err(e) => problems.push(format!("actions.{name}.{key} {e}")),
            }
        }
    }
    if problems.is_empty() {
        Ok((inputs, outputs))
    } else {
        Err(ManifestError::Invalid(problems))
    }
}

/// Why a publish was refused.
#[derive(Debug, thiserror::Error)]
pub enum PublishError {
    /// The manifest does not parse or breaks a rule.
    #[error(transparent)]
    Manifest(#[from] ManifestError),
    /// The component is not a runnable app.
    #[error(transparent)]
    Component(#[from] ComponentError),
    /// The slug belonged to a deleted app whose history is kept.
    #[error(transparent)]
    Retired(#[from] SlugRetired),
    /// Every sandbox slot stayed busy while the component waited to be checked.
    #[error("every sandbox is busy, so the component could not be checked: try again shortly")]
    Busy,
    /// Something went wrong on our side.
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

/// How long a publish waits for a free sandbox slot to probe the component in.
const PROBE_SLOT_WAIT: Duration = Duration::from_secs(30);

/// How long [`Registry::refresh`] leaves a version that would not load before trying
/// it again: a broken one is not recompiled and logged every tick.
const RETRY_UNLOADABLE: Duration = Duration::from_secs(30);

/// The apps the server can run.
pub struct Registry {
    engine: Engine,
    /// The sandboxes, shared with the scheduler: a probe takes a slot like a run.
    guests: Guests,
    metrics: Arc<Metrics>,
    store: DynStore,
    components: Components,
    current: RwLock<HashMap<String, Arc<LoadedApp>>>,
    versions: RwLock<HashMap<(String, i64), Arc<LoadedApp>>>,
    /// Apps the operator paused: they refuse new runs.
    paused: RwLock<HashSet<String>>,
    /// Counts this host's changes to `current` and `paused` (made under their lock), so
    /// a [`Registry::refresh`] that read the store before one never undoes it.
    local_changes: AtomicU64,
    /// Versions [`Registry::refresh`] could not load, by slug, and when it tried.
    unloadable: Mutex<HashMap<String, (VersionRecord, Instant)>>,
}

impl Registry {
    /// A registry keeping components in `components` (content-addressed), probing new
    /// ones in one of the `guests`' sandboxes.
    pub fn new(
        engine: Engine,
        guests: Guests,
        store: DynStore,
        components: Components,
        metrics: Arc<Metrics>,
    ) -> Self {
        Registry {
            engine,
            guests,
            metrics,
            store,
            components,
            current: RwLock::default(),
            versions: RwLock::default(),
            paused: RwLock::default(),
            local_changes: AtomicU64::new(0),
            unloadable: Mutex::default(),
        }
    }

    /// Loads the current version of every app (from the compile cache when possible).
    pub async fn load_all(&self) -> anyhow::Result<usize> {
        let apps = self.store.apps().await?;
        let count = apps.len();
        for app in apps {
            let slug = app.slug.clone();
            if app.paused {
                self.change(&self.paused).insert(slug.clone());
            }
            match self.load_record(app.current).await {
                Ok(loaded) => {
                    self.change(&self.current).insert(slug, loaded);
                }
                Err(e) => tracing::error!(app = %slug, "cannot load the app: {e:#}"),
            }
        }
        Ok(count)
    }

    /// Validates, stores and compiles a new version, and makes it current.
    pub async fn publish(
        &self,
        manifest_text: String,
        component: bytes::Bytes,
    ) -> Result<(Published, Arc<LoadedApp>), PublishError> {
        let manifest = Manifest::parse(&manifest_text)?;
        manifest.validate()?;
        compile_schemas(&manifest)?;
        let engine = self.engine.clone();
        let bytes = component.clone();
        let app = on_compile_pool(move || engine.compile(manifest, &bytes)).await??;
        self.metrics.compiled(app.compile_info().from_cache);
        // Refuse what would fail every run: a start function that traps or never ends, an
        // initial memory over the limit, more memories or tables than a sandbox holds.
        self.probe(&app).await?;
        self.components.save(app.sha256(), &component).await?;
        let published = self
            .store
            .publish(crate::store::NewVersion {
                slug: app.manifest().slug.clone(),
                sha256: app.sha256().to_owned(),
                manifest: manifest_text,
                kind: app.kind().to_string(),
                public: app.manifest().public,
            })
            .await
            .map_err(|e| match e.downcast::<SlugRetired>() {
                Ok(retired) => PublishError::Retired(retired),
                Err(e) => PublishError::Internal(e),
            })?;
        let record = published.app.current.clone();
        let loaded = Arc::new(LoadedApp::new(record.clone(), app)?);
        write(&self.versions).insert((record.slug.clone(), record.version), loaded.clone());
        self.change(&self.current)
            .insert(record.slug.clone(), loaded.clone());
        Ok((published, loaded))
    }

    /// Starts `app` once in a sandbox, as a run would: in a sandbox slot, under the app's
    /// limits and deadline (the runtime bounds it further), in the slow guest lane, so a
    /// start function that spins takes only what runs leave, and never waits behind
    /// compiles. The slot goes with the probe, so a publisher that goes away still frees
    /// it in time.
    async fn probe(&self, app: &CompiledApp) -> Result<(), PublishError> {
        let slots = self.guests.slots.clone();
        let wait = tokio::time::timeout(PROBE_SLOT_WAIT, slots.acquire_owned());
        let Ok(Ok(slot)) = wait.await else {
            return Err(PublishError::Busy);
        };
        let app = app.clone();
        let probed = self.guests.lanes.slow.spawn(async move {
            let _slot = slot;
            app.probe().await
        });
        let probed = probed.await.context("the probe panicked")?;
        probed.map_err(|e| ComponentError::DoesNotStart(e.message).into())
    }

    /// The operator's cap on any app's memory, in MiB.
    pub fn max_memory_mb(&self) -> u64 {
        self.engine.config().max_memory_mb
    }

    /// The current version of `slug`.
    pub fn current(&self, slug: &str) -> Option<Arc<LoadedApp>> {
        read(&self.current).get(slug).cloned()
    }

    /// Every current app, by slug.
    pub fn all(&self) -> Vec<Arc<LoadedApp>> {
        let mut apps: Vec<_> = read(&self.current).values().cloned().collect();
        apps.sort_by(|a, b| a.record.slug.cmp(&b.record.slug));
        apps
    }

    /// Deletes the app (see [`crate::store::Store::delete_app`]); its versions stay
    /// loadable for the executions that need them. `None` when unknown.
    pub async fn delete(&self, slug: &str) -> anyhow::Result<Option<DeletedApp>> {
        let deleted = self.store.delete_app(slug, now_ms()).await?;
        self.change(&self.current).remove(slug);
        self.change(&self.paused).remove(slug);
        Ok(deleted)
    }

    /// Removes what a deleted app left and frees its slug (see
    /// [`crate::store::Store::purge_app`]).
    pub async fn purge(&self, slug: &str) -> anyhow::Result<bool> {
        let purged = self.store.purge_app(slug).await?;
        write(&self.versions).retain(|(app, _), _| app != slug);
        Ok(purged)
    }

    /// Whether the operator paused `slug`.
    pub fn is_paused(&self, slug: &str) -> bool {
        read(&self.paused).contains(slug)
    }

    /// Pauses or resumes an app; `None` when unknown.
    pub async fn set_paused(&self, slug: &str, paused: bool) -> anyhow::Result<Option<AppRecord>> {
        let app = self.store.set_paused(slug, paused).await?;
        if app.is_some() {
            let mut set = self.change(&self.paused);
            if paused {
                set.insert(slug.to_owned());
            } else {
                set.remove(slug);
            }
        }
        Ok(app)
    }

    /// Sets an app's visibility (until its next published version says otherwise);
    /// `None` when unknown.
    pub async fn set_public(&self, slug: &str, public: bool) -> anyhow::Result<Option<AppRecord>> {
        let Some(app) = self.store.set_public(slug, public).await? else {
            return Ok(None);
        };
        let mut current = self.change(&self.current);
        if let Some(loaded) = current.get(slug).cloned()
            && loaded.record.version == app.current.version
        {
            current.insert(
                slug.to_owned(),
                Arc::new(loaded.with_record(app.current.clone())),
            );
        }
        Ok(Some(app))
    }

    /// Makes an earlier (or later) version current; `None` when it does not exist.
    pub async fn make_current(
        &self,
        slug: &str,
        version: i64,
    ) -> anyhow::Result<Option<AppRecord>> {
        // Load (compile or fetch from the cache) before switching, so a version that can
        // no longer be loaded is never made current.
        let loaded = match self.version(slug, version).await {
            Ok(loaded) => loaded,
            Err(_) if self.store.version(slug, version).await?.is_none() => return Ok(None),
            Err(e) => return Err(e),
        };
        let Some(app) = self.store.set_current(slug, version).await? else {
            return Ok(None);
        };
        // The app's own visibility, if the operator set one, holds across rollbacks.
        let loaded = Arc::new(loaded.with_record(app.current.clone()));
        self.change(&self.current).insert(slug.to_owned(), loaded);
        Ok(Some(app))
    }

    /// A specific version, compiled on first use.
    pub async fn version(&self, slug: &str, version: i64) -> anyhow::Result<Arc<LoadedApp>> {
        if let Some(loaded) = read(&self.versions).get(&(slug.to_owned(), version)) {
            return Ok(loaded.clone());
        }
        let record = self
            .store
            .version(slug, version)
            .await?
            .with_context(|| format!("{slug} has no version {version}"))?;
        self.load_record(record).await
    }

    async fn load_record(&self, record: VersionRecord) -> anyhow::Result<Arc<LoadedApp>> {
        let bytes = self.components.read(&record.sha256).await?;
        let engine = self.engine.clone();
        let manifest_text = record.manifest.clone();
        let app = on_compile_pool(move || -> anyhow::Result<CompiledApp> {
            let manifest = Manifest::parse(&manifest_text)?;
            Ok(engine.compile(manifest, &bytes)?)
        })
        .await??;
        self.metrics.compiled(app.compile_info().from_cache);
        let loaded = Arc::new(LoadedApp::new(record.clone(), app)?);
        write(&self.versions).insert((record.slug.clone(), record.version), loaded.clone());
        Ok(loaded)
    }

    /// `lock`, to change on this host's behalf: counted, so a refresh that read the
    /// store before this change never undoes it.
    fn change<'a, T>(&self, lock: &'a RwLock<T>) -> std::sync::RwLockWriteGuard<'a, T> {
        let guard = write(lock);
        self.local_changes.fetch_add(1, Ordering::SeqCst);
        guard
    }

    /// Catches up with the changes other hosts sharing the store made: loads each app
    /// whose current version is not the one loaded (fetching its component if this host
    /// never had it), drops the apps deleted, and takes over every app's visibility and
    /// pause. A round that raced a change made here is dropped; the next one redoes it,
    /// with what it compiled cached.
    pub async fn refresh(&self) -> anyhow::Result<()> {
        let changes = self.local_changes.load(Ordering::SeqCst);
        let apps = self.store.apps().await?;
        let mut updated = Vec::new();
        for app in &apps {
            let loaded = self.current(&app.slug);
            if let Some(loaded) = &loaded
                && same_version(&loaded.record, &app.current)
                && loaded.record.public == app.current.public
            {
                continue;
            }
            let cached = loaded
                .filter(|loaded| same_version(&loaded.record, &app.current))
                .or_else(|| self.cached(&app.current));
            let compiled = match cached {
                Some(compiled) => compiled,
                None => match self.load_for_refresh(&app.current).await {
                    Some(compiled) => compiled,
                    None => continue,
                },
            };
            updated.push(Arc::new(compiled.with_record(app.current.clone())));
        }
        let slugs: HashSet<&str> = apps.iter().map(|app| app.slug.as_str()).collect();
        let mut current = write(&self.current);
        let mut paused = write(&self.paused);
        if self.local_changes.load(Ordering::SeqCst) != changes {
            return Ok(());
        }
        current.retain(|slug, _| slugs.contains(slug.as_str()));
        for loaded in updated {
            current.insert(loaded.record.slug.clone(), loaded);
        }
        *paused = apps
            .iter()
            .filter(|app| app.paused)
            .map(|app| app.slug.clone())
            .collect();
        lock(&self.unloadable).retain(|slug, _| slugs.contains(slug.as_str()));
        Ok(())
    }

    /// `record`'s version, if this host compiled it already.
    fn cached(&self, record: &VersionRecord) -> Option<Arc<LoadedApp>> {
        read(&self.versions)
            .get(&(record.slug.clone(), record.version))
            .filter(|loaded| same_version(&loaded.record, record))
            .cloned()
    }

    /// Loads `record` for [`Registry::refresh`]; `None` (logged) when it cannot be, or
    /// could not be a moment ago.
    async fn load_for_refresh(&self, record: &VersionRecord) -> Option<Arc<LoadedApp>> {
        if let Some((failed, at)) = lock(&self.unloadable).get(&record.slug)
            && same_version(failed, record)
            && at.elapsed() < RETRY_UNLOADABLE
        {
            return None;
        }
        match self.load_record(record.clone()).await {
            Ok(loaded) => {
                lock(&self.unloadable).remove(&record.slug);
                Some(loaded)
            }
            Err(e) => {
                tracing::error!(app = %record.slug, version = record.version, "cannot load the app: {e:#}");
                lock(&self.unloadable)
                    .insert(record.slug.clone(), (record.clone(), Instant::now()));
                None
            }
        }
    }

    /// The app record of the current version, for API answers.
    pub async fn app_record(&self, slug: &str) -> anyhow::Result<Option<AppRecord>> {
        self.store.app(slug).await
    }
}

fn read<T>(lock: &RwLock<T>) -> std::sync::RwLockReadGuard<'_, T> {
    lock.read().unwrap_or_else(|p| p.into_inner())
}

fn write<T>(lock: &RwLock<T>) -> std::sync::RwLockWriteGuard<'_, T> {
    lock.write().unwrap_or_else(|p| p.into_inner())
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|p| p.into_inner())
}

/// Whether two records are the same version of the same app, compiled alike (a purged
/// slug published again numbers its versions from 1 again).
fn same_version(a: &VersionRecord, b: &VersionRecord) -> bool {
    a.slug == b.slug && a.version == b.version && a.sha256 == b.sha256 && a.manifest == b.manifest
}

/// Runs `compile` on rayon's pool, whose threads the server runs at the lowest CPU
/// priority: a component that takes long to compile slows other compiles, not runs.
async fn on_compile_pool<R: Send + 'static>(
    compile: impl FnOnce() -> R + Send + 'static,
) -> anyhow::Result<R> {
    let (done, result) = tokio::sync::oneshot::channel();
    rayon::spawn(move || {
        let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(compile));
        let _ = done.send(outcome);
    });
    result
        .await
        .context("the compile pool stopped")?
        .map_err(|_| anyhow::anyhow!("the compiler panicked"))
}
