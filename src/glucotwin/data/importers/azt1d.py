"""AZT1D: one CSV per subject of a real-world type 1 diabetes dataset (automated insulin delivery).

Source: S. Khamesian, A. Arefeen, B. M. Thompson, M. A. Grando, H. Ghasemzadeh, "AZT1D: A
Real-World Dataset for Type 1 Diabetes", arXiv:2506.14789 (2025); data doi:10.17632/gk9m674wcx.1
(CC BY 4.0). Files: ``CGM Records/Subject N/Subject N.csv``, one row per 5-min CGM reading, with
the insulin, carbohydrate and pump-mode events that fall on that reading on the same row:

``EventDateTime,DeviceMode,BolusType,Basal,CorrectionDelivered,TotalBolusInsulinDelivered,
FoodDelivered,CarbSize,CGM`` (subject 14: other column order, glucose column named
``Readings (CGM / BGM)``).

Mapping and the quirks handled:

- **Time**: ``YYYY-MM-DD HH:MM:SS`` wall clock in Arizona. The dataset states Arizona local time
  (UTC−7, no daylight saving), so without ``ImportOptions.timezone`` the importer uses
  ``America/Phoenix`` and says so in ``meta["timezone_source"]``. Some subjects' seconds are
  jittered (steps of about 300 ± 3 s); the times are kept as written.
- **Subject**: from the file name, ``Subject 7.csv`` -> ``azt1d-07`` (two digits so that ids sort
  in subject order; the release has no id inside the file). ``ImportOptions.subject`` overrides.
- **Glucose**: ``CGM`` in mg/dL (subject 8 writes a decimal part, e.g. ``355.4``; kept). 40 and
  400 mg/dL are the sensor's reporting limits (the release's range is exactly 40–400): a
  reading at 40 is censored ``"below"``, at 400 ``"above"``; a value outside 40–400 is an error.
  Event rows repeat the timestamp of their CGM reading; one reading per timestamp is kept, the
  first in file order (as the dataset README counts them). Where repeated rows carry *other*
  glucose values the kept reading is flagged ``duplicate_time_other_glucose`` and the count is
  in ``meta["duplicate_timestamps_conflicting_glucose"]``. Every row of the export carries a
  glucose value, so a row without one is an error (a last line cut short, with fewer fields
  than the header, is reported as truncated; a missing final newline alone is fine).
- **Boluses** (``BolusType`` not empty and not ``0``; every event row is kept, also at repeated
  timestamps): ``units_u`` = ``TotalBolusInsulinDelivered``.
  ``Standard``, ``Standard/Correction``, ``BLE Standard Bolus[/Correction]`` (BLE: Bluetooth
  Low Energy, i.e. given from the phone app) and ``Quick`` are normal boluses;
  ``Automatic Bolus/Correction`` is the AID algorithm's automatic correction
  (``automated=True``). Types other than the plain
  standard and automatic ones keep their text in ``flag`` (``bolus_type:...``); a correction
  part (``CorrectionDelivered`` > 0) is flagged ``correction_u:<units>``. A row with units but
  no type (none in the release) is kept as a normal bolus flagged ``bolus_type_missing``.
  ``Extended P%/X`` and ``Extended/Correction P%/X``: the data show that X is *not* a duration
  but the meal-bolus units programmed, and P the share of X delivered at once: on every such
  row with X > 0, ``FoodDelivered`` = P·X (``Extended 50.00%/8.57``: 4.28 U = 50 % of 8.57 U;
  ``Extended 60.00%/25.00``: 15.0 U; ``Extended 5.00%/4.50``: 0.22 U) and the correction part
  is all delivered at once. So the row's ``TotalBolusInsulinDelivered`` is the immediate part,
  and (1 − P)·X was programmed to follow over a duration the export does not record. Where X
  is 0.00 (a bolus entered as units, without the meal calculator) X is recovered as
  (total − correction)/P, which gives round programmed doses (2.5 U at 50 % -> 5 U, 5.76 U at
  60 % -> 9.6 U); those rows are also flagged ``extended_units_inferred``. Such a bolus is a
  part-now, part-later bolus, which the canonical model calls ``delivery="dual"``:
  ``units_u`` = immediate + extended part, ``extended_units_u`` = extended part,
  ``duration_min`` missing. Whether the extended part was completed is not in the export.
- **Carbohydrates**: ``CarbSize`` > 0 (g) on a row -> a carbs row (0 means no carbs entered).
- **Basal**: the ``Basal`` column repeats the running rate on every row; a basal event is
  written where the rate changes (per timestamp, the last value written at it), and holds until
  the next one. Rows without a rate (some subjects interleave extra readings a few seconds
  after the regular ones, without events) are not taken as a change. The release does not say
  whether a rate came from the profile or from the AID algorithm; it is kept as
  ``delivery="scheduled"``, ``automated=False``. Outliers: no plausible rate in the release
  exceeds 6.2 U/h, while 4,213 rows hold 9–4,127 (subjects 1, 3, 9, 10, 16, 19) in runs that
  change hourly by integers (subject 10 writes 356, 10, 296, 533, 9, 0 in consecutive hours
  while glucose falls, a pattern of mU/h rather than U/h). These are not taken as U/h: the
  event is kept with ``rate_u_per_h`` missing and flagged ``basal_out_of_range:<raw value>``.
- **Pump mode** (``DeviceMode``: ``sleep``, ``exercise``; empty and ``0`` = normal mode;
  ``sleepsleep`` read as ``sleep``): each run of consecutive readings in one mode becomes an
  activity row with ``activity_type`` ``"sleep"`` or ``"exercise"`` from the first reading in
  that mode to the first reading after it (to the last reading at the end of the file). A run
  longer than a day (subject 6 left sleep mode on for 16 days) is cut into day-long pieces
  flagged ``mode_on_over_24h``.
- Dropped: ``FoodDelivered`` (the meal part is ``units_u`` minus the flagged correction).
"""

from __future__ import annotations

import io
import re
from pathlib import Path

import numpy as np
import pandas as pd

from glucotwin.data.errors import DataError
from glucotwin.data.formats import Format, ImportOptions
from glucotwin.data.model import Recording, localize
from glucotwin.data.textio import (
    check_final_row,
    first_bad,
    flag_rows,
    join_texts,
    parse_number,
    parse_wall_clock,
    place_wall_clock,
    read_text,
    reject_negative,
)

TEXT_COLUMNS = ("EventDateTime", "DeviceMode", "BolusType")
NUMBER_COLUMNS = (
    "Basal",
    "CorrectionDelivered",
    "TotalBolusInsulinDelivered",
    "FoodDelivered",
    "CarbSize",
    "CGM",
)
GLUCOSE_HEADERS = ("CGM", "Readings (CGM / BGM)")  # the second one: subject 14's header
EVENT_HEADERS = frozenset(TEXT_COLUMNS + NUMBER_COLUMNS[:-1])
TIME_FORMAT = "%Y-%m-%d %H:%M:%S"
DATASET_TIMEZONE = "America/Phoenix"  # the dataset README: Arizona, UTC−7, no daylight saving
SENSOR_LOW_MG_DL = 40.0
SENSOR_HIGH_MG_DL = 400.0
# Between the largest plausible rate in the release (6.159 U/h) and the first value of the
# mU/h-like runs (9); see the module docstring.
MAX_BASAL_U_PER_H = 8.0
NORMAL_BOLUS_TYPES = frozenset(
    {
        "Standard",
        "Standard/Correction",
        "BLE Standard Bolus",
        "BLE Standard Bolus/Correction",
        "Quick",
    }
)
AUTOMATIC_BOLUS = "Automatic Bolus/Correction"
PLAIN_BOLUS_TYPES = frozenset({"Standard", "Standard/Correction", AUTOMATIC_BOLUS})
EXTENDED_BOLUS = r"Extended(?:/Correction)? (\d+(?:\.\d+)?)%/(\d+(?:\.\d+)?)"
NO_BOLUS = ("", "0")
DEVICE_MODES = {"": np.nan, "0": np.nan, "sleep": 0.0, "sleepsleep": 0.0, "exercise": 1.0}
MODE_NAMES = np.array(["sleep", "exercise"])
MAX_MODE_PIECE_MIN = 24 * 60.0
SUBJECT_FILE = re.compile(r"Subject\s*(\d+)", re.IGNORECASE)


def _header(text: str) -> list[str]:
    return [c.strip() for c in text.split("\n", 1)[0].split(",")]


def _sniff(path: Path, head: bytes) -> bool:
    names = set(_header(head.decode("utf-8-sig", errors="replace")))
    return path.suffix.lower() == ".csv" and any(
        names == EVENT_HEADERS | {glucose} for glucose in GLUCOSE_HEADERS
    )


def subject_id(path: Path) -> str:
    """``Subject 7.csv`` -> ``azt1d-07``; the file stem where the name has no subject number."""
    match = SUBJECT_FILE.fullmatch(path.stem.strip())
    return f"azt1d-{int(match.group(1)):02d}" if match else path.stem


def _read_frame(path: Path) -> tuple[pd.DataFrame, np.ndarray]:
    """The rows with numbers as float64, text as str, and each row's line in the file.

    The C parser reads the number columns directly (fast); where a cell is not a number the
    file is read again as text so that :func:`parse_number` names the line and column.
    """
    text = read_text(path)
    header = _header(text)
    glucose = [c for c in GLUCOSE_HEADERS if c in header]
    expected = EVENT_HEADERS | set(glucose[:1] or GLUCOSE_HEADERS[:1])
    for problem, names in (
        ("column missing from the header", sorted(expected - set(header))),
        ("column not in the AZT1D export", sorted(set(header) - expected)),
    ):
        if names:
            raise DataError(problem, file=path.name, line=1, field=names[0])
    if len(header) != len(set(header)):
        raise DataError("a column appears twice in the header", file=path.name, line=1)
    check_final_row(text, file=path.name)
    numbers = dict.fromkeys([*NUMBER_COLUMNS[:-1], glucose[0]], "float64")
    options = {"keep_default_na": False, "skip_blank_lines": False}
    try:
        try:
            frame = pd.read_csv(
                io.StringIO(text),
                dtype={**dict.fromkeys(TEXT_COLUMNS, str), **numbers},
                na_values={key: [""] for key in numbers},
                **options,
            )
        except ValueError:
            frame = pd.read_csv(io.StringIO(text), dtype=str, **options)
    except pd.errors.ParserError as exc:
        raise DataError(f"malformed CSV: {exc}", file=path.name) from exc
    frame.columns = [c.strip() for c in frame.columns]
    frame = frame.rename(columns={glucose[0]: "CGM"})
    lines = np.arange(len(frame)) + 2
    text_part = frame[list(TEXT_COLUMNS)].fillna("")
    blank = (text_part == "").all(axis=1).to_numpy()
    for column in NUMBER_COLUMNS:
        values = frame[column]
        empty = values.isna() if values.dtype == "float64" else values.fillna("") == ""
        blank = blank & empty.to_numpy()
    frame = frame[~blank].reset_index(drop=True)
    frame[list(TEXT_COLUMNS)] = text_part[~blank].reset_index(drop=True)
    lines = lines[~blank]
    if len(frame) == 0:
        raise DataError("no data rows", file=path.name, line=2)
    for column in NUMBER_COLUMNS:
        if frame[column].dtype != "float64":
            frame[column] = parse_number(frame[column], lines=lines, field=column, file=path.name)
        reject_negative(frame[column], lines=lines, field=column, file=path.name)
    return frame, lines


def _runs(value: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Where a run of equal values starts, and every position where the value changes.

    ``value`` holds one value per sorted distinct timestamp, NaN where there is none. A change
    is a position whose value differs from the one before (to or from NaN included); a start
    is a change to a present value. The run that starts at ``s`` ends at the next change.
    """
    same = (value[1:] == value[:-1]) | (np.isnan(value[1:]) & np.isnan(value[:-1]))
    changes = np.flatnonzero(np.concatenate([[len(value) > 0], ~same]))
    starts = changes[~np.isnan(value[changes])]
    return starts, changes


def _read(path: Path, options: ImportOptions) -> Recording:
    name = path.name
    frame, lines = _read_frame(path)
    wall = parse_wall_clock(
        frame["EventDateTime"], TIME_FORMAT, lines=lines, field="EventDateTime", file=name
    )
    timezone = options.timezone or DATASET_TIMEZONE
    time, offset, _ = place_wall_clock(
        wall, timezone, lines=lines, field="EventDateTime", file=name
    )
    subject = options.subject or subject_id(path)
    base = pd.DataFrame(
        {"time": time, "utc_offset_min": offset, "subject": subject, "source_line": lines}
    )
    glucose, conflicts = _glucose(base, wall, frame["CGM"], lines, name)
    carbs_g = frame["CarbSize"]
    has_carbs = (carbs_g > 0).to_numpy()
    meta = {
        "format": "azt1d",
        "dataset": "AZT1D (Khamesian et al. 2025, doi:10.17632/gk9m674wcx.1)",
        "subject": subject,
        "timezone": timezone,
        "timezone_source": "ImportOptions.timezone"
        if options.timezone
        else "dataset README: Arizona local time, UTC−7, no daylight saving",
        "rows": len(frame),
        "rows_with_basal": int(frame["Basal"].notna().sum()),
        "duplicate_rows": int(wall.duplicated().sum()),
        "duplicate_timestamps_conflicting_glucose": conflicts,
        "basal_out_of_range_rows": int((frame["Basal"] > MAX_BASAL_U_PER_H).sum()),
        "sensor_limits_mg_dl": [SENSOR_LOW_MG_DL, SENSOR_HIGH_MG_DL],
        "activity_source": "runs of the pump's DeviceMode (sleep, exercise)",
    }
    insulin = pd.concat(
        [_boluses(frame, base, lines, name), _basal(frame, wall, lines, subject, timezone)],
        ignore_index=True,
    )
    return Recording.build(
        glucose=glucose,
        insulin=insulin,
        carbs=base[has_carbs].assign(carbs_g=carbs_g[has_carbs]),
        activity=_modes(frame["DeviceMode"], wall, lines, subject, timezone, name),
        meta=meta,
        file=name,
    )


def _glucose(
    base: pd.DataFrame, wall: pd.Series, value: pd.Series, lines: np.ndarray, file: str
) -> tuple[pd.DataFrame, int]:
    """One CGM reading per timestamp (the first in file order) and the count of conflicts."""
    missing = value.isna().to_numpy()
    if missing.any():
        raise DataError(
            "glucose value missing (every row of this export has one)",
            file=file,
            line=first_bad(missing, lines),
            field="CGM",
        )
    outside = ((value < SENSOR_LOW_MG_DL) | (value > SENSOR_HIGH_MG_DL)).to_numpy()
    if outside.any():
        raise DataError(
            f"{value.to_numpy()[outside][0]:g} mg/dL is outside the sensor's 40–400 mg/dL range",
            file=file,
            line=first_bad(outside, lines),
            field="CGM",
        )
    pairs = pd.DataFrame({"wall": wall, "value": value}).drop_duplicates()
    conflict_stamps = pairs["wall"][pairs["wall"].duplicated()].unique()
    conflicting = wall.isin(conflict_stamps).to_numpy()
    keep = ~wall.duplicated().to_numpy()
    censored = np.select(
        [value <= SENSOR_LOW_MG_DL, value >= SENSOR_HIGH_MG_DL], ["below", "above"], ""
    )
    flag = pd.Series("duplicate_time_other_glucose", index=base.index, dtype="string")
    table = base.assign(glucose_mg_dl=value, censored=censored, flag=flag.where(conflicting))
    return table[keep], len(conflict_stamps)


def _boluses(frame: pd.DataFrame, base: pd.DataFrame, lines: np.ndarray, file: str):
    """Every bolus row; extended boluses as dual (see the module docstring)."""
    raw_kind = frame["BolusType"].str.strip()
    total_all = frame["TotalBolusInsulinDelivered"]
    # Subject 8 writes 0 into every empty cell: a row with no type and no insulin is no bolus.
    untyped_all = raw_kind.isin(NO_BOLUS).to_numpy()
    is_bolus = ~untyped_all | (total_all > 0).to_numpy()
    rows = np.flatnonzero(is_bolus)
    kind, total = raw_kind.iloc[rows], total_all.iloc[rows]
    correction = frame["CorrectionDelivered"].iloc[rows].fillna(0.0)
    untyped = untyped_all[rows]
    extended = kind.str.fullmatch(EXTENDED_BOLUS).fillna(False).to_numpy(dtype=bool)
    automatic = (kind == AUTOMATIC_BOLUS).to_numpy()
    known = kind.isin(NORMAL_BOLUS_TYPES).to_numpy() | automatic | extended | untyped
    if not known.all():
        raise DataError(
            f"unknown bolus type {kind.to_numpy()[~known][0]!r}",
            file=file,
            line=first_bad(~known, lines[rows]),
            field="BolusType",
        )
    no_units = total.isna().to_numpy()
    if no_units.any():
        raise DataError(
            "a bolus row needs the units delivered",
            file=file,
            line=first_bad(no_units, lines[rows]),
            field="TotalBolusInsulinDelivered",
        )
    split = kind.str.extract(EXTENDED_BOLUS).astype("float64")
    now_share, programmed = split[0] / 100.0, split[1]
    inferred = extended & (programmed == 0).to_numpy()
    programmed = programmed.where(~inferred, (total - correction) / now_share)
    later_u = ((1.0 - now_share) * programmed).where(extended)

    flags = join_texts(
        flag_rows(untyped, "bolus_type_missing", index=kind.index),
        ("bolus_type:" + kind).where(~untyped & ~kind.isin(PLAIN_BOLUS_TYPES).to_numpy()),
        ("correction_u:" + correction.astype("string")).where(correction > 0),
        flag_rows(inferred, "extended_units_inferred", index=kind.index),
    )
    return base.iloc[rows].assign(
        event="bolus",
        delivery=np.where(extended, "dual", "normal"),
        units_u=total + later_u.fillna(0.0),
        extended_units_u=later_u,
        automated=automatic,
        flag=flags,
    )


def _basal(frame, wall, lines, subject, timezone) -> pd.DataFrame:
    """Basal events where the recorded rate changes (see the module docstring)."""
    rate = frame["Basal"]
    rows = pd.DataFrame({"wall": wall, "rate": rate, "line": lines})
    written = rows[rate.notna().to_numpy()].drop_duplicates("wall", keep="last")
    written = written.sort_values("wall", kind="stable").reset_index(drop=True)
    starts, _ = _runs(written["rate"].to_numpy())
    events = written.iloc[starts].reset_index(drop=True)
    outlier = (events["rate"] > MAX_BASAL_U_PER_H).to_numpy()
    time, offset = localize(events["wall"], timezone)
    return pd.DataFrame(
        {
            "time": time,
            "utc_offset_min": offset,
            "subject": subject,
            "source_line": events["line"],
            "event": "basal",
            "delivery": "scheduled",
            "rate_u_per_h": events["rate"].where(~outlier),
            "flag": ("basal_out_of_range:" + events["rate"].astype("string")).where(outlier),
        }
    )


def _modes(raw, wall, lines, subject, timezone, file) -> pd.DataFrame:
    """Activity rows for the runs of sleep and exercise mode (see the module docstring)."""
    text = raw.str.strip()
    known = text.isin(list(DEVICE_MODES)).to_numpy()
    if not known.all():
        raise DataError(
            f"unknown pump mode {text.to_numpy()[~known][0]!r}",
            file=file,
            line=first_bad(~known, lines),
            field="DeviceMode",
        )
    rows = pd.DataFrame({"wall": wall, "mode": text.map(DEVICE_MODES), "line": lines})
    # One mode per timestamp: the first one other than normal written at it.
    in_mode = rows[rows["mode"].notna().to_numpy()].drop_duplicates("wall")
    per_stamp = pd.DataFrame({"wall": np.sort(wall.unique())}).merge(in_mode, on="wall", how="left")
    starts, changes = _runs(per_stamp["mode"].to_numpy(dtype=float))
    following = np.searchsorted(changes, starts, side="right")
    stamp = per_stamp["wall"].to_numpy()
    until = stamp[np.append(changes, len(stamp) - 1)[following]]
    minutes = (until - stamp[starts]) / np.timedelta64(1, "m")
    # A mode left on for days (subject 6: sleep mode for 16 days) is cut into pieces of at most
    # a day, flagged, so that it is neither lost nor mistaken for one night's sleep.
    pieces = np.maximum(np.ceil(minutes / MAX_MODE_PIECE_MIN), 1).astype(int)
    run = np.repeat(np.arange(len(starts)), pieces)
    piece_min = (np.arange(len(run)) - np.repeat(np.cumsum(pieces) - pieces, pieces)) * (
        MAX_MODE_PIECE_MIN
    )
    events = per_stamp.iloc[starts[run]].reset_index(drop=True)
    time, offset = localize(events["wall"] + pd.to_timedelta(piece_min, unit="m"), timezone)
    long_run = pieces[run] > 1
    return pd.DataFrame(
        {
            "time": time,
            "utc_offset_min": offset,
            "subject": subject,
            "source_line": events["line"].astype("int64"),
            "activity_type": MODE_NAMES[events["mode"].to_numpy(dtype=int)],
            "duration_min": np.minimum(minutes[run] - piece_min, MAX_MODE_PIECE_MIN),
            "flag": pd.Series(np.where(long_run, "mode_on_over_24h", None), dtype="string"),
        }
    )


FORMAT = Format(
    name="azt1d",
    description="AZT1D dataset CSV (one file per subject: CGM, bolus, basal, carbs, pump mode)",
    sniff=_sniff,
    read=_read,
    extensions=(".csv",),
)
