//! Hostile and broken clients: each gets a bounded, clear answer (or a closed
//! connection) in bounded time, and costs the server bounded memory.

mod support;

use std::time::{Duration, Instant};

use serde_json::{Value, json};
use support::Server;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Short timeouts so the tests take seconds.
const ARGS: &[&str] = &[
    "--examples=rust",
    "--header-timeout-s",
    "2",
    "--body-timeout-s",
    "2",
    "--write-timeout-s",
    "2",
    "--runs-per-minute",
    "0",
];

fn address(server: &Server) -> String {
    server.base.trim_start_matches("http://").to_owned()
}

/// Reads until the server closes the connection (or `limit` passes); returns what came.
async fn read_to_close(stream: &mut TcpStream, limit: Duration) -> (String, Duration) {
    let started = Instant::now();
    let mut seen = Vec::new();
    let mut buf = [0u8; 16 << 10];
    loop {
        match tokio::time::timeout(
            limit.saturating_sub(started.elapsed()),
            stream.read(&mut buf),
        )
        .await
        {
            Ok(Ok(0)) | Ok(Err(_)) => break,
            Ok(Ok(n)) => seen.extend_from_slice(&buf[..n]),
            Err(_) => panic!(
                "the connection was still open after {limit:?}; got {:?}",
                String::from_utf8_lossy(&seen)
            ),
        }
    }
    (
        String::from_utf8_lossy(&seen).into_owned(),
        started.elapsed(),
    )
}

#[tokio::test]
async fn slow_and_idle_connections_are_closed() {
    let server = Server::start(ARGS);
    // Idle: connected, never sends a byte.
    let mut idle = TcpStream::connect(address(&server)).await.unwrap();
    // Slow loris: a header line every 500 ms, never finishing.
    let mut loris = TcpStream::connect(address(&server)).await.unwrap();
    loris
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
        .await
        .unwrap();
    let trickle = tokio::spawn(async move {
        for i in 0..40 {
            if loris
                .write_all(format!("X-Slow-{i}: y\r\n").as_bytes())
                .await
                .is_err()
            {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        false
    });
    let (_, idle_closed) = read_to_close(&mut idle, Duration::from_secs(10)).await;
    assert!(
        idle_closed >= Duration::from_millis(1500),
        "{idle_closed:?}"
    );
    assert!(trickle.await.unwrap(), "the slow-loris connection was cut");

    // A keep-alive connection that goes quiet after a request is closed too.
    let mut quiet = TcpStream::connect(address(&server)).await.unwrap();
    quiet
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let (answer, _) = read_to_close(&mut quiet, Duration::from_secs(10)).await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
}

#[tokio::test]
async fn a_body_trickled_in_gets_408() {
    let server = Server::start(ARGS);
    let mut stream = TcpStream::connect(address(&server)).await.unwrap();
    stream
        .write_all(
            b"POST /api/apps/hello/run HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n\
              Content-Length: 1000\r\n\r\n{\"inputs\":",
        )
        .await
        .unwrap();
    let started = Instant::now();
    let mut answer = String::new();
    let mut buf = [0u8; 4096];
    // One byte every 200 ms: it never stalls long, but never finishes in time.
    while started.elapsed() < Duration::from_secs(10) {
        let _ = stream.write_all(b" ").await;
        if let Ok(Ok(n)) =
            tokio::time::timeout(Duration::from_millis(200), stream.read(&mut buf)).await
        {
            answer.push_str(&String::from_utf8_lossy(&buf[..n]));
            if n == 0 || answer.contains("\r\n\r\n{") {
                break;
            }
        }
    }
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(answer.contains("application/problem+json"), "{answer}");
    assert!(answer.contains("did not arrive in time"), "{answer}");
    assert!(started.elapsed() < Duration::from_secs(5));
}

#[tokio::test]
async fn oversized_headers_get_431_and_huge_bodies_413() {
    let server = Server::start(ARGS);
    let mut stream = TcpStream::connect(address(&server)).await.unwrap();
    let header = "a".repeat(100 << 10);
    let request = format!("GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: {header}\r\n\r\n");
    let _ = stream.write_all(request.as_bytes()).await;
    let (answer, _) = read_to_close(&mut stream, Duration::from_secs(10)).await;
    assert!(answer.starts_with("HTTP/1.1 431"), "{answer:.200}");

    let huge = json!({ "inputs": { "name": "x".repeat(8 << 20) } });
    let response = server
        .post("/api/apps/hello/run")
        .json(&huge)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 413);
}

#[tokio::test]
async fn malformed_bodies_and_paths_get_clear_problems() {
    let server = Server::start(ARGS);
    let post_raw = |body: Vec<u8>| {
        server
            .post("/api/apps/hello/run")
            .header("content-type", "application/json")
            .body(body)
    };
    let problem = |response: reqwest::Response, status: u16| async move {
        assert_eq!(response.status().as_u16(), status);
        let body: Value = response.json().await.unwrap();
        body["detail"].as_str().unwrap().to_owned()
    };
    // 100,000 levels of nesting.
    let deep = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
    let detail = problem(
        post_raw(format!("{{\"inputs\":{{\"name\":{deep}}}}}").into_bytes())
            .send()
            .await
            .unwrap(),
        400,
    )
    .await;
    assert!(detail.contains("recursion limit"), "{detail}");
    // Invalid UTF-8.
    let detail = problem(
        post_raw(b"{\"inputs\":{\"name\":\"\xff\xfe\"}}".to_vec())
            .send()
            .await
            .unwrap(),
        400,
    )
    .await;
    assert!(detail.contains("not valid JSON"), "{detail}");
    // Nearly 1 MiB of valid JSON: parsed, validated against the schema, refused there.
    let wide: Vec<u32> = (0..150_000).collect();
    let detail = problem(
        post_raw(serde_json::to_vec(&json!({ "inputs": { "name": wide } })).unwrap())
            .send()
            .await
            .unwrap(),
        400,
    )
    .await;
    assert!(detail.contains("input_schema"), "{detail}");

    // Path traversal in slugs and secret names.
    for path in [
        "/api/apps/..%2F..%2Fetc%2Fpasswd",
        "/api/apps/%2e%2e/run",
        "/api/apps/hello%00/run",
    ] {
        let response = server.admin_get(path).send().await.unwrap();
        assert!(
            matches!(response.status().as_u16(), 400 | 404 | 405),
            "{path}: {}",
            response.status()
        );
        let body: Value = response.json().await.unwrap();
        assert!(body["detail"].is_string(), "{path}: {body}");
    }
    for name in ["..%2F..%2Fmaster-key", "%2e%2e", "A%2FB", "..", "%00"] {
        let response = server
            .http
            .put(server.url(&format!("/api/apps/hello/secrets/{name}")))
            .bearer_auth(support::TOKEN)
            .json(&json!({ "value": "x" }))
            .send()
            .await
            .unwrap();
        let status = response.status().as_u16();
        assert!(matches!(status, 400 | 404 | 405), "{name}: {status}");
        let body: Value = response.json().await.unwrap();
        assert!(body["detail"].is_string(), "{name}: {body}");
    }
    let listed: Value = server
        .admin_get("/api/apps/hello/secrets")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(listed["data"], json!([]), "no secret was stored: {listed}");
    assert!(
        server.data_dir.join("master-key").exists(),
        "nothing outside the API was touched"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_never_reads_its_stream_is_dropped() {
    let server = Server::start(ARGS);
    server.publish_misbehave("chatty", "").await;
    let rss_before = server.rss_bytes() >> 10;
    let mut streams = Vec::new();
    for _ in 0..20 {
        // 200,000 chunks, streamed to a client that reads nothing.
        let mut stream = TcpStream::connect(address(&server)).await.unwrap();
        let body = json!({ "inputs": { "count": 200_000 } }).to_string();
        stream
            .write_all(
                format!(
                    "POST /api/apps/chatty/actions/emit/run?stream=true HTTP/1.1\r\nHost: x\r\n\
                     Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
                    body.len()
                )
                .as_bytes(),
            )
            .await
            .unwrap();
        streams.push(stream);
    }
    // Meanwhile the server answers others.
    tokio::time::sleep(Duration::from_secs(4)).await;
    let started = Instant::now();
    server.health().await;
    assert!(started.elapsed() < Duration::from_secs(1));
    let rss_after = server.rss_bytes() >> 10;
    println!(
        "20 never-reading SSE clients: server RSS {} -> {} MiB",
        rss_before >> 10,
        rss_after >> 10
    );
    assert!(
        rss_after < rss_before + (256 << 10),
        "RSS grew {} MiB",
        (rss_after - rss_before) >> 10
    );
    // Each was dropped once its writes stalled past the write timeout: reading now
    // drains what the kernel buffered and then ends.
    for mut stream in streams {
        read_to_close(&mut stream, Duration::from_secs(30)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn thousands_of_idle_connections_cost_little_and_go_away() {
    let server = Server::start(ARGS);
    let rss_before = server.rss_bytes() >> 10;
    let mut idle = Vec::new();
    for _ in 0..3_000 {
        idle.push(TcpStream::connect(address(&server)).await.unwrap());
    }
    // Each accepted, none sending anything.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let rss_idle = server.rss_bytes() >> 10;
    let started = Instant::now();
    let run = server
        .run_sync("/api/apps/hello/run", json!({ "name": "Ada" }))
        .await;
    assert_eq!(run["status"], "succeeded");
    println!(
        "3,000 idle connections: server RSS {} -> {} MiB ({} KiB each); a run meanwhile took {:?}",
        rss_before >> 10,
        rss_idle >> 10,
        rss_idle.saturating_sub(rss_before) / 3_000,
        started.elapsed()
    );
    assert!(rss_idle < rss_before + (100 << 10), "RSS {rss_idle} KiB");
    // All closed by the server after the header timeout.
    for stream in &mut idle {
        read_to_close(stream, Duration::from_secs(10)).await;
    }
}

#[tokio::test]
async fn idle_http2_connections_are_closed_pings_or_not() {
    // Review finding 8: an idle h2c connection answering the server's pings stayed open
    // forever, so a few thousand of them held --max-connections.
    use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
    let server = Server::start(ARGS);
    let stream = TcpStream::connect(address(&server)).await.unwrap();
    let (mut sender, connection) = hyper::client::conn::http2::Builder::new(TokioExecutor::new())
        .timer(TokioTimer::new())
        // The client pings too, and answers the server's: neither is activity.
        .keep_alive_interval(Duration::from_millis(300))
        .keep_alive_while_idle(true)
        .handshake::<_, String>(TokioIo::new(stream))
        .await
        .unwrap();
    let started = Instant::now();
    let closed = tokio::spawn(async move {
        let _ = connection.await;
        started.elapsed()
    });
    let request = hyper::Request::get(format!("{}/healthz", server.base))
        .body(String::new())
        .unwrap();
    let response = sender.send_request(request).await.unwrap();
    assert_eq!(response.status(), 200, "HTTP/2 works");
    // Then nothing but pings: closed after the 2 s idle timeout.
    let took = tokio::time::timeout(Duration::from_secs(10), closed)
        .await
        .expect("the idle HTTP/2 connection was never closed")
        .unwrap();
    assert!(
        took >= Duration::from_secs(2) && took < Duration::from_secs(5),
        "{took:?}"
    );

    // A request in flight longer than the idle timeout (a stream following a 3 s run)
    // is not cut.
    server.publish_misbehave("slow", "").await;
    let stream = TcpStream::connect(address(&server)).await.unwrap();
    let (mut sender, connection) = hyper::client::conn::http2::Builder::new(TokioExecutor::new())
        .handshake::<_, String>(TokioIo::new(stream))
        .await
        .unwrap();
    tokio::spawn(connection);
    let request = hyper::Request::post(format!(
        "{}/api/apps/slow/actions/sleep/run?stream=true",
        server.base
    ))
    .header("content-type", "application/json")
    .body(json!({ "inputs": { "ms": 3000 } }).to_string())
    .unwrap();
    let response = sender.send_request(request).await.unwrap();
    assert_eq!(response.status(), 200);
    let body = http_body_util::BodyExt::collect(response.into_body())
        .await
        .unwrap()
        .to_bytes();
    let body = String::from_utf8_lossy(&body);
    assert!(body.contains("event: end"), "{body}");
}
