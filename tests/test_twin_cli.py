"""``glucotwin twin fit`` and ``glucotwin twin replay`` on ReplayBG's example day."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from conftest import shared_path
from typer.testing import CliRunner

from glucotwin.cli import app
from glucotwin.data.errors import DataError
from glucotwin.data.formats import ImportOptions, read_files
from glucotwin.data.sim_inputs import write_table_csv
from glucotwin.twin.inputs import minute_grid
from glucotwin.twin.model import ROUTES, route_of
from glucotwin.twin.store import load_twin

runner = CliRunner()
DAY = ("replaybg_example", "data_day_1.csv")


def _invoke(*args):
    return runner.invoke(app, [str(a) for a in args])


@pytest.fixture(scope="module")
def fitted(tmp_path_factory):
    """The example day fitted once: (data path, twin path, printed JSON)."""
    data = shared_path(*DAY)
    twin = tmp_path_factory.mktemp("twin") / "twin.json"
    result = _invoke("twin", "fit", data, "--out", twin, "--seed", "3")
    assert result.exit_code == 0, result.output
    return data, twin, json.loads(result.stdout)


def test_fit_writes_the_twin_and_prints_metrics(fitted):
    _, twin, printed = fitted
    assert {"rmse_mg_dl", "mard_percent", "seconds", "method"} <= set(printed)
    assert printed["method"] == "map"
    assert printed["rmse_mg_dl"] < 20.0
    doc = json.loads(twin.read_text())
    assert "not a medical device" in doc["disclaimer"]
    assert doc["parameters"]["Gb"]["unit"] == "mg/dL"
    posterior = load_twin(twin)
    assert np.all(np.linalg.eigvalsh(posterior.cov) >= 0)
    assert posterior.noise_sd_mg_dl == pytest.approx(doc["noise_sd_mg_dl"])


def test_same_seed_gives_the_same_bytes(fitted, tmp_path):
    data, twin, _ = fitted
    again = tmp_path / "again.json"
    assert _invoke("twin", "fit", data, "--out", again, "--seed", "3").exit_code == 0
    assert again.read_bytes() == twin.read_bytes()


def test_replay_of_the_recorded_inputs_covers_the_cgm(fitted, tmp_path):
    data, twin, _ = fitted
    grid = minute_grid(read_files([data], format=None, options=ImportOptions()))
    used = (grid.carbs_g_per_min > 0) | (grid.insulin_u_per_min > 0)
    used[-1] = True  # the file's last row sets the replay's length
    minutes = np.flatnonzero(used)
    # The file's meal types (ReplayBG labels) route the carbs as in the fit.
    route = np.asarray(route_of(grid.meal_window[minutes])).astype(int)
    labelled = np.asarray(grid.meal_window[minutes]) >= 3
    names = {"B": "breakfast", "L": "lunch", "D": "dinner", "S": "snack"}
    types = [names[ROUTES[r]] if lab else "" for r, lab in zip(route, labelled, strict=True)]
    inputs = write_table_csv(tmp_path / "inputs.csv", {
        "minute": minutes,
        "carbs_g": grid.carbs_g_per_min[minutes],
        "insulin_u": grid.insulin_u_per_min[minutes],
        "meal_type": types,
    })  # fmt: skip
    out = tmp_path / "replay.csv"
    result = _invoke("twin", "replay", twin, "--inputs", inputs, "--out", out)
    assert result.exit_code == 0, result.output
    band = pd.read_csv(out)
    assert list(band.columns) == ["minute", "glucose_mg_dl", "lower_mg_dl", "upper_mg_dl"]
    assert len(band) == grid.minutes
    assert np.all(band["lower_mg_dl"] <= band["glucose_mg_dl"])
    assert np.all(band["glucose_mg_dl"] <= band["upper_mg_dl"])
    at = band.iloc[grid.cgm_minute]
    inside = (at["lower_mg_dl"].to_numpy() <= grid.cgm_mg_dl) & (
        grid.cgm_mg_dl <= at["upper_mg_dl"].to_numpy()
    )
    coverage = inside.mean()
    print(f"95 % band covers {100 * coverage:.1f} % of {inside.size} CGM readings")
    assert coverage >= 0.80
    again = tmp_path / "again.csv"
    assert _invoke("twin", "replay", twin, "--inputs", inputs, "--out", again).exit_code == 0
    assert again.read_bytes() == out.read_bytes()


def test_unknown_method_fails_clearly(tmp_path):
    data = shared_path(*DAY)
    result = _invoke("twin", "fit", data, "--out", tmp_path / "t.json", "--method", "mcmc")
    assert result.exit_code == 2
    assert "unknown --method 'mcmc'" in result.output
    assert not (tmp_path / "t.json").exists()


def test_data_without_insulin_is_refused(tmp_path):
    table = pd.read_csv(shared_path(*DAY))
    table[["bolus", "basal"]] = 0.0
    data = tmp_path / "no_insulin.csv"
    table.to_csv(data, index=False)
    result = _invoke("twin", "fit", data, "--out", tmp_path / "t.json", "--format", "replaybg")
    assert result.exit_code == 2
    assert "no insulin" in result.output
    assert not (tmp_path / "t.json").exists()


def test_short_data_is_refused(tmp_path):
    table = pd.read_csv(shared_path(*DAY)).iloc[:100]
    data = tmp_path / "short.csv"
    table.to_csv(data, index=False)
    result = _invoke("twin", "fit", data, "--out", tmp_path / "t.json", "--format", "replaybg")
    assert result.exit_code == 2
    assert "h of CGM readings" in result.output


def test_a_bad_twin_file_is_refused(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"format": "glucotwin-twin", "format_version": 3}))
    with pytest.raises(DataError, match="model"):
        load_twin(bad)
    bad.write_text(json.dumps({"format": "glucotwin-twin", "format_version": 2}))
    with pytest.raises(DataError, match=r"unsupported version.*refit"):
        load_twin(bad)
