"""One job, run where the executor puts it: the agent, the shared budget, a result record.

:func:`run_job` is what both executors run (the local one on its event loop, the Ray one
inside a task). It never raises for what a job does: a model or engine error, a bad
``context_path``, a budget that ran out are all a result record (:func:`record`), so a
Ray task fails only when its worker or node is lost, the one case worth a retry.
"""

from __future__ import annotations

import inspect
import time
from typing import Any

from rlmagent.batch.jobs import Job, JobError
from rlmagent.batch.settings import BatchSettings, build_agent
from rlmagent.budget import Budget, LedgerPool, SharedBudget
from rlmagent.errors import BudgetExceeded, RLMError
from rlmagent.types import AgentResult, to_dict

STATUSES = ("ok", "error", "budget", "cancelled")
"""A result's ``status``: answered; failed (the ``error`` says why); stopped or never
started for lack of budget; cancelled (a rerun runs it again)."""

MAX_ERROR_CHARS = 2_000


def record(
    job_id: str | None,
    status: str,
    *,
    answer: Any = None,
    result: AgentResult | None = None,
    error: str | None = None,
    line: int | None = None,
    elapsed_s: float | None = None,
) -> dict[str, Any]:
    """A result line: ``id``, ``status``, ``answer``, ``usage``, ``error`` and details."""
    usage = to_dict(result.usage) if result is not None else None
    out: dict[str, Any] = {
        "id": job_id,
        "status": status,
        "answer": answer,
        "usage": usage,
        "error": None if error is None else error[:MAX_ERROR_CHARS],
    }
    if result is not None:
        out["stop_reason"] = result.stop_reason
        out["turns"] = result.turns
        out["isolation"] = result.isolation
    if line is not None:
        out["line"] = line
    if elapsed_s is not None:
        out["elapsed_s"] = round(elapsed_s, 3)
    return out


def error_record(error: JobError) -> dict[str, Any]:
    return record(error.id, "error", error=error.message, line=error.line)


def not_started(job: Job, limit: str) -> dict[str, Any]:
    """The record of a job that did not start because the batch budget was spent."""
    return record(
        job.id,
        "budget",
        error=f"not started: the batch budget is spent ({limit} limit reached)",
        line=job.line,
    )


def _typed(agent: Any, job: Job) -> dict[str, Any]:
    """``output_type=`` for the run, when the job has one and runs take typed answers."""
    if job.output_type is None:
        return {}
    if "output_type" not in inspect.signature(agent.arun).parameters:
        raise RLMError("this rlmagent does not take typed answers (output_type) yet")
    return {"output_type": dict(job.output_type)}


async def run_job(
    job: Job,
    settings: BatchSettings,
    *,
    budget: Budget | None = None,
    pool: LedgerPool | None = None,
    bus: Any = None,
) -> dict[str, Any]:
    """Run ``job``; return its result record. With ``pool``, ``budget``'s limits are
    counted there, together with every other job drawing on it."""
    started = time.monotonic()
    shared = None
    if budget is not None and budget.limited:
        shared = SharedBudget.of(budget, pool, job.id) if pool is not None else budget
    try:
        agent = build_agent(settings, budget=shared, bus=bus)
        result = await agent.arun(job.question, context=job.load_context(), **_typed(agent, job))
    except BudgetExceeded as exc:
        partial = exc.partial
        return record(
            job.id,
            "budget",
            answer=exc.partial_answer,
            result=partial,
            error=str(exc),
            line=job.line,
            elapsed_s=time.monotonic() - started,
        )
    except Exception as exc:  # a job's failure is data, never the batch's
        return record(
            job.id,
            "error",
            error=f"{type(exc).__name__}: {exc}",
            line=job.line,
            elapsed_s=time.monotonic() - started,
        )
    finally:
        if pool is not None:
            pool.release(job.id)
    status = "budget" if result.stop_reason == "budget" else "ok"
    typed = job.output_type is not None and getattr(result, "value", None) is not None
    return record(
        job.id,
        status,
        answer=result.value if typed else result.content,
        result=result,
        error=None if status == "ok" else f"stopped by the budget ({result.budget_limit})",
        line=job.line,
        elapsed_s=time.monotonic() - started,
    )
