"""FHIR CGM importer: the 14 compiled IG examples, bundles, references and bad input."""

from __future__ import annotations

import base64
import contextlib
import copy
import hashlib
import json

import pandas as pd
import pytest
from conftest import shared_path
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from glucotwin.data import DataError
from glucotwin.data.fhir import model_class
from glucotwin.data.formats import ImportOptions, detect_format, read_file
from glucotwin.data.importers.fhir import _Validator
from glucotwin.data.model import MG_DL_PER_MMOL_L

FOLDER = ("formats", "fhir_cgm", "hl7-cgm_compiled_json")
BUNDLE = "Bundle-cgmDataSubmissionBundle.json"
SAMPLES = (
    "Bundle-cgmDataSubmissionBundle.json",
    "Device-cgmDeviceExample.json",
    "DiagnosticReport-cgmSummaryPDFExample.json",
    "Observation-cgmSensorReadingMassPerVolumeExample.json",
    "Observation-cgmSensorReadingMolesPerVolumeExample.json",
    "Observation-cgmSummaryCoefficientOfVariationExample.json",
    "Observation-cgmSummaryDaysOfWearExample.json",
    "Observation-cgmSummaryExample.json",
    "Observation-cgmSummaryGMIExample.json",
    "Observation-cgmSummaryMeanGlucoseMassPerVolumeExample.json",
    "Observation-cgmSummaryMeanGlucoseMolesPerVolumeExample.json",
    "Observation-cgmSummarySensorActivePercentageExample.json",
    "Observation-cgmSummaryTimesInRangesExample.json",
    "Patient-patientExample.json",
)
IG_PERIOD = {"start": "2024-05-01", "end": "2024-05-31"}
PDF_REPORT = "DiagnosticReport-cgmSummaryPDFExample.json"
PANEL_MEMBERS = [
    f"Observation/cgmSummary{name}Example"
    for name in (
        "MeanGlucoseMassPerVolume",
        "TimesInRanges",
        "GMI",
        "CoefficientOfVariation",
        "DaysOfWear",
        "SensorActivePercentage",
    )
]


def sample(name: str):
    return shared_path(*FOLDER, name)


def load(name: str) -> dict:
    return json.loads(sample(name).read_text())


def write(tmp_path, document, name: str = "cgm.json"):
    path = tmp_path / name
    path.write_text(json.dumps(document) if not isinstance(document, str) else document)
    return path


def reading(**changes) -> dict:
    """The IG's mass reading example (120 mg/dL at 2024-05-02T10:15:00Z) with changes."""
    resource = {
        "resourceType": "Observation",
        "id": "r1",
        "status": "final",
        "category": [
            {
                "coding": [
                    {
                        "system": "http://terminology.hl7.org/CodeSystem/observation-category",
                        "code": "laboratory",
                    }
                ]
            }
        ],
        "code": {"coding": [{"system": "http://loinc.org", "code": "99504-3"}]},
        "subject": {"reference": "Patient/patientExample"},
        "effectiveDateTime": "2024-05-02T10:15:00Z",
        "valueQuantity": {
            "value": 120,
            "unit": "mg/dl",
            "system": "http://unitsofmeasure.org",
            "code": "mg/dL",
        },
    }
    resource.update(changes)
    return resource


def bundle(*resources, kind: str = "collection", **extra) -> dict:
    return {
        "resourceType": "Bundle",
        "type": kind,
        "entry": [
            {"fullUrl": f"urn:uuid:00000000-0000-0000-0000-{i:012d}", "resource": r}
            for i, r in enumerate(resources)
        ],
        **extra,
    }


@pytest.mark.parametrize("name", SAMPLES)
def test_every_sample_is_detected_as_fhir(name):
    assert detect_format(sample(name)).name == "fhir"


@pytest.mark.parametrize("name", SAMPLES)
def test_every_sample_file_parses_with_the_r4b_models(name):
    document = load(name)
    model_class(document["resourceType"]).model_validate(document)


def test_r5_default_models_reject_the_ig_device_so_r4b_is_the_right_choice():
    from fhir.resources import get_fhir_model_class as r5_model

    with pytest.raises(ValidationError, match="deviceName"):
        r5_model("Device").model_validate(load("Device-cgmDeviceExample.json"))


def test_transaction_bundle_reading_and_summary():
    rec = read_file(sample(BUNDLE))
    assert rec.counts() == {"glucose": 1, "insulin": 0, "carbs": 0, "activity": 0}
    g = rec.glucose.iloc[0]
    assert g["time"] == pd.Timestamp("2024-05-02T10:15:00Z")
    assert g["utc_offset_min"] == 0
    assert g["glucose_mg_dl"] == 120.0
    assert (g["source"], g["censored"], g["subject"]) == ("cgm", "", "patientExample")
    assert g["source_line"] == 8  # Bundle.entry[8]
    assert g["source_file"] == BUNDLE
    assert rec.meta["fhir_bundle"] == {
        "type": "transaction",
        "id": "cgmDataSubmissionBundle",
        "timestamp": "2024-05-02T14:30:00Z",
    }
    assert "fhir_skipped" not in rec.meta  # the PDF report is described in fhir_reports
    [report] = rec.meta["fhir_reports"]
    assert report["id"] == "cgmSummaryPDFExample"
    assert report["results"] == ["Observation/cgmSummaryExample"]
    [summary] = rec.meta["fhir_summary"]
    assert summary["subject"] == "patientExample"
    assert summary["period"] == IG_PERIOD
    assert summary["panel"] is True
    assert summary["members"] == PANEL_MEMBERS
    assert "missing_members" not in summary
    values = {code: (v["name"], v["value"], v["unit"]) for code, v in summary["values"].items()}
    assert values == {
        "97507-8": ("mean_glucose", 145.0, "mg/dL"),
        "104642-4": ("time_in_very_low", 3.0, "%"),
        "104641-6": ("time_in_low", 8.0, "%"),
        "97510-2": ("time_in_target", 65.0, "%"),
        "104640-8": ("time_in_high", 20.0, "%"),
        "104639-0": ("time_in_very_high", 4.0, "%"),
        "97506-0": ("gmi", 6.8, "%"),
        "104638-2": ("cv", 34.0, "%"),
        "104636-6": ("days_of_wear", 28.0, "d"),
        "104637-4": ("sensor_active", 95.0, "%"),
    }


def test_single_readings_in_both_units():
    mass = read_file(sample("Observation-cgmSensorReadingMassPerVolumeExample.json")).glucose
    molar = read_file(sample("Observation-cgmSensorReadingMolesPerVolumeExample.json")).glucose
    assert mass["glucose_mg_dl"].tolist() == [120.0]
    assert molar["glucose_mg_dl"].tolist() == [pytest.approx(6.7 * MG_DL_PER_MMOL_L)]
    assert molar["glucose_mg_dl"].iloc[0] == pytest.approx(120.722, abs=1e-3)
    assert molar["time"].iloc[0] == pd.Timestamp("2024-05-02T10:30:00Z")
    assert molar["source_line"].isna().all()  # a lone resource has no entry index
    assert molar["subject"].tolist() == ["patientExample"]


@pytest.mark.parametrize(
    ("name", "code", "value", "unit"),
    [
        ("Observation-cgmSummaryMeanGlucoseMassPerVolumeExample.json", "97507-8", 145, "mg/dL"),
        ("Observation-cgmSummaryMeanGlucoseMolesPerVolumeExample.json", "105273-7", 8.1, "mmol/L"),
        ("Observation-cgmSummaryGMIExample.json", "97506-0", 6.8, "%"),
        ("Observation-cgmSummaryCoefficientOfVariationExample.json", "104638-2", 34, "%"),
        ("Observation-cgmSummaryDaysOfWearExample.json", "104636-6", 28, "d"),
        ("Observation-cgmSummarySensorActivePercentageExample.json", "104637-4", 95, "%"),
    ],
)
def test_a_lone_summary_member_imports_as_metadata(name, code, value, unit):
    rec = read_file(sample(name))
    assert rec.counts()["glucose"] == 0
    [summary] = rec.meta["fhir_summary"]
    assert summary["period"] == IG_PERIOD
    assert summary["panel"] is False
    assert list(summary["values"]) == [code]
    assert summary["values"][code]["value"] == value
    assert summary["values"][code]["unit"] == unit


def test_lone_times_in_ranges_keeps_its_five_components():
    rec = read_file(sample("Observation-cgmSummaryTimesInRangesExample.json"))
    values = rec.meta["fhir_summary"][0]["values"]
    assert [(v["name"], v["value"]) for v in values.values()] == [
        ("time_in_very_low", 3),
        ("time_in_low", 8),
        ("time_in_target", 65),
        ("time_in_high", 20),
        ("time_in_very_high", 4),
    ]
    assert sum(v["value"] for v in values.values()) == 100


def test_device_only_file_is_an_empty_recording_with_device_metadata():
    rec = read_file(sample("Device-cgmDeviceExample.json"))
    assert rec.counts() == {"glucose": 0, "insulin": 0, "carbs": 0, "activity": 0}
    assert rec.meta["fhir_devices"] == [
        {
            "id": "cgmDeviceExample",
            "name": "Acme CGM System",
            "serial_number": "ABC123",
            "identifiers": [{"system": "http://acme.com/devices", "value": "456789"}],
        }
    ]


def test_patient_only_file_gives_the_subject_from_the_identifier_and_never_the_name():
    rec = read_file(sample("Patient-patientExample.json"))
    assert rec.counts()["glucose"] == 0
    assert rec.meta["fhir_patients"] == [
        {"id": "patientExample", "subject": "ee8d4ac0-545c-4501-8d7e-646bfbda1db5"}
    ]
    text = json.dumps(rec.meta)
    assert "Peters" not in text and "Amy" not in text and "1964" not in text


def test_pdf_report_alone_imports_as_a_described_document_without_its_base64():
    rec = read_file(sample(PDF_REPORT))
    assert rec.counts() == {"glucose": 0, "insulin": 0, "carbs": 0, "activity": 0}
    pdf = base64.b64decode(load(PDF_REPORT)["presentedForm"][0]["data"])
    assert pdf.startswith(b"%PDF-1.0") and len(pdf) == 471
    assert rec.meta["fhir_reports"] == [
        {
            "id": "cgmSummaryPDFExample",
            "code": "107931-8",
            "status": "final",
            "subject": "patientExample",
            "period": {"start": "2024-05-01", "end": "2024-05-14"},
            "issued": "2024-05-15T14:30:00Z",
            "results": ["Observation/cgmSummaryExample"],
            "presented_form": [
                {
                    "content_type": "application/pdf",
                    "size_bytes": 471,
                    "sha256": hashlib.sha256(pdf).hexdigest(),
                }
            ],
        }
    ]
    assert "JVBERi0" not in json.dumps(rec.meta)  # the base64 PDF itself is not copied


def test_summary_panel_alone_imports_its_period_and_member_references():
    rec = read_file(sample("Observation-cgmSummaryExample.json"))
    assert rec.counts()["glucose"] == 0
    [summary] = rec.meta["fhir_summary"]
    assert summary == {
        "subject": "patientExample",
        "period": IG_PERIOD,
        "panel": True,
        "values": {},
        "members": PANEL_MEMBERS,
        "missing_members": PANEL_MEMBERS,
    }


def test_reports_with_bad_attachments_or_other_codes(tmp_path):
    doc = load(PDF_REPORT)
    doc["presentedForm"][0]["data"] = "!!!!"  # passes the model's pattern, but is no base64
    with pytest.raises(DataError, match="not base64") as err:
        read_file(write(tmp_path, bundle(doc)))
    assert (err.value.line, err.value.field) == (0, "presentedForm[0].data")
    doc = load(PDF_REPORT)
    doc["code"]["coding"][0]["code"] = "11502-2"  # a laboratory report
    with pytest.raises(DataError, match=r"nothing to import.*DiagnosticReport 11502-2"):
        read_file(write(tmp_path, doc))
    doc = load(PDF_REPORT)
    doc["presentedForm"] = [{"contentType": "application/pdf", "url": "https://x/r.pdf"}]
    [report] = read_file(write(tmp_path, doc)).meta["fhir_reports"]
    assert report["presented_form"] == [
        {"content_type": "application/pdf", "url": "https://x/r.pdf"}
    ]


def test_fhir_shorthand_source_says_to_compile_it_with_sushi(tmp_path):
    fsh = shared_path("formats", "fhir_cgm", "hl7-cgm_examples.fsh")
    for attempt in (
        lambda: detect_format(fsh),
        lambda: read_file(fsh),
        lambda: read_file(fsh, "fhir"),
    ):
        with pytest.raises(DataError, match=r"FHIR Shorthand.*compile it with SUSHI"):
            attempt()
    renamed = write(tmp_path, "Instance: x\nInstanceOf: Patient\n* gender = #female\n", "x.txt")
    with pytest.raises(DataError, match="FHIR Shorthand"):
        read_file(renamed)
    notes = write(tmp_path, "Title: my notes\nDescription: nothing\n", "notes.txt")
    with pytest.raises(DataError, match="format not recognised"):
        read_file(notes)


def test_patient_and_device_in_a_bundle_give_subject_and_device(tmp_path):
    patient, device = load("Patient-patientExample.json"), load("Device-cgmDeviceExample.json")
    second = reading(
        id="r2",
        effectiveDateTime="2024-05-02T12:20:00+02:00",
        device={"reference": "Device/cgmDeviceExample"},
    )
    rec = read_file(write(tmp_path, bundle(patient, device, reading(), second)))
    g = rec.glucose
    assert g["subject"].tolist() == ["ee8d4ac0-545c-4501-8d7e-646bfbda1db5"] * 2
    # without a reference the bundle's one Device is used; with one, the one referenced
    assert g["device"].tolist() == ["Acme CGM System"] * 2
    assert g["source_line"].tolist() == [2, 3]
    assert g["time"].tolist() == [
        pd.Timestamp("2024-05-02T10:15Z"),
        pd.Timestamp("2024-05-02T10:20Z"),
    ]
    assert g["utc_offset_min"].tolist() == [0, 120]


def test_references_resolve_by_full_url_and_unresolved_ones_give_the_id(tmp_path):
    doc = bundle(
        {"resourceType": "Patient", "id": "p9"},
        reading(subject={"reference": "urn:uuid:00000000-0000-0000-0000-000000000000"}),
        reading(
            id="r2",
            subject={"reference": "https://ehr.example/fhir/Patient/abc/_history/3"},
            device={"display": "Dexcom G7"},
        ),
        reading(id="r3", subject={"identifier": {"value": "MRN-7"}}),
    )
    g = read_file(write(tmp_path, doc)).glucose
    assert g.sort_values("source_line")["subject"].tolist() == ["p9", "abc", "MRN-7"]
    assert g.sort_values("source_line")["device"].fillna("").tolist() == ["", "Dexcom G7", ""]


def test_censored_statuses_and_absent_values(tmp_path):
    low = reading(
        id="low", valueQuantity={**reading()["valueQuantity"], "value": 40, "comparator": "<"}
    )
    high = reading(
        id="high",
        effectiveDateTime="2024-05-02T10:20:00Z",
        valueQuantity={**reading()["valueQuantity"], "value": 400, "comparator": ">"},
    )
    wrong = reading(id="err", status="entered-in-error")
    prelim = reading(id="pre", status="preliminary", effectiveDateTime="2024-05-02T10:25:00Z")
    absent = reading(
        id="gap",
        effectiveDateTime="2024-05-02T10:30:00Z",
        dataAbsentReason={"text": "sensor warm-up"},
    )
    del absent["valueQuantity"]
    heart = reading(id="hr", code={"coding": [{"system": "http://loinc.org", "code": "8867-4"}]})
    rec = read_file(write(tmp_path, bundle(low, high, wrong, prelim, absent, heart)))
    g = rec.glucose
    assert g["censored"].tolist() == ["below", "above", ""]
    assert g["glucose_mg_dl"].tolist() == [40.0, 400.0, 120.0]
    assert g["flag"].fillna("").tolist() == ["", "", "status=preliminary"]
    assert rec.meta["fhir_skipped"] == {
        "Observation 8867-4": 1,
        "Observation 99504-3 entered-in-error": 1,
        "Observation 99504-3 without value (dataAbsentReason)": 1,
    }


def test_subject_option_overrides_and_searchset_next_page_is_noted(tmp_path):
    doc = bundle(
        reading(),
        kind="searchset",
        total=2,
        link=[{"relation": "next", "url": "https://ehr.example/fhir?page=2"}],
    )
    rec = read_file(write(tmp_path, doc), options=ImportOptions(subject="study-01"))
    assert rec.glucose["subject"].tolist() == ["study-01"]
    assert rec.meta["fhir_bundle"]["next_page"] == "https://ehr.example/fhir?page=2"
    assert rec.meta["fhir_bundle"]["total"] == 2


def test_missing_subject_falls_back_to_the_file_name(tmp_path):
    resource = reading()
    del resource["subject"]
    rec = read_file(write(tmp_path, resource, "night.json"))
    assert rec.glucose["subject"].tolist() == ["night"]


def test_sniff_leaves_other_json_and_xml_alone(tmp_path):
    from glucotwin.data.importers.fhir import FORMAT

    others = {
        "nightscout.json": '[{"sgv": 120, "date": 1714644900000, "type": "sgv"}]',
        "tidepool.json": '[{"type": "cbg", "value": 6.7, "units": "mmol/L"}]',
        "object.json": '{"glucose": 120}',
        "ohio.xml": '<?xml version="1.0"?><patient id="1"><glucose_level/></patient>',
        "cgm.csv": "timestamp,glucose_mg_dl\n2024-05-02T10:15:00Z,120\n",
    }
    for name, text in others.items():
        path = write(tmp_path, text, name)
        assert not FORMAT.sniff(path, path.read_bytes()), name


def entry_8_broken(tmp_path, change) -> DataError:
    doc = load(BUNDLE)
    change(doc["entry"][8]["resource"])
    with pytest.raises(DataError) as err:
        read_file(write(tmp_path, doc))
    return err.value


@pytest.mark.parametrize(
    ("change", "field", "message"),
    [
        (
            lambda r: r["valueQuantity"].update(value="abc"),
            "valueQuantity.value",
            "not a valid FHIR R4 Observation",
        ),
        (lambda r: r.pop("code"), "code", "Field required"),
        (
            lambda r: r.update(effectiveDateTime="2024-05-02T10:15:00"),
            "effectiveDateTime",
            "not a valid FHIR R4 Observation",
        ),
        (
            lambda r: r.update(effectiveDateTime="2024-02-30T10:15:00Z"),
            "effectiveDateTime",
            "not a valid FHIR R4 Observation",
        ),
        (lambda r: r.update(colour="red"), "colour", "Extra inputs"),
        (lambda r: r.update(effectiveDateTime="2024-05-02"), "effectiveDateTime", "full date-time"),
        (lambda r: r["valueQuantity"].update(code="mg"), "valueQuantity.code", "unknown unit"),
        (
            lambda r: r["valueQuantity"].update(code="mmol/L"),
            "valueQuantity.code",
            "LOINC 99504-3 is glucose in mg/dL",
        ),
        (lambda r: r["valueQuantity"].update(value=-5), "glucose_mg_dl", "outside"),
        (lambda r: r["valueQuantity"].pop("value"), "valueQuantity.value", "no value"),
        (lambda r: r.pop("effectiveDateTime"), "effectiveDateTime", "needs effectiveDateTime"),
        (lambda r: r.update(resourceType="Glucose"), "resourceType", "not a FHIR R4 resource"),
    ],
)
def test_bad_reading_in_a_bundle_names_the_entry_and_field(tmp_path, change, field, message):
    error = entry_8_broken(tmp_path, change)
    assert error.line == 8
    assert error.field == field
    assert message in error.message
    assert error.file is not None and error.file.endswith("cgm.json")


def test_sampled_data_series_are_recognised_and_refused(tmp_path):
    def to_sampled(resource):
        del resource["valueQuantity"]
        resource["valueSampledData"] = {
            "origin": {"value": 0, "system": "http://unitsofmeasure.org", "code": "mg/dL"},
            "period": 300000,
            "dimensions": 1,
            "data": "120 121 123",
        }

    error = entry_8_broken(tmp_path, to_sampled)
    assert (error.line, error.field) == (8, "valueSampledData")
    assert "not supported" in error.message


def test_bad_bundle_structure(tmp_path):
    doc = load(BUNDLE)
    del doc["entry"][3]["request"]["url"]
    with pytest.raises(DataError, match="not a valid FHIR R4 Bundle") as err:
        read_file(write(tmp_path, doc))
    assert err.value.line == 3
    assert err.value.field == "entry[3].request.url"

    with pytest.raises(DataError, match="'history' Bundle is not supported"):
        read_file(write(tmp_path, bundle(reading(), kind="history")))
    with pytest.raises(DataError, match="nothing to import"):
        read_file(write(tmp_path, bundle()))


def test_bad_component_names_its_position(tmp_path):
    doc = load("Observation-cgmSummaryTimesInRangesExample.json")
    doc["component"][2]["valueQuantity"]["code"] = "h"
    with pytest.raises(DataError) as err:
        read_file(write(tmp_path, doc))
    assert err.value.field == "component[2].valueQuantity.code"


def test_truncated_and_non_fhir_json(tmp_path):
    text = sample(BUNDLE).read_text()
    with pytest.raises(DataError, match="malformed JSON") as err:
        read_file(write(tmp_path, text[: len(text) // 2]), format="fhir")
    assert err.value.line == len(text[: len(text) // 2].splitlines())
    with pytest.raises(DataError, match="no top-level 'resourceType'"):
        read_file(write(tmp_path, "[1, 2]"), format="fhir")


def test_validator_shape_cache_agrees_with_the_model():
    """A resource passes the cached path exactly when the model accepts it."""
    validate = _Validator(path=None)
    validate(reading(), 0)
    assert len(validate.valid_shapes) == 1
    validate(reading(id="other", effectiveDateTime="2024-06-01T00:00:00.5-05:00"), 1)
    assert len(validate.valid_shapes) == 1  # same shape: the model did not run again


LEAVES = st.sampled_from(["id", "effectiveDateTime", "value", "status"])
ODD = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(10**20), 10**20),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=30),
    st.sampled_from(
        [
            "2024-02-29T10:00:00Z",
            "2023-02-29T10:00:00Z",
            "2024-05-02T24:00:00Z",
            "2024-05-02T10:15:00+14:30",
            "2024-05-02T10:15:60Z",
            "2024",
            "a" * 65,
            "x.y-Z9",
            "1e5",
            "01",
        ]
    ),
    st.lists(st.integers(), max_size=2),
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(leaf=LEAVES, value=ODD)
def test_fuzzed_leaves_get_the_same_verdict_as_the_model(leaf, value):
    resource = reading()
    if leaf == "value":
        resource["valueQuantity"]["value"] = value
    else:
        resource[leaf] = value
    try:
        model_class("Observation").model_validate(copy.deepcopy(resource))
        model_ok = True
    except ValidationError:
        model_ok = False
    validate = _Validator(path=None)
    validate(reading(), 0)  # the shape is known, so only the leaf checks decide
    try:
        validate(resource, 1)
        ours_ok = True
    except DataError:
        ours_ok = False
    assert ours_ok == model_ok


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(leaf=st.sampled_from(["subject", "code", "valueQuantity", "category", "device"]), value=ODD)
def test_fuzzed_readings_raise_only_data_errors(tmp_path, leaf, value):
    from glucotwin.data.importers.fhir import FORMAT

    path = write(tmp_path, bundle(reading(**{leaf: value})))
    with contextlib.suppress(DataError):  # any other exception fails the test
        FORMAT.read(path, ImportOptions())
