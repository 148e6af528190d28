//! Outbound HTTP (`wasi:http/outgoing-handler`) behind the app's allowlist, checked at one
//! place: [`Outbound::send_request`] is the only way a request leaves the sandbox.
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

/// The longest any connect may take, whatever the guest asks.
const MAX_CONNECT: Duration = Duration::from_secs(30);

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
    fn admit(&mut self, uri: &http::Uri) -> Result<(String, u16, bool), String> {
        let host = uri
            .host()
            .map(|h| {
                h.trim_start_matches('[')
                    .trim_end_matches(']')
                    .to_ascii_lowercase()
            })
            .unwrap_or_default();
        let tls = match uri.scheme() {
            Some(s) if *s == Scheme::HTTPS => true,
            Some(s) if *s == Scheme::HTTP => false,
            other => {
                return Err(format!(
                    "outbound request to {host} denied: scheme {} is not http or https",
                    other.map_or("(none)", |s| s.as_str())
                ));
            }
        };
        if !host_allowed(&self.policy.allowed_hosts, &host) {
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
        let port = uri.port_u16().unwrap_or(if tls { 443 } else { 80 });
        Ok((host, port, tls))
    }
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
pub(crate) fn is_public(ip: IpAddr) -> bool {
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
        let (host, port, tls) = match admitted {
            Ok(target) => target,
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
                .min(MAX_CONNECT)
                .min(remaining());
            // Resolve, then check every address before connecting to one of them.
            let addrs: Vec<SocketAddr> = match tokio::time::timeout(
                connect_timeout,
                tokio::net::lookup_host((host.as_str(), port)),
            )
            .await
            {
                Ok(Ok(addrs)) => addrs.collect(),
                Ok(Err(_)) => {
                    return Err(Error::DnsError {
                        rcode: None,
                        info_code: None,
                    });
                }
                Err(_) => return Err(Error::DnsTimeout),
            };
            let allowed: Vec<SocketAddr> = addrs
                .iter()
                .copied()
                .filter(|a| allow_private || is_public(a.ip()))
                .collect();
            if allowed.is_empty() {
                sink.notice(format!(
                    "outbound request to {host} denied: it resolves to a private address ({})",
                    addrs
                        .first()
                        .map_or("none".to_owned(), |a| a.ip().to_string())
                ));
                return Err(Error::DestinationIpProhibited);
            }
            let mut stream = None;
            for addr in &allowed {
                match tokio::time::timeout(connect_timeout, TcpStream::connect(addr)).await {
                    Ok(Ok(s)) => {
                        stream = Some(s);
                        break;
                    }
                    Ok(Err(_)) | Err(_) => continue,
                }
            }
            let stream = stream.ok_or(Error::ConnectionRefused)?;
            let (sender, connection) = if tls {
                let name = tokio_rustls::rustls::pki_types::ServerName::try_from(host.clone())
                    .map_err(|_| Error::HttpRequestUriInvalid)?;
                let stream = tokio::time::timeout(
                    connect_timeout,
                    tokio_rustls::TlsConnector::from(tls_config()).connect(name, stream),
                )
                .await
                .map_err(|_| Error::ConnectionTimeout)?
                .map_err(Error::Tls)?;
                handshake(TokioIo::new(stream), connect_timeout).await?
            } else {
                handshake(TokioIo::new(stream), connect_timeout).await?
            };
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
}
