//! One HTTP attempt at a delivery, through the runtime's outbound checker
//! ([`floom_runtime::connect`]): http or https, public addresses unless the operator
//! allows private ones, the connection made to a checked address, no redirects followed
//! (a 3xx is an answer like any other non-2xx).

use std::time::Duration;

use bytes::Bytes;
use floom_runtime::Destination;
use http_body_util::Full;
use hyper::Request;
use hyper::header::{CONTENT_TYPE, HOST, HeaderValue, USER_AGENT};
use hyper_util::rt::TokioIo;

/// Response heads larger than this are refused (hyper's minimum buffer is 8 KiB).
const MAX_RESPONSE_HEAD: usize = 16 << 10;

/// POSTs `body` with `headers` to `url` within `timeout` (connecting, sending and the
/// response's head); returns the HTTP status, or what failed.
pub async fn post(
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
    let attempt = async {
        let stream = floom_runtime::connect(&destination, allow_private, timeout)
            .await
            .map_err(|e| e.to_string())?;
        let (mut sender, connection) = hyper::client::conn::http1::Builder::new()
            .max_buf_size(MAX_RESPONSE_HEAD)
            .handshake::<_, Full<Bytes>>(TokioIo::new(stream))
            .await
            .map_err(|e| format!("HTTP handshake failed: {e}"))?;
        // The connection is driven until the answer's head is in, then dropped with it.
        let driver = tokio::spawn(connection);
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
        let response = sender.send_request(request).await;
        driver.abort();
        response
            .map(|r| r.status().as_u16())
            .map_err(|e| format!("the request failed: {e}"))
    };
    tokio::time::timeout(timeout, attempt)
        .await
        .unwrap_or_else(|_| Err(format!("no answer within {} s", timeout.as_secs())))
}
