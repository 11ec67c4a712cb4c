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
err = Console(stderr=True)

ConfigArg = Annotated[Path | None, typer.Option("--config", "-c", help="YAML config file.")]
OverridesArg = Annotated[
    list[str] | None, typer.Argument(help="Dotted overrides, e.g. optim.lr=1e-4 model.path=runs/sft")
]


def fail(message: str, code: int = 2) -> None:
    """Print a red error naming the bad thing and exit non-zero."""
    err.print(f"[bold red]error:[/] {message}", highlight=False)
    raise typer.Exit(code)


def run_recipe(module: str, config: Path | None, overrides: list[str] | None) -> None:
    """Load ``module``'s config class from YAML + overrides, then call its ``main(cfg)``."""
    import importlib

    from rlvr.config import load_config

    mod = importlib.import_module(module)
    try:
        cfg = load_config(mod.CONFIG_CLASS, config, overrides or [])
        mod.main(cfg)
    except ConfigError as exc:
        fail(str(exc))


@app.command()
def pretrain(config: ConfigArg = None, overrides: OverridesArg = None) -> None:
    """AR-to-diffusion adaptation / continued pretraining with the weighted masked objective."""
    run_recipe("recipes.pretrain", config, overrides)


@app.command()
def sft(config: ConfigArg = None, overrides: OverridesArg = None) -> None:
    """Supervised fine-tuning on chat prompt/response pairs (random truncation, EOS canvas)."""
    run_recipe("recipes.sft", config, overrides)


@app.command()
def train(config: ConfigArg = None, overrides: OverridesArg = None) -> None:
    """GRPO on verifiable code rewards: Ray rollout actors, sandbox rewards, DeepSpeed learner."""
    run_recipe("recipes.grpo", config, overrides)


def _register_subapps() -> None:
    """Attach the sub-apps that exist; each lives next to the code it drives."""
    import importlib

    for module, name in [
        ("rlvr.diffusion.cli", "viz"),
        ("rlvr.world.cli", "world"),
        ("sandbox.cli", "sandbox"),
        ("rlvr.data.cli", "data"),
        ("rlvr.eval.cli", "eval"),
    ]:
        try:
            sub = importlib.import_module(module)
        except ModuleNotFoundError as exc:
            if exc.name and module.startswith(exc.name):
                continue  # area not built yet
            raise
        app.add_typer(sub.app, name=name)


_register_subapps()


def main() -> None:  # pragma: no cover - console entry
    app()


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
