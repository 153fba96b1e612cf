"""Vex's flags on ``vexrun migrate``, ``import`` and ``export``, mapped onto the recipe those commands build.

Users of Vex (the Node tool, github.com/Vektor-Memory/Vex) type::

    vex migrate --from claude-export --to vektor --file conversations.json --db memory.db \\
        --mode extract --groq-key $KEY

:func:`apply_vex` turns such flags (a :class:`VexFlags`) into the parts of a recipe: ``--file`` and ``--db`` into
the source's and target's location, ``--mode`` into ``mode:``, ``--provider`` / ``--*-key`` / ``--extract-model`` /
``--concurrency`` / ``--rate-limit`` into ``llm:``, ``--chunk-mode`` / ``--sender`` into the export source's
settings, ``--embed-model`` / ``--adapter`` / ``--adapter-model`` into ``embed:`` and ``adapt:``.

Keys never enter the recipe: a key typed on the command line is handed to the run through the environment
(:attr:`VexResult.env`) under the variable the recipe names (``api_keys: ${GROQ_API_KEYS}``), so the recipe that
``--print-recipe`` shows, the run's state name and its plan hold only the reference.
"""

from __future__ import annotations

import shlex
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from .errors import UsageError
from .redact import register_secret
from .registry import resolve

__all__ = [
    "CASCADE_ORDER",
    "KEY_FLAGS",
    "VexFlags",
    "VexResult",
    "apply_vex",
    "command_line",
    "store_name",
]

#: provider -> the variable a recipe reads its keys from (the cascade's <NAME>_API_KEYS, several comma-separated)
KEY_ENVS: dict[str, str] = {
    "groq": "GROQ_API_KEYS",
    "openai": "OPENAI_API_KEYS",
    "anthropic": "ANTHROPIC_API_KEYS",
    "mistral": "MISTRAL_API_KEYS",
    "together": "TOGETHER_API_KEYS",
    "custom": "EXTRACT_API_KEYS",
}
#: the flags whose value is a key: flag -> provider
KEY_FLAGS: dict[str, str] = {f"--{p}-key": p for p in KEY_ENVS if p != "custom"} | {"--extract-key": "custom"}
#: the order Vex (and vexrun's ``providers: auto``) tries providers in; ``custom`` is Vex's --extract-url
CASCADE_ORDER = ("groq", "ollama", "openai", "anthropic", "mistral", "together", "custom")

#: Vex's store names that vexrun spells differently: Vex name -> (vexrun name, what to tell the user)
_STORES: dict[str, tuple[str, str]] = {
    "vektor": (
        "sqlite",
        "'vektor' is Vex's SQLite memory file; vexrun's local SQLite memory store is 'sqlite' (its own schema, "
        "not a VEKTOR Slipstream file): using {flag} sqlite",
    ),
    "jsonl": ("vmig", "'jsonl' is Vex's name for .vmig.jsonl files; vexrun calls them 'vmig': using {flag} vmig"),
}
_RECIPE_ORDER = (
    "version",
    "name",
    "description",
    "requires_vexrun",
    "mode",
    "source",
    "sources",
    "split",
    "chunk",
    "llm",
    "extract",
    "score",
    "dedup",
    "embed",
    "adapt",
    "graph",
    "target",
    "targets",
    "run",
)


@dataclass(frozen=True)
class VexFlags:
    """The Vex flags given (None: not given). ``keys`` maps a provider (groq, openai, anthropic, mistral, together,
    custom) to the value of its ``--*-key`` flag as typed: one key, ``k1,k2``, or a ``${VAR}`` reference."""

    file: str | None = None
    db: str | None = None
    mode: str | None = None
    provider: str | None = None
    keys: Mapping[str, str] = field(default_factory=dict)
    ollama_url: str | None = None
    extract_url: str | None = None
    extract_model: str | None = None
    min_importance: float | None = None
    chunk_mode: str | None = None
    sender: str | None = None
    concurrency: int | None = None
    rate_limit: int | None = None
    embed_model: str | None = None
    adapter: str | None = None
    adapter_model: str | None = None
    reembed: bool = False


@dataclass
class VexResult:
    """What the recipe needs besides its text: ``env`` (the variables its ``${…}`` references read, for keys typed
    on the command line; secret) and ``notes`` (lines for stderr, never holding a key)."""

    env: dict[str, str] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


def store_name(name: str, flag: str) -> tuple[str, str | None]:
    """Vex's spelling of a store (``vektor``, ``jsonl``) as vexrun's, with a note to print; others unchanged."""
    if name not in _STORES:
        return name, None
    new, note = _STORES[name]
    if name == "vektor" and flag == "--from":
        note += " (a Slipstream file: `vex export --from vektor --db FILE --output m.vmig.jsonl`, then `vexrun import`)"
    return new, "note: " + note.format(flag=flag)


def command_line(argv: Sequence[str]) -> str:
    """``vexrun ARGV`` for resume hints and the state lock, with every key flag's value replaced by the variable
    the recipe reads (``--groq-key "$GROQ_API_KEYS"``): the same command after ``export GROQ_API_KEYS=…``."""
    out = ["vexrun"]
    hide = None
    for arg in argv:
        if hide is not None:
            out.append(f'"${KEY_ENVS[hide]}"')
            hide = None
            continue
        flag, eq, _ = arg.partition("=")
        if flag in KEY_FLAGS:
            if eq:
                out.append(f'{flag}="${KEY_ENVS[KEY_FLAGS[flag]]}"')
            else:
                out.append(flag)
                hide = KEY_FLAGS[flag]
            continue
        out.append(shlex.quote(arg))
    return " ".join(out)


def apply_vex(recipe: dict[str, Any], flags: VexFlags, *, db_sides: Sequence[str]) -> tuple[dict[str, Any], VexResult]:
    """The recipe with Vex's flags applied, and what the run needs besides it. ``db_sides`` says where ``--db``
    may go, in order (``"target"``, ``"source"``): to the first that is a ``sqlite`` store, else the first whose
    location is not set yet. Raises :class:`UsageError` for flags that contradict each other or the stores."""
    result = VexResult()
    out = dict(recipe)
    if flags.file is not None:
        _locate(out, "source", flags.file, "--file")
    if flags.db is not None:
        _locate(out, _db_side(out, db_sides), flags.db, "--db")
    if flags.mode is not None:
        out["mode"] = flags.mode
    _source_settings(out, flags)
    refs = _keys(flags, result)
    llm = _llm(flags, refs, result)
    if llm:
        out["llm"] = llm
        if out.get("mode", "raw") == "raw":
            result.notes.append(
                "note: --mode raw makes no LLM calls; the provider flags are in the recipe for --mode extract or smart"
            )
    if flags.min_importance is not None:
        out["extract"] = {**out.get("extract", {}), "min_importance": flags.min_importance}
    _embedding(out, flags, refs)
    return {k: out[k] for k in sorted(out, key=_recipe_rank)}, result


# --- locations -------------------------------------------------------------------------------------------------


def _kind(side: str) -> str:
    return "source" if side == "source" else "sink"


def _fields(recipe: dict[str, Any], side: str) -> dict[str, Any]:
    model = resolve(_kind(side), recipe[side]["type"]).config_model()  # type: ignore[arg-type]
    return dict(model.model_fields)


def _db_side(recipe: dict[str, Any], sides: Sequence[str]) -> str:
    for side in sides:
        if resolve(_kind(side), recipe[side]["type"]).name == "sqlite":  # type: ignore[arg-type]
            return side
    for side in sides:
        if not any(k in recipe[side] for k in ("path", "dsn", "url", "uri")):
            return side
    return sides[0]


def _locate(recipe: dict[str, Any], side: str, value: str, flag: str) -> None:
    """Put ``value`` in the side's location setting: ``path`` for a file, ``dsn`` / ``url`` / ``uri`` for a URL."""
    fields = _fields(recipe, side)
    order = ("dsn", "url", "uri", "path") if "://" in value else ("path", "dsn", "url", "uri")
    name = next((f for f in order if f in fields), None)
    typ = recipe[side]["type"]
    if name is None:
        raise UsageError(f"{flag}: the {side} {typ!r} has no path, dsn or url setting; give its settings with -f/-t")
    if recipe[side].get(name) not in (None, value):
        opt = "-f" if side == "source" else "-t"
        raise UsageError(f"{flag} and {opt} {name}=… both set the {side}'s {name}; give one")
    recipe[side] = {**recipe[side], name: value}


def _source_settings(recipe: dict[str, Any], flags: VexFlags) -> None:
    for flag, key, value in (
        ("--chunk-mode", "chunk", flags.chunk_mode),
        ("--sender", "sender", "user" if flags.sender == "human" else flags.sender),
    ):
        if value is None:
            continue
        if key not in _fields(recipe, "source"):
            raise UsageError(
                f"{flag} applies to conversation exports (claude-export, chatgpt-export), "
                f"not to the source {recipe['source']['type']!r}"
            )
        recipe["source"] = {**recipe["source"], key: value}


# --- LLM providers ---------------------------------------------------------------------------------------------


def _keys(flags: VexFlags, result: VexResult) -> dict[str, str]:
    """provider -> the reference its ``api_keys`` get; keys typed as values go to ``result.env``."""
    refs: dict[str, str] = {}
    for provider, typed in flags.keys.items():
        flag = next(f for f, p in KEY_FLAGS.items() if p == provider)
        value = typed.strip()
        if not value:
            raise UsageError(f"{flag} is empty")
        if "${" in value:
            refs[provider] = value
            continue
        env = KEY_ENVS[provider]
        for part in value.split(","):
            register_secret(part.strip())
        refs[provider] = "${" + env + "}"
        result.env[env] = value
        result.notes.append(
            f"warning: {flag} puts the key on the command line, where other users of this machine can read it "
            f"(ps, /proc); export {env}=… instead (the recipe reads ${{{env}}})"
        )
    return refs


def _provider_name(name: str) -> str:
    if name == "custom":
        return name
    try:
        return resolve("llm", name).name
    except UsageError:
        raise UsageError(f"--provider: unknown provider {name!r} (known: {', '.join(CASCADE_ORDER)})") from None


def _models(flags: VexFlags) -> tuple[dict[str, str], str | None]:
    """``--extract-model groq:llama-3.3-70b-versatile,ollama:mistral`` -> per provider; a bare model -> every one."""
    per: dict[str, str] = {}
    every: str | None = None
    for part in (flags.extract_model or "").split(","):
        part = part.strip()
        if not part:
            continue
        prefix, sep, model = part.partition(":")
        if sep and model and _is_provider(prefix.strip().lower()):
            per[_provider_name(prefix.strip().lower())] = model.strip()
        else:
            every = part
    return per, every


def _is_provider(name: str) -> bool:
    try:
        _provider_name(name)
    except UsageError:
        return False
    return True


def _llm(flags: VexFlags, refs: dict[str, str], result: VexResult) -> dict[str, Any]:
    per_model, every_model = _models(flags)
    if "custom" in refs and flags.extract_url is None:
        raise UsageError("--extract-key goes with --extract-url (an OpenAI-compatible endpoint)")
    named = set(refs) | set(per_model) | ({"ollama"} if flags.ollama_url else set())
    named |= {"custom"} if flags.extract_url else set()
    wanted = [p.strip().lower() for p in (flags.provider or "auto").split(",") if p.strip()]
    if wanted in ([], ["auto"]):
        order: list[str] | None = [p for p in CASCADE_ORDER if p in named] or None
        if order is not None:
            result.notes.append(
                f"note: --provider not given: the cascade is {', '.join(order)} (the providers these flags name); "
                "give --provider to choose"
            )
        elif every_model or flags.rate_limit is not None:
            flag = "--extract-model" if every_model else "--rate-limit"
            raise UsageError(f"{flag} needs the providers it applies to: give --provider, e.g. --provider groq,ollama")
    else:
        if "auto" in wanted:
            raise UsageError("--provider: 'auto' stands alone (or list providers: groq,ollama)")
        order = list(dict.fromkeys(_provider_name(p) for p in wanted))
        for p in sorted(named - set(order)):
            result.notes.append(f"warning: {p} is not in --provider {flags.provider}; its flags are not used")
    llm: dict[str, Any] = {}
    if order is not None:
        llm["providers"] = [_provider(p, flags, refs, per_model.get(p) or every_model) for p in order]
    elif flags.concurrency is not None:
        llm["providers"] = "auto"
    if flags.concurrency is not None:
        llm["max_concurrency"] = flags.concurrency
    return llm


def _provider(name: str, flags: VexFlags, refs: dict[str, str], model: str | None) -> Any:
    entry: dict[str, Any] = {"type": name}
    if name == "custom":
        if flags.extract_url is None:
            raise UsageError("--provider custom needs --extract-url (an OpenAI-compatible endpoint)")
        url = flags.extract_url.rstrip("/")
        entry = {"type": "openai-compatible", "base_url": url.removesuffix("/chat/completions")}
    if name == "ollama" and flags.ollama_url:
        entry["base_url"] = flags.ollama_url.rstrip("/").removesuffix("/api/chat")
    if model:
        entry["model"] = model
    if name in refs:
        entry["api_keys"] = refs[name]
    if flags.rate_limit is not None:
        entry["rpm"] = None if flags.rate_limit == 0 else max(1, 60_000 // flags.rate_limit)
    return name if len(entry) == 1 else entry


# --- embedding and adaptation ----------------------------------------------------------------------------------


def _embedding(recipe: dict[str, Any], flags: VexFlags, refs: dict[str, str]) -> None:
    strategy = flags.adapter or ("reembed" if flags.reembed else None)
    if flags.adapter and flags.reembed and flags.adapter != "reembed":
        raise UsageError(f"--adapter {flags.adapter} and --reembed: give one")
    if flags.embed_model and flags.adapter_model and flags.embed_model != flags.adapter_model:
        raise UsageError("--embed-model and --adapter-model name different models; the target has one model")
    if strategy == "truncate" and "embed" not in recipe and not flags.embed_model:
        recipe["adapt"] = {"strategy": "truncate", **({"model": flags.adapter_model} if flags.adapter_model else {})}
        return
    model = flags.embed_model or flags.adapter_model
    if model:
        embed = recipe.get("embed")
        if embed is None:
            if "openai" in refs:
                embed = {"type": "openai"}
                if "," not in flags.keys["openai"]:  # the embedder takes one key
                    embed["api_key"] = refs["openai"]
            elif flags.ollama_url:
                embed = {"type": "ollama", "base_url": flags.ollama_url.rstrip("/")}
            else:
                embed = {"type": "local"}
        elif embed.get("model") not in (None, model):
            raise UsageError(f"--embed gives model {embed['model']!r} and --embed-model/--adapter-model {model!r}")
        recipe["embed"] = {**embed, "model": model}
    if strategy is not None:
        if "embed" not in recipe:
            flag = "--reembed" if strategy == "reembed" and not flags.adapter else "--adapter"
            raise UsageError(f"{flag} needs the target's model: give --adapter-model MODEL (or --embed)")
        recipe["adapt"] = {"strategy": strategy}


def _recipe_rank(key: str) -> int:
    return _RECIPE_ORDER.index(key) if key in _RECIPE_ORDER else len(_RECIPE_ORDER)
