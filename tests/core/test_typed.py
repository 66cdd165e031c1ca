"""Typed answers (output_type=): each supported type through the real sandbox, the
correction turns, OutputTypeError, and the pure reading of FINAL text in typed.py."""

from __future__ import annotations

import dataclasses
import subprocess
import sys
import typing

import pytest
import typing_extensions

from rlmagent import OutputTypeError, RLMAgent, ScriptedEngine, UsageError
from rlmagent.typed import MAX_TYPE_CORRECTIONS, output_spec

CTX = "\n".join(f"line {i}: ok" for i in range(50)) + "\nAnn is 31 and lives in Oslo.\n"


@dataclasses.dataclass
class Person:
    name: str
    age: int


class PersonDict(typing.TypedDict):
    name: str
    age: int


class PersonDictExt(typing_extensions.TypedDict, total=False):
    name: str
    age: int


SCHEMA = {
    "title": "person",
    "type": "object",
    "properties": {"name": {"type": "string"}, "age": {"type": "integer", "minimum": 0}},
    "required": ["name", "age"],
    "additionalProperties": False,
}

LOOK = "```repl\nprint(context[-40:])\n```"


def typed_run(final_cells, output_type, **kw):
    engine = ScriptedEngine([LOOK, *final_cells])
    agent = RLMAgent(engine, "root", check_answers=False, **kw)
    return agent.run("Who is in the context?", context=CTX, output_type=output_type), engine


@pytest.mark.parametrize(
    ("cell", "output_type", "expected"),
    [
        ("FINAL(31)", int, 31),
        ("FINAL('31')", int, 31),
        ("x = 31.5\nFINAL_VAR('x')", float, 31.5),
        ("FINAL(True)", bool, True),
        ("FINAL('false')", bool, False),
        ("names = ['Ann', 'Oslo']\nFINAL_VAR('names')", list[str], ["Ann", "Oslo"]),
        ('FINAL(\'["Ann", "Oslo"]\')', list[str], ["Ann", "Oslo"]),
        ("FINAL('Ann lives in Oslo')", str, "Ann lives in Oslo"),
        ("FINAL('42')", str, "42"),
        ("p = {'name': 'Ann', 'age': 31}\nFINAL_VAR('p')", Person, Person("Ann", 31)),
        ('FINAL(\'{"name": "Ann", "age": "31"}\')', Person, Person("Ann", 31)),
        ("p = {'name': 'Ann', 'age': 31}\nFINAL_VAR('p')", PersonDict, {"name": "Ann", "age": 31}),
        ("FINAL({'name': 'Ann'})", PersonDictExt, {"name": "Ann"}),
        ("p = {'name': 'Ann', 'age': 31}\nFINAL_VAR('p')", SCHEMA, {"name": "Ann", "age": 31}),
        ("FINAL('[1, 2]')", {"type": "array", "items": {"type": "integer"}}, [1, 2]),
    ],
)
def test_each_supported_type_is_validated_in_the_host(cell, output_type, expected):
    result, engine = typed_run([f"```repl\n{cell}\n```"], output_type)
    assert result.stop_reason == "final"
    assert result.value == expected
    assert type(result.value) is type(expected)
    assert isinstance(result.content, str)
    first = engine.calls[0][1]["content"]
    assert "The answer must be" in first and "JSON Schema" in first


def test_content_stays_the_final_text():
    result, _ = typed_run(["```repl\nnames = ['Ann']\nFINAL_VAR('names')\n```"], list[str])
    assert result.content == "['Ann']"
    assert result.value == ["Ann"]


def test_the_prompt_names_the_type_and_its_schema():
    _, engine = typed_run(["```repl\nFINAL(['Ann'])\n```"], list[str])
    first = engine.calls[0][1]["content"]
    assert "The answer must be list[str]" in first
    assert '{"items":{"type":"string"},"type":"array"}' in first
    _, engine = typed_run(["```repl\nFINAL({'name': 'Ann', 'age': 1})\n```"], SCHEMA)
    assert "'person'" in engine.calls[0][1]["content"]
    assert '"minimum":0' in engine.calls[0][1]["content"]


def test_a_mismatch_is_shown_to_the_model_and_corrected_on_the_second_try():
    result, engine = typed_run(
        ["```repl\nFINAL('Ann, thirty-one')\n```", "```repl\nFINAL(31)\n```"], int
    )
    assert result.value == 31 and result.stop_reason == "final"
    assert result.turns == 3
    correction = result.trajectory[1].observation
    assert "not int" in correction
    assert "'Ann, thirty-one'" in correction  # what the validator saw
    assert "Question: Who is in the context?" in correction
    assert engine.calls[2][-1]["content"] == correction  # the model was sent it


def test_a_dataclass_field_error_names_the_field():
    result, _ = typed_run(
        [
            "```repl\np = {'name': 'Ann'}\nFINAL_VAR('p')\n```",
            "```repl\np['age'] = 31\nFINAL_VAR('p')\n```",
        ],
        Person,
    )
    assert result.value == Person("Ann", 31)
    assert "at age: Field required" in result.trajectory[1].observation


def test_a_schema_mismatch_is_corrected():
    result, _ = typed_run(
        [
            "```repl\nFINAL({'name': 'Ann', 'age': -1})\n```",
            "```repl\nFINAL({'name': 'Ann', 'age': 31})\n```",
        ],
        SCHEMA,
    )
    assert result.value == {"name": "Ann", "age": 31}
    assert "at age: -1 is less than the minimum of 0" in result.trajectory[1].observation


def test_a_mismatch_given_up_raises_output_type_error_with_the_raw_value():
    wrong = [f"```repl\nFINAL('about {n} years')\n```" for n in (30, 31, 32, 33)]
    with pytest.raises(OutputTypeError) as caught:
        typed_run(wrong, int, max_turns=10)
    error = caught.value
    assert error.raw == "about 32 years"  # the third answer, after two corrections
    assert "valid integer" in error.validation
    assert error.expected == "int"
    partial = error.partial
    assert partial is not None and partial.partial_answer == "about 32 years"
    assert len(corrections(partial)) == MAX_TYPE_CORRECTIONS  # then it was given up
    assert "valid integer" in str(error)


def corrections(result):
    return [s for s in result.trajectory if s.observation.startswith("Your answer is not")]


def test_the_forced_final_turn_is_validated_too():
    # two turns of looking, then the forced answer: no turn is left to correct it
    engine = ScriptedEngine([LOOK, "```repl\nprint(1)\n```", "FINAL(31)"])
    result = RLMAgent(engine, "root", max_turns=2, check_answers=False).run(
        "Age?", context=CTX, output_type=int
    )
    assert result.stop_reason == "max_turns" and result.value == 31
    engine = ScriptedEngine([LOOK, "```repl\nprint(1)\n```", "FINAL(thirty)"])
    with pytest.raises(OutputTypeError) as caught:
        RLMAgent(engine, "root", max_turns=2, check_answers=False).run(
            "Age?", context=CTX, output_type=int
        )
    assert caught.value.raw == "thirty"


def test_untyped_runs_have_no_value():
    engine = ScriptedEngine([LOOK, "```repl\nFINAL(31)\n```"])
    result = RLMAgent(engine, "root", check_answers=False).run("Age?", context=CTX)
    assert result.value is None and result.content == "31"


@pytest.mark.parametrize(
    ("output_type", "message"),
    [
        ({"type": "no-such-type"}, "not a valid JSON Schema"),
        (object(), "cannot be validated"),
        ({"$ref": "https://example.com/person.json"}, "nothing is fetched"),
    ],
)
def test_an_unusable_output_type_is_a_usage_error_before_any_model_call(output_type, message):
    engine = ScriptedEngine([LOOK])
    with pytest.raises(UsageError, match=message):
        RLMAgent(engine, "root").run("Age?", context=CTX, output_type=output_type)
    assert engine.calls == []


def test_a_schema_with_local_references_validates():
    schema = {
        "$defs": {"name": {"type": "string", "minLength": 2}},
        "type": "array",
        "items": {"$ref": "#/$defs/name"},
    }
    spec = output_spec(schema)
    assert spec.check('["Ann", "Bo"]') == ["Ann", "Bo"]
    with pytest.raises(Exception, match="is too short"):
        spec.check('["A"]')
    broken = output_spec({"type": "array", "items": {"$ref": "#/$defs/missing"}})
    with pytest.raises(UsageError, match="does not resolve"):
        broken.check('["Ann"]')


def test_reading_final_text():
    spec = output_spec(list[int])
    assert spec.check("```json\n[1, 2]\n```") == [1, 2]
    assert spec.check("(1, 2)") == [1, 2]  # a tuple repr: a Python literal, evaluated by no one
    with pytest.raises(Exception, match="valid list"):
        spec.check("__import__('os').system('true')")
    assert output_spec(typing.Optional[int]).check("None") is None  # noqa: UP045
    nested = output_spec(list[PersonDict])
    assert nested.check('[{"name": "A", "age": 1}]') == [{"name": "A", "age": 1}]


@pytest.mark.parametrize("text", ["[" * 100_000, "[" * 50_000 + "]" * 50_000, "(" * 300_000])
def test_hostile_final_text_is_a_mismatch_not_a_crash(text):
    with pytest.raises(Exception, match="valid list") as caught:
        output_spec(list[int]).check(text)
    assert type(caught.value).__name__ == "_Mismatch"


def test_a_missing_extra_is_named(monkeypatch):
    monkeypatch.setitem(sys.modules, "pydantic", None)
    monkeypatch.setitem(sys.modules, "jsonschema", None)
    with pytest.raises(UsageError, match=r"rlmagent\[typed\]"):
        output_spec(int)
    with pytest.raises(UsageError, match=r"rlmagent\[typed\]"):
        output_spec(SCHEMA)


def test_importing_rlmagent_does_not_import_the_validators():
    code = (
        "import sys, rlmagent, rlmagent.cli\n"
        "print([m for m in ('pydantic', 'jsonschema') if m in sys.modules])"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
