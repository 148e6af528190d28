//! Who may do what: agent tokens and their scopes, view tokens, idempotency keys,
//! secrets, versions and rollback, rate limits and stats. Every refusal is tested too.

mod support;

use std::time::Duration;

use floom_tests::guests;
use serde_json::{Value, json};
use support::{Server, TOKEN};

async fn json_of(response: reqwest::Response) -> (u16, Value) {
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

/// Creates an agent token with the admin secret.
async fn token(server: &Server, body: Value) -> Value {
    let (status, token) = json_of(
        server
            .post("/api/tokens")
            .bearer_auth(TOKEN)
            .json(&body)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 201, "{token}");
    token
}

async fn private_apps(server: &Server) {
    let manifest = std::fs::read_to_string(guests::HELLO_MANIFEST)
        .unwrap()
        .replace("public = true", "public = false");
    for slug in ["alpha", "beta"] {
        let text = manifest.replace("slug = \"hello\"", &format!("slug = \"{slug}\""));
        assert_eq!(server.publish(&text, guests::HELLO).await.status(), 201);
    }
}

#[tokio::test]
async fn scoped_tokens_run_only_what_they_cover() {
    let server = Server::start(&[]);
    private_apps(&server).await;
    let alpha = token(
        &server,
        json!({ "name": "alpha runner", "apps": ["alpha"] }),
    )
    .await;
    let secret = alpha["token"].as_str().unwrap().to_owned();
    assert!(secret.starts_with("floom_"));
    assert_eq!(alpha["role"], "run");

    let run = |slug: &str, auth: Option<&str>| {
        let request = server
            .post(&format!("/api/apps/{slug}/run?wait=true"))
            .json(&json!({ "inputs": { "name": "x" } }));
        match auth {
            Some(token) => request.bearer_auth(token),
            None => request,
        }
    };
    let (status, envelope) = json_of(run("alpha", Some(&secret)).send().await.unwrap()).await;
    assert_eq!(
        (status, envelope["status"].as_str()),
        (200, Some("succeeded"))
    );
    // The other headers work as well.
    let status = run("alpha", None)
        .header("x-floom-token", &secret)
        .send()
        .await
        .unwrap()
        .status();
    assert_eq!(status, 200);

    // No credentials: 401. A token that does not cover the app: the same 404 as an app
    // that does not exist.
    let (status, problem) = json_of(run("beta", None).send().await.unwrap()).await;
    assert_eq!(
        (status, problem["code"].as_str()),
        (401, Some("auth_failed"))
    );
    let (status, covered_not) = json_of(run("beta", Some(&secret)).send().await.unwrap()).await;
    let (status_missing, missing) =
        json_of(run("gamma", Some(&secret)).send().await.unwrap()).await;
    assert_eq!((status, status_missing), (404, 404));
    assert_eq!(covered_not["code"], missing["code"]);
    assert_eq!(
        covered_not["detail"].as_str().unwrap().replace("beta", "X"),
        missing["detail"].as_str().unwrap().replace("gamma", "X")
    );
    let (status, _) = json_of(
        server
            .get("/api/apps/beta")
            .bearer_auth(&secret)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 404);

    // The app list shows what the token covers.
    let (_, apps) = json_of(
        server
            .get("/api/apps")
            .bearer_auth(&secret)
            .send()
            .await
            .unwrap(),
    )
    .await;
    let slugs: Vec<&str> = apps["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["slug"].as_str().unwrap())
        .collect();
    assert_eq!(slugs, ["alpha"]);

    // A run token cannot administer, even what it covers; nor manage tokens.
    let (status, _) = json_of(
        server
            .http
            .delete(server.url("/api/apps/alpha"))
            .bearer_auth(&secret)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 403);
    let (status, _) = json_of(
        server
            .post("/api/tokens")
            .bearer_auth(&secret)
            .json(&json!({ "name": "x" }))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 403);
    let manifest = std::fs::read_to_string(guests::HELLO_MANIFEST)
        .unwrap()
        .replace("\"hello\"", "\"alpha\"");
    let form = reqwest::multipart::Form::new()
        .text("manifest", manifest)
        .part(
            "component",
            reqwest::multipart::Part::bytes(std::fs::read(guests::HELLO).unwrap()),
        );
    let status = server
        .post("/api/apps")
        .bearer_auth(&secret)
        .multipart(form)
        .send()
        .await
        .unwrap()
        .status();
    assert_eq!(status, 403);

    // Executions: listed and read only within the token's apps.
    let (_, envelope) = json_of(run("beta", Some(TOKEN)).send().await.unwrap()).await;
    let beta_execution = envelope["execution_id"].as_str().unwrap().to_owned();
    let (_, page) = json_of(
        server
            .get("/api/executions")
            .bearer_auth(&secret)
            .send()
            .await
            .unwrap(),
    )
    .await;
    let apps: Vec<&str> = page["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["app"].as_str().unwrap())
        .collect();
    assert_eq!(apps, ["alpha", "alpha"]);
    let (status, _) = json_of(
        server
            .get(&format!("/api/executions/{beta_execution}"))
            .bearer_auth(&secret)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 404);
}

#[tokio::test]
async fn scoped_admin_tokens_administer_their_apps_only() {
    let server = Server::start(&[]);
    private_apps(&server).await;
    let admin = token(
        &server,
        json!({ "name": "alpha admin", "apps": ["alpha"], "role": "admin" }),
    )
    .await;
    let secret = admin["token"].as_str().unwrap();
    let put = |slug: &str| {
        server
            .http
            .put(server.url(&format!("/api/apps/{slug}/secrets/API_KEY")))
            .bearer_auth(secret)
            .json(&json!({ "value": "v" }))
    };
    assert_eq!(put("alpha").send().await.unwrap().status(), 204);
    assert_eq!(put("beta").send().await.unwrap().status(), 404);
    // Not a full admin: no token management.
    let status = server
        .get("/api/tokens")
        .bearer_auth(secret)
        .send()
        .await
        .unwrap()
        .status();
    assert_eq!(status, 403);
}

#[tokio::test]
async fn expired_and_revoked_tokens_are_refused() {
    let server = Server::start(&["--examples=rust"]);
    let short = token(&server, json!({ "name": "short", "expires_in_s": 1 })).await;
    let revoked = token(&server, json!({ "name": "revoked" })).await;
    let run = |token: &str| {
        server
            .post("/api/apps/hello/run")
            .bearer_auth(token)
            .json(&json!({}))
    };
    assert_eq!(
        run(short["token"].as_str().unwrap())
            .send()
            .await
            .unwrap()
            .status(),
        202
    );
    let status = server
        .http
        .delete(server.url(&format!("/api/tokens/{}", revoked["id"].as_str().unwrap())))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap()
        .status();
    assert_eq!(status, 204);
    let (status, problem) = json_of(
        run(revoked["token"].as_str().unwrap())
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(
        (status, problem["detail"].as_str()),
        (401, Some("the token was revoked"))
    );
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let (status, problem) =
        json_of(run(short["token"].as_str().unwrap()).send().await.unwrap()).await;
    assert_eq!(
        (status, problem["detail"].as_str()),
        (401, Some("the token has expired"))
    );
    let (status, problem) = json_of(run("floom_made_up").send().await.unwrap()).await;
    assert_eq!(
        (status, problem["detail"].as_str()),
        (401, Some("the token is not valid"))
    );

    // The list never shows a token's secret.
    let (_, list) = json_of(
        server
            .get("/api/tokens")
            .bearer_auth(TOKEN)
            .send()
            .await
            .unwrap(),
    )
    .await;
    let tokens = list["data"].as_array().unwrap();
    assert_eq!(tokens.len(), 2);
    assert!(tokens.iter().all(|t| t.get("token").is_none()));
    assert!(tokens.iter().any(|t| t["revoked_at"].is_string()));
    // Survives a restart: the revoked token stays revoked.
    let server = server.kill_and_restart();
    let status = server
        .post("/api/apps/hello/run")
        .bearer_auth(revoked["token"].as_str().unwrap())
        .json(&json!({}))
        .send()
        .await
        .unwrap()
        .status();
    assert_eq!(status, 401);

    // Bad token requests.
    for body in [
        json!({}),
        json!({ "name": "" }),
        json!({ "name": "x", "apps": [] }),
        json!({ "name": "x", "role": "root" }),
        json!({ "name": "x", "apps": ["Not A Slug"] }),
    ] {
        let status = server
            .post("/api/tokens")
            .bearer_auth(TOKEN)
            .json(&body)
            .send()
            .await
            .unwrap()
            .status();
        assert_eq!(status, 400, "{body}");
    }
}

#[tokio::test]
async fn a_view_token_reads_its_execution_only() {
    let server = Server::start(&["--examples=rust"]);
    let first = server
        .start_run("/api/apps/hello/run", json!({ "name": "a" }))
        .await;
    let second = server
        .start_run("/api/apps/hello/run", json!({ "name": "b" }))
        .await;
    let get = |id: &Value, token: &Value| {
        server
            .get(&format!("/api/executions/{}", id.as_str().unwrap()))
            .header("x-floom-view-token", token.as_str().unwrap())
    };
    assert_eq!(
        get(&first["execution_id"], &first["view_token"])
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    assert_eq!(
        get(&first["execution_id"], &second["view_token"])
            .send()
            .await
            .unwrap()
            .status(),
        404
    );
    // A token covering the app reads it too; public apps' executions stay private.
    let runner = token(&server, json!({ "name": "r", "apps": ["word-count"] })).await;
    let request = server
        .get(&format!(
            "/api/executions/{}",
            first["execution_id"].as_str().unwrap()
        ))
        .bearer_auth(runner["token"].as_str().unwrap());
    assert_eq!(request.send().await.unwrap().status(), 404);
}

#[tokio::test]
async fn idempotency_keys_return_the_same_execution() {
    let server = Server::start(&["--examples=rust"]);
    let post_as = |caller: &str, key: &str, name: &str| {
        server
            .post("/api/apps/hello/run")
            .header("Idempotency-Key", key)
            .bearer_auth(caller)
            .json(&json!({ "inputs": { "name": name } }))
    };
    let post = |key: &str, name: &str| post_as(TOKEN, key, name);
    // Review finding 11a: anonymous keys were scoped to the client address, so clients
    // behind one NAT shared them. They need credentials now.
    let (status, problem) = json_of(
        server
            .post("/api/apps/hello/run")
            .header("Idempotency-Key", "k1")
            .json(&json!({ "inputs": { "name": "Ada" } }))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(
        (status, problem["code"].as_str()),
        (400, Some("invalid_input"))
    );
    assert!(
        problem["detail"]
            .as_str()
            .unwrap()
            .contains("needs credentials"),
        "{problem}"
    );
    let (status, first) = json_of(post("k1", "Ada").send().await.unwrap()).await;
    assert_eq!(status, 202);
    let (_, again) = json_of(post("k1", "Ada").send().await.unwrap()).await;
    assert_eq!(again["execution_id"], first["execution_id"]);
    assert_eq!(again["view_token"], first["view_token"]);
    let (status, problem) = json_of(post("k1", "Bob").send().await.unwrap()).await;
    assert_eq!((status, problem["code"].as_str()), (422, Some("conflict")));
    // Another caller with the same key gets its own execution.
    let runner = token(&server, json!({ "name": "r" })).await;
    let (_, theirs) = json_of(
        post_as(runner["token"].as_str().unwrap(), "k1", "Ada")
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_ne!(theirs["execution_id"], first["execution_id"]);
    // A replay with ?wait=true waits for the same execution's end.
    let (status, waited) = json_of(
        server
            .post("/api/apps/hello/run?wait=true")
            .header("Idempotency-Key", "k1")
            .bearer_auth(TOKEN)
            .json(&json!({ "inputs": { "name": "Ada" } }))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(
        (status, &waited["execution_id"]),
        (200, &first["execution_id"])
    );
    assert_eq!(waited["output"], json!({ "greeting": "Hello, Ada!" }));
    // Also across a restart.
    let server = server.kill_and_restart();
    let (_, after) = json_of(
        server
            .post("/api/apps/hello/run")
            .header("Idempotency-Key", "k1")
            .bearer_auth(TOKEN)
            .json(&json!({ "inputs": { "name": "Ada" } }))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(after["execution_id"], first["execution_id"]);
    assert_eq!(after["status"], "succeeded");
    let status = server
        .post("/api/apps/hello/run")
        .header("Idempotency-Key", "x".repeat(300))
        .bearer_auth(TOKEN)
        .json(&json!({}))
        .send()
        .await
        .unwrap()
        .status();
    assert_eq!(status, 400);
}

#[tokio::test]
async fn secrets_reach_only_declared_names_and_never_leak() {
    let server = Server::start(&["--examples=rust"]);
    server
        .publish_misbehave("peek", "secrets = [\"DECLARED\"]")
        .await;
    let put = |app: &str, name: &str, value: &str| {
        server
            .http
            .put(server.url(&format!("/api/apps/{app}/secrets/{name}")))
            .bearer_auth(TOKEN)
            .json(&json!({ "value": value }))
    };
    assert_eq!(
        put("peek", "DECLARED", "declared-value")
            .send()
            .await
            .unwrap()
            .status(),
        204
    );
    assert_eq!(
        put("peek", "UNDECLARED", "undeclared-value")
            .send()
            .await
            .unwrap()
            .status(),
        204
    );
    let (_, seen) = json_of(
        server
            .post("/api/apps/peek/actions/secret/run?wait=true")
            .json(&json!({ "inputs": { "names": ["DECLARED", "UNDECLARED"] } }))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(
        seen["output"],
        json!({ "DECLARED": "declared-value", "UNDECLARED": null }),
        "{seen}"
    );
    let (_, list) = json_of(
        server
            .get("/api/apps/peek/secrets")
            .bearer_auth(TOKEN)
            .send()
            .await
            .unwrap(),
    )
    .await;
    let names: Vec<(&str, bool)> = list["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                s["name"].as_str().unwrap(),
                s["declared"].as_bool().unwrap(),
            )
        })
        .collect();
    assert_eq!(names, [("DECLARED", true), ("UNDECLARED", false)]);

    // The webhook signer uses its key without ever revealing it.
    let key = "k3y-that-must-not-leak";
    assert_eq!(
        put("webhook-signer", "SIGNING_KEY", key)
            .send()
            .await
            .unwrap()
            .status(),
        204
    );
    let response = server
        .post("/api/apps/webhook-signer/actions/sign/run?stream=true")
        .bearer_auth(TOKEN)
        .json(&json!({ "inputs": { "body": "{}", "timestamp": 1 } }))
        .send()
        .await
        .unwrap();
    let id = response.headers()["x-floom-execution-id"]
        .to_str()
        .unwrap()
        .to_owned();
    let stream = response.text().await.unwrap();
    assert!(stream.contains("\"header\":\"t=1,v1="), "{stream}");
    let mut answers = vec![stream];
    for path in [
        format!("/api/executions/{id}"),
        format!("/api/executions/{id}/events"),
        format!("/api/executions/{id}/logs"),
        "/api/executions?limit=200".to_owned(),
        "/api/apps/webhook-signer".to_owned(),
        "/api/apps/webhook-signer/secrets".to_owned(),
    ] {
        answers.push(
            server
                .get(&path)
                .bearer_auth(TOKEN)
                .send()
                .await
                .unwrap()
                .text()
                .await
                .unwrap(),
        );
    }
    for answer in &answers {
        assert!(!answer.contains(key), "the secret leaked: {answer}");
    }
    // Not in the server's log, nor stored in the clear.
    let log = std::fs::read_to_string(server.data_dir.join("server.log")).unwrap();
    assert!(!log.contains(key));
    let db = std::fs::read(server.data_dir.join("floom.db")).unwrap();
    let wal = std::fs::read(server.data_dir.join("floom.db-wal")).unwrap_or_default();
    for bytes in [&db, &wal] {
        assert!(
            !bytes.windows(key.len()).any(|w| w == key.as_bytes()),
            "stored in the clear"
        );
    }

    // Refusals.
    let status = server
        .http
        .put(server.url("/api/apps/peek/secrets/lower"))
        .bearer_auth(TOKEN)
        .json(&json!({ "value": "v" }))
        .send()
        .await
        .unwrap()
        .status();
    assert_eq!(status, 400);
    let status = server
        .http
        .put(server.url("/api/apps/peek/secrets/DECLARED"))
        .json(&json!({ "value": "v" }))
        .send()
        .await
        .unwrap()
        .status();
    assert_eq!(status, 401);
}

#[tokio::test]
async fn versions_and_rollback() {
    let server = Server::start(&[]);
    let manifest = std::fs::read_to_string(guests::HELLO_MANIFEST).unwrap();
    server.publish(&manifest, guests::HELLO).await;
    let v2 = manifest.replace("Greets you by name", "Version two");
    server.publish(&v2, guests::HELLO).await;
    let run = || async {
        let (_, envelope) = json_of(
            server
                .post("/api/apps/hello/run?wait=true")
                .json(&json!({}))
                .send()
                .await
                .unwrap(),
        )
        .await;
        let id = envelope["execution_id"].as_str().unwrap().to_owned();
        let (_, detail) = json_of(
            server
                .admin_get(&format!("/api/executions/{id}"))
                .send()
                .await
                .unwrap(),
        )
        .await;
        detail["version"].as_i64().unwrap()
    };
    assert_eq!(run().await, 2);
    let (_, versions) = json_of(server.get("/api/apps/hello/versions").send().await.unwrap()).await;
    let listed: Vec<(i64, bool)> = versions["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| {
            (
                v["version"].as_i64().unwrap(),
                v["current"].as_bool().unwrap(),
            )
        })
        .collect();
    assert_eq!(listed, [(1, false), (2, true)]);

    let (status, app) = json_of(
        server
            .post("/api/apps/hello/rollback/1")
            .bearer_auth(TOKEN)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!((status, app["version"].as_i64()), (200, Some(1)));
    assert_eq!(app["description"], "Greets you by name");
    assert_eq!(run().await, 1);
    let status = server
        .post("/api/apps/hello/rollback/7")
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap()
        .status();
    assert_eq!(status, 404);
    let status = server
        .post("/api/apps/hello/rollback/1")
        .send()
        .await
        .unwrap()
        .status();
    assert_eq!(status, 401);
    // The rollback holds across a restart.
    let server = server.kill_and_restart();
    let (_, app) = json_of(server.get("/api/apps/hello").send().await.unwrap()).await;
    assert_eq!(app["version"], 1);
}

#[tokio::test]
async fn rate_limits_and_stats() {
    let server = Server::start(&["--examples=rust", "--runs-per-minute", "3"]);
    let run = |name: &str| {
        server
            .post("/api/apps/hello/run?wait=true")
            .json(&json!({ "inputs": { "name": name } }))
    };
    for _ in 0..3 {
        assert_eq!(run("x").send().await.unwrap().status(), 200);
    }
    let response = run("x").send().await.unwrap();
    assert_eq!(response.status(), 429);
    let retry_after: u64 = response.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=20).contains(&retry_after), "{retry_after}");
    // Each token has its own budget; the admin has none.
    let runner = token(&server, json!({ "name": "r" })).await;
    assert_eq!(
        run("y")
            .bearer_auth(runner["token"].as_str().unwrap())
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    assert_eq!(
        run(" ").bearer_auth(TOKEN).send().await.unwrap().status(),
        200
    );

    let (status, stats) = json_of(
        server
            .get("/api/apps/hello/stats")
            .bearer_auth(TOKEN)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(stats["total"], 5);
    assert_eq!(stats["by_status"]["succeeded"], 4);
    assert_eq!(stats["by_status"]["failed"], 1);
    assert_eq!(stats["error_rate"], 0.2);
    assert!(stats["duration_ms"]["p50"].is_number() && stats["duration_ms"]["p95"].is_number());
    let status = server
        .get("/api/apps/hello/stats")
        .send()
        .await
        .unwrap()
        .status();
    assert_eq!(status, 401);
}

#[tokio::test]
async fn a_deleted_app_leaves_nothing_to_a_new_app_of_its_slug() {
    // Review finding 7: secrets, versions and token grants survived a delete, and a
    // re-publish of the slug inherited them (and rollback reached the old versions).
    let server = Server::start(&["--max-runs-per-app", "1", "--runs-per-minute", "0"]);
    let manifest = |description: &str| {
        format!(
            "slug = \"gone\"\ndescription = \"{description}\"\nsecrets = [\"KEY\"]\n\
             [actions.secret]\n[actions.sleep]\n"
        )
    };
    for description in ["first", "second"] {
        let response = server
            .publish(&manifest(description), guests::MISBEHAVE)
            .await;
        assert_eq!(response.status(), 201);
    }
    let response = server
        .http
        .put(server.url("/api/apps/gone/secrets/KEY"))
        .bearer_auth(TOKEN)
        .json(&json!({ "value": "old-value" }))
        .send()
        .await
        .unwrap();
    assert!(response.status().is_success());
    let scoped = token(
        &server,
        json!({ "name": "gone", "apps": ["gone", "other"] }),
    )
    .await;
    let scoped_secret = scoped["token"].as_str().unwrap().to_owned();
    // One run in flight and one waiting behind it (one run per app at a time).
    let mut in_flight = Vec::new();
    for _ in 0..2 {
        let (status, envelope) = json_of(
            server
                .post("/api/apps/gone/actions/sleep/run")
                .bearer_auth(&scoped_secret)
                .json(&json!({ "inputs": { "ms": 30_000 } }))
                .send()
                .await
                .unwrap(),
        )
        .await;
        assert_eq!(status, 202, "{envelope}");
        in_flight.push(envelope["execution_id"].as_str().unwrap().to_owned());
    }
    tokio::time::sleep(Duration::from_millis(300)).await;

    let delete = |purge: bool| {
        server
            .http
            .delete(server.url(&format!("/api/apps/gone?purge={purge}")))
            .bearer_auth(TOKEN)
            .send()
    };
    assert_eq!(delete(false).await.unwrap().status(), 204);
    // Its runs stop: the running one and the queued one.
    for id in &in_flight {
        let execution = server.wait_terminal(id, Duration::from_secs(5)).await;
        assert_eq!(execution["status"], "cancelled", "{execution}");
    }
    // The slug is retired: a new app cannot take it by accident.
    let response = server.publish(&manifest("new"), guests::MISBEHAVE).await;
    let (status, problem) = json_of(response).await;
    assert_eq!(
        (status, problem["code"].as_str()),
        (409, Some("conflict")),
        "{problem}"
    );
    assert!(
        problem["detail"].as_str().unwrap().contains("purge"),
        "{problem}"
    );
    // The token lost its grant to the slug, and only that.
    let (_, tokens) = json_of(server.admin_get("/api/tokens").send().await.unwrap()).await;
    let listed = tokens["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["id"] == scoped["id"])
        .unwrap()
        .clone();
    assert_eq!(listed["apps"], json!(["other"]), "{listed}");
    // The old executions are still readable until the purge.
    let (status, _) = json_of(
        server
            .admin_get(&format!("/api/executions/{}", in_flight[0]))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 200);

    assert_eq!(delete(true).await.unwrap().status(), 204);
    assert_eq!(
        delete(true).await.unwrap().status(),
        404,
        "nothing left to purge"
    );
    let (status, _) = json_of(
        server
            .admin_get(&format!("/api/executions/{}", in_flight[0]))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 404, "purged with the app");

    // A new app of the same slug starts from nothing.
    let response = server.publish(&manifest("new"), guests::MISBEHAVE).await;
    let (status, app) = json_of(response).await;
    assert_eq!((status, &app["version"]), (201, &json!(1)), "{app}");
    let (_, versions) = json_of(
        server
            .admin_get("/api/apps/gone/versions")
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(versions["data"].as_array().unwrap().len(), 1, "{versions}");
    let (status, _) = json_of(
        server
            .post("/api/apps/gone/rollback/2")
            .bearer_auth(TOKEN)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 404);
    let (_, secrets) = json_of(
        server
            .admin_get("/api/apps/gone/secrets")
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(secrets["data"], json!([]), "{secrets}");
    let run = server
        .run_sync(
            "/api/apps/gone/actions/secret/run",
            json!({ "names": ["KEY"] }),
        )
        .await;
    assert_eq!(run["output"], json!({ "KEY": null }), "{run}");
    let (status, _) = json_of(
        server
            .post("/api/apps/gone/actions/secret/run")
            .bearer_auth(&scoped_secret)
            .json(&json!({ "inputs": {} }))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 404, "the old token does not cover the new app");
}
