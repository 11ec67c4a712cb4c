"""Does Dream's own loading code accept what ``rlvr convert --to dream`` writes, and compute the same logits?

Dream's code (``configuration_dream.py``, ``modeling_dream.py``, ``generation_utils.py``) is not part of
rlvr and cannot be downloaded on the CI machines, so this is a check to run by hand, not a test:

    python benchmarks/dream_compat.py --dream-code PATH/TO/Dream-Coder/instruct/src/inference/fast_dllm

It builds a tiny model, writes it in rlvr's format and converts it to a Dream folder with that code, then
loads the Dream folder with ``AutoModel.from_pretrained(..., trust_remote_code=True)`` under the
transformers version Dream's code was written for (4.46.2, installed into ``--deps`` on first use; it
does not run on transformers 5), and compares its shifted logits with rlvr's ``DiffusionLM`` logits.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Annotated

import typer

app = typer.Typer(add_completion=False)

DREAM_SIDE = """
import json, sys, torch, transformers
from transformers import AutoModel, AutoTokenizer
folder, ids = sys.argv[1], torch.tensor(json.loads(sys.argv[2]))
model = AutoModel.from_pretrained(folder, trust_remote_code=True, torch_dtype=torch.float32).eval()
tok = AutoTokenizer.from_pretrained(folder, trust_remote_code=True)
with torch.no_grad():
    logits = model(ids).logits
logits = torch.cat([logits[:, :1], logits[:, :-1]], 1)  # the shift Dream's sampler applies
torch.save(logits, sys.argv[3])
print(json.dumps({"transformers": transformers.__version__, "class": type(model).__name__,
                  "mask_token_id": model.config.mask_token_id, "tokenizer": type(tok).__name__}))
"""


@app.command()
def main(
    dream_code: Annotated[Path, typer.Option(help="Folder with Dream's configuration_dream.py / modeling_dream.py.")],
    deps: Annotated[Path, typer.Option(help="Where transformers 4.46.2 is installed for Dream's code.")] = Path(
        "/tmp/rlvr-dream-deps"
    ),
) -> None:
    import torch

    from rlvr.diffusion import DiffusionLM
    from rlvr.diffusion.convert import convert
    from rlvr.world.model import build_tiny_qwen2
    from rlvr.world.tokenizer import train_bpe_tokenizer

    if not (dream_code / "modeling_dream.py").is_file():
        raise typer.BadParameter(f"--dream-code {str(dream_code)!r} has no modeling_dream.py")
    if not (deps / "transformers").is_dir():
        subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "-t", str(deps),
                        "transformers==4.46.2", "tokenizers==0.20.3", "huggingface_hub==0.26.5"], check=True)
    root = Path(tempfile.mkdtemp(prefix="rlvr-dream-"))
    tok = train_bpe_tokenizer(["def f(x):\n    return x + 1\n", "print('hi')"] * 20, vocab_size=300)
    model = build_tiny_qwen2(tok, seed=3, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                             num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=64)
    DiffusionLM.from_pretrained(model, tokenizer=tok).save_pretrained(root / "rlvr")
    dream = convert(root / "rlvr", root / "dream", "Dream", code_from=dream_code)
    ids = [[5, 6, 7, 8, 9, 10], [11, 12, 13, 14, 15, 16]]
    with torch.no_grad():
        ours = DiffusionLM.from_pretrained(root / "rlvr").eval()(torch.tensor(ids))
    out = subprocess.run(
        [sys.executable, "-c", DREAM_SIDE, str(dream), json.dumps(ids), str(root / "theirs.pt")],
        env={"PYTHONPATH": str(deps), "PATH": "/usr/bin:/bin", "HF_HUB_OFFLINE": "1"},
        capture_output=True, text=True, check=False,
    )
    if out.returncode:
        raise SystemExit(f"Dream's code failed to load the folder:\n{out.stderr[-3000:]}")
    info = json.loads(out.stdout.strip().splitlines()[-1])
    diff = (torch.load(root / "theirs.pt") - ours).abs().max().item()
    print(json.dumps({**info, "max_abs_logit_diff": diff, "folder": str(dream)}))


if __name__ == "__main__":
    app()
