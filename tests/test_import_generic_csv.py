"""Generic CSV importer: units, offsets, events, column mapping and every kind of bad input."""

from __future__ import annotations

import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from glucotwin.data import DataError
from glucotwin.data.formats import ImportOptions, detect_format, read_file


def write(tmp_path, text: str, name: str = "g.csv"):
    path = tmp_path / name
    path.write_text(text)
    return path


def test_reads_glucose_events_and_offsets(tmp_path):
    path = write(
        tmp_path,
        "timestamp,glucose_mg_dl,insulin_u,basal_u_per_h,carbs_g\n"
        "2024-05-02T10:15:00+02:00,120,,0.8,\n"
        "2024-05-02T10:20:00+02:00,125,2.5,,30\n"
        "\n"
        "2024-05-02T10:25:00+02:00,,,,12\n",
    )
    assert detect_format(path).name == "csv"
    rec = read_file(path)
    g = rec.glucose
    assert g["glucose_mg_dl"].tolist() == [120.0, 125.0]
    assert g["time"].iloc[0] == pd.Timestamp("2024-05-02T08:15:00Z")
    assert g["utc_offset_min"].tolist() == [120, 120]
    assert g["source_line"].tolist() == [2, 3]
    bolus = rec.insulin[rec.insulin["event"] == "bolus"]
    basal = rec.insulin[rec.insulin["event"] == "basal"]
    assert bolus["units_u"].tolist() == [2.5]
    assert basal["rate_u_per_h"].tolist() == [0.8]
    assert rec.carbs["carbs_g"].tolist() == [30.0, 12.0]
    assert rec.carbs["source_line"].tolist() == [3, 5]
    assert rec.subjects == ["g"]


def test_mmol_l_is_converted_and_naive_times_use_the_given_zone(tmp_path):
    path = write(tmp_path, "timestamp,glucose_mmol_l\n2024-07-01 12:00,5.5\n")
    rec = read_file(path, options=ImportOptions(timezone="America/New_York"))
    assert rec.glucose["glucose_mg_dl"].iloc[0] == pytest.approx(5.5 * 18.0182)
    assert rec.glucose["utc_offset_min"].iloc[0] == -240
    assert rec.glucose["time"].iloc[0] == pd.Timestamp("2024-07-01T16:00Z")


def test_column_mapping_and_subject_column(tmp_path):
    path = write(tmp_path, "when,bg,who\n2024-07-01 12:00,101,p1\n2024-07-01 12:05,99,p2\n")
    options = ImportOptions(
        column_map={"when": "timestamp", "bg": "glucose_mg_dl", "who": "subject"}
    )
    rec = read_file(path, format="csv", options=options)
    assert rec.subjects == ["p1", "p2"]


@pytest.mark.parametrize(
    ("text", "line", "field", "message"),
    [
        (
            "timestamp,glucose_mg_dl\n2024-01-01 00:00,100\n2024-01-01 00:05,abc\n",
            3,
            "glucose_mg_dl",
            "not a number",
        ),
        (
            "timestamp,glucose_mg_dl\n2024-01-01 00:00,100\n2024-13-01 00:05,90\n",
            3,
            "timestamp",
            "cannot read",
        ),
        (
            "timestamp,glucose_mg_dl\n2024-01-01 00:00,100\n2024-01-01 00:05,-5\n",
            3,
            "glucose_mg_dl",
            "outside the possible range",
        ),
        (
            "timestamp,glucose_mg_dl\n2024-01-01T00:00Z,100\n2024-01-01 00:05,90\n",
            3,
            "timestamp",
            "mixed time zones",
        ),
        ("timestamp,glucose_mg_dl,insulin_u\n2024-01-01 00:00,100,500\n", 2, "units_u", "outside"),
        ("timestamp,glucose_mg_dl\n,100\n", 2, "timestamp", "missing"),
    ],
)
def test_bad_input_names_file_line_and_field(tmp_path, text, line, field, message):
    path = write(tmp_path, text)
    with pytest.raises(DataError, match=message) as info:
        read_file(path, format="csv")
    assert info.value.file is not None and info.value.file.endswith("g.csv")
    assert (info.value.line, info.value.field) == (line, field)


def test_final_newline_is_optional_but_a_ragged_last_row_is_truncated(tmp_path):
    body = "timestamp,glucose_mg_dl,carbs_g\n2024-01-01 00:00,100,\n2024-01-01 00:05,105,20"
    rec = read_file(write(tmp_path, body), format="csv")
    assert rec.glucose["glucose_mg_dl"].tolist() == [100.0, 105.0]
    assert rec.carbs["source_line"].tolist() == [3]
    for cut, found, field in (
        ("2024-01-01 00:05,10", "2 of 3 fields", "glucose_mg_dl"),
        ('2024-01-01 00:05,"10', "an unclosed quote", None),
    ):
        text = "timestamp,glucose_mg_dl,carbs_g\n2024-01-01 00:00,100,\n" + cut
        with pytest.raises(DataError, match=f"truncated.*{found}") as info:
            read_file(write(tmp_path, text), format="csv")
        assert (info.value.line, info.value.field) == (3, field)


def test_unknown_units_and_missing_header(tmp_path):
    with pytest.raises(DataError, match="glucose_mg_dl"):
        read_file(write(tmp_path, "timestamp,glucose_mg_per_l\n2024-01-01,1\n"), format="csv")
    with pytest.raises(DataError, match="timestamp"):
        read_file(write(tmp_path, "time,glucose_mg_dl\n2024-01-01,1\n"), format="csv")
    with pytest.raises(DataError, match="not recognised"):
        read_file(write(tmp_path, "a,b\n1,2\n", name="other.csv"))
    with pytest.raises(DataError, match="empty"):
        read_file(write(tmp_path, "", name="empty.csv"))
    with pytest.raises(DataError, match="not found"):
        read_file(tmp_path / "missing.csv")


@settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(body=st.text(alphabet=st.sampled_from(list("0123456789-:T ,.\nZ+abcx")), max_size=200))
def test_fuzzed_csv_never_crashes_with_anything_but_a_data_error(tmp_path, body):
    path = tmp_path / "fuzz.csv"
    path.write_text("timestamp,glucose_mg_dl,insulin_u,carbs_g\n" + body)
    try:
        rec = read_file(path, format="csv")
    except DataError:
        return
    assert (rec.glucose["glucose_mg_dl"].between(5, 1500)).all()
