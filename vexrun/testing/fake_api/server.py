"""A loopback HTTP server for fake APIs: a small router over dialect "apps", the shared fault script, latency,
counters and a log of the requests it received.

::

    with FakeAPIServer(OpenAIApp(api_keys=["sk-test"])) as srv:
        srv.fail(Fault.rate_limit(retry_after=0.2))
        ... talk to srv.url("/v1") with a real HTTP client ...
        assert srv.stats.by_path["/v1/embeddings"] == 2 and not srv.violations

It listens on 127.0.0.1 on an ephemeral port, in a background thread; leaving the ``with`` block stops it,
closes every connection and joins its threads. An app is an object with ``routes()`` (see :class:`Route`),
``error(status, message, code)`` rendering an error in its dialect, ``key_of(request)`` and
``authenticate(request)``; it gets the server through ``bind(server)``.
"""

from __future__ import annotations

import email.utils
import json
import socket
import struct
import sys
import threading
import time
import traceback
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any, Protocol

import orjson

from .faults import BODY_FAULTS, Fault, FaultScript

__all__ = ["App", "FakeAPIServer", "Request", "Response", "Route", "Stats", "unused_port"]


@dataclass
class Request:
    method: str
    path: str
    query: str
    #: lower-cased names
    headers: dict[str, str]
    body: bytes
    #: the parsed JSON body, or None when the body is empty or not JSON
    json: Any
    #: the API key it carried (``Authorization: Bearer``, ``x-api-key`` or ``api-key``), if any
    key: str | None
    #: when it arrived: ``time.monotonic()`` and ``time.time()``
    at: float = field(default_factory=time.monotonic)
    wall: float = field(default_factory=time.time)


@dataclass
class Response:
    status: int = 200
    json: Any = None
    #: raw bytes; when set, ``json`` is ignored
    body: bytes | None = None
    headers: dict[str, str] = field(default_factory=dict)
    content_type: str = "application/json"

    def payload(self) -> bytes:
        if self.body is not None:
            return self.body
        return orjson.dumps(self.json, option=orjson.OPT_SERIALIZE_NUMPY)


#: handler(request, body_fault) -> response; ``body_fault`` is a fault to apply to a good answer, or None
Handler = Callable[[Request, Fault | None], Response]


@dataclass(frozen=True)
class Route:
    method: str
    path: str
    handler: Handler
    #: faults and latency apply (health and listing endpoints say False)
    faultable: bool = True


class App(Protocol):
    def routes(self) -> list[Route]: ...
    def error(self, status: int, message: str, code: str | None = None) -> Response: ...
    def key_of(self, request: Request) -> str | None: ...
    def authenticate(self, request: Request) -> Response | None: ...
    def bind(self, server: FakeAPIServer) -> None: ...


@dataclass
class KeyStats:
    requests: int = 0
    texts: int = 0
    tokens: int = 0


class Stats:
    """Counters, updated under a lock: every request (``requests``, ``by_path``, ``by_key``), what the good
    answers carried (``texts``, ``tokens``), and the most requests in progress at once (``max_in_flight``)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.requests = 0
        self.by_path: Counter[str] = Counter()
        self.by_status: Counter[int] = Counter()
        self.by_key: dict[str | None, KeyStats] = {}
        self.texts = 0
        self.tokens = 0
        self.in_flight = 0
        self.max_in_flight = 0

    def begin(self, path: str, key: str | None) -> None:
        with self.lock:
            self.requests += 1
            self.by_path[path] += 1
            self.by_key.setdefault(key, KeyStats()).requests += 1
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)

    def end(self, status: int | None) -> None:
        with self.lock:
            self.in_flight -= 1
            if status is not None:
                self.by_status[status] += 1

    def served(self, key: str | None, texts: int, tokens: int) -> None:
        """Called by a handler for a good answer."""
        with self.lock:
            self.texts += texts
            self.tokens += tokens
            k = self.by_key.setdefault(key, KeyStats())
            k.texts += texts
            k.tokens += tokens


class _Reset(Exception):
    """Raised by the handler after resetting the connection on purpose."""


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    timeout = 30  # an idle keep-alive connection is dropped after this
    server: _HTTPServer

    def setup(self) -> None:
        super().setup()
        # headers and body go out as two writes: without this, Nagle + delayed ACK add 40 ms per answer
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.server.fake._opened(self.connection)

    def finish(self) -> None:
        try:
            super().finish()
        finally:
            self.server.fake._closed(self.connection)

    def do_GET(self) -> None:  # noqa: N802 - the stdlib's naming
        self.server.fake._dispatch(self, "GET")

    def do_POST(self) -> None:  # noqa: N802
        self.server.fake._dispatch(self, "POST")

    def do_DELETE(self) -> None:  # noqa: N802
        self.server.fake._dispatch(self, "DELETE")

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - quiet
        pass


class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    fake: FakeAPIServer

    def handle_error(self, request: Any, client_address: Any) -> None:
        exc = sys.exc_info()[1]
        if isinstance(exc, (_Reset, OSError)) or self.fake._stopping.is_set():
            return  # the client went away (it timed out) or we reset it on purpose
        self.fake.errors.append("".join(traceback.format_exc()))


class FakeAPIServer:
    def __init__(
        self, *apps: App, latency: float | Callable[[Request], float] = 0.0, seed: int = 0, record: bool = True
    ) -> None:
        if not apps:
            raise ValueError("FakeAPIServer needs at least one app")
        self.apps = apps
        #: seconds added before answering every faultable request, or a function of the request giving them
        #: (can be changed while running)
        self.latency = latency
        self.faults = FaultScript(seed)
        self.stats = Stats()
        self.record = record
        #: every request received, in arrival order (when ``record``)
        self.requests: list[Request] = []
        #: requests that broke the protocol (the test's client is wrong): one line each
        self.violations: list[str] = []
        #: unexpected exceptions inside the fake (bugs in the fake)
        self.errors: list[str] = []
        self._routes: dict[tuple[str, str], tuple[Route, App]] = {}
        for app in apps:
            app.bind(self)
            for route in app.routes():
                self._routes[(route.method, route.path)] = (route, app)
        self._stopping = threading.Event()
        self._conns: set[socket.socket] = set()
        self._conns_lock = threading.Lock()
        self._httpd: _HTTPServer | None = None
        self._port: int | None = None
        self._thread: threading.Thread | None = None

    # --- lifecycle -------------------------------------------------------------------------------------

    @property
    def port(self) -> int:
        """The port it listens on (still known after it stopped: nothing listens there then)."""
        if self._port is None:
            raise RuntimeError("the fake server was never started")
        return self._port

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def url(self, path: str = "") -> str:
        return self.base_url + path

    def start(self) -> FakeAPIServer:
        self._stopping.clear()
        self._httpd = _HTTPServer(("127.0.0.1", 0), _Handler)
        self._httpd.fake = self
        self._port = int(self._httpd.server_address[1])
        self._thread = threading.Thread(target=self._httpd.serve_forever, args=(0.02,), name="fake-api", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._httpd is None:
            return
        self._stopping.set()  # wakes handlers sleeping in a latency or delay
        self._httpd.shutdown()
        with self._conns_lock:
            for conn in list(self._conns):
                try:
                    conn.shutdown(socket.SHUT_RDWR)  # wakes handlers waiting on idle keep-alive connections
                except OSError:
                    pass
        self._httpd.server_close()  # joins the handler threads
        if self._thread is not None:
            self._thread.join()
        self._httpd = None

    def __enter__(self) -> FakeAPIServer:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
        if exc_type is None and self.errors:
            raise AssertionError("the fake API server failed:\n" + "\n".join(self.errors))

    # --- scripting -------------------------------------------------------------------------------------

    def fail(self, *faults: Fault) -> None:
        """Queue faults (see :class:`~vexrun.testing.fake_api.faults.Fault`)."""
        self.faults.add(*faults)

    def violation(self, request: Request, problem: str) -> None:
        self.violations.append(f"{request.method} {request.path}: {problem}")

    def sleep(self, seconds: float) -> None:
        """Sleep, but wake up at once when the server stops."""
        if seconds > 0:
            self._stopping.wait(seconds)

    # --- serving ---------------------------------------------------------------------------------------

    def _opened(self, conn: socket.socket) -> None:
        with self._conns_lock:
            self._conns.add(conn)

    def _closed(self, conn: socket.socket) -> None:
        with self._conns_lock:
            self._conns.discard(conn)

    def _dispatch(self, h: _Handler, method: str) -> None:
        path, _, query = h.path.partition("?")
        length = int(h.headers.get("content-length") or 0)
        body = h.rfile.read(length) if length else b""
        headers = {k.lower(): v for k, v in h.headers.items()}
        try:
            parsed = json.loads(body) if body else None
        except ValueError:
            parsed = None
        found = self._routes.get((method, path))
        app = found[1] if found else self.apps[0]
        request = Request(method, path, query, headers, body, parsed, None)
        request.key = app.key_of(request)
        if self.record:
            self.requests.append(request)
        self.stats.begin(path, request.key)
        status: int | None = None
        try:
            response = self._respond(request, found, app, h)
            status = response.status
            self._write(h, response)
        finally:
            self.stats.end(status)

    def _respond(self, request: Request, found: tuple[Route, App] | None, app: App, h: _Handler) -> Response:
        if found is None:
            allowed = any(p == request.path for (_, p) in self._routes)
            if allowed:
                return app.error(405, f"method {request.method} not allowed on {request.path}")
            return app.error(404, f"no route {request.path}")
        route, _ = found
        if route.faultable:
            self.sleep(self.latency(request) if callable(self.latency) else self.latency)
        denied = app.authenticate(request)
        if denied is not None:
            return denied
        fault = self.faults.pick(request.path, request.key) if route.faultable else None
        if fault is not None and fault.kind == "delay":
            self.sleep(fault.seconds)
            fault = None
        elif fault is not None and fault.kind == "reset":
            self._reset(h)
        elif fault is not None and fault.kind == "status":
            message = fault.message or _DEFAULT_MESSAGES.get(fault.status, "error")
            response = app.error(fault.status, message, fault.code)
            response.headers.update(fault.headers)
            if fault.retry_after_date:
                response.headers["retry-after"] = email.utils.formatdate(time.time() + fault.seconds, usegmt=True)
            return response
        response = route.handler(request, fault if fault is not None and fault.kind in BODY_FAULTS else None)
        if fault is not None and fault.kind == "malformed" and response.status < 400:
            data = response.payload()
            response.body = data[: max(1, len(data) // 2)]
        return response

    def _reset(self, h: _Handler) -> None:
        conn = h.connection
        conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        h.close_connection = True
        h.rfile.close()
        h.wfile.close()
        conn.close()  # with SO_LINGER 0: an RST, not a FIN
        raise _Reset

    def _write(self, h: _Handler, response: Response) -> None:
        data = response.payload()
        h.send_response(response.status)
        for name, value in response.headers.items():
            h.send_header(name, value)
        h.send_header("content-type", response.content_type)
        h.send_header("content-length", str(len(data)))
        h.end_headers()
        h.wfile.write(data)


_DEFAULT_MESSAGES = {
    400: "Bad request.",
    401: "Unauthorized.",
    403: "Forbidden.",
    404: "Not found.",
    429: "Rate limit reached.",
    500: "The server had an error while processing your request.",
    502: "Bad gateway.",
    503: "The engine is currently overloaded, please try again later.",
    504: "Gateway timeout.",
}


def unused_port() -> int:
    """A loopback port nothing listens on (for "connection refused")."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])
