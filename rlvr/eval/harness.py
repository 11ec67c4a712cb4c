"""``rlvr eval``: n samples per problem from a model, scored in the sandbox, reported as pass@k.

Generators (registry by ``model.kind``):

* ``diffusion``: a DiffusionLM checkpoint sampled with the ``sampler`` config section (the same
  settings as GRPO rollouts; it reuses :class:`rlvr.rollout.worker.RolloutWorker`);
* ``hf``: a plain autoregressive Hugging Face model, ``model.generate`` with the ``hf`` section;
* ``reference``: each row's ``extra_info.reference_solution`` in a fenced block (checks the harness
  and the dataset: HumanEval's canonical solutions must score pass@1 = 1);
* ``completions``: given responses, read from ``model.path``, a JSONL file of ``{"task_id": ...,
  "completion": ...}`` rows (the problem's id as ``rlvr`` names it, e.g. ``HumanEval/0``, and the
  response as a model wrote it: what the verifier scores); the first ``n`` rows of each task are its
  samples. The outputs of any model or framework are judged by the same verifiers.

Outputs in ``out_dir``: ``problems.jsonl`` (one line per problem: id, n, c, pass@k, each sample's
reward, reason and completion), ``summary.json``, ``passk.png``; the summary is also printed as a table.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, Literal, Protocol

from pydantic import AfterValidator, Field, model_validator

from rlvr.config import Config
from rlvr.registry import RegistryName
from rlvr.rollout.config import SamplerCfg

__all__ = ["EvalConfig", "GENERATORS", "Completion", "check", "run_eval", "score_problems", "load_eval_rows"]


class ModelCfg(Config):
    kind: Literal["diffusion", "hf", "reference", "completions"] = "diffusion"
    path: str | None = None  # HF folder (diffusion, hf); a JSONL file (completions); unused for reference
    dtype: Literal["float32", "bfloat16"] = "float32"
    device: str | None = None  # default: cuda when available


class HFGenCfg(Config):
    """Autoregressive sampling (``transformers`` ``generate``)."""

    max_new_tokens: int = Field(512, ge=1)
    temperature: float = Field(0.0, ge=0)  # 0 = greedy
    top_p: float = Field(1.0, gt=0, le=1)


class EvalConfig(Config):
    dataset: str = "humaneval"  # "humaneval" (bundled) or a rows file (JSONL/parquet, rlvr.data schema)
    limit: int | None = Field(None, ge=1)  # first N problems only
    n: int = Field(1, ge=1)  # samples per problem
    ks: list[int] = [1]
    batch_size: int = Field(8, ge=1)  # sequences per generate() call
    seed: int = 0
    model: ModelCfg = ModelCfg()
    sampler: SamplerCfg = SamplerCfg(max_new_tokens=512, steps=512, alg="entropy", temperature=0.0, top_p=None)
    hf: HFGenCfg = HFGenCfg()
    verifier: Annotated[str, AfterValidator(RegistryName("rlvr.rewards.registry:names", "verifier"))] = "code_tests"
    verifier_kwargs: dict[str, Any] = {"mode": "binary"}
    sandbox_urls: list[str] = []  # empty: $RLVR_SANDBOX_URLS
    deadline_s: float = Field(600.0, gt=0)  # per scoring batch; a sample past it scores 0 (verifier_timeout)
    out_dir: str = "runs/eval"
    save_completions: bool = True

    @model_validator(mode="after")
    def _check(self) -> EvalConfig:
        bad = [k for k in self.ks if not 1 <= k <= self.n]
        if bad or not self.ks:
            raise ValueError(f"ks={self.ks}: every k must satisfy 1 <= k <= n (n={self.n})")
        if self.model.kind != "reference" and not self.model.path:
            raise ValueError(f"model.path is required for model.kind={self.model.kind!r}")
        return self


class Completion(Protocol):
    text: str
    truncated: bool
    num_tokens: int | None


class _Completion:
    __slots__ = ("text", "truncated", "num_tokens")

    def __init__(self, text: str, truncated: bool = False, num_tokens: int | None = None):
        self.text, self.truncated, self.num_tokens = text, truncated, num_tokens


# ------------------------------------------------------------------------------------------ generators
Generator = Callable[[list[dict[str, Any]], int], list[list[_Completion]]]
GENERATORS: dict[str, Callable[[EvalConfig], Generator]] = {}


def generator(kind: str):
    def deco(factory):
        GENERATORS[kind] = factory
        return factory

    return deco


def read_completions(path: str | Path, dataset: str) -> dict[str, list[str]]:
    """The completions file of ``model.kind=completions``: task id -> its completions in file order.
    A ValueError names the row and field of the first bad row, or the task ids the dataset lacks."""
    from rlvr.data.schema import problem_id

    path = Path(path)
    by_task: dict[str, list[str]] = {}
    with path.open(encoding="utf-8") as fh:
        for i, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except ValueError as exc:
                raise ValueError(f"{path}: row {i}: not JSON ({exc})") from None
            if not isinstance(row, dict):
                raise ValueError(f"{path}: row {i}: expected an object with task_id and completion")
            for key, typ in (("task_id", (str, int)), ("completion", str)):
                if not isinstance(row.get(key), typ):
                    raise ValueError(f"{path}: row {i}: field {key!r} is missing or not a "
                                     f"{'string' if key == 'completion' else 'string or integer'}")
            by_task.setdefault(str(row["task_id"]), []).append(row["completion"])
    known = {problem_id(r) for r in load_eval_rows(dataset)}
    unknown = sorted(set(by_task) - known)
    if unknown:
        raise ValueError(f"{path}: {len(unknown)} task_id(s) not in dataset {dataset!r}, e.g. {unknown[:3]} "
                         f"(its ids look like {sorted(known)[:2]})")
    return by_task


def _short_tasks(by_task: dict[str, list[str]], rows: list[dict[str, Any]], n: int) -> list[str]:
    from rlvr.data.schema import problem_id

    return [f"task_id {problem_id(r)!r} has {len(by_task.get(problem_id(r), []))} completion(s), n={n} asked"
            for r in rows if len(by_task.get(problem_id(r), [])) < n]


@generator("completions")
def _completions(cfg: EvalConfig) -> Generator:
    from rlvr.data.schema import problem_id

    by_task = read_completions(cfg.model.path or "", cfg.dataset)

    def gen(rows: list[dict[str, Any]], n: int) -> list[list[_Completion]]:
        short = _short_tasks(by_task, rows, n)
        if short:
            raise ValueError(f"{cfg.model.path}: {short[0]}")
        return [[_Completion(t) for t in by_task[problem_id(row)][:n]] for row in rows]

    return gen


@generator("reference")
def _reference(cfg: EvalConfig) -> Generator:
    from rlvr.data.schema import ground_truth_of

    def gen(rows: list[dict[str, Any]], n: int) -> list[list[_Completion]]:
        out = []
        for row in rows:
            ref = (row.get("extra_info") or {}).get("reference_solution")
            lang = ground_truth_of(row).get("language", "python")
            text = f"```{lang}\n{ref}\n```" if ref else "(no reference solution)"
            out.append([_Completion(text) for _ in range(n)])
        return out

    return gen


def decode_canvas(tokenizer: Any, ids: list[int], stop_ids: set[int]) -> _Completion:
    """Text up to the first EOS/pad; ``truncated`` when the canvas has none (cut by the length limit)."""
    cut = next((j for j, t in enumerate(ids) if t in stop_ids), None)
    body = ids if cut is None else ids[:cut]
    return _Completion(tokenizer.decode(body, skip_special_tokens=True), cut is None, len(body))


def _chat_ids(tokenizer: Any, messages: list[dict[str, Any]]) -> list[int]:
    ids = tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=True)
    if hasattr(ids, "keys"):  # transformers may return a BatchEncoding
        ids = ids["input_ids"]
    return list(ids)


def _device(cfg: EvalConfig) -> str:
    import torch

    return cfg.model.device or ("cuda" if torch.cuda.is_available() else "cpu")


@generator("diffusion")
def _diffusion(cfg: EvalConfig) -> Generator:
    from rlvr.rollout.worker import RolloutWorker

    sampler = cfg.sampler.generate_kwargs()
    worker = RolloutWorker(cfg.model.path, sampler, eos_penalty=cfg.sampler.eos_penalty,
                           dtype=cfg.model.dtype, device=_device(cfg))
    tok = worker.model.tokenizer
    if tok is None:
        raise ValueError(f"{cfg.model.path!r} has no tokenizer files; eval needs one to build chat prompts")
    stop = {worker.model.eos_token_id, worker.model.pad_token_id} - {None}
    counter = iter(range(10**12))

    def gen(rows: list[dict[str, Any]], n: int) -> list[list[_Completion]]:
        prompts = [_chat_ids(tok, row["prompt"]) for row in rows for _ in range(n)]
        seeds = [cfg.seed * 1_000_003 + next(counter) for _ in prompts]
        batch = worker.generate(prompts, [i // n for i in range(len(prompts))], seeds, cfg.batch_size)
        flat = [decode_canvas(tok, r.tolist(), stop) for r in batch.response_ids]
        return [flat[i * n : (i + 1) * n] for i in range(len(rows))]

    return gen


@generator("hf")
def _hf(cfg: EvalConfig) -> Generator:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    device = _device(cfg)
    tok = AutoTokenizer.from_pretrained(cfg.model.path)
    model = AutoModelForCausalLM.from_pretrained(cfg.model.path, dtype=getattr(torch, cfg.model.dtype)).to(device)
    model.eval()
    eos = model.generation_config.eos_token_id
    stop = set(eos if isinstance(eos, list) else [eos]) | {tok.eos_token_id, tok.pad_token_id}
    stop -= {None}
    pad_id = tok.pad_token_id if tok.pad_token_id is not None else min(stop)
    torch.manual_seed(cfg.seed)

    @torch.no_grad()
    def gen(rows: list[dict[str, Any]], n: int) -> list[list[_Completion]]:
        from rlvr.batch import pad_left

        prompts = [_chat_ids(tok, row["prompt"]) for row in rows for _ in range(n)]
        flat: list[_Completion] = []
        for lo in range(0, len(prompts), cfg.batch_size):
            ids, mask = pad_left(prompts[lo : lo + cfg.batch_size], pad_id)
            sample = cfg.hf.temperature > 0
            out = model.generate(
                input_ids=ids.to(device), attention_mask=mask.to(device), max_new_tokens=cfg.hf.max_new_tokens,
                do_sample=sample, pad_token_id=pad_id,
                **({"temperature": cfg.hf.temperature, "top_p": cfg.hf.top_p} if sample else {}),
            )
            flat += [decode_canvas(tok, r.tolist(), stop) for r in out[:, ids.shape[1] :].cpu()]
        return [flat[i * n : (i + 1) * n] for i in range(len(rows))]

    return gen


# ------------------------------------------------------------------------------------------ scoring
def load_eval_rows(dataset: str, limit: int | None = None) -> list[dict[str, Any]]:
    from rlvr.data.importers import humaneval_rows
    from rlvr.data.schema import RowParseError, check_row, read_rows

    if dataset == "humaneval":
        rows = humaneval_rows()
    else:
        rows, problems = [], []
        for i, row in read_rows(dataset):
            errs = [str(row)] if isinstance(row, RowParseError) else [str(e) for e in check_row(row, i)]
            problems += errs
            rows.append(row)
        if problems:
            raise ValueError(f"dataset {dataset!r} has invalid rows:\n  " + "\n  ".join(problems[:20]))
    return rows[:limit] if limit else rows


def score_problems(
    rows: list[dict[str, Any]],
    completions: list[list[Any]],
    verifier: Any,
    ks: list[int],
    deadline_s: float = 600.0,
    save_completions: bool = True,
) -> list[dict[str, Any]]:
    """Score every sample of every problem; one record per problem with ``n``, ``c`` and ``pass@k``."""
    from rlvr.data.schema import problem_id
    from rlvr.eval.passk import pass_at_k
    from rlvr.rewards import Sample, score_sync
    from rlvr.rewards.base import OverlongPolicy

    samples = [Sample(row, c.text, truncated=c.truncated, num_tokens=c.num_tokens)
               for row, cs in zip(rows, completions, strict=True) for c in cs]
    # eval grades what the model wrote: a cut-off answer is still run (it usually fails to parse)
    results = score_sync(verifier, samples, deadline_s=deadline_s, overlong=OverlongPolicy(mode="score"))
    records, pos = [], 0
    for row, cs in zip(rows, completions, strict=True):
        n = len(cs)
        mine = results[pos : pos + n]
        pos += n
        c = sum(1 for r in mine if r.reward >= 1.0)
        rec: dict[str, Any] = {"id": problem_id(row), "data_source": row.get("data_source"), "n": n, "c": c,
                               "pass_rate": c / n}
        rec.update({f"pass@{k}": pass_at_k(n, c, k) for k in ks if k <= n})
        rec["samples"] = [
            {"reward": r.reward, "reason": r.reason, "status": r.info.get("status"),
             "truncated": comp.truncated, **({"completion": comp.text} if save_completions else {})}
            for r, comp in zip(mine, cs, strict=True)
        ]
        records.append(rec)
    return records


def summarize(records: list[dict[str, Any]], ks: list[int]) -> dict[str, Any]:
    from collections import Counter

    reasons = Counter(s["reason"] or "passed" for r in records for s in r["samples"])
    return {
        "problems": len(records),
        "samples": sum(r["n"] for r in records),
        **{f"pass@{k}": sum(r[f"pass@{k}"] for r in records) / len(records) for k in ks},
        "outcomes": dict(reasons.most_common()),
    }


def plot(records: list[dict[str, Any]], summary: dict[str, Any], ks: list[int], path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (a, b) = plt.subplots(1, 2, figsize=(10, 4))
    vals = [summary[f"pass@{k}"] for k in ks]
    a.bar([f"pass@{k}" for k in ks], vals, color="tab:blue")
    for x, v in enumerate(vals):
        a.text(x, v, f"{v:.3f}", ha="center", va="bottom")
    a.set_ylim(0, 1.05)
    a.set_title(title)
    n = max(r["n"] for r in records)
    half = 0.5 / n  # one bar centred on each possible c / n
    b.hist([r["pass_rate"] for r in records], bins=[-half + j / n for j in range(n + 2)], color="tab:green",
           rwidth=0.9)
    b.set_xlabel("per-problem pass rate (c / n)")
    b.set_ylabel("problems")
    b.set_title(f"{len(records)} problems, n = {records[0]['n']}")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def check(cfg: EvalConfig) -> list[Any]:
    """What ``rlvr eval run`` needs that can be checked before sampling (see :mod:`rlvr.preflight`)."""
    from rlvr.preflight import Problem, model_folder, prompt_rows, sandbox_urls

    problems: list[Problem] = []
    if cfg.model.kind == "completions":
        if not cfg.model.path or not Path(cfg.model.path).is_file():
            problems.append(Problem("model.path", cfg.model.path, "is not a file of completions (JSONL rows "
                                    '{"task_id": ..., "completion": ...}) for model.kind=completions'))
        else:
            try:
                by_task = read_completions(cfg.model.path, cfg.dataset)
                short = _short_tasks(by_task, load_eval_rows(cfg.dataset, cfg.limit), cfg.n)
                problems += [Problem("model.path", cfg.model.path, m) for m in short[:5]]
            except (ValueError, FileNotFoundError) as exc:
                problems.append(Problem("model.path", cfg.model.path, str(exc)))
    elif cfg.model.kind != "reference":
        problems += model_folder("model.path", cfg.model.path, need_tokenizer=cfg.model.kind == "diffusion")
    if cfg.dataset != "humaneval":
        problems += prompt_rows("dataset", cfg.dataset)
    return problems + sandbox_urls("sandbox_urls", cfg.sandbox_urls)


def run_eval(cfg: EvalConfig, verifier: Any = None, progress: Any = None) -> dict[str, Any]:
    """Generate, score, write outputs; returns the summary. ``verifier`` defaults to ``cfg.verifier``."""
    from rlvr.rewards import registry

    rows = load_eval_rows(cfg.dataset, cfg.limit)
    if verifier is None:
        kwargs = dict(cfg.verifier_kwargs)
        if cfg.verifier == "code_tests" and cfg.sandbox_urls:
            kwargs.setdefault("urls", cfg.sandbox_urls)
        verifier = registry.get(cfg.verifier, **kwargs)
    gen = GENERATORS[cfg.model.kind](cfg)
    out = Path(cfg.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    per_call = max(1, cfg.batch_size // cfg.n)  # problems per generate() call
    records: list[dict[str, Any]] = []
    task = progress("problems", len(rows)) if progress else None
    with (out / "problems.jsonl").open("w") as fh:
        for lo in range(0, len(rows), per_call):
            chunk = rows[lo : lo + per_call]
            recs = score_problems(chunk, gen(chunk, cfg.n), verifier, cfg.ks, cfg.deadline_s, cfg.save_completions)
            for r in recs:
                fh.write(json.dumps(r, ensure_ascii=False) + "\n")
            fh.flush()
            records += recs
            if task:
                task.advance(len(chunk))
    summary = summarize(records, cfg.ks)
    summary.update(dataset=cfg.dataset, model=cfg.model.path or cfg.model.kind, n=cfg.n)
    (out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    plot(records, summary, cfg.ks, out / "passk.png", f"{cfg.dataset}: {cfg.model.path or cfg.model.kind}")
    return summary
