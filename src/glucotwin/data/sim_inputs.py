"""CSV layouts of simulation inputs and outputs, as in ``shared/data/reference/simglucose``.

Inputs ``minute,carbs_g,insulin_u``: one row per minute that has anything in it (sparse rows
allowed; a missing minute means zero carbs and zero insulin), carbs eaten and insulin
delivered (basal included) during that minute; a twin replay also takes an optional fourth
column ``meal_type`` (breakfast, lunch, dinner, snack or empty) that routes the carbs. Trajectories
``minute,glucose_mg_dl,plasma_glucose_mg_dl``: row m is the state at the start of minute m.
Reading validates and raises :class:`DataError` with file, line and field; writing is atomic.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from glucotwin.data.errors import DataError
from glucotwin.data.exporters import _write_atomically
from glucotwin.simulate.scenario import dense_inputs

INPUT_COLUMNS = ("minute", "carbs_g", "insulin_u")
TRAJECTORY_COLUMNS = ("minute", "glucose_mg_dl", "plasma_glucose_mg_dl")


def read_inputs_csv(
    path: str | Path, minutes: int | None = None, meal_types: dict[int, str] | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Read an inputs file into dense per-minute arrays (carbs g, insulin U).

    ``minutes`` sets the length (default: last minute + 1). With a ``meal_types`` dict, a
    fourth column ``meal_type`` is allowed and its non-empty values are stored there by
    minute. Raises :class:`DataError` naming
    file, line and field for a missing or unknown header, a wrong number of fields, a
    non-integer, negative or repeated minute, a non-numeric, negative or non-finite amount, or
    a minute beyond ``minutes``.
    """
    path = Path(path)
    minute_list: list[int] = []
    carbs_list: list[float] = []
    insulin_list: list[float] = []
    seen: dict[int, int] = {}
    try:
        handle = path.open(newline="", encoding="utf-8")
    except OSError as exc:
        raise DataError(f"cannot read the file: {exc.strerror}", file=path) from None
    with handle:
        reader = csv.reader(handle)
        try:
            header = next(reader, None)
            if header is None:
                raise DataError(f"empty file: expected the header {','.join(INPUT_COLUMNS)}",
                                file=path, line=1)  # fmt: skip
            names = [name.strip() for name in header]
            known = (*INPUT_COLUMNS, "meal_type") if meal_types is not None else INPUT_COLUMNS
            unknown = [name for name in names if name not in known]
            if unknown:
                raise DataError(
                    f"unknown column (expected {','.join(INPUT_COLUMNS)})",
                    file=path, line=1, field=unknown[0],
                )  # fmt: skip
            columns = list(INPUT_COLUMNS)
            if meal_types is not None and names == [*INPUT_COLUMNS, "meal_type"]:
                columns.append("meal_type")
            if names != columns:
                raise DataError(f"header must be {','.join(INPUT_COLUMNS)}, got {','.join(names)}",
                                file=path, line=1)  # fmt: skip
            for line, row in enumerate(reader, start=2):
                if not row or all(not cell.strip() for cell in row):
                    continue
                if len(row) != len(columns):
                    raise DataError(f"expected {len(columns)} fields, got {len(row)}",
                                    file=path, line=line)  # fmt: skip
                minute = _minute(row[0], path, line)
                if minute in seen:
                    raise DataError(f"minute {minute} repeats line {seen[minute]}",
                                    file=path, line=line, field="minute")  # fmt: skip
                seen[minute] = line
                minute_list.append(minute)
                carbs_list.append(_amount(row[1], path, line, "carbs_g"))
                insulin_list.append(_amount(row[2], path, line, "insulin_u"))
                if len(columns) == 4 and row[3].strip():
                    meal_types[minute] = row[3].strip()
        except UnicodeDecodeError:
            raise DataError("not a UTF-8 text file", file=path) from None
        except csv.Error as exc:
            raise DataError(f"malformed CSV: {exc}", file=path, line=reader.line_num) from None
    if minutes is not None and minute_list and max(minute_list) >= minutes:
        last = max(minute_list)
        raise DataError(f"minute {last} is beyond the requested {minutes} minutes",
                        file=path, line=seen[last], field="minute")  # fmt: skip
    return dense_inputs(np.asarray(minute_list, dtype=np.int64), np.asarray(carbs_list),
                        np.asarray(insulin_list), minutes)  # fmt: skip


def _minute(text: str, path: Path, line: int) -> int:
    try:
        minute = int(text.strip())
    except ValueError:
        raise DataError(f"must be an integer, got {text!r}", file=path, line=line,
                        field="minute") from None  # fmt: skip
    if minute < 0:
        raise DataError(f"must be >= 0, got {minute}", file=path, line=line, field="minute")
    return minute


def _amount(text: str, path: Path, line: int, field: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise DataError(f"not a number: {text!r}", file=path, line=line, field=field) from None
    if not math.isfinite(value) or value < 0:
        raise DataError(f"must be finite and >= 0, got {text.strip()}", file=path, line=line,
                        field=field)  # fmt: skip
    return value


def write_trajectory_csv(
    path: str | Path, glucose_mg_dl: np.ndarray, plasma_glucose_mg_dl: np.ndarray
) -> Path:
    """Write one patient's trajectory (``minute,glucose_mg_dl,plasma_glucose_mg_dl``, row m
    = state at the start of minute m, values as shortest round-trip decimals), atomically."""
    glucose = np.asarray(glucose_mg_dl, dtype=np.float64)
    plasma = np.asarray(plasma_glucose_mg_dl, dtype=np.float64)

    def write(stream) -> None:
        writer = csv.writer(stream, lineterminator="\n")
        writer.writerow(TRAJECTORY_COLUMNS)
        pairs = zip(glucose.tolist(), plasma.tolist(), strict=True)
        writer.writerows((m, repr(g), repr(p)) for m, (g, p) in enumerate(pairs))

    _write_atomically(path, write)
    return Path(path)


def write_table_csv(path: str | Path, columns: Mapping[str, np.ndarray | list]) -> Path:
    """Write equal-length columns as a CSV with a header (floats as shortest round-trip
    decimals), atomically; used for per-patient simulation summaries."""
    names = list(columns)
    values = [list(columns[name]) for name in names]
    if len({len(v) for v in values}) > 1:
        raise ValueError("columns must have equal lengths")

    def cell(value) -> str:
        if isinstance(value, float | np.floating):
            return repr(float(value))
        if isinstance(value, np.integer):
            return str(int(value))
        return str(value)

    def write(stream) -> None:
        writer = csv.writer(stream, lineterminator="\n")
        writer.writerow(names)
        writer.writerows([cell(v) for v in row] for row in zip(*values, strict=True))

    _write_atomically(path, write)
    return Path(path)
