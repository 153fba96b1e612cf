"""`vexrun migrate` between every pair of the stores the conformance suite covers as source and sink: the records
arrive exactly (exported back to a file and compared field by field), and `vexrun compare` agrees.

Each store is loaded once from the same file; then each ordered pair (source → target) migrates that load into
a fresh collection of the target. The matrix is the stores of issue 12's acceptance that have a kit here
(``MATRIX``): a connector that cannot start fails its pairs, it never skips them.
"""

from __future__ import annotations

import json
import os
import uuid
from pathlib import Path
from typing import Any

import pytest

from conftest import vx

from .conftest import KITS, Running
from .test_conformance import _assert_same, _read, _recipe, _write_input

#: issue 12: migrate between every pair drawn from these (those with a conformance kit)
WANTED = ("vmig", "sqlite", "pgvector", "redis", "lancedb", "neo4j", "weaviate", "pinecone")
MATRIX = [s for s in WANTED if s in KITS or s == "vmig"]
#: small (the conformance suite round-trips 10k per store): the matrix proves every pair, not the load;
#: ``VEXRUN_MATRIX_N=10000`` runs every pair with issue 12's 10k records (56 pairs in ~2 minutes here)
N = int(os.environ.get("VEXRUN_MATRIX_N", "500"))


def _flags(flag: str, cfg: dict[str, Any], prefix: str = "") -> list[str]:
    out: list[str] = []
    for key, value in cfg.items():
        if key == "type":
            continue
        if isinstance(value, dict):
            out += _flags(flag, value, f"{prefix}{key}.")
        else:
            out += [flag, f"{prefix}{key}={json.dumps(value) if isinstance(value, bool) else value}"]
    return out


class _Side:
    """One store of the matrix: its service (started once) and its configs."""

    def __init__(self, name: str, running: Running | None, tmp: Path) -> None:
        self.name, self.running, self.tmp = name, running, tmp

    def target(self, coll: str) -> dict[str, Any]:
        if self.running is None:
            return {"type": "vmig", "path": str(self.tmp / f"{coll}.vmig.jsonl")}
        return self.running.target(coll)

    def source(self, coll: str) -> dict[str, Any]:
        if self.running is None:
            return {"type": "vmig", "path": str(self.tmp / f"{coll}.vmig.jsonl")}
        return self.running.source(coll)


class _Matrix:
    """Stores started and loaded on first use (once per session), so a selection of pairs starts only its own."""

    def __init__(self, services: dict[str, Running], factory: pytest.TempPathFactory) -> None:
        self.services, self.factory = services, factory
        self.sides: dict[str, _Side] = {}
        self.colls: dict[str, str] = {}
        self.input = factory.mktemp("matrix-input")
        self.recs, self.vecs = _write_input(self.input / "in.vmig.jsonl", N)

    def side(self, name: str) -> _Side:
        if name not in self.sides:
            running = None
            if name != "vmig":
                if name not in self.services:
                    kit = KITS[name]
                    self.services[name] = Running(kit, kit.start(self.factory.mktemp(f"svc-{name}")))
                running = self.services[name]
            self.sides[name] = _Side(name, running, self.factory.mktemp(f"matrix-{name}"))
        return self.sides[name]

    def loaded(self, name: str) -> str:
        """The collection of ``name`` holding the N records (loaded from the input file once)."""
        if name not in self.colls:
            side = self.side(name)
            coll = f"mx_{name}_{uuid.uuid4().hex[:6]}"
            recipe = _recipe(
                self.input / f"load-{name}.yaml", {"type": "vmig", "path": "in.vmig.jsonl"}, side.target(coll)
            )
            with _env(side.running.kit.env if side.running else {}):
                from vexrun.api import run

                summary = run(str(recipe), progress="none")
            assert summary.exit_code == 0, (name, summary.counts)
            self.colls[name] = coll
        return self.colls[name]


@pytest.fixture(scope="module")
def matrix(services: dict[str, Running], tmp_path_factory: pytest.TempPathFactory) -> _Matrix:
    return _Matrix(services, tmp_path_factory)


class _env:
    def __init__(self, env: dict[str, str]) -> None:
        self.env = env
        self.old: dict[str, str | None] = {}

    def __enter__(self) -> None:
        for k, v in self.env.items():
            self.old[k] = os.environ.get(k)
            os.environ[k] = v

    def __exit__(self, *exc: object) -> None:
        for k, v in self.old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


PAIRS = [(a, b) for a in MATRIX for b in MATRIX if a != b]


@pytest.mark.parametrize(("src", "dst"), PAIRS, ids=[f"{a}-to-{b}" for a, b in PAIRS])
def test_migrate_pair(src: str, dst: str, matrix: _Matrix, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    a, b = matrix.side(src), matrix.side(dst)
    source_coll = matrix.loaded(src)
    coll = f"mx_{src}_{dst}_{uuid.uuid4().hex[:6]}"
    env = {**(a.running.kit.env if a.running else {}), **(b.running.kit.env if b.running else {})}
    os.chdir(tmp_path)
    with _env(env):
        src_cfg, dst_cfg = a.source(source_coll), b.target(coll)
        code, out, err = vx(
            capsys,
            "migrate",
            "--from",
            src_cfg["type"],
            *_flags("-f", src_cfg),
            "--to",
            dst_cfg["type"],
            *_flags("-t", dst_cfg),
            "--json",
            "--progress",
            "none",
        )
        assert code == 0, out + err
        summary = json.loads(out)
        assert summary["counts"]["source"]["read"] == N and summary["rejected"] == 0
        # the target holds the records exactly: exported back to a file and compared field by field
        exp = _recipe(tmp_path / "export.yaml", b.source(coll), {"type": "vmig", "path": "back.vmig.jsonl"})
        code, out, err = vx(capsys, "run", str(exp), "--progress", "none")
        assert code == 0, out + err
        # vectors compared at the precision of the least precise store of the pair
        running = [r for r in (a.running, b.running) if r is not None]
        loosest = min(running, key=lambda r: r.kit.exact_float32)
        _assert_same(loosest, _read(tmp_path / "back.vmig.jsonl"), matrix.recs, matrix.vecs)
        # and `vexrun compare` of the original file with the target agrees
        code, out, err = vx(
            capsys,
            "compare",
            "--from",
            "vmig",
            "-f",
            f"path={matrix.input / 'in.vmig.jsonl'}",
            "--to",
            dst_cfg["type"],
            *_flags("-t", dst_cfg),
        )
        assert code == 0, out + err
