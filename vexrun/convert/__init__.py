"""``vexrun convert``: a ``.vmig.jsonl`` file into fine-tuning and chat formats (``vexrun adapters`` lists them)."""

from __future__ import annotations

from .dialogues import Dialogue, DialogueAssembler, Drop, Turn, split_turns
from .formats import FORMATS, Format, Options, count_tokens, resolve_format
from .run import CheckReport, ConvertReport, check_file, convert_file, split_paths

__all__ = [
    "FORMATS",
    "CheckReport",
    "ConvertReport",
    "Dialogue",
    "DialogueAssembler",
    "Drop",
    "Format",
    "Options",
    "Turn",
    "check_file",
    "convert_file",
    "count_tokens",
    "resolve_format",
    "split_paths",
    "split_turns",
]
