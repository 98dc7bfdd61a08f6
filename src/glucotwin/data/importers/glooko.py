"""Glooko data export: a ZIP of per-stream CSV files (``cgm_data_1.csv``, ``bolus_data_1.csv``...).

Format (no public specification; see ``shared/data/formats/glooko_csv/README.md`` and the
headers that open-source Glooko readers expect): each CSV starts with a metadata line
(``Name:<name>,Date Range:<from> - <to>``), then a header, then rows. One stream may be split
over numbered files (``cgm_data_1.csv``, ``cgm_data_2.csv``...), possibly in folders; files with
a header only are normal. Read straight from the ZIP (never extracted to disk).

Quirks handled: tab, ``;`` or ``,`` separators (from each header line); decimal commas; the
unit from the glucose column's name (``(mmol/L)`` or ``(mg/dL)``, any case; anything else is an
error); English and German headers (``Zeitstempel``, ``CGM-Glukosewert (mg/dl)``,
``Abgegebenes Insulin (E)``, ``Kohlenhydrataufnahme (g)``, ``Dauer (Minuten)``...); one
timestamp layout for the whole export (ISO, ``DD.MM.YYYY``, US ``MM/DD/YYYY``; the first that
reads every value); local wall-clock times without a zone (floating unless
``options.timezone`` is given; a repeated fall-back time then takes the first pass and is
flagged ``ambiguous_time``).

Mapping by stream:

- ``cgm_data`` -> CGM; ``bg_data`` -> fingersticks;
- ``bolus_data`` -> boluses (``Insulin Delivered``/``Dose``; ``Initial``/``Extended Delivery``
  give extended and dual boluses; a type naming ``auto`` -> ``automated``); its carbohydrate
  input (> 0 g) -> carbs;
- ``basal_data`` -> basal rates with durations, the type read by keyword: ``Scheduled`` /
  ``Geplant``, ``Temp`` / ``Temporär``, ``Suspend`` / ``Unterbrechung`` (rate 0), ``Auto...``
  (temporary, ``automated``); other types are errors;
- ``insulin_data`` with ``Total Bolus``/``Total Basal`` columns -> daily totals in ``meta``
  (never boluses); with a dose column, like ``manual_insulin_data`` -> injections (class from
  the insulin type: long, rapid, short, intermediate, premixed);
- ``carbs_data`` and ``food_data`` -> carbs (food name as note); ``exercise_data`` -> activity;
- ``alarms``, ``notes``, ``medication`` and unknown streams are counted in ``meta``.

The only public sample is a demo export re-formatted from the AZT1D dataset; the layout of
genuine exports is known from open-source readers only, so unknown columns are not guessed.
"""

from __future__ import annotations

import re
import zipfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

import numpy as np
import pandas as pd

from glucotwin.data.errors import DataError
from glucotwin.data.formats import Format, ImportOptions
from glucotwin.data.model import MG_DL_PER_MMOL_L, Recording
from glucotwin.data.textio import (
    first_bad,
    flag_rows,
    parse_number,
    parse_wall_clock,
    place_wall_clock,
    read_csv_table,
    read_text,
)

MEMBER = re.compile(r"^(?P<stream>[a-z_]+?)_data(?:_\d+)?\.csv$", re.IGNORECASE)
STREAMS = frozenset(
    {
        "cgm",
        "bg",
        "bolus",
        "basal",
        "insulin",
        "manual_insulin",
        "carbs",
        "food",
        "exercise",
        "alarms",
        "notes",
        "medication",
    }
)
COUNTED_ONLY = frozenset({"alarms", "notes", "medication"})
TOTALS = frozenset({"total_bolus", "total_basal", "total_insulin"})
TIME_LAYOUTS = (
    "%Y-%m-%d %H:%M:%S",
    "%Y-%m-%d %H:%M",
    "%d.%m.%Y %H:%M:%S",
    "%d.%m.%Y %H:%M",
    "%m/%d/%Y %I:%M %p",
    "%m/%d/%Y %H:%M",
    "%d/%m/%Y %H:%M",
)
UNITS = {"mmol/l": MG_DL_PER_MMOL_L, "mg/dl": 1.0}

# Column roles: regular expressions over lower-case header names (English | German).
ROLES = {
    "time": r"timestamp|zeitstempel",
    "glucose": r"(cgm glucose value|glucose value|bg value|cgm-glukosewert|glukosewert"
    r"|blutzuckerwert) \((?P<unit>[^)]*)\)",
    "serial": r"serial number|seriennummer|transmitter id",
    "delivered": r"(insulin delivered|abgegebenes insulin) \((u|e)\)",
    "dose": r"dose( \((u|units|e)\))?|value|wert",
    "initial": r"(initial delivery|anfängliche abgabe) \((u|e)\)",
    "extended": r"(extended delivery|verzögerte abgabe) \((u|e)\)",
    "carbs": r"(carbs input|carbs|kohlenhydrataufnahme|kohlenhydrate) \(g\)",
    "kind": r"insulin type|insulin-typ|insulintyp|bolus type|bolustyp|type|typ",
    "rate": r"(basal )?rate( \((u/h|units/hr|e/h)\))?|basalrate( \(e/h\))?",
    "duration": r"(duration|dauer)( \((minutes|min|minuten)\))?",
    "percent": r"(percentage|prozentsatz) \(%\)",
    "total_bolus": r"(total bolus|bolus gesamt)( \((u|e)\))?",
    "total_basal": r"(total basal|basal gesamt)( \((u|e)\))?",
    "total_insulin": r"(total insulin|insulin gesamt)( \((u|e)\))?",
    "name": r"name|food item|food|lebensmittel|exercise type|activity type|aktivität"
    r"|insulin name",
    "intensity": r"intensity|intensität",
    "energy": r"(calories burned|kalorien)( \(kcal\))?",
}
BASAL_TYPES = (  # (delivery, automated, pattern over the lower-case type); first match wins
    ("suspend", False, r"suspend|unterbrech|pause"),
    ("temporary", True, r"auto"),
    ("temporary", False, r"temp"),
    ("scheduled", False, r"sched|geplant|normal|basal"),
)
INSULIN_CLASSES = (  # first match wins, over "<type> <name>" in lower case
    ("premixed", r"mix|premix"),
    ("long", r"long|lang|basal|glargin|degludec|detemir|lantus|tresiba|levemir|toujeo"),
    ("intermediate", r"intermediate|nph"),
    ("rapid", r"rapid|fast|schnell|bolus|aspart|lispro|glulisin|novorapid|humalog|fiasp"),
    ("short", r"short|kurz|regular|normal"),
)


@dataclass(frozen=True)
class _Table:
    """One CSV member: cells (strings), file lines, where it came from and its columns."""

    stream: str
    file: str
    frame: pd.DataFrame
    lines: np.ndarray
    roles: dict[str, str]  # role -> column name

    def text(self, role: str) -> pd.Series:
        if role in self.roles:
            return self.frame[self.roles[role]].str.strip()
        return pd.Series("", index=self.frame.index, dtype="str")

    def wall(self, layouts: str | tuple[str, ...]) -> pd.Series:
        """The timestamps as naive local times, in one of ``layouts`` for the whole column."""
        return parse_wall_clock(
            self.text("time"), layouts, lines=self.lines, field=self.roles["time"], file=self.file
        )

    def number(self, role: str) -> pd.Series:
        return parse_number(
            self.text(role).str.replace(",", ".", regex=False),
            lines=self.lines,
            field=self.roles.get(role, role),
            file=self.file,
        )


def _sniff(path: Path, head: bytes) -> bool:
    if not head.startswith(b"PK\x03\x04"):
        return False
    with zipfile.ZipFile(path) as archive:
        return any(_stream(name) in STREAMS for name in archive.namelist())


def _stream(name: str) -> str | None:
    found = MEMBER.match(PurePosixPath(name).name)
    return found["stream"].lower() if found else None


def _roles(columns: list[str]) -> dict[str, str]:
    roles: dict[str, str] = {}
    for column in columns:
        key = re.sub(r"\s+", " ", column.strip().lower())
        for role, pattern in ROLES.items():
            if role not in roles and re.fullmatch(pattern, key):
                roles[role] = column
                break
    return roles


def _read_member(
    archive: zipfile.ZipFile, name: str, label: str
) -> tuple[pd.DataFrame, np.ndarray, str]:
    """The member's rows (header on line 2) with their lines, and its metadata line."""
    try:
        data = archive.read(name)
    except (zipfile.BadZipFile, OSError) as exc:
        raise DataError(f"damaged ZIP member: {exc}", file=label) from exc
    text = read_text(Path(label), data)
    rows = text.splitlines()
    if len(rows) < 2:
        return pd.DataFrame(), np.array([], dtype=int), rows[0] if rows else ""
    header = rows[1]
    sep = "\t" if "\t" in header else (";" if header.count(";") > header.count(",") else ",")
    frame, lines = read_csv_table(text, file=label, header_line=2, sep=sep)
    return frame, lines, rows[0]


def _tables(path: Path) -> tuple[list[_Table], dict]:
    try:
        archive = zipfile.ZipFile(path)
    except zipfile.BadZipFile as exc:
        raise DataError(f"not a readable ZIP archive: {exc}", file=path.name) from exc
    tables, empty, unknown, date_range = [], [], [], None
    with archive:
        for name in sorted(archive.namelist()):
            stream = _stream(name)
            if name.endswith("/") or not name.lower().endswith(".csv"):
                continue
            label = f"{path.name}/{name}"
            if stream not in STREAMS:
                unknown.append(name)
                continue
            frame, lines, first = _read_member(archive, name, label)
            found = re.search(r"(?:Date Range|Datumsbereich):\s*(.+?)\s*$", first)
            date_range = date_range or (found[1] if found else None)
            if len(frame) == 0:
                empty.append(name)
                continue
            roles = _roles(list(frame.columns))
            if "time" not in roles:
                raise DataError("no 'Timestamp' column", file=label, line=2, field="Timestamp")
            tables.append(_Table(stream, label, frame, lines, roles))
    if not tables and not empty:
        raise DataError("no Glooko stream files (…_data_1.csv) in the ZIP", file=path.name)
    info = {"date_range": date_range, "empty_files": empty, "unrecognised_files": unknown}
    return tables, info


def _layout(tables: list[_Table]) -> str:
    """The first timestamp layout that reads every timestamp of the export."""
    texts = pd.concat([t.text("time") for t in tables], ignore_index=True)
    for layout in TIME_LAYOUTS:
        if pd.to_datetime(texts, format=layout, errors="coerce").notna().all():
            return layout
    for table in tables:  # raises at the first value that no layout reads
        table.wall(TIME_LAYOUTS)
    raise DataError("timestamps of the files need different layouts", field="Timestamp")


def _base(table: _Table, layout: str, options: ImportOptions, subject: str) -> pd.DataFrame:
    wall = table.wall(layout)
    time, offset, ambiguous = place_wall_clock(
        wall,
        options.timezone,
        lines=table.lines,
        field=table.roles["time"],
        file=table.file,
        ambiguous="first",
    )
    return pd.DataFrame(
        {
            "time": time,
            "utc_offset_min": offset,
            "subject": subject,
            "device": table.text("serial").replace("", pd.NA),
            "source_file": table.file,
            "source_line": table.lines,
            "flag": flag_rows(ambiguous, "ambiguous_time"),
        }
    )


def _glucose(table: _Table, base: pd.DataFrame, source: str) -> pd.DataFrame:
    if "glucose" not in table.roles:
        raise DataError("no glucose value column", file=table.file, line=2, field="Glucose")
    column = table.roles["glucose"]
    unit = re.fullmatch(ROLES["glucose"], re.sub(r"\s+", " ", column.strip().lower()))["unit"]
    if unit.strip() not in UNITS:
        raise DataError(
            f"unknown glucose unit {unit!r} (expected mg/dL or mmol/L)",
            file=table.file,
            line=2,
            field=column,
        )
    value = table.number("glucose")
    missing = value.isna().to_numpy()
    if missing.any():
        raise DataError(
            "glucose value is missing",
            file=table.file,
            line=first_bad(missing, table.lines),
            field=column,
        )
    return base.assign(glucose_mg_dl=value * UNITS[unit.strip()], source=source)


def _boluses(table: _Table, base: pd.DataFrame) -> pd.DataFrame:
    units = table.number("delivered" if "delivered" in table.roles else "dose")
    initial, extended = table.number("initial"), table.number("extended")
    units = units.fillna(initial.fillna(0) + extended).where(units.notna() | extended.notna())
    has_extended = (extended > 0).to_numpy()
    delivery = np.where(has_extended & (initial > 0).to_numpy(), "dual", "normal")
    delivery = np.where(has_extended & ~(initial > 0).to_numpy(), "extended", delivery)
    return base.assign(
        event="bolus",
        delivery=delivery,
        units_u=units,
        extended_units_u=extended.where(has_extended),
        automated=table.text("kind").str.lower().str.contains("auto").to_numpy(),
    )


def _basal(table: _Table, base: pd.DataFrame) -> pd.DataFrame:
    kind = table.text("kind").str.lower()
    delivery = pd.Series(pd.NA, index=kind.index, dtype="string").mask(kind == "", "scheduled")
    automated = pd.Series(False, index=kind.index)
    for name, auto, pattern in reversed(BASAL_TYPES):  # the first pattern is applied last
        hit = kind.str.contains(pattern)
        delivery, automated = delivery.mask(hit, name), automated.mask(hit, auto)
    unknown = delivery.isna().to_numpy()
    if unknown.any():
        raise DataError(
            f"unknown basal type {table.text('kind')[unknown].iloc[0]!r} (scheduled, temp, "
            "suspend, automated)",
            file=table.file,
            line=first_bad(unknown, table.lines),
            field=table.roles.get("kind"),
        )
    rate = table.number("rate").where(delivery != "suspend", 0.0)
    percent = table.number("percent")
    return base.assign(
        event="basal",
        delivery=delivery,
        automated=automated,
        rate_u_per_h=rate,
        duration_min=table.number("duration"),
        flag=base["flag"].where(
            rate.notna() | percent.isna(),
            ("percent=" + percent.astype("string").str.removesuffix(".0")),
        ),
    )


def _injections(table: _Table, base: pd.DataFrame) -> pd.DataFrame:
    label = (table.text("kind") + " " + table.text("name")).str.lower()
    insulin_class = pd.Series("unknown", index=label.index, dtype="str")
    for name, pattern in reversed(INSULIN_CLASSES):  # the first pattern is applied last
        insulin_class = insulin_class.mask(label.str.contains(pattern), name)
    return base.assign(
        event="bolus",
        delivery="normal",
        units_u=table.number("dose"),
        insulin_class=insulin_class,
        insulin_name=(
            table.text("name").where(table.text("name") != "", table.text("kind"))
        ).replace("", pd.NA),
    )


def _daily_totals(table: _Table, layout: str) -> dict[str, dict[str, float]]:
    day = table.wall(layout).dt.date
    totals = pd.DataFrame(
        {
            role.removeprefix("total_") + "_u": table.number(role)
            for role in sorted(TOTALS & set(table.roles))
        }
    )
    return {
        d.isoformat(): {k: float(v) for k, v in row.items() if not np.isnan(v)}
        for d, row in zip(day, totals.to_dict("records"), strict=True)
    }


def _read(path: Path, options: ImportOptions) -> Recording:
    tables, info = _tables(path)
    subject = options.subject if options.subject is not None else path.stem
    layout = _layout(tables) if tables else TIME_LAYOUTS[0]
    parts: dict[str, list[pd.DataFrame]] = {
        "glucose": [],
        "insulin": [],
        "carbs": [],
        "activity": [],
    }
    counted: dict[str, int] = {}
    daily: dict[str, dict[str, float]] = {}
    for table in tables:
        stream = table.stream
        if stream in COUNTED_ONLY:
            counted[stream] = counted.get(stream, 0) + len(table.frame)
            continue
        if stream == "insulin" and TOTALS & set(table.roles):
            daily.update(_daily_totals(table, layout))
            continue
        base = _base(table, layout, options, subject)
        if stream in ("cgm", "bg"):
            parts["glucose"].append(
                _glucose(table, base, "cgm" if stream == "cgm" else "fingerstick")
            )
        elif stream == "bolus":
            parts["insulin"].append(_boluses(table, base))
            grams = table.number("carbs")
            eaten = (grams > 0).to_numpy()
            parts["carbs"].append(base[eaten].assign(carbs_g=grams[eaten]))
        elif stream == "basal":
            parts["insulin"].append(_basal(table, base))
        elif stream in ("insulin", "manual_insulin"):
            parts["insulin"].append(_injections(table, base))
        elif stream in ("carbs", "food"):
            parts["carbs"].append(
                base.assign(
                    carbs_g=table.number("carbs"), note=table.text("name").replace("", pd.NA)
                )
            )
        else:  # exercise
            parts["activity"].append(
                base.assign(
                    activity_type=table.text("name").str.lower().replace("", pd.NA),
                    intensity=table.text("intensity").str.lower().replace("", pd.NA),
                    duration_min=table.number("duration"),
                    energy_kcal=table.number("energy"),
                )
            )
    units = sorted(
        {re.search(r"\(([^)]*)\)", t.roles["glucose"])[1] for t in tables if "glucose" in t.roles}
    )
    meta = {
        "format": "glooko",
        "glucose_unit": units[0] if len(units) == 1 else units,
        "timezone": options.timezone,
        "timestamp_layout": layout,
        "files": {t.file.removeprefix(f"{path.name}/"): len(t.frame) for t in tables},
        **info,
        "not_imported": counted,
        "daily_insulin_totals": daily,
    }
    tables_out = {
        name: pd.concat(frames, ignore_index=True) if frames else None
        for name, frames in parts.items()
    }
    return Recording.build(**tables_out, meta=meta, file=path.name)


FORMAT = Format(
    name="glooko",
    description="Glooko export ZIP (cgm, bg, bolus, basal, insulin, carbs, food, exercise CSVs)",
    sniff=_sniff,
    read=_read,
    extensions=(".zip",),
)
