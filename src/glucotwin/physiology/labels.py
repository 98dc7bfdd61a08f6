"""Naming the members of a batch (patients, sensors, pumps) in validation errors."""

from __future__ import annotations

from collections.abc import Sequence


def batch_labels(names: Sequence[str] | str | None, size: int, noun: str = "patient") -> list[str]:
    """One label per batch member: its quoted name when names fit, else ``'<noun> index i'``.

    A batch of one without a name is ``'the <noun>'``, so an error reads
    "BW of the patient must be > 0 kg".
    """
    if isinstance(names, str):
        names = [names]
    if names is not None and len(names) == size:
        return [repr(name) for name in names]
    return [f"the {noun}"] if size == 1 else [f"{noun} index {i}" for i in range(size)]
