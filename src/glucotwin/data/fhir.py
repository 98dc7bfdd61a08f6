"""FHIR R4 continuous glucose monitoring (CGM) resources: the vocabulary and the exporter.

Implements the HL7 FHIR CGM implementation guide, hl7.fhir.uv.cgm 1.0.0 (STU 1, base FHIR
R4 4.0.1, http://hl7.org/fhir/uv/cgm; profiles in ``input/fsh/profiles.fsh`` of HL7/cgm).
:func:`cgm_bundle` writes a recording as the IG's *CGM Data Submission Bundle*: a
``transaction`` Bundle (``timestamp`` 1..1) whose entries are POSTed Observations:

- one *CGM Sensor Reading (Mass)* per CGM reading: LOINC 99504-3, ``valueQuantity`` UCUM
  ``mg/dL`` (display ``mg/dl`` as the IG fixes it), ``effectiveDateTime`` in the reading's own
  UTC offset. Censored readings ("Low"/"High") carry the sensor limit with
  ``comparator`` ``<`` / ``>`` (Quantity.comparator: the true value is below/above);
- the *CGM Summary* panel, LOINC 107931-8, whose ``hasMember`` lists mean glucose 97507-8,
  times in ranges 106793-3 (components 104642-4 <54, 104641-6 54–69, 97510-2 70–180,
  104640-8 181–250, 104639-0 >250 mg/dL, in %), GMI 97506-0, CV 104638-2, days of wear
  104636-6 (UCUM ``d``) and sensor active 104637-4, all over one ``effectivePeriod``.

Every Observation has ``status`` final, ``category`` laboratory and ``subject``, as in the IG's
examples. Entries are identified by ``urn:uuid`` fullUrls (deterministic UUIDv5 values, so
the same input gives the same file) and reference each other by them, as FHIR transactions
do. Summary numbers are rounded to two decimals (the IG asks times in ranges with at least
two); readings keep their full value.

Why the R4B models of ``fhir.resources``: the IG is FHIR R4 (4.0.1), and fhir.resources 8
ships R5 (the default package), R4B (4.3.0) and STU3 but no 4.0.1 models. R5 renamed
elements the IG uses (``Device.deviceName`` became ``Device.name``), so R5 rejects the IG's
Device example, while R4B changed none of Observation, Device, Patient, DiagnosticReport or
Bundle relative to R4 and validates all 14 compiled IG examples. :func:`model_class` is the
one place that choice is made; the importer (:mod:`glucotwin.data.importers.fhir`) uses it too.

Not written: the IG's PDF report (DiagnosticReport), Patient and Device resources (the
subject is a reference; a POST of either in every submission would duplicate them on the
server), fingerstick readings (not interstitial CGM readings) and insulin, carbs and activity
(outside the IG).
"""

from __future__ import annotations

import json
import math
import os
import re
import tempfile
import uuid
from collections.abc import Mapping
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from fhir.resources.R4B import get_fhir_model_class
from fhir_core.fhirabstractmodel import FHIRAbstractModel
from pydantic import ValidationError

from glucotwin.data.errors import DataError
from glucotwin.data.model import Recording

LOINC = "http://loinc.org"
UCUM = "http://unitsofmeasure.org"
OBSERVATION_CATEGORY = "http://terminology.hl7.org/CodeSystem/observation-category"

READING_MG_DL = "99504-3"  # Glucose [Mass/volume] in Interstitial fluid
READING_MMOL_L = "105272-9"  # Glucose [Moles/volume] in Interstitial fluid
SUMMARY_PANEL = "107931-8"  # CGM summary panel - reporting period
MEAN_GLUCOSE_MG_DL = "97507-8"
MEAN_GLUCOSE_MMOL_L = "105273-7"
TIMES_IN_RANGES = "106793-3"
GMI = "97506-0"
CV = "104638-2"
DAYS_OF_WEAR = "104636-6"
SENSOR_ACTIVE = "104637-4"

READING_UNITS: dict[str, str] = {READING_MG_DL: "mg/dL", READING_MMOL_L: "mmol/L"}
"""CGM sensor reading LOINC code -> the UCUM unit its profile fixes."""

SUMMARY_MEMBERS: dict[str, tuple[str, str]] = {
    MEAN_GLUCOSE_MG_DL: ("mean_glucose", "mg/dL"),
    MEAN_GLUCOSE_MMOL_L: ("mean_glucose", "mmol/L"),
    GMI: ("gmi", "%"),
    CV: ("cv", "%"),
    DAYS_OF_WEAR: ("days_of_wear", "d"),
    SENSOR_ACTIVE: ("sensor_active", "%"),
}
"""Summary member Observations with a value: LOINC code -> (name, UCUM unit)."""

TIME_IN_RANGE_COMPONENTS: dict[str, str] = {
    "104642-4": "time_in_very_low",  # < 54 mg/dL
    "104641-6": "time_in_low",  # 54-69 mg/dL
    "97510-2": "time_in_target",  # 70-180 mg/dL
    "104640-8": "time_in_high",  # 181-250 mg/dL
    "104639-0": "time_in_very_high",  # > 250 mg/dL
}
"""Components of the times-in-ranges Observation 106793-3 (all in %), in the IG's order."""

UNIT_DISPLAY = {"mg/dL": "mg/dl", "mmol/L": "mmol/l", "%": "%", "d": "days"}
"""Quantity.unit text the IG's profiles fix for each UCUM code."""

FHIR_ID = re.compile(r"[A-Za-z0-9\-.]{1,64}")
_UUID_NAMESPACE = uuid.uuid5(uuid.NAMESPACE_URL, "https://glucotwin.org/fhir")
_PERCENT_TOLERANCE = 1e-6


def model_class(resource_type: str) -> type[FHIRAbstractModel]:
    """The fhir.resources R4B model that validates ``resource_type`` (ValueError if unknown)."""
    return get_fhir_model_class(resource_type)


def _coding(code: str) -> dict[str, Any]:
    return {"coding": [{"system": LOINC, "code": code}]}


def _category() -> list[dict[str, Any]]:
    return [{"coding": [{"system": OBSERVATION_CATEGORY, "code": "laboratory"}]}]


def _quantity(value: float, unit: str) -> dict[str, Any]:
    return {"value": value, "unit": UNIT_DISPLAY[unit], "system": UCUM, "code": unit}


def _full_url(*key: object) -> str:
    return f"urn:uuid:{uuid.uuid5(_UUID_NAMESPACE, '|'.join(map(str, key)))}"


def _entry(full_url: str, resource: dict[str, Any]) -> dict[str, Any]:
    return {
        "fullUrl": full_url,
        "resource": resource,
        "request": {"method": "POST", "url": resource["resourceType"]},
    }


def _subject(recording: Recording, subject_reference: str | None) -> dict[str, Any]:
    subjects = recording.cgm()["subject"].dropna().unique().tolist()
    if len(subjects) > 1:
        raise DataError(
            f"a CGM bundle is about one person, the recording has {len(subjects)} "
            "(use Recording.for_subject first)",
            field="subject",
        )
    if subject_reference is not None:
        return {"reference": subject_reference}
    if not subjects:
        raise DataError("the recording names no subject: pass subject_reference", field="subject")
    subject = str(subjects[0])
    if FHIR_ID.fullmatch(subject):
        return {"reference": f"Patient/{subject}"}
    # Not a valid FHIR id (e.g. it has a space or underscore): refer by business identifier.
    return {"type": "Patient", "identifier": {"value": subject}}


def _offset_text(offset_min: int) -> str:
    hours, minutes = divmod(abs(offset_min), 60)
    return f"{'-' if offset_min < 0 else '+'}{hours:02d}:{minutes:02d}"


def _reading_times(table: pd.DataFrame) -> list[str]:
    """FHIR dateTime strings of rows: local wall clock with the original UTC offset.

    Raises :class:`DataError` for floating local time (no offset), which FHIR cannot express
    (a dateTime with a time SHALL have an offset).
    """
    offsets = table["utc_offset_min"]
    if offsets.isna().any():
        position = int(np.flatnonzero(offsets.isna().to_numpy())[0])
        file, line = table["source_file"].iloc[position], table["source_line"].iloc[position]
        raise DataError(
            "readings in floating local time (no UTC offset) cannot be written as FHIR "
            "dateTime; import the data with its time zone",
            file=None if pd.isna(file) else file,
            line=None if pd.isna(line) else int(line),
            field="utc_offset_min",
        )
    offset_min = offsets.to_numpy(dtype=np.int64)
    local = table["time"].dt.tz_localize(None) + pd.to_timedelta(offset_min, unit="min")
    fraction = (local.dt.microsecond != 0).any()
    wall = local.dt.strftime("%Y-%m-%dT%H:%M:%S.%f" if fraction else "%Y-%m-%dT%H:%M:%S")
    suffix = {int(o): _offset_text(int(o)) for o in np.unique(offset_min)}
    return [w + suffix[o] for w, o in zip(wall.tolist(), offset_min.tolist(), strict=True)]


def validation_field(exc: ValidationError) -> str | None:
    """The element path of the first problem pydantic found, FHIRPath-like: ``a[2].b``."""
    errors = exc.errors()
    if not errors:
        return None
    path = ""
    for part in errors[0]["loc"]:
        path += f"[{part}]" if isinstance(part, int) else f".{part}"
    return path.lstrip(".") or None


def _reading(subject: dict[str, Any], when: str, value: float, censored: str) -> dict[str, Any]:
    quantity = _quantity(value, "mg/dL")
    if censored == "below":
        quantity = {"comparator": "<", **quantity}
    elif censored == "above":
        quantity = {"comparator": ">", **quantity}
    return {
        "resourceType": "Observation",
        "status": "final",
        "category": _category(),
        "code": _coding(READING_MG_DL),
        "subject": dict(subject),
        "effectiveDateTime": when,
        "valueQuantity": quantity,
    }


def _metric(metrics: Mapping[str, Any], key: str) -> float:
    if key not in metrics:
        raise DataError(f"the metrics have no '{key}'", field=key)
    try:
        value = float(metrics[key])
    except (TypeError, ValueError):
        raise DataError(f"metric {metrics[key]!r} is not a number", field=key) from None
    if not math.isfinite(value) or value < 0:
        raise DataError(f"metric {value!r} is not a finite non-negative number", field=key)
    if key.endswith("_percent") and value > 100 + _PERCENT_TOLERANCE:
        raise DataError(f"metric {value:g} is not a percentage", field=key)
    return value


def _times_in_ranges(metrics: Mapping[str, Any]) -> list[tuple[str, float]]:
    """The five IG ranges from the cumulative metrics (below 70 includes below 54, etc.)."""
    below_54, below_70 = (
        _metric(metrics, k) for k in ("tbr_below_54_percent", "tbr_below_70_percent")
    )
    above_250, above_180 = (
        _metric(metrics, k) for k in ("tar_above_250_percent", "tar_above_180_percent")
    )
    if below_54 > below_70 + _PERCENT_TOLERANCE:
        raise DataError(
            f"time below 54 ({below_54:g} %) exceeds time below 70 ({below_70:g} %), which "
            "includes it",
            field="tbr_below_54_percent",
        )
    if above_250 > above_180 + _PERCENT_TOLERANCE:
        raise DataError(
            f"time above 250 ({above_250:g} %) exceeds time above 180 ({above_180:g} %), "
            "which includes it",
            field="tar_above_250_percent",
        )
    values = (
        below_54,
        max(below_70 - below_54, 0.0),
        _metric(metrics, "tir_70_180_percent"),
        max(above_180 - above_250, 0.0),
        above_250,
    )
    return list(zip(TIME_IN_RANGE_COMPONENTS, values, strict=True))


def _fhir_date(value: Any, field: str) -> str:
    """The calendar date of an ISO time (in its own offset), as FHIR ``date``."""
    try:
        stamp = pd.Timestamp(value)
    except (TypeError, ValueError):
        raise DataError(f"{value!r} is not an ISO 8601 time", field=field) from None
    if pd.isna(stamp):
        raise DataError("the reporting period has no time", field=field)
    return stamp.strftime("%Y-%m-%d")


def _summary(
    metrics: Mapping[str, Any], subject: dict[str, Any], period: dict[str, str]
) -> list[dict[str, Any]]:
    """The summary panel and its six members, panel first (the IG example's order)."""

    def observation(code: str) -> dict[str, Any]:
        return {
            "resourceType": "Observation",
            "status": "final",
            "category": _category(),
            "code": _coding(code),
            "subject": dict(subject),
            "effectivePeriod": dict(period),
        }

    members: list[dict[str, Any]] = []
    for code, key in (
        (MEAN_GLUCOSE_MG_DL, "mean_mg_dl"),
        (TIMES_IN_RANGES, None),
        (GMI, "gmi_percent"),
        (CV, "cv_percent"),
        (DAYS_OF_WEAR, "days"),
        (SENSOR_ACTIVE, "cgm_active_percent"),
    ):
        resource = observation(code)
        if key is None:
            resource["component"] = [
                {"code": _coding(c), "valueQuantity": _quantity(round(v, 2), "%")}
                for c, v in _times_in_ranges(metrics)
            ]
        else:
            unit = SUMMARY_MEMBERS[code][1]
            resource["valueQuantity"] = _quantity(round(_metric(metrics, key), 2), unit)
        members.append(resource)
    urls = [_full_url("summary", period["start"], period["end"], m["code"]) for m in members]
    panel = observation(SUMMARY_PANEL)
    panel["hasMember"] = [{"reference": url} for url in urls]
    panel_url = _full_url("summary", period["start"], period["end"], SUMMARY_PANEL)
    return [_entry(panel_url, panel)] + [
        _entry(url, member) for url, member in zip(urls, members, strict=True)
    ]


def cgm_bundle(
    recording: Recording,
    metrics: Mapping[str, Any],
    *,
    subject_reference: str | None = None,
    period: tuple[str, str] | None = None,
    timestamp: datetime | pd.Timestamp | None = None,
) -> dict[str, Any]:
    """The recording's CGM readings and summary as an IG CGM Data Submission Bundle (a dict).

    ``metrics``: mean_mg_dl, cv_percent, gmi_percent, tbr_below_54_percent,
    tbr_below_70_percent (includes < 54), tir_70_180_percent, tar_above_180_percent
    (includes > 250), tar_above_250_percent, cgm_active_percent, days (days of wear),
    first_time and last_time (ISO 8601). ``subject_reference``: e.g. ``"Patient/123"``;
    by default the recording's one subject (``Patient/<subject>``, or a reference by
    identifier when the subject is not a valid FHIR id). ``period``: FHIR dates or dateTimes
    (start, end); by default the dates of first_time and last_time, as the IG's
    "YYYY-MM-DD". ``timestamp``: when the bundle was made (default: now).

    The summary resources are validated with the R4B models here (cheap); the readings are
    built from typed columns only. Raises :class:`DataError` for metrics that are missing
    or contradictory, several subjects, or floating local times.
    """
    subject = _subject(recording, subject_reference)
    if period is None:
        start = _fhir_date(metrics.get("first_time"), "first_time")
        end = _fhir_date(metrics.get("last_time"), "last_time")
    else:
        start, end = (str(p) for p in period)
    summary = _summary(metrics, subject, {"start": start, "end": end})
    observation = model_class("Observation")
    for entry in summary:
        try:
            observation.model_validate(entry["resource"])
        except ValidationError as exc:
            raise DataError(
                f"the summary Observation is not valid FHIR: {exc.errors()[0]['msg']}",
                field=validation_field(exc),
            ) from exc

    cgm = recording.cgm()
    times = _reading_times(cgm)
    values = cgm["glucose_mg_dl"].tolist()
    censored = cgm["censored"].fillna("").tolist()
    readings = [
        _entry(_full_url("reading", i, when), _reading(subject, when, value, limit))
        for i, (when, value, limit) in enumerate(zip(times, values, censored, strict=True))
    ]
    made = pd.Timestamp.now(tz="UTC") if timestamp is None else pd.Timestamp(timestamp)
    if made.tzinfo is None:
        raise DataError("the bundle timestamp needs a time zone", field="timestamp")
    return {
        "resourceType": "Bundle",
        "type": "transaction",
        "timestamp": made.tz_convert("UTC").strftime("%Y-%m-%dT%H:%M:%SZ"),
        "entry": summary + readings,
    }


def write_fhir_bundle(
    recording: Recording,
    path: str | Path,
    metrics: Mapping[str, Any],
    *,
    subject_reference: str | None = None,
    period: tuple[str, str] | None = None,
    timestamp: datetime | pd.Timestamp | None = None,
) -> Path:
    """Write :func:`cgm_bundle` as JSON, atomically: a reader never sees a half-written file."""
    bundle = cgm_bundle(
        recording,
        metrics,
        subject_reference=subject_reference,
        period=period,
        timestamp=timestamp,
    )
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            json.dump(bundle, handle, ensure_ascii=False, allow_nan=False, separators=(",", ":"))
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path
