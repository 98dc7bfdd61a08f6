"""The CLI contract: `import`, `metrics --json`, `report`, `demo`, exit codes and messages."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
from pypdf import PdfReader
from typer.testing import CliRunner

from glucotwin.cli import app
from glucotwin.data.parquet import read_parquet

REQUIRED_METRIC_KEYS = {
    "mean_mg_dl",
    "sd_mg_dl",
    "cv_percent",
    "gmi_percent",
    "tir_70_180_percent",
    "tbr_below_70_percent",
    "tbr_below_54_percent",
    "tar_above_180_percent",
    "tar_above_250_percent",
    "titr_70_140_percent",
    "cgm_active_percent",
    "lbgi",
    "hbgi",
    "gri",
    "mage_mg_dl",
    "hypo_events_level1",
    "hypo_events_level2",
    "days",
}

runner = CliRunner()


@pytest.fixture
def cgm_csv(tmp_path):
    """Two weeks of 5-minute CGM with a daily rhythm and a nightly low, as a generic CSV."""
    minutes = np.arange(0, 14 * 1440, 5)
    glucose = 140 + 50 * np.sin(2 * np.pi * minutes / 1440) - 75 * (minutes % 1440 > 1400)
    frame = pd.DataFrame(
        {
            "timestamp": pd.Timestamp("2024-03-01") + pd.to_timedelta(minutes, unit="min"),
            "glucose_mg_dl": glucose.round(),
        }
    )
    path = tmp_path / "cgm.csv"
    frame.to_csv(path, index=False)
    return path


def test_import_writes_a_canonical_parquet(tmp_path, cgm_csv):
    out = tmp_path / "out.parquet"
    result = runner.invoke(app, ["import", str(cgm_csv), "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert len(read_parquet(out).glucose) == 14 * 288


def test_metrics_json_has_the_contract_keys(cgm_csv):
    result = runner.invoke(app, ["metrics", str(cgm_csv), "--json"])
    assert result.exit_code == 0, result.output
    metrics = json.loads(result.stdout)
    assert set(metrics) >= REQUIRED_METRIC_KEYS
    assert metrics["days"] == pytest.approx(14, abs=0.01)
    assert metrics["hypo_events_level1"] == 14
    assert metrics["hypo_events_level2"] == 0


def test_metrics_table_without_json(cgm_csv):
    result = runner.invoke(app, ["metrics", str(cgm_csv)])
    assert result.exit_code == 0, result.output
    assert "Time in range" in result.stdout or "TIR" in result.stdout


def test_report_writes_a_pdf_with_two_pages(tmp_path, cgm_csv):
    out = tmp_path / "report.pdf"
    result = runner.invoke(app, ["report", str(cgm_csv), "--out", str(out)])
    assert result.exit_code == 0, result.output
    reader = PdfReader(out)
    assert len(reader.pages) == 2
    text = reader.pages[0].extract_text()
    assert "Ambulatory Glucose Profile" in text
    assert "not a medical device" in text


def test_bad_input_exits_non_zero_with_one_line_and_writes_nothing(tmp_path):
    bad = tmp_path / "bad.csv"
    bad.write_text("timestamp,glucose_mg_dl\n2024-01-01 00:00,100\n2024-01-01 00:05,abc\n")
    out = tmp_path / "out.parquet"
    result = runner.invoke(app, ["import", str(bad), "--out", str(out)])
    assert result.exit_code == 2
    assert result.stderr.strip().count("\n") == 0
    assert "bad.csv:3" in result.stderr and "glucose_mg_dl" in result.stderr
    assert not out.exists()
    assert list(tmp_path.iterdir()) == [bad]


def test_unknown_format_and_unknown_zone(tmp_path, cgm_csv):
    result = runner.invoke(app, ["metrics", str(cgm_csv), "--format", "nope"])
    assert result.exit_code == 2 and "unknown format" in result.stderr
    result = runner.invoke(app, ["metrics", str(cgm_csv), "--tz", "Mars/Olympus"])
    assert result.exit_code == 2 and "time zone" in result.stderr


def test_console_script_runs_demo(tmp_path):
    """The installed entry point (not only the Typer app) runs the demo end to end."""
    done = subprocess.run(
        [sys.executable, "-m", "glucotwin", "demo", "--out", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "agp-report.pdf").stat().st_size > 10_000
    assert len(read_parquet(tmp_path / "demo.parquet").glucose) > 3000
