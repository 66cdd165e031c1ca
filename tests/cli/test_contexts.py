"""`rlm run` with the contexts a user has (repeated --context, directories with globs and
a size cap, stdin, binary and non-UTF-8 files, empty contexts) and `--schema`, in-process
on an engine registered at run time that records what the root was shown."""

from __future__ import annotations

import io
import json
import os
import sys
import threading

import pytest

from rlmagent import FunctionEngine
from rlmagent.cli import main
from rlmagent.cli.contexts import parse_size
from rlmagent.engines import register_engine, unregister_engine

SEEN: list[list[dict]] = []


def _root(messages, model):
    """Prints what the REPL holds, then answers with a reply it was given in the question."""
    SEEN.append(messages)
    question = messages[1]["content"].split("\n", 1)[0]
    if len(messages) == 2:
        return (
            "```repl\nimport json\n"
            "shape = {k: (len(v) if isinstance(v, (str, dict)) else v) "
            "for k, v in (context.items() if isinstance(context, dict) else [('text', context)])}\n"
            "print(json.dumps(shape, sort_keys=True))\n```"
        )
    if "ANSWER:" in question:
        return "```repl\nFINAL(" + repr(question.split("ANSWER:", 1)[1].strip()) + ")\n```"
    return "```repl\nFINAL(json.dumps(shape, sort_keys=True))\n```"


@pytest.fixture
def fake():
    SEEN.clear()
    register_engine("fakectx", lambda model, **kw: FunctionEngine(_root), replace=True)
    yield "fakectx:m"
    unregister_engine("fakectx")


def rlm(*argv: str) -> int:
    return main(["run", *argv, "--no-log"])


def answer_of(out: str) -> dict:
    return json.loads(json.loads(out)["answer"])


def _contexts_root(messages, model):
    SEEN.append(messages)
    if len(messages) == 2:
        return (
            "```repl\nseen = [context, {k: len(v) for k, v in contexts.items()}]\nprint(seen)\n```"
        )
    return "```repl\nFINAL(repr(seen))\n```"


def test_context_given_more_than_once_holds_every_one_by_name(tmp_path, capsys):
    SEEN.clear()
    register_engine("fakemany", lambda model, **kw: FunctionEngine(_contexts_root), replace=True)
    a, b, d = tmp_path / "a.txt", tmp_path / "b.txt", tmp_path / "d"
    a.write_text("alpha\n")
    b.write_text("beta beta\n")
    d.mkdir()
    (d / "x.md").write_text("# x\n")
    try:
        code = rlm("q", "-c", str(a), "-c", str(b), "--context", f"{d}/", "--model", "fakemany:m")
    finally:
        unregister_engine("fakemany")
    out, err = capsys.readouterr()
    assert code == 0, err
    assert out.strip() == repr(["alpha\n", {str(a): 6, str(b): 10, str(d): 1}])
    first = SEEN[0][1]["content"]
    assert f"contexts[{str(a)!r}]" in first and f"contexts[{str(d)!r}]" in first
    assert "a dict of 1 keys (each value a str)" in first  # the directory


def test_the_same_context_twice_is_an_error(tmp_path, capsys, fake):
    a = tmp_path / "a.txt"
    a.write_text("alpha\n")
    assert rlm("q", "-c", str(a), "-c", str(a), "--model", fake) == 2
    assert "given twice" in capsys.readouterr().err
    assert SEEN == []


def test_a_directory_is_one_document_per_text_file_with_globs(tmp_path, capsys, fake):
    root = tmp_path / "docs"
    (root / "sub").mkdir(parents=True)
    (root / "a.md").write_text("# a\n")
    (root / "sub" / "b.md").write_text("# bee\n")
    (root / "sub" / "c.txt").write_text("see\n")
    (root / "skip.md").write_text("# skip\n")
    (root / ".git").mkdir()
    (root / ".git" / "HEAD").write_text("ref\n")
    (root / "logo.png").write_bytes(b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR")
    code = rlm("q", "-c", str(root), "--model", fake, "--json")
    out, err = capsys.readouterr()
    assert code == 0, err
    assert answer_of(out) == {"a.md": 4, "skip.md": 7, "sub/b.md": 6, "sub/c.txt": 4}
    assert "4 files, 21 bytes loaded" in err
    assert "1 not text, skipped: logo.png (binary)" in err
    code = rlm(
        "q", "-c", str(root), "--include", "*.md", "--exclude", "skip*", "--model", fake, "--json"
    )
    out, err = capsys.readouterr()
    assert code == 0, err
    assert answer_of(out) == {"a.md": 4, "sub/b.md": 6}


def test_a_directory_over_the_size_cap_is_cut_and_the_cut_is_reported(tmp_path, capsys, fake):
    root = tmp_path / "logs"
    root.mkdir()
    for i in range(5):
        (root / f"{i}.log").write_text(f"line {i}\n" * 100)  # 700 bytes each
    code = rlm("q", "-c", str(root), "--max-context-size", "1.5K", "--model", fake, "--json")
    out, err = capsys.readouterr()
    assert code == 0, err
    assert answer_of(out) == {"0.log": 700, "1.log": 700}
    assert "2 files, 1.4 KB loaded; 3 files (2.1 KB) left out by the 1.5 KB cap" in err
    assert "(--max-context-size): 2.log, 3.log, 4.log" in err
    (root / "0.log").write_text("x" * 5000)  # too large alone: the next ones still load
    code = rlm("q", "-c", str(root), "--max-context-size", "1.5K", "--model", fake, "--json")
    out, err = capsys.readouterr()
    assert code == 0, err
    assert answer_of(out) == {"1.log": 700, "2.log": 700}
    assert "left out by the 1.5 KB cap (--max-context-size): 0.log, 3.log, 4.log" in err
    assert rlm("q", "-c", str(root), "--max-context-size", "100", "--model", fake) == 2
    assert "every text file is larger than the 100 bytes cap" in capsys.readouterr().err


def test_a_named_pipe_is_read_like_stdin(tmp_path, capsys, fake):
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    writer = threading.Thread(target=lambda: fifo.write_bytes(b"piped text\n"))
    writer.start()
    try:
        assert rlm("q", "-c", str(fifo), "--model", fake, "--json") == 0
    finally:
        writer.join()
    assert answer_of(capsys.readouterr().out) == {"text": 11}


def test_stdin_is_a_context(monkeypatch, capsys, fake):
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(b"from a pipe\n")))
    assert rlm("q", "-c", "-", "--model", fake, "--json") == 0
    assert answer_of(capsys.readouterr().out) == {"text": 12}


def test_stdin_that_is_not_utf8_is_a_clear_error(monkeypatch, capsys, fake):
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(b"caf\xe9\n")))
    assert rlm("q", "-c", "-", "--model", fake) == 2
    err = capsys.readouterr().err
    assert "stdin is not valid utf-8 text (byte 0xe9 at offset 3)" in err
    assert "--encoding" in err and "Traceback" not in err
    assert SEEN == []


def test_a_binary_file_is_a_clear_error_naming_it(tmp_path, capsys, fake):
    path = tmp_path / "model.bin"
    path.write_bytes(b"GGUF\x03\0\0\0" + bytes(range(256)))
    assert rlm("q", "-c", str(path), "--model", fake) == 2
    err = capsys.readouterr().err
    assert f"context file {str(path)!r} looks binary (a NUL byte at offset 5)" in err
    assert "Traceback" not in err
    assert SEEN == []


def test_a_latin1_file_needs_its_encoding_and_reads_with_it(tmp_path, capsys, fake):
    path = tmp_path / "notes.txt"
    path.write_bytes("first line\nthe caf\u00e9 opens at 9.\n".encode("latin-1"))
    assert rlm("q", "-c", str(path), "--model", fake) == 2
    err = capsys.readouterr().err
    assert f"context file {str(path)!r} is not valid utf-8 text (byte 0xe9 at offset 18)" in err
    assert "--encoding latin-1" in err
    code = rlm("q ANSWER: ok", "-c", str(path), "--encoding", "latin-1", "--model", fake, "-q")
    out, err = capsys.readouterr()
    assert code == 0, err
    assert out == "ok\n"
    assert "the caf\u00e9 opens at 9." in SEEN[-1][1]["content"]  # decoded for the preview
    assert rlm("q", "-c", str(path), "--encoding", "klingon", "--model", fake) == 2
    assert "unknown --encoding 'klingon'" in capsys.readouterr().err


def test_a_non_utf8_file_in_a_directory_is_skipped_and_named(tmp_path, capsys, fake):
    root = tmp_path / "d"
    root.mkdir()
    (root / "good.txt").write_text("fine\n")
    (root / "old.txt").write_bytes(b"na\xefve\n")
    assert rlm("q", "-c", str(root), "--model", fake, "--json") == 0
    out, err = capsys.readouterr()
    assert answer_of(out) == {"good.txt": 5}
    assert "old.txt (not utf-8)" in err and "--encoding" in err


@pytest.mark.parametrize("kind", ["file", "whitespace", "dir", "filtered", "stdin"])
def test_an_empty_context_is_an_error_before_any_model_call(
    kind, tmp_path, capsys, fake, monkeypatch
):
    path = tmp_path / "ctx"
    if kind == "file":
        path.write_text("")
    elif kind == "whitespace":
        path.write_text("  \n\n\t\n")
    elif kind in ("dir", "filtered"):
        path.mkdir()
        (path / "empty.txt").write_text("")
        if kind == "filtered":
            (path / "a.txt").write_text("text\n")
    extra = ["--include", "*.md"] if kind == "filtered" else []
    target = "-" if kind == "stdin" else str(path)
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(b"")))
    assert rlm("q", "-c", target, *extra, "--model", fake) == 2
    err = capsys.readouterr().err
    assert "is empty" in err and "Traceback" not in err
    if kind == "filtered":
        assert "no text file matched --include/--exclude" in err
    assert SEEN == []


def test_a_missing_context_names_the_path(tmp_path, capsys, fake):
    assert rlm("q", "-c", str(tmp_path / "nope.txt"), "--model", fake) == 2
    assert "nope.txt' does not exist" in capsys.readouterr().err


def test_sizes():
    assert parse_size("500K") == 500 * 1024 and parse_size("64M") == 64 * 1024**2
    assert parse_size("1gb") == 1024**3 and parse_size("1200") == 1200
    with pytest.raises(Exception, match="not a size"):
        parse_size("lots")


# -- --schema ------------------------------------------------------------------------


def _schema_root(messages, model):
    SEEN.append(messages)
    if len(messages) == 2:
        return "```repl\nprint(context[:30])\n```"
    if len(messages) == 4:  # wrong first: a string where the schema wants an integer
        return "```repl\nFINAL({'city': 'Oslo', 'n': 'two'})\n```"
    return "```repl\nFINAL({'city': 'Oslo', 'n': 2})\n```"


@pytest.fixture
def schema_fake():
    SEEN.clear()
    register_engine("fakeschema", lambda model, **kw: FunctionEngine(_schema_root), replace=True)
    yield "fakeschema:m"
    unregister_engine("fakeschema")


def test_schema_validates_corrects_and_prints_the_value_as_json(tmp_path, capsys, schema_fake):
    ctx = tmp_path / "c.txt"
    ctx.write_text("Oslo has 2 ferries.\n")
    schema = tmp_path / "s.json"
    schema.write_text(
        json.dumps(
            {
                "type": "object",
                "properties": {"city": {"type": "string"}, "n": {"type": "integer"}},
                "required": ["city", "n"],
            }
        )
    )
    code = rlm("q", "-c", str(ctx), "--schema", str(schema), "--model", schema_fake, "--json")
    out, err = capsys.readouterr()
    assert code == 0, err
    payload = json.loads(out)
    assert payload["value"] == {"city": "Oslo", "n": 2}
    assert payload["answer"] == "{'city': 'Oslo', 'n': 2}"
    assert "at n: 'two' is not of type 'integer'" in SEEN[2][-1]["content"]
    assert "JSON Schema" in SEEN[0][1]["content"]
    code = rlm("q", "-c", str(ctx), "--schema", str(schema), "--model", schema_fake, "-q")
    out, _ = capsys.readouterr()
    assert code == 0 and json.loads(out) == {"city": "Oslo", "n": 2}


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (None, "does not exist"),
        ("{not json", "is not JSON"),
        ("[1]", "must hold a JSON object"),
        ('{"type": 7}', "not a valid JSON Schema"),
    ],
)
def test_a_bad_schema_file_is_a_clear_error(text, message, tmp_path, capsys, schema_fake):
    ctx = tmp_path / "c.txt"
    ctx.write_text("x\n")
    schema = tmp_path / "s.json"
    if text is not None:
        schema.write_text(text)
    assert rlm("q", "-c", str(ctx), "--schema", str(schema), "--model", schema_fake) == 2
    assert message in capsys.readouterr().err
    assert SEEN == []
