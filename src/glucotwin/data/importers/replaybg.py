"""ReplayBG data CSV: the input format of ReplayBG's digital-twin identification and replay.

Source: G. Cappon, M. Vettoretti, G. Sparacino, S. Del Favero, A. Facchinetti, "ReplayBG: a
digital twin-based methodology to identify a personalized model from type 1 diabetes data and
simulate glucose concentrations to assess alternative therapies", IEEE Trans. Biomed. Eng.
(2023), doi:10.1109/TBME.2023.3286856; files and data requirements of ``py_replay_bg``.

One row per sample of a homogeneous time grid (5 min in every example), in any column order:

- ``t``: ``DD-MMM-YYYY HH:MM:SS`` (``11-May-2027 06:00:00``), a wall clock without zone (floating
  local time unless ``ImportOptions.timezone`` is given). The step must be the same on every
  row: the rates below are turned into amounts with it.
- ``glucose``: CGM, mg/dL (may be empty). ``SMBG`` (earlier releases): fingerstick, mg/dL.
- ``cho``: meal intake as a rate in g/min held over one sample, so grams = cho × step (min);
  ``cho_label`` ``B``/``L``/``D``/``S`` -> ``meal_type`` breakfast/lunch/dinner/snack.
- ``bolus``: U/min over one sample, units = bolus × step; ``bolus_label`` ``C`` (correction)
  -> flag ``correction``, a meal label -> flag ``meal_bolus:<meal>``.
- ``basal``: U/min, rate = basal × 60 U/h; a basal event is written where the rate changes
  (``delivery="scheduled"``).
- Earlier releases also have ``CR`` (carbohydrate ratio, g/U) and ``CF`` (correction factor,
  mg/dL per U), kept where they change in ``meta["therapy_settings"]``, and ``exercise``
  (undocumented unit; all 0 in the examples): a non-zero value becomes an activity row of one
  step, ``activity_type="exercise"``, flagged ``exercise_value:<value>``. Missing values may be
  written ``NaN``.

``patient_info.csv`` (``patient,u2ss,bw``: patient number, steady-state basal insulin
u2ss in mU/(kg·min), body weight in kg) is not a time series: importing it gives a recording
without rows whose ``meta["patient_info"]`` holds ``patient``, ``u2ss_mu_per_kg_per_min`` and
``body_weight_kg``. When it sits in the folder of a data file, the same row is attached to that
file's ``meta["patient_info"]``. Either way the subject is ``replaybg-<patient>`` (so
``data_day_1`` and ``data_day_2`` of one person share a subject); a data file without one
next to it takes the file stem.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from glucotwin.data.errors import DataError
from glucotwin.data.formats import Format, ImportOptions
from glucotwin.data.model import Recording
from glucotwin.data.textio import (
    first_bad,
    parse_number,
    parse_wall_clock,
    place_wall_clock,
    read_csv_table,
    read_text,
    reject_negative,
)

REQUIRED = frozenset({"t", "glucose", "cho", "bolus", "basal", "bolus_label", "cho_label"})
OPTIONAL = frozenset({"SMBG", "CR", "CF", "exercise"})
PATIENT_INFO = ("patient", "u2ss", "bw")
PATIENT_INFO_FILE = "patient_info.csv"
TIME_FORMAT = "%d-%b-%Y %H:%M:%S"
MEALS = {"B": "breakfast", "L": "lunch", "D": "dinner", "S": "snack"}
CORRECTION = "C"
MISSING = ("", "NaN", "nan")
DATASET = {"dataset": "ReplayBG data (Cappon et al. 2023, doi:10.1109/TBME.2023.3286856)"}


def _header(text: str) -> list[str]:
    return [c.strip().strip('"') for c in text.split("\n", 1)[0].strip().split(",")]


def _sniff(path: Path, head: bytes) -> bool:
    names = _header(head.decode("utf-8-sig", errors="replace"))
    if path.suffix.lower() != ".csv" or len(names) != len(set(names)):
        return False
    return tuple(names) == PATIENT_INFO or REQUIRED <= set(names) <= REQUIRED | OPTIONAL


def read_patient_info(path: Path, text: str | None = None) -> dict[str, Any]:
    """``patient_info.csv`` -> ``{"patient", "u2ss_mu_per_kg_per_min", "body_weight_kg"}``."""
    frame, lines = read_csv_table(
        read_text(path) if text is None else text, file=path.name, strip_cells=True
    )
    if tuple(frame.columns) != PATIENT_INFO:
        raise DataError(f"expected the header {','.join(PATIENT_INFO)}", file=path.name, line=1)
    if len(frame) != 1:
        raise DataError("expected exactly one patient row", file=path.name, line=2)
    values = {
        name: float(parse_number(frame[name], lines=lines, field=name, file=path.name).iloc[0])
        for name in PATIENT_INFO
    }
    return {
        "patient": frame["patient"].iloc[0],
        "u2ss_mu_per_kg_per_min": values["u2ss"],
        "body_weight_kg": values["bw"],
    }


def _read(path: Path, options: ImportOptions) -> Recording:
    name = path.name
    text = read_text(path)
    if tuple(_header(text)) == PATIENT_INFO:
        patient_info = read_patient_info(path, text)
        subject = options.subject or f"replaybg-{patient_info['patient']}"
        return Recording.build(
            meta={
                "format": "replaybg",
                **DATASET,
                "subject": subject,
                "patient_info": patient_info,
            },
            file=name,
        )
    frame, lines = read_csv_table(text, file=name, strip_cells=True)
    missing = sorted(REQUIRED - set(frame.columns))
    if missing:
        raise DataError("column missing from the header", file=name, line=1, field=missing[0])
    unknown = sorted(set(frame.columns) - REQUIRED - OPTIONAL)
    if unknown:
        raise DataError("column not in ReplayBG's data format", file=name, line=1, field=unknown[0])
    if len(frame) < 2:
        raise DataError("at least two samples are needed to know the time step", file=name, line=2)
    wall = parse_wall_clock(frame["t"], TIME_FORMAT, lines=lines, field="t", file=name)
    step_min = _step_minutes(wall, lines, name)
    time, offset, _ = place_wall_clock(wall, options.timezone, lines=lines, field="t", file=name)
    info_path = path.parent / PATIENT_INFO_FILE
    patient_info = read_patient_info(info_path) if info_path.is_file() else None
    subject = options.subject or (
        f"replaybg-{patient_info['patient']}" if patient_info else path.stem
    )
    base = pd.DataFrame(
        {"time": time, "utc_offset_min": offset, "subject": subject, "source_line": lines}
    )

    def number(column: str) -> pd.Series:
        if column not in frame:
            return pd.Series(np.nan, index=frame.index)
        values = frame[column].mask(frame[column].isin(MISSING), "")
        parsed = parse_number(values, lines=lines, field=column, file=name)
        reject_negative(parsed, lines=lines, field=column, file=name)
        return parsed

    cho_g = number("cho") * step_min
    bolus_u = number("bolus") * step_min
    meal = _labels(frame["cho_label"], set(MEALS), lines, "cho_label", name).map(MEALS)
    bolus_label = _labels(frame["bolus_label"], {*MEALS, CORRECTION}, lines, "bolus_label", name)
    has_cho, has_bolus = (cho_g > 0).to_numpy(), (bolus_u > 0).to_numpy()
    bolus_flag = ("meal_bolus:" + bolus_label.map(MEALS)).fillna(
        bolus_label.map({CORRECTION: "correction"})
    )
    readings = {"cgm": number("glucose"), "fingerstick": number("SMBG")}
    glucose = pd.concat(
        [
            base.assign(glucose_mg_dl=value, source=source)[value.notna().to_numpy()]
            for source, value in readings.items()
        ],
        ignore_index=True,
    )
    insulin = pd.concat(
        [
            base[has_bolus].assign(
                event="bolus",
                delivery="normal",
                units_u=bolus_u[has_bolus],
                flag=bolus_flag[has_bolus],
            ),
            _basal(base, number("basal") * 60.0),
        ],
        ignore_index=True,
    )
    exercise = number("exercise")
    active = (exercise.fillna(0) != 0).to_numpy()
    activity = base[active].assign(
        activity_type="exercise",
        duration_min=step_min,
        flag="exercise_value:" + frame["exercise"][active] if "exercise" in frame else None,
    )
    meta = {
        "format": "replaybg",
        **DATASET,
        "subject": subject,
        "timezone": options.timezone,
        "step_min": step_min,
        "units": "cho g/min, bolus and basal U/min per sample (converted to g, U and U/h)",
        "therapy_settings": _settings(number("CR"), number("CF"), wall, lines),
    }
    if patient_info is not None:
        meta["patient_info"] = patient_info
    return Recording.build(
        glucose=glucose,
        insulin=insulin,
        carbs=base[has_cho].assign(carbs_g=cho_g[has_cho], meal_type=meal[has_cho]),
        activity=activity,
        meta=meta,
        file=name,
    )


def _step_minutes(wall: pd.Series, lines: np.ndarray, file: str) -> float:
    """The grid step (min); every row must follow the one before by exactly that step."""
    steps = wall.diff().dt.total_seconds().to_numpy()[1:] / 60.0
    step = steps[0]
    bad = np.concatenate([[False], (steps != step) | (steps <= 0)])
    if bad.any() or step <= 0:
        raise DataError(
            f"the samples must be on a homogeneous time grid (step {step:g} min from the first "
            "row to the second)",
            file=file,
            line=first_bad(bad, lines) or int(lines[1]),
            field="t",
        )
    return float(step)


def _labels(values: pd.Series, allowed: set[str], lines, field: str, file: str) -> pd.Series:
    label = values.mask(values.isin(MISSING))
    bad = (label.notna() & ~label.isin(allowed)).to_numpy()
    if bad.any():
        raise DataError(
            f"unknown label {label[bad].iloc[0]!r} (known: {sorted(allowed)})",
            file=file,
            line=first_bad(bad, lines),
            field=field,
        )
    return label


def _basal(base: pd.DataFrame, rate_u_per_h: pd.Series) -> pd.DataFrame:
    """Basal events where the rate changes; rows without a rate change nothing."""
    present = rate_u_per_h.dropna()
    changed = present.ne(present.shift())
    rows = present.index[changed.to_numpy()]
    return base.loc[rows].assign(event="basal", delivery="scheduled", rate_u_per_h=present[changed])


def _settings(cr: pd.Series, cf: pd.Series, wall: pd.Series, lines) -> list[dict[str, Any]]:
    """Carbohydrate ratio and correction factor where either changes (rows with one written)."""
    settings = pd.DataFrame({"cr": cr, "cf": cf}).dropna(how="all")
    comparable = settings.fillna(-1.0)  # both are positive where written
    changed = comparable.ne(comparable.shift()).any(axis=1)
    return [
        {
            "time": wall[i].isoformat(),
            "line": int(lines[i]),
            "carb_ratio_g_per_u": None if np.isnan(row.cr) else float(row.cr),
            "correction_factor_mg_dl_per_u": None if np.isnan(row.cf) else float(row.cf),
        }
        for i, row in settings[changed.to_numpy()].iterrows()
    ]


FORMAT = Format(
    name="replaybg",
    description="ReplayBG data CSV (t, glucose, cho, bolus, basal, labels; 5-min grid)",
    sniff=_sniff,
    read=_read,
    extensions=(".csv",),
)
