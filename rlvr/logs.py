"""Logging and progress for every command.

One stdlib logger per module (``logging.getLogger(__name__)``) under the ``rlvr`` root. The CLI calls
:func:`setup_logging`: a rich handler when stderr is a terminal, plain timestamped lines otherwise (a
log file, ``nohup``, SLURM). :class:`Progress` is a live bar on a terminal; where nobody watches one
it logs a line at a steady interval instead (step, total, metrics, rate, ETA), so
``bash scripts/main.sh > log 2>&1`` shows a long stage moving.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import time
from collections.abc import Iterator
from typing import IO, Any

__all__ = ["setup_logging", "interactive", "Progress", "progress_tasks", "PROGRESS_INTERVAL_ENV"]

PROGRESS_INTERVAL_ENV = "RLVR_PROGRESS_INTERVAL_S"  # seconds between progress lines off a terminal
_DEFAULT_INTERVAL_S = 30.0
_PLAIN_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"

log = logging.getLogger(__name__)


def interactive(stream: IO[str] | None = None) -> bool:
    """Whether ``stream`` (default stderr) is a terminal someone watches."""
    stream = stream or sys.stderr
    return bool(getattr(stream, "isatty", lambda: False)())


def setup_logging(level: str | int = "INFO", stream: IO[str] | None = None) -> None:
    """Give the ``rlvr`` logger one handler (replacing any earlier one from this function)."""
    stream = stream or sys.stderr
    root = logging.getLogger("rlvr")
    for h in list(root.handlers):
        if getattr(h, "_rlvr", False):
            root.removeHandler(h)
    handler: logging.Handler
    if interactive(stream):
        from rich.console import Console
        from rich.logging import RichHandler

        handler = RichHandler(console=Console(file=stream), show_path=False, markup=False, log_time_format="[%X]")
    else:
        handler = logging.StreamHandler(stream)
        handler.setFormatter(logging.Formatter(_PLAIN_FORMAT, datefmt="%Y-%m-%d %H:%M:%S"))
    handler._rlvr = True  # type: ignore[attr-defined]
    root.addHandler(handler)
    root.setLevel(level)
    root.propagate = False


def _fmt_duration(seconds: float) -> str:
    seconds = int(max(0, seconds))
    return f"{seconds // 3600}:{seconds % 3600 // 60:02d}:{seconds % 60:02d}"


def _fmt_metrics(metrics: dict[str, Any]) -> str:
    return " ".join(f"{k}={v:.4g}" for k, v in metrics.items() if isinstance(v, int | float))


class Progress:
    """Progress over ``total`` steps of a stage named ``name``, resumed at ``start``.

    On a terminal (``live=None`` decides by stderr) a rich bar shows the latest metrics. Otherwise
    :meth:`update` logs ``"<name> step k/total (p%) metrics, r step/s, ETA h:mm:ss"`` at most every
    ``interval_s`` seconds (``$RLVR_PROGRESS_INTERVAL_S``, default 30), plus the first and the last step.
    ``clock`` is injectable for tests.
    """

    def __init__(
        self,
        total: int,
        name: str,
        start: int = 0,
        enabled: bool = True,
        live: bool | None = None,
        interval_s: float | None = None,
        logger: logging.Logger | None = None,
        clock: Any = time.monotonic,
    ):
        self.total, self.name, self.start, self.enabled = total, name, start, enabled
        self.live = interactive() if live is None else live
        if interval_s is None:
            interval_s = float(os.environ.get(PROGRESS_INTERVAL_ENV, _DEFAULT_INTERVAL_S))
        self.interval_s = interval_s
        self.log = logger or log
        self.clock = clock
        self._bar: Any = None
        self._t0 = self._last = 0.0
        self._logged_any = False

    def __enter__(self) -> Progress:
        self._t0 = self._last = self.clock()
        if self.enabled and self.live:
            from rich.progress import (
                BarColumn,
                MofNCompleteColumn,
                TextColumn,
                TimeElapsedColumn,
                TimeRemainingColumn,
            )
            from rich.progress import Progress as RichProgress

            self._bar = RichProgress(
                TextColumn("[bold]{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TimeElapsedColumn(),
                TimeRemainingColumn(),
                TextColumn("{task.fields[info]}"),
            )
            self._task = self._bar.add_task(self.name, total=self.total, completed=self.start, info="")
            self._bar.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        if self._bar is not None:
            self._bar.stop()
            self._bar = None

    def line(self, step: int, metrics: dict[str, Any], now: float) -> str:
        """The progress line for ``step`` (what a non-interactive run logs)."""
        done = step - self.start
        elapsed = now - self._t0
        rate = done / elapsed if elapsed > 0 and done > 0 else 0.0
        eta = (self.total - step) / rate if rate > 0 else float("nan")
        parts = [f"{self.name} step {step}/{self.total} ({100.0 * step / max(1, self.total):.1f}%)"]
        if metrics:
            parts.append(_fmt_metrics(metrics))
        parts.append(f"{rate:.3g} step/s" if rate >= 0.1 or rate == 0 else f"{1 / rate:.3g} s/step")
        parts.append(f"ETA {_fmt_duration(eta)}" if eta == eta else "ETA ?")
        return ", ".join(parts)

    def update(self, step: int, **metrics: Any) -> None:
        if not self.enabled:
            return
        if self._bar is not None:
            self._bar.update(self._task, completed=step, info=_fmt_metrics(metrics))
            return
        now = self.clock()
        due = now - self._last >= self.interval_s
        if due or not self._logged_any or step >= self.total:
            self.log.info(self.line(step, metrics, now))
            self._last, self._logged_any = now, True


@contextlib.contextmanager
def progress_tasks() -> Iterator[Any]:
    """A factory ``task(name, total)`` of counters with ``advance(n)`` (the progress protocol of
    ``rlvr eval run`` and ``rlvr data curate``), each shown by a :class:`Progress`; a new task closes the
    previous one, and all are closed when the block ends."""
    opened: list[Any] = []

    class Task:
        def __init__(self, name: str, total: int):
            if opened:
                opened[-1].close()
            self.bar, self.done = Progress(total, name).__enter__(), 0
            opened.append(self)

        def advance(self, n: int = 1) -> None:
            self.done += n
            self.bar.update(self.done)

        def close(self) -> None:
            self.bar.__exit__(None, None, None)

    try:
        yield Task
    finally:
        for t in opened:
            t.close()
