"""Run the fake Pinecone as its own process: ``python -m vexrun.testing.pinecone [--index NAME:DIMS[:METRIC]]``.

The API key comes from ``FAKE_PINECONE_API_KEY`` (never from the command line, which other users can read).
Once listening it prints one JSON line, ``{"control": URL, "indexes": {name: host}}``, and serves until
SIGTERM or SIGINT.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import threading

from .limits import Limits
from .server import FakePinecone


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m vexrun.testing.pinecone", description=__doc__.splitlines()[0])
    parser.add_argument("--index", action="append", default=[], help="create an index NAME:DIMS[:METRIC] at start")
    parser.add_argument("--upserts-per-second", type=float, default=100.0, help="per namespace (0: no limit)")
    parser.add_argument("--burst-seconds", type=float, default=1.0, help="seconds of rate a bucket holds")
    parser.add_argument("--no-read-limits", action="store_true", help="no rate limit on fetch/list/query/stats")
    args = parser.parse_args(argv)
    limits = Limits(upserts_per_second=args.upserts_per_second or None, burst_seconds=args.burst_seconds)
    if args.no_read_limits:
        limits.fetches_per_second = limits.lists_per_second = limits.queries_per_second = None
        limits.stats_per_second = None
    fake = FakePinecone(os.environ.get("FAKE_PINECONE_API_KEY", "fake-pinecone-key"), limits=limits).start()
    hosts = {}
    for spec in args.index:
        name, dims, *rest = spec.split(":")
        hosts[name] = fake.create_index(name, int(dims), rest[0] if rest else "cosine")
    done = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: done.set())
    print(json.dumps({"control": fake.control_url, "indexes": hosts}), flush=True)
    while not done.wait(0.5):
        pass
    fake.stop()
    if fake.errors:
        print("\n".join(fake.errors), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
