//! A guest spinning on every core must not delay `/healthz` or another app's run: guests
//! run on their own, lower-priority threads and yield at every epoch tick. Alone in its
//! binary so no other test's load skews it.

mod support;

use std::time::{Duration, Instant};

use serde_json::json;
use support::Server;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spinning_guests_on_every_core_do_not_delay_healthz_or_other_runs() {
    let server = Server::start(&["--examples=rust"]);
    server
        .publish_misbehave("spinner", "[limits]\ntimeout_s = 60")
        .await;
    let cores = std::thread::available_parallelism().map_or(2, usize::from);
    let mut spinning = Vec::new();
    for _ in 0..cores * 2 {
        let envelope = server
            .start_run("/api/apps/spinner/actions/spin/run", json!({}))
            .await;
        spinning.push(envelope["execution_id"].as_str().unwrap().to_owned());
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let health: serde_json::Value = server
        .get("/healthz")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(health["running"], cores * 2);

    let mut health_ms = Vec::new();
    let mut run_ms = Vec::new();
    for _ in 0..20 {
        let started = Instant::now();
        let response = server.get("/healthz").send().await.unwrap();
        assert_eq!(response.status(), 200);
        health_ms.push(started.elapsed().as_secs_f64() * 1000.0);

        let started = Instant::now();
        let envelope: serde_json::Value = server
            .post("/api/apps/hello/run?wait=true")
            .json(&json!({ "inputs": { "name": "neighbour" } }))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(envelope["status"], "succeeded");
        run_ms.push(started.elapsed().as_secs_f64() * 1000.0);
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    health_ms.sort_by(f64::total_cmp);
    run_ms.sort_by(f64::total_cmp);
    eprintln!(
        "with {} spinners: /healthz ms {health_ms:?}\nhello run ms {run_ms:?}",
        cores * 2
    );
    // The bound the issue sets: /healthz under 50 ms (every sample but the worst, to
    // forgive one scheduler hiccup on a shared CI machine).
    assert!(health_ms[18] < 50.0, "/healthz took {health_ms:?} ms");
    assert!(
        run_ms[18] < 50.0,
        "a neighbour's sync run took {run_ms:?} ms"
    );

    for id in spinning {
        server
            .post(&format!("/api/executions/{id}/cancel"))
            .bearer_auth(support::TOKEN)
            .send()
            .await
            .unwrap();
    }
}
