"""Usage accounting shared by a whole run tree (root, sub-calls, child RLMs)."""

from __future__ import annotations

import threading

from rlmagent.types import Completion, ModelUsage, Usage


class UsageMeter:
    """Thread-safe running totals of every completion in a run tree, per model."""

    def __init__(self) -> None:
        self._by_model: dict[str, ModelUsage] = {}
        self._lock = threading.Lock()

    def record(self, completion: Completion, model: str | None = None) -> None:
        key = model or completion.model
        with self._lock:
            self._by_model[key] = self._by_model.get(key, ModelUsage()).add(completion)

    def snapshot(self) -> Usage:
        with self._lock:
            return Usage.from_models(dict(self._by_model))
