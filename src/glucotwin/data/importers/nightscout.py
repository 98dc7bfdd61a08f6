"""Nightscout JSON: the REST API v1 collections ``entries``, ``treatments``, ``devicestatus``
and ``profile``.

Source: the Nightscout server (github.com/nightscout/cgm-remote-monitor): ``lib/server/
treatments.js`` (how ``created_at``/``utcOffset`` are stored), ``lib/profilefunctions.js``
(how a temp basal's ``absolute``/``percent`` and a profile's schedules are read),
``lib/client/index.js`` and ``lib/plugins/errorcodes.js`` (``sgv`` below 39 is a Dexcom status
code, 39 is shown as "LOW"), and the uploaders' documents (xDrip+, Loop/NightscoutKit,
AndroidAPS v1/v3, Trio, oref0, Care Portal).

Files: a JSON array (what ``/api/v1/<collection>.json`` returns, newest first), a single
document, an object ``{"entries": [...], "treatments": [...], "devicestatus": [...],
"profile": [...]}`` (what :func:`glucotwin.data.exporters.write_nightscout` writes), an API v3
reply ``{"result": [...]}``, or ``mongoexport`` output (one document per line, MongoDB
extended JSON such as ``{"$date": ...}``/``{"$numberLong": ...}``). The collection of each
document is recognised from its fields, so one array may mix them.

``source_line`` is the 1-based position of the document in the file (its line for
one-document-per-line files); errors name that position (a JSON syntax error names the text
line and column).

Mapping
- entries: ``sgv`` (number or string, always mg/dL) → CGM reading. Values below 39 are Dexcom
  status codes (5 = sensor not calibrated, 9/10 = deviations, ...), not glucose: dropped and
  counted per code in ``meta["dropped"]["sgv_status_codes"]``. 39 is Dexcom's "LOW" (below its
  40 mg/dL floor) → censored ``"below"`` at 40. ``mbg`` → fingerstick. ``noise`` 3/4 →
  ``flag`` ``noise:medium``/``noise:heavy``. ``cal`` (raw-sensor slope/intercept) is dropped
  and counted. Exact duplicates (several uploaders) are dropped and counted.
- treatments are routed by their fields, not only ``eventType`` (which may be empty,
  ``<None>`` or misleading): ``insulin`` → bolus (``type: "SMB"``/``isSMB``/``automatic`` →
  ``automated``; ``isBasalInsulin`` → a long-acting injection; ``insulinType`` →
  ``insulin_name``); ``Combo Bolus`` (``enteredinsulin``/``insulin`` with ``splitNow``/
  ``splitExt`` %, or ``relative`` U/h over ``duration``) and Loop ``type: "square"`` →
  extended/dual boluses; ``Temp Basal`` (``absolute``/``rate`` U/h, or ``percent`` change
  from the scheduled rate, ``duration`` min) → temporary basal (``reason: "suspend"``,
  ``EMULATED_PUMP_SUSPEND`` and ``Suspend Pump`` → suspend at 0 U/h); ``carbs`` (with or
  without insulin, protein/fat into ``note``) → carbs; ``glucose`` of a ``BG Check`` or with
  ``glucoseType`` Finger/Manual (``units`` mg/dl or mmol) → fingerstick; ``Exercise`` →
  activity. A temp basal ends at its duration, at a ``Temp Basal`` end marker (duration 0,
  ``Resume Pump``) or when the next one starts, whichever is first: a pump runs one temp
  basal at a time and AID systems re-issue 30-min temps every 5 min.
- Everything else (site/sensor changes, temporary targets, profile switches, overrides,
  notes) → ``meta["events"]``; AAPS ``profileJson`` and profile documents → therapy settings
  in ``meta["profiles"]`` (numbers as numbers, glucose in mg/dL, schedules as
  ``{"start": "HH:MM", "start_s", "value"}`` in the profile's ``timezone``, applying from
  ``valid_from``; a daily schedule whose first entry is after 00:00 wraps around: its last
  entry applies until the first).

Deliberately dropped: devicestatus IOB, COB, predictions, suggested/enacted temps and TDD are
the AID algorithm's derived state (recomputable from treatments and the profile; enacted temps
also arrive as ``Temp Basal`` treatments), so only a summary is kept in
``meta["devicestatus"]``; ``direction``/``delta``/raw sensor fields; glucose copied onto a
treatment with ``glucoseType: "Sensor"`` (a copy of a CGM reading, counted); Loop's
``absorptionTime`` (NightscoutKit writes minutes, other tools seconds) and the bolus
calculator's inputs. Scheduled basal is not a treatment in Nightscout: it is in the profile.

Times: ``date``/``mills`` (ms since the epoch), ``dateString``/``created_at``/``timestamp``
(ISO 8601). The UTC offset is the ISO string's own offset, else ``utcOffset``, else the zone
in :class:`ImportOptions` at that instant, else 0 for a ``Z`` time (as the Nightscout server
stores it); an ISO time without any zone is local wall-clock time (floating unless a zone is
given).
"""

from __future__ import annotations

import json
import re
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from glucotwin.data.errors import DataError
from glucotwin.data.formats import Format, ImportOptions
from glucotwin.data.jsonio import field_text, field_values, malformed
from glucotwin.data.model import MG_DL_PER_MMOL_L, Recording
from glucotwin.data.textio import (
    first_bad,
    join_texts,
    parse_number_cells,
    place_wall_clock,
    read_text,
)

COLLECTION_KEYS = {
    "entries": "entries",
    "treatments": "treatments",
    "devicestatus": "devicestatus",
    "profile": "profile",
    "profiles": "profile",
    "result": None,
}
ENTRY_TYPES = frozenset({"sgv", "mbg", "cal", "sensor", "etc"})
DEVICESTATUS_KEYS = frozenset(
    {"openaps", "loop", "pump", "uploader", "uploaderBattery", "xdripjs", "radioAdapter"}
)
TREATMENT_FIELDS = frozenset({"insulin", "carbs", "absolute", "percent", "glucose", "duration"})
FOOD_DATABASE_TYPES = frozenset({"food", "quickpick"})
AID_APPS = frozenset({"loop", "trio", "iaps", "freeaps", "freeaps x", "openaps"})
UPLOADER_APPS = AID_APPS | {"androidaps", "xdrip", "xdrip+", "xdrip4ios", "spike", "glucotwin"}

# Nightscout's client shows sgv < 39 as a Dexcom error code and 39 as "LOW"
# (cgm-remote-monitor lib/client/index.js, lib/plugins/errorcodes.js).
DEXCOM_LOW_SGV = 39.0
DEXCOM_FLOOR_MG_DL = 40.0
NOISE_FLAGS = {3.0: "noise:medium", 4.0: "noise:heavy"}  # xDrip+/Dexcom noise levels 1-4
GLUCOSE_UNITS = {"mg/dl": 1.0, "mgdl": 1.0, "mmol": MG_DL_PER_MMOL_L, "mmol/l": MG_DL_PER_MMOL_L}
LIKELY_MMOL_BELOW = 35.0  # a glucose without units below this is too ambiguous to accept
EPOCH_MS_MIN = 1e11  # ms since 1970 before 1973: such a `date` is in seconds, not ms
ZONE_SUFFIX = re.compile(r"(Z|[+-]\d{2}:?\d{2})$", re.IGNORECASE)
SNIFF_KEYS = re.compile(
    r'"(sgv|mbg|eventType|defaultProfile|dateString|openaps|loop|uploaderBattery)"\s*:'
    r'|"type"\s*:\s*"(sgv|mbg|cal)"'
)
SNIFF_DEVICESTATUS = re.compile(r'"(pump|uploader)"\s*:\s*\{')


@dataclass(frozen=True)
class _Context:
    file: str
    subject: str
    timezone: str | None


def _sniff(path: Path, head: bytes) -> bool:
    text = head.decode("utf-8-sig", errors="replace").lstrip()
    if not text or text[0] not in "[{":
        return False
    if SNIFF_KEYS.search(text):
        return True
    return '"created_at"' in text and bool(SNIFF_DEVICESTATUS.search(text))


# ---------------------------------------------------------------------------------------------
# Reading the documents


def _documents(path: Path, file: str) -> list[tuple[dict, int, str | None]]:
    """(document, position, collection named by an enclosing object or None)."""
    text = read_text(path)
    stripped = text.lstrip()
    if not stripped:
        raise DataError("file is empty", file=file)
    if stripped[0] not in "[{":
        raise DataError("not JSON: a Nightscout export starts with '[' or '{'", file=file, line=1)
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        if exc.msg != "Extra data":
            raise malformed(exc, file) from exc
        docs = _json_lines(text, file)
    else:
        docs = _unwrap(data, file)
    if '"$' in text:
        docs = [(_plain(doc), line, hint) for doc, line, hint in docs]
    if not docs:
        raise DataError("no Nightscout documents in the file", file=file)
    return docs


def _json_lines(text: str, file: str) -> list[tuple[dict, int, str | None]]:
    docs = []
    for number, raw in enumerate(text.splitlines(), start=1):
        if not raw.strip():
            continue
        try:
            doc = json.loads(raw)
        except json.JSONDecodeError as exc:
            raise DataError(
                f"malformed JSON: {exc.msg} (column {exc.colno})", file=file, line=number
            ) from exc
        if not isinstance(doc, dict):
            raise DataError("a line holds JSON that is not an object", file=file, line=number)
        docs.append((doc, number, None))
    return docs


def _unwrap(data: Any, file: str) -> list[tuple[dict, int, str | None]]:
    if isinstance(data, dict):
        lists = {k: v for k, v in data.items() if k in COLLECTION_KEYS and isinstance(v, list)}
        if not lists or _collection(data) is not None:
            return [(data, 1, None)]
        items = [(doc, COLLECTION_KEYS[key]) for key, docs in lists.items() for doc in docs]
    elif isinstance(data, list):
        items = [(doc, None) for doc in data]
    else:
        raise DataError("JSON holds neither an array nor an object", file=file, line=1)
    out = []
    for position, (doc, hint) in enumerate(items, start=1):
        if not isinstance(doc, dict):
            raise DataError(f"record {position} is not a JSON object", file=file, line=position)
        out.append((doc, position, hint))
    return out


def _plain(value: Any) -> Any:
    """MongoDB extended JSON (``mongoexport``) → plain JSON values."""
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if not isinstance(value, dict):
        return value
    if len(value) == 1:
        ((key, inner),) = value.items()
        if key == "$oid":
            return str(inner)
        if key == "$date":
            inner = _plain(inner)
            if isinstance(inner, int | float):
                return pd.Timestamp(inner, unit="ms", tz="UTC").isoformat()
            return inner
        if key in ("$numberLong", "$numberInt", "$numberDouble", "$numberDecimal"):
            return float(inner) if key in ("$numberDouble", "$numberDecimal") else int(inner)
    return {k: _plain(v) for k, v in value.items()}


def _collection(doc: dict) -> str | None:
    """Which API collection a document belongs to, from its fields."""
    if isinstance(doc.get("store"), dict) or "defaultProfile" in doc:
        return "profile"
    if "eventType" in doc:
        return "treatments"
    if doc.get("type") in FOOD_DATABASE_TYPES:
        return "food"
    if "sgv" in doc or "mbg" in doc or doc.get("type") in ENTRY_TYPES:
        return "entries"
    if DEVICESTATUS_KEYS & doc.keys():
        return "devicestatus"
    if TREATMENT_FIELDS & doc.keys() and ("created_at" in doc or "timestamp" in doc):
        return "treatments"
    return None


# ---------------------------------------------------------------------------------------------
# Column helpers: every value is checked and a bad one is reported at its document


def _number(frame: pd.DataFrame, name: str, lines: np.ndarray, file: str) -> pd.Series:
    """A numeric field (number or numeric string; blank or null = missing)."""
    return parse_number_cells(
        field_values(frame, name), lines=lines, field=name, file=file, blank_is_missing=True
    )


def _truthy(frame: pd.DataFrame, name: str) -> np.ndarray:
    raw = field_values(frame, name)
    return raw.map(lambda v: v is True or (isinstance(v, str) and v.lower() == "true")).to_numpy(
        dtype=bool
    )


def _first(series: list[pd.Series]) -> pd.Series:
    out = series[0]
    for more in series[1:]:
        out = out.fillna(more)
    return out


def _times(
    frame: pd.DataFrame,
    lines: np.ndarray,
    ctx: _Context,
    *,
    text_fields: tuple[str, ...],
    epoch_fields: tuple[str, ...],
    prefer_text: bool,
) -> tuple[pd.Series, pd.Series]:
    """UTC instants and UTC offsets (minutes) of the documents; see the module docstring."""
    text = _first([field_text(frame, name) for name in text_fields])
    epoch = _first([_number(frame, name, lines, ctx.file) for name in epoch_fields])
    seconds = (epoch < EPOCH_MS_MIN).fillna(False).to_numpy()
    if seconds.any():
        raise DataError(
            f"{epoch_fields[0]} {epoch.to_numpy()[np.flatnonzero(seconds)[0]]:g} is not in "
            "milliseconds since 1970",
            file=ctx.file,
            line=first_bad(seconds, lines),
            field=epoch_fields[0],
        )
    suffix = text.str.extract(ZONE_SUFFIX, expand=False).str.upper()
    aware = suffix.notna()
    from_text = pd.to_datetime(text.where(aware), format="ISO8601", utc=True, errors="coerce")
    naive = text.notna() & ~aware
    wall = pd.to_datetime(text.where(naive), format="ISO8601", errors="coerce")
    from_epoch = pd.to_datetime(epoch, unit="ms", utc=True)
    instant = from_text.fillna(from_epoch) if prefer_text else from_epoch.fillna(from_text)
    instant = instant.astype("datetime64[ns, UTC]")
    offset = pd.Series(pd.NA, index=frame.index, dtype="Float64")

    floating = (instant.isna() & wall.notna()).to_numpy()
    if floating.any():
        utc, local_offset, _ = place_wall_clock(
            wall[floating], ctx.timezone, lines=lines[floating], field=text_fields[0], file=ctx.file
        )
        instant[floating] = utc.to_numpy()
        offset[floating] = local_offset.astype("Float64").to_numpy()

    missing = instant.isna().to_numpy()
    if missing.any():
        position = int(np.flatnonzero(missing)[0])
        example = text.iloc[position]
        if pd.notna(example):
            field, what = text_fields[0], f"cannot read the time {example!r}"
        else:
            field, what = (text_fields[0] if prefer_text else epoch_fields[0]), "no time"
        raise DataError(what, file=ctx.file, line=int(lines[position]), field=field)

    explicit = _suffix_minutes(suffix.where((suffix != "Z").fillna(False)))
    offset = offset.fillna(explicit).fillna(
        _number(frame, "utcOffset", lines, ctx.file).astype("Float64")
    )
    with_wall = (offset.isna() & wall.notna()).to_numpy() & ~floating
    if with_wall.any():
        minutes = (wall[with_wall] - instant[with_wall].dt.tz_localize(None)).dt.total_seconds()
        offset[with_wall] = (minutes / 60).round().to_numpy()
    if ctx.timezone is not None:
        unknown = offset.isna().to_numpy()
        if unknown.any():
            local = instant[unknown].dt.tz_convert(ctx.timezone).dt.tz_localize(None)
            minutes = (local - instant[unknown].dt.tz_localize(None)).dt.total_seconds() / 60
            offset[unknown] = minutes.round().to_numpy()
    offset = offset.mask(offset.isna() & (suffix == "Z").fillna(False), 0.0)
    return instant, offset.round().astype("Int16")


def _suffix_minutes(suffix: pd.Series) -> pd.Series:
    text = suffix.str.replace(":", "", regex=False)
    sign = text.str[0].map({"+": 1.0, "-": -1.0}).astype("Float64")
    hours = pd.to_numeric(text.str[1:3], errors="coerce").astype("Float64")
    minutes = pd.to_numeric(text.str[3:5], errors="coerce").astype("Float64")
    return sign * (hours * 60 + minutes)


def _iso(value: Any) -> str | None:
    """A document's time field as ISO 8601 UTC, for metadata (None when absent/unreadable)."""
    if value is None or value == "":
        return None
    if isinstance(value, int | float) and not isinstance(value, bool):
        stamp = pd.to_datetime(value, unit="ms", utc=True, errors="coerce")
    elif isinstance(value, str) and value.strip().lstrip("-").replace(".", "", 1).isdigit():
        stamp = pd.to_datetime(float(value), unit="ms", utc=True, errors="coerce")
    else:
        stamp = pd.to_datetime(str(value), format="ISO8601", utc=True, errors="coerce")
    return None if pd.isna(stamp) else stamp.isoformat()


def _base(time: pd.Series, offset: pd.Series, lines: np.ndarray, ctx: _Context) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "time": time.array,
            "utc_offset_min": offset.array,
            "subject": ctx.subject,
            "source_line": lines,
        }
    )


# ---------------------------------------------------------------------------------------------
# entries


def _entries(docs: list[tuple[dict, int]], ctx: _Context) -> tuple[pd.DataFrame, dict]:
    frame = pd.DataFrame.from_records([doc for doc, _ in docs])
    lines = np.array([line for _, line in docs])
    sgv = _number(frame, "sgv", lines, ctx.file)
    mbg = _number(frame, "mbg", lines, ctx.file)
    kind = field_text(frame, "type").str.lower()
    kind = kind.fillna(
        pd.Series(
            np.where(sgv.notna(), "sgv", np.where(mbg.notna(), "mbg", "")),
            index=frame.index,
            dtype="string",
        )
    )
    time, offset = _times(
        frame,
        lines,
        ctx,
        text_fields=("dateString", "sysTime"),
        epoch_fields=("date", "mills"),
        prefer_text=False,
    )
    is_sgv = (kind == "sgv").to_numpy()
    is_mbg = (kind == "mbg").to_numpy()
    for mask, values, field in ((is_sgv, sgv, "sgv"), (is_mbg, mbg, "mbg")):
        absent = mask & values.isna().to_numpy()
        if absent.any():
            raise DataError(
                f"a '{field}' entry without a value",
                file=ctx.file,
                line=first_bad(absent, lines),
                field=field,
            )
    negative = is_sgv & (sgv < 0).to_numpy()
    if negative.any():
        raise DataError(
            f"glucose {sgv.to_numpy()[negative][0]:g} is negative",
            file=ctx.file,
            line=first_bad(negative, lines),
            field="sgv",
        )
    status = is_sgv & (sgv < DEXCOM_LOW_SGV).to_numpy()
    low = is_sgv & (sgv == DEXCOM_LOW_SGV).to_numpy()
    reading = (is_sgv & ~status) | is_mbg
    noise = _number(frame, "noise", lines, ctx.file)
    table = _base(time, offset, lines, ctx).assign(
        glucose_mg_dl=np.where(is_mbg, mbg, np.where(low, DEXCOM_FLOOR_MG_DL, sgv)),
        source=np.where(is_mbg, "fingerstick", "cgm"),
        censored=np.where(low, "below", ""),
        device=field_text(frame, "device").to_numpy(),
        flag=noise.map(NOISE_FLAGS).astype("string").to_numpy(),
    )[reading]
    codes = Counter(str(int(code)) for code in sgv[status])
    other = Counter(kind[~(is_sgv | is_mbg)].replace("", "untyped").tolist())
    dropped = {"sgv_status_codes": dict(sorted(codes.items()))}
    dropped.update({f"{name}_entries": count for name, count in sorted(other.items())})
    return table, dropped


# ---------------------------------------------------------------------------------------------
# treatments


@dataclass(frozen=True)
class _Treatments:
    insulin: pd.DataFrame
    basal_ends: pd.Series  # times that end a running temp basal
    carbs: pd.DataFrame
    glucose: pd.DataFrame
    activity: pd.DataFrame
    events: list[dict]
    profiles: list[dict]
    dropped: dict[str, int]


def _treatments(docs: list[tuple[dict, int]], ctx: _Context) -> _Treatments:
    frame = pd.DataFrame.from_records([doc for doc, _ in docs])
    lines = np.array([line for _, line in docs])

    def num(name: str) -> pd.Series:
        return _number(frame, name, lines, ctx.file)

    event = field_text(frame, "eventType").fillna("")
    event = event.mask(event.str.lower() == "<none>", "")
    low_event = event.str.lower()
    kind = field_text(frame, "type").str.lower().fillna("")
    reason = field_text(frame, "reason").str.lower().fillna("")
    time, offset = _times(
        frame,
        lines,
        ctx,
        text_fields=("created_at", "timestamp", "eventTime"),
        epoch_fields=("date", "mills"),
        prefer_text=True,
    )
    # enteredBy names the uploading app or, from the Care Portal, a person: only apps are kept
    entered_by = field_text(frame, "enteredBy")
    app = entered_by.str.contains("://", regex=False) | entered_by.str.lower().isin(UPLOADER_APPS)
    base = _base(time, offset, lines, ctx).assign(
        device=field_text(frame, "device").fillna(entered_by.where(app.fillna(False))).to_numpy()
    )
    insulin, entered, carbs = num("insulin"), num("enteredinsulin"), num("carbs")
    duration = num("duration").fillna(num("durationInMilliseconds") / 60_000)
    absolute = num("absolute").fillna(num("rate"))
    percent = num("percent")

    # basal: temp basals, suspends and the markers that end them
    untyped_basal = (event == "") & (absolute.notna() | percent.notna()) & insulin.isna()
    is_temp = low_event.str.contains("temp basal") | untyped_basal
    no_rate = absolute.isna() & percent.isna()
    ended = (duration == 0).fillna(False) | (low_event == "temp basal end")
    temp_end = is_temp & (ended | (duration.isna() & no_rate))
    suspend_event = low_event.isin(["suspend pump", "pump suspend"])
    basal_row = ((is_temp & ~temp_end) | suspend_event).to_numpy()
    end_marker = (temp_end | low_event.isin(["resume pump", "pump resume"])).to_numpy()
    is_suspend = (
        suspend_event | (is_temp & ((reason == "suspend") | (kind == "emulated_pump_suspend")))
    ).to_numpy()
    rate = absolute.mask((percent == -100).fillna(False) & absolute.isna(), 0.0)
    rate = rate.mask(suspend_event & rate.isna(), 0.0)
    basal_flag = pd.Series(pd.NA, index=frame.index, dtype="string")
    relative_only = rate.isna() & percent.notna()
    percent_text = "percent:" + percent.map("{:+g}".format, na_action="ignore").astype("string")
    basal_flag = basal_flag.mask(relative_only, percent_text)
    basal_flag[rate.isna() & percent.isna()] = "rate-unknown"
    app_name = entered_by.str.lower().fillna("")
    aid_app = app_name.isin(AID_APPS) | app_name.str.startswith("openaps")
    user_action = kind.isin(["superbolus", "emulated_pump_suspend"]) | suspend_event
    automatic_given = field_values(frame, "automatic").notna().to_numpy()
    basal_automated = np.where(
        automatic_given, _truthy(frame, "automatic"), (aid_app & ~user_action).to_numpy()
    )
    basal = base.assign(
        event="basal",
        delivery=np.where(is_suspend, "suspend", "temporary"),
        rate_u_per_h=rate.to_numpy(),
        duration_min=duration.to_numpy(),
        automated=basal_automated,
        flag=basal_flag.to_numpy(),
    )[basal_row]

    # boluses, incl. extended/dual (Combo Bolus, Loop square) and automated micro-boluses
    combo = (low_event == "combo bolus").to_numpy()
    total = np.where(combo, entered.fillna(insulin), insulin.fillna(entered))
    split = total * num("splitExt").to_numpy() / 100
    from_rate = num("relative").to_numpy() * duration.to_numpy() / 60
    remainder = entered.to_numpy() - insulin.to_numpy()
    extended = np.where(combo, _first_finite(split, from_rate, remainder), np.nan)
    square = kind.isin(["square"]) | field_text(frame, "bolusType").str.lower().isin(["square"])
    extended = np.where(square.to_numpy(), total, extended)
    delivery = np.select(
        [extended >= total - 1e-9, extended > 0], ["extended", "dual"], default="normal"
    )
    spread = delivery != "normal"
    # AAPS uploads an extended bolus that stands in for a temp basal also as that Temp Basal
    emulating = _truthy(frame, "isEmulatingTempBasal")
    is_bolus = ~np.isnan(total) & (total != 0) & ~basal_row & ~end_marker & ~emulating
    bolus_automated = (
        (kind == "smb").to_numpy()
        | _truthy(frame, "isSMB")
        | _truthy(frame, "automatic")
        | (low_event == "smb").to_numpy()
        | low_event.str.contains("automatic bolus").to_numpy()
    )
    bolus = base.assign(
        event="bolus",
        delivery=delivery,
        units_u=total,
        extended_units_u=np.where(spread, extended, np.nan),
        duration_min=np.where(spread, duration, np.nan),
        automated=bolus_automated,
        insulin_class=np.where(_truthy(frame, "isBasalInsulin"), "long", "rapid"),
        insulin_name=field_text(frame, "insulinType").to_numpy(),
        flag=np.where(combo & np.isnan(extended), "combo-split-unknown", None),
    )[is_bolus]
    bolus["flag"] = bolus["flag"].astype("string")

    # carbohydrates (also those entered with a bolus or in a Bolus Wizard)
    has_carbs = (carbs.notna() & (carbs != 0)).to_numpy()
    note = join_texts(
        field_text(frame, "notes"),
        field_text(frame, "foodType"),
        _grams("protein", num("protein")),
        _grams("fat", num("fat")),
        sep="; ",
    )
    carb_table = base.assign(carbs_g=carbs.to_numpy(), note=note.to_numpy())[has_carbs]

    # fingersticks recorded as treatments
    glucose = num("glucose")
    glucose_type = field_text(frame, "glucoseType").str.lower()
    has_glucose = glucose.notna() & (glucose != 0)
    finger = has_glucose & (
        glucose_type.isin(["finger", "manual", "meter"]).fillna(False)
        | (glucose_type.isna() & (low_event == "bg check"))
    )
    finger = finger.to_numpy()
    factor = _unit_factor(field_text(frame, "units"), glucose, finger, lines, ctx.file)
    sticks = base.assign(
        glucose_mg_dl=glucose.to_numpy() * factor, source="fingerstick", censored=""
    )[finger]

    exercise = (low_event == "exercise").to_numpy()
    activity = base.assign(activity_type="exercise", duration_min=duration.to_numpy())[exercise]

    used = basal_row | end_marker | is_bolus | emulating | has_carbs | finger | exercise
    other = ~used & (event != "").to_numpy()
    events = [
        _event(doc, line, event.iloc[i], time.iloc[i], offset.iloc[i])
        for i, (doc, line) in enumerate(docs)
        if other[i]
    ]
    profiles = [
        profile
        for i, (doc, line) in enumerate(docs)
        if doc.get("profileJson")
        for profile in _switch_profiles(doc, line, time.iloc[i], ctx.file)
    ]
    dropped = {
        "sensor_glucose_on_treatments": int((has_glucose.to_numpy() & ~finger).sum()),
        "treatments_without_data": int((~used & (event == "").to_numpy()).sum()),
        "extended_boluses_emulating_temp_basals": int(emulating.sum()),
    }
    return _Treatments(
        insulin=pd.concat([bolus, basal], ignore_index=True),
        basal_ends=time[end_marker].reset_index(drop=True),
        carbs=carb_table,
        glucose=sticks,
        activity=activity,
        events=events,
        profiles=profiles,
        dropped=dropped,
    )


def _first_finite(*candidates: np.ndarray) -> np.ndarray:
    out = np.full(len(candidates[0]), np.nan)
    for values in candidates:
        out = np.where(np.isnan(out), values, out)
    return out


def _grams(name: str, values: pd.Series) -> pd.Series:
    text = values.map(lambda v: f"{name} {v:g} g", na_action="ignore")
    return text.astype("string")


def _unit_factor(
    units: pd.Series, glucose: pd.Series, rows: np.ndarray, lines: np.ndarray, file: str
) -> np.ndarray:
    """mg/dL per unit of each treatment's ``glucose``; raises on unknown or missing units."""
    key = units.str.lower().str.replace(" ", "", regex=False)
    factor = key.map(GLUCOSE_UNITS).astype("float64").to_numpy()
    unknown = rows & key.notna().to_numpy() & np.isnan(factor)
    if unknown.any():
        raise DataError(
            f"unknown glucose unit {units.to_numpy()[unknown][0]!r} (expected mg/dl or mmol)",
            file=file,
            line=first_bad(unknown, lines),
            field="units",
        )
    missing = rows & key.isna().to_numpy()
    ambiguous = missing & (glucose < LIKELY_MMOL_BELOW).to_numpy()
    if ambiguous.any():
        raise DataError(
            f"glucose {glucose.to_numpy()[ambiguous][0]:g} has no units and may be mmol/L",
            file=file,
            line=first_bad(ambiguous, lines),
            field="units",
        )
    return np.where(np.isnan(factor), 1.0, factor)


EVENT_FIELDS = {
    "duration": "duration_min",
    "notes": "notes",
    "reason": "reason",
    "profile": "profile",
    "percentage": "percentage",
    "timeshift": "timeshift_h",
    "targetBottom": "target_bottom",
    "targetTop": "target_top",
    "units": "units",
    "insulinNeedsScaleFactor": "insulin_needs_scale_factor",
    "transmitterId": "transmitter_id",
}


def _event(doc: dict, line: int, event: str, time: pd.Timestamp, offset: Any) -> dict:
    item: dict[str, Any] = {
        "time": time.isoformat(),
        "utc_offset_min": None if pd.isna(offset) else int(offset),
        "event": event,
        "source_line": line,
    }
    for field, name in EVENT_FIELDS.items():
        value = doc.get(field)
        if value is not None and value != "" and not isinstance(value, dict | list):
            item[name] = value
    return item


# ---------------------------------------------------------------------------------------------
# profiles (therapy settings)

SCHEDULES = {
    "basal": ("basal_u_per_h", False),
    "carbratio": ("carb_ratio_g_per_u", False),
    "sens": ("sensitivity_mg_dl_per_u", True),
    "target_low": ("target_low_mg_dl", True),
    "target_high": ("target_high_mg_dl", True),
}


def _profile_documents(docs: list[tuple[dict, int]], file: str) -> list[dict]:
    profiles = []
    for doc, line in docs:
        store = doc.get("store")
        if not isinstance(store, dict) or not store:
            raise DataError(
                "profile document without a 'store'", file=file, line=line, field="store"
            )
        for name, settings in store.items():
            if not isinstance(settings, dict):
                raise DataError(
                    f"profile {name!r} is not an object",
                    file=file,
                    line=line,
                    field=f"store.{name}",
                )
            profiles.append(
                _settings(
                    settings,
                    defaults=doc,
                    name=name,
                    source="nightscout profile",
                    line=line,
                    file=file,
                    extra={
                        "default": name == doc.get("defaultProfile"),
                        "valid_from": _iso(doc.get("startDate") or doc.get("mills")),
                        "created_at": _iso(doc.get("created_at")),
                    },
                )
            )
    return profiles


def _switch_profiles(doc: dict, line: int, time: pd.Timestamp, file: str) -> list[dict]:
    try:
        settings = json.loads(doc["profileJson"])
    except (TypeError, json.JSONDecodeError) as exc:
        raise DataError(
            f"profileJson is not JSON: {exc}", file=file, line=line, field="profileJson"
        ) from exc
    if not isinstance(settings, dict):
        raise DataError("profileJson is not an object", file=file, line=line, field="profileJson")
    duration_min = _scalar(doc.get("duration"), "duration", line, file)
    if duration_min is None and doc.get("originalDuration") is not None:
        duration_min = _scalar(doc["originalDuration"], "originalDuration", line, file) / 60_000
    extra = {
        "valid_from": time.isoformat(),
        "percentage": _scalar(
            doc.get("percentage", doc.get("originalPercentage")), "percentage", line, file
        ),
        "timeshift_h": _scalar(
            doc.get("timeshift", doc.get("originalTimeshift")), "timeshift", line, file
        ),
        "duration_min": duration_min,
    }
    name = doc.get("originalProfileName") or doc.get("profile") or "profileJson"
    return [
        _settings(
            settings,
            defaults={},
            name=name,
            source="nightscout profile switch",
            line=line,
            file=file,
            extra=extra,
        )
    ]


def _settings(
    settings: dict,
    *,
    defaults: dict,
    name: str,
    source: str,
    line: int,
    file: str,
    extra: dict,
) -> dict:
    unit = settings.get("units") or defaults.get("units")
    where = f"store.{name}.units"
    if unit is None:
        raise DataError(
            f"profile {name!r} does not say its glucose units", file=file, line=line, field=where
        )
    factor = GLUCOSE_UNITS.get(str(unit).strip().lower().replace(" ", ""))
    if factor is None:
        raise DataError(
            f"unknown glucose unit {unit!r} in profile {name!r}", file=file, line=line, field=where
        )
    profile: dict[str, Any] = {
        "source": source,
        "name": name,
        **extra,
        "timezone": settings.get("timezone") or defaults.get("timezone"),
        "units": "mg/dL",
        "dia_h": _scalar(settings.get("dia"), f"store.{name}.dia", line, file),
        "carbs_hr_g_per_h": _scalar(settings.get("carbs_hr"), f"store.{name}.carbs_hr", line, file),
        "delay_min": _scalar(settings.get("delay"), f"store.{name}.delay", line, file),
    }
    for key, (out, glucose) in SCHEDULES.items():
        profile[out] = _schedule(
            settings.get(key), factor if glucose else 1.0, f"store.{name}.{key}", line, file
        )
    profile["source_line"] = line
    return profile


def _scalar(value: Any, field: str, line: int, file: str) -> float | None:
    if value is None or value == "":
        return None
    try:
        if isinstance(value, bool):
            raise ValueError
        return float(value)
    except (TypeError, ValueError):
        raise DataError(f"{value!r} is not a number", file=file, line=line, field=field) from None


def _schedule(value: Any, factor: float, field: str, line: int, file: str) -> list[dict]:
    """A profile schedule as ``[{"start": "HH:MM", "start_s": s, "value": v}]``, by start."""
    if value is None:
        return []
    if not isinstance(value, list):
        value = [{"time": "00:00", "value": value}]
    entries = []
    for i, item in enumerate(value):
        where = f"{field}[{i}]"
        if not isinstance(item, dict):
            raise DataError("schedule entry is not an object", file=file, line=line, field=where)
        seconds = _scalar(item.get("timeAsSeconds"), f"{where}.timeAsSeconds", line, file)
        clock = item.get("time")
        if seconds is None:
            match = re.fullmatch(r"(\d{1,2}):(\d{2})", str(clock or "").strip())
            if match is None:
                raise DataError(
                    f"cannot read the time of day {clock!r}",
                    file=file,
                    line=line,
                    field=f"{where}.time",
                )
            seconds = int(match[1]) * 3600 + int(match[2]) * 60
        if not 0 <= seconds < 86_400:
            raise DataError(
                f"time of day {seconds:g} s is outside one day",
                file=file,
                line=line,
                field=f"{where}.timeAsSeconds",
            )
        number = _scalar(item.get("value"), f"{where}.value", line, file)
        if number is None:
            raise DataError(
                "schedule entry without a value", file=file, line=line, field=f"{where}.value"
            )
        start_s = int(seconds)
        entries.append(
            {
                "start": f"{start_s // 3600:02d}:{start_s % 3600 // 60:02d}",
                "start_s": start_s,
                "value": number * factor,
            }
        )
    return sorted(entries, key=lambda entry: entry["start_s"])


# ---------------------------------------------------------------------------------------------
# devicestatus


def _devicestatus_summary(docs: list[tuple[dict, int]]) -> dict:
    """What is kept of the AID status documents (see the module docstring for why)."""
    times = sorted(
        t
        for t in (_iso(doc.get("created_at") or doc.get("mills")) for doc, _ in docs)
        if t is not None
    )
    devices = Counter(str(doc.get("device", "(unknown)")) for doc, _ in docs)
    pumps = sorted(
        {
            " ".join(str(pump[k]) for k in ("manufacturer", "model") if pump.get(k))
            for pump in (doc.get("pump") for doc, _ in docs)
            if isinstance(pump, dict) and (pump.get("manufacturer") or pump.get("model"))
        }
    )
    failures = sum(
        1
        for doc, _ in docs
        if isinstance(doc.get("loop"), dict) and doc["loop"].get("failureReason")
    )
    return {
        "documents": len(docs),
        "first": times[0] if times else None,
        "last": times[-1] if times else None,
        "devices": dict(sorted(devices.items())),
        "pumps": pumps,
        "loop_failures": failures,
    }


# ---------------------------------------------------------------------------------------------
# putting it together


def _end_basals(basal: pd.DataFrame, ends: pd.Series) -> tuple[pd.DataFrame, int]:
    """End each temp basal at its duration, an end marker or the next one, whichever is first.

    Temp basals starting at the same instant are duplicates (Nightscout itself keeps one per
    time, ``profilefunctions.updateTreatments``); the first is kept.
    """
    basal = basal.sort_values("time", kind="stable")
    basal = basal[~basal["time"].duplicated()]
    starts = basal["time"].dt.tz_localize(None).to_numpy(dtype="datetime64[ns]")
    stops = ends.dt.tz_localize(None).to_numpy(dtype="datetime64[ns]")
    # ends first, so that an end marker at the instant a new temp basal starts ends the old one
    times = np.concatenate([stops, starts])
    is_end = np.concatenate([np.ones(len(stops), bool), np.zeros(len(starts), bool)])
    order = np.argsort(times, kind="stable")
    times, is_end = times[order], is_end[order]
    following = np.flatnonzero(~is_end) + 1  # the event after each basal, in time order
    has_next = following < len(times)
    next_time = np.full(len(starts), np.datetime64("NaT"), dtype="datetime64[ns]")
    next_time[has_next] = times[following[has_next]]
    gap = (next_time - starts) / np.timedelta64(1, "m")
    next_is_end = np.zeros(len(starts), bool)
    next_is_end[has_next] = is_end[following[has_next]]
    duration = basal["duration_min"].to_numpy(dtype=float)
    ended = np.where(np.isnan(duration), np.where(next_is_end, gap, np.nan), np.fmin(duration, gap))
    truncated = int((~np.isnan(duration) & (ended < duration - 1e-9)).sum())
    return basal.assign(duration_min=ended), truncated


def _read(path: Path, options: ImportOptions) -> Recording:
    file = path.name
    ctx = _Context(file=file, subject=options.subject or path.stem, timezone=options.timezone)
    groups: dict[str, list[tuple[dict, int]]] = {
        "entries": [],
        "treatments": [],
        "devicestatus": [],
        "profile": [],
        "food": [],
    }
    for doc, line, hint in _documents(path, file):
        collection = hint or _collection(doc)
        if collection is None:
            keys = ", ".join(sorted(doc)[:8])
            raise DataError(
                f"record {line} is not a Nightscout entry, treatment, devicestatus or profile "
                f"document (fields: {keys})",
                file=file,
                line=line,
            )
        groups[collection].append((doc, line))

    dropped: dict[str, Any] = {}
    glucose_parts, insulin_parts = [], []
    carbs = activity = None
    events: list[dict] = []
    profiles = _profile_documents(groups["profile"], file)
    if groups["entries"]:
        entries, entry_drops = _entries(groups["entries"], ctx)
        glucose_parts.append(entries)
        dropped.update(entry_drops)
    if groups["treatments"]:
        treated = _treatments(groups["treatments"], ctx)
        glucose_parts.append(treated.glucose)
        bolus = treated.insulin[treated.insulin["event"] == "bolus"]
        basal, truncated = _end_basals(
            treated.insulin[treated.insulin["event"] == "basal"], treated.basal_ends
        )
        dropped["duplicate_temp_basals"] = int(
            (treated.insulin["event"] == "basal").sum() - len(basal)
        )
        dropped["temp_basals_cut_short"] = truncated
        insulin_parts += [bolus, basal]
        carbs, activity = treated.carbs, treated.activity
        events = treated.events
        profiles += treated.profiles
        dropped.update(treated.dropped)
    glucose = _dedupe(
        glucose_parts, ["time", "source", "glucose_mg_dl", "censored"], dropped, "duplicate_glucose"
    )
    insulin = _dedupe(
        insulin_parts,
        ["time", "event", "delivery", "units_u", "rate_u_per_h"],
        dropped,
        "duplicate_insulin",
    )
    if carbs is not None:
        carbs = _dedupe([carbs], ["time", "carbs_g"], dropped, "duplicate_carbs")
    if groups["food"]:
        dropped["food_database_documents"] = len(groups["food"])
    meta = {
        "format": "nightscout",
        "timezone": options.timezone,
        "documents": {name: len(docs) for name, docs in groups.items() if docs},
        "dropped": dropped,
        "events": events,
        "profiles": profiles,
    }
    if groups["devicestatus"]:
        meta["devicestatus"] = _devicestatus_summary(groups["devicestatus"])
    return Recording.build(
        glucose=glucose, insulin=insulin, carbs=carbs, activity=activity, meta=meta, file=file
    )


def _dedupe(
    parts: list[pd.DataFrame], keys: list[str], dropped: dict, name: str
) -> pd.DataFrame | None:
    parts = [p for p in parts if len(p)]
    if not parts:
        return None
    table = pd.concat(parts, ignore_index=True)
    duplicate = table.duplicated(keys).to_numpy()
    dropped[name] = int(duplicate.sum())
    return table[~duplicate]


FORMAT = Format(
    name="nightscout",
    description="Nightscout JSON (API v1 entries, treatments, devicestatus, profile; mongoexport)",
    sniff=_sniff,
    read=_read,
    extensions=(".json",),
)
