"""GlucoTwin's metrics agree with iglu-python where the definitions agree (peers venv).

Runs iglu-python 0.4 in ``benchmarks/.peers-venv`` (created on first use, which needs PyPI)
on the readings GlucoTwin's metrics use, for AZT1D subjects 1-2, the ReplayBG example and
synthetic records with jitter, gaps and 15-min sampling. The tolerances and the metrics
whose definitions differ (active time, GlucoTwin's default MAGE) are explained in
``docs/metrics.md`` and ``benchmarks/metrics_vs_iglu.py``.
"""

from __future__ import annotations

import sys

import pytest
from conftest import REPO, shared_path

sys.path.insert(0, str(REPO / "benchmarks"))
import metrics_vs_iglu as bench

pytestmark = pytest.mark.peers

AGREEING = [
    c
    for c in bench.COMPARISONS
    if c.name != "cgm_active_percent"
    and (not c.name.startswith("mage") or c.name in (
        "mage_mg_dl [moving_average, avg]", "mage_mg_dl [moving_average, service]"))
]  # fmt: skip


@pytest.fixture(scope="module")
def compared(tmp_path_factory):
    azt = [shared_path("azt1d", "CGM Records", f"Subject {n}", f"Subject {n}.csv") for n in (1, 2)]
    replay = tuple(shared_path("replaybg_example", f"data_day_{d}.csv") for d in (1, 2))
    folder = tmp_path_factory.mktemp("synthetic")
    synthetic = [s for s in bench.synthetic_sources(folder) if "1-min" not in s.dataset + s.label]
    sources = [bench.Source("AZT1D", p.stem, (p,)) for p in azt]
    sources += [bench.Source("ReplayBG", "days 1+2", replay), *synthetic]
    skipped: list[str] = []
    ours, theirs, labels = bench.run(sources, log=skipped.append)
    return ours, theirs, labels, skipped


def test_every_record_was_compared(compared):
    ours, theirs, labels, skipped = compared
    assert skipped == []
    datasets = sorted({source.dataset for source in labels.values()})
    assert datasets == ["AZT1D", "ReplayBG", "synthetic"]
    assert set(theirs) == set(ours)


@pytest.mark.parametrize("comparison", AGREEING, ids=lambda c: c.name)
def test_agrees_within_tolerance(compared, comparison):
    ours, theirs, labels, _ = compared
    n, worst, within, key = bench.compare(ours, theirs, comparison)
    assert n == len(ours)
    where = f"{labels[key].dataset}: {labels[key].label}" if key else ""
    assert within == n, f"max |difference| {worst:.4g} > {comparison.tolerance} ({where})"


def test_default_mage_stays_close_to_iglus(compared):
    # Different algorithms for the same definition (docs/metrics.md): within 5 %.
    ours, theirs, _, _ = compared
    for key, metrics in ours.items():
        assert metrics["mage_avg"] == pytest.approx(theirs[key]["mage_avg"], rel=0.05)
