"""Generic CSV: the simplest way to bring any data in.

Header (names are case-insensitive; other columns are ignored, or renamed into these with
``ImportOptions.column_map`` / ``--map``):

- ``timestamp``: ISO 8601, with or without a UTC offset (``2024-05-02T10:15:00+02:00``,
  ``2024-05-02 10:15``). Either every row has an offset or none has: a mix is an error,
  since the rows without one cannot be placed in time.
- ``glucose_mg_dl`` or ``glucose_mmol_l`` (converted at 18.0182 mg/dL per mmol/L);
- optional ``insulin_u`` (bolus, U), ``basal_u_per_h`` (basal rate from that time on, U/h),
  ``carbs_g`` (g), ``subject``.

A row may hold glucose, events, or both; empty cells are missing values.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd

from glucotwin.data.errors import DataError
from glucotwin.data.formats import Format, ImportOptions
from glucotwin.data.model import MG_DL_PER_MMOL_L, Recording
from glucotwin.data.textio import (
    first_bad,
    parse_number,
    parse_wall_clock,
    place_wall_clock,
    read_csv_table,
    read_text,
)

CANONICAL = (
    "timestamp",
    "glucose_mg_dl",
    "glucose_mmol_l",
    "insulin_u",
    "basal_u_per_h",
    "carbs_g",
    "subject",
)
OFFSET = re.compile(r"(Z|[+-]\d{2}:?\d{2})$")


def _sniff(path: Path, head: bytes) -> bool:
    first = head.decode("utf-8-sig", errors="replace").splitlines()[0].lower()
    names = {c.strip().strip('"') for c in first.split(",")}
    return "timestamp" in names and bool(names & {"glucose_mg_dl", "glucose_mmol_l"})


def _offset_minutes(suffix: pd.Series) -> pd.Series:
    text = suffix.str.replace(":", "", regex=False)
    zulu = text == "Z"
    sign = np.where(text.str[0] == "-", -1, 1)
    hours = pd.to_numeric(text.str[1:3].where(~zulu, "0"), errors="coerce")
    minutes = pd.to_numeric(text.str[3:5].where(~zulu, "0"), errors="coerce")
    return (sign * (hours * 60 + minutes)).astype("Int16")


def parse_iso_times(
    text: pd.Series, lines: np.ndarray, timezone: str | None, file: Path
) -> tuple[pd.Series, pd.Series]:
    """ISO 8601 strings -> (UTC times, offsets in minutes); reject a mix of aware and naive."""
    suffix = text.str.extract(OFFSET, expand=False)
    aware = suffix.notna().to_numpy()
    if aware.any() and not aware.all():
        kind = aware[0]
        line = first_bad(aware != kind, lines)
        raise DataError(
            "mixed time zones: some timestamps have a UTC offset and others do not",
            file=file,
            line=line,
            field="timestamp",
        )
    if aware.all():
        parsed = pd.to_datetime(text, format="ISO8601", utc=True, errors="coerce")
        bad = parsed.isna().to_numpy()
        if bad.any():
            raise DataError(
                f"cannot read ISO 8601 timestamp {text.to_numpy()[np.flatnonzero(bad)[0]]!r}",
                file=file,
                line=first_bad(bad, lines),
                field="timestamp",
            )
        return parsed, _offset_minutes(suffix)
    wall = parse_wall_clock(
        text,
        ["ISO8601"],
        lines=lines,
        field="timestamp",
        file=file,
    )
    time, offset, _ = place_wall_clock(wall, timezone, lines=lines, field="timestamp", file=file)
    return time, offset


def _read(path: Path, options: ImportOptions) -> Recording:
    frame, lines = read_csv_table(read_text(path), file=path)
    mapping = {k: v for k, v in options.column_map.items()}
    for source, target in mapping.items():
        if target not in CANONICAL:
            raise DataError(f"cannot map to unknown column {target!r} (known: {CANONICAL})")
        if source not in frame.columns:
            raise DataError(
                f"column {source!r} named in the mapping is not in the header",
                file=path,
                line=1,
                field=source,
            )
    frame = frame.rename(columns=mapping)
    frame.columns = [c.lower() for c in frame.columns]
    if "timestamp" not in frame:
        raise DataError("no 'timestamp' column in the header", file=path, line=1, field="timestamp")
    units = [c for c in ("glucose_mg_dl", "glucose_mmol_l") if c in frame]
    if len(units) != 1:
        raise DataError(
            "the header needs exactly one of 'glucose_mg_dl' or 'glucose_mmol_l'",
            file=path,
            line=1,
            field="glucose_mg_dl",
        )
    if len(frame) == 0:
        raise DataError("no data rows", file=path, line=2)

    stamp = frame["timestamp"].str.strip()
    missing = (stamp == "").to_numpy()
    if missing.any():
        raise DataError(
            "timestamp is missing", file=path, line=first_bad(missing, lines), field="timestamp"
        )
    time, offset = parse_iso_times(stamp, lines, options.timezone, path)

    def number(name: str) -> pd.Series:
        if name not in frame:
            return pd.Series(np.nan, index=frame.index)
        return parse_number(frame[name], lines=lines, field=name, file=path)

    glucose = number(units[0])
    if units[0] == "glucose_mmol_l":
        glucose = glucose * MG_DL_PER_MMOL_L
    subject = (
        frame["subject"].str.strip().replace("", pd.NA)
        if "subject" in frame
        else pd.Series(pd.NA, index=frame.index, dtype="string")
    )
    if options.subject is not None:
        subject = pd.Series(options.subject, index=frame.index, dtype="string")
    elif "subject" not in frame:
        subject = pd.Series(path.stem, index=frame.index, dtype="string")
    base = pd.DataFrame(
        {"time": time, "utc_offset_min": offset, "subject": subject, "source_line": lines}
    )

    has_glucose = glucose.notna().to_numpy()
    bolus, basal, carbs = number("insulin_u"), number("basal_u_per_h"), number("carbs_g")
    insulin = pd.concat(
        [
            base[bolus.notna().to_numpy()].assign(
                event="bolus", delivery="normal", units_u=bolus[bolus.notna()]
            ),
            base[basal.notna().to_numpy()].assign(
                event="basal", delivery="scheduled", rate_u_per_h=basal[basal.notna()]
            ),
        ],
        ignore_index=True,
    )
    return Recording.build(
        glucose=base[has_glucose].assign(glucose_mg_dl=glucose[has_glucose]),
        insulin=insulin,
        carbs=base[carbs.notna().to_numpy()].assign(carbs_g=carbs[carbs.notna()]),
        meta={
            "format": "csv",
            "glucose_unit": units[0].removeprefix("glucose_"),
            "timezone": options.timezone,
        },
        file=path.name,
    )


FORMAT = Format(
    name="csv",
    description="Generic CSV (timestamp, glucose_mg_dl|glucose_mmol_l, insulin_u, "
    "basal_u_per_h, carbs_g, subject)",
    sniff=_sniff,
    read=_read,
    extensions=(".csv",),
)
