"""A persistent cache of completions, so that a rerun does not pay twice for the same call.

:class:`CompletionCache` is a SQLite file (WAL journal) keyed by the SHA-256 of a
canonical JSON of everything that decides an answer: the engine's
:attr:`~rlmagent.engines.Engine.identity` (its provider, and its server's base URL when
it has one), the model, the messages, the temperature, ``max_tokens``
and any other sampling argument. One object may be shared by threads; several processes
may share one file.

Only deterministic calls are reused: by default a completion is stored and served only
when the temperature is 0 (``any_temperature=True`` opts in to every temperature).
Cut answers (``finish_reason="length"``) are stored like any other. A served answer has
``cached=True``, zero tokens and zero cost: it spent nothing (see
:attr:`~rlmagent.types.Usage.cached_calls`).

``RLMAgent(cache=...)`` uses it for root turns and sub-calls; :class:`CachedEngine`
wraps any engine with it for direct use.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import threading
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from rlmagent.engines.base import Engine, EngineWrapper, run_blocking
from rlmagent.errors import UsageError
from rlmagent.types import Completion, Message

KEY_VERSION = 1
"""Part of every key: bump it when what a key covers changes."""

BUSY_TIMEOUT_S = 30.0
"""How long a writer waits for another process holding the database lock."""

CACHE_FILE_NAME = "completions.sqlite"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS completions (
    key TEXT PRIMARY KEY,
    provider TEXT NOT NULL,
    model TEXT NOT NULL,
    content TEXT NOT NULL,
    finish_reason TEXT NOT NULL,
    prompt_tokens INTEGER NOT NULL,
    completion_tokens INTEGER NOT NULL,
    cost_usd REAL,
    created REAL NOT NULL
)
"""


def default_cache_path() -> Path:
    """``<user cache dir>/rlmagent/completions.sqlite`` (what ``rlm --cache`` uses)."""
    import platformdirs

    return Path(platformdirs.user_cache_dir("rlmagent")) / CACHE_FILE_NAME


def engine_identity(engine: Engine) -> str:
    """The part of a key naming the engine: its :attr:`~rlmagent.engines.Engine.identity`."""
    return engine.identity


def cache_key(
    engine_id: str,
    model: str,
    messages: Sequence[Message],
    temperature: float,
    max_tokens: int,
    extra: Mapping[str, Any] | None = None,
) -> str:
    """SHA-256 hex of the canonical JSON of one request."""
    payload = {
        "v": KEY_VERSION,
        "engine": engine_id,
        "model": model,
        "messages": [
            {"role": m.get("role", ""), "content": m.get("content", "")} for m in messages
        ],
        "temperature": float(temperature),
        "max_tokens": int(max_tokens),
        "extra": dict(extra or {}),
    }
    text = json.dumps(
        payload, sort_keys=True, ensure_ascii=False, separators=(",", ":"), default=repr
    )
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()


class CompletionCache:
    """A SQLite store of completions (see the module docstring).

    ``path`` is created with its parent directories. ``hits`` and ``misses`` count this
    object's lookups. Use :meth:`close` (or ``with``) to release the file.
    """

    def __init__(self, path: str | Path, *, any_temperature: bool = False) -> None:
        self.path = Path(path).expanduser()
        if self.path.is_dir():
            raise UsageError(f"cache path {str(self.path)!r} is a directory; name a file in it")
        self.any_temperature = bool(any_temperature)
        self.hits = 0
        self.misses = 0
        self._lock = threading.Lock()
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._db: sqlite3.Connection | None = sqlite3.connect(
                self.path,
                timeout=BUSY_TIMEOUT_S,
                check_same_thread=False,
                isolation_level=None,
            )
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.execute(_SCHEMA)
        except (OSError, sqlite3.Error) as exc:
            raise UsageError(f"cannot open the completion cache {str(self.path)!r}: {exc}") from exc

    def accepts(self, temperature: float) -> bool:
        """Whether calls at ``temperature`` are stored and served."""
        return self.any_temperature or float(temperature) == 0.0

    def _conn(self) -> sqlite3.Connection:
        if self._db is None:
            raise UsageError(f"the completion cache {str(self.path)!r} is closed")
        return self._db

    def get(self, key: str) -> Completion | None:
        """The stored completion for ``key`` (marked cached, free), or None."""
        with self._lock:
            row = (
                self._conn()
                .execute(
                    "SELECT model, content, finish_reason FROM completions WHERE key = ?", (key,)
                )
                .fetchone()
            )
            if row is None:
                self.misses += 1
                return None
            self.hits += 1
        model, content, finish_reason = row
        return Completion(
            content=content, model=model, finish_reason=finish_reason, cost_usd=0.0, cached=True
        )

    def put(self, key: str, provider: str, completion: Completion) -> None:
        """Store ``completion`` under ``key`` (a cached completion is not stored again)."""
        if completion.cached:
            return
        usage = completion.usage
        with self._lock:
            self._conn().execute(
                "INSERT OR REPLACE INTO completions VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    key,
                    provider,
                    completion.model,
                    completion.content,
                    completion.finish_reason,
                    usage.prompt_tokens,
                    usage.completion_tokens,
                    completion.cost_usd,
                    time.time(),
                ),
            )

    def __len__(self) -> int:
        with self._lock:
            return int(self._conn().execute("SELECT COUNT(*) FROM completions").fetchone()[0])

    def clear(self) -> None:
        """Remove every stored completion."""
        with self._lock:
            self._conn().execute("DELETE FROM completions")

    def close(self) -> None:
        """Close the database. Safe to call twice."""
        with self._lock:
            if self._db is not None:
                self._db.close()
                self._db = None

    def __enter__(self) -> CompletionCache:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"CompletionCache({str(self.path)!r}, any_temperature={self.any_temperature})"


class CachedEngine(EngineWrapper):
    """Any engine, answering from a :class:`CompletionCache` when it can.

    Calls the cache does not accept (temperature not 0, unless it opted in) go straight
    to the wrapped engine, whose ``provider``, ``model``, identity, prices and context
    windows this one reports (see :class:`~rlmagent.engines.EngineWrapper`). ``inner`` is
    another name of ``wrapped``.
    """

    def __init__(self, inner: Engine, cache: CompletionCache) -> None:
        super().__init__(inner)
        self.cache = cache

    @property
    def inner(self) -> Engine:
        return self.wrapped

    def _key(
        self,
        messages: Sequence[Message],
        model: str,
        temperature: float,
        max_tokens: int,
        kwargs: dict[str, Any],
    ) -> str | None:
        if not self.cache.accepts(temperature):
            return None
        return cache_key(self.identity, model, messages, temperature, max_tokens, kwargs)

    def generate(
        self,
        messages: Sequence[Message],
        *,
        model: str,
        temperature: float = 0.7,
        max_tokens: int = 1024,
        **kwargs: Any,
    ) -> Completion:
        key = self._key(messages, model, temperature, max_tokens, kwargs)
        if key is not None and (hit := self.cache.get(key)) is not None:
            return hit
        completion = self.wrapped.generate(
            messages, model=model, temperature=temperature, max_tokens=max_tokens, **kwargs
        )
        if key is not None:
            self.cache.put(key, self.provider, completion)
        return completion

    async def agenerate(
        self,
        messages: Sequence[Message],
        *,
        model: str,
        temperature: float = 0.7,
        max_tokens: int = 1024,
        **kwargs: Any,
    ) -> Completion:
        key = self._key(messages, model, temperature, max_tokens, kwargs)
        if key is not None and (hit := await run_blocking(self.cache.get, key)) is not None:
            return hit
        completion = await self.wrapped.agenerate(
            messages, model=model, temperature=temperature, max_tokens=max_tokens, **kwargs
        )
        if key is not None:
            await run_blocking(self.cache.put, key, self.provider, completion)
        return completion
