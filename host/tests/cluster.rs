//! Several `floom serve` hosts on one real PostgreSQL (SPEC section 13): queued runs
//! are claimed by whichever host has room, any host follows any run live, an
//! idempotency key holds across hosts, with one of three hosts killed again and again
//! every accepted execution still ends exactly once, and a host cut off from the
//! database (through a proxy that drops its connections) answers 503 until it is back.

mod support;

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use futures_util::StreamExt as _;
use serde_json::{Value, json};
use support::{Server, TOKEN, parse_sse, temp_dir};

/// Short leases, so a killed host's runs come back within seconds.
const LEASES: &[&str] = &["--lease-s", "3", "--lease-renew-s", "1"];

/// Starts a host on the database `url` with `args`, in a data dir of its own.
fn host(url: &str, args: &[&str]) -> Server {
    host_in(temp_dir("host"), url, args)
}

/// The master key every host shares (it seals view tokens and secrets in the store).
const MASTER_KEY: &str = "5eed5eed5eed5eed5eed5eed5eed5eed5eed5eed5eed5eed5eed5eed5eed5eed";

fn host_in(data_dir: std::path::PathBuf, url: &str, args: &[&str]) -> Server {
    let mut all = vec!["--database", url, "--runs-per-minute", "0"];
    all.extend_from_slice(LEASES);
    all.extend_from_slice(args);
    Server::start_with_env(data_dir, &all, &[("FLOOM_MASTER_KEY", Some(MASTER_KEY))])
}

/// Finished runs a host counted (its `/metrics`).
async fn finished_runs(server: &Server) -> u64 {
    let text = server
        .admin_get("/metrics")
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    text.lines()
        .filter(|line| line.starts_with("floom_runs_total{"))
        .filter_map(|line| line.rsplit(' ').next()?.parse::<f64>().ok())
        .sum::<f64>() as u64
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn queued_runs_spread_over_the_hosts_and_any_host_follows_any_run() {
    let url = support::postgres::database().await;
    // Two slots each: a burst sent to one host is more than it runs at once. (The
    // per-app cap holds across hosts: 6 lets all three run the app.)
    let hosts: Vec<Server> = (0..3)
        .map(|_| {
            host(
                &url,
                &["--max-concurrent-runs", "2", "--max-runs-per-app", "6"],
            )
        })
        .collect();
    for server in &hosts {
        server.publish_misbehave("slow", "").await;
    }

    let mut ids = Vec::new();
    for _ in 0..24 {
        let envelope = hosts[0]
            .start_run("/api/apps/slow/actions/sleep/run", json!({ "ms": 300 }))
            .await;
        ids.push(envelope["execution_id"].as_str().unwrap().to_owned());
    }
    for (i, id) in ids.iter().enumerate() {
        // Read through every host: each sees the same store.
        let execution = hosts[i % 3]
            .wait_terminal(id, Duration::from_secs(60))
            .await;
        assert_eq!(execution["status"], "succeeded", "{execution}");
        assert_eq!(execution["attempts"], 1, "{execution}");
        hosts[(i + 1) % 3].checked_events(id).await;
    }
    let mut counts = Vec::new();
    for server in &hosts {
        counts.push(finished_runs(server).await);
    }
    println!("runs finished per host: {counts:?}");
    assert_eq!(counts.iter().sum::<u64>(), 24, "{counts:?}");
    assert!(
        counts.iter().all(|n| *n > 0),
        "every host ran some of the burst: {counts:?}"
    );

    // A run streaming on host 0, followed live from host 1.
    let envelope = hosts[0]
        .start_run(
            "/api/apps/slow/actions/emit/run",
            json!({ "count": 3, "ms": 300 }),
        )
        .await;
    let id = envelope["execution_id"].as_str().unwrap();
    let token = envelope["view_token"].as_str().unwrap();
    let started = Instant::now();
    let response = hosts[1]
        .get(&format!("/api/executions/{id}/events"))
        .header("x-floom-view-token", token)
        .send()
        .await
        .unwrap();
    let mut body = response.bytes_stream();
    let mut text = String::new();
    let mut first_chunk_at = None;
    while let Some(bytes) = body.next().await {
        text.push_str(&String::from_utf8_lossy(&bytes.unwrap()));
        if first_chunk_at.is_none() && text.contains("event: chunk") {
            first_chunk_at = Some(started.elapsed());
        }
    }
    let total = started.elapsed();
    let kinds: Vec<String> = parse_sse(&text).into_iter().map(|(_, k, _)| k).collect();
    assert_eq!(kinds, ["start", "chunk", "chunk", "chunk", "end"]);
    assert!(
        first_chunk_at.unwrap() + Duration::from_millis(400) < total,
        "the first chunk reached the other host while the guest still ran: \
         {first_chunk_at:?} vs {total:?}"
    );
}

#[tokio::test]
async fn an_idempotency_key_replayed_on_another_host_gets_the_same_execution() {
    let url = support::postgres::database().await;
    let hosts = [host(&url, &[]), host(&url, &[])];
    for server in &hosts {
        server.publish_misbehave("slow", "").await;
    }
    let mut ids = Vec::new();
    for server in &hosts {
        let response = server
            .post("/api/apps/slow/actions/ok/run")
            .bearer_auth(TOKEN)
            .header("idempotency-key", "order-42")
            .json(&json!({ "inputs": {} }))
            .send()
            .await
            .unwrap();
        assert!(response.status().is_success(), "{}", response.status());
        let envelope: Value = response.json().await.unwrap();
        ids.push(envelope["execution_id"].as_str().unwrap().to_owned());
    }
    assert_eq!(ids[0], ids[1]);
}

/// Submits sleeping runs to `server_url` until `stop` (or until it stops answering);
/// returns the ids it got a 202 for.
async fn submit_until(server_url: String, stop: Arc<AtomicBool>) -> Vec<String> {
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()
        .unwrap();
    let mut accepted = Vec::new();
    let mut n = 0u64;
    while !stop.load(Ordering::Relaxed) {
        n += 1;
        let ms = if n.is_multiple_of(10) { 800 } else { n % 90 };
        let response = http
            .post(format!("{server_url}/api/apps/slow/actions/sleep/run"))
            .bearer_auth(TOKEN)
            .json(&json!({ "inputs": { "ms": ms } }))
            .send()
            .await;
        match response {
            Ok(response) if response.status() == 202 => {
                let envelope: Value = response.json().await.unwrap();
                accepted.push(envelope["execution_id"].as_str().unwrap().to_owned());
                tokio::time::sleep(Duration::from_millis(30)).await;
            }
            Ok(response) => panic!(
                "a run was refused: {} {}",
                response.status(),
                response.text().await.unwrap_or_default()
            ),
            // The host was killed under this request: not accepted.
            Err(_) => break,
        }
    }
    accepted
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_accepted_run_ends_once_while_one_of_three_hosts_is_killed_again_and_again() {
    let url = support::postgres::database().await;
    let args = ["--max-concurrent-runs", "8"];
    let steady = [host(&url, &args), host(&url, &args)];
    for server in &steady {
        server.publish_misbehave("slow", "").await;
    }
    let mut crashing_dir = temp_dir("crashing-host");
    let mut accepted = Vec::new();
    for cycle in 0..6u64 {
        let crashing = host_in(crashing_dir, &url, &args);
        crashing.publish_misbehave("slow", "").await;
        let stop = Arc::new(AtomicBool::new(false));
        let clients: Vec<_> = [&crashing.base, &steady[0].base, &steady[1].base]
            .into_iter()
            .map(|base| tokio::spawn(submit_until(base.clone(), stop.clone())))
            .collect();
        tokio::time::sleep(Duration::from_millis(400 + cycle * 150)).await;
        crashing_dir = crashing.kill();
        stop.store(true, Ordering::Relaxed);
        for client in clients {
            accepted.extend(client.await.unwrap());
        }
    }

    let started = Instant::now();
    let mut by_status: HashMap<String, usize> = HashMap::new();
    let mut retried = 0;
    for (i, id) in accepted.iter().enumerate() {
        let left = Duration::from_secs(120).saturating_sub(started.elapsed());
        let execution = steady[i % 2].wait_terminal(id, left).await;
        let status = execution["status"].as_str().unwrap().to_owned();
        let attempts = execution["attempts"].as_i64().unwrap();
        assert!(
            (1..=2).contains(&attempts),
            "ran more than twice: {execution}"
        );
        retried += usize::from(attempts == 2);
        if status == "failed" {
            assert_eq!(execution["error"]["code"], "host_restarted", "{execution}");
        } else {
            assert_eq!(status, "succeeded", "{execution}");
        }
        *by_status.entry(status).or_default() += 1;
        steady[(i + 1) % 2].checked_events(id).await;
    }
    println!(
        "{} runs accepted over 6 kills of one host of three, 0 lost, {retried} taken over by \
         another host: {by_status:?}",
        accepted.len()
    );
    assert!(accepted.len() >= 30, "the load kept going");
    assert!(
        retried > 0,
        "some runs were caught by a kill and taken over"
    );
}

#[tokio::test]
async fn a_run_on_one_host_is_cancelled_from_another() {
    let url = support::postgres::database().await;
    let hosts = [host(&url, &[]), host(&url, &[])];
    for server in &hosts {
        server.publish_misbehave("slow", "").await;
        assert_eq!(server.health().await["database"], "postgres");
    }
    let envelope = hosts[0]
        .start_run("/api/apps/slow/actions/spin/run", json!({}))
        .await;
    let id = envelope["execution_id"].as_str().unwrap();
    while hosts[1].status_of(id).await != "running" {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let asked = Instant::now();
    let response = hosts[1]
        .post(&format!("/api/executions/{id}/cancel"))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap();
    assert!(response.status().is_success(), "{}", response.status());
    let execution = hosts[1].wait_terminal(id, Duration::from_secs(10)).await;
    assert_eq!(execution["status"], "cancelled", "{execution}");
    // Seen by its host at the next renewal (every second here).
    assert!(
        asked.elapsed() < Duration::from_secs(4),
        "{:?}",
        asked.elapsed()
    );
    hosts[1].checked_events(id).await;
}

#[tokio::test]
async fn floom_db_migrate_brings_a_database_up_to_date_and_is_idempotent() {
    let url = support::postgres::database().await;
    for _ in 0..2 {
        let output = std::process::Command::new(env!("CARGO_BIN_EXE_floom"))
            .args(["db", "migrate", "--database", &url])
            .output()
            .unwrap();
        assert!(output.status.success(), "{output:?}");
        let stdout = String::from_utf8_lossy(&output.stdout);
        assert!(stdout.contains("schema is at version"), "{stdout}");
    }
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_floom"))
        .args(["db", "migrate", "--database", "mysql://nope"])
        .output()
        .unwrap();
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("error:"));
}

#[tokio::test]
async fn a_host_with_another_master_key_refuses_to_start() {
    let url = support::postgres::database().await;
    let _first = host(&url, &[]);
    let mut args = vec!["--database", url.as_str()];
    args.extend_from_slice(LEASES);
    let other_key = "c".repeat(64);
    let data_dir = temp_dir("other-key");
    let output = support::serve_command(
        &data_dir,
        &args,
        &[("FLOOM_MASTER_KEY", Some(other_key.as_str()))],
    )
    .output()
    .unwrap();
    assert!(!output.status.success());
    let log = std::fs::read_to_string(data_dir.join("server.log")).unwrap();
    assert!(log.contains("FLOOM_MASTER_KEY is not the key"), "{log}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_schedule_fires_once_per_tick_across_three_hosts() {
    let url = support::postgres::database().await;
    let hosts: Vec<Server> = (0..3).map(|_| host(&url, &[])).collect();
    for server in &hosts {
        server.publish_misbehave("slow", "").await;
    }
    let response = hosts[0]
        .post("/api/apps/slow/schedules")
        .bearer_auth(TOKEN)
        .json(&json!({ "cron": "* * * * * *", "action": "ok" }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201, "{}", response.text().await.unwrap());
    let schedule: Value = response.json().await.unwrap();
    tokio::time::sleep(Duration::from_millis(4500)).await;
    let deleted = hosts[1]
        .http
        .delete(hosts[1].url(&format!(
            "/api/apps/slow/schedules/{}",
            schedule["id"].as_str().unwrap()
        )))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap();
    assert!(deleted.status().is_success(), "{}", deleted.status());
    tokio::time::sleep(Duration::from_millis(500)).await;
    let page: Value = hosts[2]
        .admin_get("/api/executions?trigger_source=schedule&limit=100")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let runs = page["data"].as_array().unwrap();
    // Every host looks for due ticks; each tick is claimed by one of them only.
    let mut per_second: HashMap<String, usize> = HashMap::new();
    for run in runs {
        let created = run["created_at"].as_str().unwrap();
        *per_second.entry(created[..19].to_owned()).or_default() += 1;
    }
    println!("scheduled runs per second: {per_second:?}");
    assert!(
        (3..=6).contains(&runs.len()),
        "{} runs in 4.5 s",
        runs.len()
    );
    assert!(
        per_second.values().all(|n| *n == 1),
        "a tick ran twice: {per_second:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_per_app_cap_holds_across_hosts() {
    let url = support::postgres::database().await;
    let hosts = [
        host(&url, &["--max-runs-per-app", "1"]),
        host(&url, &["--max-runs-per-app", "1"]),
    ];
    for server in &hosts {
        server.publish_misbehave("slow", "").await;
    }
    let mut ids = Vec::new();
    for i in 0..6 {
        let envelope = hosts[i % 2]
            .start_run("/api/apps/slow/actions/sleep/run", json!({ "ms": 300 }))
            .await;
        ids.push(envelope["execution_id"].as_str().unwrap().to_owned());
    }
    let mut spans = Vec::new();
    for id in &ids {
        let execution = hosts[0].wait_terminal(id, Duration::from_secs(60)).await;
        assert_eq!(execution["status"], "succeeded", "{execution}");
        let at = |field: &str| {
            chrono::DateTime::parse_from_rfc3339(execution[field].as_str().unwrap())
                .unwrap()
                .timestamp_millis()
        };
        spans.push((at("started_at"), at("finished_at")));
    }
    spans.sort();
    for pair in spans.windows(2) {
        assert!(
            pair[1].0 >= pair[0].1,
            "two runs of the app overlapped across the hosts: {spans:?}"
        );
    }
}

/// A TCP proxy in front of the test database that can cut every connection through it
/// and refuse new ones, as a network partition between a host and its database does.
struct Partition {
    /// The database's URL through the proxy.
    url: String,
    cut: tokio::sync::watch::Sender<bool>,
}

impl Partition {
    async fn in_front_of(url: &str) -> Partition {
        let (rest, database) = url.rsplit_once('/').unwrap();
        let (user, upstream) = rest.rsplit_once('@').unwrap();
        let upstream = upstream.to_owned();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("{user}@{}/{database}", listener.local_addr().unwrap());
        let (cut, watching) = tokio::sync::watch::channel(false);
        tokio::spawn(async move {
            while let Ok((mut client, _)) = listener.accept().await {
                if *watching.borrow() {
                    continue; // refused: dropped at once
                }
                let upstream = upstream.clone();
                let mut watching = watching.clone();
                tokio::spawn(async move {
                    let Ok(mut server) = tokio::net::TcpStream::connect(&upstream).await else {
                        return;
                    };
                    tokio::select! {
                        _ = tokio::io::copy_bidirectional(&mut client, &mut server) => {}
                        _ = watching.wait_for(|cut| *cut) => {}
                    }
                });
            }
        });
        Partition { url, cut }
    }

    fn cut(&self, cut: bool) {
        self.cut.send_replace(cut);
    }
}

/// Waits up to `timeout` for `/healthz` to answer `status`; returns the response.
async fn health_becomes(server: &Server, status: u16, timeout: Duration) -> reqwest::Response {
    let deadline = Instant::now() + timeout;
    loop {
        let response = server.get("/healthz").send().await.unwrap();
        if response.status() == status {
            return response;
        }
        assert!(
            Instant::now() < deadline,
            "/healthz still {} after {timeout:?}",
            response.status()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_host_that_loses_its_database_answers_503_and_recovers_on_its_own() {
    let database = support::postgres::database().await;
    let partition = Partition::in_front_of(&database).await;
    let server = host(&partition.url, &[]);
    server.publish_misbehave("slow", "").await;
    // A run under way across the outage, longer than a lease (3 s here).
    let envelope = server
        .start_run("/api/apps/slow/actions/sleep/run", json!({ "ms": 1500 }))
        .await;
    let id = envelope["execution_id"].as_str().unwrap().to_owned();
    while server.status_of(&id).await != "running" {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    partition.cut(true);
    // Three checks a second apart go unanswered first.
    let response = health_becomes(&server, 503, Duration::from_secs(15)).await;
    assert_eq!(response.headers()["retry-after"], "5");
    let health: Value = response.json().await.unwrap();
    assert_eq!(health["database_ok"], false, "{health}");
    assert_eq!(health["status"], "unavailable", "{health}");
    // Every other request is refused the same way, as a problem, not left to time out.
    let refused = server.admin_get("/api/apps").send().await.unwrap();
    assert_eq!(refused.status(), 503);
    assert!(refused.headers().contains_key("retry-after"));
    assert_eq!(
        refused.headers()["content-type"],
        "application/problem+json"
    );
    tokio::time::sleep(Duration::from_secs(4)).await;

    partition.cut(false);
    let health: Value = health_becomes(&server, 200, Duration::from_secs(15))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(health["database_ok"], true, "{health}");
    // The run across the outage ends once (retried at most once), and new runs run.
    let execution = server.wait_terminal(&id, Duration::from_secs(30)).await;
    assert_eq!(execution["status"], "succeeded", "{execution}");
    assert!(
        (1..=2).contains(&execution["attempts"].as_i64().unwrap()),
        "{execution}"
    );
    server.checked_events(&id).await;
    let ran = server
        .run_sync("/api/apps/slow/actions/sleep/run", json!({ "ms": 10 }))
        .await;
    assert_eq!(ran["status"], "succeeded", "{ran}");
}
