//! Noisy neighbours: one app spins, bombs its memory and floods stdout on every slot it
//! may take; a well-behaved app's sync runs and `/healthz` stay within a small bound of
//! their idle latency, because the per-app cap leaves it slots and guests run niced.
//!
//! `cargo test -p floom-host --test noisy_neighbours -- --nocapture` prints the ratios.

mod support;

use std::time::{Duration, Instant};

use serde_json::json;
use support::Server;

const SLOTS: &str = "8";

/// p50 and p99 of `samples` sequential calls of `call`.
async fn latencies<F, Fut>(samples: usize, mut call: F) -> (Duration, Duration)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    let mut all = Vec::with_capacity(samples);
    for _ in 0..samples {
        let started = Instant::now();
        call().await;
        all.push(started.elapsed());
    }
    all.sort();
    (all[samples / 2], all[samples * 99 / 100])
}

async fn hello(server: &Server) {
    let run = server
        .run_sync("/api/apps/hello/run", json!({ "name": "Ada" }))
        .await;
    assert_eq!(run["status"], "succeeded", "{run}");
}

async fn healthz(server: &Server) {
    server.health().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_well_behaved_app_keeps_its_latency_beside_a_noisy_one() {
    let server = Server::start(&[
        "--examples",
        "--max-concurrent-runs",
        SLOTS,
        "--runs-per-minute",
        "0",
    ]);
    server
        .publish_misbehave("noisy", "[limits]\ntimeout_s = 20\nmemory_mb = 64")
        .await;
    let (hello_idle, hello_idle_p99) = latencies(200, || hello(&server)).await;
    let (health_idle, health_idle_p99) = latencies(200, || healthz(&server)).await;

    // Far more noise than the noisy app may run at once (6 of 8 slots): spinners,
    // memory bombs and stdout floods, in a queue that keeps its share full.
    for i in 0..30 {
        let action = ["spin", "alloc", "flood-stdout"][i % 3];
        let response = server
            .post(&format!("/api/apps/noisy/actions/{action}/run"))
            .json(&json!({ "inputs": {} }))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 202);
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let health = server.health().await;
    assert_eq!(
        health["running"], 6,
        "the noisy app holds its cap: {health}"
    );

    let (hello_busy, hello_busy_p99) = latencies(200, || hello(&server)).await;
    let (health_busy, health_busy_p99) = latencies(200, || healthz(&server)).await;
    let ratio = |busy: Duration, idle: Duration| busy.as_secs_f64() / idle.as_secs_f64();
    println!(
        "hello sync run: p50 {hello_idle:?} -> {hello_busy:?}, p99 {hello_idle_p99:?} -> \
         {hello_busy_p99:?} ({:.1}x); /healthz: p50 {health_idle:?} -> {health_busy:?}, \
         p99 {health_idle_p99:?} -> {health_busy_p99:?} ({:.1}x)",
        ratio(hello_busy_p99, hello_idle_p99),
        ratio(health_busy_p99, health_idle_p99),
    );
    // Generous bounds (debug builds, a shared CI machine): what matters is that the
    // well-behaved app is not queued behind the noise, which would take seconds.
    assert!(
        hello_busy_p99 < Duration::from_millis(250),
        "{hello_busy_p99:?}"
    );
    assert!(
        health_busy_p99 < Duration::from_millis(100),
        "{health_busy_p99:?}"
    );
}
