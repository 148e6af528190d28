//! Python apps through a real server: built from `tests/guests/py-misbehave` with
//! componentize-py (by the build script, as `floom build` does), published over the API,
//! run sync, async and streamed; app errors, uncaught exceptions, secrets, the
//! allowlist and the limits. Then `floom new` → `floom build` → `floom publish` →
//! `floom run` end to end, and the refusal of a package with native code.

mod support;

use std::path::Path;
use std::process::{Command, Output};
use std::time::Duration;

use floom_tests::guests;
use serde_json::{Value, json};
use support::{Server, TOKEN, parse_sse};

const ACTIONS: &[&str] = &[
    "run",
    "stream",
    "app-error",
    "raise",
    "secret",
    "not-json",
    "spin",
    "alloc",
    "recurse",
    "fetch",
];

/// Publishes the Python guest as `slug` with every action and `extra` manifest lines.
async fn publish(server: &Server, slug: &str, extra: &str) {
    let mut manifest = format!("slug = \"{slug}\"\npublic = true\n{extra}\n");
    for action in ACTIONS {
        manifest.push_str(&format!("[actions.{action}]\n"));
    }
    let response = server.publish(&manifest, guests::PY_MISBEHAVE).await;
    assert_eq!(response.status(), 201, "{}", response.text().await.unwrap());
}

async fn sync(server: &Server, slug: &str, action: &str, inputs: Value) -> Value {
    server
        .run_sync(&format!("/api/apps/{slug}/actions/{action}/run"), inputs)
        .await
}

fn logs(events: &[(i64, String, Value)]) -> Vec<String> {
    events
        .iter()
        .filter(|(_, kind, _)| kind == "log")
        .map(|(_, _, data)| data["line"].as_str().unwrap_or_default().to_owned())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_python_app_runs_sync_async_and_streamed() {
    let server = Server::start(&["--runs-per-minute", "0"]);
    publish(
        &server,
        "py",
        "secrets = [\"DECLARED\"]\n[limits]\ntimeout_s = 5\nmemory_mb = 128",
    )
    .await;

    // Sync.
    let run = sync(&server, "py", "run", json!({ "text": "to be" })).await;
    assert_eq!(run["status"], "succeeded", "{run}");
    assert_eq!(
        run["output"],
        json!({ "ok": true, "inputs": { "text": "to be" } })
    );

    // Async, then polled.
    let envelope = server
        .start_run("/api/apps/py/actions/stream/run", json!({ "count": 2 }))
        .await;
    let id = envelope["execution_id"].as_str().unwrap();
    let done = server.wait_terminal(id, Duration::from_secs(30)).await;
    assert_eq!(done["output"], json!({ "emitted": 2 }), "{done}");

    // Streamed: the chunks and every log line, in order.
    let body = server
        .post("/api/apps/py/actions/stream/run?stream=true")
        .json(&json!({ "inputs": { "count": 3 } }))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let events = parse_sse(&body);
    let chunks: Vec<&Value> = events
        .iter()
        .filter(|(_, kind, _)| kind == "chunk")
        .map(|(_, _, data)| &data["data"])
        .collect();
    assert_eq!(
        chunks,
        [&json!({ "i": 0 }), &json!({ "i": 1 }), &json!({ "i": 2 })]
    );
    let lines = logs(&events);
    for line in [
        "a debug line",
        "an info line",
        "a warning",
        "an error line",
        "to stdout",
    ] {
        assert!(lines.iter().any(|l| l == line), "{line} in {lines:?}");
    }
    assert_eq!(events.last().unwrap().1, "end");

    // The app's own error, and an exception that escapes.
    let failed = sync(&server, "py", "app-error", json!({})).await;
    assert_eq!(failed["error"]["code"], "app_error", "{failed}");
    assert_eq!(failed["error"]["app_code"], "bad_thing");
    assert_eq!(failed["error"]["message"], "it went wrong on purpose");
    let body = server
        .post("/api/apps/py/actions/raise/run?stream=true")
        .json(&json!({ "inputs": { "key": "nope" } }))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let events = parse_sse(&body);
    let end = &events.last().unwrap().2;
    assert_eq!(end["error"]["code"], "app_error", "{end}");
    assert_eq!(end["error"]["message"], "KeyError: 'nope'", "{end}");
    let traceback = logs(&events).join("\n");
    assert!(
        traceback.contains("Traceback") && traceback.contains("helper_that_fails"),
        "{traceback}"
    );

    // A value JSON cannot hold is a clear app error, not a crash.
    let failed = sync(&server, "py", "not-json", json!({})).await;
    assert_eq!(failed["error"]["code"], "app_error", "{failed}");

    // Secrets: the declared one reaches the app, the undeclared one does not.
    for (name, value) in [("DECLARED", "d-value"), ("UNDECLARED", "u-value")] {
        let response = server
            .http
            .put(server.url(&format!("/api/apps/py/secrets/{name}")))
            .bearer_auth(TOKEN)
            .json(&json!({ "value": value }))
            .send()
            .await
            .unwrap();
        assert!(response.status().is_success());
    }
    let run = sync(
        &server,
        "py",
        "secret",
        json!({ "names": ["DECLARED", "UNDECLARED"] }),
    )
    .await;
    assert_eq!(
        run["output"],
        json!({ "DECLARED": "d-value", "UNDECLARED": null }),
        "{run}"
    );

    // An unknown action is refused before anything runs.
    let response = server
        .post("/api/apps/py/actions/nope/run")
        .json(&json!({ "inputs": {} }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_limits_hold() {
    let server = Server::start(&["--runs-per-minute", "0"]);
    publish(&server, "py", "[limits]\ntimeout_s = 2\nmemory_mb = 64").await;
    // A generous deadline where the limit to hit is another (CI machines are busy).
    publish(
        &server,
        "py-roomy",
        "[limits]\ntimeout_s = 60\nmemory_mb = 64",
    )
    .await;
    let spin = sync(&server, "py", "spin", json!({})).await;
    assert_eq!(
        (&spin["status"], &spin["error"]["code"]),
        (&json!("timed_out"), &json!("timeout")),
        "{spin}"
    );
    let alloc = sync(&server, "py-roomy", "alloc", json!({})).await;
    assert_eq!(alloc["status"], "failed", "{alloc}");
    assert!(
        ["memory_limit", "app_error"].contains(&alloc["error"]["code"].as_str().unwrap()),
        "a MemoryError may be caught by the SDK, or the limit traps: {alloc}"
    );
    let recurse = sync(&server, "py-roomy", "recurse", json!({})).await;
    assert_eq!(recurse["status"], "failed", "{recurse}");
    assert!(
        ["trap", "app_error"].contains(&recurse["error"]["code"].as_str().unwrap()),
        "{recurse}"
    );
    println!(
        "spin: {}, alloc: {} ({}), recurse: {} ({})",
        spin["error"]["code"],
        alloc["error"]["code"],
        alloc["error"]["message"],
        recurse["error"]["code"],
        recurse["error"]["message"]
    );
    // The host is unharmed: the app still runs.
    let run = sync(&server, "py", "run", json!({})).await;
    assert_eq!(run["status"], "succeeded", "{run}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn floom_http_reaches_allowed_hosts_only() {
    let upstream = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = upstream.local_addr().unwrap().port();
    let app = axum::Router::new().route(
        "/hello",
        axum::routing::get(|| async { "hello from upstream" }),
    );
    tokio::spawn(async move { axum::serve(upstream, app).await.unwrap() });
    let server = Server::start(&["--allow-private-network", "--runs-per-minute", "0"]);
    publish(
        &server,
        "py-net",
        "[network]\nallowed_hosts = [\"localhost\"]",
    )
    .await;
    publish(&server, "py-offline", "").await;

    let url = format!("http://localhost:{port}/hello");
    let run = sync(&server, "py-net", "fetch", json!({ "url": url })).await;
    assert_eq!(run["status"], "succeeded", "{run}");
    assert_eq!(
        run["output"],
        json!({ "status": 200, "body": "hello from upstream" })
    );
    let refused = sync(
        &server,
        "py-net",
        "fetch",
        json!({ "url": format!("http://127.0.0.1:{port}/hello") }),
    )
    .await;
    assert_eq!(refused["status"], "failed", "{refused}");
    // Without a grant, wasi:http is not even linked: the call traps, naming the grant.
    let offline = sync(&server, "py-offline", "fetch", json!({ "url": url })).await;
    assert_eq!(offline["error"]["code"], "trap", "{offline}");
    assert!(
        offline["error"]["message"]
            .as_str()
            .unwrap()
            .contains("allowed_hosts"),
        "{offline}"
    );
}

fn floom(server: &Server, args: &[&str], cwd: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_floom"))
        .args(args)
        .current_dir(cwd)
        .env("FLOOM_API_URL", &server.base)
        .env("FLOOM_TOKEN", TOKEN)
        // The build scripts' toolchain: installed once, shared with these builds.
        .env(
            "FLOOM_CACHE_DIR",
            floom_guest_build::target_dir(&workspace()).join("floom-tools"),
        )
        .output()
        .expect("run floom")
}

fn workspace() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_owned()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn new_build_publish_run_end_to_end() {
    let server = Server::start(&[]);
    let dir = support::temp_dir("py-new");
    let made = floom(&server, &["new", "counter"], &dir);
    assert!(made.status.success(), "{}", stderr(&made));
    let app = dir.join("counter");
    for file in ["floom.toml", "app.py", "README.md"] {
        assert!(app.join(file).is_file(), "{file}");
    }
    let built = floom(&server, &["build", "counter"], &dir);
    assert!(built.status.success(), "{}", stderr(&built));
    assert!(
        stderr(&built).contains("componentize-py"),
        "{}",
        stderr(&built)
    );
    let published = floom(&server, &["publish", "counter"], &dir);
    assert!(published.status.success(), "{}", stderr(&published));
    let ran = floom(
        &server,
        &["run", "counter", "--input", "text=to be or not to be"],
        &dir,
    );
    assert!(ran.status.success(), "{}", stderr(&ran));
    let out = String::from_utf8_lossy(&ran.stdout);
    assert!(
        out.contains("\"words\": 6") || out.contains("\"words\":6"),
        "{out}"
    );
    assert!(out.contains("\"word\""), "the chunks stream: {out}");

    // A requirement with native code is refused, naming the package.
    std::fs::write(app.join("requirements.txt"), "msgpack==1.1.0\n").unwrap();
    let manifest = std::fs::read_to_string(app.join("floom.toml")).unwrap();
    std::fs::write(
        app.join("floom.toml"),
        manifest.replace(
            "python = \"app.py\"",
            "python = \"app.py\"\nrequirements = \"requirements.txt\"",
        ),
    )
    .unwrap();
    let refused = floom(&server, &["build", "counter"], &dir);
    assert_eq!(refused.status.code(), Some(2), "{}", stderr(&refused));
    assert!(
        stderr(&refused).contains("msgpack needs native code"),
        "{}",
        stderr(&refused)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_quick_start_server_serves_the_python_examples() {
    // `--examples` (the README's first command) publishes the Python examples once the
    // server answers; the Rust ones are there from the first request.
    let server = Server::start(&["--examples"]);
    let apps = server.get("/api/apps").send().await.unwrap();
    let apps: Value = apps.json().await.unwrap();
    assert!(apps.to_string().contains("\"hello\""), "{apps}");
    let deadline = std::time::Instant::now() + Duration::from_secs(600);
    let slugs = ["py-meeting-action-items", "py-markdown", "py-github-repo"];
    loop {
        let apps: Value = server
            .get("/api/apps")
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        if slugs
            .iter()
            .all(|slug| apps.to_string().contains(&format!("\"{slug}\"")))
        {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "{apps}");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let run = sync(
        &server,
        "py-meeting-action-items",
        "run",
        json!({ "transcript": "Ada: I will send the report by Friday." }),
    )
    .await;
    assert_eq!(run["status"], "succeeded", "{run}");
    assert_eq!(run["output"]["items"][0]["owner"], "Ada", "{run}");
    let run = sync(&server, "py-markdown", "run", json!({ "markdown": "# Hi" })).await;
    assert_eq!(run["status"], "succeeded", "{run}");
}
