//! `floom exec` as a user runs it: the real binary on every example, and its errors.

use std::path::Path;
use std::process::{Command, Output};

use floom_tests::guests;
use serde_json::{Value, json};

fn floom(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_floom"))
        .arg("exec")
        .args(args)
        .env("SIGNING_KEY", "k3y")
        .env(
            "XDG_CACHE_HOME",
            std::env::temp_dir().join("floom-exec-tests"),
        )
        .output()
        .expect("run floom")
}

/// Every stdout line as JSON; the last one is the outcome.
fn lines(output: &Output) -> Vec<Value> {
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("{line:?}: {e}")))
        .collect()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// Runs an example from its app directory, as the README shows.
fn example(manifest: &str, args: &[&str]) -> (Output, Vec<Value>) {
    let dir = Path::new(manifest).parent().unwrap().to_str().unwrap();
    let output = floom(&[&[dir], args].concat());
    let lines = lines(&output);
    (output, lines)
}

#[test]
fn hello() {
    let (output, lines) = example(guests::HELLO_MANIFEST, &["--input", r#"{"name": "Ada"}"#]);
    assert!(output.status.success(), "{}", stderr(&output));
    let outcome = lines.last().unwrap();
    assert_eq!(outcome["status"], "succeeded");
    assert_eq!(outcome["output"], json!({ "greeting": "Hello, Ada!" }));
    assert_eq!(outcome["error"], Value::Null);
}

#[test]
fn meeting_action_items_prints_chunks_before_the_outcome() {
    let transcript =
        r#"{"transcript": "Alice: Let us ship by Friday. Bob: I will write the notes."}"#;
    let (output, lines) = example(
        guests::MEETING_ACTION_ITEMS_MANIFEST,
        &["--input", transcript],
    );
    assert!(output.status.success(), "{}", stderr(&output));
    assert_eq!(
        lines[..2],
        [
            json!({ "type": "chunk", "data": { "owner": "team", "task": "Ship", "due": "Friday" } }),
            json!({ "type": "chunk", "data": { "owner": "Bob", "task": "Write the notes", "due": null } }),
        ]
    );
    assert_eq!(
        lines.last().unwrap()["output"]["items"]
            .as_array()
            .unwrap()
            .len(),
        2
    );
}

#[test]
fn word_count_reads_its_input_from_a_file() {
    let file = std::env::temp_dir().join(format!("floom-exec-input-{}.json", std::process::id()));
    std::fs::write(&file, r#"{"text": "one two two"}"#).unwrap();
    let at_file = format!("@{}", file.display());
    let (output, lines) = example(guests::WORD_COUNT_MANIFEST, &["--input", &at_file]);
    std::fs::remove_file(&file).unwrap();
    assert!(output.status.success(), "{}", stderr(&output));
    assert_eq!(
        lines[0],
        json!({ "type": "chunk", "data": "line 1: 3 words" })
    );
    assert_eq!(lines.last().unwrap()["output"]["words"], 3);
}

#[test]
fn webhook_signer_gets_a_secret_from_the_environment() {
    let (output, lines) = example(
        guests::WEBHOOK_SIGNER_MANIFEST,
        &[
            "--action",
            "sign",
            "--secret",
            "SIGNING_KEY",
            "--input",
            r#"{"body": "{}", "timestamp": 1}"#,
        ],
    );
    assert!(output.status.success(), "{}", stderr(&output));
    let header = lines.last().unwrap()["output"]["header"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(header.starts_with("t=1,v1="), "{header}");

    // Without the secret, the app refuses with its own code, and exec exits 1.
    let (output, lines) = example(
        guests::WEBHOOK_SIGNER_MANIFEST,
        &["--action", "sign", "--input", r#"{"body": "{}"}"#],
    );
    assert_eq!(output.status.code(), Some(1));
    let outcome = lines.last().unwrap();
    assert_eq!(outcome["status"], "failed");
    assert_eq!(outcome["error"]["code"], "app_error");
    assert_eq!(outcome["error"]["app_code"], "missing_secret");
}

#[test]
fn a_bare_component_runs_with_defaults_and_a_failure_exits_1() {
    let output = floom(&[guests::MISBEHAVE_CMD, "--action", "exit"]);
    assert_eq!(output.status.code(), Some(1));
    let lines = lines(&output);
    assert_eq!(
        lines[0],
        json!({ "type": "chunk", "data": "about to fail" })
    );
    assert_eq!(
        lines[1],
        json!({ "type": "log", "stream": "stderr", "line": "something went wrong" })
    );
    assert_eq!(lines[2]["error"]["code"], "exit_code");
}

#[test]
fn a_file_that_is_not_a_component_is_refused() {
    let file = std::env::temp_dir().join(format!("floom-not-wasm-{}.wasm", std::process::id()));
    std::fs::write(&file, "hello").unwrap();
    let output = floom(&[file.to_str().unwrap()]);
    std::fs::remove_file(&file).unwrap();
    assert_eq!(output.status.code(), Some(2));
    assert!(output.stdout.is_empty());
    assert!(
        stderr(&output).contains("not a WebAssembly file"),
        "{}",
        stderr(&output)
    );
}

#[test]
fn a_manifest_with_an_unknown_key_is_refused_with_the_key_named() {
    let file = std::env::temp_dir().join(format!("floom-bad-{}.toml", std::process::id()));
    std::fs::write(&file, "slug = \"hello\"\ncolour = \"red\"\n").unwrap();
    let output = floom(&[guests::HELLO, "--manifest", file.to_str().unwrap()]);
    std::fs::remove_file(&file).unwrap();
    assert_eq!(output.status.code(), Some(2));
    let err = stderr(&output);
    assert!(
        err.contains("unknown field `colour`") && err.contains("line 2"),
        "{err}"
    );
}

#[test]
fn invalid_input_json_is_refused() {
    let (output, _) = example(guests::HELLO_MANIFEST, &["--input", r#"{"name": "#]);
    assert_eq!(output.status.code(), Some(2));
    assert!(
        stderr(&output).contains("invalid --input: not JSON"),
        "{}",
        stderr(&output)
    );
    let (output, _) = example(guests::HELLO_MANIFEST, &["--input", "[1]"]);
    assert_eq!(output.status.code(), Some(2));
    assert!(
        stderr(&output).contains("must be a JSON object"),
        "{}",
        stderr(&output)
    );
}

#[test]
fn an_unknown_action_is_refused() {
    let (output, _) = example(guests::HELLO_MANIFEST, &["--action", "nope"]);
    assert_eq!(output.status.code(), Some(2));
    assert!(
        stderr(&output).contains("no action \"nope\" (it has: run)"),
        "{}",
        stderr(&output)
    );
}

#[test]
fn bench_peers_lists_every_peer_measured_or_skipped_with_why() {
    let output = Command::new(env!("CARGO_BIN_EXE_floom"))
        .args([
            "bench",
            guests::WORD_COUNT,
            "--runs",
            "20",
            "--concurrency",
            "2",
            "--json",
            "--input",
            r#"{"text": "a b"}"#,
            "--peers",
            // A native program reading the inputs on stdin, as the app does.
            "--native",
            "/bin/cat",
            "--wasmtime",
            "/nonexistent/wasmtime",
        ])
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", stderr(&output));
    let report: Value = serde_json::from_slice(&output.stdout).unwrap();
    let peers = report["peers"].as_array().unwrap();
    let row = |prefix: &str| {
        peers
            .iter()
            .find(|p| p["name"].as_str().unwrap().starts_with(prefix))
            .unwrap_or_else(|| panic!("no {prefix} row: {report}"))
    };
    for measured in [
        "floom, warm",
        "floom, cold",
        "bare wasmtime",
        "native process",
    ] {
        let peer = row(measured);
        let (p50, p99) = (
            peer["p50_us"].as_f64().unwrap(),
            peer["p99_us"].as_f64().unwrap(),
        );
        assert!(p50 > 0.0 && p99 >= p50, "{peer}");
        assert!(peer["runs_per_second"].as_f64().unwrap() > 0.0, "{peer}");
    }
    // A cold run loads the compiled artifact first: it costs more than a warm one.
    assert!(row("floom, cold")["p50_us"].as_f64() > row("floom, warm")["p50_us"].as_f64());
    let wasmtime = row("wasmtime run")["skipped"].as_str().unwrap();
    assert!(wasmtime.contains("/nonexistent/wasmtime"), "{wasmtime}");
    assert_eq!(row("python3")["skipped"], "not a Python app");
    let node = row("Node vm");
    if std::path::Path::new("/usr/bin/node").exists() {
        assert!(node["p50_us"].as_f64().unwrap() > 0.0, "{node}");
    } else {
        assert!(node["skipped"].as_str().unwrap().contains("node"), "{node}");
    }
    // An SDK app is not a program `wasmtime run` can run: said, not failed.
    let output = Command::new(env!("CARGO_BIN_EXE_floom"))
        .args(["bench", guests::HELLO, "--runs", "10", "--json", "--peers"])
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", stderr(&output));
    let report: Value = serde_json::from_slice(&output.stdout).unwrap();
    let wasmtime = report["peers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"].as_str().unwrap().starts_with("wasmtime run"))
        .unwrap();
    assert!(
        wasmtime["skipped"]
            .as_str()
            .unwrap()
            .contains("command apps only"),
        "{wasmtime}"
    );
}

#[test]
fn bench_reports_both_sides_for_both_kinds_of_app() {
    for (path, input) in [
        (guests::HELLO, "{}"),
        (guests::WORD_COUNT, r#"{"text": "a b"}"#),
    ] {
        let output = Command::new(env!("CARGO_BIN_EXE_floom"))
            .args([
                "bench",
                path,
                "--runs",
                "20",
                "--concurrency",
                "2",
                "--json",
                "--input",
                input,
            ])
            .output()
            .unwrap();
        assert!(output.status.success(), "{}", stderr(&output));
        let report: Value = serde_json::from_slice(&output.stdout).unwrap();
        for side in ["floom", "bare_wasmtime"] {
            for figure in ["instantiate", "run"] {
                let p50 = report[side][figure]["p50_us"].as_f64().unwrap();
                let p99 = report[side][figure]["p99_us"].as_f64().unwrap();
                assert!(p50 > 0.0 && p99 >= p50, "{side} {figure}: {report}");
            }
            assert!(report[side]["runs_per_second"].as_f64().unwrap() > 0.0);
        }
        assert!(report["ratio"]["run_p50"].as_f64().unwrap() > 0.0);
        assert!(
            report["compile_ms"].as_f64().unwrap() > report["load_from_cache_ms"].as_f64().unwrap()
        );
    }
    // A failing app is not benchmarked.
    let output = Command::new(env!("CARGO_BIN_EXE_floom"))
        .args([
            "bench",
            guests::HELLO,
            "--runs",
            "10",
            "--input",
            r#"{"name": " "}"#,
        ])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    assert!(
        stderr(&output).contains("the run did not succeed"),
        "{}",
        stderr(&output)
    );
}
