"""Held-out evaluation: left padding, scoring through the sandbox, and the CLI's errors."""

from __future__ import annotations

import json
from types import SimpleNamespace

import pytest
import torch
from typer.testing import CliRunner

from rlvr.batch import pad_left
from rlvr.world.evaluate import evaluate, read_rows, world_verifier
from rlvr.world.tasks import generate_tasks, to_corpus_text, to_rl_row
from rlvr.world.tokenizer import train_bpe_tokenizer


def test_pad_left():
    ids, mask = pad_left([[5, 6, 7], [8]], pad_id=0)
    assert torch.equal(ids, torch.tensor([[5, 6, 7], [0, 0, 8]]))
    assert torch.equal(mask, torch.tensor([[1, 1, 1], [0, 0, 1]]))


class ScriptedModel:
    """Stands in for the sampler only: 'generates' a given text after each prompt (evaluate's logic is
    what is under test; the real sampler is exercised by the integration test)."""

    device = torch.device("cpu")

    def __init__(self, tokenizer, answers):
        self.tokenizer, self.answers, self.calls = tokenizer, answers, 0

    def eval(self):
        return self


def scripted_generate(model, input_ids, attention_mask, max_new_tokens, **kw):
    rows = []
    for r in range(input_ids.shape[0]):
        ans = model.tokenizer(model.answers[model.calls + r], add_special_tokens=False)["input_ids"]
        ans = (ans + [model.tokenizer.eos_token_id] * max_new_tokens)[:max_new_tokens]
        rows.append(torch.cat([input_ids[r], torch.tensor(ans)]))
    model.calls += input_ids.shape[0]
    assert attention_mask.shape == input_ids.shape and kw["steps"] == max_new_tokens
    return SimpleNamespace(sequences=torch.stack(rows))


@pytest.mark.docker
def test_evaluate_scores_reference_and_wrong_answers_in_the_sandbox(sandbox_url):
    tasks = generate_tasks(6, "heldout", seed=0)
    tok = train_bpe_tokenizer([to_corpus_text(t) for t in tasks] * 5, vocab_size=400)
    rows = [to_rl_row(t) for t in tasks]
    answers = [t.reference_solution for t in tasks[:4]] + ["def nope(:\n", "def g(x):\n    return None\n"]
    verifier = world_verifier([sandbox_url])
    res = evaluate(
        ScriptedModel(tok, answers), rows, verifier, max_new_tokens=40, batch_size=4, progress=False,
        generate_fn=scripted_generate,
    )
    assert (res["n"], res["passed"], res["pass@1"]) == (6, 4, 4 / 6)
    assert res["statuses"] == {"passed": 4, "runtime_error": 1, "wrong_answer": 1}
    assert [s["status"] for s in res["samples"]] == ["passed"] * 4 + ["runtime_error", "wrong_answer"]
    assert res["samples"][0]["completion"] == tasks[0].reference_solution


def test_read_rows_names_the_bad_line(tmp_path):
    f = tmp_path / "rows.jsonl"
    good = to_rl_row(generate_tasks(1, "train")[0])
    bad = {**good, "reward_model": {"style": "rule", "ground_truth": {"tests": []}}}
    f.write_text(json.dumps(good) + "\n" + json.dumps(bad) + "\n")
    try:
        read_rows(f)
    except ValueError as exc:
        assert "rows.jsonl:2" in str(exc)
    else:
        raise AssertionError("a row without tests was accepted")


def test_cli_make_data_and_eval_errors(tmp_path):
    from rlvr.cli import app

    runner = CliRunner()
    res = runner.invoke(
        app,
        [
            "world",
            "make-data",
            str(tmp_path / "d"),
            "--n-train",
            "50",
            "--n-heldout",
            "10",
            "--n-rl",
            "30",
            "--vocab-size",
            "400",
        ],
    )
    assert res.exit_code == 0, res.output
    rows = read_rows(tmp_path / "d" / "rl" / "heldout.jsonl")
    assert len(rows) == 10 and all(r["extra_info"]["split"] == "heldout" for r in rows)
    rl = read_rows(tmp_path / "d" / "rl" / "train.jsonl")  # RL prompts: combinations SFT never saw
    assert len(rl) == 30 and all(r["extra_info"]["split"] == "rl" for r in rl)
    # one task per (template, constants) combination, as in the held-out set
    assert len({r["extra_info"]["reference_solution"].split(":", 1)[1] for r in rl}) == 30
    assert len((tmp_path / "d" / "sft" / "train.jsonl").read_text().splitlines()) == 50
    assert (tmp_path / "d" / "rl" / "train.parquet").is_file()
    assert (tmp_path / "d" / "tokenizer" / "tokenizer.json").is_file()
    res = runner.invoke(
        app, ["world", "make-data", str(tmp_path / "e"), "--heldout-percent", "50", "--rl-percent", "50"]
    )
    assert res.exit_code == 2 and "--rl-percent" in res.output
    res = runner.invoke(app, ["world", "eval", "--model", str(tmp_path / "nomodel")])
    assert res.exit_code == 2 and "nomodel" in res.output
