//! The run queue: every accepted execution is written to the store before it is
//! queued; a bounded number run at once on the guest runtime; events are pumped to the
//! store as they stream; and on startup, interrupted executions are recovered.
//!
//! Guests run on a tokio runtime of their own whose threads have a lower CPU priority
//! (nice 5, and 19 once busy: see [`crate::lanes`]) than the HTTP runtime's, so a guest
//! spinning on every core cannot delay `/healthz` or the handlers of other requests. The
//! one exception is a sync run alone on its host: it starts on the HTTP thread that
//! waits for it, until its guest's first yield (see `Scheduler::start_unwritten`).

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use floom_runtime::{ErrorCode, Outcome, RunError, RunRequest, Status};
use serde_json::value::RawValue;
use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore, mpsc};
use tokio_util::sync::CancellationToken;

use crate::artifacts::{Files, RunFolders};
use crate::crypto::Sealer;
use crate::events;
use crate::lanes::Lanes;
use crate::live::Live;
use crate::metrics::Metrics;
use crate::registry::Registry;
use crate::store::{
    Appended, DynStore, ExecStatus, ExecutionRecord, FileKind, Finish, IdempotencyKey, Inserted,
    LeaseLost, NewExecution, Started, StoredEvent, now_ms,
};

mod unwritten;
pub use unwritten::Unwritten;
use unwritten::WRITE_WINDOW;

/// Inputs up to this size stay in memory while queued.
const INLINE_INPUTS: usize = 16 << 10;

/// A live subscription to an execution's events.
pub type Subscription = tokio::sync::broadcast::Receiver<Arc<crate::live::LiveEvent>>;

/// An execution waiting for a slot, with what running it needs.
#[derive(Debug, Clone)]
struct Queued {
    id: String,
    app: String,
    version: i64,
    /// The action of its current step.
    action: String,
    /// Its current step (1, or more after approved `then` steps).
    step: i64,
    /// The current step's inputs; `None` when too large to keep in memory: read from the
    /// store at start.
    inputs: Option<String>,
    /// Whether it may have input files: false only when it was submitted without any,
    /// so its run skips reading them from the store (a read, and a thread hop, per run).
    input_files: bool,
    /// Who asked for it (`None` when recovered at startup): its place counts against
    /// that caller's share of the queue.
    caller: Option<String>,
}

impl Queued {
    /// A newly submitted execution's run. Small inputs ride along; large ones are read
    /// back when the run starts, so a long queue does not hold every request body in
    /// memory.
    fn submitted(execution: NewExecution, caller: String, input_files: bool) -> Self {
        let inputs = (execution.inputs.len() <= INLINE_INPUTS).then_some(execution.inputs);
        Queued {
            id: execution.id,
            app: execution.app,
            version: execution.version,
            action: execution.action,
            step: 1,
            inputs,
            input_files,
            caller: Some(caller),
        }
    }
}

/// Places in the queue, counted in all, per app and per caller: the queue is shared, so
/// one app's backlog or one caller's flood cannot fill it for everyone else.
#[derive(Debug, Default)]
struct Places {
    total: usize,
    by_app: HashMap<String, usize>,
    by_caller: HashMap<String, usize>,
}

impl Places {
    /// Takes a place for a run of `app` by `caller`, unless a bound is reached.
    fn reserve(
        &mut self,
        config: &SchedulerConfig,
        app: &str,
        caller: &str,
    ) -> Result<(), SubmitError> {
        if self.total >= config.max_queue {
            return Err(SubmitError::QueueFull(self.total));
        }
        let of_app = self.by_app.get(app).copied().unwrap_or(0);
        if of_app >= config.max_queue_per_app {
            return Err(SubmitError::AppQueueFull {
                app: app.to_owned(),
                waiting: of_app,
            });
        }
        let of_caller = self.by_caller.get(caller).copied().unwrap_or(0);
        if of_caller >= config.max_queue_per_caller {
            return Err(SubmitError::CallerQueueFull(of_caller));
        }
        self.add(app, Some(caller));
        Ok(())
    }

    /// Counts a place without checking the bounds (executions recovered at startup).
    fn add(&mut self, app: &str, caller: Option<&str>) {
        self.total += 1;
        *self.by_app.entry(app.to_owned()).or_default() += 1;
        if let Some(caller) = caller {
            *self.by_caller.entry(caller.to_owned()).or_default() += 1;
        }
    }

    /// Gives a place back. Entries at zero are removed: callers are many (every client
    /// address), so the maps would otherwise only grow.
    fn release(&mut self, app: &str, caller: Option<&str>) {
        self.total = self.total.saturating_sub(1);
        decrement(&mut self.by_app, app);
        if let Some(caller) = caller {
            decrement(&mut self.by_caller, caller);
        }
    }
}

fn decrement(counts: &mut HashMap<String, usize>, key: &str) {
    if let Some(count) = counts.get_mut(key) {
        *count -= 1;
        if *count == 0 {
            counts.remove(key);
        }
    }
}

/// Why an execution was not accepted.
#[derive(Debug, thiserror::Error)]
pub enum SubmitError {
    /// The queue is at its bound.
    #[error("the run queue is full ({0} executions waiting)")]
    QueueFull(usize),
    /// The app has its whole share of the queue.
    #[error("{app} has its full share of the run queue ({waiting} executions waiting)")]
    AppQueueFull {
        /// The app.
        app: String,
        /// Its executions waiting.
        waiting: usize,
    },
    /// The caller has its whole share of the queue.
    #[error("you have your full share of the run queue ({0} executions waiting)")]
    CallerQueueFull(usize),
    /// The server is shutting down.
    #[error("the server is shutting down")]
    Draining,
    /// The store failed.
    #[error(transparent)]
    Store(#[from] anyhow::Error),
}

/// What a submit did.
#[derive(Debug)]
pub enum Submitted {
    /// A new execution was accepted: stored and queued, or (a sync run that started at
    /// once) running and written once something could reveal it.
    New {
        /// The subscription asked for.
        subscription: Option<Subscription>,
        /// Set when the execution may not be written yet: whoever would reveal its id
        /// before its end writes it first.
        unwritten: Option<Arc<Unwritten>>,
    },
    /// The idempotency key was used before: nothing new was made.
    Existing {
        /// The earlier execution.
        execution_id: String,
        /// sha256 of the earlier request.
        request_hash: String,
        /// Its view token, sealed.
        view_token: Vec<u8>,
    },
}

/// The result of a cancel request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cancelled {
    /// A queued execution (or one awaiting approval) was cancelled.
    Queued,
    /// A running execution was told to stop.
    Running,
    /// It had already ended.
    AlreadyTerminal,
    /// No such execution.
    NotFound,
}

/// A run's slot and its registration: what a started run holds until it ends.
struct Slot {
    permit: OwnedSemaphorePermit,
    token: CancellationToken,
    /// Its number in the scheduler's registrations (see `Scheduler::unregister`).
    n: u64,
}

/// Where runs happen: the niced guest runtime, and the slots that bound how many
/// sandboxes exist at once (the pooling allocator holds exactly that many). Runs take a
/// slot from the scheduler; the registry's publish-time probe takes one too, so no
/// guest code, whatever starts it, runs outside the bound.
#[derive(Clone)]
pub struct Guests {
    /// The guest runtimes: a run starts in the fast lane (where the scheduler's own
    /// tasks run too) and moves to the slow one once it is busy.
    pub lanes: Lanes,
    /// One permit per sandbox.
    pub slots: Arc<Semaphore>,
}

impl Guests {
    /// `slots` sandboxes at most, in `lanes`.
    pub fn new(lanes: Lanes, slots: usize) -> Self {
        Guests {
            lanes,
            slots: Arc::new(Semaphore::new(slots.max(1))),
        }
    }
}

/// How the scheduler is sized.
#[derive(Debug, Clone, Copy)]
pub struct SchedulerConfig {
    /// Executions running at once.
    pub max_concurrent_runs: usize,
    /// Executions waiting at once; past it, runs are refused with 429.
    pub max_queue: usize,
    /// Executions of one app waiting at once.
    pub max_queue_per_app: usize,
    /// Executions one caller (a token, or a client address) has waiting at once.
    pub max_queue_per_caller: usize,
    /// Executions of one app running at once, so one app (a busy or a spinning one)
    /// cannot take every slot; its other executions wait while other apps' run.
    pub max_runs_per_app: usize,
}

/// What running an execution needs besides the store and the apps: the key that opens
/// its secrets, and the folders its files go through.
pub struct RunSupport {
    /// Opens the app's secrets.
    pub sealer: Arc<Sealer>,
    /// Run folders and the blob store.
    pub files: Arc<Files>,
}

/// The run queue and its workers.
pub struct Scheduler {
    store: DynStore,
    registry: Arc<Registry>,
    live: Arc<Live>,
    sealer: Arc<Sealer>,
    metrics: Arc<Metrics>,
    files: Arc<Files>,
    config: SchedulerConfig,
    queue: Mutex<VecDeque<Queued>>,
    places: Mutex<Places>,
    notify: Notify,
    slots: Arc<Semaphore>,
    running: AtomicUsize,
    idle: Notify,
    /// The cancel token of every running execution, with its app.
    cancels: Mutex<HashMap<String, (String, CancellationToken, u64)>>,
    /// Numbers each registration in `cancels`: a run unregisters only its own (the same
    /// execution can be claimed from the shared store while this host's dispatcher,
    /// which then finds it taken, is about to start it).
    next_run: AtomicU64,
    /// Running executions per app.
    per_app: Mutex<HashMap<String, usize>>,
    draining: Arc<AtomicBool>,
    guests: tokio::runtime::Handle,
    lanes: Lanes,
}

impl Scheduler {
    /// A scheduler running guests on `guests` (whose slots should number
    /// `config.max_concurrent_runs`).
    pub fn new(
        store: DynStore,
        registry: Arc<Registry>,
        live: Arc<Live>,
        support: RunSupport,
        metrics: Arc<Metrics>,
        config: SchedulerConfig,
        guests: Guests,
    ) -> Arc<Self> {
        let RunSupport { sealer, files } = support;
        Arc::new(Scheduler {
            store,
            registry,
            live,
            sealer,
            metrics,
            files,
            queue: Mutex::new(VecDeque::new()),
            places: Mutex::default(),
            notify: Notify::new(),
            slots: guests.slots,
            running: AtomicUsize::new(0),
            idle: Notify::new(),
            cancels: Mutex::new(HashMap::new()),
            next_run: AtomicU64::new(0),
            per_app: Mutex::new(HashMap::new()),
            draining: Arc::default(),
            config,
            guests: guests.lanes.fast.clone(),
            lanes: guests.lanes,
        })
    }

    /// Recovers interrupted executions, queues everything waiting, and starts the
    /// dispatcher.
    pub async fn start(self: &Arc<Self>) -> anyhow::Result<()> {
        let recovery = self.store.recover(now_ms()).await?;
        if !recovery.retried.is_empty() || !recovery.failed.is_empty() {
            tracing::warn!(
                retried = recovery.retried.len(),
                failed = recovery.failed.len(),
                "recovered executions interrupted by a restart"
            );
        }
        for id in recovery.queued {
            let Some(record) = self.store.execution(&id).await? else {
                continue;
            };
            self.queue_stored(&record);
        }
        let this = self.clone();
        self.guests.spawn(async move { this.dispatch().await });
        self.notify.notify_one();
        Ok(())
    }

    /// Queues an execution the store already holds as queued: one recovered at startup,
    /// or the next step of an approved one.
    pub fn queue_stored(&self, record: &ExecutionRecord) {
        let inputs = record.current_inputs();
        lock(&self.places).add(&record.app, None);
        lock(&self.queue).push_back(Queued {
            id: record.id.clone(),
            app: record.app.clone(),
            version: record.version,
            action: record.current_action().to_owned(),
            step: record.step,
            inputs: (inputs.len() <= INLINE_INPUTS).then(|| inputs.to_owned()),
            input_files: true,
            caller: None,
        });
        self.notify.notify_one();
    }

    /// Executions waiting.
    pub fn queued(&self) -> usize {
        lock(&self.places).total
    }

    /// Executions running.
    pub fn running(&self) -> usize {
        self.running.load(Ordering::Acquire)
    }

    /// Writes the execution to the store, then queues it. When this returns `Ok`, the
    /// execution is durable and queued. With `watch`, the returned subscription was taken
    /// before the run could start, so its end cannot be missed. `input_files` says
    /// whether input files were recorded for it.
    ///
    /// When a slot is free and nothing waits, the execution skips the queue: it is
    /// written as already running and starts at once, which saves a store write and
    /// the dispatcher's hop (a third of a sync run's latency when idle).
    ///
    /// The work runs in a task of its own: a client that disconnects mid-request cannot
    /// leave an execution stored but never queued.
    pub async fn submit(
        self: &Arc<Self>,
        mut execution: NewExecution,
        caller: String,
        idempotency: Option<IdempotencyKey>,
        watch: bool,
        input_files: bool,
    ) -> Result<Submitted, SubmitError> {
        if self.draining.load(Ordering::Acquire) {
            return Err(SubmitError::Draining);
        }
        // Reserve a place first so concurrent requests cannot overshoot the bounds.
        lock(&self.places).reserve(&self.config, &execution.app, &caller)?;
        // A plain sync run on this host's own store may run before it is written (see
        // `Unwritten`). Not on a shared store: the app's cap across hosts is checked by
        // the write that starts a run.
        let unwritten = watch
            && idempotency.is_none()
            && execution.tick.is_none()
            && execution.mcp_call.is_none()
            && !self.store.shared();
        let this = self.clone();
        tokio::spawn(async move {
            let direct = this.try_start_now(&execution.id, &execution.app, &caller);
            if direct.is_some() {
                execution.started_at = Some(now_ms());
            }
            let direct = match direct {
                Some(slot) if unwritten => {
                    return Ok(this.start_unwritten(execution, caller, slot, input_files));
                }
                direct => direct,
            };
            let inserted = this
                .store
                .insert_execution(execution.clone(), idempotency)
                .await;
            let started = match inserted {
                Ok(Inserted::New(started)) => started,
                Ok(Inserted::Existing {
                    execution_id,
                    request_hash,
                    view_token,
                }) => {
                    this.give_back(&execution.id, &execution.app, &caller, direct);
                    return Ok(Submitted::Existing {
                        execution_id,
                        request_hash,
                        view_token,
                    });
                }
                Err(e) => {
                    this.give_back(&execution.id, &execution.app, &caller, direct);
                    return Err(SubmitError::Store(e));
                }
            };
            let subscription = watch.then(|| this.live.subscribe(&execution.id)).flatten();
            let run = Queued::submitted(execution, caller, input_files);
            match (direct, started) {
                (Some(slot), Some(started)) => {
                    let runner = this.clone();
                    this.guests.spawn(async move {
                        runner.execute(run, slot, Some(started), None, false).await
                    });
                }
                (direct, _) => {
                    // Written as queued after all (its app is at its cap across the
                    // hosts): the slot goes back, the place in the queue is taken again.
                    if let Some(slot) = direct {
                        this.unregister(&run.id, slot.n);
                        this.finished_running(&run.app);
                        lock(&this.places).add(&run.app, run.caller.as_deref());
                    }
                    lock(&this.queue).push_back(run);
                    this.notify.notify_one();
                }
            }
            Ok(Submitted::New {
                subscription,
                unwritten: None,
            })
        })
        .await
        .map_err(|e| SubmitError::Store(anyhow::anyhow!("the submit task failed: {e}")))?
    }

    /// Starts `execution` in `slot` before it is written (see [`Unwritten`]). Its live
    /// channel is opened here rather than by a commit, so the waiting request follows
    /// it from the start.
    fn start_unwritten(
        self: &Arc<Self>,
        execution: NewExecution,
        caller: String,
        slot: Slot,
        input_files: bool,
    ) -> Submitted {
        self.live.open(&execution.id);
        let subscription = self.live.subscribe(&execution.id);
        let unwritten = Arc::new(Unwritten::new(
            execution.clone(),
            self.store.clone(),
            self.draining.clone(),
        ));
        let inputs = execution.inputs.clone();
        let mut run = Queued::submitted(execution, caller, input_files);
        // Not in the store yet, so not to be read back from it: large inputs stay too.
        run.inputs = Some(inputs);
        // What the store's write would have answered for a run written as running.
        let started = Started { attempt: 1, seq: 1 };
        let (runner, handle) = (self.clone(), unwritten.clone());
        // Alone on its host, the run starts on the thread that took its request, which
        // waits for it anyway: no hand-over to the guest runtime and back (at c=1, 4.9 ->
        // 1.4 context switches and ~15 % less CPU per run). Its guest leaves that thread
        // for the guest runtime at its first yield (`Lanes::run_here`), so a Python app
        // or a spinner holds it for one poll: its instantiation and at most an epoch
        // tick. With other runs going it goes to the guest runtime: every sync run on
        // the HTTP thread cost c=16 12 %.
        let here = self.running() == 1;
        let execute = async move {
            runner
                .execute(run, slot, Some(started), Some(handle), here)
                .await
        };
        if here {
            tokio::spawn(execute);
        } else {
            self.guests.spawn(execute);
        }
        Submitted::New {
            subscription,
            unwritten: Some(unwritten),
        }
    }

    /// Takes a slot for `id` when one is free and nothing waits, moving its place from
    /// the queue to the running count (so a drain waits for it) and registering its
    /// cancel token before it is written (so a cancel cannot fall between the two).
    fn try_start_now(&self, id: &str, app: &str, caller: &str) -> Option<Slot> {
        if !lock(&self.queue).is_empty() {
            return None;
        }
        let permit = self.slots.clone().try_acquire_owned().ok()?;
        if !self.claim_app_slot(app) {
            return None;
        }
        lock(&self.places).release(app, Some(caller));
        self.running.fetch_add(1, Ordering::AcqRel);
        // A new execution: nothing can be registered under its id yet.
        self.register(id, app, permit, true)
    }

    /// Registers the cancel token of a run of `id` about to start in `permit`'s slot.
    /// `None` when one is registered already and `replace` is false: a claim from the
    /// shared store replaces (it holds the execution); the dispatcher does not (its start
    /// would find the execution taken). A replaced run is cancelled: it is either the
    /// dispatcher's, not started (its start finds the execution taken), or an earlier
    /// attempt whose lease was taken back, which must stop (nothing it does is recorded).
    fn register(
        &self,
        id: &str,
        app: &str,
        permit: OwnedSemaphorePermit,
        replace: bool,
    ) -> Option<Slot> {
        let token = CancellationToken::new();
        let n = self.next_run.fetch_add(1, Ordering::Relaxed);
        let mut cancels = lock(&self.cancels);
        if !replace && cancels.contains_key(id) {
            return None;
        }
        if let Some((_, replaced, _)) =
            cancels.insert(id.to_owned(), (app.to_owned(), token.clone(), n))
        {
            replaced.cancel();
        }
        Some(Slot { permit, token, n })
    }

    /// Forgets registration `n` of `id`, unless a later one replaced it.
    fn unregister(&self, id: &str, n: u64) {
        let mut cancels = lock(&self.cancels);
        if cancels
            .get(id)
            .is_some_and(|(_, _, registered)| *registered == n)
        {
            cancels.remove(id);
        }
    }

    /// Undoes a reservation whose execution was not written: its slot from
    /// [`Self::try_start_now`], or its place in the queue.
    fn give_back(&self, id: &str, app: &str, caller: &str, direct: Option<Slot>) {
        match direct {
            Some(slot) => {
                self.unregister(id, slot.n);
                self.finished_running(app);
            }
            None => lock(&self.places).release(app, Some(caller)),
        }
    }

    /// Counts a run of `app` if the app is under its cap.
    fn claim_app_slot(&self, app: &str) -> bool {
        claim(&mut lock(&self.per_app), app, self.config.max_runs_per_app)
    }

    fn finished_running(&self, app: &str) {
        // The entry stays at zero: the next run of the app then allocates nothing.
        if let Some(running) = lock(&self.per_app).get_mut(app) {
            *running = running.saturating_sub(1);
        }
        // An execution of this app may have waited for its cap. (A run queued later
        // notifies on its own, so an empty queue needs no wake-up.)
        if !lock(&self.queue).is_empty() {
            self.notify.notify_one();
        }
        if self.running.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.idle.notify_waiters();
        }
    }

    /// Cancels a queued or running execution.
    pub async fn cancel(&self, id: &str) -> anyhow::Result<Cancelled> {
        let running = lock(&self.cancels)
            .get(id)
            .map(|(_, token, _)| token.clone());
        if let Some(token) = running {
            token.cancel();
            // Its run may have just ended awaiting approval, before its slot was given
            // back: then the store cancels it.
            if self.store.cancel_queued(id, now_ms()).await? {
                return Ok(Cancelled::Queued);
            }
            return Ok(Cancelled::Running);
        }
        if self.store.cancel_queued(id, now_ms()).await? {
            self.forget_queued(|q| q.id == id);
            return Ok(Cancelled::Queued);
        }
        // Not queued: it may have just started, or ended.
        if let Some((_, token, _)) = lock(&self.cancels).get(id) {
            token.cancel();
            return Ok(Cancelled::Running);
        }
        Ok(match self.store.execution(id).await? {
            Some(record) if record.status.is_terminal() => Cancelled::AlreadyTerminal,
            Some(record) => {
                // Running on another host: it stops the guest at its next renewal.
                if record.status == ExecStatus::Running {
                    self.store.request_cancel(id).await?;
                }
                Cancelled::Running
            }
            None => Cancelled::NotFound,
        })
    }

    /// Cancels execution `id` if it runs on this host (asked on another host).
    pub fn cancel_here(&self, id: &str) {
        if let Some((_, token, _)) = lock(&self.cancels).get(id) {
            token.cancel();
        }
    }

    /// After the store deleted `app` (cancelling its queued executions, `cancelled`):
    /// forgets those and stops its running ones.
    pub fn app_deleted(&self, app: &str, cancelled: &[String]) {
        self.forget_queued(|q| cancelled.contains(&q.id));
        for (owner, token, _) in lock(&self.cancels).values() {
            if owner == app {
                token.cancel();
            }
        }
    }

    /// The executions running on this host.
    pub fn running_ids(&self) -> Vec<String> {
        lock(&self.cancels).keys().cloned().collect()
    }

    /// Stops the guests of executions this host no longer holds (another host took them
    /// back): nothing they do is recorded any more.
    pub fn stop_lost(&self, lost: &[String]) {
        let cancels = lock(&self.cancels);
        for id in lost {
            if let Some((_, token, _)) = cancels.get(id) {
                tracing::warn!(execution = %id, "{}", LeaseLost(id.clone()));
                token.cancel();
            }
        }
    }

    /// Claims queued executions from a store other hosts share, as many as this host
    /// has free slots for while its own queue is empty, and runs them; returns how many.
    pub async fn claim_shared(self: &Arc<Self>) -> anyhow::Result<usize> {
        if self.draining.load(Ordering::Acquire) || !lock(&self.queue).is_empty() {
            return Ok(0);
        }
        let mut permits = Vec::new();
        while let Ok(permit) = self.slots.clone().try_acquire_owned() {
            permits.push(permit);
        }
        if permits.is_empty() {
            return Ok(0);
        }
        let limit = u32::try_from(permits.len()).unwrap_or(u32::MAX);
        let cap = u32::try_from(self.config.max_runs_per_app).unwrap_or(u32::MAX);
        let claimed = self.store.claim_queued(limit, cap, now_ms()).await?;
        let count = claimed.len();
        for ((record, started), permit) in claimed.into_iter().zip(permits) {
            // Counted here too, so this host's own dispatch sees the app's runs.
            *lock(&self.per_app).entry(record.app.clone()).or_default() += 1;
            self.running.fetch_add(1, Ordering::AcqRel);
            let Some(slot) = self.register(&record.id, &record.app, permit, true) else {
                continue;
            };
            let inputs = record.current_inputs();
            let run = Queued {
                id: record.id.clone(),
                app: record.app.clone(),
                version: record.version,
                action: record.current_action().to_owned(),
                step: record.step,
                inputs: (inputs.len() <= INLINE_INPUTS).then(|| inputs.to_owned()),
                input_files: true,
                caller: None,
            };
            let runner = self.clone();
            self.guests
                .spawn(async move { runner.execute(run, slot, Some(started), None, false).await });
        }
        Ok(count)
    }

    /// Executions of `app` running now.
    pub fn running_of(&self, app: &str) -> usize {
        lock(&self.per_app).get(app).copied().unwrap_or(0)
    }

    /// Drops the queued executions `matching` from the queue: the store has ended them.
    fn forget_queued(&self, matching: impl Fn(&Queued) -> bool) {
        let mut queue = lock(&self.queue);
        let mut places = lock(&self.places);
        queue.retain(|q| {
            let forget = matching(q);
            if forget {
                places.release(&q.app, q.caller.as_deref());
            }
            !forget
        });
    }

    /// Stops starting executions and waits up to `grace` for the running ones. What is
    /// still queued stays queued for the next start; what is still running is retried
    /// then, like after a crash.
    pub async fn drain(&self, grace: Duration) -> usize {
        self.draining.store(true, Ordering::Release);
        self.notify.notify_waiters();
        let deadline = Instant::now() + grace;
        loop {
            let idle = self.idle.notified();
            let running = self.running();
            if running == 0 {
                return 0;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() || tokio::time::timeout(left, idle).await.is_err() {
                return self.running();
            }
        }
    }

    async fn dispatch(self: Arc<Self>) {
        loop {
            // Work first, then a slot: an idle dispatcher holds no slot, so every slot
            // stays free for direct starts and publish probes.
            loop {
                let notified = self.notify.notified();
                if self.draining.load(Ordering::Acquire) {
                    return;
                }
                if self.has_eligible() {
                    break;
                }
                notified.await;
            }
            let Ok(permit) = self.slots.clone().acquire_owned().await else {
                return;
            };
            if self.draining.load(Ordering::Acquire) {
                return;
            }
            // The oldest execution whose app is under its cap (the queue may have
            // changed while the slot was awaited).
            let next = {
                let mut queue = lock(&self.queue);
                let mut per_app = lock(&self.per_app);
                let cap = self.config.max_runs_per_app;
                let eligible = queue.iter().position(|q| claim(&mut per_app, &q.app, cap));
                eligible.and_then(|i| queue.remove(i))
            };
            let Some(next) = next else { continue };
            lock(&self.places).release(&next.app, next.caller.as_deref());
            self.running.fetch_add(1, Ordering::AcqRel);
            // Claimed from the shared store and running here already.
            let Some(slot) = self.register(&next.id, &next.app, permit, false) else {
                self.finished_running(&next.app);
                continue;
            };
            let this = self.clone();
            tokio::spawn(async move { this.execute(next, slot, None, None, false).await });
        }
    }

    /// Whether a queued execution's app is under its cap.
    fn has_eligible(&self) -> bool {
        let queue = lock(&self.queue);
        let per_app = lock(&self.per_app);
        let cap = self.config.max_runs_per_app;
        queue
            .iter()
            .any(|q| per_app.get(&q.app).is_none_or(|running| *running < cap))
    }

    /// Runs an execution in its slot; `started` when it was written as running already
    /// (or, with `unwritten`, is to be written when it has to). With `here`, its guest
    /// starts on the calling thread (see [`Lanes::run_here`]), else in the fast lane.
    async fn execute(
        self: Arc<Self>,
        run: Queued,
        slot: Slot,
        started: Option<Started>,
        unwritten: Option<Arc<Unwritten>>,
        here: bool,
    ) {
        let Slot { permit, token, n } = slot;
        if let Err(e) = self.run_one(&run, token, started, unwritten, here).await {
            tracing::error!(execution = %run.id, "the execution could not be recorded: {e:#}");
        }
        self.unregister(&run.id, n);
        drop(permit);
        self.finished_running(&run.app);
    }

    async fn run_one(
        &self,
        run: &Queued,
        cancel: CancellationToken,
        started: Option<Started>,
        unwritten: Option<Arc<Unwritten>>,
        here: bool,
    ) -> anyhow::Result<()> {
        let started = match started {
            Some(started) => started,
            None => match self
                .retry_store(&run.id, || self.store.start_execution(&run.id, now_ms()))
                .await?
            {
                Some(started) => started,
                // Cancelled while it waited.
                None => return Ok(()),
            },
        };
        let begun = Instant::now();
        let mut seq = started.seq;
        // How long a decision may take, when the action's output needs approval.
        let mut approval = None;
        let result = match self.registry.version(&run.app, run.version).await {
            Err(e) => Err(RunError::new(
                ErrorCode::SandboxUnavailable,
                format!("the app could not be loaded: {e:#}"),
            )),
            Ok(loaded) => {
                approval = loaded
                    .app
                    .manifest()
                    .action(&run.action)
                    .filter(|a| a.approval)
                    .map(floom_runtime::Action::approval_timeout);
                let inputs = match &run.inputs {
                    Some(inputs) => Ok(inputs.clone()),
                    None => self
                        .retry_store(&run.id, || self.store.execution(&run.id))
                        .await
                        .map_err(|e| format!("{e:#}"))
                        .and_then(|r| {
                            r.map(|r| r.current_inputs().to_owned())
                                .ok_or_else(|| "it vanished".into())
                        }),
                };
                let request = inputs.and_then(|inputs| {
                    let input = RawValue::from_string(inputs).map_err(|e| e.to_string())?;
                    RunRequest::new(&loaded.app, &run.action, input).map_err(|e| e.to_string())
                });
                match request {
                    Err(e) => Err(RunError::new(
                        ErrorCode::SandboxUnavailable,
                        format!("the run could not be prepared: {e}"),
                    )),
                    Ok(request) => match self.prepare_files(run).await {
                        Err(e) => Err(RunError::new(
                            ErrorCode::SandboxUnavailable,
                            format!("the run's folders could not be made: {e:#}"),
                        )),
                        Ok(folders) => {
                            let secrets = self
                                .secrets(&run.id, &run.app, &loaded.app.manifest().secrets)
                                .await;
                            let mut request = request.secrets(secrets);
                            if let Some(files) = folders.run_files() {
                                request = request.files(files);
                            }
                            let (tx, rx) = mpsc::channel(256);
                            let pump = tokio::spawn(pump(
                                self.store.clone(),
                                run.id.clone(),
                                seq,
                                rx,
                                unwritten.clone(),
                            ));
                            let app = loaded.app.clone();
                            let request = request.events(tx).cancel(cancel);
                            let guest = async move { app.run(request).await };
                            let guest = if here {
                                self.lanes.run_here(guest)
                            } else {
                                self.lanes.run(guest)
                            };
                            let outcome = within_window(guest, unwritten.as_deref()).await;
                            let outcome = outcome.map_err(|e| {
                                RunError::new(
                                    ErrorCode::SandboxUnavailable,
                                    format!("the run was lost by its runtime: {e}"),
                                )
                            });
                            seq = match pump.await {
                                Ok(last) => last,
                                Err(e) => {
                                    tracing::error!(execution = %run.id, "the event pump failed: {e}");
                                    seq
                                }
                            };
                            // Whatever the ending: what it wrote under /out is its artifacts.
                            // The runtime charges every file or folder made there, so a run
                            // charged nothing left nothing (a lost run may have).
                            let wrote = outcome
                                .as_ref()
                                .map_or(true, |o| o.usage.artifact_bytes > 0);
                            if let Some(unwritten) = unwritten.as_ref().filter(|_| wrote) {
                                // Its artifacts are recorded against a written execution.
                                if let Err(e) = unwritten.write().await {
                                    tracing::error!(execution = %run.id, "the execution could not be written: {e:#}");
                                }
                            }
                            seq = self.collect_files(&run.id, folders, wrote, seq).await;
                            outcome
                        }
                    },
                }
            }
        };
        let approval = approval.map(|timeout| crate::approvals::Request {
            action: &run.action,
            step: run.step,
            timeout,
        });
        let mut finish = finish(&run.id, started.attempt, seq + 1, result, approval);
        // Counted until its end is written: 1 is this run.
        finish.alone = self.running() <= 1;
        self.metrics
            .run_finished(finish.status.as_str(), begun.elapsed().as_secs_f64());
        self.retry_store(&run.id, || async {
            match &unwritten {
                Some(unwritten) => unwritten.finish(finish.clone()).await,
                None => self.store.finish_execution(&run.id, finish.clone()).await,
            }
        })
        .await
    }

    /// Runs a store call for execution `id` until it succeeds: a store that refuses
    /// writes for a while (disk full, read-only) or does not answer (a shared database
    /// out of reach) must not lose an accepted execution's start or end, nor fail a run
    /// for a read it needs (its inputs, files, secrets). The slot stays held meanwhile;
    /// on shutdown it gives up, and the restart's recovery takes over.
    async fn retry_store<T, F, Fut>(&self, id: &str, write: F) -> anyhow::Result<T>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = anyhow::Result<T>>,
    {
        retry_store(&self.draining, id, write).await
    }
}

/// [`Scheduler::retry_store`], given the scheduler's `draining` flag.
async fn retry_store<T, F, Fut>(draining: &AtomicBool, id: &str, mut write: F) -> anyhow::Result<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = anyhow::Result<T>>,
{
    let mut delay = Duration::from_millis(100);
    loop {
        match write().await {
            Ok(value) => return Ok(value),
            Err(e) if draining.load(Ordering::Acquire) => return Err(e),
            // Another host has the run now: nothing of this attempt is recorded.
            Err(e) if e.is::<LeaseLost>() => return Err(e),
            Err(e) => {
                tracing::warn!(execution = %id, "cannot record the execution yet, retrying in {delay:?}: {e:#}");
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_secs(5));
            }
        }
    }
}

/// Runs `guest` to its end; for an `unwritten` run, writes its execution as running
/// once [`WRITE_WINDOW`] has passed, while the guest goes on.
async fn within_window<F: Future>(guest: F, unwritten: Option<&Unwritten>) -> F::Output {
    let Some(unwritten) = unwritten else {
        return guest.await;
    };
    tokio::pin!(guest);
    tokio::select! {
        outcome = &mut guest => outcome,
        () = tokio::time::sleep(WRITE_WINDOW) => {
            let (outcome, written) = tokio::join!(guest, unwritten.write());
            if let Err(e) = written {
                tracing::error!("a running execution could not be written: {e:#}");
            }
            outcome
        }
    }
}

impl Scheduler {
    /// Makes `run`'s folders, with its input files in `in`.
    async fn prepare_files(&self, run: &Queued) -> anyhow::Result<RunFolders> {
        let id = &run.id;
        let inputs = if run.input_files {
            self.retry_store(id, || self.store.files(id))
                .await?
                .into_iter()
                .filter(|f| f.kind == FileKind::Input)
                .collect()
        } else {
            Vec::new()
        };
        self.files.prepare(id, inputs).await
    }

    /// Records what execution `id` left in `folders` (when it `wrote` any) as its
    /// artifacts, with an
    /// `artifact` event after event `seq` when there are any; returns the last sequence
    /// number used. A failure is logged: the run's ending is recorded all the same.
    async fn collect_files(&self, id: &str, folders: RunFolders, wrote: bool, seq: i64) -> i64 {
        let artifacts = match self.files.collect(id, folders, wrote).await {
            Ok(artifacts) => artifacts,
            Err(e) => {
                tracing::error!(execution = %id, "the run's artifacts could not be collected: {e:#}");
                return seq;
            }
        };
        if artifacts.is_empty() {
            return seq;
        }
        let event = events::artifact(id, seq + 1, &artifacts);
        let recorded = self
            .retry_store(id, || self.store.add_files(artifacts.clone()))
            .await;
        if let Err(e) = recorded {
            tracing::error!(execution = %id, "the run's artifacts could not be recorded: {e:#}");
            return seq;
        }
        self.store.append_events(vec![event]).written().await;
        seq + 1
    }

    /// The values of the secrets `declared` by an app's manifest, for execution `id`. A
    /// secret that cannot be decrypted is left out (and logged by name only): the app
    /// then sees it as unset.
    async fn secrets(&self, id: &str, app: &str, declared: &[String]) -> HashMap<String, String> {
        if declared.is_empty() {
            return HashMap::new();
        }
        let stored = match self.retry_store(id, || self.store.secrets(app)).await {
            Ok(stored) => stored,
            Err(e) => {
                tracing::error!(app, "cannot read the app's secrets: {e:#}");
                return HashMap::new();
            }
        };
        stored
            .into_iter()
            .filter(|s| declared.contains(&s.name))
            .filter_map(|s| {
                let owner = crate::crypto::secret_owner(app, &s.name);
                match self.sealer.open(&owner, &s.sealed).map(String::from_utf8) {
                    Ok(Ok(value)) => Some((s.name, value)),
                    _ => {
                        tracing::error!(app, secret = %s.name, "cannot decrypt the secret");
                        None
                    }
                }
            })
            .collect()
    }
}

/// Numbers the sandbox's events and hands them to the store in batches; returns the last
/// sequence number used.
///
/// At most one batch per run waits for the writer: while the store is behind, the
/// channel fills and the guest waits in its next emit or write. (Handing batches over
/// without waiting let four runs streaming 64 KiB chunks queue 2 GB for the writer.)
async fn pump(
    store: DynStore,
    id: String,
    mut seq: i64,
    mut events: mpsc::Receiver<floom_runtime::Event>,
    mut unwritten: Option<Arc<Unwritten>>,
) -> i64 {
    let mut batch = Vec::with_capacity(64);
    let mut previous: Option<Appended> = None;
    while events.recv_many(&mut batch, 64).await > 0 {
        // An event is stored (and sent to followers) only for a written execution.
        if let Some(first) = unwritten.take()
            && let Err(e) = first.write().await
        {
            tracing::error!(execution = %id, "the execution could not be written: {e:#}");
        }
        let stored: Vec<StoredEvent> = batch
            .drain(..)
            .map(|event| {
                seq += 1;
                events::streamed(&id, seq, &event)
            })
            .collect();
        // The last batch is not awaited: the store writes the run's end after it.
        if let Some(previous) = previous.take() {
            previous.written().await;
        }
        previous = Some(store.append_events(stored));
    }
    seq
}

/// The terminal record of a run; for a run whose output needs `approval`, its
/// `awaiting_approval` record instead when it succeeded.
fn finish(
    id: &str,
    attempt: i64,
    seq: i64,
    result: Result<Outcome, RunError>,
    approval: Option<crate::approvals::Request<'_>>,
) -> Finish {
    let (output, error, usage) = match result {
        Ok(outcome) => {
            let error = (outcome.status != Status::Succeeded).then(|| {
                outcome.error.unwrap_or_else(|| {
                    RunError::new(ErrorCode::Trap, format!("the run ended {}", outcome.status))
                })
            });
            (outcome.output, error, Some(outcome.usage))
        }
        Err(error) => (None, Some(error), None),
    };
    let usage_json = usage.as_ref().and_then(|u| serde_json::to_string(u).ok());
    match (error, approval) {
        (None, Some(request)) => {
            let now = now_ms();
            let (approval, expires_at) = request.pending(output.as_deref(), now);
            Finish {
                status: ExecStatus::AwaitingApproval,
                event: events::approval(id, seq, &approval),
                output: None,
                error: None,
                usage: usage_json,
                finished_at: now,
                approval: Some((approval.get().to_owned(), expires_at)),
                attempt,
                alone: false,
            }
        }
        (None, None) => Finish {
            status: ExecStatus::Succeeded,
            event: events::end(
                id,
                seq,
                output.as_deref(),
                usage.map_or(0.0, |u| u.duration.as_micros() as f64 / 1000.0),
            ),
            output: output.map(|o| o.get().to_owned()),
            error: None,
            usage: usage_json,
            finished_at: now_ms(),
            approval: None,
            attempt,
            alone: false,
        },
        (Some(error), _) => {
            let status = ExecStatus::from(error.code.status());
            Finish {
                status,
                event: events::error(id, seq, status, &error),
                output: None,
                error: serde_json::to_string(&error).ok(),
                usage: usage_json,
                finished_at: now_ms(),
                approval: None,
                attempt,
                alone: false,
            }
        }
    }
}

/// Counts a run of `app` in `per_app` if the app has fewer than `cap` running.
fn claim(per_app: &mut HashMap<String, usize>, app: &str, cap: usize) -> bool {
    match per_app.get_mut(app) {
        Some(running) if *running >= cap => false,
        Some(running) => {
            *running += 1;
            true
        }
        None => {
            per_app.insert(app.to_owned(), 1);
            true
        }
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|p| p.into_inner())
}
