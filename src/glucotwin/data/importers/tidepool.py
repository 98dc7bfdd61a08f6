"""Tidepool data-model JSON: an array of device datums as Tidepool's API and export write them.

Source: the Tidepool data model (github.com/tidepool-org/TidepoolApi, ``docs/device-data``:
``units.md``, ``oor-values.md``, ``data-types/*``). Each datum has a ``type`` (and
``subType``/``deliveryType``), ``time`` (UTC ISO 8601), ``timezoneOffset`` (minutes east of
UTC) and ``deviceTime`` (the device's wall clock). Exports may be written from a data frame, so
every record can carry every column with ``null`` for "absent"; they are in arbitrary order and
are de-duplicated here by ``id`` (else ``guid``), the first copy kept.

``source_line`` is the 1-based position of the datum in the array (exports are often a single
line); errors name that position, or the text line and column for a JSON syntax error.

Glucose: Tidepool stores every glucose value in mmol/L, converted from the device's mg/dL by
dividing by 18.01559 (``units.md``) and stored unrounded (CGM values in older exports rounded
to 5 decimals). Multiplying by the same 18.01559 — not the model's 18.0182 — gives the device's
integer back (e.g. 6.60539 → 119.0000 vs 119.02 with 18.0182); a result within 0.001 mg/dL of
an integer is snapped to it, so mg/dL devices round-trip exactly and mmol/L-native values keep
their precision. ``pumpSettings`` glucose targets and sensitivities are also stored in mmol/L,
whatever ``units.bg`` (the display unit) says.

Mapping
- ``cbg`` → CGM, ``smbg`` (manual, linked) → fingerstick; an ``bg/out-of-range`` annotation
  marks a censored reading whose ``glucose_mg_dl`` is the annotation's ``threshold`` (the
  device's range limit, always mg/dL, ``oor-values.md``); other annotation codes
  (``uncertain-timestamp``, ``final-basal/fabricated-from-schedule``) become ``flag``.
- ``basal``: ``scheduled``; ``temp`` (``rate``, else ``percent`` × the ``suppressed`` rate);
  ``suspend`` (0 U/h); ``automated`` (rate set by an AID algorithm → temporary, automated).
  ``duration`` ms → min. The ``suppressed`` schedule itself is not kept (it is the schedule in
  ``meta["profiles"]``).
- ``bolus``: ``normal``, ``square`` (extended), ``dual/square`` (dual: total = normal +
  extended), ``automated`` (automated); delivered less than ``expectedNormal``/
  ``expectedExtended`` → flag ``interrupted``. ``insulin`` (pen/syringe dose) → bolus with the
  formulation's acting type as ``insulin_class``.
- ``wizard``: only its ``carbInput`` (grams) → carbs. Its insulin is the linked ``bolus`` datum
  (referenced by id), imported once as a bolus; a bolus embedded in the wizard object is
  imported when no datum with its id exists. Calculator inputs (BG, ratios, IOB,
  recommendations) are dropped: they are the pump's derived state.
- ``food`` (``nutrition.carbohydrate.net`` g, ``meal``, ``name`` → note) → carbs;
  ``physicalActivity`` → activity (duration, energy in kcal, steps, reported intensity).
- ``deviceEvent`` ``status`` (suspended) → basal suspend when no ``basal`` suspend datum starts
  at the same time on that device (Tidepool usually writes both); ``reservoirChange``/
  ``prime`` → ``meta["events"]``; other device events (alarms, time changes, calibrations) are
  counted in ``meta["skipped"]``.
- ``upload`` → ``meta["devices"]``; ``pumpSettings`` → therapy settings in
  ``meta["profiles"]`` (one per basal schedule, glucose in mg/dL, schedule entries
  ``{"start": "HH:MM", "start_s", "value"}``). Other known types (``bloodKetone``,
  ``cgmSettings``, ``dosingDecision``, ...) are counted in ``meta["skipped"]``; a type outside
  the data model is an error.

Times: ``time`` is the instant. The offset is ``timezoneOffset``, else the datum's IANA
``timezone``, else ``deviceTime − time`` rounded to 15 min, else the zone in
:class:`ImportOptions`, else 0 (``time`` is UTC). A datum without ``time`` is placed by its
``deviceTime`` (local wall clock, floating unless a zone is given). ``clockDriftOffset`` and
``conversionOffset`` only relate ``deviceTime`` to ``time`` and are not kept.
"""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from glucotwin.data.errors import DataError
from glucotwin.data.formats import Format, ImportOptions
from glucotwin.data.jsonio import field_text, field_values, load_json
from glucotwin.data.model import Recording
from glucotwin.data.textio import (
    first_bad,
    flag_rows,
    join_texts,
    parse_number_cells,
    place_wall_clock,
    read_text,
)

TIDEPOOL_MG_DL_PER_MMOL_L = 18.01559
"""The factor Tidepool divides mg/dL by to store mmol/L (molar mass 180.1559 g/mol)."""
SNAP_MG_DL = 1e-3  # a converted value this close to an integer was that integer on the device
MAX_MMOL_L_SETTING = 40.0  # no glucose target or sensitivity in mmol/L(/U) is larger

GLUCOSE_TYPES = frozenset({"cbg", "smbg"})
KNOWN_TYPES = frozenset(
    {
        "alert",
        "basal",
        "bloodKetone",
        "bolus",
        "cbg",
        "cgmSettings",
        "controllerSettings",
        "controllerStatus",
        "deviceEvent",
        "deviceStatus",
        "dosingDecision",
        "food",
        "insulin",
        "physicalActivity",
        "pumpSettings",
        "pumpStatus",
        "reportedState",
        "smbg",
        "upload",
        "water",
        "wizard",
    }
)
BASAL_DELIVERY = {
    "scheduled": "scheduled",
    "temp": "temporary",
    "suspend": "suspend",
    "automated": "temporary",
}
BOLUS_DELIVERY = {
    "normal": "normal",
    "automated": "normal",
    "square": "extended",
    "dual/square": "dual",
}
ACTING_TYPES = {"rapid": "rapid", "short": "short", "intermediate": "intermediate", "long": "long"}
MINUTES = {"seconds": 1 / 60, "minutes": 1.0, "hours": 60.0}
KCAL = {"kilocalories": 1.0, "calories": 1e-3, "kilojoules": 1 / 4.184, "joules": 1 / 4184}
SITE_EVENTS = frozenset({"reservoirChange", "prime"})
SNIFF_TYPE = re.compile(
    r'"type"\s*:\s*"(cbg|smbg|basal|bolus|wizard|upload|pumpSettings|deviceEvent|food|'
    r'physicalActivity|cgmSettings|bloodKetone|insulin|dosingDecision)"'
)
SNIFF_FIELD = re.compile(r'"(deviceTime|timezoneOffset|uploadId|deliveryType|subType)"\s*:')


def _sniff(path: Path, head: bytes) -> bool:
    text = head.decode("utf-8-sig", errors="replace").lstrip()
    if not text or text[0] not in "[{":
        return False
    return bool(SNIFF_TYPE.search(text)) and bool(SNIFF_FIELD.search(text))


def _records(path: Path, file: str) -> list[dict]:
    data = load_json(read_text(path), file)
    if isinstance(data, dict):
        data = [data]
    if not isinstance(data, list):
        raise DataError("JSON holds neither an array nor an object", file=file, line=1)
    for position, datum in enumerate(data, start=1):
        if not isinstance(datum, dict):
            raise DataError(f"datum {position} is not a JSON object", file=file, line=position)
    if not data:
        raise DataError("no Tidepool datums in the file", file=file)
    return data


def _with_embedded_boluses(data: list[dict]) -> tuple[list[dict], list[int], Counter]:
    """Add the boluses embedded in wizard datums whose id is not a datum of its own."""
    ids = {d.get("id") for d in data if d.get("id") is not None}
    lines = list(range(1, len(data) + 1))
    links: Counter = Counter()
    extra, extra_lines = [], []
    for position, datum in enumerate(data, start=1):
        if datum.get("type") != "wizard" or datum.get("bolus") is None:
            continue
        bolus = datum["bolus"]
        if isinstance(bolus, dict):
            if bolus.get("id") in ids:
                links["linked"] += 1
                continue
            links["embedded"] += 1
            inherited = {
                k: datum.get(k)
                for k in ("time", "timezoneOffset", "deviceTime", "deviceId", "timezone")
            }
            extra.append(
                {**inherited, **{k: v for k, v in bolus.items() if v is not None}, "type": "bolus"}
            )
            extra_lines.append(position)
        elif bolus in ids:
            links["linked"] += 1
        else:
            links["missing"] += 1
    return data + extra, lines + extra_lines, links


# ---------------------------------------------------------------------------------------------
# Column helpers


def _number(
    frame: pd.DataFrame, name: str, lines: np.ndarray, file: str, rows: np.ndarray | None = None
) -> pd.Series:
    """A numeric field, read (and checked) only in ``rows``: datum types reuse field names for
    other shapes (``duration`` is ms on a basal, an object on a physical activity)."""
    values = field_values(frame, name)
    if rows is not None:
        values = values.where(rows, None)
    return parse_number_cells(values, lines=lines, field=name, file=file)


def _nested(frame: pd.DataFrame, name: str, *path: str) -> pd.Series:
    """``frame[name][path[0]][path[1]]...`` where present (object values, else None)."""

    def dig(value: Any) -> Any:
        for key in path:
            if not isinstance(value, dict):
                return None
            value = value.get(key)
        return value

    return field_values(frame, name).map(dig)


def _nested_number(
    frame: pd.DataFrame, name: str, path: tuple[str, ...], lines: np.ndarray, file: str
) -> pd.Series:
    values = _nested(frame, name, *path)
    return parse_number_cells(values, lines=lines, field=".".join((name, *path)), file=file)


def mg_dl_from_tidepool_mmol(mmol_l: np.ndarray | pd.Series | float) -> np.ndarray:
    """Tidepool's stored mmol/L → mg/dL, exact for the devices' integer mg/dL readings."""
    mg_dl = np.asarray(mmol_l, dtype=float) * TIDEPOOL_MG_DL_PER_MMOL_L
    nearest = np.round(mg_dl)
    return np.where(np.abs(mg_dl - nearest) < SNAP_MG_DL, nearest, mg_dl)


def _glucose_mg_dl(
    values: pd.Series, units: pd.Series, rows: np.ndarray, lines: np.ndarray, file: str
) -> np.ndarray:
    key = units.str.lower().str.replace(" ", "", regex=False)
    mmol = key.isin(["mmol/l", "mmol"]).to_numpy()
    mg = key.isin(["mg/dl", "mgdl"]).to_numpy()
    bad = rows & ~mmol & ~mg
    if bad.any():
        unit = units.to_numpy()[bad][0]
        what = "no glucose units" if pd.isna(unit) else f"unknown glucose unit {unit!r}"
        raise DataError(
            f"{what} (expected mmol/L or mg/dL)",
            file=file,
            line=first_bad(bad, lines),
            field="units",
        )
    return np.where(mmol, mg_dl_from_tidepool_mmol(values.to_numpy(dtype=float)), values)


def _annotations(frame: pd.DataFrame) -> tuple[np.ndarray, np.ndarray, pd.Series]:
    """(censored, out-of-range threshold in mg/dL, other annotation codes as flag)."""
    n = len(frame)
    censored = np.full(n, "", dtype=object)
    threshold = np.full(n, np.nan)
    flag = pd.Series(pd.NA, index=frame.index, dtype="string")
    raw = field_values(frame, "annotations")
    for i in np.flatnonzero(raw.map(lambda v: isinstance(v, list) and len(v) > 0)):
        codes = []
        for note in raw.iloc[i]:
            if not isinstance(note, dict):
                continue
            if note.get("code") == "bg/out-of-range" and note.get("value") in ("low", "high"):
                censored[i] = "below" if note["value"] == "low" else "above"
                if isinstance(note.get("threshold"), int | float):
                    threshold[i] = float(note["threshold"])
            elif note.get("code"):
                codes.append(str(note["code"]))
        if codes:
            flag.iloc[i] = ";".join(codes)
    return censored, threshold, flag


def _date_times(
    frame: pd.DataFrame, name: str, what: str, lines: np.ndarray, file: str, *, utc: bool
) -> pd.Series:
    """ISO 8601 times of field ``name``: UTC instants, or naive wall-clock times."""
    text = field_text(frame, name)
    parsed = pd.to_datetime(text, format="ISO8601", utc=utc, errors="coerce")
    bad = (parsed.isna() & text.notna()).to_numpy()
    if bad.any():
        raise DataError(
            f"cannot read the {what} {text.to_numpy()[bad][0]!r}",
            file=file,
            line=first_bad(bad, lines),
            field=name,
        )
    return parsed.astype("datetime64[ns, UTC]" if utc else "datetime64[ns]")


def _times(
    frame: pd.DataFrame, lines: np.ndarray, file: str, timezone: str | None
) -> tuple[pd.Series, pd.Series]:
    instant = _date_times(frame, "time", "time", lines, file, utc=True)
    device = _date_times(frame, "deviceTime", "device time", lines, file, utc=False)
    offset = _number(frame, "timezoneOffset", lines, file).astype("Float64")

    floating = (instant.isna() & device.notna()).to_numpy()
    if floating.any():
        utc, local_offset, _ = place_wall_clock(
            device[floating], timezone, lines=lines[floating], field="deviceTime", file=file
        )
        instant[floating] = utc.to_numpy()
        offset[floating] = local_offset.astype("Float64").to_numpy()
    missing = instant.isna().to_numpy()
    if missing.any():
        raise DataError(
            "datum without a time", file=file, line=first_bad(missing, lines), field="time"
        )

    def unknown() -> np.ndarray:
        return offset.isna().to_numpy() & ~floating

    zones = field_text(frame, "timezone")
    for zone in zones[unknown()].dropna().unique():
        rows = unknown() & (zones == zone).fillna(False).to_numpy()
        offset[rows] = _zone_offset(instant[rows], zone, lines[rows], file).to_numpy()
    drift = unknown() & device.notna().to_numpy()
    if drift.any():
        minutes = (device[drift] - instant[drift].dt.tz_localize(None)).dt.total_seconds() / 60
        offset[drift] = ((minutes / 15).round() * 15).to_numpy()
    if timezone is not None and unknown().any():
        rows = unknown()
        offset[rows] = _zone_offset(instant[rows], timezone, lines[rows], file).to_numpy()
    offset[unknown()] = 0.0
    return instant, offset.round().astype("Int16")


def _zone_offset(instant: pd.Series, zone: str, lines: np.ndarray, file: str) -> pd.Series:
    try:
        local = instant.dt.tz_convert(zone).dt.tz_localize(None)
    except Exception as exc:  # zoneinfo raises several types for an unknown zone
        raise DataError(
            f"unknown time zone {zone!r}", file=file, line=int(lines[0]), field="timezone"
        ) from exc
    return ((local - instant.dt.tz_localize(None)).dt.total_seconds() / 60).round()


# ---------------------------------------------------------------------------------------------
# Therapy settings and devices


def _schedule(
    entries: Any, key: str, to_mg_dl: bool, where: str, line: int, file: str
) -> list[dict]:
    if entries is None:
        return []
    if not isinstance(entries, list):
        raise DataError("schedule is not a list", file=file, line=line, field=where)
    out = []
    for i, entry in enumerate(entries):
        if not isinstance(entry, dict):
            raise DataError(
                "schedule entry is not an object", file=file, line=line, field=f"{where}[{i}]"
            )
        start_ms, value = entry.get("start"), entry.get(key)
        if not isinstance(start_ms, int | float) or not 0 <= start_ms < 86_400_000:
            raise DataError(
                f"schedule start {start_ms!r} is not a time of day in ms",
                file=file,
                line=line,
                field=f"{where}[{i}].start",
            )
        if not isinstance(value, int | float) or isinstance(value, bool):
            raise DataError(
                f"{value!r} is not a number", file=file, line=line, field=f"{where}[{i}].{key}"
            )
        if to_mg_dl:
            if value > MAX_MMOL_L_SETTING:
                raise DataError(
                    f"{value:g} is not a glucose setting in mmol/L (Tidepool stores mmol/L)",
                    file=file,
                    line=line,
                    field=f"{where}[{i}].{key}",
                )
            value = float(mg_dl_from_tidepool_mmol(value))
        start_s = int(start_ms // 1000)
        out.append(
            {
                "start": f"{start_s // 3600:02d}:{start_s % 3600 // 60:02d}",
                "start_s": start_s,
                "value": float(value),
            }
        )
    return sorted(out, key=lambda e: e["start_s"])


def _targets(entries: Any, where: str, line: int, file: str) -> tuple[list[dict], list[dict]]:
    """bgTarget entries (low/high, target±range or target/high) → low and high schedules."""
    if entries is None:
        return [], []
    if not isinstance(entries, list):
        raise DataError("schedule is not a list", file=file, line=line, field=where)
    lows, highs = [], []
    for entry in entries:
        if not isinstance(entry, dict):
            raise DataError("schedule entry is not an object", file=file, line=line, field=where)
        target, spread = entry.get("target"), entry.get("range")
        low = entry.get("low", target - spread if target is not None and spread else target)
        high = entry.get("high", target + spread if target is not None and spread else target)
        lows.append({"start": entry.get("start"), "value": low})
        highs.append({"start": entry.get("start"), "value": high})
    return (
        _schedule(lows, "value", True, where, line, file),
        _schedule(highs, "value", True, where, line, file),
    )


def _per_schedule(datum: dict, shared: str, keyed: str, name: str) -> Any:
    by_name = datum.get(keyed)
    if isinstance(by_name, dict) and name in by_name:
        return by_name[name]
    return datum.get(shared)


def _pump_settings(datum: dict, line: int, time: pd.Timestamp, file: str) -> list[dict]:
    schedules = datum.get("basalSchedules") or {}
    if not isinstance(schedules, dict):
        raise DataError(
            "basalSchedules is not an object", file=file, line=line, field="basalSchedules"
        )
    profiles = []
    for name, basal in schedules.items():
        low, high = _targets(
            _per_schedule(datum, "bgTarget", "bgTargets", name), "bgTarget", line, file
        )
        profiles.append(
            {
                "source": "tidepool pumpSettings",
                "name": name,
                "default": name == datum.get("activeSchedule"),
                "valid_from": time.isoformat(),
                "device": datum.get("deviceId"),
                "units": "mg/dL",
                "basal_u_per_h": _schedule(
                    basal, "rate", False, f"basalSchedules.{name}", line, file
                ),
                "carb_ratio_g_per_u": _schedule(
                    _per_schedule(datum, "carbRatio", "carbRatios", name),
                    "amount",
                    False,
                    "carbRatio",
                    line,
                    file,
                ),
                "sensitivity_mg_dl_per_u": _schedule(
                    _per_schedule(datum, "insulinSensitivity", "insulinSensitivities", name),
                    "amount",
                    True,
                    "insulinSensitivity",
                    line,
                    file,
                ),
                "target_low_mg_dl": low,
                "target_high_mg_dl": high,
                "source_line": line,
            }
        )
    return profiles


def _device(datum: dict) -> dict:
    keys = {
        "deviceId": "device_id",
        "deviceManufacturers": "manufacturers",
        "deviceModel": "model",
        "deviceSerialNumber": "serial_number",
        "deviceTags": "tags",
        "timezone": "timezone",
        "version": "uploader_version",
        "time": "uploaded_at",
    }
    return {out: datum[key] for key, out in keys.items() if datum.get(key) is not None}


# ---------------------------------------------------------------------------------------------
# The datums


def _read(path: Path, options: ImportOptions) -> Recording:
    file = path.name
    data = _records(path, file)
    kinds = [d.get("type") for d in data]
    for position, kind in enumerate(kinds, start=1):
        if not isinstance(kind, str) or not kind:
            raise DataError("datum without a 'type'", file=file, line=position, field="type")
        if kind not in KNOWN_TYPES:
            raise DataError(
                f"unknown Tidepool datum type {kind!r}", file=file, line=position, field="type"
            )
    data, positions, links = _with_embedded_boluses(data)
    frame = pd.DataFrame.from_records(data)
    lines = np.asarray(positions)
    key = field_text(frame, "id").fillna(field_text(frame, "guid"))
    duplicate = (key.notna() & key.duplicated()).to_numpy()
    frame, lines = frame[~duplicate].reset_index(drop=True), lines[~duplicate]

    def num(name: str, rows: np.ndarray) -> pd.Series:
        return _number(frame, name, lines, file, rows)

    kind = field_text(frame, "type")
    sub = field_text(frame, "subType").fillna(field_text(frame, "deliveryType"))
    label = (kind + "/" + sub).fillna(kind)
    time, offset = _times(frame, lines, file, options.timezone)
    censored, threshold, flag = _annotations(frame)
    base = pd.DataFrame(
        {
            "time": time.array,
            "utc_offset_min": offset.array,
            "subject": options.subject or path.stem,
            "device": field_text(frame, "deviceId").array,
            "source_line": lines,
            "flag": flag.array,
        }
    )

    def rows(name: str) -> np.ndarray:
        return (kind == name).fillna(False).to_numpy()

    # glucose
    is_glucose = kind.isin(GLUCOSE_TYPES).to_numpy()
    value = num("value", is_glucose)
    absent = is_glucose & value.isna().to_numpy()
    if absent.any():
        raise DataError(
            "glucose datum without a value", file=file, line=first_bad(absent, lines), field="value"
        )
    mg_dl = _glucose_mg_dl(value, field_text(frame, "units"), is_glucose, lines, file)
    glucose = base.assign(
        glucose_mg_dl=np.where(np.isnan(threshold), mg_dl, threshold),
        source=np.where(rows("smbg"), "fingerstick", "cgm"),
        censored=censored,
    )[is_glucose]

    # basal
    is_basal = rows("basal")
    delivery_type = field_text(frame, "deliveryType")
    unknown = is_basal & ~delivery_type.isin(list(BASAL_DELIVERY)).to_numpy()
    if unknown.any():
        raise DataError(
            f"unknown basal deliveryType {delivery_type.to_numpy()[unknown][0]!r}",
            file=file,
            line=first_bad(unknown, lines),
            field="deliveryType",
        )
    suppressed_rate = _nested_number(frame, "suppressed", ("rate",), lines, file)
    rate = num("rate", is_basal).fillna(num("percent", is_basal) * suppressed_rate)
    rate = rate.mask((delivery_type == "suspend").fillna(False), 0.0)
    basal = base.assign(
        event="basal",
        delivery=delivery_type.map(BASAL_DELIVERY).to_numpy(),
        rate_u_per_h=rate.to_numpy(),
        duration_min=(num("duration", is_basal) / 60_000).to_numpy(),
        automated=(delivery_type == "automated").fillna(False).to_numpy(),
    )[is_basal]

    # suspensions known only from a deviceEvent/status datum
    status = (
        rows("deviceEvent")
        & (sub == "status").fillna(False).to_numpy()
        & (field_text(frame, "status") == "suspended").fillna(False).to_numpy()
    )
    suspends = basal[basal["delivery"] == "suspend"]
    known = set(zip(suspends["time"], suspends["device"], strict=True))
    new_suspend = status.copy()
    for i in np.flatnonzero(status):
        new_suspend[i] = (base["time"].iloc[i], base["device"].iloc[i]) not in known
    status_suspend = base.assign(
        event="basal",
        delivery="suspend",
        rate_u_per_h=0.0,
        duration_min=(num("duration", status) / 60_000).to_numpy(),
        automated=False,
    )[new_suspend]

    # boluses and injections
    is_bolus = rows("bolus")
    unknown = is_bolus & ~sub.isin(list(BOLUS_DELIVERY)).to_numpy()
    if unknown.any():
        raise DataError(
            f"unknown bolus subType {sub.to_numpy()[unknown][0]!r}",
            file=file,
            line=first_bad(unknown, lines),
            field="subType",
        )
    normal, extended = num("normal", is_bolus), num("extended", is_bolus)
    interrupted = (num("expectedNormal", is_bolus) > normal).fillna(False) | (
        num("expectedExtended", is_bolus) > extended
    ).fillna(False)
    bolus = base.assign(
        event="bolus",
        delivery=sub.map(BOLUS_DELIVERY).to_numpy(),
        units_u=normal.fillna(0.0)
        .add(extended.fillna(0.0))
        .where(normal.notna() | extended.notna())
        .to_numpy(),
        extended_units_u=extended.to_numpy(),
        duration_min=(num("duration", is_bolus) / 60_000).where(extended.notna()).to_numpy(),
        automated=(sub == "automated").fillna(False).to_numpy(),
        flag=join_texts(base["flag"], flag_rows(interrupted.to_numpy(), "interrupted")),
    )[is_bolus]
    is_injection = rows("insulin")
    acting = _nested(frame, "formulation", "simple", "actingType")
    injection = base.assign(
        event="bolus",
        delivery="normal",
        units_u=_nested_number(frame, "dose", ("total",), lines, file).to_numpy(),
        insulin_class=acting.map(ACTING_TYPES).fillna("unknown").to_numpy(),
        insulin_name=_nested(frame, "formulation", "name").astype("string").to_numpy(),
    )[is_injection]

    # carbohydrates: wizard carb input, food
    is_wizard = rows("wizard")
    carb_units = field_text(frame, "carbUnits")
    bad_unit = (
        is_wizard
        & carb_units.notna().to_numpy()
        & ~(carb_units == "grams").fillna(False).to_numpy()
    )
    if bad_unit.any():
        raise DataError(
            f"unknown carbohydrate unit {carb_units.to_numpy()[bad_unit][0]!r}",
            file=file,
            line=first_bad(bad_unit, lines),
            field="carbUnits",
        )
    carb_input = num("carbInput", is_wizard)
    wizard_carbs = is_wizard & (carb_input > 0).to_numpy()
    is_food = rows("food")
    food_units = _nested(frame, "nutrition", "carbohydrate", "units").astype("string")
    bad_unit = (
        is_food & food_units.notna().to_numpy() & ~(food_units == "grams").fillna(False).to_numpy()
    )
    if bad_unit.any():
        raise DataError(
            f"unknown carbohydrate unit {food_units.to_numpy()[bad_unit][0]!r}",
            file=file,
            line=first_bad(bad_unit, lines),
            field="nutrition.carbohydrate.units",
        )
    food_carbs = _nested_number(frame, "nutrition", ("carbohydrate", "net"), lines, file)
    carbs = pd.concat(
        [
            base.assign(carbs_g=carb_input.to_numpy())[wizard_carbs],
            base.assign(
                carbs_g=food_carbs.to_numpy(),
                meal_type=field_text(frame, "meal").to_numpy(),
                note=field_text(frame, "name").to_numpy(),
            )[is_food],
        ],
        ignore_index=True,
    )

    # physical activity
    activity = _activity(frame, base, rows("physicalActivity"), lines, file)

    # metadata
    settings = [
        profile
        for i in np.flatnonzero(rows("pumpSettings"))
        for profile in _pump_settings(
            frame.iloc[i].dropna().to_dict(), int(lines[i]), time.iloc[i], file
        )
    ]
    uploads = [_device(frame.iloc[i].dropna().to_dict()) for i in np.flatnonzero(rows("upload"))]
    site = rows("deviceEvent") & sub.isin(list(SITE_EVENTS)).to_numpy()
    events = [
        {
            "time": time.iloc[i].isoformat(),
            "utc_offset_min": int(offset.iloc[i]),
            "event": label.iloc[i],
            "source_line": int(lines[i]),
        }
        for i in np.flatnonzero(site)
    ]
    used = (
        is_glucose
        | is_basal
        | is_bolus
        | is_injection
        | is_wizard
        | is_food
        | status
        | site
        | rows("physicalActivity")
        | rows("pumpSettings")
        | rows("upload")
    )
    meta = {
        "format": "tidepool",
        "timezone": options.timezone,
        "glucose_mg_dl_per_mmol_l": TIDEPOOL_MG_DL_PER_MMOL_L,
        "types": dict(sorted(Counter(label.tolist()).items())),
        "duplicates_dropped": int(duplicate.sum()),
        "skipped": dict(sorted(Counter(label[~used].tolist()).items())),
        "suspends_from_status_events": int(new_suspend.sum()),
        "wizard_boluses": {name: links.get(name, 0) for name in ("linked", "embedded", "missing")},
        "devices": uploads,
        "profiles": settings,
        "events": events,
    }
    return Recording.build(
        glucose=glucose,
        insulin=pd.concat([basal, status_suspend, bolus, injection], ignore_index=True),
        carbs=carbs,
        activity=activity,
        meta=meta,
        file=file,
    )


def _activity(
    frame: pd.DataFrame, base: pd.DataFrame, rows: np.ndarray, lines: np.ndarray, file: str
) -> pd.DataFrame:
    def converted(name: str, table: dict[str, float]) -> np.ndarray:
        value = _nested_number(frame, name, ("value",), lines, file)
        units = _nested(frame, name, "units").astype("string")
        factor = units.map(table).astype("float64")
        bad = rows & value.notna().to_numpy() & factor.isna().to_numpy()
        if bad.any():
            raise DataError(
                f"unknown unit {units.to_numpy()[bad][0]!r}",
                file=file,
                line=first_bad(bad, lines),
                field=f"{name}.units",
            )
        return (value * factor).to_numpy()

    activity_type = field_text(frame, "activityType")
    activity_type = (
        activity_type.mask((activity_type == "other").fillna(False))
        .fillna(field_text(frame, "activityTypeOther"))
        .fillna(field_text(frame, "name"))
    )
    return base.assign(
        activity_type=activity_type.to_numpy(),
        intensity=field_text(frame, "reportedIntensity").to_numpy(),
        duration_min=converted("duration", MINUTES),
        energy_kcal=converted("energy", KCAL),
        steps=_nested_number(frame, "step", ("count",), lines, file).to_numpy(),
    )[rows]


FORMAT = Format(
    name="tidepool",
    description="Tidepool data-model JSON (cbg, smbg, basal, bolus, wizard, food, ...)",
    sniff=_sniff,
    read=_read,
    extensions=(".json",),
)
