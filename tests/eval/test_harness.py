"""The eval harness: config checks, scoring bookkeeping, and both model kinds end to end on tiny models.

The tiny models are random, so their completions contain no fenced code: every sample must come back
``no_code`` without a single sandbox request, and pass@k must be exactly 0.
"""

from __future__ import annotations

import json

import pytest
import torch
from rlvr.rewards import get
from typer.testing import CliRunner

from rlvr.config import ConfigError, load_config
from rlvr.data.schema import write_rows
from rlvr.eval.harness import EvalConfig, _Completion, run_eval, score_problems
from tests.rewards.helpers import ADD_OK, ADD_TESTS, FakeClient, code_row, fenced, response

ROWS = [code_row(ADD_TESTS, index=0, reference_solution=ADD_OK),
        code_row(["assert add(0, 0) == 0"], prompt="Add again.", index=1, reference_solution=ADD_OK)]


def test_config_checks():
    with pytest.raises(ConfigError, match=r"ks=\[1, 5\]: every k must satisfy 1 <= k <= n \(n=2\)"):
        load_config(EvalConfig, None, ["n=2", "ks=[1,5]", "model.kind=reference"])
    with pytest.raises(ConfigError, match="model.path is required for model.kind='hf'"):
        load_config(EvalConfig, None, ["model.kind=hf"])
    cfg = load_config(EvalConfig, None, ["model.kind=reference", "sampler.steps=4"])
    assert cfg.sampler.steps == 4


def test_score_problems_counts_and_passk():
    client = FakeClient(lambda req: response(["accepted"] * len(req["tests"]) if "a + b" in req["code"]
                                             else ["wrong_answer"] * len(req["tests"])))
    good, bad = _Completion(fenced(ADD_OK)), _Completion(fenced("def add(a, b):\n    return 0\n"))
    recs = score_problems(ROWS, [[good, bad, bad, good], [bad, bad, bad, _Completion("prose", truncated=True)]],
                          get("code_tests", client=client), ks=[1, 2])
    assert [(r["id"], r["n"], r["c"]) for r in recs] == [("unit:0", 4, 2), ("unit:1", 4, 0)]
    assert recs[0]["pass@1"] == 0.5 and recs[0]["pass@2"] == pytest.approx(1 - 1 / 6)
    assert recs[1]["pass@2"] == 0.0
    assert [s["reason"] for s in recs[1]["samples"]] == ["wrong_answer"] * 3 + ["no_code"]
    assert recs[1]["samples"][3]["truncated"] is True


def test_reference_kind_through_cli(tmp_path, monkeypatch):
    data = tmp_path / "rows.jsonl"
    write_rows(data, ROWS)
    client = FakeClient(lambda req: response(["accepted"] * len(req["tests"])))
    import rlvr.eval.harness as harness

    real_run = harness.run_eval
    monkeypatch.setattr(harness, "run_eval", lambda cfg, progress=None: real_run(
        cfg, verifier=get("code_tests", client=client), progress=progress))
    from rlvr.cli import app

    res = CliRunner().invoke(app, ["eval", "run", f"dataset={data}", "model.kind=reference", f"out_dir={tmp_path}/ev"])
    assert res.exit_code == 0, res.output
    assert "pass@1" in res.output and "1.0000" in res.output
    summary = json.loads((tmp_path / "ev" / "summary.json").read_text())
    assert summary["pass@1"] == 1.0 and summary["problems"] == 2 and summary["outcomes"] == {"passed": 2}
    assert client.batches[0][0]["code"] == ADD_OK + "\n"
    res = CliRunner().invoke(app, ["eval", "run", "dataset=/nope.jsonl", "model.kind=reference"])
    assert res.exit_code == 2 and "does not exist" in res.output


@pytest.fixture(scope="module")
def tiny_checkpoints(tmp_path_factory):
    """A diffusion checkpoint and an autoregressive one, sharing a tiny BPE tokenizer."""
    from rlvr.diffusion import DiffusionLM
    from rlvr.world.model import build_tiny_qwen2
    from rlvr.world.tokenizer import train_bpe_tokenizer

    root = tmp_path_factory.mktemp("ckpt")
    tok = train_bpe_tokenizer(["def add(a, b):\n    return a + b\n", "Write add(a, b). Add again."] * 20, vocab_size=300)
    sizes = dict(hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=2,
                 num_key_value_heads=1, max_position_embeddings=256)
    ar = build_tiny_qwen2(tok, seed=1, **sizes)
    ar.save_pretrained(root / "ar")
    tok.save_pretrained(root / "ar")
    DiffusionLM.from_pretrained(build_tiny_qwen2(tok, seed=2, **sizes), tokenizer=tok).save_pretrained(root / "dlm")
    return root


@pytest.mark.parametrize("kind", ["diffusion", "hf"])
def test_tiny_models_end_to_end(kind, tiny_checkpoints, tmp_path):
    torch.set_num_threads(1)
    data = tmp_path / "rows.jsonl"
    write_rows(data, ROWS)
    client = FakeClient(lambda req: pytest.fail("random models write no fenced code: no sandbox call expected"))
    path = tiny_checkpoints / ("dlm" if kind == "diffusion" else "ar")
    cfg = load_config(EvalConfig, None, [
        f"dataset={data}", f"model.kind={kind}", f"model.path={path}", "model.device=cpu", "n=3", "ks=[1,3]",
        "batch_size=6", "sampler.max_new_tokens=8", "sampler.steps=8", "hf.max_new_tokens=8", "hf.temperature=1.0",
        f"out_dir={tmp_path}/ev"])
    summary = run_eval(cfg, verifier=get("code_tests", client=client))
    assert (summary["problems"], summary["samples"], summary["pass@1"], summary["pass@3"]) == (2, 6, 0.0, 0.0)
    assert summary["outcomes"] == {"no_code": 6}
    lines = (tmp_path / "ev" / "problems.jsonl").read_text().splitlines()
    assert [json.loads(x)["id"] for x in lines] == ["unit:0", "unit:1"]
    assert all(len(json.loads(x)["samples"]) == 3 for x in lines)
    assert (tmp_path / "ev" / "passk.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_eval_run_checks_before_any_work(tmp_path):
    """A missing model folder or dataset is one line naming its key, before a sandbox or model starts."""
    import yaml
    from typer.testing import CliRunner

    from rlvr.cli import app

    res = CliRunner().invoke(app, ["eval", "run", f"model.path={tmp_path / 'm'}", f"dataset={tmp_path / 'd.jsonl'}"])
    assert res.exit_code == 2
    assert f"model.path='{tmp_path / 'm'}': does not exist" in res.stderr
    assert f"dataset='{tmp_path / 'd.jsonl'}': does not exist" in res.stderr
    res = CliRunner().invoke(app, ["eval", "run", "--check", "model.kind=reference", "n=2", "ks=[1,2]"])
    assert res.exit_code == 0, res.output
    assert yaml.safe_load(res.stdout)["ks"] == [1, 2]


def test_completions_kind_names_what_is_wrong(tmp_path):
    from rlvr.cli import app
    from rlvr.eval.harness import GENERATORS

    data = tmp_path / "rows.jsonl"
    write_rows(data, ROWS)
    bad = tmp_path / "c.jsonl"
    cases = [
        ('{"task_id": "unit:0", "completion": "x"}\nnot json\n', "row 2: not JSON"),
        ('{"task_id": "unit:0"}\n', "row 1: field 'completion' is missing"),
        ('{"task_id": "nope", "completion": "x"}\n', "1 task_id(s) not in dataset"),
        ('{"task_id": "unit:0", "completion": "x"}\n', "task_id 'unit:1' has 0 completion(s), n=1 asked"),
    ]
    for text, message in cases:
        bad.write_text(text)
        res = CliRunner().invoke(app, ["eval", "run", f"dataset={data}", "model.kind=completions", f"model.path={bad}",
                                       f"out_dir={tmp_path}/ev", "sandbox_urls=[http://127.0.0.1:9]"])
        assert res.exit_code == 2 and message in res.output, (message, res.output)
    res = CliRunner().invoke(app, ["eval", "run", f"dataset={data}", "model.kind=completions",
                                   f"model.path={tmp_path}/missing.jsonl", "sandbox_urls=[http://127.0.0.1:9]"])
    assert res.exit_code == 2 and "model.path" in res.output and "is not a file of completions" in res.output
    helptext = CliRunner().invoke(app, ["eval", "run", "--help"], env={"COLUMNS": "200"}).output
    assert all(f"{kind}:" in helptext for kind in GENERATORS) and set(GENERATORS) == {
        "diffusion", "hf", "reference", "completions"}
