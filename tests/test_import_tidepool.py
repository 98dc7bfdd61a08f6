"""Tidepool data-model JSON importer: both real samples, mmol/L factor, linking, bad input."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import shared_path
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from glucotwin.data import DataError
from glucotwin.data.formats import ImportOptions, detect_format, read_file
from glucotwin.data.importers.tidepool import (
    TIDEPOOL_MG_DL_PER_MMOL_L,
    mg_dl_from_tidepool_mmol,
)
from glucotwin.data.model import MG_DL_PER_MMOL_L

FOLDER = ("formats", "tidepool_json")
JELLYFISH = "data-analytics_PHI-jill-jellyfish-lite.json"
DOCS = "tidepoolapi_docs_client_examples.json"


def sample(name: str) -> Path:
    return shared_path(*FOLDER, name)


def write(tmp_path: Path, content, name: str = "tp.json") -> Path:
    path = tmp_path / name
    path.write_text(content if isinstance(content, str) else json.dumps(content))
    return path


def datum(kind: str, **fields) -> dict:
    return {
        "type": kind,
        "time": "2024-03-01T12:00:00.000Z",
        "timezoneOffset": 60,
        "deviceId": "pump-1",
        **fields,
    }


@pytest.mark.parametrize("name", [JELLYFISH, DOCS])
def test_detected_as_tidepool(name):
    assert detect_format(sample(name)).name == "tidepool"


@pytest.fixture(scope="module")
def jellyfish():
    return read_file(sample(JELLYFISH))


def test_jellyfish_counts_match_readme(jellyfish):
    meta = jellyfish.meta
    assert meta["types"] == {
        "basal/scheduled": 433,
        "basal/suspend": 25,
        "basal/temp": 40,
        "bolus/dual/square": 2,
        "bolus/normal": 213,
        "cbg": 1282,
        "deviceEvent/alarm": 45,
        "deviceEvent/reservoirChange": 22,
        "deviceEvent/status": 25,
        "pumpSettings": 5,
        "smbg/linked": 21,
        "smbg/manual": 34,
        "upload": 8,
        "wizard": 41,
    }
    assert sum(meta["types"].values()) == 2196
    g = jellyfish.glucose
    assert ((g["source"] == "cgm").sum(), (g["source"] == "fingerstick").sum()) == (1282, 55)
    ins = jellyfish.insulin
    basal = ins[ins["event"] == "basal"]
    assert basal["delivery"].value_counts().to_dict() == {
        "scheduled": 433,
        "temporary": 40,
        "suspend": 25,
    }
    bolus = ins[ins["event"] == "bolus"]
    assert bolus["delivery"].value_counts().to_dict() == {"normal": 213, "dual": 2}
    assert meta["duplicates_dropped"] == 0
    assert meta["skipped"] == {"deviceEvent/alarm": 45}
    # every deviceEvent/status suspension is also a basal/suspend datum: none added
    assert meta["suspends_from_status_events"] == 0
    assert meta["wizard_boluses"] == {"linked": 41, "embedded": 0, "missing": 0}
    assert len(meta["devices"]) == 8
    assert {d["model"] for d in meta["devices"]} == {"OmniPod", "FreeStyle Libre"}
    assert [e["event"] for e in meta["events"]] == ["deviceEvent/reservoirChange"] * 22


def test_jellyfish_times(jellyfish):
    g = jellyfish.glucose
    cgm = g[g["source"] == "cgm"]
    assert cgm["time"].min() == pd.Timestamp("2018-01-17 10:51:17", tz="UTC")
    assert cgm["time"].max() == pd.Timestamp("2018-01-31 16:34:03", tz="UTC")
    first = jellyfish.insulin.iloc[0]  # the earliest datum of the file: a 2.3 U bolus
    assert first["time"] == pd.Timestamp("2018-01-01 00:37:23", tz="UTC")
    assert first["units_u"] == 2.3
    for stream in ("glucose", "insulin", "carbs"):
        assert (jellyfish.table(stream)["utc_offset_min"] == -480).all()
    assert jellyfish.subjects == ["data-analytics_PHI-jill-jellyfish-lite"]


def test_jellyfish_glucose_round_trips_to_device_integers(jellyfish):
    g = jellyfish.glucose
    assert (g["glucose_mg_dl"] % 1 == 0).all()  # every Libre/meter reading an integer
    last = g[g["source"] == "cgm"].iloc[-1]
    assert last["glucose_mg_dl"] == 119.0  # stored 6.60539 mmol/L
    assert last["source_line"] == 439
    wrong_factor = 6.60539 * MG_DL_PER_MMOL_L
    assert wrong_factor == pytest.approx(119.02, abs=0.01)  # not the device's integer
    stick = g[g["source"] == "fingerstick"].iloc[0]
    assert (stick["glucose_mg_dl"], stick["source_line"]) == (195.0, 2195)
    low = g[g["censored"] == "below"]
    assert len(low) == 2
    assert low["glucose_mg_dl"].tolist() == [41.0, 41.0]  # annotation threshold, mg/dL
    assert low["source_line"].tolist() == [979, 971]


def test_jellyfish_insulin_and_carbs(jellyfish):
    ins = jellyfish.insulin
    bolus = ins[ins["event"] == "bolus"]
    assert bolus["units_u"].sum() == pytest.approx(722.05)  # 716.05 normal + 6.0 extended
    dual = bolus[bolus["delivery"] == "dual"]
    assert dual["units_u"].tolist() == [2.5, 4.0]  # 0.1 + 2.4 and 0.4 + 3.6
    assert dual["extended_units_u"].tolist() == [2.4, 3.6]
    assert dual["duration_min"].tolist() == [150.0, 90.0]
    assert (bolus["flag"] == "interrupted").sum() == 4
    assert not ins["automated"].any()
    temp = ins[ins["delivery"] == "temporary"].iloc[0]
    assert (temp["rate_u_per_h"], temp["duration_min"]) == (1.88, 175.7)
    assert (ins[ins["delivery"] == "suspend"]["rate_u_per_h"] == 0).all()
    assert (ins["flag"] == "final-basal/fabricated-from-schedule").sum() == 1
    carbs = jellyfish.carbs
    # 41 wizards: 12 without carb input (OmniPod carb_grams 65535), one with 0 g
    assert len(carbs) == 28
    assert carbs["carbs_g"].sum() == 1118.0
    assert carbs["carbs_g"].max() == 115.0


def test_jellyfish_pump_settings(jellyfish):
    profiles = jellyfish.meta["profiles"]
    assert len(profiles) == 15  # 5 pumpSettings datums x 3 basal schedules
    latest = [p for p in profiles if p["valid_from"] == "2018-02-28T22:30:17+00:00"]
    assert [(p["name"], p["default"]) for p in latest] == [
        ("basal 1", False),
        ("basal 2", False),
        ("basal 3", True),
    ]
    active = latest[2]
    assert [b["value"] for b in active["basal_u_per_h"]] == [
        1.5,
        1.35,
        1.55,
        1.45,
        0.65,
        1.15,
        1.45,
    ]
    assert active["basal_u_per_h"][1]["start"] == "03:30"
    # stored in mmol/L although units.bg says mg/dL: 2.7753739955 → 50 mg/dL per U
    assert [s["value"] for s in active["sensitivity_mg_dl_per_u"]] == [50.0, 40.0, 50.0]
    assert [t["value"] for t in active["target_low_mg_dl"]] == [130.0, 115.0]
    assert [t["value"] for t in active["target_high_mg_dl"]] == [160.0, 165.0]
    assert [c["value"] for c in active["carb_ratio_g_per_u"]] == [12.0, 10.0, 12.0, 10.0]


def test_api_documentation_examples():
    rec = read_file(sample(DOCS))
    meta = rec.meta
    # the "normal" bolus example reuses the id of the "automated" one: dropped as a duplicate
    assert meta["duplicates_dropped"] == 1
    assert meta["skipped"] == {
        "bloodKetone": 1,
        "cgmSettings": 1,
        "deviceEvent/alarm": 1,
        "deviceEvent/timeChange": 1,
    }
    g = rec.glucose
    assert g["glucose_mg_dl"].tolist() == [72.0, 42.0]
    assert g["source"].tolist() == ["cgm", "fingerstick"]
    assert (g["utc_offset_min"] == 600).all()
    ins = rec.insulin.set_index("source_line")
    assert ins.loc[2, ["delivery", "rate_u_per_h", "duration_min"]].tolist() == [
        "scheduled",
        1.45,
        1410.0,
    ]
    assert ins.loc[1, ["delivery", "automated", "rate_u_per_h"]].tolist() == [
        "temporary",
        True,
        1.825,
    ]
    assert ins.loc[4, "rate_u_per_h"] == 0.1875
    assert ins.loc[3, ["delivery", "rate_u_per_h"]].tolist() == ["suspend", 0.0]
    assert ins.loc[16, ["delivery", "duration_min"]].tolist() == ["suspend", 1080.0]
    assert meta["suspends_from_status_events"] == 1
    assert ins.loc[6, ["units_u", "automated"]].tolist() == [7.75, True]
    assert ins.loc[8, ["delivery", "units_u", "flag"]].tolist() == [
        "extended",
        9.75,
        "interrupted",
    ]
    assert ins.loc[7, ["delivery", "units_u", "extended_units_u"]].tolist() == [
        "dual",
        12.0,
        5.75,
    ]
    assert rec.carbs["carbs_g"].tolist() == [17.0]
    assert meta["wizard_boluses"] == {"linked": 0, "embedded": 0, "missing": 1}
    assert [(p["name"], p["default"]) for p in meta["profiles"]] == [
        ("Normal", True),
        ("Vacation", False),
        ("Weekday", False),
    ]
    profile = meta["profiles"][0]
    assert [b["value"] for b in profile["basal_u_per_h"]] == [1.775, 0.475]
    assert [s["value"] for s in profile["sensitivity_mg_dl_per_u"]] == [84.0, 59.0]
    assert profile["target_low_mg_dl"][0]["value"] == 80.0
    assert profile["target_high_mg_dl"][0]["value"] == 150.0
    assert meta["devices"][0]["timezone"] == "Europe/London"
    assert [e["event"] for e in meta["events"]] == [
        "deviceEvent/prime",
        "deviceEvent/reservoirChange",
    ]


@given(st.integers(min_value=10, max_value=1000), st.sampled_from([None, 5, 10]))
def test_tidepool_factor_round_trips_device_integers(mg_dl, decimals):
    stored = mg_dl / TIDEPOOL_MG_DL_PER_MMOL_L
    if decimals is not None:
        stored = round(stored, decimals)
    assert float(mg_dl_from_tidepool_mmol(stored)) == mg_dl


def test_mmol_native_values_keep_their_precision():
    assert mg_dl_from_tidepool_mmol(5.6) == pytest.approx(5.6 * TIDEPOOL_MG_DL_PER_MMOL_L)
    assert mg_dl_from_tidepool_mmol(5.6) % 1 != 0


# --------------------------------------------------------------------------- other datums


def test_food_activity_injection_embedded_bolus(tmp_path):
    data = [
        datum(
            "food",
            nutrition={"carbohydrate": {"net": 45, "units": "grams"}},
            meal="lunch",
            name="pasta",
        ),
        datum(
            "physicalActivity",
            activityType="running",
            reportedIntensity="high",
            duration={"value": 1.5, "units": "hours"},
            energy={"value": 2092, "units": "kilojoules"},
            step={"count": 9000},
        ),
        datum(
            "insulin",
            dose={"total": 14, "units": "Units"},
            formulation={"name": "Lantus", "simple": {"actingType": "long"}},
        ),
        datum(
            "wizard",
            carbInput=30,
            bolus={"type": "bolus", "subType": "normal", "normal": 3.0, "id": "b1"},
        ),
        datum("cbg", value=110, units="mg/dL"),
    ]
    rec = read_file(write(tmp_path, data))
    carbs = rec.carbs
    assert carbs["carbs_g"].tolist() == [30.0, 45.0]  # same time: wizard, then food
    assert carbs["meal_type"].iloc[1] == "lunch" and carbs["note"].iloc[1] == "pasta"
    act = rec.activity.iloc[0]
    assert (act["activity_type"], act["intensity"], act["duration_min"]) == (
        "running",
        "high",
        90.0,
    )
    assert act["energy_kcal"] == pytest.approx(500.0, abs=0.01)
    assert act["steps"] == 9000.0
    ins = rec.insulin
    assert ins["units_u"].tolist() == [3.0, 14.0]  # the wizard's embedded bolus, the pen
    assert ins["insulin_class"].tolist() == ["rapid", "long"]
    assert ins["insulin_name"].iloc[1] == "Lantus"
    assert ins["source_line"].tolist() == [4, 3]
    assert rec.meta["wizard_boluses"] == {"linked": 0, "embedded": 1, "missing": 0}
    assert rec.glucose["glucose_mg_dl"].tolist() == [110.0]
    assert rec.glucose["utc_offset_min"].tolist() == [60]


def test_linked_wizard_bolus_is_counted_once(tmp_path):
    data = [
        datum("bolus", subType="normal", normal=4.0, id="b1"),
        datum("wizard", carbInput=40, bolus="b1", id="w1"),
        datum(
            "wizard",
            carbInput=40,
            bolus={"id": "b1", "normal": 4.0, "subType": "normal"},
            id="w2",
            time="2024-03-01T13:00:00Z",
        ),
    ]
    rec = read_file(write(tmp_path, data))
    assert rec.insulin["units_u"].tolist() == [4.0]
    assert rec.meta["wizard_boluses"] == {"linked": 2, "embedded": 0, "missing": 0}
    assert rec.carbs["carbs_g"].tolist() == [40.0, 40.0]


def test_temp_basal_from_percent_of_suppressed(tmp_path):
    data = [
        datum(
            "basal",
            deliveryType="temp",
            percent=0.5,
            duration=1_800_000,
            suppressed={"type": "basal", "deliveryType": "scheduled", "rate": 1.2},
        )
    ]
    row = read_file(write(tmp_path, data)).insulin.iloc[0]
    assert (row["rate_u_per_h"], row["duration_min"]) == (0.6, 30.0)


def test_offsets_from_zone_device_time_or_option(tmp_path):
    base = {"type": "smbg", "units": "mg/dL", "value": 100}
    data = [
        {**base, "time": "2024-07-01T10:00:00Z", "timezone": "Europe/Paris"},
        {**base, "time": "2024-07-01T11:00:00Z", "deviceTime": "2024-07-01T04:01:10"},
        {**base, "time": "2024-07-01T12:00:00Z"},
        {**base, "deviceTime": "2024-07-01T15:00:00"},
    ]
    rec = read_file(write(tmp_path, data))
    g = rec.glucose
    assert g["utc_offset_min"].tolist()[:3] == [120, -420, 0]
    assert pd.isna(g["utc_offset_min"].iloc[3])  # deviceTime only: floating local time
    assert g["time"].iloc[3] == pd.Timestamp("2024-07-01 15:00", tz="UTC")
    zoned = read_file(write(tmp_path, data), options=ImportOptions(timezone="Asia/Tokyo"))
    # the deviceTime-only reading, 15:00 in Tokyo, is now the earliest (06:00 UTC)
    assert zoned.glucose["time"].iloc[0] == pd.Timestamp("2024-07-01 06:00", tz="UTC")
    assert zoned.glucose["utc_offset_min"].tolist() == [540, 120, -420, 540]


def test_censored_high_with_threshold(tmp_path):
    data = [
        datum(
            "cbg",
            units="mmol/L",
            value=23.035604162838963,
            annotations=[{"code": "bg/out-of-range", "value": "high", "threshold": 414}],
        )
    ]
    row = read_file(write(tmp_path, data)).glucose.iloc[0]
    assert (row["censored"], row["glucose_mg_dl"]) == ("above", 414.0)


# ------------------------------------------------------------------------------- bad input


def test_truncated_jellyfish(tmp_path):
    raw = sample(JELLYFISH).read_text()
    with pytest.raises(DataError) as err:
        read_file(write(tmp_path, raw[:100_000]), format="tidepool")
    assert "malformed JSON" in err.value.message and err.value.line == 1


@pytest.mark.parametrize(
    ("data", "field", "line", "message"),
    [
        (
            [datum("cbg", value=5.5, units="mmol/L"), datum("spaceship")],
            "type",
            2,
            "unknown Tidepool datum type",
        ),
        ([{"time": "2024-01-01T00:00:00Z"}], "type", 1, "without a 'type'"),
        ([datum("cbg", value=100, units="mg/l")], "units", 1, "unknown glucose unit"),
        ([datum("cbg", value=100)], "units", 1, "no glucose units"),
        ([datum("cbg", units="mmol/L")], "value", 1, "without a value"),
        ([datum("cbg", value="abc", units="mmol/L")], "value", 1, "'abc' is not a number"),
        ([datum("cbg", value=-5, units="mg/dL")], "glucose_mg_dl", 1, "outside the possible"),
        ([datum("cbg", value=5, units="mmol/L", time="noon")], "time", 1, "cannot read"),
        ([{"type": "cbg", "value": 5, "units": "mmol/L"}], "time", 1, "without a time"),
        ([datum("basal", deliveryType="loop", rate=1)], "deliveryType", 1, "unknown basal"),
        ([datum("bolus", subType="giant", normal=1)], "subType", 1, "unknown bolus"),
        (
            [datum("wizard", carbInput=2, carbUnits="exchanges")],
            "carbUnits",
            1,
            "unknown carbohydrate unit",
        ),
        (
            [
                datum(
                    "pumpSettings",
                    basalSchedules={"A": []},
                    insulinSensitivity=[{"start": 0, "amount": 50}],
                )
            ],
            "insulinSensitivity[0].amount",
            1,
            "not a glucose setting in mmol/L",
        ),
        (
            [datum("pumpSettings", basalSchedules={"A": [{"start": 0, "rate": "x"}]})],
            "basalSchedules.A[0].rate",
            1,
            "not a number",
        ),
        (
            [datum("smbg", value=100, units="mg/dL", timezone="Mars/Olympus", timezoneOffset=None)],
            "timezone",
            1,
            "unknown time zone",
        ),
        (
            [datum("physicalActivity", duration={"value": 3, "units": "fortnights"})],
            "duration.units",
            1,
            "unknown unit",
        ),
        ([7], None, 1, "not a JSON object"),
    ],
)
def test_bad_datums(tmp_path, data, field, line, message):
    with pytest.raises(DataError) as err:
        read_file(write(tmp_path, data), format="tidepool")
    assert err.value.field == field
    assert err.value.line == line
    assert message in err.value.message
    assert err.value.file is not None and err.value.file.endswith("tp.json")


@pytest.mark.parametrize("content", ["[]", '"x"', "{"])
def test_not_tidepool(tmp_path, content):
    with pytest.raises(DataError):
        read_file(write(tmp_path, content), format="tidepool")


def test_sniff_is_specific(tmp_path):
    from glucotwin.data.importers.tidepool import FORMAT

    nightscout = shared_path("formats", "nightscout_json", "nightscout-librelink-up_entries.json")
    assert not FORMAT.sniff(nightscout, nightscout.read_bytes())
    assert not FORMAT.sniff(tmp_path / "x.json", b'[{"eventType": "Meal Bolus", "type": "x"}]')
    assert not FORMAT.sniff(tmp_path / "x.json", b'{"resourceType": "Bundle"}')
    assert FORMAT.sniff(tmp_path / "x.json", b'[{"type": "cbg", "deviceTime": "2024"}]')


def test_every_row_keeps_provenance(jellyfish):
    for stream in ("glucose", "insulin", "carbs"):
        table = jellyfish.table(stream)
        assert table["source_line"].between(1, 2196).all()
        assert (table["source_file"] == JELLYFISH).all()
        assert table["device"].notna().all()
    assert np.isin(
        jellyfish.glucose["device"].unique(),
        ["InsOmn-130346997", "AbbottFreeStyleLibre-JKGX280-T2691"],
    ).all()


FIELD_VALUES = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(10**9), 10**9),
    st.floats(allow_nan=False, allow_infinity=False),
    st.sampled_from(["", "abc", "mmol/L", "mg/dL", "2024-01-01T00:00:00Z", "temp", "normal"]),
    st.fixed_dictionaries({"value": st.integers(0, 100), "units": st.sampled_from(["minutes"])}),
    st.lists(
        st.dictionaries(
            st.sampled_from(["code", "value", "threshold", "start", "rate", "normal", "id"]),
            st.one_of(st.integers(-5, 90_000_000), st.sampled_from(["low", "bg/out-of-range"])),
        ),
        max_size=2,
    ),
    st.dictionaries(
        st.sampled_from(["A", "id", "normal", "subType", "rate"]),
        st.one_of(st.integers(0, 5), st.just([{"start": 0, "rate": 1}])),
    ),
)
DATUMS = st.fixed_dictionaries(
    {
        "type": st.sampled_from(
            [
                "cbg",
                "smbg",
                "basal",
                "bolus",
                "wizard",
                "food",
                "upload",
                "physicalActivity",
                "deviceEvent",
                "insulin",
                "pumpSettings",
            ]
        )
    },
    optional={
        name: FIELD_VALUES
        for name in (
            "time",
            "timezoneOffset",
            "deviceTime",
            "value",
            "units",
            "deliveryType",
            "subType",
            "rate",
            "duration",
            "normal",
            "extended",
            "carbInput",
            "bolus",
            "annotations",
            "percent",
            "status",
            "timezone",
            "id",
            "basalSchedules",
        )
    },
)


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(st.lists(DATUMS, min_size=1, max_size=5))
def test_fuzzed_datums_raise_data_error_or_import(tmp_path, data):
    try:
        rec = read_file(write(tmp_path, data, "fuzz.json"), format="tidepool")
    except DataError:
        return
    json.dumps(rec.meta)
    assert rec.glucose["glucose_mg_dl"].between(5, 1500).all()
