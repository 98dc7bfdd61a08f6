"""Writing a :class:`Recording` to files other tools read: the generic CSV and Nightscout JSON.

Both writers are atomic: the file is written to a temporary file in the target folder and
moved into place with :func:`os.replace`, so a failure leaves any existing file untouched and
never a half-written one. Both raise :class:`DataError` for recordings the format cannot hold.

- :func:`write_csv` writes the layout :mod:`glucotwin.data.importers.generic_csv` reads
  (``timestamp, glucose_mg_dl, insulin_u, basal_u_per_h, carbs_g, subject``), one row per
  reading or event. Reading it back keeps the time (and UTC offset), subject and value of
  every glucose reading, bolus (total units), basal rate and carbohydrate entry. The layout
  has no place for fingerstick vs CGM, censoring, extended parts of boluses, basal delivery
  types and durations, activity, devices or flags, so those are not written.
- :func:`write_nightscout` writes ``{"entries": [...], "treatments": [...]}`` in the shapes
  of the Nightscout API v1 (see :mod:`glucotwin.data.importers.nightscout`): CGM readings as
  ``sgv`` entries, fingersticks as ``mbg`` entries, boluses as ``Correction Bolus`` (automated
  ones with AndroidAPS' ``type: "SMB"``) or ``Combo Bolus`` treatments, every basal row as a
  ``Temp Basal`` (Nightscout keeps the scheduled rate in the profile, not in treatments, so
  scheduled rows read back as temporary), suspends as Loop's zero ``Temp Basal`` with
  ``reason: "suspend"``, carbohydrates as ``Carb Correction`` and activity as ``Exercise``.
  A bolus of 0 U (cancelled) is written, but Nightscout ignores ``insulin: 0`` (its server
  deletes it), so it does not read back.
  Nightscout reads ``sgv`` below 39 as a Dexcom status code and 39 as "LOW", so CGM readings
  censored below or lower than 40 mg/dL are written as 39; a reading censored above is written
  as its limit (Nightscout has no "HIGH" marker). A Nightscout site holds one person: a
  recording with several subjects is refused.

Times: with a known UTC offset, ``dateString``/``created_at`` carry the local time with its
offset and ``utcOffset`` the minutes. Floating local times (no offset) are written as ISO
strings without a zone and no epoch ``date``, so they read back as floating.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any, TextIO

import numpy as np
import pandas as pd

from glucotwin.data.errors import DataError
from glucotwin.data.model import VALUE_RANGES, Recording, Stream, local_time

CSV_COLUMNS = ("timestamp", "glucose_mg_dl", "insulin_u", "basal_u_per_h", "carbs_g", "subject")
NIGHTSCOUT_LOW_SGV = 39.0  # Nightscout shows sgv 39 as "LOW" and reads lower values as codes
NIGHTSCOUT_FLOOR_MG_DL = 40.0
ENTERED_BY = "glucotwin"
MAX_DURATION_MIN = VALUE_RANGES[Stream.INSULIN]["duration_min"][1]


def _write_atomically(path: str | Path, write: Callable[[TextIO], None]) -> None:
    """Write through ``write`` into a temporary file beside ``path``, then move it into place."""
    target = Path(path)
    handle, temporary = tempfile.mkstemp(
        prefix=f".{target.name}.", suffix=".tmp", dir=target.parent
    )
    try:
        with os.fdopen(handle, "w", encoding="utf-8", newline="") as stream:
            write(stream)
            stream.flush()
            os.fsync(stream.fileno())
        os.replace(temporary, target)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def _check_offsets(recording: Recording) -> None:
    """The generic CSV needs every time with a UTC offset or none: raise on a mix."""
    known = [
        recording.table(name)["utc_offset_min"].notna().to_numpy()
        for name in ("glucose", "insulin", "carbs")
    ]
    flags = np.concatenate(known)
    if flags.any() and not flags.all():
        raise DataError(
            "cannot write a mix of times with and without a UTC offset (floating local time): "
            "the reader could not place them on one time line",
            field="utc_offset_min",
        )


def _iso_local(table: pd.DataFrame, *, milliseconds: bool) -> pd.Series:
    """Local wall-clock ISO 8601 text, ending in ``±HH:MM`` where the UTC offset is known.

    ``milliseconds``: always three decimals (Nightscout's style); otherwise seconds, with
    microseconds only when some time has them.
    """
    wall = local_time(table)
    if milliseconds:
        text = wall.dt.strftime("%Y-%m-%dT%H:%M:%S.%f").str[:-3]
    elif (wall.dt.microsecond != 0).any():
        text = wall.dt.strftime("%Y-%m-%dT%H:%M:%S.%f")
    else:
        text = wall.dt.strftime("%Y-%m-%dT%H:%M:%S")
    minutes = table["utc_offset_min"].astype("Float64")
    sign = minutes.map(lambda m: "-" if m < 0 else "+", na_action="ignore").astype("string")
    size = minutes.abs()
    hours = (size // 60).astype("Int64").astype("string").str.zfill(2)
    rest = (size % 60).astype("Int64").astype("string").str.zfill(2)
    suffix = (sign + hours + ":" + rest).fillna("")
    return (text.astype("string") + suffix.to_numpy()).astype("string")


# ---------------------------------------------------------------------------------------------
# Generic CSV


def write_csv(recording: Recording, path: str | Path) -> None:
    """Write the generic CSV layout (see the module docstring for what it can hold)."""
    _check_offsets(recording)
    g, ins, c = recording.glucose, recording.insulin, recording.carbs
    bolus = ins[ins["event"] == "bolus"]
    basal = ins[ins["event"] == "basal"]
    parts = [
        _csv_rows(g, "glucose_mg_dl", g["glucose_mg_dl"]),
        _csv_rows(bolus, "insulin_u", bolus["units_u"]),
        _csv_rows(basal, "basal_u_per_h", basal["rate_u_per_h"]),
        _csv_rows(c, "carbs_g", c["carbs_g"]),
    ]
    parts = [p for p in parts if len(p)]
    if parts:
        rows = pd.concat(parts, ignore_index=True)
        rows = rows.sort_values(["subject", "_time"], kind="stable", na_position="first")
        rows = rows.drop(columns="_time")
    else:
        rows = pd.DataFrame(columns=list(CSV_COLUMNS))
    text = rows.reindex(columns=list(CSV_COLUMNS)).to_csv(index=False, na_rep="")
    _write_atomically(path, lambda stream: stream.write(text))


def _csv_rows(table: pd.DataFrame, column: str, values: pd.Series) -> pd.DataFrame:
    present = values.notna().to_numpy()
    table = table[present]
    return pd.DataFrame(
        {
            "timestamp": _iso_local(table, milliseconds=False).to_numpy(),
            column: [repr(float(v)) for v in values[present]],
            "subject": table["subject"].to_numpy(),
            "_time": table["time"].to_numpy(),
        }
    )


# ---------------------------------------------------------------------------------------------
# Nightscout


def write_nightscout(recording: Recording, path: str | Path) -> None:
    """Write Nightscout API v1 ``entries`` and ``treatments`` (see the module docstring)."""
    if len(recording.subjects) > 1:
        raise DataError(
            f"a Nightscout site holds one person's data; this recording has "
            f"{len(recording.subjects)} subjects (write each with Recording.for_subject)",
            field="subject",
        )
    document = {
        "entries": _entries(recording.glucose),
        "treatments": _boluses(recording.insulin)
        + _basals(recording.insulin)
        + _carbs(recording.carbs)
        + _exercise(recording.activity),
    }
    text = json.dumps(document, indent=1, allow_nan=False, ensure_ascii=False)
    _write_atomically(path, lambda stream: stream.write(text))


def _stamp(table: pd.DataFrame) -> list[dict[str, Any]]:
    """Per row: the time fields shared by entries and treatments."""
    known = table["utc_offset_min"].notna().to_numpy()
    iso = _iso_local(table, milliseconds=True).to_numpy()
    millis = table["time"].astype("int64").to_numpy() // 1_000_000
    offsets = table["utc_offset_min"].to_numpy(dtype=float, na_value=np.nan)
    return [
        {"iso": iso[i], "date": int(millis[i]), "utcOffset": int(offsets[i])}
        if known[i]
        else {"iso": iso[i]}
        for i in range(len(table))
    ]


def _common(row: dict, stamp: dict, time_field: str) -> dict[str, Any]:
    doc: dict[str, Any] = {time_field: stamp["iso"]}
    if "date" in stamp:
        doc["date"] = stamp["date"]
        doc["utcOffset"] = stamp["utcOffset"]
    if _present(row.get("device")):
        doc["device"] = row["device"]
    return doc


def _present(value: Any) -> bool:
    return (
        value is not None
        and value is not pd.NA
        and not (isinstance(value, float) and np.isnan(value))
    )


def _records(table: pd.DataFrame) -> list[dict]:
    return table.astype(object).where(table.notna(), None).to_dict("records")


def _entries(glucose: pd.DataFrame) -> list[dict]:
    entries = []
    for row, stamp in zip(_records(glucose), _stamp(glucose), strict=True):
        doc = _common(row, stamp, "dateString")
        value = float(row["glucose_mg_dl"])
        if row["source"] == "fingerstick":
            doc.update(type="mbg", mbg=value)
        else:
            if row["censored"] == "below" or value < NIGHTSCOUT_FLOOR_MG_DL:
                value = NIGHTSCOUT_LOW_SGV
            doc.update(type="sgv", sgv=value)
        entries.append(doc)
    return entries


def _treatment(row: dict, stamp: dict, event: str) -> dict[str, Any]:
    doc = _common(row, stamp, "created_at")
    doc["eventType"] = event
    doc["enteredBy"] = ENTERED_BY
    return doc


def _boluses(insulin: pd.DataFrame) -> list[dict]:
    table = insulin[insulin["event"] == "bolus"]
    docs = []
    for row, stamp in zip(_records(table), _stamp(table), strict=True):
        units = row["units_u"]
        spread = row["delivery"] in ("extended", "dual")
        if spread and _present(units) and units > 0 and _present(row["extended_units_u"]):
            doc = _treatment(row, stamp, "Combo Bolus")
            extended_u = row["extended_units_u"]
            doc.update(
                enteredinsulin=units,
                splitNow=100 * (units - extended_u) / units,
                splitExt=100 * extended_u / units,
            )
            if _present(row["duration_min"]):
                doc["duration"] = row["duration_min"]
                if row["duration_min"] > 0:
                    doc["relative"] = extended_u / row["duration_min"] * 60
        else:
            doc = _treatment(row, stamp, "Correction Bolus")
            if _present(units):
                doc["insulin"] = units
        if row["automated"]:
            doc.update(type="SMB", isSMB=True)
        if row["insulin_class"] == "long":
            doc["isBasalInsulin"] = True
        if _present(row["insulin_name"]):
            doc["insulinType"] = row["insulin_name"]
        docs.append(doc)
    return docs


def _basals(insulin: pd.DataFrame) -> list[dict]:
    table = insulin[insulin["event"] == "basal"].sort_values(["time"], kind="stable")
    # Nightscout needs a duration: a rate without one lasts until the next basal row (left
    # open, as in the model, when that is further away than any duration may be)
    following = table["time"].shift(-1)
    until_next = (following - table["time"]).dt.total_seconds() / 60
    until_next = until_next.where(until_next <= MAX_DURATION_MIN)
    durations = table["duration_min"].fillna(until_next).to_numpy(dtype=float, na_value=np.nan)
    docs = []
    for row, stamp, minutes in zip(_records(table), _stamp(table), durations, strict=True):
        doc = _treatment(row, stamp, "Temp Basal")
        if _present(row["rate_u_per_h"]):
            doc.update(absolute=row["rate_u_per_h"], rate=row["rate_u_per_h"])
        if not np.isnan(minutes):
            doc["duration"] = minutes
        if row["delivery"] == "suspend":
            doc["reason"] = "suspend"
        doc["automatic"] = bool(row["automated"])
        docs.append(doc)
    return docs


def _carbs(carbs: pd.DataFrame) -> list[dict]:
    docs = []
    for row, stamp in zip(_records(carbs), _stamp(carbs), strict=True):
        if _present(row["carbs_g"]):
            doc = _treatment(row, stamp, "Carb Correction")
            doc["carbs"] = row["carbs_g"]
        else:
            doc = _treatment(row, stamp, "Note")
        if _present(row["note"]):
            doc["notes"] = row["note"]
        docs.append(doc)
    return docs


def _exercise(activity: pd.DataFrame) -> list[dict]:
    docs = []
    for row, stamp in zip(_records(activity), _stamp(activity), strict=True):
        doc = _treatment(row, stamp, "Exercise")
        if _present(row["duration_min"]):
            doc["duration"] = row["duration_min"]
        if _present(row["activity_type"]):
            doc["notes"] = row["activity_type"]
        docs.append(doc)
    return docs
