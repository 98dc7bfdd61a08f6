"""Exporters: generic CSV and Nightscout JSON round trips, refusals and atomic writes."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import shared_path
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from glucotwin.data import DataError
from glucotwin.data.exporters import write_csv, write_nightscout
from glucotwin.data.formats import ImportOptions, read_file
from glucotwin.data.model import Recording

JELLYFISH = ("formats", "tidepool_json", "data-analytics_PHI-jill-jellyfish-lite.json")
NS_ENTRIES = ("formats", "nightscout_json", "cgm-remote-monitor_entries_example.json")
START = pd.Timestamp("2024-03-30 22:00", tz="UTC")


def rows(table: pd.DataFrame, *columns: str) -> list[tuple]:
    """Rows as tuples, NA as None, sorted by time: for comparing tables read back."""
    picked = table[["time", *columns]].astype(object).where(table[["time", *columns]].notna())
    return sorted(
        (tuple(None if pd.isna(v) else v for v in row) for row in picked.itertuples(index=False)),
        key=lambda r: r[0],
    )


def at(minutes: list[int]) -> pd.Series:
    return pd.Series(START + pd.to_timedelta(minutes, unit="min"))


def recording(offsets: list[int | None] | None = None, subject: str = "s1") -> Recording:
    offsets = offsets if offsets is not None else [60, 60, 120]  # the offset changes (travel)
    common = {"utc_offset_min": pd.array(offsets, dtype="Int16"), "subject": subject}
    return Recording.build(
        glucose=pd.DataFrame(
            {
                "time": at([0, 5, 10]),
                **common,
                "glucose_mg_dl": [120.0, 121.5, 39.0],
                "source": ["cgm", "cgm", "fingerstick"],
                "censored": ["", "", ""],
            }
        ),
        insulin=pd.DataFrame(
            {
                "time": at([1, 2, 3]),
                **common,
                "event": ["bolus", "basal", "bolus"],
                "delivery": ["normal", "temporary", "dual"],
                "units_u": [2.0, np.nan, 5.0],
                "extended_units_u": [np.nan, np.nan, 2.0],
                "rate_u_per_h": [np.nan, 0.8, np.nan],
                "duration_min": [np.nan, 30.0, 90.0],
                "automated": [True, True, False],
            }
        ),
        carbs=pd.DataFrame(
            {
                "time": at([4, 6, 7]),
                **common,
                "carbs_g": [40.0, 12.5, 3.0],
                "note": ["pasta", pd.NA, pd.NA],
            }
        ),
        activity=pd.DataFrame(
            {
                "time": at([8]),
                "utc_offset_min": pd.array([60], "Int16"),
                "subject": subject,
                "activity_type": "run",
                "duration_min": [30.0],
            }
        ),
    )


# -------------------------------------------------------------------------------------- CSV


def test_csv_layout_and_round_trip(tmp_path):
    rec = recording()
    path = tmp_path / "out.csv"
    write_csv(rec, path)
    lines = path.read_text().splitlines()
    assert lines[0] == "timestamp,glucose_mg_dl,insulin_u,basal_u_per_h,carbs_g,subject"
    assert lines[1] == "2024-03-30T23:00:00+01:00,120.0,,,,s1"
    assert lines[-1] == "2024-03-31T00:10:00+02:00,39.0,,,,s1"
    back = read_file(path, format="csv")
    assert rows(back.glucose, "utc_offset_min", "subject", "glucose_mg_dl") == rows(
        rec.glucose, "utc_offset_min", "subject", "glucose_mg_dl"
    )
    bolus = rec.insulin[rec.insulin["event"] == "bolus"]
    back_bolus = back.insulin[back.insulin["event"] == "bolus"]
    assert rows(back_bolus, "utc_offset_min", "units_u") == rows(bolus, "utc_offset_min", "units_u")
    basal = back.insulin[back.insulin["event"] == "basal"]
    assert basal["rate_u_per_h"].tolist() == [0.8]
    assert rows(back.carbs, "carbs_g") == rows(rec.carbs, "carbs_g")
    assert len(back.activity) == 0  # the layout has no activity columns


def test_csv_floating_times_stay_floating(tmp_path):
    rec = recording(offsets=[None, None, None])
    rec = Recording.build(glucose=rec.glucose, insulin=rec.insulin, carbs=rec.carbs)
    path = tmp_path / "floating.csv"
    write_csv(rec, path)
    assert path.read_text().splitlines()[1].startswith("2024-03-30T22:00:00,")
    back = read_file(path, format="csv")
    assert back.glucose["utc_offset_min"].isna().all()
    assert back.glucose["time"].tolist() == rec.glucose["time"].tolist()


def test_csv_round_trip_of_a_real_recording(tmp_path):
    rec = read_file(shared_path(*JELLYFISH))
    path = tmp_path / "jellyfish.csv"
    write_csv(rec, path)
    back = read_file(path, format="csv")
    assert back.subjects == rec.subjects
    assert rows(back.glucose, "utc_offset_min", "glucose_mg_dl") == rows(
        rec.glucose, "utc_offset_min", "glucose_mg_dl"
    )
    for event, column in (("bolus", "units_u"), ("basal", "rate_u_per_h")):
        ours = rec.insulin[rec.insulin["event"] == event]
        theirs = back.insulin[back.insulin["event"] == event]
        assert rows(theirs, "utc_offset_min", column) == rows(ours, "utc_offset_min", column)
    assert back.carbs["carbs_g"].sum() == 1118.0


def test_csv_refuses_mixed_offsets_and_writes_nothing(tmp_path):
    path = tmp_path / "keep.csv"
    path.write_text("old content\n")
    with pytest.raises(DataError, match="mix of times"):
        write_csv(recording(offsets=[60, None, 60]), path)
    assert path.read_text() == "old content\n"
    assert os.listdir(tmp_path) == ["keep.csv"]


def test_failed_write_leaves_old_file_and_no_temporary(tmp_path, monkeypatch):
    path = tmp_path / "out.json"
    path.write_text("old")

    def broken_replace(src, dst):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", broken_replace)
    for writer in (write_csv, write_nightscout):
        with pytest.raises(OSError, match="disk full"):
            writer(recording(), path)
        assert path.read_text() == "old"
        assert os.listdir(tmp_path) == ["out.json"]


# ------------------------------------------------------------------------------- Nightscout


def test_nightscout_shapes(tmp_path):
    path = tmp_path / "ns.json"
    write_nightscout(recording(), path)
    doc = json.loads(path.read_text())
    assert doc["entries"][0] == {
        "dateString": "2024-03-30T23:00:00.000+01:00",
        "date": 1711836000000,
        "utcOffset": 60,
        "type": "sgv",
        "sgv": 120.0,
    }
    assert doc["entries"][2]["type"] == "mbg" and doc["entries"][2]["mbg"] == 39.0
    events = [t["eventType"] for t in doc["treatments"]]
    assert events == [
        "Correction Bolus",
        "Combo Bolus",
        "Temp Basal",
        "Carb Correction",
        "Carb Correction",
        "Carb Correction",
        "Exercise",
    ]
    smb, combo = doc["treatments"][0], doc["treatments"][1]
    assert (smb["insulin"], smb["type"], smb["isSMB"]) == (2.0, "SMB", True)
    assert (combo["enteredinsulin"], combo["splitExt"], combo["duration"]) == (5.0, 40.0, 90.0)
    assert doc["treatments"][2]["absolute"] == 0.8 and doc["treatments"][2]["automatic"]


def test_nightscout_round_trip(tmp_path):
    rec = recording()
    path = tmp_path / "ns.json"
    write_nightscout(rec, path)
    back = read_file(path, options=ImportOptions(subject="s1"))
    assert rows(back.glucose, "utc_offset_min", "glucose_mg_dl", "source") == rows(
        rec.glucose, "utc_offset_min", "glucose_mg_dl", "source"
    )
    columns = (
        "utc_offset_min",
        "event",
        "delivery",
        "units_u",
        "extended_units_u",
        "rate_u_per_h",
        "duration_min",
        "automated",
    )
    assert rows(back.insulin, *columns) == rows(rec.insulin, *columns)
    assert rows(back.carbs, "carbs_g", "note") == rows(rec.carbs, "carbs_g", "note")
    assert back.activity["duration_min"].tolist() == [30.0]
    assert back.activity["activity_type"].tolist() == ["exercise"]


def test_nightscout_low_and_censored_readings(tmp_path):
    glucose = pd.DataFrame(
        {
            "time": at([0, 5, 10]),
            "utc_offset_min": pd.array([0, 0, 0], dtype="Int16"),
            "glucose_mg_dl": [30.0, 40.0, 400.0],
            "censored": ["", "below", "above"],
        }
    )
    path = tmp_path / "low.json"
    write_nightscout(Recording.build(glucose=glucose), path)
    assert [e["sgv"] for e in json.loads(path.read_text())["entries"]] == [39.0, 39.0, 400.0]
    back = read_file(path).glucose
    assert back["censored"].tolist() == ["below", "below", ""]
    assert back["glucose_mg_dl"].tolist() == [40.0, 40.0, 400.0]


def test_nightscout_round_trip_of_real_entries(tmp_path):
    rec = read_file(shared_path(*NS_ENTRIES))
    path = tmp_path / "entries.json"
    write_nightscout(rec, path)
    back = read_file(path, options=ImportOptions(subject=rec.subjects[0]))
    columns = ("utc_offset_min", "glucose_mg_dl", "device", "subject")
    assert rows(back.glucose, *columns) == rows(rec.glucose, *columns)


def test_nightscout_round_trip_of_a_pump_recording(tmp_path):
    rec = read_file(shared_path(*JELLYFISH))
    path = tmp_path / "pump.json"
    write_nightscout(rec, path)
    back = read_file(path)
    g, h = rec.glucose, back.glucose
    assert len(h) == len(g) == 1337
    assert h.loc[h["censored"] == "below", "glucose_mg_dl"].tolist() == [40.0, 40.0]
    assert (
        h.loc[h["censored"] == "", "glucose_mg_dl"].to_numpy()
        == g.loc[g["censored"] == "", "glucose_mg_dl"].to_numpy()
    ).all()
    bolus = rec.insulin[(rec.insulin["event"] == "bolus") & (rec.insulin["units_u"] > 0)]
    back_bolus = back.insulin[back.insulin["event"] == "bolus"]
    assert len(bolus) == 214 == len(back_bolus)  # the cancelled 0 U bolus is not a treatment
    assert back_bolus["units_u"].sum() == pytest.approx(722.05)
    assert back_bolus["extended_units_u"].dropna().tolist() == pytest.approx([2.4, 3.6])
    basal = rec.insulin[rec.insulin["event"] == "basal"]
    back_basal = back.insulin[back.insulin["event"] == "basal"]
    assert back_basal["rate_u_per_h"].tolist() == basal["rate_u_per_h"].tolist()
    assert back_basal["delivery"].value_counts().to_dict() == {"temporary": 473, "suspend": 25}
    assert (back_basal["duration_min"].to_numpy() <= basal["duration_min"].to_numpy() + 1e-9).all()
    assert back.carbs["carbs_g"].sum() == 1118.0


def test_nightscout_refuses_several_subjects(tmp_path):
    both = Recording.concat([recording(subject="a"), recording(subject="b")])
    path = tmp_path / "two.json"
    with pytest.raises(DataError, match="one person"):
        write_nightscout(both, path)
    assert not path.exists()
    write_nightscout(both.for_subject("a"), path)
    assert path.exists()


# ---------------------------------------------------------------------- property-based tests

TIMES = st.lists(st.integers(0, 60 * 24 * 400), min_size=1, max_size=12, unique=True)
OFFSETS = st.sampled_from([-600, -420, -180, 0, 60, 330, 345, 600, 840])


@st.composite
def recordings(draw, *, cgm_floor: float) -> Recording:
    floating = draw(st.booleans())

    def times_and_offsets():
        minutes = sorted(draw(TIMES))
        offsets = [None if floating else draw(OFFSETS) for _ in minutes]
        return at(minutes), pd.array(offsets, dtype="Int16"), len(minutes)

    def values(n, low, high):
        return [draw(st.floats(low, high, allow_nan=False)) for _ in range(n)]

    time, offset, n = times_and_offsets()
    glucose = pd.DataFrame(
        {
            "time": time,
            "utc_offset_min": offset,
            "subject": "p",
            "glucose_mg_dl": values(n, cgm_floor, 600.0),
            "source": [draw(st.sampled_from(["cgm", "fingerstick"])) for _ in range(n)],
        }
    )
    time, offset, n = times_and_offsets()
    bolus = pd.DataFrame(
        {
            "time": time,
            "utc_offset_min": offset,
            "subject": "p",
            "event": "bolus",
            "delivery": "normal",
            "units_u": values(n, 0.05, 25),
            "automated": [draw(st.booleans()) for _ in range(n)],
        }
    )
    time, offset, n = times_and_offsets()
    basal = pd.DataFrame(
        {
            "time": time,
            "utc_offset_min": offset,
            "subject": "p",
            "event": "basal",
            "delivery": "temporary",
            "rate_u_per_h": values(n, 0.0, 5.0),
        }
    )
    time, offset, n = times_and_offsets()
    carbs = pd.DataFrame(
        {"time": time, "utc_offset_min": offset, "subject": "p", "carbs_g": values(n, 1.0, 250.0)}
    )
    return Recording.build(glucose=glucose, insulin=pd.concat([bolus, basal]), carbs=carbs)


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(rec=recordings(cgm_floor=5.0))
def test_csv_round_trip_keeps_readings_boluses_basal_and_carbs(tmp_path, rec):
    path = tmp_path / "prop.csv"
    write_csv(rec, path)
    back = read_file(path, format="csv")
    assert rows(back.glucose, "utc_offset_min", "subject", "glucose_mg_dl") == rows(
        rec.glucose, "utc_offset_min", "subject", "glucose_mg_dl"
    )
    for event, column in (("bolus", "units_u"), ("basal", "rate_u_per_h")):
        ours = rec.insulin[rec.insulin["event"] == event]
        theirs = back.insulin[back.insulin["event"] == event]
        assert rows(theirs, "utc_offset_min", "subject", column) == rows(
            ours, "utc_offset_min", "subject", column
        )
    assert rows(back.carbs, "utc_offset_min", "carbs_g") == rows(
        rec.carbs, "utc_offset_min", "carbs_g"
    )


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(rec=recordings(cgm_floor=40.0))
def test_nightscout_round_trip_property(tmp_path, rec):
    path = tmp_path / "prop.json"
    write_nightscout(rec, path)
    back = read_file(path, options=ImportOptions(subject="p"))
    columns = ("utc_offset_min", "subject", "glucose_mg_dl", "source")
    assert rows(back.glucose, *columns) == rows(rec.glucose, *columns)
    bolus = ("utc_offset_min", "units_u", "automated", "delivery")
    assert rows(back.insulin[back.insulin["event"] == "bolus"], *bolus) == rows(
        rec.insulin[rec.insulin["event"] == "bolus"], *bolus
    )
    ours = rec.insulin[rec.insulin["event"] == "basal"]
    theirs = back.insulin[back.insulin["event"] == "basal"]
    assert rows(theirs, "utc_offset_min", "rate_u_per_h") == rows(
        ours, "utc_offset_min", "rate_u_per_h"
    )
    # a rate without a duration lasts until the next basal row: written out explicitly
    # unless that is further than the longest possible duration (7 days)
    gaps = ours["time"].diff().shift(-1).dt.total_seconds().to_numpy() / 60
    gaps[gaps > 7 * 24 * 60] = np.nan
    assert np.allclose(theirs["duration_min"].to_numpy(), gaps, equal_nan=True)
    assert rows(back.carbs, "utc_offset_min", "carbs_g") == rows(
        rec.carbs, "utc_offset_min", "carbs_g"
    )


def test_written_files_are_utf8_json(tmp_path):
    rec = recording()
    rec.carbs.loc[0, "note"] = "crêpe 🥞"
    path = tmp_path / "u.json"
    write_nightscout(rec, path)
    assert "crêpe 🥞" in Path(path).read_text(encoding="utf-8")
