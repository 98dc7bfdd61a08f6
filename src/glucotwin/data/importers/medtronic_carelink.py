"""Medtronic CareLink CSV export: current sectioned layout (MiniMed 7xxG) and legacy Paradigm.

Format (no public specification; learnt from real exports, see
``shared/data/formats/medtronic_carelink_csv/README.md``):

- *Current* (CareLink Personal/System, e.g. MiniMed 780G): a preamble (patient, device, CGM),
  then sections, each introduced by a marker row ``-------;<device>;Pump|Sensor;<serial>;
  -------`` and its own header ``Index;Date;Time;New Device Time;BG Source;BG Reading
  (mg/dL);...``. Locale decides the delimiter and decimal separator (``;`` and ``,`` in
  Europe, ``,`` and ``.`` in the US: detected from line 1, never both). Rows are newest first.
- *Legacy* (Paradigm pumps, 2010s): ``Data Range,...`` on line 1, then one comma-separated
  table whose ``Raw-Type``/``Raw-Values`` columns hold the pump's own record.

Mapping:

- ``Sensor Glucose`` -> CGM; ``BG Reading`` -> fingerstick. The pump writes one meter reading
  up to three times (received, accepted, sent for calibration) and again as ``Sensor
  Calibration BG`` (minute-rounded time): a reading equal to the previous one within
  15 minutes is a duplicate, and a calibration BG is kept only when no equal reading lies
  within 15 minutes (legacy ``CalBGForPH`` rows, for instance);
- boluses: each delivered bolus (``Bolus Volume Delivered``); the current layout also writes a
  "programmed" row (``Bolus Volume Selected`` only) at the start, matched by ``Bolus Number``,
  whose time is used (the delivered row is written at the end of delivery). ``Normal`` ->
  normal, ``Square`` -> extended, ``Dual (normal part)`` + ``Dual (square part)`` (legacy
  ``Dual/Normal`` + ``Dual/Square``) -> one dual bolus. Delivered < selected is flagged
  ``interrupted``. ``Bolus Source`` with ``AUTO``/``MICRO`` (closed-loop automatic insulin)
  -> ``automated=True``; cancelled boluses with nothing delivered are counted in ``meta``;
- the ``Aggregated Auto Insulin Data`` section holds *daily totals* of the closed loop's
  automatic insulin (time 00:00, source ``CLOSED_LOOP_AUTO_INSULIN``), not boluses: kept as
  ``meta["auto_insulin_daily_u"]``;
- basal: ``Basal Rate (U/h)`` (legacy ``BasalProfileStart`` ``RATE=``) -> scheduled. While
  SmartGuard is active the pump replaces this programmed rate with automatic micro-boluses
  that the export only gives as the daily totals above. ``Suspend`` -> suspend (rate 0,
  ``automated`` for SmartGuard's predictive low suspend ``PLGM``/low suspend); the duplicate
  0 U/h rate row written with it is dropped; ``NORMAL_PUMPING`` resumes at the scheduled rate
  (from the pump's own rate row at that instant, else the last scheduled rate). Temp basal:
  ``Percent`` of the scheduled rate in effect (within 24 h, else rate unknown) or an absolute
  rate, with its duration; a temp basal of duration 0 cancels one. Temp basals carry
  ``flag="percent=<n>"`` when given as a percentage, and ``rate_unknown`` is added (rate
  missing) when no scheduled rate is known to take the percentage of or to resume at;
- ``BWZ Carb Input (grams)`` > 0 -> carbs.
- Dropped deliberately (counted in ``meta``): alerts, primes (cannula fill insulin goes into
  the tissue but is not therapy), rewinds, ISIG, bolus-wizard settings, day markers, the
  legacy settings records (``Current...``).

Time: ``Date`` + ``Time`` are the pump's wall clock, no zone. Without ``options.timezone`` it is
kept as floating local time. With a zone, the current layout is read as a pump clock: it
keeps one UTC offset until the user sets it (``New Device Time`` rows), so each clock period
gets one offset: the latest period's is the zone's offset when that clock was set (or at the
first reading when it never was), and each earlier one differs by the size of the change, to
the minute (a clock that had drifted 2 min gets an offset of 1 h 58 min, which keeps its
readings 5 min apart across the change). So a pump left on summer time until the user changes
it at 07:13 on the fall-back day is placed right. The legacy layout (hand-picked, unordered
rows in the sample) is placed with the zone's rules row by row; a repeated fall-back time
takes the first pass and is flagged ``ambiguous_time``.
"""

from __future__ import annotations

import io
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from glucotwin.data.errors import DataError
from glucotwin.data.formats import Format, ImportOptions
from glucotwin.data.model import MG_DL_PER_MMOL_L, Recording, localize
from glucotwin.data.textio import (
    check_final_row,
    first_bad,
    flag_rows,
    join_texts,
    parse_duration_min,
    parse_number,
    parse_wall_clock,
    place_wall_clock,
    read_text,
)

MARKER = "-------"
AGGREGATED = "Aggregated Auto Insulin Data"
DATE_LAYOUTS = (
    "%Y/%m/%d %H:%M:%S",
    "%m/%d/%y %H:%M:%S",
    "%m/%d/%Y %H:%M:%S",
    "%d/%m/%Y %H:%M:%S",
    "%d.%m.%Y %H:%M:%S",
    "%d.%m.%y %H:%M:%S",
)
UNITS = {"mg/dl": 1.0, "mmol/l": MG_DL_PER_MMOL_L}
DUPLICATE_WINDOW = pd.Timedelta(minutes=15)
BOLUS_MATCH_WINDOW = pd.Timedelta(hours=9)  # square boluses last up to 8 h
DUAL_MATCH_WINDOW = pd.Timedelta(minutes=30)
SCHEDULE_LOOKBACK = pd.Timedelta(hours=24)
AUTOMATED_SOURCE = re.compile(r"AUTO|MICRO")
AUTOMATED_SUSPEND = re.compile(r"PLGM|LGS|LOW_SG|THRESHOLD|PREDICTED_LOW")
RESUME = re.compile(r"^(NORMAL_PUMPING|RESUME)")
BOLUS_DELIVERY = {
    "normal": "normal",
    "square": "extended",
    "dual (normal part)": "dual_normal",
    "dual/normal": "dual_normal",
    "dual (square part)": "dual_square",
    "dual/square": "dual_square",
}
TEMP_ABSOLUTE = frozenset({"absolute", "insulin rate", "rate", "u/h"})
USED_COLUMNS = (  # name prefixes; the other columns (BWZ settings, networking...) are not read
    "Date",
    "Time",
    "New Device Time",
    "BG Reading",
    "Sensor Calibration BG",
    "Sensor Glucose",
    "ISIG Value",
    "Event Marker",
    "Basal Rate",
    "Temp Basal",
    "Bolus Type",
    "Bolus Volume",
    "Bolus Duration",
    "Programmed Bolus Duration",
    "Bolus Number",
    "Bolus Source",
    "BWZ Carb Input",
    "Suspend",
    "Rewind",
    "Prime Type",
    "Alert",
    "Raw-Type",
    "Raw-Values",
    "Raw-Device Type",
)
DAY_MARKERS = ("Start of the day", "End of the day")


@dataclass(frozen=True)
class _Block:
    """One table of the export: its cells (strings), file lines, section and header line."""

    frame: pd.DataFrame
    lines: np.ndarray
    kind: str  # "pump", "sensor", "aggregated" or "legacy"
    device: str
    header_line: int


def _sniff(path: Path, head: bytes) -> bool:
    lines = head.decode("utf-8-sig", errors="replace").splitlines()
    if not lines:
        return False
    current = lines[0].startswith("Last Name;First Name") or lines[0].startswith(
        "Last Name,First Name"
    )
    legacy = lines[0].startswith("Data Range,")
    header = any(re.match(r"^Index[;,]Date[;,]Time[;,]", line) for line in lines[:40])
    return (current or legacy) and header


def _split_blocks(text: str, sep: str, file: str) -> list[_Block]:
    """Every ``Index;Date;Time...`` table with the marker row above it."""
    rows = text.splitlines()
    blocks = []
    starts = [i for i, line in enumerate(rows) if line.startswith(f"Index{sep}Date{sep}Time")]
    if not starts:
        raise DataError("no 'Index,Date,Time' table header found", file=file)
    for start in starts:
        end = start + 1
        while end < len(rows) and rows[end].strip() and not rows[end].startswith(MARKER):
            end += 1
        marker = rows[start - 1].split(sep) if start > 0 else []
        if marker and marker[0] == MARKER:
            label = marker[-1].strip() if len(marker) > 4 else ""
            section = marker[2].strip().lower() if len(marker) > 2 else ""
            kind = "aggregated" if label == AGGREGATED else section or "pump"
            device = marker[1].strip() if len(marker) > 1 else ""
        else:
            kind, device = "legacy", ""
        try:
            frame = pd.read_csv(
                io.StringIO("\n".join(rows[start:end])),
                sep=sep,
                dtype=str,
                keep_default_na=False,
                usecols=lambda name: name.strip().startswith(USED_COLUMNS),
            )
        except pd.errors.ParserError as exc:
            found = re.search(r"line (\d+)", str(exc))
            raise DataError(
                f"malformed CSV: {exc}",
                file=file,
                line=start + int(found[1]) if found else start + 1,
            ) from exc
        frame.columns = [str(c).strip() for c in frame.columns]
        lines = np.arange(start + 2, end + 1)
        blocks.append(_Block(frame.fillna(""), lines, kind, device, header_line=start + 1))
    return blocks


def _column(frame: pd.DataFrame, *names: str) -> pd.Series:
    """The first column whose name starts with one of ``names`` (stripped), else blanks."""
    for name in names:
        for column in frame.columns:
            if column.startswith(name):
                return frame[column].str.strip()
    return pd.Series("", index=frame.index, dtype="str")


@dataclass(frozen=True)
class _Cells:
    """The rows being read, with their file lines, for columns found by name prefix."""

    frame: pd.DataFrame
    lines: np.ndarray
    file: str
    decimal_comma: bool

    def text(self, *names: str) -> pd.Series:
        return _column(self.frame, *names)

    def name(self, *names: str) -> str:
        return next((c for n in names for c in self.frame.columns if c.startswith(n)), names[0])

    def number(self, *names: str) -> pd.Series:
        """Numbers of a mostly empty column; only the filled cells are parsed."""
        text = self.text(*names)
        filled = (text != "").to_numpy()
        out = pd.Series(np.nan, index=self.frame.index)
        if filled.any():
            out[filled] = parse_number(
                text[filled],
                lines=self.lines[filled],
                field=self.name(*names),
                file=self.file,
                decimal_comma=self.decimal_comma,
            ).to_numpy()
        return out

    def duration_min(self, *names: str) -> pd.Series:
        return parse_duration_min(
            self.text(*names), lines=self.lines, field=self.name(*names), file=self.file
        )

    def subset(self, mask: np.ndarray) -> _Cells:
        frame = self.frame[mask].reset_index(drop=True)
        return _Cells(frame, self.lines[mask], self.file, self.decimal_comma)


def _glucose_unit(frame: pd.DataFrame, file: str, header_line: int) -> float:
    factor = None
    for column in frame.columns:
        found = re.match(r"^(Sensor Glucose|BG Reading|Sensor Calibration BG) \(([^)]*)\)$", column)
        if not found:
            continue
        unit = found[2].lower()
        if unit not in UNITS:
            raise DataError(
                f"unknown glucose unit {found[2]!r} (expected mg/dL or mmol/L)",
                file=file,
                line=header_line,
                field=column,
            )
        factor = UNITS[unit]
    if factor is None:
        raise DataError(
            "no 'Sensor Glucose (mg/dL)' or 'BG Reading (mg/dL)' column",
            file=file,
            line=header_line,
            field="Sensor Glucose",
        )
    return factor


def _clock_periods(
    events: pd.DataFrame, wall: pd.Series, new_time: pd.Series
) -> tuple[np.ndarray, list[pd.Timedelta]]:
    """Clock period of each row (0 = the latest clock) and the size of each clock change.

    Change ``c`` (newest first) moved the clock from ``old`` (the row's time) to ``new``. In
    the pump section the rows above a change row were written after it. In other sections
    (newest first, no change rows) the first row of the older period is where the times jump
    back up past the change (clock set back) or fall to ``old`` or below (clock set forward).
    """
    period = np.zeros(len(events), int)
    is_change = (new_time.notna() & (events["_kind"] == "pump")).to_numpy()
    changes = np.flatnonzero(is_change)  # file order: newest first
    deltas = [new_time.iloc[c] - wall.iloc[c] for c in changes]
    if len(changes) == 0:
        return period, deltas
    for block in events["_block"].unique():
        rows = np.flatnonzero((events["_block"] == block).to_numpy())
        if events["_kind"].iloc[rows[0]] == "pump":
            period[rows] = np.searchsorted(changes, rows, side="right")
            continue
        timed = rows[~events["_marker"].to_numpy()[rows]]
        t = wall.to_numpy()[timed]
        start = 0
        for k, c in enumerate(changes):
            old, new = wall.iloc[c].to_datetime64(), new_time.iloc[c].to_datetime64()
            if new < old:
                jump = np.flatnonzero((t[1:] > t[:-1]) & (t[1:] <= old) & (t[:-1] >= new)) + 1
                jump = jump[jump >= start]
                boundary = int(jump[0]) if len(jump) else start
            else:
                fall = np.flatnonzero(t <= old)
                fall = fall[fall >= start]
                boundary = int(fall[0]) if len(fall) else len(t)
            period[timed[boundary:]] = k + 1
            start = boundary
        # untimed day markers take the period of the row before them
        filled = pd.Series(np.where(events["_marker"].to_numpy()[rows], np.nan, period[rows]))
        period[rows] = filled.ffill().fillna(0).astype(int).to_numpy()
    return period, deltas


def _pump_clock(
    wall: pd.Series,
    period: np.ndarray,
    deltas: list[pd.Timedelta],
    new_time: pd.Series,
    timezone: str,
) -> tuple[pd.Series, pd.Series]:
    """UTC times and offsets of a pump clock that keeps one UTC offset per clock period."""
    # set at the newest change, else the clock was never set in the file: its oldest reading
    set_at = new_time[new_time.notna()] if deltas else wall[wall == wall.min()]
    set_at = set_at.iloc[:1]
    _, latest = localize(set_at.reset_index(drop=True), timezone)
    offsets = [int(latest.iloc[0])]
    for delta in deltas:
        offsets.append(offsets[-1] - round(delta.total_seconds() / 60))
    offset_min = np.asarray(offsets)[period]
    utc = (wall - pd.to_timedelta(offset_min, unit="min")).dt.tz_localize("UTC")
    return utc, pd.Series(offset_min, dtype="Int16")


def _first_of_repeats(wall: pd.Series, value: pd.Series) -> np.ndarray:
    """Readings that are not a repeat (same value within 15 min) of the one before."""
    order = np.argsort(wall.to_numpy(), kind="stable")
    t, v = wall.to_numpy()[order], value.to_numpy()[order]
    repeat = np.zeros(len(t), bool)
    repeat[1:] = (v[1:] == v[:-1]) & (t[1:] - t[:-1] <= DUPLICATE_WINDOW.to_timedelta64())
    keep = np.empty(len(t), bool)
    keep[order] = ~repeat
    return keep


def _fingersticks(
    wall: pd.Series, bg: pd.Series, calibration: pd.Series
) -> tuple[np.ndarray, np.ndarray]:
    """Rows kept as fingersticks: first of repeated BG readings, unmatched calibration BGs."""
    has_bg = bg.notna().to_numpy()
    keep_bg = np.zeros(len(bg), bool)
    keep_bg[has_bg] = _first_of_repeats(wall[has_bg], bg[has_bg])
    has_cal = calibration.notna().to_numpy() & ~has_bg
    readings = pd.DataFrame({"t": wall[keep_bg], "v": bg[keep_bg]}).sort_values("t")
    cal = pd.DataFrame(
        {"row": np.flatnonzero(has_cal), "t": wall[has_cal], "v": calibration[has_cal]}
    ).sort_values("t")
    matched = pd.merge_asof(
        cal,
        readings.assign(seen=True),
        on="t",
        by="v",
        direction="nearest",
        tolerance=DUPLICATE_WINDOW,
    )
    keep_cal = np.zeros(len(bg), bool)
    keep_cal[matched.loc[matched["seen"].isna(), "row"].to_numpy()] = True
    return keep_bg, keep_cal


def _read(path: Path, options: ImportOptions) -> Recording:
    file = path.name
    text = read_text(path)
    first = text.split("\n", 1)[0]
    sep = ";" if first.count(";") > first.count(",") else ","
    blocks = _split_blocks(text, sep, file)
    check_final_row(text, file=file, header_line=blocks[-1].header_line, sep=sep)
    layout = "legacy" if blocks[0].kind == "legacy" else "current"
    aggregated = [b for b in blocks if b.kind == "aggregated"]
    tables = [b for b in blocks if b.kind != "aggregated"]
    factor = _glucose_unit(tables[0].frame, file, int(tables[0].lines[0]) - 1)
    events = pd.concat(
        [
            b.frame.assign(_block=i, _kind=b.kind, _device=b.device, _line=b.lines)
            for i, b in enumerate(tables)
        ],
        ignore_index=True,
    ).fillna("")
    lines = events["_line"].to_numpy()
    events["_marker"] = _column(events, "Event Marker").isin(DAY_MARKERS)

    cells = _Cells(events, lines, file, decimal_comma=sep == ";")

    date, clock = _column(events, "Date"), _column(events, "Time")
    missing = ((date == "") | (clock == "")).to_numpy()
    if missing.any():
        raise DataError(
            "date or time is missing", file=file, line=first_bad(missing, lines), field="Date"
        )
    wall = parse_wall_clock(date + " " + clock, DATE_LAYOUTS, lines=lines, field="Date", file=file)
    new_text = _column(events, "New Device Time")
    new_time = pd.Series(pd.NaT, index=events.index, dtype=wall.dtype)
    has_new = (new_text != "").to_numpy()
    if has_new.any():
        new_time[has_new] = parse_wall_clock(
            new_text[has_new],
            DATE_LAYOUTS,
            lines=lines[has_new],
            field="New Device Time",
            file=file,
        )
    ambiguous = np.zeros(len(events), bool)
    if options.timezone is None:
        time, offset = localize(wall, None)
    elif layout == "legacy":
        time, offset, ambiguous = place_wall_clock(
            wall, options.timezone, lines=lines, field="Time", file=file, ambiguous="first"
        )
    else:
        period, deltas = _clock_periods(events, wall, new_time)
        time, offset = _pump_clock(wall, period, deltas, new_time, options.timezone)

    device = events["_device"].where(events["_device"] != "", _column(events, "Raw-Device Type"))
    cgm_name = re.search(rf"CGM{sep}([^{sep}\r\n]+)", text)
    if cgm_name:
        device = device.where(events["_kind"] != "sensor", cgm_name[1].strip())
    base = pd.DataFrame(
        {
            "time": time,
            "utc_offset_min": offset,
            "subject": options.subject if options.subject is not None else path.stem,
            "device": device.replace("", pd.NA),
            "source_line": lines,
            "flag": flag_rows(ambiguous, "ambiguous_time"),
        }
    )

    sg = cells.number("Sensor Glucose") * factor
    bg = cells.number("BG Reading") * factor
    calibration = cells.number("Sensor Calibration BG") * factor
    keep_bg, keep_cal = _fingersticks(wall, bg, calibration)
    is_sg = sg.notna().to_numpy()
    glucose = pd.concat(
        [
            base[is_sg].assign(glucose_mg_dl=sg[is_sg], source="cgm"),
            base[keep_bg].assign(glucose_mg_dl=bg[keep_bg], source="fingerstick"),
            base[keep_cal].assign(glucose_mg_dl=calibration[keep_cal], source="fingerstick"),
        ],
        ignore_index=True,
    )

    # pump events: every row but the (many) sensor rows of the current layout
    pump = (events["_kind"] != "sensor").to_numpy()
    pump_cells = cells.subset(pump)
    pump_base = base[pump].reset_index(drop=True)
    pump_wall = wall[pump].reset_index(drop=True)
    boluses, bolus_counts = _boluses(pump_cells, pump_base, pump_wall)
    basal = _basal(pump_cells, pump_base, pump_wall)
    carb_name = next((c for c in events.columns if c.startswith("BWZ Carb Input")), None)
    if carb_name not in (None, "BWZ Carb Input (grams)"):
        raise DataError(
            f"unknown carbohydrate unit in {carb_name!r} (expected grams)",
            file=file,
            line=int(tables[0].lines[0]) - 1,
            field=carb_name,
        )
    grams = pump_cells.number("BWZ Carb Input")
    eaten = (grams > 0).to_numpy()

    pumps = [b.device for b in blocks if b.device] or sorted(
        set(_column(events, "Raw-Device Type").unique().tolist()) - {""}
    )
    meta = {
        "format": "medtronic_carelink",
        "layout": layout,
        "glucose_unit": "mmol/L" if factor != 1.0 else "mg/dL",
        "timezone": options.timezone,
        "pump": pumps[0] if pumps else None,
        "cgm": cgm_name[1].strip() if cgm_name else None,
        "clock_changes": [
            {"old": o.isoformat(), "new": n.isoformat()}
            for o, n in zip(wall[has_new], new_time[has_new], strict=True)
        ],
        "auto_insulin_daily_u": _daily_totals(aggregated, sep, file),
        "fingerstick_repeats_dropped": int(bg.notna().sum() - keep_bg.sum()),
        "calibration_repeats_dropped": int(
            (calibration.notna() & bg.isna()).sum() - keep_cal.sum()
        ),
        **bolus_counts,
        "not_imported": _not_imported(events),
    }
    return Recording.build(
        glucose=glucose,
        insulin=pd.concat([boluses, basal], ignore_index=True),
        carbs=pump_base[eaten].assign(carbs_g=grams[eaten]),
        meta=meta,
        file=file,
    )


def _boluses(
    cells: _Cells, base: pd.DataFrame, wall: pd.Series
) -> tuple[pd.DataFrame, dict[str, int]]:
    """Delivered boluses, timed at their programmed start; dual parts joined."""
    kind = cells.text("Bolus Type")
    has_type = (kind != "").to_numpy()
    delivery = kind.str.lower().map(BOLUS_DELIVERY)
    unknown = has_type & delivery.isna().to_numpy()
    if unknown.any():
        raise DataError(
            f"unknown bolus type {kind[unknown].iloc[0]!r}",
            file=cells.file,
            line=first_bad(unknown, cells.lines),
            field="Bolus Type",
        )
    selected = cells.number("Bolus Volume Selected")
    delivered = cells.number("Bolus Volume Delivered")
    duration = cells.duration_min("Bolus Duration", "Programmed Bolus Duration")
    bolus_id = cells.text("Bolus Number").to_numpy(dtype=object)
    done = has_type & delivered.notna().to_numpy()
    programmed = has_type & delivered.isna().to_numpy() & selected.notna().to_numpy()

    def keyed(mask: np.ndarray, row: str) -> pd.DataFrame:
        return (
            pd.DataFrame(
                {
                    row: np.flatnonzero(mask),
                    "t": wall[mask].to_numpy(),
                    "id": bolus_id[mask],
                    "kind": kind[mask].to_numpy(dtype=object),
                }
            )
            .astype({"id": "str", "kind": "str"})
            .sort_values("t")
        )

    matched = pd.merge_asof(
        keyed(done, "row"),
        keyed(programmed, "start"),
        on="t",
        by=["id", "kind"],
        direction="backward",
        tolerance=BOLUS_MATCH_WINDOW,
    ).sort_values("row")
    rows = matched["row"].to_numpy()
    start = matched["start"].fillna(matched["row"]).astype(int).to_numpy()
    out = base.iloc[rows].reset_index(drop=True)
    out["time"] = base["time"].array[start]
    out["utc_offset_min"] = base["utc_offset_min"].array[start]
    units = delivered.to_numpy()[rows]
    interrupted = units < selected.to_numpy()[rows] - 1e-9
    out = out.assign(
        event="bolus",
        delivery=delivery.to_numpy()[rows],
        units_u=units,
        duration_min=duration.to_numpy()[rows],
        automated=cells.text("Bolus Source")
        .str.upper()
        .str.contains(AUTOMATED_SOURCE)
        .to_numpy()[rows],
        flag=join_texts(out["flag"], flag_rows(interrupted, "interrupted")),
        _t=wall.to_numpy()[rows],
        _id=bolus_id[rows],
    )
    square = out["delivery"] == "extended"
    out.loc[square, "extended_units_u"] = out.loc[square, "units_u"]
    out.loc[out["delivery"].isin(["normal", "dual_normal"]), "duration_min"] = np.nan
    counts = {
        "boluses_cancelled_before_delivery": int(
            (has_type & delivered.isna().to_numpy() & selected.isna().to_numpy()).sum()
        ),
        "boluses_programmed_not_delivered": int(programmed.sum() - matched["start"].notna().sum()),
    }
    return _join_dual(out).drop(columns=["_t", "_id"]), counts


def _join_dual(boluses: pd.DataFrame) -> pd.DataFrame:
    """One dual bolus from its normal part and the square part that follows (same number)."""
    normal = boluses[boluses["delivery"] == "dual_normal"]
    square = boluses[boluses["delivery"] == "dual_square"]
    others = boluses[~boluses["delivery"].isin(["dual_normal", "dual_square"])]
    if len(normal) + len(square) == 0:
        return others
    pairs = pd.merge_asof(
        normal.reset_index(drop=True).assign(_n=lambda f: f.index).sort_values("_t"),
        square.reset_index(drop=True)
        .assign(_s=lambda f: f.index)[["_t", "_id", "_s"]]
        .sort_values("_t"),
        on="_t",
        by="_id",
        direction="forward",
        tolerance=DUAL_MATCH_WINDOW,
    ).sort_values("_n")
    paired = pairs["_s"].notna().to_numpy()
    part = square.iloc[pairs.loc[paired, "_s"].astype(int)].reset_index(drop=True)
    dual = normal.reset_index(drop=True).copy()
    extended = np.full(len(dual), np.nan)
    extended[paired] = part["units_u"].to_numpy()
    dual["duration_min"] = np.nan
    dual.loc[paired, "duration_min"] = part["duration_min"].to_numpy()
    part_flag = pd.Series(pd.NA, index=dual.index, dtype="string")
    part_flag[paired] = part["flag"].to_numpy()
    dual = dual.assign(
        units_u=dual["units_u"] + np.nan_to_num(extended),
        extended_units_u=extended,
        flag=join_texts(
            dual["flag"],
            part_flag,
            pd.Series(np.where(paired, None, "dual_part_missing"), dtype="string"),
        ),
    )
    lonely = square.drop(square.index[pairs.loc[paired, "_s"].astype(int)])
    lonely = lonely.assign(
        extended_units_u=lonely["units_u"],
        flag=join_texts(lonely["flag"], pd.Series("dual_part_missing", index=lonely.index)),
    )
    combined = pd.concat([others, dual, lonely], ignore_index=True)
    combined["delivery"] = combined["delivery"].replace(
        {"dual_normal": "dual", "dual_square": "dual"}
    )
    return combined


def _basal(cells: _Cells, base: pd.DataFrame, wall: pd.Series) -> pd.DataFrame:
    """Scheduled rates, suspends and resumes, temp basals (percent or absolute) and cancels."""
    rate = cells.number("Basal Rate")
    profile = (cells.text("Raw-Type") == "BasalProfileStart").to_numpy()
    raw_rate = pd.to_numeric(
        cells.text("Raw-Values").str.extract(r"(?:^|,\s*)RATE=([0-9.]+)")[0],
        errors="coerce",
    )
    rate = rate.where(rate.notna() | ~profile, raw_rate)
    state = cells.text("Suspend").str.upper().str.replace(" ", "_")
    resume = (state.str.match(RESUME) & (state != "")).to_numpy()
    suspend = (state != "").to_numpy() & ~resume
    rewind = (cells.text("Rewind") != "").to_numpy()
    at_suspend = wall.isin(wall[suspend]).to_numpy()
    scheduled = rate.notna().to_numpy() & ~suspend & ~rewind & ~(at_suspend & (rate == 0))
    schedule = pd.DataFrame({"t": wall[scheduled], "base": rate[scheduled]}).sort_values("t")

    def rate_before(mask: np.ndarray) -> np.ndarray:
        """Scheduled rate in effect at the masked rows (the last within 24 h), else NaN."""
        asked = pd.DataFrame({"row": np.flatnonzero(mask), "t": wall[mask]}).sort_values("t")
        found = pd.merge_asof(asked, schedule, on="t", tolerance=SCHEDULE_LOOKBACK)
        return found.sort_values("row")["base"].to_numpy()

    has_schedule_row = wall.isin(wall[scheduled]).to_numpy()
    amount = cells.number("Temp Basal Amount")
    temp_type = cells.text("Temp Basal Type").str.lower()
    temp_minutes = cells.duration_min("Temp Basal Duration")
    temp = amount.notna().to_numpy()
    percent = temp & (temp_type == "percent").to_numpy()
    unknown = temp & ~percent & ~temp_type.isin(TEMP_ABSOLUTE).to_numpy()
    if unknown.any():
        raise DataError(
            f"unknown temp basal type {temp_type[unknown].iloc[0]!r} (Percent or absolute)",
            file=cells.file,
            line=first_bad(unknown, cells.lines),
            field="Temp Basal Type",
        )
    cancel = temp & (temp_minutes == 0).to_numpy()
    back_to_schedule = (resume | cancel) & ~has_schedule_row
    temp = temp & ~cancel
    temp_rate = amount.copy()
    temp_rate[percent] = amount[percent] / 100 * rate_before(percent)
    back_rate = np.full(len(base), np.nan)
    back_rate[back_to_schedule] = rate_before(back_to_schedule)
    parts = [
        base[scheduled].assign(delivery="scheduled", rate_u_per_h=rate[scheduled]),
        base[suspend].assign(
            delivery="suspend",
            rate_u_per_h=0.0,
            automated=state[suspend].str.contains(AUTOMATED_SUSPEND).to_numpy(),
        ),
        base[back_to_schedule].assign(
            delivery="scheduled",
            rate_u_per_h=back_rate[back_to_schedule],
            flag=join_texts(
                base.loc[back_to_schedule, "flag"],
                pd.Series(
                    np.where(np.isnan(back_rate[back_to_schedule]), "rate_unknown", None),
                    index=base.index[back_to_schedule],
                    dtype="string",
                ),
            ),
        ),
        base[temp].assign(
            delivery="temporary",
            rate_u_per_h=temp_rate[temp],
            duration_min=temp_minutes[temp],
            flag=join_texts(
                base.loc[temp, "flag"],
                ("percent=" + amount[temp].astype("string").str.removesuffix(".0")).where(
                    percent[temp]
                ),
                pd.Series("rate_unknown", index=base.index[temp], dtype="string").where(
                    temp_rate[temp].isna()
                ),
            ),
        ),
    ]
    return pd.concat(parts, ignore_index=True).assign(event="basal")


def _daily_totals(blocks: list[_Block], sep: str, file: str) -> dict[str, float]:
    """Automatic insulin per day (U) from the aggregated section, keyed by ISO date."""
    totals: dict[str, float] = {}
    for block in blocks:
        day = parse_wall_clock(
            _column(block.frame, "Date") + " " + _column(block.frame, "Time"),
            DATE_LAYOUTS,
            lines=block.lines,
            field="Date",
            file=file,
        )
        units = parse_number(
            _column(block.frame, "Bolus Volume Delivered"),
            lines=block.lines,
            field="Bolus Volume Delivered (U)",
            file=file,
            decimal_comma=sep == ";",
        )
        for d, u in zip(day.dt.date, units, strict=True):
            if not np.isnan(u):
                totals[d.isoformat()] = float(u)
    return dict(sorted(totals.items()))


def _not_imported(events: pd.DataFrame) -> dict[str, object]:
    """Counts of what the model has no place for."""
    counts = {
        "alerts": int((_column(events, "Alert") != "").sum()),
        "primes": int((_column(events, "Prime Type") != "").sum()),
        "rewinds": int((_column(events, "Rewind") != "").sum()),
        "day_markers": int(events["_marker"].sum()),
        "isig_values": int((_column(events, "ISIG Value") != "").sum()),
    }
    raw = _column(events, "Raw-Type")
    if (raw != "").any():
        counts["legacy_record_types"] = {k: int(v) for k, v in raw.value_counts().items()}
    return counts


FORMAT = Format(
    name="medtronic_carelink",
    description="Medtronic CareLink CSV (MiniMed 7xxG sections, legacy Paradigm)",
    sniff=_sniff,
    read=_read,
    extensions=(".csv",),
)
