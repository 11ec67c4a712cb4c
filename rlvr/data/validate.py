"""``rlvr data validate``: every problem in every row, without writing anything."""

from __future__ import annotations

from pathlib import Path

from rlvr.data.schema import RowError, RowParseError, check_row, read_rows

__all__ = ["validate_file"]


def validate_file(path: str | Path) -> tuple[int, list[RowError]]:
    """``(number of rows, all errors)``; a line that is not JSON is one error on field ``<json>``."""
    errors: list[RowError] = []
    n = 0
    for index, row in read_rows(path):
        n += 1
        if isinstance(row, RowParseError):
            errors.append(RowError(index, "<json>", str(row)))
        else:
            errors.extend(check_row(row, index))
    return n, errors
