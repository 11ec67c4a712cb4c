"""Synthetic verifiable Python tasks: the "tiny world" that a tiny diffusion LM can learn in minutes.

Each task asks for one small function. A *template* fixes the shape of the solution (e.g. "filter a
list by a threshold"); a task instance draws the template's *constants*, the function name and the
argument name, then derives hidden unit tests by running the reference solution on seeded inputs.

Splits: the held-out split owns whole (template, constants) combinations, chosen by a hash of the
combination, so no held-out task has a train twin that differs only in its names. A model that
solves held-out tasks must read the constants from the spec and write them into new code.

Everything is seeded and pure: ``generate_tasks(seed=0, ...)`` returns the same tasks every time.
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "TEMPLATES",
    "combo_key",
    "Task",
    "Template",
    "generate_tasks",
    "split_of",
    "to_rl_row",
    "to_sft_pair",
    "to_corpus_text",
    "DATA_SOURCE",
]

DATA_SOURCE = "tiny_world"

# Names are drawn from small closed sets so the BPE learns them as a few tokens each; combining a verb
# and a noun gives ~150 function names, enough that the model must copy the name from the prompt.
_VERBS = ["get", "make", "compute", "find", "build", "calc", "apply", "do", "eval", "pick", "take", "form"]
_NOUNS = [
    "value",
    "result",
    "total",
    "items",
    "score",
    "output",
    "answer",
    "data",
    "list",
    "number",
    "text",
    "word",
]
# One argument name per kind: the function name already has to be copied from the prompt, and a
# second copied name in the body doubled the tiny model's training time for little extra difficulty.
_INT_ARGS = ["x"]
_LIST_ARGS = ["xs"]
_STR_ARGS = ["s"]
_LETTERS = "abcdefghijklmnopqrstuvwxyz"


@dataclass(frozen=True)
class Template:
    """A family of tasks. ``constants(rng)`` draws the constants; ``body`` writes the return line."""

    name: str
    arg_kind: str  # "int", "list" or "str": picks the argument name set and the test inputs
    constants: Callable[[random.Random], dict[str, Any]]
    specs: tuple[str, ...]  # paraphrases; ``{arg}`` and the constants are substituted
    body: str  # the expression after ``return``; ``{arg}`` and constants substituted

    def render(self, text: str, arg: str, consts: dict[str, Any]) -> str:
        return text.format(arg=arg, **{k: (repr(v) if isinstance(v, str) else v) for k, v in consts.items()})


def _ints(**ranges: tuple[int, int]) -> Callable[[random.Random], dict[str, Any]]:
    return lambda rng: {k: rng.randint(lo, hi) for k, (lo, hi) in ranges.items()}


def _distinct_ab(rng: random.Random) -> dict[str, Any]:
    a, b = rng.sample(range(0, 20), 2)
    return {"a": a, "b": b, "c": rng.randint(0, 15)}


def _letters(n: int) -> Callable[[random.Random], dict[str, Any]]:
    return lambda rng: {"p": "".join(rng.choice(_LETTERS) for _ in range(n))}


_TEMPLATE_LIST = [
    Template(
        "add_const",
        "int",
        _ints(c=(1, 30)),
        ("return {arg} plus {c}.", "add {c} to {arg} and return the result."),
        "{arg} + {c}",
    ),
    Template(
        "mul_const",
        "int",
        _ints(c=(2, 12)),
        ("return {arg} multiplied by {c}.", "return {c} times {arg}."),
        "{arg} * {c}",
    ),
    Template(
        "affine",
        "int",
        _ints(a=(2, 9), b=(1, 20)),
        ("return {a} times {arg} plus {b}.", "multiply {arg} by {a}, then add {b}."),
        "{a} * {arg} + {b}",
    ),
    Template(
        "abs_diff",
        "int",
        _ints(c=(1, 30)),
        ("return the absolute difference between {arg} and {c}.", "return how far {arg} is from {c}."),
        "abs({arg} - {c})",
    ),
    Template(
        "max_with",
        "int",
        _ints(c=(-10, 20)),
        ("return the larger of {arg} and {c}.", "return {arg}, but at least {c}."),
        "max({arg}, {c})",
    ),
    Template(
        "choose",
        "int",
        _distinct_ab,
        (
            "return {a} if {arg} is greater than {c}, otherwise return {b}.",
            "if {arg} > {c} return {a}, else return {b}.",
        ),
        "{a} if {arg} > {c} else {b}",
    ),
    Template(
        "map_add",
        "list",
        _ints(c=(1, 20)),
        ("return a new list with {c} added to every element of {arg}.", "add {c} to each number in {arg}."),
        "[v + {c} for v in {arg}]",
    ),
    Template(
        "map_mul",
        "list",
        _ints(c=(2, 9)),
        (
            "return a new list with every element of {arg} multiplied by {c}.",
            "multiply each number in {arg} by {c}.",
        ),
        "[v * {c} for v in {arg}]",
    ),
    Template(
        "filter_gt",
        "list",
        _ints(c=(0, 20)),
        (
            "return the elements of {arg} that are greater than {c}.",
            "keep only the numbers in {arg} above {c}.",
        ),
        "[v for v in {arg} if v > {c}]",
    ),
    Template(
        "filter_mod",
        "list",
        _ints(c=(2, 7)),
        ("return the elements of {arg} that are divisible by {c}.", "keep the multiples of {c} from {arg}."),
        "[v for v in {arg} if v % {c} == 0]",
    ),
    Template(
        "count_gt",
        "list",
        _ints(c=(0, 20)),
        ("return how many elements of {arg} are greater than {c}.", "count the numbers in {arg} above {c}."),
        "sum(1 for v in {arg} if v > {c})",
    ),
    Template(
        "sum_mul",
        "list",
        _ints(c=(2, 9)),
        ("return the sum of {arg} multiplied by {c}.", "add up {arg} and multiply the total by {c}."),
        "sum({arg}) * {c}",
    ),
    Template(
        "repeat",
        "str",
        _ints(c=(2, 10)),
        ("return the string {arg} repeated {c} times.", "repeat {arg} {c} times and return it."),
        "{arg} * {c}",
    ),
    Template(
        "prefix",
        "str",
        _letters(2),
        ("return {arg} with {p} added at the front.", "put {p} before {arg} and return it."),
        "{p} + {arg}",
    ),
    Template(
        "suffix",
        "str",
        _letters(2),
        ("return {arg} with {p} added at the end.", "append {p} to {arg} and return it."),
        "{arg} + {p}",
    ),
    Template(
        "head",
        "str",
        _ints(c=(1, 6)),
        ("return the first {c} characters of {arg}.", "return {arg} cut to its first {c} characters."),
        "{arg}[:{c}]",
    ),
]
TEMPLATES: dict[str, Template] = {t.name: t for t in _TEMPLATE_LIST}


@dataclass
class Task:
    """One verifiable function-writing task (everything needed to prompt, check and teach)."""

    template: str
    constants: dict[str, Any]
    entry_point: str
    arg: str
    spec: str
    signature: str
    reference_solution: str
    tests: list[str]
    split: str
    index: int = 0
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def prompt_text(self) -> str:
        # The signature is shown as the code line that starts the answer, so writing it is an exact copy
        # (the same ``def`` anchor in prompt and answer): a tiny model learns that in minutes, and the
        # real work left is reading the constants out of the spec.
        return f"Write this Python function:\ndef {self.signature}:\nIt should {self.spec}"


def combo_key(template: str, constants: dict[str, Any]) -> str:
    return template + ":" + ",".join(f"{k}={constants[k]!r}" for k in sorted(constants))


def split_of(template: str, constants: dict[str, Any], heldout_percent: int = 20, rl_percent: int = 0) -> str:
    """The split that owns a (template, constants) combination: ``"heldout"`` for about
    ``heldout_percent``% of them, ``"rl"`` for the next ``rl_percent``%, ``"train"`` (pretraining and
    SFT) for the rest.

    A hash (not the RNG) decides, so the split of a combination never depends on generation order, and
    the held-out combinations do not change when ``rl_percent`` does.
    """
    if heldout_percent + rl_percent >= 100:
        raise ValueError(f"heldout_percent + rl_percent must be < 100, got {heldout_percent} + {rl_percent}")
    digest = hashlib.sha256(combo_key(template, constants).encode()).digest()
    bucket = int.from_bytes(digest[:4], "big") % 100
    if bucket < heldout_percent:
        return "heldout"
    return "rl" if bucket < heldout_percent + rl_percent else "train"


def _test_inputs(kind: str, rng: random.Random, n: int) -> list[Any]:
    if kind == "int":
        return [rng.randint(-20, 40) for _ in range(n)]
    if kind == "list":
        return [[rng.randint(-5, 30) for _ in range(rng.randint(0, 6))] for _ in range(n)]
    return ["".join(rng.choice(_LETTERS) for _ in range(rng.randint(0, 8))) for _ in range(n)]


def _make_task(tpl: Template, rng: random.Random, consts: dict[str, Any], split: str, n_tests: int) -> Task:
    arg = rng.choice({"int": _INT_ARGS, "list": _LIST_ARGS, "str": _STR_ARGS}[tpl.arg_kind])
    name = f"{rng.choice(_VERBS)}_{rng.choice(_NOUNS)}"
    spec = tpl.render(rng.choice(tpl.specs), arg, consts)
    signature = f"{name}({arg})"
    code = f"def {signature}:\n    return {tpl.render(tpl.body, arg, consts)}\n"
    namespace: dict[str, Any] = {}
    exec(code, namespace)  # our own template code: computes the expected outputs of the hidden tests
    fn = namespace[name]
    tests: list[str] = []
    for value in _test_inputs(tpl.arg_kind, rng, n_tests):
        tests.append(f"assert {name}({value!r}) == {fn(value)!r}")
    return Task(tpl.name, consts, name, arg, spec, signature, code, tests, split)


def generate_tasks(
    n: int,
    split: str,
    seed: int = 0,
    heldout_percent: int = 20,
    n_tests: int = 5,
    rl_percent: int = 0,
    templates: list[str] | None = None,
    unique_combos: bool | None = None,
) -> list[Task]:
    """``n`` tasks of ``split`` ("train", "rl" or "heldout"; see :func:`split_of`), deterministic in
    ``seed``.

    ``unique_combos`` (default: True for held-out) keeps one task per (template, constants), so
    the held-out score is not dominated by the few combinations of small templates. When fewer than
    ``n`` combinations exist, all of them are returned.
    """
    if split not in ("train", "rl", "heldout"):
        raise ValueError(f"split must be 'train', 'rl' or 'heldout', got {split!r}")
    if split == "rl" and rl_percent <= 0:
        raise ValueError("split 'rl' needs rl_percent > 0")
    names = list(TEMPLATES) if templates is None else templates
    unknown = [t for t in names if t not in TEMPLATES]
    if unknown:
        raise ValueError(f"unknown template(s) {unknown}; known: {sorted(TEMPLATES)}")
    unique = (split == "heldout") if unique_combos is None else unique_combos
    rng = random.Random(f"{seed}:{split}")
    tasks: list[Task] = []
    seen: set[str] = set()
    live = list(names)  # templates that may still yield a new task
    turn = 0
    while len(tasks) < n and live:
        # round robin over templates keeps every template represented even in a small held-out set,
        # where uniform draws would be dominated by the templates with the most combinations
        tpl = TEMPLATES[live[turn % len(live)]]
        turn += 1
        for _ in range(500):
            consts = tpl.constants(rng)
            key = combo_key(tpl.name, consts)
            if split_of(tpl.name, consts, heldout_percent, rl_percent) == split and not (unique and key in seen):
                break
        else:  # this template has no (new) combination left in this split
            live.remove(tpl.name)
            continue
        seen.add(key)
        task = _make_task(tpl, rng, consts, split, n_tests)
        task.index = len(tasks)
        tasks.append(task)
    return tasks


# ---------------------------------------------------------------------------------- output schemas
def to_rl_row(task: Task) -> dict[str, Any]:
    """The RL prompt schema shared with the rewards team (verl-style rows)."""
    return {
        "prompt": [{"role": "user", "content": task.prompt_text}],
        "data_source": DATA_SOURCE,
        "ability": "code",
        "reward_model": {
            "style": "rule",
            "ground_truth": {
                "language": "python",
                "tests": [{"type": "assert", "code": t} for t in task.tests],
                "entry_point": task.entry_point,
            },
        },
        "extra_info": {
            "reference_solution": task.reference_solution,
            "split": task.split,
            "index": task.index,
            "template": task.template,
        },
    }


def to_sft_pair(task: Task) -> dict[str, Any]:
    """A chat prompt and the bare code response (no fences: fewer tokens for a tiny model)."""
    return {"prompt": [{"role": "user", "content": task.prompt_text}], "response": task.reference_solution}


def to_corpus_text(task: Task, n_tests: int = 2) -> str:
    """A pretraining document: a comment with the signature and spec, the solution, then a few tests.

    The comment states what the code does, so pretraining already practises the skill SFT needs
    (turning a spec's constants into code); the asserts tie names and values to behaviour.
    """
    head = f"# {task.signature}: {task.spec}\n"
    return head + task.reference_solution + "\n" + "\n".join(task.tests[:n_tests]) + "\n"
