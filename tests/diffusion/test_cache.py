"""KV-cached decoding and early exit: exact where it must be exact.

* caching disabled == the reference; a cache refreshed at every step == the uncached sampler;
* a window pass over an unchanged canvas == the full forward (positions, masks, shift, per-row writes);
* a batch of mixed (left-padded) prompt lengths == each row alone, for every cache mode;
* history / decoding-order analysis under caching; early exit leaves finished rows unchanged.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from rlvr.diffusion import generate
from rlvr.diffusion.attention import bidirectional_attention_mask
from rlvr.diffusion.cache import (
    CachedForward,
    ForwardStats,
    dual_window,
    prefix_window,
    window_attention_mask,
)
from rlvr.diffusion.order import history_records, order_stats
from rlvr.diffusion.sampler import eos_tail
from rlvr.rollout.config import SamplerCfg
from tests.diffusion.reference_sampler import reference_diffusion_generate
from tests.diffusion.test_sampler import ATTN, IDS, peaked_dlm

MASK = 63
MODES = ["prefix", "dual"]


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """These models are tiny: one thread is faster, and far faster on a loaded 2-core machine."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def dlm():
    return peaked_dlm()


def _rows_alone(dlm, kw, seeds=None):
    return [
        generate(dlm, IDS[r, ATTN[r].bool()][None], seeds=None if seeds is None else [seeds[r]], **kw)
        for r in range(IDS.shape[0])
    ]


# ----------------------------------------------------------------------------- windows, hand-computed
def test_prefix_and_dual_windows_on_hand_computed_rows():
    starts = torch.tensor([5, 9])  # two rows in different blocks of 4, sequence length 13
    idx, write, keep = prefix_window(starts, 13, 4)
    assert idx.tolist() == [list(range(4, 13))] * 2  # one window from the earliest block_start - 1
    assert write.tolist() == [[True] * 9, [False] * 4 + [True] * 5]  # row 1 keeps its cache for 4..7
    assert keep.tolist() == [[0, 1, 2, 3, 4], [4, 5, 6, 7, 8]]  # positions 4..8 and 8..12
    idx, write, keep = dual_window(starts, 13, 4)
    assert idx.tolist() == [[4, 5, 6, 7, 8], [8, 9, 10, 11, 12]]
    assert write.all() and keep.tolist() == [[0, 1, 2, 3, 4]] * 2


def test_window_attention_mask_is_the_rows_of_the_bidirectional_mask():
    m = torch.tensor([[0, 0, 1, 1, 1, 1], [1, 1, 1, 1, 1, 1], [0, 1, 1, 1, 1, 1]])
    idx = torch.tensor([[0, 1, 2], [3, 4, 5], [1, 2, 3]])
    full = bidirectional_attention_mask(m)
    expected = torch.stack([full[b, :, idx[b]] for b in range(3)])
    assert torch.equal(window_attention_mask(m, idx), expected)
    assert window_attention_mask(m, idx)[0, 0, 0].tolist() == [True, False, False, False, False, False]


def test_eos_tail_on_hand_made_canvases():
    M, E = 9, 1  # mask id, stop token
    canvas = torch.tensor(
        [
            [5, 6, E, M, 7, M],  # terminated: masks after the first stop are filled, the 7 is kept
            [5, M, E, M, M, M],  # a mask before the stop: not yet
            [5, 6, 7, M, M, M],  # no stop token
            [E, M, M, M, M, M],  # stop at position 0
        ]
    )
    fill = eos_tail(canvas, M, torch.tensor([E]))
    assert fill.int().tolist() == [
        [0, 0, 0, 1, 0, 1],
        [0, 0, 0, 0, 0, 0],
        [0, 0, 0, 0, 0, 0],
        [0, 1, 1, 1, 1, 1],
    ]


# ----------------------------------------------------------------------------- the cached forward
@pytest.mark.parametrize("mode", MODES)
@torch.no_grad()
def test_window_pass_over_an_unchanged_canvas_equals_the_full_forward(dlm, mode):
    L, block = 12, 4
    P = IDS.shape[1]
    x = F.pad(IDS, (0, L), value=MASK)
    x[:, P : P + 6] = torch.randint(2, 60, (3, 6), generator=torch.Generator().manual_seed(0))
    mask = F.pad(ATTN, (0, L), value=1)
    full = dlm(x, mask)[:, P:]
    stats = ForwardStats()
    fwd = CachedForward(dlm, mode, mask, P, block, None, 3, stats)
    blk, rows, live = torch.tensor([0, 1, 2]), torch.arange(3), torch.ones(3, dtype=torch.bool)
    fresh, col0 = fwd(x, rows, blk, live)  # first step of each block: a refresh (the full forward)
    reused, col1 = fwd(x, rows, blk, live)  # then a window pass over the cache
    subset, _ = fwd(x, torch.tensor([0, 2]), blk, live)  # a sub-batch reads a copy of its rows
    assert col0.tolist() == col1.tolist() == [0, 4, 8]
    for r in range(3):
        ref = full[r, 4 * r : 4 * r + 4]
        assert torch.equal(fresh[r], ref)
        torch.testing.assert_close(reused[r], ref, rtol=0, atol=1e-5)
        assert torch.equal(reused[r].argmax(-1), ref.argmax(-1))
    torch.testing.assert_close(subset, reused[[0, 2]], rtol=0, atol=1e-5)
    window_len = {"prefix": 13, "dual": 5}[mode]  # from min(block_start) - 1 to the end / block + 1
    assert (stats.calls, stats.refreshes) == (3, 3)
    assert stats.tokens == 3 * (5 + 12) + 3 * window_len + 2 * window_len
    # the cache is really read: corrupting the cached keys of two real prompt tokens changes the logits
    for k in fwd.kv.keys:
        k[:, :, 3:5] = 0
    corrupted, _ = fwd(x, rows, blk, live)
    assert (corrupted - reused).abs().amax(dim=(1, 2)).gt(1e-3).all()


def test_cache_needs_a_prompt_and_known_names():
    with pytest.raises(ValueError, match="unknown cache 'full'"):
        generate(peaked_dlm(), IDS, ATTN, max_new_tokens=4, steps=4, cache="full")
    with pytest.raises(ValueError, match="cache_refresh=2 needs cache='prefix' or 'dual'"):
        generate(peaked_dlm(), IDS, ATTN, max_new_tokens=4, steps=4, cache_refresh=2)
    with pytest.raises(ValueError, match="at least one token"):
        generate(peaked_dlm(), IDS[:, :0], max_new_tokens=4, steps=4, cache="dual")
    with pytest.raises(ValueError, match="early_exit='eos' needs a per-row schedule"):
        generate(peaked_dlm(), IDS, max_new_tokens=4, steps=4, early_exit="eos", schedule="reference")
    with pytest.raises(ValueError, match="unknown early_exit 'soon'"):
        generate(peaked_dlm(), IDS, max_new_tokens=4, steps=4, early_exit="soon")


# ----------------------------------------------------------------------------- exactness
def test_caching_disabled_is_the_reference(dlm):
    kw = dict(max_new_tokens=12, steps=6, alg="entropy")
    ref = reference_diffusion_generate(dlm.model, IDS, ATTN, mask_token_id=MASK, **kw)
    out = generate(dlm, IDS, ATTN, cache="none", early_exit="none", **kw)
    assert torch.equal(out.sequences, ref)
    assert (out.stats.calls, out.stats.rows, out.stats.tokens) == (6, 18, 18 * 17)


SETTINGS = {
    "blocks": dict(alg="entropy", block_length=4, steps=6),
    "one_block": dict(alg="maskgit_plus", block_length=12, steps=4),
    "threshold": dict(alg="entropy", block_length=4, steps=12, threshold=0.3),  # rows in different blocks
    "sampled": dict(alg="topk_margin", block_length=6, steps=6, temperature=1.0, top_p=0.9),  # per-row seeds
}


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("kw", SETTINGS.values(), ids=SETTINGS.keys())
def test_cache_refreshed_every_step_equals_the_uncached_sampler(dlm, mode, kw):
    kw = dict(max_new_tokens=12, seeds=[1, 2, 3], **kw)
    ref = generate(dlm, IDS, ATTN, **kw)
    out = generate(dlm, IDS, ATTN, cache=mode, cache_refresh=1, **kw)
    assert torch.equal(out.sequences, ref.sequences)
    assert torch.equal(out.history.decode_step, ref.history.decode_step)
    assert out.stats.refreshes == out.stats.rows == ref.stats.rows


@pytest.mark.parametrize("mode, refresh", [("none", None), ("prefix", None), ("dual", None), ("dual", 2)])
@pytest.mark.parametrize("kw", SETTINGS.values(), ids=SETTINGS.keys())
def test_batch_of_mixed_prompt_lengths_equals_each_row_alone(dlm, mode, refresh, kw):
    kw = dict(max_new_tokens=12, cache=mode, cache_refresh=refresh, **kw)
    seeds = [1, 2, 3]
    batch = generate(dlm, IDS, ATTN, seeds=seeds, **kw)
    for r, alone in enumerate(_rows_alone(dlm, kw, seeds)):
        assert torch.equal(batch.sequences[r, -12:], alone.sequences[0, -12:])
        assert torch.equal(batch.history.decode_step[r], alone.history.decode_step[0])


def test_threshold_moves_rows_through_blocks_independently_under_the_cache(dlm):
    out = generate(dlm, IDS, ATTN, max_new_tokens=12, cache="dual", **SETTINGS["threshold"])
    steps_per_row = (out.history.decode_step.max(1).values + 1).tolist()
    assert len(set(steps_per_row)) > 1  # the rows finish at different steps ...
    assert out.history.num_steps == max(steps_per_row) < 12  # ... and decoding stops when all are done
    # each row refreshes once per block (3 blocks): refreshes are per row, not per batch
    assert out.stats.refreshes == 9


@pytest.mark.parametrize("mode", MODES)
def test_fixed_tokens_per_step_schedule_with_the_cache(dlm, mode):
    out = generate(
        dlm, IDS, ATTN, max_new_tokens=12, steps=6, alg="entropy", block_length=4, schedule="even", cache=mode
    )
    assert out.history.tokens_per_step().tolist() == [[2] * 6] * 3
    assert out.stats.calls == 6 and out.stats.refreshes == 9


# ----------------------------------------------------------------------------- history and order
@pytest.mark.parametrize("mode", MODES)
def test_history_and_decoding_order_under_caching(dlm, mode):
    kw = dict(max_new_tokens=12, steps=6, alg="entropy", block_length=4, output_history=True)
    out = generate(dlm, IDS, ATTN, cache=mode, **kw)
    hist = out.history
    canvas = out.sequences[:, -12:]
    assert not (canvas == MASK).any() and hist.num_steps == 6 and len(hist.snapshots) == 6
    for s, snap in enumerate(hist.snapshots):  # masked exactly where decoding comes later
        assert torch.equal(snap == MASK, hist.decode_step > s)
    # blocks of 4 with 2 steps each: block b is decoded at steps 2b and 2b + 1, so left to right by block
    assert (hist.decode_step // 2).tolist() == [[0] * 4 + [1] * 4 + [2] * 4] * 3
    records = history_records(out)
    stats = [order_stats(r["decode_step"], r["num_steps"]) for r in records]
    assert [st.num_steps for st in stats] == [6, 6, 6]
    assert all(st.tokens_per_step == 2.0 and st.n_decoded == 12 for st in stats)
    assert all(st.spearman > 0.8 and st.sketch_first == 0.0 for st in stats)
    # refreshed every step, the order statistics are those of the uncached sampler
    exact = generate(dlm, IDS, ATTN, cache=mode, cache_refresh=1, **kw)
    plain = generate(dlm, IDS, ATTN, **kw)
    assert history_records(exact) == history_records(plain)


# ----------------------------------------------------------------------------- early exit
@pytest.mark.parametrize("mode", ["none", *MODES])
def test_finished_rows_leave_the_batch_without_changing_outputs(dlm, mode):
    kw = dict(max_new_tokens=12, cache=mode, **SETTINGS["threshold"])
    full = generate(dlm, IDS, ATTN, **kw)
    shrunk = generate(dlm, IDS, ATTN, early_exit="finished", **kw)
    assert torch.equal(shrunk.sequences, full.sequences)
    assert torch.equal(shrunk.history.decode_step, full.history.decode_step)
    assert shrunk.stats.rows < full.stats.rows  # finished rows stopped costing forwards
    assert shrunk.stats.tokens < full.stats.tokens


@pytest.mark.parametrize("mode", ["none", *MODES])
def test_eos_early_exit_keeps_each_row_up_to_its_first_stop_token(mode):
    dlm = peaked_dlm()
    kw = dict(max_new_tokens=12, steps=12, alg="entropy", block_length=4, schedule="per_row", cache=mode)
    plain = generate(dlm, IDS, ATTN, **kw)
    canvas = plain.sequences[:, -12:]
    # make a token the model writes early in row 0 the stop token (eos = pad), so rows terminate early
    stop = int(canvas[0, 2])
    dlm.eos_token_id = dlm.pad_token_id = stop
    out = generate(dlm, IDS, ATTN, early_exit="eos", **kw)
    new = out.sequences[:, -12:]
    exited = 0
    for r in range(3):
        hits = (canvas[r] == stop).nonzero().flatten().tolist()
        if not hits:  # never stops: the whole row is unchanged
            assert torch.equal(new[r], canvas[r])
            continue
        e = hits[0]
        assert torch.equal(new[r, : e + 1], canvas[r, : e + 1])  # the completion itself is unchanged
        assert torch.equal(out.history.decode_step[r, : e + 1], plain.history.decode_step[r, : e + 1])
        filled = out.history.decode_step[r] == -1
        assert (new[r, filled] == stop).all()  # the masks left after it were padded, not decoded
        kept = ~filled
        assert torch.equal(new[r, kept], canvas[r, kept])
        exited += int(filled.any())
    assert exited >= 1 and out.stats.rows < plain.stats.rows


def test_sampler_config_carries_the_cache_options():
    cfg = SamplerCfg(cache="dual", cache_refresh=4, block_length=32, early_exit="eos", schedule="even")
    kw = cfg.generate_kwargs()
    assert {k: kw[k] for k in ("cache", "cache_refresh", "early_exit", "schedule")} == {
        "cache": "dual",
        "cache_refresh": 4,
        "early_exit": "eos",
        "schedule": "even",
    }
    assert SamplerCfg().generate_kwargs()["cache"] == "none"
