"""The import graph of every rlvr module has no cycle, lazy imports inside functions included (a cycle
hidden behind a function-level import, like the old model -> sampler -> cache -> model, still ties the
modules into one knot that cannot be read or tested apart)."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
FOLDERS = {"rlvr": "rlvr", "rlvr.sandbox": "sandbox", "rlvr.rewards": "rewards", "rlvr.recipes": "recipes"}


def _modules() -> dict[str, Path]:
    out = {}
    for pkg, folder in FOLDERS.items():
        for p in (ROOT / folder).rglob("*.py"):
            parts = [x for x in p.relative_to(ROOT / folder).with_suffix("").parts if x != "__init__"]
            out[".".join([pkg, *parts])] = p
    return out


def _graph(mods: dict[str, Path]) -> dict[str, set[str]]:
    graph = {}
    for name, path in mods.items():
        deps = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                for alias in node.names:  # `from pkg import submodule` depends on the submodule
                    full = f"{node.module}.{alias.name}"
                    deps.add(full if full in mods else node.module)
            elif isinstance(node, ast.Import):
                deps.update(alias.name for alias in node.names)
        graph[name] = {d for d in deps if d in mods and d != name}
    return graph


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(v: str) -> list[str] | None:
        state[v] = 1
        path.append(v)
        for w in sorted(graph[v]):
            if state.get(w) == 1:
                return path[path.index(w) :] + [w]
            if w not in state and (found := visit(w)):
                return found
        state[v] = 2
        path.pop()
        return None

    for v in sorted(graph):
        if v not in state and (found := visit(v)):
            return found
    return None


def test_no_import_cycle_anywhere():
    mods = _modules()
    assert "rlvr.diffusion.model" in mods and "rlvr.sandbox.client" in mods and "rlvr.grpo.controller" in mods
    assert _cycle(_graph(mods)) is None, " -> ".join(_cycle(_graph(mods)))


def test_the_cycle_finder_finds_the_old_diffusion_knot():
    graph = {
        "rlvr.diffusion.model": {"rlvr.diffusion.sampler"},
        "rlvr.diffusion.sampler": {"rlvr.diffusion.cache"},
        "rlvr.diffusion.cache": {"rlvr.diffusion.model"},
    }
    assert _cycle(graph) == ["rlvr.diffusion.cache", "rlvr.diffusion.model", "rlvr.diffusion.sampler", "rlvr.diffusion.cache"]
    model = _graph(_modules())["rlvr.diffusion.model"]
    # the model needs the attention helpers and the checkpoint reader, never the sampler or its caches
    assert model == {"rlvr.diffusion.attention", "rlvr.diffusion.checkpoints"}
