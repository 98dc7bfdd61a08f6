"""Dexcom Clarity CSV export (Clarity web/app "Export", G4–G7, mg/dL or mmol/L accounts).

Format (no public specification; learnt from real exports, see
``shared/data/formats/dexcom_clarity_csv/README.md``): one header line ``Index,Timestamp
(YYYY-MM-DDThh:mm:ss),Event Type,Event Subtype,Patient Info,Device Info,Source Device ID,
Glucose Value (mg/dL),Insulin Value (u),Carb Value (grams),Duration (hh:mm:ss),Glucose Rate of
Change (mg/dL/min),Transmitter Time (Long Integer),Transmitter ID``, then one row per event.

Quirks handled:

- UTF-8 with or without BOM, every field quoted or none, LF or CRLF, with or without a final
  newline (a last row with fewer fields than its kind has is reported as truncated);
- ragged rows (EGV/Calibration rows have 14 fields, the others 13) and re-saved copies with
  only 13 columns, floats for integers (``61.0``) and a space instead of ``T`` in timestamps;
- untimed preamble rows (``FirstName``, ``LastName``, ``PatientIdentifier``, ``DateOfBirth``,
  ``Device``, ``Alert``): settings, not measurements. Alert thresholds and display devices go to
  ``meta``; names and date of birth are dropped (personal data); ``PatientIdentifier`` becomes
  the subject (else the file name);
- unit from the header (``Glucose Value (mg/dL)`` or ``Glucose Value (mmol/L)``), never assumed;
- ``Low``/``High`` EGVs become censored readings at the Dexcom reporting limits, 40 and
  400 mg/dL (Dexcom G6/G7 user guides: readings are shown from 40 to 400 mg/dL);
- local wall-clock times without a zone: floating local time unless ``options.timezone`` is
  given. Then the hour repeated at a daylight-saving fall-back is resolved with ``Transmitter
  Time (Long Integer)`` (seconds since the transmitter started): the instant predicted from the
  nearest unambiguous reading of the same transmitter picks the earlier or the later pass.
  Repeated times that cannot be resolved so (no transmitter time) take the first pass and are
  flagged ``ambiguous_time``; a time skipped by a spring-forward change is an error.

Mapping: ``EGV`` -> CGM glucose; ``Calibration`` -> fingerstick; ``Insulin`` ``Fast-Acting``
-> rapid bolus, ``Long-Acting`` -> bolus with ``insulin_class="long"`` (pen injection);
``Carbs`` -> carbs; ``Exercise`` -> activity (intensity = subtype, duration). ``Health``
events (illness, stress, cycle...) have no place in the model and are counted in ``meta``.
Any other event type is an error, never a guess.
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
    flag_rows,
    parse_duration_min,
    parse_number,
    parse_wall_clock,
    place_wall_clock,
    read_csv_table,
    read_text,
    wall_clock_passes,
)

LOW_LIMIT_MG_DL = 40.0
HIGH_LIMIT_MG_DL = 400.0
"""Dexcom G6/G7 reporting range; outside it the receiver shows "LOW"/"HIGH"."""

TIMESTAMP_FORMATS = ("%Y-%m-%dT%H:%M:%S", "%Y-%m-%d %H:%M:%S")
GLUCOSE_HEADER = re.compile(r"^Glucose Value \((?P<unit>[^)]*)\)$")
UNITS = {"mg/dl": 1.0, "mmol/l": MG_DL_PER_MMOL_L}
PREAMBLE_EVENTS = frozenset(
    {"FirstName", "LastName", "PatientIdentifier", "DateOfBirth", "Device", "Alert"}
)
GLUCOSE_EVENTS = frozenset({"EGV", "Calibration"})
TIMED_EVENTS = GLUCOSE_EVENTS | {"Insulin", "Carbs", "Exercise", "Health"}
INSULIN_CLASSES = {"fast-acting": "rapid", "long-acting": "long"}

TIMESTAMP = "Timestamp (YYYY-MM-DDThh:mm:ss)"
EVENT = "Event Type"
SUBTYPE = "Event Subtype"
INSULIN = "Insulin Value (u)"
CARBS = "Carb Value (grams)"
DURATION = "Duration (hh:mm:ss)"
TRANSMITTER_TIME = "Transmitter Time (Long Integer)"
TRANSMITTER_ID = "Transmitter ID"
SOURCE_DEVICE = "Source Device ID"
REQUIRED = (TIMESTAMP, EVENT, SUBTYPE)


def _sniff(path: Path, head: bytes) -> bool:
    first = head.decode("utf-8-sig", errors="replace").splitlines()[0]
    names = [c.strip().strip('"') for c in first.split(",")]
    return (
        len(names) > 3
        and names[0] == "Index"
        and names[1].startswith("Timestamp (")
        and EVENT in names
        and any(GLUCOSE_HEADER.match(n) for n in names)
    )


def _fields_needed(header: list[str], cells: list[str]) -> int:
    """Fields of a complete row: only glucose rows end with the last column, Transmitter ID."""
    glucose_row = len(cells) > 2 and cells[2].strip() in GLUCOSE_EVENTS
    if header[-1].strip() == TRANSMITTER_ID and not glucose_row:
        return len(header) - 1
    return len(header)


def _glucose_column(frame: pd.DataFrame, path: Path) -> tuple[str, float]:
    for name in frame.columns:
        found = GLUCOSE_HEADER.match(name)
        if found:
            unit = found["unit"].strip().lower()
            if unit not in UNITS:
                raise DataError(
                    f"unknown glucose unit {found['unit']!r} (expected mg/dL or mmol/L)",
                    file=path.name,
                    line=1,
                    field=name,
                )
            return name, UNITS[unit]
    raise DataError(
        "no 'Glucose Value (mg/dL)' or 'Glucose Value (mmol/L)' column in the header",
        file=path.name,
        line=1,
        field="Glucose Value",
    )


def _optional(frame: pd.DataFrame, name: str) -> pd.Series:
    if name in frame:
        return frame[name].str.strip()
    return pd.Series("", index=frame.index, dtype="str")


def _preamble_meta(pre: pd.DataFrame, glucose_col: str, factor: float) -> dict:
    """Display devices and alert settings from the untimed rows, thresholds in mg/dL."""
    event = pre[EVENT].str.strip()
    devices = _optional(pre, "Device Info")[event == "Device"].tolist()
    rate_col = next((c for c in pre.columns if c.startswith("Glucose Rate of Change")), "")
    alerts = pre[event == "Alert"]
    threshold = pd.to_numeric(_optional(alerts, glucose_col), errors="coerce") * factor
    rate = pd.to_numeric(_optional(alerts, rate_col), errors="coerce") * factor
    duration = _optional(alerts, DURATION)
    after = pd.to_timedelta(duration.mask(duration == ""), errors="coerce")
    settings = pd.DataFrame(
        {
            "alert": _optional(alerts, SUBTYPE),
            "glucose_mg_dl": threshold.round(1),
            "rate_mg_dl_per_min": rate.round(2),
            "duration_min": after.dt.total_seconds() / 60,
        }
    )
    records = [
        {k: v for k, v in row.items() if not pd.isna(v)}
        for row in settings.astype(object).to_dict("records")
    ]
    return {"display_devices": devices, "alert_settings": records}


def _subject(pre: pd.DataFrame, options: ImportOptions, path: Path) -> str:
    if options.subject is not None:
        return options.subject
    ids = pre.loc[pre[EVENT].str.strip() == "PatientIdentifier", "Patient Info"].str.strip()
    ids = ids[ids != ""]
    return ids.iloc[0] if len(ids) else path.stem


def _first_pass(
    as_dst: pd.Series,
    as_std: pd.Series,
    repeated: np.ndarray,
    transmitter_s: pd.Series,
    transmitter_id: pd.Series,
) -> tuple[np.ndarray, np.ndarray]:
    """Which rows lie in the first (daylight-saving) pass of a repeated hour?

    ``as_dst``/``as_std`` are the rows placed in the zone both ways. A repeated row is placed
    where its transmitter clock says: the transmitter start instant (UTC minus transmitter
    seconds) of the nearest unambiguous row of the same transmitter predicts its UTC instant,
    and the nearer candidate wins. Returns ``(first_pass, unresolved)``; rows that are not
    repeated get ``True``, which :func:`place_wall_clock` ignores.
    """
    first_pass = np.ones(len(as_dst), bool)
    known = transmitter_s.notna().to_numpy()
    if not (repeated & known).any():
        return first_pass, repeated
    dst_utc = as_dst.dt.tz_convert("UTC").dt.tz_localize(None)
    std_utc = as_std.dt.tz_convert("UTC").dt.tz_localize(None)
    anchor = ~repeated & known
    anchors = (
        pd.DataFrame(
            {
                "tx": transmitter_s[anchor].to_numpy(),
                "id": transmitter_id[anchor].to_numpy(dtype=object),
                "start": (dst_utc - pd.to_timedelta(transmitter_s, unit="s"))[anchor].to_numpy(),
            }
        )
        .astype({"id": "str"})
        .sort_values("tx")
    )
    asked = (
        pd.DataFrame(
            {
                "row": np.flatnonzero(repeated & known),
                "tx": transmitter_s[repeated & known].to_numpy(),
                "id": transmitter_id[repeated & known].to_numpy(dtype=object),
            }
        )
        .astype({"id": "str"})
        .sort_values("tx")
    )
    matched = pd.merge_asof(asked, anchors, on="tx", by="id", direction="nearest")
    matched = matched[matched["start"].notna()]
    rows = matched["row"].to_numpy()
    predicted = (matched["start"] + pd.to_timedelta(matched["tx"], unit="s")).to_numpy()
    dst_error = np.abs(dst_utc.to_numpy()[rows] - predicted)
    std_error = np.abs(std_utc.to_numpy()[rows] - predicted)
    first_pass[rows] = dst_error <= std_error
    unresolved = repeated.copy()
    unresolved[rows] = False
    return first_pass, unresolved


def _place_in_time(
    wall: pd.Series,
    timezone: str | None,
    transmitter_s: pd.Series,
    transmitter_id: pd.Series,
    lines: np.ndarray,
    path: Path,
) -> tuple[pd.Series, pd.Series, np.ndarray]:
    """(UTC times, UTC offsets, rows whose repeated local time stayed ambiguous)."""
    where = {"lines": lines, "field": TIMESTAMP, "file": path.name}
    if timezone is None:
        return place_wall_clock(wall, None, **where)
    as_dst, as_std = wall_clock_passes(wall, timezone, **where)
    repeated = (as_dst != as_std).to_numpy()
    first_pass, unresolved = _first_pass(as_dst, as_std, repeated, transmitter_s, transmitter_id)
    utc, offset, _ = place_wall_clock(wall, timezone, ambiguous=first_pass, **where)
    return utc, offset, unresolved


def _read(path: Path, options: ImportOptions) -> Recording:
    frame, lines = read_csv_table(read_text(path), file=path.name, fields_needed=_fields_needed)
    for name in REQUIRED:
        if name not in frame:
            raise DataError(f"no {name!r} column in the header", file=path.name, line=1, field=name)
    glucose_col, factor = _glucose_column(frame, path)
    event = frame[EVENT].str.strip()
    stamp = frame[TIMESTAMP].str.strip()
    untimed = (stamp == "").to_numpy()

    bad_untimed = untimed & ~event.isin(PREAMBLE_EVENTS).to_numpy()
    if bad_untimed.any():
        raise DataError(
            f"{event[bad_untimed].iloc[0]!r} row has no timestamp",
            file=path.name,
            line=first_bad(bad_untimed, lines),
            field=TIMESTAMP,
        )
    pre = frame[untimed]
    data, lines = frame[~untimed].reset_index(drop=True), lines[~untimed]
    event = event[~untimed].reset_index(drop=True)
    unknown = ~event.isin(TIMED_EVENTS).to_numpy()
    if unknown.any():
        raise DataError(
            f"unknown event type {event[unknown].iloc[0]!r} (known: {sorted(TIMED_EVENTS)})",
            file=path.name,
            line=first_bad(unknown, lines),
            field=EVENT,
        )
    if len(data) == 0:
        raise DataError("no timed data rows", file=path.name, line=len(pre) + 2)

    wall = parse_wall_clock(
        data[TIMESTAMP], TIMESTAMP_FORMATS, lines=lines, field=TIMESTAMP, file=path.name
    )
    transmitter_s = parse_number(
        _optional(data, TRANSMITTER_TIME), lines=lines, field=TRANSMITTER_TIME, file=path.name
    )
    transmitter_id = _optional(data, TRANSMITTER_ID)
    time, offset, ambiguous = _place_in_time(
        wall, options.timezone, transmitter_s, transmitter_id, lines, path
    )
    subtype = data[SUBTYPE].str.strip()
    base = pd.DataFrame(
        {
            "time": time,
            "utc_offset_min": offset,
            "subject": _subject(pre, options, path),
            "device": _optional(data, SOURCE_DEVICE).replace("", pd.NA),
            "source_line": lines,
            "flag": flag_rows(ambiguous, "ambiguous_time"),
        }
    )

    def rows(kind: str) -> np.ndarray:
        return (event == kind).to_numpy()

    is_egv, is_cal = rows("EGV"), rows("Calibration")
    text = data[glucose_col].str.strip()
    low = is_egv & (text.str.lower() == "low").to_numpy()
    high = is_egv & (text.str.lower() == "high").to_numpy()
    value = parse_number(
        text.where(~(low | high), ""), lines=lines, field=glucose_col, file=path.name
    )
    value = value * factor
    value[low], value[high] = LOW_LIMIT_MG_DL, HIGH_LIMIT_MG_DL
    missing = (is_egv | is_cal) & value.isna().to_numpy()
    if missing.any():
        raise DataError(
            "glucose value is missing",
            file=path.name,
            line=first_bad(missing, lines),
            field=glucose_col,
        )
    censored = np.select([low, high], ["below", "above"], "")
    glucose = base[is_egv | is_cal].assign(
        glucose_mg_dl=value[is_egv | is_cal],
        source=np.where(is_cal, "fingerstick", "cgm")[is_egv | is_cal],
        censored=censored[is_egv | is_cal],
    )

    is_insulin = rows("Insulin")
    insulin_class = subtype.str.lower().map(INSULIN_CLASSES).fillna("unknown")
    units = parse_number(_optional(data, INSULIN), lines=lines, field=INSULIN, file=path.name)
    insulin = base[is_insulin].assign(
        event="bolus",
        delivery="normal",
        units_u=units[is_insulin],
        insulin_class=insulin_class[is_insulin],
        insulin_name=subtype[is_insulin].replace("", pd.NA),
    )

    is_carbs = rows("Carbs")
    grams = parse_number(_optional(data, CARBS), lines=lines, field=CARBS, file=path.name)
    carbs = base[is_carbs].assign(carbs_g=grams[is_carbs])

    is_exercise = rows("Exercise")
    activity = base[is_exercise].assign(
        activity_type="exercise",
        intensity=subtype[is_exercise].str.lower().replace("", pd.NA),
        duration_min=parse_duration_min(
            _optional(data, DURATION)[is_exercise],
            lines=lines[is_exercise],
            field=DURATION,
            file=path.name,
        ).to_numpy(),
    )

    meta = {
        "format": "dexcom_clarity",
        "glucose_unit": "mmol/L" if factor != 1.0 else "mg/dL",
        "timezone": options.timezone,
        "transmitters": sorted(transmitter_id[transmitter_id != ""].unique().tolist()),
        "events_not_imported": {"Health": int(rows("Health").sum())},
        **_preamble_meta(pre, glucose_col, factor),
    }
    return Recording.build(
        glucose=glucose,
        insulin=insulin,
        carbs=carbs,
        activity=activity,
        meta=meta,
        file=path.name,
    )


FORMAT = Format(
    name="dexcom_clarity",
    description="Dexcom Clarity CSV export (EGV, calibrations, insulin, carbs, exercise)",
    sniff=_sniff,
    read=_read,
    extensions=(".csv",),
)
