"""benchmarks/rl_learning.py's report on hand-made runs: the issue's JSON entries, the forgetting_guard alias,
pooled gains and the main-minus-arm ablation rows, all computed from the evaluation files."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _run(root: Path, arm: str, seed: int, before: list[tuple[int, int]], after: list[tuple[int, int]]) -> None:
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
    (out / "metrics.jsonl").write_text("".join(json.dumps({"step": i, "time/step": 1.5}) + "\n" for i in range(4)))


def test_report_from_runs(tmp_path):
    before = [(1, 4), (2, 4), (0, 4)]
    _run(tmp_path, "main", 0, before, [(3, 4), (2, 4), (1, 4)])
    _run(tmp_path, "main", 1, before, [(3, 4), (4, 4), (1, 4)])
    _run(tmp_path, "paper_recipe", 0, before, [(1, 4), (2, 4), (0, 4)])  # no change: gain 0 exactly
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
    text = md.read_text()
    assert text.startswith("x\n") and text.endswith("y\n") and "old" not in text and "| paper_recipe | [0] |" in text
    assert (tmp_path / "f.png").stat().st_size > 1000
