"""Nightscout JSON importer: the 41 real/fixture samples, routing by fields, times, bad input."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import SHARED_DATA, shared_path
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from glucotwin.data import DataError
from glucotwin.data.formats import ImportOptions, detect_format, read_file
from glucotwin.data.model import MG_DL_PER_MMOL_L

FOLDER = ("formats", "nightscout_json")
FIXTURES = (*FOLDER, "glycemicgpt_fixtures")


def sample(*parts: str) -> Path:
    return shared_path(*FOLDER, *parts)


def fixture(collection: str, name: str) -> Path:
    return shared_path(*FIXTURES, collection, f"{name}.json")


def write(tmp_path: Path, content, name: str = "ns.json") -> Path:
    path = tmp_path / name
    path.write_text(content if isinstance(content, str) else json.dumps(content))
    return path


# Every GlycemicGPT fixture is a real Nightscout document (none is a README or a schema), so
# each imports. Expected (glucose, insulin, carbs, activity, events, profiles) per file.
FIXTURE_OUTCOMES = {
    "devicestatus/aaps_devicestatus": (0, 0, 0, 0, 0, 0),
    "devicestatus/loop_devicestatus": (0, 0, 0, 0, 0, 0),
    "devicestatus/loop_failure_devicestatus": (0, 0, 0, 0, 0, 0),
    "devicestatus/loop_hybrid_dose_devicestatus": (0, 0, 0, 0, 0, 0),
    "devicestatus/oref0_devicestatus_with_predbgs": (0, 0, 0, 0, 0, 0),
    "devicestatus/trio_devicestatus_with_tdd": (0, 0, 0, 0, 0, 0),
    "entries/cal_calibration": (0, 0, 0, 0, 0, 0),
    "entries/dexcom_bridge_sgv": (1, 0, 0, 0, 0, 0),
    "entries/xdrip_mbg_fingerstick": (1, 0, 0, 0, 0, 0),
    "entries/xdrip_sgv": (1, 0, 0, 0, 0, 0),
    "entries/xdrip_sgv_noisy": (1, 0, 0, 0, 0, 0),
    "profile/multi_store_profile": (0, 0, 0, 0, 0, 2),
    "treatments/aaps_carbs_with_protein_fat": (0, 0, 1, 0, 0, 0),
    "treatments/aaps_effective_profile_switch_as_note": (0, 0, 0, 0, 1, 1),
    "treatments/aaps_extended_bolus_emulating_tbr": (0, 1, 0, 0, 0, 0),
    "treatments/aaps_meal_bolus_carbs_only": (0, 0, 1, 0, 0, 0),
    "treatments/aaps_profile_switch_percentage": (0, 0, 0, 0, 1, 1),
    "treatments/aaps_temp_basal_emulated_suspend": (0, 1, 0, 0, 0, 0),
    "treatments/aaps_temp_basal_superbolus": (0, 1, 0, 0, 0, 0),
    "treatments/aaps_therapy_event_sensor_start": (0, 0, 0, 0, 1, 0),
    "treatments/aaps_therapy_event_site_change": (0, 0, 0, 0, 1, 0),
    "treatments/aaps_v1_smb_correction_bolus": (0, 1, 0, 0, 0, 0),
    "treatments/aaps_v3_smb_correction_bolus": (0, 1, 0, 0, 0, 0),
    "treatments/bolus_wizard_with_carbs": (0, 1, 1, 0, 0, 0),
    "treatments/careportal_combo_bolus": (0, 1, 1, 0, 0, 0),
    "treatments/careportal_meal_bolus": (0, 1, 1, 0, 0, 0),
    "treatments/careportal_profile_switch": (0, 0, 0, 0, 1, 0),
    "treatments/careportal_temp_basal": (0, 1, 0, 0, 0, 0),
    "treatments/careportal_temporary_target": (0, 0, 0, 0, 1, 0),
    "treatments/loop_carb_correction": (0, 0, 1, 0, 0, 0),
    "treatments/loop_correction_bolus": (0, 1, 0, 0, 0, 0),
    "treatments/loop_override_with_remote_address": (0, 0, 0, 0, 1, 0),
    "treatments/loop_pump_suspend_as_temp_basal": (0, 1, 0, 0, 0, 0),
    "treatments/loop_square_bolus": (0, 1, 0, 0, 0, 0),
    "treatments/trio_exercise_override": (0, 0, 0, 1, 0, 0),
    "treatments/trio_temp_target_manual": (0, 0, 0, 0, 1, 0),
    "treatments/xdrip4ios_bg_check_treatment": (1, 0, 0, 0, 0, 0),
    "treatments/xdrip_empty_eventtype_with_carbs": (0, 0, 1, 0, 0, 0),
}
TOP_LEVEL = (
    "cgm-remote-monitor_entries_example.json",
    "cgm-remote-monitor_profile_ns-profile.json",
    "nightscout-librelink-up_entries.json",
)


def test_every_fixture_is_listed():
    root = SHARED_DATA.joinpath(*FIXTURES)
    if not root.is_dir():
        pytest.skip("shared fixtures absent")
    found = {str(p.relative_to(root).with_suffix("")) for p in root.rglob("*.json")}
    assert found == set(FIXTURE_OUTCOMES)
    assert len(found) == 38


@pytest.mark.parametrize("name", sorted(FIXTURE_OUTCOMES))
def test_fixture_imports_with_expected_rows(name):
    path = shared_path(*FIXTURES, f"{name}.json")
    assert detect_format(path).name == "nightscout"
    rec = read_file(path)
    counts = rec.counts()
    got = (
        counts["glucose"],
        counts["insulin"],
        counts["carbs"],
        counts["activity"],
        len(rec.meta["events"]),
        len(rec.meta["profiles"]),
    )
    assert got == FIXTURE_OUTCOMES[name]
    assert rec.meta["format"] == "nightscout"
    json.dumps(rec.meta)


@pytest.mark.parametrize("name", TOP_LEVEL)
def test_top_level_samples_detected(name):
    assert detect_format(sample(name)).name == "nightscout"


# --------------------------------------------------------------------------------- entries


def test_cgm_remote_monitor_entries_drop_status_codes():
    rec = read_file(sample("cgm-remote-monitor_entries_example.json"))
    g = rec.glucose
    assert len(g) == 18  # 30 entries, 12 of them sgv "5" (sensor not calibrated)
    assert rec.meta["dropped"]["sgv_status_codes"] == {"5": 12}
    assert (g["source"] == "cgm").all() and (g["censored"] == "").all()
    # newest first in the file: the oldest reading is the last document
    assert g["time"].iloc[0] == pd.Timestamp("2014-07-19 09:34:15", tz="UTC")
    assert g["source_line"].iloc[0] == 30
    assert g["glucose_mg_dl"].iloc[0] == 169.0  # "169" as a string
    assert g["time"].iloc[-1] == pd.Timestamp("2014-07-19 10:59:15", tz="UTC")
    assert g["glucose_mg_dl"].iloc[-1] == 178.0
    assert (g["utc_offset_min"] == -420).all()  # from dateString "-07:00"
    assert g["device"].unique().tolist() == ["dexcom"]
    assert g["glucose_mg_dl"].sum() == 3137.0  # the 18 values of the file, added by hand


def test_librelink_up_entry():
    rec = read_file(sample("nightscout-librelink-up_entries.json"))
    row = rec.glucose.iloc[0]
    assert row["glucose_mg_dl"] == 188.0
    assert row["time"] == pd.Timestamp("2022-12-30 07:15:40", tz="UTC")
    assert row["utc_offset_min"] == 0
    assert rec.subjects == ["nightscout-librelink-up_entries"]


def test_fixture_entries():
    noisy = read_file(fixture("entries", "xdrip_sgv_noisy")).glucose.iloc[0]
    assert (noisy["glucose_mg_dl"], noisy["flag"]) == (200.0, "noise:heavy")
    clean = read_file(fixture("entries", "xdrip_sgv")).glucose.iloc[0]
    assert pd.isna(clean["flag"]) and clean["device"] == "xDrip-DexcomG6"
    stick = read_file(fixture("entries", "xdrip_mbg_fingerstick")).glucose.iloc[0]
    assert (stick["glucose_mg_dl"], stick["source"]) == (110.0, "fingerstick")
    assert stick["time"] == pd.Timestamp("2026-05-06 13:00", tz="UTC")
    bridge = read_file(fixture("entries", "dexcom_bridge_sgv")).glucose.iloc[0]
    assert bridge["glucose_mg_dl"] == 125.0 and bridge["device"] == "share2"
    cal = read_file(fixture("entries", "cal_calibration"))
    assert cal.meta["dropped"]["cal_entries"] == 1


def test_sgv_39_is_dexcom_low_and_duplicates_are_dropped(tmp_path):
    docs = [
        {"type": "sgv", "sgv": 39, "date": 1_700_000_000_000},
        {"type": "sgv", "sgv": 120, "date": 1_700_000_300_000, "_id": "a"},
        {"type": "sgv", "sgv": 120, "date": 1_700_000_300_000, "_id": "b"},
        {"type": "sgv", "sgv": "9", "date": 1_700_000_600_000},
        {"sgv": 0, "date": 1_700_000_900_000},
    ]
    docs.append({"type": "sensor", "date": 1_700_001_200_000, "unfiltered": 1})
    rec = read_file(write(tmp_path, docs))
    g = rec.glucose
    assert rec.meta["dropped"]["sensor_entries"] == 1
    assert g["glucose_mg_dl"].tolist() == [40.0, 120.0]
    assert g["censored"].tolist() == ["below", ""]
    assert rec.meta["dropped"]["duplicate_glucose"] == 1
    assert rec.meta["dropped"]["sgv_status_codes"] == {"0": 1, "9": 1}
    assert g["utc_offset_min"].isna().all()  # epoch only, no zone anywhere: floating


# ------------------------------------------------------------------------------ treatments


def insulin_row(name: str) -> pd.Series:
    ins = read_file(fixture("treatments", name)).insulin
    assert len(ins) == 1
    return ins.iloc[0]


def test_boluses():
    combo = insulin_row("careportal_combo_bolus")
    assert (combo["delivery"], combo["units_u"], combo["duration_min"]) == ("dual", 6.0, 120.0)
    assert combo["extended_units_u"] == pytest.approx(2.4)  # splitExt 40 % of 6 U
    square = insulin_row("loop_square_bolus")
    assert (square["delivery"], square["units_u"], square["extended_units_u"]) == (
        "extended",
        2.5,
        2.5,
    )
    assert square["duration_min"] == 45.0 and square["insulin_name"] == "Humalog"
    for smb in ("aaps_v1_smb_correction_bolus", "aaps_v3_smb_correction_bolus"):
        row = insulin_row(smb)
        assert (row["units_u"], row["automated"], row["delivery"]) == (0.3, True, "normal")
    loop = insulin_row("loop_correction_bolus")
    assert (loop["units_u"], loop["automated"]) == (0.45, True)  # Loop automatic bolus
    assert np.isnan(loop["duration_min"])  # a normal bolus's delivery time is not kept
    meal = read_file(fixture("treatments", "careportal_meal_bolus"))
    assert meal.insulin["units_u"].tolist() == [5.0]
    assert not meal.insulin["automated"].iloc[0]
    assert meal.carbs["carbs_g"].tolist() == [60.0]


def test_bolus_wizard_keeps_insulin_and_carbs_not_sensor_glucose():
    rec = read_file(fixture("treatments", "bolus_wizard_with_carbs"))
    assert rec.insulin["units_u"].tolist() == [4.5]
    assert rec.carbs["carbs_g"].tolist() == [50.0]
    assert rec.carbs["note"].tolist() == ["lunch via wizard"]
    assert len(rec.glucose) == 0  # glucoseType Sensor: a copy of a CGM reading
    assert rec.meta["dropped"]["sensor_glucose_on_treatments"] == 1


def test_temp_basals_and_suspends():
    careportal = insulin_row("careportal_temp_basal")
    assert (careportal["delivery"], careportal["rate_u_per_h"]) == ("temporary", 0.8)
    assert careportal["duration_min"] == 30.0 and not careportal["automated"]
    loop_suspend = insulin_row("loop_pump_suspend_as_temp_basal")
    assert (loop_suspend["delivery"], loop_suspend["rate_u_per_h"]) == ("suspend", 0.0)
    assert loop_suspend["automated"]  # Loop marks it automatic
    aaps_suspend = insulin_row("aaps_temp_basal_emulated_suspend")
    assert (aaps_suspend["delivery"], aaps_suspend["duration_min"]) == ("suspend", 60.0)
    assert not aaps_suspend["automated"]  # a user suspend
    emulated = insulin_row("aaps_extended_bolus_emulating_tbr")
    assert (emulated["event"], emulated["rate_u_per_h"], emulated["automated"]) == (
        "basal",
        1.5,
        True,
    )
    superbolus = insulin_row("aaps_temp_basal_superbolus")
    assert superbolus["rate_u_per_h"] == 4.0 and not superbolus["automated"]


def test_carbs_fingerstick_exercise():
    fat = read_file(fixture("treatments", "aaps_carbs_with_protein_fat")).carbs.iloc[0]
    assert fat["carbs_g"] == 60.0
    assert fat["note"] == "pizza dinner; protein 30 g; fat 25 g"
    loop = read_file(fixture("treatments", "loop_carb_correction")).carbs.iloc[0]
    assert (loop["carbs_g"], loop["note"]) == (42.0, "Pizza")
    assert loop["time"] == pd.Timestamp("2026-05-06 13:15", tz="UTC")
    untyped = read_file(fixture("treatments", "xdrip_empty_eventtype_with_carbs")).carbs
    assert untyped["carbs_g"].tolist() == [30.0]
    only = read_file(fixture("treatments", "aaps_meal_bolus_carbs_only"))
    assert only.carbs["carbs_g"].tolist() == [30.0] and len(only.insulin) == 0
    stick = read_file(fixture("treatments", "xdrip4ios_bg_check_treatment")).glucose.iloc[0]
    assert (stick["glucose_mg_dl"], stick["source"]) == (120.0, "fingerstick")
    run = read_file(fixture("treatments", "trio_exercise_override")).activity.iloc[0]
    assert (run["activity_type"], run["duration_min"]) == ("exercise", 60.0)


def test_therapy_events_in_meta():
    site = read_file(fixture("treatments", "aaps_therapy_event_site_change")).meta["events"]
    assert site == [
        {
            "time": "2026-05-06T08:00:00+00:00",
            "utc_offset_min": 0,
            "event": "Site Change",
            "source_line": 1,
            "duration_min": 0,
            "notes": "infusion set replaced",
        }
    ]
    target = read_file(fixture("treatments", "careportal_temporary_target")).meta["events"][0]
    assert (target["target_bottom"], target["target_top"], target["duration_min"]) == (80, 90, 60)
    sensor = read_file(fixture("treatments", "aaps_therapy_event_sensor_start")).meta["events"]
    assert sensor[0]["transmitter_id"] == "ABCDEF"


def test_profile_switch_profile_json():
    rec = read_file(fixture("treatments", "aaps_profile_switch_percentage"))
    (profile,) = rec.meta["profiles"]
    assert profile["name"] == "MyProfile" and profile["percentage"] == 110.0
    assert profile["duration_min"] == 120.0
    assert profile["basal_u_per_h"] == [{"start": "00:00", "start_s": 0, "value": 0.85}]
    assert profile["valid_from"] == "2026-05-06T16:00:00+00:00"
    note = read_file(fixture("treatments", "aaps_effective_profile_switch_as_note"))
    assert note.meta["profiles"][0]["basal_u_per_h"][0]["value"] == 0.68
    assert note.meta["profiles"][0]["duration_min"] == 120.0  # originalDuration 7,200,000 ms
    assert note.meta["events"][0]["event"] == "Note"


# -------------------------------------------------------------------------------- profiles


def test_ns_profile_numbers_as_numbers():
    rec = read_file(sample("cgm-remote-monitor_profile_ns-profile.json"))
    (profile,) = rec.meta["profiles"]
    assert profile["default"] and profile["name"] == "Default"
    assert profile["timezone"] == "America/Los_Angeles" and profile["units"] == "mg/dL"
    assert profile["dia_h"] == 3.0 and profile["carbs_hr_g_per_h"] == 30.0
    assert profile["valid_from"] == "2015-08-17T04:20:00+00:00"
    basal = profile["basal_u_per_h"]
    assert len(basal) == 10
    assert basal[2] == {"start": "03:30", "start_s": 12600, "value": 0.525}
    assert sum(b["value"] for b in basal) == pytest.approx(6.2)
    assert [c["value"] for c in profile["carb_ratio_g_per_u"]] == [18.0, 12.0, 20.0, 20.0, 18.0]
    assert profile["sensitivity_mg_dl_per_u"] == [{"start": "00:00", "start_s": 0, "value": 90.0}]
    assert profile["target_low_mg_dl"][0]["value"] == 115.0
    assert rec.counts() == {"glucose": 0, "insulin": 0, "carbs": 0, "activity": 0}


def test_multi_store_profile():
    profiles = read_file(fixture("profile", "multi_store_profile")).meta["profiles"]
    assert [(p["name"], p["default"]) for p in profiles] == [
        ("Default", True),
        ("Exercise", False),
    ]
    first = profiles[0]
    assert first["basal_u_per_h"][0] == {"start": "06:00", "start_s": 21600, "value": 0.85}
    assert [s["value"] for s in first["target_high_mg_dl"]] == [130.0, 140.0]
    assert profiles[1]["sensitivity_mg_dl_per_u"][0]["value"] == 70.0


def test_mmol_profile_converted(tmp_path):
    doc = {
        "defaultProfile": "A",
        "startDate": "2024-01-01T00:00:00Z",
        "store": {
            "A": {
                "units": "mmol",
                "dia": "5",
                "sens": [{"time": "00:00", "value": "2.5"}],
                "target_low": [{"time": "00:00", "value": 5.5}],
                "basal": [{"time": "00:30", "value": 0.7}],
            }
        },
    }
    (profile,) = read_file(write(tmp_path, doc)).meta["profiles"]
    assert profile["sensitivity_mg_dl_per_u"][0]["value"] == pytest.approx(2.5 * MG_DL_PER_MMOL_L)
    assert profile["target_low_mg_dl"][0]["value"] == pytest.approx(5.5 * MG_DL_PER_MMOL_L)
    assert profile["basal_u_per_h"] == [{"start": "00:30", "start_s": 1800, "value": 0.7}]


def test_devicestatus_summary_only():
    rec = read_file(fixture("devicestatus", "loop_failure_devicestatus"))
    assert rec.meta["devicestatus"] == {
        "documents": 1,
        "first": "2026-05-06T15:00:00+00:00",
        "last": "2026-05-06T15:00:00+00:00",
        "devices": {"loop://iPhone": 1},
        "pumps": ["Insulet Omnipod DASH"],
        "loop_failures": 1,
    }
    oref = read_file(fixture("devicestatus", "oref0_devicestatus_with_predbgs")).meta
    assert "predBGs" not in json.dumps(oref)


# ------------------------------------------------------------------------ file structures


def test_mixed_array_wrapper_and_json_lines(tmp_path):
    entry = {"type": "sgv", "sgv": 100, "dateString": "2024-03-01T08:00:00+01:00"}
    bolus = {
        "eventType": "Meal Bolus",
        "insulin": "2.5",
        "carbs": "30",
        "created_at": "2024-03-01T08:05:00+01:00",
    }
    status = {"device": "loop://x", "created_at": "2024-03-01T08:00:00Z", "loop": {}}
    mixed = read_file(write(tmp_path, [entry, bolus, status], "mixed.json"))
    wrapped = read_file(
        write(
            tmp_path,
            {"entries": [entry], "treatments": [bolus], "devicestatus": [status]},
            "wrapped.json",
        )
    )
    lines = read_file(
        write(
            tmp_path, "\n".join(json.dumps(d) for d in (entry, bolus, status)) + "\n", "lines.json"
        )
    )
    for rec in (mixed, wrapped, lines):
        assert rec.glucose["glucose_mg_dl"].tolist() == [100.0]
        assert rec.glucose["utc_offset_min"].tolist() == [60]
        assert rec.insulin["units_u"].tolist() == [2.5]
        assert rec.carbs["carbs_g"].tolist() == [30.0]
        assert rec.carbs["time"].iloc[0] == pd.Timestamp("2024-03-01 07:05", tz="UTC")
        assert rec.meta["devicestatus"]["documents"] == 1
    assert lines.insulin["source_line"].tolist() == [2]


def test_mongoexport_extended_json(tmp_path):
    text = "\n".join(
        [
            '{"_id":{"$oid":"5f0"},"type":"sgv","sgv":{"$numberInt":"142"},'
            '"date":{"$numberLong":"1700000000000"},"dateString":"2023-11-14T22:13:20Z"}',
            '{"_id":{"$oid":"5f1"},"eventType":"Correction Bolus",'
            '"insulin":{"$numberDouble":"1.5"},"created_at":{"$date":"2023-11-14T22:15:00.000Z"}}',
            '{"_id":{"$oid":"5f2"},"eventType":"Correction Bolus","insulin":1,'
            '"created_at":{"$date":{"$numberLong":"1700001000000"}}}',
        ]
    )
    rec = read_file(write(tmp_path, text, "mongo.json"))
    assert rec.glucose["glucose_mg_dl"].tolist() == [142.0]
    assert rec.glucose["utc_offset_min"].tolist() == [0]
    assert rec.insulin["units_u"].tolist() == [1.5, 1.0]
    assert rec.insulin["time"].iloc[1] == pd.Timestamp(1_700_001_000_000, unit="ms", tz="UTC")


def test_temp_basals_end_at_next_temp_or_end_marker(tmp_path):
    def temp(minute, **fields):
        return {
            "eventType": "Temp Basal",
            "created_at": f"2024-01-01T10:{minute:02d}:00Z",
            "enteredBy": "openaps://AndroidAPS",
            **fields,
        }

    docs = [
        temp(0, absolute=1.2, duration=30),
        temp(5, absolute=0.5, duration=30),  # replaces the first after 5 min
        temp(5, absolute=0.5, duration=30),  # same instant: a duplicate upload
        temp(20, duration=0),  # cancels the second after 15 min
        temp(40, percent=-100, duration=30),  # zero temp from a percentage
        temp(45, percent=50, duration=30),  # +50 % of the unknown scheduled rate
        {"eventType": "Suspend Pump", "created_at": "2024-01-01T11:30:00Z"},
        {"eventType": "Resume Pump", "created_at": "2024-01-01T11:42:00Z"},
    ]
    rec = read_file(write(tmp_path, docs))
    basal = rec.insulin
    assert basal["duration_min"].tolist()[:4] == [5.0, 15.0, 5.0, 30.0]
    assert basal["rate_u_per_h"].tolist()[:3] == [1.2, 0.5, 0.0]
    assert np.isnan(basal["rate_u_per_h"].iloc[3]) and basal["flag"].iloc[3] == "percent:+50"
    assert basal["delivery"].tolist() == ["temporary"] * 4 + ["suspend"]
    assert basal["duration_min"].iloc[4] == 12.0  # Suspend Pump → Resume Pump
    assert basal["automated"].tolist() == [True] * 4 + [False]
    assert rec.meta["dropped"]["duplicate_temp_basals"] == 1
    assert rec.meta["dropped"]["temp_basals_cut_short"] == 3


def test_device_from_uploader_app_never_a_person(tmp_path):
    assert insulin_row("aaps_v1_smb_correction_bolus")["device"] == "openaps://AndroidAPS"
    assert insulin_row("loop_square_bolus")["device"] == "loop://iPhone"
    assert pd.isna(insulin_row("careportal_temp_basal")["device"])  # enteredBy "test-user"
    trio = {
        "eventType": "Correction Bolus",
        "insulin": 1,
        "enteredBy": "Trio",
        "created_at": "2024-01-01T00:00:00Z",
    }
    assert read_file(write(tmp_path, [trio])).insulin["device"].tolist() == ["Trio"]


def test_extended_bolus_emulating_temp_basal_is_not_counted_twice(tmp_path):
    tbr = json.loads(fixture("treatments", "aaps_extended_bolus_emulating_tbr").read_text())
    combo = {**tbr["extendedEmulated"], "created_at": tbr["created_at"]}
    rec = read_file(write(tmp_path, [tbr, combo]))
    assert rec.insulin["event"].tolist() == ["basal"]
    assert rec.meta["dropped"]["extended_boluses_emulating_temp_basals"] == 1


def test_aaps_extended_bolus_combo(tmp_path):
    doc = {
        "eventType": "Combo Bolus",
        "created_at": "2024-01-01T10:00:00Z",
        "duration": 60,
        "splitNow": 0,
        "splitExt": 100,
        "enteredinsulin": 2.0,
        "relative": 2.0,
    }
    row = read_file(write(tmp_path, [doc])).insulin.iloc[0]
    assert (row["delivery"], row["units_u"], row["extended_units_u"]) == ("extended", 2.0, 2.0)


# ----------------------------------------------------------------------------------- times


def test_times_and_offsets(tmp_path):
    docs = [
        {"eventType": "Note", "notes": "a", "created_at": "2024-07-01T12:00:00+02:00"},
        {"eventType": "Note", "notes": "b", "created_at": "2024-07-01T10:00:00Z"},
        {
            "eventType": "Note",
            "notes": "c",
            "created_at": "2024-07-01T10:00:00Z",
            "utcOffset": -300,
        },
        {"eventType": "Note", "notes": "d", "created_at": "2024-07-01T12:00:00"},
    ]
    events = read_file(write(tmp_path, docs)).meta["events"]
    assert [(e["time"], e["utc_offset_min"]) for e in events] == [
        ("2024-07-01T10:00:00+00:00", 120),
        ("2024-07-01T10:00:00+00:00", 0),
        ("2024-07-01T10:00:00+00:00", -300),
        ("2024-07-01T12:00:00+00:00", None),  # floating local time
    ]
    zoned = read_file(write(tmp_path, docs), options=ImportOptions(timezone="Europe/Berlin"))
    assert [e["utc_offset_min"] for e in zoned.meta["events"]] == [120, 120, -300, 120]
    assert zoned.meta["events"][3]["time"] == "2024-07-01T10:00:00+00:00"


def test_naive_date_string_with_epoch_gives_offset(tmp_path):
    doc = {
        "type": "sgv",
        "sgv": 100,
        "date": 1_719_828_000_000,
        "dateString": "2024-07-01T12:00:00",
    }
    row = read_file(write(tmp_path, [doc])).glucose.iloc[0]
    assert row["time"] == pd.Timestamp("2024-07-01 10:00", tz="UTC")
    assert row["utc_offset_min"] == 120


# ------------------------------------------------------------------------------- bad input


def test_truncated_sample_names_the_line(tmp_path):
    text = sample("cgm-remote-monitor_entries_example.json").read_text()
    path = write(tmp_path, text[: len(text) // 2], "truncated.json")
    with pytest.raises(DataError) as err:
        read_file(path)
    assert err.value.file is not None and err.value.line is not None
    assert "malformed JSON" in err.value.message
    assert err.value.line > 100


@pytest.mark.parametrize(
    ("docs", "field", "line", "message"),
    [
        (
            [
                {"type": "sgv", "sgv": 100, "date": 1.7e12},
                {"type": "sgv", "sgv": "abc", "date": 1.7e12},
            ],
            "sgv",
            2,
            "'abc' is not a number",
        ),
        ([{"type": "sgv", "sgv": -5, "date": 1.7e12}], "sgv", 1, "negative"),
        ([{"type": "sgv", "date": 1.7e12}], "sgv", 1, "without a value"),
        ([{"type": "sgv", "sgv": 100, "date": 1_700_000_000}], "date", 1, "milliseconds"),
        ([{"type": "sgv", "sgv": 100}], "date", 1, "no time"),
        ([{"type": "sgv", "sgv": 100, "dateString": "yesterday"}], "dateString", 1, "yesterday"),
        (
            [
                {
                    "eventType": "BG Check",
                    "glucose": 6.2,
                    "units": "mmol/mol",
                    "created_at": "2024-01-01T00:00:00Z",
                }
            ],
            "units",
            1,
            "unknown glucose unit",
        ),
        (
            [{"eventType": "BG Check", "glucose": 6.2, "created_at": "2024-01-01T00:00:00Z"}],
            "units",
            1,
            "no units",
        ),
        (
            [{"eventType": "Meal Bolus", "insulin": "x", "created_at": "2024-01-01T00:00:00Z"}],
            "insulin",
            1,
            "not a number",
        ),
        (
            [{"eventType": "Meal Bolus", "insulin": True, "created_at": "2024-01-01T00:00:00Z"}],
            "insulin",
            1,
            "not a number",
        ),
        (
            [{"eventType": "Meal Bolus", "insulin": 400, "created_at": "2024-01-01T00:00:00Z"}],
            "units_u",
            1,
            "outside the possible range",
        ),
        (
            [
                {"eventType": "Meal Bolus", "carbs": 5, "created_at": "2024-01-01T00:00:00Z"},
                {"foo": 1},
            ],
            None,
            2,
            "not a Nightscout",
        ),
        (
            [{"store": {"A": {"basal": [{"time": "00:00", "value": 1}]}}}],
            "store.A.units",
            1,
            "units",
        ),
        ([{"store": {"A": {"units": "mmol/mol"}}}], "store.A.units", 1, "unknown glucose unit"),
        (
            [{"store": {"A": {"units": "mg/dl", "basal": [{"time": "25:00", "value": 1}]}}}],
            "store.A.basal[0].timeAsSeconds",
            1,
            "outside one day",
        ),
        (
            [{"store": {"A": {"units": "mg/dl", "basal": [{"time": "00:00", "value": "n"}]}}}],
            "store.A.basal[0].value",
            1,
            "not a number",
        ),
        (
            [
                {
                    "eventType": "Profile Switch",
                    "profileJson": "{",
                    "created_at": "2024-01-01T00:00Z",
                }
            ],
            "profileJson",
            1,
            "not JSON",
        ),
        ([5], None, 1, "not a JSON object"),
    ],
)
def test_bad_documents(tmp_path, docs, field, line, message):
    with pytest.raises(DataError) as err:
        read_file(write(tmp_path, docs), format="nightscout")
    assert err.value.field == field
    assert err.value.line == line
    assert message in err.value.message
    assert err.value.file is not None and err.value.file.endswith("ns.json")


@pytest.mark.parametrize("content", ["", "[]", "not json", '"text"', "{}"])
def test_not_nightscout_files(tmp_path, content):
    with pytest.raises(DataError):
        read_file(write(tmp_path, content), format="nightscout")


def test_does_not_claim_other_json(tmp_path):
    tidepool = shared_path("formats", "tidepool_json", "tidepoolapi_docs_client_examples.json")
    copied = shutil.copy(tidepool, tmp_path / "t.json")
    from glucotwin.data.importers.nightscout import FORMAT

    head = Path(copied).read_bytes()[:65536]
    assert not FORMAT.sniff(Path(copied), head)
    assert not FORMAT.sniff(tmp_path / "x.json", b'{"resourceType": "Bundle", "entry": []}')
    assert not FORMAT.sniff(tmp_path / "x.csv", b"timestamp,glucose_mg_dl\n")


DOCUMENT_VALUES = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(10**13), 10**13),
    st.floats(allow_nan=False, allow_infinity=False),
    st.sampled_from(["", "5", "abc", "2024-01-01T00:00:00Z", "Temp Basal", "mmol", "sgv"]),
    st.just({"$numberLong": "1700000000000"}),
    st.lists(st.integers(), max_size=2),
)
DOCUMENTS = st.dictionaries(
    st.sampled_from(
        [
            "type",
            "sgv",
            "mbg",
            "date",
            "dateString",
            "eventType",
            "insulin",
            "carbs",
            "created_at",
            "absolute",
            "percent",
            "duration",
            "glucose",
            "units",
            "utcOffset",
            "splitExt",
            "enteredinsulin",
            "noise",
        ]
    ),
    DOCUMENT_VALUES,
    max_size=8,
)


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(st.lists(DOCUMENTS, max_size=5))
def test_fuzzed_documents_raise_data_error_or_import(tmp_path, docs):
    path = write(tmp_path, docs, "fuzz.json")
    try:
        rec = read_file(path, format="nightscout")
    except DataError:
        return
    json.dumps(rec.meta)
    for stream in ("glucose", "insulin", "carbs", "activity"):
        assert rec.table(stream)["time"].notna().all()
