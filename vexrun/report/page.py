"""One self-contained HTML page: the stylesheet and the script inlined, the data as JSON in a
``<script type="application/json">``, nothing fetched from anywhere.

Record text is hostile input. It reaches the page only inside that JSON, where every ``<``, ``>`` and ``&`` is
written as a ``\\u00XX`` escape, so no ``</script>`` or ``<!--`` can close or bend the data block; the script
then puts it into the page with ``textContent`` only. The page's Content-Security-Policy allows exactly its own
script (by hash) and no network at all: even a bug in the escaping could not run a second script or load
anything."""

from __future__ import annotations

import base64
import hashlib
import html
import json
import math
import time
from pathlib import Path
from typing import Any

from .._version import __version__
from ..errors import UsageError
from ..redact import redact
from .script import JS
from .style import CSS

__all__ = ["clean_text", "embed_json", "render_page", "write_page"]


def clean_text(value: Any, limit: int = 300) -> str | None:
    """A string from a record as the page may show it: valid UTF-8 (lone surrogates replaced), at most
    ``limit`` characters (an ellipsis marks a cut). None stays None."""
    if value is None:
        return None
    text = str(value)
    if len(text) > limit:
        text = text[: limit - 1] + "\u2026"
    return text.encode("utf-8", "replace").decode("utf-8")


def _finite(obj: Any) -> Any:
    """The data with NaN and infinities as null (JSON has neither)."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {str(k): _finite(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_finite(v) for v in obj]
    return obj


def embed_json(data: Any) -> str:
    """``data`` as JSON that is safe inside a ``<script>`` element: no ``<``, ``>`` or ``&`` anywhere (they are
    ``\\u003c``, ``\\u003e``, ``\\u0026``: the same string to ``JSON.parse``), so no ``</script>`` or ``<!--``."""
    text = json.dumps(_finite(data), ensure_ascii=False, separators=(",", ":"), allow_nan=False)
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def _sha256(text: str) -> str:
    return "sha256-" + base64.b64encode(hashlib.sha256(text.encode("utf-8")).digest()).decode("ascii")


def render_page(title: str, data: dict[str, Any]) -> str:
    """The whole page for ``data`` (the sections the script draws: see :mod:`.script`)."""
    payload = {
        **data,
        "title": title,
        "version": __version__,
        "generated": time.strftime("%Y-%m-%d %H:%M:%SZ", time.gmtime()),
    }
    body = redact(embed_json(payload))  # a secret that slipped into a figure is masked here at the latest
    csp = (
        f"default-src 'none'; script-src '{_sha256(JS)}'; style-src 'unsafe-inline'; img-src data:; "
        "base-uri 'none'; form-action 'none'"
    )
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en"><head><meta charset="utf-8">\n'
        f'<meta http-equiv="Content-Security-Policy" content="{csp}">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        '<meta name="referrer" content="no-referrer">\n'
        f"<title>{html.escape(title)}</title>\n"
        f"<style>{CSS}</style>\n</head>\n"
        '<body data-rendered="0">\n'
        f'<header><h1 id="title">{html.escape(title)}</h1><div class="meta" id="meta"></div></header>\n'
        '<main id="main"><noscript>This report draws its figures with JavaScript; allow scripts for this file.'
        '</noscript><div class="errors" id="errors"></div></main>\n'
        '<footer id="footer"></footer>\n'
        f'<script type="application/json" id="vexrun-data">{body}</script>\n'
        f"<script>{JS}</script>\n"
        "</body></html>\n"
    )


def write_page(path: str | Path, title: str, data: dict[str, Any]) -> int:
    """Write the page to ``path`` (atomically: a reader never sees half a page); returns its size in bytes."""
    out = Path(path)
    text = render_page(title, data).encode("utf-8")
    tmp = out.with_name(f".{out.name}.tmp")
    try:
        tmp.write_bytes(text)
        tmp.replace(out)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise UsageError(f"{out}: cannot write the report ({exc.strerror or exc})") from None
    return len(text)
