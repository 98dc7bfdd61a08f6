"""Medtronic CareLink CSV importer: 780G sections, legacy Paradigm, pump clock and bad input."""

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

EU = "agp-plus_780g_eu_14d_anonymized.csv"
LEGACY = "mmcsv_paradigm-revel_legacy_withoutSettingsChanges.csv"


def sample(name: str):
    return shared_path("formats", "medtronic_carelink_csv", name)


@pytest.mark.parametrize("name", [EU, LEGACY])
def test_detected_as_carelink(name):
    assert detect_format(sample(name)).name == "medtronic_carelink"


def test_780g_sections():
    rec = read_file(sample(EU))
    g = rec.glucose
    cgm, sticks = g[g["source"] == "cgm"], g[g["source"] == "fingerstick"]
    assert len(cgm) == 4256
    assert cgm["glucose_mg_dl"].between(50, 380).all()
    last = cgm[cgm["source_line"] == 986].iloc[0]  # newest first: first sensor row
    assert last["glucose_mg_dl"] == 150.0
    assert last["time"] == pd.Timestamp("2025-10-26 07:12:34", tz="UTC")  # floating
    assert cgm["time"].min() == pd.Timestamp("2025-10-11 01:02:38", tz="UTC")
    assert set(cgm["device"]) == {"Guardian™ 4 Sensor"}
    # 53 BG rows = 29 meter readings, each repeated when sent on/used for calibration
    assert len(sticks) == 29
    assert rec.meta["fingerstick_repeats_dropped"] == 24
    assert rec.meta["calibration_repeats_dropped"] == 13
    first_of_three = sticks[sticks["source_line"] == 20].iloc[0]  # BG_READIN_RECEIVED 72
    assert first_of_three["glucose_mg_dl"] == 72.0

    ins = rec.insulin
    boluses = ins[ins["event"] == "bolus"]
    assert len(boluses) == 97
    assert (boluses["delivery"] == "normal").all() and not boluses["automated"].any()
    assert boluses["units_u"].sum() == pytest.approx(223.475)
    newest = boluses[boluses["source_line"] == 14].iloc[0]  # delivered 00:52:11, 3.925 U
    assert newest["units_u"] == 3.925
    assert newest["time"] == pd.Timestamp("2025-10-26 00:49:34", tz="UTC")  # programmed
    basal = ins[ins["event"] == "basal"]
    assert (basal["delivery"] == "scheduled").sum() == 223
    suspends = basal[basal["delivery"] == "suspend"]
    assert len(suspends) == 17 and (suspends["rate_u_per_h"] == 0).all()
    assert suspends["automated"].sum() == 3  # PLGM_PREDICTED_LOW_SG
    assert rec.meta["boluses_cancelled_before_delivery"] == 2

    assert len(rec.carbs) == 81 and rec.carbs["carbs_g"].sum() == 1906.0
    assert rec.carbs["carbs_g"].iloc[-1] == 41.0  # BWZ at 2025-10-26 00:49:34

    daily = rec.meta["auto_insulin_daily_u"]
    assert len(daily) == 16
    assert daily["2025-10-15"] == 16.064  # delivered, not the 16.089 selected
    assert daily["2025-10-26"] == 6.073
    assert rec.meta["clock_changes"] == [
        {"old": "2025-10-26T07:13:39", "new": "2025-10-26T06:15:40"}
    ]
    assert rec.meta["pump"] == "MiniMed 780G MMT-1886"


def test_780g_pump_clock_change_with_time_zone():
    rec = read_file(sample(EU), options=ImportOptions(timezone="Europe/Brussels"))
    cgm = rec.glucose[rec.glucose["source"] == "cgm"]
    # the clock ran on summer time (+ a 2 min drift) until set back at 07:13:39 -> 06:15:40
    assert cgm["utc_offset_min"].value_counts().to_dict() == {118: 4244, 60: 12}
    assert (
        local_time(cgm)
        == cgm["time"].dt.tz_localize(None)
        + pd.to_timedelta(cgm["utc_offset_min"].astype(float), unit="min")
    ).all()
    before = cgm[cgm["source_line"] == 998].iloc[0]  # 07:10:33 on the old clock
    after = cgm[cgm["source_line"] == 997].iloc[0]  # 06:17:34 on the new clock
    assert after["time"] - before["time"] == pd.Timedelta(seconds=301)
    assert cgm["time"].max() == pd.Timestamp("2025-10-26 06:12:34", tz="UTC")
    gaps = cgm["time"].diff().dt.total_seconds().dropna()
    assert (gaps >= 0).all() and (gaps.between(295, 305)).mean() > 0.99


def test_legacy_paradigm():
    rec = read_file(sample(LEGACY))
    assert rec.meta["layout"] == "legacy"
    g = rec.glucose
    assert g["source"].tolist() == ["cgm", "fingerstick"]
    assert g["glucose_mg_dl"].tolist() == [120.0, 90.0]  # GlucoseSensorData, CalBGForPH
    assert g["time"].iloc[0] == pd.Timestamp("2010-12-15 00:04", tz="UTC")
    ins = rec.insulin.set_index("source_line")
    assert ins.loc[9, "units_u"] == 5.4 and ins.loc[9, "delivery"] == "normal"
    dual = ins.loc[11]  # Dual/Normal 3.6 U + Dual/Square 1.7 of 2.3 U over 1 h
    assert (dual["delivery"], dual["units_u"], dual["extended_units_u"]) == ("dual", 5.3, 1.7)
    assert dual["duration_min"] == 60.0 and dual["flag"] == "interrupted"
    assert dual["time"] == pd.Timestamp("2014-01-25 23:35:12", tz="UTC")
    assert ins.loc[4, "rate_u_per_h"] == 0.65  # BasalProfileStart RATE=0.65
    assert ins.loc[6, "rate_u_per_h"] == 0.8
    # 70 % for 3 h of the 0.8 U/h started 12 s before; the first 70 % has no rate in 24 h
    assert ins.loc[8, "rate_u_per_h"] == pytest.approx(0.56)
    assert ins.loc[8, "duration_min"] == 180.0 and ins.loc[8, "flag"] == "percent=70"
    assert np.isnan(ins.loc[5, "rate_u_per_h"]) and ins.loc[5, "flag"] == "percent=70;rate_unknown"
    assert 7 not in ins.index  # the 0 %/0 min cancel coincides with a BasalProfileStart
    assert rec.carbs["carbs_g"].tolist() == [64.0]
    assert rec.meta["not_imported"]["legacy_record_types"]["CurrentBasalProfile"] == 18


# A small export in the current layout, written in the 780G's own header.
def _header() -> list[str]:
    return sample(EU).read_text(encoding="utf-8").splitlines()[6].split(";")


def _current(rows: list[dict[str, str]], header: list[str] | None = None, sep: str = ";") -> str:
    header = header or _header()
    lines = [
        sep.join(["Last Name", "First Name", "Patient ID"]),
        sep.join(["-------", "MiniMed 780G MMT-1886", "Pump", "NG1234567", "------- "]),
        sep.join(header),
    ]
    for i, row in enumerate(rows):
        cells = {"Index": f"{i},00000" if sep == ";" else str(i), **row}
        lines.append(sep.join(cells.get(name, "") for name in header))
    return "\n".join(lines) + "\n"


def _write(tmp_path, text: str):
    path = tmp_path / "carelink.csv"
    path.write_text(text, encoding="utf-8")
    return path


def _row(date_time: str, cells: dict[str, str] | None = None) -> dict[str, str]:
    date, time = date_time.split(" ")
    return {"Date": date, "Time": time, **(cells or {})}


def test_square_dual_auto_temp_and_resume(tmp_path):
    rows = [  # newest first, as the pump writes them
        _row("2025/03/02 14:00:00", {"Suspend": "NORMAL_PUMPING"}),
        _row("2025/03/02 13:00:00", {"Basal Rate (U/h)": "0", "Suspend": "USER_SUSPEND"}),
        _row(
            "2025/03/02 12:30:00",
            {
                "Temp Basal Amount": "1,5",
                "Temp Basal Type": "Insulin Rate",
                "Temp Basal Duration (h:mm:ss)": "0:30:00",
            },
        ),
        _row(
            "2025/03/02 12:00:00",
            {
                "Temp Basal Amount": "50",
                "Temp Basal Type": "Percent",
                "Temp Basal Duration (h:mm:ss)": "1:00:00",
            },
        ),
        _row("2025/03/02 11:00:00", {"Basal Rate (U/h)": "0,8"}),
        _row(
            "2025/03/02 10:10:00",
            {
                "Bolus Type": "Dual (square part)",
                "Bolus Volume Selected (U)": "2",
                "Bolus Volume Delivered (U)": "2",
                "Bolus Duration (h:mm:ss)": "1:30:00",
                "Bolus Number": "7",
            },
        ),
        _row(
            "2025/03/02 10:01:00",
            {
                "Bolus Type": "Dual (normal part)",
                "Bolus Volume Selected (U)": "3",
                "Bolus Volume Delivered (U)": "3",
                "Bolus Number": "7",
            },
        ),
        _row(
            "2025/03/02 09:00:00",
            {
                "Bolus Type": "Square",
                "Bolus Volume Selected (U)": "4",
                "Bolus Volume Delivered (U)": "4",
                "Bolus Duration (h:mm:ss)": "2:00:00",
                "Bolus Number": "6",
            },
        ),
        _row(
            "2025/03/02 08:00:00",
            {
                "Bolus Type": "Normal",
                "Bolus Volume Selected (U)": "0,3",
                "Bolus Volume Delivered (U)": "0,3",
                "Bolus Source": "CLOSED_LOOP_AUTO_INSULIN",
                "Bolus Number": "5",
            },
        ),
        _row("2025/03/02 07:00:00", {"Sensor Glucose (mg/dL)": "101"}),
    ]
    rec = read_file(_write(tmp_path, _current(rows)), options=ImportOptions(timezone="UTC"))
    ins = rec.insulin.set_index("time")
    at = {
        h: pd.Timestamp(f"2025-03-02 {h}", tz="UTC")
        for h in ("08:00", "09:00", "10:01", "11:00", "12:00", "12:30", "13:00", "14:00")
    }
    assert ins.loc[at["08:00"], "automated"]
    square = ins.loc[at["09:00"]]
    assert (
        square["delivery"],
        square["units_u"],
        square["extended_units_u"],
        square["duration_min"],
    ) == ("extended", 4.0, 4.0, 120.0)
    dual = ins.loc[at["10:01"]]
    assert (dual["delivery"], dual["units_u"], dual["extended_units_u"], dual["duration_min"]) == (
        "dual",
        5.0,
        2.0,
        90.0,
    )
    assert ins.loc[at["12:00"], "rate_u_per_h"] == pytest.approx(0.4)  # 50 % of 0.8
    assert ins.loc[at["12:30"], "rate_u_per_h"] == 1.5
    assert ins.loc[at["12:30"], "delivery"] == "temporary"
    assert ins.loc[at["13:00"], "delivery"] == "suspend"
    resumed = ins.loc[at["14:00"]]  # no rate row with the resume: back to the schedule
    assert (resumed["delivery"], resumed["rate_u_per_h"]) == ("scheduled", 0.8)
    assert len(rec.insulin) == 8
    assert rec.glucose["glucose_mg_dl"].tolist() == [101.0]


def test_mmol_l_and_us_delimiter(tmp_path):
    header = [h.replace("(mg/dL)", "(mmol/L)") for h in _header()]
    rows = [_row("2025/03/02 07:00:00", {"Sensor Glucose (mmol/L)": "6,5"})]
    rec = read_file(_write(tmp_path, _current(rows, header=header)))
    assert rec.glucose["glucose_mg_dl"].iloc[0] == pytest.approx(6.5 * MG_DL_PER_MMOL_L)
    rows = [_row("2025/03/02 07:00:00", {"Sensor Glucose (mg/dL)": "117", "ISIG Value": "25.5"})]
    path = _write(tmp_path, _current(rows, sep=","))
    assert detect_format(path).name == "medtronic_carelink"
    assert read_file(path).glucose["glucose_mg_dl"].tolist() == [117.0]


@pytest.mark.parametrize(
    ("cells", "field", "message"),
    [
        ({"Sensor Glucose (mg/dL)": "abc"}, "Sensor Glucose (mg/dL)", "not a number"),
        ({"Sensor Glucose (mg/dL)": "-5"}, "glucose_mg_dl", "outside the possible range"),
        ({"Bolus Type": "Wave", "Bolus Volume Delivered (U)": "1"}, "Bolus Type", "unknown bolus"),
        ({"Temp Basal Amount": "1", "Temp Basal Type": "Fancy"}, "Temp Basal Type", "unknown temp"),
        ({"Bolus Type": "Normal", "Bolus Volume Delivered (U)": "900"}, "units_u", "outside"),
    ],
)
def test_bad_values_name_line_and_field(tmp_path, cells, field, message):
    rows = [
        _row("2025/03/02 08:00:00", cells),
        _row("2025/03/02 07:00:00", {"Sensor Glucose (mg/dL)": "100"}),
    ]
    with pytest.raises(DataError, match=message) as info:
        read_file(_write(tmp_path, _current(rows)), format="medtronic_carelink")
    assert info.value.file.endswith("carelink.csv")
    assert (info.value.line, info.value.field) == (4, field)


def test_bad_header_time_and_truncation(tmp_path):
    header = [h.replace("(mg/dL)", "(mg/L)") for h in _header()]
    rows = [_row("2025/03/02 07:00:00")]
    with pytest.raises(DataError, match="unknown glucose unit") as info:
        read_file(_write(tmp_path, _current(rows, header=header)), format="medtronic_carelink")
    assert info.value.line == 3
    with pytest.raises(DataError, match="cannot read") as info:
        read_file(
            _write(tmp_path, _current([_row("2025/03/32 07:00:00")])), format="medtronic_carelink"
        )
    assert (info.value.line, info.value.field) == (4, "Date")
    raw = sample(EU).read_bytes()
    cut = tmp_path / "cut.csv"
    cut.write_bytes(raw[:300_000])
    with pytest.raises(DataError, match="truncated") as info:
        read_file(cut, format="medtronic_carelink")
    assert info.value.line == raw[:300_000].count(b"\n") + 1
    # the same file without its final newline(s) is complete: the last row has every field
    cut.write_bytes(raw.rstrip(b"\r\n"))
    assert read_file(cut, format="medtronic_carelink").counts() == read_file(sample(EU)).counts()
    cut.write_bytes(raw.rstrip(b"\r\n;"))  # the last row's empty trailing fields are gone
    with pytest.raises(DataError, match="truncated") as info:
        read_file(cut, format="medtronic_carelink")
    assert (info.value.line, info.value.field) == (
        raw.rstrip(b"\r\n").count(b"\n") + 1,
        "Event Marker",
    )
    with pytest.raises(DataError, match="table header"):
        read_file(
            _write(tmp_path, "Last Name;First Name\nnothing;here\n"), format="medtronic_carelink"
        )


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    line=st.integers(min_value=7, max_value=60),
    field=st.integers(min_value=0, max_value=53),
    value=st.text(
        alphabet=st.characters(codec="utf-8", blacklist_characters='\n\r";'), max_size=12
    ),
)
def test_fuzzed_cells_give_a_recording_or_a_data_error(tmp_path, line, field, value):
    lines = sample(EU).read_text(encoding="utf-8").splitlines()[:61]
    cells = lines[line].split(";")
    cells[field] = value
    lines[line] = ";".join(cells)
    try:
        read_file(_write(tmp_path, "\n".join(lines) + "\n"), format="medtronic_carelink")
    except DataError as exc:
        assert exc.file.endswith("carelink.csv")
