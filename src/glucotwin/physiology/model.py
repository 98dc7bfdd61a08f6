"""The model protocol: what ``glucotwin.simulate.simulate`` needs from a physiology model.

A :class:`Model` bundles the pure functions of one model family (UVA/Padova type 1,
Hovorka, Dalla Man type 2, UVA/Padova with exercise). The engine knows nothing else about a
model: it integrates ``vector_field`` minute by minute with inputs built by
``inputs_from_doses`` and records ``glucose_mg_dl`` and ``plasma_glucose_mg_dl``. States,
inputs, parameters and memories are pytrees (``NamedTuple``), so one ``Model`` runs one
patient or a batch under ``vmap``, and ``jax.grad`` flows through all of it.

A ``Model`` is hashable (a tuple of module-level functions) and is a static argument of
the compiled simulation: each model compiles its own scan, the code path is the same.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import jax

from glucotwin.physiology import uva_padova


class Model(NamedTuple):
    """A physiology model as pure functions (all elementwise over batched fields).

    - ``vector_field(t, state, inputs, params, memory) -> d(state)/dt`` (per minute).
    - ``inputs_from_doses(carbs_g_per_min, insulin_u_per_min, params, extra)`` builds the
      model's inputs for one minute; ``extra`` is that minute's value of the model's extra
      input (``None`` when the caller gave none: the model then uses its basal value).
    - ``initial_memory(state)`` and ``update_memory(memory, state, carbs_g)``: what the model
      remembers of past inputs (UVA/Padova's meal size Dbar; ``()`` for memoryless models),
      updated at the start of every minute before it is integrated.
    - ``glucose_mg_dl(state, params)``: the glucose a sensor sees (subcutaneous or
      interstitial), mg/dL; ``plasma_glucose_mg_dl(state, params)``: plasma glucose, mg/dL.
    - ``steady_state(params)``: the fasting steady state under the nominal basal insulin
      ``basal_insulin_u_per_min(params)`` (U/min; zero for a model that needs none).
    - ``extra_input``: name and unit of the one optional per-minute extra input (e.g.
      ``"heart_rate_bpm"``), ``None`` if the model takes none.
    """

    name: str
    vector_field: Callable[..., Any]
    inputs_from_doses: Callable[..., Any]
    initial_memory: Callable[[Any], Any]
    update_memory: Callable[[Any, Any, jax.Array], Any]
    glucose_mg_dl: Callable[[Any, Any], jax.Array]
    plasma_glucose_mg_dl: Callable[[Any, Any], jax.Array]
    steady_state: Callable[[Any], Any]
    basal_insulin_u_per_min: Callable[[Any], jax.Array]
    extra_input: str | None = None


def no_memory(state: Any) -> tuple[()]:
    """The memory of a model that remembers nothing: an empty pytree."""
    del state
    return ()


def keep_memory(memory: Any, state: Any, carbs_g: jax.Array) -> Any:
    """``update_memory`` of a memoryless model: returns ``memory`` unchanged."""
    del state, carbs_g
    return memory


def _uva_inputs(carbs_g_per_min, insulin_u_per_min, params, extra):
    del extra
    return uva_padova.inputs_from_doses(carbs_g_per_min, insulin_u_per_min, params)


def _uva_steady_state(params: uva_padova.UvaPadovaParams) -> uva_padova.UvaPadovaState:
    return uva_padova.steady_state(params)


UVA_PADOVA = Model(
    name="uva_padova",
    vector_field=uva_padova.vector_field,
    inputs_from_doses=_uva_inputs,
    initial_memory=uva_padova.initial_meal_memory,
    update_memory=uva_padova.remember_meal,
    glucose_mg_dl=uva_padova.subcutaneous_glucose_mg_dl,
    plasma_glucose_mg_dl=uva_padova.plasma_glucose_mg_dl,
    steady_state=_uva_steady_state,
    basal_insulin_u_per_min=uva_padova.basal_insulin_u_per_min,
)
"""UVA/Padova S2008 type 1 as simglucose 0.2.11 implements it (:mod:`.uva_padova`)."""
