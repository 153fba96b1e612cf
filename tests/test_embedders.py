"""The HTTP embedders (openai, ollama) against the loopback fake servers, with the real httpx client: the
requests they send, the order of what they return, retries and the waits the server asked for, terminal
errors, and that the API key never leaks. Also the fakes' own protocol checks."""

from __future__ import annotations

import json
import logging
import random
import subprocess
import sys
import time
import traceback
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import numpy as np
import pytest
from pydantic import SecretStr, ValidationError

from vexrun.errors import ConnectError, Terminal, Transient
from vexrun.providers.embed.http import (
    BadResponse,
    RateLimited,
    Refused,
    ServerError,
    Unreachable,
    clean_message,
    parse_duration,
    retry_hint,
)
from vexrun.providers.embed.ollama import OllamaEmbedder, OllamaEmbedderConfig
from vexrun.providers.embed.openai import OpenAIEmbedder, OpenAIEmbedderConfig
from vexrun.providers.embed.remote import PROBE, RemoteEmbedder
from vexrun.testing.fake_api import (
    FakeAPIServer,
    Fault,
    OllamaApp,
    ollama_server,
    openai_server,
    unused_port,
)
from vexrun.testing.fake_embedder import fake_vector

KEY = "sk-test-0123456789abcdef"
CANARY = "sk-canary-7f3a9c2e5d1b4a6f8e0c"
FAST = {"retry_backoff": 0.01, "max_retry_wait": 3.0, "timeout": 3.0}
EMBED = "/v1/embeddings"


def texts(n: int, prefix: str = "memory") -> list[str]:
    return [f"{prefix} {i}: the user prefers dark mode" for i in range(n)]


def expected(items: list[str], dims: int) -> np.ndarray:
    return np.stack([fake_vector(t, dims) for t in items])


@pytest.fixture
def srv() -> Iterator[FakeAPIServer]:
    with openai_server(api_keys=[KEY]) as server:
        yield server
    assert not server.violations, server.violations


@pytest.fixture
def opened() -> Iterator[Callable[..., Any]]:
    """Open embedders for a test and close them after it."""
    made: list[RemoteEmbedder] = []

    def make(embedder: RemoteEmbedder) -> Any:
        made.append(embedder)
        embedder.open()
        return embedder

    yield make
    for e in made:
        e.close()


def openai(server: FakeAPIServer, **options: Any) -> OpenAIEmbedder:
    settings: dict[str, Any] = {"base_url": server.url("/v1"), "api_key": SecretStr(KEY), "dimensions": 16, **FAST}
    settings.update(options)
    return OpenAIEmbedder(OpenAIEmbedderConfig(**settings))


def embed_requests(server: FakeAPIServer, path: str = EMBED) -> list[Any]:
    return [r for r in server.requests if r.path == path]


# --- what goes over the wire -----------------------------------------------------------------------------


def test_openai_sends_what_the_api_expects(srv: FakeAPIServer, opened: Callable[..., Any]) -> None:
    emb = opened(openai(srv, dimensions=32))
    items = texts(3)
    out = emb.embed(items)
    assert out.dtype == np.float32 and out.shape == (3, 32) and out.flags.c_contiguous
    np.testing.assert_array_equal(out, expected(items, 32))
    probe, request = embed_requests(srv)
    assert probe.json["input"] == [PROBE]
    assert request.json == {
        "model": "text-embedding-3-small",
        "input": items,
        "encoding_format": "base64",
        "dimensions": 32,
    }
    assert request.headers["authorization"] == f"Bearer {KEY}"
    assert request.headers["content-type"] == "application/json"
    assert request.headers["user-agent"].startswith("vexrun/")
    assert emb.model_id == "openai:text-embedding-3-small@32" and emb.dims == 32
    assert emb.usage["texts"] == 4 and emb.usage["requests"] == 2 and emb.usage["tokens"] == srv.stats.tokens


def test_openai_float_encoding_gives_the_same_vectors(srv: FakeAPIServer, opened: Callable[..., Any]) -> None:
    emb = opened(openai(srv, encoding_format="float", dimensions=None, model="text-embedding-3-small"))
    items = texts(2)
    out = emb.embed(items)
    assert embed_requests(srv)[-1].json["encoding_format"] == "float"
    assert emb.dims == 1536 and emb.model_id == "openai:text-embedding-3-small"
    np.testing.assert_array_equal(out, expected(items, 1536))


def test_order_is_kept_whatever_order_requests_finish(srv: FakeAPIServer, opened: Callable[..., Any]) -> None:
    emb = opened(openai(srv, batch_size=7, concurrency=4))
    rng = random.Random(5)
    srv.latency = lambda request: rng.uniform(0.0, 0.06)  # requests finish in a shuffled order
    srv.fail(Fault.delay(0.3))  # and the first batch answers last
    items = texts(50)
    out = emb.embed(items)
    np.testing.assert_array_equal(out, expected(items, 16))
    sent = [t for r in embed_requests(srv)[1:] for t in r.json["input"]]
    assert sorted(sent) == sorted(items) and len(sent) == 50
    assert 2 <= srv.stats.max_in_flight <= 4


def test_batches_are_even_and_keep_under_the_token_budget(opened: Callable[..., Any]) -> None:
    emb = OpenAIEmbedder(OpenAIEmbedderConfig(base_url="http://127.0.0.1:1/v1", batch_size=256))
    assert [b - a for a, b in emb.spans(["x"] * 300)] == [150, 150]
    assert [b - a for a, b in emb.spans(["x"] * 256)] == [256]
    with openai_server(max_request_tokens=60) as server:
        emb = opened(OpenAIEmbedder(OpenAIEmbedderConfig(base_url=server.url("/v1"), max_request_tokens=60, **FAST)))
        items = texts(20)  # ~10 tokens each: 20 texts cannot go in one request
        out = emb.embed(items)
        np.testing.assert_array_equal(out, expected(items, 1536))
        assert server.stats.by_status[400] == 0 and len(embed_requests(server)) > 2
        assert not server.violations


# --- retries and the waits servers ask for ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("fault", "hint"),
    [
        (Fault.rate_limit(retry_after=0.2), 0.2),
        (Fault.rate_limit(retry_after_ms=250), 0.25),
        (Fault.rate_limit(try_again_in=0.2), 0.2),  # "Please try again in 200ms."
        (Fault.rate_limit(try_again_in=1.05), 1.05),  # "Please try again in 1.05s."
        (Fault.rate_limit(reset_requests=0.2, reset_tokens="6m0s", exhausted="requests"), 0.2),
        (Fault.rate_limit(reset_requests="6m0s", reset_tokens=0.3, exhausted="tokens"), 0.3),
    ],
    ids=["retry-after", "retry-after-ms", "try-again-ms", "try-again-s", "reset-requests", "reset-tokens"],
)
def test_429_waits_what_the_server_asked(
    srv: FakeAPIServer, opened: Callable[..., Any], fault: Fault, hint: float
) -> None:
    emb = opened(openai(srv, retry_backoff=5.0))  # a backoff guess would be far off the hint
    srv.fail(fault)
    out = emb.embed(["hello"])
    np.testing.assert_array_equal(out, expected(["hello"], 16))
    limited, retried = embed_requests(srv)[-2:]
    waited = retried.at - limited.at
    assert hint <= waited < hint + 0.3, waited
    assert emb.usage["retries"] == 1


def test_429_with_an_http_date_waits_until_then(srv: FakeAPIServer, opened: Callable[..., Any]) -> None:
    emb = opened(openai(srv))
    srv.fail(Fault.rate_limit(retry_after_date=1.0))
    emb.embed(["hello"])
    limited, retried = embed_requests(srv)[-2:]
    assert retried.wall >= int(limited.wall + 1.0) - 0.01  # the date has whole seconds
    assert retried.at - limited.at < 1.4


def test_a_429_holds_back_the_other_threads_too(srv: FakeAPIServer, opened: Callable[..., Any]) -> None:
    emb = opened(openai(srv, batch_size=1, concurrency=4, retry_backoff=5.0))
    srv.latency = 0.05
    srv.fail(Fault.rate_limit(retry_after=0.4))
    start = time.monotonic()
    emb.embed(texts(12))
    later = [r.at - start for r in embed_requests(srv)[1:]]
    # the first four went out at once; one was limited, and no one sent anything new for 0.4 s
    first_wave_end = sorted(later)[3]
    assert not [t for t in later if first_wave_end + 0.1 < t < 0.4]


@pytest.mark.parametrize(
    "fault",
    [
        Fault.server_error(500),
        Fault.server_error(502),
        Fault.server_error(503),
        Fault.http(408),
        Fault.timeout(1.5),
        Fault.reset(),
        Fault.malformed(),
        Fault.wrong_count(),
        Fault.non_finite(),
    ],
    ids=lambda f: f"{f.kind}-{f.status}",
)
def test_transient_failures_are_retried(srv: FakeAPIServer, opened: Callable[..., Any], fault: Fault) -> None:
    emb = opened(openai(srv, timeout=0.5))
    srv.fail(fault)
    items = texts(3)
    np.testing.assert_array_equal(emb.embed(items), expected(items, 16))
    assert emb.usage["retries"] == 1 and srv.faults.pending == 0


def test_several_failures_in_a_row_then_success(srv: FakeAPIServer, opened: Callable[..., Any]) -> None:
    emb = opened(openai(srv, timeout=0.5, encoding_format="float"))
    srv.fail(Fault.server_error(500), Fault.reset(), Fault.non_finite(), Fault.timeout(1.0), Fault.server_error(503))
    items = texts(4)
    np.testing.assert_array_equal(emb.embed(items), expected(items, 16))
    assert emb.usage["retries"] == 5


@pytest.mark.parametrize(
    ("fault", "error", "words"),
    [
        (Fault.server_error(503, times=None), ServerError, "HTTP 503"),
        (Fault.malformed(times=None), BadResponse, "not valid JSON"),
        (Fault.wrong_count(times=None), BadResponse, "2 vectors for 3 texts"),
        (Fault.non_finite(times=None), BadResponse, "non-finite"),
        (Fault.timeout(2.0, times=None), Unreachable, "no answer within 0.3 s"),
        (Fault.rate_limit(retry_after=0.01, times=None), RateLimited, "rate limited (the server asks to wait 0.01 s)"),
    ],
    ids=["503", "malformed", "count", "nan", "timeout", "429"],
)
def test_retries_run_out_with_one_clear_line(
    srv: FakeAPIServer, opened: Callable[..., Any], fault: Fault, error: type[Exception], words: str
) -> None:
    emb = opened(openai(srv, max_retries=2, timeout=0.3))
    srv.fail(fault)
    with pytest.raises(error) as info:
        emb.embed(texts(3))
    message = str(info.value)
    assert words in message and "gave up after 3 attempts" in message and "\n" not in message
    assert srv.url(EMBED) in message and isinstance(info.value, ConnectError) and isinstance(info.value, Transient)
    assert len(embed_requests(srv)) == 1 + 3


def test_wrong_dims_is_terminal(srv: FakeAPIServer, opened: Callable[..., Any]) -> None:
    emb = opened(openai(srv, dimensions=32))
    srv.fail(Fault.wrong_dims())
    with pytest.raises(Refused, match="31-d vectors, expected 32-d"):
        emb.embed(texts(2))
    assert len(embed_requests(srv)) == 2  # no retry


def test_quota_exhausted_is_terminal(srv: FakeAPIServer, opened: Callable[..., Any]) -> None:
    emb = opened(openai(srv))
    srv.fail(Fault.quota())
    with pytest.raises(Refused, match="quota exceeded") as info:
        emb.embed(["x"])
    assert "plan and billing" in str(info.value) and len(embed_requests(srv)) == 2


def test_a_terminal_error_stops_the_other_requests(srv: FakeAPIServer, opened: Callable[..., Any]) -> None:
    emb = opened(openai(srv, batch_size=2, concurrency=3, retry_backoff=1.0))
    srv.fail(Fault.http(400, "Invalid 'input'.", skip=1), Fault.server_error(503, times=None))
    start = time.monotonic()
    with pytest.raises(Refused, match=r"HTTP 400: Invalid 'input'\."):
        emb.embed(texts(12))
    assert time.monotonic() - start < 1.0  # the 503s were not retried to the end
    emb.close()


# --- terminal errors and secrets -------------------------------------------------------------------------


def test_bad_key_is_terminal_and_never_shown(opened: Callable[..., Any], caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    with openai_server(api_keys=[KEY]) as server:
        emb = OpenAIEmbedder(OpenAIEmbedderConfig(base_url=server.url("/v1"), api_key=SecretStr(CANARY), **FAST))
        with pytest.raises(Refused) as info:
            opened(emb)
        assert len(server.requests) == 1  # no retry
    err = info.value
    assert err.status == 401 and isinstance(err, Terminal) and isinstance(err, ConnectError)
    message = str(err)
    assert message.startswith(f"openai embeddings (text-embedding-3-small) at {server.url(EMBED)}: HTTP 401")
    assert "OPENAI_API_KEY" in message and "Incorrect API key" not in message
    everything = [message, repr(err), "".join(traceback.format_exception(err)), caplog.text, repr(emb)]
    everything += [repr(emb.config), emb.config.model_dump_json(), str(emb.config)]
    for text in everything:
        assert CANARY not in text and CANARY[-8:] not in text


def test_key_stays_out_of_retry_logs(opened: Callable[..., Any], caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    with openai_server(api_keys=[CANARY]) as server:
        emb = opened(
            OpenAIEmbedder(OpenAIEmbedderConfig(base_url=server.url("/v1"), api_key=SecretStr(CANARY), **FAST))
        )
        server.fail(Fault.rate_limit(retry_after=0.01), Fault.server_error(500), Fault.reset())
        emb.embed(["x"])
        assert server.stats.by_key[CANARY].texts == 2
    assert "retry 1/6" in caplog.text and CANARY not in caplog.text


def test_openai_needs_a_key_only_for_openai(monkeypatch: pytest.MonkeyPatch, opened: Callable[..., Any]) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    with pytest.raises(Refused, match="no API key") as info:
        OpenAIEmbedder(OpenAIEmbedderConfig()).open()  # fails before any connection
    assert "OPENAI_API_KEY" in str(info.value)
    monkeypatch.setenv("OPENAI_API_KEY", CANARY)
    with openai_server() as server:  # a local compatible server: the environment's key is not sent to it
        opened(OpenAIEmbedder(OpenAIEmbedderConfig(base_url=server.url("/v1"), **FAST)))
        assert "authorization" not in server.requests[0].headers


def test_unknown_model_is_terminal(srv: FakeAPIServer, opened: Callable[..., Any]) -> None:
    with pytest.raises(Refused, match="HTTP 404: The model `nope` does not exist") as info:
        opened(openai(srv, model="nope", dimensions=None))
    assert "check the model name and base_url" in str(info.value) and len(srv.requests) == 1


def test_invalid_request_is_terminal(srv: FakeAPIServer, opened: Callable[..., Any]) -> None:
    with pytest.raises(Refused, match="does not support specifying dimensions"):
        opened(openai(srv, model="text-embedding-ada-002", dimensions=256))


def test_connection_refused_names_host_and_port(opened: Callable[..., Any]) -> None:
    port = unused_port()
    emb = OpenAIEmbedder(OpenAIEmbedderConfig(base_url=f"http://127.0.0.1:{port}/v1", api_key=SecretStr(CANARY)))
    start = time.monotonic()
    with pytest.raises(Unreachable) as info:
        opened(emb)
    assert time.monotonic() - start < 2  # no retries against nothing
    message = str(info.value)
    assert f"cannot connect to 127.0.0.1:{port}" in message and "refused" in message.lower()
    assert isinstance(info.value, ConnectError) and CANARY not in message


# --- ollama ---------------------------------------------------------------------------------------------


def ollama(server: FakeAPIServer, **options: Any) -> OllamaEmbedder:
    return OllamaEmbedder(OllamaEmbedderConfig(base_url=server.base_url, **{**FAST, **options}))


def test_ollama_sends_what_the_api_expects(opened: Callable[..., Any]) -> None:
    with ollama_server() as server:
        emb = ollama(server, keep_alive="10m", batch_size=4, concurrency=2)
        assert emb.dims == 768 and emb.model_id == "ollama:nomic-embed-text"
        opened(emb)
        items = texts(10)
        np.testing.assert_array_equal(emb.embed(items), expected(items, 768))
        sent = embed_requests(server, "/api/embed")
        assert sorted(len(r.json["input"]) for r in sent) == [1, 3, 3, 4]
        body = sent[1].json
        assert body == {"model": "nomic-embed-text", "input": body["input"], "truncate": True, "keep_alive": "10m"}
        assert "authorization" not in sent[1].headers and not server.violations
        assert emb.usage["tokens"] == server.stats.tokens > 0


def test_ollama_truncate_false_and_too_long_text(opened: Callable[..., Any]) -> None:
    with FakeAPIServer(OllamaApp(context_length=20)) as server:
        emb = opened(ollama(server, truncate=False, model="all-minilm"))
        with pytest.raises(Refused, match="exceeds the context length") as info:
            emb.embed(["word " * 50])
        assert "truncate" in str(info.value) and embed_requests(server, "/api/embed")[-1].json["truncate"] is False


def test_ollama_model_not_pulled(opened: Callable[..., Any]) -> None:
    with ollama_server() as server:
        with pytest.raises(Refused, match=r'model "nope" not found') as info:
            opened(ollama(server, model="nope"))
    assert "ollama pull nope" in str(info.value)


def test_ollama_retries(opened: Callable[..., Any]) -> None:
    with ollama_server() as server:
        emb = opened(ollama(server, model="all-minilm", timeout=0.5))
        server.fail(Fault.server_error(503), Fault.rate_limit(retry_after=0.1), Fault.timeout(1.0), Fault.malformed())
        items = texts(3)
        np.testing.assert_array_equal(emb.embed(items), expected(items, 384))
        assert emb.usage["retries"] == 4


def test_ollama_connection_refused(opened: Callable[..., Any]) -> None:
    port = unused_port()
    with pytest.raises(Unreachable, match=f"cannot connect to 127.0.0.1:{port}"):
        opened(OllamaEmbedder(OllamaEmbedderConfig(base_url=f"http://127.0.0.1:{port}")))


def test_ollama_openai_compatible_endpoint(opened: Callable[..., Any]) -> None:
    with ollama_server() as server:
        emb = opened(
            OpenAIEmbedder(
                OpenAIEmbedderConfig(type="openai-compatible", base_url=server.url("/v1"), model="all-minilm")
            )
        )
        np.testing.assert_array_equal(emb.embed(["a", "b"]), expected(["a", "b"], 384))
        assert not server.violations and "authorization" not in server.requests[-1].headers


# --- configs --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "settings",
    [
        {"base_url": "ftp://example.com"},
        {"base_url": "https://user:pw@example.com/v1"},
        {"base_url": "https://example.com/v1?key=x"},
        {"base_url": "example.com"},
        {"batch_size": 0},
        {"batch_size": 4096},
        {"concurrency": 0},
        {"timeout": 0},
        {"dimensions": 0},
        {"max_retries": -1},
        {"model": ""},
        {"unknown": 1},
    ],
)
def test_openai_config_refuses(settings: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        OpenAIEmbedderConfig(**settings)


def test_configs_are_documented_and_frozen() -> None:
    for model in (OpenAIEmbedderConfig, OllamaEmbedderConfig):
        for name, field in model.model_fields.items():
            assert field.description, f"{model.__name__}.{name}"
        assert list(model.model_fields)[0] == "type"
    cfg = OpenAIEmbedderConfig(base_url="https://api.together.xyz/v1/", api_key=SecretStr(CANARY))
    assert cfg.base_url == "https://api.together.xyz/v1" and CANARY not in repr(cfg)
    with pytest.raises(ValidationError):
        cfg.model = "other"  # type: ignore[misc]
    assert OllamaEmbedderConfig(keep_alive=-1).keep_alive == -1
    assert OllamaEmbedderConfig(keep_alive="1h30m").keep_alive == "1h30m"
    with pytest.raises(ValidationError):
        OllamaEmbedderConfig(keep_alive="soon")


def test_config_modules_import_nothing_heavy() -> None:
    code = (
        "import sys, vexrun.providers.embed.openai, vexrun.providers.embed.ollama, vexrun.providers.embed.local\n"
        "print(sorted({m.split('.')[0] for m in sys.modules} & {'httpx', 'tenacity', 'torch', "
        "'sentence_transformers', 'transformers'}))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


# --- hints and messages ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("1.5s", 1.5), ("6m0s", 360.0), ("20ms", 0.02), ("1h2m3s", 3723.0), ("0s", 0.0), ("2", 2.0), ("0.25", 0.25)],
)
def test_parse_duration(text: str, seconds: float) -> None:
    assert parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize("text", ["", "soon", "5 minutes", "1x", "s"])
def test_parse_duration_refuses(text: str) -> None:
    assert parse_duration(text) is None


def test_retry_hint_sources() -> None:
    now = 1_700_000_000.0
    assert retry_hint({"Retry-After": "3"}, now=now) == 3
    assert retry_hint({"retry-after-ms": "150", "retry-after": "3"}, now=now) == 0.15
    assert retry_hint({"retry-after": "Tue, 14 Nov 2023 22:13:25 GMT"}, now=now) == pytest.approx(5.0)
    assert retry_hint({}, "Rate limit reached ... Please try again in 3.435s. Visit …") == pytest.approx(3.435)
    assert retry_hint({}, "Please try again in 20ms.") == pytest.approx(0.02)
    both = {"x-ratelimit-reset-requests": "1s", "x-ratelimit-reset-tokens": "6m0s"}
    assert retry_hint(both) == 360  # nothing says which limit is used up: the safe one
    assert retry_hint({**both, "x-ratelimit-remaining-requests": "0", "x-ratelimit-remaining-tokens": "5"}) == 1
    assert retry_hint({"retry-after": "garbage"}) is None and retry_hint({}) is None


def test_clean_message_masks_secrets() -> None:
    text = f"Incorrect API key provided: {CANARY}.\n Also sk-proj-abc***********wxyz and key-1234567890."
    cleaned = clean_message(text, [CANARY])
    assert CANARY not in cleaned and "abc***" not in cleaned and "1234567890" not in cleaned and "\n" not in cleaned
    assert len(clean_message("x" * 1000)) == 300


# --- the fakes themselves -------------------------------------------------------------------------------


def test_fake_openai_flags_requests_a_client_should_not_send() -> None:
    with openai_server(api_keys=[KEY]) as server, httpx.Client(headers={"authorization": f"Bearer {KEY}"}) as client:
        url = server.url(EMBED)
        bad = [
            {"model": "text-embedding-3-small", "input": ["x"], "extra": 1},
            {"model": "text-embedding-3-small", "input": []},
            {"model": "text-embedding-3-small", "input": [""]},
            {"model": "text-embedding-3-small", "input": ["x"], "encoding_format": "hex"},
            {"input": ["x"]},
        ]
        for body in bad:
            r = client.post(url, json=body)
            assert r.status_code == 400 and r.json()["error"]["type"] == "invalid_request_error"
        r = client.post(url, content=b'{"model": "text-embedding-3-small", "input": ["x"]}')
        assert r.status_code == 400  # no content-type
        assert len(server.violations) == 6
        r = client.post(url, json={"model": "text-embedding-3-small", "input": "one string"})
        assert r.status_code == 200 and len(r.json()["data"]) == 1
        r = httpx.post(url, json={"model": "text-embedding-3-small", "input": ["x"]})
        assert r.status_code == 401 and "You didn't provide an API key" in r.json()["error"]["message"]
        assert client.get(server.url("/v1/models")).json()["data"][0]["id"] == "text-embedding-3-small"
        assert client.get(server.url("/nowhere")).status_code == 404
        assert client.get(url).status_code == 405
        server.violations.clear()


def test_fake_ollama_health_and_protocol() -> None:
    with ollama_server() as server, httpx.Client(base_url=server.base_url) as client:
        server.fail(Fault.server_error(503, times=None))  # faults leave health endpoints alone
        assert client.get("/").text == "Ollama is running"
        assert client.get("/api/version").json() == {"version": "0.12.6"}
        names = [m["name"] for m in client.get("/api/tags").json()["models"]]
        assert "nomic-embed-text:latest" in names
        server.faults.clear()
        r = client.post("/api/embed", json={"model": "all-minilm:latest", "input": "hello"})
        body = r.json()
        assert r.status_code == 200 and body["prompt_eval_count"] == 1 and len(body["embeddings"][0]) == 384
        assert (
            client.post("/api/embed", json={"model": "all-minilm", "input": ["x"], "truncate": "no"}).status_code == 400
        )
        assert len(server.violations) == 1
        server.violations.clear()


def test_fake_fault_matching() -> None:
    with openai_server(api_keys=[KEY, "sk-other-000000000000"]) as server, httpx.Client() as client:
        server.fail(
            Fault.server_error(500, skip=1, times=2),
            Fault.http(418, key="sk-other-000000000000", times=None),
        )
        body = {"model": "text-embedding-3-small", "input": ["x"], "dimensions": 4}

        def status(key: str) -> int:
            return client.post(server.url(EMBED), json=body, headers={"authorization": f"Bearer {key}"}).status_code

        assert [status(KEY) for _ in range(5)] == [200, 500, 500, 200, 200]
        assert status("sk-other-000000000000") == 418
        assert server.stats.by_key[KEY].requests == 5 and server.stats.by_key[KEY].texts == 3
        assert server.stats.by_status[500] == 2 and [f.status for f in server.faults.fired] == [500, 500, 418]

    def pattern(seed: int) -> list[int]:
        with openai_server(seed=seed) as server, httpx.Client() as client:
            server.fail(Fault.server_error(503, times=None, probability=0.5))
            return [client.post(server.url(EMBED), json=body).status_code for _ in range(12)]

    assert pattern(1) == pattern(1) and 200 in pattern(1) and 503 in pattern(1)


def test_fake_stops_with_idle_and_sleeping_connections() -> None:
    server = openai_server().start()
    client = httpx.Client(timeout=0.2)
    server.fail(Fault.delay(30))
    with pytest.raises(httpx.ReadTimeout):
        client.post(server.url(EMBED), json={"model": "text-embedding-3-small", "input": ["x"]})
    client.get(server.url("/v1/models"))  # leaves a keep-alive connection open
    start = time.monotonic()
    server.stop()
    assert time.monotonic() - start < 2
    client.close()


def test_fake_json_is_real_json() -> None:
    with openai_server() as server, httpx.Client() as client:
        r = client.post(server.url(EMBED), json={"model": "text-embedding-3-small", "input": ["a"], "dimensions": 3})
        payload = json.loads(r.content)
        assert payload["object"] == "list" and payload["usage"] == {"prompt_tokens": 1, "total_tokens": 1}
        assert payload["data"][0]["object"] == "embedding" and len(payload["data"][0]["embedding"]) == 3
        assert r.headers["x-ratelimit-remaining-requests"] == "2999"
