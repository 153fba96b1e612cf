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


def _recipe() -> dict[str, Any]:
    from .recipe.model import recipe_model

    schema = recipe_model().model_json_schema()
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": "https://vexrun.dev/schemas/recipe.schema.json",
        **schema,
    }


#: file name under ``schemas/`` → function producing the schema
SCHEMAS: dict[str, Callable[[], dict[str, Any]]] = {
    "recipe.schema.json": _recipe,
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
