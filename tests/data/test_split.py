"""`rlvr data split`: an i.i.d. split that never puts one prompt on both sides."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from rlvr.cli import app
from rlvr.data.split import prompt_key, split_rows
from tests.rewards.helpers import code_row


def _rows(n: int) -> list[dict]:
    return [code_row([f"assert f{i}(1) == {i}"], entry_point=f"f{i}", prompt=f"Write f{i}.", index=i) for i in range(n)]


def test_split_is_seeded_disjoint_and_keeps_duplicates_together():
    rows = _rows(40)
    rows += [dict(rows[3]), dict(rows[3])]  # the same prompt three times
    rest, held = split_rows(rows, 0.25, seed=0)
    assert len(rest) + len(held) == 42
    assert not {prompt_key(r) for r in rest} & {prompt_key(r) for r in held}
    key3 = prompt_key(rows[3])
    assert sum(prompt_key(r) == key3 for r in rest) in (0, 3) and sum(prompt_key(r) == key3 for r in held) in (0, 3)
    assert len({prompt_key(r) for r in held}) == 10  # 25% of the 40 distinct prompts
    again = split_rows(rows, 0.25, seed=0)
    assert again == (rest, held)
    assert split_rows(rows, 0.25, seed=1)[1] != held
    # order within each side is the input order
    assert [r["extra_info"]["index"] for r in held] == sorted(r["extra_info"]["index"] for r in held)


def test_split_cli_writes_both_files_and_rejects_a_bad_fraction(tmp_path):
    src = tmp_path / "pool.jsonl"
    src.write_text("".join(json.dumps(r) + "\n" for r in _rows(20)))
    a, b = tmp_path / "train.jsonl", tmp_path / "heldout.jsonl"
    res = CliRunner().invoke(app, ["data", "split", str(src), str(a), str(b), "--fraction", "0.2", "--seed", "3"])
    assert res.exit_code == 0, res.output
    assert (len(a.read_text().splitlines()), len(b.read_text().splitlines())) == (16, 4)
    assert "16 rows -> " in res.output and "4 rows -> " in res.output
    bad = CliRunner().invoke(app, ["data", "split", str(src), str(a), str(b), "--fraction", "1.5"])
    assert bad.exit_code == 2 and "fraction must be in (0, 1), got 1.5" in bad.output
    missing = CliRunner().invoke(app, ["data", "split", str(tmp_path / "nope.jsonl"), str(a), str(b)])
    assert missing.exit_code == 2 and "nope.jsonl" in missing.output
