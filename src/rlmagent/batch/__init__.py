"""Batch runs: many RLM runs under one budget, locally or on a Ray cluster.

::

    from rlmagent import Budget
    from rlmagent.batch import BatchSettings, run_batch

    settings = BatchSettings(model="vllm:qwen3-32b", base_urls=("http://gpu1:8000/v1",))
    report = run_batch("jobs.jsonl", settings=settings, executor="ray", address="auto",
                       concurrency=64, budget=Budget(max_calls=20_000), out="results.jsonl")
    print(report.summary.line())

Importing this package never imports Ray; ``executor="ray"`` needs ``rlmagent[ray]``.
"""

from rlmagent.batch.api import EXECUTORS, BatchReport, iter_batch, run_batch
from rlmagent.batch.jobs import Job, JobError, parse_lines, read_jobs
from rlmagent.batch.progress import (
    BatchEnded,
    BatchProgress,
    BatchSummary,
    JobEnded,
    JobStarted,
)
from rlmagent.batch.results import ResultsWriter, done_ids, latest, read_results
from rlmagent.batch.settings import BatchSettings

__all__ = [
    "EXECUTORS",
    "BatchEnded",
    "BatchProgress",
    "BatchReport",
    "BatchSettings",
    "BatchSummary",
    "Job",
    "JobEnded",
    "JobError",
    "JobStarted",
    "ResultsWriter",
    "done_ids",
    "iter_batch",
    "latest",
    "parse_lines",
    "read_jobs",
    "read_results",
    "run_batch",
]
