"""A list or dict context is described as what it is: type, length, what it holds and
the first items' shapes (keys, types, sizes), never a str() of it."""

from __future__ import annotations

from rlmagent import RLMAgent, ScriptedEngine
from rlmagent.context import describe_context, summary

RECORDS = [
    {"id": i, "customer": f"c{i}", "text": "the invoice was charged twice " * (i + 1)}
    for i in range(500)
]


def test_a_list_of_records_shows_length_types_and_the_first_items_keys():
    info = describe_context(RECORDS)
    assert info["type"] == "list" and info["items"] == 500
    phrase = summary(info)
    assert phrase.startswith("a list of 500 items (each a dict), ")
    assert phrase.endswith("characters as JSON")
    assert info["preview"][0] == (
        "[0] dict with 3 keys: id (int), customer (str, 2 chars), text (str, 30 chars)"
    )
    assert info["preview"][2].startswith("[2] dict with 3 keys: id (int), customer (str, 2 chars)")
    assert len(info["preview"]) == 3
    assert "charged twice" not in "\n".join(info["preview"])  # shapes, not contents


def test_a_mixed_list_counts_its_item_types_and_quotes_strings_briefly():
    info = describe_context(["x" * 500, 7, None, [1, 2, 3], "a\nb\nc"])
    assert summary(info).startswith("a list of 5 items (2 str, 1 int, 1 None, 1 list)")
    assert info["preview"][0].startswith('[0] str, 500 chars: "xxxx')
    assert info["preview"][0].endswith(' ..."')
    assert len(info["preview"][0]) < 120
    assert info["preview"][1] == "[1] int: 7"
    assert info["preview"][2] == "[2] None: null"


def test_a_dict_of_documents_lists_keys_and_each_value_size():
    docs = {f"notes/{i}.txt": f"title {i}\n" + "body line\n" * i for i in range(1, 13)}
    info = describe_context(docs)
    assert summary(info).startswith("a dict of 12 keys (each value a str), ")
    assert info["preview"][0].startswith("keys: ['notes/1.txt', 'notes/2.txt'")
    assert info["preview"][0].endswith(" ...")  # more than ten keys
    assert (
        info["preview"][2]
        == "['notes/2.txt'] str, 28 chars in 3 lines: \"title 2 body line body line\""
    )


def test_nested_values_show_their_sizes():
    info = describe_context({"users": [{"a": 1}] * 40, "meta": {"k": "v", "n": 2}})
    assert "['users'] list of 40 (each a dict)" in info["preview"]
    assert "['meta'] dict with 2 keys: k (str, 1 chars), n (int)" in info["preview"]


def test_the_first_message_describes_a_list_context_by_its_shape():
    engine = ScriptedEngine(["```repl\nFINAL(len(context))\n```"])
    result = RLMAgent(engine, "m", check_answers=False).run("How many?", context=RECORDS)
    assert result.content == "500"
    first = engine.calls[0][1]["content"]
    assert "The context is a list of 500 items (each a dict)" in first
    assert "[0] dict with 3 keys: id (int), customer (str, 2 chars)" in first
    assert "{'id'" not in first  # no str() preview
