"""Glooko export ZIP importer: the demo export, a German export, and bad input."""

from __future__ import annotations

import io
import zipfile

import pandas as pd
import pytest
from conftest import shared_path
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from glucotwin.data import DataError
from glucotwin.data.errors import UnknownFormatError
from glucotwin.data.formats import ImportOptions, detect_format, read_file
from glucotwin.data.model import MG_DL_PER_MMOL_L, local_time

DEMO = "glookodatawebapp_joshua-demo-data.zip"
META_EN = "Name:Test Person,Date Range:2026-01-01 - 2026-01-02"
META_DE = "Name:Test Person,Datumsbereich:01.08.2026 - 03.08.2026"


def demo():
    return shared_path("formats", "glooko_csv", DEMO)


def make_zip(tmp_path, members: dict[str, str], name: str = "export.zip"):
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for member, text in members.items():
            archive.writestr(member, text)
    path = tmp_path / name
    path.write_bytes(buffer.getvalue())
    return path


def test_demo_export_is_detected_and_read():
    path = demo()
    assert detect_format(path).name == "glooko"
    rec = read_file(path)
    assert rec.counts() == {"glucose": 13392, "insulin": 8027, "carbs": 296, "activity": 0}
    g = rec.glucose
    assert (g["source"] == "cgm").all() and set(g["device"]) == {"DXC4B2P"}
    first, last = g.iloc[0], g.iloc[-1]
    assert first["glucose_mg_dl"] == pytest.approx(5.5 * MG_DL_PER_MMOL_L)
    assert first["time"] == pd.Timestamp("2023-12-16 00:01:58", tz="UTC")
    assert (first["source_file"], first["source_line"]) == (f"{DEMO}/cgm_data_1.csv", 3)
    assert last["glucose_mg_dl"] == pytest.approx(8.2 * MG_DL_PER_MMOL_L)
    assert (last["source_file"], last["source_line"]) == (f"{DEMO}/cgm_data_3.csv", 4466)
    assert g["time"].is_monotonic_increasing  # three consecutive files joined in order

    ins = rec.insulin
    boluses, basal = ins[ins["event"] == "bolus"], ins[ins["event"] == "basal"]
    assert len(boluses) == 358 and boluses["units_u"].sum() == pytest.approx(357.6)
    assert (boluses["delivery"] == "normal").all()
    assert len(basal) == 7669 and (basal["delivery"] == "scheduled").all()
    assert (basal["duration_min"] == 5).all()
    assert basal["time"].iloc[0] == pd.Timestamp("2024-01-04 00:01:48", tz="UTC")
    assert basal["rate_u_per_h"].iloc[0] == 0.47
    # carbs come with the 296 meal boluses (the 62 corrections have 0 g)
    assert rec.carbs["carbs_g"].sum() == 3880.0
    assert rec.carbs["carbs_g"].iloc[0] == 10.0

    assert rec.meta["glucose_unit"] == "mmol/L"
    assert rec.meta["date_range"] == "2023-12-16 - 2024-01-31"
    assert len(rec.meta["empty_files"]) == 9
    assert rec.meta["files"]["basal_data_2.csv"] == 3835


def test_german_export_with_folders_and_decimal_commas(tmp_path):
    members = {
        "cgm_data_1.csv": f"{META_DE}\nZeitstempel,CGM-Glukosewert (mg/dl),Seriennummer\n"
        '01.08.2026 10:00,"100,0",G7X\n01.08.2026 10:05,"104,0",G7X\n',
        "Insulin data/bolus_data_1.csv": f"{META_DE}\n"
        "Zeitstempel,Insulin-Typ,Blutzuckereingabe (mg/dl),Kohlenhydrataufnahme (g),"
        "Kohlenhydratverhältnis,Abgegebenes Insulin (E),Anfängliche Abgabe (E),"
        "Verzögerte Abgabe (E),Seriennummer\n"
        '01.08.2026 12:00,Normal,120,"45,0",10,"4,5","3,0","1,5",PDM1\n'
        '01.08.2026 18:00,Normal,,0,10,"2,0",,,PDM1\n',
        "Insulin data/basal_data_1.csv": f"{META_DE}\n"
        "Zeitstempel,Insulin-Typ,Dauer (Minuten),Prozentsatz (%),Rate,"
        "Abgegebenes Insulin (E),Seriennummer\n"
        '01.08.2026 00:00,Geplant,600,,"0,8",,PDM1\n'
        "01.08.2026 10:00,Temporär,60,50,,,PDM1\n",
        "Insulin data/insulin_data_1.csv": f"{META_DE}\n"
        "Zeitstempel,Bolus gesamt (E),Insulin gesamt (E),Basal gesamt (E),Seriennummer\n"
        '01.08.2026 00:00,"6,5","25,7","19,2",PDM1\n',
        "manual_insulin_data_1.csv": f"{META_DE}\nZeitstempel,Name,Wert,Insulin-Typ\n"
        "01.08.2026 22:00,Tresiba,14,Langwirksam\n",
        "exercise_data_1.csv": f"{META_DE}\nZeitstempel,Name,Dauer (Minuten),Intensität\n"
        "01.08.2026 17:00,Radfahren,45,Mittel\n",
        "alarms_data_1.csv": f"{META_DE}\nZeitstempel,Alarm/Ereignis,Seriennummer\n"
        "01.08.2026 03:00,Niedrig,PDM1\n",
    }
    path = make_zip(tmp_path, members)
    assert detect_format(path).name == "glooko"
    rec = read_file(path, options=ImportOptions(timezone="Europe/Berlin"))
    g = rec.glucose
    assert g["glucose_mg_dl"].tolist() == [100.0, 104.0]
    assert g["utc_offset_min"].tolist() == [120, 120]
    assert local_time(g).iloc[0] == pd.Timestamp("2026-08-01 10:00")
    ins = rec.insulin
    boluses = ins[(ins["event"] == "bolus") & (ins["insulin_class"] == "rapid")]
    assert boluses["delivery"].tolist() == ["dual", "normal"]
    assert boluses["units_u"].tolist() == [4.5, 2.0]
    assert boluses["extended_units_u"].iloc[0] == 1.5
    pen = ins[ins["insulin_class"] == "long"]
    assert (pen["units_u"].tolist(), pen["insulin_name"].tolist()) == ([14.0], ["Tresiba"])
    basal = ins[ins["event"] == "basal"]
    assert basal["delivery"].tolist() == ["scheduled", "temporary"]
    assert basal["rate_u_per_h"].iloc[0] == 0.8
    assert basal["flag"].iloc[1] == "percent=50"  # no rate given, only a percentage
    assert rec.carbs["carbs_g"].tolist() == [45.0]
    assert rec.activity["activity_type"].tolist() == ["radfahren"]
    assert rec.activity["duration_min"].tolist() == [45.0]
    assert rec.meta["daily_insulin_totals"] == {
        "2026-08-01": {"basal_u": 19.2, "bolus_u": 6.5, "insulin_u": 25.7}
    }
    assert rec.meta["not_imported"] == {"alarms": 1}
    assert len(ins) == 5  # daily totals never become boluses


def test_tab_separated_mg_dl_and_split_stream(tmp_path):
    head = "Name:X\tDate Range:2026-01-01 - 2026-01-02\nTimestamp\tCGM Glucose Value (mg/dl)\n"
    path = make_zip(
        tmp_path,
        {
            "cgm_data_2.csv": head + "2026-01-01 10:05\t110\n",
            "cgm_data_1.csv": head + "2026-01-01 10:00\t100\n",
            "bg_data_1.csv": head.replace("CGM Glucose", "Glucose") + "2026-01-01 10:02\t95\n",
        },
    )
    rec = read_file(path)
    assert rec.glucose["glucose_mg_dl"].tolist() == [100.0, 95.0, 110.0]
    assert rec.glucose["source"].tolist() == ["cgm", "fingerstick", "cgm"]


def _cgm_zip(tmp_path, header: str, rows: str):
    return make_zip(tmp_path, {"cgm_data_1.csv": f"{META_EN}\n{header}\n{rows}"})


@pytest.mark.parametrize(
    ("header", "rows", "line", "field", "message"),
    [
        (
            "Timestamp,CGM Glucose Value (mg/dl)",
            "2026-01-01 10:00,100\n2026-01-01 10:05,abc\n",
            4,
            "CGM Glucose Value (mg/dl)",
            "not a number",
        ),
        (
            "Timestamp,CGM Glucose Value (mg/dl)",
            "2026-01-01 10:00,-5\n",
            3,
            "glucose_mg_dl",
            "outside the possible range",
        ),
        (
            "Timestamp,CGM Glucose Value (mg/l)",
            "2026-01-01 10:00,100\n",
            2,
            "CGM Glucose Value (mg/l)",
            "unknown glucose unit",
        ),
        (
            "Time,CGM Glucose Value (mg/dl)",
            "2026-01-01 10:00,100\n",
            2,
            "Timestamp",
            "no 'Timestamp' column",
        ),
        (
            "Timestamp,CGM Glucose Value (mg/dl)",
            "2026-01-01 10:00,100\n2026-13-01 10:05,90\n",
            4,
            "Timestamp",
            "cannot read",
        ),
    ],
)
def test_bad_values_name_member_line_and_field(tmp_path, header, rows, line, field, message):
    path = _cgm_zip(tmp_path, header, rows)
    with pytest.raises(DataError, match=message) as info:
        read_file(path, format="glooko")
    assert info.value.file.endswith("export.zip/cgm_data_1.csv")
    assert (info.value.line, info.value.field) == (line, field)


def test_member_without_final_newline_imports_but_a_ragged_last_row_is_truncated(tmp_path):
    header = "Timestamp,CGM Glucose Value (mg/dl),Serial Number"
    rec = read_file(_cgm_zip(tmp_path, header, "2026-01-01 10:00,100,SN1\n2026-01-01 10:05,90,SN1"))
    assert rec.glucose["glucose_mg_dl"].tolist() == [100.0, 90.0]
    path = _cgm_zip(tmp_path, header, "2026-01-01 10:00,100,SN1\n2026-01-01 10:05,90")
    with pytest.raises(DataError, match="truncated") as info:
        read_file(path, format="glooko")
    assert info.value.file.endswith("export.zip/cgm_data_1.csv")
    assert (info.value.line, info.value.field) == (4, "CGM Glucose Value (mg/dl)")


def test_unknown_basal_type_and_damaged_zip(tmp_path):
    path = make_zip(
        tmp_path,
        {
            "basal_data_1.csv": f"{META_EN}\nTimestamp,Insulin Type,Duration (minutes),Rate\n"
            "2026-01-01 00:00,Scheduled,30,0.5\n2026-01-01 00:30,Mystery,30,0.5\n"
        },
    )
    with pytest.raises(DataError, match="unknown basal type") as info:
        read_file(path, format="glooko")
    assert (info.value.line, info.value.field) == (4, "Insulin Type")
    raw = demo().read_bytes()
    cut = tmp_path / "cut.zip"
    cut.write_bytes(raw[: len(raw) // 2])
    with pytest.raises(DataError, match="ZIP") as info:
        read_file(cut, format="glooko")
    assert info.value.file.endswith("cut.zip")


def test_other_zips_are_not_claimed(tmp_path):
    path = make_zip(tmp_path, {"readme.txt": "hello"}, name="other.zip")
    with pytest.raises(UnknownFormatError):
        detect_format(path)
    with pytest.raises(DataError, match="no Glooko stream files"):
        read_file(path, format="glooko")


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    stream=st.sampled_from(["cgm", "bolus", "basal"]),
    line=st.integers(min_value=2, max_value=6),
    field=st.integers(min_value=0, max_value=4),
    value=st.text(
        alphabet=st.characters(codec="utf-8", blacklist_characters='\n\r\t"'), max_size=12
    ),
)
def test_fuzzed_cells_give_a_recording_or_a_data_error(tmp_path, stream, line, field, value):
    with zipfile.ZipFile(demo()) as archive:
        lines = archive.read(f"{stream}_data_1.csv").decode().splitlines()[:7]
    cells = lines[line].split("\t")
    cells[min(field, len(cells) - 1)] = value
    lines[line] = "\t".join(cells)
    path = make_zip(tmp_path, {f"{stream}_data_1.csv": "\n".join(lines) + "\n"})
    try:
        read_file(path, format="glooko")
    except DataError as exc:
        assert exc.file.startswith("export.zip")
