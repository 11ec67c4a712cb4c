"""The distribution installs one import name, ``rlvr``: the top-level folders sandbox/, rewards/ and
recipes/ go in as rlvr.sandbox, rlvr.rewards and rlvr.recipes, so no generic name can collide with
another distribution's. Built from a copy of the tree, so the checkout gets no build artefacts."""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MAPPED = {"rlvr": "rlvr", "sandbox": "rlvr/sandbox", "rewards": "rlvr/rewards", "recipes": "rlvr/recipes"}


def test_wheel_installs_only_rlvr_and_every_module_of_the_tree(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, src / name)
    for folder in MAPPED:
        shutil.copytree(ROOT / folder, src / folder, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    out = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", str(src), "-w", str(tmp_path / "dist")],
        capture_output=True, text=True, timeout=300,
    )
    assert out.returncode == 0, out.stderr
    (wheel,) = (tmp_path / "dist").glob("rlvr-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert {n.split("/")[0] for n in names} == {"rlvr", wheel.name.split("-py3")[0] + ".dist-info"}
    expected = {
        f"{MAPPED[folder]}/{p.relative_to(ROOT / folder).as_posix()}"
        for folder in MAPPED
        for p in (ROOT / folder).rglob("*.py")
        if "__pycache__" not in p.parts
    }
    assert expected - set(names) == set()  # a new subpackage must be listed in pyproject.toml
    entry_points = zipfile.ZipFile(wheel).read(wheel.name.split("-py3")[0] + ".dist-info/entry_points.txt").decode()
    assert "rlvr = rlvr.cli:app" in entry_points
