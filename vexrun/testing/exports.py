"""Seeded synthetic ChatGPT-shaped exports, for the import benchmark and the memory test.

The conversations look like a real ``conversations.json``: a ``mapping`` tree with a ``message: null``
root, a hidden system message, user and assistant turns with realistic metadata, a tool call now and
then, an abandoned regeneration branch, float epochs, and some non-ASCII text. The file is written one
conversation at a time, so generating a large file needs little memory.
"""

from __future__ import annotations

import json
import os
import random
from pathlib import Path
from typing import Any

import orjson

__all__ = ["write_chatgpt_export"]

_WORDS = (
    "memory agent vector store user prefers dark mode python postgres decided meeting tuesday deploy staging "
    "release budget review travel berlin lisbon coffee tea running book project deadline migrate index "
    "embedding model customer invoice design draft feedback team remote garden piano sister weekend plan "
    "Zürich café naïve 東京 données مرحبا שלום 🙂 👩‍💻 🇵🇹"
).split()


def _text(rng: random.Random, lo: int, hi: int) -> str:
    words = rng.choices(_WORDS, k=rng.randint(lo, hi))
    sentences = [" ".join(words[i : i + 14]).capitalize() + "." for i in range(0, len(words), 14)]
    return " ".join(sentences)


def _uuid(rng: random.Random) -> str:
    h = f"{rng.getrandbits(128):032x}"
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def _node(
    node_id: str, parent: str | None, role: str, text: Any, t: float | None, *, extra: dict[str, Any] | None = None
) -> dict[str, Any]:
    content: dict[str, Any] = {"content_type": "text", "parts": [text]}
    meta: dict[str, Any] = {"request_id": node_id[:8] + "-req", "message_source": None, "timestamp_": "absolute"}
    if role == "assistant":
        meta.update(
            {
                "finish_details": {"type": "stop", "stop_tokens": [200002]},
                "model_slug": "gpt-4o",
                "default_model_slug": "gpt-4o",
                "parent_id": parent,
                "citations": [],
                "content_references": [],
            }
        )
    msg: dict[str, Any] = {
        "id": node_id,
        "author": {"role": role, "name": None, "metadata": {}},
        "create_time": t,
        "update_time": None,
        "content": content,
        "status": "finished_successfully",
        "end_turn": True if role == "assistant" else None,
        "weight": 1.0,
        "metadata": meta,
        "recipient": "all",
        "channel": None,
    }
    if extra:
        msg.update(extra)
    return {"id": node_id, "message": msg, "parent": parent, "children": []}


def _conversation(rng: random.Random, index: int) -> dict[str, Any]:
    t0 = 1_690_000_000 + index * 3_600 + rng.random()
    root = _uuid(rng)
    mapping: dict[str, dict[str, Any]] = {root: {"id": root, "message": None, "parent": None, "children": []}}
    system = _uuid(rng)
    mapping[system] = _node(
        system, root, "system", "", None, extra={"metadata": {"is_visually_hidden_from_conversation": True}}
    )
    mapping[root]["children"].append(system)
    last, t = system, t0
    for turn in range(rng.randint(4, 40)):
        user = _uuid(rng)
        t += rng.uniform(5, 120)
        mapping[user] = _node(user, last, "user", _text(rng, 8, 80), t)
        mapping[last]["children"].append(user)
        last = user
        if turn % 7 == 3:  # a tool call and its output
            call, out = _uuid(rng), _uuid(rng)
            mapping[call] = _node(
                call, last, "assistant", "search('weather lisbon')", t + 1, extra={"recipient": "web"}
            )
            mapping[call]["message"]["content"] = {"content_type": "code", "language": "unknown", "text": "search()"}
            mapping[last]["children"].append(call)
            mapping[out] = _node(out, call, "tool", _text(rng, 20, 60), t + 2, extra={"author": {"role": "tool"}})
            mapping[call]["children"].append(out)
            last = out
        if turn % 5 == 2:  # an abandoned regeneration, newer than the kept answer
            gone = _uuid(rng)
            mapping[gone] = _node(gone, last, "assistant", _text(rng, 20, 120), t + 500)
            mapping[last]["children"].append(gone)
        answer = _uuid(rng)
        t += rng.uniform(2, 30)
        mapping[answer] = _node(answer, last, "assistant", _text(rng, 30, 400), t)
        mapping[last]["children"].append(answer)
        last = answer
    keys = list(mapping)
    rng.shuffle(keys)
    conv_id = _uuid(rng)
    return {
        "title": None if index % 17 == 0 else _text(rng, 2, 6)[:60],
        "create_time": t0,
        "update_time": t,
        "mapping": {k: mapping[k] for k in keys},
        "moderation_results": [],
        "current_node": last,
        "plugin_ids": None,
        "conversation_id": conv_id,
        "conversation_template_id": None,
        "gizmo_id": None,
        "is_archived": False,
        "safe_urls": [],
        "default_model_slug": "gpt-4o",
        "id": conv_id,
    }


def write_chatgpt_export(path: str | os.PathLike[str], target_bytes: int, *, seed: int = 0, ascii: bool = False) -> int:
    """Write conversations to ``path`` until it holds about ``target_bytes``; return how many.

    ``ascii=True`` writes the whole file as one line of ASCII with ``\\uXXXX`` escapes (surrogate pairs
    for emoji), the way some exporters do."""
    rng = random.Random(seed)
    n = written = 0
    with open(path, "wb") as fh:
        fh.write(b"[")
        while written < target_bytes:
            conv = _conversation(rng, n)
            blob = json.dumps(conv, ensure_ascii=True, separators=(",", ":")).encode() if ascii else orjson.dumps(conv)
            fh.write(b"," if n else b"")
            fh.write(blob)
            written += len(blob) + 1
            n += 1
        fh.write(b"]")
    return n


if __name__ == "__main__":  # pragma: no cover - a convenience for benchmarks
    import sys

    count = write_chatgpt_export(
        Path(sys.argv[1]), int(float(sys.argv[2])), seed=int(sys.argv[3]) if len(sys.argv) > 3 else 0
    )
    print(count)
