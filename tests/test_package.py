"""The package's contract: light imports, a small sorted public surface, help for every command, JSON
Schemas that match the models, and hand-written lists (README table, extras, Makefile, CONTRIBUTING.md)
that agree with the plugin registry."""

from __future__ import annotations

import importlib
import json
import os
import pty
import re
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import click
import jsonschema
import pytest

import vexrun
from conftest import DATA, ROOT, run_cli
from vexrun.builtins import connector_plugin_modules
from vexrun.connectors.base import PluginConfig, Sink, Source
from vexrun.pluginspec import PluginSpec
from vexrun.registry import plugins

HEAVY = ("numpy", "msgspec", "orjson", "blake3", "torch", "grpc", "pydantic", "rich", "yaml")
#: vexrun's own plugins, and those that are sources or sinks
OWN = [
    s for kind in ("source", "sink", "embedder", "llm") for s in plugins(kind).values() if s.impl.startswith("vexrun.")
]
CONNECTORS = [s for s in OWN if s.kind in ("source", "sink")]
#: what a store's connector imports when it runs: the union of the ``requires`` of every source and sink
STORE_SDKS = tuple(sorted({m for s in CONNECTORS for m in s.requires}))


def _modules_after(code: str) -> set[str]:
    out = subprocess.run(
        [sys.executable, "-c", code + "\nimport sys, json; print(json.dumps(sorted(sys.modules)))"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return set(json.loads(out.splitlines()[-1]))


@pytest.mark.parametrize(
    "code",
    ["import vexrun", "from vexrun.cli import cli", "import vexrun.errors"],
)
def test_import_loads_nothing_heavy(code: str) -> None:
    mods = _modules_after(code)
    roots = {m.split(".")[0] for m in mods}
    assert not roots & set(HEAVY + STORE_SDKS), sorted(roots & set(HEAVY + STORE_SDKS))


def test_help_loads_nothing_heavy() -> None:
    mods = _modules_after(
        "import sys\nfrom vexrun.cli import cli\n"
        "try:\n    cli.main(['--help'], standalone_mode=False)\nexcept SystemExit:\n    pass"
    )
    roots = {m.split(".")[0] for m in mods}
    assert not roots & set(HEAVY + STORE_SDKS)


def test_listing_plugins_loads_no_sdk() -> None:
    mods = _modules_after(
        "from vexrun.registry import plugins\n"
        "for kind in ('source', 'sink', 'embedder', 'llm', 'convert'):\n"
        "    [(s.capabilities, s.installed()) for s in plugins(kind).values()]"
    )
    roots = {m.split(".")[0] for m in mods}
    assert {"psycopg", "qdrant_client", "chromadb", "pymilvus"} <= set(STORE_SDKS)
    assert not roots & {*STORE_SDKS, "torch", "grpc", "sentence_transformers", "httpx"}


def test_public_surface_is_sorted_and_importable() -> None:
    assert vexrun.__all__ == sorted(vexrun.__all__)
    for name in vexrun.__all__:
        assert getattr(vexrun, name) is not None
    import vexrun.vmig as vmig

    assert vmig.__all__ == sorted(vmig.__all__)


def _commands(group: click.Group, prefix: str = "") -> list[tuple[str, click.Command]]:
    out = []
    for name, cmd in group.commands.items():
        out.append((prefix + name, cmd))
        if isinstance(cmd, click.Group):
            out.extend(_commands(cmd, prefix + name + " "))
    return out


def test_every_command_has_help() -> None:
    from vexrun.cli import cli

    cmds = _commands(cli)
    assert {"validate", "inspect"} <= {name for name, _ in cmds}
    for name, cmd in cmds:
        assert cmd.help and len(cmd.help.strip()) > 20, name
        for param in cmd.params:
            if isinstance(param, click.Option):
                assert param.help, f"{name} {param.opts}"
        res = run_cli(*name.split(), "--help")
        assert res.code == 0 and "Usage: vexrun" in res.out


def test_top_level_help_documents_exit_codes() -> None:
    res = run_cli("--help")
    assert res.code == 0
    for code in ("0 ", "1 ", "2 ", "3 ", "4 ", "70 ", "130/143"):
        assert code in res.out


def test_version() -> None:
    res = run_cli("--version")
    assert res.code == 0 and vexrun.__version__ in res.out


def test_schemas_are_in_sync() -> None:
    from vexrun.schemas import SCHEMAS, render

    on_disk = {p.name for p in (ROOT / "schemas").glob("*.json")}
    assert on_disk == set(SCHEMAS)
    for name in SCHEMAS:
        assert (ROOT / "schemas" / name).read_text() == render(name), f"{name} is stale: run `make schemas`"


def test_record_schema_agrees_with_the_validator() -> None:
    schema = json.loads((ROOT / "schemas" / "vmig-record.schema.json").read_text())
    validator = jsonschema.Draft202012Validator(schema)
    for line in (DATA / "vmig" / "handwritten.vmig.jsonl").read_text().splitlines():
        validator.validate(json.loads(line))
    bad = [
        {"text": "no id"},
        {"id": ""},
        {"id": "a"},
        {"id": "a", "text": None, "vector": None},
        {"id": "a", "text": "t", "metadata": {"x": {"nested": 1}}},
        {"id": "a", "text": "t", "vex_version": "1.0"},
        {"id": "a", "vector": ["x"]},
        {"id": "a", "vector": []},
        {"id": "a", "text": "t", "dims": "3"},
    ]
    for obj in bad:
        assert not validator.is_valid(obj), obj


def test_inspect_reports_what_a_user_needs(tmp_path: Path) -> None:
    res = run_cli("inspect", "--json", "tests/data/vmig/handwritten.vmig.jsonl")
    assert res.code == 0, res.output
    r = json.loads(res.out)
    assert r["records"] == 4
    assert (r["with_text"], r["with_vector"], r["with_both"]) == (3, 2, 1)
    assert {d["value"]: d["count"] for d in r["dims"]} == {4: 2}
    assert {n["value"]: n["count"] for n in r["namespaces"]} == {"preferences": 1, "facts": 1, None: 2}
    meta = {m["key"]: m for m in r["metadata"]}
    assert meta["tags"]["types"] == {"list": 1} and meta["tags"]["fill_rate"] == 0.25
    assert meta["note"]["types"] == {"null": 1}
    assert r["created_at"] == {"min": "2026-03-01T09:30:00Z", "max": "2026-03-04"}
    assert r["bytes"] == (DATA / "vmig" / "handwritten.vmig.jsonl").stat().st_size
    text = run_cli("inspect", "tests/data/vmig/handwritten.vmig.jsonl").out
    for needle in ("records      4", "preferences", "4-d", "toy-4d", "tags", "25.0%", "created_at"):
        assert needle in text


def test_progress_bar_only_on_a_terminal(tmp_path: Path) -> None:
    from vexrun.testing.data import write_synthetic

    f = write_synthetic(tmp_path / "p.vmig.jsonl", 3000, dims=384)
    assert f.stat().st_size > 8 * 1024 * 1024
    piped = run_cli("validate", str(f))
    assert piped.err == ""
    leader, follower = pty.openpty()
    proc = subprocess.Popen(
        [sys.executable, "-m", "vexrun", "validate", "--jobs", "1", str(f)],
        stdout=subprocess.PIPE,
        stderr=follower,
        env={**os.environ, "TERM": "xterm", "COLUMNS": "100"},
    )
    os.close(follower)
    seen = b""
    while True:
        try:
            chunk = os.read(leader, 4096)
        except OSError:
            break
        if not chunk:
            break
        seen += chunk
    os.close(leader)
    out, _ = proc.communicate()
    assert proc.returncode == 0
    assert b"valid: 3,000 records" in out
    assert b"validate" in seen and b"MB" in seen  # the bar: label and byte counts


# --- The hand-written lists agree with the registry ------------------------------------------------------


def _pyproject() -> dict[str, Any]:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())


def _extras() -> dict[str, list[str]]:
    extras: dict[str, list[str]] = _pyproject()["project"]["optional-dependencies"]
    return extras


def _in_all() -> set[str]:
    """The extras ``all`` names (``vexrun[a,b,...]`` entries)."""
    return {e.strip() for req in _extras()["all"] for e in re.findall(r"^vexrun\[(.*)\]$", req)[0].split(",")}


def _makefile_extras() -> set[str]:
    match = re.search(r"^EXTRAS \?= (.*)$", (ROOT / "Makefile").read_text(), re.M)
    assert match, "Makefile: no `EXTRAS ?= ...` line"
    return set(match.group(1).split(","))


def _readme_rows() -> set[tuple[str, str, tuple[str, ...], str | None]]:
    """(kind, type, aliases, extra) of each row of the README's table of sources, targets and embedders."""
    text = (ROOT / "README.md").read_text()
    table = text.split("### Sources, targets, embedders\n", 1)[1].strip().split("\n\n", 1)[0]
    rows = set()
    for line in table.splitlines()[2:]:
        kinds, typ, extra, _ = (cell.strip() for cell in line.strip("|").split(" | ", 3))
        name, *aliases = re.findall(r"`([^`]+)`", typ)
        extra_name = None if extra == "—" else extra.strip("`")
        for kind in kinds.split(" / "):
            rows.add(({"target": "sink"}.get(kind, kind), name, tuple(aliases), extra_name))
    return rows


def test_every_connector_and_embedder_has_its_readme_row() -> None:
    """Each of vexrun's sources, sinks and embedders has its row, with its aliases and extra; the test fakes
    may have one (the fake embedder does); no row names anything else."""
    rows = _readme_rows()
    allowed = {(s.kind, s.name, s.aliases, s.extra) for s in OWN if s.kind != "llm"}
    required = {
        (s.kind, s.name, s.aliases, s.extra)
        for s in OWN
        if s.kind != "llm" and not s.impl.startswith("vexrun.testing.")
    }
    assert required - rows == set(), "README.md: add these rows (kind, type, aliases, extra)"
    assert rows - allowed == set(), "README.md: rows for no registered plugin, or with other aliases or extra"


def test_every_extra_is_declared_installed_by_all_and_by_the_makefile() -> None:
    extras = _extras()
    used = {s.extra for s in OWN if s.extra}
    assert used <= set(extras), f"plugins name extras pyproject.toml lacks: {sorted(used - set(extras))}"
    assert _in_all() == set(extras) - {"all"}, "pyproject.toml: `all` must name every other extra"
    assert used <= _makefile_extras(), f"Makefile EXTRAS lacks {sorted(used - _makefile_extras())}"
    assert _makefile_extras() <= set(extras), f"Makefile EXTRAS names unknown extras {_makefile_extras() - set(extras)}"


def test_the_extras_check_reads_the_metadata() -> None:
    from vexrun.extras import check_installed, plugins_of_extras

    assert {(s.kind, s.name) for s in plugins_of_extras(["all"])} == {(s.kind, s.name) for s in OWN if s.extra}
    assert {s.name for s in plugins_of_extras(["milvus-lite"])} == {"milvus"}  # it requires all `milvus` does
    assert check_installed(["no-such-extra"]) == ["vexrun has no extra 'no-such-extra'"]


def _stores() -> dict[str, list[PluginSpec]]:
    """Connector packages that register a source and a sink: the stores. The vmig file format is the suite's
    own reference on both ends, not a store under test."""
    out = {}
    for module in connector_plugin_modules():
        specs = importlib.import_module(module).PLUGINS
        if {s.kind for s in specs} >= {"source", "sink"} and module.split(".")[2] != "vmig":
            out[module.split(".")[2]] = specs
    return out


def test_every_store_is_wired_as_contributing_says() -> None:
    guide = (ROOT / "CONTRIBUTING.md").read_text()
    for named in (
        "vexrun/connectors/<store>/plugin.py",
        "vexrun/connectors/<store>/source.py",
        "vexrun/connectors/<store>/sink.py",
        "tests/conformance/stores/<store>.py",
        "[project.optional-dependencies]",
        "`all`",
        "README.md",
        "`EXTRAS`",
        "pip install 'vexrun[<extra>]'",
    ):
        assert named in guide, f"CONTRIBUTING.md no longer says {named}"
    stores = _stores()
    assert {"sqlite", "pgvector", "qdrant", "chroma", "milvus"} <= set(stores)
    extras, rows = _extras(), _readme_rows()
    for store, specs in stores.items():
        package = ROOT / "vexrun" / "connectors" / store
        assert (package / "source.py").is_file() and (package / "sink.py").is_file(), store
        plugin = importlib.import_module(f"vexrun.connectors.{store}.plugin")
        assert all(isinstance(s, PluginSpec) for s in plugin.PLUGINS) and plugin.CAPABILITIES, store
        for spec in specs:
            assert issubclass(spec.config_model(), PluginConfig), spec
            assert issubclass(spec.implementation(), Source if spec.kind == "source" else Sink), spec
            assert spec.capabilities is plugin.CAPABILITIES, spec
            assert any(r[:2] == (spec.kind, spec.name) for r in rows), f"README.md: no row for {store}"
            if spec.extra is not None:
                assert spec.extra in extras and spec.extra in _in_all() and spec.extra in _makefile_extras(), spec
        kit = importlib.import_module(f"conformance.stores.{store}").KIT
        assert kit.name == specs[0].name, f"tests/conformance/stores/{store}.py: KIT.name is {kit.name!r}"


@pytest.mark.parametrize("order", ["sorted", "reversed"])
def test_the_recipe_schema_does_not_depend_on_the_order_plugins_are_imported(order: str) -> None:
    """``typing`` caches ``Literal[...] | None`` with Literals compared as sets: two configs giving the same
    choices in another order share whichever was built first, and the schema then depended on which plugin a
    process imported first (since recipes import only their own plugins). Every order must give the file."""
    code = (
        "from vexrun.registry import plugins\n"
        "kinds = ('source', 'sink', 'embedder')\n"
        "specs = sorted((s for k in kinds for s in plugins(k).values()), key=lambda s: s.config)\n"
        f"for spec in (specs if {order!r} == 'sorted' else specs[::-1]):\n"
        "    spec.config_model()\n"
        "from vexrun.schemas import render\n"
        "import sys; sys.stdout.write(render('recipe.schema.json'))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT)
    assert out.stdout == (ROOT / "schemas" / "recipe.schema.json").read_text()
