"""benchmarks/rl_learning.py's report on hand-made runs: the issue's JSON entries, the forgetting_guard alias,
pooled gains and the main-minus-arm ablation rows, all computed from the evaluation files."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _run(root: Path, arm: str, seed: int, before: list[tuple[int, int]], after: list[tuple[int, int]],
         steps: list[tuple[float, float]] | None = None) -> None:
    """``steps``: (seconds, training reward) per GRPO step for metrics.jsonl (default 4 steps of 1.5 s)."""
    out = root / "rl_learning" / f"{arm}_s{seed}"
    out.mkdir(parents=True)
    for which, counts in (("before", before), ("after", after)):
        sets = {name: {"tasks": [{"c": c, "n": n} for c, n in counts]} for name in ("rl_heldout", "transfer")}
        (out / f"eval_{which}.json").write_text(json.dumps({"sets": sets}))

    def entry(counts):
        return {"pass@1": sum(c / n for c, n in counts) / len(counts)}

    gain = {"mean": entry(after)["pass@1"] - entry(before)["pass@1"], "low": -1.0, "high": 1.0}
    ev = {name: {"tasks": len(after), "samples_per_task": 4, "before": entry(before), "after": entry(after),
                 "gain_pass@1": gain} for name in ("rl_heldout", "transfer")}
    (out / "summary.json").write_text(json.dumps({"eval": ev}))
    steps = steps or [(1.5, 0.0)] * 4
    (out / "metrics.jsonl").write_text(
        "".join(json.dumps({"step": i + 1, "time/step": t, "reward/mean": r}) + "\n" for i, (t, r) in enumerate(steps)))


def test_report_from_runs(tmp_path):
    before = [(1, 4), (2, 4), (0, 4)]
    _run(tmp_path, "main", 0, before, [(3, 4), (2, 4), (1, 4)])
    _run(tmp_path, "main", 1, before, [(3, 4), (4, 4), (1, 4)])
    # no change: gain 0 exactly; 4 steps of 3 s (twice main's seconds), training reward 0.2 then 0.6
    _run(tmp_path, "paper_recipe", 0, before, [(1, 4), (2, 4), (0, 4)], [(3.0, 0.2)] * 3 + [(3.0, 0.6)])
    out = tmp_path / "r.json"
    md = tmp_path / "B.md"
    md.write_text("x\n<!-- rl_learning:begin (benchmarks/rl_learning.py writes this) -->\nold\n<!-- rl_learning:end -->\ny\n")
    proc = subprocess.run([sys.executable, "benchmarks/rl_learning.py", "--run", str(tmp_path), "--report-only",
                           "--arms", "main", "--arms", "paper_recipe", "--out-json", str(out), "--figure",
                           str(tmp_path / "f.png"), "--benchmarks-md", str(md)], cwd=ROOT, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    r = json.loads(out.read_text())
    assert [(e["seed"], e["split"]) for e in r["arms"]["main"]] == [(0, "rl_heldout"), (0, "forgetting"),
                                                                    (1, "rl_heldout"), (1, "forgetting")]
    assert r["arms"]["forgetting_guard"] == r["arms"]["main"] and r["aliases"] == {"forgetting_guard": "main"}
    e = r["arms"]["main"][0]
    assert (e["tasks"], e["samples_per_task"], e["before"], e["after"], e["train_seconds"]) == (3, 4, 0.25, 0.5, 6.0)
    # pooled: per-task gains (0.5, 0, 0.25) and (0.5, 0.5, 0.25) averaged over the seeds: (0.5, 0.25, 0.25)
    assert abs(r["pooled"]["main"]["rl_heldout"]["mean"] - 1 / 3) < 1e-12
    assert r["pooled"]["paper_recipe"]["rl_heldout"]["mean"] == 0.0
    # main minus paper_recipe after RL on seed 0 (the only common seed): (0.5, 0, 0.25)
    vs = r["vs_main"]["paper_recipe"]["rl_heldout"]
    assert vs["seeds"] == [0] and abs(vs["mean"] - 0.25) < 1e-12
    # cost and training reward: 12 s against main's 6 s; the last quarter of 4 steps is the last step
    assert {k: v for k, v in r["vs_main"]["paper_recipe"].items() if k not in ("rl_heldout", "forgetting")} == {
        "train_seconds_ratio": 2.0, "arm_reward_last_quarter": 0.6, "ref_reward_last_quarter": 0.0}
    text = md.read_text()
    assert text.startswith("x\n") and text.endswith("y\n") and "old" not in text
    assert "| paper_recipe | [0] |" in text and "| 2.00 | 0.600 (0.000) |" in text
    assert (tmp_path / "f.png").stat().st_size > 1000
    assert r["pairs"] == {}  # no PAIRS arm was run


def test_head_to_head_pairs(tmp_path):
    """refill minus steps180 (a PAIRS entry) after RL; refill minus epochs4 is left out: epochs4 has no run."""
    before = [(1, 4), (2, 4), (0, 4)]
    _run(tmp_path, "refill", 0, before, [(4, 4), (2, 4), (1, 4)], [(2.0, 0.5)] * 4)
    _run(tmp_path, "steps180", 0, before, [(2, 4), (2, 4), (2, 4)], [(1.0, 0.25)] * 8)
    out = tmp_path / "r.json"
    md = tmp_path / "B.md"
    md.write_text("<!-- rl_learning:begin (benchmarks/rl_learning.py writes this) -->\n<!-- rl_learning:end -->\n")
    proc = subprocess.run([sys.executable, "benchmarks/rl_learning.py", "--run", str(tmp_path), "--report-only",
                           "--arms", "refill", "--arms", "steps180", "--arms", "epochs4", "--seeds", "0",
                           "--out-json", str(out), "--figure", str(tmp_path / "f.png"), "--benchmarks-md", str(md)],
                          cwd=ROOT, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    r = json.loads(out.read_text())
    assert r["vs_main"] == {} and list(r["pairs"]) == ["refill - steps180"]
    p = r["pairs"]["refill - steps180"]
    # per task after RL: refill (1, 0.5, 0.25) minus steps180 (0.5, 0.5, 0.5) = (0.5, 0, -0.25), mean 1/12
    assert p["rl_heldout"]["seeds"] == [0] and abs(p["rl_heldout"]["mean"] - 1 / 12) < 1e-12
    # steps180: 8 s of GRPO against refill's 8 s; training reward over the last quarter 0.25 against 0.5
    assert {k: v for k, v in p.items() if k not in ("rl_heldout", "forgetting")} == {
        "train_seconds_ratio": 1.0, "arm_reward_last_quarter": 0.25, "ref_reward_last_quarter": 0.5}
    assert "| refill - steps180 | [0] | +0.083 [" in md.read_text()


def test_overlap_against_synchronous_at_equal_wall_time(tmp_path):
    counts = [(1, 4), (2, 4)]
    # main: 8 steps of 1 s (8 s); synchronous: 6 steps of 2 s (12 s) -> both cut at 8 s: main's 8 steps, the
    # synchronous run's first 4; the last quarter of 8 s is (6, 8]: main's steps 7-8, synchronous step 4
    _run(tmp_path, "main", 0, counts, counts, [(1.0, r) for r in (0, 0, 0, 0, 0, 0, 0.5, 0.7)])
    _run(tmp_path, "synchronous", 0, counts, counts, [(2.0, r) for r in (0.1, 0.2, 0.3, 0.4, 0.9, 0.9)])
    out = tmp_path / "r.json"
    proc = subprocess.run([sys.executable, "benchmarks/rl_learning.py", "--run", str(tmp_path), "--report-only",
                           "--arms", "main", "--arms", "synchronous", "--seeds", "0", "--out-json", str(out),
                           "--figure", str(tmp_path / "f.png"), "--benchmarks-md", str(tmp_path / "none.md")],
                          cwd=ROOT, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    (row,) = json.loads(out.read_text())["overlap_vs_synchronous"]
    assert row == {"seed": 0, "main_s_per_step": 1.0, "sync_s_per_step": 2.0, "step_time_ratio": 0.5,
                   "main_seconds": 8.0, "sync_seconds": 12.0, "equal_wall_seconds": 8.0,
                   "main_steps_at_equal_wall": 8, "sync_steps_at_equal_wall": 4,
                   "main_reward_last_quarter": 0.6, "sync_reward_last_quarter": 0.4}
    assert (tmp_path / "f_overlap.png").stat().st_size > 1000
    assert "| 0 | 1.00 | 2.00 | 0.50 | 8 | 8, 0.600 | 4, 0.400 |" in proc.stdout
