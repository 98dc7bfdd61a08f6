"""The engine agrees with simglucose 0.2.11 itself on scenarios other than the reference day.

The reference files cover one day (S1). Here simglucose runs in ``benchmarks/.peers-venv``
(created on first use from PyPI) on a harder two-day scenario for the patients whose S1
error is largest: meals eaten over several minutes at 5 g/min (stock simglucose's eating
rate), a snack while dinner is still in the stomach (the remembered meal size Dbar resets),
correction boluses, a basal suspension and a doubled basal. Both glucose columns must agree
within the same 0.25 mg/dL bar as the reference files.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest

from glucotwin.physiology import basal_insulin_u_per_min, load_virtual_patients
from glucotwin.simulate import simulate

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "benchmarks"))

pytestmark = pytest.mark.peers

PATIENTS = ("adolescent#005", "adult#009", "child#008")
MINUTES = 2 * 1440
TOLERANCE_MG_DL = 0.25

PEER_SCRIPT = r"""
import csv, json, math, sys
from simglucose.patient.t1dpatient import Action, T1DPatient

out = {}
for name, path in zip(sys.argv[1::2], sys.argv[2::2]):
    rows = list(csv.DictReader(open(path)))
    patient = T1DPatient.withName(name)
    patient.EAT_RATE = math.inf  # each minute's carbs are eaten in that minute
    glucose, plasma = [], []
    for row in rows:
        glucose.append(patient.observation.Gsub)
        plasma.append(patient.state[3] / patient._params.Vg)
        patient.step(Action(CHO=float(row["carbs_g"]), insulin=float(row["insulin_u"])))
    out[name] = {"glucose": glucose, "plasma": plasma}
print(json.dumps(out))
"""


def scenario(cohort) -> tuple[np.ndarray, np.ndarray]:
    """Per-patient carbs (g/min) and insulin (U/min) over two days."""
    n = len(cohort)
    basal = np.asarray(basal_insulin_u_per_min(cohort.params))[:, None]
    ratio = np.asarray(cohort.therapy.carb_ratio_g_per_u)[:, None]
    carbs = np.zeros((n, MINUTES))
    insulin = np.tile(basal, (1, MINUTES))
    meals = {  # start minute: grams, eaten at 5 g/min over consecutive minutes
        7 * 60: 45,
        12 * 60 + 30: 80,
        18 * 60: 70,
        19 * 60 + 10: 25,  # snack while dinner is still being digested
        1440 + 8 * 60: 60,
        1440 + 13 * 60: 33,
        1440 + 19 * 60: 95,
    }
    for start, grams in meals.items():
        full, rest = divmod(grams, 5)
        carbs[:, start : start + full] = 5.0
        if rest:
            carbs[:, start + full] = rest
        insulin[:, start] += grams / ratio[:, 0]
    insulin[:, 3 * 60 : 5 * 60] = 0.0  # basal suspended for two hours
    insulin[:, 1440 + 2 * 60 : 1440 + 3 * 60] = 2 * basal  # temporary basal 200 %
    insulin[:, 1440 + 15 * 60] += 1.5  # correction bolus
    return carbs, insulin


def test_two_day_scenario_matches_simglucose(tmp_path):
    from peers import run_peer

    cohort = load_virtual_patients(PATIENTS)
    carbs, insulin = scenario(cohort)
    args = []
    for i, name in enumerate(PATIENTS):
        path = tmp_path / f"{i}.csv"
        rows = ["minute,carbs_g,insulin_u"]
        rows += [f"{m},{float(carbs[i, m])!r},{float(insulin[i, m])!r}" for m in range(MINUTES)]
        path.write_text("\n".join(rows) + "\n")
        args += [name, str(path)]
    script = tmp_path / "simglucose_run.py"
    script.write_text(PEER_SCRIPT)
    peer = json.loads(run_peer(script, *args, packages=["simglucose==0.2.11"], timeout_s=900))

    ours = simulate(cohort.params, carbs, insulin, cohort.x0)
    for i, name in enumerate(PATIENTS):
        glucose_error = np.abs(np.asarray(ours.glucose_mg_dl[i]) - peer[name]["glucose"])
        plasma_error = np.abs(np.asarray(ours.plasma_glucose_mg_dl[i]) - peer[name]["plasma"])
        assert glucose_error.max() <= TOLERANCE_MG_DL, (name, glucose_error.max())
        assert plasma_error.max() <= TOLERANCE_MG_DL, (name, plasma_error.max())
    assert max(np.ptp(peer[name]["glucose"]) for name in PATIENTS) > 100  # a real workout
