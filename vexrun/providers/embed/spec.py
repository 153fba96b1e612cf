"""An embedder from the spec a store records with its vectors: ``{"type": "local", "model": ...}`` (the run's
embedder settings, secrets left out). ``vexrun search`` and :mod:`vexrun.recall` rebuild a store's embedder
from it, so queries and new memories match the vectors the store holds."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from ...errors import InvalidInput, VexrunError

if TYPE_CHECKING:
    from ..base import Embedder

__all__ = ["load_embedder"]


def load_embedder(spec: Mapping[str, Any], *, hint: str = "use --mode bm25") -> Embedder:
    """Build and open the embedder ``spec`` describes, or raise one InvalidInput line ending in ``hint``."""
    from pydantic import ValidationError

    from ...registry import resolve

    spec = dict(spec)
    kind = spec.get("type")
    try:
        plugin = resolve("embedder", str(kind))
        config = plugin.config_model().model_validate(spec)
        embedder: Embedder = plugin.implementation()(config)
    except ValidationError as exc:
        err = exc.errors()[0]
        where = ".".join(str(p) for p in err.get("loc", ())) or "spec"
        raise InvalidInput(f"cannot load the embedder '{kind}': {where}: {err.get('msg')}", hint=hint) from None
    except VexrunError as exc:
        raise InvalidInput(f"cannot load the embedder '{kind}': {exc.message}", hint=exc.hint or hint) from None
    except Exception as exc:  # noqa: BLE001 - a third-party plugin: one line, not a traceback
        raise InvalidInput(f"cannot load the embedder '{kind}': {_failure(exc)}", hint=hint) from None
    try:
        embedder.open()
    except VexrunError as exc:
        raise InvalidInput(f"cannot load the embedder '{kind}': {exc.message}", hint=exc.hint or hint) from None
    except Exception as exc:  # noqa: BLE001
        raise InvalidInput(f"cannot load the embedder '{kind}': {_failure(exc)}", hint=hint) from None
    return embedder


def _failure(exc: BaseException) -> str:
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text.splitlines()[0] if text else type(exc).__name__}"
