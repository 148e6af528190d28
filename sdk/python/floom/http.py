"""Outbound HTTP for apps whose manifest lists the hosts they call.

::

    [network]
    allowed_hosts = ["api.github.com"]

::

    token = floom.secret("GITHUB_TOKEN")
    response = floom.http.get(
        "https://api.github.com/repos/python/cpython",
        headers={"accept": "application/vnd.github+json", "authorization": f"Bearer {token}"},
    )
    stars = response.raise_for_status().json()["stargazers_count"]

    # Or read a large body as it arrives.
    with floom.http.get("https://example.com/big.csv") as response:
        for piece in response.iter_bytes():
            ...

The host checks every request, each redirect included: its host must be in
``allowed_hosts`` and resolve to a public address, and a run makes at most 100 requests
and reads at most 16 MiB of response bodies (the defaults). A refused request raises
``RequestDenied``; every other failure raises ``HttpError``. Both are ``floom.AppError``
subclasses, so uncaught they fail the run with their code, like any app error. An app
without ``[network]`` may not use this module at all: its first request ends the run with
``trap``, and a message naming the missing grant.

Written on the raw ``wasi:http`` 0.2 interfaces, with blocking reads and writes (one
request at a time).
"""

from __future__ import annotations

import json as _json
from collections.abc import Iterator, Mapping
from typing import Any

from floom import _wit
from floom._app import AppError

__all__ = [
    "MAX_REDIRECTS",
    "Headers",
    "HttpError",
    "RequestDenied",
    "Response",
    "get",
    "post",
    "request",
]

MAX_REDIRECTS = 5
"""Redirects followed by default; each one is a new request the host checks."""

READ_SIZE = 64 * 1024
"""Bytes asked for per read of a response body: the largest piece ``iter_bytes`` yields."""

WRITE_SIZE = 4096
"""Bytes per write of a request body (the most ``blocking-write-and-flush`` takes)."""


class HttpError(AppError):
    """A request that failed: code ``http_error`` (connection, DNS, TLS or protocol
    failure), ``invalid_url``, ``invalid_header``, ``invalid_request``,
    ``too_many_redirects``, or ``http_status`` (from ``Response.raise_for_status``)."""


class RequestDenied(HttpError):
    """The host refused the request (code ``request_denied``): its host is not in the app's
    ``allowed_hosts``, it resolves to a private address, or the run's request cap was
    reached. The run's log says which."""


def get(
    url: str, headers: Mapping[str, str] | None = None, *, redirects: int = MAX_REDIRECTS
) -> Response:
    """Sends a GET request and returns the response once its status and headers arrived.

    ``headers`` are sent as given; ``redirects`` is how many redirects to follow (0 returns
    a 3xx response itself).
    """
    return request("GET", url, headers=headers, redirects=redirects)


def post(
    url: str,
    body: bytes | str | None = None,
    json: Any = None,
    headers: Mapping[str, str] | None = None,
    *,
    redirects: int = MAX_REDIRECTS,
) -> Response:
    """Sends a POST request with ``body`` (bytes, or text sent as UTF-8) or ``json`` (any
    JSON-serialisable value, sent with ``content-type: application/json`` unless
    ``headers`` has one), and returns the response once its status and headers arrived."""
    return request("POST", url, body=body, json=json, headers=headers, redirects=redirects)


def request(
    method: str,
    url: str,
    *,
    body: bytes | str | None = None,
    json: Any = None,
    headers: Mapping[str, str] | None = None,
    redirects: int = MAX_REDIRECTS,
) -> Response:
    """Sends a request with any method; see ``post`` for ``body`` and ``json``.

    Redirects (301, 302, 303, 307, 308 with a ``location``) are followed up to
    ``redirects`` times; a 303, and a 301 or 302 answering a POST, continue as a GET
    without a body, as browsers do.
    """
    if body is not None and json is not None:
        raise TypeError("pass body or json, not both")
    pairs = [(str(name), str(value)) for name, value in (headers or {}).items()]
    if json is not None:
        try:
            payload = _json.dumps(json, allow_nan=False, ensure_ascii=False).encode()
        except (TypeError, ValueError) as e:
            raise HttpError(
                "invalid_body", f"the json body is not JSON-serialisable: {e}"
            ) from None
        if not any(name.lower() == "content-type" for name, _ in pairs):
            pairs.append(("content-type", "application/json"))
    elif isinstance(body, str):
        payload = body.encode()
    else:
        payload = body or b""
    method = method.upper()
    current = url
    for _ in range(redirects + 1):
        response = _send_once(method, current, pairs, payload)
        location = response.headers.get("location")
        if response.status not in (301, 302, 303, 307, 308) or location is None:
            return response
        response.close()
        current = _resolve(current, location)
        if response.status == 303 or (method == "POST" and response.status < 303):
            method, payload = "GET", b""
            pairs = [
                (n, v) for n, v in pairs if n.lower() not in ("content-type", "content-length")
            ]
    raise HttpError("too_many_redirects", f"more than {redirects} redirects from {url}")


class Headers(Mapping[str, str]):
    """The headers of a response: a read-only mapping whose names are case-insensitive.

    A header sent several times maps to its values joined by ``", "``; ``get_all`` lists
    them one by one. Values are decoded as UTF-8 (invalid bytes replaced).
    """

    def __init__(self, entries: list[tuple[str, str]]) -> None:
        self._entries = [(name.lower(), value) for name, value in entries]

    def get_all(self, name: str) -> list[str]:
        """Every value of the header ``name``, in the order the server sent them."""
        name = name.lower()
        return [value for key, value in self._entries if key == name]

    def __getitem__(self, name: str) -> str:
        values = self.get_all(name)
        if not values:
            raise KeyError(name)
        return ", ".join(values)

    def __iter__(self) -> Iterator[str]:
        return iter(dict.fromkeys(name for name, _ in self._entries))

    def __len__(self) -> int:
        return len(dict.fromkeys(name for name, _ in self._entries))

    def __repr__(self) -> str:
        return f"Headers({dict(self)!r})"


class Response:
    """An HTTP response whose body is read on demand: all at once with ``content``,
    ``text()`` or ``json()``, or piece by piece as it arrives with ``iter_bytes()``.

    Reading the whole body, or leaving a ``with`` block, gives its resources back to the
    host; so does ``close()``.
    """

    status: int
    """The status code."""
    headers: Headers
    """The response headers."""
    url: str
    """The URL that answered, after redirects."""

    def __init__(self, url: str, incoming: _wit.types.IncomingResponse) -> None:
        self._body: _Body | None = None
        self._content: bytes | None = None
        self.url = url
        self.status = incoming.status()
        with incoming.headers() as fields:
            entries = fields.entries()
        self.headers = Headers(
            [(name, value.decode("utf-8", "replace")) for name, value in entries]
        )
        try:
            body = incoming.consume()
        except _wit.Err:
            incoming.__exit__(None, None, None)
            raise HttpError("http_error", f"{url}: the response body cannot be read") from None
        self._body = _Body(url, incoming, body)

    @property
    def ok(self) -> bool:
        """Whether the status is 2xx."""
        return 200 <= self.status < 300

    def raise_for_status(self) -> Response:
        """Returns the response if its status is 2xx; raises ``HttpError`` with code
        ``http_status`` otherwise."""
        if not self.ok:
            self.close()
            raise HttpError("http_status", f"{self.url} answered {self.status}")
        return self

    def iter_bytes(self) -> Iterator[bytes]:
        """The body as it arrives, in pieces of up to 64 KiB. It can be read this way once,
        and not after ``content``."""
        if self._content is not None:
            yield self._content
            return
        while self._body is not None:
            piece = self._body.read()
            if piece is None:
                self._body = None
            else:
                yield piece

    @property
    def content(self) -> bytes:
        """The whole body (read once, then kept)."""
        if self._content is None:
            if self._body is None:
                raise RuntimeError(f"the body of {self.url} was already read with iter_bytes()")
            self._content = b"".join(self.iter_bytes())
        return self._content

    def text(self) -> str:
        """The whole body as text, decoded as UTF-8 (invalid bytes replaced)."""
        return self.content.decode("utf-8", "replace")

    def json(self) -> Any:
        """The whole body parsed as JSON; ``HttpError`` with code ``invalid_json`` if it
        is not JSON."""
        try:
            return _json.loads(self.content)
        except ValueError as e:
            raise HttpError("invalid_json", f"{self.url} did not answer JSON: {e}") from None

    def close(self) -> None:
        """Stops reading the body and gives its resources back to the host."""
        if self._body is not None:
            self._body.close()
            self._body = None

    def __enter__(self) -> Response:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def __del__(self) -> None:
        # The body's resources must be dropped child first (the host traps when a parent
        # goes before its child); left to the garbage collector, any order could happen.
        self.close()

    def __repr__(self) -> str:
        return f"<Response {self.status} {self.url}>"


class _Body:
    """A response body's stream, with the resources it belongs to, dropped in order."""

    def __init__(
        self, url: str, response: _wit.types.IncomingResponse, body: _wit.types.IncomingBody
    ) -> None:
        self._url = url
        self._parts: (
            tuple[_wit.streams.InputStream, _wit.types.IncomingBody, _wit.types.IncomingResponse]
            | None
        ) = (body.stream(), body, response)

    def read(self) -> bytes | None:
        """The next piece of the body; ``None`` at its end."""
        if self._parts is None:
            return None
        try:
            return self._parts[0].blocking_read(READ_SIZE)
        except _wit.Err as e:
            self.close()
            if isinstance(e.value, _wit.streams.StreamError_Closed):
                return None
            raise HttpError(
                "http_error", f"{self._url}: reading the body failed: {_stream_error(e.value)}"
            ) from None

    def close(self) -> None:
        """Drops the stream, then finishes the body, then drops the response."""
        if self._parts is None:
            return
        stream, body, response = self._parts
        self._parts = None
        stream.__exit__(None, None, None)
        _wit.types.IncomingBody.finish(body).__exit__(None, None, None)
        response.__exit__(None, None, None)


class _Url:
    """The parts of an absolute http(s) URL that a request is made of."""

    def __init__(self, url: str) -> None:
        scheme, sep, rest = url.partition("://")
        scheme = scheme.lower()
        if not sep or scheme not in ("http", "https"):
            raise HttpError("invalid_url", f"{url!r} is not an absolute http(s) URL")
        end = min((i for i in map(rest.find, "/?#") if i >= 0), default=len(rest))
        authority, path = rest[:end], rest[end:].partition("#")[0]
        if not authority or "@" in authority:
            raise HttpError("invalid_url", f"{url!r} is not an absolute http(s) URL")
        self.https = scheme == "https"
        self.authority = authority
        self.path = path if path.startswith("/") else "/" + path

    @property
    def origin(self) -> str:
        """``scheme://authority``."""
        return f"{'https' if self.https else 'http'}://{self.authority}"


def _resolve(base: str, location: str) -> str:
    """``location`` (an absolute URL, or a path on the same origin) resolved against
    ``base``."""
    if "://" in location:
        return location
    url = _Url(base)
    if location.startswith("/"):
        return url.origin + location
    directory = url.path.partition("?")[0].rpartition("/")[0]
    return f"{url.origin}{directory}/{location}"


_METHODS: dict[str, _wit.types.Method] = {
    "GET": _wit.types.Method_Get(),
    "HEAD": _wit.types.Method_Head(),
    "POST": _wit.types.Method_Post(),
    "PUT": _wit.types.Method_Put(),
    "DELETE": _wit.types.Method_Delete(),
    "CONNECT": _wit.types.Method_Connect(),
    "OPTIONS": _wit.types.Method_Options(),
    "TRACE": _wit.types.Method_Trace(),
    "PATCH": _wit.types.Method_Patch(),
}


def _send_once(method: str, url: str, headers: list[tuple[str, str]], body: bytes) -> Response:
    """One request, no redirects: returns when the response's head has arrived."""
    target = _Url(url)
    if body and not any(name.lower() == "content-length" for name, _ in headers):
        # Without it the body goes out chunked, which some servers do not accept.
        headers = [*headers, ("content-length", str(len(body)))]
    fields = _wit.types.Fields()
    for name, value in headers:
        try:
            fields.append(name, value.encode())
        except _wit.Err as e:
            reason = type(e.value).__name__.removeprefix("HeaderError_")
            raise HttpError(
                "invalid_header", f"the header {name!r} was refused ({reason})"
            ) from None
    outgoing = _wit.types.OutgoingRequest(fields)
    try:
        outgoing.set_method(_METHODS.get(method) or _wit.types.Method_Other(method))
        outgoing.set_scheme(_wit.types.Scheme_Https() if target.https else _wit.types.Scheme_Http())
        outgoing.set_authority(target.authority)
        outgoing.set_path_with_query(target.path)
    except _wit.Err:
        raise HttpError(
            "invalid_request", f"{method} {url}: the method or the URL was refused"
        ) from None
    request_body = outgoing.body()
    try:
        pending = _wit.outgoing_handler.handle(outgoing, None)
    except _wit.Err as e:
        raise _failure(url, e.value) from None
    try:
        with request_body.write() as stream:
            for start in range(0, len(body), WRITE_SIZE):
                stream.blocking_write_and_flush(body[start : start + WRITE_SIZE])
        _wit.types.OutgoingBody.finish(request_body, None)
    except _wit.Err as e:
        raise HttpError(
            "http_error", f"{url}: sending the body failed: {_stream_error(e.value)}"
        ) from None
    with pending:
        with pending.subscribe() as ready:
            ready.block()
        answer = pending.get()
    if answer is None or isinstance(answer, _wit.Err):
        raise HttpError("http_error", f"{url}: no response")
    if isinstance(answer.value, _wit.Err):
        raise _failure(url, answer.value.value)
    return Response(url, answer.value.value)


def _failure(url: str, code: _wit.types.ErrorCode) -> HttpError:
    """The exception for a ``wasi:http`` error code."""
    if isinstance(
        code, (_wit.types.ErrorCode_HttpRequestDenied, _wit.types.ErrorCode_DestinationIpProhibited)
    ):
        return RequestDenied(
            "request_denied",
            f"the host refused the request to {url}: its host is not in the app's "
            "allowed_hosts, it resolves to a private address, or the run's request cap "
            "was reached (the run's log says which)",
        )
    return HttpError("http_error", f"{url}: {_describe(code)}")


def _describe(code: _wit.types.ErrorCode) -> str:
    """A ``wasi:http`` error code in words, such as ``ConnectionRefused``."""
    name = type(code).__name__.removeprefix("ErrorCode_")
    value = getattr(code, "value", None)
    return name if value is None else f"{name} ({value})"


def _stream_error(error: _wit.streams.StreamError) -> str:
    """A ``wasi:io`` stream error in words: the first line of the host's description."""
    if isinstance(error, _wit.streams.StreamError_Closed):
        return "the connection was closed"
    with error.value as detail:
        text: str = detail.to_debug_string()
    return text.partition("\n")[0]
