"""``python -m vexrun.testing.fake_weaviate``: the fake Weaviate as its own process. It prints one JSON line
``{"url": ..., "http_port": ..., "grpc_port": ...}`` once both listeners are up, then serves until SIGTERM or
SIGINT. The API key it accepts is read from ``FAKE_WEAVIATE_API_KEY`` (unset: anonymous access)."""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import threading

from .server import FakeWeaviate


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m vexrun.testing.fake_weaviate", description=__doc__)
    parser.add_argument("--no-autoschema", action="store_true", help="refuse properties the schema does not have")
    parser.add_argument("--grpc-workers", type=int, default=8)
    args = parser.parse_args()
    key = os.environ.get("FAKE_WEAVIATE_API_KEY") or None
    fake = FakeWeaviate(key, autoschema=not args.no_autoschema, grpc_workers=args.grpc_workers).start()
    done = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: done.set())
    print(json.dumps({"url": fake.url, "http_port": fake.http_port, "grpc_port": fake.grpc_port}), flush=True)
    done.wait()
    fake.stop()
    if fake.errors:
        sys.stderr.write("\n".join(fake.errors))
        sys.exit(1)


if __name__ == "__main__":
    main()
