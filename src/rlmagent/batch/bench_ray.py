"""``rlm bench run --executor ray``: each (item, method) of a benchmark a Ray task.

The driver keeps the bench runner's loop (resume, results file, progress); only the
scoring of one item moves to the cluster. A task gets the item, the method, the
:class:`~rlmagent.bench.methods.MethodConfig` and the engine *specs* (never live
engines): the worker builds its engines once per process, as a batch job does.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from rlmagent.batch.ray_executor import DEFAULT_MAX_RETRIES, _import_ray


@dataclass(frozen=True, slots=True)
class EngineSpecs:
    """The engines of a benchmark by name: what a worker builds its own from."""

    model: str | None
    sub_model: str | None
    options: dict[str, Any] = field(default_factory=dict)
    with_sub: bool = True


_models: dict[tuple[Any, ...], Any] = {}
_lock = threading.Lock()


def _models_for(specs: EngineSpecs) -> Any:
    from rlmagent.bench import Models
    from rlmagent.engines import get_engine

    key = (specs.model, specs.sub_model, repr(sorted(specs.options.items())), specs.with_sub)
    with _lock:
        if key not in _models:
            engine = get_engine(specs.model, **specs.options)
            if specs.with_sub:
                sub = get_engine(specs.sub_model or specs.model, **specs.options)
                _models[key] = Models(engine, engine.model, sub, sub.model)
            else:
                _models[key] = Models(engine, engine.model)
        return _models[key]


def bench_task(item: Any, method: str, specs: EngineSpecs, config: Any) -> Any:
    """The body of one Ray task: score ``method`` on ``item`` here."""
    from rlmagent.bench.runner import _one

    return asyncio.run(_one(item, method, _models_for(specs), config))


class RayBench:
    """Connects to Ray (``address``, else a local Ray) and runs bench items as tasks."""

    def __init__(
        self, specs: EngineSpecs, *, address: str | None = None, job_cpus: float = 1.0
    ) -> None:
        self.specs = specs
        self.ray = _import_ray()
        self._owned = False
        if not self.ray.is_initialized():
            if address is None:
                self.ray.init(include_dashboard=False, log_to_driver=False)
                self._owned = True
            else:
                self.ray.init(address=address, log_to_driver=False)
        self._task = self.ray.remote(bench_task).options(
            max_retries=DEFAULT_MAX_RETRIES, retry_exceptions=False, num_cpus=job_cpus
        )

    def runner(self) -> Callable[[Any, str, Any, Any], Awaitable[Any]]:
        """What the bench runner awaits instead of scoring an item in this process."""

        async def run(item: Any, method: str, models: Any, config: Any) -> Any:
            return await self._task.remote(item, method, self.specs, config)

        return run

    def close(self) -> None:
        if self._owned:
            self.ray.shutdown()
            self._owned = False
