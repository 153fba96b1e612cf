"""The recipe's ``llm:`` section (the cascade) and how it becomes providers.

::

    llm:
      providers: auto                      # or a list, in order:
      # providers:
      #   - type: groq
      #     api_keys: ${GROQ_API_KEYS}      # "k1,k2,k3": three keys, each with its own budget
      #   - ollama                          # a bare name: that provider's defaults
      #   - {type: anthropic, model: claude-haiku-4-5-20251001}
      max_concurrency: 16

``auto`` uses, in this order, groq, ollama, openai, anthropic, mistral and together: each whose key is in the
environment (``GROQ_API_KEY`` or ``GROQ_API_KEYS`` …), plus Ollama when a server answers with the model pulled.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from typing import Annotated, Any, Literal, Union

from pydantic import BaseModel, ConfigDict, Field, field_validator

from .anthropic import AnthropicConfig
from .base import ChatProvider, LLMProviderConfig
from .ollama import OllamaChatConfig
from .openai_compat import GroqConfig, MistralConfig, OpenAIChatConfig, TogetherConfig

__all__ = [
    "AUTO_ORDER",
    "BUILTIN_PROVIDERS",
    "DEFAULT_ORDER",
    "LLMSettings",
    "ProviderConfig",
    "build_providers",
    "provider_class",
]

ProviderConfig = Annotated[
    Union[GroqConfig, OpenAIChatConfig, MistralConfig, TogetherConfig, OllamaChatConfig, AnthropicConfig],  # noqa: UP007
    Field(discriminator="type"),
]

#: the issue's default cascade, and the order ``auto`` considers providers in
DEFAULT_ORDER = ("groq", "ollama", "openai", "anthropic")
AUTO_ORDER = (*DEFAULT_ORDER, "mistral", "together")

#: type → (config class, "module:Class" of the implementation); the registry's "llm" plugins say the same
BUILTIN_PROVIDERS: dict[str, tuple[type[LLMProviderConfig], str]] = {
    "groq": (GroqConfig, "vexrun.providers.llm.openai_compat:GroqProvider"),
    "openai": (OpenAIChatConfig, "vexrun.providers.llm.openai_compat:OpenAIChatProvider"),
    "openai-compatible": (OpenAIChatConfig, "vexrun.providers.llm.openai_compat:OpenAIChatProvider"),
    "mistral": (MistralConfig, "vexrun.providers.llm.openai_compat:MistralProvider"),
    "together": (TogetherConfig, "vexrun.providers.llm.openai_compat:TogetherProvider"),
    "ollama": (OllamaChatConfig, "vexrun.providers.llm.ollama:OllamaChatProvider"),
    "anthropic": (AnthropicConfig, "vexrun.providers.llm.anthropic:AnthropicProvider"),
    "claude": (AnthropicConfig, "vexrun.providers.llm.anthropic:AnthropicProvider"),
}


class LLMSettings(BaseModel):
    """``llm:`` — the providers that extraction calls, in order, and how hard the cascade may push them."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    providers: Literal["auto"] | list[ProviderConfig] = Field(
        default="auto",
        description="'auto' (groq, ollama, openai, anthropic, mistral, together: those with a key in the "
        "environment, plus a local Ollama that answers), or the providers to try in order; an entry may be just "
        "a name ('groq') for that provider's defaults.",
    )
    max_concurrency: int = Field(
        default=16,
        ge=1,
        le=256,
        description="Most requests in flight at once over all providers; the budgets "
        "of each key decide how many really are.",
    )
    max_rate_retries: int = Field(
        default=30, ge=0, le=1000, description="429s one request may meet on a provider before it goes to the next."
    )

    @field_validator("providers", mode="before")
    @classmethod
    def _names(cls, value: Any) -> Any:
        if isinstance(value, list):
            return [{"type": v} if isinstance(v, str) else v for v in value]
        return value


def provider_class(config: LLMProviderConfig) -> type[ChatProvider]:
    """The implementation of a provider config: a built-in, or an "llm" plugin from the registry."""
    ref = BUILTIN_PROVIDERS.get(config.type, (None, None))[1]
    if ref is None:
        from ...registry import resolve

        cls: type[ChatProvider] = resolve("llm", config.type).implementation()
        return cls
    module, _, name = ref.partition(":")
    found: type[ChatProvider] = getattr(importlib.import_module(module), name)
    return found


def _labelled(configs: list[LLMProviderConfig]) -> list[ChatProvider]:
    seen: dict[str, int] = {}
    out: list[ChatProvider] = []
    for cfg in configs:
        cls = provider_class(cfg)
        n = seen[cfg.type] = seen.get(cfg.type, 0) + 1
        out.append(cls(cfg, label=cfg.type if n == 1 else f"{cfg.type}-{n}"))
    return out


def build_providers(
    settings: LLMSettings,
    *,
    env: Mapping[str, str] | None = None,
    probe: bool = True,
    note: Callable[[str], None] | None = None,
) -> list[ChatProvider]:
    """The cascade's providers, in order. For ``auto``: the providers whose keys are set in ``env`` (default:
    the process environment), and Ollama when ``probe`` finds it answering with its model. ``note`` hears
    why each provider was left out."""
    if settings.providers != "auto":
        return _labelled(list(settings.providers))
    chosen: list[LLMProviderConfig] = []
    for name in AUTO_ORDER:
        cfg_cls: Any = BUILTIN_PROVIDERS[name][0]
        cfg: LLMProviderConfig = cfg_cls()
        if name == "ollama":
            if not probe:
                continue
            why = provider_class(cfg)(cfg).probe()
            if why is None:
                chosen.append(cfg)
            elif note is not None:
                note(f"ollama: {why}")
            continue
        if cfg.resolved_keys(env):
            chosen.append(cfg)
        elif note is not None:
            note(f"{name}: {cfg.key_env} is not set")
    return _labelled(chosen)
