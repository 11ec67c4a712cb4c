"""Languages the sandbox runs: one registry entry each (add a language here and its packages in image.SPEC).

The runner inside the container is language-agnostic: it is told which file to write, which command
compiles it and which command runs it. Commands use absolute paths because the runner execs them
directly (no shell, no PATH search for the first word).
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Language:
    name: str
    source_name: str
    run: tuple[str, ...]
    compile: tuple[str, ...] | None = None
    compile_time_limit_s: float = 10.0
    # Python programs are forked from the warm zygote interpreter and run as __main__ instead of
    # exec'ing `run` (same semantics as `python3 -I -S -B main.py`, without the interpreter start).
    run_python: bool = False
    # Test types it supports. `call`/`assert` need an interpreter that can host candidate.py.
    test_types: frozenset[str] = frozenset({"stdio"})
    # stderr fragments that mean "ran out of memory" when the process failed without an OOM kill
    # (an allocation refused up front raises instead of being OOM-killed).
    mle_markers: tuple[str, ...] = ()
    env: dict[str, str] = field(default_factory=dict)


LANGUAGES: dict[str, Language] = {
    "python": Language(
        name="python",
        source_name="main.py",
        run=("/usr/bin/python3", "-I", "-S", "-B", "main.py"),
        run_python=True,
        test_types=frozenset({"stdio", "call", "assert"}),
        mle_markers=("MemoryError",),
    ),
    "cpp": Language(
        name="cpp",
        source_name="main.cpp",
        compile=("/usr/bin/g++", "-O2", "-std=gnu++17", "-pipe", "-o", "main", "main.cpp"),
        run=("./main",),
        compile_time_limit_s=20.0,
        mle_markers=("std::bad_alloc",),
    ),
}


def get_language(name: str) -> Language:
    try:
        return LANGUAGES[name]
    except KeyError:
        raise KeyError(f"unknown language {name!r}; known: {sorted(LANGUAGES)}") from None
