"""Safe YAML loading that remembers where every key and value came from.

PyYAML composes the document into nodes (which carry line and column marks); we build plain Python values
from those nodes ourselves, so that every value can be traced back to ``FILE:LINE:COL``. Only the standard
YAML tags are accepted: a custom tag (``!!python/object``, ``!env``) is a finding, never executed.
Duplicate keys, which PyYAML silently lets win, are findings too. Merge keys (``<<``) and anchors work.

PyYAML's composer returns a graph: an alias is the very node its anchor names, so a self-referencing anchor
(``x: &a [*a]``) is a cycle and nested anchors referenced ten times per level ("billion laughs") are a few
hundred bytes that expand to billions of values. The expansion happens here, while building Python values from
the graph, so this is where it is bounded (the way SnakeYAML caps aliases and go-yaml caps the alias
expansion ratio): an alias to a collection that is being built is refused (``yaml-alias``), at most
:data:`MAX_ALIAS_NODES` values may be built through aliases in one document, and collections nest at most
:data:`MAX_DEPTH` deep (``yaml-depth``). Each of these stops the build at once with its position.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import yaml

__all__ = ["MAX_ALIAS_NODES", "MAX_DEPTH", "Loaded", "Path_", "load_yaml"]

#: A path into the document: keys (str) and list indexes (int).
Path_ = tuple[str | int, ...]

_STD = "tag:yaml.org,2002:"
_SCALAR_TAGS = {_STD + t for t in ("str", "int", "float", "bool", "null", "timestamp", "binary")}

#: Values built through aliases (each value of an aliased collection counts once per use). A real recipe that
#: reuses a block with ``*anchor`` or ``<<: *anchor`` builds a few hundred; an alias bomb builds billions.
MAX_ALIAS_NODES = 10_000
#: Nesting of collections. A recipe is a handful of levels deep; this keeps the recursive build (and every
#: later walk of the document) far from Python's recursion limit.
MAX_DEPTH = 64


@dataclass
class Loaded:
    """The parsed document, plus positions: ``values[path]`` is where the value at ``path`` starts and
    ``keys[path]`` where its key is written (both 1-based ``(line, column)``)."""

    data: Any
    values: dict[Path_, tuple[int, int]] = field(default_factory=dict)
    keys: dict[Path_, tuple[int, int]] = field(default_factory=dict)
    #: raw scalar text of string values, before interpolation (to spot literal secrets)
    raw: dict[Path_, str] = field(default_factory=dict)
    #: (line, col, code, path, message) found while building the document
    problems: list[tuple[int, int, str, Path_, str]] = field(default_factory=list)

    def where(self, path: Path_) -> tuple[int, int]:
        """The best position for a finding about ``path``: the key if written, else the value, else the
        nearest written parent."""
        p = path
        while True:
            if p in self.keys:
                return self.keys[p]
            if p in self.values:
                return self.values[p]
            if not p:
                return (1, 1)
            p = p[:-1]


def _mark(node: yaml.Node) -> tuple[int, int]:
    return (node.start_mark.line + 1, node.start_mark.column + 1)


class _Refused(Exception):
    """Stops the build: the document is an alias bomb, holds a recursive alias, or nests too deep."""

    def __init__(self, where: tuple[int, int], code: str, path: Path_, message: str) -> None:
        super().__init__(message)
        self.problem = (where[0], where[1], code, path, message)


class _Builder:
    def __init__(self, out: Loaded) -> None:
        self.out = out
        self.constructor = yaml.constructor.SafeConstructor()
        self.built: set[int] = set()  # collections built at least once: meeting one again is an alias
        self.active: set[int] = set()  # collections being built: meeting one of these is a cycle
        self.aliased = 0  # > 0 while building the expansion of an alias
        self.expanded = 0  # values built through aliases so far
        self.depth = 0
        self.site: tuple[int, int] = (1, 1)  # where the outermost alias being expanded is used
        self.site_path: Path_ = ()

    def alias_site(self, path: Path_) -> tuple[int, int]:
        """Where the alias at ``path`` is written: its key, or the list that holds it (the node itself, being
        the anchored one, carries the position of the anchor instead)."""
        if path in self.out.keys:
            return self.out.keys[path]
        return self.out.where(path[:-1] if path and isinstance(path[-1], int) else path)

    def build(self, node: yaml.Node, path: Path_) -> Any:
        self.out.values.setdefault(path, _mark(node))
        if self.aliased:
            self.expanded += 1
            if self.expanded > MAX_ALIAS_NODES:
                raise _Refused(
                    self.site,
                    "yaml-alias",
                    self.site_path,
                    f"aliases expand to more than {MAX_ALIAS_NODES:,} values (an alias bomb?); write the values out "
                    "or use fewer nested anchors",
                )
        if isinstance(node, yaml.ScalarNode):
            return self.scalar(node, path)
        if isinstance(node, yaml.SequenceNode):
            if node.tag != _STD + "seq":
                self.bad_tag(node, path)
            return self.collection(
                node, path, lambda: [self.build(child, (*path, i)) for i, child in enumerate(node.value)]
            )
        if isinstance(node, yaml.MappingNode):
            if node.tag != _STD + "map":
                self.bad_tag(node, path)
            return self.collection(node, path, lambda: self.mapping(node, path))
        self.bad_tag(node, path)  # pragma: no cover - every node is one of the three
        return None

    def collection(self, node: yaml.Node, path: Path_, make: Callable[[], Any]) -> Any:
        """Build a sequence or mapping with ``make``, guarding against cycles, alias bombs and deep nesting."""
        key = id(node)
        if key in self.active:
            raise _Refused(
                self.alias_site(path),
                "yaml-alias",
                path,
                "a recursive alias: the anchor is used inside its own value, which would never end",
            )
        if self.depth >= MAX_DEPTH:
            raise _Refused(
                _mark(node), "yaml-depth", path, f"collections nest more than {MAX_DEPTH} levels deep; refused"
            )
        alias = key in self.built
        if alias and not self.aliased:
            self.site, self.site_path = self.alias_site(path), path
        self.active.add(key)
        self.depth += 1
        self.aliased += alias
        try:
            return make()
        finally:
            self.aliased -= alias
            self.depth -= 1
            self.active.discard(key)
            self.built.add(key)

    def bad_tag(self, node: yaml.Node, path: Path_) -> None:
        line, col = _mark(node)
        tag = node.tag.replace(_STD, "!!")
        self.out.problems.append((line, col, "bad-tag", path, f"the YAML tag '{tag}' is not allowed in a recipe"))

    def scalar(self, node: yaml.ScalarNode, path: Path_) -> Any:
        if node.tag not in _SCALAR_TAGS:
            self.bad_tag(node, path)
            return node.value
        try:
            value = self.constructor.construct_object(node, deep=True)
        except yaml.constructor.ConstructorError as exc:
            line, col = _mark(node)
            self.out.problems.append((line, col, "yaml-syntax", path, str(exc.problem or exc)))
            return node.value
        if node.tag == _STD + "timestamp":
            # YAML 1.1 turns unquoted dates into datetimes; a recipe wants the text it wrote.
            return node.value
        if isinstance(value, str):
            self.out.raw[path] = node.value
        return value

    def mapping(self, node: yaml.MappingNode, path: Path_) -> dict[str, Any]:
        result: dict[str, Any] = {}
        merged: list[yaml.MappingNode] = []
        for key_node, value_node in node.value:
            if key_node.tag == _STD + "merge":
                merged.extend(value_node.value if isinstance(value_node, yaml.SequenceNode) else [value_node])
                continue
            if not isinstance(key_node, yaml.ScalarNode):
                line, col = _mark(key_node)
                self.out.problems.append((line, col, "bad-key", path, "mapping keys must be plain strings"))
                continue
            key = key_node.value
            child = (*path, key)
            if key in result:
                line, col = _mark(key_node)
                first = self.out.keys.get(child, (0, 0))[0]
                self.out.problems.append((line, col, "duplicate-key", child, f"already set on line {first}"))
                continue
            self.out.keys[child] = _mark(key_node)
            result[key] = self.build(value_node, child)
        for source in merged:
            if not isinstance(source, yaml.MappingNode):
                self.bad_tag(source, path)
                continue
            merged_values = self.collection(source, path, partial(self.mapping, source, path))
            for key, value in merged_values.items():
                result.setdefault(key, value)
        return result


def load_yaml(text: str) -> Loaded:
    """Parse one YAML document. Syntax errors become a ``yaml-syntax`` problem with its position."""
    out = Loaded(data=None)
    try:
        node = yaml.compose(text, Loader=yaml.CSafeLoader if hasattr(yaml, "CSafeLoader") else yaml.SafeLoader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line, col = (mark.line + 1, mark.column + 1) if mark else (1, 1)
        problem = exc.problem or "invalid YAML"
        if exc.context:
            problem = f"{exc.context}, {problem}"
        out.problems.append((line, col, "yaml-syntax", (), problem))
        return out
    except yaml.YAMLError as exc:
        out.problems.append((1, 1, "yaml-syntax", (), str(exc)))
        return out
    except RecursionError:  # the pure-Python composer, without libyaml, recurses per level
        out.problems.append((1, 1, "yaml-depth", (), f"collections nest more than {MAX_DEPTH} levels deep; refused"))
        return out
    if node is None:
        out.data = {}
        return out
    try:
        out.data = _Builder(out).build(node, ())
    except _Refused as exc:
        out.data = None
        out.problems.append(exc.problem)
    return out
