"""The support check of a run's answers: before a FINAL is accepted, one sub-call is
shown the question, the answer and the outputs the model saw (:mod:`rlmagent.evidence`),
and a rejected answer goes back to the model, at most :data:`MAX_ANSWER_CHECKS` times;
after that it stands, with ``answer_checked=False`` on the result. And the typed-answer
review (:func:`typed_review`): a FINAL without the output type goes back corrected."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import replace

from rlmagent import evidence, prompts
from rlmagent.settings import MAX_ANSWER_CHECKS
from rlmagent.turns import Outcome
from rlmagent.typed import TypedAnswer

Query = Callable[[str], Awaitable[str]]
Notify = Callable[[str], None]


class AnswerChecker:
    """Reviews one run's accepted answers; ``checked`` is the last verdict (None: none)."""

    def __init__(self, query: Query, question: str, notify: Notify) -> None:
        self.query = query
        self.question = question
        self.notify = notify
        self.checked: bool | None = None
        self.rejected = 0

    async def review(self, outcome: Outcome, outputs: str) -> Outcome:
        """``outcome`` (a final answer) as it stands, or sent back with the reason."""
        assert outcome.final is not None
        prompt = evidence.support_prompt(self.question, outcome.final, outputs)
        try:
            verdict = evidence.parse_support(await self.query(prompt), outcome.final)
        except Exception as exc:  # a failed check never costs the answer
            self.notify(f"answer check failed: {exc}")
            return outcome
        if verdict.supported is not False or self.rejected >= MAX_ANSWER_CHECKS:
            self.checked = verdict.supported
            return outcome
        self.rejected += 1
        self.notify(f"answer check: not supported ({verdict.reason})")
        observation = prompts.render(
            "unsupported",
            value=outcome.final,
            reason=verdict.reason or "the outputs do not show it",
            question=self.question,
        )
        return Outcome(
            replace(outcome.state, code_has_run=True, reminded=False, last_final=None),
            observation=observation,
            candidate=outcome.candidate,
        )


def typed_review(typed: TypedAnswer, outcome: Outcome, question: str) -> Outcome:
    """``outcome`` if its final answer has the output type, else the correction: no
    final, and the correction (with the question again) as the observation."""
    assert outcome.final is not None
    correction = typed.review(outcome.final)
    if correction is None:
        return outcome
    return replace(
        outcome,
        final=None,
        stop_reason=None,
        observation=correction + "\n\nQuestion: " + question,
        state=replace(outcome.state, last_final=None),
    )
