"""The packaged demo recording (14 days of AZT1D subject 7, CC BY 4.0; see README.md here)."""

from pathlib import Path

DEMO_RECORDING = Path(__file__).with_name("Subject 7.csv")
DEMO_ATTRIBUTION = (
    "Demo data: AZT1D subject 7, first 14 days (Khamesian et al. 2025, doi:10.17632/gk9m674wcx.1,"
    " CC BY 4.0)."
)
