"""`rlm mcp` over stdio, driven by the MCP SDK's own client."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest

pytest.importorskip("mcp")

import anyio
from mcp import ClientSession, StdioServerParameters
from mcp.client.stdio import stdio_client

TOOLS = {"rlm_answer", "rlm_session_open", "rlm_session_ask", "rlm_session_close"}


def _text(result) -> str:
    return "".join(getattr(block, "text", "") for block in result.content)


@pytest.fixture
def allowed(tmp_path: Path) -> Path:
    root = tmp_path / "docs"
    root.mkdir()
    (root / "notes.txt").write_text("the secret word is tangerine\n")
    (root / "blob.bin").write_bytes(b"\x00\x01\x02binary")
    (root / "latin1.txt").write_bytes("caf\xe9".encode("latin-1"))
    outside = tmp_path / "private.txt"
    outside.write_text("not for the model\n")
    (root / "link.txt").symlink_to(outside)
    return root


def _drive(model_server, allowed: Path, body, *, default_dir: bool = False) -> object:
    """Run ``body(session)`` against `rlm mcp` over stdio; ``default_dir``: no --allow-dir,
    started in ``allowed`` (the default is the current directory)."""
    args = ["-m", "rlmagent", "mcp", "--model", "vllm:fake-root", "--sub-model", "vllm:fake-sub",
            "--base-url", model_server.url, "--no-log"]  # fmt: skip
    params = StdioServerParameters(
        command=sys.executable,
        args=args if default_dir else [*args, "--allow-dir", str(allowed)],
        env={"PATH": os.environ.get("PATH", "/usr/bin:/bin")},
        cwd=str(allowed if default_dir else allowed.parent),
    )

    async def main() -> object:
        with anyio.fail_after(120):
            async with stdio_client(params) as (read, write), ClientSession(read, write) as session:
                await session.initialize()
                return await body(session)

    return anyio.run(main)


def test_tools_answer_session_and_refused_paths(model_server, allowed: Path):
    async def body(session: ClientSession) -> dict:
        out: dict = {}
        out["tools"] = {t.name for t in (await session.list_tools()).tools}
        progress: list[tuple[float, str | None]] = []

        async def on_progress(done: float, total: float | None, message: str | None) -> None:
            progress.append((done, message))

        out["text"] = await session.call_tool(
            "rlm_answer", {"question": "[[plan:len]] how long?", "text": "twelve chars"},
            progress_callback=on_progress,
        )  # fmt: skip
        out["progress"] = progress
        out["file"] = await session.call_tool(
            "rlm_answer", {"question": "[[plan:len]] how long?", "paths": ["notes.txt"]}
        )
        out["outside"] = await session.call_tool(
            "rlm_answer", {"question": "q", "paths": [str(allowed.parent / "private.txt")]}
        )
        out["dotdot"] = await session.call_tool(
            "rlm_answer", {"question": "q", "paths": ["../private.txt"]}
        )
        out["link"] = await session.call_tool(
            "rlm_answer", {"question": "q", "paths": ["link.txt"]}
        )
        out["binary"] = await session.call_tool(
            "rlm_answer", {"question": "q", "paths": ["blob.bin"]}
        )
        out["latin1"] = await session.call_tool(
            "rlm_answer", {"question": "q", "paths": ["latin1.txt"]}
        )
        out["typed"] = await session.call_tool(
            "rlm_answer",
            {
                "question": "[[plan:json]] count",
                "text": "a b c",
                "output_schema": {"type": "object", "required": ["count"]},
            },
        )
        opened = await session.call_tool("rlm_session_open", {"paths": ["notes.txt"]})
        sid = _text(opened)
        out["sid"] = sid
        out["kept"] = await session.call_tool(
            "rlm_session_ask", {"id": sid, "question": "[[plan:remember]] keep the word"}
        )
        out["recall"] = await session.call_tool(
            "rlm_session_ask", {"id": sid, "question": "[[plan:recall]] what was it?"}
        )
        out["closed"] = await session.call_tool("rlm_session_close", {"id": sid})
        out["after"] = await session.call_tool(
            "rlm_session_ask", {"id": sid, "question": "[[plan:recall]] again"}
        )
        return out

    out = _drive(model_server, allowed, body)
    assert out["tools"] == TOOLS
    assert not out["text"].is_error and _text(out["text"]) == "12 characters"
    assert any(m and "turn 1 started" in m for _, m in out["progress"])
    assert [d for d, _ in out["progress"]] == sorted(d for d, _ in out["progress"])
    assert _text(out["file"]) == f"{len('the secret word is tangerine' + chr(10))} characters"
    for name in ("outside", "dotdot"):
        assert out[name].is_error and "outside the allowed directories" in _text(out[name])
    assert out["link"].is_error and "symlink leading outside" in _text(out["link"])
    assert out["binary"].is_error and "binary file" in _text(out["binary"])
    assert out["latin1"].is_error and "not UTF-8 text" in _text(out["latin1"])
    assert json.loads(_text(out["typed"])) == {"count": 3, "names": ["a", "b"]}
    assert _text(out["kept"]) == "kept" and _text(out["recall"]) == "tangerine"
    assert not out["closed"].is_error
    assert out["after"].is_error and "rlm_session_open" in _text(out["after"])


def test_the_current_directory_is_the_default_allowed_dir(model_server, allowed: Path):
    async def body(session: ClientSession) -> tuple:
        inside = await session.call_tool(
            "rlm_answer", {"question": "[[plan:len]] q", "paths": ["notes.txt"]}
        )
        outside = await session.call_tool(
            "rlm_answer", {"question": "q", "paths": ["../private.txt"]}
        )
        return inside, outside

    inside, outside = _drive(model_server, allowed, body, default_dir=True)
    assert not inside.is_error and _text(inside) == "29 characters"
    assert outside.is_error and "outside the allowed directories" in _text(outside)


def test_an_allowed_dir_that_does_not_exist_is_a_usage_error(tmp_path: Path):
    import subprocess

    done = subprocess.run(
        [sys.executable, "-m", "rlmagent", "mcp", "--allow-dir", str(tmp_path / "nope"),
         "--model", "vllm:x", "--base-url", "http://127.0.0.1:9/v1", "--no-log"],
        capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL,
    )  # fmt: skip
    assert done.returncode == 2 and "is not a directory" in done.stderr


def test_streamable_http_on_loopback(model_server, allowed: Path):
    import re
    import subprocess

    from mcp.client.streamable_http import streamable_http_client

    proc = subprocess.Popen(
        [sys.executable, "-m", "rlmagent", "mcp", "--http", "--port", "0",
         "--model", "vllm:fake-root", "--base-url", model_server.url, "--no-log",
         "--allow-dir", str(allowed)],
        stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, stdin=subprocess.DEVNULL, text=True,
    )  # fmt: skip
    try:
        assert proc.stderr is not None
        lines = [proc.stderr.readline() for _ in range(2)]  # the sandbox tier, the address
        assert "sandbox" in lines[0], lines
        found = re.search(r"http://127\.0\.0\.1:\d+/mcp", lines[1])
        assert found, lines

        async def main() -> tuple[set[str], str]:
            with anyio.fail_after(60):
                async with (
                    streamable_http_client(found.group(0)) as (read, write),
                    ClientSession(read, write) as session,
                ):
                    await session.initialize()
                    names = {t.name for t in (await session.list_tools()).tools}
                    result = await session.call_tool(
                        "rlm_answer", {"question": "[[plan:len]] q", "paths": ["notes.txt"]}
                    )
                    return names, _text(result)

        names, answer = anyio.run(main)
        assert names == TOOLS and answer == "29 characters"
    finally:
        proc.terminate()
        proc.wait(15)
        proc.stderr.close()
