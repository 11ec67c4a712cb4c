"""Task generator: determinism, split disjointness, schema, and that the tests really check solutions."""

from __future__ import annotations

import pytest
from rlvr.rewards import Sample, score_sync

from rlvr.world.evaluate import world_verifier
from rlvr.world.tasks import (
    TEMPLATES,
    combo_key,
    generate_tasks,
    split_of,
    to_corpus_text,
    to_rl_row,
    to_sft_pair,
)


def test_same_seed_same_tasks_and_other_seed_differs():
    a = [to_rl_row(t) for t in generate_tasks(300, "train", seed=7)]
    b = [to_rl_row(t) for t in generate_tasks(300, "train", seed=7)]
    c = [to_rl_row(t) for t in generate_tasks(300, "train", seed=8)]
    assert a == b
    assert a != c
    assert [r["extra_info"]["index"] for r in a] == list(range(300))


def test_splits_share_no_template_constants_combination():
    train = generate_tasks(3000, "train", seed=0)
    held = generate_tasks(200, "heldout", seed=0)
    train_keys = {combo_key(t.template, t.constants) for t in train}
    held_keys = [combo_key(t.template, t.constants) for t in held]
    assert len(held) == 200
    assert train_keys.isdisjoint(held_keys)
    assert len(set(held_keys)) == len(held_keys)  # held-out has one task per combination
    assert all(split_of(t.template, t.constants) == "heldout" for t in held)
    assert all(split_of(t.template, t.constants) == "train" for t in train)
    assert {t.template for t in held} == set(TEMPLATES)  # round robin covers every template


def test_rl_split_is_disjoint_from_sft_and_heldout_and_keeps_heldout_fixed():
    split = dict(seed=0, heldout_percent=20, rl_percent=20)
    train = generate_tasks(2000, "train", **split)
    rl = generate_tasks(2000, "rl", **split)
    held = generate_tasks(200, "heldout", **split)
    keys = lambda ts: {combo_key(t.template, t.constants) for t in ts}  # noqa: E731
    assert keys(train).isdisjoint(keys(rl)) and keys(rl).isdisjoint(keys(held))
    assert keys(train).isdisjoint(keys(held))
    assert all(split_of(t.template, t.constants, 20, 20) == "rl" for t in rl)
    assert {t.template for t in rl} == set(TEMPLATES)
    # reserving RL combinations takes them from train only: the held-out set is the same tasks
    assert [to_rl_row(t) for t in held] == [to_rl_row(t) for t in generate_tasks(200, "heldout", seed=0)]
    with pytest.raises(ValueError, match="rl_percent > 0"):
        generate_tasks(1, "rl", seed=0)
    with pytest.raises(ValueError, match="must be < 100"):
        split_of("add_const", {"c": 1}, heldout_percent=50, rl_percent=50)


def test_split_is_a_pure_function_of_the_combination():
    assert split_of("add_const", {"c": 5}) == split_of("add_const", {"c": 5})
    sides = {split_of("add_const", {"c": c}, heldout_percent=50) for c in range(40)}
    assert sides == {"train", "heldout"}


def test_rl_row_schema():
    t = generate_tasks(1, "train", seed=0, templates=["add_const"])[0]
    row = to_rl_row(t)
    assert set(row) == {"prompt", "data_source", "ability", "reward_model", "extra_info"}
    assert row["prompt"] == [{"role": "user", "content": t.prompt_text}]
    assert row["data_source"] == "tiny_world" and row["ability"] == "code"
    assert row["reward_model"] == {
        "style": "rule",
        "ground_truth": {
            "language": "python",
            "tests": [{"type": "assert", "code": s} for s in t.tests],
            "entry_point": t.entry_point,
        },
    }
    assert row["extra_info"] == {
        "reference_solution": t.reference_solution,
        "split": "train",
        "index": 0,
        "template": "add_const",
    }
    c = t.constants["c"]
    assert t.reference_solution == f"def {t.entry_point}({t.arg}):\n    return {t.arg} + {c}\n"
    assert t.prompt_text.startswith(f"Write this Python function:\ndef {t.entry_point}({t.arg}):\nIt should ")
    assert str(c) in t.prompt_text
    assert len(t.tests) == 5 and all(s.startswith(f"assert {t.entry_point}(") for s in t.tests)
    assert to_sft_pair(t) == {"prompt": row["prompt"], "response": t.reference_solution}
    assert (
        to_corpus_text(t)
        == f"# {t.signature}: {t.spec}\n{t.reference_solution}\n{t.tests[0]}\n{t.tests[1]}\n"
    )


def test_unknown_template_and_split_are_named():
    with pytest.raises(ValueError, match="nope"):
        generate_tasks(1, "train", templates=["nope"])
    with pytest.raises(ValueError, match="'dev'"):
        generate_tasks(1, "dev")


def _score(sandbox_url, pairs):
    """Reward and reason of each (solution, task) pair, scored as the world scores: in the sandbox."""
    verifier = world_verifier([sandbox_url])
    out = score_sync(verifier, [Sample(to_rl_row(t), code) for code, t in pairs], deadline_s=120)
    return [(r.reward, r.reason) for r in out]


@pytest.mark.docker
def test_reference_solutions_pass_and_wrong_solutions_fail(sandbox_url):
    tasks = [
        generate_tasks(2, split, seed=3, templates=[name])[0]
        for name in TEMPLATES
        for split in ("train", "heldout")
    ]
    assert _score(sandbox_url, [(t.reference_solution, t) for t in tasks]) == [(1.0, None)] * len(tasks)
    # a solution for the same template with another constant must fail its tests
    t = generate_tasks(1, "train", seed=0, templates=["mul_const"])[0]
    wrong = t.reference_solution.replace(f"* {t.constants['c']}", f"* {t.constants['c'] + 1}")
    assert wrong != t.reference_solution
    assert _score(sandbox_url, [(wrong, t), ("def f(:\n", t)]) == [(0.0, "wrong_answer"), (0.0, "runtime_error")]
