"""Where the measured data sets lie: ``<repo>/../shared/data/measured`` (next to the checkout,
as on CI), else ``/work/shared/data/measured``. They are too big to commit (the ALS stack is
30 MB), so the tests that read them skip, saying so, where neither is present."""

from __future__ import annotations

from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
ROOTS = (REPO.parent / "shared" / "data" / "measured", Path("/work/shared/data/measured"))


def measured(name: str, file: str) -> Path:
    """The file ``file`` of the measured data set ``name``, or a skip saying where it was sought."""
    for root in ROOTS:
        if (root / name / file).is_file():
            return root / name / file
    pytest.skip(f"measured data {name}/{file} not found under {' or '.join(map(str, ROOTS))}")


#: The ALS 11.0.2.2 Fe L-edge stack's two regions (rows, columns) of one species each (white
#: lines at ~708.0 and ~709.7 eV): their mean OD spectra are the references, as its authors did.
ALS_STACK = "als-stxm-fe-l-71214098"
ALS_REGIONS = {"low": (slice(10, 30), slice(35, 55)), "high": (slice(70, 90), slice(10, 30))}
