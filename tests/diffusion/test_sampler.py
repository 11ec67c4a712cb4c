"""The diffusion sampler: selection logic on hand-made logit tables, parity with the literal reference
transcription on tiny random Qwen2 models, batching, seeds, blocks, threshold and history."""

from __future__ import annotations

import math

import pytest
import torch

from rlvr.diffusion import DiffusionLM, GenerationOutput, generate
from rlvr.diffusion.sampler import EosPenalty, filter_top_k, filter_top_p, token_probs
from tests.conftest import make_tiny_qwen
from tests.diffusion.reference_sampler import reference_diffusion_generate

MASK = 4  # TableLM vocabulary: tokens 0..3, mask 4

# Probabilities of tokens 0..3 at canvas positions 0..3 (the mask token gets probability 0).
#            p1    margin  neg-entropy   argmax
# pos 0: .58  .44  -1.1417   0
# pos 1: .60  .35  -1.0331   1
# pos 2: .50  .00  -0.6931   0 (tie 0/1: the first index wins)
# pos 3: .85  .80  -0.5875   3
TABLE = [
    [0.58, 0.14, 0.14, 0.14],
    [0.10, 0.60, 0.25, 0.05],
    [0.50, 0.50, 0.00, 0.00],
    [0.05, 0.05, 0.05, 0.85],
]


class TableLM(torch.nn.Module):
    """A fake diffusion LM whose aligned logits at canvas position j of row b are log(table[b, j])."""

    def __init__(self, table, mask_token_id: int = MASK):
        super().__init__()
        probs = torch.tensor(table, dtype=torch.float32)
        probs = probs[None] if probs.dim() == 2 else probs
        self.table = torch.log(torch.cat([probs, torch.zeros(*probs.shape[:2], 1)], dim=-1))  # [R, L, V]
        self.mask_token_id = mask_token_id
        self.calls = 0

    def forward(self, x, attention_mask=None, tail=None):
        self.calls += 1
        B, N = x.shape
        R, L, V = self.table.shape
        out = torch.zeros(B, N, V)
        out[:, N - L :] = self.table.expand(B, L, V) if R == 1 else self.table
        return out[:, -tail:] if tail else out


def table_generate(table=TABLE, batch=1, **kw) -> GenerationOutput:
    model = TableLM(table)
    prompt = torch.zeros(batch, 2, dtype=torch.long)
    kw.setdefault("max_new_tokens", len(table[0]) if isinstance(table[0][0], list) else len(table))
    return generate(model, prompt, **kw)


def peaked_dlm(seed: int = 0) -> DiffusionLM:
    """A tiny random Qwen2 with a scaled LM head, so predictions differ by position (few exact ties)."""
    qwen = make_tiny_qwen(seed=seed)
    with torch.no_grad():
        qwen.lm_head.weight.mul_(40)
    return DiffusionLM.from_pretrained(qwen, mask_token_id=63)


IDS = torch.tensor([[1, 1, 5, 6, 7], [3, 4, 5, 6, 7], [1, 1, 1, 9, 8]])
ATTN = torch.tensor([[0, 0, 1, 1, 1], [1, 1, 1, 1, 1], [0, 0, 0, 1, 1]])


# ----------------------------------------------------------------------------- selection logic
@pytest.mark.parametrize(
    "alg, expected",
    [
        # steps=4 on 4 tokens, reference schedule k = [0, 1, 1, 2]: nothing, best, second, the other two
        ("maskgit_plus", [3, 2, 3, 1]),  # p1 order: pos3 .85, pos1 .60, then pos0/pos2
        ("topk_margin", [2, 3, 3, 1]),  # margin order: pos3 .80, pos0 .44, then pos1/pos2
        ("entropy", [3, 3, 2, 1]),  # neg-entropy order: pos3, pos2, then pos1/pos0
    ],
)
def test_confidence_algorithms_commit_in_confidence_order(alg, expected):
    out = table_generate(alg=alg, steps=4)
    assert out.history.decode_step.tolist() == [expected]
    assert out.sequences.tolist() == [[0, 0, 0, 1, 0, 3]]
    assert out.history.tokens_per_step().tolist() == [[0, 1, 1, 2]]
    assert out.history.num_steps == 4


def test_origin_reveals_everything_by_the_last_step_reproducibly():
    a = table_generate(alg="origin", steps=3, seeds=[5])
    b = table_generate(alg="origin", steps=3, seeds=[5])
    assert torch.equal(a.history.decode_step, b.history.decode_step)
    assert a.sequences.tolist() == [[0, 0, 0, 1, 0, 3]]
    assert int(a.history.tokens_per_step().sum()) == 4
    assert (a.history.decode_step >= 0).all()


def test_unknown_alg_and_bad_arguments_name_the_problem():
    with pytest.raises(ValueError, match="unknown alg 'greedy'"):
        table_generate(alg="greedy", steps=4)
    with pytest.raises(ValueError, match="not a multiple of block_length=3"):
        table_generate(alg="entropy", steps=4, block_length=3)
    with pytest.raises(ValueError, match="not divisible by the number of blocks 2"):
        table_generate(alg="entropy", steps=3, block_length=2)
    with pytest.raises(ValueError, match="seeds has 1 entries but the batch has 2 rows"):
        table_generate(batch=2, alg="entropy", steps=4, seeds=[1])
    with pytest.raises(ValueError, match="threshold"):
        table_generate(alg="origin", steps=4, threshold=0.9)
    with pytest.raises(ValueError, match=r"LEFT-padded; rows \[0\]"):
        generate(
            TableLM(TABLE),
            torch.zeros(1, 3, dtype=torch.long),
            torch.tensor([[1, 1, 0]]),
            max_new_tokens=4,
            steps=4,
        )


# ----------------------------------------------------------------------------- distributions
def test_top_p_and_top_k_filters_on_hand_computed_tensors():
    logits = torch.log(torch.tensor([[0.5, 0.3, 0.15, 0.05]]))
    floor = torch.finfo(torch.float32).min
    # cumulative mass 0.5, 0.8, 0.95, 1.0: a token goes once the mass before it exceeds top_p
    assert (filter_top_p(logits, 0.7) == floor).tolist() == [[False, False, True, True]]
    assert (filter_top_p(logits, 0.45) == floor).tolist() == [[False, True, True, True]]
    assert (filter_top_p(logits, 0.9) == floor).tolist() == [[False, False, False, True]]
    assert (filter_top_k(logits, 2) == floor).tolist() == [[False, False, True, True]]
    ties = torch.tensor([[1.0, 2.0, 2.0, 0.0]])
    assert (filter_top_k(ties, 1) == floor).tolist() == [[True, False, False, True]]  # boundary ties survive
    probs = token_probs(logits, temperature=1.0, top_p=0.7, top_k=None)
    torch.testing.assert_close(probs, torch.tensor([[0.625, 0.375, 0.0, 0.0]]))
    probs = token_probs(logits, temperature=0.5, top_p=None, top_k=3)  # p^2 renormalised over the top 3
    sq = torch.tensor([0.25, 0.09, 0.0225, 0.0])
    torch.testing.assert_close(probs, (sq / sq.sum())[None])


def test_eos_penalty_additive_and_factor_forms():
    logits = torch.log(torch.tensor([[0.05, 0.05, 0.05, 0.85]]))
    add = token_probs(logits, 1.0, None, None, [EosPenalty([3], additive=3.0)])
    raw = torch.tensor([0.05, 0.05, 0.05, 0.85 * math.exp(-3.0)])
    torch.testing.assert_close(add, (raw / raw.sum())[None])
    # at temperature 0.5 the additive penalty doubles, the factor stays an exact odds multiplier
    add_t = token_probs(logits, 0.5, None, None, [EosPenalty([3], additive=3.0)])
    raw_t = torch.tensor([0.05, 0.05, 0.05, 0.85 * math.exp(-3.0)]) ** 2
    torch.testing.assert_close(add_t, (raw_t / raw_t.sum())[None])
    fac_t = token_probs(logits, 0.5, None, None, [EosPenalty([3], factor=0.1)])
    raw_f = torch.tensor([0.05**2, 0.05**2, 0.05**2, 0.85**2 * 0.1])
    torch.testing.assert_close(fac_t, (raw_f / raw_f.sum())[None])
    with pytest.raises(ValueError, match="exactly one of"):
        EosPenalty([3], additive=1.0, factor=0.5)


def test_eos_penalty_changes_what_the_sampler_writes_and_when():
    plain = table_generate(alg="maskgit_plus", steps=4)
    assert plain.sequences[0, -1] == 3  # position 3 predicts token 3 (".85")
    pen = table_generate(alg="maskgit_plus", steps=4, logits_processors=[EosPenalty([3], additive=3.0)])
    # token 3 drops to .042 at position 3, so token 0 (first of three tied .05) is written there instead,
    # and position 3 (now p1 = .26) is committed last instead of first; renormalised p1 of the others:
    # pos0 .58/.867 = .669, pos1 .60/.952 = .630, pos2 .50
    assert pen.sequences[0, -1] == 0
    assert pen.history.decode_step.tolist() == [[1, 2, 3, 3]]


# ----------------------------------------------------------------------------- schedules, blocks, threshold
def test_blocks_decode_left_to_right_with_steps_split_evenly():
    # even schedule, 1 token per step; within each block the more confident position goes first
    out = table_generate(alg="maskgit_plus", steps=4, block_length=2, schedule="even")
    assert out.history.decode_step.tolist() == [[1, 0, 3, 2]]
    free = table_generate(alg="maskgit_plus", steps=4, schedule="even")
    assert free.history.decode_step.tolist() == [[2, 1, 3, 0]]  # pos3 first without blocks
    # the reference schedule with 2 steps per 2-token block: k = int(2 * 0.4995) = 0, then both
    ref = table_generate(alg="entropy", steps=4, block_length=2)
    assert ref.history.decode_step.tolist() == [[1, 1, 3, 3]]


def test_threshold_commits_all_confident_tokens_and_stops_early():
    model = TableLM(TABLE)
    out = generate(
        model, torch.zeros(1, 2, dtype=torch.long), max_new_tokens=4, steps=4, alg="entropy", threshold=0.55
    )
    # step 0: p(x0) > .55 at positions 0 (.58), 1 (.60), 3 (.85); step 1: the floor of one takes position 2
    assert out.history.decode_step.tolist() == [[0, 0, 1, 0]]
    assert out.history.num_steps == 2 and model.calls == 2
    assert out.sequences.tolist() == [[0, 0, 0, 1, 0, 3]]


def test_threshold_rows_progress_independently_through_blocks():
    confident = [[0.9, 0.1, 0.0, 0.0]] * 4
    unsure = [[0.4, 0.3, 0.2, 0.1], [0.1, 0.45, 0.25, 0.2], [0.2, 0.1, 0.5, 0.2], [0.3, 0.2, 0.1, 0.4]]
    kw = dict(max_new_tokens=4, steps=4, alg="maskgit_plus", threshold=0.8, block_length=2)
    both = generate(TableLM([confident, unsure]), torch.zeros(2, 2, dtype=torch.long), **kw)
    # the confident row fills a block per step; the unsure one takes one token per step (its floor)
    assert both.history.decode_step.tolist() == [[0, 0, 1, 1], [1, 0, 2, 3]]
    assert both.history.num_steps == 4
    assert both.sequences[:, 2:].tolist() == [[0, 0, 0, 0], [0, 1, 2, 3]]
    alone = generate(TableLM([confident]), torch.zeros(1, 2, dtype=torch.long), **kw)
    assert alone.history.decode_step.tolist() == [[0, 0, 1, 1]] and alone.history.num_steps == 2


# ----------------------------------------------------------------------------- parity with the reference
@pytest.mark.parametrize("alg", ["maskgit_plus", "topk_margin", "entropy"])
@pytest.mark.parametrize("length, steps", [(8, 8), (8, 4), (12, 5), (16, 3)])
def test_token_parity_with_reference_mixed_prompt_lengths(alg, length, steps):
    for dlm in (DiffusionLM.from_pretrained(make_tiny_qwen(), mask_token_id=63), peaked_dlm()):
        ref = reference_diffusion_generate(
            dlm.model, IDS, ATTN, mask_token_id=63, max_new_tokens=length, steps=steps, alg=alg
        )
        ours = generate(dlm, IDS, ATTN, max_new_tokens=length, steps=steps, alg=alg)
        assert torch.equal(ours.sequences, ref)


@pytest.mark.parametrize("alg", ["maskgit_plus", "entropy"])
def test_token_parity_with_reference_unpadded_and_filtered(alg):
    dlm = peaked_dlm(seed=1)
    ids = torch.tensor([[3, 4, 5, 6], [7, 8, 9, 10]])
    kw = dict(max_new_tokens=10, steps=5, alg=alg, top_p=0.9, top_k=20)
    ref = reference_diffusion_generate(dlm.model, ids, None, mask_token_id=63, **kw)
    assert torch.equal(generate(dlm, ids, **kw).sequences, ref)


def test_origin_matches_reference_under_the_global_generator():
    dlm = peaked_dlm()
    torch.manual_seed(123)
    ref = reference_diffusion_generate(dlm.model, IDS, ATTN, mask_token_id=63, max_new_tokens=8, steps=4)
    torch.manual_seed(123)
    assert torch.equal(generate(dlm, IDS, ATTN, max_new_tokens=8, steps=4).sequences, ref)


# ----------------------------------------------------------------------------- batching and seeds
@pytest.mark.parametrize("alg", ["maskgit_plus", "topk_margin", "entropy"])
def test_left_padded_batch_equals_each_row_alone(alg):
    dlm = peaked_dlm()
    kw = dict(max_new_tokens=12, steps=6, alg=alg)
    batch = generate(dlm, IDS, ATTN, **kw)
    for r in range(IDS.shape[0]):
        real = IDS[r, ATTN[r].bool()][None]
        alone = generate(dlm, real, **kw)
        assert torch.equal(batch.sequences[r, -12:], alone.sequences[0, -12:])
        assert torch.equal(batch.history.decode_step[r], alone.history.decode_step[0])


@pytest.mark.parametrize(
    "kw",
    [
        dict(alg="entropy", temperature=1.0, top_p=0.95),
        dict(alg="maskgit_plus", temperature=0.7, alg_temp=0.5),
        dict(alg="origin", temperature=1.0),
        dict(alg="entropy", temperature=1.0, threshold=0.3, block_length=6),
    ],
)
def test_per_row_seeds_are_reproducible_and_batch_independent(kw):
    dlm = peaked_dlm()
    kw = dict(max_new_tokens=12, steps=6, **kw)
    seeds = [11, 22, 33]
    a = generate(dlm, IDS, ATTN, seeds=seeds, **kw)
    b = generate(dlm, IDS, ATTN, seeds=seeds, **kw)
    assert torch.equal(a.sequences, b.sequences)
    assert torch.equal(a.history.decode_step, b.history.decode_step)
    other = generate(dlm, IDS, ATTN, seeds=[11, 99, 33], **kw)
    assert not torch.equal(other.sequences[1], a.sequences[1])  # a different seed gives another sample
    for r in range(3):  # the same row with the same seed, alone or in another batch, samples the same
        real = IDS[r, ATTN[r].bool()][None]
        alone = generate(dlm, real, seeds=[seeds[r]], **kw)
        assert torch.equal(alone.sequences[0, -12:], a.sequences[r, -12:])
        assert torch.equal(alone.history.decode_step[0], a.history.decode_step[r])


# ----------------------------------------------------------------------------- history
@pytest.mark.parametrize(
    "length, steps, per_step",
    [(8, 8, [0, 1, 1, 1, 1, 1, 1, 2]), (8, 4, [1, 2, 2, 3]), (8, 3, [2, 2, 4])],
)
def test_history_matches_the_reference_schedule(length, steps, per_step):
    # k = int(n * (1 - s/t)) with t, s from linspace(1, 1e-3, steps + 1); e.g. 8/4: 8 * .24975 -> 1,
    # 7 * .33289 -> 2, 5 * .49900 -> 2, then the 3 left. 8/8: the first step commits nothing.
    dlm = peaked_dlm()
    out = generate(dlm, IDS, ATTN, max_new_tokens=length, steps=steps, alg="entropy", output_history=True)
    hist = out.history
    canvas = out.sequences[:, -length:]
    assert not (canvas == 63).any()
    assert hist.tokens_per_step().tolist() == [per_step] * 3
    assert ((hist.decode_step >= 0) & (hist.decode_step < steps)).all()
    assert len(hist.snapshots) == steps
    for s, snap in enumerate(hist.snapshots):  # a snapshot is masked exactly where decoding comes later
        assert torch.equal(snap == 63, hist.decode_step > s)
    assert torch.equal(hist.snapshots[-1], canvas)


def test_generate_without_history_snapshots(tiny_dlm):
    out = generate(tiny_dlm, IDS, ATTN, max_new_tokens=6, steps=3, alg="maskgit_plus")
    assert out.sequences.shape == (3, 11) and out.history.snapshots is None
    assert torch.equal(out.sequences[:, :5], IDS)
    assert out.history.decode_step.shape == (3, 6)
