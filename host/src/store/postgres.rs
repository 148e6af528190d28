//! [`Store`] on PostgreSQL, for several hosts on one database (SPEC section 13).
//!
//! Every write is a transaction of its own on a pooled connection: PostgreSQL's row
//! locks order concurrent writers (on this host and on others) and its WAL groups their
//! commits, so there is no writer thread here. Where SQLite's single writer made an
//! operation atomic by construction, a row lock does here (`FOR UPDATE`, a guarded
//! `UPDATE ... WHERE status = ...`, or a transaction-scoped advisory lock on a key that
//! has no row yet: a slug being published, an idempotency key).
//!
//! Streamed events queue per execution ([`Lanes`]): one task at a time writes an
//! execution's waiting batches in one statement, and the execution's end takes its
//! lane, so it is written after every event queued before it. Committed events are then
//! published to this host's live subscribers.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context as _;
use async_trait::async_trait;
use deadpool_postgres::{GenericClient, Pool, Transaction};
use floom_runtime::{ErrorCode, RunError};
use tokio_postgres::Row;
use tokio_postgres::types::ToSql;

use super::takeback::{self, Stopped, TakenBack};
use super::{
    AfterAttempt, AppRecord, AppStats, Appended, AttemptRecord, Decided, Decision, DecisionNote,
    DeletedApp, DeliveryHistory, DueDelivery, ExecStatus, ExecutionRecord, ExecutionSummary,
    ExportedExecution, FileKind, FileRecord, Finish, IDEMPOTENCY_WINDOW_MS, IdempotencyKey,
    Inserted, ListApprovals, ListExecutions, Millis, NewExecution, NewVersion, NotPurgeable,
    Published, Recovery, ScheduleRecord, SecretRecord, SlugRetired, Started, StepRun, Store,
    StoredEvent, SubscriptionRecord, TickClaim, TimedExecution, TokenRecord, TriggerRecord,
    TriggerSource, VersionRecord, pg_approvals, pg_hooks,
};
use crate::events;
use crate::live::Live;

/// The schema, one file per step, applied in order; `floom_migrations` records which ran.
const MIGRATIONS: &[&str] = &[
    include_str!("pg_migrations/0001_schema.sql"),
    include_str!("pg_migrations/0002_leases.sql"),
];

/// How long a host's hold on a running execution lasts unless renewed (see
/// [`Store::renew_leases`]), unless set with [`PgStore::open_with`].
pub const DEFAULT_LEASE: Duration = Duration::from_secs(10);

/// How often the database's health is checked, how long a check may take, and how many
/// must go unanswered in a row before the host calls the database lost: a slow moment
/// under load is not an outage.
const HEALTH_CHECK: Duration = Duration::from_secs(1);
const HEALTH_TIMEOUT: Duration = Duration::from_secs(5);
const HEALTH_FAILURES: u32 = 3;

/// The channels hosts notify each other on: an execution was queued (an idle host may
/// claim it), and executions got events (their followers on other hosts read them).
const QUEUED_CHANNEL: &str = "floom_queued";
const EVENTS_CHANNEL: &str = "floom_events";
/// The longest `NOTIFY` payload PostgreSQL takes is 8000 bytes; ids are joined below it.
const NOTIFY_PAYLOAD: usize = 7900;

/// The advisory lock that hosts starting at once take around migrations: one migrates,
/// the others wait, then find nothing left to do.
const MIGRATION_LOCK: i64 = 0x666c_6f6f_6d00_0001;

/// Events one pruning write deletes at most (beyond finishing the execution it is on).
const PRUNE_EVENTS_PER_WRITE: u64 = 20_000;

/// Connections kept in the pool.
const POOL_SIZE: usize = 32;

/// The PostgreSQL store (cheap to clone: the clones share everything).
#[derive(Clone)]
pub struct PgStore {
    pool: Pool,
    live: Arc<Live>,
    lanes: Arc<Lanes>,
    outbox: Arc<tokio::sync::Notify>,
    queued: Arc<tokio::sync::Notify>,
    /// Where event writes are spawned ([`Store::append_events`] is not async).
    runtime: tokio::runtime::Handle,
    /// This host's name on its leases and notifications (unique per process).
    host: Arc<str>,
    /// Milliseconds a lease lasts unless renewed.
    lease_ms: Millis,
    /// Whether the database answered the last health check.
    reachable: Arc<std::sync::atomic::AtomicBool>,
    /// Executions of one app that may run at once, across the hosts.
    per_app: i64,
}

/// How a host uses the shared database.
#[derive(Debug, Clone)]
pub struct PgOptions {
    /// This host's name on its leases: the same across its restarts (so a host that
    /// restarts takes its own runs back at once), different from every other host's.
    pub host: String,
    /// How long a lease lasts unless renewed (the caller renews well within it).
    pub lease: Duration,
    /// Executions of one app that may run at once, across the hosts.
    pub max_runs_per_app: usize,
}

/// What a committed transaction does next: open live channels and publish events.
#[derive(Default)]
pub(super) struct Effects {
    pub(super) open: Vec<String>,
    pub(super) publish: Vec<StoredEvent>,
    /// Changes were added to the outbox.
    pub(super) outbox: bool,
    /// Executions were queued (or put back in the queue): other hosts may claim them.
    pub(super) queued: bool,
}

impl PgStore {
    /// Connects to the database at `url` (`postgres://user:password@host:port/db`) and
    /// brings its schema up to date, with leases of [`DEFAULT_LEASE`]. Committed events
    /// are published to `live`, this host's and (through notifications) other hosts'.
    pub async fn open(url: &str, live: Arc<Live>) -> anyhow::Result<Self> {
        let options = PgOptions {
            host: format!("host_{}", uuid::Uuid::now_v7().simple()),
            lease: DEFAULT_LEASE,
            max_runs_per_app: usize::MAX,
        };
        Self::open_with(url, live, options).await
    }

    /// Like [`Self::open`], as `options` say.
    pub async fn open_with(url: &str, live: Arc<Live>, options: PgOptions) -> anyhow::Result<Self> {
        let PgOptions {
            host,
            lease,
            max_runs_per_app,
        } = options;
        let config: tokio_postgres::Config = url
            .parse()
            .with_context(|| "the database URL is not a PostgreSQL connection string")?;
        let manager = deadpool_postgres::Manager::from_config(
            config,
            tokio_postgres::NoTls,
            deadpool_postgres::ManagerConfig {
                recycling_method: deadpool_postgres::RecyclingMethod::Fast,
            },
        );
        let pool = Pool::builder(manager)
            .max_size(POOL_SIZE)
            .wait_timeout(Some(Duration::from_secs(30)))
            .create_timeout(Some(Duration::from_secs(10)))
            .runtime(deadpool_postgres::Runtime::Tokio1)
            .build()
            .context("cannot make the database pool")?;
        let mut client = pool.get().await.context("cannot connect to the database")?;
        migrate(&mut client).await?;
        let store = PgStore {
            pool,
            live,
            lanes: Arc::default(),
            outbox: Arc::new(tokio::sync::Notify::new()),
            queued: Arc::new(tokio::sync::Notify::new()),
            runtime: tokio::runtime::Handle::current(),
            host: host.into(),
            lease_ms: Millis::try_from(lease.as_millis()).unwrap_or(Millis::MAX),
            reachable: Arc::new(std::sync::atomic::AtomicBool::new(true)),
            per_app: i64::try_from(max_runs_per_app).unwrap_or(i64::MAX),
        };
        tokio::spawn(store.clone().listen(url.to_owned()));
        tokio::spawn(store.clone().check_health(url.to_owned()));
        Ok(store)
    }

    /// The connection pool, for what keeps its own tables beside the store (the blobs
    /// every host reaches).
    pub fn pool(&self) -> &Pool {
        &self.pool
    }

    /// A pooled connection.
    async fn db(&self) -> anyhow::Result<deadpool_postgres::Object> {
        self.pool
            .get()
            .await
            .context("cannot get a database connection")
    }

    /// What a committed transaction's effects do: live channels and the outbox's
    /// notifier.
    fn committed(&self, effects: Effects) {
        for id in effects.open {
            self.live.open(&id);
        }
        for event in effects.publish {
            self.live.publish(event);
        }
        if effects.outbox {
            self.outbox.notify_one();
        }
    }

    /// Tells other hosts, within `tx` (so only if it commits), what it changes: which
    /// executions got events, and whether any was queued.
    async fn announce(
        &self,
        tx: &Transaction<'_>,
        effects: &Effects,
        events: &[&StoredEvent],
    ) -> anyhow::Result<()> {
        if effects.queued {
            execute(tx, "SELECT pg_notify($1, '')", &[&QUEUED_CHANNEL]).await?;
        }
        let mut ids: Vec<&str> = effects
            .publish
            .iter()
            .chain(events.iter().copied())
            .map(|e| e.execution_id.as_str())
            .collect();
        ids.sort_unstable();
        ids.dedup();
        let mut payload = String::new();
        for id in ids {
            if payload.len() + id.len() + self.host.len() + 2 > NOTIFY_PAYLOAD {
                self.notify_events(tx, &payload).await?;
                payload.clear();
            }
            payload.push_str(if payload.is_empty() { "" } else { "," });
            payload.push_str(id);
        }
        if !payload.is_empty() {
            self.notify_events(tx, &payload).await?;
        }
        Ok(())
    }

    async fn notify_events(&self, tx: &Transaction<'_>, ids: &str) -> anyhow::Result<()> {
        let payload = format!("{} {ids}", self.host);
        execute(tx, "SELECT pg_notify($1, $2)", &[&EVENTS_CHANNEL, &payload]).await?;
        Ok(())
    }

    /// Listens to other hosts' notifications for as long as the store lives, connecting
    /// again after a failure. After each (re)connection it reads what every followed
    /// execution got meanwhile: a lost notification costs latency, never an event.
    async fn listen(self, url: String) {
        let mut delay = Duration::from_millis(100);
        loop {
            match self.listen_once(&url).await {
                Ok(()) => delay = Duration::from_millis(100),
                Err(e) => {
                    tracing::warn!(
                        "database notifications stopped, reconnecting in {delay:?}: {e:#}"
                    );
                    delay = (delay * 2).min(Duration::from_secs(5));
                }
            }
            if self.pool.is_closed() {
                return;
            }
            tokio::time::sleep(delay).await;
        }
    }

    async fn listen_once(&self, url: &str) -> anyhow::Result<()> {
        use futures_util::StreamExt as _;
        let (client, mut connection) = tokio_postgres::connect(url, tokio_postgres::NoTls).await?;
        let (tx, mut notifications) = tokio::sync::mpsc::unbounded_channel();
        let pump = tokio::spawn(async move {
            let mut messages = futures_util::stream::poll_fn(move |cx| connection.poll_message(cx));
            while let Some(message) = messages.next().await {
                match message {
                    Ok(tokio_postgres::AsyncMessage::Notification(n)) => {
                        if tx.send(n).is_err() {
                            break;
                        }
                    }
                    Ok(_) => {}
                    Err(e) => return Err(e),
                }
            }
            Ok(())
        });
        client
            .batch_execute(&format!("LISTEN {QUEUED_CHANNEL}; LISTEN {EVENTS_CHANNEL}"))
            .await?;
        // Whatever was missed while not listening.
        self.queued.notify_one();
        self.catch_up(self.live.followed()).await;
        while let Some(notification) = notifications.recv().await {
            if notification.channel() == QUEUED_CHANNEL {
                self.queued.notify_one();
                continue;
            }
            let Some((host, ids)) = notification.payload().split_once(' ') else {
                continue;
            };
            if host == &*self.host {
                continue;
            }
            let followed: Vec<(String, i64)> = ids
                .split(',')
                .filter_map(|id| Some((id.to_owned(), self.live.last_seq(id)?)))
                .collect();
            self.catch_up(followed).await;
        }
        drop(client);
        pump.await??;
        Ok(())
    }

    /// Publishes to this host's followers what other hosts stored for executions they
    /// follow, after the last sequence number each saw.
    async fn catch_up(&self, followed: Vec<(String, i64)>) {
        for (id, last) in followed {
            match self.events_after(&id, last, 1000).await {
                Ok(events) => {
                    for event in events {
                        self.live.publish(event);
                    }
                }
                Err(e) => {
                    tracing::warn!(execution = %id, "cannot read another host's events: {e:#}")
                }
            }
        }
    }

    /// Asks the database a trivial question every [`HEALTH_CHECK`], for as long as the
    /// store lives, on a connection of its own (a busy pool is not a lost database), and
    /// keeps the answer for [`Store::reachable`]: unreachable after [`HEALTH_FAILURES`]
    /// checks in a row went unanswered, reachable again at the first answer.
    async fn check_health(self, url: String) {
        use std::sync::atomic::Ordering;
        let mut tick = tokio::time::interval(HEALTH_CHECK);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut client: Option<tokio_postgres::Client> = None;
        let mut failures = 0;
        while !self.pool.is_closed() {
            tick.tick().await;
            let answered = tokio::time::timeout(HEALTH_TIMEOUT, async {
                if client
                    .as_ref()
                    .is_none_or(tokio_postgres::Client::is_closed)
                {
                    let (new, connection) =
                        tokio_postgres::connect(&url, tokio_postgres::NoTls).await?;
                    tokio::spawn(connection);
                    client = Some(new);
                }
                match &client {
                    Some(client) => client.simple_query("SELECT 1").await.map(drop),
                    None => Ok(()),
                }
            })
            .await
            .is_ok_and(|answer| answer.is_ok());
            failures = if answered { 0 } else { failures + 1 };
            if failures > 0 {
                // A connection that failed a check is not trusted with the next one.
                client = None;
            }
            let reachable = failures < HEALTH_FAILURES;
            let was = self.reachable.swap(reachable, Ordering::AcqRel);
            match (was, reachable) {
                (true, false) => {
                    tracing::error!("the database does not answer: refusing requests until it does")
                }
                (false, true) => tracing::warn!("the database answers again"),
                _ => {}
            }
        }
    }

    /// Whether `app` may start one more run across the hosts. Starts of one app take
    /// turns on a transaction-scoped lock, so two hosts cannot both take its last place.
    async fn below_cap(&self, tx: &Transaction<'_>, app: &str) -> anyhow::Result<bool> {
        if self.per_app == i64::MAX {
            return Ok(true);
        }
        lock_apps(tx, &[app]).await?;
        self.running_below(tx, app, self.per_app).await
    }

    /// Whether fewer than `cap` runs of `app` are running (its lock held).
    async fn running_below(
        &self,
        tx: &Transaction<'_>,
        app: &str,
        cap: i64,
    ) -> anyhow::Result<bool> {
        let running: i64 = query_one(
            tx,
            "SELECT COUNT(*) FROM executions WHERE app = $1 AND status = 'running'",
            &[&app],
        )
        .await?
        .try_get(0)?;
        Ok(running < cap)
    }

    /// Puts back in the queue (or fails, on their second attempt) the running
    /// executions whose lease ran out before `now`, and with `own` those this host held
    /// before it restarted (they cannot be running any more).
    async fn take_back(&self, now: Millis, own: bool) -> anyhow::Result<Recovery> {
        self.write(async |tx, effects| {
            let mut recovery = Recovery::default();
            // Held by a host that stopped renewing (or by none: started before leases).
            // At a restart, this host's own rows may still be locked by the backend of
            // the process that died (until PostgreSQL notices): wait for them rather
            // than skip them. Other hosts' are skipped: a live one may hold them.
            let expired = if own {
                query(
                    tx,
                    "SELECT id, attempts, lease_owner IS NOT DISTINCT FROM $2 FROM executions \
                     WHERE status = 'running' \
                     AND (lease_until IS NULL OR lease_until < $1 OR lease_owner = $2) \
                     ORDER BY n FOR UPDATE",
                    &[&now, &&*self.host],
                )
                .await?
            } else {
                query(
                    tx,
                    "SELECT id, attempts, FALSE FROM executions WHERE status = 'running' \
                     AND (lease_until IS NULL OR lease_until < $1) \
                     ORDER BY n LIMIT 500 FOR UPDATE SKIP LOCKED",
                    &[&now],
                )
                .await?
            };
            for row in expired {
                let (id, attempts): (String, i64) = (row.try_get(0)?, row.try_get(1)?);
                let seq = next_seq(tx, &id).await?;
                // This host's own runs, at its restart; or another host's, whose lease ran out.
                let stopped = if row.try_get(2)? {
                    Stopped::Server
                } else {
                    Stopped::Host
                };
                match takeback::taken_back(&id, seq, attempts, stopped) {
                    TakenBack::Retry(event) => {
                        execute(
                            tx,
                            "UPDATE executions SET status = 'queued', lease_owner = NULL, \
                             lease_until = NULL WHERE id = $1",
                            &[&id],
                        )
                        .await?;
                        insert_event(tx, &event).await?;
                        effects.publish.push(event);
                        effects.queued = true;
                        recovery.retried.push(id);
                    }
                    TakenBack::Fail(error, event) => {
                        let row = query_one(
                            tx,
                            "UPDATE executions SET status = 'failed', error = $2, finished_at = $3, \
                             lease_owner = NULL, lease_until = NULL WHERE id = $1 RETURNING app, webhook",
                            &[&id, &serde_json::to_string(&error)?, &now],
                        )
                        .await?;
                        let (app, webhook): (String, Option<String>) =
                            (row.try_get(0)?, row.try_get(1)?);
                        effects.outbox |= pg_hooks::enqueue(
                            tx,
                            &id,
                            &app,
                            webhook.as_deref(),
                            ExecStatus::Failed,
                            now,
                        )
                        .await?;
                        insert_event(tx, &event).await?;
                        effects.publish.push(event);
                        recovery.failed.push(id);
                    }
                }
            }
            Ok(recovery)
        })
        .await
    }

    /// The lease a start here takes: held by this host until `at` plus a lease.
    fn lease_until(&self, at: Millis) -> Millis {
        at.saturating_add(self.lease_ms)
    }
}

/// Connects to `url` and applies the migrations it has not had; returns the schema
/// version it is at.
pub async fn migrate_url(url: &str) -> anyhow::Result<i64> {
    let (mut client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .context("cannot connect to the database")?;
    let connection = tokio::spawn(connection);
    let tx = client.transaction().await?;
    let version = migrate_in(&tx).await?;
    tx.commit().await?;
    drop(client);
    let _ = connection.await;
    Ok(version)
}

async fn migrate(client: &mut deadpool_postgres::Object) -> anyhow::Result<()> {
    let tx = client.transaction().await?;
    migrate_in(&tx).await?;
    tx.commit().await?;
    Ok(())
}

/// Applies the migrations not yet applied, in `tx`; returns the schema version.
async fn migrate_in(tx: &tokio_postgres::Transaction<'_>) -> anyhow::Result<i64> {
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])
        .await?;
    tx.batch_execute(
        "CREATE TABLE IF NOT EXISTS floom_migrations (version BIGINT PRIMARY KEY, applied_at BIGINT NOT NULL)",
    )
    .await?;
    let done: i64 = tx
        .query_one(
            "SELECT COALESCE(MAX(version), 0) FROM floom_migrations",
            &[],
        )
        .await?
        .try_get(0)?;
    for (i, sql) in MIGRATIONS
        .iter()
        .enumerate()
        .skip(usize::try_from(done).unwrap_or(0))
    {
        let version = i64::try_from(i + 1)?;
        tx.batch_execute(sql)
            .await
            .with_context(|| format!("migration {version} failed"))?;
        tx.execute(
            "INSERT INTO floom_migrations (version, applied_at) VALUES ($1, $2)",
            &[&version, &super::now_ms()],
        )
        .await?;
    }
    Ok(i64::try_from(MIGRATIONS.len())?.max(done))
}

/// Takes the start locks of `apps` for the rest of the transaction, in one order, so
/// transactions taking several cannot wait on each other in a circle. (A start takes its
/// execution's row first, then its app's lock.)
async fn lock_apps(tx: &Transaction<'_>, apps: &[&str]) -> anyhow::Result<()> {
    let mut apps = apps.to_vec();
    apps.sort_unstable();
    apps.dedup();
    for app in apps {
        execute(
            tx,
            "SELECT pg_advisory_xact_lock(hashtext('run:' || $1))",
            &[&app],
        )
        .await?;
    }
    Ok(())
}

/// Parameters of a statement.
pub(super) type Params<'a> = [&'a (dyn ToSql + Sync)];

/// Runs `sql` (prepared once per connection) and returns its rows.
pub(super) async fn query(
    db: &impl GenericClient,
    sql: &str,
    params: &Params<'_>,
) -> anyhow::Result<Vec<Row>> {
    let statement = db.prepare_cached(sql).await?;
    Ok(db.query(&statement, params).await?)
}

/// Runs `sql` and returns its row, if any.
pub(super) async fn query_opt(
    db: &impl GenericClient,
    sql: &str,
    params: &Params<'_>,
) -> anyhow::Result<Option<Row>> {
    let statement = db.prepare_cached(sql).await?;
    Ok(db.query_opt(&statement, params).await?)
}

/// Runs `sql`, which returns exactly one row.
pub(super) async fn query_one(
    db: &impl GenericClient,
    sql: &str,
    params: &Params<'_>,
) -> anyhow::Result<Row> {
    let statement = db.prepare_cached(sql).await?;
    Ok(db.query_one(&statement, params).await?)
}

/// Runs `sql` and returns how many rows it changed.
pub(super) async fn execute(
    db: &impl GenericClient,
    sql: &str,
    params: &Params<'_>,
) -> anyhow::Result<u64> {
    let statement = db.prepare_cached(sql).await?;
    Ok(db.execute(&statement, params).await?)
}

/// A page size as PostgreSQL takes it.
pub(super) fn limit(n: u32) -> i64 {
    i64::from(n)
}

/// Inserts one event.
pub(super) async fn insert_event(tx: &Transaction<'_>, event: &StoredEvent) -> anyhow::Result<()> {
    execute(
        tx,
        "INSERT INTO events (execution_id, seq, kind, data) VALUES ($1, $2, $3, $4)",
        &[&event.execution_id, &event.seq, &event.kind, &event.data],
    )
    .await?;
    Ok(())
}

/// Inserts events in one statement (arrays unnested), in order.
async fn insert_events(tx: &Transaction<'_>, events: &[&StoredEvent]) -> anyhow::Result<()> {
    if events.is_empty() {
        return Ok(());
    }
    let ids: Vec<&str> = events.iter().map(|e| e.execution_id.as_str()).collect();
    let seqs: Vec<i64> = events.iter().map(|e| e.seq).collect();
    let kinds: Vec<&str> = events.iter().map(|e| e.kind.as_str()).collect();
    let data: Vec<&str> = events.iter().map(|e| e.data.as_str()).collect();
    execute(
        tx,
        "INSERT INTO events (execution_id, seq, kind, data) \
         SELECT * FROM UNNEST($1::text[], $2::bigint[], $3::text[], $4::text[])",
        &[&ids, &seqs, &kinds, &data],
    )
    .await?;
    Ok(())
}

pub(super) async fn next_seq(db: &impl GenericClient, id: &str) -> anyhow::Result<i64> {
    Ok(query_one(
        db,
        "SELECT COALESCE(MAX(seq), 0) + 1 FROM events WHERE execution_id = $1",
        &[&id],
    )
    .await?
    .try_get(0)?)
}

pub(super) fn status_column(row: &Row, index: usize) -> anyhow::Result<ExecStatus> {
    let status: String = row.try_get(index)?;
    status.parse().map_err(|e: String| anyhow::anyhow!(e))
}

fn trigger_column(row: &Row, index: usize) -> anyhow::Result<TriggerSource> {
    let source: String = row.try_get(index)?;
    source.parse().map_err(|e: String| anyhow::anyhow!(e))
}

const VERSION_COLUMNS: &str =
    "v.slug, v.version, v.sha256, v.manifest, v.kind, v.public, v.created_at";

fn version_row(row: &Row) -> anyhow::Result<VersionRecord> {
    Ok(VersionRecord {
        slug: row.try_get(0)?,
        version: row.try_get(1)?,
        sha256: row.try_get(2)?,
        manifest: row.try_get(3)?,
        kind: row.try_get(4)?,
        public: row.try_get(5)?,
        created_at: row.try_get(6)?,
    })
}

/// An app's columns: its current version's (with the app's own visibility when the
/// operator set one), then the app's.
const APP_COLUMNS: &str = "v.slug, v.version, v.sha256, v.manifest, v.kind, \
                           COALESCE(a.public, v.public), v.created_at, a.created_at, a.updated_at, a.paused";

fn app_row(row: &Row) -> anyhow::Result<AppRecord> {
    Ok(AppRecord {
        slug: row.try_get(0)?,
        current: version_row(row)?,
        created_at: row.try_get(7)?,
        updated_at: row.try_get(8)?,
        paused: row.try_get(9)?,
    })
}

async fn app_query(db: &impl GenericClient, slug: &str) -> anyhow::Result<Option<AppRecord>> {
    query_opt(
        db,
        &format!(
            "SELECT {APP_COLUMNS} FROM apps a \
             JOIN app_versions v ON v.slug = a.slug AND v.version = a.current_version \
             WHERE a.slug = $1"
        ),
        &[&slug],
    )
    .await?
    .as_ref()
    .map(app_row)
    .transpose()
}

pub(super) const EXECUTION_COLUMNS: &str = "n, id, app, version, action, status, inputs, output, error, usage, \
                                 view_token_hash, attempts, created_at, started_at, finished_at, \
                                 trigger_source, step, step_action, step_inputs, approval";

pub(super) fn execution_row(row: &Row) -> anyhow::Result<ExecutionRecord> {
    Ok(ExecutionRecord {
        n: row.try_get(0)?,
        id: row.try_get(1)?,
        app: row.try_get(2)?,
        version: row.try_get(3)?,
        action: row.try_get(4)?,
        status: status_column(row, 5)?,
        inputs: row.try_get(6)?,
        output: row.try_get(7)?,
        error: row.try_get(8)?,
        usage: row.try_get(9)?,
        view_token_hash: row.try_get(10)?,
        attempts: row.try_get(11)?,
        created_at: row.try_get(12)?,
        started_at: row.try_get(13)?,
        finished_at: row.try_get(14)?,
        trigger_source: trigger_column(row, 15)?,
        step: row.try_get(16)?,
        step_run: match (row.try_get(17)?, row.try_get(18)?) {
            (Some(action), Some(inputs)) => Some(StepRun { action, inputs }),
            _ => None,
        },
        approval: row.try_get(19)?,
    })
}

/// The execution list's filters, over the parameters [`list_params`] gives (`$4` is the
/// page size).
const LIST_FILTER: &str = "($1::text IS NULL OR app = $1) AND ($2::text IS NULL OR status = $2) \
     AND ($3::bigint IS NULL OR n < $3) AND ($5::text[] IS NULL OR app = ANY($5)) \
     AND ($6::text IS NULL OR trigger_source = $6) AND ($7::bigint IS NULL OR created_at >= $7) \
     AND ($8::bigint IS NULL OR created_at < $8)";

struct ListParams<'a> {
    app: Option<&'a str>,
    status: Option<&'static str>,
    before: Option<i64>,
    limit: i64,
    apps: Option<&'a [String]>,
    trigger_source: Option<&'static str>,
    since: Option<Millis>,
    until: Option<Millis>,
}

impl<'a> ListParams<'a> {
    fn new(filter: &'a ListExecutions) -> Self {
        ListParams {
            app: filter.app.as_deref(),
            status: filter.status.map(ExecStatus::as_str),
            before: filter.before,
            limit: limit(filter.limit),
            apps: filter.apps.as_deref(),
            trigger_source: filter.trigger_source.map(TriggerSource::as_str),
            since: filter.since,
            until: filter.until,
        }
    }

    fn params(&self) -> [&(dyn ToSql + Sync); 8] {
        [
            &self.app,
            &self.status,
            &self.before,
            &self.limit,
            &self.apps,
            &self.trigger_source,
            &self.since,
            &self.until,
        ]
    }
}

const SUMMARY_COLUMNS: &str = "n, id, app, version, action, status, error, usage, attempts, \
                               created_at, started_at, finished_at, trigger_source";

fn summary_row(row: &Row) -> anyhow::Result<ExecutionSummary> {
    Ok(ExecutionSummary {
        n: row.try_get(0)?,
        id: row.try_get(1)?,
        app: row.try_get(2)?,
        version: row.try_get(3)?,
        action: row.try_get(4)?,
        status: status_column(row, 5)?,
        error: row.try_get(6)?,
        usage: row.try_get(7)?,
        attempts: row.try_get(8)?,
        created_at: row.try_get(9)?,
        started_at: row.try_get(10)?,
        finished_at: row.try_get(11)?,
        trigger_source: trigger_column(row, 12)?,
    })
}

fn event_row(row: &Row) -> anyhow::Result<StoredEvent> {
    Ok(StoredEvent {
        execution_id: row.try_get(0)?,
        seq: row.try_get(1)?,
        kind: row.try_get(2)?,
        data: row.try_get(3)?,
    })
}

/// Cancels execution `id` if it is still queued (or awaiting approval: nothing runs),
/// with its terminal event; false when it was neither.
async fn cancel_queued_in(
    tx: &Transaction<'_>,
    effects: &mut Effects,
    id: &str,
    at: Millis,
    why: &str,
) -> anyhow::Result<bool> {
    let error = RunError::new(ErrorCode::Cancelled, why);
    let Some(row) = query_opt(
        tx,
        "UPDATE executions SET status = 'cancelled', error = $2, finished_at = $3, \
         approval_expires_at = NULL \
         WHERE id = $1 AND status IN ('queued', 'awaiting_approval') RETURNING app, webhook",
        &[&id, &serde_json::to_string(&error)?, &at],
    )
    .await?
    else {
        return Ok(false);
    };
    let (app, webhook): (String, Option<String>) = (row.try_get(0)?, row.try_get(1)?);
    effects.outbox |=
        pg_hooks::enqueue(tx, id, &app, webhook.as_deref(), ExecStatus::Cancelled, at).await?;
    let event = events::error(id, next_seq(tx, id).await?, ExecStatus::Cancelled, &error);
    insert_event(tx, &event).await?;
    effects.publish.push(event);
    Ok(true)
}

/// An execution's streamed events not yet written, and who writes them.
#[derive(Default)]
struct Lane {
    queue: Mutex<Queue>,
    /// Held while this lane's events are written: one writer per execution, in order.
    writing: tokio::sync::Mutex<()>,
}

/// Batches waiting in a lane, each with who waits for it to be written.
#[derive(Default)]
struct Queue {
    batches: Vec<(Vec<StoredEvent>, tokio::sync::oneshot::Sender<()>)>,
    /// A task to write them is on its way.
    scheduled: bool,
}

/// Every execution's lane.
#[derive(Default)]
struct Lanes(Mutex<HashMap<String, Arc<Lane>>>);

impl Lanes {
    fn lane(&self, execution: &str) -> Arc<Lane> {
        lock(&self.0)
            .entry(execution.to_owned())
            .or_default()
            .clone()
    }

    /// Forgets the lane of `execution` if nothing waits in it and nobody holds it.
    fn forget_if_idle(&self, execution: &str) {
        let mut lanes = lock(&self.0);
        if let Some(lane) = lanes.get(execution)
            && Arc::strong_count(lane) == 1
            && lock(&lane.queue).batches.is_empty()
        {
            lanes.remove(execution);
        }
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|p| p.into_inner())
}

type Batches = Vec<(Vec<StoredEvent>, tokio::sync::oneshot::Sender<()>)>;

impl PgStore {
    /// Takes what waits in `lane` and writes it in `tx` (the caller holds the lane).
    async fn flush_lane(&self, tx: &Transaction<'_>, lane: &Lane) -> anyhow::Result<Batches> {
        let batches = {
            let mut queue = lock(&lane.queue);
            queue.scheduled = false;
            std::mem::take(&mut queue.batches)
        };
        let events: Vec<&StoredEvent> = batches.iter().flat_map(|(batch, _)| batch).collect();
        insert_events(tx, &events).await?;
        Ok(batches)
    }

    /// Publishes written batches and tells their producers.
    fn written(&self, batches: Batches) {
        for (batch, done) in batches {
            for event in batch {
                self.live.publish(event);
            }
            let _ = done.send(());
        }
    }

    /// Writes the waiting events of `execution` in a transaction of their own.
    async fn write_lane(&self, execution: String) {
        let lane = self.lanes.lane(&execution);
        let result = async {
            let _writing = lane.writing.lock().await;
            if lock(&lane.queue).batches.is_empty() {
                // The execution's end took them.
                return anyhow::Ok(Vec::new());
            }
            let mut db = self.db().await?;
            let tx = db.transaction().await?;
            // Only while this host holds the run: the lock keeps another host from
            // taking it back until these events are in.
            let held = query_opt(
                &tx,
                "SELECT 1 FROM executions WHERE id = $1 AND status = 'running' \
                 AND lease_owner = $2 FOR SHARE",
                &[&execution, &&*self.host],
            )
            .await?
            .is_some();
            if !held {
                let dropped = std::mem::take(&mut lock(&lane.queue).batches);
                tracing::warn!(%execution, batches = dropped.len(), "events dropped: {}", super::LeaseLost(execution.clone()));
                return Ok(Vec::new());
            }
            let batches = self.flush_lane(&tx, &lane).await?;
            let events: Vec<&StoredEvent> = batches.iter().flat_map(|(batch, _)| batch).collect();
            self.announce(&tx, &Effects::default(), &events).await?;
            tx.commit().await?;
            Ok(batches)
        }
        .await;
        match result {
            Ok(batches) => self.written(batches),
            // The producers' handles resolve as their senders drop: logged, not retried.
            Err(e) => tracing::error!(%execution, "cannot store events: {e:#}"),
        }
        drop(lane);
        self.lanes.forget_if_idle(&execution);
    }

    /// Runs `f` in a transaction after the waiting events of `execution` (written in the
    /// same transaction), then publishes what committed.
    async fn write_after<R>(
        &self,
        execution: &str,
        f: impl AsyncFnOnce(&Transaction<'_>, &mut Effects) -> anyhow::Result<R>,
    ) -> anyhow::Result<R> {
        let lane = self.lanes.lane(execution);
        let writing = lane.writing.lock().await;
        let result = async {
            let mut db = self.db().await?;
            let tx = db.transaction().await?;
            let batches = self.flush_lane(&tx, &lane).await?;
            let mut effects = Effects::default();
            match f(&tx, &mut effects).await {
                Ok(value) => {
                    let events: Vec<&StoredEvent> =
                        batches.iter().flat_map(|(batch, _)| batch).collect();
                    self.announce(&tx, &effects, &events).await?;
                    tx.commit().await?;
                    anyhow::Ok((Ok(value), batches, effects))
                }
                Err(e) => {
                    // The events still stand without the operation that failed.
                    drop(tx);
                    let tx = db.transaction().await?;
                    let events: Vec<&StoredEvent> =
                        batches.iter().flat_map(|(batch, _)| batch).collect();
                    insert_events(&tx, &events).await?;
                    self.announce(&tx, &Effects::default(), &events).await?;
                    tx.commit().await?;
                    Ok((Err(e), batches, Effects::default()))
                }
            }
        }
        .await;
        let result: anyhow::Result<(anyhow::Result<R>, Batches, Effects)> = result;
        drop(writing);
        drop(lane);
        self.lanes.forget_if_idle(execution);
        let (result, batches, effects) = result?;
        self.written(batches);
        self.committed(effects);
        result
    }

    /// Runs `f` in a transaction, then publishes what committed.
    async fn write<R>(
        &self,
        f: impl AsyncFnOnce(&Transaction<'_>, &mut Effects) -> anyhow::Result<R>,
    ) -> anyhow::Result<R> {
        let mut db = self.db().await?;
        let tx = db.transaction().await?;
        let mut effects = Effects::default();
        let value = f(&tx, &mut effects).await?;
        self.announce(&tx, &effects, &[]).await?;
        tx.commit().await?;
        self.committed(effects);
        Ok(value)
    }
}

#[async_trait]
impl Store for PgStore {
    async fn publish(&self, new: NewVersion) -> anyhow::Result<Published> {
        self.write(async |tx, _| {
            // Two hosts publishing one slug at once take turns here.
            execute(tx, "SELECT pg_advisory_xact_lock(hashtext($1))", &[&new.slug]).await?;
            let now = super::now_ms();
            if let Some(current) = app_query(tx, &new.slug).await?
                && current.current.sha256 == new.sha256
                && current.current.manifest == new.manifest
            {
                return Ok(Published {
                    app: current,
                    created: false,
                });
            }
            let retired = query_opt(
                tx,
                "SELECT 1 FROM retired_slugs WHERE slug = $1",
                &[&new.slug],
            )
            .await?
            .is_some();
            if retired {
                return Err(SlugRetired(new.slug.clone()).into());
            }
            let version: i64 = query_one(
                tx,
                "SELECT COALESCE(MAX(version), 0) + 1 FROM app_versions WHERE slug = $1",
                &[&new.slug],
            )
            .await?
            .try_get(0)?;
            execute(
                tx,
                "INSERT INTO app_versions (slug, version, sha256, manifest, kind, public, created_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7)",
                &[
                    &new.slug,
                    &version,
                    &new.sha256,
                    &new.manifest,
                    &new.kind,
                    &new.public,
                    &now,
                ],
            )
            .await?;
            execute(
                tx,
                "INSERT INTO apps (slug, current_version, created_at, updated_at) VALUES ($1, $2, $3, $3) \
                 ON CONFLICT (slug) DO UPDATE SET current_version = excluded.current_version, \
                 updated_at = excluded.updated_at, public = NULL",
                &[&new.slug, &version, &now],
            )
            .await?;
            let app = app_query(tx, &new.slug)
                .await?
                .context("the app just written is missing")?;
            Ok(Published { app, created: true })
        })
        .await
    }

    async fn app(&self, slug: &str) -> anyhow::Result<Option<AppRecord>> {
        app_query(&self.db().await?, slug).await
    }

    async fn apps(&self) -> anyhow::Result<Vec<AppRecord>> {
        query(
            &self.db().await?,
            &format!(
                "SELECT {APP_COLUMNS} FROM apps a \
                 JOIN app_versions v ON v.slug = a.slug AND v.version = a.current_version \
                 ORDER BY a.slug"
            ),
            &[],
        )
        .await?
        .iter()
        .map(app_row)
        .collect()
    }

    async fn version(&self, slug: &str, version: i64) -> anyhow::Result<Option<VersionRecord>> {
        query_opt(
            &self.db().await?,
            &format!(
                "SELECT {VERSION_COLUMNS} FROM app_versions v WHERE v.slug = $1 AND v.version = $2"
            ),
            &[&slug, &version],
        )
        .await?
        .as_ref()
        .map(version_row)
        .transpose()
    }

    async fn delete_app(&self, slug: &str, at: Millis) -> anyhow::Result<Option<DeletedApp>> {
        self.write(async |tx, effects| {
            if execute(tx, "DELETE FROM apps WHERE slug = $1", &[&slug]).await? == 0 {
                return Ok(None);
            }
            execute(
                tx,
                "INSERT INTO retired_slugs (slug, deleted_at) VALUES ($1, $2) \
                 ON CONFLICT (slug) DO UPDATE SET deleted_at = excluded.deleted_at",
                &[&slug, &at],
            )
            .await?;
            execute(tx, "DELETE FROM secrets WHERE app = $1", &[&slug]).await?;
            // Grants to the slug go with the app, so a later app of that name gets none.
            let grants = query(
                tx,
                "SELECT id, apps FROM tokens WHERE apps IS NOT NULL AND apps::jsonb ? $1 \
                 FOR UPDATE",
                &[&slug],
            )
            .await?;
            for row in grants {
                let (id, apps): (String, String) = (row.try_get(0)?, row.try_get(1)?);
                let mut apps: Vec<String> = serde_json::from_str(&apps)?;
                apps.retain(|app| app != slug);
                execute(
                    tx,
                    "UPDATE tokens SET apps = $2 WHERE id = $1",
                    &[&id, &serde_json::to_string(&apps)?],
                )
                .await?;
            }
            let queued: Vec<String> = query(
                tx,
                "SELECT id FROM executions WHERE app = $1 \
                 AND status IN ('queued', 'awaiting_approval') ORDER BY n",
                &[&slug],
            )
            .await?
            .iter()
            .map(|row| row.try_get(0))
            .collect::<Result<_, _>>()?;
            for id in &queued {
                cancel_queued_in(
                    tx,
                    effects,
                    id,
                    at,
                    "the app was deleted before this execution ended",
                )
                .await?;
            }
            pg_hooks::delete_app(tx, slug, at).await?;
            Ok(Some(DeletedApp { cancelled: queued }))
        })
        .await
    }

    async fn purge_app(&self, slug: &str) -> anyhow::Result<bool> {
        self.write(async |tx, _| {
            if app_query(tx, slug).await?.is_some() {
                return Err(
                    NotPurgeable(format!("{slug} is still published: delete it first")).into(),
                );
            }
            let retired =
                execute(tx, "DELETE FROM retired_slugs WHERE slug = $1", &[&slug]).await? > 0;
            let unfinished: i64 = query_one(
                tx,
                "SELECT COUNT(*) FROM executions WHERE app = $1 \
                 AND status IN ('queued', 'running', 'awaiting_approval')",
                &[&slug],
            )
            .await?
            .try_get(0)?;
            if unfinished > 0 {
                return Err(NotPurgeable(format!(
                    "{unfinished} executions of {slug} have not ended yet; try again in a moment"
                ))
                .into());
            }
            let executions = "SELECT id FROM executions WHERE app = $1";
            for table in ["events", "execution_files", "idempotency"] {
                execute(
                    tx,
                    &format!("DELETE FROM {table} WHERE execution_id IN ({executions})"),
                    &[&slug],
                )
                .await?;
            }
            pg_hooks::purge_app(tx, slug).await?;
            let removed = execute(tx, "DELETE FROM executions WHERE app = $1", &[&slug]).await?
                + execute(tx, "DELETE FROM app_versions WHERE slug = $1", &[&slug]).await?;
            Ok(retired || removed > 0)
        })
        .await
    }

    async fn insert_execution(
        &self,
        mut e: NewExecution,
        idempotency: Option<IdempotencyKey>,
    ) -> anyhow::Result<Inserted> {
        self.write(async |tx, effects| {
            if let Some(claim) = &e.tick {
                pg_hooks::claim_tick(tx, claim, &e.id).await?;
            }
            if let Some(key) = &idempotency {
                // The same key sent to two hosts at once: one inserts, the other waits
                // here and then finds the first one's execution.
                execute(
                    tx,
                    "SELECT pg_advisory_xact_lock(hashtext($1 || ' ' || $2))",
                    &[&key.caller, &key.key],
                )
                .await?;
                let window = e.created_at - IDEMPOTENCY_WINDOW_MS;
                if let Some(row) = query_opt(
                    tx,
                    "SELECT execution_id, request_hash, view_token FROM idempotency \
                     WHERE caller = $1 AND key = $2 AND created_at > $3",
                    &[&key.caller, &key.key, &window],
                )
                .await?
                {
                    return Ok(Inserted::Existing {
                        execution_id: row.try_get(0)?,
                        request_hash: row.try_get(1)?,
                        view_token: row.try_get(2)?,
                    });
                }
                // An expired key is free again; old keys are swept as we go.
                execute(
                    tx,
                    "DELETE FROM idempotency WHERE created_at <= $1",
                    &[&window],
                )
                .await?;
                execute(
                    tx,
                    "INSERT INTO idempotency \
                     (caller, key, request_hash, execution_id, view_token, created_at) \
                     VALUES ($1, $2, $3, $4, $5, $6) \
                     ON CONFLICT (caller, key) DO UPDATE SET request_hash = excluded.request_hash, \
                     execution_id = excluded.execution_id, view_token = excluded.view_token, \
                     created_at = excluded.created_at",
                    &[
                        &key.caller,
                        &key.key,
                        &key.request_hash,
                        &e.id,
                        &key.view_token,
                        &e.created_at,
                    ],
                )
                .await?;
            }
            // At the app's cap across hosts, a direct start waits in the queue instead.
            if e.started_at.is_some() && !self.below_cap(tx, &e.app).await? {
                e.started_at = None;
            }
            let status = if e.started_at.is_some() {
                "running"
            } else {
                "queued"
            };
            execute(
                tx,
                "INSERT INTO executions \
                 (id, app, version, action, status, inputs, view_token_hash, created_at, attempts, \
                  started_at, trigger_source, mcp_call, webhook, lease_owner, lease_until) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)",
                &[
                    &e.id,
                    &e.app,
                    &e.version,
                    &e.action,
                    &status,
                    &e.inputs,
                    &e.view_token_hash,
                    &e.created_at,
                    &i64::from(e.started_at.is_some()),
                    &e.started_at,
                    &e.trigger_source.as_str(),
                    &e.mcp_call,
                    &e.webhook,
                    &e.started_at.map(|_| &*self.host),
                    &e.started_at.map(|at| self.lease_until(at)),
                ],
            )
            .await?;
            effects.open.push(e.id.clone());
            let Some(_) = e.started_at else {
                effects.queued = true;
                return Ok(Inserted::New(None));
            };
            let event = events::start(&e.id, 1, 1);
            insert_event(tx, &event).await?;
            effects.publish.push(event);
            Ok(Inserted::New(Some(Started { attempt: 1, seq: 1 })))
        })
        .await
    }

    async fn start_execution(&self, id: &str, at: Millis) -> anyhow::Result<Option<Started>> {
        self.write(async |tx, effects| {
            // At the app's cap across hosts it stays queued, for a claim once a place
            // frees (this host's queue lets it go).
            let Some(app) = query_opt(
                tx,
                "SELECT app FROM executions WHERE id = $1 AND status = 'queued' FOR UPDATE",
                &[&id],
            )
            .await?
            else {
                return Ok(None);
            };
            if !self.below_cap(tx, &app.try_get::<_, String>(0)?).await? {
                effects.queued = true;
                return Ok(None);
            }
            let Some(row) = query_opt(
                tx,
                "UPDATE executions SET status = 'running', attempts = attempts + 1, started_at = $2, \
                 lease_owner = $3, lease_until = $4 \
                 WHERE id = $1 AND status = 'queued' RETURNING attempts",
                &[&id, &at, &&*self.host, &self.lease_until(at)],
            )
            .await?
            else {
                return Ok(None);
            };
            let attempt: i64 = row.try_get(0)?;
            let seq = next_seq(tx, id).await?;
            let event = events::start(id, seq, attempt);
            insert_event(tx, &event).await?;
            effects.publish.push(event);
            Ok(Some(Started { attempt, seq }))
        })
        .await
    }

    fn append_events(&self, events: Vec<StoredEvent>) -> Appended {
        let (written, appended) = Appended::new();
        let Some(execution) = events.first().map(|e| e.execution_id.clone()) else {
            return appended;
        };
        let lane = self.lanes.lane(&execution);
        let mut queue = lock(&lane.queue);
        queue.batches.push((events, written));
        if !queue.scheduled {
            queue.scheduled = true;
            let store = self.clone();
            self.runtime
                .spawn(async move { store.write_lane(execution).await });
        }
        appended
    }

    async fn finish_execution(&self, id: &str, finish: Finish) -> anyhow::Result<()> {
        self.write_after(id, async |tx, effects| {
            // A run awaiting approval has not finished: no finished_at yet.
            let (approval, expires_at) = finish.approval.clone().unzip();
            let finished_at = approval.is_none().then_some(finish.finished_at);
            let Some(row) = query_opt(
                tx,
                "UPDATE executions SET status = $2, output = $3, error = $4, usage = $5, \
                 finished_at = $6, approval = COALESCE($7, approval), approval_expires_at = $8, \
                 lease_owner = NULL, lease_until = NULL \
                 WHERE id = $1 AND status = 'running' AND lease_owner = $9 AND attempts = $10 \
                 RETURNING app, webhook",
                &[
                    &id,
                    &finish.status.as_str(),
                    &finish.output,
                    &finish.error,
                    &finish.usage,
                    &finished_at,
                    &approval,
                    &expires_at,
                    &&*self.host,
                    &finish.attempt,
                ],
            )
            .await?
            else {
                return Err(super::LeaseLost(id.to_owned()).into());
            };
            let (app, webhook): (String, Option<String>) = (row.try_get(0)?, row.try_get(1)?);
            // The outbox, in the transaction of the change it announces.
            effects.outbox |= pg_hooks::enqueue(
                tx,
                id,
                &app,
                webhook.as_deref(),
                finish.status,
                finish.finished_at,
            )
            .await?;
            insert_event(tx, &finish.event).await?;
            effects.publish.push(finish.event.clone());
            Ok(())
        })
        .await
    }

    async fn insert_finished(&self, e: NewExecution, finish: Finish) -> anyhow::Result<()> {
        self.write(async |tx, effects| {
            let (approval, expires_at) = finish.approval.clone().unzip();
            let finished_at = approval.is_none().then_some(finish.finished_at);
            execute(
                tx,
                "INSERT INTO executions \
                 (id, app, version, action, status, inputs, view_token_hash, created_at, attempts, \
                  started_at, trigger_source, mcp_call, webhook, output, error, usage, finished_at, \
                  approval, approval_expires_at, events_pruned) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, 1, $9, $10, $11, $12, $13, $14, $15, $16, \
                  $17, $18, TRUE)",
                &[
                    &e.id,
                    &e.app,
                    &e.version,
                    &e.action,
                    &finish.status.as_str(),
                    &e.inputs,
                    &e.view_token_hash,
                    &e.created_at,
                    &e.started_at,
                    &e.trigger_source.as_str(),
                    &e.mcp_call,
                    &e.webhook,
                    &finish.output,
                    &finish.error,
                    &finish.usage,
                    &finished_at,
                    &approval,
                    &expires_at,
                ],
            )
            .await?;
            let start = events::start(&e.id, 1, 1);
            insert_event(tx, &start).await?;
            effects.publish.push(start);
            effects.outbox |= pg_hooks::enqueue(
                tx,
                &e.id,
                &e.app,
                e.webhook.as_deref(),
                finish.status,
                finish.finished_at,
            )
            .await?;
            insert_event(tx, &finish.event).await?;
            effects.publish.push(finish.event.clone());
            Ok(())
        })
        .await
    }

    async fn cancel_queued(&self, id: &str, at: Millis) -> anyhow::Result<bool> {
        self.write(async |tx, effects| {
            cancel_queued_in(
                tx,
                effects,
                id,
                at,
                "the execution was cancelled before it started",
            )
            .await
        })
        .await
    }

    async fn execution(&self, id: &str) -> anyhow::Result<Option<ExecutionRecord>> {
        query_opt(
            &self.db().await?,
            &format!("SELECT {EXECUTION_COLUMNS} FROM executions WHERE id = $1"),
            &[&id],
        )
        .await?
        .as_ref()
        .map(execution_row)
        .transpose()
    }

    async fn unfinished_mcp_call(&self, key: &str) -> anyhow::Result<Option<String>> {
        query_opt(
            &self.db().await?,
            "SELECT id FROM executions WHERE mcp_call = $1 \
             AND status IN ('queued', 'running') ORDER BY n DESC LIMIT 1",
            &[&key],
        )
        .await?
        .map(|row| row.try_get(0))
        .transpose()
        .map_err(Into::into)
    }

    async fn executions(&self, filter: ListExecutions) -> anyhow::Result<Vec<ExecutionSummary>> {
        let params = ListParams::new(&filter);
        query(
            &self.db().await?,
            &format!(
                "SELECT {SUMMARY_COLUMNS} FROM executions WHERE {LIST_FILTER} ORDER BY n DESC LIMIT $4"
            ),
            &params.params(),
        )
        .await?
        .iter()
        .map(summary_row)
        .collect()
    }

    async fn events_after(
        &self,
        id: &str,
        after: i64,
        limit: u32,
    ) -> anyhow::Result<Vec<StoredEvent>> {
        query(
            &self.db().await?,
            "SELECT execution_id, seq, kind, data FROM events \
             WHERE execution_id = $1 AND seq > $2 ORDER BY seq LIMIT $3",
            &[&id, &after, &self::limit(limit)],
        )
        .await?
        .iter()
        .map(event_row)
        .collect()
    }

    async fn versions(&self, slug: &str) -> anyhow::Result<Vec<VersionRecord>> {
        query(
            &self.db().await?,
            &format!(
                "SELECT {VERSION_COLUMNS} FROM app_versions v WHERE v.slug = $1 ORDER BY v.version"
            ),
            &[&slug],
        )
        .await?
        .iter()
        .map(version_row)
        .collect()
    }

    async fn set_current(&self, slug: &str, version: i64) -> anyhow::Result<Option<AppRecord>> {
        self.write(async |tx, _| {
            let updated = execute(
                tx,
                "UPDATE apps SET current_version = $2, updated_at = $3 WHERE slug = $1 \
                 AND EXISTS (SELECT 1 FROM app_versions WHERE slug = $1 AND version = $2)",
                &[&slug, &version, &super::now_ms()],
            )
            .await?;
            if updated == 0 {
                return Ok(None);
            }
            app_query(tx, slug).await
        })
        .await
    }

    async fn stats(&self, slug: &str) -> anyhow::Result<AppStats> {
        let db = self.db().await?;
        let mut counts = Vec::new();
        for row in query(
            &db,
            "SELECT status, COUNT(*) FROM executions WHERE app = $1 GROUP BY status",
            &[&slug],
        )
        .await?
        {
            let status: String = row.try_get(0)?;
            if let Ok(status) = status.parse() {
                counts.push((status, row.try_get::<_, i64>(1)?));
            }
        }
        // The most recent 10,000 finished runs are plenty for percentiles.
        let durations_ms = query(
            &db,
            "SELECT finished_at - started_at FROM executions \
             WHERE app = $1 AND finished_at IS NOT NULL AND started_at IS NOT NULL \
             ORDER BY n DESC LIMIT 10000",
            &[&slug],
        )
        .await?
        .iter()
        .map(|row| row.try_get(0))
        .collect::<Result<_, _>>()?;
        Ok(AppStats {
            counts,
            durations_ms,
        })
    }

    async fn last_runs(&self) -> anyhow::Result<HashMap<String, Millis>> {
        let mut last = HashMap::new();
        // One index lookup per app, not a scan of every execution.
        for row in query(
            &self.db().await?,
            "SELECT a.slug, (SELECT e.created_at FROM executions e \
             WHERE e.app = a.slug ORDER BY e.n DESC LIMIT 1) FROM apps a",
            &[],
        )
        .await?
        {
            if let Some(at) = row.try_get::<_, Option<Millis>>(1)? {
                last.insert(row.try_get(0)?, at);
            }
        }
        Ok(last)
    }

    async fn insert_token(&self, token: TokenRecord) -> anyhow::Result<()> {
        let apps = token.apps.as_ref().map(serde_json::to_string).transpose()?;
        execute(
            &self.db().await?,
            "INSERT INTO tokens (id, name, secret_hash, role, apps, created_at, expires_at, revoked_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
            &[
                &token.id,
                &token.name,
                &token.secret_hash,
                &token.role,
                &apps,
                &token.created_at,
                &token.expires_at,
                &token.revoked_at,
            ],
        )
        .await?;
        Ok(())
    }

    async fn tokens(&self) -> anyhow::Result<Vec<TokenRecord>> {
        query(
            &self.db().await?,
            "SELECT id, name, secret_hash, role, apps, created_at, expires_at, revoked_at \
             FROM tokens ORDER BY created_at, id",
            &[],
        )
        .await?
        .iter()
        .map(|row| {
            let apps: Option<String> = row.try_get(4)?;
            Ok(TokenRecord {
                id: row.try_get(0)?,
                name: row.try_get(1)?,
                secret_hash: row.try_get(2)?,
                role: row.try_get(3)?,
                apps: apps.map(|a| serde_json::from_str(&a)).transpose()?,
                created_at: row.try_get(5)?,
                expires_at: row.try_get(6)?,
                revoked_at: row.try_get(7)?,
            })
        })
        .collect()
    }

    async fn revoke_token(&self, id: &str, at: Millis) -> anyhow::Result<bool> {
        Ok(execute(
            &self.db().await?,
            "UPDATE tokens SET revoked_at = $2 WHERE id = $1 AND revoked_at IS NULL",
            &[&id, &at],
        )
        .await?
            > 0)
    }

    async fn put_secret(&self, app: &str, secret: SecretRecord) -> anyhow::Result<()> {
        execute(
            &self.db().await?,
            "INSERT INTO secrets (app, name, sealed, updated_at) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (app, name) DO UPDATE SET sealed = excluded.sealed, \
             updated_at = excluded.updated_at",
            &[&app, &secret.name, &secret.sealed, &secret.updated_at],
        )
        .await?;
        Ok(())
    }

    async fn delete_secret(&self, app: &str, name: &str) -> anyhow::Result<bool> {
        Ok(execute(
            &self.db().await?,
            "DELETE FROM secrets WHERE app = $1 AND name = $2",
            &[&app, &name],
        )
        .await?
            > 0)
    }

    async fn secrets(&self, app: &str) -> anyhow::Result<Vec<SecretRecord>> {
        query(
            &self.db().await?,
            "SELECT name, sealed, updated_at FROM secrets WHERE app = $1 ORDER BY name",
            &[&app],
        )
        .await?
        .iter()
        .map(|row| {
            Ok(SecretRecord {
                name: row.try_get(0)?,
                sealed: row.try_get(1)?,
                updated_at: row.try_get(2)?,
            })
        })
        .collect()
    }

    async fn prune_events(&self, finished_before: Millis) -> anyhow::Result<usize> {
        self.write(async |tx, _| {
            let due = query(
                tx,
                "SELECT id FROM executions \
                 WHERE NOT events_pruned AND finished_at IS NOT NULL AND finished_at < $1 \
                 ORDER BY finished_at LIMIT 500 FOR UPDATE SKIP LOCKED",
                &[&finished_before],
            )
            .await?;
            let (mut deleted, mut done) = (0, 0);
            for row in due {
                let id: String = row.try_get(0)?;
                done += 1;
                deleted += execute(
                    tx,
                    "DELETE FROM events WHERE execution_id = $1 AND kind NOT IN ('end', 'error')",
                    &[&id],
                )
                .await?;
                execute(
                    tx,
                    "UPDATE executions SET events_pruned = TRUE WHERE id = $1",
                    &[&id],
                )
                .await?;
                if deleted >= PRUNE_EVENTS_PER_WRITE {
                    break;
                }
            }
            Ok(done)
        })
        .await
    }

    async fn add_files(&self, files: Vec<FileRecord>) -> anyhow::Result<()> {
        self.write(async |tx, _| {
            for f in &files {
                execute(
                    tx,
                    "INSERT INTO execution_files \
                     (execution_id, kind, name, size, sha256, content_type, created_at) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7) \
                     ON CONFLICT (execution_id, kind, name) DO UPDATE SET size = excluded.size, \
                     sha256 = excluded.sha256, content_type = excluded.content_type, \
                     created_at = excluded.created_at",
                    &[
                        &f.execution_id,
                        &f.kind.as_str(),
                        &f.name,
                        &f.size,
                        &f.sha256,
                        &f.content_type,
                        &f.created_at,
                    ],
                )
                .await?;
            }
            Ok(())
        })
        .await
    }

    async fn files(&self, execution_id: &str) -> anyhow::Result<Vec<FileRecord>> {
        query(
            &self.db().await?,
            "SELECT execution_id, kind, name, size, sha256, content_type, created_at \
             FROM execution_files WHERE execution_id = $1 ORDER BY kind, name",
            &[&execution_id],
        )
        .await?
        .iter()
        .map(|row| {
            let kind: String = row.try_get(1)?;
            Ok(FileRecord {
                execution_id: row.try_get(0)?,
                kind: if kind == "input" {
                    FileKind::Input
                } else {
                    FileKind::Artifact
                },
                name: row.try_get(2)?,
                size: row.try_get(3)?,
                sha256: row.try_get(4)?,
                content_type: row.try_get(5)?,
                created_at: row.try_get(6)?,
            })
        })
        .collect()
    }

    async fn expire_files(&self, created_before: Millis) -> anyhow::Result<Vec<String>> {
        self.write(async |tx, _| {
            let due = query(
                tx,
                "DELETE FROM execution_files WHERE (execution_id, kind, name) IN \
                 (SELECT execution_id, kind, name FROM execution_files WHERE created_at < $1 \
                  LIMIT 500 FOR UPDATE SKIP LOCKED) RETURNING sha256",
                &[&created_before],
            )
            .await?;
            let mut blobs: Vec<String> = Vec::new();
            for row in due {
                let sha256: String = row.try_get(0)?;
                if !blobs.contains(&sha256) {
                    blobs.push(sha256);
                }
            }
            // Only blobs no row names any more may go.
            let mut unreferenced = Vec::new();
            for sha256 in blobs {
                let referenced = query_opt(
                    tx,
                    "SELECT 1 FROM execution_files WHERE sha256 = $1 LIMIT 1",
                    &[&sha256],
                )
                .await?
                .is_some();
                if !referenced {
                    unreferenced.push(sha256);
                }
            }
            Ok(unreferenced)
        })
        .await
    }

    async fn recover(&self, at: Millis) -> anyhow::Result<Recovery> {
        // Other hosts' runs go on: only this host's from before its restart, and those
        // whose lease ran out, are taken back.
        let mut recovery = self.take_back(at, true).await?;
        let db = self.db().await?;
        recovery.queued = query(
            &db,
            "SELECT id FROM executions WHERE status = 'queued' ORDER BY n",
            &[],
        )
        .await?
        .iter()
        .map(|row| row.try_get(0))
        .collect::<Result<_, _>>()?;
        for id in &recovery.queued {
            self.live.open(id);
        }
        // Those awaiting a decision are unfinished too: their followers wait for it.
        for row in query(
            &db,
            "SELECT id FROM executions WHERE status = 'awaiting_approval'",
            &[],
        )
        .await?
        {
            self.live.open(row.try_get(0)?);
        }
        Ok(recovery)
    }

    async fn set_paused(&self, slug: &str, paused: bool) -> anyhow::Result<Option<AppRecord>> {
        self.write(async |tx, _| {
            execute(
                tx,
                "UPDATE apps SET paused = $2 WHERE slug = $1",
                &[&slug, &paused],
            )
            .await?;
            app_query(tx, slug).await
        })
        .await
    }

    async fn set_public(&self, slug: &str, public: bool) -> anyhow::Result<Option<AppRecord>> {
        self.write(async |tx, _| {
            execute(
                tx,
                "UPDATE apps SET public = $2 WHERE slug = $1",
                &[&slug, &public],
            )
            .await?;
            app_query(tx, slug).await
        })
        .await
    }

    async fn export(&self, filter: ListExecutions) -> anyhow::Result<Vec<ExportedExecution>> {
        let params = ListParams::new(&filter);
        query(
            &self.db().await?,
            &format!(
                "SELECT {SUMMARY_COLUMNS}, output FROM executions WHERE {LIST_FILTER} \
                 ORDER BY n DESC LIMIT $4"
            ),
            &params.params(),
        )
        .await?
        .iter()
        .map(|row| {
            Ok(ExportedExecution {
                summary: summary_row(row)?,
                output: row.try_get(13)?,
            })
        })
        .collect()
    }

    async fn timeseries(&self, app: &str, since: Millis) -> anyhow::Result<Vec<TimedExecution>> {
        query(
            &self.db().await?,
            "SELECT created_at, status, finished_at - started_at FROM executions \
             WHERE app = $1 AND created_at >= $2",
            &[&app, &since],
        )
        .await?
        .iter()
        .map(|row| {
            Ok(TimedExecution {
                created_at: row.try_get(0)?,
                status: status_column(row, 1)?,
                duration_ms: row.try_get(2)?,
            })
        })
        .collect()
    }

    async fn decide(
        &self,
        id: &str,
        decision: Decision,
        note: DecisionNote,
        at: Millis,
    ) -> anyhow::Result<Decided> {
        // After the execution's own pending events, like its end.
        self.write_after(id, async |tx, effects| {
            pg_approvals::decide(tx, effects, id, decision, &note, at).await
        })
        .await
    }

    async fn pending_approvals(
        &self,
        filter: ListApprovals,
    ) -> anyhow::Result<Vec<ExecutionRecord>> {
        pg_approvals::pending(&self.db().await?, &filter).await
    }

    async fn pending_approval_count(&self, apps: Option<Vec<String>>) -> anyhow::Result<i64> {
        pg_approvals::pending_count(&self.db().await?, apps.as_deref()).await
    }

    async fn expire_approvals(&self, now: Millis) -> anyhow::Result<Vec<String>> {
        // Asked every second: look first, so a store with nothing due gets no write.
        if !pg_approvals::any_expired(&self.db().await?, now).await? {
            return Ok(Vec::new());
        }
        self.write(async |tx, effects| pg_approvals::expire(tx, effects, now).await)
            .await
    }

    async fn insert_trigger(&self, trigger: TriggerRecord) -> anyhow::Result<()> {
        self.write(async |tx, _| pg_hooks::insert_trigger(tx, &trigger).await)
            .await
    }

    async fn trigger(&self, id: &str) -> anyhow::Result<Option<TriggerRecord>> {
        pg_hooks::trigger(&self.db().await?, id).await
    }

    async fn triggers(&self, app: &str) -> anyhow::Result<Vec<TriggerRecord>> {
        pg_hooks::triggers(&self.db().await?, app).await
    }

    async fn rotate_trigger(
        &self,
        app: &str,
        id: &str,
        secret: Vec<u8>,
        at: Millis,
    ) -> anyhow::Result<bool> {
        self.write(async |tx, _| pg_hooks::rotate_trigger(tx, app, id, &secret, at).await)
            .await
    }

    async fn delete_trigger(&self, app: &str, id: &str) -> anyhow::Result<bool> {
        self.write(async |tx, _| pg_hooks::delete_trigger(tx, app, id).await)
            .await
    }

    async fn insert_schedule(&self, schedule: ScheduleRecord) -> anyhow::Result<()> {
        self.write(async |tx, _| pg_hooks::insert_schedule(tx, &schedule).await)
            .await
    }

    async fn schedules(&self, app: &str) -> anyhow::Result<Vec<ScheduleRecord>> {
        pg_hooks::schedules(&self.db().await?, app).await
    }

    async fn due_schedules(&self, before: Millis) -> anyhow::Result<Vec<ScheduleRecord>> {
        pg_hooks::due_schedules(&self.db().await?, before).await
    }

    async fn set_schedule_paused(
        &self,
        app: &str,
        id: &str,
        paused: bool,
        next_tick: Millis,
    ) -> anyhow::Result<bool> {
        self.write(async |tx, _| {
            pg_hooks::set_schedule_paused(tx, app, id, paused, next_tick).await
        })
        .await
    }

    async fn delete_schedule(&self, app: &str, id: &str) -> anyhow::Result<bool> {
        self.write(async |tx, _| pg_hooks::delete_schedule(tx, app, id).await)
            .await
    }

    async fn skip_tick(&self, claim: TickClaim, error: String) -> anyhow::Result<bool> {
        self.write(async |tx, _| pg_hooks::skip_tick(tx, &claim, &error).await)
            .await
    }

    async fn insert_subscription(&self, subscription: SubscriptionRecord) -> anyhow::Result<()> {
        self.write(async |tx, _| pg_hooks::insert_subscription(tx, &subscription).await)
            .await
    }

    async fn subscriptions(&self, app: &str) -> anyhow::Result<Vec<SubscriptionRecord>> {
        pg_hooks::subscriptions(&self.db().await?, app).await
    }

    async fn delete_subscription(&self, app: &str, id: &str) -> anyhow::Result<bool> {
        self.write(async |tx, _| pg_hooks::delete_subscription(tx, app, id).await)
            .await
    }

    async fn run_webhook_secret(
        &self,
        app: &str,
        new: Vec<u8>,
        at: Millis,
    ) -> anyhow::Result<Vec<u8>> {
        self.write(async |tx, _| pg_hooks::run_webhook_secret(tx, app, &new, at).await)
            .await
    }

    async fn claim_deliveries(
        &self,
        now: Millis,
        hold_until: Millis,
        limit: u32,
    ) -> anyhow::Result<Vec<DueDelivery>> {
        self.write(async |tx, _| pg_hooks::claim_deliveries(tx, now, hold_until, limit).await)
            .await
    }

    async fn record_attempts(
        &self,
        attempts: Vec<(AttemptRecord, AfterAttempt)>,
    ) -> anyhow::Result<()> {
        self.write(async |tx, _| {
            for (attempt, next) in &attempts {
                pg_hooks::record_attempt(tx, attempt, *next).await?;
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
        pg_hooks::deliveries(&self.db().await?, subscription_id, before.as_deref(), limit).await
    }

    async fn prune_outbox(
        &self,
        deliveries_before: Option<Millis>,
        ticks_before: Millis,
    ) -> anyhow::Result<usize> {
        self.write(async |tx, _| pg_hooks::prune(tx, deliveries_before, ticks_before).await)
            .await
    }

    async fn next_delivery_at(&self) -> anyhow::Result<Option<Millis>> {
        pg_hooks::next_delivery_at(&self.db().await?).await
    }

    fn outbox_signal(&self) -> Arc<tokio::sync::Notify> {
        self.outbox.clone()
    }

    fn shared(&self) -> bool {
        true
    }

    async fn renew_leases(
        &self,
        running: Vec<String>,
        until: Millis,
    ) -> anyhow::Result<Vec<(String, bool)>> {
        if running.is_empty() {
            return Ok(Vec::new());
        }
        query(
            &self.db().await?,
            "UPDATE executions SET lease_until = $3 WHERE id = ANY($1) AND status = 'running' \
             AND lease_owner = $2 RETURNING id, cancel_requested",
            &[&running, &&*self.host, &until],
        )
        .await?
        .iter()
        .map(|row| Ok((row.try_get(0)?, row.try_get(1)?)))
        .collect()
    }

    async fn request_cancel(&self, id: &str) -> anyhow::Result<bool> {
        Ok(execute(
            &self.db().await?,
            "UPDATE executions SET cancel_requested = TRUE WHERE id = $1 AND status = 'running'",
            &[&id],
        )
        .await?
            > 0)
    }

    async fn expire_leases(&self, now: Millis) -> anyhow::Result<Recovery> {
        self.take_back(now, false).await
    }

    async fn claim_queued(
        &self,
        limit: u32,
        per_app: u32,
        at: Millis,
    ) -> anyhow::Result<Vec<(ExecutionRecord, Started)>> {
        self.write(async |tx, effects| {
            // More than `limit`, so apps at their cap do not hide the others.
            let candidates = query(
                tx,
                &format!(
                    "SELECT {EXECUTION_COLUMNS} FROM executions WHERE status = 'queued' \
                     ORDER BY n LIMIT $1 FOR UPDATE SKIP LOCKED"
                ),
                &[&(self::limit(limit) * 4)],
            )
            .await?;
            let records: Vec<ExecutionRecord> = candidates
                .iter()
                .map(execution_row)
                .collect::<anyhow::Result<_>>()?;
            let apps: Vec<&str> = records.iter().map(|r| r.app.as_str()).collect();
            lock_apps(tx, &apps).await?;
            let mut claimed = Vec::new();
            for mut record in records {
                if claimed.len() >= usize::try_from(limit).unwrap_or(usize::MAX) {
                    break;
                }
                // Counts this transaction's own claims too.
                if !self
                    .running_below(tx, &record.app, i64::from(per_app))
                    .await?
                {
                    continue;
                }
                let attempt: i64 = query_one(
                    tx,
                    "UPDATE executions SET status = 'running', attempts = attempts + 1, \
                     started_at = $2, lease_owner = $3, lease_until = $4 WHERE id = $1 \
                     RETURNING attempts",
                    &[&record.id, &at, &&*self.host, &self.lease_until(at)],
                )
                .await?
                .try_get(0)?;
                let seq = next_seq(tx, &record.id).await?;
                let event = events::start(&record.id, seq, attempt);
                insert_event(tx, &event).await?;
                effects.publish.push(event);
                record.status = ExecStatus::Running;
                record.attempts = attempt;
                record.started_at = Some(at);
                claimed.push((record, Started { attempt, seq }));
            }
            Ok(claimed)
        })
        .await
    }

    fn queued_signal(&self) -> Option<Arc<tokio::sync::Notify>> {
        Some(self.queued.clone())
    }

    async fn key_check(&self, sealed: Vec<u8>) -> anyhow::Result<Vec<u8>> {
        let db = self.db().await?;
        execute(
            &db,
            "INSERT INTO floom_settings (name, value) VALUES ('key_check', $1) \
             ON CONFLICT (name) DO NOTHING",
            &[&sealed],
        )
        .await?;
        Ok(query_one(
            &db,
            "SELECT value FROM floom_settings WHERE name = 'key_check'",
            &[],
        )
        .await?
        .try_get(0)?)
    }

    fn kind(&self) -> &'static str {
        "postgres"
    }

    fn reachable(&self) -> bool {
        self.reachable.load(std::sync::atomic::Ordering::Acquire)
    }
}
