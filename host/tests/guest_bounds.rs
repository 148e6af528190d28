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
        message.ends_with("bytes in all]"),
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
