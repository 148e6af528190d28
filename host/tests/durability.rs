//! Every accepted execution survives a SIGKILL of the server: queued ones resume, running
//! ones are retried once, and each ends in exactly one terminal status.

mod support;

use std::collections::HashSet;
use std::time::Duration;

use serde_json::{Value, json};
use support::Server;

#[tokio::test]
async fn thirty_slow_runs_survive_a_sigkill() {
    let server = Server::start(&["--max-concurrent-runs", "8"]);
    server.publish_misbehave("slow", "").await;
    let mut ids = Vec::new();
    for _ in 0..30 {
        let envelope = server
            .start_run("/api/apps/slow/actions/sleep/run", json!({ "ms": 1500 }))
            .await;
        ids.push(envelope["execution_id"].as_str().unwrap().to_owned());
    }
    // Some are running, the rest queued, when the server dies without warning.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let running: Value = server
        .admin_get("/api/executions?status=running")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(
        !running["data"].as_array().unwrap().is_empty(),
        "some were running at the kill"
    );

    let server = server.kill_and_restart();
    let mut retried = 0;
    for id in &ids {
        let execution = server.wait_terminal(id, Duration::from_secs(60)).await;
        assert_eq!(execution["status"], "succeeded", "{execution}");
        assert_eq!(execution["output"], json!({ "slept_ms": 1500 }));
        let attempts = execution["attempts"].as_i64().unwrap();
        assert!((1..=2).contains(&attempts), "{execution}");
        if attempts == 2 {
            retried += 1;
        }
        // One terminal event, last, in a gap-free sequence.
        let events = server.checked_events(id).await;
        let starts = events.iter().filter(|(_, kind, _)| kind == "start").count() as i64;
        assert_eq!(starts, attempts);
    }
    assert!(retried > 0, "the runs interrupted by the kill were retried");

    // None lost, none invented.
    let page: Value = server
        .admin_get("/api/executions?limit=200")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let listed: HashSet<&str> = page["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["execution_id"].as_str().unwrap())
        .collect();
    assert_eq!(listed, ids.iter().map(String::as_str).collect());
}

#[tokio::test]
async fn a_run_interrupted_twice_fails_with_host_restarted() {
    let server = Server::start(&[]);
    server.publish_misbehave("slow", "").await;
    let envelope = server
        .start_run("/api/apps/slow/actions/sleep/run", json!({ "ms": 60_000 }))
        .await;
    let id = envelope["execution_id"].as_str().unwrap().to_owned();
    let wait_running = |server: &Server| {
        let request = server.admin_get(&format!("/api/executions/{id}"));
        async move {
            for _ in 0..100 {
                let execution: Value = request
                    .try_clone()
                    .unwrap()
                    .send()
                    .await
                    .unwrap()
                    .json()
                    .await
                    .unwrap();
                if execution["status"] == "running" {
                    return execution;
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            panic!("never running");
        }
    };
    assert_eq!(wait_running(&server).await["attempts"], 1);
    let server = server.kill_and_restart();
    assert_eq!(wait_running(&server).await["attempts"], 2);
    let server = server.kill_and_restart();
    let execution = server.wait_terminal(&id, Duration::from_secs(10)).await;
    assert_eq!(execution["status"], "failed");
    assert_eq!(execution["error"]["code"], "host_restarted");
}

#[tokio::test]
async fn sigterm_drains_running_runs_and_keeps_the_queue() {
    let server = Server::start(&["--max-concurrent-runs", "1"]);
    server.publish_misbehave("slow", "").await;
    let first = server
        .start_run("/api/apps/slow/actions/sleep/run", json!({ "ms": 800 }))
        .await;
    let second = server
        .start_run("/api/apps/slow/actions/sleep/run", json!({ "ms": 10 }))
        .await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let mut server = server;
    rustix::process::kill_process(
        rustix::process::Pid::from_raw(server.child.id() as i32).unwrap(),
        rustix::process::Signal::TERM,
    )
    .unwrap();
    let status = server.child.wait().unwrap();
    assert!(status.success(), "{status}");
    // Restart on the same data: the drained run finished, the queued one runs now.
    let server = server.kill_and_restart();
    let first = server
        .wait_terminal(
            first["execution_id"].as_str().unwrap(),
            Duration::from_secs(10),
        )
        .await;
    assert_eq!(
        (first["status"].as_str(), first["attempts"].as_i64()),
        (Some("succeeded"), Some(1))
    );
    let second = server
        .wait_terminal(
            second["execution_id"].as_str().unwrap(),
            Duration::from_secs(10),
        )
        .await;
    assert_eq!(second["status"], "succeeded");
}
