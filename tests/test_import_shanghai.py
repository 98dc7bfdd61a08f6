"""ShanghaiT1DM/T2DM importer: every period workbook against the README, quirks, bad input."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import openpyxl
import pandas as pd
import pytest
from conftest import shared_path

from glucotwin.data import DataError, Recording, local_time
from glucotwin.data.formats import ImportOptions, detect_format, formats, read_file

HEADER = [
    "Date",
    "CGM (mg / dl)",
    "CBG (mg / dl)",
    "Blood Ketone (mmol / L)",
    "Dietary intake",
    "饮食",
    "Insulin dose - s.c.",
    "Non-insulin hypoglycemic agents",
    "CSII - bolus insulin (Novolin R, IU)",
    "CSII - basal insulin (Novolin R, IU / H)",
    "Insulin dose - i.v.",
]
# Every header variant of the README, plus one workbook of each kind and group.
VARIANTS = [
    "Shanghai_T1DM/1001_0_20210730.xlsx",
    "Shanghai_T1DM/1002_0_20210504.xls",
    "Shanghai_T1DM/1008_0_20210713.xls",
    "Shanghai_T2DM/2045_0_20201216.xls",
    "Shanghai_T2DM/2095_0_20201116.xls",
    "Shanghai_T2DM/2001_0_20201102.xlsx",
    "Shanghai_T2DM/2013_0_20220123.xlsx",
    "Shanghai_T2DM/2083_0_20201214.xls",
    "Shanghai_T2DM/2027_0_20210521.xls",
    "Shanghai_T2DM/2014_0_20201224.xlsx",
    "Shanghai_T2DM/2029_0_20210526.xls",
    "Shanghai_T2DM/2041_0_20210813.xls",
    "Shanghai_T2DM/2044_0_20211101.xls",
    "Shanghai_T2DM/2078_1_20210817.xls",
    "Shanghai_T2DM/2094_0_20211109.xls",
]


def period(name: str) -> Path:
    return shared_path("shanghai", *name.split("/"))


@pytest.fixture(scope="module")
def variants() -> dict[str, Recording]:
    return {name: read_file(period(name)) for name in VARIANTS}


@pytest.fixture(scope="module")
def everything(shared_data) -> dict[str, list[Recording]]:
    return {
        group: [read_file(p) for p in sorted((shared_data / "shanghai" / group).glob("*.xls*"))]
        for group in ("Shanghai_T1DM", "Shanghai_T2DM")
    }


def test_header_variants_read_and_are_detected(variants):
    for name, rec in variants.items():
        assert detect_format(period(name)).name == "shanghai"
        assert len(rec.cgm()) > 0, name
    assert len(variants["Shanghai_T2DM/2045_0_20201216.xls"].cgm()) > 900
    pump = variants["Shanghai_T2DM/2027_0_20210521.xls"].insulin
    assert (pump["event"] == "basal").sum() > 0  # basal column named 胰岛素泵基础量
    assert variants["Shanghai_T2DM/2014_0_20201224.xlsx"].meta["sheet"] == "2014_1_20210317"


def test_all_periods_match_the_readme(everything):
    expected = {
        # periods, patients, CGM, CBG, days, span (days), files with basal / with s.c. doses
        "Shanghai_T1DM": (16, 12, 15_695, 750, 181, 163.3, 11, 13),
        "Shanghai_T2DM": (109, 100, 112_287, 3_262 - 1, 1_291, 1_168.7, 34, 54),
    }
    for group, recordings in everything.items():
        cohort = Recording.concat(recordings)
        glucose = cohort.glucose
        cgm = glucose[glucose["source"] == "cgm"]
        days = sum(local_time(r.cgm()).dt.date.nunique() for r in recordings)
        span = (
            sum((r.cgm()["time"].max() - r.cgm()["time"].min()).total_seconds() for r in recordings)
            / 86_400
        )
        basal = sum((r.insulin["event"] == "basal").any() for r in recordings)
        injected = sum(
            (r.insulin["route"].eq("sc") & r.insulin["device"].isna()).any() for r in recordings
        )
        got = (
            len(recordings),
            len(cohort.subjects),
            len(cgm),
            (glucose["source"] == "fingerstick").sum(),
            days,
            round(span, 1),
            basal,
            injected,
        )
        assert got == expected[group]
        assert all("clinical" in r.meta for r in recordings)
    # T2DM's README count of 3,262 CBG readings keeps 2044.8 mg/dL, which no meter reads.
    rejected = [
        r.meta["cbg_rejected"] for r in everything["Shanghai_T2DM"] if r.meta["cbg_rejected"]
    ]
    assert rejected == [
        [{"row": 193, "value": 2044.8, "reason": "outside the 20–600 mg/dL meter range"}]
    ]


def test_every_period_workbook_is_detected(shared_data):
    paths = sorted((shared_data / "shanghai").glob("Shanghai_T?DM/*.xls*"))
    assert len(paths) == 125
    assert {detect_format(p).name for p in paths} == {"shanghai"}


def test_first_rows_times_units_and_pump(variants):
    rec = variants["Shanghai_T1DM/1001_0_20210730.xlsx"]
    first = rec.glucose.iloc[0]
    assert first["time"] == pd.Timestamp("2021-07-30 08:43", tz="UTC")  # 16:43 in Shanghai
    assert (first["utc_offset_min"], first["source_line"]) == (480, 2)
    assert first["glucose_mg_dl"] == pytest.approx(113.4)
    assert rec.subjects == ["shanghai-1001"]
    assert rec.meta["period"] == 0 and rec.meta["period_start"] == "2021-07-30"
    insulin = rec.insulin
    basal = insulin[insulin["event"] == "basal"].iloc[0]
    assert (basal["rate_u_per_h"], basal["source_line"]) == (0.3, 2)
    assert basal["insulin_name"] == "Novolin R" and basal["device"] == "insulin pump (CSII)"
    bolus = insulin[insulin["event"] == "bolus"].iloc[0]
    assert (bolus["units_u"], bolus["source_line"], bolus["insulin_class"]) == (4.0, 3, "short")
    meal = rec.carbs.iloc[0]
    assert (meal["source_line"], meal["note"]) == (4, "data not available")
    assert meal["flag"] == "meal_content_not_recorded" and pd.isna(meal["carbs_g"])


def test_floor_readings_are_censored(everything):
    cgm = Recording.concat(everything["Shanghai_T1DM"] + everything["Shanghai_T2DM"]).cgm()
    below = cgm[cgm["censored"] == "below"]
    assert len(below) == 485 and below["glucose_mg_dl"].round(1).eq(39.6).all()
    assert cgm["glucose_mg_dl"].min() == pytest.approx(39.6)


def test_subcutaneous_doses_and_insulin_classes(everything):
    rec = next(r for r in everything["Shanghai_T2DM"] if r.meta["patient"] == "2094")
    doses = rec.insulin[rec.insulin["source_line"] == 80]
    assert doses["insulin_name"].tolist() == ["insulin glargine", "Humulin 70/30"]
    assert doses["units_u"].tolist() == [14.0, 12.0]
    assert doses["insulin_class"].tolist() == ["long", "premixed"]
    assert rec.meta["first_reading"] == "2020-11-09T11:22:00"  # file named 20211109
    t1 = next(r for r in everything["Shanghai_T1DM"] if r.meta["record_id"] == "1010_0_20210915")
    mixed = t1.insulin[t1.insulin["source_line"] == 400]  # 'insulin detemir, 6 IU; Novolin R,…'
    assert mixed[["insulin_name", "units_u"]].values.tolist() == [
        ["insulin detemir", 6.0],
        ["Novolin R", 4.0],
    ]
    insulin = Recording.concat(everything["Shanghai_T1DM"] + everything["Shanghai_T2DM"]).insulin
    assert set(insulin["insulin_class"]) == {"rapid", "short", "long", "premixed"}
    assert insulin["flag"].str.contains("unknown_insulin", na=False).sum() == 0
    typo = insulin[insulin["insulin_name"] == "insulin glargine"]
    assert len(typo) > 0 and not insulin["insulin_name"].eq("insulin glarigine").any()


def test_intravenous_insulin_and_suspends(variants, everything):
    t1 = {r.meta["record_id"]: r for r in everything["Shanghai_T1DM"]}
    iv = t1["1003_0_20210831"].insulin
    iv = iv[iv["route"] == "iv"]
    assert iv["units_u"].tolist()[:2] == [6.0, 3.0]
    assert (iv["insulin_name"] == "Novolin R").all() and (iv["flag"] == "iv_infusion").all()
    assert t1["1003_0_20210831"].meta["iv_infusions"][0]["value"].startswith("500ml 0.9%")
    suspend = variants["Shanghai_T1DM/1008_0_20210713.xls"].insulin
    suspend = suspend[suspend["delivery"] == "suspend"]
    assert suspend["source_line"].tolist() == [85, 99, 153, 154, 266]
    assert (suspend["rate_u_per_h"] == 0).all()
    assert suspend["flag"].fillna("").tolist() == [
        "",
        "",
        "",
        "suspend_in_bolus_column",
        "suspend_in_bolus_column",
    ]


def test_documented_oddities_are_kept_in_meta(variants):
    v = variants
    dropped = v["Shanghai_T2DM/2029_0_20210526.xls"].meta["undated_rows_dropped"]
    assert dropped == [{"row": 834, "CSII - basal insulin (Novolin R, IU / H)": 0.5}]
    ignored = v["Shanghai_T2DM/2027_0_20210521.xls"].meta["ignored_cells"]
    assert ignored[0]["value"] == "CSII - basal insulin (Novolin R, IU / H)"
    assert ignored[0]["row"] == 2
    errors = v["Shanghai_T2DM/2041_0_20210813.xls"].meta["ignored_cells"]
    assert [(e["row"], e["value"]) for e in errors] == [
        (94, "#VALUE!"),
        (190, "#VALUE!"),
        (206, "#VALUE!"),
    ]
    agents = v["Shanghai_T2DM/2078_1_20210817.xls"].meta["non_insulin_agents"]
    assert [a["value"] for a in agents if a["row"] == 1310] == ["acarbose 50 mg"]
    ketones = v["Shanghai_T1DM/1008_0_20210713.xls"].meta["blood_ketone_mmol_l"]
    assert all(isinstance(k["value"], float) for k in ketones)


def test_clinical_summary_row_is_attached(variants):
    meta = variants["Shanghai_T1DM/1001_0_20210730.xlsx"].meta
    clinical = meta["clinical"]
    assert meta["clinical_source"] == "Shanghai_T1DM_Summary.xlsx row 2"
    assert (clinical["sex"], clinical["age_years"], clinical["diabetes_type"]) == (
        "female",
        66,
        "T1DM",
    )
    assert clinical["hba1c_mmol_mol"] == pytest.approx(115.311)
    assert clinical["hba1c_percent"] == pytest.approx(12.7)
    assert clinical["fasting_insulin_pmol_l"] is None  # written "/"
    assert variants["Shanghai_T2DM/2001_0_20201102.xlsx"].meta["clinical"]["sex"] == "female"


def test_summary_workbooks_import_as_clinical_rows_by_subject_and_period():
    t1 = read_file(shared_path("shanghai", "Shanghai_T1DM_Summary.xlsx"))
    assert t1.counts() == {"glucose": 0, "insulin": 0, "carbs": 0, "activity": 0}
    clinical = t1.meta["clinical"]
    assert len(clinical) == 12  # the README: 12 people, 16 periods
    assert sum(len(periods) for periods in clinical.values()) == 16
    assert sorted(clinical["shanghai-1002"]) == ["0", "1", "2"]
    first = clinical["shanghai-1001"]["0"]
    assert (first["record_id"], first["period_start"], first["row"]) == (
        "1001_0_20210730",
        "2021-07-30",
        2,
    )
    assert (first["sex"], first["age_years"], first["weight_kg"]) == ("female", 66, 60)
    assert first["hba1c_mmol_mol"] == pytest.approx(115.311)
    assert first["fasting_insulin_pmol_l"] is None  # written "/"
    later = clinical["shanghai-1002"]["1"]
    assert (later["weight_kg"], later["hba1c_mmol_mol"]) == (67, pytest.approx(69.405))
    assert t1.meta["sheet"] == "T1DM"

    summary = shared_path("shanghai", "Shanghai_T2DM_Summary.xlsx")
    assert detect_format(summary).name == "shanghai"
    t2 = read_file(summary).meta["clinical"]
    assert len(t2) == 100 and sum(len(periods) for periods in t2.values()) == 109
    # the same row as the period workbook gets in meta["clinical"]
    attached = read_file(period("Shanghai_T2DM/2001_0_20201102.xlsx")).meta["clinical"]
    row = t2["shanghai-2001"]["0"]
    assert {k: row[k] for k in attached} == attached
    assert isinstance(row["bmi_kg_m2"], float) and isinstance(row["age_years"], int)


def test_bad_summary_rows_are_rejected(tmp_path):
    header = ["Patient Number", "Age (years)", "Type of Diabetes"]
    rows = [["1001_0_20210730", 66, "T1DM"], ["patient 7", 50, "T1DM"]]
    path = workbook(tmp_path, rows, header=header, name="Shanghai_T1DM_Summary.xlsx")
    with pytest.raises(DataError, match="not a record id") as info:
        read_file(path)
    assert (info.value.line, info.value.field) == (3, "Patient Number")
    rows[1][0] = "1001_0_20210801"
    path = workbook(tmp_path, rows, header=header, name="Shanghai_T1DM_Summary.xlsx")
    with pytest.raises(DataError, match="appears twice") as info:
        read_file(path)
    assert info.value.line == 3
    path = workbook(tmp_path, [], header=header, name="Shanghai_T1DM_Summary.xlsx")
    with pytest.raises(DataError, match="no rows"):
        read_file(path)


def test_options_override_zone_and_subject():
    rec = read_file(period(VARIANTS[0]), options=ImportOptions(timezone="UTC", subject="x"))
    assert rec.glucose["time"].iloc[0] == pd.Timestamp("2021-07-30 16:43", tz="UTC")
    assert rec.subjects == ["x"]


def workbook(tmp_path: Path, rows: list[list], header=HEADER, name="2000_0_20200101.xlsx"):
    book = openpyxl.Workbook()
    sheet = book.active
    sheet.append(header)
    for row in rows:
        sheet.append(row)
    path = tmp_path / name
    book.save(path)
    return path


def row(minute: int, cgm=120.0, **cells) -> list:
    values = [datetime(2020, 1, 1, 8, minute), cgm] + [None] * 9
    for index, value in cells.items():
        values[int(index[1:])] = value
    return values


@pytest.mark.parametrize(
    ("rows", "line", "field", "message"),
    [
        ([row(0), row(15, "abc")], 3, "CGM (mg / dl)", "not a number"),
        ([row(0), row(15, 30.0)], 3, "CGM (mg / dl)", "below the sensor's floor"),
        ([row(0), row(15, c2=-5.0)], 3, "CBG (mg / dl)", "not a glucose value"),
        ([row(0), ["yesterday", 100.0]], 3, "Date", "not a date-time"),
        ([row(0), [None, None, 100.0], row(30)], 3, "Date", "no date"),
        ([row(0), row(15, c6="a lot of insulin")], 3, "Insulin dose - s.c.", "cannot read"),
        (
            [row(0), row(15, c9="more please")],
            3,
            "CSII - basal insulin (Novolin R, IU / H)",
            "neither a dose nor a suspend",
        ),
        ([row(0), row(15, c8=500)], 3, "units_u", "outside the possible range"),
    ],
)
def test_bad_cells_name_file_row_and_field(tmp_path, rows, line, field, message):
    with pytest.raises(DataError, match=message) as info:
        read_file(workbook(tmp_path, rows), format="shanghai")
    assert (info.value.line, info.value.field) == (line, field)
    assert info.value.file.endswith("2000_0_20200101.xlsx")


@pytest.mark.parametrize(
    ("header", "field", "message"),
    [
        (["Date", "CGM (mmol / L)"], "CGM (mmol / L)", "unknown unit"),
        (["Date", "CGM (mg / dl)", "Heart rate"], "Heart rate", "unknown column"),
        (["Date", "CBG (mg / dl)"], "CGM (mg / dl)", "missing"),
        (["Date", "CGM (mg / dl)", "CGM"], "CGM", "twice"),
    ],
)
def test_bad_headers_are_reported_on_row_1(tmp_path, header, field, message):
    path = workbook(tmp_path, [[datetime(2020, 1, 1), 100.0, 100.0]], header=header)
    with pytest.raises(DataError, match=message) as info:
        read_file(path, format="shanghai")
    assert (info.value.line, info.value.field) == (1, field)


def test_small_workbook_maps_every_column(tmp_path):
    rows = [
        row(0, c2=126.0, c3=0.4, c4="Rice 100 g", c5="米饭 100 g", c7="metformin 500 mg"),
        row(15, c6="insulin degludec, 10 IU", c9="temporarily suspend insulin delivery"),
        row(30, 39.6, c10="500ml 5% glucose, 12 IU Novolin R, 10 ml 10% potassium chloride"),
        row(45, c6="Mystery insulin, 2 IU", c5="米饭"),
    ]
    rec = read_file(workbook(tmp_path, rows), format="shanghai")
    assert rec.cgm()["censored"].tolist() == ["", "", "below", ""]
    assert rec.glucose[rec.glucose["source"] == "fingerstick"]["glucose_mg_dl"].tolist() == [126.0]
    assert rec.carbs["note"].tolist() == ["Rice 100 g", "米饭"]
    insulin = rec.insulin.set_index("source_line")
    assert insulin.loc[3, "delivery"].tolist() == ["normal", "suspend"]
    assert insulin.loc[4, "route"] == "iv" and insulin.loc[4, "units_u"] == 12.0
    assert (insulin.loc[5, "insulin_class"], insulin.loc[5, "flag"]) == (
        "unknown",
        "unknown_insulin",
    )
    assert rec.meta["non_insulin_agents"][0]["value"] == "metformin 500 mg"
    assert rec.meta["blood_ketone_mmol_l"] == [
        {"time": "2020-01-01T08:00:00", "row": 2, "value": 0.4}
    ]
    assert "clinical" not in rec.meta


def test_date_and_cgm_columns_are_enough(tmp_path):
    rows = [[datetime(2020, 1, 1, 8, 0), 39.6], [datetime(2020, 1, 1, 8, 15), 41.4]]
    rec = read_file(workbook(tmp_path, rows, header=["Date", "CGM "]), format="shanghai")
    assert rec.counts() == {"glucose": 2, "insulin": 0, "carbs": 0, "activity": 0}
    assert rec.glucose["censored"].tolist() == ["below", ""]


def test_damaged_and_foreign_files(tmp_path):
    real = period("Shanghai_T1DM/1002_0_20210504.xls").read_bytes()
    truncated = tmp_path / "1002_0_20210504.xls"
    truncated.write_bytes(real[: len(real) // 2])
    with pytest.raises(DataError, match="cannot read the workbook"):
        read_file(truncated, format="shanghai")
    other = workbook(tmp_path, [[1, 2]], header=["Time", "Glucose"], name="other.xlsx")
    sniff = formats()["shanghai"].sniff
    assert not sniff(other, other.read_bytes()[:65536])
    csv = shared_path("replaybg_example", "data_day_1.csv")
    assert not sniff(csv, csv.read_bytes()[:65536])
    not_excel = tmp_path / "notes.xlsx"
    not_excel.write_text("Date,CGM\n")
    with pytest.raises(DataError, match="not an Excel workbook"):
        read_file(not_excel, format="shanghai")
