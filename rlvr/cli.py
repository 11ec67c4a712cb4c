"""The ``rlvr`` command. Each area owns a typer sub-app in its own module; this file only wires them.

Heavy imports (torch, ray, docker) happen inside commands so ``rlvr --help`` stays instant.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from rlvr.config import ConfigError

app = typer.Typer(
    name="rlvr",
    help="RL with verifiable rewards for diffusion language models for code.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
err = Console(stderr=True, soft_wrap=True)

ConfigArg = Annotated[Path | None, typer.Option("--config", "-c", help="YAML config file.")]
OverridesArg = Annotated[
    list[str] | None, typer.Argument(help="Dotted overrides, e.g. optim.lr=1e-4 model.path=runs/sft")
]
CheckArg = Annotated[
    bool,
    typer.Option(
        "--check",
        help="Validate the config, registry names, paths, data and sandbox URLs; print the resolved "
        "config; start nothing. Exit 0 if good, 2 listing every problem if not.",
    ),
]


@app.callback()
def _main(
    log_level: Annotated[str, typer.Option("--log-level", help="DEBUG, INFO, WARNING, ...")] = "INFO",
) -> None:
    """RL with verifiable rewards for diffusion language models for code."""
    from rlvr.logs import setup_logging

    setup_logging(log_level.upper())


def fail(message: str, code: int = 2) -> None:
    """Print a red error naming the bad thing and exit non-zero."""
    err.print(f"[bold red]error:[/] {message}", highlight=False)
    raise typer.Exit(code)


def run_recipe(module: str, config: Path | None, overrides: list[str] | None, check: bool = False) -> None:
    """Load ``module``'s config class from YAML + overrides, run its preflight ``check(cfg)``, then (unless
    ``check``) its ``main(cfg)``. Config and preflight problems exit 2 with every problem listed."""
    import importlib

    import yaml

    from rlvr.config import load_config
    from rlvr.preflight import PreflightError

    mod = importlib.import_module(module)
    try:
        cfg = load_config(mod.CONFIG_CLASS, config, overrides or [])
    except ConfigError as exc:
        fail(str(exc))
    problems = mod.check(cfg, connect=check)  # a run waits for sandbox replicas instead of failing
    if check:
        typer.echo(yaml.safe_dump(cfg.model_dump(mode="json"), sort_keys=False), nl=False)
        if problems:
            fail(str(PreflightError(problems)))
        err.print("[bold green]ok:[/] config, names, paths, data and sandbox URLs check out", highlight=False)
        return
    if problems:
        fail(str(PreflightError(problems)))
    try:
        mod.main(cfg)
    except ConfigError as exc:
        fail(str(exc))


@app.command()
def pretrain(config: ConfigArg = None, overrides: OverridesArg = None, check: CheckArg = False) -> None:
    """AR-to-diffusion adaptation / continued pretraining with the weighted masked objective."""
    run_recipe("rlvr.recipes.pretrain", config, overrides, check)


@app.command()
def sft(config: ConfigArg = None, overrides: OverridesArg = None, check: CheckArg = False) -> None:
    """Supervised fine-tuning on chat prompt/response pairs (random truncation, EOS canvas)."""
    run_recipe("rlvr.recipes.sft", config, overrides, check)


@app.command()
def train(config: ConfigArg = None, overrides: OverridesArg = None, check: CheckArg = False) -> None:
    """GRPO on verifiable code rewards: Ray rollout actors, sandbox rewards, DeepSpeed learner."""
    run_recipe("rlvr.recipes.grpo", config, overrides, check)


@app.command()
def convert(
    src: Annotated[Path, typer.Argument(help="A checkpoint folder (Qwen2, rlvr's own, or Dream-family).")],
    dst: Annotated[Path, typer.Argument(help="The new folder (must not exist or be empty).")],
    to: Annotated[str, typer.Option("--to", help="Format to write: dream or qwen2.")],
    code_from: Annotated[
        Path | None,
        typer.Option(help="A released Dream folder to copy configuration_dream.py / modeling_dream.py from."),
    ] = None,
) -> None:
    """Rewrite a checkpoint as a Dream-format folder (for Dream's tooling) or a plain Qwen2 one."""
    from rlvr.diffusion.checkpoints import FORMATS, UnsupportedCheckpoint
    from rlvr.diffusion.convert import convert as run_convert

    fmt = {k.lower(): k for k in FORMATS}.get(to.lower())
    if fmt is None:
        fail(f"--to {to!r}: choose one of {sorted(k.lower() for k in FORMATS)}")
    try:
        out = run_convert(src, dst, fmt, code_from=code_from)
    except (FileNotFoundError, FileExistsError, UnsupportedCheckpoint, ValueError) as exc:
        fail(str(exc))
    err.print(f"wrote {fmt} checkpoint {out}", highlight=False)


@app.command()
def plan(
    config: ConfigArg = None,
    overrides: OverridesArg = None,
    gpu: Annotated[str, typer.Option("--gpu", help="GPU kind: a100-40g, a100-80g, h100-80g, h200-141g, l40s-48g.")] = "h100-80g",
    nodes: Annotated[int, typer.Option("--nodes", min=1, help="Nodes of --gpus-per-node GPUs.")] = 1,
    gpus_per_node: Annotated[int, typer.Option("--gpus-per-node", min=1)] = 8,
    headroom: Annotated[float, typer.Option("--headroom", min=0.0, max=0.9, help="Fraction kept free.")] = 0.10,
    model_config: Annotated[
        Path | None,
        typer.Option(help="A config.json to take the model's shape from (default: model.path's)."),
    ] = None,
    json_out: Annotated[Path | None, typer.Option("--json", help="Also write the plan as JSON here.")] = None,
) -> None:
    """Per-GPU memory of a GRPO config by component and phase; exit 0 if it fits --gpu, 1 if not."""
    import json

    from rlvr.config import load_config
    from rlvr.grpo.config import GRPOConfig
    from rlvr.plan import GPUS, plan_grpo, read_shape, render

    if gpu not in GPUS:
        fail(f"--gpu {gpu!r}: choose one of {', '.join(GPUS)}")
    try:
        cfg = load_config(GRPOConfig, config, overrides or [])
    except ConfigError as exc:
        fail(str(exc))
    source = model_config or Path(cfg.model.path)
    if not (source.is_file() or (source / "config.json").is_file()):
        key = "--model-config" if model_config else "model.path"
        fail(f"{key}={str(source)!r}: no config.json to read the model's shape from (pass --model-config FILE)")
    try:
        shape = read_shape(source)
    except Exception as exc:  # an unsupported or malformed config names itself
        fail(f"{source}: {exc}")
    result = plan_grpo(cfg, shape, gpu, nodes=nodes, gpus_per_node=gpus_per_node, headroom=headroom)
    render(result, Console(soft_wrap=True))
    if json_out:
        json_out.parent.mkdir(parents=True, exist_ok=True)
        json_out.write_text(json.dumps(result.to_dict(), indent=2) + "\n")
    raise typer.Exit(0 if result.fits else 1)


def _register_subapps() -> None:
    """Attach the sub-apps; each lives next to the code it drives (heavy imports stay inside commands)."""
    import importlib

    for module, name in [
        ("rlvr.diffusion.cli", "viz"),
        ("rlvr.world.cli", "world"),
        ("rlvr.sandbox.cli", "sandbox"),
        ("rlvr.data.cli", "data"),
        ("rlvr.eval.cli", "eval"),
    ]:
        app.add_typer(importlib.import_module(module).app, name=name)


_register_subapps()


def main() -> None:  # pragma: no cover - console entry
    app()


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
