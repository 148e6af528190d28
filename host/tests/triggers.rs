//! Inbound triggers on a real server: a run started by token and by signature, the
//! refusals that start nothing, de-duplication of delivery ids, rotation and removal.

mod support;

use std::time::Duration;

use hmac::{Hmac, Mac};
use serde_json::{Value, json};
use sha2::Sha256;
use support::{Server, TOKEN};

/// Executions of `app` so far.
async fn executions(server: &Server, app: &str) -> Vec<Value> {
    let page: Value = server
        .admin_get(&format!("/api/executions?app={app}&limit=200"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    page["data"].as_array().unwrap().clone()
}

async fn create_trigger(server: &Server, app: &str, body: Value) -> Value {
    let response = server
        .post(&format!("/api/apps/{app}/triggers"))
        .bearer_auth(TOKEN)
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201);
    response.json().await.unwrap()
}

fn signature(secret: &str, body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

#[tokio::test]
async fn a_trigger_starts_runs_by_token_and_by_signature_and_refusals_start_nothing() {
    let server = Server::start(&["--examples=rust"]);
    let trigger = create_trigger(&server, "hello", json!({})).await;
    let id = trigger["id"].as_str().unwrap();
    let secret = trigger["secret"].as_str().unwrap();
    assert_eq!(trigger["url"], format!("/hooks/{id}"));
    assert_eq!(trigger["action"], "run");

    // By token: the body is the inputs.
    let response = server
        .post(&format!("/hooks/{id}?token={secret}"))
        .json(&json!({ "name": "Token" }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 202);
    let answer: Value = response.json().await.unwrap();
    assert_eq!(answer["status"], "queued");
    let by_token = answer["execution_id"].as_str().unwrap().to_owned();
    let done = server
        .wait_terminal(&by_token, Duration::from_secs(20))
        .await;
    assert_eq!(done["status"], "succeeded");
    assert_eq!(done["output"]["greeting"], "Hello, Token!");
    assert_eq!(done["trigger_source"], "webhook");
    // The view token it answered reads the execution.
    let viewed = server
        .get(&format!(
            "/api/executions/{by_token}?view_token={}",
            answer["view_token"].as_str().unwrap()
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(viewed.status(), 200);

    // By signature, over the raw body as sent (any content type).
    let body = br#"{ "name" : "Signed" }"#;
    let response = server
        .post(&format!("/hooks/{id}"))
        .header("x-floom-signature", signature(secret, body))
        .header("content-type", "text/plain")
        .body(body.to_vec())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 202);
    let answer: Value = response.json().await.unwrap();
    let signed = server
        .wait_terminal(
            answer["execution_id"].as_str().unwrap(),
            Duration::from_secs(20),
        )
        .await;
    assert_eq!(signed["output"]["greeting"], "Hello, Signed!");
    let before = executions(&server, "hello").await.len();
    assert_eq!(before, 2);

    // Refusals: each answers a problem and starts nothing.
    let refusals: Vec<(reqwest::RequestBuilder, u16)> = vec![
        // No proof at all.
        (
            server
                .post(&format!("/hooks/{id}"))
                .json(&json!({ "name": "x" })),
            401,
        ),
        // A wrong token.
        (
            server
                .post(&format!("/hooks/{id}?token=wrong"))
                .json(&json!({ "name": "x" })),
            401,
        ),
        // An empty token.
        (
            server
                .post(&format!("/hooks/{id}?token="))
                .json(&json!({ "name": "x" })),
            401,
        ),
        // A signature of another body.
        (
            server
                .post(&format!("/hooks/{id}"))
                .header("x-floom-signature", signature(secret, b"{}"))
                .body(r#"{"name":"x"}"#),
            401,
        ),
        // A signature with another key.
        (
            server
                .post(&format!("/hooks/{id}"))
                .header("x-floom-signature", signature("other", br#"{"name":"x"}"#))
                .body(r#"{"name":"x"}"#),
            401,
        ),
        // Inputs that break the schema.
        (
            server
                .post(&format!("/hooks/{id}?token={secret}"))
                .json(&json!({ "name": 42, "extra": true })),
            400,
        ),
        // Not JSON, and not an object.
        (
            server
                .post(&format!("/hooks/{id}?token={secret}"))
                .body("name=x"),
            400,
        ),
        (
            server
                .post(&format!("/hooks/{id}?token={secret}"))
                .json(&json!(["name"])),
            400,
        ),
        // An unknown trigger.
        (
            server
                .post(&format!("/hooks/trg_nope?token={secret}"))
                .json(&json!({})),
            404,
        ),
    ];
    for (request, expected) in refusals {
        let response = request.send().await.unwrap();
        assert_eq!(response.status(), expected);
        let problem: Value = response.json().await.unwrap();
        if expected == 400 && problem["detail"].as_str().unwrap().contains("input_schema") {
            let paths: Vec<&str> = problem["errors"]
                .as_array()
                .unwrap()
                .iter()
                .map(|e| e["path"].as_str().unwrap())
                .collect();
            assert!(paths.contains(&"/name"), "{problem}");
        }
    }
    assert_eq!(executions(&server, "hello").await.len(), before);

    // The list never shows a secret.
    let list: Value = server
        .admin_get("/api/apps/hello/triggers")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(list["data"].as_array().unwrap().len(), 1);
    assert_eq!(list["data"][0]["id"], id);
    assert!(list["data"][0].get("secret").is_none());
    // Managing triggers needs the admin.
    let anonymous = server.get("/api/apps/hello/triggers").send().await.unwrap();
    assert_eq!(anonymous.status(), 401);
}

#[tokio::test]
async fn delivery_ids_are_deduplicated_and_rotation_retires_the_old_secret() {
    let server = Server::start(&["--examples=rust"]);
    let trigger = create_trigger(&server, "hello", json!({ "action": "run" })).await;
    let id = trigger["id"].as_str().unwrap();
    let secret = trigger["secret"].as_str().unwrap();

    // A sender retrying the same delivery (each header that names one) gets the first
    // delivery's execution.
    for header in ["webhook-id", "x-request-id", "idempotency-key"] {
        let send = || {
            server
                .post(&format!("/hooks/{id}?token={secret}"))
                .header(header, format!("delivery-{header}"))
                .json(&json!({ "name": "Once" }))
                .send()
        };
        let first = send().await.unwrap();
        assert_eq!(first.status(), 202);
        let first: Value = first.json().await.unwrap();
        let execution = first["execution_id"].as_str().unwrap();
        server
            .wait_terminal(execution, Duration::from_secs(20))
            .await;
        let again = send().await.unwrap();
        assert_eq!(again.status(), 200, "{header}");
        let again: Value = again.json().await.unwrap();
        assert_eq!(again["execution_id"], execution);
        assert_eq!(again["status"], "succeeded");
        assert_eq!(again["view_token"], first["view_token"]);
    }
    assert_eq!(executions(&server, "hello").await.len(), 3);

    // Rotation: the new secret works, the old one is refused.
    let rotated = server
        .post(&format!("/api/apps/hello/triggers/{id}/rotate"))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(rotated.status(), 200);
    let rotated: Value = rotated.json().await.unwrap();
    let new_secret = rotated["secret"].as_str().unwrap();
    assert_ne!(new_secret, secret);
    assert!(rotated["rotated_at"].is_string());
    let old = server
        .post(&format!("/hooks/{id}?token={secret}"))
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(old.status(), 401);
    let body = br#"{"name":"Rotated"}"#;
    let old_signature = server
        .post(&format!("/hooks/{id}"))
        .header("x-floom-signature", signature(secret, body))
        .body(body.to_vec())
        .send()
        .await
        .unwrap();
    assert_eq!(old_signature.status(), 401);
    let new = server
        .post(&format!("/hooks/{id}"))
        .header("x-floom-signature", signature(new_secret, body))
        .body(body.to_vec())
        .send()
        .await
        .unwrap();
    assert_eq!(new.status(), 202);
    assert_eq!(executions(&server, "hello").await.len(), 4);

    // Removal: the hook is gone.
    let removed = server
        .http
        .delete(server.url(&format!("/api/apps/hello/triggers/{id}")))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(removed.status(), 204);
    let gone = server
        .post(&format!("/hooks/{id}?token={new_secret}"))
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(gone.status(), 404);

    // An unknown action is refused when the trigger is made.
    let unknown = server
        .post("/api/apps/hello/triggers")
        .bearer_auth(TOKEN)
        .json(&json!({ "action": "nope" }))
        .send()
        .await
        .unwrap();
    assert_eq!(unknown.status(), 400);
}

#[tokio::test]
async fn each_trigger_has_its_own_rate_limit() {
    let server = Server::start(&["--examples=rust", "--runs-per-minute", "2"]);
    let busy = create_trigger(&server, "hello", json!({})).await;
    let other = create_trigger(&server, "hello", json!({})).await;
    let post = |trigger: &Value| {
        server
            .post(&format!(
                "/hooks/{}?token={}",
                trigger["id"].as_str().unwrap(),
                trigger["secret"].as_str().unwrap()
            ))
            .json(&json!({}))
            .send()
    };
    assert_eq!(post(&busy).await.unwrap().status(), 202);
    assert_eq!(post(&busy).await.unwrap().status(), 202);
    let limited = post(&busy).await.unwrap();
    assert_eq!(limited.status(), 429);
    assert!(limited.headers().contains_key("retry-after"));
    // Another trigger of the same app is not held back.
    assert_eq!(post(&other).await.unwrap().status(), 202);
    // A wrong secret never spends a trigger's allowance.
    let wrong = server
        .post(&format!(
            "/hooks/{}?token=wrong",
            other["id"].as_str().unwrap()
        ))
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status(), 401);
    assert_eq!(post(&other).await.unwrap().status(), 202);
}
