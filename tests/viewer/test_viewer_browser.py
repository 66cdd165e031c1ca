"""The viewer in a real headless Chromium: elements, clicks, timeline, a large run.

Screenshots are saved as test artefacts (see the ``artifacts`` fixture).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import synth  # tests/trace/synth.py, loaded by this directory's conftest

from rlmagent import FunctionEngine, RLMAgent, ScriptedEngine
from rlmagent.viewer import write_html


def open_page(browser: Any, page: Path) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    browser.get(page.resolve().as_uri())
    WebDriverWait(browser, 60).until(
        lambda d: d.find_element(By.ID, "app").get_attribute("data-ready") == "1"
    )


def severe_logs(browser: Any) -> list[dict[str, Any]]:
    return [e for e in browser.get_log("browser") if e["level"] == "SEVERE"]


def css(browser: Any, selector: str) -> list[Any]:
    from selenium.webdriver.common.by import By

    return browser.find_elements(By.CSS_SELECTOR, selector)


def test_small_run_tree_expand_and_screenshot(
    browser: Any, write_trace: Callable[..., Path], artifacts: Path
) -> None:
    page = write_html(write_trace(synth.small_run()))
    open_page(browser, page)
    assert severe_logs(browser) == []
    # nothing was requested from anywhere: the page is all there is
    assert browser.execute_script("return performance.getEntriesByType('resource').length") == 0
    assert css(browser, "#question")[0].text == "How many lines mention 'error'?"
    assert css(browser, "#answer pre")[0].text == "21"
    assert "complete" in css(browser, ".badges")[0].text
    assert "1 failed sub-calls" in css(browser, ".badges")[0].text
    turns = css(browser, "#tree > details.turn")
    assert len(turns) == 2
    assert not css(browser, ".cell")  # collapsed, so not even built yet
    assert "err" in turns[0].get_attribute("class")  # turn 1 had an error: marked
    canvas = css(browser, "#timeline canvas")[0]
    assert canvas.get_attribute("data-bars") == "4"
    assert canvas.get_attribute("data-lanes") == "3"  # the batch's three calls overlapped

    turns[0].find_element("css selector", "summary").click()
    cells = css(browser, "#turn-run-root-1 .cell")
    assert len(cells) == 2
    assert [s.text for s in cells[0].find_elements("css selector", ".tk-rlm")] == [
        "context",
        "context",
        "llm_batch",
    ]
    assert "err" in cells[1].get_attribute("class")
    assert "ZeroDivisionError" in cells[1].find_element("css selector", ".errtext").text
    assert "['10', '11', None]" in cells[0].find_element("css selector", ".output").text

    group = cells[0].find_element("css selector", "details.calls")
    assert group.text.startswith("Sub-calls (3, 1 failed)")
    group.find_element("css selector", "summary").click()
    calls = group.find_elements("css selector", "details.call")
    assert [c.get_attribute("data-call") for c in calls] == ["0", "1", "2"]
    failed = calls[2]
    assert "err" in failed.get_attribute("class")
    assert not failed.find_elements("css selector", ".prompt")  # built on first open
    failed.find_element("css selector", "summary").click()
    prompt = failed.find_element("css selector", ".prompt")
    assert prompt.is_displayed() and prompt.text.startswith("Count errors: chunk 2")
    assert failed.find_element("css selector", ".errtext").text == "EngineError: HTTP 500"
    calls[0].find_element("css selector", "summary").click()
    assert calls[0].find_element("css selector", ".answer-text").text == "10"

    # turn 2: the sub-call that started a child RLM holds the child run's turns
    turns[1].find_element("css selector", "summary").click()
    css(browser, "#turn-run-root-2 details.calls > summary")[0].click()
    child_call = css(browser, '#turn-run-root-2 details.call[data-call="3"]')[0]
    child_call.find_element("css selector", "summary").click()
    child = child_call.find_element("css selector", ".child")
    assert "Child RLM run run-child" in child.text
    assert child.find_elements("css selector", "details.turn")
    browser.execute_script("window.scrollTo(0, 0)")
    shot = artifacts / "viewer-small-run.png"
    assert browser.save_screenshot(str(shot))
    print(f"screenshot: {shot}")
    assert shot.stat().st_size > 10_000
    assert severe_logs(browser) == []


def test_clicking_a_timeline_bar_opens_that_sub_call(
    browser: Any, write_trace: Callable[..., Path]
) -> None:
    from selenium.webdriver.common.action_chains import ActionChains

    open_page(browser, write_html(write_trace(synth.small_run())))
    canvas = css(browser, "#timeline canvas")[0]
    t0, t1 = browser.execute_script("return [rlmViewer.data.t0, rlmViewer.data.t1]")
    width, height = canvas.size["width"], canvas.size["height"]
    # call c1 starts at +1.031 s, lasts 1.8 s, and runs in the second lane
    t = t0 + 1.031 + 0.9
    x = (t - t0) / (t1 - t0) * (width - 42 - 12) + 42
    y = 44 + 1 * 10 + 5
    ActionChains(browser).move_to_element_with_offset(
        canvas, int(x - width / 2), int(y - height / 2)
    ).click().perform()
    opened = css(browser, 'details.call[data-call="1"]')
    assert opened and opened[0].get_attribute("open") is not None
    assert "flash" in opened[0].get_attribute("class")
    assert opened[0].find_element("css selector", ".answer-text").text == "11"


def test_long_texts_are_cut_until_asked(browser: Any, write_trace: Callable[..., Path]) -> None:
    open_page(browser, write_html(write_trace(synth.big_run(3, prompt_chars=9000))))
    css(browser, "#tree > details.turn > summary")[0].click()
    css(browser, "details.calls > summary")[0].click()
    call = css(browser, 'details.call[data-call="0"]')[0]
    call.find_element("css selector", "summary").click()
    prompt = call.find_element("css selector", ".prompt")
    assert len(prompt.text) == 2001  # 2,000 characters and an ellipsis
    call.find_element("css selector", "button.show-all").click()
    assert len(prompt.text) == len("Record 0: ") + 9000


def test_a_50_mb_trajectory_stays_usable(
    browser: Any, write_trace: Callable[..., Path], artifacts: Path
) -> None:
    n = 2500
    trace = write_trace(synth.big_run(n, prompt_chars=20_000), "big.jsonl")
    assert trace.stat().st_size > 50_000_000
    started = time.perf_counter()
    page = write_html(trace)
    written = time.perf_counter() - started
    started = time.perf_counter()
    open_page(browser, page)
    shown = time.perf_counter() - started
    print(f"trace {trace.stat().st_size / 1e6:.1f} MB, page {page.stat().st_size / 1e6:.1f} MB")
    print(f"write_html {written:.2f} s, page ready in the browser {shown:.2f} s")
    assert css(browser, "#timeline canvas")[0].get_attribute("data-bars") == str(n)
    assert "2,500" in css(browser, "#stats")[0].text
    css(browser, "#tree > details.turn > summary")[0].click()
    group = css(browser, "details.calls")[0]
    assert "(2,500, 50 failed)" in group.text
    group.find_element("css selector", "summary").click()
    # only the first page of sub-calls is built
    assert len(group.find_elements("css selector", "details.call")) == 100
    more = group.find_element("css selector", "button.show-more")
    assert more.text == "show 100 more of 2,400"
    more.click()
    assert len(group.find_elements("css selector", "details.call")) == 200
    group.find_element("css selector", "input.only-failed").click()
    failed = group.find_elements("css selector", "details.call")
    assert len(failed) == 50 and all("err" in f.get_attribute("class") for f in failed)
    failed[-1].find_element("css selector", "summary").click()
    assert failed[-1].find_element("css selector", ".errtext").text == "timeout"
    browser.execute_script("window.scrollTo(0, 0)")
    assert browser.save_screenshot(str(artifacts / "viewer-large-run.png"))
    assert severe_logs(browser) == []


def test_a_real_traced_run_in_the_browser(browser: Any, tmp_path: Path, artifacts: Path) -> None:
    reply = (
        "Ask about each part.\n```repl\n"
        "parts = [context[i:i+10] for i in range(0, len(context), 10)]\n"
        'ans = llm_batch(["Count x in: " + p for p in parts])\nprint(ans)\n```'
    )
    root = ScriptedEngine([reply, "FINAL(14)", "FINAL(14)"])
    sub = FunctionEngine(lambda messages, model: str(messages[-1]["content"].count("x") - 1))
    agent = RLMAgent(root, "root-m", sub_engine=sub, sub_model="sub-m", trace=tmp_path / "r.jsonl")
    result = agent.run("How many x?", context="abcx" * 10)
    open_page(browser, write_html(tmp_path / "r.jsonl"))
    assert css(browser, "#answer pre")[0].text == result.content
    css(browser, "#tree > details.turn > summary")[0].click()
    css(browser, "details.calls > summary")[0].click()
    calls = css(browser, "details.call")
    assert len(calls) == 4
    calls[0].find_element("css selector", "summary").click()
    assert calls[0].find_element("css selector", ".prompt").text == "Count x in: abcxabcxab"
    assert calls[0].find_element("css selector", ".answer-text").text == "2"
    assert browser.save_screenshot(str(artifacts / "viewer-scripted-run.png"))


def test_a_run_without_a_confident_answer_is_not_shown_complete(
    browser: Any, write_trace: Callable[..., Path]
) -> None:
    from rlmagent import events as ev
    from rlmagent.types import AgentResult, Usage

    def ended(stop_reason: str, error: str | None = None) -> Path:
        result = AgentResult(content="7", turns=6, usage=Usage(), stop_reason=stop_reason)
        end = ev.RunEnded(run_id="run-root", result=result, error=error)
        return write_html(write_trace([*synth.small_run(finish=False), end]))

    open_page(browser, ended("max_turns"))
    badges = css(browser, ".badges")[0].text
    assert "turn limit" in badges and "complete" not in badges
    assert "no confident answer" in css(browser, "#answer .muted")[0].text
    open_page(browser, ended("cancelled", "CancelledError: the run was cancelled"))
    badges = css(browser, ".badges")[0].text
    assert "cancelled" in badges and "run failed" not in badges and "complete" not in badges
    open_page(browser, ended("error", "EngineError: 503"))
    assert "run failed" in css(browser, ".badges")[0].text
    assert severe_logs(browser) == []
