//! Crash loop: a steady stream of runs while the server is killed with SIGKILL at random
//! moments and restarted on the same data dir. Afterwards every accepted execution is
//! terminal, none ran more than twice, every event sequence is gap-free with one
//! terminal event, and SQLite's integrity check passes.
//!
//! Scaled for CI: 10 kills. `scripts/crashloop.sh` runs it longer (`FLOOM_CRASHLOOP_KILLS`,
//! `FLOOM_CRASHLOOP_MAX_MS`: the longest time between two kills).

mod support;

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use support::{Server, temp_dir};

const ARGS: &[&str] = &["--max-concurrent-runs", "16", "--runs-per-minute", "0"];
/// Clients submitting at once.
const CLIENTS: usize = 4;

fn env_or(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// A small xorshift generator: the seed is printed, so a failing sequence can be replayed
/// with `FLOOM_CRASHLOOP_SEED`.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}

/// Submits runs (mostly sleeping 0–100 ms, some 500 ms, some panicking) until `stop` or until the server stops answering;
/// returns the ids of the runs it got a 202 for.
async fn submit_until(server_url: String, stop: Arc<AtomicBool>, seed: u64) -> Vec<String> {
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()
        .unwrap();
    let mut rng = Rng(seed | 1);
    let mut accepted = Vec::new();
    while !stop.load(Ordering::Relaxed) {
        // Mostly successes, some failures, a few that run long enough to be caught.
        let (action, inputs) = match rng.below(20) {
            0 | 1 => ("panic", json!({})),
            2 => ("sleep", json!({ "ms": 500 })),
            _ => ("sleep", json!({ "ms": rng.below(100) })),
        };
        let response = http
            .post(format!("{server_url}/api/apps/slow/actions/{action}/run"))
            .bearer_auth(support::TOKEN)
            .json(&json!({ "inputs": inputs }))
            .send()
            .await;
        match response {
            Ok(response) if response.status() == 202 => {
                let envelope: Value = response.json().await.unwrap();
                accepted.push(envelope["execution_id"].as_str().unwrap().to_owned());
                // About 100 runs/s from all clients: a bit under what the slots drain.
                tokio::time::sleep(Duration::from_millis(40)).await;
            }
            Ok(response) => panic!(
                "a run was refused: {} {}",
                response.status(),
                response.text().await.unwrap_or_default()
            ),
            // The server was killed under this request: not accepted.
            Err(_) => break,
        }
    }
    accepted
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_accepted_run_survives_a_crash_loop() {
    let kills = env_or("FLOOM_CRASHLOOP_KILLS", 10);
    let max_ms = env_or("FLOOM_CRASHLOOP_MAX_MS", 1500);
    let seed = env_or(
        "FLOOM_CRASHLOOP_SEED",
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos() as u64,
    );
    println!("crash loop: {kills} kills, seed {seed}");
    let mut rng = Rng(seed | 1);

    let mut data_dir = temp_dir("crashloop");
    let mut accepted = Vec::new();
    for cycle in 0..kills {
        let server = Server::start_in(data_dir, ARGS);
        if cycle == 0 {
            server.publish_misbehave("slow", "").await;
        }
        let stop = Arc::new(AtomicBool::new(false));
        let clients: Vec<_> = (0..CLIENTS as u64)
            .map(|i| tokio::spawn(submit_until(server.base.clone(), stop.clone(), seed + i)))
            .collect();
        tokio::time::sleep(Duration::from_millis(100 + rng.below(max_ms))).await;
        data_dir = server.kill();
        stop.store(true, Ordering::Relaxed);
        for client in clients {
            accepted.extend(client.await.unwrap());
        }
    }

    let server = Server::start_in(data_dir, ARGS);
    let started = Instant::now();
    let mut by_status: HashMap<String, usize> = HashMap::new();
    let mut retried = 0;
    for id in &accepted {
        let left = Duration::from_secs(120).saturating_sub(started.elapsed());
        let execution = server.wait_terminal(id, left).await;
        let status = execution["status"].as_str().unwrap().to_owned();
        let attempts = execution["attempts"].as_i64().unwrap();
        assert!(
            (1..=2).contains(&attempts),
            "ran more than twice: {execution}"
        );
        retried += usize::from(attempts == 2);
        if status == "failed" {
            let code = execution["error"]["code"].as_str().unwrap();
            assert!(matches!(code, "trap" | "host_restarted"), "{execution}");
        } else {
            assert_eq!(status, "succeeded", "{execution}");
        }
        *by_status.entry(status).or_default() += 1;

        // Gap-free, one terminal event, last.
        server.checked_events(id).await;
    }
    println!(
        "{} runs accepted over {kills} kills, 0 lost, {retried} retried after a kill: {by_status:?}",
        accepted.len()
    );
    assert!(accepted.len() >= kills as usize, "the load kept going");

    let data_dir = server.kill();
    let db = rusqlite::Connection::open(data_dir.join("floom.db")).unwrap();
    let integrity: String = db
        .query_row("PRAGMA integrity_check", [], |row| row.get(0))
        .unwrap();
    assert_eq!(integrity, "ok");
    drop(db);
    let _ = std::fs::remove_dir_all(&data_dir);
}
