//! Notifications on a real server, received on 127.0.0.1 by `webhooks/receiver.py`,
//! which verifies every delivery's signature with the Standard Webhooks reference
//! library from PyPI (installed by this test into a venv): signed deliveries, retries
//! after 500s, a 410 that disables, a run's own webhook, a delivery pending across a
//! SIGKILL, and private destinations refused (and never contacted) without
//! `--allow-private-network`.

mod support;

use std::io::{BufRead, BufReader, Write};
use std::net::ToSocketAddrs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use support::{Server, TOKEN, temp_dir};

/// The reference library's release the receiver verifies with.
const STANDARD_WEBHOOKS: &str = "standardwebhooks==1.1.0";

/// A venv with the reference library, made once and kept (cargo's tmp dir for tests),
/// under an exclusive lock, as tests run at the same time.
fn python() -> PathBuf {
    let root = Path::new(env!("CARGO_TARGET_TMPDIR")).join("webhook-receivers");
    std::fs::create_dir_all(&root).unwrap();
    let lock = std::fs::File::create(root.join("standardwebhooks.lock")).unwrap();
    rustix::fs::flock(&lock, rustix::fs::FlockOperation::LockExclusive).unwrap();
    let venv = root.join("standardwebhooks-1.1.0");
    let marker = venv.join(".installed");
    if !marker.exists() {
        let _ = std::fs::remove_dir_all(&venv);
        run(
            Command::new("python3").args(["-m", "venv"]).arg(&venv),
            "python3 -m venv",
        );
        run(
            Command::new(venv.join("bin/pip")).args([
                "install",
                "--quiet",
                "--disable-pip-version-check",
                STANDARD_WEBHOOKS,
            ]),
            "pip install standardwebhooks",
        );
        std::fs::write(&marker, STANDARD_WEBHOOKS).unwrap();
    }
    venv.join("bin/python")
}

fn run(command: &mut Command, what: &str) {
    let output = command.output().unwrap_or_else(|e| panic!("{what}: {e}"));
    assert!(
        output.status.success(),
        "{what} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}

/// A running `receiver.py`: what it saw, one JSON object per request.
struct Receiver {
    child: Child,
    port: u16,
    keys: PathBuf,
    seen: Arc<Mutex<Vec<Value>>>,
}

impl Receiver {
    /// A receiver answering the statuses of `plan` in turn (the last repeats).
    fn start(plan: &str) -> Receiver {
        let dir = temp_dir("receiver");
        let keys = dir.join("keys");
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/webhooks/receiver.py");
        let mut child = Command::new(python())
            .arg(script)
            .arg(&keys)
            .arg(plan)
            .stdout(Stdio::piped())
            .spawn()
            .expect("start the receiver");
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let first = lines.next().expect("the receiver's port").unwrap();
        let port = first
            .strip_prefix("listening ")
            .and_then(|p| p.parse().ok())
            .unwrap_or_else(|| panic!("the receiver said {first:?}"));
        let seen = Arc::new(Mutex::new(Vec::new()));
        let sink = seen.clone();
        std::thread::spawn(move || {
            for line in lines.map_while(Result::ok) {
                let value: Value = serde_json::from_str(&line).unwrap();
                sink.lock().unwrap().push(value);
            }
        });
        Receiver {
            child,
            port,
            keys,
            seen,
        }
    }

    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    /// Lets the receiver verify with `key` too.
    fn trust(&self, key: &str) {
        let mut file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.keys)
            .unwrap();
        writeln!(file, "{key}").unwrap();
    }

    fn seen(&self) -> Vec<Value> {
        self.seen.lock().unwrap().clone()
    }

    /// Waits until `count` requests came in.
    async fn wait_for(&self, count: usize, timeout: Duration) -> Vec<Value> {
        let started = Instant::now();
        loop {
            let seen = self.seen();
            if seen.len() >= count {
                return seen;
            }
            assert!(
                started.elapsed() < timeout,
                "{} of {count} deliveries after {timeout:?}: {seen:?}",
                seen.len()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn subscribe(server: &Server, body: Value) -> reqwest::Response {
    server
        .post("/api/apps/hello/webhooks")
        .bearer_auth(TOKEN)
        .json(&body)
        .send()
        .await
        .unwrap()
}

/// Subscribes, lets `receiver` verify with the new key, returns the subscription.
async fn subscribed(server: &Server, receiver: &Receiver, body: Value) -> Value {
    let response = subscribe(server, body).await;
    assert_eq!(response.status(), 201);
    let subscription: Value = response.json().await.unwrap();
    let key = subscription["secret"].as_str().unwrap();
    assert!(key.starts_with("whsec_"));
    receiver.trust(key);
    subscription
}

async fn deliveries(server: &Server, subscription: &Value) -> Vec<Value> {
    let page: Value = server
        .admin_get(&format!(
            "/api/apps/hello/webhooks/{}/deliveries",
            subscription["id"].as_str().unwrap()
        ))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    page["data"].as_array().unwrap().clone()
}

fn private_network() -> Server {
    Server::start(&["--examples=rust", "--allow-private-network"])
}

#[tokio::test]
async fn deliveries_are_signed_filtered_retried_after_500s_and_listed() {
    let server = private_network();
    let all = Receiver::start("500,200");
    let failures = Receiver::start("200");
    let every_event = subscribed(&server, &all, json!({ "url": all.url("/all") })).await;
    assert_eq!(every_event["events"].as_array().unwrap().len(), 5);
    let only_failed = subscribed(
        &server,
        &failures,
        json!({ "url": failures.url("/failed"), "events": ["execution.failed"] }),
    )
    .await;

    let ok = server
        .run_sync("/api/apps/hello/run", json!({ "name": "Ada" }))
        .await;
    let first = all.wait_for(1, Duration::from_secs(10)).await;
    assert_eq!(first[0]["answered"], 500);
    // Retried after about 5 s, with the same webhook-id.
    let retried = all.wait_for(2, Duration::from_secs(20)).await;
    assert_eq!(retried[1]["answered"], 200);
    assert_eq!(retried[0]["webhook_id"], retried[1]["webhook_id"]);
    assert_ne!(
        retried[0]["webhook_timestamp"],
        retried[1]["webhook_timestamp"]
    );
    let body = &retried[1]["body"];
    assert_eq!(body["type"], "execution.succeeded");
    assert_eq!(body["data"]["execution_id"], ok["execution_id"]);
    assert_eq!(body["data"]["status"], "succeeded");
    assert_eq!(body["data"]["output"], json!({ "greeting": "Hello, Ada!" }));
    assert_eq!(body["data"]["app"], "hello");
    assert!(body["data"].get("view_token").is_none());

    // A failed run reaches both subscriptions; the success reached only one.
    let failed = server
        .run_sync("/api/apps/hello/run", json!({ "name": "" }))
        .await;
    assert_eq!(failed["status"], "failed");
    let both = all.wait_for(3, Duration::from_secs(10)).await;
    let only = failures.wait_for(1, Duration::from_secs(10)).await;
    assert_eq!(both[2]["body"]["type"], "execution.failed");
    assert_eq!(both[2]["body"]["data"]["error"]["code"], "app_error");
    assert_eq!(
        only[0]["body"]["data"]["execution_id"],
        failed["execution_id"]
    );
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(failures.seen().len(), 1);

    // Every delivery verified with the reference library.
    for delivery in all.seen().iter().chain(failures.seen().iter()) {
        assert_eq!(delivery["verified"], true, "{delivery}");
    }

    // Every attempt is listed: time, status, latency.
    let listed = deliveries(&server, &every_event).await;
    assert_eq!(listed.len(), 2);
    let retried = listed
        .iter()
        .find(|d| d["event"] == "execution.succeeded")
        .unwrap();
    assert_eq!(retried["state"], "delivered");
    assert_eq!(retried["id"], all.seen()[0]["webhook_id"]);
    let attempts = retried["attempts"].as_array().unwrap();
    assert_eq!(attempts.len(), 2);
    assert_eq!(attempts[0]["status"], 500);
    assert_eq!(attempts[1]["status"], 200);
    assert!(
        attempts
            .iter()
            .all(|a| a["latency_ms"].is_i64() && a["at"].is_string())
    );
    assert_eq!(deliveries(&server, &only_failed).await.len(), 1);
}

#[tokio::test]
async fn a_410_disables_the_subscription() {
    let server = private_network();
    let receiver = Receiver::start("410");
    let subscription =
        subscribed(&server, &receiver, json!({ "url": receiver.url("/gone") })).await;
    server
        .run_sync("/api/apps/hello/run", json!({ "name": "Once" }))
        .await;
    let seen = receiver.wait_for(1, Duration::from_secs(10)).await;
    assert_eq!(seen[0]["verified"], true);
    let deadline = Instant::now() + Duration::from_secs(5);
    let listed = loop {
        let list: Value = server
            .admin_get("/api/apps/hello/webhooks")
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let listed = list["data"][0].clone();
        if listed["enabled"] == false || Instant::now() > deadline {
            break listed;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(listed["id"], subscription["id"]);
    assert_eq!(listed["enabled"], false);
    assert!(listed["disabled_reason"].as_str().unwrap().contains("410"));
    let delivery = &deliveries(&server, &subscription).await[0];
    assert_eq!(delivery["state"], "cancelled");
    assert_eq!(delivery["attempts"][0]["status"], 410);

    // Disabled: later runs send nothing.
    server
        .run_sync("/api/apps/hello/run", json!({ "name": "Twice" }))
        .await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(receiver.seen().len(), 1);
    assert_eq!(deliveries(&server, &subscription).await.len(), 1);
}

#[tokio::test]
async fn a_run_s_own_webhook_is_signed_with_the_app_s_key() {
    let server = private_network();
    let receiver = Receiver::start("200");
    let key: Value = server
        .admin_get("/api/apps/hello/webhooks/secret")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let key = key["secret"].as_str().unwrap().to_owned();
    assert!(key.starts_with("whsec_"));
    receiver.trust(&key);
    let response = server
        .post("/api/apps/hello/run")
        .json(&json!({ "inputs": { "name": "Own" }, "webhook": receiver.url("/mine") }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 202);
    let started: Value = response.json().await.unwrap();
    let seen = receiver.wait_for(1, Duration::from_secs(10)).await;
    assert_eq!(seen[0]["verified"], true);
    assert_eq!(seen[0]["path"], "/mine");
    assert_eq!(
        seen[0]["body"]["data"]["execution_id"],
        started["execution_id"]
    );
    assert_eq!(seen[0]["body"]["data"]["trigger_source"], "api");
    // The key stays the same: it was made once.
    let again: Value = server
        .admin_get("/api/apps/hello/webhooks/secret")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(again["secret"], key.as_str());
}

#[tokio::test]
async fn a_delivery_pending_across_a_sigkill_is_delivered_after_the_restart() {
    let server = private_network();
    let receiver = Receiver::start("500,200");
    let subscription =
        subscribed(&server, &receiver, json!({ "url": receiver.url("/later") })).await;
    server
        .run_sync("/api/apps/hello/run", json!({ "name": "Durable" }))
        .await;
    receiver.wait_for(1, Duration::from_secs(10)).await;
    // Once the failed attempt is recorded, the delivery waits in the store for its retry.
    let deadline = Instant::now() + Duration::from_secs(5);
    while deliveries(&server, &subscription).await[0]["attempts"]
        .as_array()
        .unwrap()
        .is_empty()
    {
        assert!(Instant::now() < deadline);
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let server = server.kill_and_restart();
    let seen = receiver.wait_for(2, Duration::from_secs(20)).await;
    assert_eq!(seen[1]["answered"], 200);
    assert_eq!(seen[1]["verified"], true);
    assert_eq!(seen[0]["webhook_id"], seen[1]["webhook_id"]);
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let listed = deliveries(&server, &subscription).await;
        if listed[0]["state"] == "delivered" {
            assert_eq!(listed[0]["attempts"].as_array().unwrap().len(), 2);
            break;
        }
        assert!(Instant::now() < deadline, "{listed:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn private_destinations_are_refused_without_the_flag_and_never_contacted() {
    let server = Server::start(&["--examples=rust"]);
    let receiver = Receiver::start("200");
    let port = receiver.port;
    for url in [
        format!("http://127.0.0.1:{port}/x"),
        format!("http://localhost:{port}/x"),
        format!("http://[::1]:{port}/x"),
        format!("http://10.0.0.1:{port}/x"),
        "ftp://example.org/x".to_owned(),
        "/relative".to_owned(),
    ] {
        let response = subscribe(&server, json!({ "url": url })).await;
        assert_eq!(response.status(), 400, "{url}");
        let run = server
            .post("/api/apps/hello/run")
            .json(&json!({ "inputs": {}, "webhook": url }))
            .send()
            .await
            .unwrap();
        assert_eq!(run.status(), 400, "{url}");
    }
    let list: Value = server
        .admin_get("/api/executions?app=hello")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        list["data"],
        json!([]),
        "a refused run request created nothing"
    );

    // A name that resolves to a private address passes the literal check but is refused
    // at delivery, with the error recorded. (This machine's own name resolves to a
    // loopback address on the development and CI machines.)
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default();
    let host = host.trim();
    let loopback = !host.is_empty()
        && (host, port)
            .to_socket_addrs()
            .is_ok_and(|mut addrs| addrs.all(|a| a.ip().is_loopback()));
    if loopback {
        let url = format!("http://{host}:{port}/named");
        let subscription: Value = subscribe(&server, json!({ "url": url }))
            .await
            .json()
            .await
            .unwrap();
        server
            .run_sync("/api/apps/hello/run", json!({ "name": "Nope" }))
            .await;
        let deadline = Instant::now() + Duration::from_secs(10);
        let attempt = loop {
            let listed = deliveries(&server, &subscription).await;
            if let Some(attempt) = listed
                .first()
                .and_then(|d| d["attempts"].as_array())
                .and_then(|a| a.first())
            {
                break attempt.clone();
            }
            assert!(Instant::now() < deadline, "{listed:?}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        };
        assert!(attempt["status"].is_null());
        assert!(
            attempt["error"]
                .as_str()
                .unwrap()
                .contains("resolves to a private address"),
            "{attempt}"
        );
    } else {
        eprintln!("{host:?} does not resolve to loopback here: the name check is skipped");
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        receiver.seen(),
        Vec::<Value>::new(),
        "the receiver was contacted"
    );
}
