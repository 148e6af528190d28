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

/// The store's commits so far, from `/metrics`.
async fn commits(server: &Server) -> u64 {
    let text = server
        .get("/metrics")
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    text.lines()
        .find_map(|l| l.strip_prefix("floom_store_commits_total "))
        .and_then(|n| n.parse().ok())
        .expect("floom_store_commits_total in /metrics")
}

/// A sync run that ends at once is written once, with its end; one that goes on is
/// written as running first: it is listed while it runs and survives a SIGKILL like any
/// other; and what one streams is stored with it.
#[tokio::test]
async fn a_sync_run_is_written_once_when_quick_and_first_when_not() {
    let server = Server::start(&[]);
    server.publish_misbehave("sync", "").await;
    server
        .run_sync("/api/apps/sync/actions/ok/run", json!({}))
        .await;
    // One commit for a run that ends within the window, two otherwise; a loaded machine
    // (the whole suite at once) may push many past it, but not fifty in a row. Not on
    // PostgreSQL: there every run is written when it starts (the app's cap across hosts
    // is checked by that write), and the rest of this test holds as it does here.
    if !support::postgres::ON_POSTGRES {
        let mut once = 0;
        for _ in 0..50 {
            let before = commits(&server).await;
            let envelope = server
                .run_sync("/api/apps/sync/actions/ok/run", json!({}))
                .await;
            assert_eq!(envelope["status"], "succeeded");
            once += usize::from(commits(&server).await - before == 1);
            if once == 3 {
                break;
            }
        }
        assert_eq!(once, 3, "sync runs ending at once are written once");
    }

    let streamed = server
        .run_sync("/api/apps/sync/actions/emit/run", json!({ "count": 3 }))
        .await;
    let id = streamed["execution_id"].as_str().unwrap();
    let events = server
        .admin_get(&format!("/api/executions/{id}/events"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(events.matches("event: chunk").count(), 3, "{events}");
    assert!(events.contains("event: end"), "{events}");

    let waiting = tokio::spawn(
        server
            .post("/api/apps/sync/actions/sleep/run?wait=true")
            .json(&json!({ "inputs": { "ms": 60_000 } }))
            .send(),
    );
    let mut listed = Vec::new();
    for _ in 0..250 {
        let running: Value = server
            .admin_get("/api/executions?app=sync&status=running")
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        listed = running["data"].as_array().unwrap().clone();
        if !listed.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(listed.len(), 1, "the slow sync run is listed while it runs");
    let id = listed[0]["execution_id"].as_str().unwrap().to_owned();
    let server = server.kill_and_restart();
    assert!(
        waiting.await.unwrap().is_err(),
        "its request died with the server"
    );
    let mut execution = Value::Null;
    for _ in 0..250 {
        execution = server
            .admin_get(&format!("/api/executions/{id}"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        if execution["attempts"] == 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(
        execution["attempts"], 2,
        "retried after the restart: {execution}"
    );
}
