"""Benchmark of ``vexrun sign`` and ``vexrun verify`` against a bare streamed BLAKE3 of the same file,
measured in the same run, with each command's own peak RSS.

    python bench/bench_sign.py                  # a 1 GB export (~200k records at 384-d)
    python bench/bench_sign.py --records 20000  # smaller
    python bench/bench_sign.py --dir /big/disk  # where the generated file goes (deleted after)

PASS when sign and verify reach 80% of the bare hash's throughput and stay under 100 MB RSS. The bare
hash and the vexrun commands run in their own processes; throughput is the file size over the time each
process spends on the file (it prints it), and wall times including interpreter start-up are shown too.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
from pathlib import Path

from vexrun.testing.git_servers import vexrun_argv
from vexrun.testing.rss import measure

BARE = """
import sys, time, blake3
t = time.perf_counter()
h = blake3.blake3(max_threads=blake3.blake3.AUTO)
buf = bytearray(8 << 20); view = memoryview(buf)
with open(sys.argv[1], "rb", buffering=0) as fh:
    while n := fh.readinto(buf):
        h.update(view[:n])
print(time.perf_counter() - t)
"""

TIMED = """
import sys, time
from pathlib import Path
import cryptography.exceptions
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519
from cryptography.hazmat.primitives.ciphers import aead
import vexrun.vmig.sidecar
from vexrun.crypto.keys import load_public_keys
from vexrun.crypto.sign import sign_file_detailed
from vexrun.crypto.verify import verify_file
which, path, key = sys.argv[1], Path(sys.argv[2]), sys.argv[3]
t = time.perf_counter()
if which == "sign":
    sign_file_detailed(path, key=key)
else:
    verify_file(path, pubkeys=load_public_keys(Path(key)))
print(time.perf_counter() - t)
"""

GENERATE = """
import sys
from vexrun.testing.data import write_synthetic
write_synthetic(sys.argv[1], int(sys.argv[2]), seed=11)
"""


def _median(cmd: list[str], env: dict[str, str], runs: int) -> tuple[float, float, float]:
    """(median seconds printed by the command, median wall seconds, max RSS MB)."""
    inner, wall, rss = [], [], []
    for _ in range(runs):
        m = measure(cmd, env=env)
        if m.code != 0:
            raise SystemExit(f"{cmd[:4]} failed: {m.err[-400:]}")
        last = m.out.strip().splitlines()[-1] if m.out.strip() else "nan"
        try:
            inner.append(float(last))
        except ValueError:
            inner.append(m.wall)
        wall.append(m.wall)
        rss.append(m.rss_mb)
    return statistics.median(inner), statistics.median(wall), max(rss)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--records", type=int, default=200_000)
    ap.add_argument("--dir", default=None)
    ap.add_argument("--runs", type=int, default=3)
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="vexrun-bench-sign-", dir=args.dir))
    try:
        data = work / "export.vmig.jsonl"
        m = measure([sys.executable, "-c", GENERATE, str(data), str(args.records)])
        assert m.code == 0, m.err
        size = data.stat().st_size
        env = {**os.environ, "XDG_CONFIG_HOME": str(work / "cfg"), "XDG_STATE_HOME": str(work / "state")}
        gen = measure(vexrun_argv("keys", "generate", "--no-passphrase"), env=env)
        assert gen.code == 0, gen.err
        key = next((work / "cfg" / "vexrun" / "keys").glob("*.key"))
        pub = key.with_suffix(".pub")
        with open(data, "rb") as fh:  # warm the page cache: every contender reads from memory
            while fh.read(64 << 20):
                pass
        bare_s, bare_wall, bare_rss = _median([sys.executable, "-c", BARE, str(data)], env, args.runs)
        rows = [("bare BLAKE3 (8 MiB reads, all cores)", bare_s, bare_wall, bare_rss, None)]
        ok = True
        for which in ("sign", "verify"):
            lib_s, _, _ = _median(
                [sys.executable, "-c", TIMED, which, str(data), str(key if which == "sign" else pub)], env, args.runs
            )
            cli = (
                vexrun_argv("sign", str(data))
                if which == "sign"
                else vexrun_argv("verify", str(data), "--pubkey", str(pub))
            )
            _, cli_wall, cli_rss = _median(cli, env, args.runs)
            ratio = bare_s / lib_s
            passed = ratio >= 0.8 and cli_rss < 100
            ok &= passed
            rows.append((f"vexrun {which}", lib_s, cli_wall, cli_rss, (ratio, passed)))
        print(f"file: {size / 1e9:.2f} GB, {args.records:,} records; median of {args.runs} runs, warm cache")
        print(f"{'':40} {'file time':>10} {'GB/s':>7} {'CLI wall':>9} {'RSS MB':>7}  vs bare")
        for name, secs, wall, rss, verdict in rows:
            tail = "" if verdict is None else f"{verdict[0] * 100:5.0f}%  {'PASS' if verdict[1] else 'FAIL'}"
            print(f"{name:40} {secs:9.3f}s {size / secs / 1e9:7.2f} {wall:8.2f}s {rss:7.1f}  {tail}")
        print("criteria: >= 80% of the bare hash's throughput, RSS < 100 MB:", "PASS" if ok else "FAIL")
        print(json.dumps({"bench": "sign", "bytes": size, "ok": ok}))
        return 0 if ok else 1
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    raise SystemExit(main())
