"""Import/export at the edge, and the canonical time-series model used everywhere."""

from glucotwin.data.errors import DataError, UnknownFormatError
from glucotwin.data.model import MG_DL_PER_MMOL_L, Recording, Stream, local_time, localize

__all__ = [
    "MG_DL_PER_MMOL_L",
    "DataError",
    "Recording",
    "Stream",
    "UnknownFormatError",
    "local_time",
    "localize",
]
