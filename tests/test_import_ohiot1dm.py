"""OhioT1DM XML importer: the synthetic sample's exact counts, stream mapping and bad input."""

from __future__ import annotations

import contextlib

import pandas as pd
import pytest
from conftest import shared_path
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from glucotwin.data import DataError
from glucotwin.data.formats import ImportOptions, detect_format, read_file
from glucotwin.data.importers.ohiot1dm import FORMAT
from glucotwin.data.model import local_time

NAME = "synthetic_900-ws-training.xml"


def sample():
    return shared_path("formats", "ohiot1dm_xml", NAME)


def write(tmp_path, text: str, name: str = "559-ws-training.xml"):
    path = tmp_path / name
    path.write_text(text)
    return path


def patient(*streams: str, root: str = '<patient id="559" weight="99" insulin_type="Humalog">'):
    return "\n".join(['<?xml version="1.0" encoding="UTF-8"?>', root, *streams, "</patient>"])


def stream(tag: str, *events: str) -> str:
    return "\n".join([f"  <{tag}>", *(f"    <event {e}/>" for e in events), f"  </{tag}>"])


@pytest.fixture(scope="module")
def rec():
    return read_file(sample())


def test_detected_as_ohiot1dm():
    assert detect_format(sample()).name == "ohiot1dm"


def test_exact_counts_of_the_synthetic_sample(rec):
    # README: 564 glucose_level events of which one exact duplicate, 4 finger sticks;
    # 6 basal + 2 temp basal; 5 bolus events of which a normal/square dual pair (one bolus);
    # 6 meals; activity: exercise 1 + heart rate 36 + steps 36 + sleep 2 + basis_sleep 1 + work 1
    assert rec.counts() == {"glucose": 567, "insulin": 12, "carbs": 6, "activity": 77}
    g = rec.glucose
    assert (g["source"] == "cgm").sum() == 563
    assert (g["source"] == "fingerstick").sum() == 4
    assert rec.meta["duplicates_dropped"] == {"glucose_level": 1}
    assert rec.meta["dropped_streams"] == {
        "basis_gsr": 36,
        "basis_skin_temperature": 36,
        "basis_air_temperature": 36,
    }
    assert rec.meta["patient"] == {"id": "900", "weight": "99", "insulin_type": "Novalog"}
    assert set(rec.subjects) == {"900"}


def test_glucose_times_values_and_lines(rec):
    cgm = rec.cgm()
    assert cgm["time"].iloc[0] == pd.Timestamp("2030-03-14 00:02:17", tz="UTC")
    assert cgm["time"].iloc[-1] == pd.Timestamp("2030-03-15 23:57:17", tz="UTC")
    assert cgm["glucose_mg_dl"].iloc[0] == 130 and cgm["glucose_mg_dl"].iloc[-1] == 130
    assert (cgm["glucose_mg_dl"].min(), cgm["glucose_mg_dl"].max()) == (95, 200)
    assert cgm["utc_offset_min"].isna().all()  # floating local time without a zone
    assert cgm["source_line"].iloc[0] == 4
    assert cgm["source_file"].iloc[0] == NAME
    gaps = cgm["time"].diff().dt.total_seconds().div(60)
    assert gaps.max() == 70  # the 65-minute sensor gap between 5-minute readings
    assert (gaps.dropna() > 0).all()  # the duplicate is gone
    sticks = rec.glucose[rec.glucose["source"] == "fingerstick"]
    assert sticks["glucose_mg_dl"].tolist() == [141, 118, 164, 102]


def test_insulin_mapping(rec):
    ins = rec.insulin
    basal = ins[ins["event"] == "basal"]
    scheduled = basal[basal["delivery"] == "scheduled"]
    assert scheduled["rate_u_per_h"].tolist() == [0.9, 1.1, 0.95, 0.85, 0.9, 1.1]
    suspend = basal[basal["delivery"] == "suspend"].iloc[0]
    assert (suspend["rate_u_per_h"], suspend["duration_min"]) == (0.0, 50.0)
    assert suspend["time"] == pd.Timestamp("2030-03-14 03:12", tz="UTC")
    temporary = basal[basal["delivery"] == "temporary"].iloc[0]
    assert (temporary["rate_u_per_h"], temporary["duration_min"]) == (0.45, 120.0)
    bolus = ins[ins["event"] == "bolus"]
    assert bolus["delivery"].tolist() == ["normal", "dual", "normal", "normal"]
    assert bolus["units_u"].tolist() == [4.5, 8.0, 1.2, 5.0]
    dual = bolus[bolus["delivery"] == "dual"].iloc[0]
    assert (dual["extended_units_u"], dual["duration_min"]) == (2.0, 120.0)
    assert dual["source_line"] == 589
    assert dual["flag"] is pd.NA
    assert ins["insulin_name"].unique().tolist() == ["Novalog"]
    assert rec.meta["bolus_wizard_carbs"] == [
        {"time": "2030-03-14T07:28:41", "carbs_g": 45.0, "line": 588},
        {"time": "2030-03-14T12:31:05", "carbs_g": 60.0, "line": 589},
        {"time": "2030-03-15T07:30:00", "carbs_g": 50.0, "line": 592},
    ]


def test_meals(rec):
    carbs = rec.carbs
    assert carbs["carbs_g"].tolist() == [45, 60, 15, 0, 16, 50]
    assert carbs["meal_type"].tolist() == [
        "breakfast",
        "lunch",
        "snack",
        "dinner",
        "hypo_correction",
        "breakfast",
    ]
    assert carbs["carbs_g"].sum() == 186


def test_activity_rows(rec):
    act = rec.activity
    heart = act[act["activity_type"] == "heart_rate"]
    steps = act[act["activity_type"] == "steps"]
    assert len(heart) == len(steps) == 36
    assert heart["heart_rate_bpm"].iloc[:3].tolist() == [70, 71, 73]
    assert steps["steps"].iloc[:4].tolist() == [0, 9, 19, 27]
    assert (steps["duration_min"] == 5).all()
    other = act[~act["activity_type"].isin(["heart_rate", "steps"])].set_index("source_line")
    assert other.loc[622, ["activity_type", "intensity", "duration_min"]].tolist() == [
        "exercise",
        "5/10",
        40.0,
    ]
    assert other.loc[607, ["activity_type", "intensity", "duration_min"]].tolist() == [
        "work",
        "3/10",
        510.0,
    ]
    assert other.loc[603, ["intensity", "duration_min"]].tolist() == ["quality fair", 455.0]
    assert other.loc[604, "flag"] == "end_before_begin"  # ts_end before ts_begin, kept
    assert pd.isna(other.loc[604, "duration_min"])
    assert other.loc[815, ["activity_type", "intensity", "duration_min"]].tolist() == [
        "sleep_band",
        "quality 87",
        430.0,
    ]


def test_notes_go_to_metadata(rec):
    assert rec.meta["hypo_events"] == [
        {
            "time": "2030-03-15T03:05:00",
            "symptoms": [{"name": "shaky"}, {"name": "sweaty"}],
            "line": 613,
        }
    ]
    assert rec.meta["illness"] == [
        {
            "begin": "2030-03-15T12:00:00",
            "end": None,
            "type": None,
            "description": None,
            "line": 619,
        }
    ]
    assert rec.meta["stressors"] == [
        {"time": "2030-03-14T15:00:00", "type": None, "description": None, "line": 610}
    ]


def test_timezone_places_the_wall_clock(tmp_path):
    rec = read_file(sample(), options=ImportOptions(timezone="America/New_York"))
    g = rec.cgm()
    assert g["utc_offset_min"].unique().tolist() == [-240]  # EDT from 10 March 2030
    assert g["time"].iloc[0] == pd.Timestamp("2030-03-14 04:02:17", tz="UTC")
    assert local_time(g).iloc[0] == pd.Timestamp("2030-03-14 00:02:17")
    assert rec.insulin["utc_offset_min"].eq(-240).all()


def test_subject_option_and_empty_streams(tmp_path):
    text = patient(
        stream("glucose_level", 'ts="07-12-2021 01:17:00" value="101"'),
        "  <finger_stick>\n  </finger_stick>",
        "  <bolus/>",
        stream("acceleration", 'ts="07-12-2021 01:17:00" value="1.02"'),
    )
    rec = read_file(write(tmp_path, text), options=ImportOptions(subject="s-1"))
    assert rec.counts() == {"glucose": 1, "insulin": 0, "carbs": 0, "activity": 0}
    assert rec.glucose["subject"].tolist() == ["s-1"]
    assert rec.glucose["time"].iloc[0] == pd.Timestamp("2021-12-07 01:17", tz="UTC")  # day 1st
    assert rec.meta["dropped_streams"] == {"acceleration": 1}


def test_unpaired_dual_parts_and_square_and_open_temp_basal(tmp_path):
    text = patient(
        stream(
            "bolus",
            'ts_begin="01-02-2021 08:00:00" ts_end="01-02-2021 08:00:00" type="normal dual" '
            'dose="3.0" bwz_carb_input="0"',
            'ts_begin="01-02-2021 12:00:00" ts_end="01-02-2021 13:30:00" type="square dual" '
            'dose="1.5" bwz_carb_input="0"',
            'ts_begin="01-02-2021 18:00:00" ts_end="01-02-2021 19:00:00" type="square" '
            'dose="2.0" bwz_carb_input="0"',
        ),
        stream("temp_basal", 'ts_begin="01-02-2021 02:00:00" ts_end="" value="0.3"'),
    )
    ins = read_file(write(tmp_path, text)).insulin.set_index("source_line")
    assert ins.loc[4, ["delivery", "units_u", "extended_units_u", "flag"]].tolist() == [
        "dual",
        3.0,
        0.0,
        "dual_square_part_missing",
    ]
    assert ins.loc[
        5, ["delivery", "units_u", "extended_units_u", "duration_min", "flag"]
    ].tolist() == [
        "dual",
        1.5,
        1.5,
        90.0,
        "dual_normal_part_missing",
    ]
    assert ins.loc[6, ["delivery", "units_u", "extended_units_u", "duration_min"]].tolist() == [
        "extended",
        2.0,
        2.0,
        60.0,
    ]
    assert ins.loc[9, ["delivery", "flag"]].tolist() == ["temporary", "no_end"]
    assert pd.isna(ins.loc[9, "duration_min"])


def test_sniff_is_specific(tmp_path):
    fhir = '{"resourceType": "Observation", "status": "final"}'
    other_xml = '<?xml version="1.0"?><patient><name>x</name></patient>'
    gpx = '<?xml version="1.0"?><gpx><trk/></gpx>'
    for name, text in {"a.json": fhir, "b.xml": other_xml, "c.xml": gpx}.items():
        path = write(tmp_path, text, name)
        assert not FORMAT.sniff(path, path.read_bytes()), name


def line_of(text: str, needle: str) -> int:
    return text[: text.index(needle)].count("\n") + 1


@pytest.mark.parametrize(
    ("old", "new", "field", "message"),
    [
        ('value="133"/>', 'value="abc"/>', "glucose_level.value", "'abc' is not a number"),
        ('value="133"/>', 'value="-5"/>', "glucose_mg_dl", "outside the possible range"),
        (
            'ts="14-03-2030 00:22:17"',
            'ts="2030-03-14 00:22:17"',
            "glucose_level.ts",
            "cannot read date-time",
        ),
        ('ts="14-03-2030 00:22:17"', 'ts=""', "glucose_level.ts", "has no 'ts'"),
        (
            'type="normal" dose="4.5"',
            'type="triple" dose="4.5"',
            "bolus.type",
            "unknown bolus type",
        ),
        ('carbs="45"', 'carbs="lots"', "meal.carbs", "not a number"),
    ],
)
def test_bad_values_name_file_line_and_field(tmp_path, old, new, field, message):
    text = sample().read_text()
    line = line_of(text, old)
    path = write(tmp_path, text.replace(old, new, 1))
    with pytest.raises(DataError, match=message) as err:
        read_file(path)
    assert (err.value.line, err.value.field) == (line, field)
    assert err.value.file is not None and err.value.file.endswith("559-ws-training.xml")


def test_truncated_file_names_the_line(tmp_path):
    text = sample().read_text()
    cut = text[: len(text) // 2]
    with pytest.raises(DataError, match="malformed XML") as err:
        read_file(write(tmp_path, cut), format="ohiot1dm")
    assert err.value.line == cut.count("\n") + 1


def test_wrong_root_and_entity_declarations_are_refused(tmp_path):
    with pytest.raises(DataError, match="not <patient>") as err:
        FORMAT.read(write(tmp_path, "<subject id='1'><glucose_level/></subject>"), ImportOptions())
    assert err.value.line == 1
    bomb = (
        '<?xml version="1.0"?>\n<!DOCTYPE patient [<!ENTITY a "aaaaaaaaaa">'
        '<!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;">]>\n'
        '<patient id="1"><glucose_level><event ts="&b;" value="1"/></glucose_level></patient>'
    )
    with pytest.raises(DataError, match="DOCTYPE/ENTITY declarations are not allowed") as err:
        read_file(write(tmp_path, bomb), format="ohiot1dm")
    assert err.value.line == 2


ATTRIBUTE = st.one_of(
    st.text(alphabet=st.characters(codec="utf-8", exclude_characters='<&"'), max_size=20),
    st.sampled_from(
        [
            "",
            " ",
            "0",
            "-1",
            "1e400",
            "nan",
            "31-02-2030 00:00:00",
            "14-03-2030 25:00:00",
            "14-03-2030 00:00:00",
            "normal dual",
        ]
    ),
)


@settings(
    max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    tag=st.sampled_from(["glucose_level", "temp_basal", "bolus", "meal", "sleep", "exercise"]),
    name=st.sampled_from(["ts", "ts_begin", "ts_end", "value", "dose", "type", "carbs"]),
    value=ATTRIBUTE,
)
def test_fuzzed_attributes_raise_only_data_errors(tmp_path, tag, name, value):
    base = {
        "ts": "14-03-2030 00:02:17",
        "ts_begin": "14-03-2030 00:02:17",
        "ts_end": "14-03-2030 01:02:17",
        "value": "130",
        "dose": "1",
        "type": "normal",
        "carbs": "10",
    }
    attrs = " ".join(f'{k}="{v}"' for k, v in {**base, name: value}.items())
    path = write(tmp_path, patient(stream(tag, attrs)))
    with contextlib.suppress(DataError):  # any other exception fails the test
        FORMAT.read(path, ImportOptions())
