"""GlucoTwin: an open digital twin of glucose-insulin physiology.

Decision support for research. GlucoTwin is not a medical device: nothing it computes is a
diagnosis or a treatment instruction.
"""

__version__ = "0.1.0"

DISCLAIMER = (
    "GlucoTwin is decision support for research, not a medical device. "
    "Do not use its output to diagnose or to dose insulin."
)
