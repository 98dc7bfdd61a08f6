"""ReplayBG importer: the example files against the README, unit conversions, bad input."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import shared_path

from glucotwin.data import DataError, Recording, local_time
from glucotwin.data.formats import ImportOptions, detect_format, read_file

FOLDER = "replaybg_example"
DATA_FILES = [
    "data_day_1.csv",
    "data_day_2.csv",
    "data_day_1_extended.csv",
    "earlier_release/single-meal_example.csv",
    "earlier_release/multi-meal_example.csv",
]
HEADER = "t,glucose,cho,bolus,basal,bolus_label,cho_label\n"


def example(name: str) -> Path:
    return shared_path(FOLDER, *name.split("/"))


@pytest.fixture(scope="module")
def two_days() -> Recording:
    return Recording.concat(
        [read_file(example("data_day_1.csv")), read_file(example("data_day_2.csv"))]
    )


def persistence(glucose: pd.DataFrame, horizon_min: float, tolerance_min: float):
    """Pairs, RMSE and MAE of 'glucose at t + h = glucose at t', as the data README defines."""
    now = glucose[["time", "glucose_mg_dl"]].sort_values("time")
    now = now.assign(target=now["time"] + pd.Timedelta(minutes=horizon_min))
    later = now[["time", "glucose_mg_dl"]].set_axis(["target", "later"], axis=1)
    pairs = pd.merge_asof(
        now, later, on="target", direction="nearest", tolerance=pd.Timedelta(minutes=tolerance_min)
    ).dropna()
    error = pairs["later"] - pairs["glucose_mg_dl"]
    return (
        len(pairs),
        round(float(np.sqrt((error**2).mean())), 2),
        round(float(error.abs().mean()), 2),
    )


def test_days_1_and_2_match_the_readme(two_days):
    assert two_days.subjects == ["replaybg-1"]
    assert len(two_days.cgm()) == 521
    assert len(two_days.carbs) == 7
    bolus = two_days.insulin[two_days.insulin["event"] == "bolus"]
    assert len(bolus) == 10
    assert local_time(two_days.glucose).iloc[0] == pd.Timestamp("2027-05-11 08:35")  # row 32
    assert two_days.glucose["source_line"].iloc[0] == 33
    assert two_days.glucose["utc_offset_min"].isna().all()  # floating local time
    assert local_time(two_days.glucose).iloc[-1] == pd.Timestamp("2027-05-13 03:55")
    assert persistence(two_days.cgm(), 30, 2.5) == (515, 23.13, 18.59)
    assert persistence(two_days.cgm(), 60, 2.5) == (509, 37.18, 29.74)


def test_rates_per_minute_become_amounts_and_hourly_rates(two_days):
    carbs = two_days.carbs
    assert carbs["carbs_g"].tolist() == pytest.approx(
        [135.0, 100.0, 42.0, 37.0, 78.0, 60.0, 42.0]
    )  # cho 27 g/min × 5 min, ...
    assert carbs["meal_type"].tolist() == [
        "lunch",
        "dinner",
        "snack",
        "breakfast",
        "lunch",
        "lunch",
        "snack",
    ]
    insulin = two_days.insulin
    bolus = insulin[insulin["event"] == "bolus"]
    assert bolus["units_u"].iloc[0] == pytest.approx(1.42 * 5)
    assert bolus["flag"].tolist().count("correction") == 3
    assert bolus["flag"].iloc[1] == "meal_bolus:lunch"
    basal = insulin[insulin["event"] == "basal"]
    assert basal["rate_u_per_h"].iloc[0] == pytest.approx(0.03 * 60)  # 1.8 U/h
    assert basal["rate_u_per_h"].round(6).tolist()[:5] == [1.8, 0.0, 1.8, 1.5, 1.0]
    assert (basal["delivery"] == "scheduled").all()


def test_patient_info_is_attached_and_imports_alone_as_metadata(two_days):
    info = read_file(example("data_day_2.csv")).meta["patient_info"]
    assert info == {
        "patient": "1",
        "u2ss_mu_per_kg_per_min": pytest.approx(0.24404847),
        "body_weight_kg": 100.0,
    }
    patient_info = shared_path(FOLDER, "patient_info.csv")
    assert not patient_info.read_bytes().endswith(b"\n")  # the release has no final newline
    assert detect_format(patient_info).name == "replaybg"
    alone = read_file(patient_info)
    assert alone.counts() == {"glucose": 0, "insulin": 0, "carbs": 0, "activity": 0}
    assert alone.meta["patient_info"] == info
    assert alone.meta["subject"] == "replaybg-1" == two_days.subjects[0]


def test_bad_patient_info_is_rejected(tmp_path):
    path = tmp_path / "patient_info.csv"
    path.write_text("patient,u2ss,bw\n1,0.24,heavy\n")
    with pytest.raises(DataError, match="not a number") as info:
        read_file(path)
    assert (info.value.line, info.value.field) == (2, "bw")
    path.write_text("patient,u2ss,bw\n1,0.24")
    with pytest.raises(DataError, match="truncated") as info:
        read_file(path)
    assert (info.value.line, info.value.field) == (2, "u2ss")
    path.write_text("patient,u2ss,bw\n1,0.24,100\n2,0.3,80\n")
    with pytest.raises(DataError, match="exactly one patient row"):
        read_file(path)


def test_extended_file_repeats_the_two_days(two_days):
    extended = read_file(example("data_day_1_extended.csv"))
    assert extended.cgm()["glucose_mg_dl"].tolist() == two_days.cgm()["glucose_mg_dl"].tolist()
    assert extended.cgm()["time"].tolist() == two_days.cgm()["time"].tolist()
    assert extended.insulin["units_u"].sum() == pytest.approx(two_days.insulin["units_u"].sum())


def test_earlier_releases_with_smbg_ratios_and_nan():
    single = read_file(example("earlier_release/single-meal_example.csv"))
    assert single.subjects == ["single-meal_example"]
    assert "patient_info" not in single.meta
    smbg = single.glucose[single.glucose["source"] == "fingerstick"]
    assert smbg["glucose_mg_dl"].tolist() == [144.0]
    assert len(single.cgm()) == 69
    assert single.carbs["carbs_g"].tolist() == [40.0] and single.carbs["meal_type"].iloc[0] == (
        "breakfast"
    )
    assert single.meta["therapy_settings"] == [
        {
            "time": "2013-12-20T10:35:00",
            "line": 2,
            "carb_ratio_g_per_u": 9.0,
            "correction_factor_mg_dl_per_u": 36.0,
        }
    ]
    basal = single.insulin[single.insulin["event"] == "basal"]
    assert basal["rate_u_per_h"].tolist() == pytest.approx([0.1])
    multi = read_file(example("earlier_release/multi-meal_example.csv"))
    assert len(multi.cgm()) == 277
    assert (multi.glucose["source"] == "fingerstick").sum() == 6
    factors = [s["correction_factor_mg_dl_per_u"] for s in multi.meta["therapy_settings"]]
    assert factors == [54.0, 35.52, 54.0, 35.52, 54.0]
    assert len(multi.activity) == 0  # exercise is 0 on every row


def test_every_data_file_is_detected():
    for name in DATA_FILES:
        assert detect_format(example(name)).name == "replaybg"


def test_timezone_and_subject_options():
    rec = read_file(
        example("data_day_2.csv"), options=ImportOptions(timezone="Europe/Rome", subject="p")
    )
    assert rec.subjects == ["p"]
    assert rec.glucose["utc_offset_min"].iloc[0] == 120
    assert rec.glucose["time"].iloc[0] == pd.Timestamp("2027-05-12 02:00", tz="UTC")


def write(tmp_path: Path, rows: str, header: str = HEADER) -> Path:
    path = tmp_path / "data.csv"
    path.write_text(header + rows)
    return path


GOOD = "01-Jan-2024 00:00:00,100,0,0,0.02,,\n01-Jan-2024 00:05:00,101,0,0,0.02,,\n"


@pytest.mark.parametrize(
    ("rows", "line", "field", "message"),
    [
        (GOOD + "01-Jan-2024 00:10:00,abc,0,0,0.02,,\n", 4, "glucose", "not a number"),
        (GOOD + "01-Jan-2024 00:10:00,-5,0,0,0.02,,\n", 4, "glucose", "negative value"),
        (GOOD + "01-Jan-2024 00:10:00,99,-1,0,0.02,,\n", 4, "cho", "negative value"),
        (GOOD + "01-Jan-2024 00:15:00,99,0,0,0.02,,\n", 4, "t", "homogeneous time grid"),
        (GOOD + "01-Jan-2024 00:00:00,99,0,0,0.02,,\n", 4, "t", "homogeneous time grid"),
        (GOOD + "2024-01-01 00:10:00,99,0,0,0.02,,\n", 4, "t", "cannot read"),
        (GOOD + "01-Jan-2024 00:10:00,99,0,1,0.02,X,\n", 4, "bolus_label", "unknown label"),
        (GOOD + "01-Jan-2024 00:10:00,99,5,0,0.02,,C\n", 4, "cho_label", "unknown label"),
        (GOOD + "01-Jan-2024 00:10:00,99,0,60,0.02,,\n", 4, "units_u", "outside"),
    ],
)
def test_bad_values_name_file_line_and_field(tmp_path, rows, line, field, message):
    with pytest.raises(DataError, match=message) as info:
        read_file(write(tmp_path, rows), format="replaybg")
    assert (info.value.line, info.value.field) == (line, field)
    assert info.value.file.endswith("data.csv")


def test_bad_headers_and_too_short_files(tmp_path):
    with pytest.raises(DataError, match="missing") as info:
        read_file(write(tmp_path, GOOD, HEADER.replace(",basal", "")), format="replaybg")
    assert (info.value.line, info.value.field) == (1, "basal")
    with pytest.raises(DataError, match="not in ReplayBG"):
        read_file(write(tmp_path, "", HEADER.strip() + ",steps\n"), format="replaybg")
    with pytest.raises(DataError, match="at least two samples"):
        read_file(write(tmp_path, GOOD.splitlines()[0] + "\n"), format="replaybg")
    truncated = write(tmp_path, GOOD + "01-Jan-2024 00:1")
    with pytest.raises(DataError, match="truncated") as info:
        read_file(truncated)
    assert (info.value.line, info.value.field) == (4, "t")


def test_a_complete_last_row_needs_no_final_newline(tmp_path):
    rec = read_file(write(tmp_path, GOOD + "01-Jan-2024 00:10:00,102,0,0,0.02,,"))
    assert rec.cgm()["glucose_mg_dl"].tolist() == [100.0, 101.0, 102.0]
    assert rec.cgm()["source_line"].tolist() == [2, 3, 4]
    with pytest.raises(DataError, match="cannot read") as info:
        read_file(write(tmp_path, GOOD + "01-Jan-2024 00:1,102,0,0,0.02,,"))
    assert (info.value.line, info.value.field) == (4, "t")


def test_exercise_nan_and_smbg_in_a_small_earlier_release_file(tmp_path):
    header = "SMBG,CR,CF,glucose,bolus,basal,bolus_label,cho_label,exercise,cho,t\n"
    rows = (
        "NaN,NaN,NaN,150,0,0.01,,,0,0,01-Jan-2024 00:00:00\n"
        "148,10,40,NaN,0.4,0.01,B,B,3,6,01-Jan-2024 00:01:00\n"
        "NaN,NaN,NaN,152,0,0.02,,,0,0,01-Jan-2024 00:02:00\n"
    )
    rec = read_file(write(tmp_path, rows, header))
    assert rec.meta["step_min"] == 1.0
    assert rec.cgm()["glucose_mg_dl"].tolist() == [150.0, 152.0]
    assert rec.carbs["carbs_g"].tolist() == [6.0]  # 6 g/min over a 1-min step
    assert rec.insulin[rec.insulin["event"] == "bolus"]["units_u"].tolist() == [0.4]
    assert rec.insulin[rec.insulin["event"] == "basal"]["rate_u_per_h"].tolist() == (
        pytest.approx([0.6, 1.2])
    )
    activity = rec.activity.iloc[0]
    assert (activity["activity_type"], activity["duration_min"], activity["flag"]) == (
        "exercise",
        1.0,
        "exercise_value:3",
    )


def test_sniff_leaves_other_csv_alone(tmp_path):
    other = tmp_path / "g.csv"
    other.write_text("timestamp,glucose_mg_dl\n2024-01-01 00:00,100\n")
    assert detect_format(other).name == "csv"
    azt1d = shared_path("azt1d", "CGM Records", "Subject 1", "Subject 1.csv")
    assert detect_format(azt1d).name == "azt1d"
