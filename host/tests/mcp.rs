//! MCP (SPEC section 7) against a real server: the official Python SDK in both of its
//! modes (`server/discover`, 2026-07-28; and the `initialize` handshake) and the official
//! TypeScript SDK, each installed by this test into a cache folder, drive the scripts in
//! `tests/mcp/`; the stdio bridge is spawned by the SDKs' stdio clients; and the HTTP
//! rules of the transport are checked byte by byte with reqwest.

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use floom_tests::guests;
use serde_json::{Value, json};
use support::{Server, TOKEN};

/// The SDK versions the tests install: the newest releases (mcp 2.3.0 needs Python 3.10+).
const PYTHON_SDK: &str = "mcp==2.3.0";
const TYPESCRIPT_SDK: &str = "@modelcontextprotocol/sdk@1.32.2";

/// Where the SDKs are installed, kept between runs (cargo's tmp dir for tests).
fn cache() -> PathBuf {
    Path::new(env!("CARGO_TARGET_TMPDIR")).join("mcp-clients")
}

fn scripts() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/mcp")
}

/// Runs `install` once for `name` (under an exclusive lock, as tests run at the same
/// time), unless a marker says an earlier run did; returns the install's folder.
fn installed(name: &str, install: impl FnOnce(&Path)) -> PathBuf {
    let root = cache();
    std::fs::create_dir_all(&root).unwrap();
    let lock = std::fs::File::create(root.join(format!("{name}.lock"))).unwrap();
    rustix::fs::flock(&lock, rustix::fs::FlockOperation::LockExclusive).unwrap();
    let dir = root.join(name);
    let marker = dir.join(".installed");
    if !marker.exists() {
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        install(&dir);
        std::fs::write(&marker, name).unwrap();
    }
    dir
}

fn run_checked(command: &mut Command, what: &str) -> String {
    let output = command
        .output()
        .unwrap_or_else(|e| panic!("{what}: cannot start: {e}"));
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.status.success(),
        "{what} failed ({}):\n--- stdout\n{stdout}\n--- stderr\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    stdout
}

/// A venv with the Python SDK.
fn python() -> PathBuf {
    let dir = installed("python-mcp-2.3.0", |dir| {
        run_checked(
            Command::new("python3").args(["-m", "venv"]).arg(dir),
            "python3 -m venv (the MCP tests need Python 3.10 or newer)",
        );
        run_checked(
            Command::new(dir.join("bin/pip")).args([
                "install",
                "--quiet",
                "--disable-pip-version-check",
                PYTHON_SDK,
            ]),
            "pip install mcp",
        );
    });
    dir.join("bin/python")
}

/// A folder with the TypeScript SDK installed, and the script beside it (ES modules
/// resolve packages from their own folder).
fn typescript() -> PathBuf {
    let dir = installed("typescript-sdk-1.32.2", |dir| {
        run_checked(
            Command::new("npm")
                .args(["install", "--silent", "--no-audit", "--no-fund", "--prefix"])
                .arg(dir)
                .arg(TYPESCRIPT_SDK),
            "npm install @modelcontextprotocol/sdk",
        );
    });
    let script = dir.join("ts_client.mjs");
    // Copied each time (it may have changed), through a rename so that concurrent
    // tests never run a half-written file.
    let temp = dir.join(format!("ts_client.{}.tmp", std::process::id()));
    std::fs::copy(scripts().join("ts_client.mjs"), &temp).unwrap();
    std::fs::rename(&temp, &script).unwrap();
    script
}

/// The last line the script printed, as JSON.
fn last_json(stdout: &str) -> Value {
    let line = stdout
        .lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .unwrap_or("null");
    serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON: {line:?}: {e}"))
}

/// Runs a scenario of `py_client.py`.
fn python_scenario(python: &Path, scenario: &str, base: &str, mode: &str, token: &str) -> Value {
    let stdout = run_checked(
        Command::new(python)
            .arg(scripts().join("py_client.py"))
            .args([scenario, base, mode, token, env!("CARGO_BIN_EXE_floom")]),
        &format!("the Python SDK's {scenario} in {mode} mode"),
    );
    last_json(&stdout)
}

/// A server with `hello`, the misbehaving guest as `mb`, and a private app `secret-app`
/// (one action: its tool is `secret-app`); a 3 s sync limit. Returns it and a run-role
/// token that covers `secret-app`.
async fn server_with_apps(extra: &[&str]) -> (Server, String) {
    let mut args = vec![
        "--examples=rust",
        "--max-wait-s",
        "3",
        "--runs-per-minute",
        "0",
    ];
    args.extend_from_slice(extra);
    let server = Server::start(&args);
    server.publish_misbehave("mb", "").await;
    let response = server
        .publish(
            "slug = \"secret-app\"\npublic = false\n[actions.ok]\n",
            guests::MISBEHAVE,
        )
        .await;
    assert_eq!(response.status(), 201, "{}", response.text().await.unwrap());
    let token: Value = server
        .post("/api/tokens")
        .bearer_auth(TOKEN)
        .json(&json!({ "name": "agent", "role": "run", "apps": ["secret-app"] }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let token = token["token"].as_str().expect("a token").to_owned();
    (server, token)
}

async fn execution(server: &Server, id: &str) -> Value {
    server
        .admin_get(&format!("/api/executions/{id}"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

/// Waits until every execution of `app`'s `action` has ended and returns them.
async fn ended_runs(server: &Server, app: &str, action: &str) -> Vec<Value> {
    let started = Instant::now();
    loop {
        let page: Value = server
            .admin_get(&format!("/api/executions?app={app}&limit=200"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let runs: Vec<Value> = page["data"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|r| r["action"] == action)
            .cloned()
            .collect();
        if runs
            .iter()
            .all(|r| !matches!(r["status"].as_str(), Some("queued" | "running")))
        {
            return runs;
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "{app}/{action} runs still going: {runs:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_python_sdk_lists_calls_streams_and_cancels_in_both_modes() {
    let python = python();
    let (server, token) = server_with_apps(&[]).await;
    for mode in ["auto", "legacy"] {
        let seen = python_scenario(&python, "basics", &server.base, mode, &token);
        let hello = execution(&server, seen["hello"].as_str().unwrap()).await;
        assert_eq!(hello["trigger_source"], "mcp", "{hello}");
        assert_eq!(hello["status"], "succeeded");
        assert_eq!(hello["inputs"], json!({ "name": "Ada" }));

        python_scenario(&python, "cancel", &server.base, mode, &token);
        let sleeps: Vec<Value> = ended_runs(&server, "mb", "sleep")
            .await
            .into_iter()
            .filter(|r| r["status"] != "succeeded")
            .collect();
        assert!(!sleeps.is_empty());
        for run in &sleeps {
            assert_eq!(run["status"], "cancelled", "{mode}: {run}");
            assert_eq!(run["error"]["code"], "cancelled", "{run}");
        }

        let seen = python_scenario(&python, "private", &server.base, mode, &token);
        let private = execution(&server, seen["private"].as_str().unwrap()).await;
        assert_eq!(private["app"], "secret-app");

        python_scenario(&python, "one_app", &server.base, mode, &token);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_typescript_sdk_lists_calls_streams_and_cancels() {
    let script = typescript();
    let (server, token) = server_with_apps(&[]).await;
    let stdout = run_checked(
        Command::new("node").arg(&script).args([
            server.base.as_str(),
            token.as_str(),
            env!("CARGO_BIN_EXE_floom"),
        ]),
        "the TypeScript SDK client",
    );
    let seen = last_json(&stdout);
    for key in ["hello", "stdio"] {
        let run = execution(&server, seen[key].as_str().unwrap()).await;
        assert_eq!(run["trigger_source"], "mcp", "{run}");
        assert_eq!(run["status"], "succeeded", "{run}");
    }
    let sleeps = ended_runs(&server, "mb", "sleep").await;
    assert_eq!(sleeps.len(), 1, "{sleeps:?}");
    assert_eq!(sleeps[0]["status"], "cancelled", "{sleeps:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_stdio_bridge_serves_the_python_sdk_in_both_modes() {
    let python = python();
    let (server, token) = server_with_apps(&[]).await;
    for mode in ["auto", "legacy"] {
        let seen = python_scenario(&python, "stdio", &server.base, mode, &token);
        let run = execution(&server, seen["stdio"].as_str().unwrap()).await;
        assert_eq!(run["trigger_source"], "mcp");
        let sleeps = ended_runs(&server, "mb", "sleep").await;
        assert!(
            sleeps.iter().all(|r| r["status"] == "cancelled"),
            "{mode}: {sleeps:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_tools_are_listed_a_page_at_a_time() {
    let python = python();
    let server = Server::start(&[]);
    // 150 actions of one app, and an app whose slug makes names too long to keep.
    let mut manifest = String::from("slug = \"many\"\npublic = true\n");
    for i in 0..150 {
        manifest.push_str(&format!("[actions.a{i:03}]\n"));
    }
    let response = server.publish(&manifest, guests::MISBEHAVE).await;
    assert_eq!(response.status(), 201, "{}", response.text().await.unwrap());
    let long = "l".repeat(60);
    let response = server
        .publish(
            &format!(
                "slug = \"{long}\"\npublic = true\n[actions.ok]\n[actions.emit-everything-twice]\n"
            ),
            guests::MISBEHAVE,
        )
        .await;
    assert_eq!(response.status(), 201, "{}", response.text().await.unwrap());

    let mut names = Vec::new();
    let mut cursor = Value::Null;
    let mut pages = 0;
    loop {
        let page = rpc(&server, "/mcp", "tools/list", json!({ "cursor": cursor })).await;
        pages += 1;
        for tool in page["result"]["tools"].as_array().unwrap() {
            names.push(tool["name"].as_str().unwrap().to_owned());
        }
        cursor = page["result"]["nextCursor"].clone();
        if cursor.is_null() {
            break;
        }
    }
    assert_eq!(pages, 2);
    assert_eq!(names.len(), 150 + 2 + 1, "{names:?}");
    let valid = regex::Regex::new("^[a-zA-Z0-9_-]{1,64}$").unwrap();
    assert!(names.iter().all(|n| valid.is_match(n)), "{names:?}");
    let mut unique = names.clone();
    unique.dedup();
    assert_eq!(unique, names, "sorted, each once");
    // Too long: 55 characters, `_`, 8 hex of the sha256; the same on the per-app URL.
    let cut = names
        .iter()
        .find(|n| n.len() == 64)
        .expect("a cut name")
        .clone();
    assert!(cut.starts_with(&format!("{long}__emit")[..55]));
    let per_app = rpc(
        &server,
        &format!("/mcp/apps/{long}"),
        "tools/list",
        json!({}),
    )
    .await;
    let per_app: Vec<&str> = per_app["result"]["tools"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    assert!(per_app.contains(&cut.as_str()), "{per_app:?}");
    let called = rpc(
        &server,
        "/mcp",
        "tools/call",
        json!({ "name": cut, "arguments": {} }),
    )
    .await;
    assert_eq!(called["result"]["isError"], true, "{called}");
    assert!(
        called["result"]["content"][0]["text"]
            .as_str()
            .unwrap()
            .contains("the app's code unknown_action): emit-everything-twice"),
        "the cut name reached its action: {called}"
    );
    // A bad cursor is invalid params.
    let bad = rpc(&server, "/mcp", "tools/list", json!({ "cursor": "zz" })).await;
    assert_eq!(bad["error"]["code"], -32602);

    python_scenario(&python, "paging", &server.base, "auto", "");
}

/// A handshake-era request (no version header: as older clients send them).
async fn rpc(server: &Server, path: &str, method: &str, params: Value) -> Value {
    let response = server
        .post(path)
        .json(&json!({ "jsonrpc": "2.0", "id": 1, "method": method, "params": params }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    response.json().await.unwrap()
}

/// A 2026-07-28 request with its headers.
fn modern(server: &Server, method: &str, params: Value) -> reqwest::RequestBuilder {
    let mut params = params;
    params["_meta"] = json!({
        "io.modelcontextprotocol/protocolVersion": "2026-07-28",
        "io.modelcontextprotocol/clientCapabilities": {},
    });
    let mut request = server
        .post("/mcp")
        .header("mcp-protocol-version", "2026-07-28")
        .header("mcp-method", method)
        .header("accept", "application/json, text/event-stream");
    if let Some(name) = params["name"].as_str() {
        request = request.header("mcp-name", name);
    }
    request.json(&json!({ "jsonrpc": "2.0", "id": 7, "method": method, "params": params }))
}

async fn error_of(response: reqwest::Response, status: u16, code: i64) -> Value {
    assert_eq!(response.status(), status);
    assert_eq!(response.headers()["content-type"], "application/json");
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"]["code"], code, "{body}");
    body
}

#[tokio::test]
async fn the_transport_is_strict_where_the_protocol_is_and_lenient_where_clients_differ() {
    let server = Server::start(&["--examples=rust", "--runs-per-minute", "0"]);
    server.publish_misbehave("mb", "").await;

    // GET (no session stream to open) and DELETE (no session to end): 405 with Allow.
    for method in [reqwest::Method::GET, reqwest::Method::DELETE] {
        let response = server
            .http
            .request(method, server.url("/mcp"))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 405);
        assert_eq!(response.headers()["allow"], "POST");
    }
    let response = server.get("/mcp/apps/hello").send().await.unwrap();
    assert_eq!(response.status(), 405);

    // A foreign Origin is refused; the server's own is not.
    let list = json!({ "jsonrpc": "2.0", "id": 1, "method": "tools/list" });
    let response = server
        .post("/mcp")
        .header("origin", "http://evil.example")
        .json(&list)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 403);
    let response = server
        .post("/mcp")
        .header("origin", &server.base)
        .json(&list)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);

    // An unsupported MCP-Protocol-Version: 400 naming the versions served.
    let response = server
        .post("/mcp")
        .header("mcp-protocol-version", "1999-01-01")
        .json(&list)
        .send()
        .await
        .unwrap();
    let body = error_of(response, 400, -32022).await;
    assert_eq!(
        body["error"]["data"]["supported"],
        json!(["2026-07-28", "2025-11-25", "2025-06-18"])
    );

    // initialize: the version asked for when served, else the newest handshake one; a
    // session id that only namespaces request ids.
    for (asked, got) in [
        ("2025-06-18", "2025-06-18"),
        ("2025-11-25", "2025-11-25"),
        ("2024-11-05", "2025-11-25"),
    ] {
        let response = server
            .post("/mcp")
            .json(
                &json!({ "jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
                "protocolVersion": asked, "capabilities": {},
                "clientInfo": { "name": "t", "version": "1" } } }),
            )
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        assert_eq!(response.headers()["mcp-session-id"].len(), 32);
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["result"]["protocolVersion"], got);
        assert_eq!(
            body["result"]["capabilities"]["tools"],
            json!({ "listChanged": false })
        );
        assert_eq!(body["result"]["serverInfo"]["name"], "floom");
    }
    // Notifications are accepted with 202 and no body.
    let response = server
        .post("/mcp")
        .header("mcp-protocol-version", "2025-11-25")
        .json(&json!({ "jsonrpc": "2.0", "method": "notifications/initialized" }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 202);
    assert!(response.text().await.unwrap().is_empty());

    // server/discover, and every modern result says its type and who answered.
    let response = modern(&server, "server/discover", json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["result"]["resultType"], "complete");
    assert_eq!(
        body["result"]["supportedVersions"],
        json!(["2026-07-28", "2025-11-25", "2025-06-18"])
    );
    assert_eq!(
        body["result"]["_meta"]["io.modelcontextprotocol/serverInfo"]["name"],
        "floom"
    );

    // Modern requests: headers that disagree with the body, missing _meta, unknown
    // methods.
    let response = modern(&server, "tools/list", json!({}))
        .header("mcp-method", "tools/call")
        .send()
        .await
        .unwrap();
    error_of(response, 400, -32020).await;
    let response = server
        .post("/mcp")
        .header("mcp-protocol-version", "2026-07-28")
        .header("mcp-method", "tools/list")
        .json(&list)
        .send()
        .await
        .unwrap();
    error_of(response, 400, -32602).await;
    let response = modern(&server, "tools/call", json!({ "name": "hello" }))
        .header("mcp-name", "mb__ok")
        .send()
        .await
        .unwrap();
    error_of(response, 400, -32020).await;
    let response = modern(&server, "resources/list", json!({}))
        .send()
        .await
        .unwrap();
    error_of(response, 404, -32601).await;
    let legacy = rpc(&server, "/mcp", "resources/list", json!({})).await;
    assert_eq!(
        legacy["error"]["code"], -32601,
        "the handshake era answers 200"
    );

    // JSON-RPC framing: parse errors, batches, a missing jsonrpc.
    let response = server
        .post("/mcp")
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    error_of(response, 400, -32700).await;
    let response = server
        .post("/mcp")
        .json(&json!([list]))
        .send()
        .await
        .unwrap();
    let body = error_of(response, 400, -32600).await;
    assert!(body["error"]["message"].as_str().unwrap().contains("batch"));
    let response = server
        .post("/mcp")
        .json(&json!({ "id": 1, "method": "tools/list" }))
        .send()
        .await
        .unwrap();
    error_of(response, 400, -32600).await;

    // Unknown tools and malformed calls are invalid params.
    let unknown = rpc(&server, "/mcp", "tools/call", json!({ "name": "nope" })).await;
    assert_eq!(unknown["error"]["code"], -32602);
    let bad = rpc(
        &server,
        "/mcp",
        "tools/call",
        json!({ "name": "hello", "arguments": [1] }),
    )
    .await;
    assert_eq!(bad["error"]["code"], -32602);

    // Accept naming only JSON gets JSON, even for a call that outlasts the SSE switch.
    let response = server
        .post("/mcp")
        .header("accept", "application/json")
        .json(&json!({ "jsonrpc": "2.0", "id": 3, "method": "tools/call",
            "params": { "name": "mb__sleep", "arguments": { "ms": 1500 },
                "_meta": { "progressToken": "p" } } }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.headers()["content-type"], "application/json");
    let body: Value = response.json().await.unwrap();
    assert_eq!(
        body["result"]["structuredContent"],
        json!({ "slept_ms": 1500 })
    );
    // With SSE accepted, the same call streams after a second, then answers.
    let response = server
        .post("/mcp")
        .header("accept", "application/json, text/event-stream")
        .json(&json!({ "jsonrpc": "2.0", "id": 4, "method": "tools/call",
            "params": { "name": "mb__sleep", "arguments": { "ms": 1500 } } }))
        .send()
        .await
        .unwrap();
    assert!(
        response.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/event-stream")
    );
    let text = response.text().await.unwrap();
    let data = text
        .lines()
        .rev()
        .find_map(|l| l.strip_prefix("data: "))
        .unwrap();
    let body: Value = serde_json::from_str(data).unwrap();
    assert_eq!(body["id"], 4);
    assert_eq!(
        body["result"]["structuredContent"],
        json!({ "slept_ms": 1500 })
    );

    // Idempotency: the same key returns the same execution.
    let keyed = |key: &str| {
        server.post("/mcp").bearer_auth(TOKEN).json(&json!({
            "jsonrpc": "2.0", "id": 5, "method": "tools/call",
            "params": { "name": "hello", "arguments": { "name": "Idem" },
                "_meta": { "dev.floom/idempotency_key": key } } }))
    };
    let first: Value = keyed("k-1").send().await.unwrap().json().await.unwrap();
    let again: Value = keyed("k-1").send().await.unwrap().json().await.unwrap();
    let id = &first["result"]["_meta"]["dev.floom/execution_id"];
    assert!(id.is_string(), "{first}");
    assert_eq!(&again["result"]["_meta"]["dev.floom/execution_id"], id);
    assert_eq!(
        again["result"]["_meta"]["dev.floom/view_token"],
        first["result"]["_meta"]["dev.floom/view_token"]
    );
}

#[tokio::test]
async fn tokens_are_checked_like_the_rest_api() {
    let (server, token) = server_with_apps(&[]).await;
    let list = json!({ "jsonrpc": "2.0", "id": 1, "method": "tools/list" });

    // A wrong token: 401 with the Bearer challenge, on either header.
    for (name, value) in [
        ("authorization", "Bearer floom_wrong"),
        ("x-floom-token", "floom_wrong"),
    ] {
        let response = server
            .post("/mcp")
            .header(name, value)
            .json(&list)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 401);
        assert!(
            response.headers()["www-authenticate"]
                .to_str()
                .unwrap()
                .starts_with("Bearer")
        );
    }
    // A private app's URL: 401 without a token, 404 with one that does not cover it.
    let response = server
        .post("/mcp/apps/secret-app")
        .json(&list)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 401);
    assert!(response.headers().contains_key("www-authenticate"));
    let other: Value = server
        .post("/api/tokens")
        .bearer_auth(TOKEN)
        .json(&json!({ "name": "other", "role": "run", "apps": ["hello"] }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let response = server
        .post("/mcp/apps/secret-app")
        .bearer_auth(other["token"].as_str().unwrap())
        .json(&list)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 404);
    // With the token that covers it (as x-floom-token), its tool is there.
    let response = server
        .post("/mcp/apps/secret-app")
        .header("x-floom-token", &token)
        .json(&list)
        .send()
        .await
        .unwrap();
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["result"]["tools"][1]["name"], "secret-app", "{body}");
    let response = server
        .post("/mcp/apps/no-such-app")
        .json(&list)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 404);
}

#[tokio::test]
async fn rate_limits_and_queue_limits_are_tool_errors() {
    let server = Server::start(&["--examples=rust", "--runs-per-minute", "2"]);
    let call = json!({ "jsonrpc": "2.0", "id": 1, "method": "tools/call",
        "params": { "name": "hello", "arguments": {} } });
    let mut last = Value::Null;
    for _ in 0..3 {
        last = server
            .post("/mcp")
            .json(&call)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
    }
    assert_eq!(last["result"]["isError"], true, "{last}");
    assert_eq!(
        last["result"]["structuredContent"]["error"]["code"],
        "quota_exceeded"
    );
    assert!(last["result"]["structuredContent"]["error"]["retry_after_s"].is_u64());
}

#[tokio::test]
async fn a_modern_call_whose_stream_is_closed_is_cancelled() {
    let server = Server::start(&["--runs-per-minute", "0"]);
    server.publish_misbehave("mb", "").await;
    let response = modern(
        &server,
        "tools/call",
        json!({ "name": "mb__sleep", "arguments": { "ms": 60000 },
            "_meta": { "progressToken": 1 } }),
    )
    .send()
    .await
    .unwrap();
    assert!(
        response.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/event-stream")
    );
    tokio::time::sleep(Duration::from_millis(500)).await;
    drop(response);
    let runs = ended_runs(&server, "mb", "sleep").await;
    assert_eq!(runs[0]["status"], "cancelled", "{runs:?}");

    // A handshake-era call is cancelled by notifications/cancelled naming its id, in
    // the client's session.
    let session = "s-1";
    let call = server
        .post("/mcp")
        .header("mcp-protocol-version", "2025-11-25")
        .header("mcp-session-id", session)
        .json(
            &json!({ "jsonrpc": "2.0", "id": "call-9", "method": "tools/call",
            "params": { "name": "mb__sleep", "arguments": { "ms": 60000 } } }),
        )
        .send();
    let cancel = async {
        tokio::time::sleep(Duration::from_millis(800)).await;
        // The same request id in another session cancels nothing.
        for session in ["s-2", session] {
            let response = server
                .post("/mcp")
                .header("mcp-protocol-version", "2025-11-25")
                .header("mcp-session-id", session)
                .json(
                    &json!({ "jsonrpc": "2.0", "method": "notifications/cancelled",
                    "params": { "requestId": "call-9", "reason": "test" } }),
                )
                .send()
                .await
                .unwrap();
            assert_eq!(response.status(), 202);
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
    };
    let (answer, ()) = tokio::join!(call, cancel);
    let text = answer.unwrap().text().await.unwrap();
    assert!(
        text.contains("\"isError\":true") && text.contains("cancelled"),
        "{text}"
    );
    let runs = ended_runs(&server, "mb", "sleep").await;
    assert!(runs.iter().all(|r| r["status"] == "cancelled"), "{runs:?}");
    assert_eq!(runs.len(), 2);
}

#[tokio::test]
async fn a_call_whose_output_awaits_approval_says_so_and_the_outcome_follows() {
    let server = Server::start(&[]);
    let manifest = "slug = \"gated\"\npublic = true\n[actions.ok]\napproval = true\n";
    let response = server.publish(manifest, guests::MISBEHAVE).await;
    assert_eq!(response.status(), 201);
    let answer = rpc(
        &server,
        "/mcp",
        "tools/call",
        json!({ "name": "gated", "arguments": { "n": 1 } }),
    )
    .await;
    let result = &answer["result"];
    let structured = &result["structuredContent"];
    assert_eq!(structured["status"], "awaiting_approval", "{answer}");
    assert_eq!(
        structured["approval"]["proposed_output"],
        json!({ "ok": true, "input": { "n": 1 } })
    );
    // Not the tool's output (that would break its outputSchema), though nothing failed.
    assert_eq!(result["isError"], true);
    let text = result["content"][0]["text"].as_str().unwrap();
    assert!(text.contains("awaits a person's approval"), "{text}");

    let id = structured["execution_id"].as_str().unwrap();
    let view_token = structured["view_token"].as_str().unwrap();
    let approved = server
        .post(&format!("/api/executions/{id}/approve"))
        .bearer_auth(TOKEN)
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(approved.status(), 200);
    let answer = rpc(
        &server,
        "/mcp",
        "tools/call",
        json!({ "name": "floom_execution",
                "arguments": { "execution_id": id, "view_token": view_token } }),
    )
    .await;
    let structured = &answer["result"]["structuredContent"];
    assert_eq!(structured["status"], "succeeded", "{answer}");
    assert_eq!(
        structured["output"],
        json!({ "ok": true, "input": { "n": 1 } })
    );
    assert_eq!(structured["approval"]["decision"], "approved");
}
