//! Hostile schemas and inputs: a pathological `input_schema` is refused at publish with a
//! message naming the rule, a costly input gets a 413 in bounded time, validation leaves
//! `/healthz` answering, and no answer is much larger than a short page.

mod support;

use std::time::{Duration, Instant};

use floom_tests::guests;
use serde_json::{Map, Value, json};
use support::Server;

const ARGS: &[&str] = &["--runs-per-minute", "0"];

/// `value` as a TOML inline value (the schemas here have no nulls).
fn toml(value: &Value) -> String {
    match value {
        Value::Object(map) => {
            let entries: Vec<String> = map
                .iter()
                .map(|(k, v)| format!("{} = {}", Value::from(k.as_str()), toml(v)))
                .collect();
            format!("{{ {} }}", entries.join(", "))
        }
        Value::Array(items) => {
            let items: Vec<String> = items.iter().map(toml).collect();
            format!("[{}]", items.join(", "))
        }
        other => other.to_string(),
    }
}

/// A public app `slug` (the hello guest) whose `run` action has `schema` as input_schema.
fn manifest(slug: &str, schema: &Value) -> String {
    format!(
        "slug = {slug:?}\npublic = true\n[actions.run]\ninput_schema = {}\n",
        toml(schema)
    )
}

async fn problem(response: reqwest::Response, status: u16, code: &str) -> (Value, usize) {
    assert_eq!(response.status().as_u16(), status);
    assert_eq!(
        response.headers()["content-type"],
        "application/problem+json"
    );
    let bytes = response.bytes().await.unwrap();
    let body: Value = serde_json::from_slice(&bytes).unwrap();
    assert_eq!(body["code"], code, "{body}");
    (body, bytes.len())
}

/// The finding's schema: `$defs` d0..d20, each `anyOf` of two `$ref`s to the next.
fn any_of_chain(depth: usize) -> Value {
    let mut defs = Map::new();
    for i in 0..depth {
        let next = format!("#/$defs/d{}", i + 1);
        defs.insert(
            format!("d{i}"),
            json!({"anyOf": [{"$ref": next}, {"$ref": next}]}),
        );
    }
    defs.insert(format!("d{depth}"), json!({"type": "number"}));
    json!({"type": "object", "properties": {"x": {"$ref": "#/$defs/d0"}}, "$defs": defs})
}

/// Passes publish, but doubles the work per level of nesting of `x`.
fn doubling_per_level() -> Value {
    json!({
        "type": "object",
        "properties": {"x": {"$ref": "#/$defs/t"}},
        "$defs": {"t": {"type": ["array", "number"],
            "items": {"anyOf": [{"$ref": "#/$defs/t"}, {"$ref": "#/$defs/t"}]}}},
    })
}

/// `depth` arrays around "bad": every branch fails, so the validator tries them all.
fn nested(depth: usize) -> Value {
    let mut value = json!("bad");
    for _ in 0..depth {
        value = Value::Array(vec![value]);
    }
    value
}

/// Items that must be strings, for bodies of many wrong items.
fn strings() -> Value {
    json!({"type": "object", "properties": {"xs": {"type": "array", "items": {"type": "string"}}}})
}

/// A body just under 1 MiB: `{"inputs":{"xs":[0,0,...]}}`, 520,000 wrong items.
fn wrong_items() -> Vec<u8> {
    let mut body = br#"{"inputs":{"xs":["#.to_vec();
    body.extend(std::iter::repeat_n(&b"0,"[..], 519_999).flatten());
    body.extend_from_slice(b"0]}}");
    assert!(body.len() < 1 << 20);
    body
}

async fn run(server: &Server, slug: &str, body: Vec<u8>) -> reqwest::Response {
    server
        .post(&format!("/api/apps/{slug}/run"))
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn pathological_schemas_are_refused_at_publish_naming_the_rule() {
    let server = Server::start(ARGS);
    let cases = [
        (any_of_chain(20), "in-place expansion"),
        (
            json!({"properties": {"x": {"type": "string", "pattern": r"^(a|a)+\1$"}}}),
            "backreferences are not supported",
        ),
        (
            json!({"properties": {"x": {"$ref": "https://example.com/s.json"}}}),
            "is not a JSON pointer into this schema",
        ),
        (
            json!({"$defs": {"a": {"allOf": [{"$ref": "#/$defs/b"}]}, "b": {"$ref": "#/$defs/a"}},
                "properties": {"x": {"$ref": "#/$defs/a"}}}),
            "cycle",
        ),
        (
            json!({"anyOf": vec![json!({"type": "object"}); 129]}),
            "fan-out",
        ),
    ];
    for (schema, rule) in cases {
        let started = Instant::now();
        let response = server
            .publish(&manifest("bomb", &schema), guests::HELLO)
            .await;
        let (body, _) = problem(response, 400, "invalid_manifest").await;
        let detail = body["detail"].as_str().unwrap();
        assert!(detail.contains("actions.run.input_schema"), "{detail}");
        assert!(detail.contains(rule), "{rule}: {detail}");
        assert!(started.elapsed() < Duration::from_secs(5));
    }
    // Nothing was published.
    let response = server.get("/api/apps/bomb").send().await.unwrap();
    assert_eq!(response.status(), 404);
}

#[tokio::test]
async fn a_costly_input_is_refused_with_413_in_bounded_time() {
    let server = Server::start(ARGS);
    let response = server
        .publish(&manifest("doubling", &doubling_per_level()), guests::HELLO)
        .await;
    assert_eq!(response.status(), 201, "{}", response.text().await.unwrap());

    // A shallow input validates (and runs).
    let body = json!({"inputs": {"x": [[1, 2], [3]]}})
        .to_string()
        .into_bytes();
    assert_eq!(run(&server, "doubling", body).await.status(), 202);

    // 40 levels where every branch fails: 2^40 evaluations for the validator.
    let started = Instant::now();
    let body = json!({"inputs": {"x": nested(40)}})
        .to_string()
        .into_bytes();
    let (problem, _) = problem(
        run(&server, "doubling", body).await,
        413,
        "payload_too_large",
    )
    .await;
    let elapsed = started.elapsed();
    assert!(elapsed < Duration::from_secs(2), "{elapsed:?}");
    assert!(
        problem["detail"].as_str().unwrap().contains("budget"),
        "{problem}"
    );
    // Only the valid run was created.
    let page: Value = server
        .admin_get("/api/executions?app=doubling")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(page["data"].as_array().unwrap().len(), 1, "{page}");
}

#[tokio::test]
async fn healthz_answers_while_costly_validations_run() {
    let server = Server::start(ARGS);
    for (slug, schema) in [("strings", strings()), ("doubling", doubling_per_level())] {
        let response = server
            .publish(&manifest(slug, &schema), guests::HELLO)
            .await;
        assert_eq!(response.status(), 201, "{}", response.text().await.unwrap());
    }
    let server = std::sync::Arc::new(server);
    // Each of these keeps a validation thread busy for a good part of a second.
    let mut costly = Vec::new();
    for i in 0..6 {
        let server = server.clone();
        costly.push(tokio::spawn(async move {
            let (slug, body) = if i % 2 == 0 {
                ("strings", wrong_items())
            } else {
                let body = json!({"inputs": {"x": nested(60)}});
                ("doubling", body.to_string().into_bytes())
            };
            run(&server, slug, body).await.status().as_u16()
        }));
    }
    let mut slowest = Duration::ZERO;
    let started = Instant::now();
    while !costly.iter().all(|task| task.is_finished())
        && started.elapsed() < Duration::from_secs(30)
    {
        let asked = Instant::now();
        server.health().await;
        slowest = slowest.max(asked.elapsed());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    for task in costly {
        let status = task.await.unwrap();
        assert!(matches!(status, 400 | 413 | 429), "{status}");
    }
    assert!(
        slowest < Duration::from_secs(1),
        "/healthz took {slowest:?}"
    );
}

#[tokio::test]
async fn errors_are_capped_and_counted() {
    let server = Server::start(ARGS);
    let response = server
        .publish(&manifest("strings", &strings()), guests::HELLO)
        .await;
    assert_eq!(response.status(), 201, "{}", response.text().await.unwrap());

    let started = Instant::now();
    let (body, size) = problem(
        run(&server, "strings", wrong_items()).await,
        400,
        "invalid_input",
    )
    .await;
    assert_eq!(body["errors"].as_array().unwrap().len(), 100);
    assert_eq!(body["errors_omitted"], 520_000 - 100);
    assert!(size < 64 << 10, "the problem is {size} bytes");
    assert!(started.elapsed() < Duration::from_secs(5));
    let detail = body["detail"].as_str().unwrap();
    assert!(detail.contains("520000 problems"), "{detail}");
}

#[tokio::test]
async fn a_long_value_gets_a_short_message() {
    let server = Server::start(ARGS);
    let schema = json!({"type": "object", "properties": {"n": {"type": "number"}}});
    let response = server
        .publish(&manifest("number", &schema), guests::HELLO)
        .await;
    assert_eq!(response.status(), 201, "{}", response.text().await.unwrap());

    let long = "x".repeat((1 << 20) - 100);
    let body = json!({"inputs": {"n": long}}).to_string().into_bytes();
    let (body, size) = problem(run(&server, "number", body).await, 400, "invalid_input").await;
    let message = body["errors"][0]["message"].as_str().unwrap();
    assert!(message.len() < 100 && !message.contains("xxx"), "{message}");
    assert!(size < 1 << 10, "the problem is {size} bytes");
}

#[tokio::test]
async fn details_that_quote_client_input_are_capped() {
    let server = Server::start(ARGS);
    let schema = json!({"type": "object"});
    let response = server
        .publish(&manifest("plain", &schema), guests::HELLO)
        .await;
    assert_eq!(response.status(), 201, "{}", response.text().await.unwrap());
    let long = "a".repeat(900 << 10);
    let bodies = [
        // An unknown action, named in the answer.
        json!({"action": long, "inputs": {}}),
        // An unknown field, named by the JSON error.
        json!({ long.as_str(): 1 }),
    ];
    for body in bodies {
        let body = body.to_string().into_bytes();
        let (problem, size) =
            problem(run(&server, "plain", body).await, 400, "invalid_input").await;
        assert!(size < 5 << 10, "the problem is {size} bytes");
        assert!(
            problem["detail"].as_str().unwrap().ends_with('…'),
            "{problem}"
        );
    }
    // A long path, echoed in a 404.
    let path = format!("/api/executions/{}", "b".repeat(60 << 10));
    let response = server.get(&path).send().await.unwrap();
    let (_, size) = problem(response, 404, "not_found").await;
    assert!(size < 5 << 10, "the problem is {size} bytes");
}
