"""AZT1D importer: the 20 subject files against the dataset README, each quirk, and bad input."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import shared_path
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from glucotwin.data import DataError, Recording, local_time
from glucotwin.data.formats import ImportOptions, detect_format, read_file

HEADER = (
    "EventDateTime,DeviceMode,BolusType,Basal,CorrectionDelivered,TotalBolusInsulinDelivered,"
    "FoodDelivered,CarbSize,CGM\n"
)


def subject_file(n: int) -> Path:
    return shared_path("azt1d", "CGM Records", f"Subject {n}", f"Subject {n}.csv")


@pytest.fixture(scope="module")
def all_subjects() -> list[Recording]:
    return [read_file(subject_file(n)) for n in range(1, 21)]


def persistence(glucose: pd.DataFrame, horizon_min: float, tolerance_min: float):
    """Pairs, RMSE and MAE of 'glucose at t + h = glucose at t', as the data READMEs define."""
    pairs = []
    for _, one in glucose.groupby("subject"):
        now = one[["time", "glucose_mg_dl"]].sort_values("time")
        now = now.assign(target=now["time"] + pd.Timedelta(minutes=horizon_min))
        later = now[["time", "glucose_mg_dl"]].set_axis(["target", "later"], axis=1)
        pairs.append(
            pd.merge_asof(
                now.sort_values("target"),
                later,
                on="target",
                direction="nearest",
                tolerance=pd.Timedelta(minutes=tolerance_min),
            ).dropna()
        )
    joined = pd.concat(pairs)
    error = joined["later"] - joined["glucose_mg_dl"]
    return len(joined), float(np.sqrt((error**2).mean())), float(error.abs().mean())


def test_counts_match_the_dataset_readme(all_subjects):
    cohort = Recording.concat(all_subjects)
    assert cohort.subjects == [f"azt1d-{n:02d}" for n in range(1, 21)]
    assert sum(r.meta["rows"] for r in all_subjects) == 247_109
    assert len(cohort.cgm()) == 241_904  # distinct CGM timestamps
    assert sum(r.meta["duplicate_rows"] for r in all_subjects) == 5_205
    assert sum(r.meta["duplicate_timestamps_conflicting_glucose"] for r in all_subjects) == 172
    assert (cohort.glucose["flag"] == "duplicate_time_other_glucose").sum() == 172
    assert sum(r.meta["rows_with_basal"] for r in all_subjects) == 160_942
    assert len(cohort.carbs) == 3_796  # rows with carbs > 0
    # The README's 16,353 "rows with a bolus record" count subject 8's 7,789 rows that write
    # 0 into every empty cell; 8,564 rows carry a bolus type.
    boluses = cohort.insulin[cohort.insulin["event"] == "bolus"]
    assert len(boluses) == 16_353 - 7_789
    assert boluses["automated"].sum() == 2_741
    glucose = cohort.cgm()
    days = pd.DataFrame({"subject": glucose["subject"], "day": local_time(glucose).dt.date})
    assert len(days.drop_duplicates()) == 855
    span_days = glucose.groupby("subject")["time"].agg(lambda t: t.max() - t.min()).sum()
    # First to last reading summed is 852.59 days; the README rounds its own sum to 852.7.
    assert span_days / pd.Timedelta(days=1) == pytest.approx(852.7, abs=0.15)


def test_persistence_baseline_matches_the_readme(all_subjects):
    glucose = Recording.concat(all_subjects).cgm()
    pairs, rmse, mae = persistence(glucose, 30, 2.5)
    assert (pairs, round(rmse, 2), round(mae, 2)) == (240_458, 23.19, 16.73)
    pairs, rmse, mae = persistence(glucose, 60, 2.5)
    assert (pairs, round(rmse, 2), round(mae, 2)) == (239_714, 36.87, 27.30)


def test_every_subject_file_is_detected():
    for n in range(1, 21):
        assert detect_format(subject_file(n)).name == "azt1d"


def test_sensor_limits_are_censored(all_subjects):
    glucose = Recording.concat(all_subjects).cgm()
    below = glucose[glucose["censored"] == "below"]
    above = glucose[glucose["censored"] == "above"]
    assert (len(below), len(above)) == (129, 47)
    assert set(below["glucose_mg_dl"]) == {40.0} and set(above["glucose_mg_dl"]) == {400.0}
    assert glucose["glucose_mg_dl"].between(40, 400).all()


def test_arizona_time_subject_14_header_and_decimal_glucose():
    rec = read_file(subject_file(14))
    first = rec.glucose.iloc[0]
    assert first["time"] == pd.Timestamp("2024-01-13 07:03:00", tz="UTC")  # 00:03 at UTC−7
    assert first["utc_offset_min"] == -420
    assert (first["glucose_mg_dl"], first["source_line"], first["subject"]) == (
        128.0,
        2,
        "azt1d-14",
    )
    assert rec.meta["timezone"] == "America/Phoenix"
    assert local_time(rec.glucose).iloc[0] == pd.Timestamp("2024-01-13 00:03:00")
    assert read_file(subject_file(8)).glucose["glucose_mg_dl"].iloc[0] == 163.4
    jittered = read_file(subject_file(10)).glucose
    assert local_time(jittered).iloc[0] == pd.Timestamp("2023-12-29 00:01:59")


def test_timezone_and_subject_options_override_the_dataset():
    rec = read_file(subject_file(14), options=ImportOptions(timezone="UTC", subject="p14"))
    assert rec.glucose["time"].iloc[0] == pd.Timestamp("2024-01-13 00:03:00", tz="UTC")
    assert rec.glucose["utc_offset_min"].iloc[0] == 0
    assert rec.subjects == ["p14"]
    assert rec.meta["timezone_source"] == "ImportOptions.timezone"


def test_extended_bolus_is_split_into_now_and_later_parts():
    bolus = read_file(subject_file(16)).insulin
    row = bolus[bolus["source_line"] == 2803].iloc[0]  # Extended 50.00%/8.57, 4.28 U now
    assert row["delivery"] == "dual"
    assert row["extended_units_u"] == pytest.approx(0.5 * 8.57)
    assert row["units_u"] == pytest.approx(4.28 + 0.5 * 8.57)
    assert np.isnan(row["duration_min"])
    assert row["flag"] == "bolus_type:Extended 50.00%/8.57"
    correction = bolus[bolus["source_line"] == 4806].iloc[0]  # Extended/Correction 50%/5.00
    assert correction["extended_units_u"] == pytest.approx(2.5)
    assert correction["units_u"] == pytest.approx(5.03 + 2.5)
    assert correction["flag"] == "bolus_type:Extended/Correction 50.00%/5.00;correction_u:2.53"
    # Extended 50.00%/0.00 with 2.5 U delivered: the programmed 5 U is recovered from the share.
    inferred = read_file(subject_file(1)).insulin
    row = inferred[inferred["source_line"] == 1977].iloc[0]
    assert (row["units_u"], row["extended_units_u"]) == (5.0, 2.5)
    assert row["flag"].endswith("extended_units_inferred")


def test_bolus_kinds_and_every_event_row_at_repeated_timestamps(all_subjects):
    insulin = Recording.concat(all_subjects).insulin
    bolus = insulin[insulin["event"] == "bolus"]
    assert (bolus["delivery"] == "dual").sum() == 65
    automatic = bolus[bolus["automated"]]
    assert not automatic["flag"].str.contains("bolus_type", na=False).any()
    assert bolus["flag"].str.contains("bolus_type:BLE", na=False).sum() == 686 + 681
    assert bolus["flag"].str.contains("bolus_type:Quick", na=False).sum() == 2
    assert bolus["flag"].str.contains("correction_u:", na=False).sum() == 5_207
    # Subject 14 has boluses on 123 rows that repeat a timestamp: all are kept.
    s14 = all_subjects[13].insulin
    assert (s14["event"] == "bolus").sum() == 557


def test_basal_changes_and_out_of_range_values(all_subjects):
    insulin = Recording.concat(all_subjects).insulin
    basal = insulin[insulin["event"] == "basal"]
    flagged = basal[basal["flag"].notna()]
    assert basal["rate_u_per_h"].max() == pytest.approx(6.159)
    assert flagged["rate_u_per_h"].isna().all()
    raw = flagged["flag"].str.removeprefix("basal_out_of_range:").astype(float)
    assert (raw.min(), raw.max()) == (9.0, 4127.0)
    assert set(flagged["subject"]) == {
        "azt1d-01",
        "azt1d-03",
        "azt1d-09",
        "azt1d-10",
        "azt1d-16",
        "azt1d-19",
    }
    # 4,189 rows hold 13–4,127 (README) and 24 more hold 9 or 10 inside subject 10's mU/h runs.
    assert sum(r.meta["basal_out_of_range_rows"] for r in all_subjects) == 4_189 + 24
    s6 = all_subjects[5].insulin
    first = s6[s6["event"] == "basal"].iloc[0]
    assert (first["rate_u_per_h"], first["source_line"]) == (0.565, 5162)
    assert s6[s6["event"] == "basal"]["rate_u_per_h"].iloc[1] == 0.117  # changes hourly


def test_pump_modes_become_activity_runs(all_subjects):
    s2 = all_subjects[1].activity
    exercise = s2[s2["activity_type"] == "exercise"].iloc[0]
    assert exercise["source_line"] == 3350
    assert local_time(s2).loc[exercise.name] == pd.Timestamp("2023-12-21 11:29:09")
    assert exercise["duration_min"] == pytest.approx(300 - 1 / 60)  # to 16:29:08
    s6 = all_subjects[5].activity
    sixteen_days = s6[s6["source_line"] == 5162]  # sleep mode on from 2023-12-27 00:01:45
    assert len(sixteen_days) == 17 and (sixteen_days["flag"] == "mode_on_over_24h").all()
    assert sixteen_days["duration_min"].max() == 1440
    assert sixteen_days["duration_min"].sum() == pytest.approx(23_300.2, abs=0.1)
    cohort = Recording.concat(all_subjects).activity
    assert set(cohort["activity_type"]) == {"sleep", "exercise"}
    assert (cohort["activity_type"] == "exercise").sum() == 51
    assert not set(cohort["subject"]) & {"azt1d-01", "azt1d-05", "azt1d-07", "azt1d-11"}


def write(tmp_path: Path, rows: str, name: str = "Subject 3.csv") -> Path:
    path = tmp_path / name
    path.write_text(HEADER + rows)
    return path


GOOD = "2024-01-01 00:00:00,,,0.5,,,,,120\n2024-01-01 00:05:00,,,0.5,,,,,125\n"


@pytest.mark.parametrize(
    ("rows", "line", "field", "message"),
    [
        (GOOD + "2024-01-01 00:10:00,,,0.5,,,,,abc\n", 4, "CGM", "not a number"),
        (GOOD + "2024-01-01 00:10:00,,,0.5,,,,,-5\n", 4, "CGM", "negative value"),
        (GOOD + "2024-01-01 00:10:00,,,0.5,,,,-20,99\n", 4, "CarbSize", "negative value"),
        (GOOD + "2024-01-01 00:10:00,,,0.5,,,,,30\n", 4, "CGM", "outside the sensor"),
        (GOOD + "2024-01-01 00:10:00,,,0.5,,,,,\n", 4, "CGM", "glucose value missing"),
        (GOOD + "2024-13-01 00:10:00,,,0.5,,,,,99\n", 4, "EventDateTime", "cannot read"),
        (GOOD + "2024-01-01 00:10:00,,Mega,0.5,1,2,1,10,99\n", 4, "BolusType", "unknown bolus"),
        (
            GOOD + "2024-01-01 00:10:00,,Standard,0.5,,,,,99\n",
            4,
            "TotalBolusInsulinDelivered",
            "needs the units",
        ),
        (GOOD + "2024-01-01 00:10:00,party,,0.5,,,,,99\n", 4, "DeviceMode", "unknown pump mode"),
        (GOOD + "2024-01-01 00:10:00,,Standard,0.5,0,500,500,0,99\n", 4, "units_u", "outside"),
    ],
)
def test_bad_values_name_file_line_and_field(tmp_path, rows, line, field, message):
    with pytest.raises(DataError, match=message) as info:
        read_file(write(tmp_path, rows), format="azt1d")
    assert (info.value.line, info.value.field) == (line, field)
    assert info.value.file.endswith("Subject 3.csv")


def test_truncated_copy_of_a_real_file_fails_at_its_last_line(tmp_path):
    text = subject_file(3).read_text()
    cut = text[: text.index("\n", len(text) // 2) + 15]  # stops inside a date-time
    path = tmp_path / "Subject 3.csv"
    path.write_text(cut)
    with pytest.raises(DataError) as info:
        read_file(path)
    assert info.value.line == cut.count("\n") + 1
    assert info.value.field == "EventDateTime"


def test_a_real_file_without_its_final_newline_imports_the_same(tmp_path):
    text = subject_file(3).read_text()
    path = tmp_path / "Subject 3.csv"
    path.write_text(text.rstrip("\n"))
    whole, unterminated = read_file(subject_file(3)), read_file(path)
    assert unterminated.counts() == whole.counts()
    assert unterminated.glucose["glucose_mg_dl"].iloc[-1] == whole.glucose["glucose_mg_dl"].iloc[-1]


def test_header_problems_are_reported_on_line_1(tmp_path):
    path = tmp_path / "Subject 3.csv"
    path.write_text(HEADER.replace(",CarbSize", "") + "2024-01-01 00:00:00,,,,,,,100\n")
    with pytest.raises(DataError, match="missing") as info:
        read_file(path, format="azt1d")
    assert (info.value.line, info.value.field) == (1, "CarbSize")
    path.write_text(HEADER.strip() + ",Extra\n" + "2024-01-01 00:00:00,,,,,,,,100,1\n")
    with pytest.raises(DataError, match="not in the AZT1D export") as info:
        read_file(path, format="azt1d")
    assert info.value.field == "Extra"
    path.write_text(HEADER)
    with pytest.raises(DataError, match="no data rows"):
        read_file(path, format="azt1d")


def test_sniff_rejects_other_csv(tmp_path):
    other = tmp_path / "g.csv"
    other.write_text("timestamp,glucose_mg_dl\n2024-01-01 00:00,100\n")
    assert detect_format(other).name == "csv"
    replay = shared_path("replaybg_example", "data_day_1.csv")
    assert detect_format(replay).name != "azt1d"


def test_zero_filled_rows_are_not_boluses_but_typed_or_dosed_rows_are(tmp_path):
    rows = (
        "2024-01-01 00:00:00,0,0,0.5,0.0,0.0,0.0,0,120\n"  # subject 8 style: no bolus
        "2024-01-01 00:05:00,,,0.5,0.0,1.5,1.5,0,125\n"  # units without a type
        "2024-01-01 00:10:00,,Automatic Bolus/Correction,0.5,0.3,0.3,0,0,130\n"
    )
    insulin = read_file(write(tmp_path, rows), format="azt1d").insulin
    bolus = insulin[insulin["event"] == "bolus"]
    assert bolus["source_line"].tolist() == [3, 4]
    assert bolus["flag"].tolist() == ["bolus_type_missing", "correction_u:0.3"]
    assert bolus["automated"].tolist() == [False, True]


def test_glucose_only_file_has_no_events(tmp_path):
    rows = "2024-01-01 00:00:00,,,,,,,,120\n2024-01-01 00:05:00,,,,,,,,40\n"
    rec = read_file(write(tmp_path, rows), format="azt1d")
    assert rec.counts() == {"glucose": 2, "insulin": 0, "carbs": 0, "activity": 0}
    assert rec.glucose["censored"].tolist() == ["", "below"]


def test_a_year_of_five_minute_rows_imports_fast(tmp_path):
    n = 365 * 288
    stamps = pd.date_range("2023-01-01", periods=n, freq="5min").strftime("%Y-%m-%d %H:%M:%S")
    rng = np.random.default_rng(0)
    frame = pd.DataFrame(
        {
            "EventDateTime": stamps,
            "DeviceMode": "",
            "BolusType": "",
            "Basal": np.repeat(rng.uniform(0, 3, n // 12 + 1), 12)[:n].round(3),
            "CorrectionDelivered": "",
            "TotalBolusInsulinDelivered": "",
            "FoodDelivered": "",
            "CarbSize": "",
            "CGM": rng.integers(40, 401, n),
        }
    )
    path = tmp_path / "Subject 99.csv"
    frame.to_csv(path, index=False)
    read_file(path)  # warm imports
    start = time.perf_counter()
    rec = read_file(path)
    elapsed = time.perf_counter() - start
    assert len(rec.glucose) == n
    assert elapsed < 2.0, f"{elapsed:.2f} s"


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(cell=st.text(max_size=12), column=st.integers(0, 8))
def test_fuzzed_cells_import_or_raise_data_error(tmp_path, cell, column):
    fields = ["2024-01-01 00:10:00", "", "Standard", "0.5", "0.0", "1.0", "1.0", "10", "99"]
    fields[column] = cell.replace(",", "").replace("\n", "").replace("\r", "").replace('"', "")
    path = write(tmp_path, GOOD + ",".join(fields) + "\n")
    try:
        rec = read_file(path, format="azt1d")
    except DataError as exc:
        assert exc.file is not None
    else:
        assert len(rec.glucose) >= 2
