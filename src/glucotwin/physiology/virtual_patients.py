"""The 30 virtual patients of simglucose 0.2.11 as a batched UVA/Padova parameter pytree.

The parameter files are packaged in ``glucotwin/physiology/data`` (MIT licence, see the
README there): ``vpatient_params.csv`` (model parameters and the basal initial state of
adolescent#001-010, adult#001-010, child#001-010) and ``Quest.csv`` (carbohydrate ratio,
correction factor, age, total daily insulin). They are the cohort of the UVA/Padova S2008
simulator's educational version (Kovatchev et al., J Diabetes Sci Technol 3(1):44-55, 2009)
as distributed with simglucose.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from dataclasses import dataclass
from importlib import resources
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from glucotwin.physiology.uva_padova import (
    PMOL_PER_UNIT,
    UvaPadovaParams,
    UvaPadovaState,
)

PATIENT_NAMES: tuple[str, ...] = tuple(
    f"{group}#{number:03d}" for group in ("adolescent", "adult", "child") for number in range(1, 11)
)
"""The 30 patient names, in the order of the parameter file."""


class TherapySettings(NamedTuple):
    """A patient's conventional therapy (fields batched like the parameters).

    ``basal_u_per_h`` = u2ss * BW / 6000 * 60 (the basal that holds the fasting steady
    state); ``carb_ratio_g_per_u`` (CR) and ``correction_factor_mg_dl_per_u`` (CF) from
    ``Quest.csv``; ``age_years`` and ``total_daily_insulin_u`` (TDI) likewise.
    """

    basal_u_per_h: jax.Array
    carb_ratio_g_per_u: jax.Array
    correction_factor_mg_dl_per_u: jax.Array
    age_years: jax.Array
    total_daily_insulin_u: jax.Array


@dataclass(frozen=True)
class VirtualCohort:
    """Named virtual patients: batched ``params``, initial states ``x0`` and ``therapy``.

    ``params``, ``x0`` and ``therapy`` are pytrees whose leaves have shape ``[n]``, in the
    order of ``names``; pass them straight to ``glucotwin.simulate.simulate``. ``x0`` is the
    parameter file's initial state (columns ``x0_ 1`` .. ``x0_13``), the basal steady state.
    """

    names: tuple[str, ...]
    params: UvaPadovaParams
    x0: UvaPadovaState
    therapy: TherapySettings

    def __len__(self) -> int:
        return len(self.names)

    def take(self, indices: Sequence[int] | np.ndarray) -> VirtualCohort:
        """The patients at ``indices`` (repeats allowed: ``take(np.arange(n) % 30)`` tiles)."""
        index = np.asarray(indices, dtype=np.int64)
        pick = lambda leaf: leaf[index]  # noqa: E731
        return VirtualCohort(
            names=tuple(self.names[i] for i in index.tolist()),
            params=jax.tree.map(pick, self.params),
            x0=jax.tree.map(pick, self.x0),
            therapy=jax.tree.map(pick, self.therapy),
        )


def _read_packaged_csv(name: str) -> dict[str, list[str]]:
    text = resources.files("glucotwin.physiology").joinpath("data", name).read_text("utf-8")
    rows = list(csv.DictReader(io.StringIO(text)))
    return {column: [row[column] for row in rows] for column in rows[0]}


def load_virtual_patients(names: Sequence[str] | None = None) -> VirtualCohort:
    """Load the packaged simglucose cohort (all 30, or ``names`` in the order given).

    Parameters are validated (:meth:`UvaPadovaParams.validate`); an unknown name raises
    ``KeyError`` listing the known ones.
    """
    table = _read_packaged_csv("vpatient_params.csv")
    quest = _read_packaged_csv("Quest.csv")
    if tuple(table["Name"]) != PATIENT_NAMES or tuple(quest["Name"]) != PATIENT_NAMES:
        raise ValueError("packaged parameter files do not list the 30 simglucose patients")

    def column(source: dict[str, list[str]], key: str) -> np.ndarray:
        return np.asarray(source[key], dtype=np.float64)

    params = UvaPadovaParams.from_mapping(
        {field: column(table, field) for field in UvaPadovaParams._fields}, names=PATIENT_NAMES
    )
    x0 = UvaPadovaState(
        *(
            jnp.asarray(column(table, f"x0_{i:2d}"))
            for i in range(1, len(UvaPadovaState._fields) + 1)
        )
    )
    therapy = TherapySettings(
        basal_u_per_h=jnp.asarray(column(table, "u2ss") * column(table, "BW") / PMOL_PER_UNIT * 60),
        carb_ratio_g_per_u=jnp.asarray(column(quest, "CR")),
        correction_factor_mg_dl_per_u=jnp.asarray(column(quest, "CF")),
        age_years=jnp.asarray(column(quest, "Age")),
        total_daily_insulin_u=jnp.asarray(column(quest, "TDI")),
    )
    cohort = VirtualCohort(PATIENT_NAMES, params, x0, therapy)
    if names is None:
        return cohort
    unknown = [name for name in names if name not in PATIENT_NAMES]
    if unknown:
        raise KeyError(f"unknown virtual patients {unknown}; known: {', '.join(PATIENT_NAMES)}")
    return cohort.take([PATIENT_NAMES.index(name) for name in names])
