"""``rlvr world ...``: build the tiny world's data and tokenizer, and score a model on held-out tasks."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

app = typer.Typer(
    help="The tiny world: synthetic verifiable Python tasks, tokenizer, held-out eval.", no_args_is_help=True
)
console = Console()


def _fail(message: str) -> None:
    Console(stderr=True).print(f"[bold red]error:[/] {message}", highlight=False)
    raise typer.Exit(2)


def _write_jsonl(path: Path, rows: list[dict]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w") as fh:
        for row in rows:
            fh.write(json.dumps(row) + "\n")


@app.command("make-data")
def make_data(
    out_dir: Annotated[Path, typer.Argument(help="Folder to write rl/, sft/, corpus/ and tokenizer/ into.")],
    n_train: Annotated[int, typer.Option(min=1, help="Train tasks.")] = 4000,
    n_heldout: Annotated[int, typer.Option(min=1, help="Held-out tasks (one per template+constants).")] = 200,
    seed: int = 0,
    heldout_percent: Annotated[int, typer.Option(min=1, max=98)] = 20,
    n_rl: Annotated[int, typer.Option(min=1, help="RL prompt tasks.")] = 4000,
    rl_percent: Annotated[
        int,
        typer.Option(
            min=0,
            max=98,
            help="Combinations reserved for RL prompts, never seen in pretraining/SFT (0: RL on the SFT tasks).",
        ),
    ] = 20,
    rl_unique_combos: Annotated[
        bool,
        typer.Option(
            help="One RL task per (template, constants) combination, as the held-out set; "
            "--no-rl-unique-combos: every template equally often (names redrawn)."
        ),
    ] = True,
    vocab_size: Annotated[int, typer.Option(min=300, help="BPE vocabulary size (~512-1024).")] = 768,
) -> None:
    """Write the RL prompt rows (jsonl + parquet), SFT pairs, a pretraining corpus and a BPE tokenizer."""
    import datasets

    from rlvr.world.tasks import generate_tasks, to_corpus_text, to_rl_row, to_sft_pair
    from rlvr.world.tokenizer import train_bpe_tokenizer

    if heldout_percent + rl_percent >= 100:
        raise typer.BadParameter(
            f"--heldout-percent + --rl-percent must be < 100 (got {heldout_percent} + {rl_percent})"
        )
    split = dict(seed=seed, heldout_percent=heldout_percent, rl_percent=rl_percent)
    train = generate_tasks(n_train, "train", **split)
    heldout = generate_tasks(n_heldout, "heldout", **split)
    # RL prompts come from combinations SFT never saw (as Dream-Coder's RL data is disjoint from its SFT
    # data): the policy can only earn reward there by reading the spec, which is what held-out measures
    # default: one task per combination (all ~1500 RL combinations at the default sizes), so templates
    # weigh as in the held-out set; scripts/main.sh then keeps the prompts the SFT model sometimes
    # solves (recipes/configs/tiny/difficulty.yaml), as Dream-Coder filters its RL data by difficulty.
    # --no-rl-unique-combos repeats the few combinations of small templates under new names: reward
    # then rises by memorising them, and held-out pass@1 does not (BENCHMARKS.md, main job)
    rl = generate_tasks(n_rl, "rl", unique_combos=rl_unique_combos, **split) if rl_percent else train
    for split_name, tasks in (("train", rl), ("heldout", heldout)):
        rows = [to_rl_row(t) for t in tasks]
        _write_jsonl(out_dir / "rl" / f"{split_name}.jsonl", rows)
        datasets.Dataset.from_list(rows).to_parquet(str(out_dir / "rl" / f"{split_name}.parquet"))
    # only train tasks feed pretraining and SFT: RL and held-out solutions must stay unseen
    corpus = [{"text": to_corpus_text(t)} for t in train]
    _write_jsonl(out_dir / "corpus" / "train.jsonl", corpus)
    _write_jsonl(out_dir / "sft" / "train.jsonl", [to_sft_pair(t) for t in train])
    texts = [c["text"] for c in corpus] + [t.prompt_text for t in train]
    tok = train_bpe_tokenizer(texts, out_dir / "tokenizer", vocab_size=vocab_size)
    console.print(
        f"wrote {len(train)} SFT / {len(rl)} RL / {len(heldout)} held-out tasks, corpus and SFT pairs "
        f"to {out_dir}; "
        f"tokenizer vocab {len(tok)} (mask id {tok.convert_tokens_to_ids('<|mask|>')})"
    )


@app.command("eval")
def eval_cmd(
    model: Annotated[Path, typer.Option("--model", help="A DiffusionLM / HF folder with its tokenizer.")],
    data: Annotated[Path, typer.Option(help="RL-schema JSONL of tasks.")] = Path(
        "runs/tiny/data/rl/heldout.jsonl"
    ),
    n: Annotated[int | None, typer.Option(help="Only the first N tasks.")] = None,
    max_new_tokens: Annotated[int, typer.Option(help="Canvas length (answers are <= 25 tokens).")] = 32,
    steps: Annotated[int | None, typer.Option(help="Denoising steps (default = max_new_tokens).")] = None,
    alg: str = "entropy",
    temperature: float = 0.0,
    batch_size: int = 50,
    timeout: Annotated[float, typer.Option(help="CPU seconds per test in the sandbox.")] = 5.0,
    threads: Annotated[int, typer.Option(help="torch threads (0 = default).")] = 0,
    out: Annotated[Path | None, typer.Option(help="Write the full result (with samples) as JSON.")] = None,
) -> None:
    """Sample one completion per task with the diffusion sampler, run the hidden tests in the sandbox
    (a local service unless $RLVR_SANDBOX_URLS names one), print pass@1."""
    import logging

    import torch

    from rlvr.diffusion import DiffusionLM
    from rlvr.sandbox.testing import sandbox_or_local
    from rlvr.world.evaluate import evaluate, read_rows, world_verifier

    if threads:
        torch.set_num_threads(threads)
    if not (model / "config.json").is_file():
        _fail(f"--model {str(model)!r} is not a model folder (no config.json)")
    if not data.is_file():
        _fail(f"--data {str(data)!r} does not exist")
    try:
        rows = read_rows(data)
    except ValueError as exc:
        _fail(str(exc))
    rows = rows[:n] if n else rows
    dlm = DiffusionLM.from_pretrained(model)
    if dlm.tokenizer is None:
        _fail(f"--model {str(model)!r} has no tokenizer files")
    with sandbox_or_local(announce=logging.getLogger(__name__).info) as urls:
        verifier = world_verifier(urls, time_limit_s=timeout)
        res = evaluate(
            dlm,
            rows,
            verifier,
            max_new_tokens=max_new_tokens,
            steps=steps,
            alg=alg,
            temperature=temperature,
            batch_size=batch_size,
        )
    if out:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(res, indent=2))
    console.print(f"by template: {res['by_template']}")
    console.print(f"statuses: {res['statuses']}")
    console.print(f"[bold]held-out pass@1 = {res['pass@1']:.3f}[/] ({res['passed']}/{res['n']})")


@app.command("plot")
def plot_cmd(
    runs: Annotated[
        list[Path], typer.Argument(help="Run folders (each with metrics.jsonl) or metrics files.")
    ],
    out: Annotated[Path, typer.Option(help="PNG path.")] = Path("loss_curves.png"),
) -> None:
    """Plot loss / CE curves of one or more runs from their JSONL metrics into one PNG."""
    from rlvr.plots import plot_metrics

    series = []
    for r in runs:
        f = r / "metrics.jsonl" if r.is_dir() else r
        if not f.is_file():
            _fail(f"{str(f)!r} does not exist")
        series.append((r.name if r.is_dir() else r.stem, f))
    console.print(f"wrote {plot_metrics(series, out, keys=('loss', 'ce'))}")
