"""The canonical time-series model of one or more people's diabetes data.

A :class:`Recording` holds four event tables (pandas DataFrames with a fixed schema) and a
JSON-serialisable ``meta`` dictionary:

``glucose``
    CGM and fingerstick readings in mg/dL. Sensor "Low"/"High" values are kept as censored
    readings: ``censored`` is ``"below"`` or ``"above"`` and ``glucose_mg_dl`` holds the
    sensor's reporting limit (e.g. 40 or 400).
``insulin``
    Boluses (``event="bolus"``; ``delivery`` normal / extended / dual; ``units_u`` is the total
    delivered, ``extended_units_u`` the part spread over ``duration_min``) and basal
    (``event="basal"``; ``delivery`` scheduled / temporary / suspend; ``rate_u_per_h`` holds
    from ``time`` for ``duration_min`` minutes, or until the next basal event when that is
    missing). ``automated`` marks micro-boluses and rates set by an automated insulin
    delivery (AID) algorithm. Long-acting pen injections are boluses with
    ``insulin_class="long"``.
``carbs``
    Carbohydrates eaten, g. ``carbs_g`` may be missing when only a free-text ``note`` exists.
``activity``
    Exercise and activity: type, intensity, duration (min), steps, heart rate (bpm).

Every table has ``time`` (timezone-aware UTC instant) and ``utc_offset_min`` (the offset of
the original local clock, minutes east of UTC). A missing offset means the source gave a
wall-clock time without a zone and no zone was supplied: ``time`` then holds that wall-clock
reading as if it were UTC ("floating" local time). :func:`local_time` recovers the wall clock
in both cases, so DST changes and travel keep their original local time.

Provenance columns ``subject``, ``device``, ``source_file``, ``source_line`` and a quality
``flag`` are kept on every row. Units are in the column names (mg/dL, U, U/h, g, min, bpm).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from glucotwin.data.errors import DataError

MG_DL_PER_MMOL_L = 18.0182
"""Conversion factor for glucose, mg/dL per mmol/L (molar mass of glucose 180.16 g/mol)."""

SCHEMA_VERSION = 1


class Stream(StrEnum):
    GLUCOSE = "glucose"
    INSULIN = "insulin"
    CARBS = "carbs"
    ACTIVITY = "activity"


UTC_TIME = "datetime64[ns, UTC]"

COMMON_COLUMNS: dict[str, Any] = {
    "time": UTC_TIME,
    "utc_offset_min": "Int16",
    "subject": "string",
    "device": "string",
    "source_file": "string",
    "source_line": "Int64",
    "flag": "string",
}

STREAM_COLUMNS: dict[Stream, dict[str, Any]] = {
    Stream.GLUCOSE: {
        "glucose_mg_dl": "float64",
        "source": "string",  # "cgm" | "fingerstick"
        "censored": "string",  # "" | "below" | "above"
    },
    Stream.INSULIN: {
        "event": "string",  # "bolus" | "basal"
        "delivery": "string",  # bolus: normal|extended|dual; basal: scheduled|temporary|suspend
        "units_u": "float64",
        "extended_units_u": "float64",
        "rate_u_per_h": "float64",
        "duration_min": "float64",
        "automated": "boolean",
        "insulin_class": "string",  # rapid|short|intermediate|long|premixed|unknown
        "insulin_name": "string",
        "route": "string",  # sc|iv
    },
    Stream.CARBS: {
        "carbs_g": "float64",
        "meal_type": "string",
        "note": "string",
    },
    Stream.ACTIVITY: {
        "activity_type": "string",
        "intensity": "string",
        "duration_min": "float64",
        "steps": "float64",
        "heart_rate_bpm": "float64",
        "energy_kcal": "float64",
    },
}

REQUIRED_COLUMNS: dict[Stream, tuple[str, ...]] = {
    Stream.GLUCOSE: ("time", "glucose_mg_dl"),
    Stream.INSULIN: ("time", "event"),
    Stream.CARBS: ("time",),
    Stream.ACTIVITY: ("time",),
}

DEFAULTS: dict[Stream, dict[str, Any]] = {
    Stream.GLUCOSE: {"source": "cgm", "censored": ""},
    Stream.INSULIN: {"automated": False, "insulin_class": "rapid", "route": "sc"},
    Stream.CARBS: {},
    Stream.ACTIVITY: {},
}

ALLOWED_VALUES: dict[Stream, dict[str, frozenset[str]]] = {
    Stream.GLUCOSE: {
        "source": frozenset({"cgm", "fingerstick"}),
        "censored": frozenset({"", "below", "above"}),
    },
    Stream.INSULIN: {
        "event": frozenset({"bolus", "basal"}),
        "delivery": frozenset({"normal", "extended", "dual", "scheduled", "temporary", "suspend"}),
        "insulin_class": frozenset(
            {"rapid", "short", "intermediate", "long", "premixed", "unknown"}
        ),
        "route": frozenset({"sc", "iv"}),
    },
    Stream.CARBS: {},
    Stream.ACTIVITY: {},
}

# Physically possible ranges (inclusive). A value outside is an error, not a quirk: it means
# a wrong unit or a corrupt file. Sources: sensors report 40-500 mg/dL, laboratory glucose in
# hyperosmolar states rarely exceeds 1,500 mg/dL; no pump delivers more than 100 U at once.
VALUE_RANGES: dict[Stream, dict[str, tuple[float, float]]] = {
    Stream.GLUCOSE: {"glucose_mg_dl": (5.0, 1500.0)},
    Stream.INSULIN: {
        "units_u": (0.0, 250.0),
        "extended_units_u": (0.0, 250.0),
        "rate_u_per_h": (0.0, 50.0),
        "duration_min": (0.0, 7 * 24 * 60.0),
    },
    Stream.CARBS: {"carbs_g": (0.0, 1500.0)},
    Stream.ACTIVITY: {
        "duration_min": (0.0, 7 * 24 * 60.0),
        "steps": (0.0, 1e6),
        "heart_rate_bpm": (15.0, 300.0),
        "energy_kcal": (0.0, 2e4),
    },
}

EARLIEST = pd.Timestamp("1970-01-02", tz="UTC")
LATEST = pd.Timestamp("2100-01-01", tz="UTC")


def stream_columns(stream: Stream) -> dict[str, Any]:
    """All columns of ``stream`` in their canonical order, with their pandas dtypes."""
    return {**COMMON_COLUMNS, **STREAM_COLUMNS[stream]}


def empty_table(stream: Stream) -> pd.DataFrame:
    """A table of ``stream`` with no rows and the canonical columns."""
    return pd.DataFrame(
        {name: pd.Series([], dtype=dtype) for name, dtype in stream_columns(stream).items()}
    )


def _row_location(table: pd.DataFrame, position: int) -> tuple[str | None, int | None]:
    file = table["source_file"].iloc[position] if "source_file" in table else None
    line = table["source_line"].iloc[position] if "source_line" in table else None
    file = None if file is None or pd.isna(file) else str(file)
    line = None if line is None or pd.isna(line) else int(line)
    return file, line


def _coerce(stream: Stream, frame: pd.DataFrame) -> pd.DataFrame:
    """Return ``frame`` with exactly the canonical columns and dtypes of ``stream``."""
    columns = stream_columns(stream)
    unknown = set(frame.columns) - set(columns)
    if unknown:
        raise DataError(
            f"unknown column(s) {sorted(unknown)} for the {stream} table", field=min(unknown)
        )
    for required in REQUIRED_COLUMNS[stream]:
        if required not in frame:
            raise DataError(f"the {stream} table needs a '{required}' column", field=required)
    n = len(frame)
    out: dict[str, pd.Series] = {}
    defaults = DEFAULTS[stream]
    index = pd.RangeIndex(n)
    for name, dtype in columns.items():
        if name in frame:
            values = frame[name]
            if isinstance(values, pd.Series):
                values = values.reset_index(drop=True)
        elif name in defaults:
            values = pd.Series([defaults[name]] * n, index=index)
        else:
            values = _missing(dtype, index)
        if name == "time":
            out[name] = _as_utc(values, stream)
            continue
        try:
            series = pd.Series(values, index=index)
            if dtype == "float64" and series.dtype == object:
                series = pd.to_numeric(series, errors="raise")
            out[name] = series.astype(dtype)
        except (TypeError, ValueError) as exc:
            raise DataError(f"cannot be read as {dtype}: {exc}", field=name) from exc
    for name, default in defaults.items():
        out[name] = out[name].fillna(default)
    return pd.DataFrame(out)


def _missing(dtype: Any, index: pd.Index) -> pd.Series:
    if dtype == UTC_TIME:
        return pd.Series(pd.NaT, index=index, dtype=UTC_TIME)
    if dtype == "float64":
        return pd.Series(np.nan, index=index, dtype="float64")
    return pd.Series(pd.NA, index=index, dtype=dtype)


def _as_utc(values: Any, stream: Stream) -> pd.Series:
    series = pd.Series(values)
    if isinstance(series.dtype, pd.DatetimeTZDtype):
        return series.dt.tz_convert("UTC").astype(UTC_TIME)
    if pd.api.types.is_datetime64_dtype(series.dtype):
        raise DataError(
            f"times of the {stream} table must be timezone-aware (use utc_offset_min=NA and "
            "localize naive wall-clock times as UTC for floating local time)",
            field="time",
        )
    if len(series) == 0:
        return pd.Series([], dtype=UTC_TIME)
    raise DataError(f"times of the {stream} table are not datetimes", field="time")


def _validate(stream: Stream, table: pd.DataFrame) -> None:
    """Raise :class:`DataError` at the first row that breaks the schema's rules."""
    n = len(table)
    if n == 0:
        return
    time = table["time"]
    bad = time.isna().to_numpy() | (time < EARLIEST).to_numpy() | (time > LATEST).to_numpy()
    _raise_first(table, bad, "time", "missing or implausible time")
    for name, allowed in ALLOWED_VALUES[stream].items():
        values = table[name]
        present = values.notna().to_numpy()
        ok = values.isin(allowed).to_numpy() | ~present
        if name in REQUIRED_COLUMNS[stream] or name == "event":
            ok &= present
        _raise_first(table, ~ok, name, f"must be one of {sorted(allowed)}")
    for name, (low, high) in VALUE_RANGES[stream].items():
        values = table[name].to_numpy(dtype=float, na_value=np.nan)
        missing = np.isnan(values)
        if name in REQUIRED_COLUMNS[stream]:
            _raise_first(table, missing, name, "value is missing")
        outside = ~missing & ((values < low) | (values > high) | ~np.isfinite(values))
        if outside.any():
            first = int(np.flatnonzero(outside)[0])
            file, line = _row_location(table, first)
            raise DataError(
                f"value {values[first]:g} is outside the possible range {low:g}–{high:g}",
                file=file,
                line=line,
                field=name,
            )
    offsets = table["utc_offset_min"].to_numpy(dtype=float, na_value=np.nan)
    outside = ~np.isnan(offsets) & (np.abs(offsets) > 14 * 60)
    _raise_first(table, outside, "utc_offset_min", "UTC offset beyond ±14 h")
    if stream is Stream.INSULIN:
        _validate_insulin(table)


def _validate_insulin(table: pd.DataFrame) -> None:
    event = table["event"].to_numpy(dtype=object)
    delivery = table["delivery"].to_numpy(dtype=object, na_value=None)
    units = table["units_u"].to_numpy(dtype=float, na_value=np.nan)
    rate = table["rate_u_per_h"].to_numpy(dtype=float, na_value=np.nan)
    flagged = table["flag"].notna().to_numpy()
    is_bolus = event == "bolus"
    _raise_first(table, is_bolus & np.isnan(units) & ~flagged, "units_u", "a bolus needs its units")
    bolus_delivery = np.isin(delivery, ["scheduled", "temporary", "suspend"])
    _raise_first(table, is_bolus & bolus_delivery, "delivery", "not a bolus delivery type")
    is_basal = event == "basal"
    _raise_first(
        table, is_basal & np.isnan(rate) & ~flagged, "rate_u_per_h", "a basal event needs a rate"
    )
    basal_delivery = np.isin(delivery, ["normal", "extended", "dual"])
    _raise_first(table, is_basal & basal_delivery, "delivery", "not a basal delivery type")


def _raise_first(table: pd.DataFrame, bad: np.ndarray, field: str, message: str) -> None:
    if bad.any():
        first = int(np.flatnonzero(bad)[0])
        file, line = _row_location(table, first)
        raise DataError(message, file=file, line=line, field=field)


@dataclass(frozen=True)
class Recording:
    """One or more people's glucose, insulin, carbohydrate and activity records.

    Build one with :meth:`Recording.build`, which coerces, validates and sorts the tables;
    the constructor itself trusts its arguments. Tables are sorted by ``subject`` then
    ``time``, ties kept in source order.
    """

    glucose: pd.DataFrame
    insulin: pd.DataFrame
    carbs: pd.DataFrame
    activity: pd.DataFrame
    meta: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def build(
        cls,
        *,
        glucose: pd.DataFrame | None = None,
        insulin: pd.DataFrame | None = None,
        carbs: pd.DataFrame | None = None,
        activity: pd.DataFrame | None = None,
        meta: Mapping[str, Any] | None = None,
        file: str | Path | None = None,
    ) -> Recording:
        """Coerce each table to the canonical schema, validate it and sort it.

        Raises :class:`DataError` naming the file, line (from ``source_line``) and field of
        the first bad value. ``file`` fills in the file where a row does not name one.
        """
        tables: dict[str, pd.DataFrame] = {}
        given = {"glucose": glucose, "insulin": insulin, "carbs": carbs, "activity": activity}
        for stream in Stream:
            frame = given[stream.value]
            try:
                if frame is None:
                    table = empty_table(stream)
                else:
                    table = _coerce(stream, frame)
                    if file is not None:
                        table["source_file"] = table["source_file"].fillna(str(file))
                    _validate(stream, table)
            except DataError as exc:
                if file is None:
                    raise
                raise exc.located(file) from exc
            tables[stream.value] = _sorted(table)
        meta_dict = dict(meta or {})
        _check_json(meta_dict)
        return cls(**tables, meta=meta_dict)

    def table(self, stream: Stream | str) -> pd.DataFrame:
        return getattr(self, Stream(stream).value)

    @property
    def subjects(self) -> list[str]:
        """Distinct subject identifiers in any table, sorted (missing subject omitted)."""
        names: set[str] = set()
        for stream in Stream:
            names.update(self.table(stream)["subject"].dropna().unique().tolist())
        return sorted(names)

    def for_subject(self, subject: str) -> Recording:
        """The rows of one subject."""
        picked = {
            stream.value: self.table(stream)[self.table(stream)["subject"] == subject].reset_index(
                drop=True
            )
            for stream in Stream
        }
        return Recording(**picked, meta={**self.meta, "subject": subject})

    def cgm(self) -> pd.DataFrame:
        """CGM readings only (fingersticks excluded)."""
        g = self.glucose
        return g[g["source"] == "cgm"].reset_index(drop=True)

    def counts(self) -> dict[str, int]:
        return {stream.value: len(self.table(stream)) for stream in Stream}

    def equals(self, other: Recording) -> bool:
        """True when every table and the metadata are identical (dtypes included)."""
        if self.meta != other.meta:
            return False
        return all(self.table(s).equals(other.table(s)) for s in Stream) and all(
            (self.table(s).dtypes == other.table(s).dtypes).all() for s in Stream
        )

    @staticmethod
    def concat(recordings: Iterable[Recording], meta: Mapping[str, Any] | None = None):
        """Merge recordings (e.g. several files of one person or of a cohort)."""
        items = list(recordings)
        if not items:
            raise DataError("nothing to merge: no recordings")
        tables = {}
        for stream in Stream:
            frames = [r.table(stream) for r in items if len(r.table(stream))]
            merged = (
                pd.concat(frames, ignore_index=True) if frames else empty_table(stream)
            ).astype(stream_columns(stream))
            tables[stream.value] = _sorted(merged)
        if meta is None:
            meta = items[0].meta if len(items) == 1 else {"sources": [r.meta for r in items]}
        return Recording(**tables, meta=dict(meta))


def _sorted(table: pd.DataFrame) -> pd.DataFrame:
    if len(table) == 0:
        return table.reset_index(drop=True)
    subject = table["subject"].fillna("")
    instants = table["time"].array.asi8  # int64 ns: sorting Timestamp objects is 100x slower
    if subject.nunique() <= 1:
        order = np.argsort(instants, kind="stable")
    else:
        order = np.lexsort((instants, subject.to_numpy(dtype=str)))
    if np.array_equal(order, np.arange(len(table))):
        return table.reset_index(drop=True)
    return table.iloc[order].reset_index(drop=True)


def _check_json(meta: Mapping[str, Any]) -> None:
    try:
        json.dumps(meta)
    except TypeError as exc:
        raise DataError(f"metadata must be JSON-serialisable: {exc}", field="meta") from exc


def local_time(table: pd.DataFrame) -> pd.Series:
    """Wall-clock time of each row where it was recorded (naive datetimes).

    ``time + utc_offset_min``; a missing offset means floating local time stored as UTC.
    """
    offset = table["utc_offset_min"].astype("float64").fillna(0.0).to_numpy()
    wall = table["time"].dt.tz_localize(None) + pd.to_timedelta(offset, unit="min")
    return pd.Series(wall.to_numpy(), index=table.index, name="local_time")


def localize(
    wall_clock: pd.Series | pd.DatetimeIndex,
    timezone: str | None,
    *,
    ambiguous: Any = "raise",
) -> tuple[pd.Series, pd.Series]:
    """Turn naive wall-clock times into (UTC instants, UTC offsets in minutes).

    With ``timezone=None`` the times are kept as floating local time (stored as UTC, offset
    missing). With an IANA zone name the DST rules apply; ``ambiguous`` is passed to
    :meth:`pandas.Series.dt.tz_localize` (a boolean array resolves repeated fall-back hours,
    e.g. from a device's own monotonic clock). Non-existent spring-forward times raise.
    """
    wall = pd.Series(pd.DatetimeIndex(wall_clock))
    if timezone is None:
        utc = wall.dt.tz_localize("UTC")
        return utc, pd.Series(pd.NA, index=wall.index, dtype="Int16")
    try:
        aware = wall.dt.tz_localize(timezone, ambiguous=ambiguous, nonexistent="raise")
    except Exception as exc:
        raise DataError(f"cannot place local times in time zone {timezone!r}: {exc}") from exc
    utc = aware.dt.tz_convert("UTC")
    offset_min = ((wall - utc.dt.tz_localize(None)).dt.total_seconds() / 60).round()
    return utc, offset_min.astype("Int16")
