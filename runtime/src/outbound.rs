//! Outbound HTTP (`wasi:http/outgoing-handler`) behind the app's allowlist, checked at one
//! place: [`Outbound::send_request`] is the only way a request leaves the sandbox.
//!
//! The address rules are shared with the host's webhook deliveries: [`Destination::of`]
//! (http or https only) and [`connect`] (resolve, check every address, connect to a
//! checked one, TLS) are the one way out of the server, for a guest's request and a
//! notification alike.
//!
//! Every request is checked before it leaves: the scheme (http or https), the host against
//! `[network] allowed_hosts` (exact names and `*.domain` wildcards; an IP literal never
//! matches), the run's request cap, and then every address the name resolves to (public
//! only, unless the operator allows private ranges). The connection goes to an address
//! that was checked, so a DNS answer cannot change between the check and the connect.
//! Redirects are new requests from the guest, so they pass the same checks. The run's
//! deadline bounds connecting, waiting and reading; response bytes count against a
//! per-run budget, and each connection buffers at most `CONNECTION_BUFFER_BYTES`. A refusal is an error the guest sees and a log line the caller sees.

use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::uri::Scheme;
use http_body::{Body, Frame};
use http_body_util::BodyExt;
use tokio::net::TcpStream;
use wasmtime_wasi_http::io::TokioIo;
use wasmtime_wasi_http::{Error, RequestOptions, WasiBody, WasiHttpHooks};

use crate::output::EventSink;

/// The longest any connect may take, whatever the guest (or caller) asks.
pub const MAX_CONNECT: Duration = Duration::from_secs(30);

/// What each connection may buffer, read or write side (hyper's default is ~400 KiB): it
/// bounds a response head, and what the host holds of a response the guest does not
/// read, to this per request, so a run holds at most its request cap times this.
/// hyper's minimum is 8 KiB.
const CONNECTION_BUFFER_BYTES: usize = 64 << 10;

/// What a run may reach, and how much.
#[derive(Debug, Clone)]
pub(crate) struct NetworkPolicy {
    /// `[network] allowed_hosts`, lowercased.
    pub allowed_hosts: Arc<[String]>,
    /// Whether private, loopback and link-local addresses may be reached.
    pub allow_private: bool,
    /// Requests per run.
    pub max_requests: u32,
    /// Response body bytes per run, over all requests.
    pub max_response_bytes: u64,
}

/// The `wasi:http` hooks of one run.
pub(crate) struct Outbound {
    policy: NetworkPolicy,
    sink: EventSink,
    requests: u32,
    response_budget: Arc<AtomicU64>,
    deadline: Instant,
}

type SendResult = Result<
    (
        http::Response<WasiBody>,
        Box<dyn Future<Output = Result<(), Error>> + Send>,
    ),
    Error,
>;

impl Outbound {
    pub(crate) fn new(policy: NetworkPolicy, sink: EventSink, deadline: Instant) -> Self {
        Outbound {
            response_budget: Arc::new(AtomicU64::new(policy.max_response_bytes)),
            policy,
            sink,
            requests: 0,
            deadline,
        }
    }

    /// The checks that need no network: scheme, host, request count.
    fn admit(&mut self, uri: &http::Uri) -> Result<Destination, String> {
        let destination = Destination::of(uri)
            .map_err(|e| format!("outbound request to {} denied: {e}", host_of(uri)))?;
        let host = &destination.host;
        if !host_allowed(&self.policy.allowed_hosts, host) {
            return Err(format!(
                "outbound request to {host} denied: it is not in the app's allowed_hosts"
            ));
        }
        if self.requests >= self.policy.max_requests {
            return Err(format!(
                "outbound request to {host} denied: the run's cap of {} requests was reached",
                self.policy.max_requests
            ));
        }
        self.requests += 1;
        Ok(destination)
    }
}

/// The host of `uri`, lowercase, without the brackets of an IPv6 literal.
fn host_of(uri: &http::Uri) -> String {
    uri.host()
        .map(|h| {
            h.trim_start_matches('[')
                .trim_end_matches(']')
                .to_ascii_lowercase()
        })
        .unwrap_or_default()
}

/// Where an outbound request goes: a host (a name or an address), a port, and whether
/// the connection is TLS (https).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Destination {
    /// The host, lowercase, an IPv6 literal without its brackets.
    pub host: String,
    /// The port (80 or 443 unless the URL names one).
    pub port: u16,
    /// https.
    pub tls: bool,
}

impl Destination {
    /// The destination of `uri`; anything but an http or https URL with a host is
    /// refused.
    pub fn of(uri: &http::Uri) -> Result<Self, Unreachable> {
        let tls = match uri.scheme() {
            Some(s) if *s == Scheme::HTTPS => true,
            Some(s) if *s == Scheme::HTTP => false,
            other => {
                return Err(Unreachable::Scheme(
                    other.map_or("(none)", |s| s.as_str()).to_owned(),
                ));
            }
        };
        let host = host_of(uri);
        if host.is_empty() {
            return Err(Unreachable::NoHost);
        }
        let port = uri.port_u16().unwrap_or(if tls { 443 } else { 80 });
        Ok(Destination { host, port, tls })
    }

    /// Whether the host is, without any lookup, a private place: a non-public address
    /// literal or `localhost` (and names below it). A name that resolves to a private
    /// address is only caught by [`connect`].
    pub fn is_private_literal(&self) -> bool {
        let host = self.host.trim_end_matches('.');
        match host.parse::<IpAddr>() {
            Ok(ip) => !is_public(ip),
            Err(_) => host == "localhost" || host.ends_with(".localhost"),
        }
    }
}

/// Why a destination was refused or not reached.
#[derive(Debug, thiserror::Error)]
pub enum Unreachable {
    /// Not http or https.
    #[error("scheme {0} is not http or https")]
    Scheme(String),
    /// The URL names no host.
    #[error("the URL has no host")]
    NoHost,
    /// Every address of the host is private, and private addresses are not allowed.
    #[error("{host} resolves to a private address ({address})")]
    Private {
        /// The host.
        host: String,
        /// The first address it resolved to.
        address: String,
    },
    /// The name did not resolve.
    #[error("{0} does not resolve")]
    Dns(String),
    /// Resolving took too long.
    #[error("resolving {0} timed out")]
    DnsTimeout(String),
    /// No checked address accepted a connection in time.
    #[error("cannot connect to {0}")]
    Connect(String),
    /// The host is not a name a TLS certificate can be checked against.
    #[error("{0} is not a valid TLS server name")]
    ServerName(String),
    /// The TLS handshake did not finish in time.
    #[error("the TLS handshake with {0} timed out")]
    TlsTimeout(String),
    /// The TLS handshake failed (a bad certificate, for one).
    #[error("TLS with {host} failed: {error}")]
    Tls {
        /// The host.
        host: String,
        /// What failed.
        error: std::io::Error,
    },
}

/// A connection made by [`connect`]: plain TCP, or TLS over it.
#[derive(Debug)]
pub enum Stream {
    /// http.
    Plain(TcpStream),
    /// https.
    Tls(Box<tokio_rustls::client::TlsStream<TcpStream>>),
}

impl tokio::io::AsyncRead for Stream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_read(cx, buf),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl tokio::io::AsyncWrite for Stream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_write(cx, buf),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_flush(cx),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_shutdown(cx),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }
}

/// Connects to `destination`: resolves its host, checks every address (public only,
/// unless `allow_private`), connects to one that passed, and for https completes a TLS
/// handshake checked against the bundled web roots. Each step gets `timeout` (capped at
/// [`MAX_CONNECT`]). The connection goes to an address that was checked, so a DNS answer
/// cannot change between the check and the connect (DNS rebinding).
pub async fn connect(
    destination: &Destination,
    allow_private: bool,
    timeout: Duration,
) -> Result<Stream, Unreachable> {
    let timeout = timeout.min(MAX_CONNECT);
    let host = &destination.host;
    let addrs: Vec<SocketAddr> = match tokio::time::timeout(
        timeout,
        tokio::net::lookup_host((host.as_str(), destination.port)),
    )
    .await
    {
        Ok(Ok(addrs)) => addrs.collect(),
        Ok(Err(_)) => return Err(Unreachable::Dns(host.clone())),
        Err(_) => return Err(Unreachable::DnsTimeout(host.clone())),
    };
    let allowed: Vec<SocketAddr> = addrs
        .iter()
        .copied()
        .filter(|a| allow_private || is_public(a.ip()))
        .collect();
    if allowed.is_empty() {
        return Err(match addrs.first() {
            Some(first) => Unreachable::Private {
                host: host.clone(),
                address: first.ip().to_string(),
            },
            None => Unreachable::Dns(host.clone()),
        });
    }
    let mut stream = None;
    for addr in &allowed {
        if let Ok(Ok(s)) = tokio::time::timeout(timeout, TcpStream::connect(addr)).await {
            stream = Some(s);
            break;
        }
    }
    let stream = stream.ok_or_else(|| Unreachable::Connect(host.clone()))?;
    if !destination.tls {
        return Ok(Stream::Plain(stream));
    }
    let name = tokio_rustls::rustls::pki_types::ServerName::try_from(host.clone())
        .map_err(|_| Unreachable::ServerName(host.clone()))?;
    let tls = tokio::time::timeout(
        timeout,
        tokio_rustls::TlsConnector::from(tls_config()).connect(name, stream),
    )
    .await
    .map_err(|_| Unreachable::TlsTimeout(host.clone()))?
    .map_err(|error| Unreachable::Tls {
        host: host.clone(),
        error,
    })?;
    Ok(Stream::Tls(Box::new(tls)))
}

/// Whether `host` (lowercase) matches one of the patterns: an exact name, or `*.domain`
/// for any name below `domain`. IP literals never match: patterns are names only.
pub(crate) fn host_allowed(patterns: &[String], host: &str) -> bool {
    if host.is_empty() || host.parse::<IpAddr>().is_ok() {
        return false;
    }
    let host = host.trim_end_matches('.');
    patterns
        .iter()
        .any(|pattern| match pattern.strip_prefix("*.") {
            Some(domain) => host
                .strip_suffix(domain)
                .is_some_and(|prefix| prefix.len() > 1 && prefix.ends_with('.')),
            None => pattern == host,
        })
}

/// Whether `ip` is a public unicast address (not loopback, private, link-local, shared,
/// multicast, documentation or otherwise reserved).
pub fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            let [a, b, c, _] = v4.octets();
            !(v4.is_unspecified()
                || v4.is_loopback()
                || v4.is_private()
                || v4.is_link_local()
                || v4.is_broadcast()
                || v4.is_documentation()
                || v4.is_multicast()
                || a == 0
                || (a == 100 && (64..128).contains(&b)) // shared address space (CGNAT)
                || (a == 192 && b == 0 && c == 0) // IETF protocol assignments
                || (a == 198 && (b == 18 || b == 19)) // benchmarking
                || a >= 240) // reserved
        }
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return is_public(IpAddr::V4(v4));
            }
            let first = v6.segments()[0];
            !(v6.is_unspecified()
                || v6.is_loopback()
                || v6.is_multicast()
                || (first & 0xfe00) == 0xfc00 // unique local
                || (first & 0xffc0) == 0xfe80 // link-local
                || (first == 0x2001 && v6.segments()[1] == 0x0db8) // documentation
                || first == 0x0064) // NAT64 well-known prefix
        }
    }
}

fn tls_config() -> Arc<tokio_rustls::rustls::ClientConfig> {
    static CONFIG: OnceLock<Arc<tokio_rustls::rustls::ClientConfig>> = OnceLock::new();
    CONFIG
        .get_or_init(|| {
            let roots = tokio_rustls::rustls::RootCertStore {
                roots: webpki_roots::TLS_SERVER_ROOTS.into(),
            };
            let provider = Arc::new(tokio_rustls::rustls::crypto::ring::default_provider());
            let config = tokio_rustls::rustls::ClientConfig::builder_with_provider(provider)
                .with_safe_default_protocol_versions()
                .map(|builder| builder.with_root_certificates(roots).with_no_client_auth());
            Arc::new(match config {
                Ok(config) => config,
                // The ring provider supports the default versions; keep a usable fallback
                // rather than a panic on a path a guest can reach.
                Err(_) => tokio_rustls::rustls::ClientConfig::builder()
                    .with_root_certificates(tokio_rustls::rustls::RootCertStore::empty())
                    .with_no_client_auth(),
            })
        })
        .clone()
}

impl WasiHttpHooks for Outbound {
    // Bodies buffer what the run's wasi:http budget charges for them.
    fn p2_outgoing_body_chunk_size(&mut self) -> usize {
        crate::http_budget::BODY_CHUNK_BYTES
    }

    fn p2_outgoing_body_buffer_chunks(&mut self) -> usize {
        crate::http_budget::BODY_BUFFER_CHUNKS
    }

    fn send_request(
        &mut self,
        request: http::Request<WasiBody>,
        options: Option<RequestOptions>,
        _fut: Box<dyn Future<Output = Result<(), Error>> + Send>,
    ) -> Box<dyn Future<Output = SendResult> + Send> {
        let admitted = self.admit(request.uri());
        let sink = self.sink.clone();
        let destination = match admitted {
            Ok(destination) => destination,
            Err(why) => {
                sink.notice(why);
                return Box::new(async { Err(Error::HttpRequestDenied) });
            }
        };
        let allow_private = self.policy.allow_private;
        let budget = self.response_budget.clone();
        let deadline = self.deadline;
        Box::new(async move {
            let remaining = || deadline.saturating_duration_since(Instant::now());
            let connect_timeout = options
                .and_then(|o| o.connect_timeout)
                .unwrap_or(MAX_CONNECT)
                .min(remaining());
            let stream = match connect(&destination, allow_private, connect_timeout).await {
                Ok(stream) => stream,
                Err(e) => {
                    if let Unreachable::Private { host, address } = &e {
                        sink.notice(format!(
                            "outbound request to {host} denied: it resolves to a private address ({address})"
                        ));
                    }
                    return Err(match e {
                        Unreachable::Private { .. } => Error::DestinationIpProhibited,
                        Unreachable::Dns(_) => Error::DnsError {
                            rcode: None,
                            info_code: None,
                        },
                        Unreachable::DnsTimeout(_) => Error::DnsTimeout,
                        Unreachable::Connect(_) => Error::ConnectionRefused,
                        Unreachable::TlsTimeout(_) => Error::ConnectionTimeout,
                        Unreachable::Tls { error, .. } => Error::Tls(error),
                        Unreachable::Scheme(_)
                        | Unreachable::NoHost
                        | Unreachable::ServerName(_) => Error::HttpRequestUriInvalid,
                    });
                }
            };
            let (sender, connection) = handshake(TokioIo::new(stream), connect_timeout).await?;
            send(sender, connection, request, budget, deadline).await
        })
    }
}

type Connection = Pin<Box<dyn Future<Output = Result<(), hyper::Error>> + Send>>;

async fn handshake<IO>(
    io: IO,
    timeout: Duration,
) -> Result<
    (
        hyper::client::conn::http1::SendRequest<WasiBody>,
        Connection,
    ),
    Error,
>
where
    IO: hyper::rt::Read + hyper::rt::Write + Send + Unpin + 'static,
{
    let (sender, connection) = tokio::time::timeout(
        timeout,
        hyper::client::conn::http1::Builder::new()
            .max_buf_size(CONNECTION_BUFFER_BYTES)
            .handshake(io),
    )
    .await
    .map_err(|_| Error::ConnectionTimeout)??;
    Ok((sender, Box::pin(connection)))
}

async fn send(
    mut sender: hyper::client::conn::http1::SendRequest<WasiBody>,
    connection: Connection,
    mut request: http::Request<WasiBody>,
    budget: Arc<AtomicU64>,
    deadline: Instant,
) -> SendResult {
    // The request line carries only the path; the authority went into the Host header.
    let path = request
        .uri()
        .path_and_query()
        .map_or("/".to_owned(), |p| p.as_str().to_owned());
    *request.uri_mut() = http::Uri::try_from(path).map_err(|_| Error::HttpRequestUriInvalid)?;
    // Drive the connection in its own task; it ends when the response body is done.
    let driver = tokio::spawn(connection);
    let response = tokio::time::timeout(
        deadline.saturating_duration_since(Instant::now()),
        sender.send_request(request),
    )
    .await
    .map_err(|_| Error::HttpResponseTimeout)?
    .map_err(Error::from)?;
    let response = response.map(|incoming| {
        Capped {
            incoming,
            budget,
            deadline: Box::pin(tokio::time::sleep_until(deadline.into())),
        }
        .boxed_unsync()
    });
    let io: Box<dyn Future<Output = Result<(), Error>> + Send> = Box::new(async move {
        match driver.await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(Error::from(e)),
            Err(_) => Err(Error::ConnectionTerminated),
        }
    });
    Ok((response, io))
}

/// A response body that stops at the run's byte budget and at its deadline.
struct Capped {
    incoming: hyper::body::Incoming,
    budget: Arc<AtomicU64>,
    deadline: Pin<Box<tokio::time::Sleep>>,
}

impl Body for Capped {
    type Data = Bytes;
    type Error = Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Error>>> {
        if self.deadline.as_mut().poll(cx).is_ready() {
            return Poll::Ready(Some(Err(Error::HttpResponseTimeout)));
        }
        match Pin::new(&mut self.incoming).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => {
                let size = frame.data_ref().map_or(0, |d| d.len() as u64);
                let left = self
                    .budget
                    .fetch_update(Ordering::AcqRel, Ordering::Acquire, |left| {
                        left.checked_sub(size)
                    });
                if left.is_err() {
                    return Poll::Ready(Some(Err(Error::HttpResponseBodySize(None))));
                }
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Ready(Some(Err(e))) => Poll::Ready(Some(Err(Error::from(e)))),
            Poll::Ready(None) => Poll::Ready(None),
            Poll::Pending => Poll::Pending,
        }
    }

    fn is_end_stream(&self) -> bool {
        self.incoming.is_end_stream()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_match_exactly_or_below_a_wildcard() {
        let patterns: Vec<String> = vec!["api.example.com".into(), "*.example.org".into()];
        assert!(host_allowed(&patterns, "api.example.com"));
        assert!(!host_allowed(&patterns, "example.com"));
        assert!(!host_allowed(&patterns, "evil-api.example.com"));
        assert!(host_allowed(&patterns, "a.example.org"));
        assert!(host_allowed(&patterns, "b.a.example.org"));
        assert!(!host_allowed(&patterns, "example.org"));
        assert!(!host_allowed(&patterns, "badexample.org"));
        assert!(!host_allowed(&patterns, "127.0.0.1"));
        assert!(!host_allowed(&patterns, "::1"));
        assert!(!host_allowed(&patterns, ""));
    }

    #[test]
    fn private_addresses_are_not_public() {
        for private in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "0.0.0.0",
            "224.0.0.1",
            "255.255.255.255",
            "::1",
            "fd00::1",
            "fe80::1",
            "::ffff:10.0.0.1",
            "::",
        ] {
            assert!(!is_public(private.parse().unwrap()), "{private}");
        }
        for public in [
            "93.184.216.34",
            "1.1.1.1",
            "2606:4700::1111",
            "::ffff:8.8.8.8",
        ] {
            assert!(is_public(public.parse().unwrap()), "{public}");
        }
    }

    #[test]
    fn destinations_are_http_or_https_and_literals_are_seen_as_private() {
        let of = |url: &str| Destination::of(&url.parse::<http::Uri>().unwrap());
        assert_eq!(
            of("https://Example.org/hook").unwrap(),
            Destination {
                host: "example.org".into(),
                port: 443,
                tls: true
            }
        );
        assert_eq!(of("http://[::1]:8080/").unwrap().host, "::1");
        assert!(matches!(
            of("ftp://example.org/"),
            Err(Unreachable::Scheme(_))
        ));
        assert!(matches!(of("/relative"), Err(Unreachable::Scheme(_))));
        for private in [
            "http://127.0.0.1/",
            "http://localhost:9/",
            "http://a.localhost/",
            "http://10.0.0.1/",
            "http://[::1]/",
            "http://169.254.169.254/",
        ] {
            assert!(of(private).unwrap().is_private_literal(), "{private}");
        }
        for public in ["https://example.org/", "http://1.1.1.1/"] {
            assert!(!of(public).unwrap().is_private_literal(), "{public}");
        }
    }
}
