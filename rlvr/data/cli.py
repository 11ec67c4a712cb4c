"""``rlvr data ...``: validate, curate and import verifiable-prompt datasets."""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

app = typer.Typer(help="Verifiable-prompt datasets: validate, split, curate, import.", no_args_is_help=True)
console = Console()
err = Console(stderr=True)


def _fail(message: str) -> None:
    err.print(f"[bold red]error:[/] {message}", highlight=False)
    raise typer.Exit(2)


@app.command()
def validate(path: Annotated[Path, typer.Argument(help="JSONL / JSON / parquet file of rows.")]) -> None:
    """Check every row against the schema (SCHEMA.md); list each bad row's index and field. Writes nothing."""
    from rlvr.data.validate import validate_file

    try:
        n, errors = validate_file(path)
    except (FileNotFoundError, ValueError) as exc:
        _fail(str(exc))
    if errors:
        for e in errors:
            err.print(f"row {e.index}: [bold]{e.field}[/]: {e.message}", highlight=False)
        bad = len({e.index for e in errors})
        _fail(f"{bad} of {n} rows are invalid ({len(errors)} problems) in {str(path)!r}")
    console.print(f"[green]ok:[/] {n} rows valid in {str(path)!r}", highlight=False)


@app.command()
def split(
    in_path: Annotated[Path, typer.Argument(help="Rows to split (JSONL / JSON / parquet).")],
    rest_path: Annotated[Path, typer.Argument(help="The rows kept for training (.jsonl or .parquet).")],
    heldout_path: Annotated[Path, typer.Argument(help="The held-out rows (.jsonl or .parquet).")],
    fraction: Annotated[float, typer.Option(help="Fraction of the distinct prompts held out.")] = 0.2,
    seed: Annotated[int, typer.Option(help="Seed of the random assignment.")] = 0,
) -> None:
    """Split rows i.i.d. into training and held-out files; rows with the same prompt stay on one side."""
    from rlvr.data.schema import RowParseError, read_rows, write_rows
    from rlvr.data.split import split_rows

    try:
        rows = []
        for i, row in read_rows(in_path):
            if isinstance(row, RowParseError):
                _fail(f"{str(in_path)!r} row {i}: {row}")
            rows.append(row)
        rest, held = split_rows(rows, fraction, seed)
    except (FileNotFoundError, ValueError) as exc:
        _fail(str(exc))
    write_rows(rest_path, rest)
    write_rows(heldout_path, held)
    console.print(f"{len(rest)} rows -> {rest_path}; {len(held)} rows -> {heldout_path}", highlight=False, soft_wrap=True)


@app.command()
def curate(
    in_path: Annotated[Path, typer.Argument(help="Input rows.")],
    out_path: Annotated[Path, typer.Argument(help="Kept rows (.jsonl or .parquet); report and rejects go beside it.")],
    sandbox_url: Annotated[list[str] | None, typer.Option(help="Sandbox URL(s); default $RLVR_SANDBOX_URLS.")] = None,
    decontaminate: Annotated[list[Path] | None, typer.Option(help="Extra evaluation file(s) to decontaminate against.")] = None,
    humaneval: Annotated[bool, typer.Option(help="Decontaminate against the bundled HumanEval.")] = True,
    ngram: Annotated[int, typer.Option(help="Word n-gram length for decontamination.")] = 10,
    near_dup_threshold: Annotated[float, typer.Option(help="MinHash Jaccard threshold for near duplicates (1: exact duplicates only).")] = 0.85,
    pass_rates: Annotated[Path | None, typer.Option(help="JSONL of {id, pass_rate} (e.g. from rlvr eval).")] = None,
    min_pass_rate: Annotated[float, typer.Option()] = 0.0,
    max_pass_rate: Annotated[float, typer.Option()] = 1.0,
    reference_check: Annotated[bool, typer.Option(help="Run references and trivial programs in the sandbox.")] = True,
    require_reference: Annotated[bool, typer.Option(help="Drop code rows without a reference solution.")] = True,
    time_limit_s: Annotated[float, typer.Option()] = 5.0,
    resume: Annotated[bool, typer.Option(help="Reuse sandbox verdicts saved by an interrupted run.")] = True,
) -> None:
    """Keep rows that are valid, unique, uncontaminated, and whose tests pass the reference and reject trivial programs."""
    from rlvr.data.curate import CurateOptions
    from rlvr.data.curate import curate as run_curate
    from rlvr.logs import progress_tasks
    from rlvr.sandbox.testing import sandbox_or_local

    if not 0.0 < near_dup_threshold <= 1.0:
        _fail(f"--near-dup-threshold must be in (0, 1], got {near_dup_threshold}")
    opts = CurateOptions(
        near_dup_threshold=near_dup_threshold, ngram=ngram, decontaminate_humaneval=humaneval,
        decontaminate_files=[str(p) for p in decontaminate or []],
        pass_rates=str(pass_rates) if pass_rates else None, min_pass_rate=min_pass_rate,
        max_pass_rate=max_pass_rate, reference_check=reference_check, require_reference=require_reference,
        time_limit_s=time_limit_s, sandbox_urls=sandbox_url or None, resume=resume,
    )
    try:
        with contextlib.ExitStack() as stack:
            if reference_check:  # the sandbox runs references: a local service unless one is configured
                opts.sandbox_urls = stack.enter_context(
                    sandbox_or_local(opts.sandbox_urls, announce=lambda m: console.print(f"[dim]{m}[/]"))
                )
            with progress_tasks() as task:
                report = run_curate(in_path, out_path, opts, progress=task)
    except (FileNotFoundError, ValueError) as exc:
        _fail(str(exc))
    table = Table(title=f"curate {in_path} -> {out_path}")
    table.add_column("outcome")
    table.add_column("rows", justify="right")
    table.add_row("input", str(report.input_rows))
    for reason, n in report.dropped.items():
        table.add_row(f"dropped: {reason}", str(n))
    table.add_row("[bold]kept", f"[bold]{report.kept}")
    if report.unrated:
        table.add_row("kept, no pass rate", str(report.unrated))
    console.print(table)


@app.command("import")
def import_(
    fmt: Annotated[str, typer.Argument(help="humaneval | mbpp | apps | codecontests | livecodebench")],
    in_path: Annotated[Path | None, typer.Argument(help="Source file (JSONL/JSON/parquet); humaneval defaults to the bundled copy.")] = None,
    out_path: Annotated[Path, typer.Option("--out", "-o", help="Output rows (.jsonl or .parquet).")] = Path("data.jsonl"),
) -> None:
    """Convert a public benchmark file into schema rows; reports every record that cannot be converted."""
    from rlvr.data.importers import IMPORTERS, ImportError_, humaneval_rows, import_record
    from rlvr.data.schema import RowParseError, read_rows, write_rows

    if fmt not in IMPORTERS:
        _fail(f"unknown format {fmt!r}; available: {', '.join(sorted(IMPORTERS))}")
    if in_path is None:
        if fmt != "humaneval":
            _fail(f"format {fmt!r} needs an input file")
        rows = humaneval_rows()
    else:
        rows, problems = [], []
        try:
            for i, rec in read_rows(in_path):
                try:
                    if isinstance(rec, RowParseError):
                        raise ImportError_(f"record {i}: {rec}")
                    rows.append(import_record(fmt, rec, i))
                except ImportError_ as exc:
                    problems.append(str(exc))
        except (FileNotFoundError, ValueError) as exc:
            _fail(str(exc))
        if problems:
            for p in problems:
                err.print(p, highlight=False)
            _fail(f"{len(problems)} records could not be imported; nothing written")
    write_rows(out_path, rows)
    console.print(f"[green]wrote[/] {len(rows)} rows to {str(out_path)!r}", highlight=False)
