"""The completion cache: keys, the temperature rule, reruns, budgets and two processes."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from rlmagent import (
    Budget,
    CachedEngine,
    Completion,
    CompletionCache,
    FunctionEngine,
    RLMAgent,
    TokenUsage,
    UsageError,
)
from rlmagent.budget import price_of
from rlmagent.cache import cache_key, engine_identity
from rlmagent.engines import EngineBase, Price

MSGS = [{"role": "user", "content": "hello"}]


def test_key_covers_engine_model_messages_and_sampling():
    base = cache_key("openai", "m", MSGS, 0.0, 100)
    assert base == cache_key("openai", "m", [dict(MSGS[0])], 0, 100)
    variants = [
        cache_key("vllm", "m", MSGS, 0.0, 100),
        cache_key("openai", "m2", MSGS, 0.0, 100),
        cache_key("openai", "m", [{"role": "user", "content": "hello!"}], 0.0, 100),
        cache_key("openai", "m", [{"role": "system", "content": "hello"}], 0.0, 100),
        cache_key("openai", "m", MSGS, 0.5, 100),
        cache_key("openai", "m", MSGS, 0.0, 101),
        cache_key("openai", "m", MSGS, 0.0, 100, {"top_p": 0.9}),
    ]
    assert len({base, *variants}) == len(variants) + 1


def test_store_and_serve_marks_answers_cached_and_free(tmp_path: Path):
    with CompletionCache(tmp_path / "sub" / "c.sqlite") as cache:
        assert cache.get("k") is None
        cache.put("k", "openai", Completion("hi", "m", TokenUsage(5, 1), "stop", 0.25))
        hit = cache.get("k")
        assert hit == Completion("hi", "m", TokenUsage(0, 0), "stop", 0.0, cached=True)
        assert (cache.hits, cache.misses, len(cache)) == (1, 1, 1)
        cache.put("k2", "openai", hit)  # a cached answer is not stored again
        assert len(cache) == 1
    with pytest.raises(UsageError, match="is a directory"):
        CompletionCache(tmp_path)


def test_cached_engine_only_reuses_temperature_zero_unless_opted_in(tmp_path: Path):
    calls = []
    inner = FunctionEngine(lambda m, model: calls.append(1) or f"answer {len(calls)}")
    engine = CachedEngine(inner, CompletionCache(tmp_path / "c.sqlite"))
    first = engine.generate(MSGS, model="m", temperature=0)
    again = engine.generate(MSGS, model="m", temperature=0)
    assert (first.content, first.cached, again.content, again.cached) == (
        "answer 1",
        False,
        "answer 1",
        True,
    )
    hot = [engine.generate(MSGS, model="m", temperature=0.7).content for _ in range(2)]
    assert hot == ["answer 2", "answer 3"] and len(calls) == 3
    engine.cache.close()
    keen = CachedEngine(inner, CompletionCache(tmp_path / "c.sqlite", any_temperature=True))
    keen.generate(MSGS, model="m", temperature=0.7)
    assert keen.generate(MSGS, model="m", temperature=0.7).cached
    keen.cache.close()


def test_cached_engine_reports_its_wrapped_engine(tmp_path: Path):
    inner = FunctionEngine(lambda m, model: "x", price=(1, 2), context_window=1000)
    with CompletionCache(tmp_path / "c.sqlite") as cache:
        engine = CachedEngine(inner, cache)
        assert engine.wrapped is inner and engine.inner is inner
        assert engine.provider == engine.identity == engine_identity(engine) == "function"
        assert engine.price("m") == price_of(engine, "m") == Price(1.0, 2.0)
        assert engine.context_window("m") == 1000
        assert not hasattr(engine, "model")  # the function engine names no model
        plain = FunctionEngine(lambda m, model: "x")
        assert CachedEngine(plain, cache).price("m") is None
        assert CachedEngine(plain, cache).context_window("m") is None


def test_keys_use_the_engines_identity(tmp_path: Path):
    class Server(FunctionEngine):
        def __init__(self, url: str) -> None:
            super().__init__(lambda m, model: f"from {url}")
            self.url = url

        @property
        def identity(self) -> str:
            return f"function@{self.url}"

    with CompletionCache(tmp_path / "c.sqlite") as cache:
        a, b = CachedEngine(Server("a"), cache), CachedEngine(Server("b"), cache)
        assert a.generate(MSGS, model="m", temperature=0).content == "from a"
        assert b.generate(MSGS, model="m", temperature=0).content == "from b"  # not a's
        assert a.generate(MSGS, model="m", temperature=0).cached
        assert cache.get(cache_key("function@b", "m", MSGS, 0.0, 1024)) is not None
        assert engine_identity(EngineBase()) == EngineBase.provider == "engine"


ROOT_CODE = "```repl\nprint(llm_batch([f'chunk {i}' for i in range(12)]))\n```"


def counting_models():
    counts = {"root": 0, "sub": 0}
    lock = threading.Lock()

    def root(messages, model):
        with lock:
            counts["root"] += 1
        return ROOT_CODE if len(messages) == 2 else "FINAL(done)"

    def sub(messages, model):
        with lock:
            counts["sub"] += 1
        return messages[0]["content"].upper()

    return counts, FunctionEngine(root, price=(1, 1)), FunctionEngine(sub, price=(1, 1))


def cached_agent(path: Path, root, sub, **kw) -> RLMAgent:
    return RLMAgent(
        root,
        "root",
        sub_engine=sub,
        sub_model="sub",
        temperature=0,
        sub_temperature=0,
        cache=path,
        **kw,
    )


def test_a_rerun_costs_no_engine_call(tmp_path: Path):
    counts, root, sub = counting_models()
    path = tmp_path / "cache.sqlite"
    first = cached_agent(path, root, sub).run("q", context="c")
    assert counts == {"root": 2, "sub": 12} and first.usage.cached_calls == 0
    second = cached_agent(path, root, sub).run("q", context="c")
    assert counts == {"root": 2, "sub": 12}  # nothing new
    assert second.content == first.content == "done"
    assert second.usage.calls == second.usage.cached_calls == 14
    assert second.usage.cost_usd == 0.0 and second.usage.total_tokens == 0
    calls = second.trajectory[0].cells[0].sub_calls
    assert len(calls) == 12 and all(c.cached for c in calls)
    assert second.trajectory[0].cells[0].result.output == first.trajectory[0].cells[0].result.output


def test_hot_sub_calls_are_not_cached(tmp_path: Path):
    counts, root, sub = counting_models()
    path = tmp_path / "cache.sqlite"
    for _ in range(2):
        RLMAgent(
            root,
            "root",
            sub_engine=sub,
            sub_model="sub",
            temperature=0,
            sub_temperature=0.3,
            cache=path,
        ).run("q", context="c")
    assert counts == {"root": 2, "sub": 24}


def test_cached_calls_use_no_budget(tmp_path: Path):
    counts, root, sub = counting_models()
    path = tmp_path / "cache.sqlite"
    cached_agent(path, root, sub).run("q", context="c")
    result = cached_agent(path, root, sub, budget=Budget(max_calls=2)).run("q", context="c")
    # turn 1 and the 12 sub-calls come from the cache for free; turn 2's prompt now holds
    # the "Budget left" line, so it is a new call: the only one the budget paid for
    assert counts == {"root": 3, "sub": 12}
    assert result.content == "done" and result.stop_reason == "final"
    assert result.budget["spent"]["calls"] == 1
    assert result.usage.calls == 14 and result.usage.cached_calls == 13


def test_a_child_run_served_from_the_cache_is_marked_cached(tmp_path: Path):
    code = "```repl\nprint(rlm_query('Sum.', context=[1, 2, 3]))\n```"
    calls = []

    def model(messages, name):
        calls.append(1)
        if "Sum." in messages[1]["content"]:
            return "```repl\nFINAL(sum(context))\n```"
        return code if len(messages) == 2 else "FINAL(done)"

    engine = FunctionEngine(model)
    path = tmp_path / "cache.sqlite"
    for _ in range(2):
        result = RLMAgent(engine, "m", temperature=0, max_depth=2, cache=path).run("q", "c")
    assert len(calls) == 3
    [call] = result.trajectory[0].cells[0].sub_calls
    assert call.child_run_id is not None and call.cached and call.answer == "6"


WORKER = """
import json, sys, threading
from rlmagent import CompletionCache, FunctionEngine, RLMAgent
path, tag = sys.argv[1], sys.argv[2]
engine_calls = []
lock = threading.Lock()
def root(messages, model):
    return ("```repl\\nprint(llm_batch([f'item {i}' for i in range(40)]))\\n```"
            if len(messages) == 2 else "FINAL(done)")
def sub(messages, model):
    with lock:
        engine_calls.append(messages[0]["content"])
    return messages[0]["content"][::-1]
agent = RLMAgent(FunctionEngine(root), "root", sub_engine=FunctionEngine(sub),
                 sub_model="sub", temperature=0, sub_temperature=0, cache=path)
result = agent.run("q", context="c")
own = CompletionCache(path)
for i in range(200):  # racing writes of distinct keys from both processes
    own.put(f"{tag}-{i}", "test", __import__("rlmagent").Completion(str(i), "m"))
print(json.dumps({"engine_calls": len(engine_calls), "cached": result.usage.cached_calls,
                  "entries": len(own)}))
"""


def run_worker(path: Path, tag: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-c", WORKER, str(path), tag],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def test_two_processes_share_one_cache_file(tmp_path: Path):
    path = tmp_path / "shared.sqlite"
    first = run_worker(path, "a")
    out, err = first.communicate(timeout=120)
    assert first.returncode == 0, err
    miss = json.loads(out)
    assert miss["engine_calls"] == 40 and miss["cached"] == 0
    # now two processes at once: both answer from the cache and write concurrently
    both = [run_worker(path, tag) for tag in ("b", "c")]
    results = []
    for proc in both:
        out, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err
        results.append(json.loads(out))
    assert [r["engine_calls"] for r in results] == [0, 0]
    assert [r["cached"] for r in results] == [42, 42]  # 40 sub-calls and 2 root turns
    with CompletionCache(path) as cache:
        assert len(cache) == 42 + 3 * 200
