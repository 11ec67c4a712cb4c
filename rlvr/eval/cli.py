"""``rlvr eval run``: pass@k of a model (diffusion or autoregressive) on a dataset, via the sandbox."""

from __future__ import annotations

import contextlib
import logging
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

app = typer.Typer(help="pass@k evaluation through the sandbox.", no_args_is_help=True)
console = Console()


@app.command()
def run(
    config: Annotated[Path | None, typer.Option("--config", "-c", help="YAML config file.")] = None,
    overrides: Annotated[list[str] | None, typer.Argument(help="Dotted overrides, e.g. model.path=runs/sft n=10 ks=[1,5]")] = None,
    check: Annotated[bool, typer.Option("--check", help="Check config, model folder, dataset and sandbox URLs; print the resolved config; start nothing.")] = False,
) -> None:
    """Sample n completions per problem, score them in the sandbox, write problems.jsonl, summary.json, passk.png.

    model.kind says where the completions come from:

    diffusion: a DiffusionLM checkpoint (model.path), sampled with the sampler section.

    hf: an autoregressive Hugging Face model (model.path), sampled with the hf section.

    reference: each row's reference solution (checks the dataset and the harness).

    completions: given responses, a JSONL file (model.path) of {"task_id": ..., "completion": ...} rows,
    judged by the same verifiers as generated ones.
    """
    import yaml

    from rlvr.cli import fail
    from rlvr.config import ConfigError, load_config
    from rlvr.eval.harness import EvalConfig, run_eval
    from rlvr.eval.harness import check as preflight
    from rlvr.logs import progress_tasks
    from rlvr.preflight import PreflightError
    from rlvr.rewards.registry import SANDBOX_VERIFIERS
    from rlvr.sandbox.testing import sandbox_or_local

    try:
        cfg = load_config(EvalConfig, config, overrides or [])
    except ConfigError as exc:
        fail(str(exc))
    problems = preflight(cfg)
    if check:
        typer.echo(yaml.safe_dump(cfg.model_dump(mode="json"), sort_keys=False), nl=False)
    if problems:
        fail(str(PreflightError(problems)))
    if check:
        return
    try:
        with progress_tasks() as task, contextlib.ExitStack() as stack:
            if cfg.verifier in SANDBOX_VERIFIERS:  # a local service unless one is configured
                cfg.sandbox_urls = stack.enter_context(
                    sandbox_or_local(cfg.sandbox_urls, announce=logging.getLogger(__name__).info)
                )
            summary = run_eval(cfg, progress=task)
    except (FileNotFoundError, ValueError) as exc:
        fail(str(exc))
    table = Table(title=f"{summary['dataset']} | {summary['model']} | n={summary['n']}")
    table.add_column("metric")
    table.add_column("value", justify="right")
    table.add_row("problems", str(summary["problems"]))
    for k in cfg.ks:
        table.add_row(f"pass@{k}", f"{summary[f'pass@{k}']:.4f}")
    for reason, count in summary["outcomes"].items():
        table.add_row(f"samples: {reason}", str(count))
    console.print(table)
    console.print(f"wrote {cfg.out_dir}/problems.jsonl, summary.json, passk.png", highlight=False)
