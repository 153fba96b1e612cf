"""What every LLM provider shares: the request and answer shapes, the error classes the cascade reads, the
config fields (keys, budgets, price) and the HTTP plumbing (one httpx client, errors mapped to the classes of
:mod:`vexrun.providers.embed.http`, which are reused here rather than redefined).

A provider speaks one wire protocol and makes ONE request per :meth:`ChatProvider.complete` call with the key
it is given: retries, key rotation, budgets and falling over to the next provider are the cascade's job.
Nothing here imports httpx at module level: config models are imported when a recipe is validated.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar
from urllib.parse import urlsplit

import orjson
from pydantic import Field, SecretStr, field_validator

from ..._version import __version__
from ...connectors.base import PluginConfig
from ...redact import register_secret
from ..embed.http import (
    BadResponse,
    EndpointError,
    RateLimited,
    Refused,
    ServerError,
    Unreachable,
    clean_message,
    host_port,
    retry_hint,
    safe_url,
)

if TYPE_CHECKING:
    import httpx

__all__ = [
    "ChatAnswer",
    "ChatMessage",
    "ChatProvider",
    "ChatRequest",
    "InvalidOutput",
    "KeyRefused",
    "LLMProviderConfig",
    "ModelRefused",
    "Price",
    "TooLarge",
    "estimate_tokens",
]

_ERRNO = re.compile(r"^\[Errno -?\d+\]\s*")
_TRY_AGAIN = re.compile(r"try again in\s+((?:\d+(?:\.\d+)?(?:ms|s|m|h))+|\d+(?:\.\d+)?)", re.IGNORECASE)


# --- errors: the cascade decides by class -----------------------------------------------------------------


class KeyRefused(Refused):
    """This key cannot work (401/403, no credit, quota used up): drop the key for the run, keep the provider."""


class ModelRefused(Refused):
    """The model does not exist here or this account may not use it: drop the provider for the run."""


class TooLarge(Refused):
    """This request is too big for this provider (context length, a per-minute budget smaller than the
    request): give the request to the next provider, keep this one for the others."""


class InvalidOutput(EndpointError):
    """The server rejected its own generation (Groq's ``json_validate_failed``): handled like an answer that
    does not parse, with ``text`` the failed generation when the server returned it."""

    def __init__(self, message: str, *, text: str = "", status: int | None = None) -> None:
        super().__init__(message, status=status)
        self.text = text


# --- requests and answers ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class ChatMessage:
    role: str  # "user" or "assistant"
    content: str


@dataclass(frozen=True)
class ChatRequest:
    """A provider-independent chat request asking for one JSON object. ``version`` names the prompt (it is
    part of the cache key, with everything else here)."""

    system: str
    messages: tuple[ChatMessage, ...]
    schema: Mapping[str, Any]
    schema_name: str = "answer"
    version: str = "v1"
    max_tokens: int = 2048
    temperature: float = 0.0

    def repair(self, bad_answer: str, problems: str) -> ChatRequest:
        """The same conversation, followed by the answer that could not be used and what was wrong with it."""
        ask = (
            "Your answer could not be used: "
            + problems
            + "\nReply again with ONLY the corrected JSON object (no prose, no code fences), following the schema "
            "and every rule above."
        )
        shown = bad_answer if bad_answer.strip() else "(empty answer)"
        return ChatRequest(
            system=self.system,
            messages=(*self.messages, ChatMessage("assistant", shown), ChatMessage("user", ask)),
            schema=self.schema,
            schema_name=self.schema_name,
            version=self.version,
            max_tokens=self.max_tokens,
            temperature=self.temperature,
        )

    def canonical(self) -> bytes:
        """The bytes the cache key is computed over (stable across processes and providers)."""
        return orjson.dumps(
            {
                "system": self.system,
                "messages": [[m.role, m.content] for m in self.messages],
                "schema": self.schema,
                "schema_name": self.schema_name,
                "version": self.version,
                "max_tokens": self.max_tokens,
                "temperature": self.temperature,
            },
            option=orjson.OPT_SORT_KEYS,
        )

    def prompt_text(self) -> str:
        return self.system + "\n" + "\n".join(m.content for m in self.messages)


@dataclass
class ChatAnswer:
    """What came back: the JSON text (a tool call's input, serialised, for Anthropic), token usage as the
    server counted it, and whether the output was cut at the token limit."""

    text: str
    input_tokens: int = 0
    output_tokens: int = 0
    model: str = ""
    truncated: bool = False
    headers: dict[str, str] = field(default_factory=dict)


def estimate_tokens(text: str) -> int:
    """A tokenizer-free estimate: ~4 bytes per token for English, rounded up (the cascade corrects it with
    the counts the servers report)."""
    return len(text.encode("utf-8", "surrogatepass")) // 4 + 1


# --- config --------------------------------------------------------------------------------------------------


class Price(PluginConfig):
    """US dollars per million tokens."""

    input: float = Field(ge=0, description="USD per 1M input (prompt) tokens.")
    output: float = Field(ge=0, description="USD per 1M output (completion) tokens.")


class LLMProviderConfig(PluginConfig):
    """Settings every LLM provider shares. Subclasses narrow ``type`` and set the defaults."""

    #: the environment variables read when ``api_keys`` is empty and ``base_url`` is the provider's own
    key_env: ClassVar[str | None] = None
    #: the provider's own API host (keys from the environment are only ever sent there)
    official_host: ClassVar[str | None] = None
    #: list prices of well-known models (USD per 1M input / output tokens), used when ``price`` is unset
    known_prices: ClassVar[dict[str, tuple[float, float]]] = {}

    type: str = Field(description="The provider.")
    model: str = Field(min_length=1, description="The model name the provider knows.")
    base_url: str = Field(description="The API root; requests go to a path below it.")
    api_keys: list[SecretStr] = Field(
        default_factory=list,
        description="API keys, used in turn (each with its own budget). A list, or one string of comma-separated "
        "keys, e.g. ${GROQ_API_KEYS}. Empty: the provider's <NAME>_API_KEYS / <NAME>_API_KEY environment "
        "variable when base_url is the provider's own.",
    )
    tpm: int | None = Field(
        default=None,
        ge=1,
        description="Tokens per minute each key may use (input + output; input only when "
        "output_tpm is set). None: no limit.",
    )
    rpm: int | None = Field(default=None, ge=1, description="Requests per minute each key may make. None: no limit.")
    output_tpm: int | None = Field(
        default=None,
        ge=1,
        description="Output tokens per minute each key may use, where the provider counts them "
        "apart (Anthropic's OTPM).",
    )
    max_in_flight: int | None = Field(
        default=None,
        ge=1,
        le=256,
        description="Most requests in progress at once per key (None: only the budgets "
        "and the cascade's max_concurrency bound it).",
    )
    timeout: float = Field(default=120.0, gt=0, le=3600, description="Seconds to wait for one answer.")
    max_retries: int = Field(
        default=4,
        ge=0,
        le=50,
        description="Retries of one request after a 5xx, a timeout or a lost connection, "
        "before the request goes to the next provider.",
    )
    retry_backoff: float = Field(
        default=1.0,
        gt=0,
        le=60,
        description="First wait (seconds) before such a retry; doubles each time, with jitter.",
    )
    max_retry_wait: float = Field(default=30.0, gt=0, le=3600, description="Longest single backoff wait (seconds).")
    max_rate_wait: float = Field(
        default=120.0,
        ge=0,
        le=86400,
        description="When every key is rate limited for longer than this (seconds), "
        "the request goes to the next provider instead of waiting.",
    )
    price: Price | None = Field(
        default=None,
        description="Price per 1M input/output tokens for the cost estimate (default: the list price "
        "of well-known models; none for others).",
    )

    @field_validator("api_keys", mode="before")
    @classmethod
    def _split_keys(cls, value: Any) -> Any:
        if value is None:
            return []
        if isinstance(value, SecretStr):
            value = value.get_secret_value()
        if isinstance(value, str):
            return [k.strip() for k in value.split(",") if k.strip()]
        if isinstance(value, list):
            out: list[Any] = []
            for item in value:
                raw = item.get_secret_value() if isinstance(item, SecretStr) else item
                if isinstance(raw, str):
                    out.extend(k.strip() for k in raw.split(",") if k.strip())
                else:
                    out.append(item)
            return out
        return value

    @field_validator("base_url")
    @classmethod
    def _check_url(cls, value: str) -> str:
        parts = urlsplit(value.strip())
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError("must be an http:// or https:// URL with a host")
        if parts.username or parts.password:
            raise ValueError("must not hold credentials (give keys in api_keys)")
        if parts.query or parts.fragment:
            raise ValueError("must not have a query or fragment")
        return value.strip().rstrip("/")

    def resolved_keys(self, env: Mapping[str, str] | None = None) -> list[str]:
        """The keys to use: ``api_keys``, else (for the provider's own host) the environment's."""
        keys = [k.get_secret_value() for k in self.api_keys if k.get_secret_value()]
        if not keys and self.key_env and self.is_official():
            env = os.environ if env is None else env
            raw = env.get(self.key_env + "S") or env.get(self.key_env) or ""
            keys = [k.strip() for k in raw.split(",") if k.strip()]
        for k in keys:
            register_secret(k)
        return keys

    def is_official(self) -> bool:
        return self.official_host is not None and urlsplit(self.base_url).hostname == self.official_host

    def effective_price(self) -> Price | None:
        if self.price is not None:
            return self.price
        known = self.known_prices.get(self.model)
        return Price(input=known[0], output=known[1]) if known else None


# --- the provider ---------------------------------------------------------------------------------------------


class ChatProvider:
    """Base of the LLM providers. Subclasses set ``kind`` and ``path`` and implement the hooks."""

    kind: ClassVar[str] = "llm"
    path: ClassVar[str] = "/chat/completions"
    #: whether the provider works without a key (a local server)
    keyless: ClassVar[bool] = False

    def __init__(self, config: LLMProviderConfig, *, label: str | None = None) -> None:
        self.config = config
        self.label = label or self.kind
        self.model = config.model
        self.url = config.base_url + self.path
        self._client: httpx.Client | None = None
        self._keys: list[str] | None = None

    @property
    def where(self) -> str:
        """How messages name this provider: ``groq (llama-3.1-8b-instant) at https://…/chat/completions``."""
        return f"{self.label} ({self.config.model}) at {safe_url(self.url)}"

    # --- keys and lifecycle -------------------------------------------------------------------------------

    def keys(self) -> list[str | None]:
        """The keys this provider rotates through; ``[None]`` for a provider that needs none."""
        if self._keys is None:
            self._keys = self.config.resolved_keys()
        if self._keys:
            return list(self._keys)
        return [None] if self.keyless else []

    def missing_key_hint(self) -> str:
        env = self.config.key_env
        if env and self.config.is_official():
            return f"set {env} (or {env}S with several comma-separated keys), or give api_keys in the recipe"
        return "give api_keys in the recipe"

    def open(self, pool_size: int = 16) -> None:
        if self._client is not None:
            return
        import httpx

        self._client = httpx.Client(
            headers={"content-type": "application/json", "user-agent": f"vexrun/{__version__}"},
            timeout=httpx.Timeout(self.config.timeout, connect=min(10.0, self.config.timeout)),
            limits=httpx.Limits(max_connections=pool_size, max_keepalive_connections=pool_size),
        )

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.where}>"

    def probe(self, timeout: float = 1.0) -> str | None:
        """For ``providers: auto``: None when the provider can be used, else why not (one line)."""
        return None if self.keys() else f"no API key ({self.missing_key_hint()})"

    # --- dialect hooks --------------------------------------------------------------------------------------

    def _headers(self, key: str | None) -> dict[str, str]:
        return {"authorization": f"Bearer {key}"} if key else {}

    def _body(self, request: ChatRequest) -> dict[str, Any]:
        raise NotImplementedError

    def _answer(self, payload: Any, headers: dict[str, str]) -> ChatAnswer:
        raise NotImplementedError

    def _error_text(self, payload: Any) -> tuple[str, str | None]:
        """(message, error code or type) of an error answer."""
        if isinstance(payload, dict):
            err = payload.get("error", payload)
            if isinstance(err, dict):
                message = err.get("message") or err.get("detail") or ""
                code = err.get("code") or err.get("type")
                return str(message), str(code) if code else None
            return str(err), None
        return str(payload), None

    def _classify(self, status: int, text: str, code: str | None, payload: Any) -> EndpointError | None:
        """A dialect-specific error for this answer, or None for the shared rules."""
        return None

    # --- one request ----------------------------------------------------------------------------------------

    def complete(self, request: ChatRequest, key: str | None) -> ChatAnswer:
        """One HTTP request with ``key``. Raises :class:`RateLimited`, :class:`ServerError`,
        :class:`Unreachable`, :class:`BadResponse` (transient), :class:`KeyRefused`, :class:`ModelRefused`,
        :class:`TooLarge`, :class:`Refused` (terminal) or :class:`InvalidOutput`."""
        import httpx

        if self._client is None:
            self.open()
        assert self._client is not None
        secrets = self._secrets(key)
        try:
            response = self._client.post(
                self.url, content=orjson.dumps(self._body(request)), headers=self._headers(key)
            )
        except httpx.TimeoutException:
            raise Unreachable(f"{self.where}: no answer within {self.config.timeout:g} s") from None
        except httpx.ConnectError as exc:
            reason = _ERRNO.sub("", clean_message(str(exc), secrets, 120)) or type(exc).__name__
            raise Unreachable(
                f"{self.where}: cannot connect to {host_port(self.url)}: {reason}",
                refused=True,
                hint="is the server running and the base_url right?",
            ) from None
        except httpx.TransportError as exc:
            reason = _ERRNO.sub("", clean_message(str(exc), secrets, 120)) or type(exc).__name__
            raise Unreachable(f"{self.where}: connection lost: {reason}") from None
        headers = {k.lower(): v for k, v in response.headers.items()}
        if response.status_code >= 400:
            raise self._status_error(response.status_code, response.content, headers, response.reason_phrase, secrets)
        try:
            payload = orjson.loads(response.content)
        except orjson.JSONDecodeError:
            snippet = clean_message(response.content[:60].decode("utf-8", "replace"), secrets, 60)
            raise BadResponse(f"{self.where}: the answer is not valid JSON (starts {snippet!r})") from None
        answer = self._answer(payload, headers)
        answer.headers = headers
        return answer

    def _secrets(self, key: str | None) -> tuple[str, ...]:
        return tuple(k for k in (self._keys or []) if k) + ((key,) if key else ())

    def _status_error(
        self, status: int, content: bytes, headers: dict[str, str], reason: str, secrets: tuple[str, ...]
    ) -> EndpointError:
        try:
            payload: Any = orjson.loads(content)
        except orjson.JSONDecodeError:
            payload = content.decode("utf-8", "replace")
        raw, code = self._error_text(payload)
        text = clean_message(raw, secrets) or reason or "no message"
        where = f"{self.where}: HTTP {status}"
        special = self._classify(status, text, code, payload)
        if special is not None:
            return special
        lowered = text.lower()
        if status == 401:  # OpenAI's text echoes part of the key: leave it out altogether
            return KeyRefused(f"{where}: the API key was refused", status=status, hint="check the key")
        if status == 403:
            return KeyRefused(f"{where}: access denied: {text}", status=status, hint="check the key's permissions")
        if code in ("insufficient_quota", "billing_error") or "credit balance" in lowered:
            return KeyRefused(f"{where}: no credit left: {text}", status=status, hint="check the plan and billing")
        if (
            status == 404
            or code in ("model_not_found", "model_decommissioned", "not_found_error")
            or (status == 400 and "model" in lowered and ("not exist" in lowered or "not found" in lowered))
        ):
            return ModelRefused(f"{where}: {text}", status=status, hint="check the model name and base_url")
        if status == 413 or "request too large" in lowered or "context length" in lowered or "too long" in lowered:
            return TooLarge(f"{where}: the request is too large: {text}", status=status)
        if status == 429:
            wait = self._rate_hint(headers, raw)
            asked = f" (the server asks to wait {wait:.3g} s)" if wait is not None else ""
            return RateLimited(f"{where}: rate limited{asked}: {text}", status=status, retry_after=wait)
        if status in (408, 409, 425) or status >= 500:
            return ServerError(f"{where}: {text}", status=status, retry_after=retry_hint(headers))
        return Refused(f"{where}: {text}", status=status)

    def _rate_hint(self, headers: Mapping[str, str], message: str) -> float | None:
        """The wait a 429 asks for. Like :func:`retry_hint`, except that when ``retry-after`` is just the
        message's "try again in 2.7s" rounded up to whole seconds (Groq sends both), the exact figure wins."""
        hint = retry_hint(headers, message)
        m = _TRY_AGAIN.search(message)
        if hint is not None and m is not None:
            from ..embed.http import parse_duration

            exact = parse_duration(m.group(1))
            if exact is not None and exact <= hint < exact + 1.0:
                return exact
        return hint


def message_text(content: Any) -> str:
    """The text of an OpenAI-style message content (a string, or a list of text parts)."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(str(p.get("text", "")) for p in content if isinstance(p, dict))
    return ""
