//! The client commands (`publish`, `run`, `apps`, `executions`) against a real server.

mod support;

use std::path::Path;
use std::process::{Command, Output};

use floom_tests::guests;
use serde_json::{Value, json};
use support::{Server, TOKEN};

fn floom(server: &Server, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_floom"))
        .args(args)
        .env("FLOOM_API_URL", &server.base)
        .env("FLOOM_TOKEN", TOKEN)
        .output()
        .expect("run floom")
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

fn dir(manifest: &str) -> &str {
    Path::new(manifest).parent().unwrap().to_str().unwrap()
}

#[tokio::test]
async fn publish_run_and_inspect_from_the_command_line() {
    let server = Server::start(&[]);

    let published = floom(
        &server,
        &["publish", dir(guests::MEETING_ACTION_ITEMS_MANIFEST)],
    );
    assert!(published.status.success(), "{}", stderr(&published));
    assert!(
        stdout(&published).starts_with("published meeting-action-items version 1"),
        "{}",
        stdout(&published)
    );
    let published = floom(&server, &["publish", guests::HELLO_MANIFEST, "--json"]);
    let app: Value = serde_json::from_str(&stdout(&published)).unwrap();
    assert_eq!(app["slug"], "hello");

    // Chunks stream to stdout, logs to stderr, then the output.
    let run = floom(
        &server,
        &[
            "run",
            "meeting-action-items",
            r#"{"transcript": "Alice: Let us ship by Friday. Bob: I will test it."}"#,
        ],
    );
    assert!(run.status.success(), "{}", stderr(&run));
    let out = stdout(&run);
    let mut lines = out.lines();
    assert_eq!(
        serde_json::from_str::<Value>(lines.next().unwrap()).unwrap(),
        json!({ "owner": "team", "task": "Ship", "due": "Friday" })
    );
    assert_eq!(
        serde_json::from_str::<Value>(lines.next().unwrap()).unwrap(),
        json!({ "owner": "Bob", "task": "Test it", "due": null })
    );
    let output: Value = serde_json::from_str(&lines.collect::<Vec<_>>().join("\n")).unwrap();
    assert_eq!(output["items"].as_array().unwrap().len(), 2);
    assert!(stderr(&run).contains("[app] found 2 action items in 2 turns"));

    let run = floom(&server, &["run", "hello", "--input", "name=Ada"]);
    let output: Value = serde_json::from_str(&stdout(&run)).unwrap();
    assert_eq!(output, json!({ "greeting": "Hello, Ada!" }));

    // A failed run exits 1; a refused one 2.
    let failed = floom(&server, &["run", "hello", "--input", "name= "]);
    assert_eq!(failed.status.code(), Some(1));
    assert!(
        stderr(&failed).contains("name must not be blank (app_error)"),
        "{}",
        stderr(&failed)
    );
    let refused = floom(&server, &["run", "meeting-action-items"]);
    assert_eq!(refused.status.code(), Some(2));
    assert!(
        stderr(&refused).contains("400 invalid_input"),
        "{}",
        stderr(&refused)
    );
    assert!(
        stderr(&refused).contains("\"transcript\" is a required property"),
        "{}",
        stderr(&refused)
    );
    let unknown = floom(&server, &["run", "nope/run"]);
    assert_eq!(unknown.status.code(), Some(2));
    assert!(stderr(&unknown).contains("404 not_found"));

    // Apps.
    let list = floom(&server, &["apps", "list"]);
    let text = stdout(&list);
    assert!(
        text.contains("hello") && text.contains("meeting-action-items"),
        "{text}"
    );
    let get = floom(&server, &["apps", "get", "hello"]);
    let app: Value = serde_json::from_str(&stdout(&get)).unwrap();
    assert_eq!(
        app["actions"]["run"]["run_url"],
        "/api/apps/hello/actions/run/run"
    );

    // Executions: detached run, get with its view token, logs, list.
    let detached = floom(
        &server,
        &[
            "run",
            "meeting-action-items",
            "--detach",
            "-i",
            "transcript=Eve: I will fix it.",
        ],
    );
    assert!(detached.status.success(), "{}", stderr(&detached));
    let text = stdout(&detached);
    let id = text.lines().next().unwrap().to_owned();
    let view_token = text
        .lines()
        .nth(1)
        .unwrap()
        .strip_prefix("view token: ")
        .unwrap()
        .to_owned();
    server
        .wait_terminal(&id, std::time::Duration::from_secs(20))
        .await;
    let get = Command::new(env!("CARGO_BIN_EXE_floom"))
        .args([
            "executions",
            "get",
            &id,
            "--view-token",
            &view_token,
            "--server",
            &server.base,
        ])
        .env_remove("FLOOM_TOKEN")
        .env("FLOOM_DATA_DIR", "/nonexistent")
        .output()
        .unwrap();
    assert!(get.status.success(), "{}", stderr(&get));
    let execution: Value = serde_json::from_str(&stdout(&get)).unwrap();
    assert_eq!(execution["status"], "succeeded");
    let logs = floom(&server, &["executions", "logs", &id]);
    let line: Value = serde_json::from_str(stdout(&logs).lines().next().unwrap()).unwrap();
    assert_eq!(line["line"], "found 1 action items in 1 turns");
    let list = floom(
        &server,
        &["executions", "list", "--app", "meeting-action-items"],
    );
    assert_eq!(stdout(&list).lines().count(), 2, "{}", stdout(&list));
    let cancel = floom(&server, &["executions", "cancel", &id]);
    assert_eq!(cancel.status.code(), Some(2));
    assert!(stderr(&cancel).contains("409 conflict"));

    let deleted = floom(&server, &["apps", "delete", "hello"]);
    assert!(deleted.status.success());
}

#[tokio::test]
async fn an_unreachable_server_exits_3() {
    let output = Command::new(env!("CARGO_BIN_EXE_floom"))
        .args(["apps", "list", "--server", "http://127.0.0.1:9"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(3));
    assert!(
        stderr(&output).contains("cannot talk to the server"),
        "{}",
        stderr(&output)
    );
}

#[tokio::test]
async fn publishing_without_the_admin_token_is_refused() {
    let server = Server::start(&[]);
    let output = Command::new(env!("CARGO_BIN_EXE_floom"))
        .args([
            "publish",
            dir(guests::HELLO_MANIFEST),
            "--server",
            &server.base,
            "--data-dir",
            "/nonexistent",
        ])
        .env_remove("FLOOM_TOKEN")
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    assert!(
        stderr(&output).contains("401 auth_failed"),
        "{}",
        stderr(&output)
    );
}

#[tokio::test]
async fn tokens_secrets_and_versions_from_the_command_line() {
    let server = Server::start(&["--examples=rust"]);
    // A token printed once on stdout, usable at once.
    let created = floom(&server, &["tokens", "create", "ci", "--app", "hello"]);
    assert!(created.status.success(), "{}", stderr(&created));
    let token = stdout(&created).trim().to_owned();
    assert!(token.starts_with("floom_"));
    let run = Command::new(env!("CARGO_BIN_EXE_floom"))
        .args([
            "run",
            "hello",
            "--input",
            "name=ci",
            "--server",
            &server.base,
            "--token",
            &token,
        ])
        .output()
        .unwrap();
    assert!(run.status.success(), "{}", stderr(&run));
    let list = floom(&server, &["tokens", "list"]);
    let tokens: Value = serde_json::from_str(&stdout(&list)).unwrap();
    let id = tokens[0]["id"].as_str().unwrap().to_owned();
    assert!(!stdout(&list).contains(&token));
    assert!(floom(&server, &["tokens", "revoke", &id]).status.success());

    // A secret from stdin, used by the app, listed by name only.
    let mut child = Command::new(env!("CARGO_BIN_EXE_floom"))
        .args([
            "secrets",
            "set",
            "webhook-signer",
            "SIGNING_KEY",
            "--value-stdin",
        ])
        .env("FLOOM_API_URL", &server.base)
        .env("FLOOM_TOKEN", TOKEN)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write as _;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"cli-secret\n")
        .unwrap();
    assert!(child.wait().unwrap().success());
    let signed = floom(
        &server,
        &[
            "run",
            "webhook-signer/sign",
            r#"{"body": "{}", "timestamp": 1}"#,
        ],
    );
    assert!(signed.status.success(), "{}", stderr(&signed));
    assert!(stdout(&signed).contains("t=1,v1="));
    let listed = floom(&server, &["secrets", "list", "webhook-signer"]);
    assert!(stdout(&listed).contains("SIGNING_KEY") && !stdout(&listed).contains("cli-secret"));

    // Versions and rollback.
    let changed = std::fs::read_to_string(guests::HELLO_MANIFEST)
        .unwrap()
        .replace("Greets you by name", "v2");
    let dir = support::temp_dir("cli-v2");
    std::fs::write(dir.join("floom.toml"), changed).unwrap();
    // The manifest moved away from the component: name it on the command line.
    let published = floom(
        &server,
        &[
            "publish",
            dir.to_str().unwrap(),
            "--component",
            guests::HELLO,
        ],
    );
    assert!(published.status.success(), "{}", stderr(&published));
    let versions = floom(&server, &["apps", "versions", "hello"]);
    assert_eq!(
        stdout(&versions).lines().count(),
        2,
        "{}",
        stdout(&versions)
    );
    let rolled = floom(&server, &["apps", "rollback", "hello", "1"]);
    assert_eq!(stdout(&rolled).trim(), "hello is at version 1");
    let stats = floom(&server, &["apps", "stats", "hello"]);
    let stats: Value = serde_json::from_str(&stdout(&stats)).unwrap();
    assert_eq!(stats["by_status"]["succeeded"], 1);
}

#[tokio::test]
async fn publish_uploads_only_what_the_app_folder_may_name() {
    // Review finding 11b: `component = "/etc/passwd"` in someone else's manifest made
    // `floom publish` upload that file.
    let server = Server::start(&[]);
    let app = support::temp_dir("cli-publish");
    let secret = support::temp_dir("cli-secret").join("id_rsa.wasm");
    std::fs::copy(guests::HELLO, &secret).unwrap();
    for component in ["/etc/passwd", secret.to_str().unwrap(), "../outside.wasm"] {
        std::fs::write(
            app.join("floom.toml"),
            format!("slug = \"sneaky\"\ncomponent = \"{component}\"\n"),
        )
        .unwrap();
        let output = floom(&server, &["publish", app.to_str().unwrap()]);
        assert_eq!(output.status.code(), Some(2), "{}", stdout(&output));
        let said = stderr(&output);
        assert!(
            said.contains("outside the app's folder") || said.contains("cannot read"),
            "{said}"
        );
    }
    // A symlink inside the folder that leads out is refused too.
    std::os::unix::fs::symlink(&secret, app.join("app.wasm")).unwrap();
    std::fs::write(
        app.join("floom.toml"),
        "slug = \"sneaky\"\ncomponent = \"app.wasm\"\n",
    )
    .unwrap();
    let output = floom(&server, &["publish", app.to_str().unwrap()]);
    assert!(
        stderr(&output).contains("outside the app's folder"),
        "{}",
        stderr(&output)
    );
    let apps: Value = server
        .admin_get("/api/apps")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(apps["data"], json!([]), "nothing was uploaded");
    // Named on the command line, the same file is published: that is the user's choice.
    let output = floom(
        &server,
        &[
            "publish",
            app.to_str().unwrap(),
            "--component",
            secret.to_str().unwrap(),
        ],
    );
    assert!(output.status.success(), "{}", stderr(&output));
    // And the examples, whose components are in the workspace's target/, still publish.
    let output = floom(&server, &["publish", dir(guests::HELLO_MANIFEST)]);
    assert!(output.status.success(), "{}", stderr(&output));
}

#[tokio::test]
async fn a_new_rust_app_builds_publishes_and_runs_as_written() {
    let server = Server::start(&[]);
    let dir = support::temp_dir("cli-new-rust");
    let target =
        floom_guest_build::target_dir(Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap())
            .join("floom-new-rust");
    let run = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_floom"))
            .args(args)
            .current_dir(&dir)
            .env("FLOOM_API_URL", &server.base)
            .env("FLOOM_TOKEN", TOKEN)
            // Its own target dir, kept between test runs so the build is incremental.
            .env("CARGO_TARGET_DIR", &target)
            .output()
            .expect("run floom")
    };
    let made = run(&["new", "counter", "--lang", "rust"]);
    assert!(made.status.success(), "{}", stderr(&made));
    let again = run(&["new", "counter", "--lang", "rust"]);
    assert_eq!(again.status.code(), Some(2), "an existing folder is kept");
    let built = run(&["build", "counter"]);
    assert!(built.status.success(), "{}", stderr(&built));
    let published = run(&["publish", "counter"]);
    assert!(published.status.success(), "{}", stderr(&published));
    let ran = run(&["run", "counter", "--input", "text=to be or not to be"]);
    assert!(ran.status.success(), "{}", stderr(&ran));
    let out = stdout(&ran);
    assert!(out.contains("\"words\": 6"), "{out}");
    let refused = run(&["new", "Not A Slug"]);
    assert!(
        stderr(&refused).contains("is not a slug"),
        "{}",
        stderr(&refused)
    );
}

#[tokio::test]
async fn triggers_schedules_webhooks_exports_and_pauses_from_the_command_line() {
    let server = Server::start(&["--examples=rust", "--allow-private-network"]);
    let ok = |output: Output| {
        assert!(output.status.success(), "{}", stderr(&output));
        stdout(&output)
    };

    // A run from the CLI says so.
    ok(floom(&server, &["run", "hello", "--input", "name=Cli"]));
    let listed = ok(floom(
        &server,
        &["executions", "list", "--trigger-source", "cli", "--json"],
    ));
    let listed: Value = serde_json::from_str(&listed).unwrap();
    assert_eq!(listed["data"].as_array().unwrap().len(), 1);

    let created = ok(floom(&server, &["triggers", "create", "hello"]));
    let url = created
        .lines()
        .find_map(|l| l.strip_prefix("url:"))
        .unwrap()
        .trim()
        .to_owned();
    let secret = created
        .lines()
        .find_map(|l| l.strip_prefix("secret:"))
        .unwrap()
        .trim()
        .to_owned();
    let hook = server
        .http
        .post(format!("{url}?token={secret}"))
        .json(&json!({ "name": "Hook" }))
        .send()
        .await
        .unwrap();
    assert_eq!(hook.status(), 202);
    let triggers: Value =
        serde_json::from_str(&ok(floom(&server, &["triggers", "list", "hello"]))).unwrap();
    let id = triggers[0]["id"].as_str().unwrap().to_owned();
    assert!(ok(floom(&server, &["triggers", "rotate", "hello", &id])).contains("secret:"));
    ok(floom(&server, &["triggers", "delete", "hello", &id]));

    let schedule: Value = serde_json::from_str(&ok(floom(
        &server,
        &[
            "schedules",
            "create",
            "hello",
            "--cron",
            "0 9 * * MON-FRI",
            "--timezone",
            "Europe/Berlin",
            "--inputs",
            r#"{"name": "Cron"}"#,
        ],
    )))
    .unwrap();
    let id = schedule["id"].as_str().unwrap().to_owned();
    assert!(ok(floom(&server, &["schedules", "pause", "hello", &id])).contains("paused"));
    assert!(ok(floom(&server, &["schedules", "resume", "hello", &id])).contains("next tick"));
    let schedules: Value =
        serde_json::from_str(&ok(floom(&server, &["schedules", "list", "hello"]))).unwrap();
    assert!(schedules[0]["next_tick"].is_string());
    ok(floom(&server, &["schedules", "delete", "hello", &id]));
    let bad = floom(&server, &["schedules", "create", "hello", "--cron", "nope"]);
    assert_eq!(bad.status.code(), Some(2));

    let key = ok(floom(
        &server,
        &[
            "webhooks",
            "create",
            "hello",
            "--url",
            "http://127.0.0.1:9/x",
            "--event",
            "execution.failed",
        ],
    ));
    assert!(key.trim().starts_with("whsec_"));
    let subscriptions: Value =
        serde_json::from_str(&ok(floom(&server, &["webhooks", "list", "hello"]))).unwrap();
    let id = subscriptions[0]["id"].as_str().unwrap().to_owned();
    assert_eq!(subscriptions[0]["events"], json!(["execution.failed"]));
    let page: Value = serde_json::from_str(&ok(floom(
        &server,
        &["webhooks", "deliveries", "hello", &id],
    )))
    .unwrap();
    assert_eq!(page["data"], json!([]));
    assert!(ok(floom(&server, &["webhooks", "secret", "hello"])).starts_with("whsec_"));
    ok(floom(&server, &["webhooks", "delete", "hello", &id]));

    let csv = ok(floom(&server, &["executions", "export", "--app", "hello"]));
    let mut reader = csv::Reader::from_reader(csv.as_bytes());
    let sources: Vec<String> = reader.records().map(|r| r.unwrap()[7].to_owned()).collect();
    assert_eq!(sources.len(), 2);
    assert!(sources.contains(&"cli".to_owned()) && sources.contains(&"webhook".to_owned()));

    assert!(ok(floom(&server, &["apps", "pause", "hello"])).contains("paused"));
    let refused = floom(&server, &["run", "hello"]);
    assert_eq!(refused.status.code(), Some(2));
    assert!(stderr(&refused).contains("paused"), "{}", stderr(&refused));
    assert!(ok(floom(&server, &["apps", "resume", "hello"])).contains("running"));
    assert!(ok(floom(&server, &["apps", "set-public", "hello", "false"])).contains("private"));
    let anonymous = server.get("/api/apps/hello").send().await.unwrap();
    assert_eq!(anonymous.status(), 401);
}
