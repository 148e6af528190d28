//! Operating apps on a real server (SPEC section 12): how each run started, the CSV
//! export read back with a real CSV parser, runs per day, pause and resume, visibility,
//! and sample inputs.

mod support;

use std::time::Duration;

use serde_json::{Value, json};
use support::{Server, TOKEN};

async fn get_json(server: &Server, path: &str) -> Value {
    let response = server.admin_get(path).send().await.unwrap();
    assert_eq!(response.status(), 200, "{path}");
    response.json().await.unwrap()
}

async fn run_with(server: &Server, body: Value) -> reqwest::Response {
    server
        .post("/api/apps/hello/run?wait=true")
        .json(&body)
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn every_run_records_how_it_started_and_the_list_filters_on_it() {
    let server = Server::start(&["--examples=rust"]);
    for source in [None, Some("cli"), Some("ui"), Some("api")] {
        let mut body = json!({ "inputs": { "name": "Src" } });
        if let Some(source) = source {
            body["trigger_source"] = json!(source);
        }
        let response = run_with(&server, body).await;
        assert_eq!(response.status(), 200);
        let envelope: Value = response.json().await.unwrap();
        let detail = get_json(
            &server,
            &format!(
                "/api/executions/{}",
                envelope["execution_id"].as_str().unwrap()
            ),
        )
        .await;
        assert_eq!(detail["trigger_source"], source.unwrap_or("api"));
    }
    // The server's own sources, and unknown ones, cannot be claimed.
    for source in ["mcp", "webhook", "schedule", "cron", ""] {
        let response = run_with(&server, json!({ "inputs": {}, "trigger_source": source })).await;
        assert_eq!(response.status(), 400, "{source:?}");
    }
    let count = |page: &Value| page["data"].as_array().unwrap().len();
    assert_eq!(
        count(&get_json(&server, "/api/executions?trigger_source=api").await),
        2
    );
    assert_eq!(
        count(&get_json(&server, "/api/executions?trigger_source=cli").await),
        1
    );
    assert_eq!(
        count(&get_json(&server, "/api/executions?trigger_source=ui").await),
        1
    );
    assert_eq!(
        count(&get_json(&server, "/api/executions?trigger_source=").await),
        4
    );
    let bad = server
        .admin_get("/api/executions?trigger_source=nope")
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), 400);
}

#[tokio::test]
async fn the_csv_export_round_trips_through_a_real_csv_parser() {
    let server = Server::start(&["--examples=rust"]);
    // Commas, quotes and line breaks in both the output and an error message.
    let tricky = "O'Brien, \"the\nquoted\"";
    let ok = server
        .run_sync("/api/apps/hello/run", json!({ "name": tricky }))
        .await;
    let failed = server
        .run_sync("/api/apps/hello/run", json!({ "name": "" }))
        .await;
    assert_eq!(failed["status"], "failed");
    let cli = run_with(
        &server,
        json!({ "inputs": { "name": "cli" }, "trigger_source": "cli" }),
    )
    .await;
    assert_eq!(cli.status(), 200);

    let response = server
        .admin_get("/api/executions/export.csv?app=hello")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert!(
        response.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/csv")
    );
    let text = response.text().await.unwrap();
    assert!(text.ends_with("\r\n"));
    let mut reader = csv::Reader::from_reader(text.as_bytes());
    let header: Vec<String> = reader.headers().unwrap().iter().map(String::from).collect();
    assert_eq!(
        header,
        [
            "execution_id",
            "app",
            "action",
            "version",
            "status",
            "error_code",
            "error_message",
            "trigger_source",
            "created_at",
            "started_at",
            "finished_at",
            "duration_ms",
            "attempt",
            "output"
        ]
    );
    let rows: Vec<csv::StringRecord> = reader.records().map(Result::unwrap).collect();
    assert_eq!(rows.len(), 3);
    let row = |id: &Value| {
        rows.iter()
            .find(|r| r[0] == *id.as_str().unwrap())
            .unwrap()
            .clone()
    };
    let succeeded = row(&ok["execution_id"]);
    assert_eq!(&succeeded[4], "succeeded");
    let output: Value = serde_json::from_str(&succeeded[13]).unwrap();
    assert_eq!(output["greeting"], format!("Hello, {tricky}!"));
    assert_eq!(&succeeded[7], "api");
    assert_eq!(&succeeded[12], "1");
    assert!(succeeded[8].ends_with('Z') && succeeded[10].ends_with('Z'));
    assert!(succeeded[11].parse::<i64>().is_ok());
    let failure = row(&failed["execution_id"]);
    assert_eq!(&failure[4], "failed");
    assert_eq!(&failure[5], "app_error");
    assert_eq!(&failure[6], failed["error"]["message"].as_str().unwrap());
    assert_eq!(&failure[13], "");

    // Filters: status, source, and a time window over created_at.
    let export = |query: &'static str| {
        let server = &server;
        async move {
            let text = server
                .admin_get(&format!("/api/executions/export.csv?{query}"))
                .send()
                .await
                .unwrap()
                .text()
                .await
                .unwrap();
            csv::Reader::from_reader(text.as_bytes())
                .records()
                .map(|r| r.unwrap()[0].to_owned())
                .collect::<Vec<String>>()
        }
    };
    assert_eq!(
        export("status=failed").await,
        [failed["execution_id"].as_str().unwrap()]
    );
    assert_eq!(export("trigger_source=cli").await.len(), 1);
    assert_eq!(export("since=2000-01-01&until=2000-01-02").await.len(), 0);
    assert_eq!(export("since=2000-01-01T00:00:00Z").await.len(), 3);
    let bad = server
        .admin_get("/api/executions/export.csv?since=yesterday")
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), 400);
    let anonymous = server
        .get("/api/executions/export.csv")
        .send()
        .await
        .unwrap();
    assert_eq!(anonymous.status(), 401);
}

#[tokio::test]
async fn the_time_series_counts_runs_per_day() {
    let server = Server::start(&["--examples=rust"]);
    server
        .run_sync("/api/apps/hello/run", json!({ "name": "a" }))
        .await;
    server
        .run_sync("/api/apps/hello/run", json!({ "name": "b" }))
        .await;
    server
        .run_sync("/api/apps/hello/run", json!({ "name": "" }))
        .await;
    let series = get_json(&server, "/api/apps/hello/timeseries?days=3").await;
    let days = series["days"].as_array().unwrap();
    assert_eq!(days.len(), 3);
    let today = &days[2];
    assert!(days[0]["date"].as_str().unwrap() < today["date"].as_str().unwrap());
    assert_eq!(today["counts"]["succeeded"], 2);
    assert_eq!(today["counts"]["failed"], 1);
    assert!(today["p50_ms"].is_i64() && today["p95_ms"].is_i64());
    assert_eq!(days[0]["counts"]["succeeded"], 0);
    assert!(days[0]["p50_ms"].is_null());
    let default = get_json(&server, "/api/apps/hello/timeseries").await;
    assert_eq!(default["days"].as_array().unwrap().len(), 30);
    let anonymous = server
        .get("/api/apps/hello/timeseries")
        .send()
        .await
        .unwrap();
    assert_eq!(anonymous.status(), 401);
}

#[tokio::test]
async fn a_paused_app_refuses_runs_and_keeps_its_history() {
    let server = Server::start(&["--examples=rust"]);
    let before = server
        .run_sync("/api/apps/hello/run", json!({ "name": "Before" }))
        .await;
    let trigger: Value = server
        .post("/api/apps/hello/triggers")
        .bearer_auth(TOKEN)
        .json(&json!({}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let paused = server
        .post("/api/apps/hello/pause")
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(paused.status(), 200);
    let paused: Value = paused.json().await.unwrap();
    assert_eq!(paused["paused"], true);

    let refused = server
        .post("/api/apps/hello/run")
        .json(&json!({ "inputs": {} }))
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 409);
    let problem: Value = refused.json().await.unwrap();
    assert_eq!(problem["code"], "conflict");
    assert!(problem["detail"].as_str().unwrap().contains("paused"));
    // Triggers are refused too.
    let hook = server
        .post(&format!(
            "/hooks/{}?token={}",
            trigger["id"].as_str().unwrap(),
            trigger["secret"].as_str().unwrap()
        ))
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(hook.status(), 409);
    // History stays readable.
    let history = get_json(&server, "/api/executions?app=hello").await;
    assert_eq!(history["data"].as_array().unwrap().len(), 1);
    let old = get_json(
        &server,
        &format!(
            "/api/executions/{}",
            before["execution_id"].as_str().unwrap()
        ),
    )
    .await;
    assert_eq!(old["output"]["greeting"], "Hello, Before!");
    assert_eq!(get_json(&server, "/api/apps/hello").await["paused"], true);

    // Paused across a restart, then resumed.
    let server = server.kill_and_restart();
    let still = server
        .post("/api/apps/hello/run")
        .json(&json!({ "inputs": {} }))
        .send()
        .await
        .unwrap();
    assert_eq!(still.status(), 409);
    let resumed = server
        .post("/api/apps/hello/resume")
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(resumed.status(), 200);
    server
        .run_sync("/api/apps/hello/run", json!({ "name": "After" }))
        .await;
    // Only an admin pauses.
    let anonymous = server.post("/api/apps/hello/pause").send().await.unwrap();
    assert_eq!(anonymous.status(), 401);
}

#[tokio::test]
async fn visibility_is_changed_with_patch_until_the_next_publish() {
    let server = Server::start(&["--examples=rust"]);
    let patch = |public: bool| {
        server
            .http
            .patch(server.url("/api/apps/hello"))
            .bearer_auth(TOKEN)
            .json(&json!({ "public": public }))
            .send()
    };
    let private = patch(false).await.unwrap();
    assert_eq!(private.status(), 200);
    assert_eq!(private.json::<Value>().await.unwrap()["public"], false);
    let anonymous = server
        .post("/api/apps/hello/run")
        .json(&json!({ "inputs": {} }))
        .send()
        .await
        .unwrap();
    assert_eq!(anonymous.status(), 401);
    let listed: Value = server
        .get("/api/apps")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(
        listed["data"]
            .as_array()
            .unwrap()
            .iter()
            .all(|app| app["slug"] != "hello")
    );
    // Kept across a restart.
    let server = server.kill_and_restart();
    let anonymous = server.get("/api/apps/hello").send().await.unwrap();
    assert_eq!(anonymous.status(), 401);
    let public = server
        .http
        .patch(server.url("/api/apps/hello"))
        .bearer_auth(TOKEN)
        .json(&json!({ "public": true }))
        .send()
        .await
        .unwrap();
    assert_eq!(public.status(), 200);
    let run = server
        .post("/api/apps/hello/run?wait=true")
        .json(&json!({ "inputs": { "name": "Open" } }))
        .send()
        .await
        .unwrap();
    assert_eq!(run.status(), 200);
    let bad = server
        .http
        .patch(server.url("/api/apps/hello"))
        .bearer_auth(TOKEN)
        .json(&json!({ "public": "yes" }))
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), 400);
}

#[tokio::test]
async fn sample_inputs_are_accepted_by_their_action() {
    let server = Server::start(&["--examples=rust"]);
    for (app, action) in [
        ("hello", None),
        ("meeting-action-items", None),
        ("webhook-signer", Some("sign")),
        ("webhook-signer", Some("verify")),
        ("word-count", None),
    ] {
        let path = match action {
            Some(action) => format!("/api/apps/{app}/sample-input?action={action}"),
            None => format!("/api/apps/{app}/sample-input"),
        };
        let sample = get_json(&server, &path).await;
        let action = sample["action"].as_str().unwrap().to_owned();
        // The action takes it: the run is accepted (whatever the app then makes of it).
        let response = server
            .post(&format!("/api/apps/{app}/actions/{action}/run"))
            .bearer_auth(TOKEN)
            .json(&json!({ "inputs": sample["inputs"] }))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 202, "{app}/{action}: {sample}");
        let started: Value = response.json().await.unwrap();
        server
            .wait_terminal(
                started["execution_id"].as_str().unwrap(),
                Duration::from_secs(20),
            )
            .await;
    }
    let unknown = server
        .get("/api/apps/hello/sample-input?action=nope")
        .send()
        .await
        .unwrap();
    assert_eq!(unknown.status(), 400);
}
