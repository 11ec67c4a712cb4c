"""Decoding-order statistics on hand-made histories, the JSONL reader, the heatmap and `rlvr viz order`."""

from __future__ import annotations

import json
import math

import pytest
import torch
from typer.testing import CliRunner

from rlvr.diffusion import generate
from rlvr.diffusion.order import (
    history_records,
    order_stats,
    plot_order_heatmap,
    read_generations,
    spearman,
    summarize,
)


def close(a: float, b: float) -> bool:
    return (math.isnan(a) and math.isnan(b)) or abs(a - b) < 1e-9


@pytest.mark.parametrize(
    "steps, num_steps, expected",
    [
        # (n_decoded, num_steps, tokens/step, spearman, out_of_order, sketch_first)
        ([0, 1, 2, 3], None, (4, 4, 1.0, 1.0, 0.0, 0.0)),  # left to right
        ([3, 2, 1, 0], None, (4, 4, 1.0, -1.0, 0.75, 1.0)),  # right to left: 3 of 4 precede a left one
        # two in parallel per step: steps ranks (1.5, 1.5, 3.5, 3.5) -> rho = 4 / sqrt(5 * 4)
        ([0, 0, 1, 1], None, (4, 2, 2.0, 4 / math.sqrt(20), 0.0, 0.0)),
        # position 1 never decoded; decoded (pos, step) = (0,2) (2,0) (3,1): rho = -1/2, 2 of 3 out of order
        ([2, -1, 0, 1], None, (3, 3, 1.0, -0.5, 2 / 3, 1.0)),
        ([0, 0, 0, 0], None, (4, 1, 4.0, math.nan, 0.0, 0.5)),  # one step: no rank correlation
        ([1, 2, 3, 4], 8, (4, 8, 0.5, 1.0, 0.0, 0.0)),  # num_steps given: the early quarter is steps 0, 1
        # sketch-first: the right half first, then the left half; rho = -22 / 42
        ([4, 5, 6, 7, 0, 1, 2, 3], None, (8, 8, 1.0, -22 / 42, 0.5, 1.0)),
    ],
)
def test_order_stats_exact_values(steps, num_steps, expected):
    st = order_stats(steps, num_steps)
    got = (st.n_decoded, st.num_steps, st.tokens_per_step, st.spearman, st.out_of_order, st.sketch_first)
    assert st.n_positions == len(steps)
    assert got[:2] == expected[:2]
    assert all(close(a, b) for a, b in zip(got[2:], expected[2:], strict=True)), got


def test_order_stats_accepts_tensors_and_summary_skips_nan():
    a = order_stats(torch.tensor([0, 1, 2, 3]))
    b = order_stats([0, 0, 0, 0])
    assert a.spearman == 1.0
    mean = summarize([a, b])
    assert mean["spearman"] == 1.0  # b's NaN is skipped
    assert mean["tokens_per_step"] == 2.5 and mean["sketch_first"] == 0.25
    assert math.isnan(spearman([1.0], [2.0]))  # one point: undefined
    with pytest.raises(ValueError, match="one-dimensional"):
        order_stats([[0, 1]])


def _write(path, rows):
    path.write_text("\n".join(r if isinstance(r, str) else json.dumps(r) for r in rows) + "\n")
    return path


def test_read_generations_names_the_bad_line(tmp_path):
    good = {"decode_step": [0, 1], "text": "ab"}
    cases = [
        ("{not json", "line 2"),
        (json.dumps({"tokens": [1, 2]}), "line 2: field 'decode_step' must be a non-empty list"),
        (json.dumps({"decode_step": [0, "1"]}), "line 2: field 'decode_step' must hold integers"),
        (json.dumps({"decode_step": [0, -2]}), "line 2: field 'decode_step' must hold integers >= -1"),
        (json.dumps({"decode_step": [0, 1], "tokens": [5]}), "line 2: field 'tokens' must be a list as long"),
        (json.dumps({"decode_step": [0, 3], "num_steps": 2}), "line 2: field 'num_steps'"),
    ]
    for bad, message in cases:
        path = _write(tmp_path / "g.jsonl", [good, bad])
        with pytest.raises(ValueError, match=message):
            read_generations(path)
    with pytest.raises(ValueError, match="no generations"):
        read_generations(_write(tmp_path / "empty.jsonl", [""]))


def test_history_records_round_trip_through_the_reader(tmp_path, tiny_dlm):
    ids = torch.tensor([[3, 4, 5], [6, 7, 8]])
    out = generate(tiny_dlm, ids, max_new_tokens=8, steps=4, alg="entropy")
    rows = history_records(out)
    assert [len(r["decode_step"]) for r in rows] == [8, 8] and rows[0]["num_steps"] == 4
    assert rows[1]["tokens"] == out.sequences[1, 3:].tolist()
    recs = read_generations(_write(tmp_path / "gen.jsonl", rows))
    assert [r.decode_step for r in recs] == out.history.decode_step.tolist()
    assert order_stats(recs[0].decode_step, recs[0].num_steps).tokens_per_step == 2.0


def test_heatmap_png(tmp_path):
    import matplotlib.image

    path = plot_order_heatmap([[0, 1, 2, 3], [3, 2, -1, 0], [0, 0]], tmp_path / "sub" / "o.png", labels="abc")
    img = matplotlib.image.imread(path)
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert img.ndim == 3 and img.shape[0] > 100 and img.shape[1] > 100


def test_cli_viz_order_table_png_and_errors(tmp_path):
    from rlvr.cli import app

    runner = CliRunner()
    gen = _write(
        tmp_path / "gen.jsonl", [{"decode_step": [0, 1, 2, 3], "id": "l2r"}, {"decode_step": [3, 2, 1, 0]}]
    )
    png = tmp_path / "order.png"
    res = runner.invoke(app, ["viz", "order", str(gen), "--out", str(png)])
    assert res.exit_code == 0, res.output
    assert "l2r" in res.output and "-1.000" in res.output and "0.750" in res.output
    assert png.read_bytes()[:4] == b"\x89PNG"

    bad = _write(tmp_path / "bad.jsonl", [{"decode_step": [0, 1]}, {"decode_step": "oops"}])
    res = runner.invoke(app, ["viz", "order", str(bad), "--out", str(tmp_path / "x.png")])
    assert res.exit_code == 2
    assert "line 2" in res.output and "decode_step" in res.output
    assert not (tmp_path / "x.png").exists()
    res = runner.invoke(app, ["viz", "order", str(tmp_path / "missing.jsonl")])
    assert res.exit_code == 2 and "missing.jsonl" in res.output
