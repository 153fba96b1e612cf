"""The wizard's choices from command-line flags (``vexrun init --from … --to … -f K=V …``), for scripts.

Every value goes through the same checks the wizard runs as a person types (:func:`vexrun.wizard.fields.check`),
so a script cannot write what the wizard would refuse: a missing input file, a DSN that does not parse, a key
where the name of its environment variable belongs.
"""

from __future__ import annotations

import difflib
import os
from collections.abc import Iterable, Sequence
from typing import Any, cast

from ..errors import UsageError
from ..pluginspec import Kind, PluginSpec
from ..registry import resolve
from .fields import FieldInfo, Invalid, check, env_name, fields_of, looks_like_secret
from .recipe import MODES, Choices, Mode, Part

__all__ = ["choices_from_flags", "default_embedder", "key_env", "parse_settings", "provider_part", "sync_place"]

_ROLE = {"source": "source", "sink": "target", "embedder": "embedder", "llm": "provider", "convert": "format"}
_FLAG = {"source": "-f/--from-opt", "sink": "-t/--to-opt", "embedder": "-e/--embed-opt"}


def parse_settings(spec: PluginSpec, items: Iterable[str]) -> dict[str, Any]:
    """``K=V`` items as the settings of ``spec``, each checked; every required setting must be given."""
    fields: dict[str, FieldInfo] = {f.name: f for f in fields_of(spec)}
    flag = _FLAG.get(spec.kind, "K=V")
    out: dict[str, Any] = {}
    for item in items:
        key, sep, text = item.partition("=")
        key = key.strip()
        if not sep:
            raise UsageError(f"{flag} {item!r}: give KEY=VALUE")
        if key not in fields:
            near = difflib.get_close_matches(key, list(fields), n=1)
            hint = f"did you mean '{near[0]}'?" if near else f"known: {', '.join(fields)}"
            raise UsageError(f"{_ROLE[spec.kind]} {spec.name} has no setting '{key}' ({hint})")
        try:
            out[key] = check(spec, fields[key], text, out)
        except Invalid as exc:
            raise UsageError(f"{_ROLE[spec.kind]} {spec.name} {key}: {exc}") from None
    missing = [f.name for f in fields.values() if f.required and f.name not in out]
    if missing:
        raise UsageError(
            f"the {_ROLE[spec.kind]} {spec.name} needs " + ", ".join(f"{flag.split('/')[0]} {m}=…" for m in missing)
        )
    return out


def key_env(provider: PluginSpec) -> str | None:
    """The variable a provider's keys come from by default: ``<NAME>_API_KEYS`` (several keys, comma-separated,
    rotate) or ``<NAME>_API_KEY``, whichever is set here (the first when neither is); None for a provider that
    needs no key (a local Ollama)."""
    base = getattr(provider.config_model(), "key_env", None)
    if not base:
        return None
    return next((name for name in (f"{base}S", base) if os.environ.get(name)), f"{base}S")


def provider_part(name: str, env: str | None = None, model: str | None = None) -> Part:
    """An LLM provider of the cascade: its keys only as a ``${VAR}`` reference."""
    spec = resolve("llm", name)
    settings: dict[str, Any] = {}
    if model:
        settings["model"] = model
    var = env_name(env) if env else key_env(spec)
    if var:
        settings["api_keys"] = "${" + var + "}"
    return Part("llm", spec.name, settings)


def default_embedder(source: PluginSpec) -> str | None:
    """``local`` for a source whose records carry no vectors (an export), none for one that has them."""
    caps = source.capabilities
    return "local" if caps is None or caps.vectors == "none" else None


def sync_place(text: str) -> str:
    """The backup repository's git URL or path, refused when it carries credentials."""
    value = text.strip()
    if not value:
        raise UsageError("the backup's git URL or path is empty")
    userinfo = value.split("://", 1)[1].split("/", 1)[0].rpartition("@")[0] if "://" in value else ""
    if ":" in userinfo or looks_like_secret(userinfo):
        raise UsageError("no credentials in the backup's URL: the token comes from VEXRUN_GIT_TOKEN")
    return value


def _spec(kind: Kind, name: str) -> PluginSpec:
    return resolve(kind, name)


def choices_from_flags(
    *,
    source: str,
    target: str,
    from_settings: Sequence[str] = (),
    to_settings: Sequence[str] = (),
    mode: str = "raw",
    embedder: str | None = None,
    embed_settings: Sequence[str] = (),
    providers: str = "auto",
    key_envs: Sequence[str] = (),
    copy: str | None = None,
    sign: bool = False,
    sync_url: str | None = None,
    name: str | None = None,
) -> Choices:
    """The :class:`Choices` the flags of ``vexrun init`` describe. Raises UsageError on the first bad one."""
    if mode not in MODES:
        raise UsageError(f"--mode {mode}: one of {', '.join(MODES)}")
    src = _spec("source", source)
    dst = _spec("sink", target)
    embed: Part | None = None
    chosen = embedder if embedder is not None else default_embedder(src)
    if chosen and chosen != "none":
        spec = _spec("embedder", chosen)
        embed = Part("embedder", spec.name, parse_settings(spec, embed_settings))
    elif embed_settings:
        raise UsageError("-e/--embed-opt needs an embedder (--embedder)")
    envs: dict[str, str] = {}
    for item in key_envs:
        prov, sep, var = item.partition("=")
        if not sep:
            raise UsageError(f"--key-env {item!r}: give PROVIDER=VARIABLE, e.g. groq=GROQ_API_KEYS")
        try:
            envs[resolve("llm", prov.strip()).name] = env_name(var)
        except Invalid as exc:
            raise UsageError(f"--key-env {prov}: {exc}") from None
    cascade: Any = "auto"
    if providers.strip() != "auto":
        names = [p.strip() for p in providers.split(",") if p.strip()]
        cascade = [provider_part(n, envs.get(resolve("llm", n).name)) for n in names]
    elif envs:
        raise UsageError("--key-env names the providers' variables: give the providers too (--provider groq,…)")
    choices = Choices(
        source=Part("source", src.name, parse_settings(src, from_settings)),
        target=Part("sink", dst.name, parse_settings(dst, to_settings)),
        mode=cast(Mode, mode),
        embed=embed,
        providers=cascade,
        copy=copy,
        name=name,
    )
    if sign or sync_url:
        if not choices.vmig_output():
            raise UsageError("--sign and --sync-url publish a .vmig.jsonl file: add --copy PATH (or --to vmig)")
        if sign:
            choices.signing = {}
        if sync_url:
            choices.sync = {"url": sync_place(sync_url)}
    return choices
