"""Benchmark of ``vexrun sync``: push of a 1 GB export (encryption throughput against the bare read speed
of the same file, measured in the same run; peak RSS), an incremental push after changing one record
(objects and bytes uploaded, and what checking the objects it reuses costs), a restore on a fresh state
directory (time and RSS), and ``sync check`` / ``sync check --read-data`` on that restored machine against a
bare decrypt (read + Cobblestone-256, nothing else) of the same objects.

    python bench/bench_sync.py                  # ~1 GB (200k records at 384-d)
    python bench/bench_sync.py --records 20000  # smaller
    python bench/bench_sync.py --dir /big/disk  # where the export, the remote and the clones go

The remote is a bare repository served by ``git daemon`` on 127.0.0.1 (a separate process, so the RSS
figures are vexrun's and its git client's, not the server's); it keeps pushed packs as they arrive
(``receive.unpackLimit=1``), as large forges do. "Encryption
throughput" is the plaintext encrypted over the time the push spends in Cobblestone-256 encryption; the
same with the keyed BLAKE3 object ids added, the whole bucket+encrypt pass (reading the file twice,
bucketing, sorting, writing the objects) and git's commit+push are reported beside it. PASS: throughput
>= 50% of the bare read speed, push RSS < 150 MB, the push after one changed record uploads exactly
one object, and ``check --read-data`` finds the backup clean. The check figures are reported, not judged:
its object phase against the bare decrypt (best of two each, warm page cache), and the whole command.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

from vexrun.testing.git_servers import BareRepo, GitDaemon, vexrun_argv
from vexrun.testing.rss import measure

GENERATE = """
import sys
from vexrun.testing.data import write_synthetic
write_synthetic(sys.argv[1], int(sys.argv[2]), seed=5)
"""

BARE_DECRYPT = """
import json, os, sys, time
from pathlib import Path
from vexrun.crypto import cobblestone
from vexrun.sync.engine import open_session
from vexrun.sync.formats import object_path
from vexrun.sync.workspace import Secrets
s = open_session(Path(sys.argv[1]), token=None, secrets=Secrets(os.environ["VEXRUN_PASSPHRASE"]))
t = time.perf_counter()
n = 0
for o in s.manifest["objects"]:
    data = s.ws.path(object_path(o["id"])).read_bytes()
    ctx = b"vexrun/v1/object\\x00" + s.repo.repo_id + bytes.fromhex(o["id"])  # the format's object context
    cobblestone.decrypt(s.keys.k_obj, ctx, data)
    n += len(data)
print(json.dumps({"seconds": time.perf_counter() - t, "bytes": n, "objects": len(s.manifest["objects"])}))
"""

BARE_READ = """
import sys, time
t = time.perf_counter()
buf = bytearray(8 << 20)
with open(sys.argv[1], "rb", buffering=0) as fh:
    while fh.readinto(buf):
        pass
print(time.perf_counter() - t)
"""


def _run(cmd: list[str], env: dict[str, str]) -> tuple[dict, float, float]:
    m = measure(cmd, env=env)
    if m.code != 0:
        raise SystemExit(f"{' '.join(cmd[3:6])} failed ({m.code}): {m.err[-600:]}")
    try:
        out = json.loads(m.out) if m.out.strip().startswith("{") else {}
    except json.JSONDecodeError:
        out = {}
    return out, m.wall, m.rss_mb


def _change_one_record(path: Path) -> None:
    """Flip one record's flag in place (same length), in the middle of the file."""
    size = path.stat().st_size
    with open(path, "r+b") as fh:
        fh.seek(size // 2)
        fh.readline()
        start = fh.tell()
        line = fh.readline()
        for old, new in ((b'"pinned":false', b'"pinned":true '), (b'"pinned":true', b'"pinned":false'[:-1] + b"e")):
            i = line.find(old)
            if i >= 0:
                fh.seek(start + i)
                fh.write(new if len(new) == len(old) else old)
                return
    raise SystemExit("no record to change")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--records", type=int, default=200_000)
    ap.add_argument("--dir", default=None)
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="vexrun-bench-sync-", dir=args.dir))
    with contextlib.ExitStack() as stack:
        stack.callback(shutil.rmtree, work, True)
        return _bench(args, work, stack)


def _bench(args: argparse.Namespace, work: Path, stack: contextlib.ExitStack) -> int:
    data = work / "export.vmig.jsonl"
    t = time.perf_counter()
    m = measure([sys.executable, "-c", GENERATE, str(data), str(args.records)])
    assert m.code == 0, m.err
    size = data.stat().st_size
    print(f"generated {size / 1e9:.2f} GB ({args.records:,} records) in {time.perf_counter() - t:.1f}s")
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("VEXRUN_")},
        "XDG_CONFIG_HOME": str(work / "cfg"),
        "XDG_STATE_HOME": str(work / "state"),
        "VEXRUN_PASSPHRASE": "bench passphrase",
    }
    reads = [float(measure([sys.executable, "-c", BARE_READ, str(data)]).out) for _ in range(3)]
    bare_s = statistics.median(reads)
    BareRepo(work / "srv" / "remote.git", keep_packs=True)
    daemon = GitDaemon(work / "srv")
    daemon.start()
    stack.callback(daemon.stop)
    url = daemon.url_for("remote.git")
    a = ["sync", "--state-dir", str(work / "a")]
    b = ["sync", "--state-dir", str(work / "b")]
    _run(vexrun_argv(*a, "init", url), env)
    first, push_wall, push_rss = _run(vexrun_argv(*a, "push", str(data), "--json"), env)
    t = first["timings"]
    enc_only = t["encrypt"]
    crypto = t["encrypt"] + t["object-ids"]
    pipeline = first["timings"]["bucket+encrypt"]
    _change_one_record(data)
    second, push2_wall, push2_rss = _run(vexrun_argv(*a, "push", str(data), "--json"), env)
    _, attach_wall, attach_rss = _run(vexrun_argv(*b, "init", "--restore", url), env)
    restored = work / "restored.vmig.jsonl"
    _, pull_wall, pull_rss = _run(vexrun_argv(*b, "pull", "--out", str(restored), "--json"), env)
    check_s, _, _ = _run(vexrun_argv(*b, "check", "--json"), env)
    bare_runs = [_run([sys.executable, "-c", BARE_DECRYPT, str(work / "b")], env)[0] for _ in range(2)]
    read_runs = [_run(vexrun_argv(*b, "check", "--read-data", "--json"), env) for _ in range(2)]
    daemon.stop()
    identical = restored.read_bytes() == data.read_bytes() if size < 4e9 else None
    read_gbs = size / bare_s / 1e9
    enc_gbs = first["bytes_encrypted"] / enc_only / 1e9
    crypto_gbs = first["bytes_encrypted"] / crypto / 1e9
    pipe_gbs = size / pipeline / 1e9
    ok_tp = enc_gbs >= 0.5 * read_gbs
    ok_rss = push_rss < 150
    ok_one = second["objects_uploaded"] == 1
    print(f"bare read (warm, 8 MiB reads):  {read_gbs:6.2f} GB/s")
    print(
        f"push 1 (all new):   {push_wall:6.1f}s wall, RSS {push_rss:5.1f} MB; {first['objects_uploaded']} objects, "
        f"{first['bytes_pushed'] / 1e6:,.0f} MB pushed"
    )
    print("  phases: " + ", ".join(f"{k} {v:.2f}s" for k, v in first["timings"].items()))
    print(
        f"  encryption throughput (Cobblestone-256): {enc_gbs:.2f} GB/s = "
        f"{enc_gbs / read_gbs * 100:.0f}% of bare read  " + ("PASS" if ok_tp else "FAIL")
    )
    print(
        f"  with the keyed BLAKE3 object ids: {crypto_gbs:.2f} GB/s = {crypto_gbs / read_gbs * 100:.0f}% of bare read"
    )
    print(
        f"  whole bucket+encrypt pass (read twice, bucket, sort, encrypt, write objects): {pipe_gbs:.2f} GB/s "
        f"= {pipe_gbs / read_gbs * 100:.0f}% of bare read; git commit+push {first['timings']['commit+push']:.1f}s"
    )
    print(f"  RSS < 150 MB: {'PASS' if ok_rss else 'FAIL'}")
    print(
        f"push 2 (one record changed): {push2_wall:6.1f}s wall, RSS {push2_rss:5.1f} MB; "
        f"{second['objects_uploaded']} object(s) of {second['objects_total']}, "
        f"{second['bytes_pushed']:,} bytes pushed  {'PASS' if ok_one else 'FAIL'}"
    )
    print(f"restore on a fresh state dir: attach (shallow clone) {attach_wall:.1f}s, RSS {attach_rss:.1f} MB; "
          f"pull {pull_wall:.1f}s, RSS {pull_rss:.1f} MB; identical: {identical}")  # fmt: skip
    bare_dec = min(r["seconds"] for r in bare_runs)
    best = min(read_runs, key=lambda r: r[0]["timings"]["objects"])
    read_data, read_wall, read_rss = best
    objects_s = read_data["timings"]["objects"]
    ok_check = read_data["ok"] and check_s["ok"]
    verify = second["timings"]["verify-reused"]
    print(
        f"sync check (structure: size + key commitment of {check_s['objects']} objects): "
        f"{check_s['timings']['objects'] * 1000:.1f} ms for the objects, {check_s['seconds']:.2f}s in all"
    )
    print(
        f"sync check --read-data: objects {objects_s:.2f}s for {read_data['bytes_read'] / 1e9:.2f} GB "
        f"({read_data['bytes_read'] / objects_s / 1e9:.2f} GB/s), whole command {read_wall:.1f}s wall, "
        f"RSS {read_rss:.1f} MB; bare decrypt of the same objects {bare_dec:.2f}s "
        f"({bare_runs[0]['bytes'] / bare_dec / 1e9:.2f} GB/s): {objects_s / bare_dec:.2f}x  "
        + ("clean" if ok_check else "FAIL: problems reported")
    )
    print(
        f"push 2: checking the {second['objects_total'] - second['objects_uploaded']} reused objects took "
        f"{verify * 1000:.1f} ms = {verify / bare_dec * 100:.2f}% of a bare decrypt of the backup"
    )
    ok = ok_tp and ok_rss and ok_one and identical is not False and ok_check
    print("criteria:", "PASS" if ok else "FAIL")
    print(json.dumps({"bench": "sync", "bytes": size, "ok": ok}))
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
