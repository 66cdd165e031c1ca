"""The completion cache on an ``oolong`` item: a second run makes no engine call (issue 7).

    python benchmarks/bench_cache.py [--tokens 16384] [--seed 0] [--index 0] [--repeats 5]

One ``oolong`` item (``rlmagent.bench.oolong``, question kind "count") is answered twice
by the same RLM with a fresh SQLite cache file, over the default sandbox:

- root: a FunctionEngine that writes the same two turns a capable root would (split the
  data lines into chunks of ``--chunk`` lines, ``llm_batch`` one counting prompt per
  chunk, sum; then ``FINAL_VAR``);
- sub-model: a FunctionEngine that labels each line by matching it against the
  generator's templates (a deterministic stand-in for a model) and counts the lines
  with the asked label.

Both at temperature 0, so every call may be cached. Reported per run: engine calls
actually made (counted inside the engines), cached calls in ``usage``, wall time, and
the answer's score against the gold count (``0.75 ** |error|``). Medians over
``--repeats`` rounds; each round runs once without a cache, then twice on a new cache
file (the first fills it, the second reads it).
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import tempfile
import threading
import time
from pathlib import Path

from rlmagent import FunctionEngine, RLMAgent
from rlmagent.bench import oolong

ROOT_TURN_1 = """```repl
import re
label = re.search(r"classified as label '([^']+)'", QUESTION).group(1)
lines = [l for l in context.splitlines() if l.startswith("Date:")]
chunks = [lines[i:i + CHUNK] for i in range(0, len(lines), CHUNK)]
prompts = [f"Count the lines whose Instance has the label '{label}'. Answer with a number "
           "only.\\n\\n" + "\\n".join(c) for c in chunks]
answers = llm_batch(prompts)
total = sum(int(a) for a in answers)
print(len(chunks), "chunks, total", total)
```"""
ROOT_TURN_2 = "FINAL_VAR(total)"


def template_classifier() -> list[tuple[re.Pattern[str], str]]:
    """One regex per generator template (slots match anything), with its label."""
    rules = []
    for label, templates in oolong.TEMPLATES.items():
        for template in templates:
            pattern = re.escape(template)
            for slot in ("place", "event", "org", "thing", "abbr"):
                pattern = pattern.replace(re.escape("{" + slot + "}"), ".+?")
            rules.append((re.compile(f"^{pattern}$"), label))
    return rules


class Models:
    """The two engines, counting the calls that really reach them."""

    def __init__(self, chunk: int) -> None:
        self.chunk = chunk
        self.rules = template_classifier()
        self.root_calls = 0
        self.sub_calls = 0
        self._lock = threading.Lock()
        self.root = FunctionEngine(self._root)
        self.sub = FunctionEngine(self._sub)

    def _root(self, messages: list[dict[str, str]], model: str) -> str:
        with self._lock:
            self.root_calls += 1
        if len(messages) > 2:
            return ROOT_TURN_2
        question = messages[1]["content"].split("\n", 1)[0].removeprefix("Question: ")
        return ROOT_TURN_1.replace("QUESTION", repr(question)).replace("CHUNK", str(self.chunk))

    def _label(self, instance: str) -> str | None:
        return next((label for rule, label in self.rules if rule.match(instance)), None)

    def _sub(self, messages: list[dict[str, str]], model: str) -> str:
        with self._lock:
            self.sub_calls += 1
        prompt = messages[0]["content"]
        match = re.search(r"label '([^']+)'", prompt)
        assert match is not None
        lines = prompt.split("\n\n", 1)[1].splitlines()
        instances = [line.split("|| Instance: ", 1)[1] for line in lines]
        return str(sum(self._label(i) == match.group(1) for i in instances))


def one_run(item: oolong.BenchItem, models: Models, cache: Path | None) -> dict[str, float]:
    before = models.root_calls + models.sub_calls
    agent = RLMAgent(
        models.root,
        "root",
        sub_engine=models.sub,
        sub_model="sub",
        temperature=0,
        sub_temperature=0,
        cache=cache,
        max_concurrency=16,
    )
    t0 = time.perf_counter()
    result = agent.run(item.question, context=item.context)
    elapsed = time.perf_counter() - t0
    answer = int(result.content)
    return {
        "engine_calls": models.root_calls + models.sub_calls - before,
        "calls": result.usage.calls,
        "cached_calls": result.usage.cached_calls,
        "seconds": elapsed,
        "score": 0.75 ** abs(answer - int(item.gold)),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tokens", type=int, default=16384)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--index", type=int, default=0)
    parser.add_argument("--chunk", type=int, default=40, help="data lines per sub-call")
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    item = oolong.generate(args.tokens, args.seed, args.index, kind="count")
    models = Models(args.chunk)
    runs: dict[str, list[dict[str, float]]] = {"no cache": [], "first": [], "second": []}
    with tempfile.TemporaryDirectory() as tmp:
        for repeat in range(args.repeats):
            cache = Path(tmp) / f"cache-{repeat}.sqlite"
            runs["no cache"].append(one_run(item, models, None))
            runs["first"].append(one_run(item, models, cache))
            runs["second"].append(one_run(item, models, cache))
        size = sum(p.stat().st_size for p in Path(tmp).glob("cache-0.sqlite*"))
    print(
        f"oolong item {item.item_id}: {len(item.context):,} characters, "
        f"{item.context.count(chr(10)) - 1:,} data lines, gold {item.gold}; cache file "
        f"{size:,} bytes after one pair of runs"
    )
    print("| run | engine calls | calls in usage (cached) | wall time, median (min-max) | score |")
    print("|-----|-------------:|------------------------:|-----------------------------|------:|")
    for name, rows in runs.items():
        seconds = [r["seconds"] for r in rows]
        calls = {int(r["engine_calls"]) for r in rows}
        print(
            f"| {name} | {'/'.join(map(str, sorted(calls)))} | "
            f"{int(rows[0]['calls'])} ({int(rows[0]['cached_calls'])}) | "
            f"{statistics.median(seconds):.3f} s ({min(seconds):.3f}-{max(seconds):.3f}) | "
            f"{statistics.median(r['score'] for r in rows):.2f} |"
        )
    print(json.dumps(runs))


if __name__ == "__main__":
    main()
