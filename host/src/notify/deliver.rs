//! One HTTP attempt at a delivery, through the runtime's outbound checker
//! ([`floom_runtime::connect`]): http or https, public addresses unless the operator
//! allows private ones, the connection made to a checked address, no redirects followed
//! (a 3xx is an answer like any other non-2xx).
//!
//! Connections are kept alive between deliveries to the same destination (a few idle
//! ones each, for a while), as webhook senders do: a receiver that gets every run's
//! notification is not connected to anew each time. A connection is only ever made
//! through the checker, so reusing one never reaches an address it would refuse.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use bytes::Bytes;
use floom_runtime::Destination;
use http_body_util::{BodyExt as _, Full, Limited};
use hyper::Request;
use hyper::client::conn::http1::SendRequest;
use hyper::header::{CONTENT_TYPE, HOST, HeaderValue, USER_AGENT};
use hyper_util::rt::TokioIo;

/// Response heads larger than this are refused (hyper's minimum buffer is 8 KiB).
const MAX_RESPONSE_HEAD: usize = 16 << 10;
/// A response body up to this size is read, so its connection can carry the next
/// delivery; a larger one closes the connection.
const MAX_DRAINED_BODY: usize = 64 << 10;
/// Idle connections kept per destination: as many as the notifier has attempts out at
/// once, so a claim's deliveries to one receiver all go over kept connections (with 4,
/// half of a busy receiver's deliveries connected anew).
const IDLE_PER_DESTINATION: usize = super::CONCURRENCY;
/// Destinations with idle connections kept at most.
const MAX_DESTINATIONS: usize = 64;
/// How long an idle connection is kept.
const IDLE_FOR: Duration = Duration::from_secs(30);

/// A destination as connections are kept: host, port, TLS.
type Key = (String, u16, bool);
/// A kept connection, and since when it is idle.
type Idle = (SendRequest<Full<Bytes>>, Instant);

/// Idle keep-alive connections, by destination.
#[derive(Default)]
pub struct Connections {
    idle: Mutex<HashMap<Key, Vec<Idle>>>,
}

impl Connections {
    fn idle(&self) -> std::sync::MutexGuard<'_, HashMap<Key, Vec<Idle>>> {
        self.idle.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// An idle connection to `destination` that can take a request now.
    fn take(&self, destination: &Destination) -> Option<SendRequest<Full<Bytes>>> {
        let mut idle = self.idle();
        let key = key(destination);
        let kept = idle.get_mut(&key)?;
        let found = std::iter::from_fn(|| kept.pop())
            .find(|(sender, since)| since.elapsed() < IDLE_FOR && !sender.is_closed())
            .map(|(sender, _)| sender);
        if kept.is_empty() {
            idle.remove(&key);
        }
        found
    }

    /// Keeps `sender` for the next delivery to `destination`, within the bounds.
    fn put(&self, destination: &Destination, sender: SendRequest<Full<Bytes>>) {
        let mut idle = self.idle();
        if idle.len() >= MAX_DESTINATIONS {
            // Drop what has gone stale; if every destination is fresh, keep none more.
            idle.retain(|_, kept| {
                kept.retain(|(_, since)| since.elapsed() < IDLE_FOR);
                !kept.is_empty()
            });
            if idle.len() >= MAX_DESTINATIONS {
                return;
            }
        }
        let kept = idle.entry(key(destination)).or_default();
        if kept.len() < IDLE_PER_DESTINATION {
            kept.push((sender, Instant::now()));
        }
    }

    /// POSTs `body` with `headers` to `url` within `timeout` (connecting, sending and
    /// the response's head); returns the HTTP status, or what failed.
    pub async fn post(
        &self,
        url: &str,
        allow_private: bool,
        headers: &[(&'static str, String)],
        body: Bytes,
        timeout: Duration,
    ) -> Result<u16, String> {
        let uri: hyper::Uri = url
            .parse()
            .map_err(|e| format!("the URL is not valid: {e}"))?;
        let destination = Destination::of(&uri).map_err(|e| e.to_string())?;
        let request = || request(&uri, &destination, headers, body.clone());
        let attempt = async {
            if let Some(mut sender) = self.take(&destination) {
                // A kept connection the receiver closed meanwhile fails at once; the
                // delivery then goes over a new one (receivers drop repeats by
                // `webhook-id`).
                if sender.ready().await.is_ok()
                    && let Ok(status) = self.send(&destination, sender, request()?).await
                {
                    return Ok(status);
                }
            }
            let stream = floom_runtime::connect(&destination, allow_private, timeout)
                .await
                .map_err(|e| e.to_string())?;
            let (sender, connection) = hyper::client::conn::http1::Builder::new()
                .max_buf_size(MAX_RESPONSE_HEAD)
                .handshake::<_, Full<Bytes>>(TokioIo::new(stream))
                .await
                .map_err(|e| format!("HTTP handshake failed: {e}"))?;
            // The connection is driven until it closes (or its last sender is dropped).
            tokio::spawn(connection);
            self.send(&destination, sender, request()?).await
        };
        tokio::time::timeout(timeout, attempt)
            .await
            .unwrap_or_else(|_| Err(format!("no answer within {} s", timeout.as_secs())))
    }

    /// Sends `request` on `sender`; keeps the connection when its answer was read whole.
    async fn send(
        &self,
        destination: &Destination,
        mut sender: SendRequest<Full<Bytes>>,
        request: Request<Full<Bytes>>,
    ) -> Result<u16, String> {
        let response = sender
            .send_request(request)
            .await
            .map_err(|e| format!("the request failed: {e}"))?;
        let status = response.status().as_u16();
        // The answer's body is read (a little of it) only so the connection can be kept.
        let drained = Limited::new(response.into_body(), MAX_DRAINED_BODY)
            .collect()
            .await
            .is_ok();
        if drained && !sender.is_closed() {
            self.put(destination, sender);
        }
        Ok(status)
    }
}

fn key(destination: &Destination) -> Key {
    (destination.host.clone(), destination.port, destination.tls)
}

fn request(
    uri: &hyper::Uri,
    destination: &Destination,
    headers: &[(&'static str, String)],
    body: Bytes,
) -> Result<Request<Full<Bytes>>, String> {
    let path = uri.path_and_query().map_or("/", |p| p.as_str());
    let mut request = Request::post(path)
        .body(Full::new(body))
        .map_err(|e| format!("cannot build the request: {e}"))?;
    let authority = uri
        .authority()
        .map_or(destination.host.as_str(), |a| a.as_str());
    let request_headers = request.headers_mut();
    request_headers.insert(
        HOST,
        HeaderValue::from_str(authority).map_err(|e| format!("bad host: {e}"))?,
    );
    request_headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    request_headers.insert(
        USER_AGENT,
        HeaderValue::from_static(concat!("floom-webhooks/", env!("CARGO_PKG_VERSION"))),
    );
    for (name, value) in headers {
        request_headers.insert(
            *name,
            HeaderValue::from_str(value).map_err(|e| format!("bad header {name}: {e}"))?,
        );
    }
    Ok(request)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

    use super::*;

    /// A receiver on 127.0.0.1 answering 204 to every request, closing each connection
    /// after one answer when `close`; counts the connections it accepted.
    async fn receiver(close: bool) -> (String, Arc<AtomicUsize>) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/hook", listener.local_addr().unwrap());
        let accepted = Arc::new(AtomicUsize::new(0));
        let count = accepted.clone();
        tokio::spawn(async move {
            while let Ok((mut socket, _)) = listener.accept().await {
                count.fetch_add(1, Ordering::SeqCst);
                tokio::spawn(async move {
                    let mut buffer = Vec::new();
                    let mut chunk = [0u8; 4096];
                    loop {
                        let Ok(n) = socket.read(&mut chunk).await else {
                            return;
                        };
                        if n == 0 {
                            return;
                        }
                        buffer.extend_from_slice(&chunk[..n]);
                        // Each test request is one head and a 2-byte body.
                        while let Some(end) = buffer.windows(4).position(|w| w == b"\r\n\r\n") {
                            if buffer.len() < end + 4 + 2 {
                                break;
                            }
                            buffer.drain(..end + 4 + 2);
                            let answer: &[u8] = if close {
                                b"HTTP/1.1 204 No Content\r\nconnection: close\r\n\r\n"
                            } else {
                                b"HTTP/1.1 204 No Content\r\n\r\n"
                            };
                            if socket.write_all(answer).await.is_err() || close {
                                return;
                            }
                        }
                    }
                });
            }
        });
        (url, accepted)
    }

    async fn deliver(connections: &Connections, url: &str) -> Result<u16, String> {
        connections
            .post(
                url,
                true,
                &[],
                Bytes::from_static(b"{}"),
                Duration::from_secs(5),
            )
            .await
    }

    #[tokio::test]
    async fn one_connection_carries_many_deliveries() {
        let (url, accepted) = receiver(false).await;
        let connections = Connections::default();
        for _ in 0..5 {
            assert_eq!(deliver(&connections, &url).await, Ok(204));
        }
        assert_eq!(accepted.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn a_receiver_that_closes_each_connection_still_gets_every_delivery() {
        let (url, accepted) = receiver(true).await;
        let connections = Connections::default();
        for _ in 0..5 {
            assert_eq!(deliver(&connections, &url).await, Ok(204));
        }
        assert_eq!(accepted.load(Ordering::SeqCst), 5);
    }
}
