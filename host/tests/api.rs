//! The HTTP API of a real `floom serve` on a real socket: every endpoint and its error
//! paths.

mod support;

use std::time::{Duration, Instant};

use floom_tests::guests;
use serde_json::{Value, json};
use support::{Server, TOKEN, parse_sse};

fn examples() -> Server {
    Server::start(&["--examples=rust"])
}

async fn problem(response: reqwest::Response, status: u16, code: &str) -> Value {
    assert_eq!(response.status().as_u16(), status);
    assert_eq!(
        response.headers()["content-type"],
        "application/problem+json",
        "problems are RFC 9457 documents"
    );
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["code"], code, "{body}");
    assert_eq!(body["status"], status);
    assert!(body["type"].is_string() && body["title"].is_string() && body["detail"].is_string());
    body
}

#[tokio::test]
async fn healthz_answers() {
    let server = Server::start(&[]);
    let health: Value = server
        .get("/healthz")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(health["status"], "ok");
}

#[tokio::test]
async fn the_seed_curl_example_runs_meeting_action_items() {
    let server = examples();
    let response = server
        .post("/api/apps/meeting-action-items/run")
        .header("Content-Type", "application/json")
        .body(r#"{"inputs":{"transcript":"Alice: Let us ship by Friday..."}}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 202);
    let location = response.headers()["location"].to_str().unwrap().to_owned();
    let envelope: Value = response.json().await.unwrap();
    let id = envelope["execution_id"].as_str().unwrap();
    assert!(id.starts_with("exec_"));
    assert_eq!(location, format!("/api/executions/{id}"));
    assert_eq!(envelope["status"], "queued");
    assert_eq!(envelope["output"], Value::Null);
    assert_eq!(envelope["error"], Value::Null);
    let view_token = envelope["view_token"].as_str().unwrap();

    let done = server.wait_terminal(id, Duration::from_secs(30)).await;
    assert_eq!(done["status"], "succeeded");
    assert_eq!(
        done["output"],
        json!({ "items": [{ "owner": "team", "task": "Ship", "due": "Friday" }] })
    );
    assert_eq!(done["app"], "meeting-action-items");
    assert_eq!(done["version"], 1);
    assert_eq!(done["attempts"], 1);

    // The view token reads it too; nobody else does.
    let read = |request: reqwest::RequestBuilder| async move { request.send().await.unwrap() };
    let by_query = read(server.get(&format!("/api/executions/{id}?view_token={view_token}"))).await;
    assert_eq!(by_query.status(), 200);
    let by_header = read(
        server
            .get(&format!("/api/executions/{id}"))
            .header("x-floom-view-token", view_token),
    )
    .await;
    assert_eq!(by_header.status(), 200);
    problem(
        read(server.get(&format!("/api/executions/{id}"))).await,
        401,
        "auth_failed",
    )
    .await;
    problem(
        read(server.get(&format!("/api/executions/{id}?view_token=wrong"))).await,
        404,
        "not_found",
    )
    .await;
    problem(
        read(
            server
                .get(&format!("/api/executions/{id}"))
                .bearer_auth("wrong"),
        )
        .await,
        401,
        "auth_failed",
    )
    .await;
}

#[tokio::test]
async fn sync_runs_return_the_outcome() {
    let server = examples();
    let response = server
        .post("/api/apps/hello/run?wait=true")
        .json(&json!({ "inputs": { "name": "Ada" } }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let envelope: Value = response.json().await.unwrap();
    assert_eq!(envelope["status"], "succeeded");
    assert_eq!(envelope["output"], json!({ "greeting": "Hello, Ada!" }));
    assert!(envelope["view_token"].is_string());

    // A failed run is still 200, with the error.
    let envelope: Value = server
        .post("/api/apps/hello/run?wait=true")
        .json(&json!({ "inputs": { "name": " " } }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(envelope["status"], "failed");
    assert_eq!(envelope["error"]["code"], "app_error");
    assert_eq!(envelope["error"]["app_code"], "invalid_input");

    // The action route, and a command app.
    let envelope: Value = server
        .post("/api/apps/word-count/actions/run/run?wait=1")
        .json(&json!({ "inputs": { "text": "a b a" } }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(envelope["output"]["words"], 3);

    // Large inputs are not kept in memory while queued; they are read back at start.
    let text = "lorem ipsum ".repeat(10_000);
    let envelope: Value = server
        .post("/api/apps/word-count/run?wait=true")
        .json(&json!({ "inputs": { "text": text } }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(envelope["output"]["words"], 20_000);
}

#[tokio::test]
async fn streamed_runs_and_resumable_events() {
    let server = examples();
    let transcript = "Alice: Let us ship by Friday. Bob: I will write the notes by Monday.";
    let response = server
        .post("/api/apps/meeting-action-items/run")
        .header("accept", "text/event-stream")
        .json(&json!({ "inputs": { "transcript": transcript } }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert!(
        response.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/event-stream")
    );
    let id = response.headers()["x-floom-execution-id"]
        .to_str()
        .unwrap()
        .to_owned();
    let body = response.text().await.unwrap();
    let events = parse_sse(&body);
    let kinds: Vec<&str> = events.iter().map(|(_, kind, _)| kind.as_str()).collect();
    assert_eq!(kinds, ["start", "chunk", "chunk", "log", "end"], "{body}");
    let ids: Vec<i64> = events.iter().map(|(id, _, _)| *id).collect();
    assert_eq!(ids, [1, 2, 3, 4, 5]);
    for (_, kind, data) in &events {
        assert_eq!(data["type"], kind.as_str(), "data repeats the type");
    }
    assert_eq!(
        events[1].2["data"],
        json!({ "owner": "team", "task": "Ship", "due": "Friday" })
    );
    assert_eq!(events[4].2["status"], "succeeded");
    assert!(events[4].2["duration_ms"].is_number());

    // Replay after 2, by cursor and by Last-Event-ID: exactly what came after.
    for request in [
        server.admin_get(&format!("/api/executions/{id}/events?cursor=2")),
        server
            .admin_get(&format!("/api/executions/{id}/events"))
            .header("Last-Event-ID", "2"),
    ] {
        let replayed = parse_sse(&request.send().await.unwrap().text().await.unwrap());
        let ids: Vec<i64> = replayed.iter().map(|(id, _, _)| *id).collect();
        assert_eq!(ids, [3, 4, 5]);
        assert_eq!(replayed, events[2..]);
    }
    let response = server
        .admin_get(&format!("/api/executions/{id}/events?cursor=abc"))
        .send()
        .await
        .unwrap();
    problem(response, 400, "invalid_input").await;

    // Logs as NDJSON.
    let response = server
        .admin_get(&format!("/api/executions/{id}/logs"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.headers()["content-type"], "application/x-ndjson");
    let text = response.text().await.unwrap();
    let lines: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(
        lines,
        [
            json!({ "seq": 4, "type": "log", "stream": "app", "level": "info", "line": "found 2 action items in 2 turns" })
        ]
    );
}

#[tokio::test]
async fn a_follower_gets_live_events_of_a_running_execution() {
    let server = Server::start(&[]);
    server.publish_misbehave("slow", "").await;
    let envelope = server
        .start_run(
            "/api/apps/slow/actions/emit/run",
            json!({ "count": 3, "ms": 300 }),
        )
        .await;
    let id = envelope["execution_id"].as_str().unwrap();
    let token = envelope["view_token"].as_str().unwrap();
    let started = Instant::now();
    let response = server
        .get(&format!("/api/executions/{id}/events"))
        .header("x-floom-view-token", token)
        .send()
        .await
        .unwrap();
    let mut body = response.bytes_stream();
    use futures_util::StreamExt;
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
    // The first chunk arrived while the guest still slept.
    assert!(
        first_chunk_at.unwrap() + Duration::from_millis(400) < total,
        "{first_chunk_at:?} vs {total:?}"
    );
}

#[tokio::test]
async fn inputs_are_validated_before_anything_is_queued() {
    let server = examples();
    let response = server
        .post("/api/apps/word-count/run")
        .json(&json!({ "inputs": { "text": 5, "top": 1000 } }))
        .send()
        .await
        .unwrap();
    let body = problem(response, 400, "invalid_input").await;
    let mut paths: Vec<&str> = body["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["path"].as_str().unwrap())
        .collect();
    paths.sort();
    assert_eq!(paths, ["/text", "/top"]);

    let missing = server
        .post("/api/apps/meeting-action-items/run")
        .json(&json!({ "inputs": {} }))
        .send()
        .await
        .unwrap();
    let body = problem(missing, 400, "invalid_input").await;
    assert!(
        body["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("transcript")
    );

    // Nothing was created.
    let page: Value = server
        .admin_get("/api/executions")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(page["data"], json!([]));
}

#[tokio::test]
async fn malformed_requests_get_precise_problems() {
    let server = examples();
    let post = |path: &str| server.post(path);
    let cases: Vec<(reqwest::RequestBuilder, u16, &str)> = vec![
        (
            post("/api/apps/hello/run")
                .header("content-type", "application/json")
                .body("{\"inputs\":"),
            400,
            "invalid_input",
        ),
        (
            post("/api/apps/hello/run")
                .header("content-type", "text/plain")
                .body("{}"),
            415,
            "invalid_input",
        ),
        (
            post("/api/apps/hello/run").json(&json!({ "inputs": [1] })),
            400,
            "invalid_input",
        ),
        (
            post("/api/apps/hello/run").json(&json!({ "inputz": {} })),
            400,
            "invalid_input",
        ),
        (
            post("/api/apps/hello/run").json(&json!({ "inputs": {}, "action": "nope" })),
            400,
            "invalid_input",
        ),
        (
            post("/api/apps/hello/actions/nope/run").json(&json!({})),
            404,
            "not_found",
        ),
        (
            post("/api/apps/nope/run").json(&json!({})),
            404,
            "not_found",
        ),
        (
            post("/api/apps/NOT..A..SLUG/run").json(&json!({})),
            404,
            "not_found",
        ),
        (
            post("/api/apps/hello/run?wait=maybe").json(&json!({})),
            400,
            "invalid_input",
        ),
        (
            post("/api/apps/hello/run")
                .bearer_auth("not-the-token")
                .json(&json!({})),
            401,
            "auth_failed",
        ),
        (
            post("/api/apps/webhook-signer/actions/sign/run")
                .json(&json!({ "inputs": { "body": "x" } })),
            401,
            "auth_failed",
        ),
        // A fresh client: the server answers before reading the body and closes the
        // connection, which a pooled connection would trip over.
        (
            reqwest::Client::new()
                .post(server.url("/api/apps/hello/run"))
                .header("content-type", "application/json")
                .body(vec![b' '; 2 << 20]),
            413,
            "payload_too_large",
        ),
        (server.get("/api/nothing-here"), 404, "not_found"),
        (
            server.http.put(server.url("/api/apps/hello/run")),
            405,
            "invalid_input",
        ),
        (
            server
                .get("/api/executions/exec_00000000000000000000000000000000")
                .bearer_auth(TOKEN),
            404,
            "not_found",
        ),
        (
            server
                .get("/api/executions")
                .bearer_auth(TOKEN)
                .query(&[("limit", "500")]),
            400,
            "invalid_input",
        ),
        (
            server
                .get("/api/executions")
                .bearer_auth(TOKEN)
                .query(&[("status", "sleeping")]),
            400,
            "invalid_input",
        ),
        (server.get("/api/executions"), 401, "auth_failed"),
    ];
    for (request, status, code) in cases {
        let response = request.send().await.unwrap();
        let url = response.url().clone();
        assert_eq!(
            response.status().as_u16(),
            status,
            "{url}: {}",
            response.text().await.unwrap()
        );
        problem(response, status, code).await;
    }
}

#[tokio::test]
async fn publishing_apps() {
    let server = Server::start(&["--max-upload-mb", "1"]);
    let manifest = std::fs::read_to_string(guests::HELLO_MANIFEST).unwrap();

    let response = server.publish(&manifest, guests::HELLO).await;
    assert_eq!(response.status(), 201);
    let app: Value = response.json().await.unwrap();
    assert_eq!(
        (app["slug"].as_str(), app["version"].as_i64()),
        (Some("hello"), Some(1))
    );
    assert_eq!(app["kind"], "sdk");
    assert_eq!(
        app["limits"],
        json!({ "timeout_s": 10, "memory_mb": 32, "fuel": null })
    );
    assert_eq!(
        app["actions"]["run"]["input_schema"]["properties"]["name"]["type"],
        "string"
    );
    assert_eq!(app["sha256"].as_str().unwrap().len(), 64);

    // The same again changes nothing; a changed manifest is a new version.
    assert_eq!(server.publish(&manifest, guests::HELLO).await.status(), 200);
    let changed = manifest.replace("Greets you by name", "Says hello");
    let app: Value = server
        .publish(&changed, guests::HELLO)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(app["version"], 2);
    assert_eq!(app["description"], "Says hello");
    let fetched: Value = server
        .get("/api/apps/hello")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(fetched["version"], 2);

    // Refusals.
    let response = server
        .publish("slug = \"x\"\ncolour = \"red\"\n", guests::HELLO)
        .await;
    let body = problem(response, 400, "invalid_manifest").await;
    assert!(
        body["detail"]
            .as_str()
            .unwrap()
            .contains("unknown field `colour`")
    );
    let response = server
        .publish("slug = \"x\"\n[limits]\ntimeout_s = 999\n", guests::HELLO)
        .await;
    let body = problem(response, 400, "invalid_manifest").await;
    assert!(body["detail"].as_str().unwrap().contains("timeout_s = 999"));
    let response = server
        .publish(
            "slug = \"x\"\n[actions.run]\ninput_schema = { type = \"nonsense\" }\n",
            guests::HELLO,
        )
        .await;
    let body = problem(response, 400, "invalid_manifest").await;
    assert!(
        body["detail"]
            .as_str()
            .unwrap()
            .contains("not a valid JSON Schema"),
        "{body}"
    );
    let response = server
        .publish("slug = \"x\"\n", guests::HELLO_MANIFEST)
        .await;
    let body = problem(response, 400, "invalid_component").await;
    assert!(
        body["detail"]
            .as_str()
            .unwrap()
            .contains("not a WebAssembly file")
    );

    let form = reqwest::multipart::Form::new().text("manifest", manifest.clone());
    let response = server
        .post("/api/apps")
        .bearer_auth(TOKEN)
        .multipart(form)
        .send()
        .await
        .unwrap();
    problem(response, 400, "invalid_input").await;
    let response = server
        .post("/api/apps")
        .bearer_auth(TOKEN)
        .header("content-type", "multipart/form-data; boundary=xyz")
        .body("--xyz\r\nbroken")
        .send()
        .await
        .unwrap();
    problem(response, 400, "invalid_input").await;
    let response = server
        .post("/api/apps")
        .bearer_auth(TOKEN)
        .json(&json!({ "manifest": "x" }))
        .send()
        .await
        .unwrap();
    problem(response, 400, "invalid_input").await;
    let big = reqwest::multipart::Form::new()
        .text("manifest", manifest.clone())
        .part(
            "component",
            reqwest::multipart::Part::bytes(vec![0u8; 3 << 20]),
        );
    let response = server
        .post("/api/apps")
        .bearer_auth(TOKEN)
        .multipart(big)
        .send()
        .await
        .unwrap();
    problem(response, 413, "payload_too_large").await;
    let form = reqwest::multipart::Form::new().text("manifest", manifest);
    let response = server
        .post("/api/apps")
        .multipart(form)
        .send()
        .await
        .unwrap();
    problem(response, 401, "auth_failed").await;
}

#[tokio::test]
async fn listing_reading_and_deleting_apps() {
    let server = examples();
    let slugs = |apps: Value| -> Vec<String> {
        apps["data"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| a["slug"].as_str().unwrap().to_owned())
            .collect()
    };
    let public: Value = server
        .get("/api/apps")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        slugs(public),
        [
            "csv-report",
            "github-repo",
            "hello",
            "meeting-action-items",
            "page-summary",
            "reply-drafter",
            "word-count"
        ]
    );
    let all: Value = server
        .admin_get("/api/apps")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        slugs(all),
        [
            "csv-report",
            "github-repo",
            "hello",
            "meeting-action-items",
            "page-summary",
            "reply-drafter",
            "webhook-signer",
            "word-count"
        ]
    );

    problem(
        server.get("/api/apps/webhook-signer").send().await.unwrap(),
        401,
        "auth_failed",
    )
    .await;
    let private: Value = server
        .admin_get("/api/apps/webhook-signer")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(private["secrets"], json!(["SIGNING_KEY"]));
    assert_eq!(private["actions"].as_object().unwrap().len(), 2);
    problem(
        server.get("/api/apps/nope").send().await.unwrap(),
        404,
        "not_found",
    )
    .await;

    let run: Value = server
        .post("/api/apps/hello/run?wait=true")
        .json(&json!({}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let id = run["execution_id"].as_str().unwrap().to_owned();

    let delete = |auth: bool| {
        let request = server.http.delete(server.url("/api/apps/hello"));
        if auth {
            request.bearer_auth(TOKEN)
        } else {
            request
        }
    };
    problem(delete(false).send().await.unwrap(), 401, "auth_failed").await;
    assert_eq!(delete(true).send().await.unwrap().status(), 204);
    problem(delete(true).send().await.unwrap(), 404, "not_found").await;
    problem(
        server
            .post("/api/apps/hello/run")
            .json(&json!({}))
            .send()
            .await
            .unwrap(),
        404,
        "not_found",
    )
    .await;
    // Its executions stay readable.
    let execution: Value = server
        .admin_get(&format!("/api/executions/{id}"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(execution["status"], "succeeded");
}

#[tokio::test]
async fn cancelling_a_spinning_and_a_queued_execution() {
    let server = Server::start(&["--max-concurrent-runs", "1"]);
    server.publish_misbehave("spinner", "").await;
    let spinning = server
        .start_run("/api/apps/spinner/actions/spin/run", json!({}))
        .await;
    let queued = server
        .start_run("/api/apps/spinner/actions/ok/run", json!({}))
        .await;
    let spinning_id = spinning["execution_id"].as_str().unwrap();
    let queued_id = queued["execution_id"].as_str().unwrap();
    // Let the spinner get going.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let execution: Value = server
        .admin_get(&format!("/api/executions/{queued_id}"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(execution["status"], "queued");

    // The queued one, with its own view token.
    let response = server
        .post(&format!("/api/executions/{queued_id}/cancel"))
        .header("x-floom-view-token", queued["view_token"].as_str().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let envelope: Value = response.json().await.unwrap();
    assert_eq!(envelope["status"], "cancelled");
    assert_eq!(envelope["error"]["code"], "cancelled");

    let started = Instant::now();
    let response = server
        .post(&format!("/api/executions/{spinning_id}/cancel"))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let envelope: Value = response.json().await.unwrap();
    assert_eq!(envelope["status"], "cancelled");
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );

    let again = server
        .post(&format!("/api/executions/{spinning_id}/cancel"))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap();
    problem(again, 409, "conflict").await;
    let events = parse_sse(
        &server
            .admin_get(&format!("/api/executions/{queued_id}/events"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap(),
    );
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].1, "error");
    assert_eq!(events[0].2["status"], "cancelled");
}

#[tokio::test]
async fn the_290_s_cap_configured_down_times_out_a_spinner() {
    let server = Server::start(&["--max-timeout-s", "2"]);
    server.publish_misbehave("spinner", "").await;
    let started = Instant::now();
    let envelope: Value = server
        .post("/api/apps/spinner/actions/spin/run?wait=true")
        .json(&json!({}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(envelope["status"], "timed_out");
    assert_eq!(envelope["error"]["code"], "timeout");
    let elapsed = started.elapsed();
    assert!(
        elapsed >= Duration::from_secs(2) && elapsed < Duration::from_secs(4),
        "{elapsed:?}"
    );
}

#[tokio::test]
async fn a_full_queue_answers_429_with_retry_after() {
    let server = Server::start(&["--max-concurrent-runs", "1", "--max-queue", "1"]);
    server
        .publish_misbehave("spinner", "[limits]\ntimeout_s = 5")
        .await;
    server
        .start_run("/api/apps/spinner/actions/spin/run", json!({}))
        .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    server
        .start_run("/api/apps/spinner/actions/ok/run", json!({}))
        .await;
    let response = server
        .post("/api/apps/spinner/actions/ok/run")
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert!(response.headers().contains_key("retry-after"));
    problem(response, 429, "quota_exceeded").await;
}

#[tokio::test]
async fn executions_are_listed_newest_first_with_a_cursor() {
    let server = examples();
    let mut ids = Vec::new();
    for i in 0..7 {
        let path = if i % 2 == 0 {
            "/api/apps/hello/run?wait=true"
        } else {
            "/api/apps/word-count/run?wait=true"
        };
        let inputs = if i % 2 == 0 {
            json!({ "name": format!("n{i}") })
        } else {
            json!({ "text": "x" })
        };
        let envelope: Value = server
            .post(path)
            .json(&json!({ "inputs": inputs }))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        ids.push(envelope["execution_id"].as_str().unwrap().to_owned());
    }
    ids.reverse();
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let mut query = vec![("limit", "3".to_owned())];
        query.extend(cursor.clone().map(|c| ("cursor", c)));
        let page: Value = server
            .admin_get("/api/executions")
            .query(&query)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        for execution in page["data"].as_array().unwrap() {
            seen.push(execution["execution_id"].as_str().unwrap().to_owned());
        }
        match page["next_cursor"].as_str() {
            Some(next) => cursor = Some(next.to_owned()),
            None => break,
        }
    }
    assert_eq!(seen, ids);
    let hello: Value = server
        .admin_get("/api/executions?app=hello&status=succeeded")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(hello["data"].as_array().unwrap().len(), 4);
    assert_eq!(hello["next_cursor"], Value::Null);
}

#[tokio::test]
async fn the_seed_polling_loop_works_with_only_the_url_and_token_changed() {
    let server = examples();
    let envelope = server
        .start_run(
            "/api/apps/word-count/run",
            json!({ "text": "to be or not to be" }),
        )
        .await;
    let id = envelope["execution_id"].as_str().unwrap();
    // From the REST API doc (seeds/000), with https://floom.dev, exec_abc123 and
    // YOUR_AGENT_TOKEN replaced.
    let script = r#"
while true; do
  STATUS=$(curl -s https://floom.dev/api/executions/exec_abc123 \
    -H 'Authorization: Bearer YOUR_AGENT_TOKEN' | jq -r '.status')
  echo "Status: $STATUS"
  if [[ "$STATUS" == "succeeded" || "$STATUS" == "failed" || "$STATUS" == "timed_out" || "$STATUS" == "cancelled" ]]; then
    break
  fi
  sleep 1
done

# Read the result
curl -s https://floom.dev/api/executions/exec_abc123 \
  -H 'Authorization: Bearer YOUR_AGENT_TOKEN' | jq '.output'
"#
    .replace("https://floom.dev", &server.base)
    .replace("exec_abc123", id)
    .replace("YOUR_AGENT_TOKEN", TOKEN);
    let output = std::process::Command::new("bash")
        .args(["-c", &script])
        .output()
        .expect("bash, curl and jq are needed for this test");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(stdout.contains("Status: succeeded"), "{stdout}");
    let result: Value =
        serde_json::from_str(stdout.split_once("Status: succeeded\n").unwrap().1).unwrap();
    assert_eq!(result["words"], 6);
    assert_eq!(result["top_words"][0], json!({ "word": "be", "count": 2 }));
}

#[tokio::test]
async fn the_openapi_document_describes_every_route() {
    let server = examples();
    let doc: Value = server
        .get("/openapi.json")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(doc["openapi"], "3.1.0");
    let mut documented: Vec<String> = Vec::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, operation) in item.as_object().unwrap() {
            documented.push(format!("{} {path}", method.to_uppercase()));
            // Every operation says what it answers, problems included.
            let responses = operation["responses"].as_object().unwrap();
            assert!(
                responses.values().all(|r| r["description"].is_string()),
                "{method} {path}"
            );
        }
    }
    documented.sort();
    let mut expected: Vec<&str> = vec![
        "GET /healthz",
        "GET /metrics",
        "GET /openapi.json",
        "GET /api/apps",
        "POST /api/apps",
        "GET /api/apps/{slug}",
        "DELETE /api/apps/{slug}",
        "GET /api/apps/{slug}/versions",
        "POST /api/apps/{slug}/rollback/{version}",
        "GET /api/apps/{slug}/stats",
        "POST /api/apps/{slug}/run",
        "POST /api/apps/{slug}/actions/{action}/run",
        "GET /api/apps/{slug}/secrets",
        "PUT /api/apps/{slug}/secrets/{name}",
        "DELETE /api/apps/{slug}/secrets/{name}",
        "GET /api/executions",
        "GET /api/executions/{id}",
        "GET /api/executions/{id}/events",
        "GET /api/executions/{id}/logs",
        "POST /api/executions/{id}/cancel",
        "POST /api/executions/{id}/approve",
        "POST /api/executions/{id}/reject",
        "GET /api/approvals",
        "GET /api/approvals/count",
        "GET /api/tokens",
        "POST /api/tokens",
        "DELETE /api/tokens/{id}",
        "PATCH /api/apps/{slug}",
        "POST /api/apps/{slug}/pause",
        "POST /api/apps/{slug}/resume",
        "GET /api/apps/{slug}/timeseries",
        "GET /api/apps/{slug}/sample-input",
        "GET /api/executions/export.csv",
        "GET /api/apps/{slug}/triggers",
        "POST /api/apps/{slug}/triggers",
        "DELETE /api/apps/{slug}/triggers/{id}",
        "POST /api/apps/{slug}/triggers/{id}/rotate",
        "POST /hooks/{id}",
        "GET /api/apps/{slug}/schedules",
        "POST /api/apps/{slug}/schedules",
        "DELETE /api/apps/{slug}/schedules/{id}",
        "POST /api/apps/{slug}/schedules/{id}/pause",
        "POST /api/apps/{slug}/schedules/{id}/resume",
        "GET /api/apps/{slug}/webhooks",
        "POST /api/apps/{slug}/webhooks",
        "GET /api/apps/{slug}/webhooks/secret",
        "DELETE /api/apps/{slug}/webhooks/{id}",
        "GET /api/apps/{slug}/webhooks/{id}/deliveries",
        "GET /api/executions/{id}/artifacts/{name}",
        "GET /api/executions/{id}/inputs/{name}",
        "GET /api/executions/{id}/artifacts.zip",
    ];
    expected.sort();
    assert_eq!(documented, expected);
    assert!(doc["components"]["schemas"]["Problem"].is_object());
    assert_eq!(
        doc["components"]["securitySchemes"]["bearer"]["scheme"],
        "bearer"
    );

    let docs = server.get("/docs").send().await.unwrap();
    assert!(
        docs.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/html")
    );
    let page = docs.text().await.unwrap();
    assert!(page.contains("/api/apps/{slug}/run") && page.contains("Start a run"));
}

#[tokio::test]
async fn metrics_count_runs_queue_and_compiles() {
    let server = examples();
    for name in ["a", " "] {
        server
            .post("/api/apps/hello/run?wait=true")
            .json(&json!({ "inputs": { "name": name } }))
            .send()
            .await
            .unwrap();
    }
    let text = server
        .get("/metrics")
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    for line in [
        "floom_runs_total{status=\"succeeded\"} 1",
        "floom_runs_total{status=\"failed\"} 1",
        "floom_run_duration_seconds_count 2",
        "floom_queue_depth 0",
        // The gauge drops a moment after the answer is sent: only its presence is certain.
        "floom_active_sandboxes ",
    ] {
        assert!(text.contains(line), "missing {line:?} in:\n{text}");
    }
    assert!(text.contains("floom_compiles_total{result="), "{text}");
}

#[tokio::test]
async fn one_app_or_one_caller_cannot_take_the_whole_queue() {
    // Review finding 6: one app's backlog filled the global queue, so every app got 429.
    let server = Server::start(&[
        "--max-concurrent-runs",
        "1",
        "--max-queue",
        "8",
        "--max-queue-per-app",
        "4",
        "--max-queue-per-caller",
        "3",
        "--runs-per-minute",
        "0",
    ]);
    server
        .publish_misbehave("flood", "[limits]\ntimeout_s = 10")
        .await;
    server.publish_misbehave("quiet", "").await;
    let mut callers = Vec::new();
    for name in ["one", "two"] {
        let response = server
            .post("/api/tokens")
            .bearer_auth(TOKEN)
            .json(&json!({ "name": name }))
            .send()
            .await
            .unwrap();
        let token: Value = response.json().await.unwrap();
        callers.push(token["token"].as_str().unwrap().to_owned());
    }
    let run = |slug: &str, caller: &str| {
        server
            .post(&format!("/api/apps/{slug}/actions/sleep/run"))
            .bearer_auth(caller)
            .json(&json!({ "inputs": { "ms": 5000 } }))
            .send()
    };
    // The only slot is busy, so everything below waits.
    assert_eq!(run("flood", &callers[0]).await.unwrap().status(), 202);
    tokio::time::sleep(Duration::from_millis(300)).await;
    for _ in 0..3 {
        assert_eq!(run("flood", &callers[0]).await.unwrap().status(), 202);
    }
    let refused = run("flood", &callers[0]).await.unwrap();
    assert!(refused.headers().contains_key("retry-after"));
    let body = problem(refused, 429, "quota_exceeded").await;
    assert!(
        body["detail"].as_str().unwrap().contains("your full share"),
        "{body}"
    );
    // Another caller still gets in, until the app's share is full.
    assert_eq!(run("flood", &callers[1]).await.unwrap().status(), 202);
    let body = problem(
        run("flood", &callers[1]).await.unwrap(),
        429,
        "quota_exceeded",
    )
    .await;
    assert!(
        body["detail"]
            .as_str()
            .unwrap()
            .contains("flood has its full share"),
        "{body}"
    );
    // And another app still gets in: the queue itself has room.
    assert_eq!(run("quiet", &callers[1]).await.unwrap().status(), 202);
}
