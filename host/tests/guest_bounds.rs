//! What a guest sends the host is bounded where it enters (review findings 4 and 9):
//! error codes and messages, stored event bytes; and the answers built from them stay
//! small, lists above all.

mod support;

use serde_json::{Value, json};
use support::Server;

#[tokio::test]
async fn huge_app_errors_are_capped_and_lists_stay_small() {
    let server = Server::start(&["--runs-per-minute", "0"]);
    server.publish_misbehave("bomb", "").await;
    let run = server
        .run_sync(
            "/api/apps/bomb/actions/huge-error/run",
            json!({ "bytes": 20 << 20 }),
        )
        .await;
    assert_eq!(run["status"], "failed", "{run}");
    let error = &run["error"];
    assert_eq!(error["code"], "app_error");
    assert!(error["app_code"].as_str().unwrap().len() <= 128, "{error}");
    let message = error["message"].as_str().unwrap();
    assert!(message.len() <= 16 << 10, "{}", message.len());
    assert!(
        message.ends_with(floom_runtime::text::CUT_MARK),
        "{}",
        &message[message.len() - 40..]
    );

    // Forty more, each also with a megabyte of output and of inputs: the list carries
    // neither, so a page of them is small.
    let big_input = "i".repeat(900 << 10);
    for _ in 0..20 {
        server
            .run_sync(
                "/api/apps/bomb/actions/huge-error/run",
                json!({ "bytes": 20 << 20, "pad": big_input }),
            )
            .await;
        server
            .run_sync("/api/apps/bomb/actions/ok/run", json!({ "pad": big_input }))
            .await;
    }
    let response = server
        .admin_get("/api/executions?limit=50")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let body = response.bytes().await.unwrap();
    assert!(body.len() < 2 << 20, "a page of 41 is {} bytes", body.len());
    let page: Value = serde_json::from_slice(&body).unwrap();
    let data = page["data"].as_array().unwrap();
    assert_eq!(data.len(), 41);
    for summary in data {
        assert!(summary.get("inputs").is_none() && summary.get("output").is_none());
        assert!(summary["execution_id"].is_string() && summary["app"] == "bomb");
    }
    // The execution itself still has both.
    let id = data[0]["execution_id"].as_str().unwrap();
    let detail: Value = server
        .admin_get(&format!("/api/executions/{id}"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(detail["inputs"]["pad"].as_str().unwrap().len(), 900 << 10);
}

/// p99 of `samples` sequential sync runs of `hello`.
async fn hello_p99(server: &Server, samples: usize) -> std::time::Duration {
    let (_, p99) = support::latencies(samples, || async {
        let run = server
            .run_sync("/api/apps/hello/run", json!({ "name": "Ada" }))
            .await;
        assert_eq!(run["status"], "succeeded", "{run}");
    })
    .await;
    p99
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chatty_runs_store_a_bounded_stream_and_do_not_stall_others() {
    // Review finding 9: three runs emitting 10,000 chunks of 60 KiB each pushed `hello`
    // from 5 ms to 3.4-7 s, and each stored ~624 MB.
    let server = Server::start(&["--examples=rust", "--runs-per-minute", "0"]);
    server.publish_misbehave("chatty", "").await;
    let idle = hello_p99(&server, 100).await;
    let chatty: Vec<String> = {
        let mut ids = Vec::new();
        for _ in 0..3 {
            let envelope = server
                .start_run(
                    "/api/apps/chatty/actions/chatty/run",
                    json!({ "count": 10_000, "bytes": 60 << 10 }),
                )
                .await;
            ids.push(envelope["execution_id"].as_str().unwrap().to_owned());
        }
        ids
    };
    let busy = hello_p99(&server, 100).await;
    println!("hello sync p99: {idle:?} idle, {busy:?} beside three chatty runs");
    for id in &chatty {
        let execution = server
            .wait_terminal(id, std::time::Duration::from_secs(60))
            .await;
        assert_eq!(execution["status"], "succeeded", "{execution}");
        // Past 16 MiB of chunks the rest were refused (the guest saw errors).
        let refused = execution["output"]["refused"].as_u64().unwrap();
        assert!(refused > 9_000, "{execution}");
        let stream = server
            .admin_get(&format!("/api/executions/{id}/events"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        assert!(
            stream.len() < 17 << 20,
            "{id} stored {} bytes",
            stream.len()
        );
        assert!(stream.contains("bytes of chunks and log lines was reached"));
    }
    // Generous for a shared CI machine (the chatty guests also spin on the CPU); the
    // figures are in RELIABILITY.md. Before the fix this was seconds.
    assert!(
        busy < std::time::Duration::from_millis(500),
        "p99 {busy:?} against {idle:?} idle"
    );
}
