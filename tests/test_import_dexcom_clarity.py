"""Dexcom Clarity CSV importer: the three real samples, mmol/L, DST fall-back and bad input."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from conftest import shared_path
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from glucotwin.data import DataError
from glucotwin.data.formats import ImportOptions, detect_format, read_file
from glucotwin.data.model import MG_DL_PER_MMOL_L, local_time

FOLDER = ("formats", "dexcom_clarity_csv")
G6 = "glucosedao_g6_android_2019-10.csv"
G7 = "glucotrack_g7_ios_2025-11.csv"
BIGIDEAS = "bigideas_physionet_dexcom_001.csv"
TRANSMITTER_TIME = "Transmitter Time (Long Integer)"


def sample(name: str):
    return shared_path(*FOLDER, name)


@pytest.mark.parametrize("name", [G6, G7, BIGIDEAS])
def test_detected_as_dexcom_clarity(name):
    assert detect_format(sample(name)).name == "dexcom_clarity"


def test_g6_android_counts_and_values():
    rec = read_file(sample(G6))
    g = rec.glucose
    cgm = g[g["source"] == "cgm"]
    assert len(cgm) == 3913
    assert (cgm["censored"] == "above").sum() == 13
    assert (cgm["censored"] == "below").sum() == 2
    assert set(cgm.loc[cgm["censored"] == "above", "glucose_mg_dl"]) == {400.0}
    assert set(cgm.loc[cgm["censored"] == "below", "glucose_mg_dl"]) == {40.0}
    sticks = g[g["source"] == "fingerstick"]
    assert len(sticks) == 9
    assert sticks["glucose_mg_dl"].iloc[0] == 93.0  # line 15, 2019-10-14T16:53:05
    assert sticks["source_line"].iloc[0] == 15
    assert cgm["time"].iloc[0] == pd.Timestamp("2019-10-14 16:42:37", tz="UTC")
    assert cgm["time"].iloc[-1] == pd.Timestamp("2019-10-28 23:57:11", tz="UTC")
    assert cgm["utc_offset_min"].isna().all()  # floating local time: no zone given
    assert cgm["device"].unique().tolist() == ["Android G6"]

    ins = rec.insulin
    assert len(ins) == 73 and (ins["event"] == "bolus").all()
    assert (ins["insulin_class"] == "rapid").sum() == 49
    long_acting = ins[ins["insulin_class"] == "long"]
    assert len(long_acting) == 24
    assert long_acting["units_u"].iloc[-1] == 14.0  # last row, line 4011
    assert long_acting["source_line"].iloc[-1] == 4011
    assert rec.carbs["carbs_g"].tolist() == [15.0, 15.0, 15.0, 80.0]
    act = rec.activity
    assert act["intensity"].tolist() == ["light"] * 3
    assert act["duration_min"].tolist() == [45.0] * 3
    assert rec.meta["transmitters"] == ["8GH86L"]
    high = [a for a in rec.meta["alert_settings"] if a["alert"] == "High"]
    assert high == [{"alert": "High", "glucose_mg_dl": 270.0}]


def test_g7_quoted_fields():
    rec = read_file(sample(G7))
    assert len(rec.glucose) == 2772
    assert rec.glucose["glucose_mg_dl"].iloc[0] == 94.0
    assert rec.glucose["time"].iloc[-1] == pd.Timestamp("2025-11-30 18:32:35", tz="UTC")
    assert rec.insulin["units_u"].tolist() == [5.0]
    assert rec.insulin["insulin_class"].tolist() == ["rapid"]
    assert rec.meta["transmitters"] == ["109395413070"]
    assert "REDACTED" not in str(rec.meta)  # names are personal data, never kept


def test_resaved_bigideas_file_uses_patient_identifier():
    rec = read_file(sample(BIGIDEAS))
    assert len(rec.glucose) == 2561
    assert rec.subjects == ["2019-001"]
    assert rec.glucose["glucose_mg_dl"].iloc[0] == 61.0
    assert rec.glucose["time"].iloc[0] == pd.Timestamp("2020-02-13 17:23:32", tz="UTC")
    assert rec.glucose["time"].iloc[-1] == pd.Timestamp("2020-02-22 17:53:23", tz="UTC")
    assert rec.counts() == {"glucose": 2561, "insulin": 0, "carbs": 0, "activity": 0}


def test_fall_back_hour_is_resolved_with_transmitter_time():
    """2019-10-27 03:00-03:59 occurs twice in Kyiv (EEST -> EET at 04:00 local)."""
    rec = read_file(sample(G6), options=ImportOptions(timezone="Europe/Kyiv"))
    g = rec.glucose
    twice = g[local_time(g) == pd.Timestamp("2019-10-27 03:02:18")]
    # line 3516: value 312, transmitter 1081573 s (first pass, +03:00);
    # line 3517: value 296, transmitter 1085173 s = one hour later (second pass, +02:00)
    assert twice["source_line"].tolist() == [3516, 3517]
    assert twice["glucose_mg_dl"].tolist() == [312.0, 296.0]
    assert twice["utc_offset_min"].tolist() == [180, 120]
    assert twice["time"].tolist() == [
        pd.Timestamp("2019-10-27 00:02:18", tz="UTC"),
        pd.Timestamp("2019-10-27 01:02:18", tz="UTC"),
    ]
    # sorted by UTC, the sensor readings follow the transmitter's own clock exactly
    raw = pd.read_csv(sample(G6), dtype=str, keep_default_na=False)
    transmitter_s = pd.to_numeric(raw["Transmitter Time (Long Integer)"], errors="coerce")
    cgm = g[g["source"] == "cgm"]
    seconds = transmitter_s.to_numpy()[cgm["source_line"].to_numpy() - 2]
    assert (np.diff(seconds) > 0).all()
    start = cgm["time"] - pd.to_timedelta(seconds, unit="s")
    assert (start.max() - start.min()).total_seconds() < 60
    assert g["flag"].isna().all()


def test_fall_back_without_transmitter_time_is_flagged(tmp_path):
    text = sample(G6).read_text(encoding="utf-8-sig").splitlines()
    header = text[0]
    rows = [
        "1,2019-10-27T03:10:00,Carbs,,,,Android G6,,,20,,,",
        "2,2019-10-27T02:50:00,EGV,,,,Android G6,100,,,,,1081273,8GH86L",
        "3,2019-10-27T05:00:00,Health,Illness,,,Android G6,,,,,,",
    ]
    path = tmp_path / "dst.csv"
    path.write_text("\n".join([header, *rows]) + "\n")
    rec = read_file(path, options=ImportOptions(timezone="Europe/Kyiv"))
    assert rec.carbs["flag"].tolist() == ["ambiguous_time"]
    assert rec.carbs["utc_offset_min"].tolist() == [180]  # first pass assumed
    assert rec.glucose["flag"].isna().all()
    assert rec.meta["events_not_imported"] == {"Health": 1}
    with pytest.raises(DataError, match="unknown time zone"):
        read_file(path, options=ImportOptions(timezone="Mars/Olympus_Mons"))


def test_mmol_l_export(tmp_path):
    """No real mmol/L sample exists: convert the G7 file's header and values to mmol/L."""
    frame = pd.read_csv(sample(G7), dtype=str, keep_default_na=False)
    mg = pd.to_numeric(frame["Glucose Value (mg/dL)"], errors="coerce")
    frame["Glucose Value (mg/dL)"] = np.where(
        mg.notna(), (mg / MG_DL_PER_MMOL_L).round(1).astype(str), frame["Glucose Value (mg/dL)"]
    )
    frame.loc[frame.index[20], "Glucose Value (mg/dL)"] = "Low"
    frame.loc[frame.index[21], "Glucose Value (mg/dL)"] = "High"
    frame = frame.rename(
        columns={
            "Glucose Value (mg/dL)": "Glucose Value (mmol/L)",
            "Glucose Rate of Change (mg/dL/min)": "Glucose Rate of Change (mmol/L/min)",
        }
    )
    path = tmp_path / "mmol.csv"
    frame.to_csv(path, index=False)
    assert detect_format(path).name == "dexcom_clarity"
    rec = read_file(path)
    g = rec.glucose
    assert rec.meta["glucose_unit"] == "mmol/L"
    assert len(g) == 2772
    assert g["glucose_mg_dl"].iloc[0] == pytest.approx(5.2 * MG_DL_PER_MMOL_L)  # 94 mg/dL
    assert g["censored"].iloc[10:12].tolist() == ["below", "above"]
    assert g["glucose_mg_dl"].iloc[10:12].tolist() == [40.0, 400.0]
    low = next(a for a in rec.meta["alert_settings"] if a["alert"] == "Low")
    assert low["glucose_mg_dl"] == pytest.approx(3.9 * MG_DL_PER_MMOL_L, abs=0.1)  # 70 mg/dL


def _g7_lines() -> list[str]:
    return sample(G7).read_text(encoding="utf-8").splitlines()


def _write(tmp_path, lines: list[str], end: str = "\n"):
    path = tmp_path / "bad.csv"
    path.write_text("\n".join(lines) + end)
    return path


@pytest.mark.parametrize(
    ("line", "old", "new", "field", "message"),
    [
        (12, '"iOS G7","94"', '"iOS G7","abc"', "Glucose Value (mg/dL)", "not a number"),
        (12, '"iOS G7","94"', '"iOS G7","-5"', "glucose_mg_dl", "outside the possible range"),
        (13, '"2025-11-21T00:22:19"', '"2025-11-21T25:22:19"', "Timestamp", "cannot read"),
        (14, '"EGV"', '"Ketone"', "Event Type", "unknown event type"),
        (15, '"2025-11-21T00:32:20"', '""', "Timestamp", "has no timestamp"),
    ],
)
def test_bad_values_name_file_line_and_field(tmp_path, line, old, new, field, message):
    lines = _g7_lines()
    assert old in lines[line - 1]
    lines[line - 1] = lines[line - 1].replace(old, new)
    with pytest.raises(DataError, match=message) as info:
        read_file(_write(tmp_path, lines), format="dexcom_clarity")
    assert info.value.file.endswith("bad.csv")
    assert info.value.line == line
    assert info.value.field.startswith(field)


def test_unknown_unit_and_missing_column(tmp_path):
    lines = _g7_lines()
    lines[0] = lines[0].replace("Glucose Value (mg/dL)", "Glucose Value (mg/L)")
    with pytest.raises(DataError, match="unknown glucose unit") as info:
        read_file(_write(tmp_path, lines), format="dexcom_clarity")
    assert (info.value.line, info.value.field) == (1, "Glucose Value (mg/L)")
    lines = _g7_lines()
    lines[0] = lines[0].replace('"Event Type"', '"Kind"')
    with pytest.raises(DataError, match="Event Type") as info:
        read_file(_write(tmp_path, lines), format="dexcom_clarity")
    assert info.value.line == 1


def test_truncated_file_is_rejected(tmp_path):
    raw = sample(G6).read_bytes()
    path = tmp_path / "cut.csv"
    path.write_bytes(raw[: len(raw) // 2])
    with pytest.raises(DataError, match="truncated") as info:
        read_file(path, format="dexcom_clarity")
    assert info.value.line == raw[: len(raw) // 2].count(b"\n") + 1


def test_missing_final_newline_is_fine_but_a_short_last_row_is_truncated(tmp_path):
    whole = read_file(sample(G7))
    lines = _g7_lines()
    unterminated = read_file(_write(tmp_path, lines, end=""), format="dexcom_clarity")
    assert unterminated.counts() == whole.counts()
    assert unterminated.glucose["glucose_mg_dl"].iloc[-1] == whole.glucose["glucose_mg_dl"].iloc[-1]
    # an Insulin row has 13 fields (no Transmitter ID): complete without a newline too
    insulin = next(line for line in lines if '"Insulin"' in line)
    assert len(insulin.split('","')) == 13
    rec = read_file(_write(tmp_path, [*lines, insulin], end=""), format="dexcom_clarity")
    assert len(rec.insulin) == len(whole.insulin) + 1
    # an EGV row without its Transmitter ID was cut short
    cut = lines[-1][: lines[-1].rindex(",")]
    with pytest.raises(DataError, match=r"truncated.*13 of 14 fields") as info:
        read_file(_write(tmp_path, [*lines[:-1], cut], end=""), format="dexcom_clarity")
    assert (info.value.line, info.value.field) == (len(lines), TRANSMITTER_TIME)


def test_extra_field_and_spring_forward_gap(tmp_path):
    lines = _g7_lines()
    lines[20] += ',"x"'
    with pytest.raises(DataError, match="malformed CSV") as info:
        read_file(_write(tmp_path, lines), format="dexcom_clarity")
    assert info.value.line == 21
    lines = _g7_lines()
    lines[32] = lines[32].replace("2025-11-21T02:", "2025-03-09T02:")  # no 02:xx in New York
    with pytest.raises(DataError, match="does not exist") as info:
        read_file(
            _write(tmp_path, lines),
            format="dexcom_clarity",
            options=ImportOptions(timezone="America/New_York"),
        )
    assert info.value.line == 33


def test_other_formats_are_not_claimed(tmp_path):
    path = tmp_path / "g.csv"
    path.write_text("timestamp,glucose_mg_dl\n2024-01-01 00:00,100\n")
    assert detect_format(path).name == "csv"


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    line=st.integers(min_value=0, max_value=40),
    field=st.integers(min_value=0, max_value=13),
    value=st.text(alphabet=st.characters(codec="utf-8", blacklist_characters='\n\r"'), max_size=12),
)
def test_fuzzed_cells_give_a_recording_or_a_data_error(tmp_path, line, field, value):
    lines = _g7_lines()[:41]
    cells = lines[line].split('","')
    cells[min(field, len(cells) - 1)] = value
    lines[line] = '","'.join(cells)
    try:
        read_file(_write(tmp_path, lines), format="dexcom_clarity")
    except DataError as exc:
        assert exc.file is not None
