//! [`Store`] on an embedded SQLite database in WAL mode.
//!
//! All writes go through one writer that commits whatever has queued up in one
//! transaction (group commit: one commit per batch, not per event), each operation in
//! its own savepoint so one failure does not undo the others. The writer is a thread,
//! except that the end of a run that was alone on the host, finding it idle, commits on
//! the caller's thread (no wake-up there and back). Callers are answered only after the
//! commit, and committed events are then published to live subscribers.
//!
//! Streamed events queue apart from the other writes, per execution: a transaction takes
//! every waiting write first, then events round-robin across executions up to a byte
//! budget. So a chatty run's events cannot delay another run's start or end commits (a
//! write waits at most one budget of events), nor starve other runs' events; an
//! execution's own pending events are written before its end. Reads
//! use a small pool of read-only connections on blocking threads; WAL lets them run
//! while the writer writes. Checkpoints (copying the WAL back into the database, with
//! its fsyncs) run on a thread of their own, so no commit waits for one.

use std::collections::{HashMap, VecDeque};
use std::path::Path;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError, TryLockError, mpsc};

use anyhow::Context as _;
use async_trait::async_trait;
use floom_runtime::{ErrorCode, RunError};
use prometheus_client::metrics::counter::Counter;
use rusqlite::hooks::Wal;
use rusqlite::{
    Connection, OpenFlags, OptionalExtension, Row, Transaction, TransactionBehavior, params,
};
use serde_json::value::RawValue;
use tokio::sync::oneshot;

use super::takeback::{self, Stopped, TakenBack};
use super::{
    AfterAttempt, AttemptRecord, DeliveryHistory, DueDelivery, ExportedExecution, ScheduleRecord,
    SubscriptionRecord, TickClaim, TimedExecution, TriggerRecord,
};
use super::{
    AppRecord, AppStats, Appended, DeletedApp, ExecStatus, ExecutionRecord, ExecutionSummary,
    FileKind, FileRecord, Finish, IDEMPOTENCY_WINDOW_MS, IdempotencyKey, Inserted, ListExecutions,
    Millis, NewExecution, NewVersion, NotPurgeable, Published, Recovery, SecretRecord, SlugRetired,
    Started, Store, StoredEvent, TokenRecord, TriggerSource, VersionRecord,
};
use super::{
    Decided, Decision, DecisionNote, ListApprovals, StepRun, sqlite_approvals, sqlite_hooks,
};
use crate::events;
use crate::live::Live;

/// The schema, one file per step; `PRAGMA user_version` records how many ran.
const MIGRATIONS: &[&str] = &[
    include_str!("migrations/0001_init.sql"),
    include_str!("migrations/0002_access.sql"),
    include_str!("migrations/0003_retired_slugs.sql"),
    include_str!("migrations/0004_event_retention.sql"),
    include_str!("migrations/0005_trigger_source.sql"),
    include_str!("migrations/0006_hooks.sql"),
    include_str!("migrations/0007_artifacts.sql"),
    include_str!("migrations/0008_approvals.sql"),
    include_str!("migrations/0009_outbox.sql"),
    include_str!("migrations/0010_deliveries_by_id.sql"),
    include_str!("migrations/0011_unfinished_by_status.sql"),
    include_str!("migrations/0012_inline_events.sql"),
];
/// Events one pruning write deletes at most (beyond finishing the execution it is on),
/// so it holds the writer for milliseconds, not seconds.
const PRUNE_EVENTS_PER_WRITE: usize = 20_000;

/// Most operations committed in one transaction.
const MAX_BATCH: usize = 1024;
/// Bytes of streamed events one transaction takes (beyond those an execution's end
/// flushes): the most a write waits behind.
const EVENT_BYTES_PER_COMMIT: usize = 256 << 10;
/// Prepared statements kept per connection: more than the store has.
const STATEMENT_CACHE: usize = 256;
/// Read connections kept open: more than the reads a busy server has in flight, so a
/// read finds one. (With 4, sync runs at c=16 opened a connection per run, and each
/// open read and parsed the whole schema.)
const READERS: usize = 32;
/// The least time between two checkpoints: each copies what the WAL gained meanwhile.
const CHECKPOINT_INTERVAL: std::time::Duration = std::time::Duration::from_millis(100);
/// WAL frames (pages) past which a checkpoint rewinds the WAL: 64 MiB of 4 KiB pages.
const WAL_RESTART_FRAMES: i64 = 16384;
/// The size the WAL file is cut back to after it rewinds.
const WAL_SIZE_LIMIT: i64 = 128 << 20;

/// A batch transaction that did not commit: every write in it failed with this.
#[derive(Debug, Clone, thiserror::Error)]
#[error("the database commit failed: {message}")]
pub struct CommitFailed {
    /// SQLite's error code (`DiskFull`, `ReadOnly`, ...), when SQLite gave one.
    pub code: Option<rusqlite::ErrorCode>,
    message: String,
}

impl From<&rusqlite::Error> for CommitFailed {
    fn from(e: &rusqlite::Error) -> Self {
        CommitFailed {
            code: e.sqlite_error_code(),
            message: e.to_string(),
        }
    }
}

/// What a committed batch does next: open live channels and publish events.
#[derive(Default)]
pub(super) struct Effects {
    pub(super) open: Vec<String>,
    pub(super) publish: Vec<StoredEvent>,
    /// Deliveries were added to the outbox.
    pub(super) outbox: bool,
}

/// One queued write: runs inside the batch transaction, then learns whether the batch
/// committed.
trait Job: Send {
    fn run(&mut self, tx: &Transaction<'_>, effects: &mut Effects);
    fn complete(self: Box<Self>, commit: Result<(), CommitFailed>);
}

type OpFn<R> = Box<dyn FnOnce(&Connection, &mut Effects) -> anyhow::Result<R> + Send>;

/// A write whose caller awaits its result.
struct Op<R> {
    f: Option<OpFn<R>>,
    result: Option<anyhow::Result<R>>,
    effects: Effects,
    reply: Option<oneshot::Sender<anyhow::Result<R>>>,
}

impl<R: Send + 'static> Op<R> {
    /// The work that runs `f` (after the events of `execution`), and where its result
    /// arrives.
    fn work(
        execution: Option<String>,
        f: impl FnOnce(&Connection, &mut Effects) -> anyhow::Result<R> + Send + 'static,
    ) -> (Work, oneshot::Receiver<anyhow::Result<R>>) {
        let (reply, result) = oneshot::channel();
        let job = Box::new(Op {
            f: Some(Box::new(f)),
            result: None,
            effects: Effects::default(),
            reply: Some(reply),
        });
        (Work::Job(job, execution), result)
    }

    async fn answer(result: oneshot::Receiver<anyhow::Result<R>>) -> anyhow::Result<R> {
        result
            .await
            .map_err(|_| anyhow::anyhow!("the database writer stopped"))?
    }
}

impl<R: Send + 'static> Job for Op<R> {
    fn run(&mut self, tx: &Transaction<'_>, effects: &mut Effects) {
        let Some(f) = self.f.take() else { return };
        // A savepoint per operation: a failure rolls back this one only.
        let result = (|| {
            let sp = Savepoint::begin(tx)?;
            let value = f(&sp, &mut self.effects)?;
            sp.commit()?;
            Ok(value)
        })();
        if result.is_ok() {
            effects.open.append(&mut self.effects.open);
            effects.publish.append(&mut self.effects.publish);
            effects.outbox |= self.effects.outbox;
        }
        self.result = Some(result);
    }

    fn complete(mut self: Box<Self>, commit: Result<(), CommitFailed>) {
        let result = match (commit, self.result.take()) {
            (Ok(()), Some(result)) => result,
            (Err(e), _) => Err(anyhow::Error::new(e)),
            (Ok(()), None) => Err(anyhow::anyhow!("the write did not run")),
        };
        if let Some(reply) = self.reply.take() {
            // The caller may have gone away; the write stands either way.
            let _ = reply.send(result);
        }
    }
}

/// A nested savepoint inside the batch transaction, released on `commit` and rolled
/// back on drop.
struct Savepoint<'a> {
    conn: &'a Connection,
    done: bool,
}

impl<'a> Savepoint<'a> {
    fn begin(conn: &'a Connection) -> rusqlite::Result<Self> {
        // Prepared once, like every statement: this runs for each write.
        conn.prepare_cached("SAVEPOINT op")?.execute([])?;
        Ok(Savepoint { conn, done: false })
    }

    fn commit(mut self) -> rusqlite::Result<()> {
        self.done = true;
        self.conn
            .prepare_cached("RELEASE op")?
            .execute([])
            .map(drop)
    }
}

impl std::ops::Deref for Savepoint<'_> {
    type Target = Connection;

    fn deref(&self) -> &Connection {
        self.conn
    }
}

impl Drop for Savepoint<'_> {
    fn drop(&mut self) {
        if !self.done {
            let _ = self.conn.execute_batch("ROLLBACK TO op; RELEASE op");
        }
    }
}

/// What the writer thread is given.
enum Work {
    /// A write, run after the pending events of the execution it names (if any).
    Job(Box<dyn Job>, Option<String>),
    /// Streamed events of one execution.
    Events(EventBatch),
}

/// Events of one execution, and who waits for them to be written.
struct EventBatch {
    execution: String,
    events: Vec<StoredEvent>,
    bytes: usize,
    written: oneshot::Sender<()>,
}

/// The writer's backlog: writes in arrival order, events per execution.
#[derive(Default)]
struct Backlog {
    jobs: VecDeque<(Box<dyn Job>, Option<String>)>,
    events: HashMap<String, VecDeque<EventBatch>>,
    /// Executions with events waiting, in turn order.
    turns: VecDeque<String>,
}

impl Backlog {
    fn is_empty(&self) -> bool {
        self.jobs.is_empty() && self.turns.is_empty()
    }

    fn add(&mut self, work: Work) {
        match work {
            Work::Job(job, after) => self.jobs.push_back((job, after)),
            Work::Events(batch) => {
                let queue = self.events.entry(batch.execution.clone()).or_default();
                if queue.is_empty() {
                    self.turns.push_back(batch.execution.clone());
                }
                queue.push_back(batch);
            }
        }
    }

    /// Every waiting batch of `execution`.
    fn take_all(&mut self, execution: &str) -> VecDeque<EventBatch> {
        let batches = self.events.remove(execution).unwrap_or_default();
        if !batches.is_empty() {
            self.turns.retain(|id| id != execution);
        }
        batches
    }

    /// The next batch in turn: one per execution, round-robin.
    fn next_batch(&mut self) -> Option<EventBatch> {
        let execution = self.turns.pop_front()?;
        let queue = self.events.get_mut(&execution)?;
        let batch = queue.pop_front();
        if queue.is_empty() {
            self.events.remove(&execution);
        } else {
            self.turns.push_back(execution);
        }
        batch
    }
}

/// What the writer has done, for `/metrics`: how much store work a run costs.
#[derive(Clone, Default)]
pub struct StoreWork {
    /// Transactions committed.
    pub commits: Counter,
    /// Pages appended to the write-ahead log (each a `pwrite` of a page and its header).
    pub wal_frames: Counter,
}

/// The writer: the write connection and the work it has taken, behind one lock. The
/// writer thread holds it for its rounds; a run's own write takes it when it is free and
/// commits at once on the caller's thread (see [`SqliteStore::write_end`]).
struct Writer {
    conn: Connection,
    backlog: Backlog,
    live: Arc<Live>,
    checkpoint: mpsc::SyncSender<()>,
    outbox: Arc<tokio::sync::Notify>,
    commits: Counter,
}

/// Work submitted and not yet taken into the writer's backlog.
#[derive(Default)]
struct Inbox {
    work: Vec<Work>,
    /// The writer thread has work (in `work`, or left in the backlog by a caller's round).
    rung: bool,
    /// The writer thread sleeps until `rung`.
    asleep: bool,
    /// The store is gone: the thread stops once nothing is left.
    closed: bool,
}

/// What the store and its writer thread share.
struct Shared {
    inbox: Mutex<Inbox>,
    doorbell: Condvar,
    writer: Mutex<Writer>,
}

fn locked<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic in a write leaves nothing half-done: its transaction rolled back.
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Shared {
    /// Hands `work` to the writer thread.
    fn submit(&self, work: Work) {
        let mut inbox = locked(&self.inbox);
        inbox.work.push(work);
        self.ring(inbox);
    }

    /// Commits `work` on this thread when the writer is free, else hands it over.
    fn commit_or_submit(&self, work: Work) {
        let mut writer = match self.writer.try_lock() {
            Ok(writer) => writer,
            Err(TryLockError::Poisoned(p)) => p.into_inner(),
            Err(TryLockError::WouldBlock) => return self.submit(work),
        };
        writer.round(&self.inbox, Some(work));
        if !writer.backlog.is_empty() {
            // Events over this commit's budget: the thread takes them on.
            self.ring(locked(&self.inbox));
        }
    }

    fn ring(&self, mut inbox: MutexGuard<'_, Inbox>) {
        inbox.rung = true;
        // No wake-up (a syscall) for a thread that is busy and will look again.
        if inbox.asleep {
            self.doorbell.notify_one();
        }
    }
}

/// The SQLite store.
pub struct SqliteStore {
    work: StoreWork,
    shared: Arc<Shared>,
    outbox: Arc<tokio::sync::Notify>,
    readers: Arc<Mutex<Vec<Connection>>>,
    path: std::path::PathBuf,
}

impl Drop for SqliteStore {
    fn drop(&mut self) {
        let mut inbox = locked(&self.shared.inbox);
        inbox.closed = true;
        self.shared.doorbell.notify_one();
    }
}

fn configure(conn: &Connection) -> rusqlite::Result<()> {
    // WAL: readers never block the writer. NORMAL: a commit survives a crash of the
    // process (the WAL is in the OS page cache); only a power loss can lose the last
    // commits, in exchange for not fsyncing on every commit.
    conn.pragma_update(None, "journal_mode", "WAL")?;
    conn.pragma_update(None, "synchronous", "NORMAL")?;
    conn.pragma_update(None, "foreign_keys", "ON")?;
    conn.busy_timeout(std::time::Duration::from_secs(10))?;
    // Every statement stays prepared: rusqlite keeps 16 by default, fewer than the
    // store's, so they pushed each other out and the writer parsed SQL on every run.
    conn.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
    Ok(())
}

impl SqliteStore {
    /// Opens (creating and migrating) the database at `path`. Committed events are
    /// published to `live`.
    pub fn open(path: &Path, live: Arc<Live>) -> anyhow::Result<Self> {
        let mut conn = Connection::open(path)
            .with_context(|| format!("cannot open the database {}", path.display()))?;
        configure(&conn)?;
        migrate(&mut conn)?;
        // SQLite would checkpoint inside the commit that fills the WAL past 1000 pages,
        // making that caller wait for the copy and its fsyncs (in a measurement, the mean
        // commit was twice the median because of it). The checkpointer does it instead.
        conn.pragma_update(None, "wal_autocheckpoint", 0)?;
        conn.pragma_update(None, "journal_size_limit", WAL_SIZE_LIMIT)?;
        // After `wal_autocheckpoint`, which takes the same hook. SQLite reports the
        // frames in the log after each commit; it starts again from the beginning once
        // a checkpoint has rewound it.
        let work = StoreWork::default();
        let frames = work.wal_frames.clone();
        let mut in_log = 0u64;
        conn.wal_hook(Some(move |_: &mut Wal, pages: std::ffi::c_int| {
            let pages = u64::try_from(pages).unwrap_or(0);
            frames.inc_by(pages.checked_sub(in_log).unwrap_or(pages));
            in_log = pages;
            Ok(())
        }))?;
        let checkpoints = Connection::open(path)?;
        checkpoints.busy_timeout(std::time::Duration::from_secs(10))?;
        let (nudge, nudged) = mpsc::sync_channel::<()>(1);
        std::thread::Builder::new()
            .name("floom-store-checkpoint".into())
            .spawn(move || checkpointer(checkpoints, nudged))
            .context("cannot start the database checkpointer")?;

        let outbox = Arc::new(tokio::sync::Notify::new());
        let shared = Arc::new(Shared {
            inbox: Mutex::default(),
            doorbell: Condvar::new(),
            writer: Mutex::new(Writer {
                conn,
                backlog: Backlog::default(),
                live,
                checkpoint: nudge,
                outbox: outbox.clone(),
                commits: work.commits.clone(),
            }),
        });
        std::thread::Builder::new()
            .name("floom-store-writer".into())
            .spawn({
                let shared = shared.clone();
                move || writer(&shared)
            })
            .context("cannot start the database writer")?;

        let mut readers = Vec::new();
        for _ in 0..READERS {
            let reader = Connection::open_with_flags(
                path,
                OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
            )?;
            reader.busy_timeout(std::time::Duration::from_secs(10))?;
            reader.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
            readers.push(reader);
        }
        Ok(SqliteStore {
            work,
            shared,
            outbox,
            readers: Arc::new(Mutex::new(readers)),
            path: path.to_owned(),
        })
    }

    /// The writer's counters.
    pub fn work(&self) -> StoreWork {
        self.work.clone()
    }

    /// Runs `f` in the next write batch and returns its result once committed.
    async fn write<R: Send + 'static>(
        &self,
        f: impl FnOnce(&Connection, &mut Effects) -> anyhow::Result<R> + Send + 'static,
    ) -> anyhow::Result<R> {
        self.write_after(None, f).await
    }

    /// Like [`Self::write`], after every event of `execution` queued before it.
    async fn write_after<R: Send + 'static>(
        &self,
        execution: Option<String>,
        f: impl FnOnce(&Connection, &mut Effects) -> anyhow::Result<R> + Send + 'static,
    ) -> anyhow::Result<R> {
        let (work, result) = Op::work(execution, f);
        self.shared.submit(work);
        Op::answer(result).await
    }

    /// Like [`Self::write_after`], for a run's end. A run that ended `alone` (see
    /// [`Finish::alone`]) finding the writer idle commits the batch itself (whatever was
    /// queued, then its own write): it does not wait for the writer thread to wake, nor
    /// for it to wake the caller back. Otherwise the write joins the writer thread's
    /// next batch: under load, committing each end at once would commit more often and
    /// fold fewer writes into each (measured: c=16 about 20 % slower), and would hold
    /// the caller's thread (a guest runtime's, or the HTTP thread a sync run alone on
    /// its host started on) for each commit.
    async fn write_end<R: Send + 'static>(
        &self,
        alone: bool,
        execution: Option<String>,
        f: impl FnOnce(&Connection, &mut Effects) -> anyhow::Result<R> + Send + 'static,
    ) -> anyhow::Result<R> {
        let (work, result) = Op::work(execution, f);
        if alone {
            self.shared.commit_or_submit(work);
        } else {
            self.shared.submit(work);
        }
        Op::answer(result).await
    }

    /// Runs `f` on a read connection on a blocking thread.
    async fn read<R: Send + 'static>(
        &self,
        f: impl FnOnce(&Connection) -> anyhow::Result<R> + Send + 'static,
    ) -> anyhow::Result<R> {
        let readers = self.readers.clone();
        let path = self.path.clone();
        tokio::task::spawn_blocking(move || {
            let pooled = readers.lock().unwrap_or_else(|p| p.into_inner()).pop();
            let conn = match pooled {
                Some(conn) => conn,
                None => {
                    let conn =
                        Connection::open_with_flags(&path, OpenFlags::SQLITE_OPEN_READ_ONLY)?;
                    conn.busy_timeout(std::time::Duration::from_secs(10))?;
                    conn
                }
            };
            let result = f(&conn);
            let mut pool = readers.lock().unwrap_or_else(|p| p.into_inner());
            if pool.len() < READERS {
                pool.push(conn);
            }
            result
        })
        .await
        .context("a database read panicked")?
    }
}

fn migrate(conn: &mut Connection) -> anyhow::Result<()> {
    let done: i64 = conn.pragma_query_value(None, "user_version", |row| row.get(0))?;
    for (i, sql) in MIGRATIONS
        .iter()
        .enumerate()
        .skip(usize::try_from(done).unwrap_or(0))
    {
        let tx = conn.transaction()?;
        tx.execute_batch(sql)
            .with_context(|| format!("migration {} failed", i + 1))?;
        tx.pragma_update(None, "user_version", i64::try_from(i + 1)?)?;
        tx.commit()?;
    }
    Ok(())
}

/// The checkpoint thread: after commits, copies the WAL into the database (at most every
/// [`CHECKPOINT_INTERVAL`]). Passive: it never blocks the writer or readers, and frames
/// still in use are copied next time. Stops with the writer.
///
/// Under steady load a passive checkpoint never catches up with the writer, and SQLite
/// only rewinds the WAL once every frame is copied: the file would grow without bound
/// (it reached 2.3 GB in a 2-minute benchmark, and every append to fresh blocks cost
/// the kernel a page zeroing). So once the WAL passes [`WAL_RESTART_FRAMES`], a
/// `RESTART` checkpoint holds the writer back for the few frames the passive one left,
/// and the next commit starts the WAL from its beginning again.
fn checkpointer(conn: Connection, nudged: mpsc::Receiver<()>) {
    let checkpoint = |mode: &str| {
        conn.query_row(&format!("PRAGMA wal_checkpoint({mode})"), [], |row| {
            row.get::<_, i64>(1)
        })
    };
    while nudged.recv().is_ok() {
        let result = checkpoint("PASSIVE").and_then(|frames| {
            if frames > WAL_RESTART_FRAMES {
                checkpoint("RESTART")?;
            }
            Ok(())
        });
        if let Err(e) = result {
            tracing::warn!("database checkpoint failed (retried after the next commit): {e}");
        }
        std::thread::sleep(CHECKPOINT_INTERVAL);
    }
}

/// The writer thread: takes the writer whenever work is rung in, and commits rounds
/// until nothing is left. Stops once the store is dropped and its work is done.
fn writer(shared: &Shared) {
    loop {
        {
            let mut inbox = locked(&shared.inbox);
            while !inbox.rung {
                if inbox.closed {
                    return;
                }
                inbox.asleep = true;
                inbox = shared
                    .doorbell
                    .wait(inbox)
                    .unwrap_or_else(PoisonError::into_inner);
                inbox.asleep = false;
            }
            inbox.rung = false;
        }
        let mut writer = locked(&shared.writer);
        while writer.round(&shared.inbox, None) {}
    }
}

impl Writer {
    /// One transaction: every waiting write (`own` last), then events within the byte
    /// budget; the commit nudges the checkpointer. False when there was nothing to do.
    fn round(&mut self, inbox: &Mutex<Inbox>, own: Option<Work>) -> bool {
        // Taken under the writer's lock: whoever commits has every earlier submission,
        // so an execution's end still comes after its events.
        for work in locked(inbox).work.drain(..) {
            self.backlog.add(work);
        }
        if let Some(own) = own {
            self.backlog.add(own);
        }
        if self.backlog.is_empty() {
            return false;
        }
        let Writer {
            conn,
            backlog,
            live,
            checkpoint,
            outbox,
            commits,
        } = self;
        let mut effects = Effects::default();
        let mut jobs = Vec::new();
        let mut written = Vec::new();
        let commit = match conn.transaction_with_behavior(TransactionBehavior::Immediate) {
            Ok(tx) => {
                let take = backlog.jobs.len().min(MAX_BATCH);
                let round: Vec<_> = backlog.jobs.drain(..take).collect();
                for (mut job, after) in round {
                    // An execution's end comes after all of its events.
                    for batch in after.map(|id| backlog.take_all(&id)).unwrap_or_default() {
                        write_events(&tx, &batch, &mut effects);
                        written.push(batch.written);
                    }
                    job.run(&tx, &mut effects);
                    jobs.push(job);
                }
                let mut budget = EVENT_BYTES_PER_COMMIT;
                while budget > 0
                    && let Some(batch) = backlog.next_batch()
                {
                    budget = budget.saturating_sub(batch.bytes);
                    write_events(&tx, &batch, &mut effects);
                    written.push(batch.written);
                }
                tx.commit().map_err(|e| CommitFailed::from(&e))
            }
            Err(e) => Err(CommitFailed::from(&e)),
        };
        if let Err(e) = &commit {
            tracing::error!(
                "database commit failed, {} writes and {} event batches lost: {e}",
                jobs.len(),
                written.len()
            );
        } else {
            commits.inc();
            // Full means a nudge is already pending.
            let _ = checkpoint.try_send(());
            for id in effects.open {
                live.open(&id);
            }
            for event in effects.publish {
                live.publish(event);
            }
            if effects.outbox {
                outbox.notify_one();
            }
        }
        for job in jobs {
            job.complete(commit.clone());
        }
        for done in written {
            let _ = done.send(());
        }
        true
    }
}

/// Inserts a batch of streamed events; one that cannot be stored is logged and skipped.
fn write_events(tx: &Connection, batch: &EventBatch, effects: &mut Effects) {
    for event in &batch.events {
        match insert_event(tx, event) {
            Ok(()) => effects.publish.push(event.clone()),
            Err(e) => tracing::error!(
                execution = %event.execution_id,
                seq = event.seq,
                "cannot store an event: {e}"
            ),
        }
    }
}

pub(super) fn insert_event(conn: &Connection, event: &StoredEvent) -> rusqlite::Result<()> {
    conn.prepare_cached(
        "INSERT INTO events (execution_id, seq, kind, data) VALUES (?1, ?2, ?3, ?4)",
    )?
    .execute(params![
        event.execution_id,
        event.seq,
        event.kind,
        event.data
    ])?;
    Ok(())
}

pub(super) fn next_seq(conn: &Connection, id: &str) -> rusqlite::Result<i64> {
    conn.prepare_cached("SELECT COALESCE(MAX(seq), 0) + 1 FROM events WHERE execution_id = ?1")?
        .query_row([id], |row| row.get(0))
}

/// Cancels execution `id` if it is still queued (or awaiting approval: nothing runs),
/// with its terminal event; false when it was neither.
fn cancel_queued_in(
    tx: &Connection,
    effects: &mut Effects,
    id: &str,
    at: Millis,
    why: &str,
) -> anyhow::Result<bool> {
    let error = RunError::new(ErrorCode::Cancelled, why);
    let updated: Option<(String, Option<String>)> = tx
        .prepare_cached(
            "UPDATE executions SET status = 'cancelled', error = ?2, finished_at = ?3, \
             approval_expires_at = NULL \
             WHERE id = ?1 AND status IN ('queued', 'awaiting_approval') RETURNING app, webhook",
        )?
        .query_row(params![id, serde_json::to_string(&error)?, at], |row| {
            Ok((row.get(0)?, row.get(1)?))
        })
        .optional()?;
    let Some((app, webhook)) = updated else {
        return Ok(false);
    };
    effects.outbox |=
        sqlite_hooks::enqueue(tx, id, &app, webhook.as_deref(), ExecStatus::Cancelled, at)?;
    let event = events::error(id, next_seq(tx, id)?, ExecStatus::Cancelled, &error);
    insert_event(tx, &event)?;
    effects.publish.push(event);
    Ok(true)
}

const VERSION_COLUMNS: &str =
    "v.slug, v.version, v.sha256, v.manifest, v.kind, v.public, v.created_at";

fn version_row(row: &Row<'_>) -> rusqlite::Result<VersionRecord> {
    Ok(VersionRecord {
        slug: row.get(0)?,
        version: row.get(1)?,
        sha256: row.get(2)?,
        manifest: row.get(3)?,
        kind: row.get(4)?,
        public: row.get(5)?,
        created_at: row.get(6)?,
    })
}

/// An app's columns: its current version's (with the app's own visibility when the
/// operator set one), then the app's.
const APP_COLUMNS: &str = "v.slug, v.version, v.sha256, v.manifest, v.kind, \
                           COALESCE(a.public, v.public), v.created_at, a.created_at, a.updated_at, a.paused";

fn app_row(row: &Row<'_>) -> rusqlite::Result<AppRecord> {
    Ok(AppRecord {
        slug: row.get(0)?,
        current: version_row(row)?,
        created_at: row.get(7)?,
        updated_at: row.get(8)?,
        paused: row.get(9)?,
    })
}

fn app_query(conn: &Connection, slug: &str) -> rusqlite::Result<Option<AppRecord>> {
    conn.prepare_cached(&format!(
        "SELECT {APP_COLUMNS} FROM apps a \
         JOIN app_versions v ON v.slug = a.slug AND v.version = a.current_version \
         WHERE a.slug = ?1"
    ))?
    .query_row([slug], app_row)
    .optional()
}

pub(super) const EXECUTION_COLUMNS: &str = "n, id, app, version, action, status, inputs, output, error, usage, \
                                 view_token_hash, attempts, created_at, started_at, finished_at, \
                                 trigger_source, step, step_action, step_inputs, approval";

pub(super) fn execution_row(row: &Row<'_>) -> rusqlite::Result<ExecutionRecord> {
    Ok(ExecutionRecord {
        n: row.get(0)?,
        id: row.get(1)?,
        app: row.get(2)?,
        version: row.get(3)?,
        action: row.get(4)?,
        status: status_column(row, 5)?,
        inputs: row.get(6)?,
        output: row.get(7)?,
        error: row.get(8)?,
        usage: row.get(9)?,
        view_token_hash: row.get(10)?,
        attempts: row.get(11)?,
        created_at: row.get(12)?,
        started_at: row.get(13)?,
        finished_at: row.get(14)?,
        trigger_source: trigger_column(row, 15)?,
        step: row.get(16)?,
        step_run: match (row.get(17)?, row.get(18)?) {
            (Some(action), Some(inputs)) => Some(StepRun { action, inputs }),
            _ => None,
        },
        approval: row.get(19)?,
    })
}

/// The execution list's filters, over the parameters [`list_params`] gives (`?4` is the
/// page size).
const LIST_FILTER: &str = "(?1 IS NULL OR app = ?1) AND (?2 IS NULL OR status = ?2) \
     AND (?3 IS NULL OR n < ?3) AND (?5 IS NULL OR app IN (SELECT value FROM json_each(?5))) \
     AND (?6 IS NULL OR trigger_source = ?6) AND (?7 IS NULL OR created_at >= ?7) \
     AND (?8 IS NULL OR created_at < ?8)";

type ListParams<'a> = (
    Option<&'a str>,
    Option<&'static str>,
    Option<i64>,
    u32,
    Option<String>,
    Option<&'static str>,
    Option<Millis>,
    Option<Millis>,
);

fn list_params(filter: &ListExecutions) -> anyhow::Result<ListParams<'_>> {
    let apps = filter
        .apps
        .as_ref()
        .map(serde_json::to_string)
        .transpose()?;
    Ok((
        filter.app.as_deref(),
        filter.status.map(ExecStatus::as_str),
        filter.before,
        filter.limit,
        apps,
        filter.trigger_source.map(TriggerSource::as_str),
        filter.since,
        filter.until,
    ))
}

const SUMMARY_COLUMNS: &str = "n, id, app, version, action, status, error, usage, attempts, \
                               created_at, started_at, finished_at, trigger_source";

fn summary_row(row: &Row<'_>) -> rusqlite::Result<ExecutionSummary> {
    Ok(ExecutionSummary {
        n: row.get(0)?,
        id: row.get(1)?,
        app: row.get(2)?,
        version: row.get(3)?,
        action: row.get(4)?,
        status: status_column(row, 5)?,
        error: row.get(6)?,
        usage: row.get(7)?,
        attempts: row.get(8)?,
        created_at: row.get(9)?,
        started_at: row.get(10)?,
        finished_at: row.get(11)?,
        trigger_source: trigger_column(row, 12)?,
    })
}

fn trigger_column(row: &Row<'_>, index: usize) -> rusqlite::Result<TriggerSource> {
    let source: String = row.get(index)?;
    source.parse().map_err(|e: String| {
        rusqlite::Error::FromSqlConversionFailure(index, rusqlite::types::Type::Text, e.into())
    })
}

fn status_column(row: &Row<'_>, index: usize) -> rusqlite::Result<ExecStatus> {
    let status: String = row.get(index)?;
    status.parse().map_err(|e: String| {
        rusqlite::Error::FromSqlConversionFailure(index, rusqlite::types::Type::Text, e.into())
    })
}

fn event_row(row: &Row<'_>) -> rusqlite::Result<StoredEvent> {
    Ok(StoredEvent {
        execution_id: row.get(0)?,
        seq: row.get(1)?,
        kind: row.get(2)?,
        data: row.get(3)?,
    })
}

/// The events kept in an execution's row (`inline_events`, seq 1, 2, ...) after `after`,
/// at most `limit`.
fn inline_events(
    id: &str,
    inline: &str,
    after: i64,
    limit: u32,
) -> anyhow::Result<Vec<StoredEvent>> {
    #[derive(serde::Deserialize)]
    struct Kind {
        r#type: String,
    }
    let datas: Vec<&RawValue> =
        serde_json::from_str(inline).context("an execution's inline events")?;
    (1..)
        .zip(datas)
        .skip(usize::try_from(after.max(0)).unwrap_or(usize::MAX))
        .take(limit as usize)
        .map(|(seq, data)| {
            let kind: Kind =
                serde_json::from_str(data.get()).context("an inline event without its type")?;
            Ok(StoredEvent {
                execution_id: id.to_owned(),
                seq,
                kind: kind.r#type,
                data: data.get().to_owned(),
            })
        })
        .collect()
}

#[async_trait]
impl Store for SqliteStore {
    async fn publish(&self, new: NewVersion) -> anyhow::Result<Published> {
        self.write(move |tx, _| {
            let now = super::now_ms();
            if let Some(current) = app_query(tx, &new.slug)?
                && current.current.sha256 == new.sha256
                && current.current.manifest == new.manifest
            {
                return Ok(Published {
                    app: current,
                    created: false,
                });
            }
            let retired: bool = tx.query_row(
                "SELECT EXISTS (SELECT 1 FROM retired_slugs WHERE slug = ?1)",
                [&new.slug],
                |row| row.get(0),
            )?;
            if retired {
                return Err(SlugRetired(new.slug.clone()).into());
            }
            let version: i64 = tx.query_row(
                "SELECT COALESCE(MAX(version), 0) + 1 FROM app_versions WHERE slug = ?1",
                [&new.slug],
                |row| row.get(0),
            )?;
            tx.execute(
                "INSERT INTO app_versions (slug, version, sha256, manifest, kind, public, created_at) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                params![new.slug, version, new.sha256, new.manifest, new.kind, new.public, now],
            )?;
            tx.execute(
                "INSERT INTO apps (slug, current_version, created_at, updated_at) VALUES (?1, ?2, ?3, ?3) \
                 ON CONFLICT (slug) DO UPDATE SET current_version = excluded.current_version, \
                 updated_at = excluded.updated_at, public = NULL",
                params![new.slug, version, now],
            )?;
            let app = app_query(tx, &new.slug)?.context("the app just written is missing")?;
            Ok(Published { app, created: true })
        })
        .await
    }

    async fn app(&self, slug: &str) -> anyhow::Result<Option<AppRecord>> {
        let slug = slug.to_owned();
        self.read(move |conn| Ok(app_query(conn, &slug)?)).await
    }

    async fn apps(&self) -> anyhow::Result<Vec<AppRecord>> {
        self.read(|conn| {
            let mut stmt = conn.prepare_cached(&format!(
                "SELECT {APP_COLUMNS} FROM apps a \
                 JOIN app_versions v ON v.slug = a.slug AND v.version = a.current_version \
                 ORDER BY a.slug"
            ))?;
            let rows = stmt.query_map([], app_row)?;
            Ok(rows.collect::<rusqlite::Result<_>>()?)
        })
        .await
    }

    async fn version(&self, slug: &str, version: i64) -> anyhow::Result<Option<VersionRecord>> {
        let slug = slug.to_owned();
        self.read(move |conn| {
            Ok(conn
                .prepare_cached(&format!(
                    "SELECT {VERSION_COLUMNS} FROM app_versions v WHERE v.slug = ?1 AND v.version = ?2"
                ))?
                .query_row(params![slug, version], version_row)
                .optional()?)
        })
        .await
    }

    async fn delete_app(&self, slug: &str, at: Millis) -> anyhow::Result<Option<DeletedApp>> {
        let slug = slug.to_owned();
        self.write(move |tx, effects| {
            if tx.execute("DELETE FROM apps WHERE slug = ?1", [&slug])? == 0 {
                return Ok(None);
            }
            tx.execute(
                "INSERT OR REPLACE INTO retired_slugs (slug, deleted_at) VALUES (?1, ?2)",
                params![slug, at],
            )?;
            tx.execute("DELETE FROM secrets WHERE app = ?1", [&slug])?;
            // Grants to the slug go with the app, so a later app of that name gets none.
            let grants: Vec<(String, String)> = tx
                .prepare(
                    "SELECT id, apps FROM tokens WHERE apps IS NOT NULL \
                     AND EXISTS (SELECT 1 FROM json_each(tokens.apps) WHERE value = ?1)",
                )?
                .query_map([&slug], |row| Ok((row.get(0)?, row.get(1)?)))?
                .collect::<rusqlite::Result<_>>()?;
            for (id, apps) in grants {
                let mut apps: Vec<String> = serde_json::from_str(&apps)?;
                apps.retain(|app| *app != slug);
                tx.execute(
                    "UPDATE tokens SET apps = ?2 WHERE id = ?1",
                    params![id, serde_json::to_string(&apps)?],
                )?;
            }
            let queued: Vec<String> = tx
                .prepare(
                    "SELECT id FROM executions WHERE app = ?1 \
                     AND status IN ('queued', 'awaiting_approval') ORDER BY n",
                )?
                .query_map([&slug], |row| row.get(0))?
                .collect::<rusqlite::Result<_>>()?;
            for id in &queued {
                cancel_queued_in(
                    tx,
                    effects,
                    id,
                    at,
                    "the app was deleted before this execution ended",
                )?;
            }
            sqlite_hooks::delete_app(tx, &slug, at)?;
            Ok(Some(DeletedApp { cancelled: queued }))
        })
        .await
    }

    async fn purge_app(&self, slug: &str) -> anyhow::Result<bool> {
        let slug = slug.to_owned();
        self.write(move |tx, _| {
            if app_query(tx, &slug)?.is_some() {
                return Err(
                    NotPurgeable(format!("{slug} is still published: delete it first")).into(),
                );
            }
            let retired = tx.execute("DELETE FROM retired_slugs WHERE slug = ?1", [&slug])? > 0;
            let unfinished: i64 = tx.query_row(
                "SELECT COUNT(*) FROM executions WHERE app = ?1 \
                 AND status IN ('queued', 'running', 'awaiting_approval')",
                [&slug],
                |row| row.get(0),
            )?;
            if unfinished > 0 {
                return Err(NotPurgeable(format!(
                    "{unfinished} executions of {slug} have not ended yet; try again in a moment"
                ))
                .into());
            }
            let executions = "SELECT id FROM executions WHERE app = ?1";
            tx.execute(
                &format!("DELETE FROM events WHERE execution_id IN ({executions})"),
                [&slug],
            )?;
            tx.execute(
                &format!("DELETE FROM execution_files WHERE execution_id IN ({executions})"),
                [&slug],
            )?;
            tx.execute(
                &format!("DELETE FROM idempotency WHERE execution_id IN ({executions})"),
                [&slug],
            )?;
            sqlite_hooks::purge_app(tx, &slug)?;
            let removed = tx.execute("DELETE FROM executions WHERE app = ?1", [&slug])?
                + tx.execute("DELETE FROM app_versions WHERE slug = ?1", [&slug])?;
            Ok(retired || removed > 0)
        })
        .await
    }

    async fn insert_execution(
        &self,
        e: NewExecution,
        idempotency: Option<IdempotencyKey>,
    ) -> anyhow::Result<Inserted> {
        self.write(move |tx, effects| {
            if let Some(claim) = &e.tick {
                sqlite_hooks::claim_tick(tx, claim, &e.id)?;
            }
            if let Some(key) = &idempotency {
                let earlier = tx
                    .prepare_cached(
                        "SELECT execution_id, request_hash, view_token FROM idempotency \
                         WHERE caller = ?1 AND key = ?2 AND created_at > ?3",
                    )?
                    .query_row(
                        params![key.caller, key.key, e.created_at - IDEMPOTENCY_WINDOW_MS],
                        |row| {
                            Ok(Inserted::Existing {
                                execution_id: row.get(0)?,
                                request_hash: row.get(1)?,
                                view_token: row.get(2)?,
                            })
                        },
                    )
                    .optional()?;
                if let Some(earlier) = earlier {
                    return Ok(earlier);
                }
                // An expired key is free again; old keys are swept as we go.
                tx.prepare_cached("DELETE FROM idempotency WHERE created_at <= ?1")?
                    .execute([e.created_at - IDEMPOTENCY_WINDOW_MS])?;
                tx.prepare_cached(
                    "INSERT OR REPLACE INTO idempotency \
                     (caller, key, request_hash, execution_id, view_token, created_at) \
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                )?
                .execute(params![
                    key.caller,
                    key.key,
                    key.request_hash,
                    e.id,
                    key.view_token,
                    e.created_at
                ])?;
            }
            let status = if e.started_at.is_some() {
                "running"
            } else {
                "queued"
            };
            tx.prepare_cached(
                "INSERT INTO executions \
                 (id, app, version, action, status, inputs, view_token_hash, created_at, attempts, \
                  started_at, trigger_source, mcp_call, webhook) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)",
            )?
            .execute(params![
                e.id,
                e.app,
                e.version,
                e.action,
                status,
                e.inputs,
                e.view_token_hash,
                e.created_at,
                i64::from(e.started_at.is_some()),
                e.started_at,
                e.trigger_source.as_str(),
                e.mcp_call,
                e.webhook
            ])?;
            effects.open.push(e.id.clone());
            let Some(_) = e.started_at else {
                return Ok(Inserted::New(None));
            };
            let event = events::start(&e.id, 1, 1);
            insert_event(tx, &event)?;
            effects.publish.push(event);
            Ok(Inserted::New(Some(Started { attempt: 1, seq: 1 })))
        })
        .await
    }

    async fn start_execution(&self, id: &str, at: Millis) -> anyhow::Result<Option<Started>> {
        let id = id.to_owned();
        self.write(move |tx, effects| {
            let attempt: Option<i64> = tx
                .prepare_cached(
                    "UPDATE executions SET status = 'running', attempts = attempts + 1, started_at = ?2 \
                     WHERE id = ?1 AND status = 'queued' RETURNING attempts",
                )?
                .query_row(params![id, at], |row| row.get(0))
                .optional()?;
            let Some(attempt) = attempt else {
                return Ok(None);
            };
            let seq = next_seq(tx, &id)?;
            let event = events::start(&id, seq, attempt);
            insert_event(tx, &event)?;
            effects.publish.push(event);
            Ok(Some(Started { attempt, seq }))
        })
        .await
    }

    fn append_events(&self, events: Vec<StoredEvent>) -> Appended {
        let (written, appended) = Appended::new();
        let Some(first) = events.first() else {
            return appended;
        };
        let batch = EventBatch {
            execution: first.execution_id.clone(),
            bytes: events.iter().map(|e| e.data.len()).sum(),
            events,
            written,
        };
        self.shared.submit(Work::Events(batch));
        appended
    }

    async fn finish_execution(&self, id: &str, finish: Finish) -> anyhow::Result<()> {
        let id = id.to_owned();
        self.write_end(finish.alone, Some(id.clone()), move |tx, effects| {
            // A run awaiting approval has not finished: no finished_at yet.
            let (approval, expires_at) = finish.approval.clone().unzip();
            let finished_at = approval.is_none().then_some(finish.finished_at);
            let updated: Option<(String, Option<String>)> = tx
                .prepare_cached(
                    "UPDATE executions SET status = ?2, output = ?3, error = ?4, usage = ?5, \
                     finished_at = ?6, approval = COALESCE(?7, approval), approval_expires_at = ?8 \
                     WHERE id = ?1 AND status = 'running' AND attempts = ?9 RETURNING app, webhook",
                )?
                .query_row(
                    params![
                        id,
                        finish.status.as_str(),
                        finish.output,
                        finish.error,
                        finish.usage,
                        finished_at,
                        approval,
                        expires_at,
                        finish.attempt
                    ],
                    |row| Ok((row.get(0)?, row.get(1)?)),
                )
                .optional()?;
            let Some((app, webhook)) = updated else {
                anyhow::bail!(
                    "execution {id} is not running (as attempt {})",
                    finish.attempt
                );
            };
            // The outbox, in the transaction of the change it announces.
            effects.outbox |= sqlite_hooks::enqueue(
                tx,
                &id,
                &app,
                webhook.as_deref(),
                finish.status,
                finish.finished_at,
            )?;
            insert_event(tx, &finish.event)?;
            effects.publish.push(finish.event);
            Ok(())
        })
        .await
    }

    async fn insert_finished(&self, e: NewExecution, finish: Finish) -> anyhow::Result<()> {
        self.write_end(finish.alone, None, move |tx, effects| {
            let (approval, expires_at) = finish.approval.clone().unzip();
            let finished_at = approval.is_none().then_some(finish.finished_at);
            let start = events::start(&e.id, 1, 1);
            // A run that has ended keeps its two events in its row; one awaiting approval
            // gets more (the decision, the end), so its events are rows like any other's.
            let inline = finished_at.map(|_| format!("[{},{}]", start.data, finish.event.data));
            tx.prepare_cached(
                "INSERT INTO executions \
                 (id, app, version, action, status, inputs, view_token_hash, created_at, attempts, \
                  started_at, trigger_source, mcp_call, webhook, output, error, usage, finished_at, \
                  approval, approval_expires_at, inline_events, events_pruned) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, 1, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, \
                  ?17, ?18, ?19, 1)",
            )?
            .execute(params![
                e.id,
                e.app,
                e.version,
                e.action,
                finish.status.as_str(),
                e.inputs,
                e.view_token_hash,
                e.created_at,
                e.started_at,
                e.trigger_source.as_str(),
                e.mcp_call,
                e.webhook,
                finish.output,
                finish.error,
                finish.usage,
                finished_at,
                approval,
                expires_at,
                inline
            ])?;
            if inline.is_none() {
                insert_event(tx, &start)?;
                insert_event(tx, &finish.event)?;
            }
            effects.publish.push(start);
            effects.outbox |= sqlite_hooks::enqueue(
                tx,
                &e.id,
                &e.app,
                e.webhook.as_deref(),
                finish.status,
                finish.finished_at,
            )?;
            effects.publish.push(finish.event);
            Ok(())
        })
        .await
    }

    async fn cancel_queued(&self, id: &str, at: Millis) -> anyhow::Result<bool> {
        let id = id.to_owned();
        self.write(move |tx, effects| {
            cancel_queued_in(
                tx,
                effects,
                &id,
                at,
                "the execution was cancelled before it started",
            )
        })
        .await
    }

    async fn execution(&self, id: &str) -> anyhow::Result<Option<ExecutionRecord>> {
        let id = id.to_owned();
        self.read(move |conn| {
            Ok(conn
                .prepare_cached(&format!(
                    "SELECT {EXECUTION_COLUMNS} FROM executions WHERE id = ?1"
                ))?
                .query_row([id], execution_row)
                .optional()?)
        })
        .await
    }

    async fn unfinished_mcp_call(&self, key: &str) -> anyhow::Result<Option<String>> {
        let key = key.to_owned();
        self.read(move |conn| {
            Ok(conn
                .prepare_cached(
                    "SELECT id FROM executions WHERE mcp_call = ?1 \
                     AND status IN ('queued', 'running') ORDER BY n DESC LIMIT 1",
                )?
                .query_row([key], |row| row.get(0))
                .optional()?)
        })
        .await
    }

    async fn executions(&self, filter: ListExecutions) -> anyhow::Result<Vec<ExecutionSummary>> {
        self.read(move |conn| {
            let mut stmt = conn.prepare_cached(&format!(
                "SELECT {SUMMARY_COLUMNS} FROM executions WHERE {LIST_FILTER} ORDER BY n DESC LIMIT ?4"
            ))?;
            let rows = stmt.query_map(list_params(&filter)?, summary_row)?;
            Ok(rows.collect::<rusqlite::Result<_>>()?)
        })
        .await
    }

    async fn events_after(
        &self,
        id: &str,
        after: i64,
        limit: u32,
    ) -> anyhow::Result<Vec<StoredEvent>> {
        let id = id.to_owned();
        self.read(move |conn| {
            let mut stmt = conn.prepare_cached(
                "SELECT execution_id, seq, kind, data FROM events \
                 WHERE execution_id = ?1 AND seq > ?2 ORDER BY seq LIMIT ?3",
            )?;
            let rows: Vec<StoredEvent> = stmt
                .query_map(params![id, after, limit], event_row)?
                .collect::<rusqlite::Result<_>>()?;
            if !rows.is_empty() {
                return Ok(rows);
            }
            // None in `events`: an execution written once keeps its events in its row.
            let inline: Option<String> = conn
                .prepare_cached(
                    "SELECT inline_events FROM executions \
                     WHERE id = ?1 AND inline_events IS NOT NULL",
                )?
                .query_row([&id], |row| row.get(0))
                .optional()?;
            match inline {
                Some(inline) => inline_events(&id, &inline, after, limit),
                None => Ok(rows),
            }
        })
        .await
    }

    async fn versions(&self, slug: &str) -> anyhow::Result<Vec<VersionRecord>> {
        let slug = slug.to_owned();
        self.read(move |conn| {
            let mut stmt = conn.prepare_cached(&format!(
                "SELECT {VERSION_COLUMNS} FROM app_versions v WHERE v.slug = ?1 ORDER BY v.version"
            ))?;
            let rows = stmt.query_map([slug], version_row)?;
            Ok(rows.collect::<rusqlite::Result<_>>()?)
        })
        .await
    }

    async fn set_current(&self, slug: &str, version: i64) -> anyhow::Result<Option<AppRecord>> {
        let slug = slug.to_owned();
        self.write(move |tx, _| {
            let updated = tx.execute(
                "UPDATE apps SET current_version = ?2, updated_at = ?3 WHERE slug = ?1 \
                 AND EXISTS (SELECT 1 FROM app_versions WHERE slug = ?1 AND version = ?2)",
                params![slug, version, super::now_ms()],
            )?;
            if updated == 0 {
                return Ok(None);
            }
            Ok(app_query(tx, &slug)?)
        })
        .await
    }

    async fn stats(&self, slug: &str) -> anyhow::Result<AppStats> {
        let slug = slug.to_owned();
        self.read(move |conn| {
            let counts = conn
                .prepare_cached(
                    "SELECT status, COUNT(*) FROM executions WHERE app = ?1 GROUP BY status",
                )?
                .query_map([&slug], |row| {
                    let status: String = row.get(0)?;
                    Ok((status, row.get::<_, i64>(1)?))
                })?
                .filter_map(|row| match row {
                    Ok((status, n)) => status.parse().ok().map(|s| Ok((s, n))),
                    Err(e) => Some(Err(e)),
                })
                .collect::<rusqlite::Result<_>>()?;
            // The most recent 10,000 finished runs are plenty for percentiles.
            let durations_ms = conn
                .prepare_cached(
                    "SELECT finished_at - started_at FROM executions INDEXED BY executions_by_app \
                     WHERE app = ?1 AND finished_at IS NOT NULL AND started_at IS NOT NULL \
                     ORDER BY n DESC LIMIT 10000",
                )?
                .query_map([&slug], |row| row.get(0))?
                .collect::<rusqlite::Result<_>>()?;
            Ok(AppStats {
                counts,
                durations_ms,
            })
        })
        .await
    }

    async fn last_runs(&self) -> anyhow::Result<HashMap<String, Millis>> {
        self.read(|conn| {
            // One index lookup per app, not a scan of every execution.
            let mut stmt = conn.prepare_cached(
                "SELECT a.slug, (SELECT e.created_at FROM executions e INDEXED BY executions_by_app \
                 WHERE e.app = a.slug ORDER BY e.n DESC LIMIT 1) FROM apps a",
            )?;
            let rows = stmt.query_map([], |row| {
                Ok((row.get::<_, String>(0)?, row.get::<_, Option<Millis>>(1)?))
            })?;
            let mut last = HashMap::new();
            for row in rows {
                if let (slug, Some(at)) = row? {
                    last.insert(slug, at);
                }
            }
            Ok(last)
        })
        .await
    }

    async fn insert_token(&self, token: TokenRecord) -> anyhow::Result<()> {
        self.write(move |tx, _| {
            let apps = token.apps.as_ref().map(serde_json::to_string).transpose()?;
            tx.execute(
                "INSERT INTO tokens (id, name, secret_hash, role, apps, created_at, expires_at, revoked_at) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
                params![
                    token.id,
                    token.name,
                    token.secret_hash,
                    token.role,
                    apps,
                    token.created_at,
                    token.expires_at,
                    token.revoked_at
                ],
            )?;
            Ok(())
        })
        .await
    }

    async fn tokens(&self) -> anyhow::Result<Vec<TokenRecord>> {
        self.read(|conn| {
            let mut stmt = conn.prepare_cached(
                "SELECT id, name, secret_hash, role, apps, created_at, expires_at, revoked_at \
                 FROM tokens ORDER BY created_at, id",
            )?;
            let rows = stmt.query_map([], |row| {
                let apps: Option<String> = row.get(4)?;
                Ok((
                    TokenRecord {
                        id: row.get(0)?,
                        name: row.get(1)?,
                        secret_hash: row.get(2)?,
                        role: row.get(3)?,
                        apps: None,
                        created_at: row.get(5)?,
                        expires_at: row.get(6)?,
                        revoked_at: row.get(7)?,
                    },
                    apps,
                ))
            })?;
            let mut tokens = Vec::new();
            for row in rows {
                let (mut token, apps) = row?;
                token.apps = apps.map(|a| serde_json::from_str(&a)).transpose()?;
                tokens.push(token);
            }
            Ok(tokens)
        })
        .await
    }

    async fn revoke_token(&self, id: &str, at: Millis) -> anyhow::Result<bool> {
        let id = id.to_owned();
        self.write(move |tx, _| {
            Ok(tx.execute(
                "UPDATE tokens SET revoked_at = ?2 WHERE id = ?1 AND revoked_at IS NULL",
                params![id, at],
            )? > 0)
        })
        .await
    }

    async fn put_secret(&self, app: &str, secret: SecretRecord) -> anyhow::Result<()> {
        let app = app.to_owned();
        self.write(move |tx, _| {
            tx.execute(
                "INSERT INTO secrets (app, name, sealed, updated_at) VALUES (?1, ?2, ?3, ?4) \
                 ON CONFLICT (app, name) DO UPDATE SET sealed = excluded.sealed, \
                 updated_at = excluded.updated_at",
                params![app, secret.name, secret.sealed, secret.updated_at],
            )?;
            Ok(())
        })
        .await
    }

    async fn delete_secret(&self, app: &str, name: &str) -> anyhow::Result<bool> {
        let (app, name) = (app.to_owned(), name.to_owned());
        self.write(move |tx, _| {
            Ok(tx.execute(
                "DELETE FROM secrets WHERE app = ?1 AND name = ?2",
                params![app, name],
            )? > 0)
        })
        .await
    }

    async fn secrets(&self, app: &str) -> anyhow::Result<Vec<SecretRecord>> {
        let app = app.to_owned();
        self.read(move |conn| {
            let mut stmt = conn.prepare_cached(
                "SELECT name, sealed, updated_at FROM secrets WHERE app = ?1 ORDER BY name",
            )?;
            let rows = stmt.query_map([app], |row| {
                Ok(SecretRecord {
                    name: row.get(0)?,
                    sealed: row.get(1)?,
                    updated_at: row.get(2)?,
                })
            })?;
            Ok(rows.collect::<rusqlite::Result<_>>()?)
        })
        .await
    }

    async fn add_files(&self, files: Vec<FileRecord>) -> anyhow::Result<()> {
        self.write(move |tx, _| {
            let mut insert = tx.prepare_cached(
                "INSERT OR REPLACE INTO execution_files \
                 (execution_id, kind, name, size, sha256, content_type, created_at) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            )?;
            for f in &files {
                insert.execute(rusqlite::params![
                    f.execution_id,
                    f.kind.as_str(),
                    f.name,
                    f.size,
                    f.sha256,
                    f.content_type,
                    f.created_at
                ])?;
            }
            Ok(())
        })
        .await
    }

    async fn files(&self, execution_id: &str) -> anyhow::Result<Vec<FileRecord>> {
        let id = execution_id.to_owned();
        self.read(move |conn| {
            let mut stmt = conn.prepare_cached(
                "SELECT execution_id, kind, name, size, sha256, content_type, created_at \
                 FROM execution_files WHERE execution_id = ?1 ORDER BY kind, name",
            )?;
            let rows = stmt.query_map([id], |row| {
                let kind: String = row.get(1)?;
                Ok(FileRecord {
                    execution_id: row.get(0)?,
                    kind: if kind == "input" {
                        FileKind::Input
                    } else {
                        FileKind::Artifact
                    },
                    name: row.get(2)?,
                    size: row.get(3)?,
                    sha256: row.get(4)?,
                    content_type: row.get(5)?,
                    created_at: row.get(6)?,
                })
            })?;
            Ok(rows.collect::<rusqlite::Result<_>>()?)
        })
        .await
    }

    async fn expire_files(&self, created_before: Millis) -> anyhow::Result<Vec<String>> {
        self.write(move |tx, _| {
            let due: Vec<(String, String, String, String)> = tx
                .prepare_cached(
                    "SELECT execution_id, kind, name, sha256 FROM execution_files \
                     INDEXED BY execution_files_by_age WHERE created_at < ?1 LIMIT 500",
                )?
                .query_map([created_before], |row| {
                    Ok((row.get(0)?, row.get(1)?, row.get(2)?, row.get(3)?))
                })?
                .collect::<rusqlite::Result<_>>()?;
            let mut blobs = Vec::new();
            for (id, kind, name, sha256) in due {
                tx.prepare_cached(
                    "DELETE FROM execution_files WHERE execution_id = ?1 AND kind = ?2 AND name = ?3",
                )?
                .execute([&id, &kind, &name])?;
                if !blobs.contains(&sha256) {
                    blobs.push(sha256);
                }
            }
            // Only blobs no row names any more may go.
            let mut referenced =
                tx.prepare_cached("SELECT 1 FROM execution_files WHERE sha256 = ?1 LIMIT 1")?;
            let mut unreferenced = Vec::new();
            for sha256 in blobs {
                if !referenced.exists([&sha256])? {
                    unreferenced.push(sha256);
                }
            }
            Ok(unreferenced)
        })
        .await
    }

    async fn prune_events(&self, finished_before: Millis) -> anyhow::Result<usize> {
        self.write(move |tx, _| {
            let due: Vec<String> = tx
                .prepare_cached(
                    "SELECT id FROM executions INDEXED BY executions_to_prune \
                     WHERE events_pruned = 0 AND finished_at IS NOT NULL AND finished_at < ?1 \
                     ORDER BY finished_at LIMIT 500",
                )?
                .query_map([finished_before], |row| row.get(0))?
                .collect::<rusqlite::Result<_>>()?;
            let (mut deleted, mut done) = (0, 0);
            for id in due {
                done += 1;
                deleted += tx
                    .prepare_cached(
                        "DELETE FROM events WHERE execution_id = ?1 AND kind NOT IN ('end', 'error')",
                    )?
                    .execute([&id])?;
                tx.prepare_cached("UPDATE executions SET events_pruned = 1 WHERE id = ?1")?
                    .execute([&id])?;
                if deleted >= PRUNE_EVENTS_PER_WRITE {
                    break;
                }
            }
            Ok(done)
        })
        .await
    }

    async fn recover(&self, at: Millis) -> anyhow::Result<Recovery> {
        self.write(move |tx, effects| {
            let mut recovery = Recovery::default();
            let running: Vec<(String, i64)> = tx
                .prepare(
                    "SELECT id, attempts FROM executions WHERE status = 'running' \
                     AND finished_at IS NULL ORDER BY n",
                )?
                .query_map([], |row| Ok((row.get(0)?, row.get(1)?)))?
                .collect::<rusqlite::Result<_>>()?;
            for (id, attempts) in running {
                let seq = next_seq(tx, &id)?;
                match takeback::taken_back(&id, seq, attempts, Stopped::Server) {
                    TakenBack::Retry(event) => {
                        tx.execute(
                            "UPDATE executions SET status = 'queued' WHERE id = ?1",
                            [&id],
                        )?;
                        insert_event(tx, &event)?;
                        recovery.retried.push(id);
                    }
                    TakenBack::Fail(error, event) => {
                        let (app, webhook): (String, Option<String>) = tx.query_row(
                            "UPDATE executions SET status = 'failed', error = ?2, finished_at = ?3 \
                             WHERE id = ?1 RETURNING app, webhook",
                            params![id, serde_json::to_string(&error)?, at],
                            |row| Ok((row.get(0)?, row.get(1)?)),
                        )?;
                        effects.outbox |= sqlite_hooks::enqueue(
                            tx,
                            &id,
                            &app,
                            webhook.as_deref(),
                            ExecStatus::Failed,
                            at,
                        )?;
                        insert_event(tx, &event)?;
                        recovery.failed.push(id);
                    }
                }
            }
            recovery.queued = tx
                .prepare(
                    "SELECT id FROM executions WHERE status = 'queued' AND finished_at IS NULL \
                     ORDER BY n",
                )?
                .query_map([], |row| row.get(0))?
                .collect::<rusqlite::Result<_>>()?;
            effects.open.extend(recovery.queued.iter().cloned());
            // Those awaiting a decision are unfinished too: their followers wait for it.
            let awaiting: Vec<String> = tx
                .prepare(
                    "SELECT id FROM executions WHERE status = 'awaiting_approval' \
                     AND finished_at IS NULL",
                )?
                .query_map([], |row| row.get(0))?
                .collect::<rusqlite::Result<_>>()?;
            effects.open.extend(awaiting);
            Ok(recovery)
        })
        .await
    }

    async fn set_paused(&self, slug: &str, paused: bool) -> anyhow::Result<Option<AppRecord>> {
        let slug = slug.to_owned();
        self.write(move |tx, _| {
            tx.execute(
                "UPDATE apps SET paused = ?2 WHERE slug = ?1",
                params![slug, paused],
            )?;
            Ok(app_query(tx, &slug)?)
        })
        .await
    }

    async fn set_public(&self, slug: &str, public: bool) -> anyhow::Result<Option<AppRecord>> {
        let slug = slug.to_owned();
        self.write(move |tx, _| {
            tx.execute(
                "UPDATE apps SET public = ?2 WHERE slug = ?1",
                params![slug, public],
            )?;
            Ok(app_query(tx, &slug)?)
        })
        .await
    }

    async fn export(&self, filter: ListExecutions) -> anyhow::Result<Vec<ExportedExecution>> {
        self.read(move |conn| {
            let mut stmt = conn.prepare_cached(&format!(
                "SELECT {SUMMARY_COLUMNS}, output FROM executions WHERE {LIST_FILTER} \
                 ORDER BY n DESC LIMIT ?4"
            ))?;
            let rows = stmt.query_map(list_params(&filter)?, |row| {
                Ok(ExportedExecution {
                    summary: summary_row(row)?,
                    output: row.get(13)?,
                })
            })?;
            Ok(rows.collect::<rusqlite::Result<_>>()?)
        })
        .await
    }

    async fn timeseries(&self, app: &str, since: Millis) -> anyhow::Result<Vec<TimedExecution>> {
        let app = app.to_owned();
        self.read(move |conn| {
            let mut stmt = conn.prepare_cached(
                "SELECT created_at, status, finished_at - started_at FROM executions \
                 INDEXED BY executions_by_app_created WHERE app = ?1 AND created_at >= ?2",
            )?;
            let rows = stmt.query_map(params![app, since], |row| {
                Ok(TimedExecution {
                    created_at: row.get(0)?,
                    status: status_column(row, 1)?,
                    duration_ms: row.get(2)?,
                })
            })?;
            Ok(rows.collect::<rusqlite::Result<_>>()?)
        })
        .await
    }

    async fn decide(
        &self,
        id: &str,
        decision: Decision,
        note: DecisionNote,
        at: Millis,
    ) -> anyhow::Result<Decided> {
        let id = id.to_owned();
        // After the execution's own pending events, like its end.
        self.write_after(Some(id.clone()), move |tx, effects| {
            sqlite_approvals::decide(tx, effects, &id, decision, &note, at)
        })
        .await
    }

    async fn pending_approvals(
        &self,
        filter: ListApprovals,
    ) -> anyhow::Result<Vec<ExecutionRecord>> {
        self.read(move |conn| sqlite_approvals::pending(conn, &filter))
            .await
    }

    async fn pending_approval_count(&self, apps: Option<Vec<String>>) -> anyhow::Result<i64> {
        self.read(move |conn| sqlite_approvals::pending_count(conn, apps.as_deref()))
            .await
    }

    async fn expire_approvals(&self, now: Millis) -> anyhow::Result<Vec<String>> {
        // Asked every second: look first, so a store with nothing due gets no write.
        let due = self
            .read(move |conn| {
                Ok(conn
                    .prepare_cached(
                        "SELECT 1 FROM executions INDEXED BY executions_awaiting \
                         WHERE status = 'awaiting_approval' AND approval_expires_at <= ?1",
                    )?
                    .exists([now])?)
            })
            .await?;
        if !due {
            return Ok(Vec::new());
        }
        self.write(move |tx, effects| sqlite_approvals::expire(tx, effects, now))
            .await
    }

    async fn insert_trigger(&self, trigger: TriggerRecord) -> anyhow::Result<()> {
        self.write(move |tx, _| sqlite_hooks::insert_trigger(tx, &trigger))
            .await
    }

    async fn trigger(&self, id: &str) -> anyhow::Result<Option<TriggerRecord>> {
        let id = id.to_owned();
        self.read(move |conn| sqlite_hooks::trigger(conn, &id))
            .await
    }

    async fn triggers(&self, app: &str) -> anyhow::Result<Vec<TriggerRecord>> {
        let app = app.to_owned();
        self.read(move |conn| sqlite_hooks::triggers(conn, &app))
            .await
    }

    async fn rotate_trigger(
        &self,
        app: &str,
        id: &str,
        secret: Vec<u8>,
        at: Millis,
    ) -> anyhow::Result<bool> {
        let (app, id) = (app.to_owned(), id.to_owned());
        self.write(move |tx, _| sqlite_hooks::rotate_trigger(tx, &app, &id, &secret, at))
            .await
    }

    async fn delete_trigger(&self, app: &str, id: &str) -> anyhow::Result<bool> {
        let (app, id) = (app.to_owned(), id.to_owned());
        self.write(move |tx, _| sqlite_hooks::delete_trigger(tx, &app, &id))
            .await
    }

    async fn insert_schedule(&self, schedule: ScheduleRecord) -> anyhow::Result<()> {
        self.write(move |tx, _| sqlite_hooks::insert_schedule(tx, &schedule))
            .await
    }

    async fn schedules(&self, app: &str) -> anyhow::Result<Vec<ScheduleRecord>> {
        let app = app.to_owned();
        self.read(move |conn| sqlite_hooks::schedules(conn, &app))
            .await
    }

    async fn due_schedules(&self, before: Millis) -> anyhow::Result<Vec<ScheduleRecord>> {
        self.read(move |conn| sqlite_hooks::due_schedules(conn, before))
            .await
    }

    async fn set_schedule_paused(
        &self,
        app: &str,
        id: &str,
        paused: bool,
        next_tick: Millis,
    ) -> anyhow::Result<bool> {
        let (app, id) = (app.to_owned(), id.to_owned());
        self.write(move |tx, _| sqlite_hooks::set_schedule_paused(tx, &app, &id, paused, next_tick))
            .await
    }

    async fn delete_schedule(&self, app: &str, id: &str) -> anyhow::Result<bool> {
        let (app, id) = (app.to_owned(), id.to_owned());
        self.write(move |tx, _| sqlite_hooks::delete_schedule(tx, &app, &id))
            .await
    }

    async fn skip_tick(&self, claim: TickClaim, error: String) -> anyhow::Result<bool> {
        self.write(move |tx, _| sqlite_hooks::skip_tick(tx, &claim, &error))
            .await
    }

    async fn insert_subscription(&self, subscription: SubscriptionRecord) -> anyhow::Result<()> {
        self.write(move |tx, _| sqlite_hooks::insert_subscription(tx, &subscription))
            .await
    }

    async fn subscriptions(&self, app: &str) -> anyhow::Result<Vec<SubscriptionRecord>> {
        let app = app.to_owned();
        self.read(move |conn| sqlite_hooks::subscriptions(conn, &app))
            .await
    }

    async fn delete_subscription(&self, app: &str, id: &str) -> anyhow::Result<bool> {
        let (app, id) = (app.to_owned(), id.to_owned());
        self.write(move |tx, _| sqlite_hooks::delete_subscription(tx, &app, &id))
            .await
    }

    async fn run_webhook_secret(
        &self,
        app: &str,
        new: Vec<u8>,
        at: Millis,
    ) -> anyhow::Result<Vec<u8>> {
        let app = app.to_owned();
        self.write(move |tx, _| sqlite_hooks::run_webhook_secret(tx, &app, &new, at))
            .await
    }

    async fn claim_deliveries(
        &self,
        now: Millis,
        hold_until: Millis,
        limit: u32,
    ) -> anyhow::Result<Vec<DueDelivery>> {
        self.write(move |tx, _| sqlite_hooks::claim_deliveries(tx, now, hold_until, limit))
            .await
    }

    async fn record_attempts(
        &self,
        attempts: Vec<(AttemptRecord, AfterAttempt)>,
    ) -> anyhow::Result<()> {
        self.write(move |tx, _| {
            for (attempt, next) in &attempts {
                sqlite_hooks::record_attempt(tx, attempt, *next)?;
            }
            Ok(())
        })
        .await
    }

    async fn deliveries(
        &self,
        subscription_id: &str,
        before: Option<String>,
        limit: u32,
    ) -> anyhow::Result<Vec<DeliveryHistory>> {
        let subscription_id = subscription_id.to_owned();
        self.read(move |conn| {
            sqlite_hooks::deliveries(conn, &subscription_id, before.as_deref(), limit)
        })
        .await
    }

    async fn prune_outbox(
        &self,
        deliveries_before: Option<Millis>,
        ticks_before: Millis,
    ) -> anyhow::Result<usize> {
        self.write(move |tx, _| sqlite_hooks::prune(tx, deliveries_before, ticks_before))
            .await
    }

    async fn next_delivery_at(&self) -> anyhow::Result<Option<Millis>> {
        self.read(|conn| {
            // A change still in the outbox is due now (its row's time is in the past).
            Ok(conn
                .prepare_cached(
                    "SELECT MIN(at) FROM (SELECT (SELECT at FROM outbox ORDER BY n LIMIT 1) AS at \
                     UNION ALL SELECT MIN(next_attempt_at) FROM deliveries \
                     INDEXED BY deliveries_due WHERE state = 'pending')",
                )?
                .query_row([], |row| row.get(0))?)
        })
        .await
    }

    fn outbox_signal(&self) -> Arc<tokio::sync::Notify> {
        self.outbox.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::now_ms;

    #[tokio::test]
    async fn a_lone_end_commits_the_events_queued_before_it_first() {
        let dir = std::env::temp_dir().join(format!("floom-sqlite-lone-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let store = SqliteStore::open(&dir.join("floom.db"), Arc::default()).unwrap();
        let id = "exec_lone";
        let execution = NewExecution {
            id: id.into(),
            app: "app".into(),
            version: 1,
            action: "run".into(),
            inputs: "{}".into(),
            view_token_hash: "0".repeat(64),
            created_at: now_ms(),
            started_at: Some(now_ms()),
            trigger_source: TriggerSource::Api,
            mcp_call: None,
            webhook: None,
            tick: None,
        };
        store.insert_execution(execution, None).await.unwrap();
        // Once the writer thread sleeps, work queued without ringing stays where it is
        // (it drains the inbox only when rung): only the end's own round below can take
        // it, and it must write it before the end.
        let started = std::time::Instant::now();
        while !locked(&store.shared.inbox).asleep {
            assert!(
                started.elapsed().as_secs() < 10,
                "the writer thread never slept"
            );
            tokio::time::sleep(std::time::Duration::from_millis(1)).await;
        }
        let chunk = StoredEvent {
            execution_id: id.into(),
            seq: 2,
            kind: "chunk".into(),
            data: r#"{"type":"chunk","data":"x"}"#.into(),
        };
        let (written, appended) = Appended::new();
        locked(&store.shared.inbox)
            .work
            .push(Work::Events(EventBatch {
                execution: id.into(),
                bytes: chunk.data.len(),
                events: vec![chunk],
                written,
            }));
        let finish = Finish {
            status: ExecStatus::Succeeded,
            output: Some("{}".into()),
            error: None,
            usage: None,
            finished_at: now_ms(),
            event: events::end(id, 3, None, 1.0),
            approval: None,
            attempt: 1,
            alone: true,
        };
        store.finish_execution(id, finish).await.unwrap();
        let written = std::time::Duration::from_secs(10);
        tokio::time::timeout(written, appended.written())
            .await
            .expect("the queued events were written");
        assert!(
            !locked(&store.shared.inbox).rung,
            "the writer thread was not needed"
        );
        let kinds: Vec<_> = store
            .events_after(id, 0, 10)
            .await
            .unwrap()
            .into_iter()
            .map(|e| (e.seq, e.kind))
            .collect();
        assert_eq!(
            kinds,
            [(1, "start".into()), (2, "chunk".into()), (3, "end".into())]
        );
        drop(store);
        let _ = std::fs::remove_dir_all(dir);
    }
}
