"""The LLM providers against the loopback fakes with the real httpx client: what each sends (the fakes record
protocol violations), how answers are read, and how each error is classified for the cascade."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator

import pytest
from pydantic import SecretStr, ValidationError

from vexrun.providers.embed.http import BadResponse, RateLimited, Refused, ServerError, Unreachable
from vexrun.providers.llm.anthropic import AnthropicConfig, AnthropicProvider, anthropic_reset_hint
from vexrun.providers.llm.base import ChatMessage, ChatRequest, InvalidOutput, KeyRefused, ModelRefused, TooLarge
from vexrun.providers.llm.ollama import OllamaChatConfig, OllamaChatProvider
from vexrun.providers.llm.openai_compat import (
    GroqConfig,
    GroqProvider,
    MistralConfig,
    MistralProvider,
    OpenAIChatConfig,
    OpenAIChatProvider,
    TogetherConfig,
    TogetherProvider,
)
from vexrun.providers.llm.settings import LLMSettings, build_providers
from vexrun.stages.extract import SCHEMA, find_json, validate
from vexrun.testing.fake_api import (
    FakeAPIServer,
    Fault,
    KeyBudget,
    anthropic_server,
    chat_server,
    ollama_server,
    unused_port,
)

KEY = "gsk_test_0123456789abcdef"
CANARY = "sk-canary-7f3a9c2e5d1b4a6f8e0c"


def request(i: int = 0, sentence: str = "I decided to use Postgres because it has pgvector.") -> ChatRequest:
    user = (
        f'Extract.\n<chunk id="c1">\n<conversation_title>db {i}</conversation_title>\n'
        f"<observed_at>2024-05-03 (Friday)</observed_at>\n<transcript>\nUser: {sentence}\n\n"
        "Assistant: Good choice.\n</transcript>\n</chunk>"
    )
    return ChatRequest(
        system="You extract facts. Answer in JSON.",
        messages=(ChatMessage("user", user),),
        schema=SCHEMA,
        schema_name="record_facts",
        max_tokens=512,
    )


def facts_of(text: str) -> list[str]:
    return [f.fact for f in validate(find_json(text), ["c1"]).facts]


@pytest.fixture
def groq_srv() -> Iterator[FakeAPIServer]:
    with chat_server(api_keys=[KEY, CANARY], style="groq") as srv:
        yield srv
    assert not srv.violations, srv.violations


def groq(srv: FakeAPIServer, **kw: object) -> GroqProvider:
    cfg = GroqConfig(base_url=srv.url("/v1"), api_keys=[KEY], **kw)  # type: ignore[arg-type]
    p = GroqProvider(cfg)
    p.open()
    return p


# --- configs -------------------------------------------------------------------------------------------------


def test_defaults_match_the_issue() -> None:
    assert GroqConfig().model == "llama-3.1-8b-instant"
    assert OpenAIChatConfig().model == "gpt-4o-mini"
    assert AnthropicConfig().model == "claude-haiku-4-5-20251001"
    assert MistralConfig().model == "mistral-small-latest"
    assert TogetherConfig().model == "meta-llama/Llama-3.2-3B-Instruct-Turbo"
    assert (GroqConfig().tpm, GroqConfig().rpm) == (6000, 30)
    assert AnthropicConfig().output_tpm == 10_000
    assert OllamaChatConfig().tpm is None and OllamaChatConfig().max_in_flight == 2


def test_keys_from_a_comma_separated_value_or_a_list() -> None:
    assert [k.get_secret_value() for k in GroqConfig(api_keys="a1,  b2 ,c3").api_keys] == ["a1", "b2", "c3"]
    cfg = GroqConfig(api_keys=[SecretStr("a1,b2"), "c3"])  # type: ignore[list-item]
    assert cfg.resolved_keys() == ["a1", "b2", "c3"]
    assert "a1" not in repr(cfg) and "a1" not in str(cfg.model_dump())


def test_environment_keys_only_for_the_providers_own_host() -> None:
    env = {"GROQ_API_KEYS": "k1,k2", "GROQ_API_KEY": "k0"}
    assert GroqConfig().resolved_keys(env) == ["k1", "k2"]
    assert GroqConfig().resolved_keys({"GROQ_API_KEY": "k0"}) == ["k0"]
    assert GroqConfig(base_url="http://127.0.0.1:9/v1").resolved_keys(env) == []


def test_config_rejects_unknown_fields_and_bad_urls() -> None:
    with pytest.raises(ValidationError):
        GroqConfig(modle="x")  # type: ignore[call-arg]
    with pytest.raises(ValidationError):
        GroqConfig(base_url="ftp://x")
    with pytest.raises(ValidationError):
        GroqConfig(base_url="https://user:pw@api.groq.com/openai/v1")


def test_price_defaults_to_the_list_price_of_known_models() -> None:
    assert GroqConfig().effective_price() is not None
    assert GroqConfig(model="something-else").effective_price() is None
    cfg = GroqConfig(model="x", price={"input": 1, "output": 2})  # type: ignore[arg-type]
    assert cfg.effective_price() is not None


def test_settings_accept_bare_provider_names() -> None:
    s = LLMSettings(providers=["groq", {"type": "ollama", "model": "qwen2.5:7b"}])  # type: ignore[list-item]
    assert [p.type for p in s.providers] == ["groq", "ollama"]  # type: ignore[union-attr]
    with pytest.raises(ValidationError):
        LLMSettings(providers=["nope"])  # type: ignore[list-item]
    assert LLMSettings().providers == "auto"


# --- the OpenAI-compatible dialect ---------------------------------------------------------------------------


def test_groq_answers_are_read_with_usage(groq_srv: FakeAPIServer) -> None:
    p = groq(groq_srv)
    try:
        answer = p.complete(request(), KEY)
    finally:
        p.close()
    assert facts_of(answer.text) == ["The user decided to use Postgres.", "It has pgvector."]
    assert answer.input_tokens > 0 and answer.output_tokens > 0
    body = groq_srv.requests[-1].json
    assert body["response_format"] == {"type": "json_object"} and body["max_tokens"] == 512
    assert body["messages"][0]["role"] == "system"
    assert groq_srv.requests[-1].headers["authorization"] == f"Bearer {KEY}"


@pytest.mark.parametrize(
    ("cls", "cfg_cls", "field", "mode"),
    [
        (OpenAIChatProvider, OpenAIChatConfig, "max_tokens", "json_schema"),
        (MistralProvider, MistralConfig, "max_tokens", "json_object"),
        (TogetherProvider, TogetherConfig, "max_tokens", "json_object"),
    ],
)
def test_openai_compatible_providers(cls: type, cfg_cls: type, field: str, mode: str) -> None:
    with chat_server(api_keys=[KEY]) as srv:
        p = cls(cfg_cls(base_url=srv.url("/v1"), api_keys=[KEY]))
        try:
            answer = p.complete(request(), KEY)
        finally:
            p.close()
        body = srv.requests[-1].json
    assert not srv.violations
    assert facts_of(answer.text)
    assert body["response_format"]["type"] == mode and field in body
    if mode == "json_schema":
        assert body["response_format"]["json_schema"]["strict"] is True


def test_openai_official_host_uses_max_completion_tokens() -> None:
    assert OpenAIChatProvider(OpenAIChatConfig()).max_tokens_field == "max_completion_tokens"
    assert OpenAIChatProvider(OpenAIChatConfig(base_url="http://127.0.0.1:9/v1")).max_tokens_field == "max_tokens"


def test_error_classes(groq_srv: FakeAPIServer) -> None:
    p = groq(groq_srv)
    try:
        with pytest.raises(KeyRefused) as e401:
            p.complete(request(), "gsk_wrong_key_123456")
        assert "gsk_wrong" not in str(e401.value)
        groq_srv.fail(Fault.server_error(503))
        with pytest.raises(ServerError):
            p.complete(request(), KEY)
        groq_srv.fail(Fault.malformed())
        with pytest.raises(BadResponse):
            p.complete(request(), KEY)
        groq_srv.fail(Fault.quota())
        with pytest.raises(KeyRefused):
            p.complete(request(), KEY)
        groq_srv.fail(Fault.http(400, "Invalid 'temperature'", code="invalid_value"))
        with pytest.raises(Refused) as plain:
            p.complete(request(), KEY)
        assert type(plain.value) is Refused
    finally:
        p.close()
    bad_model = GroqProvider(GroqConfig(base_url=groq_srv.url("/v1"), api_keys=[KEY], model="llama-9"))
    try:
        with pytest.raises(ModelRefused, match="does not exist"):
            bad_model.complete(request(), KEY)
    finally:
        bad_model.close()


@pytest.mark.parametrize(
    ("fault", "expected"),
    [
        (Fault.rate_limit(retry_after=2), 2.0),
        (Fault.rate_limit(retry_after_ms=350), 0.35),
        (Fault.rate_limit(try_again_in=3.435), 3.435),
        (Fault.rate_limit(reset_requests=1.5, exhausted="requests"), 1.5),
        (Fault.rate_limit(reset_tokens="6m0s", exhausted="tokens"), 360.0),
    ],
    ids=["retry-after", "retry-after-ms", "message", "reset-requests", "reset-tokens"],
)
def test_each_rate_limit_hint_is_read(groq_srv: FakeAPIServer, fault: Fault, expected: float) -> None:
    p = groq(groq_srv)
    groq_srv.fail(fault)
    try:
        with pytest.raises(RateLimited) as exc:
            p.complete(request(), KEY)
    finally:
        p.close()
    assert exc.value.retry_after == pytest.approx(expected, abs=0.01)


def test_groqs_rounded_retry_after_gives_way_to_the_exact_message() -> None:
    with chat_server(api_keys=[KEY], budget=KeyBudget(tpm=500), style="groq") as srv:
        p = groq(srv)
        try:
            with pytest.raises(RateLimited) as exc:
                for _ in range(5):
                    p.complete(request(), KEY)
        finally:
            p.close()
        last = srv.requests[-1]
    assert last.key == KEY
    message = str(exc.value)
    assert "tokens per minute (TPM): Limit 500" in message and "Please try again in" in message
    assert exc.value.retry_after is not None and exc.value.retry_after % 1 != 0  # the exact figure, not ceil


def test_request_larger_than_the_minutes_budget_is_too_large() -> None:
    with chat_server(api_keys=[KEY], budget=KeyBudget(tpm=50), style="groq") as srv:
        p = groq(srv)
        try:
            with pytest.raises(TooLarge, match="Request too large"):
                p.complete(request(), KEY)
        finally:
            p.close()


def test_json_validate_failed_is_an_invalid_output(groq_srv: FakeAPIServer) -> None:
    err = Fault.http(400, "Failed to generate JSON.", code="json_validate_failed")
    groq_srv.fail(err)
    p = groq(groq_srv)
    try:
        with pytest.raises(InvalidOutput):
            p.complete(request(), KEY)
    finally:
        p.close()


def test_timeout_and_refused_connection_are_unreachable(groq_srv: FakeAPIServer) -> None:
    p = groq(groq_srv, timeout=0.3)
    groq_srv.fail(Fault.delay(1.0))
    try:
        with pytest.raises(Unreachable) as slow:
            p.complete(request(), KEY)
        assert not slow.value.refused
    finally:
        p.close()
    gone = GroqProvider(GroqConfig(base_url=f"http://127.0.0.1:{unused_port()}/v1", api_keys=[KEY]))
    try:
        with pytest.raises(Unreachable) as refused:
            gone.complete(request(), KEY)
    finally:
        gone.close()
    assert refused.value.refused


def test_text_faults_come_back_as_text_for_the_parser(groq_srv: FakeAPIServer) -> None:
    p = groq(groq_srv)
    try:
        groq_srv.fail(Fault.fenced())
        assert p.complete(request(), KEY).text.startswith("```json")
        groq_srv.fail(Fault.prose())
        assert p.complete(request(), KEY).text.startswith("Sure!")
        groq_srv.fail(Fault.broken_json())
        with pytest.raises(ValueError):
            json.loads(p.complete(request(), KEY).text)
    finally:
        p.close()


def test_secrets_never_in_messages() -> None:
    with chat_server(api_keys=[KEY]) as srv:
        srv.fail(Fault.http(500, f"internal error for key {CANARY}"), Fault.http(429, f"slow down {CANARY}"))
        p = GroqProvider(GroqConfig(base_url=srv.url("/v1"), api_keys=[CANARY]))
        try:
            for _ in range(3):
                with pytest.raises((ServerError, RateLimited, KeyRefused)) as exc:
                    p.complete(request(), CANARY)
                assert CANARY not in str(exc.value)
        finally:
            p.close()
        assert CANARY not in repr(p)


# --- Ollama --------------------------------------------------------------------------------------------------


def test_ollama_native_chat_with_schema_format_and_draft_option() -> None:
    with ollama_server(chat=True) as srv:
        cfg = OllamaChatConfig(base_url=srv.url(), draft_num_predict=4, num_ctx=8192)
        p = OllamaChatProvider(cfg)
        try:
            assert p.keys() == [None]
            assert p.probe() is None
            answer = p.complete(request(), None)
        finally:
            p.close()
        body = srv.requests[-1].json
        chat = next(a for a in srv.apps if type(a).__name__ == "OllamaChatApp")
    assert not srv.violations, srv.violations
    assert facts_of(answer.text) and answer.input_tokens > 0
    assert body["stream"] is False and body["format"]["type"] == "object"
    assert chat.options_seen[-1]["draft_num_predict"] == 4 and chat.options_seen[-1]["num_ctx"] == 8192


def test_ollama_missing_model_and_busy_server() -> None:
    with ollama_server(chat=True, max_parallel=0) as srv:
        missing = OllamaChatProvider(OllamaChatConfig(base_url=srv.url(), model="nope:1b"))
        busy = OllamaChatProvider(OllamaChatConfig(base_url=srv.url()))
        try:
            assert "ollama pull nope:1b" in (missing.probe() or "")
            with pytest.raises(ModelRefused, match="ollama pull"):
                missing.complete(request(), None)
            with pytest.raises(ServerError, match="server busy"):
                busy.complete(request(), None)
        finally:
            missing.close()
            busy.close()
    down = OllamaChatProvider(OllamaChatConfig(base_url=f"http://127.0.0.1:{unused_port()}"))
    assert "no Ollama server answers" in (down.probe() or "")


# --- Anthropic -----------------------------------------------------------------------------------------------


def test_anthropic_native_messages_with_a_forced_tool() -> None:
    with anthropic_server(api_keys=[KEY]) as srv:
        p = AnthropicProvider(AnthropicConfig(base_url=srv.url(), api_keys=[KEY]))
        try:
            answer = p.complete(request(), KEY)
        finally:
            p.close()
        req = srv.requests[-1]
    assert not srv.violations, srv.violations
    assert req.path == "/v1/messages" and req.headers["x-api-key"] == KEY
    assert req.headers["anthropic-version"] == "2023-06-01"
    assert req.json["tool_choice"] == {"type": "tool", "name": "record_facts"}
    assert req.json["tools"][0]["input_schema"]["required"] == ["facts", "relations"]
    assert facts_of(answer.text) == ["The user decided to use Postgres.", "It has pgvector."]


def test_anthropic_errors_and_rate_limits() -> None:
    budget = KeyBudget(tpm=100_000, rpm=1000, output_tpm=10)
    with anthropic_server(api_keys=[KEY], budget=budget) as srv:
        p = AnthropicProvider(AnthropicConfig(base_url=srv.url(), api_keys=[KEY]))
        try:
            with pytest.raises(KeyRefused):
                p.complete(request(), "sk-ant-wrong")
            srv.fail(Fault.http(529, "Overloaded", code="overloaded_error"))
            with pytest.raises(ServerError):
                p.complete(request(), KEY)
            with pytest.raises(TooLarge):  # the answer alone is more than 10 output tokens a minute
                p.complete(request(), KEY)
        finally:
            p.close()
    with anthropic_server(api_keys=[KEY], budget=KeyBudget(tpm=100_000, output_tpm=300)) as srv:
        p = AnthropicProvider(AnthropicConfig(base_url=srv.url(), api_keys=[KEY]))
        try:
            with pytest.raises(RateLimited) as exc:
                for _ in range(10):
                    p.complete(request(), KEY)
        finally:
            p.close()
    assert "output tokens per minute" in str(exc.value)
    assert exc.value.retry_after is not None and exc.value.retry_after >= 1
    bad = AnthropicProvider(AnthropicConfig(base_url="http://127.0.0.1:9", model="claude-nope"))
    assert bad.keys() == [] or bad.keys()


def test_anthropic_reset_headers_are_read_when_there_is_no_retry_after() -> None:
    now = time.time()
    stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now + 30))
    headers = {
        "anthropic-ratelimit-input-tokens-remaining": "0",
        "anthropic-ratelimit-input-tokens-reset": stamp,
        "anthropic-ratelimit-requests-remaining": "10",
        "anthropic-ratelimit-requests-reset": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now + 5)),
    }
    assert anthropic_reset_hint(headers, now) == pytest.approx(30, abs=1.5)


# --- auto ----------------------------------------------------------------------------------------------------


def test_auto_picks_providers_with_keys_and_an_answering_ollama(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("GROQ", "OPENAI", "ANTHROPIC", "MISTRAL", "TOGETHER"):
        monkeypatch.delenv(f"{name}_API_KEY", raising=False)
        monkeypatch.delenv(f"{name}_API_KEYS", raising=False)
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-1")
    monkeypatch.setenv("GROQ_API_KEYS", "g1,g2")
    notes: list[str] = []
    with ollama_server(chat=True) as srv:
        monkeypatch.setenv("OLLAMA_HOST", srv.url())
        chosen = build_providers(LLMSettings(), note=notes.append)
    assert [p.label for p in chosen] == ["groq", "ollama", "anthropic"]
    assert chosen[0].keys() == ["g1", "g2"]
    assert any("OPENAI_API_KEY is not set" in n for n in notes)
    monkeypatch.setenv("OLLAMA_HOST", f"127.0.0.1:{unused_port()}")
    assert [p.label for p in build_providers(LLMSettings())] == ["groq", "anthropic"]
