//! Every example and every misbehaving guest, run through the runtime: status, error
//! code, output and events.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use floom_runtime::{
    AppKind, Caps, ComponentError, Engine, EngineConfig, ErrorCode, Event, LogStream, Manifest,
    RunRequest, Status,
};
use floom_tests::{compile, engine, guests, manifest, run};
use serde_json::json;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

const SDK_ACTIONS: &[&str] = &[
    "ok",
    "spin",
    "alloc",
    "recurse",
    "recurse-big",
    "panic",
    "app-error",
    "huge-error",
    "huge-output",
    "emit",
    "big-chunk",
    "log",
    "sleep",
    "files",
    "env",
    "network",
    "secret",
];
const CMD_ACTIONS: &[&str] = &[
    "echo",
    "plain",
    "json",
    "exit",
    "lines",
    "huge-output",
    "flood-no-marker",
    "env",
    "spin",
    "write-unchecked",
];

fn misbehave(engine: &Engine, extra: &str) -> floom_runtime::CompiledApp {
    compile(
        engine,
        manifest("misbehave", SDK_ACTIONS, extra),
        guests::MISBEHAVE,
    )
}

fn misbehave_cmd(engine: &Engine, extra: &str) -> floom_runtime::CompiledApp {
    compile(
        engine,
        manifest("misbehave-cmd", CMD_ACTIONS, extra),
        guests::MISBEHAVE_CMD,
    )
}

fn example(engine: &Engine, manifest_path: &str, component: &str) -> floom_runtime::CompiledApp {
    let manifest = Manifest::from_file(manifest_path.as_ref()).expect("example manifest");
    compile(engine, manifest, component)
}

// ---------------------------------------------------------------------------------------
// Examples

#[tokio::test]
async fn hello_greets_and_refuses_a_blank_name() {
    let engine = engine();
    let app = example(&engine, guests::HELLO_MANIFEST, guests::HELLO);
    assert_eq!(app.kind(), AppKind::Sdk);

    let ran = run(&app, "run", json!({ "name": "Ada" }), None).await;
    assert_eq!(ran.outcome.status, Status::Succeeded);
    assert_eq!(ran.output(), json!({ "greeting": "Hello, Ada!" }));
    let ran = run(&app, "run", json!({}), None).await;
    assert_eq!(ran.output(), json!({ "greeting": "Hello, world!" }));

    let ran = run(&app, "run", json!({ "name": "  " }), None).await;
    assert_eq!(ran.outcome.status, Status::Failed);
    let error = ran.outcome.error.unwrap();
    assert_eq!(error.code, ErrorCode::AppError);
    assert_eq!(error.app_code.as_deref(), Some("invalid_input"));
    assert_eq!(error.message, "name must not be blank");

    // A mistyped input is refused by the SDK before the app runs.
    let ran = run(&app, "run", json!({ "name": 7 }), None).await;
    let error = ran.outcome.error.unwrap();
    assert_eq!(error.app_code.as_deref(), Some("invalid_input"));
    assert!(error.message.contains("invalid type"), "{}", error.message);
}

#[tokio::test]
async fn meeting_action_items_streams_each_item_and_returns_them_all() {
    let engine = engine();
    let app = example(
        &engine,
        guests::MEETING_ACTION_ITEMS_MANIFEST,
        guests::MEETING_ACTION_ITEMS,
    );
    let transcript = "Alice: Let us ship by Friday. Bob: I will write the release notes by Thursday.\n\
                      Alice: Carol, can you review the API docs before Wednesday?\n\
                      Carol: Sure. Dave needs to update the changelog tomorrow.";
    let ran = run(&app, "run", json!({ "transcript": transcript }), None).await;
    assert_eq!(
        ran.outcome.status,
        Status::Succeeded,
        "{:?}",
        ran.outcome.error
    );
    let items = json!([
        { "owner": "team", "task": "Ship", "due": "Friday" },
        { "owner": "Bob", "task": "Write the release notes", "due": "Thursday" },
        { "owner": "Carol", "task": "Review the API docs", "due": "Wednesday" },
        { "owner": "Dave", "task": "Update the changelog", "due": "tomorrow" },
    ]);
    assert_eq!(ran.output(), json!({ "items": items }));
    let chunks: Vec<serde_json::Value> = ran
        .chunks()
        .iter()
        .map(|c| serde_json::from_str(c).unwrap())
        .collect();
    assert_eq!(serde_json::Value::Array(chunks), items);
    assert!(
        ran.logs()
            .iter()
            .any(|l| l == "found 4 action items in 4 turns"),
        "{:?}",
        ran.logs()
    );

    let ran = run(&app, "run", json!({ "transcript": " " }), None).await;
    assert_eq!(ran.code(), "app_error");
}

#[tokio::test]
async fn word_count_is_a_command_app_with_streamed_lines() {
    let engine = engine();
    let app = example(&engine, guests::WORD_COUNT_MANIFEST, guests::WORD_COUNT);
    assert_eq!(app.kind(), AppKind::Command);
    let ran = run(
        &app,
        "run",
        json!({ "text": "the cat\nthe dog and the bird", "top": 2 }),
        None,
    )
    .await;
    assert_eq!(
        ran.outcome.status,
        Status::Succeeded,
        "{:?}",
        ran.outcome.error
    );
    assert_eq!(
        ran.output(),
        json!({
            "lines": 2, "words": 7, "characters": 28,
            "top_words": [{ "word": "the", "count": 3 }, { "word": "and", "count": 1 }],
        })
    );
    assert_eq!(
        ran.chunks(),
        [r#""line 1: 2 words""#, r#""line 2: 5 words""#]
    );

    // Bad input: the program exits non-zero and says why on stderr.
    let ran = run(&app, "run", json!({ "txt": "x" }), None).await;
    assert_eq!(ran.code(), "exit_code");
    assert!(
        ran.logs()
            .iter()
            .any(|l| l.contains("missing field `text`")),
        "{:?}",
        ran.logs()
    );
}

#[tokio::test]
async fn webhook_signer_signs_with_its_secret_and_verifies() {
    let engine = engine();
    let app = example(
        &engine,
        guests::WEBHOOK_SIGNER_MANIFEST,
        guests::WEBHOOK_SIGNER,
    );
    let secrets = HashMap::from([("SIGNING_KEY".to_owned(), "k3y".to_owned())]);
    let go = |action: &'static str, input: serde_json::Value, secrets: HashMap<String, String>| {
        let app = app.clone();
        async move {
            let input = serde_json::value::to_raw_value(&input).unwrap();
            let request = RunRequest::new(&app, action, input)
                .unwrap()
                .secrets(secrets);
            app.run(request).await
        }
    };
    let body = r#"{"event":"paid"}"#;
    let signed = go("sign", json!({ "body": body }), secrets.clone()).await;
    assert_eq!(signed.status, Status::Succeeded, "{:?}", signed.error);
    let signed: serde_json::Value = serde_json::from_str(signed.output.unwrap().get()).unwrap();
    let header = signed["header"].as_str().unwrap().to_owned();
    assert!(
        header.starts_with("t=") && header.contains(",v1="),
        "{header}"
    );
    assert!(!header.contains("k3y"));

    let verified = go(
        "verify",
        json!({ "body": body, "signature": header }),
        secrets.clone(),
    )
    .await;
    let verified: serde_json::Value = serde_json::from_str(verified.output.unwrap().get()).unwrap();
    assert_eq!(verified["valid"], true);
    let tampered = go(
        "verify",
        json!({ "body": "{}", "signature": header }),
        secrets,
    )
    .await;
    let tampered: serde_json::Value = serde_json::from_str(tampered.output.unwrap().get()).unwrap();
    assert_eq!(tampered["valid"], false);

    let missing = go("sign", json!({ "body": body }), HashMap::new()).await;
    let error = missing.error.unwrap();
    assert_eq!(error.app_code.as_deref(), Some("missing_secret"));
}

// ---------------------------------------------------------------------------------------
// Limits

#[tokio::test]
async fn the_deadline_stops_a_spin_loop() {
    let engine = engine();
    for app in [misbehave(&engine, ""), misbehave_cmd(&engine, "")] {
        let deadline = Duration::from_millis(500);
        let started = Instant::now();
        let ran = run(&app, "spin", json!({}), Some(deadline)).await;
        let elapsed = started.elapsed();
        assert_eq!(ran.outcome.status, Status::TimedOut);
        assert_eq!(ran.code(), "timeout");
        assert!(elapsed >= deadline, "{elapsed:?}");
        assert!(elapsed < deadline + Duration::from_secs(1), "{elapsed:?}");
    }
}

#[tokio::test]
async fn the_manifest_timeout_applies() {
    let engine = engine();
    let app = misbehave(&engine, "[limits]\ntimeout_s = 1");
    assert_eq!(app.limits().timeout, Duration::from_secs(1));
    let started = Instant::now();
    let ran = run(&app, "spin", json!({}), None).await;
    assert_eq!(ran.code(), "timeout");
    assert!(started.elapsed() < Duration::from_secs(2));
}

#[tokio::test]
async fn the_deadline_also_stops_a_guest_blocked_in_the_host() {
    let engine = engine();
    let app = misbehave(&engine, "");
    let started = Instant::now();
    let ran = run(
        &app,
        "sleep",
        json!({ "ms": 60_000 }),
        Some(Duration::from_millis(300)),
    )
    .await;
    assert_eq!(ran.outcome.status, Status::TimedOut);
    assert!(started.elapsed() < Duration::from_secs(2));
}

#[tokio::test]
async fn cancellation_stops_a_spinning_guest_within_tens_of_milliseconds() {
    let engine = engine();
    for app in [misbehave(&engine, ""), misbehave_cmd(&engine, "")] {
        let cancel = CancellationToken::new();
        let input = serde_json::value::to_raw_value(&json!({})).unwrap();
        let request = RunRequest::new(&app, "spin", input)
            .unwrap()
            .cancel(cancel.clone());
        let run = tokio::spawn({
            let app = app.clone();
            async move { app.run(request).await }
        });
        tokio::time::sleep(Duration::from_millis(200)).await;
        let cancelled_at = Instant::now();
        cancel.cancel();
        let outcome = run.await.unwrap();
        let stopped_in = cancelled_at.elapsed();
        assert_eq!(outcome.status, Status::Cancelled);
        assert_eq!(outcome.error.unwrap().code, ErrorCode::Cancelled);
        // Tens of milliseconds; generous for a loaded CI machine.
        assert!(stopped_in < Duration::from_millis(250), "{stopped_in:?}");
    }
}

#[tokio::test]
async fn a_memory_bomb_ends_in_memory_limit() {
    let engine = engine();
    let app = misbehave(&engine, "[limits]\nmemory_mb = 16");
    let ran = run(&app, "alloc", json!({}), None).await;
    assert_eq!(ran.outcome.status, Status::Failed);
    assert_eq!(ran.code(), "memory_limit", "{:?}", ran.outcome.error);
    assert!(ran.outcome.usage.memory_peak_bytes <= 16 << 20);
    assert!(ran.outcome.usage.memory_peak_bytes > 8 << 20);
}

#[tokio::test]
async fn fuel_runs_out() {
    let engine = engine();
    let app = misbehave(&engine, "[limits]\nfuel = 5_000_000");
    let ran = run(&app, "spin", json!({}), None).await;
    assert_eq!(ran.code(), "fuel_exhausted");
    assert_eq!(ran.outcome.usage.fuel_consumed, Some(5_000_000));
    // The same app has plenty of fuel for a normal run.
    let ran = run(&app, "ok", json!({}), None).await;
    assert_eq!(ran.outcome.status, Status::Succeeded);
    assert!(ran.outcome.usage.fuel_consumed.unwrap() < 5_000_000);
}

#[tokio::test]
async fn traps_are_failures_with_a_clear_message() {
    let engine = engine();
    let app = misbehave(&engine, "");
    let ran = run(&app, "recurse", json!({}), None).await;
    assert_eq!(ran.code(), "trap");
    assert_eq!(ran.outcome.error.unwrap().message, "stack overflow");
    // Big frames live on the guest's shadow stack in linear memory, which runs out first.
    let ran = run(&app, "recurse-big", json!({}), None).await;
    assert_eq!(ran.code(), "trap");
    let message = ran.outcome.error.unwrap().message;
    assert_eq!(message, "wasm trap: out of bounds memory access");

    let ran = run(&app, "panic", json!({}), None).await;
    assert_eq!(ran.code(), "trap");
    let message = ran.outcome.error.unwrap().message;
    assert!(
        message.contains("boom: the guest panicked on purpose") && message.contains("src/lib.rs"),
        "{message}"
    );

    // An error's code and message are capped where they enter the host, like output.
    let ran = run(&app, "huge-error", json!({ "bytes": 20 << 20 }), None).await;
    let error = ran.outcome.error.unwrap();
    assert_eq!(error.code, ErrorCode::AppError);
    let app_code = error.app_code.unwrap();
    assert!(app_code.len() <= 128, "{}", app_code.len());
    assert!(app_code.starts_with("ccc"), "{app_code}");
    assert!(error.message.len() <= 16 << 10, "{}", error.message.len());
    assert!(error.message.ends_with(floom_runtime::text::CUT_MARK));

    let ran = run(&app, "app-error", json!({}), None).await;
    let error = ran.outcome.error.unwrap();
    assert_eq!(
        (
            error.code,
            error.app_code.as_deref(),
            error.message.as_str()
        ),
        (
            ErrorCode::AppError,
            Some("bad_thing"),
            "it went wrong on purpose"
        )
    );
}

#[tokio::test]
async fn outputs_over_the_cap_fail_the_run() {
    let engine = engine();
    let ran = run(&misbehave(&engine, ""), "huge-output", json!({}), None).await;
    assert_eq!(ran.code(), "output_too_large");
    let ran = run(
        &misbehave(&engine, ""),
        "huge-output",
        json!({ "bytes": 1000 }),
        None,
    )
    .await;
    assert_eq!(ran.outcome.status, Status::Succeeded);

    let cmd = misbehave_cmd(&engine, "");
    let ran = run(&cmd, "huge-output", json!({}), None).await;
    assert_eq!(ran.code(), "output_too_large");
    // Without a marker, all of stdout is the output: 2 MiB is too much, and the lines
    // still streamed.
    let ran = run(&cmd, "flood-no-marker", json!({ "count": 2048 }), None).await;
    assert_eq!(ran.code(), "output_too_large");
}

#[tokio::test]
async fn the_event_cap_and_the_host_call_budget_hold() {
    let engine = Engine::new(EngineConfig {
        max_instances: 8,
        caps: Caps {
            events: 5,
            ..Caps::default()
        },
        ..EngineConfig::default()
    })
    .unwrap();
    let app = misbehave(&engine, "");
    let ran = run(&app, "emit", json!({ "count": 20 }), None).await;
    assert_eq!(ran.outcome.status, Status::Failed);
    // The SDK's `emit` returns the refusal as an error; the app passes it on with `?`.
    assert_eq!(ran.chunks().len(), 5);
    assert!(ran.logs().iter().any(|l| l.contains("event cap of 5")));
    assert_eq!(
        ran.outcome.error.unwrap().app_code.as_deref(),
        Some("chunk_refused")
    );

    let engine = Engine::new(EngineConfig {
        max_instances: 8,
        caps: Caps {
            host_calls: 40,
            ..Caps::default()
        },
        ..EngineConfig::default()
    })
    .unwrap();
    let app = misbehave(&engine, "");
    let ran = run(&app, "emit", json!({ "count": 40 }), None).await;
    assert_eq!(ran.outcome.status, Status::Succeeded);
    let ran = run(&app, "emit", json!({ "count": 41 }), None).await;
    assert_eq!(ran.code(), "trap");
    assert!(
        ran.outcome
            .error
            .unwrap()
            .message
            .contains("host-call budget of 40")
    );
}

#[tokio::test]
async fn a_chunk_over_the_cap_is_refused_and_the_run_goes_on() {
    let engine = engine();
    let ran = run(&misbehave(&engine, ""), "big-chunk", json!({}), None).await;
    assert_eq!(ran.outcome.status, Status::Succeeded);
    let refused = ran.output()["refused"].as_str().unwrap().to_owned();
    assert!(refused.contains("65536 byte chunk cap"), "{refused}");
    assert!(ran.chunks().is_empty());
}

// ---------------------------------------------------------------------------------------
// Streaming

#[tokio::test]
async fn chunks_reach_the_caller_while_the_guest_runs() {
    let engine = engine();
    for (app, action) in [
        (misbehave(&engine, ""), "emit"),
        (misbehave_cmd(&engine, ""), "lines"),
    ] {
        let input = serde_json::value::to_raw_value(&json!({ "count": 3, "ms": 400 })).unwrap();
        let (tx, mut rx) = mpsc::channel(16);
        let request = RunRequest::new(&app, action, input).unwrap().events(tx);
        let run = tokio::spawn({
            let app = app.clone();
            async move { app.run(request).await }
        });
        let first = rx.recv().await.expect("a first event");
        assert!(matches!(first, Event::Chunk { .. }), "{first:?}");
        // The guest still has two 400 ms sleeps to go when the first chunk arrives.
        assert!(
            !run.is_finished(),
            "{action}: the run ended before the first chunk"
        );
        let outcome = run.await.unwrap();
        assert_eq!(outcome.status, Status::Succeeded, "{:?}", outcome.error);
    }
}

#[tokio::test]
async fn logs_carry_their_stream_and_level() {
    let engine = engine();
    let ran = run(&misbehave(&engine, ""), "log", json!({}), None).await;
    assert_eq!(ran.outcome.status, Status::Succeeded);
    let logs: Vec<(LogStream, Option<floom_runtime::Level>, String)> = ran
        .events
        .into_iter()
        .filter_map(|e| match e {
            Event::Log {
                stream,
                level,
                line,
            } => Some((stream, level, line)),
            Event::Chunk { .. } => None,
        })
        .collect();
    use floom_runtime::Level::{Info, Warn};
    assert_eq!(
        logs,
        [
            (LogStream::App, Some(Info), "an info line".to_owned()),
            (LogStream::App, Some(Warn), "a warning".to_owned()),
            (LogStream::Stdout, None, "to stdout".to_owned()),
            (LogStream::Stderr, None, "to stderr".to_owned()),
        ]
    );
}

// ---------------------------------------------------------------------------------------
// Command apps

#[tokio::test]
async fn command_apps_read_stdin_and_report_through_stdout_and_exit_codes() {
    let engine = engine();
    let app = misbehave_cmd(&engine, "");
    let ran = run(&app, "echo", json!({ "a": [1, 2] }), None).await;
    assert_eq!(ran.output(), json!({ "a": [1, 2] }));
    assert_eq!(ran.chunks(), [r#""got 11 bytes""#]);

    let ran = run(&app, "plain", json!({}), None).await;
    assert_eq!(ran.output(), json!("hello\nworld"));
    assert_eq!(ran.chunks(), [r#""hello""#, r#""world""#]);

    let ran = run(&app, "json", json!({}), None).await;
    assert_eq!(ran.output(), json!({ "multi": [1, 2, 3] }));

    let ran = run(&app, "exit", json!({}), None).await;
    assert_eq!(ran.outcome.status, Status::Failed);
    assert_eq!(ran.code(), "exit_code");
    assert_eq!(ran.chunks(), [r#""about to fail""#]);
    assert_eq!(ran.logs(), ["something went wrong"]);
}

// ---------------------------------------------------------------------------------------
// No ambient authority

#[tokio::test]
async fn a_guest_sees_no_host_file() {
    let engine = engine();
    let ran = run(&misbehave(&engine, ""), "files", json!({}), None).await;
    let output = ran.output();
    for attempt in ["read_passwd", "list_root", "list_cwd", "create"] {
        assert!(
            output[attempt].get("err").is_some(),
            "{attempt} should fail: {output}"
        );
    }
    assert!(!std::path::Path::new("floom-escape.txt").exists());
}

#[tokio::test]
async fn a_guest_sees_only_its_own_environment() {
    let engine = engine();
    // SAFETY-free check: the test process has a PATH the guest must not see.
    assert!(std::env::var_os("PATH").is_some());
    let ran = run(&misbehave(&engine, ""), "env", json!({}), None).await;
    assert_eq!(
        ran.output(),
        json!({ "vars": [["FLOOM_ACTION", "env"]], "args": ["misbehave"] })
    );

    // A command app gets its declared secrets as variables; undeclared ones never arrive.
    let app = misbehave_cmd(&engine, "secrets = [\"API_KEY\"]");
    let input = serde_json::value::to_raw_value(&json!({})).unwrap();
    let secrets = HashMap::from([
        ("API_KEY".to_owned(), "s1".to_owned()),
        ("OTHER".to_owned(), "s2".to_owned()),
    ]);
    let request = RunRequest::new(&app, "env", input)
        .unwrap()
        .secrets(secrets);
    let outcome = app.run(request).await;
    let output: serde_json::Value = serde_json::from_str(outcome.output.unwrap().get()).unwrap();
    assert_eq!(output, json!({ "FLOOM_ACTION": "env", "API_KEY": "s1" }));
}

#[tokio::test]
async fn sdk_apps_read_only_declared_secrets() {
    let engine = engine();
    let app = misbehave(&engine, "secrets = [\"API_KEY\"]");
    let input = serde_json::value::to_raw_value(&json!({ "names": ["API_KEY", "OTHER"] })).unwrap();
    let secrets = HashMap::from([
        ("API_KEY".to_owned(), "s1".to_owned()),
        ("OTHER".to_owned(), "s2".to_owned()),
    ]);
    let request = RunRequest::new(&app, "secret", input)
        .unwrap()
        .secrets(secrets);
    let outcome = app.run(request).await;
    let output: serde_json::Value = serde_json::from_str(outcome.output.unwrap().get()).unwrap();
    assert_eq!(output, json!({ "API_KEY": "s1", "OTHER": null }));
}

#[tokio::test]
async fn a_guest_reaches_no_socket() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    listener.set_nonblocking(true).unwrap();
    let engine = engine();
    let ran = run(
        &misbehave(&engine, ""),
        "network",
        json!({ "port": port }),
        None,
    )
    .await;
    let output = ran.output();
    for attempt in ["tcp", "udp", "dns"] {
        assert!(
            output[attempt].get("err").is_some(),
            "{attempt} should fail: {output}"
        );
    }
    assert!(
        listener.accept().is_err(),
        "the guest must not have connected"
    );

    // An allowlist opens outbound HTTP only: raw sockets and name lookup stay shut.
    let app = misbehave(&engine, "[network]\nallowed_hosts = [\"localhost\"]");
    let ran = run(&app, "network", json!({ "port": port }), None).await;
    let output = ran.output();
    for attempt in ["tcp", "udp", "dns"] {
        assert!(output[attempt].get("err").is_some(), "{attempt}: {output}");
    }
}

#[tokio::test]
async fn a_write_past_the_check_write_permit_traps() {
    let engine = engine();
    let app = misbehave_cmd(&engine, "");
    // Raw 4 MiB writes to stdout that never ask `check-write`: each would queue 64
    // chunks while the caller is behind.
    let ran = run(&app, "write-unchecked", json!({}), None).await;
    assert_eq!(ran.code(), "trap", "{:?}", ran.outcome.error);
    assert!(
        ran.chunks().is_empty(),
        "nothing of the refused write streams"
    );
    let message = ran.outcome.error.unwrap().message;
    assert!(
        message.contains("4194304 bytes to stdout")
            && message.contains("more than the 0 bytes `check-write` allowed"),
        "{message}"
    );
    // Programs that keep the contract (Rust's std here) write as much as they like:
    // see the floods in `flood.rs` and `word_count_is_a_command_app_with_streamed_lines`.
}

// ---------------------------------------------------------------------------------------
// wasi:http: only with a network grant, and within the run's host-memory budget

const HOARD_ACTIONS: &[&str] = &["ok", "bodies", "fields", "strings"];

fn hoard(engine: &Engine, extra: &str) -> floom_runtime::CompiledApp {
    compile(
        engine,
        manifest("http-hoard", HOARD_ACTIONS, extra),
        guests::HTTP_HOARD,
    )
}

const EXAMPLE_COM: &str = "[network]\nallowed_hosts = [\"example.com\"]";

#[tokio::test]
async fn without_a_network_grant_wasi_http_traps_and_says_why() {
    let engine = engine();
    let app = hoard(&engine, "");
    // The component imports wasi:http; a run that never calls it is unaffected.
    let ran = run(&app, "ok", json!({}), None).await;
    assert_eq!(ran.output(), json!({ "ok": true }));
    for action in ["bodies", "fields", "strings"] {
        let ran = run(&app, action, json!({}), None).await;
        assert_eq!(ran.outcome.status, Status::Failed, "{action}");
        assert_eq!(ran.code(), "trap", "{action}: {:?}", ran.outcome.error);
        let message = &ran.outcome.error.as_ref().unwrap().message;
        assert!(
            message.contains("wasi:http/types")
                && message.contains("[constructor]fields")
                && message.contains("allows no network")
                && message.contains("[network] allowed_hosts"),
            "{action}: {message}"
        );
    }
    // The SDK's client in an app without a grant: the same trap, not a refusal the app
    // could mistake for an upstream's.
    let app = compile(
        &engine,
        manifest("misbehave", &["fetch"], ""),
        guests::MISBEHAVE,
    );
    let ran = run(
        &app,
        "fetch",
        json!({ "url": "https://example.com/" }),
        None,
    )
    .await;
    assert_eq!(ran.code(), "trap", "{:?}", ran.outcome.error);
    assert!(
        ran.outcome
            .error
            .unwrap()
            .message
            .contains("allows no network"),
        "the message names the missing grant"
    );
}

#[tokio::test]
async fn hoarding_through_wasi_http_stops_at_the_budget() {
    let engine = engine();
    let budget = Caps::default().http_memory_bytes;
    let app = hoard(&engine, EXAMPLE_COM);
    // The finding: 4,090 unsent requests with 1 MiB written into each body (4 GB of host
    // memory before the budget); then header values and request strings.
    for (action, input) in [
        ("bodies", json!({ "requests": 4090, "bytes": 1 << 20 })),
        ("fields", json!({ "count": 4090, "bytes": 48 << 10 })),
        ("strings", json!({ "count": 4090, "bytes": 1 << 20 })),
        ("strings", json!({ "count": 4090, "bytes": 0 })),
    ] {
        let started = Instant::now();
        let ran = run(&app, action, input.clone(), None).await;
        assert_eq!(ran.outcome.status, Status::Failed, "{action} {input}");
        assert_eq!(
            ran.code(),
            "memory_limit",
            "{action}: {:?}",
            ran.outcome.error
        );
        let message = &ran.outcome.error.as_ref().unwrap().message;
        assert!(
            message.contains("http_memory_bytes") && message.contains(&budget.to_string()),
            "{action}: {message}"
        );
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "{action} traps at once"
        );
    }

    // Within the budget the same calls work, and each body buffers two 64 KiB writes
    // at most when nothing sends it.
    let ran = run(
        &app,
        "bodies",
        json!({ "requests": 10, "bytes": 1 << 20 }),
        None,
    )
    .await;
    assert_eq!(
        ran.output(),
        json!({ "requests": 10, "buffered": 10 * 2 * (64 << 10) })
    );
    let ran = run(
        &app,
        "fields",
        json!({ "count": 100, "bytes": 48 << 10 }),
        None,
    )
    .await;
    assert_eq!(
        ran.output(),
        json!({ "fields": 100, "held": 100 * (48 << 10) })
    );
    // One fields map stops at its 64 KiB limit (names, values and overhead): the guest
    // traps (wasmtime-wasi-http's choice), reported as a memory limit.
    let ran = run(
        &app,
        "fields",
        json!({ "count": 1, "bytes": 64 << 10 }),
        None,
    )
    .await;
    assert_eq!(ran.code(), "memory_limit", "{:?}", ran.outcome.error);
    let message = ran.outcome.error.unwrap().message;
    assert!(
        message.contains("fields map") && message.contains("65536"),
        "{message}"
    );
}

#[tokio::test]
async fn the_budget_is_an_engine_cap() {
    let engine = Engine::new(EngineConfig {
        max_instances: 8,
        caps: Caps {
            http_memory_bytes: 1 << 20,
            ..Caps::default()
        },
        ..EngineConfig::default()
    })
    .unwrap();
    let app = hoard(&engine, EXAMPLE_COM);
    // 1 MiB: 16 empty fields maps (64 KiB each) and no more.
    let ran = run(&app, "fields", json!({ "count": 16, "bytes": 0 }), None).await;
    assert_eq!(ran.output()["fields"], 16);
    let ran = run(&app, "fields", json!({ "count": 17, "bytes": 0 }), None).await;
    assert_eq!(ran.code(), "memory_limit");
    assert!(
        ran.outcome.error.unwrap().message.contains("1048576 bytes"),
        "the message names the configured budget"
    );
}

/// A local upstream that answers each request with the number of body bytes it read
/// (it needs a `content-length`), one connection at a time.
fn counting_upstream() -> u16 {
    use std::io::{BufRead, BufReader, Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(stream) = stream else { continue };
            let mut reader = BufReader::new(stream);
            let mut length = 0usize;
            loop {
                let mut line = String::new();
                if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                    break;
                }
                if let Some((name, value)) = line.split_once(':')
                    && name.eq_ignore_ascii_case("content-length")
                {
                    length = value.trim().parse().unwrap_or(0);
                }
            }
            let mut body = vec![0; length];
            let read = reader.read_exact(&mut body).map_or(0, |()| length);
            let answer = read.to_string();
            let _ = write!(
                reader.get_mut(),
                "HTTP/1.1 200 OK\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{answer}",
                answer.len()
            );
        }
    });
    port
}

#[tokio::test]
async fn a_network_app_using_its_whole_request_cap_fits_the_budget() {
    let port = counting_upstream();
    let engine = Engine::new(EngineConfig {
        max_instances: 8,
        allow_private_network: true,
        ..EngineConfig::default()
    })
    .unwrap();
    let app = compile(
        &engine,
        manifest(
            "misbehave",
            &["fetch"],
            "[network]\nallowed_hosts = [\"localhost\"]",
        ),
        guests::MISBEHAVE,
    );
    // 100 requests (the cap), each with headers and a 300 KiB body written in many
    // pieces through the 64 KiB body buffer: about 20 MiB of charges, under 32 MiB.
    let body = "b".repeat(300 << 10);
    let ran = run(
        &app,
        "fetch",
        json!({
            "url": format!("http://localhost:{port}/upload"),
            "method": "POST",
            "headers": [["content-length", body.len().to_string()], ["x-app", "fine"]],
            "body": body,
            "times": Caps::default().http_requests,
        }),
        Some(Duration::from_secs(60)),
    )
    .await;
    assert_eq!(
        ran.outcome.status,
        Status::Succeeded,
        "{:?}",
        ran.outcome.error
    );
    assert_eq!(
        ran.output(),
        json!({ "status": 200, "length": 6, "body": (300 << 10).to_string() })
    );
}

// ---------------------------------------------------------------------------------------
// Compiling

#[test]
fn components_are_validated_with_clear_errors() {
    let engine = engine();
    let compile = |bytes: &[u8]| engine.compile(manifest("x", &[], ""), bytes).err();
    assert_eq!(compile(b"not wasm"), Some(ComponentError::NotWasm));
    let core = wat::parse_str("(module)").unwrap();
    assert_eq!(compile(&core), Some(ComponentError::CoreModule));
    let empty = wat::parse_str("(component)").unwrap();
    assert_eq!(compile(&empty), Some(ComponentError::NoEntryPoint));
    let foreign = wat::parse_str(
        r#"(component (import "wasi:http/types@0.2.0" (instance (export "f" (func)))))"#,
    )
    .unwrap();
    let err = compile(&foreign).unwrap();
    assert!(
        matches!(&err, ComponentError::UnsupportedImport(name) if name.contains("wasi:http/types@0.2.0")),
        "{err}"
    );
    let mut truncated = std::fs::read(guests::HELLO).unwrap();
    truncated.truncate(truncated.len() / 2);
    assert!(matches!(
        compile(&truncated),
        Some(ComponentError::Invalid(_))
    ));
}

#[tokio::test]
async fn a_restart_loads_compiled_apps_from_the_cache() {
    let dir = std::env::temp_dir().join(format!("floom-cache-test-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let config = EngineConfig {
        cache_dir: Some(dir.clone()),
        max_instances: 8,
        ..EngineConfig::default()
    };
    let hello = || Manifest::from_file(guests::HELLO_MANIFEST.as_ref()).unwrap();
    let first = compile(
        &Engine::new(config.clone()).unwrap(),
        hello(),
        guests::HELLO,
    );
    assert!(!first.compile_info().from_cache);
    // A second engine stands in for a restarted process.
    let engine = Engine::new(config).unwrap();
    let second = compile(&engine, hello(), guests::HELLO);
    assert!(second.compile_info().from_cache);
    assert_eq!(first.sha256(), second.sha256());
    let ran = run(&second, "run", json!({ "name": "cache" }), None).await;
    assert_eq!(ran.output(), json!({ "greeting": "Hello, cache!" }));
    std::fs::remove_dir_all(&dir).unwrap();
}

#[tokio::test]
async fn requests_are_checked_against_the_app() {
    let engine = engine();
    let app = example(&engine, guests::HELLO_MANIFEST, guests::HELLO);
    let input = || serde_json::value::to_raw_value(&json!({})).unwrap();
    let err = RunRequest::new(&app, "nope", input()).err().unwrap();
    assert_eq!(
        err.to_string(),
        "the app has no action \"nope\" (it has: run)"
    );
    let array = serde_json::value::to_raw_value(&json!([1])).unwrap();
    assert!(RunRequest::new(&app, "run", array).is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_runs_at_once_each_get_a_fresh_sandbox() {
    let engine = engine();
    let app = example(&engine, guests::HELLO_MANIFEST, guests::HELLO);
    let runs: Vec<_> = (0..48)
        .map(|i| {
            let app = app.clone();
            tokio::spawn(
                async move { run(&app, "run", json!({ "name": format!("n{i}") }), None).await },
            )
        })
        .collect();
    for (i, handle) in runs.into_iter().enumerate() {
        let ran = handle.await.unwrap();
        assert_eq!(ran.output(), json!({ "greeting": format!("Hello, n{i}!") }));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_pool_sized_to_the_concurrency_never_runs_out() {
    let engine = Engine::new(EngineConfig {
        max_instances: 8,
        ..EngineConfig::default()
    })
    .unwrap();
    let app = misbehave(&engine, "");
    let slots = std::sync::Arc::new(tokio::sync::Semaphore::new(8));
    let runs: Vec<_> = (0..200)
        .map(|i| {
            let app = app.clone();
            let slots = slots.clone();
            tokio::spawn(async move {
                let _slot = slots.acquire_owned().await.unwrap();
                let action = if i % 2 == 0 { "sleep" } else { "ok" };
                run(&app, action, json!({ "ms": 20 }), None).await
            })
        })
        .collect();
    for handle in runs {
        let ran = handle.await.unwrap();
        assert_eq!(
            ran.outcome.status,
            Status::Succeeded,
            "{:?}",
            ran.outcome.error
        );
    }
}
