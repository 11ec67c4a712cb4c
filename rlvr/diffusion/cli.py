"""``rlvr viz``: visualisations of diffusion decoding."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

app = typer.Typer(help="Visualise diffusion decoding.", no_args_is_help=True, add_completion=False)
console = Console()
err = Console(stderr=True)


def _fmt(v: float) -> str:
    return "-" if math.isnan(v) else f"{v:.3f}"


@app.command()
def order(
    generations: Annotated[
        Path, typer.Argument(help="JSONL; each line has 'decode_step' (ints, -1 = never decoded).")
    ],
    out: Annotated[Path, typer.Option("--out", "-o", help="PNG heatmap to write.")] = Path("order.png"),
    early: Annotated[
        float, typer.Option(help="Fraction of steps counted as 'early' for the sketch-first score.")
    ] = 0.25,
    max_rows: Annotated[
        int, typer.Option(help="Samples listed in the table (all go into the summary).")
    ] = 20,
) -> None:
    """Decoding-order statistics of generations (table) and a heatmap of decode step by position (PNG)."""
    from rlvr.diffusion.order import order_stats, plot_order_heatmap, read_generations, summarize

    if not 0 < early <= 1:
        err.print(f"[bold red]error:[/] --early must be in (0, 1], got {early}")
        raise typer.Exit(2)
    try:
        records = read_generations(generations)
    except (OSError, ValueError) as exc:
        err.print(f"[bold red]error:[/] {exc}", highlight=False)
        raise typer.Exit(2) from None
    stats = [order_stats(r.decode_step, r.num_steps, early=early) for r in records]
    labels = [r.id if r.id is not None else str(i) for i, r in enumerate(records)]

    table = Table(title=f"Decoding order: {generations} ({len(records)} samples)")
    for col in ("sample", "decoded", "steps", "tok/step", "spearman", "out-of-order", "sketch-first"):
        table.add_column(col, justify="right")
    for label, st in list(zip(labels, stats, strict=True))[:max_rows]:
        table.add_row(
            label,
            f"{st.n_decoded}/{st.n_positions}",
            str(st.num_steps),
            _fmt(st.tokens_per_step),
            _fmt(st.spearman),
            _fmt(st.out_of_order),
            _fmt(st.sketch_first),
        )
    mean = summarize(stats)
    table.add_section()
    table.add_row(
        "mean",
        "",
        "",
        _fmt(mean["tokens_per_step"]),
        _fmt(mean["spearman"]),
        _fmt(mean["out_of_order"]),
        _fmt(mean["sketch_first"]),
        style="bold",
    )
    console.print(table)
    path = plot_order_heatmap(
        [r.decode_step for r in records], out, labels=labels, title=f"Decoding order: {generations.name}"
    )
    console.print(f"heatmap written to {path}")
