"""The support check's verdicts on the embedded local model, on six hand-made cases.

    python benchmarks/bench_support_check.py

Each case is a question, an answer and the outputs a root saw: three right answers, and
three wrong ones of the kinds the check is for (another key's value, the name found in
hop one of a two-hop lookup, the wrong count read from a Counter). Prints, per case,
the checker's reply, the verdict (True: supported, False: sent back, None: no verdict)
and the seconds the call took; temperature 0, one engine. Exits 0 with a message when
the local model is not installed.
"""

from __future__ import annotations

import sys
import time

from rlmagent.evidence import parse_support, support_prompt

FILLER = "Some say the bridge was ancient in the morning, and others watched it. " * 40
NEEDLE = f"1 ['{FILLER}One of the special magic numbers for bitter-harvest is: 8017286. {FILLER}']"
HOPS = "['The red kettle belongs to Marta Quill.']\n['Marta Quill lives in Oslo.']"
COUNTS = "212 Counter({'praise': 120, 'complaint': 59, 'question': 33})"
MAGIC = "What is the special magic number for bitter-harvest?"
CITY = "In which city does the owner of the red kettle live?"
CASES = [
    (MAGIC, "8017286", NEEDLE, True),
    (MAGIC, "1234567", NEEDLE + "\n2 ['the magic number for bitter-hill is 1234567']", False),
    (CITY, "Marta Quill", HOPS, False),
    (CITY, "Oslo", HOPS, True),
    ("How many reviews are complaints?", "59", COUNTS, True),
    ("How many reviews are complaints?", "120", COUNTS, False),
]


def main() -> int:
    try:
        from rlmagent.engines import get_engine

        engine = get_engine("local:qwen2.5-coder-1.5b")
    except Exception as exc:  # the local extra is not installed
        print(f"skipped: the local model is not available ({exc})")
        return 0
    rows = []
    for question, answer, outputs, right in CASES:
        t0 = time.monotonic()
        reply = engine.generate(
            [{"role": "user", "content": support_prompt(question, answer, outputs)}],
            model=engine.model,
            temperature=0.0,
            max_tokens=40,
        ).content
        verdict = parse_support(reply, answer).supported
        rows.append((right, verdict))
        print(
            f"right={right!s:5} verdict={verdict!s:5} {time.monotonic() - t0:5.1f} s  {reply!r:.60}"
        )
    rejected_right = sum(r and v is False for r, v in rows)
    caught = sum(not r and v is False for r, v in rows)
    confirmed = sum(r and v is True for r, v in rows)
    print(
        f"right answers confirmed {confirmed}/3, sent back {rejected_right}/3; "
        f"wrong answers sent back {caught}/3"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
