"""Logging setup and progress: a live bar on a terminal, timed log lines everywhere else."""

from __future__ import annotations

import io
import logging

from rlvr.logs import Progress, setup_logging


class Clock:
    def __init__(self) -> None:
        self.t = 100.0

    def __call__(self) -> float:
        return self.t


class Lines(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())


def _logger(name: str) -> tuple[logging.Logger, Lines]:
    """A private logger that records its messages (independent of whatever handlers others installed)."""
    logger, lines = logging.getLogger(f"test.progress.{name}"), Lines()
    logger.handlers[:] = [lines]
    logger.setLevel(logging.INFO)
    logger.propagate = False
    return logger, lines


def test_progress_off_a_terminal_logs_a_line_per_interval():
    clock = Clock()
    logger, lines = _logger("a")
    with Progress(100, "sft", start=20, live=False, interval_s=30, clock=clock, logger=logger) as bar:
        clock.t += 10
        bar.update(21, loss=0.5)  # first update: always logged
        clock.t += 10
        bar.update(22, loss=0.4)  # 10 s after the last line: quiet
        clock.t += 25
        bar.update(25, loss=0.25, lr=1e-3)  # 35 s after the last line
        clock.t += 1
        bar.update(100, loss=0.1)  # the last step: always logged
    assert lines.lines == [
        "sft step 21/100 (21.0%), loss=0.5, 0.1 step/s, ETA 0:13:10",
        "sft step 25/100 (25.0%), loss=0.25 lr=0.001, 0.111 step/s, ETA 0:11:15",
        "sft step 100/100 (100.0%), loss=0.1, 1.74 step/s, ETA 0:00:00",
    ]


def test_progress_slow_steps_read_as_seconds_per_step_and_disabled_is_silent():
    clock = Clock()
    logger, lines = _logger("b")
    with Progress(10, "GRPO", live=False, interval_s=0, clock=clock, logger=logger) as bar:
        clock.t += 40
        bar.update(1)
    with Progress(10, "quiet", live=False, enabled=False, clock=clock, logger=logger) as bar:
        bar.update(1)
    assert lines.lines == ["GRPO step 1/10 (10.0%), 40 s/step, ETA 0:06:00"]


def test_setup_logging_writes_plain_timestamped_lines_off_a_terminal():
    stream = io.StringIO()
    setup_logging("INFO", stream=stream)
    try:
        logging.getLogger("rlvr.grpo.controller").info("resumed at step %d", 4)
        logging.getLogger("rlvr.grpo.controller").debug("not shown")
        line = stream.getvalue()
        assert line.endswith(" INFO rlvr.grpo.controller: resumed at step 4\n") and line.count("\n") == 1
        setup_logging("INFO", stream=stream)  # again: replaces its handler, never duplicates lines
        logging.getLogger("rlvr").warning("once")
        assert stream.getvalue().count("once") == 1
    finally:
        root = logging.getLogger("rlvr")
        for h in [h for h in root.handlers if getattr(h, "_rlvr", False)]:
            root.removeHandler(h)
        root.propagate = True
