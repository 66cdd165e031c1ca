"""``codeqa``: four-option questions about a generated Python repository.

The context is a repository of modules (``# ===== File: <path> =====`` before each
file). Every function takes an ``int`` and returns an ``int``, either by arithmetic or
by calling functions defined earlier in its own module or in modules it imports, so the
call graph is a DAG and every call has one exact value. Function names repeat across
modules (``core/frame_cache.scale_value`` and ``io/token_route.scale_value``), which
makes grepping for a name misleading.

Two question kinds alternate:

- ``returns``: what does ``pkg.sub.module.function(k)`` return? The wrong options
  include the value of a same-named function in another module and of neighbouring
  arguments.
- ``defined``: in which file is a uniquely named function defined? The wrong options are
  files that import and call it and a file defining a near-identical name.

Scored by accuracy (the letter of the chosen option).
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field

from rlmagent.bench.items import BenchItem, item_id, item_rng, target_chars
from rlmagent.bench.text import name as invented_name
from rlmagent.bench.text import words

TASK = "codeqa"
DESCRIPTION = "Generated Python repository: four-option questions on calls and definitions"
VERBS = words(
    "load parse build scale merge split render encode decode fetch store clean index "
    "score pack unpack format resolve compute check"
)
NOUNS = words(
    "value frame cache header record token buffer batch vector config session packet "
    "weight offset layer route query chunk label stream"
)
MODULE_WORDS = words(
    "alpha anchor atlas beacon bridge canvas cipher cobalt delta ember falcon garnet "
    "harbor helix island jasper kernel lumen matrix meteor nebula onyx orbit prism "
    "quartz raven signal summit tensor tundra vertex willow zenith"
)
SUBPACKAGES = ("core", "io", "render", "utils", "net", "models", "data", "cli")
KINDS = ("returns", "defined")
MAX_LEVEL = 4
MIN_MODULES = 6
FUNCTION_CHARS = 230
"""About how long a generated function is (used to size modules)."""
FILE_MARK = "# ===== File: {path} ====="
LETTERS = "ABCD"


@dataclass
class Function:
    """One generated function: its source and its value as a Python callable."""

    name: str
    source: str
    fn: Callable[[int], int]
    level: int


@dataclass
class Module:
    """One generated module."""

    package: str
    sub: str
    base: str
    imports: set[str] = field(default_factory=set)
    functions: list[Function] = field(default_factory=list)

    @property
    def dotted(self) -> str:
        return f"{self.package}.{self.sub}.{self.base}"

    @property
    def path(self) -> str:
        return f"{self.package}/{self.sub}/{self.base}.py"

    def render(self) -> str:
        title = self.base.replace("_", " ").title()
        head = f'"""{title} helpers of the {self.sub} layer."""\n'
        if self.imports:
            head += "\n" + "\n".join(sorted(self.imports)) + "\n"
        return head + "\n\n" + "\n\n\n".join(f.source for f in self.functions) + "\n"


def _source(name: str, doc: str, lines: list[str]) -> str:
    body = "\n".join(f"    {line}" for line in lines)
    return f'def {name}(x: int) -> int:\n    """{doc}"""\n{body}'


def _leaf(rng: random.Random, name: str, doc: str) -> Function:
    a, b = rng.randint(2, 9), rng.randint(0, 20)
    form = rng.randrange(3)
    if form == 0:
        return Function(name, _source(name, doc, [f"return x * {a} + {b}"]), lambda x: x * a + b, 0)
    if form == 1:
        lines = [f"y = x + {b}", f"return y * {a}"]
        return Function(name, _source(name, doc, lines), lambda x: (x + b) * a, 0)
    return Function(name, _source(name, doc, [f"return {b} - x"]), lambda x: b - x, 0)


def _caller(
    rng: random.Random, name: str, doc: str, callees: list[tuple[str, Function]]
) -> Function:
    """A function calling one or two ``(call expression, callee)`` pairs."""
    c, d = rng.randint(1, 9), rng.randint(0, 30)
    level = 1 + max(f.level for _, f in callees)
    if len(callees) == 1:
        ((expr, g),) = callees
        if rng.random() < 0.5:
            line = f"return {expr}(x + {c}) + {d}"
            return Function(name, _source(name, doc, [line]), lambda x: g.fn(x + c) + d, level)
        line = f"return {expr}(x - {c}) - {d}"
        return Function(name, _source(name, doc, [line]), lambda x: g.fn(x - c) - d, level)
    (expr1, g1), (expr2, g2) = callees
    lines = [f"y = {expr1}(x)", f"return y + {expr2}({c})"]
    return Function(name, _source(name, doc, lines), lambda x: g1.fn(x) + g2.fn(c), level)


class _Repo:
    """Builds modules one by one; functions call earlier functions only (a DAG)."""

    def __init__(self, rng: random.Random, budget: int) -> None:
        self.rng = rng
        # small repositories get small modules, so that there are at least six
        self.most = max(3, min(24, budget // (MIN_MODULES * FUNCTION_CHARS)))
        self.package = invented_name(rng).lower()
        self.modules: list[Module] = []
        self.bases: set[str] = set()
        self.chars = 0

    def _base(self) -> str:
        rng = self.rng
        base = f"{rng.choice(MODULE_WORDS)}_{rng.choice(MODULE_WORDS)}"
        while base in self.bases:
            base = f"{rng.choice(MODULE_WORDS)}_{rng.choice(MODULE_WORDS)}_{rng.randint(2, 99)}"
        self.bases.add(base)
        return base

    def _doc(self) -> str:
        rng = self.rng
        other = f"{rng.choice(VERBS)}_{rng.choice(NOUNS)}"
        return f"{rng.choice(VERBS).capitalize()} the {rng.choice(NOUNS)}; see also {other}."

    def add_module(self, budget: int) -> Module:
        """Add a module; it stops early once the repository reaches ``budget`` characters."""
        rng = self.rng
        module = Module(self.package, rng.choice(SUBPACKAGES), self._base())
        sources = [m for m in self.modules[-40:] if m.functions]
        imported = rng.sample(sources, min(len(sources), rng.randint(0, 2)))
        count = rng.randint(max(3, self.most // 2), self.most)
        names = rng.sample([f"{v}_{n}" for v in VERBS for n in NOUNS], count)
        start = self.chars
        self.chars += 2 * len(module.path) + 80  # the file mark and the module's header
        for fname in names:
            if self.chars >= budget and module.functions:
                break
            choices: list[tuple[str, Function]] = [(f.name, f) for f in module.functions]
            for other in imported:
                choices += [(f"{other.base}.{f.name}", f) for f in other.functions]
            choices = [(e, f) for e, f in choices if f.level < MAX_LEVEL]
            if choices and rng.random() < 0.7:
                callees = rng.sample(choices, min(len(choices), rng.choice((1, 1, 2))))
                function = _caller(rng, fname, self._doc(), callees)
                for expr, _ in callees:
                    if "." in expr:
                        base = expr.split(".")[0]
                        owner = next(m for m in imported if m.base == base)
                        module.imports.add(f"from {owner.package}.{owner.sub} import {base}")
            else:
                function = _leaf(rng, fname, self._doc())
            module.functions.append(function)
            self.chars += len(function.source) + 3
        self.chars = start + len(self._block(module)) + 2  # exact, now the module is done
        self.modules.append(module)
        return module

    @staticmethod
    def _block(module: Module) -> str:
        return FILE_MARK.format(path=module.path) + "\n" + module.render()

    def render(self) -> str:
        return "\n\n".join(self._block(m) for m in self.modules)


def _options(rng: random.Random, gold: str, wrong: list[str]) -> tuple[list[str], str]:
    """Four options (gold and three distinct wrong ones, shuffled) and the gold letter."""
    distinct: list[str] = []
    for w in wrong:
        if w != gold and w not in distinct:
            distinct.append(w)
    options = [gold, *distinct[:3]]
    if len(options) < 4:
        raise ValueError("not enough distinct wrong options")
    rng.shuffle(options)
    return options, LETTERS[options.index(gold)]


def _returns(rng: random.Random, repo: _Repo) -> tuple[str, list[str], dict[str, object]]:
    deep = [(m, f) for m in repo.modules for f in m.functions if f.level >= 2]
    module, function = rng.choice(deep or [(m, f) for m in repo.modules for f in m.functions])
    k = rng.randint(1, 9)
    gold = function.fn(k)
    twins = [f.fn(k) for m in repo.modules for f in m.functions if f.name == function.name]
    rng.shuffle(twins)
    near = [function.fn(k + 1), function.fn(k - 1), gold + rng.randint(1, 9), gold - 10, gold + 10]
    wrong = [str(v) for v in (twins[:1] + near)]
    options, letter = _options(rng, str(gold), wrong)
    call = f"{module.dotted}.{function.name}({k})"
    meta = {"call": call, "module": module.path, "function": function.name, "argument": k}
    return f"In this repository, what does `{call}` return?", options, {"letter": letter, **meta}


def _defined(rng: random.Random, repo: _Repo) -> tuple[str, list[str], dict[str, object]]:
    verb, noun, noun2 = rng.choice(VERBS), *rng.sample(NOUNS, 2)
    unique = f"{verb}_{noun}_{noun2}"
    home_index = rng.randrange(len(repo.modules) - 3)
    home = repo.modules[home_index]
    planted = _leaf(rng, unique, f"{verb.capitalize()} the {noun} {noun2}.")
    home.functions.insert(rng.randrange(len(home.functions) + 1), planted)
    later = list(range(home_index + 1, len(repo.modules)))
    caller_modules = [repo.modules[i] for i in rng.sample(later, 2)]
    for caller in caller_modules:
        other_verb = rng.choice([v for v in VERBS if v != verb])
        fname = f"{other_verb}_{noun}_{noun2}_via_{home.base}"
        function = _caller(
            rng, fname, f"Use {unique} from {home.base}.", [(f"{home.base}.{unique}", planted)]
        )
        caller.functions.append(function)
        caller.imports.add(f"from {home.package}.{home.sub} import {home.base}")
    others = [m for m in repo.modules if m is not home and m not in caller_modules]
    twin_home = rng.choice(others)
    twin = _leaf(rng, f"{verb}_{noun2}_{noun}", f"{verb.capitalize()} the {noun2} {noun}.")
    twin_home.functions.append(twin)
    wrong = [m.path for m in caller_modules] + [twin_home.path]
    options, letter = _options(rng, home.path, wrong)
    meta = {"function": unique, "module": home.path, "near_name": twin.name}
    return f"In which file is the function `{unique}` defined?", options, {"letter": letter, **meta}


def generate(tokens: int, seed: int, index: int, *, kind: str | None = None) -> BenchItem:
    """One ``codeqa`` item; the question kind alternates with ``index``."""
    rng = item_rng(TASK, tokens, seed, index)
    kind = kind or KINDS[index % len(KINDS)]
    budget = target_chars(tokens) - (600 if kind == "defined" else 0)  # room to plant
    repo = _Repo(rng, budget)
    while repo.chars < budget or len(repo.modules) < MIN_MODULES:
        repo.add_module(budget)
    if kind == "returns":
        question, options, meta = _returns(rng, repo)
    elif kind == "defined":
        question, options, meta = _defined(rng, repo)
    else:
        raise ValueError(f"unknown codeqa question kind {kind!r}")
    listed = "\n".join(
        f"{letter}) {option}" for letter, option in zip(LETTERS, options, strict=True)
    )
    question += f"\n{listed}\nAnswer with the letter of the correct option (A, B, C or D) only."
    return BenchItem(
        task=TASK,
        item_id=item_id(TASK, tokens, seed, index),
        tokens=tokens,
        seed=seed,
        index=index,
        context=repo.render(),
        question=question,
        gold=meta.pop("letter"),
        scoring="choice",
        meta={"kind": kind, "options": options, **meta},
    )
