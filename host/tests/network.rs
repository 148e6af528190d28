//! Outbound HTTP behind the allowlist, against a local HTTP server started here: allowed
//! hosts work, everything else is refused with the host named, caps hold, and a secret
//! reaches the upstream only as the app sent it.

mod support;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use floom_tests::guests;
use serde_json::{Value, json};
use support::{Server, TOKEN, parse_sse};

/// The upstream: a few routes, and the Authorization headers it saw.
async fn upstream() -> (SocketAddr, Arc<Mutex<Vec<String>>>) {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let record = seen.clone();
    let app = Router::new()
        .route("/hello", get(|| async { "hello from upstream" }))
        .route("/big", get(|| async { vec![b'x'; 2 << 20] }))
        .route(
            "/redirect-out",
            get(|| async {
                (
                    StatusCode::FOUND,
                    [(header::LOCATION, "http://not-listed.test/")],
                )
            }),
        )
        .route(
            "/redirect-in",
            get(|| async { (StatusCode::FOUND, [(header::LOCATION, "/hello")]) }),
        )
        .route(
            "/repos/{owner}/{name}",
            get(move |headers: HeaderMap| {
                let record = record.clone();
                async move {
                    let auth = headers
                        .get(header::AUTHORIZATION)
                        .map(|v| v.to_str().unwrap_or_default().to_owned())
                        .unwrap_or_default();
                    record.lock().unwrap().push(auth);
                    axum::Json(json!({
                        "full_name": "floom/runtime", "description": "fast", "stargazers_count": 42,
                        "forks_count": 7, "open_issues_count": 3, "language": "Rust",
                        "default_branch": "main", "private": false
                    }))
                    .into_response()
                }
            }),
        );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (addr, seen)
}

async fn fetch(server: &Server, slug: &str, input: Value) -> (Value, Vec<(i64, String, Value)>) {
    let response = server
        .post(&format!("/api/apps/{slug}/actions/fetch/run?stream=true"))
        .json(&json!({ "inputs": input }))
        .send()
        .await
        .unwrap();
    let events = parse_sse(&response.text().await.unwrap());
    let last = events.last().unwrap().2.clone();
    (last, events)
}

fn logs(events: &[(i64, String, Value)]) -> Vec<String> {
    events
        .iter()
        .filter(|(_, kind, _)| kind == "log")
        .map(|(_, _, data)| data["line"].as_str().unwrap_or_default().to_owned())
        .collect()
}

async fn with_fetcher(args: &[&str]) -> Server {
    let server = Server::start(args);
    let mut manifest =
        "slug = \"fetcher\"\npublic = true\n[network]\nallowed_hosts = [\"localhost\"]\n"
            .to_owned();
    manifest.push_str("[actions.fetch]\n");
    let response = server.publish(&manifest, guests::MISBEHAVE).await;
    assert_eq!(response.status(), 201, "{}", response.text().await.unwrap());
    server
}

#[tokio::test]
async fn an_allowed_host_is_reached_and_everything_else_is_refused_by_name() {
    let (addr, _) = upstream().await;
    let server = with_fetcher(&["--allow-private-network"]).await;
    let port = addr.port();

    let (end, _) = fetch(
        &server,
        "fetcher",
        json!({ "url": format!("http://localhost:{port}/hello") }),
    )
    .await;
    assert_eq!(end["status"], "succeeded", "{end}");
    assert_eq!(end["output"]["status"], 200);
    assert_eq!(end["output"]["body"], "hello from upstream");

    // A redirect within the allowed host is followed (and checked again).
    let (end, _) = fetch(
        &server,
        "fetcher",
        json!({ "url": format!("http://localhost:{port}/redirect-in") }),
    )
    .await;
    assert_eq!(end["output"]["body"], "hello from upstream", "{end}");

    for (url, host) in [
        (format!("http://127.0.0.1:{port}/hello"), "127.0.0.1"),
        ("http://not-listed.test/".to_owned(), "not-listed.test"),
        (
            format!("http://localhost:{port}/redirect-out"),
            "not-listed.test",
        ),
        ("ftp://localhost/".to_owned(), "localhost"),
    ] {
        let (end, events) = fetch(&server, "fetcher", json!({ "url": url })).await;
        assert_eq!(end["status"], "failed", "{url}: {end}");
        let error = &end["error"];
        if url.starts_with("ftp") {
            assert_eq!(error["app_code"], "invalid_url", "{end}");
            continue;
        }
        assert_eq!(error["app_code"], "request_denied", "{url}: {end}");
        let logs = logs(&events);
        assert!(
            logs.iter()
                .any(|l| l.contains(&format!("outbound request to {host} denied"))),
            "{url}: {logs:?}"
        );
    }
}

#[tokio::test]
async fn a_name_that_resolves_to_a_private_address_is_refused_by_default() {
    let (addr, _) = upstream().await;
    let server = with_fetcher(&[]).await;
    let (end, events) = fetch(
        &server,
        "fetcher",
        json!({ "url": format!("http://localhost:{}/hello", addr.port()) }),
    )
    .await;
    assert_eq!(end["error"]["app_code"], "request_denied", "{end}");
    let logs = logs(&events);
    assert!(
        logs.iter().any(|l| l
            .contains("outbound request to localhost denied: it resolves to a private address")),
        "{logs:?}"
    );
}

#[tokio::test]
async fn the_request_cap_and_the_response_size_cap_hold() {
    let (addr, _) = upstream().await;
    let server = with_fetcher(&[
        "--allow-private-network",
        "--max-outbound-requests",
        "3",
        "--max-outbound-response-mb",
        "1",
    ])
    .await;
    let hello = format!("http://localhost:{}/hello", addr.port());
    let (end, _) = fetch(&server, "fetcher", json!({ "url": hello, "times": 3 })).await;
    assert_eq!(end["status"], "succeeded", "{end}");
    let (end, events) = fetch(&server, "fetcher", json!({ "url": hello, "times": 4 })).await;
    assert_eq!(end["error"]["app_code"], "request_denied", "{end}");
    assert!(
        logs(&events)
            .iter()
            .any(|l| l.contains("cap of 3 requests")),
        "{events:?}"
    );

    let (end, _) = fetch(
        &server,
        "fetcher",
        json!({ "url": format!("http://localhost:{}/big", addr.port()) }),
    )
    .await;
    assert_eq!(end["status"], "failed", "{end}");
    assert_eq!(end["error"]["app_code"], "http_error", "{end}");
    let message = end["error"]["message"].as_str().unwrap();
    assert_eq!(
        message, "reading the body: HTTP response body size exceeds limit",
        "{end}"
    );
}

#[tokio::test]
async fn a_secret_reaches_the_upstream_only_as_the_app_sent_it() {
    let (addr, seen) = upstream().await;
    let server = Server::start(&["--allow-private-network"]);
    let manifest = std::fs::read_to_string(guests::GITHUB_REPO_MANIFEST)
        .unwrap()
        .replace("[\"api.github.com\"]", "[\"localhost\"]");
    assert_eq!(
        server
            .publish(&manifest, guests::GITHUB_REPO)
            .await
            .status(),
        201
    );
    let secret = "ghp_secret_that_must_not_leak";
    let status = server
        .http
        .put(server.url("/api/apps/github-repo/secrets/GITHUB_TOKEN"))
        .bearer_auth(TOKEN)
        .json(&json!({ "value": secret }))
        .send()
        .await
        .unwrap()
        .status();
    assert_eq!(status, 204);
    let response = server
        .post("/api/apps/github-repo/run?stream=true")
        .json(&json!({ "inputs": { "repo": "floom/runtime", "api_base": format!("http://localhost:{}", addr.port()) } }))
        .send()
        .await
        .unwrap();
    let id = response.headers()["x-floom-execution-id"]
        .to_str()
        .unwrap()
        .to_owned();
    let stream = response.text().await.unwrap();
    let events = parse_sse(&stream);
    let end = &events.last().unwrap().2;
    assert_eq!(end["status"], "succeeded", "{stream}");
    assert_eq!(
        end["output"],
        json!({ "full_name": "floom/runtime", "description": "fast", "stars": 42, "forks": 7,
                "open_issues": 3, "language": "Rust", "default_branch": "main" })
    );
    assert_eq!(*seen.lock().unwrap(), [format!("Bearer {secret}")]);
    let mut answers = vec![stream];
    for path in [
        format!("/api/executions/{id}"),
        format!("/api/executions/{id}/logs"),
    ] {
        answers.push(
            server
                .admin_get(&path)
                .send()
                .await
                .unwrap()
                .text()
                .await
                .unwrap(),
        );
    }
    answers.push(std::fs::read_to_string(server.data_dir.join("server.log")).unwrap());
    for answer in answers {
        assert!(!answer.contains(secret), "leaked: {answer}");
    }
}
