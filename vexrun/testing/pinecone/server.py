"""The loopback servers of a fake Pinecone project: one for the control plane and one per index (each index has
its own host, as on Pinecone), all on 127.0.0.1 on ephemeral ports, in background threads.

The scaffolding is the shape of :mod:`vexrun.testing.fake_api.server` (threaded HTTP/1.1 with keep-alive,
``TCP_NODELAY``, every connection tracked so ``stop`` wakes and joins them), with routes that carry path
parameters (``/indexes/{name}``) and JSON parsed by orjson: an upsert body is up to 2 MB of floats.
"""

from __future__ import annotations

import socket
import sys
import threading
import traceback
from collections.abc import Iterable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any

import orjson

from .api import Answer, ControlPlane, DataPlane, Request, data_error, unauthorized
from .data import IndexData, Refused
from .limits import Limits, RateLimiter, Stats

__all__ = ["FakePinecone"]


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    timeout = 60  # an idle keep-alive connection is dropped after this
    server: _Server

    def setup(self) -> None:
        super().setup()
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.server.fake._opened(self.connection)

    def finish(self) -> None:
        try:
            super().finish()
        finally:
            self.server.fake._closed(self.connection)

    def _serve(self) -> None:
        self.server.fake._dispatch(self, self.server.index_name)

    do_GET = do_POST = do_DELETE = do_PATCH = _serve  # noqa: N815 - the stdlib's naming

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - quiet
        pass


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    fake: FakePinecone
    index_name: str | None

    def handle_error(self, request: Any, client_address: Any) -> None:
        exc = sys.exc_info()[1]
        if isinstance(exc, OSError) or self.fake._stopping.is_set():
            return  # the client went away
        self.fake.errors.append("".join(traceback.format_exc()))


class _Fault:
    def __init__(self, path: str, status: int, times: int, message: str, retry_after: float | None) -> None:
        self.path, self.status, self.times, self.message, self.retry_after = path, status, times, message, retry_after


class FakePinecone:
    """A Pinecone project on loopback: ``control_url`` for ``Pinecone(api_key=..., host=control_url)``, and
    the host of each index (``create_index`` here, or ``POST /indexes`` through the SDK) for
    ``Index(host=...)``. Requests need one of ``api_keys`` in ``Api-Key``.

    ::

        with FakePinecone("test-key") as fake:
            host = fake.create_index("memories", 384)
            index = Pinecone(api_key="test-key").Index(host=host)
            ...
            assert fake.stats.snapshot()["throttled_total"] == 0
    """

    def __init__(self, api_keys: str | Iterable[str] = "fake-pinecone-key", *, limits: Limits | None = None) -> None:
        self.api_keys = {api_keys} if isinstance(api_keys, str) else set(api_keys)
        self.limits = limits or Limits()
        self.limiter = RateLimiter(self.limits)
        self.stats = Stats()
        self.indexes: dict[str, IndexData] = {}
        #: unexpected exceptions inside the fake (bugs in the fake)
        self.errors: list[str] = []
        self._servers: dict[str | None, tuple[_Server, threading.Thread]] = {}
        self._faults: list[_Fault] = []
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._conns: set[socket.socket] = set()
        self._conns_lock = threading.Lock()
        self.control = ControlPlane(self.indexes, self.host, self._open_index, self._drop_index)

    # --- lifecycle -------------------------------------------------------------------------------------------
    def start(self) -> FakePinecone:
        self._stopping.clear()
        self._listen(None)
        return self

    def stop(self) -> None:
        self._stopping.set()
        with self._lock:
            servers = list(self._servers.values())
            self._servers.clear()
        for httpd, _ in servers:
            httpd.shutdown()
        with self._conns_lock:
            for conn in list(self._conns):
                try:
                    conn.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
        for httpd, thread in servers:
            httpd.server_close()
            thread.join()

    def __enter__(self) -> FakePinecone:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
        if exc_type is None and self.errors:
            raise AssertionError("the fake Pinecone failed:\n" + "\n".join(self.errors))

    @property
    def control_url(self) -> str:
        return self._url(None)

    def host(self, name: str) -> str:
        """The data-plane URL of an index (``http://127.0.0.1:PORT``)."""
        return self._url(name)

    def _url(self, name: str | None) -> str:
        with self._lock:
            found = self._servers.get(name)
        if found is None:
            raise KeyError(f"no listener for {'the control plane' if name is None else 'index ' + name}")
        return f"http://127.0.0.1:{found[0].server_address[1]}"

    def _listen(self, name: str | None) -> None:
        httpd = _Server(("127.0.0.1", 0), _Handler)
        httpd.fake = self
        httpd.index_name = name
        thread = threading.Thread(
            target=httpd.serve_forever, args=(0.05,), name=f"fake-pinecone-{name or 'control'}", daemon=True
        )
        with self._lock:
            self._servers[name] = (httpd, thread)
        thread.start()

    def _open_index(self, index: IndexData) -> None:
        self.indexes[index.name] = index
        self._listen(index.name)

    def _drop_index(self, name: str) -> None:
        self.indexes.pop(name, None)
        with self._lock:
            found = self._servers.pop(name, None)
        if found is not None:
            threading.Thread(target=_close, args=(found[0],), daemon=True).start()

    # --- setting up and scripting ----------------------------------------------------------------------------
    def create_index(
        self, name: str, dimension: int, metric: str = "cosine", *, cloud: str = "aws", region: str = "us-east-1"
    ) -> str:
        """Create a dense index (as ``POST /indexes`` does) and return its host."""
        if name in self.indexes:
            raise ValueError(f"index {name} exists")
        self._open_index(IndexData(name, dimension, metric, cloud, region))
        return self.host(name)

    def fail(
        self,
        path: str,
        status: int,
        *,
        times: int = 1,
        message: str = "injected failure",
        retry_after: float | None = None,
    ) -> None:
        """Answer the next ``times`` requests to ``path`` (any index) with ``status``."""
        with self._lock:
            self._faults.append(_Fault(path, status, times, message, retry_after))

    def _fault(self, path: str) -> _Fault | None:
        with self._lock:
            for fault in self._faults:
                if fault.path == path and fault.times > 0:
                    fault.times -= 1
                    return fault
        return None

    # --- serving ---------------------------------------------------------------------------------------------
    def _opened(self, conn: socket.socket) -> None:
        with self._conns_lock:
            self._conns.add(conn)

    def _closed(self, conn: socket.socket) -> None:
        with self._conns_lock:
            self._conns.discard(conn)

    def _dispatch(self, h: _Handler, index_name: str | None) -> None:
        path, _, query = h.path.partition("?")
        length = int(h.headers.get("content-length") or 0)
        body = h.rfile.read(length) if length else b""
        req = Request(h.command, path, query, {k.lower(): v for k, v in h.headers.items()}, body)
        self.stats.begin(f"{h.command} {_route(path) if index_name is None else path}", len(body))
        try:
            answer = self._answer(req, index_name)
        except Exception:  # noqa: BLE001 - a bug in the fake: kept for the test to report, answered as a 500
            self.errors.append(traceback.format_exc())
            answer = data_error(Refused(500, "internal error in the fake", 13))
        self.stats.end(answer.status)
        h.send_response(answer.status)
        for name, value in answer.headers.items():
            h.send_header(name, value)
        h.send_header("content-type", answer.content_type)
        h.send_header("content-length", str(len(answer.body)))
        h.end_headers()
        h.wfile.write(answer.body)

    def _answer(self, req: Request, index_name: str | None) -> Answer:
        control = index_name is None
        if control and req.path == "/_fake/stats":
            return Answer(200, orjson.dumps(self.stats.snapshot()))
        if req.headers.get("api-key") not in self.api_keys:
            return unauthorized(control)
        fault = self._fault(req.path)
        if fault is not None:
            answer = data_error(Refused(fault.status, fault.message, 8 if fault.status == 429 else 13))
            if fault.retry_after is not None:
                answer.headers["retry-after"] = f"{fault.retry_after:g}"
            return answer
        if control:
            return self.control.handle(req)
        index = self.indexes.get(index_name or "")
        if index is None:
            return data_error(Refused(404, f"Index {index_name} not found", 5))
        plane = DataPlane(index, self.limits, self.limiter, self.stats)
        route = plane.routes.get((req.method, req.path))
        if route is None:
            return data_error(Refused(404, f"Not found: {req.method} {req.path}", 5))
        try:
            return route(req)
        except Refused as exc:
            return data_error(exc, self.limits.retry_after)


def _route(path: str) -> str:
    return "/indexes/{name}" if path.startswith("/indexes/") else path


def _close(httpd: _Server) -> None:
    httpd.shutdown()
    httpd.server_close()
