"""Both tokenizers follow one convention: eos = pad = <|endoftext|>, <|mask|> present, Qwen chat format."""

from __future__ import annotations

import pytest

from rlvr.world.tasks import generate_tasks, to_corpus_text
from rlvr.world.tokenizer import load_tokenizer, train_bpe_tokenizer

CODE = "def get_value(xs):\n    return [v * 3 for v in xs if v % 2 == 0]  # ünïcode, tabs\t!\n"


@pytest.fixture(scope="module")
def bpe(tmp_path_factory):
    tasks = generate_tasks(400, "train", seed=0)
    out = tmp_path_factory.mktemp("tok")
    train_bpe_tokenizer([to_corpus_text(t) for t in tasks], out, vocab_size=512)
    return load_tokenizer(out)


def test_bpe_round_trip_and_special_tokens(bpe):
    assert len(bpe) == 512
    for text in (CODE, "", "   ", "<|mask|>x<|endoftext|>"):
        assert bpe.decode(bpe(text, add_special_tokens=False)["input_ids"]) == text
    assert bpe.eos_token == bpe.pad_token == "<|endoftext|>"
    ids = {
        t: bpe.convert_tokens_to_ids(t) for t in ("<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|mask|>")
    }
    assert ids == {"<|endoftext|>": 0, "<|im_start|>": 1, "<|im_end|>": 2, "<|mask|>": 3}
    assert bpe("a<|mask|>b", add_special_tokens=False)["input_ids"][1] == 3  # one token, never split
    assert len(bpe("def get_value(xs):", add_special_tokens=False)["input_ids"]) < 10  # BPE merged words


def test_bpe_chat_template(bpe):
    msgs = [{"role": "user", "content": "Write f."}]
    text = bpe.apply_chat_template(msgs, tokenize=False, add_generation_prompt=True)
    assert text == "<|im_start|>user\nWrite f.<|im_end|>\n<|im_start|>assistant\n"
    full = bpe.apply_chat_template(msgs + [{"role": "assistant", "content": "ok"}], tokenize=False)
    assert full == "<|im_start|>user\nWrite f.<|im_end|>\n<|im_start|>assistant\nok<|im_end|>\n"


def test_qwen_tokenizer_conventions():
    q = load_tokenizer("qwen")
    assert q.eos_token == q.pad_token == "<|endoftext|>" and q.eos_token_id == 151643
    mask = q.convert_tokens_to_ids("<|mask|>")
    assert mask == len(q) - 1 and mask > 151643
    assert q.decode(q(CODE, add_special_tokens=False)["input_ids"]) == CODE
    text = q.apply_chat_template(
        [{"role": "user", "content": "hi"}], tokenize=False, add_generation_prompt=True
    )
    assert text == "<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n"


def test_load_tokenizer_names_bad_path(tmp_path):
    with pytest.raises(FileNotFoundError, match="no_such_dir"):
        load_tokenizer(tmp_path / "no_such_dir")
