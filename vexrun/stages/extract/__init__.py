"""The ``extract`` stage (see :mod:`.stage`): chunks → atomic facts through the LLM cascade."""

from .parse import ParsedAnswer, ParsedFact, find_json, validate
from .prompt import FACT_TYPES, PROMPT_VERSION, SCHEMA, build_request
from .stage import ExtractCounts, ExtractResult, ExtractStage

__all__ = [
    "FACT_TYPES",
    "PROMPT_VERSION",
    "SCHEMA",
    "ExtractCounts",
    "ExtractResult",
    "ExtractStage",
    "ParsedAnswer",
    "ParsedFact",
    "build_request",
    "find_json",
    "validate",
]
