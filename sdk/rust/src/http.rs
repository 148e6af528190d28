//! A small HTTP client on `wasi:http`, for apps whose manifest lists the hosts they call
//! (`[network] allowed_hosts`). The host checks every request, redirects included; a
//! refused one comes back as an [`Error`] with code `request_denied`.
//!
//! ```no_run
//! use serde::Deserialize;
//!
//! #[derive(Deserialize)]
//! struct Repo {
//!     stargazers_count: u64,
//! }
//!
//! # fn demo() -> Result<(), floom_sdk::Error> {
//! let token = floom_sdk::secret("GITHUB_TOKEN").unwrap_or_default();
//! let repo: Repo = floom_sdk::http::Request::get("https://api.github.com/repos/rust-lang/rust")
//!     .header("accept", "application/vnd.github+json")
//!     .bearer(&token)
//!     .send()?
//!     .error_for_status()?
//!     .json()?;
//!
//! // Or read a large body as it arrives.
//! let mut total = 0;
//! for chunk in floom_sdk::http::get("https://example.com/big.csv")?.chunks() {
//!     total += chunk?.len();
//! }
//! # let _ = (repo.stargazers_count, total);
//! # Ok(()) }
//! ```

use serde::Serialize;
use serde::de::DeserializeOwned;
use wasip2::http::outgoing_handler;
use wasip2::http::types::{
    ErrorCode, Fields, IncomingBody, IncomingResponse, Method, OutgoingBody, OutgoingRequest,
    Scheme,
};
use wasip2::io::streams::{InputStream, StreamError};

use crate::Error;

/// Redirects followed by default (each one is a new request the host checks).
const MAX_REDIRECTS: u8 = 5;
/// Bytes asked for per read of a response body.
const READ_SIZE: u64 = 64 * 1024;

/// Sends a GET request.
pub fn get(url: &str) -> Result<Response, Error> {
    Request::get(url).send()
}

/// Sends a POST request with `body` as JSON.
pub fn post_json<T: Serialize + ?Sized>(url: &str, body: &T) -> Result<Response, Error> {
    Request::post(url).json(body)?.send()
}

/// An HTTP request being built.
#[derive(Debug, Clone)]
pub struct Request {
    method: String,
    url: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
    redirects: u8,
}

impl Request {
    /// A request with any method.
    pub fn new(method: &str, url: &str) -> Self {
        Request {
            method: method.to_ascii_uppercase(),
            url: url.to_owned(),
            headers: Vec::new(),
            body: Vec::new(),
            redirects: MAX_REDIRECTS,
        }
    }

    /// A GET request.
    pub fn get(url: &str) -> Self {
        Self::new("GET", url)
    }

    /// A POST request.
    pub fn post(url: &str) -> Self {
        Self::new("POST", url)
    }

    /// Adds a header.
    pub fn header(mut self, name: &str, value: &str) -> Self {
        self.headers.push((name.to_owned(), value.to_owned()));
        self
    }

    /// Adds `Authorization: Bearer <token>`.
    pub fn bearer(self, token: &str) -> Self {
        self.header("authorization", &format!("Bearer {token}"))
    }

    /// Sets a raw body.
    pub fn body(mut self, body: impl Into<Vec<u8>>) -> Self {
        self.body = body.into();
        self
    }

    /// Sets `value` as a JSON body (and its content type).
    pub fn json<T: Serialize + ?Sized>(self, value: &T) -> Result<Self, Error> {
        let body =
            serde_json::to_vec(value).map_err(|e| Error::new("invalid_body", e.to_string()))?;
        Ok(self.header("content-type", "application/json").body(body))
    }

    /// How many redirects to follow (default 5; 0 returns the 3xx response itself).
    pub fn redirects(mut self, max: u8) -> Self {
        self.redirects = max;
        self
    }

    /// Sends the request and waits for the response's status and headers.
    pub fn send(self) -> Result<Response, Error> {
        let mut url = self.url.clone();
        let mut method = self.method.clone();
        let mut body = self.body.clone();
        for _ in 0..=self.redirects {
            let response = send_once(&method, &url, &self.headers, &body)?;
            let location = response.header("location").map(str::to_owned);
            match (response.status(), location) {
                (301 | 302 | 303 | 307 | 308, Some(location)) => {
                    url = resolve(&url, &location);
                    // 303, and 301/302 after a POST, become a GET without a body.
                    if response.status() == 303 || (method == "POST" && response.status() < 303) {
                        method = "GET".to_owned();
                        body.clear();
                    }
                }
                _ => return Ok(response),
            }
        }
        Err(Error::new(
            "too_many_redirects",
            format!("more than {} redirects from {}", self.redirects, self.url),
        ))
    }
}

/// The parts of an absolute URL.
struct Url<'a> {
    https: bool,
    authority: &'a str,
    path: &'a str,
}

fn parse(url: &str) -> Result<Url<'_>, Error> {
    let invalid = || {
        Error::new(
            "invalid_url",
            format!("{url:?} is not an absolute http(s) URL"),
        )
    };
    let (scheme, rest) = url.split_once("://").ok_or_else(invalid)?;
    let https = match scheme.to_ascii_lowercase().as_str() {
        "https" => true,
        "http" => false,
        _ => return Err(invalid()),
    };
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, path) = rest.split_at(end);
    let path = path.split('#').next().unwrap_or("");
    if authority.is_empty() || authority.contains('@') {
        return Err(invalid());
    }
    Ok(Url {
        https,
        authority,
        path: if path.is_empty() { "/" } else { path },
    })
}

/// `location` resolved against `base` (absolute, or a path on the same origin).
fn resolve(base: &str, location: &str) -> String {
    if location.contains("://") {
        return location.to_owned();
    }
    match parse(base) {
        Ok(url) if location.starts_with('/') => format!(
            "{}://{}{location}",
            if url.https { "https" } else { "http" },
            url.authority
        ),
        Ok(url) => {
            let dir = url.path.rsplit_once('/').map_or("", |(dir, _)| dir);
            format!(
                "{}://{}{dir}/{location}",
                if url.https { "https" } else { "http" },
                url.authority
            )
        }
        Err(_) => location.to_owned(),
    }
}

fn http_error(code: ErrorCode) -> Error {
    match code {
        ErrorCode::HttpRequestDenied | ErrorCode::DestinationIpProhibited => Error::new(
            "request_denied",
            "the host refused the request: its host is not in the app's allowed_hosts, it resolves to a private address, or the run's request cap was reached",
        ),
        other => Error::new("http_error", format!("{other:?}")),
    }
}

fn send_once(
    method: &str,
    url: &str,
    headers: &[(String, String)],
    body: &[u8],
) -> Result<Response, Error> {
    let parsed = parse(url)?;
    let fields = Fields::new();
    for (name, value) in headers {
        fields
            .append(name, value.as_bytes())
            .map_err(|e| Error::new("invalid_header", format!("{name}: {e:?}")))?;
    }
    let request = OutgoingRequest::new(fields);
    let method = match method {
        "GET" => Method::Get,
        "POST" => Method::Post,
        "PUT" => Method::Put,
        "DELETE" => Method::Delete,
        "PATCH" => Method::Patch,
        "HEAD" => Method::Head,
        "OPTIONS" => Method::Options,
        other => Method::Other(other.to_owned()),
    };
    let rejected = |what: &str| Error::new("invalid_request", format!("the {what} was refused"));
    request
        .set_method(&method)
        .map_err(|()| rejected("method"))?;
    request
        .set_scheme(Some(if parsed.https {
            &Scheme::Https
        } else {
            &Scheme::Http
        }))
        .map_err(|()| rejected("scheme"))?;
    request
        .set_authority(Some(parsed.authority))
        .map_err(|()| rejected("authority"))?;
    request
        .set_path_with_query(Some(parsed.path))
        .map_err(|()| rejected("path"))?;
    let outgoing = request.body().map_err(|()| rejected("body"))?;
    let pending = outgoing_handler::handle(request, None).map_err(http_error)?;
    {
        let stream = outgoing.write().map_err(|()| rejected("body stream"))?;
        // `blocking_write_and_flush` takes at most 4096 bytes at a time.
        for piece in body.chunks(4096) {
            stream
                .blocking_write_and_flush(piece)
                .map_err(|e| Error::new("http_error", format!("writing the body: {e:?}")))?;
        }
    }
    OutgoingBody::finish(outgoing, None).map_err(http_error)?;
    pending.subscribe().block();
    let response = pending
        .get()
        .ok_or_else(|| Error::new("http_error", "no response"))?
        .map_err(|()| Error::new("http_error", "the response was already taken"))?
        .map_err(http_error)?;
    Response::new(response)
}

/// An HTTP response; the body is read on demand.
pub struct Response {
    status: u16,
    headers: Vec<(String, String)>,
    body: Option<BodyReader>,
}

/// The body stream with the resources it borrows from, dropped in order.
struct BodyReader {
    stream: InputStream,
    body: IncomingBody,
    _response: IncomingResponse,
}

impl Response {
    fn new(response: IncomingResponse) -> Result<Self, Error> {
        let status = response.status();
        let headers = response
            .headers()
            .entries()
            .into_iter()
            .map(|(name, value)| (name, String::from_utf8_lossy(&value).into_owned()))
            .collect();
        let unreadable = || Error::new("http_error", "the response body cannot be read");
        let body = response.consume().map_err(|()| unreadable())?;
        let stream = body.stream().map_err(|()| unreadable())?;
        Ok(Response {
            status,
            headers,
            body: Some(BodyReader {
                stream,
                body,
                _response: response,
            }),
        })
    }

    /// The status code.
    pub fn status(&self) -> u16 {
        self.status
    }

    /// The first value of a header (names are case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// Every header, in order.
    pub fn headers(&self) -> &[(String, String)] {
        &self.headers
    }

    /// An error with code `http_status` unless the status is 2xx.
    pub fn error_for_status(self) -> Result<Self, Error> {
        if (200..300).contains(&self.status) {
            Ok(self)
        } else {
            Err(Error::new(
                "http_status",
                format!("the server answered {}", self.status),
            ))
        }
    }

    /// The body as it arrives, in pieces of up to 64 KiB.
    pub fn chunks(mut self) -> impl Iterator<Item = Result<Vec<u8>, Error>> {
        let mut reader = self.body.take();
        std::iter::from_fn(move || {
            let current = reader.as_ref()?;
            match current.stream.blocking_read(READ_SIZE) {
                Ok(bytes) => Some(Ok(bytes)),
                Err(StreamError::Closed) => {
                    if let Some(BodyReader { stream, body, .. }) = reader.take() {
                        drop(stream);
                        drop(IncomingBody::finish(body));
                    }
                    None
                }
                Err(StreamError::LastOperationFailed(e)) => {
                    reader = None;
                    let detail = e.to_debug_string();
                    Some(Err(Error::new(
                        "http_error",
                        format!("reading the body: {}", detail.lines().next().unwrap_or("")),
                    )))
                }
            }
        })
    }

    /// The whole body.
    pub fn bytes(self) -> Result<Vec<u8>, Error> {
        let mut all = Vec::new();
        for chunk in self.chunks() {
            all.extend_from_slice(&chunk?);
        }
        Ok(all)
    }

    /// The whole body as text (invalid UTF-8 is replaced).
    pub fn text(self) -> Result<String, Error> {
        Ok(String::from_utf8_lossy(&self.bytes()?).into_owned())
    }

    /// The whole body as JSON.
    pub fn json<T: DeserializeOwned>(self) -> Result<T, Error> {
        serde_json::from_slice(&self.bytes()?)
            .map_err(|e| Error::new("invalid_json", e.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_and_redirects() {
        let url = parse("https://api.example.com:8443/v1/items?x=1#top").unwrap();
        assert!(url.https);
        assert_eq!(url.authority, "api.example.com:8443");
        assert_eq!(url.path, "/v1/items?x=1");
        assert_eq!(parse("http://example.com").unwrap().path, "/");
        assert!(parse("ftp://example.com/").is_err());
        assert!(parse("example.com/").is_err());
        assert!(parse("http://user@example.com/").is_err());
        assert_eq!(resolve("http://a.test/x/y", "/z"), "http://a.test/z");
        assert_eq!(resolve("http://a.test/x/y", "z"), "http://a.test/x/z");
        assert_eq!(
            resolve("http://a.test/x", "https://b.test/"),
            "https://b.test/"
        );
    }
}
