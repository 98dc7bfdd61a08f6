"""OhioT1DM XML: one ``<patient>`` file of the OhioT1DM dataset.

Source: Marling & Bunescu, "The OhioT1DM Dataset for Blood Glucose Level Prediction: Update
2020", CEUR Workshop Proceedings 2675 (2020). The dataset is distributed under a data use
agreement; the schema (``../shared/data/formats/ohiot1dm_xml/README.md``) is reconstructed
from public readers. The root ``<patient id weight insulin_type>`` holds one element per
stream, each with ``<event>`` children whose attributes carry the data. Timestamps are
day-first local wall-clock times, ``dd-mm-yyyy HH:MM:SS``, without a zone: they are placed in
``ImportOptions.timezone`` when given, else kept as floating local time.

Mapping (streams are found by tag, in any order, and may be empty):

- ``glucose_level`` -> CGM glucose (mg/dL); ``finger_stick`` -> ``source="fingerstick"``.
- ``basal`` -> scheduled basal rate (U/h) from ``ts`` on. ``temp_basal`` -> temporary basal
  from ``ts_begin`` for ``ts_end - ts_begin``; a rate of 0 is a suspension (``suspend``).
- ``bolus`` -> ``normal``; ``square`` -> ``extended`` (all of the dose over ``ts_begin`` to
  ``ts_end``); a ``normal dual`` and the ``square dual`` beginning within one minute of it are
  one ``dual`` bolus (``units_u`` both parts, ``extended_units_u`` the square part, its
  duration). A part without its partner is kept as ``dual`` with flag
  ``dual_square_part_missing`` or ``dual_normal_part_missing``. ``bwz_carb_input`` (carbs
  typed into the bolus wizard, g) duplicates ``meal`` entries, so it is kept, when not zero,
  in ``meta["bolus_wizard_carbs"]``, not as carbs rows.
- ``meal`` -> carbs (g) with ``meal_type`` (breakfast, lunch, dinner, snack,
  hypo_correction).
- Activity rows: ``exercise`` (its ``type`` or "exercise", intensity "n/10", duration min,
  flag ``competitive=…`` when given), ``basis_heart_rate`` (``heart_rate``, bpm),
  ``basis_steps`` (``steps``, count per 5 min, duration 5), ``work`` (intensity "n/10"),
  ``sleep`` (self-reported, intensity "quality poor|fair|good" for 1|2|3) and
  ``basis_sleep`` (``sleep_band``, band-detected; ``tbegin``/``tend``; its quality score as
  "quality n"). An interval whose end precedes its begin (a known quirk) is kept with
  flag ``end_before_begin`` and no duration; a missing end gives flag ``no_end``.
- ``stressors``, ``illness`` and ``hypo_event`` (with its ``<symptom>`` children's
  attributes) -> ``meta["stressors"]``, ``meta["illness"]``, ``meta["hypo_events"]`` with
  local wall-clock ISO times and their line.

Dropped, with their event counts in ``meta["dropped_streams"]``: ``basis_gsr``,
``basis_skin_temperature``, ``basis_air_temperature``, ``acceleration`` and any unknown
stream (the canonical model has no column for them). Exact duplicate events (every
attribute equal) are dropped and counted in ``meta["duplicates_dropped"]``. Blank or
single-space attributes are missing values. The root's attributes go to ``meta["patient"]``
(``weight`` 99 is the dataset's placeholder, not a weight); its ``id`` is the subject.

Parsed with the standard library's expat parser directly (not ElementTree) to get the line
of every event. XML bombs (entity expansion) need a DTD; OhioT1DM files have none, so a
DOCTYPE or ENTITY declaration is rejected before anything is expanded, which makes
defusedxml unnecessary.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from xml.parsers import expat

import numpy as np
import pandas as pd

from glucotwin.data.errors import DataError
from glucotwin.data.formats import Format, ImportOptions
from glucotwin.data.model import Recording
from glucotwin.data.textio import parse_number, parse_wall_clock, place_wall_clock

DATE_FORMAT = "%d-%m-%Y %H:%M:%S"
ROOT = re.compile(rb"^(?:<\?xml[^>]*\?>\s*)?(?:<!--.*?-->\s*)*<patient\b[^>]*\bid\s*=", re.S)
STREAM_TAGS = (b"<glucose_level", b"<finger_stick", b"<basal", b"<bolus", b"<meal")
MEAL_TYPES = {
    "breakfast": "breakfast",
    "lunch": "lunch",
    "dinner": "dinner",
    "snack": "snack",
    "hypocorrection": "hypo_correction",
}
SLEEP_QUALITY = {"1": "poor", "2": "fair", "3": "good"}
BOLUS_TYPES = frozenset({"normal", "square", "normal dual", "square dual"})
DUAL_PAIRING = pd.Timedelta(minutes=1)
STEP_INTERVAL_MIN = 5.0  # Basis Peak step counts are per 5-minute interval (dataset paper)


@dataclass
class _Event:
    line: int
    attrs: dict[str, str]
    children: list[dict[str, str]] = field(default_factory=list)


def _sniff(path: Path, head: bytes) -> bool:
    text = head.lstrip(b"\xef\xbb\xbf \t\r\n")
    return ROOT.match(text) is not None and any(tag in head for tag in STREAM_TAGS)


def _parse(path: Path) -> tuple[dict[str, str], dict[str, list[_Event]]]:
    """Root attributes and the events of each stream, with the line of each event."""
    parser = expat.ParserCreate()
    root: dict[str, str] = {}
    streams: dict[str, list[_Event]] = {}
    depth = 0
    current: list[_Event] = []

    def start(tag: str, attrs: dict[str, str]) -> None:
        nonlocal depth, current
        depth += 1
        line = parser.CurrentLineNumber
        if depth == 1:
            if tag != "patient":
                raise DataError(f"the root element is <{tag}>, not <patient>", line=line)
            root.update(attrs)
        elif depth == 2:
            current = streams.setdefault(tag, [])
        elif depth == 3:
            if tag != "event":
                raise DataError(f"unexpected <{tag}> in a stream (expected <event>)", line=line)
            current.append(_Event(line, attrs))
        elif depth == 4:
            current[-1].children.append(attrs)

    def end(tag: str) -> None:
        nonlocal depth
        depth -= 1

    def no_dtd(*args: Any) -> None:
        raise DataError(
            "DOCTYPE/ENTITY declarations are not allowed (OhioT1DM files have none, and "
            "entities can expand without bound)",
            line=parser.CurrentLineNumber,
        )

    parser.StartElementHandler = start
    parser.EndElementHandler = end
    parser.StartDoctypeDeclHandler = no_dtd
    parser.EntityDeclHandler = no_dtd
    try:
        parser.Parse(path.read_bytes(), True)
    except expat.ExpatError as exc:
        raise DataError(
            f"malformed XML: {expat.ErrorString(exc.code)} (column {exc.offset + 1})",
            file=path,
            line=exc.lineno,
        ) from exc
    except DataError as exc:
        raise exc.located(path) from None
    return root, streams


class _Streams:
    """The events of each stream as string tables, with helpers that report the line."""

    def __init__(self, events: dict[str, list[_Event]], path: Path, options: ImportOptions):
        self.events = events
        self.path = path
        self.timezone = options.timezone
        self.duplicates: dict[str, int] = {}

    def frame(self, stream: str, required: tuple[str, ...]) -> pd.DataFrame | None:
        """Attributes as stripped strings (blank = missing) plus ``line``; None when empty."""
        events = self.events.get(stream, [])
        if not events:
            return None
        frame = pd.DataFrame.from_records([e.attrs for e in events]).astype("string")
        frame = frame.apply(lambda column: column.str.strip().replace("", pd.NA))
        duplicated = frame.duplicated().to_numpy()
        if stream != "hypo_event" and duplicated.any():
            self.duplicates[stream] = int(duplicated.sum())
            keep = ~duplicated
        else:
            keep = np.ones(len(events), dtype=bool)
        frame = frame[keep].reset_index(drop=True)
        frame["line"] = np.array([e.line for e in events])[keep]
        for name in required:
            missing = frame[name].isna().to_numpy() if name in frame else np.ones(len(frame), bool)
            if missing.any():
                raise DataError(
                    f"a <{stream}> event has no '{name}'",
                    file=self.path,
                    line=int(frame["line"].to_numpy()[np.flatnonzero(missing)[0]]),
                    field=f"{stream}.{name}",
                )
        return frame

    @staticmethod
    def text(frame: pd.DataFrame, name: str) -> pd.Series:
        if name in frame:
            return frame[name]
        return pd.Series(pd.NA, index=frame.index, dtype="string")

    def wall(self, frame: pd.DataFrame, stream: str, name: str) -> pd.Series:
        return parse_wall_clock(
            self.text(frame, name),
            DATE_FORMAT,
            lines=frame["line"],
            field=f"{stream}.{name}",
            file=self.path,
        )

    def when(self, frame: pd.DataFrame, stream: str, name: str) -> tuple[pd.Series, pd.Series]:
        """(UTC time, UTC offset in minutes) of attribute ``name``."""
        time, offset, _ = place_wall_clock(
            self.wall(frame, stream, name),
            self.timezone,
            lines=frame["line"],
            field=f"{stream}.{name}",
            file=self.path,
        )
        return time, offset

    def number(self, frame: pd.DataFrame, stream: str, name: str) -> pd.Series:
        return parse_number(
            self.text(frame, name), lines=frame["line"], field=f"{stream}.{name}", file=self.path
        )

    def interval(
        self, frame: pd.DataFrame, stream: str, begin: str, end: str
    ) -> tuple[pd.Series, pd.Series, pd.Series, pd.Series]:
        """(begin UTC, offset, duration min, flag) of intervals; see the module notes."""
        start, offset = self.when(frame, stream, begin)
        stop, _ = self.when(frame, stream, end)
        minutes = (stop - start).dt.total_seconds() / 60
        flag = pd.Series(pd.NA, index=frame.index, dtype="string")
        flag[stop.isna()] = "no_end"
        flag[(minutes < 0).fillna(False)] = "end_before_begin"
        return start, offset, minutes.where(minutes >= 0), flag

    def local_iso(self, frame: pd.DataFrame, stream: str, name: str) -> list[str | None]:
        wall = self.wall(frame, stream, name)
        return [None if pd.isna(t) else t.isoformat() for t in wall]


def _rows(time: pd.Series, offset: pd.Series, frame: pd.DataFrame, **columns: Any) -> pd.DataFrame:
    return pd.DataFrame(
        {"time": time, "utc_offset_min": offset, "source_line": frame["line"], **columns}
    )


def _glucose(streams: _Streams) -> list[pd.DataFrame]:
    tables = []
    for stream, source in (("glucose_level", "cgm"), ("finger_stick", "fingerstick")):
        frame = streams.frame(stream, ("ts", "value"))
        if frame is not None:
            time, offset = streams.when(frame, stream, "ts")
            value = streams.number(frame, stream, "value")
            tables.append(_rows(time, offset, frame, glucose_mg_dl=value, source=source))
    return tables


def _basal(streams: _Streams) -> list[pd.DataFrame]:
    tables = []
    frame = streams.frame("basal", ("ts", "value"))
    if frame is not None:
        time, offset = streams.when(frame, "basal", "ts")
        rate = streams.number(frame, "basal", "value")
        tables.append(
            _rows(time, offset, frame, event="basal", delivery="scheduled", rate_u_per_h=rate)
        )
    frame = streams.frame("temp_basal", ("ts_begin", "value"))
    if frame is not None:
        time, offset, minutes, flag = streams.interval(frame, "temp_basal", "ts_begin", "ts_end")
        rate = streams.number(frame, "temp_basal", "value")
        delivery = np.where(rate.to_numpy() == 0, "suspend", "temporary")
        tables.append(
            _rows(
                time,
                offset,
                frame,
                event="basal",
                delivery=delivery,
                rate_u_per_h=rate,
                duration_min=minutes,
                flag=flag,
            )
        )
    return tables


def _bolus(streams: _Streams, meta: dict[str, Any]) -> list[pd.DataFrame]:
    frame = streams.frame("bolus", ("ts_begin", "type", "dose"))
    if frame is None:
        return []
    kind = frame["type"].str.lower()
    unknown = ~kind.isin(BOLUS_TYPES).to_numpy()
    if unknown.any():
        position = int(np.flatnonzero(unknown)[0])
        raise DataError(
            f"unknown bolus type {frame['type'].iloc[position]!r} (known: {sorted(BOLUS_TYPES)})",
            file=streams.path,
            line=int(frame["line"].iloc[position]),
            field="bolus.type",
        )
    time, offset = streams.when(frame, "bolus", "ts_begin")
    stop, _ = streams.when(frame, "bolus", "ts_end")
    dose = streams.number(frame, "bolus", "dose")
    minutes = ((stop - time).dt.total_seconds() / 60).where(lambda m: m >= 0)
    table = _rows(time, offset, frame, event="bolus", units_u=dose)
    table["kind"], table["span_min"] = kind.to_numpy(), minutes.to_numpy()

    normal = table[table["kind"] == "normal"].assign(delivery="normal")
    square = table[table["kind"] == "square"].assign(
        delivery="extended",
        extended_units_u=lambda t: t["units_u"],
        duration_min=lambda t: t["span_min"],
    )
    dual = _pair_dual(table[table["kind"] == "normal dual"], table[table["kind"] == "square dual"])

    carbs = streams.number(frame, "bolus", "bwz_carb_input")
    entered = (carbs > 0).to_numpy()
    if entered.any():
        meta["bolus_wizard_carbs"] = [
            {"time": t, "carbs_g": float(c), "line": int(n)}
            for t, c, n in zip(
                np.asarray(streams.local_iso(frame, "bolus", "ts_begin"), dtype=object)[entered],
                carbs[entered],
                frame["line"][entered],
                strict=True,
            )
        ]
    return [t.drop(columns=["kind", "span_min"]) for t in (normal, square, dual)]


def _pair_dual(normal: pd.DataFrame, square: pd.DataFrame) -> pd.DataFrame:
    """One dual bolus per ``normal dual`` and the ``square dual`` beginning within a minute."""
    left = square[["time"]].assign(square=square.index).sort_values("time")
    right = normal[["time"]].assign(normal=normal.index).sort_values("time")
    pairs = pd.merge_asof(left, right, on="time", direction="nearest", tolerance=DUAL_PAIRING)
    pairs = pairs.dropna(subset=["normal"]).drop_duplicates("normal")
    pairs = pairs.astype({"normal": int})
    paired = normal.loc[pairs["normal"]].assign(
        units_u=normal.loc[pairs["normal"], "units_u"].to_numpy()
        + square.loc[pairs["square"], "units_u"].to_numpy(),
        extended_units_u=square.loc[pairs["square"], "units_u"].to_numpy(),
        duration_min=square.loc[pairs["square"], "span_min"].to_numpy(),
    )
    alone_normal = normal.drop(index=pairs["normal"]).assign(
        extended_units_u=0.0, flag="dual_square_part_missing"
    )
    alone_square = square.drop(index=pairs["square"]).assign(
        extended_units_u=lambda t: t["units_u"],
        duration_min=lambda t: t["span_min"],
        flag="dual_normal_part_missing",
    )
    return pd.concat([paired, alone_normal, alone_square]).assign(delivery="dual")


def _carbs(streams: _Streams) -> list[pd.DataFrame]:
    frame = streams.frame("meal", ("ts",))
    if frame is None:
        return []
    time, offset = streams.when(frame, "meal", "ts")
    raw = streams.text(frame, "type").str.lower()
    meal_type = raw.map(lambda t: MEAL_TYPES.get(t, t) if isinstance(t, str) else t)
    return [
        _rows(
            time,
            offset,
            frame,
            carbs_g=streams.number(frame, "meal", "carbs"),
            meal_type=meal_type.astype("string"),
        )
    ]


def _activity(streams: _Streams) -> list[pd.DataFrame]:
    tables = []
    frame = streams.frame("exercise", ("ts",))
    if frame is not None:
        time, offset = streams.when(frame, "exercise", "ts")
        competitive = streams.text(frame, "competitive")
        tables.append(
            _rows(
                time,
                offset,
                frame,
                activity_type=streams.text(frame, "type").str.lower().fillna("exercise"),
                intensity=streams.text(frame, "intensity") + "/10",
                duration_min=streams.number(frame, "exercise", "duration"),
                flag="competitive=" + competitive,
            )
        )
    for stream, column, extra in (
        ("basis_heart_rate", "heart_rate_bpm", {"activity_type": "heart_rate"}),
        ("basis_steps", "steps", {"activity_type": "steps", "duration_min": STEP_INTERVAL_MIN}),
    ):
        frame = streams.frame(stream, ("ts", "value"))
        if frame is not None:
            time, offset = streams.when(frame, stream, "ts")
            values = streams.number(frame, stream, "value")
            tables.append(_rows(time, offset, frame, **{column: values}, **extra))
    for stream, begin, end, kind, intensity in (
        ("work", "ts_begin", "ts_end", "work", lambda f: streams.text(f, "intensity") + "/10"),
        (
            "sleep",
            "ts_begin",
            "ts_end",
            "sleep",
            lambda f: "quality " + streams.text(f, "quality").replace(SLEEP_QUALITY),
        ),
        (
            "basis_sleep",
            "tbegin",
            "tend",
            "sleep_band",
            lambda f: "quality " + streams.text(f, "quality"),
        ),
    ):
        frame = streams.frame(stream, (begin,))
        if frame is not None:
            time, offset, minutes, flag = streams.interval(frame, stream, begin, end)
            tables.append(
                _rows(
                    time,
                    offset,
                    frame,
                    activity_type=kind,
                    intensity=intensity(frame),
                    duration_min=minutes,
                    flag=flag,
                )
            )
    return tables


def _notes(streams: _Streams, meta: dict[str, Any]) -> None:
    """Stressors, illness and hypoglycaemia reports into ``meta`` (no canonical table)."""

    def clean(value: Any) -> Any:
        return None if pd.isna(value) else value

    frame = streams.frame("stressors", ("ts",))
    if frame is not None:
        meta["stressors"] = [
            {"time": t, "type": clean(k), "description": clean(d), "line": int(n)}
            for t, k, d, n in zip(
                streams.local_iso(frame, "stressors", "ts"),
                streams.text(frame, "type"),
                streams.text(frame, "description"),
                frame["line"],
                strict=True,
            )
        ]
    frame = streams.frame("illness", ("ts_begin",))
    if frame is not None:
        meta["illness"] = [
            {"begin": b, "end": e, "type": clean(k), "description": clean(d), "line": int(n)}
            for b, e, k, d, n in zip(
                streams.local_iso(frame, "illness", "ts_begin"),
                streams.local_iso(frame, "illness", "ts_end"),
                streams.text(frame, "type"),
                streams.text(frame, "description"),
                frame["line"],
                strict=True,
            )
        ]
    frame = streams.frame("hypo_event", ("ts",))
    if frame is not None:
        events = streams.events["hypo_event"]
        meta["hypo_events"] = [
            {"time": t, "symptoms": e.children, "line": e.line}
            for t, e in zip(streams.local_iso(frame, "hypo_event", "ts"), events, strict=True)
        ]


HANDLED = frozenset(
    {
        "glucose_level",
        "finger_stick",
        "basal",
        "temp_basal",
        "bolus",
        "meal",
        "exercise",
        "basis_heart_rate",
        "basis_steps",
        "work",
        "sleep",
        "basis_sleep",
        "stressors",
        "illness",
        "hypo_event",
    }
)


def _read(path: Path, options: ImportOptions) -> Recording:
    root, events = _parse(path)
    streams = _Streams(events, path, options)
    subject = options.subject or root.get("id") or path.stem.split("-ws-")[0]
    meta: dict[str, Any] = {"format": "ohiot1dm", "patient": root, "timezone": options.timezone}
    tables = {
        "glucose": _glucose(streams),
        "insulin": _basal(streams) + _bolus(streams, meta),
        "carbs": _carbs(streams),
        "activity": _activity(streams),
    }
    _notes(streams, meta)
    dropped = {tag: len(e) for tag, e in events.items() if tag not in HANDLED and e}
    if dropped:
        meta["dropped_streams"] = dropped
    if streams.duplicates:
        meta["duplicates_dropped"] = streams.duplicates
    frames = {
        name: pd.concat(parts, ignore_index=True).assign(subject=subject) if parts else None
        for name, parts in tables.items()
    }
    if frames["insulin"] is not None:
        frames["insulin"]["insulin_name"] = root.get("insulin_type")
    return Recording.build(**frames, meta=meta, file=path.name)


FORMAT = Format(
    name="ohiot1dm",
    description="OhioT1DM dataset XML (<patient> with glucose_level, bolus, meal, ... streams)",
    sniff=_sniff,
    read=_read,
    extensions=(".xml",),
)
