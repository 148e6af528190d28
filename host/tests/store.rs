//! The store's shared behaviour, through the `Store` trait: what every implementation
//! must do. Each check runs against SQLite and against PostgreSQL (a real server, see
//! `support/postgres.rs`).

use std::sync::Arc;
use std::time::Duration;

use futures_util::FutureExt as _;

use floom_host::events;
use floom_host::live::Live;
use floom_host::store::{
    DynStore, ExecStatus, Finish, NewExecution, NewVersion, PgStore, SqliteStore, StoredEvent,
    TriggerSource, now_ms,
};

mod support;

/// The app every check starts with.
async fn with_app(store: DynStore) -> DynStore {
    store
        .publish(NewVersion {
            slug: "app".into(),
            sha256: "0".repeat(64),
            manifest: "slug = \"app\"\n".into(),
            kind: "sdk".into(),
            public: true,
        })
        .await
        .unwrap();
    store
}

/// A fresh SQLite store in a temp dir, with one app `app`.
async fn sqlite() -> (DynStore, std::path::PathBuf) {
    static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let dir = std::env::temp_dir().join(format!("floom-store-{}-{n}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let store: DynStore =
        Arc::new(SqliteStore::open(&dir.join("floom.db"), Arc::new(Live::default())).unwrap());
    (with_app(store).await, dir)
}

/// A PostgreSQL store on a fresh database of a real server, with one app `app`.
async fn postgres() -> DynStore {
    let url = support::postgres::database().await;
    let store: DynStore = Arc::new(
        PgStore::open(&url, Arc::new(Live::default()))
            .await
            .unwrap(),
    );
    with_app(store).await
}

/// Each check, once per store: `<check>::sqlite` and `<check>::postgres`.
macro_rules! both {
    (async fn $name:ident($store:ident: DynStore) $body:block) => {
        mod $name {
            use super::*;

            async fn check($store: DynStore) $body

            #[tokio::test]
            async fn sqlite() {
                let (store, dir) = super::sqlite().await;
                check(store).await;
                let _ = std::fs::remove_dir_all(dir);
            }

            #[tokio::test]
            async fn postgres() {
                check(super::postgres().await).await;
            }
        }
    };
}

/// Writes a running execution `id`; returns the sequence number of its start event.
async fn running(store: &DynStore, id: &str) -> i64 {
    let inserted = store
        .insert_execution(
            NewExecution {
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
            },
            None,
        )
        .await
        .unwrap();
    match inserted {
        floom_host::store::Inserted::New(Some(started)) => started.seq,
        other => panic!("not started: {other:?}"),
    }
}

fn chunks(id: &str, after: i64, count: usize, bytes: usize) -> Vec<StoredEvent> {
    (0..count)
        .map(|i| StoredEvent {
            execution_id: id.into(),
            seq: after + 1 + i as i64,
            kind: "chunk".into(),
            data: format!(r#"{{"type":"chunk","data":"{}"}}"#, "x".repeat(bytes)),
        })
        .collect()
}

fn succeeded(id: &str, seq: i64, finished_at: i64) -> Finish {
    Finish {
        status: ExecStatus::Succeeded,
        output: Some("{}".into()),
        error: None,
        usage: None,
        finished_at,
        event: events::end(id, seq, None, 1.0),
        approval: None,
        attempt: 1,
        alone: false,
    }
}

both! {
    async fn an_end_is_written_after_every_event_of_its_execution(store: DynStore) {
        // Alone: SQLite commits the end on this thread when its writer is idle.
        for (id, alone) in [("exec_a", false), ("exec_b", true)] {
            let seq = running(&store, id).await;
            for batch in 0..5 {
                let _ = store.append_events(chunks(id, seq + batch * 10, 10, 100));
            }
            // Not waiting for the appends: the store orders the end after them itself.
            let end = Finish { alone, ..succeeded(id, seq + 51, now_ms()) };
            store.finish_execution(id, end).await.unwrap();
            let stored = store.events_after(id, 0, 1000).await.unwrap();
            assert_eq!(stored.len(), 52);
            assert!(stored.windows(2).all(|w| w[1].seq == w[0].seq + 1));
            assert!(stored.last().unwrap().is_terminal());
        }
    }
}

both! {
    async fn other_writes_do_not_wait_behind_a_runs_events(store: DynStore) {
        // Review finding 9: one writer for every app, so a run streaming large chunks made
        // every other run's start and end wait behind its events (seconds).
        let seq = running(&store, "exec_chatty").await;
        let mut last = None;
        for batch in 0..200 {
            // 200 batches of 4 x 64 KiB: 50 MiB of events queued at once.
            last = Some(store.append_events(chunks("exec_chatty", seq + batch * 4, 4, 64 << 10)));
        }
        let started = std::time::Instant::now();
        running(&store, "exec_quiet").await;
        let took = started.elapsed();
        let last = last.unwrap();
        let mut last = std::pin::pin!(last.written());
        assert!(
            last.as_mut().now_or_never().is_none(),
            "the quiet run's write waited for all 50 MiB of events ({took:?})"
        );
        assert!(took < Duration::from_secs(1), "{took:?}");
        last.await;
        let stored = store.events_after("exec_chatty", 0, 1000).await.unwrap();
        assert_eq!(stored.len(), 801, "every event is written in the end");
    }
}

both! {
    async fn old_events_are_pruned_and_the_end_stays(store: DynStore) {
        let day = 86_400_000;
        for (id, finished_at) in [("exec_old", now_ms() - 40 * day), ("exec_new", now_ms())] {
            let seq = running(&store, id).await;
            store.append_events(chunks(id, seq, 3, 10)).written().await;
            store
                .finish_execution(id, succeeded(id, seq + 4, finished_at))
                .await
                .unwrap();
        }
        let cutoff = now_ms() - 30 * day;
        assert_eq!(store.prune_events(cutoff).await.unwrap(), 1);
        assert_eq!(store.prune_events(cutoff).await.unwrap(), 0, "nothing left");
        let old = store.events_after("exec_old", 0, 100).await.unwrap();
        assert_eq!(old.len(), 1);
        assert_eq!(old[0].kind, "end");
        let new = store.events_after("exec_new", 0, 100).await.unwrap();
        assert_eq!(new.len(), 5, "a recent run keeps its events");
        let record = store.execution("exec_old").await.unwrap().unwrap();
        assert_eq!(record.output.as_deref(), Some("{}"));
    }
}

both! {
    async fn a_run_written_once_with_its_end_reads_as_if_written_twice(store: DynStore) {
        let started = now_ms();
        let mut execution = new_execution("exec_once", Some("https://example.org/mine"), None);
        execution.started_at = Some(started);
        store
            .insert_finished(execution.clone(), succeeded("exec_once", 2, started + 1))
            .await
            .unwrap();
        let record = store.execution("exec_once").await.unwrap().unwrap();
        assert_eq!(record.status, ExecStatus::Succeeded);
        assert_eq!(record.output.as_deref(), Some("{}"));
        assert_eq!(record.attempts, 1);
        assert_eq!(record.started_at, Some(started));
        assert_eq!(record.finished_at, Some(started + 1));
        let kinds: Vec<String> = store
            .events_after("exec_once", 0, 100)
            .await
            .unwrap()
            .into_iter()
            .map(|e| e.kind)
            .collect();
        assert_eq!(kinds, ["start", "end"]);
        // Read from any point, in pages, like events written as rows.
        let rest = store.events_after("exec_once", 1, 100).await.unwrap();
        assert_eq!((rest.len(), rest[0].seq, rest[0].kind.as_str()), (1, 2, "end"));
        assert!(rest[0].data.contains(r#""type":"end""#), "{}", rest[0].data);
        let first = store.events_after("exec_once", 0, 1).await.unwrap();
        assert_eq!((first.len(), first[0].seq), (1, 1));
        assert_eq!(first[0].execution_id, "exec_once");
        assert!(store.events_after("exec_once", 2, 100).await.unwrap().is_empty());
        // Its notification is in the outbox with it.
        assert!(store.next_delivery_at().await.unwrap().is_some());
        // Nothing streamed: retention has nothing of it to prune, ever.
        assert_eq!(store.prune_events(now_ms() + 1).await.unwrap(), 0);
        assert_eq!(store.events_after("exec_once", 0, 100).await.unwrap().len(), 2);
        // Written once: a second write of the same execution is refused.
        assert!(
            store
                .insert_finished(execution, succeeded("exec_once", 2, started + 1))
                .await
                .is_err()
        );
    }
}

/// A new execution of `app` (not started), with a run webhook and a schedule tick when
/// given.
fn new_execution(
    id: &str,
    webhook: Option<&str>,
    tick: Option<floom_host::store::TickClaim>,
) -> NewExecution {
    NewExecution {
        id: id.into(),
        app: "app".into(),
        version: 1,
        action: "run".into(),
        inputs: "{}".into(),
        view_token_hash: "0".repeat(64),
        created_at: now_ms(),
        started_at: None,
        trigger_source: TriggerSource::Api,
        mcp_call: None,
        webhook: webhook.map(String::from),
        tick,
    }
}

both! {
    async fn the_outbox_is_written_with_the_terminal_change_and_only_with_it(store: DynStore) {
        use floom_host::store::{AfterAttempt, AttemptRecord, DeliveryState, SubscriptionRecord};
        store
            .insert_subscription(SubscriptionRecord {
                id: "whk_1".into(),
                app: "app".into(),
                url: "https://example.org/hook".into(),
                events: vec!["execution.succeeded".into(), "execution.failed".into()],
                secret: b"sealed".to_vec(),
                created_at: now_ms(),
                disabled_at: None,
                disabled_reason: None,
            })
            .await
            .unwrap();
        store
            .insert_execution(
                new_execution("exec_hooked", Some("https://example.org/mine"), None),
                None,
            )
            .await
            .unwrap();
        let seq = store
            .start_execution("exec_hooked", now_ms())
            .await
            .unwrap()
            .unwrap()
            .seq;
        assert_eq!(
            store.next_delivery_at().await.unwrap(),
            None,
            "nothing before the end"
        );

        let signal = store.outbox_signal();
        let notified = signal.notified();
        tokio::pin!(notified);
        notified.as_mut().enable();
        store
            .finish_execution("exec_hooked", succeeded("exec_hooked", seq + 1, now_ms()))
            .await
            .unwrap();
        tokio::time::timeout(Duration::from_secs(5), notified)
            .await
            .expect("the commit signals the outbox");
        let now = now_ms();
        assert!(store.next_delivery_at().await.unwrap().unwrap() <= now);
        // A change that did not commit adds nothing: the execution is no longer running.
        assert!(
            store
                .finish_execution("exec_hooked", succeeded("exec_hooked", seq + 2, now_ms()))
                .await
                .is_err()
        );
        let claimed = store.claim_deliveries(now, now + 30_000, 10).await.unwrap();
        assert_eq!(
            claimed.len(),
            2,
            "the subscription and the run's own webhook"
        );
        assert!(
            claimed
                .iter()
                .all(|d| d.delivery.event == "execution.succeeded")
        );
        let by_subscription = claimed
            .iter()
            .find(|d| d.delivery.subscription_id.is_some())
            .unwrap();
        assert_eq!(by_subscription.secret.as_deref(), Some(&b"sealed"[..]));
        let own = claimed
            .iter()
            .find(|d| d.delivery.subscription_id.is_none())
            .unwrap();
        assert_eq!(own.delivery.url, "https://example.org/mine");
        assert_eq!(own.secret, None, "the app has no run-webhook key yet");
        // Claimed: held from other claims.
        assert!(
            store
                .claim_deliveries(now, now + 30_000, 10)
                .await
                .unwrap()
                .is_empty()
        );

        // A cancelled run is an event the subscription did not ask for.
        store
            .insert_execution(new_execution("exec_cancelled", None, None), None)
            .await
            .unwrap();
        assert!(
            store
                .cancel_queued("exec_cancelled", now_ms())
                .await
                .unwrap()
        );
        assert!(
            store
                .claim_deliveries(now_ms() + 60_000, now_ms() + 90_000, 10)
                .await
                .unwrap()
                .iter()
                .all(|d| d.delivery.execution_id == "exec_hooked")
        );

        // Attempts: a retry, then the 2xx.
        let id = by_subscription.delivery.id.clone();
        let attempt = |n: i64, status: u16| AttemptRecord {
            delivery_id: id.clone(),
            attempt: n,
            at: now_ms(),
            status: Some(status),
            error: None,
            latency_ms: 3,
        };
        let retry_at = now_ms() + 5_000;
        store
            .record_attempts(vec![(attempt(1, 500), AfterAttempt::Retry(retry_at))])
            .await
            .unwrap();
        assert!(
            store
                .claim_deliveries(retry_at - 1, retry_at + 30_000, 10)
                .await
                .unwrap()
                .is_empty()
        );
        let again = store
            .claim_deliveries(retry_at, retry_at + 30_000, 10)
            .await
            .unwrap();
        assert_eq!(again.len(), 1);
        assert_eq!(again[0].delivery.attempts, 1);
        store
            .record_attempts(vec![(attempt(2, 204), AfterAttempt::Delivered)])
            .await
            .unwrap();
        let history = store.deliveries("whk_1", None, 10).await.unwrap();
        assert_eq!(history.len(), 1);
        assert_eq!(history[0].delivery.state, DeliveryState::Delivered);
        let statuses: Vec<_> = history[0].attempts.iter().map(|a| a.status).collect();
        assert_eq!(statuses, [Some(500), Some(204)]);

        // 410 Gone disables the subscription and cancels what it still had pending.
        store
            .record_attempts(vec![(
                AttemptRecord {
                    delivery_id: own.delivery.id.clone(),
                    ..attempt(1, 410)
                },
                AfterAttempt::Gone,
            )])
            .await
            .unwrap();
        let subscription = &store.subscriptions("app").await.unwrap()[0];
        assert!(
            subscription.disabled_at.is_none(),
            "a run webhook's 410 disables no subscription"
        );
        store
            .insert_execution(new_execution("exec_second", None, None), None)
            .await
            .unwrap();
        let seq = store
            .start_execution("exec_second", now_ms())
            .await
            .unwrap()
            .unwrap()
            .seq;
        store
            .finish_execution("exec_second", succeeded("exec_second", seq + 1, now_ms()))
            .await
            .unwrap();
        let due = store
            .claim_deliveries(now_ms(), now_ms() + 30_000, 10)
            .await
            .unwrap();
        assert_eq!(due.len(), 1);
        store
            .record_attempts(vec![(
                AttemptRecord {
                    delivery_id: due[0].delivery.id.clone(),
                    ..attempt(1, 410)
                },
                AfterAttempt::Gone,
            )])
            .await
            .unwrap();
        let subscription = &store.subscriptions("app").await.unwrap()[0];
        assert!(subscription.disabled_at.is_some());
        store
            .insert_execution(new_execution("exec_third", None, None), None)
            .await
            .unwrap();
        let seq = store
            .start_execution("exec_third", now_ms())
            .await
            .unwrap()
            .unwrap()
            .seq;
        store
            .finish_execution("exec_third", succeeded("exec_third", seq + 1, now_ms()))
            .await
            .unwrap();
        assert_eq!(
            store.next_delivery_at().await.unwrap(),
            None,
            "a disabled subscription gets nothing"
        );

        // A subscription removed between a change and the claim that would deliver it is
        // not delivered to.
        store
            .insert_subscription(SubscriptionRecord {
                id: "whk_2".into(),
                app: "app".into(),
                url: "https://example.org/second".into(),
                events: vec!["execution.succeeded".into()],
                secret: b"sealed".to_vec(),
                created_at: now_ms(),
                disabled_at: None,
                disabled_reason: None,
            })
            .await
            .unwrap();
        let seq = running(&store, "exec_fourth").await;
        store
            .finish_execution("exec_fourth", succeeded("exec_fourth", seq + 1, now_ms()))
            .await
            .unwrap();
        assert!(store.next_delivery_at().await.unwrap().is_some());
        assert!(store.delete_subscription("app", "whk_2").await.unwrap());
        assert!(
            store
                .claim_deliveries(now_ms(), now_ms() + 30_000, 10)
                .await
                .unwrap()
                .is_empty()
        );
        assert_eq!(store.next_delivery_at().await.unwrap(), None);
    }
}

both! {
    async fn a_schedule_tick_is_claimed_once_with_its_execution(store: DynStore) {
        use floom_host::store::{ScheduleRecord, TickClaim, TickTaken};
        let tick = 1_800_000_000_000;
        store
            .insert_schedule(ScheduleRecord {
                id: "sch_1".into(),
                app: "app".into(),
                action: "run".into(),
                inputs: "{}".into(),
                cron: "* * * * * *".into(),
                timezone: "UTC".into(),
                paused: false,
                next_tick: tick,
                created_at: now_ms(),
                last_tick: None,
                last_execution_id: None,
                last_error: None,
            })
            .await
            .unwrap();
        let claim = |at: i64| TickClaim {
            schedule_id: "sch_1".into(),
            tick: at,
            next_tick: at + 1000,
        };
        store
            .insert_execution(new_execution("exec_tick", None, Some(claim(tick))), None)
            .await
            .unwrap();
        // The same tick again, whoever tries: refused, and nothing is written.
        let again = store
            .insert_execution(new_execution("exec_again", None, Some(claim(tick))), None)
            .await
            .unwrap_err();
        assert!(again.is::<TickTaken>(), "{again:#}");
        assert!(store.execution("exec_again").await.unwrap().is_none());
        let schedule = &store.schedules("app").await.unwrap()[0];
        assert_eq!(schedule.next_tick, tick + 1000);
        assert_eq!(schedule.last_execution_id.as_deref(), Some("exec_tick"));
        // Skipping a taken tick does nothing; skipping a due one moves on and says why.
        assert!(!store.skip_tick(claim(tick), "late".into()).await.unwrap());
        assert!(
            store
                .skip_tick(claim(tick + 1000), "paused".into())
                .await
                .unwrap()
        );
        let schedule = &store.schedules("app").await.unwrap()[0];
        assert_eq!(schedule.next_tick, tick + 2000);
        assert_eq!(schedule.last_error.as_deref(), Some("paused"));
        // Paused: nothing is due, and no tick can be claimed.
        assert!(
            store
                .set_schedule_paused("app", "sch_1", true, tick + 2000)
                .await
                .unwrap()
        );
        assert!(store.due_schedules(i64::MAX).await.unwrap().is_empty());
        let paused = store
            .insert_execution(
                new_execution("exec_paused", None, Some(claim(tick + 2000))),
                None,
            )
            .await
            .unwrap_err();
        assert!(paused.is::<TickTaken>());
        assert!(
            store
                .set_schedule_paused("app", "sch_1", false, tick + 2000)
                .await
                .unwrap()
        );
        assert_eq!(store.due_schedules(tick + 2000).await.unwrap().len(), 1);
        assert!(store.delete_schedule("app", "sch_1").await.unwrap());
        assert!(!store.delete_schedule("app", "sch_1").await.unwrap());
    }
}

both! {
    async fn triggers_are_kept_rotated_and_removed(store: DynStore) {
        use floom_host::store::TriggerRecord;
        store
            .insert_trigger(TriggerRecord {
                id: "trg_1".into(),
                app: "app".into(),
                action: "run".into(),
                secret: b"one".to_vec(),
                created_at: now_ms(),
                rotated_at: None,
            })
            .await
            .unwrap();
        assert_eq!(store.triggers("app").await.unwrap().len(), 1);
        assert!(
            !store
                .rotate_trigger("other", "trg_1", b"x".to_vec(), 1)
                .await
                .unwrap()
        );
        assert!(
            store
                .rotate_trigger("app", "trg_1", b"two".to_vec(), 5)
                .await
                .unwrap()
        );
        let trigger = store.trigger("trg_1").await.unwrap().unwrap();
        assert_eq!(trigger.secret, b"two");
        assert_eq!(trigger.rotated_at, Some(5));
        // Deleting the app removes its triggers.
        store.delete_app("app", now_ms()).await.unwrap();
        assert!(store.trigger("trg_1").await.unwrap().is_none());
        assert!(!store.delete_trigger("app", "trg_1").await.unwrap());
    }
}

both! {
    async fn ended_deliveries_and_old_tick_claims_are_pruned(store: DynStore) {
        use floom_host::store::{
            AfterAttempt, AttemptRecord, ScheduleRecord, SubscriptionRecord, TickClaim,
        };
        store
            .insert_subscription(SubscriptionRecord {
                id: "whk_1".into(),
                app: "app".into(),
                url: "https://example.org/hook".into(),
                events: vec!["execution.succeeded".into()],
                secret: b"sealed".to_vec(),
                created_at: now_ms(),
                disabled_at: None,
                disabled_reason: None,
            })
            .await
            .unwrap();
        for id in ["exec_delivered", "exec_pending"] {
            let seq = running(&store, id).await;
            store
                .finish_execution(id, succeeded(id, seq + 1, now_ms()))
                .await
                .unwrap();
        }
        let claimed = store
            .claim_deliveries(now_ms(), now_ms() + 30_000, 10)
            .await
            .unwrap();
        let delivered = claimed
            .iter()
            .find(|d| d.delivery.execution_id == "exec_delivered")
            .unwrap();
        store
            .record_attempts(vec![(
                AttemptRecord {
                    delivery_id: delivered.delivery.id.clone(),
                    attempt: 1,
                    at: now_ms(),
                    status: Some(200),
                    error: None,
                    latency_ms: 1,
                },
                AfterAttempt::Delivered,
            )])
            .await
            .unwrap();
        store
            .insert_schedule(ScheduleRecord {
                id: "sch_1".into(),
                app: "app".into(),
                action: "run".into(),
                inputs: "{}".into(),
                cron: "* * * * * *".into(),
                timezone: "UTC".into(),
                paused: false,
                next_tick: 1000,
                created_at: now_ms(),
                last_tick: None,
                last_execution_id: None,
                last_error: None,
            })
            .await
            .unwrap();
        let mut execution = NewExecution {
            id: "exec_ticked".into(),
            app: "app".into(),
            version: 1,
            action: "run".into(),
            inputs: "{}".into(),
            view_token_hash: "0".repeat(64),
            created_at: now_ms(),
            started_at: None,
            trigger_source: TriggerSource::Schedule,
            mcp_call: None,
            webhook: None,
            tick: None,
        };
        execution.tick = Some(TickClaim {
            schedule_id: "sch_1".into(),
            tick: 1000,
            next_tick: 2000,
        });
        store.insert_execution(execution, None).await.unwrap();

        // Nothing is old enough yet.
        assert_eq!(store.prune_outbox(Some(0), 0).await.unwrap(), 0);
        // Kept forever without a retention period; the old tick claim goes.
        assert_eq!(store.prune_outbox(None, 5000).await.unwrap(), 1);
        let later = now_ms() + 1000;
        assert_eq!(store.prune_outbox(Some(later), 5000).await.unwrap(), 1);
        assert_eq!(store.prune_outbox(Some(later), 5000).await.unwrap(), 0);
        let left = store.deliveries("whk_1", None, 10).await.unwrap();
        assert_eq!(left.len(), 1, "a pending delivery is never pruned");
        assert_eq!(left[0].delivery.execution_id, "exec_pending");
    }
}

/// Writes an execution of `app` accepted at `created_at` that ran `ms` (when given) and
/// ended `status`; or one still queued when `status` is queued.
async fn ended(
    store: &DynStore,
    id: &str,
    app: &str,
    created_at: i64,
    ms: Option<i64>,
    status: ExecStatus,
    trigger_source: TriggerSource,
) {
    store
        .insert_execution(
            NewExecution {
                id: id.into(),
                app: app.into(),
                version: 1,
                action: "run".into(),
                inputs: "{}".into(),
                view_token_hash: "0".repeat(64),
                created_at,
                started_at: ms.map(|_| created_at),
                trigger_source,
                mcp_call: None,
                webhook: None,
                tick: None,
            },
            None,
        )
        .await
        .unwrap();
    let Some(ms) = ms else { return };
    let mut finish = succeeded(id, 2, created_at + ms);
    finish.status = status;
    store.finish_execution(id, finish).await.unwrap();
}

both! {
    async fn executions_per_day_count_each_status_and_take_nearest_rank_percentiles(store: DynStore) {
        let day = floom_host::store::DAY_MS;
        let today = now_ms() / day;
        let api = TriggerSource::Api;
        // Long ago (inserted first, as the list order follows insertion): not in the window.
        ended(
            &store,
            "exec_d",
            "app",
            (today - 40) * day,
            Some(1),
            ExecStatus::Succeeded,
            api,
        )
        .await;
        // Two days ago: ten runs of 10, 20, ..., 100 ms, the last two failed.
        for i in 0..10 {
            let status = if i < 8 {
                ExecStatus::Succeeded
            } else {
                ExecStatus::Failed
            };
            let at = (today - 2) * day + 1000 * i;
            ended(
                &store,
                &format!("exec_a{i}"),
                "app",
                at,
                Some(10 * (i + 1)),
                status,
                api,
            )
            .await;
        }
        // Today: one run of 7 ms, one still queued (no duration).
        ended(
            &store,
            "exec_b",
            "app",
            today * day + 5,
            Some(7),
            ExecStatus::Succeeded,
            api,
        )
        .await;
        ended(
            &store,
            "exec_c",
            "app",
            today * day + 6,
            None,
            ExecStatus::Queued,
            api,
        )
        .await;
        // Another app's run does not count.
        ended(
            &store,
            "exec_e",
            "other",
            today * day,
            Some(1),
            ExecStatus::Succeeded,
            api,
        )
        .await;

        let series = floom_host::store::per_day(store.as_ref(), "app", 3, now_ms())
            .await
            .unwrap();
        assert_eq!(
            series.iter().map(|d| d.day).collect::<Vec<_>>(),
            [today - 2, today - 1, today],
            "one entry per day, oldest first, empty days included"
        );
        let mut counts = series[0].counts.clone();
        counts.sort_by_key(|(s, _)| s.as_str());
        assert_eq!(
            counts,
            [(ExecStatus::Failed, 2), (ExecStatus::Succeeded, 8)]
        );
        // Nearest rank: p50 is the 5th of 10 (50 ms), p95 the 10th (100 ms).
        assert_eq!((series[0].p50_ms, series[0].p95_ms), (Some(50), Some(100)));
        assert!(series[1].counts.is_empty());
        assert_eq!((series[1].p50_ms, series[1].p95_ms), (None, None));
        let mut counts = series[2].counts.clone();
        counts.sort_by_key(|(s, _)| s.as_str());
        assert_eq!(
            counts,
            [(ExecStatus::Queued, 1), (ExecStatus::Succeeded, 1)]
        );
        assert_eq!((series[2].p50_ms, series[2].p95_ms), (Some(7), Some(7)));

        let last = store.last_runs().await.unwrap();
        assert_eq!(
            last.get("app"),
            Some(&(today * day + 6)),
            "the newest run's time"
        );
        // Runs of an app that was never published are not listed.
        assert!(!last.contains_key("other"));
    }
}

/// Puts running execution `id` in `awaiting_approval`, expiring at `expires_at`.
async fn awaiting(store: &DynStore, id: &str, expires_at: i64) {
    let seq = running(store, id).await;
    let approval = serde_json::json!({
        "action": "run", "step": 1, "proposed_output": { "draft": 1 },
        "requested_at": "2026-12-01T00:00:00Z", "expires_at": "2026-12-04T00:00:00Z",
    })
    .to_string();
    let raw = serde_json::value::RawValue::from_string(approval.clone()).unwrap();
    store
        .finish_execution(
            id,
            Finish {
                status: ExecStatus::AwaitingApproval,
                output: None,
                error: None,
                usage: None,
                finished_at: now_ms(),
                event: events::approval(id, seq + 1, &raw),
                approval: Some((approval, expires_at)),
                attempt: 1,
                alone: false,
            },
        )
        .await
        .unwrap();
}

both! {
    async fn an_approval_is_decided_once_and_expires_only_when_due(store: DynStore) {
        use floom_host::store::{Decided, Decision, DecisionNote, ListApprovals};
        let later = now_ms() + 3_600_000;
        awaiting(&store, "exec_a", later).await;
        awaiting(&store, "exec_b", later).await;
        awaiting(&store, "exec_c", now_ms() - 1).await;
        let pending = store
            .pending_approvals(ListApprovals {
                limit: 2,
                ..ListApprovals::default()
            })
            .await
            .unwrap();
        let ids: Vec<&str> = pending.iter().map(|r| r.id.as_str()).collect();
        assert_eq!(ids, ["exec_a", "exec_b"], "oldest first, a page of 2");
        let rest = store
            .pending_approvals(ListApprovals {
                after: Some(pending[1].n),
                limit: 2,
                ..ListApprovals::default()
            })
            .await
            .unwrap();
        assert_eq!(rest.len(), 1);
        assert_eq!(store.pending_approval_count(None).await.unwrap(), 3);
        assert_eq!(
            store
                .pending_approval_count(Some(vec!["other".into()]))
                .await
                .unwrap(),
            0
        );

        // Only the due one expires.
        assert_eq!(store.expire_approvals(now_ms()).await.unwrap(), ["exec_c"]);
        assert!(store.expire_approvals(now_ms()).await.unwrap().is_empty());
        let expired = store.execution("exec_c").await.unwrap().unwrap();
        assert_eq!(expired.status, ExecStatus::TimedOut);
        assert!(expired.error.unwrap().contains("approval_expired"));

        let note = || DecisionNote {
            by: "admin".into(),
            annotation: Some("fine".into()),
            edited: false,
        };
        let approve = || Decision::Approve {
            output: r#"{"draft":2}"#.into(),
            then: None,
        };
        let decided = store
            .decide("exec_a", approve(), note(), now_ms())
            .await
            .unwrap();
        let Decided::Ended(record) = decided else {
            panic!("approving without then ends it: {decided:?}");
        };
        assert_eq!(record.status, ExecStatus::Succeeded);
        assert_eq!(record.output.as_deref(), Some(r#"{"draft":2}"#));
        assert!(
            record
                .approval
                .unwrap()
                .contains(r#""decision":"approved""#)
        );
        // A second decision (here or from another host) finds it decided.
        assert!(matches!(
            store
                .decide("exec_a", Decision::Reject, note(), now_ms())
                .await
                .unwrap(),
            Decided::NotPending(ExecStatus::Succeeded)
        ));
        assert!(matches!(
            store
                .decide("exec_x", Decision::Reject, note(), now_ms())
                .await
                .unwrap(),
            Decided::NotFound
        ));

        // With then: the next step is queued with the approved output as its inputs.
        let next = store
            .decide(
                "exec_b",
                Decision::Approve {
                    output: r#"{"to":"x"}"#.into(),
                    then: Some("send".into()),
                },
                note(),
                now_ms(),
            )
            .await
            .unwrap();
        let Decided::NextStep(record) = next else {
            panic!("then queues the next step: {next:?}");
        };
        assert_eq!(record.status, ExecStatus::Queued);
        assert_eq!((record.step, record.attempts), (2, 0));
        assert_eq!(record.current_action(), "send");
        assert_eq!(record.current_inputs(), r#"{"to":"x"}"#);
        assert_eq!(record.action, "run", "the execution keeps its own action");
        let events = store.events_after("exec_b", 0, 100).await.unwrap();
        let kinds: Vec<&str> = events.iter().map(|e| e.kind.as_str()).collect();
        assert_eq!(kinds, ["start", "approval", "decision"]);
        assert_eq!(store.pending_approval_count(None).await.unwrap(), 0);
        drop(store);
    }
}
