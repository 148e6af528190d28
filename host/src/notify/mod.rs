//! Notifications out (SPEC section 9): the outbox the store writes with every
//! execution's terminal change, delivered to each subscribed URL (and the run's own
//! `webhook`) with Standard Webhooks signatures ([`sign`]), retried with backoff for
//! 24 h.
//!
//! The [`Notifier`] claims due deliveries from the store, attempts each one
//! ([`deliver`], through the runtime's outbound checker), and records every attempt with
//! what follows it (claims and records in batches, so a busy outbox costs the store a
//! few writes, not two per delivery): delivered on a 2xx, the subscription disabled on `410 Gone`, another
//! attempt later otherwise (about 5 s, 30 s, 2 min, 10 min, 1 h, then every 3 h, each
//! with jitter), given up 24 h after the change. Nothing waits in memory: a delivery
//! pending at a crash is in the store, and a claimed one is only held for
//! [`HOLD`], so a restart (or another host) takes it up again.

pub mod deliver;
pub mod sign;

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use serde_json::json;
use tokio::sync::{Notify, Semaphore, mpsc};

use crate::api::Services;
use crate::api::error::ApiError;
use crate::api::executions::Envelope;
use crate::crypto::Sealer;
use crate::store::{AfterAttempt, AttemptRecord, DueDelivery, DynStore, Millis, now_ms};

/// Deliveries attempted at once.
pub(crate) const CONCURRENCY: usize = 16;
/// How long one attempt may take: connecting, sending, and the answer's head.
pub const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a claimed delivery is held for its attempt before anyone may claim it again:
/// longer than an attempt, short enough that a crash mid-attempt delays it little.
pub const HOLD: Duration = Duration::from_secs(30);
/// How long a delivery is retried, from the change it announces.
pub const RETRY_WINDOW: Duration = Duration::from_secs(24 * 3600);
/// The wait before each retry; the last repeats.
const BACKOFF: [Duration; 6] = [
    Duration::from_secs(5),
    Duration::from_secs(30),
    Duration::from_secs(120),
    Duration::from_secs(600),
    Duration::from_secs(3600),
    Duration::from_secs(3 * 3600),
];
/// How long the notifier lets the outbox fill after it grows before claiming: the
/// changes of that window go out on one claim, and their attempts are recorded in a
/// few commits, rather than two store writes for each (which, with a run a
/// millisecond, took the store's time from the runs themselves).
const GATHER: Duration = Duration::from_millis(10);
/// Most attempts recorded in one commit.
const RECORD_BATCH: usize = 256;
/// The longest the notifier sleeps without looking at the store (another host may have
/// added deliveries).
const IDLE_LOOK: Duration = Duration::from_secs(60);
/// Longest URL accepted for a notification.
const MAX_URL: usize = 2048;

/// Checks a notification URL when it is given (a subscription, a run's `webhook`):
/// http or https with a host, and, unless private networks are allowed, not a private
/// address literal or `localhost`. A name that resolves to a private address is refused
/// at delivery, by the same checker the apps' requests go through.
pub fn check_url(url: &str, allow_private: bool) -> Result<String, String> {
    if url.len() > MAX_URL {
        return Err(format!("the URL is longer than {MAX_URL} bytes"));
    }
    let uri: hyper::Uri = url
        .parse()
        .map_err(|e| format!("{url:?} is not a URL: {e}"))?;
    let destination = floom_runtime::Destination::of(&uri).map_err(|e| format!("{url:?}: {e}"))?;
    if !allow_private && destination.is_private_literal() {
        return Err(format!(
            "{url:?} is a private address; notifications go to public addresses unless the \
             server runs with --allow-private-network"
        ));
    }
    Ok(url.to_owned())
}

/// The associated data a subscription's key is sealed with.
pub fn subscription_owner(id: &str) -> Vec<u8> {
    format!("webhook\0{id}").into_bytes()
}

/// The associated data an app's run-webhook key is sealed with.
fn run_webhook_owner(app: &str) -> Vec<u8> {
    format!("run-webhook\0{app}").into_bytes()
}

/// The app's key for the webhooks runs name themselves (`whsec_...`), made on first use.
pub async fn run_webhook_secret(state: &Services, app: &str) -> Result<String, ApiError> {
    let owner = run_webhook_owner(app);
    let fresh = state.sealer.seal(&owner, sign::new_key()?.as_bytes())?;
    let sealed = state.store.run_webhook_secret(app, fresh, now_ms()).await?;
    let key = state.sealer.open(&owner, &sealed)?;
    String::from_utf8(key).map_err(|_| ApiError::internal("a stored run-webhook key is not text"))
}

/// When attempt `made` (1, 2, ...) of a delivery written at `created_at` is followed by
/// another, given that it failed at `now`; `None` once the retry window is over. Each
/// wait is off by up to a tenth either way, so receivers that came back are not hit by
/// every sender at once.
pub fn next_attempt(created_at: Millis, made: i64, now: Millis) -> Option<Millis> {
    let step = usize::try_from(made.max(1) - 1).unwrap_or(usize::MAX);
    let wait = BACKOFF[step.min(BACKOFF.len() - 1)];
    let mut random = [0u8; 2];
    let spread = match getrandom::fill(&mut random) {
        Ok(()) => f64::from(u16::from_le_bytes(random)) / f64::from(u16::MAX) * 0.2 - 0.1,
        Err(_) => 0.0,
    };
    let wait_ms = (wait.as_millis() as f64 * (1.0 + spread)) as Millis;
    let at = now + wait_ms;
    let window = Millis::try_from(RETRY_WINDOW.as_millis()).unwrap_or(Millis::MAX);
    (at <= created_at + window).then_some(at)
}

/// The delivery worker.
pub struct Notifier {
    store: DynStore,
    sealer: Arc<Sealer>,
    allow_private: bool,
    slots: Arc<Semaphore>,
    /// Kept-alive connections to receivers.
    connections: deliver::Connections,
    /// Notified when an attempt is recorded with a retry: it may be due sooner than
    /// the loop planned to look.
    recorded: Notify,
}

/// An attempt made, with what follows it, on its way to the store.
type Made = (AttemptRecord, AfterAttempt);

impl Notifier {
    /// A notifier reading the outbox of `store`, opening keys with `sealer`; deliveries
    /// may reach private addresses only with `allow_private`.
    pub fn new(store: DynStore, sealer: Arc<Sealer>, allow_private: bool) -> Arc<Self> {
        Arc::new(Notifier {
            store,
            sealer,
            allow_private,
            slots: Arc::new(Semaphore::new(CONCURRENCY)),
            connections: deliver::Connections::default(),
            recorded: Notify::new(),
        })
    }

    /// Delivers forever: claims what is due, attempts it (at most [`CONCURRENCY`] at
    /// once), then sleeps until the next delivery is due or the outbox grows.
    pub async fn run(self: Arc<Self>) {
        let signal = self.store.outbox_signal();
        let (made, to_record) = mpsc::channel(RECORD_BATCH);
        tokio::spawn(self.clone().record(to_record));
        loop {
            let grew = signal.notified();
            let recorded = self.recorded.notified();
            tokio::pin!(grew, recorded);
            grew.as_mut().enable();
            recorded.as_mut().enable();
            let wait = match self.round(&made).await {
                Ok(wait) => wait,
                Err(e) => {
                    tracing::warn!("notifications: cannot read the outbox (retrying): {e:#}");
                    Duration::from_secs(1)
                }
            };
            tokio::select! {
                () = &mut grew => tokio::time::sleep(GATHER).await,
                () = &mut recorded => {}
                () = tokio::time::sleep(wait) => {}
            }
        }
    }

    /// Writes the attempts made, those that end within [`GATHER`] of each other in one
    /// commit.
    async fn record(self: Arc<Self>, mut made: mpsc::Receiver<Made>) {
        let mut batch = Vec::with_capacity(RECORD_BATCH);
        while made.recv_many(&mut batch, RECORD_BATCH).await > 0 {
            // The other attempts of a claim end within milliseconds: one commit for all.
            tokio::time::sleep(GATHER).await;
            while batch.len() < RECORD_BATCH
                && let Ok(more) = made.try_recv()
            {
                batch.push(more);
            }
            let count = batch.len();
            let retry = batch
                .iter()
                .any(|(_, next)| matches!(next, AfterAttempt::Retry(_)));
            match self.store.record_attempts(std::mem::take(&mut batch)).await {
                // Only a retry can be due sooner than the loop planned to look.
                Ok(()) if retry => self.recorded.notify_one(),
                Ok(()) => {}
                // They stay claimed until the hold passes, then are attempted again.
                Err(e) => {
                    tracing::warn!(attempts = count, "cannot record delivery attempts: {e:#}");
                }
            }
        }
    }

    /// Starts the attempts due now, each sent to `made` when it ends; returns how long
    /// to sleep.
    async fn round(self: &Arc<Self>, made: &mpsc::Sender<Made>) -> anyhow::Result<Duration> {
        loop {
            let now = now_ms();
            match self.store.next_delivery_at().await? {
                Some(due) if due <= now => {}
                Some(due) => {
                    let wait = Duration::from_millis(u64::try_from(due - now).unwrap_or(0));
                    return Ok(wait.min(IDLE_LOOK));
                }
                None => return Ok(IDLE_LOOK),
            }
            // Claim only what can start now, so nothing is held while it waits here.
            let free = self.slots.available_permits();
            if free == 0 {
                let permit = self.slots.clone().acquire_owned().await?;
                drop(permit);
                // Let more attempts end, so the next claim takes more than one.
                tokio::time::sleep(GATHER).await;
                continue;
            }
            let hold = Millis::try_from(HOLD.as_millis()).unwrap_or(30_000);
            let claimed = self
                .store
                .claim_deliveries(now, now + hold, u32::try_from(free).unwrap_or(1))
                .await?;
            if claimed.is_empty() {
                // Another host took them.
                continue;
            }
            for due in claimed {
                let permit = self.slots.clone().acquire_owned().await?;
                let this = self.clone();
                let made = made.clone();
                tokio::spawn(async move {
                    let attempt = this.attempt(due).await;
                    // The slot is held until the recorder takes it: a slow store slows
                    // the claims rather than growing a queue.
                    let _ = made.send(attempt).await;
                    drop(permit);
                });
            }
        }
    }

    /// One attempt, and what follows it.
    async fn attempt(&self, due: DueDelivery) -> Made {
        let delivery = &due.delivery;
        let made = delivery.attempts + 1;
        let at = now_ms();
        let started = Instant::now();
        let result = self.send(&due).await;
        let latency_ms = i64::try_from(started.elapsed().as_millis()).unwrap_or(i64::MAX);
        let now = now_ms();
        let (status, error, next) = match result {
            Ok(status) if (200..300).contains(&status) => {
                (Some(status), None, AfterAttempt::Delivered)
            }
            Ok(410) => (
                Some(410),
                Some("410 Gone: the subscription is disabled".to_owned()),
                AfterAttempt::Gone,
            ),
            Ok(status) => (
                Some(status),
                (300..400)
                    .contains(&status)
                    .then(|| "redirects are not followed".to_owned()),
                retry(delivery.created_at, made, now),
            ),
            Err(Failure::Retry(e)) => (None, Some(e), retry(delivery.created_at, made, now)),
            Err(Failure::Final(e)) => (None, Some(e), AfterAttempt::GiveUp),
        };
        let attempt = AttemptRecord {
            delivery_id: delivery.id.clone(),
            attempt: made,
            at,
            status,
            error,
            latency_ms,
        };
        (attempt, next)
    }

    async fn send(&self, due: &DueDelivery) -> Result<u16, Failure> {
        let delivery = &due.delivery;
        let owner = match &delivery.subscription_id {
            Some(id) => subscription_owner(id),
            None => run_webhook_owner(&delivery.app),
        };
        let key = due
            .secret
            .as_ref()
            .and_then(|sealed| self.sealer.open(&owner, sealed).ok())
            .and_then(|key| String::from_utf8(key).ok())
            .ok_or_else(|| {
                Failure::Final(
                    "the signing key is gone (its app or subscription was deleted)".into(),
                )
            })?;
        let execution = self
            .store
            .execution(&delivery.execution_id)
            .await
            .map_err(|e| Failure::Retry(format!("cannot read the execution: {e:#}")))?
            .ok_or_else(|| Failure::Final("the execution was purged".into()))?;
        let envelope = Envelope::from_record(&execution)
            .map_err(|_| Failure::Final("the execution's stored output is not JSON".into()))?;
        let mut data = serde_json::to_value(&envelope)
            .map_err(|e| Failure::Final(format!("cannot serialize the execution: {e}")))?;
        if let Some(data) = data.as_object_mut() {
            data.insert("app".into(), json!(execution.app));
            data.insert("version".into(), json!(execution.version));
            data.insert("action".into(), json!(execution.action));
            data.insert("trigger_source".into(), json!(execution.trigger_source));
            data.insert("attempts".into(), json!(execution.attempts));
            data.insert(
                "created_at".into(),
                json!(crate::api::timestamp(execution.created_at)),
            );
            data.insert(
                "finished_at".into(),
                json!(execution.finished_at.map(crate::api::timestamp)),
            );
            data.insert(
                "duration_ms".into(),
                json!(
                    execution
                        .started_at
                        .zip(execution.finished_at)
                        .map(|(s, f)| f - s)
                ),
            );
        }
        let now = now_ms();
        let body = serde_json::to_vec(&json!({
            "type": delivery.event,
            "timestamp": crate::api::timestamp(now),
            "data": data,
        }))
        .map_err(|e| Failure::Final(format!("cannot serialize the payload: {e}")))?;
        // Signed at each attempt: receivers refuse timestamps more than minutes old.
        let timestamp = now / 1000;
        let signature = sign::signature(&key, &delivery.id, timestamp, &body)
            .map_err(|e| Failure::Final(format!("{e:#}")))?;
        let headers = [
            ("webhook-id", delivery.id.clone()),
            ("webhook-timestamp", timestamp.to_string()),
            ("webhook-signature", signature),
        ];
        self.connections
            .post(
                &delivery.url,
                self.allow_private,
                &headers,
                Bytes::from(body),
                ATTEMPT_TIMEOUT,
            )
            .await
            .map_err(Failure::Retry)
    }
}

/// Why an attempt got no answer.
enum Failure {
    /// Worth another attempt (the receiver may come back).
    Retry(String),
    /// Never worth another attempt.
    Final(String),
}

fn retry(created_at: Millis, made: i64, now: Millis) -> AfterAttempt {
    next_attempt(created_at, made, now).map_or(AfterAttempt::GiveUp, AfterAttempt::Retry)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retries_back_off_then_stop_after_a_day() {
        let close = |at: Option<Millis>, expected_s: i64| {
            let at = at.expect("a retry");
            let ms = expected_s * 1000;
            assert!((at - ms).abs() <= ms / 10, "{at} vs {ms}");
        };
        close(next_attempt(0, 1, 0), 5);
        close(next_attempt(0, 2, 0), 30);
        close(next_attempt(0, 3, 0), 120);
        close(next_attempt(0, 4, 0), 600);
        close(next_attempt(0, 5, 0), 3600);
        close(next_attempt(0, 6, 0), 3 * 3600);
        close(next_attempt(0, 40, 0), 3 * 3600);
        let day = 24 * 3600 * 1000;
        assert_eq!(next_attempt(0, 9, day - 1000), None);
    }

    #[test]
    fn urls_are_http_and_public_unless_allowed() {
        assert!(check_url("https://example.org/hook", false).is_ok());
        for refused in [
            "ftp://example.org/",
            "http://127.0.0.1:9/",
            "http://localhost/",
            "http://[::1]/",
            "http://10.1.2.3/",
            "not a url",
        ] {
            assert!(check_url(refused, false).is_err(), "{refused}");
        }
        assert!(check_url("http://127.0.0.1:9/", true).is_ok());
        assert!(check_url("ftp://example.org/", true).is_err());
    }
}
