//! Files in, artifacts out (SPEC section 10) on a real server with real guests: a file
//! uploaded with a run and its sha256 echoed back; artifacts listed and downloaded with a
//! token, a view token and a signed URL (tampered and expired ones refused), ranges, the
//! zip and the SSE `artifact` event; artifacts kept at every ending; hostile guests
//! writing 10x their budget (through each way a guest can write), creating 100,000
//! files, or linking to host paths, with the run folder's disk use sampled while they
//! run; Python and SDK apps with the same folders, from the API and the CLI; MCP results
//! with links; the upload cap; and retention.

mod support;

use std::io::Read as _;
use std::os::unix::fs::MetadataExt as _;
use std::path::Path;
use std::time::{Duration, Instant};

use floom_tests::guests;
use serde_json::{Value, json};
use sha2::Digest as _;
use support::{Server, TOKEN, parse_sse};

/// The command guest's actions, one with a file property.
const MANIFEST: &str = r#"
public = true
[limits]
timeout_s = 30
[actions.sha]
input_schema = { type = "object", required = ["file"], properties = { file = { type = "string", format = "binary" } } }
[actions.artifacts]
[actions.fill]
[actions.many-files]
[actions.links]
[actions.write-then-fail]
[actions.write-then-spin]
[actions.nothing]
"#;

async fn publish_files(server: &Server, slug: &str, extra: &str) {
    let manifest = format!("slug = \"{slug}\"\n{MANIFEST}{extra}");
    let response = server.publish(&manifest, guests::FILES_CMD).await;
    assert_eq!(response.status(), 201, "{}", response.text().await.unwrap());
}

/// Runs `action` of `slug` with `inputs`, waiting for the end (as the admin).
async fn run(server: &Server, slug: &str, action: &str, inputs: Value) -> Value {
    server
        .run_sync(&format!("/api/apps/{slug}/actions/{action}/run"), inputs)
        .await
}

/// A multipart run of `action` with `inputs` and one file part, waiting for the end.
async fn run_with_file(
    server: &Server,
    slug: &str,
    action: &str,
    property: &str,
    file_name: &str,
    bytes: Vec<u8>,
) -> reqwest::Response {
    let form = reqwest::multipart::Form::new().text("inputs", "{}").part(
        property.to_owned(),
        reqwest::multipart::Part::bytes(bytes)
            .file_name(file_name.to_owned())
            .mime_str("image/jpeg")
            .unwrap(),
    );
    server
        .post(&format!("/api/apps/{slug}/actions/{action}/run?wait=true"))
        .bearer_auth(TOKEN)
        .multipart(form)
        .send()
        .await
        .unwrap()
}

async fn detail(server: &Server, id: &str, query: &str) -> Value {
    server
        .admin_get(&format!("/api/executions/{id}{query}"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

fn names(list: &Value) -> Vec<String> {
    list.as_array()
        .unwrap()
        .iter()
        .map(|a| a["name"].as_str().unwrap().to_owned())
        .collect()
}

fn result(envelope: &Value) -> &Value {
    assert_eq!(
        envelope["status"], "succeeded",
        "{} {}",
        envelope["execution_id"], envelope["error"]
    );
    &envelope["output"]
}

/// Only empty output folders are left under `runs/`.
fn assert_run_folders_empty(server: &Server) {
    for entry in std::fs::read_dir(server.data_dir.join("runs")).unwrap() {
        let entry = entry.unwrap();
        let name = entry.file_name().to_string_lossy().into_owned();
        assert!(name.starts_with("out-"), "{name}");
        assert!(
            std::fs::read_dir(entry.path()).unwrap().next().is_none(),
            "{name} is not empty"
        );
    }
}

/// Bytes a folder takes on disk (allocated blocks, links not followed).
fn disk_use(dir: &Path) -> u64 {
    let Ok(meta) = std::fs::symlink_metadata(dir) else {
        return 0;
    };
    let mut total = meta.blocks() * 512;
    if meta.is_dir()
        && let Ok(entries) = std::fs::read_dir(dir)
    {
        for entry in entries.flatten() {
            total += disk_use(&entry.path());
        }
    }
    total
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_goes_in_and_artifacts_come_out() {
    let server = Server::start(&["--runs-per-minute", "0"]);
    publish_files(&server, "files", "").await;

    // A file in: the app reads it under /in, read-only, and its sha256 comes back.
    let photo: Vec<u8> = (0..300_000u32).map(|i| (i * 7 % 256) as u8).collect();
    let response = run_with_file(&server, "files", "sha", "file", "Me.JPG", photo.clone()).await;
    assert_eq!(response.status(), 200);
    let envelope: Value = response.json().await.unwrap();
    let out = result(&envelope);
    assert_eq!(out["sha256"], hex::encode(sha2::Sha256::digest(&photo)));
    assert_eq!(out["size"], photo.len());
    assert_eq!(out["path"], "/in/file.jpg");
    assert_eq!(out["in"], json!(["file.jpg"]));
    assert!(out["write_in"].is_string(), "/in is read-only: {out}");
    let id = envelope["execution_id"].as_str().unwrap();
    let view_token = envelope["view_token"].as_str().unwrap();
    let exec = detail(&server, id, "").await;
    assert_eq!(exec["inputs"]["file"], "/in/file.jpg");
    let input = &exec["input_files"][0];
    assert_eq!(input["name"], "file.jpg");
    assert_eq!(input["content_type"], "image/jpeg");
    assert_eq!(input["sha256"], out["sha256"]);
    // Served back like an artifact, with the view token.
    let back = server
        .get(&format!(
            "/api/executions/{id}/inputs/file.jpg?view_token={view_token}"
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(back.status(), 200);
    assert_eq!(back.bytes().await.unwrap().to_vec(), photo);

    // A part for a property that is not a file, and a file over the upload cap.
    let response = run_with_file(&server, "files", "artifacts", "file", "x.bin", vec![1]).await;
    assert_eq!(response.status(), 400);
    let problem: Value = response.json().await.unwrap();
    assert_eq!(problem["code"], "invalid_input", "{problem}");

    // Several artifacts, listed with signed URLs.
    let envelope = run(&server, "files", "artifacts", json!({ "big": 100_000 })).await;
    assert_eq!(result(&envelope)["errors"], json!([]));
    let id = envelope["execution_id"].as_str().unwrap().to_owned();
    let view_token = envelope["view_token"].as_str().unwrap().to_owned();
    let exec = detail(&server, &id, "").await;
    assert_eq!(
        names(&exec["artifacts"]),
        ["big.bin", "data.csv", "report.txt", "sub/nested.json"]
    );
    let report = exec["artifacts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["name"] == "report.txt")
        .unwrap()
        .clone();
    assert_eq!(report["size"], 13);
    assert_eq!(report["content_type"], "text/plain; charset=utf-8");
    assert_eq!(
        report["sha256"],
        hex::encode(sha2::Sha256::digest(b"hello report\n"))
    );
    let path = format!("/api/executions/{id}/artifacts/report.txt");

    // With the admin token, the view token, and the signed URL alone.
    let by_token = server.admin_get(&path).send().await.unwrap();
    assert_eq!(by_token.status(), 200);
    let headers = by_token.headers().clone();
    assert_eq!(headers["content-length"], "13");
    assert_eq!(headers["content-type"], "text/plain; charset=utf-8");
    assert_eq!(
        headers["etag"].to_str().unwrap(),
        format!("\"{}\"", report["sha256"].as_str().unwrap())
    );
    assert!(
        headers["content-disposition"]
            .to_str()
            .unwrap()
            .contains("filename=\"report.txt\"")
    );
    assert_eq!(by_token.text().await.unwrap(), "hello report\n");
    let by_view = server
        .get(&format!("{path}?view_token={view_token}"))
        .send()
        .await
        .unwrap();
    assert_eq!(by_view.text().await.unwrap(), "hello report\n");
    let nothing = server.get(&path).send().await.unwrap();
    assert_eq!(nothing.status(), 401);
    let url = report["url"].as_str().unwrap();
    assert!(url.starts_with(&path), "{url}");
    let signed = server.get(url).send().await.unwrap();
    assert_eq!(signed.status(), 200);
    assert_eq!(signed.text().await.unwrap(), "hello report\n");
    // Not modified, by its ETag.
    let cached = server
        .admin_get(&path)
        .header("if-none-match", headers["etag"].clone())
        .send()
        .await
        .unwrap();
    assert_eq!(cached.status(), 304);

    // Tampered: another file, another expiry, another signature.
    let tampered = [
        url.replace("report.txt", "data.csv"),
        url.replace("expires=", "expires=9"),
        // The signature's last digit changed (to 1 when it was 0: "0" again was no
        // tampering, and one run in sixteen passed the original back).
        format!(
            "{}{}",
            &url[..url.len() - 1],
            if url.ends_with('0') { '1' } else { '0' }
        ),
        path.clone() + "?sig=abc",
    ];
    for bad in tampered {
        let response = server.get(&bad).send().await.unwrap();
        assert_eq!(response.status(), 403, "{bad}");
        let problem: Value = response.json().await.unwrap();
        assert_eq!(problem["code"], "forbidden");
    }
    // Expired: a URL asked to live 0 s is refused once its second has passed.
    let short = detail(&server, &id, "?url_ttl_s=0").await;
    let short_url = short["artifacts"][0]["url"].as_str().unwrap().to_owned();
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let expired = server.get(&short_url).send().await.unwrap();
    assert_eq!(expired.status(), 403);
    // A longer life than the server's is cut to the server's (1 h).
    let long = detail(&server, &id, "?url_ttl_s=999999").await;
    let expires: u64 = long["artifacts"][0]["url"]
        .as_str()
        .unwrap()
        .split("expires=")
        .nth(1)
        .unwrap()
        .split('&')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    assert!(expires <= now + 3600, "{expires} vs {now}");

    // Ranges: one range is 206, outside the file 416, several ranges the whole file.
    let big = format!("/api/executions/{id}/artifacts/big.bin");
    let expected: Vec<u8> = (0..100_000u32).map(|i| (i % 251) as u8).collect();
    let part = server
        .admin_get(&big)
        .header("range", "bytes=1000-1009")
        .send()
        .await
        .unwrap();
    assert_eq!(part.status(), 206);
    assert_eq!(part.headers()["content-range"], "bytes 1000-1009/100000");
    assert_eq!(part.bytes().await.unwrap().to_vec(), expected[1000..1010]);
    let tail = server
        .admin_get(&big)
        .header("range", "bytes=-5")
        .send()
        .await
        .unwrap();
    assert_eq!(tail.status(), 206);
    assert_eq!(tail.bytes().await.unwrap().to_vec(), expected[99_995..]);
    let outside = server
        .admin_get(&big)
        .header("range", "bytes=100000-")
        .send()
        .await
        .unwrap();
    assert_eq!(outside.status(), 416);
    assert_eq!(outside.headers()["content-range"], "bytes */100000");
    let whole = server
        .admin_get(&big)
        .header("range", "bytes=0-1,5-6")
        .send()
        .await
        .unwrap();
    assert_eq!(whole.status(), 200);
    assert_eq!(whole.bytes().await.unwrap().to_vec(), expected);
    let nested = server
        .admin_get(&format!("/api/executions/{id}/artifacts/sub/nested.json"))
        .send()
        .await
        .unwrap();
    assert_eq!(nested.text().await.unwrap(), "{\"n\":1}");
    let missing = server
        .admin_get(&format!("/api/executions/{id}/artifacts/nope.txt"))
        .send()
        .await
        .unwrap();
    assert_eq!(missing.status(), 404);

    // The zip holds every artifact under its name.
    let zip = server
        .get(&format!(
            "/api/executions/{id}/artifacts.zip?view_token={view_token}"
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(zip.status(), 200);
    assert_eq!(zip.headers()["content-type"], "application/zip");
    let bytes = zip.bytes().await.unwrap().to_vec();
    let mut archive = zip::ZipArchive::new(std::io::Cursor::new(bytes)).unwrap();
    let mut listed: Vec<String> = archive
        .file_names()
        .map(|n| n.unwrap().into_owned())
        .collect();
    listed.sort();
    assert_eq!(
        listed,
        ["big.bin", "data.csv", "report.txt", "sub/nested.json"]
    );
    let mut content = Vec::new();
    archive
        .by_name("big.bin")
        .unwrap()
        .read_to_end(&mut content)
        .unwrap();
    assert_eq!(content, expected);

    // The event stream says so before its end.
    let body = server
        .admin_get(&format!("/api/executions/{id}/events"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let events = parse_sse(&body);
    let kinds: Vec<&str> = events.iter().map(|(_, kind, _)| kind.as_str()).collect();
    let at = kinds
        .iter()
        .position(|k| *k == "artifact")
        .expect("an artifact event");
    assert_eq!(kinds[at + 1], "end", "{kinds:?}");
    assert_eq!(names(&events[at].2["artifacts"]).len(), 4);

    // A run that writes nothing has no artifacts, and no event for them.
    let envelope = run(&server, "files", "nothing", json!({})).await;
    let exec = detail(&server, envelope["execution_id"].as_str().unwrap(), "").await;
    assert_eq!(exec["artifacts"], json!([]));
    // Nothing is left in the run folders: only empty output folders, for the next runs.
    assert_run_folders_empty(&server);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn artifacts_are_kept_at_every_ending() {
    let server = Server::start(&["--runs-per-minute", "0"]);
    publish_files(&server, "endings", "").await;
    let manifest = format!(
        "slug = \"endings-2s\"\n{}",
        MANIFEST.replace("timeout_s = 30", "timeout_s = 2")
    );
    let response = server.publish(&manifest, guests::FILES_CMD).await;
    assert_eq!(response.status(), 201);

    let failed = run(&server, "endings", "write-then-fail", json!({})).await;
    assert_eq!(failed["status"], "failed");
    assert_eq!(failed["error"]["code"], "exit_code");
    let timed_out = run(&server, "endings-2s", "write-then-spin", json!({})).await;
    assert_eq!(timed_out["status"], "timed_out");
    let started = server
        .start_run("/api/apps/endings/actions/write-then-spin/run", json!({}))
        .await;
    let id = started["execution_id"].as_str().unwrap().to_owned();
    // Cancelled once it runs (it writes first thing, then spins).
    let deadline = Instant::now() + Duration::from_secs(20);
    while detail(&server, &id, "").await["status"] != "running" {
        assert!(Instant::now() < deadline, "never ran");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let cancel = server
        .post(&format!("/api/executions/{id}/cancel"))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap();
    assert!(cancel.status().is_success());
    let cancelled = server.wait_terminal(&id, Duration::from_secs(20)).await;
    assert_eq!(cancelled["status"], "cancelled");

    for envelope in [&failed, &timed_out, &cancelled] {
        let id = envelope["execution_id"].as_str().unwrap();
        let exec = detail(&server, id, "").await;
        assert_eq!(names(&exec["artifacts"]), ["partial.txt"], "{exec}");
        let text = server
            .admin_get(&format!("/api/executions/{id}/artifacts/partial.txt"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        assert!(text.starts_with("written before"), "{text}");
    }
}

/// Runs `action` asynchronously and samples the disk use of its run folder every few
/// milliseconds until it ends; returns the envelope and the largest sample.
async fn run_sampled(server: &Server, slug: &str, action: &str, inputs: Value) -> (Value, u64) {
    let started = server
        .start_run(&format!("/api/apps/{slug}/actions/{action}/run"), inputs)
        .await;
    let id = started["execution_id"].as_str().unwrap().to_owned();
    // One run at a time here: all of `runs/` is this run's.
    let folder = server.data_dir.join("runs");
    let mut peak = 0;
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        peak = peak.max(disk_use(&folder));
        let exec = detail(server, &id, "").await;
        if !matches!(exec["status"].as_str(), Some("queued" | "running")) {
            return (exec, peak);
        }
        assert!(Instant::now() < deadline, "{id} did not end");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_guests_stay_within_their_budget() {
    const BUDGET: u64 = 4 << 20;
    // Some room for the folders themselves (directory blocks).
    const SLACK: u64 = 64 << 10;
    let server = Server::start(&["--runs-per-minute", "0", "--max-artifacts-mb", "4"]);
    publish_files(&server, "hostile", "").await;

    // 10x the budget through each way a guest writes: Rust's std::fs (write-via-stream),
    // appends, positioned writes (descriptor.write), a file per MiB, and one sparse
    // set-size. Paced, so the folder is sampled while it fills.
    for mode in ["stream", "append", "pwrite", "files"] {
        let began = Instant::now();
        let (exec, peak) = run_sampled(
            &server,
            "hostile",
            "fill",
            json!({ "mode": mode, "bytes": 10 * BUDGET, "ms": 5 }),
        )
        .await;
        let out = result(&exec);
        let written = out["written"].as_u64().unwrap();
        assert!(written <= BUDGET, "{mode}: {out}");
        assert!(written >= BUDGET / 2, "{mode}: {out}");
        assert!(out["refused"].as_u64().unwrap() > 0, "{mode}: {out}");
        // A positioned write gets `insufficient-space` itself; a stream write fails with
        // the stream's `last-operation-failed`, which Rust's std reports as EIO.
        let error = out["error"].as_str().unwrap();
        if mode == "pwrite" {
            assert!(error.contains("space"), "{mode}: {error}");
        }
        assert!(
            peak <= BUDGET + SLACK,
            "{mode}: the run folder held {peak} bytes"
        );
        assert!(
            exec["usage"]["artifact_bytes"].as_u64().unwrap() <= BUDGET,
            "{exec}"
        );
        let total: i64 = exec["artifacts"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| a["size"].as_i64().unwrap())
            .sum();
        assert!(total as u64 <= BUDGET, "{mode}: {total}");
        eprintln!(
            "fill {mode}: wrote {written} of {} bytes, peak folder {peak} bytes, in {:?}",
            10 * BUDGET,
            began.elapsed()
        );
        // The app was told, once, in its logs.
        let logs = server
            .admin_get(&format!(
                "/api/executions/{}/logs",
                exec["execution_id"].as_str().unwrap()
            ))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        assert_eq!(
            logs.matches("artifact budget is used up").count(),
            1,
            "{logs}"
        );
    }
    let (exec, peak) = run_sampled(
        &server,
        "hostile",
        "fill",
        json!({ "mode": "set-size", "bytes": 1u64 << 40 }),
    )
    .await;
    assert_eq!(result(&exec)["set_size_ok"], false, "{exec}");
    assert!(peak <= BUDGET + SLACK);

    // 100,000 files: the 1,000th and later are refused (quota); reopening one is fine.
    let began = Instant::now();
    let (exec, peak) = run_sampled(
        &server,
        "hostile",
        "many-files",
        json!({ "count": 100_000 }),
    )
    .await;
    let out = result(&exec);
    assert_eq!(out["made"], 1000, "{out}");
    assert!(out["error"].as_str().unwrap().contains("Quota"), "{out}");
    assert_eq!(out["reopen_error"], Value::Null, "{out}");
    assert!(peak <= BUDGET + SLACK, "{peak}");
    assert_eq!(exec["artifacts"].as_array().unwrap().len(), 1000);
    eprintln!(
        "many-files: {} made, peak folder {peak} bytes, in {:?}",
        out["made"],
        began.elapsed()
    );
    let (exec, _) = run_sampled(
        &server,
        "hostile",
        "many-files",
        json!({ "count": 100_000, "mode": "dirs" }),
    )
    .await;
    assert_eq!(result(&exec)["made"], 1000);

    // Links to host paths, or anywhere: refused; paths out of /out: refused.
    let exec = run(&server, "hostile", "links", json!({})).await;
    let out = result(&exec);
    for key in ["symlink_etc", "symlink_up", "symlink_inside", "hardlink"] {
        assert_ne!(out[key], "made", "{key}: {out}");
    }
    assert!(out["read_up"]["Err"].is_string(), "{out}");
    assert!(out["write_up"]["Err"].is_string(), "{out}");
    assert_eq!(out["out"], json!(["real.txt"]));
    let id = exec["execution_id"].as_str().unwrap();
    assert_eq!(
        names(&detail(&server, id, "").await["artifacts"]),
        ["real.txt"]
    );

    // The server is fine, and the folders are empty again.
    assert_eq!(server.health().await["status"], "ok");
    assert_run_folders_empty(&server);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_apps_get_the_same_folders() {
    let server = Server::start(&["--runs-per-minute", "0", "--max-artifacts-mb", "4"]);
    let manifest = r#"
slug = "py-files"
public = true
[limits]
timeout_s = 60
[actions.files]
input_schema = { type = "object", properties = { file = { type = "string", contentMediaType = "text/csv" }, fill = { type = "integer" } } }
"#;
    let response = server.publish(manifest, guests::PY_MISBEHAVE).await;
    assert_eq!(response.status(), 201, "{}", response.text().await.unwrap());
    let csv = b"name,score\nada,3\ngrace,5\n".to_vec();
    let form = reqwest::multipart::Form::new()
        .text("inputs", "{\"fill\": 40}")
        .part(
            "file",
            reqwest::multipart::Part::bytes(csv.clone()).file_name("scores.csv"),
        );
    let response = server
        .post("/api/apps/py-files/actions/files/run?wait=true")
        .bearer_auth(TOKEN)
        .multipart(form)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let envelope: Value = response.json().await.unwrap();
    let out = result(&envelope);
    assert_eq!(out["sha256"], hex::encode(sha2::Sha256::digest(&csv)));
    // 40 MiB asked, the budget holds: Python sees an OSError (ENOSPC).
    assert!(out["written"].as_u64().unwrap() < 4 << 20, "{out}");
    assert!(
        out["error"].as_str().unwrap().starts_with("OSError"),
        "{out}"
    );
    let id = envelope["execution_id"].as_str().unwrap();
    let exec = detail(&server, id, "").await;
    assert_eq!(
        names(&exec["artifacts"]),
        ["echo.txt", "fill.bin", "py/copy.bin"]
    );
    assert_eq!(
        exec["input_files"][0]["content_type"],
        "text/csv; charset=utf-8"
    );
    let copy = server
        .admin_get(&format!("/api/executions/{id}/artifacts/py/copy.bin"))
        .send()
        .await
        .unwrap();
    assert_eq!(copy.bytes().await.unwrap().to_vec(), csv);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn uploads_are_capped_and_files_expire() {
    let server = Server::start(&[
        "--runs-per-minute",
        "0",
        "--max-upload-mb",
        "1",
        "--artifact-retention-s",
        "1",
    ]);
    publish_files(&server, "expiring", "").await;
    let response = run_with_file(
        &server,
        "expiring",
        "sha",
        "file",
        "big.bin",
        vec![0; 2 << 20],
    )
    .await;
    assert_eq!(response.status(), 413);
    let problem: Value = response.json().await.unwrap();
    assert_eq!(problem["code"], "payload_too_large", "{problem}");

    let response = run_with_file(
        &server,
        "expiring",
        "sha",
        "file",
        "small.bin",
        vec![7; 1000],
    )
    .await;
    assert_eq!(response.status(), 200);
    let envelope = run(&server, "expiring", "artifacts", json!({})).await;
    let id = envelope["execution_id"].as_str().unwrap().to_owned();
    let blobs = server.data_dir.join("blobs");
    let count_blobs = |dir: &Path| {
        std::fs::read_dir(dir)
            .unwrap()
            .flatten()
            .filter(|e| e.file_type().unwrap().is_dir())
            .map(|e| std::fs::read_dir(e.path()).unwrap().count())
            .sum::<usize>()
    };
    assert!(count_blobs(&blobs) >= 5);
    // Past the retention, the sweep (at start, then every ten minutes) deletes rows and
    // blobs.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let server = server.kill_and_restart();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let exec = detail(&server, &id, "").await;
        if exec["artifacts"] == json!([]) && count_blobs(&blobs) == 0 {
            break;
        }
        assert!(Instant::now() < deadline, "not swept: {exec}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let gone = server
        .admin_get(&format!("/api/executions/{id}/artifacts/report.txt"))
        .send()
        .await
        .unwrap();
    assert_eq!(gone.status(), 404);
}

fn floom(server: &Server, args: &[&str]) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_floom"))
        .args(args)
        .env("FLOOM_API_URL", &server.base)
        .env("FLOOM_TOKEN", TOKEN)
        .output()
        .expect("run floom")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_sdk_app_takes_a_file_from_the_cli_and_its_artifacts_are_saved() {
    let server = Server::start(&["--runs-per-minute", "0"]);
    let manifest = std::fs::read_to_string(guests::CSV_REPORT_MANIFEST).unwrap();
    let response = server.publish(&manifest, guests::CSV_REPORT).await;
    assert_eq!(response.status(), 201, "{}", response.text().await.unwrap());
    let dir = support::temp_dir("files-cli");
    let csv = dir.join("scores.csv");
    std::fs::write(&csv, "name,score,age\nada,3,36\ngrace,5,45\nalan,4,41\n").unwrap();
    let out = dir.join("report");

    // `--input csv=@file` uploads the file (the property is a file); `--out` saves.
    let run = floom(
        &server,
        &[
            "run",
            "csv-report",
            "--input",
            &format!("csv=@{}", csv.display()),
            "--input",
            "title=Scores",
            "--out",
            out.to_str().unwrap(),
        ],
    );
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(run.status.success(), "{stderr}");
    let output: Value = serde_json::from_slice(&run.stdout).unwrap();
    assert_eq!(output["rows"], 3);
    assert_eq!(output["columns"][0]["name"], "score");
    assert_eq!(output["columns"][0]["mean"], 4.0);
    let report = std::fs::read_to_string(out.join("report.md")).unwrap();
    assert!(report.starts_with("# Scores\n"), "{report}");
    assert!(report.contains("| age | 3 | 36 | 45 |"), "{report}");
    let chart = std::fs::read_to_string(out.join("chart.svg")).unwrap();
    assert!(
        chart.starts_with("<svg") && chart.contains("Scores"),
        "{chart}"
    );
    assert!(stderr.contains("saved"), "{stderr}");

    // `floom executions artifacts` lists them, and downloads them.
    let list: Value = server
        .admin_get("/api/executions?app=csv-report")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let id = list["data"][0]["execution_id"].as_str().unwrap().to_owned();
    let listed = floom(&server, &["executions", "artifacts", &id]);
    let text = String::from_utf8_lossy(&listed.stdout);
    assert!(
        text.contains("report.md") && text.contains("image/svg+xml"),
        "{text}"
    );
    let again = dir.join("again");
    let download = floom(
        &server,
        &[
            "executions",
            "artifacts",
            &id,
            "--download",
            again.to_str().unwrap(),
        ],
    );
    assert!(download.status.success());
    assert_eq!(
        std::fs::read_to_string(again.join("report.md")).unwrap(),
        report
    );
    // The input came along too, served back as it was sent.
    let exec = detail(&server, &id, "").await;
    assert_eq!(exec["input_files"][0]["name"], "csv.csv");
    assert_eq!(exec["trigger_source"], "cli");
    // An SVG is downloaded, never shown inline on the server's origin.
    let svg = server
        .admin_get(&format!("/api/executions/{id}/artifacts/chart.svg"))
        .send()
        .await
        .unwrap();
    assert!(
        svg.headers()["content-disposition"]
            .to_str()
            .unwrap()
            .starts_with("attachment")
    );
    assert_eq!(svg.headers()["x-content-type-options"], "nosniff");
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mcp_results_link_the_artifacts() {
    let server = Server::start(&["--runs-per-minute", "0"]);
    publish_files(&server, "mcp-files", "").await;
    let response = server
        .post("/mcp")
        .bearer_auth(TOKEN)
        .json(&json!({ "jsonrpc": "2.0", "id": 1, "method": "tools/call",
            "params": { "name": "mcp-files__artifacts", "arguments": { "big": 10 } } }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let answer: Value = response.json().await.unwrap();
    let result = &answer["result"];
    assert_eq!(result["isError"], false, "{answer}");
    let listed = &result["_meta"]["dev.floom/artifacts"];
    assert_eq!(
        names(listed),
        ["big.bin", "data.csv", "report.txt", "sub/nested.json"]
    );
    let text = result["content"][1]["text"].as_str().unwrap();
    assert!(text.contains("report.txt (13 bytes"), "{text}");
    // The link works without a token.
    let url = listed[2]["url"].as_str().unwrap();
    assert!(text.contains(url));
    let report = server.get(url).send().await.unwrap();
    assert_eq!(report.text().await.unwrap(), "hello report\n");
}
