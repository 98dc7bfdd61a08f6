"""Personal digital twins: the ReplayBG model, a recording as model inputs, and identification.

- :mod:`.model`: the ReplayBG twin (Cappon et al. 2023) as a :class:`glucotwin.physiology.Model`.
- :mod:`.inputs`: one subject's recording as per-minute carbs/insulin and CGM observations.
- :mod:`.solver`: the fast solver identification differentiates through.
- :mod:`.fit`: the posterior's coordinates and MAP identification (:class:`TwinFitter`).
- :mod:`.posterior`: Laplace, NUTS and SVI posteriors, predictive bands for any replay.
- :mod:`.sampling`: NUTS and SVI (numpyro) on the same objective.
- :mod:`.drift`: the drift monitor (recent out-of-sample error against the twin's bands).
- :mod:`.filter`: online state estimation (ensemble Kalman filter).
- :mod:`.calibration`: simulation-based calibration on virtual subjects with known truth.
- :mod:`.store`: a fitted twin as a JSON file.
"""

from glucotwin.twin.fit import IDENTIFIED, PRIORS, TwinFitter, TwinReplay, replay_glucose
from glucotwin.twin.inputs import MinuteGrid, meal_windows, minute_grid
from glucotwin.twin.model import (
    FIXED_VALUES,
    REPLAYBG_TWIN,
    TwinInputs,
    TwinParams,
    TwinState,
    steady_state,
    twin_params,
)

__all__ = [
    "FIXED_VALUES",
    "IDENTIFIED",
    "PRIORS",
    "REPLAYBG_TWIN",
    "MinuteGrid",
    "TwinFitter",
    "TwinInputs",
    "TwinParams",
    "TwinReplay",
    "TwinState",
    "meal_windows",
    "minute_grid",
    "replay_glucose",
    "steady_state",
    "twin_params",
]
