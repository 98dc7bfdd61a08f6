"""FHIR CGM bundle export: validity, IG shapes, the summary numbers and the round trip."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from conftest import shared_path
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from glucotwin.data import DataError
from glucotwin.data.fhir import cgm_bundle, model_class, write_fhir_bundle
from glucotwin.data.formats import read_file
from glucotwin.data.model import Recording

METRICS = {
    "mean_mg_dl": 151.234,
    "cv_percent": 33.3,
    "gmi_percent": 6.92,
    "tbr_below_54_percent": 1.1,
    "tbr_below_70_percent": 4.3,
    "tir_70_180_percent": 68.6,
    "tar_above_180_percent": 27.1,
    "tar_above_250_percent": 6.4,
    "cgm_active_percent": 93.75,
    "days": 14,
    "first_time": "2024-05-01T00:03:00+02:00",
    "last_time": "2024-05-14T23:58:00+02:00",
}
STAMP = pd.Timestamp("2024-05-15T08:00:00Z")
MEMBER_EXAMPLES = {
    "97507-8": "Observation-cgmSummaryMeanGlucoseMassPerVolumeExample.json",
    "106793-3": "Observation-cgmSummaryTimesInRangesExample.json",
    "97506-0": "Observation-cgmSummaryGMIExample.json",
    "104638-2": "Observation-cgmSummaryCoefficientOfVariationExample.json",
    "104636-6": "Observation-cgmSummaryDaysOfWearExample.json",
    "104637-4": "Observation-cgmSummarySensorActivePercentageExample.json",
    "107931-8": "Observation-cgmSummaryExample.json",
    "99504-3": "Observation-cgmSensorReadingMassPerVolumeExample.json",
}


def recording(offset_min: int = 120, subject: str = "p1") -> Recording:
    """Five readings in Central European Summer Time, the first censored Low, plus a
    fingerstick (which the bundle must leave out)."""
    times = pd.to_datetime(
        [
            "2024-05-01T22:03Z",
            "2024-05-01T22:08Z",
            "2024-05-01T22:13Z",
            "2024-05-01T22:18Z",
            "2024-05-01T22:23:30.250Z",
            "2024-05-01T22:10Z",
        ],
        utc=True,
        format="ISO8601",
    )
    glucose = pd.DataFrame(
        {
            "time": times,
            "utc_offset_min": offset_min,
            "subject": subject,
            "device": "Dexcom G7",
            "glucose_mg_dl": [40.0, 55.5, 120.72194, 181.0, 401.0, 99.0],
            "censored": ["below", "", "", "", "", ""],
            "source": ["cgm"] * 5 + ["fingerstick"],
        }
    )
    return Recording.build(glucose=glucose)


def resources(bundle: dict) -> dict[str, list[dict]]:
    """Resources by their first LOINC code."""
    found: dict[str, list[dict]] = {}
    for entry in bundle["entry"]:
        code = entry["resource"]["code"]["coding"][0]["code"]
        found.setdefault(code, []).append(entry["resource"])
    return found


@pytest.fixture
def made() -> dict:
    return cgm_bundle(recording(), METRICS, timestamp=STAMP)


def test_every_resource_and_the_bundle_validate_with_the_r4b_models(made):
    model_class("Bundle").model_validate(made)
    for entry in made["entry"]:
        model_class(entry["resource"]["resourceType"]).model_validate(entry["resource"])
    assert made["type"] == "transaction"
    assert made["timestamp"] == "2024-05-15T08:00:00Z"
    assert all(e["request"] == {"method": "POST", "url": "Observation"} for e in made["entry"])
    urls = [e["fullUrl"] for e in made["entry"]]
    assert len(set(urls)) == len(urls) == 7 + 5
    assert all(url.startswith("urn:uuid:") for url in urls)


def test_the_same_input_gives_the_same_bundle(made):
    assert cgm_bundle(recording(), METRICS, timestamp=STAMP) == made


def test_readings_keep_local_time_offset_and_censoring(made):
    readings = resources(made)["99504-3"]
    assert [r["effectiveDateTime"] for r in readings] == [
        "2024-05-02T00:03:00.000000+02:00",
        "2024-05-02T00:08:00.000000+02:00",
        "2024-05-02T00:13:00.000000+02:00",
        "2024-05-02T00:18:00.000000+02:00",
        "2024-05-02T00:23:30.250000+02:00",
    ]
    assert [r["valueQuantity"]["value"] for r in readings] == [40.0, 55.5, 120.72194, 181.0, 401.0]
    assert readings[0]["valueQuantity"]["comparator"] == "<"
    assert all("comparator" not in r["valueQuantity"] for r in readings[1:])
    assert all(r["subject"] == {"reference": "Patient/p1"} for r in readings)


def test_whole_second_times_are_written_without_a_fraction():
    rec = recording(offset_min=-300)
    rec = Recording.build(glucose=rec.glucose.iloc[:4].drop(columns=["source_file"]))
    readings = resources(cgm_bundle(rec, METRICS, timestamp=STAMP))["99504-3"]
    assert readings[0]["effectiveDateTime"] == "2024-05-01T17:03:00-05:00"


def test_summary_numbers_and_the_two_derived_ranges(made):
    found = resources(made)
    period = {"start": "2024-05-01", "end": "2024-05-14"}
    values = {
        code: found[code][0]["valueQuantity"]["value"]
        for code in ("97507-8", "97506-0", "104638-2", "104636-6", "104637-4")
    }
    assert values == {
        "97507-8": 151.23,
        "97506-0": 6.92,
        "104638-2": 33.3,
        "104636-6": 14,
        "104637-4": 93.75,
    }
    components = {
        c["code"]["coding"][0]["code"]: c["valueQuantity"]["value"]
        for c in found["106793-3"][0]["component"]
    }
    assert components == {
        "104642-4": 1.1,
        "104641-6": 3.2,  # 54-69 = below 70 (4.3) - below 54 (1.1)
        "97510-2": 68.6,
        "104640-8": 20.7,  # 181-250 = above 180 (27.1) - above 250 (6.4)
        "104639-0": 6.4,
    }
    assert sum(components.values()) == pytest.approx(100)
    summary = [r for code in MEMBER_EXAMPLES if code != "99504-3" for r in found[code]]
    assert all(r["effectivePeriod"] == period for r in summary)


def test_panel_members_reference_the_six_member_entries(made):
    by_url = {e["fullUrl"]: e["resource"] for e in made["entry"]}
    panel = made["entry"][0]["resource"]
    assert panel["code"]["coding"][0]["code"] == "107931-8"
    members = [by_url[m["reference"]]["code"]["coding"][0]["code"] for m in panel["hasMember"]]
    assert members == ["97507-8", "106793-3", "97506-0", "104638-2", "104636-6", "104637-4"]


def shape(resource: dict) -> dict:
    """What the IG fixes: element names, category, code, units and component codes."""
    out = {
        "keys": sorted(set(resource) - {"id"}),
        "category": resource["category"],
        "code": resource["code"],
        "status": resource["status"],
    }
    if "valueQuantity" in resource:
        out["unit"] = {k: v for k, v in resource["valueQuantity"].items() if k != "value"}
    if "component" in resource:
        out["components"] = [
            (c["code"], {k: v for k, v in c["valueQuantity"].items() if k != "value"})
            for c in resource["component"]
        ]
    return out


@pytest.mark.parametrize("code", list(MEMBER_EXAMPLES))
def test_resource_shapes_match_the_ig_examples(made, code):
    example = json.loads(
        shared_path(
            "formats", "fhir_cgm", "hl7-cgm_compiled_json", MEMBER_EXAMPLES[code]
        ).read_text()
    )
    ours = resources(made)[code][-1]  # for readings: one without a comparator
    assert shape(ours) == shape(example)


def test_round_trip_through_the_importer(tmp_path):
    rec = recording()
    path = write_fhir_bundle(rec, tmp_path / "out" / "cgm.json", METRICS, timestamp=STAMP)
    assert [p.name for p in path.parent.iterdir()] == ["cgm.json"]  # no temporary file left
    back = read_file(path)
    assert back.meta["format"] == "fhir"
    ours, theirs = rec.cgm(), back.glucose
    assert theirs["time"].tolist() == ours["time"].tolist()
    assert theirs["utc_offset_min"].tolist() == ours["utc_offset_min"].tolist()
    assert theirs["glucose_mg_dl"].tolist() == ours["glucose_mg_dl"].tolist()
    assert theirs["censored"].tolist() == ours["censored"].tolist()
    assert theirs["subject"].tolist() == ["p1"] * 5
    [summary] = back.meta["fhir_summary"]
    assert summary["panel"] is True and "missing_members" not in summary
    assert summary["period"] == {"start": "2024-05-01", "end": "2024-05-14"}
    numbers = {v["name"]: v["value"] for v in summary["values"].values()}
    assert numbers == {
        "mean_glucose": 151.23,
        "time_in_very_low": 1.1,
        "time_in_low": 3.2,
        "time_in_target": 68.6,
        "time_in_high": 20.7,
        "time_in_very_high": 6.4,
        "gmi": 6.92,
        "cv": 33.3,
        "days_of_wear": 14,
        "sensor_active": 93.75,
    }


def test_subject_that_is_not_a_fhir_id_is_referenced_by_identifier(tmp_path):
    path = write_fhir_bundle(
        recording(subject="site 3_patient 7"), tmp_path / "c.json", METRICS, timestamp=STAMP
    )
    bundle = json.loads(path.read_text())
    assert bundle["entry"][-1]["resource"]["subject"] == {
        "type": "Patient",
        "identifier": {"value": "site 3_patient 7"},
    }
    assert set(read_file(path).glucose["subject"]) == {"site 3_patient 7"}


def test_explicit_subject_reference_and_period():
    made = cgm_bundle(
        recording(),
        METRICS,
        subject_reference="Patient/42",
        period=("2024-05-01T00:00:00+02:00", "2024-05-15T00:00:00+02:00"),
        timestamp=STAMP,
    )
    panel = made["entry"][0]["resource"]
    assert panel["subject"] == {"reference": "Patient/42"}
    assert panel["effectivePeriod"]["end"] == "2024-05-15T00:00:00+02:00"


@pytest.mark.parametrize(
    ("change", "field", "message"),
    [
        ({"gmi_percent": None}, "gmi_percent", "not a number"),
        ({"cv_percent": float("nan")}, "cv_percent", "finite"),
        ({"tir_70_180_percent": 140}, "tir_70_180_percent", "not a percentage"),
        ({"tbr_below_54_percent": 5.0}, "tbr_below_54_percent", "includes it"),
        ({"tar_above_250_percent": 30.0}, "tar_above_250_percent", "includes it"),
        ({"first_time": "yesterday"}, "first_time", "not an ISO 8601 time"),
    ],
)
def test_bad_metrics_are_refused_and_nothing_is_written(tmp_path, change, field, message):
    path = tmp_path / "cgm.json"
    path.write_text("previous")
    with pytest.raises(DataError, match=message) as err:
        write_fhir_bundle(recording(), path, {**METRICS, **change}, timestamp=STAMP)
    assert err.value.field == field
    assert path.read_text() == "previous"
    assert [p.name for p in tmp_path.iterdir()] == ["cgm.json"]


def test_missing_metric_and_impossible_recordings():
    metrics = dict(METRICS)
    del metrics["days"]
    with pytest.raises(DataError, match="no 'days'"):
        cgm_bundle(recording(), metrics)
    floating = Recording.build(glucose=recording().glucose.assign(utc_offset_min=pd.NA))
    with pytest.raises(DataError, match="floating local time") as err:
        cgm_bundle(floating, METRICS)
    assert err.value.field == "utc_offset_min"
    two = Recording.concat([recording(subject="a"), recording(subject="b")])
    with pytest.raises(DataError, match="one person"):
        cgm_bundle(two, METRICS)


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    values=st.lists(st.floats(40, 400, allow_nan=False), min_size=1, max_size=20),
    offset=st.integers(-12 * 60, 14 * 60).map(lambda m: m - m % 15),
)
def test_any_readings_survive_the_round_trip(tmp_path, values, offset):
    times = pd.Timestamp("2024-03-31T00:00Z") + pd.to_timedelta(
        np.arange(len(values)) * 5, unit="min"
    )
    rec = Recording.build(
        glucose=pd.DataFrame(
            {"time": times, "utc_offset_min": offset, "subject": "p", "glucose_mg_dl": values}
        )
    )
    back = read_file(write_fhir_bundle(rec, tmp_path / "rt.json", METRICS)).glucose
    assert back["glucose_mg_dl"].tolist() == rec.glucose["glucose_mg_dl"].tolist()
    assert back["time"].tolist() == rec.glucose["time"].tolist()
    assert back["utc_offset_min"].tolist() == [offset] * len(values)
