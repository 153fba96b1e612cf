"""The fake Weaviate's two listeners, both on 127.0.0.1 on ephemeral ports in background threads: REST (HTTP/1.1
with keep-alive, the shape of :mod:`vexrun.testing.pinecone.server`) and gRPC (``grpc.server`` with the
client's own generated servicer, see :mod:`.grpc_api`).
"""

from __future__ import annotations

import hmac
import socket
import sys
import threading
import traceback
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any

from .data import Store
from .grpc_api import Servicer, add_health
from .rest import Answer, Rest

__all__ = ["GRPC_MAX_MESSAGE", "VERSION", "FakeWeaviate"]

#: The server version the fake reports (``/v1/meta``): the client shapes its requests by it (near_vector as
#: ``vectors``, aggregate over gRPC, tenants by gRPC); below 1.36 so ``collection.batch`` uses BatchObjects.
VERSION = "1.35.23"
#: Weaviate's default ``GRPC_MAX_MESSAGE_SIZE``, announced in ``/v1/meta``.
GRPC_MAX_MESSAGE = 104_858_000
#: Weaviate's default ``QUERY_MAXIMUM_RESULTS``: offset + limit of a search, and objects per batch delete.
MAX_RESULTS = 10_000


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    timeout = 60
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
        length = int(self.headers.get("content-length") or 0)
        body = self.rfile.read(length) if length else b""
        headers = {k.lower(): v for k, v in self.headers.items()}
        try:
            answer = self.server.fake.rest.handle(self.command, self.path, headers, body)
        except Exception:  # noqa: BLE001 - a bug in the fake: recorded, answered 500
            self.server.fake.errors.append(traceback.format_exc())
            answer = Answer(500, b'{"error":[{"message":"internal error in the fake Weaviate"}]}')
        self.send_response(answer.status)
        for name, value in answer.headers.items():
            self.send_header(name, value)
        if self.command != "HEAD":
            self.send_header("content-length", str(len(answer.body)))
        self.end_headers()
        if self.command != "HEAD" and answer.body:
            self.wfile.write(answer.body)

    do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = do_HEAD = _serve  # noqa: N815 - the stdlib's naming

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - quiet
        pass


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    fake: FakeWeaviate

    def handle_error(self, request: Any, client_address: Any) -> None:
        exc = sys.exc_info()[1]
        if isinstance(exc, OSError) or self.fake._stopping.is_set():
            return
        self.fake.errors.append(traceback.format_exc())


class FakeWeaviate:
    """A Weaviate node on loopback, for weaviate-client v4::

        with FakeWeaviate(api_keys="secret") as fake:
            client = weaviate.connect_to_custom(
                http_host="127.0.0.1", http_port=fake.http_port, http_secure=False,
                grpc_host="127.0.0.1", grpc_port=fake.grpc_port, grpc_secure=False,
                auth_credentials=weaviate.auth.AuthApiKey("secret"),
            )

    ``api_keys`` None: anonymous access (no key checked). ``autoschema`` as ``AUTOSCHEMA_ENABLED`` (on by
    default on a server). ``errors`` collects exceptions inside the fake itself (bugs), raised at exit.
    """

    def __init__(
        self,
        api_keys: str | Iterable[str] | None = None,
        *,
        autoschema: bool = True,
        max_results: int = MAX_RESULTS,
        version: str = VERSION,
        grpc_workers: int = 8,
    ) -> None:
        self.api_keys = None if api_keys is None else ({api_keys} if isinstance(api_keys, str) else set(api_keys))
        self.store = Store(autoschema=autoschema)
        self.rest = Rest(self.store, self.check_key, version, GRPC_MAX_MESSAGE)
        self.servicer = Servicer(self.store, self.check_key, max_results)
        self.grpc_workers = grpc_workers
        self.errors: list[str] = []
        self.http_port = 0
        self.grpc_port = 0
        self._http: _Server | None = None
        self._thread: threading.Thread | None = None
        self._grpc: Any = None
        self._stopping = threading.Event()
        self._conns: set[socket.socket] = set()
        self._conns_lock = threading.Lock()

    def check_key(self, token: str | None) -> bool:
        if self.api_keys is None:
            return True
        return token is not None and any(hmac.compare_digest(token, key) for key in self.api_keys)

    @property
    def url(self) -> str:
        """The REST address (``http://127.0.0.1:PORT``)."""
        return f"http://127.0.0.1:{self.http_port}"

    # -- lifecycle --------------------------------------------------------------------------------------------
    def start(self) -> FakeWeaviate:
        import grpc  # type: ignore[import-untyped]
        from weaviate.proto.v1 import weaviate_pb2_grpc

        self._stopping.clear()
        httpd = _Server(("127.0.0.1", 0), _Handler)
        httpd.fake = self
        self._http = httpd
        self.http_port = int(httpd.server_address[1])
        self.rest.host = f"http://127.0.0.1:{self.http_port}"
        self._thread = threading.Thread(
            target=httpd.serve_forever, args=(0.05,), name="fake-weaviate-rest", daemon=True
        )
        self._thread.start()
        options = [
            ("grpc.max_receive_message_length", GRPC_MAX_MESSAGE),
            ("grpc.max_send_message_length", GRPC_MAX_MESSAGE),
            ("grpc.so_reuseport", 0),
        ]
        server = grpc.server(
            ThreadPoolExecutor(max_workers=self.grpc_workers, thread_name_prefix="fake-weaviate"), options=options
        )
        weaviate_pb2_grpc.add_WeaviateServicer_to_server(self.servicer, server)  # type: ignore[no-untyped-call]
        add_health(server)
        self.grpc_port = int(server.add_insecure_port("127.0.0.1:0"))
        server.start()
        self._grpc = server
        return self

    def stop(self) -> None:
        self._stopping.set()
        if self._grpc is not None:
            self._grpc.stop(grace=None).wait()
            self._grpc = None
        if self._http is not None:
            self._http.shutdown()
            with self._conns_lock:
                for conn in list(self._conns):
                    try:
                        conn.shutdown(socket.SHUT_RDWR)
                    except OSError:
                        pass
            self._http.server_close()
            if self._thread is not None:
                self._thread.join()
            self._http = None

    def __enter__(self) -> FakeWeaviate:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
        if exc_type is None and self.errors:
            raise AssertionError("the fake Weaviate failed:\n" + "\n".join(self.errors))

    def _opened(self, conn: socket.socket) -> None:
        with self._conns_lock:
            self._conns.add(conn)

    def _closed(self, conn: socket.socket) -> None:
        with self._conns_lock:
            self._conns.discard(conn)

    # -- for tests --------------------------------------------------------------------------------------------
    def client(self, api_key: str | None = None, **kwargs: Any) -> Any:
        """A connected ``weaviate.WeaviateClient`` on this fake (close it when done)."""
        return connect(self.http_port, self.grpc_port, api_key, **kwargs)

    def count(self, collection: str, tenant: str = "") -> int:
        """Objects a collection holds (in one tenant, or in all of them with ``tenant`` empty)."""
        with self.store.lock:
            coll = self.store.need(collection)
            shards = [coll.shards[tenant]] if tenant else list(coll.shards.values())
            return sum(len(s.objects) for s in shards)


def connect(http_port: int, grpc_port: int, api_key: str | None = None, **kwargs: Any) -> Any:
    """weaviate-client v4 on a fake at these ports (``skip_init_checks``: no call to pypi.org; REST and gRPC are
    reached at the first request)."""
    import weaviate
    from weaviate.auth import AuthApiKey

    return weaviate.connect_to_custom(
        http_host="127.0.0.1",
        http_port=http_port,
        http_secure=False,
        grpc_host="127.0.0.1",
        grpc_port=grpc_port,
        grpc_secure=False,
        auth_credentials=AuthApiKey(api_key) if api_key else None,
        skip_init_checks=kwargs.pop("skip_init_checks", True),
        **kwargs,
    )
