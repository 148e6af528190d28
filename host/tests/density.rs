//! Density: how many executions of an app that sleeps one server holds at once, and
//! what each costs in resident memory.
//!
//! `cargo test --test density -- --nocapture` prints the figures (1,000 executions);
//! `-- --ignored --nocapture` adds 10,000 at once and how RSS grows with the memory the
//! app holds (`FLOOM_BIN=$PWD/target/release/floom` runs them on the release build).

mod support;

use std::time::{Duration, Instant};

use futures_util::StreamExt;
use serde_json::{Value, json};
use support::Server;

/// Waits until `healthz` reports `running` executions and none queued.
async fn wait_running(server: &Server, running: u64, timeout: Duration) {
    let started = Instant::now();
    loop {
        let health = server.health().await;
        if health["running"] == running && health["queued"] == 0 {
            return;
        }
        assert!(
            started.elapsed() < timeout,
            "expected {running} running, got {health}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Starts `runs` executions that each hold `mib` MiB for `ms`, waits until all run at
/// once, and returns the server's RSS growth per execution (bytes) and its total RSS.
async fn hold(server: &Server, runs: usize, mib: u64, ms: u64) -> (u64, u64) {
    wait_running(server, 0, Duration::from_secs(60)).await;
    let idle = server.rss_bytes();
    let submitted = futures_util::stream::iter(0..runs)
        .map(|_| async {
            let response = server
                .post("/api/apps/misbehave/actions/hold/run")
                .bearer_auth(support::TOKEN)
                .json(&json!({ "inputs": { "mib": mib, "ms": ms } }))
                .send()
                .await
                .unwrap();
            assert_eq!(response.status(), 202);
        })
        .buffer_unordered(32)
        .count()
        .await;
    assert_eq!(submitted, runs);
    wait_running(server, runs as u64, Duration::from_millis(ms) / 2).await;
    // Let every guest reach its sleep (and touch what it holds).
    tokio::time::sleep(Duration::from_secs(2)).await;
    let busy = server.rss_bytes();
    (busy.saturating_sub(idle) / runs as u64, busy)
}

async fn start(slots: usize) -> Server {
    let slots = slots.to_string();
    // One app takes every slot here: density, not fairness, is measured.
    let server = Server::start(&[
        "--max-concurrent-runs",
        &slots,
        "--max-runs-per-app",
        &slots,
        "--runs-per-minute",
        "0",
    ]);
    server
        .publish_misbehave("misbehave", "[limits]\nmemory_mb = 256")
        .await;
    // One run first, so the compiled component and the runtime's pools are warm.
    server
        .run_sync("/api/apps/misbehave/actions/ok/run", json!({}))
        .await;
    server
}

/// Holds `runs` sleeping executions at once (each sleeping `ms`), checks the server's
/// RSS stays under `limit` bytes, then that every one of them succeeds.
async fn sleeping(runs: usize, ms: u64, limit: u64) {
    let server = start(runs).await;
    let (per_run, total) = hold(&server, runs, 0, ms).await;
    println!(
        "{runs} sleeping executions: server RSS {} MiB, {} KiB per execution",
        total >> 20,
        per_run >> 10
    );
    assert!(total < limit, "server RSS {} MiB", total >> 20);

    // Every one of them finishes, and none was lost.
    wait_running(
        &server,
        0,
        Duration::from_millis(ms) + Duration::from_secs(60),
    )
    .await;
    let stats: Value = server
        .admin_get("/api/apps/misbehave/stats")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    if stats["by_status"]["succeeded"] != runs + 1 {
        let failed: Value = server
            .admin_get("/api/executions?app=misbehave&status=failed&limit=1")
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        panic!("not all succeeded: {stats}; one that failed: {failed}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_thousand_sleeping_executions_fit_in_a_gibibyte() {
    sleeping(1000, 10_000, 1 << 30).await;
}

/// The figure for BENCHMARKS.md: 10,000 at once (a minute each, so that submitting
/// them all fits well inside it).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "a measurement: run with --ignored --nocapture, FLOOM_BIN=$PWD/target/release/floom"]
async fn ten_thousand_sleeping_executions_fit_in_one_and_a_half_gibibytes() {
    let maps: usize = std::fs::read_to_string("/proc/sys/vm/max_map_count")
        .ok()
        .and_then(|t| t.trim().parse().ok())
        .unwrap_or(0);
    // About 10 mappings per running sandbox (see the server's startup warning).
    assert!(
        maps >= 120_000,
        "vm.max_map_count is {maps}: raise it with `sysctl -w vm.max_map_count=262144`"
    );
    sleeping(10_000, 60_000, 3 << 29).await;
}

/// How RSS per execution grows with the memory the app holds (for BENCHMARKS.md). Each
/// size gets a fresh server: slots keep the pages a run wrote resident for the next
/// run, which would otherwise count against the following size.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "a measurement: run with --ignored --nocapture"]
async fn rss_per_execution_by_app_memory() {
    let mut table = String::from(
        "| app holds | RSS per execution | server RSS, 200 executions |\n|---:|---:|---:|\n",
    );
    for mib in [0, 1, 4, 16] {
        let server = start(200).await;
        let (per_run, total) = hold(&server, 200, mib, 10_000).await;
        table.push_str(&format!(
            "| {mib} MiB | {:.2} MiB | {} MiB |\n",
            per_run as f64 / f64::from(1 << 20),
            total >> 20
        ));
    }
    println!("{table}");
}
