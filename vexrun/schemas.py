"""The JSON Schemas checked in under ``schemas/``, generated from the models.

python -m vexrun.schemas [DIR]      # rewrite them (``make schemas``)
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

__all__ = ["SCHEMAS", "render", "write_all"]


def _vmig_record() -> dict[str, Any]:
    from .vmig.model import record_schema

    return record_schema()


#: file name under ``schemas/`` → function producing the schema
SCHEMAS: dict[str, Callable[[], dict[str, Any]]] = {
    "vmig-record.schema.json": _vmig_record,
}


def render(name: str) -> str:
    return json.dumps(SCHEMAS[name](), indent=2, ensure_ascii=False) + "\n"


def write_all(directory: Path) -> list[Path]:
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for name in SCHEMAS:
        path = directory / name
        path.write_text(render(name), encoding="utf-8")
        written.append(path)
    return written


if __name__ == "__main__":
    target = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).resolve().parent.parent / "schemas"
    for p in write_all(target):
        print(p)
