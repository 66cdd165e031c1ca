"""The provider registry: spec parsing, entry points, plugins, errors, lazy imports."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from rlmagent import FunctionEngine
from rlmagent.engines import (
    DEFAULT_ENGINE_SPEC,
    available_providers,
    get_engine,
    parse_spec,
    register_engine,
    unregister_engine,
)
from rlmagent.errors import EngineNotAvailable, UsageError

BUILTINS = {
    "openai",
    "openrouter",
    "vllm",
    "sglang",
    "ollama",
    "llamacpp",
    "lmstudio",
    "anthropic",
    "local",
}


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ("openai:gpt-5-mini", ("openai", "gpt-5-mini")),
        ("anthropic:claude-sonnet-4-5", ("anthropic", "claude-sonnet-4-5")),
        ("vllm:Qwen/Qwen3-8B", ("vllm", "Qwen/Qwen3-8B")),
        ("ollama:qwen3:8b", ("ollama", "qwen3:8b")),
        ("local:qwen2.5-coder-1.5b", ("local", "qwen2.5-coder-1.5b")),
        ("local:/path/to/any.gguf", ("local", "/path/to/any.gguf")),
        ("local:C:\\models\\x.gguf", ("local", "C:\\models\\x.gguf")),
        (" OpenAI:gpt-5 ", ("openai", "gpt-5")),
    ],
)
def test_parse_spec_splits_on_the_first_colon(spec: str, expected: tuple[str, str]) -> None:
    assert parse_spec(spec) == expected


@pytest.mark.parametrize("spec", ["gpt-5-mini", ":gpt-5", "openai:", "openai:  ", ""])
def test_malformed_spec_is_a_usage_error(spec: str) -> None:
    with pytest.raises(UsageError, match="provider:model"):
        parse_spec(spec)


def test_non_string_spec_is_a_usage_error() -> None:
    with pytest.raises(UsageError):
        get_engine(42)  # type: ignore[arg-type]


def test_builtins_are_registered_through_entry_points() -> None:
    assert set(available_providers()) >= BUILTINS


def test_default_spec() -> None:
    assert DEFAULT_ENGINE_SPEC == "local:qwen2.5-coder-1.5b"


def test_unknown_provider_suggests_and_lists() -> None:
    with pytest.raises(UsageError) as info:
        get_engine("opnai:gpt-5-mini")
    message = str(info.value)
    assert "unknown engine provider 'opnai'" in message
    assert "Did you mean 'openai'?" in message
    assert all(name in message for name in BUILTINS)


def test_unknown_provider_without_close_match() -> None:
    with pytest.raises(UsageError) as info:
        get_engine("zzzzqqq:model")
    assert "Did you mean" not in str(info.value)
    assert "anthropic" in str(info.value)


def test_unknown_option_names_what_is_accepted() -> None:
    with pytest.raises(UsageError) as info:
        get_engine("openai:gpt-5-mini", api_key="k", temprature=0.2)
    message = str(info.value)
    assert "temprature" in message and "base_url" in message and "max_retries" in message


def test_engine_carries_its_model_and_provider() -> None:
    engine = get_engine("ollama:qwen3:8b")
    try:
        assert (engine.provider, engine.model) == ("ollama", "qwen3:8b")
        assert engine.base_url == "http://localhost:11434/v1"
    finally:
        engine.close()


def test_runtime_registration() -> None:
    def factory(model: str, *, greeting: str = "hi") -> FunctionEngine:
        return FunctionEngine(lambda messages, m: f"{greeting} from {m}")

    register_engine("Mine", factory)
    try:
        with pytest.raises(UsageError, match="already registered"):
            register_engine("mine", factory)
        assert "mine" in available_providers()
        engine = get_engine("mine:tiny", greeting="hello")
        assert engine.model == "tiny"  # set by the registry when the engine has none
        reply = engine.generate([{"role": "user", "content": "x"}], model=engine.model)
        assert reply.content == "hello from tiny"
    finally:
        unregister_engine("mine")
    assert "mine" not in available_providers()


def test_registration_rejects_bad_names() -> None:
    with pytest.raises(UsageError):
        register_engine("a:b", lambda model: None)
    with pytest.raises(UsageError):
        register_engine("ok", "not callable")  # type: ignore[arg-type]


def test_factory_must_return_an_engine() -> None:
    register_engine("broken", lambda model: object())
    try:
        with pytest.raises(UsageError, match="not an Engine"):
            get_engine("broken:x")
    finally:
        unregister_engine("broken")


def _run(code: str, *, path: Path | None = None) -> subprocess.CompletedProcess[str]:
    env_path = f"import sys; sys.path.insert(0, {str(path)!r})\n" if path else ""
    return subprocess.run(
        [sys.executable, "-c", env_path + textwrap.dedent(code)],
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_plugin_from_an_installed_distribution(tmp_path: Path) -> None:
    """A real plugin: a distribution on sys.path declaring the entry point."""
    dist = tmp_path / "rlm_echo_plugin-0.1.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: rlm-echo-plugin\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text("[rlmagent.engines]\nechoes = rlm_echo_plugin:make\n")
    (tmp_path / "rlm_echo_plugin.py").write_text(
        textwrap.dedent(
            """
            from rlmagent import FunctionEngine

            def make(model, **options):
                engine = FunctionEngine(lambda messages, m: messages[-1]["content"][::-1])
                engine.model = model
                return engine
            """
        )
    )
    result = _run(
        """
        import json
        from rlmagent.engines import available_providers, get_engine
        engine = get_engine("echoes:rev")
        reply = engine.generate([{"role": "user", "content": "abc"}], model=engine.model)
        print(json.dumps(["echoes" in available_providers(), engine.model, reply.content]))
        """,
        path=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == [True, "rev", "cba"]


def test_importing_rlmagent_imports_no_sdk() -> None:
    result = _run(
        """
        import json, sys
        import rlmagent, rlmagent.engines, rlmagent.engines.registry
        from rlmagent.engines import available_providers
        available_providers()
        print(json.dumps([m for m in ("openai", "anthropic", "llama_cpp") if m in sys.modules]))
        """
    )
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == []


def test_choosing_a_provider_imports_only_its_sdk() -> None:
    result = _run(
        """
        import json, sys
        from rlmagent.engines import get_engine
        get_engine("vllm:m").close()
        print(json.dumps([m for m in ("openai", "anthropic", "llama_cpp") if m in sys.modules]))
        """
    )
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == ["openai"]


@pytest.mark.parametrize(
    ("spec", "blocked", "extra"),
    [
        ("openai:gpt-5-mini", "openai", "openai"),
        ("anthropic:claude-sonnet-4-6", "anthropic", "anthropic"),
    ],
)
def test_missing_sdk_is_engine_not_available(spec: str, blocked: str, extra: str) -> None:
    result = _run(
        f"""
        import sys
        sys.modules[{blocked!r}] = None  # makes `import {blocked}` fail, as if not installed
        from rlmagent.engines import get_engine
        from rlmagent.errors import EngineNotAvailable
        try:
            get_engine({spec!r}, api_key="k")
        except EngineNotAvailable as exc:
            print(exc)
        """
    )
    assert result.returncode == 0, result.stderr
    # said the way this copy was installed: "rlmagent[x]" from an index, ".[x]" in a clone
    from rlmagent.extras import install_hint

    hint = install_hint(extra)
    assert hint.startswith("pip install ") and f"[{extra}]" in hint
    assert hint in result.stdout


def test_engine_not_available_is_an_engine_error() -> None:
    from rlmagent.errors import EngineError

    assert issubclass(EngineNotAvailable, EngineError)
