"""A session's page in a real headless Chromium: its questions, in order."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from rlmagent import RLMAgent, ScriptedEngine
from rlmagent.viewer import write_html


def test_a_session_page_shows_each_question_in_order(browser: Any, tmp_path: Path) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    engine = ScriptedEngine(["```repl\nFINAL(len(context))\n```", "```repl\nFINAL('two')\n```"])
    path = tmp_path / "session.jsonl"
    with RLMAgent(engine, "m", trace=path, check_answers=False).session(context="abc") as s:
        s.ask("How long is it?")
        s.ask("And then?")
    page = write_html(path)
    browser.get(page.resolve().as_uri())
    WebDriverWait(browser, 60).until(
        lambda d: d.find_element(By.ID, "app").get_attribute("data-ready") == "1"
    )
    assert [e for e in browser.get_log("browser") if e["level"] == "SEVERE"] == []
    assert browser.find_element(By.ID, "question").text == "Session: 2 questions"
    cards = browser.find_elements(By.CSS_SELECTOR, "#tree .card.question")
    assert [c.find_element(By.TAG_NAME, "h3").text for c in cards] == [
        "Question 1: How long is it?",
        "Question 2: And then?",
    ]
    assert cards[0].find_element(By.CSS_SELECTOR, "pre").text == "3"
    assert "complete" in browser.find_element(By.CSS_SELECTOR, ".badges").text
