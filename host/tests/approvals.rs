//! Approvals (SPEC section 11) on a real server: the reply-drafter example drafts, a
//! person approves (as proposed or edited) or rejects, and the approved draft is sent to
//! a local outbox through the `then` step, in the same execution and event stream. Also:
//! an invalid edit, deciding twice, who may decide, expiry, the notification, the CLI,
//! and pending approvals and `then` steps across a SIGKILL.

mod support;

use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::routing::post;
use floom_tests::guests;
use serde_json::{Value, json};
use support::{Server, TOKEN, parse_sse};

/// A local outbox API: records what it is sent and answers with a message id.
async fn outbox() -> (String, Arc<Mutex<Vec<Value>>>) {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let record = seen.clone();
    let app = Router::new().route(
        "/messages",
        post(move |axum::Json(body): axum::Json<Value>| {
            let record = record.clone();
            async move {
                let mut seen = record.lock().unwrap();
                seen.push(body);
                axum::Json(json!({ "id": format!("msg-{}", seen.len()) }))
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (format!("http://localhost:{port}"), seen)
}

/// A server with the reply drafter allowed to reach `localhost`.
async fn drafter_server(extra: &[&str]) -> Server {
    let mut args = vec!["--allow-private-network"];
    args.extend_from_slice(extra);
    let server = Server::start(&args);
    publish_drafter(&server).await;
    server
}

async fn publish_drafter(server: &Server) {
    let manifest = std::fs::read_to_string(guests::REPLY_DRAFTER_MANIFEST)
        .unwrap()
        .replace("[\"outbox.example.com\"]", "[\"localhost\"]");
    let response = server.publish(&manifest, guests::REPLY_DRAFTER).await;
    assert_eq!(response.status(), 201, "{}", response.text().await.unwrap());
}

/// Drafts a reply with `?wait=true`: the wait ends at the approval (202).
async fn draft(server: &Server, api: &str, message: &str) -> Value {
    let response = server
        .post("/api/apps/reply-drafter/actions/draft/run?wait=true")
        .bearer_auth(TOKEN)
        .json(&json!({ "inputs": {
            "from": "ada@example.org", "name": "Ada", "subject": "My order",
            "message": message, "api_base": api,
        } }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 202, "{}", response.text().await.unwrap());
    let envelope: Value = response.json().await.unwrap();
    assert_eq!(envelope["status"], "awaiting_approval", "{envelope}");
    assert!(envelope["output"].is_null(), "{envelope}");
    envelope
}

async fn get(server: &Server, path: &str, token: &str) -> (u16, Value) {
    let response = server.get(path).bearer_auth(token).send().await.unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

async fn decide(server: &Server, id: &str, verb: &str, token: &str, body: Value) -> (u16, Value) {
    let response = server
        .post(&format!("/api/executions/{id}/{verb}"))
        .bearer_auth(token)
        .json(&body)
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

/// Polls until the execution's status is one of `statuses`.
async fn wait_status(server: &Server, id: &str, statuses: &[&str]) -> Value {
    let started = Instant::now();
    loop {
        let (_, execution) = get(server, &format!("/api/executions/{id}"), TOKEN).await;
        if statuses.contains(&execution["status"].as_str().unwrap_or_default()) {
            return execution;
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "{id} never reached {statuses:?}: {execution}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn events(server: &Server, id: &str) -> Vec<(i64, String, Value)> {
    let body = server
        .admin_get(&format!("/api/executions/{id}/events"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    parse_sse(&body)
}

async fn token(server: &Server, body: Value) -> String {
    let response = server
        .post("/api/tokens")
        .bearer_auth(TOKEN)
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201);
    let token: Value = response.json().await.unwrap();
    token["token"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn an_edited_approval_is_sent_by_the_then_step_in_the_same_execution() {
    let (api, sent) = outbox().await;
    let server = drafter_server(&[]).await;
    let envelope = draft(&server, &api, "Where is my parcel?\nIt was due Monday.").await;
    let id = envelope["execution_id"].as_str().unwrap();
    let view_token = envelope["view_token"].as_str().unwrap();
    let proposed = &envelope["approval"]["proposed_output"];
    assert_eq!(proposed["to"], "ada@example.org", "{envelope}");
    assert_eq!(proposed["subject"], "Re: My order");
    assert!(
        proposed["body"]
            .as_str()
            .unwrap()
            .contains("> Where is my parcel?")
    );
    assert_eq!(envelope["approval"]["action"], "draft");

    // Pending: listed and counted; nothing was sent.
    let (status, page) = get(&server, "/api/approvals", TOKEN).await;
    assert_eq!(status, 200);
    assert_eq!(page["data"].as_array().unwrap().len(), 1, "{page}");
    assert_eq!(page["data"][0]["execution_id"], id);
    assert_eq!(page["data"][0]["approval"]["proposed_output"], *proposed);
    let (_, count) = get(&server, "/api/approvals/count", TOKEN).await;
    assert_eq!(count["pending"], 1);
    assert!(sent.lock().unwrap().is_empty());

    // A run-role token and the view token read the pending state but may not decide.
    let runner = token(
        &server,
        json!({ "name": "runner", "role": "run", "apps": ["reply-drafter"] }),
    )
    .await;
    let (status, seen) = get(&server, &format!("/api/executions/{id}"), &runner).await;
    assert_eq!(status, 200);
    assert_eq!(seen["approval"]["proposed_output"], *proposed);
    let (status, problem) = decide(&server, id, "approve", &runner, json!({})).await;
    assert_eq!(status, 403, "{problem}");
    let response = server
        .post(&format!(
            "/api/executions/{id}/approve?view_token={view_token}"
        ))
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 403);

    // An edit that breaks the output_schema is refused with its errors; still pending.
    let (status, problem) = decide(
        &server,
        id,
        "approve",
        TOKEN,
        json!({ "output": { "to": "ada@example.org", "subject": "", "body": "x", "cc": "me" } }),
    )
    .await;
    assert_eq!(status, 400, "{problem}");
    assert!(
        problem["detail"]
            .as_str()
            .unwrap()
            .contains("output_schema"),
        "{problem}"
    );
    assert!(
        !problem["errors"].as_array().unwrap().is_empty(),
        "{problem}"
    );
    let (_, still) = get(&server, &format!("/api/executions/{id}"), TOKEN).await;
    assert_eq!(still["status"], "awaiting_approval");

    // An admin-role token for the app approves an edited reply.
    let approver = token(
        &server,
        json!({ "name": "approver", "role": "admin", "apps": ["reply-drafter"] }),
    )
    .await;
    let mut edited = proposed.clone();
    edited["body"] = json!("Hi Ada, your parcel left our warehouse today. Best, Grace");
    let (status, decided) = decide(
        &server,
        id,
        "approve",
        &approver,
        json!({ "output": edited, "annotation": "friendlier" }),
    )
    .await;
    assert_eq!(status, 200, "{decided}");
    assert_eq!(decided["step"], 2, "{decided}");
    assert_eq!(decided["step_action"], "send");
    assert_eq!(decided["approval"]["decision"], "approved");
    assert_eq!(decided["approval"]["annotation"], "friendlier");
    assert_eq!(decided["approval"]["edited"], true);
    assert!(
        decided["approval"]["decided_by"]
            .as_str()
            .unwrap()
            .starts_with("tok_")
    );

    let done = server.wait_terminal(id, Duration::from_secs(30)).await;
    assert_eq!(done["status"], "succeeded", "{done}");
    assert_eq!(
        done["output"],
        json!({ "sent": true, "message_id": "msg-1" })
    );
    assert_eq!(done["action"], "draft");
    assert_eq!(
        *sent.lock().unwrap(),
        [json!({ "to": "ada@example.org", "subject": "Re: My order",
                 "body": "Hi Ada, your parcel left our warehouse today. Best, Grace" })]
    );

    // One stream, numbered without a gap: the draft, its approval and decision, the send.
    let stream = events(&server, id).await;
    let kinds: Vec<&str> = stream.iter().map(|(_, kind, _)| kind.as_str()).collect();
    let at = |kind: &str| kinds.iter().position(|k| *k == kind).unwrap();
    assert!(at("approval") < at("decision"), "{kinds:?}");
    assert_eq!(
        kinds.iter().filter(|k| **k == "start").count(),
        2,
        "{kinds:?}"
    );
    assert_eq!(kinds.last(), Some(&"end"), "{kinds:?}");
    for (i, (seq, _, _)) in stream.iter().enumerate() {
        assert_eq!(*seq, i as i64 + 1, "{stream:?}");
    }

    // Deciding twice is a conflict; nothing more is sent.
    let (status, problem) = decide(&server, id, "approve", TOKEN, json!({})).await;
    assert_eq!(status, 409, "{problem}");
    let (status, _) = decide(&server, id, "reject", TOKEN, json!({})).await;
    assert_eq!(status, 409);
    assert_eq!(sent.lock().unwrap().len(), 1);
    let (_, count) = get(&server, "/api/approvals/count", TOKEN).await;
    assert_eq!(count["pending"], 0);
}

#[tokio::test]
async fn a_rejected_draft_fails_and_is_never_sent() {
    let (api, sent) = outbox().await;
    let server = drafter_server(&[]).await;
    let envelope = draft(&server, &api, "Cancel my account").await;
    let id = envelope["execution_id"].as_str().unwrap();
    let (status, decided) = decide(
        &server,
        id,
        "reject",
        TOKEN,
        json!({ "reason": "we call these customers instead" }),
    )
    .await;
    assert_eq!(status, 200, "{decided}");
    assert_eq!(decided["status"], "failed");
    assert_eq!(decided["error"]["code"], "rejected");
    assert!(
        decided["error"]["message"]
            .as_str()
            .unwrap()
            .contains("we call these customers instead"),
        "{decided}"
    );
    assert_eq!(decided["approval"]["decision"], "rejected");
    assert_eq!(decided["approval"]["decided_by"], "admin");
    assert!(decided["finished_at"].is_string());
    let stream = events(&server, id).await;
    assert_eq!(stream.last().unwrap().1, "error", "{stream:?}");
    assert!(sent.lock().unwrap().is_empty());
    // An approval that then names an action whose input_schema the output breaks is
    // refused too: here the draft without a body.
    let envelope = draft(&server, &api, "Hello").await;
    let id = envelope["execution_id"].as_str().unwrap();
    let (status, problem) = decide(
        &server,
        id,
        "approve",
        TOKEN,
        json!({ "output": { "to": "ada@example.org", "subject": "Re" } }),
    )
    .await;
    assert_eq!(status, 400, "{problem}");
    let (status, cancelled) = decide(&server, id, "cancel", TOKEN, json!({})).await;
    assert_eq!(status, 200, "{cancelled}");
    assert_eq!(cancelled["status"], "cancelled");
}

/// A misbehave app whose `ok` action needs approval (`extra` adds keys to its table)
/// and hands the approved output to `sleep`.
async fn publish_gated(server: &Server, extra: &str) {
    let manifest = format!(
        "slug = \"gated\"\npublic = true\n[actions.ok]\napproval = true\nthen = \"sleep\"\n{extra}\n\
         [actions.sleep]\n"
    );
    let response = server
        .publish(&manifest, floom_tests::guests::MISBEHAVE)
        .await;
    assert_eq!(response.status(), 201, "{}", response.text().await.unwrap());
}

#[tokio::test]
async fn an_undecided_approval_expires_and_says_so_in_a_notification() {
    let server = Server::start(&["--allow-private-network"]);
    publish_gated(&server, "approval_timeout_h = 0.0005").await;
    let (receiver, notified) = notifications().await;
    let response = server
        .post("/api/apps/gated/webhooks")
        .bearer_auth(TOKEN)
        .json(&json!({ "url": receiver, "events": ["execution.awaiting_approval", "execution.timed_out"] }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201, "{}", response.text().await.unwrap());

    let envelope = server
        .start_run("/api/apps/gated/actions/ok/run", json!({}))
        .await;
    let id = envelope["execution_id"].as_str().unwrap();
    let pending = wait_status(&server, id, &["awaiting_approval"]).await;
    assert!(pending["finished_at"].is_null(), "{pending}");
    // 0.0005 h is 1.8 s; the sweeper looks every second.
    let ended = wait_status(&server, id, &["timed_out"]).await;
    assert_eq!(ended["error"]["code"], "approval_expired", "{ended}");
    assert_eq!(ended["approval"]["decision"], "expired");
    let started = Instant::now();
    while notified.lock().unwrap().len() < 2 {
        assert!(started.elapsed() < Duration::from_secs(20), "{notified:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let types: Vec<Value> = notified
        .lock()
        .unwrap()
        .iter()
        .map(|n| n["type"].clone())
        .collect();
    assert_eq!(
        types,
        [
            json!("execution.awaiting_approval"),
            json!("execution.timed_out")
        ]
    );
}

/// A receiver of notifications that keeps their bodies.
async fn notifications() -> (String, Arc<Mutex<Vec<Value>>>) {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let record = seen.clone();
    let app = Router::new().route(
        "/hook",
        post(move |axum::Json(body): axum::Json<Value>| {
            let record = record.clone();
            async move {
                record.lock().unwrap().push(body);
                "ok"
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (format!("http://127.0.0.1:{port}/hook"), seen)
}

#[tokio::test]
async fn a_pending_approval_and_a_then_step_survive_sigkill() {
    let server = Server::start(&[]);
    publish_gated(&server, "").await;
    let envelope = server
        .start_run("/api/apps/gated/actions/ok/run", json!({ "note": "x" }))
        .await;
    let id = envelope["execution_id"].as_str().unwrap().to_owned();
    wait_status(&server, &id, &["awaiting_approval"]).await;

    let server = server.kill_and_restart();
    let pending = wait_status(&server, &id, &["awaiting_approval"]).await;
    assert_eq!(
        pending["approval"]["proposed_output"],
        json!({ "ok": true, "input": { "note": "x" } })
    );
    // Approve an edit that makes the next step sleep, and kill the server while it does.
    let (status, decided) = decide(
        &server,
        &id,
        "approve",
        TOKEN,
        json!({ "output": { "ms": 3000 } }),
    )
    .await;
    assert_eq!(status, 200, "{decided}");
    let running = wait_status(&server, &id, &["running"]).await;
    assert_eq!(running["step"], 2);
    assert_eq!(running["attempts"], 1);
    tokio::time::sleep(Duration::from_millis(300)).await;

    let server = server.kill_and_restart();
    let done = server.wait_terminal(&id, Duration::from_secs(30)).await;
    assert_eq!(done["status"], "succeeded", "{done}");
    assert_eq!(done["output"], json!({ "slept_ms": 3000 }));
    assert_eq!(done["attempts"], 2, "the then step is retried once: {done}");
    let stream = events(&server, &id).await;
    assert!(
        stream.iter().any(|(_, _, data)| data["line"]
            .as_str()
            .is_some_and(|l| l.contains("retried once"))),
        "{stream:?}"
    );
}

#[tokio::test]
async fn the_cli_stops_at_the_approval_and_approves_with_an_editor() {
    let (api, sent) = outbox().await;
    let server = drafter_server(&[]).await;
    let floom = |args: &[&str], editor: Option<&str>| {
        let mut command = Command::new(env!("CARGO_BIN_EXE_floom"));
        command
            .args(args)
            .env("FLOOM_API_URL", &server.base)
            .env("FLOOM_TOKEN", TOKEN)
            .env_remove("VISUAL");
        if let Some(editor) = editor {
            command.env("EDITOR", editor);
        }
        command.output().expect("run floom")
    };
    let inputs =
        json!({ "from": "ada@example.org", "message": "Is it in stock?", "api_base": api })
            .to_string();
    let run = floom(&["run", "reply-drafter/draft", &inputs], None);
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert_eq!(run.status.code(), Some(4), "{stderr}");
    assert!(stderr.contains("awaiting approval"), "{stderr}");
    let proposed: Value = serde_json::from_slice(&run.stdout).unwrap();
    assert_eq!(proposed["subject"], "Re: Is it in stock?");

    let list = floom(&["approvals", "list", "--json"], None);
    let page: Value = serde_json::from_slice(&list.stdout).unwrap();
    let id = page["data"][0]["execution_id"].as_str().unwrap().to_owned();

    // The "editor" rewrites the subject in the file it is given.
    let approved = floom(
        &["approvals", "approve", &id, "--edit"],
        Some("sed -i s/Re:/Answer:/"),
    );
    assert!(
        approved.status.success(),
        "{}",
        String::from_utf8_lossy(&approved.stderr)
    );
    assert!(
        String::from_utf8_lossy(&approved.stdout).contains("next step, send, is queued"),
        "{}",
        String::from_utf8_lossy(&approved.stdout)
    );
    let done = server.wait_terminal(&id, Duration::from_secs(30)).await;
    assert_eq!(done["status"], "succeeded", "{done}");
    assert_eq!(
        sent.lock().unwrap()[0]["subject"],
        "Answer: Is it in stock?"
    );

    let again = floom(&["approvals", "reject", &id], None);
    assert_eq!(again.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&again.stderr).contains("not awaiting approval"),
        "{}",
        String::from_utf8_lossy(&again.stderr)
    );
}
