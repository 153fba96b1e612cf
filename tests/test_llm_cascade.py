"""The cascade against the loopback fakes with the real httpx client: key rotation and per-key budgets, every
error class of issue 6 (429 with each kind of hint on one key while the others keep working, 5xx / timeouts /
refused connections, refused keys, unknown models, every provider exhausted), broken answers repaired once
then handed to the next provider, and the cache that makes sure nothing is paid for twice."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from vexrun.errors import ConnectError
from vexrun.providers.llm.anthropic import AnthropicConfig, AnthropicProvider
from vexrun.providers.llm.base import ChatMessage, ChatProvider, ChatRequest
from vexrun.providers.llm.cascade import Cascade, Outcome
from vexrun.providers.llm.ollama import OllamaChatConfig, OllamaChatProvider
from vexrun.providers.llm.openai_compat import GroqConfig, GroqProvider, OpenAIChatConfig, OpenAIChatProvider
from vexrun.stages.extract import SCHEMA, ParsedAnswer, find_json, validate
from vexrun.stages.llm_cache import LLMCache
from vexrun.testing.fake_api import (
    FakeAPIServer,
    Fault,
    KeyBudget,
    anthropic_server,
    chat_server,
    ollama_server,
    unused_port,
)

K1, K2, K3 = "gsk_key_one_1111", "gsk_key_two_2222", "gsk_key_three_3333"
FAST: dict[str, Any] = {"retry_backoff": 0.02, "max_retry_wait": 0.2, "timeout": 2.0}
CHAT = "/v1/chat/completions"


def request(i: int, sentence: str = "I decided to use Postgres because it has pgvector.") -> ChatRequest:
    user = (
        f'<chunk id="c1">\n<conversation_title>t{i}</conversation_title>\n<observed_at>2024-05-03 (Friday)'
        f"</observed_at>\n<transcript>\nUser: {sentence}\n</transcript>\n</chunk>"
    )
    return ChatRequest("Extract facts; answer in JSON.", (ChatMessage("user", user),), SCHEMA, "record_facts")


def parse(text: str) -> ParsedAnswer:
    return validate(find_json(text), ["c1"])


def groq(srv: FakeAPIServer | None, keys: list[str], **kw: Any) -> GroqProvider:
    url = srv.url("/v1") if srv is not None else f"http://127.0.0.1:{unused_port()}/v1"
    return GroqProvider(GroqConfig(base_url=url, api_keys=keys, **{**FAST, **kw}))


def run(providers: list[ChatProvider], n: int, **kw: Any) -> tuple[list[Outcome[ParsedAnswer]], Cascade, float]:
    t0 = time.monotonic()
    with Cascade(providers, **kw) as cascade:
        outcomes = cascade.complete_many([(request(i), parse) for i in range(n)])
    return outcomes, cascade, time.monotonic() - t0


def key_times(srv: FakeAPIServer, key: str) -> list[float]:
    return [r.at for r in srv.requests if r.key == key and r.path == CHAT]


# --- rotation and budgets --------------------------------------------------------------------------------------


def test_keys_take_turns() -> None:
    with chat_server(api_keys=[K1, K2, K3]) as srv:
        outcomes, cascade, _ = run([groq(srv, [K1, K2, K3], tpm=None, rpm=None)], 12, max_concurrency=1)
    assert all(o.ok for o in outcomes)
    assert [srv.stats.by_key[k].requests for k in (K1, K2, K3)] == [4, 4, 4]
    keys = cascade.usage()["providers"]["groq"]["keys"]
    assert [keys[f"key{i}"]["calls"] for i in (1, 2, 3)] == [4, 4, 4]


@pytest.mark.parametrize(
    "fault",
    [
        Fault.rate_limit(retry_after=1, key=K1),
        Fault.rate_limit(retry_after_ms=700, key=K1),
        Fault.rate_limit(try_again_in=0.7, key=K1),
        Fault.rate_limit(reset_requests=0.7, exhausted="requests", key=K1),
        Fault.rate_limit(retry_after_date=1.5, key=K1),
    ],
    ids=["retry-after", "retry-after-ms", "message", "x-ratelimit-reset", "retry-after-date"],
)
def test_429_waits_on_that_key_only_while_the_other_keeps_working(fault: Fault) -> None:
    with chat_server(api_keys=[K1, K2], latency=0.02) as srv:
        srv.fail(fault)
        outcomes, cascade, _ = run([groq(srv, [K1, K2], tpm=None, rpm=None)], 120, max_concurrency=1)
    assert all(o.ok for o in outcomes)
    wanted = 0.7 if fault.headers.get("retry-after") != "1" else 1.0
    if fault.retry_after_date:
        wanted = 0.45  # an HTTP date has whole seconds: 1.5 s ahead is 0.5 to 1.5 s
    limited = next(r for r in srv.requests if r.key == K1)
    after = [t for t in key_times(srv, K1) if t > limited.at]
    assert after, "key 1 was never used again"
    assert after[0] - limited.at >= wanted - 0.05  # (the server sleeps its latency before reading the key)
    during = [t for t in key_times(srv, K2) if limited.at < t < after[0]]
    assert during, "key 2 did not keep working while key 1 waited"
    groq_usage = cascade.usage()["providers"]["groq"]
    assert groq_usage["rate_limited"] == 1 and groq_usage["keys"]["key1"]["rate_limited"] == 1
    assert groq_usage["calls"] == 120


def test_the_servers_own_budget_429_is_honoured() -> None:
    """The client believes it may use 60,000 tokens a minute; the server allows 3,000: the server's 429s say
    exactly how long to wait, and every request gets through (each request is ~320 tokens)."""
    with chat_server(api_keys=[K1], budget=KeyBudget(tpm=3000), style="groq") as srv:
        outcomes, cascade, elapsed = run([groq(srv, [K1], tpm=60_000, rpm=None)], 10, max_concurrency=2)
        app_usage = srv.apps[0].limiter.usage()[K1]  # type: ignore[attr-defined]
    assert all(o.ok for o in outcomes)
    assert app_usage.limited >= 1 and cascade.usage()["total"]["rate_limited"] == app_usage.limited
    spent = app_usage.input_tokens + app_usage.output_tokens
    assert spent > 3000
    assert elapsed >= (spent - 3000) / 50 * 0.8  # 3,000 a minute is 50 a second


def test_budgets_pace_the_requests_without_429s() -> None:
    """Client and server share the budget: the client waits for its own buckets instead of meeting 429s, and
    still uses most of the budget."""
    tpm = 6000
    with chat_server(api_keys=[K1], budget=KeyBudget(tpm=tpm), style="groq", latency=0.02) as srv:
        outcomes, _, elapsed = run([groq(srv, [K1], tpm=tpm, rpm=None)], 21, max_concurrency=8)
        used = srv.apps[0].limiter.usage()[K1]  # type: ignore[attr-defined]
    assert all(o.ok for o in outcomes)
    spent = used.input_tokens + used.output_tokens
    assert spent > tpm, "the test needs more than one minute's budget"
    paced = (spent - tpm) / (tpm / 60)
    assert used.limited <= 3, f"{used.limited} requests met a 429"
    assert paced * 0.7 <= elapsed <= paced * 1.6 + 1.0, (paced, elapsed)


def test_request_too_large_for_a_keys_budget_goes_to_the_next_provider() -> None:
    with chat_server(api_keys=[K1]) as srv, ollama_server(chat=True) as oll:
        small = groq(srv, [K1], tpm=20)
        outcomes, _, _ = run([small, OllamaChatProvider(OllamaChatConfig(base_url=oll.url(), **FAST))], 2)
    assert all(o.ok and o.provider == "ollama" for o in outcomes)
    assert srv.stats.requests == 0


# --- transient errors ------------------------------------------------------------------------------------------


def test_5xx_timeouts_and_resets_are_retried_with_backoff() -> None:
    with chat_server(api_keys=[K1]) as srv:
        srv.fail(Fault.server_error(503), Fault.server_error(500), Fault.delay(3.0), Fault.reset(), Fault.malformed())
        outcomes, cascade, _ = run([groq(srv, [K1], timeout=0.5, max_retries=5)], 3, max_concurrency=1)
    assert all(o.ok for o in outcomes)
    usage = cascade.usage()["providers"]["groq"]
    assert usage["retries"] == 5 and usage["errors"] == 5 and usage["calls"] == 3


def test_a_refused_connection_moves_on_and_the_provider_is_skipped_a_while() -> None:
    with ollama_server(chat=True) as oll:
        dead = groq(None, [K1], max_retries=1)
        live = OllamaChatProvider(OllamaChatConfig(base_url=oll.url(), **FAST))
        logs: list[str] = []
        outcomes, cascade, elapsed = run([dead, live], 10, max_concurrency=1, log_fn=logs.append)
    assert all(o.ok and o.provider == "ollama" for o in outcomes)
    skipped = [w for w in cascade.warnings if "skipping it for 30 s" in w]
    assert len(skipped) == 1 and "cannot connect" in skipped[0]
    assert elapsed < 5


def test_every_provider_exhausted_gives_the_reason_of_each() -> None:
    with chat_server(api_keys=[K1]) as srv:
        srv.fail(Fault.server_error(503, times=None))
        outcomes, _, _ = run([groq(srv, [K1], max_retries=1), groq(None, ["k"], max_retries=0)], 1)
    (o,) = outcomes
    assert not o.ok and o.value is None
    assert o.reason is not None and o.reason.startswith("every provider failed: groq: ")
    assert "HTTP 503" in o.reason and "gave up after 2 attempts" in o.reason
    assert "groq-2: " in o.reason and "cannot connect" in o.reason


def test_rate_limited_longer_than_max_rate_wait_goes_to_the_next_provider() -> None:
    with chat_server(api_keys=[K1]) as srv, anthropic_server(api_keys=[K2]) as ant:
        srv.fail(Fault.rate_limit(retry_after=600, times=None))
        claude = AnthropicProvider(AnthropicConfig(base_url=ant.url(), api_keys=[K2], **FAST))
        outcomes, cascade, elapsed = run([groq(srv, [K1], max_rate_wait=5), claude], 4)
    assert all(o.ok and o.provider == "anthropic" for o in outcomes)
    assert elapsed < 5 and srv.stats.requests <= 4  # each request met one 429; then nobody asks that key again


# --- terminal errors -------------------------------------------------------------------------------------------


def test_a_refused_key_is_dropped_with_one_warning() -> None:
    bad = "gsk_revoked_9999"
    with chat_server(api_keys=[K1, K2]) as srv:
        logs: list[str] = []
        outcomes, cascade, _ = run([groq(srv, [K1, bad, K2])], 12, max_concurrency=3, log_fn=logs.append)
    assert all(o.ok for o in outcomes)
    assert srv.stats.by_key[bad].requests <= 3  # (the requests already in flight when the first 401 came)
    dropped = [w for w in cascade.warnings if "key2 was refused" in w]
    assert len(dropped) == 1 and len([m for m in logs if "key2" in m]) == 1
    assert bad not in " ".join(cascade.warnings + logs)
    assert cascade.usage()["providers"]["groq"]["keys"]["key2"]["status"] == "dropped"


def test_a_bad_model_drops_the_provider_with_one_warning() -> None:
    with chat_server(api_keys=[K1]) as srv:
        wrong = groq(srv, [K1], model="llama-0-nonexistent")
        good = OpenAIChatProvider(OpenAIChatConfig(base_url=srv.url("/v1"), api_keys=[K1], **FAST))
        outcomes, cascade, _ = run([wrong, good], 6, max_concurrency=2)
    assert all(o.ok and o.provider == "openai" for o in outcomes)
    assert len([w for w in cascade.warnings if "groq: dropped for this run" in w]) == 1
    assert sum(1 for r in srv.requests if r.json["model"] == "llama-0-nonexistent") <= 2
    assert cascade.usage()["providers"]["groq"]["status"].startswith("dropped")


def test_no_usable_provider_is_a_connect_error() -> None:
    with pytest.raises(ConnectError, match="no LLM provider can be used: groq: no API key"):
        Cascade([GroqProvider(GroqConfig(base_url="http://127.0.0.1:9/v1"))]).open()


# --- broken answers --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("fault", [Fault.fenced(), Fault.prose()], ids=["fenced", "prose"])
def test_fenced_and_prose_answers_parse_without_a_repair(fault: Fault) -> None:
    with chat_server(api_keys=[K1]) as srv:
        srv.fail(fault)
        outcomes, _, _ = run([groq(srv, [K1])], 1)
    (o,) = outcomes
    assert o.ok and not o.repaired and o.calls == 1
    assert o.value is not None and [f.fact for f in o.value.facts][0] == "The user decided to use Postgres."


@pytest.mark.parametrize(
    "fault",
    [Fault.broken_json(), Fault.schema_invalid(), Fault.http(400, "Failed", code="json_validate_failed")],
    ids=["broken", "schema", "json_validate_failed"],
)
def test_a_broken_answer_gets_one_repair(fault: Fault) -> None:
    with chat_server(api_keys=[K1]) as srv:
        srv.fail(fault)
        outcomes, _, _ = run([groq(srv, [K1])], 1)
        repair = srv.requests[-1].json["messages"]
    (o,) = outcomes
    assert o.ok and o.repaired and o.calls == 2
    assert [m["role"] for m in repair] == ["system", "user", "assistant", "user"]
    assert repair[-1]["content"].startswith("Your answer could not be used: ")


def test_a_second_broken_answer_goes_to_the_next_provider() -> None:
    with chat_server(api_keys=[K1]) as srv, anthropic_server(api_keys=[K2]) as ant:
        srv.fail(Fault.broken_json(times=2))
        claude = AnthropicProvider(AnthropicConfig(base_url=ant.url(), api_keys=[K2], **FAST))
        outcomes, _, _ = run([groq(srv, [K1]), claude], 1)
    (o,) = outcomes
    assert o.ok and o.provider == "anthropic" and o.calls == 3 and not o.repaired
    assert not ant.violations


def test_broken_everywhere_is_a_failure_with_the_schema_problem() -> None:
    with chat_server(api_keys=[K1]) as srv:
        srv.fail(Fault.schema_invalid(times=None))
        outcomes, _, _ = run([groq(srv, [K1])], 1)
    (o,) = outcomes
    assert not o.ok and o.reason is not None and "even after one repair" in o.reason
    assert "potential must hold exactly 3 questions" in o.reason


# --- cache and accounting --------------------------------------------------------------------------------------


def test_the_cache_means_no_call_is_paid_for_twice(tmp_path: Path) -> None:
    with chat_server(api_keys=[K1]) as srv:
        srv.fail(Fault.broken_json())  # the repair is cached too
        with LLMCache(tmp_path / "llm.sqlite") as cache:
            first, _, _ = run([groq(srv, [K1])], 5, cache=cache)
        calls = srv.stats.requests
        assert calls == 6
        # a resumed run: a new process, a new cascade, the same cache file
        with LLMCache(tmp_path / "llm.sqlite") as cache:
            again, cascade, _ = run([groq(srv, [K1])], 5, cache=cache)
            stats = cache.stats()
        assert srv.stats.requests == calls
    assert all(o.ok and o.cached for o in again)
    assert [o.value for o in again] == [o.value for o in first]
    assert stats == {"entries": 6, "puts": 6, "max_puts": 1}
    assert cascade.usage()["providers"]["groq"]["cached"] == 6


def test_a_retry_run_asks_again_where_the_cached_answers_did_not_fit(tmp_path: Path) -> None:
    with chat_server(api_keys=[K1]) as srv, LLMCache(tmp_path / "c.sqlite") as cache:
        srv.fail(Fault.schema_invalid(times=2))
        (failed,), _, _ = run([groq(srv, [K1])], 1, cache=cache)
        assert not failed.ok and srv.stats.requests == 2
        (replayed,), _, _ = run([groq(srv, [K1])], 1, cache=cache)  # a plain re-run replays: no call, same failure
        assert not replayed.ok and srv.stats.requests == 2
        (retried,), _, _ = run([groq(srv, [K1])], 1, cache=cache, reask_invalid=True)
        assert retried.ok and srv.stats.requests == 3
        (again,), _, _ = run([groq(srv, [K1])], 1, cache=cache)  # the good answer replaced the bad one
        assert again.ok and again.cached and srv.stats.requests == 3


def test_the_cache_key_follows_the_model_not_the_provider(tmp_path: Path) -> None:
    with chat_server(api_keys=[K1]) as srv, LLMCache(tmp_path / "c.sqlite") as cache:
        run([groq(srv, [K1])], 2, cache=cache)
        other = OpenAIChatProvider(
            OpenAIChatConfig(base_url=srv.url("/v1"), api_keys=[K1], model="llama-3.1-8b-instant", **FAST)
        )
        outcomes, _, _ = run([other], 2, cache=cache)
        assert srv.stats.requests == 2
        assert all(o.cached for o in outcomes)


def test_identical_requests_are_asked_once() -> None:
    with chat_server(api_keys=[K1]) as srv, Cascade([groq(srv, [K1])]) as cascade:
        done: list[int] = []
        outcomes = cascade.complete_many([(request(0), parse)] * 5, on_done=lambda i, o: done.append(i))
        assert srv.stats.requests == 1
    assert all(o.ok for o in outcomes) and sorted(done) == [0, 1, 2, 3, 4]


def test_usage_per_provider_and_key_with_cost() -> None:
    with chat_server(api_keys=[K1, K2]) as srv:
        outcomes, cascade, _ = run([groq(srv, [K1, K2])], 4, max_concurrency=1)
        tokens = srv.stats.tokens
    usage = cascade.usage()
    g = usage["providers"]["groq"]
    assert g["input_tokens"] + g["output_tokens"] == tokens
    assert g["keys"]["key1"]["calls"] == g["keys"]["key2"]["calls"] == 2
    assert g["cost_usd"] == pytest.approx((g["input_tokens"] * 0.05 + g["output_tokens"] * 0.08) / 1e6)
    assert usage["total"]["cost_usd"] == g["cost_usd"]
    assert K1 not in repr(usage) and K2 not in repr(usage)
    again = Cascade([groq(srv, [K1, K2])])
    again.open()
    again.restore_usage(usage)
    assert again.usage()["providers"]["groq"]["keys"]["key1"]["calls"] == 2
    again.close()
    desc = cascade.describe()
    assert desc[0]["keys"] == 2 and desc[0]["tpm"] == 6000 and "price_per_1m" in desc[0]


def test_anthropic_and_ollama_in_one_cascade() -> None:
    with anthropic_server(api_keys=[K2]) as ant, ollama_server(chat=True) as oll:
        ant.fail(Fault.http(529, "Overloaded", code="overloaded_error", times=None))
        claude = AnthropicProvider(AnthropicConfig(base_url=ant.url(), api_keys=[K2], max_retries=1, **FAST))
        local = OllamaChatProvider(OllamaChatConfig(base_url=oll.url(), **FAST))
        outcomes, _, _ = run([claude, local], 3)
    assert all(o.ok and o.provider == "ollama" for o in outcomes)
    assert not ant.violations and not oll.violations


def count(predicate: Callable[[Any], bool], items: list[Any]) -> int:
    return sum(1 for i in items if predicate(i))


def test_a_cache_another_process_holds_fails_in_one_line_naming_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Several processes share the answer and embedding caches (Ray workers): a write that cannot get the
    database within the wait is one line naming the file, not SQLite's bare 'database is locked'."""
    import sqlite3

    import numpy as np

    from vexrun import cache as cache_module
    from vexrun.cache import EmbedCache
    from vexrun.errors import VexrunError
    from vexrun.providers.llm.base import ChatAnswer

    monkeypatch.setattr(cache_module, "BUSY_TIMEOUT", 0.2)
    answers, vectors = LLMCache(tmp_path / "llm-cache.sqlite"), EmbedCache(tmp_path / "cache.sqlite")
    holders = [sqlite3.connect(tmp_path / name, isolation_level=None) for name in ("llm-cache.sqlite", "cache.sqlite")]
    try:
        for holder in holders:
            holder.execute("BEGIN IMMEDIATE")  # another process in the middle of its write
        with pytest.raises(VexrunError, match=r"llm-cache\.sqlite: writing the LLM answer cache: database is locked"):
            answers.put(b"k" * 16, "m", "p", ChatAnswer(text="{}", input_tokens=1, output_tokens=1))
        keys, _ = vectors.get_many("m", ["a"])
        with pytest.raises(VexrunError, match=r"cache\.sqlite: writing the embedding cache: database is locked"):
            vectors.put_many("m", keys, np.ones((1, 4), dtype=np.float32))
    finally:
        for holder in holders:
            holder.execute("ROLLBACK")
            holder.close()
        answers.close()
        vectors.close()


def _open_both_caches(directory: str, barrier: Any, results: Any) -> None:
    from vexrun.cache import EmbedCache
    from vexrun.errors import VexrunError

    barrier.wait()
    try:
        EmbedCache(Path(directory) / "cache.sqlite").close()
        LLMCache(Path(directory) / "llm-cache.sqlite").close()
        results.put("ok")
    except VexrunError as exc:
        results.put(str(exc))


def test_workers_opening_a_new_cache_at_the_same_moment_all_open_it(tmp_path: Path) -> None:
    """A Ray run's workers open the fresh caches together: turning a new file to WAL takes a lock SQLite does not
    wait for, and one worker in four failed with 'database is locked' (58 rounds in 200 before the fix)."""
    import multiprocessing

    context = multiprocessing.get_context("fork")
    for round_ in range(30):
        directory = tmp_path / str(round_)
        directory.mkdir()
        barrier, results = context.Barrier(4), context.Queue()
        workers = [context.Process(target=_open_both_caches, args=(str(directory), barrier, results)) for _ in range(4)]
        for worker in workers:
            worker.start()
        outcomes = [results.get(timeout=120) for _ in workers]
        for worker in workers:
            worker.join()
        assert outcomes == ["ok"] * 4, (round_, outcomes)
