"""`rlm bench run` + `report` end to end: the runner with a FunctionEngine, resuming,
concurrency, the report and plot, the CLI in-process, and a loopback OpenAI server."""

from __future__ import annotations

import asyncio
import json
import threading
from pathlib import Path

import pytest
from bench_fakes import solve

from engines.fake_server import FakeLLMServer
from rlmagent import FunctionEngine
from rlmagent.bench import (
    METHODS,
    MethodConfig,
    Models,
    format_table,
    generate_items,
    plot,
    read_items,
    read_results,
    run_bench,
    summarize,
)
from rlmagent.cli import main
from rlmagent.errors import EngineError, UsageError

SMALL, LARGE = 2048, 8192
CONFIG = MethodConfig(window=4096, max_tokens=256)


def _models() -> Models:
    return Models(FunctionEngine(solve), "fake", FunctionEngine(solve), "fake-sub")


def _items() -> list:
    return generate_items("sniah", SMALL, 2, seed=1) + generate_items("sniah", LARGE, 2, seed=1)


def test_every_method_runs_and_direct_overflows_past_the_window(tmp_path: Path) -> None:
    out = tmp_path / "results.jsonl"
    seen = []
    results = run_bench(
        _items(),
        list(METHODS),
        _models(),
        config=CONFIG,
        out=out,
        on_result=lambda result, progress: seen.append(progress.done),
    )
    assert len(results) == 4 * len(METHODS)
    assert sorted(seen) == list(range(1, len(results) + 1))
    records = read_results(out)
    assert len(records) == len(results)
    by = {(r["method"], r["tokens"], r["index"]): r for r in records}
    for index in (0, 1):
        small_direct = by[("direct", SMALL, index)]
        assert small_direct["status"] == "ok" and small_direct["score"] == 1.0
        assert small_direct["answer"] == small_direct["gold"]
        big_direct = by[("direct", LARGE, index)]
        assert big_direct["status"] == "overflow" and big_direct["score"] == 0.0
        assert big_direct["usage"]["calls"] == 0
        assert "window 4096" in big_direct["error"]
        for size in (SMALL, LARGE):
            rlm = by[("rlm", size, index)]
            assert rlm["score"] == 1.0 and rlm["detail"]["sub_calls"] >= 1
            assert rlm["usage"]["calls"] == 1 + rlm["detail"]["sub_calls"]
            assert rlm["sub_model"] == "fake-sub"
            nosub = by[("rlm-nosub", size, index)]
            assert nosub["score"] == 1.0 and nosub["detail"]["sub_calls"] == 0
            assert nosub["usage"]["calls"] == 1
        summary = by[("summary", LARGE, index)]
        assert summary["score"] == 1.0
        assert summary["detail"]["chunks"] >= 3
        assert summary["usage"]["calls"] == summary["detail"]["chunks"] + 1
        bm25 = by[("bm25", LARGE, index)]
        assert bm25["usage"]["calls"] == 1
        assert bm25["detail"]["retrieved"] < bm25["detail"]["passages"]
    for record in records:
        assert record["context_tokens"] == (record["context_chars"] + 3) // 4
        assert record["window"] == 4096
        assert record["wall_s"] >= 0


def test_a_rerun_skips_finished_items_and_retries_errors(tmp_path: Path) -> None:
    out = tmp_path / "results.jsonl"
    items = generate_items("sniah", SMALL, 3, seed=2)
    broken_key = items[1].meta["key"]

    def flaky(messages: list[dict[str, str]], model: str) -> str:
        if broken_key in messages[-1]["content"]:
            raise EngineError("server said 503", provider="function", model=model, status=503)
        return solve(messages, model)

    first = run_bench(
        items, ["direct"], Models(FunctionEngine(flaky), "fake"), config=CONFIG, out=out
    )
    assert sorted(r.status for r in first) == ["error", "ok", "ok"]
    again = run_bench(
        items, ["direct"], Models(FunctionEngine(solve), "fake"), config=CONFIG, out=out
    )
    assert [(r.index, r.status, r.score) for r in again] == [(1, "ok", 1.0)]
    assert run_bench(items, ["direct"], _models(), config=CONFIG, out=out) == []
    assert len(read_results(out)) == 4  # the error line stays; the latest line wins
    (row,) = summarize(read_results(out))
    assert (row.n, row.score, row.errors) == (3, 1.0, 0)
    # another model is another result
    other = Models(FunctionEngine(solve), "other-model")
    assert len(run_bench(items, ["direct"], other, config=CONFIG, out=out)) == 3


def test_a_cut_last_line_is_redone(tmp_path: Path) -> None:
    out = tmp_path / "results.jsonl"
    items = generate_items("sniah", SMALL, 2)
    run_bench(items, ["direct"], _models(), config=CONFIG, out=out)
    text = out.read_text().splitlines()
    out.write_text(text[0] + "\n" + text[1][: len(text[1]) // 2])  # killed mid-write
    redone = run_bench(items, ["direct"], _models(), config=CONFIG, out=out)
    assert len(redone) == 1


def test_items_run_concurrently_up_to_the_limit() -> None:
    in_flight = 0
    peak = 0
    lock = threading.Lock()

    async def slow(messages: list[dict[str, str]], model: str) -> str:
        nonlocal in_flight, peak
        with lock:
            in_flight += 1
            peak = max(peak, in_flight)
        await asyncio.sleep(0.05)
        with lock:
            in_flight -= 1
        return solve(messages, model)

    items = generate_items("sniah", SMALL, 6)
    results = run_bench(
        items, ["direct"], Models(FunctionEngine(slow), "fake"), config=CONFIG, concurrency=3
    )
    assert [r.score for r in results] == [1.0] * 6
    assert peak == 3


def test_unknown_methods_and_bad_windows_are_usage_errors() -> None:
    with pytest.raises(UsageError, match=r"unknown method.*telepathy"):
        run_bench(_items(), ["telepathy"], _models())
    with pytest.raises(UsageError, match="leaves no room"):
        MethodConfig(window=1024, max_tokens=512)


def test_report_table_and_plot(tmp_path: Path) -> None:
    out = tmp_path / "results.jsonl"
    run_bench(_items(), ["rlm", "direct"], _models(), config=CONFIG, out=out)
    rows = summarize(read_results(out))
    cells = {(r.method, r.tokens): r for r in rows}
    assert set(cells) == {("rlm", SMALL), ("rlm", LARGE), ("direct", SMALL), ("direct", LARGE)}
    assert cells[("direct", LARGE)].score == 0.0 and cells[("direct", LARGE)].overflows == 2
    assert cells[("direct", LARGE)].ran == 0
    assert cells[("rlm", LARGE)].score == 1.0 and cells[("rlm", LARGE)].calls_mean > 1
    assert cells[("rlm", SMALL)].cost_mean is None  # the FunctionEngine has no price
    table = format_table(rows)
    assert table.splitlines()[0].split()[:5] == ["task", "method", "size", "n", "score"]
    assert any(
        line.split()[:5] == ["sniah", "direct", "8K", "2", "0.0"] for line in table.splitlines()
    )
    png = plot(rows, tmp_path / "plot.png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_priced_engines_give_mean_and_median_cost(tmp_path: Path) -> None:
    out = tmp_path / "results.jsonl"
    priced = FunctionEngine(solve, price=(1.0, 2.0))  # USD per million tokens
    run_bench(
        generate_items("sniah", SMALL, 3),
        ["direct"],
        Models(priced, "fake"),
        config=CONFIG,
        out=out,
    )
    records = read_results(out)
    costs = sorted(r["usage"]["cost_usd"] for r in records)
    expected = [
        (r["usage"]["prompt_tokens"] + 2 * r["usage"]["completion_tokens"]) / 1e6 for r in records
    ]
    assert costs == pytest.approx(sorted(expected))
    (row,) = summarize(records)
    assert row.cost_mean == pytest.approx(sum(costs) / 3)
    assert row.cost_median == pytest.approx(costs[1])


# --- the CLI, in-process ----------------------------------------------------------------


def test_cli_list_generate_and_report(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["bench", "list"]) == 0
    listed = capsys.readouterr().out
    for name in ("sniah", "oolong", "oolong-pairs", "multihop", "codeqa", *METHODS):
        assert f"  {name} " in listed

    items_path = tmp_path / "items.jsonl"
    code = main(
        [
            "bench",
            "generate",
            "--task",
            "oolong",
            "--tokens",
            "4k",
            "--n",
            "3",
            "--seed",
            "9",
            "--out",
            str(items_path),
        ]
    )
    assert code == 0
    written = [i.to_json() for i in read_items(items_path)]
    assert written == [i.to_json() for i in generate_items("oolong", 4096, 3, seed=9)]
    assert "wrote 3 oolong item(s)" in capsys.readouterr().err

    out = tmp_path / "results.jsonl"
    run_bench(_items(), ["rlm", "direct"], _models(), config=CONFIG, out=out)
    assert main(["bench", "report", str(out)]) == 0
    captured = capsys.readouterr()
    assert "sniah  rlm" in captured.out and "sniah  direct" in captured.out
    assert (tmp_path / "results.png").read_bytes()[:4] == b"\x89PNG"
    assert f"plot: {tmp_path / 'results.png'}" in captured.err


def test_cli_errors_name_what_is_wrong(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["bench", "generate", "--task", "nope", "--out", str(tmp_path / "x")]) == 2
    assert "unknown benchmark task 'nope'" in capsys.readouterr().err
    assert main(["bench", "report", str(tmp_path / "missing.jsonl")]) == 2
    assert "no results file" in capsys.readouterr().err
    bad = ["bench", "run", "--task", "sniah", "--method", "psychic", "--out", str(tmp_path / "r")]
    assert main(bad) == 2
    assert "unknown method(s) psychic" in capsys.readouterr().err
    assert main(["bench"]) == 2


def test_cli_run_against_an_openai_compatible_loopback_server(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The same harness, unchanged, on a real HTTP server (through the openai SDK)."""
    out = tmp_path / "results.jsonl"
    with FakeLLMServer(responder=solve) as server:
        argv = [
            "bench",
            "run",
            "--task",
            "sniah",
            "--tokens",
            "2k,8k",
            "--n",
            "2",
            "--method",
            "rlm,direct",
            "--model",
            "vllm:bench-fake",
            "--base-url",
            server.url,
            "--window",
            "4096",
            "--max-tokens",
            "256",
            "--out",
            str(out),
        ]
        assert main(argv) == 0
        requests = len(server.requests)
        assert main(argv) == 0  # resumed: nothing left to do
        assert len(server.requests) == requests
    captured = capsys.readouterr()
    assert "[8/8]" in captured.err  # live progress, one line per result
    records = {(r["method"], r["tokens"], r["index"]): r for r in read_results(out)}
    assert len(records) == 8
    for index in (0, 1):
        assert records[("rlm", SMALL, index)]["score"] == 1.0
        assert records[("rlm", LARGE, index)]["score"] == 1.0
        assert records[("direct", SMALL, index)]["score"] == 1.0
        assert records[("direct", LARGE, index)]["status"] == "overflow"
    assert all(r["model"] == "bench-fake" for r in records.values())
    # sub-calls went over HTTP too: requests without a system message
    assert any(req.body["messages"][0]["role"] == "user" for req in server.requests)
    assert "sniah  rlm" in captured.out  # the summary table after the run
    json.dumps(list(records.values()))  # every record is plain JSON


def test_engine_overflow_check_lets_the_engine_decide(tmp_path: Path) -> None:
    """With overflow_check="engine", direct always calls; the engine's own
    context-length error is recorded as an overflow, other failures as errors."""
    window = 4096

    def strict(messages: list[dict[str, str]], model: str) -> str:
        prompt = sum(len(m["content"]) for m in messages) // 4
        if prompt > window:
            raise EngineError(
                f"Requested tokens ({prompt}) exceed context window of {window}",
                provider="function",
                model=model,
            )
        return solve(messages, model)

    config = MethodConfig(window=window, max_tokens=256, overflow_check="engine")
    results = run_bench(_items(), ["direct"], Models(FunctionEngine(strict), "fake"), config=config)
    by_size = {(r.tokens, r.index): r for r in results}
    assert [by_size[(SMALL, i)].score for i in (0, 1)] == [1.0, 1.0]
    assert [by_size[(LARGE, i)].status for i in (0, 1)] == ["overflow", "overflow"]
    assert "exceed context window" in by_size[(LARGE, 0)].error
    with pytest.raises(UsageError, match="overflow_check must be one of"):
        MethodConfig(overflow_check="guess")


def test_cli_run_takes_the_window_from_the_engine(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A provider registered at run time; its engine reports its window like the local one."""
    from rlmagent.engines import register_engine, unregister_engine

    def factory(model: str) -> FunctionEngine:
        return FunctionEngine(solve, context_window=4096)

    register_engine("benchfake", factory)
    out = tmp_path / "results.jsonl"
    try:
        code = main(
            [
                "bench",
                "run",
                "--task",
                "sniah",
                "--tokens",
                "2k,8k",
                "--n",
                "1",
                "--method",
                "direct,rlm-nosub",
                "--model",
                "benchfake:m",
                "--max-tokens",
                "256",
                "--concurrency",
                "1",
                "--out",
                str(out),
            ]
        )
    finally:
        unregister_engine("benchfake")
    assert code == 0
    assert "window: 4,096 tokens (the engine's context window" in capsys.readouterr().err
    status = {(r["method"], r["tokens"]): r["status"] for r in read_results(out)}
    assert status == {
        ("direct", SMALL): "ok",
        ("direct", LARGE): "overflow",
        ("rlm-nosub", SMALL): "ok",
        ("rlm-nosub", LARGE): "ok",
    }


def test_a_budget_caps_each_rlm_item() -> None:
    from rlmagent.budget import Budget

    def never_done(messages: list[dict[str, str]], model: str) -> str:
        return "```repl\nprint(len(context))\n```"

    config = MethodConfig(window=4096, max_tokens=256, budget=Budget(max_calls=3))
    items = generate_items("sniah", SMALL, 2)
    results = run_bench(
        items, ["rlm-nosub"], Models(FunctionEngine(never_done), "fake"), config=config
    )
    assert [r.usage["calls"] for r in results] == [3, 3]
    assert {r.detail["stop_reason"] for r in results} == {"budget"}
    assert [r.score for r in results] == [0.0, 0.0]


def test_trace_dir_keeps_each_rlm_items_trajectory(tmp_path: Path) -> None:
    from rlmagent.trace import load_trajectory

    config = MethodConfig(window=4096, max_tokens=256, trace_dir=str(tmp_path / "traces"))
    items = generate_items("sniah", SMALL, 2, seed=1)
    results = run_bench(items, ["rlm", "direct"], _models(), config=config)
    rlm = [r for r in results if r.method == "rlm"]
    files = sorted(p.name for p in (tmp_path / "traces").iterdir())
    assert files == sorted(f"{i.item_id}-rlm.jsonl" for i in items)  # none for direct
    for result in rlm:
        (run,) = load_trajectory(tmp_path / "traces" / f"{result.item_id}-rlm.jsonl").runs
        assert run.question and run.answer == result.answer
