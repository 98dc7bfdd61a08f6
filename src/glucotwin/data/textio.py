"""Reading exports: decoding, CSV tables, and times, numbers and durations with their line.

Shared by the importers so that every one reports a bad value the same way (file, line,
field) and none parses row by row in Python where pandas can do a column at once: text and
CSV (:func:`read_csv_table`, with :func:`check_final_row` for a file cut short), naive local
times placed in a zone (:func:`place_wall_clock`), numbers from text or from parsed cells,
and the ``flag`` columns built from what was found (:func:`flag_rows`, :func:`join_texts`).
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd

from glucotwin.data.errors import DataError
from glucotwin.data.model import localize

Lines = Sequence[int] | np.ndarray | pd.Series

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


def first_bad(mask: np.ndarray, lines: Lines) -> int | None:
    """Source line of the first True in ``mask`` (None when all are False)."""
    hits = np.flatnonzero(np.asarray(mask))
    if len(hits) == 0:
        return None
    return int(np.asarray(lines)[hits[0]])


def parse_wall_clock(
    values: pd.Series,
    formats: str | Sequence[str],
    *,
    lines: Lines,
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
    lines: Lines,
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


def check_final_row(
    text: str,
    *,
    file: Path | str | None = None,
    header_line: int = 1,
    sep: str = ",",
    fields_needed: Callable[[list[str], list[str]], int] | None = None,
) -> None:
    """Reject a file cut off inside its last row; accept a last row without a final newline.

    Many real exports end without a newline, so that alone proves nothing. The last row is
    complete when it has as many fields as the header on line ``header_line`` (or as many as
    ``fields_needed(header, cells)`` says a row like it has, for formats that write short
    rows). With fewer fields, or inside an open quote, the file was truncated: the error names
    that line and the field it stops in. Whether its values are valid is for the importer to
    check, as on any other row.
    """
    if text.endswith(("\n", "\r")):
        return
    last = text[text.rfind("\n") + 1 :]
    line = text.count("\n") + 1
    if line <= header_line or not last.strip():
        return
    header = text.split("\n", header_line)[header_line - 1].rstrip("\r")
    names = next(csv.reader([header], delimiter=sep))
    try:
        cells = next(csv.reader([last], delimiter=sep, strict=True))
    except csv.Error:
        cells = None
    needed = len(names) if fields_needed is None or cells is None else fields_needed(names, cells)
    if cells is not None and len(cells) >= needed:
        return
    found = "an unclosed quote" if cells is None else f"{len(cells)} of {needed} fields"
    stop = names[min(len(cells), len(names)) - 1] if cells else None
    raise DataError(
        f"file ends in the middle of a line (truncated?): its last row has {found}",
        file=file,
        line=line,
        field=stop.strip() if stop else None,
    )


def read_csv_table(
    text: str,
    *,
    file: Path | str | None = None,
    header_line: int = 1,
    sep: str = ",",
    strip_cells: bool = False,
    fields_needed: Callable[[list[str], list[str]], int] | None = None,
) -> tuple[pd.DataFrame, np.ndarray]:
    """A CSV export as strings, blank rows dropped, with each row's line in the file.

    The header is on line ``header_line`` (lines above it are a title the caller reads);
    header names are stripped, every cell is a string (``""`` when empty or missing from a
    short row) and ``strip_cells`` strips the cells too. A truncated last row is rejected by
    :func:`check_final_row`; a row with too many fields by the parser, at its line.
    """
    check_final_row(text, file=file, header_line=header_line, sep=sep, fields_needed=fields_needed)
    try:
        frame = pd.read_csv(
            io.StringIO(text),
            sep=sep,
            skiprows=header_line - 1,
            dtype=str,
            keep_default_na=False,
            skip_blank_lines=False,
        )
    except pd.errors.ParserError as exc:
        found = re.search(r"line (\d+)", str(exc))
        raise DataError(
            f"malformed CSV: {exc}",
            file=file,
            line=int(found[1]) + header_line - 1 if found else None,
        ) from exc
    frame.columns = [str(c).strip() for c in frame.columns]
    frame = frame.fillna("")
    if strip_cells:
        frame = frame.apply(lambda column: column.str.strip())
    lines = np.arange(len(frame)) + header_line + 1
    blank = (frame == "").all(axis=1).to_numpy()
    return frame[~blank].reset_index(drop=True), lines[~blank]


def wall_clock_passes(
    wall: pd.Series,
    timezone: str,
    *,
    lines: Lines,
    field: str,
    file: Path | str | None = None,
) -> tuple[pd.Series, pd.Series]:
    """Naive local times placed in ``timezone`` as the first and as the second pass.

    The two differ only at times that a daylight-saving fall-back repeats (first pass:
    daylight-saving time, second: standard time). A time that a spring-forward change skips
    raises :class:`DataError` at its line; so does an unknown zone name.
    """
    n = len(wall)
    try:
        first = wall.dt.tz_localize(timezone, ambiguous=np.ones(n, bool), nonexistent="NaT")
        second = wall.dt.tz_localize(timezone, ambiguous=np.zeros(n, bool), nonexistent="NaT")
    except (ValueError, KeyError) as exc:  # an unknown zone name raises one of these
        raise DataError(f"unknown time zone {timezone!r}: {exc}") from exc
    skipped = (first.isna() & wall.notna()).to_numpy()
    if skipped.any():
        raise DataError(
            f"local time {wall[skipped].iloc[0]} does not exist in {timezone} (skipped by a "
            "daylight-saving change)",
            file=file,
            line=first_bad(skipped, lines),
            field=field,
        )
    return first, second


def place_wall_clock(
    wall: pd.Series,
    timezone: str | None,
    *,
    lines: Lines,
    field: str,
    file: Path | str | None = None,
    ambiguous: Literal["raise", "first"] | np.ndarray = "raise",
) -> tuple[pd.Series, pd.Series, np.ndarray]:
    """Naive local times -> (UTC instants, UTC offsets in minutes, repeated times).

    :func:`glucotwin.data.model.localize` with the bad row named: without a zone the times
    stay floating local time; in a zone, a time skipped by a spring-forward change or a zone
    that does not exist raises :class:`DataError` naming ``file``, the line and ``field``.
    A time repeated by a fall-back change (True in the third result) raises with
    ``ambiguous="raise"``, takes its first (daylight-saving) pass with ``"first"``, or the
    pass a boolean array picks (True = first pass), e.g. from a device's monotonic clock.
    """
    repeated = np.zeros(len(wall), bool)
    if timezone is None:
        utc, offset = localize(wall, None)
        return utc, offset, repeated
    first, second = wall_clock_passes(wall, timezone, lines=lines, field=field, file=file)
    repeated = (first != second).to_numpy() & wall.notna().to_numpy()
    if isinstance(ambiguous, str):
        if ambiguous == "raise" and repeated.any():
            raise DataError(
                f"local time {wall[repeated].iloc[0]} occurs twice in {timezone} (the hour "
                "repeated by a daylight-saving change): which one is meant is not known",
                file=file,
                line=first_bad(repeated, lines),
                field=field,
            )
        ambiguous = np.ones(len(wall), bool)
    utc, offset = localize(wall, timezone, ambiguous=ambiguous)
    return utc, offset, repeated


def flag_rows(mask: np.ndarray, flag: str, index: Any = None) -> pd.Series:
    """A ``flag`` column: ``flag`` where ``mask`` is True, missing elsewhere."""
    return pd.Series(np.where(mask, flag, None), index=index, dtype="string")


def parse_number_cells(
    values: pd.Series,
    *,
    lines: Lines,
    field: str,
    file: Path | str | None = None,
    blank_is_missing: bool = False,
) -> pd.Series:
    """Numbers from already-parsed cells (JSON values, spreadsheet cells) as float64.

    A number or numeric string is read; null/None is missing. Anything else (``true``,
    ``"abc"``, an object, a date) raises :class:`DataError` naming the first such cell's line
    and ``field``. ``blank_is_missing`` also reads an empty or white-space string as missing.
    """
    parsed = pd.to_numeric(values, errors="coerce").astype("float64")
    if pd.api.types.is_numeric_dtype(values.dtype) and not pd.api.types.is_bool_dtype(values.dtype):
        return parsed
    present = values.notna().to_numpy()
    if blank_is_missing:
        present = present & (values.astype("string").str.strip() != "").fillna(False).to_numpy()
    boolean = values.map(lambda v: isinstance(v, bool | np.bool_)).to_numpy(dtype=bool)
    bad = (parsed.isna().to_numpy() & present) | boolean
    if bad.any():
        example = values.to_numpy()[np.flatnonzero(bad)[0]]
        raise DataError(
            f"{example!r} is not a number", file=file, line=first_bad(bad, lines), field=field
        )
    return parsed


def reject_negative(
    values: pd.Series, *, lines: Lines, field: str, file: Path | str | None = None
) -> None:
    """Raise :class:`DataError` at the first negative number of ``values``."""
    negative = (values < 0).to_numpy()
    if negative.any():
        raise DataError(
            f"negative value {values[negative].iloc[0]:g}",
            file=file,
            line=first_bad(negative, lines),
            field=field,
        )


def parse_duration_min(
    values: pd.Series, *, lines: Lines, field: str, file: Path | str | None = None
) -> pd.Series:
    """``h:mm:ss`` durations in minutes (blank = missing); raise at the first unreadable one."""
    text = values.astype("string").str.strip()
    duration = pd.to_timedelta(text.mask(text == ""), errors="coerce")
    bad = duration.isna().to_numpy() & (text != "").fillna(False).to_numpy()
    if bad.any():
        raise DataError(
            f"{text[bad].iloc[0]!r} is not a duration h:mm:ss",
            file=file,
            line=first_bad(bad, lines),
            field=field,
        )
    return duration.dt.total_seconds() / 60


def join_texts(*parts: pd.Series | str, sep: str = ";") -> pd.Series:
    """Texts joined row by row with ``sep``, missing or empty parts skipped.

    Used for ``flag`` (``;``-separated quality flags) and notes. A row where every part is
    missing or empty is missing. The first part must be a Series (it gives the index); a
    plain string is the same text on every row.
    """
    index = parts[0].index
    joined = pd.Series("", index=index, dtype="string")
    for part in parts:
        text = pd.Series(part, index=index, dtype="string") if isinstance(part, str) else part
        text = text.astype("string").fillna("")
        joined = joined.mask(text != "", joined + sep + text)
    return joined.str.removeprefix(sep).replace("", pd.NA)
