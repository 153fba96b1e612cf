"""Check that an environment holds what its pip extras promise, derived from the package metadata and the
registry rather than from a hand-written list (``make venv`` runs it after installing)::

    python -m vexrun.extras --check-installed local,llm,qdrant [--group dev]

For every extra named: each distribution it requires is installed at a version it allows, and every
plugin registered with that extra imports what its ``requires`` names. ``--group`` also checks a
dependency group of ``pyproject.toml`` (distributions only). Each problem is one line; the exit code is 1
when there is any.
"""

from __future__ import annotations

import argparse
import importlib
import sys
import tomllib
from collections.abc import Iterable, Sequence
from importlib.metadata import PackageNotFoundError, metadata, version
from pathlib import Path
from typing import Any, get_args

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from .pluginspec import Kind, PluginSpec
from .registry import plugins

__all__ = ["check_installed", "extra_requirements", "main", "plugins_of_extras"]

DIST = "vexrun"


def extra_requirements(extra: str, dist: str = DIST) -> list[Requirement]:
    """What ``pip install 'dist[extra]'`` installs (an extra naming other extras of ``dist`` is expanded).
    Raises LookupError for an extra ``dist`` does not declare."""
    meta = metadata(dist)
    if canonicalize_name(extra) not in {canonicalize_name(e) for e in meta.get_all("Provides-Extra") or []}:
        raise LookupError(f"{dist} has no extra '{extra}'")
    out: list[Requirement] = []
    for line in meta.get_all("Requires-Dist") or []:
        req = Requirement(line)
        if req.marker is None or not req.marker.evaluate({"extra": extra}):
            continue
        if canonicalize_name(req.name) == canonicalize_name(dist):
            for inner in sorted(req.extras):
                out.extend(extra_requirements(inner, dist))
        else:
            out.append(req)
    return out


def _dist_names(extra: str) -> set[str]:
    try:
        return {canonicalize_name(r.name) for r in extra_requirements(extra)}
    except LookupError:
        return set()


def plugins_of_extras(extras: Iterable[str]) -> list[PluginSpec]:
    """Every registered plugin that one of ``extras`` installs: its own extra is named, or one named extra
    requires everything its extra does (``all``, whose metadata lists distributions, not extras)."""
    named = [_dist_names(e) for e in extras]
    wanted = {canonicalize_name(e) for e in extras}

    def installs(spec: PluginSpec) -> bool:
        if spec.extra is None:
            return False
        own = _dist_names(spec.extra)
        return canonicalize_name(spec.extra) in wanted or any(own and own <= names for names in named)

    kinds: tuple[Kind, ...] = get_args(Kind)
    return [spec for kind in kinds for spec in plugins(kind).values() if installs(spec)]


def _group_requirements(pyproject: Path, group: str) -> list[Requirement]:
    groups: dict[str, list[Any]] = tomllib.loads(pyproject.read_text()).get("dependency-groups", {})
    if group not in groups:
        raise LookupError(f"{pyproject} has no dependency group '{group}'")
    out: list[Requirement] = []
    for item in groups[group]:
        if isinstance(item, dict):
            out.extend(_group_requirements(pyproject, item["include-group"]))
        else:
            req = Requirement(item)
            if req.marker is None or req.marker.evaluate({"extra": ""}):
                out.append(req)
    return out


def _missing(owner: str, reqs: Iterable[Requirement]) -> list[str]:
    problems = []
    for req in reqs:
        try:
            have = version(req.name)
        except PackageNotFoundError:
            problems.append(f"{owner}: {req.name} is not installed (wants {req.name}{req.specifier})")
            continue
        if req.specifier and not req.specifier.contains(have, prereleases=True):
            problems.append(f"{owner}: {req.name} {have} is installed, {req.name}{req.specifier} is wanted")
    return problems


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text.splitlines()[0]}" if text else type(exc).__name__


def check_installed(
    extras: Sequence[str], groups: Sequence[str] = (), pyproject: Path = Path("pyproject.toml")
) -> list[str]:
    """One line per problem: a missing or out-of-range distribution, a module a plugin needs that does not
    import. An empty list means the environment is complete."""
    problems: list[str] = []
    for extra in extras:
        try:
            problems += _missing(f"extra '{extra}'", extra_requirements(extra))
        except LookupError as exc:
            problems.append(str(exc))
    for group in groups:
        try:
            problems += _missing(f"group '{group}'", _group_requirements(pyproject, group))
        except LookupError as exc:
            problems.append(str(exc))
    tried: set[str] = set()
    for spec in plugins_of_extras(extras):
        for module in spec.requires:
            if module in tried:
                continue
            tried.add(module)
            try:
                importlib.import_module(module)
            except Exception as exc:  # noqa: BLE001 - a broken install: report it in one line, go on
                problems.append(
                    f"extra '{spec.extra}': the {spec.kind} '{spec.name}' needs {module}: {_first_line(exc)}"
                )
    return problems


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m vexrun.extras", description=__doc__.split("\n\n")[0])
    parser.add_argument("--check-installed", metavar="EXTRAS", required=True, help="comma-separated extras")
    parser.add_argument("--group", action="append", default=[], help="a dependency group of pyproject.toml")
    parser.add_argument("--pyproject", type=Path, default=Path("pyproject.toml"), help="for --group")
    args = parser.parse_args(argv)
    extras = [e.strip() for e in args.check_installed.split(",") if e.strip()]
    problems = check_installed(extras, args.group, args.pyproject)
    for line in problems:
        print(f"vexrun.extras: {line}", file=sys.stderr)
    if problems:
        return 1
    modules = sorted({m for spec in plugins_of_extras(extras) for m in spec.requires})
    print(f"vexrun.extras: installed: {', '.join(extras)} (imports {', '.join(modules) or 'nothing'})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
