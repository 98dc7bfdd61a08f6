"""Speed: a year of 5-min CGM (105,120 readings) through GlucoTwin and through iglu-python.

Writes the year as a generic CSV (``timestamp,glucose_mg_dl``), then times, best of
``--repeats`` runs in one process:

- GlucoTwin: ``read_file`` (import the CSV into a Recording) + ``compute_metrics``;
- iglu-python (in the peers venv, ``benchmarks/peers.py``): ``pandas.read_csv`` of the same
  file + the iglu functions for the same metric set (mean, SD, CV, GMI, J-index, the five
  range percentages and TITR, LBGI, HBGI, ADRR, GRI, MODD, CONGA-1h, active percent, one
  MAGE, the episode counts), timed inside the subprocess.

Module imports and the peer's interpreter start-up are reported on their own lines: the
first is paid once per process, the second once per subprocess. Run from the repository
root::

    .venv/bin/python benchmarks/metrics_speed.py
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BENCHMARKS = Path(__file__).resolve().parent
REPO = BENCHMARKS.parent
sys.path.insert(0, str(BENCHMARKS))
sys.path.insert(0, str(REPO / "src"))

from metrics_vs_iglu import IGLU_REQUIREMENT, synthetic_glucose  # noqa: E402
from peers import ensure_peers_venv, run_peer  # noqa: E402

READINGS_PER_YEAR = 365 * 288


def write_year(path: Path, seed: int = 7) -> None:
    """A year of 5-min synthetic CGM as a generic CSV (floating local time)."""
    import numpy as np
    import pandas as pd

    minutes = np.arange(READINGS_PER_YEAR) * 5.0
    glucose = synthetic_glucose(minutes, np.random.default_rng(seed))
    times = pd.Timestamp("2023-01-01") + pd.to_timedelta(minutes, unit="min")
    pd.DataFrame(
        {"timestamp": times.strftime("%Y-%m-%dT%H:%M:%S"), "glucose_mg_dl": glucose.round(1)}
    ).to_csv(path, index=False)


def import_seconds(python: str, statement: str) -> float:
    """Seconds a fresh interpreter spends on ``statement`` (imports), measured inside it."""
    code = f"import time; t = time.perf_counter(); {statement}; print(time.perf_counter() - t)"
    done = subprocess.run(
        [python, "-c", code], capture_output=True, text=True, check=True, cwd=REPO,
        env={"PYTHONPATH": str(REPO / "src"), "TZ": "UTC"},
    )  # fmt: skip
    return float(done.stdout.strip())


def startup_seconds(python: str, runs: int = 5) -> float:
    """Best wall time of starting the interpreter and exiting (``python -c pass``)."""
    best = float("inf")
    for _ in range(runs):
        started = time.perf_counter()
        subprocess.run([python, "-c", "pass"], check=True)
        best = min(best, time.perf_counter() - started)
    return best


def time_glucotwin(path: Path, repeats: int) -> tuple[float, float, dict]:
    """Best read_file and compute_metrics seconds, and the metrics."""
    from glucotwin.data.formats import read_file
    from glucotwin.metrics import compute_metrics

    best_read = best_metrics = float("inf")
    metrics: dict = {}
    for _ in range(repeats):
        started = time.perf_counter()
        recording = read_file(path)
        read_done = time.perf_counter()
        metrics = compute_metrics(recording)
        best_read = min(best_read, read_done - started)
        best_metrics = min(best_metrics, time.perf_counter() - read_done)
    return best_read, best_metrics, metrics


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        csv_path = Path(tmp) / "year.csv"
        write_year(csv_path)
        read_s, metrics_s, metrics = time_glucotwin(csv_path, args.repeats)
        ours_import_s = import_seconds(
            sys.executable, "import glucotwin.data.formats, glucotwin.metrics"
        )
        peer_python = str(ensure_peers_venv([IGLU_REQUIREMENT]))
        out_path = Path(tmp) / "iglu.json"
        run_peer(
            BENCHMARKS / "metrics_vs_iglu.py", "--peer", str(csv_path), str(out_path),
            "--repeats", str(args.repeats), "--mage-directions", "avg",
            packages=[IGLU_REQUIREMENT],
        )  # fmt: skip
        peer = json.loads(out_path.read_text())
        ours_startup = startup_seconds(sys.executable)
        peer_startup = startup_seconds(peer_python)
    theirs_s = peer["compute_s"]
    ours_s = read_s + metrics_s
    print(f"year of 5-min CGM: {metrics['readings']:,} readings, {metrics['days']:.1f} days")
    print(f"best of {args.repeats} runs, one process each side")
    print("| step | GlucoTwin (s) | iglu-python (s) |")
    print("|---|---:|---:|")
    print(f"| read the CSV + compute the metrics | {ours_s:.3f} | {theirs_s:.3f} |")
    print(f"| of which: read_file | {read_s:.3f} | |")
    print(f"| of which: compute_metrics | {metrics_s:.3f} | |")
    print(f"| module imports (once per process) | {ours_import_s:.3f} | {peer['import_s']:.3f} |")
    print(f"| interpreter start-up (python -c pass) | {ours_startup:.3f} | {peer_startup:.3f} |")
    print(f"speed ratio (iglu-python / GlucoTwin, read + metrics): {theirs_s / ours_s:.0f}×")
    if peer["failures"]:
        print("iglu failures: " + "; ".join(peer["failures"]))


if __name__ == "__main__":
    main()
