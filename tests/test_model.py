"""The canonical data model: coercion, validation with locations, sorting, Parquet round trip."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from glucotwin.data import DataError, Recording, Stream, local_time, localize
from glucotwin.data.parquet import read_parquet, write_parquet


def utc(*stamps: str) -> pd.Series:
    return pd.Series(pd.to_datetime(list(stamps), utc=True))


def test_build_fills_defaults_and_sorts_by_time_keeping_source_order_for_ties():
    glucose = pd.DataFrame(
        {
            "time": utc("2024-01-01 10:05", "2024-01-01 10:00", "2024-01-01 10:00"),
            "glucose_mg_dl": [110.0, 100.0, 101.0],
            "source_line": [2, 3, 4],
        }
    )
    rec = Recording.build(glucose=glucose, file="x.csv")
    assert rec.glucose["glucose_mg_dl"].tolist() == [100.0, 101.0, 110.0]
    assert rec.glucose["source"].tolist() == ["cgm"] * 3
    assert rec.glucose["censored"].tolist() == [""] * 3
    assert rec.glucose["source_file"].tolist() == ["x.csv"] * 3
    assert rec.counts() == {"glucose": 3, "insulin": 0, "carbs": 0, "activity": 0}


@pytest.mark.parametrize(
    ("stream", "frame", "field"),
    [
        (Stream.GLUCOSE, {"glucose_mg_dl": [120.0, -5.0]}, "glucose_mg_dl"),
        (Stream.GLUCOSE, {"glucose_mg_dl": [120.0, 1e6]}, "glucose_mg_dl"),
        (Stream.GLUCOSE, {"glucose_mg_dl": [120.0, 100.0], "source": ["cgm", "tea"]}, "source"),
        (Stream.INSULIN, {"event": ["bolus", "bolus"], "units_u": [1.0, 900.0]}, "units_u"),
        (Stream.INSULIN, {"event": ["bolus", "bolus"], "units_u": [1.0, None]}, "units_u"),
        (
            Stream.INSULIN,
            {"event": ["basal", "basal"], "rate_u_per_h": [1.0, None]},
            "rate_u_per_h",
        ),
        (Stream.INSULIN, {"event": ["bolus", "pizza"], "units_u": [1.0, 1.0]}, "event"),
        (Stream.CARBS, {"carbs_g": [10.0, -1.0]}, "carbs_g"),
        (Stream.ACTIVITY, {"heart_rate_bpm": [80.0, 900.0]}, "heart_rate_bpm"),
    ],
)
def test_bad_values_are_reported_with_file_line_and_field(stream, frame, field):
    table = pd.DataFrame(
        {"time": utc("2024-01-01 10:00", "2024-01-01 10:05"), "source_line": [7, 8], **frame}
    )
    with pytest.raises(DataError) as info:
        Recording.build(**{stream.value: table}, file="bad.csv")
    error = info.value
    assert (error.file, error.line, error.field) == ("bad.csv", 8, field)
    assert str(error).startswith(f"bad.csv:8: field '{field}'")


def test_naive_times_are_refused():
    table = pd.DataFrame({"time": pd.to_datetime(["2024-01-01"]), "glucose_mg_dl": [100.0]})
    with pytest.raises(DataError, match="timezone-aware"):
        Recording.build(glucose=table)


def test_unknown_columns_are_refused():
    table = pd.DataFrame({"time": utc("2024-01-01"), "glucose_mg_dl": [100.0], "sgv": [1]})
    with pytest.raises(DataError, match="unknown column"):
        Recording.build(glucose=table)


def test_flagged_basal_may_lack_a_rate():
    table = pd.DataFrame(
        {"time": utc("2024-01-01"), "event": ["basal"], "flag": ["basal_out_of_range:4127"]}
    )
    rec = Recording.build(insulin=table)
    assert np.isnan(rec.insulin["rate_u_per_h"].iloc[0])


def test_localize_keeps_wall_clock_across_dst_and_floating_time():
    wall = pd.Series(pd.to_datetime(["2024-03-31 01:30", "2024-03-31 03:30"]))
    time, offset = localize(wall, "Europe/Berlin")
    assert offset.tolist() == [60, 120]
    assert time.iloc[1] - time.iloc[0] == pd.Timedelta(hours=1)
    frame = pd.DataFrame({"time": time, "utc_offset_min": offset, "glucose_mg_dl": [1.0, 2.0]})
    rec = Recording.build(glucose=frame.assign(glucose_mg_dl=[100.0, 110.0]))
    assert local_time(rec.glucose).tolist() == wall.tolist()

    floating, missing = localize(wall, None)
    assert missing.isna().all()
    assert floating.dt.tz_localize(None).tolist() == wall.tolist()


def test_localize_refuses_a_nonexistent_spring_forward_time():
    with pytest.raises(DataError, match="Europe/Berlin"):
        localize(pd.Series(pd.to_datetime(["2024-03-31 02:30"])), "Europe/Berlin")


def test_for_subject_and_concat():
    a = Recording.build(
        glucose=pd.DataFrame(
            {"time": utc("2024-01-01"), "glucose_mg_dl": [100.0], "subject": ["a"]}
        )
    )
    b = Recording.build(
        glucose=pd.DataFrame({"time": utc("2023-12-31"), "glucose_mg_dl": [90.0], "subject": ["b"]})
    )
    both = Recording.concat([a, b])
    assert both.subjects == ["a", "b"]
    assert both.glucose["subject"].tolist() == ["a", "b"]
    assert both.for_subject("b").glucose["glucose_mg_dl"].tolist() == [90.0]


times = st.datetimes(min_value=dt.datetime(1990, 1, 1), max_value=dt.datetime(2090, 1, 1)).map(
    lambda t: pd.Timestamp(t, tz="UTC")
)
text = st.one_of(st.none(), st.text(min_size=0, max_size=12))
offsets = st.one_of(st.none(), st.integers(-14 * 60, 14 * 60))


@st.composite
def recordings(draw) -> Recording:
    n_g = draw(st.integers(0, 20))
    glucose = pd.DataFrame(
        {
            "time": pd.Series([draw(times) for _ in range(n_g)], dtype="datetime64[ns, UTC]"),
            "utc_offset_min": pd.array([draw(offsets) for _ in range(n_g)], dtype="Int16"),
            "glucose_mg_dl": [draw(st.floats(5, 1500)) for _ in range(n_g)],
            "source": [draw(st.sampled_from(["cgm", "fingerstick"])) for _ in range(n_g)],
            "censored": [draw(st.sampled_from(["", "below", "above"])) for _ in range(n_g)],
            "subject": pd.array([draw(text) for _ in range(n_g)], dtype="string"),
            "source_line": pd.array(
                [draw(st.one_of(st.none(), st.integers(1, 10**9))) for _ in range(n_g)],
                dtype="Int64",
            ),
        }
    )
    n_i = draw(st.integers(0, 8))
    events = [draw(st.sampled_from(["bolus", "basal"])) for _ in range(n_i)]
    insulin = pd.DataFrame(
        {
            "time": pd.Series([draw(times) for _ in range(n_i)], dtype="datetime64[ns, UTC]"),
            "event": events,
            "units_u": [draw(st.floats(0, 250)) if e == "bolus" else np.nan for e in events],
            "rate_u_per_h": [draw(st.floats(0, 50)) if e == "basal" else np.nan for e in events],
            "automated": [draw(st.booleans()) for _ in range(n_i)],
            "insulin_name": pd.array([draw(text) for _ in range(n_i)], dtype="string"),
        }
    )
    n_c = draw(st.integers(0, 5))
    carbs = pd.DataFrame(
        {
            "time": pd.Series([draw(times) for _ in range(n_c)], dtype="datetime64[ns, UTC]"),
            "carbs_g": [draw(st.one_of(st.just(np.nan), st.floats(0, 1500))) for _ in range(n_c)],
            "note": pd.array([draw(text) for _ in range(n_c)], dtype="string"),
        }
    )
    meta = draw(st.dictionaries(st.text(max_size=5), st.one_of(st.integers(), st.text())))
    return Recording.build(glucose=glucose, insulin=insulin, carbs=carbs, meta=meta)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(recordings())
def test_parquet_round_trip_is_lossless(tmp_path_factory, recording):
    path = tmp_path_factory.mktemp("rt") / "r.parquet"
    write_parquet(recording, path)
    back = read_parquet(path)
    assert back.equals(recording)
    for stream in Stream:
        pd.testing.assert_frame_equal(back.table(stream), recording.table(stream))


def test_parquet_reader_refuses_foreign_files(tmp_path):
    path = tmp_path / "foreign.parquet"
    pd.DataFrame({"a": [1]}).to_parquet(path)
    with pytest.raises(DataError, match="not written by GlucoTwin"):
        read_parquet(path)
    broken = tmp_path / "broken.parquet"
    broken.write_bytes(b"PAR1 not really")
    with pytest.raises(DataError, match="Parquet"):
        read_parquet(broken)
