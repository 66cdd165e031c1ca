"""The REPL's plain-Python text helpers: ``chunks`` and ``search``.

They run inside the sandbox, beside the worker, and use only the standard library
(``re`` is imported on the first ``search``: the worker's start-up stays small).

* ``chunks(text, max_chars)`` cuts a text into pieces at line ends, for whole-text work.
* ``search(pattern, text)`` returns the *passages* where a regular expression matches:
  the sentence (or short line) around each match, never a whole long line. Inputs whose
  lines are paragraphs (documents, logs with long records) otherwise show a small model
  kilobytes per hit, and it reads the wrong sentence of them.
"""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

SEARCH_WIDTH = 300
"""The longest passage ``search`` returns, in characters (around the match)."""
MAX_SEARCH_HITS = 10_000
"""The most passages one ``search`` returns."""
_ENDS = ".!?"
_COMMON = frozenset(
    {
        "the",
        "and",
        "for",
        "are",
        "was",
        "were",
        "with",
        "that",
        "this",
        "from",
        "has",
        "have",
        "had",
        "not",
        "but",
        "its",
        "his",
        "her",
        "their",
        "they",
        "them",
        "there",
        "than",
        "then",
        "into",
        "onto",
        "about",
        "which",
        "what",
        "when",
        "where",
        "who",
        "whom",
        "how",
        "why",
        "does",
        "did",
        "done",
        "all",
        "any",
        "each",
        "per",
        "our",
        "out",
        "you",
        "your",
        "can",
        "could",
        "would",
        "should",
        "will",
        "shall",
        "may",
        "might",
        "must",
        "been",
        "being",
        "also",
        "only",
        "very",
        "more",
        "most",
        "some",
        "such",
        "other",
    }
)
"""Words a fallback search never picks: they match everywhere and say nothing."""


def chunks(text: str, max_chars: int) -> list[str]:
    """Split ``text`` into pieces of at most ``max_chars`` characters, cut after a
    newline wherever one fits (a longer line is cut every ``max_chars`` characters).

    ``"".join(chunks(text, n)) == text``, and ``chunks("", n) == []``.
    """
    if not isinstance(text, str):
        raise TypeError(f"chunks(): text must be a str, not {type(text).__name__}")
    if isinstance(max_chars, bool) or not isinstance(max_chars, int):
        raise TypeError(
            f"chunks(): max_chars must be a positive int, not {type(max_chars).__name__}"
        )
    if max_chars <= 0:
        raise ValueError(f"chunks(): max_chars must be a positive int, not {max_chars}")
    pieces = []
    start, size = 0, len(text)
    while start < size:
        end = start + max_chars
        if end < size:
            newline = text.rfind("\n", start, end)
            if newline >= 0:  # else one line longer than max_chars: cut it there
                end = newline + 1
        pieces.append(text[start:end])
        start = end
    return pieces


def _sentence_start(text: str, pos: int, floor: int) -> int:
    """Where the sentence holding ``pos`` starts: after the last newline or ``. `` before
    it, but not before ``floor``."""
    i = pos - 1
    while i >= floor:
        ch = text[i]
        if ch == "\n":
            return i + 1
        if ch in _ENDS and i + 1 < len(text) and text[i + 1] in " \t":
            return i + 2
        i -= 1
    return max(floor, 0)


def _sentence_end(text: str, pos: int, ceiling: int) -> int:
    """Where the sentence holding ``pos`` ends (after its ``.``, or at a newline), but
    not past ``ceiling``."""
    i = pos
    while i < ceiling:
        ch = text[i]
        if ch == "\n":
            return i
        if ch in _ENDS and (i + 1 >= len(text) or text[i + 1] in " \t\n"):
            return i + 1
        i += 1
    return ceiling


def _passages(text: str, regex: Any, width: int, out: list[str]) -> None:
    last = -1  # where the previous passage ended: a match inside it adds nothing
    for match in regex.finditer(text):
        if len(out) >= MAX_SEARCH_HITS:
            return
        begin, finish = match.start(), match.end()
        if begin < last:
            continue
        if finish - begin >= width:  # the match alone fills the passage
            span = (begin, begin + width)
        else:
            spare = width - (finish - begin)
            floor = max(0, begin - spare // 2)
            ceiling = min(len(text), finish + spare - (begin - floor))
            span = (_sentence_start(text, begin, floor), _sentence_end(text, finish, ceiling))
        last = span[1]
        piece = text[span[0] : span[1]].strip()
        if piece:
            out.append(piece)


def _word_hits(pattern: str, text: Any, width: int) -> list[tuple[str, list[str]]]:
    """For a pattern that matched nothing: each word of it (3+ letters, digits or
    hyphens, no common word) with the passages ``search`` finds for it alone, rarest
    first (words found nowhere left out); at most 5."""
    import re

    words = dict.fromkeys(w for w in re.findall(r"[\w-]{3,}", pattern) if w.lower() not in _COMMON)
    found = [(word, search(re.escape(word), text, width=width)) for word in list(words)[:12]]
    return sorted((wh for wh in found if wh[1]), key=lambda wh: len(wh[1]))[:5]


def fallback(pattern: str, text: Any, width: int = SEARCH_WIDTH) -> tuple[list[str], str]:
    """For a pattern of several words that matched nothing: the passages of its rarest
    word that occurs, and the line saying so (printed by the REPL's ``search``). Small
    models search for a whole phrase ("special magic number for X") that the text words
    differently, and rerun the same search when told to use fewer words."""
    hits = _word_hits(pattern, text, width)
    if not hits:  # (a hint to the operators here sent lookups that had found their
        # line into llm_filter over every line; it is said only when nothing matched)
        return [], (
            f"[search: nothing matches {pattern[:80]!r}, nor any word of it. If the question "
            "is about what lines mean (a topic, an intent) and not the words they hold, let "
            "a sub-model judge each line: llm_filter(lines, condition) or "
            "llm_classify(lines, labels)]"
        )
    word, passages = hits[0]
    found = ", ".join(f"{w!r} {len(p):,}" for w, p in hits)
    note = (
        f"[search: nothing matches {pattern[:80]!r}; these are the passages of its rarest "
        f"word, {word!r} (its words alone match: {found})]"
    )
    return passages, note


def search(pattern: str, text: Any, flags: int = 0, *, width: int = SEARCH_WIDTH) -> list[str]:
    """The passages of ``text`` where the regular expression ``pattern`` matches, case
    ignored, in order: for each match, the sentence or line holding it, cut to at most
    ``width`` characters around the match. ``text`` is a str or a list of them (each
    item searched alone). Two matches in one passage give it once. ``flags`` are ``re``
    flags, as ``re.search`` takes them (models write ``search(p, context, re.I)``);
    case is ignored whatever they say."""
    import re

    if not isinstance(pattern, str):
        raise TypeError(f"search(): pattern must be a str, not {type(pattern).__name__}")
    if not pattern:
        raise ValueError("search(): pattern is empty; give the words to look for")
    if isinstance(flags, bool) or not isinstance(flags, int):
        raise TypeError(f"search(): flags must be re flags such as re.I, not {flags!r}")
    if isinstance(width, bool) or not isinstance(width, int) or width < 20:
        raise ValueError(f"search(): width must be an int of at least 20, not {width!r}")
    try:
        regex = re.compile(pattern, flags | re.IGNORECASE)
    except re.error as exc:
        raise ValueError(
            f"search(): {pattern[:80]!r} is not a valid regular expression ({exc}); "
            "to search for the text as written, use search(re.escape(text))"
        ) from None
    except ValueError as exc:  # flags that cannot go together (re.ASCII | re.LOCALE)
        raise ValueError(f"search(): {exc}") from None
    if isinstance(text, str):
        items = [text]
    elif isinstance(text, list | tuple):
        items = [item if isinstance(item, str) else str(item) for item in text]
    else:
        raise TypeError(f"search(): text must be a str or a list of str, not {type(text).__name__}")
    out: list[str] = []
    for item in items:
        _passages(item, regex, width, out)
        if len(out) >= MAX_SEARCH_HITS:
            break
    return out
