"""Benchmarks of the RLM against baselines on generated long-context tasks.

Task families (:data:`TASKS`) follow the RLM paper (arXiv 2512.24601): ``sniah``,
``oolong``, ``oolong-pairs``, ``multihop`` and ``codeqa``, generated from a seed with
their gold answers, at any size (estimated tokens = characters / 4). Methods
(:data:`METHODS`): ``rlm``, ``rlm-nosub``, ``direct``, ``summary``, ``bm25``.

>>> from rlmagent.bench import generate_items, run_bench, Models
>>> items = generate_items("sniah", 8192, n=10, seed=0)          # doctest: +SKIP
>>> results = run_bench(items, ["rlm", "direct"], Models(engine, engine.model),
...                     out="results.jsonl")                      # doctest: +SKIP

See docs/BENCH.md.
"""

from rlmagent.bench.items import (
    CHARS_PER_TOKEN,
    BenchItem,
    format_tokens,
    parse_token_list,
    parse_tokens,
    read_items,
    write_items,
)
from rlmagent.bench.methods import METHODS, MethodConfig, MethodOutput, Models, run_method
from rlmagent.bench.report import Row, format_table, plot, summarize
from rlmagent.bench.runner import (
    BenchResult,
    Progress,
    arun_bench,
    finished_keys,
    latest,
    read_results,
    run_bench,
)
from rlmagent.bench.scoring import score
from rlmagent.bench.tasks import TASKS, TaskFamily, generate_items, get_task, iter_items

__all__ = [
    "CHARS_PER_TOKEN",
    "METHODS",
    "TASKS",
    "BenchItem",
    "BenchResult",
    "MethodConfig",
    "MethodOutput",
    "Models",
    "Progress",
    "Row",
    "TaskFamily",
    "arun_bench",
    "finished_keys",
    "format_table",
    "format_tokens",
    "generate_items",
    "get_task",
    "iter_items",
    "latest",
    "parse_token_list",
    "parse_tokens",
    "plot",
    "read_items",
    "read_results",
    "run_bench",
    "run_method",
    "score",
    "summarize",
    "write_items",
]
