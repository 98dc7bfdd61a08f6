"""ShanghaiT1DM and ShanghaiT2DM: one Excel workbook per recording period.

Source: Q. Zhao, J. Zhu, X. Shen et al., "Chinese diabetes datasets for data-driven machine
learning", Scientific Data 10, 35 (2023), doi:10.1038/s41597-023-01940-7. Files
``Shanghai_T1DM/PPPP_k_YYYYMMDD.xls[x]`` and ``Shanghai_T2DM/...`` (patient, period index, start
date; legacy ``.xls`` read with xlrd, ``.xlsx`` with openpyxl), one sheet each, header in row 1.
``source_line`` is the Excel row number (the header is row 1).

Columns (recognised by their text, case and spacing ignored, so every variant of the release
reads: units missing with trailing spaces in ``2045_0``/``2095_0``, ``(Novolin R  IU)`` in
``2001_0``, ``进食量`` for ``饮食``, the basal column named ``胰岛素泵基础量`` in ``2027_0``):

- ``Date`` -> time: Excel date-time, local time in Shanghai. The dataset is from Shanghai
  hospitals, so without ``ImportOptions.timezone`` ``Asia/Shanghai`` (UTC+8, no daylight saving)
  is used and ``meta["timezone_source"]`` says so. Excel stores a time as a fraction of a day;
  times are rounded to the second to drop the float noise.
- ``CGM (mg / dl)`` -> CGM readings (mg/dL; the values are mmol/L × 18). The sensor's floor is
  2.2 mmol/L = 39.6 mg/dL: the lowest value in the release, 5 times as frequent as the next one
  (485 vs 91 readings), so a reading of 39.6 is censored ``"below"`` and a lower value is an
  error. No upper pile-up exists (the largest value is 475.2), so none is marked ``"above"``.
- ``CBG (mg / dl)`` -> fingersticks. A positive value outside the 20–600 mg/dL measuring range
  of blood glucose meters cannot be a meter reading (``2044_0`` row 193: 2044.8, a slip of the
  decimal point); it is not stored as glucose but listed in ``meta["cbg_rejected"]`` with its
  row and value; zero or less is an error.
- Excel error cells (``2041_0``: ``#VALUE!`` three times in the CBG column; xlrd reports error
  code 15 as the cell value, which a naive reader takes for 15 mg/dL) hold no value: they are
  listed in ``meta["ignored_cells"]``.
- ``Blood Ketone (mmol / L)`` -> ``meta["blood_ketone_mmol_l"]`` (time, row, value): the model has
  no ketone table.
- ``Dietary intake`` (English free text: foods and weights) -> carbs rows with ``carbs_g``
  missing and the text in ``note`` (no carbohydrate grams exist and none are guessed); where
  the English cell is empty the Chinese one (``饮食``/``进食量``) is used. ``data not available``
  (Chinese ``未记录``) marks a meal whose content was not recorded: the row is kept, flagged
  ``meal_content_not_recorded``. Otherwise the Chinese text, a translation, is dropped.
- ``Insulin dose - s.c.`` (``Novolin R, 3 IU``; several doses in one cell separated by ``,``
  or ``;``) -> one bolus per dose with ``insulin_name`` and ``insulin_class`` from
  :data:`INSULINS` (every insulin named in the release); an unknown name gets class
  ``"unknown"`` and flag ``unknown_insulin``.
- ``CSII - bolus insulin (Novolin R, IU)`` -> pump boluses; ``CSII - basal insulin (Novolin R,
  IU / H)`` -> basal rates (U/h) from that time until the next entry. The insulin named in the
  header is kept as ``insulin_name``; these rows have ``device="insulin pump (CSII)"`` (the
  s.c. and i.v. rows leave ``device`` empty). ``temporarily suspend insulin delivery`` in
  either column -> basal ``delivery="suspend"`` at rate 0 (in the bolus column also flagged
  ``suspend_in_bolus_column``). A drug dose written in a CSII column (``acarbose 50 mg`` in
  ``2078_1``) is listed with the non-insulin agents.
- ``Insulin dose - i.v.`` (``500ml 5% glucose, 12 IU Novolin R, 10 ml 10% potassium chloride``)
  -> a bolus with ``route="iv"`` for each ``N IU <insulin>`` it names, flagged ``iv_infusion``
  (the infusion's duration is not recorded); every i.v. text is also kept in
  ``meta["iv_infusions"]``. A cell holding a column header's text instead of a dose
  (``2027_0``) is listed in ``meta["ignored_cells"]``.
- ``Non-insulin hypoglycemic agents`` (``metformin 500 mg, acarbose 50 mg``) ->
  ``meta["non_insulin_agents"]`` (time, row, text): the model has no medication table, and a
  carbs row would misrepresent a drug.
- Rows without a date after the last dated row (``2029_0``: 92 such rows, the last holding a
  basal value) cannot be placed in time: they are dropped and listed in
  ``meta["undated_rows_dropped"]``; an undated row with values between dated rows is an error.

Subject: ``shanghai-PPPP`` from the file name (``ImportOptions.subject`` overrides); period index,
start date (as named), record id, sheet name (``2014_0``'s sheet is named ``2014_1_20210317``)
and the first row's local time go to ``meta`` (the named start differs from the first row in
``1010_0``, ``2017_0``, ``2098_0`` by days and in ``2094_0_20211109`` by a year: its rows are
dated November 2020; the rows' dates are kept). When the summary workbook
``Shanghai_T1DM_Summary.xlsx``/``Shanghai_T2DM_Summary.xlsx`` sits next to the period's folder,
that period's row (age, sex, diabetes type, HbA1c, laboratory results, medications) is attached
as ``meta["clinical"]``. The summary workbook itself is not a time series: importing it gives a
recording without rows whose ``meta["clinical"]`` holds every row, keyed by subject
(``shanghai-PPPP``) and then period index (``"0"``, ``"1"``...; JSON keys are text), each with
its ``record_id``, ``period_start`` and Excel ``row``. Numbers stay numbers; ``/`` (not measured)
is ``None``; ``sex`` is ``"female"``/``"male"`` (coded 1/2). A row whose patient number is not a
record id ``PPPP_k_YYYYMMDD``, or a period given twice, is an error.
"""

from __future__ import annotations

import io
import re
from datetime import datetime
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
import openpyxl
import pandas as pd
import xlrd

from glucotwin.data.errors import DataError
from glucotwin.data.formats import Format, ImportOptions
from glucotwin.data.model import Recording
from glucotwin.data.textio import first_bad, parse_number_cells, place_wall_clock

DATASET = "ShanghaiT1DM/T2DM (Zhao et al. 2023, doi:10.1038/s41597-023-01940-7)"
XLS_MAGIC = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"  # OLE2 compound file (legacy Excel)
XLSX_MAGIC = b"PK\x03\x04"  # zip container (Office Open XML)
DATASET_TIMEZONE = "Asia/Shanghai"
CGM_FLOOR_MG_DL = 39.6  # 2.2 mmol/L × 18, see the module docstring
METER_RANGE_MG_DL = (20.0, 600.0)
PUMP_DEVICE = "insulin pump (CSII)"
SUSPEND_TEXT = "temporarily suspend insulin delivery"
NOT_RECORDED = frozenset({"data not available", "未记录"})
RECORD_NAME = re.compile(r"(?P<patient>\d+)_(?P<period>\d+)_(?P<start>\d{8})")

# Header patterns (lower case, runs of white space collapsed), by role.
COLUMNS: dict[str, re.Pattern[str]] = {
    "date": re.compile(r"date"),
    "cgm": re.compile(r"cgm(?: \(mg / dl\))?"),
    "cbg": re.compile(r"cbg(?: \(mg / dl\))?"),
    "ketone": re.compile(r"blood ketone(?: \(mmol / l\))?"),
    "diet": re.compile(r"dietary intake"),
    "diet_zh": re.compile(r"饮食|进食量"),
    "sc": re.compile(r"insulin dose - s\.c\."),
    "agents": re.compile(r"non-insulin hypoglycemic agents"),
    "bolus": re.compile(r"csii - bolus insulin(?: \((?P<insulin>[^,()]+?),? iu\))?"),
    "basal": re.compile(
        r"(?:csii - basal insulin|胰岛素泵基础量)(?: \((?P<insulin>[^,()]+?),? iu / h\))?"
    ),
    "iv": re.compile(r"insulin dose - i\.v\."),
}
# The start of each header, to tell a known column with an unknown unit from a stranger.
COLUMN_STARTS = {
    "cgm": "cgm",
    "cbg": "cbg",
    "ketone": "blood ketone",
    "bolus": "csii - bolus insulin",
    "basal": "csii - basal insulin",
}

# Every insulin named in the release -> (name as written by its maker, class). Classes by
# time-action profile: rapid-acting analogues (aspart, glulisine), short-acting regular human
# insulin (Novolin R, Humulin R, Gansulin R), long-acting analogues (glargine, detemir,
# degludec), premixed regular/NPH (Humulin 70/30, Novolin 30R/50R, Gansulin 40R, SciLin M30)
# and premixed analogue (insulin aspart 70/30 = 30 % aspart, 70 % protamine aspart).
INSULINS: dict[str, tuple[str, str]] = {
    "novolin r": ("Novolin R", "short"),
    "humulin r": ("Humulin R", "short"),
    "gansulin r": ("Gansulin R", "short"),
    "insulin aspart": ("insulin aspart", "rapid"),
    "insulin glulisine": ("insulin glulisine", "rapid"),
    "insulin glargine": ("insulin glargine", "long"),
    "insulin glarigine": ("insulin glargine", "long"),  # misspelt in the release
    "insulin detemir": ("insulin detemir", "long"),
    "insulin degludec": ("insulin degludec", "long"),
    "insulin aspart 70/30": ("insulin aspart 70/30", "premixed"),
    "humulin 70/30": ("Humulin 70/30", "premixed"),
    "novolin 30r": ("Novolin 30R", "premixed"),
    "novolin 50r": ("Novolin 50R", "premixed"),
    "gansulin 40r": ("Gansulin 40R", "premixed"),
    "scilin m30": ("SciLin M30", "premixed"),
}
SC_DOSE = re.compile(r"(?P<name>[A-Za-z][A-Za-z0-9 /-]*?) ?,? ?(?P<units>\d+(?:\.\d+)?) ?IU")
SC_CELL = re.compile(r"(?:[A-Za-z][A-Za-z0-9 /-]*? ?,? ?\d+(?:\.\d+)? ?IU ?[,;]? ?)+")
IV_DOSE = re.compile(r"(?P<units>\d+(?:\.\d+)?) ?IU (?P<name>[A-Za-z][A-Za-z0-9 /-]*?) ?(?:,|$)")
DRUG_DOSE = re.compile(r"[a-z][a-z /-]*,? \d+(?:\.\d+)? ?m?g", re.IGNORECASE)

# Summary workbook header (lower case, white space collapsed) -> meta key. "Uric Acid (mmol/L)"
# holds 188–342: values of µmol/L (reference range 150–420 µmol/L), so the key says umol_l.
SUMMARY_FIELDS = {
    "patient number": "record_id",
    "gender (female=1, male=2)": "sex",
    "age (years)": "age_years",
    "height (m)": "height_m",
    "weight (kg)": "weight_kg",
    "bmi (kg/m2)": "bmi_kg_m2",
    "smoking history (pack year)": "smoking_pack_years",
    "alcohol drinking history (drinker/non-drinker)": "alcohol",
    "type of diabetes": "diabetes_type",
    "duration of diabetes (years)": "diabetes_duration_years",
    "acute diabetic complications": "acute_complications",
    "diabetic macrovascular complications": "macrovascular_complications",
    "diabetic microvascular complications": "microvascular_complications",
    "comorbidities": "comorbidities",
    "hypoglycemic agents": "hypoglycemic_agents",
    "other agents": "other_agents",
    "fasting plasma glucose (mg/dl)": "fasting_plasma_glucose_mg_dl",
    "2-hour postprandial plasma glucose (mg/dl)": "postprandial_2h_plasma_glucose_mg_dl",
    "fasting c-peptide (nmol/l)": "fasting_c_peptide_nmol_l",
    "2-hour postprandial c-peptide (nmol/l)": "postprandial_2h_c_peptide_nmol_l",
    "fasting insulin (pmol/l)": "fasting_insulin_pmol_l",
    "2-hour postprandial insulin (pmol/l)": "postprandial_2h_insulin_pmol_l",
    "hba1c (mmol/mol)": "hba1c_mmol_mol",
    "glycated albumin (%)": "glycated_albumin_percent",
    "total cholesterol (mmol/l)": "total_cholesterol_mmol_l",
    "triglyceride (mmol/l)": "triglyceride_mmol_l",
    "high-density lipoprotein cholesterol (mmol/l)": "hdl_cholesterol_mmol_l",
    "low-density lipoprotein cholesterol (mmol/l)": "ldl_cholesterol_mmol_l",
    "creatinine (umol/l)": "creatinine_umol_l",
    "estimated glomerular filtration rate (ml/min/1.73m2)": "egfr_ml_min_1_73m2",
    "uric acid (mmol/l)": "uric_acid_umol_l",
    "blood urea nitrogen (mmol/l)": "blood_urea_nitrogen_mmol_l",
    "hypoglycemia (yes/no)": "hypoglycemia",
}
SEX = {1: "female", 2: "male"}
NOT_MEASURED = "/"
EXCEL_ERRORS = frozenset({"#NULL!", "#DIV/0!", "#VALUE!", "#REF!", "#NAME?", "#NUM!", "#N/A"})


def _normalise(header: object) -> str:
    return " ".join(str(header).replace("\xa0", " ").split()).lower()


def _sheet(path: Path) -> tuple[str, list[list[Any]]]:
    """Name and rows of the first sheet: Python values, dates as datetimes, empty as None."""
    with path.open("rb") as handle:
        head = handle.read(8)
    try:
        if head.startswith(XLS_MAGIC):
            return _xls_sheet(path)
        if head.startswith(XLSX_MAGIC):
            return _xlsx_sheet(path)
    except Exception as exc:  # xlrd and openpyxl fail in many ways on a damaged container
        raise DataError(f"cannot read the workbook: {exc}", file=path.name) from exc
    raise DataError("not an Excel workbook (.xls or .xlsx)", file=path.name)


def _xls_sheet(path: Path) -> tuple[str, list[list[Any]]]:
    book = xlrd.open_workbook(path, on_demand=True, logfile=io.StringIO())
    sheet = book.sheet_by_index(0)
    columns = []
    for c in range(sheet.ncols):
        values = sheet.col_values(c)
        for r, kind in enumerate(sheet.col_types(c)):
            if kind in (xlrd.XL_CELL_EMPTY, xlrd.XL_CELL_BLANK):
                values[r] = None
            elif kind == xlrd.XL_CELL_DATE:
                values[r] = xlrd.xldate.xldate_as_datetime(values[r], book.datemode)
            elif kind == xlrd.XL_CELL_ERROR:
                values[r] = xlrd.error_text_from_code.get(values[r], "#ERROR")
        columns.append(values)
    return sheet.name, [list(row) for row in zip(*columns, strict=True)]


def _xlsx_sheet(path: Path) -> tuple[str, list[list[Any]]]:
    book = openpyxl.load_workbook(path, read_only=True, data_only=True)
    try:
        sheet = book.worksheets[0]
        rows = [list(row) for row in sheet.iter_rows(values_only=True)]
        return sheet.title, rows
    finally:
        book.close()


def _first_row(path: Path) -> list[str]:
    """The header row of the first sheet, read without loading the whole workbook."""
    with path.open("rb") as handle:
        head = handle.read(8)
    if head.startswith(XLS_MAGIC):
        sheet = xlrd.open_workbook(path, on_demand=True, logfile=io.StringIO()).sheet_by_index(0)
        return [_normalise(v) for v in sheet.row_values(0)] if sheet.nrows else []
    book = openpyxl.load_workbook(path, read_only=True, data_only=True)
    try:
        first = next(book.worksheets[0].iter_rows(values_only=True, max_row=1), ())
    finally:
        book.close()
    return [_normalise(v) for v in first if v is not None]


def _is_summary(header: list[str]) -> bool:
    return bool(header) and header[0] == "patient number" and "type of diabetes" in header


def _sniff(path: Path, head: bytes) -> bool:
    if path.suffix.lower() not in (".xls", ".xlsx"):
        return False
    if not (head.startswith(XLS_MAGIC) or head.startswith(XLSX_MAGIC)):
        return False
    header = _first_row(path)
    is_period = bool(header) and header[0] == "date" and any(h.startswith("cgm") for h in header)
    return is_period or _is_summary(header)


def _roles(header: list[Any], file: str) -> tuple[dict[str, int], dict[str, str | None]]:
    """Column index of each role and the insulin named in the CSII headers."""
    roles: dict[str, int] = {}
    insulin: dict[str, str | None] = {}
    for index, raw in enumerate(header):
        if raw is None:
            continue
        text = _normalise(raw)
        role = next((r for r, p in COLUMNS.items() if p.fullmatch(text)), None)
        if role is None:
            known = next((r for r, s in COLUMN_STARTS.items() if text.startswith(s)), None)
            problem = "unknown unit in the header" if known else "unknown column"
            raise DataError(problem, file=file, line=1, field=str(raw))
        if role in roles:
            raise DataError("column appears twice in the header", file=file, line=1, field=str(raw))
        roles[role] = index
        if role in ("bolus", "basal"):
            named = COLUMNS[role].fullmatch(text).group("insulin")
            insulin[role] = INSULINS.get(named, (named, ""))[0] if named else None
    for required, field in (("date", "Date"), ("cgm", "CGM (mg / dl)")):
        if required not in roles:
            raise DataError("column missing from the header", file=file, line=1, field=field)
    return roles, insulin


def _read(path: Path, options: ImportOptions) -> Recording:
    name = path.name
    sheet_name, rows = _sheet(path)
    if not rows:
        raise DataError("the sheet is empty", file=name, line=1)
    if _is_summary([_normalise(v) for v in rows[0] if v is not None]):
        return _read_summary(path, sheet_name, rows)
    header = rows[0]
    roles, pump_insulin = _roles(header, name)
    headers = {role: str(header[i]).strip() for role, i in roles.items()}
    columns: dict[str, list[Any]] = {}
    ignored: list[dict[str, Any]] = []
    for role, index in roles.items():
        values = [row[index] if index < len(row) else None for row in rows[1:]]
        # Excel error values (2041_0 has three #VALUE! in the CBG column) hold no reading.
        ignored += [
            {"row": r + 2, "column": headers[role], "value": v, "reason": "Excel error value"}
            for r, v in enumerate(values)
            if v.__class__ is str and v.strip() in EXCEL_ERRORS
        ]
        columns[role] = [
            None if _is_empty(v) or (v.__class__ is str and v.strip() in EXCEL_ERRORS) else v
            for v in values
        ]
    cells = pd.DataFrame(columns, dtype=object)
    cells["row"] = np.arange(len(cells)) + 2
    ignored.sort(key=lambda item: item["row"])

    empty = cells.drop(columns="row").isna().all(axis=1).to_numpy()
    undated = cells["date"].isna().to_numpy()
    dated_rows = np.flatnonzero(~undated)
    if len(dated_rows) == 0:
        raise DataError("no dated rows", file=name, line=2, field=headers["date"])
    inside = undated & ~empty & (np.arange(len(cells)) < dated_rows[-1])
    if inside.any():
        raise DataError(
            "a row with values has no date",
            file=name,
            line=first_bad(inside, cells["row"]),
            field=headers["date"],
        )
    trailing = undated & ~empty
    dropped = [
        {
            "row": int(r["row"]),
            **{headers[k]: _json(v) for k, v in r.items() if k != "row" and not _is_empty(v)},
        }
        for r in cells[trailing].to_dict("records")
    ]
    cells = cells[~undated].reset_index(drop=True)
    lines = cells["row"].to_numpy()

    wall = _dates(cells["date"], lines, headers["date"], name)
    timezone = options.timezone or DATASET_TIMEZONE
    time, offset, _ = place_wall_clock(
        wall, timezone, lines=lines, field=headers["date"], file=name
    )
    record = RECORD_NAME.fullmatch(path.stem)
    patient = record.group("patient") if record else path.stem
    subject = options.subject or f"shanghai-{patient}"
    base = pd.DataFrame(
        {"time": time, "utc_offset_min": offset, "subject": subject, "source_line": lines}
    )
    local = wall.dt.strftime("%Y-%m-%dT%H:%M:%S")

    def column(role: str) -> pd.Series:
        return cells[role] if role in cells else pd.Series(None, index=cells.index, dtype=object)

    def number(role: str) -> pd.Series:
        return parse_number_cells(
            column(role), lines=lines, field=headers.get(role, role), file=name
        )

    def listed(values: pd.Series) -> list[dict[str, Any]]:
        """Present values with the local time and row they were written at."""
        present = values.dropna()
        return [
            {"time": local[i], "row": int(lines[i]), "value": _json(v)} for i, v in present.items()
        ]

    glucose, cbg_rejected = _glucose(base, number("cgm"), number("cbg"), lines, headers, name)
    pump, misplaced = _pump(
        base, column("bolus"), column("basal"), pump_insulin, lines, headers, name
    )
    agents = pd.concat([_texts(column("agents")).dropna(), misplaced]).sort_index()
    iv_text = _texts(column("iv"))
    header_text = iv_text.notna().to_numpy().copy()
    header_text[header_text] = [
        any(p.fullmatch(_normalise(t)) for p in COLUMNS.values()) for t in iv_text.dropna()
    ]
    insulin = pd.concat(
        [
            _sc_doses(base, _texts(column("sc")), lines, headers.get("sc", ""), name),
            pump,
            _iv_doses(base, iv_text.where(~header_text)),
        ],
        ignore_index=True,
    )
    summary = _summary_row(path, record.group(0) if record else path.stem)
    meta: dict[str, Any] = {
        "format": "shanghai",
        "dataset": DATASET,
        "record_id": path.stem,
        "patient": patient,
        "period": int(record.group("period")) if record else None,
        "period_start": pd.Timestamp(record.group("start")).date().isoformat() if record else None,
        "first_reading": local.iloc[0],
        "sheet": sheet_name,
        "timezone": timezone,
        "timezone_source": "ImportOptions.timezone"
        if options.timezone
        else "dataset: hospitals in Shanghai, China (China Standard Time, UTC+8)",
        "cgm_floor_mg_dl": CGM_FLOOR_MG_DL,
        "blood_ketone_mmol_l": listed(number("ketone")),
        "non_insulin_agents": listed(agents),
        "iv_infusions": listed(iv_text.where(~header_text)),
        "ignored_cells": ignored
        + [
            {**item, "column": headers["iv"], "reason": "a column header, not a dose"}
            for item in listed(iv_text.where(header_text))
        ],
        "cbg_rejected": cbg_rejected,
        "undated_rows_dropped": dropped,
    }
    if summary is not None:
        meta["clinical"], meta["clinical_source"] = summary
    return Recording.build(
        glucose=glucose,
        insulin=insulin,
        carbs=_meals(base, column("diet"), column("diet_zh")),
        meta=meta,
        file=name,
    )


def _is_empty(value: Any) -> bool:
    if isinstance(value, str):
        return not value.strip()
    return value is None or (isinstance(value, float) and np.isnan(value))


def _json(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, np.generic):
        return value.item()
    return value.strip() if isinstance(value, str) else value


def _texts(values: pd.Series) -> pd.Series:
    """Non-empty text cells, white space (also no-break spaces) collapsed; others missing."""
    text = [
        None if v is None or v != v else " ".join(str(v).replace("\xa0", " ").split()) or None
        for v in values
    ]
    return pd.Series(text, index=values.index, dtype="string")


def _dates(values: pd.Series, lines: np.ndarray, field: str, file: str) -> pd.Series:
    is_date = np.array([isinstance(v, datetime) for v in values], dtype=bool)
    if not is_date.all():
        bad = np.flatnonzero(~is_date)[0]
        raise DataError(
            f"{values.iloc[bad]!r} is not a date-time", file=file, line=int(lines[bad]), field=field
        )
    return pd.Series(pd.to_datetime(list(values)), index=values.index).dt.round("s")


def _glucose(base, cgm, cbg, lines, headers, file) -> tuple[pd.DataFrame, list[dict]]:
    below = (cgm < CGM_FLOOR_MG_DL - 1e-9).to_numpy()
    if below.any():
        raise DataError(
            f"{cgm[below].iloc[0]:g} mg/dL is below the sensor's floor of 39.6 mg/dL",
            file=file,
            line=first_bad(below, lines),
            field=headers["cgm"],
        )
    has_cgm = cgm.notna().to_numpy()
    censored = np.where(np.isclose(cgm, CGM_FLOOR_MG_DL), "below", "")
    impossible = (cbg <= 0).to_numpy()
    if impossible.any():
        raise DataError(
            f"{cbg[impossible].iloc[0]:g} mg/dL is not a glucose value",
            file=file,
            line=first_bad(impossible, lines),
            field=headers["cbg"],
        )
    low, high = METER_RANGE_MG_DL
    outside = (cbg.notna() & ((cbg < low) | (cbg > high))).to_numpy()
    has_cbg = cbg.notna().to_numpy() & ~outside
    rejected = [
        {"row": int(r), "value": float(v), "reason": "outside the 20–600 mg/dL meter range"}
        for r, v in zip(lines[outside], cbg[outside], strict=True)
    ]
    table = pd.concat(
        [
            base[has_cgm].assign(glucose_mg_dl=cgm[has_cgm], censored=censored[has_cgm]),
            base[has_cbg].assign(glucose_mg_dl=cbg[has_cbg], source="fingerstick"),
        ],
        ignore_index=True,
    )
    return table, rejected


def _meals(base: pd.DataFrame, english: pd.Series, chinese: pd.Series) -> pd.DataFrame:
    note = _texts(english).fillna(_texts(chinese))
    has = note.notna().to_numpy()
    unknown = note.str.lower().isin(NOT_RECORDED).fillna(False).to_numpy(dtype=bool)
    flag = pd.Series("meal_content_not_recorded", index=note.index, dtype="string")
    return base[has].assign(note=note[has], flag=flag.where(unknown)[has])


def _sc_doses(base, text: pd.Series, lines, field, file) -> pd.DataFrame:
    present = text.dropna()
    whole = present.str.fullmatch(SC_CELL.pattern).to_numpy(dtype=bool)
    if not whole.all():
        bad = np.flatnonzero(~whole)[0]
        raise DataError(
            f"cannot read the insulin dose {present.iloc[bad]!r} (expected "
            "'<insulin>, <units> IU')",
            file=file,
            line=int(lines[present.index[bad]]),
            field=field,
        )
    doses = present.str.extractall(SC_DOSE.pattern).droplevel("match")
    return _insulin_rows(base.loc[doses.index], doses["name"], doses["units"], "sc", [])


def _iv_doses(base, text: pd.Series) -> pd.DataFrame:
    doses = text.dropna().str.extractall(IV_DOSE.pattern).droplevel("match")
    return _insulin_rows(
        base.loc[doses.index], doses["name"], doses["units"], "iv", ["iv_infusion"]
    )


def _insulin_rows(base, name: pd.Series, units: pd.Series, route: str, flags: list[str]):
    """Bolus rows of named insulins, classed by :data:`INSULINS`."""
    key = name.map(_normalise).to_numpy()
    known = np.isin(key, list(INSULINS))
    unknown_flag = ";".join([*flags, "unknown_insulin"])
    return base.assign(
        event="bolus",
        delivery="normal",
        units_u=units.astype("float64").to_numpy(),
        insulin_name=[
            INSULINS[k][0] if k in INSULINS else n.strip() for k, n in zip(key, name, strict=True)
        ],
        insulin_class=[INSULINS[k][1] if k in INSULINS else "unknown" for k in key],
        route=route,
        flag=pd.Series(
            np.where(known, ";".join(flags) or None, unknown_flag), index=base.index, dtype="string"
        ),
    )


def _pump(base, bolus, basal, insulin, lines, headers, file) -> tuple[pd.DataFrame, pd.Series]:
    """Pump boluses, basal rates and suspends, and drug doses misplaced in the bolus column."""
    read = {}
    for role, values in (("bolus", bolus), ("basal", basal)):
        is_text = np.array([v.__class__ is str for v in values], dtype=bool)
        text = _texts(values[is_text])  # the few text cells only
        number_text = text.str.fullmatch(r"\d+(?:\.\d+)?").to_numpy(dtype=bool)
        suspend_text = (text.str.lower() == SUSPEND_TEXT).to_numpy(dtype=bool)
        drug = text.str.fullmatch(DRUG_DOSE.pattern, case=False).to_numpy(dtype=bool)
        drug &= role == "bolus"
        unknown = ~number_text & ~suspend_text & ~drug
        if unknown.any():
            raise DataError(
                f"{text[unknown].iloc[0]!r} is neither a dose nor a suspend",
                file=file,
                line=int(lines[text.index[unknown][0]]),
                field=headers[role],
            )
        number = parse_number_cells(
            values.mask(values.index.isin(text.index[~number_text]), None),
            lines=lines,
            field=headers.get(role, role),
            file=file,
        )
        suspend = values.index.isin(text.index[suspend_text])
        read[role] = (number, suspend, text[drug])
    (bolus_u, suspend_in_bolus, misplaced), (rate, suspend, _) = read["bolus"], read["basal"]
    suspend = suspend | suspend_in_bolus

    def named(role: str) -> dict[str, Any]:
        name = insulin.get(role)
        insulin_class = INSULINS.get(_normalise(name), (name, "unknown"))[1] if name else None
        return {
            "insulin_name": name,
            "insulin_class": insulin_class or "unknown",
            "device": PUMP_DEVICE,
        }

    flag = pd.Series("suspend_in_bolus_column", index=base.index, dtype="string")
    has_bolus, has_rate = bolus_u.notna().to_numpy(), rate.notna().to_numpy()
    events = pd.concat(
        [
            base[has_bolus].assign(
                event="bolus", delivery="normal", units_u=bolus_u[has_bolus], **named("bolus")
            ),
            base[has_rate].assign(
                event="basal", delivery="scheduled", rate_u_per_h=rate[has_rate], **named("basal")
            ),
            base[suspend].assign(
                event="basal",
                delivery="suspend",
                rate_u_per_h=0.0,
                flag=flag.where(suspend_in_bolus)[suspend],
                **named("basal"),
            ),
        ],
        ignore_index=True,
    )
    return events, misplaced


def _summary_row(path: Path, record_id: str) -> tuple[dict[str, Any], str] | None:
    """The period's row of the summary workbook next to its folder, with where it came from."""
    for candidate in sorted(path.parent.parent.glob("*_Summary.xlsx")):
        stat = candidate.stat()
        rows = _summary(str(candidate), stat.st_mtime_ns, stat.st_size)
        if record_id in rows:
            row, values = rows[record_id]
            return dict(values), f"{candidate.name} row {row}"
    return None


@lru_cache(maxsize=4)
def _summary(path: str, mtime_ns: int, size: int) -> dict[str, tuple[int, tuple]]:
    """Record id -> (Excel row, clinical fields) of a summary workbook (cached per version)."""
    _, rows = _xlsx_sheet(Path(path))
    return _clinical_rows(rows)


def _clinical_rows(rows: list[list[Any]]) -> dict[str, tuple[int, tuple]]:
    """Record id -> (Excel row, clinical fields) of a summary sheet ({} for another sheet)."""
    if not rows or not _is_summary([_normalise(v) for v in rows[0] if v is not None]):
        return {}
    keys = [
        SUMMARY_FIELDS.get(_normalise(h), str(h).strip()) if h is not None else None
        for h in rows[0]
    ]
    out = {}
    for number, row in enumerate(rows[1:], start=2):
        fields = {k: _clinical(k, v) for k, v in zip(keys, row, strict=False) if k is not None}
        record = fields.pop("record_id", None)
        if record:
            hba1c = fields.get("hba1c_mmol_mol")
            if isinstance(hba1c, int | float):
                # IFCC -> NGSP master equation (Hoelzel et al., Clin Chem 2004;50:166-174).
                fields["hba1c_percent"] = round(0.09148 * hba1c + 2.152, 2)
            out[str(record).strip()] = (number, tuple(fields.items()))
    return out


def _read_summary(path: Path, sheet_name: str, rows: list[list[Any]]) -> Recording:
    """A summary workbook: no rows, its clinical rows by subject and period in ``meta``."""
    clinical: dict[str, dict[str, dict[str, Any]]] = {}
    for record_id, (row, fields) in _clinical_rows(rows).items():
        record = RECORD_NAME.fullmatch(record_id)
        if record is None:
            raise DataError(
                f"{record_id!r} is not a record id PPPP_k_YYYYMMDD",
                file=path.name,
                line=row,
                field=str(rows[0][0]),
            )
        periods = clinical.setdefault(f"shanghai-{record['patient']}", {})
        period = str(int(record["period"]))
        if period in periods:
            raise DataError(
                f"period {period} of patient {record['patient']} appears twice",
                file=path.name,
                line=row,
                field=str(rows[0][0]),
            )
        periods[period] = {
            "record_id": record_id,
            "period_start": pd.Timestamp(record["start"]).date().isoformat(),
            "row": row,
            **dict(fields),
        }
    if not clinical:
        raise DataError("the summary workbook has no rows", file=path.name, line=2)
    meta = {
        "format": "shanghai",
        "dataset": DATASET,
        "sheet": sheet_name,
        "clinical": clinical,
        "clinical_source": path.name,
    }
    return Recording.build(meta=meta, file=path.name)


def _clinical(key: str, value: Any) -> Any:
    if isinstance(value, str):
        value = value.strip()
        return None if value in ("", NOT_MEASURED) else value
    if key == "sex":
        return SEX.get(value, value)
    return _json(value)


FORMAT = Format(
    name="shanghai",
    description="ShanghaiT1DM/T2DM period workbook (.xls/.xlsx): CGM, CBG, insulin, meals",
    sniff=_sniff,
    read=_read,
    extensions=(".xls", ".xlsx"),
)
