"""Reading text exports: decoding, and parsing times and numbers with the line they came from.

Shared by the importers so that every one reports a bad value the same way (file, line,
field) and none parses row by row in Python where pandas can do a column at once.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from glucotwin.data.errors import DataError

ENCODINGS = ("utf-8-sig", "cp1252")


def read_text(path: Path, data: bytes | None = None) -> str:
    """Decode a text export: UTF-8 (with or without BOM), else Windows-1252."""
    raw = path.read_bytes() if data is None else data
    if b"\x00" in raw[:4096]:
        for encoding in ("utf-16",):
            try:
                return raw.decode(encoding)
            except UnicodeDecodeError:
                pass
        raise DataError("binary file, not a text export", file=path)
    for encoding in ENCODINGS:
        try:
            return raw.decode(encoding)
        except UnicodeDecodeError:
            continue
    raise DataError("cannot decode text as UTF-8 or Windows-1252", file=path)


def first_bad(mask: np.ndarray, lines: Sequence[int] | np.ndarray | pd.Series) -> int | None:
    """Source line of the first True in ``mask`` (None when all are False)."""
    hits = np.flatnonzero(np.asarray(mask))
    if len(hits) == 0:
        return None
    return int(np.asarray(lines)[hits[0]])


def parse_wall_clock(
    values: pd.Series,
    formats: str | Sequence[str],
    *,
    lines: Sequence[int] | np.ndarray | pd.Series,
    field: str,
    file: Path | str | None = None,
) -> pd.Series:
    """Parse naive local date-times with one of ``formats`` (the first that fits every value).

    A format is chosen for the whole column, never row by row, so that ``01-02`` cannot mean
    January in one row and February in the next. Raises :class:`DataError` at the first value
    no format reads.
    """
    text = values.astype("string").str.strip()
    candidates = [formats] if isinstance(formats, str) else list(formats)
    best_bad = None
    for fmt in candidates:
        parsed = pd.to_datetime(text, format=fmt, errors="coerce")
        bad = parsed.isna().to_numpy() & text.notna().to_numpy()
        if not bad.any():
            return parsed
        if best_bad is None or bad.sum() < best_bad.sum():
            best_bad = bad
    assert best_bad is not None
    line = first_bad(best_bad, lines)
    example = text.to_numpy()[np.flatnonzero(best_bad)[0]]
    raise DataError(
        f"cannot read date-time {example!r} (expected {' or '.join(candidates)})",
        file=file,
        line=line,
        field=field,
    )


def parse_number(
    values: pd.Series,
    *,
    lines: Sequence[int] | np.ndarray | pd.Series,
    field: str,
    file: Path | str | None = None,
    decimal_comma: bool = False,
) -> pd.Series:
    """Parse a column of numbers (blank = missing); raise at the first non-number."""
    text = values.astype("string").str.strip()
    text = text.mask(text == "")
    if decimal_comma:
        text = text.str.replace(".", "", regex=False).str.replace(",", ".", regex=False)
    parsed = pd.to_numeric(text, errors="coerce")
    bad = parsed.isna().to_numpy() & text.notna().to_numpy()
    if bad.any():
        example = text.to_numpy()[np.flatnonzero(bad)[0]]
        raise DataError(
            f"{example!r} is not a number",
            file=file,
            line=first_bad(bad, lines),
            field=field,
        )
    return parsed.astype("float64")
