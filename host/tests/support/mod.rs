//! A real `floom serve` on `127.0.0.1:0` for integration tests, and small helpers to
//! talk to it.

#![allow(dead_code)] // Each test binary uses a different part.

pub mod postgres;

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

pub const TOKEN: &str = "test-admin-secret";

/// A server process with its own data dir; killed and cleaned up on drop.
pub struct Server {
    pub child: Child,
    pub base: String,
    pub data_dir: PathBuf,
    pub http: reqwest::Client,
    args: Vec<String>,
    keep_data: bool,
}

/// A unique, empty directory under the system temp dir.
pub fn temp_dir(name: &str) -> PathBuf {
    // Unique across the copies of this module one binary may hold (`on_postgres` has
    // one per file, each with its own statics): a counter per copy gave two tests the
    // same folder, so one server's start emptied the other's run folders.
    let unique = uuid::Uuid::now_v7().simple();
    let dir = std::env::temp_dir().join(format!("floom-{name}-{}-{unique}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// `floom serve` on `data_dir` with the test defaults (port 0, the shared compile
/// cache, `FLOOM_SECRET` = [`TOKEN`]), `args`, and `env` applied last; its stderr goes
/// to `server.log` in the data dir (kept when a test fails).
pub fn serve_command(
    data_dir: &std::path::Path,
    args: &[&str],
    env: &[(&str, Option<&str>)],
) -> Command {
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(data_dir.join("server.log"))
        .expect("server log");
    // FLOOM_BIN runs another build (a release one, for the measurements).
    let binary =
        std::env::var_os("FLOOM_BIN").unwrap_or_else(|| env!("CARGO_BIN_EXE_floom").into());
    let mut command = Command::new(binary);
    command
        .arg("serve")
        .args(["--listen", "127.0.0.1:0", "--grace-period-s", "2"])
        .arg("--data-dir")
        .arg(data_dir)
        .arg("--cache-dir")
        .arg(shared_cache());
    if postgres::ON_POSTGRES {
        command
            .arg("--database")
            .arg(postgres::database_of(data_dir));
    }
    command
        .args(args)
        .env("FLOOM_SECRET", TOKEN)
        .env("RUST_LOG", "warn")
        .stderr(log);
    for (key, value) in env {
        match value {
            Some(value) => command.env(key, value),
            None => command.env_remove(key),
        };
    }
    command
}

/// The compile cache shared by every test server, so each component compiles once.
fn shared_cache() -> PathBuf {
    std::env::temp_dir().join("floom-test-compile-cache")
}

impl Server {
    /// Starts `floom serve` with `args` on a fresh data dir.
    pub fn start(args: &[&str]) -> Server {
        Self::start_in(temp_dir("server"), args)
    }

    /// Starts `floom serve` with `args` on `data_dir`.
    pub fn start_in(data_dir: PathBuf, args: &[&str]) -> Server {
        Self::start_with_env(data_dir, args, &[])
    }

    /// Starts `floom serve` with `args` on `data_dir`, with `env` changing its
    /// environment after the defaults (`None` removes a variable, e.g. `FLOOM_SECRET`).
    pub fn start_with_env(
        data_dir: PathBuf,
        args: &[&str],
        env: &[(&str, Option<&str>)],
    ) -> Server {
        let mut child = serve_command(&data_dir, args, env)
            .stdout(Stdio::piped())
            .spawn()
            .expect("start floom serve");
        let args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
        let stdout = child.stdout.take().expect("stdout");
        let mut lines = BufReader::new(stdout).lines();
        let base = loop {
            let Some(line) = lines.next() else {
                let log = std::fs::read_to_string(data_dir.join("server.log")).unwrap_or_default();
                let tail: Vec<&str> = log.lines().rev().take(20).collect();
                let tail: Vec<&str> = tail.into_iter().rev().collect();
                panic!(
                    "floom serve exited before listening; its log ends:\n{}",
                    tail.join("\n")
                );
            };
            let line = line.expect("read stdout");
            if let Some(address) = line.strip_prefix("floom listening on ") {
                break address.to_owned();
            }
        };
        // Keep draining stdout so the server never blocks on a full pipe.
        std::thread::spawn(move || for _ in lines {});
        // reqwest is built without a default TLS crypto provider.
        let _ = rustls::crypto::ring::default_provider().install_default();
        Server {
            child,
            base,
            data_dir,
            http: reqwest::Client::new(),
            args,
            keep_data: false,
        }
    }

    /// Kills the server with SIGKILL (no shutdown at all) and starts it again on the
    /// same data dir.
    pub fn kill_and_restart(mut self) -> Server {
        self.child.kill().expect("kill");
        self.child.wait().expect("wait");
        self.keep_data = true;
        let data_dir = self.data_dir.clone();
        let args: Vec<String> = self.args.clone();
        drop(self);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        Server::start_in(data_dir, &args)
    }

    /// Kills the server with SIGKILL and keeps its data dir, which it returns.
    pub fn kill(mut self) -> PathBuf {
        self.child.kill().expect("kill");
        self.child.wait().expect("wait");
        self.keep_data = true;
        self.data_dir.clone()
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    pub fn get(&self, path: &str) -> reqwest::RequestBuilder {
        self.http.get(self.url(path))
    }

    pub fn post(&self, path: &str) -> reqwest::RequestBuilder {
        self.http.post(self.url(path))
    }

    pub fn admin_get(&self, path: &str) -> reqwest::RequestBuilder {
        self.get(path).bearer_auth(TOKEN)
    }

    /// Publishes `manifest` with the component at `wasm`.
    pub async fn publish(&self, manifest: &str, wasm: &str) -> reqwest::Response {
        self.publish_bytes(manifest, std::fs::read(wasm).unwrap())
            .await
    }

    /// Publishes `manifest` with `component`.
    pub async fn publish_bytes(&self, manifest: &str, component: Vec<u8>) -> reqwest::Response {
        let form = reqwest::multipart::Form::new()
            .text("manifest", manifest.to_owned())
            .part(
                "component",
                reqwest::multipart::Part::bytes(component).file_name("app.wasm"),
            );
        self.post("/api/apps")
            .bearer_auth(TOKEN)
            .multipart(form)
            .send()
            .await
            .unwrap()
    }

    /// Publishes the misbehaving SDK guest as `slug`, with every action and `extra`
    /// manifest lines.
    pub async fn publish_misbehave(&self, slug: &str, extra: &str) {
        let mut manifest = format!("slug = \"{slug}\"\npublic = true\n{extra}\n");
        for action in [
            "ok",
            "spin",
            "sleep",
            "hold",
            "emit",
            "log",
            "panic",
            "app-error",
            "huge-error",
            "chatty",
            "alloc",
            "flood-stdout",
            "secret",
            "tick",
        ] {
            manifest.push_str(&format!("[actions.{action}]\n"));
        }
        let response = self
            .publish(&manifest, floom_tests::guests::MISBEHAVE)
            .await;
        assert!(
            response.status().is_success(),
            "{}",
            response.text().await.unwrap()
        );
    }

    /// Starts a run and returns its envelope (202).
    pub async fn start_run(&self, path: &str, inputs: Value) -> Value {
        let response = self
            .post(path)
            .json(&json!({ "inputs": inputs }))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 202, "{}", response.text().await.unwrap());
        response.json().await.unwrap()
    }

    /// Runs `path` synchronously (`?wait=true` is added) as the admin and returns the
    /// envelope, checking the run ended in time (200).
    pub async fn run_sync(&self, path: &str, inputs: Value) -> Value {
        let response = self
            .post(&format!("{path}?wait=true"))
            .bearer_auth(TOKEN)
            .json(&json!({ "inputs": inputs }))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200, "{}", response.text().await.unwrap());
        response.json().await.unwrap()
    }

    /// `GET /healthz`.
    pub async fn health(&self) -> Value {
        let response = self.get("/healthz").send().await.unwrap();
        assert_eq!(response.status(), 200);
        response.json().await.unwrap()
    }

    /// The server process's resident set, in bytes (Linux).
    pub fn rss_bytes(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))
            .expect("read /proc/PID/status");
        let kib: u64 = status
            .lines()
            .find_map(|line| line.strip_prefix("VmRSS:"))
            .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
            .expect("VmRSS in /proc/PID/status");
        kib << 10
    }

    /// The status of an execution now.
    pub async fn status_of(&self, id: &str) -> String {
        let execution: Value = self
            .admin_get(&format!("/api/executions/{id}"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        execution["status"].as_str().unwrap_or_default().to_owned()
    }

    /// The events of `id` (as the admin), checked: gap-free from 1, one terminal event,
    /// last.
    pub async fn checked_events(&self, id: &str) -> Vec<(i64, String, Value)> {
        let events = parse_sse(
            &self
                .admin_get(&format!("/api/executions/{id}/events"))
                .send()
                .await
                .unwrap()
                .text()
                .await
                .unwrap(),
        );
        let seqs: Vec<i64> = events.iter().map(|(seq, _, _)| *seq).collect();
        assert_eq!(seqs, (1..=seqs.len() as i64).collect::<Vec<_>>(), "{id}");
        let terminal = events
            .iter()
            .filter(|(_, kind, _)| kind == "end" || kind == "error")
            .count();
        assert_eq!(terminal, 1, "{id}: {events:?}");
        assert!(
            events
                .last()
                .is_some_and(|(_, kind, _)| kind == "end" || kind == "error"),
            "{id}: the terminal event is the last"
        );
        events
    }

    /// Polls an execution until it is terminal or awaits approval (or `timeout` passes).
    pub async fn wait_terminal(&self, id: &str, timeout: Duration) -> Value {
        let started = Instant::now();
        loop {
            let execution: Value = self
                .admin_get(&format!("/api/executions/{id}"))
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            let status = execution["status"].as_str().unwrap_or_default();
            if !matches!(status, "queued" | "running" | "awaiting_approval") {
                return execution;
            }
            assert!(
                started.elapsed() < timeout,
                "{id} still {status} after {timeout:?}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if !self.keep_data && !std::thread::panicking() {
            let _ = std::fs::remove_dir_all(&self.data_dir);
        }
    }
}

/// p50 and p99 of `samples` sequential calls of `call`.
pub async fn latencies<F, Fut>(samples: usize, mut call: F) -> (Duration, Duration)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    let mut all = Vec::with_capacity(samples);
    for _ in 0..samples {
        let started = Instant::now();
        call().await;
        all.push(started.elapsed());
    }
    all.sort();
    (all[samples / 2], all[samples * 99 / 100])
}

/// Parses an SSE body into (id, event, data) triples.
pub fn parse_sse(body: &str) -> Vec<(i64, String, Value)> {
    body.split("\n\n")
        .filter_map(|block| {
            let mut id = None;
            let mut event = None;
            let mut data = None;
            for line in block.lines() {
                if let Some(v) = line.strip_prefix("id: ") {
                    id = v.parse().ok();
                } else if let Some(v) = line.strip_prefix("event: ") {
                    event = Some(v.to_owned());
                } else if let Some(v) = line.strip_prefix("data: ") {
                    data = serde_json::from_str(v).ok();
                }
            }
            Some((id?, event?, data?))
        })
        .collect()
}
