"""The `simulate` and `cohort sample` CLI contract against the simglucose reference files."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from conftest import shared_path
from typer.testing import CliRunner

from glucotwin.cli import app
from glucotwin.data.cohort import read_cohort
from glucotwin.data.errors import DataError
from glucotwin.data.sim_inputs import read_inputs_csv
from glucotwin.physiology import PATIENT_NAMES, load_virtual_patients
from glucotwin.simulate.scenario import standard_days

runner = CliRunner()
REFERENCE = ("reference", "simglucose")


def _invoke(*args: str):
    return runner.invoke(app, [str(a) for a in args])


def test_patient_reproduces_the_reference_and_sparse_inputs_agree(tmp_path):
    inputs = shared_path(*REFERENCE, "S1_inputs_adult#001.csv")
    expected = pd.read_csv(shared_path(*REFERENCE, "S1_expected_adult#001.csv"))
    out = tmp_path / "out.csv"
    result = _invoke("simulate", "--patient", "adult#001", "--inputs", inputs, "--out", out)
    assert result.exit_code == 0, result.output
    got = pd.read_csv(out)
    assert list(got.columns) == ["minute", "glucose_mg_dl", "plasma_glucose_mg_dl"]
    np.testing.assert_array_equal(got["minute"], np.arange(1440))
    for column in ("glucose_mg_dl", "plasma_glucose_mg_dl"):
        assert np.max(np.abs(got[column] - expected[column])) < 0.25

    # Every reference row carries basal, so a sparse file is a different regimen: compare it
    # with the dense file that writes its missing minutes as explicit zeros.
    dense = pd.read_csv(inputs)
    keep = (dense["carbs_g"] > 0) | (dense["minute"] % 7 == 0) | (dense["minute"] == 1439)
    sparse, zeroed = tmp_path / "sparse.csv", tmp_path / "zeroed.csv"
    dense[keep].to_csv(sparse, index=False)
    dense.assign(**{c: dense[c].where(keep, 0.0) for c in ("carbs_g", "insulin_u")}).to_csv(
        zeroed, index=False
    )
    out_sparse, out_zeroed = tmp_path / "a.csv", tmp_path / "b.csv"
    for source, target in ((sparse, out_sparse), (zeroed, out_zeroed)):
        result = _invoke("simulate", "--patient", "adult#001", "--inputs", source, "--out", target)
        assert result.exit_code == 0, result.output
    assert out_sparse.read_bytes() == out_zeroed.read_bytes()


def test_reference_cohort_summary_matches_the_reference_means(tmp_path):
    summary = tmp_path / "summary.csv"
    result = _invoke("simulate", "--cohort", "reference", "--days", 1, "--summary", summary)
    assert result.exit_code == 0, result.output
    assert "patient-days/s" in result.stdout
    table = pd.read_csv(summary)
    required = {
        "patient", "group", "mean_mg_dl", "tir_70_180_percent", "tbr_below_70_percent",
        "tbr_below_54_percent", "tar_above_180_percent", "min_mg_dl", "max_mg_dl",
    }  # fmt: skip
    assert required <= set(table.columns)
    assert tuple(table["patient"]) == PATIENT_NAMES
    assert tuple(table["group"]) == tuple(name.split("#")[0] for name in PATIENT_NAMES)
    for row in table.itertuples():
        expected = pd.read_csv(shared_path(*REFERENCE, f"S1_expected_{row.patient}.csv"))
        glucose = expected["glucose_mg_dl"]
        assert row.mean_mg_dl == pytest.approx(glucose.mean(), abs=0.01)
        assert row.min_mg_dl == pytest.approx(glucose.min(), abs=0.01)
        assert row.tbr_below_70_percent == pytest.approx(100 * np.mean(glucose < 70), abs=0.5)


def test_standard_days_rebuild_the_reference_inputs():
    cohort = load_virtual_patients()
    basal = np.asarray(cohort.params.u2ss * cohort.params.BW / 6000)
    carbs, insulin = standard_days(basal, np.asarray(cohort.therapy.carb_ratio_g_per_u), days=2)
    assert carbs.shape == (2880,) and insulin.shape == (30, 2880)
    for i in (0, 10, 29):
        ref_carbs, ref_insulin = read_inputs_csv(
            shared_path(*REFERENCE, f"S1_inputs_{PATIENT_NAMES[i]}.csv")
        )
        np.testing.assert_array_equal(carbs[1440:], ref_carbs)
        np.testing.assert_allclose(insulin[i, :1440], ref_insulin, rtol=1e-15)


def test_cohort_sample_then_simulate_it(tmp_path):
    path = tmp_path / "cohort.parquet"
    result = _invoke("cohort", "sample", "--n", 6, "--seed", 3, "--out", path)
    assert result.exit_code == 0, result.output
    assert "acceptance rate" in result.stdout
    cohort, groups = read_cohort(path)
    assert len(cohort) == 6 and groups == ("adolescent",) * 2 + ("adult",) * 2 + ("child",) * 2
    summary = tmp_path / "summary.csv"
    result = _invoke("simulate", "--cohort", path, "--days", 2, "--summary", summary)
    assert result.exit_code == 0, result.output
    table = pd.read_csv(summary)
    assert tuple(table["patient"]) == cohort.names
    assert table["mean_mg_dl"].between(80, 250).all()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ((), "exactly one of --patient"),
        (("--patient", "adult#001", "--cohort", "reference"), "exactly one of --patient"),
        (("--patient", "adult#001"), "--patient needs --inputs"),
        (("--cohort", "reference"), "--cohort needs --summary"),
        (("--cohort", "reference", "--summary", "s.csv", "--scenario", "x"), "unknown scenario"),
        (("--cohort", "missing.parquet", "--summary", "s.csv"), "missing.parquet"),
    ],
)
def test_simulate_argument_errors(tmp_path, monkeypatch, args, message):
    monkeypatch.chdir(tmp_path)
    result = _invoke("simulate", *args)
    assert result.exit_code == 2
    assert message in result.stderr
    assert list(tmp_path.iterdir()) == []


def test_unknown_patient_lists_the_valid_ones(tmp_path):
    inputs = tmp_path / "in.csv"
    inputs.write_text("minute,carbs_g,insulin_u\n0,0,0.01\n")
    out = tmp_path / "out.csv"
    result = _invoke("simulate", "--patient", "adult#099", "--inputs", inputs, "--out", out)
    assert result.exit_code == 2
    assert "adult#099" in result.stderr and "adolescent#001" in result.stderr
    assert "child#010" in result.stderr
    assert not out.exists()


@pytest.mark.parametrize(
    ("body", "line", "field"),
    [
        ("minute,carbs_g,insulin_u\n0,0,0.01\n1,-5,0.01\n", 3, "carbs_g"),
        ("minute,carbs_g,insulin_u\n0,0,0.01\n1.5,0,0.01\n", 3, "minute"),
        ("minute,carbs_g,insulin_u\n0,0,0.01\n0,0,0.01\n", 3, "minute"),
        ("minute,carbs_g,insulin_u\n0,0,abc\n", 2, "insulin_u"),
        ("minute,carbs,insulin_u\n0,0,0.01\n", 1, "carbs"),
    ],
)
def test_malformed_inputs_name_file_line_field(tmp_path, body, line, field):
    inputs = tmp_path / "in.csv"
    inputs.write_text(body)
    out = tmp_path / "out.csv"
    result = _invoke("simulate", "--patient", "adult#001", "--inputs", inputs, "--out", out)
    assert result.exit_code == 2
    assert f"{inputs}:{line}: field '{field}'" in result.stderr
    assert not out.exists()
    with pytest.raises(DataError) as caught:
        read_inputs_csv(inputs)
    assert (caught.value.line, caught.value.field) == (line, field)
