//! Two `floom serve` hosts on one real PostgreSQL with nothing on disk in common (SPEC
//! section 13): an app published, made private, rolled back, paused and deleted on one
//! host is so on the other within a second, and the other runs it from bytes it never
//! received; a token created and revoked on one host works and is refused on the other
//! within a second; and either host serves the input files and artifacts of an
//! execution, whichever host ran it.

mod support;

use std::future::Future;
use std::time::{Duration, Instant};

use floom_tests::guests;
use serde_json::{Value, json};
use support::{Server, TOKEN, temp_dir};

/// The keys every host shares: the master key (secrets, view tokens) and the key that
/// signs file URLs, so a URL one host lists works on the other.
const MASTER_KEY: &str = "5ca1e0a75ca1e0a75ca1e0a75ca1e0a75ca1e0a75ca1e0a75ca1e0a75ca1e0a7";
const URL_KEY: &str = "scale-out-test-artifact-url-key";

/// A host on the database `url`, in a data dir of its own.
fn host(url: &str) -> Server {
    Server::start_with_env(
        temp_dir("scaleout"),
        &["--database", url, "--runs-per-minute", "0"],
        &[
            ("FLOOM_MASTER_KEY", Some(MASTER_KEY)),
            ("FLOOM_ARTIFACT_URL_KEY", Some(URL_KEY)),
        ],
    )
}

/// Two hosts on a fresh database.
async fn two_hosts() -> (Server, Server) {
    let url = support::postgres::database().await;
    (host(&url), host(&url))
}

/// Polls `holds` until it is true, failing the test if that takes over a second from
/// `since`.
async fn within_a_second<F: Future<Output = bool>>(
    what: &str,
    since: Instant,
    mut holds: impl FnMut() -> F,
) {
    while !holds().await {
        assert!(
            since.elapsed() < Duration::from_secs(1),
            "{what}: not within a second"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The hello example as `slug`, public or not.
fn hello(slug: &str, public: bool) -> String {
    std::fs::read_to_string(guests::HELLO_MANIFEST)
        .unwrap()
        .replace("slug = \"hello\"", &format!("slug = \"{slug}\""))
        .replace("public = true", &format!("public = {public}"))
}

/// The status of an anonymous run of `slug` on `server`, and its output.
async fn anonymous_run(server: &Server, slug: &str) -> (u16, Value) {
    let response = server
        .post(&format!("/api/apps/{slug}/run?wait=true"))
        .json(&json!({ "inputs": { "name": "Ada" } }))
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

async fn admin_post(server: &Server, path: &str) -> u16 {
    server
        .post(path)
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_app_changed_on_one_host_is_changed_on_the_other_within_a_second() {
    let (one, two) = two_hosts().await;
    let response = one.publish(&hello("greeter", true), guests::HELLO).await;
    assert_eq!(response.status(), 201);
    let published = Instant::now();
    let sha256 = response.json::<Value>().await.unwrap()["sha256"]
        .as_str()
        .unwrap()
        .to_owned();
    // Host two runs it from the bytes it fetched from the database.
    within_a_second("the publish", published, || async {
        anonymous_run(&two, "greeter").await.0 == 200
    })
    .await;
    let (_, envelope) = anonymous_run(&two, "greeter").await;
    assert_eq!(envelope["status"], "succeeded", "{envelope}");
    assert_eq!(envelope["output"], json!({ "greeting": "Hello, Ada!" }));
    assert!(
        two.data_dir
            .join("components")
            .join(format!("{sha256}.wasm"))
            .is_file()
    );

    // A new, private version; then a rollback to the public one.
    let response = one.publish(&hello("greeter", false), guests::HELLO).await;
    assert_eq!(response.status(), 201);
    let published = Instant::now();
    within_a_second("the new version", published, || async {
        anonymous_run(&two, "greeter").await.0 != 200
    })
    .await;
    assert_eq!(admin_post(&one, "/api/apps/greeter/rollback/1").await, 200);
    let rolled_back = Instant::now();
    within_a_second("the rollback", rolled_back, || async {
        anonymous_run(&two, "greeter").await.0 == 200
    })
    .await;

    // Paused, resumed, deleted.
    assert_eq!(admin_post(&one, "/api/apps/greeter/pause").await, 200);
    let paused = Instant::now();
    within_a_second("the pause", paused, || async {
        anonymous_run(&two, "greeter").await.0 == 409
    })
    .await;
    assert_eq!(admin_post(&one, "/api/apps/greeter/resume").await, 200);
    let resumed = Instant::now();
    within_a_second("the resume", resumed, || async {
        anonymous_run(&two, "greeter").await.0 == 200
    })
    .await;
    let response = one
        .http
        .delete(one.url("/api/apps/greeter"))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap();
    assert!(response.status().is_success(), "{}", response.status());
    let deleted = Instant::now();
    within_a_second("the delete", deleted, || async {
        anonymous_run(&two, "greeter").await.0 == 404
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_revoked_on_one_host_is_refused_by_the_other_within_a_second() {
    let (one, two) = two_hosts().await;
    let response = one
        .post("/api/tokens")
        .bearer_auth(TOKEN)
        .json(&json!({ "name": "agent" }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201);
    let created = Instant::now();
    let token: Value = response.json().await.unwrap();
    let secret = token["token"].as_str().unwrap().to_owned();
    let status_on_two = || async {
        two.get("/api/executions")
            .bearer_auth(&secret)
            .send()
            .await
            .unwrap()
            .status()
            .as_u16()
    };
    within_a_second("the new token", created, || async {
        status_on_two().await == 200
    })
    .await;

    let response = one
        .http
        .delete(one.url(&format!("/api/tokens/{}", token["id"].as_str().unwrap())))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 204);
    let revoked = Instant::now();
    within_a_second("the revocation", revoked, || async {
        status_on_two().await == 401
    })
    .await;
    // And it stays refused.
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert_eq!(status_on_two().await, 401);
}

/// `path` on `server` as the admin: its status and body.
async fn admin_bytes(server: &Server, path: &str) -> (u16, Vec<u8>) {
    let response = server.admin_get(path).send().await.unwrap();
    let status = response.status().as_u16();
    (status, response.bytes().await.unwrap().to_vec())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn either_host_serves_an_executions_input_files_and_artifacts() {
    let (one, two) = two_hosts().await;
    let manifest = std::fs::read_to_string(guests::CSV_REPORT_MANIFEST).unwrap();
    let response = one.publish(&manifest, guests::CSV_REPORT).await;
    assert_eq!(response.status(), 201, "{}", response.text().await.unwrap());
    let published = Instant::now();
    // Known on host two once a run there is refused for its inputs, not for its app.
    within_a_second("the publish", published, || async {
        let response = two.post("/api/apps/csv-report/run");
        let response = response
            .json(&json!({ "inputs": {} }))
            .send()
            .await
            .unwrap();
        response.status() == 400
    })
    .await;

    // Sent to host two, which records the input file.
    let csv = b"name,score\nada,3\ngrace,5\n".to_vec();
    let form = reqwest::multipart::Form::new()
        .text("inputs", r#"{"title":"Scores"}"#)
        .part(
            "csv",
            reqwest::multipart::Part::bytes(csv.clone()).file_name("scores.csv"),
        );
    let response = two
        .post("/api/apps/csv-report/run?wait=true")
        .bearer_auth(TOKEN)
        .multipart(form)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let envelope: Value = response.json().await.unwrap();
    assert_eq!(envelope["status"], "succeeded", "{envelope}");
    assert_eq!(envelope["output"]["rows"], 2);
    let id = envelope["execution_id"].as_str().unwrap();

    // Every host serves the input, each artifact, the zip, and the URLs either lists.
    let mut urls = Vec::new();
    let mut report = None;
    for server in [&one, &two] {
        let (status, detail) = admin_bytes(server, &format!("/api/executions/{id}")).await;
        assert_eq!(status, 200);
        let detail: Value = serde_json::from_slice(&detail).unwrap();
        let input = &detail["input_files"][0];
        assert_eq!(input["name"], "csv.csv");
        let (status, body) =
            admin_bytes(server, &format!("/api/executions/{id}/inputs/csv.csv")).await;
        assert_eq!((status, body), (200, csv.clone()));
        let artifacts = detail["artifacts"].as_array().unwrap();
        let names: Vec<&str> = artifacts
            .iter()
            .map(|a| a["name"].as_str().unwrap())
            .collect();
        assert_eq!(names, ["chart.svg", "report.md"]);
        for artifact in artifacts {
            let name = artifact["name"].as_str().unwrap();
            let (status, body) =
                admin_bytes(server, &format!("/api/executions/{id}/artifacts/{name}")).await;
            assert_eq!(status, 200, "{name}");
            assert_eq!(
                hex::encode(<sha2::Sha256 as sha2::Digest>::digest(&body)),
                artifact["sha256"].as_str().unwrap(),
                "{name}"
            );
            if name == "report.md" {
                report = Some(body);
            }
            urls.push(artifact["url"].as_str().unwrap().to_owned());
        }
        urls.push(input["url"].as_str().unwrap().to_owned());
        let (status, zip) =
            admin_bytes(server, &format!("/api/executions/{id}/artifacts.zip")).await;
        assert_eq!(status, 200);
        assert!(zip.starts_with(b"PK"));
    }
    let report = String::from_utf8(report.unwrap()).unwrap();
    assert!(report.starts_with("# Scores\n"), "{report}");
    for server in [&one, &two] {
        for url in &urls {
            let response = server.get(url).send().await.unwrap();
            assert_eq!(response.status(), 200, "{url}");
        }
    }
}
